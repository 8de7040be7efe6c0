#include "authz/az.h"

void az_routes(struct core_router *r)
{
    (void)r;
}
