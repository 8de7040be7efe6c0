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

/* NULL when url is acceptable (out filled), else a static reason that reads
 * after the value's name ("URL must start with ..."). */
const char *core_url_check(const char *url, unsigned flags, struct core_url *out);

#endif
