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

/* An access token with everything said: for a resident, sub is their
 * pairwise subject and grant the grant (consent) it lives under; act is the
 * RFC 8693 actor (borrowed; NULL for none). jti_out and exp_out (may be
 * NULL) receive the token's jti and expiry. */
struct az_issue {
    const char *scope;
    const char *aud;
    const char *sub;   /* NULL: the client id */
    const char *grant; /* NULL: a service token */
    json_t *act;
};
char *az_token_issue_for(const struct az_client *c, const struct az_issue *o, int *expires_in,
                         char jti_out[65], long long *exp_out);

/* What a verified token says. Strings are owned by the struct. */
struct az_claims {
    char jti[65];
    char kid[65];
    char client_id[65];
    char sub[129];
    char tenant[51];
    char scope[AZ_SCOPE_MAX + 1];
    char aud[2049];
    char grant[65];    /* a resident's token: its grant id, else "" */
    bool exchanged;    /* it came from a token exchange (has act) */
    char resident[65]; /* filled by az_token_verify from the grant: the common ID */
    long long exp, iat;
};

enum az_verify_rc {
    AZ_TOKEN_OK,
    AZ_TOKEN_INVALID,     /* malformed, bad signature, wrong typ/iss/aud, expired */
    AZ_TOKEN_REVOKED,     /* the token, or the consent it lives under, was revoked */
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

/* Puts jti in this node's revoked set at once, after a transaction that
 * recorded it committed (other nodes learn of it by NOTIFY). */
void az_token_revoked_now(const char *jti, long long exp);

/* Records jti as revoked (until exp) in the database and in this node's set. */
bool az_token_revoke(const struct az_claims *c);

void az_token_init(void); /* revocation set listener, caches */
void az_token_release(void);

/* The verifier installed into core: Authorization: Bearer → principal. */
bool az_core_verifier(struct core_req *req, struct core_principal *out);

#endif
