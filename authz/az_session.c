/* Sign-in sessions, CSRF tokens and sealed authorization requests. */
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "authz/az_session.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/db.h"
#include "core/log.h"

#define CSRF_LABEL    "renkei.authz.csrf.v1"
#define AUTHREQ_LABEL "renkei.authz.authreq.v1"

bool az_cookie_secure(void)
{
    return strncmp(core_cfg.issuer, "https://", 8) == 0;
}

static const char *cookie_name(const char *base)
{
    if (!az_cookie_secure())
        return base;
    if (strcmp(base, "renkei_sid") == 0)
        return "__Host-renkei_sid";
    return "__Host-renkei_csrf";
}

/* A cookie value as we make them: 43 base64url characters. */
static bool value_ok(const char *v)
{
    return v && strlen(v) == 43 &&
           strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 43;
}

static char *random_value(void)
{
    unsigned char raw[32];
    core_random(raw, sizeof raw);
    char *s = core_b64url_encode(raw, sizeof raw);
    OPENSSL_cleanse(raw, sizeof raw);
    return s;
}

/* ---- sessions ---- */

static struct core_stmt az_session_get_stmt = CORE_STMT(
    "az_session_get",
    "SELECT s.sid, s.resident_id, floor(extract(epoch FROM s.auth_time))::bigint, s.acr, "
    "array_to_string(s.amr, ' '), s.last_seen < now() - interval '1 minute' FROM sessions s JOIN "
    "residents r ON r.id = s.resident_id JOIN tenants t ON t.id = r.tenant_id WHERE s.id_hash = "
    "$1 AND s.ended_at IS NULL AND s.expires_at > now() AND s.last_seen > now() - "
    "make_interval(secs => $2) AND r.state = 'active' AND t.state = 'active'");
static struct core_stmt az_session_touch_stmt =
    CORE_STMT("az_session_touch", "UPDATE sessions SET last_seen = now() WHERE id_hash = $1");
static struct core_stmt az_session_insert_stmt = CORE_STMT(
    "az_session_insert",
    /* sessions long over go on the way in */
    "WITH gone AS (DELETE FROM sessions WHERE expires_at < now() - interval '1 day') INSERT INTO "
    "sessions (id_hash, sid, resident_id, auth_time, expires_at) VALUES ($1, $2, $3, now(), now() "
    "+ make_interval(secs => $4)) RETURNING floor(extract(epoch FROM auth_time))::bigint, acr, "
    "array_to_string(amr, ' ')");
static struct core_stmt az_session_end_stmt =
    CORE_STMT("az_session_end",
              "UPDATE sessions SET ended_at = now() WHERE id_hash = $1 AND ended_at IS NULL");

struct get_arg {
    unsigned char hash[32];
    struct az_session *out;
    bool found;
};

static enum core_db_rc get_tx(struct core_db_conn *c, void *p)
{
    struct get_arg *a = p;
    char idle[16];
    snprintf(idle, sizeof idle, "%d", AZ_SESSION_IDLE_S);
    const char *v[] = {(const char *)a->hash, idle};
    int len[] = {32, 0}, fmt[] = {1, 0};
    PGresult *r = core_db_execp(c, &az_session_get_stmt, 2, v, len, fmt, 0);
    if (!r)
        return CORE_DB_ERROR;
    a->found = PQntuples(r) == 1;
    bool touch = false;
    if (a->found) {
        struct az_session *s = a->out;
        xsnprintf(s->sid, sizeof s->sid, "%s", PQgetvalue(r, 0, 0));
        xsnprintf(s->resident, sizeof s->resident, "%s", PQgetvalue(r, 0, 1));
        long v64 = 0;
        core_parse_long(PQgetvalue(r, 0, 2), 0, 1L << 40, &v64);
        s->auth_time = v64;
        xsnprintf(s->acr, sizeof s->acr, "%s", PQgetvalue(r, 0, 3));
        xsnprintf(s->amr, sizeof s->amr, "%s", PQgetvalue(r, 0, 4));
        touch = PQgetvalue(r, 0, 5)[0] == 't';
    }
    PQclear(r);
    if (touch) {
        r = core_db_execp(c, &az_session_touch_stmt, 1, v, len, fmt, 0);
        if (!r)
            return CORE_DB_ERROR;
        PQclear(r);
    }
    return CORE_DB_OK;
}

enum az_session_rc az_session_get(struct core_req *req, struct az_session *out)
{
    memset(out, 0, sizeof *out);
    const char *v = core_req_cookie(req, cookie_name("renkei_sid"));
    if (!value_ok(v))
        return AZ_SESSION_NONE;
    struct get_arg a = {.out = out};
    core_sha256(v, strlen(v), a.hash);
    if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, get_tx, &a, NULL) != CORE_DB_OK)
        return AZ_SESSION_UNAVAILABLE;
    return a.found ? AZ_SESSION_OK : AZ_SESSION_NONE;
}

struct start_arg {
    unsigned char old[32], hash[32];
    bool has_old;
    const char *resident;
    struct az_session *out;
};

static enum core_db_rc start_tx(struct core_db_conn *c, void *p)
{
    struct start_arg *a = p;
    int len[] = {32, 0, 0, 0}, fmt[] = {1, 0, 0, 0};
    if (a->has_old) {
        const char *ov[] = {(const char *)a->old};
        PGresult *r = core_db_execp(c, &az_session_end_stmt, 1, ov, len, fmt, 0);
        if (!r)
            return CORE_DB_ERROR;
        PQclear(r);
    }
    char max[16];
    snprintf(max, sizeof max, "%d", AZ_SESSION_MAX_S);
    const char *v[] = {(const char *)a->hash, a->out->sid, a->resident, max};
    PGresult *r = core_db_execp(c, &az_session_insert_stmt, 4, v, len, fmt, 0);
    if (!r)
        return CORE_DB_ERROR;
    long t = 0;
    core_parse_long(PQgetvalue(r, 0, 0), 0, 1L << 40, &t);
    a->out->auth_time = t;
    xsnprintf(a->out->acr, sizeof a->out->acr, "%s", PQgetvalue(r, 0, 1));
    xsnprintf(a->out->amr, sizeof a->out->amr, "%s", PQgetvalue(r, 0, 2));
    PQclear(r);
    return CORE_DB_OK;
}

bool az_session_start(struct core_req *req, const char *resident, struct az_session *out)
{
    memset(out, 0, sizeof *out);
    struct start_arg a = {.resident = resident, .out = out};
    const char *old = core_req_cookie(req, cookie_name("renkei_sid"));
    if (value_ok(old)) {
        core_sha256(old, strlen(old), a.old);
        a.has_old = true;
    }
    char *value = random_value();
    core_sha256(value, strlen(value), a.hash);
    unsigned char raw[16];
    core_random(raw, sizeof raw);
    char *sid = core_b64url_encode(raw, sizeof raw);
    xsnprintf(out->sid, sizeof out->sid, "%s", sid);
    free(sid);
    xsnprintf(out->resident, sizeof out->resident, "%s", resident);
    bool ok = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, start_tx, &a, NULL) == CORE_DB_OK;
    if (ok)
        core_reply_cookie(req, cookie_name("renkei_sid"), value, 0, az_cookie_secure());
    OPENSSL_cleanse(value, strlen(value));
    free(value);
    return ok;
}

struct end_arg {
    unsigned char hash[32];
};

static enum core_db_rc end_tx(struct core_db_conn *c, void *p)
{
    struct end_arg *a = p;
    const char *v[] = {(const char *)a->hash};
    int len[] = {32}, fmt[] = {1};
    PGresult *r = core_db_execp(c, &az_session_end_stmt, 1, v, len, fmt, 0);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    return CORE_DB_OK;
}

bool az_session_end(struct core_req *req)
{
    const char *v = core_req_cookie(req, cookie_name("renkei_sid"));
    core_reply_cookie(req, cookie_name("renkei_sid"), "", -1, az_cookie_secure());
    if (!value_ok(v))
        return true;
    struct end_arg a;
    core_sha256(v, strlen(v), a.hash);
    return core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, end_tx, &a, NULL) == CORE_DB_OK;
}

/* ---- CSRF ---- */

static char *csrf_for(const char *cookie)
{
    unsigned char k[32], mac[32];
    core_secret_derive(CSRF_LABEL, k, sizeof k);
    core_hmac_sha256(k, cookie, strlen(cookie), mac);
    OPENSSL_cleanse(k, sizeof k);
    return core_b64url_encode(mac, sizeof mac);
}

const char *az_csrf_token(struct core_req *req)
{
    const char *v = core_req_cookie(req, cookie_name("renkei_csrf"));
    char *fresh = NULL;
    if (!value_ok(v)) {
        fresh = random_value();
        core_pool_cleanup(req->pool, free, fresh);
        core_reply_cookie(req, cookie_name("renkei_csrf"), fresh, 0, az_cookie_secure());
        v = fresh;
    }
    char *t = csrf_for(v);
    core_pool_cleanup(req->pool, free, t);
    return t;
}

/* The issuer's origin (scheme://host[:port]) is a prefix of the issuer. */
static bool same_origin(const char *origin)
{
    size_t n = strlen(origin);
    const char *iss = core_cfg.issuer;
    return strncasecmp(iss, origin, n) == 0 && (iss[n] == '\0' || iss[n] == '/');
}

bool az_csrf_ok(struct core_req *req, const char *token)
{
    const char *site = core_req_header(req, "Sec-Fetch-Site");
    if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
        return false;
    const char *origin = core_req_header(req, "Origin");
    if (origin && strcmp(origin, "null") != 0 && !same_origin(origin))
        return false;
    const char *v = core_req_cookie(req, cookie_name("renkei_csrf"));
    if (!token || !value_ok(v) || strlen(token) != 43)
        return false;
    char *want = csrf_for(v);
    bool ok = CRYPTO_memcmp(want, token, 43) == 0;
    free(want);
    return ok;
}

/* ---- sealed authorization requests ---- */

char *az_authreq_seal(json_t *params)
{
    json_object_set_new(params, "exp", json_integer((json_int_t)time(NULL) + AZ_AUTHREQ_TTL_S));
    char *text = json_dumps(params, JSON_COMPACT);
    unsigned char *sealed;
    size_t len;
    core_seal(AUTHREQ_LABEL, "authreq", 7, text, strlen(text), &sealed, &len);
    free(text);
    char *out = core_b64url_encode(sealed, len);
    free(sealed);
    return out;
}

json_t *az_authreq_open(const char *sealed, bool *expired)
{
    *expired = false;
    size_t n = strnlen(sealed, AZ_AUTHREQ_MAX + 1);
    if (n == 0 || n > AZ_AUTHREQ_MAX)
        return NULL;
    unsigned char *raw, *plain;
    size_t rlen, plen;
    if (!core_b64url_decode(sealed, n, &raw, &rlen))
        return NULL;
    bool ok = core_open(AUTHREQ_LABEL, "authreq", 7, raw, rlen, &plain, &plen);
    free(raw);
    if (!ok)
        return NULL;
    json_t *o = json_loadb((const char *)plain, plen, JSON_REJECT_DUPLICATES, NULL);
    free(plain);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    json_t *exp = json_object_get(o, "exp");
    if (!json_is_integer(exp) || json_integer_value(exp) < (json_int_t)time(NULL)) {
        *expired = true;
        json_decref(o);
        return NULL;
    }
    return o;
}
