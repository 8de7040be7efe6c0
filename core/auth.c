#include <stdatomic.h>

#include "core/auth.h"

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
