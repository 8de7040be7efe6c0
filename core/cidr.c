#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/cidr.h"

bool core_cidr_parse(const char *s, struct core_cidr *out)
{
    memset(out, 0, sizeof *out);
    char host[64];
    const char *slash = strchr(s, '/');
    size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
    if (hlen == 0 || hlen >= sizeof host)
        return false;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    int max;
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return false;
    }
    long bits = max;
    if (slash && !core_parse_long(slash + 1, 0, max, &bits))
        return false;
    out->bits = (int)bits;
    return true;
}

bool core_cidr_parse_list(const char *s, struct core_cidr **out, size_t *n, char **bad)
{
    *out = NULL;
    *n = 0;
    *bad = NULL;
    char *copy = xstrdup(s);
    struct core_cidr *list = xcalloc(CORE_CIDR_LIST_MAX, sizeof *list);
    char *p = copy;
    while (*p == ' ')
        p++;
    if (!*p || !strcmp(p, "none")) {
        free(copy);
        *out = list;
        return true;
    }
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        while (*p == ' ')
            p++;
        size_t len = strlen(p);
        while (len && p[len - 1] == ' ')
            p[--len] = '\0';
        if (*n == CORE_CIDR_LIST_MAX || !core_cidr_parse(p, &list[*n])) {
            *bad = xstrdup(*n == CORE_CIDR_LIST_MAX ? "(more than 64 ranges)" : p);
            free(copy);
            free(list);
            *n = 0;
            return false;
        }
        (*n)++;
        if (!comma)
            break;
        p = comma + 1;
    }
    free(copy);
    *out = list;
    return true;
}

static bool prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
    int whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)whole) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

bool core_cidr_match(const struct core_cidr *c, const struct sockaddr *sa)
{
    unsigned char v4[4];
    if (sa->sa_family == AF_INET) {
        memcpy(v4, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return c->family == AF_INET && prefix_equal(v4, c->addr, c->bits);
    }
    if (sa->sa_family != AF_INET6)
        return false;
    const unsigned char *a6 = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (c->family == AF_INET6)
        return prefix_equal(a6, c->addr, c->bits);
    /* an IPv4-mapped IPv6 address is that IPv4 address, and so is one in
     * the NAT64 prefix (RFC 6052) once a NAT64 gateway forwards it */
    return (memcmp(a6, mapped, sizeof mapped) == 0 || memcmp(a6, nat64, sizeof nat64) == 0) &&
           prefix_equal(a6 + 12, c->addr, c->bits);
}

bool core_cidr_match_any(const struct core_cidr *list, size_t n, const struct sockaddr *sa)
{
    for (size_t i = 0; i < n; i++)
        if (core_cidr_match(&list[i], sa))
            return true;
    return false;
}
