#include <stdio.h>
#include <stdlib.h>

#include "core/pool.h"

#define BLOCK_SIZE 4096
#define BIG        1024 /* larger allocations get their own malloc */
#define ALIGN      (sizeof(max_align_t))

struct block {
    struct block *next;
    size_t used;
    max_align_t data[];
};

struct cleanup {
    struct cleanup *next;
    void (*fn)(void *);
    void *arg;
};

struct core_pool {
    struct block *blocks;
    struct cleanup *cleanups;
};

struct core_pool *core_pool_new(void)
{
    return xcalloc(1, sizeof(struct core_pool));
}

void core_pool_free(struct core_pool *pool)
{
    if (!pool)
        return;
    /* Cleanups may free memory they own, but never pool memory, so run
     * them first and release the blocks last. */
    for (struct cleanup *c = pool->cleanups; c; c = c->next)
        c->fn(c->arg);
    struct block *b = pool->blocks;
    while (b) {
        struct block *next = b->next;
        free(b);
        b = next;
    }
    free(pool);
}

static void *block_alloc(struct core_pool *pool, size_t n)
{
    n = (n + ALIGN - 1) & ~(ALIGN - 1);
    const size_t cap = BLOCK_SIZE - sizeof(struct block);
    struct block *b = pool->blocks;
    if (!b || cap - b->used < n) {
        b = xmalloc(BLOCK_SIZE);
        b->used = 0;
        b->next = pool->blocks;
        pool->blocks = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

void core_pool_cleanup(struct core_pool *pool, void (*fn)(void *), void *arg)
{
    struct cleanup *c = block_alloc(pool, sizeof *c);
    c->fn = fn;
    c->arg = arg;
    c->next = pool->cleanups;
    pool->cleanups = c;
}

void *core_palloc(struct core_pool *pool, size_t n)
{
    if (n > BIG) {
        void *p = xmalloc(n);
        core_pool_cleanup(pool, free, p);
        return p;
    }
    return block_alloc(pool, n ? n : 1);
}

void *core_pcalloc(struct core_pool *pool, size_t n)
{
    void *p = core_palloc(pool, n);
    memset(p, 0, n);
    return p;
}

char *core_pstrndup(struct core_pool *pool, const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = core_palloc(pool, len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *core_pstrdup(struct core_pool *pool, const char *s)
{
    return core_pstrndup(pool, s, strlen(s));
}

char *core_psprintf(struct core_pool *pool, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    core_pool_cleanup(pool, free, s);
    return s;
}
