#ifndef AU_H
#define AU_H

/* The audit log: Merkle log, checkpoints, proofs, auditor API. */
#include <jansson.h>

#include "core/db.h"
#include "core/router.h"

/* Adds this module's routes (none yet). */
void au_routes(struct core_router *r);

/*
 * Records an event for the audit log inside the caller's transaction, so it
 * is kept exactly when the change it describes commits. kind: "tenant.create"
 * style; tenant: the tenant it is about (NULL: the platform); actor: who did
 * it ("cli:root", "client:<id>"); detail: an object (borrowed; NULL for
 * none), never secrets or personal data. Returns false when the statement
 * failed (the caller's transaction must then roll back).
 */
bool au_event_record(struct core_db_conn *c, const char *kind, const char *tenant,
                     const char *actor, json_t *detail);

#endif
