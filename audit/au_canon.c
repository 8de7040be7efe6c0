#include <stdlib.h>

#include "audit/au_internal.h"
#include "core/json.h"

/*
 * The canonical byte form of an entry is RFC 8785 (JCS) over a restricted set
 * of JSON values: objects, arrays, strings, integers of magnitude below 2^53,
 * true, false, null. Without fractions JCS number formatting is plain decimal,
 * so every language's JCS library agrees with this writer.
 */

#define SAFE_INT 9007199254740991LL /* 2^53 - 1 */

/* The next code point of a valid UTF-8 string (jansson's strings are). */
static uint32_t next_cp(const unsigned char **p)
{
    const unsigned char *s = *p;
    uint32_t c = s[0];
    int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (n == 2)
        c &= 0x1F;
    else if (n == 3)
        c &= 0x0F;
    else if (n == 4)
        c &= 0x07;
    for (int i = 1; i < n; i++)
        c = c << 6 | (s[i] & 0x3F);
    *p = s + n;
    return c;
}

/* JCS sorts member names by their UTF-16 code units (RFC 8785 §3.2.3). */
static int cmp_utf16(const char *a, const char *b)
{
    const unsigned char *p = (const unsigned char *)a, *q = (const unsigned char *)b;
    uint32_t pend = 0, qend = 0; /* a low surrogate still to compare */
    for (;;) {
        uint32_t x, y;
        if (pend) {
            x = pend;
            pend = 0;
        } else if (*p) {
            x = next_cp(&p);
            if (x >= 0x10000) {
                pend = 0xDC00 + ((x - 0x10000) & 0x3FF);
                x = 0xD800 + ((x - 0x10000) >> 10);
            }
        } else {
            x = 0;
        }
        if (qend) {
            y = qend;
            qend = 0;
        } else if (*q) {
            y = next_cp(&q);
            if (y >= 0x10000) {
                qend = 0xDC00 + ((y - 0x10000) & 0x3FF);
                y = 0xD800 + ((y - 0x10000) >> 10);
            }
        } else {
            y = 0;
        }
        if (x != y)
            return x < y ? -1 : 1;
        if (x == 0)
            return 0;
    }
}

static int cmp_keys(const void *a, const void *b)
{
    return cmp_utf16(*(const char *const *)a, *(const char *const *)b);
}

static bool add_string(struct strbuf *sb, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    bool ok = strbuf_add(sb, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        ok = ok && strbuf_add(sb, s + run, i - run);
        run = i + 1;
        char esc[6];
        size_t el = core_json_escape(c, hex, esc);
        ok = ok && strbuf_add(sb, esc, el);
    }
    return ok && strbuf_add(sb, s + run, len - run) && strbuf_add(sb, "\"", 1);
}

bool au_canonical(const json_t *v, struct strbuf *sb, int depth)
{
    if (depth > 16)
        return false;
    switch (json_typeof(v)) {
    case JSON_NULL:
        return strbuf_add(sb, "null", 4);
    case JSON_TRUE:
        return strbuf_add(sb, "true", 4);
    case JSON_FALSE:
        return strbuf_add(sb, "false", 5);
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        if (i > SAFE_INT || i < -SAFE_INT)
            return false;
        return strbuf_addf(sb, "%lld", (long long)i);
    }
    case JSON_REAL:
        return false;
    case JSON_STRING:
        return add_string(sb, json_string_value(v), json_string_length(v));
    case JSON_ARRAY: {
        bool ok = strbuf_add(sb, "[", 1);
        for (size_t i = 0; ok && i < json_array_size(v); i++)
            ok = (i == 0 || strbuf_add(sb, ",", 1)) &&
                 au_canonical(json_array_get(v, i), sb, depth + 1);
        return ok && strbuf_add(sb, "]", 1);
    }
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        const char **keys = xmalloc((n ? n : 1) * sizeof *keys);
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m) keys[i++] = k;
        qsort(keys, n, sizeof *keys, cmp_keys);
        bool ok = strbuf_add(sb, "{", 1);
        for (i = 0; ok && i < n; i++)
            ok = (i == 0 || strbuf_add(sb, ",", 1)) && add_string(sb, keys[i], strlen(keys[i])) &&
                 strbuf_add(sb, ":", 1) && au_canonical(json_object_get(v, keys[i]), sb, depth + 1);
        free(keys);
        return ok && strbuf_add(sb, "}", 1);
    }
    }
    return false;
}
