#ifndef TN_H
#define TN_H

/* The tenant registry: towns, their city OS endpoints, admin API. */
#include "core/router.h"

/* Adds this module's routes (none yet: later issues add them). */
void tn_routes(struct core_router *r);

#endif
