/* Policy decisions for requests that cross from one town to another.
 *
 * The index is one immutable snapshot of every agreement (revoked ones too,
 * so a Renkei-Agreement naming one is told it is revoked), sorted by
 * consumer, provider and id. A decision holds the read lock only while it
 * looks at the snapshot: no database round trip, microseconds. NOTIFY
 * renkei_agreements (any node's change) and a change committed here drop
 * the snapshot; the next decision loads a new one. While the listener is not
 * connected notifications may be lost, so decisions read the two towns'
 * agreements from the database each time instead.
 *
 * Rate limits count per agreement and minute in this process: with N hub
 * processes behind a load balancer the effective limit is up to N times the
 * agreed one.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/db_listen.h"
#include "core/log.h"
#include "exchange/xc_policy.h"
#include "tenants/tn.h"

/* ---- the rules (pure) ---- */

bool xc_rate_take(struct xc_rate *r, int limit, int64_t now)
{
    if (limit <= 0)
        return true;
    int64_t minute = now >= 0 ? now / 60 : -((-now + 59) / 60);
    if (r->minute != minute) {
        r->minute = minute;
        r->count = 0;
    }
    if (r->count >= limit)
        return false;
    r->count++;
    return true;
}

static bool has(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

/* How close an agreement comes to permitting the ask: the stage it fails
 * at, higher is closer; the most specific denial is the closest one's. */
enum stage {
    ST_TYPE,
    ST_ACTION,
    ST_PURPOSE,
    ST_ATTR,
    ST_REVOKED,
    ST_PROPOSED,
    ST_SUSPENDED,
    ST_TIME,
    ST_PERMIT,
};

static enum stage evaluate(const struct xc_agreement *a, const struct xc_policy_ask *ask,
                           const char **what)
{
    *what = NULL;
    for (size_t i = 0; i < ask->ntypes; i++) {
        if (!has(a->types, a->ntypes, ask->types[i])) {
            *what = ask->types[i];
            return ST_TYPE;
        }
    }
    if (!(a->actions & ask->action))
        return ST_ACTION;
    if (ask->purpose && !has(a->purposes, a->npurposes, ask->purpose))
        return ST_PURPOSE;
    for (size_t i = 0; a->nattrs && i < ask->nattrs; i++) {
        if (!has(a->attrs, a->nattrs, ask->attrs[i])) {
            *what = ask->attrs[i];
            return ST_ATTR;
        }
    }
    switch (a->state) {
    case XC_AG_REVOKED:
        return ST_REVOKED;
    case XC_AG_PROPOSED:
        return ST_PROPOSED;
    case XC_AG_SUSPENDED:
        return ST_SUSPENDED;
    case XC_AG_ACTIVE:
        break;
    }
    /* the window is [valid_from, valid_until) */
    if ((a->valid_from && ask->now < a->valid_from) ||
        (a->valid_until && ask->now >= a->valid_until))
        return ST_TIME;
    return ST_PERMIT;
}

/* A name from the request, echoed only when it is a plain NGSI name. */
static const char *echo(const char *s, bool purpose)
{
    if (!s)
        return "?";
    const char *why = purpose ? xc_ag_check_purpose(s) : NULL;
    if (!purpose) {
        size_t n = strlen(s);
        why = n == 0 || n > 64 ? "long" : NULL;
        for (size_t i = 0; !why && i < n; i++)
            if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f ||
                strchr("&?/#<>\"'=;()\\", s[i]))
                why = "odd";
    }
    return why ? "(the one requested)" : s;
}

static void join(char *out, size_t len, char *const *v, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used + 1 < len; i++) {
        int w = snprintf(out + used, len - used, "%s%s", i ? ", " : "", v[i]);
        if (w < 0 || (size_t)w >= len - used) {
            out[used] = '\0';
            break;
        }
        used += (size_t)w;
    }
}

void xc_policy_decide_over(const struct xc_agreement *ags, size_t n,
                           const struct xc_policy_ask *ask, struct xc_decision *out)
{
    memset(out, 0, sizeof *out);
    const struct xc_agreement *best = NULL;
    enum stage best_stage = ST_TYPE;
    const char *best_what = NULL;
    size_t pair = 0;
    for (size_t i = 0; i < n; i++) {
        const struct xc_agreement *a = &ags[i];
        if (strcmp(a->provider, ask->provider) != 0 || strcmp(a->consumer, ask->consumer) != 0)
            continue;
        pair++;
        if (ask->agreement && strcmp(a->id, ask->agreement) != 0)
            continue;
        const char *what;
        enum stage st = evaluate(a, ask, &what);
        bool fits = a->personal == ask->resident;
        bool best_fits = best && best->personal == ask->resident;
        if (!best || st > best_stage ||
            (st == best_stage &&
             (fits > best_fits || (fits == best_fits && strcmp(a->id, best->id) < 0)))) {
            best = a;
            best_stage = st;
            best_what = what;
        }
    }
    if (!best) {
        out->deny = XC_DENY_NO_AGREEMENT;
        if (ask->agreement && pair)
            snprintf(out->detail, sizeof out->detail,
                     "the agreement named is not one between provider %s and consumer %s",
                     ask->provider, ask->consumer);
        else
            snprintf(out->detail, sizeof out->detail,
                     "no agreement of %s (the provider) lets %s (the consumer) do this",
                     ask->provider, ask->consumer);
        return;
    }
    xc_agreement_copy(&out->ag, best);
    out->has_ag = true;
    const char *id = best->id;
    char buf[160], t[32];
    if (!ask->purpose) {
        out->deny = XC_DENY_NO_PURPOSE;
        snprintf(out->detail, sizeof out->detail,
                 "the request names no purpose: send Renkei-Purpose with one agreed in %s", id);
        return;
    }
    switch (best_stage) {
    case ST_PERMIT:
        out->permit = true;
        snprintf(out->detail, sizeof out->detail, "permitted by agreement %s", id);
        return;
    case ST_TYPE:
        out->deny = XC_DENY_TYPE;
        join(buf, sizeof buf, best->types, best->ntypes);
        snprintf(out->detail, sizeof out->detail, "entity type %s is not agreed in %s (agreed: %s)",
                 echo(best_what, false), id, buf);
        return;
    case ST_ACTION:
        out->deny = XC_DENY_ACTION;
        snprintf(out->detail, sizeof out->detail, "agreement %s allows %s only", id,
                 best->actions & XC_AG_READ ? "reading" : "writing");
        return;
    case ST_PURPOSE:
        out->deny = XC_DENY_PURPOSE;
        join(buf, sizeof buf, best->purposes, best->npurposes);
        snprintf(out->detail, sizeof out->detail, "purpose %s is not agreed in %s (agreed: %s)",
                 echo(ask->purpose, true), id, buf);
        return;
    case ST_ATTR:
        out->deny = XC_DENY_ATTR;
        snprintf(out->detail, sizeof out->detail, "attribute %s is not agreed in %s",
                 echo(best_what, false), id);
        return;
    case ST_REVOKED:
        out->deny = XC_DENY_REVOKED;
        snprintf(out->detail, sizeof out->detail, "agreement %s is revoked", id);
        return;
    case ST_PROPOSED:
        out->deny = XC_DENY_PROPOSED;
        snprintf(out->detail, sizeof out->detail, "agreement %s is not approved by %s yet", id,
                 best->provider);
        return;
    case ST_SUSPENDED:
        out->deny = XC_DENY_SUSPENDED;
        snprintf(out->detail, sizeof out->detail, "agreement %s is suspended", id);
        return;
    case ST_TIME:
        if (best->valid_from && ask->now < best->valid_from) {
            out->deny = XC_DENY_NOT_YET;
            xc_ag_time_format(best->valid_from, t);
            snprintf(out->detail, sizeof out->detail, "agreement %s is valid from %s", id, t);
        } else {
            out->deny = XC_DENY_EXPIRED;
            xc_ag_time_format(best->valid_until, t);
            snprintf(out->detail, sizeof out->detail, "agreement %s expired at %s", id, t);
        }
        return;
    }
}

void xc_decision_release(struct xc_decision *d)
{
    if (d->has_ag)
        xc_agreement_release(&d->ag);
    d->has_ag = false;
}

/* ---- the index ---- */

struct snap {
    struct xc_agreement *ags; /* sorted by consumer, provider, id */
    size_t n;
};

static struct {
    pthread_rwlock_t lock;
    pthread_mutex_t load_mu; /* one load at a time */
    struct snap *snap;       /* NULL: not loaded */
    atomic_ullong generation;
    bool active;
} idx = {.lock = PTHREAD_RWLOCK_INITIALIZER, .load_mu = PTHREAD_MUTEX_INITIALIZER};

static void snap_free(struct snap *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        xc_agreement_release(&s->ags[i]);
    free(s->ags);
    free(s);
}

static int by_pair(const void *x, const void *y)
{
    const struct xc_agreement *a = x, *b = y;
    int c = strcmp(a->consumer, b->consumer);
    if (!c)
        c = strcmp(a->provider, b->provider);
    return c ? c : strcmp(a->id, b->id);
}

/* The first agreement of consumer (and provider, when not NULL) in s. */
static size_t lower_bound(const struct snap *s, const char *consumer, const char *provider)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->ags[mid].consumer, consumer);
        if (!c && provider)
            c = strcmp(s->ags[mid].provider, provider);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void drop(void)
{
    pthread_rwlock_wrlock(&idx.lock);
    atomic_fetch_add(&idx.generation, 1);
    struct snap *old = idx.snap;
    idx.snap = NULL;
    pthread_rwlock_unlock(&idx.lock);
    snap_free(old);
}

static void on_notify(const char *payload, void *arg)
{
    (void)payload;
    (void)arg;
    drop();
}

static void on_reset(void *arg)
{
    (void)arg;
    drop();
}

void xc_policy_forget(void)
{
    drop();
}

void xc_policy_init(void)
{
    idx.active = true;
    core_db_listen("renkei_agreements", on_notify, on_reset, NULL);
}

void xc_policy_release(void)
{
    pthread_rwlock_wrlock(&idx.lock);
    struct snap *old = idx.snap;
    idx.snap = NULL;
    idx.active = false;
    pthread_rwlock_unlock(&idx.lock);
    snap_free(old);
}

/* Agreements as the platform sees them, optionally of one pair or consumer,
 * page by page. NULL when the database failed. */
static struct snap *read_db(const char *provider, const char *consumer, int state)
{
    struct snap *s = xcalloc(1, sizeof *s);
    size_t cap = 0;
    char after[XC_AG_ID_LEN + 1] = "";
    for (;;) {
        struct xc_ag_filter f = {provider, consumer, state, after[0] ? after : NULL, 1000};
        struct xc_agreement *items = NULL;
        size_t n = 0;
        struct xc_ag_result res;
        if (xc_agreement_list(CORE_DB_PLATFORM, &f, &items, &n, &res) != XC_AG_OK) {
            core_logf(CORE_LOG_WARN, "policy: cannot read agreements: %s", res.message);
            snap_free(s);
            return NULL;
        }
        if (s->n + n > cap) {
            cap = (s->n + n) * 2;
            s->ags = xrealloc(s->ags, cap * sizeof *s->ags);
        }
        if (n) /* items is NULL for none */
            memcpy(s->ags + s->n, items, n * sizeof *items);
        s->n += n;
        if (n)
            xsnprintf(after, sizeof after, "%s", items[n - 1].id);
        free(items);
        if (n < 1000)
            break;
    }
    if (s->n)
        qsort(s->ags, s->n, sizeof *s->ags, by_pair);
    return s;
}

/* Loads the snapshot unless one is there. False when the database failed. */
static bool load(void)
{
    pthread_mutex_lock(&idx.load_mu);
    pthread_rwlock_rdlock(&idx.lock);
    bool there = idx.snap != NULL;
    pthread_rwlock_unlock(&idx.lock);
    if (there) {
        pthread_mutex_unlock(&idx.load_mu);
        return true;
    }
    unsigned long long gen = atomic_load(&idx.generation);
    struct snap *s = read_db(NULL, NULL, -1);
    if (!s) {
        pthread_mutex_unlock(&idx.load_mu);
        return false;
    }
    pthread_rwlock_wrlock(&idx.lock);
    /* a change heard while reading may be missing from what was read */
    if (atomic_load(&idx.generation) == gen && core_db_listen_connected() && idx.active &&
        !idx.snap) {
        idx.snap = s;
        s = NULL;
    }
    pthread_rwlock_unlock(&idx.lock);
    snap_free(s);
    pthread_mutex_unlock(&idx.load_mu);
    return true;
}

/* ---- rate ---- */

#define RATE_SLOTS 4096

static struct {
    pthread_mutex_t mu;
    struct rate_slot {
        char id[XC_AG_ID_LEN + 1];
        struct xc_rate r;
    } slot[RATE_SLOTS];
    size_t used;
} rates = {.mu = PTHREAD_MUTEX_INITIALIZER};

static bool rate_take(const char *id, int limit, int64_t now)
{
    if (limit <= 0)
        return true;
    pthread_mutex_lock(&rates.mu);
    if (rates.used >= RATE_SLOTS * 3 / 4) {
        /* more limited agreements than slots: start counting over */
        memset(rates.slot, 0, sizeof rates.slot);
        rates.used = 0;
    }
    size_t i = core_hash_str(id) % RATE_SLOTS;
    while (rates.slot[i].id[0] && strcmp(rates.slot[i].id, id) != 0)
        i = (i + 1) % RATE_SLOTS;
    if (!rates.slot[i].id[0]) {
        xsnprintf(rates.slot[i].id, sizeof rates.slot[i].id, "%s", id);
        rates.slot[i].r.minute = 0;
        rates.slot[i].r.count = 0;
        rates.used++;
    }
    bool ok = xc_rate_take(&rates.slot[i].r, limit, now);
    pthread_mutex_unlock(&rates.mu);
    return ok;
}

/* ---- decisions ---- */

static bool usable(void)
{
    return idx.active && core_db_listen_connected();
}

/* Decides from the snapshot; false when there is none. */
static bool decide_indexed(const struct xc_policy_ask *ask, struct xc_decision *out)
{
    bool done = false;
    pthread_rwlock_rdlock(&idx.lock);
    const struct snap *s = idx.snap;
    if (s) {
        size_t lo = lower_bound(s, ask->consumer, ask->provider), hi = lo;
        while (hi < s->n && strcmp(s->ags[hi].consumer, ask->consumer) == 0 &&
               strcmp(s->ags[hi].provider, ask->provider) == 0)
            hi++;
        xc_policy_decide_over(s->ags + lo, hi - lo, ask, out);
        done = true;
    }
    pthread_rwlock_unlock(&idx.lock);
    return done;
}

static bool town_ok(const char *id, struct xc_decision *out, bool *db_failed)
{
    struct tn_brief b;
    enum tn_rc rc = tn_brief(id, &b);
    if (rc == TN_UNAVAILABLE || rc == TN_ERROR) {
        *db_failed = true;
        return false;
    }
    if (rc == TN_NOT_FOUND) {
        out->deny = XC_DENY_NO_AGREEMENT;
        snprintf(out->detail, sizeof out->detail, "there is no town %s", id);
        return false;
    }
    if (b.state == TN_SUSPENDED) {
        out->deny = XC_DENY_TOWN;
        snprintf(out->detail, sizeof out->detail, "town %s is suspended", id);
        return false;
    }
    return true;
}

bool xc_policy_decide(const struct xc_policy_ask *ask, struct xc_decision *out)
{
    memset(out, 0, sizeof *out);
    if (!ask->provider || !ask->consumer || !core_tenant_id_ok(ask->provider) ||
        !core_tenant_id_ok(ask->consumer)) {
        out->deny = XC_DENY_NO_AGREEMENT;
        snprintf(out->detail, sizeof out->detail, "no such town");
        return true;
    }
    bool db_failed = false;
    if (!town_ok(ask->provider, out, &db_failed) || !town_ok(ask->consumer, out, &db_failed))
        return !db_failed;
    bool done = false;
    if (usable()) {
        done = decide_indexed(ask, out);
        if (!done) {
            if (!load())
                return false;
            done = decide_indexed(ask, out);
        }
    }
    if (!done) {
        struct snap *s = read_db(ask->provider, ask->consumer, -1);
        if (!s)
            return false;
        xc_policy_decide_over(s->ags, s->n, ask, out);
        snap_free(s);
    }
    if (out->permit && !rate_take(out->ag.id, out->ag.rate_per_minute, ask->now)) {
        out->permit = false;
        out->deny = XC_DENY_RATE;
        snprintf(out->detail, sizeof out->detail,
                 "agreement %s allows %d requests a minute: try again in the next minute",
                 out->ag.id, out->ag.rate_per_minute);
    }
    return true;
}

static bool usable_now(const struct xc_agreement *a, int64_t now)
{
    return a->state == XC_AG_ACTIVE && (!a->valid_from || now >= a->valid_from) &&
           (!a->valid_until || now < a->valid_until);
}

static int by_id(const void *x, const void *y)
{
    return strcmp(((const struct xc_agreement *)x)->id, ((const struct xc_agreement *)y)->id);
}

json_t *xc_policy_catalog(const char *consumer, int64_t now)
{
    json_t *arr = json_array();
    if (!consumer || !core_tenant_id_ok(consumer))
        return arr;
    struct xc_agreement *found = NULL;
    size_t nfound = 0;
    bool done = false;
    if (usable() && load()) {
        pthread_rwlock_rdlock(&idx.lock);
        const struct snap *s = idx.snap;
        if (s) {
            size_t lo = lower_bound(s, consumer, NULL), hi = lo;
            while (hi < s->n && strcmp(s->ags[hi].consumer, consumer) == 0)
                hi++;
            found = xcalloc(hi - lo + 1, sizeof *found);
            for (size_t i = lo; i < hi; i++)
                if (usable_now(&s->ags[i], now))
                    xc_agreement_copy(&found[nfound++], &s->ags[i]);
            done = true;
        }
        pthread_rwlock_unlock(&idx.lock);
    }
    if (!done) {
        struct snap *s = read_db(NULL, consumer, XC_AG_ACTIVE);
        if (!s) {
            json_decref(arr);
            return NULL;
        }
        found = xcalloc(s->n + 1, sizeof *found);
        for (size_t i = 0; i < s->n; i++)
            if (usable_now(&s->ags[i], now))
                xc_agreement_copy(&found[nfound++], &s->ags[i]);
        snap_free(s);
    }
    /* the snapshot is by provider first; the catalogue is in id order */
    if (nfound)
        qsort(found, nfound, sizeof *found, by_id);
    for (size_t i = 0; i < nfound; i++) {
        json_array_append_new(arr, xc_agreement_json(&found[i]));
        xc_agreement_release(&found[i]);
    }
    free(found);
    return arr;
}
