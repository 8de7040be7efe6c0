/* /admin/v1/residents[/{login}[/links/{tenant}]]: residents over HTTP. Scope
 * "admin" manages every town's residents; "tenant.admin" its own town's,
 * and the database's row-level security hides the others, so another town's
 * resident is a 404 as if it did not exist. The common ID and the password
 * hash are never shown. */
#include <stdlib.h>

#include "authz/az_internal.h"
#include "authz/az_resident.h"
#include "core/auth.h"
#include "core/db.h"
#include "core/http.h"
#include "core/strbuf.h"
#include "core/url.h"

#define LIST_DEFAULT 50
#define LIST_MAX     200
#define BODY_MAX     (16 * 1024)

/* A string member, or absent; *bad when it is there with another type
 * (null counts as absent only where null_ok). */
static const char *string_member(json_t *body, const char *key, bool null_ok, bool *bad)
{
    json_t *v = json_object_get(body, key);
    if (v && !json_is_string(v) && !(null_ok && json_is_null(v)))
        *bad = true;
    return json_string_value(v);
}

static void az_handler_residents_list(struct core_req *req)
{
    struct core_admin a;
    if (!core_auth_admin(req, &a))
        return;
    long limit;
    if (!core_req_limit(req, LIST_DEFAULT, LIST_MAX, &limit))
        return;
    const char *cursor = core_req_query(req, "cursor");
    const char *tenant = core_req_query(req, "tenant");
    if (cursor && (strlen(cursor) > AZ_LOGIN_MAX || !*cursor)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "cursor is malformed");
        return;
    }
    if (tenant && !core_tenant_id_ok(tenant)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "tenant is not a tenant id");
        return;
    }
    /* a tenant admin naming another town gets what row-level security shows
     * it there: nothing */
    struct az_resident *items = NULL;
    size_t n = 0;
    struct az_result res;
    enum az_rc rc = az_resident_list(a.context, tenant, cursor, (int)limit + 1, &items, &n, &res);
    if (rc != AZ_OK) {
        az_reply_rc(req, rc, &res);
        return;
    }
    json_t *arr = json_array(), *next = json_null();
    if (n > (size_t)limit) {
        json_decref(next);
        next = json_string(items[limit - 1].login);
    }
    for (size_t i = 0; i < n && i < (size_t)limit; i++)
        json_array_append_new(arr, az_resident_json(&items[i]));
    free(items);
    core_reply_json(req, 200, json_pack("{s:o, s:o}", "items", arr, "next", next));
}

/* The resident with its links, as GET shows it; NULL after replying. */
static json_t *resident_with_links(struct core_req *req, const struct core_admin *a,
                                   const char *login)
{
    struct az_resident r;
    struct az_result res;
    json_t *links = NULL;
    enum az_rc rc = az_resident_by_login(a->context, login, &r, &res);
    if (rc == AZ_OK)
        rc = az_resident_links(a->context, login, &links, &res);
    if (rc != AZ_OK) {
        az_reply_rc(req, rc, &res);
        return NULL;
    }
    json_t *j = az_resident_json(&r);
    json_object_set_new(j, "links", links);
    return j;
}

static void az_handler_residents_create(struct core_req *req)
{
    struct core_admin a;
    if (!core_auth_admin(req, &a))
        return;
    json_t *body = core_req_body_json(req);
    if (!body)
        return;
    static const char *const keys[] = {"tenant", "login", "name", "email", "password", NULL};
    if (!core_req_json_members(req, body, keys))
        return;
    bool bad = false;
    struct az_resident_spec s = {0};
    s.tenant = string_member(body, "tenant", false, &bad);
    s.login = string_member(body, "login", false, &bad);
    s.name = string_member(body, "name", false, &bad);
    s.email = string_member(body, "email", true, &bad);
    s.password = string_member(body, "password", false, &bad);
    if (bad) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "a member has the wrong type (strings only)");
        return;
    }
    if (!s.tenant)
        s.tenant = a.platform ? NULL : a.p->tenant;
    if (!s.tenant || !s.login || !s.password) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s is required",
                         !s.tenant  ? "tenant"
                         : !s.login ? "login"
                                    : "password");
        return;
    }
    if (!a.platform && strcmp(s.tenant, a.p->tenant) != 0) {
        core_reply_error(req, CORE_ERR_FORBIDDEN,
                         "a tenant admin creates residents of its own town only");
        return;
    }
    s.password_len = json_string_length(json_object_get(body, "password"));
    struct az_resident r;
    struct az_result res;
    enum az_rc rc = az_resident_create(a.context, &s, a.actor, &r, &res);
    if (rc != AZ_OK) {
        az_reply_rc(req, rc, &res);
        return;
    }
    json_t *j = az_resident_json(&r);
    json_object_set_new(j, "links", json_array());
    struct strbuf loc;
    strbuf_init(&loc, 2048);
    strbuf_adds(&loc, "/admin/v1/residents/");
    core_url_encode(&loc, r.login);
    core_reply_header(req, "Location", core_psprintf(req->pool, "%s", loc.buf));
    strbuf_release(&loc);
    core_reply_json(req, 201, j);
}

static void az_handler_residents_read(struct core_req *req)
{
    struct core_admin a;
    if (!core_auth_admin(req, &a))
        return;
    json_t *j = resident_with_links(req, &a, core_req_param(req, "login"));
    if (j)
        core_reply_json(req, 200, j);
}

static void az_handler_residents_update(struct core_req *req)
{
    struct core_admin a;
    if (!core_auth_admin(req, &a))
        return;
    const char *login = core_req_param(req, "login");
    json_t *body = core_req_body_json(req);
    if (!body)
        return;
    static const char *const keys[] = {"name", "email", "password", "state", NULL};
    if (!core_req_json_members(req, body, keys))
        return;
    bool bad = false;
    const char *name = string_member(body, "name", false, &bad);
    const char *email = string_member(body, "email", true, &bad);
    const char *password = string_member(body, "password", false, &bad);
    const char *state = string_member(body, "state", false, &bad);
    if (bad) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST,
                         "a member has the wrong type (strings; email may be null)");
        return;
    }
    if (json_object_size(body) == 0) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST,
                         "nothing to change: send name, email, password and/or state");
        return;
    }
    if (state && strcmp(state, "active") != 0 && strcmp(state, "disabled") != 0) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "state must be \"active\" or \"disabled\"");
        return;
    }
    if (json_is_null(json_object_get(body, "email")))
        email = ""; /* null clears the address */
    struct az_result res;
    enum az_rc rc = AZ_OK;
    if (name || email || password)
        rc = az_resident_update(
            a.context, login, name, email, password,
            password ? json_string_length(json_object_get(body, "password")) : 0, a.actor, &res);
    if (rc == AZ_OK && state)
        rc = az_resident_set_disabled(a.context, login, strcmp(state, "disabled") == 0, a.actor,
                                      &res);
    if (rc != AZ_OK) {
        az_reply_rc(req, rc, &res);
        return;
    }
    json_t *j = resident_with_links(req, &a, login);
    if (j)
        core_reply_json(req, 200, j);
}

/* The {tenant} of a links path; NULL after a 404. */
static const char *link_tenant(struct core_req *req)
{
    const char *t = core_req_param(req, "tenant");
    if (!t || !core_tenant_id_ok(t)) {
        core_reply_error(req, CORE_ERR_NOT_FOUND, "no such tenant");
        return NULL;
    }
    return t;
}

static void az_handler_residents_link(struct core_req *req)
{
    struct core_admin a;
    if (!core_auth_admin(req, &a))
        return;
    const char *login = core_req_param(req, "login");
    const char *tenant = link_tenant(req);
    if (!tenant)
        return;
    json_t *body = core_req_body_json(req);
    if (!body)
        return;
    static const char *const keys[] = {"local_id", NULL};
    if (!core_req_json_members(req, body, keys))
        return;
    const char *local_id = json_string_value(json_object_get(body, "local_id"));
    if (!local_id) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "local_id (a string) is required");
        return;
    }
    struct az_result res;
    enum az_rc rc = az_resident_link(a.context, login, tenant, local_id, a.actor, &res);
    json_t *links = NULL;
    if (rc == AZ_OK)
        rc = az_resident_links(a.context, login, &links, &res);
    if (rc != AZ_OK) {
        az_reply_rc(req, rc, &res);
        return;
    }
    json_t *mine = NULL;
    size_t i;
    json_t *l;
    json_array_foreach(links, i, l)
    {
        if (strcmp(json_string_value(json_object_get(l, "tenant")), tenant) == 0)
            mine = json_incref(l);
    }
    json_decref(links);
    if (!mine) { /* unlinked again between the two transactions */
        core_reply_error(req, CORE_ERR_CONFLICT, "the link changed meanwhile");
        return;
    }
    core_reply_json(req, 200, mine);
}

static void az_handler_residents_unlink(struct core_req *req)
{
    struct core_admin a;
    if (!core_auth_admin(req, &a))
        return;
    const char *login = core_req_param(req, "login");
    const char *tenant = link_tenant(req);
    if (!tenant)
        return;
    struct az_result res;
    enum az_rc rc = az_resident_unlink(a.context, login, tenant, a.actor, &res);
    if (rc != AZ_OK) {
        az_reply_rc(req, rc, &res);
        return;
    }
    core_reply_empty(req, 204);
}

static const struct core_route routes[] = {
    {CORE_GET, "/admin/v1/residents", az_handler_residents_list,
     "List residents (admin: all or ?tenant=; tenant.admin: its own town's)", "authz", 0},
    {CORE_POST, "/admin/v1/residents", az_handler_residents_create,
     "Create a resident (login, password, name, email) in a town", "authz", BODY_MAX},
    {CORE_GET, "/admin/v1/residents/{login}", az_handler_residents_read,
     "Read a resident and their links to towns", "authz", 0},
    {CORE_PATCH, "/admin/v1/residents/{login}", az_handler_residents_update,
     "Change a resident's name, email, password or state", "authz", BODY_MAX},
    {CORE_PUT, "/admin/v1/residents/{login}/links/{tenant}", az_handler_residents_link,
     "Link a resident to a town's local resident number", "authz", BODY_MAX},
    {CORE_DELETE, "/admin/v1/residents/{login}/links/{tenant}", az_handler_residents_unlink,
     "Remove a resident's link to a town", "authz", 0},
};

void az_residents_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
