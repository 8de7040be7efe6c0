#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>

#include <curl/curl.h>

#include "core/cli.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/db.h"
#include "core/db_listen.h"
#include "core/http.h"
#include "core/jose.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/migrate.h"
#include "core/reload.h"
#include "core/secret.h"

/* How long the server waits for the first loads before it answers (a
 * database that does not answer at all takes libpq's connect timeout, 5 s,
 * to fail). */
#define START_LOAD_WAIT_MS 10000

/* Waits for the first loads (core_reload_wait) at most START_LOAD_WAIT_MS,
 * in slices, so that SIGTERM or SIGINT (blocked, taken here) stops the wait
 * at once: *stop_sig is then the signal. True when the loads succeeded. */
static bool wait_first_loads(const sigset_t *sigs, int *stop_sig)
{
    struct timespec start, now, zero = {0, 0};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (core_reload_wait(100))
            return true;
        int sig = sigtimedwait(sigs, NULL, &zero);
        if (sig == SIGTERM || sig == SIGINT) {
            *stop_sig = sig;
            return false;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (now.tv_sec - start.tv_sec) * 1000L + (now.tv_nsec - start.tv_nsec) / 1000000L;
        /* core_reload_wait came back early without success: every load has
         * run once and one failed, so waiting longer is pointless */
        if (ms >= START_LOAD_WAIT_MS || core_reload_settled())
            return false;
    }
}

/* Up to 1024 connections, each a descriptor, plus the database pool: the
 * usual soft limit of 1024 is too low, so take what the hard limit allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            core_logf(CORE_LOG_WARN, "cannot raise the open-file limit: %s", strerror(errno));
    }
}

int core_cmd_serve(const struct core_app *app, int argc, char **argv)
{
    if (argc > 1)
        return core_cli_bad_usage(app, "serve",
                                  "serve: unexpected argument \"%s\" (configure "
                                  "it with RENKEI_* variables)",
                                  argv[1]);
    core_cli_serving = true;
    core_db_warn_superuser = true;
    if (!core_cli_config(true, true))
        return 1;

    /* Signals are taken synchronously by this thread; every thread started
     * from here on inherits the mask and never sees them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    /* The modules start first: their first database connections (the
     * slowest part of a start) open while the routes are built. */
    core_db_init(core_cfg.db, core_cfg.db_pool);
    core_secret_start(app); /* first: the modules' loads open what it seals */
    for (size_t i = 0; i < app->nstarts; i++)
        app->starts[i]();
    core_reload_start();
    core_key_decoders_fetch();
    struct core_router *router = core_router_new();
    for (size_t i = 0; i < app->nroutes; i++)
        app->routes[i](router);
    core_metrics_init(router);
    core_db_listen_start(core_cfg.db);

    raise_fd_limit();
    int port = 0, stop_sig = 0;
    bool loaded = false;
    struct core_http_server *srv = core_http_bind(&core_cfg, &port);
    if (srv) {
        /* The issuer and the API description exist before the first request. */
        if (!core_cfg.issuer) {
            core_cfg.issuer = core_config_default_issuer(core_cfg.listen_host, port);
            if (!core_config_is_loopback(core_cfg.listen_host))
                core_logf(CORE_LOG_WARN,
                          "RENKEI_ISSUER is not set: using %s, which clients elsewhere cannot "
                          "reach; set it to the hub's public https:// URL",
                          core_cfg.issuer);
        }
        core_openapi_build(router, core_cfg.issuer);
        /* The socket listens already: clients that come now wait in its
         * backlog until the first loads have run (the signing keys: no key
         * set published empty, no valid token refused), not longer than
         * START_LOAD_WAIT_MS. */
        loaded = wait_first_loads(&sigs, &stop_sig);
        if (stop_sig || !core_http_start(srv, &core_cfg, router)) {
            core_http_stop(srv, 0, NULL);
            srv = NULL;
        }
    }
    if (!srv) {
        if (stop_sig)
            core_logf(CORE_LOG_INFO, "stopped on %s before serving",
                      stop_sig == SIGTERM ? "SIGTERM" : "SIGINT");
        core_db_refuse_connects(); /* nothing was served: nothing to finish */
        core_db_listen_stop();
        core_reload_stop();
        for (size_t i = 0; i < app->nstops; i++)
            app->stops[i]();
        core_db_shutdown();
        core_openapi_release();
        core_metrics_release();
        core_router_free(router);
        core_secret_release();
        core_config_release(&core_cfg);
        curl_global_cleanup();
        return stop_sig ? 0 : 1;
    }

    bool v6 = strchr(core_cfg.listen_host, ':') != NULL;
    char *address =
        xasprintf("%s%s%s:%d", v6 ? "[" : "", core_cfg.listen_host, v6 ? "]" : "", port);
    core_log_fields(CORE_LOG_INFO, "listening",
                    json_pack("{s:s, s:i, s:s, s:i, s:i, s:i, s:s}", "address", address, "port",
                              port, "issuer", core_cfg.issuer, "threads", core_cfg.threads,
                              "db_pool", core_cfg.db_pool, "routes", (int)core_router_count(router),
                              "version", RENKEI_VERSION));
    free(address);
    if (!loaded) {
        char why[300];
        int applied;
        if (!core_migrate_ready(why, sizeof why, &applied))
            core_logf(CORE_LOG_WARN, "not ready yet: %s", why);
    }

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            core_info("SIGHUP ignored: restart the process to change configuration");
            continue;
        }
        core_logf(CORE_LOG_INFO, "shutting down on %s: finishing requests in flight (at most %d s)",
                  sig == SIGTERM ? "SIGTERM" : "SIGINT", core_cfg.shutdown_grace);
        break;
    }
    core_http_stop(srv, core_cfg.shutdown_grace, core_db_cancel_all);
    core_db_listen_stop();
    core_reload_stop();
    for (size_t i = 0; i < app->nstops; i++)
        app->stops[i]();
    core_db_shutdown();
    core_openapi_release();
    core_metrics_release();
    core_router_free(router);
    core_secret_release();
    core_config_release(&core_cfg);
    curl_global_cleanup();
    core_info("stopped");
    return 0;
}
