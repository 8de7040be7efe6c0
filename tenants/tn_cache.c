/* Tenant state for hot paths (every token request and NGSI request asks
 * whether a tenant is active). Entries are dropped on NOTIFY renkei_tenants
 * from any hub node; while the listener is not connected the cache is
 * bypassed. A generation counter keeps a load that raced with a change from
 * storing what it read before the change. */
#include <pthread.h>
#include <stdatomic.h>

#include "core/db_listen.h"
#include "core/log.h"
#include "tenants/tn.h"

#define SLOTS     1024 /* a prefecture has tens to hundreds of tenants */
#define MAX_ENTRY 8192
#define TTL_US    (300u * 1000000u) /* a safety net only: NOTIFY does the work */

struct entry {
    struct entry *next;
    char id[51];
    struct tn_brief brief;
    uint64_t loaded_us;
};

static struct {
    pthread_rwlock_t lock;
    struct entry *slots[SLOTS];
    size_t count;
    atomic_ullong generation;
    bool active;
} cache = {.lock = PTHREAD_RWLOCK_INITIALIZER};

static unsigned slot_of(const char *id)
{
    return core_hash_str(id) % SLOTS;
}

static void clear_locked(void)
{
    for (size_t i = 0; i < SLOTS; i++) {
        struct entry *e = cache.slots[i];
        while (e) {
            struct entry *next = e->next;
            free(e);
            e = next;
        }
        cache.slots[i] = NULL;
    }
    cache.count = 0;
}

static void on_change(const char *payload, void *arg)
{
    (void)arg;
    pthread_rwlock_wrlock(&cache.lock);
    atomic_fetch_add(&cache.generation, 1);
    struct entry **pp = &cache.slots[slot_of(payload)];
    while (*pp) {
        if (strcmp((*pp)->id, payload) == 0) {
            struct entry *dead = *pp;
            *pp = dead->next;
            free(dead);
            cache.count--;
            break;
        }
        pp = &(*pp)->next;
    }
    pthread_rwlock_unlock(&cache.lock);
}

void tn_cache_forget(const char *id)
{
    on_change(id, NULL);
}

static void on_reset(void *arg)
{
    (void)arg;
    pthread_rwlock_wrlock(&cache.lock);
    atomic_fetch_add(&cache.generation, 1);
    clear_locked();
    pthread_rwlock_unlock(&cache.lock);
}

void tn_cache_init(void)
{
    cache.active = true;
    core_db_listen("renkei_tenants", on_change, on_reset, NULL);
}

void tn_cache_release(void)
{
    pthread_rwlock_wrlock(&cache.lock);
    clear_locked();
    cache.active = false;
    pthread_rwlock_unlock(&cache.lock);
}

static bool lookup(const char *id, struct tn_brief *out)
{
    bool hit = false;
    uint64_t now = core_now_us();
    pthread_rwlock_rdlock(&cache.lock);
    for (struct entry *e = cache.slots[slot_of(id)]; e; e = e->next) {
        if (strcmp(e->id, id) == 0 && now - e->loaded_us < TTL_US) {
            *out = e->brief;
            hit = true;
            break;
        }
    }
    pthread_rwlock_unlock(&cache.lock);
    return hit;
}

static void store(const char *id, const struct tn_brief *b, unsigned long long gen)
{
    pthread_rwlock_wrlock(&cache.lock);
    if (atomic_load(&cache.generation) != gen || !core_db_listen_connected()) {
        pthread_rwlock_unlock(&cache.lock);
        return; /* something changed while we read: do not keep it */
    }
    struct entry **pp = &cache.slots[slot_of(id)];
    for (struct entry *e = *pp; e; e = e->next) {
        if (strcmp(e->id, id) == 0) {
            e->brief = *b;
            e->loaded_us = core_now_us();
            pthread_rwlock_unlock(&cache.lock);
            return;
        }
    }
    if (cache.count >= MAX_ENTRY)
        clear_locked(); /* unbounded ids cannot grow memory: start over */
    struct entry *e = xcalloc(1, sizeof *e);
    xsnprintf(e->id, sizeof e->id, "%s", id);
    e->brief = *b;
    e->loaded_us = core_now_us();
    e->next = *pp;
    *pp = e;
    cache.count++;
    pthread_rwlock_unlock(&cache.lock);
}

enum tn_rc tn_brief(const char *id, struct tn_brief *out)
{
    if (!core_tenant_id_ok(id))
        return TN_NOT_FOUND;
    bool usable = cache.active && core_db_listen_connected();
    if (usable && lookup(id, out))
        return TN_OK;
    unsigned long long gen = atomic_load(&cache.generation);
    struct tn_tenant t;
    struct tn_result res;
    enum tn_rc rc = tn_get(CORE_DB_PLATFORM, id, &t, &res);
    if (rc != TN_OK)
        return rc;
    out->state = t.state;
    out->hosted = t.hosted;
    tn_tenant_release(&t);
    if (usable)
        store(id, out, gen);
    return TN_OK;
}
