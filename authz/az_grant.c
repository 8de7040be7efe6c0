/* Grants and consents in PostgreSQL, and the per-process cache of which
 * grants are live that token verification reads. */
#include <pthread.h>
#include <stdatomic.h>
#include <limits.h>
#include <stdlib.h>
#include <time.h>

#include "audit/au.h"
#include "authz/az_grant.h"
#include "core/crypto.h"
#include "core/db.h"
#include "core/db_listen.h"
#include "core/log.h"

#define GRANT_SLOTS 4096
#define GRANT_MAX   100000
#define TS(col)     "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static struct core_stmt az_grant_find_stmt = CORE_STMT(
    "az_grant_find",
    "SELECT g.id, coalesce(string_agg(c.scope, ' ' ORDER BY c.scope) FILTER (WHERE c.expires_at "
    "IS NULL OR c.expires_at > now()), '') FROM grants g LEFT JOIN consents c ON c.grant_id = "
    "g.id WHERE g.resident_id = $1 AND g.client_id = $2 AND g.revoked_at IS NULL GROUP BY g.id");
static struct core_stmt az_grant_upsert_stmt = CORE_STMT(
    "az_grant_upsert",
    "INSERT INTO grants (id, resident_id, client_id, tenant_id) VALUES ($1, $2, $3, $4) ON "
    "CONFLICT (resident_id, client_id) WHERE revoked_at IS NULL DO UPDATE SET updated_at = now() "
    "RETURNING id, (xmax = 0)");
static struct core_stmt az_grant_scopes_drop_stmt = CORE_STMT(
    "az_grant_scopes_drop", "DELETE FROM consents WHERE grant_id = $1 AND NOT scope IN (SELECT "
                            "jsonb_array_elements_text($2::jsonb)) RETURNING scope");
static struct core_stmt az_grant_scopes_add_stmt = CORE_STMT(
    "az_grant_scopes_add",
    "INSERT INTO consents (grant_id, scope, expires_at) SELECT $1, s, CASE WHEN $3::bigint > 0 "
    "THEN now() + make_interval(secs => $3::bigint) END FROM jsonb_array_elements_text($2::jsonb) "
    "s ON CONFLICT (grant_id, scope) DO UPDATE SET granted_at = CASE WHEN consents.expires_at <= "
    "now() THEN now() ELSE consents.granted_at END, expires_at = EXCLUDED.expires_at");
static struct core_stmt az_grant_touch_stmt = CORE_STMT(
    /* scopes were taken away: other processes drop what they cached */
    "az_grant_touch", "UPDATE grants SET updated_at = now() WHERE id = $1");
static struct core_stmt az_grant_revoke_stmt = CORE_STMT(
    "az_grant_revoke",
    "UPDATE grants SET revoked_at = now(), revoked_by = $3 WHERE id = $1 AND resident_id = $2 AND "
    "revoked_at IS NULL RETURNING client_id, tenant_id");
static struct core_stmt az_grant_revoke_refresh_stmt = CORE_STMT(
    "az_grant_revoke_refresh",
    "UPDATE refresh_tokens SET revoked_at = now() WHERE grant_id = $1 AND revoked_at IS NULL");
static struct core_stmt az_grant_list_stmt =
    CORE_STMT("az_grant_list",
              "SELECT g.id, g.client_id, cl.name, g.tenant_id, t.name, " TS(
                  "g.created_at") ", "
                                  "coalesce((SELECT json_agg(json_build_object('scope', c.scope, "
                                  "'granted_at', " TS("c.granted_at") ", 'expires_at', " TS(
                                      "c.expires_at") ") ORDER BY c.scope) FROM consents "
                                                      "c WHERE c.grant_id = g.id AND "
                                                      "(c.expires_at IS NULL OR "
                                                      "c.expires_at > now())), "
                                                      "'[]')::text FROM grants g JOIN "
                                                      "clients cl ON cl.id = g.client_id "
                                                      "JOIN tenants t ON t.id = "
                                                      "g.tenant_id WHERE g.resident_id = "
                                                      "$1 AND g.revoked_at IS NULL ORDER "
                                                      "BY g.created_at, g.id LIMIT 200");
static struct core_stmt az_grant_live_stmt = CORE_STMT(
    "az_grant_live",
    "SELECT g.resident_id, g.revoked_at IS NULL AND r.state = 'active' AND t.state = 'active', "
    "coalesce((SELECT string_agg(c.scope, ' ') FROM consents c WHERE c.grant_id = g.id AND "
    "(c.expires_at IS NULL OR c.expires_at > now())), ''), (SELECT extract(epoch FROM "
    "min(c.expires_at))::bigint FROM consents c WHERE c.grant_id = g.id AND c.expires_at > now()), "
    "coalesce(floor(extract(epoch FROM r.tokens_after))::bigint, 0) FROM grants g JOIN residents r "
    "ON "
    "r.id = g.resident_id JOIN tenants t ON t.id = r.tenant_id "
    "WHERE g.id = $1");

static enum az_rc db_rc(enum core_db_rc rc)
{
    return rc == CORE_DB_UNAVAILABLE ? AZ_UNAVAILABLE : AZ_ERROR;
}

/* ---- find ---- */

struct find_arg {
    const char *resident, *client;
    char *grant, *scopes;
};

static enum core_db_rc find_tx(struct core_db_conn *c, void *p)
{
    struct find_arg *a = p;
    const char *v[] = {a->resident, a->client};
    PGresult *r = core_db_exec(c, &az_grant_find_stmt, 2, v);
    if (!r)
        return CORE_DB_ERROR;
    a->grant[0] = a->scopes[0] = '\0';
    if (PQntuples(r) == 1) {
        xsnprintf(a->grant, 65, "%s", PQgetvalue(r, 0, 0));
        if (strlen(PQgetvalue(r, 0, 1)) <= AZ_SCOPE_MAX)
            xsnprintf(a->scopes, AZ_SCOPE_MAX + 1, "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    return CORE_DB_OK;
}

enum az_rc az_grant_find(const char *resident, const char *client, char grant_out[65],
                         char scopes_out[AZ_SCOPE_MAX + 1])
{
    struct find_arg a = {resident, client, grant_out, scopes_out};
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, find_tx, &a, NULL);
    return rc == CORE_DB_OK ? AZ_OK : db_rc(rc);
}

/* ---- consent ---- */

static json_t *scope_array(const char *scopes)
{
    json_t *a = json_array();
    for (const char *p = scopes; *p;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n)
            json_array_append_new(a, json_stringn(p, n));
        p += n;
    }
    return a;
}

struct consent_arg {
    const char *resident;
    const struct az_client *client;
    const char *scopes;
    long expires_s;
    char *grant;
};

static enum core_db_rc consent_tx(struct core_db_conn *c, void *p)
{
    struct consent_arg *a = p;
    unsigned char raw[18];
    core_random(raw, sizeof raw);
    char *rnd = core_b64url_encode(raw, sizeof raw);
    char id[65];
    xsnprintf(id, sizeof id, "g_%s", rnd);
    free(rnd);
    const char *v[] = {id, a->resident, a->client->id, a->client->tenant};
    PGresult *r = core_db_exec(c, &az_grant_upsert_stmt, 4, v);
    if (!r)
        return CORE_DB_ERROR;
    xsnprintf(a->grant, 65, "%s", PQgetvalue(r, 0, 0));
    bool created = PQgetvalue(r, 0, 1)[0] == 't';
    PQclear(r);
    json_t *scopes = scope_array(a->scopes);
    char *js = json_dumps(scopes, JSON_COMPACT);
    char exp[24];
    snprintf(exp, sizeof exp, "%ld", a->expires_s);
    const char *dv[] = {a->grant, js};
    r = core_db_exec(c, &az_grant_scopes_drop_stmt, 2, dv);
    bool dropped = r && PQntuples(r) > 0;
    PQclear(r);
    const char *av[] = {a->grant, js, exp};
    PGresult *r2 = r ? core_db_exec(c, &az_grant_scopes_add_stmt, 3, av) : NULL;
    PQclear(r2);
    free(js);
    if (!r || !r2) {
        json_decref(scopes);
        return CORE_DB_ERROR;
    }
    if (dropped) {
        const char *tv[] = {a->grant};
        PGresult *r3 = core_db_exec(c, &az_grant_touch_stmt, 1, tv);
        if (!r3) {
            json_decref(scopes);
            return CORE_DB_ERROR;
        }
        PQclear(r3);
    }
    char ref[44];
    au_resident_ref(a->resident, ref);
    struct au_entry e = {
        .kind = "consent.grant",
        .tenant = a->client->tenant,
        .actor = "resident",
        .consumer_tenant = a->client->tenant,
        .consumer_client = a->client->id,
        .resident = ref,
        .detail =
            json_pack("{s:s, s:o, s:b}", "grant", a->grant, "scopes", scopes, "new_grant", created),
    };
    if (a->expires_s > 0)
        json_object_set_new(e.detail, "expires_in", json_integer(a->expires_s));
    bool ok = au_append_in_tx(c, &e, NULL);
    json_decref(e.detail);
    return ok ? CORE_DB_OK : CORE_DB_ERROR;
}

static void cache_drop(const char *grant);

enum az_rc az_grant_consent(const char *resident, const struct az_client *c, const char *scopes,
                            long expires_s, char grant_out[65])
{
    struct consent_arg a = {resident, c, scopes, expires_s, grant_out};
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, consent_tx, &a, NULL);
    if (rc != CORE_DB_OK)
        return db_rc(rc);
    cache_drop(grant_out); /* scopes may have gone: at once here, elsewhere by NOTIFY */
    return AZ_OK;
}

/* ---- revoke ---- */

struct revoke_arg {
    const char *resident, *grant, *actor;
    bool found;
};

static enum core_db_rc revoke_tx(struct core_db_conn *c, void *p)
{
    struct revoke_arg *a = p;
    const char *v[] = {a->grant, a->resident, a->actor};
    PGresult *r = core_db_exec(c, &az_grant_revoke_stmt, 3, v);
    if (!r)
        return CORE_DB_ERROR;
    a->found = PQntuples(r) == 1;
    if (!a->found) {
        PQclear(r);
        return CORE_DB_ROLLBACK;
    }
    char client[65], tenant[51];
    xsnprintf(client, sizeof client, "%s", PQgetvalue(r, 0, 0));
    xsnprintf(tenant, sizeof tenant, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    const char *gv[] = {a->grant};
    r = core_db_exec(c, &az_grant_revoke_refresh_stmt, 1, gv);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    char ref[44];
    au_resident_ref(a->resident, ref);
    struct au_entry e = {
        .kind = "consent.revoke",
        .tenant = tenant,
        .actor = a->actor,
        .consumer_tenant = tenant,
        .consumer_client = client,
        .resident = ref,
        .detail = json_pack("{s:s}", "grant", a->grant),
    };
    bool ok = au_append_in_tx(c, &e, NULL);
    json_decref(e.detail);
    return ok ? CORE_DB_OK : CORE_DB_ERROR;
}

enum az_rc az_grant_revoke(const char *resident, const char *grant_id, const char *actor)
{
    if (strlen(grant_id) > 64)
        return AZ_NOT_FOUND;
    struct revoke_arg a = {resident, grant_id, actor, false};
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, revoke_tx, &a, NULL);
    if (rc == CORE_DB_ROLLBACK)
        return AZ_NOT_FOUND;
    if (rc != CORE_DB_OK)
        return db_rc(rc);
    cache_drop(grant_id); /* at once here; other processes by NOTIFY */
    return AZ_OK;
}

/* ---- list ---- */

struct list_arg {
    const char *resident;
    json_t *out;
};

static enum core_db_rc list_tx(struct core_db_conn *c, void *p)
{
    struct list_arg *a = p;
    const char *v[] = {a->resident};
    PGresult *r = core_db_exec(c, &az_grant_list_stmt, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    json_array_clear(a->out);
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *scopes = json_loads(PQgetvalue(r, i, 6), 0, NULL);
        json_array_append_new(
            a->out,
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "grant_id", PQgetvalue(r, i, 0),
                      "client_id", PQgetvalue(r, i, 1), "client_name", PQgetvalue(r, i, 2),
                      "tenant", PQgetvalue(r, i, 3), "tenant_name", PQgetvalue(r, i, 4),
                      "created_at", PQgetvalue(r, i, 5), "scopes", scopes ? scopes : json_array()));
    }
    PQclear(r);
    return CORE_DB_OK;
}

json_t *az_grant_list(const char *resident)
{
    struct list_arg a = {resident, json_array()};
    if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, list_tx, &a, NULL) != CORE_DB_OK) {
        json_decref(a.out);
        return NULL;
    }
    return a.out;
}

/* ---- the cache of live grants ---- */

struct cached {
    struct cached *next;
    char grant[65];
    char resident[65];
    bool live;
    char *scopes;    /* consented and unexpired */
    long long until; /* when the first of them expires (the entry is stale then) */
    long long after; /* tokens issued up to then are dead (the resident was disabled) */
};

static void cached_free(struct cached *e)
{
    free(e->scopes);
    free(e);
}

static struct {
    pthread_rwlock_t lock;
    struct cached *slots[GRANT_SLOTS];
    size_t count;
} cache = {.lock = PTHREAD_RWLOCK_INITIALIZER};

/* Bumped by every drop: a row read before a drop is not cached after it. */
static atomic_uint generation;

static void cache_clear_locked(void)
{
    for (size_t i = 0; i < GRANT_SLOTS; i++) {
        struct cached *e = cache.slots[i];
        while (e) {
            struct cached *next = e->next;
            cached_free(e);
            e = next;
        }
        cache.slots[i] = NULL;
    }
    cache.count = 0;
}

static unsigned slot(const char *grant)
{
    return core_hash_str(grant) % GRANT_SLOTS;
}

static void cache_drop(const char *grant)
{
    atomic_fetch_add(&generation, 1);
    pthread_rwlock_wrlock(&cache.lock);
    for (struct cached **pp = &cache.slots[slot(grant)]; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->grant, grant) == 0) {
            struct cached *dead = *pp;
            *pp = dead->next;
            cached_free(dead);
            cache.count--;
            break;
        }
    }
    pthread_rwlock_unlock(&cache.lock);
}

static void cache_drop_resident(const char *resident)
{
    atomic_fetch_add(&generation, 1);
    pthread_rwlock_wrlock(&cache.lock);
    for (size_t i = 0; i < GRANT_SLOTS; i++) {
        struct cached **pp = &cache.slots[i];
        while (*pp) {
            if (strcmp((*pp)->resident, resident) == 0) {
                struct cached *dead = *pp;
                *pp = dead->next;
                cached_free(dead);
                cache.count--;
                continue;
            }
            pp = &(*pp)->next;
        }
    }
    pthread_rwlock_unlock(&cache.lock);
}

static void cache_put(const char *grant, const char *resident, bool live, const char *scopes,
                      long long until, long long after)
{
    pthread_rwlock_wrlock(&cache.lock);
    if (cache.count >= GRANT_MAX)
        cache_clear_locked();
    struct cached *e = xcalloc(1, sizeof *e);
    xsnprintf(e->grant, sizeof e->grant, "%s", grant);
    xsnprintf(e->resident, sizeof e->resident, "%s", resident);
    e->live = live;
    e->scopes = xstrdup(scopes);
    e->until = until;
    e->after = after;
    e->next = cache.slots[slot(grant)];
    cache.slots[slot(grant)] = e;
    cache.count++;
    pthread_rwlock_unlock(&cache.lock);
}

struct live_arg {
    const char *grant;
    char *resident, *scopes;
    long long until, after;
    int live;
};

static enum core_db_rc live_tx(struct core_db_conn *c, void *p)
{
    struct live_arg *a = p;
    const char *v[] = {a->grant};
    PGresult *r = core_db_exec(c, &az_grant_live_stmt, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    a->live = 0;
    a->resident[0] = a->scopes[0] = '\0';
    a->until = LLONG_MAX;
    if (PQntuples(r) == 1) {
        xsnprintf(a->resident, 65, "%s", PQgetvalue(r, 0, 0));
        a->live = PQgetvalue(r, 0, 1)[0] == 't';
        if (strlen(PQgetvalue(r, 0, 2)) <= AZ_SCOPE_MAX)
            xsnprintf(a->scopes, AZ_SCOPE_MAX + 1, "%s", PQgetvalue(r, 0, 2));
        long u = 0;
        if (!PQgetisnull(r, 0, 3) && core_parse_long(PQgetvalue(r, 0, 3), 0, 1L << 40, &u))
            a->until = u;
        long t = 0;
        core_parse_long(PQgetvalue(r, 0, 4), 0, 1L << 40, &t);
        a->after = t;
    }
    PQclear(r);
    return CORE_DB_OK;
}

int az_grant_live(const char *grant_id, char resident_out[65], char scopes_out[AZ_SCOPE_MAX + 1],
                  long long *after)
{
    *after = 0;
    resident_out[0] = scopes_out[0] = '\0';
    if (strlen(grant_id) > 64)
        return 0;
    bool coherent = core_db_listen_connected();
    long long now = (long long)time(NULL);
    if (coherent) {
        int found = -1;
        bool stale = false;
        pthread_rwlock_rdlock(&cache.lock);
        for (struct cached *e = cache.slots[slot(grant_id)]; e; e = e->next) {
            if (strcmp(e->grant, grant_id) == 0) {
                stale = now >= e->until;
                if (!stale) {
                    found = e->live;
                    *after = e->after;
                    xsnprintf(resident_out, 65, "%s", e->resident);
                    xsnprintf(scopes_out, AZ_SCOPE_MAX + 1, "%s", e->scopes);
                }
                break;
            }
        }
        pthread_rwlock_unlock(&cache.lock);
        if (found >= 0) {
            if (!found)
                resident_out[0] = scopes_out[0] = '\0';
            return found;
        }
        if (stale)
            cache_drop(grant_id); /* a consented scope expired since it was read */
    }
    unsigned gen = atomic_load(&generation);
    struct live_arg a = {grant_id, resident_out, scopes_out, LLONG_MAX, 0, 0};
    if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, live_tx, &a, NULL) != CORE_DB_OK) {
        resident_out[0] = scopes_out[0] = '\0';
        return -1;
    }
    if (coherent && resident_out[0] && atomic_load(&generation) == gen)
        cache_put(grant_id, resident_out, a.live, scopes_out, a.until, a.after);
    *after = a.after;
    if (!a.live)
        resident_out[0] = scopes_out[0] = '\0';
    return a.live;
}

void az_grant_forget_resident(const char *resident)
{
    cache_drop_resident(resident);
}

/* "g <grant>" or "r <resident>" */
static void on_grants(const char *payload, void *arg)
{
    (void)arg;
    if (payload[0] == 'g' && payload[1] == ' ')
        cache_drop(payload + 2);
    else if (payload[0] == 'r' && payload[1] == ' ')
        cache_drop_resident(payload + 2);
}

static void on_grants_reset(void *arg)
{
    (void)arg;
    atomic_fetch_add(&generation, 1);
    pthread_rwlock_wrlock(&cache.lock);
    cache_clear_locked();
    pthread_rwlock_unlock(&cache.lock);
}

void az_grant_cache_init(void)
{
    core_db_listen("renkei_grants", on_grants, on_grants_reset, NULL);
}

void az_grant_cache_release(void)
{
    pthread_rwlock_wrlock(&cache.lock);
    cache_clear_locked();
    pthread_rwlock_unlock(&cache.lock);
}
