/*
 * The auditor console: GET /audit. A table of the audit entries the staff
 * member may see, under filters that are a plain GET form; cursor paging;
 * export links to the auditor API's streams; the charts (cn_audit_chart.c);
 * the latest checkpoint, and the in-page verification (pages/audit.js).
 *
 * The entries are read with the auditor API's own query (audit/au_query.h)
 * in the staff member's context, so row-level security shows a town's
 * auditor exactly what the API would, and the form's filters are read by
 * the API's own parser: the table, its export links and the API agree.
 */
#include <stdlib.h>

#include "audit/au_query.h"
#include "console/cn_audit.h"
#include "console/cn_internal.h"
#include "console/cn_page.h"
#include "core/log.h"
#include "core/router.h"
#include "core/strbuf.h"
#include "core/url.h"

#define PAGE_DEFAULT      50
#define PAGE_MAX          500
#define CHART_DAYS        30 /* the charts' range when the form gives no start */
#define STATS_PAIRS_MAX   1000
#define STATS_REASONS_MAX 50
#define SUMMARY_MAX       160  /* bytes of a request's summary in the table */
#define URL_MAX           8192 /* the filters percent-encoded: under 3 kB */

/* The form's fields, as the person filled them in ("" is left out). */
struct audit_form {
    const char *from, *to, *town, *role, *client, *agreement, *purpose, *decision, *kind;
    const char *to_api; /* to as the API takes it: a date's whole day included */
    long limit, cursor; /* cursor -1: the first page */
};

/* The catalogue key of each field's label, for the 400 page. */
static const struct {
    const char *name, *label;
} fields[] = {
    {"from", "audit.f.from"},       {"to", "audit.f.to"},
    {"town", "audit.f.town"},       {"town_role", "audit.f.role"},
    {"client", "audit.f.client"},   {"agreement", "audit.f.agreement"},
    {"purpose", "audit.f.purpose"}, {"decision", "audit.f.decision"},
    {"kind", "audit.f.kind"},       {"limit", "audit.f.limit"},
    {"cursor", "audit.f.cursor"},
};

static const char *label_of(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
        if (strcmp(fields[i].name, name) == 0)
            return fields[i].label;
    return "audit.f.unknown";
}

/* The 400 page, naming the field and what it must be. */
static void bad_field(struct core_req *req, const struct cn_ctx *ctx, const char *field,
                      const char *rule_key)
{
    const char *label = cn_text(ctx->lang, label_of(field));
    const char *rule = cn_text(ctx->lang, rule_key);
    json_t *v = json_pack("{s:s, s:s, s:s}", "field", label ? label : field, "name", field, "rule",
                          rule ? rule : "");
    char *detail = cn_format(ctx->lang, "audit.error.field", v);
    json_decref(v);
    cn_error(req, ctx, 400, "audit.error.filter", detail);
    free(detail);
}

/* A field's value; NULL when absent or empty (a GET form sends them all). */
static const char *opt(struct core_req *req, const char *name)
{
    const char *s = core_req_query(req, name);
    return s && *s ? s : NULL;
}

/* The day after a YYYY-MM-DD date (out[11]); the API's "to" is exclusive,
 * the form's is the last day shown. */
static bool day_add(const char *ymd, int days, char out[11])
{
    int y = 0, m = 0, d = 0;
    core_parse_digits(ymd, 4, &y);
    core_parse_digits(ymd + 5, 2, &m);
    core_parse_digits(ymd + 8, 2, &d);
    time_t t = (time_t)(core_days_from_civil(y, m, d) + days) * 86400;
    struct tm tm;
    /* 9999-12-31 + 1 has five digits of year: no room, and no NUL */
    out[0] = '\0';
    return gmtime_r(&t, &tm) && strftime(out, 11, "%Y-%m-%d", &tm) == 10;
}

static bool form_read(struct core_req *req, const struct cn_ctx *ctx, struct audit_form *fm)
{
    memset(fm, 0, sizeof *fm);
    const char *rep = core_req_query_repeated(req);
    if (rep) {
        bad_field(req, ctx, rep, "audit.rule.once");
        return false;
    }
    const char **slots[] = {&fm->from,      &fm->to,      &fm->town,     &fm->role, &fm->client,
                            &fm->agreement, &fm->purpose, &fm->decision, &fm->kind};
    for (size_t i = 0; i < ARRAY_SIZE(slots); i++) {
        const char *s = opt(req, fields[i].name);
        /* every value goes back into the page: UTF-8 only */
        json_t *probe = s ? json_string(s) : NULL;
        if (s && (strlen(s) > AU_FILTER_MAX || !probe)) {
            json_decref(probe);
            bad_field(req, ctx, fields[i].name, "audit.rule.length");
            return false;
        }
        json_decref(probe);
        *slots[i] = s;
    }
    if (!fm->role)
        fm->role = "either";
    if (strcmp(fm->role, "either") != 0 && strcmp(fm->role, "consumer") != 0 &&
        strcmp(fm->role, "provider") != 0) {
        bad_field(req, ctx, "town_role", "audit.rule.role");
        return false;
    }
    if (fm->town && !core_tenant_id_ok(fm->town)) {
        bad_field(req, ctx, "town", "audit.rule.town");
        return false;
    }
    const char *s = opt(req, "limit");
    fm->limit = PAGE_DEFAULT;
    if (s && !core_parse_long(s, 1, PAGE_MAX, &fm->limit)) {
        bad_field(req, ctx, "limit", "audit.rule.limit");
        return false;
    }
    s = opt(req, "cursor");
    fm->cursor = -1;
    if (s && !core_parse_long(s, 0, INT64_MAX / 2, &fm->cursor)) {
        bad_field(req, ctx, "cursor", "audit.rule.cursor");
        return false;
    }
    fm->to_api = fm->to;
    if (fm->to && strlen(fm->to) == 10 && au_time_param_ok(fm->to)) {
        char *next = core_palloc(req->pool, 11);
        if (!day_add(fm->to, 1, next)) {
            bad_field(req, ctx, "to", "audit.rule.time");
            return false;
        }
        fm->to_api = next;
    }
    return true;
}

/* The API's parameters from the form (au_filter_parse reads them). */
static const char *api_param(void *arg, const char *name)
{
    const struct audit_form *fm = arg;
    if (strcmp(name, "from") == 0)
        return fm->from;
    if (strcmp(name, "to") == 0)
        return fm->to_api;
    if (strcmp(name, "tenant") == 0 || strcmp(name, "consumer") == 0 ||
        strcmp(name, "provider") == 0)
        return strcmp(fm->role, strcmp(name, "tenant") == 0 ? "either" : name) == 0 ? fm->town
                                                                                    : NULL;
    if (strcmp(name, "client") == 0)
        return fm->client;
    if (strcmp(name, "agreement") == 0)
        return fm->agreement;
    if (strcmp(name, "purpose") == 0)
        return fm->purpose;
    if (strcmp(name, "decision") == 0)
        return fm->decision;
    if (strcmp(name, "kind") == 0)
        return fm->kind;
    return NULL; /* resident: not a console filter */
}

/* au_filter_parse's field names back to the form's, and the rule broken. */
static void bad_filter(struct core_req *req, const struct cn_ctx *ctx, const char *field)
{
    if (strcmp(field, "tenant") == 0 || strcmp(field, "consumer") == 0 ||
        strcmp(field, "provider") == 0)
        bad_field(req, ctx, "town", "audit.rule.town");
    else if (strcmp(field, "from") == 0 || strcmp(field, "to") == 0)
        bad_field(req, ctx, field, "audit.rule.time");
    else if (strcmp(field, "decision") == 0)
        bad_field(req, ctx, field, "audit.rule.decision");
    else
        bad_field(req, ctx, field, "audit.rule.length");
}

static void add_param(struct strbuf *b, const char *name, const char *value)
{
    if (!value)
        return;
    strbuf_addf(b, "%s%s=", b->len && b->buf[b->len - 1] != '?' ? "&" : "", name);
    core_url_encode(b, value);
}

/* The console's own query for this form (the filters, a page size other
 * than the default), for the paging links. */
static void form_query(struct strbuf *b, const struct audit_form *fm)
{
    add_param(b, "from", fm->from);
    add_param(b, "to", fm->to);
    if (fm->town) {
        add_param(b, "town_role", fm->role);
        add_param(b, "town", fm->town);
    }
    add_param(b, "client", fm->client);
    add_param(b, "agreement", fm->agreement);
    add_param(b, "purpose", fm->purpose);
    add_param(b, "decision", fm->decision);
    add_param(b, "kind", fm->kind);
    if (fm->limit != PAGE_DEFAULT)
        strbuf_addf(b, "%slimit=%ld", b->buf[b->len - 1] == '?' ? "" : "&", fm->limit);
}

/* The API's query for the same filters (export links, the page's script). */
static void api_query(struct strbuf *b, const struct audit_form *fm)
{
    static const char *const names[] = {"from",   "to",        "tenant",  "consumer", "provider",
                                        "client", "agreement", "purpose", "decision", "kind"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        add_param(b, names[i], api_param((void *)fm, names[i]));
}

static const char *url(struct core_req *req, const char *base, const struct audit_form *fm,
                       bool api, const char *more)
{
    struct strbuf b;
    strbuf_init(&b, URL_MAX);
    strbuf_adds(&b, base);
    if (api)
        api_query(&b, fm);
    else
        form_query(&b, fm);
    if (more)
        strbuf_addf(&b, "%s%s", b.buf[b.len - 1] == '?' ? "" : "&", more);
    if (b.buf[b.len - 1] == '?' || b.buf[b.len - 1] == '&')
        b.len--;
    const char *s = core_pstrndup(req->pool, b.buf, b.len);
    strbuf_release(&b);
    return s;
}

/* ---- the table ---- */

const char *cn_audit_reason_text(enum az_lang lang, const char *code)
{
    char key[96];
    if (!xsnprintf(key, sizeof key, "audit.reason.%s", code))
        return code;
    const char *t = cn_text(lang, key);
    return t ? t : code;
}

static const char *member(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* What was asked, in a line: "GET /v2/entities · WaterLevelObserved ·
 * attrs: a, b", cut at SUMMARY_MAX bytes on a character boundary. */
static json_t *request_summary(json_t *r)
{
    if (!json_is_object(r))
        return json_string("");
    struct strbuf b;
    strbuf_init(&b, 4 * SUMMARY_MAX);
    strbuf_addf(&b, "%s %s", member(r, "method"), member(r, "path"));
    const char *list[] = {"types", "attrs"};
    for (size_t k = 0; k < ARRAY_SIZE(list); k++) {
        json_t *a = json_object_get(r, list[k]);
        if (!json_is_array(a) || !json_array_size(a))
            continue;
        strbuf_adds(&b, k ? " · attrs: " : " · ");
        size_t i;
        json_t *v;
        json_array_foreach(a, i, v)
        {
            if (json_is_string(v))
                strbuf_addf(&b, "%s%s", i ? ", " : "", json_string_value(v));
        }
    }
    size_t n = b.len;
    if (n > SUMMARY_MAX) {
        n = SUMMARY_MAX;
        while (n && (b.buf[n] & 0xC0) == 0x80)
            n--;
    }
    json_t *out = json_stringn(b.buf, n);
    if (out && n < b.len) {
        json_t *cut = json_sprintf("%s…", json_string_value(out));
        json_decref(out);
        out = cut;
    }
    strbuf_release(&b);
    return out ? out : json_string("");
}

struct rows {
    enum az_lang lang;
    json_t *items;
    int64_t last;
};

static void table_row(void *arg, int64_t seq, const char *canonical, size_t len,
                      const char *leaf_b64)
{
    struct rows *r = arg;
    (void)leaf_b64; /* the page's script recomputes it: the table needs none */
    r->last = seq;
    json_t *e = json_loadb(canonical, len, 0, NULL);
    /* every member a row's sections test is set, so that none is looked up
     * in the page's scope (the template language's rule) */
    json_t *row = json_pack("{s:I, s:b}", "seq", (json_int_t)seq, "damaged", !json_is_object(e));
    if (json_is_object(e)) {
        const char *time = member(e, "time");
        /* 2026-11-26T07:57:01.123456Z: the day and the second, on two lines */
        json_object_set_new(row, "day", json_stringn(time, strlen(time) >= 10 ? 10 : 0));
        json_object_set_new(
            row, "clock",
            json_stringn(strlen(time) >= 19 ? time + 11 : "", strlen(time) >= 19 ? 8 : 0));
        const char *decision = member(e, "decision");
        const char *reason = member(e, "reason");
        json_t *consumer = json_object_get(e, "consumer");
        json_object_set_new(row, "time_iso", json_string(time));
        json_object_set_new(row, "kind", json_string(member(e, "kind")));
        json_object_set_new(row, "decision", json_string(decision));
        json_object_set_new(row, "permit", json_boolean(strcmp(decision, "permit") == 0));
        json_object_set_new(row, "deny", json_boolean(strcmp(decision, "deny") == 0));
        json_object_set_new(row, "reason", json_string(reason));
        json_object_set_new(row, "reason_text",
                            json_string(*reason ? cn_audit_reason_text(r->lang, reason) : ""));
        json_object_set_new(row, "consumer_tenant", json_string(member(consumer, "tenant")));
        json_object_set_new(row, "consumer_client", json_string(member(consumer, "client")));
        json_object_set_new(row, "provider", json_string(member(e, "provider")));
        json_object_set_new(row, "agreement", json_string(member(e, "agreement")));
        json_object_set_new(row, "purpose", json_string(member(e, "purpose")));
        json_object_set_new(row, "summary", request_summary(json_object_get(e, "request")));
    } else {
        static const char *const empty[] = {"time",
                                            "time_iso",
                                            "kind",
                                            "decision",
                                            "reason",
                                            "reason_text",
                                            "consumer_tenant",
                                            "consumer_client",
                                            "provider",
                                            "agreement",
                                            "purpose",
                                            "summary"};
        for (size_t i = 0; i < ARRAY_SIZE(empty); i++)
            json_object_set_new(row, empty[i], json_string(""));
        json_object_set_new(row, "permit", json_false());
        json_object_set_new(row, "deny", json_false());
    }
    json_decref(e);
    json_array_append_new(r->items, row);
}

/* ---- the page ---- */

static json_t *form_vars(const struct audit_form *fm)
{
    json_t *v = json_object();
    const char *names[] = {"from", "to", "town", "client", "agreement", "purpose", "kind"};
    const char *values[] = {fm->from,      fm->to,      fm->town, fm->client,
                            fm->agreement, fm->purpose, fm->kind};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        json_object_set_new(v, names[i], json_string(values[i] ? values[i] : ""));
    json_object_set_new(v, "limit", json_integer(fm->limit));
    json_object_set_new(v, "role_either", json_boolean(strcmp(fm->role, "either") == 0));
    json_object_set_new(v, "role_consumer", json_boolean(strcmp(fm->role, "consumer") == 0));
    json_object_set_new(v, "role_provider", json_boolean(strcmp(fm->role, "provider") == 0));
    json_object_set_new(v, "decision_permit",
                        json_boolean(fm->decision && strcmp(fm->decision, "permit") == 0));
    json_object_set_new(v, "decision_deny",
                        json_boolean(fm->decision && strcmp(fm->decision, "deny") == 0));
    return v;
}

static json_t *checkpoint_vars(const struct au_checkpoint *cp)
{
    char root[45];
    au_hash_b64(cp->root, root);
    return json_pack("{s:I, s:I, s:s, s:s, s:s}", "tree_size", (json_int_t)cp->tree_size, "last",
                     (json_int_t)cp->tree_size - 1, "root_hash", root, "time", cp->time, "kid",
                     cp->kid);
}

static void cn_handler_audit(struct core_req *req)
{
    struct cn_ctx ctx;
    if (!cn_begin(req, AZ_ROLE_AUDITOR | AZ_ROLE_PLATFORM_ADMIN, &ctx))
        return;
    struct audit_form fm;
    if (!form_read(req, &ctx, &fm))
        return;
    struct au_filter f = {.after = fm.cursor, .upto = -1};
    const char *field = NULL;
    if (au_filter_parse(&f, api_param, &fm, req->pool, &field)) {
        bad_filter(req, &ctx, field);
        return;
    }

    struct rows rows = {.lang = ctx.lang, .items = json_array(), .last = -1};
    long n = au_query_page(ctx.context, &f, fm.limit + 1, table_row, &rows, NULL);

    /* the charts: the form's range, or the last CHART_DAYS days */
    char now[32], today[11], start[11];
    core_time_rfc3339(now);
    xsnprintf(today, sizeof today, "%.10s", now);
    bool have_start = day_add(today, -CHART_DAYS, start); /* today is a real date */
    struct au_filter cf = f;
    if (!cf.from && have_start)
        cf.from = start;
    json_t *stats =
        n < 0 ? NULL : au_query_stats(ctx.context, &cf, STATS_PAIRS_MAX, STATS_REASONS_MAX);

    struct au_checkpoint cp;
    int have_cp = n < 0 || !stats ? -1 : au_checkpoints_latest(&cp);
    if (have_cp < 0) {
        json_decref(rows.items);
        json_decref(stats);
        core_reply_header(req, "Retry-After", "5");
        cn_error(req, &ctx, 503, "console.error.unavailable", NULL);
        return;
    }

    json_t *v = cn_vars(req, &ctx, "audit");
    json_object_set_new(v, "filter", form_vars(&fm));
    bool more = n > fm.limit;
    if (more)
        json_array_remove(rows.items, (size_t)fm.limit);
    size_t shown = json_array_size(rows.items);
    json_object_set_new(v, "rows", rows.items);
    json_object_set_new(v, "count", json_integer((json_int_t)shown));
    if (shown) {
        json_object_set(v, "first_seq", json_object_get(json_array_get(rows.items, 0), "seq"));
        json_object_set(v, "last_seq",
                        json_object_get(json_array_get(rows.items, shown - 1), "seq"));
    }
    if (more) {
        char c[48];
        xsnprintf(c, sizeof c, "cursor=%lld",
                  (long long)json_integer_value(
                      json_object_get(json_array_get(rows.items, shown - 1), "seq")));
        json_object_set_new(v, "next_url", json_string(url(req, "/audit?", &fm, false, c)));
    }
    if (fm.cursor >= 0)
        json_object_set_new(v, "first_url", json_string(url(req, "/audit?", &fm, false, NULL)));
    json_object_set_new(v, "export_csv",
                        json_string(url(req, "/audit/v1/entries?format=csv&", &fm, true, NULL)));
    json_object_set_new(v, "export_jsonl",
                        json_string(url(req, "/audit/v1/entries?format=jsonl&", &fm, true, NULL)));
    char page[64];
    if (fm.cursor >= 0)
        xsnprintf(page, sizeof page, "limit=%ld&cursor=%ld", fm.limit, fm.cursor);
    else
        xsnprintf(page, sizeof page, "limit=%ld", fm.limit);
    json_object_set_new(v, "api_page",
                        json_string(url(req, "/audit/v1/entries?format=jsonl&", &fm, true, page)));
    /* the platform reads every entry: the page's check may then demand
     * seq 0, 1, 2 ... without a gap (a town's auditor sees only some) */
    json_object_set_new(v, "whole_log", json_string(ctx.platform ? "true" : "false"));

    char last_day[11];
    if (fm.to)
        xsnprintf(last_day, sizeof last_day, "%.10s", fm.to);
    else
        xsnprintf(last_day, sizeof last_day, "%s", today);
    char first_day[11];
    xsnprintf(first_day, sizeof first_day, "%.10s", cf.from);
    cn_audit_charts(v, ctx.lang, stats, first_day, last_day);
    json_decref(stats);
    if (have_cp)
        json_object_set_new(v, "checkpoint", checkpoint_vars(&cp));
    /* the script's messages keep their {placeholders}: it fills them */
    json_object_set_new(v, "ph",
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "seq",
                                  "{seq}", "size", "{size}", "first", "{first}", "count", "{count}",
                                  "kid", "{kid}", "time", "{time}", "why", "{why}", "done",
                                  "{done}", "total", "{total}", "thumbprint", "{thumbprint}"));
    cn_reply(req, 200, "audit", ctx.lang, v);
}

static const struct core_route routes[] = {
    {CORE_GET, "/audit", cn_handler_audit,
     "The auditor console (HTML): entries under filters, charts, the latest checkpoint", "console",
     0},
};

void cn_audit_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
