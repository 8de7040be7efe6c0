/*
 * /v2/subscriptions: list, create, read, update (top-level members merged,
 * as Orion's PATCH), delete. A subscription belongs to the tenant of the
 * request and to its service path ("/#" and "/a/#" for subtrees); reads,
 * updates and deletes by id look at the tenant only, as Orion does.
 */
#include "core/crypto.h"
#include "core/log.h"
#include "exchange/xc_subs.h"

#define NOT_FOUND_DESC "The requested subscription has not been found. Check id"
#define SUBS_BODY_MAX  (256 * 1024)

static void reply_rc(struct core_req *req, enum xc_subs_rc rc)
{
    switch (rc) {
    case XC_SUBS_NOT_FOUND:
        core_reply_error(req, CORE_ERR_NOT_FOUND, NOT_FOUND_DESC);
        return;
    case XC_SUBS_TOO_MANY:
        /* the NGSI-v2 spec's answer for a resource limit of the broker
         * ("Geospatial properties of entities": 413 NoResourcesAvailable) */
        xc_reply_json(req, 413,
                      json_pack("{s:s, s:s}", "error", "NoResourcesAvailable", "description",
                                core_psprintf(req->pool,
                                              "the town already has %d subscriptions, the most "
                                              "allowed",
                                              XC_SUBS_PER_TENANT)));
        return;
    case XC_SUBS_UNAVAILABLE:
        core_reply_error(req, CORE_ERR_DB_UNAVAILABLE, NULL);
        return;
    case XC_SUBS_OK:
    case XC_SUBS_ERROR:
        break;
    }
    core_reply_error(req, CORE_ERR_INTERNAL, NULL);
}

/* The path a subscription made by this request belongs to, as stored. */
static const char *sub_path(const struct xc_ngsi *n, int i)
{
    if (!n->subtree[i])
        return n->paths[i];
    if (strcmp(n->paths[i], "/") == 0)
        return "/#";
    return core_psprintf(n->req->pool, "%s/#", n->paths[i]);
}

static bool id_ok(const char *id)
{
    if (!id || strlen(id) != 24)
        return false;
    for (const char *c = id; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return false;
    return true;
}

static void xc_handler_subs_list(struct core_req *req)
{
    struct xc_ngsi n;
    if (!xc_ngsi_begin(req, &n, XC_READ, XC_OPT_COUNT))
        return;
    long limit = XC_LIMIT_DEFAULT, offset = 0;
    const char *ls = core_req_query(req, "limit"), *os = core_req_query(req, "offset");
    if (ls && !core_parse_long(ls, 1, XC_LIMIT_MAX, &limit)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "Bad pagination limit: /%s/ [max: %d]", ls,
                         XC_LIMIT_MAX);
        return;
    }
    if (os && !core_parse_long(os, 0, XC_OFFSET_MAX, &offset)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST,
                         "Bad pagination offset: /%s/ [must be a decimal number]", os);
        return;
    }
    /* without a Fiware-ServicePath (or with "/#") every subscription of the
     * town; otherwise those made under the paths named */
    const char *paths[XC_PATHS_MAX];
    int npaths = 0;
    const char *h = core_req_header(req, "Fiware-ServicePath");
    if (h && *h) {
        for (int i = 0; i < n.npaths; i++) {
            paths[npaths] = sub_path(&n, i);
            if (strcmp(paths[npaths], "/#") == 0) {
                npaths = 0;
                break;
            }
            npaths++;
        }
    }
    json_t *items = NULL;
    long total = 0;
    enum xc_subs_rc rc = xc_subs_db_list(n.tenant, paths, npaths, limit, offset, &items,
                                         (n.opts & XC_OPT_COUNT) ? &total : NULL);
    if (rc != XC_SUBS_OK) {
        reply_rc(req, rc);
        return;
    }
    if (n.opts & XC_OPT_COUNT) {
        char t[24];
        snprintf(t, sizeof t, "%ld", total);
        core_reply_header(req, "Fiware-Total-Count", t);
    }
    xc_reply_json(req, 200, items);
}

static void xc_handler_subs_create(struct core_req *req)
{
    struct xc_ngsi n;
    if (!xc_ngsi_begin(req, &n, XC_WRITE, 0))
        return;
    json_t *body = core_req_body_json(req);
    if (!body)
        return;
    struct xc_sub s;
    char err[300];
    if (!xc_sub_parse(body, sub_path(&n, 0), &s, err, sizeof err)) {
        core_info("subscription refused: %s", err);
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", err);
        return;
    }
    unsigned char r[12];
    core_random(r, sizeof r);
    core_hex(r, sizeof r, s.id);
    char *spec = json_dumps(s.spec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    enum xc_subs_rc rc = xc_subs_db_insert(n.tenant, &s, spec);
    free(spec);
    if (rc == XC_SUBS_OK) {
        xc_subs_invalidate(n.tenant);
        char *loc = core_psprintf(req->pool, "/v2/subscriptions/%s", s.id);
        core_reply_header(req, "Location", loc);
        core_reply_empty(req, 201);
    } else {
        reply_rc(req, rc);
    }
    xc_sub_release(&s);
}

static void xc_handler_subs_read(struct core_req *req)
{
    struct xc_ngsi n;
    if (!xc_ngsi_begin(req, &n, XC_READ, 0))
        return;
    const char *id = core_req_param(req, "id");
    if (!id_ok(id)) {
        core_reply_error(req, CORE_ERR_NOT_FOUND, NOT_FOUND_DESC);
        return;
    }
    json_t *out;
    enum xc_subs_rc rc = xc_subs_db_get(n.tenant, id, req->pool, &out, NULL, NULL);
    if (rc != XC_SUBS_OK) {
        reply_rc(req, rc);
        return;
    }
    xc_reply_json(req, 200, out);
}

static void xc_handler_subs_update(struct core_req *req)
{
    struct xc_ngsi n;
    if (!xc_ngsi_begin(req, &n, XC_WRITE, 0))
        return;
    const char *id = core_req_param(req, "id");
    json_t *body = core_req_body_json(req);
    if (!body)
        return;
    if (!json_is_object(body)) {
        core_reply_error(req, CORE_ERR_PARSE_ERROR, "Errors found in incoming JSON buffer");
        return;
    }
    if (json_object_size(body) == 0) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "empty payload");
        return;
    }
    if (!id_ok(id)) {
        core_reply_error(req, CORE_ERR_NOT_FOUND, NOT_FOUND_DESC);
        return;
    }
    json_t *doc;
    const char *status, *path;
    enum xc_subs_rc rc = xc_subs_db_get(n.tenant, id, req->pool, &doc, &status, &path);
    if (rc != XC_SUBS_OK) {
        reply_rc(req, rc);
        return;
    }
    /* the stored subscription with the body's members in place of its own;
     * the counters GET shows are ignored by the parser */
    json_object_del(doc, "id");
    json_object_set_new(doc, "status", json_string(status));
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        json_object_set(doc, key, v);
    }
    struct xc_sub s;
    char err[300];
    bool ok = xc_sub_parse(doc, path, &s, err, sizeof err);
    json_decref(doc);
    if (!ok) {
        core_info("subscription update refused: %s", err);
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", err);
        return;
    }
    xsnprintf(s.id, sizeof s.id, "%s", id);
    char *spec = json_dumps(s.spec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    rc = xc_subs_db_update(n.tenant, &s, spec);
    free(spec);
    xc_sub_release(&s);
    if (rc != XC_SUBS_OK) {
        reply_rc(req, rc);
        return;
    }
    xc_subs_invalidate(n.tenant);
    core_reply_empty(req, 204);
}

static void xc_handler_subs_delete(struct core_req *req)
{
    struct xc_ngsi n;
    if (!xc_ngsi_begin(req, &n, XC_WRITE, 0))
        return;
    const char *id = core_req_param(req, "id");
    if (!id_ok(id)) {
        core_reply_error(req, CORE_ERR_NOT_FOUND, NOT_FOUND_DESC);
        return;
    }
    enum xc_subs_rc rc = xc_subs_db_delete(n.tenant, id);
    if (rc != XC_SUBS_OK) {
        reply_rc(req, rc);
        return;
    }
    xc_subs_invalidate(n.tenant);
    core_reply_empty(req, 204);
}

static const struct core_route routes[] = {
    {CORE_GET, "/v2/subscriptions", xc_handler_subs_list, "List the town's NGSI subscriptions",
     "exchange", 0},
    {CORE_POST, "/v2/subscriptions", xc_handler_subs_create, "Create an NGSI subscription",
     "exchange", SUBS_BODY_MAX},
    {CORE_GET, "/v2/subscriptions/{id}", xc_handler_subs_read, "Read an NGSI subscription",
     "exchange", 0},
    {CORE_PATCH, "/v2/subscriptions/{id}", xc_handler_subs_update,
     "Update an NGSI subscription (top-level members)", "exchange", SUBS_BODY_MAX},
    {CORE_DELETE, "/v2/subscriptions/{id}", xc_handler_subs_delete, "Delete an NGSI subscription",
     "exchange", 0},
};

void xc_subs_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
