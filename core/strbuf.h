#ifndef CORE_STRBUF_H
#define CORE_STRBUF_H

#include "core/core.h"

/*
 * A growable byte buffer with a hard cap (curl's "toobig"): appending past
 * cap fails, leaves the content as it was, and sets toobig. The content is
 * always NUL-terminated.
 */
struct strbuf {
    char *buf;
    size_t len;
    size_t alloc;
    size_t cap;
    bool toobig;
};

void strbuf_init(struct strbuf *sb, size_t cap);
void strbuf_release(struct strbuf *sb);
/* Makes room for n more bytes up front (still bounded by cap). */
void strbuf_reserve(struct strbuf *sb, size_t n);
bool strbuf_add(struct strbuf *sb, const void *data, size_t n);
bool strbuf_adds(struct strbuf *sb, const char *s);
bool strbuf_addf(struct strbuf *sb, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* Hands the buffer to the caller (free it); the strbuf is left empty. */
char *strbuf_detach(struct strbuf *sb, size_t *len);

#endif
