/* Agreements as values: release, copy, the JSON shape of the contract, and
 * the checks every way in (CLI, admin API) applies before the database
 * checks them again. */
#include <ctype.h>
#include <stdlib.h>
#include <time.h>

#include "exchange/xc_agreement.h"
#include "exchange/xc_ngsi.h"
#include "tenants/tn.h"

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void xc_agreement_release(struct xc_agreement *a)
{
    if (!a)
        return;
    free_list(a->types, a->ntypes);
    free_list(a->attrs, a->nattrs);
    free_list(a->purposes, a->npurposes);
    free(a->consent_scope);
    free(a->resident_attr);
    free(a->description);
    memset(a, 0, sizeof *a);
}

static char **copy_list(char *const *v, size_t n)
{
    if (!n)
        return NULL;
    char **out = xcalloc(n, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return out;
}

void xc_agreement_copy(struct xc_agreement *dst, const struct xc_agreement *src)
{
    *dst = *src;
    dst->types = copy_list(src->types, src->ntypes);
    dst->attrs = copy_list(src->attrs, src->nattrs);
    dst->purposes = copy_list(src->purposes, src->npurposes);
    dst->consent_scope = src->consent_scope ? xstrdup(src->consent_scope) : NULL;
    dst->resident_attr = src->resident_attr ? xstrdup(src->resident_attr) : NULL;
    dst->description = src->description ? xstrdup(src->description) : NULL;
}

static const char *const state_names[] = {"proposed", "active", "suspended", "revoked"};

const char *xc_ag_state_name(enum xc_ag_state s)
{
    return (unsigned)s < ARRAY_SIZE(state_names) ? state_names[s] : "?";
}

bool xc_ag_state_parse(const char *s, enum xc_ag_state *out)
{
    for (size_t i = 0; s && i < ARRAY_SIZE(state_names); i++) {
        if (strcmp(s, state_names[i]) == 0) {
            *out = (enum xc_ag_state)i;
            return true;
        }
    }
    return false;
}

const char *xc_deny_code(enum xc_deny d)
{
    switch (d) {
    case XC_DENY_NONE:
        return "permit";
    case XC_DENY_NO_AGREEMENT:
        return "no_agreement";
    case XC_DENY_NO_PURPOSE:
        return "purpose_missing";
    case XC_DENY_PURPOSE:
        return "purpose_not_agreed";
    case XC_DENY_TYPE:
        return "type_not_agreed";
    case XC_DENY_ACTION:
        return "action_not_agreed";
    case XC_DENY_ATTR:
        return "attr_not_agreed";
    case XC_DENY_NOT_YET:
        return "not_yet_valid";
    case XC_DENY_EXPIRED:
        return "expired";
    case XC_DENY_SUSPENDED:
        return "agreement_suspended";
    case XC_DENY_PROPOSED:
        return "agreement_not_approved";
    case XC_DENY_REVOKED:
        return "agreement_revoked";
    case XC_DENY_RATE:
        return "rate_limited";
    case XC_DENY_TOWN:
        return "town_suspended";
    case XC_DENY_CONSENT:
        return "no_consent";
    case XC_DENY_RESIDENT:
        return "resident_token_required";
    case XC_DENY_SERVICE:
        return "service_token_required";
    case XC_DENY_NOT_LINKED:
        return "resident_not_linked";
    }
    return "?";
}

/* ---- time ---- */

bool xc_ag_time_parse(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, sec;
    if (!s || strlen(s) < 20 || strlen(s) > 40 || !core_parse_digits(s, 4, &y) || s[4] != '-' ||
        !core_parse_digits(s + 5, 2, &mo) || s[7] != '-' || !core_parse_digits(s + 8, 2, &d) ||
        (s[10] != 'T' && s[10] != 't') || !core_parse_digits(s + 11, 2, &h) || s[13] != ':' ||
        !core_parse_digits(s + 14, 2, &mi) || s[16] != ':' || !core_parse_digits(s + 17, 2, &sec))
        return false;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > core_days_in_month(y, mo) || h > 23 ||
        mi > 59 || sec > 59)
        return false;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!core_parse_digits(p + 1, 2, &oh) || p[3] != ':' || !core_parse_digits(p + 4, 2, &om) ||
            oh > 23 || om > 59)
            return false;
        off = (*p == '-' ? -1 : 1) * (int64_t)(oh * 3600 + om * 60);
        p += 6;
    } else {
        return false;
    }
    if (*p)
        return false;
    int64_t t = core_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    if (t <= 0)
        return false; /* 0 means "no bound" */
    *out = t;
    return true;
}

void xc_ag_time_format(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    char buf[96];
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    xsnprintf(out, 32, "%s", buf);
}

bool xc_ag_rate_parse(const char *s, int *out)
{
    if (!s)
        return false;
    const char *slash = strchr(s, '/');
    char digits[16];
    size_t len = slash ? (size_t)(slash - s) : strlen(s);
    if (len == 0 || len >= sizeof digits || (slash && strcmp(slash, "/min") != 0))
        return false;
    memcpy(digits, s, len);
    digits[len] = '\0';
    long v;
    if (!core_parse_long(digits, 0, XC_AG_RATE_MAX, &v))
        return false;
    *out = (int)v;
    return true;
}

/* ---- checks ---- */

const char *xc_ag_check_purpose(const char *s)
{
    if (!s || !*s)
        return "a purpose is empty";
    size_t n = strlen(s);
    if (n > XC_AG_PURPOSE_MAX)
        return "a purpose is longer than 64 bytes";
    if (!(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
        return "a purpose starts with a lower-case letter or a digit";
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(c < 0x80 && (islower(c) || isdigit(c) || c == '.' || c == '_' || c == '-')))
            return "a purpose holds only a-z, 0-9, '.', '_' and '-'";
    }
    return NULL;
}

/* A list of names: at most XC_AG_LIST_MAX, each passing check, no two alike. */
static bool check_list(const char *field, char *const *v, size_t n, bool need_one,
                       const char *(*check)(const char *), char *err, size_t errlen)
{
    if (need_one && n == 0) {
        snprintf(err, errlen, "%s must name at least one", field);
        return false;
    }
    if (n > XC_AG_LIST_MAX) {
        snprintf(err, errlen, "%s has %zu items, more than %d", field, n, XC_AG_LIST_MAX);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const char *why = check(v[i]);
        if (why) {
            snprintf(err, errlen, "%s: item %zu: %s", field, i + 1, why);
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(v[i], v[j]) == 0) {
                snprintf(err, errlen, "%s: item %zu repeats item %zu", field, i + 1, j + 1);
                return false;
            }
        }
    }
    return true;
}

/* Valid UTF-8 of at most max characters, no control characters. */
static bool text_ok(const char *s, size_t max)
{
    size_t chars = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;
        if (len == 0 || (len == 2 && c < 0xc2) || (len == 4 && c > 0xf4))
            return false;
        for (size_t i = 1; i < len; i++)
            if ((p[i] & 0xc0) != 0x80)
                return false;
        if (len == 1 && (c < 0x20 || c == 0x7f))
            return false;
        p += len;
        if (++chars > max)
            return false;
    }
    return true;
}

bool xc_agreement_check(const struct xc_agreement *a, char *err, size_t errlen)
{
    const char *why;
    if ((why = tn_check_id(a->provider))) {
        snprintf(err, errlen, "provider: %s", why);
        return false;
    }
    if ((why = tn_check_id(a->consumer))) {
        snprintf(err, errlen, "consumer: %s", why);
        return false;
    }
    if (strcmp(a->provider, a->consumer) == 0) {
        snprintf(err, errlen,
                 "provider and consumer are the same town: a town needs no agreement "
                 "with itself");
        return false;
    }
    if (!check_list("entity_types", a->types, a->ntypes, true, xc_check_name, err, errlen) ||
        !check_list("attrs", a->attrs, a->nattrs, false, xc_check_name, err, errlen) ||
        !check_list("purposes", a->purposes, a->npurposes, true, xc_ag_check_purpose, err, errlen))
        return false;
    if (a->actions == 0 || (a->actions & ~(XC_AG_READ | XC_AG_WRITE))) {
        snprintf(err, errlen, "actions must be read, write or both");
        return false;
    }
    if (!a->personal && (a->consent_scope || a->resident_attr)) {
        snprintf(err, errlen, "consent_scope and resident_attr apply to personal data only");
        return false;
    }
    if (a->consent_scope) {
        size_t n = strlen(a->consent_scope);
        bool ok = n >= 1 && n <= XC_AG_SCOPE_MAX;
        for (size_t i = 0; ok && i < n; i++) {
            unsigned char c = (unsigned char)a->consent_scope[i];
            ok = c > 0x20 && c < 0x7f && c != '"' && c != '\\';
        }
        if (!ok) {
            snprintf(err, errlen,
                     "consent_scope must be 1-64 printable ASCII characters without "
                     "spaces");
            return false;
        }
    }
    if (a->resident_attr && (why = xc_check_name(a->resident_attr))) {
        snprintf(err, errlen, "resident_attr: %s", why);
        return false;
    }
    if (a->valid_from < 0 || a->valid_until < 0) {
        snprintf(err, errlen, "valid_from and valid_until must be RFC 3339 times");
        return false;
    }
    if (a->valid_from && a->valid_until && a->valid_until <= a->valid_from) {
        snprintf(err, errlen, "valid_until must be after valid_from");
        return false;
    }
    if (a->rate_per_minute < 0 || a->rate_per_minute > XC_AG_RATE_MAX) {
        snprintf(err, errlen, "rate_per_minute must be a whole number from 0 (no limit) to %d",
                 XC_AG_RATE_MAX);
        return false;
    }
    if (a->description && !text_ok(a->description, XC_AG_NOTE_MAX)) {
        snprintf(err, errlen,
                 "description must be text of at most %d characters without control "
                 "characters",
                 XC_AG_NOTE_MAX);
        return false;
    }
    return true;
}

void xc_agreement_defaults(struct xc_agreement *a)
{
    if (!a->personal)
        return;
    if (!a->consent_scope)
        a->consent_scope = xasprintf("exchange.%s", a->provider);
    if (!a->resident_attr)
        a->resident_attr = xstrdup("refResident");
}

/* ---- JSON ---- */

static json_t *list_json(char *const *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(v[i]));
    return arr;
}

static json_t *time_json(int64_t t)
{
    if (!t)
        return json_null();
    char buf[32];
    xc_ag_time_format(t, buf);
    return json_string(buf);
}

json_t *xc_agreement_json(const struct xc_agreement *a)
{
    json_t *actions = json_array();
    if (a->actions & XC_AG_READ)
        json_array_append_new(actions, json_string("read"));
    if (a->actions & XC_AG_WRITE)
        json_array_append_new(actions, json_string("write"));
    json_t *j = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:b, s:o, s:o, s:i, s:s}", "id",
                          a->id, "provider", a->provider, "consumer", a->consumer, "entity_types",
                          list_json(a->types, a->ntypes), "attrs", list_json(a->attrs, a->nattrs),
                          "actions", actions, "purposes", list_json(a->purposes, a->npurposes),
                          "personal", a->personal, "valid_from", time_json(a->valid_from),
                          "valid_until", time_json(a->valid_until), "rate_per_minute",
                          a->rate_per_minute, "state", xc_ag_state_name(a->state));
    if (a->personal) {
        json_object_set_new(j, "consent_scope",
                            json_string(a->consent_scope ? a->consent_scope : ""));
        json_object_set_new(j, "resident_attr",
                            json_string(a->resident_attr ? a->resident_attr : ""));
    }
    json_object_set_new(j, "description",
                        a->description ? json_string(a->description) : json_null());
    if (a->created_at[0])
        json_object_set_new(j, "created_at", json_string(a->created_at));
    if (a->updated_at[0])
        json_object_set_new(j, "updated_at", json_string(a->updated_at));
    json_object_set_new(j, "version", json_integer(a->version));
    return j;
}

/* ---- a proposal from JSON ---- */

/* A list of strings member into a freshly allocated list. */
static bool list_member(json_t *body, const char *key, char ***out, size_t *n, char *err,
                        size_t errlen)
{
    *out = NULL;
    *n = 0;
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_array(v)) {
        snprintf(err, errlen, "%s must be an array of strings", key);
        return false;
    }
    size_t len = json_array_size(v);
    if (len > XC_AG_LIST_MAX) {
        snprintf(err, errlen, "%s has %zu items, more than %d", key, len, XC_AG_LIST_MAX);
        return false;
    }
    char **list = len ? xcalloc(len, sizeof *list) : NULL;
    for (size_t i = 0; i < len; i++) {
        const char *s = json_string_value(json_array_get(v, i));
        if (!s) {
            for (size_t k = 0; k < i; k++)
                free(list[k]);
            free(list);
            snprintf(err, errlen, "%s must be an array of strings", key);
            return false;
        }
        list[i] = xstrdup(s);
    }
    *out = list;
    *n = len;
    return true;
}

static bool time_member(json_t *body, const char *key, int64_t *out, char *err, size_t errlen)
{
    const char *s;
    *out = 0;
    if (!core_json_opt_string(body, key, &s, err, errlen))
        return false;
    if (s && !xc_ag_time_parse(s, out)) {
        snprintf(err, errlen, "%s must be an RFC 3339 time such as 2026-04-01T00:00:00+09:00", key);
        return false;
    }
    return true;
}

bool xc_agreement_from_json(json_t *body, const char *default_consumer, struct xc_agreement *a,
                            char *err, size_t errlen)
{
    const char *provider, *consumer, *scope, *rattr, *desc;
    if (!core_json_opt_string(body, "provider", &provider, err, errlen) ||
        !core_json_opt_string(body, "consumer", &consumer, err, errlen) ||
        !core_json_opt_string(body, "consent_scope", &scope, err, errlen) ||
        !core_json_opt_string(body, "resident_attr", &rattr, err, errlen) ||
        !core_json_opt_string(body, "description", &desc, err, errlen))
        return false;
    if (!provider) {
        snprintf(err, errlen, "provider is required");
        return false;
    }
    if (!consumer)
        consumer = default_consumer;
    if (!consumer) {
        snprintf(err, errlen, "consumer is required");
        return false;
    }
    if (!xsnprintf(a->provider, sizeof a->provider, "%s", provider) ||
        !xsnprintf(a->consumer, sizeof a->consumer, "%s", consumer)) {
        snprintf(err, errlen, "a tenant id has at most 50 characters");
        return false;
    }
    if (!list_member(body, "entity_types", &a->types, &a->ntypes, err, errlen) ||
        !list_member(body, "attrs", &a->attrs, &a->nattrs, err, errlen) ||
        !list_member(body, "purposes", &a->purposes, &a->npurposes, err, errlen))
        return false;
    char **acts;
    size_t nact;
    if (!list_member(body, "actions", &acts, &nact, err, errlen))
        return false;
    a->actions = acts ? 0 : XC_AG_READ;
    bool bad = json_object_get(body, "actions") && nact == 0;
    for (size_t i = 0; i < nact; i++) {
        if (strcmp(acts[i], "read") == 0 && !(a->actions & XC_AG_READ))
            a->actions |= XC_AG_READ;
        else if (strcmp(acts[i], "write") == 0 && !(a->actions & XC_AG_WRITE))
            a->actions |= XC_AG_WRITE;
        else
            bad = true;
        free(acts[i]);
    }
    free(acts);
    if (bad) {
        snprintf(err, errlen, "actions must be [\"read\"], [\"write\"] or [\"read\", \"write\"]");
        return false;
    }
    json_t *personal = json_object_get(body, "personal");
    if (personal && !json_is_boolean(personal)) {
        snprintf(err, errlen, "personal must be true or false");
        return false;
    }
    a->personal = json_is_true(personal);
    a->consent_scope = scope ? xstrdup(scope) : NULL;
    a->resident_attr = rattr ? xstrdup(rattr) : NULL;
    a->description = desc ? xstrdup(desc) : NULL;
    if (!time_member(body, "valid_from", &a->valid_from, err, errlen) ||
        !time_member(body, "valid_until", &a->valid_until, err, errlen))
        return false;
    json_t *rate = json_object_get(body, "rate_per_minute");
    if (rate && !json_is_null(rate)) {
        if (!json_is_integer(rate) || json_integer_value(rate) < 0 ||
            json_integer_value(rate) > XC_AG_RATE_MAX) {
            snprintf(err, errlen, "rate_per_minute must be a whole number from 0 (no limit) to %d",
                     XC_AG_RATE_MAX);
            return false;
        }
        a->rate_per_minute = (int)json_integer_value(rate);
    }
    if (!a->personal && (a->consent_scope || a->resident_attr)) {
        snprintf(err, errlen, "consent_scope and resident_attr apply to personal data only");
        return false;
    }
    xc_agreement_defaults(a);
    return xc_agreement_check(a, err, errlen);
}
