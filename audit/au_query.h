#ifndef AU_QUERY_H
#define AU_QUERY_H

/* Reading entries for the auditor API and `renkei audit export`. */
#include "audit/au_internal.h"

/* Filters; NULL (or -1) means none. Strings must outlive the query. */
struct au_filter {
    int64_t after;         /* entries with seq > after (-1: from the start) */
    int64_t upto;          /* entries with seq <= upto */
    const char *from, *to; /* time range [from, to), RFC 3339 or a date */
    const char *tenant;    /* as subject, consumer or provider */
    const char *consumer;  /* the consumer town, exactly */
    const char *provider;  /* the provider town, exactly */
    const char *client, *agreement, *purpose, *decision, *resident;
    const char *kind;        /* exact */
    const char *kind_prefix; /* "tenant." for kind=tenant.* */
};

/* Called for each entry: its seq, canonical bytes and base64 leaf hash. */
typedef void (*au_row_fn)(void *arg, int64_t seq, const char *canonical, size_t len,
                          const char *leaf_b64);

/* Reads up to limit entries after f->after in context (a tenant, or
 * CORE_DB_PLATFORM) — row-level security decides what it may see. Returns
 * how many rows were handed to row (their last seq in *last), -1 when the
 * database failed. */
long au_query_page(const char *context, const struct au_filter *f, long limit, au_row_fn row,
                   void *arg, int64_t *last);

/* One entry as a JSON line (canonical members + leaf_hash, then "\n"). */
void au_render_jsonl(struct strbuf *out, const char *canonical, size_t len, const char *leaf_b64);
/* One entry as the API's item (new reference; NULL if it does not parse). */
json_t *au_render_json(const char *canonical, size_t len, const char *leaf_b64);

/* CSV (RFC 4180, CRLF): these columns, the last holding the canonical bytes
 * that verify-file checks the others against. A cell that a spreadsheet
 * would run as a formula is quoted with a leading apostrophe. */
#define AU_CSV_NCOLS 15
extern const char *const au_csv_columns[AU_CSV_NCOLS];
void au_csv_header(struct strbuf *out);
void au_render_csv(struct strbuf *out, const char *canonical, size_t len, const char *leaf_b64);
void au_csv_field(struct strbuf *out, const char *s, size_t len);
/* The text of CSV column i for a parsed entry (malloc'd). */
char *au_csv_value(json_t *o, int i);

/* A time filter as the API takes it. */
bool au_time_param_ok(const char *t);

/* The longest filter value the API and the console take (bytes). */
#define AU_FILTER_MAX 200

/*
 * The filters of GET /audit/v1/entries, read through get (a parameter's
 * value by name, NULL when absent): from, to, tenant, consumer, provider,
 * client, agreement, purpose, decision, kind ("x.*" for a prefix, allocated
 * from pool) and resident into f (which keeps pointers to the values). The
 * auditor console reads its form through the same function, so that its
 * table and its export links filter alike. Returns NULL when every value is
 * good; else what is wrong (static text), with *field the parameter's name.
 */
typedef const char *(*au_param_fn)(void *arg, const char *name);
const char *au_filter_parse(struct au_filter *f, au_param_fn get, void *arg, struct core_pool *pool,
                            const char **field);

/* The latest checkpoint: 1 with *cp filled, 0 when the log has none yet, -1
 * when the database failed. Checkpoints are the same for every reader. */
int au_checkpoints_latest(struct au_checkpoint *cp);

/*
 * The figures behind the console's charts, over the entries f selects
 * (f->after and f->upto are ignored) in context, so that row-level security
 * counts only what the reader may see. A new object, or NULL when the
 * database failed:
 *   "pairs": [{"day": "YYYY-MM-DD" (UTC), "consumer", "provider" (strings or
 *              null), "permit", "deny" (counts of transfers)}], by day, then
 *              consumer, then provider; "pairs_more": true when there were
 *              more than max_pairs
 *   "reasons": [{"reason" (string, "" for none), "count"}], most frequent
 *              first; "reasons_more" likewise past max_reasons;
 *              "reasons_damaged": true when a stored entry in the range is
 *              not JSON, so the reasons (which only the entry's bytes hold)
 *              cannot be counted
 */
json_t *au_query_stats(const char *context, const struct au_filter *f, long max_pairs,
                       long max_reasons);

#endif
