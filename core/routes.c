#include "core/routes.h"

void core_routes(struct core_router *r)
{
    core_health_routes(r);
    core_metrics_routes(r);
    core_openapi_routes(r);
}
