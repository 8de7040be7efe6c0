#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/crypto.h"
#include "core/db_internal.h"

#define SERIALIZATION_RETRIES 5
#define CONNECTION_RETRIES    1

static const char *const begin_sql[] = {
    [CORE_TX_READ] = "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY",
    [CORE_TX_WRITE] = "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE",
    [CORE_TX_SERIALIZABLE] = "BEGIN ISOLATION LEVEL SERIALIZABLE READ WRITE",
    [CORE_TX_SNAPSHOT] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
};

const char CORE_DB_PLATFORM[] = "*";

bool core_tenant_id_ok(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++) {
        char c = id[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') || n >= 50)
            return false;
    }
    return n > 0;
}

static struct core_stmt set_tenant =
    CORE_STMT("core_db_tx_set_tenant", "SELECT set_config('renkei.tenant', $1, true)");

static struct core_stmt set_session_tenant =
    CORE_STMT("core_db_set_session_tenant", "SELECT set_config('renkei.tenant', $1, false)");

/* The tenant a transaction sets locally: its own, or "" to hide a session
 * value left by core_db_read when it wants none; NULL when nothing needs
 * saying. */
static const char *tx_tenant(const struct core_db_conn *c, const char *tenant)
{
    if (tenant)
        return tenant;
    return !c->session_known || c->session_tenant[0] ? "" : NULL;
}

/* Runs a statement that takes no parameters and returns no rows. */
static bool simple(struct core_db_conn *c, const char *sql, const char *expect_tag)
{
    PGresult *r = PQexec(c->pg, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK &&
              (!expect_tag || strcmp(PQcmdStatus(r), expect_tag) == 0);
    if (!ok) {
        if (PQresultStatus(r) == PGRES_COMMAND_OK) {
            /* COMMIT of a failed transaction answers ROLLBACK: the body
             * ignored an error. That is our bug, and nothing was saved. */
            core_log_bug("%s answered %s: a transaction body ignored a failed statement", sql,
                         PQcmdStatus(r));
            xsnprintf(c->err.sqlstate, sizeof c->err.sqlstate, "XX000");
            xsnprintf(c->err.message, sizeof c->err.message, "transaction was rolled back");
        } else {
            core_db_record_error(c, r, sql);
        }
    }
    PQclear(r);
    return ok;
}

static bool retryable(const struct core_db_err *e)
{
    return strcmp(e->sqlstate, "40001") == 0 || strcmp(e->sqlstate, "40P01") == 0;
}

static void backoff(int attempt)
{
    unsigned char r;
    core_random(&r, 1);
    long ms = (long)attempt * 2 + r % 8;
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

enum phase { BEFORE_COMMIT, AT_COMMIT };

/* BEGIN, the tenant context and a first statement in one round trip
 * (pipeline mode). The first statement's result is kept in c->first. */
static bool begin(struct core_db_conn *c, enum core_tx_mode mode, const char *tenant,
                  const struct core_db_first *first)
{
    if (first && !core_db_prepare(c, first->st))
        return false;
    tenant = tx_tenant(c, tenant);
    if (!PQenterPipelineMode(c->pg) ||
        !PQsendQueryParams(c->pg, begin_sql[mode], 0, NULL, NULL, NULL, NULL, 0) ||
        (tenant && !PQsendQueryParams(c->pg, set_tenant.sql, 1, NULL, &tenant, NULL, NULL, 0)) ||
        (first && !PQsendQueryPrepared(c->pg, first->st->name, first->n, first->values, NULL, NULL,
                                       first->result_format)) ||
        !PQpipelineSync(c->pg)) {
        core_db_record_error(c, NULL, "BEGIN");
        PQexitPipelineMode(c->pg);
        return false;
    }
    bool ok = true;
    int sent = 1 + (tenant != NULL) + (first != NULL);
    for (int i = 0; i < sent; i++) {
        PGresult *r = PQgetResult(c->pg), *extra;
        while ((extra = PQgetResult(c->pg)) != NULL)
            PQclear(extra);
        ExecStatusType s = PQresultStatus(r);
        if (ok && s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
            core_db_record_error(c, r,
                                 i == 0             ? "BEGIN"
                                 : tenant && i == 1 ? set_tenant.name
                                                    : first->st->name);
            ok = false;
        }
        if (ok && first && i == sent - 1) {
            c->first = r;
            c->first_stmt = first->st;
        } else
            PQclear(r);
    }
    PQclear(PQgetResult(c->pg)); /* the sync */
    PQexitPipelineMode(c->pg);
    return ok;
}

PGresult *core_db_first_result(struct core_db_conn *c, const struct core_stmt *st)
{
    return c->first && c->first_stmt == st ? c->first : NULL;
}

static enum core_db_rc run_once(struct core_db_conn *c, const char *tenant, enum core_tx_mode mode,
                                const struct core_db_first *first, core_db_tx_fn fn, void *arg,
                                enum phase *phase)
{
    *phase = BEFORE_COMMIT;
    c->commit_sent = c->committed = false;
    if (!begin(c, mode, tenant, first))
        goto rollback;
    enum core_db_rc rc = fn(c, arg);
    PQclear(c->first);
    c->first = NULL;
    c->first_stmt = NULL;
    if (c->commit_sent)
        *phase = AT_COMMIT;
    if (rc == CORE_DB_OK && c->committed)
        return CORE_DB_OK;
    if (rc == CORE_DB_OK && c->commit_sent) {
        core_log_bug("a transaction body went on after core_db_exec_commit failed");
        rc = CORE_DB_ERROR;
    }
    if (rc != CORE_DB_OK) {
        if (rc == CORE_DB_ERROR && !c->err.message[0]) {
            core_log_bug("a transaction body returned an error without a failed statement");
            xsnprintf(c->err.message, sizeof c->err.message, "transaction body failed");
        }
        if (!core_db_conn_lost(c))
            simple(c, "ROLLBACK", NULL);
        return rc;
    }
    *phase = AT_COMMIT;
    if (!simple(c, "COMMIT", "COMMIT"))
        return CORE_DB_ERROR;
    return CORE_DB_OK;
rollback:
    if (!core_db_conn_lost(c))
        simple(c, "ROLLBACK", NULL);
    return CORE_DB_ERROR;
}

enum core_db_rc core_db_tx(const char *tenant, enum core_tx_mode mode, core_db_tx_fn fn, void *arg,
                           struct core_db_err *err)
{
    return core_db_tx_first(tenant, mode, NULL, fn, arg, err);
}

enum core_db_rc core_db_tx_first(const char *tenant, enum core_tx_mode mode,
                                 const struct core_db_first *first, core_db_tx_fn fn, void *arg,
                                 struct core_db_err *err)
{
    struct core_db_err local;
    if (!err)
        err = &local;
    memset(err, 0, sizeof *err);
    if (tenant && tenant != CORE_DB_PLATFORM && !core_tenant_id_ok(tenant)) {
        core_log_bug("transaction for an invalid tenant id");
        xsnprintf(err->message, sizeof err->message, "invalid tenant context");
        return CORE_DB_ERROR;
    }
    int serial = 0, lost = 0;
    for (;;) {
        struct core_db_conn *c = core_db_acquire(err);
        if (!c)
            return CORE_DB_UNAVAILABLE;
        enum phase phase;
        enum core_db_rc rc = run_once(c, tenant, mode, first, fn, arg, &phase);
        bool conn_lost = core_db_conn_lost(c);
        *err = c->err;
        core_db_release(c);
        if (rc == CORE_DB_OK || rc == CORE_DB_ROLLBACK)
            return rc;
        if (conn_lost) {
            core_db_close_idle();
            if (phase == AT_COMMIT) {
                xsnprintf(err->message, sizeof err->message,
                          "connection lost during COMMIT: outcome unknown");
                return CORE_DB_UNAVAILABLE;
            }
            if (lost++ < CONNECTION_RETRIES)
                continue;
            return CORE_DB_UNAVAILABLE;
        }
        if (rc == CORE_DB_ERROR && retryable(err) && serial++ < SERIALIZATION_RETRIES) {
            backoff(serial);
            continue;
        }
        return rc;
    }
}

enum core_db_rc core_db_tx_racing(const char *tenant, enum core_tx_mode mode, core_db_tx_fn fn,
                                  void *arg, struct core_db_err *err)
{
    struct core_db_err local;
    if (!err)
        err = &local;
    enum core_db_rc rc = CORE_DB_ERROR;
    for (int attempt = 0; attempt < 3; attempt++) {
        rc = core_db_tx(tenant, mode, fn, arg, err);
        if (rc != CORE_DB_ERROR || strcmp(err->sqlstate, "23505") != 0)
            break;
    }
    return rc;
}

static uint64_t sql_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* The slot keeping sql prepared on c, or NULL; *fresh: a slot to prepare
 * it in (its old statement, if any, to be deallocated first). */
static struct core_db_dyn *dyn_find(struct core_db_conn *c, const char *sql, uint64_t h,
                                    struct core_db_dyn **fresh)
{
    struct core_db_dyn *lru = &c->dyn[0];
    for (size_t i = 0; i < CORE_DB_DYN_STMTS; i++) {
        struct core_db_dyn *d = &c->dyn[i];
        if (d->sql && d->hash == h && strcmp(d->sql, sql) == 0) {
            d->used = ++c->dyn_uses;
            return d;
        }
        if (!d->sql ? lru->sql != NULL : lru->sql && d->used < lru->used)
            lru = d;
    }
    *fresh = lru;
    return NULL;
}

/* What one statement of a read sends and receives. */
struct read_step {
    struct core_db_dyn *dyn;
    bool prepare;  /* the statement is prepared in this pipeline */
    char drop[24]; /* a statement deallocated first to make room ("" none) */
    char *sql;     /* the text the slot will hold once prepared */
};

/*
 * One pipelined read on c, in one round trip. A single statement in READ
 * mode runs on its own (autocommit), under the session-level tenant, set
 * first only when it differs from what the session holds; several, or a
 * snapshot, run in BEGIN ... COMMIT with the tenant set locally. Statements
 * are prepared once per connection and reused. False with the error
 * recorded on c (and a transaction rolled back while the connection is
 * still there).
 */
static bool read_once(struct core_db_conn *c, enum core_tx_mode mode, const char *tenant,
                      const struct core_db_query *qs, int nq, PGresult **out)
{
    if (c->dyn_lost) {
        /* a statement nothing names any more may be left on the server:
         * start over rather than let such strays pile up */
        if (!simple(c, "DEALLOCATE ALL", NULL))
            return false;
        core_db_conn_forget_statements(c);
    }
    bool single = mode == CORE_TX_READ && nq == 1;
    const char *want = tenant ? tenant : "";
    /* tenant ids are at most 50 bytes (core_tenant_id_ok), so one fits */
    bool set_session = single && (!c->session_known || strcmp(c->session_tenant, want) != 0);
    const char *local = single ? NULL : tx_tenant(c, tenant);
    struct read_step steps[CORE_DB_READ_MAX];
    memset(steps, 0, sizeof steps);
    for (int i = 0; i < nq; i++) {
        uint64_t h = sql_hash(qs[i].sql);
        struct core_db_dyn *fresh = NULL;
        steps[i].dyn = dyn_find(c, qs[i].sql, h, &fresh);
        if (steps[i].dyn)
            continue;
        for (int j = 0; j < i; j++) /* two of one read may share a slot only once */
            if (steps[j].dyn == fresh)
                fresh = NULL;
        if (!fresh)
            continue; /* run unprepared */
        if (fresh->sql)
            memcpy(steps[i].drop, fresh->name, sizeof steps[i].drop);
        free(fresh->sql);
        fresh->sql = NULL;
        fresh->hash = h;
        snprintf(fresh->name, sizeof fresh->name, "renkei_dyn_%lu", ++c->dyn_names);
        fresh->used = ++c->dyn_uses;
        steps[i].dyn = fresh;
        steps[i].prepare = true;
        steps[i].sql = xstrdup(qs[i].sql);
    }

    enum kind { K_SETUP, K_COMMIT, K_DROP, K_PREPARE, K_QUERY };
    struct {
        enum kind kind;
        int q;
    } res[3 + 3 * CORE_DB_READ_MAX];
    int sent = 0;
    bool sent_ok = PQenterPipelineMode(c->pg);
    if (sent_ok && !single) {
        sent_ok = PQsendQueryParams(c->pg, begin_sql[mode], 0, NULL, NULL, NULL, NULL, 0);
        res[sent].kind = K_SETUP;
        res[sent++].q = -1;
    }
    if (sent_ok && (set_session || local)) {
        const char *sql = set_session ? set_session_tenant.sql : set_tenant.sql;
        const char *v = set_session ? want : local;
        sent_ok = PQsendQueryParams(c->pg, sql, 1, NULL, &v, NULL, NULL, 0);
        res[sent].kind = K_SETUP;
        res[sent++].q = -1;
    }
    for (int i = 0; sent_ok && i < nq; i++) {
        struct read_step *st = &steps[i];
        if (st->drop[0]) {
            char sql[48];
            snprintf(sql, sizeof sql, "DEALLOCATE %s", st->drop);
            sent_ok = PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0);
            res[sent].kind = K_DROP;
            res[sent++].q = i;
        }
        if (sent_ok && st->prepare) {
            sent_ok = PQsendPrepare(c->pg, st->dyn->name, qs[i].sql, 0, NULL);
            res[sent].kind = K_PREPARE;
            res[sent++].q = i;
        }
        if (sent_ok)
            sent_ok = st->dyn ? PQsendQueryPrepared(c->pg, st->dyn->name, qs[i].n, qs[i].values,
                                                    NULL, NULL, 0)
                              : PQsendQueryParams(c->pg, qs[i].sql, qs[i].n, NULL, qs[i].values,
                                                  NULL, NULL, 0);
        res[sent].kind = K_QUERY;
        res[sent++].q = i;
    }
    if (sent_ok && !single) {
        sent_ok = PQsendQueryParams(c->pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
        res[sent].kind = K_COMMIT;
        res[sent++].q = -1;
    }
    if (!sent_ok || !PQpipelineSync(c->pg)) {
        core_db_record_error(c, NULL, "dynamic");
        PQexitPipelineMode(c->pg);
        for (int i = 0; i < nq; i++)
            free(steps[i].sql); /* the slot stays free: nothing was prepared */
        c->session_known = false;
        return false;
    }
    bool ok = true;
    for (int k = 0; k < sent; k++) {
        PGresult *r = PQgetResult(c->pg), *extra;
        while ((extra = PQgetResult(c->pg)) != NULL)
            PQclear(extra);
        ExecStatusType st = PQresultStatus(r);
        enum kind kind = res[k].kind;
        bool failed =
            st == PGRES_FATAL_ERROR || st == PGRES_PIPELINE_ABORTED || r == NULL ||
            (kind == K_COMMIT && (st != PGRES_COMMAND_OK || strcmp(PQcmdStatus(r), "COMMIT")));
        if (kind == K_DROP && failed)
            c->dyn_lost = true;
        if (kind == K_PREPARE && !failed) {
            /* the statement exists now: the slot may name it */
            struct read_step *rs = &steps[res[k].q];
            rs->dyn->sql = rs->sql;
            rs->sql = NULL;
        }
        if (ok && failed) {
            core_db_record_error(c, r,
                                 kind == K_QUERY    ? "dynamic"
                                 : kind == K_COMMIT ? "COMMIT"
                                 : kind == K_SETUP  ? "BEGIN"
                                                    : "PREPARE");
            ok = false;
        }
        if (ok && kind == K_QUERY)
            out[res[k].q] = r;
        else
            PQclear(r);
    }
    PGresult *sync = PQgetResult(c->pg);
    bool synced = PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
    PQexitPipelineMode(c->pg);
    for (int i = 0; i < nq; i++)
        free(steps[i].sql); /* a preparation that did not happen */
    if (set_session) {
        /* known again only when it surely took */
        c->session_known =
            ok && synced && xsnprintf(c->session_tenant, sizeof c->session_tenant, "%s", want);
    }
    if (!ok) {
        for (int i = 0; i < nq; i++) {
            PQclear(out[i]);
            out[i] = NULL;
        }
        if (!single && !core_db_conn_lost(c))
            simple(c, "ROLLBACK", NULL);
    }
    return ok;
}

enum core_db_rc core_db_read(const char *tenant, enum core_tx_mode mode,
                             const struct core_db_query *qs, int nq, PGresult **out,
                             struct core_db_err *err)
{
    struct core_db_err local;
    if (!err)
        err = &local;
    memset(err, 0, sizeof *err);
    for (int i = 0; i < nq; i++)
        out[i] = NULL;
    if ((tenant && tenant != CORE_DB_PLATFORM && !core_tenant_id_ok(tenant)) || nq < 1 ||
        nq > CORE_DB_READ_MAX || (mode != CORE_TX_READ && mode != CORE_TX_SNAPSHOT)) {
        core_log_bug("core_db_read called with a bad tenant, count or mode");
        xsnprintf(err->message, sizeof err->message, "invalid read");
        return CORE_DB_ERROR;
    }
    for (int lost = 0;; lost++) {
        struct core_db_conn *c = core_db_acquire(err);
        if (!c)
            return CORE_DB_UNAVAILABLE;
        memset(&c->err, 0, sizeof c->err);
        bool ok = read_once(c, mode, tenant, qs, nq, out);
        bool conn_lost = core_db_conn_lost(c);
        *err = c->err;
        core_db_release(c);
        if (ok)
            return CORE_DB_OK;
        if (!conn_lost)
            return CORE_DB_ERROR;
        core_db_close_idle();
        if (lost >= CONNECTION_RETRIES)
            return CORE_DB_UNAVAILABLE;
    }
}
