/* What every console page shares: sign-in, vars, rendering, forms, the
 * consoles' stylesheet and scripts. */
#include <pthread.h>
#include <stdlib.h>
#include <strings.h>

#include "console/cn_internal.h"
#include "console/cn_page.h"
#include "core/db.h"
#include "core/log.h"
#include "core/router.h"
#include "core/strbuf.h"
#include "core/url.h"

#define CN_PAGE_MAX (4 * 1024 * 1024)

/* Every template a handler renders (cn_page_check finds them all). */
static const char *const page_names[] = {"error"};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct az_tpl_set *set;

/* A static file's URL carries a hash of its content: cached for a day and
 * still new with every binary that changes it. */
struct asset {
    const struct az_page_file *file;
    const char *type;
    char href[96];
};
static struct asset assets[16];
static size_t nassets;

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Each console keeps its own catalogue (messages.json, messages-audit.json,
 * messages-admin.json ...); they make one, and a key in two is a bug. */
static void add_catalogue(json_t *messages, const struct az_page_file *f)
{
    json_error_t err;
    json_t *part = json_loadb(f->data, f->len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(part)) {
        core_log_bug("console/pages/%s, line %d: %s", f->name, err.line,
                     part ? "not an object" : err.text);
        json_decref(part);
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(part, key, v)
    {
        if (json_object_get(messages, key))
            core_log_bug("console/pages/%s: \"%s\" is in another catalogue too", f->name, key);
        else
            json_object_set(messages, key, v);
    }
    json_decref(part);
}

static void init(void)
{
    json_t *messages = json_object();
    for (size_t i = 0; i < cn_page_files_count; i++) {
        const struct az_page_file *f = &cn_page_files[i];
        if (strncmp(f->name, "messages", 8) == 0 && ends_with(f->name, ".json")) {
            add_catalogue(messages, f);
        } else if ((ends_with(f->name, ".css") || ends_with(f->name, ".js")) &&
                   nassets < ARRAY_SIZE(assets)) {
            struct asset *a = &assets[nassets++];
            a->file = f;
            a->type = ends_with(f->name, ".css") ? "text/css; charset=utf-8"
                                                 : "text/javascript; charset=utf-8";
            xsnprintf(a->href, sizeof a->href, "/static/console/%s?v=%08x", f->name,
                      core_hash_str(f->data));
        }
    }
    set = az_tpl_set_new(messages);
    for (size_t i = 0; i < cn_page_files_count; i++) {
        const struct az_page_file *f = &cn_page_files[i];
        if (!ends_with(f->name, ".html"))
            continue;
        char *name = xstrndup(f->name, strlen(f->name) - strlen(".html"));
        char *why = NULL;
        if (!az_tpl_set_add(set, name, f->data, f->len, &why))
            core_log_bug("console/pages/%s: %s", f->name, why);
        free(why);
        free(name);
    }
}

static void ready(void)
{
    pthread_once(&once, init);
}

static const struct asset *asset_named(const char *name)
{
    ready();
    for (size_t i = 0; i < nassets; i++)
        if (strcmp(assets[i].file->name, name) == 0)
            return &assets[i];
    return NULL;
}

const char *cn_text(enum az_lang lang, const char *key)
{
    ready();
    return az_tpl_text(set, lang, key);
}

char *cn_format(enum az_lang lang, const char *key, json_t *vars)
{
    ready();
    return az_tpl_format(set, lang, key, vars);
}

bool cn_page_check(char **why)
{
    ready();
    return az_tpl_set_check(set, page_names, ARRAY_SIZE(page_names), why);
}

/* ---- replies ---- */

static void security_headers(struct core_req *req)
{
    core_reply_header(req, "Content-Security-Policy",
                      "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                      "connect-src 'self'; form-action 'self'; base-uri 'none'; "
                      "frame-ancestors 'none'");
    core_reply_header(req, "X-Frame-Options", "DENY");
    core_reply_header(req, "Cache-Control", "no-store");
    core_reply_header(req, "Pragma", "no-cache");
    core_reply_header(req, "Referrer-Policy", "no-referrer");
}

static const char plain_500[] =
    "<!DOCTYPE html>\n<html lang=\"ja\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<title>問題が発生しました / Something went wrong</title>\n</head>\n<body>\n<main>\n"
    "<h1>問題が発生しました / Something went wrong</h1>\n"
    "<p>しばらくたってから、もう一度お試しください。 Please try again a little later.</p>\n"
    "</main>\n</body>\n</html>\n";

void cn_reply(struct core_req *req, unsigned status, const char *page, enum az_lang lang,
              json_t *vars)
{
    ready();
    const char *sw = az_page_lang_switch(req, lang);
    if (sw && !json_object_get(vars, "lang_switch"))
        json_object_set_new(vars, "lang_switch", json_string(sw));
    size_t len = 0;
    char *why = NULL;
    char *html = az_tpl_render(set, page, lang, vars, CN_PAGE_MAX, &len, &why);
    json_decref(vars);
    security_headers(req);
    if (!html) {
        core_log_bug("console page %s (%s) cannot be rendered: %s", page, az_lang_tag(lang), why);
        free(why);
        core_reply_bytes(req, 500, "text/html; charset=utf-8", plain_500, strlen(plain_500));
        return;
    }
    core_reply_bytes(req, status, "text/html; charset=utf-8", html, len);
    free(html);
}

json_t *cn_vars(struct core_req *req, const struct cn_ctx *ctx, const char *section)
{
    ready();
    json_t *v = json_object();
    for (size_t i = 0; i < nassets; i++) {
        /* "audit.js" -> var "js_audit", "admin.css" -> "css_admin" */
        const char *name = assets[i].file->name;
        bool js = ends_with(name, ".js");
        char key[64];
        xsnprintf(key, sizeof key, "%s_%.*s", js ? "js" : "css", (int)(strlen(name) - (js ? 3 : 4)),
                  name);
        json_object_set_new(v, key, json_string(assets[i].href));
    }
    json_object_set_new(v, "csrf", json_string(az_csrf_token(req)));
    if (section) {
        json_object_set_new(v, "section", json_string(section));
        char key[64];
        xsnprintf(key, sizeof key, "in_%s", section);
        json_object_set_new(v, key, json_true());
    }
    if (ctx) {
        unsigned r = ctx->staff.roles;
        json_object_set_new(v, "me",
                            json_pack("{s:s, s:s, s:s, s:b}", "name", ctx->staff.name, "login",
                                      ctx->staff.login, "tenant", ctx->staff.tenant, "platform",
                                      ctx->platform));
        json_object_set_new(v, "nav_audit",
                            json_boolean(r & (AZ_ROLE_AUDITOR | AZ_ROLE_PLATFORM_ADMIN)));
        json_object_set_new(v, "nav_admin",
                            json_boolean(r & (AZ_ROLE_TENANT_ADMIN | AZ_ROLE_PLATFORM_ADMIN)));
    }
    return v;
}

void cn_error(struct core_req *req, const struct cn_ctx *ctx, unsigned status,
              const char *message_key, const char *detail)
{
    enum az_lang lang = ctx ? ctx->lang : az_page_lang(req, NULL);
    json_t *v = cn_vars(req, ctx, NULL);
    const char *msg = cn_text(lang, message_key);
    if (!msg) {
        core_log_bug("no console catalogue text for \"%s\"", message_key);
        msg = cn_text(lang, "console.error.internal");
    }
    json_object_set_new(v, "message", json_string(msg ? msg : ""));
    if (detail && *detail) {
        json_t *d = json_string(detail);
        if (d)
            json_object_set_new(v, "detail", d);
    }
    json_object_set_new(v, "status", json_integer(status));
    cn_reply(req, status, "error", lang, v);
}

void cn_see_other(struct core_req *req, const char *location)
{
    core_reply_header(req, "Location", location);
    core_reply_header(req, "Cache-Control", "no-store");
    core_reply_bytes(req, 303, "text/plain; charset=utf-8", "", 0);
}

/* ---- sign-in ---- */

bool cn_begin(struct core_req *req, unsigned need_any, struct cn_ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->lang = az_page_lang(req, NULL);
    enum az_session_rc rc = az_staff_get(req, &ctx->staff);
    if (rc == AZ_SESSION_UNAVAILABLE) {
        core_reply_header(req, "Retry-After", "5");
        cn_error(req, NULL, 503, "console.error.unavailable", NULL);
        return false;
    }
    if (rc != AZ_SESSION_OK) {
        const char *here = az_page_here(req);
        if (strcmp(req->method, "GET") == 0 && here) {
            struct strbuf b;
            strbuf_init(&b, 8192);
            strbuf_adds(&b, "/login?next=");
            core_url_encode(&b, here);
            cn_see_other(req, core_pstrdup(req->pool, b.buf));
            strbuf_release(&b);
        } else {
            cn_error(req, NULL, 401, "console.error.signin", NULL);
        }
        return false;
    }
    if (!(ctx->staff.roles & need_any)) {
        cn_error(req, ctx, 403, "console.error.forbidden", NULL);
        return false;
    }
    ctx->platform = ctx->staff.roles & AZ_ROLE_PLATFORM_ADMIN;
    ctx->context = ctx->platform ? CORE_DB_PLATFORM : ctx->staff.tenant;
    ctx->actor = core_psprintf(req->pool, "staff:%s", ctx->staff.login);
    return true;
}

bool cn_form(struct core_req *req, const struct cn_ctx *ctx, struct az_form *f)
{
    memset(f, 0, sizeof *f);
    const char *ct = core_req_header(req, "Content-Type");
    if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0) {
        cn_error(req, ctx, 400, "console.error.form", "application/x-www-form-urlencoded");
        return false;
    }
    const char *why = az_form_parse(req->body ? req->body : "", req->body_len, req->pool, f);
    if (why) {
        cn_error(req, ctx, 400, "console.error.form", why);
        return false;
    }
    if (!az_csrf_ok(req, az_form_get(f, "csrf"))) {
        cn_error(req, ctx, 403, "console.error.csrf", NULL);
        return false;
    }
    return true;
}

/* ---- the static files ---- */

static void cn_handler_static(struct core_req *req)
{
    const struct asset *a = asset_named(core_req_param(req, "file"));
    if (!a) {
        core_reply_error(req, CORE_ERR_NOT_FOUND, "no such file");
        return;
    }
    core_reply_header(req, "Cache-Control", "public, max-age=86400");
    core_reply_bytes(req, 200, a->type, a->file->data, a->file->len);
}

static const struct core_route routes[] = {
    {CORE_GET, "/static/console/{file}", cn_handler_static, "The consoles' stylesheet and scripts",
     "console", 0},
};

void cn_page_routes(struct core_router *r)
{
    char *why = NULL;
    if (!cn_page_check(&why))
        core_log_bug("the console pages are broken:\n%s", why);
    free(why);
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
