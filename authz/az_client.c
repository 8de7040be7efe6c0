/* Clients in PostgreSQL, their secrets as HMACs, and the cache for the token
 * endpoint. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <openssl/crypto.h>

#include "audit/au.h"
#include "authz/az_client.h"
#include "authz/az_flow.h"
#include "core/crypto.h"
#include "core/db.h"
#include "core/db_listen.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "core/url.h"
#include "tenants/tn.h"

const char *const az_known_scopes[] = {
    "openid",       "profile",
    "email",        "offline_access", /* residents' apps (OpenID Connect) */
    "account.read",                   /* a resident's own access history, for an app they allow */
    "admin", /* the platform's own operators (clients of a top-level tenant only) */
    "tenant.admin", "ngsi.read",
    "ngsi.write",   "audit.read",
    "introspect", /* resource servers that introspect other clients' tokens */
    NULL,
};

bool az_scope_known(const char *scope)
{
    /* a personal-data agreement's consent scope (az_scope_for_residents) */
    if (strncmp(scope, "exchange.", 9) == 0)
        return az_scope_for_residents(scope, strlen(scope));
    for (const char *const *s = az_known_scopes; *s; s++) {
        if (strcmp(*s, scope) == 0)
            return true;
    }
    return false;
}

bool az_scope_token_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e)
            return false;
    }
    return n > 0;
}

bool az_scope_in(const char *list, const char *s, size_t n)
{
    for (const char *p = list; p && *p;) {
        while (*p == ' ')
            p++;
        size_t len = strcspn(p, " ");
        if (len == n && n && strncmp(p, s, n) == 0)
            return true;
        p += len;
    }
    return false;
}

char *az_scope_meet(const char *a, const char *b)
{
    struct strbuf out;
    strbuf_init(&out, AZ_SCOPE_MAX + 1);
    strbuf_adds(&out, "");
    for (const char *s = a; *s;) {
        while (*s == ' ')
            s++;
        size_t n = strcspn(s, " ");
        if (n && az_scope_in(b, s, n) && !az_scope_in(out.buf, s, n)) {
            if (out.len)
                strbuf_add(&out, " ", 1);
            strbuf_add(&out, s, n);
        }
        s += n;
    }
    return strbuf_detach(&out, NULL);
}

bool az_scope_within(const char *a, const char *b)
{
    for (const char *s = a; *s;) {
        while (*s == ' ')
            s++;
        size_t n = strcspn(s, " ");
        if (n && !az_scope_in(b, s, n))
            return false;
        s += n;
    }
    return true;
}

static const char *const method_names[] = {"client_secret_basic", "client_secret_post",
                                           "private_key_jwt", "none"};

const char *az_auth_method_name(enum az_auth_method m)
{
    return (unsigned)m < ARRAY_SIZE(method_names) ? method_names[m] : "none";
}

bool az_auth_method_parse(const char *s, enum az_auth_method *out)
{
    for (size_t i = 0; s && i < ARRAY_SIZE(method_names); i++) {
        if (strcmp(s, method_names[i]) == 0) {
            *out = (enum az_auth_method)i;
            return true;
        }
    }
    return false;
}

void az_client_release(struct az_client *c)
{
    free(c->name);
    json_decref(c->jwks);
    json_decref(c->grant_types);
    json_decref(c->post_logout_redirect_uris);
    json_decref(c->redirect_uris);
    json_decref(c->scopes);
    json_decref(c->default_scopes);
    json_decref(c->audiences);
    OPENSSL_cleanse(c->secret_hmac, sizeof c->secret_hmac);
    memset(c, 0, sizeof *c);
}

static bool array_has(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
            return true;
    }
    return false;
}

bool az_client_allows(const struct az_client *c, const char *scope, size_t n)
{
    size_t i;
    json_t *v;
    json_array_foreach(c->scopes, i, v)
    {
        const char *s = json_string_value(v);
        if (strlen(s) == n && strncmp(s, scope, n) == 0)
            return true;
    }
    return false;
}

bool az_client_audience_ok(const struct az_client *c, const char *resource)
{
    size_t i;
    json_t *v;
    json_array_foreach(c->audiences, i, v)
    {
        if (strcmp(json_string_value(v), resource) == 0)
            return true;
    }
    return false;
}

bool az_client_has_grant(const struct az_client *c, const char *grant)
{
    return array_has(c->grant_types, grant);
}

json_t *az_client_json(const struct az_client *c)
{
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:s, s:b, s:O, s:O, s:O, s:O, s:O, s:s, s:i, s:s, s:s, s:s, s:i}",
        "client_id", c->id, "tenant", c->tenant, "name", c->name, "token_endpoint_auth_method",
        az_auth_method_name(c->auth), "confidential", c->auth != AZ_AUTH_NONE, "grant_types",
        c->grant_types, "scopes", c->scopes, "default_scopes", c->default_scopes, "redirect_uris",
        c->redirect_uris, "audiences", c->audiences, "token_alg", core_alg_name(c->token_alg),
        "token_ttl", c->token_ttl, "state", c->disabled ? "disabled" : "active", "created_at",
        c->created_at, "updated_at", c->updated_at, "version", c->version);
    if (j && c->jwks)
        json_object_set(j, "jwks", c->jwks);
    if (j && c->sector[0])
        json_object_set_new(j, "sector_identifier", json_string(c->sector));
    if (j && json_array_size(c->post_logout_redirect_uris))
        json_object_set(j, "post_logout_redirect_uris", c->post_logout_redirect_uris);
    return j;
}

/* ---- secrets ---- */

/* The HMAC keys of the three kinds of stored secret, derived from the master
 * secret once: checking a client secret is on every token request, and takes
 * no lock. */
static const char *const hmac_labels[] = {AZ_SECRET_LABEL, AZ_REGTOKEN_LABEL, AZ_IAT_LABEL};
static unsigned char hmac_keys[ARRAY_SIZE(hmac_labels)][32];
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void derive_hmac_keys(void)
{
    for (size_t i = 0; i < ARRAY_SIZE(hmac_labels); i++)
        core_secret_derive(hmac_labels[i], hmac_keys[i], 32);
}

static const unsigned char *label_key(const char *label)
{
    pthread_once(&hmac_once, derive_hmac_keys);
    for (size_t i = 0; i < ARRAY_SIZE(hmac_labels); i++) {
        if (strcmp(hmac_labels[i], label) == 0)
            return hmac_keys[i];
    }
    core_log_bug("no HMAC key for %s", label);
    abort();
}

void az_secret_hmac(const char *label, const char *secret, size_t len, unsigned char out[32])
{
    core_hmac_sha256(label_key(label), secret, len, out);
}

bool az_secret_matches(const struct az_client *c, const char *secret, size_t len)
{
    if (!c->has_secret)
        return false;
    unsigned char mac[32];
    az_secret_hmac(AZ_SECRET_LABEL, secret, len, mac);
    return CRYPTO_memcmp(mac, c->secret_hmac, 32) == 0;
}

/* 32 random bytes as base64url: 43 characters of 256 bits. */
static void new_secret(char out[64])
{
    unsigned char raw[32];
    core_random(raw, sizeof raw);
    char *s = core_b64url_encode(raw, sizeof raw);
    xsnprintf(out, 64, "%s", s);
    OPENSSL_cleanse(raw, sizeof raw);
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

static void new_client_id(char out[65])
{
    unsigned char raw[16];
    core_random(raw, sizeof raw);
    char *s = core_b64url_encode(raw, sizeof raw);
    xsnprintf(out, 65, "c_%s", s);
    free(s);
}

/* ---- validation ---- */

static const char *const supported_grants[] = {"client_credentials", "authorization_code",
                                               "refresh_token", AZ_GRANT_TOKEN_EXCHANGE, NULL};

static bool string_array(json_t *a, size_t max, size_t max_len)
{
    if (!json_is_array(a) || json_array_size(a) > max)
        return false;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max_len)
            return false;
        for (size_t k = 0; k < i; k++) {
            if (json_equal(json_array_get(a, k), v))
                return false; /* duplicates */
        }
    }
    return true;
}

const char *az_client_spec_check(const struct az_client_spec *s)
{
    static _Thread_local char msg[200];
    const char *why;
    if ((why = tn_check_name(s->name)))
        return why;
    if (!s->tenant || !core_tenant_id_ok(s->tenant))
        return "tenant is not a tenant id";
    if (s->grant_types) {
        if (!string_array(s->grant_types, 8, 64) || json_array_size(s->grant_types) == 0)
            return "grant_types must be a non-empty array of distinct strings";
        size_t i;
        json_t *v;
        json_array_foreach(s->grant_types, i, v)
        {
            bool ok = false;
            for (const char *const *g = supported_grants; *g && !ok; g++)
                ok = strcmp(*g, json_string_value(v)) == 0;
            if (!ok) {
                snprintf(msg, sizeof msg,
                         "grant type %s is not supported (supported: "
                         "client_credentials, authorization_code, "
                         "refresh_token, " AZ_GRANT_TOKEN_EXCHANGE ")",
                         json_string_value(v));
                return msg;
            }
        }
    }
    json_t *grants = s->grant_types;
    bool cc = !grants || array_has(grants, "client_credentials");
    bool code = grants && array_has(grants, "authorization_code");
    if (s->auth == AZ_AUTH_NONE && (cc || (grants && array_has(grants, AZ_GRANT_TOKEN_EXCHANGE))))
        return "a client with the client_credentials or token-exchange grant must authenticate "
               "(no public clients for it)";
    if (s->auth == AZ_AUTH_NONE && !code)
        return "a public client is only for the authorization_code grant";
    if (s->auth == AZ_AUTH_NONE && s->scopes) {
        /* anyone can run a public client's flow: it gets only what a
         * resident's consent can give */
        size_t i;
        json_t *v;
        json_array_foreach(s->scopes, i, v)
        {
            const char *sc = json_string_value(v);
            if (sc && !az_scope_for_residents(sc, strlen(sc))) {
                snprintf(msg, sizeof msg, "scope %s is not for a public client", sc);
                return msg;
            }
        }
    }
    if (code && json_array_size(s->redirect_uris) == 0)
        return "a client with the authorization_code grant needs at least one redirect URI";
    if (grants && array_has(grants, "refresh_token") && !code)
        return "the refresh_token grant goes with authorization_code";
    if (s->sector_identifier) {
        size_t n = strlen(s->sector_identifier);
        if (n == 0 || n > 253 ||
            strspn(s->sector_identifier, "abcdefghijklmnopqrstuvwxyz0123456789.:-") != n)
            return "sector_identifier must be a lower-case host name";
    }
    if (s->scopes) {
        if (!string_array(s->scopes, 50, 64))
            return "scopes must be an array of distinct strings";
        size_t i;
        json_t *v;
        json_array_foreach(s->scopes, i, v)
        {
            if (!az_scope_known(json_string_value(v))) {
                snprintf(msg, sizeof msg, "scope %s is not one the hub knows",
                         json_string_value(v));
                return msg;
            }
        }
    }
    if (s->default_scopes) {
        if (!string_array(s->default_scopes, 50, 64))
            return "default_scopes must be an array of distinct strings";
        size_t i;
        json_t *v;
        json_array_foreach(s->default_scopes, i, v)
        {
            if (!s->scopes || !array_has(s->scopes, json_string_value(v)))
                return "default_scopes must be among the client's scopes";
        }
    }
    json_t *uri_lists[] = {s->redirect_uris, s->audiences, s->post_logout_redirect_uris};
    static const char *const list_names[] = {"redirect URI", "audience",
                                             "post-logout redirect URI"};
    for (size_t k = 0; k < 3; k++) {
        if (!uri_lists[k])
            continue;
        if (!string_array(uri_lists[k], 20, CORE_URL_MAX)) {
            snprintf(msg, sizeof msg, "the %ss must be an array of distinct URLs", list_names[k]);
            return msg;
        }
        size_t i;
        json_t *v;
        json_array_foreach(uri_lists[k], i, v)
        {
            struct core_url u;
            unsigned flags = CORE_URL_HTTPS_UNLESS_LOOPBACK | (k == 1 ? 0 : CORE_URL_NO_QUERY);
            const char *w = core_url_check(json_string_value(v), flags, &u);
            if (w) {
                snprintf(msg, sizeof msg, "%s %s %s", list_names[k], json_string_value(v), w);
                return msg;
            }
        }
    }
    if (code && !s->sector_identifier) {
        /* pairwise subjects are per sector: without one registered, every
         * redirect URI must share one host (OIDC Core 8.1) */
        struct core_url first, u;
        size_t i;
        json_t *v;
        json_array_foreach(s->redirect_uris, i, v)
        {
            core_url_check(json_string_value(v), CORE_URL_HTTPS_UNLESS_LOOPBACK, i ? &u : &first);
            if (i && strcmp(u.host, first.host) != 0)
                return "redirect URIs on more than one host need a sector_identifier";
        }
    }
    if (s->auth == AZ_AUTH_JWT) {
        json_t *keys = json_object_get(s->jwks, "keys");
        if (!json_is_array(keys) || json_array_size(keys) == 0 || json_array_size(keys) > 10)
            return "private_key_jwt needs jwks with 1 to 10 public keys";
        size_t i;
        json_t *k;
        json_array_foreach(keys, i, k)
        {
            const char *w;
            EVP_PKEY *p = core_jwk_import(k, &w);
            if (!p) {
                snprintf(msg, sizeof msg, "jwks key %zu: %s", i, w);
                return msg;
            }
            EVP_PKEY_free(p);
        }
    } else if (s->jwks) {
        return "jwks is only for private_key_jwt";
    }
    if (s->token_ttl && (s->token_ttl < 60 || s->token_ttl > 86400))
        return "token lifetime must be from 60 to 86400 seconds";
    return NULL;
}

/* ---- database ---- */

#define CLIENT_COLUMNS                                                                             \
    "id, tenant_id, name, auth_method, encode(secret_hmac, 'hex'), jwks::text, "                   \
    "array_to_json(grant_types)::text, array_to_json(redirect_uris)::text, "                       \
    "array_to_json(scopes)::text, array_to_json(default_scopes)::text, "                           \
    "array_to_json(audiences)::text, token_alg, token_ttl, state, "                                \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "                \
    "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), version, "       \
    "sector_identifier, array_to_json(post_logout_redirect_uris)::text "                           \
    "FROM clients "

static struct core_stmt az_client_read_stmt =
    CORE_STMT("az_client_read", "SELECT " CLIENT_COLUMNS "WHERE id = $1");
static struct core_stmt az_client_list_stmt = CORE_STMT(
    "az_client_list", "SELECT " CLIENT_COLUMNS "WHERE ($1::text IS NULL OR tenant_id = $1) AND "
                      "id > coalesce($2, '') ORDER BY id LIMIT $3");
static struct core_stmt az_client_tenant_stmt =
    CORE_STMT("az_client_tenant", "SELECT parent_id IS NULL FROM tenants WHERE id = $1");
static struct core_stmt az_client_insert_stmt = CORE_STMT(
    "az_client_insert",
    "INSERT INTO clients (id, tenant_id, name, auth_method, secret_hmac, secret_set_at, jwks, "
    "grant_types, redirect_uris, scopes, default_scopes, audiences, token_alg, token_ttl, "
    "registration_hmac, created_by, sector_identifier, post_logout_redirect_uris) VALUES ($1, $2, "
    "$3, $4, $5::bytea, CASE WHEN $5::bytea IS NULL "
    "THEN NULL "
    "ELSE now() END, $6::jsonb, ARRAY(SELECT jsonb_array_elements_text($7::jsonb)), "
    "ARRAY(SELECT jsonb_array_elements_text($8::jsonb)), "
    "ARRAY(SELECT jsonb_array_elements_text($9::jsonb)), "
    "ARRAY(SELECT jsonb_array_elements_text($10::jsonb)), "
    "ARRAY(SELECT jsonb_array_elements_text($11::jsonb)), $12, $13, $14, $15, $16, "
    "ARRAY(SELECT jsonb_array_elements_text($17::jsonb)))");
static struct core_stmt az_client_replace_stmt = CORE_STMT(
    "az_client_replace",
    "UPDATE clients SET name = $2, jwks = $3::jsonb, "
    "grant_types = ARRAY(SELECT jsonb_array_elements_text($4::jsonb)), "
    "redirect_uris = ARRAY(SELECT jsonb_array_elements_text($5::jsonb)), "
    "scopes = ARRAY(SELECT jsonb_array_elements_text($6::jsonb)), "
    "default_scopes = ARRAY(SELECT jsonb_array_elements_text($7::jsonb)), "
    "audiences = ARRAY(SELECT jsonb_array_elements_text($8::jsonb)), token_alg = $9, "
    "token_ttl = $10, sector_identifier = $11, post_logout_redirect_uris = "
    "ARRAY(SELECT jsonb_array_elements_text($12::jsonb)) WHERE id = $1 RETURNING tenant_id");
static struct core_stmt az_client_secret_stmt = CORE_STMT(
    "az_client_secret", "UPDATE clients SET secret_hmac = $2, secret_set_at = now() WHERE id = $1 "
                        "AND secret_hmac IS NOT NULL RETURNING tenant_id");
static struct core_stmt az_client_state_stmt =
    CORE_STMT("az_client_state", "UPDATE clients SET state = $2 WHERE id = $1 RETURNING tenant_id");
static struct core_stmt az_client_regtoken_stmt = CORE_STMT(
    "az_client_regtoken", "SELECT registration_hmac FROM clients WHERE id = $1 AND state = "
                          "'active' AND registration_hmac IS NOT NULL");
static struct core_stmt az_iat_insert_stmt = CORE_STMT(
    "az_iat_insert", "INSERT INTO initial_access_tokens (token_hmac, tenant_id, expires_at, "
                     "uses_left, created_by) VALUES ($1, $2, now() + make_interval(secs => $3), "
                     "$4, $5)");
static struct core_stmt az_iat_use_stmt = CORE_STMT(
    "az_iat_use", "UPDATE initial_access_tokens SET uses_left = uses_left - 1 WHERE token_hmac = "
                  "$1 AND uses_left > 0 AND expires_at > now() RETURNING tenant_id");

static json_t *json_col(PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    return json_loads(PQgetvalue(r, row, col), 0, NULL);
}

static void from_row(PGresult *r, int row, struct az_client *c)
{
    memset(c, 0, sizeof *c);
    xsnprintf(c->id, sizeof c->id, "%s", PQgetvalue(r, row, 0));
    xsnprintf(c->tenant, sizeof c->tenant, "%s", PQgetvalue(r, row, 1));
    c->name = xstrdup(PQgetvalue(r, row, 2));
    if (!az_auth_method_parse(PQgetvalue(r, row, 3), &c->auth))
        c->auth = AZ_AUTH_NONE;
    const char *hex = PQgetvalue(r, row, 4);
    if (!PQgetisnull(r, row, 4) && strlen(hex) == 64) {
        for (int i = 0; i < 32; i++) {
            unsigned v;
            char pair[3] = {hex[2 * i], hex[2 * i + 1], 0};
            v = (unsigned)strtoul(pair, NULL, 16);
            c->secret_hmac[i] = (unsigned char)v;
        }
        c->has_secret = true;
    }
    c->jwks = json_col(r, row, 5);
    c->grant_types = json_col(r, row, 6);
    c->redirect_uris = json_col(r, row, 7);
    c->scopes = json_col(r, row, 8);
    c->default_scopes = json_col(r, row, 9);
    c->audiences = json_col(r, row, 10);
    if (!core_alg_parse(PQgetvalue(r, row, 11), &c->token_alg))
        c->token_alg = CORE_ES256;
    long v = 600;
    core_parse_long(PQgetvalue(r, row, 12), 0, 86400, &v);
    c->token_ttl = (int)v;
    c->disabled = strcmp(PQgetvalue(r, row, 13), "disabled") == 0;
    xsnprintf(c->created_at, sizeof c->created_at, "%s", PQgetvalue(r, row, 14));
    xsnprintf(c->updated_at, sizeof c->updated_at, "%s", PQgetvalue(r, row, 15));
    core_parse_long(PQgetvalue(r, row, 16), 0, 1L << 30, &v);
    c->version = (int)v;
    if (!PQgetisnull(r, row, 17))
        xsnprintf(c->sector, sizeof c->sector, "%s", PQgetvalue(r, row, 17));
    c->post_logout_redirect_uris = json_col(r, row, 18);
    if (!c->post_logout_redirect_uris)
        c->post_logout_redirect_uris = json_array();
}

static enum az_rc finish(enum core_db_rc rc, const struct core_db_err *err, struct az_result *res)
{
    if (rc == CORE_DB_OK || rc == CORE_DB_ROLLBACK)
        return res->rc;
    if (rc == CORE_DB_UNAVAILABLE) {
        res->rc = AZ_UNAVAILABLE;
        xsnprintf(res->message, sizeof res->message, "the database is not available");
    } else if (strcmp(err->sqlstate, "23503") == 0 || strcmp(err->sqlstate, "23514") == 0) {
        res->rc = AZ_INVALID;
        xsnprintf(res->message, sizeof res->message, "refused by the database: %s", err->message);
    } else {
        res->rc = AZ_ERROR;
        xsnprintf(res->message, sizeof res->message, "database error");
    }
    return res->rc;
}

static char *dump_or(json_t *j, const char *dflt)
{
    return j ? json_dumps(j, JSON_COMPACT) : xstrdup(dflt);
}

struct create_arg {
    const struct az_client_spec *s;
    const char *actor;
    char *id;
    char *secret;
    char *reg;
    struct az_result *res;
};

static enum core_db_rc create_tx(struct core_db_conn *c, void *p)
{
    struct create_arg *a = p;
    const struct az_client_spec *s = a->s;
    a->res->rc = AZ_OK;
    const char *tv[] = {s->tenant};
    PGresult *r = core_db_exec(c, &az_client_tenant_stmt, 1, tv);
    if (!r)
        return CORE_DB_ERROR;
    bool exists = PQntuples(r) == 1;
    bool root = exists && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!exists) {
        a->res->rc = AZ_INVALID;
        xsnprintf(a->res->message, sizeof a->res->message, "tenant %s does not exist", s->tenant);
        return CORE_DB_ROLLBACK;
    }
    if (!root && s->scopes && array_has(s->scopes, "admin")) {
        a->res->rc = AZ_INVALID;
        xsnprintf(a->res->message, sizeof a->res->message,
                  "scope admin is only for clients of a top-level tenant (the platform)");
        return CORE_DB_ROLLBACK;
    }
    new_client_id(a->id);
    unsigned char mac[32], regmac[32];
    bool secret = s->auth == AZ_AUTH_BASIC || s->auth == AZ_AUTH_POST;
    a->secret[0] = '\0';
    a->reg[0] = '\0';
    if (secret) {
        new_secret(a->secret);
        az_secret_hmac(AZ_SECRET_LABEL, a->secret, strlen(a->secret), mac);
    }
    if (s->with_registration_token) {
        new_secret(a->reg);
        az_secret_hmac(AZ_REGTOKEN_LABEL, a->reg, strlen(a->reg), regmac);
    }
    json_t *defaults = s->default_scopes ? s->default_scopes : s->scopes;
    char *jwks = s->jwks ? json_dumps(s->jwks, JSON_COMPACT) : NULL;
    char *grants = dump_or(s->grant_types, "[\"client_credentials\"]");
    char *redirects = dump_or(s->redirect_uris, "[]");
    char *scopes = dump_or(s->scopes, "[]");
    char *dflt = dump_or(defaults, "[]");
    char *auds = dump_or(s->audiences, "[]");
    char *plru = dump_or(s->post_logout_redirect_uris, "[]");
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", s->token_ttl ? s->token_ttl : 600);
    const char *v[] = {a->id,
                       s->tenant,
                       s->name,
                       az_auth_method_name(s->auth),
                       secret ? (const char *)mac : NULL,
                       jwks,
                       grants,
                       redirects,
                       scopes,
                       dflt,
                       auds,
                       core_alg_name(s->token_alg),
                       ttl,
                       s->with_registration_token ? (const char *)regmac : NULL,
                       a->actor,
                       s->sector_identifier,
                       plru};
    int lengths[17] = {[4] = 32, [13] = 32};
    int formats[17] = {[4] = 1, [13] = 1};
    r = core_db_execp(c, &az_client_insert_stmt, 17, v, lengths, formats, 0);
    free(plru);
    free(jwks);
    free(grants);
    free(redirects);
    free(dflt);
    free(auds);
    OPENSSL_cleanse(mac, sizeof mac);
    if (!r) {
        free(scopes);
        return CORE_DB_ERROR;
    }
    PQclear(r);
    free(scopes);
    json_t *d = json_pack("{s:s, s:s, s:s, s:o}", "client_id", a->id, "name", s->name,
                          "auth_method", az_auth_method_name(s->auth), "scopes",
                          s->scopes ? json_incref(s->scopes) : json_array());
    bool ok = au_event_record(c, "client.create", s->tenant, a->actor, d);
    json_decref(d);
    return ok ? CORE_DB_OK : CORE_DB_ERROR;
}

enum az_rc az_client_create(const char *context, const struct az_client_spec *s, const char *actor,
                            char id_out[65], char *secret_out, char *reg_out, struct az_result *res)
{
    memset(res, 0, sizeof *res);
    const char *why = az_client_spec_check(s);
    if (why) {
        res->rc = AZ_INVALID;
        xsnprintf(res->message, sizeof res->message, "%s", why);
        return res->rc;
    }
    if (context != CORE_DB_PLATFORM && s->scopes && array_has(s->scopes, "admin")) {
        /* a top-level town's administrator would otherwise mint the
         * platform's own power */
        res->rc = AZ_FORBIDDEN;
        xsnprintf(res->message, sizeof res->message,
                  "only the platform gives a client scope admin");
        return res->rc;
    }
    char reg_local[64];
    struct create_arg a = {s, actor, id_out, secret_out, reg_out ? reg_out : reg_local, res};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_WRITE, create_tx, &a, &err);
    if (rc != CORE_DB_OK) {
        OPENSSL_cleanse(secret_out, 64);
        if (reg_out)
            OPENSSL_cleanse(reg_out, 64);
    }
    return finish(rc, &err, res);
}

struct read_arg {
    const char *id;
    struct az_client *out;
    bool found;
};

static enum core_db_rc read_tx(struct core_db_conn *c, void *p)
{
    struct read_arg *a = p;
    const char *v[] = {a->id};
    PGresult *r = core_db_exec(c, &az_client_read_stmt, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    a->found = PQntuples(r) == 1;
    if (a->found) {
        az_client_release(a->out);
        from_row(r, 0, a->out);
    }
    PQclear(r);
    return CORE_DB_OK;
}

enum az_rc az_client_read(const char *context, const char *id, struct az_client *out,
                          struct az_result *res)
{
    memset(res, 0, sizeof *res);
    memset(out, 0, sizeof *out);
    struct read_arg a = {id, out, false};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_READ, read_tx, &a, &err);
    if (finish(rc, &err, res) != AZ_OK)
        return res->rc;
    if (!a.found) {
        res->rc = AZ_NOT_FOUND;
        xsnprintf(res->message, sizeof res->message, "no client %s", id);
    }
    return res->rc;
}

struct list_arg {
    const char *tenant, *after;
    int limit;
    struct az_client *items;
    size_t n;
};

static void list_clear(struct list_arg *a)
{
    for (size_t i = 0; i < a->n; i++)
        az_client_release(&a->items[i]);
    free(a->items);
    a->items = NULL;
    a->n = 0;
}

static enum core_db_rc list_tx(struct core_db_conn *c, void *p)
{
    struct list_arg *a = p;
    list_clear(a);
    char limit[16];
    snprintf(limit, sizeof limit, "%d", a->limit);
    const char *v[] = {a->tenant, a->after, limit};
    PGresult *r = core_db_exec(c, &az_client_list_stmt, 3, v);
    if (!r)
        return CORE_DB_ERROR;
    a->items = xcalloc((size_t)PQntuples(r) + 1, sizeof *a->items);
    for (int i = 0; i < PQntuples(r); i++)
        from_row(r, i, &a->items[a->n++]);
    PQclear(r);
    return CORE_DB_OK;
}

enum az_rc az_client_list(const char *context, const char *tenant, const char *after, int limit,
                          struct az_client **out, size_t *n, struct az_result *res)
{
    memset(res, 0, sizeof *res);
    struct list_arg a = {tenant, after, limit, NULL, 0};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_READ, list_tx, &a, &err);
    if (finish(rc, &err, res) != AZ_OK) {
        list_clear(&a);
        return res->rc;
    }
    *out = a.items;
    *n = a.n;
    return AZ_OK;
}

/* An UPDATE ... RETURNING tenant_id by id, then an event about that tenant. */
struct change_arg {
    struct core_stmt *stmt;
    const char *const *values;
    const int *lengths, *formats;
    int nvalues;
    const char *id, *kind, *actor;
    struct az_result *res;
};

static enum core_db_rc change_tx(struct core_db_conn *c, void *p)
{
    struct change_arg *a = p;
    a->res->rc = AZ_OK;
    PGresult *r = core_db_execp(c, a->stmt, a->nvalues, a->values, a->lengths, a->formats, 0);
    if (!r)
        return CORE_DB_ERROR;
    if (PQntuples(r) != 1) {
        PQclear(r);
        a->res->rc = AZ_NOT_FOUND;
        xsnprintf(a->res->message, sizeof a->res->message, "no client %s", a->id);
        return CORE_DB_ROLLBACK;
    }
    char tenant[51];
    xsnprintf(tenant, sizeof tenant, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    json_t *d = json_pack("{s:s}", "client_id", a->id);
    bool ok = au_event_record(c, a->kind, tenant, a->actor, d);
    json_decref(d);
    return ok ? CORE_DB_OK : CORE_DB_ERROR;
}

static void cache_forget(const char *id);

static enum az_rc change(const char *context, struct change_arg *a)
{
    memset(a->res, 0, sizeof *a->res);
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(context, CORE_TX_WRITE, change_tx, a, &err);
    /* This node forgets the client at once; other nodes do on NOTIFY. A
     * deleted or disabled client must not get a token a moment later here. */
    if (rc == CORE_DB_OK)
        cache_forget(a->id);
    return finish(rc, &err, a->res);
}

/* A town's administrator does not hold the keys of, or switch off, a client
 * with the platform's scope admin (its town's row-level security would
 * otherwise let it). False (res set) when context may not touch id. */
static bool platform_client_guard(const char *context, const char *id, struct az_result *res)
{
    memset(res, 0, sizeof *res);
    if (context == CORE_DB_PLATFORM)
        return true;
    struct az_client c;
    if (az_client_read(context, id, &c, res) != AZ_OK)
        return res->rc == AZ_NOT_FOUND; /* the change itself says 404 */
    bool admin = c.scopes && array_has(c.scopes, "admin");
    az_client_release(&c);
    if (admin) {
        res->rc = AZ_FORBIDDEN;
        xsnprintf(res->message, sizeof res->message,
                  "client %s holds scope admin: only the platform changes it", id);
        return false;
    }
    return true;
}

enum az_rc az_client_rotate_secret(const char *context, const char *id, const char *actor,
                                   char *secret_out, struct az_result *res)
{
    secret_out[0] = '\0';
    if (!platform_client_guard(context, id, res))
        return res->rc;
    unsigned char mac[32];
    new_secret(secret_out);
    az_secret_hmac(AZ_SECRET_LABEL, secret_out, strlen(secret_out), mac);
    const char *v[] = {id, (const char *)mac};
    int lengths[] = {0, 32}, formats[] = {0, 1};
    struct change_arg a = {&az_client_secret_stmt, v,     lengths, formats, 2, id,
                           "client.rotate_secret", actor, res};
    enum az_rc rc = change(context, &a);
    if (rc == AZ_NOT_FOUND)
        xsnprintf(res->message, sizeof res->message,
                  "no client %s with a secret (private_key_jwt clients rotate their keys)", id);
    if (rc != AZ_OK)
        OPENSSL_cleanse(secret_out, 64);
    return rc;
}

enum az_rc az_client_set_disabled(const char *context, const char *id, bool disabled,
                                  const char *actor, struct az_result *res)
{
    if (!platform_client_guard(context, id, res))
        return res->rc;
    const char *v[] = {id, disabled ? "disabled" : "active"};
    struct change_arg a = {&az_client_state_stmt,
                           v,
                           NULL,
                           NULL,
                           2,
                           id,
                           disabled ? "client.disable" : "client.enable",
                           actor,
                           res};
    return change(context, &a);
}

enum az_rc az_client_replace(const char *context, const char *id, const struct az_client_spec *s,
                             const char *actor, struct az_result *res)
{
    memset(res, 0, sizeof *res);
    const char *why = az_client_spec_check(s);
    if (why) {
        res->rc = AZ_INVALID;
        xsnprintf(res->message, sizeof res->message, "%s", why);
        return res->rc;
    }
    if (s->scopes && array_has(s->scopes, "admin")) {
        res->rc = AZ_INVALID;
        xsnprintf(res->message, sizeof res->message,
                  "scope admin is not given through registration");
        return res->rc;
    }
    json_t *defaults = s->default_scopes ? s->default_scopes : s->scopes;
    char *jwks = s->jwks ? json_dumps(s->jwks, JSON_COMPACT) : NULL;
    char *grants = dump_or(s->grant_types, "[\"client_credentials\"]");
    char *redirects = dump_or(s->redirect_uris, "[]");
    char *scopes = dump_or(s->scopes, "[]");
    char *dflt = dump_or(defaults, "[]");
    char *auds = dump_or(s->audiences, "[]");
    char *plru = dump_or(s->post_logout_redirect_uris, "[]");
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", s->token_ttl ? s->token_ttl : 600);
    const char *v[] = {id,
                       s->name,
                       jwks,
                       grants,
                       redirects,
                       scopes,
                       dflt,
                       auds,
                       core_alg_name(s->token_alg),
                       ttl,
                       s->sector_identifier,
                       plru};
    struct change_arg a = {&az_client_replace_stmt, v,     NULL, NULL, 12, id,
                           "client.update",         actor, res};
    enum az_rc rc = change(context, &a);
    free(plru);
    free(jwks);
    free(grants);
    free(redirects);
    free(scopes);
    free(dflt);
    free(auds);
    return rc;
}

struct regtoken_arg {
    const char *id;
    unsigned char mac[32];
    bool found;
};

static enum core_db_rc regtoken_tx(struct core_db_conn *c, void *p)
{
    struct regtoken_arg *a = p;
    const char *v[] = {a->id};
    PGresult *r = core_db_execp(c, &az_client_regtoken_stmt, 1, v, NULL, NULL, 1);
    if (!r)
        return CORE_DB_ERROR;
    a->found = PQntuples(r) == 1 && PQgetlength(r, 0, 0) == 32;
    if (a->found)
        memcpy(a->mac, PQgetvalue(r, 0, 0), 32);
    PQclear(r);
    return CORE_DB_OK;
}

bool az_registration_token_ok(const char *id, const char *token)
{
    struct regtoken_arg a = {.id = id};
    if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, regtoken_tx, &a, NULL) != CORE_DB_OK || !a.found)
        return false;
    unsigned char mac[32];
    az_secret_hmac(AZ_REGTOKEN_LABEL, token, strlen(token), mac);
    return CRYPTO_memcmp(mac, a.mac, 32) == 0;
}

/* ---- initial access tokens ---- */

struct iat_arg {
    const char *tenant;
    unsigned char mac[32];
    int uses, ttl;
    const char *actor;
    char out_tenant[51];
    bool found;
};

static enum core_db_rc iat_create_tx(struct core_db_conn *c, void *p)
{
    struct iat_arg *a = p;
    char ttl[16], uses[16];
    snprintf(ttl, sizeof ttl, "%d", a->ttl);
    snprintf(uses, sizeof uses, "%d", a->uses);
    const char *v[] = {(const char *)a->mac, a->tenant, ttl, uses, a->actor};
    int lengths[] = {32, 0, 0, 0, 0}, formats[] = {1, 0, 0, 0, 0};
    PGresult *r = core_db_execp(c, &az_iat_insert_stmt, 5, v, lengths, formats, 0);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    json_t *d = json_pack("{s:i, s:i}", "uses", a->uses, "ttl_s", a->ttl);
    bool ok = au_event_record(c, "client.initial_token", a->tenant, a->actor, d);
    json_decref(d);
    return ok ? CORE_DB_OK : CORE_DB_ERROR;
}

enum az_rc az_initial_token_create(const char *tenant, int uses, int ttl_s, const char *actor,
                                   char *token_out, struct az_result *res)
{
    memset(res, 0, sizeof *res);
    struct iat_arg a = {.tenant = tenant, .uses = uses, .ttl = ttl_s, .actor = actor};
    new_secret(token_out);
    az_secret_hmac(AZ_IAT_LABEL, token_out, strlen(token_out), a.mac);
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, iat_create_tx, &a, &err);
    if (rc != CORE_DB_OK) {
        OPENSSL_cleanse(token_out, 64);
        if (strcmp(err.sqlstate, "23503") == 0) {
            res->rc = AZ_INVALID;
            xsnprintf(res->message, sizeof res->message, "tenant %s does not exist", tenant);
            return res->rc;
        }
    }
    return finish(rc, &err, res);
}

static enum core_db_rc iat_use_tx(struct core_db_conn *c, void *p)
{
    struct iat_arg *a = p;
    const char *v[] = {(const char *)a->mac};
    int lengths[] = {32}, formats[] = {1};
    PGresult *r = core_db_execp(c, &az_iat_use_stmt, 1, v, lengths, formats, 0);
    if (!r)
        return CORE_DB_ERROR;
    a->found = PQntuples(r) == 1;
    if (a->found)
        xsnprintf(a->out_tenant, sizeof a->out_tenant, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return CORE_DB_OK;
}

enum az_rc az_initial_token_use(const char *token, char tenant_out[51])
{
    struct iat_arg a = {0};
    az_secret_hmac(AZ_IAT_LABEL, token, strlen(token), a.mac);
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, iat_use_tx, &a, NULL);
    if (rc == CORE_DB_UNAVAILABLE)
        return AZ_UNAVAILABLE;
    if (rc != CORE_DB_OK)
        return AZ_ERROR;
    if (!a.found)
        return AZ_NOT_FOUND;
    xsnprintf(tenant_out, 51, "%s", a.out_tenant);
    return AZ_OK;
}

/* ---- the cache ---- */

#define SLOTS     4096
#define MAX_ENTRY 65536
#define TTL_US    (300u * 1000000u)

struct cached {
    struct cached *next;
    atomic_int refs;
    uint64_t loaded_us;
    struct az_client c;
};

static struct {
    pthread_rwlock_t lock;
    struct cached *slots[SLOTS];
    size_t count;
    atomic_ullong generation;
} cache = {.lock = PTHREAD_RWLOCK_INITIALIZER};

static unsigned slot_of(const char *id)
{
    return core_hash_str(id) % SLOTS;
}

static void unref(struct cached *e)
{
    if (atomic_fetch_sub(&e->refs, 1) == 1) {
        az_client_release(&e->c);
        free(e);
    }
}

void az_client_put(const struct az_client *c)
{
    if (c)
        unref((struct cached *)((char *)c - offsetof(struct cached, c)));
}

static void drop_locked(const char *id)
{
    struct cached **pp = &cache.slots[slot_of(id)];
    while (*pp) {
        if (strcmp((*pp)->c.id, id) == 0) {
            struct cached *dead = *pp;
            *pp = dead->next;
            cache.count--;
            unref(dead);
            return;
        }
        pp = &(*pp)->next;
    }
}

static void clear_locked(void)
{
    for (size_t i = 0; i < SLOTS; i++) {
        struct cached *e = cache.slots[i];
        while (e) {
            struct cached *next = e->next;
            unref(e);
            e = next;
        }
        cache.slots[i] = NULL;
    }
    cache.count = 0;
}

static void on_change(const char *id, void *arg)
{
    (void)arg;
    pthread_rwlock_wrlock(&cache.lock);
    atomic_fetch_add(&cache.generation, 1);
    drop_locked(id);
    pthread_rwlock_unlock(&cache.lock);
}

static void cache_forget(const char *id)
{
    on_change(id, NULL);
}

static void on_reset(void *arg)
{
    (void)arg;
    pthread_rwlock_wrlock(&cache.lock);
    atomic_fetch_add(&cache.generation, 1);
    clear_locked();
    pthread_rwlock_unlock(&cache.lock);
}

void az_clients_cache_init(void)
{
    core_db_listen("renkei_clients", on_change, on_reset, NULL);
}

void az_clients_cache_release(void)
{
    pthread_rwlock_wrlock(&cache.lock);
    clear_locked();
    pthread_rwlock_unlock(&cache.lock);
}

const struct az_client *az_client_get(const char *id, enum az_rc *rc)
{
    if (strlen(id) > 64) {
        *rc = AZ_NOT_FOUND;
        return NULL;
    }
    bool usable = core_db_listen_connected();
    uint64_t now = core_now_us();
    if (usable) {
        pthread_rwlock_rdlock(&cache.lock);
        for (struct cached *e = cache.slots[slot_of(id)]; e; e = e->next) {
            if (strcmp(e->c.id, id) == 0 && now - e->loaded_us < TTL_US) {
                atomic_fetch_add(&e->refs, 1);
                pthread_rwlock_unlock(&cache.lock);
                *rc = AZ_OK;
                return &e->c;
            }
        }
        pthread_rwlock_unlock(&cache.lock);
    }
    unsigned long long gen = atomic_load(&cache.generation);
    struct cached *e = xcalloc(1, sizeof *e);
    struct az_result res;
    *rc = az_client_read(CORE_DB_PLATFORM, id, &e->c, &res);
    if (*rc != AZ_OK) {
        az_client_release(&e->c);
        free(e);
        return NULL;
    }
    atomic_store(&e->refs, 1);
    e->loaded_us = now;
    if (usable) {
        pthread_rwlock_wrlock(&cache.lock);
        if (atomic_load(&cache.generation) == gen && core_db_listen_connected()) {
            drop_locked(id);
            if (cache.count >= MAX_ENTRY)
                clear_locked();
            atomic_fetch_add(&e->refs, 1); /* the cache's own */
            unsigned s = slot_of(id);
            e->next = cache.slots[s];
            cache.slots[s] = e;
            cache.count++;
        }
        pthread_rwlock_unlock(&cache.lock);
    }
    return &e->c;
}

static bool loopback_host(const struct core_url *u)
{
    return strcmp(u->host, "127.0.0.1") == 0 || strcmp(u->host, "::1") == 0;
}

/* url (checked by core_url_check) without the port of its authority, into
 * out (at least CORE_URL_MAX + 1 bytes). */
static void without_port(const char *url, char *out)
{
    const char *auth = strstr(url, "://") + 3;
    size_t alen = strcspn(auth, "/?");
    const char *host_end = auth;
    const char *bracket = *auth == '[' ? memchr(auth, ']', alen) : NULL;
    if (bracket)
        host_end = bracket + 1;
    const char *colon = memchr(host_end, ':', alen - (size_t)(host_end - auth));
    size_t keep = colon ? (size_t)(colon - url) : (size_t)(auth + alen - url);
    snprintf(out, CORE_URL_MAX + 1, "%.*s%s", (int)keep, url, auth + alen);
}

bool az_redirect_registered(const json_t *registered, const char *uri)
{
    struct core_url want;
    if (strlen(uri) > CORE_URL_MAX || core_url_check(uri, 0, &want))
        return false;
    /* a native app on a loopback IP literal: the port may differ, nothing
     * else, compared as strings (RFC 9700 §2.1: no normalization) */
    bool native = !want.https && loopback_host(&want);
    char uri_np[CORE_URL_MAX + 1], reg_np[CORE_URL_MAX + 1];
    if (native)
        without_port(uri, uri_np);
    size_t i;
    json_t *v;
    json_array_foreach(registered, i, v)
    {
        const char *reg = json_string_value(v);
        if (!reg)
            continue;
        if (strcmp(reg, uri) == 0)
            return true;
        struct core_url have;
        if (native && strlen(reg) <= CORE_URL_MAX && !core_url_check(reg, 0, &have) &&
            !have.https && loopback_host(&have)) {
            without_port(reg, reg_np);
            if (strcmp(reg_np, uri_np) == 0)
                return true;
        }
    }
    return false;
}
