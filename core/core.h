#ifndef CORE_CORE_H
#define CORE_CORE_H

/*
 * Basics every renkei source file includes after its system headers:
 * allocation that aborts on failure, small macros, and banned.h last.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
/* The headers that declare banned functions come before banned.h, so a
 * later include of them is a no-op instead of a clash with its macros. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ARRAY_SIZE(a)     (sizeof(a) / sizeof((a)[0]))
#define UNUSED            __attribute__((unused))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

/* Allocation never returns NULL: running out of memory aborts the process
 * through one place, so callers carry no NULL checks. */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);
char *xvasprintf(const char *fmt, va_list ap) PRINTF_LIKE(1, 0);

/* Bounded snprintf that reports truncation: returns false when dst was too small. */
bool xsnprintf(char *dst, size_t size, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* Parses a whole decimal integer in [min, max]; false on junk, sign or range. */
bool core_parse_long(const char *s, long min, long max, long *out);

/* FNV-1a of a string, for the in-memory hash tables (not for security). */
unsigned core_hash_str(const char *s);

/* Monotonic time in microseconds, for durations. */
uint64_t core_now_us(void);

/* Calendar arithmetic for the date parsers (proleptic Gregorian):
 * days since 1970-01-01 of y-m-d, the number of days in month m of year y,
 * and n decimal digits at s (false when one is not a digit). */
int64_t core_days_from_civil(int64_t y, int m, int d);
int core_days_in_month(int y, int m);
bool core_parse_digits(const char *s, int n, int *out);

/* Wall-clock time as RFC 3339 UTC with milliseconds ("2026-11-26T05:34:41.123Z"). */
void core_time_rfc3339(char out[32]);

#include "core/banned.h"

#endif
