/*
 * au_filter_parse: the filters of GET /audit/v1/entries, which the auditor
 * console reads through the same function (so its table and its export
 * links filter alike). Every value is bounded and checked before it reaches
 * SQL; the first bad one is named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit/au_query.h"
#include "core/pool.h"

/* A request's query as name=value pairs, NULL-terminated. */
static const char *param(void *arg, const char *name)
{
    const char *const *kv = arg;
    for (; kv[0]; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static struct core_pool *pool; /* the last parse's (kind prefixes) */

static const char *parse(const char *const *kv, struct au_filter *f, const char **field)
{
    core_pool_free(pool);
    pool = core_pool_new();
    memset(f, 0, sizeof *f);
    f->after = f->upto = -1;
    *field = NULL;
    return au_filter_parse(f, param, (void *)kv, pool, field);
}

static void test_good(void **state)
{
    (void)state;
    struct au_filter f;
    const char *field;
    const char *none[] = {NULL};
    assert_null(parse(none, &f, &field));
    assert_null(f.from);
    assert_null(f.kind);

    const char *all[] = {"from",      "2026-04-01", "to",       "2026-04-02T09:00:00+09:00",
                         "tenant",    "kagawa",     "consumer", "kanonji",
                         "provider",  "takamatsu",  "client",   "c_x",
                         "agreement", "ag_1",       "purpose",  "disaster-response",
                         "decision",  "deny",       "kind",     "transfer",
                         "resident",  "r",          NULL};
    assert_null(parse(all, &f, &field));
    assert_string_equal(f.from, "2026-04-01");
    assert_string_equal(f.to, "2026-04-02T09:00:00+09:00");
    assert_string_equal(f.tenant, "kagawa");
    assert_string_equal(f.consumer, "kanonji");
    assert_string_equal(f.provider, "takamatsu");
    assert_string_equal(f.decision, "deny");
    assert_string_equal(f.kind, "transfer");
    assert_null(f.kind_prefix);
    assert_int_equal(f.after, -1); /* paging is not a filter */

    /* kind=x.* is a prefix */
    const char *prefix[] = {"kind", "consent.*", NULL};
    assert_null(parse(prefix, &f, &field));
    assert_null(f.kind);
    assert_string_equal(f.kind_prefix, "consent.");
}

static void expect_bad(const char *name, const char *value, const char *field_want)
{
    const char *kv[] = {"purpose", "fine", name, value, NULL};
    struct au_filter f;
    const char *field;
    const char *why = parse(kv, &f, &field);
    if (!why)
        fail_msg("%s=%s was taken", name, value);
    assert_string_equal(field, field_want);
}

static void test_bad(void **state)
{
    (void)state;
    char long_value[AU_FILTER_MAX + 2];
    memset(long_value, 'a', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    expect_bad("client", long_value, "client");
    expect_bad("agreement", "", "agreement");
    expect_bad("from", "yesterday", "from");
    expect_bad("to", "2026-02-30", "to");
    expect_bad("to", "2026-04-01 09:00:00Z", "to");
    expect_bad("decision", "maybe", "decision");
    expect_bad("consumer", "Kanonji", "consumer");
    expect_bad("provider", "a'; DROP TABLE x; --", "provider");
    /* exactly AU_FILTER_MAX bytes is fine */
    long_value[AU_FILTER_MAX] = '\0';
    const char *kv[] = {"client", long_value, NULL};
    struct au_filter f;
    const char *field;
    assert_null(parse(kv, &f, &field));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    core_pool_free(pool);
    return failed;
}
