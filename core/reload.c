#include "core/reload.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "core/log.h"

#define RELOADS_MAX 8
/* after a failure: 1 s, doubling up to 30 s while the failures go on */
#define RETRY_US     1000000
#define RETRY_MAX_US 30000000

struct core_reload {
    const char *what;
    core_reload_fn load;
    unsigned long wanted, begun; /* requests made, and covered by a load; under mu */
    uint64_t retry_at;           /* after a failure (us), 0: none; under mu */
    uint64_t retry_us;           /* the last wait before a retry, under mu */
    atomic_bool loaded;          /* a load succeeded */
    atomic_bool failed;          /* the last load failed */
    atomic_bool tried;           /* a load ran, well or not */
    atomic_bool blocked;         /* core_reload_block: not ready, whatever loaded */
    char block_why[512];         /* under mu */
    time_t block_from;           /* the block holds from then (0: at once); under mu */
    bool gate;                   /* core_reload_gate */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* work for the thread, or stopping */
    pthread_cond_t settled; /* a load finished */
    pthread_t thread;
    bool running, stopping;
    struct core_reload r[RELOADS_MAX];
    size_t n;
} rl = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* The condition variables live as long as the process: a change-feed
 * callback may still ask for a reload after core_reload_stop. */
static pthread_once_t cv_once = PTHREAD_ONCE_INIT;

static void cv_init(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&rl.cv, &attr);
    pthread_cond_init(&rl.settled, &attr);
    pthread_condattr_destroy(&attr);
}

static _Thread_local struct core_reload *current;

struct core_reload *core_reload_add(const char *what, core_reload_fn load)
{
    if (rl.n == RELOADS_MAX) {
        core_log_bug("too many reloads");
        abort();
    }
    struct core_reload *r = &rl.r[rl.n++];
    *r = (struct core_reload){.what = what, .load = load, .wanted = 1};
    return r;
}

void core_reload_request(struct core_reload *r)
{
    pthread_once(&cv_once, cv_init);
    pthread_mutex_lock(&rl.mu);
    r->wanted++;
    pthread_cond_signal(&rl.cv);
    pthread_mutex_unlock(&rl.mu);
}

void core_reload_mark(void)
{
    struct core_reload *r = current;
    if (!r)
        return;
    pthread_mutex_lock(&rl.mu);
    r->begun = r->wanted;
    pthread_mutex_unlock(&rl.mu);
}

/* Whether the load at i waits for a gate before it (under mu). */
static bool gated_out(size_t i)
{
    for (size_t j = 0; j < i; j++) {
        const struct core_reload *g = &rl.r[j];
        if (g->gate &&
            (atomic_load(&g->blocked) || atomic_load(&g->failed) || !atomic_load(&g->loaded)))
            return true;
    }
    return false;
}

void core_reload_gate(struct core_reload *r)
{
    r->gate = true;
}

/* The next load due, or NULL with *wait_us until the earliest retry (0:
 * none). Under mu. */
static struct core_reload *next_due(uint64_t now, uint64_t *wait_us)
{
    *wait_us = 0;
    for (size_t i = 0; i < rl.n; i++) {
        struct core_reload *r = &rl.r[i];
        if (gated_out(i))
            continue;
        if (r->retry_at) {
            if (now >= r->retry_at || r->begun != r->wanted)
                return r;
            uint64_t w = r->retry_at - now;
            if (!*wait_us || w < *wait_us)
                *wait_us = w;
        } else if (r->begun != r->wanted) {
            return r;
        }
    }
    return NULL;
}

static void *reload_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&rl.mu);
    while (!rl.stopping) {
        uint64_t wait_us;
        struct core_reload *r = next_due(core_now_us(), &wait_us);
        if (!r) {
            if (!wait_us) {
                pthread_cond_wait(&rl.cv, &rl.mu);
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                uint64_t ns = (uint64_t)ts.tv_nsec + wait_us * 1000;
                ts.tv_sec += (time_t)(ns / 1000000000);
                ts.tv_nsec = (long)(ns % 1000000000);
                pthread_cond_timedwait(&rl.cv, &rl.mu, &ts);
            }
            continue;
        }
        unsigned long g = r->wanted;
        pthread_mutex_unlock(&rl.mu);
        current = r;
        bool ok = r->load();
        current = NULL;
        pthread_mutex_lock(&rl.mu);
        atomic_store(&r->failed, !ok);
        atomic_store(&r->tried, true);
        if (ok) {
            r->retry_at = 0;
            r->retry_us = 0;
            atomic_store(&r->loaded, true);
        } else {
            /* tried: what is left is the retry's */
            if (r->begun < g)
                r->begun = g;
            r->retry_us = r->retry_us ? r->retry_us * 2 : RETRY_US;
            if (r->retry_us > RETRY_MAX_US)
                r->retry_us = RETRY_MAX_US;
            r->retry_at = core_now_us() + r->retry_us;
        }
        pthread_cond_broadcast(&rl.settled);
    }
    pthread_mutex_unlock(&rl.mu);
    return NULL;
}

struct core_reload *core_reload_current(void)
{
    return current;
}

void core_reload_block(struct core_reload *r, const char *why)
{
    core_reload_block_from(r, why, 0);
}

void core_reload_block_from(struct core_reload *r, const char *why, time_t from)
{
    if (!r)
        return;
    pthread_once(&cv_once, cv_init);
    pthread_mutex_lock(&rl.mu);
    if (why)
        xsnprintf(r->block_why, sizeof r->block_why, "%s", why);
    r->block_from = why ? from : 0;
    atomic_store(&r->blocked, why != NULL);
    pthread_cond_signal(&rl.cv); /* a gate opened: what waited for it may run */
    pthread_mutex_unlock(&rl.mu);
}

/* Under mu. */
static bool reload_ready(char *why, size_t why_len, bool *failed)
{
    time_t now = time(NULL);
    for (size_t i = 0; i < rl.n; i++)
        if (atomic_load(&rl.r[i].blocked) && (!rl.r[i].block_from || now >= rl.r[i].block_from)) {
            *failed = true;
            xsnprintf(why, why_len, "%s", rl.r[i].block_why);
            return false;
        } else if (!atomic_load(&rl.r[i].loaded)) {
            *failed = atomic_load(&rl.r[i].failed);
            xsnprintf(why, why_len, "%s %s", rl.r[i].what,
                      *failed ? "could not be loaded (see the log)" : "are not loaded yet");
            return false;
        }
    return true;
}

bool core_reload_ready(char *why, size_t why_len, bool *failed)
{
    *failed = false;
    pthread_mutex_lock(&rl.mu);
    bool ok = reload_ready(why, why_len, failed);
    pthread_mutex_unlock(&rl.mu);
    return ok;
}

void core_reload_start(void)
{
    pthread_mutex_lock(&rl.mu);
    pthread_once(&cv_once, cv_init);
    if (!rl.running && rl.n) {
        rl.stopping = false;
        if (pthread_create(&rl.thread, NULL, reload_main, NULL) != 0) {
            core_log_bug("cannot start the reload thread");
            abort();
        }
        rl.running = true;
    }
    pthread_mutex_unlock(&rl.mu);
}

void core_reload_stop(void)
{
    pthread_mutex_lock(&rl.mu);
    bool was = rl.running;
    if (was) {
        rl.stopping = true;
        pthread_cond_signal(&rl.cv);
        pthread_cond_broadcast(&rl.settled); /* core_reload_wait returns */
    }
    pthread_mutex_unlock(&rl.mu);
    if (was)
        pthread_join(rl.thread, NULL);
    pthread_mutex_lock(&rl.mu);
    rl.running = false;
    rl.n = 0;
    pthread_mutex_unlock(&rl.mu);
}

static bool settled(void)
{
    for (size_t i = 0; i < rl.n; i++)
        if (!atomic_load(&rl.r[i].tried) && !gated_out(i))
            return false;
    return true;
}

bool core_reload_settled(void)
{
    pthread_once(&cv_once, cv_init);
    pthread_mutex_lock(&rl.mu);
    bool done = !rl.running || rl.stopping || settled();
    pthread_mutex_unlock(&rl.mu);
    return done;
}

bool core_reload_wait(int ms)
{
    pthread_once(&cv_once, cv_init);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (long)(ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&rl.mu);
    while (rl.running && !rl.stopping && !settled())
        if (pthread_cond_timedwait(&rl.settled, &rl.mu, &deadline) != 0)
            break;
    char why[128];
    bool failed;
    bool ok = reload_ready(why, sizeof why, &failed);
    pthread_mutex_unlock(&rl.mu);
    return ok;
}
