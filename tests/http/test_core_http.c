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
static struct core_http_server *srv;
static char base[64];

static int setup(void **state)
{
    (void)state;
    struct core_config cfg = {
        .listen = "127.0.0.1:0",
        .listen_host = "127.0.0.1",
        .listen_port = 0,
        .threads = 2,
        .max_body = 1 << 20,
    };
    core_log_set_level(CORE_LOG_ERROR);
    router = core_router_new();
    core_routes(router);
    for (size_t i = 0; i < ARRAY_SIZE(test_routes); i++)
        core_router_add(router, &test_routes[i]);
    core_metrics_init(router);
    int port = 0;
    srv = core_http_bind(&cfg, &port);
    assert_non_null(srv);
    assert_true(core_http_start(srv, &cfg, router));
    assert_true(port > 0);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    core_http_stop(srv, 5, NULL);
    core_metrics_release();
    core_router_free(router);
    curl_global_cleanup();
    return 0;
}

struct resp {
    long status;
    struct strbuf body;
    char content_type[128];
    char request_id[160];
    char allow[64];
    char total[16];
    CURLcode rc;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    strbuf_add(&r->body, p, size * n);
    return size * n;
}

static void copy_header(const char *line, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    if (len <= nlen + 1 || strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
        return;
    const char *v = line + nlen + 1;
    while (*v == ' ')
        v++;
    size_t vlen = (size_t)(line + len - v);
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
        vlen--;
    if (vlen >= outlen)
        vlen = outlen - 1;
    memcpy(out, v, vlen);
    out[vlen] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    copy_header(p, size * n, "Content-Type", r->content_type, sizeof r->content_type);
    copy_header(p, size * n, "X-Request-Id", r->request_id, sizeof r->request_id);
    copy_header(p, size * n, "Allow", r->allow, sizeof r->allow);
    copy_header(p, size * n, "Fiware-Total-Count", r->total, sizeof r->total);
    return size * n;
}

/* A body produced piece by piece, so curl sends it chunked. */
struct source {
    size_t left;
};

static size_t on_read(char *p, size_t size, size_t n, void *arg)
{
    struct source *s = arg;
    size_t k = size * n < s->left ? size * n : s->left;
    memset(p, ' ', k);
    s->left -= k;
    return k;
}

static void request(struct resp *r, const char *method, const char *path,
                    const char *const *headers, const char *body, size_t chunked_len)
{
    memset(r, 0, sizeof *r);
    strbuf_init(&r->body, 1 << 20);
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    struct curl_slist *h = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    struct source src = {chunked_len};
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (chunked_len) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &src);
        h = curl_slist_append(h, "Transfer-Encoding: chunked");
        h = curl_slist_append(h, "Expect:"); /* send the body without waiting */
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    r->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static json_t *body_json(struct resp *r)
{
    json_error_t e;
    json_t *j = json_loadb(r->body.buf ? r->body.buf : "", r->body.len, 0, &e);
    if (!j)
        fail_msg("reply is not JSON: %s", r->body.buf ? r->body.buf : "(empty)");
    return j;
}

static void assert_error_body(struct resp *r, long status, const char *name)
{
    assert_int_equal(r->status, status);
    assert_string_equal(r->content_type, "application/json");
    json_t *j = body_json(r);
    assert_string_equal(json_string_value(json_object_get(j, "error")), name);
    assert_true(json_is_string(json_object_get(j, "description")));
    assert_int_equal(json_object_size(j), 2);
    json_decref(j);
    strbuf_release(&r->body);
}

static const char *const json_ct[] = {"Content-Type: application/json", NULL};

static void test_echo_json(void **state)
{
    (void)state;
    struct resp r;
    request(&r, "POST", "/echo", json_ct, "{\"name\":\"高松市\",\"n\":[1,2,3]}", 0);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "高松市");
    assert_int_equal(json_array_size(json_object_get(j, "n")), 3);
    json_decref(j);
    strbuf_release(&r.body);
}

static void test_bad_json_bodies(void **state)
{
    (void)state;
    struct resp r;
    request(&r, "POST", "/echo", json_ct, "{\"a\":", 0);
    assert_error_body(&r, 400, "ParseError");
    request(&r, "POST", "/echo", json_ct, "{\"a\":1,\"a\":2}", 0);
    assert_error_body(&r, 400, "ParseError");
    request(&r, "POST", "/echo", json_ct, "42", 0);
    assert_error_body(&r, 400, "ParseError");
    const char *const text_ct[] = {"Content-Type: text/plain", NULL};
    request(&r, "POST", "/echo", text_ct, "{}", 0);
    assert_error_body(&r, 415, "UnsupportedMediaType");
    /* nesting: 32 levels pass, 33 do not, and the description says why */
    char deep[512];
    memset(deep, '[', 32);
    memset(deep + 32, ']', 32);
    deep[64] = '\0';
    request(&r, "POST", "/echo", json_ct, deep, 0);
    assert_int_equal(r.status, 200);
    strbuf_release(&r.body);
    memset(deep, '[', 33);
    memset(deep + 33, ']', 33);
    deep[66] = '\0';
    request(&r, "POST", "/echo", json_ct, deep, 0);
    assert_non_null(strstr(r.body.buf, "deeper than 32"));
    assert_error_body(&r, 400, "ParseError");
    /* brackets inside a string after an escaped backslash do not count */
    char str[600];
    int k = snprintf(str, sizeof str, "[\"\\\\\",\"");
    memset(str + k, '[', 100);
    snprintf(str + k + 100, sizeof str - (size_t)k - 100, "\"]");
    request(&r, "POST", "/echo", json_ct, str, 0);
    assert_int_equal(r.status, 200);
    strbuf_release(&r.body);
}

static void test_params_query_headers(void **state)
{
    (void)state;
    const char *const hdr[] = {"Fiware-Service: kagawa", NULL};
    struct resp r;
    request(&r, "GET", "/items/urn:ngsi:Room:1?limit=5", hdr, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.total, "1");
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "urn:ngsi:Room:1");
    assert_string_equal(json_string_value(json_object_get(j, "limit")), "5");
    assert_string_equal(json_string_value(json_object_get(j, "service")), "kagawa");
    json_decref(j);
    strbuf_release(&r.body);
}

static void test_not_found_and_method(void **state)
{
    (void)state;
    struct resp r;
    request(&r, "GET", "/nothing/here", NULL, NULL, 0);
    assert_error_body(&r, 404, "NotFound");
    request(&r, "DELETE", "/items/x", NULL, NULL, 0);
    assert_string_equal(r.allow, "GET, HEAD");
    assert_error_body(&r, 405, "MethodNotAllowed");
    request(&r, "GET", "/forgets", NULL, NULL, 0);
    assert_error_body(&r, 500, "InternalServerError");
}

static void test_body_caps(void **state)
{
    (void)state;
    struct resp r;
    /* exactly at the route's cap is fine, one byte over is not */
    char *body = xmalloc(2049);
    memset(body, ' ', 2048);
    body[2048] = '\0';
    request(&r, "POST", "/small", json_ct, body, 0);
    assert_int_equal(r.status, 200);
    strbuf_release(&r.body);
    body = xrealloc(body, 2050);
    memset(body, ' ', 2049);
    body[2049] = '\0';
    request(&r, "POST", "/small", json_ct, body, 0);
    assert_error_body(&r, 413, "RequestEntityTooLarge");
    free(body);

    /* chunked: no declared length, cut off when it grows past 1 MiB */
    request(&r, "POST", "/size", json_ct, NULL, 1000 * 1000);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes")), 1000 * 1000);
    json_decref(j);
    strbuf_release(&r.body);
    request(&r, "POST", "/size", json_ct, NULL, 3 * 1024 * 1024);
    assert_error_body(&r, 413, "RequestEntityTooLarge");
    /* a body far past the cap is not read to its end: the connection is cut */
    request(&r, "POST", "/size", json_ct, NULL, 64 * 1024 * 1024);
    assert_int_not_equal(r.rc, CURLE_OK);
    assert_int_not_equal(r.status, 200);
    strbuf_release(&r.body);

    /* the server is still serving */
    request(&r, "GET", "/healthz", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    strbuf_release(&r.body);
}

static void test_raw_path(void **state)
{
    (void)state;
    struct resp r;
    /* an encoded slash stays inside its segment */
    request(&r, "GET", "/items/a%2Fb", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "a/b");
    json_decref(j);
    strbuf_release(&r.body);
    request(&r, "GET", "/p/a%2Fb", NULL, NULL, 0);
    assert_error_body(&r, 404, "NotFound");
    /* an encoded NUL or a broken escape is a bad request, never a truncation */
    request(&r, "GET", "/healthz%00/evil", NULL, NULL, 0);
    assert_error_body(&r, 400, "BadRequest");
    request(&r, "GET", "/items/%zz", NULL, NULL, 0);
    assert_error_body(&r, 400, "BadRequest");
    request(&r, "GET", "/items/%4", NULL, NULL, 0);
    assert_error_body(&r, 400, "BadRequest");
    request(&r, "GET", "/items/%E9%AB%98%E6%9D%BE", NULL, NULL, 0); /* 高松 */
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "高松");
    json_decref(j);
    strbuf_release(&r.body);
}

static void test_head_and_keepalive(void **state)
{
    (void)state;
    CURL *c = curl_easy_init();
    struct resp r;
    memset(&r, 0, sizeof r);
    strbuf_init(&r.body, 1 << 16);
    char url[128];
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    /* HEAD: the GET route answers, with no body */
    snprintf(url, sizeof url, "%s/items/x", base);
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
        snprintf(url, sizeof url, "%s%s", base, paths[i]);
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
    snprintf(url, sizeof url, "%s/nothing", base);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "POST");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"a\":1}");
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    assert_int_equal(r.status, 404);
    curl_easy_cleanup(c);
    strbuf_release(&r.body);
}

static void test_request_ids(void **state)
{
    (void)state;
    struct resp a, b;
    request(&a, "GET", "/healthz", NULL, NULL, 0);
    request(&b, "GET", "/healthz", NULL, NULL, 0);
    assert_int_equal(strlen(a.request_id), 32);
    assert_string_not_equal(a.request_id, b.request_id);
    strbuf_release(&a.body);
    strbuf_release(&b.body);
    const char *const mine[] = {"X-Request-Id: trace-42.a:b_c", NULL};
    request(&a, "GET", "/healthz", mine, NULL, 0);
    assert_string_equal(a.request_id, "trace-42.a:b_c");
    strbuf_release(&a.body);
    const char *const bad[] = {"X-Request-Id: has space<script>", NULL};
    request(&a, "GET", "/nothing", bad, NULL, 0);
    assert_int_equal(strlen(a.request_id), 32);
    assert_null(strchr(a.request_id, '<'));
    assert_error_body(&a, 404, "NotFound");
}

static void test_metrics_and_openapi(void **state)
{
    (void)state;
    struct resp r;
    request(&r, "GET", "/metrics", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(strstr(r.body.buf, "renkei_http_requests_total{route=\"/echo\",method=\"POST\""
                                       ",status=\"200\"}"));
    assert_non_null(strstr(r.body.buf, "route=\"unmatched\",method=\"GET\",status=\"404\"}"));
    assert_non_null(
        strstr(r.body.buf, "renkei_http_request_duration_seconds_count{route=\"/echo\"}"));
    strbuf_release(&r.body);
    core_openapi_build(router, base);
    request(&r, "GET", "/openapi.json", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "openapi")), "3.1.0");
    json_t *item = json_object_get(json_object_get(j, "paths"), "/items/{id}");
    json_t *param = json_array_get(json_object_get(json_object_get(item, "get"), "parameters"), 0);
    assert_string_equal(json_string_value(json_object_get(param, "name")), "id");
    assert_non_null(json_object_get(json_object_get(j, "paths"), "/healthz"));
    json_decref(j);
    strbuf_release(&r.body);
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
