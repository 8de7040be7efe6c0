/*
 * The audit log's append path against a real PostgreSQL: group commits from
 * two processes at once stay one gap-free log whose tree verifies; events in
 * a tenant's transaction; who may read what (row-level security, a
 * prefecture over its towns); residents' access history; the take-over of
 * events recorded before the log existed; malformed entries refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit/au_query.h"
#include "audit/au_verify.h"
#include "core/crypto.h"
#include "core/db.h"
#include "core/log.h"
#include "tests/support/tsup.h"

#define PROCS   2
#define THREADS 4 /* per process: 8 writers in all */
#define EACH    2000

static const char *conninfo;

static int setup(void **state)
{
    (void)state;
    core_log_set_level(CORE_LOG_ERROR);
    if (!tsup_secret_create())
        return -1;
    conninfo = tsup_db_create("t_audit_log");
    if (!conninfo)
        return -1;
    tsup_exec(conninfo, "INSERT INTO renkei.tenants (id, name, city_os) VALUES "
                        "('pref', 'Pref', 'hosted'), ('other', 'Other', 'hosted');"
                        "INSERT INTO renkei.tenants (id, name, city_os, parent_id) VALUES "
                        "('town_a', 'A', 'hosted', 'pref'), ('town_b', 'B', 'hosted', 'pref')");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tsup_db_drop();
    return tsup_secret_remove() ? 0 : -1;
}

static long count(void)
{
    return strtol(tsup_value(conninfo, "SELECT count(*) FROM renkei.audit_entries"), NULL, 10);
}

static void assert_gap_free(long n)
{
    char *q = xasprintf("SELECT count(*) = %ld AND coalesce(max(seq), -1) = %ld - 1 AND "
                        "(SELECT tree_size FROM renkei.audit_head) = %ld "
                        "FROM renkei.audit_entries",
                        n, n, n);
    assert_string_equal(tsup_value(conninfo, q), "t");
    free(q);
}

static EVP_PKEY *hub_key(void *arg, const char *kid)
{
    (void)arg;
    return au_key_public(kid);
}

static void assert_verifies(void)
{
    assert_true(au_keys_load());
    struct au_checkpoint cp;
    assert_true(au_checkpoint_now(&cp, NULL));
    assert_int_equal(cp.tree_size, (uint64_t)count());
    struct au_report r;
    assert_true(au_verify_db(hub_key, NULL, NULL, 0, NULL, &r));
    if (!r.ok)
        fail_msg("audit verify: %s", r.problem);
    assert_int_equal(r.entries, (uint64_t)count());
    assert_int_equal(r.uncovered, 0);
    au_keys_release();
}

/* ---- 2 processes x 8 writers x 2000 entries ---- */

static void *writer(void *arg)
{
    long id = (long)(intptr_t)arg;
    char client[32], ref[44];
    xsnprintf(client, sizeof client, "c%ld", id);
    au_resident_ref(client, ref);
    json_t *request =
        json_pack("{s:s, s:s, s:[s]}", "method", "GET", "path", "/v2/entities", "types", "Shelter");
    for (int i = 0; i < EACH; i++) {
        json_t *outcome = json_pack("{s:i, s:i}", "status", 200, "entities", i);
        struct au_entry e = {.kind = "transfer",
                             .decision = "permit",
                             .consumer_tenant = "town_a",
                             .consumer_client = client,
                             .provider = "town_b",
                             .agreement = "ag1",
                             .purpose = "disaster",
                             .resident = ref,
                             .request = request,
                             .outcome = outcome};
        uint64_t seq;
        bool ok = au_append(&e, &seq);
        json_decref(outcome);
        if (!ok) {
            json_decref(request);
            return (void *)1;
        }
    }
    json_decref(request);
    return NULL;
}

static int child(int proc)
{
    core_db_init(conninfo, THREADS);
    au_appender_start();
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, writer, (void *)(intptr_t)(proc * THREADS + i));
    int bad = 0;
    for (int i = 0; i < THREADS; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        bad += rv != NULL;
    }
    au_appender_stop();
    core_db_shutdown();
    return bad;
}

static void test_two_processes_one_log(void **state)
{
    (void)state;
    long before = count();
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0)
            _exit(child(p));
    }
    for (int p = 0; p < PROCS; p++) {
        int status;
        assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    long n = count();
    assert_int_equal(n - before, PROCS * THREADS * EACH);
    assert_gap_free(n);
    /* every writer's entries are all there */
    assert_string_equal(tsup_value(conninfo,
                                   "SELECT count(DISTINCT consumer_client) || ',' || "
                                   "min(c) || ',' || max(c) FROM (SELECT "
                                   "consumer_client, count(*) c FROM renkei.audit_entries "
                                   "WHERE kind = 'transfer' GROUP BY 1) x"),
                        "8,2000,2000");
    core_db_init(conninfo, 2);
    assert_verifies();
    core_db_shutdown();
}

/* ---- events in a tenant's transaction ---- */

struct ev {
    const char *tenant;
};

static enum core_db_rc event_tx(struct core_db_conn *c, void *arg)
{
    struct ev *e = arg;
    json_t *d = json_pack("{s:s}", "name", "renamed");
    bool ok = au_event_record(c, "tenant.update", e->tenant, "client:x", d);
    json_decref(d);
    return ok ? CORE_DB_OK : CORE_DB_ERROR;
}

static enum core_db_rc event_rollback_tx(struct core_db_conn *c, void *arg)
{
    return event_tx(c, arg) == CORE_DB_OK ? CORE_DB_ROLLBACK : CORE_DB_ERROR;
}

static void test_events_in_tenant_tx(void **state)
{
    (void)state;
    core_db_init(conninfo, 2);
    long before = count();
    struct ev own = {.tenant = "town_a"}, other = {.tenant = "town_b"};
    assert_int_equal(core_db_tx("town_a", CORE_TX_WRITE, event_tx, &own, NULL), CORE_DB_OK);
    assert_int_equal(count(), before + 1);
    /* a town cannot record an event about another town */
    struct core_db_err err;
    assert_int_equal(core_db_tx("town_a", CORE_TX_WRITE, event_tx, &other, &err), CORE_DB_ERROR);
    assert_string_equal(err.sqlstate, "42501");
    /* an event of a transaction that rolls back is not in the log, and its
     * seq is not lost */
    assert_int_equal(core_db_tx("town_a", CORE_TX_WRITE, event_rollback_tx, &own, NULL),
                     CORE_DB_ROLLBACK);
    assert_int_equal(count(), before + 1);
    assert_gap_free(count());
    /* malformed entries are refused and take no seq */
    struct au_entry bad = {.kind = "Not A Kind"};
    assert_false(au_append(&bad, NULL));
    struct au_entry bad2 = {.kind = "transfer", .decision = "maybe"};
    assert_false(au_append(&bad2, NULL));
    json_t *real = json_pack("{s:f}", "ratio", 0.5);
    struct au_entry bad3 = {.kind = "transfer", .outcome = real};
    assert_false(au_append(&bad3, NULL));
    json_decref(real);
    assert_int_equal(count(), before + 1);
    assert_verifies();
    core_db_shutdown();
}

/* ---- who reads what ---- */

struct seen {
    long n;
    char kinds[4096];
};

static void seen_row(void *arg, int64_t seq, const char *canonical, size_t len, const char *leaf)
{
    struct seen *s = arg;
    (void)seq;
    (void)canonical;
    (void)len;
    (void)leaf;
    s->n++;
}

static long visible(const char *context, const char *agreement)
{
    struct au_filter f = {.after = -1, .upto = -1, .agreement = agreement};
    struct seen s = {0};
    long n = au_query_page(context, &f, 1000, seen_row, &s, NULL);
    assert_true(n >= 0);
    return s.n;
}

static void test_visibility(void **state)
{
    (void)state;
    core_db_init(conninfo, 2);
    struct au_entry ab = {.kind = "transfer",
                          .decision = "permit",
                          .consumer_tenant = "town_a",
                          .provider = "town_b",
                          .agreement = "vis"};
    struct au_entry ao = {.kind = "transfer",
                          .decision = "deny",
                          .consumer_tenant = "other",
                          .provider = "town_a",
                          .agreement = "vis"};
    struct au_entry oo = {.kind = "transfer",
                          .decision = "deny",
                          .consumer_tenant = "other",
                          .provider = "other",
                          .agreement = "vis"};
    assert_true(au_append(&ab, NULL));
    assert_true(au_append(&ao, NULL));
    assert_true(au_append(&oo, NULL));
    assert_int_equal(visible("town_a", "vis"), 2);
    assert_int_equal(visible("town_b", "vis"), 1);
    assert_int_equal(visible("pref", "vis"), 2); /* its towns' */
    assert_int_equal(visible("other", "vis"), 2);
    assert_int_equal(visible("nobody", "vis"), 0);
    assert_int_equal(visible(CORE_DB_PLATFORM, "vis"), 3);
    assert_int_equal(visible(NULL, "vis"), 0);
    /* filters */
    struct au_filter f = {
        .after = -1, .upto = -1, .agreement = "vis", .decision = "deny", .tenant = "town_a"};
    struct seen s = {0};
    assert_int_equal(au_query_page(CORE_DB_PLATFORM, &f, 100, seen_row, &s, NULL), 1);
    core_db_shutdown();
}

/* ---- residents ---- */

static void test_access_log(void **state)
{
    (void)state;
    core_db_init(conninfo, 2);
    char r1[44], r2[44];
    au_resident_ref("resident-one", r1);
    au_resident_ref("resident-two", r2);
    assert_string_not_equal(r1, r2);
    char again[44];
    au_resident_ref("resident-one", again);
    assert_string_equal(r1, again);
    for (int i = 0; i < 3; i++) {
        struct au_entry e = {.kind = "transfer",
                             .decision = "permit",
                             .consumer_tenant = "town_a",
                             .consumer_client = "app",
                             .provider = "town_b",
                             .purpose = "care",
                             .agreement = "ag9",
                             .resident = i < 2 ? r1 : r2};
        assert_true(au_append(&e, NULL));
    }
    struct au_entry ev = {.kind = "consent.grant", .resident = r1, .tenant = "town_a"};
    assert_true(au_append(&ev, NULL));
    bool more = true;
    json_t *items = au_access_log(r1, -1, 1, &more);
    assert_non_null(items);
    assert_int_equal(json_array_size(items), 1);
    assert_true(more);
    json_t *first = json_array_get(items, 0);
    assert_string_equal(json_string_value(json_object_get(first, "town")), "town_a");
    assert_string_equal(json_string_value(json_object_get(first, "service")), "app");
    assert_string_equal(json_string_value(json_object_get(first, "purpose")), "care");
    assert_string_equal(json_string_value(json_object_get(first, "agreement")), "ag9");
    int64_t after = json_integer_value(json_object_get(first, "seq"));
    json_decref(items);
    items = au_access_log(r1, after, 10, &more);
    assert_int_equal(json_array_size(items), 1);
    assert_false(more);
    json_decref(items);
    items = au_access_log(r2, -1, 10, &more);
    assert_int_equal(json_array_size(items), 1);
    json_decref(items);
    core_db_shutdown();
}

/* ---- events recorded before the log existed ---- */

static void test_takeover(void **state)
{
    (void)state;
    core_db_init(conninfo, 2);
    long before = count();
    tsup_exec(conninfo, "INSERT INTO renkei.pending_events (kind, tenant, actor, detail) VALUES "
                        "('tenant.create', 'town_a', 'cli:old', '{\"name\": \"A\"}'),"
                        "('client.create', NULL, 'cli:old', '{}'),"
                        "('tenant.update', 'town_a', 'cli:odd', '{\"ratio\": 0.5}')");
    assert_true(au_takeover());
    assert_int_equal(count(), before + 3);
    assert_true(au_takeover()); /* once only */
    assert_int_equal(count(), before + 3);
    /* a detail the log cannot hold (a fraction) is kept as its digest */
    assert_string_equal(tsup_value(conninfo,
                                   "SELECT (canonical::jsonb->'detail'->>"
                                   "'detail_unrepresentable') || ',' || length("
                                   "canonical::jsonb->'detail'->>'detail_sha256') FROM "
                                   "renkei.audit_entries WHERE canonical::jsonb->>'actor' "
                                   "= 'cli:odd'"),
                        "true,64");
    assert_string_equal(tsup_value(conninfo, "SELECT string_agg(kind || ':' || coalesce(tenant, "
                                             "'-') || ':' || (canonical::jsonb->'detail'->>"
                                             "'pending_id' IS NOT NULL)::text, ',' ORDER BY seq) "
                                             "FROM renkei.audit_entries WHERE canonical::jsonb->>"
                                             "'actor' = 'cli:old'"),
                        "tenant.create:town_a:true,client.create:-:true");
    assert_gap_free(count());
    assert_verifies();
    core_db_shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_processes_one_log),
        cmocka_unit_test(test_events_in_tenant_tx),
        cmocka_unit_test(test_visibility),
        cmocka_unit_test(test_access_log),
        cmocka_unit_test(test_takeover),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
