/*
 * Batch operations: POST /v2/op/update (append, appendStrict, update,
 * delete, replace over a list of entities; each applied on its own, as
 * Orion does, with failures reported together) and POST /v2/op/query.
 */
#include "exchange/xc_cross.h"
#include "exchange/xc_forward.h"
#include "exchange/xc_geo.h"
#include "exchange/xc_http.h"

static const struct {
    const char *name;
    enum xc_merge mode;
    bool create;
} actions[] = {
    {"append", XC_MERGE_APPEND, true},  {"appendStrict", XC_MERGE_APPEND_STRICT, true},
    {"update", XC_MERGE_UPDATE, false}, {"replace", XC_MERGE_REPLACE, false},
    {"delete", XC_MERGE_DELETE, false},
};

struct batch_item {
    const char *id, *type;
    json_t *attrs;
};

static void items_free(void *p)
{
    struct batch_item *it = p;
    for (; it->id; it++)
        json_decref(it->attrs);
}

/* A batch into another town: one decision over every type it names, then
 * each entity's attributes. */
static bool cross_batch(struct xc_ngsi *n, const struct batch_item *items, size_t count,
                        bool create, enum xc_merge mode)
{
    const char **types = core_pcalloc(n->req->pool, (count + 1) * sizeof *types);
    size_t nt = 0;
    bool untyped = false;
    for (size_t i = 0; i < count; i++) {
        const char *t = items[i].type ? items[i].type : create ? "Thing" : NULL;
        if (!t) {
            untyped = true;
            continue;
        }
        size_t j = 0;
        while (j < nt && strcmp(types[j], t) != 0)
            j++;
        if (j == nt)
            types[nt++] = t;
    }
    if (n->remote && untyped) {
        xc_cross_deny(n, XC_DENY_TYPE,
                      "a batch into a town's own city OS names every entity's type, so it cannot "
                      "reach a type the agreement does not cover");
        return false;
    }
    if (!xc_cross_decide(n, XC_AG_WRITE, types, nt))
        return false;
    for (size_t i = 0; i < count; i++) {
        /* replace drops the attributes not given; delete without attributes
         * drops the entity: both reach attributes beyond an agreement's */
        if (mode == XC_MERGE_REPLACE &&
            !xc_cross_whole_entity(n, "replacing every attribute of an entity"))
            return false;
        if (mode == XC_MERGE_DELETE && json_object_size(items[i].attrs) == 0 &&
            !xc_cross_whole_entity(n, "deleting an entity"))
            return false;
        if (!xc_cross_write_attrs(n, items[i].attrs, create))
            return false;
    }
    return true;
}

static void op_update(struct core_req *req)
{
    struct xc_ngsi n;
    if (!xc_accept(req, false) ||
        !xc_ngsi_begin(req, &n, XC_WRITE,
                       XC_OPT_KEYVALUES | XC_OPT_FORCED_UPDATE | XC_OPT_OVERWRITE))
        return;
    json_t *body = xc_body_json(req);
    if (!body)
        return;
    static const char *const members[] = {"actionType", "entities", NULL};
    if (!core_req_json_members(req, body, members))
        return;
    const char *action = json_string_value(json_object_get(body, "actionType"));
    json_t *ents = json_object_get(body, "entities");
    size_t k = 0;
    while (action && k < ARRAY_SIZE(actions) && strcmp(actions[k].name, action) != 0)
        k++;
    if (!action || k == ARRAY_SIZE(actions)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "invalid update action type: %s",
                         action ? action : "(missing)");
        return;
    }
    if (!json_is_array(ents) || json_array_size(ents) == 0) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "entities must be a non-empty JSON array");
        return;
    }
    if (json_array_size(ents) > XC_BATCH_MAX) {
        core_reply_error(req, CORE_ERR_BODY_TOO_LARGE, "at most %d entities in one batch",
                         XC_BATCH_MAX);
        return;
    }
    /* everything is checked before anything is applied */
    size_t count = json_array_size(ents);
    struct batch_item *items = core_pcalloc(req->pool, (count + 1) * sizeof *items);
    core_pool_cleanup(req->pool, items_free, items);
    for (size_t i = 0; i < count; i++) {
        const char *why = NULL;
        json_t *e = json_array_get(ents, i);
        bool kv = n.opts & XC_OPT_KEYVALUES;
        if (!xc_entity_parse(e, kv, &items[i].id, &items[i].type, &items[i].attrs, &why)) {
            items[i].id = NULL;
            core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", why);
            return;
        }
        /* a bad location is the request's fault, found before anything is applied */
        char *geojson = NULL;
        char gerr[300] = "";
        enum xc_geo_rc grc = xc_geo_location(items[i].attrs, &geojson, gerr, sizeof gerr);
        free(geojson);
        if (grc == XC_GEO_BAD || grc == XC_GEO_TOO_MANY) {
            core_reply_error(req, grc == XC_GEO_BAD ? CORE_ERR_BAD_REQUEST : CORE_ERR_NO_RESOURCES,
                             "%s", gerr);
            return;
        }
    }
    if (n.x && !cross_batch(&n, items, count, actions[k].create, actions[k].mode))
        return;
    if (n.remote) {
        xc_forward_raw(&n);
        return;
    }
    if (actions[k].create && n.subtree[0]) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST,
                         "service path with wildcard /# is not allowed here");
        return;
    }
    /* one transaction for the whole batch (one commit, not one per entity);
     * an entity that cannot be applied is reported and the rest go on */
    struct xc_batch_item *bi = core_pcalloc(req->pool, (count + 1) * sizeof *bi);
    struct xc_update *us = core_pcalloc(req->pool, (count + 1) * sizeof *us);
    struct xc_create *cs = core_pcalloc(req->pool, (count + 1) * sizeof *cs);
    for (size_t i = 0; i < count; i++) {
        struct batch_item *it = &items[i];
        us[i] = (struct xc_update){.id = it->id,
                                   .type = it->type,
                                   .attrs = it->attrs,
                                   .mode = actions[k].mode,
                                   .overwrite = n.opts & XC_OPT_OVERWRITE,
                                   .forced = n.opts & XC_OPT_FORCED_UPDATE};
        if (actions[k].mode == XC_MERGE_DELETE && json_object_size(it->attrs) == 0)
            us[i].delete_entity = true;
        if (actions[k].create) {
            cs[i] = (struct xc_create){.id = it->id,
                                       .type = it->type,
                                       .attrs = it->attrs,
                                       .upsert = true,
                                       .mode = actions[k].mode,
                                       .overwrite = us[i].overwrite,
                                       .forced = us[i].forced};
            bi[i].cr = &cs[i];
        } else {
            bi[i].u = &us[i];
        }
    }
    char err[300] = "";
    enum xc_rc brc = xc_store_batch(&n, bi, count, err, sizeof err);
    if (brc != XC_OK) {
        xc_reply_rc(req, brc, err);
        return;
    }
    struct strbuf failed;
    strbuf_init(&failed, 64 * 1024);
    size_t nfailed = 0, nnotfound = 0;
    for (size_t i = 0; i < count; i++) {
        enum xc_rc rc = bi[i].rc;
        const struct xc_merge_result *res = bi[i].cr ? &cs[i].res : &us[i].res;
        if (rc == XC_OK && res->nmissing == 0)
            continue;
        nfailed++;
        if (rc == XC_NOT_FOUND)
            nnotfound++;
        strbuf_addf(&failed, "%s%s - %s", failed.len ? ", " : "", items[i].id,
                    rc == XC_OK          ? xc_name_list(req->pool, res->missing, res->nmissing)
                    : rc == XC_NOT_FOUND ? "[entity itself]"
                    : bi[i].why[0]       ? bi[i].why
                                         : "cannot be applied");
    }
    const char *list = failed.buf ? failed.buf : "";
    if (nfailed == 0) {
        core_reply_empty(req, 204);
    } else if (nfailed == count && nnotfound == count) {
        core_reply_error(req, CORE_ERR_NOT_FOUND, "do not exist: %s", list);
    } else {
        core_reply_error(req, nfailed == count ? CORE_ERR_UNPROCESSABLE : CORE_ERR_PARTIAL_UPDATE,
                         "%s: %s",
                         actions[k].mode == XC_MERGE_APPEND_STRICT ? "one or more of the "
                                                                     "attributes in the request "
                                                                     "already exist"
                                                                   : "do not exist",
                         list);
    }
    strbuf_release(&failed);
}

/* A JSON array of names (attrs, metadata) as a list; false once 400 is queued. */
static bool json_names(struct core_req *req, json_t *v, const char *what, const char ***out,
                       size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!v)
        return true;
    if (!json_is_array(v) || json_array_size(v) > XC_LIST_MAX) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s must be an array of at most %d names", what,
                         XC_LIST_MAX);
        return false;
    }
    const char **list = core_palloc(req->pool, (json_array_size(v) + 1) * sizeof *list);
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x)
    {
        const char *s = json_string_value(x);
        if (!s || (strcmp(s, "*") != 0 && xc_check_name(s))) {
            core_reply_error(req, CORE_ERR_BAD_REQUEST, "invalid name in %s", what);
            return false;
        }
        list[i] = s;
    }
    /* an empty list means every name, as no list does */
    *out = json_array_size(v) ? list : NULL;
    *n = json_array_size(v);
    return true;
}

static bool opt_string(struct core_req *req, json_t *obj, const char *key, const char **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v)
        return true;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 65536) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s must be a non-empty string", key);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static void op_query(struct core_req *req)
{
    struct xc_ngsi n;
    if (!xc_accept(req, false) || !xc_ngsi_begin(req, &n, XC_READ,
                                                 XC_OPT_COUNT | XC_OPT_KEYVALUES | XC_OPT_VALUES |
                                                     XC_OPT_UNIQUE | XC_OPT_SKIP_FORWARDING))
        return;
    json_t *body = xc_body_json(req);
    if (!body)
        return;
    static const char *const members[] = {"entities", "attrs", "expression", "metadata", NULL};
    if (!core_req_json_members(req, body, members))
        return;
    struct xc_render r;
    struct xc_query q = {.count = n.opts & XC_OPT_COUNT};
    if (!xc_read_render(req, &n, &r) || !xc_read_page(req, &q.limit, &q.offset))
        return;
    const char **attrs, **md;
    if (!json_names(req, json_object_get(body, "attrs"), "attrs", &attrs, &r.nattrs) ||
        !json_names(req, json_object_get(body, "metadata"), "metadata", &md, &r.nmetadata))
        return;
    r.attrs = attrs;
    r.metadata = md;
    json_t *ents = json_object_get(body, "entities");
    if (ents && (!json_is_array(ents) || json_array_size(ents) > XC_LIST_MAX)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "entities must be an array of at most %d",
                         XC_LIST_MAX);
        return;
    }
    size_t ns = ents ? json_array_size(ents) : 0;
    struct xc_selector *sel = core_pcalloc(req->pool, (ns + 1) * sizeof *sel);
    for (size_t i = 0; i < ns; i++) {
        json_t *e = json_array_get(ents, i);
        static const char *const keys[] = {"id", "idPattern", "type", "typePattern", NULL};
        if (!core_req_json_members(req, e, keys))
            return;
        const char *id, *type;
        if (!opt_string(req, e, "id", &id) ||
            !opt_string(req, e, "idPattern", &sel[i].id_pattern) ||
            !opt_string(req, e, "type", &type) ||
            !opt_string(req, e, "typePattern", &sel[i].type_pattern))
            return;
        if ((id && sel[i].id_pattern) || (type && sel[i].type_pattern)) {
            core_reply_error(
                req, CORE_ERR_BAD_REQUEST,
                "an entity is given by id or idPattern, type or typePattern, not both");
            return;
        }
        if ((id && xc_check_name(id)) || (type && xc_check_name(type))) {
            core_reply_error(req, CORE_ERR_BAD_REQUEST, "Invalid characters in entity id or type");
            return;
        }
        if (id) {
            const char **one = core_palloc(req->pool, sizeof *one);
            one[0] = id;
            sel[i].ids = one;
            sel[i].nids = 1;
        }
        if (type) {
            const char **one = core_palloc(req->pool, sizeof *one);
            one[0] = type;
            sel[i].types = one;
            sel[i].ntypes = 1;
        }
    }
    q.sel = sel;
    q.nsel = ns;
    const char **qtypes = core_pcalloc(req->pool, (ns + 1) * sizeof *qtypes);
    size_t nqtypes = 0;
    bool untyped = ns == 0, pattern = false;
    for (size_t i = 0; i < ns; i++) {
        if (sel[i].ntypes)
            qtypes[nqtypes++] = sel[i].types[0];
        else
            untyped = true;
        pattern = pattern || sel[i].type_pattern;
    }
    json_t *expr = json_object_get(body, "expression");
    if (expr) {
        static const char *const keys[] = {"q", "mq", "georel", "geometry", "coords", NULL};
        if (!core_req_json_members(req, expr, keys) || !opt_string(req, expr, "q", &q.q) ||
            !opt_string(req, expr, "mq", &q.mq) || !opt_string(req, expr, "georel", &q.georel) ||
            !opt_string(req, expr, "geometry", &q.geometry) ||
            !opt_string(req, expr, "coords", &q.coords))
            return;
    }
    const char *ob = core_req_query(req, "orderBy");
    if (ob) {
        const char **order;
        if (!xc_split_list(req->pool, ob, XC_LIST_MAX, &order, &q.norder)) {
            core_reply_error(req, CORE_ERR_BAD_REQUEST, "Invalid value for URI param /orderBy/");
            return;
        }
        q.order_by = order;
    }
    if (n.x) {
        if (n.remote && (untyped || pattern)) {
            xc_cross_deny(&n, XC_DENY_TYPE,
                          "a query of a town's own city OS names the type of every entity "
                          "selector, so it cannot reach a type the agreement does not cover");
            return;
        }
        n.listing = true;
        if (!xc_cross_decide(&n, XC_AG_READ, qtypes, nqtypes) || !xc_cross_query(&n, &q))
            return;
        xc_cross_render(&n, &r);
        if (n.remote) {
            xc_forward_read(&n, XC_FWD_LIST, &r, body);
            return;
        }
    }
    xc_reply_query(req, &n, &q, &r);
}

void xc_op_routes(struct core_router *r)
{
    static const struct core_route routes[] = {
        {CORE_POST, "/v2/op/update", op_update,
         "NGSI-v2: batch append, appendStrict, update, replace or delete", "exchange", XC_BODY_MAX},
        {CORE_POST, "/v2/op/query", op_query, "NGSI-v2: batch query", "exchange", XC_BODY_MAX},
    };
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
