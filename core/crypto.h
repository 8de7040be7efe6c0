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
 * The master secret (RENKEI_SECRET_FILE) holds two keys: the master, which
 * seals values at rest (core_seal) and changes at each `renkei secret
 * rotate`, and the root, from which lasting values derive (client secret
 * hashes, pairwise subject ids, audit resident references: rotating it would
 * change them) and which a rotation keeps. A file of the first form (32 to
 * 4096 bytes, as created at install) is both; a rotation writes the second
 * form, "renkei-secret 2" and a base64url line for each. id names the
 * master (a one-way function of it, safe to store and show).
 */
struct core_secret {
    unsigned char *master, *root;
    size_t master_len, root_len;
    unsigned char id[8];
};

/* Reads a file only the hub's user may read (a secret, a private key):
 * refused unless it is a regular file (not a link) of the hub's user, not
 * group or world accessible, in a directory others cannot write, of min to
 * max bytes; *err then names var and path (caller frees). *out is
 * NUL-terminated (not counted); core_private_file_free wipes it. */
bool core_private_file_read(const char *var, const char *path, size_t min, size_t max,
                            unsigned char **out, size_t *out_len, char **err);
void core_private_file_free(unsigned char *buf, size_t len);

/* Reads path into *out (core_secret_free it): creates it first (32 random
 * bytes, mode 0600, its directory 0700) when missing and create is set;
 * refuses it when it is not a regular file of the hub's user, is group or
 * world accessible, lies in a directory others may write, or is malformed.
 * On failure returns false and sets *err to one line naming
 * RENKEI_SECRET_FILE (caller frees). */
bool core_secret_read(const char *path, bool create, struct core_secret *out, char **err);
/* Writes s to path in the second form (mode 0600, synced, renamed into
 * place, the directory synced). False with *err as above. */
bool core_secret_write(const char *path, const struct core_secret *s, char **err);
/* A new master (32 random bytes) with base's root. */
void core_secret_new(const struct core_secret *base, struct core_secret *out);
void core_secret_free(struct core_secret *s);

/* core_secret_read(path, create) and use it. */
bool core_secret_load(const char *path, char **err);
/* Makes s the master in use, taking it over (s is emptied), and keeps the
 * one before for core_open; false (s untouched) when its root is not the
 * root in use: that file belongs to another installation. */
bool core_secret_use(struct core_secret *s);
/* The id of the master in use. */
void core_secret_id(unsigned char id[8]);

/* Derives len bytes for one purpose from the root (HKDF-SHA256, info =
 * label). Aborts if the secret was not loaded: that is our bug. */
void core_secret_derive(const char *label, unsigned char *out, size_t len);

/*
 * Authenticated encryption of small secrets at rest (upstream credentials,
 * private keys): AES-256-GCM under a key derived from the master for one
 * purpose (label), with aad bound into the tag (e.g. the row's id, so a
 * ciphertext copied to another row does not open). The sealed form is
 * 1 version byte (2), the master's 8-byte id, 12-byte nonce, ciphertext,
 * 16-byte tag; *out is malloc'd. core_open also opens the first form
 * (version 1, no id), and values of the master in use before the last
 * core_secret_use; it returns false when the data was altered, is sealed
 * for another label or aad, or under another master.
 */
void core_seal(const char *label, const void *aad, size_t aad_len, const void *plain, size_t len,
               unsigned char **out, size_t *out_len);
bool core_open(const char *label, const void *aad, size_t aad_len, const void *sealed, size_t len,
               unsigned char **out, size_t *out_len);
/* core_seal under s's master rather than the one in use (a rotation). */
void core_seal_under(const struct core_secret *s, const char *label, const void *aad,
                     size_t aad_len, const void *plain, size_t len, unsigned char **out,
                     size_t *out_len);
/* The id of the master that sealed a value of the second form; false for
 * the first form or bytes of neither. */
bool core_sealed_by(const void *sealed, size_t len, unsigned char id[8]);

/* Wipes the secrets from memory. */
void core_secret_release(void);

#endif
