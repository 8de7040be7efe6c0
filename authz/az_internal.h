#ifndef AZ_INTERNAL_H
#define AZ_INTERNAL_H

/* Route groups of the token service, registered by az_routes. */
#include "authz/az_client.h"
#include "core/http.h"
#include "core/router.h"
#include "core/strbuf.h"

/* The admin API's reply for a registry result that is not AZ_OK. */
void az_reply_rc(struct core_req *req, enum az_rc rc, const struct az_result *res);

void az_oauth_routes(struct core_router *r);    /* discovery, JWKS, token, introspect, revoke */
void az_oauth_metrics(struct strbuf *out);      /* tokens issued by grant, rate-limited */
void az_register_routes(struct core_router *r); /* RFC 7591/7592 */
void az_clients_routes(struct core_router *r);  /* /admin/v1/clients */
void az_pages_routes(struct core_router *r);    /* authorize, sign-in, consent, account, logout */

#endif
