/* The auditor console: /audit. */
#include "console/cn_internal.h"
#include "console/cn_page.h"
#include "core/router.h"

static void cn_handler_audit(struct core_req *req)
{
    struct cn_ctx ctx;
    if (!cn_begin(req, AZ_ROLE_AUDITOR | AZ_ROLE_PLATFORM_ADMIN, &ctx))
        return;
    cn_reply(req, 200, "audit", ctx.lang, cn_vars(req, &ctx, "audit"));
}

static const struct core_route routes[] = {
    {CORE_GET, "/audit", cn_handler_audit, "The auditor console (HTML)", "console", 0},
};

void cn_audit_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
