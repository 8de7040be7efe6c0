#include "tenants/tn.h"

void tn_routes(struct core_router *r)
{
    (void)r;
}
