#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "authz/az_form.h"

static void test_parse(void **state)
{
    (void)state;
    struct core_pool *pool = core_pool_new();
    struct az_form f;
    const char *body = "grant_type=client_credentials&scope=ngsi.read+ngsi.write&"
                       "resource=https%3A%2F%2Fhub.example%2Fv2&&empty=&flag";
    assert_null(az_form_parse(body, strlen(body), pool, &f));
    assert_int_equal(f.n, 3); /* "empty=" and "flag" have no value: as if omitted */
    assert_string_equal(az_form_get(&f, "grant_type"), "client_credentials");
    assert_string_equal(az_form_get(&f, "scope"), "ngsi.read ngsi.write");
    assert_string_equal(az_form_get(&f, "resource"), "https://hub.example/v2");
    assert_null(az_form_get(&f, "empty"));
    assert_null(az_form_get(&f, "flag"));
    /* so an empty one beside a real one is no repetition */
    const char *twice = "scope=&scope=ngsi.read";
    assert_null(az_form_parse(twice, strlen(twice), pool, &f));
    assert_string_equal(az_form_get(&f, "scope"), "ngsi.read");
    assert_null(az_form_get(&f, "missing"));
    /* UTF-8 survives */
    const char *jp = "name=%E9%AB%98%E6%9D%BE";
    assert_null(az_form_parse(jp, strlen(jp), pool, &f));
    assert_string_equal(az_form_get(&f, "name"), "高松");
    core_pool_free(pool);
}

static void test_refusals(void **state)
{
    (void)state;
    struct core_pool *pool = core_pool_new();
    struct az_form f;
    const char *bad[] = {
        "a=1&a=2", /* repeated (RFC 6749 §3.1) */
        "=x",      /* no name */
        "a=%zz",   /* bad escape */
        "a=%4",    /* truncated escape */
        "a=%00",   /* NUL */
        "grant_type=x&grant_type=x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (!az_form_parse(bad[i], strlen(bad[i]), pool, &f))
            fail_msg("\"%s\" should be refused", bad[i]);
    }
    /* bounds: 33 parameters, and a value over 8 KiB */
    char many[400] = "";
    size_t used = 0;
    for (int i = 0; i < 33; i++)
        used += (size_t)snprintf(many + used, sizeof many - used, "p%d=1&", i);
    assert_non_null(az_form_parse(many, used, pool, &f));
    char *big = xmalloc(AZ_FORM_MAX_VALUE + 10);
    memcpy(big, "a=", 2);
    memset(big + 2, 'x', AZ_FORM_MAX_VALUE + 1);
    assert_non_null(az_form_parse(big, AZ_FORM_MAX_VALUE + 3, pool, &f));
    memset(big + 2, 'x', AZ_FORM_MAX_VALUE);
    assert_null(az_form_parse(big, AZ_FORM_MAX_VALUE + 2, pool, &f));
    free(big);
    core_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
