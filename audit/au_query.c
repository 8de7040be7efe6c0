#include <stdlib.h>

#include "audit/au_query.h"
#include "core/log.h"
#include "core/pool.h"

/*
 * Reading the log: pages of entries in seq order under filters, rendered as
 * the API's JSON items, JSON lines or CSV. The same code serves the auditor
 * API and `renkei audit export`, so both produce the same bytes.
 */

/* The filters of struct au_filter as SQL: $1 after, $2 upto, $3 from, $4 to,
 * $5 tenant, $6 client, $7 agreement, $8 purpose, $9 decision, $10 kind,
 * $11 kind prefix, $12 resident, $13 consumer, $14 provider (filter_values). */
#define AU_FILTER_SQL                                                                              \
    "seq > $1 AND ($2::bigint IS NULL OR seq <= $2) "                                              \
    "AND ($3::timestamptz IS NULL OR time >= $3) AND ($4::timestamptz IS NULL OR time < $4) "      \
    "AND ($5::text IS NULL OR tenant = $5 OR consumer_tenant = $5 OR provider = $5) "              \
    "AND ($6::text IS NULL OR consumer_client = $6) AND ($7::text IS NULL OR agreement = $7) "     \
    "AND ($8::text IS NULL OR purpose = $8) AND ($9::text IS NULL OR decision = $9) "              \
    "AND ($10::text IS NULL OR kind = $10) AND ($11::text IS NULL OR starts_with(kind, $11)) "     \
    "AND ($12::text IS NULL OR resident = $12) "                                                   \
    "AND ($13::text IS NULL OR consumer_tenant = $13) AND ($14::text IS NULL OR provider = $14) "
#define AU_FILTER_NPARAMS 14

static struct core_stmt au_entries_page_stmt =
    CORE_STMT("au_entries_page", "SELECT seq, canonical, encode(leaf_hash, 'base64') FROM "
                                 "audit_entries WHERE " AU_FILTER_SQL "ORDER BY seq LIMIT $15");

/* The text parameters of AU_FILTER_SQL, then limit as $15; after and upto
 * are buffers of the caller's for the numbers. */
static void filter_values(const struct au_filter *f, char after[32], char upto[32],
                          const char *limit, const char *v[AU_FILTER_NPARAMS + 1])
{
    xsnprintf(after, 32, "%lld", (long long)f->after);
    xsnprintf(upto, 32, "%lld", (long long)f->upto);
    const char *w[] = {after,          f->upto >= 0 ? upto : NULL,
                       f->from,        f->to,
                       f->tenant,      f->client,
                       f->agreement,   f->purpose,
                       f->decision,    f->kind,
                       f->kind_prefix, f->resident,
                       f->consumer,    f->provider,
                       limit};
    memcpy(v, w, sizeof w);
}

struct page_arg {
    const struct au_filter *f;
    long limit;
    PGresult *res;
};

static enum core_db_rc page_tx(struct core_db_conn *c, void *p)
{
    struct page_arg *a = p;
    const struct au_filter *f = a->f;
    char after[32], upto[32], limit[32];
    xsnprintf(limit, sizeof limit, "%ld", a->limit);
    const char *v[AU_FILTER_NPARAMS + 1];
    filter_values(f, after, upto, limit, v);
    PQclear(a->res);
    a->res = core_db_exec(c, &au_entries_page_stmt, AU_FILTER_NPARAMS + 1, v);
    return a->res ? CORE_DB_OK : CORE_DB_ERROR;
}

long au_query_page(const char *context, const struct au_filter *f, long limit, au_row_fn row,
                   void *arg, int64_t *last)
{
    struct page_arg a = {.f = f, .limit = limit};
    struct core_db_err err;
    if (core_db_tx(context, CORE_TX_READ, page_tx, &a, &err) != CORE_DB_OK) {
        PQclear(a.res);
        core_warn("audit entries not read: %s", err.message);
        return -1;
    }
    /* handed on after the commit: a retried transaction must not repeat rows */
    long rows = PQntuples(a.res);
    for (long i = 0; i < rows; i++) {
        long long seq = strtoll(PQgetvalue(a.res, (int)i, 0), NULL, 10);
        if (last)
            *last = seq;
        row(arg, (int64_t)seq, PQgetvalue(a.res, (int)i, 1), (size_t)PQgetlength(a.res, (int)i, 1),
            PQgetvalue(a.res, (int)i, 2));
    }
    PQclear(a.res);
    return rows;
}

/* ---- rendering ---- */

void au_render_jsonl(struct strbuf *out, const char *canonical, size_t len, const char *leaf_b64)
{
    if (len < 2 || canonical[len - 1] != '}') {
        /* not an object (a damaged row): shown as it is, for verify-file
         * to report */
        strbuf_add(out, canonical, len);
        strbuf_add(out, "\n", 1);
        return;
    }
    /* the canonical object with leaf_hash added as its last member */
    strbuf_add(out, canonical, len - 1);
    strbuf_addf(out, ",\"leaf_hash\":\"%s\"}\n", leaf_b64);
}

json_t *au_render_json(const char *canonical, size_t len, const char *leaf_b64)
{
    json_t *o = json_loadb(canonical, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        core_log_bug("a stored audit entry is not a JSON object");
        return NULL;
    }
    json_object_set_new(o, "leaf_hash", json_string(leaf_b64));
    return o;
}

const char *const au_csv_columns[AU_CSV_NCOLS] = {
    "seq",      "time",      "kind",    "decision", "reason", "consumer_tenant", "consumer_client",
    "provider", "agreement", "purpose", "resident", "tenant", "actor",           "leaf_hash",
    "entry"};

void au_csv_field(struct strbuf *out, const char *s, size_t len)
{
    bool quote = false, guard = false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r')
            quote = true;
    /* a spreadsheet must not run a cell as a formula (CWE-1236) */
    if (len && strchr("=+-@\t\r", s[0]))
        guard = quote = true;
    if (!quote) {
        strbuf_add(out, s, len);
        return;
    }
    strbuf_add(out, "\"", 1);
    if (guard)
        strbuf_add(out, "'", 1);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"')
            strbuf_add(out, "\"", 1);
        strbuf_add(out, s + i, 1);
    }
    strbuf_add(out, "\"", 1);
}

void au_csv_header(struct strbuf *out)
{
    for (int i = 0; i < AU_CSV_NCOLS; i++)
        strbuf_addf(out, "%s%s", i ? "," : "", au_csv_columns[i]);
    strbuf_add(out, "\r\n", 2);
}

/* The text of column i of entry o (parsed canonical form): "" for null. */
char *au_csv_value(json_t *o, int i)
{
    const char *name = au_csv_columns[i];
    json_t *v;
    if (strncmp(name, "consumer_", 9) == 0)
        v = json_object_get(json_object_get(o, "consumer"), name + 9);
    else
        v = json_object_get(o, name);
    if (json_is_string(v))
        return xstrdup(json_string_value(v));
    if (json_is_integer(v))
        return xasprintf("%lld", (long long)json_integer_value(v));
    return xstrdup("");
}

void au_render_csv(struct strbuf *out, const char *canonical, size_t len, const char *leaf_b64)
{
    json_t *o = json_loadb(canonical, len, 0, NULL);
    for (int i = 0; i < AU_CSV_NCOLS; i++) {
        if (i)
            strbuf_add(out, ",", 1);
        if (i == AU_CSV_NCOLS - 1) {
            au_csv_field(out, canonical, len);
        } else if (strcmp(au_csv_columns[i], "leaf_hash") == 0) {
            au_csv_field(out, leaf_b64, strlen(leaf_b64));
        } else {
            char *s = au_csv_value(o, i);
            au_csv_field(out, s, strlen(s));
            free(s);
        }
    }
    strbuf_add(out, "\r\n", 2);
    json_decref(o);
}

/* ---- filter parameters ---- */

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

bool au_time_param_ok(const char *t)
{
    /* YYYY-MM-DD, or YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), and a
     * date that exists: the database must never be the one to refuse it */
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t n = strlen(t);
    if (n < 10 || !digits(t, 4) || t[4] != '-' || !digits(t + 5, 2) || t[7] != '-' ||
        !digits(t + 8, 2))
        return false;
    int y = num(t, 4), mo = num(t + 5, 2), d = num(t + 8, 2);
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
        return false;
    if (n == 10)
        return true;
    if (n < 20 || (t[10] != 'T' && t[10] != 't') || !digits(t + 11, 2) || t[13] != ':' ||
        !digits(t + 14, 2) || t[16] != ':' || !digits(t + 17, 2))
        return false;
    if (num(t + 11, 2) > 23 || num(t + 14, 2) > 59 || num(t + 17, 2) > 59)
        return false;
    size_t i = 19;
    if (t[i] == '.') {
        size_t j = i + 1;
        while (j < n && t[j] >= '0' && t[j] <= '9')
            j++;
        if (j == i + 1 || j - i > 10)
            return false;
        i = j;
    }
    if ((t[i] == 'Z' || t[i] == 'z') && i + 1 == n)
        return true;
    return (t[i] == '+' || t[i] == '-') && n - i == 6 && digits(t + i + 1, 2) && t[i + 3] == ':' &&
           digits(t + i + 4, 2) && num(t + i + 1, 2) <= 15 && num(t + i + 4, 2) <= 59;
}

/* ---- the filters of a request ---- */

#define AU_STR_(x) #x
#define AU_STR(x)  AU_STR_(x)

const char *au_filter_parse(struct au_filter *f, au_param_fn get, void *arg, struct core_pool *pool,
                            const char **field)
{
    static const char *const names[] = {"from",     "to",       "tenant",    "consumer",
                                        "provider", "client",   "agreement", "purpose",
                                        "decision", "resident", "kind"};
    const char **slots[] = {&f->from,     &f->to,       &f->tenant,    &f->consumer,
                            &f->provider, &f->client,   &f->agreement, &f->purpose,
                            &f->decision, &f->resident, &f->kind};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        const char *s = get(arg, names[i]);
        *slots[i] = s;
        if (s && (!*s || strlen(s) > AU_FILTER_MAX)) {
            *field = names[i];
            return "must be 1 to " AU_STR(AU_FILTER_MAX) " bytes";
        }
    }
    if (f->from && !au_time_param_ok(f->from)) {
        *field = "from";
        return "must be an RFC 3339 time (2026-04-01T00:00:00Z) or a date";
    }
    if (f->to && !au_time_param_ok(f->to)) {
        *field = "to";
        return "must be an RFC 3339 time (2026-04-01T00:00:00Z) or a date";
    }
    if (f->decision && strcmp(f->decision, "permit") != 0 && strcmp(f->decision, "deny") != 0) {
        *field = "decision";
        return "must be permit or deny";
    }
    for (int i = 0; i < 2; i++) {
        const char *town = i ? f->provider : f->consumer;
        if (town && !core_tenant_id_ok(town)) {
            *field = i ? "provider" : "consumer";
            return "must be a town's id (1 to 50 of a-z, 0-9, _)";
        }
    }
    size_t kl = f->kind ? strlen(f->kind) : 0;
    if (kl > 2 && strcmp(f->kind + kl - 2, ".*") == 0) {
        f->kind_prefix = core_pstrndup(pool, f->kind, kl - 1);
        f->kind = NULL;
    }
    return NULL;
}

/* ---- checkpoints ---- */

static struct core_stmt au_checkpoints_latest_stmt =
    CORE_STMT("au_checkpoints_latest", "SELECT tree_size, root_hash, time, kid, signature FROM "
                                       "audit_checkpoints ORDER BY tree_size DESC LIMIT 1");

struct latest_arg {
    struct au_checkpoint *cp;
    int found;
};

static enum core_db_rc latest_tx(struct core_db_conn *c, void *p)
{
    struct latest_arg *a = p;
    PGresult *r = core_db_execp(c, &au_checkpoints_latest_stmt, 0, NULL, NULL, NULL, 1);
    if (!r)
        return CORE_DB_ERROR;
    a->found = PQntuples(r) == 1 && au_checkpoint_row(r, 0, a->cp);
    PQclear(r);
    return CORE_DB_OK;
}

int au_checkpoints_latest(struct au_checkpoint *cp)
{
    struct latest_arg a = {.cp = cp};
    if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, latest_tx, &a, NULL) != CORE_DB_OK)
        return -1;
    return a.found;
}

/* ---- the figures behind the charts ---- */

/* The latest days first under the bound, then in order: a cut range loses
 * its oldest days. */
static struct core_stmt au_stats_pairs_stmt = CORE_STMT(
    "au_stats_pairs",
    "SELECT * FROM (SELECT to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, "
    "consumer_tenant, provider, count(*) FILTER (WHERE decision = 'permit'), "
    "count(*) FILTER (WHERE decision = 'deny') FROM audit_entries WHERE kind = 'transfer' "
    "AND " AU_FILTER_SQL "GROUP BY 1, 2, 3 ORDER BY 1 DESC, 2, 3 LIMIT $15) s ORDER BY 1, 2, 3");
/* A denial's reason is in the entry's bytes only. */
static struct core_stmt au_stats_reasons_stmt = CORE_STMT(
    "au_stats_reasons",
    "SELECT coalesce(canonical::jsonb ->> 'reason', ''), count(*) FROM audit_entries "
    "WHERE decision = 'deny' AND " AU_FILTER_SQL "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $15");

struct stats_arg {
    struct core_stmt *st;
    const struct au_filter *f;
    long max;
    PGresult *res;
};

static enum core_db_rc stats_tx(struct core_db_conn *c, void *p)
{
    struct stats_arg *a = p;
    char after[32], upto[32], limit[32];
    xsnprintf(limit, sizeof limit, "%ld", a->max + 1);
    const char *v[AU_FILTER_NPARAMS + 1];
    filter_values(a->f, after, upto, limit, v);
    PQclear(a->res);
    a->res = core_db_exec(c, a->st, AU_FILTER_NPARAMS + 1, v);
    return a->res ? CORE_DB_OK : CORE_DB_ERROR;
}

static json_t *text_or_null(PGresult *r, int i, int col)
{
    return PQgetisnull(r, i, col) ? json_null() : json_string(PQgetvalue(r, i, col));
}

json_t *au_query_stats(const char *context, const struct au_filter *f, long max_pairs,
                       long max_reasons)
{
    struct au_filter all = *f;
    all.after = -1;
    all.upto = -1;
    struct stats_arg pairs = {.st = &au_stats_pairs_stmt, .f = &all, .max = max_pairs};
    struct stats_arg reasons = {.st = &au_stats_reasons_stmt, .f = &all, .max = max_reasons};
    struct core_db_err err;
    json_t *out = NULL;
    if (core_db_tx(context, CORE_TX_READ, stats_tx, &pairs, &err) != CORE_DB_OK) {
        core_warn("audit figures not read: %s", err.message);
        goto cleanup;
    }
    bool damaged = false;
    if (core_db_tx(context, CORE_TX_READ, stats_tx, &reasons, &err) != CORE_DB_OK) {
        /* 22P02: an entry's stored bytes are not JSON (tampered with): the
         * rest of the page still shows, and the verification says which */
        if (strcmp(err.sqlstate, "22P02") != 0) {
            core_warn("audit figures not read: %s", err.message);
            goto cleanup;
        }
        damaged = true;
    }
    json_t *pa = json_array(), *ra = json_array();
    int np = PQntuples(pairs.res);
    for (int i = 0; i < np && i < max_pairs; i++)
        json_array_append_new(
            pa,
            json_pack("{s:s, s:o, s:o, s:I, s:I}", "day", PQgetvalue(pairs.res, i, 0), "consumer",
                      text_or_null(pairs.res, i, 1), "provider", text_or_null(pairs.res, i, 2),
                      "permit", (json_int_t)strtoll(PQgetvalue(pairs.res, i, 3), NULL, 10), "deny",
                      (json_int_t)strtoll(PQgetvalue(pairs.res, i, 4), NULL, 10)));
    int nr = damaged ? 0 : PQntuples(reasons.res);
    for (int i = 0; i < nr && i < max_reasons; i++)
        json_array_append_new(
            ra, json_pack("{s:s, s:I}", "reason", PQgetvalue(reasons.res, i, 0), "count",
                          (json_int_t)strtoll(PQgetvalue(reasons.res, i, 1), NULL, 10)));
    out = json_pack("{s:o, s:b, s:o, s:b, s:b}", "pairs", pa, "pairs_more", np > max_pairs,
                    "reasons", ra, "reasons_more", nr > max_reasons, "reasons_damaged", damaged);
cleanup:
    PQclear(pairs.res);
    PQclear(reasons.res);
    return out;
}
