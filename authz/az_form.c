#include "authz/az_form.h"
#include "core/url.h"

const char *az_form_parse(const char *data, size_t len, struct core_pool *pool, struct az_form *f)
{
    memset(f, 0, sizeof *f);
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && data[end] != '&')
            end++;
        if (end > i) { /* empty pieces ("a=1&&b=2") are skipped, as browsers send them */
            const char *eq = memchr(data + i, '=', end - i);
            size_t klen = eq ? (size_t)(eq - (data + i)) : end - i;
            const char *v = eq ? eq + 1 : data + end;
            size_t vlen = eq ? (size_t)(data + end - v) : 0;
            if (klen == 0)
                return "a parameter has no name";
            if (f->n == AZ_FORM_MAX_PARAMS)
                return "too many parameters";
            if (vlen > 3 * AZ_FORM_MAX_VALUE)
                return "a parameter is too long";
            char *key = core_url_decode(data + i, klen, true, pool);
            char *val = core_url_decode(v, vlen, true, pool);
            if (!key || !val)
                return "a parameter has a malformed percent-escape";
            if (strlen(val) > AZ_FORM_MAX_VALUE)
                return "a parameter is too long";
            /* RFC 6749 §3.1: sent without a value is as if omitted */
            if (!*val) {
                i = end + 1;
                continue;
            }
            for (size_t k = 0; k < f->n; k++) {
                if (strcmp(f->keys[k], key) == 0)
                    return core_psprintf(pool, "parameter %s is given more than once",
                                         strlen(key) <= 64 ? key : "(long)");
            }
            f->keys[f->n] = key;
            f->values[f->n] = val;
            f->n++;
        }
        i = end + 1;
    }
    return NULL;
}

const char *az_form_get(const struct az_form *f, const char *key)
{
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->keys[i], key) == 0)
            return f->values[i];
    }
    return NULL;
}
