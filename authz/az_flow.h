#ifndef AZ_FLOW_H
#define AZ_FLOW_H

/*
 * The resident's side of the token service: one-time authorization codes,
 * and the grants the token endpoint runs for residents (authorization_code
 * with PKCE, refresh_token with rotation, RFC 8693 token exchange).
 */
#include "authz/az_client.h"
#include "authz/az_form.h"

#define AZ_CODE_TTL_S    60
#define AZ_REFRESH_TTL_S (30 * 86400)

/* The scopes a resident may grant an app; the hub's administrative scopes
 * never go to a resident's app. */
bool az_scope_for_residents(const char *scope, size_t n);

/* What a code stands for (strings borrowed). */
struct az_code_spec {
    const char *client_id, *grant, *resident, *sid, *redirect_uri, *scope;
    const char *nonce;          /* NULL: none */
    const char *code_challenge; /* S256 */
    const char *resource;       /* NULL: the hub */
    long long auth_time;
    const char *amr, *acr;
};
/* Stores a new code (AZ_CODE_TTL_S) and writes it to code_out. False when
 * the database is down. */
bool az_code_issue(const struct az_code_spec *s, char code_out[64]);

/* Grant handlers of the token endpoint: the client is authenticated (a
 * public one identified) and allowed the grant type; each queues the reply. */
void az_token_authorization_code(struct core_req *req, const struct az_client *c,
                                 const struct az_form *f);
void az_token_refresh(struct core_req *req, const struct az_client *c, const struct az_form *f);
void az_token_exchange(struct core_req *req, const struct az_client *c, const struct az_form *f);

/* Revokes the refresh token (its whole family, and the access tokens issued
 * with it, at once in this process) when it is c's:
 * 1 revoked, 0 not a refresh token of that client, -1 database down. */
int az_refresh_revoke(const char *token, const struct az_client *c);
/* Introspection of a refresh token: the response (new reference) or NULL. */
json_t *az_refresh_introspect(const char *token, const struct az_client *c);

#endif
