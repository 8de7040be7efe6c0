#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"
#include "core/pool.h"
#include "core/router.h"
#include "core/url.h"

static const char *const method_names[CORE_METHOD__COUNT] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
};

struct node {
    char *literal;          /* NULL for the parameter child */
    struct node **children; /* literal children */
    size_t nchildren;
    struct node *param;
    const struct core_route *routes[CORE_METHOD__COUNT];
    unsigned ids[CORE_METHOD__COUNT];
};

struct core_router {
    struct node root;
    const struct core_route **all;
    size_t count;
};

enum core_method core_method_parse(const char *method)
{
    for (int i = 0; i < CORE_METHOD__COUNT; i++) {
        if (strcmp(method, method_names[i]) == 0)
            return (enum core_method)i;
    }
    return CORE_METHOD__COUNT;
}

const char *core_method_name(enum core_method m)
{
    return (unsigned)m < CORE_METHOD__COUNT ? method_names[m] : "?";
}

struct core_router *core_router_new(void)
{
    return xcalloc(1, sizeof(struct core_router));
}

static void node_release(struct node *n)
{
    for (size_t i = 0; i < n->nchildren; i++) {
        node_release(n->children[i]);
        free(n->children[i]);
    }
    free(n->children);
    free(n->literal);
    if (n->param) {
        node_release(n->param);
        free(n->param);
    }
}

void core_router_free(struct core_router *r)
{
    if (!r)
        return;
    node_release(&r->root);
    free(r->all);
    free(r);
}

static void die_pattern(const struct core_route *route, const char *why)
{
    core_log_bug("route %s %s: %s", core_method_name(route->method), route->pattern, why);
    abort();
}

/* Next segment of a path: start..*end, with *end at '/' or NUL. */
static const char *segment(const char *p, size_t *len)
{
    const char *slash = strchr(p, '/');
    *len = slash ? (size_t)(slash - p) : strlen(p);
    return p;
}

void core_router_add(struct core_router *r, const struct core_route *route)
{
    const char *p = route->pattern;
    if (!p || p[0] != '/' || !route->handler || (unsigned)route->method >= CORE_METHOD__COUNT)
        die_pattern(route, "pattern must start with '/' and name a handler and method");
    struct node *n = &r->root;
    size_t nparams = 0;
    p++;
    while (*p) {
        size_t len;
        segment(p, &len);
        if (len == 0)
            die_pattern(route, "empty segment");
        if (p[0] == '{') {
            if (len < 3 || p[len - 1] != '}' || memchr(p + 1, '{', len - 1))
                die_pattern(route, "bad {param} segment");
            if (++nparams > CORE_MAX_PARAMS)
                die_pattern(route, "too many parameters");
            if (!n->param)
                n->param = xcalloc(1, sizeof(struct node));
            n = n->param;
        } else {
            if (memchr(p, '{', len) || memchr(p, '}', len))
                die_pattern(route, "braces inside a literal segment");
            struct node *child = NULL;
            for (size_t i = 0; i < n->nchildren; i++) {
                if (strlen(n->children[i]->literal) == len &&
                    memcmp(n->children[i]->literal, p, len) == 0) {
                    child = n->children[i];
                    break;
                }
            }
            if (!child) {
                child = xcalloc(1, sizeof *child);
                child->literal = xstrndup(p, len);
                n->children = xrealloc(n->children, (n->nchildren + 1) * sizeof *n->children);
                n->children[n->nchildren++] = child;
            }
            n = child;
        }
        p += len;
        if (*p == '/') {
            p++;
            if (!*p)
                die_pattern(route, "trailing slash");
        }
    }
    if (n->routes[route->method])
        die_pattern(route, "registered twice");
    n->routes[route->method] = route;
    n->ids[route->method] = (unsigned)r->count;
    r->all = xrealloc(r->all, (r->count + 1) * sizeof *r->all);
    r->all[r->count++] = route;
}

static bool node_has_routes(const struct node *n)
{
    for (int i = 0; i < CORE_METHOD__COUNT; i++) {
        if (n->routes[i])
            return true;
    }
    return false;
}

static const struct core_route *node_route(const struct node *n, enum core_method m, unsigned *id)
{
    if (n->routes[m]) {
        *id = n->ids[m];
        return n->routes[m];
    }
    if (m == CORE_HEAD && n->routes[CORE_GET]) {
        *id = n->ids[CORE_GET];
        return n->routes[CORE_GET];
    }
    return NULL;
}

#define MAX_SEGMENTS 32

/* A request path split at '/' and each segment percent-decoded, so an encoded
 * slash stays inside its segment and never acts as a separator. */
struct segs {
    const char *seg[MAX_SEGMENTS];
    size_t n;
};

/* 0: split; 1: malformed (escape or NUL); 2: not a path we could route
 * (empty segment, trailing slash, too many segments). */
static int split(const char *path, struct core_pool *pool, struct segs *s)
{
    s->n = 0;
    const char *p = path + 1;
    if (!*p)
        return 0; /* "/" */
    for (;;) {
        size_t len = strcspn(p, "/");
        if (len == 0 || s->n == MAX_SEGMENTS)
            return 2;
        if (!(s->seg[s->n] = core_url_decode(p, len, false, pool)))
            return 1;
        s->n++;
        p += len;
        if (!*p)
            return 0;
        p++; /* past '/': a trailing slash leaves an empty segment */
    }
}

struct walk {
    enum core_method method;
    const struct segs *segs;
    const struct node *found;       /* node with a route for the method */
    const struct node *path_found;  /* first node the path reaches */
    size_t params[CORE_MAX_PARAMS]; /* segment index of each parameter */
    size_t depth;
    size_t best[CORE_MAX_PARAMS];
    size_t best_n;
};

static bool walk(const struct node *n, size_t i, struct walk *w)
{
    if (i == w->segs->n) {
        if (!node_has_routes(n))
            return false;
        if (!w->path_found)
            w->path_found = n;
        unsigned id;
        if (node_route(n, w->method, &id)) {
            w->found = n;
            memcpy(w->best, w->params, sizeof w->params);
            w->best_n = w->depth;
            return true;
        }
        return false;
    }
    const char *seg = w->segs->seg[i];
    for (size_t c = 0; c < n->nchildren; c++) {
        if (strcmp(n->children[c]->literal, seg) == 0 && walk(n->children[c], i + 1, w))
            return true;
    }
    if (n->param && w->depth < CORE_MAX_PARAMS) {
        w->params[w->depth++] = i;
        bool ok = walk(n->param, i + 1, w);
        w->depth--;
        if (ok)
            return true;
    }
    return false;
}

static void fill_allow(const struct node *n, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < CORE_METHOD__COUNT; i++) {
        bool has = n->routes[i] || (i == CORE_HEAD && n->routes[CORE_GET]);
        if (!has)
            continue;
        int k = snprintf(out + used, size - used, "%s%s", used ? ", " : "", method_names[i]);
        if (k < 0 || (size_t)k >= size - used)
            break;
        used += (size_t)k;
    }
}

/* Splits a pattern's {names} in order into m->names (pointers into a pool copy). */
static void param_names(const char *pattern, struct core_pool *pool, struct core_route_match *m)
{
    size_t n = 0;
    for (const char *p = strchr(pattern, '{'); p && n < CORE_MAX_PARAMS; p = strchr(p + 1, '{')) {
        const char *close = strchr(p, '}');
        m->names[n++] = core_pstrndup(pool, p + 1, (size_t)(close - p - 1));
    }
}

enum core_match_result core_router_match(const struct core_router *r, const char *method,
                                         const char *path, struct core_pool *pool,
                                         struct core_route_match *m)
{
    memset(m, 0, sizeof *m);
    if (!path || path[0] != '/')
        return CORE_MATCH_NOT_FOUND;
    struct segs segs;
    int split_rc = split(path, pool, &segs);
    if (split_rc == 1)
        return CORE_MATCH_BAD_PATH;
    if (split_rc == 2)
        return CORE_MATCH_NOT_FOUND;
    struct walk w = {.method = core_method_parse(method), .segs = &segs};
    bool known = w.method != CORE_METHOD__COUNT;
    if (!known)
        w.method = CORE_GET; /* find the path, then answer 405 */
    bool ok = walk(&r->root, 0, &w);
    if (!ok || !known) {
        const struct node *n = w.found ? w.found : w.path_found;
        if (!n)
            return CORE_MATCH_NOT_FOUND;
        fill_allow(n, m->allow, sizeof m->allow);
        return CORE_MATCH_BAD_METHOD;
    }
    m->route = node_route(w.found, w.method, &m->route_id);
    m->nparams = w.best_n;
    param_names(m->route->pattern, pool, m);
    for (size_t i = 0; i < w.best_n; i++)
        m->values[i] = segs.seg[w.best[i]];
    return CORE_MATCH_OK;
}

size_t core_router_count(const struct core_router *r)
{
    return r->count;
}

const struct core_route *core_router_at(const struct core_router *r, size_t i)
{
    return i < r->count ? r->all[i] : NULL;
}
