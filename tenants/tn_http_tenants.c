/* /admin/v1/tenants[/{id}]: the registry over HTTP. Scope "admin" acts for
 * the platform on every tenant; "tenant.admin" reads and edits only its own
 * tenant and cannot create tenants, change a parent or suspend. The database
 * enforces the same rules again (row-level security and a trigger). */
#include <stdlib.h>

#include "core/auth.h"
#include "core/db.h"
#include "core/http.h"
#include "tenants/tn.h"

#define LIST_DEFAULT 100
#define LIST_MAX     500

static void reply_rc(struct core_req *req, enum tn_rc rc, const struct tn_result *res)
{
    switch (rc) {
    case TN_OK:
        core_reply_error(req, CORE_ERR_INTERNAL, NULL);
        return;
    case TN_NOT_FOUND:
        core_reply_error(req, CORE_ERR_NOT_FOUND, "%s", res->message);
        return;
    case TN_EXISTS:
        core_reply_error(req, CORE_ERR_CONFLICT, "%s", res->message);
        return;
    case TN_BAD_PARENT:
    case TN_CYCLE:
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", res->message);
        return;
    case TN_FORBIDDEN:
        core_reply_error(req, CORE_ERR_FORBIDDEN, "%s", res->message);
        return;
    case TN_CONFLICT:
        core_reply_error(req, CORE_ERR_PRECONDITION_FAILED, "%s", res->message);
        return;
    case TN_UNAVAILABLE:
        core_reply_error(req, CORE_ERR_DB_UNAVAILABLE, NULL);
        return;
    case TN_ERROR:
        break;
    }
    core_reply_error(req, CORE_ERR_INTERNAL, NULL);
}

static void reply_tenant(struct core_req *req, unsigned status, const struct tn_tenant *t)
{
    core_reply_etag(req, t->version);
    core_reply_json(req, status, tn_tenant_json(t));
}

/* ---- request bodies ---- */

static bool only_keys(json_t *obj, const char *const *allowed, const char **bad_key)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, key) == 0;
        if (!ok) {
            *bad_key = key;
            return false;
        }
    }
    return true;
}

/* Reads "city_os" into up/hosted (strings borrowed from the JSON). */
static bool parse_city_os(json_t *os, bool *hosted, struct tn_upstream *up, char *err,
                          size_t errlen)
{
    static const char *const os_keys[] = {"kind", "url", "fiware_service", "auth", NULL};
    static const char *const auth_keys[] = {"type",          "token", "token_url", "client_id",
                                            "client_secret", "scope", NULL};
    memset(up, 0, sizeof *up);
    const char *bad_key;
    if (!json_is_object(os)) {
        snprintf(err, errlen, "city_os must be an object");
        return false;
    }
    if (!only_keys(os, os_keys, &bad_key)) {
        snprintf(err, errlen, "city_os has an unknown member \"%s\"", bad_key);
        return false;
    }
    const char *kind = json_string_value(json_object_get(os, "kind"));
    if (kind && strcmp(kind, "hosted") == 0) {
        if (json_object_size(os) != 1) {
            snprintf(err, errlen, "a hosted city_os takes only \"kind\"");
            return false;
        }
        *hosted = true;
        return true;
    }
    if (!kind || strcmp(kind, "remote") != 0) {
        snprintf(err, errlen, "city_os.kind must be \"hosted\" or \"remote\"");
        return false;
    }
    *hosted = false;
    const char *url, *svc;
    if (!core_json_opt_string(os, "url", &url, err, errlen) ||
        !core_json_opt_string(os, "fiware_service", &svc, err, errlen))
        return false;
    up->url = (char *)url;
    up->fiware_service = (char *)svc;
    json_t *auth = json_object_get(os, "auth");
    if (auth) {
        if (!json_is_object(auth)) {
            snprintf(err, errlen, "city_os.auth must be an object");
            return false;
        }
        if (!only_keys(auth, auth_keys, &bad_key)) {
            snprintf(err, errlen, "city_os.auth has an unknown member \"%s\"", bad_key);
            return false;
        }
        const char *type, *token, *token_url, *client_id, *secret, *scope;
        if (!core_json_opt_string(auth, "type", &type, err, errlen) ||
            !core_json_opt_string(auth, "token", &token, err, errlen) ||
            !core_json_opt_string(auth, "token_url", &token_url, err, errlen) ||
            !core_json_opt_string(auth, "client_id", &client_id, err, errlen) ||
            !core_json_opt_string(auth, "client_secret", &secret, err, errlen) ||
            !core_json_opt_string(auth, "scope", &scope, err, errlen))
            return false;
        if (!type || strcmp(type, "none") == 0) {
            up->auth = TN_AUTH_NONE;
        } else if (strcmp(type, "bearer") == 0) {
            up->auth = TN_AUTH_BEARER;
            if (secret) {
                snprintf(err, errlen, "a bearer upstream takes \"token\", not \"client_secret\"");
                return false;
            }
            secret = token;
        } else if (strcmp(type, "client_credentials") == 0) {
            up->auth = TN_AUTH_CLIENT_CREDENTIALS;
            if (token) {
                snprintf(err, errlen, "client_credentials takes \"client_secret\", not \"token\"");
                return false;
            }
        } else {
            snprintf(err, errlen,
                     "city_os.auth.type must be \"none\", \"bearer\" or \"client_credentials\"");
            return false;
        }
        up->token_url = (char *)token_url;
        up->client_id = (char *)client_id;
        up->scope = (char *)scope;
        up->secret = (char *)secret;
        up->secret_len = secret ? strlen(secret) : 0;
    }
    const char *why = tn_check_upstream(up);
    if (why) {
        snprintf(err, errlen, "%s", why);
        return false;
    }
    return true;
}

/* ---- handlers ---- */

static void tn_handler_list(struct core_req *req)
{
    struct core_admin c;
    if (!core_auth_admin(req, &c))
        return;
    long limit;
    if (!core_req_limit(req, LIST_DEFAULT, LIST_MAX, &limit))
        return;
    const char *cursor = core_req_query(req, "cursor");
    if (cursor && !core_tenant_id_ok(cursor)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "cursor is not one this API gave out");
        return;
    }
    json_t *items = json_array();
    json_t *next = json_null();
    struct tn_result res;
    if (!c.platform) {
        /* a town admin's list is its own tenant */
        struct tn_tenant t;
        enum tn_rc rc = tn_get(c.context, c.p->tenant, &t, &res);
        if (rc != TN_OK && rc != TN_NOT_FOUND) {
            json_decref(items);
            reply_rc(req, rc, &res);
            return;
        }
        if (rc == TN_OK && (!cursor || strcmp(cursor, t.id) < 0))
            json_array_append_new(items, tn_tenant_json(&t));
        if (rc == TN_OK)
            tn_tenant_release(&t);
    } else {
        struct tn_tenant *list = NULL;
        size_t n = 0;
        enum tn_rc rc = tn_list(c.context, cursor, (int)limit + 1, &list, &n, &res);
        if (rc != TN_OK) {
            json_decref(items);
            reply_rc(req, rc, &res);
            return;
        }
        /* one more than asked for tells whether another page follows */
        if (n > (size_t)limit) {
            json_decref(next);
            next = json_string(list[limit - 1].id);
        }
        for (size_t i = 0; i < n; i++) {
            if (i < (size_t)limit)
                json_array_append_new(items, tn_tenant_json(&list[i]));
            tn_tenant_release(&list[i]);
        }
        free(list);
    }
    core_reply_json(req, 200, json_pack("{s:o, s:o}", "items", items, "next", next));
}

static void tn_handler_create(struct core_req *req)
{
    struct core_admin c;
    if (!core_auth_admin(req, &c))
        return;
    if (!c.platform) {
        core_reply_error(req, CORE_ERR_FORBIDDEN, "only the platform admin creates tenants");
        return;
    }
    json_t *body = core_req_body_json(req);
    if (!body)
        return;
    static const char *const keys[] = {"id", "name", "parent", "city_os", NULL};
    char err[200];
    if (!core_req_json_members(req, body, keys))
        return;
    const char *id, *name, *parent;
    if (!core_json_opt_string(body, "id", &id, err, sizeof err) ||
        !core_json_opt_string(body, "name", &name, err, sizeof err) ||
        !core_json_opt_string(body, "parent", &parent, err, sizeof err)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", err);
        return;
    }
    const char *why;
    if ((why = tn_check_id(id)) || (why = tn_check_name(name))) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", why);
        return;
    }
    if (parent && (why = tn_check_id(parent))) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "parent: %s", why);
        return;
    }
    struct tn_tenant t = {0};
    json_t *os = json_object_get(body, "city_os");
    if (!os) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST,
                         "city_os is missing: {\"kind\":\"hosted\"} or {\"kind\":\"remote\", ...}");
        return;
    }
    if (!parse_city_os(os, &t.hosted, &t.up, err, sizeof err)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", err);
        return;
    }
    xsnprintf(t.id, sizeof t.id, "%s", id);
    t.name = (char *)name;
    t.parent = (char *)parent;
    struct tn_result res;
    enum tn_rc rc = tn_create(&t, c.actor, &res);
    if (rc != TN_OK) {
        reply_rc(req, rc, &res);
        return;
    }
    struct tn_tenant made;
    rc = tn_get(CORE_DB_PLATFORM, id, &made, &res);
    if (rc != TN_OK) {
        reply_rc(req, rc, &res);
        return;
    }
    core_reply_header(req, "Location", core_psprintf(req->pool, "/admin/v1/tenants/%s", id));
    reply_tenant(req, 201, &made);
    tn_tenant_release(&made);
}

/* The {id} of the path, checked, and the caller allowed to touch it. */
static const char *target(struct core_req *req, const struct core_admin *c)
{
    const char *id = core_req_param(req, "id");
    const char *why = tn_check_id(id);
    if (why) {
        core_reply_error(req, CORE_ERR_NOT_FOUND, "no tenant %s", id);
        return NULL;
    }
    if (!c->platform && strcmp(id, c->p->tenant) != 0) {
        core_reply_error(req, CORE_ERR_FORBIDDEN, "a tenant admin may only manage its own tenant");
        return NULL;
    }
    return id;
}

static void tn_handler_read(struct core_req *req)
{
    struct core_admin c;
    if (!core_auth_admin(req, &c))
        return;
    const char *id = target(req, &c);
    if (!id)
        return;
    struct tn_tenant t;
    struct tn_result res;
    enum tn_rc rc = tn_get(c.context, id, &t, &res);
    if (rc != TN_OK) {
        reply_rc(req, rc, &res);
        return;
    }
    reply_tenant(req, 200, &t);
    tn_tenant_release(&t);
}

static void tn_handler_update(struct core_req *req)
{
    struct core_admin c;
    if (!core_auth_admin(req, &c))
        return;
    const char *id = target(req, &c);
    if (!id)
        return;
    json_t *body = core_req_body_json(req);
    if (!body)
        return;
    static const char *const keys[] = {"name", "parent", "state", "city_os", "reason", NULL};
    char err[200];
    if (!core_req_json_members(req, body, keys))
        return;
    struct tn_patch patch = {.state = -1};
    const char *state, *why;
    if (!core_json_opt_string(body, "name", &patch.name, err, sizeof err) ||
        !core_json_opt_string(body, "state", &state, err, sizeof err) ||
        !core_json_opt_string(body, "reason", &patch.reason, err, sizeof err)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", err);
        return;
    }
    if (patch.name && (why = tn_check_name(patch.name))) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", why);
        return;
    }
    if (patch.reason && (strlen(patch.reason) > 500 || tn_check_name(patch.reason))) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "reason must be text of at most 500 bytes");
        return;
    }
    json_t *parent = json_object_get(body, "parent");
    if (parent) {
        if (!c.platform) {
            core_reply_error(req, CORE_ERR_FORBIDDEN, "only the platform admin changes a parent");
            return;
        }
        if (json_is_null(parent)) {
            patch.parent = "";
        } else if (!json_is_string(parent) || (why = tn_check_id(json_string_value(parent)))) {
            core_reply_error(req, CORE_ERR_BAD_REQUEST, "parent must be a tenant id or null");
            return;
        } else {
            patch.parent = json_string_value(parent);
        }
    }
    if (state) {
        if (!c.platform) {
            core_reply_error(req, CORE_ERR_FORBIDDEN,
                             "only the platform admin suspends or resumes a tenant");
            return;
        }
        if (strcmp(state, "active") == 0) {
            patch.state = TN_ACTIVE;
        } else if (strcmp(state, "suspended") == 0) {
            patch.state = TN_SUSPENDED;
        } else {
            core_reply_error(req, CORE_ERR_BAD_REQUEST,
                             "state must be \"active\" or \"suspended\"");
            return;
        }
    }
    struct tn_upstream up;
    json_t *os = json_object_get(body, "city_os");
    if (os) {
        if (!parse_city_os(os, &patch.hosted, &up, err, sizeof err)) {
            core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", err);
            return;
        }
        patch.set_city_os = true;
        patch.up = &up;
    }
    if (!core_req_if_match(req, &patch.if_version))
        return;
    struct tn_tenant t;
    struct tn_result res;
    enum tn_rc rc = tn_update(c.context, id, &patch, c.actor, &t, &res);
    if (rc != TN_OK) {
        reply_rc(req, rc, &res);
        return;
    }
    reply_tenant(req, 200, &t);
    tn_tenant_release(&t);
}

static const struct core_route routes[] = {
    {CORE_GET, "/admin/v1/tenants", tn_handler_list, "List tenants (admin: all; tenant.admin: own)",
     "tenants", 0},
    {CORE_POST, "/admin/v1/tenants", tn_handler_create, "Create a tenant (admin)", "tenants",
     64 * 1024},
    {CORE_GET, "/admin/v1/tenants/{id}", tn_handler_read, "Read a tenant", "tenants", 0},
    {CORE_PATCH, "/admin/v1/tenants/{id}", tn_handler_update,
     "Update a tenant: name, city OS; parent and state (admin)", "tenants", 64 * 1024},
};

void tn_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
