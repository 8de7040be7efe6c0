#ifndef CORE_MIGRATE_H
#define CORE_MIGRATE_H

#include "core/core.h"

/* A migration compiled into the binary from sql/NNNN_name.sql. */
struct core_migration {
    const char *file; /* "0001_core.sql" */
    const char *sql;
    size_t len;
};
extern const struct core_migration core_migrations[];
extern const size_t core_migrations_count;

enum core_migration_state {
    CORE_MIGRATION_PENDING, /* in the binary, not applied */
    CORE_MIGRATION_APPLIED, /* applied with the same checksum */
    CORE_MIGRATION_CHANGED, /* applied, but the file differs now */
    CORE_MIGRATION_UNKNOWN, /* applied, but not in this binary (a newer one ran) */
};

struct core_migration_status {
    int version;
    char name[64];
    char checksum[65]; /* of the binary's file; the database's for UNKNOWN */
    enum core_migration_state state;
};

struct core_migrate_plan {
    struct core_migration_status *items; /* by version */
    size_t n;
    int pending, changed, unknown;
    int ahead; /* of the unknown, those newer than every migration this binary has */
};

/* "0001_core.sql" → 1 and "core"; false if the name is not NNNN_name.sql. */
bool core_migration_parse_name(const char *file, int *version, char name[64]);
/* Hex SHA-256 of the file's bytes. */
void core_migration_checksum(const struct core_migration *m, char out[65]);

/* Compares the binary's migrations (ms, n) with the rows the database has
 * applied (versions and checksums, napplied of them). Fills plan (release
 * with core_migrate_plan_release). */
void core_migrate_plan_make(const struct core_migration *ms, size_t n, const int *versions,
                            const char *const *checksums, size_t napplied,
                            struct core_migrate_plan *plan);
void core_migrate_plan_release(struct core_migrate_plan *plan);
const char *core_migration_state_name(enum core_migration_state s);

/* `renkei migrate [--status] [--json]` against conninfo. Returns the exit code. */
int core_migrate_run(const char *conninfo, bool status_only, bool json);

/* For /readyz: true when the database has applied exactly the binary's
 * migrations; else false and *why (static or from the pool). Uses the pool. */
bool core_migrate_ready(char *why, size_t why_len, int *applied);

#endif
