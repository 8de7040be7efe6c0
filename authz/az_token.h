#ifndef AZ_TOKEN_H
#define AZ_TOKEN_H

/* Access tokens: issuing them (RFC 9068 JWTs) and verifying them for the
 * rest of the hub, with a cache of verified tokens and the revocation set. */
#include "authz/az_client.h"

/* Issues an access token for c with scope (space-separated, already
 * checked) and audience. Returns the JWT (malloc'd) and its lifetime, or
 * NULL when no signing key is loaded. */
char *az_token_issue(const struct az_client *c, const char *scope, const char *aud,
                     int *expires_in);

/* What a verified token says. Strings are owned by the struct. */
struct az_claims {
    char jti[65];
    char kid[65];
    char client_id[65];
    char sub[129];
    char tenant[51];
    char scope[AZ_SCOPE_MAX + 1];
    char aud[2049];
    long long exp, iat;
};

enum az_verify_rc {
    AZ_TOKEN_OK,
    AZ_TOKEN_INVALID, /* malformed, bad signature, wrong typ/iss/aud, expired */
    AZ_TOKEN_REVOKED,
    AZ_TOKEN_INACTIVE,    /* its client is disabled or its tenant suspended */
    AZ_TOKEN_UNAVAILABLE, /* cannot tell now (database down): fail closed */
};

/* Verifies an access token the hub issued (signature with the kid's own
 * algorithm, typ at+jwt, iss, exp/nbf with 30 s leeway; aud must be the hub's
 * issuer when aud_hub). *why explains a refusal. Cached by token hash until
 * the token expires; revocation and client/tenant state are checked on every
 * call. */
enum az_verify_rc az_token_verify(const char *token, bool aud_hub, struct az_claims *out,
                                  const char **why);

/* Records jti as revoked (until exp) in the database and in this node's set. */
bool az_token_revoke(const struct az_claims *c);

void az_token_init(void); /* revocation set listener, caches */
void az_token_release(void);

/* The verifier installed into core: Authorization: Bearer → principal. */
bool az_core_verifier(struct core_req *req, struct core_principal *out);

#endif
