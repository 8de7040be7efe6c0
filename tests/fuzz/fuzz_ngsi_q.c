/* NGSI-v2 q and mq (xc_q_compile, xc_q_attrs, and the ~= patterns through
 * xc_q_regex_ok), as the hosted store compiles them to SQL. The SQL must
 * carry nothing of the query but "$n" parameters: its only quoted literals
 * are the module's own, it holds no statement separator or comment, it
 * names no parameter it did not bind, and the two entry points agree on
 * what is a valid query. */
#include "core/pool.h"
#include "exchange/xc_q.h"
#include "exchange/xc_sql.h"
#include "tests/fuzz/fuzz.h"

static const char *const literals[] = {"metadata",    "value",        "type", "DateTime",
                                       "ISO8601",     "string",       "(?e)", "{}",
                                       "dateCreated", "dateModified", NULL};

static void check_sql(const struct xc_sql *s, const char *q)
{
    const char *t = s->text.buf ? s->text.buf : "";
    for (const char *p = t; *p; p++) {
        if (*p == '\'') {
            const char *end = strchr(p + 1, '\'');
            if (!end)
                fuzz_fail("an unterminated literal in %s (q %s)", t, q);
            bool known = false;
            for (size_t i = 0; literals[i] && !known; i++)
                known = strlen(literals[i]) == (size_t)(end - p - 1) &&
                        memcmp(literals[i], p + 1, (size_t)(end - p - 1)) == 0;
            if (!known)
                fuzz_fail("a literal not written by the module in %s (q %s)", t, q);
            p = end;
        } else if (*p == ';' || (p[0] == '-' && p[1] == '-') || (p[0] == '/' && p[1] == '*')) {
            fuzz_fail("a separator or comment in %s (q %s)", t, q);
        } else if (*p == '$') {
            long n = strtol(p + 1, NULL, 10);
            if (n < 1 || n > s->nparams)
                fuzz_fail("$%ld with %d parameters bound in %s", n, s->nparams, t);
        } else if (strncmp(p, "COLLATE \"C\"", 11) == 0) {
            p += 10; /* the one quoted identifier the module writes */
        } else if ((unsigned char)*p >= 0x80 || *p == '"' || *p == '\\') {
            fuzz_fail("a byte 0x%02x not of the module's SQL in %s (q %s)", (unsigned char)*p, t,
                      q);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > XC_Q_MAX_LEN + 16)
        return 0;
    char *q = fuzz_str(data, size);
    for (int kind = XC_Q_ATTRS; kind <= XC_Q_METADATA; kind++) {
        struct core_pool *pool = core_pool_new();
        struct xc_sql s;
        xc_sql_init(&s, pool);
        char err[300] = "";
        bool ok = xc_q_compile(&s, q, (enum xc_q_kind)kind, err, sizeof err);
        if (ok) {
            check_sql(&s, q);
        } else if (!err[0]) {
            fuzz_fail("refused without a reason");
        }
        const char **names = NULL;
        size_t n = 0;
        char err2[300] = "";
        bool ok2 = xc_q_attrs(pool, q, (enum xc_q_kind)kind, &names, &n, err2, sizeof err2);
        /* the attribute list needs only the parse; the SQL may still be too big */
        if (ok && !ok2)
            fuzz_fail("compiles but its attributes do not: %s", err2);
        for (size_t i = 0; ok2 && i < n; i++)
            if (!names[i] || !*names[i])
                fuzz_fail("an empty attribute name");
        xc_sql_release(&s);
        core_pool_free(pool);
    }
    char err[300];
    xc_q_regex_ok(q, err, sizeof err);
    free(q);
    return 0;
}
