/* Pairwise subjects, ID tokens and the userinfo endpoint. */
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "authz/az_form.h"
#include "authz/az_oidc.h"
#include "authz/az_resident.h"
#include "authz/az_token.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/http.h"
#include "core/url.h"

#define PAIRWISE_LABEL "renkei.authz.pairwise.v1"
#define ID_TOKEN_TTL_S 600

void az_pairwise_sub_sector(const char *sector, const char *resident, char out[44])
{
    unsigned char k[32], mac[32];
    core_secret_derive(PAIRWISE_LABEL, k, sizeof k);
    char *msg = xasprintf("%s\n%s", sector, resident);
    core_hmac_sha256(k, msg, strlen(msg), mac);
    OPENSSL_cleanse(k, sizeof k);
    free(msg);
    char *s = core_b64url_encode(mac, sizeof mac);
    xsnprintf(out, 44, "%s", s);
    free(s);
}

void az_pairwise_sub(const struct az_client *c, const char *resident, char out[44])
{
    const char *sector = c->sector;
    struct core_url u = {0};
    if (!sector[0]) {
        const char *first = json_string_value(json_array_get(c->redirect_uris, 0));
        /* a client without redirect URIs (a service in a token exchange) is
         * its own sector */
        sector = first && !core_url_check(first, 0, &u) ? u.host : c->id;
        /* every native app listens on the same loopback host: each is its
         * own sector */
        if (strcmp(sector, "127.0.0.1") == 0 || strcmp(sector, "::1") == 0)
            sector = c->id;
    }
    az_pairwise_sub_sector(sector, resident, out);
}

char *az_id_token(const struct az_client *c, const struct az_id_claims *k)
{
    long long now = (long long)time(NULL);
    json_t *claims = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s}", "iss", core_cfg.issuer, "sub", k->sub,
        "aud", c->id, "exp", (json_int_t)(now + ID_TOKEN_TTL_S), "iat", (json_int_t)now,
        "auth_time", (json_int_t)k->auth_time, "acr", k->acr, "azp", c->id, "sid", k->sid);
    if (!claims)
        return NULL;
    json_t *amr = json_array();
    for (const char *p = k->amr; p && *p;) {
        size_t n = strcspn(p, " ");
        if (n)
            json_array_append_new(amr, json_stringn(p, n));
        p += n + (p[n] == ' ');
    }
    json_object_set_new(claims, "amr", amr);
    if (k->nonce)
        json_object_set_new(claims, "nonce", json_string(k->nonce));
    if (k->access_token) {
        /* OIDC Core 3.1.3.6: the left half of the hash of the token, with the
         * hash of the signing algorithm (SHA-256 for ES256 and RS256) */
        unsigned char h[32];
        core_sha256(k->access_token, strlen(k->access_token), h);
        char *half = core_b64url_encode(h, 16);
        json_object_set_new(claims, "at_hash", json_string(half));
        free(half);
    }
    char *t = az_keys_sign(c->token_alg, "JWT", claims);
    json_decref(claims);
    return t;
}

json_t *az_id_token_hint(const char *token)
{
    struct core_jws j;
    const char *why;
    if (!core_jws_parse(token, AZ_TOKEN_MAX, &j, &why))
        return NULL;
    json_t *out = NULL;
    const char *typ = json_string_value(json_object_get(j.header, "typ"));
    const char *iss = json_string_value(json_object_get(j.claims, "iss"));
    /* an access token is not an ID token, whatever it says */
    if ((!typ || strcasecmp(typ, "JWT") == 0) && az_keys_verify(&j) && iss &&
        strcmp(iss, core_cfg.issuer) == 0 && json_is_string(json_object_get(j.claims, "sid")) &&
        json_is_string(json_object_get(j.claims, "aud")))
        out = json_incref(j.claims);
    core_jws_release(&j);
    return out;
}

/* ---- userinfo ---- */

static void bearer_error(struct core_req *req, unsigned status, const char *error, const char *why)
{
    core_reply_header(req, "WWW-Authenticate",
                      core_psprintf(req->pool, "Bearer realm=\"renkei\"%s%s%s%s%s",
                                    error ? ", error=\"" : "", error ? error : "",
                                    error ? "\", error_description=\"" : "", error ? why : "",
                                    error ? "\"" : ""));
    core_reply_oauth_error(req, status, error ? error : "invalid_request", "%s", why);
}

static void az_handler_userinfo(struct core_req *req)
{
    const char *h = core_req_header(req, "Authorization");
    const char *token = NULL;
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        token = h + 7;
        while (*token == ' ')
            token++;
    } else if (strcmp(req->method, "POST") == 0 && req->body) {
        /* RFC 6750 §2.2: the token in a form body */
        const char *ct = core_req_header(req, "Content-Type");
        struct az_form f;
        if (ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0 &&
            !az_form_parse(req->body, req->body_len, req->pool, &f))
            token = az_form_get(&f, "access_token");
    }
    if (!token || !*token) {
        bearer_error(req, 401, NULL, "a bearer access token is required");
        return;
    }
    struct az_claims cl;
    const char *why;
    enum az_verify_rc rc = az_token_verify(token, true, &cl, &why);
    if (rc == AZ_TOKEN_UNAVAILABLE) {
        core_reply_header(req, "Retry-After", "5");
        core_reply_oauth_error(req, 503, "temporarily_unavailable",
                               "tokens cannot be checked right now");
        return;
    }
    if (rc != AZ_TOKEN_OK) {
        bearer_error(req, 401, "invalid_token", why);
        return;
    }
    if (!cl.resident[0]) {
        bearer_error(req, 401, "invalid_token", "the token is not a resident's");
        return;
    }
    if (!az_scope_in(cl.scope, "openid", 6)) {
        bearer_error(req, 403, "insufficient_scope", "the token lacks scope openid");
        return;
    }
    struct az_resident r;
    struct az_result res;
    enum az_rc arc = az_resident_by_id(cl.resident, &r, &res);
    if (arc == AZ_UNAVAILABLE || arc == AZ_ERROR) {
        core_reply_header(req, "Retry-After", "5");
        core_reply_oauth_error(req, 503, "temporarily_unavailable",
                               "the database is not available");
        return;
    }
    if (arc != AZ_OK || r.disabled) {
        bearer_error(req, 401, "invalid_token", "the resident's account is disabled");
        return;
    }
    json_t *out = json_pack("{s:s}", "sub", cl.sub);
    if (az_scope_in(cl.scope, "profile", 7)) {
        json_object_set_new(out, "name", json_string(r.name));
        json_object_set_new(out, "preferred_username", json_string(r.login));
    }
    if (az_scope_in(cl.scope, "email", 5) && r.email[0]) {
        json_object_set_new(out, "email", json_string(r.email));
        json_object_set_new(out, "email_verified", json_boolean(r.email_verified));
    }
    core_reply_json(req, 200, out);
}

static const struct core_route routes[] = {
    {CORE_GET, "/oauth2/userinfo", az_handler_userinfo,
     "OpenID Connect userinfo: the claims the resident's consent allows", "authz", 0},
    {CORE_POST, "/oauth2/userinfo", az_handler_userinfo,
     "OpenID Connect userinfo (POST, token in the header or the form)", "authz", 16 * 1024},
};

void az_oidc_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
