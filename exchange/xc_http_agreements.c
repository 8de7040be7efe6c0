/* /admin/v1/agreements[/{id}]: agreements over HTTP. */
#include "exchange/xc_agreement.h"

void xc_agreement_routes(struct core_router *r)
{
    (void)r;
}
