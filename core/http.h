#ifndef CORE_HTTP_H
#define CORE_HTTP_H

#include <jansson.h>

#include "core/errors.h"
#include "core/json.h"
#include "core/pool.h"
#include "core/router.h"

/*
 * One HTTP request as a handler sees it. The request owns a pool; anything a
 * handler allocates for the request comes from req->pool and is freed when
 * the request ends. A handler answers exactly once through core_reply_*;
 * answering twice is our bug (logged, the second answer is dropped).
 */
struct core_req {
    struct core_pool *pool;
    const char *method;
    const char *path; /* decoded, without the query */
    const struct core_route *route;
    struct core_route_match match;
    char request_id[129];
    uint64_t start_us;
    const char *body; /* NUL-terminated copy of the body; NULL when none */
    size_t body_len;
    unsigned status; /* set when the reply is queued */
    bool replied;
    struct core_http_internal *in; /* the server's own state */
};

/* Path parameter by its {name}; NULL if the route has none of that name. */
const char *core_req_param(const struct core_req *req, const char *name);
/* Query argument (decoded); NULL when absent. */
const char *core_req_query(const struct core_req *req, const char *name);
/* The name of a query parameter given more than once (RFC 6749 §3.1 forbids
 * it for OAuth requests), or NULL. */
const char *core_req_query_repeated(const struct core_req *req);
/* Calls fn for every query argument in order (decoded; value NULL for a
 * bare "?key"). */
typedef void (*core_query_fn)(void *arg, const char *key, const char *value);
void core_req_query_each(const struct core_req *req, core_query_fn fn, void *arg);
/* The admin lists' ?limit=: def when absent, else 1..max; false once 400
 * is queued. */
bool core_req_limit(struct core_req *req, long def, long max, long *out);
/* If-Match as the admin APIs give ETags (W/"N" or "N"): N; 0 when absent.
 * false once 400 is queued for a malformed one. */
bool core_req_if_match(struct core_req *req, int *version);
/* ETag: W/"version" on the reply queued next. */
void core_reply_etag(struct core_req *req, int version);
/* A cookie's value; NULL when the request has none of that name. */
const char *core_req_cookie(const struct core_req *req, const char *name);
/* Sets a cookie (Path=/; HttpOnly; SameSite=Lax; Secure when secure):
 * max_age 0 for a session cookie, < 0 to delete it. value must be a cookie
 * token (base64url). */
void core_reply_cookie(struct core_req *req, const char *name, const char *value, long max_age,
                       bool secure);
/* How many times the request carries header name (case-insensitive). */
int core_req_header_count(const struct core_req *req, const char *name);
/* Request header (case-insensitive name); NULL when absent. */
const char *core_req_header(const struct core_req *req, const char *name);

/* Parses the body as a JSON object or array: Content-Type must be
 * application/json, nesting at most CORE_JSON_MAX_DEPTH, no duplicate keys.
 * On failure the error reply is already queued and NULL is returned. The
 * value belongs to the request (freed with it). */
#define CORE_JSON_MAX_DEPTH 32
json_t *core_req_body_json(struct core_req *req);
/* True when body is a JSON object whose members are all in allowed
 * (NULL-terminated); otherwise queues 400 naming the unknown member. */
bool core_req_json_members(struct core_req *req, json_t *body, const char *const *allowed);

/* The same checks without replying: NULL with the error code and why (for
 * endpoints that answer in another error format, OAuth's). */
json_t *core_req_parse_json(struct core_req *req, enum core_err *code, const char **why);

/* The peer's address as text ("127.0.0.1", "::1"); "?" when unknown. */
const char *core_req_peer(struct core_req *req);

/* Replies an OAuth error (RFC 6749 §5.2): {"error", "error_description"},
 * no-store. */
void core_reply_oauth_error(struct core_req *req, unsigned status, const char *error,
                            const char *fmt, ...) PRINTF_LIKE(4, 5);

/* Adds a response header to the reply queued next. */
void core_reply_header(struct core_req *req, const char *name, const char *value);

/* Replies with body serialized compactly (reference stolen), Content-Type
 * application/json and Cache-Control: no-store unless a header says otherwise. */
void core_reply_json(struct core_req *req, unsigned status, json_t *body);
/* Replies with bytes (copied) and a content type. */
void core_reply_bytes(struct core_req *req, unsigned status, const char *content_type,
                      const void *data, size_t len);
/* The same with bytes it takes over (malloc'd; freed once sent). */
void core_reply_owned(struct core_req *req, unsigned status, const char *content_type, char *data,
                      size_t len);
/*
 * Replies with a body of unknown length, sent chunked as read() produces it,
 * so an export of any size never sits in memory. read() runs on a server
 * thread after the handler returned: it fills buf with up to max bytes and
 * returns how many (> 0), CORE_STREAM_END at the end, or CORE_STREAM_ERROR
 * to cut the response short (the client sees a truncated chunked body).
 * done(arg) runs once when the response is finished or abandoned.
 */
#define CORE_STREAM_END   (-1)
#define CORE_STREAM_ERROR (-2)
typedef long (*core_stream_read)(void *arg, char *buf, size_t max);
void core_reply_stream(struct core_req *req, unsigned status, const char *content_type,
                       core_stream_read read, void *arg, void (*done)(void *arg));
/*
 * A gate every reply to req passes through once before it is sent (the data
 * exchange records a transfer in the audit log before releasing it). gate
 * sees the status and the body about to be sent (len 0 for none, and for a
 * stream, whose body it cannot see) and must call core_req_gate_done(req,
 * ok) exactly once, before it returns or later from any thread. Until then
 * the reply is held and the connection suspended, so the worker thread
 * serves other connections meanwhile. When ok is false the reply is
 * replaced by 503 ServiceUnavailable naming why, and every header queued so
 * far except Fiware-Correlator is dropped, so nothing of the refused answer
 * leaves. The request (its pool) lives until the gate is done, even when
 * the client goes away first.
 */
typedef void (*core_reply_gate)(struct core_req *req, unsigned status, const void *body, size_t len,
                                void *arg);
void core_req_gate(struct core_req *req, core_reply_gate gate, void *arg);
void core_req_gate_done(struct core_req *req, bool ok);

/* Replies with no body. */
void core_reply_empty(struct core_req *req, unsigned status);
/* Replies {"error": name, "description": text} with the registry's status;
 * fmt NULL uses the registry's description. */
void core_reply_error(struct core_req *req, enum core_err code, const char *fmt, ...)
    PRINTF_LIKE(3, 4);

/* ---- the server ---- */

struct core_config;
struct core_http_server;

/* Binds and listens on cfg's address (so the actual port is known before
 * anything is served: port 0 picks a free one). NULL after logging why. */
struct core_http_server *core_http_bind(const struct core_config *cfg, int *bound_port);
/* Starts serving on the bound socket with cfg's threads and limits and the
 * router (kept, not owned). False after logging why. */
bool core_http_start(struct core_http_server *srv, const struct core_config *cfg,
                     const struct core_router *router);
/* Refuses new connections, waits up to grace_s for requests in flight, calls
 * before_stop (may be NULL; e.g. cancel database statements still running)
 * if some remain, then stops every thread and frees srv. */
void core_http_stop(struct core_http_server *srv, int grace_s, void (*before_stop)(void));
/* Requests started and not yet finished. */
long core_http_in_flight(void);
/* Replies held until their gate opens (an audit entry to commit, say). */
long core_http_replies_waiting(void);
/* Replies refused because too many (or too many bytes) were waiting. */
unsigned long long core_http_replies_refused(void);

#endif
