/* The authorization endpoint (code flow with PKCE S256 only) and the pages
 * a resident meets on the way: sign-in, consent, the account page, and
 * RP-initiated logout.
 *
 * An authorization request is checked once at /oauth2/authorize; while the
 * resident signs in and consents it travels sealed (encrypted and
 * authenticated with the master secret, 15 minutes) in the pages' forms, so
 * any hub process can continue it and nobody can alter it on the way.
 * Errors before the client and its redirect URI are known are shown as a
 * page, never redirected (RFC 6749 §4.1.2.1); every redirect carries iss
 * (RFC 9207). */
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "audit/au.h"
#include "authz/az_flow.h"
#include "authz/az_form.h"
#include "authz/az_grant.h"
#include "authz/az_internal.h"
#include "authz/az_oidc.h"
#include "authz/az_page.h"
#include "authz/az_resident.h"
#include "authz/az_session.h"
#include "core/config.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "core/url.h"
#include "tenants/tn.h"

#define PAGE_BODY_MAX  (32 * 1024)
#define STATE_MAX      2048
#define NONCE_MAX      512
#define HINT_MAX       AZ_LOGIN_MAX
#define LOCALES_MAX    100
#define CHALLENGE_LEN  43
#define PAGE_FORM_MAX  64
#define ACCESS_ON_PAGE 20

/* ---- small helpers ---- */

static bool is_post(const struct core_req *req)
{
    return strcmp(req->method, "POST") == 0;
}

/* A page form (application/x-www-form-urlencoded), where a checkbox list
 * repeats its name. */
struct page_form {
    size_t n;
    const char *keys[PAGE_FORM_MAX];
    const char *values[PAGE_FORM_MAX];
};

static bool page_form_parse(struct core_req *req, struct page_form *f)
{
    f->n = 0;
    const char *ct = core_req_header(req, "Content-Type");
    if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0)
        return false;
    const char *p = req->body ? req->body : "", *end = p + req->body_len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if (stop > p) {
            const char *eq = memchr(p, '=', (size_t)(stop - p));
            const char *kend = eq ? eq : stop;
            if (f->n == PAGE_FORM_MAX)
                return false;
            char *k = core_url_decode(p, (size_t)(kend - p), true, req->pool);
            char *v = eq ? core_url_decode(eq + 1, (size_t)(stop - eq - 1), true, req->pool)
                         : core_pstrdup(req->pool, "");
            if (!k || !v)
                return false;
            f->keys[f->n] = k;
            f->values[f->n] = v;
            f->n++;
        }
        p = stop + 1;
    }
    return true;
}

/* The first value of key (NULL when absent); *count how many there were. */
static const char *page_form_get(const struct page_form *f, const char *key, size_t *count)
{
    const char *first = NULL;
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (strcmp(f->keys[i], key) == 0) {
            if (!first)
                first = f->values[i];
            n++;
        }
    }
    if (count)
        *count = n;
    return first;
}

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static enum az_lang request_lang(struct core_req *req, json_t *ar)
{
    const char *ul = ar ? jstr(ar, "ul") : NULL;
    if (!ul)
        ul = core_req_query(req, "ui_locales");
    return az_page_lang(req, ul && strlen(ul) <= LOCALES_MAX ? ul : NULL);
}

static void error_page(struct core_req *req, unsigned status, enum az_lang lang, const char *key,
                       const char *detail)
{
    az_page_error(req, status, lang, "error.title", key, detail);
}

static void see_other(struct core_req *req, const char *location)
{
    core_reply_header(req, "Location", location);
    core_reply_header(req, "Referrer-Policy", "no-referrer");
    core_reply_empty(req, 303);
}

/* The display name of a town (its id when it cannot be read). */
static const char *tenant_name(struct core_req *req, const char *id)
{
    struct tn_tenant t;
    struct tn_result res;
    if (tn_get(CORE_DB_PLATFORM, id, &t, &res) != TN_OK)
        return id;
    const char *name = core_pstrdup(req->pool, t.name);
    tn_tenant_release(&t);
    return name;
}

/* A town's name through seen (id -> name, for one page). */
static const char *town_named(struct core_req *req, json_t *seen, const char *id)
{
    if (!id)
        return NULL;
    const char *known = json_string_value(json_object_get(seen, id));
    if (known)
        return known;
    const char *name = tenant_name(req, id);
    json_object_set_new(seen, id, json_string(name));
    return name;
}

/* A client's name, or its id when it has none that can be read now. */
static const char *client_name(struct core_req *req, const char *id)
{
    if (!id)
        return NULL;
    enum az_rc rc;
    const struct az_client *c = az_client_get(id, &rc);
    if (!c)
        return id;
    const char *name = core_pstrdup(req->pool, c->name);
    az_client_put(c);
    return name;
}

/* VSCHAR (RFC 6749 Appendix A): what state and nonce may hold. */
static bool vschar(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    }
    return true;
}

/* ---- redirect URIs ---- */

/* ru?name=value&...&iss=issuer, as a 303. */
static void redirect_with(struct core_req *req, const char *ru, const char *const *kv, size_t n)
{
    struct strbuf b;
    strbuf_init(&b, 64 * 1024);
    strbuf_adds(&b, ru);
    strbuf_adds(&b, strchr(ru, '?') ? "&" : "?");
    for (size_t i = 0; i + 1 < n; i += 2) {
        if (!kv[i + 1])
            continue;
        strbuf_adds(&b, kv[i]);
        strbuf_adds(&b, "=");
        core_url_encode(&b, kv[i + 1]);
        strbuf_adds(&b, "&");
    }
    strbuf_adds(&b, "iss=");
    core_url_encode(&b, core_cfg.issuer);
    char *loc = strbuf_detach(&b, NULL);
    core_pool_cleanup(req->pool, free, loc);
    see_other(req, loc);
}

static void redirect_error(struct core_req *req, json_t *ar, const char *error, const char *why)
{
    const char *kv[] = {"error", error, "error_description", why, "state", jstr(ar, "st")};
    redirect_with(req, jstr(ar, "ru"), kv, ARRAY_SIZE(kv));
}

/* ---- the authorization request ---- */

struct params {
    struct az_form form; /* POST */
    bool post;
    struct core_req *req;
};

/* A parameter sent without a value counts as omitted (RFC 6749 §3.1). */
static const char *param(const struct params *p, const char *name)
{
    const char *v = p->post ? az_form_get(&p->form, name) : core_req_query(p->req, name);
    return v && *v ? v : NULL;
}

/* The scope to ask the resident for: the requested scopes (each known to
 * be allowed), or the client's defaults. NULL with *why on refusal. */
static char *requested_scope(struct core_req *req, const struct az_client *c, const char *s,
                             const char **why)
{
    struct strbuf out;
    strbuf_init(&out, AZ_SCOPE_MAX + 1);
    strbuf_adds(&out, "");
    if (!s) {
        size_t i;
        json_t *v;
        json_array_foreach(c->default_scopes, i, v)
        {
            const char *d = json_string_value(v);
            if (az_scope_for_residents(d, strlen(d))) {
                if (out.len)
                    strbuf_add(&out, " ", 1);
                strbuf_adds(&out, d);
            }
        }
    } else {
        if (strlen(s) > AZ_SCOPE_MAX) {
            strbuf_release(&out);
            *why = "the scope is too long";
            return NULL;
        }
        for (const char *p = s; *p;) {
            while (*p == ' ')
                p++;
            size_t n = strcspn(p, " ");
            if (!n)
                break;
            if (!az_scope_token_ok(p, n)) {
                strbuf_release(&out);
                *why = "the scope is malformed";
                return NULL;
            }
            if (!az_scope_for_residents(p, n) || !az_client_allows(c, p, n)) {
                strbuf_release(&out);
                *why = core_psprintf(req->pool, "scope %.*s is not available to this client",
                                     (int)n, p);
                return NULL;
            }
            if (!az_scope_in(out.buf, p, n)) {
                if (out.len)
                    strbuf_add(&out, " ", 1);
                strbuf_add(&out, p, n);
            }
            p += n;
        }
    }
    if (!out.len) {
        strbuf_release(&out);
        *why = "no scope was requested and the client has no default one";
        return NULL;
    }
    char *r = strbuf_detach(&out, NULL);
    core_pool_cleanup(req->pool, free, r);
    return r;
}

static void proceed(struct core_req *req, json_t *ar, const struct az_session *s, bool fresh);

static void az_handler_authorize(struct core_req *req)
{
    struct params p = {.post = is_post(req), .req = req};
    enum az_lang lang = az_page_lang(req, NULL);
    if (p.post) {
        const char *ct = core_req_header(req, "Content-Type");
        const char *why = NULL;
        if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0)
            why = "the body must be application/x-www-form-urlencoded";
        else
            why = az_form_parse(req->body ? req->body : "", req->body_len, req->pool, &p.form);
        if (why) {
            error_page(req, 400, lang, "error.invalid_request", why);
            return;
        }
    } else {
        const char *dup = core_req_query_repeated(req);
        if (dup) {
            error_page(req, 400, lang, "error.invalid_request",
                       core_psprintf(req->pool, "parameter %s is repeated", dup));
            return;
        }
    }
    const char *ul = param(&p, "ui_locales");
    lang = az_page_lang(req, ul && strlen(ul) <= LOCALES_MAX ? ul : NULL);
    /* 1. the client and its redirect URI: until both are known, errors are
     *    pages (no open redirector) */
    const char *client_id = param(&p, "client_id");
    if (!client_id || strlen(client_id) > 64) {
        error_page(req, 400, lang, "error.invalid_client", "client_id is missing or unknown");
        return;
    }
    enum az_rc crc;
    const struct az_client *c = az_client_get(client_id, &crc);
    if (!c) {
        if (crc == AZ_UNAVAILABLE)
            error_page(req, 503, lang, "error.unavailable", NULL);
        else
            error_page(req, 400, lang, "error.invalid_client", "client_id is unknown");
        return;
    }
    core_pool_cleanup(req->pool, (void (*)(void *))az_client_put, (void *)c);
    struct tn_brief tb;
    if (c->disabled || tn_brief(c->tenant, &tb) != TN_OK || tb.state != TN_ACTIVE) {
        error_page(req, 400, lang, "error.invalid_client", "the client is disabled");
        return;
    }
    const char *ru = param(&p, "redirect_uri");
    if (!ru) {
        error_page(req, 400, lang, "error.invalid_redirect_uri", "redirect_uri is missing");
        return;
    }
    if (!az_redirect_registered(c->redirect_uris, ru)) {
        error_page(req, 400, lang, "error.invalid_redirect_uri",
                   "redirect_uri is not registered for this client");
        return;
    }
    /* 2. from here on errors go back to the client */
    const char *state = param(&p, "state");
    json_t *ar = json_pack("{s:s, s:s}", "c", c->id, "ru", ru);
    core_pool_cleanup(req->pool, (void (*)(void *))json_decref, ar);
    bool state_ok = state && strlen(state) <= STATE_MAX && vschar(state);
    if (state_ok)
        json_object_set_new(ar, "st", json_string(state));
    if (state && !state_ok) {
        redirect_error(req, ar, "invalid_request",
                       "state is too long or holds characters outside VSCHAR");
        return;
    }
    const char *rm = param(&p, "response_mode");
    if (rm && strcmp(rm, "query") != 0) {
        redirect_error(req, ar, "invalid_request", "response_mode: only query is supported");
        return;
    }
    const char *rt = param(&p, "response_type");
    if (!rt) {
        redirect_error(req, ar, "invalid_request", "response_type is missing");
        return;
    }
    if (strcmp(rt, "code") != 0) {
        redirect_error(req, ar, "unsupported_response_type",
                       "this server supports response_type code only");
        return;
    }
    if (!az_client_has_grant(c, "authorization_code")) {
        redirect_error(req, ar, "unauthorized_client",
                       "this client may not use the authorization code flow");
        return;
    }
    if (param(&p, "request")) {
        redirect_error(req, ar, "request_not_supported", "request objects are not supported");
        return;
    }
    if (param(&p, "request_uri")) {
        redirect_error(req, ar, "request_uri_not_supported", "request_uri is not supported");
        return;
    }
    const char *cc = param(&p, "code_challenge"), *ccm = param(&p, "code_challenge_method");
    if (!cc) {
        redirect_error(req, ar, "invalid_request", "code_challenge is required (PKCE, S256)");
        return;
    }
    if (!ccm || strcmp(ccm, "S256") != 0) {
        redirect_error(req, ar, "invalid_request", "code_challenge_method must be S256");
        return;
    }
    if (strlen(cc) != CHALLENGE_LEN ||
        strspn(cc, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
            CHALLENGE_LEN) {
        redirect_error(req, ar, "invalid_request",
                       "code_challenge must be the base64url SHA-256 of the verifier");
        return;
    }
    json_object_set_new(ar, "cc", json_string(cc));
    const char *why = NULL;
    char *scope = requested_scope(req, c, param(&p, "scope"), &why);
    if (!scope) {
        redirect_error(req, ar, "invalid_scope", why);
        return;
    }
    json_object_set_new(ar, "s", json_string(scope));
    const char *nonce = param(&p, "nonce");
    if (nonce && (strlen(nonce) > NONCE_MAX || !vschar(nonce))) {
        redirect_error(req, ar, "invalid_request",
                       "nonce is too long or holds characters outside VSCHAR");
        return;
    }
    if (nonce)
        json_object_set_new(ar, "n", json_string(nonce));
    const char *prompt = param(&p, "prompt");
    bool p_none = false, p_login = false, p_consent = false;
    for (const char *q = prompt; q && *q;) {
        while (*q == ' ')
            q++;
        size_t n = strcspn(q, " ");
        if (n == 4 && strncmp(q, "none", 4) == 0)
            p_none = true;
        else if (n == 5 && strncmp(q, "login", 5) == 0)
            p_login = true;
        else if (n == 7 && strncmp(q, "consent", 7) == 0)
            p_consent = true;
        else if (n) {
            redirect_error(req, ar, "invalid_request",
                           "prompt may hold none, login and consent only");
            return;
        }
        q += n;
    }
    if (p_none && (p_login || p_consent)) {
        redirect_error(req, ar, "invalid_request", "prompt none goes alone");
        return;
    }
    json_object_set_new(
        ar, "p",
        json_pack("{s:b, s:b, s:b}", "none", p_none, "login", p_login, "consent", p_consent));
    const char *ma = param(&p, "max_age");
    long max_age = -1;
    if (ma && !core_parse_long(ma, 0, 100L * 365 * 86400, &max_age)) {
        redirect_error(req, ar, "invalid_request", "max_age must be a number of seconds");
        return;
    }
    json_object_set_new(ar, "ma", json_integer(max_age));
    const char *hint = param(&p, "login_hint");
    if (hint && strlen(hint) <= HINT_MAX && vschar(hint))
        json_object_set_new(ar, "lh", json_string(hint));
    if (ul && strlen(ul) <= LOCALES_MAX && vschar(ul))
        json_object_set_new(ar, "ul", json_string(ul));
    const char *resource = param(&p, "resource");
    if (resource && strcmp(resource, core_cfg.issuer) != 0) {
        if (!az_client_audience_ok(c, resource)) {
            redirect_error(req, ar, "invalid_target",
                           "this client may not request tokens for that resource");
            return;
        }
        json_object_set_new(ar, "rs", json_string(resource));
    }
    /* 3. who is here */
    struct az_session s;
    enum az_session_rc src = az_session_get(req, &s);
    if (src == AZ_SESSION_UNAVAILABLE) {
        error_page(req, 503, lang, "error.unavailable", NULL);
        return;
    }
    proceed(req, ar, src == AZ_SESSION_OK ? &s : NULL, false);
}

/* Sends the browser to a page of the flow with the sealed request. */
static void to_page(struct core_req *req, const char *path, json_t *ar)
{
    json_t *copy = json_deep_copy(ar);
    char *sealed = az_authreq_seal(copy);
    json_decref(copy);
    if (strlen(sealed) > AZ_AUTHREQ_MAX) {
        /* it could not come back through the pages */
        free(sealed);
        redirect_error(req, ar, "invalid_request",
                       "the authorization request is too large (state, nonce, URIs)");
        return;
    }
    struct strbuf b;
    strbuf_init(&b, 16 * 1024);
    strbuf_adds(&b, path);
    strbuf_adds(&b, "?r=");
    strbuf_adds(&b, sealed);
    free(sealed);
    char *loc = strbuf_detach(&b, NULL);
    core_pool_cleanup(req->pool, free, loc);
    see_other(req, loc);
}

/* False when the request asked for a sign-in (prompt=login, max_age) that
 * this session predates: its pages then go back to the sign-in. */
static bool fresh_enough(json_t *ar, const struct az_session *s)
{
    json_t *fa = json_object_get(ar, "fa");
    return !json_is_integer(fa) || s->auth_time >= json_integer_value(fa);
}

/* Issues the code for scope and sends the browser back to the client. */
static void finish(struct core_req *req, json_t *ar, const struct az_session *s, const char *grant,
                   const char *scope)
{
    if (!fresh_enough(ar, s)) {
        to_page(req, "/login", ar);
        return;
    }
    struct az_code_spec spec = {.client_id = jstr(ar, "c"),
                                .grant = grant,
                                .resident = s->resident,
                                .sid = s->sid,
                                .redirect_uri = jstr(ar, "ru"),
                                .scope = scope,
                                .nonce = jstr(ar, "n"),
                                .code_challenge = jstr(ar, "cc"),
                                .resource = jstr(ar, "rs"),
                                .auth_time = s->auth_time,
                                .amr = s->amr,
                                .acr = s->acr};
    char code[64];
    if (!az_code_issue(&spec, code)) {
        redirect_error(req, ar, "temporarily_unavailable", "the database is not available");
        return;
    }
    const char *kv[] = {"code", code, "state", jstr(ar, "st")};
    redirect_with(req, jstr(ar, "ru"), kv, ARRAY_SIZE(kv));
    OPENSSL_cleanse(code, sizeof code);
}

/* Where the flow stands: sign-in, consent, or the code. fresh: the
 * resident has just signed in for this request. */
static void proceed(struct core_req *req, json_t *ar, const struct az_session *s, bool fresh)
{
    json_t *pr = json_object_get(ar, "p");
    bool p_none = json_is_true(json_object_get(pr, "none"));
    bool p_login = json_is_true(json_object_get(pr, "login"));
    bool p_consent = json_is_true(json_object_get(pr, "consent"));
    json_int_t max_age = json_integer_value(json_object_get(ar, "ma"));
    if (!json_is_integer(json_object_get(ar, "ma")))
        max_age = -1;
    bool need_login = !s;
    if (s && !fresh) {
        /* max_age=0 asks for a fresh sign-in, as prompt=login does */
        need_login = p_login || max_age == 0 ||
                     (max_age > 0 && (json_int_t)time(NULL) - s->auth_time > max_age);
    }
    if (need_login) {
        if (p_none) {
            redirect_error(req, ar, "login_required", "the resident is not signed in");
            return;
        }
        /* the sign-in must happen from now on: the consent page (and the
         * code) refuse a session older than this */
        if (s)
            json_object_set_new(ar, "fa", json_integer((json_int_t)time(NULL)));
        to_page(req, "/login", ar);
        return;
    }
    char grant[65], granted[AZ_SCOPE_MAX + 1];
    enum az_rc rc = az_grant_find(s->resident, jstr(ar, "c"), grant, granted);
    if (rc != AZ_OK) {
        redirect_error(req, ar, "temporarily_unavailable", "the database is not available");
        return;
    }
    const char *scope = jstr(ar, "s");
    bool covered = grant[0] != '\0';
    for (const char *q = scope; covered && *q;) {
        while (*q == ' ')
            q++;
        size_t n = strcspn(q, " ");
        covered = !n || az_scope_in(granted, q, n);
        q += n;
    }
    if (p_consent || !covered) {
        if (p_none) {
            redirect_error(req, ar, "consent_required", "the resident has not consented");
            return;
        }
        to_page(req, "/consent", ar);
        return;
    }
    finish(req, ar, s, grant, scope);
}

/* The sealed request of a page (r), or NULL after the error page. */
static json_t *open_request(struct core_req *req, const char *r, enum az_lang lang)
{
    bool expired = false;
    json_t *ar = r ? az_authreq_open(r, &expired) : NULL;
    if (!ar) {
        error_page(req, 400, lang, expired ? "error.expired" : "error.invalid_request",
                   expired ? NULL : "the sign-in request was altered or is not this hub's");
        return NULL;
    }
    core_pool_cleanup(req->pool, (void (*)(void *))json_decref, ar);
    return ar;
}

/* The app of a request, for the pages (shared: put it back). */
static const struct az_client *request_client(struct core_req *req, json_t *ar, enum az_lang lang)
{
    enum az_rc rc;
    const struct az_client *c = az_client_get(jstr(ar, "c"), &rc);
    if (!c || c->disabled) {
        if (c)
            az_client_put(c);
        if (rc == AZ_UNAVAILABLE)
            error_page(req, 503, lang, "error.unavailable", NULL);
        else
            error_page(req, 400, lang, "error.invalid_client", "the client is disabled");
        return NULL;
    }
    core_pool_cleanup(req->pool, (void (*)(void *))az_client_put, (void *)c);
    return c;
}

/* ---- sign-in ---- */

/* Where a console sends the browser to sign in (/login?next=/audit...): a
 * path of the consoles only, so the sign-in page is no open redirector. */
static const char *console_next(const char *next)
{
    if (!next || strlen(next) > 1000)
        return NULL;
    bool audit = strncmp(next, "/audit", 6) == 0, admin = strncmp(next, "/admin", 6) == 0;
    if (!audit && !admin)
        return NULL;
    char after = next[6];
    if (after != '\0' && after != '/' && after != '?')
        return NULL;
    if ((admin && strncmp(next, "/admin/v1", 9) == 0) ||
        (audit && strncmp(next, "/audit/v1", 9) == 0))
        return NULL; /* the APIs are not pages */
    for (const unsigned char *c = (const unsigned char *)next; *c; c++)
        if (*c <= 0x20 || *c >= 0x7f || *c == '\\')
            return NULL;
    /* no empty or dot segments, nor escapes in the path (%2e%2e is a dot
     * segment to a browser): it would resolve them elsewhere */
    size_t path_len = strcspn(next, "?");
    if (memchr(next, '%', path_len))
        return NULL;
    for (size_t i = 0; i + 1 < path_len; i++)
        if (next[i] == '/' && (next[i + 1] == '/' || next[i + 1] == '.'))
            return NULL;
    return next;
}

static void login_page(struct core_req *req, unsigned status, enum az_lang lang, const char *r,
                       const char *next, json_t *ar, const char *login, const char *error,
                       int minutes)
{
    json_t *vars = json_pack("{s:s, s:s}", "action", "/login", "csrf", az_csrf_token(req));
    if (r)
        json_object_set_new(vars, "r", json_string(r));
    else if (next)
        json_object_set_new(vars, "next", json_string(next));
    if (login)
        json_object_set_new(vars, "login", json_string(login));
    if (error) {
        json_object_set_new(vars, "error", json_string(error));
        json_object_set_new(vars, "minutes", json_integer(minutes));
    }
    if (ar) {
        const struct az_client *c = request_client(req, ar, lang);
        if (!c) {
            json_decref(vars);
            return;
        }
        json_object_set_new(vars, "client_name", json_string(c->name));
        json_object_set_new(vars, "tenant_name", json_string(tenant_name(req, c->tenant)));
    }
    az_page_reply(req, status, "login", lang, vars);
}

static void az_handler_login_get(struct core_req *req)
{
    const char *r = core_req_query(req, "r");
    const char *next = console_next(core_req_query(req, "next"));
    enum az_lang lang = request_lang(req, NULL);
    json_t *ar = NULL;
    if (r) {
        if (!(ar = open_request(req, r, lang)))
            return;
        lang = request_lang(req, ar);
    } else {
        struct az_session s;
        if (az_session_get(req, &s) == AZ_SESSION_OK) {
            see_other(req, next ? next : "/account");
            return;
        }
    }
    login_page(req, 200, lang, r, next, ar, ar ? jstr(ar, "lh") : NULL, NULL, 0);
}

static void az_handler_login_post(struct core_req *req)
{
    struct page_form f;
    enum az_lang lang = request_lang(req, NULL);
    if (!page_form_parse(req, &f)) {
        error_page(req, 400, lang, "error.invalid_request", "the form could not be read");
        return;
    }
    size_t n;
    const char *r = page_form_get(&f, "r", &n);
    json_t *ar = NULL;
    if (r && *r) {
        if (n > 1 || !(ar = open_request(req, r, lang))) {
            if (n > 1)
                error_page(req, 400, lang, "error.invalid_request", "r is repeated");
            return;
        }
        lang = request_lang(req, ar);
    } else {
        r = NULL;
    }
    const char *next = r ? NULL : console_next(page_form_get(&f, "next", NULL));
    if (!az_csrf_ok(req, page_form_get(&f, "csrf", NULL))) {
        error_page(req, 403, lang, "error.csrf", NULL);
        return;
    }
    const char *login = page_form_get(&f, "login", NULL);
    const char *password = page_form_get(&f, "password", NULL);
    if (!login || !*login || !password || !*password) {
        login_page(req, 400, lang, r, next, ar, login, "signin.empty", 0);
        return;
    }
    struct az_resident who;
    int retry = 0;
    enum az_signin_rc rc =
        az_resident_signin(login, password, strlen(password), core_req_peer(req), &who, &retry);
    switch (rc) {
    case AZ_SIGNIN_OK:
        break;
    case AZ_SIGNIN_BAD:
        login_page(req, 401, lang, r, next, ar, login, "signin.bad", 0);
        return;
    case AZ_SIGNIN_DISABLED:
        login_page(req, 403, lang, r, next, ar, login, "signin.disabled", 0);
        return;
    case AZ_SIGNIN_THROTTLED: {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry);
        core_reply_header(req, "Retry-After", ra);
        login_page(req, 429, lang, r, next, ar, login, "signin.throttled", (retry + 59) / 60);
        return;
    }
    default:
        error_page(req, 503, lang, "error.unavailable", NULL);
        return;
    }
    struct az_session s;
    if (!az_session_start(req, who.id, &s)) {
        error_page(req, 503, lang, "error.unavailable", NULL);
        return;
    }
    OPENSSL_cleanse(&who, sizeof who);
    if (!ar) {
        see_other(req, next ? next : "/account");
        return;
    }
    proceed(req, ar, &s, true);
}

/* ---- consent ---- */

static json_t *scope_items(enum az_lang lang, const char *scope, const char *checked)
{
    json_t *items = json_array();
    for (const char *q = scope; *q;) {
        while (*q == ' ')
            q++;
        size_t n = strcspn(q, " ");
        if (!n)
            break;
        char name[65];
        xsnprintf(name, sizeof name, "%.*s", (int)(n < 64 ? n : 64), q);
        char key[100];
        snprintf(key, sizeof key, "scope.%s.title", name);
        const char *title = az_page_text(lang, key);
        snprintf(key, sizeof key, "scope.%s.desc", name);
        const char *desc = az_page_text(lang, key);
        if (!title && strncmp(name, "exchange.", 9) == 0) {
            /* a data-sharing agreement's consent scope */
            title = az_page_text(lang, "scope.exchange.title");
            desc = az_page_text(lang, "scope.exchange.desc");
        }
        if (!title) /* a scope the catalogue does not explain: say so, by name */
            desc = az_page_text(lang, "scope.unknown.desc");
        bool required = strcmp(name, "openid") == 0;
        json_array_append_new(items,
                              json_pack("{s:s, s:s, s:s, s:b, s:b}", "scope", name, "title",
                                        title ? title : name, "desc", desc ? desc : "", "checked",
                                        required || !checked || az_scope_in(checked, q, n),
                                        "required", required));
        q += n;
    }
    return items;
}

/* The consent page's session (signed in recently enough for the request)
 * and app; NULL once the browser is sent to sign in or an error page is
 * queued. */
static const struct az_client *consent_context(struct core_req *req, json_t *ar, enum az_lang lang,
                                               struct az_session *s)
{
    enum az_session_rc src = az_session_get(req, s);
    if (src == AZ_SESSION_UNAVAILABLE) {
        error_page(req, 503, lang, "error.unavailable", NULL);
        return NULL;
    }
    if (src != AZ_SESSION_OK || !fresh_enough(ar, s)) {
        to_page(req, "/login", ar);
        return NULL;
    }
    return request_client(req, ar, lang);
}

static void az_handler_consent_get(struct core_req *req)
{
    enum az_lang lang = request_lang(req, NULL);
    const char *r = core_req_query(req, "r");
    json_t *ar = open_request(req, r, lang);
    if (!ar)
        return;
    lang = request_lang(req, ar);
    struct az_session s;
    const struct az_client *c = consent_context(req, ar, lang, &s);
    if (!c)
        return;
    json_t *vars =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "action", "/consent", "csrf",
                  az_csrf_token(req), "r", r, "client_name", c->name, "tenant_name",
                  tenant_name(req, c->tenant), "scopes", scope_items(lang, jstr(ar, "s"), NULL));
    az_page_reply(req, 200, "consent", lang, vars);
}

static void az_handler_consent_post(struct core_req *req)
{
    struct page_form f;
    enum az_lang lang = request_lang(req, NULL);
    if (!page_form_parse(req, &f)) {
        error_page(req, 400, lang, "error.invalid_request", "the form could not be read");
        return;
    }
    size_t n;
    const char *r = page_form_get(&f, "r", &n);
    if (n != 1) {
        error_page(req, 400, lang, "error.invalid_request", "r is missing or repeated");
        return;
    }
    json_t *ar = open_request(req, r, lang);
    if (!ar)
        return;
    lang = request_lang(req, ar);
    if (!az_csrf_ok(req, page_form_get(&f, "csrf", NULL))) {
        error_page(req, 403, lang, "error.csrf", NULL);
        return;
    }
    struct az_session s;
    const struct az_client *c = consent_context(req, ar, lang, &s);
    if (!c)
        return;
    const char *decision = page_form_get(&f, "decision", NULL);
    if (!decision || strcmp(decision, "allow") != 0) {
        redirect_error(req, ar, "access_denied", "the resident did not allow the request");
        return;
    }
    /* what the resident ticked, among what was asked; openid cannot be
     * unticked when asked */
    const char *requested = jstr(ar, "s");
    struct strbuf chosen;
    strbuf_init(&chosen, AZ_SCOPE_MAX + 1);
    strbuf_adds(&chosen, "");
    for (const char *q = requested; *q;) {
        while (*q == ' ')
            q++;
        size_t len = strcspn(q, " ");
        if (!len)
            break;
        bool ticked = len == 6 && strncmp(q, "openid", 6) == 0;
        for (size_t i = 0; i < f.n && !ticked; i++)
            ticked = strcmp(f.keys[i], "scope") == 0 && strlen(f.values[i]) == len &&
                     strncmp(f.values[i], q, len) == 0;
        if (ticked) {
            if (chosen.len)
                strbuf_add(&chosen, " ", 1);
            strbuf_add(&chosen, q, len);
        }
        q += len;
    }
    char *scope = strbuf_detach(&chosen, NULL);
    core_pool_cleanup(req->pool, free, scope);
    if (!*scope) {
        redirect_error(req, ar, "access_denied", "the resident allowed none of the scopes");
        return;
    }
    /* the consent kept: what was granted before and not asked now, plus
     * what was ticked now */
    char grant[65], before[AZ_SCOPE_MAX + 1];
    if (az_grant_find(s.resident, c->id, grant, before) != AZ_OK) {
        error_page(req, 503, lang, "error.unavailable", NULL);
        return;
    }
    struct strbuf keep;
    strbuf_init(&keep, 2 * AZ_SCOPE_MAX + 2);
    strbuf_adds(&keep, scope);
    for (const char *q = before; *q;) {
        while (*q == ' ')
            q++;
        size_t len = strcspn(q, " ");
        if (len && !az_scope_in(requested, q, len)) {
            strbuf_add(&keep, " ", 1);
            strbuf_add(&keep, q, len);
        }
        q += len;
    }
    char *consent = strbuf_detach(&keep, NULL);
    enum az_rc rc = az_grant_consent(s.resident, c, consent, 0, grant);
    free(consent);
    if (rc != AZ_OK) {
        error_page(req, 503, lang, "error.unavailable", NULL);
        return;
    }
    finish(req, ar, &s, grant, scope);
}

/* ---- the account page ---- */

/* "2026-11-26T04:05:06Z" as Japan's local time for the page. */
static const char *local_time(struct core_req *req, const char *iso, enum az_lang lang)
{
    int y, mo, d, h, mi;
    if (!iso || strlen(iso) < 16 || !core_parse_digits(iso, 4, &y) ||
        !core_parse_digits(iso + 5, 2, &mo) || !core_parse_digits(iso + 8, 2, &d) ||
        !core_parse_digits(iso + 11, 2, &h) || !core_parse_digits(iso + 14, 2, &mi))
        return iso ? iso : "";
    long long days = core_days_from_civil(y, mo, d);
    long long minutes = (days * 24 + h + 9) * 60 + mi; /* JST, UTC+9, no daylight saving */
    long long day = minutes / (24 * 60);
    int hh = (int)(minutes / 60 % 24), mm = (int)(minutes % 60);
    /* back from days to a civil date (H. Hinnant's algorithm) */
    long long z = day + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097, yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long yy = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153, dd = doy - (153 * mp + 2) / 5 + 1;
    long long mm2 = mp < 10 ? mp + 3 : mp - 9;
    yy += mm2 <= 2;
    if (lang == AZ_LANG_JA)
        return core_psprintf(req->pool, "%lld年%lld月%lld日 %02d:%02d", yy, mm2, dd, hh, mm);
    return core_psprintf(req->pool, "%04lld-%02lld-%02lld %02d:%02d JST", yy, mm2, dd, hh, mm);
}

static void az_handler_account(struct core_req *req)
{
    enum az_lang lang = request_lang(req, NULL);
    struct az_session s;
    enum az_session_rc src = az_session_get(req, &s);
    if (src == AZ_SESSION_UNAVAILABLE) {
        error_page(req, 503, lang, "error.unavailable", NULL);
        return;
    }
    if (src != AZ_SESSION_OK) {
        see_other(req, "/login");
        return;
    }
    struct az_resident who;
    struct az_result res;
    if (az_resident_by_id(s.resident, &who, &res) != AZ_OK) {
        error_page(req, 503, lang, "error.unavailable", NULL);
        return;
    }
    json_t *grants = az_grant_list(s.resident);
    long after = -1;
    const char *cursor = core_req_query(req, "after");
    if (cursor && !core_parse_long(cursor, 0, 1L << 62, &after))
        after = -1;
    char ref[44];
    au_resident_ref(s.resident, ref);
    bool more = false;
    json_t *access = au_access_log(ref, after, ACCESS_ON_PAGE, &more);
    if (!grants || !access) {
        json_decref(grants);
        json_decref(access);
        error_page(req, 503, lang, "error.unavailable", NULL);
        return;
    }
    json_t *apps = json_array();
    size_t i;
    json_t *g;
    json_array_foreach(grants, i, g)
    {
        json_t *titles = json_array();
        size_t k;
        json_t *sc;
        json_array_foreach(json_object_get(g, "scopes"), k, sc)
        {
            const char *name = jstr(sc, "scope");
            char key[100];
            snprintf(key, sizeof key, "scope.%s.title", name);
            const char *t = az_page_text(lang, key);
            if (!t && name && strncmp(name, "exchange.", 9) == 0)
                t = az_page_text(lang, "scope.exchange.title"); /* as the consent page said */
            json_array_append_new(titles,
                                  json_pack("{s:s, s:s}", "scope", name, "title", t ? t : name));
        }
        json_array_append_new(
            apps,
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "grant_id", jstr(g, "grant_id"),
                      "client_id", jstr(g, "client_id"), "client_name", jstr(g, "client_name"),
                      "tenant_name", jstr(g, "tenant_name"), "granted_at",
                      local_time(req, jstr(g, "created_at"), lang), "scopes", titles));
    }
    json_t *rows = json_array();
    json_t *towns = json_object(); /* the page names few towns: each looked up once */
    json_t *a;
    long long last = -1;
    json_array_foreach(access, i, a)
    {
        const char *t = jstr(a, "time");
        const char *d = jstr(a, "decision");
        const char *dt = d && strcmp(d, "permit") == 0
                             ? az_page_text(lang, "account.decision.permit")
                         : d && strcmp(d, "deny") == 0 ? az_page_text(lang, "account.decision.deny")
                                                       : d;
        /* towns and apps by the names the resident knows them by */
        json_array_append_new(rows, json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:s?}", "time",
                                              local_time(req, t, lang), "consumer",
                                              town_named(req, towns, jstr(a, "town")), "client",
                                              client_name(req, jstr(a, "service")), "provider",
                                              town_named(req, towns, jstr(a, "provider")),
                                              "purpose", jstr(a, "purpose"), "decision", dt));
        last = json_integer_value(json_object_get(a, "seq"));
    }
    json_t *vars =
        json_pack("{s:s, s:s, s:s, s:o, s:b, s:o, s:b}", "csrf", az_csrf_token(req), "name",
                  who.name, "login", who.login, "apps", apps, "no_apps", json_array_size(apps) == 0,
                  "access", rows, "no_access", json_array_size(rows) == 0);
    if (more)
        json_object_set_new(vars, "access_more_url", json_sprintf("/account?after=%lld", last));
    const char *notice = core_req_query(req, "notice");
    if (notice && strcmp(notice, "revoked") == 0)
        json_object_set_new(vars, "notice", json_string("account.revoked"));
    json_decref(towns);
    json_decref(grants);
    json_decref(access);
    az_page_reply(req, 200, "account", lang, vars);
}

static void az_handler_account_revoke(struct core_req *req)
{
    enum az_lang lang = request_lang(req, NULL);
    struct page_form f;
    if (!page_form_parse(req, &f)) {
        error_page(req, 400, lang, "error.invalid_request", "the form could not be read");
        return;
    }
    if (!az_csrf_ok(req, page_form_get(&f, "csrf", NULL))) {
        error_page(req, 403, lang, "error.csrf", NULL);
        return;
    }
    struct az_session s;
    enum az_session_rc src = az_session_get(req, &s);
    if (src == AZ_SESSION_UNAVAILABLE) {
        error_page(req, 503, lang, "error.unavailable", NULL);
        return;
    }
    if (src != AZ_SESSION_OK) {
        see_other(req, "/login");
        return;
    }
    const char *grant = page_form_get(&f, "grant_id", NULL);
    if (!grant) {
        error_page(req, 400, lang, "error.invalid_request", "grant_id is missing");
        return;
    }
    enum az_rc rc = az_grant_revoke(s.resident, grant, "resident");
    if (rc == AZ_NOT_FOUND) {
        error_page(req, 404, lang, "error.not_found", NULL);
        return;
    }
    if (rc != AZ_OK) {
        error_page(req, 503, lang, "error.unavailable", NULL);
        return;
    }
    see_other(req, "/account?notice=revoked");
}

/* ---- RP-initiated logout ---- */

/* The client named by client_id or the hint's aud, and whether uri is one
 * of its registered post-logout URIs (RP-Initiated Logout §3: exactly). */
static bool logout_uri_ok(const char *client_id, const char *uri)
{
    if (!client_id)
        return false;
    enum az_rc rc;
    const struct az_client *c = az_client_get(client_id, &rc);
    if (!c)
        return false;
    bool ok = false;
    size_t i;
    json_t *v;
    json_array_foreach(c->post_logout_redirect_uris, i, v)
    {
        ok = ok || strcmp(json_string_value(v), uri) == 0;
    }
    az_client_put(c);
    return ok;
}

struct logout_in {
    const char *hint, *client_id, *uri, *state, *csrf, *decision;
};

static void logout(struct core_req *req, const struct logout_in *in, bool confirmed)
{
    enum az_lang lang = request_lang(req, NULL);
    const char *client_id = in->client_id;
    json_t *hint = NULL;
    if (in->hint && *in->hint) {
        hint = az_id_token_hint(in->hint);
        if (!hint) {
            error_page(req, 400, lang, "error.invalid_request",
                       "id_token_hint is not an ID token this hub issued");
            return;
        }
        core_pool_cleanup(req->pool, (void (*)(void *))json_decref, hint);
        const char *aud = jstr(hint, "aud");
        if (client_id && strcmp(client_id, aud) != 0) {
            error_page(req, 400, lang, "error.invalid_request",
                       "client_id differs from the ID token's audience");
            return;
        }
        client_id = aud;
    }
    if (in->uri && !logout_uri_ok(client_id, in->uri)) {
        error_page(req, 400, lang, "error.invalid_redirect_uri",
                   "post_logout_redirect_uri is not registered for the client");
        return;
    }
    struct az_session s;
    enum az_session_rc src = az_session_get(req, &s);
    if (src == AZ_SESSION_UNAVAILABLE) {
        error_page(req, 503, lang, "error.unavailable", NULL);
        return;
    }
    /* without proof that the request comes from the session's own app (an
     * ID token of this session) or from our own form, ask first */
    bool from_app =
        hint && src == AZ_SESSION_OK && jstr(hint, "sid") && strcmp(jstr(hint, "sid"), s.sid) == 0;
    if (src == AZ_SESSION_OK && !from_app && !confirmed) {
        json_t *vars = json_pack("{s:s, s:s}", "action", "/logout", "csrf", az_csrf_token(req));
        if (in->uri)
            json_object_set_new(vars, "post_logout_redirect_uri", json_string(in->uri));
        if (in->state)
            json_object_set_new(vars, "state", json_string(in->state));
        if (client_id)
            json_object_set_new(vars, "client_id", json_string(client_id));
        az_page_reply(req, 200, "logout", lang, vars);
        return;
    }
    if (in->decision && strcmp(in->decision, "cancel") == 0) {
        see_other(req, "/account");
        return;
    }
    if (src == AZ_SESSION_OK && !az_session_end(req)) {
        error_page(req, 503, lang, "error.unavailable", NULL);
        return;
    }
    if (in->uri) {
        const char *kv[] = {"state", in->state};
        /* no iss here: this is not an authorization response */
        struct strbuf b;
        strbuf_init(&b, 16 * 1024);
        strbuf_adds(&b, in->uri);
        if (kv[1]) {
            strbuf_adds(&b, strchr(in->uri, '?') ? "&state=" : "?state=");
            core_url_encode(&b, kv[1]);
        }
        if (b.toobig) {
            strbuf_release(&b);
            az_page_reply(req, 200, "logged_out", lang, json_object());
            return;
        }
        char *loc = strbuf_detach(&b, NULL);
        core_pool_cleanup(req->pool, free, loc);
        see_other(req, loc);
        return;
    }
    az_page_reply(req, 200, "logged_out", lang, json_object());
}

static void az_handler_logout_get(struct core_req *req)
{
    if (core_req_query_repeated(req)) {
        error_page(req, 400, request_lang(req, NULL), "error.invalid_request",
                   "a parameter is repeated");
        return;
    }
    struct logout_in in = {.hint = core_req_query(req, "id_token_hint"),
                           .client_id = core_req_query(req, "client_id"),
                           .uri = core_req_query(req, "post_logout_redirect_uri"),
                           .state = core_req_query(req, "state")};
    if (in.state && (strlen(in.state) > STATE_MAX || !vschar(in.state)))
        in.state = NULL;
    logout(req, &in, false);
}

static void az_handler_logout_post(struct core_req *req)
{
    enum az_lang lang = request_lang(req, NULL);
    struct page_form f;
    if (!page_form_parse(req, &f)) {
        error_page(req, 400, lang, "error.invalid_request", "the form could not be read");
        return;
    }
    struct logout_in in = {.hint = page_form_get(&f, "id_token_hint", NULL),
                           .client_id = page_form_get(&f, "client_id", NULL),
                           .uri = page_form_get(&f, "post_logout_redirect_uri", NULL),
                           .state = page_form_get(&f, "state", NULL),
                           .decision = page_form_get(&f, "decision", NULL)};
    if (in.client_id && !*in.client_id)
        in.client_id = NULL;
    if (in.uri && !*in.uri)
        in.uri = NULL;
    if (in.state && (!*in.state || strlen(in.state) > STATE_MAX || !vschar(in.state)))
        in.state = NULL;
    /* our own form (account page, confirmation) proves itself with the
     * CSRF token; an app's POST proves itself with its ID token hint */
    bool confirmed = az_csrf_ok(req, page_form_get(&f, "csrf", NULL));
    if (!confirmed && page_form_get(&f, "csrf", NULL)) {
        error_page(req, 403, lang, "error.csrf", NULL);
        return;
    }
    logout(req, &in, confirmed);
}

static const struct core_route routes[] = {
    {CORE_GET, "/oauth2/authorize", az_handler_authorize,
     "Authorization endpoint: code flow with PKCE S256 (OIDC)", "authz", 0},
    {CORE_POST, "/oauth2/authorize", az_handler_authorize, "Authorization endpoint (form POST)",
     "authz", PAGE_BODY_MAX},
    {CORE_GET, "/login", az_handler_login_get, "Sign-in page (HTML)", "authz", 0},
    {CORE_POST, "/login", az_handler_login_post, "Sign-in form", "authz", PAGE_BODY_MAX},
    {CORE_GET, "/consent", az_handler_consent_get, "Consent page (HTML)", "authz", 0},
    {CORE_POST, "/consent", az_handler_consent_post, "Consent form", "authz", PAGE_BODY_MAX},
    {CORE_GET, "/account", az_handler_account,
     "The resident's account page: apps with consent, access history (HTML)", "authz", 0},
    {CORE_POST, "/account/revoke", az_handler_account_revoke, "Revoke an app's consent (form)",
     "authz", PAGE_BODY_MAX},
    {CORE_GET, "/logout", az_handler_logout_get, "RP-initiated logout (OIDC)", "authz", 0},
    {CORE_POST, "/logout", az_handler_logout_post, "Sign out (form, or RP-initiated POST)", "authz",
     PAGE_BODY_MAX},
};

void az_pages_routes(struct core_router *r)
{
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
