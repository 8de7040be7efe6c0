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
/* a file in the second form: a header and two base64url lines */
#define SECRET_FILE_MAX 8192
#define SECRET_HEADER   "renkei-secret 2\n"

/* What seals (master) and what derives (root) in use, and the master before
 * the last change, still tried when opening: values sealed just before a
 * rotation (a login form in flight) still open. */
static struct core_secret cur, prev;
static bool loaded;
/* writers first: a rotation taken on the listener thread must not wait out a
 * stream of readers (every notification waits behind it) */
static pthread_rwlock_t sec_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

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

static bool fail_var(char **err, const char *var, const char *path, const char *what, int e)
{
    if (e)
        *err = xasprintf("%s: %s \"%s\": %s", var, what, path, strerror(e));
    else
        *err = xasprintf("%s: \"%s\" %s", var, path, what);
    return false;
}

static bool fail(char **err, const char *path, const char *what, int e)
{
    return fail_var(err, "RENKEI_SECRET_FILE", path, what, e);
}

static unsigned char *secure_alloc(size_t len)
{
    unsigned char *b = xmalloc(len ? len : 1);
    (void)mlock(b, len); /* best effort: keep it out of swap */
    return b;
}

static void secure_free(unsigned char *b, size_t len)
{
    if (!b)
        return;
    OPENSSL_cleanse(b, len);
    munlock(b, len);
    free(b);
}

void core_secret_free(struct core_secret *s)
{
    secure_free(s->master, s->master_len);
    secure_free(s->root, s->root_len);
    memset(s, 0, sizeof *s);
}

static void hkdf(const unsigned char *ikm, size_t ikm_len, const char *label, unsigned char *out,
                 size_t len)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len),
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

static void secret_set_id(struct core_secret *s)
{
    hkdf(s->master, s->master_len, "renkei.secret.id.v1", s->id, sizeof s->id);
}

/* The first form is the bytes themselves, master and root alike; the second
 * (written by a rotation) names each. */
static bool secret_parse(const unsigned char *buf, size_t len, struct core_secret *out,
                         const char *path, char **err)
{
    size_t hl = strlen(SECRET_HEADER);
    memset(out, 0, sizeof *out);
    if (len < hl || memcmp(buf, SECRET_HEADER, hl) != 0) {
        if (len > SECRET_MAX) {
            char what[96];
            snprintf(what, sizeof what, "holds %zu bytes; it must hold from 32 to 4096", len);
            return fail(err, path, what, 0);
        }
        out->master = secure_alloc(len);
        memcpy(out->master, buf, len);
        out->master_len = len;
        out->root = secure_alloc(len);
        memcpy(out->root, buf, len);
        out->root_len = len;
        secret_set_id(out);
        return true;
    }
    static const char *const names[] = {"master=", "root="};
    unsigned char **dst[] = {&out->master, &out->root};
    size_t *dst_len[] = {&out->master_len, &out->root_len};
    const char *p = (const char *)buf + hl, *end = (const char *)buf + len;
    for (size_t i = 0; i < 2; i++) {
        size_t nl = strlen(names[i]);
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        unsigned char *raw = NULL;
        size_t raw_len = 0;
        if (!eol || (size_t)(eol - p) < nl || memcmp(p, names[i], nl) != 0 ||
            !core_b64url_decode(p + nl, (size_t)(eol - p) - nl, &raw, &raw_len) ||
            raw_len < SECRET_MIN || raw_len > SECRET_MAX) {
            if (raw) {
                OPENSSL_cleanse(raw, raw_len);
                free(raw);
            }
            core_secret_free(out);
            char what[96];
            snprintf(what, sizeof what,
                     "is not a valid secret file: line %zu must be %s<base64url>", i + 2, names[i]);
            return fail(err, path, what, 0);
        }
        *dst[i] = secure_alloc(raw_len);
        memcpy(*dst[i], raw, raw_len);
        *dst_len[i] = raw_len;
        OPENSSL_cleanse(raw, raw_len);
        free(raw);
        p = eol + 1;
    }
    if (p != end) {
        core_secret_free(out);
        return fail(err, path, "is not a valid secret file: text after the root line", 0);
    }
    secret_set_id(out);
    return true;
}

/* fsync of the directory holding path: a rename or link in it is durable. */
static bool sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

/* Writes data to a temporary file beside path, mode 0600, synced; then
 * links it in (replace false: a concurrent creator that came first wins)
 * or renames it over path (replace true). */
static bool write_secret_file(const char *path, const char *dir, const void *data, size_t len,
                              bool replace, char **err)
{
    char *tmp = xasprintf("%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return fail(err, path, "cannot create", e);
    }
    bool ok = fchmod(fd, 0600) == 0 && write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (ok && replace && rename(tmp, path) != 0) {
        ok = false;
        e = errno;
    } else if (ok && !replace && link(tmp, path) != 0 && errno != EEXIST) {
        ok = false; /* EEXIST: another made it first */
        e = errno;
    }
    if (!ok || !replace)
        unlink(tmp);
    free(tmp);
    if (ok && !sync_dir(dir)) {
        ok = false;
        e = errno;
    }
    if (!ok)
        return fail(err, path, "cannot write", e);
    return true;
}

/* Whoever can write the directory can swap the file: it must be ours alone. */
static bool dir_ok(const char *var, const char *path, const char *dir, char **err)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return fail_var(err, var, path, "cannot stat the directory of", errno);
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        char what[160];
        snprintf(what, sizeof what,
                 "lies in %s, which group or others may write (mode %04o): keep it in a "
                 "directory only its owner can write",
                 dir, (unsigned)(st.st_mode & 07777));
        return fail_var(err, var, path, what, 0);
    }
    return true;
}

bool core_private_file_read(const char *var, const char *path, size_t min, size_t max,
                            unsigned char **out, size_t *out_len, char **err)
{
    char *copy = xstrdup(path);
    const char *dir = dirname(copy);
    bool ok = false;
    unsigned char *buf = NULL;
    size_t size = 0;
    struct stat st;
    int fd = -1;
    char what[160];
    if (!dir_ok(var, path, dir, err))
        goto cleanup;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        fail_var(err, var, path, "cannot open", errno);
        goto cleanup;
    }
    if (fstat(fd, &st) != 0) {
        fail_var(err, var, path, "cannot stat", errno);
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        fail_var(err, var, path, "is not a regular file", 0);
        goto cleanup;
    }
    if (st.st_uid != geteuid()) {
        snprintf(what, sizeof what, "belongs to uid %u, not to the hub's user (uid %u)",
                 (unsigned)st.st_uid, (unsigned)geteuid());
        fail_var(err, var, path, what, 0);
        goto cleanup;
    }
    if (st.st_mode & 077) {
        snprintf(what, sizeof what, "is accessible by group or others (mode %04o); chmod 600 it",
                 (unsigned)(st.st_mode & 07777));
        fail_var(err, var, path, what, 0);
        goto cleanup;
    }
    if (st.st_size < (off_t)min || st.st_size > (off_t)max) {
        snprintf(what, sizeof what, "holds %lld bytes; it must hold from %zu to %zu",
                 (long long)st.st_size, min, max);
        fail_var(err, var, path, what, 0);
        goto cleanup;
    }
    size = (size_t)st.st_size;
    buf = secure_alloc(size + 1);
    ssize_t n = read(fd, buf, size);
    if (n != st.st_size) {
        fail_var(err, var, path, "cannot read", n < 0 ? errno : EIO);
        goto cleanup;
    }
    buf[size] = '\0';
    *out = buf;
    *out_len = size;
    buf = NULL;
    ok = true;
cleanup:
    secure_free(buf, size + 1);
    if (fd >= 0)
        close(fd);
    free(copy);
    return ok;
}

void core_private_file_free(unsigned char *buf, size_t len)
{
    secure_free(buf, len + 1);
}

bool core_secret_read(const char *path, bool create, struct core_secret *out, char **err)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    if (create && lstat(path, &st) != 0 && errno == ENOENT) {
        char *copy = xstrdup(path);
        const char *dir = dirname(copy);
        bool made = false;
        if (stat(dir, &st) != 0 && (errno != ENOENT || mkdir(dir, 0700) != 0)) {
            fail(err, path, "cannot create the directory of", errno);
        } else if (dir_ok("RENKEI_SECRET_FILE", path, dir, err)) {
            unsigned char fresh[SECRET_MIN];
            core_random(fresh, sizeof fresh);
            made = write_secret_file(path, dir, fresh, sizeof fresh, false, err);
            OPENSSL_cleanse(fresh, sizeof fresh);
            if (made)
                core_logf(CORE_LOG_INFO, "created master secret %s", path);
        }
        free(copy);
        if (!made)
            return false;
    }
    unsigned char *buf = NULL;
    size_t size = 0;
    if (!core_private_file_read("RENKEI_SECRET_FILE", path, SECRET_MIN, SECRET_FILE_MAX, &buf,
                                &size, err))
        return false;
    bool ok = secret_parse(buf, size, out, path, err);
    core_private_file_free(buf, size);
    return ok;
}

bool core_secret_write(const char *path, const struct core_secret *s, char **err)
{
    char *m = core_b64url_encode(s->master, s->master_len);
    char *r = core_b64url_encode(s->root, s->root_len);
    char *text = xasprintf("%smaster=%s\nroot=%s\n", SECRET_HEADER, m, r);
    size_t len = strlen(text);
    char *copy = xstrdup(path);
    bool ok = write_secret_file(path, dirname(copy), text, len, true, err);
    free(copy);
    OPENSSL_cleanse(m, strlen(m));
    OPENSSL_cleanse(r, strlen(r));
    OPENSSL_cleanse(text, len);
    free(m);
    free(r);
    free(text);
    return ok;
}

void core_secret_new(const struct core_secret *base, struct core_secret *out)
{
    memset(out, 0, sizeof *out);
    out->master_len = 32;
    out->master = secure_alloc(out->master_len);
    core_random(out->master, out->master_len);
    out->root_len = base->root_len;
    out->root = secure_alloc(out->root_len);
    memcpy(out->root, base->root, out->root_len);
    secret_set_id(out);
}

bool core_secret_load(const char *path, char **err)
{
    struct core_secret s;
    if (!core_secret_read(path, true, &s, err))
        return false;
    core_secret_release();
    pthread_rwlock_wrlock(&sec_lock);
    cur = s;
    loaded = true;
    pthread_rwlock_unlock(&sec_lock);
    return true;
}

bool core_secret_use(struct core_secret *s)
{
    pthread_rwlock_wrlock(&sec_lock);
    bool same_root =
        loaded && cur.root_len == s->root_len && CRYPTO_memcmp(cur.root, s->root, s->root_len) == 0;
    if (same_root && memcmp(cur.id, s->id, sizeof s->id) != 0) {
        core_secret_free(&prev);
        prev = cur;
        cur = *s;
        memset(s, 0, sizeof *s);
    }
    pthread_rwlock_unlock(&sec_lock);
    return same_root;
}

void core_secret_id(unsigned char id[8])
{
    pthread_rwlock_rdlock(&sec_lock);
    if (!loaded) {
        core_log_bug("master secret used before it was loaded");
        abort();
    }
    memcpy(id, cur.id, sizeof cur.id);
    pthread_rwlock_unlock(&sec_lock);
}

void core_secret_derive(const char *label, unsigned char *out, size_t len)
{
    pthread_rwlock_rdlock(&sec_lock);
    if (!loaded) {
        core_log_bug("master secret used before it was loaded");
        abort();
    }
    hkdf(cur.root, cur.root_len, label, out, len);
    pthread_rwlock_unlock(&sec_lock);
}

/* The form sealed now: version, the sealing master's id, nonce, ciphertext,
 * tag. The first form (version 1, no id) is still opened. */
#define SEAL_V1    1
#define SEAL_V2    2
#define SEAL_ID    8
#define SEAL_NONCE 12
#define SEAL_TAG   16

static bool gcm(bool enc, const unsigned char key[32], const unsigned char *nonce, const void *aad,
                size_t aad_len, const unsigned char *in, size_t len, unsigned char *out,
                unsigned char *tag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0;
    bool ok = ctx &&
              EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce, enc ? 1 : 0) == 1 &&
              EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1 &&
              EVP_CipherUpdate(ctx, out, &n, in, (int)len) == 1;
    if (ok && enc)
        ok = EVP_CipherFinal_ex(ctx, out + n, &n) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG, tag) == 1;
    else if (ok)
        ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG, tag) == 1 &&
             EVP_CipherFinal_ex(ctx, out + n, &n) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

static void seal_with(const unsigned char *m, size_t m_len, const unsigned char id[SEAL_ID],
                      const char *label, const void *aad, size_t aad_len, const void *plain,
                      size_t len, unsigned char **out, size_t *out_len)
{
    unsigned char key[32];
    size_t total = 1 + SEAL_ID + SEAL_NONCE + len + SEAL_TAG;
    unsigned char *buf = xmalloc(total);
    buf[0] = SEAL_V2;
    hkdf(m, m_len, label, key, sizeof key);
    memcpy(buf + 1, id, SEAL_ID);
    unsigned char *nonce = buf + 1 + SEAL_ID;
    core_random(nonce, SEAL_NONCE);
    bool ok = gcm(true, key, nonce, aad, aad_len, plain, len, nonce + SEAL_NONCE,
                  nonce + SEAL_NONCE + len);
    OPENSSL_cleanse(key, sizeof key);
    if (!ok) {
        core_log_bug("AES-256-GCM encryption failed");
        abort();
    }
    *out = buf;
    *out_len = total;
}

void core_seal(const char *label, const void *aad, size_t aad_len, const void *plain, size_t len,
               unsigned char **out, size_t *out_len)
{
    pthread_rwlock_rdlock(&sec_lock);
    if (!loaded) {
        core_log_bug("master secret used before it was loaded");
        abort();
    }
    seal_with(cur.master, cur.master_len, cur.id, label, aad, aad_len, plain, len, out, out_len);
    pthread_rwlock_unlock(&sec_lock);
}

void core_seal_under(const struct core_secret *s, const char *label, const void *aad,
                     size_t aad_len, const void *plain, size_t len, unsigned char **out,
                     size_t *out_len)
{
    seal_with(s->master, s->master_len, s->id, label, aad, aad_len, plain, len, out, out_len);
}

bool core_sealed_by(const void *sealed, size_t len, unsigned char id[8])
{
    const unsigned char *in = sealed;
    if (len < 1 + SEAL_ID || in[0] != SEAL_V2)
        return false;
    memcpy(id, in + 1, SEAL_ID);
    return true;
}

bool core_open(const char *label, const void *aad, size_t aad_len, const void *sealed, size_t len,
               unsigned char **out, size_t *out_len)
{
    const unsigned char *in = sealed;
    size_t hdr = len > 0 && in[0] == SEAL_V2 ? 1 + SEAL_ID : 1;
    if (len < hdr + SEAL_NONCE + SEAL_TAG || (in[0] != SEAL_V1 && in[0] != SEAL_V2))
        return false;
    size_t plain_len = len - hdr - SEAL_NONCE - SEAL_TAG;
    const unsigned char *nonce = in + hdr;
    unsigned char *buf = xmalloc(plain_len + 1);
    bool ok = false;
    pthread_rwlock_rdlock(&sec_lock);
    if (!loaded) {
        core_log_bug("master secret used before it was loaded");
        abort();
    }
    /* version 2 names its master; version 1 may be under either */
    const struct core_secret *tries[2] = {&cur, prev.master ? &prev : NULL};
    for (size_t i = 0; i < 2 && !ok; i++) {
        const struct core_secret *s = tries[i];
        if (!s || (in[0] == SEAL_V2 && memcmp(in + 1, s->id, SEAL_ID) != 0))
            continue;
        unsigned char key[32];
        hkdf(s->master, s->master_len, label, key, sizeof key);
        ok = gcm(false, key, nonce, aad, aad_len, nonce + SEAL_NONCE, plain_len, buf,
                 (unsigned char *)(in + len - SEAL_TAG));
        OPENSSL_cleanse(key, sizeof key);
    }
    pthread_rwlock_unlock(&sec_lock);
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
    core_file_keys_release();
    pthread_rwlock_wrlock(&sec_lock);
    core_secret_free(&cur);
    core_secret_free(&prev);
    loaded = false;
    pthread_rwlock_unlock(&sec_lock);
}
