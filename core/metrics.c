#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/http.h"
#include "core/metrics.h"

static const unsigned statuses[] = {
    200, 201, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 406,
    409, 410, 411, 412, 413, 414, 415, 422, 429, 431, 500, 501, 502, 503, 504,
};
#define NSTATUS (ARRAY_SIZE(statuses) + 1) /* last: any other */

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKET ARRAY_SIZE(buckets)

/* One slot per routed method, and one more (OTHER) for the rest. */
#define NMETHOD (CORE_METHOD__COUNT + 1)

struct route_stats {
    atomic_uint_fast64_t count[NMETHOD][NSTATUS];
    atomic_uint_fast64_t bucket[NBUCKET + 1]; /* last: +Inf */
    atomic_uint_fast64_t sum_us;
};

static struct route_stats *stats; /* nroutes + 1 (unmatched) */
static const char **route_names;
static size_t nroutes;
static core_metrics_collector collectors[16];
static size_t ncollectors;
static time_t started;

void core_metrics_init(const struct core_router *router)
{
    nroutes = core_router_count(router);
    stats = xcalloc(nroutes + 1, sizeof *stats);
    route_names = xcalloc(nroutes + 1, sizeof *route_names);
    for (size_t i = 0; i < nroutes; i++)
        route_names[i] = core_router_at(router, i)->pattern;
    route_names[nroutes] = "unmatched";
    started = time(NULL);
}

void core_metrics_release(void)
{
    free(stats);
    free(route_names);
    stats = NULL;
    route_names = NULL;
    nroutes = 0;
    ncollectors = 0;
}

void core_metrics_add_collector(core_metrics_collector fn)
{
    if (ncollectors < ARRAY_SIZE(collectors))
        collectors[ncollectors++] = fn;
}

static size_t status_index(unsigned status)
{
    for (size_t i = 0; i < ARRAY_SIZE(statuses); i++) {
        if (statuses[i] == status)
            return i;
    }
    return ARRAY_SIZE(statuses);
}

void core_metrics_observe(long route_id, enum core_method method, unsigned status,
                          uint64_t duration_us)
{
    if (!stats)
        return;
    size_t r = route_id < 0 || (size_t)route_id >= nroutes ? nroutes : (size_t)route_id;
    if ((unsigned)method > CORE_METHOD__COUNT)
        method = CORE_METHOD__COUNT;
    struct route_stats *s = &stats[r];
    atomic_fetch_add_explicit(&s->count[method][status_index(status)], 1, memory_order_relaxed);
    double secs = (double)duration_us / 1e6;
    size_t b = 0;
    while (b < NBUCKET && secs > buckets[b])
        b++;
    atomic_fetch_add_explicit(&s->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_us, duration_us, memory_order_relaxed);
}

static void render_requests(struct strbuf *out)
{
    strbuf_adds(out, "# HELP renkei_http_requests_total HTTP requests by route, method and "
                     "status.\n# TYPE renkei_http_requests_total counter\n");
    for (size_t r = 0; r <= nroutes; r++) {
        for (int m = 0; m < (int)NMETHOD; m++) {
            for (size_t st = 0; st < NSTATUS; st++) {
                uint64_t v = atomic_load_explicit(&stats[r].count[m][st], memory_order_relaxed);
                if (!v)
                    continue;
                char code[8];
                if (st < ARRAY_SIZE(statuses))
                    snprintf(code, sizeof code, "%u", statuses[st]);
                else
                    snprintf(code, sizeof code, "other");
                strbuf_addf(out,
                            "renkei_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} "
                            "%llu\n",
                            route_names[r],
                            m == CORE_METHOD__COUNT ? "OTHER"
                                                    : core_method_name((enum core_method)m),
                            code, (unsigned long long)v);
            }
        }
    }
}

static void render_durations(struct strbuf *out)
{
    strbuf_adds(out, "# HELP renkei_http_request_duration_seconds Time from the request line to "
                     "the end of the reply.\n"
                     "# TYPE renkei_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r <= nroutes; r++) {
        uint64_t counts[NBUCKET + 1], total = 0;
        for (size_t b = 0; b <= NBUCKET; b++) {
            counts[b] = atomic_load_explicit(&stats[r].bucket[b], memory_order_relaxed);
            total += counts[b];
        }
        if (!total)
            continue;
        uint64_t cum = 0;
        for (size_t b = 0; b < NBUCKET; b++) {
            cum += counts[b];
            strbuf_addf(
                out, "renkei_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                route_names[r], buckets[b], (unsigned long long)cum);
        }
        strbuf_addf(out,
                    "renkei_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
                    "renkei_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                    "renkei_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                    route_names[r], (unsigned long long)total, route_names[r],
                    (double)atomic_load_explicit(&stats[r].sum_us, memory_order_relaxed) / 1e6,
                    route_names[r], (unsigned long long)total);
    }
}

static void render_process(struct strbuf *out)
{
    long rss_pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        long size;
        if (fscanf(f, "%ld %ld", &size, &rss_pages) != 2)
            rss_pages = 0;
        fclose(f);
    }
    strbuf_addf(out,
                "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                "# TYPE process_resident_memory_bytes gauge\n"
                "process_resident_memory_bytes %ld\n"
                "# HELP process_start_time_seconds Start time of the process since the epoch.\n"
                "# TYPE process_start_time_seconds gauge\n"
                "process_start_time_seconds %lld\n"
                "# HELP renkei_build_info The running version.\n"
                "# TYPE renkei_build_info gauge\n"
                "renkei_build_info{version=\"%s\"} 1\n"
                "# HELP renkei_http_requests_in_flight Requests started and not yet finished.\n"
                "# TYPE renkei_http_requests_in_flight gauge\n"
                "renkei_http_requests_in_flight %ld\n"
                "# HELP renkei_http_replies_waiting Replies held until what they wait for is done "
                "(a cross-town reply: its audit entry committed).\n"
                "# TYPE renkei_http_replies_waiting gauge\n"
                "renkei_http_replies_waiting %ld\n"
                "# HELP renkei_http_replies_refused_total Replies refused (503) because too many "
                "replies, or bytes, were waiting already.\n"
                "# TYPE renkei_http_replies_refused_total counter\n"
                "renkei_http_replies_refused_total %llu\n",
                rss_pages * sysconf(_SC_PAGESIZE), (long long)started, RENKEI_VERSION,
                core_http_in_flight(), core_http_replies_waiting(), core_http_replies_refused());
}

char *core_metrics_render(size_t *len)
{
    struct strbuf out;
    strbuf_init(&out, 64u << 20);
    if (stats) {
        render_requests(&out);
        render_durations(&out);
    }
    render_process(&out);
    for (size_t i = 0; i < ncollectors; i++)
        collectors[i](&out);
    return strbuf_detach(&out, len);
}
