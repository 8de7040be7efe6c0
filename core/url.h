#ifndef CORE_URL_H
#define CORE_URL_H

#include "core/core.h"

/* Checks an absolute http(s) URL as configuration and APIs take it: ASCII
 * only, a host (name, IPv4 or [IPv6]), an optional port 1-65535, no user
 * information, no fragment, no . or .. path segments. */
#define CORE_URL_MAX 2048

enum {
    CORE_URL_NO_QUERY = 1,              /* refuse a query string */
    CORE_URL_HTTPS_UNLESS_LOOPBACK = 2, /* plain http only for loopback hosts */
};

struct core_url {
    bool https;
    bool ipv6;
    char host[256];   /* without brackets */
    int port;         /* 0: none given */
    const char *path; /* into the checked string: "" or "/..." (query included) */
};

struct core_pool;

/* Percent-decodes s[0..len) (with plus: '+' as a space, as forms encode it)
 * into pool memory. NULL on a malformed escape or an encoded NUL: nothing
 * downstream is ever cut short by a hidden terminator. */
char *core_url_decode(const char *s, size_t len, bool plus, struct core_pool *pool);

/* Appends s percent-encoded (everything but RFC 3986 unreserved). */
struct strbuf;
void core_url_encode(struct strbuf *out, const char *s);

/* NULL when url is acceptable (out filled), else a static reason that reads
 * after the value's name ("URL must start with ..."). */
const char *core_url_check(const char *url, unsigned flags, struct core_url *out);

#endif
