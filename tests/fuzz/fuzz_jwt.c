/* A bearer token as the hub reads one: core_jws_parse, then signature checks
 * under keys made here (that nobody else holds, so no input may verify), with
 * either algorithm against either key type (RFC 8725 §2.1, §3.1: the header's
 * alg never picks the check). The parsed claims, signed again with our key,
 * must verify, and stop verifying once one byte of the token is changed or
 * the other algorithm is asked for. */
#include <openssl/evp.h>

#include "core/jose.h"
#include "tests/fuzz/fuzz.h"

#define MAX_TOKEN 8192

static EVP_PKEY *es, *rs;

static void keys(void)
{
    if (!es) {
        es = core_key_generate(CORE_ES256);
        rs = core_key_generate(CORE_RS256);
        if (!es || !rs)
            fuzz_fail("no keys");
    }
}

static void no_forgery(const struct core_jws *j)
{
    if (core_jws_verify(j, es, CORE_ES256) || core_jws_verify(j, rs, CORE_RS256) ||
        core_jws_verify(j, es, CORE_RS256) || core_jws_verify(j, rs, CORE_ES256))
        fuzz_fail("an input verified under a key made by this process");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * MAX_TOKEN)
        return 0;
    keys();
    char *token = fuzz_str(data, size);
    struct core_jws j;
    const char *why = NULL;
    if (!core_jws_parse(token, MAX_TOKEN, &j, &why)) {
        if (!why || !*why)
            fuzz_fail("refused without a reason");
        free(token);
        return 0;
    }
    if (!json_is_object(j.header) || !json_is_object(j.claims))
        fuzz_fail("parsed parts that are not objects");
    if (j.signing_input != token || j.signing_input_len >= strlen(token) ||
        token[j.signing_input_len] != '.')
        fuzz_fail("the signing input is not the token's first two parts");
    no_forgery(&j);

    /* the same claims, signed by us */
    enum core_alg alg = size % 2 ? CORE_ES256 : CORE_RS256;
    EVP_PKEY *key = alg == CORE_ES256 ? es : rs;
    json_t *h = json_pack("{s:s, s:s}", "typ", "at+jwt", "alg", core_alg_name(alg));
    char *signed_tok = core_jws_sign(key, alg, h, j.claims);
    json_decref(h);
    core_jws_release(&j);
    free(token);
    if (!signed_tok)
        fuzz_fail("parsed claims could not be signed");
    struct core_jws s;
    if (!core_jws_parse(signed_tok, 1 << 20, &s, &why))
        fuzz_fail("a token we signed does not parse: %s", why);
    if (!core_jws_verify(&s, key, alg))
        fuzz_fail("a token we signed does not verify");
    if (core_jws_verify(&s, alg == CORE_ES256 ? rs : es,
                        alg == CORE_ES256 ? CORE_RS256 : CORE_ES256))
        fuzz_fail("a token verified under the other algorithm");
    core_jws_release(&s);

    /* one byte changed anywhere: it must not verify (or not parse) */
    size_t n = strlen(signed_tok);
    size_t at = size ? data[0] * 257u % n : 0;
    char was = signed_tok[at];
    signed_tok[at] = was == 'A' ? 'B' : 'A';
    if (core_jws_parse(signed_tok, 1 << 20, &s, &why)) {
        /* the signature covers the first two parts as text; only the last
         * character of the signature's base64url may carry unused bits, so
         * a change there can decode to the same signature */
        bool same_bytes = at == n - 1;
        if (core_jws_verify(&s, key, alg) && !same_bytes)
            fuzz_fail("a token verified with byte %zu changed ('%c' for '%c')", at, signed_tok[at],
                      was);
        core_jws_release(&s);
    }
    free(signed_tok);
    return 0;
}
