/*
 * The tenant admin API in-process against a real PostgreSQL: authorization
 * rules (platform admin, town admin, others), validation, paging, ETags, the
 * events recorded, and the tenant-state cache following changes by NOTIFY.
 * The token service does not exist yet: a verifier local to this test maps
 * fixed bearer strings to principals, standing where authz will install the
 * real one (core_auth_set_verifier).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <unistd.h>

#include "core/auth.h"
#include "core/crypto.h"
#include "core/db.h"
#include "core/db_listen.h"
#include "core/log.h"
#include "core/routes.h"
#include "tenants/tn.h"
#include "tests/support/tsup.h"

static const char *conninfo;
static struct core_router *router;

static bool test_verifier(struct core_req *req, struct core_principal *out)
{
    const char *h = core_req_header(req, "Authorization");
    static const struct {
        const char *token, *client, *tenant, *scope;
    } known[] = {
        {"Bearer platform", "ops", "kagawa", "admin"},
        {"Bearer taka", "taka-admin", "takamatsu", "tenant.admin ngsi.read"},
        {"Bearer reader", "taka-app", "takamatsu", "ngsi.read"},
    };
    for (size_t i = 0; h && i < ARRAY_SIZE(known); i++) {
        if (strcmp(h, known[i].token) == 0) {
            out->client_id = known[i].client;
            out->tenant = known[i].tenant;
            out->scope = known[i].scope;
            return true;
        }
    }
    core_reply_header(req, "WWW-Authenticate", "Bearer realm=\"renkei\", error=\"invalid_token\"");
    core_reply_error(req, CORE_ERR_UNAUTHORIZED, "unknown test token");
    return false;
}

static int setup(void **state)
{
    (void)state;
    core_log_set_level(CORE_LOG_ERROR);
    if (!tsup_secret_create())
        return -1;
    conninfo = tsup_db_create("t_tenants_api");
    if (!conninfo)
        return -1;
    core_db_init(conninfo, 4);
    tn_cache_init();
    core_db_listen_start(conninfo);
    core_auth_set_verifier(test_verifier);
    router = core_router_new();
    core_routes(router);
    tn_routes(router);
    tsup_http_start(router);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tsup_http_stop();
    core_router_free(router);
    core_db_listen_stop();
    tn_cache_release();
    core_db_shutdown();
    tsup_db_drop();
    return tsup_secret_remove() ? 0 : -1;
}

static const char *const AS_PLATFORM[] = {"Authorization: Bearer platform",
                                          "Content-Type: application/json", NULL};
static const char *const AS_TAKA[] = {"Authorization: Bearer taka",
                                      "Content-Type: application/json", NULL};
static const char *const AS_READER[] = {"Authorization: Bearer reader",
                                        "Content-Type: application/json", NULL};

static void create(const char *body, long expect)
{
    struct tsup_resp r;
    tsup_request(&r, "POST", "/admin/v1/tenants", AS_PLATFORM, body, 0);
    if (r.status != expect)
        fail_msg("POST %s: expected %ld, got %ld %s", body, expect, r.status,
                 r.body.buf ? r.body.buf : "");
    tsup_resp_release(&r);
}

static void test_create_and_read(void **state)
{
    (void)state;
    struct tsup_resp r;
    tsup_request(&r, "POST", "/admin/v1/tenants", AS_PLATFORM,
                 "{\"id\":\"kagawa\",\"name\":\"香川県\",\"city_os\":{\"kind\":\"hosted\"}}", 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.location, "/admin/v1/tenants/kagawa");
    assert_string_equal(r.etag, "W/\"1\"");
    json_t *j = tsup_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "香川県");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "active");
    json_decref(j);
    tsup_resp_release(&r);
    create("{\"id\":\"takamatsu\",\"name\":\"高松市\",\"parent\":\"kagawa\","
           "\"city_os\":{\"kind\":\"hosted\"}}",
           201);
    create("{\"id\":\"kanonji\",\"name\":\"観音寺市\",\"parent\":\"kagawa\","
           "\"city_os\":{\"kind\":\"hosted\"}}",
           201);
    /* a remote city OS with a bearer token: stored sealed, never shown */
    create("{\"id\":\"zentsuji\",\"name\":\"善通寺市\",\"parent\":\"kagawa\",\"city_os\":{"
           "\"kind\":\"remote\",\"url\":\"https://orion.zentsuji.example:1026\","
           "\"fiware_service\":\"zentsuji\",\"auth\":{\"type\":\"bearer\","
           "\"token\":\"TOKEN-ZENTSUJI-123\"}}}",
           201);
    tsup_request(&r, "GET", "/admin/v1/tenants/zentsuji", AS_PLATFORM, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body.buf, "TOKEN-ZENTSUJI"));
    j = tsup_json(&r);
    json_t *os = json_object_get(j, "city_os");
    assert_string_equal(json_string_value(json_object_get(os, "auth")), "bearer");
    assert_string_equal(json_string_value(json_object_get(os, "url")),
                        "https://orion.zentsuji.example:1026");
    json_decref(j);
    tsup_resp_release(&r);
    assert_string_equal(tsup_value(conninfo, "SELECT position(convert_to('TOKEN-ZENTSUJI', "
                                             "'UTF8') in secret) FROM renkei.tenant_upstreams "
                                             "WHERE tenant_id = 'zentsuji'"),
                        "0");
    assert_string_equal(tsup_value(conninfo, "SELECT count(*) FROM renkei.audit_events WHERE "
                                             "kind = 'tenant.create' AND actor = 'client:ops'"),
                        "4");
}

static void test_create_refusals(void **state)
{
    (void)state;
    struct tsup_resp r;
    const char *ok_body = "{\"id\":\"ayagawa\",\"name\":\"綾川町\",\"parent\":\"kagawa\","
                          "\"city_os\":{\"kind\":\"hosted\"}}";
    /* who may not */
    tsup_request(&r, "POST", "/admin/v1/tenants", AS_TAKA, ok_body, 0);
    tsup_assert_error(&r, 403, "Forbidden");
    tsup_request(&r, "POST", "/admin/v1/tenants", AS_READER, ok_body, 0);
    tsup_assert_error(&r, 403, "Forbidden");
    const char *const nobody[] = {"Content-Type: application/json", NULL};
    tsup_request(&r, "POST", "/admin/v1/tenants", nobody, ok_body, 0);
    assert_string_equal(r.www_authenticate, "Bearer realm=\"renkei\", error=\"invalid_token\"");
    tsup_assert_error(&r, 401, "Unauthorized");
    /* what may not */
    static const struct {
        const char *body;
        long status;
        const char *error;
    } bad[] = {
        {"{\"id\":\"takamatsu\",\"name\":\"x\",\"city_os\":{\"kind\":\"hosted\"}}", 409,
         "Conflict"},
        {"{\"id\":\"x1\",\"name\":\"x\",\"parent\":\"nope\",\"city_os\":{\"kind\":\"hosted\"}}",
         400, "BadRequest"},
        {"{\"id\":\"X1\",\"name\":\"x\",\"city_os\":{\"kind\":\"hosted\"}}", 400, "BadRequest"},
        {"{\"id\":\"x2\",\"name\":\"\",\"city_os\":{\"kind\":\"hosted\"}}", 400, "BadRequest"},
        {"{\"id\":\"x3\",\"name\":\"x\"}", 400, "BadRequest"},
        {"{\"id\":\"x4\",\"name\":\"x\",\"city_os\":{\"kind\":\"cloud\"}}", 400, "BadRequest"},
        {"{\"id\":\"x5\",\"name\":\"x\",\"city_os\":{\"kind\":\"remote\",\"url\":\"ftp://a\"}}",
         400, "BadRequest"},
        {"{\"id\":\"x6\",\"name\":\"x\",\"city_os\":{\"kind\":\"remote\",\"url\":\"https://a\","
         "\"auth\":{\"type\":\"bearer\"}}}",
         400, "BadRequest"},
        {"{\"id\":\"x7\",\"name\":\"x\",\"city_os\":{\"kind\":\"hosted\"},\"extra\":1}", 400,
         "BadRequest"},
        {"{\"id\":7,\"name\":\"x\",\"city_os\":{\"kind\":\"hosted\"}}", 400, "BadRequest"},
        {"{\"id\":\"x8\",\"name\":\"x\",\"city_os\":{\"kind\":\"hosted\",\"url\":\"https://a\"}}",
         400, "BadRequest"},
        {"[1,2]", 400, "BadRequest"},
        {"{\"id\":", 400, "ParseError"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        tsup_request(&r, "POST", "/admin/v1/tenants", AS_PLATFORM, bad[i].body, 0);
        if (r.status != bad[i].status)
            fail_msg("%s: expected %ld, got %ld %s", bad[i].body, bad[i].status, r.status,
                     r.body.buf ? r.body.buf : "");
        tsup_assert_error(&r, bad[i].status, bad[i].error);
    }
    /* a 201-character name, in Japanese */
    char body[1024];
    int k = snprintf(body, sizeof body, "{\"id\":\"x9\",\"name\":\"");
    for (int i = 0; i < 201; i++)
        k += snprintf(body + k, sizeof body - (size_t)k, "町");
    snprintf(body + k, sizeof body - (size_t)k, "\",\"city_os\":{\"kind\":\"hosted\"}}");
    tsup_request(&r, "POST", "/admin/v1/tenants", AS_PLATFORM, body, 0);
    tsup_assert_error(&r, 400, "BadRequest");
    /* nothing of the refused ones was created, and no event recorded for them */
    assert_string_equal(tsup_value(conninfo, "SELECT count(*) FROM renkei.tenants WHERE id "
                                             "LIKE 'x%' OR id = 'ayagawa'"),
                        "0");
    assert_string_equal(tsup_value(conninfo, "SELECT count(*) FROM renkei.audit_events WHERE "
                                             "tenant LIKE 'x%'"),
                        "0");
}

static void test_list_and_paging(void **state)
{
    (void)state;
    struct tsup_resp r;
    /* the platform pages through everyone, in id order */
    const char *expect[] = {"kagawa", "kanonji", "takamatsu", "zentsuji"};
    size_t seen = 0;
    char path[128] = "/admin/v1/tenants?limit=3";
    for (int page = 0; page < 3; page++) {
        tsup_request(&r, "GET", path, AS_PLATFORM, NULL, 0);
        if (r.status != 200)
            fail_msg("GET %s: %ld %s", path, r.status, r.body.buf ? r.body.buf : "");
        json_t *j = tsup_json(&r);
        json_t *items = json_object_get(j, "items");
        for (size_t i = 0; i < json_array_size(items); i++) {
            assert_true(seen < ARRAY_SIZE(expect));
            assert_string_equal(json_string_value(json_object_get(json_array_get(items, i), "id")),
                                expect[seen++]);
        }
        json_t *next = json_object_get(j, "next");
        bool more = json_is_string(next);
        if (more)
            snprintf(path, sizeof path, "/admin/v1/tenants?limit=3&cursor=%s",
                     json_string_value(next));
        json_decref(j);
        tsup_resp_release(&r);
        if (!more)
            break;
    }
    assert_int_equal(seen, ARRAY_SIZE(expect));
    /* a town admin sees its own tenant only */
    tsup_request(&r, "GET", "/admin/v1/tenants", AS_TAKA, NULL, 0);
    assert_int_equal(r.status, 200);
    json_t *j = tsup_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "items"), 0), "id")),
        "takamatsu");
    assert_true(json_is_null(json_object_get(j, "next")));
    json_decref(j);
    tsup_resp_release(&r);
    /* an app token is not an admin token */
    tsup_request(&r, "GET", "/admin/v1/tenants", AS_READER, NULL, 0);
    tsup_assert_error(&r, 403, "Forbidden");
    /* bounds */
    tsup_request(&r, "GET", "/admin/v1/tenants?limit=0", AS_PLATFORM, NULL, 0);
    tsup_assert_error(&r, 400, "BadRequest");
    tsup_request(&r, "GET", "/admin/v1/tenants?limit=501", AS_PLATFORM, NULL, 0);
    tsup_assert_error(&r, 400, "BadRequest");
    tsup_request(&r, "GET", "/admin/v1/tenants?cursor=%27%20OR%201%3D1", AS_PLATFORM, NULL, 0);
    tsup_assert_error(&r, 400, "BadRequest");
}

static void test_town_admin_rules(void **state)
{
    (void)state;
    struct tsup_resp r;
    tsup_request(&r, "GET", "/admin/v1/tenants/kanonji", AS_TAKA, NULL, 0);
    tsup_assert_error(&r, 403, "Forbidden");
    tsup_request(&r, "PATCH", "/admin/v1/tenants/kanonji", AS_TAKA, "{\"name\":\"乗っ取り\"}", 0);
    tsup_assert_error(&r, 403, "Forbidden");
    tsup_request(&r, "GET", "/admin/v1/tenants/takamatsu", AS_TAKA, NULL, 0);
    assert_int_equal(r.status, 200);
    tsup_resp_release(&r);
    /* its own name: yes; its parent or state: no */
    tsup_request(&r, "PATCH", "/admin/v1/tenants/takamatsu", AS_TAKA, "{\"name\":\"高松市役所\"}",
                 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.etag, "W/\"2\"");
    tsup_resp_release(&r);
    tsup_request(&r, "PATCH", "/admin/v1/tenants/takamatsu", AS_TAKA, "{\"parent\":null}", 0);
    tsup_assert_error(&r, 403, "Forbidden");
    tsup_request(&r, "PATCH", "/admin/v1/tenants/takamatsu", AS_TAKA, "{\"state\":\"suspended\"}",
                 0);
    tsup_assert_error(&r, 403, "Forbidden");
    assert_string_equal(tsup_value(conninfo, "SELECT name || ' ' || coalesce(parent_id, '-') || "
                                             "' ' || state FROM renkei.tenants WHERE id = "
                                             "'takamatsu'"),
                        "高松市役所 kagawa active");
    assert_string_equal(tsup_value(conninfo, "SELECT count(*) FROM renkei.audit_events WHERE "
                                             "kind = 'tenant.update' AND actor = "
                                             "'client:taka-admin'"),
                        "1");
}

static void test_platform_updates(void **state)
{
    (void)state;
    struct tsup_resp r;
    /* optimistic concurrency */
    const char *const stale[] = {"Authorization: Bearer platform", "Content-Type: application/json",
                                 "If-Match: W/\"1\"", NULL};
    tsup_request(&r, "PATCH", "/admin/v1/tenants/takamatsu", stale, "{\"name\":\"高松市\"}", 0);
    tsup_assert_error(&r, 412, "PreconditionFailed");
    const char *const fresh[] = {"Authorization: Bearer platform", "Content-Type: application/json",
                                 "If-Match: W/\"2\"", NULL};
    tsup_request(&r, "PATCH", "/admin/v1/tenants/takamatsu", fresh, "{\"name\":\"高松市\"}", 0);
    assert_int_equal(r.status, 200);
    tsup_resp_release(&r);
    /* a cycle in the parent chain */
    tsup_request(&r, "PATCH", "/admin/v1/tenants/kagawa", AS_PLATFORM, "{\"parent\":\"takamatsu\"}",
                 0);
    tsup_assert_error(&r, 400, "BadRequest");
    tsup_request(&r, "PATCH", "/admin/v1/tenants/kagawa", AS_PLATFORM, "{\"parent\":\"kagawa\"}",
                 0);
    tsup_assert_error(&r, 400, "BadRequest");
    tsup_request(&r, "PATCH", "/admin/v1/tenants/nope", AS_PLATFORM, "{\"name\":\"x\"}", 0);
    tsup_assert_error(&r, 404, "NotFound");
    tsup_request(&r, "PATCH", "/admin/v1/tenants/kanonji", AS_PLATFORM, "{\"state\":\"gone\"}", 0);
    tsup_assert_error(&r, 400, "BadRequest");
    /* switch a town to a remote city OS with client credentials, and back */
    tsup_request(&r, "PATCH", "/admin/v1/tenants/kanonji", AS_PLATFORM,
                 "{\"city_os\":{\"kind\":\"remote\",\"url\":\"http://10.1.2.3:1026\","
                 "\"auth\":{\"type\":\"client_credentials\",\"token_url\":"
                 "\"https://idp.kanonji.example/token\",\"client_id\":\"hub\","
                 "\"client_secret\":\"CS-KANONJI\",\"scope\":\"orion\"}}}",
                 0);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body.buf, "CS-KANONJI"));
    json_t *j = tsup_json(&r);
    json_t *os = json_object_get(j, "city_os");
    assert_string_equal(json_string_value(json_object_get(os, "auth")), "client_credentials");
    assert_string_equal(json_string_value(json_object_get(os, "client_id")), "hub");
    json_decref(j);
    tsup_resp_release(&r);
    tsup_request(&r, "PATCH", "/admin/v1/tenants/kanonji", AS_PLATFORM,
                 "{\"city_os\":{\"kind\":\"hosted\"}}", 0);
    assert_int_equal(r.status, 200);
    tsup_resp_release(&r);
    assert_string_equal(tsup_value(conninfo, "SELECT count(*) FROM renkei.tenant_upstreams "
                                             "WHERE tenant_id = 'kanonji'"),
                        "0");
    tsup_request(&r, "DELETE", "/admin/v1/tenants/kanonji", AS_PLATFORM, NULL, 0);
    tsup_assert_error(&r, 405, "MethodNotAllowed");
}

static void test_suspension_and_cache(void **state)
{
    (void)state;
    struct tn_brief b;
    assert_int_equal(tn_brief("takamatsu", &b), TN_OK);
    assert_int_equal(b.state, TN_ACTIVE);
    assert_true(b.hosted);
    assert_int_equal(tn_brief("nope", &b), TN_NOT_FOUND);
    assert_int_equal(tn_brief("*", &b), TN_NOT_FOUND);

    struct tsup_resp r;
    tsup_request(&r, "PATCH", "/admin/v1/tenants/takamatsu", AS_PLATFORM,
                 "{\"state\":\"suspended\",\"reason\":\"浸水のため\"}", 0);
    assert_int_equal(r.status, 200);
    tsup_resp_release(&r);
    /* the change reaches the cache by NOTIFY (waiting at most 10 s for it) */
    bool seen = false;
    for (int i = 0; i < 200 && !seen; i++) {
        assert_int_equal(tn_brief("takamatsu", &b), TN_OK);
        seen = b.state == TN_SUSPENDED;
        if (!seen)
            usleep(50 * 1000);
    }
    assert_true(seen);
    /* also a change made behind the hub's back, straight in SQL */
    tsup_exec(conninfo, "SET ROLE renkei_service; SELECT set_config('renkei.tenant', '*', "
                        "false); UPDATE renkei.tenants SET state = 'active' WHERE id = "
                        "'takamatsu'");
    seen = false;
    for (int i = 0; i < 200 && !seen; i++) {
        assert_int_equal(tn_brief("takamatsu", &b), TN_OK);
        seen = b.state == TN_ACTIVE;
        if (!seen)
            usleep(50 * 1000);
    }
    assert_true(seen);
    assert_string_equal(tsup_value(conninfo, "SELECT detail->>'reason' FROM "
                                             "renkei.audit_events WHERE kind = "
                                             "'tenant.suspend' AND tenant = 'takamatsu'"),
                        "浸水のため");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_read),  cmocka_unit_test(test_create_refusals),
        cmocka_unit_test(test_list_and_paging),  cmocka_unit_test(test_town_admin_rules),
        cmocka_unit_test(test_platform_updates), cmocka_unit_test(test_suspension_and_cache),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
