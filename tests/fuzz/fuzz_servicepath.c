/* Fiware-ServicePath as the hosted store reads it (xc_service_paths_parse),
 * for a query, a write and a create, then the SQL condition the paths become
 * (xc_sql_paths). Accepted paths keep Orion's rules (absolute, at most 10
 * paths of at most 10 components of at most 50 letters, digits or "_", one
 * path for a write, no "/#" for a create); the LIKE pattern of a subtree
 * escapes "_" and ends in the one "/%" it adds, so that no path reaches into
 * another's branch. */
#include <ctype.h>

#include "core/pool.h"
#include "exchange/xc_ngsi.h"
#include "exchange/xc_sql.h"
#include "tests/fuzz/fuzz.h"

static void check_path(const char *p, bool subtree, enum xc_access access)
{
    size_t len = strlen(p);
    if (p[0] != '/')
        fuzz_fail("a relative path %s", p);
    if (len > 1 && p[len - 1] == '/')
        fuzz_fail("a trailing slash in %s", p);
    if (subtree && access == XC_CREATE)
        fuzz_fail("a subtree for a create");
    size_t levels = 0, level_len = 0;
    for (size_t i = 1; i < len; i++) {
        if (p[i] == '/') {
            if (!level_len)
                fuzz_fail("an empty component in %s", p);
            level_len = 0;
            continue;
        }
        if (!level_len)
            levels++;
        level_len++;
        if (!isalnum((unsigned char)p[i]) && p[i] != '_')
            fuzz_fail("a character 0x%02x in %s", (unsigned char)p[i], p);
        if (level_len > XC_PATH_LEVEL_MAX || levels > XC_PATH_LEVELS)
            fuzz_fail("a path too long or too deep: %s", p);
    }
}

/* The LIKE pattern for subtree path p: p with "_" escaped, then "/%". */
static void check_like(const char *pattern, const char *p)
{
    size_t n = strlen(pattern);
    if (n < 2 || strcmp(pattern + n - 2, "/%") != 0)
        fuzz_fail("the pattern %s does not end in /%%", pattern);
    const char *q = p;
    for (size_t i = 0; i + 2 < n; i++) {
        if (pattern[i] == '\\') {
            i++;
            if (pattern[i] != '_' || *q != '_')
                fuzz_fail("a stray escape in %s", pattern);
            q++;
            continue;
        }
        if (pattern[i] == '_' || pattern[i] == '%')
            fuzz_fail("an unescaped wildcard in %s for %s", pattern, p);
        if (pattern[i] != *q)
            fuzz_fail("the pattern %s is not for %s", pattern, p);
        q++;
    }
    if (*q)
        fuzz_fail("the pattern %s covers only part of %s", pattern, p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *h = fuzz_str(data, size);
    static const enum xc_access accesses[] = {XC_READ, XC_WRITE, XC_CREATE};
    for (size_t a = 0; a < sizeof accesses / sizeof *accesses; a++) {
        struct core_pool *pool = core_pool_new();
        struct xc_ngsi n = {0};
        int np = 0;
        const char *why = xc_service_paths_parse(pool, h, accesses[a], n.paths, n.subtree, &np);
        if (!why) {
            n.npaths = np;
            if (np < 1 || np > XC_PATHS_MAX || (accesses[a] != XC_READ && np != 1))
                fuzz_fail("%d paths for access %zu", np, a);
            for (int i = 0; i < np; i++)
                check_path(n.paths[i], n.subtree[i], accesses[a]);
            struct xc_sql s;
            xc_sql_init(&s, pool);
            xc_sql_paths(&s, &n);
            int param = 0;
            for (int i = 0; i < np; i++) {
                if (n.subtree[i] && strcmp(n.paths[i], "/") == 0)
                    continue;
                if (strcmp(s.params[param++], n.paths[i]) != 0)
                    fuzz_fail("path %d is not bound as itself", i);
                if (n.subtree[i])
                    check_like(s.params[param++], n.paths[i]);
            }
            if (param != s.nparams)
                fuzz_fail("%d parameters for %d bound", s.nparams, param);
            xc_sql_release(&s);
        } else if (!*why) {
            fuzz_fail("refused without a reason");
        }
        core_pool_free(pool);
    }
    free(h);
    return 0;
}
