/* The audit module's start and stop with `serve`. */
#include "audit/au_internal.h"
#include "core/db_listen.h"
#include "core/metrics.h"
#include "core/reload.h"

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

void au_start(void)
{
    core_db_listen("renkei_audit_keys", on_keys_changed, on_keys_reset, NULL);
    /* loaded with the token service's keys, on one connection; /readyz waits */
    keys_reload = core_reload_add("the audit keys", au_keys_load);
    core_metrics_add_collector(au_metrics);
    core_metrics_add_collector(au_checkpoint_metrics);
    au_appender_start();
    au_checkpointer_start();
}

void au_stop(void)
{
    au_checkpointer_stop();
    au_appender_stop();
    au_keys_release();
}
