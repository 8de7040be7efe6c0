#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jwt.h>
#include <openssl/pem.h>

#include "core/jose.h"
#include "core/crypto.h"

static void test_b64url(void **state)
{
    (void)state;
    /* RFC 4648 §10 vectors, in the url alphabet without padding */
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        char *e = core_b64url_encode(in[i], strlen(in[i]));
        assert_string_equal(e, out[i]);
        unsigned char *d;
        size_t n;
        assert_true(core_b64url_decode(e, strlen(e), &d, &n));
        assert_int_equal(n, strlen(in[i]));
        assert_memory_equal(d, in[i], n);
        free(d);
        free(e);
    }
    char *std = core_b64_encode("foob", 4);
    assert_string_equal(std, "Zm9vYg==");
    free(std);
    unsigned char bytes[] = {0xfb, 0xff};
    char *e = core_b64url_encode(bytes, 2);
    assert_string_equal(e, "-_8");
    free(e);
    unsigned char *d;
    size_t n;
    assert_false(core_b64url_decode("Zg==", 4, &d, &n)); /* padding */
    assert_false(core_b64url_decode("Z+8", 3, &d, &n));  /* standard alphabet */
    assert_false(core_b64url_decode("Z", 1, &d, &n));    /* impossible length */
    assert_false(core_b64url_decode("Zh", 2, &d, &n));   /* non-zero trailing bits */
}

static char *public_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, k);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *out = xstrndup(data, (size_t)n);
    BIO_free(b);
    return out;
}

static void sign_and_check(enum core_alg alg)
{
    EVP_PKEY *k = core_key_generate(alg);
    json_t *h =
        json_pack("{s:s, s:s, s:s}", "typ", "at+jwt", "alg", core_alg_name(alg), "kid", "k1");
    json_t *c = json_pack("{s:s, s:s, s:i}", "iss", "https://hub.example", "sub", "client-1", "exp",
                          2000000000);
    char *token = core_jws_sign(k, alg, h, c);

    /* ours */
    struct core_jws j;
    const char *why;
    assert_true(core_jws_parse(token, 8192, &j, &why));
    assert_true(core_jws_verify(&j, k, alg));
    assert_string_equal(json_string_value(json_object_get(j.claims, "sub")), "client-1");
    assert_string_equal(json_string_value(json_object_get(j.header, "typ")), "at+jwt");
    /* the algorithm is the key's, never the header's */
    enum core_alg other = alg == CORE_ES256 ? CORE_RS256 : CORE_ES256;
    assert_false(core_jws_verify(&j, k, other));
    core_jws_release(&j);

    /* libjwt, independently, with the public key (libjwt 1.10 accepts only
     * typ JWT, so this one says so) */
    char *pem = public_pem(k);
    json_object_set_new(h, "typ", json_string("JWT"));
    char *plain = core_jws_sign(k, alg, h, c);
    jwt_t *decoded = NULL;
    assert_int_equal(jwt_decode(&decoded, plain, (unsigned char *)pem, (int)strlen(pem)), 0);
    assert_string_equal(jwt_get_grant(decoded, "sub"), "client-1");
    jwt_free(decoded);
    free(plain);

    /* a flipped byte in the signature or the claims fails */
    size_t len = strlen(token);
    token[len - 3] = token[len - 3] == 'A' ? 'B' : 'A';
    assert_true(core_jws_parse(token, 8192, &j, &why));
    assert_false(core_jws_verify(&j, k, alg));
    core_jws_release(&j);

    free(pem);
    free(token);
    json_decref(h);
    json_decref(c);
    EVP_PKEY_free(k);
}

static void test_sign_verify(void **state)
{
    (void)state;
    sign_and_check(CORE_ES256);
    sign_and_check(CORE_RS256);
}

static void test_alg_confusion(void **state)
{
    (void)state;
    EVP_PKEY *k = core_key_generate(CORE_ES256);
    /* "none", and HS256 keyed with whatever: both refused whatever the key */
    const char *forged[] = {
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    };
    for (size_t i = 0; i < 2; i++) {
        struct core_jws j;
        const char *why;
        if (core_jws_parse(forged[i], 8192, &j, &why)) {
            assert_false(core_jws_verify(&j, k, CORE_ES256));
            core_jws_release(&j);
        }
    }
    enum core_alg a;
    assert_false(core_alg_parse("none", &a));
    assert_false(core_alg_parse("HS256", &a));
    assert_false(core_alg_parse("es256", &a));
    EVP_PKEY_free(k);
}

static void test_parse_defects(void **state)
{
    (void)state;
    struct core_jws j;
    const char *why;
    const char *bad[] = {"",        "a.b",      "a.b.c.d",    "!!!.e30.",
                         "e30.e30", "W10.e30.", "e30.e30.!!", "eyJhIjoxLCJhIjoyfQ.e30."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (core_jws_parse(bad[i], 8192, &j, &why))
            fail_msg("\"%s\" should not parse", bad[i]);
    }
    char *big = xmalloc(10000);
    memset(big, 'a', 9999);
    big[9999] = '\0';
    assert_false(core_jws_parse(big, 8192, &j, &why));
    free(big);

    /* RFC 7515 §4.1.11: a well-signed token with crit (here b64 of RFC 7797,
     * then a registered claim name, then an empty list) is refused: the
     * hub understands no extension */
    EVP_PKEY *k = core_key_generate(CORE_ES256);
    const char *crits[] = {"[\"b64\"]", "[\"exp\"]", "[]"};
    for (size_t i = 0; i < sizeof crits / sizeof crits[0]; i++) {
        json_t *h = json_pack("{s:s, s:s, s:s, s:o, s:b}", "typ", "at+jwt", "alg", "ES256", "kid",
                              "k1", "crit", json_loads(crits[i], 0, NULL), "b64", 1);
        json_t *c = json_pack("{s:s}", "sub", "client-1");
        char *token = core_jws_sign(k, CORE_ES256, h, c);
        why = NULL;
        assert_false(core_jws_parse(token, 8192, &j, &why));
        assert_non_null(strstr(why, "crit"));
        free(token);
        json_decref(h);
        json_decref(c);
    }
    /* the same without crit parses and verifies */
    json_t *h = json_pack("{s:s, s:s, s:s}", "typ", "at+jwt", "alg", "ES256", "kid", "k1");
    json_t *c = json_pack("{s:s}", "sub", "client-1");
    char *token = core_jws_sign(k, CORE_ES256, h, c);
    assert_true(core_jws_parse(token, 8192, &j, &why));
    assert_true(core_jws_verify(&j, k, CORE_ES256));
    core_jws_release(&j);
    free(token);
    json_decref(h);
    json_decref(c);
    EVP_PKEY_free(k);
}

static void test_jwk_round_trip(void **state)
{
    (void)state;
    for (int alg = 0; alg < CORE_ALG__COUNT; alg++) {
        EVP_PKEY *k = core_key_generate((enum core_alg)alg);
        json_t *jwk = core_jwk_public(k);
        assert_non_null(jwk);
        assert_null(json_object_get(jwk, "d"));
        const char *why = NULL;
        EVP_PKEY *pub = core_jwk_import(jwk, &why);
        assert_non_null(pub);
        assert_int_equal(EVP_PKEY_eq(k, pub), 1);
        char *t1 = core_jwk_thumbprint(jwk);
        assert_int_equal(strlen(t1), 43);
        free(t1);
        size_t len;
        char *pem = core_key_to_pem(k, &len);
        EVP_PKEY *back = core_key_from_pem(pem, len);
        assert_int_equal(EVP_PKEY_eq(k, back), 1);
        free(pem);
        EVP_PKEY_free(back);
        EVP_PKEY_free(pub);
        json_decref(jwk);
        EVP_PKEY_free(k);
    }
    /* RFC 7638 §3.1 example thumbprint */
    json_t *rsa = json_pack(
        "{s:s, s:s, s:s}", "kty", "RSA", "e", "AQAB", "n",
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
        "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_"
        "FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4v"
        "MQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw");
    char *t = core_jwk_thumbprint(rsa);
    assert_string_equal(t, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    free(t);
    json_decref(rsa);
}

static void test_jwk_refusals(void **state)
{
    (void)state;
    const char *why;
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-384", "x", "AA", "y", "AA");
    assert_null(core_jwk_import(j, &why));
    json_decref(j);
    /* a point that is not on the curve */
    j = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x",
                  "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "y",
                  "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_null(core_jwk_import(j, &why));
    json_decref(j);
    /* a private key */
    EVP_PKEY *k = core_key_generate(CORE_ES256);
    j = core_jwk_public(k);
    json_object_set_new(j, "d", json_string("AAAA"));
    assert_null(core_jwk_import(j, &why));
    json_decref(j);
    EVP_PKEY_free(k);
    /* a weak RSA key */
    j = json_pack("{s:s, s:s, s:s}", "kty", "RSA", "e", "AQAB", "n", "AQAB");
    assert_null(core_jwk_import(j, &why));
    json_decref(j);
    j = json_pack("{s:s}", "kty", "oct");
    assert_null(core_jwk_import(j, &why));
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),         cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_alg_confusion),  cmocka_unit_test(test_parse_defects),
        cmocka_unit_test(test_jwk_round_trip), cmocka_unit_test(test_jwk_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
