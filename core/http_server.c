#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
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
    int listen_fd;
    bool ipv6;
};

static const struct core_router *router;
static long default_max_body;
static atomic_long in_flight;
static atomic_bool shutting_down;
/* Gates started and not yet settled (see core_req_gate_done). */
static atomic_long gates_pending;
#define GATE_STOP_WAIT_S 30

/* Replies held for their gate keep their bodies (and a connection each):
 * bounded in number and bytes, so that a stalled audit log cannot take the
 * hub's memory. One reply may always wait, whatever its size. */
#define WAITING_MAX       512
#define WAITING_BYTES_MAX (64ull << 20)
static atomic_ullong gates_bytes;
static atomic_ullong gates_refused;

bool core_http_gate_start(size_t bytes, bool refusable)
{
    long n = atomic_fetch_add(&gates_pending, 1);
    unsigned long long b = atomic_fetch_add(&gates_bytes, bytes);
    if (refusable && (n >= WAITING_MAX || (n > 0 && b + bytes > WAITING_BYTES_MAX))) {
        atomic_fetch_sub(&gates_bytes, bytes);
        atomic_fetch_sub(&gates_pending, 1);
        atomic_fetch_add(&gates_refused, 1);
        return false;
    }
    return true;
}

unsigned long long core_http_replies_refused(void)
{
    return atomic_load(&gates_refused);
}

long core_http_replies_waiting(void)
{
    return atomic_load(&gates_pending);
}

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

/* Called by libmicrohttpd with the raw request target, before it decodes it:
 * the router works on the raw path (see core_router_match). What this
 * returns is the request's context from here on, also for requests that
 * libmicrohttpd itself refuses later (their completion is still notified). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    struct core_pool *pool = core_pool_new();
    struct core_req *req = core_pcalloc(pool, sizeof *req);
    req->pool = pool;
    req->start_us = core_now_us();
    req->path = core_pstrndup(pool, uri, strcspn(uri, "?"));
    req->method = "?";
    req->in = core_pcalloc(pool, sizeof *req->in);
    req->in->conn = conn;
    req->in->route_id = -1;
    req->in->method = CORE_METHOD__COUNT;
    strbuf_init(&req->in->body, (size_t)default_max_body);
    return req;
}

/* The first call of the access handler: headers are known now. */
static void req_start(struct core_req *req, const char *method)
{
    struct MHD_Connection *conn = req->in->conn;
    req->in->started = true;
    req->method = core_pstrdup(req->pool, method);
    req->in->method = core_method_parse(method);
    const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (rid && request_id_ok(rid)) {
        memcpy(req->request_id, rid, strlen(rid) + 1);
    } else {
        unsigned char raw[16];
        core_unique_id(raw);
        core_hex(raw, sizeof raw, req->request_id);
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    req->in->has_body =
        (cl && strcmp(cl, "0") != 0) ||
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding") != NULL;
}

static void req_free(struct core_req *req)
{
    if (req->in->held)
        MHD_destroy_response(req->in->held);
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

struct header_walk {
    size_t bytes;
    int authorization;
};

static enum MHD_Result walk_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct header_walk *h = cls;
    add_size(&h->bytes, kind, key, value);
    if (strcasecmp(key, "Authorization") == 0)
        h->authorization++;
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
    struct header_walk h = {0, 0};
    MHD_get_connection_values(req->in->conn, MHD_HEADER_KIND, walk_header, &h);
    if (h.bytes > MAX_HEADER_BYTES) {
        core_reply_error(req, CORE_ERR_HEADERS_TOO_LARGE,
                         "the request headers are larger than %d bytes", MAX_HEADER_BYTES);
        return false;
    }
    /* one set of credentials: the hub reads the first, a proxy in front
     * might read the last (RFC 9110 §5.3: not a list field) */
    if (h.authorization > 1) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "header Authorization is given more than once");
        return false;
    }
    return true;
}

/* Bounds, routing and the declared length: everything decided before a
 * handler runs. May queue an error reply. */
static void precheck(struct core_req *req)
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
    if (r == CORE_MATCH_BAD_PATH) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST,
                         "the path has a malformed percent-escape or an encoded NUL");
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
    /* a head start for the declared size, but not the client's word for
     * all of it: the buffer grows as bytes actually arrive */
    if (cl && core_parse_long(cl, 0, cap, &declared))
        strbuf_reserve(&req->in->body, (size_t)(declared < 65536 ? declared : 65536));
}

/* A reply held by its gate (core_req_gate) leaves once the verdict is in;
 * until then the connection is suspended and the thread serves others. The
 * verdict resumes it, and libmicrohttpd calls on_access again. */
static void settle_held(struct core_req *req)
{
    struct core_http_internal *in = req->in;
    if (!in->held)
        return;
    if (atomic_load(&in->gate_state) == GATE_DONE) {
        core_http_release_held(req);
        return;
    }
    MHD_suspend_connection(in->conn);
    int s = GATE_WAITING;
    if (!atomic_compare_exchange_strong(&in->gate_state, &s, GATE_SUSPENDED))
        MHD_resume_connection(in->conn); /* the verdict came in meanwhile */
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)url; /* decoded by libmicrohttpd; we route on the raw path */
    (void)version;
    struct core_req *req = *con_cls;
    if (!req) { /* cannot happen with the URI callback; be safe */
        req = on_uri(NULL, url, conn);
        *con_cls = req;
    }
    if (!req->in->started) {
        req_start(req, method);
        atomic_fetch_add(&in_flight, 1);
        /* A request with a body is checked now, so an oversized or misrouted
         * body is never read (libmicrohttpd then closes the connection). One
         * without a body is checked on the next call, which keeps the
         * connection alive for the client's next request. */
        if (req->in->has_body) {
            core_log_set_request_id(req->request_id);
            precheck(req);
            core_log_set_request_id(NULL);
        }
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
    if (req->in->held) { /* resumed: the gate's verdict is in */
        core_log_set_request_id(req->request_id);
        settle_held(req);
        core_log_set_request_id(NULL);
        return MHD_YES;
    }
    if (req->replied)
        return MHD_YES;
    core_log_set_request_id(req->request_id);
    if (!req->in->has_body)
        precheck(req);
    if (!req->replied && req->in->body_too_big)
        core_reply_error(req, CORE_ERR_BODY_TOO_LARGE,
                         "the request body is larger than the %zu bytes allowed",
                         req->in->body.cap);
    if (!req->replied) {
        req->body = req->in->body.buf;
        req->body_len = req->in->body.len;
        req->route->handler(req);
        if (!req->replied) {
            core_log_bug("handler for %s %s queued no reply", req->method, req->route->pattern);
            core_reply_error(req, CORE_ERR_INTERNAL, NULL);
        }
        settle_held(req);
    }
    core_log_set_request_id(NULL);
    return MHD_YES;
}

void core_req_gate_done(struct core_req *req, bool ok)
{
    struct core_http_internal *in = req->in;
    size_t bytes = in->gate_bytes;
    in->gate_ok = ok;
    int s = GATE_WAITING;
    if (atomic_compare_exchange_strong(&in->gate_state, &s, GATE_DONE)) {
        /* the handler's thread sends it */
    } else if (s == GATE_SUSPENDED &&
               atomic_compare_exchange_strong(&in->gate_state, &s, GATE_DONE)) {
        MHD_resume_connection(in->conn);
    } else {
        /* GATE_ORPHAN: the connection closed while the gate decided */
        req_free(req);
    }
    atomic_fetch_sub(&gates_bytes, bytes);
    /* last: core_http_stop waits for this before stopping the daemon */
    atomic_fetch_sub(&gates_pending, 1);
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

static const char *termination(enum MHD_RequestTerminationCode toe)
{
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK:
        return NULL;
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
        return "timeout";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
        return "shutdown";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
        return "client closed";
    case MHD_REQUEST_TERMINATED_READ_ERROR:
        return "read error";
    default:
        return "error";
    }
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
    if (!req->in->started) {
        /* libmicrohttpd refused the request itself (a malformed request line
         * or headers past its memory limit) before our handler saw it */
        core_log_fields(
            CORE_LOG_INFO, "request refused by the HTTP layer",
            json_pack("{s:s?, s:s?}", "path", req->path, "terminated", termination(toe)));
        req_free(req);
        return;
    }
    uint64_t us = core_now_us() - req->start_us;
    core_metrics_observe(req->in->route_id, req->in->method, req->status, us);
    enum core_log_level lvl = quiet_route(req) ? CORE_LOG_DEBUG : CORE_LOG_INFO;
    if (req->status >= 500)
        lvl = CORE_LOG_WARN;
    if (core_log_enabled(lvl)) {
        /* one line per request; an error reply carries its description, so a
         * peer's bad input is logged once, at info, as what it was */
        json_t *f = json_pack(
            "{s:s, s:s, s:s, s:s?, s:i, s:f, s:s?, s:s?, s:s}", "request_id", req->request_id,
            "method", req->method, "route", req->route ? req->route->pattern : "unmatched", "path",
            req->path, "status", (int)req->status, "duration_ms", (double)(us / 10) / 100.0,
            "error", req->in->error, "terminated", termination(toe), "client", core_req_peer(req));
        if (!f) /* bytes that are not UTF-8 */
            f = json_pack("{s:s, s:i}", "request_id", req->request_id, "status", (int)req->status);
        core_log_fields(lvl, "request", f);
    }
    /* last, since the gate's verdict may free an orphan at once */
    bool orphan = false;
    int gs = atomic_load(&req->in->gate_state);
    while ((gs == GATE_WAITING || gs == GATE_SUSPENDED) && !orphan)
        orphan = atomic_compare_exchange_weak(&req->in->gate_state, &gs, GATE_ORPHAN);
    if (!orphan) /* else core_req_gate_done frees it */
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

struct core_http_server *core_http_bind(const struct core_config *cfg, int *bound_port)
{
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
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    /* SO_REUSEADDR only: SO_REUSEPORT would let a second hub share the port */
    bool ok = fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
              bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 511) == 0;
    int e = errno;
    bool v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    if (!ok) {
        core_logf(CORE_LOG_ERROR, "RENKEI_LISTEN: cannot listen on %s: %s", cfg->listen,
                  strerror(e));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound_port =
        ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    struct core_http_server *srv = xcalloc(1, sizeof *srv);
    srv->listen_fd = fd;
    srv->ipv6 = v6;
    return srv;
}

bool core_http_start(struct core_http_server *srv, const struct core_config *cfg,
                     const struct core_router *r)
{
    router = r;
    default_max_body = cfg->max_body;
    atomic_store(&shutting_down, false);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (srv->ipv6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem opts[8];
    size_t no = 0;
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, srv->listen_fd, NULL};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT, NULL};
    opts[no++] =
        (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONNECTION_MEMORY, NULL};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S, NULL};
    /* one address cannot take every connection (slow clients holding them
     * open); 0 turns it off, for a hub behind a proxy */
    if (cfg->conn_per_ip)
        opts[no++] =
            (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->conn_per_ip, NULL};
    if (cfg->threads > 1)
        opts[no++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, cfg->threads, NULL};
    opts[no++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    srv->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, NULL, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!srv->daemon) {
        core_logf(CORE_LOG_ERROR, "cannot start the HTTP server on %s", cfg->listen);
        return false;
    }
    return true;
}

void core_http_stop(struct core_http_server *srv, int grace_s, void (*before_stop)(void))
{
    if (!srv)
        return;
    if (srv->daemon) {
        atomic_store(&shutting_down, true);
        MHD_quiesce_daemon(srv->daemon);
        /* Refuse new connections at once; the descriptor itself stays open
         * until the daemon has stopped, as libmicrohttpd requires. */
        shutdown(srv->listen_fd, SHUT_RDWR);
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
        /* libmicrohttpd may not stop while a connection is suspended: a
         * reply waiting on its gate is let out (or refused) first. The
         * cancel above makes a stuck audit commit fail, and the statement
         * timeout bounds it anyway. */
        long gated = atomic_load(&gates_pending);
        uint64_t gate_deadline = core_now_us() + GATE_STOP_WAIT_S * 1000000u;
        while ((n = atomic_load(&gates_pending)) > 0 && core_now_us() < gate_deadline) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        /* the replies just let out still have to be sent */
        uint64_t send_deadline = core_now_us() + 2000000u;
        while (gated > 0 && n == 0 && core_http_in_flight() > 0 && core_now_us() < send_deadline) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (n > 0) {
            /* stopping now would abort the process: leave the daemon running */
            core_log_bug("%ld replies still wait on their gate after %d s: not stopping the "
                         "HTTP daemon",
                         n, GATE_STOP_WAIT_S);
            close(srv->listen_fd);
            free(srv);
            return;
        }
        MHD_stop_daemon(srv->daemon);
    }
    close(srv->listen_fd);
    free(srv);
}
