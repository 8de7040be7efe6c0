#ifndef CORE_METRICS_H
#define CORE_METRICS_H

#include "core/router.h"
#include "core/strbuf.h"

/*
 * Prometheus metrics kept in lock-free counters: requests by route, method
 * and status, a duration histogram per route, and gauges that modules add
 * through collectors. Routes are known before serving, so label sets are
 * bounded; unmatched requests count under route="unmatched".
 */

/* Sizes the tables for the router's routes. Call once before serving. */
void core_metrics_init(const struct core_router *router);
void core_metrics_release(void);

/* route_id: the match's id, or -1 for an unmatched request. */
void core_metrics_observe(long route_id, enum core_method method, unsigned status,
                          uint64_t duration_us);

/* A collector appends its own lines (with # HELP and # TYPE) to out. */
typedef void (*core_metrics_collector)(struct strbuf *out);
void core_metrics_add_collector(core_metrics_collector fn);

/* The whole exposition, text format 0.0.4. Caller frees. */
char *core_metrics_render(size_t *len);

#endif
