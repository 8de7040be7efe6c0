/* The operator console: /admin. */
#include "console/cn_internal.h"
#include "console/cn_page.h"
#include "core/router.h"

static void cn_handler_admin(struct core_req *req)
{
    struct cn_ctx ctx;
    if (!cn_begin(req, AZ_ROLE_TENANT_ADMIN | AZ_ROLE_PLATFORM_ADMIN, &ctx))
        return;
    cn_reply(req, 200, "admin", ctx.lang, cn_vars(req, &ctx, "admin"));
}

static const struct core_route routes[] = {
    {CORE_GET, "/admin", cn_handler_admin, "The operator console (HTML)", "console", 0},
};

void cn_admin_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
