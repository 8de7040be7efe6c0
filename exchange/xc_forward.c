/*
 * The NGSI front over a town's own Orion: pass-through for the town's own
 * services, and agreement-shaped reads for other towns (see xc_forward.h).
 */
#include <ctype.h>

#include "core/log.h"
#include "core/strbuf.h"
#include "core/url.h"
#include "exchange/xc_cross.h"
#include "exchange/xc_forward.h"
#include "exchange/xc_upstream.h"

/* A path segment libcurl or the town's server could resolve into another
 * path than the one decided: ".", "..", or those spelled with %2e. */
static bool dot_segment(const char *s, size_t len)
{
    size_t dots = 0;
    for (size_t i = 0; i < len;) {
        if (s[i] == '.') {
            i++;
        } else if (len - i >= 3 && s[i] == '%' && s[i + 1] == '2' && (s[i + 2] | 0x20) == 'e') {
            i += 3;
        } else {
            return false;
        }
        dots++;
    }
    return dots == 1 || dots == 2;
}

/* Appends the request's path as it came (still percent-encoded, so an id
 * reaches the town's Orion exactly as the caller wrote it); false for a dot
 * segment or a byte that has no place in a URL path. */
static bool add_path(struct strbuf *out, const char *path)
{
    static const char ok[] = "-._~!$&'()*+,;=:@/%";
    for (const char *p = path; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!isalnum(c) && !strchr(ok, c))
            return false;
        if (c == '%' && !(isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])))
            return false;
    }
    for (const char *p = path; *p;) {
        size_t len = strcspn(p, "/");
        if (dot_segment(p, len))
            return false;
        p += len;
        if (*p == '/')
            p++;
    }
    strbuf_adds(out, path);
    return true;
}

static void add_arg(struct strbuf *out, const char *key, const char *value)
{
    strbuf_adds(out, strchr(out->buf ? out->buf : "", '?') ? "&" : "?");
    core_url_encode(out, key);
    if (value) {
        strbuf_adds(out, "=");
        core_url_encode(out, value);
    }
}

struct args {
    struct strbuf *out;
    const char *const *skip;
};

static void copy_arg(void *arg, const char *key, const char *value)
{
    struct args *a = arg;
    for (const char *const *s = a->skip; s && *s; s++)
        if (!strcmp(*s, key))
            return;
    add_arg(a->out, key, value);
}

/* Replies what the town's city OS answered: status, body and the headers
 * NGSI clients read. */
static void reply_upstream(struct core_req *req, const struct xc_up_resp *u, const char *body,
                           size_t len)
{
    if (u->total_count)
        core_reply_header(req, "Fiware-Total-Count", u->total_count);
    if (u->location)
        core_reply_header(req, "Location", u->location);
    if (u->status < 200 || (u->status >= 300 && u->status < 400) || u->status >= 500) {
        /* the town's server failed: the caller learns that, in NGSI's shape */
        core_reply_error(req, CORE_ERR_BAD_GATEWAY, "the town's city OS answered status %ld",
                         u->status);
        return;
    }
    unsigned status = (unsigned)u->status;
    if (len == 0 && (status == 204 || status == 201 || status == 304)) {
        core_reply_empty(req, status);
        return;
    }
    core_reply_bytes(req, status, u->content_type ? u->content_type : "application/json", body,
                     len);
}

static bool call(struct xc_ngsi *n, const char *path_query, const char *body, size_t body_len,
                 const char *content_type, struct xc_up_resp *out)
{
    struct core_req *req = n->req;
    const char *sp = core_req_header(req, "Fiware-ServicePath");
    struct xc_up_req r = {
        .tenant = n->tenant,
        .method = req->method,
        .path_query = path_query,
        .service_path = sp && *sp ? sp : NULL,
        .correlator = n->correlator,
        .request_id = req->request_id,
        .accept = core_req_header(req, "Accept"),
        .content_type = body ? content_type : NULL,
        .body = body,
        .body_len = body_len,
    };
    char err[300] = "";
    enum xc_up_rc rc = xc_upstream_call(req->pool, &r, out, err, sizeof err);
    if (rc != XC_UP_OK) {
        core_warn("city OS of %s: %s", n->tenant, err);
        xc_upstream_reply_error(req, n->tenant, rc, err);
        return false;
    }
    return true;
}

void xc_forward_raw(struct xc_ngsi *n)
{
    struct core_req *req = n->req;
    struct strbuf pq;
    strbuf_init(&pq, 64 * 1024);
    if (!add_path(&pq, req->path)) {
        strbuf_release(&pq);
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "the path cannot be forwarded as it is");
        return;
    }
    struct args a = {&pq, NULL};
    core_req_query_each(req, copy_arg, &a);
    if (pq.toobig) {
        strbuf_release(&pq);
        core_reply_error(req, CORE_ERR_URI_TOO_LONG, NULL);
        return;
    }
    struct xc_up_resp u;
    bool ok = call(n, pq.buf, req->body_len ? req->body : NULL, req->body_len,
                   core_req_header(req, "Content-Type"), &u);
    strbuf_release(&pq);
    if (ok)
        reply_upstream(req, &u, u.body, u.len);
}

/* ---- reads for another town ---- */

/* The attributes a reply may hold: what was asked (none or "*": all),
 * within the agreement's. NULL with *all set when nothing limits them. */
struct keep {
    bool all;
    const char **names;
    size_t n;
};

static void keep_of(struct core_pool *pool, const struct xc_render *r, struct keep *k)
{
    bool star = !r->attrs;
    for (size_t i = 0; r->attrs && i < r->nattrs; i++)
        star = star || !strcmp(r->attrs[i], "*");
    k->all = !r->restricted && star;
    k->names = NULL;
    k->n = 0;
    if (k->all)
        return;
    size_t cap = (r->restricted ? r->nallow : 0) + r->nattrs + 1;
    k->names = core_pcalloc(pool, cap * sizeof *k->names);
    if (!r->restricted) { /* only the request's list */
        for (size_t i = 0; i < r->nattrs; i++)
            k->names[k->n++] = r->attrs[i];
        return;
    }
    for (size_t i = 0; i < r->nallow; i++) {
        bool asked = star;
        for (size_t j = 0; !asked && j < r->nattrs; j++)
            asked = !strcmp(r->attrs[j], r->allow[i]);
        if (asked)
            k->names[k->n++] = r->allow[i];
    }
}

static bool kept(const struct keep *k, const char *name)
{
    if (k->all)
        return true;
    for (size_t i = 0; i < k->n; i++)
        if (!strcmp(k->names[i], name))
            return true;
    return false;
}

static bool type_agreed(const struct xc_ngsi *n, const char *type)
{
    for (size_t i = 0; i < n->nonly_types; i++)
        if (!strcmp(n->only_types[i], type))
            return true;
    return false;
}

/* Strips an entity object of what the agreement does not let through;
 * false when the entity's type is not agreed (drop it). */
static bool strip(const struct xc_ngsi *n, const struct keep *k, json_t *e, bool has_id)
{
    if (has_id) {
        const char *type = json_string_value(json_object_get(e, "type"));
        if (!type || !type_agreed(n, type))
            return false;
    }
    const char *key;
    json_t *v, *tmp;
    json_object_foreach_safe(e, tmp, key, v)
    {
        if (has_id && (!strcmp(key, "id") || !strcmp(key, "type")))
            continue;
        if (!kept(k, key))
            json_object_del(e, key);
    }
    return true;
}

/* True when entity e (normalized or keyValues) holds the resident's number. */
static bool residents(const struct xc_ngsi *n, const json_t *e)
{
    json_t *a = json_object_get(e, n->resident_attr);
    json_t *v = json_is_object(a) ? json_object_get(a, "value") : a;
    return json_is_string(v) && strcmp(json_string_value(v), n->resident_value) == 0;
}

static char *join(struct core_pool *pool, const char *const *v, size_t n)
{
    struct strbuf b;
    strbuf_init(&b, 64 * 1024);
    for (size_t i = 0; i < n; i++) {
        if (i)
            strbuf_adds(&b, ",");
        strbuf_adds(&b, v[i]);
    }
    char *out = core_pstrdup(pool, b.buf ? b.buf : "");
    strbuf_release(&b);
    return out;
}

/* The q condition that keeps a personal-data query to the resident's own
 * entities; NULL when the number cannot be written in q safely. */
static const char *resident_q(const struct xc_ngsi *n)
{
    if (strpbrk(n->resident_value, "'\\;") || strpbrk(n->resident_attr, "'\\;"))
        return NULL;
    return core_psprintf(n->req->pool, "%s=='%s'", n->resident_attr, n->resident_value);
}

void xc_forward_read(struct xc_ngsi *n, enum xc_fwd_kind kind, const struct xc_render *r,
                     json_t *body)
{
    struct core_req *req = n->req;
    struct keep k;
    keep_of(req->pool, r, &k);
    const char *rq = NULL;
    if (n->resident_attr && !(rq = resident_q(n))) {
        xc_cross_deny(n, XC_DENY_NOT_LINKED,
                      "the resident's number cannot be matched at the town's city OS");
        return;
    }
    if (n->resident_attr && (n->opts & (XC_OPT_VALUES | XC_OPT_UNIQUE))) {
        /* a bare list of values cannot be checked to be the resident's */
        xc_cross_deny(n, XC_DENY_ACTION,
                      "personal data from a town's own city OS comes as entities "
                      "(options=values and unique are not available)");
        return;
    }
    struct strbuf pq;
    strbuf_init(&pq, 64 * 1024);
    if (!add_path(&pq, req->path)) {
        strbuf_release(&pq);
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "the path cannot be forwarded as it is");
        return;
    }
    static const char *const list_skip[] = {"type", "attrs", "q", NULL};
    static const char *const one_skip[] = {"attrs", NULL};
    struct args a = {&pq, kind == XC_FWD_LIST ? list_skip : one_skip};
    core_req_query_each(req, copy_arg, &a);
    const char *user_q = core_req_query(req, "q");
    if (kind == XC_FWD_LIST && !body) {
        const char *types = core_req_query(req, "type");
        add_arg(&pq, "type", types ? types : join(req->pool, n->only_types, n->nonly_types));
        if (user_q || rq)
            add_arg(&pq, "q",
                    user_q && rq ? core_psprintf(req->pool, "%s;%s", user_q, rq)
                    : user_q     ? user_q
                                 : rq);
    }
    /* attrs: what may come back, in order (values and unique depend on it) */
    const char **send = k.names;
    size_t nsend = k.n;
    bool none = !k.all && k.n == 0;
    if (none) { /* nothing asked is agreed: ask for the agreed, return none */
        send = (const char **)r->allow;
        nsend = r->nallow;
    }
    if (n->resident_attr && !k.all) {
        /* the resident's number comes back too, to be checked (then dropped
         * unless asked for) */
        size_t i = 0;
        while (i < nsend && strcmp(send[i], n->resident_attr) != 0)
            i++;
        if (i == nsend) {
            const char **more = core_pcalloc(req->pool, (nsend + 1) * sizeof *more);
            if (nsend)
                memcpy(more, send, nsend * sizeof *more);
            more[nsend++] = n->resident_attr;
            send = more;
        }
    }
    if (!k.all && nsend)
        add_arg(&pq, "attrs", join(req->pool, send, nsend));
    char *text = NULL;
    if (body) {
        json_t *b = json_deep_copy(body);
        if (!k.all && nsend) {
            json_t *arr = json_array();
            for (size_t i = 0; i < nsend; i++)
                json_array_append_new(arr, json_string(send[i]));
            json_object_set_new(b, "attrs", arr);
        }
        if (rq) {
            json_t *expr = json_object_get(b, "expression");
            if (!expr) {
                expr = json_object();
                json_object_set_new(b, "expression", expr);
            }
            const char *q0 = json_string_value(json_object_get(expr, "q"));
            json_object_set_new(expr, "q",
                                json_string(q0 ? core_psprintf(req->pool, "%s;%s", q0, rq) : rq));
        }
        text = json_dumps(b, JSON_COMPACT);
        json_decref(b);
    }
    if (pq.toobig) {
        strbuf_release(&pq);
        free(text);
        core_reply_error(req, CORE_ERR_URI_TOO_LONG, NULL);
        return;
    }
    struct xc_up_resp u;
    bool ok = call(n, pq.buf, text, text ? strlen(text) : 0, "application/json", &u);
    strbuf_release(&pq);
    free(text);
    if (!ok)
        return;
    if (u.status < 200 || u.status >= 300) {
        /* Orion's own error (404, 400...) says nothing of other data; a
         * redirect or a failure becomes 502 in reply_upstream */
        reply_upstream(req, &u, u.body, u.len);
        return;
    }
    json_t *v = json_loadb(u.body, u.len, 0, NULL);
    bool values = n->opts & (XC_OPT_VALUES | XC_OPT_UNIQUE);
    long count = 0;
    if (kind == XC_FWD_LIST && json_is_array(v)) {
        json_t *out = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (n->resident_attr && !residents(n, e)) {
                json_decref(v);
                json_decref(out);
                core_error("the city OS of %s answered a personal-data query with another "
                           "resident's entity",
                           n->tenant);
                core_reply_error(req, CORE_ERR_BAD_GATEWAY,
                                 "the city OS of %s did not keep the query to the resident",
                                 n->tenant);
                return;
            }
            if (json_is_object(e) ? strip(n, &k, e, true) : json_is_array(e)) {
                json_array_append_new(out,
                                      none && json_is_array(e) ? json_array() : json_incref(e));
                count++;
            }
        }
        json_decref(v);
        v = out;
    } else if (kind == XC_FWD_ENTITY && json_is_object(v)) {
        if (!strip(n, &k, v, true)) {
            json_decref(v);
            core_reply_error(req, CORE_ERR_NOT_FOUND,
                             "The requested entity has not been found. Check type and id");
            return;
        }
        count = 1;
    } else if (kind != XC_FWD_LIST && values && json_is_array(v)) {
        if (none) {
            json_decref(v);
            v = json_array();
        }
        count = 1;
    } else if (kind == XC_FWD_ATTRS && json_is_object(v)) {
        strip(n, &k, v, false);
        count = 1;
    } else {
        json_decref(v);
        core_reply_error(req, CORE_ERR_BAD_GATEWAY,
                         "the city OS of %s answered with something that is not NGSI-v2",
                         n->tenant);
        return;
    }
    if (u.total_count)
        core_reply_header(req, "Fiware-Total-Count", u.total_count);
    xc_cross_entities(n, count);
    xc_reply_json(req, 200, v);
}
