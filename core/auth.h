#ifndef CORE_AUTH_H
#define CORE_AUTH_H

#include "core/http.h"

/*
 * Who is calling. The token service (authz) installs the verifier that turns
 * a request's bearer token into a principal; modules below it (tenants) ask
 * core for the principal without depending on authz.
 */
struct core_principal {
    const char *client_id; /* the OAuth client (service ID) */
    const char *tenant;    /* the client's home tenant */
    const char *subject;   /* the token's sub */
    const char *scope;     /* space-separated scopes */
    const char *resident;  /* a resident's common ID (their own token), else NULL */
};

/* True when scope is one of p's scopes (exact, space-separated match). */
bool core_principal_has_scope(const struct core_principal *p, const char *scope);

/* Checks the request's credentials. On success fills *out (strings from
 * req->pool) and returns true; otherwise queues the 401/403 reply itself and
 * returns false. */
typedef bool (*core_auth_verifier)(struct core_req *req, struct core_principal *out);
void core_auth_set_verifier(core_auth_verifier fn);

/* The caller's principal, or NULL once a 401 has been queued (no token, a bad
 * one, or no token service installed yet). The principal lives in req->pool. */
const struct core_principal *core_auth(struct core_req *req);

/* Like core_auth, for the APIs where a token acts for its client's whole
 * town (NGSI, audit, admin): a resident's token (issued to an app under the
 * resident's consent) is refused with 403 — it speaks for one resident, not
 * for the town, and the resident's own data reaches an app only through
 * the data exchange. */
const struct core_principal *core_auth_service(struct core_req *req);

/* An administrator: scope "admin" acts for the platform (context
 * CORE_DB_PLATFORM), "tenant.admin" for its own tenant only (context = its
 * tenant id). */
struct core_admin {
    const struct core_principal *p;
    bool platform;
    const char *context;
    const char *actor; /* "client:<id>", for audit events */
};

/* Queues 403 with a Bearer challenge naming error="insufficient_scope" and
 * the scope (RFC 6750 §3.1): a token that is good but lacks scope. why:
 * the error's description, NULL for "the token lacks scope SCOPE". */
void core_auth_insufficient_scope(struct core_req *req, const char *scope, const char *why);

/* Authenticates and requires admin or tenant.admin; false once the 401/403
 * is queued. */
bool core_auth_admin(struct core_req *req, struct core_admin *out);

#endif
