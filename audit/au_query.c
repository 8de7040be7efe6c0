#include <stdlib.h>

#include "audit/au_query.h"
#include "core/log.h"

/*
 * Reading the log: pages of entries in seq order under filters, rendered as
 * the API's JSON items, JSON lines or CSV. The same code serves the auditor
 * API and `renkei audit export`, so both produce the same bytes.
 */

static struct core_stmt au_entries_page_stmt = CORE_STMT(
    "au_entries_page",
    "SELECT seq, canonical, encode(leaf_hash, 'base64') FROM audit_entries "
    "WHERE seq > $1 AND ($2::bigint IS NULL OR seq <= $2) "
    "AND ($3::timestamptz IS NULL OR time >= $3) AND ($4::timestamptz IS NULL OR time < $4) "
    "AND ($5::text IS NULL OR tenant = $5 OR consumer_tenant = $5 OR provider = $5) "
    "AND ($6::text IS NULL OR consumer_client = $6) AND ($7::text IS NULL OR agreement = $7) "
    "AND ($8::text IS NULL OR purpose = $8) AND ($9::text IS NULL OR decision = $9) "
    "AND ($10::text IS NULL OR kind = $10) AND ($11::text IS NULL OR starts_with(kind, $11)) "
    "AND ($12::text IS NULL OR resident = $12) "
    "ORDER BY seq LIMIT $13");

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
    xsnprintf(after, sizeof after, "%lld", (long long)f->after);
    xsnprintf(upto, sizeof upto, "%lld", (long long)f->upto);
    xsnprintf(limit, sizeof limit, "%ld", a->limit);
    const char *v[] = {after,          f->upto >= 0 ? upto : NULL,
                       f->from,        f->to,
                       f->tenant,      f->client,
                       f->agreement,   f->purpose,
                       f->decision,    f->kind,
                       f->kind_prefix, f->resident,
                       limit};
    PQclear(a->res);
    a->res = core_db_exec(c, &au_entries_page_stmt, 13, v);
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
