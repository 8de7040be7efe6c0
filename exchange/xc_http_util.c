/* Request parameters and replies shared by the NGSI handlers. */
#include <strings.h>

#include "exchange/xc_cross.h"
#include "exchange/xc_http.h"

/* True when one media range of Accept admits type ("application/json"). */
static bool accept_has(const char *accept, const char *type)
{
    const char *slash = strchr(type, '/');
    size_t major = (size_t)(slash - type);
    const char *p = accept;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',' && *end != ';' && *end != ' ')
            end++;
        size_t len = (size_t)(end - p);
        if ((len == 3 && !strncmp(p, "*/*", 3)) ||
            (len == major + 2 && !strncasecmp(p, type, major + 1) && p[major + 1] == '*') ||
            (len == strlen(type) && !strncasecmp(p, type, len))) {
            /* a range with q=0 refuses the type */
            const char *next = strchr(end, ',');
            const char *q = strstr(end, "q=");
            if (q && (!next || q < next) && strtod(q + 2, NULL) == 0)
                goto next_range;
            return true;
        }
    next_range:
        p = strchr(end, ',');
        if (!p)
            break;
    }
    return false;
}

bool xc_accept(struct core_req *req, bool text_ok)
{
    const char *a = core_req_header(req, "Accept");
    if (!a || !*a || accept_has(a, "application/json") || (text_ok && accept_has(a, "text/plain")))
        return true;
    core_reply_error(req, CORE_ERR_NOT_ACCEPTABLE, "acceptable MIME types: application/json%s",
                     text_ok ? ", text/plain" : "");
    return false;
}

json_t *xc_body_json(struct core_req *req)
{
    if (!req->body || req->body_len == 0) {
        core_reply_error(req, CORE_ERR_CONTENT_LENGTH_REQUIRED,
                         "Zero/No Content-Length in PUT/POST/PATCH request");
        return NULL;
    }
    enum core_err code;
    const char *why;
    json_t *v = core_req_parse_json(req, &code, &why);
    if (!v) {
        if (code == CORE_ERR_UNSUPPORTED_MEDIA_TYPE) {
            const char *ct = core_req_header(req, "Content-Type");
            core_reply_error(req, code, "not supported content type: %s", ct ? ct : "(none)");
        } else {
            core_reply_error(req, code, "%s", why);
        }
    }
    return v;
}

bool xc_names_param(struct core_req *req, const char *param, size_t max, bool star_ok,
                    const char ***out, size_t *n)
{
    const char *s = core_req_query(req, param);
    *out = NULL;
    *n = 0;
    if (!s)
        return true;
    if (!xc_split_list(req->pool, s, max, out, n)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "Invalid value for URI param /%s/", param);
        return false;
    }
    for (size_t i = 0; i < *n; i++) {
        if (!(star_ok && strcmp((*out)[i], "*") == 0) && xc_check_name((*out)[i])) {
            core_reply_error(req, CORE_ERR_BAD_REQUEST, "invalid character in URI parameter");
            return false;
        }
    }
    return true;
}

bool xc_read_render(struct core_req *req, const struct xc_ngsi *n, struct xc_render *r)
{
    memset(r, 0, sizeof *r);
    const char **attrs, **md;
    if (!xc_names_param(req, "attrs", XC_LIST_MAX, true, &attrs, &r->nattrs) ||
        !xc_names_param(req, "metadata", XC_LIST_MAX, true, &md, &r->nmetadata))
        return false;
    r->attrs = attrs;
    r->metadata = md;
    r->format = (n->opts & XC_OPT_UNIQUE)      ? XC_UNIQUE
                : (n->opts & XC_OPT_VALUES)    ? XC_VALUES
                : (n->opts & XC_OPT_KEYVALUES) ? XC_KEYVALUES
                                               : XC_NORMALIZED;
    return true;
}

bool xc_read_page(struct core_req *req, long *limit, long *offset)
{
    const char *l = core_req_query(req, "limit"), *o = core_req_query(req, "offset");
    *limit = XC_LIMIT_DEFAULT;
    *offset = 0;
    if (l && !core_parse_long(l, 1, XC_LIMIT_MAX, limit)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST,
                         "Bad pagination limit: /%s/ [a maximum of 1000 entities are allowed]",
                         core_parse_long(l, 0, 0, limit) ? "0" : "invalid");
        return false;
    }
    if (o && !core_parse_long(o, 0, XC_OFFSET_MAX, offset)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST,
                         "Bad pagination offset: /%s/ [must be a decimal number from 0 to %d]",
                         "invalid", XC_OFFSET_MAX);
        return false;
    }
    return true;
}

bool xc_path_name(struct core_req *req, const char *param, const char *what, const char **out)
{
    *out = core_req_param(req, param);
    const char *why = xc_check_name(*out);
    if (why) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "Invalid characters in %s: %s", what, why);
        return false;
    }
    return true;
}

void xc_reply_query(struct core_req *req, const struct xc_ngsi *n, const struct xc_query *q,
                    const struct xc_render *r)
{
    struct xc_row *rows;
    size_t nrows;
    long total = -1;
    char err[300] = "";
    enum xc_rc rc = xc_store_query(n, q, &rows, &nrows, &total, err, sizeof err);
    if (rc != XC_OK) {
        xc_reply_rc(req, rc, err);
        return;
    }
    if (n->x)
        n->x->entities = (long)nrows;
    json_t *arr = json_array();
    for (size_t i = 0; i < nrows; i++)
        json_array_append_new(arr, xc_entity_render(rows[i].id, rows[i].type, rows[i].attrs,
                                                    rows[i].created, rows[i].modified, r));
    if (q->count)
        core_reply_header(req, "Fiware-Total-Count", core_psprintf(req->pool, "%ld", total));
    xc_reply_json(req, 200, arr);
}
