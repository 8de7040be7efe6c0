#ifndef AZ_PAGE_H
#define AZ_PAGE_H

/*
 * The resident pages: HTML rendered on the server from templates compiled
 * into the binary (the .html files of authz/pages), Japanese first, English on request.
 * No JavaScript. Every page goes out with a strict Content-Security-Policy,
 * frame-ancestors 'none', no-store and no referrer.
 */
#include <jansson.h>

#include "core/http.h"

enum az_lang { AZ_LANG_JA, AZ_LANG_EN };

/* The page language: the first supported tag of ui_locales (space-separated
 * BCP 47, may be NULL), else the best of Accept-Language by q, else ja. */
enum az_lang az_page_lang(struct core_req *req, const char *ui_locales);
/* This request's path and query (re-encoded, without a lang parameter),
 * in req->pool; NULL when longer than 2000 bytes. */
const char *az_page_here(struct core_req *req);
/* The link that switches the page to the other language and comes back to
 * this GET request's path and query (in req->pool); NULL for a POST or a
 * path too long. az_page_reply adds it as var lang_switch. */
const char *az_page_lang_switch(struct core_req *req, enum az_lang lang);
/* "ja" / "en". */
const char *az_lang_tag(enum az_lang lang);

/* The catalogue's text for key in lang (e.g. "scope.openid.title"); NULL
 * when there is none. */
const char *az_page_text(enum az_lang lang, const char *key);

/* Renders page (a template name: "login", "consent", "account", "error",
 * "logout", "logged_out") with vars (an object; reference stolen) and
 * replies with status, text/html; charset=utf-8 and the security headers. */
void az_page_reply(struct core_req *req, unsigned status, const char *page, enum az_lang lang,
                   json_t *vars);

/* The error page: title_key and message_key are catalogue keys; detail (may
 * be NULL) is shown as is (escaped). */
void az_page_error(struct core_req *req, unsigned status, enum az_lang lang, const char *title_key,
                   const char *message_key, const char *detail);

/* GET /static/renkei.css */
struct core_router;
void az_page_routes(struct core_router *r);

/* The catalogue's text for key in lang with its {name} placeholders filled
 * from vars (borrowed; may be NULL: placeholders become empty), unescaped,
 * for text that goes into vars (a scope's desc) or outside a page. malloc'd;
 * NULL when key has no text. */
char *az_page_format(enum az_lang lang, const char *key, json_t *vars);

/* ---- the pieces underneath, for tests and tools ---- */

/* az_page_lang without the request: ui_locales and accept_language may be NULL. */
enum az_lang az_page_lang_pick(const char *ui_locales, const char *accept_language);

/* Renders page with vars (borrowed) into malloc'd HTML (*len bytes, NUL
 * terminated). NULL when the page cannot be rendered (no such template, a
 * template that did not parse, more than AZ_PAGE_MAX bytes): our bug, logged
 * at error level. */
#define AZ_PAGE_MAX (1024 * 1024)
char *az_page_render(const char *page, enum az_lang lang, json_t *vars, size_t *len);

/* Checks the compiled-in pages: every template parses, every partial it
 * includes exists, every catalogue key a template names has text in ja and
 * en, and each catalogue entry has the same {placeholders} in both. True when
 * all is well; else false and *why (malloc'd) lists the problems. */
bool az_page_check(char **why);

/*
 * The template language (authz/pages/README.md): {{name}} {{a.b}} {{.}}
 * {{#name}}..{{/name}} {{^name}}..{{/name}} {{@key}} {{@=name}} {{>partial}}
 * {{! comment }}. Every output is HTML-escaped; there is no raw output.
 * A set holds named templates and a catalogue ({"key": {"ja": .., "en": ..}}).
 */
struct az_tpl_set;
/* messages: the catalogue (reference stolen; may be NULL). */
struct az_tpl_set *az_tpl_set_new(json_t *messages);
void az_tpl_set_free(struct az_tpl_set *set);
/* Parses text (copied) as template name. False when it does not parse:
 * *why (malloc'd) says where and why; the name then renders as a failure. */
bool az_tpl_set_add(struct az_tpl_set *set, const char *name, const char *text, size_t len,
                    char **why);
/* Renders template name with vars (borrowed) into malloc'd text of at most
 * max bytes; NULL and *why (malloc'd) when it cannot. */
char *az_tpl_render(const struct az_tpl_set *set, const char *name, enum az_lang lang, json_t *vars,
                    size_t max, size_t *len, char **why);

/* A set's catalogue text for key (NULL when none), and with {placeholders}
 * filled from vars (borrowed), unescaped, malloc'd (as az_page_format). */
const char *az_tpl_text(const struct az_tpl_set *set, enum az_lang lang, const char *key);
char *az_tpl_format(const struct az_tpl_set *set, enum az_lang lang, const char *key, json_t *vars);
/* Checks a set as az_page_check does: the templates names (nnames of them)
 * exist, every template parses, includes what exists and names catalogue
 * keys with ja and en texts; each catalogue entry has the same
 * {placeholders} in both. */
bool az_tpl_set_check(const struct az_tpl_set *set, const char *const *names, size_t nnames,
                      char **why);

/* The files of authz/pages compiled into the binary (cmake/embed_pages.cmake). */
struct az_page_file {
    const char *name; /* "login.html", "messages.json", "renkei.css" */
    const char *data;
    size_t len;
};
extern const struct az_page_file az_page_files[];
extern const size_t az_page_files_count;

#endif
