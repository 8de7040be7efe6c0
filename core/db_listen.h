#ifndef CORE_DB_LISTEN_H
#define CORE_DB_LISTEN_H

#include "core/core.h"

/*
 * Cache coherence across hub nodes: one connection per process LISTENs to
 * PostgreSQL channels and calls back on NOTIFY. After every (re)connect the
 * reset callbacks run, since notifications sent while disconnected are lost:
 * a cache then drops everything. While not connected, caches must not be
 * trusted (core_db_listen_connected() is false): read the database instead.
 */
typedef void (*core_db_notify_fn)(const char *payload, void *arg);
typedef void (*core_db_reset_fn)(void *arg);

/* Registers a channel before core_db_listen_start (a constant name of
 * [a-z_]). Up to 16 registrations; a channel may be registered by several
 * caches, and each registration gets every notification and reset. */
void core_db_listen(const char *channel, core_db_notify_fn on_notify, core_db_reset_fn on_reset,
                    void *arg);
/* Starts the listener thread on conninfo; returns at once. */
void core_db_listen_start(const char *conninfo);
/* Stops the thread and closes its connection. */
void core_db_listen_stop(void);
/* True while LISTENing: notifications are being received. */
bool core_db_listen_connected(void);

#endif
