/*
 * /v2/entities/{id}/attrs, /attrs/{name} and /attrs/{name}/value: read and
 * change an entity's attributes as Orion does (append, strict append,
 * update, replace; a single attribute; a bare value in JSON or text/plain).
 */
#include "exchange/xc_cross.h"
#include "exchange/xc_forward.h"
#include "exchange/xc_http.h"

#define NO_SUCH_ATTR "The entity does not have such an attribute"

bool xc_type_param(struct core_req *req, const char **type)
{
    *type = core_req_query(req, "type");
    if (*type && xc_check_name(*type)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "invalid character in URI parameter");
        return false;
    }
    return true;
}

void xc_reply_update(struct core_req *req, enum xc_rc rc, const char *err,
                     const struct xc_update *u)
{
    if (rc != XC_OK) {
        xc_reply_rc(req, rc, err);
        return;
    }
    if (u->res.nmissing == 0) {
        core_reply_empty(req, 204);
        return;
    }
    bool none = u->res.nmissing == json_object_size(u->attrs);
    const char *what = u->mode == XC_MERGE_APPEND_STRICT
                           ? "one or more of the attributes in the request already exist"
                           : "do not exist";
    core_reply_error(req, none ? CORE_ERR_UNPROCESSABLE : CORE_ERR_PARTIAL_UPDATE, "%s: %s - %s",
                     what, u->id, xc_name_list(req->pool, u->res.missing, u->res.nmissing));
}

static void get_attrs(struct core_req *req)
{
    struct xc_ngsi n;
    struct xc_render r;
    struct xc_row row;
    if (!xc_accept(req, false) ||
        !xc_ngsi_begin(req, &n, XC_READ, XC_OPT_KEYVALUES | XC_OPT_VALUES | XC_OPT_UNIQUE) ||
        !xc_read_render(req, &n, &r) || !xc_cross_read_one(&n, &r))
        return;
    if (n.remote) {
        xc_forward_read(&n, XC_FWD_ATTRS, &r, NULL);
        return;
    }
    if (!xc_one_entity(req, &n, &row))
        return;
    json_t *e = xc_entity_render(row.id, row.type, row.attrs, row.created, row.modified, &r);
    if (json_is_object(e)) {
        json_object_del(e, "id");
        json_object_del(e, "type");
    }
    xc_reply_json(req, 200, e);
}

/* POST (append), PATCH (update) and PUT (replace) of /attrs. */
static void change_attrs(struct core_req *req, enum xc_merge mode)
{
    struct xc_ngsi n;
    unsigned opts = XC_OPT_KEYVALUES | XC_OPT_FORCED_UPDATE | XC_OPT_OVERWRITE;
    if (mode == XC_MERGE_APPEND)
        opts |= XC_OPT_APPEND;
    const char *id, *type;
    if (!xc_ngsi_begin(req, &n, XC_WRITE, opts) || !xc_path_name(req, "id", "entity id", &id) ||
        !xc_type_param(req, &type))
        return;
    json_t *body = xc_body_json(req);
    if (!body)
        return;
    if (!json_is_object(body)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "the attributes must be a JSON object");
        return;
    }
    if (json_object_get(body, "id") || json_object_get(body, "type")) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST,
                         "entity id and type cannot be changed: leave them out of the body");
        return;
    }
    const char *why = NULL;
    json_t *attrs = xc_attrs_parse(body, n.opts & XC_OPT_KEYVALUES, &why);
    if (!attrs) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", why);
        return;
    }
    if (mode != XC_MERGE_REPLACE && json_object_size(attrs) == 0) {
        json_decref(attrs);
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "no attributes in the request");
        return;
    }
    if (n.x &&
        (!xc_cross_write(&n, type, attrs, false) ||
         (mode == XC_MERGE_REPLACE && !xc_cross_whole_entity(&n, "replacing every attribute")))) {
        json_decref(attrs);
        return;
    }
    if (n.remote) {
        json_decref(attrs);
        xc_forward_raw(&n);
        return;
    }
    if (mode == XC_MERGE_APPEND && (n.opts & XC_OPT_APPEND))
        mode = XC_MERGE_APPEND_STRICT;
    struct xc_update u = {.id = id,
                          .type = type,
                          .attrs = attrs,
                          .mode = mode,
                          .overwrite = n.opts & XC_OPT_OVERWRITE,
                          .forced = n.opts & XC_OPT_FORCED_UPDATE};
    char err[300] = "";
    enum xc_rc rc = xc_store_update(&n, &u, err, sizeof err);
    xc_reply_update(req, rc, err, &u);
    json_decref(attrs);
}

static void post_attrs(struct core_req *req)
{
    change_attrs(req, XC_MERGE_APPEND);
}

static void patch_attrs(struct core_req *req)
{
    change_attrs(req, XC_MERGE_UPDATE);
}

static void put_attrs(struct core_req *req)
{
    change_attrs(req, XC_MERGE_REPLACE);
}

static void get_attr(struct core_req *req)
{
    struct xc_ngsi n;
    struct xc_render r;
    struct xc_row row;
    const char *name;
    if (!xc_accept(req, false) || !xc_ngsi_begin(req, &n, XC_READ, 0) ||
        !xc_path_name(req, "name", "attribute name", &name) || !xc_read_render(req, &n, &r) ||
        !xc_cross_read_one(&n, NULL) || !xc_cross_attr(&n, name, NULL))
        return;
    if (n.remote) {
        xc_forward_raw(&n);
        return;
    }
    if (!xc_one_entity(req, &n, &row))
        return;
    const char *only[] = {name};
    r.attrs = only;
    r.nattrs = 1;
    r.format = XC_NORMALIZED;
    bool sys = !strcmp(name, "dateCreated") || !strcmp(name, "dateModified");
    json_t *e = xc_entity_render(row.id, row.type, row.attrs, row.created, row.modified, &r);
    json_t *a = sys || json_object_get(row.attrs, name) ? json_object_get(e, name) : NULL;
    if (!a) {
        json_decref(e);
        core_reply_error(req, CORE_ERR_NOT_FOUND, NO_SUCH_ATTR);
        return;
    }
    json_incref(a);
    json_decref(e);
    xc_reply_json(req, 200, a);
}

/* Changes one attribute (PUT attrs/{name}, PUT .../value, DELETE) after
 * checking it exists. */
static void change_one(struct core_req *req, struct xc_ngsi *n, const char *id, const char *type,
                       const char *name, json_t *attr, enum xc_merge mode)
{
    json_t *attrs = json_object();
    json_object_set_new(attrs, name, attr);
    if (n->x && !xc_cross_write(n, type, attrs, false)) {
        json_decref(attrs);
        return;
    }
    if (n->remote) {
        json_decref(attrs);
        xc_forward_raw(n);
        return;
    }
    struct xc_update u = {.id = id,
                          .type = type,
                          .attrs = attrs,
                          .mode = mode,
                          .overwrite = n->opts & XC_OPT_OVERWRITE,
                          .forced = n->opts & XC_OPT_FORCED_UPDATE};
    char err[300] = "";
    enum xc_rc rc = xc_store_update(n, &u, err, sizeof err);
    if (rc == XC_OK && u.res.nmissing)
        core_reply_error(req, CORE_ERR_NOT_FOUND, NO_SUCH_ATTR);
    else if (rc != XC_OK)
        xc_reply_rc(req, rc, err);
    else
        core_reply_empty(req, 204);
    json_decref(attrs);
}

static void put_attr(struct core_req *req)
{
    struct xc_ngsi n;
    const char *id, *type, *name;
    if (!xc_ngsi_begin(req, &n, XC_WRITE, XC_OPT_FORCED_UPDATE | XC_OPT_OVERWRITE) ||
        !xc_path_name(req, "id", "entity id", &id) ||
        !xc_path_name(req, "name", "attribute name", &name) || !xc_type_param(req, &type))
        return;
    json_t *body = xc_body_json(req);
    if (!body)
        return;
    const char *why = NULL;
    json_t *a = xc_attr_parse(body, false, &why);
    if (!a) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", why);
        return;
    }
    change_one(req, &n, id, type, name, a, XC_MERGE_UPDATE);
}

static void delete_attr(struct core_req *req)
{
    struct xc_ngsi n;
    const char *id, *type, *name;
    if (!xc_ngsi_begin(req, &n, XC_WRITE, 0) || !xc_path_name(req, "id", "entity id", &id) ||
        !xc_path_name(req, "name", "attribute name", &name) || !xc_type_param(req, &type))
        return;
    change_one(req, &n, id, type, name, json_null(), XC_MERGE_DELETE);
}

static void get_value(struct core_req *req)
{
    struct xc_ngsi n;
    struct xc_row row;
    const char *name;
    if (!xc_accept(req, true) || !xc_ngsi_begin(req, &n, XC_READ, 0) ||
        !xc_path_name(req, "name", "attribute name", &name) || !xc_cross_read_one(&n, NULL) ||
        !xc_cross_attr(&n, name, NULL))
        return;
    if (n.remote) {
        xc_forward_raw(&n);
        return;
    }
    if (!xc_one_entity(req, &n, &row))
        return;
    json_t *a = json_object_get(row.attrs, name);
    if (!a) {
        core_reply_error(req, CORE_ERR_NOT_FOUND, NO_SUCH_ATTR);
        return;
    }
    json_t *v = json_object_get(a, "value");
    if (json_is_object(v) || json_is_array(v)) {
        if (!xc_accept(req, false))
            return;
        xc_reply_json(req, 200, json_incref(v));
        return;
    }
    /* a simple value is text/plain, as Orion gives it (strings quoted) */
    const char *accept = core_req_header(req, "Accept");
    if (accept && !strstr(accept, "text/plain") && !strstr(accept, "*/*") &&
        !strstr(accept, "text/*")) {
        core_reply_error(req, CORE_ERR_NOT_ACCEPTABLE, "accepted MIME types: text/plain");
        return;
    }
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(XC_REAL_PRECISION));
    core_reply_bytes(req, 200, "text/plain", text, strlen(text));
    free(text);
}

/* A text/plain value as Orion reads one: a quoted string, a number, true,
 * false or null; anything else is refused. */
static json_t *text_value(const char *body, size_t len)
{
    json_t *v = json_loadb(body, len, JSON_DECODE_ANY, NULL);
    if (v && (json_is_object(v) || json_is_array(v))) {
        json_decref(v);
        return NULL;
    }
    return v;
}

static void put_value(struct core_req *req)
{
    struct xc_ngsi n;
    const char *id, *type, *name;
    if (!xc_ngsi_begin(req, &n, XC_WRITE, XC_OPT_FORCED_UPDATE) ||
        !xc_path_name(req, "id", "entity id", &id) ||
        !xc_path_name(req, "name", "attribute name", &name) || !xc_type_param(req, &type))
        return;
    const char *ct = core_req_header(req, "Content-Type");
    json_t *v;
    if (!req->body || req->body_len == 0) {
        core_reply_error(req, CORE_ERR_CONTENT_LENGTH_REQUIRED,
                         "Zero/No Content-Length in PUT/POST/PATCH request");
        return;
    }
    if (ct && !strncasecmp(ct, "text/plain", 10)) {
        v = text_value(req->body, req->body_len);
        if (!v) {
            core_reply_error(req, CORE_ERR_BAD_REQUEST,
                             "a text/plain value is a number, true, false, null or a string in "
                             "double quotes");
            return;
        }
    } else {
        json_t *body = xc_body_json(req);
        if (!body)
            return;
        v = json_incref(body);
    }
    /* the attribute keeps its type and metadata: merged under the row lock */
    json_t *in = json_pack("{s:o}", "value", v);
    const char *why = NULL;
    json_t *a = xc_attr_parse(in, false, &why);
    json_decref(in);
    if (!a) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", why);
        return;
    }
    change_one(req, &n, id, type, name, a, XC_MERGE_VALUE);
}

void xc_attrs_routes(struct core_router *r)
{
    static const struct core_route routes[] = {
        {CORE_GET, "/v2/entities/{id}/attrs", get_attrs, "NGSI-v2: an entity's attributes",
         "exchange", 0},
        {CORE_POST, "/v2/entities/{id}/attrs", post_attrs,
         "NGSI-v2: append attributes (options=append: only new ones)", "exchange", XC_BODY_MAX},
        {CORE_PATCH, "/v2/entities/{id}/attrs", patch_attrs, "NGSI-v2: update existing attributes",
         "exchange", XC_BODY_MAX},
        {CORE_PUT, "/v2/entities/{id}/attrs", put_attrs, "NGSI-v2: replace all attributes",
         "exchange", XC_BODY_MAX},
        {CORE_GET, "/v2/entities/{id}/attrs/{name}", get_attr, "NGSI-v2: one attribute", "exchange",
         0},
        {CORE_PUT, "/v2/entities/{id}/attrs/{name}", put_attr, "NGSI-v2: update one attribute",
         "exchange", XC_BODY_MAX},
        {CORE_DELETE, "/v2/entities/{id}/attrs/{name}", delete_attr,
         "NGSI-v2: remove one attribute", "exchange", 0},
        {CORE_GET, "/v2/entities/{id}/attrs/{name}/value", get_value,
         "NGSI-v2: an attribute's value (JSON or text/plain)", "exchange", 0},
        {CORE_PUT, "/v2/entities/{id}/attrs/{name}/value", put_value,
         "NGSI-v2: set an attribute's value (JSON or text/plain)", "exchange", XC_BODY_MAX},
    };
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
