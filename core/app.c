#include "core/cli.h"

#include "audit/au.h"
#include "authz/az.h"
#include "authz/az_resident.h"
#include "console/cn.h"
#include "exchange/xc.h"
#include "exchange/xc_agreement.h"
#include "tenants/tn.h"

/* The one table of routes: every module's registration function. */
static const core_routes_fn route_table[] = {
    core_routes, tn_routes, az_routes, xc_routes, au_routes, cn_routes,
};

/* The one table of subcommands. */
static const struct core_command command_table[] = {
    {"help", core_cmd_help, "help [COMMAND]", "show this help, or one command's"},
    {"version", core_cmd_version, "version [--json]", "print the version"},
    {"migrate", core_cmd_migrate, "migrate [--status] [--json]",
     "apply pending database migrations, or show their state"},
    {"serve", core_cmd_serve, "serve", "serve the hub over HTTP until SIGTERM or SIGINT"},
    {"tenant", tn_cmd_tenant, "tenant add|list|show|suspend|resume ...",
     "manage the registry of towns (renkei help tenant)"},
    {"client", az_cmd_client, "client add|list|show|rotate-secret|disable|enable|initial-token",
     "manage service IDs (OAuth clients)"},
    {"resident", az_cmd_resident,
     "resident add|list|show|disable|enable|passwd|link|unlink|grant|withdraw ...",
     "manage residents (common IDs), their links to towns and the consoles' roles"},
    {"agreement", xc_cmd_agreement, "agreement add|list|show|approve|suspend|resume|revoke ...",
     "manage data-sharing agreements between towns (renkei help agreement)"},
    {"secret", core_cmd_secret, "secret rotate [--prepare] | status [--json]",
     "rotate the master secret, re-sealing every value it seals, or show its state"},
    {"keys", az_cmd_keys, "keys list | rotate [--json]", "list or rotate the signing keys"},
    {"audit", au_cmd_audit, "audit verify|export|verify-file|checkpoint|rotate-key ...",
     "verify, export and checkpoint the audit log (renkei help audit)"},
};

/* What modules start with `serve` (caches, listeners), and stop after it.
 * The token service starts first: its keys are what readiness waits for, and
 * its database connection is then the first the server forks. */
static const core_module_fn start_table[] = {tn_cache_init, az_start, au_start, xc_start};
static const core_module_fn stop_table[] = {xc_stop, az_stop, au_stop, tn_cache_release};

/* Every column holding values sealed with the master secret: what `renkei
 * secret rotate` re-seals, in one transaction. */
static const struct core_sealed_col sealed_table[] = {
    {"signing_keys", "kid", "private_sealed", AZ_KEY_LABEL},
    {"audit_keys", "kid", "private_sealed", AU_KEY_LABEL},
    {"tenant_upstreams", "tenant_id", "secret", TN_UPSTREAM_LABEL},
};

const struct core_app renkei_app = {
    .commands = command_table,
    .ncommands = ARRAY_SIZE(command_table),
    .routes = route_table,
    .nroutes = ARRAY_SIZE(route_table),
    .starts = start_table,
    .nstarts = ARRAY_SIZE(start_table),
    .stops = stop_table,
    .nstops = ARRAY_SIZE(stop_table),
    .sealed = sealed_table,
    .nsealed = ARRAY_SIZE(sealed_table),
    .record_event = au_event_record,
};
