/* /admin/v1/clients[/{id}]: service IDs over HTTP, with the tenant rules of
 * the tenant API: "admin" manages every tenant's clients, "tenant.admin" its
 * own tenant's (the database's row-level security says the same). */
#include <stdlib.h>

#include <openssl/crypto.h>

#include "authz/az_client.h"
#include "authz/az_internal.h"
#include "core/auth.h"
#include "core/db.h"
#include "core/http.h"

#define LIST_DEFAULT 100
#define LIST_MAX     500

void az_reply_rc(struct core_req *req, enum az_rc rc, const struct az_result *res)
{
    switch (rc) {
    case AZ_CONFLICT:
        core_reply_error(req, CORE_ERR_CONFLICT, "%s", res->message);
        return;
    case AZ_NOT_FOUND:
        core_reply_error(req, CORE_ERR_NOT_FOUND, "%s", res->message);
        return;
    case AZ_INVALID:
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", res->message);
        return;
    case AZ_FORBIDDEN:
        core_reply_error(req, CORE_ERR_FORBIDDEN, "%s", res->message);
        return;
    case AZ_UNAVAILABLE:
        core_reply_error(req, CORE_ERR_DB_UNAVAILABLE, NULL);
        return;
    case AZ_OK:
    case AZ_ERROR:
        break;
    }
    core_reply_error(req, CORE_ERR_INTERNAL, NULL);
}

static void az_handler_clients_list(struct core_req *req)
{
    struct core_admin a;
    if (!core_auth_admin(req, &a))
        return;
    long limit;
    if (!core_req_limit(req, LIST_DEFAULT, LIST_MAX, &limit))
        return;
    const char *cursor = core_req_query(req, "cursor");
    const char *tenant = core_req_query(req, "tenant");
    if ((cursor && strlen(cursor) > 64) || (tenant && !core_tenant_id_ok(tenant))) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "cursor or tenant is malformed");
        return;
    }
    if (!a.platform && tenant && strcmp(tenant, a.p->tenant) != 0) {
        core_reply_error(req, CORE_ERR_FORBIDDEN, "a tenant admin lists its own tenant's clients");
        return;
    }
    struct az_client *items = NULL;
    size_t n = 0;
    struct az_result res;
    enum az_rc rc = az_client_list(a.context, tenant, cursor, (int)limit + 1, &items, &n, &res);
    if (rc != AZ_OK) {
        az_reply_rc(req, rc, &res);
        return;
    }
    json_t *arr = json_array(), *next = json_null();
    if (n > (size_t)limit) {
        json_decref(next);
        next = json_string(items[limit - 1].id);
    }
    for (size_t i = 0; i < n; i++) {
        if (i < (size_t)limit)
            json_array_append_new(arr, az_client_json(&items[i]));
        az_client_release(&items[i]);
    }
    free(items);
    core_reply_json(req, 200, json_pack("{s:o, s:o}", "items", arr, "next", next));
}

static const char *string_member(json_t *body, const char *key, bool *bad)
{
    json_t *v = json_object_get(body, key);
    if (v && !json_is_string(v))
        *bad = true;
    return json_string_value(v);
}

static void az_handler_clients_create(struct core_req *req)
{
    struct core_admin a;
    if (!core_auth_admin(req, &a))
        return;
    json_t *body = core_req_body_json(req);
    if (!body)
        return;
    static const char *const keys[] = {"tenant",
                                       "name",
                                       "token_endpoint_auth_method",
                                       "grant_types",
                                       "scopes",
                                       "default_scopes",
                                       "redirect_uris",
                                       "audiences",
                                       "jwks",
                                       "token_alg",
                                       "token_ttl",
                                       "sector_identifier",
                                       "post_logout_redirect_uris",
                                       NULL};
    if (!core_req_json_members(req, body, keys))
        return;
    bool bad = false;
    struct az_client_spec s = {0};
    s.tenant = string_member(body, "tenant", &bad);
    s.name = string_member(body, "name", &bad);
    const char *method = string_member(body, "token_endpoint_auth_method", &bad);
    const char *alg = string_member(body, "token_alg", &bad);
    s.sector_identifier = string_member(body, "sector_identifier", &bad);
    if (s.sector_identifier && !a.platform) {
        /* a sector decides which apps see one subject for a resident: only
         * the platform may join an app to another's sector */
        core_reply_error(req, CORE_ERR_FORBIDDEN, "only the platform sets sector_identifier");
        return;
    }
    json_t *ttl = json_object_get(body, "token_ttl");
    if (bad || (ttl && !json_is_integer(ttl))) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "a member has the wrong type");
        return;
    }
    if (!s.tenant)
        s.tenant = a.platform ? NULL : a.p->tenant;
    if (!s.tenant) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "tenant is required");
        return;
    }
    if (!a.platform && strcmp(s.tenant, a.p->tenant) != 0) {
        core_reply_error(req, CORE_ERR_FORBIDDEN,
                         "a tenant admin creates clients of its own tenant only");
        return;
    }
    s.auth = AZ_AUTH_BASIC;
    if (method && !az_auth_method_parse(method, &s.auth)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "unknown token_endpoint_auth_method");
        return;
    }
    if (alg && !core_alg_parse(alg, &s.token_alg)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "token_alg must be ES256 or RS256");
        return;
    }
    if (ttl)
        s.token_ttl = json_integer_value(ttl) > 0 && json_integer_value(ttl) < 1000000
                          ? (int)json_integer_value(ttl)
                          : -1;
    s.grant_types = json_object_get(body, "grant_types");
    s.scopes = json_object_get(body, "scopes");
    s.default_scopes = json_object_get(body, "default_scopes");
    s.redirect_uris = json_object_get(body, "redirect_uris");
    s.audiences = json_object_get(body, "audiences");
    s.jwks = json_object_get(body, "jwks");
    s.post_logout_redirect_uris = json_object_get(body, "post_logout_redirect_uris");
    char id[65], secret[64];
    struct az_result res;
    enum az_rc rc = az_client_create(a.context, &s, a.actor, id, secret, NULL, &res);
    if (rc != AZ_OK) {
        az_reply_rc(req, rc, &res);
        return;
    }
    struct az_client c;
    rc = az_client_read(a.context, id, &c, &res);
    if (rc != AZ_OK) {
        OPENSSL_cleanse(secret, sizeof secret);
        az_reply_rc(req, rc, &res);
        return;
    }
    json_t *j = az_client_json(&c);
    if (secret[0])
        json_object_set_new(j, "client_secret", json_string(secret));
    OPENSSL_cleanse(secret, sizeof secret);
    az_client_release(&c);
    core_reply_header(req, "Location", core_psprintf(req->pool, "/admin/v1/clients/%s", id));
    core_reply_json(req, 201, j);
}

static const char *target(struct core_req *req)
{
    const char *id = core_req_param(req, "id");
    if (!id || strlen(id) > 64) {
        core_reply_error(req, CORE_ERR_NOT_FOUND, "no such client");
        return NULL;
    }
    return id;
}

static void az_handler_clients_read(struct core_req *req)
{
    struct core_admin a;
    if (!core_auth_admin(req, &a))
        return;
    const char *id = target(req);
    if (!id)
        return;
    struct az_client c;
    struct az_result res;
    enum az_rc rc = az_client_read(a.context, id, &c, &res);
    if (rc != AZ_OK) {
        az_reply_rc(req, rc, &res);
        return;
    }
    core_reply_json(req, 200, az_client_json(&c));
    az_client_release(&c);
}

static void az_handler_clients_update(struct core_req *req)
{
    struct core_admin a;
    if (!core_auth_admin(req, &a))
        return;
    const char *id = target(req);
    if (!id)
        return;
    json_t *body = core_req_body_json(req);
    if (!body)
        return;
    const char *state = json_string_value(json_object_get(body, "state"));
    if (!json_is_object(body) || json_object_size(body) != 1 || !state ||
        (strcmp(state, "active") != 0 && strcmp(state, "disabled") != 0)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST,
                         "send {\"state\": \"active\"} or {\"state\": \"disabled\"}");
        return;
    }
    struct az_result res;
    enum az_rc rc =
        az_client_set_disabled(a.context, id, strcmp(state, "disabled") == 0, a.actor, &res);
    if (rc != AZ_OK) {
        az_reply_rc(req, rc, &res);
        return;
    }
    az_handler_clients_read(req);
}

static void az_handler_clients_secret(struct core_req *req)
{
    struct core_admin a;
    if (!core_auth_admin(req, &a))
        return;
    const char *id = target(req);
    if (!id)
        return;
    char secret[64];
    struct az_result res;
    enum az_rc rc = az_client_rotate_secret(a.context, id, a.actor, secret, &res);
    if (rc != AZ_OK) {
        az_reply_rc(req, rc, &res);
        return;
    }
    core_reply_json(req, 200, json_pack("{s:s, s:s}", "client_id", id, "client_secret", secret));
    OPENSSL_cleanse(secret, sizeof secret);
}

static const struct core_route routes[] = {
    {CORE_GET, "/admin/v1/clients", az_handler_clients_list,
     "List clients (admin: all or ?tenant=; tenant.admin: its own tenant's)", "authz", 0},
    {CORE_POST, "/admin/v1/clients", az_handler_clients_create,
     "Create a client; the secret is shown once", "authz", 64 * 1024},
    {CORE_GET, "/admin/v1/clients/{id}", az_handler_clients_read, "Read a client", "authz", 0},
    {CORE_PATCH, "/admin/v1/clients/{id}", az_handler_clients_update, "Disable or enable a client",
     "authz", 4096},
    {CORE_POST, "/admin/v1/clients/{id}/secret", az_handler_clients_secret,
     "Rotate a client's secret; the new one is shown once", "authz", 0},
};

void az_clients_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
