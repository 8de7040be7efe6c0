#ifndef CORE_HTTP_INTERNAL_H
#define CORE_HTTP_INTERNAL_H

#include <microhttpd.h>

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
};

/* True once shutdown has begun: replies then carry Connection: close. */
bool core_http_shutting_down(void);

#endif
