#ifndef CORE_DB_H
#define CORE_DB_H

#include <libpq-fe.h>
#include <stdatomic.h>

#include "core/core.h"

/*
 * PostgreSQL access: one pool of connections for the process. Pooled
 * connections run as the service role (SET ROLE renkei_service right after
 * connecting, so row-level security holds even when RENKEI_DB names a
 * superuser), with search_path pg_catalog, renkei, pg_temp. Statements are
 * prepared on a connection the first time it runs them, and again after a
 * reconnect. SET ROLE can be undone by RESET ROLE: it protects against our
 * own mistakes, not against SQL we did not write, which is why all SQL is
 * parameterized and a production login role is granted renkei_service only.
 */

/* A statement, declared once (static) by the function that owns it; the name
 * equals that function's name. */
struct core_stmt {
    const char *name;
    const char *sql;
    atomic_uint id; /* assigned on first use */
};
#define CORE_STMT(fn, sql_text)                                                                    \
    {                                                                                              \
        .name = fn, .sql = sql_text                                                                \
    }

struct core_db_conn;

/* What went wrong with the last statement on a connection. */
struct core_db_err {
    char sqlstate[6]; /* "" when the connection itself failed */
    char message[256];
};

enum core_db_rc {
    CORE_DB_OK = 0,      /* committed */
    CORE_DB_ROLLBACK,    /* the callback chose to roll back (its reason is in its arg) */
    CORE_DB_ERROR,       /* a statement failed; err says which SQLSTATE */
    CORE_DB_UNAVAILABLE, /* no connection, or it was lost (commit outcome unknown if lost at COMMIT)
                          */
};

/* When set (by `serve`), the first connection warns if the login role is a
 * superuser. */
extern bool core_db_warn_superuser;

/* Opens the pool (connections are made lazily). conninfo: libpq string. */
void core_db_init(const char *conninfo, int size);
/* Closes every connection; waits for none (call after the HTTP server stopped). */
void core_db_shutdown(void);
/* No connection is opened from now on (attempts fail at once): a start
 * stopped before it served waits only for the attempts in progress, not
 * for new ones its threads would begin (each up to libpq's 5 s). */
void core_db_refuse_connects(void);
/* Asks the server to cancel statements running on borrowed connections. */
void core_db_cancel_all(void);

/* Checks conninfo's syntax; on failure returns false and sets *err (caller frees). */
bool core_db_conninfo_ok(const char *conninfo, char **err);

/*
 * Runs a statement on c. values are text parameters (NULL: SQL NULL). Returns
 * the result (caller PQclear()s) when it succeeded, NULL when it failed: the
 * error is recorded on c and logged. Use inside a transaction callback.
 */
PGresult *core_db_exec(struct core_db_conn *c, struct core_stmt *st, int n,
                       const char *const *values);
/* Same with lengths and formats per parameter (binary bytea) and a result format. */
PGresult *core_db_execp(struct core_db_conn *c, struct core_stmt *st, int n,
                        const char *const *values, const int *lengths, const int *formats,
                        int result_format);
/*
 * Runs SQL text built at run time (exchange's NGSI filters) with every input
 * bound as a text parameter: sql must be constant pieces of the caller's
 * own, never request input. Unprepared (plans depend on the parameters).
 * Result or NULL as core_db_exec.
 */
PGresult *core_db_exec_sql(struct core_db_conn *c, const char *sql, int n,
                           const char *const *values);

/*
 * Runs a statement and COMMIT in one round trip (libpq pipeline mode), for a
 * transaction body whose last statement this is: the body must return
 * CORE_DB_OK right after, and the runner does not commit again. Returns the
 * statement's result (caller PQclear()s), or NULL when it or the COMMIT
 * failed; a connection lost here leaves the outcome unknown, as at COMMIT.
 */
PGresult *core_db_exec_commit(struct core_db_conn *c, struct core_stmt *st, int n,
                              const char *const *values);

/*
 * Runs sql, a COPY (...) TO STDOUT (FORMAT binary) of constant text (COPY
 * takes no parameters, so sql must splice no input), and hands each row's
 * fields to row (field NULL for SQL NULL, binary representations). row
 * returns false to stop early. Returns false when the statement or the
 * stream failed (recorded on c); rows already handed on stay handed on, so
 * use it only for reads whose callback can start over.
 */
typedef bool (*core_db_copy_row)(void *arg, int nfields, const char *const *field, const int *len);
bool core_db_copy_out(struct core_db_conn *c, const char *sql, core_db_copy_row row, void *arg);
/* The last error on c. */
const struct core_db_err *core_db_last_error(const struct core_db_conn *c);

enum core_tx_mode {
    CORE_TX_READ,         /* READ COMMITTED, READ ONLY */
    CORE_TX_WRITE,        /* READ COMMITTED */
    CORE_TX_SERIALIZABLE, /* SERIALIZABLE */
    CORE_TX_SNAPSHOT      /* REPEATABLE READ, READ ONLY: one snapshot for a long read */
};

/*
 * A transaction body. It runs statements on c and returns CORE_DB_OK to
 * commit, CORE_DB_ROLLBACK to roll back, or CORE_DB_ERROR when a statement
 * failed. It must not queue an HTTP reply: the runner may call it again
 * (serialization failure, deadlock, connection lost before COMMIT), so it
 * keeps its results in arg, resets them at its start, and the handler
 * replies once the runner has returned.
 */
typedef enum core_db_rc (*core_db_tx_fn)(struct core_db_conn *c, void *arg);

/* The tenant context of the platform itself (the prefecture's operator, the
 * CLI): row-level security policies let it through where they say
 * renkei.is_platform(). Only this exact pointer sets it; a tenant id that
 * merely reads "*" (from a request, say) is refused. */
extern const char CORE_DB_PLATFORM[];

/* A tenant id as Orion takes a Fiware-Service: 1-50 of [a-z0-9_]. */
bool core_tenant_id_ok(const char *id);

/*
 * Runs fn in a transaction with the tenant context set
 * (set_config('renkei.tenant', tenant, true); tenant NULL: no tenant, so
 * row-level security shows no tenant's rows; CORE_DB_PLATFORM: the platform).
 * A tenant that is not a valid id is our bug: refused with CORE_DB_ERROR.
 * Retries 40001 and 40P01 up to
 * 5 times, and a connection lost before COMMIT once on a fresh connection.
 * err (may be NULL) receives the failure.
 */
enum core_db_rc core_db_tx(const char *tenant, enum core_tx_mode mode, core_db_tx_fn fn, void *arg,
                           struct core_db_err *err);

/*
 * Like core_db_tx, and the body's first statement goes to the server with
 * BEGIN and the tenant context, all three in one round trip (libpq pipeline
 * mode): for hot transactions whose first statement does not depend on
 * anything the body computes. The body reads its result with
 * core_db_first_result(c, st) (borrowed, valid until the body returns; NULL
 * unless this transaction's first statement was st).
 */
struct core_db_first {
    struct core_stmt *st;
    int n;
    const char *const *values;
    int result_format; /* 0 text, 1 binary */
};
enum core_db_rc core_db_tx_first(const char *tenant, enum core_tx_mode mode,
                                 const struct core_db_first *first, core_db_tx_fn fn, void *arg,
                                 struct core_db_err *err);
PGresult *core_db_first_result(struct core_db_conn *c, const struct core_stmt *st);

/*
 * core_db_tx for a body that creates a row another node may create at the
 * same moment (the first key, say): a unique violation (23505) means it lost
 * that race, so the body runs again (up to 3 times) and then finds the
 * winner's row.
 */
enum core_db_rc core_db_tx_racing(const char *tenant, enum core_tx_mode mode, core_db_tx_fn fn,
                                  void *arg, struct core_db_err *err);

/*
 * A read of up to CORE_DB_READ_MAX statements built at run time (SQL as for
 * core_db_exec_sql) in one transaction of mode (CORE_TX_READ or
 * CORE_TX_SNAPSHOT) with the tenant context, sent with BEGIN and COMMIT in
 * one round trip (pipeline mode): for the hot reads whose statements do not
 * depend on each other. out[i] receives statement i's result (caller
 * PQclear()s each). A lost connection is retried once on a fresh one.
 */
#define CORE_DB_READ_MAX 4
struct core_db_query {
    const char *sql;
    int n;
    const char *const *values;
};
enum core_db_rc core_db_read(const char *tenant, enum core_tx_mode mode,
                             const struct core_db_query *qs, int nq, PGresult **out,
                             struct core_db_err *err);

/* Pool figures for /metrics and /readyz. */
struct core_db_stats {
    int size, connected, in_use, waiting;
    unsigned long long connect_failures, acquire_timeouts;
};
void core_db_stats(struct core_db_stats *out);

#endif
