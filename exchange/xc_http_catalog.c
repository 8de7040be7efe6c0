/*
 * GET /exchange/v1/catalog: what the caller's town may read or write in
 * other towns right now, agreement by agreement (X-Road's allowedMethods,
 * an EDC catalogue): provider, types, attributes, actions, purposes,
 * validity, rate, and for personal data the consent scope an app needs.
 */
#include "core/log.h"
#include "exchange/xc_agreement.h"
#include "exchange/xc_http.h"
#include "tenants/tn.h"

static void get_catalog(struct core_req *req)
{
    const struct core_principal *p = core_auth(req);
    if (!p)
        return;
    if (!core_principal_has_scope(p, "ngsi.read") && !core_principal_has_scope(p, "ngsi.write")) {
        core_auth_insufficient_scope(req, "ngsi.read", NULL);
        return;
    }
    if (!p->tenant || !core_tenant_id_ok(p->tenant)) {
        core_reply_error(req, CORE_ERR_FORBIDDEN, "the token names no tenant");
        return;
    }
    const char *provider = core_req_query(req, "provider");
    if (provider && !core_tenant_id_ok(provider)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "provider is not a town id");
        return;
    }
    json_t *all = xc_policy_catalog(p->tenant, (int64_t)time(NULL));
    if (!all) {
        core_reply_error(req, CORE_ERR_DB_UNAVAILABLE, NULL);
        return;
    }
    json_t *items = json_array();
    size_t i;
    json_t *a;
    json_array_foreach(all, i, a)
    {
        const char *prov = json_string_value(json_object_get(a, "provider"));
        if (!prov || (provider && strcmp(prov, provider) != 0))
            continue;
        struct tn_brief b;
        enum tn_rc rc = tn_brief(prov, &b);
        if (rc == TN_UNAVAILABLE) {
            json_decref(items);
            json_decref(all);
            core_reply_error(req, CORE_ERR_DB_UNAVAILABLE, NULL);
            return;
        }
        if (rc != TN_OK || b.state != TN_ACTIVE)
            continue;
        json_t *it = json_pack(
            "{s:O, s:s, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:s}", "agreement",
            json_object_get(a, "id"), "provider", prov, "entity_types",
            json_object_get(a, "entity_types"), "attrs", json_object_get(a, "attrs"), "actions",
            json_object_get(a, "actions"), "purposes", json_object_get(a, "purposes"), "personal",
            json_object_get(a, "personal"), "valid_from", json_object_get(a, "valid_from"),
            "valid_until", json_object_get(a, "valid_until"), "rate_per_minute",
            json_object_get(a, "rate_per_minute"), "city_os", b.hosted ? "hosted" : "remote");
        if (!it) { /* xc_agreement_json always gives these members */
            core_log_bug("agreement %s cannot be put in the catalogue",
                         json_string_value(json_object_get(a, "id")));
            continue;
        }
        if (json_is_true(json_object_get(a, "personal"))) {
            json_object_set(it, "consent_scope", json_object_get(a, "consent_scope"));
            json_object_set(it, "resident_attr", json_object_get(a, "resident_attr"));
        }
        json_array_append_new(items, it);
    }
    json_decref(all);
    core_reply_json(req, 200, json_pack("{s:s, s:o}", "consumer", p->tenant, "items", items));
}

void xc_catalog_routes(struct core_router *r)
{
    static const struct core_route routes[] = {
        {CORE_GET, "/exchange/v1/catalog", get_catalog,
         "what the caller's town may read or write in other towns, under which agreement",
         "exchange", 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
