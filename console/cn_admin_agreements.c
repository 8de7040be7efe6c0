/* /admin/agreements: data-sharing agreements as each side needs them. The
 * provider's administrator sees the requests to its town and approves,
 * suspends, resumes or revokes them; the consumer's proposes, and withdraws
 * or revokes its own. The platform sees every agreement (or one town's
 * two views, ?town=) and may do all of it. Each state change carries the
 * version the page showed, so a change made meanwhile is not overwritten
 * (412); a move the life cycle does not allow is 409. The rules themselves
 * are the exchange module's and the database's (xc_agreement_set_state,
 * row-level security and the agreements_guard trigger). */
#include <stdlib.h>

#include "console/cn_admin.h"
#include "core/router.h"
#include "core/strbuf.h"

#define LIST_MAX 500
#define JST      (9 * 3600) /* the towns' clock for the times people type and read */

static const char *const done_keys[] = {"proposed", "approved", "rejected",  "suspended",
                                        "resumed",  "revoked",  "withdrawn", NULL};

/* The state-change buttons: the action a button sends, the state it
 * starts from and the state it makes. */
struct move {
    const char *action;
    enum xc_ag_state from;
    enum xc_ag_state to;
    const char *done;
};
static const struct move moves[] = {
    {"approve", XC_AG_PROPOSED, XC_AG_ACTIVE, "approved"},
    {"reject", XC_AG_PROPOSED, XC_AG_REVOKED, "rejected"},
    {"withdraw", XC_AG_PROPOSED, XC_AG_REVOKED, "withdrawn"},
    {"suspend", XC_AG_ACTIVE, XC_AG_SUSPENDED, "suspended"},
    {"resume", XC_AG_SUSPENDED, XC_AG_ACTIVE, "resumed"},
    {"revoke", XC_AG_ACTIVE, XC_AG_REVOKED, "revoked"},
    {"revoke", XC_AG_SUSPENDED, XC_AG_REVOKED, "revoked"},
};

static bool id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    bool ok = n == XC_AG_ID_LEN && strncmp(id, "ag_", 3) == 0;
    for (size_t i = 3; ok && i < n; i++)
        ok = (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '2' && id[i] <= '7');
    return ok;
}

static const char *list_url(struct core_req *req, const char *town, const char *done,
                            const char *id)
{
    struct strbuf b;
    strbuf_init(&b, 512);
    strbuf_adds(&b, "/admin/agreements");
    char sep = '?';
    if (town) {
        strbuf_addf(&b, "%ctown=%s", sep, town); /* tenant ids need no escaping */
        sep = '&';
    }
    if (done)
        strbuf_addf(&b, "%cdone=%s", sep, done);
    if (id)
        strbuf_addf(&b, "#%s", id);
    const char *url = core_pstrdup(req->pool, b.buf);
    strbuf_release(&b);
    return url;
}

/* ---- showing agreements ---- */

/* Unix seconds as the towns read them: "2026-04-01 09:00" (JST); "" for 0. */
static const char *jst(struct core_req *req, int64_t t)
{
    if (!t)
        return "";
    char buf[32];
    xc_ag_time_format(t + JST, buf); /* "2026-04-01T00:00:00Z", shifted */
    return core_psprintf(req->pool, "%.10s %.5s", buf, buf + 11);
}

/* What the person may do with a: the provider (or the platform) moves it
 * through its life; the consumer may withdraw its proposal or revoke. */
static void allowed(const struct cn_ctx *ctx, const struct xc_agreement *a, json_t *row)
{
    bool provider = ctx->platform || strcmp(a->provider, ctx->staff.tenant) == 0;
    bool consumer = !provider && strcmp(a->consumer, ctx->staff.tenant) == 0;
    enum xc_ag_state s = a->state;
    json_object_set_new(row, "can_approve", json_boolean(provider && s == XC_AG_PROPOSED));
    json_object_set_new(row, "can_reject", json_boolean(provider && s == XC_AG_PROPOSED));
    json_object_set_new(row, "can_withdraw", json_boolean(consumer && s == XC_AG_PROPOSED));
    json_object_set_new(row, "can_suspend", json_boolean(provider && s == XC_AG_ACTIVE));
    json_object_set_new(row, "can_resume", json_boolean(provider && s == XC_AG_SUSPENDED));
    json_object_set_new(
        row, "can_revoke",
        json_boolean((provider || consumer) && (s == XC_AG_ACTIVE || s == XC_AG_SUSPENDED)));
    json_object_set_new(row, "can_any", json_boolean((provider || consumer) && s != XC_AG_REVOKED));
}

static json_t *row_json(struct core_req *req, const struct cn_ctx *ctx,
                        const struct xc_agreement *a, const struct tn_tenant *towns, size_t ntowns)
{
    char state_key[48];
    xsnprintf(state_key, sizeof state_key, "admin.state.%s", xc_ag_state_name(a->state));
    const char *actions = a->actions == (XC_AG_READ | XC_AG_WRITE) ? "admin.ag.actions.rw"
                          : a->actions == XC_AG_WRITE              ? "admin.ag.actions.w"
                                                                   : "admin.ag.actions.r";
    /* every member a section tests is set: an absent one would be looked
     * up in the page's scope */
    json_t *row = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:b, s:s, s:s, s:s, s:s, "
        "s:s, s:i}",
        "id", a->id, "provider", a->provider, "provider_name",
        cn_admin_town_name(towns, ntowns, a->provider), "consumer", a->consumer, "consumer_name",
        cn_admin_town_name(towns, ntowns, a->consumer), "types",
        cn_admin_join(req, a->types, a->ntypes), "attrs", cn_admin_join(req, a->attrs, a->nattrs),
        "actions_key", actions, "purposes", cn_admin_join(req, a->purposes, a->npurposes), "from",
        jst(req, a->valid_from), "until", jst(req, a->valid_until), "rate", a->rate_per_minute,
        "personal", a->personal, "consent_scope", a->consent_scope ? a->consent_scope : "",
        "resident_attr", a->resident_attr ? a->resident_attr : "", "description",
        a->description ? a->description : "", "state", xc_ag_state_name(a->state), "state_key",
        state_key, "version", a->version);
    if (!row) /* a description that is not UTF-8: shown without it */
        return NULL;
    allowed(ctx, a, row);
    return row;
}

/* Agreements of provider / consumer (NULL: any) as rows. */
static enum xc_ag_rc rows(struct core_req *req, const struct cn_ctx *ctx, const char *provider,
                          const char *consumer, bool revoked_too, const struct tn_tenant *towns,
                          size_t ntowns, json_t **out, bool *more)
{
    struct xc_ag_filter f = {.provider = provider,
                             .consumer = consumer,
                             .state = revoked_too ? -1 : -2,
                             .limit = LIST_MAX + 1};
    struct xc_agreement *list = NULL;
    size_t n = 0;
    struct xc_ag_result res;
    enum xc_ag_rc rc = xc_agreement_list(ctx->context, &f, &list, &n, &res);
    if (rc != XC_AG_OK)
        return rc;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (i < LIST_MAX) {
            json_t *row = row_json(req, ctx, &list[i], towns, ntowns);
            if (row)
                json_array_append_new(arr, row);
        }
        xc_agreement_release(&list[i]);
    }
    free(list);
    *more = *more || n > LIST_MAX;
    *out = arr;
    return XC_AG_OK;
}

/* The proposal form's values as sent (for showing them again). */
static json_t *form_values(const struct az_form *f)
{
    static const char *const text[] = {"provider",      "consumer",      "entity_types", "attrs",
                                       "purposes",      "valid_from",    "valid_until",  "rate",
                                       "consent_scope", "resident_attr", "description",  NULL};
    json_t *v = json_object();
    for (const char *const *k = text; *k; k++) {
        const char *s = az_form_get(f, *k);
        json_t *js = json_string(s ? s : ""); /* NULL when not UTF-8: left out */
        if (js)
            json_object_set_new(v, *k, js);
    }
    json_object_set_new(v, "read", json_boolean(az_form_get(f, "action_read") != NULL));
    json_object_set_new(v, "write", json_boolean(az_form_get(f, "action_write") != NULL));
    json_object_set_new(v, "personal", json_boolean(az_form_get(f, "personal") != NULL));
    return v;
}

/* One table of the page: its rows, its id and its caption's key. */
static json_t *view(json_t *rows, const char *id, const char *caption_key)
{
    return json_pack("{s:o, s:s, s:s}", "rows", rows, "table_id", id, "caption_key", caption_key);
}

struct page {
    unsigned status;
    const char *town; /* the town whose two views are shown; NULL: all (the platform) */
    bool revoked;     /* revoked agreements shown too */
    const struct az_form *f;
    const char *error_key, *detail, *field;
};

static void reply_page(struct core_req *req, const struct cn_ctx *ctx, const struct page *p)
{
    struct tn_tenant *towns = NULL;
    size_t ntowns = 0;
    bool more = false;
    struct tn_result tres;
    enum tn_rc trc = cn_admin_towns(ctx, &towns, &ntowns, &more, &tres);
    if (trc != TN_OK) {
        cn_admin_fail(req, ctx, trc == TN_UNAVAILABLE);
        return;
    }
    json_t *requests = NULL, *mine = NULL, *all = NULL;
    enum xc_ag_rc rc;
    if (p->town) {
        rc = rows(req, ctx, p->town, NULL, p->revoked, towns, ntowns, &requests, &more);
        if (rc == XC_AG_OK)
            rc = rows(req, ctx, NULL, p->town, p->revoked, towns, ntowns, &mine, &more);
    } else {
        rc = rows(req, ctx, NULL, NULL, p->revoked, towns, ntowns, &all, &more);
    }
    if (rc != XC_AG_OK) {
        json_decref(requests);
        cn_admin_towns_free(towns, ntowns);
        cn_admin_fail(req, ctx, rc == XC_AG_UNAVAILABLE);
        return;
    }
    json_t *v = cn_vars(req, ctx, "agreements");
    json_object_set_new(v, "platform", json_boolean(ctx->platform));
    json_object_set_new(v, "town", json_string(p->town ? p->town : ""));
    json_object_set_new(v, "town_name",
                        json_string(p->town ? cn_admin_town_name(towns, ntowns, p->town) : ""));
    json_object_set_new(v, "revoked", json_boolean(p->revoked));
    json_object_set_new(
        v, "toggle_revoked",
        json_string(core_psprintf(req->pool, "/admin/agreements?%s%s%s", p->town ? "town=" : "",
                                  p->town ? p->town : "",
                                  p->revoked ? "" : (p->town ? "&revoked=1" : "revoked=1"))));
    if (p->town) {
        json_object_set_new(v, "requests", view(requests, "requests", "admin.ag.requests_caption"));
        json_object_set_new(v, "mine", view(mine, "mine", "admin.ag.mine_caption"));
    } else {
        json_object_set_new(v, "all", view(all, "all", "admin.ag.all_caption"));
    }
    json_object_set_new(v, "more", json_boolean(more));
    json_object_set_new(v, "filter_towns", cn_admin_town_options(towns, ntowns, p->town, NULL));
    /* the proposal: the consumer is this town (the platform picks it) */
    const char *consumer = p->f ? az_form_get(p->f, "consumer") : NULL;
    if (!consumer)
        consumer = p->town;
    const char *provider = p->f ? az_form_get(p->f, "provider") : NULL;
    json_object_set_new(v, "consumer_towns", cn_admin_town_options(towns, ntowns, consumer, NULL));
    json_object_set_new(
        v, "provider_towns",
        cn_admin_town_options(towns, ntowns, provider, ctx->platform ? NULL : ctx->staff.tenant));
    json_object_set_new(v, "home_name",
                        json_string(cn_admin_town_name(towns, ntowns, ctx->staff.tenant)));
    json_object_set_new(v, "f", p->f ? form_values(p->f) : json_pack("{s:b}", "read", true));
    if (p->error_key)
        cn_admin_set_error(v, ctx, p->error_key, p->detail, p->field);
    else
        cn_admin_notice(req, ctx, v, done_keys);
    cn_admin_towns_free(towns, ntowns);
    cn_reply(req, p->status, "admin_agreements", ctx->lang, v);
}

/* The town of the page: a town's administrator always its own; the
 * platform the one it asks for (?town=, a form's "town") or all. False
 * once the page with the error is queued. */
static bool page_town(struct core_req *req, const struct cn_ctx *ctx, const char *asked,
                      struct page *p)
{
    if (asked && !*asked)
        asked = NULL;
    if (asked && !core_tenant_id_ok(asked)) {
        p->status = 400;
        p->error_key = "admin.error.town_filter";
        p->field = "filter";
        reply_page(req, ctx, p);
        return false;
    }
    if (!ctx->platform) {
        p->town = ctx->staff.tenant;
        if (asked && strcmp(asked, ctx->staff.tenant) != 0) {
            p->status = 403;
            p->error_key = "admin.error.own_town";
            reply_page(req, ctx, p);
            return false;
        }
        return true;
    }
    p->town = asked;
    return true;
}

static void cn_handler_agreements(struct core_req *req)
{
    struct cn_ctx ctx;
    if (!cn_begin(req, CN_ADMIN_ROLES, &ctx))
        return;
    const char *rv = core_req_query(req, "revoked");
    struct page p = {.status = 200, .revoked = rv && strcmp(rv, "1") == 0};
    if (!page_town(req, &ctx, core_req_query(req, "town"), &p))
        return;
    reply_page(req, &ctx, &p);
}

/* ---- proposing ---- */

/* The separator at s (',', white space, '、' or '，'): its length, or 0. */
static size_t separator(const char *s)
{
    if (*s == ',' || *s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        return 1;
    if (strncmp(s, "\xe3\x80\x81", 3) == 0 || strncmp(s, "\xef\xbc\x8c", 3) == 0)
        return 3;
    return 0;
}

/* A list typed into one field (names separated by commas or spaces) into
 * a fresh array; false when it has more than XC_AG_LIST_MAX names. */
static bool split(const char *text, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const char *p = text ? text : "";
    char **list = NULL;
    size_t count = 0;
    while (*p) {
        size_t sep;
        while ((sep = separator(p)))
            p += sep;
        if (!*p)
            break;
        const char *start = p;
        while (*p && !separator(p))
            p++;
        if (count == XC_AG_LIST_MAX) {
            for (size_t i = 0; i < count; i++)
                free(list[i]);
            free(list);
            return false;
        }
        list = xrealloc(list, (count + 1) * sizeof *list);
        list[count++] = xstrndup(start, (size_t)(p - start));
    }
    *out = list;
    *n = count;
    return true;
}

/* A time from the form: RFC 3339 with a zone, or what a datetime-local
 * control sends ("2026-04-01T09:00", the towns' time, JST). "" is 0. */
static bool time_of(const char *s, int64_t *out)
{
    *out = 0;
    if (!s || !*s)
        return true;
    if (xc_ag_time_parse(s, out))
        return true;
    size_t n = strlen(s);
    if (n != 16 && n != 19)
        return false;
    char buf[40];
    xsnprintf(buf, sizeof buf, "%s%s+09:00", s, n == 16 ? ":00" : "");
    return xc_ag_time_parse(buf, out);
}

/* Which field a refusal of the terms is about (xc_agreement_check's
 * message starts with the field's name). */
static const char *field_of(const char *why)
{
    static const struct {
        const char *prefix, *field;
    } map[] = {
        {"provider and consumer", "provider"},
        {"provider", "provider"},
        {"consumer", "consumer"},
        {"entity_types", "entity_types"},
        {"attrs", "attrs"},
        {"purposes", "purposes"},
        {"actions", "actions"},
        {"consent_scope and resident_attr", "personal"},
        {"consent_scope", "consent_scope"},
        {"resident_attr", "resident_attr"},
        {"valid_from and valid_until", "valid_from"},
        {"valid_until", "valid_until"},
        {"valid_from", "valid_from"},
        {"rate", "rate"},
        {"description", "description"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(map); i++)
        if (strncmp(why, map[i].prefix, strlen(map[i].prefix)) == 0)
            return map[i].field;
    return NULL;
}

/* The form into a (owned by a); false with the error in p (key, field). */
static bool parse_proposal(const struct cn_ctx *ctx, const struct az_form *f,
                           struct xc_agreement *a, struct page *p, char *err, size_t errlen)
{
    const char *provider = az_form_get(f, "provider");
    const char *consumer = ctx->platform ? az_form_get(f, "consumer") : ctx->staff.tenant;
    p->status = 400;
    p->error_key = "admin.error.invalid";
    if (!consumer || !xsnprintf(a->consumer, sizeof a->consumer, "%s", consumer) ||
        !core_tenant_id_ok(a->consumer)) {
        p->error_key = "admin.error.ag_consumer";
        p->field = "consumer";
        return false;
    }
    if (!provider || !xsnprintf(a->provider, sizeof a->provider, "%s", provider) ||
        !core_tenant_id_ok(a->provider)) {
        p->error_key = "admin.error.ag_provider";
        p->field = "provider";
        return false;
    }
    static const char *const lists[] = {"entity_types", "attrs", "purposes"};
    char **v[3] = {NULL};
    size_t nv[3] = {0};
    for (size_t i = 0; i < 3; i++) {
        if (!split(az_form_get(f, lists[i]), &v[i], &nv[i])) {
            for (size_t k = 0; k < i; k++) {
                for (size_t j = 0; j < nv[k]; j++)
                    free(v[k][j]);
                free(v[k]);
            }
            snprintf(err, errlen, "%s has more than %d names", lists[i], XC_AG_LIST_MAX);
            p->field = lists[i];
            p->detail = err;
            return false;
        }
    }
    a->types = v[0], a->ntypes = nv[0];
    a->attrs = v[1], a->nattrs = nv[1];
    a->purposes = v[2], a->npurposes = nv[2];
    a->actions = (az_form_get(f, "action_read") ? XC_AG_READ : 0) |
                 (az_form_get(f, "action_write") ? XC_AG_WRITE : 0);
    a->personal = az_form_get(f, "personal") != NULL;
    const char *scope = az_form_get(f, "consent_scope"), *rattr = az_form_get(f, "resident_attr");
    const char *desc = az_form_get(f, "description");
    a->consent_scope = scope && *scope ? xstrdup(scope) : NULL;
    a->resident_attr = rattr && *rattr ? xstrdup(rattr) : NULL;
    a->description = desc && *desc ? xstrdup(desc) : NULL;
    if (!time_of(az_form_get(f, "valid_from"), &a->valid_from)) {
        p->error_key = "admin.error.ag_time";
        p->field = "valid_from";
        return false;
    }
    if (!time_of(az_form_get(f, "valid_until"), &a->valid_until)) {
        p->error_key = "admin.error.ag_time";
        p->field = "valid_until";
        return false;
    }
    const char *rate = az_form_get(f, "rate");
    if (rate && *rate && !xc_ag_rate_parse(rate, &a->rate_per_minute)) {
        p->error_key = "admin.error.ag_rate";
        p->field = "rate";
        return false;
    }
    xc_agreement_defaults(a);
    if (!xc_agreement_check(a, err, errlen)) {
        p->detail = err;
        p->field = field_of(err);
        return false;
    }
    return true;
}

/* POST /admin/agreements: csrf, consumer (the platform), provider,
 * entity_types, attrs, action_read, action_write, purposes, valid_from,
 * valid_until, rate, personal, consent_scope, resident_attr, description,
 * town (the page's). */
static void cn_handler_propose(struct core_req *req)
{
    struct cn_ctx ctx;
    struct az_form f;
    if (!cn_begin(req, CN_ADMIN_ROLES, &ctx) || !cn_form(req, &ctx, &f))
        return;
    struct page p = {.status = 200, .f = &f};
    if (!page_town(req, &ctx, az_form_get(&f, "town"), &p))
        return;
    struct xc_agreement a = {0}, made = {0};
    char err[300];
    if (!parse_proposal(&ctx, &f, &a, &p, err, sizeof err)) {
        reply_page(req, &ctx, &p);
        goto cleanup;
    }
    struct xc_ag_result res;
    enum xc_ag_rc rc = xc_agreement_create(ctx.context, &a, ctx.actor, &made, &res);
    if (rc != XC_AG_OK) {
        p.status = cn_admin_xc_status(rc, &p.error_key);
        if (!p.status) {
            cn_admin_fail(req, &ctx, rc == XC_AG_UNAVAILABLE);
            goto cleanup;
        }
        p.detail = res.message;
        p.field = field_of(res.message);
        reply_page(req, &ctx, &p);
        goto cleanup;
    }
    cn_see_other(req, list_url(req, ctx.platform ? p.town : NULL, "proposed", made.id));

cleanup:
    xc_agreement_release(&a);
    xc_agreement_release(&made);
}

/* ---- state changes ---- */

/* POST /admin/agreements/{id}/state: csrf, version, action (approve,
 * reject, withdraw, suspend, resume, revoke), town (the page's). */
static void cn_handler_state(struct core_req *req)
{
    struct cn_ctx ctx;
    struct az_form f;
    if (!cn_begin(req, CN_ADMIN_ROLES, &ctx) || !cn_form(req, &ctx, &f))
        return;
    struct page p = {.status = 200};
    if (!page_town(req, &ctx, az_form_get(&f, "town"), &p))
        return;
    const char *id = core_req_param(req, "id");
    if (!id_ok(id)) {
        p.status = 404;
        p.error_key = "admin.error.not_found";
        reply_page(req, &ctx, &p);
        return;
    }
    const char *action = az_form_get(&f, "action");
    long version;
    bool known = false;
    for (size_t i = 0; action && i < ARRAY_SIZE(moves); i++)
        known = known || strcmp(moves[i].action, action) == 0;
    if (!known || !cn_admin_int(az_form_get(&f, "version"), 1, 1L << 30, &version)) {
        p.status = 400;
        p.error_key = "admin.error.form";
        reply_page(req, &ctx, &p);
        return;
    }
    struct xc_agreement cur = {0}, out = {0};
    struct xc_ag_result res;
    enum xc_ag_rc rc = xc_agreement_get(ctx.context, id, &cur, &res);
    const struct move *m = NULL;
    if (rc == XC_AG_OK) {
        /* the version first: a page that is out of date is read again
         * before anything else it says is believed */
        if (cur.version != (int)version) {
            p.status = 412;
            p.error_key = "admin.error.stale";
            reply_page(req, &ctx, &p);
            goto cleanup;
        }
        for (size_t i = 0; i < ARRAY_SIZE(moves) && !m; i++)
            if (strcmp(moves[i].action, action) == 0 && moves[i].from == cur.state)
                m = &moves[i];
        if (!m) {
            p.status = 409;
            p.error_key = "admin.error.transition";
            p.detail = core_psprintf(req->pool, "%s: %s", id, xc_ag_state_name(cur.state));
            reply_page(req, &ctx, &p);
            goto cleanup;
        }
        rc = xc_agreement_set_state(ctx.context, id, m->to, (int)version, ctx.actor, &out, &res);
    }
    if (rc != XC_AG_OK) {
        p.status = cn_admin_xc_status(rc, &p.error_key);
        if (!p.status) {
            cn_admin_fail(req, &ctx, rc == XC_AG_UNAVAILABLE);
            goto cleanup;
        }
        p.detail = res.message;
        reply_page(req, &ctx, &p);
        goto cleanup;
    }
    cn_see_other(req, list_url(req, ctx.platform ? p.town : NULL, m->done, id));

cleanup:
    xc_agreement_release(&cur);
    xc_agreement_release(&out);
}

static const struct core_route routes[] = {
    {CORE_GET, "/admin/agreements", cn_handler_agreements,
     "The operator console: agreements, as provider and as consumer (HTML)", "console", 0},
    {CORE_POST, "/admin/agreements", cn_handler_propose,
     "The operator console: propose an agreement (form)", "console", CN_PAGE_BODY_MAX},
    {CORE_POST, "/admin/agreements/{id}/state", cn_handler_state,
     "The operator console: approve, suspend, resume, revoke or withdraw an agreement (form)",
     "console", CN_PAGE_BODY_MAX},
};

void cn_admin_agreements_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
