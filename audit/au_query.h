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

#endif
