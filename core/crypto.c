#include <pthread.h>
#include <stdatomic.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "core/crypto.h"
#include "core/jose.h"
#include "core/log.h"

#define SECRET_MIN 32
#define SECRET_MAX 4096

static unsigned char *master;
static size_t master_len;

static void rand_bytes(void *buf, size_t len)
{
    if (RAND_bytes(buf, (int)len) != 1) {
        core_log_bug("RAND_bytes failed");
        abort();
    }
}

/* Small draws (ids, nonces, the jti of each token) come from a buffer of
 * the CSPRNG's output per thread: each RAND_bytes call costs a getpid()
 * system call (OpenSSL's fork check) and a DRBG round, a tenth of a token
 * request. Bytes handed out are wiped from the buffer. A child of fork()
 * must not reuse its parent's bytes: only the forking thread lives on in the
 * child, and its buffer is dropped there. */
#define RAND_BUF   512
#define RAND_SMALL 64
static _Thread_local struct {
    unsigned char b[RAND_BUF];
    size_t left; /* unused bytes, at the end of b */
} rb;
static pthread_once_t rand_once = PTHREAD_ONCE_INIT;

static void rand_forked(void)
{
    OPENSSL_cleanse(rb.b, sizeof rb.b);
    rb.left = 0;
}

static void rand_once_init(void)
{
    pthread_atfork(NULL, NULL, rand_forked);
}

void core_random(void *buf, size_t len)
{
    if (len > RAND_SMALL) {
        rand_bytes(buf, len);
        return;
    }
    if (rb.left < len) {
        pthread_once(&rand_once, rand_once_init);
        rand_bytes(rb.b, sizeof rb.b);
        rb.left = sizeof rb.b;
    }
    unsigned char *from = rb.b + sizeof rb.b - rb.left;
    memcpy(buf, from, len);
    OPENSSL_cleanse(from, len);
    rb.left -= len;
}

static unsigned char unique_prefix[8];
static atomic_ullong unique_counter;
static pthread_once_t unique_once = PTHREAD_ONCE_INIT;

static void unique_init(void)
{
    unsigned char r[16];
    core_random(r, sizeof r);
    memcpy(unique_prefix, r, sizeof unique_prefix);
    unsigned long long start;
    memcpy(&start, r + 8, sizeof start);
    atomic_store(&unique_counter, start >> 16); /* room before it wraps */
}

void core_unique_id(unsigned char out[16])
{
    pthread_once(&unique_once, unique_init);
    unsigned long long n = atomic_fetch_add(&unique_counter, 1);
    memcpy(out, unique_prefix, 8);
    for (int i = 0; i < 8; i++)
        out[8 + i] = (unsigned char)(n >> (56 - 8 * i));
}

void core_hex(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const char *alphabet, bool pad, const void *data, size_t len)
{
    const unsigned char *in = data;
    char *out = xmalloc((len + 2) / 3 * 4 + 1);
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0);
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        if (i + 1 < len)
            out[o++] = alphabet[(v >> 6) & 63];
        else if (pad)
            out[o++] = '=';
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

char *core_b64url_encode(const void *data, size_t len)
{
    return b64_encode(b64url_alphabet, false, data, len);
}

char *core_b64_encode(const void *data, size_t len)
{
    return b64_encode(b64_alphabet, true, data, len);
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

bool core_b64url_decode(const char *s, size_t len, unsigned char **out, size_t *out_len)
{
    if (len % 4 == 1)
        return false;
    unsigned char *buf = xmalloc(len / 4 * 3 + 3);
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(s[i]);
        if (v < 0) {
            free(buf);
            return false;
        }
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* the bits left over must be zero: otherwise two strings decode alike */
    if (acc & ((1u << bits) - 1)) {
        free(buf);
        return false;
    }
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return true;
}

bool core_b64_decode(const char *s, size_t len, unsigned char **out, size_t *out_len)
{
    if (len % 4 != 0)
        return false;
    size_t pad = 0;
    while (pad < 2 && len > pad && s[len - 1 - pad] == '=')
        pad++;
    char *t = xmalloc(len + 1);
    bool ok = true;
    for (size_t i = 0; i < len - pad; i++) {
        char c = s[i];
        if (c == '-' || c == '_' || c == '=')
            ok = false;
        t[i] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    /* padding only where the length needs it */
    size_t body = len - pad;
    ok = ok && (pad == 0 || body % 4 == 4 - pad);
    ok = ok && core_b64url_decode(t, body, out, out_len);
    free(t);
    return ok;
}

/* HMAC-SHA256 keeps a context per thread, set to SHA-256 once: the one-shot
 * HMAC() looks the MAC and the digest up by name on every call. */
static EVP_MAC *hmac_mac;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;
static pthread_key_t hmac_key;
static _Thread_local EVP_MAC_CTX *hmac_ctx;

static void hmac_thread_end(void *ctx)
{
    EVP_MAC_CTX_free(ctx);
    hmac_ctx = NULL; /* a later destructor on this thread makes a new one */
}

static void hmac_fetch(void)
{
    hmac_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!hmac_mac || pthread_key_create(&hmac_key, hmac_thread_end) != 0) {
        core_log_bug("HMAC is not available from OpenSSL");
        abort();
    }
}

void core_hmac_sha256(const unsigned char key[32], const void *data, size_t len,
                      unsigned char out[32])
{
    if (!hmac_ctx) {
        pthread_once(&hmac_once, hmac_fetch);
        char digest[] = "SHA256";
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
        hmac_ctx = EVP_MAC_CTX_new(hmac_mac);
        if (!hmac_ctx || EVP_MAC_CTX_set_params(hmac_ctx, params) != 1) {
            core_log_bug("HMAC-SHA256 context failed");
            abort();
        }
        pthread_setspecific(hmac_key, hmac_ctx); /* freed when the thread ends */
    }
    size_t n = 0;
    if (EVP_MAC_init(hmac_ctx, key, 32, NULL) != 1 || EVP_MAC_update(hmac_ctx, data, len) != 1 ||
        EVP_MAC_final(hmac_ctx, out, &n, 32) != 1 || n != 32) {
        core_log_bug("HMAC-SHA256 failed");
        abort();
    }
}

/* SHA-256 fetched from the provider once: EVP_sha256() looks it up (under a
 * lock) on every use, which shows in hot loops such as the audit verifier. */
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256_md;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!sha256_md) {
        core_log_bug("SHA-256 is not available from OpenSSL");
        abort();
    }
}

const EVP_MD *core_sha256_md(void)
{
    pthread_once(&sha256_once, sha256_fetch);
    return sha256_md;
}

void core_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    if (EVP_Digest(data, len, out, &n, core_sha256_md(), NULL) != 1) {
        core_log_bug("EVP_Digest(sha256) failed");
        abort();
    }
}

static bool fail(char **err, const char *path, const char *what, int e)
{
    if (e)
        *err = xasprintf("RENKEI_SECRET_FILE: %s \"%s\": %s", what, path, strerror(e));
    else
        *err = xasprintf("RENKEI_SECRET_FILE: \"%s\" %s", path, what);
    return false;
}

/* Writes a new secret to a temporary file beside path and links it into
 * place: a concurrent starter sees either no file or a complete one. */
static bool create_secret(const char *path, const char *dir, char **err)
{
    struct stat st;
    if (stat(dir, &st) != 0 && (errno != ENOENT || mkdir(dir, 0700) != 0))
        return fail(err, path, "cannot create the directory of", errno);
    char *tmp = xasprintf("%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return fail(err, path, "cannot create", e);
    }
    unsigned char buf[SECRET_MIN];
    core_random(buf, sizeof buf);
    bool ok = fchmod(fd, 0600) == 0 && write(fd, buf, sizeof buf) == (ssize_t)sizeof buf &&
              fsync(fd) == 0;
    int e = errno;
    OPENSSL_cleanse(buf, sizeof buf);
    close(fd);
    if (ok && link(tmp, path) != 0 && errno != EEXIST) { /* EEXIST: another made it first */
        ok = false;
        e = errno;
    }
    unlink(tmp);
    free(tmp);
    if (!ok)
        return fail(err, path, "cannot write", e);
    core_logf(CORE_LOG_INFO, "created master secret %s", path);
    return true;
}

/* Whoever can write the directory can swap the file: it must be ours alone. */
static bool dir_ok(const char *path, const char *dir, char **err)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return fail(err, path, "cannot stat the directory of", errno);
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        char what[160];
        snprintf(what, sizeof what,
                 "lies in %s, which group or others may write (mode %04o): keep it in a "
                 "directory only its owner can write",
                 dir, (unsigned)(st.st_mode & 07777));
        return fail(err, path, what, 0);
    }
    return true;
}

bool core_secret_load(const char *path, char **err)
{
    char *copy = xstrdup(path);
    const char *dir = dirname(copy);
    bool ok = false;
    unsigned char *buf = NULL;
    size_t size = 0;
    struct stat st;
    int fd = -1;
    if (stat(dir, &st) == 0 && !dir_ok(path, dir, err))
        goto cleanup;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        if (!create_secret(path, dir, err))
            goto cleanup;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0) {
        fail(err, path, "cannot open", errno);
        goto cleanup;
    }
    if (fstat(fd, &st) != 0) {
        fail(err, path, "cannot stat", errno);
        goto cleanup;
    }
    char what[160];
    if (!S_ISREG(st.st_mode)) {
        fail(err, path, "is not a regular file", 0);
        goto cleanup;
    }
    if (st.st_uid != geteuid()) {
        snprintf(what, sizeof what, "belongs to uid %u, not to the hub's user (uid %u)",
                 (unsigned)st.st_uid, (unsigned)geteuid());
        fail(err, path, what, 0);
        goto cleanup;
    }
    if (st.st_mode & 077) {
        snprintf(what, sizeof what, "is accessible by group or others (mode %04o); chmod 600 it",
                 (unsigned)(st.st_mode & 07777));
        fail(err, path, what, 0);
        goto cleanup;
    }
    if (st.st_size < SECRET_MIN || st.st_size > SECRET_MAX) {
        snprintf(what, sizeof what, "holds %lld bytes; it must hold from 32 to 4096",
                 (long long)st.st_size);
        fail(err, path, what, 0);
        goto cleanup;
    }
    size = (size_t)st.st_size;
    buf = xmalloc(size);
    (void)mlock(buf, size); /* best effort: keep it out of swap */
    ssize_t n = read(fd, buf, size);
    if (n != st.st_size) {
        fail(err, path, "cannot read", n < 0 ? errno : EIO);
        goto cleanup;
    }
    core_secret_release();
    master = buf;
    master_len = size;
    buf = NULL;
    ok = true;
cleanup:
    if (buf) {
        OPENSSL_cleanse(buf, size);
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    free(copy);
    return ok;
}

void core_secret_derive(const char *label, unsigned char *out, size_t len)
{
    if (!master) {
        core_log_bug("master secret used before it was loaded");
        abort();
    }
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, master, master_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)"renkei", 6),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)label, strlen(label)),
        OSSL_PARAM_construct_end(),
    };
    if (!ctx || EVP_KDF_derive(ctx, out, len, params) != 1) {
        core_log_bug("HKDF derivation failed");
        abort();
    }
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
}

#define SEAL_VERSION 1
#define SEAL_NONCE   12
#define SEAL_TAG     16

void core_seal(const char *label, const void *aad, size_t aad_len, const void *plain, size_t len,
               unsigned char **out, size_t *out_len)
{
    unsigned char key[32];
    core_secret_derive(label, key, sizeof key);
    size_t total = 1 + SEAL_NONCE + len + SEAL_TAG;
    unsigned char *buf = xmalloc(total);
    buf[0] = SEAL_VERSION;
    core_random(buf + 1, SEAL_NONCE);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0;
    bool ok =
        ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, buf + 1) == 1 &&
        EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1 &&
        EVP_EncryptUpdate(ctx, buf + 1 + SEAL_NONCE, &n, plain, (int)len) == 1 &&
        EVP_EncryptFinal_ex(ctx, buf + 1 + SEAL_NONCE + n, &n) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG, buf + 1 + SEAL_NONCE + len) == 1;
    EVP_CIPHER_CTX_free(ctx);
    OPENSSL_cleanse(key, sizeof key);
    if (!ok) {
        core_log_bug("AES-256-GCM encryption failed");
        abort();
    }
    *out = buf;
    *out_len = total;
}

bool core_open(const char *label, const void *aad, size_t aad_len, const void *sealed, size_t len,
               unsigned char **out, size_t *out_len)
{
    const unsigned char *in = sealed;
    if (len < 1 + SEAL_NONCE + SEAL_TAG || in[0] != SEAL_VERSION)
        return false;
    size_t plain_len = len - 1 - SEAL_NONCE - SEAL_TAG;
    unsigned char key[32];
    core_secret_derive(label, key, sizeof key);
    unsigned char *buf = xmalloc(plain_len + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0;
    bool ok = ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, in + 1) == 1 &&
              EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1 &&
              EVP_DecryptUpdate(ctx, buf, &n, in + 1 + SEAL_NONCE, (int)plain_len) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG,
                                  (void *)(in + len - SEAL_TAG)) == 1 &&
              EVP_DecryptFinal_ex(ctx, buf + n, &n) == 1;
    EVP_CIPHER_CTX_free(ctx);
    OPENSSL_cleanse(key, sizeof key);
    if (!ok) {
        OPENSSL_cleanse(buf, plain_len + 1);
        free(buf);
        return false;
    }
    buf[plain_len] = '\0'; /* convenient for text secrets; not counted in out_len */
    *out = buf;
    *out_len = plain_len;
    return true;
}

void core_secret_release(void)
{
    core_sealed_keys_forget(); /* opened under this secret */
    if (master) {
        OPENSSL_cleanse(master, master_len);
        munlock(master, master_len);
        free(master);
        master = NULL;
        master_len = 0;
    }
}
