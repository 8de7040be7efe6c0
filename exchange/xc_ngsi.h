#ifndef XC_NGSI_H
#define XC_NGSI_H

/*
 * The NGSI-v2 front's shared parts: the request context (token, tenant,
 * service paths, options), Orion's identifier rules, the entity model as
 * stored and as rendered, and the hand-off of changes to subscriptions.
 */
#include <jansson.h>

#include "core/auth.h"
#include "core/http.h"
#include "exchange/xc_sql.h"

#define XC_NAME_MAX       256 /* bytes of an id, type, attribute or metadata name */
#define XC_PATHS_MAX      10  /* service paths in one query */
#define XC_PATH_LEVELS    10
#define XC_PATH_LEVEL_MAX 50
#define XC_LIMIT_DEFAULT  20
#define XC_LIMIT_MAX      1000
#define XC_OFFSET_MAX     1000000
#define XC_LIST_MAX       100 /* names in attrs=, metadata=, orderBy=, types */
#define XC_IDS_MAX        1000
#define XC_PATTERN_MAX    256
#define XC_ATTRS_MAX      1000               /* attributes in one entity */
#define XC_BATCH_MAX      1000               /* entities in one op/update */
#define XC_BATCH_READ_MAX (64 * 1024 * 1024) /* bytes of stored entities one batch may touch */
#define XC_BODY_MAX       (1024 * 1024)
#define XC_ENTITY_MAX     (4 * 1024 * 1024) /* bytes of one entity's stored attributes */
#define XC_REAL_PRECISION 15

enum xc_opt {
    XC_OPT_COUNT = 1 << 0,
    XC_OPT_KEYVALUES = 1 << 1,
    XC_OPT_VALUES = 1 << 2,
    XC_OPT_UNIQUE = 1 << 3,
    XC_OPT_APPEND = 1 << 4,
    XC_OPT_UPSERT = 1 << 5,
    XC_OPT_FORCED_UPDATE = 1 << 6,
    XC_OPT_OVERWRITE = 1 << 7,
    XC_OPT_SKIP_FORWARDING = 1 << 8,
};

enum xc_access { XC_READ, XC_WRITE, XC_CREATE };

struct xc_cross;

/* One NGSI request in flight. */
struct xc_ngsi {
    struct core_req *req;
    const struct core_principal *p;
    const char *tenant; /* the store addressed (Fiware-Service, default the token's tenant) */
    const char *correlator;
    int npaths;
    const char *paths[XC_PATHS_MAX]; /* "/", "/a/b" */
    bool subtree[XC_PATHS_MAX];      /* the path ended in "/#" (or defaulted to it) */
    unsigned opts;                   /* XC_OPT_* from ?options= */
    bool remote;                     /* the town runs its own city OS (hosted: false) */
    /* another town's data (tenant is the provider, p->tenant the consumer):
     * set by xc_ngsi_begin, decided by xc_cross_decide */
    struct xc_cross *x;
    bool listing; /* a query (entities, op/query), not one entity by id */
    /* what every SQL over the store adds once a cross-town request is
     * permitted (xc_sql_paths): only these types, only this resident's */
    const char *const *only_types;
    size_t nonly_types;
    const char *resident_attr, *resident_value;
};

/*
 * Starts an NGSI request: echoes or makes Fiware-Correlator, checks the token
 * (ngsi.read for XC_READ, ngsi.write otherwise), picks the tenant
 * (Fiware-Service; another town's store is the exchange's business) and that
 * it is hosted here, parses Fiware-ServicePath (queries: up to 10 paths,
 * default "/#"; XC_WRITE: one path, "/#" allowed, default "/"; XC_CREATE:
 * one exact path, default "/"), and options (only those in allowed_opts).
 * False once the error reply is queued.
 */
bool xc_ngsi_begin(struct core_req *req, struct xc_ngsi *n, enum xc_access access,
                   unsigned allowed_opts);

/* Parses a Fiware-ServicePath header (NULL or empty: the default for access)
 * into paths and subtree ("/a/#": true), *npaths of them, strings in pool.
 * NULL when fine, else Orion's description of what is wrong. */
const char *xc_service_paths_parse(struct core_pool *pool, const char *header,
                                   enum xc_access access, const char *paths[XC_PATHS_MAX],
                                   bool subtree[XC_PATHS_MAX], int *npaths);

/* Echoes the request's Fiware-Correlator (or a new UUID) on the reply and
 * returns it (pool string). */
const char *xc_correlator(struct core_req *req);

/* Replies body (reference stolen) as NGSI does: numbers printed to 15
 * significant digits, Content-Type application/json. */
void xc_reply_json(struct core_req *req, unsigned status, json_t *body);

/* Appends "(e.service_path ...)" for n's paths to s, and for a permitted
 * cross-town request the agreement's restrictions (types, resident). */
void xc_sql_paths(struct xc_sql *s, const struct xc_ngsi *n);

/* Orion's rules for an id, type, attribute or metadata name: 1-256 printable
 * ASCII, none of whitespace & ? / # and none of < > " ' = ; ( ). NULL when
 * fine, else why ("empty", "too long", "forbidden characters"). */
const char *xc_check_name(const char *s);
/* True when s holds one of Orion's forbidden characters < > " ' = ; ( ). */
bool xc_has_forbidden(const char *s);
/* Splits a comma-separated query parameter into at most max non-empty parts
 * (pool strings). False on an empty part or too many. */
bool xc_split_list(struct core_pool *pool, const char *s, size_t max, const char ***out, size_t *n);

/* ---- entities as stored ----
 * attrs: {"<name>": {"type", "value", "metadata": {...}, "dateCreated", "dateModified"}} */

/* What a rendering shows. */
enum xc_format { XC_NORMALIZED, XC_KEYVALUES, XC_VALUES, XC_UNIQUE };
struct xc_render {
    enum xc_format format;
    const char *const *attrs; /* NULL: every attribute ("*"); may name dateCreated, dateModified */
    size_t nattrs;
    bool all_attrs;            /* "*" was in attrs along with system ones */
    const char *const *except; /* attributes left out (subscriptions' exceptAttrs) */
    size_t nexcept;
    const char *const
        *metadata; /* NULL: every user metadata; may name dateCreated, dateModified, "*" */
    size_t nmetadata;
    /* a cross-town request: only these attributes ever appear (restricted) */
    bool restricted;
    const char *const *allow;
    size_t nallow;
};

/* Renders one stored entity (attrs borrowed). XC_VALUES/XC_UNIQUE give an
 * array of values; the others an object. Caller owns the result. */
json_t *xc_entity_render(const char *id, const char *type, const json_t *attrs, const char *created,
                         const char *modified, const struct xc_render *r);

/* ---- changes, for subscriptions ---- */

struct xc_change {
    const char *tenant;
    const char *service_path;
    const char *id;
    const char *type;
    const json_t *attrs; /* the entity after the change (a deleted one: as it was) */
    const char *created, *modified;
    const char *const *changed; /* attributes created, changed or deleted */
    size_t nchanged;
    bool entity_created, entity_deleted;
    const char *correlator;
};

/* Hands a committed change to the subscription worker: copies what it needs
 * and returns at once (a full queue drops the change and counts it). */
void xc_subs_changed(const struct xc_change *ch);

#endif
