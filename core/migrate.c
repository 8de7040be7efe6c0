#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "core/crypto.h"
#include "core/db.h"
#include "core/log.h"
#include "core/migrate.h"

/* Serializes concurrent `renkei migrate` runs on one database. */
#define MIGRATE_LOCK_KEY "7301842057"

bool core_migration_parse_name(const char *file, int *version, char name[64])
{
    size_t len = strlen(file);
    if (len < 10 || strcmp(file + len - 4, ".sql") != 0 || file[4] != '_')
        return false;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        if (file[i] < '0' || file[i] > '9')
            return false;
        v = v * 10 + (file[i] - '0');
    }
    size_t nlen = len - 5 - 4;
    if (v == 0 || nlen == 0 || nlen >= 64)
        return false;
    memcpy(name, file + 5, nlen);
    name[nlen] = '\0';
    *version = v;
    return true;
}

void core_migration_checksum(const struct core_migration *m, char out[65])
{
    unsigned char d[32];
    core_sha256(m->sql, m->len, d);
    core_hex(d, sizeof d, out);
}

const char *core_migration_state_name(enum core_migration_state s)
{
    switch (s) {
    case CORE_MIGRATION_PENDING:
        return "pending";
    case CORE_MIGRATION_APPLIED:
        return "applied";
    case CORE_MIGRATION_CHANGED:
        return "changed";
    case CORE_MIGRATION_UNKNOWN:
        return "unknown";
    }
    return "?";
}

void core_migrate_plan_make(const struct core_migration *ms, size_t n, const int *versions,
                            const char *const *checksums, size_t napplied,
                            struct core_migrate_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    plan->items = xcalloc(n + napplied, sizeof *plan->items);
    for (size_t i = 0; i < n; i++) {
        struct core_migration_status *s = &plan->items[plan->n++];
        if (!core_migration_parse_name(ms[i].file, &s->version, s->name)) {
            core_log_bug("migration file name %s is not NNNN_name.sql", ms[i].file);
            abort();
        }
        core_migration_checksum(&ms[i], s->checksum);
        s->state = CORE_MIGRATION_PENDING;
        for (size_t j = 0; j < napplied; j++) {
            if (versions[j] == s->version) {
                s->state = strcmp(checksums[j], s->checksum) == 0 ? CORE_MIGRATION_APPLIED
                                                                  : CORE_MIGRATION_CHANGED;
                break;
            }
        }
        if (s->state == CORE_MIGRATION_PENDING)
            plan->pending++;
        else if (s->state == CORE_MIGRATION_CHANGED)
            plan->changed++;
    }
    for (size_t j = 0; j < napplied; j++) {
        bool known = false;
        for (size_t i = 0; i < n && !known; i++)
            known = plan->items[i].version == versions[j];
        if (known)
            continue;
        struct core_migration_status *s = &plan->items[plan->n++];
        s->version = versions[j];
        xsnprintf(s->name, sizeof s->name, "?");
        xsnprintf(s->checksum, sizeof s->checksum, "%s", checksums[j]);
        s->state = CORE_MIGRATION_UNKNOWN;
        plan->unknown++;
        bool newer = true;
        for (size_t i = 0; i < n && newer; i++)
            newer = versions[j] > plan->items[i].version;
        if (newer)
            plan->ahead++;
    }
}

void core_migrate_plan_release(struct core_migrate_plan *plan)
{
    free(plan->items);
    memset(plan, 0, sizeof *plan);
}

/* ---- the runner: its own connection as the login role, not the pool ---- */

/* the warning that the database is ahead, once per process */
static atomic_bool ahead_logged;

static bool exec_ok(PGconn *pg, const char *sql, char **err)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) {
        const char *m = PQresultErrorMessage(r);
        *err = xstrndup(m, strcspn(m, "\n"));
        const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
        if (detail) {
            char *both = xasprintf("%s (%s)", *err, detail);
            free(*err);
            *err = both;
        }
    }
    PQclear(r);
    return ok;
}

static bool read_applied(PGconn *pg, struct core_migrate_plan *plan, char **err)
{
    PGresult *r =
        PQexec(pg, "SELECT version, checksum FROM renkei.schema_migrations ORDER BY version");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *m = PQresultErrorMessage(r);
        *err = xstrndup(m, strcspn(m, "\n"));
        PQclear(r);
        return false;
    }
    int rows = PQntuples(r);
    int *versions = xcalloc((size_t)rows + 1, sizeof *versions);
    const char **sums = xcalloc((size_t)rows + 1, sizeof *sums);
    for (int i = 0; i < rows; i++) {
        long v = 0;
        core_parse_long(PQgetvalue(r, i, 0), 0, 9999, &v);
        versions[i] = (int)v;
        sums[i] = PQgetvalue(r, i, 1);
    }
    core_migrate_plan_make(core_migrations, core_migrations_count, versions, sums, (size_t)rows,
                           plan);
    free(versions);
    free(sums);
    PQclear(r);
    return true;
}

static void print_status(const struct core_migrate_plan *plan, bool json)
{
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < plan->n; i++) {
            const struct core_migration_status *s = &plan->items[i];
            json_array_append_new(arr, json_pack("{s:i, s:s, s:s, s:s}", "version", s->version,
                                                 "name", s->name, "checksum", s->checksum, "state",
                                                 core_migration_state_name(s->state)));
        }
        char *text = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", text);
        free(text);
        json_decref(arr);
        return;
    }
    printf("%-8s %-24s %-8s %s\n", "VERSION", "NAME", "STATE", "CHECKSUM");
    for (size_t i = 0; i < plan->n; i++) {
        const struct core_migration_status *s = &plan->items[i];
        printf("%04d     %-24s %-8s %.16s\n", s->version, s->name,
               core_migration_state_name(s->state), s->checksum);
    }
}

static bool refuse_if_diverged(const struct core_migrate_plan *plan, char **err)
{
    for (size_t i = 0; i < plan->n; i++) {
        const struct core_migration_status *s = &plan->items[i];
        if (s->state == CORE_MIGRATION_CHANGED) {
            *err = xasprintf("migration %04d_%s.sql was applied with another checksum: the file "
                             "changed after it was applied; restore it and add a new migration",
                             s->version, s->name);
            return true;
        }
        if (s->state == CORE_MIGRATION_UNKNOWN) {
            *err = xasprintf("the database has migration %04d applied, which this binary does "
                             "not know: it is older than the database",
                             s->version);
            return true;
        }
    }
    int max_applied = 0;
    for (size_t i = 0; i < plan->n; i++) {
        if (plan->items[i].state != CORE_MIGRATION_PENDING && plan->items[i].version > max_applied)
            max_applied = plan->items[i].version;
    }
    for (size_t i = 0; i < plan->n; i++) {
        const struct core_migration_status *s = &plan->items[i];
        if (s->state == CORE_MIGRATION_PENDING && s->version < max_applied) {
            *err = xasprintf("migration %04d_%s.sql is pending but %04d is already applied: "
                             "migrations must be applied in order; renumber it after %04d",
                             s->version, s->name, max_applied, max_applied);
            return true;
        }
    }
    return false;
}

static bool apply_one(PGconn *pg, const struct core_migration *m,
                      const struct core_migration_status *s, char **err)
{
    uint64_t t0 = core_now_us();
    if (!exec_ok(pg, "BEGIN", err))
        return false;
    /* Every migration after the first runs as the owner role, so every object
     * belongs to it and none to whoever logged in. The first creates that
     * role (roles are cluster-wide: another database may have made it
     * already) and switches to it itself. */
    if (s->version > 1 && !exec_ok(pg, "SET LOCAL ROLE renkei_owner", err))
        goto fail;
    char *sql = xstrndup(m->sql, m->len);
    bool ok = exec_ok(pg, sql, err);
    free(sql);
    if (!ok)
        goto fail;
    char version[16], ms[32];
    snprintf(version, sizeof version, "%d", s->version);
    snprintf(ms, sizeof ms, "%llu", (unsigned long long)((core_now_us() - t0) / 1000));
    const char *vals[] = {version, s->name, s->checksum, ms};
    PGresult *r =
        PQexecParams(pg,
                     "INSERT INTO renkei.schema_migrations (version, name, checksum, duration_ms) "
                     "VALUES ($1, $2, $3, $4)",
                     4, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        const char *e = PQresultErrorMessage(r);
        *err = xstrndup(e, strcspn(e, "\n"));
        PQclear(r);
        goto fail;
    }
    PQclear(r);
    return exec_ok(pg, "COMMIT", err);
fail : {
    char *ignored = NULL;
    exec_ok(pg, "ROLLBACK", &ignored);
    free(ignored);
    return false;
}
}

static const char *const bootstrap = "SET client_min_messages = warning;"
                                     "CREATE SCHEMA IF NOT EXISTS renkei;"
                                     "CREATE TABLE IF NOT EXISTS renkei.schema_migrations ("
                                     " version integer PRIMARY KEY,"
                                     " name text NOT NULL,"
                                     " checksum text NOT NULL,"
                                     " applied_at timestamptz NOT NULL DEFAULT now(),"
                                     " duration_ms integer NOT NULL DEFAULT 0)";

int core_migrate_run(const char *conninfo, bool status_only, bool json)
{
    int rc = 1;
    char *err = NULL;
    struct core_migrate_plan plan = {0};
    const char *keys[] = {"application_name", "connect_timeout", "dbname", NULL};
    const char *vals[] = {"renkei migrate", "10", conninfo, NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(pg) != CONNECTION_OK) {
        const char *m = PQerrorMessage(pg);
        fprintf(stderr, "renkei: RENKEI_DB: cannot connect: %.*s\n", (int)strcspn(m, "\n"), m);
        goto cleanup;
    }
    if (!exec_ok(pg, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", &err))
        goto fail;
    if (status_only) {
        /* Reading must not create anything: a missing table means nothing applied. */
        PGresult *r = PQexec(pg, "SELECT to_regclass('renkei.schema_migrations') IS NOT NULL");
        bool exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (exists) {
            if (!read_applied(pg, &plan, &err))
                goto fail;
        } else {
            core_migrate_plan_make(core_migrations, core_migrations_count, NULL, NULL, 0, &plan);
        }
        print_status(&plan, json);
        rc = plan.changed || plan.unknown ? 1 : 0;
        goto cleanup;
    }
    if (!exec_ok(pg, bootstrap, &err) || !read_applied(pg, &plan, &err))
        goto fail;
    if (refuse_if_diverged(&plan, &err))
        goto fail;
    int applied = 0;
    for (size_t i = 0; i < plan.n; i++) {
        struct core_migration_status *s = &plan.items[i];
        if (s->state != CORE_MIGRATION_PENDING)
            continue;
        if (!apply_one(pg, &core_migrations[i], s, &err)) {
            char *with = xasprintf("migration %04d_%s.sql failed: %s", s->version, s->name, err);
            free(err);
            err = with;
            goto fail;
        }
        s->state = CORE_MIGRATION_APPLIED;
        applied++;
        if (!json)
            printf("applied %04d_%s.sql\n", s->version, s->name);
    }
    if (json) {
        print_status(&plan, true);
    } else if (applied == 0) {
        printf("nothing to apply: %zu migrations are current\n", plan.n);
    }
    rc = 0;
    goto cleanup;
fail:
    fprintf(stderr, "renkei: migrate: %s\n", err ? err : "failed");
    rc = 1;
cleanup:
    free(err);
    core_migrate_plan_release(&plan);
    PQfinish(pg);
    return rc;
}

/* ---- readiness, through the pool as the service role ---- */

struct ready_arg {
    struct core_migrate_plan plan;
    bool missing;
};

static struct core_stmt ready_timeout =
    CORE_STMT("core_migrate_ready_timeout", "SELECT set_config('statement_timeout', '5s', true)");
static struct core_stmt ready_rows = CORE_STMT(
    "core_migrate_ready_rows", "SELECT version, checksum FROM schema_migrations ORDER BY version");

static enum core_db_rc ready_tx(struct core_db_conn *c, void *p)
{
    struct ready_arg *a = p;
    core_migrate_plan_release(&a->plan);
    PGresult *r = core_db_exec(c, &ready_timeout, 0, NULL);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    r = core_db_exec(c, &ready_rows, 0, NULL);
    if (!r)
        return CORE_DB_ERROR;
    int rows = PQntuples(r);
    int *versions = xcalloc((size_t)rows + 1, sizeof *versions);
    const char **sums = xcalloc((size_t)rows + 1, sizeof *sums);
    for (int i = 0; i < rows; i++) {
        long v = 0;
        core_parse_long(PQgetvalue(r, i, 0), 0, 9999, &v);
        versions[i] = (int)v;
        sums[i] = PQgetvalue(r, i, 1);
    }
    core_migrate_plan_make(core_migrations, core_migrations_count, versions, sums, (size_t)rows,
                           &a->plan);
    free(versions);
    free(sums);
    PQclear(r);
    return CORE_DB_OK;
}

bool core_migrate_ready(char *why, size_t why_len, int *applied)
{
    struct ready_arg a = {0};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(NULL, CORE_TX_READ, ready_tx, &a, &err);
    bool ok = false;
    *applied = 0;
    if (rc != CORE_DB_OK) {
        /* The reply names the kind of trouble only; the details (hosts,
         * roles, server messages) go to the log, not to anonymous callers. */
        if (strcmp(err.sqlstate, "42P01") == 0) {
            xsnprintf(why, why_len, "migrations have not been applied: run renkei migrate");
        } else if (strcmp(err.sqlstate, "57014") == 0) {
            xsnprintf(why, why_len, "the database did not answer within 5 s");
        } else if (strcmp(err.sqlstate, "22023") == 0 || strcmp(err.sqlstate, "42704") == 0 ||
                   strcmp(err.sqlstate, "42501") == 0) {
            xsnprintf(why, why_len,
                      "the service role is missing or not granted: run renkei "
                      "migrate and grant renkei_service to the login role");
        } else {
            xsnprintf(why, why_len, "the database is unreachable");
        }
        core_log_fields(CORE_LOG_WARN, "not ready",
                        json_pack("{s:s, s:s, s:s}", "reason", why, "sqlstate", err.sqlstate,
                                  "error", err.message));
    } else if (a.plan.changed || a.plan.unknown > a.plan.ahead) {
        xsnprintf(why, why_len,
                  "the database's migrations differ from this binary's: see "
                  "renkei migrate --status");
    } else if (a.plan.pending) {
        xsnprintf(why, why_len, "%d migrations are pending: run renkei migrate", a.plan.pending);
    } else {
        /* a newer binary migrated ahead (a rolling upgrade): its migrations
         * only add (README, "Upgrades"), so this one keeps serving */
        if (a.plan.ahead && !atomic_exchange(&ahead_logged, true))
            core_logf(CORE_LOG_WARN,
                      "the database has %d migrations newer than this binary: serving on, as a "
                      "rolling upgrade's older node; upgrade this binary",
                      a.plan.ahead);
        ok = true;
        *applied = (int)a.plan.n - a.plan.ahead;
    }
    core_migrate_plan_release(&a.plan);
    return ok;
}
