#ifndef XC_ENTITY_H
#define XC_ENTITY_H

/*
 * Entities and attributes as requests give them (normalized or keyValues)
 * and as the store keeps them, with Orion's defaults and rules, and the
 * merging of a change into a stored entity.
 */
#include "exchange/xc_ngsi.h"

/* Orion's default attribute type for a value: Text, Number, Boolean,
 * StructuredValue or None. */
const char *xc_default_type(const json_t *value);

/* Parses one attribute from a request into its stored form ({"type",
 * "value", "metadata"}; new reference). key_values: in is the bare value.
 * NULL with Orion's description in *why (400 BadRequest). */
json_t *xc_attr_parse(const json_t *in, bool key_values, const char **why);

/* Parses the attributes of an object (members other than id and type) into
 * a new object of stored attributes; NULL with *why. */
json_t *xc_attrs_parse(const json_t *obj, bool key_values, const char **why);

/* Parses an entity to create: id and type checked (*type NULL when the body
 * gives none: "Thing" for a new entity), and its attributes (new reference
 * in *attrs). False with *why. */
bool xc_entity_parse(const json_t *body, bool key_values, const char **id, const char **type,
                     json_t **attrs, const char **why);

enum xc_merge {
    XC_MERGE_APPEND,        /* add or replace attributes (POST .../attrs) */
    XC_MERGE_APPEND_STRICT, /* add only; an existing one is an error */
    XC_MERGE_UPDATE,        /* replace existing ones only (PATCH) */
    XC_MERGE_REPLACE,       /* the given attributes become all of them (PUT) */
    XC_MERGE_DELETE,        /* remove the named attributes */
    XC_MERGE_VALUE,         /* set the value of existing ones, keeping type and metadata */
};

/* What a merge did. */
struct xc_merge_result {
    const char **changed; /* names created, changed or removed (pool) */
    size_t nchanged;
    const char **missing; /* UPDATE/DELETE: names not there; APPEND_STRICT: names already there */
    size_t nmissing;
};

/* Applies incoming (stored-form attributes) to stored (modified in place) at
 * time now. overwrite: metadata of an updated attribute are replaced rather
 * than merged; forced: every touched attribute counts as changed. */
void xc_attrs_merge(struct core_pool *pool, json_t *stored, const json_t *incoming,
                    enum xc_merge mode, const char *now, bool overwrite, bool forced,
                    struct xc_merge_result *res);

/* Stamps every attribute of a new entity with dateCreated/dateModified. */
void xc_attrs_stamp(json_t *attrs, const char *now);

/* "[ a, b ]" as Orion lists names in its descriptions (pool string). */
const char *xc_name_list(struct core_pool *pool, const char *const *names, size_t n);

#endif
