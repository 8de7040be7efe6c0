#ifndef XC_HTTP_H
#define XC_HTTP_H

/* What the NGSI handlers share: request parameters and replies. */
#include "exchange/xc_store.h"

/* Accept allows application/json (or text/plain when text_ok); else 406 is
 * queued and false returned. */
bool xc_accept(struct core_req *req, bool text_ok);
/* The body as JSON: 411 when there is none, 415 when not application/json,
 * 400 ParseError when malformed. NULL once the error is queued. */
json_t *xc_body_json(struct core_req *req);
/* A query parameter holding a comma list of at most max names (id=, type=,
 * attrs=), each checked as Orion checks names ("*" too when star_ok); none:
 * *out NULL. False once 400 is queued. */
bool xc_names_param(struct core_req *req, const char *param, size_t max, bool star_ok,
                    const char ***out, size_t *n);
/* Reads attrs=, metadata= and the format options into r. */
bool xc_read_render(struct core_req *req, const struct xc_ngsi *n, struct xc_render *r);
/* limit= (default 20, 1-1000) and offset=. */
bool xc_read_page(struct core_req *req, long *limit, long *offset);
/* An {id} (or {name}) from the path, checked as Orion checks it. */
bool xc_path_name(struct core_req *req, const char *param, const char *what, const char **out);
/* Reads the one entity the path's {id} names (with ?type=); false once the
 * error (404, 409 TooManyResults) is queued. */
bool xc_one_entity(struct core_req *req, const struct xc_ngsi *n, struct xc_row *out);
/* ?type= of a single-entity route, checked; false once 400 is queued. */
bool xc_type_param(struct core_req *req, const char **type);
/* Replies the outcome of an update: 204, or 404/422 naming missing attributes. */
void xc_reply_update(struct core_req *req, enum xc_rc rc, const char *err,
                     const struct xc_update *u);
/* Runs q and replies the entities rendered by r as an array, with
 * Fiware-Total-Count when q->count; or the error. */
void xc_reply_query(struct core_req *req, const struct xc_ngsi *n, const struct xc_query *q,
                    const struct xc_render *r);

void xc_entities_routes(struct core_router *r);
void xc_attrs_routes(struct core_router *r);
void xc_op_routes(struct core_router *r);
void xc_misc_routes(struct core_router *r);
void xc_catalog_routes(struct core_router *r);

#endif
