/* The consoles' routes. */
#include "console/cn.h"
#include "console/cn_internal.h"

void cn_routes(struct core_router *r)
{
    cn_page_routes(r);
    cn_audit_routes(r);
    cn_admin_routes(r);
}
