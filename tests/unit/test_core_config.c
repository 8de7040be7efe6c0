#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <unistd.h>

#include "core/config.h"

/* A fake environment: NULL-terminated key, value pairs. */
static const char *lookup(const char *key, void *ctx)
{
    const char *const *kv = ctx;
    for (; kv[0]; kv += 2) {
        if (strcmp(kv[0], key) == 0)
            return kv[1];
    }
    return NULL;
}

static void parse_fails(const char *const *env, const char *expect_prefix)
{
    struct core_config cfg;
    char *err = NULL;
    assert_false(core_config_parse(&cfg, lookup, (void *)env, &err));
    assert_non_null(err);
    if (strncmp(err, expect_prefix, strlen(expect_prefix)) != 0)
        fail_msg("error \"%s\" does not start with \"%s\"", err, expect_prefix);
    assert_null(strchr(err, '\n'));
    free(err);
    core_config_release(&cfg);
}

static void test_defaults(void **state)
{
    (void)state;
    const char *env[] = {NULL};
    struct core_config cfg;
    char *err = NULL;
    assert_true(core_config_parse(&cfg, lookup, (void *)env, &err));
    assert_null(err);
    assert_null(cfg.db);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_null(cfg.issuer);
    assert_string_equal(cfg.secret_file, "./var/secret");
    assert_int_equal(cfg.threads, sysconf(_SC_NPROCESSORS_ONLN)); /* one per core */
    assert_int_equal(cfg.db_pool, cfg.threads + 2);
    assert_int_equal(cfg.max_body, 1048576);
    assert_int_equal(cfg.shutdown_grace, 10);
    assert_int_equal(cfg.log_level, CORE_LOG_INFO);
    core_config_release(&cfg);
}

static void test_values(void **state)
{
    (void)state;
    const char *env[] = {"RENKEI_DB",
                         "dbname=x",
                         "RENKEI_LISTEN",
                         "[::1]:9000",
                         "RENKEI_ISSUER",
                         "https://hub.example.jp/renkei/",
                         "RENKEI_THREADS",
                         "8",
                         "RENKEI_LOG",
                         "debug",
                         "RENKEI_MAX_BODY",
                         "4096",
                         NULL};
    struct core_config cfg;
    char *err = NULL;
    assert_true(core_config_parse(&cfg, lookup, (void *)env, &err));
    assert_string_equal(cfg.db, "dbname=x");
    assert_string_equal(cfg.listen_host, "::1");
    assert_int_equal(cfg.listen_port, 9000);
    assert_string_equal(cfg.issuer, "https://hub.example.jp/renkei"); /* trailing slash gone */
    assert_int_equal(cfg.threads, 8);
    assert_int_equal(cfg.db_pool, 10);
    assert_int_equal(cfg.log_level, CORE_LOG_DEBUG);
    assert_int_equal(cfg.max_body, 4096);
    core_config_release(&cfg);
}

static void test_bad_values(void **state)
{
    (void)state;
    const char *threads_abc[] = {"RENKEI_THREADS", "abc", NULL};
    parse_fails(threads_abc, "RENKEI_THREADS: ");
    const char *threads_zero[] = {"RENKEI_THREADS", "0", NULL};
    parse_fails(threads_zero, "RENKEI_THREADS: ");
    const char *threads_neg[] = {"RENKEI_THREADS", "-2", NULL};
    parse_fails(threads_neg, "RENKEI_THREADS: ");
    const char *threads_trailing[] = {"RENKEI_THREADS", "4x", NULL};
    parse_fails(threads_trailing, "RENKEI_THREADS: ");
    const char *log[] = {"RENKEI_LOG", "loud", NULL};
    parse_fails(log, "RENKEI_LOG: ");
    const char *listen_noport[] = {"RENKEI_LISTEN", "localhost", NULL};
    parse_fails(listen_noport, "RENKEI_LISTEN: ");
    const char *listen_bigport[] = {"RENKEI_LISTEN", "127.0.0.1:70000", NULL};
    parse_fails(listen_bigport, "RENKEI_LISTEN: ");
    const char *listen_junk[] = {"RENKEI_LISTEN", "a b:80", NULL};
    parse_fails(listen_junk, "RENKEI_LISTEN: ");
    const char *issuer_http[] = {"RENKEI_ISSUER", "http://hub.example.jp", NULL};
    parse_fails(issuer_http, "RENKEI_ISSUER: ");
    const char *issuer_query[] = {"RENKEI_ISSUER", "https://hub.example.jp/?a=b", NULL};
    parse_fails(issuer_query, "RENKEI_ISSUER: ");
    const char *issuer_frag[] = {"RENKEI_ISSUER", "https://hub.example.jp/#x", NULL};
    parse_fails(issuer_frag, "RENKEI_ISSUER: ");
    const char *issuer_scheme[] = {"RENKEI_ISSUER", "ftp://hub", NULL};
    parse_fails(issuer_scheme, "RENKEI_ISSUER: ");
    const char *db_empty[] = {"RENKEI_DB", "", NULL};
    parse_fails(db_empty, "RENKEI_DB: ");
    const char *body_small[] = {"RENKEI_MAX_BODY", "10", NULL};
    parse_fails(body_small, "RENKEI_MAX_BODY: ");
    const char *pool[] = {"RENKEI_DB_POOL", "100000", NULL};
    parse_fails(pool, "RENKEI_DB_POOL: ");
    const char *grace[] = {"RENKEI_SHUTDOWN_GRACE", "1.5", NULL};
    parse_fails(grace, "RENKEI_SHUTDOWN_GRACE: ");
    const char *deny[] = {"RENKEI_NOTIFY_DENY", "10.0.0.0/8, intranet", NULL};
    parse_fails(deny, "RENKEI_NOTIFY_DENY: ");
    const char *deny_empty[] = {"RENKEI_NOTIFY_DENY", "", NULL};
    parse_fails(deny_empty, "RENKEI_NOTIFY_DENY: ");
}

static void test_issuer_rules(void **state)
{
    (void)state;
    assert_null(core_config_check_issuer("https://hub.example.jp"));
    assert_null(core_config_check_issuer("https://hub.example.jp:8443/base"));
    assert_null(core_config_check_issuer("http://127.0.0.1:8080"));
    assert_null(core_config_check_issuer("http://localhost:8080"));
    assert_null(core_config_check_issuer("http://[::1]:8080"));
    assert_non_null(core_config_check_issuer("http://localhost.evil.example"));
    assert_non_null(core_config_check_issuer("https://user@hub.example.jp"));
    assert_non_null(core_config_check_issuer("https://"));
    assert_non_null(core_config_check_issuer("https://hub example"));
    assert_null(core_config_check_issuer("http://LOCALHOST:8080"));
    assert_null(core_config_check_issuer("http://127.1.2.3"));
    assert_non_null(core_config_check_issuer("http://127.evil.example"));
    assert_non_null(core_config_check_issuer("http://127.0.0.1.nip.io:8080"));
    assert_non_null(core_config_check_issuer("http://localhost:99999"));
    assert_non_null(core_config_check_issuer("https://hub:abc"));
    assert_non_null(core_config_check_issuer("https://hub.example:"));
    assert_non_null(core_config_check_issuer("https://hub.example:0"));
    assert_non_null(core_config_check_issuer("https://hub.example/a/../b"));
    assert_non_null(core_config_check_issuer("https://[::1"));
    assert_non_null(core_config_check_issuer("https://[zz::1]"));
    assert_null(core_config_check_issuer("https://[2001:db8::1]:8443/x"));
}

static void test_loopback(void **state)
{
    (void)state;
    assert_true(core_config_is_loopback("localhost"));
    assert_true(core_config_is_loopback("LocalHost"));
    assert_true(core_config_is_loopback("127.0.0.1"));
    assert_true(core_config_is_loopback("127.255.0.9"));
    assert_true(core_config_is_loopback("::1"));
    assert_false(core_config_is_loopback("128.0.0.1"));
    assert_false(core_config_is_loopback("0.0.0.0"));
    assert_false(core_config_is_loopback("127.0.0.1.example"));
    assert_false(core_config_is_loopback("::"));
}

static void test_listen_split(void **state)
{
    (void)state;
    char *host = NULL;
    int port = -1;
    assert_true(core_config_split_listen("0.0.0.0:0", &host, &port));
    assert_string_equal(host, "0.0.0.0");
    assert_int_equal(port, 0);
    free(host);
    assert_false(core_config_split_listen("[::1]8080", &host, &port));
    assert_false(core_config_split_listen(":8080", &host, &port));
    assert_false(core_config_split_listen("[]:8080", &host, &port));
    char *issuer = core_config_default_issuer("0.0.0.0", 1234);
    assert_string_equal(issuer, "http://127.0.0.1:1234");
    free(issuer);
    issuer = core_config_default_issuer("::1", 80);
    assert_string_equal(issuer, "http://[::1]:80");
    free(issuer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_values),
        cmocka_unit_test(test_bad_values),   cmocka_unit_test(test_issuer_rules),
        cmocka_unit_test(test_listen_split), cmocka_unit_test(test_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
