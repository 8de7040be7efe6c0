/*
 * NGSI-v2 Simple Query Language (q, mq) to SQL over renkei.ngsi_entities.
 *
 * The meaning follows the NGSI-v2 specification's "Simple Query Language"
 * and what Orion does (rest/StringFilter.cpp): an unquoted right-hand side is
 * a number if it reads as one, else an ISO 8601 date, else true/false/null,
 * else a string; single quotes force a string. A number matches JSON
 * numbers only, a string JSON strings only. Dates compare as time with the
 * values of DateTime attributes (Orion keeps those as numbers), with the
 * entity's dateCreated/dateModified in q and an attribute's in mq. A binary
 * statement never matches an entity that lacks the target property, != and
 * the negated range and list included.
 *
 * Equality on values is JSONB containment, which the GIN index on e.attrs
 * answers; the array form of each alternative gives the specification's
 * "or includes the value, when the value is an array".
 */
#include <errno.h>
#include <regex.h>

#include "exchange/xc_q.h"

enum q_op { Q_EXISTS, Q_NOT_EXISTS, Q_EQ, Q_NE, Q_LT, Q_LE, Q_GT, Q_GE, Q_MATCH };
enum q_vkind { QV_NUM, QV_DATE, QV_STR, QV_BOOL, QV_NULL };
enum q_rhs { QR_NONE, QR_ONE, QR_RANGE, QR_LIST };
/* What a binary statement's left-hand side names besides a JSON value. */
enum q_builtin { QB_NONE, QB_CREATED, QB_MODIFIED };

struct q_val {
    enum q_vkind kind;
    const char *text; /* number as JSON, date as timestamptz input, or the string */
};

struct q_item {
    enum q_op op;
    const char **path; /* unquoted tokens: attribute[, metadata], compound path */
    size_t npath;
    enum q_builtin builtin;
    enum q_rhs rhs;
    struct q_val *vals; /* ONE: 1, RANGE: from and to, LIST: nvals */
    size_t nvals;
    const char *regex;
};

struct q_parsed {
    struct q_item *items;
    size_t n;
};

#define Q_WS " \t"

static bool fail(char *err, size_t errlen, const char *msg)
{
    if (errlen)
        xsnprintf(err, errlen, "%s", msg);
    return false;
}

/* ---- lexical helpers ---- */

static bool utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        if (i + n >= len)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (s[i + k] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

/* Trimmed copy of s[0..len) in pool memory. */
static char *trim_dup(struct core_pool *pool, const char *s, size_t len)
{
    while (len && strchr(Q_WS, *s)) {
        s++;
        len--;
    }
    while (len && strchr(Q_WS, s[len - 1]))
        len--;
    return core_pstrndup(pool, s, len);
}

/* Splits s on sep outside single quotes; pieces are trimmed pool copies.
 * false when a quote is left open. */
static bool split_outside_quotes(struct core_pool *pool, const char *s, char sep, size_t max,
                                 char ***out, size_t *n, bool *too_many)
{
    size_t count = 1;
    bool inq = false;
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            inq = !inq;
        else if (*p == sep && !inq)
            count++;
    }
    if (inq)
        return false;
    *too_many = count > max;
    if (*too_many)
        return true;
    char **v = core_palloc(pool, count * sizeof *v);
    size_t k = 0;
    const char *start = s;
    inq = false;
    for (const char *p = s;; p++) {
        if (*p == '\'')
            inq = !inq;
        if (*p == 0 || (*p == sep && !inq)) {
            v[k++] = trim_dup(pool, start, (size_t)(p - start));
            if (*p == 0)
                break;
            start = p + 1;
        }
    }
    *out = v;
    *n = k;
    return true;
}

/* Position of the first ".." outside quotes, or NULL. */
static const char *find_dotdot(const char *s)
{
    bool inq = false;
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            inq = !inq;
        else if (!inq && p[0] == '.' && p[1] == '.')
            return p;
    }
    return NULL;
}

static bool has_outside_quotes(const char *s, char c)
{
    bool inq = false;
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            inq = !inq;
        else if (!inq && *p == c)
            return true;
    }
    return false;
}

/* ---- values ---- */

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A decimal number in s (what strtod reads, minus hex, inf and nan, which
 * JSON cannot hold) rewritten as a JSON number, which PostgreSQL's numeric
 * also reads. Like Orion, a number out of double's range is not a number. */
static const char *number_json(struct core_pool *pool, const char *s)
{
    const char *p = s;
    bool neg = false;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    const char *ip = p;
    while (is_digit(*p))
        p++;
    size_t ilen = (size_t)(p - ip);
    const char *fp = NULL;
    size_t flen = 0;
    if (*p == '.') {
        fp = ++p;
        while (is_digit(*p))
            p++;
        flen = (size_t)(p - fp);
    }
    if (ilen == 0 && flen == 0)
        return NULL;
    const char *ep = NULL;
    if (*p == 'e' || *p == 'E') {
        ep = ++p;
        if (*p == '+' || *p == '-')
            p++;
        if (!is_digit(*p))
            return NULL;
        while (is_digit(*p))
            p++;
    }
    if (*p)
        return NULL;
    errno = 0;
    char *end;
    double d = strtod(s, &end);
    (void)d;
    if (errno == ERANGE || *end)
        return NULL;

    struct strbuf sb;
    strbuf_init(&sb, XC_Q_MAX_LEN * 2);
    if (neg)
        strbuf_adds(&sb, "-");
    while (ilen > 1 && *ip == '0') {
        ip++;
        ilen--;
    }
    if (ilen)
        strbuf_add(&sb, ip, ilen);
    else
        strbuf_adds(&sb, "0");
    if (flen) {
        strbuf_adds(&sb, ".");
        strbuf_add(&sb, fp, flen);
    }
    if (ep) {
        strbuf_adds(&sb, "e");
        strbuf_adds(&sb, ep);
    }
    char *r = core_pstrdup(pool, sb.buf);
    strbuf_release(&sb);
    return r;
}

/* The ISO 8601 forms Orion's parse8601Time reads: a date alone, or a date,
 * "T", hh[:mm[:ss[.f]]] or hh[mm[ss[.f]]], and an optional zone (Z, +hh,
 * +hhmm, +hh:mm); UTC when none is named. Rewritten as timestamptz input
 * PostgreSQL reads the same whatever its settings; NULL when s is not one. */
static const char *date_text(struct core_pool *pool, const char *s)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, tzh = 0, tzm = 0;
    char sign = '+';
    const char *frac = "";
    size_t flen = 0;
    if (!core_parse_digits(s, 4, &y) || s[4] != '-' || !core_parse_digits(s + 5, 2, &mo) ||
        s[7] != '-' || !core_parse_digits(s + 8, 2, &d))
        return NULL;
    const char *p = s + 10;
    if (*p == 'T') {
        p++;
        if (!core_parse_digits(p, 2, &h))
            return NULL;
        p += 2;
        bool colon = *p == ':';
        if (colon)
            p++;
        if (core_parse_digits(p, 2, &mi)) {
            p += 2;
            if ((colon && *p == ':') || (!colon && is_digit(*p))) {
                if (colon)
                    p++;
                if (!core_parse_digits(p, 2, &sec))
                    return NULL;
                p += 2;
                if (*p == '.') {
                    frac = ++p;
                    while (is_digit(*p))
                        p++;
                    flen = (size_t)(p - frac);
                    if (flen == 0 || flen > 9)
                        return NULL;
                }
            }
        } else if (colon) {
            return NULL;
        }
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            sign = *p++;
            if (!core_parse_digits(p, 2, &tzh))
                return NULL;
            p += 2;
            if (*p == ':' || *p) {
                if (*p == ':')
                    p++;
                if (!core_parse_digits(p, 2, &tzm))
                    return NULL;
                p += 2;
            }
        }
    }
    if (*p)
        return NULL;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > core_days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 59 || tzh > 15 || tzm > 59)
        return NULL;
    return core_psprintf(pool, "%04d-%02d-%02dT%02d:%02d:%02d%s%.*s%c%02d:%02d", y, mo, d, h, mi,
                         sec, flen ? "." : "", (int)flen, frac, sign, tzh, tzm);
}

static const char *kind_name(enum q_vkind k)
{
    switch (k) {
    case QV_NUM:
        return "Number";
    case QV_DATE:
        return "Date";
    case QV_STR:
        return "String";
    case QV_BOOL:
        return "Bool";
    case QV_NULL:
        return "Null";
    }
    return "?";
}

static const char *op_name(enum q_op op)
{
    switch (op) {
    case Q_LT:
        return "LessThan";
    case Q_LE:
        return "LessThanOrEqual";
    case Q_GT:
        return "GreaterThan";
    case Q_GE:
        return "GreaterThanOrEqual";
    default:
        return "?";
    }
}

/* One right-hand-side value, already trimmed and non-empty. */
static bool value_parse(struct core_pool *pool, const char *s, struct q_val *v, char *err,
                        size_t errlen)
{
    size_t len = strlen(s);
    if (s[0] == '\'') {
        if (len < 2 || s[len - 1] != '\'')
            return fail(err, errlen, "non-terminated forced string");
        if (memchr(s + 1, '\'', len - 2))
            return fail(err, errlen, "quote in forced string");
        v->kind = QV_STR;
        v->text = core_pstrndup(pool, s + 1, len - 2);
        return true;
    }
    if (strchr(s, '\''))
        return fail(err, errlen, "quote in unquoted value in q-item");
    if ((v->text = number_json(pool, s))) {
        v->kind = QV_NUM;
    } else if ((v->text = date_text(pool, s))) {
        v->kind = QV_DATE;
    } else if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
        v->kind = QV_BOOL;
        v->text = s;
    } else if (strcmp(s, "null") == 0) {
        v->kind = QV_NULL;
        v->text = s;
    } else {
        v->kind = QV_STR;
        v->text = s;
    }
    return true;
}

/* ---- the regular expression check ---- */

static size_t utf8_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0)
        return 2;
    if ((c & 0xf0) == 0xe0)
        return 3;
    return 4;
}

/* Where PostgreSQL's regex compiler gives up ("too complex"): bounded
 * repetition copies its operand, so the weight of an atom is the product of
 * the bounds around it, and the pattern's weight is their sum. PostgreSQL 15
 * took weights of 40000 and refused 52900; half of that leaves a margin. */
#define REGEX_MAX_WEIGHT 20000UL
#define REGEX_MAX_GROUPS 32
#define REGEX_MAX_REPEAT 255

static bool bracket_skip(const char *re, size_t *pos, char *err, size_t errlen)
{
    static const char *const classes[] = {"alpha", "digit", "alnum", "upper", "lower", "space",
                                          "blank", "punct", "print", "graph", "cntrl", "xdigit"};
    size_t j = *pos + 1;
    if (re[j] == '^')
        j++;
    bool first = true;
    for (;;) {
        char c = re[j];
        if (c == 0)
            return fail(err, errlen, "brackets [] not balanced in pattern");
        if (c == ']' && !first)
            break;
        first = false;
        if (c == '[' && (re[j + 1] == '.' || re[j + 1] == '='))
            return fail(err, errlen, "collating elements not supported in pattern");
        if (c == '[' && re[j + 1] == ':') {
            const char *name = re + j + 2;
            const char *end = strstr(name, ":]");
            if (!end)
                return fail(err, errlen, "brackets [] not balanced in pattern");
            bool known = false;
            for (size_t k = 0; k < ARRAY_SIZE(classes); k++)
                known |= strlen(classes[k]) == (size_t)(end - name) &&
                         memcmp(classes[k], name, (size_t)(end - name)) == 0;
            if (!known)
                return fail(err, errlen, "invalid character class in pattern");
            j = (size_t)(end - re) + 2;
            if (re[j] == '-' && re[j + 1] != ']')
                return fail(err, errlen, "invalid character range in pattern");
            continue;
        }
        size_t clen = utf8_len((unsigned char)c);
        if (re[j + clen] == '-' && re[j + clen + 1] != ']' && re[j + clen + 1] != 0) {
            char hi = re[j + clen + 1];
            if (clen != 1 || (unsigned char)hi >= 0x80 || hi == '[' || hi < c)
                return fail(err, errlen, "invalid character range in pattern");
            j += clen + 2;
            if (re[j] == '-' && re[j + 1] != ']')
                return fail(err, errlen, "invalid character range in pattern");
            continue;
        }
        j += clen;
    }
    *pos = j + 1;
    return true;
}

/* {m}, {m,} or {m,n} at re[*pos]; the factor it multiplies its operand by. */
static bool bound_parse(const char *re, size_t *pos, unsigned long *factor, char *err,
                        size_t errlen)
{
    size_t j = *pos + 1;
    unsigned long m = 0, n = 0;
    bool comma = false, hasn = false;
    if (!is_digit(re[j]))
        return fail(err, errlen, "invalid repetition count in pattern");
    while (is_digit(re[j])) {
        m = m * 10 + (unsigned long)(re[j++] - '0');
        if (m > REGEX_MAX_REPEAT)
            return fail(err, errlen, "invalid repetition count in pattern");
    }
    if (re[j] == ',') {
        comma = true;
        j++;
        while (is_digit(re[j])) {
            hasn = true;
            n = n * 10 + (unsigned long)(re[j++] - '0');
            if (n > REGEX_MAX_REPEAT)
                return fail(err, errlen, "invalid repetition count in pattern");
        }
    }
    if (re[j] != '}' || (hasn && n < m))
        return fail(err, errlen, "invalid repetition count in pattern");
    *pos = j + 1;
    *factor = hasn ? n : comma ? m + 1 : m;
    if (*factor == 0)
        *factor = 1;
    return true;
}

bool xc_q_regex_ok(const char *re, char *err, size_t errlen)
{
    size_t len = strlen(re);
    if (len == 0)
        return fail(err, errlen, "empty right-hand-side in q-item");
    if (len > XC_Q_MAX_REGEX)
        return fail(err, errlen, "pattern too long in q-item");
    if (!utf8_valid((const unsigned char *)re, len))
        return fail(err, errlen, "invalid UTF-8 in pattern");

    /* PostgreSQL's ERE mode and glibc's regcomp part ways on a quantifier
     * with nothing to repeat, on "(?", on bounds over 255 and on size: take
     * only what both read the same way without error. */
    unsigned long weight[REGEX_MAX_GROUPS + 1] = {0};
    int depth = 0;
    unsigned long last = 0;
    bool quantifiable = false;
    size_t i = 0;
    while (re[i]) {
        char c = re[i];
        unsigned long factor = 1;
        switch (c) {
        case '(':
            if (re[i + 1] == '?')
                return fail(err, errlen, "(? is not supported in pattern");
            if (depth == REGEX_MAX_GROUPS)
                return fail(err, errlen, "pattern nests too deep");
            weight[++depth] = 0;
            quantifiable = false;
            i++;
            continue;
        case ')':
            if (depth == 0)
                return fail(err, errlen, "parentheses () not balanced in pattern");
            last = weight[depth--];
            if (last == 0)
                last = 1;
            weight[depth] += last;
            quantifiable = true;
            i++;
            break;
        case '|':
        case '^':
        case '$':
            quantifiable = false;
            i++;
            continue;
        case '*':
        case '+':
        case '?':
        case '{':
            if (!quantifiable)
                return fail(err, errlen, "quantifier operand invalid in pattern");
            if (c == '{') {
                if (!bound_parse(re, &i, &factor, err, errlen))
                    return false;
            } else {
                factor = c == '+' ? 2 : 1;
                i++;
            }
            weight[depth] += last * (factor - 1);
            last *= factor;
            quantifiable = false;
            break;
        case '[':
            if (!bracket_skip(re, &i, err, errlen))
                return false;
            last = 1;
            weight[depth] += 1;
            quantifiable = true;
            break;
        case '\\':
            if (re[i + 1] == 0)
                return fail(err, errlen, "invalid escape \\ sequence in pattern");
            i += 1 + utf8_len((unsigned char)re[i + 1]);
            last = 1;
            weight[depth] += 1;
            quantifiable = true;
            break;
        default:
            i += utf8_len((unsigned char)c);
            last = 1;
            weight[depth] += 1;
            quantifiable = true;
            break;
        }
        if (weight[depth] > REGEX_MAX_WEIGHT || last > REGEX_MAX_WEIGHT)
            return fail(err, errlen, "pattern too complex in q-item");
    }
    if (depth != 0)
        return fail(err, errlen, "parentheses () not balanced in pattern");

    regex_t rx;
    if (regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) != 0)
        return fail(err, errlen, "error compiling filter regex");
    regfree(&rx);
    return true;
}

/* ---- statements ---- */

/* Orion's rule: '!' first is "does not exist"; otherwise the first of ==,
 * ~=, !=, >=, <=, <, >, : outside quotes splits the statement. */
static enum q_op op_find(const char *s, size_t *lhs_end, size_t *rhs_start)
{
    if (s[0] == '!') {
        *lhs_end = 0;
        *rhs_start = 1;
        return Q_NOT_EXISTS;
    }
    bool inq = false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        if (c == '\'') {
            inq = !inq;
            continue;
        }
        if (inq)
            continue;
        enum q_op op = Q_EXISTS;
        size_t w = 1;
        if (s[i + 1] == '=' && strchr("=~!><", c)) {
            w = 2;
            op = c == '=' ? Q_EQ : c == '~' ? Q_MATCH : c == '!' ? Q_NE : c == '>' ? Q_GE : Q_LE;
        } else if (c == '<') {
            op = Q_LT;
        } else if (c == '>') {
            op = Q_GT;
        } else if (c == ':') {
            op = Q_EQ;
        }
        if (op != Q_EXISTS) {
            *lhs_end = i;
            *rhs_start = i + w;
            return op;
        }
    }
    *lhs_end = strlen(s);
    *rhs_start = *lhs_end;
    return Q_EXISTS;
}

/* An attribute path: tokens split on '.' outside quotes, quotes removed
 * ('a.b'.c is "a.b" then "c"). */
static bool path_parse(struct core_pool *pool, const char *lhs, enum xc_q_kind kind,
                       struct q_item *it, char *err, size_t errlen)
{
    const char *tok[XC_Q_MAX_DEPTH];
    size_t n = 0;
    char *buf = core_palloc(pool, strlen(lhs) + 1);
    size_t b = 0;
    bool inq = false;
    for (const char *p = lhs;; p++) {
        if (*p == '\'') {
            inq = !inq;
            continue;
        }
        if (*p == 0 || (*p == '.' && !inq)) {
            if (inq)
                return fail(err, errlen, "non-terminated quote in left-hand-side of q-item");
            if (b == 0)
                return fail(err, errlen, "empty attribute name in left-hand-side of q-item");
            if (b > XC_Q_MAX_NAME)
                return fail(err, errlen, "attribute name too long in q-item");
            if (n == XC_Q_MAX_DEPTH)
                return fail(err, errlen, "attribute path too deep in q-item");
            buf[b] = 0;
            tok[n++] = buf;
            buf += b + 1;
            b = 0;
            if (*p == 0)
                break;
            continue;
        }
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f || strchr("<>\"=;()", c))
            return fail(err, errlen,
                        kind == XC_Q_METADATA ? "invalid character found in URI param /mq/"
                                              : "invalid character found in URI param /q/");
        buf[b++] = *p;
    }
    it->path = core_palloc(pool, n * sizeof *it->path);
    memcpy(it->path, tok, n * sizeof *tok);
    it->npath = n;
    return true;
}

static bool rhs_parse(struct core_pool *pool, const char *rhs, struct q_item *it, char *err,
                      size_t errlen)
{
    bool binary_eq = it->op == Q_EQ || it->op == Q_NE;
    /* Orion refuses its forbidden characters in the values of a filter
     * (patterns after ~= aside); the single quote is the quoting here */
    if (strpbrk(rhs, "<>\"=;()"))
        return fail(err, errlen, "forbidden characters in String Filter");
    const char *dd = find_dotdot(rhs);
    bool comma = has_outside_quotes(rhs, ',');
    if (dd) {
        if (!binary_eq)
            return fail(err, errlen, "ranges only valid for equal and not equal ops");
        if (comma)
            return fail(err, errlen, "invalid range: list of ranges in q-item");
        const char *from = trim_dup(pool, rhs, (size_t)(dd - rhs));
        const char *to = trim_dup(pool, dd + 2, strlen(dd + 2));
        if (!*from || !*to)
            return fail(err, errlen, "empty item in range");
        it->rhs = QR_RANGE;
        it->nvals = 2;
        it->vals = core_pcalloc(pool, 2 * sizeof *it->vals);
        if (!value_parse(pool, from, &it->vals[0], err, errlen) ||
            !value_parse(pool, to, &it->vals[1], err, errlen))
            return false;
        for (int k = 0; k < 2; k++)
            if (it->vals[k].kind != QV_NUM && it->vals[k].kind != QV_DATE &&
                it->vals[k].kind != QV_STR)
                return fail(err, errlen,
                            k ? "invalid data type for /range-to/"
                              : "invalid data type for /range-from/");
        if (it->vals[0].kind != it->vals[1].kind)
            return fail(err, errlen, "invalid range: types mixed");
        return true;
    }
    if (comma) {
        if (!binary_eq)
            return fail(err, errlen, "lists only valid for equal and not equal ops");
        char **items;
        size_t n;
        bool too_many;
        if (!split_outside_quotes(pool, rhs, ',', XC_Q_MAX_LIST, &items, &n, &too_many))
            return fail(err, errlen, "non-terminated forced string");
        if (too_many)
            return fail(err, errlen, "too many items in list");
        it->rhs = QR_LIST;
        it->nvals = n;
        it->vals = core_pcalloc(pool, n * sizeof *it->vals);
        for (size_t k = 0; k < n; k++) {
            if (!*items[k])
                return fail(err, errlen, "empty item in list");
            if (!value_parse(pool, items[k], &it->vals[k], err, errlen))
                return false;
            enum q_vkind kk = it->vals[k].kind;
            if ((kk != QV_NUM && kk != QV_DATE && kk != QV_STR) || kk != it->vals[0].kind)
                return fail(err, errlen, "invalid JSON value type in list");
        }
        return true;
    }
    it->rhs = QR_ONE;
    it->nvals = 1;
    it->vals = core_pcalloc(pool, sizeof *it->vals);
    if (!value_parse(pool, rhs, &it->vals[0], err, errlen))
        return false;
    if (!binary_eq && (it->vals[0].kind == QV_BOOL || it->vals[0].kind == QV_NULL)) {
        char msg[128];
        xsnprintf(msg, sizeof msg, "values of type /%s/ not supported for operator /%s/",
                  kind_name(it->vals[0].kind), op_name(it->op));
        return fail(err, errlen, msg);
    }
    return true;
}

static bool item_parse(struct core_pool *pool, const char *s, enum xc_q_kind kind,
                       struct q_item *it, char *err, size_t errlen)
{
    memset(it, 0, sizeof *it);
    size_t lhs_end, rhs_start;
    it->op = op_find(s, &lhs_end, &rhs_start);
    const char *lhs;
    const char *rhs = NULL;
    if (it->op == Q_NOT_EXISTS) {
        lhs = trim_dup(pool, s + 1, strlen(s + 1));
    } else {
        lhs = trim_dup(pool, s, lhs_end);
        if (it->op != Q_EXISTS)
            rhs = trim_dup(pool, s + rhs_start, strlen(s + rhs_start));
    }
    if (!*lhs)
        return fail(err, errlen, "empty left-hand-side in q-item");
    if (!path_parse(pool, lhs, kind, it, err, errlen))
        return false;
    if (kind == XC_Q_METADATA && it->npath < 2)
        return fail(err, errlen, "no metadata name - not valid for metadata filters");
    if (it->op == Q_EXISTS || it->op == Q_NOT_EXISTS)
        return true;
    if (!*rhs)
        return fail(err, errlen, "empty right-hand-side in q-item");

    /* Orion compares the entity's (q) or the attribute's (mq) own dates
     * when the statement names them, not an attribute of that name. */
    if (kind == XC_Q_ATTRS && it->npath == 1) {
        if (strcmp(lhs, "dateCreated") == 0)
            it->builtin = QB_CREATED;
        else if (strcmp(lhs, "dateModified") == 0)
            it->builtin = QB_MODIFIED;
    } else if (kind == XC_Q_METADATA && it->npath == 2) {
        if (strcmp(it->path[1], "dateCreated") == 0)
            it->builtin = QB_CREATED;
        else if (strcmp(it->path[1], "dateModified") == 0)
            it->builtin = QB_MODIFIED;
    }

    if (it->op == Q_MATCH) {
        size_t len = strlen(rhs);
        if (len >= 2 && rhs[0] == '\'' && rhs[len - 1] == '\'' && !memchr(rhs + 1, '\'', len - 2))
            rhs = core_pstrndup(pool, rhs + 1, len - 2);
        if (!xc_q_regex_ok(rhs, err, errlen))
            return false;
        it->regex = rhs;
        return true;
    }
    return rhs_parse(pool, rhs, it, err, errlen);
}

static bool q_parse(struct core_pool *pool, const char *q, enum xc_q_kind kind,
                    struct q_parsed *out, char *err, size_t errlen)
{
    if (!q || !*q)
        return fail(err, errlen, "empty q");
    size_t len = strlen(q);
    if (len > XC_Q_MAX_LEN)
        return fail(err, errlen, "q too long");
    if (!utf8_valid((const unsigned char *)q, len))
        return fail(err, errlen, "invalid UTF-8 in q");
    char **parts;
    size_t n;
    bool too_many;
    /* One more than the bound: a single trailing ';' is dropped below. */
    if (!split_outside_quotes(pool, q, ';', XC_Q_MAX_STATEMENTS + 1, &parts, &n, &too_many))
        return fail(err, errlen, "non-terminated forced string");
    if (too_many)
        return fail(err, errlen, "too many statements in q");
    /* Orion drops one trailing ';' ("a==1;") and refuses empty statements. */
    if (n > 1 && q[len - 1] == ';' && !*parts[n - 1])
        n--;
    if (n > 1 && q[0] == ';' && !*parts[0]) {
        parts++;
        n--;
    }
    if (n > XC_Q_MAX_STATEMENTS)
        return fail(err, errlen, "too many statements in q");
    out->items = core_pcalloc(pool, n * sizeof *out->items);
    out->n = n;
    for (size_t k = 0; k < n; k++) {
        if (!*parts[k])
            return fail(err, errlen, n == 1 ? "empty q" : "empty q-item");
        if (!item_parse(pool, parts[k], kind, &out->items[k], err, errlen))
            return false;
    }
    return true;
}

/* ---- SQL ---- */

struct emit {
    struct xc_sql *s;
    const struct q_item *it;
    enum xc_q_kind kind;
    const char *ref_attr;
    const char *ref_path[XC_Q_MAX_DEPTH]; /* bound on first use: an unused $n has no type */
};

static void add(struct emit *e, const char *sql)
{
    xc_sql_add(e->s, sql);
}

static void add_ref(struct emit *e, size_t k)
{
    if (!e->ref_path[k])
        e->ref_path[k] = xc_sql_param_ref(e->s, e->it->path[k]);
    add(e, e->ref_path[k]);
    add(e, "::text");
}

static size_t compound_start(const struct emit *e)
{
    return e->kind == XC_Q_METADATA ? 2 : 1;
}

/* The attribute object. */
static void add_attr(struct emit *e)
{
    add(e, "(e.attrs -> ");
    add_ref(e, 0);
    add(e, ")");
}

/* The metadata object (mq). */
static void add_md(struct emit *e)
{
    add(e, "(e.attrs -> ");
    add_ref(e, 0);
    add(e, " -> 'metadata' -> ");
    add_ref(e, 1);
    add(e, ")");
}

/* The target property value (jsonb, NULL when absent). */
static void add_target(struct emit *e)
{
    add(e, "(e.attrs -> ");
    add_ref(e, 0);
    if (e->kind == XC_Q_METADATA) {
        add(e, " -> 'metadata' -> ");
        add_ref(e, 1);
    }
    add(e, " -> 'value'");
    for (size_t k = compound_start(e); k < e->it->npath; k++) {
        add(e, " -> ");
        add_ref(e, k);
    }
    add(e, ")");
}

static void add_has_attr(struct emit *e)
{
    add(e, "e.attrs ? ");
    add_ref(e, 0);
}

/* The target property exists (never NULL). */
static void add_exists(struct emit *e)
{
    bool compound = e->it->npath > compound_start(e);
    if (e->kind == XC_Q_ATTRS && !compound) {
        add_has_attr(e);
        return;
    }
    add(e, "(");
    add_has_attr(e);
    add(e, " AND ");
    if (compound)
        add_target(e);
    else
        add_md(e);
    add(e, " IS NOT NULL)");
}

/* Dates compare with DateTime values only, as in Orion, which keeps those
 * (and only those) as numbers; inside a compound value there is no type, so
 * any ISO 8601 string there is a date. */
static void add_date_typed(struct emit *e)
{
    if (e->it->npath > compound_start(e))
        return;
    add(e, "(");
    if (e->kind == XC_Q_METADATA)
        add_md(e);
    else
        add_attr(e);
    add(e, " ->> 'type') IN ('DateTime', 'ISO8601') AND ");
}

static void add_param(struct emit *e, const char *value, const char *cast)
{
    xc_sql_param(e->s, value);
    add(e, cast);
}

static const char *sql_cast(enum q_vkind k)
{
    return k == QV_NUM ? "::numeric" : k == QV_DATE ? "::timestamptz" : "::text";
}

static void json_string(struct strbuf *sb, const char *s)
{
    strbuf_adds(sb, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            strbuf_addf(sb, "\\%c", *p);
        } else if (*p < 0x20) {
            strbuf_addf(sb, "\\u%04x", *p);
        } else {
            strbuf_add(sb, p, 1);
        }
    }
    strbuf_adds(sb, "\"");
}

static void json_value(struct strbuf *sb, const struct q_val *v)
{
    if (v->kind == QV_STR)
        json_string(sb, v->text);
    else
        strbuf_adds(sb, v->text); /* number, true, false, null: already JSON */
}

/* e.attrs @> {"A": {"value": ...V...}} (or the metadata's value), with V
 * wrapped in an array when as_array. */
static void add_contains(struct emit *e, const struct q_val *v, bool as_array)
{
    const struct q_item *it = e->it;
    struct strbuf sb;
    strbuf_init(&sb, XC_SQL_MAX_TEXT);
    size_t close = 0;
    strbuf_adds(&sb, "{");
    json_string(&sb, it->path[0]);
    strbuf_adds(&sb, ":{");
    close += 2;
    if (e->kind == XC_Q_METADATA) {
        strbuf_adds(&sb, "\"metadata\":{");
        json_string(&sb, it->path[1]);
        strbuf_adds(&sb, ":{");
        close += 2;
    }
    strbuf_adds(&sb, "\"value\":");
    for (size_t k = compound_start(e); k < it->npath; k++) {
        strbuf_adds(&sb, "{");
        json_string(&sb, it->path[k]);
        strbuf_adds(&sb, ":");
        close++;
    }
    if (as_array)
        strbuf_adds(&sb, "[");
    json_value(&sb, v);
    if (as_array)
        strbuf_adds(&sb, "]");
    while (close--)
        strbuf_adds(&sb, "}");
    if (sb.toobig)
        e->s->overflow = true;
    add(e, "e.attrs @> ");
    add_param(e, sb.buf, "::jsonb");
    strbuf_release(&sb);
}

/* The time a builtin names: the entity's (q) or the attribute's (mq). */
static void add_builtin_time(struct emit *e)
{
    if (e->kind == XC_Q_ATTRS) {
        add(e, e->it->builtin == QB_CREATED ? "e.created_at" : "e.modified_at");
        return;
    }
    add(e, "renkei.ngsi_time(");
    add_attr(e);
    add(e, e->it->builtin == QB_CREATED ? " -> 'dateCreated')" : " -> 'dateModified')");
}

/* The builtin time as what a value of kind k compares with: a time, or
 * (as Orion keeps dates) seconds since the epoch; NULL-free "FALSE" for
 * other kinds is the caller's. */
static void add_builtin_as(struct emit *e, enum q_vkind k)
{
    if (k == QV_NUM) {
        add(e, "extract(epoch FROM ");
        add_builtin_time(e);
        add(e, ")");
    } else {
        add_builtin_time(e);
    }
}

/* The target as what a value of kind k compares with, behind the guard
 * that makes it comparable (the "AND" is included): numbers, DateTime
 * times, or strings in byte order (Orion's strcmp). */
static void add_operand(struct emit *e, enum q_vkind k)
{
    if (k == QV_NUM) {
        add(e, "renkei.ngsi_num(");
        add_target(e);
        add(e, ")");
    } else if (k == QV_DATE) {
        add_date_typed(e);
        add(e, "renkei.ngsi_time(");
        add_target(e);
        add(e, ")");
    } else {
        add(e, "jsonb_typeof(");
        add_target(e);
        add(e, ") = 'string' AND (");
        add_target(e);
        add(e, " #>> '{}') COLLATE \"C\"");
    }
}

static bool builtin_comparable(enum q_vkind k)
{
    return k == QV_NUM || k == QV_DATE;
}

/* The == condition (possibly NULL where a value is not comparable). */
static void add_equals(struct emit *e)
{
    const struct q_item *it = e->it;
    enum q_vkind k = it->vals[0].kind;
    if (it->builtin != QB_NONE) {
        if (!builtin_comparable(k)) {
            add(e, "FALSE");
            return;
        }
        add(e, "(");
        add_builtin_as(e, k);
        if (it->rhs == QR_RANGE) {
            add(e, " BETWEEN ");
            add_param(e, it->vals[0].text, sql_cast(k));
            add(e, " AND ");
            add_param(e, it->vals[1].text, sql_cast(k));
        } else {
            add(e, " IN (");
            for (size_t i = 0; i < it->nvals; i++) {
                if (i)
                    add(e, ", ");
                add_param(e, it->vals[i].text, sql_cast(k));
            }
            add(e, ")");
        }
        add(e, ")");
        return;
    }
    if (it->rhs == QR_RANGE) {
        add(e, "(");
        add_has_attr(e);
        add(e, " AND ");
        add_operand(e, k);
        add(e, " BETWEEN ");
        add_param(e, it->vals[0].text, sql_cast(k));
        add(e, " AND ");
        add_param(e, it->vals[1].text, sql_cast(k));
        add(e, ")");
        return;
    }
    if (k == QV_DATE) {
        add(e, "(");
        add_has_attr(e);
        add(e, " AND ");
        add_operand(e, k);
        add(e, " IN (");
        for (size_t i = 0; i < it->nvals; i++) {
            if (i)
                add(e, ", ");
            add_param(e, it->vals[i].text, "::timestamptz");
        }
        add(e, "))");
        return;
    }
    add(e, "(");
    for (size_t i = 0; i < it->nvals; i++) {
        if (i)
            add(e, " OR ");
        add_contains(e, &it->vals[i], false);
        add(e, " OR ");
        add_contains(e, &it->vals[i], true);
    }
    add(e, ")");
}

static void add_compare(struct emit *e)
{
    const struct q_item *it = e->it;
    const struct q_val *v = &it->vals[0];
    const char *op = it->op == Q_LT   ? " < "
                     : it->op == Q_LE ? " <= "
                     : it->op == Q_GT ? " > "
                                      : " >= ";
    if (it->builtin != QB_NONE) {
        if (!builtin_comparable(v->kind)) {
            add(e, "FALSE");
            return;
        }
        add(e, "(");
        add_builtin_as(e, v->kind);
        add(e, op);
        add_param(e, v->text, sql_cast(v->kind));
        add(e, ")");
        return;
    }
    add(e, "(");
    add_has_attr(e);
    add(e, " AND ");
    add_operand(e, v->kind);
    add(e, op);
    add_param(e, v->text, sql_cast(v->kind));
    add(e, ")");
}

static void add_item(struct emit *e)
{
    const struct q_item *it = e->it;
    switch (it->op) {
    case Q_EXISTS:
        add(e, "(");
        add_exists(e);
        add(e, ")");
        break;
    case Q_NOT_EXISTS:
        add(e, "(NOT ");
        add_exists(e);
        add(e, ")");
        break;
    case Q_EQ:
        add_equals(e);
        break;
    case Q_NE:
        /* The property must be there (Orion's $exists with $ne/$nin/$not). */
        add(e, "(");
        if (it->builtin != QB_NONE && e->kind == XC_Q_ATTRS)
            add(e, "TRUE");
        else if (it->builtin != QB_NONE)
            add_has_attr(e);
        else
            add_exists(e);
        add(e, " AND NOT coalesce(");
        add_equals(e);
        add(e, ", FALSE))");
        break;
    case Q_LT:
    case Q_LE:
    case Q_GT:
    case Q_GE:
        add_compare(e);
        break;
    case Q_MATCH:
        if (it->builtin != QB_NONE) {
            add(e, "FALSE");
            break;
        }
        /* "(?e)": the pattern is a POSIX ERE, as regcomp read it above. */
        add(e, "(");
        add_has_attr(e);
        add(e, " AND ");
        add_operand(e, QV_STR);
        add(e, " ~ ('(?e)' || ");
        add_param(e, it->regex, "::text");
        add(e, "))");
        break;
    }
}

bool xc_q_compile(struct xc_sql *out, const char *q, enum xc_q_kind kind, char *err, size_t errlen)
{
    struct q_parsed p;
    if (!q_parse(out->pool, q, kind, &p, err, errlen))
        return false;
    xc_sql_add(out, "(");
    for (size_t k = 0; k < p.n; k++) {
        struct emit e = {.s = out, .it = &p.items[k], .kind = kind};
        if (k)
            xc_sql_add(out, " AND ");
        add_item(&e);
    }
    xc_sql_add(out, ")");
    if (!xc_sql_ok(out))
        return fail(err, errlen, "query too complex");
    return true;
}

bool xc_q_attrs(struct core_pool *pool, const char *q, enum xc_q_kind kind, const char ***names,
                size_t *n, char *err, size_t errlen)
{
    struct q_parsed p;
    if (!q_parse(pool, q, kind, &p, err, errlen))
        return false;
    const char **v = core_palloc(pool, (p.n ? p.n : 1) * sizeof *v);
    size_t count = 0;
    for (size_t k = 0; k < p.n; k++) {
        const struct q_item *it = &p.items[k];
        if (kind == XC_Q_ATTRS && it->builtin != QB_NONE)
            continue;
        bool seen = false;
        for (size_t j = 0; j < count && !seen; j++)
            seen = strcmp(v[j], it->path[0]) == 0;
        if (!seen)
            v[count++] = it->path[0];
    }
    *names = v;
    *n = count;
    return true;
}
