/*
 * Residents against a real PostgreSQL: sign-in (right, wrong, unknown,
 * disabled, suspended town), throttling per login and per address (also
 * under concurrent attempts), rehashing a weaker stored hash, disabling that
 * ends sessions and refresh tokens, and a town's context that cannot reach
 * another town's residents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include "authz/az_resident.h"
#include "core/config.h"
#include "core/db.h"
#include "core/log.h"
#include "tests/support/tsup.h"

static const char *conninfo;
static const char right[] = "correct horse battery";

static int setup(void **state)
{
    (void)state;
    core_log_set_level(CORE_LOG_ERROR);
    if (!tsup_secret_create())
        return -1;
    conninfo = tsup_db_create("t_authz_residents");
    if (!conninfo)
        return -1;
    tsup_exec(conninfo, "INSERT INTO renkei.tenants (id, name, city_os) VALUES "
                        "('pref', 'Pref', 'hosted');"
                        "INSERT INTO renkei.tenants (id, name, city_os, parent_id) VALUES "
                        "('town_a', 'A', 'hosted', 'pref'), ('town_b', 'B', 'hosted', 'pref')");
    core_cfg.scrypt_ln = 12;
    core_cfg.scrypt_r = 1;
    core_cfg.scrypt_p = 1;
    core_db_init(conninfo, 12);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    core_db_shutdown();
    tsup_db_drop();
    return tsup_secret_remove() ? 0 : -1;
}

static void add(const char *tenant, const char *login)
{
    struct az_resident_spec s = {
        .tenant = tenant, .login = login, .password = right, .password_len = strlen(right)};
    struct az_result res;
    if (az_resident_create(CORE_DB_PLATFORM, &s, "test", NULL, &res) != AZ_OK)
        fail_msg("create %s: %s", login, res.message);
}

static enum az_signin_rc signin(const char *login, const char *password, const char *peer,
                                int *retry)
{
    struct az_resident r;
    int unused;
    return az_resident_signin(login, password, strlen(password), peer, &r, retry ? retry : &unused);
}

static long failures(const char *key)
{
    char *q = xasprintf("SELECT coalesce((SELECT failures FROM renkei.signin_failures WHERE key = "
                        "'%s'), -1)",
                        key);
    long n = strtol(tsup_value(conninfo, q), NULL, 10);
    free(q);
    return n;
}

static void test_signin(void **state)
{
    (void)state;
    add("town_a", "Alice@Example.JP");
    struct az_resident r;
    int retry = -1;
    assert_int_equal(
        az_resident_signin("alice@example.jp", right, strlen(right), "192.0.2.1", &r, &retry),
        AZ_SIGNIN_OK);
    assert_string_equal(r.login, "alice@example.jp");
    assert_string_equal(r.tenant, "town_a");
    assert_int_equal(strncmp(r.id, "r_", 2), 0);
    assert_int_equal(strlen(r.id), 24);
    assert_int_equal(retry, 0);
    /* the login is matched case-insensitively */
    assert_int_equal(signin("ALICE@example.jp", right, "192.0.2.1", NULL), AZ_SIGNIN_OK);
    assert_int_equal(signin("alice@example.jp", "correct horse batter", "192.0.2.1", NULL),
                     AZ_SIGNIN_BAD);
    assert_int_equal(signin("nobody@example.jp", right, "192.0.2.1", NULL), AZ_SIGNIN_BAD);
    assert_int_equal(signin("not a login", right, "192.0.2.1", NULL), AZ_SIGNIN_BAD);
    assert_int_equal(signin("alice@example.jp", "", "192.0.2.1", NULL), AZ_SIGNIN_BAD);
    /* a success cleared the login's count; the address keeps its failures */
    assert_int_equal(signin("alice@example.jp", right, "192.0.2.1", NULL), AZ_SIGNIN_OK);
    assert_int_equal(failures("login:alice@example.jp"), -1);
    assert_int_equal(failures("addr:192.0.2.1"), 4);

    /* disabled: said only to the right password */
    struct az_result res;
    assert_int_equal(
        az_resident_set_disabled(CORE_DB_PLATFORM, "alice@example.jp", true, "test", &res), AZ_OK);
    assert_int_equal(signin("alice@example.jp", "wrong password", "192.0.2.2", NULL),
                     AZ_SIGNIN_BAD);
    assert_int_equal(signin("alice@example.jp", right, "192.0.2.2", NULL), AZ_SIGNIN_DISABLED);
    assert_int_equal(
        az_resident_set_disabled(CORE_DB_PLATFORM, "alice@example.jp", false, "test", &res), AZ_OK);
    assert_int_equal(signin("alice@example.jp", right, "192.0.2.2", NULL), AZ_SIGNIN_OK);
    /* a suspended home town */
    tsup_exec(conninfo, "SET renkei.tenant = '*'; "
                        "UPDATE renkei.tenants SET state = 'suspended' WHERE id = 'town_a'");
    assert_int_equal(signin("alice@example.jp", "wrong password", "192.0.2.2", NULL),
                     AZ_SIGNIN_BAD);
    assert_int_equal(signin("alice@example.jp", right, "192.0.2.2", NULL), AZ_SIGNIN_DISABLED);
    tsup_exec(conninfo, "SET renkei.tenant = '*'; "
                        "UPDATE renkei.tenants SET state = 'active' WHERE id = 'town_a'");
    assert_int_equal(signin("alice@example.jp", right, "192.0.2.2", NULL), AZ_SIGNIN_OK);
}

static void test_login_throttle(void **state)
{
    (void)state;
    add("town_a", "bob@example.jp");
    const char *peer = "198.51.100.1";
    /* failures below the limit, then a success: the count starts over */
    for (int i = 0; i < 4; i++)
        assert_int_equal(signin("bob@example.jp", "wrong password", peer, NULL), AZ_SIGNIN_BAD);
    assert_int_equal(signin("bob@example.jp", right, peer, NULL), AZ_SIGNIN_OK);
    for (int i = 0; i < 4; i++)
        assert_int_equal(signin("bob@example.jp", "wrong password", peer, NULL), AZ_SIGNIN_BAD);
    assert_int_equal(failures("login:bob@example.jp"), 4);
    /* the fifth failure locks the login, for the right password too */
    assert_int_equal(signin("bob@example.jp", "wrong password", peer, NULL), AZ_SIGNIN_BAD);
    int retry = 0;
    assert_int_equal(signin("bob@example.jp", right, peer, &retry), AZ_SIGNIN_THROTTLED);
    assert_true(retry > 0 && retry <= 900);
    assert_int_equal(signin("BOB@example.jp", right, "203.0.113.77", &retry), AZ_SIGNIN_THROTTLED);
    /* attempts while locked are not counted and do not extend the lock */
    assert_int_equal(failures("login:bob@example.jp"), 5);
    /* another login from the same address is not affected */
    add("town_a", "carol@example.jp");
    assert_int_equal(signin("carol@example.jp", right, peer, NULL), AZ_SIGNIN_OK);
    /* an unknown login locks the same way (no difference to probe) */
    for (int i = 0; i < 5; i++)
        assert_int_equal(signin("noone@example.jp", right, "198.51.100.2", NULL), AZ_SIGNIN_BAD);
    assert_int_equal(signin("noone@example.jp", right, "198.51.100.2", &retry),
                     AZ_SIGNIN_THROTTLED);
    /* fifteen minutes later */
    tsup_exec(conninfo, "UPDATE renkei.signin_failures SET locked_until = now() - interval '1 s', "
                        "window_start = now() - interval '16 minutes' "
                        "WHERE key = 'login:bob@example.jp'");
    assert_int_equal(signin("bob@example.jp", right, peer, NULL), AZ_SIGNIN_OK);
    assert_int_equal(failures("login:bob@example.jp"), -1);
    /* failures older than the window do not add up */
    for (int i = 0; i < 4; i++)
        assert_int_equal(signin("bob@example.jp", "wrong password", peer, NULL), AZ_SIGNIN_BAD);
    tsup_exec(conninfo, "UPDATE renkei.signin_failures SET window_start = now() - interval '16 "
                        "minutes' WHERE key = 'login:bob@example.jp'");
    assert_int_equal(signin("bob@example.jp", "wrong password", peer, NULL), AZ_SIGNIN_BAD);
    assert_int_equal(failures("login:bob@example.jp"), 1);
    assert_int_equal(signin("bob@example.jp", right, peer, NULL), AZ_SIGNIN_OK);
}

static void test_address_throttle(void **state)
{
    (void)state;
    add("town_b", "dave@example.jp");
    const char *peer = "2001:db8::30";
    for (int i = 0; i < 30; i++) {
        char login[64];
        snprintf(login, sizeof login, "guess%d@example.jp", i / 4);
        assert_int_equal(signin(login, "wrong password", peer, NULL), AZ_SIGNIN_BAD);
    }
    int retry = 0;
    assert_int_equal(signin("dave@example.jp", right, peer, &retry), AZ_SIGNIN_THROTTLED);
    assert_true(retry > 0 && retry <= 900);
    assert_int_equal(failures("addr:2001:db8::30"), 30);
    /* dave's login was not counted against him */
    assert_int_equal(failures("login:dave@example.jp"), -1);
    assert_int_equal(signin("dave@example.jp", right, "2001:db8::31", NULL), AZ_SIGNIN_OK);
}

struct attempt {
    enum az_signin_rc rc;
};

static void *attempt(void *arg)
{
    struct attempt *a = arg;
    a->rc = signin("erin@example.jp", "wrong password", "192.0.2.200", NULL);
    return NULL;
}

static void test_concurrent_attempts(void **state)
{
    (void)state;
    add("town_b", "erin@example.jp");
    /* ten wrong passwords at once: five are checked, five are turned away */
    pthread_t t[10];
    struct attempt a[10];
    for (int i = 0; i < 10; i++)
        pthread_create(&t[i], NULL, attempt, &a[i]);
    int bad = 0, throttled = 0;
    for (int i = 0; i < 10; i++) {
        pthread_join(t[i], NULL);
        bad += a[i].rc == AZ_SIGNIN_BAD;
        throttled += a[i].rc == AZ_SIGNIN_THROTTLED;
    }
    assert_int_equal(bad, 5);
    assert_int_equal(throttled, 5);
    assert_int_equal(signin("erin@example.jp", right, "192.0.2.201", NULL), AZ_SIGNIN_THROTTLED);
}

static void test_rehash(void **state)
{
    (void)state;
    add("town_a", "frank@example.jp"); /* ln=12,r=1,p=1 */
    const char *q = "SELECT password_hash FROM renkei.residents WHERE login = 'frank@example.jp'";
    char before[200];
    xsnprintf(before, sizeof before, "%s", tsup_value(conninfo, q));
    assert_int_equal(strncmp(before, "$scrypt$ln=12,r=1,p=1$", 22), 0);
    core_cfg.scrypt_ln = 13; /* the operator raised the cost */
    assert_int_equal(signin("frank@example.jp", "wrong password", "192.0.2.50", NULL),
                     AZ_SIGNIN_BAD);
    assert_string_equal(tsup_value(conninfo, q), before); /* not on a failure */
    assert_int_equal(signin("frank@example.jp", right, "192.0.2.50", NULL), AZ_SIGNIN_OK);
    const char *after = tsup_value(conninfo, q);
    assert_int_equal(strncmp(after, "$scrypt$ln=13,r=1,p=1$", 22), 0);
    assert_int_equal(signin("frank@example.jp", right, "192.0.2.50", NULL), AZ_SIGNIN_OK);
    core_cfg.scrypt_ln = 12; /* lowered again: a stronger hash stays */
    assert_int_equal(signin("frank@example.jp", right, "192.0.2.50", NULL), AZ_SIGNIN_OK);
    assert_int_equal(strncmp(tsup_value(conninfo, q), "$scrypt$ln=13,r=1,p=1$", 22), 0);
}

static void test_disable_ends_sessions(void **state)
{
    (void)state;
    add("town_a", "gina@example.jp");
    add("town_a", "hana@example.jp");
    tsup_exec(
        conninfo,
        "INSERT INTO renkei.clients (id, tenant_id, name, auth_method, grant_types, scopes, "
        "default_scopes, created_by) VALUES ('c_test_app', 'town_a', 'app', 'none', "
        "'{authorization_code}', '{}', '{}', 'test');"
        "INSERT INTO renkei.grants (id, resident_id, client_id, tenant_id) SELECT "
        "'g_' || substr(md5(login), 1, 20), id, 'c_test_app', 'town_a' FROM renkei.residents "
        "WHERE login IN ('gina@example.jp', 'hana@example.jp');"
        "INSERT INTO renkei.sessions (id_hash, sid, resident_id, auth_time, expires_at) SELECT "
        "sha256(convert_to(login, 'UTF8')), 's_' || substr(md5(login), 1, 20), id, now(), "
        "now() + interval '1 hour' FROM renkei.residents "
        "WHERE login IN ('gina@example.jp', 'hana@example.jp');"
        "INSERT INTO renkei.refresh_tokens (token_hash, family_id, grant_id, client_id, "
        "resident_id, scope, auth_time, expires_at) SELECT sha256(convert_to('rt' || login, "
        "'UTF8')), 'f_' || login, 'g_' || substr(md5(login), 1, 20), 'c_test_app', id, 'openid', "
        "now(), now() + interval '1 day' FROM renkei.residents "
        "WHERE login IN ('gina@example.jp', 'hana@example.jp')");
    const char *live =
        "SELECT (SELECT string_agg(r.login, ',' ORDER BY r.login) FROM renkei.sessions s JOIN "
        "renkei.residents r ON r.id = s.resident_id WHERE s.ended_at IS NULL) || ' ' || "
        "(SELECT string_agg(r.login, ',' ORDER BY r.login) FROM renkei.refresh_tokens t JOIN "
        "renkei.residents r ON r.id = t.resident_id WHERE t.revoked_at IS NULL)";
    assert_string_equal(tsup_value(conninfo, live),
                        "gina@example.jp,hana@example.jp gina@example.jp,hana@example.jp");
    /* town_b cannot see gina, so cannot disable her */
    struct az_result res;
    assert_int_equal(az_resident_set_disabled("town_b", "gina@example.jp", true, "client:b", &res),
                     AZ_NOT_FOUND);
    assert_string_equal(tsup_value(conninfo, live),
                        "gina@example.jp,hana@example.jp gina@example.jp,hana@example.jp");
    /* her own town can: sessions end, refresh tokens die, hana's stay */
    assert_int_equal(az_resident_set_disabled("town_a", "gina@example.jp", true, "client:a", &res),
                     AZ_OK);
    assert_string_equal(tsup_value(conninfo, live), "hana@example.jp hana@example.jp");
    assert_string_equal(tsup_value(conninfo, "SELECT state FROM renkei.residents WHERE login = "
                                             "'gina@example.jp'"),
                        "disabled");
    assert_string_equal(
        tsup_value(conninfo, "SELECT tenant || ' ' || actor FROM renkei.audit_events WHERE kind = "
                             "'resident.disable' ORDER BY seq DESC LIMIT 1"),
        "town_a client:a");
}

static void test_town_context(void **state)
{
    (void)state;
    add("town_b", "ivan@example.jp");
    struct az_result res;
    struct az_resident r;
    assert_int_equal(az_resident_by_login("town_a", "ivan@example.jp", &r, &res), AZ_NOT_FOUND);
    assert_int_equal(az_resident_by_login("town_b", "ivan@example.jp", &r, &res), AZ_OK);
    assert_int_equal(
        az_resident_update("town_a", "ivan@example.jp", "Eve", NULL, NULL, 0, "client:a", &res),
        AZ_NOT_FOUND);
    assert_int_equal(
        az_resident_link("town_a", "ivan@example.jp", "town_a", "A-1", "client:a", &res),
        AZ_NOT_FOUND);
    /* town_b links its own resident to its own number, not to town_a's */
    assert_int_equal(
        az_resident_link("town_b", "ivan@example.jp", "town_a", "A-1", "client:b", &res),
        AZ_FORBIDDEN);
    assert_int_equal(
        az_resident_link("town_b", "ivan@example.jp", "town_b", "B-1", "client:b", &res), AZ_OK);
    /* the platform links him to town_a too; town_b sees only its own link */
    assert_int_equal(
        az_resident_link(CORE_DB_PLATFORM, "ivan@example.jp", "town_a", "A-1", "cli:test", &res),
        AZ_OK);
    json_t *links = NULL;
    assert_int_equal(az_resident_links("town_b", "ivan@example.jp", &links, &res), AZ_OK);
    assert_int_equal(json_array_size(links), 1);
    json_decref(links);
    assert_int_equal(az_resident_links(CORE_DB_PLATFORM, "ivan@example.jp", &links, &res), AZ_OK);
    assert_int_equal(json_array_size(links), 2);
    json_decref(links);
    /* the exchange's look-up */
    assert_int_equal(az_resident_by_login(CORE_DB_PLATFORM, "ivan@example.jp", &r, &res), AZ_OK);
    char local[101];
    assert_int_equal(az_resident_local_id(r.id, "town_a", local), AZ_OK);
    assert_string_equal(local, "A-1");
    assert_int_equal(az_resident_local_id(r.id, "pref", local), AZ_NOT_FOUND);
    /* one number, one resident per town */
    add("town_b", "judy@example.jp");
    assert_int_equal(
        az_resident_link("town_b", "judy@example.jp", "town_b", "B-1", "client:b", &res),
        AZ_CONFLICT);
    /* a duplicate login, in any town */
    struct az_resident_spec s = {.tenant = "town_a",
                                 .login = "IVAN@example.jp",
                                 .password = right,
                                 .password_len = strlen(right)};
    assert_int_equal(az_resident_create("town_a", &s, "client:a", NULL, &res), AZ_CONFLICT);
    /* a town creates residents of its own only */
    s.login = "kate@example.jp";
    s.tenant = "town_b";
    assert_int_equal(az_resident_create("town_a", &s, "client:a", NULL, &res), AZ_FORBIDDEN);
    assert_string_equal(
        tsup_value(conninfo,
                   "SELECT count(*) FROM renkei.residents WHERE login = 'kate@example.jp'"),
        "0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signin),           cmocka_unit_test(test_login_throttle),
        cmocka_unit_test(test_address_throttle), cmocka_unit_test(test_concurrent_attempts),
        cmocka_unit_test(test_rehash),           cmocka_unit_test(test_disable_ends_sessions),
        cmocka_unit_test(test_town_context),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
