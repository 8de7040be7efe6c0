#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/db.h"
#include "core/db_internal.h"
#include "core/log.h"

#define ACQUIRE_TIMEOUT_MS 5000
/* After a failed connect, requests fail at once for this long instead of each
 * waiting out its own connect attempt (a database that is down or
 * black-holed would otherwise hold every worker). */
#define DOWN_BACKOFF_US 1000000

static const char *const session_setup = "SET search_path TO pg_catalog, renkei, public;"
                                         "SET TIME ZONE 'UTC';"
                                         "SET statement_timeout = '10s';"
                                         "SET synchronous_commit = on;"
                                         "SET idle_in_transaction_session_timeout = '60s';"
                                         /* a statement outside BEGIN (core_db_read's
                                          * single ones) only reads; writes say
                                          * READ WRITE */
                                         "SET default_transaction_read_only = on;"
                                         "SET ROLE renkei_service";

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct core_db_conn *conns;
    int size;
    int in_use;
    int waiting;
    int connected; /* connections open, under mu */
    char *conninfo;
    uint64_t down_until;         /* after a failed connect, fail fast until then (us), under mu */
    struct core_db_err down_err; /* why, under mu */
    atomic_bool superuser_checked;
    atomic_bool no_new; /* core_db_refuse_connects */
    atomic_ullong connect_failures;
    atomic_ullong acquire_timeouts;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER};

static atomic_uint next_stmt_id;

/* libpq messages span lines ("...\n\tThis probably means..."): one line keeps
 * log lines and error bodies readable. */
static void one_line(char *s)
{
    char *w = s;
    bool space = false;
    for (char *r = s; *r; r++) {
        if (*r == '\n' || *r == '\t' || *r == '\r' || *r == ' ') {
            space = true;
            continue;
        }
        if (space && w != s)
            *w++ = ' ';
        space = false;
        *w++ = *r;
    }
    *w = '\0';
}

/* Server notices (a WARNING before a forced disconnect, say) go to our log,
 * not to libpq's default of raw stderr. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    char *m = xstrdup(message);
    one_line(m);
    core_log_fields(CORE_LOG_INFO, "database notice", json_pack("{s:s}", "notice", m));
    free(m);
}

bool core_db_conninfo_ok(const char *conninfo, char **err)
{
    /* A bare database name is fine too: libpq takes it as dbname. */
    if (!strchr(conninfo, '=') && strncmp(conninfo, "postgres://", 11) != 0 &&
        strncmp(conninfo, "postgresql://", 13) != 0)
        return true;
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
    if (!opts) {
        size_t n = msg ? strlen(msg) : 0;
        while (n && msg[n - 1] == '\n')
            msg[--n] = '\0';
        *err = xasprintf("RENKEI_DB: not a valid libpq connection string: %s",
                         msg ? msg : "out of memory");
        PQfreemem(msg);
        return false;
    }
    PQconninfoFree(opts);
    return true;
}

void core_db_init(const char *conninfo, int size)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pool.cv, &attr);
    pthread_condattr_destroy(&attr);
    pool.conninfo = xstrdup(conninfo);
    pool.size = size;
    pool.conns = xcalloc((size_t)size, sizeof *pool.conns);
}

/* Closes c. With the pool's mutex held (locked) or not; either way it waits
 * for a cancel request being sent on c to finish before freeing it. */
static void conn_close(struct core_db_conn *c, bool locked)
{
    if (!locked)
        pthread_mutex_lock(&pool.mu);
    while (c->cancelling)
        pthread_cond_wait(&pool.cv, &pool.mu);
    PGcancel *cancel = c->cancel;
    c->cancel = NULL;
    if (c->pg)
        pool.connected--;
    PGconn *pg = c->pg;
    c->pg = NULL;
    if (!locked)
        pthread_mutex_unlock(&pool.mu);
    if (cancel)
        PQfreeCancel(cancel);
    if (pg)
        PQfinish(pg);
    core_db_conn_forget(c);
}

void core_db_conn_forget_statements(struct core_db_conn *c)
{
    memset(c->prepared, 0, sizeof c->prepared);
    for (size_t i = 0; i < CORE_DB_DYN_STMTS; i++) {
        free(c->dyn[i].sql);
        c->dyn[i] = (struct core_db_dyn){0};
    }
    c->dyn_lost = false;
}

void core_db_conn_forget(struct core_db_conn *c)
{
    core_db_conn_forget_statements(c);
    c->session_tenant[0] = '\0';
    c->session_known = true; /* a new session has none */
}

void core_db_shutdown(void)
{
    if (!pool.conns)
        return;
    for (int i = 0; i < pool.size; i++)
        conn_close(&pool.conns[i], false);
    free(pool.conns);
    free(pool.conninfo);
    pool.conns = NULL;
    pool.conninfo = NULL;
    pthread_cond_destroy(&pool.cv);
}

void core_db_cancel_all(void)
{
    char errbuf[256];
    for (int i = 0; i < pool.size; i++) {
        struct core_db_conn *c = &pool.conns[i];
        pthread_mutex_lock(&pool.mu);
        bool go = c->busy && c->cancel && !c->cancelling;
        if (go)
            c->cancelling = true;
        pthread_mutex_unlock(&pool.mu);
        if (!go)
            continue;
        /* PQcancel opens a connection of its own: never under the mutex */
        PQcancel(c->cancel, errbuf, sizeof errbuf);
        pthread_mutex_lock(&pool.mu);
        c->cancelling = false;
        pthread_cond_broadcast(&pool.cv);
        pthread_mutex_unlock(&pool.mu);
    }
}

void core_db_record_error(struct core_db_conn *c, PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    if (!msg || !*msg)
        msg = c->pg ? PQerrorMessage(c->pg) : "no connection";
    xsnprintf(c->err.sqlstate, sizeof c->err.sqlstate, "%s", state ? state : "");
    xsnprintf(c->err.message, sizeof c->err.message, "%s", msg);
    one_line(c->err.message);
    /* Integrity violations are usually a peer's input (a duplicate, say);
     * anything else from a statement means our SQL or our database broke,
     * or the connection went away. */
    bool lost = core_db_conn_lost(c) || !c->err.sqlstate[0] ||
                strncmp(c->err.sqlstate, "08", 2) == 0 || strncmp(c->err.sqlstate, "57", 2) == 0;
    /* Class 40 (serialization failure, deadlock) is retried by the runner. */
    bool peer = strncmp(c->err.sqlstate, "23", 2) == 0 || strncmp(c->err.sqlstate, "40", 2) == 0;
    enum core_log_level lvl = peer ? CORE_LOG_INFO : lost ? CORE_LOG_WARN : CORE_LOG_ERROR;
    core_log_fields(lvl, "database statement failed",
                    json_pack("{s:s, s:s, s:s}", "statement", what, "sqlstate", c->err.sqlstate,
                              "error", c->err.message));
}

bool core_db_conn_lost(const struct core_db_conn *c)
{
    return !c->pg || PQstatus(c->pg) != CONNECTION_OK;
}

/* Warns once when the login role is a superuser: row-level security then
 * rests on SET ROLE alone, which is fine for a developer, not for production. */
bool core_db_warn_superuser;

static void check_superuser(PGconn *pg)
{
    if (!core_db_warn_superuser || atomic_exchange(&pool.superuser_checked, true))
        return;
    /* the server reports it at connection start: no query, unless a pooler
     * in between passed the report on */
    const char *su = PQparameterStatus(pg, "is_superuser");
    bool super = su && strcmp(su, "on") == 0;
    if (!su) {
        PGresult *r = PQexec(pg, "SELECT rolsuper FROM pg_roles WHERE rolname = session_user");
        super = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
    }
    if (super)
        core_logf(CORE_LOG_WARN, "RENKEI_DB logs in as a superuser; the hub still runs as "
                                 "renkei_service, but in production log in as a role that is "
                                 "only granted renkei_service");
}

void core_db_refuse_connects(void)
{
    atomic_store(&pool.no_new, true);
}

static bool conn_open(struct core_db_conn *c, struct core_db_err *err)
{
    conn_close(c, false);
    if (atomic_load(&pool.no_new)) {
        err->sqlstate[0] = '\0';
        xsnprintf(err->message, sizeof err->message, "the hub is stopping");
        return false;
    }
    pthread_mutex_lock(&pool.mu);
    bool down = core_now_us() < pool.down_until;
    if (down)
        *err = pool.down_err;
    pthread_mutex_unlock(&pool.mu);
    if (down)
        return false; /* the last attempt just failed: do not queue behind another */
    const char *keys[] = {"application_name", "connect_timeout", "keepalives",
                          "keepalives_idle",  "dbname",          NULL};
    const char *vals[] = {"renkei", "5", "1", "30", pool.conninfo, NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    PQsetNoticeProcessor(pg, on_notice, NULL);
    PGresult *r = NULL;
    if (PQstatus(pg) != CONNECTION_OK) {
        xsnprintf(err->message, sizeof err->message, "cannot connect to the database: %s",
                  PQerrorMessage(pg));
        err->sqlstate[0] = '\0';
        goto fail;
    }
    check_superuser(pg);
    r = PQexec(pg, session_setup);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        xsnprintf(err->sqlstate, sizeof err->sqlstate, "%s", state ? state : "");
        if (state && (strcmp(state, "22023") == 0 || strcmp(state, "42704") == 0 ||
                      strcmp(state, "42501") == 0))
            xsnprintf(err->message, sizeof err->message,
                      "cannot SET ROLE renkei_service (run renkei migrate, and grant "
                      "renkei_service to the login role): %s",
                      PQresultErrorMessage(r));
        else
            xsnprintf(err->message, sizeof err->message, "session set-up failed: %s",
                      PQresultErrorMessage(r));
        goto fail;
    }
    PQclear(r);
    pthread_mutex_lock(&pool.mu);
    c->pg = pg;
    c->cancel = PQgetCancel(pg);
    core_db_conn_forget(c);
    pool.connected++;
    pool.down_until = 0;
    pthread_mutex_unlock(&pool.mu);
    return true;
fail:
    PQclear(r);
    PQfinish(pg);
    one_line(err->message);
    atomic_fetch_add(&pool.connect_failures, 1);
    pthread_mutex_lock(&pool.mu);
    pool.down_until = core_now_us() + DOWN_BACKOFF_US;
    pool.down_err = *err;
    pthread_mutex_unlock(&pool.mu);
    core_log_fields(CORE_LOG_WARN, "database connection failed",
                    json_pack("{s:s}", "error", err->message));
    return false;
}

struct core_db_conn *core_db_acquire(struct core_db_err *err)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ACQUIRE_TIMEOUT_MS / 1000;
    struct core_db_conn *c = NULL;

    pthread_mutex_lock(&pool.mu);
    while (!c) {
        struct core_db_conn *unconnected = NULL;
        for (int i = 0; i < pool.size; i++) {
            if (pool.conns[i].busy)
                continue;
            if (pool.conns[i].pg) {
                c = &pool.conns[i];
                break;
            }
            if (!unconnected)
                unconnected = &pool.conns[i];
        }
        if (!c)
            c = unconnected;
        if (c)
            break;
        pool.waiting++;
        int rc = pthread_cond_timedwait(&pool.cv, &pool.mu, &deadline);
        pool.waiting--;
        if (rc == ETIMEDOUT) {
            pthread_mutex_unlock(&pool.mu);
            atomic_fetch_add(&pool.acquire_timeouts, 1);
            err->sqlstate[0] = '\0';
            xsnprintf(err->message, sizeof err->message, "no database connection free within %d ms",
                      ACQUIRE_TIMEOUT_MS);
            return NULL;
        }
    }
    c->busy = true;
    pool.in_use++;
    pthread_mutex_unlock(&pool.mu);

    if (core_db_conn_lost(c) && !conn_open(c, err)) {
        core_db_release(c);
        return NULL;
    }
    c->err.sqlstate[0] = '\0';
    c->err.message[0] = '\0';
    return c;
}

void core_db_release(struct core_db_conn *c)
{
    if (c->pg && PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        /* A transaction left open is our bug; never hand it to the next user. */
        core_log_bug("connection returned to the pool inside a transaction");
        conn_close(c, false);
    } else if (c->pg && PQstatus(c->pg) != CONNECTION_OK) {
        conn_close(c, false);
    }
    pthread_mutex_lock(&pool.mu);
    c->busy = false;
    pool.in_use--;
    pthread_cond_signal(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
}

const struct core_db_err *core_db_last_error(const struct core_db_conn *c)
{
    return &c->err;
}

static unsigned stmt_id(struct core_stmt *st)
{
    unsigned id = atomic_load(&st->id);
    if (id)
        return id;
    unsigned fresh = atomic_fetch_add(&next_stmt_id, 1) + 1;
    if (atomic_compare_exchange_strong(&st->id, &id, fresh))
        return fresh;
    return id; /* another thread assigned it first; fresh is simply unused */
}

bool core_db_prepare(struct core_db_conn *c, struct core_stmt *st)
{
    unsigned id = stmt_id(st);
    if (id >= CORE_DB_MAX_STMTS) {
        core_log_bug("more than %d prepared statements", CORE_DB_MAX_STMTS);
        abort();
    }
    if (c->prepared[id])
        return true;
    PGresult *p = PQprepare(c->pg, st->name, st->sql, 0, NULL);
    bool ok = PQresultStatus(p) == PGRES_COMMAND_OK;
    if (!ok)
        core_db_record_error(c, p, st->name);
    PQclear(p);
    c->prepared[id] = ok;
    return ok;
}

PGresult *core_db_execp(struct core_db_conn *c, struct core_stmt *st, int n,
                        const char *const *values, const int *lengths, const int *formats,
                        int result_format)
{
    if (!core_db_prepare(c, st))
        return NULL;
    PGresult *r = PQexecPrepared(c->pg, st->name, n, values, lengths, formats, result_format);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        core_db_record_error(c, r, st->name);
        PQclear(r);
        return NULL;
    }
    return r;
}

PGresult *core_db_exec(struct core_db_conn *c, struct core_stmt *st, int n,
                       const char *const *values)
{
    return core_db_execp(c, st, n, values, NULL, NULL, 0);
}

PGresult *core_db_exec_sql(struct core_db_conn *c, const char *sql, int n,
                           const char *const *values)
{
    PGresult *r = PQexecParams(c->pg, sql, n, NULL, values, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        core_db_record_error(c, r, "dynamic");
        PQclear(r);
        return NULL;
    }
    return r;
}

/* Reads one pipelined query's result (then its terminating NULL). */
static PGresult *pipe_result(PGconn *pg)
{
    PGresult *r = PQgetResult(pg), *extra;
    while ((extra = PQgetResult(pg)) != NULL)
        PQclear(extra);
    return r;
}

PGresult *core_db_exec_commit(struct core_db_conn *c, struct core_stmt *st, int n,
                              const char *const *values)
{
    if (!core_db_prepare(c, st))
        return NULL;
    c->commit_sent = true;
    if (!PQenterPipelineMode(c->pg) ||
        !PQsendQueryPrepared(c->pg, st->name, n, values, NULL, NULL, 0) ||
        !PQsendQueryParams(c->pg, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) ||
        !PQpipelineSync(c->pg)) {
        core_db_record_error(c, NULL, st->name);
        PQexitPipelineMode(c->pg);
        return NULL;
    }
    PGresult *r = pipe_result(c->pg);
    PGresult *commit = pipe_result(c->pg);
    PGresult *sync = PQgetResult(c->pg);
    bool ok = true;
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        core_db_record_error(c, r, st->name);
        ok = false;
    } else if (PQresultStatus(commit) != PGRES_COMMAND_OK ||
               strcmp(PQcmdStatus(commit), "COMMIT") != 0) {
        core_db_record_error(c, commit, "COMMIT");
        ok = false;
    }
    PQclear(commit);
    PQclear(sync);
    PQexitPipelineMode(c->pg);
    if (!ok) {
        PQclear(r);
        return NULL;
    }
    c->committed = true;
    return r;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#define COPY_MAX_FIELDS 16

/* Parses one CopyData message of a binary COPY: the file header (once),
 * then tuples. -1: malformed; 0: go on; 1: the trailer or row() said stop. */
static int copy_message(const unsigned char *p, size_t n, bool *header, core_db_copy_row row,
                        void *arg)
{
    static const unsigned char sig[11] = "PGCOPY\n\377\r\n";
    size_t off = 0;
    if (!*header) {
        if (n < 19 || memcmp(p, sig, 11) != 0)
            return -1;
        uint32_t ext = get32(p + 15);
        if (ext > n - 19)
            return -1;
        off = 19 + ext;
        *header = true;
    }
    while (off < n) {
        if (n - off < 2)
            return -1;
        int16_t nf = (int16_t)(p[off] << 8 | p[off + 1]);
        off += 2;
        if (nf == -1)
            return 1;
        if (nf < 0 || nf > COPY_MAX_FIELDS)
            return -1;
        const char *field[COPY_MAX_FIELDS];
        int len[COPY_MAX_FIELDS];
        for (int i = 0; i < nf; i++) {
            if (n - off < 4)
                return -1;
            int32_t l = (int32_t)get32(p + off);
            off += 4;
            if (l == -1) {
                field[i] = NULL;
                len[i] = 0;
                continue;
            }
            if (l < 0 || (size_t)l > n - off)
                return -1;
            field[i] = (const char *)p + off;
            len[i] = l;
            off += (size_t)l;
        }
        if (!row(arg, nf, field, len))
            return 1;
    }
    return 0;
}

bool core_db_copy_out(struct core_db_conn *c, const char *sql, core_db_copy_row row, void *arg)
{
    PGresult *r = PQexec(c->pg, sql);
    if (PQresultStatus(r) != PGRES_COPY_OUT) {
        core_db_record_error(c, r, "copy out");
        PQclear(r);
        return false;
    }
    PQclear(r);
    bool header = false, ok = true, stopped = false;
    char *buf;
    int n;
    while ((n = PQgetCopyData(c->pg, &buf, 0)) > 0) {
        if (ok && !stopped) {
            int rc = copy_message((const unsigned char *)buf, (size_t)n, &header, row, arg);
            if (rc < 0) {
                core_log_bug("malformed binary COPY data");
                ok = false;
            }
            stopped = rc == 1;
        }
        PQfreemem(buf);
    }
    /* -1: done, then the command's result; -2: the stream failed */
    while ((r = PQgetResult(c->pg)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            core_db_record_error(c, r, "copy out");
            ok = false;
        }
        PQclear(r);
    }
    if (n == -2)
        ok = false;
    return ok;
}

void core_db_stats(struct core_db_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&pool.mu);
    out->size = pool.size;
    out->in_use = pool.in_use;
    out->waiting = pool.waiting;
    out->connected = pool.connected;
    pthread_mutex_unlock(&pool.mu);
    out->connect_failures = atomic_load(&pool.connect_failures);
    out->acquire_timeouts = atomic_load(&pool.acquire_timeouts);
}

void core_db_close_idle(void)
{
    pthread_mutex_lock(&pool.mu);
    for (int i = 0; i < pool.size; i++) {
        if (!pool.conns[i].busy)
            conn_close(&pool.conns[i], true);
    }
    pthread_mutex_unlock(&pool.mu);
}
