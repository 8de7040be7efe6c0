/*
 * Audit append throughput: W writer threads call au_append() (group commit,
 * synchronous_commit on) for S seconds; prints one JSON line with the rate
 * and latency percentiles. Not a test; run by ops/bench/audit.
 * usage: renkei-bench-audit CONNINFO WRITERS SECONDS
 *        renkei-bench-audit CONNINFO fill N   (N entries in batches of 500)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "audit/au.h"
#include "audit/au_internal.h"
#include "core/crypto.h"
#include "core/db.h"
#include "core/log.h"

static atomic_bool stop;
static atomic_long done, failed;

#define SAMPLES 200000

struct w {
    int id;
    uint32_t *lat;
    size_t n;
};

static void *writer(void *arg)
{
    struct w *w = arg;
    char client[32];
    xsnprintf(client, sizeof client, "bench%d", w->id);
    json_t *request =
        json_pack("{s:s, s:s, s:[s], s:[s,s]}", "method", "GET", "path", "/v2/entities", "types",
                  "Shelter", "attrs", "capacity", "location");
    json_t *outcome = json_pack("{s:i, s:i, s:i, s:s}", "status", 200, "entities", 12, "bytes",
                                4096, "digest", "Qm9keSBkaWdlc3QgaGVyZSBmb3IgdGhlIGJlbmNobWFyaw");
    struct au_entry e = {.kind = "transfer",
                         .decision = "permit",
                         .consumer_tenant = "town_a",
                         .consumer_client = client,
                         .provider = "town_b",
                         .agreement = "agreement-0001",
                         .purpose = "disaster",
                         .resident = "r8Kp2dM2b0Zr1FJ3GRZ8iJQm3w3cFDX8tqXyX1aWq0c",
                         .request = request,
                         .outcome = outcome};
    while (!atomic_load(&stop)) {
        uint64_t t0 = core_now_us();
        if (!au_append(&e, NULL)) {
            atomic_fetch_add(&failed, 1);
            continue;
        }
        uint64_t dt = core_now_us() - t0;
        if (w->n < SAMPLES)
            w->lat[w->n++] = (uint32_t)dt;
        atomic_fetch_add(&done, 1);
    }
    json_decref(request);
    json_decref(outcome);
    return NULL;
}

static int fill(const char *conninfo, long n)
{
    core_db_init(conninfo, 2);
    json_t *request =
        json_pack("{s:s, s:s, s:[s], s:[s,s]}", "method", "GET", "path", "/v2/entities", "types",
                  "Shelter", "attrs", "capacity", "location");
    json_t *outcome = json_pack("{s:i, s:i, s:i, s:s}", "status", 200, "entities", 12, "bytes",
                                4096, "digest", "Qm9keSBkaWdlc3QgaGVyZSBmb3IgdGhlIGJlbmNobWFyaw");
    struct au_entry e = {.kind = "transfer",
                         .decision = "permit",
                         .consumer_tenant = "town_a",
                         .consumer_client = "bench",
                         .provider = "town_b",
                         .agreement = "agreement-0001",
                         .purpose = "disaster",
                         .resident = "r8Kp2dM2b0Zr1FJ3GRZ8iJQm3w3cFDX8tqXyX1aWq0c",
                         .request = request,
                         .outcome = outcome};
    const struct au_entry *batch[500];
    for (int i = 0; i < 500; i++)
        batch[i] = &e;
    uint64_t t0 = core_now_us();
    int rc = 0;
    for (long done_n = 0; done_n < n;) {
        size_t k = n - done_n < 500 ? (size_t)(n - done_n) : 500;
        if (!au_append_batch(batch, k, NULL)) {
            rc = 1;
            break;
        }
        done_n += (long)k;
    }
    printf("{\"filled\": %ld, \"seconds\": %.1f}\n", n, (double)(core_now_us() - t0) / 1e6);
    json_decref(request);
    json_decref(outcome);
    core_db_shutdown();
    return rc;
}

static int cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s CONNINFO WRITERS SECONDS\n", argv[0]);
        return 2;
    }
    core_log_set_level(CORE_LOG_ERROR);
    if (strcmp(argv[2], "fill") == 0)
        return fill(argv[1], strtol(argv[3], NULL, 10));
    long writers = strtol(argv[2], NULL, 10), secs = strtol(argv[3], NULL, 10);
    core_db_init(argv[1], writers < 4 ? 4 : (int)writers + 2);
    au_appender_start();
    struct w *ws = xcalloc((size_t)writers, sizeof *ws);
    pthread_t *t = xcalloc((size_t)writers, sizeof *t);
    uint64_t t0 = core_now_us();
    for (long i = 0; i < writers; i++) {
        ws[i].id = (int)i;
        ws[i].lat = xmalloc(SAMPLES * sizeof(uint32_t));
        pthread_create(&t[i], NULL, writer, &ws[i]);
    }
    sleep((unsigned)secs);
    atomic_store(&stop, true);
    for (long i = 0; i < writers; i++)
        pthread_join(t[i], NULL);
    double el = (double)(core_now_us() - t0) / 1e6;
    size_t total = 0;
    for (long i = 0; i < writers; i++)
        total += ws[i].n;
    uint32_t *all = xmalloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (long i = 0; i < writers; i++) {
        memcpy(all + k, ws[i].lat, ws[i].n * sizeof *all);
        k += ws[i].n;
        free(ws[i].lat);
    }
    qsort(all, total, sizeof *all, cmp);
    printf("{\"writers\": %ld, \"appends_per_s\": %.0f, \"p50_ms\": %.2f, \"p99_ms\": %.2f, "
           "\"failed\": %ld}\n",
           writers, (double)atomic_load(&done) / el, total ? all[total / 2] / 1000.0 : 0.0,
           total ? all[total * 99 / 100] / 1000.0 : 0.0, atomic_load(&failed));
    free(all);
    free(ws);
    free(t);
    au_appender_stop();
    core_db_shutdown();
    return 0;
}
