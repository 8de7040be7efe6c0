#ifndef XC_H
#define XC_H

/* The data exchange: NGSI-v2 front, agreements, policy, forwarding, hosted store. */
#include "core/router.h"

/* Adds this module's routes. */
void xc_routes(struct core_router *r);
/* Starts and stops the exchange's background work (notifications) for `serve`. */
void xc_start(void);
void xc_stop(void);

#endif
