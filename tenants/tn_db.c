/* The tenant registry in PostgreSQL. Every function runs one transaction
 * through core_db_tx; row-level security decides what each context sees. */
#include <stdlib.h>

#include <openssl/crypto.h>

#include "audit/au.h"
#include "core/crypto.h"
#include "core/log.h"
#include "tenants/tn.h"

#define TENANT_COLUMNS                                                                             \
    "t.id, t.name, t.parent_id, t.state, t.city_os, "                                              \
    "to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "              \
    "to_char(t.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "              \
    "t.version, u.url, u.fiware_service, u.auth, u.token_url, u.client_id, u.scope "               \
    "FROM tenants t LEFT JOIN tenant_upstreams u ON u.tenant_id = t.id "

static struct core_stmt tn_db_get_stmt =
    CORE_STMT("tn_db_get", "SELECT " TENANT_COLUMNS "WHERE t.id = $1");
static struct core_stmt tn_db_list_stmt =
    CORE_STMT("tn_db_list", "SELECT " TENANT_COLUMNS "WHERE t.id > coalesce($1, '') "
                            "ORDER BY t.id LIMIT $2");
static struct core_stmt tn_db_insert_stmt =
    CORE_STMT("tn_db_insert", "INSERT INTO tenants (id, name, parent_id, city_os) "
                              "VALUES ($1, $2, $3, $4)");
static struct core_stmt tn_db_exists_stmt =
    CORE_STMT("tn_db_exists", "SELECT version FROM tenants WHERE id = $1");
static struct core_stmt tn_db_put_upstream_stmt = CORE_STMT(
    "tn_db_put_upstream",
    "INSERT INTO tenant_upstreams (tenant_id, url, fiware_service, auth, token_url, client_id, "
    "scope, secret) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
    "ON CONFLICT (tenant_id) DO UPDATE SET url = EXCLUDED.url, "
    "fiware_service = EXCLUDED.fiware_service, auth = EXCLUDED.auth, "
    "token_url = EXCLUDED.token_url, client_id = EXCLUDED.client_id, scope = EXCLUDED.scope, "
    "secret = EXCLUDED.secret, updated_at = now()");
static struct core_stmt tn_db_drop_upstream_stmt =
    CORE_STMT("tn_db_drop_upstream", "DELETE FROM tenant_upstreams WHERE tenant_id = $1");
static struct core_stmt tn_db_upstream_load_stmt =
    CORE_STMT("tn_db_upstream_load",
              "SELECT u.url, u.fiware_service, u.auth, u.token_url, u.client_id, u.scope, u.secret "
              "FROM tenants t JOIN tenant_upstreams u ON u.tenant_id = t.id "
              "WHERE t.id = $1 AND t.city_os = 'remote'");
static struct core_stmt tn_db_update_stmt = CORE_STMT(
    "tn_db_update",
    "UPDATE tenants SET name = coalesce($2, name), "
    "parent_id = CASE WHEN $3::text IS NULL THEN parent_id WHEN $3 = '' THEN NULL ELSE $3 END, "
    "state = coalesce($4, state), city_os = coalesce($5, city_os) "
    "WHERE id = $1 RETURNING version");

static char *dup_or_null(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : xstrdup(PQgetvalue(r, row, col));
}

static void from_row(PGresult *r, int row, struct tn_tenant *t)
{
    memset(t, 0, sizeof *t);
    xsnprintf(t->id, sizeof t->id, "%s", PQgetvalue(r, row, 0));
    t->name = xstrdup(PQgetvalue(r, row, 1));
    t->parent = dup_or_null(r, row, 2);
    t->state = strcmp(PQgetvalue(r, row, 3), "suspended") == 0 ? TN_SUSPENDED : TN_ACTIVE;
    t->hosted = strcmp(PQgetvalue(r, row, 4), "hosted") == 0;
    xsnprintf(t->created_at, sizeof t->created_at, "%s", PQgetvalue(r, row, 5));
    xsnprintf(t->updated_at, sizeof t->updated_at, "%s", PQgetvalue(r, row, 6));
    long v = 0;
    core_parse_long(PQgetvalue(r, row, 7), 0, 1L << 30, &v);
    t->version = (int)v;
    t->up.url = dup_or_null(r, row, 8);
    t->up.fiware_service = dup_or_null(r, row, 9);
    const char *auth = PQgetisnull(r, row, 10) ? "none" : PQgetvalue(r, row, 10);
    t->up.auth = strcmp(auth, "bearer") == 0               ? TN_AUTH_BEARER
                 : strcmp(auth, "client_credentials") == 0 ? TN_AUTH_CLIENT_CREDENTIALS
                                                           : TN_AUTH_NONE;
    t->up.token_url = dup_or_null(r, row, 11);
    t->up.client_id = dup_or_null(r, row, 12);
    t->up.scope = dup_or_null(r, row, 13);
}

/* Maps a failed statement to a result the caller can show. */
static enum core_db_rc fail(struct core_db_conn *c, struct tn_result *res, const char *id,
                            const char *parent)
{
    const struct core_db_err *e = core_db_last_error(c);
    if (strcmp(e->sqlstate, "23505") == 0) {
        res->rc = TN_EXISTS;
        xsnprintf(res->message, sizeof res->message, "tenant %s already exists", id);
    } else if (strcmp(e->sqlstate, "23503") == 0) {
        res->rc = TN_BAD_PARENT;
        xsnprintf(res->message, sizeof res->message, "parent tenant %s does not exist",
                  parent ? parent : "?");
    } else if (strcmp(e->sqlstate, "23000") == 0) {
        res->rc = TN_CYCLE;
        xsnprintf(res->message, sizeof res->message, "%s", e->message);
    } else if (strcmp(e->sqlstate, "42501") == 0) {
        res->rc = TN_FORBIDDEN;
        xsnprintf(res->message, sizeof res->message, "%s", e->message);
    } else {
        res->rc = TN_ERROR;
        xsnprintf(res->message, sizeof res->message, "database error");
    }
    return CORE_DB_ERROR;
}

static enum tn_rc finish(enum core_db_rc rc, const struct core_db_err *err, struct tn_result *res)
{
    if (rc == CORE_DB_OK)
        return res->rc = TN_OK;
    if (rc == CORE_DB_UNAVAILABLE) {
        res->rc = TN_UNAVAILABLE;
        xsnprintf(res->message, sizeof res->message, "the database is not available");
        return res->rc;
    }
    if (res->rc == TN_OK) {
        res->rc = TN_ERROR;
        xsnprintf(res->message, sizeof res->message, "database error: %s", err->message);
    }
    return res->rc;
}

/* Strip "ERROR:  " from a server message kept for display. */
static void tidy(struct tn_result *res)
{
    const char *p = res->message;
    if (strncmp(p, "ERROR: ", 7) == 0) {
        p += 7;
        while (*p == ' ')
            p++;
        memmove(res->message, p, strlen(p) + 1);
    }
}

/* Writes (or with up NULL removes) a tenant's upstream. */
static bool put_upstream(struct core_db_conn *c, const char *id, const struct tn_upstream *up)
{
    PGresult *r;
    if (!up) {
        const char *v[] = {id};
        r = core_db_exec(c, &tn_db_drop_upstream_stmt, 1, v);
    } else {
        unsigned char *sealed = NULL;
        size_t sealed_len = 0;
        if (up->auth != TN_AUTH_NONE)
            core_seal(TN_UPSTREAM_LABEL, id, strlen(id), up->secret, up->secret_len, &sealed,
                      &sealed_len);
        const char *v[] = {id,
                           up->url,
                           up->fiware_service,
                           tn_auth_name(up->auth),
                           up->token_url,
                           up->client_id,
                           up->scope,
                           (const char *)sealed};
        int lengths[8] = {0, 0, 0, 0, 0, 0, 0, (int)sealed_len};
        int formats[8] = {0, 0, 0, 0, 0, 0, 0, 1};
        r = core_db_execp(c, &tn_db_put_upstream_stmt, 8, v, lengths, formats, 0);
        free(sealed);
    }
    if (!r)
        return false;
    PQclear(r);
    return true;
}

/* ---- create ---- */

struct create_arg {
    const struct tn_tenant *t;
    const char *actor;
    struct tn_result *res;
};

static enum core_db_rc create_tx(struct core_db_conn *c, void *p)
{
    struct create_arg *a = p;
    const struct tn_tenant *t = a->t;
    a->res->rc = TN_OK;
    if (t->parent) {
        const char *v[] = {t->parent};
        PGresult *r = core_db_exec(c, &tn_db_exists_stmt, 1, v);
        if (!r)
            return fail(c, a->res, t->id, t->parent);
        int rows = PQntuples(r);
        PQclear(r);
        if (rows == 0) {
            a->res->rc = TN_BAD_PARENT;
            xsnprintf(a->res->message, sizeof a->res->message, "parent tenant %s does not exist",
                      t->parent);
            return CORE_DB_ROLLBACK;
        }
    }
    const char *v[] = {t->id, t->name, t->parent, t->hosted ? "hosted" : "remote"};
    PGresult *r = core_db_exec(c, &tn_db_insert_stmt, 4, v);
    if (!r)
        return fail(c, a->res, t->id, t->parent);
    PQclear(r);
    if (!t->hosted && !put_upstream(c, t->id, &t->up))
        return fail(c, a->res, t->id, t->parent);
    json_t *detail = json_pack("{s:s, s:s, s:s?, s:s}", "id", t->id, "name", t->name, "parent",
                               t->parent, "city_os", t->hosted ? "hosted" : "remote");
    bool ok = au_event_record(c, "tenant.create", t->id, a->actor, detail);
    json_decref(detail);
    return ok ? CORE_DB_OK : fail(c, a->res, t->id, t->parent);
}

enum tn_rc tn_create(const struct tn_tenant *t, const char *actor, struct tn_result *res)
{
    memset(res, 0, sizeof *res);
    struct create_arg a = {t, actor, res};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, create_tx, &a, &err);
    if (rc == CORE_DB_ROLLBACK)
        return res->rc;
    enum tn_rc out = finish(rc, &err, res);
    tidy(res);
    return out;
}

/* ---- read ---- */

struct get_arg {
    const char *id;
    struct tn_tenant *out;
    bool found;
};

static enum core_db_rc get_tx(struct core_db_conn *c, void *p)
{
    struct get_arg *a = p;
    const char *v[] = {a->id};
    PGresult *r = core_db_exec(c, &tn_db_get_stmt, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    a->found = PQntuples(r) == 1;
    if (a->found) {
        tn_tenant_release(a->out);
        from_row(r, 0, a->out);
    }
    PQclear(r);
    return CORE_DB_OK;
}

enum tn_rc tn_get(const char *context, const char *id, struct tn_tenant *out, struct tn_result *res)
{
    memset(res, 0, sizeof *res);
    memset(out, 0, sizeof *out);
    struct get_arg a = {id, out, false};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_READ, get_tx, &a, &err);
    if (finish(rc, &err, res) != TN_OK)
        return res->rc;
    if (!a.found) {
        res->rc = TN_NOT_FOUND;
        xsnprintf(res->message, sizeof res->message, "no tenant %s", id);
    }
    return res->rc;
}

struct list_arg {
    const char *after;
    int limit;
    struct tn_tenant *items;
    size_t n;
};

static void list_clear(struct list_arg *a)
{
    for (size_t i = 0; i < a->n; i++)
        tn_tenant_release(&a->items[i]);
    free(a->items);
    a->items = NULL;
    a->n = 0;
}

static enum core_db_rc list_tx(struct core_db_conn *c, void *p)
{
    struct list_arg *a = p;
    list_clear(a);
    char limit[16];
    snprintf(limit, sizeof limit, "%d", a->limit);
    const char *v[] = {a->after, limit};
    PGresult *r = core_db_exec(c, &tn_db_list_stmt, 2, v);
    if (!r)
        return CORE_DB_ERROR;
    int rows = PQntuples(r);
    a->items = xcalloc((size_t)rows + 1, sizeof *a->items);
    for (int i = 0; i < rows; i++)
        from_row(r, i, &a->items[a->n++]);
    PQclear(r);
    return CORE_DB_OK;
}

enum tn_rc tn_list(const char *context, const char *after, int limit, struct tn_tenant **out,
                   size_t *n, struct tn_result *res)
{
    memset(res, 0, sizeof *res);
    struct list_arg a = {after, limit, NULL, 0};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_READ, list_tx, &a, &err);
    if (finish(rc, &err, res) != TN_OK) {
        list_clear(&a);
        return res->rc;
    }
    *out = a.items;
    *n = a.n;
    return TN_OK;
}

/* ---- update ---- */

struct update_arg {
    const char *id;
    const struct tn_patch *p;
    const char *actor;
    struct tn_tenant *out;
    struct tn_result *res;
};

static enum core_db_rc update_tx(struct core_db_conn *c, void *p)
{
    struct update_arg *a = p;
    const struct tn_patch *pa = a->p;
    a->res->rc = TN_OK;
    const char *v1[] = {a->id};
    PGresult *r = core_db_exec(c, &tn_db_exists_stmt, 1, v1);
    if (!r)
        return fail(c, a->res, a->id, pa->parent);
    bool exists = PQntuples(r) == 1;
    long version = 0;
    if (exists)
        core_parse_long(PQgetvalue(r, 0, 0), 0, 1L << 30, &version);
    PQclear(r);
    if (!exists) {
        a->res->rc = TN_NOT_FOUND;
        xsnprintf(a->res->message, sizeof a->res->message, "no tenant %s", a->id);
        return CORE_DB_ROLLBACK;
    }
    if (pa->if_version && pa->if_version != version) {
        a->res->rc = TN_CONFLICT;
        xsnprintf(a->res->message, sizeof a->res->message,
                  "tenant %s is at version %ld, not %d: read it again", a->id, version,
                  pa->if_version);
        return CORE_DB_ROLLBACK;
    }
    if (pa->parent && *pa->parent) {
        const char *v[] = {pa->parent};
        r = core_db_exec(c, &tn_db_exists_stmt, 1, v);
        if (!r)
            return fail(c, a->res, a->id, pa->parent);
        int rows = PQntuples(r);
        PQclear(r);
        if (rows == 0) {
            a->res->rc = TN_BAD_PARENT;
            xsnprintf(a->res->message, sizeof a->res->message, "parent tenant %s does not exist",
                      pa->parent);
            return CORE_DB_ROLLBACK;
        }
    }
    const char *state = pa->state < 0 ? NULL : tn_state_name((enum tn_state)pa->state);
    const char *kind = !pa->set_city_os ? NULL : pa->hosted ? "hosted" : "remote";
    const char *v[] = {a->id, pa->name, pa->parent, state, kind};
    r = core_db_exec(c, &tn_db_update_stmt, 5, v);
    if (!r)
        return fail(c, a->res, a->id, pa->parent);
    int rows = PQntuples(r);
    PQclear(r);
    if (rows == 0) { /* visible, but row-level security refuses the update */
        a->res->rc = TN_FORBIDDEN;
        xsnprintf(a->res->message, sizeof a->res->message, "tenant %s may not be changed here",
                  a->id);
        return CORE_DB_ROLLBACK;
    }
    if (pa->set_city_os && !put_upstream(c, a->id, pa->hosted ? NULL : pa->up))
        return fail(c, a->res, a->id, pa->parent);

    json_t *changed = json_array();
    if (pa->name)
        json_array_append_new(changed, json_string("name"));
    if (pa->parent)
        json_array_append_new(changed, json_string("parent"));
    if (pa->set_city_os)
        json_array_append_new(changed, json_string("city_os"));
    bool ok = true;
    if (json_array_size(changed)) {
        json_t *d = json_pack("{s:o}", "changed", changed);
        ok = au_event_record(c, "tenant.update", a->id, a->actor, d);
        json_decref(d);
    } else {
        json_decref(changed);
    }
    if (ok && state) {
        json_t *d = pa->reason ? json_pack("{s:s}", "reason", pa->reason) : json_object();
        ok = au_event_record(c, pa->state == TN_SUSPENDED ? "tenant.suspend" : "tenant.resume",
                             a->id, a->actor, d);
        json_decref(d);
    }
    if (!ok)
        return fail(c, a->res, a->id, pa->parent);
    struct get_arg g = {a->id, a->out, false};
    return get_tx(c, &g);
}

enum tn_rc tn_update(const char *context, const char *id, const struct tn_patch *p,
                     const char *actor, struct tn_tenant *out, struct tn_result *res)
{
    memset(res, 0, sizeof *res);
    memset(out, 0, sizeof *out);
    struct update_arg a = {id, p, actor, out, res};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_WRITE, update_tx, &a, &err);
    if (rc == CORE_DB_OK)
        tn_cache_forget(id); /* suspension takes effect here at once */
    if (rc == CORE_DB_ROLLBACK)
        return res->rc;
    enum tn_rc r = finish(rc, &err, res);
    tidy(res);
    return r;
}

/* ---- the upstream with its secret, for forwarding ---- */

struct upstream_arg {
    const char *id;
    struct tn_upstream *out;
    bool found, sealed_ok;
};

/* The result comes back in binary: text columns are their UTF-8 bytes
 * (libpq NUL-terminates every value), the secret its raw sealed bytes. */
static char *bin_dup_or_null(PGresult *r, int col)
{
    return PQgetisnull(r, 0, col) ? NULL : xstrdup(PQgetvalue(r, 0, col));
}

static enum core_db_rc upstream_tx(struct core_db_conn *c, void *p)
{
    struct upstream_arg *a = p;
    tn_upstream_release(a->out);
    a->found = false;
    a->sealed_ok = true;
    const char *v[] = {a->id};
    PGresult *r = core_db_execp(c, &tn_db_upstream_load_stmt, 1, v, NULL, NULL, 1);
    if (!r)
        return CORE_DB_ERROR;
    if (PQntuples(r) == 1) {
        struct tn_upstream *up = a->out;
        a->found = true;
        up->url = bin_dup_or_null(r, 0);
        up->fiware_service = bin_dup_or_null(r, 1);
        const char *auth = PQgetvalue(r, 0, 2);
        up->auth = strcmp(auth, "bearer") == 0               ? TN_AUTH_BEARER
                   : strcmp(auth, "client_credentials") == 0 ? TN_AUTH_CLIENT_CREDENTIALS
                                                             : TN_AUTH_NONE;
        up->token_url = bin_dup_or_null(r, 3);
        up->client_id = bin_dup_or_null(r, 4);
        up->scope = bin_dup_or_null(r, 5);
        if (up->auth != TN_AUTH_NONE && !PQgetisnull(r, 0, 6)) {
            unsigned char *plain = NULL;
            size_t len = 0;
            if (core_open(TN_UPSTREAM_LABEL, a->id, strlen(a->id), PQgetvalue(r, 0, 6),
                          (size_t)PQgetlength(r, 0, 6), &plain, &len)) {
                up->secret = (char *)plain;
                up->secret_len = len;
            } else {
                a->sealed_ok = false;
            }
        }
    }
    PQclear(r);
    return CORE_DB_OK;
}

enum tn_rc tn_upstream_load(const char *id, struct tn_upstream *out)
{
    memset(out, 0, sizeof *out);
    if (!core_tenant_id_ok(id))
        return TN_NOT_FOUND;
    struct upstream_arg a = {id, out, false, true};
    struct core_db_err err;
    struct tn_result res = {0};
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, upstream_tx, &a, &err);
    if (finish(rc, &err, &res) != TN_OK) {
        tn_upstream_release(out);
        return res.rc;
    }
    if (!a.found)
        return TN_NOT_FOUND;
    if (!a.sealed_ok) {
        core_error("tenant %s: the upstream secret does not open (altered, or the master "
                   "secret changed)",
                   id);
        tn_upstream_release(out);
        return TN_ERROR;
    }
    return TN_OK;
}
