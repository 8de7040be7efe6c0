#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/decoder.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "core/jose.h"
#include "core/crypto.h"
#include "core/json.h"
#include "core/log.h"

#define EC_COORD 32 /* P-256 */

const char *core_alg_name(enum core_alg a)
{
    return a == CORE_RS256 ? "RS256" : "ES256";
}

bool core_alg_parse(const char *s, enum core_alg *out)
{
    if (s && strcmp(s, "ES256") == 0) {
        *out = CORE_ES256;
        return true;
    }
    if (s && strcmp(s, "RS256") == 0) {
        *out = CORE_RS256;
        return true;
    }
    return false;
}

EVP_PKEY *core_key_generate(enum core_alg alg)
{
    EVP_PKEY *k = alg == CORE_ES256 ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
    if (!k) {
        core_log_bug("key generation failed");
        abort();
    }
    return k;
}

static char *bn_b64url(const BIGNUM *bn, int width)
{
    int n = width ? width : BN_num_bytes(bn);
    unsigned char *buf = xmalloc((size_t)n + 1);
    if (BN_bn2binpad(bn, buf, n) != n) {
        free(buf);
        return NULL;
    }
    char *out = core_b64url_encode(buf, (size_t)n);
    free(buf);
    return out;
}

json_t *core_jwk_public(EVP_PKEY *key)
{
    json_t *jwk = NULL;
    BIGNUM *a = NULL, *b = NULL;
    if (EVP_PKEY_is_a(key, "EC")) {
        if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &a) ||
            !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &b))
            goto cleanup;
        char *x = bn_b64url(a, EC_COORD), *y = bn_b64url(b, EC_COORD);
        if (x && y)
            jwk = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", x, "y", y);
        free(x);
        free(y);
    } else if (EVP_PKEY_is_a(key, "RSA")) {
        if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &a) ||
            !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &b))
            goto cleanup;
        char *n = bn_b64url(a, 0), *e = bn_b64url(b, 0);
        if (n && e)
            jwk = json_pack("{s:s, s:s, s:s}", "kty", "RSA", "n", n, "e", e);
        free(n);
        free(e);
    }
cleanup:
    BN_free(a);
    BN_free(b);
    return jwk;
}

char *core_jwk_thumbprint(json_t *jwk)
{
    /* RFC 7638 §3.2: the required members only, in lexicographic order, no
     * whitespace */
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    json_t *canon;
    if (kty && strcmp(kty, "EC") == 0)
        canon = json_pack("{s:O, s:O, s:O, s:O}", "crv", json_object_get(jwk, "crv"), "kty",
                          json_object_get(jwk, "kty"), "x", json_object_get(jwk, "x"), "y",
                          json_object_get(jwk, "y"));
    else
        canon = json_pack("{s:O, s:O, s:O}", "e", json_object_get(jwk, "e"), "kty",
                          json_object_get(jwk, "kty"), "n", json_object_get(jwk, "n"));
    if (!canon)
        return NULL;
    char *text = json_dumps(canon, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(canon);
    unsigned char d[32];
    core_sha256(text, strlen(text), d);
    free(text);
    return core_b64url_encode(d, sizeof d);
}

static BIGNUM *member_bn(json_t *jwk, const char *name, size_t exact, size_t max)
{
    const char *s = json_string_value(json_object_get(jwk, name));
    unsigned char *raw;
    size_t len;
    if (!s || !core_b64url_decode(s, strlen(s), &raw, &len))
        return NULL;
    BIGNUM *bn = NULL;
    if ((!exact || len == exact) && len > 0 && len <= max)
        bn = BN_bin2bn(raw, (int)len, NULL);
    free(raw);
    return bn;
}

EVP_PKEY *core_jwk_import(json_t *jwk, const char **why)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    if (!json_is_object(jwk) || !kty) {
        *why = "a JWK needs kty";
        return NULL;
    }
    if (json_object_get(jwk, "d") || json_object_get(jwk, "p") || json_object_get(jwk, "q")) {
        *why = "a JWK given to the hub must not hold a private key";
        return NULL;
    }
    EVP_PKEY *key = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    BIGNUM *a = NULL, *b = NULL;
    unsigned char point[1 + 2 * EC_COORD];
    if (strcmp(kty, "EC") == 0) {
        const char *crv = json_string_value(json_object_get(jwk, "crv"));
        if (!crv || strcmp(crv, "P-256") != 0) {
            *why = "only EC keys on P-256 are accepted";
            goto cleanup;
        }
        a = member_bn(jwk, "x", EC_COORD, EC_COORD);
        b = member_bn(jwk, "y", EC_COORD, EC_COORD);
        if (!a || !b) {
            *why = "an EC JWK needs x and y of 32 bytes each";
            goto cleanup;
        }
        point[0] = 0x04;
        BN_bn2binpad(a, point + 1, EC_COORD);
        BN_bn2binpad(b, point + 1 + EC_COORD, EC_COORD);
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point);
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    } else if (strcmp(kty, "RSA") == 0) {
        a = member_bn(jwk, "n", 0, 1024);
        b = member_bn(jwk, "e", 0, 8);
        if (!a || !b) {
            *why = "an RSA JWK needs n and e";
            goto cleanup;
        }
        if (BN_num_bits(a) < 2048) {
            *why = "RSA keys must have at least 2048 bits";
            goto cleanup;
        }
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, a);
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, b);
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    } else {
        *why = "kty must be EC or RSA";
        goto cleanup;
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    if (!ctx || !params || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        *why = "the JWK is not a valid public key";
        key = NULL;
        goto cleanup;
    }
    if (strcmp(kty, "EC") == 0) {
        /* the point must lie on the curve (invalid-curve attacks) */
        EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
        bool ok = check && EVP_PKEY_public_check(check) == 1;
        EVP_PKEY_CTX_free(check);
        if (!ok) {
            *why = "the EC point is not on P-256";
            EVP_PKEY_free(key);
            key = NULL;
        }
    }
cleanup:
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_free(a);
    BN_free(b);
    return key;
}

char *core_key_to_pem(EVP_PKEY *key, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (bio && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1) {
        char *data;
        long n = BIO_get_mem_data(bio, &data);
        out = xmalloc((size_t)n + 1);
        memcpy(out, data, (size_t)n);
        out[n] = '\0';
        *len = (size_t)n;
    }
    BIO_free(bio);
    if (!out) {
        core_log_bug("cannot write a private key");
        abort();
    }
    return out;
}

EVP_PKEY *core_key_from_pem(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    return key;
}

void core_key_decoders_fetch(void)
{
    EVP_PKEY *key = NULL;
    OSSL_DECODER_CTX_free(
        OSSL_DECODER_CTX_new_for_pkey(&key, "PEM", NULL, NULL, EVP_PKEY_KEYPAIR, NULL, NULL));
    EVP_PKEY_free(key);
}

/* ---- keys sealed with the master secret ---- */

void core_sealed_key_new(enum core_alg alg, const char *label, const char *kid_prefix,
                         struct core_sealed_key *out)
{
    EVP_PKEY *k = core_key_generate(alg);
    json_t *jwk = core_jwk_public(k);
    char *thumb = core_jwk_thumbprint(jwk);
    out->kid = xasprintf("%s%s", kid_prefix, thumb);
    out->jwk = json_dumps(jwk, JSON_COMPACT);
    size_t pem_len;
    char *pem = core_key_to_pem(k, &pem_len);
    core_seal(label, out->kid, strlen(out->kid), pem, pem_len, &out->sealed, &out->sealed_len);
    OPENSSL_cleanse(pem, pem_len);
    free(pem);
    free(thumb);
    json_decref(jwk);
    EVP_PKEY_free(k);
}

void core_sealed_key_release(struct core_sealed_key *k)
{
    free(k->kid);
    free(k->jwk);
    free(k->sealed);
    memset(k, 0, sizeof *k);
}

static EVP_PKEY *sealed_key_decode(const char *label, const char *what, const char *kid,
                                   const void *sealed, size_t len);

/* Keys opened so far, by what was opened: a reload (every module reloads
 * its keys when the change feed reconnects, as at start) finds the same
 * sealed bytes and gets the same key back instead of decoding it again,
 * which OpenSSL makes costly (about a millisecond a key). */
#define OPENED_MAX 32
static struct {
    unsigned char id[32]; /* SHA-256 of label, kid and the sealed bytes */
    EVP_PKEY *key;
} opened[OPENED_MAX];
static size_t opened_next;
static pthread_mutex_t opened_mu = PTHREAD_MUTEX_INITIALIZER;

static void opened_id(const char *label, const char *kid, const void *sealed, size_t len,
                      unsigned char id[32])
{
    size_t ll = strlen(label), kl = strlen(kid);
    unsigned char *buf = xmalloc(ll + 1 + kl + 1 + len);
    memcpy(buf, label, ll + 1);
    memcpy(buf + ll + 1, kid, kl + 1);
    memcpy(buf + ll + 1 + kl + 1, sealed, len);
    core_sha256(buf, ll + 1 + kl + 1 + len, id);
    free(buf);
}

void core_sealed_keys_forget(void)
{
    pthread_mutex_lock(&opened_mu);
    for (size_t i = 0; i < OPENED_MAX; i++) {
        EVP_PKEY_free(opened[i].key);
        opened[i].key = NULL;
    }
    pthread_mutex_unlock(&opened_mu);
}

EVP_PKEY *core_sealed_key_open(const char *label, const char *what, const char *kid,
                               const void *sealed, size_t len)
{
    unsigned char id[32];
    opened_id(label, kid, sealed, len, id);
    pthread_mutex_lock(&opened_mu);
    for (size_t i = 0; i < OPENED_MAX; i++) {
        if (opened[i].key && memcmp(opened[i].id, id, sizeof id) == 0) {
            EVP_PKEY *k = opened[i].key;
            EVP_PKEY_up_ref(k);
            pthread_mutex_unlock(&opened_mu);
            return k;
        }
    }
    pthread_mutex_unlock(&opened_mu);
    EVP_PKEY *k = sealed_key_decode(label, what, kid, sealed, len);
    if (k) {
        pthread_mutex_lock(&opened_mu);
        size_t i = opened_next++ % OPENED_MAX;
        EVP_PKEY_free(opened[i].key);
        memcpy(opened[i].id, id, sizeof id);
        opened[i].key = k;
        EVP_PKEY_up_ref(k);
        pthread_mutex_unlock(&opened_mu);
    }
    return k;
}

static EVP_PKEY *sealed_key_decode(const char *label, const char *what, const char *kid,
                                   const void *sealed, size_t len)
{
    unsigned char *pem = NULL;
    size_t pem_len = 0;
    if (!core_open(label, kid, strlen(kid), sealed, len, &pem, &pem_len)) {
        core_logf(CORE_LOG_ERROR,
                  "%s %s cannot be opened: was the master secret (RENKEI_SECRET_FILE) changed, "
                  "or the row altered?",
                  what, kid);
        return NULL;
    }
    EVP_PKEY *k = core_key_from_pem((char *)pem, pem_len);
    OPENSSL_cleanse(pem, pem_len);
    free(pem);
    return k;
}

/* ---- JWS ---- */

static char *json_b64url(json_t *j)
{
    size_t len = 0;
    char *text = core_json_dump(j, 0, &len);
    if (!text) {
        core_log_bug("a JWS part cannot be serialized");
        abort();
    }
    char *out = core_b64url_encode(text, len);
    free(text);
    return out;
}

/* Each thread keeps a signing context for the key it last signed with:
 * setting one up (provider lookups, key checks) costs about a third of
 * the signature itself. The context holds a reference to its key, so a
 * rotated-out key cannot be freed and its address reused under it. */
static _Thread_local struct {
    EVP_PKEY *key;
    EVP_PKEY_CTX *ctx;
} es_sign;

static void es_sign_release(void)
{
    EVP_PKEY_CTX_free(es_sign.ctx);
    es_sign.ctx = NULL;
    es_sign.key = NULL;
}

/* A thread's context is freed when the thread ends. */
static pthread_key_t es_sign_key;
static pthread_once_t es_sign_once = PTHREAD_ONCE_INIT;

static void es_sign_thread_end(void *unused)
{
    (void)unused;
    es_sign_release();
}

static void es_sign_key_make(void)
{
    if (pthread_key_create(&es_sign_key, es_sign_thread_end) != 0)
        abort();
}

void core_es256_sign(EVP_PKEY *key, const void *data, size_t len, unsigned char sig[64])
{
    unsigned char der[128], digest[32];
    size_t der_len = sizeof der;
    if (es_sign.key != key) {
        pthread_once(&es_sign_once, es_sign_key_make);
        pthread_setspecific(es_sign_key, &es_sign); /* any non-NULL value: the destructor runs */
        es_sign_release();
        es_sign.ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
        if (es_sign.ctx && EVP_PKEY_sign_init(es_sign.ctx) == 1)
            es_sign.key = key;
        else
            es_sign_release();
    }
    core_sha256(data, len, digest);
    bool ok = es_sign.ctx && EVP_PKEY_sign(es_sign.ctx, der, &der_len, digest, sizeof digest) == 1;
    /* r || s, 32 bytes each, not DER */
    const unsigned char *p = der;
    ECDSA_SIG *es = ok ? d2i_ECDSA_SIG(NULL, &p, (long)der_len) : NULL;
    if (!es) {
        core_log_bug("ES256 signing failed");
        abort();
    }
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    BN_bn2binpad(r, sig, EC_COORD);
    BN_bn2binpad(s, sig + EC_COORD, EC_COORD);
    ECDSA_SIG_free(es);
}

bool core_es256_verify(EVP_PKEY *key, const void *data, size_t len, const unsigned char *sig,
                       size_t sig_len)
{
    if (sig_len != 2 * EC_COORD || !EVP_PKEY_is_a(key, "EC"))
        return false;
    unsigned char der[128];
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, EC_COORD, NULL);
    BIGNUM *s = BN_bin2bn(sig + EC_COORD, EC_COORD, NULL);
    ECDSA_SIG_set0(es, r, s);
    unsigned char *p = der;
    int n = i2d_ECDSA_SIG(es, &p);
    ECDSA_SIG_free(es);
    if (n <= 0)
        return false;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
              EVP_DigestVerify(md, der, (size_t)n, data, len) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

char *core_jws_sign(EVP_PKEY *key, enum core_alg alg, json_t *header, json_t *claims)
{
    char *h = json_b64url(header), *c = json_b64url(claims);
    size_t hl = strlen(h), cl = strlen(c);
    char *input = xmalloc(hl + 1 + cl + 1);
    memcpy(input, h, hl);
    input[hl] = '.';
    memcpy(input + hl + 1, c, cl + 1);
    free(h);
    free(c);

    unsigned char raw[2 * EC_COORD], der[512];
    const unsigned char *sig = raw;
    size_t sig_len = sizeof raw;
    if (alg == CORE_ES256) {
        core_es256_sign(key, input, hl + 1 + cl, raw);
    } else {
        sig_len = sizeof der;
        sig = der;
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        bool ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
                  EVP_DigestSign(md, der, &sig_len, (unsigned char *)input, hl + 1 + cl) == 1;
        EVP_MD_CTX_free(md);
        if (!ok) {
            core_log_bug("JWS signing failed");
            abort();
        }
    }
    char *s64 = core_b64url_encode(sig, sig_len);
    size_t il = hl + 1 + cl, sl = strlen(s64);
    char *token = xmalloc(il + 1 + sl + 1);
    memcpy(token, input, il);
    token[il] = '.';
    memcpy(token + il + 1, s64, sl + 1);
    free(input);
    free(s64);
    return token;
}

static json_t *decode_object(const char *p, size_t len)
{
    unsigned char *raw;
    size_t n;
    if (!core_b64url_decode(p, len, &raw, &n))
        return NULL;
    json_t *j = NULL;
    if (core_json_depth_ok((char *)raw, n, 8))
        j = json_loadb((char *)raw, n, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

bool core_jws_parse(const char *token, size_t max_len, struct core_jws *out, const char **why)
{
    memset(out, 0, sizeof *out);
    size_t len = strnlen(token, max_len + 1);
    if (len > max_len) {
        *why = "the token is too long";
        return false;
    }
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token))) {
        *why = "the token is not a compact JWS (three parts)";
        return false;
    }
    out->header = decode_object(token, (size_t)(d1 - token));
    out->claims = decode_object(d1 + 1, (size_t)(d2 - d1 - 1));
    if (!out->header || !out->claims ||
        !core_b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - token), &out->sig, &out->sig_len)) {
        core_jws_release(out);
        *why = "the token's parts are not base64url JSON objects";
        return false;
    }
    /* RFC 7515 §4.1.11: a recipient must refuse a JWS whose crit names an
     * extension it does not understand, and this one understands none (not
     * b64 of RFC 7797 either: its signing input would be another) */
    if (json_object_get(out->header, "crit")) {
        core_jws_release(out);
        *why = "the token has critical header parameters (crit) this server does not understand";
        return false;
    }
    out->signing_input = token;
    out->signing_input_len = (size_t)(d2 - token);
    return true;
}

void core_jws_release(struct core_jws *j)
{
    json_decref(j->header);
    json_decref(j->claims);
    free(j->sig);
    memset(j, 0, sizeof *j);
}

bool core_jws_verify(const struct core_jws *j, EVP_PKEY *key, enum core_alg alg)
{
    const char *halg = json_string_value(json_object_get(j->header, "alg"));
    enum core_alg hdr;
    if (!core_alg_parse(halg, &hdr) || hdr != alg)
        return false;
    if (alg == CORE_ES256 ? !EVP_PKEY_is_a(key, "EC") : !EVP_PKEY_is_a(key, "RSA"))
        return false;
    if (alg == CORE_ES256)
        return core_es256_verify(key, j->signing_input, j->signing_input_len, j->sig, j->sig_len);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
              EVP_DigestVerify(md, j->sig, j->sig_len, (const unsigned char *)j->signing_input,
                               j->signing_input_len) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

/* ---- keys held in files (RENKEI_SIGNING_KEY_FILE) ---- */

struct file_key {
    EVP_PKEY *key;
    char *kid;
    char *path;
};
/* the token-signing keys by algorithm, and the audit checkpoint key */
static struct file_key file_keys[CORE_ALG__COUNT], audit_file_key;

/* A passphrase is never asked for: an encrypted key is refused. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static bool file_key_alg(EVP_PKEY *k, enum core_alg *alg, const char **why)
{
    if (EVP_PKEY_is_a(k, "EC")) {
        char group[64];
        if (!EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                            NULL) ||
            strcmp(group, "prime256v1") != 0) {
            *why = "holds an EC key of another curve than P-256 (ES256)";
            return false;
        }
        *alg = CORE_ES256;
        return true;
    }
    if (EVP_PKEY_is_a(k, "RSA")) {
        if (EVP_PKEY_get_bits(k) < 2048) {
            *why = "holds an RSA key of fewer than 2048 bits";
            return false;
        }
        *alg = CORE_RS256;
        return true;
    }
    *why = "holds a key of another type than EC P-256 or RSA";
    return false;
}

/* Reads one PEM PKCS#8 private key file of var; *alg its algorithm. */
static EVP_PKEY *file_key_read(const char *var, const char *path, enum core_alg *alg, char **err)
{
    unsigned char *pem = NULL;
    size_t len = 0;
    if (!core_private_file_read(var, path, 64, 16384, &pem, &len, err))
        return NULL;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    bool pkcs8 = strstr((char *)pem, "-----BEGIN PRIVATE KEY-----") != NULL;
    core_private_file_free(pem, len);
    ERR_clear_error();
    const char *why = NULL;
    if (!k)
        why = "holds no private key in PEM (an encrypted key is refused: the hub asks no "
              "passphrase)";
    else if (!pkcs8)
        why = "is not PKCS#8 (\"BEGIN PRIVATE KEY\"): convert it with openssl pkcs8 -topk8 "
              "-nocrypt";
    else
        file_key_alg(k, alg, &why);
    if (why) {
        *err = xasprintf("%s: \"%s\" %s", var, path, why);
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}

static void file_key_set(struct file_key *fk, EVP_PKEY *k, const char *path)
{
    json_t *jwk = core_jwk_public(k);
    fk->kid = core_jwk_thumbprint(jwk);
    json_decref(jwk);
    fk->key = k;
    fk->path = xstrdup(path);
}

static void file_key_clear(struct file_key *fk)
{
    EVP_PKEY_free(fk->key);
    free(fk->kid);
    free(fk->path);
    memset(fk, 0, sizeof *fk);
}

static bool file_key_load(const char *path, char **err)
{
    enum core_alg alg = CORE_ES256;
    EVP_PKEY *k = file_key_read("RENKEI_SIGNING_KEY_FILE", path, &alg, err);
    if (!k)
        return false;
    if (file_keys[alg].key) {
        *err = xasprintf("RENKEI_SIGNING_KEY_FILE: \"%s\" is a second %s key", path,
                         core_alg_name(alg));
        EVP_PKEY_free(k);
        return false;
    }
    file_key_set(&file_keys[alg], k, path);
    return true;
}

bool core_audit_file_key_load(const char *path, char **err)
{
    file_key_clear(&audit_file_key);
    enum core_alg alg = CORE_ES256;
    EVP_PKEY *k = file_key_read("RENKEI_AUDIT_KEY_FILE", path, &alg, err);
    if (k && alg != CORE_ES256) {
        *err = xasprintf("RENKEI_AUDIT_KEY_FILE: \"%s\" holds an RSA key: checkpoints are "
                         "signed with EC P-256 (ES256)",
                         path);
        EVP_PKEY_free(k);
        k = NULL;
    }
    if (!k)
        return false;
    file_key_set(&audit_file_key, k, path);
    return true;
}

EVP_PKEY *core_audit_file_key(const char **thumbprint, const char **path)
{
    if (!audit_file_key.key)
        return NULL;
    if (thumbprint)
        *thumbprint = audit_file_key.kid;
    if (path)
        *path = audit_file_key.path;
    return audit_file_key.key;
}

bool core_file_keys_load(const char *list, char **err)
{
    core_file_keys_release();
    char *copy = xstrdup(list);
    bool ok = true;
    size_t n = 0;
    char *save = NULL;
    for (char *p = strtok_r(copy, ",", &save); p && ok; p = strtok_r(NULL, ",", &save)) {
        while (*p == ' ')
            p++;
        size_t l = strlen(p);
        while (l > 0 && p[l - 1] == ' ')
            p[--l] = '\0';
        if (!*p)
            continue;
        if (++n > CORE_ALG__COUNT) {
            *err = xasprintf("RENKEI_SIGNING_KEY_FILE: names more than %d files (one ES256 key, "
                             "one RS256 key)",
                             CORE_ALG__COUNT);
            ok = false;
        } else {
            ok = file_key_load(p, err);
        }
    }
    if (ok && n == 0) {
        *err = xstrdup("RENKEI_SIGNING_KEY_FILE: names no file");
        ok = false;
    }
    free(copy);
    if (!ok)
        core_file_keys_release();
    return ok;
}

EVP_PKEY *core_file_key(enum core_alg alg, const char **kid, const char **path)
{
    if (alg < 0 || alg >= CORE_ALG__COUNT || !file_keys[alg].key)
        return NULL;
    if (kid)
        *kid = file_keys[alg].kid;
    if (path)
        *path = file_keys[alg].path;
    return file_keys[alg].key;
}

void core_file_keys_release(void)
{
    for (int a = 0; a < CORE_ALG__COUNT; a++)
        file_key_clear(&file_keys[a]);
    file_key_clear(&audit_file_key);
}

/* ---- rows of keys held in other nodes' files ---- */

void core_file_row_mac(const char *label, const char *msg, unsigned char mac[32])
{
    unsigned char k[32];
    core_secret_derive(label, k, sizeof k);
    core_hmac_sha256(k, msg, strlen(msg), mac);
    OPENSSL_cleanse(k, sizeof k);
}

EVP_PKEY *core_file_row_key(const char *jwk_text, const void *mac, size_t mac_len,
                            const char *thumb, const char *type, const char *label, const char *msg,
                            const char **why)
{
    *why = NULL;
    json_t *jwk = json_loads(jwk_text, 0, NULL);
    EVP_PKEY *pub = jwk ? core_jwk_import(jwk, why) : NULL;
    json_decref(jwk);
    char *actual = NULL;
    if (pub) {
        json_t *canon = core_jwk_public(pub);
        actual = canon ? core_jwk_thumbprint(canon) : NULL;
        json_decref(canon);
    }
    unsigned char want[32];
    core_file_row_mac(label, msg, want);
    if (!pub)
        *why = *why ? *why : "its public JWK is not JSON";
    else if (!actual || strcmp(actual, thumb) != 0)
        *why = "its kid does not name the thumbprint of its public key";
    else if (!EVP_PKEY_is_a(pub, type))
        *why = "its key is not of its algorithm's type";
    else if (!mac || mac_len != sizeof want || CRYPTO_memcmp(mac, want, sizeof want) != 0)
        *why = "its MAC does not verify (the row was not written by a hub of this installation)";
    free(actual);
    if (*why) {
        EVP_PKEY_free(pub);
        return NULL;
    }
    return pub;
}
