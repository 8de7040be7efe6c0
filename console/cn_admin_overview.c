/* GET /admin: the overview. A matrix of towns x towns (rows provide data,
 * columns use it) counting the agreements in each pair, how many towns and
 * clients there are, and the proposals waiting for this person's approval. */
#include <stdlib.h>

#include "console/cn_admin.h"
#include "core/router.h"
#include "core/strbuf.h"

#define AG_PAGE     500
#define AG_MAX      5000  /* agreements counted at most */
#define CLIENT_MAX  10000 /* clients counted at most */
#define MATRIX_MAX  60    /* towns on each side of the matrix */
#define WAITING_MAX 100   /* proposals listed */

/* Every agreement the context sees but the revoked ones, up to AG_MAX. */
static enum xc_ag_rc all_agreements(const struct cn_ctx *ctx, struct xc_agreement **out, size_t *n,
                                    bool *more, struct xc_ag_result *res)
{
    struct xc_agreement *all = NULL;
    size_t total = 0;
    char after[XC_AG_ID_LEN + 1] = "";
    *more = false;
    for (;;) {
        struct xc_ag_filter f = {.state = -2, .after = after[0] ? after : NULL, .limit = AG_PAGE};
        struct xc_agreement *page = NULL;
        size_t got = 0;
        enum xc_ag_rc rc = xc_agreement_list(ctx->context, &f, &page, &got, res);
        if (rc != XC_AG_OK) {
            for (size_t i = 0; i < total; i++)
                xc_agreement_release(&all[i]);
            free(all);
            return rc;
        }
        size_t keep = got;
        if (total + keep > AG_MAX) {
            keep = AG_MAX - total;
            *more = true;
        }
        all = xrealloc(all, (total + keep + 1) * sizeof *all);
        for (size_t i = 0; i < got; i++) {
            if (i < keep)
                all[total + i] = page[i];
            else
                xc_agreement_release(&page[i]);
        }
        total += keep;
        if (got > 0)
            xsnprintf(after, sizeof after, "%s", page[got - 1].id);
        free(page);
        if (got < AG_PAGE || *more)
            break;
    }
    *out = all;
    *n = total;
    return XC_AG_OK;
}

/* How many clients the context sees (of its town, for a town's admin). */
static enum az_rc count_clients(const struct cn_ctx *ctx, long *count, bool *more,
                                struct az_result *res)
{
    char after[65] = "";
    *count = 0;
    *more = false;
    for (;;) {
        struct az_client *page = NULL;
        size_t got = 0;
        enum az_rc rc = az_client_list(ctx->context, ctx->platform ? NULL : ctx->staff.tenant,
                                       after[0] ? after : NULL, AG_PAGE, &page, &got, res);
        if (rc != AZ_OK)
            return rc;
        if (got > 0)
            xsnprintf(after, sizeof after, "%s", page[got - 1].id);
        for (size_t i = 0; i < got; i++)
            az_client_release(&page[i]);
        free(page);
        *count += (long)got;
        if (got < AG_PAGE)
            return AZ_OK;
        if (*count >= CLIENT_MAX) {
            *more = true;
            return AZ_OK;
        }
    }
}

static long index_of(const char *const *ids, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return (long)i;
    return -1;
}

struct cell {
    int active, proposed, suspended;
};

/* The text of one cell: "2", "2 (+1 proposed)", "0 (1 suspended)". */
static json_t *cell_json(const struct cn_ctx *ctx, const struct cell *c)
{
    json_t *v = json_pack("{s:i, s:i, s:i}", "active", c->active, "proposed", c->proposed,
                          "suspended", c->suspended);
    struct strbuf b;
    strbuf_init(&b, 1024);
    strbuf_addf(&b, "%d", c->active);
    if (c->proposed) {
        char *t = cn_format(ctx->lang, "admin.matrix.proposed", v);
        strbuf_adds(&b, t ? t : "");
        free(t);
    }
    if (c->suspended) {
        char *t = cn_format(ctx->lang, "admin.matrix.suspended", v);
        strbuf_adds(&b, t ? t : "");
        free(t);
    }
    json_object_set_new(v, "text", json_string(b.buf ? b.buf : ""));
    json_object_set_new(v, "some", json_boolean(c->active || c->proposed || c->suspended));
    json_object_set_new(v, "na", json_false());
    json_object_set_new(v, "self", json_false());
    strbuf_release(&b);
    return v;
}

static void cn_handler_admin(struct core_req *req)
{
    struct cn_ctx ctx;
    if (!cn_begin(req, CN_ADMIN_ROLES, &ctx))
        return;
    struct tn_tenant *towns = NULL;
    size_t ntowns = 0;
    bool more_towns = false;
    struct xc_agreement *ags = NULL;
    size_t nags = 0;
    bool more_ags = false, more_clients = false;
    long nclients = 0;
    const char **axis = NULL;
    size_t naxis = 0;
    struct cell *cells = NULL;

    struct tn_result tres;
    enum tn_rc trc = cn_admin_towns(&ctx, &towns, &ntowns, &more_towns, &tres);
    if (trc != TN_OK) {
        cn_admin_fail(req, &ctx, trc == TN_UNAVAILABLE);
        return;
    }
    struct xc_ag_result xres;
    enum xc_ag_rc xrc = all_agreements(&ctx, &ags, &nags, &more_ags, &xres);
    if (xrc != XC_AG_OK) {
        cn_admin_fail(req, &ctx, xrc == XC_AG_UNAVAILABLE);
        goto cleanup;
    }
    struct az_result ares;
    enum az_rc arc = count_clients(&ctx, &nclients, &more_clients, &ares);
    if (arc != AZ_OK) {
        cn_admin_fail(req, &ctx, arc == AZ_UNAVAILABLE);
        goto cleanup;
    }

    /* The matrix's towns: every town for the platform; for a town's
     * administrator its own and those it shares with (the agreements of
     * other pairs are not its to see). */
    axis = xcalloc(ntowns + 1, sizeof *axis);
    for (size_t i = 0; i < ntowns; i++) {
        bool show = ctx.platform || strcmp(towns[i].id, ctx.staff.tenant) == 0;
        for (size_t k = 0; !show && k < nags; k++)
            show = strcmp(ags[k].provider, towns[i].id) == 0 ||
                   strcmp(ags[k].consumer, towns[i].id) == 0;
        if (show)
            axis[naxis++] = towns[i].id;
    }
    json_t *v = cn_vars(req, &ctx, "admin");
    long active = 0, proposed = 0;
    json_t *waiting = json_array();
    bool matrix_ok = naxis > 0 && naxis <= MATRIX_MAX;
    if (matrix_ok)
        cells = xcalloc(naxis * naxis, sizeof *cells);
    for (size_t k = 0; k < nags; k++) {
        const struct xc_agreement *a = &ags[k];
        active += a->state == XC_AG_ACTIVE;
        proposed += a->state == XC_AG_PROPOSED;
        long p = matrix_ok ? index_of(axis, naxis, a->provider) : -1;
        long c = matrix_ok ? index_of(axis, naxis, a->consumer) : -1;
        if (p >= 0 && c >= 0) {
            struct cell *cl = &cells[p * (long)naxis + c];
            cl->active += a->state == XC_AG_ACTIVE;
            cl->proposed += a->state == XC_AG_PROPOSED;
            cl->suspended += a->state == XC_AG_SUSPENDED;
        }
        /* waiting for this person: the provider's side decides */
        if (a->state == XC_AG_PROPOSED &&
            (ctx.platform || strcmp(a->provider, ctx.staff.tenant) == 0) &&
            json_array_size(waiting) < WAITING_MAX) {
            const char *href =
                ctx.platform
                    ? core_psprintf(req->pool, "/admin/agreements?town=%s#%s", a->provider, a->id)
                    : core_psprintf(req->pool, "/admin/agreements#%s", a->id);
            json_array_append_new(waiting,
                                  json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s*}", "id",
                                            a->id, "provider", a->provider, "provider_name",
                                            cn_admin_town_name(towns, ntowns, a->provider),
                                            "consumer", a->consumer, "consumer_name",
                                            cn_admin_town_name(towns, ntowns, a->consumer), "types",
                                            cn_admin_join(req, a->types, a->ntypes), "purposes",
                                            cn_admin_join(req, a->purposes, a->npurposes), "href",
                                            href, "description", a->description));
        }
    }
    if (matrix_ok) {
        json_t *cols = json_array(), *rows = json_array();
        for (size_t i = 0; i < naxis; i++)
            json_array_append_new(cols, json_pack("{s:s, s:s}", "id", axis[i], "name",
                                                  cn_admin_town_name(towns, ntowns, axis[i])));
        for (size_t p = 0; p < naxis; p++) {
            json_t *row = json_array();
            for (size_t c = 0; c < naxis; c++) {
                json_t *cell;
                bool mine = ctx.platform || strcmp(axis[p], ctx.staff.tenant) == 0 ||
                            strcmp(axis[c], ctx.staff.tenant) == 0;
                if (p == c || !mine) {
                    cell = json_pack("{s:s, s:b, s:b, s:b}", "text", "", "some", false, "na",
                                     p != c, "self", p == c);
                } else {
                    cell = cell_json(&ctx, &cells[p * naxis + c]);
                }
                json_object_set_new(cell, "consumer", json_string(axis[c]));
                json_array_append_new(row, cell);
            }
            json_array_append_new(rows, json_pack("{s:s, s:s, s:o}", "id", axis[p], "name",
                                                  cn_admin_town_name(towns, ntowns, axis[p]),
                                                  "cells", row));
        }
        json_object_set_new(v, "matrix", json_pack("{s:o, s:o}", "cols", cols, "rows", rows));
    } else if (naxis > MATRIX_MAX) {
        json_object_set_new(v, "matrix_too_big", json_integer((json_int_t)naxis));
    }
    json_object_set_new(v, "partial", json_boolean(!ctx.platform));
    json_object_set_new(v, "count_towns",
                        json_integer(ctx.platform ? (json_int_t)ntowns : (json_int_t)naxis));
    json_object_set_new(v, "count_clients", json_integer(nclients));
    json_object_set_new(v, "count_active", json_integer(active));
    json_object_set_new(v, "count_proposed", json_integer(proposed));
    json_object_set_new(v, "count_waiting", json_integer((json_int_t)json_array_size(waiting)));
    json_object_set_new(v, "more", json_boolean(more_towns || more_ags || more_clients));
    json_object_set_new(v, "waiting", waiting);
    cn_reply(req, 200, "admin", ctx.lang, v);

cleanup:
    free(cells);
    free(axis);
    for (size_t i = 0; i < nags; i++)
        xc_agreement_release(&ags[i]);
    free(ags);
    cn_admin_towns_free(towns, ntowns);
}

static const struct core_route routes[] = {
    {CORE_GET, "/admin", cn_handler_admin,
     "The operator console: which towns share what, proposals waiting (HTML)", "console", 0},
};

void cn_admin_overview_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
