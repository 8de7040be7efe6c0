#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/pool.h"
#include "core/router.h"

static void h_a(struct core_req *r)
{
    (void)r;
}
static void h_b(struct core_req *r)
{
    (void)r;
}

static const struct core_route routes[] = {
    {CORE_GET, "/", h_a, "root", "t", 0},
    {CORE_GET, "/v2/entities", h_a, "list", "t", 0},
    {CORE_POST, "/v2/entities", h_b, "create", "t", 0},
    {CORE_GET, "/v2/entities/{id}", h_a, "one", "t", 0},
    {CORE_DELETE, "/v2/entities/{id}", h_b, "delete", "t", 0},
    {CORE_GET, "/v2/entities/{id}/attrs/{name}/value", h_a, "value", "t", 0},
    {CORE_GET, "/v2/entities/count", h_b, "literal beats param", "t", 0},
    {CORE_PUT, "/v2/types/{type}", h_b, "put type", "t", 0},
};

static struct core_router *make(void)
{
    struct core_router *r = core_router_new();
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        core_router_add(r, &routes[i]);
    return r;
}

static void test_literal_and_params(void **state)
{
    (void)state;
    struct core_router *r = make();
    struct core_pool *pool = core_pool_new();
    struct core_route_match m;

    assert_int_equal(core_router_match(r, "GET", "/v2/entities", pool, &m), CORE_MATCH_OK);
    assert_ptr_equal(m.route, &routes[1]);
    assert_int_equal(m.nparams, 0);

    assert_int_equal(core_router_match(r, "GET", "/v2/entities/Room1", pool, &m), CORE_MATCH_OK);
    assert_ptr_equal(m.route, &routes[3]);
    assert_int_equal(m.nparams, 1);
    assert_string_equal(m.names[0], "id");
    assert_string_equal(m.values[0], "Room1");
    assert_int_equal(m.route_id, 3);

    assert_int_equal(core_router_match(r, "GET",
                                       "/v2/entities/urn:ngsi:Room:1/attrs/temperature/value", pool,
                                       &m),
                     CORE_MATCH_OK);
    assert_ptr_equal(m.route, &routes[5]);
    assert_int_equal(m.nparams, 2);
    assert_string_equal(m.names[1], "name");
    assert_string_equal(m.values[0], "urn:ngsi:Room:1");
    assert_string_equal(m.values[1], "temperature");

    /* the literal segment wins for GET; DELETE falls back to the parameter */
    assert_int_equal(core_router_match(r, "GET", "/v2/entities/count", pool, &m), CORE_MATCH_OK);
    assert_ptr_equal(m.route, &routes[6]);
    assert_int_equal(core_router_match(r, "DELETE", "/v2/entities/count", pool, &m), CORE_MATCH_OK);
    assert_ptr_equal(m.route, &routes[4]);
    assert_string_equal(m.values[0], "count");

    assert_int_equal(core_router_match(r, "GET", "/", pool, &m), CORE_MATCH_OK);
    assert_ptr_equal(m.route, &routes[0]);

    core_pool_free(pool);
    core_router_free(r);
}

static void test_not_found(void **state)
{
    (void)state;
    struct core_router *r = make();
    struct core_pool *pool = core_pool_new();
    struct core_route_match m;
    const char *missing[] = {
        "/v3",
        "/v2",
        "/v2/entities/",
        "/v2//entities",
        "/v2/entities/a/attrs",
        "/v2/entities/a/attrs/b",
        "/v2/entitiesx",
        "",
        "v2/entities",
        "/v2/entities/a/attrs/b/value/extra",
    };
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        if (core_router_match(r, "GET", missing[i], pool, &m) != CORE_MATCH_NOT_FOUND)
            fail_msg("\"%s\" should not match", missing[i]);
    }
    core_pool_free(pool);
    core_router_free(r);
}

static void test_method_not_allowed(void **state)
{
    (void)state;
    struct core_router *r = make();
    struct core_pool *pool = core_pool_new();
    struct core_route_match m;
    assert_int_equal(core_router_match(r, "PATCH", "/v2/entities", pool, &m),
                     CORE_MATCH_BAD_METHOD);
    assert_string_equal(m.allow, "GET, HEAD, POST");
    assert_int_equal(core_router_match(r, "GET", "/v2/types/Room", pool, &m),
                     CORE_MATCH_BAD_METHOD);
    assert_string_equal(m.allow, "PUT");
    /* a method we do not route at all is 405 on a known path, 404 elsewhere */
    assert_int_equal(core_router_match(r, "BREW", "/v2/entities", pool, &m), CORE_MATCH_BAD_METHOD);
    assert_int_equal(core_router_match(r, "BREW", "/nothing", pool, &m), CORE_MATCH_NOT_FOUND);
    /* HEAD is answered by GET */
    assert_int_equal(core_router_match(r, "HEAD", "/v2/entities/x", pool, &m), CORE_MATCH_OK);
    assert_ptr_equal(m.route, &routes[3]);
    core_pool_free(pool);
    core_router_free(r);
}

static void test_methods(void **state)
{
    (void)state;
    assert_int_equal(core_method_parse("GET"), CORE_GET);
    assert_int_equal(core_method_parse("OPTIONS"), CORE_OPTIONS);
    assert_int_equal(core_method_parse("get"), CORE_METHOD__COUNT);
    assert_string_equal(core_method_name(CORE_PATCH), "PATCH");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_and_params),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_methods),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
