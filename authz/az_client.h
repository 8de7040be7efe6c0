#ifndef AZ_CLIENT_H
#define AZ_CLIENT_H

/* Clients (service IDs) in the database, their secrets, and the cache the
 * token endpoint reads them from. */
#include "authz/az.h"

enum az_rc {
    AZ_OK,
    AZ_NOT_FOUND,
    AZ_INVALID,     /* the input is refused: message says why */
    AZ_FORBIDDEN,   /* the context may not do this */
    AZ_UNAVAILABLE, /* database down */
    AZ_ERROR,
    AZ_CONFLICT, /* taken already (a login, a local number): 409 */
};

struct az_result {
    enum az_rc rc;
    char message[300];
};

/* What a new client is made of (strings borrowed). */
struct az_client_spec {
    const char *tenant;
    const char *name;
    enum az_auth_method auth;
    json_t *grant_types;               /* array; NULL: ["client_credentials"] */
    json_t *scopes;                    /* allowed; NULL: none */
    json_t *default_scopes;            /* NULL: all allowed */
    json_t *redirect_uris;             /* NULL: none */
    json_t *audiences;                 /* NULL: none beyond the hub */
    json_t *jwks;                      /* private_key_jwt */
    json_t *post_logout_redirect_uris; /* NULL: none */
    const char *sector_identifier;     /* NULL: the host of the redirect URIs */
    enum core_alg token_alg;
    int token_ttl;                /* 0: 600 */
    bool with_registration_token; /* RFC 7592: also mint a registration access token */
};

/* Checks a spec; NULL when fine, else a message (static or thread-local). */
const char *az_client_spec_check(const struct az_client_spec *s);

/* Creates a client in context; the new id, and the secret / registration
 * token when there is one, are written to the out buffers (secret_out and
 * reg_out at least 64 bytes; empty when none). Records client.create. */
enum az_rc az_client_create(const char *context, const struct az_client_spec *s, const char *actor,
                            char id_out[65], char *secret_out, char *reg_out,
                            struct az_result *res);
/* Reads one client in context (a copy: release it). */
enum az_rc az_client_read(const char *context, const char *id, struct az_client *out,
                          struct az_result *res);
/* Up to limit clients after `after` in id order, of tenant (NULL: all the
 * context sees). */
enum az_rc az_client_list(const char *context, const char *tenant, const char *after, int limit,
                          struct az_client **out, size_t *n, struct az_result *res);
/* A new secret (written to secret_out, 64 bytes); records client.rotate_secret. */
enum az_rc az_client_rotate_secret(const char *context, const char *id, const char *actor,
                                   char *secret_out, struct az_result *res);
/* Disables (or enables) a client; records client.disable / client.enable. */
enum az_rc az_client_set_disabled(const char *context, const char *id, bool disabled,
                                  const char *actor, struct az_result *res);
/* RFC 7592 update: replaces the metadata of spec (tenant and auth method
 * stay); records client.update. */
enum az_rc az_client_replace(const char *context, const char *id, const struct az_client_spec *s,
                             const char *actor, struct az_result *res);

/* The HMAC under which secrets (label) are stored; constant-time compare. */
void az_secret_hmac(const char *label, const char *secret, size_t len, unsigned char out[32]);
bool az_secret_matches(const struct az_client *c, const char *secret, size_t len);
/* Checks a registration access token against client id (platform context). */
bool az_registration_token_ok(const char *id, const char *token);

/* ---- the cache the hot paths read ---- */

/* The client, from the cache when coherent (NOTIFY renkei_clients) or the
 * database; NULL when there is none or the database is down (rc says which).
 * The result is shared: release it with az_client_put. */
const struct az_client *az_client_get(const char *id, enum az_rc *rc);
void az_client_put(const struct az_client *c);
void az_clients_cache_init(void);
void az_clients_cache_release(void);

/* Initial access tokens for dynamic registration: mint one for tenant
 * (written to token_out, 64 bytes), and consume one (returning its tenant). */
enum az_rc az_initial_token_create(const char *tenant, int uses, int ttl_s, const char *actor,
                                   char *token_out, struct az_result *res);
enum az_rc az_initial_token_use(const char *token, char tenant_out[51]);

/* uri is one of registered (a JSON array of strings) exactly, or, for a
 * native app on a loopback IP literal over http, differs from one in the port
 * alone (RFC 8252 §7.3); nothing else matches (RFC 9700 §4.1.3). */
bool az_redirect_registered(const json_t *registered, const char *uri);

#endif
