#ifndef XC_STORE_H
#define XC_STORE_H

/*
 * The hosted store in PostgreSQL: entity queries (filters and order run in
 * SQL), creation, the read-modify-write of an update under a row lock, and
 * deletion. Every call runs in the tenant's context, so row-level security
 * keeps one town's entities from another's whatever the C above does.
 */
#include "exchange/xc_entity.h"

enum xc_rc {
    XC_OK,
    XC_NOT_FOUND,    /* no such entity */
    XC_TOO_MANY,     /* an id without type matched several entities */
    XC_EXISTS,       /* create: already there */
    XC_BAD,          /* the request cannot be applied; err says why (400) */
    XC_TOO_MANY_GEO, /* more than one location attribute (413) */
    XC_TOO_LARGE,    /* the entity would outgrow XC_ENTITY_MAX (413) */
    XC_UNAVAILABLE,  /* the database cannot be reached */
    XC_ERROR,        /* anything else: logged */
};

/* An entity as read. */
struct xc_row {
    const char *id, *type, *path;
    const char *created, *modified; /* RFC 3339, milliseconds */
    json_t *attrs; /* freed with the pool; read-only in a query's rows (shared, xc_parsed.h) */
};

/* One entities[] item of a query: id or idPattern, type or typePattern
 * (NULL: any). ids/types may hold several (the URL's comma lists). */
struct xc_selector {
    const char *const *ids;
    size_t nids;
    const char *id_pattern;
    const char *const *types;
    size_t ntypes;
    const char *type_pattern;
};

struct xc_query {
    const struct xc_selector *sel; /* OR'ed; none: every entity */
    size_t nsel;
    const char *q, *mq;
    const char *georel, *geometry, *coords;
    const char *const *order_by; /* "temperature", "!id", ... */
    size_t norder;
    long limit, offset;
    bool count;
};

/* Runs a query: rows (pool) in order, *total when q->count. XC_BAD with
 * err for a bad filter (400). */
enum xc_rc xc_store_query(const struct xc_ngsi *n, const struct xc_query *q, struct xc_row **rows,
                          size_t *nrows, long *total, char *err, size_t errlen);

/* An entity to create. */
struct xc_create {
    const char *id;
    const char *type;    /* NULL: none given (created as "Thing"; an upsert matches any type) */
    const json_t *attrs; /* stored form, stamped here */
    bool upsert;         /* an existing entity gets the attributes merged by mode */
    enum xc_merge mode;  /* XC_MERGE_APPEND or XC_MERGE_APPEND_STRICT */
    bool overwrite, forced;
    /* filled in: */
    bool created;
    struct xc_merge_result res;
};

/* Creates an entity in n's (single, exact) path. XC_EXISTS when it exists
 * and !upsert. */
enum xc_rc xc_store_create(const struct xc_ngsi *n, struct xc_create *cr, char *err, size_t errlen);

/* A change to one existing entity. */
struct xc_update {
    const char *id;
    const char *type;    /* NULL: any type (several: XC_TOO_MANY) */
    const json_t *attrs; /* stored form; XC_MERGE_DELETE reads only the names */
    enum xc_merge mode;
    bool overwrite, forced;
    bool delete_entity;
    /* filled in: */
    struct xc_merge_result res;
};

/* Applies u under a row lock. XC_OK even when some names were missing
 * (u->res.missing says which; the caller reports them as Orion does). */
enum xc_rc xc_store_update(const struct xc_ngsi *n, struct xc_update *u, char *err, size_t errlen);

/* One item of a batch: a create (cr set) or an update (u set). */
struct xc_batch_item {
    struct xc_create *cr;
    struct xc_update *u;
    /* filled in: */
    enum xc_rc rc;
    const char *why; /* pool */
};

/* Applies every item in one transaction (one commit for the lot): an item
 * that cannot be applied is recorded in its rc and changes nothing; the
 * call's own result is XC_OK unless the database failed the whole batch
 * (then every item carries that failure and nothing was applied). */
enum xc_rc xc_store_batch(const struct xc_ngsi *n, struct xc_batch_item *items, size_t count,
                          char *err, size_t errlen);

/* Entity types with their attributes' names and types, and counts; one
 * type when type is set (XC_NOT_FOUND when it has no entity). Rows in
 * *out (pool): {"type", "attrs": {name: {"types": [...]}}, "count"}. */
enum xc_rc xc_store_types(const struct xc_ngsi *n, const char *type, long limit, long offset,
                          bool names_only, json_t **out, long *total);

/* Replies the error matching rc (with err where it says more). */
void xc_reply_rc(struct core_req *req, enum xc_rc rc, const char *err);

#endif
