/*
 * Forwarding to a town's own city OS with libcurl's easy interface.
 *
 * Each town with a remote city OS gets an entry holding its registration
 * (read once with tn_upstream_load, the secret unsealed), up to
 * XC_UP_CONNS_PER_TOWN idle easy handles (an easy handle keeps its
 * connections alive across curl_easy_reset, so a handle taken from the
 * pool reuses its TCP/TLS connection), and, for client_credentials, the
 * access token until 30 s before it expires.
 *
 * Coherence: NOTIFY renkei_tenants (payload: the tenant id) and xc_upstream_
 * forget drop a town's entry; a listener reset drops every entry. An entry
 * is trusted without asking the database only while the listener is
 * connected, xc_upstream_init registered us with it, and no change raced
 * with the load that made the entry. Otherwise each call reads the
 * registration again and keeps the entry (handles, token) when nothing in
 * it changed (compared by a SHA-256 fingerprint), so pooling works even
 * without the listener.
 *
 * Entries are reference counted: a forgotten entry is unlinked at once and
 * freed (handles closed, token and secret wiped) when its last call ends.
 *
 * Decisions: no redirects are followed; only http and https; no proxy from
 * the environment (CURLOPT_PROXY ""): a town's Orion is reached directly, a
 * configured proxy does not exist yet. RENKEI_UPSTREAM_TIMEOUT_MS (read by
 * xc_upstream_init, 100-600000) replaces XC_UP_TIMEOUT_MS, and caps the
 * connect timeout, for tests and for towns known to be slow. Credentials
 * are never logged and never put in err.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "core/crypto.h"
#include "core/db_listen.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "exchange/xc_upstream.h"
#include "tenants/tn.h"

#define SLOTS          256
#define MAX_TOWNS      4096
#define TTL_US         (300u * 1000000u) /* a safety net only: NOTIFY does the work */
#define TOKEN_BODY_MAX (64 * 1024)
#define TOKEN_SKEW_US  (30u * 1000000u)
#define HEADER_MAX     1024 /* bytes of a captured response header value */
#define LOCATION_MAX   2048
#define CC_FALLBACK_S  60 /* a token without expires_in is kept this long */

struct town {
    struct town *next;
    char id[51];
    int refs;    /* under up.mu: calls using it, plus one while linked */
    bool linked; /* under up.mu */
    bool verify; /* under up.mu: read the registration again before trusting */
    uint64_t loaded_us;
    struct tn_upstream reg;
    char *base; /* reg.url without a trailing slash */
    unsigned char fp[32];

    pthread_mutex_t mu; /* the handles and the token */
    CURL *idle[XC_UP_CONNS_PER_TOWN];
    size_t nidle;
    char *token; /* client_credentials access token, NULL when none */
    uint64_t token_until_us;
    pthread_mutex_t fetch_mu; /* one token request at a time per town */
};

static struct {
    pthread_mutex_t mu;
    struct town *slots[SLOTS];
    size_t count;
    atomic_ullong generation;
    bool registered; /* NOTIFY reaches us */
    long timeout_ms, connect_ms;
} up = {.mu = PTHREAD_MUTEX_INITIALIZER,
        .timeout_ms = XC_UP_TIMEOUT_MS,
        .connect_ms = XC_UP_CONNECT_MS};

/* ---- entries ---- */

static void fingerprint(const struct tn_upstream *r, unsigned char out[32])
{
    struct strbuf sb;
    strbuf_init(&sb, (size_t)TN_SECRET_MAX + 16384);
    const char *f[] = {r->url, r->fiware_service, r->token_url, r->client_id, r->scope};
    for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
        /* length-prefixed, so no two field lists hash alike */
        strbuf_addf(&sb, "%zu:", f[i] ? strlen(f[i]) : (size_t)-1);
        if (f[i])
            strbuf_adds(&sb, f[i]);
    }
    strbuf_addf(&sb, "%d:%zu:", (int)r->auth, r->secret_len);
    if (r->secret)
        strbuf_add(&sb, r->secret, r->secret_len);
    core_sha256(sb.buf, sb.len, out);
    OPENSSL_cleanse(sb.buf, sb.len);
    strbuf_release(&sb);
}

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

static void town_free(struct town *t)
{
    for (size_t i = 0; i < t->nidle; i++)
        curl_easy_cleanup(t->idle[i]);
    wipe_free(t->token);
    tn_upstream_release(&t->reg);
    free(t->base);
    pthread_mutex_destroy(&t->mu);
    pthread_mutex_destroy(&t->fetch_mu);
    free(t);
}

/* Drops one reference; under up.mu. */
static void unref_locked(struct town *t)
{
    if (--t->refs == 0)
        town_free(t);
}

static void unref(struct town *t)
{
    pthread_mutex_lock(&up.mu);
    unref_locked(t);
    pthread_mutex_unlock(&up.mu);
}

static struct town **find_locked(const char *id)
{
    struct town **pp = &up.slots[core_hash_str(id) % SLOTS];
    while (*pp && strcmp((*pp)->id, id) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void unlink_locked(struct town **pp)
{
    struct town *t = *pp;
    *pp = t->next;
    t->next = NULL;
    t->linked = false;
    up.count--;
    unref_locked(t);
}

static void clear_locked(void)
{
    for (size_t i = 0; i < SLOTS; i++)
        while (up.slots[i])
            unlink_locked(&up.slots[i]);
}

void xc_upstream_forget(const char *tenant)
{
    pthread_mutex_lock(&up.mu);
    atomic_fetch_add(&up.generation, 1);
    struct town **pp = find_locked(tenant);
    if (*pp)
        unlink_locked(pp);
    pthread_mutex_unlock(&up.mu);
}

static void on_notify(const char *payload, void *arg)
{
    (void)arg;
    xc_upstream_forget(payload);
}

static void on_reset(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&up.mu);
    atomic_fetch_add(&up.generation, 1);
    clear_locked();
    pthread_mutex_unlock(&up.mu);
}

/* The town's entry with a reference for the caller, or NULL with *rc. */
static struct town *town_get(const char *id, enum xc_up_rc *rc, char *err, size_t errlen)
{
    uint64_t now = core_now_us();
    pthread_mutex_lock(&up.mu);
    struct town *t = *find_locked(id);
    bool trusted = up.registered && core_db_listen_connected();
    if (t && trusted && !t->verify && now - t->loaded_us < TTL_US) {
        t->refs++;
        pthread_mutex_unlock(&up.mu);
        return t;
    }
    unsigned long long gen = atomic_load(&up.generation);
    pthread_mutex_unlock(&up.mu);

    struct tn_upstream reg;
    enum tn_rc trc = tn_upstream_load(id, &reg);
    if (trc != TN_OK) {
        if (trc == TN_NOT_FOUND) {
            *rc = XC_UP_NOT_REMOTE;
            xsnprintf(err, errlen, "tenant %s has no registered city OS", id);
            xc_upstream_forget(id);
        } else {
            *rc = XC_UP_ERROR;
            xsnprintf(err, errlen, "the city OS registration of %s cannot be read%s", id,
                      trc == TN_UNAVAILABLE ? ": the database is not available" : "");
        }
        return NULL;
    }
    unsigned char fp[32];
    fingerprint(&reg, fp);

    pthread_mutex_lock(&up.mu);
    trusted = up.registered && core_db_listen_connected() && atomic_load(&up.generation) == gen;
    struct town **pp = find_locked(id);
    if (*pp && CRYPTO_memcmp((*pp)->fp, fp, sizeof fp) == 0) {
        t = *pp; /* unchanged: keep its connections and token */
        tn_upstream_release(&reg);
    } else {
        if (*pp)
            unlink_locked(pp);
        if (up.count >= MAX_TOWNS)
            clear_locked(); /* unbounded ids cannot grow memory: start over */
        t = xcalloc(1, sizeof *t);
        xsnprintf(t->id, sizeof t->id, "%s", id);
        t->reg = reg;
        size_t n = strlen(reg.url);
        while (n > 0 && reg.url[n - 1] == '/')
            n--;
        t->base = xasprintf("%.*s", (int)n, reg.url);
        memcpy(t->fp, fp, sizeof fp);
        pthread_mutex_init(&t->mu, NULL);
        pthread_mutex_init(&t->fetch_mu, NULL);
        t->linked = true;
        t->refs = 1;
        pp = find_locked(id);
        t->next = *pp;
        *pp = t;
        up.count++;
    }
    t->verify = !trusted;
    t->loaded_us = now;
    t->refs++;
    pthread_mutex_unlock(&up.mu);
    return t;
}

/* ---- handles ---- */

static CURL *handle_take(struct town *t)
{
    CURL *e = NULL;
    pthread_mutex_lock(&t->mu);
    if (t->nidle > 0)
        e = t->idle[--t->nidle];
    pthread_mutex_unlock(&t->mu);
    if (!e)
        e = curl_easy_init();
    return e;
}

/* Back to the pool (its connection stays open), or closed when the pool is
 * full or the town was forgotten. */
static void handle_give(struct town *t, CURL *e, bool keep)
{
    if (!e)
        return;
    curl_easy_reset(e);
    pthread_mutex_lock(&up.mu);
    bool linked = t->linked;
    pthread_mutex_unlock(&up.mu);
    if (keep && linked) {
        pthread_mutex_lock(&t->mu);
        if (t->nidle < XC_UP_CONNS_PER_TOWN) {
            t->idle[t->nidle++] = e;
            e = NULL;
        }
        pthread_mutex_unlock(&t->mu);
    }
    if (e)
        curl_easy_cleanup(e);
}

/* ---- one transfer ---- */

struct xfer {
    struct strbuf body;
    bool too_large;
    char content_type[HEADER_MAX];
    char total_count[HEADER_MAX];
    char location[LOCATION_MAX];
    char correlator[HEADER_MAX];
    bool has_ct, has_total, has_loc, has_corr;
    char errbuf[CURL_ERROR_SIZE];
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    if (!strbuf_add(&x->body, p, size * n)) {
        x->too_large = true;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    return size * n;
}

/* Keeps a header value when its name matches, trimmed and bounded (longer
 * values are dropped rather than cut). */
static bool capture(const char *line, size_t len, const char *name, char *dst, size_t dstlen,
                    bool *has)
{
    size_t nl = strlen(name);
    if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return false;
    const char *v = line + nl + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vl = (size_t)(end - v);
    if (vl >= dstlen)
        return true;
    memcpy(dst, v, vl);
    dst[vl] = '\0';
    *has = true;
    return true;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n;
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* a new response (after 100 Continue, say): forget the last one's */
        x->has_ct = x->has_total = x->has_loc = x->has_corr = false;
        return len;
    }
    if (!capture(p, len, "Content-Type", x->content_type, sizeof x->content_type, &x->has_ct) &&
        !capture(p, len, "Fiware-Total-Count", x->total_count, sizeof x->total_count,
                 &x->has_total) &&
        !capture(p, len, "Location", x->location, sizeof x->location, &x->has_loc))
        capture(p, len, "Fiware-Correlator", x->correlator, sizeof x->correlator, &x->has_corr);
    return len;
}

static void common_opts(CURL *e, struct xfer *x, size_t cap)
{
    strbuf_init(&x->body, cap);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, up.connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, up.timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_MAXCONNECTS, 2L);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cap);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    x->errbuf[0] = '\0';
}

/* Wipes header lines that may hold credentials, then frees the list. */
static void headers_free(struct curl_slist *l)
{
    for (struct curl_slist *i = l; i; i = i->next)
        OPENSSL_cleanse(i->data, strlen(i->data));
    curl_slist_free_all(l);
}

static struct curl_slist *header_add(struct curl_slist *l, const char *name, const char *value)
{
    char *line = xasprintf("%s: %s", name, value);
    struct curl_slist *n = curl_slist_append(l, line);
    OPENSSL_cleanse(line, strlen(line));
    free(line);
    if (!n) {
        core_log_bug("curl_slist_append failed");
        abort();
    }
    return n;
}

/* What a failed transfer means for the caller. */
static enum xc_up_rc classify(CURLcode cc, const struct xfer *x)
{
    if (x->too_large || cc == CURLE_FILESIZE_EXCEEDED)
        return XC_UP_TOO_LARGE;
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return XC_UP_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return XC_UP_DOWN;
    default:
        return XC_UP_ERROR;
    }
}

static const char *rc_words(enum xc_up_rc rc)
{
    switch (rc) {
    case XC_UP_TIMEOUT:
        return "did not answer in time";
    case XC_UP_TOO_LARGE:
        return "answered with more than the hub accepts";
    case XC_UP_DOWN:
        return "cannot be reached";
    default:
        return "failed";
    }
}

/* ---- client_credentials ---- */

/* RFC 6749 §2.3.1: client id and secret form-urlencoded, then Basic. */
static char *basic_auth(const struct tn_upstream *r)
{
    char *id = curl_easy_escape(NULL, r->client_id, 0);
    char *sec = curl_easy_escape(NULL, r->secret, (int)r->secret_len);
    if (!id || !sec) {
        core_log_bug("curl_easy_escape failed");
        abort();
    }
    char *pair = xasprintf("%s:%s", id, sec);
    char *b64 = core_b64_encode(pair, strlen(pair));
    char *out = xasprintf("Basic %s", b64);
    OPENSSL_cleanse(sec, strlen(sec));
    OPENSSL_cleanse(pair, strlen(pair));
    wipe_free(b64);
    free(pair);
    curl_free(id);
    curl_free(sec);
    return out;
}

/* Fetches a token from the town's token endpoint; a copy of it (wipe and
 * free) or NULL with err set. Caller holds t->fetch_mu. */
static char *token_fetch(struct town *t, char *err, size_t errlen)
{
    const struct tn_upstream *r = &t->reg;
    CURL *e = handle_take(t);
    if (!e) {
        xsnprintf(err, errlen, "cannot make a libcurl handle");
        return NULL;
    }
    struct xfer x = {0};
    common_opts(e, &x, TOKEN_BODY_MAX);
    char *authz = basic_auth(r);
    struct curl_slist *h = header_add(NULL, "Authorization", authz);
    wipe_free(authz);
    h = header_add(h, "Accept", "application/json");
    h = curl_slist_append(h, "Expect:");
    struct strbuf form;
    strbuf_init(&form, 4096);
    strbuf_adds(&form, "grant_type=client_credentials");
    if (r->scope && *r->scope) {
        char *s = curl_easy_escape(NULL, r->scope, 0);
        strbuf_addf(&form, "&scope=%s", s ? s : "");
        curl_free(s);
    }
    curl_easy_setopt(e, CURLOPT_URL, r->token_url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, form.buf);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)form.len);
    CURLcode cc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    headers_free(h);
    strbuf_release(&form);
    handle_give(t, e, cc == CURLE_OK);

    char *token = NULL;
    if (cc != CURLE_OK) {
        xsnprintf(err, errlen, "the token endpoint of %s %s: %s", t->id, rc_words(classify(cc, &x)),
                  x.errbuf[0] ? x.errbuf : curl_easy_strerror(cc));
        goto cleanup;
    }
    if (status != 200) {
        xsnprintf(err, errlen, "the token endpoint of %s answered %ld", t->id, status);
        goto cleanup;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(x.body.buf ? x.body.buf : "", x.body.len, 0, &jerr);
    const char *at = json_string_value(json_object_get(doc, "access_token"));
    json_t *exp = json_object_get(doc, "expires_in");
    if (!at || !*at || strlen(at) > TN_SECRET_MAX || strpbrk(at, "\r\n")) {
        xsnprintf(err, errlen, "the token endpoint of %s answered without a usable access_token",
                  t->id);
    } else {
        token = xstrdup(at);
        long long secs = json_is_integer(exp) ? json_integer_value(exp)
                         : json_is_real(exp)  ? (long long)json_real_value(exp)
                                              : CC_FALLBACK_S;
        if (secs > 86400LL * 30)
            secs = 86400LL * 30;
        uint64_t until = core_now_us() + (secs > 0 ? (uint64_t)secs * 1000000u : 0);
        pthread_mutex_lock(&t->mu);
        wipe_free(t->token);
        t->token = NULL;
        if (until > core_now_us() + TOKEN_SKEW_US) {
            t->token = xstrdup(at);
            t->token_until_us = until - TOKEN_SKEW_US;
        }
        pthread_mutex_unlock(&t->mu);
    }
    if (doc) {
        /* the token's bytes also sit in the parsed document */
        json_t *a = json_object_get(doc, "access_token");
        if (json_is_string(a))
            OPENSSL_cleanse((char *)json_string_value(a), json_string_length(a));
        json_decref(doc);
    }

cleanup:
    if (x.body.buf)
        OPENSSL_cleanse(x.body.buf, x.body.len);
    strbuf_release(&x.body);
    return token;
}

/* The access token to present (wipe and free), fetched unless a cached one
 * is still good; stale, when set, is a token the Orion refused: fetch a new
 * one unless another call already did. */
static char *token_get(struct town *t, const char *stale, char *err, size_t errlen)
{
    char *tok = NULL;
    pthread_mutex_lock(&t->mu);
    if (t->token && core_now_us() < t->token_until_us && (!stale || strcmp(stale, t->token) != 0))
        tok = xstrdup(t->token);
    pthread_mutex_unlock(&t->mu);
    if (tok)
        return tok;
    pthread_mutex_lock(&t->fetch_mu);
    pthread_mutex_lock(&t->mu); /* another call may have fetched while we waited */
    if (t->token && core_now_us() < t->token_until_us && (!stale || strcmp(stale, t->token) != 0))
        tok = xstrdup(t->token);
    pthread_mutex_unlock(&t->mu);
    if (!tok)
        tok = token_fetch(t, err, errlen);
    pthread_mutex_unlock(&t->fetch_mu);
    return tok;
}

/* ---- the call ---- */

static bool header_value_ok(const char *v, size_t max)
{
    if (!v)
        return true;
    size_t n = 0;
    for (; v[n]; n++)
        if ((unsigned char)v[n] < 0x20 || v[n] == 0x7f)
            return false;
    return n <= max;
}

static bool method_ok(const char *m)
{
    static const char *const ok[] = {"GET", "POST", "PATCH", "PUT", "DELETE"};
    for (size_t i = 0; m && i < ARRAY_SIZE(ok); i++)
        if (strcmp(m, ok[i]) == 0)
            return true;
    return false;
}

static void free_body(void *p)
{
    free(p);
}

/* One attempt; *status is the response's when XC_UP_OK. */
static enum xc_up_rc attempt(struct town *t, const struct xc_up_req *r, const char *token,
                             struct xfer *x, long *status, char *err, size_t errlen)
{
    CURL *e = handle_take(t);
    if (!e) {
        xsnprintf(err, errlen, "cannot make a libcurl handle");
        return XC_UP_ERROR;
    }
    common_opts(e, x, XC_UP_BODY_MAX);
    char *url = xasprintf("%s%s", t->base, r->path_query);
    struct curl_slist *h = NULL;
    if (t->reg.fiware_service)
        h = header_add(h, "Fiware-Service", t->reg.fiware_service);
    if (r->service_path)
        h = header_add(h, "Fiware-ServicePath", r->service_path);
    if (r->correlator)
        h = header_add(h, "Fiware-Correlator", r->correlator);
    if (r->request_id)
        h = header_add(h, "X-Request-Id", r->request_id);
    h = header_add(h, "Accept", r->accept ? r->accept : "application/json");
    if (r->body && r->content_type)
        h = header_add(h, "Content-Type", r->content_type);
    if (token) {
        char *v = xasprintf("Bearer %s", token);
        h = header_add(h, "Authorization", v);
        wipe_free(v);
    }
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, url);
    /* the path was checked and decided as it is: no dot-segment folding */
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    if (strcmp(r->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
        if (r->body || strcmp(r->method, "DELETE") != 0) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)(r->body ? r->body_len : 0));
        }
    }
    CURLcode cc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    headers_free(h);
    free(url);
    handle_give(t, e, cc == CURLE_OK);
    if (cc == CURLE_OK)
        return XC_UP_OK;
    enum xc_up_rc rc = classify(cc, x);
    if (rc == XC_UP_TOO_LARGE)
        xsnprintf(err, errlen, "the city OS of %s answered with more than %d bytes", t->id,
                  XC_UP_BODY_MAX);
    else
        xsnprintf(err, errlen, "the city OS of %s %s: %s", t->id, rc_words(rc),
                  x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
    return rc;
}

/* ---- per-town figures for /metrics ---- */

#define UP_STATS_MAX 256 /* towns with figures; more share the last row */
static const double up_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
struct up_stat {
    char town[51];
    atomic_ullong b[ARRAY_SIZE(up_le) + 1];
    atomic_ullong sum_us, errors;
    atomic_int up;            /* the last call: 1 answered (below 500), 0 not */
    atomic_llong last_call_s; /* when the last call ended, unix seconds */
};
static struct up_stat up_stats[UP_STATS_MAX];
static atomic_size_t up_nstats;
static pthread_mutex_t up_stats_mu = PTHREAD_MUTEX_INITIALIZER;

static struct up_stat *up_stat_for(const char *town)
{
    size_t n = atomic_load(&up_nstats);
    for (size_t i = 0; i < n; i++)
        if (strcmp(up_stats[i].town, town) == 0)
            return &up_stats[i];
    pthread_mutex_lock(&up_stats_mu);
    n = atomic_load(&up_nstats);
    struct up_stat *s = NULL;
    for (size_t i = 0; i < n && !s; i++)
        if (strcmp(up_stats[i].town, town) == 0)
            s = &up_stats[i];
    if (!s && n < UP_STATS_MAX) {
        s = &up_stats[n];
        xsnprintf(s->town, sizeof s->town, "%s", n == UP_STATS_MAX - 1 ? "(others)" : town);
        atomic_store(&up_nstats, n + 1); /* published after the name */
    }
    if (!s)
        s = &up_stats[UP_STATS_MAX - 1];
    pthread_mutex_unlock(&up_stats_mu);
    return s;
}

static void up_observe(const char *town, uint64_t us, bool ok)
{
    struct up_stat *s = up_stat_for(town);
    double v = (double)us / 1e6;
    size_t i = 0;
    while (i < ARRAY_SIZE(up_le) && v > up_le[i])
        i++;
    atomic_fetch_add(&s->b[i], 1);
    atomic_fetch_add(&s->sum_us, us);
    if (!ok)
        atomic_fetch_add(&s->errors, 1);
    atomic_store(&s->up, ok ? 1 : 0);
    atomic_store(&s->last_call_s, (long long)time(NULL));
}

void xc_upstream_metrics(struct strbuf *out)
{
    size_t n = atomic_load(&up_nstats);
    strbuf_addf(out, "# HELP renkei_upstream_request_duration_seconds Requests to towns' own "
                     "city OS (Orion), by town: time to the whole answer.\n"
                     "# TYPE renkei_upstream_request_duration_seconds histogram\n");
    for (size_t k = 0; k < n; k++) {
        struct up_stat *s = &up_stats[k];
        unsigned long long cum = 0;
        for (size_t i = 0; i < ARRAY_SIZE(up_le); i++) {
            cum += atomic_load(&s->b[i]);
            strbuf_addf(out,
                        "renkei_upstream_request_duration_seconds_bucket{town=\"%s\",le=\"%g\"} "
                        "%llu\n",
                        s->town, up_le[i], cum);
        }
        cum += atomic_load(&s->b[ARRAY_SIZE(up_le)]);
        strbuf_addf(out,
                    "renkei_upstream_request_duration_seconds_bucket{town=\"%s\",le=\"+Inf\"} "
                    "%llu\n"
                    "renkei_upstream_request_duration_seconds_sum{town=\"%s\"} %.6f\n"
                    "renkei_upstream_request_duration_seconds_count{town=\"%s\"} %llu\n",
                    s->town, cum, s->town, (double)atomic_load(&s->sum_us) / 1e6, s->town, cum);
    }
    strbuf_addf(out, "# HELP renkei_upstream_errors_total Requests to a town's city OS that got "
                     "no answer or a 5xx.\n"
                     "# TYPE renkei_upstream_errors_total counter\n");
    for (size_t k = 0; k < n; k++)
        strbuf_addf(out, "renkei_upstream_errors_total{town=\"%s\"} %llu\n", up_stats[k].town,
                    (unsigned long long)atomic_load(&up_stats[k].errors));
    strbuf_addf(out, "# HELP renkei_upstream_up Whether the last request to a town's city OS "
                     "was answered (below 500).\n"
                     "# TYPE renkei_upstream_up gauge\n");
    for (size_t k = 0; k < n; k++)
        strbuf_addf(out, "renkei_upstream_up{town=\"%s\"} %d\n", up_stats[k].town,
                    atomic_load(&up_stats[k].up));
    strbuf_addf(out, "# HELP renkei_upstream_last_request_timestamp_seconds When the last request "
                     "to a town's city OS ended (renkei_upstream_up is that request's outcome).\n"
                     "# TYPE renkei_upstream_last_request_timestamp_seconds gauge\n");
    for (size_t k = 0; k < n; k++)
        strbuf_addf(out, "renkei_upstream_last_request_timestamp_seconds{town=\"%s\"} %lld\n",
                    up_stats[k].town, (long long)atomic_load(&up_stats[k].last_call_s));
}

enum xc_up_rc xc_upstream_call(struct core_pool *pool, const struct xc_up_req *r,
                               struct xc_up_resp *out, char *err, size_t errlen)
{
    uint64_t start = core_now_us();
    memset(out, 0, sizeof *out);
    if (errlen)
        err[0] = '\0';
    if (!r->tenant || !core_tenant_id_ok(r->tenant)) {
        xsnprintf(err, errlen, "no such tenant");
        return XC_UP_NOT_REMOTE;
    }
    if (!method_ok(r->method) || !r->path_query || r->path_query[0] != '/' ||
        !header_value_ok(r->path_query, 8192) || !header_value_ok(r->service_path, 1024) ||
        !header_value_ok(r->correlator, 256) || !header_value_ok(r->request_id, 256) ||
        !header_value_ok(r->accept, 1024) || !header_value_ok(r->content_type, 1024) ||
        (r->body_len && !r->body)) {
        core_log_bug("xc_upstream_call: a malformed request for %s", r->tenant);
        xsnprintf(err, errlen, "a malformed upstream request");
        return XC_UP_ERROR;
    }
    enum xc_up_rc rc = XC_UP_ERROR;
    struct town *t = town_get(r->tenant, &rc, err, errlen);
    if (!t)
        return rc;

    char *token = NULL;
    struct xfer x = {0};
    long status = 0;
    bool cc = t->reg.auth == TN_AUTH_CLIENT_CREDENTIALS;
    for (int round = 0; round < 2; round++) {
        if (cc) {
            char *fresh = token_get(t, round ? token : NULL, err, errlen);
            wipe_free(token);
            token = fresh;
            if (!token) {
                rc = XC_UP_AUTH;
                goto cleanup;
            }
        } else if (t->reg.auth == TN_AUTH_BEARER && t->reg.secret && !token) {
            token = xstrdup(t->reg.secret);
        }
        strbuf_release(&x.body);
        memset(&x, 0, sizeof x);
        rc = attempt(t, r, token, &x, &status, err, errlen);
        if (rc != XC_UP_OK || status != 401 || !cc || round == 1)
            break;
        core_info("the city OS of %s refused the hub's token: fetching a new one", t->id);
    }
    if (rc != XC_UP_OK)
        goto cleanup;

    out->status = status;
    size_t len = 0;
    char *body = strbuf_detach(&x.body, &len);
    if (!body)
        body = xstrdup("");
    core_pool_cleanup(pool, free_body, body);
    out->body = body;
    out->len = len;
    out->content_type = x.has_ct ? core_pstrdup(pool, x.content_type) : NULL;
    out->total_count = x.has_total ? core_pstrdup(pool, x.total_count) : NULL;
    out->location = x.has_loc ? core_pstrdup(pool, x.location) : NULL;
    out->correlator = x.has_corr ? core_pstrdup(pool, x.correlator) : NULL;

cleanup:
    strbuf_release(&x.body);
    wipe_free(token);
    unref(t);
    uint64_t took = core_now_us() - start;
    out->seconds = (double)took / 1e6;
    up_observe(r->tenant, took, rc == XC_UP_OK && status < 500);
    if (rc != XC_UP_OK)
        core_log_fields(CORE_LOG_INFO, "upstream request failed",
                        json_pack("{s:s?, s:s, s:s, s:s, s:s}", "request_id", r->request_id, "town",
                                  r->tenant, "method", r->method, "path", r->path_query, "error",
                                  err));
    return rc;
}

void xc_upstream_reply_error(struct core_req *req, const char *tenant, enum xc_up_rc rc,
                             const char *err)
{
    (void)err; /* logged by xc_upstream_call: addresses inside a town stay out of replies */
    const char *who = tenant ? tenant : "?";
    switch (rc) {
    case XC_UP_TIMEOUT:
        core_reply_error(req, CORE_ERR_GATEWAY_TIMEOUT, "the city OS of %s did not answer in time",
                         who);
        return;
    case XC_UP_TOO_LARGE:
        core_reply_error(req, CORE_ERR_BAD_GATEWAY,
                         "the city OS of %s answered with more than the hub accepts", who);
        return;
    case XC_UP_DOWN:
        core_reply_error(req, CORE_ERR_BAD_GATEWAY, "the city OS of %s cannot be reached", who);
        return;
    case XC_UP_AUTH:
        core_reply_error(req, CORE_ERR_BAD_GATEWAY,
                         "the hub cannot obtain a token for the city OS of %s", who);
        return;
    case XC_UP_NOT_REMOTE:
        core_reply_error(req, CORE_ERR_BAD_GATEWAY, "%s has no registered city OS", who);
        return;
    default:
        core_reply_error(req, CORE_ERR_BAD_GATEWAY, "forwarding to the city OS of %s failed", who);
        return;
    }
}

void xc_upstream_init(void)
{
    pthread_mutex_lock(&up.mu);
    bool again = up.registered;
    up.registered = true;
    up.timeout_ms = XC_UP_TIMEOUT_MS;
    up.connect_ms = XC_UP_CONNECT_MS;
    const char *env = getenv("RENKEI_UPSTREAM_TIMEOUT_MS");
    long ms;
    if (env && *env) {
        if (core_parse_long(env, 100, 600000, &ms)) {
            up.timeout_ms = ms;
            if (up.connect_ms > ms)
                up.connect_ms = ms;
        } else {
            core_warn("RENKEI_UPSTREAM_TIMEOUT_MS must be 100-600000 (ms); using %d",
                      XC_UP_TIMEOUT_MS);
        }
    }
    pthread_mutex_unlock(&up.mu);
    /* Before core_db_listen_start, like every cache; a second registration on
     * renkei_tenants (tn_cache has one) is delivered to both. */
    if (!again)
        core_db_listen("renkei_tenants", on_notify, on_reset, NULL);
}

void xc_upstream_release(void)
{
    pthread_mutex_lock(&up.mu);
    atomic_fetch_add(&up.generation, 1);
    clear_locked();
    up.registered = false;
    pthread_mutex_unlock(&up.mu);
}
