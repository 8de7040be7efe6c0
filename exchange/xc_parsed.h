#ifndef XC_PARSED_H
#define XC_PARSED_H

#include <jansson.h>
#include <stddef.h>

/*
 * Parsed entities' attributes, shared between requests and keyed by the
 * stored text itself: the same bytes always parse to the same value, so a
 * hit needs no invalidation, and a changed entity simply misses. What it
 * returns is a new reference to a value other threads may hold too: it must
 * be treated as read-only (rendering increfs its parts; nothing may set or
 * delete in it). Bounded by XC_PARSED_BUDGET bytes of text; past that a new
 * text is parsed and not kept.
 */
#define XC_PARSED_BUDGET (2 * 1024 * 1024)
json_t *xc_parsed_get(const char *text, size_t len);
/* Drops every entry (at stop, and for tests). */
void xc_parsed_clear(void);
/* Hits, misses and bytes kept, for /metrics (a core_metrics collector). */
struct strbuf;
void xc_parsed_metrics(struct strbuf *out);

#endif
