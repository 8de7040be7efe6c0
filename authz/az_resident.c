/* Residents in PostgreSQL: the common ID, home town, login, display name and
 * password hash; links to each town's local resident number; sign-in with
 * throttling per login and per address.
 *
 * Personal data (login, name, e-mail, a town's local number) never goes to
 * the audit log and, as far as we can help it, never into a database error
 * either: conflicts are found with ON CONFLICT DO NOTHING and look-ups, not
 * by a unique violation whose detail would quote the row. */
#include <pthread.h>
#include <stdlib.h>

#include <openssl/crypto.h>

#include "audit/au.h"
#include "authz/az_grant.h"
#include "authz/az_resident.h"
#include "core/crypto.h"
#include "core/db.h"
#include "core/log.h"
#include "tenants/tn.h"

#define THROTTLE_WINDOW    "interval '15 minutes'"
#define LOGIN_FAILURES_MAX 5
#define ADDR_FAILURES_MAX  30
#define STORED_HASH_MAX    200
#define LOCAL_ID_MAX       100
#define PEER_MAX           100

/* ---- validation ---- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool plain_char(char c)
{
    return (c >= 'a' && c <= 'z') || is_digit(c) || c == '.' || c == '_' || c == '-';
}

/* one @, something on both sides, a dot inside the domain (not at its ends) */
static bool email_shaped(const char *s)
{
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@'))
        return false;
    const char *dom = at + 1;
    size_t n = strlen(dom);
    const char *dot = strchr(dom, '.');
    return n >= 3 && dot && dom[0] != '.' && dom[n - 1] != '.';
}

/* digits, an optional leading +, hyphens; 6 to 20 digits */
static bool phone_shaped(const char *s)
{
    int digits = 0;
    for (const char *p = s; *p; p++) {
        if (is_digit(*p))
            digits++;
        else if (!(*p == '-' || (*p == '+' && p == s)))
            return false;
    }
    return digits >= 6 && digits <= 20;
}

static bool plain_shaped(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > 64)
        return false;
    for (const char *p = s; *p; p++) {
        if (!plain_char(*p))
            return false;
    }
    return true;
}

const char *az_login_check(const char *login, char out[AZ_LOGIN_MAX + 1])
{
    out[0] = '\0';
    if (!login || !*login)
        return "login is missing";
    size_t n = strnlen(login, AZ_LOGIN_MAX + 1);
    if (n < 3 || n > AZ_LOGIN_MAX)
        return "login must be 3 to 254 bytes";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)login[i];
        /* ASCII only: PostgreSQL's lower() would otherwise disagree with ours */
        if (c <= 0x20 || c >= 0x7f)
            return "login may hold only printable ASCII, no spaces";
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    out[n] = '\0';
    if (strchr(out, '@')) {
        if (email_shaped(out))
            return NULL;
        out[0] = '\0';
        return "login is not an e-mail address (one @, a name before it, a domain with a dot "
               "after it)";
    }
    if (phone_shaped(out) || plain_shaped(out))
        return NULL;
    out[0] = '\0';
    return "login must be an e-mail address, a phone number (6 to 20 digits, an optional "
           "leading +, hyphens) or a name of 3 to 64 of a-z 0-9 . _ -";
}

/* An e-mail address for the email column (lower-cased into out); "" clears. */
static const char *email_check(const char *email, char out[AZ_LOGIN_MAX + 1])
{
    if (!*email) {
        out[0] = '\0';
        return NULL;
    }
    if (az_login_check(email, out) || !strchr(out, '@')) {
        out[0] = '\0';
        return "email is not an e-mail address";
    }
    return NULL;
}

static const char *name_check(const char *name)
{
    if (!name || !*name)
        return NULL; /* no display name */
    return tn_check_name(name);
}

static const char *password_check(const char *password, size_t len)
{
    if (!password || len == 0)
        return "password is missing";
    if (len < AZ_PASSWORD_MIN)
        return "password must be at least 8 bytes";
    if (len > AZ_PASSWORD_MAX)
        return "password must be at most 1024 bytes";
    if (memchr(password, '\0', len))
        return "password may not hold a NUL byte";
    return NULL;
}

/* A town's local resident number: 1 to 100 printable ASCII characters, no
 * spaces (the database refuses spaces and controls too). */
static const char *local_id_check(const char *id)
{
    size_t n = id ? strnlen(id, LOCAL_ID_MAX + 1) : 0;
    if (n == 0 || n > LOCAL_ID_MAX)
        return "local_id must be 1 to 100 characters";
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)id[i] <= 0x20 || (unsigned char)id[i] >= 0x7f)
            return "local_id may hold only printable ASCII, no spaces";
    }
    return NULL;
}

static enum az_rc fail_with(struct az_result *res, enum az_rc rc, const char *fmt, ...)
    PRINTF_LIKE(3, 4);
static enum az_rc fail_with(struct az_result *res, enum az_rc rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
    res->rc = rc;
    return rc;
}

static void new_resident_id(char out[65])
{
    unsigned char raw[16];
    core_random(raw, sizeof raw);
    char *s = core_b64url_encode(raw, sizeof raw);
    xsnprintf(out, 65, "r_%s", s);
    free(s);
}

json_t *az_resident_json(const struct az_resident *r)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:b, s:s, s:s, s:s, s:i}", "login", r->login, "tenant",
                     r->tenant, "name", r->name, "email",
                     r->email[0] ? json_string(r->email) : json_null(), "email_verified",
                     r->email_verified, "state", r->disabled ? "disabled" : "active", "created_at",
                     r->created_at, "updated_at", r->updated_at, "version", r->version);
}

/* ---- database ---- */

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define RESIDENT_COLUMNS                                                                           \
    "id, tenant_id, login, name, coalesce(email, ''), email_verified, state, " TS(                 \
        "created_at") ", " TS("updated_at") ", version"

static struct core_stmt az_resident_tenant_stmt =
    CORE_STMT("az_resident_tenant", "SELECT 1 FROM tenants WHERE id = $1");
static struct core_stmt az_resident_insert_stmt = CORE_STMT(
    "az_resident_insert",
    "INSERT INTO residents (id, tenant_id, login, name, email, password_hash, created_by) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING " RESIDENT_COLUMNS);
static struct core_stmt az_resident_by_login_stmt = CORE_STMT(
    "az_resident_by_login", "SELECT " RESIDENT_COLUMNS " FROM residents WHERE login = $1");
static struct core_stmt az_resident_by_id_stmt =
    CORE_STMT("az_resident_by_id", "SELECT " RESIDENT_COLUMNS " FROM residents WHERE id = $1");
static struct core_stmt az_resident_list_stmt = CORE_STMT(
    "az_resident_list", "SELECT " RESIDENT_COLUMNS " FROM residents WHERE ($1::text IS NULL OR "
                        "tenant_id = $1) AND login > coalesce($2, '') ORDER BY login LIMIT $3");
static struct core_stmt az_resident_lock_stmt = CORE_STMT(
    "az_resident_lock", "SELECT id, tenant_id, state FROM residents WHERE login = $1 FOR UPDATE");
static struct core_stmt az_resident_set_state_stmt = CORE_STMT(
    "az_resident_set_state", "UPDATE residents SET state = $2, tokens_after = CASE WHEN $2 = "
                             "'disabled' THEN now() ELSE tokens_after END WHERE id = $1");
static struct core_stmt az_resident_end_sessions_stmt =
    CORE_STMT("az_resident_end_sessions", "UPDATE sessions SET ended_at = now() WHERE "
                                          "resident_id = $1 AND ended_at IS NULL");
static struct core_stmt az_resident_revoke_refresh_stmt =
    CORE_STMT("az_resident_revoke_refresh", "UPDATE refresh_tokens SET revoked_at = now() WHERE "
                                            "resident_id = $1 AND revoked_at IS NULL");
static struct core_stmt az_resident_update_stmt = CORE_STMT(
    "az_resident_update",
    "UPDATE residents SET name = coalesce($2, name), "
    "email = CASE WHEN $3::text IS NULL THEN email ELSE nullif($3, '') END, "
    "email_verified = CASE WHEN $3::text IS NULL OR nullif($3, '') IS NOT DISTINCT FROM email "
    "THEN email_verified ELSE false END, "
    "password_hash = coalesce($4, password_hash) WHERE id = $1");
static struct core_stmt az_resident_link_get_stmt = CORE_STMT(
    "az_resident_link_get",
    "SELECT local_id FROM resident_links WHERE resident_id = $1 AND tenant_id = $2 FOR UPDATE");
static struct core_stmt az_resident_link_taken_stmt = CORE_STMT(
    "az_resident_link_taken",
    "SELECT 1 FROM resident_links WHERE tenant_id = $1 AND local_id = $2 AND resident_id <> $3");
static struct core_stmt az_resident_link_delete_stmt =
    CORE_STMT("az_resident_link_delete",
              "DELETE FROM resident_links WHERE resident_id = $1 AND tenant_id = $2 RETURNING 1");
static struct core_stmt az_resident_link_insert_stmt =
    CORE_STMT("az_resident_link_insert",
              "INSERT INTO resident_links (resident_id, tenant_id, local_id, created_by) "
              "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1");
static struct core_stmt az_resident_links_stmt =
    CORE_STMT("az_resident_links",
              "SELECT tenant_id, local_id, " TS(
                  "created_at") " FROM resident_links WHERE resident_id = $1 ORDER BY tenant_id");
static struct core_stmt az_resident_local_id_stmt =
    CORE_STMT("az_resident_local_id",
              "SELECT local_id FROM resident_links WHERE resident_id = $1 AND tenant_id = $2");

static void from_row(PGresult *r, int row, struct az_resident *out)
{
    memset(out, 0, sizeof *out);
    xsnprintf(out->id, sizeof out->id, "%s", PQgetvalue(r, row, 0));
    xsnprintf(out->tenant, sizeof out->tenant, "%s", PQgetvalue(r, row, 1));
    xsnprintf(out->login, sizeof out->login, "%s", PQgetvalue(r, row, 2));
    xsnprintf(out->name, sizeof out->name, "%s", PQgetvalue(r, row, 3));
    xsnprintf(out->email, sizeof out->email, "%s", PQgetvalue(r, row, 4));
    out->email_verified = PQgetvalue(r, row, 5)[0] == 't';
    out->disabled = strcmp(PQgetvalue(r, row, 6), "active") != 0;
    xsnprintf(out->created_at, sizeof out->created_at, "%s", PQgetvalue(r, row, 7));
    xsnprintf(out->updated_at, sizeof out->updated_at, "%s", PQgetvalue(r, row, 8));
    long v = 0;
    core_parse_long(PQgetvalue(r, row, 9), 0, 1L << 30, &v);
    out->version = (int)v;
}

/* The runner's outcome as an az_rc. Database messages are not passed on:
 * a refused row's detail would quote personal data. */
static enum az_rc finish(enum core_db_rc rc, const struct core_db_err *err, struct az_result *res)
{
    if (rc == CORE_DB_OK || rc == CORE_DB_ROLLBACK)
        return res->rc;
    if (rc == CORE_DB_UNAVAILABLE)
        return fail_with(res, AZ_UNAVAILABLE, "the database is not available");
    if (strcmp(err->sqlstate, "42501") == 0)
        return fail_with(res, AZ_FORBIDDEN, "the database refused this for the caller's town");
    if (strncmp(err->sqlstate, "23", 2) == 0)
        return fail_with(res, AZ_INVALID, "refused by the database (sqlstate %s)", err->sqlstate);
    return fail_with(res, AZ_ERROR, "database error");
}

/* An administrative event about resident id, in the caller's transaction. */
static bool record(struct core_db_conn *c, const char *kind, const char *tenant, const char *id,
                   const char *actor, json_t *detail)
{
    char ref[44];
    au_resident_ref(id, ref);
    struct au_entry e = {
        .kind = kind, .tenant = tenant, .actor = actor, .resident = ref, .detail = detail};
    return au_append_in_tx(c, &e, NULL);
}

/* Looks up the resident with login (normalized) in the transaction's context:
 * 1 found, 0 not visible, -1 statement failed. */
static int find(struct core_db_conn *c, const char *login, struct az_resident *out)
{
    const char *v[] = {login};
    PGresult *r = core_db_exec(c, &az_resident_by_login_stmt, 1, v);
    if (!r)
        return -1;
    int found = PQntuples(r) == 1;
    if (found)
        from_row(r, 0, out);
    PQclear(r);
    return found;
}

/* A login given to a look-up, normalized; false (res set) when it cannot
 * name a resident. */
static bool lookup_login(const char *login, char out[AZ_LOGIN_MAX + 1], struct az_result *res)
{
    memset(res, 0, sizeof *res);
    if (az_login_check(login, out)) {
        fail_with(res, AZ_NOT_FOUND, "no such resident");
        return false;
    }
    return true;
}

/* ---- create ---- */

struct create_arg {
    const struct az_resident_spec *s;
    const char *login, *email, *hash, *actor;
    struct az_resident *out;
    struct az_result *res;
};

static enum core_db_rc create_tx(struct core_db_conn *c, void *p)
{
    struct create_arg *a = p;
    a->res->rc = AZ_OK;
    const char *tv[] = {a->s->tenant};
    PGresult *r = core_db_exec(c, &az_resident_tenant_stmt, 1, tv);
    if (!r)
        return CORE_DB_ERROR;
    bool exists = PQntuples(r) == 1;
    PQclear(r);
    if (!exists) {
        fail_with(a->res, AZ_INVALID, "tenant %s does not exist", a->s->tenant);
        return CORE_DB_ROLLBACK;
    }
    char id[65];
    new_resident_id(id);
    const char *v[] = {id,
                       a->s->tenant,
                       a->login,
                       a->s->name ? a->s->name : "",
                       a->email[0] ? a->email : NULL,
                       a->hash,
                       a->actor};
    r = core_db_exec(c, &az_resident_insert_stmt, 7, v);
    if (!r)
        return CORE_DB_ERROR;
    bool inserted = PQntuples(r) == 1;
    if (inserted)
        from_row(r, 0, a->out);
    PQclear(r);
    if (!inserted) {
        fail_with(a->res, AZ_CONFLICT, "login %s is taken", a->login);
        return CORE_DB_ROLLBACK;
    }
    return record(c, "resident.create", a->s->tenant, id, a->actor, NULL) ? CORE_DB_OK
                                                                          : CORE_DB_ERROR;
}

enum az_rc az_resident_create(const char *context, const struct az_resident_spec *s,
                              const char *actor, struct az_resident *out, struct az_result *res)
{
    memset(res, 0, sizeof *res);
    struct az_resident local;
    if (!out)
        out = &local;
    memset(out, 0, sizeof *out);
    char login[AZ_LOGIN_MAX + 1], email[AZ_LOGIN_MAX + 1];
    const char *why;
    if (!s->tenant || !core_tenant_id_ok(s->tenant))
        return fail_with(res, AZ_INVALID, "tenant is not a tenant id");
    /* every town reads the tenant registry, so this is not left to the
     * tenant look-up; row-level security would refuse the row anyway */
    if (context != CORE_DB_PLATFORM && (!context || strcmp(context, s->tenant) != 0))
        return fail_with(res, AZ_FORBIDDEN, "a town creates residents of its own only");
    if ((why = az_login_check(s->login, login)))
        return fail_with(res, AZ_INVALID, "%s", why);
    if ((why = name_check(s->name)))
        return fail_with(res, AZ_INVALID, "%s", why);
    if (s->email) {
        if ((why = email_check(s->email, email)))
            return fail_with(res, AZ_INVALID, "%s", why);
    } else {
        xsnprintf(email, sizeof email, "%s", strchr(login, '@') ? login : "");
    }
    if ((why = password_check(s->password, s->password_len)))
        return fail_with(res, AZ_INVALID, "%s", why);
    /* the slow hash before the transaction, which may run more than once */
    char *hash = az_password_hash(s->password, s->password_len);
    struct create_arg a = {s, login, email, hash, actor, out, res};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_WRITE, create_tx, &a, &err);
    OPENSSL_cleanse(hash, strlen(hash));
    free(hash);
    return finish(rc, &err, res);
}

/* ---- reads ---- */

struct read_arg {
    const char *key;
    struct core_stmt *stmt;
    struct az_resident *out;
    bool found;
};

static enum core_db_rc read_tx(struct core_db_conn *c, void *p)
{
    struct read_arg *a = p;
    const char *v[] = {a->key};
    PGresult *r = core_db_exec(c, a->stmt, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    a->found = PQntuples(r) == 1;
    if (a->found)
        from_row(r, 0, a->out);
    PQclear(r);
    return CORE_DB_OK;
}

enum az_rc az_resident_by_login(const char *context, const char *login, struct az_resident *out,
                                struct az_result *res)
{
    memset(out, 0, sizeof *out);
    char norm[AZ_LOGIN_MAX + 1];
    if (!lookup_login(login, norm, res))
        return res->rc;
    struct read_arg a = {norm, &az_resident_by_login_stmt, out, false};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_READ, read_tx, &a, &err);
    if (finish(rc, &err, res) != AZ_OK)
        return res->rc;
    if (!a.found)
        return fail_with(res, AZ_NOT_FOUND, "no resident %s", norm);
    return AZ_OK;
}

enum az_rc az_resident_by_id(const char *id, struct az_resident *out, struct az_result *res)
{
    memset(res, 0, sizeof *res);
    memset(out, 0, sizeof *out);
    if (!id || strlen(id) > 64)
        return fail_with(res, AZ_NOT_FOUND, "no such resident");
    struct read_arg a = {id, &az_resident_by_id_stmt, out, false};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, read_tx, &a, &err);
    if (finish(rc, &err, res) != AZ_OK)
        return res->rc;
    if (!a.found)
        return fail_with(res, AZ_NOT_FOUND, "no such resident");
    return AZ_OK;
}

struct list_arg {
    const char *tenant, *after;
    int limit;
    struct az_resident *items;
    size_t n;
};

static enum core_db_rc list_tx(struct core_db_conn *c, void *p)
{
    struct list_arg *a = p;
    free(a->items);
    a->items = NULL;
    a->n = 0;
    char limit[16];
    snprintf(limit, sizeof limit, "%d", a->limit);
    const char *v[] = {a->tenant, a->after, limit};
    PGresult *r = core_db_exec(c, &az_resident_list_stmt, 3, v);
    if (!r)
        return CORE_DB_ERROR;
    a->items = xcalloc((size_t)PQntuples(r) + 1, sizeof *a->items);
    for (int i = 0; i < PQntuples(r); i++)
        from_row(r, i, &a->items[a->n++]);
    PQclear(r);
    return CORE_DB_OK;
}

enum az_rc az_resident_list(const char *context, const char *tenant, const char *after, int limit,
                            struct az_resident **out, size_t *n, struct az_result *res)
{
    memset(res, 0, sizeof *res);
    *out = NULL;
    *n = 0;
    if (limit < 1)
        limit = 1;
    struct list_arg a = {tenant, after, limit, NULL, 0};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_READ, list_tx, &a, &err);
    if (finish(rc, &err, res) != AZ_OK) {
        free(a.items);
        return res->rc;
    }
    *out = a.items;
    *n = a.n;
    return AZ_OK;
}

/* ---- state ---- */

struct state_arg {
    const char *login, *actor;
    bool disabled;
    char id[65];
    struct az_result *res;
};

static enum core_db_rc state_tx(struct core_db_conn *c, void *p)
{
    struct state_arg *a = p;
    a->res->rc = AZ_OK;
    a->id[0] = '\0';
    const char *v[] = {a->login};
    PGresult *r = core_db_exec(c, &az_resident_lock_stmt, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    if (PQntuples(r) != 1) {
        PQclear(r);
        fail_with(a->res, AZ_NOT_FOUND, "no resident %s", a->login);
        return CORE_DB_ROLLBACK;
    }
    char tenant[51];
    xsnprintf(a->id, sizeof a->id, "%s", PQgetvalue(r, 0, 0));
    xsnprintf(tenant, sizeof tenant, "%s", PQgetvalue(r, 0, 1));
    bool was_disabled = strcmp(PQgetvalue(r, 0, 2), "disabled") == 0;
    PQclear(r);
    if (was_disabled == a->disabled)
        return CORE_DB_OK; /* already so: nothing to record */
    const char *sv[] = {a->id, a->disabled ? "disabled" : "active"};
    r = core_db_exec(c, &az_resident_set_state_stmt, 2, sv);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    return record(c, a->disabled ? "resident.disable" : "resident.enable", tenant, a->id, a->actor,
                  NULL)
               ? CORE_DB_OK
               : CORE_DB_ERROR;
}

static enum core_db_rc end_sessions_tx(struct core_db_conn *c, void *p)
{
    const char *v[] = {p};
    PGresult *r = core_db_exec(c, &az_resident_end_sessions_stmt, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    r = core_db_exec(c, &az_resident_revoke_refresh_stmt, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    return CORE_DB_OK;
}

enum az_rc az_resident_set_disabled(const char *context, const char *login, bool disabled,
                                    const char *actor, struct az_result *res)
{
    char norm[AZ_LOGIN_MAX + 1];
    if (!lookup_login(login, norm, res))
        return res->rc;
    struct state_arg a = {.login = norm, .actor = actor, .disabled = disabled, .res = res};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_WRITE, state_tx, &a, &err);
    if (finish(rc, &err, res) != AZ_OK || !disabled)
        return res->rc;
    az_grant_forget_resident(a.id); /* their tokens stop here at once */
    /* Sessions and refresh tokens are the platform's own tables. The caller's
     * context has just shown it may see (and has disabled) this resident; a
     * failure here leaves the resident disabled (sign-in and the token
     * service check that) and a retry of the disable finishes the job. */
    rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, end_sessions_tx, a.id, &err);
    if (finish(rc, &err, res) != AZ_OK)
        xsnprintf(res->message, sizeof res->message,
                  "the resident is disabled, but their sessions could not be ended yet (%s): "
                  "disable again to finish",
                  rc == CORE_DB_UNAVAILABLE ? "database unavailable" : "database error");
    return res->rc;
}

/* ---- update ---- */

struct update_arg {
    const char *login, *name, *email, *hash, *actor;
    struct az_result *res;
};

static enum core_db_rc update_tx(struct core_db_conn *c, void *p)
{
    struct update_arg *a = p;
    a->res->rc = AZ_OK;
    struct az_resident cur;
    int found = find(c, a->login, &cur);
    if (found < 0)
        return CORE_DB_ERROR;
    if (!found) {
        fail_with(a->res, AZ_NOT_FOUND, "no resident %s", a->login);
        return CORE_DB_ROLLBACK;
    }
    const char *v[] = {cur.id, a->name, a->email, a->hash};
    PGresult *r = core_db_exec(c, &az_resident_update_stmt, 4, v);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    /* which fields changed, never their values */
    json_t *changed = json_array();
    if (a->name)
        json_array_append_new(changed, json_string("name"));
    if (a->email)
        json_array_append_new(changed, json_string("email"));
    if (a->hash)
        json_array_append_new(changed, json_string("password"));
    json_t *d = json_pack("{s:o}", "changed", changed);
    bool ok = record(c, "resident.update", cur.tenant, cur.id, a->actor, d);
    json_decref(d);
    return ok ? CORE_DB_OK : CORE_DB_ERROR;
}

enum az_rc az_resident_update(const char *context, const char *login, const char *name,
                              const char *email, const char *password, size_t password_len,
                              const char *actor, struct az_result *res)
{
    char norm[AZ_LOGIN_MAX + 1], mail[AZ_LOGIN_MAX + 1];
    if (!lookup_login(login, norm, res))
        return res->rc;
    const char *why;
    if (!name && !email && !password)
        return fail_with(res, AZ_INVALID, "nothing to change");
    if (name && (why = name_check(name)))
        return fail_with(res, AZ_INVALID, "%s", why);
    if (email && (why = email_check(email, mail)))
        return fail_with(res, AZ_INVALID, "%s", why);
    if (password && (why = password_check(password, password_len)))
        return fail_with(res, AZ_INVALID, "%s", why);
    char *hash = password ? az_password_hash(password, password_len) : NULL;
    struct update_arg a = {norm, name, email ? mail : NULL, hash, actor, res};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_WRITE, update_tx, &a, &err);
    if (hash) {
        OPENSSL_cleanse(hash, strlen(hash));
        free(hash);
    }
    return finish(rc, &err, res);
}

/* ---- links ---- */

struct link_arg {
    const char *context, *login, *tenant, *local_id, *actor;
    struct az_result *res;
};

/* The resident (visible in the context) and the town (likewise): false with
 * res set, or the statement failed (*failed). */
static bool link_targets(struct core_db_conn *c, struct link_arg *a, struct az_resident *who,
                         bool *failed)
{
    *failed = false;
    int found = find(c, a->login, who);
    if (found < 0) {
        *failed = true;
        return false;
    }
    if (!found) {
        fail_with(a->res, AZ_NOT_FOUND, "no resident %s", a->login);
        return false;
    }
    /* (every town reads the tenant registry: the town is checked by name) */
    if (a->context != CORE_DB_PLATFORM && (!a->context || strcmp(a->context, a->tenant) != 0)) {
        fail_with(a->res, AZ_FORBIDDEN, "a town links residents to its own numbers only");
        return false;
    }
    const char *tv[] = {a->tenant};
    PGresult *r = core_db_exec(c, &az_resident_tenant_stmt, 1, tv);
    if (!r) {
        *failed = true;
        return false;
    }
    bool exists = PQntuples(r) == 1;
    PQclear(r);
    if (!exists) {
        fail_with(a->res, AZ_NOT_FOUND, "no tenant %s", a->tenant);
        return false;
    }
    return true;
}

static enum core_db_rc link_tx(struct core_db_conn *c, void *p)
{
    struct link_arg *a = p;
    a->res->rc = AZ_OK;
    struct az_resident who;
    bool failed;
    if (!link_targets(c, a, &who, &failed))
        return failed ? CORE_DB_ERROR : CORE_DB_ROLLBACK;
    const char *gv[] = {who.id, a->tenant};
    PGresult *r = core_db_exec(c, &az_resident_link_get_stmt, 2, gv);
    if (!r)
        return CORE_DB_ERROR;
    bool had = PQntuples(r) == 1;
    bool same = had && strcmp(PQgetvalue(r, 0, 0), a->local_id) == 0;
    PQclear(r);
    if (same)
        return CORE_DB_OK; /* already so */
    const char *kv[] = {a->tenant, a->local_id, who.id};
    r = core_db_exec(c, &az_resident_link_taken_stmt, 3, kv);
    if (!r)
        return CORE_DB_ERROR;
    bool taken = PQntuples(r) > 0;
    PQclear(r);
    if (!taken && had) {
        r = core_db_exec(c, &az_resident_link_delete_stmt, 2, gv);
        if (!r)
            return CORE_DB_ERROR;
        PQclear(r);
    }
    if (!taken) {
        const char *iv[] = {who.id, a->tenant, a->local_id, a->actor};
        r = core_db_exec(c, &az_resident_link_insert_stmt, 4, iv);
        if (!r)
            return CORE_DB_ERROR;
        taken = PQntuples(r) != 1; /* another resident took it meanwhile */
        PQclear(r);
    }
    if (taken) {
        fail_with(a->res, AZ_CONFLICT, "that local number of %s is linked to another resident",
                  a->tenant);
        return CORE_DB_ROLLBACK;
    }
    json_t *d = json_pack("{s:s, s:b}", "tenant", a->tenant, "replaced", had);
    bool ok = record(c, "resident.link", a->tenant, who.id, a->actor, d);
    json_decref(d);
    return ok ? CORE_DB_OK : CORE_DB_ERROR;
}

enum az_rc az_resident_link(const char *context, const char *login, const char *tenant,
                            const char *local_id, const char *actor, struct az_result *res)
{
    char norm[AZ_LOGIN_MAX + 1];
    if (!lookup_login(login, norm, res))
        return res->rc;
    const char *why;
    if (!tenant || !core_tenant_id_ok(tenant))
        return fail_with(res, AZ_INVALID, "tenant is not a tenant id");
    if ((why = local_id_check(local_id)))
        return fail_with(res, AZ_INVALID, "%s", why);
    struct link_arg a = {context, norm, tenant, local_id, actor, res};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_WRITE, link_tx, &a, &err);
    return finish(rc, &err, res);
}

static enum core_db_rc unlink_tx(struct core_db_conn *c, void *p)
{
    struct link_arg *a = p;
    a->res->rc = AZ_OK;
    struct az_resident who;
    bool failed;
    if (!link_targets(c, a, &who, &failed))
        return failed ? CORE_DB_ERROR : CORE_DB_ROLLBACK;
    const char *v[] = {who.id, a->tenant};
    PGresult *r = core_db_exec(c, &az_resident_link_delete_stmt, 2, v);
    if (!r)
        return CORE_DB_ERROR;
    bool gone = PQntuples(r) == 1;
    PQclear(r);
    if (!gone) {
        fail_with(a->res, AZ_NOT_FOUND, "resident %s has no link to %s", a->login, a->tenant);
        return CORE_DB_ROLLBACK;
    }
    json_t *d = json_pack("{s:s}", "tenant", a->tenant);
    bool ok = record(c, "resident.unlink", a->tenant, who.id, a->actor, d);
    json_decref(d);
    return ok ? CORE_DB_OK : CORE_DB_ERROR;
}

enum az_rc az_resident_unlink(const char *context, const char *login, const char *tenant,
                              const char *actor, struct az_result *res)
{
    char norm[AZ_LOGIN_MAX + 1];
    if (!lookup_login(login, norm, res))
        return res->rc;
    if (!tenant || !core_tenant_id_ok(tenant))
        return fail_with(res, AZ_INVALID, "tenant is not a tenant id");
    struct link_arg a = {context, norm, tenant, NULL, actor, res};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_WRITE, unlink_tx, &a, &err);
    return finish(rc, &err, res);
}

struct links_arg {
    const char *login;
    json_t *out;
    bool found;
};

static enum core_db_rc links_tx(struct core_db_conn *c, void *p)
{
    struct links_arg *a = p;
    json_decref(a->out);
    a->out = NULL;
    struct az_resident who;
    int found = find(c, a->login, &who);
    if (found < 0)
        return CORE_DB_ERROR;
    a->found = found;
    if (!found)
        return CORE_DB_OK;
    const char *v[] = {who.id};
    PGresult *r = core_db_exec(c, &az_resident_links_stmt, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    a->out = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(a->out, json_pack("{s:s, s:s, s:s}", "tenant", PQgetvalue(r, i, 0),
                                                "local_id", PQgetvalue(r, i, 1), "created_at",
                                                PQgetvalue(r, i, 2)));
    PQclear(r);
    return CORE_DB_OK;
}

enum az_rc az_resident_links(const char *context, const char *login, json_t **out,
                             struct az_result *res)
{
    *out = NULL;
    char norm[AZ_LOGIN_MAX + 1];
    if (!lookup_login(login, norm, res))
        return res->rc;
    struct links_arg a = {norm, NULL, false};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_READ, links_tx, &a, &err);
    if (finish(rc, &err, res) != AZ_OK) {
        json_decref(a.out);
        return res->rc;
    }
    if (!a.found)
        return fail_with(res, AZ_NOT_FOUND, "no resident %s", norm);
    *out = a.out;
    return AZ_OK;
}

struct local_arg {
    const char *id, *tenant;
    char *out;
    bool found;
};

static enum core_db_rc local_tx(struct core_db_conn *c, void *p)
{
    struct local_arg *a = p;
    const char *v[] = {a->id, a->tenant};
    PGresult *r = core_db_exec(c, &az_resident_local_id_stmt, 2, v);
    if (!r)
        return CORE_DB_ERROR;
    a->found = PQntuples(r) == 1;
    if (a->found)
        xsnprintf(a->out, LOCAL_ID_MAX + 1, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return CORE_DB_OK;
}

enum az_rc az_resident_local_id(const char *resident_id, const char *tenant, char out[101])
{
    out[0] = '\0';
    if (!resident_id || strlen(resident_id) > 64 || !tenant || !core_tenant_id_ok(tenant))
        return AZ_NOT_FOUND;
    struct local_arg a = {resident_id, tenant, out, false};
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, local_tx, &a, NULL);
    if (rc == CORE_DB_UNAVAILABLE)
        return AZ_UNAVAILABLE;
    if (rc != CORE_DB_OK)
        return AZ_ERROR;
    return a.found ? AZ_OK : AZ_NOT_FOUND;
}

/* ---- sign-in ----
 *
 * Every attempt counts as a failure of its login before the password is
 * checked (one transaction: is the address or the login locked? if not,
 * count the attempt), and a right password takes the count back. So
 * attempts on one login at the same time cannot slip past its limit between
 * the check and the count, and a crash in between errs on the side of the
 * lock. An address is counted only once a password proved wrong: many right
 * sign-ins at once from one address do not lock it. */

/* $1 the key, $2 its limit. While the key is locked the attempt is counted
 * past the limit (failures > $2 says "was locked"; the caller then rolls the
 * count back): a lock starts when the count reaches the limit and, lasting
 * as long as the window, ends after the window that reached it. */
static struct core_stmt az_signin_count_stmt = CORE_STMT(
    "az_signin_count",
    "INSERT INTO signin_failures AS f (key, failures, window_start, locked_until) "
    "VALUES ($1, 1, now(), CASE WHEN $2::int <= 1 THEN now() + " THROTTLE_WINDOW " END) "
    "ON CONFLICT (key) DO UPDATE SET "
    "failures = CASE WHEN f.locked_until > now() THEN f.failures + 1 "
    "WHEN f.window_start <= now() - " THROTTLE_WINDOW " THEN 1 ELSE f.failures + 1 END, "
    "window_start = CASE WHEN f.locked_until > now() THEN f.window_start "
    "WHEN f.window_start <= now() - " THROTTLE_WINDOW " THEN now() ELSE f.window_start END, "
    "locked_until = CASE WHEN f.locked_until > now() THEN f.locked_until "
    "WHEN (CASE WHEN f.window_start <= now() - " THROTTLE_WINDOW " THEN 1 "
    "ELSE f.failures + 1 END) >= $2::int THEN now() + " THROTTLE_WINDOW " END "
    "RETURNING failures > $2::int, "
    "coalesce(ceil(extract(epoch FROM locked_until - now()))::int, 0)");
static struct core_stmt az_signin_locked_stmt = CORE_STMT(
    "az_signin_locked", "SELECT true, coalesce(ceil(extract(epoch FROM locked_until - "
                        "now()))::int, 0) FROM signin_failures WHERE key = $1 AND locked_until > "
                        "now()");
static struct core_stmt az_signin_resident_stmt =
    CORE_STMT("az_signin_resident",
              "SELECT " RESIDENT_COLUMNS ", password_hash FROM residents WHERE login = $1");
static struct core_stmt az_signin_clear_stmt =
    CORE_STMT("az_signin_clear", "DELETE FROM signin_failures WHERE key = $1");
static struct core_stmt az_signin_rehash_stmt =
    CORE_STMT("az_signin_rehash",
              "UPDATE residents SET password_hash = $3 WHERE id = $1 AND password_hash = $2");

struct signin_arg {
    const char *keys[2];
    int limits[2];
    int nkeys;
    const char *login; /* normalized; NULL when it cannot be one */
    bool throttled;
    int retry_after;
    bool found;
    struct az_resident r;
    char hash[STORED_HASH_MAX + 1];
};

static enum core_db_rc signin_begin_tx(struct core_db_conn *c, void *p)
{
    struct signin_arg *a = p;
    a->throttled = false;
    a->retry_after = 0;
    a->found = false;
    for (int i = 0; i < a->nkeys; i++) {
        char limit[16];
        snprintf(limit, sizeof limit, "%d", a->limits[i]);
        const char *v[] = {a->keys[i], limit};
        /* the login is counted before the password is checked (exact under
         * concurrency); an address only when a check failed, so that many
         * right sign-ins at once from one address (a proxy, a town hall's
         * network) do not lock it */
        bool login_key = strncmp(a->keys[i], "login:", 6) == 0;
        PGresult *r = login_key ? core_db_exec(c, &az_signin_count_stmt, 2, v)
                                : core_db_exec(c, &az_signin_locked_stmt, 1, v);
        if (!r)
            return CORE_DB_ERROR;
        if (PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't') {
            long s = 1;
            core_parse_long(PQgetvalue(r, 0, 1), 1, 86400, &s);
            a->throttled = true;
            if (s > a->retry_after)
                a->retry_after = (int)s;
        }
        PQclear(r);
    }
    if (a->throttled)
        return CORE_DB_ROLLBACK; /* counts nothing: the password is not looked at */
    if (!a->login)
        return CORE_DB_OK;
    const char *v[] = {a->login};
    PGresult *r = core_db_exec(c, &az_signin_resident_stmt, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    a->found = PQntuples(r) == 1;
    if (a->found) {
        from_row(r, 0, &a->r);
        xsnprintf(a->hash, sizeof a->hash, "%s", PQgetvalue(r, 0, 10));
    }
    PQclear(r);
    return CORE_DB_OK;
}

/* The password was right: take this attempt's count back (the login's
 * counter is cleared, the address keeps its earlier failures). */
static enum core_db_rc signin_uncount_tx(struct core_db_conn *c, void *p)
{
    struct signin_arg *a = p;
    for (int i = 0; i < a->nkeys; i++) {
        char limit[16];
        snprintf(limit, sizeof limit, "%d", a->limits[i]);
        const char *v[] = {a->keys[i], limit};
        if (strncmp(a->keys[i], "login:", 6) != 0)
            continue; /* the address was not counted */
        PGresult *r = core_db_exec(c, &az_signin_clear_stmt, 1, v);
        if (!r)
            return CORE_DB_ERROR;
        PQclear(r);
    }
    return CORE_DB_OK;
}

/* The password was wrong: the address's failure counts now. */
static enum core_db_rc signin_count_addr_tx(struct core_db_conn *c, void *p)
{
    struct signin_arg *a = p;
    for (int i = 0; i < a->nkeys; i++) {
        if (strncmp(a->keys[i], "addr:", 5) != 0)
            continue;
        char limit[16];
        snprintf(limit, sizeof limit, "%d", a->limits[i]);
        const char *v[] = {a->keys[i], limit};
        PGresult *r = core_db_exec(c, &az_signin_count_stmt, 2, v);
        if (!r)
            return CORE_DB_ERROR;
        PQclear(r);
    }
    return CORE_DB_OK;
}

struct rehash_arg {
    const char *id, *old, *fresh;
};

static enum core_db_rc signin_rehash_tx(struct core_db_conn *c, void *p)
{
    struct rehash_arg *a = p;
    const char *v[] = {a->id, a->old, a->fresh};
    PGresult *r = core_db_exec(c, &az_signin_rehash_stmt, 3, v);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    return CORE_DB_OK;
}

static char *dummy_hash;
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_make(void)
{
    dummy_hash = az_password_dummy();
}

enum az_signin_rc az_resident_signin(const char *login, const char *password, size_t len,
                                     const char *peer, struct az_resident *out, int *retry_after)
{
    struct az_resident unused;
    if (!out)
        out = &unused;
    memset(out, 0, sizeof *out);
    int retry_unused;
    if (!retry_after)
        retry_after = &retry_unused;
    *retry_after = 0;
    char norm[AZ_LOGIN_MAX + 1];
    bool login_ok = login && !az_login_check(login, norm);
    char login_key[AZ_LOGIN_MAX + 8], addr_key[PEER_MAX + 8];
    xsnprintf(addr_key, sizeof addr_key, "addr:%.*s", PEER_MAX, peer && *peer ? peer : "?");
    struct signin_arg *a = xcalloc(1, sizeof *a);
    a->keys[a->nkeys] = addr_key;
    a->limits[a->nkeys++] = ADDR_FAILURES_MAX;
    if (login_ok) {
        xsnprintf(login_key, sizeof login_key, "login:%s", norm);
        a->keys[a->nkeys] = login_key;
        a->limits[a->nkeys++] = LOGIN_FAILURES_MAX;
        a->login = norm;
    }
    enum az_signin_rc rc;
    enum core_db_rc db = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, signin_begin_tx, a, NULL);
    if (db == CORE_DB_ROLLBACK && a->throttled) {
        *retry_after = a->retry_after > 0 ? a->retry_after : 1;
        rc = AZ_SIGNIN_THROTTLED;
        goto cleanup;
    }
    if (db != CORE_DB_OK) {
        rc = AZ_SIGNIN_UNAVAILABLE;
        goto cleanup;
    }
    /* An unknown login costs the same scrypt work as a known one. */
    pthread_once(&dummy_once, dummy_make);
    bool rehash = false;
    bool length_ok = password && len <= AZ_PASSWORD_MAX;
    bool right = az_password_verify(length_ok ? password : "", length_ok ? len : 0,
                                    a->found ? a->hash : dummy_hash, &rehash) &&
                 a->found && length_ok;
    if (!right) {
        rc = AZ_SIGNIN_BAD; /* the login counted already */
        if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, signin_count_addr_tx, a, NULL) !=
            CORE_DB_OK)
            core_warn("sign-in: a failure from an address could not be counted");
        goto cleanup;
    }
    if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, signin_uncount_tx, a, NULL) != CORE_DB_OK)
        core_warn("sign-in: the failure count could not be taken back");
    struct tn_brief town;
    enum tn_rc trc = tn_brief(a->r.tenant, &town);
    if (trc == TN_UNAVAILABLE || trc == TN_ERROR) {
        rc = AZ_SIGNIN_UNAVAILABLE;
        goto cleanup;
    }
    if (a->r.disabled || trc != TN_OK || town.state != TN_ACTIVE) {
        rc = AZ_SIGNIN_DISABLED;
        goto cleanup;
    }
    if (rehash) {
        char *fresh = az_password_hash(password, len);
        struct rehash_arg ra = {a->r.id, a->hash, fresh};
        if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, signin_rehash_tx, &ra, NULL) != CORE_DB_OK)
            core_warn("sign-in: a password hash with old parameters could not be renewed");
        OPENSSL_cleanse(fresh, strlen(fresh));
        free(fresh);
    }
    *out = a->r;
    rc = AZ_SIGNIN_OK;
cleanup:
    OPENSSL_cleanse(a->hash, sizeof a->hash);
    free(a);
    return rc;
}
