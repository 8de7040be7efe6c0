#ifndef XC_SUBS_H
#define XC_SUBS_H

/*
 * NGSI-v2 subscriptions of the hosted store: /v2/subscriptions, and HTTP
 * notifications sent by background threads (xc_notify.c) for the changes
 * the store hands over through xc_subs_changed (xc_ngsi.h). Public to the
 * exchange module only.
 */
#include <regex.h>

#include <jansson.h>

#include "core/db.h"
#include "core/router.h"
#include "exchange/xc_ngsi.h"

/* Adds GET/POST /v2/subscriptions and GET/PATCH/DELETE /v2/subscriptions/{id}. */
void xc_subs_routes(struct core_router *r);
/* Starts the matcher and sender threads, the NOTIFY listener of
 * renkei_ngsi_subs and the metrics (call from `serve`'s start table, before
 * core_db_listen_start). */
void xc_subs_start(void);
/* Stops taking changes, drains what is queued for a bounded time (a few
 * seconds), writes the delivery counters and joins the threads. */
void xc_subs_stop(void);

/* Bounds on what a subscription may hold. */
#define XC_SUB_DESC_MAX     1024
#define XC_SUB_ENTITIES_MAX 100
#define XC_SUB_ATTRS_MAX    100  /* condition attrs, attrs/exceptAttrs, metadata */
#define XC_SUB_URL_MAX      2048 /* core_url's own bound too */
#define XC_SUB_PAIRS_MAX    32   /* httpCustom headers, qs */
#define XC_SUB_VALUE_MAX    2048 /* one header or qs value */
#define XC_SUB_EXPR_MAX     4096 /* q, mq, coords */
#define XC_SUBS_PER_TENANT  1000

enum xc_sub_alteration {
    XC_ALT_CREATE = 1 << 0,
    XC_ALT_CHANGE = 1 << 1,
    XC_ALT_UPDATE = 1 << 2,
    XC_ALT_DELETE = 1 << 3,
};

enum xc_sub_status { XC_SUB_ACTIVE, XC_SUB_INACTIVE, XC_SUB_ONESHOT };

struct xc_sub_entity {
    char *id, *id_pattern, *type, *type_pattern; /* NULL when not given */
    regex_t id_re, type_re;                      /* compiled when the pattern is given */
};

/* One subscription as parsed and checked (everything owned). */
struct xc_sub {
    char id[25];
    char *service_path; /* "/", "/a/b", or with "/#" for a subtree */
    struct xc_sub_entity *ent;
    size_t nent;
    char **cond_attrs;
    size_t ncond;
    char *q, *mq, *georel, *geometry, *coords; /* NULL when not given */
    unsigned alteration;                       /* XC_ALT_*; default create|change */
    char **attrs;                              /* notification attrs, or exceptAttrs when except */
    size_t nattrs;
    bool except;
    char **metadata;
    size_t nmetadata;
    bool has_metadata;
    enum xc_format format;
    bool only_changed;
    bool custom; /* httpCustom rather than http */
    char *url;
    char *method;    /* NULL: POST */
    json_t *headers; /* httpCustom headers, qs (NULL when none) */
    json_t *qs;
    long long throttling; /* seconds, 0: none */
    long long max_fails;  /* maxFailsLimit, 0: none */
    enum xc_sub_status status;
    bool has_expires;
    int64_t expires_ms; /* Unix time in ms */
    json_t *spec;       /* what is stored: description, subject, notification, throttling,
                         * maxFailsLimit, in Orion's rendering order */
    /* the matcher's own state */
    int64_t last_notification_ms;
};

/*
 * Parses and checks a subscription document (a POST body, or the stored
 * subscription with a PATCH body's members laid over it) as Orion does.
 * service_path is the subscription's. On failure returns false with Orion's
 * description of the problem in err (a 400 BadRequest); out is then empty.
 * Release out with xc_sub_release.
 */
bool xc_sub_parse(const json_t *doc, const char *service_path, struct xc_sub *out, char *err,
                  size_t errlen);
void xc_sub_release(struct xc_sub *s);

/* ISO 8601 as Orion takes it (date, optional time, optional zone; UTC when
 * none) to Unix milliseconds. False when s is not such a time. */
bool xc_sub_time_parse(const char *s, int64_t *ms);
/* Unix milliseconds as "2026-11-26T05:34:41.123Z". */
void xc_sub_time_format(int64_t ms, char out[32]);

/* Whether an entity at service path `path` is under the subscription's path
 * sub_path ("/a" exactly, "/a/#" that path and below, "/#" all). */
bool xc_sub_path_match(const char *sub_path, const char *path);
/* Whether the subscription's subject.entities covers an entity. */
bool xc_sub_entity_match(const struct xc_sub *s, const char *id, const char *type);
/* Whether a change of this kind touching these attributes triggers the
 * subscription's condition (alteration types and condition attrs; not the
 * expression, not the status). */
bool xc_sub_condition_match(const struct xc_sub *s, const struct xc_change *ch);

/* ---- rendering what GET shows ---- */

/* A stored subscription with its delivery counters (strings NULL when
 * absent; times already in Orion's format). */
struct xc_sub_row {
    const char *id;
    const char *spec;   /* JSON text */
    const char *status; /* "active", "inactive", "oneshot" or "expired" */
    const char *expires;
    long long times_sent;
    long long fails_counter;
    const char *last_notification, *last_success, *last_failure, *last_failure_reason;
    long long last_success_code; /* 0: none */
};
/* The subscription as GET /v2/subscriptions[/{id}] shows it; NULL when spec
 * is not a JSON object (a broken row: our bug, logged). Caller owns it. */
json_t *xc_sub_render(const struct xc_sub_row *row);

/* ---- the store (xc_subs_db.c); every call runs in the tenant's context ---- */

enum xc_subs_rc {
    XC_SUBS_OK,
    XC_SUBS_NOT_FOUND,
    XC_SUBS_TOO_MANY, /* XC_SUBS_PER_TENANT reached */
    XC_SUBS_UNAVAILABLE,
    XC_SUBS_ERROR,
};

/* Stores a new subscription (spec: JSON text of s->spec). */
enum xc_subs_rc xc_subs_db_insert(const char *tenant, const struct xc_sub *s, const char *spec);
/* Replaces spec, status and expiry of subscription id. */
enum xc_subs_rc xc_subs_db_update(const char *tenant, const struct xc_sub *s, const char *spec);
enum xc_subs_rc xc_subs_db_delete(const char *tenant, const char *id);
/* The subscription's row, rendered (*out, caller owns), with its stored
 * status (*raw_status: "active", "inactive" or "oneshot", pool memory) and
 * service path (*path, pool memory). */
enum xc_subs_rc xc_subs_db_get(const char *tenant, const char *id, struct core_pool *pool,
                               json_t **out, const char **raw_status, const char **path);
/* Subscriptions in creation order from offset, at most limit, rendered into
 * the array *out (caller owns). paths (npaths, may be 0: all) filters on
 * the stored service path. *total: every match, when total is not NULL. */
enum xc_subs_rc xc_subs_db_list(const char *tenant, const char *const *paths, int npaths,
                                long limit, long offset, json_t **out, long *total);

/* For the matcher: each subscription of tenant that may fire (not inactive),
 * with its status, expiry and last notification, handed to fn. */
typedef void (*xc_subs_db_row_fn)(void *arg, const char *id, const char *path, const char *spec,
                                  const char *status, const char *expires_ms,
                                  const char *last_notification_ms);
enum xc_subs_rc xc_subs_db_load(const char *tenant, xc_subs_db_row_fn fn, void *arg);
/* A oneshot subscription that fired, or one over its maxFailsLimit, becomes
 * inactive (only_from: the status it must still have, NULL: any). */
enum xc_subs_rc xc_subs_db_deactivate(const char *tenant, const char *id, const char *only_from);
/* Whether the entity as the change ch left it (its id, type, path,
 * attributes, times) satisfies the subscription's expression (q, mq,
 * geo), evaluated by the store's own compilers (xc_q, xc_geo) in
 * PostgreSQL on that snapshot, not on the entity as it is now: Orion
 * evaluates each update on its own result. */
enum xc_subs_rc xc_subs_db_expr_match(const char *tenant, const struct xc_sub *s,
                                      const struct xc_change *ch, bool *match);

/* Delivery counters of one subscription since the last flush. */
struct xc_subs_delta {
    char tenant[51];
    char id[25];
    long long sent;            /* notifications (not attempts) */
    int64_t last_notification; /* ms, 0: none */
    int64_t last_success;      /* ms, 0: none */
    int last_success_code;
    int64_t last_failure; /* ms, 0: none */
    char last_failure_reason[160];
    bool reset; /* a success: failsCounter restarts from fails */
    int fails;  /* failed attempts (after the last success, if reset) */
};
/* Adds deltas (all of one tenant) to the stored counters in one transaction;
 * subscriptions gone since are skipped. Those over their maxFailsLimit
 * become inactive. */
enum xc_subs_rc xc_subs_db_counters(const char *tenant, const struct xc_subs_delta *d, size_t n);

/* ---- between the handlers and the notifier ---- */

/* The tenant's subscriptions changed here: the matcher reloads them before
 * it matches the next change (NOTIFY does the same for other processes). */
void xc_subs_invalidate(const char *tenant);

#endif
