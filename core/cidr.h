#ifndef CORE_CIDR_H
#define CORE_CIDR_H

/* Address ranges ("10.0.0.0/8", "fe80::/10", a bare address) and whether a
 * socket address falls in one: for the outbound requests an operator
 * confines (notifications to subscribers' URLs). */
#include <sys/socket.h>

#include "core/core.h"

#define CORE_CIDR_LIST_MAX 64

struct core_cidr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int bits;
};

/* Parses one range; false on bad syntax or prefix length. */
bool core_cidr_parse(const char *s, struct core_cidr *out);
/* Parses a comma-separated list (spaces allowed) of at most
 * CORE_CIDR_LIST_MAX ranges into out (malloc'd, caller frees); "" or "none"
 * is the empty list. False with the offending item in *bad (static or
 * pointing into a copy the caller frees with free(*bad)). */
bool core_cidr_parse_list(const char *s, struct core_cidr **out, size_t *n, char **bad);
/* True when sa (IPv4, IPv6, or IPv4-mapped IPv6) lies in c. */
bool core_cidr_match(const struct core_cidr *c, const struct sockaddr *sa);
/* True when sa lies in any of the n ranges. */
bool core_cidr_match_any(const struct core_cidr *list, size_t n, const struct sockaddr *sa);

#endif
