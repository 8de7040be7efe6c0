#ifndef CORE_HTTP_INTERNAL_H
#define CORE_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <stdatomic.h>

#include "core/http.h"
#include "core/strbuf.h"

/* What the server keeps per request beside what handlers see. */
struct core_http_internal {
    struct MHD_Connection *conn;
    struct strbuf body;
    bool body_too_big; /* over the cap: the rest is read and dropped */
    size_t discarded;
    const char **hdr_names; /* extra response headers, from the pool */
    const char **hdr_values;
    size_t nhdr;
    size_t hdr_alloc;
    long route_id;     /* -1: unmatched */
    bool started;      /* the access handler has seen the request */
    bool has_body;     /* Content-Length > 0 or Transfer-Encoding */
    const char *error; /* the description of an error reply, for the log */
    char peer[48];     /* the client's address, once asked for */
    enum core_method method;
    core_reply_gate gate; /* see core_req_gate */
    void *gate_arg;
    atomic_int gate_state;     /* enum core_gate_state */
    bool gate_ok;              /* the gate's verdict, once GATE_DONE */
    bool gate_busy;            /* refused before the gate ran: too much waiting */
    size_t gate_bytes;         /* the held reply's body, counted while it waits */
    struct MHD_Response *held; /* the reply waiting on the gate */
    unsigned held_status;
};

/* A gated reply's life: queued while the handler runs (WAITING), the
 * connection suspended when the handler returns before the verdict
 * (SUSPENDED), the verdict in (DONE), or the connection gone before it
 * (ORPHAN: the verdict's caller frees the request). */
enum core_gate_state { GATE_NONE, GATE_WAITING, GATE_SUSPENDED, GATE_DONE, GATE_ORPHAN };

/* Counts a gate about to start on a reply of bytes (core_req_gate_done
 * settles it). When refusable, false, counting nothing, if too many replies
 * or bytes wait already (the reply is then refused with 503, its gate never
 * run). */
bool core_http_gate_start(size_t bytes, bool refusable);
/* Sends the held reply, or the 503 that replaces a refused one. */
void core_http_release_held(struct core_req *req);

/* True once shutdown has begun: replies then carry Connection: close. */
bool core_http_shutting_down(void);

#endif
