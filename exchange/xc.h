#ifndef XC_H
#define XC_H

/* The data exchange: NGSI-v2 front, agreements, policy, forwarding, hosted store. */
#include "core/router.h"

/* Adds this module's routes (none yet: later issues add them). */
void xc_routes(struct core_router *r);

#endif
