#ifndef CORE_POOL_H
#define CORE_POOL_H

#include "core/core.h"

/*
 * A memory pool owned by one request (nginx style): everything allocated from
 * it is freed at once when the request ends, and cleanup handlers registered
 * on it run then, newest first. Not thread-safe: one request, one thread.
 */
struct core_pool;

struct core_pool *core_pool_new(void);
/* Runs the cleanups and frees everything; NULL is fine. */
void core_pool_free(struct core_pool *pool);

void *core_palloc(struct core_pool *pool, size_t n); /* aligned for any type */
void *core_pcalloc(struct core_pool *pool, size_t n);
char *core_pstrdup(struct core_pool *pool, const char *s);
char *core_pstrndup(struct core_pool *pool, const char *s, size_t n);
char *core_psprintf(struct core_pool *pool, const char *fmt, ...) PRINTF_LIKE(2, 3);

/* Calls fn(arg) when the pool is freed. */
void core_pool_cleanup(struct core_pool *pool, void (*fn)(void *), void *arg);

#endif
