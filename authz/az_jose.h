#ifndef AZ_JOSE_H
#define AZ_JOSE_H

/*
 * JOSE for the token service, on OpenSSL with keys parsed once: compact JWS
 * signing and verification (ES256, RS256), JWK export and import, RFC 7638
 * thumbprints. Verification never lets the token choose: the caller passes
 * the key, and the header's alg must be that key's algorithm (RFC 8725 §3.1).
 */
#include <jansson.h>
#include <openssl/evp.h>

#include "core/core.h"

enum az_alg { AZ_ES256, AZ_RS256, AZ_ALG__COUNT };

const char *az_alg_name(enum az_alg a);
/* "ES256" → AZ_ES256; false for anything else (including "none", "HS256"). */
bool az_alg_parse(const char *s, enum az_alg *out);

/* A new key pair for alg (P-256, or RSA 2048). Aborts if OpenSSL cannot. */
EVP_PKEY *az_key_generate(enum az_alg alg);

/* The public JWK of key (kty, crv/x/y or n/e), without kid/use/alg. */
json_t *az_jwk_public(EVP_PKEY *key);
/* RFC 7638 thumbprint of a public JWK, base64url SHA-256. Caller frees. */
char *az_jwk_thumbprint(json_t *jwk);
/* A public key from a JWK (EC P-256 or RSA ≥ 2048 bits); NULL and *why when
 * the JWK is malformed, of another curve, too weak, or holds a private part. */
EVP_PKEY *az_jwk_import(json_t *jwk, const char **why);

/* PEM (PKCS#8) of a private key, and back. */
char *az_key_to_pem(EVP_PKEY *key, size_t *len);
EVP_PKEY *az_key_from_pem(const char *pem, size_t len);

/* Signs header and claims (JSON objects; borrowed) with key under alg.
 * Returns the compact JWS (malloc'd). */
char *az_jws_sign(EVP_PKEY *key, enum az_alg alg, json_t *header, json_t *claims);

/* A compact JWS split and decoded, before the signature is checked. */
struct az_jws {
    json_t *header;
    json_t *claims;
    unsigned char *sig;
    size_t sig_len;
    const char *signing_input; /* into the token: header.claims */
    size_t signing_input_len;
};

/* Parses token (at most max_len bytes; three base64url parts, header and
 * claims JSON objects). Returns false and *why on any defect. */
bool az_jws_parse(const char *token, size_t max_len, struct az_jws *out, const char **why);
void az_jws_release(struct az_jws *j);
/* Checks the signature with key under alg; the header's alg must be alg. */
bool az_jws_verify(const struct az_jws *j, EVP_PKEY *key, enum az_alg alg);

#endif
