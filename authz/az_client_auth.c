#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "authz/az_client_auth.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/db.h"
#include "core/log.h"
#include "core/url.h"
#include "tenants/tn.h"

#define ASSERTION_TYPE         "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define ASSERTION_MAX_LIFETIME 300 /* seconds an assertion may claim to live */

/* ---- throttling: failures per key in a one-minute window ---- */

#define THROTTLE_SLOTS  4096
#define WINDOW_S        60
#define CLIENT_FAILURES 10
#define PEER_FAILURES   30

struct counter {
    char key[80];
    time_t start;
    int failures;
};

static struct {
    pthread_mutex_t mu;
    struct counter slots[THROTTLE_SLOTS];
} thr = {.mu = PTHREAD_MUTEX_INITIALIZER};

static struct counter *counter_for(const char *key, time_t now)
{
    struct counter *c = &thr.slots[core_hash_str(key) % THROTTLE_SLOTS];
    /* a slot taken by another key, or an old window, starts over: at worst
     * a collision forgets some failures, it never blocks anyone wrongly */
    if (strcmp(c->key, key) != 0 || now - c->start >= WINDOW_S) {
        xsnprintf(c->key, sizeof c->key, "%s", key);
        c->start = now;
        c->failures = 0;
    }
    return c;
}

/* Seconds to wait when key is over its limit, else 0. */
static int throttled(const char *key, int limit)
{
    time_t now = time(NULL);
    pthread_mutex_lock(&thr.mu);
    struct counter *c = counter_for(key, now);
    int wait = c->failures >= limit ? (int)(c->start + WINDOW_S - now) : 0;
    pthread_mutex_unlock(&thr.mu);
    return wait > 0 ? wait : 0;
}

static void count_failure(const char *key)
{
    pthread_mutex_lock(&thr.mu);
    counter_for(key, time(NULL))->failures++;
    pthread_mutex_unlock(&thr.mu);
}

/* ---- the token endpoint's rate: a token bucket per client ---- */

#define BUCKET_SLOTS  4096
#define BUCKET_LOCKS  64
#define BURST_SECONDS 5

struct bucket {
    char key[64 + 1 + 64]; /* a client id (at most 64), "@" and a peer address */
    double level;          /* tokens left */
    uint64_t last_ns;      /* when level was last brought up to date */
};

static struct {
    pthread_mutex_t mu[BUCKET_LOCKS];
    struct bucket slots[BUCKET_SLOTS];
} buckets;
static pthread_once_t buckets_once = PTHREAD_ONCE_INIT;

static void buckets_init(void)
{
    for (size_t i = 0; i < BUCKET_LOCKS; i++)
        pthread_mutex_init(&buckets.mu[i], NULL);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* 0 when one more token may be taken from key's bucket (and takes it), else
 * the seconds until one will be there. A slot taken by another key starts
 * full: a collision can only let more through, never refuse wrongly. */
static int bucket_take(const char *key, double rate)
{
    unsigned h = core_hash_str(key);
    struct bucket *b = &buckets.slots[h % BUCKET_SLOTS];
    pthread_mutex_t *mu = &buckets.mu[(h % BUCKET_SLOTS) % BUCKET_LOCKS];
    double burst = rate * BURST_SECONDS;
    int wait = 0;
    pthread_mutex_lock(mu);
    /* the clock is read under the lock: a time read before another thread's
     * later one would otherwise run last_ns backwards (and the unsigned
     * difference would fill the bucket) */
    uint64_t now = now_ns();
    if (strcmp(b->key, key) != 0) {
        xsnprintf(b->key, sizeof b->key, "%s", key);
        b->level = burst;
        b->last_ns = now;
    } else if (now > b->last_ns) {
        b->level += rate * (double)(now - b->last_ns) / 1e9;
        if (b->level > burst)
            b->level = burst;
        b->last_ns = now;
    }
    if (b->level >= 1.0)
        b->level -= 1.0;
    else {
        double need = (1.0 - b->level) / rate; /* seconds, rounded up */
        wait = (int)need;
        if (wait < need || wait < 1)
            wait++;
    }
    pthread_mutex_unlock(mu);
    return wait;
}

bool az_token_rate_admit(struct core_req *req, const struct az_client *c)
{
    if (core_cfg.token_rate <= 0)
        return true;
    pthread_once(&buckets_once, buckets_init);
    char key[sizeof buckets.slots[0].key];
    if (c->auth == AZ_AUTH_NONE)
        snprintf(key, sizeof key, "%s@%s", c->id, core_req_peer(req));
    else
        snprintf(key, sizeof key, "%s", c->id);
    int wait = bucket_take(key, core_cfg.token_rate);
    if (!wait)
        return true;
    char ra[16];
    snprintf(ra, sizeof ra, "%d", wait);
    core_reply_header(req, "Retry-After", ra);
    core_reply_oauth_error(req, 429, "temporarily_unavailable",
                           "this client asks for more than %d tokens a second; retry after %d s",
                           core_cfg.token_rate, wait);
    return false;
}

void az_throttle_reset(void)
{
    pthread_mutex_lock(&thr.mu);
    memset(thr.slots, 0, sizeof thr.slots);
    pthread_mutex_unlock(&thr.mu);
    pthread_once(&buckets_once, buckets_init);
    for (size_t i = 0; i < BUCKET_LOCKS; i++)
        pthread_mutex_lock(&buckets.mu[i]);
    memset(buckets.slots, 0, sizeof buckets.slots);
    for (size_t i = BUCKET_LOCKS; i-- > 0;)
        pthread_mutex_unlock(&buckets.mu[i]);
}

/* ---- the methods ---- */

static bool b64_std_decode(const char *s, struct core_pool *pool, char **out)
{
    /* standard alphabet with padding, as HTTP Basic uses */
    size_t len = strlen(s);
    if (len == 0 || len % 4 != 0 || len > 4096)
        return false;
    unsigned char *buf = core_palloc(pool, len / 4 * 3 + 1);
    int n = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)len);
    if (n < 0)
        return false;
    if (s[len - 1] == '=')
        n--;
    if (s[len - 2] == '=')
        n--;
    buf[n] = '\0';
    if (memchr(buf, '\0', (size_t)n))
        return false;
    *out = (char *)buf;
    return true;
}

struct presented {
    const char *id;
    const char *secret;    /* basic or post */
    const char *assertion; /* private_key_jwt */
    enum az_auth_method method;
};

/* What the request presents; false after queuing 400/401 for a malformed or
 * ambiguous presentation. */
static bool presented(struct core_req *req, const struct az_form *f, struct presented *p)
{
    memset(p, 0, sizeof *p);
    const char *h = core_req_header(req, "Authorization");
    const char *body_id = az_form_get(f, "client_id");
    const char *body_secret = az_form_get(f, "client_secret");
    const char *atype = az_form_get(f, "client_assertion_type");
    const char *assertion = az_form_get(f, "client_assertion");
    int methods = (h != NULL) + (body_secret != NULL) + (assertion != NULL || atype != NULL);
    if (methods > 1) {
        core_reply_oauth_error(req, 400, "invalid_request",
                               "use exactly one client authentication method");
        return false;
    }
    if (h) {
        char *decoded = NULL;
        if (strncasecmp(h, "Basic ", 6) != 0 || !b64_std_decode(h + 6, req->pool, &decoded) ||
            !strchr(decoded, ':')) {
            core_reply_header(req, "WWW-Authenticate", "Basic realm=\"renkei\"");
            core_reply_oauth_error(req, 401, "invalid_client",
                                   "the Authorization header is not HTTP Basic client:secret");
            return false;
        }
        char *colon = strchr(decoded, ':');
        /* RFC 6749 §2.3.1: both halves are form-urlencoded first */
        p->id = core_url_decode(decoded, (size_t)(colon - decoded), true, req->pool);
        p->secret = core_url_decode(colon + 1, strlen(colon + 1), true, req->pool);
        if (!p->id || !p->secret || !*p->id) {
            core_reply_header(req, "WWW-Authenticate", "Basic realm=\"renkei\"");
            core_reply_oauth_error(req, 401, "invalid_client", "malformed client credentials");
            return false;
        }
        if (body_id && strcmp(body_id, p->id) != 0) {
            core_reply_oauth_error(req, 400, "invalid_request",
                                   "client_id in the body differs from the Authorization header");
            return false;
        }
        p->method = AZ_AUTH_BASIC;
        return true;
    }
    if (assertion || atype) {
        if (!atype || strcmp(atype, ASSERTION_TYPE) != 0 || !assertion) {
            core_reply_oauth_error(req, 400, "invalid_request",
                                   "client_assertion_type must be " ASSERTION_TYPE
                                   " with a client_assertion");
            return false;
        }
        p->assertion = assertion;
        p->id = body_id; /* may be absent: the assertion's sub names the client */
        p->method = AZ_AUTH_JWT;
        return true;
    }
    if (!body_id) {
        core_reply_header(req, "WWW-Authenticate", "Basic realm=\"renkei\"");
        core_reply_oauth_error(req, 401, "invalid_client", "client authentication is required");
        return false;
    }
    p->id = body_id;
    p->secret = body_secret;
    p->method = body_secret ? AZ_AUTH_POST : AZ_AUTH_NONE;
    return true;
}

/* ---- private_key_jwt ---- */

static struct core_stmt az_assertion_jti_stmt = CORE_STMT(
    "az_assertion_jti",
    /* expired entries go on the way in: the table holds minutes of history */
    "WITH gone AS (DELETE FROM client_assertion_jtis WHERE expires_at < now() - interval "
    "'1 minute') INSERT INTO client_assertion_jtis (client_id, jti, expires_at) VALUES ($1, $2, "
    "to_timestamp($3)) ON CONFLICT DO NOTHING RETURNING 1");

struct jti_arg {
    const char *client, *jti;
    long long exp;
    bool fresh;
};

static enum core_db_rc jti_tx(struct core_db_conn *c, void *p)
{
    struct jti_arg *a = p;
    char exp[24];
    snprintf(exp, sizeof exp, "%lld", a->exp);
    const char *v[] = {a->client, a->jti, exp};
    PGresult *r = core_db_exec(c, &az_assertion_jti_stmt, 3, v);
    if (!r)
        return CORE_DB_ERROR;
    a->fresh = PQntuples(r) == 1;
    PQclear(r);
    return CORE_DB_OK;
}

/* The assertion's client id (its sub), before any signature is checked. */
static const char *assertion_subject(const char *assertion, struct core_pool *pool)
{
    struct core_jws j;
    const char *why;
    if (!core_jws_parse(assertion, AZ_TOKEN_MAX, &j, &why))
        return NULL;
    const char *sub = json_string_value(json_object_get(j.claims, "sub"));
    char *out = sub && strlen(sub) <= 64 ? core_pstrdup(pool, sub) : NULL;
    core_jws_release(&j);
    return out;
}

/* 0 fine, else queues nothing and returns a reason for invalid_client; -1 in
 * *unavailable when the replay check cannot be made. */
static const char *check_assertion(const struct az_client *c, const char *assertion,
                                   bool *unavailable)
{
    struct core_jws j;
    const char *why;
    if (!core_jws_parse(assertion, AZ_TOKEN_MAX, &j, &why))
        return why;
    const char *reason = NULL;
    const char *halg = json_string_value(json_object_get(j.header, "alg"));
    const char *kid = json_string_value(json_object_get(j.header, "kid"));
    enum core_alg alg;
    if (!core_alg_parse(halg, &alg)) {
        reason = "the assertion must be signed with ES256 or RS256";
        goto cleanup;
    }
    bool verified = false;
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(c->jwks, "keys"), i, k)
    {
        const char *kkid = json_string_value(json_object_get(k, "kid"));
        if (kid && kkid && strcmp(kid, kkid) != 0)
            continue;
        const char *ignored;
        EVP_PKEY *pk = core_jwk_import(k, &ignored);
        if (pk) {
            verified = core_jws_verify(&j, pk, alg);
            EVP_PKEY_free(pk);
        }
        if (verified)
            break;
    }
    if (!verified) {
        reason = "the assertion's signature does not verify with the client's keys";
        goto cleanup;
    }
    const char *iss = json_string_value(json_object_get(j.claims, "iss"));
    const char *sub = json_string_value(json_object_get(j.claims, "sub"));
    if (!iss || !sub || strcmp(iss, c->id) != 0 || strcmp(sub, c->id) != 0) {
        reason = "the assertion's iss and sub must both be the client_id";
        goto cleanup;
    }
    /* aud: the issuer or the token endpoint (RFC 7523 §3) */
    char *token_ep = xasprintf("%s/oauth2/token", core_cfg.issuer);
    json_t *aud = json_object_get(j.claims, "aud");
    bool aud_ok = false;
    if (json_is_string(aud)) {
        aud_ok = strcmp(json_string_value(aud), core_cfg.issuer) == 0 ||
                 strcmp(json_string_value(aud), token_ep) == 0;
    } else if (json_is_array(aud)) {
        size_t n;
        json_t *v;
        json_array_foreach(aud, n, v)
        {
            aud_ok = aud_ok ||
                     (json_is_string(v) && (strcmp(json_string_value(v), core_cfg.issuer) == 0 ||
                                            strcmp(json_string_value(v), token_ep) == 0));
        }
    }
    free(token_ep);
    if (!aud_ok) {
        reason = "the assertion's aud must be the hub's issuer or token endpoint";
        goto cleanup;
    }
    json_t *exp = json_object_get(j.claims, "exp");
    const char *jti = json_string_value(json_object_get(j.claims, "jti"));
    long long now = (long long)time(NULL);
    if (!json_is_integer(exp) || json_integer_value(exp) < now - 30) {
        reason = "the assertion has no exp or has expired";
        goto cleanup;
    }
    if (json_integer_value(exp) > now + ASSERTION_MAX_LIFETIME) {
        reason = "the assertion lives longer than 5 minutes";
        goto cleanup;
    }
    if (!jti || strlen(jti) < 8 || strlen(jti) > 200) {
        reason = "the assertion needs a jti of 8 to 200 characters";
        goto cleanup;
    }
    struct jti_arg a = {c->id, jti, json_integer_value(exp), false};
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, jti_tx, &a, NULL);
    if (rc != CORE_DB_OK) {
        *unavailable = true;
        reason = "the assertion cannot be checked for replay right now";
    } else if (!a.fresh) {
        reason = "the assertion was used before (jti replayed)";
    }
cleanup:
    core_jws_release(&j);
    return reason;
}

/* ---- the whole check ---- */

const struct az_client *az_authenticate(struct core_req *req, const struct az_form *f)
{
    struct presented p;
    if (!presented(req, f, &p))
        return NULL;
    if (!p.id && p.assertion)
        p.id = assertion_subject(p.assertion, req->pool);
    if (!p.id || strlen(p.id) > 64) {
        core_reply_oauth_error(req, 401, "invalid_client", "the client is unknown");
        return NULL;
    }
    char client_key[80], peer_key[80];
    snprintf(client_key, sizeof client_key, "c:%s", p.id);
    snprintf(peer_key, sizeof peer_key, "a:%s", core_req_peer(req));
    int wait = throttled(client_key, CLIENT_FAILURES);
    if (!wait)
        wait = throttled(peer_key, PEER_FAILURES);
    if (wait) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", wait);
        core_reply_header(req, "Retry-After", ra);
        core_reply_oauth_error(req, 429, "invalid_client",
                               "too many failed client authentications; retry after %d s", wait);
        return NULL;
    }
    enum az_rc rc;
    const struct az_client *c = az_client_get(p.id, &rc);
    if (!c && rc == AZ_UNAVAILABLE) {
        core_reply_header(req, "Retry-After", "5");
        core_reply_oauth_error(req, 503, "temporarily_unavailable",
                               "the database is not available");
        return NULL;
    }
    const char *reason = NULL;
    bool unavailable = false;
    if (!c) {
        reason = "the client is unknown or its credentials are wrong";
    } else if (c->auth != p.method && !(p.method == AZ_AUTH_POST && c->auth == AZ_AUTH_POST) &&
               !(p.method == AZ_AUTH_BASIC && c->auth == AZ_AUTH_BASIC)) {
        reason = "the client must authenticate with its registered method";
    } else if (p.method == AZ_AUTH_BASIC || p.method == AZ_AUTH_POST) {
        if (!p.secret || !az_secret_matches(c, p.secret, strlen(p.secret)))
            reason = "the client is unknown or its credentials are wrong";
    } else if (p.method == AZ_AUTH_JWT) {
        reason = check_assertion(c, p.assertion, &unavailable);
    } else if (c->auth != AZ_AUTH_NONE) {
        reason = "the client must authenticate";
    } /* else a public client, identified by client_id alone (RFC 6749 §3.2.1) */
    if (unavailable) {
        az_client_put(c);
        core_reply_header(req, "Retry-After", "5");
        core_reply_oauth_error(req, 503, "temporarily_unavailable", "%s", reason);
        return NULL;
    }
    if (!reason && c->disabled)
        reason = "the client is disabled";
    if (!reason) {
        struct tn_brief b;
        enum tn_rc trc = tn_brief(c->tenant, &b);
        if (trc == TN_UNAVAILABLE || trc == TN_ERROR) {
            az_client_put(c);
            core_reply_header(req, "Retry-After", "5");
            core_reply_oauth_error(req, 503, "temporarily_unavailable",
                                   "the database is not available");
            return NULL;
        }
        if (trc != TN_OK || b.state != TN_ACTIVE)
            reason = "the client's tenant is suspended";
    }
    if (reason) {
        count_failure(client_key);
        count_failure(peer_key);
        az_client_put(c);
        core_log_fields(CORE_LOG_INFO, "client authentication failed",
                        json_pack("{s:s, s:s, s:s}", "client_id", p.id, "peer", core_req_peer(req),
                                  "reason", reason));
        if (p.method == AZ_AUTH_BASIC)
            core_reply_header(req, "WWW-Authenticate", "Basic realm=\"renkei\"");
        core_reply_oauth_error(req, 401, "invalid_client", "%s", reason);
        return NULL;
    }
    return c;
}
