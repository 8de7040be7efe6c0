/* /admin/towns: the towns, their place in the prefecture, their state and
 * how the hub reaches their city OS (never a secret). The platform suspends
 * and resumes a town; a town's administrator sees its own town only. */
#include <stdlib.h>

#include "console/cn_admin.h"
#include "core/router.h"

#define REASON_MAX 500 /* bytes, as the admin API */

static json_t *town_json(const struct tn_tenant *t, const struct tn_tenant *all, size_t nall,
                         bool can_change, const char *bad_row)
{
    /* every member a section tests is set (an absent one would be looked
     * up in the page's scope) */
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:s, s:s, s:i, s:b, s:b, s:s}", "id",
                     t->id, "name", t->name, "parent", t->parent ? t->parent : "", "parent_name",
                     t->parent ? cn_admin_town_name(all, nall, t->parent) : "", "state",
                     tn_state_name(t->state), "suspended", t->state == TN_SUSPENDED, "hosted",
                     t->hosted, "url", !t->hosted && t->up.url ? t->up.url : "", "fiware_service",
                     !t->hosted && t->up.fiware_service ? t->up.fiware_service : "", "auth",
                     t->hosted ? "" : tn_auth_name(t->up.auth), "version", t->version, "can_change",
                     can_change, "reason_invalid", bad_row && strcmp(bad_row, t->id) == 0,
                     "state_key",
                     t->state == TN_SUSPENDED ? "admin.state.suspended" : "admin.state.active");
}

/* The page, with an error when error_key is set (status 4xx). */
static void reply_page(struct core_req *req, const struct cn_ctx *ctx, unsigned status,
                       const char *error_key, const char *detail, const char *bad_row)
{
    static const char *const done[] = {"suspended", "resumed", NULL};
    struct tn_tenant *all = NULL;
    size_t nall = 0;
    bool more = false;
    struct tn_result res;
    enum tn_rc rc = cn_admin_towns(ctx, &all, &nall, &more, &res);
    if (rc != TN_OK) {
        cn_admin_fail(req, ctx, rc == TN_UNAVAILABLE);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < nall; i++) {
        /* a town's administrator: its own town (the registry's names are
         * readable to every town, its state and city OS are not its
         * business) */
        if (!ctx->platform && strcmp(all[i].id, ctx->staff.tenant) != 0)
            continue;
        json_array_append_new(items, town_json(&all[i], all, nall, ctx->platform, bad_row));
    }
    json_t *v = cn_vars(req, ctx, "towns");
    json_object_set_new(v, "towns", items);
    json_object_set_new(v, "more", json_boolean(more));
    json_object_set_new(v, "platform", json_boolean(ctx->platform));
    if (error_key)
        cn_admin_set_error(v, ctx, error_key, detail, NULL);
    else
        cn_admin_notice(req, ctx, v, done);
    cn_admin_towns_free(all, nall);
    cn_reply(req, status, "admin_towns", ctx->lang, v);
}

static void cn_handler_towns(struct core_req *req)
{
    struct cn_ctx ctx;
    if (!cn_begin(req, CN_ADMIN_ROLES, &ctx))
        return;
    reply_page(req, &ctx, 200, NULL, NULL, NULL);
}

/* POST /admin/towns/{id}/state: csrf, version, state (active|suspended),
 * reason (optional). */
static void cn_handler_town_state(struct core_req *req)
{
    struct cn_ctx ctx;
    struct az_form f;
    if (!cn_begin(req, CN_ADMIN_ROLES, &ctx) || !cn_form(req, &ctx, &f))
        return;
    if (!ctx.platform) {
        reply_page(req, &ctx, 403, "admin.error.platform_only", NULL, NULL);
        return;
    }
    const char *id = core_req_param(req, "id");
    if (tn_check_id(id)) {
        reply_page(req, &ctx, 404, "admin.error.not_found", NULL, NULL);
        return;
    }
    const char *state = az_form_get(&f, "state");
    const char *reason = az_form_get(&f, "reason");
    long version;
    struct tn_patch patch = {.state = -1};
    if (state && strcmp(state, "active") == 0)
        patch.state = TN_ACTIVE;
    else if (state && strcmp(state, "suspended") == 0)
        patch.state = TN_SUSPENDED;
    if (patch.state < 0 || !cn_admin_int(az_form_get(&f, "version"), 1, 1L << 30, &version)) {
        reply_page(req, &ctx, 400, "admin.error.form", NULL, NULL);
        return;
    }
    if (reason && *reason) {
        if (strlen(reason) > REASON_MAX || tn_check_name(reason)) {
            reply_page(req, &ctx, 400, "admin.error.reason", NULL, id);
            return;
        }
        patch.reason = reason;
    }
    patch.if_version = (int)version;
    struct tn_tenant cur;
    struct tn_result res;
    enum tn_rc rc = tn_get(ctx.context, id, &cur, &res);
    if (rc == TN_OK) {
        bool same = cur.state == (enum tn_state)patch.state;
        bool stale = cur.version != patch.if_version;
        tn_tenant_release(&cur);
        if (stale) {
            reply_page(req, &ctx, 412, "admin.error.stale", NULL, NULL);
            return;
        }
        if (same) {
            reply_page(req, &ctx, 409,
                       patch.state == TN_SUSPENDED ? "admin.error.already_suspended"
                                                   : "admin.error.already_active",
                       NULL, NULL);
            return;
        }
        rc = tn_update(ctx.context, id, &patch, ctx.actor, &cur, &res);
        if (rc == TN_OK)
            tn_tenant_release(&cur);
    }
    if (rc != TN_OK) {
        const char *key = NULL;
        unsigned status = cn_admin_tn_status(rc, &key);
        if (status)
            reply_page(req, &ctx, status, key, res.message, NULL);
        else
            cn_admin_fail(req, &ctx, rc == TN_UNAVAILABLE);
        return;
    }
    cn_see_other(req, patch.state == TN_SUSPENDED ? "/admin/towns?done=suspended"
                                                  : "/admin/towns?done=resumed");
}

static const struct core_route routes[] = {
    {CORE_GET, "/admin/towns", cn_handler_towns,
     "The operator console: towns and their city OS (HTML)", "console", 0},
    {CORE_POST, "/admin/towns/{id}/state", cn_handler_town_state,
     "The operator console: suspend or resume a town (form)", "console", CN_PAGE_BODY_MAX},
};

void cn_admin_towns_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
