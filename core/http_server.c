#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/crypto.h"
#include "core/http_internal.h"
#include "core/log.h"
#include "core/metrics.h"

/* Bounds on what one client may hold of the server. The connection memory
 * is a ceiling for libmicrohttpd (past it, it answers 414/431 itself with an
 * HTML body); our own, lower bounds below answer with JSON first. */
#define CONNECTION_LIMIT  1024
#define CONNECTION_MEMORY (128 * 1024)
#define MAX_URI_BYTES     8192
#define MAX_HEADER_BYTES  (32 * 1024)
/* libmicrohttpd can only answer once a body has been read to its end. A body
 * that outgrows its cap is therefore read on and dropped, to answer 413, for
 * up to this many more bytes; past that the connection is closed. */
#define MAX_DISCARD_BYTES (8u * 1024 * 1024)
#define IDLE_TIMEOUT_S    30

struct core_http_server {
    struct MHD_Daemon *daemon;
};

static const struct core_router *router;
static long default_max_body;
static atomic_long in_flight;
static atomic_bool shutting_down;

long core_http_in_flight(void)
{
    return atomic_load(&in_flight);
}

bool core_http_shutting_down(void)
{
    return atomic_load(&shutting_down);
}

static bool request_id_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok || n >= 128)
            return false;
    }
    return n > 0;
}

static struct core_req *req_new(struct MHD_Connection *conn, const char *url, const char *method)
{
    struct core_pool *pool = core_pool_new();
    struct core_req *req = core_pcalloc(pool, sizeof *req);
    req->pool = pool;
    req->start_us = core_now_us();
    req->method = core_pstrdup(pool, method);
    req->path = core_pstrdup(pool, url);
    req->in = core_pcalloc(pool, sizeof *req->in);
    req->in->conn = conn;
    req->in->route_id = -1;
    req->in->method = core_method_parse(method);
    const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (rid && request_id_ok(rid)) {
        memcpy(req->request_id, rid, strlen(rid) + 1);
    } else {
        unsigned char raw[16];
        core_random(raw, sizeof raw);
        core_hex(raw, sizeof raw, req->request_id);
    }
    return req;
}

static void req_free(struct core_req *req)
{
    strbuf_release(&req->in->body);
    core_pool_free(req->pool);
}

/* Checks the declared length before a byte of body is read. */
static bool declared_length_ok(struct MHD_Connection *conn, long cap)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (!cl)
        return true;
    long v;
    /* MHD already refused a malformed Content-Length; anything huge is over. */
    return core_parse_long(cl, 0, cap, &v);
}

static enum MHD_Result add_size(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    (void)kind;
    size_t *total = cls;
    *total += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF, or "=" and "&" */
    return MHD_YES;
}

/* Bounds on the request line and headers, checked before routing. */
static bool request_size_ok(struct core_req *req)
{
    size_t uri = strlen(req->path);
    MHD_get_connection_values(req->in->conn, MHD_GET_ARGUMENT_KIND, add_size, &uri);
    if (uri > MAX_URI_BYTES) {
        core_reply_error(req, CORE_ERR_URI_TOO_LONG, "the request URI is longer than %d bytes",
                         MAX_URI_BYTES);
        return false;
    }
    size_t headers = 0;
    MHD_get_connection_values(req->in->conn, MHD_HEADER_KIND, add_size, &headers);
    if (headers > MAX_HEADER_BYTES) {
        core_reply_error(req, CORE_ERR_HEADERS_TOO_LARGE,
                         "the request headers are larger than %d bytes", MAX_HEADER_BYTES);
        return false;
    }
    return true;
}

static void route_first_call(struct core_req *req)
{
    if (!request_size_ok(req))
        return;
    enum core_match_result r =
        core_router_match(router, req->method, req->path, req->pool, &req->match);
    long cap = default_max_body;
    if (r == CORE_MATCH_OK) {
        req->route = req->match.route;
        req->in->route_id = (long)req->match.route_id;
        if (req->route->max_body > 0)
            cap = req->route->max_body;
    }
    strbuf_init(&req->in->body, (size_t)cap);
    if (!declared_length_ok(req->in->conn, cap)) {
        core_reply_error(req, CORE_ERR_BODY_TOO_LARGE,
                         "the request body is larger than the %ld bytes allowed", cap);
        return;
    }
    if (r == CORE_MATCH_NOT_FOUND) {
        core_reply_error(req, CORE_ERR_NOT_FOUND, "no resource at %s", req->path);
        return;
    }
    if (r == CORE_MATCH_BAD_METHOD) {
        core_reply_header(req, "Allow", req->match.allow);
        core_reply_error(req, CORE_ERR_METHOD_NOT_ALLOWED, "%s is not allowed on %s (allowed: %s)",
                         req->method, req->path, req->match.allow);
        return;
    }
    const char *cl = MHD_lookup_connection_value(req->in->conn, MHD_HEADER_KIND, "Content-Length");
    long declared;
    if (cl && core_parse_long(cl, 0, cap, &declared))
        strbuf_reserve(&req->in->body, (size_t)declared);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct core_req *req = *con_cls;
    if (!req) {
        req = req_new(conn, url, method);
        *con_cls = req;
        atomic_fetch_add(&in_flight, 1);
        core_log_set_request_id(req->request_id);
        route_first_call(req);
        core_log_set_request_id(NULL);
        return MHD_YES;
    }
    if (*upload_data_size) {
        struct core_http_internal *in = req->in;
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (req->replied)
            return MHD_YES;
        if (!in->body_too_big && strbuf_add(&in->body, upload_data, n))
            return MHD_YES;
        in->body_too_big = true;
        in->discarded += n;
        if (in->discarded > MAX_DISCARD_BYTES) {
            core_log_fields(CORE_LOG_INFO, "request body far over its cap: connection closed",
                            json_pack("{s:s, s:s, s:s, s:I}", "request_id", req->request_id,
                                      "method", req->method, "path", req->path, "cap",
                                      (json_int_t)in->body.cap));
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (req->in->body_too_big && !req->replied) {
        core_log_set_request_id(req->request_id);
        core_reply_error(req, CORE_ERR_BODY_TOO_LARGE,
                         "the request body is larger than the %zu bytes allowed",
                         req->in->body.cap);
        core_log_set_request_id(NULL);
        return MHD_YES;
    }
    if (req->replied)
        return MHD_YES;
    req->body = req->in->body.buf;
    req->body_len = req->in->body.len;
    core_log_set_request_id(req->request_id);
    req->route->handler(req);
    if (!req->replied) {
        core_log_bug("handler for %s %s queued no reply", req->method, req->route->pattern);
        core_reply_error(req, CORE_ERR_INTERNAL, NULL);
    }
    core_log_set_request_id(NULL);
    return MHD_YES;
}

static bool quiet_route(const struct core_req *req)
{
    /* Probes hit these every few seconds; their lines would drown the rest. */
    return req->route &&
           (strcmp(req->route->pattern, "/healthz") == 0 ||
            strcmp(req->route->pattern, "/readyz") == 0 ||
            strcmp(req->route->pattern, "/metrics") == 0) &&
           req->status < 500;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    struct core_req *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;
    uint64_t us = core_now_us() - req->start_us;
    core_metrics_observe(req->in->route_id, req->in->method, req->status, us);
    enum core_log_level lvl = quiet_route(req) ? CORE_LOG_DEBUG : CORE_LOG_INFO;
    if (req->status >= 500)
        lvl = CORE_LOG_WARN;
    if (core_log_enabled(lvl)) {
        json_t *f =
            json_pack("{s:s, s:s, s:s, s:s, s:i, s:f}", "request_id", req->request_id, "method",
                      req->method, "route", req->route ? req->route->pattern : "unmatched", "path",
                      req->path, "status", (int)req->status, "duration_ms", (double)us / 1000.0);
        if (f && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
            json_object_set_new(
                f, "terminated",
                json_string(toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED   ? "timeout"
                            : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
                            : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT    ? "client closed"
                                                                            : "error"));
        if (!f) /* a path that is not UTF-8 */
            f = json_pack("{s:s, s:s, s:i}", "request_id", req->request_id, "method", "?", "status",
                          (int)req->status);
        core_log_fields(lvl, "request", f);
    }
    req_free(req);
    atomic_fetch_sub(&in_flight, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char *msg = xvasprintf(fmt, ap);
    size_t len = strlen(msg);
    while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        msg[--len] = '\0';
    core_log_fields(CORE_LOG_WARN, msg, json_pack("{s:s}", "source", "libmicrohttpd"));
    free(msg);
}

struct core_http_server *core_http_start(const struct core_config *cfg, const struct core_router *r,
                                         int *bound_port)
{
    router = r;
    default_max_body = cfg->max_body;
    atomic_store(&shutting_down, false);

    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char port[8];
    snprintf(port, sizeof port, "%d", cfg->listen_port);
    int gai = getaddrinfo(cfg->listen_host, port, &hints, &ai);
    if (gai != 0) {
        core_logf(CORE_LOG_ERROR, "RENKEI_LISTEN: cannot resolve \"%s\": %s", cfg->listen_host,
                  gai_strerror(gai));
        return NULL;
    }
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr},
        {MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONNECTION_MEMORY, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S, NULL},
        {MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 511, NULL},
        {cfg->threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
         cfg->threads > 1 ? cfg->threads : 0, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, NULL, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d) {
        core_logf(CORE_LOG_ERROR,
                  "RENKEI_LISTEN: cannot listen on %s (address in use, or not "
                  "ours?)",
                  cfg->listen);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *bound_port = info ? (int)info->port : cfg->listen_port;
    struct core_http_server *srv = xcalloc(1, sizeof *srv);
    srv->daemon = d;
    return srv;
}

void core_http_stop(struct core_http_server *srv, int grace_s, void (*before_stop)(void))
{
    if (!srv)
        return;
    atomic_store(&shutting_down, true);
    MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    uint64_t deadline = core_now_us() + (uint64_t)grace_s * 1000000u;
    long n;
    while ((n = core_http_in_flight()) > 0 && core_now_us() < deadline) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (n > 0) {
        core_logf(CORE_LOG_WARN, "stopping with %ld requests still in flight after %d s", n,
                  grace_s);
        if (before_stop)
            before_stop();
    }
    MHD_stop_daemon(srv->daemon);
    free(srv);
}
