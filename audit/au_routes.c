#include "audit/au.h"

void au_routes(struct core_router *r)
{
    (void)r;
}
