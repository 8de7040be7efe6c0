#ifndef XC_CROSS_H
#define XC_CROSS_H

/*
 * Requests for another town's data: the policy decision under the
 * data-sharing agreements, the narrowing of what the request may touch
 * (types, attributes, the resident's own entities for personal data), and
 * the audit entry every such request leaves, permit or deny, committed
 * before the response is released (a reply gate: if the entry cannot be
 * written the client gets 503 and nothing else).
 */
#include "core/strbuf.h"
#include "exchange/xc_agreement.h"
#include "exchange/xc_store.h"

struct xc_cross {
    /* the parties, copied so the reply gate needs nothing of the handler's */
    const char *provider, *consumer, *client, *actor;
    const char *purpose; /* NULL: absent or malformed */
    const char *agreement_hdr;
    const char *method, *path, *service_path;
    unsigned action;
    bool decided;
    struct xc_decision dec;
    bool has_resident;
    char resident_ref[44];
    json_t *types; /* the types the request reaches, for the audit entry */
    json_t *attrs; /* the attributes it may return, null: all */
    long entities; /* entities in the response; -1: count what the body holds */
};

/* Sets up n for a cross-town request (n->tenant the provider, the token's
 * town the consumer): reads Renkei-Purpose and Renkei-Agreement and installs
 * the audit gate on the reply. Always succeeds (bad headers make the
 * decision deny, audited). */
void xc_cross_begin(struct xc_ngsi *n);

/* Decides a cross-town request for action (XC_AG_READ / XC_AG_WRITE) over
 * the types it names (none: narrowed to the agreed types). On permit
 * restricts n (types, resident) and returns true; otherwise the 403 (429
 * for the rate, 503 when the database is needed and down) is queued and
 * false returned. Same-town requests: true at once. */
bool xc_cross_decide(struct xc_ngsi *n, unsigned action, const char *const *types, size_t ntypes);

/* Denies the request for why with description msg (403; 429 for the rate). */
void xc_cross_deny(struct xc_ngsi *n, enum xc_deny why, const char *msg);

/* After a permit: true when the agreement lets attribute name through;
 * otherwise queues 403 attr_not_agreed naming it (where names it) and
 * returns false. Same-town: true. */
bool xc_cross_attr(struct xc_ngsi *n, const char *name, const char *where);

/* After a permit: every attribute q, mq, orderBy or a geographic query
 * would look at must be agreed (a filter on a hidden attribute reveals it).
 * false once the 403 (or 400 for a bad q) is queued. */
bool xc_cross_query(struct xc_ngsi *n, const struct xc_query *q);

/* After a permit: narrows r to the agreed attributes. */
void xc_cross_render(const struct xc_ngsi *n, struct xc_render *r);

/* After a permit: the number of entities the reply holds (for the audit
 * entry; otherwise counted from the body). */
void xc_cross_entities(struct xc_ngsi *n, long count);

/* A cross-town write to entities of type (NULL: not named) changing the
 * attributes in attrs (stored form, may be NULL): decides it, checks every
 * attribute is agreed, that a town's own city OS gets a named type, and
 * that personal data stays the resident's own (creating: the entity must
 * carry the resident's number). Same-town: true. */
bool xc_cross_write(struct xc_ngsi *n, const char *type, const json_t *attrs, bool creating);

/* The attribute checks of xc_cross_write alone, for each entity of a batch
 * after one decision over the batch's types. */
bool xc_cross_write_attrs(struct xc_ngsi *n, const json_t *attrs, bool creating);

/* A cross-town read of one entity (the route's ?type=, else narrowed): the
 * decision, then r narrowed. Same-town: true. */
bool xc_cross_read_one(struct xc_ngsi *n, struct xc_render *r);

/* True for a write that would remove attributes beyond the agreed ones
 * (replace all, delete the entity) under an agreement limited to some
 * attributes: queues 403 and returns false. */
bool xc_cross_whole_entity(struct xc_ngsi *n, const char *what);

/* Decisions by outcome and reason: a /metrics collector. */
void xc_cross_metrics(struct strbuf *out);

#endif
