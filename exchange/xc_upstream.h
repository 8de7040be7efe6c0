#ifndef XC_UPSTREAM_H
#define XC_UPSTREAM_H

/*
 * Forwarding to a town's own city OS (a remote Orion, NGSI-v2 over HTTP or
 * HTTPS) with libcurl: the town's registered URL, Fiware-Service and
 * credentials (a bearer token, or a client_credentials token fetched from
 * the town's token endpoint and cached until shortly before it expires),
 * kept-alive connections in a pool per town, connect and total timeouts,
 * and a bounded response size.
 */
#include "core/strbuf.h"
#include "core/http.h"

#define XC_UP_BODY_MAX       (16 * 1024 * 1024) /* bytes of an upstream response */
#define XC_UP_CONNECT_MS     2000
#define XC_UP_TIMEOUT_MS     10000
#define XC_UP_CONNS_PER_TOWN 16 /* idle kept-alive connections per town */

enum xc_up_rc {
    XC_UP_OK,         /* an HTTP response came back (any status) */
    XC_UP_NOT_REMOTE, /* the town has no registered city OS (hosted, or unknown) */
    XC_UP_DOWN,       /* connection refused, reset, DNS, TLS: 502 */
    XC_UP_TIMEOUT,    /* connect or total timeout: 504 */
    XC_UP_TOO_LARGE,  /* the response outgrew XC_UP_BODY_MAX: 502 */
    XC_UP_AUTH,       /* the town's token endpoint refused or failed: 502 */
    XC_UP_ERROR,      /* anything else (logged): 502 */
};

/* One request to a town's city OS. path_query: "/v2/entities?type=X&limit=5"
 * (already encoded). Headers sent: Fiware-Service (the town's registered
 * one, if any, never the caller's), Fiware-ServicePath (when set),
 * Fiware-Correlator, Content-Type (when there is a body), Accept,
 * Authorization (the town's upstream credentials, never the caller's). */
struct xc_up_req {
    const char *tenant;
    const char *method; /* "GET", "POST", "PATCH", "PUT", "DELETE" */
    const char *path_query;
    const char *service_path; /* NULL: none sent */
    const char *correlator;
    const char *request_id;   /* sent as X-Request-Id (NULL: none): one id end to end */
    const char *accept;       /* NULL: application/json */
    const char *content_type; /* with a body */
    const char *body;
    size_t body_len;
};

/* The response; strings live in the pool given to xc_upstream_call. */
struct xc_up_resp {
    long status;
    char *body; /* NUL-terminated, len bytes */
    size_t len;
    const char *content_type; /* NULL when absent */
    const char *total_count;  /* Fiware-Total-Count, NULL when absent */
    const char *location;     /* Location, NULL when absent */
    const char *correlator;   /* Fiware-Correlator echoed, NULL when absent */
    double seconds;           /* time the call took */
};

/* Sends r to r->tenant's registered city OS and waits for the response.
 * XC_UP_OK fills *out; otherwise err says what happened (for the log and
 * the 502/504 description; it never holds credentials). Safe from many
 * threads at once. */
enum xc_up_rc xc_upstream_call(struct core_pool *pool, const struct xc_up_req *r,
                               struct xc_up_resp *out, char *err, size_t errlen);

/* Queues the NGSI error reply for a failed call: 504 for XC_UP_TIMEOUT,
 * 502 otherwise, with Orion-style {"error", "description"}. */
void xc_upstream_reply_error(struct core_req *req, const char *tenant, enum xc_up_rc rc,
                             const char *err);

/* Forgets a town's cached configuration, connections and token (after its
 * registration changed: called from the tenant cache's NOTIFY). */
void xc_upstream_forget(const char *tenant);

void xc_upstream_init(void);
void xc_upstream_release(void);

/* Per-town upstream figures (latency, errors, the last call's outcome): a
 * /metrics collector. */
void xc_upstream_metrics(struct strbuf *out);

#endif
