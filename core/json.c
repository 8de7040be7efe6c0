#include "core/json.h"

#include <stdio.h>

bool core_json_depth_ok(const char *data, size_t len, int max)
{
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max)
                return false;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return true;
}

/* ---- compact serialization ---- */

size_t core_json_escape(unsigned char c, const char *digits, char out[6])
{
    static const char named[][2] = {{'"', '"'},  {'\\', '\\'}, {'\b', 'b'}, {'\f', 'f'},
                                    {'\n', 'n'}, {'\r', 'r'},  {'\t', 't'}};
    out[0] = '\\';
    for (size_t i = 0; i < sizeof named / sizeof *named; i++) {
        if (named[i][0] == (char)c) {
            out[1] = named[i][1];
            return 2;
        }
    }
    memcpy(out + 1, "u00", 3);
    out[4] = digits[c >> 4];
    out[5] = digits[c & 15];
    return 6;
}

struct out {
    char *buf;
    size_t len, alloc;
};

static void out_grow(struct out *o, size_t n)
{
    size_t want = o->len + n + 1;
    if (want <= o->alloc)
        return;
    size_t alloc = o->alloc ? o->alloc : 256;
    while (alloc < want)
        alloc *= 2;
    o->buf = xrealloc(o->buf, alloc);
    o->alloc = alloc;
}

static inline void out_add(struct out *o, const char *s, size_t n)
{
    out_grow(o, n);
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static inline void out_ch(struct out *o, char c)
{
    out_grow(o, 1);
    o->buf[o->len++] = c;
}

static void out_string(struct out *o, const char *s, size_t n)
{
    out_grow(o, n + 2);
    o->buf[o->len++] = '"';
    size_t run = 0; /* bytes copied as they are, written in one go */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        out_add(o, s + run, i - run);
        run = i + 1;
        char esc[6];
        size_t el = core_json_escape(c, "0123456789ABCDEF", esc);
        out_add(o, esc, el);
    }
    out_add(o, s + run, n - run);
    out_ch(o, '"');
}

static void out_real(struct out *o, double d, int precision)
{
    char b[64];
    int n = snprintf(b, sizeof b - 3, "%.*g", precision, d);
    if (n < 0 || (size_t)n >= sizeof b - 3)
        n = 0;
    if (!memchr(b, '.', (size_t)n) && !memchr(b, 'e', (size_t)n)) {
        b[n++] = '.';
        b[n++] = '0';
        b[n] = '\0';
    }
    char *e = memchr(b, 'e', (size_t)n);
    if (e) { /* "1e+20" → "1e20", "1e-05" → "1e-5" */
        char *start = e + 1;
        if (*start == '-')
            start++;
        char *digits = start;
        while (*digits == '+' || *digits == '0')
            digits++;
        if (!*digits) /* an exponent of zero keeps one digit */
            digits--;
        size_t rest = (size_t)(b + n - digits);
        memmove(start, digits, rest + 1);
        n = (int)(start - b + (ptrdiff_t)rest);
    }
    out_add(o, b, (size_t)n);
}

static bool out_value(struct out *o, const json_t *v, int precision, int depth)
{
    if (depth > 2048)
        return false;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        out_ch(o, '{');
        bool first = true;
        const char *k;
        size_t klen;
        json_t *m;
        json_object_keylen_foreach((json_t *)v, k, klen, m)
        {
            if (!first)
                out_ch(o, ',');
            first = false;
            out_string(o, k, klen);
            out_ch(o, ':');
            if (!out_value(o, m, precision, depth + 1))
                return false;
        }
        out_ch(o, '}');
        return true;
    }
    case JSON_ARRAY: {
        out_ch(o, '[');
        size_t n = json_array_size(v);
        for (size_t i = 0; i < n; i++) {
            if (i)
                out_ch(o, ',');
            if (!out_value(o, json_array_get(v, i), precision, depth + 1))
                return false;
        }
        out_ch(o, ']');
        return true;
    }
    case JSON_STRING:
        out_string(o, json_string_value(v), json_string_length(v));
        return true;
    case JSON_INTEGER: {
        char b[32];
        int n = snprintf(b, sizeof b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        out_add(o, b, (size_t)n);
        return true;
    }
    case JSON_REAL:
        out_real(o, json_real_value(v), precision);
        return true;
    case JSON_TRUE:
        out_add(o, "true", 4);
        return true;
    case JSON_FALSE:
        out_add(o, "false", 5);
        return true;
    case JSON_NULL:
        out_add(o, "null", 4);
        return true;
    }
    return false;
}

char *core_json_dump(const json_t *v, int precision, size_t *len)
{
    if (!v) /* a json_pack that failed: the caller answers 500 */
        return NULL;
    struct out o = {0};
    out_grow(&o, 0);
    if (!out_value(&o, v, precision ? precision : 17, 0)) {
        free(o.buf);
        return NULL;
    }
    o.buf[o.len] = '\0';
    if (len)
        *len = o.len;
    return o.buf;
}

bool core_json_opt_string(json_t *obj, const char *key, const char **out, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s must be a string", key);
        return false;
    }
    *out = json_string_value(v);
    return true;
}
