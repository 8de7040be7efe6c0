/*
 * /v2/entities and /v2/entities/{id}: list with filters, create, read one,
 * delete. Query parameters and errors follow Orion's manual.
 */
#include "exchange/xc_cross.h"
#include "exchange/xc_forward.h"
#include "exchange/xc_http.h"

#define ALL_READ_OPTS                                                                              \
    (XC_OPT_COUNT | XC_OPT_KEYVALUES | XC_OPT_VALUES | XC_OPT_UNIQUE | XC_OPT_SKIP_FORWARDING)

static bool text_param(struct core_req *req, const char *name, size_t max, const char **out)
{
    *out = core_req_query(req, name);
    if (*out && (!**out || strlen(*out) > max)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "Empty or too long URI param /%s/", name);
        return false;
    }
    return true;
}

static void get_entities(struct core_req *req)
{
    struct xc_ngsi n;
    if (!xc_accept(req, false) || !xc_ngsi_begin(req, &n, XC_READ, ALL_READ_OPTS))
        return;
    struct xc_render r;
    struct xc_selector sel = {0};
    struct xc_query q = {.sel = &sel, .nsel = 1, .count = n.opts & XC_OPT_COUNT};
    const char **ids, **types, **order;
    size_t nids, ntypes, norder;
    if (!xc_read_render(req, &n, &r) || !xc_read_page(req, &q.limit, &q.offset) ||
        !xc_names_param(req, "id", XC_IDS_MAX, false, &ids, &nids) ||
        !xc_names_param(req, "type", XC_LIST_MAX, false, &types, &ntypes) ||
        !text_param(req, "idPattern", XC_PATTERN_MAX, &sel.id_pattern) ||
        !text_param(req, "typePattern", XC_PATTERN_MAX, &sel.type_pattern) ||
        !text_param(req, "q", 8192, &q.q) || !text_param(req, "mq", 8192, &q.mq) ||
        !text_param(req, "georel", 1024, &q.georel) ||
        !text_param(req, "geometry", 64, &q.geometry) ||
        !text_param(req, "coords", 65536, &q.coords))
        return;
    const char *ob = core_req_query(req, "orderBy");
    if (ob && !xc_split_list(req->pool, ob, XC_LIST_MAX, &order, &norder)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "Invalid value for URI param /orderBy/");
        return;
    }
    if (ob) {
        q.order_by = order;
        q.norder = norder;
    }
    if (nids && sel.id_pattern) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "Incompatible parameters: id, IdPattern");
        return;
    }
    if (ntypes && sel.type_pattern) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "Incompatible parameters: type, typePattern");
        return;
    }
    sel.ids = ids;
    sel.nids = nids;
    sel.types = types;
    sel.ntypes = ntypes;
    if (n.x) {
        if (n.remote && sel.type_pattern) {
            xc_cross_deny(&n, XC_DENY_TYPE,
                          "typePattern cannot be narrowed to the agreed types at a town's own "
                          "city OS: name the types");
            return;
        }
        n.listing = true;
        if (!xc_cross_decide(&n, XC_AG_READ, types, ntypes) || !xc_cross_query(&n, &q))
            return;
        xc_cross_render(&n, &r);
        if (n.remote) {
            xc_forward_read(&n, XC_FWD_LIST, &r, NULL);
            return;
        }
    }
    xc_reply_query(req, &n, &q, &r);
}

static void post_entities(struct core_req *req)
{
    struct xc_ngsi n;
    if (!xc_accept(req, false) ||
        !xc_ngsi_begin(req, &n, XC_CREATE, XC_OPT_KEYVALUES | XC_OPT_UPSERT))
        return;
    json_t *body = xc_body_json(req);
    if (!body)
        return;
    const char *id, *type, *why = NULL;
    json_t *attrs;
    if (!xc_entity_parse(body, n.opts & XC_OPT_KEYVALUES, &id, &type, &attrs, &why)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", why);
        return;
    }
    if (n.x && !xc_cross_write(&n, type ? type : "Thing", attrs, true)) {
        json_decref(attrs);
        return;
    }
    if (n.remote) {
        json_decref(attrs);
        xc_forward_raw(&n);
        return;
    }
    char err[300] = "";
    struct xc_create cr = {.id = id,
                           .type = type,
                           .attrs = attrs,
                           .upsert = n.opts & XC_OPT_UPSERT,
                           .mode = XC_MERGE_APPEND};
    enum xc_rc rc = xc_store_create(&n, &cr, err, sizeof err);
    json_decref(attrs);
    if (rc != XC_OK) {
        xc_reply_rc(req, rc, err);
        return;
    }
    if (!cr.created) { /* an upsert that updated */
        core_reply_empty(req, 204);
        return;
    }
    core_reply_header(
        req, "Location",
        core_psprintf(req->pool, "/v2/entities/%s?type=%s", id, type ? type : "Thing"));
    core_reply_empty(req, 201);
}

bool xc_one_entity(struct core_req *req, const struct xc_ngsi *n, struct xc_row *out)
{
    const char *id, *type = NULL;
    if (!xc_path_name(req, "id", "entity id", &id) || !text_param(req, "type", XC_NAME_MAX, &type))
        return false;
    if (type && xc_check_name(type)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "invalid character in URI parameter");
        return false;
    }
    struct xc_selector sel = {
        .ids = &id, .nids = 1, .types = type ? &type : NULL, .ntypes = type ? 1 : 0};
    struct xc_query q = {.sel = &sel, .nsel = 1, .limit = 2};
    struct xc_row *rows;
    size_t nrows;
    char err[300] = "";
    enum xc_rc rc = xc_store_query(n, &q, &rows, &nrows, NULL, err, sizeof err);
    if (rc == XC_OK && nrows != 1)
        rc = nrows ? XC_TOO_MANY : XC_NOT_FOUND;
    if (rc != XC_OK) {
        xc_reply_rc(req, rc, err);
        return false;
    }
    *out = rows[0];
    return true;
}

static void get_entity(struct core_req *req)
{
    struct xc_ngsi n;
    struct xc_render r;
    struct xc_row row;
    if (!xc_accept(req, false) ||
        !xc_ngsi_begin(req, &n, XC_READ,
                       XC_OPT_KEYVALUES | XC_OPT_VALUES | XC_OPT_UNIQUE | XC_OPT_SKIP_FORWARDING) ||
        !xc_read_render(req, &n, &r) || !xc_cross_read_one(&n, &r))
        return;
    if (n.remote) {
        xc_forward_read(&n, XC_FWD_ENTITY, &r, NULL);
        return;
    }
    if (!xc_one_entity(req, &n, &row))
        return;
    xc_reply_json(req, 200,
                  xc_entity_render(row.id, row.type, row.attrs, row.created, row.modified, &r));
}

static void delete_entity(struct core_req *req)
{
    struct xc_ngsi n;
    const char *id, *type;
    if (!xc_ngsi_begin(req, &n, XC_WRITE, 0) || !xc_path_name(req, "id", "entity id", &id) ||
        !text_param(req, "type", XC_NAME_MAX, &type))
        return;
    if (n.x && (!xc_cross_write(&n, type, NULL, false) ||
                !xc_cross_whole_entity(&n, "deleting the entity")))
        return;
    if (n.remote) {
        xc_forward_raw(&n);
        return;
    }
    struct xc_update u = {.id = id, .type = type, .delete_entity = true};
    char err[300] = "";
    enum xc_rc rc = xc_store_update(&n, &u, err, sizeof err);
    if (rc != XC_OK) {
        xc_reply_rc(req, rc, err);
        return;
    }
    core_reply_empty(req, 204);
}

void xc_entities_routes(struct core_router *r)
{
    static const struct core_route routes[] = {
        {CORE_GET, "/v2/entities", get_entities, "NGSI-v2: list entities (filters, geo, order)",
         "exchange", 0},
        {CORE_POST, "/v2/entities", post_entities, "NGSI-v2: create an entity", "exchange",
         XC_BODY_MAX},
        {CORE_GET, "/v2/entities/{id}", get_entity, "NGSI-v2: read an entity", "exchange", 0},
        {CORE_DELETE, "/v2/entities/{id}", delete_entity, "NGSI-v2: delete an entity", "exchange",
         0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
