/* An application/x-www-form-urlencoded body as the OAuth endpoints take it
 * (az_form_parse). What it accepts holds at most 32 distinct names with
 * non-empty values of at most 8 KiB, and encoding those again gives a body
 * that parses to the same pairs. */
#include "authz/az_form.h"
#include "core/pool.h"
#include "core/strbuf.h"
#include "core/url.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    struct core_pool *pool = core_pool_new();
    struct az_form f;
    const char *why = az_form_parse((const char *)data, size, pool, &f);
    if (!why) {
        if (f.n > AZ_FORM_MAX_PARAMS)
            fuzz_fail("%zu parameters", f.n);
        struct strbuf again;
        strbuf_init(&again, 1 << 20);
        for (size_t i = 0; i < f.n; i++) {
            if (!*f.values[i] || strlen(f.values[i]) > AZ_FORM_MAX_VALUE)
                fuzz_fail("parameter %zu has a value of %zu bytes", i, strlen(f.values[i]));
            for (size_t k = 0; k < i; k++)
                if (strcmp(f.keys[k], f.keys[i]) == 0)
                    fuzz_fail("parameter %s twice", f.keys[i]);
            if (az_form_get(&f, f.keys[i]) != f.values[i])
                fuzz_fail("az_form_get does not find parameter %zu", i);
            if (i)
                strbuf_adds(&again, "&");
            core_url_encode(&again, f.keys[i]);
            strbuf_adds(&again, "=");
            core_url_encode(&again, f.values[i]);
        }
        struct az_form g;
        const char *why2 = az_form_parse(again.buf ? again.buf : "", again.len, pool, &g);
        if (why2)
            fuzz_fail("the re-encoded form is refused: %s", why2);
        if (g.n != f.n)
            fuzz_fail("the re-encoded form has %zu parameters, not %zu", g.n, f.n);
        for (size_t i = 0; i < f.n; i++)
            if (strcmp(f.keys[i], g.keys[i]) != 0 || strcmp(f.values[i], g.values[i]) != 0)
                fuzz_fail("parameter %zu changed on the way back", i);
        strbuf_release(&again);
    } else if (!*why) {
        fuzz_fail("an empty reason");
    }
    core_pool_free(pool);
    return 0;
}
