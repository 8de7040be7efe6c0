#ifndef AZ_INTERNAL_H
#define AZ_INTERNAL_H

/* Route groups of the token service, registered by az_routes. */
#include "core/router.h"

void az_oauth_routes(struct core_router *r);    /* discovery, JWKS, token, introspect, revoke */
void az_register_routes(struct core_router *r); /* RFC 7591/7592 */
void az_clients_routes(struct core_router *r);  /* /admin/v1/clients */
void az_pages_routes(struct core_router *r);    /* authorize, sign-in, consent, account, logout */

#endif
