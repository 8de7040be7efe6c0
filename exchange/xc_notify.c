/*
 * Notifications: the store hands each committed change to xc_subs_changed,
 * which copies it into a bounded queue and returns. A matcher thread takes
 * changes in order, matches them against a per-tenant cache of the
 * subscriptions that may fire, and turns each match into a delivery job. A
 * sender thread runs the jobs with libcurl's multi interface (many at once,
 * connections kept alive in the multi handle's cache), retries failures
 * from a bounded list with backoff, and adds the delivery counters to the
 * database about once a second. Neither thread ever holds up a request.
 *
 * Each process notifies for the writes it served; caches follow other
 * processes' subscription changes through NOTIFY renkei_ngsi_subs.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <strings.h>

#include <curl/curl.h>

#include "core/config.h"
#include "core/db_listen.h"
#include "core/log.h"
#include "core/metrics.h"
#include "exchange/xc_subs.h"

#define CHANGES_MAX      10000 /* changes waiting for the matcher */
#define JOBS_MAX         10000 /* deliveries queued, waiting to retry or in flight */
#define INFLIGHT_MAX     64
#define CONNECT_TIMEOUT  2000L /* ms */
#define TOTAL_TIMEOUT    5000L /* ms */
#define FLUSH_US         1000000
#define STALE_US         1000000 /* cache age trusted while NOTIFY is not received */
#define MATCHER_DRAIN_US 2000000
#define SENDER_DRAIN_US  3000000
#define DELTAS_MAX       4096
#define CACHE_SLOTS      256
#define WARN_EVERY_US    10000000
#define CORRELATOR_MAX   160

/* Delay before each retry: a failed delivery is tried four times in all
 * over about 20 s, then counted as failed. */
static const int64_t retry_delay_ms[] = {1000, 4000, 16000};

static atomic_ullong m_sent, m_failed, m_dropped;

/* ---- changes, and the tenants' subscriptions ---- */

struct change {
    struct change *next;
    char *tenant, *path, *id, *type, *created, *modified, *correlator;
    json_t *attrs; /* NULL once deleted */
    char **changed;
    size_t nchanged;
    bool created_entity, deleted_entity;
};

struct tcache {
    struct tcache *next;
    char tenant[51];
    bool dirty;       /* under st.mu: reload before the next match */
    bool known_empty; /* under st.mu: loaded, clean, and no subscription may fire */
    /* the matcher's own */
    bool loaded;
    uint64_t loaded_us;
    struct xc_sub *subs;
    size_t n;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct change *head, *tail;
    size_t n;
    atomic_bool running;
    bool stopping;
    pthread_t thread;
    struct tcache *slots[CACHE_SLOTS];
    atomic_ullong last_warn_us;
} st = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* ---- deliveries ---- */

struct job {
    struct job *next;
    char tenant[51];
    char sub_id[25];
    char *url;
    char *method; /* NULL: POST */
    struct curl_slist *headers;
    char *body;
    size_t body_len;
    int attempt;
    uint64_t due_us;
    int64_t first_ms;
    CURL *easy;
    char errbuf[CURL_ERROR_SIZE];
    bool denied; /* the address it resolved to is in RENKEI_NOTIFY_DENY */
};

static struct {
    pthread_mutex_t mu;
    struct job *active[INFLIGHT_MAX]; /* the sender's own: transfers running */
    struct job *inbox, *inbox_tail;
    size_t total; /* jobs alive anywhere */
    bool stopping;
    pthread_t thread;
    CURLM *multi;
} snd = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A warning that repeats at most every few seconds: an overflowing queue
 * would otherwise write a line per change. */
static void warn_limited(const char *what)
{
    uint64_t now = core_now_us();
    unsigned long long last = atomic_load(&st.last_warn_us);
    if (now - last < WARN_EVERY_US || !atomic_compare_exchange_strong(&st.last_warn_us, &last, now))
        return;
    core_warn("NGSI notifications: %s (%llu dropped so far)", what,
              (unsigned long long)atomic_load(&m_dropped));
}

static void drop(unsigned long long n, const char *why)
{
    atomic_fetch_add(&m_dropped, n);
    warn_limited(why);
}

static void metrics(struct strbuf *out)
{
    pthread_mutex_lock(&st.mu);
    size_t queued = st.n;
    pthread_mutex_unlock(&st.mu);
    pthread_mutex_lock(&snd.mu);
    size_t jobs = snd.total;
    pthread_mutex_unlock(&snd.mu);
    strbuf_addf(out,
                "# HELP renkei_ngsi_notifications_total NGSI notifications by outcome: sent "
                "(2xx), failed (after every retry), dropped (a queue was full, or the hub "
                "stopped).\n"
                "# TYPE renkei_ngsi_notifications_total counter\n"
                "renkei_ngsi_notifications_total{outcome=\"sent\"} %llu\n"
                "renkei_ngsi_notifications_total{outcome=\"failed\"} %llu\n"
                "renkei_ngsi_notifications_total{outcome=\"dropped\"} %llu\n"
                "# HELP renkei_ngsi_notify_changes_queued Entity changes waiting to be matched "
                "against subscriptions.\n"
                "# TYPE renkei_ngsi_notify_changes_queued gauge\n"
                "renkei_ngsi_notify_changes_queued %zu\n"
                "# HELP renkei_ngsi_notify_jobs Notifications queued, in flight or waiting to "
                "be retried.\n"
                "# TYPE renkei_ngsi_notify_jobs gauge\n"
                "renkei_ngsi_notify_jobs %zu\n",
                (unsigned long long)atomic_load(&m_sent),
                (unsigned long long)atomic_load(&m_failed),
                (unsigned long long)atomic_load(&m_dropped), queued, jobs);
}

/* ---- the cache ---- */

static struct tcache *find_locked(const char *tenant, bool create)
{
    struct tcache **pp = &st.slots[core_hash_str(tenant) % CACHE_SLOTS];
    for (struct tcache *t = *pp; t; t = t->next)
        if (strcmp(t->tenant, tenant) == 0)
            return t;
    if (!create)
        return NULL;
    struct tcache *t = xcalloc(1, sizeof *t);
    xsnprintf(t->tenant, sizeof t->tenant, "%s", tenant);
    t->dirty = true;
    t->next = *pp;
    *pp = t;
    return t;
}

void xc_subs_invalidate(const char *tenant)
{
    pthread_mutex_lock(&st.mu);
    struct tcache *t = find_locked(tenant, false);
    if (t) {
        t->dirty = true;
        t->known_empty = false;
    }
    pthread_mutex_unlock(&st.mu);
}

static void on_notify(const char *payload, void *arg)
{
    (void)arg;
    xc_subs_invalidate(payload);
}

static void on_reset(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&st.mu);
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        for (struct tcache *t = st.slots[i]; t; t = t->next) {
            t->dirty = true;
            t->known_empty = false;
        }
    pthread_mutex_unlock(&st.mu);
}

static void free_subs(struct xc_sub *subs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        xc_sub_release(&subs[i]);
    free(subs);
}

struct load_vec {
    const struct tcache *old;
    struct xc_sub *subs;
    size_t n, alloc;
};

static void load_row(void *arg, const char *id, const char *path, const char *spec,
                     const char *status, const char *expires_ms, const char *last_ms)
{
    struct load_vec *v = arg;
    json_error_t jerr;
    json_t *doc = json_loads(spec, 0, &jerr);
    if (!json_is_object(doc)) {
        core_log_bug("subscription %s: stored spec is not a JSON object", id);
        json_decref(doc);
        return;
    }
    json_object_set_new(doc, "status", json_string(status));
    struct xc_sub s;
    char err[300];
    bool ok = xc_sub_parse(doc, path, &s, err, sizeof err);
    json_decref(doc);
    if (!ok) {
        core_log_bug("subscription %s: stored spec no longer parses: %s", id, err);
        return;
    }
    xsnprintf(s.id, sizeof s.id, "%s", id);
    long ms;
    if (expires_ms && core_parse_long(expires_ms, 0, INT64_MAX, &ms)) {
        s.has_expires = true;
        s.expires_ms = ms;
    }
    if (last_ms && core_parse_long(last_ms, 0, INT64_MAX, &ms))
        s.last_notification_ms = ms;
    /* this process may know of a later notification than the database yet */
    for (size_t i = 0; v->old && i < v->old->n; i++)
        if (strcmp(v->old->subs[i].id, id) == 0 &&
            v->old->subs[i].last_notification_ms > s.last_notification_ms)
            s.last_notification_ms = v->old->subs[i].last_notification_ms;
    if (v->n == v->alloc) {
        v->alloc = v->alloc ? 2 * v->alloc : 8;
        v->subs = xrealloc(v->subs, v->alloc * sizeof *v->subs);
    }
    v->subs[v->n++] = s;
}

/* The tenant's subscriptions, reloaded when they changed; NULL when they
 * cannot be read now. */
static struct tcache *tenant_subs(const char *tenant)
{
    pthread_mutex_lock(&st.mu);
    struct tcache *t = find_locked(tenant, true);
    uint64_t now = core_now_us();
    bool reload =
        !t->loaded || t->dirty || (!core_db_listen_connected() && now - t->loaded_us > STALE_US);
    t->dirty = false;
    pthread_mutex_unlock(&st.mu);
    if (!reload)
        return t;
    struct load_vec v = {.old = t};
    enum xc_subs_rc rc = xc_subs_db_load(tenant, load_row, &v);
    if (rc != XC_SUBS_OK) {
        free_subs(v.subs, v.n);
        pthread_mutex_lock(&st.mu);
        t->dirty = true;
        pthread_mutex_unlock(&st.mu);
        warn_limited("cannot read the subscriptions of a town: its changes are not notified");
        return NULL;
    }
    free_subs(t->subs, t->n);
    t->subs = v.subs;
    t->n = v.n;
    t->loaded = true;
    t->loaded_us = now;
    pthread_mutex_lock(&st.mu);
    /* a change of subscriptions during the load left dirty set: not empty */
    t->known_empty = t->n == 0 && !t->dirty && core_db_listen_connected();
    pthread_mutex_unlock(&st.mu);
    return t;
}

/* ---- the hand-over from the store ---- */

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void change_free(struct change *c)
{
    free(c->tenant);
    free(c->path);
    free(c->id);
    free(c->type);
    free(c->created);
    free(c->modified);
    free(c->correlator);
    json_decref(c->attrs);
    for (size_t i = 0; i < c->nchanged; i++)
        free(c->changed[i]);
    free(c->changed);
    free(c);
}

void xc_subs_changed(const struct xc_change *ch)
{
    if (!atomic_load(&st.running) || !ch->tenant || !ch->id || !ch->type || !ch->service_path)
        return;
    pthread_mutex_lock(&st.mu);
    struct tcache *t = find_locked(ch->tenant, false);
    bool skip = t && t->known_empty && core_db_listen_connected();
    bool full = st.n >= CHANGES_MAX;
    pthread_mutex_unlock(&st.mu);
    if (skip)
        return; /* the common case of a town with no subscriptions: nothing copied */
    if (full) {
        drop(1, "the change queue is full");
        return;
    }
    struct change *c = xcalloc(1, sizeof *c);
    c->tenant = xstrdup(ch->tenant);
    c->path = xstrdup(ch->service_path);
    c->id = xstrdup(ch->id);
    c->type = xstrdup(ch->type);
    c->created = dup_or_null(ch->created);
    c->modified = dup_or_null(ch->modified);
    c->correlator = dup_or_null(ch->correlator);
    c->attrs = ch->attrs ? json_deep_copy(ch->attrs) : NULL;
    if (ch->nchanged) {
        c->changed = xcalloc(ch->nchanged, sizeof *c->changed);
        for (size_t i = 0; i < ch->nchanged; i++)
            c->changed[i] = xstrdup(ch->changed[i]);
        c->nchanged = ch->nchanged;
    }
    c->created_entity = ch->entity_created;
    c->deleted_entity = ch->entity_deleted;
    pthread_mutex_lock(&st.mu);
    if (st.n >= CHANGES_MAX || st.stopping) {
        pthread_mutex_unlock(&st.mu);
        change_free(c);
        drop(1, "the change queue is full");
        return;
    }
    if (st.tail)
        st.tail->next = c;
    else
        st.head = c;
    st.tail = c;
    st.n++;
    pthread_cond_signal(&st.cv);
    pthread_mutex_unlock(&st.mu);
}

/* ---- building a delivery ---- */

static bool in_list(char **v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

static const char *format_name(enum xc_format f)
{
    return f == XC_KEYVALUES ? "keyValues" : f == XC_VALUES ? "values" : "normalized";
}

/* Headers a subscription's httpCustom cannot set: Orion keeps the first
 * two as its own ("Non-modifiable headers in custom notifications"); the
 * others are the transfer's, set by libcurl. */
static bool protected_header(const char *name)
{
    static const char *const names[] = {
        "Fiware-Correlator", "Ngsiv2-AttrsFormat", "Content-Length", "Host",
        "Transfer-Encoding", "Connection",         "Expect",         NULL};
    for (const char *const *n = names; *n; n++)
        if (strcasecmp(*n, name) == 0)
            return true;
    return false;
}

static struct curl_slist *add_header(struct curl_slist *l, const char *name, const char *value)
{
    /* "Name;" is libcurl's way to send a header with an empty value */
    char *h = *value ? xasprintf("%s: %s", name, value) : xasprintf("%s;", name);
    struct curl_slist *n = curl_slist_append(l, h);
    free(h);
    if (!n) {
        core_log_bug("out of memory adding a notification header");
        abort();
    }
    return n;
}

static struct curl_slist *build_headers(const struct xc_sub *s, const struct change *c,
                                        const char *correlator)
{
    const char *defaults[][2] = {
        {"Content-Type", "application/json"},     {"Accept", "application/json"},
        {"User-Agent", "renkei/" RENKEI_VERSION}, {"Fiware-Service", c->tenant},
        {"Fiware-ServicePath", c->path},
    };
    struct curl_slist *l = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(defaults); i++) {
        bool overridden = false;
        const char *key;
        json_t *v;
        if (s->headers)
            json_object_foreach(s->headers, key, v)
            {
                if (strcasecmp(key, defaults[i][0]) == 0)
                    overridden = true;
            }
        if (!overridden)
            l = add_header(l, defaults[i][0], defaults[i][1]);
    }
    l = add_header(l, "Fiware-Correlator", correlator);
    l = add_header(l, "Ngsiv2-AttrsFormat", format_name(s->format));
    /* no 100-continue round trip ("Expect:" removes libcurl's header) */
    struct curl_slist *n = curl_slist_append(l, "Expect:");
    if (!n) {
        core_log_bug("out of memory adding a notification header");
        abort();
    }
    l = n;
    if (s->headers) {
        const char *key;
        json_t *v;
        json_object_foreach(s->headers, key, v)
        {
            if (!protected_header(key))
                l = add_header(l, key, json_string_value(v));
        }
    }
    return l;
}

static char *build_url(const struct xc_sub *s)
{
    if (!s->qs)
        return xstrdup(s->url);
    struct strbuf b;
    strbuf_init(&b, XC_SUB_URL_MAX + XC_SUB_PAIRS_MAX * 3 * (XC_SUB_VALUE_MAX + 2));
    strbuf_adds(&b, s->url);
    bool has_query = strchr(s->url, '?') != NULL;
    const char *key;
    json_t *v;
    json_object_foreach(s->qs, key, v)
    {
        char *k = curl_easy_escape(NULL, key, 0),
             *e = curl_easy_escape(NULL, json_string_value(v), 0);
        if (!k || !e) {
            core_log_bug("out of memory escaping a notification query");
            abort();
        }
        strbuf_addf(&b, "%c%s=%s", has_query ? '&' : '?', k, e);
        has_query = true;
        curl_free(k);
        curl_free(e);
    }
    return strbuf_detach(&b, NULL);
}

static char *build_body(const struct xc_sub *s, const struct change *c, size_t *len)
{
    struct xc_render r = {.format = s->format};
    const char **only = NULL;
    if (s->only_changed) {
        /* Orion's onlyChangedAttrs: what changed, within attrs/exceptAttrs */
        only = xcalloc(c->nchanged + 1, sizeof *only);
        size_t k = 0;
        for (size_t i = 0; i < c->nchanged; i++) {
            const char *a = c->changed[i];
            if (s->except ? in_list(s->attrs, s->nattrs, a)
                          : s->nattrs > 0 && !in_list(s->attrs, s->nattrs, a) &&
                                !in_list(s->attrs, s->nattrs, "*"))
                continue;
            only[k++] = a;
        }
        r.attrs = only;
        r.nattrs = k;
    } else if (s->except) {
        r.except = (const char *const *)s->attrs;
        r.nexcept = s->nattrs;
    } else if (s->nattrs > 0) {
        r.attrs = (const char *const *)s->attrs;
        r.nattrs = s->nattrs;
        r.all_attrs = in_list(s->attrs, s->nattrs, "*");
    }
    if (s->has_metadata && s->nmetadata > 0) {
        r.metadata = (const char *const *)s->metadata;
        r.nmetadata = s->nmetadata;
    }
    json_t *empty = c->attrs ? NULL : json_object();
    json_t *entity =
        xc_entity_render(c->id, c->type, c->attrs ? c->attrs : empty, c->created, c->modified, &r);
    json_decref(empty);
    free(only);
    json_t *body = json_pack("{s:s, s:[o]}", "subscriptionId", s->id, "data", entity);
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                      JSON_REAL_PRECISION(XC_REAL_PRECISION));
    json_decref(body);
    if (!text) {
        core_log_bug("notification of subscription %s cannot be serialized", s->id);
        return NULL;
    }
    *len = strlen(text);
    return text;
}

static void job_free(struct job *j)
{
    if (!j)
        return;
    free(j->url);
    free(j->method);
    curl_slist_free_all(j->headers);
    free(j->body);
    free(j);
}

static bool queue_job(struct job *j)
{
    pthread_mutex_lock(&snd.mu);
    if (snd.total >= JOBS_MAX || snd.stopping) {
        pthread_mutex_unlock(&snd.mu);
        job_free(j);
        drop(1, "the delivery queue is full");
        return false;
    }
    if (snd.inbox_tail)
        snd.inbox_tail->next = j;
    else
        snd.inbox = j;
    snd.inbox_tail = j;
    snd.total++;
    pthread_mutex_unlock(&snd.mu);
    curl_multi_wakeup(snd.multi);
    return true;
}

/* ---- the matcher ---- */

/* Orion numbers the notifications one request caused: "<correlator>;
 * cbnotif=N". Changes of one request arrive one after another, so a run of
 * the same correlator continues the count. */
static struct {
    char correlator[CORRELATOR_MAX];
    unsigned n;
} corr;

static void notify(struct xc_sub *s, const struct change *c, int64_t now)
{
    size_t len = 0;
    char *body = build_body(s, c, &len);
    if (!body)
        return;
    const char *root = c->correlator ? c->correlator : "";
    if (strcmp(corr.correlator, root) != 0) {
        xsnprintf(corr.correlator, sizeof corr.correlator, "%s", root);
        corr.n = 0;
    }
    char correlator[CORRELATOR_MAX + 32];
    snprintf(correlator, sizeof correlator, "%s; cbnotif=%u", root, ++corr.n);
    struct job *j = xcalloc(1, sizeof *j);
    xsnprintf(j->tenant, sizeof j->tenant, "%s", c->tenant);
    xsnprintf(j->sub_id, sizeof j->sub_id, "%s", s->id);
    j->url = build_url(s);
    j->method = s->method ? xstrdup(s->method) : NULL;
    j->headers = build_headers(s, c, correlator);
    j->body = body;
    j->body_len = len;
    j->due_us = core_now_us();
    j->first_ms = now;
    if (!queue_job(j))
        return;
    s->last_notification_ms = now;
    if (s->status == XC_SUB_ONESHOT) {
        /* Orion: a oneshot subscription goes inactive once it notified */
        s->status = XC_SUB_INACTIVE;
        if (xc_subs_db_deactivate(c->tenant, s->id, "oneshot") != XC_SUBS_OK)
            core_warn("oneshot subscription %s notified but could not be made inactive", s->id);
    }
}

static void match(const struct change *c)
{
    struct tcache *t = tenant_subs(c->tenant);
    if (!t) {
        drop(1, "cannot read the subscriptions of a town");
        return;
    }
    const struct xc_change ch = {
        .tenant = c->tenant,
        .service_path = c->path,
        .id = c->id,
        .type = c->type,
        .attrs = c->attrs,
        .created = c->created,
        .modified = c->modified,
        .entity_created = c->created_entity,
        .entity_deleted = c->deleted_entity,
        .changed = (const char *const *)c->changed,
        .nchanged = c->nchanged,
    };
    for (size_t i = 0; i < t->n; i++) {
        struct xc_sub *s = &t->subs[i];
        int64_t now = now_ms();
        if (s->status == XC_SUB_INACTIVE || (s->has_expires && now >= s->expires_ms))
            continue;
        if (!xc_sub_path_match(s->service_path, c->path) ||
            !xc_sub_entity_match(s, c->id, c->type) || !xc_sub_condition_match(s, &ch))
            continue;
        if (s->q || s->mq || s->georel) {
            /* a deleted entity is no longer there to evaluate the
             * expression on: such subscriptions are not notified */
            if (c->deleted_entity)
                continue;
            bool ok = false;
            if (xc_subs_db_expr_match(c->tenant, s, &ch, &ok) != XC_SUBS_OK) {
                drop(1, "cannot evaluate a subscription's expression");
                continue;
            }
            if (!ok)
                continue;
        }
        /* Orion's throttling drops what comes within the guard period */
        if (s->throttling > 0 && s->last_notification_ms > 0 &&
            now - s->last_notification_ms < s->throttling * 1000)
            continue;
        notify(s, c, now);
    }
}

static void *matcher_main(void *unused)
{
    (void)unused;
    uint64_t deadline = 0;
    pthread_mutex_lock(&st.mu);
    for (;;) {
        while (!st.head && !st.stopping)
            pthread_cond_wait(&st.cv, &st.mu);
        if (st.stopping && !deadline)
            deadline = core_now_us() + MATCHER_DRAIN_US;
        if (!st.head || (deadline && core_now_us() > deadline))
            break;
        struct change *c = st.head;
        st.head = c->next;
        if (!st.head)
            st.tail = NULL;
        st.n--;
        pthread_mutex_unlock(&st.mu);
        match(c);
        change_free(c);
        pthread_mutex_lock(&st.mu);
    }
    size_t left = 0;
    while (st.head) {
        struct change *c = st.head;
        st.head = c->next;
        change_free(c);
        left++;
    }
    st.tail = NULL;
    st.n = 0;
    pthread_mutex_unlock(&st.mu);
    if (left)
        drop(left, "stopped before every change was matched");
    return NULL;
}

/* ---- the sender ---- */

static struct {
    struct xc_subs_delta d[DELTAS_MAX];
    size_t n;
    uint64_t flushed_us;
} deltas;

static int cmp_tenant(const void *a, const void *b)
{
    return strcmp(((const struct xc_subs_delta *)a)->tenant,
                  ((const struct xc_subs_delta *)b)->tenant);
}

static void flush(void)
{
    deltas.flushed_us = core_now_us();
    if (deltas.n == 0)
        return;
    qsort(deltas.d, deltas.n, sizeof deltas.d[0], cmp_tenant);
    for (size_t i = 0; i < deltas.n;) {
        size_t k = i;
        while (k < deltas.n && strcmp(deltas.d[k].tenant, deltas.d[i].tenant) == 0)
            k++;
        if (xc_subs_db_counters(deltas.d[i].tenant, &deltas.d[i], k - i) != XC_SUBS_OK)
            core_warn("NGSI notification counters of town %s lost: the database failed",
                      deltas.d[i].tenant);
        i = k;
    }
    deltas.n = 0;
}

static struct xc_subs_delta *delta_for(const struct job *j)
{
    for (size_t i = 0; i < deltas.n; i++)
        if (strcmp(deltas.d[i].id, j->sub_id) == 0 && strcmp(deltas.d[i].tenant, j->tenant) == 0)
            return &deltas.d[i];
    if (deltas.n == DELTAS_MAX)
        flush();
    struct xc_subs_delta *d = &deltas.d[deltas.n++];
    memset(d, 0, sizeof *d);
    xsnprintf(d->tenant, sizeof d->tenant, "%s", j->tenant);
    xsnprintf(d->id, sizeof d->id, "%s", j->sub_id);
    return d;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* Checks every address libcurl is about to connect to (after name
 * resolution, so a name that resolves to a refused address is refused too;
 * a reused connection was checked when it opened). */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct job *j = arg;
    (void)purpose;
    if (core_cidr_match_any(core_cfg.notify_deny, core_cfg.notify_ndeny, &a->addr)) {
        j->denied = true;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static bool start(struct job *j)
{
    CURL *e = curl_easy_init();
    if (!e)
        return false;
    curl_easy_setopt(e, CURLOPT_URL, j->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, TOTAL_TIMEOUT);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
    if (j->method && strcmp(j->method, "POST") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, j->method);
    if (j->method && strcmp(j->method, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    /* no proxy from the environment: the deny list must see the receiver's
     * own address, not a proxy's that would then connect anywhere */
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, j);
    j->errbuf[0] = '\0';
    j->denied = false;
    size_t slot = 0;
    while (slot < INFLIGHT_MAX && snd.active[slot])
        slot++;
    if (slot == INFLIGHT_MAX || curl_multi_add_handle(snd.multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        return false;
    }
    snd.active[slot] = j;
    j->easy = e;
    return true;
}

static void forget_active(const struct job *j)
{
    for (size_t i = 0; i < INFLIGHT_MAX; i++)
        if (snd.active[i] == j)
            snd.active[i] = NULL;
}

/* One attempt ended. The job goes back to wait for a retry, or is done. */
static bool finished(struct job *j, CURLcode result, bool stopping)
{
    long code = 0;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(snd.multi, j->easy);
    curl_easy_cleanup(j->easy);
    j->easy = NULL;
    forget_active(j);
    int64_t now = now_ms();
    struct xc_subs_delta *d = delta_for(j);
    if (j->attempt == 0) {
        d->sent++;
        if (j->first_ms > d->last_notification)
            d->last_notification = j->first_ms;
    }
    if (result == CURLE_OK && code >= 200 && code <= 299) {
        d->last_success = now;
        d->last_success_code = (int)code;
        d->reset = true;
        d->fails = 0;
        atomic_fetch_add(&m_sent, 1);
        return true;
    }
    d->last_failure = now;
    d->fails++;
    if (result == CURLE_COULDNT_CONNECT && j->denied)
        xsnprintf(d->last_failure_reason, sizeof d->last_failure_reason,
                  "the receiver's address is refused by the hub (RENKEI_NOTIFY_DENY)");
    else if (result != CURLE_OK)
        xsnprintf(d->last_failure_reason, sizeof d->last_failure_reason, "%s",
                  j->errbuf[0] ? j->errbuf : curl_easy_strerror(result));
    else
        xsnprintf(d->last_failure_reason, sizeof d->last_failure_reason,
                  "the receiver answered HTTP %ld", code);
    if (j->attempt < (int)ARRAY_SIZE(retry_delay_ms) && !stopping) {
        core_debug("notification of subscription %s failed (%s): retrying", j->sub_id,
                   d->last_failure_reason);
        j->due_us = core_now_us() + (uint64_t)retry_delay_ms[j->attempt] * 1000;
        j->attempt++;
        return false;
    }
    core_info("notification of subscription %s failed after %d attempts: %s", j->sub_id,
              j->attempt + 1, d->last_failure_reason);
    atomic_fetch_add(&m_failed, 1);
    return true;
}

static void *sender_main(void *unused)
{
    (void)unused;
    struct job *waiting = NULL; /* not started: new, or waiting for a retry */
    size_t inflight = 0;
    uint64_t deadline = 0;
    deltas.flushed_us = core_now_us();
    for (;;) {
        pthread_mutex_lock(&snd.mu);
        struct job *in = snd.inbox;
        snd.inbox = snd.inbox_tail = NULL;
        bool stopping = snd.stopping;
        pthread_mutex_unlock(&snd.mu);
        while (in) {
            struct job *next = in->next;
            in->next = waiting;
            waiting = in;
            in = next;
        }
        uint64_t now = core_now_us();
        if (stopping && !deadline)
            deadline = now + SENDER_DRAIN_US;
        /* start what is due, oldest first is not promised (nor by Orion) */
        int64_t next_due_ms = 1000;
        size_t done = 0;
        for (struct job **pp = &waiting; *pp;) {
            struct job *j = *pp;
            if (stopping && j->attempt > 0) {
                /* no retry once stopping: the last failure was counted */
                *pp = j->next;
                atomic_fetch_add(&m_failed, 1);
                job_free(j);
                done++;
                continue;
            }
            if (j->due_us <= now && inflight < INFLIGHT_MAX) {
                *pp = j->next;
                if (start(j)) {
                    inflight++;
                } else {
                    core_log_bug("cannot start a notification transfer");
                    atomic_fetch_add(&m_failed, 1);
                    job_free(j);
                    done++;
                }
                continue;
            }
            if (j->due_us > now && (int64_t)((j->due_us - now) / 1000) < next_due_ms)
                next_due_ms = (int64_t)((j->due_us - now) / 1000);
            pp = &j->next;
        }
        int running = 0;
        curl_multi_perform(snd.multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(snd.multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct job *j = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
            CURLcode result = msg->data.result;
            inflight--;
            if (finished(j, result, stopping)) {
                job_free(j);
                done++;
            } else {
                j->next = waiting;
                waiting = j;
                next_due_ms = 0;
            }
        }
        if (done) {
            pthread_mutex_lock(&snd.mu);
            snd.total -= done;
            pthread_mutex_unlock(&snd.mu);
        }
        if (core_now_us() - deltas.flushed_us >= FLUSH_US)
            flush();
        if (stopping && ((!waiting && inflight == 0) || core_now_us() > deadline))
            break;
        curl_multi_poll(snd.multi, NULL, 0, (int)(next_due_ms < 0 ? 0 : next_due_ms), NULL);
    }
    /* past the deadline: what is left is dropped */
    size_t left = 0;
    while (waiting) {
        struct job *j = waiting;
        waiting = j->next;
        job_free(j);
        left++;
    }
    for (size_t i = 0; i < INFLIGHT_MAX; i++) {
        struct job *j = snd.active[i];
        if (!j)
            continue;
        curl_multi_remove_handle(snd.multi, j->easy);
        curl_easy_cleanup(j->easy);
        snd.active[i] = NULL;
        job_free(j);
        left++;
    }
    if (left)
        drop(left, "stopped before every notification was delivered");
    flush();
    return NULL;
}

/* ---- start and stop ---- */

void xc_subs_start(void)
{
    if (atomic_load(&st.running))
        return;
    core_db_listen("renkei_ngsi_subs", on_notify, on_reset, NULL);
    core_metrics_add_collector(metrics);
    snd.multi = curl_multi_init();
    if (!snd.multi) {
        core_log_bug("cannot make the libcurl multi handle for NGSI notifications");
        abort();
    }
    /* a few connections per receiver, kept for the next notification */
    curl_multi_setopt(snd.multi, CURLMOPT_MAX_HOST_CONNECTIONS, 8L);
    curl_multi_setopt(snd.multi, CURLMOPT_MAXCONNECTS, (long)INFLIGHT_MAX);
    st.stopping = false;
    snd.stopping = false;
    if (pthread_create(&snd.thread, NULL, sender_main, NULL) != 0 ||
        pthread_create(&st.thread, NULL, matcher_main, NULL) != 0) {
        core_log_bug("cannot start the NGSI notification threads");
        abort();
    }
    atomic_store(&st.running, true);
}

void xc_subs_stop(void)
{
    if (!atomic_load(&st.running))
        return;
    atomic_store(&st.running, false);
    pthread_mutex_lock(&st.mu);
    st.stopping = true;
    pthread_cond_broadcast(&st.cv);
    pthread_mutex_unlock(&st.mu);
    pthread_join(st.thread, NULL);
    pthread_mutex_lock(&snd.mu);
    snd.stopping = true;
    pthread_mutex_unlock(&snd.mu);
    curl_multi_wakeup(snd.multi);
    pthread_join(snd.thread, NULL);
    curl_multi_cleanup(snd.multi);
    snd.multi = NULL;
    snd.total = 0;
    pthread_mutex_lock(&st.mu);
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        struct tcache *t = st.slots[i];
        while (t) {
            struct tcache *next = t->next;
            free_subs(t->subs, t->n);
            free(t);
            t = next;
        }
        st.slots[i] = NULL;
    }
    pthread_mutex_unlock(&st.mu);
}
