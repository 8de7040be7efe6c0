/* The operator console: /admin, /admin/towns, /admin/clients,
 * /admin/agreements. What its pages share lives here; each page has its
 * own file (cn_admin_<page>.c). */
#include <stdlib.h>

#include "console/cn_admin.h"
#include "console/cn_internal.h"
#include "core/router.h"
#include "core/strbuf.h"

void cn_admin_routes(struct core_router *r)
{
    cn_admin_overview_routes(r);
    cn_admin_towns_routes(r);
    cn_admin_clients_routes(r);
    cn_admin_agreements_routes(r);
}

/* ---- towns for the selects and the matrix ---- */

void cn_admin_towns_free(struct tn_tenant *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tn_tenant_release(&list[i]);
    free(list);
}

enum tn_rc cn_admin_towns(const struct cn_ctx *ctx, struct tn_tenant **out, size_t *n, bool *more,
                          struct tn_result *res)
{
    /* one more than kept tells whether there are others */
    enum tn_rc rc = tn_list(ctx->context, NULL, CN_ADMIN_TOWNS_MAX + 1, out, n, res);
    *more = false;
    if (rc != TN_OK)
        return rc;
    if (*n > CN_ADMIN_TOWNS_MAX) {
        for (size_t i = CN_ADMIN_TOWNS_MAX; i < *n; i++)
            tn_tenant_release(&(*out)[i]);
        *n = CN_ADMIN_TOWNS_MAX;
        *more = true;
    }
    return TN_OK;
}

json_t *cn_admin_town_options(const struct tn_tenant *list, size_t n, const char *selected,
                              const char *skip)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (skip && strcmp(skip, list[i].id) == 0)
            continue;
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:b}", "id", list[i].id, "name", list[i].name,
                                        "selected", selected && strcmp(selected, list[i].id) == 0));
    }
    return arr;
}

const char *cn_admin_town_name(const struct tn_tenant *list, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].id, id) == 0)
            return list[i].name;
    return id;
}

char *cn_admin_join(struct core_req *req, char *const *v, size_t n)
{
    struct strbuf b;
    strbuf_init(&b, 16 * 1024);
    for (size_t i = 0; i < n; i++) {
        if (i)
            strbuf_adds(&b, ", ");
        strbuf_adds(&b, v[i]);
    }
    char *s = core_pstrdup(req->pool, b.buf ? b.buf : "");
    strbuf_release(&b);
    return s;
}

/* ---- notices and errors ---- */

void cn_admin_notice(struct core_req *req, const struct cn_ctx *ctx, json_t *vars,
                     const char *const *known)
{
    const char *done = core_req_query(req, "done");
    if (!done)
        return;
    for (const char *const *k = known; *k; k++) {
        if (strcmp(*k, done) != 0)
            continue;
        char key[64];
        xsnprintf(key, sizeof key, "admin.done.%s", *k);
        const char *text = cn_text(ctx->lang, key);
        if (text)
            json_object_set_new(vars, "notice", json_string(text));
        return;
    }
}

void cn_admin_set_error(json_t *vars, const struct cn_ctx *ctx, const char *key, const char *detail,
                        const char *field)
{
    const char *text = cn_text(ctx->lang, key);
    json_object_set_new(vars, "error", json_string(text ? text : key));
    if (detail && *detail) {
        json_t *d = json_string(detail); /* NULL when not UTF-8: then left out */
        if (d)
            json_object_set_new(vars, "error_detail", d);
    }
    if (field)
        json_object_set_new(vars, "invalid", json_pack("{s:b}", field, true));
}

unsigned cn_admin_tn_status(enum tn_rc rc, const char **key)
{
    switch (rc) {
    case TN_NOT_FOUND:
        *key = "admin.error.not_found";
        return 404;
    case TN_EXISTS:
        *key = "admin.error.conflict";
        return 409;
    case TN_BAD_PARENT:
    case TN_CYCLE:
        *key = "admin.error.invalid";
        return 400;
    case TN_FORBIDDEN:
        *key = "admin.error.forbidden";
        return 403;
    case TN_CONFLICT:
        *key = "admin.error.stale";
        return 412;
    case TN_OK:
    case TN_UNAVAILABLE:
    case TN_ERROR:
        break;
    }
    return 0;
}

unsigned cn_admin_az_status(enum az_rc rc, const char **key)
{
    switch (rc) {
    case AZ_NOT_FOUND:
        *key = "admin.error.not_found";
        return 404;
    case AZ_INVALID:
        *key = "admin.error.invalid";
        return 400;
    case AZ_FORBIDDEN:
        *key = "admin.error.forbidden";
        return 403;
    case AZ_CONFLICT:
        *key = "admin.error.conflict";
        return 409;
    case AZ_OK:
    case AZ_UNAVAILABLE:
    case AZ_ERROR:
        break;
    }
    return 0;
}

unsigned cn_admin_xc_status(enum xc_ag_rc rc, const char **key)
{
    switch (rc) {
    case XC_AG_NOT_FOUND:
        *key = "admin.error.not_found";
        return 404;
    case XC_AG_INVALID:
        *key = "admin.error.invalid";
        return 400;
    case XC_AG_FORBIDDEN:
        *key = "admin.error.forbidden";
        return 403;
    case XC_AG_CONFLICT:
        *key = "admin.error.transition";
        return 409;
    case XC_AG_STALE:
        *key = "admin.error.stale";
        return 412;
    case XC_AG_OK:
    case XC_AG_UNAVAILABLE:
    case XC_AG_ERROR:
        break;
    }
    return 0;
}

void cn_admin_fail(struct core_req *req, const struct cn_ctx *ctx, bool unavailable)
{
    if (unavailable) {
        core_reply_header(req, "Retry-After", "5");
        cn_error(req, ctx, 503, "console.error.unavailable", NULL);
    } else {
        cn_error(req, ctx, 500, "console.error.internal", NULL);
    }
}

bool cn_admin_int(const char *s, long min, long max, long *out)
{
    return s && core_parse_long(s, min, max, out);
}
