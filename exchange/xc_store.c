/*
 * The hosted store's database work. Queries are built at run time from
 * constant pieces (xc_sql) because filters, paths and order vary; every
 * request value is a bound parameter. Writes lock the entity's row, merge in
 * C, and write the row back in the same transaction.
 */
#include <limits.h>
#include <regex.h>

#include "core/db.h"
#include "core/log.h"
#include "exchange/xc_geo.h"
#include "exchange/xc_parsed.h"
#include "exchange/xc_q.h"
#include "exchange/xc_store.h"

#define TIME_FMT "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'"
#define ROW_COLUMNS                                                                                \
    "SELECT e.id, e.type, e.service_path, e.attrs::text, to_char(e.created_at, " TIME_FMT          \
    "), to_char(e.modified_at, " TIME_FMT ")"

static void json_cleanup(void *p)
{
    json_decref(p);
}

static bool pattern_ok(const char *p)
{
    if (strlen(p) > XC_PATTERN_MAX)
        return false;
    regex_t re;
    if (regcomp(&re, p, REG_EXTENDED | REG_NOSUB) != 0)
        return false;
    regfree(&re);
    return true;
}

/* A text[] literal of names (quoted, backslash-escaped). */
static const char *array_literal(struct core_pool *pool, const char *const *v, size_t n)
{
    struct strbuf sb;
    /* every name quoted, every byte possibly escaped */
    strbuf_init(&sb, n * (2 * XC_NAME_MAX + 3) + 3);
    strbuf_adds(&sb, "{");
    for (size_t i = 0; i < n; i++) {
        strbuf_adds(&sb, i ? ",\"" : "\"");
        for (const char *c = v[i]; *c; c++) {
            if (*c == '"' || *c == '\\')
                strbuf_adds(&sb, "\\");
            strbuf_add(&sb, c, 1);
        }
        strbuf_adds(&sb, "\"");
    }
    strbuf_adds(&sb, "}");
    const char *out = core_pstrdup(pool, sb.buf);
    strbuf_release(&sb);
    return out;
}

static void name_cond(struct xc_sql *s, const char *col, const char *const *v, size_t n)
{
    xc_sql_add(s, col);
    if (n == 1) {
        xc_sql_add(s, " = ");
        xc_sql_param(s, v[0]);
    } else {
        xc_sql_add(s, " = ANY (");
        xc_sql_param(s, array_literal(s->pool, v, n));
        xc_sql_add(s, "::text[])");
    }
}

static bool selector_sql(struct xc_sql *s, const struct xc_selector *sel, char *err, size_t errlen)
{
    bool any = false;
    xc_sql_add(s, "(");
    if (sel->nids) {
        name_cond(s, "e.id", sel->ids, sel->nids);
        any = true;
    } else if (sel->id_pattern) {
        if (!pattern_ok(sel->id_pattern)) {
            xsnprintf(err, errlen, "invalid idPattern");
            return false;
        }
        xc_sql_add(s, "e.id ~ ");
        xc_sql_param(s, sel->id_pattern);
        any = true;
    }
    if (sel->ntypes || sel->type_pattern)
        xc_sql_add(s, any ? " AND " : "");
    if (sel->ntypes) {
        name_cond(s, "e.type", sel->types, sel->ntypes);
        any = true;
    } else if (sel->type_pattern) {
        if (!pattern_ok(sel->type_pattern)) {
            xsnprintf(err, errlen, "invalid typePattern");
            return false;
        }
        xc_sql_add(s, "e.type ~ ");
        xc_sql_param(s, sel->type_pattern);
        any = true;
    }
    xc_sql_add(s, any ? ")" : "true)");
    return true;
}

/* " FROM ... WHERE ..." for q; *near gets the distance order of a near query. */
static bool where_sql(struct xc_sql *s, const struct xc_ngsi *n, const struct xc_query *q,
                      const char **near, char *err, size_t errlen)
{
    *near = NULL;
    xc_sql_add(s, " FROM renkei.ngsi_entities e WHERE e.tenant_id = ");
    xc_sql_param(s, n->tenant);
    xc_sql_add(s, " AND ");
    xc_sql_paths(s, n);
    if (q->nsel) {
        xc_sql_add(s, " AND (");
        for (size_t i = 0; i < q->nsel; i++) {
            if (i)
                xc_sql_add(s, " OR ");
            if (!selector_sql(s, &q->sel[i], err, errlen))
                return false;
        }
        xc_sql_add(s, ")");
    }
    if (q->q) {
        xc_sql_add(s, " AND ");
        if (!xc_q_compile(s, q->q, XC_Q_ATTRS, err, errlen))
            return false;
    }
    if (q->mq) {
        xc_sql_add(s, " AND ");
        if (!xc_q_compile(s, q->mq, XC_Q_METADATA, err, errlen))
            return false;
    }
    if (q->georel || q->geometry || q->coords) {
        bool present = false;
        xc_sql_add(s, " AND ");
        if (!xc_geo_compile(s, q->georel, q->geometry, q->coords, &present, near, err, errlen))
            return false;
        if (!present)
            xc_sql_add(s, "true");
    }
    return true;
}

static bool order_sql(struct xc_sql *s, const struct xc_query *q, const char *near, char *err,
                      size_t errlen)
{
    xc_sql_add(s, " ORDER BY ");
    for (size_t i = 0; i < q->norder; i++) {
        const char *o = q->order_by[i];
        bool desc = o[0] == '!';
        const char *name = o + desc;
        if (!*name || xc_check_name(name)) {
            if (strcmp(name, "geo:distance") != 0) {
                xsnprintf(err, errlen, "invalid orderBy: %s", o);
                return false;
            }
        }
        if (!strcmp(name, "id")) {
            xc_sql_add(s, "e.id");
        } else if (!strcmp(name, "type")) {
            xc_sql_add(s, "e.type");
        } else if (!strcmp(name, "dateCreated")) {
            xc_sql_add(s, "e.created_at");
        } else if (!strcmp(name, "dateModified")) {
            xc_sql_add(s, "e.modified_at");
        } else if (!strcmp(name, "geo:distance")) {
            if (!near) {
                xsnprintf(err, errlen, "orderBy geo:distance requires a near query");
                return false;
            }
            xc_sql_add(s, near);
        } else {
            xc_sql_add(s, "(e.attrs -> ");
            xc_sql_param(s, name);
            xc_sql_add(s, " -> 'value')");
        }
        xc_sql_add(s, desc ? " DESC NULLS LAST, " : " ASC NULLS FIRST, ");
    }
    if (!q->norder && near) {
        /* nearest first; e.seq keeps pages stable among equal distances
         * (it costs a sort of the matches, which a maxDistance bounds) */
        xc_sql_add(s, near);
        xc_sql_add(s, ", ");
    }
    xc_sql_add(s, "e.seq");
    return true;
}

static enum xc_rc db_rc(enum core_db_rc rc, const struct core_db_err *e, char *err, size_t errlen)
{
    if (rc == CORE_DB_UNAVAILABLE)
        return XC_UNAVAILABLE;
    if (rc == CORE_DB_ERROR && !strncmp(e->sqlstate, "22", 2)) {
        xsnprintf(err, errlen, "the query cannot be evaluated: %s", e->message);
        return XC_BAD;
    }
    if (rc == CORE_DB_ERROR && !strcmp(e->sqlstate, "57014")) {
        xsnprintf(err, errlen, "the query ran out of time");
        return XC_UNAVAILABLE;
    }
    return XC_ERROR;
}

/* shared: the attributes may come from the parse cache, read-only (a
 * query's rows); else they are the caller's own to change (a write's). */
static bool row_read(struct core_pool *pool, PGresult *r, int i, struct xc_row *row, bool shared)
{
    row->id = core_pstrdup(pool, PQgetvalue(r, i, 0));
    row->type = core_pstrdup(pool, PQgetvalue(r, i, 1));
    row->path = core_pstrdup(pool, PQgetvalue(r, i, 2));
    row->attrs = shared ? xc_parsed_get(PQgetvalue(r, i, 3), (size_t)PQgetlength(r, i, 3))
                        : json_loads(PQgetvalue(r, i, 3), 0, NULL);
    if (!json_is_object(row->attrs)) {
        /* input checks keep every stored number readable; if one is not,
         * the row is reported, never read as empty (a write would then
         * wipe it) */
        json_decref(row->attrs);
        row->attrs = NULL;
        core_log_bug("entity %s of tenant row cannot be read back as JSON", row->id);
        return false;
    }
    core_pool_cleanup(pool, json_cleanup, row->attrs);
    row->created = core_pstrdup(pool, PQgetvalue(r, i, 4));
    row->modified = core_pstrdup(pool, PQgetvalue(r, i, 5));
    return true;
}

/* ---- queries ---- */

enum xc_rc xc_store_query(const struct xc_ngsi *n, const struct xc_query *q, struct xc_row **rows,
                          size_t *nrows, long *total, char *err, size_t errlen)
{
    struct core_pool *pool = n->req->pool;
    struct xc_sql page, count;
    xc_sql_init(&page, pool);
    xc_sql_init(&count, pool);
    enum xc_rc rc = XC_BAD;
    const char *near = NULL, *near2 = NULL;
    *rows = NULL;
    *nrows = 0;
    xc_sql_add(&page, ROW_COLUMNS);
    if (!where_sql(&page, n, q, &near, err, errlen) || !order_sql(&page, q, near, err, errlen))
        goto cleanup;
    xc_sql_add(&page, " LIMIT ");
    xc_sql_param(&page, core_psprintf(pool, "%ld", q->limit));
    xc_sql_add(&page, "::bigint OFFSET ");
    xc_sql_param(&page, core_psprintf(pool, "%ld", q->offset));
    xc_sql_add(&page, "::bigint");
    if (q->count) {
        xc_sql_add(&count, "SELECT count(*)");
        if (!where_sql(&count, n, q, &near2, err, errlen))
            goto cleanup;
    }
    if (!xc_sql_ok(&page) || !xc_sql_ok(&count)) {
        xsnprintf(err, errlen, "the query is too large");
        goto cleanup;
    }
    /* one round trip: BEGIN, the tenant, the page (and the count), COMMIT */
    struct core_db_query qs[2] = {{page.text.buf, page.nparams, page.params},
                                  {count.text.buf, count.nparams, count.params}};
    PGresult *res[2] = {NULL, NULL};
    struct core_db_err dberr;
    enum core_db_rc drc = core_db_read(n->tenant, q->count ? CORE_TX_SNAPSHOT : CORE_TX_READ, qs,
                                       q->count ? 2 : 1, res, &dberr);
    if (drc != CORE_DB_OK) {
        rc = db_rc(drc, &dberr, err, errlen);
        goto cleanup;
    }
    int nr = PQntuples(res[0]);
    struct xc_row *out = core_pcalloc(pool, (size_t)(nr ? nr : 1) * sizeof *out);
    for (int i = 0; i < nr; i++) {
        if (!row_read(pool, res[0], i, &out[i], true)) {
            PQclear(res[0]);
            PQclear(res[1]);
            rc = XC_ERROR;
            goto cleanup;
        }
    }
    if (total && res[1])
        core_parse_long(PQgetvalue(res[1], 0, 0), 0, LONG_MAX, total);
    PQclear(res[0]);
    PQclear(res[1]);
    *rows = out;
    *nrows = (size_t)nr;
    rc = XC_OK;
cleanup:
    xc_sql_release(&page);
    xc_sql_release(&count);
    return rc;
}

/* ---- writes ---- */

struct write_tx {
    const struct xc_ngsi *n;
    struct core_pool *pool;
    /* create */
    const char *id, *type;
    const json_t *new_attrs;
    bool create, upsert;
    /* update */
    struct xc_update *u;
    struct xc_sql *select;
    size_t *read_budget; /* a batch's bytes of entities left to read; NULL: no bound */
    /* results */
    enum xc_rc rc;
    char why[300];
    struct xc_row row; /* the entity after the change */
    bool created, deleted;
};

static struct core_stmt st_insert = CORE_STMT(
    "xc_store_insert",
    "INSERT INTO renkei.ngsi_entities (tenant_id, service_path, id, type, attrs, geom, "
    "created_at, modified_at) VALUES ($1, $2, $3, $4, $5::jsonb, CASE WHEN $6::text IS NULL THEN "
    "NULL ELSE public.ST_SetSRID(public.ST_GeomFromGeoJSON($6::text), 4326) END, $7::timestamptz, "
    "$7::timestamptz) ON CONFLICT DO NOTHING RETURNING 1");

static struct core_stmt st_update = CORE_STMT(
    "xc_store_update",
    "UPDATE renkei.ngsi_entities SET attrs = $5::jsonb, geom = CASE WHEN $6::text IS NULL THEN "
    "NULL ELSE public.ST_SetSRID(public.ST_GeomFromGeoJSON($6::text), 4326) END, modified_at = "
    "$7::timestamptz WHERE tenant_id = $1 AND service_path = $2 AND id = $3 AND type = $4");

static struct core_stmt st_delete =
    CORE_STMT("xc_store_delete", "DELETE FROM renkei.ngsi_entities WHERE tenant_id = $1 AND "
                                 "service_path = $2 AND id = $3 AND type = $4");

/* The location of attrs for the geom column; false with t->rc set. */
static bool location(struct write_tx *t, const json_t *attrs, char **geojson)
{
    *geojson = NULL;
    switch (xc_geo_location(attrs, geojson, t->why, sizeof t->why)) {
    case XC_GEO_NONE:
    case XC_GEO_OK:
        return true;
    case XC_GEO_BAD:
        t->rc = XC_BAD;
        return false;
    case XC_GEO_TOO_MANY:
        t->rc = XC_TOO_MANY_GEO;
        return false;
    }
    return false;
}

static enum core_db_rc write_row(struct core_db_conn *c, struct write_tx *t, struct core_stmt *st,
                                 const char *path, const char *id, const char *type,
                                 const json_t *attrs, const char *now, bool *inserted)
{
    char *geojson;
    if (!location(t, attrs, &geojson))
        return CORE_DB_ROLLBACK;
    char *text = json_dumps(attrs, JSON_COMPACT | JSON_REAL_PRECISION(XC_REAL_PRECISION));
    if (strlen(text) > XC_ENTITY_MAX) {
        free(text);
        free(geojson);
        t->rc = XC_TOO_LARGE;
        xsnprintf(t->why, sizeof t->why, "an entity's attributes may take at most %d bytes",
                  XC_ENTITY_MAX);
        return CORE_DB_ROLLBACK;
    }
    const char *v[] = {t->n->tenant, path, id, type, text, geojson, now};
    PGresult *r = core_db_exec(c, st, 7, v);
    free(text);
    free(geojson);
    if (!r)
        return CORE_DB_ERROR;
    if (inserted)
        *inserted = PQntuples(r) == 1;
    PQclear(r);
    return CORE_DB_OK;
}

static enum core_db_rc update_body(struct core_db_conn *c, struct write_tx *t, const char *now)
{
    struct xc_update *u = t->u;
    PGresult *r = core_db_exec_sql(c, t->select->text.buf, t->select->nparams, t->select->params);
    if (!r)
        return CORE_DB_ERROR;
    int n = PQntuples(r);
    if (n != 1) {
        PQclear(r);
        t->rc = n == 0 ? XC_NOT_FOUND : XC_TOO_MANY;
        return CORE_DB_ROLLBACK;
    }
    if (t->read_budget) {
        /* a batch naming one large entity a thousand times would otherwise
         * hold a thousand parsed copies */
        size_t len = (size_t)PQgetlength(r, 0, 3);
        if (len > *t->read_budget) {
            PQclear(r);
            t->rc = XC_TOO_LARGE;
            xsnprintf(t->why, sizeof t->why, "a batch may touch at most %d MiB of entities",
                      XC_BATCH_READ_MAX / (1024 * 1024));
            return CORE_DB_ROLLBACK;
        }
        *t->read_budget -= len;
    }
    bool readable = row_read(t->pool, r, 0, &t->row, false);
    PQclear(r);
    if (!readable) {
        t->rc = XC_ERROR;
        return CORE_DB_ROLLBACK;
    }
    if (u->delete_entity) {
        const char *v[] = {t->n->tenant, t->row.path, t->row.id, t->row.type};
        r = core_db_exec(c, &st_delete, 4, v);
        if (!r)
            return CORE_DB_ERROR;
        PQclear(r);
        t->deleted = true;
        t->rc = XC_OK;
        return CORE_DB_OK;
    }
    xc_attrs_merge(t->pool, t->row.attrs, u->attrs, u->mode, now, u->overwrite, u->forced, &u->res);
    size_t given = json_object_size(u->attrs);
    if (u->res.nmissing && u->res.nmissing == given && u->mode != XC_MERGE_REPLACE) {
        t->rc = XC_OK; /* nothing applied: the caller reports the missing names */
        return CORE_DB_ROLLBACK;
    }
    if (json_object_size(t->row.attrs) > XC_ATTRS_MAX) {
        t->rc = XC_BAD;
        xsnprintf(t->why, sizeof t->why, "an entity holds at most %d attributes", XC_ATTRS_MAX);
        return CORE_DB_ROLLBACK;
    }
    enum core_db_rc rc =
        write_row(c, t, &st_update, t->row.path, t->row.id, t->row.type, t->row.attrs, now, NULL);
    if (rc == CORE_DB_OK) {
        t->row.modified = core_pstrdup(t->pool, now);
        t->rc = XC_OK;
    }
    return rc;
}

static enum core_db_rc insert_body(struct core_db_conn *c, struct write_tx *t, const char *now)
{
    json_t *attrs = json_deep_copy(t->new_attrs);
    core_pool_cleanup(t->pool, json_cleanup, attrs);
    xc_attrs_stamp(attrs, now);
    const char *type = t->type ? t->type : "Thing";
    bool inserted = false;
    enum core_db_rc rc =
        write_row(c, t, &st_insert, t->n->paths[0], t->id, type, attrs, now, &inserted);
    if (rc != CORE_DB_OK)
        return rc;
    if (!inserted) {
        t->rc = XC_EXISTS;
        return CORE_DB_ROLLBACK;
    }
    t->row = (struct xc_row){.id = t->id,
                             .type = type,
                             .path = t->n->paths[0],
                             .created = core_pstrdup(t->pool, now),
                             .modified = core_pstrdup(t->pool, now),
                             .attrs = attrs};
    t->created = true;
    t->rc = XC_OK;
    return CORE_DB_OK;
}

static enum core_db_rc write_body(struct core_db_conn *c, void *arg)
{
    struct write_tx *t = arg;
    char now[32];
    core_time_rfc3339(now);
    t->rc = XC_ERROR;
    t->why[0] = '\0';
    t->created = t->deleted = false;
    if (t->u)
        memset(&t->u->res, 0, sizeof t->u->res);
    if (!t->create)
        return update_body(c, t, now);
    if (!t->upsert)
        return insert_body(c, t, now);
    /* an upsert finds the entity by id (and type when given: an entity of
     * another type is the one meant when none is) before creating one */
    for (int attempt = 0;; attempt++) {
        enum core_db_rc rc = update_body(c, t, now);
        if (rc != CORE_DB_ROLLBACK || t->rc != XC_NOT_FOUND)
            return rc;
        memset(&t->u->res, 0, sizeof t->u->res);
        rc = insert_body(c, t, now);
        /* another request created it between our look and our insert: the
         * next look (a new snapshot, READ COMMITTED) finds it */
        if (rc != CORE_DB_ROLLBACK || t->rc != XC_EXISTS || attempt == 2)
            return rc;
    }
}

/* The row-locking select of one entity by id (and type) in n's paths. */
static void select_for_update(struct xc_sql *s, const struct xc_ngsi *n, const char *id,
                              const char *type)
{
    xc_sql_add(s, ROW_COLUMNS " FROM renkei.ngsi_entities e WHERE e.tenant_id = ");
    xc_sql_param(s, n->tenant);
    xc_sql_add(s, " AND e.id = ");
    xc_sql_param(s, id);
    if (type) {
        xc_sql_add(s, " AND e.type = ");
        xc_sql_param(s, type);
    }
    xc_sql_add(s, " AND ");
    xc_sql_paths(s, n);
    xc_sql_add(s, " ORDER BY e.seq LIMIT 2 FOR UPDATE");
}

static void announce(const struct xc_ngsi *n, const struct write_tx *t, const char *const *changed,
                     size_t nchanged)
{
    /* an update that changed nothing still reaches subscriptions to
     * entityUpdate; a deleted entity goes with its last content */
    struct xc_change ch = {
        .tenant = n->tenant,
        .service_path = t->row.path,
        .id = t->row.id,
        .type = t->row.type,
        .attrs = t->row.attrs,
        .created = t->row.created,
        .modified = t->row.modified,
        .changed = changed,
        .nchanged = nchanged,
        .entity_created = t->created,
        .entity_deleted = t->deleted,
        .correlator = n->correlator,
    };
    xc_subs_changed(&ch);
}

static enum xc_rc run_write(const struct xc_ngsi *n, struct write_tx *t, char *err, size_t errlen)
{
    struct core_db_err dberr;
    enum core_db_rc drc = core_db_tx(n->tenant, CORE_TX_WRITE, write_body, t, &dberr);
    if (drc == CORE_DB_OK || drc == CORE_DB_ROLLBACK) {
        if (t->why[0])
            xsnprintf(err, errlen, "%s", t->why);
        return t->rc;
    }
    return db_rc(drc, &dberr, err, errlen);
}

/* What one create needs beside its write_tx. */
struct create_ctx {
    struct xc_ngsi exact;
    struct xc_sql sel;
    struct xc_update u;
    struct write_tx t;
};

static void create_prepare(struct create_ctx *x, const struct xc_ngsi *n, struct xc_create *cr)
{
    struct core_pool *pool = n->req->pool;
    xc_sql_init(&x->sel, pool);
    x->u = (struct xc_update){.id = cr->id,
                              .type = cr->type,
                              .attrs = cr->attrs,
                              .mode = cr->mode,
                              .overwrite = cr->overwrite,
                              .forced = cr->forced};
    /* an upsert finds the existing entity in the one path it names */
    x->exact = *n;
    x->exact.subtree[0] = false;
    select_for_update(&x->sel, &x->exact, cr->id, cr->type);
    x->t = (struct write_tx){.n = n,
                             .pool = pool,
                             .id = cr->id,
                             .type = cr->type,
                             .new_attrs = cr->attrs,
                             .create = true,
                             .upsert = cr->upsert,
                             .u = &x->u,
                             .select = &x->sel};
}

static void create_finish(struct create_ctx *x, const struct xc_ngsi *n, struct xc_create *cr,
                          enum xc_rc rc)
{
    struct core_pool *pool = n->req->pool;
    xc_sql_release(&x->sel);
    cr->created = x->t.created;
    cr->res = x->u.res;
    if (rc != XC_OK)
        return;
    if (x->t.created) {
        const char **names = core_palloc(pool, (json_object_size(cr->attrs) + 1) * sizeof *names);
        size_t k = 0;
        const char *name;
        json_t *a;
        json_object_foreach((json_t *)cr->attrs, name, a) names[k++] = name;
        announce(n, &x->t, names, k);
    } else if (x->u.res.nmissing != json_object_size(cr->attrs)) {
        announce(n, &x->t, x->u.res.changed, x->u.res.nchanged);
    }
}

enum xc_rc xc_store_create(const struct xc_ngsi *n, struct xc_create *cr, char *err, size_t errlen)
{
    struct create_ctx x;
    create_prepare(&x, n, cr);
    enum xc_rc rc = run_write(n, &x.t, err, errlen);
    create_finish(&x, n, cr, rc);
    return rc;
}

static void update_finish(const struct xc_ngsi *n, struct write_tx *t, struct xc_update *u,
                          enum xc_rc rc)
{
    struct core_pool *pool = n->req->pool;
    if (rc != XC_OK)
        return;
    if (t->deleted) {
        const char **names =
            core_palloc(pool, (json_object_size(t->row.attrs) + 1) * sizeof *names);
        size_t k = 0;
        const char *name;
        json_t *a;
        json_object_foreach(t->row.attrs, name, a) names[k++] = name;
        announce(n, t, names, k);
    } else if (u->res.nmissing != json_object_size(u->attrs) || u->mode == XC_MERGE_REPLACE) {
        announce(n, t, u->res.changed, u->res.nchanged);
    }
}

enum xc_rc xc_store_update(const struct xc_ngsi *n, struct xc_update *u, char *err, size_t errlen)
{
    struct core_pool *pool = n->req->pool;
    struct xc_sql sel;
    xc_sql_init(&sel, pool);
    select_for_update(&sel, n, u->id, u->type);
    struct write_tx t = {.n = n, .pool = pool, .u = u, .select = &sel};
    enum xc_rc rc = run_write(n, &t, err, errlen);
    xc_sql_release(&sel);
    update_finish(n, &t, u, rc);
    return rc;
}

/* ---- batches ---- */

struct batch_tx {
    struct xc_batch_item *items;
    size_t count;
    size_t *order; /* items by (id, type): every batch locks rows in one order */
    size_t budget;
    struct create_ctx *cx;
    struct write_tx *ut;
    struct xc_sql *usel;
};

/* Every item in one transaction: an item that cannot be applied has changed
 * nothing (each write body decides before its first write), so it is only
 * recorded; a statement that fails fails the batch, and the runner may run
 * it all again. */
static enum core_db_rc batch_body(struct core_db_conn *c, void *arg)
{
    struct batch_tx *b = arg;
    b->budget = XC_BATCH_READ_MAX;
    for (size_t k = 0; k < b->count; k++) {
        size_t i = b->order[k];
        struct write_tx *t = b->items[i].cr ? &b->cx[i].t : &b->ut[i];
        t->read_budget = &b->budget;
        enum core_db_rc rc = write_body(c, t);
        if (rc == CORE_DB_ERROR || rc == CORE_DB_UNAVAILABLE)
            return rc;
    }
    return CORE_DB_OK;
}

static const char *item_id(const struct xc_batch_item *it)
{
    return it->cr ? it->cr->id : it->u->id;
}

static const char *item_type(const struct xc_batch_item *it)
{
    const char *t = it->cr ? it->cr->type : it->u->type;
    return t ? t : "";
}

/* (id, type), then the request's order: two batches over the same entities
 * lock them in the same order and cannot deadlock each other, and one
 * entity named twice is changed in the order the request gives */
static int by_entity(const void *a, const void *b, void *arg)
{
    const struct xc_batch_item *items = arg;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(item_id(&items[i]), item_id(&items[j]));
    if (!c)
        c = strcmp(item_type(&items[i]), item_type(&items[j]));
    return c ? c : (i > j) - (i < j);
}

enum xc_rc xc_store_batch(const struct xc_ngsi *n, struct xc_batch_item *items, size_t count,
                          char *err, size_t errlen)
{
    struct core_pool *pool = n->req->pool;
    struct batch_tx b = {.items = items,
                         .count = count,
                         .cx = core_pcalloc(pool, (count + 1) * sizeof *b.cx),
                         .ut = core_pcalloc(pool, (count + 1) * sizeof *b.ut),
                         .usel = core_pcalloc(pool, (count + 1) * sizeof *b.usel),
                         .order = core_pcalloc(pool, (count + 1) * sizeof *b.order)};
    for (size_t i = 0; i < count; i++)
        b.order[i] = i;
    qsort_r(b.order, count, sizeof *b.order, by_entity, items);
    for (size_t i = 0; i < count; i++) {
        if (items[i].cr) {
            create_prepare(&b.cx[i], n, items[i].cr);
        } else {
            xc_sql_init(&b.usel[i], pool);
            select_for_update(&b.usel[i], n, items[i].u->id, items[i].u->type);
            b.ut[i] =
                (struct write_tx){.n = n, .pool = pool, .u = items[i].u, .select = &b.usel[i]};
        }
    }
    struct core_db_err dberr;
    enum core_db_rc drc = core_db_tx(n->tenant, CORE_TX_WRITE, batch_body, &b, &dberr);
    enum xc_rc batch_rc = drc == CORE_DB_OK ? XC_OK : db_rc(drc, &dberr, err, errlen);
    for (size_t i = 0; i < count; i++) {
        struct write_tx *t = items[i].cr ? &b.cx[i].t : &b.ut[i];
        items[i].rc = batch_rc == XC_OK ? t->rc : batch_rc;
        items[i].why = core_pstrdup(pool, batch_rc == XC_OK ? t->why : "");
        if (items[i].cr) {
            create_finish(&b.cx[i], n, items[i].cr, items[i].rc);
        } else {
            xc_sql_release(&b.usel[i]);
            update_finish(n, t, items[i].u, items[i].rc);
        }
    }
    return batch_rc;
}

/* ---- types ---- */

struct types_tx {
    PGresult *rows;
    long total;
};

static void types_where(struct xc_sql *s, const struct xc_ngsi *n, const char *type)
{
    xc_sql_add(s, " FROM renkei.ngsi_entities e WHERE e.tenant_id = ");
    xc_sql_param(s, n->tenant);
    xc_sql_add(s, " AND ");
    xc_sql_paths(s, n);
    if (type) {
        xc_sql_add(s, " AND e.type = ");
        xc_sql_param(s, type);
    }
}

enum xc_rc xc_store_types(const struct xc_ngsi *n, const char *type, long limit, long offset,
                          bool names_only, json_t **out, long *total)
{
    struct core_pool *pool = n->req->pool;
    struct xc_sql list, count;
    xc_sql_init(&list, pool);
    xc_sql_init(&count, pool);
    if (names_only) {
        xc_sql_add(&list, "SELECT DISTINCT e.type, 0, NULL::text");
        types_where(&list, n, type);
    } else {
        xc_sql_add(&list, "SELECT t.type, t.n, (SELECT jsonb_object_agg(x.k, x.types)::text FROM "
                          "(SELECT a.key AS k, jsonb_agg(DISTINCT a.value -> 'type') AS types");
        xc_sql_add(&list, " FROM renkei.ngsi_entities e, jsonb_each(e.attrs) a WHERE "
                          "e.tenant_id = ");
        xc_sql_param(&list, n->tenant);
        xc_sql_add(&list, " AND e.type = t.type AND ");
        xc_sql_paths(&list, n);
        xc_sql_add(&list, " GROUP BY a.key) x) FROM (SELECT e.type, count(*) AS n");
        types_where(&list, n, type);
        xc_sql_add(&list, " GROUP BY e.type) t");
    }
    xc_sql_add(&list, " ORDER BY 1 LIMIT ");
    xc_sql_param(&list, core_psprintf(pool, "%ld", limit));
    xc_sql_add(&list, "::bigint OFFSET ");
    xc_sql_param(&list, core_psprintf(pool, "%ld", offset));
    xc_sql_add(&list, "::bigint");
    xc_sql_add(&count, "SELECT count(DISTINCT e.type)");
    types_where(&count, n, type);
    struct core_db_query qs[2] = {{list.text.buf, list.nparams, list.params},
                                  {count.text.buf, count.nparams, count.params}};
    PGresult *res[2] = {NULL, NULL};
    struct core_db_err dberr;
    enum core_db_rc drc = core_db_read(n->tenant, CORE_TX_SNAPSHOT, qs, 2, res, &dberr);
    xc_sql_release(&list);
    xc_sql_release(&count);
    if (drc != CORE_DB_OK) {
        char err[8];
        return db_rc(drc, &dberr, err, sizeof err);
    }
    struct types_tx t = {.rows = res[0]};
    core_parse_long(PQgetvalue(res[1], 0, 0), 0, LONG_MAX, &t.total);
    PQclear(res[1]);
    json_t *arr = json_array();
    for (int i = 0; i < PQntuples(t.rows); i++) {
        const char *name = PQgetvalue(t.rows, i, 0);
        if (names_only) {
            json_array_append_new(arr, json_string(name));
            continue;
        }
        long cnt = 0;
        core_parse_long(PQgetvalue(t.rows, i, 1), 0, LONG_MAX, &cnt);
        json_t *agg = json_loads(PQgetvalue(t.rows, i, 2), 0, NULL);
        json_t *attrs = json_object();
        const char *k;
        json_t *types;
        json_object_foreach(agg, k, types)
        {
            json_object_set_new(attrs, k, json_pack("{s:O}", "types", types));
        }
        json_decref(agg);
        json_array_append_new(arr, json_pack("{s:s, s:o, s:I}", "type", name, "attrs", attrs,
                                             "count", (json_int_t)cnt));
    }
    PQclear(t.rows);
    *out = arr;
    if (total)
        *total = t.total;
    return XC_OK;
}

void xc_reply_rc(struct core_req *req, enum xc_rc rc, const char *err)
{
    const char *e = err && *err ? err : NULL;
    switch (rc) {
    case XC_OK:
        core_log_bug("xc_reply_rc called for success");
        core_reply_error(req, CORE_ERR_INTERNAL, NULL);
        return;
    case XC_NOT_FOUND:
        core_reply_error(req, CORE_ERR_NOT_FOUND,
                         "The requested entity has not been found. Check type and id");
        return;
    case XC_TOO_MANY:
        core_reply_error(req, CORE_ERR_TOO_MANY_RESULTS, NULL);
        return;
    case XC_EXISTS:
        core_reply_error(req, CORE_ERR_UNPROCESSABLE, "Already Exists");
        return;
    case XC_BAD:
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s", e ? e : "bad request");
        return;
    case XC_TOO_LARGE:
        core_reply_error(req, CORE_ERR_BODY_TOO_LARGE, "%s", e ? e : "the entity is too large");
        return;
    case XC_TOO_MANY_GEO:
        core_reply_error(req, CORE_ERR_NO_RESOURCES, "%s",
                         e ? e
                           : "You cannot use more than one geo location attribute when creating "
                             "an entity [see Orion user manual]");
        return;
    case XC_UNAVAILABLE:
        core_reply_error(req, CORE_ERR_DB_UNAVAILABLE, e ? "%s" : NULL, e);
        return;
    case XC_ERROR:
        core_reply_error(req, CORE_ERR_INTERNAL, NULL);
        return;
    }
}
