/*
 * Subscriptions in PostgreSQL (renkei.ngsi_subscriptions). Every call runs
 * one transaction in the tenant's context, so row-level security keeps each
 * town to its own subscriptions whatever the SQL says; the tenant is named
 * in the statements too, for the indexes.
 */
#include <stdlib.h>

#include "core/log.h"
#include "exchange/xc_geo.h"
#include "exchange/xc_q.h"
#include "exchange/xc_subs.h"

#define ISO(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

#define SUB_COLUMNS                                                                                \
    "s.id, s.spec::text, "                                                                         \
    "CASE WHEN s.expires IS NOT NULL AND s.expires <= now() THEN 'expired' ELSE s.status "         \
    "END, " ISO("s.expires") ", s.times_sent, s.fails_counter, " ISO(                              \
        "s.last_notification") ", " ISO("s.last_success") ", " ISO("s.last_failure") ", "          \
                                                                                     "s.last_"     \
                                                                                     "failure_"    \
                                                                                     "reason, "    \
                                                                                     "s.last_"     \
                                                                                     "success_"    \
                                                                                     "code, "      \
                                                                                     "s.status, "  \
                                                                                     "s.service_"  \
                                                                                     "path "       \
                                                                                     "FROM "       \
                                                                                     "ngsi_"       \
                                                                                     "subscriptio" \
                                                                                     "ns s "

/* Paths filter: $2 is NULL (every path) or a text[] of stored paths. */
static struct core_stmt xc_subs_db_list_rows_stmt = CORE_STMT(
    "xc_subs_db_list_rows", "SELECT " SUB_COLUMNS "WHERE s.tenant_id = $1 "
                            "AND ($2::text[] IS NULL OR s.service_path = ANY ($2::text[])) "
                            "ORDER BY s.created_at, s.id LIMIT $3 OFFSET $4");
static struct core_stmt xc_subs_db_list_count_stmt = CORE_STMT(
    "xc_subs_db_list_count", "SELECT count(*) FROM ngsi_subscriptions s WHERE s.tenant_id = $1 "
                             "AND ($2::text[] IS NULL OR s.service_path = ANY ($2::text[]))");
static struct core_stmt xc_subs_db_get_stmt =
    CORE_STMT("xc_subs_db_get", "SELECT " SUB_COLUMNS "WHERE s.tenant_id = $1 AND s.id = $2");
/* Two inserts at once must not both pass the count: they queue on a lock of
 * the tenant's subscriptions, held to the end of the transaction. */
static struct core_stmt xc_subs_db_lock_stmt = CORE_STMT(
    "xc_subs_db_lock",
    "SELECT pg_advisory_xact_lock(hashtextextended('renkei.ngsi_subscriptions:' || $1, 0))");
static struct core_stmt xc_subs_db_insert_stmt =
    CORE_STMT("xc_subs_db_insert",
              "INSERT INTO ngsi_subscriptions (tenant_id, id, service_path, spec, status, expires) "
              "SELECT $1, $2, $3, $4::jsonb, $5, $6::timestamptz "
              "WHERE (SELECT count(*) FROM ngsi_subscriptions WHERE tenant_id = $1) < $7::int");
static struct core_stmt xc_subs_db_update_stmt =
    CORE_STMT("xc_subs_db_update", "UPDATE ngsi_subscriptions SET spec = $3::jsonb, status = $4, "
                                   "expires = $5::timestamptz WHERE tenant_id = $1 AND id = $2");
static struct core_stmt xc_subs_db_delete_stmt = CORE_STMT(
    "xc_subs_db_delete", "DELETE FROM ngsi_subscriptions WHERE tenant_id = $1 AND id = $2");
static struct core_stmt xc_subs_db_load_stmt = CORE_STMT(
    "xc_subs_db_load", "SELECT id, service_path, spec::text, status, "
                       "(extract(epoch FROM expires) * 1000)::bigint, "
                       "(extract(epoch FROM last_notification) * 1000)::bigint "
                       "FROM ngsi_subscriptions WHERE tenant_id = $1 AND status <> 'inactive' "
                       "AND (expires IS NULL OR expires > now()) ORDER BY created_at, id");
static struct core_stmt xc_subs_db_deactivate_stmt =
    CORE_STMT("xc_subs_db_deactivate",
              "UPDATE ngsi_subscriptions SET status = 'inactive' WHERE tenant_id = $1 AND id = $2 "
              "AND status <> 'inactive' AND ($3::text IS NULL OR status = $3)");
/* Counter deltas, each timestamp kept only when newer than the stored one
 * (other processes flush theirs too); every SET reads the old row. Status
 * is not written here: the NOTIFY trigger watches it. */
static struct core_stmt xc_subs_db_counters_stmt = CORE_STMT(
    "xc_subs_db_counters",
    "UPDATE ngsi_subscriptions SET times_sent = times_sent + $3::bigint, "
    "last_notification = greatest(last_notification, $4::timestamptz), "
    "last_success = greatest(last_success, $5::timestamptz), "
    "last_success_code = CASE WHEN $5::timestamptz >= coalesce(last_success, '-infinity') "
    "THEN $6::int ELSE last_success_code END, "
    "last_failure = greatest(last_failure, $7::timestamptz), "
    "last_failure_reason = CASE WHEN $7::timestamptz >= coalesce(last_failure, '-infinity') "
    "THEN $8 ELSE last_failure_reason END, "
    "fails_counter = CASE WHEN $9::bool THEN $10::int ELSE fails_counter + $10::int END "
    "WHERE tenant_id = $1 AND id = $2 "
    "RETURNING fails_counter, coalesce((spec ->> 'maxFailsLimit')::bigint, 0), status");

static enum xc_subs_rc finish(enum core_db_rc rc, enum xc_subs_rc body_rc)
{
    if (rc == CORE_DB_OK || rc == CORE_DB_ROLLBACK)
        return body_rc;
    return rc == CORE_DB_UNAVAILABLE ? XC_SUBS_UNAVAILABLE : XC_SUBS_ERROR;
}

static const char *val(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static long long num(PGresult *r, int row, int col)
{
    long v = 0;
    if (!PQgetisnull(r, row, col))
        core_parse_long(PQgetvalue(r, row, col), 0, 1L << 62, &v);
    return v;
}

/* Columns of SUB_COLUMNS rendered as GET shows them; NULL for a broken row. */
static json_t *render_row(PGresult *r, int row)
{
    struct xc_sub_row s = {
        .id = PQgetvalue(r, row, 0),
        .spec = PQgetvalue(r, row, 1),
        .status = PQgetvalue(r, row, 2),
        .expires = val(r, row, 3),
        .times_sent = num(r, row, 4),
        .fails_counter = num(r, row, 5),
        .last_notification = val(r, row, 6),
        .last_success = val(r, row, 7),
        .last_failure = val(r, row, 8),
        .last_failure_reason = val(r, row, 9),
        .last_success_code = num(r, row, 10),
    };
    return xc_sub_render(&s);
}

static const char *status_name(enum xc_sub_status st)
{
    return st == XC_SUB_INACTIVE ? "inactive" : st == XC_SUB_ONESHOT ? "oneshot" : "active";
}

/* ---- insert, update, delete ---- */

struct write_arg {
    const struct xc_sub *s;
    const char *tenant, *spec, *id;
    enum xc_subs_rc rc;
};

static void expires_text(const struct xc_sub *s, char out[32])
{
    if (s->has_expires)
        xc_sub_time_format(s->expires_ms, out);
}

static enum core_db_rc insert_tx(struct core_db_conn *c, void *p)
{
    struct write_arg *a = p;
    a->rc = XC_SUBS_OK;
    const char *lv[] = {a->tenant};
    PGresult *r = core_db_exec(c, &xc_subs_db_lock_stmt, 1, lv);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    char exp[32], max[16];
    expires_text(a->s, exp);
    snprintf(max, sizeof max, "%d", XC_SUBS_PER_TENANT);
    const char *v[] = {a->tenant,
                       a->s->id,
                       a->s->service_path,
                       a->spec,
                       status_name(a->s->status),
                       a->s->has_expires ? exp : NULL,
                       max};
    r = core_db_exec(c, &xc_subs_db_insert_stmt, 7, v);
    if (!r)
        return CORE_DB_ERROR;
    bool inserted = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (!inserted) {
        a->rc = XC_SUBS_TOO_MANY;
        return CORE_DB_ROLLBACK;
    }
    return CORE_DB_OK;
}

enum xc_subs_rc xc_subs_db_insert(const char *tenant, const struct xc_sub *s, const char *spec)
{
    struct write_arg a = {.s = s, .tenant = tenant, .spec = spec};
    enum core_db_rc drc = core_db_tx(tenant, CORE_TX_WRITE, insert_tx, &a, NULL);
    return finish(drc, a.rc);
}

static enum core_db_rc update_tx(struct core_db_conn *c, void *p)
{
    struct write_arg *a = p;
    char exp[32];
    expires_text(a->s, exp);
    const char *v[] = {a->tenant, a->s->id, a->spec, status_name(a->s->status),
                       a->s->has_expires ? exp : NULL};
    PGresult *r = core_db_exec(c, &xc_subs_db_update_stmt, 5, v);
    if (!r)
        return CORE_DB_ERROR;
    a->rc = strcmp(PQcmdTuples(r), "1") == 0 ? XC_SUBS_OK : XC_SUBS_NOT_FOUND;
    PQclear(r);
    return CORE_DB_OK;
}

enum xc_subs_rc xc_subs_db_update(const char *tenant, const struct xc_sub *s, const char *spec)
{
    struct write_arg a = {.s = s, .tenant = tenant, .spec = spec};
    enum core_db_rc drc = core_db_tx(tenant, CORE_TX_WRITE, update_tx, &a, NULL);
    return finish(drc, a.rc);
}

static enum core_db_rc delete_tx(struct core_db_conn *c, void *p)
{
    struct write_arg *a = p;
    const char *v[] = {a->tenant, a->id};
    PGresult *r = core_db_exec(c, &xc_subs_db_delete_stmt, 2, v);
    if (!r)
        return CORE_DB_ERROR;
    a->rc = strcmp(PQcmdTuples(r), "1") == 0 ? XC_SUBS_OK : XC_SUBS_NOT_FOUND;
    PQclear(r);
    return CORE_DB_OK;
}

enum xc_subs_rc xc_subs_db_delete(const char *tenant, const char *id)
{
    struct write_arg a = {.tenant = tenant, .id = id};
    enum core_db_rc drc = core_db_tx(tenant, CORE_TX_WRITE, delete_tx, &a, NULL);
    return finish(drc, a.rc);
}

/* ---- reads ---- */

struct get_arg {
    const char *tenant, *id;
    struct core_pool *pool;
    json_t *out;
    const char *raw_status, *path;
    enum xc_subs_rc rc;
};

static enum core_db_rc get_tx(struct core_db_conn *c, void *p)
{
    struct get_arg *a = p;
    json_decref(a->out);
    a->out = NULL;
    a->rc = XC_SUBS_NOT_FOUND;
    const char *v[] = {a->tenant, a->id};
    PGresult *r = core_db_exec(c, &xc_subs_db_get_stmt, 2, v);
    if (!r)
        return CORE_DB_ERROR;
    if (PQntuples(r) == 1) {
        a->out = render_row(r, 0);
        a->rc = a->out ? XC_SUBS_OK : XC_SUBS_ERROR;
        a->raw_status = core_pstrdup(a->pool, PQgetvalue(r, 0, 11));
        a->path = core_pstrdup(a->pool, PQgetvalue(r, 0, 12));
    }
    PQclear(r);
    return CORE_DB_OK;
}

enum xc_subs_rc xc_subs_db_get(const char *tenant, const char *id, struct core_pool *pool,
                               json_t **out, const char **raw_status, const char **path)
{
    struct get_arg a = {.tenant = tenant, .id = id, .pool = pool};
    enum core_db_rc drc = core_db_tx(tenant, CORE_TX_READ, get_tx, &a, NULL);
    enum xc_subs_rc rc = finish(drc, a.rc);
    if (rc != XC_SUBS_OK) {
        json_decref(a.out);
        return rc;
    }
    *out = a.out;
    if (raw_status)
        *raw_status = a.raw_status;
    if (path)
        *path = a.path;
    return XC_SUBS_OK;
}

struct list_arg {
    const char *tenant, *paths, *limit, *offset;
    bool want_total;
    json_t *out;
    long total;
    enum xc_subs_rc rc;
};

static enum core_db_rc list_tx(struct core_db_conn *c, void *p)
{
    struct list_arg *a = p;
    json_array_clear(a->out);
    a->rc = XC_SUBS_OK;
    const char *v[] = {a->tenant, a->paths, a->limit, a->offset};
    PGresult *r = core_db_exec(c, &xc_subs_db_list_rows_stmt, 4, v);
    if (!r)
        return CORE_DB_ERROR;
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *o = render_row(r, i);
        if (o)
            json_array_append_new(a->out, o);
    }
    PQclear(r);
    if (a->want_total) {
        r = core_db_exec(c, &xc_subs_db_list_count_stmt, 2, v);
        if (!r)
            return CORE_DB_ERROR;
        a->total = (long)num(r, 0, 0);
        PQclear(r);
    }
    return CORE_DB_OK;
}

enum xc_subs_rc xc_subs_db_list(const char *tenant, const char *const *paths, int npaths,
                                long limit, long offset, json_t **out, long *total)
{
    /* stored paths are [A-Za-z0-9_/#] (xc_ngsi_begin checked them), quoted
     * in the array literal all the same */
    struct strbuf arr;
    strbuf_init(&arr, 8192);
    if (npaths > 0) {
        strbuf_adds(&arr, "{");
        for (int i = 0; i < npaths; i++)
            strbuf_addf(&arr, "%s\"%s\"", i ? "," : "", paths[i]);
        strbuf_adds(&arr, "}");
    }
    char l[24], o[24];
    snprintf(l, sizeof l, "%ld", limit);
    snprintf(o, sizeof o, "%ld", offset);
    struct list_arg a = {.tenant = tenant,
                         .paths = npaths > 0 ? arr.buf : NULL,
                         .limit = l,
                         .offset = o,
                         .want_total = total != NULL,
                         .out = json_array()};
    enum core_db_rc drc = core_db_tx(tenant, CORE_TX_READ, list_tx, &a, NULL);
    enum xc_subs_rc rc = finish(drc, a.rc);
    strbuf_release(&arr);
    if (rc != XC_SUBS_OK) {
        json_decref(a.out);
        return rc;
    }
    *out = a.out;
    if (total)
        *total = a.total;
    return XC_SUBS_OK;
}

/* ---- for the matcher ---- */

struct load_arg {
    const char *tenant;
    xc_subs_db_row_fn fn;
    void *arg;
    PGresult *rows;
};

static enum core_db_rc load_tx(struct core_db_conn *c, void *p)
{
    struct load_arg *a = p;
    PQclear(a->rows);
    const char *v[] = {a->tenant};
    a->rows = core_db_exec(c, &xc_subs_db_load_stmt, 1, v);
    return a->rows ? CORE_DB_OK : CORE_DB_ERROR;
}

enum xc_subs_rc xc_subs_db_load(const char *tenant, xc_subs_db_row_fn fn, void *arg)
{
    struct load_arg a = {.tenant = tenant, .fn = fn, .arg = arg};
    enum core_db_rc drc = core_db_tx(tenant, CORE_TX_READ, load_tx, &a, NULL);
    enum xc_subs_rc rc = finish(drc, XC_SUBS_OK);
    /* rows are handed on only once committed: a retried body must not
     * hand them twice */
    if (rc == XC_SUBS_OK)
        for (int i = 0; i < PQntuples(a.rows); i++)
            fn(arg, PQgetvalue(a.rows, i, 0), PQgetvalue(a.rows, i, 1), PQgetvalue(a.rows, i, 2),
               PQgetvalue(a.rows, i, 3), val(a.rows, i, 4), val(a.rows, i, 5));
    PQclear(a.rows);
    return rc;
}

struct deactivate_arg {
    const char *tenant, *id, *only_from;
};

static enum core_db_rc deactivate_tx(struct core_db_conn *c, void *p)
{
    struct deactivate_arg *a = p;
    const char *v[] = {a->tenant, a->id, a->only_from};
    PGresult *r = core_db_exec(c, &xc_subs_db_deactivate_stmt, 3, v);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    return CORE_DB_OK;
}

enum xc_subs_rc xc_subs_db_deactivate(const char *tenant, const char *id, const char *only_from)
{
    struct deactivate_arg a = {tenant, id, only_from};
    enum core_db_rc drc = core_db_tx(tenant, CORE_TX_WRITE, deactivate_tx, &a, NULL);
    return finish(drc, XC_SUBS_OK);
}

struct counters_arg {
    const char *tenant;
    const struct xc_subs_delta *d;
    size_t n;
};

static enum core_db_rc counters_tx(struct core_db_conn *c, void *p)
{
    struct counters_arg *a = p;
    for (size_t i = 0; i < a->n; i++) {
        const struct xc_subs_delta *d = &a->d[i];
        char sent[24], notif[32], ok[32], code[16], failed[32], fails[16];
        snprintf(sent, sizeof sent, "%lld", d->sent);
        snprintf(code, sizeof code, "%d", d->last_success_code);
        snprintf(fails, sizeof fails, "%d", d->fails);
        if (d->last_notification)
            xc_sub_time_format(d->last_notification, notif);
        if (d->last_success)
            xc_sub_time_format(d->last_success, ok);
        if (d->last_failure)
            xc_sub_time_format(d->last_failure, failed);
        const char *v[] = {a->tenant,
                           d->id,
                           sent,
                           d->last_notification ? notif : NULL,
                           d->last_success ? ok : NULL,
                           code,
                           d->last_failure ? failed : NULL,
                           d->last_failure ? d->last_failure_reason : NULL,
                           d->reset ? "true" : "false",
                           fails};
        PGresult *r = core_db_exec(c, &xc_subs_db_counters_stmt, 10, v);
        if (!r)
            return CORE_DB_ERROR;
        bool over = PQntuples(r) == 1 && num(r, 0, 1) > 0 && num(r, 0, 0) > num(r, 0, 1) &&
                    strcmp(PQgetvalue(r, 0, 2), "inactive") != 0;
        PQclear(r);
        if (over) {
            /* Orion: failsCounter above maxFailsLimit makes it inactive */
            const char *dv[] = {a->tenant, d->id, NULL};
            r = core_db_exec(c, &xc_subs_db_deactivate_stmt, 3, dv);
            if (!r)
                return CORE_DB_ERROR;
            PQclear(r);
        }
    }
    return CORE_DB_OK;
}

enum xc_subs_rc xc_subs_db_counters(const char *tenant, const struct xc_subs_delta *d, size_t n)
{
    struct counters_arg a = {tenant, d, n};
    enum core_db_rc drc = core_db_tx(tenant, CORE_TX_WRITE, counters_tx, &a, NULL);
    return finish(drc, XC_SUBS_OK);
}

struct expr_arg {
    const struct xc_sql *sql;
    bool match;
};

static enum core_db_rc expr_tx(struct core_db_conn *c, void *p)
{
    struct expr_arg *a = p;
    PGresult *r = core_db_exec_sql(c, a->sql->text.buf, a->sql->nparams, a->sql->params);
    if (!r)
        return CORE_DB_ERROR;
    a->match = PQntuples(r) > 0;
    PQclear(r);
    return CORE_DB_OK;
}

enum xc_subs_rc xc_subs_db_expr_match(const char *tenant, const struct xc_sub *s,
                                      const struct xc_change *ch, bool *match)
{
    *match = false;
    struct core_pool *pool = core_pool_new();
    struct xc_sql sql;
    xc_sql_init(&sql, pool);
    char err[256];
    /* the entity as the change left it, in the shape of an ngsi_entities
     * row: the same compilers evaluate the expression on it, and a later
     * change of the entity (committed before this one is matched) does not
     * count */
    char *geojson = NULL;
    char why[64];
    if (xc_geo_location(ch->attrs, &geojson, why, sizeof why) != XC_GEO_OK) {
        free(geojson);
        geojson = NULL;
    }
    char *attrs = json_dumps(ch->attrs, JSON_COMPACT | JSON_REAL_PRECISION(XC_REAL_PRECISION));
    xc_sql_add(&sql, "SELECT 1 FROM (SELECT x.*, public.geography(x.geom) AS geog FROM (SELECT ");
    xc_sql_param(&sql, tenant);
    xc_sql_add(&sql, "::text AS tenant_id, ");
    xc_sql_param(&sql, ch->service_path);
    xc_sql_add(&sql, "::text AS service_path, ");
    xc_sql_param(&sql, ch->id);
    xc_sql_add(&sql, "::text AS id, ");
    xc_sql_param(&sql, ch->type);
    xc_sql_add(&sql, "::text AS type, ");
    xc_sql_param(&sql, attrs ? attrs : "{}");
    xc_sql_add(&sql, "::jsonb AS attrs, CASE WHEN ");
    const char *g = xc_sql_param_ref(&sql, geojson);
    xc_sql_add(&sql, g);
    xc_sql_add(&sql, "::text IS NULL THEN NULL ELSE public.ST_SetSRID(public.ST_GeomFromGeoJSON(");
    xc_sql_add(&sql, g);
    xc_sql_add(&sql, "::text), 4326) END AS geom, ");
    xc_sql_param(&sql, ch->created);
    xc_sql_add(&sql, "::timestamptz AS created_at, ");
    xc_sql_param(&sql, ch->modified);
    xc_sql_add(&sql, "::timestamptz AS modified_at) x) e WHERE true");
    free(attrs);
    free(geojson);
    bool ok = true;
    if (s->q) {
        xc_sql_add(&sql, " AND (");
        ok = xc_q_compile(&sql, s->q, XC_Q_ATTRS, err, sizeof err);
        xc_sql_add(&sql, ")");
    }
    if (ok && s->mq) {
        xc_sql_add(&sql, " AND (");
        ok = xc_q_compile(&sql, s->mq, XC_Q_METADATA, err, sizeof err);
        xc_sql_add(&sql, ")");
    }
    if (ok && s->georel) {
        bool present = false;
        const char *order = NULL;
        xc_sql_add(&sql, " AND (");
        ok = xc_geo_compile_expression(&sql, s->georel, s->geometry, s->coords, &present, &order,
                                       err, sizeof err);
        xc_sql_add(&sql, present ? ")" : "true)");
    }
    enum xc_subs_rc rc = XC_SUBS_ERROR;
    if (!ok || !xc_sql_ok(&sql)) {
        /* checked when the subscription was made: our bug if it fails now */
        core_log_bug("subscription %s: its expression no longer compiles: %s", s->id,
                     ok ? "too large" : err);
    } else {
        xc_sql_add(&sql, " LIMIT 1");
        struct expr_arg a = {.sql = &sql};
        rc = finish(core_db_tx(tenant, CORE_TX_READ, expr_tx, &a, NULL), XC_SUBS_OK);
        *match = rc == XC_SUBS_OK && a.match;
    }
    xc_sql_release(&sql);
    core_pool_free(pool);
    return rc;
}
