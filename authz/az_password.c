/* Residents' password hashes: scrypt through OpenSSL's EVP_KDF, stored as
 * "$scrypt$ln=L,r=R,p=P$<salt>$<hash>" (standard base64 without padding, a
 * 16-byte salt and a 32-byte hash), the parameters from RENKEI_SCRYPT. */
#include <pthread.h>
#include <semaphore.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "authz/az_resident.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/log.h"

#define SALT_LEN   16
#define HASH_LEN   32
#define SALT_B64   22 /* characters of 16 bytes without padding */
#define HASH_B64   43 /* of 32 bytes */
#define PREFIX     "$scrypt$"
#define STORED_MAX 128

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 of len bytes without padding into out (4 * len / 3 + 2
 * bytes at least); returns the characters written. */
static size_t b64_nopad(const unsigned char *in, size_t len, char *out)
{
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = b64_alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = b64_alphabet[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return o;
}

static int b64_value(char c)
{
    const char *p = c ? strchr(b64_alphabet, c) : NULL;
    return p ? (int)(p - b64_alphabet) : -1;
}

/* Decodes exactly n characters into exactly want bytes; the unused low bits
 * of the last character must be zero, so one byte string has one spelling. */
static bool b64_nopad_decode(const char *s, size_t n, unsigned char *out, size_t want)
{
    if (n != (want * 8 + 5) / 6)
        return false;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(s[i]);
        if (v < 0)
            return false;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return o == want && (acc & ((1u << bits) - 1)) == 0;
}

/* The parameters new hashes get: RENKEI_SCRYPT, or its default when the
 * configuration was not loaded (a test that calls in directly). */
static void configured(int *ln, int *r, int *p)
{
    if (core_cfg.scrypt_ln) {
        *ln = core_cfg.scrypt_ln;
        *r = core_cfg.scrypt_r;
        *p = core_cfg.scrypt_p;
        return;
    }
    if (!core_config_scrypt_parse(CORE_SCRYPT_DEFAULT, strlen(CORE_SCRYPT_DEFAULT), ln, r, p))
        abort();
}

static EVP_KDF *kdf;
static pthread_once_t kdf_once = PTHREAD_ONCE_INIT;

/* At most one scrypt per core at a time: each holds 128 r N bytes (128 MiB
 * at the default), so a burst of sign-ins queues here instead of taking
 * the machine's memory; they would share the cores anyway. */
static sem_t running;

static void kdf_fetch(void)
{
    kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    sem_init(&running, 0, cores < 1 ? 1 : cores > 64 ? 64 : (unsigned)cores);
}

/* scrypt(password, salt, N = 2^ln, r, p) into out[HASH_LEN]; false only when
 * OpenSSL refuses (logged: our bug or a broken library). */
static bool scrypt(const char *password, size_t len, const unsigned char salt[SALT_LEN], int ln,
                   int r, int p, unsigned char out[HASH_LEN])
{
    pthread_once(&kdf_once, kdf_fetch);
    if (!kdf) {
        core_log_bug("OpenSSL has no SCRYPT KDF");
        return false;
    }
    uint64_t n = 1ULL << ln;
    uint32_t r32 = (uint32_t)r, p32 = (uint32_t)p;
    /* what OpenSSL allocates: 128 r p for B, 128 r (N + 2) for V and XY */
    uint64_t maxmem = 128ULL * (uint64_t)r * (n + (uint64_t)p + 2);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)password, len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, SALT_LEN),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r32),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p32),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
        OSSL_PARAM_construct_end(),
    };
    while (sem_wait(&running) != 0)
        ; /* EINTR */
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
    bool ok = ctx && EVP_KDF_derive(ctx, out, HASH_LEN, params) == 1;
    EVP_KDF_CTX_free(ctx);
    sem_post(&running);
    if (!ok) {
        OPENSSL_cleanse(out, HASH_LEN);
        core_log_bug("scrypt ln=%d r=%d p=%d failed in OpenSSL", ln, r, p);
    }
    return ok;
}

static char *format(int ln, int r, int p, const unsigned char salt[SALT_LEN],
                    const unsigned char hash[HASH_LEN])
{
    char s[SALT_B64 + 2], h[HASH_B64 + 2];
    b64_nopad(salt, SALT_LEN, s);
    b64_nopad(hash, HASH_LEN, h);
    char *out = xasprintf(PREFIX "ln=%d,r=%d,p=%d$%s$%s", ln, r, p, s, h);
    OPENSSL_cleanse(h, sizeof h);
    return out;
}

char *az_password_hash(const char *password, size_t len)
{
    int ln, r, p;
    configured(&ln, &r, &p);
    unsigned char salt[SALT_LEN], hash[HASH_LEN];
    core_random(salt, sizeof salt);
    if (!scrypt(password, len, salt, ln, r, p, hash))
        abort(); /* a KDF that worked at start-up does not stop working */
    char *out = format(ln, r, p, salt, hash);
    OPENSSL_cleanse(hash, sizeof hash);
    return out;
}

/* Splits a stored hash; false unless it is exactly our format with
 * parameters within RENKEI_SCRYPT's bounds (so a row cannot make us spend
 * more than the largest cost an operator may configure). */
static bool parse(const char *stored, int *ln, int *r, int *p, unsigned char salt[SALT_LEN],
                  unsigned char hash[HASH_LEN])
{
    size_t plen = strlen(PREFIX);
    if (!stored || strnlen(stored, STORED_MAX + 1) > STORED_MAX ||
        strncmp(stored, PREFIX, plen) != 0)
        return false;
    const char *params = stored + plen;
    const char *d1 = strchr(params, '$');
    if (!d1 || !core_config_scrypt_parse(params, (size_t)(d1 - params), ln, r, p))
        return false;
    const char *s = d1 + 1;
    const char *d2 = strchr(s, '$');
    if (!d2 || !b64_nopad_decode(s, (size_t)(d2 - s), salt, SALT_LEN))
        return false;
    const char *h = d2 + 1;
    return b64_nopad_decode(h, strlen(h), hash, HASH_LEN);
}

bool az_password_verify(const char *password, size_t len, const char *stored, bool *rehash)
{
    int ln, r, p, want_ln, want_r, want_p;
    unsigned char salt[SALT_LEN], hash[HASH_LEN], got[HASH_LEN];
    bool ok = false;
    if (rehash)
        *rehash = false;
    if (!parse(stored, &ln, &r, &p, salt, hash))
        goto cleanup;
    if (!scrypt(password, len, salt, ln, r, p, got))
        goto cleanup;
    ok = CRYPTO_memcmp(got, hash, HASH_LEN) == 0;
    configured(&want_ln, &want_r, &want_p);
    if (ok && rehash)
        *rehash = ln < want_ln || r < want_r || p < want_p;
cleanup:
    OPENSSL_cleanse(hash, sizeof hash);
    OPENSSL_cleanse(got, sizeof got);
    return ok;
}

/* What sign-in verifies an unknown login against: the configured
 * parameters, a random salt and a hash no password gives (all zero bytes
 * has no known preimage), so it costs what a real verification costs. */
char *az_password_dummy(void)
{
    int ln, r, p;
    configured(&ln, &r, &p);
    unsigned char salt[SALT_LEN], hash[HASH_LEN] = {0};
    core_random(salt, sizeof salt);
    return format(ln, r, p, salt, hash);
}
