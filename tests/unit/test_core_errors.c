#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/errors.h"
#include "core/http.h"
#include "core/pool.h"
#include "core/strbuf.h"

static void test_registry(void **state)
{
    (void)state;
    assert_int_equal(core_err_info(CORE_ERR_NOT_FOUND)->status, 404);
    assert_string_equal(core_err_info(CORE_ERR_NOT_FOUND)->name, "NotFound");
    assert_int_equal(core_err_info(CORE_ERR_METHOD_NOT_ALLOWED)->status, 405);
    assert_string_equal(core_err_info(CORE_ERR_BODY_TOO_LARGE)->name, "RequestEntityTooLarge");
    assert_int_equal(core_err_info(CORE_ERR_BODY_TOO_LARGE)->status, 413);
    assert_int_equal(core_err_info(CORE_ERR_DB_UNAVAILABLE)->status, 503);
    /* out of range maps to the internal error instead of reading past the table */
    assert_int_equal(core_err_info(CORE_ERR__COUNT)->status, 500);
    assert_int_equal(core_err_info((enum core_err) - 1)->status, 500);
    /* every entry is filled in, with a status that is an error */
    for (int i = 0; i < CORE_ERR__COUNT; i++) {
        const struct core_err_info *e = core_err_info((enum core_err)i);
        assert_true(e->status >= 400 && e->status <= 599);
        assert_non_null(e->name);
        assert_true(strlen(e->description) > 0);
    }
}

static void test_json_depth(void **state)
{
    (void)state;
    const char *flat = "{\"a\":[1,2,{\"b\":3}]}";
    assert_true(core_json_depth_ok(flat, strlen(flat), 3));
    assert_false(core_json_depth_ok(flat, strlen(flat), 2));
    /* brackets inside strings, and escaped quotes, do not count */
    const char *strings = "{\"a\":\"[[[[{{{{\\\"[[[[\"}";
    assert_true(core_json_depth_ok(strings, strlen(strings), 1));
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    assert_false(core_json_depth_ok(deep, sizeof deep, CORE_JSON_MAX_DEPTH));
    assert_true(core_json_depth_ok(deep, sizeof deep, 100));
}

static void test_strbuf_cap(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, 10);
    assert_true(strbuf_add(&sb, "12345", 5));
    assert_true(strbuf_adds(&sb, "67890"));
    assert_false(sb.toobig);
    assert_false(strbuf_add(&sb, "x", 1)); /* the 11th byte */
    assert_true(sb.toobig);
    assert_int_equal(sb.len, 10);
    assert_string_equal(sb.buf, "1234567890");
    size_t len;
    char *s = strbuf_detach(&sb, &len);
    assert_int_equal(len, 10);
    free(s);
    strbuf_init(&sb, 1 << 20);
    assert_true(strbuf_addf(&sb, "%0300d", 7)); /* longer than the stack buffer */
    assert_int_equal(sb.len, 300);
    strbuf_release(&sb);
}

static int cleaned;
static void count_cleanup(void *arg)
{
    cleaned = cleaned * 10 + *(int *)arg; /* records the order they ran in */
}

static void test_pool(void **state)
{
    (void)state;
    struct core_pool *pool = core_pool_new();
    for (int i = 0; i < 1000; i++) {
        char *s = core_psprintf(pool, "item %d", i);
        assert_string_equal(core_pstrdup(pool, s), s);
    }
    char *big = core_palloc(pool, 100000);
    memset(big, 1, 100000);
    long *aligned = core_palloc(pool, sizeof(long));
    assert_int_equal((uintptr_t)aligned % sizeof(long), 0);
    int one = 1, two = 2;
    core_pool_cleanup(pool, count_cleanup, &one);
    core_pool_cleanup(pool, count_cleanup, &two);
    cleaned = 0;
    core_pool_free(pool);
    assert_int_equal(cleaned, 21); /* newest first */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_json_depth),
        cmocka_unit_test(test_strbuf_cap),
        cmocka_unit_test(test_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
