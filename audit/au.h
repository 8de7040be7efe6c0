#ifndef AU_H
#define AU_H

/* The audit log: Merkle log, checkpoints, proofs, auditor API. */
#include "core/router.h"

/* Adds this module's routes (none yet: later issues add them). */
void au_routes(struct core_router *r);

#endif
