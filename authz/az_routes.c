/* The token service's routes and its start and stop with `serve`. */
#include "authz/az_client.h"
#include "authz/az_grant.h"
#include "authz/az_internal.h"
#include "authz/az_oidc.h"
#include "authz/az_resident.h"
#include "authz/az_page.h"
#include "authz/az_token.h"
#include "core/db_listen.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/reload.h"

void az_routes(struct core_router *r)
{
    az_oauth_routes(r);
    az_register_routes(r);
    az_clients_routes(r);
    az_residents_routes(r);
    az_page_routes(r);
    az_pages_routes(r);
    az_oidc_routes(r);
}

static struct core_reload *keys_reload;

static void on_keys_changed(const char *kid, void *arg)
{
    (void)kid;
    (void)arg;
    core_reload_request(keys_reload);
}

static void on_keys_reset(void *arg)
{
    (void)arg;
    core_reload_request(keys_reload);
}

void az_start(void)
{
    az_clients_cache_init();
    az_grant_cache_init();
    az_token_init();
    core_db_listen("renkei_keys", on_keys_changed, on_keys_reset, NULL);
    /* the hub answers while the keys load; /readyz waits for them */
    keys_reload = core_reload_add("the signing keys", az_keys_load);
    core_auth_set_verifier(az_core_verifier);
    core_metrics_add_collector(az_oauth_metrics);
}

void az_stop(void)
{
    core_auth_set_verifier(NULL);
    az_token_release();
    az_grant_cache_release();
    az_clients_cache_release();
    az_keys_release();
}
