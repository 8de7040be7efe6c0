/* /admin/clients: service IDs (OAuth clients) of the towns. The platform
 * sees every town's (or one town's, ?tenant=); a town's administrator its
 * own town's. Creating a client and rotating its secret answer with the
 * secret on the POST's own page, once: it is stored only as a keyed hash,
 * never put in a URL or a log, and the page is not cached. */
#include <stdlib.h>

#include <openssl/crypto.h>

#include "authz/az_page.h"
#include "console/cn_admin.h"
#include "core/router.h"
#include "core/strbuf.h"
#include "core/url.h"

#define LIST_MAX     500
#define REDIRECT_MAX 20 /* redirect URIs of one client, as the registry allows */

struct grant {
    const char *field; /* the form's checkbox */
    const char *value;
};
static const struct grant grants[] = {
    {"grant_client_credentials", "client_credentials"},
    {"grant_authorization_code", "authorization_code"},
    {"grant_refresh_token", "refresh_token"},
    {"grant_token_exchange", AZ_GRANT_TOKEN_EXCHANGE},
};

static const char *const done_keys[] = {"disabled", "enabled", NULL};

/* ?tenant= of the list (or a form's "filter"), checked: NULL when none. */
static const char *filter_of(const char *s, bool *bad)
{
    *bad = false;
    if (!s || !*s)
        return NULL;
    if (!core_tenant_id_ok(s)) {
        *bad = true;
        return NULL;
    }
    return s;
}

static const char *list_url(struct core_req *req, const char *filter, const char *done)
{
    struct strbuf b;
    strbuf_init(&b, 512);
    strbuf_adds(&b, "/admin/clients");
    char sep = '?';
    if (filter) {
        strbuf_addf(&b, "%ctenant=%s", sep, filter); /* a tenant id needs no escaping */
        sep = '&';
    }
    if (done)
        strbuf_addf(&b, "%cdone=%s", sep, done);
    const char *url = core_pstrdup(req->pool, b.buf);
    strbuf_release(&b);
    return url;
}

static char *joined(struct core_req *req, json_t *arr)
{
    struct strbuf b;
    strbuf_init(&b, 16 * 1024);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (i)
            strbuf_adds(&b, " ");
        strbuf_adds(&b, json_string_value(v) ? json_string_value(v) : "");
    }
    char *s = core_pstrdup(req->pool, b.buf ? b.buf : "");
    strbuf_release(&b);
    return s;
}

static json_t *client_json(struct core_req *req, const struct az_client *c,
                           const struct tn_tenant *towns, size_t ntowns)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:s}", "id", c->id, "name",
                     c->name, "tenant", c->tenant, "tenant_name",
                     cn_admin_town_name(towns, ntowns, c->tenant), "grants",
                     joined(req, c->grant_types), "scopes", joined(req, c->scopes), "auth",
                     az_auth_method_name(c->auth), "public", c->auth == AZ_AUTH_NONE, "disabled",
                     c->disabled, "has_secret", c->auth == AZ_AUTH_BASIC || c->auth == AZ_AUTH_POST,
                     "state_key", c->disabled ? "admin.state.disabled" : "admin.state.active");
}

/* The create form's checkboxes: grant types and scopes, checked as sent. */
static void form_choices(json_t *v, const struct cn_ctx *ctx, const struct az_form *f)
{
    json_t *g = json_array(), *s = json_array();
    bool sent = f != NULL;
    for (size_t i = 0; i < ARRAY_SIZE(grants); i++) {
        /* a new form starts with client_credentials, the usual service */
        bool checked = sent ? az_form_get(f, grants[i].field) != NULL : i == 0;
        json_array_append_new(g, json_pack("{s:s, s:s, s:b}", "field", grants[i].field, "value",
                                           grants[i].value, "checked", checked));
    }
    for (const char *const *sc = az_known_scopes; *sc; sc++) {
        if (!ctx->platform && strcmp(*sc, "admin") == 0)
            continue; /* only the platform gives it (az_client_create refuses) */
        char field[80];
        xsnprintf(field, sizeof field, "scope_%s", *sc);
        char key[96];
        xsnprintf(key, sizeof key, "scope.%s.title", *sc);
        const char *title = az_page_text(ctx->lang, key);
        json_array_append_new(s, json_pack("{s:s, s:s, s:s, s:b}", "field", field, "value", *sc,
                                           "title", title ? title : "", "checked",
                                           sent && az_form_get(f, field) != NULL));
    }
    json_object_set_new(v, "grant_choices", g);
    json_object_set_new(v, "scope_choices", s);
}

/* The page: the list (of filter's town, or all the context sees), the
 * create form (refilled from f when it was sent with an error), the
 * notice or the error. */
static void reply_page(struct core_req *req, const struct cn_ctx *ctx, unsigned status,
                       const char *filter, const struct az_form *f, const char *error_key,
                       const char *detail, const char *field)
{
    struct tn_tenant *towns = NULL;
    size_t ntowns = 0;
    bool more_towns = false;
    struct tn_result tres;
    enum tn_rc trc = cn_admin_towns(ctx, &towns, &ntowns, &more_towns, &tres);
    if (trc != TN_OK) {
        cn_admin_fail(req, ctx, trc == TN_UNAVAILABLE);
        return;
    }
    struct az_client *list = NULL;
    size_t n = 0;
    struct az_result res;
    const char *town = ctx->platform ? filter : ctx->staff.tenant;
    enum az_rc rc = az_client_list(ctx->context, town, NULL, LIST_MAX + 1, &list, &n, &res);
    if (rc != AZ_OK) {
        cn_admin_towns_free(towns, ntowns);
        cn_admin_fail(req, ctx, rc == AZ_UNAVAILABLE);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        if (i < LIST_MAX)
            json_array_append_new(items, client_json(req, &list[i], towns, ntowns));
        az_client_release(&list[i]);
    }
    free(list);

    json_t *v = cn_vars(req, ctx, "clients");
    json_object_set_new(v, "clients", items);
    json_object_set_new(v, "more", json_boolean(n > LIST_MAX));
    json_object_set_new(v, "platform", json_boolean(ctx->platform));
    json_object_set_new(v, "filter", json_string(filter ? filter : ""));
    json_object_set_new(v, "filter_name",
                        json_string(filter ? cn_admin_town_name(towns, ntowns, filter) : ""));
    json_object_set_new(v, "filter_towns", cn_admin_town_options(towns, ntowns, filter, NULL));
    const char *f_tenant = f ? az_form_get(f, "tenant") : NULL;
    json_object_set_new(v, "create_towns",
                        cn_admin_town_options(towns, ntowns, f_tenant ? f_tenant : filter, NULL));
    json_object_set_new(v, "home_name",
                        json_string(cn_admin_town_name(towns, ntowns, ctx->staff.tenant)));
    form_choices(v, ctx, f);
    if (f) {
        const char *name = az_form_get(f, "name"), *uris = az_form_get(f, "redirect_uris");
        json_t *fv = json_pack("{s:s, s:s, s:b}", "name", name ? name : "", "redirect_uris",
                               uris ? uris : "", "public", az_form_get(f, "public") != NULL);
        /* text that is not UTF-8 is not shown back */
        if (!fv)
            fv = json_object();
        json_object_set_new(v, "f", fv);
    }
    if (error_key)
        cn_admin_set_error(v, ctx, error_key, detail, field);
    else
        cn_admin_notice(req, ctx, v, done_keys);
    cn_admin_towns_free(towns, ntowns);
    cn_reply(req, status, "admin_clients", ctx->lang, v);
}

static void cn_handler_clients(struct core_req *req)
{
    struct cn_ctx ctx;
    if (!cn_begin(req, CN_ADMIN_ROLES, &ctx))
        return;
    bool bad;
    const char *filter = filter_of(core_req_query(req, "tenant"), &bad);
    if (bad) {
        reply_page(req, &ctx, 400, NULL, NULL, "admin.error.town_filter", NULL, "filter");
        return;
    }
    if (!ctx.platform && filter && strcmp(filter, ctx.staff.tenant) != 0) {
        reply_page(req, &ctx, 403, NULL, NULL, "admin.error.own_town", NULL, NULL);
        return;
    }
    reply_page(req, &ctx, 200, filter, NULL, NULL, NULL, NULL);
}

/* The secret, once: the POST's own answer (no redirect, no-store). */
static void reply_secret(struct core_req *req, const struct cn_ctx *ctx, unsigned status,
                         const char *id, const char *name, const char *tenant, const char *secret,
                         bool rotated, const char *filter)
{
    json_t *v = cn_vars(req, ctx, "clients");
    json_object_set_new(v, "client_id", json_string(id));
    json_object_set_new(v, "client_name", json_string(name));
    json_object_set_new(v, "tenant", json_string(tenant));
    struct tn_tenant t;
    struct tn_result res;
    if (tn_get(ctx->context, tenant, &t, &res) == TN_OK) {
        json_object_set_new(v, "tenant_name", json_string(t.name));
        tn_tenant_release(&t);
    }
    json_object_set_new(v, "secret", json_string(secret));
    json_object_set_new(v, "rotated", json_boolean(rotated));
    json_object_set_new(v, "back", json_string(list_url(req, filter, NULL)));
    cn_reply(req, status, "admin_client_secret", ctx->lang, v);
}

/* Which field of the form a refusal is about (the registry's message
 * names it in words). */
static const char *field_of(const char *why)
{
    if (strstr(why, "redirect"))
        return "redirect_uris";
    if (strstr(why, "public"))
        return "public";
    if (strstr(why, "grant"))
        return "grants";
    if (strstr(why, "scope"))
        return "scopes";
    if (strstr(why, "tenant"))
        return "tenant";
    if (strstr(why, "name"))
        return "name";
    return NULL;
}

/* The textarea's lines (one URI each, blank lines skipped) into a new
 * array; NULL when there are more than REDIRECT_MAX or one is too long. */
static json_t *lines_of(const char *text)
{
    json_t *arr = json_array();
    const char *p = text ? text : "";
    while (*p) {
        size_t n = strcspn(p, "\r\n");
        const char *s = p, *e = p + n;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > s) {
            if (json_array_size(arr) == REDIRECT_MAX || (size_t)(e - s) > CORE_URL_MAX) {
                json_decref(arr);
                return NULL;
            }
            json_t *line = json_stringn(s, (size_t)(e - s));
            if (!line) { /* not UTF-8 */
                json_decref(arr);
                return NULL;
            }
            json_array_append_new(arr, line);
        }
        p += n;
        while (*p == '\r' || *p == '\n')
            p++;
    }
    return arr;
}

/* POST /admin/clients: csrf, tenant (the platform), name, grant_* and
 * scope_* checkboxes, redirect_uris (one a line), public, filter. */
static void cn_handler_client_create(struct core_req *req)
{
    struct cn_ctx ctx;
    struct az_form f;
    if (!cn_begin(req, CN_ADMIN_ROLES, &ctx) || !cn_form(req, &ctx, &f))
        return;
    bool bad;
    const char *filter = filter_of(az_form_get(&f, "filter"), &bad);
    struct az_client_spec s = {0};
    s.tenant = az_form_get(&f, "tenant");
    if (!ctx.platform) {
        if (s.tenant && *s.tenant && strcmp(s.tenant, ctx.staff.tenant) != 0) {
            reply_page(req, &ctx, 403, filter, &f, "admin.error.own_town", NULL, "tenant");
            return;
        }
        s.tenant = ctx.staff.tenant;
    }
    if (!s.tenant || !core_tenant_id_ok(s.tenant)) {
        reply_page(req, &ctx, 400, filter, &f, "admin.error.client_tenant", NULL, "tenant");
        return;
    }
    s.name = az_form_get(&f, "name");
    const char *why = s.name ? tn_check_name(s.name) : "name is required";
    if (why) {
        reply_page(req, &ctx, 400, filter, &f, "admin.error.client_name", why, "name");
        return;
    }
    json_t *g = json_array(), *sc = json_array(), *uris = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(grants); i++)
        if (az_form_get(&f, grants[i].field))
            json_array_append_new(g, json_string(grants[i].value));
    for (const char *const *k = az_known_scopes; *k; k++) {
        char field[80];
        xsnprintf(field, sizeof field, "scope_%s", *k);
        if (az_form_get(&f, field))
            json_array_append_new(sc, json_string(*k));
    }
    char id[65] = "", secret[64] = "";
    if (json_array_size(g) == 0) {
        reply_page(req, &ctx, 400, filter, &f, "admin.error.client_grants", NULL, "grants");
        goto cleanup;
    }
    uris = lines_of(az_form_get(&f, "redirect_uris"));
    if (!uris) {
        reply_page(req, &ctx, 400, filter, &f, "admin.error.client_uris", NULL, "redirect_uris");
        goto cleanup;
    }
    s.grant_types = g;
    s.scopes = json_array_size(sc) ? sc : NULL;
    s.redirect_uris = json_array_size(uris) ? uris : NULL;
    s.auth = az_form_get(&f, "public") ? AZ_AUTH_NONE : AZ_AUTH_BASIC;
    /* the registry's own check first, to say which field is wrong */
    if ((why = az_client_spec_check(&s))) {
        reply_page(req, &ctx, 400, filter, &f, "admin.error.invalid", why, field_of(why));
        goto cleanup;
    }
    struct az_result res;
    enum az_rc rc = az_client_create(ctx.context, &s, ctx.actor, id, secret, NULL, &res);
    if (rc != AZ_OK) {
        const char *key = NULL;
        unsigned status = cn_admin_az_status(rc, &key);
        if (status)
            reply_page(req, &ctx, status, filter, &f, key, res.message, field_of(res.message));
        else
            cn_admin_fail(req, &ctx, rc == AZ_UNAVAILABLE);
        goto cleanup;
    }
    reply_secret(req, &ctx, 201, id, s.name, s.tenant, secret, false, filter);

cleanup:
    OPENSSL_cleanse(secret, sizeof secret);
    json_decref(g);
    json_decref(sc);
    json_decref(uris);
}

/* The {id} of a client's path, and the form; false once answered. */
static bool client_target(struct core_req *req, struct cn_ctx *ctx, struct az_form *f,
                          const char **id, const char **filter)
{
    if (!cn_begin(req, CN_ADMIN_ROLES, ctx) || !cn_form(req, ctx, f))
        return false;
    bool bad;
    *filter = filter_of(az_form_get(f, "filter"), &bad);
    *id = core_req_param(req, "id");
    if (!*id || !**id || strlen(*id) > 64) {
        reply_page(req, ctx, 404, *filter, NULL, "admin.error.not_found", NULL, NULL);
        return false;
    }
    return true;
}

static void client_refused(struct core_req *req, const struct cn_ctx *ctx, const char *filter,
                           enum az_rc rc, const struct az_result *res)
{
    const char *key = NULL;
    unsigned status = cn_admin_az_status(rc, &key);
    if (status)
        reply_page(req, ctx, status, filter, NULL, key, res->message, NULL);
    else
        cn_admin_fail(req, ctx, rc == AZ_UNAVAILABLE);
}

/* POST /admin/clients/{id}/secret: csrf, filter. */
static void cn_handler_client_secret(struct core_req *req)
{
    struct cn_ctx ctx;
    struct az_form f;
    const char *id, *filter;
    if (!client_target(req, &ctx, &f, &id, &filter))
        return;
    struct az_client c;
    struct az_result res;
    enum az_rc rc = az_client_read(ctx.context, id, &c, &res);
    if (rc != AZ_OK) {
        client_refused(req, &ctx, filter, rc, &res);
        return;
    }
    if (c.auth != AZ_AUTH_BASIC && c.auth != AZ_AUTH_POST) {
        az_client_release(&c);
        reply_page(req, &ctx, 409, filter, NULL, "admin.error.no_secret", NULL, NULL);
        return;
    }
    char secret[64];
    rc = az_client_rotate_secret(ctx.context, id, ctx.actor, secret, &res);
    if (rc != AZ_OK) {
        az_client_release(&c);
        client_refused(req, &ctx, filter, rc, &res);
        return;
    }
    reply_secret(req, &ctx, 200, c.id, c.name, c.tenant, secret, true, filter);
    OPENSSL_cleanse(secret, sizeof secret);
    az_client_release(&c);
}

/* POST /admin/clients/{id}/state: csrf, state (disabled|active), filter. */
static void cn_handler_client_state(struct core_req *req)
{
    struct cn_ctx ctx;
    struct az_form f;
    const char *id, *filter;
    if (!client_target(req, &ctx, &f, &id, &filter))
        return;
    const char *state = az_form_get(&f, "state");
    if (!state || (strcmp(state, "disabled") != 0 && strcmp(state, "active") != 0)) {
        reply_page(req, &ctx, 400, filter, NULL, "admin.error.form", NULL, NULL);
        return;
    }
    bool disable = strcmp(state, "disabled") == 0;
    struct az_result res;
    enum az_rc rc = az_client_set_disabled(ctx.context, id, disable, ctx.actor, &res);
    if (rc != AZ_OK) {
        client_refused(req, &ctx, filter, rc, &res);
        return;
    }
    cn_see_other(req, list_url(req, filter, disable ? "disabled" : "enabled"));
}

static const struct core_route routes[] = {
    {CORE_GET, "/admin/clients", cn_handler_clients,
     "The operator console: clients of the towns (HTML)", "console", 0},
    {CORE_POST, "/admin/clients", cn_handler_client_create,
     "The operator console: create a client; its secret is shown once (form)", "console",
     CN_PAGE_BODY_MAX},
    {CORE_POST, "/admin/clients/{id}/secret", cn_handler_client_secret,
     "The operator console: a client's new secret, shown once (form)", "console", CN_PAGE_BODY_MAX},
    {CORE_POST, "/admin/clients/{id}/state", cn_handler_client_state,
     "The operator console: disable or enable a client (form)", "console", CN_PAGE_BODY_MAX},
};

void cn_admin_clients_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
