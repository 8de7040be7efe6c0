/* Redirect URI matching at the authorization endpoint
 * (az_redirect_registered): the input is a registered URI and a presented
 * one, split at the first newline. A match is an exact one (RFC 9700 §4.1.3),
 * or, for http on a loopback IP literal, one that differs in the port alone
 * (RFC 8252 §7.3): same scheme, host, path and query. */
#include <strings.h>

#include <jansson.h>

#include "authz/az_client.h"
#include "tests/fuzz/fuzz.h"

/* url without the port of its authority ("http://127.0.0.1:8080/cb" ->
 * "http://127.0.0.1/cb"), into out; false unless url is http://<loopback
 * IP literal>[:port]/... */
static bool without_port(const char *url, char *out, size_t cap)
{
    /* the scheme in any case, as URLs allow; then a loopback IP literal */
    if (strncasecmp(url, "http://", 7) != 0)
        return false;
    const char *hosts[] = {"127.0.0.1", "[::1]"};
    for (size_t i = 0; i < 2; i++) {
        size_t hl = strlen(hosts[i]);
        if (strncmp(url + 7, hosts[i], hl) != 0)
            continue;
        const char *rest = url + 7 + hl;
        if (*rest == ':') {
            rest++;
            while (*rest >= '0' && *rest <= '9')
                rest++;
        }
        if (*rest && *rest != '/' && *rest != '?')
            return false;
        if (7 + hl + strlen(rest) + 1 > cap)
            return false;
        snprintf(out, cap, "%.*s%s", (int)(7 + hl), url, rest);
        return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    char *reg, *uri;
    if (!fuzz_split(data, size, '\n', &reg, &uri))
        return 0;
    json_t *list = json_array();
    json_array_append_new(list, json_string(reg)); /* NULL (not UTF-8) is not appended */
    if (az_redirect_registered(list, uri) && strcmp(reg, uri) != 0) {
        char a[4096], b[4096];
        if (!without_port(reg, a, sizeof a) || !without_port(uri, b, sizeof b) || strcmp(a, b) != 0)
            fuzz_fail("%s matched registered %s", uri, reg);
    }
    json_decref(list);
    free(reg);
    free(uri);
    return 0;
}
