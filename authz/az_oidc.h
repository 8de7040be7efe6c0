#ifndef AZ_OIDC_H
#define AZ_OIDC_H

/* OpenID Connect: pairwise subjects, ID tokens, userinfo. */
#include "authz/az_client.h"

/* The subject a client's sector sees for a resident: base64url of an HMAC
 * of sector and common ID under a key derived from the master secret (43
 * characters + NUL). The sector is the client's registered sector
 * identifier, else the host of its redirect URIs. */
void az_pairwise_sub(const struct az_client *c, const char *resident, char out[44]);
void az_pairwise_sub_sector(const char *sector, const char *resident, char out[44]);

struct az_id_claims {
    const char *sub;
    const char *nonce; /* NULL: none */
    long long auth_time;
    const char *acr;
    const char *amr; /* space-separated */
    const char *sid;
    const char *access_token; /* for at_hash; NULL: none */
};
/* An ID token for client c (signed with c's token algorithm); NULL when no
 * key is loaded. malloc'd. */
char *az_id_token(const struct az_client *c, const struct az_id_claims *k);

/* Verifies an ID token the hub issued (signature, iss; expiry not checked:
 * a logout hint may be old). Returns its claims (new reference) or NULL. */
json_t *az_id_token_hint(const char *token);

struct core_router;
void az_oidc_routes(struct core_router *r); /* /oauth2/userinfo */

#endif
