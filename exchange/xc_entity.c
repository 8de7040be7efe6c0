/*
 * Entities and attributes: Orion's defaults (attribute types from values,
 * "Thing" for an entity without type, metadata {} everywhere), its checks on
 * names and string values, and the four ways an update merges into what is
 * stored.
 */
#include "core/strbuf.h"
#include "exchange/xc_entity.h"

#define DEPTH_MAX 32

const char *xc_default_type(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return "Text";
    case JSON_INTEGER:
    case JSON_REAL:
        return "Number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "Boolean";
    case JSON_OBJECT:
    case JSON_ARRAY:
        return "StructuredValue";
    case JSON_NULL:
        return "None";
    }
    return "None";
}

/* Orion refuses its forbidden characters in string values, at any depth. */
static bool value_clean(const json_t *v, int depth)
{
    if (depth > DEPTH_MAX)
        return false;
    if (json_is_string(v))
        return !xc_has_forbidden(json_string_value(v));
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_array(v)) {
        json_array_foreach(v, i, x) if (!value_clean(x, depth + 1)) return false;
    } else if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x)
        {
            if (xc_has_forbidden(k) || !value_clean(x, depth + 1))
                return false;
        }
    }
    return true;
}

/* A number the store can give back as it was: finite, and (PostgreSQL
 * prints a large whole number without exponent) inside the 64-bit integer
 * range that JSON readers, jansson among them, accept. */
static bool number_ok(const json_t *v, int depth)
{
    if (depth > DEPTH_MAX)
        return false;
    size_t i;
    const char *k;
    json_t *x;
    if (json_is_real(v)) {
        double d = json_real_value(v);
        return d == d && d > -9.2e18 && d < 9.2e18;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, x) if (!number_ok(x, depth + 1)) return false;
    } else if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x) if (!number_ok(x, depth + 1)) return false;
    }
    return true;
}

/* {"type", "value"} of a metadata item or an attribute, from in (an object
 * when !key_values). */
static json_t *typed_value(const json_t *in, bool key_values, bool is_md, const char **why)
{
    const json_t *value = in, *type = NULL;
    if (!key_values) {
        if (!json_is_object(in)) {
            *why = is_md ? "metadata must be a JSON object"
                         : "attribute must be a JSON object, unless keyValues option is used";
            return NULL;
        }
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)in, k, x)
        {
            if (strcmp(k, "value") && strcmp(k, "type") && (is_md || strcmp(k, "metadata"))) {
                *why = is_md ? "unrecognized property for metadata"
                             : "unrecognized property for context attribute";
                return NULL;
            }
        }
        value = json_object_get(in, "value");
        type = json_object_get(in, "type");
        if (!value)
            value = json_null();
    }
    if (type && !json_is_string(type)) {
        *why =
            is_md ? "invalid JSON type for metadata type" : "invalid JSON type for attribute type";
        return NULL;
    }
    const char *tname = type ? json_string_value(type) : xc_default_type(value);
    if (xc_check_name(tname)) {
        *why =
            is_md ? "Invalid characters in metadata type" : "Invalid characters in attribute type";
        return NULL;
    }
    if (strcmp(tname, "TextUnrestricted") != 0 && !value_clean(value, 0)) {
        *why = is_md ? "Invalid characters in metadata value"
                     : "Invalid characters in attribute value";
        return NULL;
    }
    if (!number_ok(value, 0)) {
        *why = "numbers must be finite and within +-9.2e18";
        return NULL;
    }
    json_t *out = json_object();
    json_object_set_new(out, "type", json_string(tname));
    json_object_set(out, "value", (json_t *)value);
    return out;
}

json_t *xc_attr_parse(const json_t *in, bool key_values, const char **why)
{
    json_t *a = typed_value(in, key_values, false, why);
    if (!a)
        return NULL;
    json_t *md = json_object();
    const json_t *min = key_values ? NULL : json_object_get(in, "metadata");
    if (min && !json_is_object(min)) {
        *why = "metadata must be a JSON object";
        goto fail;
    }
    const char *k;
    json_t *x;
    if (min) {
        if (json_object_size(min) > XC_LIST_MAX) {
            *why = "too many metadata";
            goto fail;
        }
        json_object_foreach((json_t *)min, k, x)
        {
            if (xc_check_name(k)) {
                *why = "Invalid characters in metadata name";
                goto fail;
            }
            if (!strcmp(k, "dateCreated") || !strcmp(k, "dateModified")) {
                *why =
                    "metadata name is reserved: dateCreated and dateModified are system metadata";
                goto fail;
            }
            json_t *m = typed_value(x, false, true, why);
            if (!m)
                goto fail;
            json_object_set_new(md, k, m);
        }
    }
    json_object_set_new(a, "metadata", md);
    return a;
fail:
    json_decref(md);
    json_decref(a);
    return NULL;
}

json_t *xc_attrs_parse(const json_t *obj, bool key_values, const char **why)
{
    if (!json_is_object(obj)) {
        *why = "the attributes must be a JSON object";
        return NULL;
    }
    size_t count = json_object_size(obj);
    count -= (json_object_get(obj, "id") != NULL) + (json_object_get(obj, "type") != NULL);
    if (count > XC_ATTRS_MAX) {
        *why = "too many attributes";
        return NULL;
    }
    json_t *out = json_object();
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)obj, k, x)
    {
        if (!strcmp(k, "id") || !strcmp(k, "type"))
            continue;
        if (xc_check_name(k)) {
            *why = "Invalid characters in attribute name";
            goto fail;
        }
        if (!strcmp(k, "dateCreated") || !strcmp(k, "dateModified") || !strcmp(k, "dateExpires")) {
            *why = "attribute name is reserved: dateCreated, dateModified and dateExpires are "
                   "system attributes (dateExpires, transient entities, is not supported)";
            goto fail;
        }
        json_t *a = xc_attr_parse(x, key_values, why);
        if (!a)
            goto fail;
        json_object_set_new(out, k, a);
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

bool xc_entity_parse(const json_t *body, bool key_values, const char **id, const char **type,
                     json_t **attrs, const char **why)
{
    if (!json_is_object(body)) {
        *why = "the entity must be a JSON object";
        return false;
    }
    const json_t *jid = json_object_get(body, "id"), *jtype = json_object_get(body, "type");
    if (!jid) {
        *why = "entity id is missing";
        return false;
    }
    if (!json_is_string(jid)) {
        *why = "Invalid JSON type for entity id";
        return false;
    }
    const char *w = xc_check_name(json_string_value(jid));
    if (w) {
        *why = !strcmp(w, "too long") ? "entity id length: too long, max length supported: 256"
               : !strcmp(w, "empty")  ? "entity id length: 0, min length supported: 1"
                                      : "Invalid characters in entity id";
        return false;
    }
    if (jtype && !json_is_string(jtype)) {
        *why = "Invalid JSON type for entity type";
        return false;
    }
    *id = json_string_value(jid);
    *type = jtype ? json_string_value(jtype) : NULL;
    w = jtype ? xc_check_name(*type) : NULL;
    if (w) {
        *why = !strcmp(w, "too long") ? "entity type length: too long, max length supported: 256"
               : !strcmp(w, "empty")  ? "entity type length: 0, min length supported: 1"
                                      : "Invalid characters in entity type";
        return false;
    }
    *attrs = xc_attrs_parse(body, key_values, why);
    return *attrs != NULL;
}

void xc_attrs_stamp(json_t *attrs, const char *now)
{
    const char *k;
    json_t *a;
    json_object_foreach(attrs, k, a)
    {
        json_object_set_new(a, "dateCreated", json_string(now));
        json_object_set_new(a, "dateModified", json_string(now));
    }
}

static void add_name(struct core_pool *pool, const char ***list, size_t *n, size_t cap,
                     const char *name)
{
    if (!*list)
        *list = core_palloc(pool, (cap ? cap : 1) * sizeof **list);
    if (*n < cap)
        (*list)[(*n)++] = core_pstrdup(pool, name);
}

/* True when the attribute as the user sees it (type, value, metadata) differs. */
static bool attr_differs(const json_t *a, const json_t *b)
{
    return !json_equal(json_object_get(a, "type"), json_object_get(b, "type")) ||
           !json_equal(json_object_get(a, "value"), json_object_get(b, "value")) ||
           !json_equal(json_object_get(a, "metadata"), json_object_get(b, "metadata"));
}

/* Writes the new attribute over the old one, keeping its creation date. */
static void put_attr(json_t *stored, const char *name, const json_t *old, const json_t *in,
                     const char *now, bool overwrite)
{
    json_t *a = json_deep_copy(in);
    if (old) {
        json_t *created = json_object_get(old, "dateCreated");
        json_object_set_new(a, "dateCreated", created ? json_incref(created) : json_string(now));
        if (!overwrite) {
            /* Orion merges metadata on update unless told to overwrite */
            json_t *md = json_deep_copy(json_object_get(old, "metadata"));
            if (!json_is_object(md)) {
                json_decref(md);
                md = json_object();
            }
            json_object_update(md, json_object_get(in, "metadata"));
            json_object_set_new(a, "metadata", md);
        }
    } else {
        json_object_set_new(a, "dateCreated", json_string(now));
    }
    json_object_set_new(a, "dateModified", json_string(now));
    json_object_set_new(stored, name, a);
}

void xc_attrs_merge(struct core_pool *pool, json_t *stored, const json_t *incoming,
                    enum xc_merge mode, const char *now, bool overwrite, bool forced,
                    struct xc_merge_result *res)
{
    memset(res, 0, sizeof *res);
    size_t cap = json_object_size(incoming) + json_object_size(stored) + 1;
    const char *k;
    json_t *in, *old;
    if (mode == XC_MERGE_REPLACE) {
        void *tmp;
        json_object_foreach_safe(stored, tmp, k, old)
        {
            if (!json_object_get(incoming, k)) {
                add_name(pool, &res->changed, &res->nchanged, cap, k);
                json_object_del(stored, k);
            }
        }
    }
    json_object_foreach((json_t *)incoming, k, in)
    {
        old = json_object_get(stored, k);
        switch (mode) {
        case XC_MERGE_DELETE:
            if (!old) {
                add_name(pool, &res->missing, &res->nmissing, cap, k);
            } else {
                add_name(pool, &res->changed, &res->nchanged, cap, k);
                json_object_del(stored, k);
            }
            continue;
        case XC_MERGE_UPDATE:
            if (!old) {
                add_name(pool, &res->missing, &res->nmissing, cap, k);
                continue;
            }
            break;
        case XC_MERGE_VALUE: {
            if (!old) {
                add_name(pool, &res->missing, &res->nmissing, cap, k);
                continue;
            }
            json_t *before = json_incref(old);
            json_t *a = json_pack("{s:O, s:O, s:O}", "type", json_object_get(old, "type"), "value",
                                  json_object_get(in, "value"), "metadata",
                                  json_object_get(old, "metadata"));
            put_attr(stored, k, before, a, now, true);
            json_decref(a);
            if (forced || attr_differs(before, json_object_get(stored, k)))
                add_name(pool, &res->changed, &res->nchanged, cap, k);
            json_decref(before);
            continue;
        }
        case XC_MERGE_APPEND_STRICT:
            if (old) {
                add_name(pool, &res->missing, &res->nmissing, cap, k);
                continue;
            }
            break;
        case XC_MERGE_APPEND:
        case XC_MERGE_REPLACE:
            break;
        }
        json_t *before = old ? json_incref(old) : NULL;
        put_attr(stored, k, before, in, now, overwrite || mode == XC_MERGE_REPLACE);
        if (forced || !before || attr_differs(before, json_object_get(stored, k)))
            add_name(pool, &res->changed, &res->nchanged, cap, k);
        json_decref(before);
    }
}

const char *xc_name_list(struct core_pool *pool, const char *const *names, size_t n)
{
    /* descriptions stay readable: the first names, then how many more */
    enum { SHOWN = 20 };
    struct strbuf sb;
    strbuf_init(&sb, SHOWN * (XC_NAME_MAX + 2) + 64);
    strbuf_adds(&sb, "[ ");
    for (size_t i = 0; i < n && i < SHOWN; i++) {
        if (i)
            strbuf_adds(&sb, ", ");
        strbuf_adds(&sb, names[i]);
    }
    if (n > SHOWN)
        strbuf_addf(&sb, ", ... (%zu more)", n - SHOWN);
    strbuf_adds(&sb, " ]");
    const char *out = core_pstrdup(pool, sb.buf);
    strbuf_release(&sb);
    return out;
}

/* ---- rendering ---- */

static bool listed(const char *const *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], name))
            return true;
    return false;
}

static json_t *render_metadata(const json_t *a, const struct xc_render *r)
{
    json_t *out = json_object();
    const json_t *md = json_object_get(a, "metadata");
    bool all = !r->metadata || listed(r->metadata, r->nmetadata, "*");
    const char *k;
    json_t *m;
    json_object_foreach((json_t *)md, k, m)
    {
        if (all || listed(r->metadata, r->nmetadata, k)) {
            json_t *c = json_object();
            json_object_set(c, "type", json_object_get(m, "type"));
            json_object_set(c, "value", json_object_get(m, "value"));
            json_object_set_new(out, k, c);
        }
    }
    if (r->metadata) {
        static const char *const sys[] = {"dateCreated", "dateModified"};
        for (size_t i = 0; i < ARRAY_SIZE(sys); i++) {
            json_t *v = json_object_get(a, sys[i]);
            if (v && listed(r->metadata, r->nmetadata, sys[i]))
                json_object_set_new(out, sys[i],
                                    json_pack("{s:s, s:O}", "type", "DateTime", "value", v));
        }
    }
    return out;
}

/* Adds attribute name (stored a, or a system attribute when a is NULL and
 * sys_value is set) to out in r's format. */
static void render_one(json_t *out, const char *name, const json_t *a, const char *sys_value,
                       const struct xc_render *r)
{
    if (r->except && listed(r->except, r->nexcept, name))
        return;
    if (r->restricted && !listed(r->allow, r->nallow, name))
        return; /* outside the data-sharing agreement */
    json_t *value = a ? json_object_get(a, "value") : json_string(sys_value);
    if (a)
        json_incref(value);
    switch (r->format) {
    case XC_NORMALIZED: {
        json_t *o = json_object();
        json_object_set_new(o, "type",
                            a ? json_incref(json_object_get(a, "type")) : json_string("DateTime"));
        json_object_set_new(o, "value", value);
        json_object_set_new(o, "metadata", a ? render_metadata(a, r) : json_object());
        json_object_set_new(out, name, o);
        break;
    }
    case XC_KEYVALUES:
        json_object_set_new(out, name, value);
        break;
    case XC_VALUES:
        json_array_append_new(out, value);
        break;
    case XC_UNIQUE: {
        /* Orion drops repeated values within the entity */
        size_t i;
        json_t *seen;
        json_array_foreach(out, i, seen)
        {
            if (json_equal(seen, value)) {
                json_decref(value);
                return;
            }
        }
        json_array_append_new(out, value);
        break;
    }
    }
}

json_t *xc_entity_render(const char *id, const char *type, const json_t *attrs, const char *created,
                         const char *modified, const struct xc_render *r)
{
    bool values = r->format == XC_VALUES || r->format == XC_UNIQUE;
    json_t *out = values ? json_array() : json_object();
    if (!values) {
        json_object_set_new(out, "id", json_string(id));
        json_object_set_new(out, "type", json_string(type));
    }
    const char *k;
    json_t *a;
    if (!r->attrs) {
        json_object_foreach((json_t *)attrs, k, a) render_one(out, k, a, NULL, r);
        return out;
    }
    for (size_t i = 0; i < r->nattrs; i++) {
        const char *name = r->attrs[i];
        if (!strcmp(name, "*")) {
            json_object_foreach((json_t *)attrs, k, a) render_one(out, k, a, NULL, r);
        } else if (!strcmp(name, "dateCreated") && created) {
            render_one(out, name, NULL, created, r);
        } else if (!strcmp(name, "dateModified") && modified) {
            render_one(out, name, NULL, modified, r);
        } else if ((a = json_object_get(attrs, name)) != NULL) {
            render_one(out, name, a, NULL, r);
        }
    }
    return out;
}
