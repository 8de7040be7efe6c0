#ifndef CORE_JOSE_H
#define CORE_JOSE_H

/*
 * JOSE on OpenSSL with keys parsed once, for the token service and the audit
 * log's checkpoints: compact JWS signing and verification (ES256, RS256), raw
 * ECDSA P-256 signatures, JWK export and import, RFC 7638 thumbprints. Verification never lets the
 * token choose: the caller passes the key, and the header's alg must be that key's algorithm (RFC
 * 8725 §3.1).
 */
#include <jansson.h>
#include <openssl/evp.h>

#include "core/core.h"

enum core_alg { CORE_ES256, CORE_RS256, CORE_ALG__COUNT };

const char *core_alg_name(enum core_alg a);
/* "ES256" → CORE_ES256; false for anything else (including "none", "HS256"). */
bool core_alg_parse(const char *s, enum core_alg *out);

/* A new key pair for alg (P-256, or RSA 2048). Aborts if OpenSSL cannot. */
EVP_PKEY *core_key_generate(enum core_alg alg);

/* The public JWK of key (kty, crv/x/y or n/e), without kid/use/alg. */
json_t *core_jwk_public(EVP_PKEY *key);
/* RFC 7638 thumbprint of a public JWK, base64url SHA-256. Caller frees. */
char *core_jwk_thumbprint(json_t *jwk);
/* A public key from a JWK (EC P-256 or RSA ≥ 2048 bits); NULL and *why when
 * the JWK is malformed, of another curve, too weak, or holds a private part. */
EVP_PKEY *core_jwk_import(json_t *jwk, const char **why);

/* PEM (PKCS#8) of a private key, and back. */
char *core_key_to_pem(EVP_PKEY *key, size_t *len);
EVP_PKEY *core_key_from_pem(const char *pem, size_t len);
/* Fetches OpenSSL's key decoders now (about 4 ms, once a process): a start
 * does it while its first database connection opens, not after. */
void core_key_decoders_fetch(void);

/* ECDSA P-256 with SHA-256 over data; sig is r || s (RFC 7518 §3.4), as
 * WebCrypto and JWS carry it. Aborts if OpenSSL cannot sign. */
void core_es256_sign(EVP_PKEY *key, const void *data, size_t len, unsigned char sig[64]);
/* Checks an r || s signature over data with an EC P-256 public key. */
bool core_es256_verify(EVP_PKEY *key, const void *data, size_t len, const unsigned char *sig,
                       size_t sig_len);

/*
 * A signing key kept in the database with its private half sealed under the
 * master secret (core_seal with label, the kid as associated data): what the
 * token service and the audit log store for their keys.
 */
struct core_sealed_key {
    char *kid; /* kid_prefix + RFC 7638 thumbprint */
    char *jwk; /* the public JWK, compact JSON */
    unsigned char *sealed;
    size_t sealed_len;
};
/* Makes a new key pair of alg and seals it; release with
 * core_sealed_key_release. */
void core_sealed_key_new(enum core_alg alg, const char *label, const char *kid_prefix,
                         struct core_sealed_key *out);
void core_sealed_key_release(struct core_sealed_key *k);
/* Opens a sealed private key; NULL (and an error logged naming what) when
 * it does not open: another master secret, or the bytes were altered. */
EVP_PKEY *core_sealed_key_open(const char *label, const char *what, const char *kid,
                               const void *sealed, size_t len);
/* Drops the keys core_sealed_key_open keeps (they live on while in use). */
void core_sealed_keys_forget(void);

/*
 * Token-signing keys held in files of the service user rather than in the
 * database (RENKEI_SIGNING_KEY_FILE: comma-separated PEM PKCS#8 files, an EC
 * P-256 key for ES256 and/or an RSA key of 2048 bits or more for RS256), read
 * once at start. kid: the RFC 7638 thumbprint of the public half.
 */
/* Reads every file of list; false and *err (one line naming the variable
 * and the file; caller frees) for a file core_private_file_read refuses,
 * an encrypted or non-PKCS#8 key, another type or curve, a weak RSA key,
 * or two keys of one algorithm. */
bool core_file_keys_load(const char *list, char **err);
/* The key for alg, borrowed, with its kid and file; NULL when none. */
EVP_PKEY *core_file_key(enum core_alg alg, const char **kid, const char **path);
/* Drops every file key, the audit one too. */
void core_file_keys_release(void);
/* The audit log's checkpoint key held in a file (RENKEI_AUDIT_KEY_FILE: one
 * PEM PKCS#8 EC P-256 key), with the same checks; its kid in the log is
 * "audit-" and the thumbprint. */
bool core_audit_file_key_load(const char *path, char **err);
EVP_PKEY *core_audit_file_key(const char **thumbprint, const char **path);

/* A key held in a node's file is published by a row of its public half,
 * believed only with a MAC: HMAC-SHA256 of msg (what names the key) under a
 * key derived from the master secret's root for label, which only a hub of
 * the installation can make. core_file_row_mac makes it; core_file_row_key
 * gives the row's public key when its JWK imports, its thumbprint is thumb,
 * it is of type ("EC", "RSA") and mac (NULL when the column is) verifies;
 * else NULL and *why. */
void core_file_row_mac(const char *label, const char *msg, unsigned char mac[32]);
EVP_PKEY *core_file_row_key(const char *jwk_text, const void *mac, size_t mac_len,
                            const char *thumb, const char *type, const char *label, const char *msg,
                            const char **why);

/* Signs header and claims (JSON objects; borrowed) with key under alg.
 * Returns the compact JWS (malloc'd). */
char *core_jws_sign(EVP_PKEY *key, enum core_alg alg, json_t *header, json_t *claims);

/* A compact JWS split and decoded, before the signature is checked. */
struct core_jws {
    json_t *header;
    json_t *claims;
    unsigned char *sig;
    size_t sig_len;
    const char *signing_input; /* into the token: header.claims */
    size_t signing_input_len;
};

/* Parses token (at most max_len bytes; three base64url parts, header and
 * claims JSON objects). Returns false and *why on any defect. */
bool core_jws_parse(const char *token, size_t max_len, struct core_jws *out, const char **why);
void core_jws_release(struct core_jws *j);
/* Checks the signature with key under alg; the header's alg must be alg. */
bool core_jws_verify(const struct core_jws *j, EVP_PKEY *key, enum core_alg alg);

#endif
