#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/migrate.h"

static const struct core_migration ms[] = {
    {"0001_core.sql", "CREATE TABLE a ();", 18},
    {"0002_tenants.sql", "CREATE TABLE b ();", 18},
    {"0003_more.sql", "CREATE TABLE c ();", 18},
};

static void test_parse_name(void **state)
{
    (void)state;
    int v;
    char name[64];
    assert_true(core_migration_parse_name("0001_core.sql", &v, name));
    assert_int_equal(v, 1);
    assert_string_equal(name, "core");
    assert_true(core_migration_parse_name("0042_audit_log.sql", &v, name));
    assert_int_equal(v, 42);
    assert_string_equal(name, "audit_log");
    assert_false(core_migration_parse_name("0000_zero.sql", &v, name));
    assert_false(core_migration_parse_name("001_short.sql", &v, name));
    assert_false(core_migration_parse_name("0001-core.sql", &v, name));
    assert_false(core_migration_parse_name("0001_.sql", &v, name));
    assert_false(core_migration_parse_name("0001_core.txt", &v, name));
    assert_false(core_migration_parse_name("abcd_core.sql", &v, name));
}

static void test_checksum(void **state)
{
    (void)state;
    char sum[65];
    const struct core_migration empty = {"0001_x.sql", "", 0};
    core_migration_checksum(&empty, sum);
    assert_string_equal(sum, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const struct core_migration abc = {"0001_x.sql", "abc", 3};
    core_migration_checksum(&abc, sum);
    assert_string_equal(sum, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_plan_fresh_and_current(void **state)
{
    (void)state;
    struct core_migrate_plan plan;
    core_migrate_plan_make(ms, 3, NULL, NULL, 0, &plan);
    assert_int_equal(plan.n, 3);
    assert_int_equal(plan.pending, 3);
    assert_int_equal(plan.changed + plan.unknown, 0);
    char s1[65], s2[65], s3[65];
    core_migration_checksum(&ms[0], s1);
    core_migration_checksum(&ms[1], s2);
    core_migration_checksum(&ms[2], s3);
    core_migrate_plan_release(&plan);

    int versions[] = {1, 2};
    const char *sums[] = {s1, s2};
    core_migrate_plan_make(ms, 3, versions, sums, 2, &plan);
    assert_int_equal(plan.pending, 1);
    assert_int_equal(plan.items[0].state, CORE_MIGRATION_APPLIED);
    assert_int_equal(plan.items[1].state, CORE_MIGRATION_APPLIED);
    assert_int_equal(plan.items[2].state, CORE_MIGRATION_PENDING);
    assert_string_equal(plan.items[2].name, "more");
    core_migrate_plan_release(&plan);

    int all[] = {1, 2, 3};
    const char *allsums[] = {s1, s2, s3};
    core_migrate_plan_make(ms, 3, all, allsums, 3, &plan);
    assert_int_equal(plan.pending + plan.changed + plan.unknown, 0);
    core_migrate_plan_release(&plan);
}

static void test_plan_changed_and_unknown(void **state)
{
    (void)state;
    char s1[65];
    core_migration_checksum(&ms[0], s1);
    int versions[] = {1, 2, 7};
    const char *sums[] = {s1, "0000000000000000000000000000000000000000000000000000000000000000",
                          "abc"};
    struct core_migrate_plan plan;
    core_migrate_plan_make(ms, 3, versions, sums, 3, &plan);
    assert_int_equal(plan.n, 4);
    assert_int_equal(plan.items[0].state, CORE_MIGRATION_APPLIED);
    assert_int_equal(plan.items[1].state, CORE_MIGRATION_CHANGED);
    assert_int_equal(plan.items[2].state, CORE_MIGRATION_PENDING);
    assert_int_equal(plan.items[3].state, CORE_MIGRATION_UNKNOWN);
    assert_int_equal(plan.items[3].version, 7);
    assert_int_equal(plan.changed, 1);
    assert_int_equal(plan.unknown, 1);
    assert_int_equal(plan.ahead, 1); /* 7: newer than every migration here */
    assert_int_equal(plan.pending, 1);
    assert_string_equal(core_migration_state_name(CORE_MIGRATION_CHANGED), "changed");
    core_migrate_plan_release(&plan);
}

/* An unknown migration older than this binary's newest is not a newer
 * binary's: it is not "ahead". */
static void test_plan_unknown_not_ahead(void **state)
{
    (void)state;
    char s1[65], s2[65], s3[65];
    core_migration_checksum(&ms[0], s1);
    core_migration_checksum(&ms[1], s2);
    core_migration_checksum(&ms[2], s3);
    int versions[] = {1, 2, 3, 0, 9};
    const char *sums[] = {s1, s2, s3, "abc", "def"};
    struct core_migrate_plan plan;
    core_migrate_plan_make(ms, 3, versions, sums, 5, &plan);
    assert_int_equal(plan.unknown, 2);
    assert_int_equal(plan.ahead, 1);
    assert_int_equal(plan.pending + plan.changed, 0);
    core_migrate_plan_release(&plan);
}

static void test_embedded(void **state)
{
    (void)state;
    /* the binary carries sql/, in order, the first being the core migration */
    assert_true(core_migrations_count >= 1);
    int prev = 0;
    for (size_t i = 0; i < core_migrations_count; i++) {
        int v;
        char name[64];
        assert_true(core_migration_parse_name(core_migrations[i].file, &v, name));
        assert_true(v > prev);
        prev = v;
        assert_int_equal(strlen(core_migrations[i].sql), core_migrations[i].len);
    }
    assert_string_equal(core_migrations[0].file, "0001_core.sql");
    assert_non_null(strstr(core_migrations[0].sql, "renkei_service"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_name),
        cmocka_unit_test(test_checksum),
        cmocka_unit_test(test_plan_fresh_and_current),
        cmocka_unit_test(test_plan_changed_and_unknown),
        cmocka_unit_test(test_plan_unknown_not_ahead),
        cmocka_unit_test(test_embedded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
