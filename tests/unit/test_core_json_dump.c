/* core_json_dump against jansson's own json_dumps: the same bytes for the
 * same value, over fixed cases and many random ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

static void same(const json_t *v, int precision)
{
    char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(precision));
    size_t len = 0;
    char *got = core_json_dump(v, precision, &len);
    assert_non_null(want);
    assert_non_null(got);
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
    free(want);
    free(got);
}

static void test_fixed(void **state)
{
    (void)state;
    const char *docs[] = {
        "{}",
        "[]",
        "\"\"",
        "0",
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "true",
        "false",
        "null",
        "0.0",
        "-0.0",
        "1.5",
        "0.1",
        "1e300",
        "-1e-300",
        "123456789012345678.0",
        "1e15",
        "1e16",
        "1e17",
        "1e-5",
        "0.0001",
        "2.5e-7",
        "3.14159265358979",
        "{\"a\":1,\"b\":[1,2,{\"c\":null}],\"d\":{\"e\":\"f\"}}",
        "\"quote \\\" backslash \\\\ slash / tab \\t nl \\n cr \\r bs \\b ff \\f\"",
        "\"ctl \\u0001 \\u001f \\u007f del\"",
        "\"nul \\u0000 inside\"",
        "\"日本語 and emoji \\ud83d\\ude00\"",

        "[[[[[[[[[[[]]]]]]]]]]]",
        "{\"z\":1,\"a\":2,\"m\":3}"};
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
        json_error_t e;
        json_t *v = json_loads(docs[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        assert_non_null(v);
        same(v, 0);
        same(v, 15);
        same(v, 6);
        json_decref(v);
    }
}

static json_t *random_value(unsigned *seed, int depth)
{
    int kind = rand_r(seed) % (depth > 4 ? 6 : 8);
    switch (kind) {
    case 0:
        return json_null();
    case 1:
        return json_boolean(rand_r(seed) & 1);
    case 2:
        return json_integer((json_int_t)rand_r(seed) * (rand_r(seed) % 3 - 1) * 1000003);
    case 3: {
        double m = (double)rand_r(seed) / RAND_MAX * (rand_r(seed) & 1 ? 1 : -1);
        return json_real(ldexp(m, rand_r(seed) % 200 - 100));
    }
    case 4:
        return json_real((double)(rand_r(seed) % 100000) / 100.0);
    case 5: {
        char s[40];
        size_t n = (size_t)(rand_r(seed) % 39);
        for (size_t i = 0; i < n; i++) {
            int r = rand_r(seed) % 10;
            s[i] = r == 0   ? (char)(rand_r(seed) % 32)
                   : r == 1 ? '"'
                   : r == 2 ? '\\'
                            : (char)(32 + rand_r(seed) % 95);
        }
        return json_stringn(s, n);
    }
    case 6: {
        json_t *a = json_array();
        int n = rand_r(seed) % 5;
        for (int i = 0; i < n; i++)
            json_array_append_new(a, random_value(seed, depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        int n = rand_r(seed) % 5;
        for (int i = 0; i < n; i++) {
            char k[8];
            snprintf(k, sizeof k, "k%d", rand_r(seed) % 50);
            json_object_set_new(o, k, random_value(seed, depth + 1));
        }
        return o;
    }
    }
}

static void test_random(void **state)
{
    (void)state;
    unsigned seed = 20261126;
    for (int i = 0; i < 20000; i++) {
        json_t *v = random_value(&seed, 0);
        same(v, i % 2 ? 15 : 0);
        json_decref(v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
