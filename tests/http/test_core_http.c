/*
 * The core HTTP server in-process, over real HTTP on loopback (libcurl as the
 * client): routing, body caps (declared and chunked), JSON bodies and
 * replies, request ids. No database: routes here do not touch one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>

#include "core/config.h"
#include "core/http.h"
#include "core/metrics.h"
#include "core/routes.h"
#include "tests/support/tsup.h"

static void h_echo(struct core_req *req)
{
    json_t *body = core_req_body_json(req);
    if (!body)
        return;
    core_reply_json(req, 200, json_incref(body));
}

static void h_item(struct core_req *req)
{
    const char *limit = core_req_query(req, "limit");
    core_reply_header(req, "Fiware-Total-Count", "1");
    core_reply_json(req, 200,
                    json_pack("{s:s, s:s?, s:s?}", "id", core_req_param(req, "id"), "limit", limit,
                              "service", core_req_header(req, "Fiware-Service")));
}

static void h_size(struct core_req *req)
{
    core_reply_json(req, 200, json_pack("{s:I}", "bytes", (json_int_t)req->body_len));
}

static void h_forgets(struct core_req *req)
{
    (void)req; /* a broken handler: the server must answer 500 for it */
}

static const struct core_route test_routes[] = {
    {CORE_POST, "/echo", h_echo, "echo a JSON body", "test", 0},
    {CORE_GET, "/items/{id}", h_item, "an item", "test", 0},
    {CORE_POST, "/size", h_size, "count body bytes", "test", 0},
    {CORE_POST, "/small", h_size, "small body cap", "test", 2048},
    {CORE_GET, "/forgets", h_forgets, "replies nothing", "test", 0},
    {CORE_GET, "/p/{a}/{b}", h_item, "two segments", "test", 0},
};

static struct core_router *router;

static int setup(void **state)
{
    (void)state;
    core_log_set_level(CORE_LOG_ERROR);
    router = core_router_new();
    core_routes(router);
    for (size_t i = 0; i < ARRAY_SIZE(test_routes); i++)
        core_router_add(router, &test_routes[i]);
    core_metrics_init(router);
    tsup_http_start(router);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tsup_http_stop();
    core_metrics_release();
    core_router_free(router);
    return 0;
}

static const char *const json_ct[] = {"Content-Type: application/json", NULL};

static void test_echo_json(void **state)
{
    (void)state;
    struct tsup_resp r;
    tsup_request(&r, "POST", "/echo", json_ct, "{\"name\":\"高松市\",\"n\":[1,2,3]}", 0);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    json_t *j = tsup_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "高松市");
    assert_int_equal(json_array_size(json_object_get(j, "n")), 3);
    json_decref(j);
    tsup_resp_release(&r);
}

static void test_bad_json_bodies(void **state)
{
    (void)state;
    struct tsup_resp r;
    tsup_request(&r, "POST", "/echo", json_ct, "{\"a\":", 0);
    tsup_assert_error(&r, 400, "ParseError");
    tsup_request(&r, "POST", "/echo", json_ct, "{\"a\":1,\"a\":2}", 0);
    tsup_assert_error(&r, 400, "ParseError");
    tsup_request(&r, "POST", "/echo", json_ct, "42", 0);
    tsup_assert_error(&r, 400, "ParseError");
    const char *const text_ct[] = {"Content-Type: text/plain", NULL};
    tsup_request(&r, "POST", "/echo", text_ct, "{}", 0);
    tsup_assert_error(&r, 415, "UnsupportedMediaType");
    /* nesting: 32 levels pass, 33 do not, and the description says why */
    char deep[512];
    memset(deep, '[', 32);
    memset(deep + 32, ']', 32);
    deep[64] = '\0';
    tsup_request(&r, "POST", "/echo", json_ct, deep, 0);
    assert_int_equal(r.status, 200);
    tsup_resp_release(&r);
    memset(deep, '[', 33);
    memset(deep + 33, ']', 33);
    deep[66] = '\0';
    tsup_request(&r, "POST", "/echo", json_ct, deep, 0);
    assert_non_null(strstr(r.body.buf, "deeper than 32"));
    tsup_assert_error(&r, 400, "ParseError");
    /* brackets inside a string after an escaped backslash do not count */
    char str[600];
    int k = snprintf(str, sizeof str, "[\"\\\\\",\"");
    memset(str + k, '[', 100);
    snprintf(str + k + 100, sizeof str - (size_t)k - 100, "\"]");
    tsup_request(&r, "POST", "/echo", json_ct, str, 0);
    assert_int_equal(r.status, 200);
    tsup_resp_release(&r);
}

static void test_params_query_headers(void **state)
{
    (void)state;
    const char *const hdr[] = {"Fiware-Service: kagawa", NULL};
    struct tsup_resp r;
    tsup_request(&r, "GET", "/items/urn:ngsi:Room:1?limit=5", hdr, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.total, "1");
    json_t *j = tsup_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "urn:ngsi:Room:1");
    assert_string_equal(json_string_value(json_object_get(j, "limit")), "5");
    assert_string_equal(json_string_value(json_object_get(j, "service")), "kagawa");
    json_decref(j);
    tsup_resp_release(&r);
}

static void test_not_found_and_method(void **state)
{
    (void)state;
    struct tsup_resp r;
    tsup_request(&r, "GET", "/nothing/here", NULL, NULL, 0);
    tsup_assert_error(&r, 404, "NotFound");
    tsup_request(&r, "DELETE", "/items/x", NULL, NULL, 0);
    assert_string_equal(r.allow, "GET, HEAD");
    tsup_assert_error(&r, 405, "MethodNotAllowed");
    tsup_request(&r, "GET", "/forgets", NULL, NULL, 0);
    tsup_assert_error(&r, 500, "InternalServerError");
}

static void test_body_caps(void **state)
{
    (void)state;
    struct tsup_resp r;
    /* exactly at the route's cap is fine, one byte over is not */
    char *body = xmalloc(2049);
    memset(body, ' ', 2048);
    body[2048] = '\0';
    tsup_request(&r, "POST", "/small", json_ct, body, 0);
    assert_int_equal(r.status, 200);
    tsup_resp_release(&r);
    body = xrealloc(body, 2050);
    memset(body, ' ', 2049);
    body[2049] = '\0';
    tsup_request(&r, "POST", "/small", json_ct, body, 0);
    tsup_assert_error(&r, 413, "RequestEntityTooLarge");
    free(body);

    /* chunked: no declared length, cut off when it grows past 1 MiB */
    tsup_request(&r, "POST", "/size", json_ct, NULL, 1000 * 1000);
    assert_int_equal(r.status, 200);
    json_t *j = tsup_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")), 1000 * 1000);
    json_decref(j);
    tsup_resp_release(&r);
    tsup_request(&r, "POST", "/size", json_ct, NULL, 3 * 1024 * 1024);
    tsup_assert_error(&r, 413, "RequestEntityTooLarge");
    /* a body far past the cap is not read to its end: the connection is cut */
    tsup_request(&r, "POST", "/size", json_ct, NULL, 64 * 1024 * 1024);
    assert_int_not_equal(r.rc, CURLE_OK);
    assert_int_not_equal(r.status, 200);
    tsup_resp_release(&r);

    /* the server is still serving */
    tsup_request(&r, "GET", "/healthz", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    tsup_resp_release(&r);
}

static void test_raw_path(void **state)
{
    (void)state;
    struct tsup_resp r;
    /* an encoded slash stays inside its segment */
    tsup_request(&r, "GET", "/items/a%2Fb", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    json_t *j = tsup_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "a/b");
    json_decref(j);
    tsup_resp_release(&r);
    tsup_request(&r, "GET", "/p/a%2Fb", NULL, NULL, 0);
    tsup_assert_error(&r, 404, "NotFound");
    /* an encoded NUL or a broken escape is a bad request, never a truncation */
    tsup_request(&r, "GET", "/healthz%00/evil", NULL, NULL, 0);
    tsup_assert_error(&r, 400, "BadRequest");
    tsup_request(&r, "GET", "/items/%zz", NULL, NULL, 0);
    tsup_assert_error(&r, 400, "BadRequest");
    tsup_request(&r, "GET", "/items/%4", NULL, NULL, 0);
    tsup_assert_error(&r, 400, "BadRequest");
    tsup_request(&r, "GET", "/items/%E9%AB%98%E6%9D%BE", NULL, NULL, 0); /* 高松 */
    assert_int_equal(r.status, 200);
    j = tsup_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "高松");
    json_decref(j);
    tsup_resp_release(&r);
}

static void test_head_and_keepalive(void **state)
{
    (void)state;
    CURL *c = curl_easy_init();
    struct tsup_resp r;
    memset(&r, 0, sizeof r);
    strbuf_init(&r.body, 1 << 16);
    char url[128];
    tsup_curl_sink(c, &r);
    /* HEAD: the GET route answers, with no body */
    snprintf(url, sizeof url, "%s/items/x", tsup_base());
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    /* a 404 and a 405 without bodies keep the connection for the next request */
    curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
    const char *paths[] = {"/nothing", "/healthz", "/items/x", "/healthz"};
    const char *methods[] = {"GET", "GET", "DELETE", "GET"};
    long expect[] = {404, 200, 405, 200};
    for (size_t i = 0; i < 4; i++) {
        snprintf(url, sizeof url, "%s%s", tsup_base(), paths[i]);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, methods[i]);
        assert_int_equal(curl_easy_perform(c), CURLE_OK);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        assert_int_equal(r.status, expect[i]);
        long fresh = -1;
        curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &fresh);
        assert_int_equal(fresh, 0); /* reused the first connection */
    }
    /* a body sent to an unknown route is refused before it is read */
    snprintf(url, sizeof url, "%s/nothing", tsup_base());
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "POST");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"a\":1}");
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    assert_int_equal(r.status, 404);
    curl_easy_cleanup(c);
    tsup_resp_release(&r);
}

static void test_request_ids(void **state)
{
    (void)state;
    struct tsup_resp a, b;
    tsup_request(&a, "GET", "/healthz", NULL, NULL, 0);
    tsup_request(&b, "GET", "/healthz", NULL, NULL, 0);
    assert_int_equal(strlen(a.request_id), 32);
    assert_string_not_equal(a.request_id, b.request_id);
    tsup_resp_release(&a);
    tsup_resp_release(&b);
    const char *const mine[] = {"X-Request-Id: trace-42.a:b_c", NULL};
    tsup_request(&a, "GET", "/healthz", mine, NULL, 0);
    assert_string_equal(a.request_id, "trace-42.a:b_c");
    tsup_resp_release(&a);
    const char *const bad[] = {"X-Request-Id: has space<script>", NULL};
    tsup_request(&a, "GET", "/nothing", bad, NULL, 0);
    assert_int_equal(strlen(a.request_id), 32);
    assert_null(strchr(a.request_id, '<'));
    tsup_assert_error(&a, 404, "NotFound");
}

static void test_metrics_and_openapi(void **state)
{
    (void)state;
    struct tsup_resp r;
    tsup_request(&r, "GET", "/metrics", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(strstr(r.body.buf, "renkei_http_requests_total{route=\"/echo\",method=\"POST\""
                                       ",status=\"200\"}"));
    assert_non_null(strstr(r.body.buf, "route=\"unmatched\",method=\"GET\",status=\"404\"}"));
    assert_non_null(
        strstr(r.body.buf, "renkei_http_request_duration_seconds_count{route=\"/echo\"}"));
    tsup_resp_release(&r);
    core_openapi_build(router, tsup_base());
    tsup_request(&r, "GET", "/openapi.json", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    json_t *j = tsup_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "openapi")), "3.1.0");
    json_t *item = json_object_get(json_object_get(j, "paths"), "/items/{id}");
    json_t *param = json_array_get(json_object_get(json_object_get(item, "get"), "parameters"), 0);
    assert_string_equal(json_string_value(json_object_get(param, "name")), "id");
    assert_non_null(json_object_get(json_object_get(j, "paths"), "/healthz"));
    json_decref(j);
    tsup_resp_release(&r);
    core_openapi_release();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_json),
        cmocka_unit_test(test_bad_json_bodies),
        cmocka_unit_test(test_params_query_headers),
        cmocka_unit_test(test_not_found_and_method),
        cmocka_unit_test(test_body_caps),
        cmocka_unit_test(test_raw_path),
        cmocka_unit_test(test_head_and_keepalive),
        cmocka_unit_test(test_request_ids),
        cmocka_unit_test(test_metrics_and_openapi),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
