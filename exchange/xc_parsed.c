/* The shared cache of parsed attributes (see xc_parsed.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/strbuf.h"
#include "exchange/xc_parsed.h"

/* Direct-mapped: a text's slot is fixed by its hash, a newcomer replaces
 * the occupant. Locks are striped so two threads rarely meet. */
#define SLOTS   4096
#define STRIPES 64
#define MAX_LEN (64 * 1024) /* bigger texts are parsed every time */

struct slot {
    uint64_t hash;
    size_t len;
    char *text;
    json_t *value;
};

static struct slot slots[SLOTS];
static pthread_mutex_t stripes[STRIPES] = {[0 ... STRIPES - 1] = PTHREAD_MUTEX_INITIALIZER};
static atomic_size_t kept_bytes;
static atomic_ullong hits, misses;

/* Eight bytes a step (multiply and fold, as in FNV but by words): cheap
 * next to parsing the same bytes. Equal texts are confirmed by memcmp. */
static uint64_t text_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull ^ len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h ^ (h >> 32);
}

json_t *xc_parsed_get(const char *text, size_t len)
{
    if (len > MAX_LEN) {
        atomic_fetch_add(&misses, 1);
        return json_loadb(text, len, 0, NULL);
    }
    uint64_t h = text_hash(text, len);
    size_t i = (size_t)(h % SLOTS);
    pthread_mutex_t *mu = &stripes[i % STRIPES];
    struct slot *s = &slots[i];
    pthread_mutex_lock(mu);
    if (s->value && s->hash == h && s->len == len && memcmp(s->text, text, len) == 0) {
        json_t *v = json_incref(s->value);
        pthread_mutex_unlock(mu);
        atomic_fetch_add(&hits, 1);
        return v;
    }
    pthread_mutex_unlock(mu);
    atomic_fetch_add(&misses, 1);
    json_t *v = json_loadb(text, len, 0, NULL);
    if (!v)
        return NULL;
    char *copy = xmalloc(len);
    memcpy(copy, text, len);
    json_t *old_value = NULL;
    char *old_text = NULL;
    pthread_mutex_lock(mu);
    size_t freed = s->value ? s->len : 0;
    if (atomic_load(&kept_bytes) - freed + len <= XC_PARSED_BUDGET) {
        old_value = s->value;
        old_text = s->text;
        atomic_fetch_sub(&kept_bytes, freed);
        atomic_fetch_add(&kept_bytes, len);
        *s = (struct slot){.hash = h, .len = len, .text = copy, .value = json_incref(v)};
        copy = NULL;
    }
    pthread_mutex_unlock(mu);
    free(copy);
    free(old_text);
    json_decref(old_value);
    return v;
}

void xc_parsed_clear(void)
{
    for (size_t i = 0; i < SLOTS; i++) {
        pthread_mutex_t *mu = &stripes[i % STRIPES];
        pthread_mutex_lock(mu);
        struct slot s = slots[i];
        if (s.value)
            atomic_fetch_sub(&kept_bytes, s.len);
        slots[i] = (struct slot){0};
        pthread_mutex_unlock(mu);
        free(s.text);
        json_decref(s.value);
    }
}

void xc_parsed_metrics(struct strbuf *out)
{
    strbuf_addf(out,
                "# HELP renkei_ngsi_parsed_total Stored entities read by queries, by whether "
                "their parsed form was shared (hit) or parsed anew (miss).\n"
                "# TYPE renkei_ngsi_parsed_total counter\n"
                "renkei_ngsi_parsed_total{result=\"hit\"} %llu\n"
                "renkei_ngsi_parsed_total{result=\"miss\"} %llu\n"
                "# HELP renkei_ngsi_parsed_bytes Bytes of stored text whose parsed form is kept.\n"
                "# TYPE renkei_ngsi_parsed_bytes gauge\n"
                "renkei_ngsi_parsed_bytes %zu\n",
                (unsigned long long)atomic_load(&hits), (unsigned long long)atomic_load(&misses),
                atomic_load(&kept_bytes));
}
