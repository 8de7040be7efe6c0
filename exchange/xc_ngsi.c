/*
 * The NGSI request context: correlator, token, tenant, service paths and
 * options, checked in the order Orion reports them so clients see the
 * errors they know.
 */
#include <ctype.h>

#include "core/crypto.h"
#include "core/log.h"
#include "exchange/xc_cross.h"
#include "exchange/xc_forward.h"
#include "exchange/xc_ngsi.h"
#include "tenants/tn.h"

#define CORRELATOR_MAX 128

static bool correlator_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CORRELATOR_MAX)
        return false;
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e)
            return false;
    return true;
}

const char *xc_correlator(struct core_req *req)
{
    const char *c = core_req_header(req, "Fiware-Correlator"), *out;
    if (c && correlator_ok(c)) {
        out = c;
    } else {
        /* Orion's correlators are UUIDs: a random one in that shape */
        unsigned char r[16];
        core_unique_id(r);
        r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
        r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
        char hex[33];
        core_hex(r, sizeof r, hex);
        out = core_psprintf(req->pool, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
                            hex + 16, hex + 20);
    }
    core_reply_header(req, "Fiware-Correlator", out);
    return out;
}

/* One service path: "/a/b" or "/a/#" (when hash_ok). Fills path/subtree, or
 * returns Orion's description of what is wrong. */
static const char *parse_path(struct core_pool *pool, const char *s, size_t len, bool hash_ok,
                              const char **path, bool *subtree)
{
    while (len && s[0] == ' ')
        s++, len--;
    while (len && s[len - 1] == ' ')
        len--;
    if (len == 0 || s[0] != '/')
        return "Only /absolute/ Service Paths allowed [a service path must begin with /]";
    *subtree = false;
    if (len >= 2 && s[len - 1] == '#' && s[len - 2] == '/') {
        if (!hash_ok)
            return "service path with wildcard /# is not allowed here";
        *subtree = true;
        len -= 2;
        if (len > 1 && s[len - 1] == '/') /* "/a//#" */
            return "empty component in ServicePath";
    }
    if (len >= 2 && s[len - 1] == '/' && s[len - 2] == '/') /* "//", "/a//" */
        return "empty component in ServicePath";
    if (len > 1 && s[len - 1] == '/')
        len--;
    size_t levels = 0, level_len = 0;
    for (size_t i = 1; i < len; i++) {
        char ch = s[i];
        if (ch == '/') {
            if (level_len == 0)
                return "empty component in ServicePath";
            level_len = 0;
            continue;
        }
        if (level_len == 0 && ++levels > XC_PATH_LEVELS)
            return "too many components in ServicePath";
        if (++level_len > XC_PATH_LEVEL_MAX)
            return "component-name too long in ServicePath";
        if (!isalnum((unsigned char)ch) && ch != '_')
            return "a component of ServicePath contains an illegal character";
    }
    *path = len <= 1 ? "/" : core_pstrndup(pool, s, len);
    return NULL;
}

const char *xc_service_paths_parse(struct core_pool *pool, const char *header,
                                   enum xc_access access, const char *paths[XC_PATHS_MAX],
                                   bool subtree[XC_PATHS_MAX], int *npaths)
{
    *npaths = 0;
    if (!header || !*header) {
        *npaths = 1;
        paths[0] = "/";
        subtree[0] = access == XC_READ; /* Orion: "/#" for queries, "/" for writes */
        return NULL;
    }
    const char *p = header;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (*npaths == XC_PATHS_MAX)
            return "too many service paths - a maximum of ten service paths is allowed";
        const char *why =
            parse_path(pool, p, len, access != XC_CREATE, &paths[*npaths], &subtree[*npaths]);
        if (why)
            return why;
        (*npaths)++;
        if (!comma)
            break;
        p = comma + 1;
    }
    if (access != XC_READ && *npaths > 1)
        return "more than one service path in context update request";
    return NULL;
}

static bool parse_paths(struct core_req *req, struct xc_ngsi *n, enum xc_access access)
{
    const char *why = xc_service_paths_parse(req->pool, core_req_header(req, "Fiware-ServicePath"),
                                             access, n->paths, n->subtree, &n->npaths);
    if (why) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", why);
        return false;
    }
    return true;
}

static const struct {
    const char *name;
    unsigned bit;
} options[] = {
    {"count", XC_OPT_COUNT},
    {"keyValues", XC_OPT_KEYVALUES},
    {"values", XC_OPT_VALUES},
    {"unique", XC_OPT_UNIQUE},
    {"append", XC_OPT_APPEND},
    {"upsert", XC_OPT_UPSERT},
    {"forcedUpdate", XC_OPT_FORCED_UPDATE},
    {"overwrite", XC_OPT_OVERWRITE},
    {"skipForwarding", XC_OPT_SKIP_FORWARDING},
};

static bool parse_options(struct core_req *req, struct xc_ngsi *n, unsigned allowed)
{
    n->opts = 0;
    const char *s = core_req_query(req, "options");
    if (!s)
        return true;
    const char **parts;
    size_t np;
    if (!xc_split_list(req->pool, s, 16, &parts, &np)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "Invalid value for URI param /options/");
        return false;
    }
    for (size_t i = 0; i < np; i++) {
        size_t k = 0;
        while (k < ARRAY_SIZE(options) && strcmp(options[k].name, parts[i]) != 0)
            k++;
        if (k == ARRAY_SIZE(options) || !(options[k].bit & allowed)) {
            core_reply_error(req, CORE_ERR_BAD_REQUEST, "Invalid value for URI param /options/");
            return false;
        }
        n->opts |= options[k].bit;
    }
    return true;
}

bool xc_ngsi_begin(struct core_req *req, struct xc_ngsi *n, enum xc_access access,
                   unsigned allowed_opts)
{
    memset(n, 0, sizeof *n);
    n->req = req;
    n->correlator = xc_correlator(req);
    n->p = core_auth(req);
    if (!n->p)
        return false;
    if (!n->p->tenant || !core_tenant_id_ok(n->p->tenant)) {
        core_reply_error(req, CORE_ERR_FORBIDDEN, "the token names no tenant");
        return false;
    }
    /* one of each: the hub reads the first of a repeated parameter, Orion
     * the last, so a town's own Orion could act on what was not decided */
    const char *rep = core_req_query_repeated(req);
    if (rep) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "URI parameter /%s/ is given more than once",
                         strncmp(rep, "(", 1) == 0 ? "(many)" : rep);
        return false;
    }
    /* one of each: two could be read differently by the hub and a proxy */
    static const char *const single[] = {"Fiware-Service", "Fiware-ServicePath", "Renkei-Purpose",
                                         "Renkei-Agreement"};
    for (size_t i = 0; i < ARRAY_SIZE(single); i++) {
        if (core_req_header_count(req, single[i]) > 1) {
            core_reply_error(req, CORE_ERR_BAD_REQUEST, "header %s is given more than once",
                             single[i]);
            return false;
        }
    }
    const char *svc = core_req_header(req, "Fiware-Service");
    if (svc && *svc) {
        size_t len = strlen(svc);
        char *lower = core_palloc(req->pool, len + 1);
        for (size_t i = 0; i <= len; i++)
            lower[i] = (char)tolower((unsigned char)svc[i]);
        /* Orion's own rule (alphanumerics and underscore, up to 50) with the
         * hub's tenant ids being lower case */
        if (!core_tenant_id_ok(lower)) {
            core_reply_error(req, CORE_ERR_BAD_REQUEST, "bad character in tenant name");
            return false;
        }
        n->tenant = lower;
    } else {
        n->tenant = n->p->tenant;
    }
    bool cross = strcmp(n->tenant, n->p->tenant) != 0;
    /* a resident's token speaks for one resident: it reaches another town's
     * data about that resident under an agreement, never a town's store */
    if (n->p->resident && !cross) {
        core_reply_error(req, CORE_ERR_FORBIDDEN,
                         "a resident's token does not act for the town: this API takes a "
                         "service's own token");
        return false;
    }
    const char *scope = access == XC_READ ? "ngsi.read" : "ngsi.write";
    if (!core_principal_has_scope(n->p, scope)) {
        core_auth_insufficient_scope(req, scope, NULL);
        return false;
    }
    if (cross) {
        /* from here every answer is a decision, audited; whether the
         * provider exists and is active is the policy's to say */
        xc_cross_begin(n);
        const char *rp = req->route ? req->route->pattern : "";
        if (!strncmp(rp, "/v2/subscriptions", 17) || !strncmp(rp, "/v2/registrations", 17)) {
            xc_cross_deny(n, XC_DENY_ACTION,
                          "subscriptions and registrations stay within a town: another town's "
                          "data is read through the entity routes under an agreement");
            return false;
        }
        struct tn_brief b;
        enum tn_rc rc = tn_brief(n->tenant, &b);
        if (rc == TN_UNAVAILABLE) {
            core_reply_error(req, CORE_ERR_DB_UNAVAILABLE, NULL);
            return false;
        }
        n->remote = rc == TN_OK && !b.hosted;
        return parse_paths(req, n, access) && parse_options(req, n, allowed_opts);
    }
    struct tn_brief b;
    enum tn_rc rc = tn_brief(n->tenant, &b);
    if (rc == TN_UNAVAILABLE) {
        core_reply_error(req, CORE_ERR_DB_UNAVAILABLE, NULL);
        return false;
    }
    if (rc != TN_OK) {
        core_reply_error(req, CORE_ERR_NOT_FOUND, "no town %s", n->tenant);
        return false;
    }
    if (b.state != TN_ACTIVE) {
        core_reply_error(req, CORE_ERR_FORBIDDEN, "town %s is suspended", n->tenant);
        return false;
    }
    if (!b.hosted) {
        /* the town's own Orion: the hub is its PEP proxy */
        n->remote = true;
        xc_forward_raw(n);
        return false;
    }
    return parse_paths(req, n, access) && parse_options(req, n, allowed_opts);
}

void xc_reply_json(struct core_req *req, unsigned status, json_t *body)
{
    size_t len = 0;
    char *text = core_json_dump(body, XC_REAL_PRECISION, &len);
    json_decref(body);
    if (!text) {
        core_log_bug("NGSI reply for %s %s cannot be serialized", req->method, req->path);
        core_reply_error(req, CORE_ERR_INTERNAL, NULL);
        return;
    }
    core_reply_owned(req, status, "application/json", text, len);
}

void xc_sql_paths(struct xc_sql *s, const struct xc_ngsi *n)
{
    xc_sql_add(s, "(");
    for (int i = 0; i < n->npaths; i++) {
        if (i)
            xc_sql_add(s, " OR ");
        if (n->subtree[i] && strcmp(n->paths[i], "/") == 0) {
            xc_sql_add(s, "true");
            continue;
        }
        xc_sql_add(s, "e.service_path = ");
        xc_sql_param(s, n->paths[i]);
        if (n->subtree[i]) {
            /* "_" is a LIKE wildcard and may appear in a path: escaped */
            struct strbuf like;
            strbuf_init(&like, 2 * strlen(n->paths[i]) + 4);
            for (const char *c = n->paths[i]; *c; c++) {
                if (*c == '_')
                    strbuf_adds(&like, "\\");
                strbuf_add(&like, c, 1);
            }
            strbuf_adds(&like, "/%");
            xc_sql_add(s, " OR e.service_path LIKE ");
            xc_sql_param(s, like.buf);
            strbuf_release(&like);
        }
    }
    xc_sql_add(s, ")");
    if (n->nonly_types) {
        xc_sql_add(s, " AND e.type IN (");
        for (size_t i = 0; i < n->nonly_types; i++) {
            if (i)
                xc_sql_add(s, ", ");
            xc_sql_param(s, n->only_types[i]);
        }
        xc_sql_add(s, ")");
    }
    if (n->resident_attr) {
        /* containment, so the attrs GIN index serves it */
        json_t *m = json_pack("{s:{s:s}}", n->resident_attr, "value", n->resident_value);
        char *text = json_dumps(m, JSON_COMPACT);
        json_decref(m);
        xc_sql_add(s, " AND e.attrs @> ");
        xc_sql_param(s, core_pstrdup(n->req->pool, text));
        xc_sql_add(s, "::jsonb");
        free(text);
    }
}

bool xc_has_forbidden(const char *s)
{
    for (; *s; s++)
        if (strchr("<>\"'=;()", *s))
            return true;
    return false;
}

const char *xc_check_name(const char *s)
{
    if (!s || !*s)
        return "empty";
    size_t n = 0;
    for (const char *c = s; *c; c++, n++) {
        unsigned char ch = (unsigned char)*c;
        if (ch <= 0x20 || ch >= 0x7f || strchr("&?/#<>\"'=;()", ch))
            return "forbidden characters";
    }
    if (n > XC_NAME_MAX)
        return "too long";
    return NULL;
}

bool xc_split_list(struct core_pool *pool, const char *s, size_t max, const char ***out, size_t *n)
{
    size_t count = 1;
    for (const char *c = s; *c; c++)
        count += *c == ',';
    *n = 0;
    if (count > max)
        return false;
    const char **v = core_palloc(pool, count * sizeof *v);
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0)
            return false;
        v[(*n)++] = core_pstrndup(pool, p, len);
        if (!comma)
            break;
        p = comma + 1;
    }
    *out = v;
    return true;
}
