#ifndef CORE_RELOAD_H
#define CORE_RELOAD_H

#include <time.h>

#include "core/core.h"

/*
 * Module state read from the database while serving (signing keys, say).
 * One thread runs every load, one at a time: a start then opens a single
 * database connection for all of them while the hub already answers, and
 * /readyz waits until each load has succeeded once.
 *
 * A load runs again after core_reload_request (the change feed's notify and
 * reset callbacks ask). Requests coalesce: a request made before a load's
 * transaction began is covered by that load, provided the load calls
 * core_reload_mark first thing in its transaction. A failed load is tried
 * again a second later, then after twice as long each time up to 30 s, or
 * at the next request.
 */
struct core_reload;
/* Loads; false (after logging) when the database did not answer. */
typedef bool (*core_reload_fn)(void);

/* Registers a load, before core_reload_start; what names it in readiness
 * ("the signing keys"). Its first run is asked for already. */
struct core_reload *core_reload_add(const char *what, core_reload_fn load);
void core_reload_request(struct core_reload *r);
/* Called by a load at the start of its transaction; a no-op elsewhere. */
void core_reload_mark(void);
/* A state no load can mend by itself (another node's key file, an old
 * master secret): the hub is not ready, and /readyz says why, until the
 * same registration calls it again with why NULL. r NULL: a no-op (a
 * command, no reload thread). core_reload_current: the registration whose
 * load runs on this thread, or NULL. */
void core_reload_block(struct core_reload *r, const char *why);
/* The same, holding only from the time from on (a key usable until then). */
void core_reload_block_from(struct core_reload *r, const char *why, time_t from);
/* Makes r a gate: the loads registered after it do not run while it is
 * blocked, failed or not yet loaded (the master secret: nothing is opened
 * or sealed under a master the database does not record). */
void core_reload_gate(struct core_reload *r);
struct core_reload *core_reload_current(void);
/* Starts the thread (when anything is registered). */
void core_reload_start(void);
/* Stops the thread after the load in progress; forgets the registrations. */
void core_reload_stop(void);
/* Readiness: true when every load has succeeded once; else why names the
 * first that has not, and *failed tells whether it has failed (rather than
 * not finished its first run). */
bool core_reload_ready(char *why, size_t why_len, bool *failed);
/* Waits until every load has run once, well or not, at most ms; true when
 * each has succeeded. */
bool core_reload_wait(int ms);
/* True once every load has run once (or none is registered, or the thread
 * is stopping). */
bool core_reload_settled(void);

#endif
