/* The OAuth endpoints: discovery (RFC 8414), JWKS, token (client_credentials,
 * RFC 9068 access tokens, RFC 8707 resource), introspection (RFC 7662) and
 * revocation (RFC 7009). */
#include <stdatomic.h>
#include <stdlib.h>
#include <strings.h>

#include "audit/au.h"
#include "authz/az_client_auth.h"
#include "authz/az_flow.h"
#include "authz/az_internal.h"
#include "authz/az_token.h"
#include "core/config.h"
#include "core/http.h"
#include "core/strbuf.h"
#include "core/url.h"

#define FORM_MAX_BODY (64 * 1024)

static const char *const auth_methods[] = {"client_secret_basic", "client_secret_post",
                                           "private_key_jwt", NULL};

static json_t *string_list(const char *const *items)
{
    json_t *a = json_array();
    for (; *items; items++)
        json_array_append_new(a, json_string(*items));
    return a;
}

static char *endpoint(const char *path)
{
    return xasprintf("%s%s", core_cfg.issuer, path);
}

/* What the server really supports now; nothing more. */
static json_t *metadata(void)
{
    char *token = endpoint("/oauth2/token"), *jwks = endpoint("/oauth2/jwks"),
         *introspect = endpoint("/oauth2/introspect"), *revoke = endpoint("/oauth2/revoke"),
         *reg = endpoint("/oauth2/register"), *authz = endpoint("/oauth2/authorize"),
         *userinfo = endpoint("/oauth2/userinfo"), *logout = endpoint("/logout");
    const char *const algs[] = {"ES256", "RS256", NULL};
    const char *const grants[] = {"client_credentials", "authorization_code", "refresh_token",
                                  AZ_GRANT_TOKEN_EXCHANGE, NULL};
    const char *const all_methods[] = {"client_secret_basic", "client_secret_post",
                                       "private_key_jwt", "none", NULL};
    const char *const code[] = {"code", NULL};
    const char *const query[] = {"query", NULL};
    const char *const s256[] = {"S256", NULL};
    const char *const pairwise[] = {"pairwise", NULL};
    const char *const claims[] = {
        "sub", "iss", "aud", "exp",     "iat",  "auth_time",          "nonce", "acr",
        "amr", "azp", "sid", "at_hash", "name", "preferred_username", "email", "email_verified",
        NULL};
    const char *const prompts[] = {"none", "login", "consent", NULL};
    const char *const locales[] = {"ja", "en", NULL};
    const char *const acrs[] = {"1", NULL};
    const char *const token_types[] = {"urn:ietf:params:oauth:token-type:access_token", NULL};
    json_t *m = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
        "issuer", core_cfg.issuer, "token_endpoint", token, "jwks_uri", jwks,
        "introspection_endpoint", introspect, "revocation_endpoint", revoke,
        "registration_endpoint", reg, "grant_types_supported", string_list(grants),
        "response_types_supported", string_list(code), "scopes_supported",
        string_list(az_known_scopes), "token_endpoint_auth_methods_supported",
        string_list(all_methods), "token_endpoint_auth_signing_alg_values_supported",
        string_list(algs), "introspection_endpoint_auth_methods_supported",
        string_list(auth_methods), "introspection_endpoint_auth_signing_alg_values_supported",
        string_list(algs), "revocation_endpoint_auth_methods_supported", string_list(all_methods),
        "revocation_endpoint_auth_signing_alg_values_supported", string_list(algs),
        "access_token_signing_alg_values_supported", string_list(algs), "service_documentation",
        json_sprintf("%s/openapi.json", core_cfg.issuer));
    json_object_set_new(m, "authorization_endpoint", json_string(authz));
    json_object_set_new(m, "userinfo_endpoint", json_string(userinfo));
    json_object_set_new(m, "end_session_endpoint", json_string(logout));
    json_object_set_new(m, "response_modes_supported", string_list(query));
    json_object_set_new(m, "code_challenge_methods_supported", string_list(s256));
    json_object_set_new(m, "subject_types_supported", string_list(pairwise));
    json_object_set_new(m, "id_token_signing_alg_values_supported", string_list(algs));
    json_object_set_new(m, "userinfo_signing_alg_values_supported", json_array());
    json_object_set_new(m, "claims_supported", string_list(claims));
    json_object_set_new(m, "prompt_values_supported", string_list(prompts));
    json_object_set_new(m, "ui_locales_supported", string_list(locales));
    json_object_set_new(m, "claims_locales_supported", string_list(locales));
    json_object_set_new(m, "acr_values_supported", string_list(acrs));
    json_object_set_new(m, "authorization_response_iss_parameter_supported", json_true());
    json_object_set_new(m, "claims_parameter_supported", json_false());
    json_object_set_new(m, "request_parameter_supported", json_false());
    json_object_set_new(m, "request_uri_parameter_supported", json_false());
    json_object_set_new(m, "require_request_uri_registration", json_true());
    json_object_set_new(m, "frontchannel_logout_supported", json_false());
    json_object_set_new(m, "backchannel_logout_supported", json_false());
    json_object_set_new(m, "tls_client_certificate_bound_access_tokens", json_false());
    json_object_set_new(m, "token_exchange_requested_token_types_supported",
                        string_list(token_types));
    free(token);
    free(jwks);
    free(introspect);
    free(revoke);
    free(reg);
    free(authz);
    free(userinfo);
    free(logout);
    return m;
}

static void az_handler_metadata(struct core_req *req)
{
    core_reply_header(req, "Cache-Control", "public, max-age=300");
    core_reply_json(req, 200, metadata());
}

static void az_handler_jwks(struct core_req *req)
{
    core_reply_header(req, "Cache-Control", "public, max-age=300");
    core_reply_header(req, "Content-Type", "application/jwk-set+json");
    json_t *jwks = az_keys_jwks();
    /* the audit log's checkpoint keys, so auditors fetch every key from one
     * place; their kids start with "audit-" and no token is signed with them */
    json_t *audit = au_jwks();
    json_array_extend(json_object_get(jwks, "keys"), audit);
    json_decref(audit);
    core_reply_json(req, 200, jwks);
}

/* Parses the form of an OAuth POST; false once the error is queued. */
static bool read_form(struct core_req *req, struct az_form *f)
{
    const char *ct = core_req_header(req, "Content-Type");
    const char *want = "application/x-www-form-urlencoded";
    size_t n = strlen(want);
    if (!ct || strncasecmp(ct, want, n) != 0 || (ct[n] && ct[n] != ';' && ct[n] != ' ')) {
        core_reply_oauth_error(req, 400, "invalid_request",
                               "the body must be application/x-www-form-urlencoded");
        return false;
    }
    const char *why = az_form_parse(req->body ? req->body : "", req->body_len, req->pool, f);
    if (why) {
        core_reply_oauth_error(req, 400, "invalid_request", "%s", why);
        return false;
    }
    return true;
}

/* The scope to grant: the requested ones the client is allowed, or its
 * defaults when none are requested. NULL after queuing invalid_scope. */
static char *grant_scope(struct core_req *req, const struct az_client *c, const char *requested)
{
    struct strbuf out;
    strbuf_init(&out, AZ_SCOPE_MAX);
    if (!requested) {
        size_t i;
        json_t *v;
        json_array_foreach(c->default_scopes, i, v)
        {
            if (out.len)
                strbuf_add(&out, " ", 1);
            strbuf_adds(&out, json_string_value(v));
        }
        if (!out.len) {
            strbuf_release(&out);
            core_reply_oauth_error(req, 400, "invalid_scope",
                                   "this client has no default scope: request one");
            return NULL;
        }
    } else {
        if (strlen(requested) > AZ_SCOPE_MAX) {
            core_reply_oauth_error(req, 400, "invalid_scope", "the scope is too long");
            return NULL;
        }
        for (const char *p = requested; *p;) {
            while (*p == ' ')
                p++;
            size_t n = strcspn(p, " ");
            if (!n)
                break;
            if (!az_scope_token_ok(p, n)) {
                strbuf_release(&out);
                core_reply_oauth_error(req, 400, "invalid_scope", "the scope is malformed");
                return NULL;
            }
            bool dup = false;
            for (const char *q = out.buf; q && *q && !dup;) {
                size_t m = strcspn(q, " ");
                dup = m == n && strncmp(q, p, n) == 0;
                q += m + (q[m] == ' ');
            }
            if (!dup && az_client_allows(c, p, n)) {
                if (out.len)
                    strbuf_add(&out, " ", 1);
                strbuf_add(&out, p, n);
            }
            p += n;
        }
        if (!out.len) {
            strbuf_release(&out);
            core_reply_oauth_error(req, 400, "invalid_scope",
                                   "none of the requested scopes is allowed for this client");
            return NULL;
        }
    }
    char *s = strbuf_detach(&out, NULL);
    core_pool_cleanup(req->pool, free, s);
    return s;
}

/* The audience: the hub itself, or a resource the client is allowed. */
static const char *audience(struct core_req *req, const struct az_client *c, const char *resource)
{
    if (!resource || strcmp(resource, core_cfg.issuer) == 0)
        return core_cfg.issuer;
    struct core_url u;
    if (core_url_check(resource, 0, &u)) {
        core_reply_oauth_error(req, 400, "invalid_target",
                               "resource must be an absolute http(s) URI without a fragment");
        return NULL;
    }
    if (az_client_audience_ok(c, resource))
        return resource;
    core_reply_oauth_error(req, 400, "invalid_target",
                           "this client may not request tokens for that resource");
    return NULL;
}

static void token_client_credentials(struct core_req *req, const struct az_client *c,
                                     const struct az_form *f)
{
    char *scope = grant_scope(req, c, az_form_get(f, "scope"));
    if (!scope)
        return;
    const char *aud = audience(req, c, az_form_get(f, "resource"));
    if (!aud)
        return;
    int expires_in = 0;
    char *token = az_token_issue(c, scope, aud, &expires_in);
    if (!token) {
        core_reply_header(req, "Retry-After", "5");
        core_reply_oauth_error(req, 503, "temporarily_unavailable", "no signing key is loaded");
        return;
    }
    core_reply_header(req, "Pragma", "no-cache");
    core_reply_json(req, 200,
                    json_pack("{s:s, s:s, s:i, s:s}", "access_token", token, "token_type", "Bearer",
                              "expires_in", expires_in, "scope", scope));
    free(token);
}

typedef void (*grant_fn)(struct core_req *req, const struct az_client *c, const struct az_form *f);

static const struct {
    const char *name;
    grant_fn fn;
} grant_types[] = {
    {"client_credentials", token_client_credentials},
    {"authorization_code", az_token_authorization_code},
    {"refresh_token", az_token_refresh},
    {AZ_GRANT_TOKEN_EXCHANGE, az_token_exchange},
};

/* tokens issued, by grant (index into grant_types), and refused by the
 * rate limit: for /metrics */
static atomic_ullong m_issued[ARRAY_SIZE(grant_types)], m_rate_limited;

void az_oauth_metrics(struct strbuf *out)
{
    strbuf_addf(out, "# HELP renkei_oauth_tokens_issued_total Access tokens issued at "
                     "/oauth2/token, by grant type.\n"
                     "# TYPE renkei_oauth_tokens_issued_total counter\n");
    for (size_t i = 0; i < ARRAY_SIZE(grant_types); i++)
        strbuf_addf(out, "renkei_oauth_tokens_issued_total{grant=\"%s\"} %llu\n",
                    grant_types[i].name, (unsigned long long)atomic_load(&m_issued[i]));
    strbuf_addf(out,
                "# HELP renkei_oauth_token_rate_limited_total Token requests refused with 429 "
                "for passing RENKEI_TOKEN_RATE.\n"
                "# TYPE renkei_oauth_token_rate_limited_total counter\n"
                "renkei_oauth_token_rate_limited_total %llu\n",
                (unsigned long long)atomic_load(&m_rate_limited));
}

static void az_handler_token(struct core_req *req)
{
    struct az_form f;
    if (!read_form(req, &f))
        return;
    const char *grant = az_form_get(&f, "grant_type");
    if (!grant) {
        core_reply_oauth_error(req, 400, "invalid_request", "grant_type is missing");
        return;
    }
    grant_fn fn = NULL;
    size_t gi = 0;
    for (size_t i = 0; i < ARRAY_SIZE(grant_types) && !fn; i++) {
        if (strcmp(grant, grant_types[i].name) == 0) {
            fn = grant_types[i].fn;
            gi = i;
        }
    }
    if (!fn) {
        core_reply_oauth_error(req, 400, "unsupported_grant_type",
                               "this server supports grant_type client_credentials, "
                               "authorization_code, refresh_token and " AZ_GRANT_TOKEN_EXCHANGE);
        return;
    }
    const struct az_client *c = az_authenticate(req, &f);
    if (!c)
        return;
    core_pool_cleanup(req->pool, (void (*)(void *))az_client_put, (void *)c);
    if (!az_client_has_grant(c, grant)) {
        core_reply_oauth_error(req, 400, "unauthorized_client",
                               "this client may not use the %s grant", grant);
        return;
    }
    if (!az_token_rate_admit(req, c)) {
        atomic_fetch_add(&m_rate_limited, 1);
        return;
    }
    fn(req, c, &f);
    if (req->status == 200)
        atomic_fetch_add(&m_issued[gi], 1);
}

/* The authenticated client and the token parameter of an introspection or
 * revocation request; false once the error reply is queued. */
static bool token_request(struct core_req *req, const struct az_client **c, const char **token)
{
    struct az_form f;
    if (!read_form(req, &f))
        return false;
    *c = az_authenticate(req, &f);
    if (!*c)
        return false;
    core_pool_cleanup(req->pool, (void (*)(void *))az_client_put, (void *)*c);
    *token = az_form_get(&f, "token");
    if (!*token) {
        core_reply_oauth_error(req, 400, "invalid_request", "token is missing");
        return false;
    }
    return true;
}

static void az_handler_introspect(struct core_req *req)
{
    const struct az_client *c;
    const char *token;
    if (!token_request(req, &c, &token))
        return;
    if (c->auth == AZ_AUTH_NONE) {
        core_reply_oauth_error(req, 401, "invalid_client",
                               "a public client may not introspect tokens");
        return;
    }
    if (!strchr(token, '.')) {
        json_t *info = strlen(token) <= 128 ? az_refresh_introspect(token, c) : NULL;
        core_reply_json(req, 200, info ? info : json_pack("{s:b}", "active", 0));
        return;
    }
    struct az_claims cl;
    const char *why;
    enum az_verify_rc rc = az_token_verify(token, false, &cl, &why);
    if (rc == AZ_TOKEN_UNAVAILABLE) {
        core_reply_header(req, "Retry-After", "5");
        core_reply_oauth_error(req, 503, "temporarily_unavailable",
                               "tokens cannot be checked right now");
        return;
    }
    /* A client learns about its own tenant's tokens; a resource server with
     * the introspect scope about any. Anything else looks inactive. */
    bool may = rc == AZ_TOKEN_OK &&
               (strcmp(cl.tenant, c->tenant) == 0 || az_client_allows(c, "introspect", 10));
    if (!may) {
        core_reply_json(req, 200, json_pack("{s:b}", "active", 0));
        return;
    }
    core_reply_json(req, 200,
                    json_pack("{s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s}", "active",
                              1, "scope", cl.scope, "client_id", cl.client_id, "sub", cl.sub, "aud",
                              cl.aud, "iss", core_cfg.issuer, "jti", cl.jti, "exp",
                              (json_int_t)cl.exp, "iat", (json_int_t)cl.iat, "token_type", "Bearer",
                              "tenant", cl.tenant));
}

static void az_handler_revoke(struct core_req *req)
{
    const struct az_client *c;
    const char *token;
    if (!token_request(req, &c, &token))
        return;
    if (!strchr(token, '.')) {
        /* not a JWT: one of our refresh tokens, or nothing */
        if (az_refresh_revoke(token, c) < 0) {
            core_reply_header(req, "Retry-After", "5");
            core_reply_oauth_error(req, 503, "temporarily_unavailable",
                                   "tokens cannot be revoked right now");
            return;
        }
        core_reply_empty(req, 200);
        return;
    }
    struct az_claims cl;
    const char *why;
    enum az_verify_rc rc = az_token_verify(token, false, &cl, &why);
    if (rc == AZ_TOKEN_UNAVAILABLE) {
        core_reply_header(req, "Retry-After", "5");
        core_reply_oauth_error(req, 503, "temporarily_unavailable",
                               "tokens cannot be revoked right now");
        return;
    }
    /* RFC 7009 §2.2: 200 whether or not there was anything to revoke; a
     * client revokes only its own tokens */
    if ((rc == AZ_TOKEN_OK || rc == AZ_TOKEN_INACTIVE) && strcmp(cl.client_id, c->id) == 0 &&
        !az_token_revoke(&cl)) {
        core_reply_header(req, "Retry-After", "5");
        core_reply_oauth_error(req, 503, "temporarily_unavailable",
                               "tokens cannot be revoked right now");
        return;
    }
    core_reply_empty(req, 200);
}

static const struct core_route routes[] = {
    {CORE_GET, "/.well-known/oauth-authorization-server", az_handler_metadata,
     "Authorization server metadata (RFC 8414)", "authz", 0},
    {CORE_GET, "/.well-known/openid-configuration", az_handler_metadata,
     "OpenID Provider metadata (the same document)", "authz", 0},
    {CORE_GET, "/oauth2/jwks", az_handler_jwks, "The hub's public signing keys", "authz", 0},
    {CORE_POST, "/oauth2/token", az_handler_token,
     "Token endpoint (client_credentials, authorization_code with PKCE, refresh_token, token "
     "exchange)",
     "authz", FORM_MAX_BODY},
    {CORE_POST, "/oauth2/introspect", az_handler_introspect, "Token introspection (RFC 7662)",
     "authz", FORM_MAX_BODY},
    {CORE_POST, "/oauth2/revoke", az_handler_revoke, "Token revocation (RFC 7009)", "authz",
     FORM_MAX_BODY},
};

void az_oauth_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
