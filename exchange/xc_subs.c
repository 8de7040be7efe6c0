/*
 * Subscriptions as documents: the checks Orion makes on a subscription
 * (its descriptions where Orion has one; docs: "Subscription payload
 * validations" in Orion's NGSIv2 implementation notes), the shape that is
 * stored and the shape GET shows, and the matching rules that need no
 * database (service path, entities, alteration types, condition attrs).
 */
#include <ctype.h>

#include "core/log.h"
#include "core/pool.h"
#include "core/url.h"
#include "exchange/xc_geo.h"
#include "exchange/xc_q.h"
#include "exchange/xc_subs.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        goto fail;                                                                                 \
    } while (0)

/* ---- time ---- */

bool xc_sub_time_parse(const char *s, int64_t *ms)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, frac_ms = 0;
    if (!s || strlen(s) < 10 || !core_parse_digits(s, 4, &y) || s[4] != '-' ||
        !core_parse_digits(s + 5, 2, &mo) || s[7] != '-' || !core_parse_digits(s + 8, 2, &d))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > core_days_in_month(y, mo))
        return false;
    const char *p = s + 10;
    if (*p == 'T') {
        p++;
        if (!core_parse_digits(p, 2, &h))
            return false;
        p += 2;
        /* hh, hh:mm, hh:mm:ss, hhmm, hhmmss, each with an optional fraction
         * after the seconds */
        bool colon = *p == ':';
        if (colon || isdigit((unsigned char)*p)) {
            p += colon;
            if (!core_parse_digits(p, 2, &mi))
                return false;
            p += 2;
            if ((colon && *p == ':') || (!colon && isdigit((unsigned char)*p))) {
                p += colon;
                if (!core_parse_digits(p, 2, &sec))
                    return false;
                p += 2;
                if (*p == '.') {
                    p++;
                    int n = 0;
                    while (isdigit((unsigned char)p[n]))
                        n++;
                    if (n == 0 || n > 9)
                        return false;
                    int scale = 100;
                    for (int i = 0; i < n && i < 3; i++, scale /= 10)
                        frac_ms += (p[i] - '0') * scale;
                    p += n;
                }
            }
        }
        if (h > 23 || mi > 59 || sec > 59)
            return false;
    }
    int64_t off_s = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        if (p == s + 10)
            return false; /* ISO 8601: a zone follows a time, never a bare date */
        int sign = *p == '-' ? -1 : 1, oh, om = 0;
        p++;
        if (!core_parse_digits(p, 2, &oh))
            return false;
        p += 2;
        if (*p == ':') {
            if (!core_parse_digits(p + 1, 2, &om))
                return false;
            p += 3;
        } else if (isdigit((unsigned char)*p)) {
            if (!core_parse_digits(p, 2, &om))
                return false;
            p += 2;
        }
        if (oh > 23 || om > 59)
            return false;
        off_s = sign * (oh * 3600 + om * 60);
    }
    if (*p)
        return false;
    int64_t t = core_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off_s;
    *ms = t * 1000 + frac_ms;
    return true;
}

void xc_sub_time_format(int64_t ms, char out[32])
{
    int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int msec = (int)(ms - sec * 1000);
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    /* years past 9999 do not come from the parser; the wide buffer only
     * keeps the compiler's truncation analysis quiet */
    char buf[96];
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, msec);
    xsnprintf(out, 32, "%s", buf);
}

/* ---- parsing ---- */

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void xc_sub_release(struct xc_sub *s)
{
    for (size_t i = 0; i < s->nent; i++) {
        struct xc_sub_entity *e = &s->ent[i];
        if (e->id_pattern)
            regfree(&e->id_re);
        if (e->type_pattern)
            regfree(&e->type_re);
        free(e->id);
        free(e->id_pattern);
        free(e->type);
        free(e->type_pattern);
    }
    free(s->ent);
    free_list(s->cond_attrs, s->ncond);
    free_list(s->attrs, s->nattrs);
    free_list(s->metadata, s->nmetadata);
    free(s->service_path);
    free(s->q);
    free(s->mq);
    free(s->georel);
    free(s->geometry);
    free(s->coords);
    free(s->url);
    free(s->method);
    json_decref(s->headers);
    json_decref(s->qs);
    json_decref(s->spec);
    memset(s, 0, sizeof *s);
}

/* Every member of obj is in allowed (or in ignored, which is dropped
 * quietly: the counters a client may send back from a GET). */
static bool known_members(const json_t *obj, const char *const *allowed, const char *const *ignored,
                          const char *where, char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, key) == 0;
        for (const char *const *a = ignored; a && *a && !ok; a++)
            ok = strcmp(*a, key) == 0;
        if (!ok) {
            snprintf(err, errlen, "unrecognized field in subscription: /%s%s/", where, key);
            return false;
        }
    }
    return true;
}

/* A non-empty string member, or absent (*out NULL). */
static bool opt_string(const json_t *obj, const char *key, const char *what, const char **out,
                       char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v)
        return true;
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s is not a string", what);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

/* A list of attribute or metadata names: an array of at most
 * XC_SUB_ATTRS_MAX valid names (duplicates dropped). */
static bool name_list(const json_t *v, const char *what, char ***out, size_t *n, char *err,
                      size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!json_is_array(v)) {
        snprintf(err, errlen, "%s is not an array", what);
        return false;
    }
    if (json_array_size(v) > XC_SUB_ATTRS_MAX) {
        snprintf(err, errlen, "%s has more than %d elements", what, XC_SUB_ATTRS_MAX);
        return false;
    }
    char **list = xcalloc(json_array_size(v) + 1, sizeof *list);
    size_t count = 0, i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        const char *name = json_string_value(item);
        if (!name) {
            snprintf(err, errlen, "%s element is not a string", what);
            goto fail;
        }
        const char *why = xc_check_name(name);
        if (why && strcmp(name, "*") != 0) {
            snprintf(err, errlen, "%s element: %s", what,
                     strcmp(why, "empty") == 0 ? "empty name" : why);
            goto fail;
        }
        bool dup = false;
        for (size_t k = 0; k < count && !dup; k++)
            dup = strcmp(list[k], name) == 0;
        if (!dup)
            list[count++] = xstrdup(name);
    }
    *out = list;
    *n = count;
    return true;
fail:
    free_list(list, count);
    return false;
}

static json_t *list_json(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static bool compile_pattern(const char *pattern, regex_t *re)
{
    return regcomp(re, pattern, REG_EXTENDED | REG_NOSUB) == 0;
}

static bool parse_entities(const json_t *v, struct xc_sub *s, json_t *out, char *err, size_t errlen)
{
    static const char *const keys[] = {"id", "idPattern", "type", "typePattern", NULL};
    if (!json_is_array(v)) {
        snprintf(err, errlen, "/entities/ is not an array");
        return false;
    }
    if (json_array_size(v) == 0) {
        snprintf(err, errlen, "no subject entities specified");
        return false;
    }
    if (json_array_size(v) > XC_SUB_ENTITIES_MAX) {
        snprintf(err, errlen, "/entities/ has more than %d elements", XC_SUB_ENTITIES_MAX);
        return false;
    }
    s->ent = xcalloc(json_array_size(v), sizeof *s->ent);
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!json_is_object(item)) {
            snprintf(err, errlen, "/entities/ vector item is not an object");
            return false;
        }
        if (!known_members(item, keys, NULL, "subject/entities/", err, errlen))
            return false;
        bool has_id = json_object_get(item, "id"), has_idp = json_object_get(item, "idPattern");
        if (!has_id && !has_idp) {
            snprintf(err, errlen, "/entities/ vector item does not have /id/ nor /idPattern/");
            return false;
        }
        if (has_id && has_idp) {
            snprintf(err, errlen, "/entities/ vector item has both /id/ and /idPattern/");
            return false;
        }
        if (json_object_get(item, "type") && json_object_get(item, "typePattern")) {
            snprintf(err, errlen, "/entities/ element has both /type/ and /typePattern/");
            return false;
        }
        const char *id, *idp, *type, *typep, *why;
        if (!opt_string(item, "id", "/entities/ vector item /id/", &id, err, errlen) ||
            !opt_string(item, "idPattern", "/entities/ vector item /idPattern/", &idp, err,
                        errlen) ||
            !opt_string(item, "type", "/entities/ vector item type", &type, err, errlen) ||
            !opt_string(item, "typePattern", "/entities/ vector item /typePattern/", &typep, err,
                        errlen))
            return false;
        if (id && (why = xc_check_name(id))) {
            snprintf(err, errlen,
                     strcmp(why, "empty") == 0      ? "/entities/ element id is empty"
                     : strcmp(why, "too long") == 0 ? "max id length exceeded in /entities/ "
                                                      "vector item /id/"
                                                    : "forbidden characters in /entities/ vector "
                                                      "item /id/");
            return false;
        }
        if (type && (why = xc_check_name(type))) {
            snprintf(err, errlen,
                     strcmp(why, "empty") == 0 ? "entity type length: 0, min length supported: 1"
                     : strcmp(why, "too long") == 0
                         ? "max type length exceeded in /entities/ vector item /type/"
                         : "forbidden characters in /entities/ vector item /type/");
            return false;
        }
        struct xc_sub_entity *e = &s->ent[s->nent];
        if (idp) {
            if (!*idp) {
                snprintf(err, errlen, "/entities/ vector item /idPattern/ is empty");
                return false;
            }
            if (strlen(idp) > XC_PATTERN_MAX || !compile_pattern(idp, &e->id_re)) {
                snprintf(err, errlen, "Invalid regex for entity idPattern");
                return false;
            }
            e->id_pattern = xstrdup(idp);
        }
        if (typep) {
            if (!*typep) {
                s->nent++; /* so release frees the id pattern compiled above */
                snprintf(err, errlen, "/entities/ vector item /typePattern/ is empty");
                return false;
            }
            if (strlen(typep) > XC_PATTERN_MAX || !compile_pattern(typep, &e->type_re)) {
                s->nent++;
                snprintf(err, errlen, "Invalid regex for entity typePattern");
                return false;
            }
            e->type_pattern = xstrdup(typep);
        }
        e->id = id ? xstrdup(id) : NULL;
        e->type = type ? xstrdup(type) : NULL;
        s->nent++;
        json_t *o = json_object();
        json_object_set_new(o, id ? "id" : "idPattern", json_string(id ? id : idp));
        if (type || typep)
            json_object_set_new(o, type ? "type" : "typePattern", json_string(type ? type : typep));
        json_array_append_new(out, o);
    }
    return true;
}

/* Checks q/mq and the geo triple with the store's own compilers, so a
 * subscription never holds an expression the matcher cannot evaluate. */
static bool check_expression(const struct xc_sub *s, char *err, size_t errlen)
{
    struct core_pool *pool = core_pool_new();
    struct xc_sql sql;
    xc_sql_init(&sql, pool);
    bool ok = true;
    if (s->q)
        ok = xc_q_compile(&sql, s->q, XC_Q_ATTRS, err, errlen);
    if (ok && s->mq)
        ok = xc_q_compile(&sql, s->mq, XC_Q_METADATA, err, errlen);
    if (ok && s->georel) {
        bool present = false;
        const char *order = NULL;
        ok = xc_geo_compile_expression(&sql, s->georel, s->geometry, s->coords, &present, &order,
                                       err, errlen);
    }
    if (ok && !xc_sql_ok(&sql)) {
        snprintf(err, errlen, "expression is too complex");
        ok = false;
    }
    xc_sql_release(&sql);
    core_pool_free(pool);
    return ok;
}

static bool parse_expression(const json_t *v, struct xc_sub *s, json_t *out, char *err,
                             size_t errlen)
{
    static const char *const keys[] = {"q", "mq", "georel", "geometry", "coords", NULL};
    if (!json_is_object(v)) {
        snprintf(err, errlen, "expression is not an object");
        return false;
    }
    if (json_object_size(v) == 0) {
        snprintf(err, errlen, "expression is empty");
        return false;
    }
    if (!known_members(v, keys, NULL, "subject/condition/expression/", err, errlen))
        return false;
    char **slot[] = {&s->q, &s->mq, &s->georel, &s->geometry, &s->coords};
    for (size_t i = 0; i < ARRAY_SIZE(slot); i++) {
        const char *str;
        if (!opt_string(v, keys[i], keys[i], &str, err, errlen))
            return false;
        if (!str)
            continue;
        if (!*str) {
            snprintf(err, errlen, "%s is empty", keys[i]);
            return false;
        }
        if (strlen(str) > XC_SUB_EXPR_MAX) {
            snprintf(err, errlen, "%s is longer than %d bytes", keys[i], XC_SUB_EXPR_MAX);
            return false;
        }
        *slot[i] = xstrdup(str);
        json_object_set_new(out, keys[i], json_string(str));
    }
    bool any = s->georel || s->geometry || s->coords;
    bool all = s->georel && s->geometry && s->coords;
    if (any && !all) {
        snprintf(err, errlen,
                 "partial geo expression: geometry, georel and coords have to be provided "
                 "together");
        return false;
    }
    return check_expression(s, err, errlen);
}

static bool parse_condition(const json_t *v, struct xc_sub *s, json_t *out, char *err,
                            size_t errlen)
{
    static const char *const keys[] = {"attrs", "expression", "alterationTypes",
                                       "notifyOnMetadataChange", NULL};
    static const struct {
        const char *name;
        unsigned bit;
    } alts[] = {{"entityCreate", XC_ALT_CREATE},
                {"entityChange", XC_ALT_CHANGE},
                {"entityUpdate", XC_ALT_UPDATE},
                {"entityDelete", XC_ALT_DELETE}};
    if (!json_is_object(v)) {
        snprintf(err, errlen, "condition is not an object");
        return false;
    }
    if (json_object_size(v) == 0) {
        snprintf(err, errlen, "condition is empty");
        return false;
    }
    if (!known_members(v, keys, NULL, "subject/condition/", err, errlen))
        return false;
    json_t *attrs = json_object_get(v, "attrs");
    if (attrs && !name_list(attrs, "attrs", &s->cond_attrs, &s->ncond, err, errlen))
        return false;
    json_object_set_new(out, "attrs", list_json(s->cond_attrs, s->ncond));
    json_t *expr = json_object_get(v, "expression");
    if (expr) {
        json_t *eo = json_object();
        json_object_set_new(out, "expression", eo);
        if (!parse_expression(expr, s, eo, err, errlen))
            return false;
    }
    json_t *alt = json_object_get(v, "alterationTypes");
    if (alt) {
        if (!json_is_array(alt)) {
            snprintf(err, errlen, "alterationTypes is not an array");
            return false;
        }
        if (json_array_size(alt) > ARRAY_SIZE(alts) * 2) {
            snprintf(err, errlen, "alterationTypes has too many elements");
            return false;
        }
        s->alteration = 0;
        json_t *ao = json_array(), *item;
        json_object_set_new(out, "alterationTypes", ao);
        size_t i;
        json_array_foreach(alt, i, item)
        {
            const char *name = json_string_value(item);
            size_t k = 0;
            while (name && k < ARRAY_SIZE(alts) && strcmp(alts[k].name, name) != 0)
                k++;
            if (!name || k == ARRAY_SIZE(alts)) {
                snprintf(err, errlen,
                         "alterationTypes element is not one of entityCreate, "
                         "entityChange, entityUpdate, entityDelete");
                return false;
            }
            if (!(s->alteration & alts[k].bit))
                json_array_append_new(ao, json_string(name));
            s->alteration |= alts[k].bit;
        }
        if (s->alteration == 0)
            s->alteration = XC_ALT_CREATE | XC_ALT_CHANGE; /* [] is the default, as absent */
    }
    json_t *md = json_object_get(v, "notifyOnMetadataChange");
    if (md) {
        if (!json_is_boolean(md)) {
            snprintf(err, errlen, "notifyOnMetadataChange is not a boolean");
            return false;
        }
        json_object_set(out, "notifyOnMetadataChange", md);
    }
    return true;
}

static bool parse_subject(const json_t *v, struct xc_sub *s, json_t *out, char *err, size_t errlen)
{
    static const char *const keys[] = {"entities", "condition", NULL};
    if (!json_is_object(v)) {
        snprintf(err, errlen, "subject is not an object");
        return false;
    }
    if (!known_members(v, keys, NULL, "subject/", err, errlen))
        return false;
    json_t *ents = json_object_get(v, "entities");
    if (!ents) {
        snprintf(err, errlen, "no subject entities specified");
        return false;
    }
    json_t *eo = json_array();
    json_object_set_new(out, "entities", eo);
    if (!parse_entities(ents, s, eo, err, errlen))
        return false;
    json_t *co = json_object();
    json_object_set_new(out, "condition", co);
    json_t *cond = json_object_get(v, "condition");
    if (cond)
        return parse_condition(cond, s, co, err, errlen);
    json_object_set_new(co, "attrs", json_array());
    return true;
}

/* A header or query name: an HTTP token, so it cannot split the request. */
static bool token_ok(const char *s)
{
    if (!*s || strlen(s) > XC_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return false;
    return true;
}

static bool value_ok(const char *s)
{
    if (strlen(s) > XC_SUB_VALUE_MAX)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* httpCustom headers or qs: a non-empty object of string values. */
static bool parse_pairs(const json_t *v, const char *name, json_t **out, char *err, size_t errlen)
{
    if (!json_is_object(v)) {
        snprintf(err, errlen, "notification httpCustom %s is not an object", name);
        return false;
    }
    if (json_object_size(v) == 0) {
        snprintf(err, errlen, "notification httpCustom %s is empty", name);
        return false;
    }
    if (json_object_size(v) > XC_SUB_PAIRS_MAX) {
        snprintf(err, errlen, "notification httpCustom %s has more than %d members", name,
                 XC_SUB_PAIRS_MAX);
        return false;
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        const char *str = json_string_value(val);
        if (!str) {
            snprintf(err, errlen, "notification httpCustom %s element is not a string", name);
            return false;
        }
        if (xc_has_forbidden(key) || xc_has_forbidden(str)) {
            snprintf(err, errlen, "forbidden characters in custom notification httpCustom %s",
                     name);
            return false;
        }
        bool ok = strcmp(name, "headers") == 0 ? token_ok(key) : *key && value_ok(key);
        if (!ok || !value_ok(str)) {
            snprintf(err, errlen, "invalid name or value in notification httpCustom %s", name);
            return false;
        }
    }
    *out = json_deep_copy(v);
    return true;
}

static bool check_url(const char *url, bool custom, char *err, size_t errlen)
{
    struct core_url u;
    if (xc_has_forbidden(url)) {
        snprintf(err, errlen,
                 custom ? "forbidden characters in custom /url/"
                        : "forbidden characters in http field /url/");
        return false;
    }
    if (strlen(url) > XC_SUB_URL_MAX) {
        snprintf(err, errlen, "notification url is longer than %d bytes", XC_SUB_URL_MAX);
        return false;
    }
    if (core_url_check(url, 0, &u) != NULL) {
        snprintf(err, errlen,
                 custom ? "invalid custom /url/" : "Invalid URL parsing notification url");
        return false;
    }
    return true;
}

static bool parse_callback(const json_t *v, bool custom, struct xc_sub *s, json_t *out, char *err,
                           size_t errlen)
{
    static const char *const http_keys[] = {"url", NULL};
    static const char *const custom_keys[] = {"url", "headers", "qs", "method", NULL};
    static const char *const methods[] = {"GET",  "PUT",     "POST",  "DELETE", "PATCH",
                                          "HEAD", "OPTIONS", "TRACE", NULL};
    const char *what = custom ? "httpCustom" : "http";
    if (!json_is_object(v)) {
        snprintf(err, errlen, "%s notification is not an object", what);
        return false;
    }
    /* a custom payload needs Orion's ${...} templates, which this broker
     * does not implement: refused rather than silently sent differently */
    if (custom && (json_object_get(v, "payload") || json_object_get(v, "json") ||
                   json_object_get(v, "ngsi"))) {
        snprintf(err, errlen,
                 "custom notification payloads (payload, json, ngsi) are not "
                 "supported by this broker");
        return false;
    }
    if (!known_members(v, custom ? custom_keys : http_keys, NULL,
                       custom ? "notification/httpCustom/" : "notification/http/", err, errlen))
        return false;
    const char *url;
    char uwhat[40];
    snprintf(uwhat, sizeof uwhat, "url %s notification", what);
    if (!opt_string(v, "url", uwhat, &url, err, errlen))
        return false;
    if (!url) {
        snprintf(err, errlen, "mandatory field /url/ missing in %s notification", what);
        return false;
    }
    if (!check_url(url, custom, err, errlen))
        return false;
    s->custom = custom;
    s->url = xstrdup(url);
    json_object_set_new(out, "url", json_string(url));
    if (!custom)
        return true;
    json_t *h = json_object_get(v, "headers"), *q = json_object_get(v, "qs");
    if (h) {
        if (!parse_pairs(h, "headers", &s->headers, err, errlen))
            return false;
        json_object_set(out, "headers", s->headers);
    }
    if (q) {
        if (!parse_pairs(q, "qs", &s->qs, err, errlen))
            return false;
        json_object_set(out, "qs", s->qs);
    }
    const char *method;
    if (!opt_string(v, "method", "method httpCustom notification", &method, err, errlen))
        return false;
    if (method) {
        size_t k = 0;
        while (methods[k] && strcmp(methods[k], method) != 0)
            k++;
        if (!methods[k]) {
            snprintf(err, errlen, "unknown method httpCustom notification");
            return false;
        }
        s->method = xstrdup(method);
        json_object_set_new(out, "method", json_string(method));
    }
    return true;
}

static bool parse_notification(const json_t *v, struct xc_sub *s, json_t *out, char *err,
                               size_t errlen)
{
    static const char *const keys[] = {"attrs", "exceptAttrs", "attrsFormat", "metadata",
                                       "http",  "httpCustom",  "covered",     "onlyChangedAttrs",
                                       NULL};
    static const char *const counters[] = {
        "timesSent",   "lastNotification",  "lastSuccess",  "lastSuccessCode",
        "lastFailure", "lastFailureReason", "failsCounter", NULL};
    if (!json_is_object(v)) {
        snprintf(err, errlen, "notification is not an object");
        return false;
    }
    if (json_object_get(v, "mqtt") || json_object_get(v, "mqttCustom")) {
        snprintf(err, errlen, "MQTT notifications are not supported by this broker");
        return false;
    }
    if (!known_members(v, keys, counters, "notification/", err, errlen))
        return false;
    json_t *http = json_object_get(v, "http"), *custom = json_object_get(v, "httpCustom");
    if (http && custom) {
        snprintf(err, errlen, "notification has http and httpCustom");
        return false;
    }
    if (!http && !custom) {
        snprintf(err, errlen, "http notification is missing");
        return false;
    }
    json_t *attrs = json_object_get(v, "attrs"), *except = json_object_get(v, "exceptAttrs");
    if (attrs && except) {
        snprintf(err, errlen, "http notification has attrs and exceptAttrs");
        return false;
    }
    if (except) {
        if (!name_list(except, "exceptAttrs", &s->attrs, &s->nattrs, err, errlen))
            return false;
        if (s->nattrs == 0) {
            snprintf(err, errlen, "http notification has exceptAttrs is empty");
            return false;
        }
        s->except = true;
        json_object_set_new(out, "exceptAttrs", list_json(s->attrs, s->nattrs));
    } else {
        if (attrs && !name_list(attrs, "attrs", &s->attrs, &s->nattrs, err, errlen))
            return false;
        json_object_set_new(out, "attrs", list_json(s->attrs, s->nattrs));
    }
    json_t *only = json_object_get(v, "onlyChangedAttrs");
    if (only && !json_is_boolean(only)) {
        snprintf(err, errlen, "onlyChangedAttrs is not a boolean");
        return false;
    }
    s->only_changed = json_is_true(only);
    json_object_set_new(out, "onlyChangedAttrs", json_boolean(s->only_changed));
    const char *fmt;
    if (!opt_string(v, "attrsFormat", "attrsFormat", &fmt, err, errlen))
        return false;
    if (!fmt || strcmp(fmt, "normalized") == 0)
        s->format = XC_NORMALIZED;
    else if (strcmp(fmt, "keyValues") == 0)
        s->format = XC_KEYVALUES;
    else if (strcmp(fmt, "values") == 0)
        s->format = XC_VALUES;
    else {
        snprintf(err, errlen,
                 "invalid attrsFormat, accepted values: normalized, keyValues, values");
        return false;
    }
    json_object_set_new(out, "attrsFormat", json_string(fmt ? fmt : "normalized"));
    json_t *md = json_object_get(v, "metadata");
    if (md) {
        if (!name_list(md, "metadata", &s->metadata, &s->nmetadata, err, errlen))
            return false;
        s->has_metadata = true;
        json_object_set_new(out, "metadata", list_json(s->metadata, s->nmetadata));
    }
    json_t *co = json_object();
    json_object_set_new(out, custom ? "httpCustom" : "http", co);
    if (!parse_callback(custom ? custom : http, custom != NULL, s, co, err, errlen))
        return false;
    json_t *covered = json_object_get(v, "covered");
    if (covered) {
        if (!json_is_boolean(covered)) {
            snprintf(err, errlen, "covered is not a boolean");
            return false;
        }
        json_object_set(out, "covered", covered);
    }
    return true;
}

/* A whole number member in [0, max], or absent. */
static bool opt_count(const json_t *doc, const char *key, long long max, long long *out,
                      json_t *spec, char *err, size_t errlen)
{
    json_t *v = json_object_get(doc, key);
    *out = 0;
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max) {
        snprintf(err, errlen, "%s must be a whole number from 0 to %lld", key, max);
        return false;
    }
    *out = json_integer_value(v);
    json_object_set_new(spec, key, json_integer(*out));
    return true;
}

bool xc_sub_parse(const json_t *doc, const char *service_path, struct xc_sub *out, char *err,
                  size_t errlen)
{
    static const char *const keys[] = {"description", "subject",    "notification",  "expires",
                                       "status",      "throttling", "maxFailsLimit", NULL};
    memset(out, 0, sizeof *out);
    out->alteration = XC_ALT_CREATE | XC_ALT_CHANGE;
    out->service_path = xstrdup(service_path);
    out->spec = json_object();
    if (!json_is_object(doc))
        FAIL("Errors found in incoming JSON buffer");
    if (json_object_size(doc) == 0)
        FAIL("empty payload");
    if (!known_members(doc, keys, NULL, "", err, errlen))
        goto fail;
    const char *desc;
    if (!opt_string(doc, "description", "description", &desc, err, errlen))
        goto fail;
    if (desc) {
        if (strlen(desc) > XC_SUB_DESC_MAX)
            FAIL("max description length exceeded");
        if (xc_has_forbidden(desc))
            FAIL("forbidden characters in description");
        for (const char *c = desc; *c; c++)
            if ((unsigned char)*c < 0x20)
                FAIL("forbidden characters in description");
        json_object_set_new(out->spec, "description", json_string(desc));
    }
    json_t *subject = json_object_get(doc, "subject");
    if (!subject)
        FAIL("no subject for subscription specified");
    json_t *so = json_object();
    json_object_set_new(out->spec, "subject", so);
    if (!parse_subject(subject, out, so, err, errlen))
        goto fail;
    json_t *notification = json_object_get(doc, "notification");
    if (!notification)
        FAIL("no notification for subscription specified");
    json_t *no = json_object();
    json_object_set_new(out->spec, "notification", no);
    if (!parse_notification(notification, out, no, err, errlen))
        goto fail;
    const char *expires;
    if (!opt_string(doc, "expires", "expires", &expires, err, errlen))
        goto fail;
    if (expires && *expires) { /* "" is Orion's way to say "permanent" */
        if (!xc_sub_time_parse(expires, &out->expires_ms))
            FAIL("expires has an invalid format");
        out->has_expires = true;
    }
    const char *status;
    if (!opt_string(doc, "status", "status", &status, err, errlen))
        goto fail;
    if (!status || strcmp(status, "active") == 0)
        out->status = XC_SUB_ACTIVE;
    else if (strcmp(status, "inactive") == 0)
        out->status = XC_SUB_INACTIVE;
    else if (strcmp(status, "oneshot") == 0)
        out->status = XC_SUB_ONESHOT;
    else
        FAIL("status is not valid: it has to be either active or inactive");
    /* up to ten years: a bound, not a policy */
    if (!opt_count(doc, "throttling", 10LL * 366 * 86400, &out->throttling, out->spec, err,
                   errlen) ||
        !opt_count(doc, "maxFailsLimit", 1000000000LL, &out->max_fails, out->spec, err, errlen))
        goto fail;
    return true;
fail:
    xc_sub_release(out);
    return false;
}

/* ---- matching ---- */

bool xc_sub_path_match(const char *sub_path, const char *path)
{
    size_t n = strlen(sub_path);
    if (n >= 2 && strcmp(sub_path + n - 2, "/#") == 0) {
        size_t base = n - 2; /* "/a/#" -> "/a"; "/#" -> "" */
        if (base == 0)
            return true;
        return strncmp(path, sub_path, base) == 0 && (path[base] == '\0' || path[base] == '/');
    }
    return strcmp(sub_path, path) == 0;
}

bool xc_sub_entity_match(const struct xc_sub *s, const char *id, const char *type)
{
    for (size_t i = 0; i < s->nent; i++) {
        const struct xc_sub_entity *e = &s->ent[i];
        bool id_ok = e->id ? strcmp(e->id, id) == 0 : regexec(&e->id_re, id, 0, NULL, 0) == 0;
        if (!id_ok)
            continue;
        if (e->type && strcmp(e->type, type) != 0)
            continue;
        if (e->type_pattern && regexec(&e->type_re, type, 0, NULL, 0) != 0)
            continue;
        return true;
    }
    return false;
}

bool xc_sub_condition_match(const struct xc_sub *s, const struct xc_change *ch)
{
    unsigned kind = ch->entity_created   ? XC_ALT_CREATE
                    : ch->entity_deleted ? XC_ALT_DELETE
                    : ch->nchanged       ? XC_ALT_CHANGE | XC_ALT_UPDATE
                                         : XC_ALT_UPDATE;
    if (!(s->alteration & kind))
        return false;
    /* a deletion takes every attribute with it */
    if (ch->entity_deleted || s->ncond == 0)
        return true;
    for (size_t i = 0; i < s->ncond; i++)
        for (size_t k = 0; k < ch->nchanged; k++)
            if (strcmp(s->cond_attrs[i], ch->changed[k]) == 0)
                return true;
    return false;
}

/* ---- what GET shows ---- */

json_t *xc_sub_render(const struct xc_sub_row *row)
{
    json_error_t jerr;
    json_t *spec = json_loads(row->spec, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(spec)) {
        core_log_bug("subscription %s holds a spec that is not a JSON object", row->id);
        json_decref(spec);
        return NULL;
    }
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(row->id));
    json_t *v;
    if ((v = json_object_get(spec, "description")))
        json_object_set(o, "description", v);
    if ((v = json_object_get(spec, "subject")))
        json_object_set(o, "subject", v);
    json_t *n = json_object_get(spec, "notification");
    n = json_is_object(n) ? json_deep_copy(n) : json_object();
    /* Orion shows each counter once it has something to say */
    if (row->times_sent > 0)
        json_object_set_new(n, "timesSent", json_integer(row->times_sent));
    if (row->last_notification)
        json_object_set_new(n, "lastNotification", json_string(row->last_notification));
    if (row->last_failure)
        json_object_set_new(n, "lastFailure", json_string(row->last_failure));
    if (row->last_failure_reason)
        json_object_set_new(n, "lastFailureReason", json_string(row->last_failure_reason));
    if (row->last_success)
        json_object_set_new(n, "lastSuccess", json_string(row->last_success));
    if (row->last_success_code > 0)
        json_object_set_new(n, "lastSuccessCode", json_integer(row->last_success_code));
    if (row->fails_counter > 0)
        json_object_set_new(n, "failsCounter", json_integer(row->fails_counter));
    json_object_set_new(o, "notification", n);
    if (row->expires)
        json_object_set_new(o, "expires", json_string(row->expires));
    json_object_set_new(o, "status", json_string(row->status));
    if ((v = json_object_get(spec, "throttling")))
        json_object_set(o, "throttling", v);
    if ((v = json_object_get(spec, "maxFailsLimit")))
        json_object_set(o, "maxFailsLimit", v);
    json_decref(spec);
    return o;
}
