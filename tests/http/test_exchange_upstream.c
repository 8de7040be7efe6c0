/*
 * Forwarding to a town's own Orion (xc_upstream) against orion-standin
 * processes: what is sent (the town's Fiware-Service and credentials),
 * what comes back (status, body, Fiware-Total-Count, Location, correlator),
 * connections kept alive, the client_credentials token cached and fetched
 * again after a 401, and each failure mapped to its code (timeout, refused,
 * oversized, connection closed). Tenants are registered in a throwaway
 * PostgreSQL (RENKEI_TEST_DB, or a cluster of its own) with their upstream
 * secrets sealed, as the admin API would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/db.h"
#include "core/db_listen.h"
#include "core/http.h"
#include "core/log.h"
#include "core/router.h"
#include "core/strbuf.h"
#include "exchange/xc_upstream.h"
#include "tenants/tn.h"
#include "tests/support/tsup.h"

#define CC_SECRET "s3cr:t&x%+"

struct standin {
    pid_t pid;
    int port;
    char base[64];
};

static const char *conninfo;
static struct standin orion_a; /* bearer TOKA */
static struct standin orion_b; /* client_credentials, issues TOKB */

static bool standin_start(struct standin *s, const char *const *extra)
{
    const char *bin = getenv("ORION_STANDIN");
    if (!bin)
        return false;
    int fds[2];
    if (pipe(fds) != 0)
        return false;
    const char *argv[16] = {bin, "--port", "0"};
    size_t n = 3;
    for (size_t i = 0; extra && extra[i] && n < 15; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    s->pid = fork();
    if (s->pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    bool ok = f && fscanf(f, "port %d", &s->port) == 1 && s->port > 0;
    if (f)
        fclose(f);
    snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
    return ok;
}

static void standin_stop(struct standin *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

/* A direct request to a stand-in (seeding, control, stats). */
static json_t *direct(const struct standin *s, const char *method, const char *path,
                      const char *const *headers, const char *body, long *status)
{
    struct tsup_resp r;
    memset(&r, 0, sizeof r);
    strbuf_init(&r.body, 1 << 20);
    CURL *c = curl_easy_init();
    char url[512];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    for (size_t i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    tsup_curl_sink(c, &r);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (status)
        *status = r.status;
    json_t *j = r.body.len ? tsup_json(&r) : NULL;
    tsup_resp_release(&r);
    return j;
}

static void control(const struct standin *s, const char *body)
{
    long st;
    json_decref(direct(s, "POST", "/__control", NULL, body, &st));
    assert_int_equal(st, 204);
}

static long stat_of(const struct standin *s, const char *name)
{
    json_t *j = direct(s, "GET", "/__stats", NULL, NULL, NULL);
    long v = (long)json_integer_value(json_object_get(j, name));
    json_decref(j);
    return v;
}

/* The value of a header the stand-in last received ("" when absent). */
static const char *last_header(const struct standin *s, const char *name)
{
    static char out[512];
    json_t *j = direct(s, "GET", "/__stats", NULL, NULL, NULL);
    const char *v = json_string_value(json_object_get(json_object_get(j, "last_headers"), name));
    snprintf(out, sizeof out, "%s", v ? v : "");
    json_decref(j);
    return out;
}

static void register_town(const char *id, bool hosted, const struct tn_upstream *up)
{
    struct tn_tenant t;
    memset(&t, 0, sizeof t);
    snprintf(t.id, sizeof t.id, "%s", id);
    t.name = (char *)id;
    t.hosted = hosted;
    if (up) {
        assert_null(tn_check_upstream(up));
        t.up = *up;
    }
    struct tn_result res;
    if (tn_create(&t, "test", &res) != TN_OK)
        fail_msg("tenant %s: %s", id, res.message);
}

static int setup(void **state)
{
    (void)state;
    core_log_set_level(CORE_LOG_ERROR);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    const char *a[] = {"--token", "TOKA", NULL};
    const char *b[] = {"--token",         "TOKB",    "--token-endpoint", "--client-id", "town-b",
                       "--client-secret", CC_SECRET, "--expires-in",     "3600",        NULL};
    if (!standin_start(&orion_a, a) || !standin_start(&orion_b, b))
        return -1;
    if (!tsup_secret_create())
        return -1;
    conninfo = tsup_db_create("t_upstream");
    if (!conninfo)
        return -1;
    core_db_init(conninfo, 4);
    /* tests/CMakeLists.txt sets RENKEI_UPSTREAM_TIMEOUT_MS=4000: the slow
     * stand-in waits 8 s, and 4 s read past the 16 MiB cap of a huge answer
     * even under ASan on a busy machine (setenv is banned here) */
    const char *tmo = getenv("RENKEI_UPSTREAM_TIMEOUT_MS");
    if (!tmo || strcmp(tmo, "4000") != 0) {
        fprintf(stderr, "set RENKEI_UPSTREAM_TIMEOUT_MS=4000 (ctest does)\n");
        return -1;
    }
    xc_upstream_init();
    core_db_listen_start(conninfo);

    char url_a[96], url_b[96], token_b[96], url_down[96];
    snprintf(url_a, sizeof url_a, "%s/", orion_a.base);
    snprintf(url_b, sizeof url_b, "%s", orion_b.base);
    snprintf(token_b, sizeof token_b, "%s/token", orion_b.base);
    /* port 1: nothing listens there (connection refused) */
    snprintf(url_down, sizeof url_down, "http://127.0.0.1:1");
    struct tn_upstream ua = {.url = url_a,
                             .fiware_service = "kita_os",
                             .auth = TN_AUTH_BEARER,
                             .secret = "TOKA",
                             .secret_len = 4};
    struct tn_upstream ub = {.url = url_b,
                             .fiware_service = "minami",
                             .auth = TN_AUTH_CLIENT_CREDENTIALS,
                             .token_url = token_b,
                             .client_id = "town-b",
                             .scope = "ngsi.read ngsi.write",
                             .secret = CC_SECRET,
                             .secret_len = strlen(CC_SECRET)};
    struct tn_upstream ud = {.url = url_down, .auth = TN_AUTH_NONE};
    struct tn_upstream uw = ub; /* the token endpoint refuses this secret */
    uw.secret = "wrong-secret";
    uw.secret_len = strlen(uw.secret);
    register_town("kita", false, &ua);
    register_town("minami", false, &ub);
    register_town("yama", true, NULL);
    register_town("down", false, &ud);
    register_town("nishi", false, &uw);

    const char *ha[] = {"Authorization: Bearer TOKA", "Fiware-Service: kita_os", NULL};
    long st;
    direct(&orion_a, "POST", "/v2/op/update", ha,
           "{\"actionType\":\"append\",\"entities\":["
           "{\"id\":\"R1\",\"type\":\"Room\",\"temp\":{\"value\":21,\"type\":\"Number\"}},"
           "{\"id\":\"R2\",\"type\":\"Room\",\"temp\":{\"value\":22,\"type\":\"Number\"}},"
           "{\"id\":\"C1\",\"type\":\"Car\",\"speed\":{\"value\":5,\"type\":\"Number\"}}]}",
           &st);
    return st == 204 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    standin_stop(&orion_a);
    standin_stop(&orion_b);
    core_db_listen_stop();
    xc_upstream_release();
    core_db_shutdown();
    tsup_db_drop();
    curl_global_cleanup();
    return tsup_secret_remove() ? 0 : -1;
}

/* One call for tenant; fails the test when it does not return expect. */
static struct xc_up_resp call(struct core_pool *pool, const char *tenant, const char *method,
                              const char *path, const char *body, enum xc_up_rc expect)
{
    struct xc_up_req r = {.tenant = tenant,
                          .method = method,
                          .path_query = path,
                          .correlator = "corr-42",
                          .content_type = body ? "application/json" : NULL,
                          .body = body,
                          .body_len = body ? strlen(body) : 0};
    struct xc_up_resp out;
    char err[300];
    enum xc_up_rc rc = xc_upstream_call(pool, &r, &out, err, sizeof err);
    if (rc != expect)
        fail_msg("%s %s for %s: expected %d, got %d (%s)", method, path, tenant, expect, rc, err);
    if (rc != XC_UP_OK) {
        assert_true(err[0] != '\0');
        assert_null(strstr(err, "TOK"));
        assert_null(strstr(err, CC_SECRET));
    }
    return out;
}

static void test_get_with_count(void **state)
{
    (void)state;
    struct core_pool *pool = core_pool_new();
    struct xc_up_resp o =
        call(pool, "kita", "GET", "/v2/entities?type=Room&options=count,keyValues", NULL, XC_UP_OK);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.content_type, "application/json");
    assert_string_equal(o.total_count, "2");
    assert_string_equal(o.correlator, "corr-42");
    json_t *j = json_loadb(o.body, o.len, 0, NULL);
    assert_int_equal(json_array_size(j), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 0), "temp")), 21);
    json_decref(j);
    /* the town's own service and token went to its Orion */
    assert_string_equal(last_header(&orion_a, "Fiware-Service"), "kita_os");
    assert_string_equal(last_header(&orion_a, "Authorization"), "Bearer TOKA");
    assert_string_equal(last_header(&orion_a, "Fiware-Correlator"), "corr-42");
    assert_string_equal(last_header(&orion_a, "Fiware-ServicePath"), "");

    o = call(pool, "kita", "GET", "/v2/entities/R9", NULL, XC_UP_OK);
    assert_int_equal(o.status, 404);
    assert_non_null(strstr(o.body, "\"NotFound\""));
    core_pool_free(pool);
}

static void test_write_and_service_path(void **state)
{
    (void)state;
    struct core_pool *pool = core_pool_new();
    struct xc_up_req r = {.tenant = "kita",
                          .method = "POST",
                          .path_query = "/v2/entities",
                          .service_path = "/north",
                          .content_type = "application/json",
                          .body = "{\"id\":\"N1\",\"type\":\"Room\",\"temp\":{\"value\":3}}"};
    r.body_len = strlen(r.body);
    struct xc_up_resp o;
    char err[300];
    assert_int_equal(xc_upstream_call(pool, &r, &o, err, sizeof err), XC_UP_OK);
    assert_int_equal(o.status, 201);
    assert_string_equal(o.location, "/v2/entities/N1?type=Room");
    assert_string_equal(last_header(&orion_a, "Fiware-ServicePath"), "/north");
    /* the entity lives under /north only */
    r = (struct xc_up_req){.tenant = "kita", .method = "GET", .path_query = "/v2/entities/N1"};
    assert_int_equal(xc_upstream_call(pool, &r, &o, err, sizeof err), XC_UP_OK);
    assert_int_equal(o.status, 404);
    r.service_path = "/north";
    assert_int_equal(xc_upstream_call(pool, &r, &o, err, sizeof err), XC_UP_OK);
    assert_int_equal(o.status, 200);
    r = (struct xc_up_req){.tenant = "kita",
                           .method = "DELETE",
                           .path_query = "/v2/entities/N1",
                           .service_path = "/north"};
    assert_int_equal(xc_upstream_call(pool, &r, &o, err, sizeof err), XC_UP_OK);
    assert_int_equal(o.status, 204);
    assert_int_equal(o.len, 0);
    core_pool_free(pool);
}

static void test_connections_reused(void **state)
{
    (void)state;
    long before = stat_of(&orion_a, "connections");
    for (int i = 0; i < 20; i++) {
        struct core_pool *pool = core_pool_new();
        struct xc_up_resp o = call(pool, "kita", "GET", "/v2/entities/R1", NULL, XC_UP_OK);
        assert_int_equal(o.status, 200);
        core_pool_free(pool);
    }
    /* the stats requests themselves open one connection each */
    long opened = stat_of(&orion_a, "connections") - before - 1;
    if (opened > 1)
        fail_msg("20 calls opened %ld connections", opened);
}

static void test_client_credentials_cached(void **state)
{
    (void)state;
    long before = stat_of(&orion_b, "token_requests");
    for (int i = 0; i < 5; i++) {
        struct core_pool *pool = core_pool_new();
        struct xc_up_resp o = call(pool, "minami", "GET", "/v2/entities", NULL, XC_UP_OK);
        assert_int_equal(o.status, 200);
        assert_string_equal(o.body, "[]");
        core_pool_free(pool);
    }
    assert_int_equal(stat_of(&orion_b, "token_requests") - before, 1);
    assert_string_equal(last_header(&orion_b, "Authorization"), "Bearer TOKB");
    assert_string_equal(last_header(&orion_b, "Fiware-Service"), "minami");
}

static void test_401_refetches_once(void **state)
{
    (void)state;
    struct core_pool *pool = core_pool_new();
    call(pool, "minami", "GET", "/version", NULL, XC_UP_OK); /* a token is cached */
    long before = stat_of(&orion_b, "token_requests");
    control(&orion_b, "{\"mode\":\"status401once\"}");
    struct xc_up_resp o = call(pool, "minami", "GET", "/version", NULL, XC_UP_OK);
    assert_int_equal(o.status, 200);
    assert_int_equal(stat_of(&orion_b, "token_requests") - before, 1);
    core_pool_free(pool);
}

static void test_faults(void **state)
{
    (void)state;
    struct core_pool *pool = core_pool_new();
    control(&orion_a, "{\"mode\":\"slow\",\"delay_ms\":8000}");
    call(pool, "kita", "GET", "/v2/entities", NULL, XC_UP_TIMEOUT);
    control(&orion_a, "{\"mode\":\"huge\"}");
    call(pool, "kita", "GET", "/v2/entities", NULL, XC_UP_TOO_LARGE);
    control(&orion_a, "{\"mode\":\"close\"}");
    call(pool, "kita", "GET", "/v2/entities", NULL, XC_UP_DOWN);
    control(&orion_a, "{\"mode\":\"garbage\"}");
    struct xc_up_resp o = call(pool, "kita", "GET", "/v2/entities", NULL, XC_UP_OK);
    assert_int_equal(o.status, 200);
    assert_non_null(strstr(o.body, "not JSON"));
    control(&orion_a, "{\"mode\":\"status500\"}");
    o = call(pool, "kita", "GET", "/v2/entities", NULL, XC_UP_OK);
    assert_int_equal(o.status, 500);
    control(&orion_a, "{\"mode\":\"normal\"}");
    o = call(pool, "kita", "GET", "/v2/entities/R1", NULL, XC_UP_OK);
    assert_int_equal(o.status, 200);

    call(pool, "down", "GET", "/v2/entities", NULL, XC_UP_DOWN);
    call(pool, "nishi", "GET", "/v2/entities", NULL, XC_UP_AUTH);
    call(pool, "yama", "GET", "/v2/entities", NULL, XC_UP_NOT_REMOTE);
    call(pool, "nosuch", "GET", "/v2/entities", NULL, XC_UP_NOT_REMOTE);
    core_pool_free(pool);
}

/* A changed registration reaches the next call (NOTIFY renkei_tenants). */
static void test_registration_change(void **state)
{
    (void)state;
    for (int i = 0; i < 50 && !core_db_listen_connected(); i++)
        usleep(100000);
    assert_true(core_db_listen_connected());
    struct core_pool *pool = core_pool_new();
    call(pool, "kita", "GET", "/version", NULL, XC_UP_OK);
    char url_a[96];
    snprintf(url_a, sizeof url_a, "%s", orion_a.base);
    struct tn_upstream ua = {.url = url_a,
                             .fiware_service = "kita_new",
                             .auth = TN_AUTH_BEARER,
                             .secret = "TOKA",
                             .secret_len = 4};
    struct tn_patch p = {.state = -1, .set_city_os = true, .up = &ua};
    struct tn_tenant t;
    struct tn_result res;
    assert_int_equal(tn_update(CORE_DB_PLATFORM, "kita", &p, "test", &t, &res), TN_OK);
    tn_tenant_release(&t);
    bool seen = false;
    for (int i = 0; i < 40 && !seen; i++) {
        call(pool, "kita", "GET", "/version", NULL, XC_UP_OK);
        seen = strcmp(last_header(&orion_a, "Fiware-Service"), "kita_new") == 0;
        if (!seen)
            usleep(50000);
    }
    assert_true(seen);
    core_pool_free(pool);
}

/* The reply a handler queues for a failed call: the registry's status and
 * an NGSI error body that names the town, never its address. */
static void h_forward(struct core_req *req)
{
    const char *town = core_req_param(req, "town");
    struct xc_up_req r = {.tenant = town, .method = "GET", .path_query = "/v2/entities"};
    struct xc_up_resp out;
    char err[300];
    enum xc_up_rc rc = xc_upstream_call(req->pool, &r, &out, err, sizeof err);
    if (rc != XC_UP_OK)
        xc_upstream_reply_error(req, town, rc, err);
    else
        core_reply_bytes(req, (unsigned)out.status, out.content_type, out.body, out.len);
}

static const struct core_route forward_route = {CORE_GET,  "/fwd/{town}", h_forward,
                                                "forward", "test",        0};

static void test_reply_error(void **state)
{
    (void)state;
    struct core_router *router = core_router_new();
    core_router_add(router, &forward_route);
    tsup_http_start(router);
    struct tsup_resp r;
    tsup_request(&r, "GET", "/fwd/down", NULL, NULL, 0);
    assert_null(strstr(r.body.buf ? r.body.buf : "", "127.0.0.1"));
    tsup_assert_error(&r, 502, "BadGateway");
    control(&orion_a, "{\"mode\":\"slow\",\"delay_ms\":8000}");
    tsup_request(&r, "GET", "/fwd/kita", NULL, NULL, 0);
    tsup_assert_error(&r, 504, "GatewayTimeout");
    control(&orion_a, "{\"mode\":\"normal\"}");
    tsup_request(&r, "GET", "/fwd/kita", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    tsup_resp_release(&r);
    tsup_http_stop();
    core_router_free(router);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_with_count),
        cmocka_unit_test(test_write_and_service_path),
        cmocka_unit_test(test_connections_reused),
        cmocka_unit_test(test_client_credentials_cached),
        cmocka_unit_test(test_401_refetches_once),
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_registration_change),
        cmocka_unit_test(test_reply_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
