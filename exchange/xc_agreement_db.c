/* Agreements in PostgreSQL. Each function is one transaction through
 * core_db_tx in the caller's context; row-level security and the
 * agreements_guard trigger (sql/0008_agreements.sql) enforce who may see
 * and change what, and the checks here only give clearer answers first. */
#include <stdlib.h>

#include "audit/au.h"
#include "core/crypto.h"
#include "core/log.h"
#include "exchange/xc_agreement.h"

#define AG_FIELDS                                                                                  \
    "id, provider, consumer, array_to_json(entity_types)::text, array_to_json(attrs)::text, "      \
    "array_to_json(actions)::text, array_to_json(purposes)::text, personal, consent_scope, "       \
    "resident_attr, coalesce(extract(epoch FROM valid_from)::bigint, 0), "                         \
    "coalesce(extract(epoch FROM valid_until)::bigint, 0), rate_per_minute, description, state, "  \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "                \
    "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), version "

static struct core_stmt xc_agreement_towns_stmt =
    CORE_STMT("xc_agreement_towns", "SELECT (SELECT count(*) FROM tenants WHERE id = $1), "
                                    "(SELECT count(*) FROM tenants WHERE id = $2)");
static struct core_stmt xc_agreement_insert_stmt = CORE_STMT(
    "xc_agreement_insert",
    "INSERT INTO agreements (id, provider, consumer, entity_types, attrs, actions, purposes, "
    "personal, consent_scope, resident_attr, valid_from, valid_until, rate_per_minute, "
    "description, created_by) VALUES ($1, $2, $3, "
    "ARRAY(SELECT jsonb_array_elements_text($4::jsonb)), "
    "ARRAY(SELECT jsonb_array_elements_text($5::jsonb)), "
    "ARRAY(SELECT jsonb_array_elements_text($6::jsonb)), "
    "ARRAY(SELECT jsonb_array_elements_text($7::jsonb)), $8::boolean, $9, $10, "
    "to_timestamp(nullif($11::bigint, 0)), to_timestamp(nullif($12::bigint, 0)), $13::integer, "
    "$14, $15) RETURNING " AG_FIELDS);
static struct core_stmt xc_agreement_get_stmt =
    CORE_STMT("xc_agreement_get", "SELECT " AG_FIELDS "FROM agreements WHERE id = $1");
static struct core_stmt xc_agreement_lock_stmt =
    CORE_STMT("xc_agreement_lock", "SELECT " AG_FIELDS "FROM agreements WHERE id = $1 FOR UPDATE");
static struct core_stmt xc_agreement_list_stmt =
    CORE_STMT("xc_agreement_list",
              "SELECT " AG_FIELDS "FROM agreements WHERE ($1::text IS NULL OR provider = $1) "
              "AND ($2::text IS NULL OR consumer = $2) AND ($3::text IS NULL OR state = $3) "
              "AND ($4::boolean IS NOT TRUE OR state <> 'revoked') AND id > coalesce($5, '') "
              "ORDER BY id LIMIT $6");
static struct core_stmt xc_agreement_set_state_stmt =
    CORE_STMT("xc_agreement_set_state",
              "UPDATE agreements SET state = $2 WHERE id = $1 RETURNING " AG_FIELDS);

static char **list_from_json(const char *text, size_t *n)
{
    *n = 0;
    json_t *arr = json_loads(text, 0, NULL);
    size_t len = json_array_size(arr);
    char **out = len ? xcalloc(len, sizeof *out) : NULL;
    for (size_t i = 0; i < len; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (s)
            out[(*n)++] = xstrdup(s);
    }
    json_decref(arr);
    return out;
}

static char *dup_or_null(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : xstrdup(PQgetvalue(r, row, col));
}

static int64_t int_at(PGresult *r, int row, int col)
{
    long v = 0;
    core_parse_long(PQgetvalue(r, row, col), 0, 1L << 62, &v);
    return v;
}

static void from_row(PGresult *r, int row, struct xc_agreement *a)
{
    memset(a, 0, sizeof *a);
    xsnprintf(a->id, sizeof a->id, "%s", PQgetvalue(r, row, 0));
    xsnprintf(a->provider, sizeof a->provider, "%s", PQgetvalue(r, row, 1));
    xsnprintf(a->consumer, sizeof a->consumer, "%s", PQgetvalue(r, row, 2));
    a->types = list_from_json(PQgetvalue(r, row, 3), &a->ntypes);
    a->attrs = list_from_json(PQgetvalue(r, row, 4), &a->nattrs);
    size_t nact;
    char **act = list_from_json(PQgetvalue(r, row, 5), &nact);
    for (size_t i = 0; i < nact; i++) {
        a->actions |= strcmp(act[i], "read") == 0 ? XC_AG_READ : XC_AG_WRITE;
        free(act[i]);
    }
    free(act);
    a->purposes = list_from_json(PQgetvalue(r, row, 6), &a->npurposes);
    a->personal = strcmp(PQgetvalue(r, row, 7), "t") == 0;
    a->consent_scope = dup_or_null(r, row, 8);
    a->resident_attr = dup_or_null(r, row, 9);
    a->valid_from = int_at(r, row, 10);
    a->valid_until = int_at(r, row, 11);
    a->rate_per_minute = (int)int_at(r, row, 12);
    a->description = dup_or_null(r, row, 13);
    if (!xc_ag_state_parse(PQgetvalue(r, row, 14), &a->state))
        a->state = XC_AG_REVOKED; /* cannot happen (CHECK); never permit on it */
    xsnprintf(a->created_at, sizeof a->created_at, "%s", PQgetvalue(r, row, 15));
    xsnprintf(a->updated_at, sizeof a->updated_at, "%s", PQgetvalue(r, row, 16));
    a->version = (int)int_at(r, row, 17);
}

/* Strips "ERROR:  " and a trailing newline from a server message kept for display. */
static void tidy(char *msg)
{
    const char *p = msg;
    if (strncmp(p, "ERROR:", 6) == 0) {
        p += 6;
        while (*p == ' ')
            p++;
    }
    memmove(msg, p, strlen(p) + 1);
    char *nl = strchr(msg, '\n');
    if (nl)
        *nl = '\0';
}

/* Maps a failed statement to a result the caller can show. */
static enum core_db_rc fail(struct core_db_conn *c, struct xc_ag_result *res)
{
    const struct core_db_err *e = core_db_last_error(c);
    struct {
        const char *state;
        enum xc_ag_rc rc;
    } map[] = {
        {"42501", XC_AG_FORBIDDEN}, {"55000", XC_AG_CONFLICT}, {"23514", XC_AG_INVALID},
        {"23503", XC_AG_INVALID},   {"22P02", XC_AG_INVALID},
    };
    res->rc = XC_AG_ERROR;
    xsnprintf(res->message, sizeof res->message, "database error");
    for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
        if (strcmp(e->sqlstate, map[i].state) == 0) {
            res->rc = map[i].rc;
            xsnprintf(res->message, sizeof res->message, "%s", e->message);
            tidy(res->message);
            if (strcmp(e->sqlstate, "42501") == 0 && strstr(res->message, "row-level security"))
                xsnprintf(res->message, sizeof res->message,
                          "a town proposes agreements only as their consumer");
        }
    }
    return CORE_DB_ERROR;
}

static enum xc_ag_rc finish(enum core_db_rc rc, const struct core_db_err *err,
                            struct xc_ag_result *res)
{
    if (rc == CORE_DB_OK)
        return res->rc = XC_AG_OK;
    if (rc == CORE_DB_ROLLBACK)
        return res->rc;
    if (rc == CORE_DB_UNAVAILABLE) {
        res->rc = XC_AG_UNAVAILABLE;
        xsnprintf(res->message, sizeof res->message, "the database is not available");
        return res->rc;
    }
    if (res->rc == XC_AG_OK) {
        res->rc = XC_AG_ERROR;
        xsnprintf(res->message, sizeof res->message, "database error: %s", err->message);
    }
    return res->rc;
}

static enum core_db_rc refuse(struct xc_ag_result *res, enum xc_ag_rc rc, const char *fmt, ...)
    PRINTF_LIKE(3, 4);
static enum core_db_rc refuse(struct xc_ag_result *res, enum xc_ag_rc rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
    res->rc = rc;
    return CORE_DB_ROLLBACK;
}

/* "ag_" and 24 characters of base32 (RFC 4648, lower case) of 120 random bits. */
static void new_id(char out[XC_AG_ID_LEN + 1])
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
    unsigned char raw[15];
    core_random(raw, sizeof raw);
    memcpy(out, "ag_", 3);
    unsigned bits = 0, acc = 0;
    size_t o = 3;
    for (size_t i = 0; i < sizeof raw; i++) {
        acc = (acc << 8) | raw[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = alphabet[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    out[o] = '\0';
}

static json_t *list_json(char *const *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(v[i]));
    return arr;
}

/* The audit detail: never a description's free text beyond the terms, no nulls. */
static json_t *event_detail(const struct xc_agreement *a, const char *from, bool terms)
{
    json_t *d = json_pack("{s:s, s:s, s:s, s:s}", "id", a->id, "provider", a->provider, "consumer",
                          a->consumer, "state", xc_ag_state_name(a->state));
    if (from)
        json_object_set_new(d, "from", json_string(from));
    if (terms) {
        json_t *full = xc_agreement_json(a);
        static const char *const keep[] = {
            "entity_types",  "attrs",         "actions",    "purposes",    "personal",
            "consent_scope", "resident_attr", "valid_from", "valid_until", "rate_per_minute"};
        for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
            json_t *v = json_object_get(full, keep[i]);
            if (v && !json_is_null(v))
                json_object_set(d, keep[i], v);
        }
        json_decref(full);
    }
    return d;
}

/*
 * Records an agreement event in the caller's transaction. The entry's tenant
 * is the provider, except when the consumer town itself acted (proposed or
 * withdrew): the audit log lets a town write entries only under its own id
 * (row-level security on audit_entries), so then it is the consumer. Either
 * way the entry names provider, consumer and agreement, so both towns (and
 * the prefecture above them) see it.
 */
static bool record_event(struct core_db_conn *c, const char *context, const char *kind,
                         const struct xc_agreement *a, const char *actor, json_t *detail)
{
    bool platform = context == CORE_DB_PLATFORM;
    struct au_entry e = {
        .kind = kind,
        .tenant = platform || strcmp(context, a->provider) == 0 ? a->provider : context,
        .actor = actor,
        .consumer_tenant = a->consumer,
        .provider = a->provider,
        .agreement = a->id,
        .detail = detail,
    };
    return au_append_in_tx(c, &e, NULL);
}

/* ---- create ---- */

struct create_arg {
    const char *context;
    const struct xc_agreement *a;
    const char *actor;
    struct xc_agreement *out;
    struct xc_ag_result *res;
};

static enum core_db_rc create_tx(struct core_db_conn *c, void *p)
{
    struct create_arg *x = p;
    const struct xc_agreement *a = x->a;
    x->res->rc = XC_AG_OK;
    xc_agreement_release(x->out);
    const char *tv[] = {a->provider, a->consumer};
    PGresult *r = core_db_exec(c, &xc_agreement_towns_stmt, 2, tv);
    if (!r)
        return fail(c, x->res);
    bool has_provider = strcmp(PQgetvalue(r, 0, 0), "0") != 0;
    bool has_consumer = strcmp(PQgetvalue(r, 0, 1), "0") != 0;
    PQclear(r);
    if (!has_provider)
        return refuse(x->res, XC_AG_INVALID, "provider: no tenant %s", a->provider);
    if (!has_consumer)
        return refuse(x->res, XC_AG_INVALID, "consumer: no tenant %s", a->consumer);

    char id[XC_AG_ID_LEN + 1];
    new_id(id);
    json_t *actions = json_array();
    if (a->actions & XC_AG_READ)
        json_array_append_new(actions, json_string("read"));
    if (a->actions & XC_AG_WRITE)
        json_array_append_new(actions, json_string("write"));
    json_t *lists[] = {list_json(a->types, a->ntypes), list_json(a->attrs, a->nattrs), actions,
                       list_json(a->purposes, a->npurposes)};
    char *text[4];
    for (size_t i = 0; i < 4; i++) {
        text[i] = json_dumps(lists[i], JSON_COMPACT);
        json_decref(lists[i]);
    }
    char from[24], until[24], rate[16];
    snprintf(from, sizeof from, "%lld", (long long)a->valid_from);
    snprintf(until, sizeof until, "%lld", (long long)a->valid_until);
    snprintf(rate, sizeof rate, "%d", a->rate_per_minute);
    const char *v[] = {id,
                       a->provider,
                       a->consumer,
                       text[0],
                       text[1],
                       text[2],
                       text[3],
                       a->personal ? "true" : "false",
                       a->consent_scope,
                       a->resident_attr,
                       from,
                       until,
                       rate,
                       a->description,
                       x->actor};
    r = core_db_exec(c, &xc_agreement_insert_stmt, 15, v);
    for (size_t i = 0; i < 4; i++)
        free(text[i]);
    if (!r)
        return fail(c, x->res);
    from_row(r, 0, x->out);
    PQclear(r);
    json_t *d = event_detail(x->out, NULL, true);
    bool ok = record_event(c, x->context, "agreement.propose", x->out, x->actor, d);
    json_decref(d);
    return ok ? CORE_DB_OK : fail(c, x->res);
}

enum xc_ag_rc xc_agreement_create(const char *context, const struct xc_agreement *a,
                                  const char *actor, struct xc_agreement *out,
                                  struct xc_ag_result *res)
{
    memset(res, 0, sizeof *res);
    memset(out, 0, sizeof *out);
    if (context != CORE_DB_PLATFORM && strcmp(context, a->consumer) != 0) {
        res->rc = XC_AG_FORBIDDEN;
        xsnprintf(res->message, sizeof res->message,
                  "a town proposes agreements only as their consumer");
        return res->rc;
    }
    /* a unique violation means the random id collided: draw another */
    struct create_arg x = {context, a, actor, out, res};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx_racing(context, CORE_TX_WRITE, create_tx, &x, &err);
    if (rc == CORE_DB_OK)
        xc_policy_forget();
    enum xc_ag_rc r = finish(rc, &err, res);
    if (r != XC_AG_OK)
        xc_agreement_release(out);
    return r;
}

/* ---- read ---- */

struct get_arg {
    const char *id;
    struct xc_agreement *out;
    bool found;
};

static enum core_db_rc get_tx(struct core_db_conn *c, void *p)
{
    struct get_arg *g = p;
    const char *v[] = {g->id};
    PGresult *r = core_db_exec(c, &xc_agreement_get_stmt, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    xc_agreement_release(g->out);
    g->found = PQntuples(r) == 1;
    if (g->found)
        from_row(r, 0, g->out);
    PQclear(r);
    return CORE_DB_OK;
}

enum xc_ag_rc xc_agreement_get(const char *context, const char *id, struct xc_agreement *out,
                               struct xc_ag_result *res)
{
    memset(res, 0, sizeof *res);
    memset(out, 0, sizeof *out);
    struct get_arg g = {id, out, false};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_READ, get_tx, &g, &err);
    if (finish(rc, &err, res) != XC_AG_OK)
        return res->rc;
    if (!g.found) {
        res->rc = XC_AG_NOT_FOUND;
        xsnprintf(res->message, sizeof res->message, "no agreement %s", id);
    }
    return res->rc;
}

struct list_arg {
    const struct xc_ag_filter *f;
    struct xc_agreement *items;
    size_t n;
};

static void list_clear(struct list_arg *l)
{
    for (size_t i = 0; i < l->n; i++)
        xc_agreement_release(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

static enum core_db_rc list_tx(struct core_db_conn *c, void *p)
{
    struct list_arg *l = p;
    list_clear(l);
    const struct xc_ag_filter *f = l->f;
    char limit[16];
    snprintf(limit, sizeof limit, "%d", f->limit);
    const char *state = f->state >= 0 ? xc_ag_state_name((enum xc_ag_state)f->state) : NULL;
    const char *v[] = {f->provider, f->consumer, state, f->state == -2 ? "true" : "false",
                       f->after,    limit};
    PGresult *r = core_db_exec(c, &xc_agreement_list_stmt, 6, v);
    if (!r)
        return CORE_DB_ERROR;
    int rows = PQntuples(r);
    l->items = xcalloc((size_t)rows + 1, sizeof *l->items);
    for (int i = 0; i < rows; i++)
        from_row(r, i, &l->items[l->n++]);
    PQclear(r);
    return CORE_DB_OK;
}

enum xc_ag_rc xc_agreement_list(const char *context, const struct xc_ag_filter *f,
                                struct xc_agreement **out, size_t *n, struct xc_ag_result *res)
{
    memset(res, 0, sizeof *res);
    struct list_arg l = {f, NULL, 0};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_READ, list_tx, &l, &err);
    if (finish(rc, &err, res) != XC_AG_OK) {
        list_clear(&l);
        return res->rc;
    }
    *out = l.items;
    *n = l.n;
    return XC_AG_OK;
}

/* ---- state changes ---- */

struct state_arg {
    const char *context;
    const char *id;
    enum xc_ag_state to;
    int if_version;
    const char *actor;
    struct xc_agreement *out;
    struct xc_ag_result *res;
};

static bool legal(enum xc_ag_state from, enum xc_ag_state to)
{
    switch (from) {
    case XC_AG_PROPOSED:
        return to == XC_AG_ACTIVE || to == XC_AG_REVOKED;
    case XC_AG_ACTIVE:
        return to == XC_AG_SUSPENDED || to == XC_AG_REVOKED;
    case XC_AG_SUSPENDED:
        return to == XC_AG_ACTIVE || to == XC_AG_REVOKED;
    case XC_AG_REVOKED:
        return false;
    }
    return false;
}

static const char *kind_of(enum xc_ag_state from, enum xc_ag_state to)
{
    switch (to) {
    case XC_AG_ACTIVE:
        return from == XC_AG_SUSPENDED ? "agreement.resume" : "agreement.approve";
    case XC_AG_SUSPENDED:
        return "agreement.suspend";
    case XC_AG_REVOKED:
        return "agreement.revoke";
    case XC_AG_PROPOSED:
        break;
    }
    return "agreement.propose";
}

static enum core_db_rc state_tx(struct core_db_conn *c, void *p)
{
    struct state_arg *x = p;
    x->res->rc = XC_AG_OK;
    xc_agreement_release(x->out);
    const char *v1[] = {x->id};
    PGresult *r = core_db_exec(c, &xc_agreement_lock_stmt, 1, v1);
    if (!r)
        return fail(c, x->res);
    if (PQntuples(r) != 1) {
        PQclear(r);
        return refuse(x->res, XC_AG_NOT_FOUND, "no agreement %s", x->id);
    }
    struct xc_agreement cur;
    from_row(r, 0, &cur);
    PQclear(r);
    enum xc_ag_state from = cur.state;
    bool is_provider = x->context == CORE_DB_PLATFORM || strcmp(x->context, cur.provider) == 0;
    bool is_consumer = x->context != CORE_DB_PLATFORM && strcmp(x->context, cur.consumer) == 0;
    enum core_db_rc out = CORE_DB_OK;
    if (x->if_version && x->if_version != cur.version)
        out = refuse(x->res, XC_AG_STALE, "agreement %s is at version %d, not %d: read it again",
                     cur.id, cur.version, x->if_version);
    else if (!legal(from, x->to))
        out = refuse(x->res, XC_AG_CONFLICT, "agreement %s is %s: it cannot become %s%s", cur.id,
                     xc_ag_state_name(from), xc_ag_state_name(x->to),
                     from == XC_AG_REVOKED ? " (revoked is final)" : "");
    else if (!is_provider && !(is_consumer && x->to == XC_AG_REVOKED))
        out = refuse(x->res, XC_AG_FORBIDDEN,
                     "only the provider %s (or the platform) may make agreement %s %s; the "
                     "consumer may only revoke it",
                     cur.provider, cur.id, xc_ag_state_name(x->to));
    xc_agreement_release(&cur);
    if (out != CORE_DB_OK)
        return out;
    const char *v2[] = {x->id, xc_ag_state_name(x->to)};
    r = core_db_exec(c, &xc_agreement_set_state_stmt, 2, v2);
    if (!r)
        return fail(c, x->res);
    if (PQntuples(r) != 1) {
        PQclear(r);
        return refuse(x->res, XC_AG_FORBIDDEN, "agreement %s may not be changed here", x->id);
    }
    from_row(r, 0, x->out);
    PQclear(r);
    json_t *d = event_detail(x->out, xc_ag_state_name(from), false);
    bool ok = record_event(c, x->context, kind_of(from, x->to), x->out, x->actor, d);
    json_decref(d);
    return ok ? CORE_DB_OK : fail(c, x->res);
}

enum xc_ag_rc xc_agreement_set_state(const char *context, const char *id, enum xc_ag_state to,
                                     int if_version, const char *actor, struct xc_agreement *out,
                                     struct xc_ag_result *res)
{
    memset(res, 0, sizeof *res);
    memset(out, 0, sizeof *out);
    struct state_arg x = {context, id, to, if_version, actor, out, res};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_WRITE, state_tx, &x, &err);
    if (rc == CORE_DB_OK)
        xc_policy_forget(); /* takes effect on this node at once */
    enum xc_ag_rc r = finish(rc, &err, res);
    if (r != XC_AG_OK)
        xc_agreement_release(out);
    return r;
}
