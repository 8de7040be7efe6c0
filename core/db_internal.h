#ifndef CORE_DB_INTERNAL_H
#define CORE_DB_INTERNAL_H

#include <libpq-fe.h>
#include <stdint.h>

#include "core/db.h"
#include "core/log.h"

#define CORE_DB_MAX_STMTS 1024
/* Statements built at run time that a connection keeps prepared (the
 * least recently used goes when a new one needs room). */
#define CORE_DB_DYN_STMTS 64

struct core_db_dyn {
    uint64_t hash;
    char *sql;          /* NULL: a free slot */
    char name[24];      /* "renkei_dyn_<n>", never reused on a connection */
    unsigned long used; /* the connection's use counter when last used */
};

struct core_db_conn {
    PGconn *pg;
    PGcancel *cancel;
    bool busy;       /* lent out; under the pool's mutex */
    bool cancelling; /* a cancel request is being sent; under the mutex */
    bool prepared[CORE_DB_MAX_STMTS];
    struct core_db_err err;
    PGresult *first; /* the result of core_db_tx_first's statement, during the body */
    const struct core_stmt *first_stmt; /* and which statement it was */
    bool commit_sent;                   /* core_db_exec_commit sent COMMIT in this transaction */
    bool committed;                     /* and it succeeded */
    /* renkei.tenant at session level, as core_db_read's single statements
     * leave it ("" for none). Transactions set it locally over this, and
     * explicitly to "" when they want none and this is not "". */
    char session_tenant[64];
    bool session_known; /* false after a failure that may have left it either way */
    struct core_db_dyn dyn[CORE_DB_DYN_STMTS];
    unsigned long dyn_uses, dyn_names;
    bool dyn_lost; /* a DEALLOCATE did not happen: drop them all on next use */
};

/* Forgets what the server kept for c (it reconnected or closed). */
void core_db_conn_forget(struct core_db_conn *c);
/* Forgets c's prepared statements only (after DEALLOCATE ALL). */
void core_db_conn_forget_statements(struct core_db_conn *c);

/* Borrows a connected connection (connecting if needed); NULL with err set
 * when none is free in time or the database cannot be reached. */
struct core_db_conn *core_db_acquire(struct core_db_err *err);
void core_db_release(struct core_db_conn *c);
/* Prepares st on c unless it already is; false (recorded) on failure. */
bool core_db_prepare(struct core_db_conn *c, struct core_stmt *st);
bool core_db_conn_lost(const struct core_db_conn *c);
void core_db_record_error(struct core_db_conn *c, PGresult *res, const char *what);
/* Closes every idle connection: after one was found dead (a server restart),
 * the others are most likely dead too, and reconnect on their next use. */
void core_db_close_idle(void);

#endif
