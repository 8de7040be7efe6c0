/* Access tokens: issuing, verifying with a cache, and the revocation set. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "authz/az_grant.h"
#include "authz/az_token.h"
#include "authz/az_staff.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/db.h"
#include "core/db_listen.h"
#include "core/log.h"
#include "tenants/tn.h"

#define LEEWAY_S       30
#define VERIFIED_SLOTS 8192
#define VERIFIED_MAX   100000
#define REVOKED_SLOTS  4096
#define REVOKED_MAX    1000000

/* ---- issuing ---- */

char *az_token_issue_for(const struct az_client *c, const struct az_issue *o, int *expires_in,
                         char jti_out[65], long long *exp_out)
{
    time_t now = time(NULL);
    unsigned char raw[16];
    core_random(raw, sizeof raw);
    char *jti = core_b64url_encode(raw, sizeof raw);
    json_t *claims = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:s}", "iss", core_cfg.issuer, "sub",
        o->sub ? o->sub : c->id, "aud", o->aud, "exp", (json_int_t)(now + c->token_ttl), "iat",
        (json_int_t)now, "jti", jti, "client_id", c->id, "scope", o->scope, "tenant", c->tenant);
    if (claims && o->grant)
        json_object_set_new(claims, "grant", json_string(o->grant));
    if (claims && o->act)
        json_object_set(claims, "act", o->act);
    char *token = claims ? az_keys_sign(c->token_alg, "at+jwt", claims) : NULL;
    json_decref(claims);
    if (jti_out)
        xsnprintf(jti_out, 65, "%s", jti);
    if (exp_out)
        *exp_out = (long long)now + c->token_ttl;
    free(jti);
    *expires_in = c->token_ttl;
    return token;
}

char *az_token_issue(const struct az_client *c, const char *scope, const char *aud, int *expires_in)
{
    struct az_issue o = {.scope = scope, .aud = aud};
    return az_token_issue_for(c, &o, expires_in, NULL, NULL);
}

/* ---- the revocation set ---- */

struct revoked {
    struct revoked *next;
    char jti[65];
    long long exp;
};

static struct {
    pthread_rwlock_t lock;
    struct revoked *slots[REVOKED_SLOTS];
    size_t count;
} rev = {.lock = PTHREAD_RWLOCK_INITIALIZER};

static unsigned hash_str(const char *s, unsigned mod)
{
    return core_hash_str(s) % mod;
}

static void rev_clear_locked(void)
{
    for (size_t i = 0; i < REVOKED_SLOTS; i++) {
        struct revoked *e = rev.slots[i];
        while (e) {
            struct revoked *next = e->next;
            free(e);
            e = next;
        }
        rev.slots[i] = NULL;
    }
    rev.count = 0;
}

/* Adds jti, dropping expired entries of its slot on the way. */
static void rev_add(const char *jti, long long exp)
{
    long long now = (long long)time(NULL);
    pthread_rwlock_wrlock(&rev.lock);
    struct revoked **pp = &rev.slots[hash_str(jti, REVOKED_SLOTS)];
    bool present = false;
    while (*pp) {
        if ((*pp)->exp + LEEWAY_S < now) {
            struct revoked *dead = *pp;
            *pp = dead->next;
            free(dead);
            rev.count--;
            continue;
        }
        present = present || strcmp((*pp)->jti, jti) == 0;
        pp = &(*pp)->next;
    }
    if (!present && rev.count < REVOKED_MAX) {
        struct revoked *e = xcalloc(1, sizeof *e);
        xsnprintf(e->jti, sizeof e->jti, "%s", jti);
        e->exp = exp;
        e->next = rev.slots[hash_str(jti, REVOKED_SLOTS)];
        rev.slots[hash_str(jti, REVOKED_SLOTS)] = e;
        rev.count++;
    }
    pthread_rwlock_unlock(&rev.lock);
}

static bool rev_has(const char *jti)
{
    bool found = false;
    pthread_rwlock_rdlock(&rev.lock);
    for (struct revoked *e = rev.slots[hash_str(jti, REVOKED_SLOTS)]; e && !found; e = e->next)
        found = strcmp(e->jti, jti) == 0;
    pthread_rwlock_unlock(&rev.lock);
    return found;
}

static struct core_stmt az_revoked_all_stmt = CORE_STMT(
    "az_revoked_all", "SELECT jti, extract(epoch FROM expires_at)::bigint FROM revoked_tokens "
                      "WHERE expires_at > now() - interval '1 minute'");
static struct core_stmt az_revoked_one_stmt =
    CORE_STMT("az_revoked_one", "SELECT 1 FROM revoked_tokens WHERE jti = $1");
static struct core_stmt az_revoke_stmt = CORE_STMT(
    "az_revoke",
    /* revocations of tokens that have expired anyway are dropped on the way in */
    "WITH gone AS (DELETE FROM revoked_tokens WHERE expires_at < now() - interval '1 hour') "
    "INSERT INTO revoked_tokens (jti, client_id, tenant_id, expires_at) VALUES ($1, $2, $3, "
    "to_timestamp($4)) ON CONFLICT (jti) DO NOTHING");

static enum core_db_rc load_revoked_tx(struct core_db_conn *c, void *arg)
{
    (void)arg;
    PGresult *r = core_db_exec(c, &az_revoked_all_stmt, 0, NULL);
    if (!r)
        return CORE_DB_ERROR;
    pthread_rwlock_wrlock(&rev.lock);
    rev_clear_locked();
    pthread_rwlock_unlock(&rev.lock);
    for (int i = 0; i < PQntuples(r); i++) {
        long v = 0;
        core_parse_long(PQgetvalue(r, i, 1), 0, 1L << 40, &v);
        rev_add(PQgetvalue(r, i, 0), v);
    }
    PQclear(r);
    return CORE_DB_OK;
}

/* NOTIFY renkei_revoked "<jti> <exp>": another node (or this one) revoked. */
static void on_revoked(const char *payload, void *arg)
{
    (void)arg;
    char jti[65];
    long v = 0;
    size_t n = strcspn(payload, " ");
    if (n == 0 || n >= sizeof jti)
        return;
    memcpy(jti, payload, n);
    jti[n] = '\0';
    if (payload[n] == ' ')
        core_parse_long(payload + n + 1, 0, 1L << 40, &v);
    rev_add(jti, v ? v : (long long)time(NULL) + 86400);
}

static void on_revoked_reset(void *arg)
{
    (void)arg;
    core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, load_revoked_tx, NULL, NULL);
}

struct one_arg {
    const char *jti;
    bool found;
};

static enum core_db_rc revoked_one_tx(struct core_db_conn *c, void *p)
{
    struct one_arg *a = p;
    const char *v[] = {a->jti};
    PGresult *r = core_db_exec(c, &az_revoked_one_stmt, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    a->found = PQntuples(r) > 0;
    PQclear(r);
    return CORE_DB_OK;
}

/* 1 revoked, 0 not, -1 cannot tell. While the listener is down the set may
 * miss a revocation made on another node: ask the database then. */
static int is_revoked(const char *jti)
{
    if (rev_has(jti))
        return 1;
    if (core_db_listen_connected())
        return 0;
    struct one_arg a = {jti, false};
    if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, revoked_one_tx, &a, NULL) != CORE_DB_OK)
        return -1;
    return a.found ? 1 : 0;
}

struct revoke_arg {
    const struct az_claims *c;
};

static enum core_db_rc revoke_tx(struct core_db_conn *c, void *p)
{
    struct revoke_arg *a = p;
    char exp[24];
    snprintf(exp, sizeof exp, "%lld", a->c->exp);
    const char *v[] = {a->c->jti, a->c->client_id, a->c->tenant, exp};
    PGresult *r = core_db_exec(c, &az_revoke_stmt, 4, v);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    return CORE_DB_OK;
}

void az_token_revoked_now(const char *jti, long long exp)
{
    rev_add(jti, exp);
}

bool az_token_revoke(const struct az_claims *c)
{
    struct revoke_arg a = {c};
    if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, revoke_tx, &a, NULL) != CORE_DB_OK)
        return false;
    rev_add(c->jti, c->exp);
    return true;
}

/* ---- verified tokens, by hash ---- */

struct verified {
    struct verified *next;
    unsigned char hash[32];
    struct az_claims claims;
    bool aud_hub;
};

static struct {
    pthread_rwlock_t lock;
    struct verified *slots[VERIFIED_SLOTS];
    size_t count;
} ver = {.lock = PTHREAD_RWLOCK_INITIALIZER};

static void ver_clear_locked(void)
{
    for (size_t i = 0; i < VERIFIED_SLOTS; i++) {
        struct verified *e = ver.slots[i];
        while (e) {
            struct verified *next = e->next;
            free(e);
            e = next;
        }
        ver.slots[i] = NULL;
    }
    ver.count = 0;
}

static unsigned hash_slot(const unsigned char h[32])
{
    return ((unsigned)h[0] << 8 | h[1]) % VERIFIED_SLOTS;
}

static bool ver_lookup(const unsigned char h[32], bool aud_hub, struct az_claims *out)
{
    bool hit = false;
    long long now = (long long)time(NULL);
    pthread_rwlock_rdlock(&ver.lock);
    for (struct verified *e = ver.slots[hash_slot(h)]; e; e = e->next) {
        if (memcmp(e->hash, h, 32) == 0) {
            if (e->claims.exp + LEEWAY_S >= now && (e->aud_hub || !aud_hub)) {
                *out = e->claims;
                hit = true;
            }
            break;
        }
    }
    pthread_rwlock_unlock(&ver.lock);
    return hit;
}

static void ver_store(const unsigned char h[32], bool aud_hub, const struct az_claims *c)
{
    long long now = (long long)time(NULL);
    pthread_rwlock_wrlock(&ver.lock);
    if (ver.count >= VERIFIED_MAX)
        ver_clear_locked();
    struct verified **pp = &ver.slots[hash_slot(h)];
    while (*pp) { /* drop expired ones and an older copy */
        if ((*pp)->claims.exp + LEEWAY_S < now || memcmp((*pp)->hash, h, 32) == 0) {
            struct verified *dead = *pp;
            *pp = dead->next;
            free(dead);
            ver.count--;
            continue;
        }
        pp = &(*pp)->next;
    }
    struct verified *e = xcalloc(1, sizeof *e);
    memcpy(e->hash, h, 32);
    e->claims = *c;
    e->aud_hub = aud_hub;
    e->next = ver.slots[hash_slot(h)];
    ver.slots[hash_slot(h)] = e;
    ver.count++;
    pthread_rwlock_unlock(&ver.lock);
}

static bool copy_claim(json_t *claims, const char *name, char *out, size_t len, bool required)
{
    json_t *v = json_object_get(claims, name);
    if (!v) {
        out[0] = '\0';
        return !required;
    }
    return json_is_string(v) && xsnprintf(out, len, "%s", json_string_value(v));
}

static bool aud_has(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return true;
    }
    return false;
}

/* Signature and claims, without the cache and the state checks. */
static enum az_verify_rc verify_fresh(const char *token, struct az_claims *out, bool *aud_hub,
                                      const char **why)
{
    struct core_jws j;
    if (!core_jws_parse(token, AZ_TOKEN_MAX, &j, why))
        return AZ_TOKEN_INVALID;
    enum az_verify_rc rc = AZ_TOKEN_INVALID;
    const char *typ = json_string_value(json_object_get(j.header, "typ"));
    if (!typ || (strcasecmp(typ, "at+jwt") != 0 && strcasecmp(typ, "application/at+jwt") != 0)) {
        *why = "not an access token (typ must be at+jwt)";
        goto cleanup;
    }
    if (!az_keys_verify(&j)) {
        *why = "the signature does not verify with the hub's keys";
        goto cleanup;
    }
    xsnprintf(out->kid, sizeof out->kid, "%s", json_string_value(json_object_get(j.header, "kid")));
    const char *iss = json_string_value(json_object_get(j.claims, "iss"));
    if (!iss || strcmp(iss, core_cfg.issuer) != 0) {
        *why = "the token was issued by someone else";
        goto cleanup;
    }
    json_t *exp = json_object_get(j.claims, "exp"), *iat = json_object_get(j.claims, "iat");
    json_t *nbf = json_object_get(j.claims, "nbf");
    long long now = (long long)time(NULL);
    if (!json_is_integer(exp) || !json_is_integer(iat)) {
        *why = "the token lacks exp or iat";
        goto cleanup;
    }
    out->exp = json_integer_value(exp);
    out->iat = json_integer_value(iat);
    if (out->exp + LEEWAY_S < now) {
        *why = "the token has expired";
        goto cleanup;
    }
    if (out->iat > now + LEEWAY_S ||
        (nbf && (!json_is_integer(nbf) || json_integer_value(nbf) > now + LEEWAY_S))) {
        *why = "the token is not valid yet";
        goto cleanup;
    }
    json_t *aud = json_object_get(j.claims, "aud");
    *aud_hub = aud && aud_has(aud, core_cfg.issuer);
    if (json_is_string(aud))
        xsnprintf(out->aud, sizeof out->aud, "%s", json_string_value(aud));
    else if (json_is_array(aud) && json_is_string(json_array_get(aud, 0)))
        xsnprintf(out->aud, sizeof out->aud, "%s", json_string_value(json_array_get(aud, 0)));
    if (!copy_claim(j.claims, "jti", out->jti, sizeof out->jti, true) ||
        !copy_claim(j.claims, "client_id", out->client_id, sizeof out->client_id, true) ||
        !copy_claim(j.claims, "sub", out->sub, sizeof out->sub, true) ||
        !copy_claim(j.claims, "tenant", out->tenant, sizeof out->tenant, true) ||
        !copy_claim(j.claims, "scope", out->scope, sizeof out->scope, false) ||
        !copy_claim(j.claims, "grant", out->grant, sizeof out->grant, false)) {
        *why = "the token lacks jti, client_id, sub or tenant";
        goto cleanup;
    }
    out->exchanged = json_object_get(j.claims, "act") != NULL;
    rc = AZ_TOKEN_OK;
cleanup:
    core_jws_release(&j);
    return rc;
}

enum az_verify_rc az_token_verify(const char *token, bool aud_hub, struct az_claims *out,
                                  const char **why)
{
    memset(out, 0, sizeof *out);
    *why = NULL;
    size_t len = strnlen(token, AZ_TOKEN_MAX + 1);
    if (len > AZ_TOKEN_MAX) {
        *why = "the token is too long";
        return AZ_TOKEN_INVALID;
    }
    unsigned char h[32];
    core_sha256(token, len, h);
    if (!ver_lookup(h, aud_hub, out)) {
        bool for_hub = false;
        enum az_verify_rc rc = verify_fresh(token, out, &for_hub, why);
        if (rc != AZ_TOKEN_OK)
            return rc;
        ver_store(h, for_hub, out);
        if (aud_hub && !for_hub) {
            *why = "the token is meant for another audience";
            return AZ_TOKEN_INVALID;
        }
    }
    /* what can change while a token lives: checked on every use */
    if (out->exp + LEEWAY_S < (long long)time(NULL)) {
        *why = "the token has expired";
        return AZ_TOKEN_INVALID;
    }
    if (!az_keys_usable(out->kid)) {
        *why = "the key that signed the token has been retired";
        return AZ_TOKEN_INVALID;
    }
    int revoked = is_revoked(out->jti);
    if (revoked < 0)
        return AZ_TOKEN_UNAVAILABLE;
    if (revoked) {
        *why = "the token was revoked";
        return AZ_TOKEN_REVOKED;
    }
    enum az_rc crc;
    const struct az_client *c = az_client_get(out->client_id, &crc);
    if (!c)
        return crc == AZ_UNAVAILABLE
                   ? AZ_TOKEN_UNAVAILABLE
                   : (*why = "the token's client no longer exists", AZ_TOKEN_INACTIVE);
    bool disabled = c->disabled;
    az_client_put(c);
    if (disabled) {
        *why = "the token's client is disabled";
        return AZ_TOKEN_INACTIVE;
    }
    struct tn_brief b;
    enum tn_rc trc = tn_brief(out->tenant, &b);
    if (trc == TN_UNAVAILABLE || trc == TN_ERROR)
        return AZ_TOKEN_UNAVAILABLE;
    if (trc != TN_OK || b.state != TN_ACTIVE) {
        *why = "the token's tenant is suspended";
        return AZ_TOKEN_INACTIVE;
    }
    if (out->grant[0]) {
        /* a resident's token lives only as long as their consent and account */
        char consented[AZ_SCOPE_MAX + 1];
        long long after = 0;
        int live = az_grant_live(out->grant, out->resident, consented, &after);
        if (live < 0)
            return AZ_TOKEN_UNAVAILABLE;
        if (!live) {
            *why = "the resident's consent was revoked or their account disabled";
            return AZ_TOKEN_REVOKED;
        }
        if (out->iat <= after) {
            out->resident[0] = '\0';
            *why = "the token was issued before the resident's account was disabled";
            return AZ_TOKEN_REVOKED;
        }
        if (!az_scope_within(out->scope, consented)) {
            out->resident[0] = '\0';
            *why = "the resident's consent no longer covers the token's scope";
            return AZ_TOKEN_REVOKED;
        }
    }
    return AZ_TOKEN_OK;
}

void az_token_init(void)
{
    core_db_listen("renkei_revoked", on_revoked, on_revoked_reset, NULL);
}

void az_token_release(void)
{
    pthread_rwlock_wrlock(&rev.lock);
    rev_clear_locked();
    pthread_rwlock_unlock(&rev.lock);
    pthread_rwlock_wrlock(&ver.lock);
    ver_clear_locked();
    pthread_rwlock_unlock(&ver.lock);
}

/* ---- core's verifier ---- */

static bool b64token(const char *s)
{
    /* RFC 6750 §2.1 b64token */
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
        if (!ok)
            break;
    }
    while (s[n] == '=')
        n++;
    return n > 0 && s[n] == '\0';
}

bool az_core_verifier(struct core_req *req, struct core_principal *out)
{
    const char *h = core_req_header(req, "Authorization");
    if (!h) {
        /* a console's own reads, with its session instead of a token */
        int staff = az_staff_principal(req, out);
        if (staff)
            return staff > 0;
    }
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        core_reply_header(req, "WWW-Authenticate", "Bearer realm=\"renkei\"");
        core_reply_error(req, CORE_ERR_UNAUTHORIZED, "a bearer token is required");
        return false;
    }
    const char *token = h + 7;
    while (*token == ' ')
        token++;
    struct az_claims c;
    const char *why = "the token is malformed";
    enum az_verify_rc rc =
        b64token(token) ? az_token_verify(token, true, &c, &why) : AZ_TOKEN_INVALID;
    if (rc == AZ_TOKEN_UNAVAILABLE) {
        core_reply_header(req, "Retry-After", "5");
        core_reply_error(req, CORE_ERR_UNAVAILABLE, "tokens cannot be checked right now");
        return false;
    }
    if (rc != AZ_TOKEN_OK) {
        core_reply_header(req, "WWW-Authenticate",
                          core_psprintf(req->pool,
                                        "Bearer realm=\"renkei\", error=\"invalid_token\", "
                                        "error_description=\"%s\"",
                                        why));
        core_reply_error(req, CORE_ERR_UNAUTHORIZED, "%s", why);
        return false;
    }
    out->client_id = core_pstrdup(req->pool, c.client_id);
    out->tenant = core_pstrdup(req->pool, c.tenant);
    out->subject = core_pstrdup(req->pool, c.sub);
    out->scope = core_pstrdup(req->pool, c.scope);
    out->resident = c.resident[0] ? core_pstrdup(req->pool, c.resident) : NULL;
    return true;
}
