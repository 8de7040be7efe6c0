/* /admin/v1/agreements[/{id}]: agreements over HTTP. Scope "admin" acts
 * for the platform on every agreement; "tenant.admin" sees the agreements
 * its town is provider or consumer of (others answer 404, as if absent),
 * proposes only as the consumer, approves, suspends and resumes only as the
 * provider, and revokes as either. Row-level security and the
 * agreements_guard trigger enforce the same again. */
#include <stdlib.h>

#include "core/auth.h"
#include "core/db.h"
#include "core/http.h"
#include "exchange/xc_agreement.h"

#define LIST_DEFAULT 100
#define LIST_MAX     500

static void reply_rc(struct core_req *req, enum xc_ag_rc rc, const struct xc_ag_result *res)
{
    switch (rc) {
    case XC_AG_NOT_FOUND:
        core_reply_error(req, CORE_ERR_NOT_FOUND, "%s", res->message);
        return;
    case XC_AG_INVALID:
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", res->message);
        return;
    case XC_AG_FORBIDDEN:
        core_reply_error(req, CORE_ERR_FORBIDDEN, "%s", res->message);
        return;
    case XC_AG_CONFLICT:
        core_reply_error(req, CORE_ERR_CONFLICT, "%s", res->message);
        return;
    case XC_AG_STALE:
        core_reply_error(req, CORE_ERR_PRECONDITION_FAILED, "%s", res->message);
        return;
    case XC_AG_UNAVAILABLE:
        core_reply_error(req, CORE_ERR_DB_UNAVAILABLE, NULL);
        return;
    case XC_AG_OK:
    case XC_AG_ERROR:
        break;
    }
    core_reply_error(req, CORE_ERR_INTERNAL, NULL);
}

static void reply_agreement(struct core_req *req, unsigned status, const struct xc_agreement *a)
{
    core_reply_etag(req, a->version);
    core_reply_json(req, status, xc_agreement_json(a));
}

static bool id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    bool ok = n == XC_AG_ID_LEN && strncmp(id, "ag_", 3) == 0;
    for (size_t i = 3; ok && i < n; i++)
        ok = (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '2' && id[i] <= '7');
    return ok;
}

/* ---- list ---- */

static void xc_handler_agreements_list(struct core_req *req)
{
    struct core_admin adm;
    if (!core_auth_admin(req, &adm))
        return;
    long limit;
    if (!core_req_limit(req, LIST_DEFAULT, LIST_MAX, &limit))
        return;
    struct xc_ag_filter f = {.state = -1};
    f.after = core_req_query(req, "cursor");
    f.provider = core_req_query(req, "provider");
    f.consumer = core_req_query(req, "consumer");
    const char *state = core_req_query(req, "state");
    if (f.after && !id_ok(f.after)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "cursor is not one this API gave out");
        return;
    }
    if ((f.provider && !core_tenant_id_ok(f.provider)) ||
        (f.consumer && !core_tenant_id_ok(f.consumer))) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "provider and consumer must be tenant ids");
        return;
    }
    if (state) {
        enum xc_ag_state st;
        if (!xc_ag_state_parse(state, &st)) {
            core_reply_error(req, CORE_ERR_BAD_REQUEST,
                             "state must be proposed, active, suspended or revoked");
            return;
        }
        f.state = (int)st;
    }
    f.limit = (int)limit + 1; /* one more than asked tells whether a page follows */
    struct xc_agreement *items = NULL;
    size_t n = 0;
    struct xc_ag_result res;
    enum xc_ag_rc rc = xc_agreement_list(adm.context, &f, &items, &n, &res);
    if (rc != XC_AG_OK) {
        reply_rc(req, rc, &res);
        return;
    }
    json_t *arr = json_array(), *next = json_null();
    if (n > (size_t)limit) {
        json_decref(next);
        next = json_string(items[limit - 1].id);
    }
    for (size_t i = 0; i < n; i++) {
        if (i < (size_t)limit)
            json_array_append_new(arr, xc_agreement_json(&items[i]));
        xc_agreement_release(&items[i]);
    }
    free(items);
    core_reply_json(req, 200, json_pack("{s:o, s:o}", "items", arr, "next", next));
}

/* ---- propose ---- */

static void xc_handler_agreements_create(struct core_req *req)
{
    struct core_admin adm;
    if (!core_auth_admin(req, &adm))
        return;
    json_t *body = core_req_body_json(req);
    if (!body)
        return;
    static const char *const keys[] = {
        "provider",      "consumer",   "entity_types", "attrs",
        "actions",       "purposes",   "personal",     "consent_scope",
        "resident_attr", "valid_from", "valid_until",  "rate_per_minute",
        "description",   NULL};
    if (!core_req_json_members(req, body, keys))
        return;
    struct xc_agreement a = {0};
    char err[300];
    if (!xc_agreement_from_json(body, adm.platform ? NULL : adm.p->tenant, &a, err, sizeof err)) {
        xc_agreement_release(&a);
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", err);
        return;
    }
    if (!adm.platform && strcmp(a.consumer, adm.p->tenant) != 0) {
        xc_agreement_release(&a);
        core_reply_error(req, CORE_ERR_FORBIDDEN,
                         "a tenant admin proposes agreements with its own town as the consumer");
        return;
    }
    struct xc_agreement made;
    struct xc_ag_result res;
    enum xc_ag_rc rc = xc_agreement_create(adm.context, &a, adm.actor, &made, &res);
    xc_agreement_release(&a);
    if (rc != XC_AG_OK) {
        reply_rc(req, rc, &res);
        return;
    }
    core_reply_header(req, "Location",
                      core_psprintf(req->pool, "/admin/v1/agreements/%s", made.id));
    reply_agreement(req, 201, &made);
    xc_agreement_release(&made);
}

/* ---- one agreement ---- */

static const char *target(struct core_req *req)
{
    const char *id = core_req_param(req, "id");
    if (!id_ok(id)) {
        core_reply_error(req, CORE_ERR_NOT_FOUND, "no such agreement");
        return NULL;
    }
    return id;
}

static void xc_handler_agreements_read(struct core_req *req)
{
    struct core_admin adm;
    if (!core_auth_admin(req, &adm))
        return;
    const char *id = target(req);
    if (!id)
        return;
    struct xc_agreement a;
    struct xc_ag_result res;
    enum xc_ag_rc rc = xc_agreement_get(adm.context, id, &a, &res);
    if (rc != XC_AG_OK) {
        reply_rc(req, rc, &res);
        return;
    }
    reply_agreement(req, 200, &a);
    xc_agreement_release(&a);
}

static void xc_handler_agreements_update(struct core_req *req)
{
    struct core_admin adm;
    if (!core_auth_admin(req, &adm))
        return;
    const char *id = target(req);
    if (!id)
        return;
    json_t *body = core_req_body_json(req);
    if (!body)
        return;
    static const char *const keys[] = {"state", "version", NULL};
    if (!core_req_json_members(req, body, keys))
        return;
    const char *state = json_string_value(json_object_get(body, "state"));
    enum xc_ag_state to;
    if (!state || !xc_ag_state_parse(state, &to) || to == XC_AG_PROPOSED) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST,
                         "state must be \"active\", \"suspended\" or \"revoked\" (the terms of an "
                         "agreement do not change: propose a new one)");
        return;
    }
    int version;
    if (!core_req_if_match(req, &version))
        return;
    json_t *bv = json_object_get(body, "version");
    if (bv) {
        if (!json_is_integer(bv) || json_integer_value(bv) < 1 ||
            json_integer_value(bv) > (1 << 30) ||
            (version && version != (int)json_integer_value(bv))) {
            core_reply_error(req, CORE_ERR_BAD_REQUEST,
                             "version must be the agreement's version (and agree with If-Match)");
            return;
        }
        version = (int)json_integer_value(bv);
    }
    struct xc_agreement a;
    struct xc_ag_result res;
    enum xc_ag_rc rc = xc_agreement_set_state(adm.context, id, to, version, adm.actor, &a, &res);
    if (rc != XC_AG_OK) {
        reply_rc(req, rc, &res);
        return;
    }
    reply_agreement(req, 200, &a);
    xc_agreement_release(&a);
}

static const struct core_route routes[] = {
    {CORE_GET, "/admin/v1/agreements", xc_handler_agreements_list,
     "List agreements (admin: all; tenant.admin: its town's as provider or consumer)", "agreements",
     0},
    {CORE_POST, "/admin/v1/agreements", xc_handler_agreements_create,
     "Propose an agreement (tenant.admin: as the consumer)", "agreements", 64 * 1024},
    {CORE_GET, "/admin/v1/agreements/{id}", xc_handler_agreements_read, "Read an agreement",
     "agreements", 0},
    {CORE_PATCH, "/admin/v1/agreements/{id}", xc_handler_agreements_update,
     "Approve, suspend, resume or revoke an agreement", "agreements", 4 * 1024},
};

void xc_agreement_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
