/*
 * The database layer against a real PostgreSQL: migrations, the pool's
 * service role, the tenant context under row-level security, retries of
 * serialization failures, reconnection after the server drops a connection.
 * Uses RENKEI_TEST_DB (a superuser on a throwaway cluster), or starts its own
 * cluster with ops/pg.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/db.h"

#include "core/db_internal.h"
#include "core/log.h"
#include "core/migrate.h"
#include "tests/support/tsup.h"

static const char *conninfo; /* superuser, our database */

static int setup(void **state)
{
    (void)state;
    core_log_set_level(CORE_LOG_ERROR);
    conninfo = tsup_db_create("t_core_db");
    if (!conninfo)
        return -1;
    tsup_exec(conninfo, "SET ROLE renkei_owner;"
                        "CREATE TABLE renkei.t_rls (tenant_id text NOT NULL, v int NOT NULL);"
                        "ALTER TABLE renkei.t_rls ENABLE ROW LEVEL SECURITY;"
                        "CREATE POLICY t_rls_tenant ON renkei.t_rls USING (tenant_id = "
                        "renkei.current_tenant()) WITH CHECK (tenant_id = renkei.current_tenant());"
                        "GRANT SELECT, INSERT ON renkei.t_rls TO renkei_service;"
                        "CREATE TABLE renkei.t_counter (v int NOT NULL);"
                        "GRANT SELECT, INSERT ON renkei.t_counter TO renkei_service;"
                        "RESET ROLE;"
                        "INSERT INTO renkei.t_rls VALUES ('a', 1), ('a', 2), ('b', 3);");
    core_db_init(conninfo, 3);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    core_db_shutdown();
    tsup_db_drop();
    return 0;
}

/* ---- who we are, and the tenant context ---- */

struct whoami {
    char session[64];
    char user[64];
    char tenant[64];
    long visible;
};

static struct core_stmt st_whoami =
    CORE_STMT("test_whoami", "SELECT current_user, coalesce(renkei.current_tenant(), '-'), "
                             "(SELECT count(*) FROM t_rls), session_user");

static enum core_db_rc tx_whoami(struct core_db_conn *c, void *arg)
{
    struct whoami *w = arg;
    PGresult *r = core_db_exec(c, &st_whoami, 0, NULL);
    if (!r)
        return CORE_DB_ERROR;
    xsnprintf(w->user, sizeof w->user, "%s", PQgetvalue(r, 0, 0));
    xsnprintf(w->tenant, sizeof w->tenant, "%s", PQgetvalue(r, 0, 1));
    core_parse_long(PQgetvalue(r, 0, 2), 0, 1000, &w->visible);
    xsnprintf(w->session, sizeof w->session, "%s", PQgetvalue(r, 0, 3));
    PQclear(r);
    return CORE_DB_OK;
}

static void test_service_role_and_tenant_context(void **state)
{
    (void)state;
    struct whoami w;
    assert_int_equal(core_db_tx("a", CORE_TX_READ, tx_whoami, &w, NULL), CORE_DB_OK);
    /* the connection string names a superuser; the pool runs as the service role */
    assert_string_equal(w.user, "renkei_service");
    assert_string_equal(w.tenant, "a");
    assert_int_equal(w.visible, 2);
    assert_int_equal(core_db_tx("b", CORE_TX_READ, tx_whoami, &w, NULL), CORE_DB_OK);
    assert_int_equal(w.visible, 1);
    /* no tenant named: row-level security shows nothing, and the setting of
     * the previous transaction on this connection did not leak */
    assert_int_equal(core_db_tx(NULL, CORE_TX_READ, tx_whoami, &w, NULL), CORE_DB_OK);
    assert_string_equal(w.tenant, "-");
    assert_int_equal(w.visible, 0);
}

static struct core_stmt st_update_rls = CORE_STMT("test_update_rls", "UPDATE t_rls SET v = 0");
static struct core_stmt st_delete_rls = CORE_STMT("test_delete_rls", "DELETE FROM t_rls");

static enum core_db_rc tx_update_rls(struct core_db_conn *c, void *arg)
{
    (void)arg;
    PGresult *r = core_db_exec(c, &st_update_rls, 0, NULL);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    return CORE_DB_OK;
}

static enum core_db_rc tx_delete_rls(struct core_db_conn *c, void *arg)
{
    (void)arg;
    PGresult *r = core_db_exec(c, &st_delete_rls, 0, NULL);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    return CORE_DB_OK;
}

static struct core_stmt st_insert_rls =
    CORE_STMT("test_insert_rls", "INSERT INTO t_rls (tenant_id, v) VALUES ($1, 9)");

static enum core_db_rc tx_insert_other(struct core_db_conn *c, void *arg)
{
    const char *v[] = {arg};
    PGresult *r = core_db_exec(c, &st_insert_rls, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    return CORE_DB_OK;
}

static void test_rls_refuses_other_tenants_rows(void **state)
{
    (void)state;
    struct core_db_err err;
    /* tenant a writing a row of tenant b: refused by the policy's WITH CHECK */
    assert_int_equal(core_db_tx("a", CORE_TX_WRITE, tx_insert_other, (void *)"b", &err),
                     CORE_DB_ERROR);
    assert_string_equal(err.sqlstate, "42501");
    /* a read-only transaction refuses writes */
    assert_int_equal(core_db_tx("a", CORE_TX_READ, tx_insert_other, (void *)"a", &err),
                     CORE_DB_ERROR);
    assert_string_equal(err.sqlstate, "25006");
    /* nothing of tenant b was written: counted as the owner, past RLS */
    assert_string_equal(tsup_value(conninfo, "SELECT count(*) FROM renkei.t_rls WHERE "
                                             "tenant_id = 'b'"),
                        "1");
    /* what the service was not granted, it cannot do, whatever the tenant */
    assert_int_equal(core_db_tx("a", CORE_TX_WRITE, tx_update_rls, NULL, &err), CORE_DB_ERROR);
    assert_string_equal(err.sqlstate, "42501");
    assert_int_equal(core_db_tx("a", CORE_TX_WRITE, tx_delete_rls, NULL, &err), CORE_DB_ERROR);
    assert_string_equal(err.sqlstate, "42501");
}

static void test_service_privileges(void **state)
{
    (void)state;
    /* the roles as deployed: no login, no superuser, no BYPASSRLS, owns nothing */
    assert_string_equal(tsup_value(conninfo, "SELECT rolcanlogin OR rolsuper OR rolbypassrls OR "
                                             "rolcreaterole FROM pg_roles WHERE rolname = "
                                             "'renkei_service'"),
                        "f");
    assert_string_equal(tsup_value(conninfo, "SELECT count(*) FROM pg_class c JOIN pg_namespace "
                                             "n ON n.oid = c.relnamespace WHERE n.nspname = "
                                             "'renkei' AND c.relowner = 'renkei_service'::regrole"),
                        "0");
    assert_string_equal(tsup_value(conninfo, "SELECT nspowner::regrole::text FROM pg_namespace "
                                             "WHERE nspname = 'renkei'"),
                        "renkei_owner");
    /* functions: granted on purpose, nothing to PUBLIC */
    assert_string_equal(tsup_value(conninfo, "SELECT has_function_privilege('renkei_service', "
                                             "'renkei.current_tenant()', 'EXECUTE')"),
                        "t");
    assert_string_equal(tsup_value(conninfo, "SELECT has_function_privilege('renkei_service', "
                                             "'renkei.refuse_change()', 'EXECUTE')"),
                        "f");
    assert_string_equal(tsup_value(conninfo, "SELECT count(*) FROM pg_proc p JOIN pg_namespace n "
                                             "ON n.oid = p.pronamespace WHERE n.nspname = "
                                             "'renkei' AND (p.proacl IS NULL OR "
                                             "array_to_string(p.proacl, ',') ~ '(^|,)=')"),
                        "0");
    /* the migrations table: readable, not writable by the service */
    assert_string_equal(tsup_value(conninfo, "SELECT has_table_privilege('renkei_service', "
                                             "'renkei.schema_migrations', 'SELECT') AND NOT "
                                             "has_table_privilege('renkei_service', "
                                             "'renkei.schema_migrations', 'INSERT,UPDATE,DELETE')"),
                        "t");
}

/* The deployment the README describes: a login role that is only granted
 * renkei_service, no superuser anywhere. */
static void test_login_role_deployment(void **state)
{
    (void)state;
    tsup_exec(tsup_admin_conninfo(),
              "DO $$ BEGIN CREATE ROLE renkei_test_app LOGIN; EXCEPTION WHEN "
              "duplicate_object OR unique_violation THEN NULL; END $$");
    tsup_exec(tsup_admin_conninfo(), "GRANT renkei_service TO renkei_test_app");
    char *app = xasprintf("%s user=renkei_test_app", conninfo);
    core_db_shutdown();
    core_db_init(app, 2);
    struct whoami w;
    assert_int_equal(core_db_tx("a", CORE_TX_READ, tx_whoami, &w, NULL), CORE_DB_OK);
    assert_string_equal(w.session, "renkei_test_app");
    assert_string_equal(w.user, "renkei_service");
    assert_int_equal(w.visible, 2);
    char why[300];
    int applied = 0;
    assert_true(core_migrate_ready(why, sizeof why, &applied));
    core_db_shutdown();
    core_db_init(conninfo, 3);
    free(app);
}

/* ---- rollback by choice, and an ignored error never commits ---- */

static struct core_stmt st_count = CORE_STMT("test_count", "SELECT count(*) FROM t_counter");
static struct core_stmt st_add = CORE_STMT("test_add", "INSERT INTO t_counter VALUES ($1)");
static struct core_stmt st_bad = CORE_STMT("test_bad", "SELECT 1/0");

static long count_rows(void);

static enum core_db_rc tx_add_then_rollback(struct core_db_conn *c, void *arg)
{
    (void)arg;
    const char *v[] = {"1"};
    PGresult *r = core_db_exec(c, &st_add, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    return CORE_DB_ROLLBACK;
}

static enum core_db_rc tx_ignores_error(struct core_db_conn *c, void *arg)
{
    (void)arg;
    const char *v[] = {"1"};
    PGresult *r = core_db_exec(c, &st_add, 1, v);
    if (r)
        PQclear(r);
    r = core_db_exec(c, &st_bad, 0, NULL); /* fails: division by zero */
    assert_null(r);
    return CORE_DB_OK; /* a broken body pretends all went well */
}

static enum core_db_rc tx_count(struct core_db_conn *c, void *arg)
{
    PGresult *r = core_db_exec(c, &st_count, 0, NULL);
    if (!r)
        return CORE_DB_ERROR;
    core_parse_long(PQgetvalue(r, 0, 0), 0, 1L << 30, arg);
    PQclear(r);
    return CORE_DB_OK;
}

static long count_rows(void)
{
    long n = -1;
    assert_int_equal(core_db_tx(NULL, CORE_TX_READ, tx_count, &n, NULL), CORE_DB_OK);
    return n;
}

static void test_rollback_paths(void **state)
{
    (void)state;
    long before = count_rows();
    assert_int_equal(core_db_tx(NULL, CORE_TX_WRITE, tx_add_then_rollback, NULL, NULL),
                     CORE_DB_ROLLBACK);
    assert_int_equal(count_rows(), before);
    struct core_db_err err;
    assert_int_equal(core_db_tx(NULL, CORE_TX_WRITE, tx_ignores_error, NULL, &err), CORE_DB_ERROR);
    assert_int_equal(count_rows(), before);
}

/* ---- serialization failures are retried ---- */

static pthread_barrier_t barrier;
static atomic_int attempts;

static enum core_db_rc tx_write_skew(struct core_db_conn *c, void *arg)
{
    (void)arg;
    int n = atomic_fetch_add(&attempts, 1);
    long sum = 0;
    if (tx_count(c, &sum) != CORE_DB_OK)
        return CORE_DB_ERROR;
    if (n < 2) /* first attempts of both threads: read, then both write */
        pthread_barrier_wait(&barrier);
    char v[32];
    snprintf(v, sizeof v, "%ld", sum + 1);
    const char *vals[] = {v};
    PGresult *r = core_db_exec(c, &st_add, 1, vals);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    return CORE_DB_OK;
}

static void *skew_thread(void *arg)
{
    struct core_db_err err;
    *(enum core_db_rc *)arg = core_db_tx(NULL, CORE_TX_SERIALIZABLE, tx_write_skew, NULL, &err);
    return NULL;
}

static void test_serialization_failure_retried(void **state)
{
    (void)state;
    long before = count_rows();
    pthread_barrier_init(&barrier, NULL, 2);
    atomic_store(&attempts, 0);
    enum core_db_rc a = CORE_DB_UNAVAILABLE, b = CORE_DB_UNAVAILABLE;
    pthread_t ta, tb;
    pthread_create(&ta, NULL, skew_thread, &a);
    pthread_create(&tb, NULL, skew_thread, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&barrier);
    assert_int_equal(a, CORE_DB_OK);
    assert_int_equal(b, CORE_DB_OK);
    /* both committed, one of them after a retry */
    assert_true(atomic_load(&attempts) >= 3);
    assert_int_equal(count_rows(), before + 2);
}

/* ---- a connection the server dropped is replaced ---- */

static struct core_stmt st_pid = CORE_STMT("test_pid", "SELECT pg_backend_pid()");

static enum core_db_rc tx_pid(struct core_db_conn *c, void *arg)
{
    PGresult *r = core_db_exec(c, &st_pid, 0, NULL);
    if (!r)
        return CORE_DB_ERROR;
    core_parse_long(PQgetvalue(r, 0, 0), 0, 1L << 30, arg);
    PQclear(r);
    return CORE_DB_OK;
}

static void test_reconnect_after_terminate(void **state)
{
    (void)state;
    long pid = 0;
    assert_int_equal(core_db_tx(NULL, CORE_TX_READ, tx_pid, &pid, NULL), CORE_DB_OK);
    /* kill every backend of the pool, as a server restart would */
    tsup_exec(conninfo, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                        "datname = current_database() AND application_name = 'renkei' AND pid "
                        "<> pg_backend_pid()");
    usleep(100 * 1000);
    long pid2 = 0;
    assert_int_equal(core_db_tx(NULL, CORE_TX_READ, tx_pid, &pid2, NULL), CORE_DB_OK);
    assert_true(pid2 > 0);
    assert_int_not_equal(pid, pid2);
    /* and statements are prepared again on the new connection */
    struct whoami w;
    assert_int_equal(core_db_tx("a", CORE_TX_READ, tx_whoami, &w, NULL), CORE_DB_OK);
    assert_int_equal(w.visible, 2);
    struct core_db_stats st;
    core_db_stats(&st);
    assert_int_equal(st.size, 3);
    assert_int_equal(st.in_use, 0);
    assert_true(st.connected >= 1);
}

/* core_db_read: BEGIN, tenant, statements and COMMIT in one round trip */
static void test_pipelined_read(void **state)
{
    (void)state;
    const char *v[] = {"1"};
    struct core_db_query qs[2] = {
        {"SELECT v FROM renkei.t_rls WHERE v >= $1::int ORDER BY v", 1, v},
        {"SELECT current_user, renkei.current_tenant(), current_setting('transaction_read_only')",
         0, NULL}};
    PGresult *out[2];
    struct core_db_err err;
    assert_int_equal(core_db_read("a", CORE_TX_SNAPSHOT, qs, 2, out, &err), CORE_DB_OK);
    /* row-level security: tenant a sees its two rows, not b's */
    assert_int_equal(PQntuples(out[0]), 2);
    assert_string_equal(PQgetvalue(out[0], 1, 0), "2");
    assert_string_equal(PQgetvalue(out[1], 0, 0), "renkei_service");
    assert_string_equal(PQgetvalue(out[1], 0, 1), "a");
    assert_string_equal(PQgetvalue(out[1], 0, 2), "on");
    PQclear(out[0]);
    PQclear(out[1]);

    /* a failing statement: an error, no result, and the connection is
     * usable afterwards (the transaction was rolled back) */
    struct core_db_query bad[2] = {{"SELECT 1", 0, NULL},
                                   {"SELECT v / 0 FROM renkei.t_rls", 0, NULL}};
    assert_int_equal(core_db_read("a", CORE_TX_READ, bad, 2, out, &err), CORE_DB_ERROR);
    assert_string_equal(err.sqlstate, "22012");
    assert_null(out[0]);
    assert_null(out[1]);
    /* read only: a write is refused */
    struct core_db_query write = {"INSERT INTO renkei.t_rls VALUES ('a', 9)", 0, NULL};
    assert_int_equal(core_db_read("a", CORE_TX_READ, &write, 1, out, &err), CORE_DB_ERROR);
    assert_string_equal(err.sqlstate, "25006");
    for (int i = 0; i < 6; i++) { /* every pooled connection is still fine */
        assert_int_equal(core_db_read("b", CORE_TX_READ, qs, 1, out, &err), CORE_DB_OK);
        assert_int_equal(PQntuples(out[0]), 1);
        PQclear(out[0]);
    }
    /* bad calls are refused without touching the database */
    assert_int_equal(core_db_read("a", CORE_TX_WRITE, qs, 1, out, &err), CORE_DB_ERROR);
    assert_int_equal(core_db_read("a", CORE_TX_READ, qs, 0, out, &err), CORE_DB_ERROR);
    assert_int_equal(core_db_read("A-b", CORE_TX_READ, qs, 1, out, &err), CORE_DB_ERROR);
}

/* A single statement runs on its own under the session's tenant, kept per
 * connection: switching tenants, a transaction that wants none, a failure
 * and many distinct statements (the prepared ones evicted and re-made)
 * must never show one tenant another's rows. */
static void test_single_reads_keep_tenants_apart(void **state)
{
    (void)state;
    struct core_db_query q = {"SELECT count(*), coalesce(renkei.current_tenant(), '-') FROM "
                              "renkei.t_rls",
                              0, NULL};
    PGresult *out[1];
    struct core_db_err err;
    const char *order[] = {"a", "b", NULL, "a", CORE_DB_PLATFORM, "b", "a", NULL};
    const char *want_n[] = {"2", "1", "0", "2", "0", "1", "2", "0"};
    const char *want_t[] = {"a", "b", "-", "a", "*", "b", "a", "-"};
    for (int round = 0; round < 12; round++) { /* past the generic-plan switch, over the pool */
        for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
            assert_int_equal(core_db_read(order[i], CORE_TX_READ, &q, 1, out, &err), CORE_DB_OK);
            assert_string_equal(PQgetvalue(out[0], 0, 0), want_n[i]);
            assert_string_equal(PQgetvalue(out[0], 0, 1), want_t[i]);
            PQclear(out[0]);
            /* a transaction naming no tenant sees none, whatever the session holds */
            struct whoami w;
            assert_int_equal(core_db_tx(NULL, CORE_TX_READ, tx_whoami, &w, NULL), CORE_DB_OK);
            assert_string_equal(w.tenant, "-");
            assert_int_equal(w.visible, 0);
        }
    }
    /* a failing single statement leaves the next one right */
    struct core_db_query bad = {"SELECT v / 0 FROM renkei.t_rls", 0, NULL};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(core_db_read("a", CORE_TX_READ, &bad, 1, out, &err), CORE_DB_ERROR);
        assert_string_equal(err.sqlstate, "22012");
        assert_int_equal(core_db_read("b", CORE_TX_READ, &q, 1, out, &err), CORE_DB_OK);
        assert_string_equal(PQgetvalue(out[0], 0, 0), "1");
        PQclear(out[0]);
    }
    /* more distinct statements than a connection keeps prepared, twice over */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 3 * CORE_DB_DYN_STMTS; i++) {
            char sql[128];
            snprintf(sql, sizeof sql, "SELECT count(*) + %d FROM renkei.t_rls WHERE v >= $1::int",
                     i);
            const char *v[] = {"2"};
            struct core_db_query d = {sql, 1, v};
            const char *tenant = i % 2 ? "a" : "b";
            assert_int_equal(core_db_read(tenant, CORE_TX_READ, &d, 1, out, &err), CORE_DB_OK);
            char want[16];
            snprintf(want, sizeof want, "%d", i + 1); /* a: v 2; b: v 3 */
            assert_string_equal(PQgetvalue(out[0], 0, 0), want);
            PQclear(out[0]);
        }
    }
}

static void test_migrate_is_idempotent(void **state)
{
    (void)state;
    const char *q = "SELECT string_agg(version || ':' || checksum || ':' || applied_at, ',' "
                    "ORDER BY version) FROM renkei.schema_migrations";
    char before[1024];
    xsnprintf(before, sizeof before, "%s", tsup_value(conninfo, q));
    assert_int_equal(core_migrate_run(conninfo, false, false), 0);
    assert_string_equal(tsup_value(conninfo, q), before);
    char why[300];
    int applied = 0;
    assert_true(core_migrate_ready(why, sizeof why, &applied));
    assert_int_equal(applied, (int)core_migrations_count);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_service_role_and_tenant_context),
        cmocka_unit_test(test_rls_refuses_other_tenants_rows),
        cmocka_unit_test(test_service_privileges),
        cmocka_unit_test(test_login_role_deployment),
        cmocka_unit_test(test_rollback_paths),
        cmocka_unit_test(test_serialization_failure_retried),
        cmocka_unit_test(test_reconnect_after_terminate),
        cmocka_unit_test(test_pipelined_read),
        cmocka_unit_test(test_single_reads_keep_tenants_apart),
        cmocka_unit_test(test_migrate_is_idempotent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
