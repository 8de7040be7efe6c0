/*
 * Policy decisions per second, the engine alone. Not a test; run by
 * ops/bench/exchange.
 *
 *   renkei-bench-policy over SECONDS [THREADS...]
 *     xc_policy_decide_over (the pure rules) on a made-up set of 200
 *     agreements among 20 towns: 10 of them between takamatsu (provider)
 *     and kanonji (consumer), the permitting one (WaterLevelObserved,
 *     disaster-response, read, active) 5th of the pair in id order and
 *     about 100th of the whole set; the others of the pair fail at other
 *     stages (another type, purpose, action; suspended, revoked, proposed,
 *     expired). Two sets are decided over: all 200 (a linear scan, the
 *     rules' worst case) and the pair's 10 (what the hub hands the rules
 *     after its index's binary search).
 *   renkei-bench-policy full CONNINFO SECONDS PROVIDER CONSUMER TYPE PURPOSE [THREADS...]
 *     xc_policy_decide, the hub's whole decision: both towns' state from
 *     the tenant cache, the agreement index (loaded from the database once,
 *     kept coherent by LISTEN as in `renkei serve`), the rules over the
 *     pair's slice, the rate table. Needs a migrated database holding the
 *     towns and agreements; makes no change to it.
 *   renkei-bench-policy seed CONNINFO FILE
 *     Makes the agreements FILE lists, one a line: "PROVIDER CONSUMER TYPE
 *     ATTRS PURPOSE STATE" (ATTRS comma-separated or "-" for every one;
 *     STATE active, suspended, revoked or proposed), as `renkei agreement
 *     add` and approve/suspend/revoke would (each change audited), in one
 *     process rather than hundreds. Prints how many it made.
 *
 * Each decision copies the permitting agreement out and releases it again,
 * as the hub does. THREADS default "1 2". One JSON line per measurement:
 * {"engine", "agreements", "threads", "decisions", "seconds",
 *  "decisions_per_s", "ns_per_decision" (wall time per decision per thread),
 *  "verdict"}.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "core/db.h"
#include "core/db_listen.h"
#include "core/log.h"
#include "exchange/xc_policy.h"
#include "tenants/tn.h"

#define NTOWNS  20
#define NAGS    200
#define MAXTHR  64
#define ASK_TYP "WaterLevelObserved"
#define ASK_PUR "disaster-response"

static const char *const towns[NTOWNS] = {
    "takamatsu", "marugame", "sakaide",    "zentsuji", "kanonji",   "sanuki",   "higashikagawa",
    "mitoyo",    "tonosho",  "shodoshima", "miki",     "naoshima",  "utazu",    "ayagawa",
    "kotohira",  "tadotsu",  "manno",      "kagawa",   "tokushima", "matsuyama"};
static const char *const types[] = {"WaterLevelObserved", "Shelter",     "ParkingSpot",
                                    "AirQualityObserved", "Streetlight", "WeatherObserved"};
static const char *const purposes[] = {"disaster-response", "planning", "research", "tourism",
                                       "public-health"};
static const char *const attrs[] = {"waterLevel", "alertLevel", "location", "dateObserved",
                                    "station",    "capacity",   "occupancy"};

static char **list(const char *const *from, size_t n, size_t first, size_t count)
{
    char **v = xcalloc(count, sizeof *v);
    for (size_t i = 0; i < count; i++)
        v[i] = xstrdup(from[(first + i) % n]);
    return v;
}

/* One agreement; pair_stage < 0: an ordinary one of another pair. */
static void make(struct xc_agreement *a, size_t i, const char *provider, const char *consumer)
{
    memset(a, 0, sizeof *a);
    /* ids sort in creation order: "ag_" + 24 characters */
    xsnprintf(a->id, sizeof a->id, "ag_%024zu", i * 10 + 1000);
    xsnprintf(a->provider, sizeof a->provider, "%s", provider);
    xsnprintf(a->consumer, sizeof a->consumer, "%s", consumer);
    a->ntypes = 1 + i % 3;
    a->types = list(types, ARRAY_SIZE(types), i, a->ntypes);
    a->nattrs = i % 4 == 0 ? 0 : 2 + i % 4;
    a->attrs = a->nattrs ? list(attrs, ARRAY_SIZE(attrs), i, a->nattrs) : NULL;
    a->npurposes = 1 + i % 2;
    a->purposes = list(purposes, ARRAY_SIZE(purposes), i / 3, a->npurposes);
    a->actions = i % 5 == 0 ? XC_AG_READ | XC_AG_WRITE : XC_AG_READ;
    a->state = i % 11 == 0 ? XC_AG_SUSPENDED : i % 13 == 0 ? XC_AG_REVOKED : XC_AG_ACTIVE;
    a->valid_from = 1700000000;
    a->valid_until = i % 17 == 0 ? 1710000000 : 0;
    a->description = xstrdup("made up for the benchmark");
    xsnprintf(a->created_at, sizeof a->created_at, "2025-04-01T00:00:00Z");
    xsnprintf(a->updated_at, sizeof a->updated_at, "2025-04-01T00:00:00Z");
    a->version = 2;
}

/* The pair's 10: k = 4 permits; the others are close misses. */
static void make_pair(struct xc_agreement *a, size_t i, int k)
{
    make(a, i, "takamatsu", "kanonji");
    free(a->types[0]);
    free(a->purposes[0]);
    a->types[0] = xstrdup(k == 0 ? "Shelter" : ASK_TYP);
    a->purposes[0] = xstrdup(k == 1 ? "tourism" : ASK_PUR);
    a->actions = k == 2 ? XC_AG_WRITE : XC_AG_READ;
    a->state = k == 3   ? XC_AG_SUSPENDED
               : k == 5 ? XC_AG_REVOKED
               : k == 6 ? XC_AG_PROPOSED
                        : XC_AG_ACTIVE;
    a->valid_until = k == 7 ? 1710000000 : 0;
    if (k == 4) { /* the permitting one: the agreed attributes, no rate */
        for (size_t j = 0; j < a->nattrs; j++)
            free(a->attrs[j]);
        free(a->attrs);
        a->nattrs = 5;
        a->attrs = list(attrs, ARRAY_SIZE(attrs), 0, 5);
        a->rate_per_minute = 0;
    }
}

static struct xc_agreement ags[NAGS];
static size_t pair_lo, pair_n; /* the pair's slice once sorted */

static int by_pair(const void *x, const void *y)
{
    const struct xc_agreement *a = x, *b = y;
    int c = strcmp(a->consumer, b->consumer);
    if (!c)
        c = strcmp(a->provider, b->provider);
    return c ? c : strcmp(a->id, b->id);
}

static void build(void)
{
    int k = 0;
    for (size_t i = 0; i < NAGS; i++) {
        /* the pair's agreements at every 20th, from 10 on: the 5th is the 90th */
        if (i % 20 == 10 && k < 10) {
            make_pair(&ags[i], i, k++);
            continue;
        }
        size_t p = i % NTOWNS, c = (i * 7 + 3) % NTOWNS;
        if (c == p)
            c = (c + 1) % NTOWNS;
        if (!strcmp(towns[p], "takamatsu") && !strcmp(towns[c], "kanonji"))
            c = (c + 1) % NTOWNS;
        make(&ags[i], i, towns[p], towns[c]);
    }
}

static atomic_bool stop;

struct job {
    const struct xc_agreement *set; /* NULL: xc_policy_decide */
    size_t n;
    struct xc_policy_ask ask;
    long count;
    int verdict; /* 1 permit, 0 deny, -1 failed */
};

static void *loop(void *arg)
{
    struct job *j = arg;
    struct xc_decision d;
    long n = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int i = 0; i < 256; i++) {
            if (j->set) {
                xc_policy_decide_over(j->set, j->n, &j->ask, &d);
            } else if (!xc_policy_decide(&j->ask, &d)) {
                j->verdict = -1;
                atomic_store(&stop, true);
                break;
            }
            if (!d.permit)
                j->verdict = 0;
            xc_decision_release(&d);
            n++;
        }
    }
    j->count = n;
    return NULL;
}

static void measure(const char *engine, const struct xc_agreement *set, size_t n,
                    const struct xc_policy_ask *ask, int threads, int secs)
{
    struct job jobs[MAXTHR];
    pthread_t t[MAXTHR];
    atomic_store(&stop, false);
    uint64_t t0 = core_now_us();
    for (int i = 0; i < threads; i++) {
        jobs[i] = (struct job){.set = set, .n = n, .ask = *ask, .verdict = 1};
        pthread_create(&t[i], NULL, loop, &jobs[i]);
    }
    sleep((unsigned)secs);
    atomic_store(&stop, true);
    long total = 0;
    int verdict = 1;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        total += jobs[i].count;
        if (jobs[i].verdict < verdict)
            verdict = jobs[i].verdict;
    }
    double el = (double)(core_now_us() - t0) / 1e6;
    printf("{\"engine\": \"%s\", \"agreements\": %zu, \"threads\": %d, \"decisions\": %ld, "
           "\"seconds\": %.2f, \"decisions_per_s\": %.0f, \"ns_per_decision\": %.0f, "
           "\"verdict\": \"%s\"}\n",
           engine, n, threads, total, el, (double)total / el,
           total ? el * 1e9 * threads / (double)total : 0.0,
           verdict > 0    ? "permit"
           : verdict == 0 ? "deny"
                          : "failed");
    fflush(stdout);
}

static int threads_from(int argc, char **argv, int first, int *out)
{
    int n = 0;
    for (int i = first; i < argc && n < 8; i++) {
        long v = strtol(argv[i], NULL, 10);
        if (v < 1 || v > MAXTHR)
            return -1;
        out[n++] = (int)v;
    }
    if (!n) {
        out[n++] = 1;
        out[n++] = 2;
    }
    return n;
}

static char **split(const char *s, size_t *n)
{
    *n = 0;
    if (!strcmp(s, "-"))
        return NULL;
    char **v = xcalloc(strlen(s) / 2 + 2, sizeof *v);
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        v[(*n)++] = xstrndup(p, len);
        if (!comma)
            return v;
        p = comma + 1;
    }
}

static int seed(const char *conninfo, const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        perror(file);
        return 1;
    }
    core_db_init(conninfo, 1);
    char line[1024];
    int made = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        char *field[6], *save = NULL;
        int nf = 0;
        for (char *w = strtok_r(line, " \t\n", &save); w && nf < 6;
             w = strtok_r(NULL, " \t\n", &save))
            field[nf++] = w;
        if (nf != 6)
            continue;
        const char *p = field[0], *c = field[1], *t = field[2], *at = field[3], *u = field[4],
                   *st = field[5];
        struct xc_agreement a = {0}, out;
        xsnprintf(a.provider, sizeof a.provider, "%s", p);
        xsnprintf(a.consumer, sizeof a.consumer, "%s", c);
        a.types = split(t, &a.ntypes);
        a.attrs = split(at, &a.nattrs);
        a.purposes = split(u, &a.npurposes);
        a.actions = XC_AG_READ;
        xc_agreement_defaults(&a);
        char err[300];
        struct xc_ag_result res;
        if (!xc_agreement_check(&a, err, sizeof err)) {
            fprintf(stderr, "seed: %s -> %s: %s\n", p, c, err);
            xc_agreement_release(&a);
            rc = 1;
            break;
        }
        if (xc_agreement_create(CORE_DB_PLATFORM, &a, "bench", &out, &res) != XC_AG_OK) {
            fprintf(stderr, "seed: %s: %s\n", p, res.message);
            xc_agreement_release(&a);
            rc = 1;
            break;
        }
        xc_agreement_release(&a);
        char id[XC_AG_ID_LEN + 1];
        xsnprintf(id, sizeof id, "%s", out.id);
        xc_agreement_release(&out);
        enum xc_ag_state steps[2];
        int nsteps = 0;
        if (!strcmp(st, "active") || !strcmp(st, "suspended"))
            steps[nsteps++] = XC_AG_ACTIVE;
        if (!strcmp(st, "suspended"))
            steps[nsteps++] = XC_AG_SUSPENDED;
        if (!strcmp(st, "revoked"))
            steps[nsteps++] = XC_AG_REVOKED;
        for (int i = 0; i < nsteps; i++) {
            if (xc_agreement_set_state(CORE_DB_PLATFORM, id, steps[i], 0, "bench", &out, &res) !=
                XC_AG_OK) {
                fprintf(stderr, "seed: %s: %s\n", id, res.message);
                rc = 1;
                break;
            }
            xc_agreement_release(&out);
        }
        if (rc)
            break;
        made++;
    }
    fclose(f);
    core_db_shutdown();
    printf("%d\n", made);
    return rc;
}

static int usage(const char *me)
{
    fprintf(stderr,
            "usage: %s over SECONDS [THREADS...]\n"
            "       %s full CONNINFO SECONDS PROVIDER CONSUMER TYPE PURPOSE [THREADS...]\n"
            "       %s seed CONNINFO FILE\n",
            me, me, me);
    return 2;
}

int main(int argc, char **argv)
{
    core_log_set_level(CORE_LOG_ERROR);
    int thr[8], nthr;
    const char *type_list[1];
    struct xc_policy_ask ask = {
        .action = XC_AG_READ, .types = type_list, .ntypes = 1, .now = (int64_t)time(NULL)};
    if (argc >= 3 && !strcmp(argv[1], "over")) {
        int secs = (int)strtol(argv[2], NULL, 10);
        if (secs < 1 || (nthr = threads_from(argc, argv, 3, thr)) < 0)
            return usage(argv[0]);
        build();
        type_list[0] = ASK_TYP;
        ask.provider = "takamatsu";
        ask.consumer = "kanonji";
        ask.purpose = ASK_PUR;
        /* the whole set in creation order: the permitting one is the 90th */
        for (int i = 0; i < nthr; i++)
            measure("decide_over (all 200, scan)", ags, NAGS, &ask, thr[i], secs);
        /* the pair's slice, as the hub's index hands it over */
        qsort(ags, NAGS, sizeof *ags, by_pair);
        for (size_t i = 0; i < NAGS; i++) {
            if (!strcmp(ags[i].consumer, "kanonji") && !strcmp(ags[i].provider, "takamatsu")) {
                if (!pair_n)
                    pair_lo = i;
                pair_n++;
            }
        }
        for (int i = 0; i < nthr; i++)
            measure("decide_over (the pair's 10)", ags + pair_lo, pair_n, &ask, thr[i], secs);
        for (size_t i = 0; i < NAGS; i++)
            xc_agreement_release(&ags[i]);
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "seed"))
        return seed(argv[2], argv[3]);
    if (argc >= 8 && !strcmp(argv[1], "full")) {
        int secs = (int)strtol(argv[3], NULL, 10);
        if (secs < 1 || (nthr = threads_from(argc, argv, 8, thr)) < 0)
            return usage(argv[0]);
        ask.provider = argv[4];
        ask.consumer = argv[5];
        type_list[0] = argv[6];
        ask.purpose = argv[7];
        core_db_init(argv[2], 2);
        tn_cache_init();
        xc_policy_init();
        core_db_listen_start(argv[2]);
        for (int i = 0; i < 100 && !core_db_listen_connected(); i++)
            usleep(50 * 1000);
        if (!core_db_listen_connected()) {
            fprintf(stderr, "%s: the listener did not connect\n", argv[0]);
            return 1;
        }
        struct xc_decision d;
        if (!xc_policy_decide(&ask, &d)) { /* loads the index and the towns */
            fprintf(stderr, "%s: the database failed\n", argv[0]);
            return 1;
        }
        if (!d.permit)
            fprintf(stderr, "%s: the ask is denied: %s\n", argv[0], d.detail);
        xc_decision_release(&d);
        for (int i = 0; i < nthr; i++)
            measure("xc_policy_decide (index, towns, rate)", NULL, 0, &ask, thr[i], secs);
        core_db_listen_stop();
        xc_policy_release();
        tn_cache_release();
        core_db_shutdown();
        return 0;
    }
    return usage(argv[0]);
}
