#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>

#include "core/cidr.h"
#include "core/config.h"
#include "core/http_internal.h"
#include "core/log.h"

const char *core_req_param(const struct core_req *req, const char *name)
{
    for (size_t i = 0; i < req->match.nparams; i++) {
        if (strcmp(req->match.names[i], name) == 0)
            return req->match.values[i];
    }
    return NULL;
}

const char *core_req_query(const struct core_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->in->conn, MHD_GET_ARGUMENT_KIND, name);
}

struct query_walk {
    const char *dup;
    const char *seen[64];
    size_t n;
    bool too_many;
};

static enum MHD_Result query_walk_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    (void)value;
    struct query_walk *w = cls;
    for (size_t i = 0; i < w->n; i++) {
        if (strcmp(w->seen[i], key) == 0) {
            w->dup = key;
            return MHD_NO;
        }
    }
    if (w->n == ARRAY_SIZE(w->seen)) {
        w->too_many = true;
        return MHD_NO;
    }
    w->seen[w->n++] = key;
    return MHD_YES;
}

const char *core_req_query_repeated(const struct core_req *req)
{
    struct query_walk w = {0};
    MHD_get_connection_values(req->in->conn, MHD_GET_ARGUMENT_KIND, query_walk_one, &w);
    return w.dup ? w.dup : w.too_many ? "(more than 64 parameters)" : NULL;
}

struct header_count {
    const char *name;
    int n;
};

static enum MHD_Result header_count_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    (void)kind;
    (void)value;
    struct header_count *h = cls;
    if (strcasecmp(key, h->name) == 0)
        h->n++;
    return MHD_YES;
}

int core_req_header_count(const struct core_req *req, const char *name)
{
    struct header_count h = {name, 0};
    MHD_get_connection_values(req->in->conn, MHD_HEADER_KIND, header_count_one, &h);
    return h.n;
}

struct query_each {
    core_query_fn fn;
    void *arg;
};

static enum MHD_Result query_each_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    struct query_each *q = cls;
    q->fn(q->arg, key, value);
    return MHD_YES;
}

void core_req_query_each(const struct core_req *req, core_query_fn fn, void *arg)
{
    struct query_each q = {fn, arg};
    MHD_get_connection_values(req->in->conn, MHD_GET_ARGUMENT_KIND, query_each_one, &q);
}

bool core_req_limit(struct core_req *req, long def, long max, long *out)
{
    *out = def;
    const char *s = core_req_query(req, "limit");
    if (s && !core_parse_long(s, 1, max, out)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "limit must be a whole number from 1 to %ld",
                         max);
        return false;
    }
    return true;
}

bool core_req_if_match(struct core_req *req, int *version)
{
    *version = 0;
    const char *h = core_req_header(req, "If-Match");
    if (!h)
        return true;
    if (strncmp(h, "W/", 2) == 0)
        h += 2;
    size_t len = strlen(h);
    long v;
    char digits[12];
    if (len >= 3 && len <= 12 && h[0] == '"' && h[len - 1] == '"') {
        memcpy(digits, h + 1, len - 2);
        digits[len - 2] = '\0';
        if (core_parse_long(digits, 1, 1L << 30, &v)) {
            *version = (int)v;
            return true;
        }
    }
    core_reply_error(req, CORE_ERR_BAD_REQUEST, "If-Match must be an ETag this API gave out");
    return false;
}

void core_reply_etag(struct core_req *req, int version)
{
    char etag[32];
    xsnprintf(etag, sizeof etag, "W/\"%d\"", version);
    core_reply_header(req, "ETag", etag);
}

const char *core_req_cookie(const struct core_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->in->conn, MHD_COOKIE_KIND, name);
}

void core_reply_cookie(struct core_req *req, const char *name, const char *value, long max_age,
                       bool secure)
{
    /* HttpOnly, SameSite=Lax, Path=/ always: the hub's cookies are for the
     * hub's own pages and never for scripts */
    core_reply_header(
        req, "Set-Cookie",
        core_psprintf(req->pool, "%s=%s; Path=/; HttpOnly; SameSite=Lax%s%s", name, value,
                      max_age < 0    ? "; Max-Age=0"
                      : max_age == 0 ? ""
                                     : core_psprintf(req->pool, "; Max-Age=%ld", max_age),
                      secure ? "; Secure" : ""));
}

const char *core_req_header(const struct core_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->in->conn, MHD_HEADER_KIND, name);
}

#define XFF_MAX 8 /* X-Forwarded-For headers looked at */

/* The last XFF_MAX X-Forwarded-For headers (a ring): a proxy appends its
 * line after the client's, so the first ones are the client's to forge. */
struct xff_walk {
    const char *vals[XFF_MAX];
    size_t n; /* headers seen; the newest is vals[(n - 1) % XFF_MAX] */
};

static enum MHD_Result xff_one(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    struct xff_walk *w = cls;
    if (strcasecmp(key, "X-Forwarded-For") == 0 && value)
        w->vals[w->n++ % XFF_MAX] = value;
    return MHD_YES;
}

/* One X-Forwarded-For element (spaces around it allowed) as an address;
 * false when it is not a bare IPv4 or IPv6 address. */
/* 1 to 5 digits, nothing else */
static bool port_ok(const char *p)
{
    size_t n = strspn(p, "0123456789");
    return n >= 1 && n <= 5 && p[n] == '\0';
}

static bool xff_addr(const char *s, size_t len, struct sockaddr_storage *ss, char *text,
                     size_t text_len)
{
    while (len && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (!len || len >= text_len)
        return false;
    memcpy(text, s, len);
    text[len] = '\0';
    /* some proxies (Azure's, IIS's ARR) write the port too: "192.0.2.1:443",
     * "[2001:db8::1]:443"; a bracketed address may also come alone */
    if (text[0] == '[') {
        char *close = strchr(text, ']');
        if (!close || (close[1] && (close[1] != ':' || !port_ok(close + 2))))
            return false;
        *close = '\0';
        memmove(text, text + 1, strlen(text + 1) + 1);
    } else {
        char *colon = strchr(text, ':');
        if (colon && !strchr(colon + 1, ':')) {
            if (!port_ok(colon + 1))
                return false;
            *colon = '\0';
        }
    }
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    /* written back in its canonical form: one client, one throttle key */
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        return inet_ntop(AF_INET, &v4->sin_addr, text, (socklen_t)text_len) != NULL;
    }
    if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        return inet_ntop(AF_INET6, &v6->sin6_addr, text, (socklen_t)text_len) != NULL;
    }
    return false;
}

/* The client behind trusted proxies: X-Forwarded-For read from the right
 * (the nearest hop first), past every trusted proxy, to the first address
 * that is not one; what lies left of it was written by the client and is not
 * believed. An element that is not an address stops the walk at the last
 * trusted hop. Writes into out; false when there is no header. */
static bool forwarded_client(struct core_req *req, char *out, size_t out_len)
{
    struct xff_walk w = {.n = 0};
    MHD_get_connection_values(req->in->conn, MHD_HEADER_KIND, xff_one, &w);
    if (!w.n)
        return false;
    bool any = false;
    size_t kept = w.n < XFF_MAX ? w.n : XFF_MAX;
    for (size_t k = 0; k < kept; k++) {
        const char *v = w.vals[(w.n - 1 - k) % XFF_MAX];
        size_t end = strlen(v);
        for (;;) {
            size_t start = end;
            while (start > 0 && v[start - 1] != ',')
                start--;
            struct sockaddr_storage ss;
            char text[48];
            if (!xff_addr(v + start, end - start, &ss, text, sizeof text))
                return any;
            xsnprintf(out, out_len, "%s", text);
            any = true;
            if (!core_cidr_match_any(core_cfg.trusted_proxies, core_cfg.ntrusted_proxies,
                                     (const struct sockaddr *)&ss))
                return true;
            if (start == 0)
                break;
            end = start - 1;
        }
    }
    return any;
}

const char *core_req_peer(struct core_req *req)
{
    if (req->in->peer[0])
        return req->in->peer;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->in->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    const char *out = NULL;
    if (sa && core_cfg.ntrusted_proxies &&
        core_cidr_match_any(core_cfg.trusted_proxies, core_cfg.ntrusted_proxies, sa) &&
        forwarded_client(req, req->in->peer, sizeof req->in->peer))
        return req->in->peer;
    if (sa && sa->sa_family == AF_INET)
        out = inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, req->in->peer,
                        sizeof req->in->peer);
    else if (sa && sa->sa_family == AF_INET6)
        out = inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, req->in->peer,
                        sizeof req->in->peer);
    if (!out)
        xsnprintf(req->in->peer, sizeof req->in->peer, "?");
    return req->in->peer;
}

void core_reply_oauth_error(struct core_req *req, unsigned status, const char *error,
                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *desc = xvasprintf(fmt, ap);
    va_end(ap);
    json_t *d = json_string(desc);
    free(desc);
    if (!d)
        d = json_string("the request was refused");
    req->in->error = core_psprintf(req->pool, "%s: %s", error, json_string_value(d));
    core_reply_header(req, "Pragma", "no-cache");
    core_reply_json(req, status, json_pack("{s:s, s:o}", "error", error, "error_description", d));
}

void core_reply_header(struct core_req *req, const char *name, const char *value)
{
    struct core_http_internal *in = req->in;
    if (in->nhdr == in->hdr_alloc) {
        size_t alloc = in->hdr_alloc ? in->hdr_alloc * 2 : 8;
        const char **names = core_palloc(req->pool, alloc * sizeof *names);
        const char **values = core_palloc(req->pool, alloc * sizeof *values);
        if (in->nhdr) {
            memcpy(names, in->hdr_names, in->nhdr * sizeof *names);
            memcpy(values, in->hdr_values, in->nhdr * sizeof *values);
        }
        in->hdr_names = names;
        in->hdr_values = values;
        in->hdr_alloc = alloc;
    }
    in->hdr_names[in->nhdr] = core_pstrdup(req->pool, name);
    in->hdr_values[in->nhdr] = core_pstrdup(req->pool, value);
    in->nhdr++;
}

static bool has_header(const struct core_req *req, const char *name)
{
    for (size_t i = 0; i < req->in->nhdr; i++) {
        if (strcasecmp(req->in->hdr_names[i], name) == 0)
            return true;
    }
    return false;
}

/* Queues resp with the common headers; takes the response. */
static void queue(struct core_req *req, unsigned status, struct MHD_Response *resp,
                  const char *content_type)
{
    if (!resp) {
        /* out of memory inside libmicrohttpd: we cannot answer at all */
        core_log_bug("cannot create a response (%u) for %s %s", status, req->method, req->path);
        abort();
    }
    if (req->replied) {
        core_log_bug("second reply (%u) to %s %s dropped", status, req->method, req->path);
        MHD_destroy_response(resp);
        return;
    }
    req->replied = true;
    req->status = status;
    for (size_t i = 0; i < req->in->nhdr; i++)
        MHD_add_response_header(resp, req->in->hdr_names[i], req->in->hdr_values[i]);
    if (content_type && !has_header(req, "Content-Type"))
        MHD_add_response_header(resp, "Content-Type", content_type);
    if (!has_header(req, "Cache-Control"))
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Request-Id", req->request_id);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (core_http_shutting_down())
        MHD_add_response_header(resp, "Connection", "close");
    int gs = atomic_load(&req->in->gate_state);
    if (gs == GATE_WAITING || gs == GATE_DONE) {
        /* the gate's verdict decides whether this leaves (see core_req_gate) */
        req->in->held = resp;
        req->in->held_status = status;
        return;
    }
    if (MHD_queue_response(req->in->conn, status, resp) != MHD_YES)
        core_log_bug("MHD_queue_response(%u) refused for %s %s", status, req->method, req->path);
    MHD_destroy_response(resp);
}

void core_req_gate(struct core_req *req, core_reply_gate gate, void *arg)
{
    req->in->gate = gate;
    req->in->gate_arg = arg;
}

/* Runs the request's gate (once) on the reply about to be queued. */
static void pass_gate(struct core_req *req, unsigned status, const void *data, size_t len)
{
    core_reply_gate g = req->in->gate;
    if (!g || req->replied)
        return;
    req->in->gate = NULL;
    /* Only an answered read may be refused for want of room: nothing has
     * happened yet that the log must hold. A write (done by now) or a
     * denial always waits for its entry. */
    bool read = req->in->method == CORE_GET || req->in->method == CORE_HEAD;
    if (!core_http_gate_start(len, read && status < 300)) {
        /* held, refused, and replaced by a 503 once the handler returns */
        req->in->gate_busy = true;
        req->in->gate_ok = false;
        atomic_store(&req->in->gate_state, GATE_DONE);
        return;
    }
    req->in->gate_bytes = len;
    atomic_store(&req->in->gate_state, GATE_WAITING);
    g(req, status, data, len, req->in->gate_arg);
}

void core_http_release_held(struct core_req *req)
{
    struct core_http_internal *in = req->in;
    struct MHD_Response *resp = in->held;
    in->held = NULL;
    atomic_store(&in->gate_state, GATE_NONE);
    if (in->gate_ok) {
        if (MHD_queue_response(in->conn, in->held_status, resp) != MHD_YES)
            core_log_bug("MHD_queue_response(%u) refused for %s %s", in->held_status, req->method,
                         req->path);
        MHD_destroy_response(resp);
        return;
    }
    MHD_destroy_response(resp);
    size_t keep = 0;
    for (size_t i = 0; i < in->nhdr; i++) {
        if (strcasecmp(in->hdr_names[i], "Fiware-Correlator") == 0) {
            in->hdr_names[keep] = in->hdr_names[i];
            in->hdr_values[keep++] = in->hdr_values[i];
        }
    }
    in->nhdr = keep;
    req->replied = false;
    if (in->gate_busy) {
        core_reply_header(req, "Retry-After", "1");
        core_reply_error(req, CORE_ERR_UNAVAILABLE,
                         "too many replies are waiting for the audit log; nothing is returned");
        return;
    }
    core_reply_error(req, CORE_ERR_UNAVAILABLE,
                     "the transfer could not be recorded in the audit log, so nothing is returned");
}

void core_reply_bytes(struct core_req *req, unsigned status, const char *content_type,
                      const void *data, size_t len)
{
    pass_gate(req, status, data, len);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    queue(req, status, resp, content_type);
}

struct stream {
    core_stream_read read;
    void *arg;
    void (*done)(void *arg);
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct stream *s = cls;
    long n = s->read(s->arg, buf, max);
    if (n == CORE_STREAM_END)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n <= 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    if (s->done)
        s->done(s->arg);
    free(s);
}

void core_reply_stream(struct core_req *req, unsigned status, const char *content_type,
                       core_stream_read read, void *arg, void (*done)(void *arg))
{
    pass_gate(req, status, NULL, 0);
    struct stream *s = xmalloc(sizeof *s);
    *s = (struct stream){.read = read, .arg = arg, .done = done};
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, s, stream_free);
    queue(req, status, resp, content_type);
}

void core_reply_empty(struct core_req *req, unsigned status)
{
    pass_gate(req, status, NULL, 0);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    queue(req, status, resp, NULL);
}

void core_reply_owned(struct core_req *req, unsigned status, const char *content_type, char *data,
                      size_t len)
{
    pass_gate(req, status, data, len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    queue(req, status, resp, content_type);
}

void core_reply_json(struct core_req *req, unsigned status, json_t *body)
{
    size_t len = 0;
    char *text = core_json_dump(body, 0, &len);
    json_decref(body);
    if (!text) {
        core_log_bug("reply body for %s %s cannot be serialized", req->method, req->path);
        text = xstrdup("{\"error\":\"InternalServerError\",\"description\":\"internal error\"}");
        len = strlen(text);
        status = 500;
    }
    core_reply_owned(req, status, "application/json", text, len);
}

void core_reply_error(struct core_req *req, enum core_err code, const char *fmt, ...)
{
    const struct core_err_info *e = core_err_info(code);
    char *desc = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        desc = xvasprintf(fmt, ap);
        va_end(ap);
    }
    json_t *d = json_string(desc ? desc : e->description);
    if (!d) /* the description quoted bytes that are not UTF-8 */
        d = json_string(e->description);
    free(desc);
    json_t *body = json_object();
    json_object_set_new(body, "error", json_string(e->name));
    json_object_set_new(body, "description", d);
    req->in->error = core_pstrdup(req->pool, json_string_value(d));
    core_reply_json(req, e->status, body);
}

static void json_cleanup(void *p)
{
    json_decref(p);
}

json_t *core_req_parse_json(struct core_req *req, enum core_err *code, const char **why)
{
    const char *ct = core_req_header(req, "Content-Type");
    size_t n = strlen("application/json");
    if (!ct || strncasecmp(ct, "application/json", n) != 0 ||
        (ct[n] && ct[n] != ';' && ct[n] != ' ')) {
        *code = CORE_ERR_UNSUPPORTED_MEDIA_TYPE;
        *why = "Content-Type must be application/json";
        return NULL;
    }
    *code = CORE_ERR_PARSE_ERROR;
    if (!req->body || req->body_len == 0) {
        *why = "the request body is empty";
        return NULL;
    }
    if (!core_json_depth_ok(req->body, req->body_len, CORE_JSON_MAX_DEPTH)) {
        *code = CORE_ERR_JSON_TOO_DEEP;
        *why = core_psprintf(req->pool, "the JSON body nests deeper than %d levels",
                             CORE_JSON_MAX_DEPTH);
        return NULL;
    }
    json_error_t err;
    json_t *v = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &err);
    if (!v) {
        *why = core_psprintf(req->pool, "invalid JSON at line %d column %d: %s", err.line,
                             err.column, err.text);
        return NULL;
    }
    if (!json_is_object(v) && !json_is_array(v)) {
        json_decref(v);
        *why = "the JSON body must be an object or array";
        return NULL;
    }
    core_pool_cleanup(req->pool, json_cleanup, v);
    return v;
}

bool core_req_json_members(struct core_req *req, json_t *body, const char *const *allowed)
{
    if (!json_is_object(body)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "the body must be a JSON object");
        return false;
    }
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, key) == 0;
        if (!known) {
            core_reply_error(req, CORE_ERR_BAD_REQUEST, "unknown member \"%s\"", key);
            return false;
        }
    }
    return true;
}

json_t *core_req_body_json(struct core_req *req)
{
    enum core_err code;
    const char *why;
    json_t *v = core_req_parse_json(req, &code, &why);
    if (!v)
        core_reply_error(req, code, "%s", why);
    return v;
}
