#ifndef CORE_CRYPTO_H
#define CORE_CRYPTO_H

#include "core/core.h"

/* Fills buf with bytes from OpenSSL's CSPRNG; aborts if it cannot (no
 * fallback to weaker randomness). */
void core_random(void *buf, size_t len);

/* 16 bytes unique to this call for as long as the process lives, and
 * across processes with overwhelming probability: a random per-process
 * prefix and a counter. Cheap, and not secret: for request ids and
 * correlators, never for tokens or keys. */
void core_unique_id(unsigned char out[16]);

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void core_hex(const unsigned char *in, size_t len, char *out);

/* base64url without padding (RFC 4648 §5, as JOSE uses it). The encoder
 * returns a malloc'd string; the decoder returns false on any character
 * outside the alphabet, padding, or a length no encoder produces, and
 * otherwise a malloc'd buffer (NUL-terminated, not counted in *out_len). */
char *core_b64url_encode(const void *data, size_t len);
bool core_b64url_decode(const char *s, size_t len, unsigned char **out, size_t *out_len);
/* Standard base64 with padding (the audit log's hashes). */
char *core_b64_encode(const void *data, size_t len);
/* Its strict decoder: padding required where due, nothing else accepted. */
bool core_b64_decode(const char *s, size_t len, unsigned char **out, size_t *out_len);

/* HMAC-SHA256 of data under a key derived from the master secret for label
 * (cached per label by the caller if it is hot). */
void core_hmac_sha256(const unsigned char key[32], const void *data, size_t len,
                      unsigned char out[32]);

/* OpenSSL's SHA-256, fetched once (for callers that hash with EVP_MD_CTX). */
typedef struct evp_md_st EVP_MD;
const EVP_MD *core_sha256_md(void);

/* SHA-256 of data into out[32]. */
void core_sha256(const void *data, size_t len, unsigned char out[32]);

/*
 * The master secret (RENKEI_SECRET_FILE): created with 32 random bytes and
 * mode 0600 when missing (its directory 0700 when missing too); refused when
 * it is not a regular file, is group/world accessible, or holds fewer than
 * 32 bytes. On failure returns false and sets *err to one line naming
 * RENKEI_SECRET_FILE (caller frees).
 */
bool core_secret_load(const char *path, char **err);

/* Derives len bytes for one purpose from the master secret (HKDF-SHA256,
 * info = label). Aborts if the secret was not loaded: that is our bug. */
void core_secret_derive(const char *label, unsigned char *out, size_t len);

/*
 * Authenticated encryption of small secrets at rest (upstream credentials,
 * private keys): AES-256-GCM under a key derived from the master secret for
 * one purpose (label), with aad bound into the tag (e.g. the row's id, so a
 * ciphertext copied to another row does not open). The sealed form is
 * 1 version byte, 12-byte nonce, ciphertext, 16-byte tag; *out is malloc'd.
 * core_open returns false when the data was altered, is sealed for another
 * label or aad, or the master secret changed.
 */
void core_seal(const char *label, const void *aad, size_t aad_len, const void *plain, size_t len,
               unsigned char **out, size_t *out_len);
bool core_open(const char *label, const void *aad, size_t aad_len, const void *sealed, size_t len,
               unsigned char **out, size_t *out_len);

/* Wipes the master secret from memory. */
void core_secret_release(void);

#endif
