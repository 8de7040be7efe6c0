/*
 * The auditor console's charts: transfers per day per pair of towns, and
 * denials per reason. Drawn on the server as inline SVG (no script; no style
 * attributes, which the CSP forbids: audit.css styles the classes), each
 * followed by a table of the same figures for people who cannot see it.
 * Every count here is one row-level security already let through.
 */
#include <stdlib.h>

#include "console/cn_audit.h"
#include "console/cn_page.h"
#include "core/strbuf.h"

/* The pairs chart: a bar per pair per day, the most active pairs only. */
#define PAIRS_W      720
#define PAIRS_H      300
#define PAIRS_LEFT   48
#define PAIRS_RIGHT  12
#define PAIRS_TOP    16
#define PAIRS_BOTTOM 40
#define SERIES_MAX   6  /* pairs drawn (classes s0..s5 in audit.css) */
#define DAYS_MAX     31 /* the latest days drawn */
#define XLABELS_MAX  16 /* day labels under the bars */
#define BAR_MAX      48 /* the widest bar */
/* The reasons chart: a horizontal bar per reason. */
#define REASONS_W     720
#define REASONS_LABEL 280 /* the labels' column */
#define REASONS_ROW   28
#define REASONS_SHOWN 20
#define LABEL_UNITS   36 /* a label's width before it is cut: 1 a Latin letter, 2 a kanji */

static json_t *coord(double v)
{
    char b[32];
    xsnprintf(b, sizeof b, "%.1f", v);
    return json_string(b);
}

/* The smallest of 1, 2, 5, 10, 20, 50 ... at least max: the axis' top. */
static long nice_max(long max)
{
    for (long m = 1;; m *= 10) {
        if (m >= max)
            return m;
        if (2 * m >= max)
            return 2 * m;
        if (5 * m >= max)
            return 5 * m;
    }
}

/* s cut to fit the labels' column, with an ellipsis; malloc'd. A Latin
 * letter counts one unit of width, a character of two or more bytes (kana,
 * kanji) two: near enough for 12px text in the fonts the page names. */
static char *cut_label(const char *s)
{
    size_t i = 0, units = 0;
    while (s[i]) {
        size_t next = i + 1, w = (s[i] & 0x80) ? 2 : 1;
        while ((s[next] & 0xC0) == 0x80)
            next++;
        if (units + w > LABEL_UNITS - 1)
            break;
        units += w;
        i = next;
    }
    return s[i] ? xasprintf("%.*s…", (int)i, s) : xstrdup(s);
}

/* ---- transfers per day per pair of towns ---- */

struct series {
    const char *consumer, *provider; /* NULL for null */
    char *label;                     /* "kanonji → takamatsu" */
    long permit, deny;
    int cls; /* its colour class, -1 when not drawn */
};

static bool same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* The busiest pairs first. */
static int by_transfers(const void *pa, const void *pb)
{
    const struct series *a = pa, *b = pb;
    long ta = a->permit + a->deny, tb = b->permit + b->deny;
    if (ta != tb)
        return ta > tb ? -1 : 1;
    return strcmp(a->label, b->label);
}

static struct series *series_of(struct series *s, size_t n, const char *consumer,
                                const char *provider)
{
    for (size_t i = 0; i < n; i++)
        if (same(s[i].consumer, consumer) && same(s[i].provider, provider))
            return &s[i];
    return NULL;
}

static const char *str_or_null(json_t *v)
{
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static long transfers(json_t *row)
{
    return (long)(json_integer_value(json_object_get(row, "permit")) +
                  json_integer_value(json_object_get(row, "deny")));
}

static json_t *pairs_chart(enum az_lang lang, json_t *stats, const char *from, const char *to)
{
    json_t *rows = json_object_get(stats, "pairs");
    size_t n = json_array_size(rows);
    json_t *out =
        json_pack("{s:s, s:s, s:i, s:i}", "from", from, "to", to, "w", PAIRS_W, "h", PAIRS_H);
    json_object_set_new(out, "more",
                        json_boolean(json_is_true(json_object_get(stats, "pairs_more"))));
    struct series *s = xcalloc(n ? n : 1, sizeof *s);
    const char **days = xcalloc(n ? n : 1, sizeof *days);
    size_t ns = 0, nd = 0;
    long permits = 0, denials = 0;
    json_t *table = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(rows, i);
        const char *day = json_string_value(json_object_get(r, "day"));
        const char *c = str_or_null(json_object_get(r, "consumer"));
        const char *p = str_or_null(json_object_get(r, "provider"));
        long permit = (long)json_integer_value(json_object_get(r, "permit"));
        long deny = (long)json_integer_value(json_object_get(r, "deny"));
        struct series *x = series_of(s, ns, c, p);
        if (!x) {
            x = &s[ns++];
            x->consumer = c;
            x->provider = p;
            x->label = xasprintf("%s → %s", c ? c : "—", p ? p : "—");
        }
        x->permit += permit;
        x->deny += deny;
        permits += permit;
        denials += deny;
        if (!nd || strcmp(days[nd - 1], day) != 0)
            days[nd++] = day;
        json_array_append_new(table,
                              json_pack("{s:s, s:s, s:I, s:I}", "day", day, "pair", x->label,
                                        "permit", (json_int_t)permit, "deny", (json_int_t)deny));
    }
    json_object_set_new(out, "rows", table);
    json_object_set_new(out, "any", json_boolean(n > 0));
    qsort(s, ns, sizeof *s, by_transfers);
    json_t *legend = json_array();
    for (size_t i = 0; i < ns; i++) {
        s[i].cls = i < SERIES_MAX ? (int)i : -1;
        if (s[i].cls < 0)
            continue;
        char cls[8];
        xsnprintf(cls, sizeof cls, "s%d", s[i].cls);
        json_array_append_new(legend, json_pack("{s:s, s:s}", "cls", cls, "label", s[i].label));
    }
    json_object_set_new(out, "legend", legend);
    json_object_set_new(out, "cut_series", json_boolean(ns > SERIES_MAX));
    size_t first_day = nd > DAYS_MAX ? nd - DAYS_MAX : 0;
    size_t shown_days = nd - first_day;
    json_object_set_new(out, "cut_days", json_boolean(nd > DAYS_MAX));
    size_t shown_series = 0;
    while (shown_series < ns && s[shown_series].cls >= 0)
        shown_series++;

    /* the scale: the largest count drawn (a bar is a pair's transfers in
     * a day, permitted and denied: the table splits them) */
    long max = 0;
    for (size_t i = 0; i < n; i++) {
        long v = transfers(json_array_get(rows, i));
        if (v > max)
            max = v;
    }
    long top = nice_max(max);
    long step = top >= 5 ? top / 5 : 1;
    double pw = PAIRS_W - PAIRS_LEFT - PAIRS_RIGHT, ph = PAIRS_H - PAIRS_TOP - PAIRS_BOTTOM;
    double base = PAIRS_TOP + ph;
    json_object_set_new(out, "x0", coord(PAIRS_LEFT));
    json_object_set_new(out, "x1", coord(PAIRS_W - PAIRS_RIGHT));
    json_object_set_new(out, "y0", coord(base));
    json_t *ticks = json_array();
    for (long v = 0; v <= top; v += step) {
        double y = base - ph * (double)v / (double)top;
        json_array_append_new(ticks, json_pack("{s:o, s:o, s:I}", "y", coord(y), "ty", coord(y + 4),
                                               "label", (json_int_t)v));
    }
    json_object_set_new(out, "ticks", ticks);
    json_object_set_new(out, "lx", coord(PAIRS_LEFT - 6));

    json_t *bars = json_array(), *xlabels = json_array();
    double group = shown_days ? pw / (double)shown_days : pw;
    /* bars at most BAR_MAX wide, centred in their day */
    double bw = shown_series ? group * 0.8 / (double)shown_series : 0;
    if (bw > BAR_MAX)
        bw = BAR_MAX;
    double pad = (group - bw * (double)shown_series) / 2;
    size_t every = (shown_days + XLABELS_MAX - 1) / XLABELS_MAX;
    for (size_t d = 0; d < shown_days; d++) {
        const char *day = days[first_day + d];
        if (d % (every ? every : 1) == 0)
            /* "MM-DD": the year and the full dates are in the table */
            json_array_append_new(xlabels, json_pack("{s:o, s:o, s:s}", "x",
                                                     coord(PAIRS_LEFT + group * ((double)d + 0.5)),
                                                     "y", coord(base + 18), "text", day + 5));
    }
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(rows, i);
        const char *day = json_string_value(json_object_get(r, "day"));
        long count = transfers(r);
        struct series *x = series_of(s, ns, str_or_null(json_object_get(r, "consumer")),
                                     str_or_null(json_object_get(r, "provider")));
        size_t d = first_day;
        while (d < nd && strcmp(days[d], day) != 0)
            d++;
        if (!x || x->cls < 0 || d >= nd || count <= 0)
            continue;
        double h = ph * (double)count / (double)top;
        double bx = PAIRS_LEFT + group * (double)(d - first_day) + pad + bw * x->cls;
        char *title = xasprintf("%s %s: %ld", day, x->label, count);
        char cls[8];
        xsnprintf(cls, sizeof cls, "s%d", x->cls);
        json_array_append_new(bars, json_pack("{s:o, s:o, s:o, s:o, s:s, s:s}", "x", coord(bx), "y",
                                              coord(base - h), "w", coord(bw), "h", coord(h), "cls",
                                              cls, "title", title));
        free(title);
    }
    json_object_set_new(out, "bars", bars);
    json_object_set_new(out, "xlabels", xlabels);

    /* the chart's accessible name says what it shows */
    json_t *sv = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:I}", "from", from, "to", to, "permit",
                           (json_int_t)permits, "deny", (json_int_t)denials, "npairs",
                           (json_int_t)ns, "top", ns ? s[0].label : "—", "top_count",
                           (json_int_t)(ns ? s[0].permit + s[0].deny : 0));
    char *summary =
        cn_format(lang, ns ? "audit.chart.pairs.summary" : "audit.chart.pairs.none", sv);
    json_object_set_new(out, "summary", json_string(summary ? summary : ""));
    free(summary);
    json_decref(sv);
    for (size_t i = 0; i < ns; i++)
        free(s[i].label);
    free(s);
    free(days);
    return out;
}

/* ---- denials per reason ---- */

static json_t *reasons_chart(enum az_lang lang, json_t *stats, const char *from, const char *to)
{
    json_t *rows = json_object_get(stats, "reasons");
    size_t n = json_array_size(rows);
    size_t shown = n < REASONS_SHOWN ? n : REASONS_SHOWN;
    int h = (int)shown * REASONS_ROW + 8;
    json_t *out = json_pack(
        "{s:s, s:s, s:i, s:i, s:b, s:b, s:b, s:b}", "from", from, "to", to, "w", REASONS_W, "h", h,
        "any", n > 0, "more", json_is_true(json_object_get(stats, "reasons_more")), "cut",
        n > REASONS_SHOWN, "damaged", json_is_true(json_object_get(stats, "reasons_damaged")));
    long max = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        long c = (long)json_integer_value(json_object_get(json_array_get(rows, i), "count"));
        total += c;
        if (c > max)
            max = c;
    }
    long top = nice_max(max);
    double bar_w = REASONS_W - REASONS_LABEL - 48;
    json_t *bars = json_array(), *table = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(rows, i);
        const char *code = json_string_value(json_object_get(r, "reason"));
        long c = (long)json_integer_value(json_object_get(r, "count"));
        const char *text =
            *code ? cn_audit_reason_text(lang, code) : cn_text(lang, "audit.reason.none");
        json_array_append_new(table, json_pack("{s:s, s:s, s:I}", "code", code, "text",
                                               text ? text : code, "count", (json_int_t)c));
        if (i >= shown)
            continue;
        double y = (double)i * REASONS_ROW + 4;
        double w = bar_w * (double)c / (double)top;
        char *label = cut_label(text ? text : code);
        char *title = xasprintf("%s (%s): %ld", text ? text : code, code, c);
        json_array_append_new(bars, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:s, s:I}", "x",
                                              coord(REASONS_LABEL), "y", coord(y), "w", coord(w),
                                              "h", coord(REASONS_ROW - 8), "ty",
                                              coord(y + REASONS_ROW / 2.0 + 1), "vx",
                                              coord(REASONS_LABEL + w + 6), "label", label, "title",
                                              title, "count", (json_int_t)c));
        free(label);
        free(title);
    }
    json_object_set_new(out, "bars", bars);
    json_object_set_new(out, "rows", table);
    json_object_set_new(out, "lx", coord(REASONS_LABEL - 8));
    const char *top_code =
        n ? json_string_value(json_object_get(json_array_get(rows, 0), "reason")) : "";
    const char *top_text = *top_code ? cn_audit_reason_text(lang, top_code) : "—";
    json_t *sv = json_pack(
        "{s:s, s:s, s:I, s:I, s:s, s:I}", "from", from, "to", to, "deny", (json_int_t)total,
        "nreasons", (json_int_t)n, "top", top_text ? top_text : top_code, "top_count",
        (json_int_t)(n ? json_integer_value(json_object_get(json_array_get(rows, 0), "count"))
                       : 0));
    char *summary =
        cn_format(lang, n ? "audit.chart.reasons.summary" : "audit.chart.reasons.none", sv);
    json_object_set_new(out, "summary", json_string(summary ? summary : ""));
    free(summary);
    json_decref(sv);
    return out;
}

void cn_audit_charts(json_t *vars, enum az_lang lang, json_t *stats, const char *from,
                     const char *to)
{
    json_object_set_new(vars, "pairs", pairs_chart(lang, stats, from, to));
    json_object_set_new(vars, "reasons", reasons_chart(lang, stats, from, to));
}
