#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "core/db_listen.h"
#include "core/log.h"
#include "core/reload.h"

#define MAX_CHANNELS 16
/* at most this long after the start, when the first loads have not all run */
#define LISTEN_DEFER_MS 1000

struct channel {
    const char *name;
    core_db_notify_fn on_notify;
    core_db_reset_fn on_reset;
    void *arg;
};

static struct channel channels[MAX_CHANNELS];
static size_t nchannels;
static char *listen_conninfo;
static pthread_t thread;
static bool running;
static int stop_pipe[2] = {-1, -1};
static atomic_bool connected;

void core_db_listen(const char *channel, core_db_notify_fn on_notify, core_db_reset_fn on_reset,
                    void *arg)
{
    if (nchannels == MAX_CHANNELS ||
        strspn(channel, "abcdefghijklmnopqrstuvwxyz_") != strlen(channel)) {
        core_log_bug("cannot listen to channel %s", channel);
        abort();
    }
    channels[nchannels++] = (struct channel){channel, on_notify, on_reset, arg};
}

bool core_db_listen_connected(void)
{
    return atomic_load(&connected);
}

/* Waits up to ms for the stop pipe; true when asked to stop. */
static bool wait_stop(int ms)
{
    struct pollfd p = {.fd = stop_pipe[0], .events = POLLIN};
    return poll(&p, 1, ms) > 0;
}

static PGconn *connect_and_listen(void)
{
    const char *keys[] = {"application_name", "connect_timeout", "keepalives",
                          "keepalives_idle",  "dbname",          NULL};
    const char *vals[] = {"renkei listen", "5", "1", "30", listen_conninfo, NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(pg) != CONNECTION_OK) {
        PQfinish(pg);
        return NULL;
    }
    for (size_t i = 0; i < nchannels; i++) {
        char *sql = xasprintf("LISTEN %s", channels[i].name);
        PGresult *r = PQexec(pg, sql);
        free(sql);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) {
            PQfinish(pg);
            return NULL;
        }
    }
    return pg;
}

static void *listen_main(void *unused)
{
    (void)unused;
    int backoff_ms = 200;
    bool logged_down = false;
    /* The loads that readiness waits for go first, on the pool's first
     * connection: the server forks one backend at a time, and the caches this
     * connection keeps coherent are read when it is up (the reset callbacks). */
    core_reload_wait(LISTEN_DEFER_MS);
    for (;;) {
        PGconn *pg = connect_and_listen();
        if (!pg) {
            if (!logged_down)
                core_logf(CORE_LOG_WARN, "cache listener cannot reach the database; caches are "
                                         "bypassed until it can");
            logged_down = true;
            if (wait_stop(backoff_ms))
                return NULL;
            backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
            continue;
        }
        backoff_ms = 200;
        if (logged_down)
            core_info("cache listener connected again");
        logged_down = false;
        /* Anything may have changed while we were not listening. */
        for (size_t i = 0; i < nchannels; i++)
            if (channels[i].on_reset)
                channels[i].on_reset(channels[i].arg);
        atomic_store(&connected, true);
        bool stop = false;
        while (!stop) {
            struct pollfd p[2] = {{.fd = PQsocket(pg), .events = POLLIN},
                                  {.fd = stop_pipe[0], .events = POLLIN}};
            if (poll(p, 2, 30000) < 0 && errno != EINTR)
                break;
            if (p[1].revents) {
                stop = true;
                break;
            }
            if (!PQconsumeInput(pg))
                break;
            PGnotify *n;
            while ((n = PQnotifies(pg))) {
                for (size_t i = 0; i < nchannels; i++) {
                    if (strcmp(n->relname, channels[i].name) == 0 && channels[i].on_notify)
                        channels[i].on_notify(n->extra, channels[i].arg);
                }
                PQfreemem(n);
            }
            if (PQstatus(pg) != CONNECTION_OK)
                break;
        }
        atomic_store(&connected, false);
        PQfinish(pg);
        if (stop)
            return NULL;
    }
}

void core_db_listen_start(const char *conninfo)
{
    if (running || nchannels == 0)
        return;
    listen_conninfo = xstrdup(conninfo);
    if (pipe(stop_pipe) != 0) {
        core_log_bug("pipe: %s", strerror(errno));
        abort();
    }
    if (pthread_create(&thread, NULL, listen_main, NULL) != 0) {
        core_log_bug("cannot start the cache listener thread");
        abort();
    }
    running = true;
}

void core_db_listen_stop(void)
{
    if (running) {
        (void)!write(stop_pipe[1], "x", 1);
        pthread_join(thread, NULL);
        close(stop_pipe[0]);
        close(stop_pipe[1]);
        stop_pipe[0] = stop_pipe[1] = -1;
        running = false;
    }
    free(listen_conninfo);
    listen_conninfo = NULL;
    nchannels = 0;
    atomic_store(&connected, false);
}
