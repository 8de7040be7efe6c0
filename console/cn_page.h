#ifndef CN_PAGE_H
#define CN_PAGE_H

/*
 * What every console page shares: signing the request in, the page's
 * language and vars, rendering with the security headers, forms.
 */
#include <jansson.h>

#include "authz/az_form.h"
#include "authz/az_page.h"
#include "authz/az_staff.h"
#include "core/http.h"

/* The files of console/pages compiled into the binary. */
extern const struct az_page_file cn_page_files[];
extern const size_t cn_page_files_count;

#define CN_PAGE_BODY_MAX (64 * 1024) /* a console form */

struct cn_ctx {
    struct az_staff staff;
    enum az_lang lang;
    bool platform;       /* platform_admin: acts for every town */
    const char *context; /* the database context: CORE_DB_PLATFORM or the home town */
    const char *actor;   /* "staff:<login>", for audit events */
};

/* Signs the request in for a page needing any of the roles in need_any
 * (enum az_role bits). False once the reply is queued: a GET without a
 * session goes to /login?next=<this page>; other requests without one, or
 * an account without the role, get the 401/403 page; 503 when the
 * database is down. */
bool cn_begin(struct core_req *req, unsigned need_any, struct cn_ctx *ctx);

/* The vars every page's layout uses (new object): the person's name, login
 * and town, the navigation (which console is current: section), the CSRF
 * token, the language switch, and the URL of each stylesheet and script of
 * console/pages as css_<name> / js_<name> ("css_console", "js_audit"),
 * versioned by content. */
json_t *cn_vars(struct core_req *req, const struct cn_ctx *ctx, const char *section);

/* Renders console page (a template of console/pages) with vars (reference
 * stolen) and replies with status and the consoles' security headers. */
void cn_reply(struct core_req *req, unsigned status, const char *page, enum az_lang lang,
              json_t *vars);

/* The error page: message_key a catalogue key; detail (may be NULL) shown
 * as is (escaped). ctx may be NULL (before sign-in). */
void cn_error(struct core_req *req, const struct cn_ctx *ctx, unsigned status,
              const char *message_key, const char *detail);

/* The catalogue's text for key (NULL when none), and with {placeholders}
 * filled from vars (malloc'd). */
const char *cn_text(enum az_lang lang, const char *key);
char *cn_format(enum az_lang lang, const char *key, json_t *vars);

/* A console form (POST, application/x-www-form-urlencoded, no repeated
 * names) with a valid CSRF token from the same origin. False once the
 * error page is queued (400 or 403). */
bool cn_form(struct core_req *req, const struct cn_ctx *ctx, struct az_form *f);

/* 303 See Other to location (a path of the site). */
void cn_see_other(struct core_req *req, const char *location);

/* Checks the compiled-in console pages (as az_page_check does). */
bool cn_page_check(char **why);

#endif
