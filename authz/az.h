#ifndef AZ_H
#define AZ_H

/*
 * The token service: signing keys and JWKS, clients (service IDs), the OAuth
 * endpoints, and verification of the hub's access tokens for the rest of the
 * hub (installed as core's auth verifier).
 */
#include <jansson.h>

#include "core/jose.h"
#include "core/auth.h"
#include "core/router.h"

#define AZ_SCOPE_MAX            1000 /* bytes of a scope string */
#define AZ_TOKEN_MAX            8192 /* bytes of a token we accept to look at */
#define AZ_KEY_LABEL            "renkei.authz.signing-key.v1"
#define AZ_SECRET_LABEL         "renkei.authz.client-secret.v1"
#define AZ_REGTOKEN_LABEL       "renkei.authz.registration-token.v1"
#define AZ_IAT_LABEL            "renkei.authz.initial-access-token.v1"
#define AZ_FILE_KEY_LABEL       "renkei.authz.file-key.v1"
#define AZ_GRANT_TOKEN_EXCHANGE "urn:ietf:params:oauth:grant-type:token-exchange"

/* The scopes the hub knows; a client may be allowed a subset. */
extern const char *const az_known_scopes[];
bool az_scope_known(const char *scope);
/* scope-token per RFC 6749 §3.3 (s[0..n)). */
bool az_scope_token_ok(const char *s, size_t n);
/* True when the space-separated list holds s[0..n). */
bool az_scope_in(const char *list, const char *s, size_t n);
/* The scopes of a that are also in b, in a's order (malloc'd). */
char *az_scope_meet(const char *a, const char *b);
/* Every scope of a is in b. */
bool az_scope_within(const char *a, const char *b);

/* ---- keys ---- */

/* Loads the key set, creating the first ES256 and RS256 keys when there are
 * none. Returns false (after logging) when the database is unavailable: the
 * token endpoints then answer 503 until a later load succeeds. */
bool az_keys_load(void);
void az_keys_release(void);
/* Signs claims with the active key of alg; the header gets typ, alg, kid.
 * NULL when no key is loaded. */
char *az_keys_sign(enum core_alg alg, const char *typ, json_t *claims);
/* Verifies a parsed JWS against the key named by its kid, with that key's
 * algorithm; false when the kid is not ours (active or retiring). */
bool az_keys_verify(const struct core_jws *j);
/* True while kid names a key that still verifies (active or retiring). */
bool az_keys_usable(const char *kid);
/* The JWKS document (public keys, active and retiring). */
json_t *az_keys_jwks(void);
/* `renkei keys rotate`: a new active key per algorithm; the old ones retire
 * once tokens they signed can no longer be valid. */
bool az_keys_rotate(const char *actor, char *err, size_t errlen);
/* Rows for `renkei keys list`: kid, alg, state, created_at, retire_after. */
json_t *az_keys_list(void);

/* ---- clients ---- */

enum az_auth_method {
    AZ_AUTH_BASIC, /* client_secret_basic */
    AZ_AUTH_POST,  /* client_secret_post */
    AZ_AUTH_JWT,   /* private_key_jwt */
    AZ_AUTH_NONE,  /* public client */
};
const char *az_auth_method_name(enum az_auth_method m);
bool az_auth_method_parse(const char *s, enum az_auth_method *out);

struct az_client {
    char id[65];
    char tenant[51];
    char *name;
    enum az_auth_method auth;
    unsigned char secret_hmac[32];
    bool has_secret;
    json_t *jwks;        /* private_key_jwt */
    json_t *grant_types; /* array of strings */
    json_t *redirect_uris;
    json_t *scopes; /* allowed */
    json_t *default_scopes;
    json_t *audiences;
    json_t *post_logout_redirect_uris; /* RP-initiated logout */
    char sector[254];                  /* registered sector identifier; "" when none */
    enum core_alg token_alg;
    int token_ttl;
    bool disabled;
    char created_at[40];
    char updated_at[40];
    int version;
};
void az_client_release(struct az_client *c);
json_t *az_client_json(const struct az_client *c);
bool az_client_has_grant(const struct az_client *c, const char *grant);
/* True when c may be given scope[0..n). */
bool az_client_allows(const struct az_client *c, const char *scope, size_t n);
/* True when c may ask for tokens meant for resource (one of its audiences). */
bool az_client_audience_ok(const struct az_client *c, const char *resource);

/* ---- entry points ---- */

void az_routes(struct core_router *r);
void az_start(void);
void az_stop(void);
struct core_app;
int az_cmd_client(const struct core_app *app, int argc, char **argv);
int az_cmd_keys(const struct core_app *app, int argc, char **argv);

#endif
