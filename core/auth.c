#include <stdatomic.h>

#include "core/auth.h"
#include "core/db.h"

static _Atomic(core_auth_verifier) verifier;

void core_auth_set_verifier(core_auth_verifier fn)
{
    atomic_store(&verifier, fn);
}

bool core_principal_has_scope(const struct core_principal *p, const char *scope)
{
    size_t n = strlen(scope);
    for (const char *s = p->scope; s && *s;) {
        while (*s == ' ')
            s++;
        size_t len = strcspn(s, " ");
        if (len == n && n && strncmp(s, scope, n) == 0)
            return true;
        s += len;
    }
    return false;
}

void core_auth_insufficient_scope(struct core_req *req, const char *scope, const char *why)
{
    /* RFC 6750 §3, §3.1: the scope the request needs, in the challenge */
    core_reply_header(req, "WWW-Authenticate",
                      core_psprintf(req->pool,
                                    "Bearer realm=\"renkei\", error=\"insufficient_scope\", "
                                    "scope=\"%s\"",
                                    scope));
    if (why)
        core_reply_error(req, CORE_ERR_FORBIDDEN, "%s", why);
    else
        core_reply_error(req, CORE_ERR_FORBIDDEN, "the token lacks scope %s", scope);
}

const struct core_principal *core_auth(struct core_req *req)
{
    core_auth_verifier fn = atomic_load(&verifier);
    if (!fn) {
        core_reply_header(req, "WWW-Authenticate", "Bearer realm=\"renkei\"");
        core_reply_error(req, CORE_ERR_UNAUTHORIZED,
                         "no token service is installed yet: this API accepts no credentials");
        return NULL;
    }
    struct core_principal *p = core_pcalloc(req->pool, sizeof *p);
    if (!fn(req, p))
        return NULL;
    return p;
}

const struct core_principal *core_auth_service(struct core_req *req)
{
    const struct core_principal *p = core_auth(req);
    if (p && p->resident) {
        core_reply_error(req, CORE_ERR_FORBIDDEN,
                         "a resident's token does not act for the town: this API takes a "
                         "service's own token");
        return NULL;
    }
    return p;
}

bool core_auth_admin(struct core_req *req, struct core_admin *out)
{
    out->p = core_auth_service(req);
    if (!out->p)
        return false;
    out->platform = core_principal_has_scope(out->p, "admin");
    if (!out->platform && !core_principal_has_scope(out->p, "tenant.admin")) {
        core_auth_insufficient_scope(req, "tenant.admin", "this needs scope admin or tenant.admin");
        return false;
    }
    if (!out->platform && (!out->p->tenant || !core_tenant_id_ok(out->p->tenant))) {
        core_reply_error(req, CORE_ERR_FORBIDDEN, "the token names no tenant");
        return false;
    }
    out->context = out->platform ? CORE_DB_PLATFORM : out->p->tenant;
    out->actor = core_psprintf(req->pool, "client:%s", out->p->client_id ? out->p->client_id : "?");
    return true;
}
