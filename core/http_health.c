#include <stdlib.h>

#include "core/db.h"
#include "core/http.h"
#include "core/reload.h"
#include "core/migrate.h"
#include "core/routes.h"

/* Liveness: the process answers. Touches nothing else on purpose, so a
 * database outage never makes an orchestrator restart a healthy hub. */
static void core_handler_healthz(struct core_req *req)
{
    core_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

/* Readiness: the modules' loads (core_reload) have succeeded, and the
 * database answers as the service role and has exactly the migrations this
 * binary carries. While the first loads run the database is not asked: the
 * hub is starting, and its one connection is theirs. */
static void core_handler_readyz(struct core_req *req)
{
    char why[300], why_load[512];
    int applied;
    bool failed = false;
    bool loaded = core_reload_ready(why_load, sizeof why_load, &failed);
    const char *reason = NULL;
    if (!loaded && !failed)
        reason = why_load;
    else if (!core_migrate_ready(why, sizeof why, &applied))
        reason = why;
    else if (!loaded)
        reason = why_load;
    if (reason) {
        core_reply_header(req, "Retry-After", "5");
        core_reply_error(req, CORE_ERR_UNAVAILABLE, "not ready: %s", reason);
        return;
    }
    struct core_db_stats st;
    core_db_stats(&st);
    core_reply_json(req, 200,
                    json_pack("{s:s, s:i, s:{s:i, s:i, s:i}}", "status", "ready", "migrations",
                              applied, "db_pool", "size", st.size, "connected", st.connected,
                              "in_use", st.in_use));
}

static const struct core_route health_routes[] = {
    {CORE_GET, "/healthz", core_handler_healthz, "Liveness: the process answers", "core", 0},
    {CORE_GET, "/readyz", core_handler_readyz,
     "Readiness: the database is reachable and its migrations are current", "core", 0},
};

void core_health_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(health_routes); i++)
        core_router_add(r, &health_routes[i]);
}
