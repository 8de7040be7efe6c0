/* Staff roles: who may use the consoles, and the principal of a console's
 * own reads. */
#include <stdlib.h>
#include <strings.h>

#include "audit/au.h"
#include "authz/az_staff.h"
#include "core/db.h"
#include "core/log.h"

static const struct {
    unsigned bit;
    const char *name;
} roles[] = {
    {AZ_ROLE_PLATFORM_ADMIN, "platform_admin"},
    {AZ_ROLE_TENANT_ADMIN, "tenant_admin"},
    {AZ_ROLE_AUDITOR, "auditor"},
};

const char *az_role_name(unsigned role)
{
    for (size_t i = 0; i < ARRAY_SIZE(roles); i++)
        if (roles[i].bit == role)
            return roles[i].name;
    return NULL;
}

bool az_role_parse(const char *s, unsigned *out)
{
    for (size_t i = 0; s && i < ARRAY_SIZE(roles); i++)
        if (strcmp(roles[i].name, s) == 0) {
            *out = roles[i].bit;
            return true;
        }
    return false;
}

const char *az_role_scope(unsigned r)
{
    /* every combination spelled out: no buffer, no allocation per request */
    static const char *const scopes[8] = {
        "",
        "admin tenant.admin audit.read",
        "tenant.admin",
        "admin tenant.admin audit.read",
        "audit.read",
        "admin tenant.admin audit.read",
        "tenant.admin audit.read",
        "admin tenant.admin audit.read",
    };
    return scopes[r & 7u];
}

static unsigned roles_of(const char *list)
{
    unsigned bits = 0;
    for (const char *s = list; s && *s;) {
        size_t n = strcspn(s, " ");
        for (size_t i = 0; i < ARRAY_SIZE(roles); i++)
            if (strlen(roles[i].name) == n && strncmp(roles[i].name, s, n) == 0)
                bits |= roles[i].bit;
        s += n;
        while (*s == ' ')
            s++;
    }
    return bits;
}

/* ---- who is signed in ---- */

static struct core_stmt az_staff_get_stmt =
    CORE_STMT("az_staff_get",
              "SELECT r.login, r.name, r.tenant_id, coalesce((SELECT string_agg(s.role, ' ') FROM "
              "staff_roles s WHERE s.resident_id = r.id), '') FROM residents r WHERE r.id = $1");

struct get_arg {
    struct az_staff *out;
    bool found;
};

static enum core_db_rc get_tx(struct core_db_conn *c, void *p)
{
    struct get_arg *a = p;
    const char *v[] = {a->out->session.resident};
    PGresult *r = core_db_exec(c, &az_staff_get_stmt, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    a->found = PQntuples(r) == 1;
    if (a->found) {
        xsnprintf(a->out->login, sizeof a->out->login, "%s", PQgetvalue(r, 0, 0));
        xsnprintf(a->out->name, sizeof a->out->name, "%s", PQgetvalue(r, 0, 1));
        xsnprintf(a->out->tenant, sizeof a->out->tenant, "%s", PQgetvalue(r, 0, 2));
        a->out->roles = roles_of(PQgetvalue(r, 0, 3));
    }
    PQclear(r);
    return CORE_DB_OK;
}

enum az_session_rc az_staff_get(struct core_req *req, struct az_staff *out)
{
    memset(out, 0, sizeof *out);
    enum az_session_rc rc = az_session_get(req, &out->session);
    if (rc != AZ_SESSION_OK)
        return rc;
    struct get_arg a = {out, false};
    if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, get_tx, &a, NULL) != CORE_DB_OK)
        return AZ_SESSION_UNAVAILABLE;
    return a.found ? AZ_SESSION_OK : AZ_SESSION_NONE;
}

static bool console_read(struct core_req *req)
{
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
        return false;
    /* what the consoles read: the audit log, and the towns, clients and
     * agreements they list (not residents' personal data) */
    static const char *const prefixes[] = {"/audit/v1/", "/admin/v1/tenants", "/admin/v1/clients",
                                           "/admin/v1/agreements"};
    bool listed = false;
    for (size_t i = 0; i < ARRAY_SIZE(prefixes) && !listed; i++) {
        size_t n = strlen(prefixes[i]);
        listed = strncmp(req->path, prefixes[i], n) == 0 &&
                 (prefixes[i][n - 1] == '/' || req->path[n] == '\0' || req->path[n] == '/');
    }
    if (!listed)
        return false;
    /* a browser says where the request comes from; another site's page
     * (a link, an image, a form) never acts with the console's session */
    const char *site = core_req_header(req, "Sec-Fetch-Site");
    return !site || strcmp(site, "same-origin") == 0 || strcmp(site, "none") == 0;
}

int az_staff_principal(struct core_req *req, struct core_principal *out)
{
    if (core_req_header(req, "Authorization") || !console_read(req))
        return 0;
    struct az_staff s;
    enum az_session_rc rc = az_staff_get(req, &s);
    if (rc == AZ_SESSION_UNAVAILABLE) {
        core_reply_header(req, "Retry-After", "5");
        core_reply_error(req, CORE_ERR_UNAVAILABLE, "the session cannot be checked right now");
        return -1;
    }
    if (rc != AZ_SESSION_OK || !s.roles)
        return 0;
    out->client_id = "console";
    out->tenant = core_pstrdup(req->pool, s.tenant);
    out->subject = core_psprintf(req->pool, "staff:%s", s.login);
    out->scope = az_role_scope(s.roles);
    out->resident = NULL;
    return 1;
}

/* ---- grant and withdraw ---- */

static struct core_stmt az_staff_account_stmt = CORE_STMT(
    "az_staff_account", "SELECT id, tenant_id, coalesce((SELECT string_agg(s.role, ' ') FROM "
                        "staff_roles s WHERE s.resident_id = r.id), '') FROM residents r WHERE "
                        "login = $1");
static struct core_stmt az_staff_grant_stmt =
    CORE_STMT("az_staff_grant", "INSERT INTO staff_roles (resident_id, role, granted_by) VALUES "
                                "($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1");
static struct core_stmt az_staff_withdraw_stmt =
    CORE_STMT("az_staff_withdraw",
              "DELETE FROM staff_roles WHERE resident_id = $1 AND role = $2 RETURNING 1");

struct change_arg {
    const char *login, *role, *actor;
    bool grant;
    unsigned roles;
    struct az_result *res;
};

static enum az_rc fail(struct az_result *res, enum az_rc rc, const char *fmt, ...)
    PRINTF_LIKE(3, 4);
static enum az_rc fail(struct az_result *res, enum az_rc rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
    res->rc = rc;
    return rc;
}

static enum core_db_rc change_tx(struct core_db_conn *c, void *p)
{
    struct change_arg *a = p;
    a->res->rc = AZ_OK;
    const char *v[] = {a->login};
    PGresult *r = core_db_exec(c, &az_staff_account_stmt, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    if (PQntuples(r) != 1) {
        PQclear(r);
        fail(a->res, AZ_NOT_FOUND, "no account %s", a->login);
        return CORE_DB_ROLLBACK;
    }
    char id[65], tenant[51];
    xsnprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
    xsnprintf(tenant, sizeof tenant, "%s", PQgetvalue(r, 0, 1));
    a->roles = roles_of(PQgetvalue(r, 0, 2));
    PQclear(r);
    if (!a->role)
        return CORE_DB_OK; /* only the roles were asked for */
    const char *cv[] = {id, a->role, a->actor};
    r = core_db_exec(c, a->grant ? &az_staff_grant_stmt : &az_staff_withdraw_stmt, a->grant ? 3 : 2,
                     cv);
    if (!r)
        return CORE_DB_ERROR;
    bool changed = PQntuples(r) == 1;
    PQclear(r);
    if (!changed) {
        if (a->grant)
            fail(a->res, AZ_CONFLICT, "%s holds the role %s already", a->login, a->role);
        else
            fail(a->res, AZ_NOT_FOUND, "%s does not hold the role %s", a->login, a->role);
        return CORE_DB_ROLLBACK;
    }
    char ref[44];
    au_resident_ref(id, ref);
    json_t *d = json_pack("{s:s, s:s}", "role", a->role, "login", a->login);
    struct au_entry e = {.kind = a->grant ? "staff.grant" : "staff.withdraw",
                         .tenant = tenant,
                         .actor = a->actor,
                         .resident = ref,
                         .detail = d};
    bool ok = au_append_in_tx(c, &e, NULL);
    json_decref(d);
    return ok ? CORE_DB_OK : CORE_DB_ERROR;
}

static enum az_rc change(const char *login, const char *role, const char *actor, bool grant,
                         unsigned *roles_out, struct az_result *res)
{
    memset(res, 0, sizeof *res);
    char norm[AZ_LOGIN_MAX + 1];
    if (az_login_check(login, norm))
        return fail(res, AZ_NOT_FOUND, "no such account");
    unsigned bit;
    if (role && !az_role_parse(role, &bit))
        return fail(res, AZ_INVALID, "no role %s (platform_admin, tenant_admin, auditor)", role);
    struct change_arg a = {norm, role, actor, grant, 0, res};
    struct core_db_err err;
    enum core_db_rc rc =
        core_db_tx(CORE_DB_PLATFORM, role ? CORE_TX_WRITE : CORE_TX_READ, change_tx, &a, &err);
    if (rc == CORE_DB_UNAVAILABLE)
        return fail(res, AZ_UNAVAILABLE, "the database is not available");
    if (rc != CORE_DB_OK && rc != CORE_DB_ROLLBACK)
        return fail(res, AZ_ERROR, "database error (sqlstate %s)", err.sqlstate);
    if (roles_out)
        *roles_out = a.roles;
    return res->rc;
}

enum az_rc az_staff_grant(const char *login, const char *role, const char *actor,
                          struct az_result *res)
{
    if (!role)
        return fail(res, AZ_INVALID, "which role?");
    return change(login, role, actor, true, NULL, res);
}

enum az_rc az_staff_withdraw(const char *login, const char *role, const char *actor,
                             struct az_result *res)
{
    if (!role)
        return fail(res, AZ_INVALID, "which role?");
    return change(login, role, actor, false, NULL, res);
}

enum az_rc az_staff_roles(const char *login, unsigned *roles_out, struct az_result *res)
{
    *roles_out = 0;
    return change(login, NULL, NULL, false, roles_out, res);
}
