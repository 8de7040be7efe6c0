/* Codes, refresh tokens and token exchange: the token endpoint's grants
 * for residents' apps. Every check that decides whether a code or refresh
 * token still stands runs in one transaction with its row locked, so two
 * concurrent redemptions cannot both win. */
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "audit/au.h"
#include "authz/az_flow.h"
#include "authz/az_grant.h"
#include "authz/az_oidc.h"
#include "authz/az_token.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/db.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "core/url.h"

#define TOKEN_TYPE_ACCESS "urn:ietf:params:oauth:token-type:access_token"

/* What a resident's consent can give an app. ngsi.* let the app ask the
 * data exchange for the resident's own records (never the town's data as a
 * whole: core_auth_service refuses residents' tokens there), and
 * exchange.<name> is the consent a personal-data agreement names. */
static const char *const resident_scopes[] = {
    "openid",       "profile",   "email",      "offline_access",
    "account.read", "ngsi.read", "ngsi.write", NULL};

bool az_scope_for_residents(const char *scope, size_t n)
{
    /* "exchange.<name>": the consent a personal-data agreement asks for */
    if (n > 9 && n <= 64 && strncmp(scope, "exchange.", 9) == 0) {
        for (size_t i = 9; i < n; i++) {
            char c = scope[i];
            if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '.' && c != '_' &&
                c != '-')
                return false;
        }
        return true;
    }
    for (const char *const *s = resident_scopes; *s; s++) {
        if (strlen(*s) == n && strncmp(*s, scope, n) == 0)
            return true;
    }
    return false;
}

static void hash_token(const char *t, unsigned char h[32])
{
    core_sha256(t, strlen(t), h);
}

static char *random_token(void)
{
    unsigned char raw[32];
    core_random(raw, sizeof raw);
    char *s = core_b64url_encode(raw, sizeof raw);
    OPENSSL_cleanse(raw, sizeof raw);
    return s;
}

/* ---- codes ---- */

static struct core_stmt az_code_insert_stmt = CORE_STMT(
    "az_code_insert",
    "WITH gone AS (DELETE FROM auth_codes WHERE expires_at < now() - interval '1 hour') INSERT "
    "INTO auth_codes (code_hash, client_id, grant_id, resident_id, sid, redirect_uri, scope, "
    "nonce, code_challenge, resource, auth_time, amr, acr, expires_at) VALUES ($1, $2, $3, $4, $5, "
    "$6, $7, $8, $9, $10, to_timestamp($11), string_to_array($12, ' '), $13, now() + "
    "make_interval(secs => $14))");

struct code_arg {
    const struct az_code_spec *s;
    unsigned char hash[32];
};

static enum core_db_rc code_insert_tx(struct core_db_conn *c, void *p)
{
    struct code_arg *a = p;
    const struct az_code_spec *s = a->s;
    char at[24], ttl[16];
    snprintf(at, sizeof at, "%lld", s->auth_time);
    snprintf(ttl, sizeof ttl, "%d", AZ_CODE_TTL_S);
    const char *v[] = {(const char *)a->hash,
                       s->client_id,
                       s->grant,
                       s->resident,
                       s->sid,
                       s->redirect_uri,
                       s->scope,
                       s->nonce,
                       s->code_challenge,
                       s->resource,
                       at,
                       s->amr,
                       s->acr,
                       ttl};
    int len[14] = {32}, fmt[14] = {1};
    PGresult *r = core_db_execp(c, &az_code_insert_stmt, 14, v, len, fmt, 0);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    return CORE_DB_OK;
}

bool az_code_issue(const struct az_code_spec *s, char code_out[64])
{
    char *code = random_token();
    struct code_arg a = {.s = s};
    hash_token(code, a.hash);
    bool ok = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, code_insert_tx, &a, NULL) == CORE_DB_OK;
    xsnprintf(code_out, 64, "%s", ok ? code : "");
    OPENSSL_cleanse(code, strlen(code));
    free(code);
    return ok;
}

/* ---- what a redemption or refresh issues ---- */

static struct core_stmt az_grant_check_stmt = CORE_STMT(
    "az_grant_check",
    "SELECT coalesce(string_agg(c.scope, ' ') FILTER (WHERE c.expires_at IS NULL OR c.expires_at "
    "> now()), '') FROM grants g JOIN residents r ON r.id = g.resident_id JOIN tenants t ON t.id "
    "= r.tenant_id LEFT JOIN consents c ON c.grant_id = g.id WHERE g.id = $1 AND g.revoked_at IS "
    "NULL AND r.state = 'active' AND t.state = 'active' GROUP BY g.id");
static struct core_stmt az_refresh_insert_stmt = CORE_STMT(
    "az_refresh_insert",
    "WITH gone AS (DELETE FROM refresh_tokens WHERE expires_at < now() - interval '1 day') INSERT "
    "INTO refresh_tokens (token_hash, family_id, grant_id, client_id, resident_id, sid, scope, "
    "resource, auth_time, expires_at, access_jti, access_exp) VALUES ($1, $2, $3, $4, $5, $6, $7, "
    "$8, to_timestamp($9), now() + make_interval(secs => $10), $11, to_timestamp($12))");
static struct core_stmt az_revoke_jti_stmt = CORE_STMT(
    "az_revoke_jti", "INSERT INTO revoked_tokens (jti, client_id, tenant_id, expires_at) VALUES "
                     "($1, $2, $3, to_timestamp($4)) ON CONFLICT (jti) DO NOTHING");
static struct core_stmt az_family_revoke_stmt = CORE_STMT(
    "az_family_revoke",
    "UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE family_id = $1 "
    "RETURNING access_jti, extract(epoch FROM access_exp)::bigint, client_id");

/* The live consent of grant (scopes into out); false when the grant is gone
 * (revoked, resident or their town disabled). NULL result: the statement
 * failed. */
static PGresult *grant_scopes(struct core_db_conn *c, const char *grant)
{
    const char *v[] = {grant};
    return core_db_exec(c, &az_grant_check_stmt, 1, v);
}

/* Revokes jti inside the transaction and notes it in *done ([[jti, exp],
 * ...]) for the revoked set of this process once the transaction commits. */
static bool revoke_jti(struct core_db_conn *c, const char *jti, const char *client,
                       const char *tenant, const char *exp, json_t *done)
{
    if (!jti || !*jti)
        return true;
    const char *v[] = {jti, client, tenant, exp && *exp ? exp : "0"};
    PGresult *r = core_db_exec(c, &az_revoke_jti_stmt, 4, v);
    if (!r)
        return false;
    PQclear(r);
    long e = 0;
    core_parse_long(v[3], 0, 1L << 40, &e);
    json_array_append_new(done, json_pack("[s, I]", jti, (json_int_t)e));
    return true;
}

/* Kills a refresh family and the access tokens issued with it. */
static bool family_revoke(struct core_db_conn *c, const char *family, const char *tenant,
                          json_t *done)
{
    const char *v[] = {family};
    PGresult *r = core_db_exec(c, &az_family_revoke_stmt, 1, v);
    if (!r)
        return false;
    bool ok = true;
    for (int i = 0; i < PQntuples(r) && ok; i++) {
        if (!PQgetisnull(r, i, 0))
            ok = revoke_jti(c, PQgetvalue(r, i, 0), PQgetvalue(r, i, 2), tenant,
                            PQgetvalue(r, i, 1), done);
    }
    PQclear(r);
    return ok;
}

/* After the commit: the revocations take effect in this process at once
 * (the answer to the client must not be ahead of them). */
static void revoked_now(json_t *done)
{
    size_t i;
    json_t *v;
    json_array_foreach(done, i, v)
    {
        az_token_revoked_now(json_string_value(json_array_get(v, 0)),
                             json_integer_value(json_array_get(v, 1)));
    }
    json_array_clear(done);
}

/* The tokens of one successful grant, and where they go in the reply. */
struct issued {
    char *access, *id_token, *refresh;
    char jti[65];
    long long exp;
    int expires_in;
    char family[65];
};

static void issued_release(struct issued *t)
{
    free(t->access);
    free(t->id_token);
    if (t->refresh)
        OPENSSL_cleanse(t->refresh, strlen(t->refresh));
    free(t->refresh);
}

struct issue_in {
    const struct az_client *client;
    const char *grant, *resident, *sid, *scope, *resource, *nonce, *amr, *acr;
    long long auth_time;
    bool with_id_token;
    bool with_refresh;
    const char *family;        /* NULL: a new family */
    const char *refresh_scope; /* the refresh token's scope; NULL: scope */
};

/* Signs the access (and ID) token and stores the refresh token, inside the
 * caller's transaction. False: a key is missing (*no_key) or a statement
 * failed. */
static bool issue(struct core_db_conn *c, const struct issue_in *in, struct issued *out,
                  bool *no_key)
{
    *no_key = false;
    char sub[44];
    az_pairwise_sub(in->client, in->resident, sub);
    struct az_issue o = {.scope = in->scope,
                         .aud = in->resource ? in->resource : core_cfg.issuer,
                         .sub = sub,
                         .grant = in->grant};
    out->access = az_token_issue_for(in->client, &o, &out->expires_in, out->jti, &out->exp);
    if (!out->access) {
        *no_key = true;
        return false;
    }
    if (in->with_id_token) {
        struct az_id_claims k = {.sub = sub,
                                 .nonce = in->nonce,
                                 .auth_time = in->auth_time,
                                 .acr = in->acr,
                                 .amr = in->amr,
                                 .sid = in->sid,
                                 .access_token = out->access};
        out->id_token = az_id_token(in->client, &k);
        if (!out->id_token) {
            *no_key = true;
            return false;
        }
    }
    if (in->family) {
        xsnprintf(out->family, sizeof out->family, "%s", in->family);
    } else {
        unsigned char raw[18];
        core_random(raw, sizeof raw);
        char *f = core_b64url_encode(raw, sizeof raw);
        xsnprintf(out->family, sizeof out->family, "f_%s", f);
        free(f);
    }
    if (!in->with_refresh)
        return true;
    out->refresh = random_token();
    unsigned char h[32];
    hash_token(out->refresh, h);
    char at[24], ttl[16], exp[24];
    snprintf(at, sizeof at, "%lld", in->auth_time);
    snprintf(ttl, sizeof ttl, "%d", AZ_REFRESH_TTL_S);
    snprintf(exp, sizeof exp, "%lld", out->exp);
    const char *v[] = {(const char *)h,
                       out->family,
                       in->grant,
                       in->client->id,
                       in->resident,
                       in->sid,
                       in->refresh_scope ? in->refresh_scope : in->scope,
                       in->resource,
                       at,
                       ttl,
                       out->jti,
                       exp};
    int len[12] = {32}, fmt[12] = {1};
    PGresult *r = core_db_execp(c, &az_refresh_insert_stmt, 12, v, len, fmt, 0);
    if (!r)
        return false;
    PQclear(r);
    return true;
}

static void reply_issued(struct core_req *req, const struct issued *t, const char *scope)
{
    json_t *body = json_pack("{s:s, s:s, s:i, s:s}", "access_token", t->access, "token_type",
                             "Bearer", "expires_in", t->expires_in, "scope", scope);
    if (t->id_token)
        json_object_set_new(body, "id_token", json_string(t->id_token));
    if (t->refresh)
        json_object_set_new(body, "refresh_token", json_string(t->refresh));
    core_reply_header(req, "Pragma", "no-cache");
    core_reply_json(req, 200, body);
}

static void reply_unavailable(struct core_req *req, bool no_key)
{
    core_reply_header(req, "Retry-After", "5");
    core_reply_oauth_error(req, 503, "temporarily_unavailable",
                           no_key ? "no signing key is loaded" : "the database is not available");
}

/* ---- authorization_code ---- */

static struct core_stmt az_code_take_stmt = CORE_STMT(
    "az_code_take",
    "SELECT client_id, grant_id, resident_id, sid, redirect_uri, scope, nonce, code_challenge, "
    "resource, floor(extract(epoch FROM auth_time))::bigint, array_to_string(amr, ' '), acr, "
    "expires_at "
    "< now(), used_at IS NOT NULL, access_jti, extract(epoch FROM access_exp)::bigint, family_id "
    "FROM auth_codes WHERE code_hash = $1 FOR UPDATE");
static struct core_stmt az_code_used_stmt = CORE_STMT(
    "az_code_used", "UPDATE auth_codes SET used_at = now(), access_jti = $2, access_exp = "
                    "to_timestamp($3), family_id = $4 WHERE code_hash = $1");

enum outcome { OUT_OK, OUT_ERROR, OUT_REPLAY };

struct code_redeem {
    const struct az_client *client;
    json_t *done; /* jtis revoked */
    const char *code, *redirect_uri, *verifier;
    unsigned char hash[32];
    enum outcome out;
    const char *error, *why;
    struct issued t;
    bool no_key;
    char scope[AZ_SCOPE_MAX + 1];
};

static bool pkce_ok(const char *verifier, const char *challenge)
{
    size_t n = strlen(verifier);
    if (n < 43 || n > 128 ||
        strspn(verifier, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") != n)
        return false;
    unsigned char h[32];
    core_sha256(verifier, n, h);
    char *want = core_b64url_encode(h, sizeof h);
    bool ok =
        strlen(challenge) == strlen(want) && CRYPTO_memcmp(want, challenge, strlen(want)) == 0;
    free(want);
    return ok;
}

static enum core_db_rc redeem_tx(struct core_db_conn *c, void *p)
{
    struct code_redeem *a = p;
    issued_release(&a->t); /* a retried transaction starts over */
    memset(&a->t, 0, sizeof a->t);
    json_array_clear(a->done);
    a->out = OUT_ERROR;
    a->error = "invalid_grant";
    const char *v[] = {(const char *)a->hash};
    int len[] = {32}, fmt[] = {1};
    PGresult *r = core_db_execp(c, &az_code_take_stmt, 1, v, len, fmt, 0);
    if (!r)
        return CORE_DB_ERROR;
    if (PQntuples(r) != 1) {
        PQclear(r);
        a->why = "the code is not one this server issued";
        return CORE_DB_ROLLBACK;
    }
#define COL(i) PQgetvalue(r, 0, i)
    if (strcmp(COL(0), a->client->id) != 0) {
        PQclear(r);
        a->why = "the code was issued to another client";
        return CORE_DB_ROLLBACK;
    }
    if (COL(13)[0] == 't') {
        /* RFC 6749 §4.1.2 / RFC 9700 §4.5: a replayed code revokes what it issued */
        bool ok = revoke_jti(c, PQgetisnull(r, 0, 14) ? NULL : COL(14), a->client->id,
                             a->client->tenant, COL(15), a->done) &&
                  (PQgetisnull(r, 0, 16) || family_revoke(c, COL(16), a->client->tenant, a->done));
        PQclear(r);
        a->out = OUT_REPLAY;
        a->why = "the code was used before: the tokens it gave are revoked";
        return ok ? CORE_DB_OK : CORE_DB_ERROR;
    }
    if (COL(12)[0] == 't') {
        PQclear(r);
        a->why = "the code has expired";
        return CORE_DB_ROLLBACK;
    }
    if (!a->redirect_uri || strcmp(a->redirect_uri, COL(4)) != 0) {
        PQclear(r);
        a->why = "redirect_uri differs from the authorization request's";
        return CORE_DB_ROLLBACK;
    }
    if (!a->verifier || !pkce_ok(a->verifier, COL(7))) {
        PQclear(r);
        a->why = "code_verifier does not match the code_challenge (PKCE S256)";
        return CORE_DB_ROLLBACK;
    }
    PGresult *g = grant_scopes(c, COL(1));
    if (!g) {
        PQclear(r);
        return CORE_DB_ERROR;
    }
    bool live = PQntuples(g) == 1;
    char *scope = live ? az_scope_meet(COL(5), PQgetvalue(g, 0, 0)) : xstrdup("");
    PQclear(g);
    if (!scope[0]) {
        free(scope);
        PQclear(r);
        a->why = live ? "the consent behind the code no longer covers it"
                      : "the consent behind the code was revoked";
        return CORE_DB_ROLLBACK;
    }
    xsnprintf(a->scope, sizeof a->scope, "%s", scope);
    long at = 0;
    core_parse_long(COL(9), 0, 1L << 40, &at);
    struct issue_in in = {.client = a->client,
                          .grant = COL(1),
                          .resident = COL(2),
                          .sid = COL(3),
                          .scope = scope,
                          .resource = PQgetisnull(r, 0, 8) ? NULL : COL(8),
                          .nonce = PQgetisnull(r, 0, 6) ? NULL : COL(6),
                          .amr = COL(10),
                          .acr = COL(11),
                          .auth_time = at,
                          .with_id_token = az_scope_in(scope, "openid", 6),
                          .with_refresh = az_client_has_grant(a->client, "refresh_token")};
    bool ok = issue(c, &in, &a->t, &a->no_key);
    free(scope);
    PQclear(r);
#undef COL
    if (!ok)
        return a->no_key ? CORE_DB_ROLLBACK : CORE_DB_ERROR;
    char exp[24];
    snprintf(exp, sizeof exp, "%lld", a->t.exp);
    const char *uv[] = {(const char *)a->hash, a->t.jti, exp, a->t.family};
    int ulen[] = {32, 0, 0, 0}, ufmt[] = {1, 0, 0, 0};
    PGresult *u = core_db_execp(c, &az_code_used_stmt, 4, uv, ulen, ufmt, 0);
    if (!u)
        return CORE_DB_ERROR;
    PQclear(u);
    a->out = OUT_OK;
    return CORE_DB_OK;
}

void az_token_authorization_code(struct core_req *req, const struct az_client *c,
                                 const struct az_form *f)
{
    struct code_redeem a = {.client = c,
                            .code = az_form_get(f, "code"),
                            .redirect_uri = az_form_get(f, "redirect_uri"),
                            .verifier = az_form_get(f, "code_verifier")};
    if (!a.code || !*a.code) {
        core_reply_oauth_error(req, 400, "invalid_request", "code is missing");
        return;
    }
    if (strlen(a.code) > 128) {
        core_reply_oauth_error(req, 400, "invalid_grant", "the code is not one this server issued");
        return;
    }
    hash_token(a.code, a.hash);
    a.done = json_array();
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, redeem_tx, &a, NULL);
    if (rc == CORE_DB_OK)
        revoked_now(a.done);
    json_decref(a.done);
    if (rc == CORE_DB_ERROR || rc == CORE_DB_UNAVAILABLE || a.no_key) {
        issued_release(&a.t);
        reply_unavailable(req, a.no_key);
        return;
    }
    if (a.out != OUT_OK) {
        issued_release(&a.t);
        if (a.out == OUT_REPLAY)
            core_log_fields(
                CORE_LOG_WARN, "authorization code replayed",
                json_pack("{s:s, s:s}", "client_id", c->id, "peer", core_req_peer(req)));
        core_reply_oauth_error(req, 400, a.error, "%s", a.why);
        return;
    }
    reply_issued(req, &a.t, a.scope);
    issued_release(&a.t);
}

/* ---- refresh_token ---- */

static struct core_stmt az_refresh_take_stmt = CORE_STMT(
    "az_refresh_take",
    "SELECT family_id, grant_id, client_id, resident_id, sid, scope, resource, extract(epoch FROM "
    "auth_time)::bigint, expires_at < now(), rotated_at IS NOT NULL, revoked_at IS NOT NULL FROM "
    "refresh_tokens WHERE token_hash = $1 FOR UPDATE");
static struct core_stmt az_refresh_rotate_stmt = CORE_STMT(
    "az_refresh_rotate", "UPDATE refresh_tokens SET rotated_at = now() WHERE token_hash = $1");
static struct core_stmt az_session_amr_stmt = CORE_STMT(
    "az_session_amr", "SELECT array_to_string(amr, ' '), acr FROM sessions WHERE sid = $1");

struct refresh_arg {
    const struct az_client *client;
    json_t *done; /* jtis revoked */
    const char *requested;
    unsigned char hash[32];
    enum outcome out;
    const char *error, *why;
    struct issued t;
    bool no_key;
    char scope[AZ_SCOPE_MAX + 1];
};

static enum core_db_rc refresh_tx(struct core_db_conn *c, void *p)
{
    struct refresh_arg *a = p;
    issued_release(&a->t); /* a retried transaction starts over */
    memset(&a->t, 0, sizeof a->t);
    json_array_clear(a->done);
    a->out = OUT_ERROR;
    a->error = "invalid_grant";
    const char *v[] = {(const char *)a->hash};
    int len[] = {32}, fmt[] = {1};
    PGresult *r = core_db_execp(c, &az_refresh_take_stmt, 1, v, len, fmt, 0);
    if (!r)
        return CORE_DB_ERROR;
#define COL(i) PQgetvalue(r, 0, i)
    if (PQntuples(r) != 1 || strcmp(COL(2), a->client->id) != 0) {
        PQclear(r);
        a->why = "the refresh token is not one this server issued to this client";
        return CORE_DB_ROLLBACK;
    }
    if (COL(10)[0] == 't') {
        PQclear(r);
        a->why = "the refresh token was revoked";
        return CORE_DB_ROLLBACK;
    }
    if (COL(9)[0] == 't') {
        /* RFC 9700 §4.14.2: a rotated token presented again means it leaked */
        bool ok = family_revoke(c, COL(0), a->client->tenant, a->done);
        PQclear(r);
        a->out = OUT_REPLAY;
        a->why = "the refresh token was used before: every token of its family is revoked";
        return ok ? CORE_DB_OK : CORE_DB_ERROR;
    }
    if (COL(8)[0] == 't') {
        PQclear(r);
        a->why = "the refresh token has expired";
        return CORE_DB_ROLLBACK;
    }
    if (a->requested && !az_scope_within(a->requested, COL(5))) {
        PQclear(r);
        a->error = "invalid_scope";
        a->why = "the requested scope exceeds the one originally granted";
        return CORE_DB_ROLLBACK;
    }
    PGresult *g = grant_scopes(c, COL(1));
    if (!g) {
        PQclear(r);
        return CORE_DB_ERROR;
    }
    bool live = PQntuples(g) == 1;
    char *scope = live ? az_scope_meet(a->requested ? a->requested : COL(5), PQgetvalue(g, 0, 0))
                       : xstrdup("");
    PQclear(g);
    if (!scope[0]) {
        free(scope);
        PQclear(r);
        a->why = live ? "the resident's consent no longer covers this token"
                      : "the resident revoked the consent, or the account is disabled";
        return CORE_DB_ROLLBACK;
    }
    xsnprintf(a->scope, sizeof a->scope, "%s", scope);
    char amr[32] = "pwd", acr[16] = "1";
    const char *sv[] = {COL(4)};
    PGresult *s = core_db_exec(c, &az_session_amr_stmt, 1, sv);
    if (!s) {
        free(scope);
        PQclear(r);
        return CORE_DB_ERROR;
    }
    if (PQntuples(s) == 1) {
        xsnprintf(amr, sizeof amr, "%s", PQgetvalue(s, 0, 0));
        xsnprintf(acr, sizeof acr, "%s", PQgetvalue(s, 0, 1));
    }
    PQclear(s);
    PGresult *u = core_db_execp(c, &az_refresh_rotate_stmt, 1, v, len, fmt, 0);
    if (!u) {
        free(scope);
        PQclear(r);
        return CORE_DB_ERROR;
    }
    PQclear(u);
    long at = 0;
    core_parse_long(COL(7), 0, 1L << 40, &at);
    /* the new refresh token keeps the original scope (RFC 6749 §6) */
    struct issue_in in = {.client = a->client,
                          .grant = COL(1),
                          .resident = COL(3),
                          .sid = COL(4),
                          .scope = scope,
                          .resource = PQgetisnull(r, 0, 6) ? NULL : COL(6),
                          .amr = amr,
                          .acr = acr,
                          .auth_time = at,
                          .with_id_token = az_scope_in(scope, "openid", 6),
                          .with_refresh = true,
                          .family = COL(0),
                          .refresh_scope = COL(5)};
    bool ok = issue(c, &in, &a->t, &a->no_key);
    free(scope);
    PQclear(r);
#undef COL
    if (!ok)
        return a->no_key ? CORE_DB_ROLLBACK : CORE_DB_ERROR;
    a->out = OUT_OK;
    return CORE_DB_OK;
}

void az_token_refresh(struct core_req *req, const struct az_client *c, const struct az_form *f)
{
    const char *token = az_form_get(f, "refresh_token");
    if (!token || !*token) {
        core_reply_oauth_error(req, 400, "invalid_request", "refresh_token is missing");
        return;
    }
    const char *scope = az_form_get(f, "scope");
    if (scope && strlen(scope) > AZ_SCOPE_MAX) {
        core_reply_oauth_error(req, 400, "invalid_scope", "the scope is too long");
        return;
    }
    struct refresh_arg a = {
        .client = c, .done = json_array(), .requested = scope && *scope ? scope : NULL};
    hash_token(token, a.hash);
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, refresh_tx, &a, NULL);
    if (rc == CORE_DB_OK)
        revoked_now(a.done);
    json_decref(a.done);
    if (rc == CORE_DB_ERROR || rc == CORE_DB_UNAVAILABLE || a.no_key) {
        issued_release(&a.t);
        reply_unavailable(req, a.no_key);
        return;
    }
    if (a.out != OUT_OK) {
        issued_release(&a.t);
        if (a.out == OUT_REPLAY)
            core_log_fields(
                CORE_LOG_WARN, "refresh token reused",
                json_pack("{s:s, s:s}", "client_id", c->id, "peer", core_req_peer(req)));
        core_reply_oauth_error(req, 400, a.error, "%s", a.why);
        return;
    }
    reply_issued(req, &a.t, a.scope);
    issued_release(&a.t);
}

/* ---- revocation and introspection of refresh tokens ---- */

static struct core_stmt az_refresh_owner_stmt = CORE_STMT(
    "az_refresh_owner",
    "SELECT family_id, client_id, scope, extract(epoch FROM expires_at)::bigint, "
    "extract(epoch FROM created_at)::bigint, revoked_at IS NULL AND rotated_at IS NULL AND "
    "expires_at > now() FROM refresh_tokens WHERE token_hash = $1");

struct owner_arg {
    unsigned char hash[32];
    const char *client, *tenant;
    json_t *done;
    bool revoke;
    int found; /* 1: the client's */
    json_t *info;
};

static enum core_db_rc owner_tx(struct core_db_conn *c, void *p)
{
    struct owner_arg *a = p;
    json_array_clear(a->done);
    const char *v[] = {(const char *)a->hash};
    int len[] = {32}, fmt[] = {1};
    PGresult *r = core_db_execp(c, &az_refresh_owner_stmt, 1, v, len, fmt, 0);
    if (!r)
        return CORE_DB_ERROR;
    a->found = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 1), a->client) == 0;
    if (!a->found) {
        PQclear(r);
        return CORE_DB_OK;
    }
    if (!a->revoke) {
        if (PQgetvalue(r, 0, 5)[0] == 't') {
            long exp = 0, iat = 0;
            core_parse_long(PQgetvalue(r, 0, 3), 0, 1L << 40, &exp);
            core_parse_long(PQgetvalue(r, 0, 4), 0, 1L << 40, &iat);
            a->info = json_pack("{s:b, s:s, s:s, s:s, s:I, s:I, s:s}", "active", 1, "scope",
                                PQgetvalue(r, 0, 2), "client_id", a->client, "token_type",
                                "refresh_token", "exp", (json_int_t)exp, "iat", (json_int_t)iat,
                                "iss", core_cfg.issuer);
        }
        PQclear(r);
        return CORE_DB_OK;
    }
    char family[65];
    xsnprintf(family, sizeof family, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return family_revoke(c, family, a->tenant, a->done) ? CORE_DB_OK : CORE_DB_ERROR;
}

int az_refresh_revoke(const char *token, const struct az_client *c)
{
    struct owner_arg a = {
        .client = c->id, .tenant = c->tenant, .revoke = true, .done = json_array()};
    hash_token(token, a.hash);
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, owner_tx, &a, NULL);
    if (rc == CORE_DB_OK)
        revoked_now(a.done);
    json_decref(a.done);
    return rc == CORE_DB_OK ? a.found : -1;
}

json_t *az_refresh_introspect(const char *token, const struct az_client *c)
{
    struct owner_arg a = {
        .client = c->id, .tenant = c->tenant, .revoke = false, .done = json_array()};
    hash_token(token, a.hash);
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, owner_tx, &a, NULL);
    json_decref(a.done);
    return rc == CORE_DB_OK ? a.info : NULL;
}

/* ---- token exchange (RFC 8693) ---- */

struct exchange_arg {
    const char *grant;
    char consented[AZ_SCOPE_MAX + 1];
    bool live;
};

static enum core_db_rc exchange_tx(struct core_db_conn *c, void *p)
{
    struct exchange_arg *a = p;
    PGresult *g = grant_scopes(c, a->grant);
    if (!g)
        return CORE_DB_ERROR;
    a->live = PQntuples(g) == 1;
    if (a->live)
        xsnprintf(a->consented, sizeof a->consented, "%s", PQgetvalue(g, 0, 0));
    PQclear(g);
    return CORE_DB_OK;
}

void az_token_exchange(struct core_req *req, const struct az_client *c, const struct az_form *f)
{
    const char *subject = az_form_get(f, "subject_token");
    const char *stype = az_form_get(f, "subject_token_type");
    const char *rtype = az_form_get(f, "requested_token_type");
    const char *resource = az_form_get(f, "resource");
    const char *audience = az_form_get(f, "audience");
    const char *scope = az_form_get(f, "scope");
    if (!subject || !stype) {
        core_reply_oauth_error(req, 400, "invalid_request",
                               "subject_token and subject_token_type are required");
        return;
    }
    if (strcmp(stype, TOKEN_TYPE_ACCESS) != 0) {
        core_reply_oauth_error(req, 400, "invalid_request",
                               "subject_token_type must be " TOKEN_TYPE_ACCESS);
        return;
    }
    if (rtype && strcmp(rtype, TOKEN_TYPE_ACCESS) != 0) {
        core_reply_oauth_error(req, 400, "invalid_request",
                               "requested_token_type: this server issues access tokens only");
        return;
    }
    if (az_form_get(f, "actor_token") || az_form_get(f, "actor_token_type")) {
        core_reply_oauth_error(req, 400, "invalid_request",
                               "actor_token is not supported: the authenticated client is the "
                               "actor");
        return;
    }
    const char *target = resource ? resource : audience;
    if (!target || (resource && audience && strcmp(resource, audience) != 0)) {
        core_reply_oauth_error(req, 400, "invalid_target",
                               "name the other town's resource in resource (or audience)");
        return;
    }
    struct core_url u;
    if (core_url_check(target, 0, &u) || !az_client_audience_ok(c, target)) {
        core_reply_oauth_error(req, 400, "invalid_target",
                               "this client may not request tokens for that resource");
        return;
    }
    struct az_claims cl;
    const char *why;
    enum az_verify_rc vrc = az_token_verify(subject, false, &cl, &why);
    if (vrc == AZ_TOKEN_UNAVAILABLE) {
        reply_unavailable(req, false);
        return;
    }
    if (vrc != AZ_TOKEN_OK) {
        core_reply_oauth_error(req, 400, "invalid_grant", "subject_token: %s", why);
        return;
    }
    if (!cl.resident[0]) {
        core_reply_oauth_error(req, 400, "invalid_grant",
                               "subject_token is not a resident's token");
        return;
    }
    if (cl.exchanged) {
        /* an exchanged token is not exchanged again: a chain of them would
         * keep a resident's access alive without their app (RFC 9700 §4.14) */
        core_reply_oauth_error(req, 400, "invalid_grant",
                               "subject_token came from a token exchange itself");
        return;
    }
    if (strcmp(cl.client_id, c->id) != 0 && strcmp(cl.aud, c->id) != 0) {
        core_reply_oauth_error(req, 400, "invalid_grant",
                               "subject_token was not issued to this client or for it");
        return;
    }
    if (scope && (strlen(scope) > AZ_SCOPE_MAX || !az_scope_within(scope, cl.scope))) {
        core_reply_oauth_error(req, 400, "invalid_scope",
                               "the requested scope exceeds the subject token's");
        return;
    }
    struct exchange_arg x = {.grant = cl.grant};
    if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, exchange_tx, &x, NULL) != CORE_DB_OK) {
        reply_unavailable(req, false);
        return;
    }
    char *granted = x.live ? az_scope_meet(scope ? scope : cl.scope, x.consented) : xstrdup("");
    if (!granted[0] || (scope && !az_scope_within(scope, granted))) {
        free(granted);
        core_reply_oauth_error(req, 400, "invalid_scope",
                               "the resident's consent does not cover the requested scope");
        return;
    }
    core_pool_cleanup(req->pool, free, granted);
    char sub[44];
    /* the resource's own sector, which no client's redirect host can name */
    az_pairwise_sub_sector(core_psprintf(req->pool, "resource:%s", target), cl.resident, sub);
    json_t *act = json_pack("{s:s, s:s}", "sub", c->id, "client_id", c->id);
    struct az_issue o = {
        .scope = granted, .aud = target, .sub = sub, .grant = cl.grant, .act = act};
    int expires_in = 0;
    char jti[65];
    long long exp = 0;
    char *token = az_token_issue_for(c, &o, &expires_in, jti, &exp);
    json_decref(act);
    if (!token) {
        reply_unavailable(req, true);
        return;
    }
    /* every exchange is in the audit log before the token leaves */
    char ref[44];
    au_resident_ref(cl.resident, ref);
    struct au_entry e = {
        .kind = "token.exchange",
        .tenant = c->tenant,
        .actor = core_psprintf(req->pool, "client:%s", c->id),
        .consumer_tenant = c->tenant,
        .consumer_client = c->id,
        .resident = ref,
        .detail =
            json_pack("{s:s, s:s, s:s, s:s, s:s}", "subject_client", cl.client_id, "subject_tenant",
                      cl.tenant, "resource", target, "scope", granted, "jti", jti),
    };
    bool ok = au_append(&e, NULL);
    json_decref(e.detail);
    if (!ok) {
        free(token);
        core_reply_header(req, "Retry-After", "5");
        core_reply_oauth_error(req, 503, "temporarily_unavailable",
                               "the exchange cannot be recorded in the audit log right now");
        return;
    }
    core_reply_header(req, "Pragma", "no-cache");
    core_reply_json(req, 200,
                    json_pack("{s:s, s:s, s:s, s:i, s:s}", "access_token", token,
                              "issued_token_type", TOKEN_TYPE_ACCESS, "token_type", "Bearer",
                              "expires_in", expires_in, "scope", granted));
    free(token);
}
