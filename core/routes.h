#ifndef CORE_ROUTES_H
#define CORE_ROUTES_H

#include "core/router.h"

/*
 * Route registration. Each module has one function that adds its routes;
 * the one table of them is in core/app.c.
 */
typedef void (*core_routes_fn)(struct core_router *r);

void core_routes(struct core_router *r); /* health, metrics, openapi */
void core_health_routes(struct core_router *r);
void core_metrics_routes(struct core_router *r);
void core_openapi_routes(struct core_router *r);

/* Builds /openapi.json from every registered route; call after all modules
 * registered and the issuer is known. */
void core_openapi_build(const struct core_router *r, const char *server_url);
void core_openapi_release(void);

#endif
