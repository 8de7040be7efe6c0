/*
 * The resident pages: a small mustache-like template interpreter over the
 * templates compiled into the binary (authz/pages/<name>.html), the message
 * catalogue (authz/pages/messages.json), the language choice, and the reply
 * with the security headers every page carries.
 *
 * authz/pages/README.md describes the template language, the vars each page
 * takes and the catalogue keys. In short, the keys a handler passes (as
 * `error` / `notice` vars or to az_page_error) are: error.title,
 * error.invalid_client, error.invalid_redirect_uri, error.invalid_request,
 * error.expired, error.csrf, error.unavailable, error.not_found,
 * error.internal, signin.bad, signin.disabled, signin.throttled ({minutes}),
 * signin.empty, account.revoked, logout.done; and for consent,
 * scope.<scope>.title / scope.<scope>.desc (openid, profile, email,
 * offline_access, ngsi.read, ngsi.write, admin, tenant.admin, audit.read,
 * introspect) and scope.unknown.title / scope.unknown.desc.
 *
 * Templates are parsed once, at first use, into a tree that rendering walks;
 * every value and every catalogue text is HTML-escaped on output, and there
 * is no way to write raw HTML from a value. Bounds: sections nest at most
 * AZ_TPL_MAX_NEST deep in a template, scopes and partials together at most
 * AZ_TPL_MAX_DEPTH, names are at most AZ_TPL_NAME_MAX bytes, and a page is
 * at most AZ_PAGE_MAX bytes (over it, the page is not sent: 500).
 */
#include <pthread.h>
#include <strings.h>

#include "authz/az_page.h"
#include "authz/az_session.h"
#include "core/log.h"
#include "core/router.h"
#include "core/strbuf.h"
#include "core/url.h"

#define AZ_TPL_MAX_NEST  16
#define AZ_TPL_MAX_DEPTH 32
#define AZ_TPL_NAME_MAX  64
#define AZ_FORMAT_MAX    (64 * 1024)

/* ---- the template language ---- */

enum tpl_kind {
    T_TEXT,     /* literal bytes */
    T_VAR,      /* {{name}} */
    T_MSG,      /* {{@key}} */
    T_MSG_VAR,  /* {{@=name}}: the key is the value of name */
    T_SECTION,  /* {{#name}}..{{/name}} */
    T_INVERTED, /* {{^name}}..{{/name}} */
    T_PARTIAL,  /* {{>name}} */
};

struct tpl_node {
    enum tpl_kind kind;
    const char *text; /* T_TEXT: bytes inside the template's copy */
    size_t len;
    char *name; /* the other kinds */
    struct tpl_node *kids;
    size_t nkids;
};

struct tpl {
    char *name;
    char *text; /* the copy T_TEXT nodes point into */
    struct tpl_node *nodes;
    size_t n;
    char *error; /* set when the text did not parse */
};

struct az_tpl_set {
    struct tpl *tpls;
    size_t n, alloc;
    json_t *messages;
};

struct nodevec {
    struct tpl_node *v;
    size_t n, alloc;
};

static struct tpl_node *nodevec_push(struct nodevec *nv, enum tpl_kind kind)
{
    if (nv->n == nv->alloc) {
        nv->alloc = nv->alloc ? nv->alloc * 2 : 8;
        nv->v = xrealloc(nv->v, nv->alloc * sizeof *nv->v);
    }
    struct tpl_node *node = &nv->v[nv->n++];
    memset(node, 0, sizeof *node);
    node->kind = kind;
    return node;
}

static void nodes_free(struct tpl_node *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(nodes[i].name);
        nodes_free(nodes[i].kids, nodes[i].nkids);
    }
    free(nodes);
}

struct parser {
    const char *text, *end, *p;
    const char *tname;
    char *why;
};

static unsigned line_of(const char *text, const char *at)
{
    unsigned line = 1;
    for (const char *p = text; p < at; p++)
        line += *p == '\n';
    return line;
}

static bool parse_fail(struct parser *ps, const char *at, const char *fmt, ...) PRINTF_LIKE(3, 4);
static bool parse_fail(struct parser *ps, const char *at, const char *fmt, ...)
{
    if (ps->why)
        return false;
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    ps->why = xasprintf("template %s, line %u: %s", ps->tname, line_of(ps->text, at), msg);
    free(msg);
    return false;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/* "." alone, or non-empty segments of name characters joined by dots. */
static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > AZ_TPL_NAME_MAX)
        return false;
    if (n == 1 && s[0] == '.')
        return true;
    if (s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!name_char(s[i]) || (s[i] == '.' && s[i + 1] == '.'))
            return false;
    }
    return true;
}

/* A tag that prints nothing and stands alone on its line takes the line
 * with it (as in mustache), so templates can be laid out readably. */
static bool standalone(const struct parser *ps, const char *tag, const char *after,
                       const char **line_start, const char **next)
{
    const char *ls = tag;
    while (ls > ps->p && (ls[-1] == ' ' || ls[-1] == '\t'))
        ls--;
    if (ls != ps->text && ls[-1] != '\n')
        return false;
    const char *le = after;
    while (le < ps->end && (*le == ' ' || *le == '\t'))
        le++;
    if (le < ps->end && *le == '\r' && le + 1 < ps->end && le[1] == '\n')
        le += 2;
    else if (le < ps->end && *le == '\n')
        le++;
    else if (le != ps->end)
        return false;
    *line_start = ls;
    *next = le;
    return true;
}

/* Parses nodes into out up to the end of the text, or up to {{/open}} when
 * open (the name of the section being parsed, opened at open_at) is set. */
static bool parse_list(struct parser *ps, const char *open, const char *open_at, int depth,
                       struct nodevec *out)
{
    for (;;) {
        size_t left = (size_t)(ps->end - ps->p);
        const char *tag = memmem(ps->p, left, "{{", 2);
        if (!tag) {
            if (ps->end > ps->p) {
                struct tpl_node *t = nodevec_push(out, T_TEXT);
                t->text = ps->p;
                t->len = (size_t)(ps->end - ps->p);
            }
            ps->p = ps->end;
            if (open)
                return parse_fail(ps, open_at, "{{#%s}} is not closed", open);
            return true;
        }
        const char *c = tag + 2;
        const char *close = memmem(c, (size_t)(ps->end - c), "}}", 2);
        if (!close)
            return parse_fail(ps, tag, "a tag is not closed with }}");
        enum tpl_kind kind = T_VAR;
        bool comment = false, closing = false;
        const char *ns = c, *ne = close;
        switch (*c) {
        case '!':
            comment = true;
            break;
        case '#':
            kind = T_SECTION;
            ns++;
            break;
        case '^':
            kind = T_INVERTED;
            ns++;
            break;
        case '/':
            closing = true;
            ns++;
            break;
        case '>':
            kind = T_PARTIAL;
            ns++;
            break;
        case '@':
            kind = T_MSG;
            ns++;
            if (ns < ne && *ns == '=') {
                kind = T_MSG_VAR;
                ns++;
            }
            break;
        case '{':
        case '&':
            return parse_fail(ps, tag, "raw (unescaped) output is not supported");
        case '=':
            return parse_fail(ps, tag, "changing the delimiters is not supported");
        default:
            break;
        }
        while (ns < ne && (*ns == ' ' || *ns == '\t'))
            ns++;
        while (ne > ns && (ne[-1] == ' ' || ne[-1] == '\t'))
            ne--;
        size_t nlen = (size_t)(ne - ns);
        if (!comment && !name_ok(ns, nlen))
            return parse_fail(ps, tag, "bad name in tag {{%.*s}}", (int)(close - c), c);
        if (!comment && nlen == 1 && *ns == '.' && kind != T_VAR && kind != T_SECTION &&
            kind != T_INVERTED)
            return parse_fail(ps, tag, "bad name in tag {{%.*s}}", (int)(close - c), c);

        const char *text_end = tag, *next = close + 2;
        bool silent =
            comment || closing || kind == T_SECTION || kind == T_INVERTED || kind == T_PARTIAL;
        if (silent)
            standalone(ps, tag, close + 2, &text_end, &next);
        if (text_end > ps->p) {
            struct tpl_node *t = nodevec_push(out, T_TEXT);
            t->text = ps->p;
            t->len = (size_t)(text_end - ps->p);
        }
        ps->p = next;
        if (comment)
            continue;
        if (closing) {
            if (!open)
                return parse_fail(ps, tag, "{{/%.*s}} closes nothing", (int)nlen, ns);
            if (strlen(open) != nlen || memcmp(open, ns, nlen) != 0)
                return parse_fail(ps, tag, "{{/%.*s}} where {{/%s}} was expected", (int)nlen, ns,
                                  open);
            return true;
        }
        struct tpl_node *node = nodevec_push(out, kind);
        node->name = xstrndup(ns, nlen);
        if (kind == T_SECTION || kind == T_INVERTED) {
            if (depth + 1 > AZ_TPL_MAX_NEST)
                return parse_fail(ps, tag, "sections nest deeper than %d", AZ_TPL_MAX_NEST);
            struct nodevec kids = {0};
            /* node may move while kids are parsed into their own vector */
            size_t at = out->n - 1;
            bool ok = parse_list(ps, out->v[at].name, tag, depth + 1, &kids);
            out->v[at].kids = kids.v;
            out->v[at].nkids = kids.n;
            if (!ok)
                return false;
        }
    }
}

static struct tpl *set_find(const struct az_tpl_set *set, const char *name)
{
    for (size_t i = 0; i < set->n; i++) {
        if (strcmp(set->tpls[i].name, name) == 0)
            return &set->tpls[i];
    }
    return NULL;
}

struct az_tpl_set *az_tpl_set_new(json_t *messages)
{
    struct az_tpl_set *set = xcalloc(1, sizeof *set);
    set->messages = messages;
    return set;
}

static void tpl_release(struct tpl *t)
{
    free(t->name);
    free(t->text);
    nodes_free(t->nodes, t->n);
    free(t->error);
}

void az_tpl_set_free(struct az_tpl_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        tpl_release(&set->tpls[i]);
    free(set->tpls);
    json_decref(set->messages);
    free(set);
}

bool az_tpl_set_add(struct az_tpl_set *set, const char *name, const char *text, size_t len,
                    char **why)
{
    struct tpl *t = set_find(set, name);
    if (t) {
        tpl_release(t);
    } else {
        if (set->n == set->alloc) {
            set->alloc = set->alloc ? set->alloc * 2 : 16;
            set->tpls = xrealloc(set->tpls, set->alloc * sizeof *set->tpls);
        }
        t = &set->tpls[set->n++];
    }
    memset(t, 0, sizeof *t);
    t->name = xstrdup(name);
    t->text = xmalloc(len + 1);
    memcpy(t->text, text, len);
    t->text[len] = '\0';
    struct parser ps = {.text = t->text, .end = t->text + len, .p = t->text, .tname = name};
    if (memchr(text, '\0', len))
        parse_fail(&ps, ps.text, "the template contains a NUL byte");
    struct nodevec nv = {0};
    if (!ps.why)
        parse_list(&ps, NULL, NULL, 0, &nv);
    t->nodes = nv.v;
    t->n = nv.n;
    if (ps.why) {
        nodes_free(t->nodes, t->n);
        t->nodes = NULL;
        t->n = 0;
        t->error = ps.why;
        if (why)
            *why = xstrdup(ps.why);
        return false;
    }
    return true;
}

/* ---- the catalogue ---- */

static const char *const lang_tags[] = {"ja", "en"};

const char *az_lang_tag(enum az_lang lang)
{
    return (unsigned)lang < ARRAY_SIZE(lang_tags) ? lang_tags[lang] : "ja";
}

/* The text of key in lang, falling back to Japanese; NULL when none. */
static const char *msg_text(const struct az_tpl_set *set, enum az_lang lang, const char *key)
{
    json_t *entry = json_object_get(set->messages, key);
    const char *s = json_string_value(json_object_get(entry, az_lang_tag(lang)));
    if ((!s || !*s) && lang != AZ_LANG_JA)
        s = json_string_value(json_object_get(entry, "ja"));
    return s && *s ? s : NULL;
}

/* ---- rendering ---- */

struct render {
    const struct az_tpl_set *set;
    enum az_lang lang;
    struct strbuf out;
    size_t max;
    json_t *stack[AZ_TPL_MAX_DEPTH + 2];
    int nstack;
    int partials;
    char *why;
};

static void render_fail(struct render *r, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void render_fail(struct render *r, const char *fmt, ...)
{
    if (r->why)
        return;
    va_list ap;
    va_start(ap, fmt);
    r->why = xvasprintf(fmt, ap);
    va_end(ap);
}

static bool render_ok(struct render *r)
{
    if (!r->why && r->out.toobig)
        render_fail(r, "the output is larger than %zu bytes", r->max);
    return !r->why;
}

/* Looks name up: its first segment in the innermost scope (an object) that
 * has it, the rest inside that value (object members, array indexes). */
static json_t *lookup(const struct render *r, const char *name)
{
    if (name[0] == '.' && !name[1])
        return r->nstack ? r->stack[r->nstack - 1] : NULL;
    char seg[AZ_TPL_NAME_MAX + 1];
    size_t n = strcspn(name, ".");
    if (n > AZ_TPL_NAME_MAX)
        return NULL;
    memcpy(seg, name, n);
    seg[n] = '\0';
    json_t *v = NULL;
    for (int i = r->nstack - 1; i >= 0 && !v; i--) {
        if (json_is_object(r->stack[i]))
            v = json_object_get(r->stack[i], seg);
    }
    for (const char *p = name + n; v && *p == '.';) {
        p++;
        n = strcspn(p, ".");
        if (n > AZ_TPL_NAME_MAX)
            return NULL;
        memcpy(seg, p, n);
        seg[n] = '\0';
        p += n;
        long idx;
        if (json_is_object(v))
            v = json_object_get(v, seg);
        else if (json_is_array(v) && core_parse_long(seg, 0, 1000000, &idx))
            v = json_array_get(v, (size_t)idx);
        else
            v = NULL;
    }
    return v;
}

static bool truthy(const json_t *v)
{
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_TRUE:
        return true;
    case JSON_STRING:
        return json_string_length(v) > 0;
    case JSON_ARRAY:
        return json_array_size(v) > 0;
    case JSON_OBJECT:
        return json_object_size(v) > 0;
    case JSON_INTEGER:
        return json_integer_value(v) != 0;
    case JSON_REAL:
        return json_real_value(v) != 0.0;
    default:
        return false;
    }
}

/* Appends s with & < > " ' as character references; NUL bytes are dropped. */
static void add_escaped(struct strbuf *sb, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *ent;
        switch (s[i]) {
        case '&':
            ent = "&amp;";
            break;
        case '<':
            ent = "&lt;";
            break;
        case '>':
            ent = "&gt;";
            break;
        case '"':
            ent = "&quot;";
            break;
        case '\'':
            ent = "&#39;";
            break;
        case '\0':
            ent = "";
            break;
        default:
            continue;
        }
        strbuf_add(sb, s + run, i - run);
        strbuf_adds(sb, ent);
        run = i + 1;
    }
    strbuf_add(sb, s + run, n - run);
}

static void emit_value(struct strbuf *sb, const json_t *v, bool escape)
{
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_STRING:
        if (escape)
            add_escaped(sb, json_string_value(v), json_string_length(v));
        else
            strbuf_adds(sb, json_string_value(v));
        break;
    case JSON_INTEGER:
        strbuf_addf(sb, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        strbuf_addf(sb, "%.15g", json_real_value(v));
        break;
    case JSON_TRUE:
        strbuf_adds(sb, "true");
        break;
    case JSON_FALSE:
        strbuf_adds(sb, "false");
        break;
    default: /* null, objects and arrays print nothing */
        break;
    }
}

static void add_text(struct strbuf *sb, const char *s, size_t n, bool escape)
{
    if (escape)
        add_escaped(sb, s, n);
    else
        strbuf_add(sb, s, n);
}

/* The length of the placeholder name after the brace at b, 0 when b does
 * not open one ("{name}"). */
static size_t placeholder_at(const char *b)
{
    size_t n = 0;
    while (b[1 + n] && n <= AZ_TPL_NAME_MAX && name_char(b[1 + n]))
        n++;
    return n > 0 && n <= AZ_TPL_NAME_MAX && b[1 + n] == '}' && name_ok(b + 1, n) ? n : 0;
}

/* Appends a catalogue text with its {name} placeholders filled from the
 * scopes; a brace that does not open a placeholder is printed as is. */
static void emit_filled(struct render *r, const char *text, bool escape)
{
    const char *p = text;
    while (*p) {
        const char *b = strchr(p, '{');
        if (!b) {
            add_text(&r->out, p, strlen(p), escape);
            return;
        }
        size_t n = placeholder_at(b);
        bool ph = n > 0;
        const char *upto = ph ? b : b + 1;
        add_text(&r->out, p, (size_t)(upto - p), escape);
        if (ph) {
            char name[AZ_TPL_NAME_MAX + 1];
            memcpy(name, b + 1, n);
            name[n] = '\0';
            emit_value(&r->out, lookup(r, name), escape);
            p = b + n + 2;
        } else {
            p = b + 1;
        }
    }
}

static void emit_msg(struct render *r, const char *key)
{
    const char *text = msg_text(r->set, r->lang, key);
    if (!text) {
        /* shown as the key itself, so the gap is visible and findable */
        core_log_bug("no catalogue text for \"%s\" (%s)", key, az_lang_tag(r->lang));
        add_escaped(&r->out, key, strlen(key));
        return;
    }
    emit_filled(r, text, true);
}

static bool push(struct render *r, json_t *v)
{
    if (r->nstack + r->partials >= AZ_TPL_MAX_DEPTH) {
        render_fail(r, "scopes and partials nest deeper than %d", AZ_TPL_MAX_DEPTH);
        return false;
    }
    r->stack[r->nstack++] = v;
    return true;
}

static void render_nodes(struct render *r, const struct tpl_node *nodes, size_t n)
{
    for (size_t i = 0; i < n && render_ok(r); i++) {
        const struct tpl_node *node = &nodes[i];
        json_t *v;
        switch (node->kind) {
        case T_TEXT:
            strbuf_add(&r->out, node->text, node->len);
            break;
        case T_VAR:
            emit_value(&r->out, lookup(r, node->name), true);
            break;
        case T_MSG:
            emit_msg(r, node->name);
            break;
        case T_MSG_VAR:
            v = lookup(r, node->name);
            if (json_is_string(v) && json_string_length(v) > 0)
                emit_msg(r, json_string_value(v));
            break;
        case T_SECTION:
            v = lookup(r, node->name);
            if (!truthy(v))
                break;
            if (json_is_array(v)) {
                size_t k;
                json_t *e;
                json_array_foreach(v, k, e)
                {
                    if (!push(r, e))
                        break;
                    render_nodes(r, node->kids, node->nkids);
                    r->nstack--;
                    if (!render_ok(r))
                        break;
                }
            } else if (push(r, v)) {
                render_nodes(r, node->kids, node->nkids);
                r->nstack--;
            }
            break;
        case T_INVERTED:
            if (!truthy(lookup(r, node->name)))
                render_nodes(r, node->kids, node->nkids);
            break;
        case T_PARTIAL: {
            const struct tpl *t = set_find(r->set, node->name);
            if (!t) {
                render_fail(r, "no template \"%s\" to include", node->name);
            } else if (t->error) {
                render_fail(r, "%s", t->error);
            } else if (r->nstack + r->partials >= AZ_TPL_MAX_DEPTH) {
                render_fail(r, "scopes and partials nest deeper than %d", AZ_TPL_MAX_DEPTH);
            } else {
                r->partials++;
                render_nodes(r, t->nodes, t->n);
                r->partials--;
            }
            break;
        }
        }
    }
}

/* ---- the compiled-in pages ---- */

static pthread_once_t pages_once = PTHREAD_ONCE_INIT;
static struct az_tpl_set *pages;
static const char *css;
static size_t css_len;
static char css_href[64];
static json_t *builtins[2]; /* per language: lang, css */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void pages_init(void)
{
    json_t *messages = NULL;
    for (size_t i = 0; i < az_page_files_count; i++) {
        const struct az_page_file *f = &az_page_files[i];
        if (strcmp(f->name, "messages.json") == 0) {
            json_error_t err;
            messages = json_loadb(f->data, f->len, JSON_REJECT_DUPLICATES, &err);
            if (!json_is_object(messages)) {
                core_log_bug("authz/pages/messages.json, line %d: %s", err.line,
                             messages ? "not an object" : err.text);
                json_decref(messages);
                messages = NULL;
            }
        } else if (strcmp(f->name, "renkei.css") == 0) {
            css = f->data;
            css_len = f->len;
        }
    }
    pages = az_tpl_set_new(messages);
    for (size_t i = 0; i < az_page_files_count; i++) {
        const struct az_page_file *f = &az_page_files[i];
        if (!ends_with(f->name, ".html"))
            continue;
        char *name = xstrndup(f->name, strlen(f->name) - strlen(".html"));
        char *why = NULL;
        if (!az_tpl_set_add(pages, name, f->data, f->len, &why))
            core_log_bug("authz/pages/%s: %s", f->name, why);
        free(why);
        free(name);
    }
    /* the version in the URL lets the stylesheet be cached for a day and
     * still change with the binary */
    xsnprintf(css_href, sizeof css_href, "/static/renkei.css?v=%08x",
              css ? core_hash_str(css) : 0u);
    for (size_t l = 0; l < ARRAY_SIZE(builtins); l++)
        builtins[l] = json_pack("{s:s, s:s}", "lang", lang_tags[l], "css", css_href);
}

static void pages_ready(void)
{
    pthread_once(&pages_once, pages_init);
}

char *az_tpl_render(const struct az_tpl_set *set, const char *name, enum az_lang lang, json_t *vars,
                    size_t max, size_t *len, char **why)
{
    pages_ready();
    if ((unsigned)lang >= ARRAY_SIZE(lang_tags))
        lang = AZ_LANG_JA;
    struct render r = {.set = set, .lang = lang, .max = max};
    strbuf_init(&r.out, max);
    /* the builtins sit above vars so lang cannot be overridden by a var */
    if (vars)
        r.stack[r.nstack++] = vars;
    r.stack[r.nstack++] = builtins[lang];
    const struct tpl *t = set_find(set, name);
    if (!t)
        render_fail(&r, "no template \"%s\"", name);
    else if (t->error)
        render_fail(&r, "%s", t->error);
    else
        render_nodes(&r, t->nodes, t->n);
    if (!render_ok(&r)) {
        strbuf_release(&r.out);
        if (why)
            *why = r.why;
        else
            free(r.why);
        return NULL;
    }
    return strbuf_detach(&r.out, len);
}

char *az_page_render(const char *page, enum az_lang lang, json_t *vars, size_t *len)
{
    pages_ready();
    char *why = NULL;
    char *out = az_tpl_render(pages, page, lang, vars, AZ_PAGE_MAX, len, &why);
    if (!out)
        core_log_bug("page %s (%s) cannot be rendered: %s", page, az_lang_tag(lang), why);
    free(why);
    return out;
}

const char *az_page_text(enum az_lang lang, const char *key)
{
    pages_ready();
    return msg_text(pages, lang, key);
}

char *az_page_format(enum az_lang lang, const char *key, json_t *vars)
{
    pages_ready();
    return az_tpl_format(pages, lang, key, vars);
}

const char *az_tpl_text(const struct az_tpl_set *set, enum az_lang lang, const char *key)
{
    return msg_text(set, lang, key);
}

char *az_tpl_format(const struct az_tpl_set *set, enum az_lang lang, const char *key,
                    json_t *vars)
{
    const char *text = msg_text(set, lang, key);
    if (!text)
        return NULL;
    struct render r = {.set = set, .lang = lang, .max = AZ_FORMAT_MAX};
    strbuf_init(&r.out, AZ_FORMAT_MAX);
    if (vars)
        r.stack[r.nstack++] = vars;
    emit_filled(&r, text, false);
    if (r.out.toobig) {
        strbuf_release(&r.out);
        return NULL;
    }
    return strbuf_detach(&r.out, NULL);
}

/* ---- the self-check ---- */

static const char *const page_names[] = {"login", "consent", "account",
                                         "error", "logout",  "logged_out"};

static bool has_both(const struct az_tpl_set *set, const char *key)
{
    json_t *entry = json_object_get(set->messages, key);
    for (size_t l = 0; l < ARRAY_SIZE(lang_tags); l++) {
        const char *s = json_string_value(json_object_get(entry, lang_tags[l]));
        if (!s || !*s)
            return false;
    }
    return true;
}

static void check_nodes(const struct az_tpl_set *set, const struct tpl *t,
                        const struct tpl_node *nodes, size_t n, struct strbuf *why)
{
    for (size_t i = 0; i < n; i++) {
        const struct tpl_node *node = &nodes[i];
        if (node->kind == T_MSG && !has_both(set, node->name))
            strbuf_addf(why, "template %s: \"%s\" lacks text in ja or en\n", t->name, node->name);
        if (node->kind == T_PARTIAL && !set_find(set, node->name))
            strbuf_addf(why, "template %s: no template \"%s\" to include\n", t->name, node->name);
        check_nodes(set, t, node->kids, node->nkids, why);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted, distinct placeholder names of text, joined by spaces. */
static char *placeholders(const char *text)
{
    char *names[32];
    size_t n = 0;
    for (const char *b = strchr(text, '{'); b && n < ARRAY_SIZE(names); b = strchr(b + 1, '{')) {
        size_t k = placeholder_at(b);
        if (k)
            names[n++] = xstrndup(b + 1, k);
    }
    qsort(names, n, sizeof *names, cmp_str);
    struct strbuf sb;
    strbuf_init(&sb, 4096);
    strbuf_add(&sb, "", 0);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
            strbuf_addf(&sb, "%s ", names[i]);
    /* freed only now: each name is compared with the one before it */
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    return strbuf_detach(&sb, NULL);
}

bool az_tpl_set_check(const struct az_tpl_set *set, const char *const *names, size_t nnames,
                      char **why)
{
    pages_ready();
    struct strbuf sb;
    strbuf_init(&sb, 64 * 1024);
    if (!set->messages)
        strbuf_adds(&sb, "the message catalogue did not load\n");
    for (size_t i = 0; i < nnames; i++) {
        if (!set_find(set, names[i]))
            strbuf_addf(&sb, "template %s is missing\n", names[i]);
    }
    for (size_t i = 0; i < set->n; i++) {
        const struct tpl *t = &set->tpls[i];
        if (t->error)
            strbuf_addf(&sb, "%s\n", t->error);
        check_nodes(set, t, t->nodes, t->n, &sb);
    }
    const char *key;
    json_t *entry;
    json_object_foreach(set->messages, key, entry)
    {
        if (!json_is_object(entry) || json_object_size(entry) != ARRAY_SIZE(lang_tags) ||
            !has_both(set, key)) {
            strbuf_addf(&sb, "catalogue: \"%s\" must have exactly ja and en texts\n", key);
            continue;
        }
        char *ja = placeholders(json_string_value(json_object_get(entry, "ja")));
        char *en = placeholders(json_string_value(json_object_get(entry, "en")));
        if (strcmp(ja, en) != 0)
            strbuf_addf(&sb, "catalogue: \"%s\" has placeholders {%s} in ja, {%s} in en\n", key,
                        ja, en);
        free(ja);
        free(en);
    }
    if (!sb.len) {
        strbuf_release(&sb);
        return true;
    }
    if (why)
        *why = strbuf_detach(&sb, NULL);
    else
        strbuf_release(&sb);
    return false;
}

bool az_page_check(char **why)
{
    pages_ready();
    if (!css) {
        if (why)
            *why = xstrdup("the stylesheet renkei.css is missing\n");
        return false;
    }
    return az_tpl_set_check(pages, page_names, ARRAY_SIZE(page_names), why);
}

/* ---- the language ---- */

/* ja or en when tag (n bytes) is one of them or a subtag of one; else -1. */
static int lang_of(const char *tag, size_t n)
{
    size_t primary = 0;
    while (primary < n && tag[primary] != '-' && tag[primary] != '_')
        primary++;
    if (primary == 2 && strncasecmp(tag, "ja", 2) == 0)
        return AZ_LANG_JA;
    if (primary == 2 && strncasecmp(tag, "en", 2) == 0)
        return AZ_LANG_EN;
    return -1;
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9');
}

/* language-range (RFC 4647 §2.1): "*" or 1*8ALPHA *("-" 1*8alphanum). */
static bool range_ok(const char *s, size_t n)
{
    if (n == 1 && s[0] == '*')
        return true;
    size_t i = 0, k = 0;
    while (i < n && is_alpha(s[i]) && k < 8)
        i++, k++;
    if (k == 0)
        return false;
    while (i < n) {
        if (s[i++] != '-')
            return false;
        k = 0;
        while (i < n && is_alnum(s[i]) && k < 8)
            i++, k++;
        if (k == 0)
            return false;
    }
    return true;
}

/* qvalue (RFC 9110 §12.4.2) in thousandths; -1 when malformed. */
static int qvalue(const char *s, size_t n)
{
    if (n == 0 || (s[0] != '0' && s[0] != '1'))
        return -1;
    int q = (s[0] - '0') * 1000;
    if (n == 1)
        return q;
    if (s[1] != '.' || n > 5)
        return -1;
    int scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        q += (s[i] - '0') * scale;
    }
    return q > 1000 ? -1 : q;
}

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

/* The best supported language of an Accept-Language value by q (the first
 * one listed wins a tie; "*" stands for the default, ja); -1 when none. */
static int accept_pick(const char *al)
{
    int best = -1, best_q = 0, elements = 0;
    for (const char *p = al; *p && elements < 64; elements++) {
        const char *e = strchr(p, ',');
        if (!e)
            e = p + strlen(p);
        const char *s = p, *end = e;
        p = *e ? e + 1 : e;
        while (s < end && ows(*s))
            s++;
        while (end > s && ows(end[-1]))
            end--;
        if (s == end)
            continue; /* an empty list element is allowed */
        const char *r = s;
        while (r < end && *r != ';' && !ows(*r))
            r++;
        if (!range_ok(s, (size_t)(r - s)))
            continue;
        int q = 1000;
        const char *w = r;
        while (w < end && ows(*w))
            w++;
        if (w < end) {
            if (*w++ != ';')
                continue;
            while (w < end && ows(*w))
                w++;
            if (end - w < 3 || (w[0] != 'q' && w[0] != 'Q') || w[1] != '=')
                continue;
            q = qvalue(w + 2, (size_t)(end - w - 2));
            if (q < 0)
                continue;
        }
        int l = (r - s == 1 && *s == '*') ? AZ_LANG_JA : lang_of(s, (size_t)(r - s));
        if (l >= 0 && q > best_q) {
            best = l;
            best_q = q;
        }
    }
    return best;
}

enum az_lang az_page_lang_pick(const char *ui_locales, const char *accept_language)
{
    if (ui_locales) {
        int tokens = 0;
        for (const char *p = ui_locales; *p && tokens < 64; tokens++) {
            while (*p == ' ')
                p++;
            size_t n = strcspn(p, " ");
            if (n) {
                int l = range_ok(p, n) ? lang_of(p, n) : -1;
                if (l >= 0)
                    return (enum az_lang)l;
            }
            p += n;
        }
    }
    if (accept_language) {
        int l = accept_pick(accept_language);
        if (l >= 0)
            return (enum az_lang)l;
    }
    return AZ_LANG_JA;
}

enum az_lang az_page_lang(struct core_req *req, const char *ui_locales)
{
    /* the language the person chose on a page (/lang) comes before the
     * browser's, after an app's ui_locales */
    if (!ui_locales) {
        const char *chosen = core_req_cookie(req, "renkei_lang");
        if (chosen && strcmp(chosen, "en") == 0)
            return AZ_LANG_EN;
        if (chosen && strcmp(chosen, "ja") == 0)
            return AZ_LANG_JA;
    }
    return az_page_lang_pick(ui_locales, core_req_header(req, "Accept-Language"));
}

/* ---- switching language ---- */

#define NEXT_MAX 2000

/* A path of this site to go back to: "/" and no "//", no backslash, no
 * control or non-ASCII bytes. */
static bool local_path(const char *p)
{
    if (!p || p[0] != '/' || p[1] == '/' || strlen(p) > NEXT_MAX)
        return false;
    for (const unsigned char *c = (const unsigned char *)p; *c; c++)
        if (*c <= 0x20 || *c >= 0x7f || *c == '\\')
            return false;
    return true;
}

struct here {
    struct strbuf *sb;
    bool first;
};

static void add_query(void *arg, const char *key, const char *value)
{
    struct here *h = arg;
    if (strcmp(key, "lang") == 0)
        return;
    strbuf_adds(h->sb, h->first ? "?" : "&");
    h->first = false;
    core_url_encode(h->sb, key);
    if (value) {
        strbuf_adds(h->sb, "=");
        core_url_encode(h->sb, value);
    }
}

const char *az_page_here(struct core_req *req)
{
    struct strbuf here;
    strbuf_init(&here, NEXT_MAX + 1);
    strbuf_adds(&here, req->path);
    struct here h = {&here, true};
    core_req_query_each(req, add_query, &h);
    const char *out = !here.toobig && local_path(here.buf) ? core_pstrdup(req->pool, here.buf)
                                                           : NULL;
    strbuf_release(&here);
    return out;
}

const char *az_page_lang_switch(struct core_req *req, enum az_lang lang)
{
    if (strcmp(req->method, "GET") != 0)
        return NULL; /* the answer to a form: going back would lose what was sent */
    const char *here = az_page_here(req);
    if (!here)
        return NULL;
    struct strbuf link;
    strbuf_init(&link, 3 * NEXT_MAX + 32);
    strbuf_adds(&link, lang == AZ_LANG_EN ? "/lang?to=ja&next=" : "/lang?to=en&next=");
    core_url_encode(&link, here);
    const char *out = core_pstrdup(req->pool, link.buf);
    strbuf_release(&link);
    return out;
}

/* GET /lang?to=ja|en&next=PATH: remembers the choice for a year and goes back. */
static void az_handler_lang(struct core_req *req)
{
    const char *to = core_req_query(req, "to");
    const char *next = core_req_query(req, "next");
    if (!to || (strcmp(to, "ja") != 0 && strcmp(to, "en") != 0)) {
        core_reply_error(req, CORE_ERR_BAD_REQUEST, "to must be ja or en");
        return;
    }
    if (!local_path(next))
        next = "/account";
    core_reply_cookie(req, "renkei_lang", to, 365L * 86400, az_cookie_secure());
    core_reply_header(req, "Location", next);
    core_reply_header(req, "Cache-Control", "no-store");
    core_reply_bytes(req, 303, "text/plain; charset=utf-8", "", 0);
}

/* ---- replies ---- */

static void security_headers(struct core_req *req)
{
    /* no form-action: after a POST the flow redirects to the app */
    core_reply_header(req, "Content-Security-Policy",
                      "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
                      "frame-ancestors 'none'");
    core_reply_header(req, "X-Frame-Options", "DENY");
    core_reply_header(req, "Cache-Control", "no-store");
    core_reply_header(req, "Pragma", "no-cache");
    core_reply_header(req, "Referrer-Policy", "no-referrer");
    /* X-Content-Type-Options: nosniff is added by core to every reply */
}

/* When a page cannot be rendered: a fixed page that needs no template. */
static const char *const plain_500[] = {
    "<!DOCTYPE html>\n<html lang=\"ja\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<link rel=\"stylesheet\" href=\"/static/renkei.css\">\n"
    "<title>問題が発生しました</title>\n</head>\n<body>\n<main>\n"
    "<h1>問題が発生しました</h1>\n"
    "<div class=\"alert\" role=\"alert\"><p>申し訳ありません。システムに問題が発生しました。"
    "しばらくたってから、もう一度お試しください。</p></div>\n"
    "</main>\n</body>\n</html>\n",
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<link rel=\"stylesheet\" href=\"/static/renkei.css\">\n"
    "<title>Something went wrong</title>\n</head>\n<body>\n<main>\n"
    "<h1>Something went wrong</h1>\n"
    "<div class=\"alert\" role=\"alert\"><p>We are sorry: something went wrong on our side. "
    "Please try again a little later.</p></div>\n"
    "</main>\n</body>\n</html>\n",
};

void az_page_reply(struct core_req *req, unsigned status, const char *page, enum az_lang lang,
                   json_t *vars)
{
    if ((unsigned)lang >= ARRAY_SIZE(lang_tags))
        lang = AZ_LANG_JA;
    size_t len = 0;
    const char *sw = az_page_lang_switch(req, lang);
    if (sw && !json_object_get(vars, "lang_switch"))
        json_object_set_new(vars, "lang_switch", json_string(sw));
    char *html = az_page_render(page, lang, vars, &len);
    json_decref(vars);
    security_headers(req);
    if (!html) {
        core_reply_bytes(req, 500, "text/html; charset=utf-8", plain_500[lang],
                         strlen(plain_500[lang]));
        return;
    }
    core_reply_bytes(req, status, "text/html; charset=utf-8", html, len);
    free(html);
}

void az_page_error(struct core_req *req, unsigned status, enum az_lang lang, const char *title_key,
                   const char *message_key, const char *detail)
{
    const char *title = title_key ? az_page_text(lang, title_key) : NULL;
    const char *message = message_key ? az_page_text(lang, message_key) : NULL;
    if (!title) {
        if (title_key)
            core_log_bug("no catalogue text for error title \"%s\"", title_key);
        title = az_page_text(lang, "error.title");
    }
    if (!message) {
        if (message_key)
            core_log_bug("no catalogue text for error message \"%s\"", message_key);
        message = az_page_text(lang, "error.internal");
    }
    json_t *vars = json_object();
    json_object_set_new(vars, "title", json_string(title ? title : ""));
    json_object_set_new(vars, "message", json_string(message ? message : ""));
    if (detail && *detail) {
        json_t *d = json_string(detail);
        /* detail is not ours: text that is not UTF-8 is left out */
        if (d)
            json_object_set_new(vars, "detail", d);
    }
    az_page_reply(req, status, "error", lang, vars);
}

static void az_handler_css(struct core_req *req)
{
    pages_ready();
    if (!css) {
        core_reply_error(req, CORE_ERR_NOT_FOUND, NULL);
        return;
    }
    core_reply_header(req, "Cache-Control", "public, max-age=86400");
    core_reply_bytes(req, 200, "text/css; charset=utf-8", css, css_len);
}

static const struct core_route routes[] = {
    {CORE_GET, "/static/renkei.css", az_handler_css, "The resident pages' stylesheet", "authz", 0},
    {CORE_GET, "/lang", az_handler_lang,
     "Switch the pages' language (?to=ja|en&next=PATH; a cookie for a year)", "authz", 0},
};

void az_page_routes(struct core_router *r)
{
    char *why = NULL;
    if (!az_page_check(&why))
        core_log_bug("the resident pages are broken:\n%s", why);
    free(why);
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
