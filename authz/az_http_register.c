/* Dynamic client registration (RFC 7591) with a per-tenant initial access
 * token, and its management protocol (RFC 7592) with the registration
 * access token issued at registration. */
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "authz/az_client.h"
#include "authz/az_internal.h"
#include "core/config.h"
#include "core/db.h"
#include "core/http.h"

static const char *bearer(struct core_req *req)
{
    const char *h = core_req_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h && strlen(h) <= 256 ? h : NULL;
}

static void unauthorized(struct core_req *req, const char *why)
{
    core_reply_header(req, "WWW-Authenticate",
                      core_psprintf(req->pool,
                                    "Bearer realm=\"renkei\", error=\"invalid_token\", "
                                    "error_description=\"%s\"",
                                    why));
    core_reply_oauth_error(req, 401, "invalid_token", "%s", why);
}

/* Client metadata (RFC 7591 §2) into a spec; NULL when fine, else the
 * description for invalid_client_metadata. Strings are borrowed from body. */
static const char *to_spec(json_t *body, struct az_client_spec *s, struct core_pool *pool)
{
    if (!json_is_object(body))
        return "the body must be a JSON object";
    json_t *v;
    if ((v = json_object_get(body, "client_name")) && !json_is_string(v))
        return "client_name must be a string";
    s->name = json_string_value(v);
    if (!s->name)
        return "client_name is required";
    if ((v = json_object_get(body, "jwks_uri")))
        return "jwks_uri is not supported: give the keys in jwks";
    const char *method = json_string_value(json_object_get(body, "token_endpoint_auth_method"));
    if (json_object_get(body, "token_endpoint_auth_method") && !method)
        return "token_endpoint_auth_method must be a string";
    s->auth = AZ_AUTH_BASIC;
    if (method && !az_auth_method_parse(method, &s->auth))
        return "token_endpoint_auth_method must be client_secret_basic, client_secret_post, "
               "private_key_jwt or none";
    if ((v = json_object_get(body, "response_types"))) {
        size_t i;
        json_t *rt;
        if (!json_is_array(v))
            return "response_types must be an array";
        json_array_foreach(v, i, rt)
        {
            if (!json_is_string(rt) || strcmp(json_string_value(rt), "code") != 0)
                return "response_types: this server supports code only";
        }
    }
    if ((v = json_object_get(body, "post_logout_redirect_uris")))
        s->post_logout_redirect_uris = v;
    s->grant_types = json_object_get(body, "grant_types");
    s->redirect_uris = json_object_get(body, "redirect_uris");
    s->jwks = json_object_get(body, "jwks");
    if ((v = json_object_get(body, "scope"))) {
        if (!json_is_string(v) || json_string_length(v) > AZ_SCOPE_MAX)
            return "scope must be a space-separated string";
        json_t *arr = json_array();
        const char *p = json_string_value(v);
        while (*p) {
            while (*p == ' ')
                p++;
            size_t n = strcspn(p, " ");
            if (n)
                json_array_append_new(arr, json_stringn(p, n));
            p += n;
        }
        core_pool_cleanup(pool, (void (*)(void *))json_decref, arr);
        s->scopes = arr;
    }
    const char *alg = json_string_value(json_object_get(body, "access_token_signing_alg"));
    if (alg && !core_alg_parse(alg, &s->token_alg))
        return "access_token_signing_alg must be ES256 or RS256";
    return NULL;
}

static bool has_admin(json_t *scopes)
{
    size_t i;
    json_t *v;
    json_array_foreach(scopes, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), "admin") == 0)
            return true;
    }
    return false;
}

static json_t *registration_json(const struct az_client *c, const char *secret, const char *reg)
{
    size_t i;
    json_t *v;
    char buf[AZ_SCOPE_MAX + 1] = "";
    size_t used = 0;
    json_array_foreach(c->scopes, i, v)
    {
        int k =
            snprintf(buf + used, sizeof buf - used, "%s%s", used ? " " : "", json_string_value(v));
        if (k > 0 && (size_t)k < sizeof buf - used)
            used += (size_t)k;
    }
    char *uri = xasprintf("%s/oauth2/register/%s", core_cfg.issuer, c->id);
    json_t *j = json_pack("{s:s, s:s, s:O, s:s, s:s, s:O, s:s, s:s}", "client_id", c->id,
                          "client_name", c->name, "grant_types", c->grant_types,
                          "token_endpoint_auth_method", az_auth_method_name(c->auth), "scope", buf,
                          "redirect_uris", c->redirect_uris, "access_token_signing_alg",
                          core_alg_name(c->token_alg), "registration_client_uri", uri);
    free(uri);
    if (c->jwks)
        json_object_set(j, "jwks", c->jwks);
    if (secret && *secret) {
        json_object_set_new(j, "client_secret", json_string(secret));
        json_object_set_new(j, "client_secret_expires_at", json_integer(0));
    }
    if (reg && *reg)
        json_object_set_new(j, "registration_access_token", json_string(reg));
    return j;
}

static void az_handler_register(struct core_req *req)
{
    const char *iat = bearer(req);
    if (!iat) {
        unauthorized(req, "an initial access token is required (renkei client initial-token)");
        return;
    }
    /* the body first: a refused registration does not use up the token */
    enum core_err code;
    const char *why;
    json_t *body = core_req_parse_json(req, &code, &why);
    if (!body) {
        core_reply_oauth_error(req, 400, "invalid_client_metadata", "%s", why);
        return;
    }
    struct az_client_spec s = {.with_registration_token = true};
    why = to_spec(body, &s, req->pool);
    if (!why && has_admin(s.scopes))
        why = "scope admin is not given through registration";
    if (!why) {
        s.tenant = "_"; /* a placeholder for the syntax check: the tenant is the token's */
        why = az_client_spec_check(&s);
    }
    if (why) {
        core_reply_oauth_error(
            req, 400, strstr(why, "redirect") ? "invalid_redirect_uri" : "invalid_client_metadata",
            "%s", why);
        return;
    }
    char tenant[51];
    enum az_rc rc = az_initial_token_use(iat, tenant);
    if (rc == AZ_UNAVAILABLE) {
        core_reply_oauth_error(req, 503, "temporarily_unavailable", "try again shortly");
        return;
    }
    if (rc != AZ_OK) {
        unauthorized(req, "the initial access token is unknown, used up or expired");
        return;
    }
    s.tenant = tenant;
    char id[65], secret[64], reg[64];
    struct az_result res;
    char *actor = core_psprintf(req->pool, "registration:%s", tenant);
    rc = az_client_create(tenant, &s, actor, id, secret, reg, &res);
    if (rc == AZ_INVALID) {
        core_reply_oauth_error(req, 400,
                               strstr(res.message, "redirect") ? "invalid_redirect_uri"
                                                               : "invalid_client_metadata",
                               "%s", res.message);
        return;
    }
    if (rc != AZ_OK) {
        core_reply_oauth_error(req, rc == AZ_UNAVAILABLE ? 503 : 500,
                               rc == AZ_UNAVAILABLE ? "temporarily_unavailable" : "server_error",
                               "%s", res.message);
        return;
    }
    struct az_client c;
    if (az_client_read(tenant, id, &c, &res) != AZ_OK) {
        core_reply_oauth_error(req, 500, "server_error", "the client was created but not read");
        return;
    }
    json_t *j = registration_json(&c, secret, reg);
    json_object_set_new(j, "client_id_issued_at", json_integer((json_int_t)time(NULL)));
    az_client_release(&c);
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(reg, sizeof reg);
    core_reply_header(req, "Location",
                      json_string_value(json_object_get(j, "registration_client_uri")));
    core_reply_header(req, "Pragma", "no-cache");
    core_reply_json(req, 201, j);
}

/* The client named by the path, if the registration access token is its. */
static bool managed(struct core_req *req, struct az_client *c)
{
    const char *id = core_req_param(req, "id");
    const char *token = bearer(req);
    if (!token || !id || strlen(id) > 64 || !az_registration_token_ok(id, token)) {
        /* RFC 7592 §2: an unknown client and a wrong token look the same */
        unauthorized(req, "the registration access token is not valid for this client");
        return false;
    }
    struct az_result res;
    if (az_client_read(CORE_DB_PLATFORM, id, c, &res) != AZ_OK) {
        unauthorized(req, "the registration access token is not valid for this client");
        return false;
    }
    return true;
}

static void az_handler_register_read(struct core_req *req)
{
    struct az_client c;
    if (!managed(req, &c))
        return;
    core_reply_json(req, 200, registration_json(&c, NULL, NULL));
    az_client_release(&c);
}

static void az_handler_register_update(struct core_req *req)
{
    struct az_client c;
    if (!managed(req, &c))
        return;
    enum core_err code;
    const char *perr;
    json_t *body = core_req_parse_json(req, &code, &perr);
    if (!body) {
        az_client_release(&c);
        core_reply_oauth_error(req, 400, "invalid_client_metadata", "%s", perr);
        return;
    }
    const char *body_id = json_string_value(json_object_get(body, "client_id"));
    struct az_client_spec s = {.tenant = c.tenant, .auth = c.auth};
    const char *why = !body_id || strcmp(body_id, c.id) != 0
                          ? "client_id must be given and be this client's"
                          : to_spec(body, &s, req->pool);
    if (!why && s.auth != c.auth)
        why = "token_endpoint_auth_method cannot change";
    if (!why && json_object_get(body, "client_secret")) {
        const char *sec = json_string_value(json_object_get(body, "client_secret"));
        if (!sec || !az_secret_matches(&c, sec, strlen(sec)))
            why = "client_secret, when given, must be the current one";
    }
    if (why) {
        az_client_release(&c);
        core_reply_oauth_error(req, 400, "invalid_client_metadata", "%s", why);
        return;
    }
    struct az_result res;
    char *actor = core_psprintf(req->pool, "registration:%s", c.id);
    enum az_rc rc = az_client_replace(CORE_DB_PLATFORM, c.id, &s, actor, &res);
    char id[65];
    xsnprintf(id, sizeof id, "%s", c.id);
    az_client_release(&c);
    if (rc != AZ_OK) {
        core_reply_oauth_error(req, rc == AZ_INVALID ? 400 : 503,
                               rc == AZ_INVALID ? "invalid_client_metadata"
                                                : "temporarily_unavailable",
                               "%s", res.message);
        return;
    }
    if (az_client_read(CORE_DB_PLATFORM, id, &c, &res) != AZ_OK) {
        core_reply_oauth_error(req, 500, "server_error", "the client was updated but not read");
        return;
    }
    core_reply_json(req, 200, registration_json(&c, NULL, NULL));
    az_client_release(&c);
}

static void az_handler_register_delete(struct core_req *req)
{
    struct az_client c;
    if (!managed(req, &c))
        return;
    struct az_result res;
    char *actor = core_psprintf(req->pool, "registration:%s", c.id);
    enum az_rc rc = az_client_set_disabled(CORE_DB_PLATFORM, c.id, true, actor, &res);
    az_client_release(&c);
    if (rc != AZ_OK) {
        core_reply_oauth_error(req, 503, "temporarily_unavailable", "%s", res.message);
        return;
    }
    core_reply_empty(req, 204);
}

static const struct core_route routes[] = {
    {CORE_POST, "/oauth2/register", az_handler_register,
     "Dynamic client registration (RFC 7591; initial access token)", "authz", 64 * 1024},
    {CORE_GET, "/oauth2/register/{id}", az_handler_register_read,
     "Read a registered client (RFC 7592)", "authz", 0},
    {CORE_PUT, "/oauth2/register/{id}", az_handler_register_update,
     "Update a registered client (RFC 7592)", "authz", 64 * 1024},
    {CORE_DELETE, "/oauth2/register/{id}", az_handler_register_delete,
     "Deregister a client (RFC 7592): it is disabled", "authz", 0},
};

void az_register_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
