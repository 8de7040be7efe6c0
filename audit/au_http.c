/*
 * The auditor API: /audit/v1/entries (filtered, paged, or streamed as JSON
 * lines or CSV), /audit/v1/checkpoints, the proofs under /audit/v1/proofs, and residents
 * own access history at /account/v1/access-log. Scope audit.read: a town's
 * auditor sees what concerns its town (row-level security decides, and
 * includes a prefecture's towns); with admin as well, everything. Checkpoints
 * and proofs are hashes only, the same for every auditor.
 */
#include <stdlib.h>

#include "audit/au_query.h"
#include "core/auth.h"
#include "core/http.h"
#include "core/log.h"

#define LIST_DEFAULT 100
#define LIST_MAX     1000
#define STREAM_PAGE  1000

/* The auditor's context, or false once the 401/403 is queued. */
static bool auditor(struct core_req *req, const char **context)
{
    const struct core_principal *p = core_auth_service(req);
    if (!p)
        return false;
    if (!core_principal_has_scope(p, "audit.read")) {
        core_auth_insufficient_scope(req, "audit.read", NULL);
        return false;
    }
    if (core_principal_has_scope(p, "admin"))
        *context = CORE_DB_PLATFORM;
    else if (p->tenant && core_tenant_id_ok(p->tenant))
        *context = p->tenant;
    else {
        core_reply_error(req, CORE_ERR_FORBIDDEN, "the token names no tenant");
        return false;
    }
    return true;
}

/* A non-negative integer query parameter; def when absent. */
static bool int_param(struct core_req *req, const char *name, long min, long max, long def,
                      long *out)
{
    const char *s = core_req_query(req, name);
    *out = def;
    if (!s)
        return true;
    if (!core_parse_long(s, min, max, out)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s must be an integer from %ld to %ld", name,
                         min, max);
        return false;
    }
    return true;
}

/* A query parameter, for au_filter_parse. */
static const char *query_param(void *req, const char *name)
{
    return core_req_query(req, name);
}

/* An export's file name: a browser saves it rather than shows it. */
static void attachment(struct core_req *req, const char *ext)
{
    char now[32], stamp[32];
    core_time_rfc3339(now);
    /* 2026-11-26T07:57:01.123Z -> 20261126T075701Z */
    size_t n = 0;
    for (const char *p = now; *p && *p != '.' && n < sizeof stamp - 2; p++)
        if (*p != '-' && *p != ':')
            stamp[n++] = *p;
    stamp[n++] = 'Z';
    stamp[n] = '\0';
    core_reply_header(
        req, "Content-Disposition",
        core_psprintf(req->pool, "attachment; filename=\"renkei-audit-%s.%s\"", stamp, ext));
}

enum fmt { F_JSON, F_JSONL, F_CSV };

struct export
{
    struct au_filter f;
    const char *context;
    char *owned;       /* context's copy, unless it is the platform */
    char *strings[12]; /* the filter's strings, owned */
    enum fmt fmt;
    long remaining; /* -1: no limit */
    struct strbuf out;
    size_t off;
    bool end, failed;
};

static void export_row(void *arg, int64_t seq, const char *canonical, size_t len,
                       const char *leaf_b64)
{
    struct export *x = arg;
    (void)seq;
    if (x->fmt == F_CSV)
        au_render_csv(&x->out, canonical, len, leaf_b64);
    else
        au_render_jsonl(&x->out, canonical, len, leaf_b64);
}

static long export_read(void *arg, char *buf, size_t max)
{
    struct export *x = arg;
    while (x->off == x->out.len) {
        if (x->end)
            return CORE_STREAM_END;
        x->out.len = 0;
        x->off = 0;
        long want = STREAM_PAGE;
        if (x->remaining >= 0 && x->remaining < want)
            want = x->remaining;
        int64_t last = x->f.after;
        long n = want ? au_query_page(x->context, &x->f, want, export_row, x, &last) : 0;
        if (n < 0) {
            core_error("audit export cut short: the database failed");
            return CORE_STREAM_ERROR;
        }
        x->f.after = last;
        if (x->remaining >= 0)
            x->remaining -= n;
        if (n < want || x->remaining == 0)
            x->end = true;
    }
    size_t n = x->out.len - x->off;
    if (n > max)
        n = max;
    memcpy(buf, x->out.buf + x->off, n);
    x->off += n;
    return (long)n;
}

static void export_done(void *arg)
{
    struct export *x = arg;
    strbuf_release(&x->out);
    for (size_t i = 0; i < ARRAY_SIZE(x->strings); i++)
        free(x->strings[i]);
    free(x->owned);
    free(x);
}

/* Copies the filter's strings so that a stream may outlive the request. */
static void export_own(struct export *x)
{
    const char **fields[] = {&x->f.from,      &x->f.to,          &x->f.tenant,   &x->f.client,
                             &x->f.agreement, &x->f.purpose,     &x->f.decision, &x->f.resident,
                             &x->f.kind,      &x->f.kind_prefix, &x->f.consumer, &x->f.provider};
    _Static_assert(ARRAY_SIZE(fields) <= ARRAY_SIZE(x->strings), "a string per filter");
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
        x->strings[i] = *fields[i] ? xstrdup(*fields[i]) : NULL;
        *fields[i] = x->strings[i];
    }
}

struct json_page {
    json_t *items;
    bool bad;
};

static void json_row(void *arg, int64_t seq, const char *canonical, size_t len,
                     const char *leaf_b64)
{
    struct json_page *p = arg;
    (void)seq;
    json_t *o = au_render_json(canonical, len, leaf_b64);
    if (o)
        json_array_append_new(p->items, o);
    else
        p->bad = true;
}

static void au_handler_entries(struct core_req *req)
{
    const char *context;
    if (!auditor(req, &context))
        return;
    struct au_filter f = {.after = -1, .upto = -1};
    const char *fmt_s = core_req_query(req, "format"), *cursor = core_req_query(req, "cursor");
    enum fmt fmt = F_JSON;
    if (fmt_s && strcmp(fmt_s, "jsonl") == 0)
        fmt = F_JSONL;
    else if (fmt_s && strcmp(fmt_s, "csv") == 0)
        fmt = F_CSV;
    else if (fmt_s && strcmp(fmt_s, "json") != 0) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "format must be json, jsonl or csv");
        return;
    }
    long after = -1, limit;
    if (cursor && !core_parse_long(cursor, 0, LONG_MAX, &after)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "cursor is not one this API gave out");
        return;
    }
    f.after = after;
    if (!int_param(req, "limit", 1, fmt == F_JSON ? LIST_MAX : LONG_MAX,
                   fmt == F_JSON ? LIST_DEFAULT : -1, &limit))
        return;
    const char *field = NULL;
    const char *why = au_filter_parse(&f, query_param, req, req->pool, &field);
    if (why) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s %s", field, why);
        return;
    }

    if (fmt != F_JSON) {
        struct export *x = xcalloc(1, sizeof *x);
        x->f = f;
        export_own(x);
        /* the platform context is recognised by its address: keep it */
        x->owned = context == CORE_DB_PLATFORM ? NULL : xstrdup(context);
        x->context = x->owned ? x->owned : CORE_DB_PLATFORM;
        x->fmt = fmt;
        x->remaining = limit;
        strbuf_init(&x->out, SIZE_MAX);
        if (fmt == F_CSV)
            au_csv_header(&x->out);
        /* the first page is read now, so that a database failure is a 503
         * and not a cut stream */
        x->off = 0;
        long want = x->remaining >= 0 && x->remaining < STREAM_PAGE ? x->remaining : STREAM_PAGE;
        int64_t last = f.after;
        long n = au_query_page(x->context, &x->f, want, export_row, x, &last);
        if (n < 0) {
            export_done(x);
            core_reply_error(req, CORE_ERR_DB_UNAVAILABLE, NULL);
            return;
        }
        x->f.after = last;
        if (x->remaining >= 0)
            x->remaining -= n;
        x->end = n < want || x->remaining == 0;
        attachment(req, fmt == F_CSV ? "csv" : "jsonl");
        core_reply_stream(req, 200, fmt == F_CSV ? "text/csv; charset=utf-8" : "application/jsonl",
                          export_read, x, export_done);
        return;
    }
    struct json_page p = {.items = json_array()};
    int64_t last = -1;
    long n = au_query_page(context, &f, limit + 1, json_row, &p, &last);
    if (n < 0 || p.bad) {
        json_decref(p.items);
        core_reply_error(req, n < 0 ? CORE_ERR_DB_UNAVAILABLE : CORE_ERR_INTERNAL, NULL);
        return;
    }
    json_t *next = json_null();
    if (n > limit) {
        json_array_remove(p.items, (size_t)limit);
        json_t *lastitem = json_array_get(p.items, (size_t)limit - 1);
        json_decref(next);
        next =
            json_sprintf("%lld", (long long)json_integer_value(json_object_get(lastitem, "seq")));
    }
    core_reply_json(req, 200, json_pack("{s:o, s:o}", "items", p.items, "next", next));
}

/* ---- checkpoints ---- */

static struct core_stmt au_checkpoints_list_stmt = CORE_STMT(
    "au_checkpoints_list", "SELECT tree_size, root_hash, time, kid, signature FROM "
                           "audit_checkpoints WHERE tree_size > $1 ORDER BY tree_size LIMIT $2");

struct cps_arg {
    const char *after, *limit;
    PGresult *res;
};

static enum core_db_rc cps_tx(struct core_db_conn *c, void *p)
{
    struct cps_arg *a = p;
    PQclear(a->res);
    const char *v[] = {a->after, a->limit};
    a->res = core_db_execp(c, &au_checkpoints_list_stmt, 2, v, NULL, NULL, 1);
    return a->res ? CORE_DB_OK : CORE_DB_ERROR;
}

static void au_handler_checkpoints(struct core_req *req)
{
    const char *context;
    if (!auditor(req, &context))
        return;
    long after, limit;
    if (!int_param(req, "after", 0, LONG_MAX, 0, &after) ||
        !int_param(req, "limit", 1, LIST_MAX, LIST_DEFAULT, &limit))
        return;
    char as[32], ls[32];
    xsnprintf(as, sizeof as, "%ld", core_req_query(req, "after") ? after : -1L);
    xsnprintf(ls, sizeof ls, "%ld", limit + 1);
    struct cps_arg a = {.after = as, .limit = ls};
    if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, cps_tx, &a, NULL) != CORE_DB_OK) {
        PQclear(a.res);
        core_reply_error(req, CORE_ERR_DB_UNAVAILABLE, NULL);
        return;
    }
    json_t *items = json_array(), *next = json_null();
    int rows = PQntuples(a.res);
    for (int i = 0; i < rows && i < limit; i++) {
        struct au_checkpoint cp;
        if (au_checkpoint_row(a.res, i, &cp))
            json_array_append_new(items, au_checkpoint_json(&cp));
    }
    if (rows > limit) {
        struct au_checkpoint cp;
        au_checkpoint_row(a.res, (int)limit - 1, &cp);
        json_decref(next);
        next = json_sprintf("%llu", (unsigned long long)cp.tree_size);
    }
    PQclear(a.res);
    core_reply_json(req, 200, json_pack("{s:o, s:o}", "items", items, "next", next));
}

static void au_handler_checkpoint_latest(struct core_req *req)
{
    const char *context;
    if (!auditor(req, &context))
        return;
    struct au_checkpoint cp;
    int have = au_checkpoints_latest(&cp);
    if (have < 0) {
        core_reply_error(req, CORE_ERR_DB_UNAVAILABLE, NULL);
        return;
    }
    if (!have) {
        core_reply_error(req, CORE_ERR_NOT_FOUND, "the log has no checkpoint yet");
        return;
    }
    core_reply_json(req, 200, au_checkpoint_json(&cp));
}

static void au_handler_checkpoint_make(struct core_req *req)
{
    const char *context;
    if (!auditor(req, &context))
        return;
    struct au_checkpoint cp;
    bool made = false;
    if (!au_checkpoint_now(&cp, &made)) {
        core_reply_error(req, CORE_ERR_UNAVAILABLE,
                         "no checkpoint: the log is empty, or its database or key is unavailable");
        return;
    }
    core_reply_json(req, made ? 201 : 200, au_checkpoint_json(&cp));
}

/* ---- proofs ---- */

struct proof_arg {
    int kind; /* 0 inclusion, 1 consistency */
    uint64_t a, b;
    au_hash path[AU_PROOF_MAX];
    int len;
    bool ok, too_big;
};

static int inclusion(void *arg, au_subtree_fn get, void *get_arg, au_hash *out)
{
    struct proof_arg *p = arg;
    return au_inclusion_proof_fn(p->b, p->a, get, get_arg, out);
}

static int consistency(void *arg, au_subtree_fn get, void *get_arg, au_hash *out)
{
    struct proof_arg *p = arg;
    return au_consistency_proof_fn(p->b, p->a, get, get_arg, out);
}

static enum core_db_rc proof_tx(struct core_db_conn *c, void *v)
{
    struct proof_arg *p = v;
    struct au_frontier f;
    if (!au_head_read(c, false, &f, NULL))
        return CORE_DB_ERROR;
    p->too_big = p->b > f.size;
    if (p->too_big)
        return CORE_DB_OK;
    p->len = au_dbtree_proof(c, p->kind ? consistency : inclusion, p, p->path, &p->ok);
    return p->ok ? CORE_DB_OK : CORE_DB_ERROR;
}

static void reply_proof(struct core_req *req, struct proof_arg *p)
{
    if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, proof_tx, p, NULL) != CORE_DB_OK) {
        core_reply_error(req, CORE_ERR_DB_UNAVAILABLE, NULL);
        return;
    }
    if (p->too_big) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "the log has fewer than %llu entries",
                         (unsigned long long)p->b);
        return;
    }
    json_t *hashes = json_array();
    for (int i = 0; i < p->len; i++) {
        char b64[45];
        au_hash_b64(p->path[i], b64);
        json_array_append_new(hashes, json_string(b64));
    }
    if (p->kind == 0)
        core_reply_json(req, 200,
                        json_pack("{s:I, s:I, s:o}", "leaf_index", (json_int_t)p->a, "tree_size",
                                  (json_int_t)p->b, "hashes", hashes));
    else
        core_reply_json(req, 200,
                        json_pack("{s:I, s:I, s:o}", "first", (json_int_t)p->a, "second",
                                  (json_int_t)p->b, "hashes", hashes));
}

static bool required(struct core_req *req, const char *name, long min, long *out)
{
    if (!core_req_query(req, name)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "%s is required", name);
        return false;
    }
    return int_param(req, name, min, LONG_MAX, 0, out);
}

static void au_handler_proof_inclusion(struct core_req *req)
{
    const char *context;
    long seq, size;
    if (!auditor(req, &context) || !required(req, "seq", 0, &seq) ||
        !required(req, "tree_size", 1, &size))
        return;
    if (seq >= size) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "seq must be less than tree_size");
        return;
    }
    struct proof_arg p = {.kind = 0, .a = (uint64_t)seq, .b = (uint64_t)size};
    reply_proof(req, &p);
}

static void au_handler_proof_consistency(struct core_req *req)
{
    const char *context;
    long first, second;
    if (!auditor(req, &context) || !required(req, "first", 1, &first) ||
        !required(req, "second", 1, &second))
        return;
    if (first > second) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "first must not exceed second");
        return;
    }
    struct proof_arg p = {.kind = 1, .a = (uint64_t)first, .b = (uint64_t)second};
    reply_proof(req, &p);
}

/* ---- a resident's own access history ---- */

struct access_page {
    json_t *items;
};

static void access_row(void *arg, int64_t seq, const char *canonical, size_t len,
                       const char *leaf_b64)
{
    struct access_page *p = arg;
    (void)leaf_b64;
    json_t *o = json_loadb(canonical, len, 0, NULL);
    if (!o)
        return;
    json_t *item = json_pack(
        "{s:I, s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "seq", (json_int_t)seq, "time",
        json_object_get(o, "time"), "town",
        json_object_get(json_object_get(o, "consumer"), "tenant"), "service",
        json_object_get(json_object_get(o, "consumer"), "client"), "provider",
        json_object_get(o, "provider"), "purpose", json_object_get(o, "purpose"), "agreement",
        json_object_get(o, "agreement"), "decision", json_object_get(o, "decision"));
    if (item)
        json_array_append_new(p->items, item);
    json_decref(o);
}

json_t *au_access_log(const char *resident_ref, int64_t after, long limit, bool *more)
{
    struct au_filter f = {.after = after, .upto = -1, .resident = resident_ref, .kind = "transfer"};
    struct access_page p = {.items = json_array()};
    long n = au_query_page(CORE_DB_PLATFORM, &f, limit + 1, access_row, &p, NULL);
    if (n < 0) {
        json_decref(p.items);
        return NULL;
    }
    *more = n > limit;
    if (*more)
        json_array_remove(p.items, (size_t)limit);
    return p.items;
}

static void au_handler_access_log(struct core_req *req)
{
    const struct core_principal *p = core_auth(req);
    if (!p)
        return;
    if (!p->resident) {
        core_reply_error(req, CORE_ERR_FORBIDDEN,
                         "this is a resident's own history: a resident's "
                         "token is required");
        return;
    }
    if (!core_principal_has_scope(p, "account.read")) {
        core_auth_insufficient_scope(req, "account.read",
                                     "the token lacks scope account.read (the resident's consent "
                                     "to show their access history)");
        return;
    }
    long after = -1, limit;
    const char *cursor = core_req_query(req, "cursor");
    if (cursor && !core_parse_long(cursor, 0, LONG_MAX, &after)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "cursor is not one this API gave out");
        return;
    }
    if (!int_param(req, "limit", 1, LIST_MAX, LIST_DEFAULT, &limit))
        return;
    char ref[44];
    au_resident_ref(p->resident, ref);
    bool more = false;
    json_t *items = au_access_log(ref, after, limit, &more);
    if (!items) {
        core_reply_error(req, CORE_ERR_DB_UNAVAILABLE, NULL);
        return;
    }
    json_t *next = json_null();
    if (more) {
        json_decref(next);
        next = json_sprintf("%lld", (long long)json_integer_value(json_object_get(
                                        json_array_get(items, json_array_size(items) - 1), "seq")));
    }
    core_reply_json(req, 200, json_pack("{s:o, s:o}", "items", items, "next", next));
}

static const struct core_route routes[] = {
    {CORE_GET, "/audit/v1/entries", au_handler_entries,
     "Audit entries: filters, cursor paging, format=json|jsonl|csv streaming (audit.read)", "audit",
     0},
    {CORE_GET, "/audit/v1/checkpoints", au_handler_checkpoints,
     "Signed checkpoints after a tree size (audit.read)", "audit", 0},
    {CORE_POST, "/audit/v1/checkpoints", au_handler_checkpoint_make,
     "Make a checkpoint of the log now (audit.read)", "audit", 0},
    {CORE_GET, "/audit/v1/checkpoints/latest", au_handler_checkpoint_latest,
     "The latest signed checkpoint (audit.read)", "audit", 0},
    {CORE_GET, "/audit/v1/proofs/inclusion", au_handler_proof_inclusion,
     "RFC 9162 inclusion proof of seq in tree_size (audit.read)", "audit", 0},
    {CORE_GET, "/audit/v1/proofs/consistency", au_handler_proof_consistency,
     "RFC 9162 consistency proof between two tree sizes (audit.read)", "audit", 0},
    {CORE_GET, "/account/v1/access-log", au_handler_access_log,
     "Which town read the resident's data, when, why (resident token)", "audit", 0},
};

void au_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
