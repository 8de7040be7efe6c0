/* The audit module's start and stop with `serve`. */
#include "audit/au_internal.h"
#include "core/db_listen.h"
#include "core/metrics.h"

static void on_keys_changed(const char *kid, void *arg)
{
    (void)kid;
    (void)arg;
    au_keys_load();
}

static void on_keys_reset(void *arg)
{
    (void)arg;
    au_keys_load();
}

void au_start(void)
{
    core_db_listen("renkei_audit_keys", on_keys_changed, on_keys_reset, NULL);
    core_metrics_add_collector(au_metrics);
    au_appender_start();
    au_checkpointer_start();
}

void au_stop(void)
{
    au_checkpointer_stop();
    au_appender_stop();
    au_keys_release();
}
