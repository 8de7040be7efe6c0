#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <strings.h>

#include "core/config.h"
#include "core/pool.h"
#include "core/strbuf.h"
#include "core/url.h"

static bool host_chars_ok(const char *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!isalnum(c) && c != '.' && c != '-')
            return false;
    }
    return n > 0 && h[0] != '.' && h[0] != '-';
}

const char *core_url_check(const char *url, unsigned flags, struct core_url *out)
{
    memset(out, 0, sizeof *out);
    const char *rest;
    if (strlen(url) > CORE_URL_MAX)
        return "is longer than 2048 characters";
    if (strncasecmp(url, "https://", 8) == 0) {
        rest = url + 8;
        out->https = true;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        rest = url + 7;
    } else {
        return (flags & CORE_URL_HTTPS_UNLESS_LOOPBACK)
                   ? "must start with https:// (or http:// for a loopback host)"
                   : "must start with http:// or https://";
    }
    for (const char *p = url; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return "must not contain spaces, control or non-ASCII characters";
    }
    if (strchr(url, '#'))
        return "must not have a fragment";
    if ((flags & CORE_URL_NO_QUERY) && strchr(url, '?'))
        return "must not have a query";
    size_t authority = strcspn(rest, "/?");
    if (memchr(rest, '@', authority))
        return "must not contain user information";
    const char *port = NULL;
    size_t port_len = 0;
    if (rest[0] == '[') {
        const char *close = memchr(rest, ']', authority);
        if (!close || (size_t)(close - rest - 1) >= sizeof out->host)
            return "has a malformed IPv6 host";
        memcpy(out->host, rest + 1, (size_t)(close - rest - 1));
        out->host[close - rest - 1] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, out->host, &a6) != 1)
            return "has a malformed IPv6 host";
        out->ipv6 = true;
        if (close + 1 < rest + authority) {
            if (close[1] != ':')
                return "has junk after the IPv6 host";
            port = close + 2;
            port_len = (size_t)(rest + authority - port);
        }
    } else {
        const char *colon = memchr(rest, ':', authority);
        size_t hlen = colon ? (size_t)(colon - rest) : authority;
        if (hlen == 0)
            return "has no host";
        if (hlen >= sizeof out->host || !host_chars_ok(rest, hlen))
            return "has a malformed host";
        memcpy(out->host, rest, hlen);
        out->host[hlen] = '\0';
        if (colon) {
            port = colon + 1;
            port_len = (size_t)(rest + authority - port);
        }
    }
    if (port) {
        char digits[8];
        long v;
        if (port_len == 0 || port_len >= sizeof digits)
            return "has a malformed port";
        memcpy(digits, port, port_len);
        digits[port_len] = '\0';
        if (!core_parse_long(digits, 1, 65535, &v))
            return "has a port outside 1-65535";
        out->port = (int)v;
    }
    out->path = rest + authority;
    for (const char *seg = out->path; *seg == '/';) {
        seg++;
        size_t n = strcspn(seg, "/?");
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return "must not contain . or .. path segments";
        seg += n;
    }
    if ((flags & CORE_URL_HTTPS_UNLESS_LOOPBACK) && !out->https &&
        !core_config_is_loopback(out->host))
        return "must use https:// unless the host is loopback (RFC 8414, RFC 9700)";
    return NULL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *core_url_decode(const char *s, size_t len, bool plus, struct core_pool *pool)
{
    char *out = core_palloc(pool, len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len)
                return NULL;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return NULL;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus) {
            c = ' ';
        } else if (c == '\0') {
            return NULL;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

void core_url_encode(struct strbuf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            strbuf_add(out, (const char *)p, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            strbuf_add(out, e, 3);
        }
    }
}
