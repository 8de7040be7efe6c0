#ifndef CORE_SECRET_H
#define CORE_SECRET_H

#include <jansson.h>

#include "core/core.h"

/*
 * Which master secret seals the database's values at rest (the table
 * secret_state, migration 0010), and `renkei secret` that rotates it.
 *
 * The first hub or command to meet a database without a record writes its
 * master's id there. A node whose master is not the recorded one is not
 * ready, and the database refuses values it seals (a trigger on every
 * sealed column): an old secret file can neither read what a rotation
 * re-sealed nor leave values only it can open. A rotation notifies every
 * node (renkei_secret, the new id as payload); each then reads its secret
 * file again, and RENKEI_SECRET_FILE.new beside it, for the master that id
 * names.
 */

struct core_db_conn;

/* A column holding values core_seal made: SQL names (constants of the
 * modules', never input), the purpose label they were sealed for, and the
 * column whose text is their associated data. */
struct core_sealed_col {
    const char *table;
    const char *id_col;
    const char *sealed_col;
    const char *label;
};

/* Records an administrative event in the caller's transaction (the audit
 * module's au_event_record). */
typedef bool (*core_event_fn)(struct core_db_conn *c, const char *kind, const char *tenant,
                              const char *actor, json_t *detail);

struct core_app;

/* `serve`: registers the readiness load "the master secret" and the
 * listener, before the modules' loads (which open sealed values). */
void core_secret_start(const struct core_app *app);

/* `renkei secret rotate [--prepare] | status [--json]`. */
int core_cmd_secret(const struct core_app *app, int argc, char **argv);

#endif
