#include <stdlib.h>

#include "core/db.h"
#include "core/http.h"
#include "core/metrics.h"
#include "core/routes.h"

static void core_handler_metrics(struct core_req *req)
{
    size_t len;
    char *text = core_metrics_render(&len);
    core_reply_bytes(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

static void db_pool_collector(struct strbuf *out)
{
    struct core_db_stats st;
    core_db_stats(&st);
    strbuf_addf(out,
                "# HELP renkei_db_pool_size Connections the pool may hold.\n"
                "# TYPE renkei_db_pool_size gauge\nrenkei_db_pool_size %d\n"
                "# HELP renkei_db_pool_connected Connections currently open.\n"
                "# TYPE renkei_db_pool_connected gauge\nrenkei_db_pool_connected %d\n"
                "# HELP renkei_db_pool_in_use Connections lent to a request.\n"
                "# TYPE renkei_db_pool_in_use gauge\nrenkei_db_pool_in_use %d\n"
                "# HELP renkei_db_pool_waiting Requests waiting for a connection.\n"
                "# TYPE renkei_db_pool_waiting gauge\nrenkei_db_pool_waiting %d\n"
                "# HELP renkei_db_connect_failures_total Failed attempts to connect.\n"
                "# TYPE renkei_db_connect_failures_total counter\n"
                "renkei_db_connect_failures_total %llu\n"
                "# HELP renkei_db_acquire_timeouts_total Requests that found no free connection in "
                "time.\n"
                "# TYPE renkei_db_acquire_timeouts_total counter\n"
                "renkei_db_acquire_timeouts_total %llu\n",
                st.size, st.connected, st.in_use, st.waiting, st.connect_failures,
                st.acquire_timeouts);
}

static const struct core_route metrics_route = {
    CORE_GET, "/metrics", core_handler_metrics, "Prometheus metrics (text format 0.0.4)", "core", 0,
};

void core_metrics_routes(struct core_router *r)
{
    core_router_add(r, &metrics_route);
    core_metrics_add_collector(db_pool_collector);
}
