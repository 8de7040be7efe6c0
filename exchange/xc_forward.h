#ifndef XC_FORWARD_H
#define XC_FORWARD_H

/*
 * The NGSI front over a town's own city OS (a remote Orion): a same-town
 * request passes through as a PEP proxy would; a permitted cross-town read
 * is rewritten to the agreement (types, attributes, the resident's own
 * entities) and its response filtered to it again.
 */
#include "exchange/xc_ngsi.h"

enum xc_fwd_kind {
    XC_FWD_LIST,   /* an array of entities (GET /v2/entities, POST /v2/op/query) */
    XC_FWD_ENTITY, /* one entity (GET /v2/entities/{id}) */
    XC_FWD_ATTRS,  /* an entity's attributes (GET /v2/entities/{id}/attrs) */
};

/* Sends the request on as it came (method, path, query, body, service
 * path, correlator; the town's credentials, not the caller's) and replies
 * what came back; 502/504 when the town's city OS fails. */
void xc_forward_raw(struct xc_ngsi *n);

/* A permitted cross-town read of kind: the query's type and attrs are
 * replaced by their agreed narrowing (r: what the caller asked, already
 * narrowed by xc_cross_render), q gets the resident condition for personal
 * data, and the response is stripped of every entity, type and attribute
 * the agreement does not cover. body: the op/query body to send (NULL for
 * GETs). */
void xc_forward_read(struct xc_ngsi *n, enum xc_fwd_kind kind, const struct xc_render *r,
                     json_t *body);

#endif
