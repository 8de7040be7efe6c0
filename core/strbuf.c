#include <stdio.h>
#include <stdlib.h>

#include "core/strbuf.h"

void strbuf_init(struct strbuf *sb, size_t cap)
{
    memset(sb, 0, sizeof *sb);
    sb->cap = cap;
}

void strbuf_release(struct strbuf *sb)
{
    free(sb->buf);
    strbuf_init(sb, sb->cap);
}

static bool grow(struct strbuf *sb, size_t n)
{
    if (n > sb->cap || sb->len > sb->cap - n || sb->len + n == SIZE_MAX) {
        sb->toobig = true;
        return false;
    }
    size_t need = sb->len + n + 1;
    if (need > sb->alloc) {
        size_t alloc = sb->alloc ? sb->alloc : 64;
        while (alloc < need)
            alloc = alloc > SIZE_MAX / 2 ? need : alloc * 2;
        /* never more than the cap allows (cap + 1 overflows for an uncapped
         * buffer, which then grew by exactly what was added, every time) */
        if (sb->cap < SIZE_MAX && alloc > sb->cap + 1)
            alloc = sb->cap + 1 >= need ? sb->cap + 1 : need;
        sb->buf = xrealloc(sb->buf, alloc);
        sb->alloc = alloc;
    }
    return true;
}

void strbuf_reserve(struct strbuf *sb, size_t n)
{
    if (grow(sb, n) && sb->buf)
        sb->buf[sb->len] = '\0';
}

bool strbuf_add(struct strbuf *sb, const void *data, size_t n)
{
    if (!grow(sb, n))
        return false;
    if (n)
        memcpy(sb->buf + sb->len, data, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
    return true;
}

bool strbuf_adds(struct strbuf *sb, const char *s)
{
    return strbuf_add(sb, s, strlen(s));
}

bool strbuf_addf(struct strbuf *sb, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return false;
    if ((size_t)n < sizeof small)
        return strbuf_add(sb, small, (size_t)n);
    va_start(ap, fmt);
    char *big = xvasprintf(fmt, ap);
    va_end(ap);
    bool ok = strbuf_add(sb, big, (size_t)n);
    free(big);
    return ok;
}

char *strbuf_detach(struct strbuf *sb, size_t *len)
{
    if (!sb->buf)
        strbuf_add(sb, "", 0);
    char *out = sb->buf;
    if (!out)
        out = xstrdup("");
    if (len)
        *len = sb->len;
    sb->buf = NULL;
    sb->len = sb->alloc = 0;
    return out;
}
