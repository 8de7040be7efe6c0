#ifndef CORE_ROUTER_H
#define CORE_ROUTER_H

#include "core/core.h"

struct core_req;
struct core_pool;

/* A handler must answer through one of the core_reply_* calls. */
typedef void (*core_handler)(struct core_req *req);

enum core_method {
    CORE_GET,
    CORE_HEAD,
    CORE_POST,
    CORE_PUT,
    CORE_PATCH,
    CORE_DELETE,
    CORE_OPTIONS,
    CORE_METHOD__COUNT
};

#define CORE_MAX_PARAMS 8

/* One route. Modules declare these statically; the router keeps pointers. */
struct core_route {
    enum core_method method;
    const char *pattern; /* "/v2/entities/{id}/attrs/{name}" */
    core_handler handler;
    const char *summary; /* one line, for /openapi.json */
    const char *tag;     /* the module, for /openapi.json */
    long max_body;       /* 0: RENKEI_MAX_BODY */
};

struct core_router;

struct core_route_match {
    const struct core_route *route;
    unsigned route_id; /* dense index in registration order, for metrics */
    size_t nparams;
    const char *names[CORE_MAX_PARAMS];  /* from the pattern */
    const char *values[CORE_MAX_PARAMS]; /* allocated from the pool given to match */
    char allow[96];                      /* for 405: "GET, HEAD" */
};

enum core_match_result {
    CORE_MATCH_OK,
    CORE_MATCH_NOT_FOUND,
    CORE_MATCH_BAD_METHOD,
    CORE_MATCH_BAD_PATH, /* a malformed percent-escape, or an encoded NUL */
};

struct core_router *core_router_new(void);
void core_router_free(struct core_router *r);

/* Adds a route. A malformed pattern or a duplicate method+pattern is our bug:
 * logged and the process aborts at start, before serving. */
void core_router_add(struct core_router *r, const struct core_route *route);

/* Matches method and a raw (still percent-encoded) path: it is split at '/'
 * first and each segment decoded after, so "%2F" stays inside a segment.
 * Literal segments win over {param} segments; a path that exists under
 * another method gives BAD_METHOD with m->allow filled; a malformed escape or
 * "%00" gives BAD_PATH. HEAD is served by the GET route unless one is
 * registered. Parameter values are decoded, in pool memory. */
enum core_match_result core_router_match(const struct core_router *r, const char *method,
                                         const char *path, struct core_pool *pool,
                                         struct core_route_match *m);

/* The method's index, or CORE_METHOD__COUNT when not one we route. */
enum core_method core_method_parse(const char *method);
const char *core_method_name(enum core_method m);

/* Registered routes in registration order. */
size_t core_router_count(const struct core_router *r);
const struct core_route *core_router_at(const struct core_router *r, size_t i);

#endif
