#ifndef AZ_H
#define AZ_H

/* The token service: keys, clients, residents, consent, OAuth/OIDC endpoints. */
#include "core/router.h"

/* Adds this module's routes (none yet: later issues add them). */
void az_routes(struct core_router *r);

#endif
