#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/page_scan.h"

#include "authz/az_page.h"
#include "core/strbuf.h"

/* ---- helpers ---- */

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0, m = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + m, needle))
        n++;
    return n;
}

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        if (!strstr((hay), (needle)))                                                              \
            fail_msg("missing %s in:\n%s", (needle), (hay));                                       \
    } while (0)
#define assert_lacks(hay, needle)                                                                  \
    do {                                                                                           \
        if (strstr((hay), (needle)))                                                               \
            fail_msg("unexpected %s in:\n%s", (needle), (hay));                                    \
    } while (0)

/* A set of test templates (name, text pairs, NULL-terminated) over a small
 * catalogue. */
static struct az_tpl_set *set_of(const char *const *pairs)
{
    json_t *messages = json_pack("{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}}", "hi", "ja",
                                 "こんにちは、{name}さん{x", "en", "Hello {name} & {missing} {x",
                                 "amp", "ja", "A & B <c> \"d\" 'e'", "en", "A & B <c> \"d\" 'e'",
                                 "deep", "ja", "{who.name}/{n}", "en", "{who.name}/{n}");
    struct az_tpl_set *set = az_tpl_set_new(messages);
    for (; pairs && pairs[0]; pairs += 2) {
        char *why = NULL;
        if (!az_tpl_set_add(set, pairs[0], pairs[1], strlen(pairs[1]), &why))
            fail_msg("template %s: %s", pairs[0], why);
    }
    return set;
}

/* Renders text as a one-off template with vars (a JSON text); the result
 * is malloc'd, or NULL with *why. */
static char *render_text(const char *text, const char *vars_json, enum az_lang lang, size_t max,
                         char **why)
{
    const char *pairs[] = {"t", text, NULL};
    struct az_tpl_set *set = set_of(pairs);
    json_t *vars = vars_json ? json_loads(vars_json, 0, NULL) : NULL;
    if (vars_json && !vars)
        fail_msg("bad test JSON %s", vars_json);
    char *out = az_tpl_render(set, "t", lang, vars, max, NULL, why);
    json_decref(vars);
    az_tpl_set_free(set);
    return out;
}

static void expect(const char *text, const char *vars_json, const char *want)
{
    char *why = NULL;
    char *out = render_text(text, vars_json, AZ_LANG_JA, 1 << 20, &why);
    if (!out)
        fail_msg("%s did not render: %s", text, why);
    if (strcmp(out, want) != 0)
        fail_msg("%s with %s\n got: [%s]\nwant: [%s]", text, vars_json ? vars_json : "-", out,
                 want);
    free(out);
}

/* ---- the interpreter ---- */

static void test_escaping(void **state)
{
    (void)state;
    expect("<p title=\"{{v}}\">{{v}}</p>", "{\"v\": \"<a href=\\\"x\\\">&'</a>\"}",
           "<p title=\"&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;\">"
           "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;</p>");
    /* already-escaped text is escaped again: a value is never markup */
    expect("{{v}}", "{\"v\": \"&amp; &lt;\"}", "&amp;amp; &amp;lt;");
    expect(
        "{{n}}|{{r}}|{{t}}|{{f}}|{{z}}|{{o}}|{{a}}|{{missing}}|{{o.x}}",
        "{\"n\": -42, \"r\": 1.5, \"t\": true, \"f\": false, \"z\": null, \"o\": {}, \"a\": [1]}",
        "-42|1.5|true|false|||||");
    expect("{{s}}", "{\"s\": \"高松 町\"}", "高松 町");
    /* a NUL inside a value is dropped, not a place where the output ends */
    const char *pairs[] = {"t", "[{{v}}]", NULL};
    struct az_tpl_set *set = set_of(pairs);
    json_t *vars = json_pack("{s:s%}", "v", "a\0<b", (size_t)4);
    char *out = az_tpl_render(set, "t", AZ_LANG_JA, vars, 1024, NULL, NULL);
    assert_string_equal(out, "[a&lt;b]");
    free(out);
    json_decref(vars);
    az_tpl_set_free(set);
}

static void test_catalogue(void **state)
{
    (void)state;
    const char *vars = "{\"name\": \"<b>'&\\\"\", \"k\": \"hi\", \"bad\": \"<nope>\", "
                       "\"who\": {\"name\": \"A&B\"}, \"n\": 3}";
    expect("{{@hi}}", vars, "こんにちは、&lt;b&gt;&#39;&amp;&quot;さん{x");
    expect("{{@amp}}", NULL, "A &amp; B &lt;c&gt; &quot;d&quot; &#39;e&#39;");
    expect("{{@deep}}", vars, "A&amp;B/3");
    /* the key from a var */
    expect("{{@=k}}", vars, "こんにちは、&lt;b&gt;&#39;&amp;&quot;さん{x");
    expect("[{{@=missing}}]", vars, "[]");
    /* a key with no text shows as itself (escaped), and is logged */
    expect("[{{@=bad}}]", vars, "[&lt;nope&gt;]");
    char *out = render_text("{{@hi}}", vars, AZ_LANG_EN, 1024, NULL);
    assert_string_equal(out, "Hello &lt;b&gt;&#39;&amp;&quot; &amp;  {x");
    free(out);
}

static void test_sections(void **state)
{
    (void)state;
    const char *vars = "{\"items\": [{\"n\": 1}, {\"n\": 2, \"x\": \"inner\"}, {\"n\": 3}],"
                       " \"x\": \"outer\", \"yes\": true, \"no\": false, \"nil\": null,"
                       " \"empty\": [], \"blank\": \"\", \"zero\": 0, \"one\": 1,"
                       " \"obj\": {\"a\": \"A\", \"sub\": {\"b\": \"B\"}}, \"eobj\": {},"
                       " \"words\": [\"a<\", \"b\"], \"s\": \"str\"}";
    /* arrays repeat with each element in scope, falling back outward */
    expect("{{#items}}{{n}}{{x}};{{/items}}", vars, "1outer;2inner;3outer;");
    expect("{{#words}}[{{.}}]{{/words}}", vars, "[a&lt;][b]");
    /* true and non-empty values render once; false, null, empty, missing skip */
    expect("{{#yes}}Y{{/yes}}{{#no}}N{{/no}}{{#nil}}Z{{/nil}}{{#empty}}E{{/empty}}"
           "{{#blank}}B{{/blank}}{{#zero}}0{{/zero}}{{#one}}1{{/one}}{{#eobj}}O{{/eobj}}"
           "{{#missing}}M{{/missing}}{{#s}}<{{.}}>{{/s}}",
           vars, "Y1<str>");
    expect("{{^yes}}Y{{/yes}}{{^no}}N{{/no}}{{^nil}}Z{{/nil}}{{^empty}}E{{/empty}}"
           "{{^blank}}B{{/blank}}{{^zero}}0{{/zero}}{{^one}}1{{/one}}{{^eobj}}O{{/eobj}}"
           "{{^missing}}M{{/missing}}{{^items}}I{{/items}}",
           vars, "NZEB0OM");
    /* objects push a scope; dotted names and array indexes reach inside */
    expect("{{#obj}}{{a}}{{#sub}}{{b}}{{a}}{{x}}{{/sub}}{{/obj}}", vars, "ABAouter");
    expect("{{obj.sub.b}} {{items.1.x}} {{items.9.n}} {{obj.a.b}}", vars, "B inner  ");
    expect("{{#items.0}}first{{/items.0}}{{^empty.0}}none{{/empty.0}}", vars, "firstnone");
    /* nested arrays, and a name only the outermost scope has */
    expect("{{#a}}{{#b}}{{v}}{{top}},{{/b}}|{{/a}}",
           "{\"top\": \"T\", \"a\": [{\"b\": [{\"v\": 1}, {\"v\": 2}]}, {\"b\": []}]}", "1T,2T,||");
    /* lang and css are always there, and a var cannot replace lang */
    char *out = render_text("{{lang}}", "{\"lang\": \"fr\"}", AZ_LANG_EN, 1024, NULL);
    assert_string_equal(out, "en");
    free(out);
    out = render_text("{{css}}", NULL, AZ_LANG_JA, 1024, NULL);
    assert_true(strncmp(out, "/static/renkei.css?v=", 21) == 0);
    free(out);
    /* whitespace inside tags, comments */
    expect("{{ x }}{{! a comment with {braces} }}{{# yes }}!{{/ yes }}", vars, "outer!");
}

static void test_standalone_lines(void **state)
{
    (void)state;
    const char *vars = "{\"on\": true, \"list\": [{\"v\": 1}, {\"v\": 2}]}";
    expect("a\n{{#on}}\nb\n{{/on}}\nc\n", vars, "a\nb\nc\n");
    expect("a\n  {{^on}}  \nb\n  {{/on}}\nc", vars, "a\nc");
    expect("<ul>\n{{#list}}\n<li>{{v}}</li>\n{{/list}}\n</ul>\n", vars,
           "<ul>\n<li>1</li>\n<li>2</li>\n</ul>\n");
    expect("{{! comment }}\r\nx", vars, "x");
    /* a tag that is not alone keeps its line */
    expect("a {{#on}}b{{/on}}\nc", vars, "a b\nc");
    expect("{{#on}}x{{/on}}\n", vars, "x\n");
}

static void test_partials(void **state)
{
    (void)state;
    const char *pairs[] = {
        "outer", "[{{>inner}}|{{#list}}{{>inner}}{{/list}}]",
        "inner", "{{v}}",
        "loop",  "{{>loop}}",
        "tree",  "({{v}}{{#k}}{{>tree}}{{/k}})",
        "lost",  "{{>nowhere}}",
        NULL,
    };
    struct az_tpl_set *set = set_of(pairs);
    json_t *vars = json_pack("{s:s, s:[{s:s}, {}]}", "v", "o", "list", "v", "e");
    char *out = az_tpl_render(set, "outer", AZ_LANG_JA, vars, 1024, NULL, NULL);
    assert_string_equal(out, "[o|eo]");
    free(out);
    json_decref(vars);

    char *why = NULL;
    assert_null(az_tpl_render(set, "loop", AZ_LANG_JA, NULL, 1024, NULL, &why));
    assert_contains(why, "deeper");
    free(why);
    why = NULL;
    assert_null(az_tpl_render(set, "lost", AZ_LANG_JA, NULL, 1024, NULL, &why));
    assert_contains(why, "nowhere");
    free(why);
    why = NULL;
    assert_null(az_tpl_render(set, "no-such", AZ_LANG_JA, NULL, 1024, NULL, &why));
    free(why);

    /* a recursive structure: fine while shallow, refused when too deep */
    /* the leaf says k is false: otherwise k is looked up outward */
    json_t *leaf = json_pack("{s:i, s:b}", "v", 0, "k", 0);
    json_t *v = leaf;
    for (int i = 1; i < 5; i++)
        v = json_pack("{s:i, s:o}", "v", i, "k", v);
    out = az_tpl_render(set, "tree", AZ_LANG_JA, v, 1024, NULL, NULL);
    assert_string_equal(out, "(4(3(2(1(0)))))");
    free(out);
    for (int i = 5; i < 40; i++)
        v = json_pack("{s:i, s:o}", "v", i, "k", v);
    why = NULL;
    assert_null(az_tpl_render(set, "tree", AZ_LANG_JA, v, 1 << 20, NULL, &why));
    assert_contains(why, "deeper");
    free(why);
    json_decref(v);
    az_tpl_set_free(set);
}

static void test_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "{{x",
        "a }} {{b",
        "{{#a}}never closed",
        "{{/a}}",
        "{{#a}}{{/b}}",
        "{{#a}}{{#b}}{{/a}}{{/b}}",
        "{{{raw}}}",
        "{{&raw}}",
        "{{}}",
        "{{ }}",
        "{{#}}{{/}}",
        "{{a..b}}",
        "{{.a}}",
        "{{a.}}",
        "{{a b}}",
        "{{a<b}}",
        "{{=<% %>=}}",
        "{{@}}",
        "{{@=}}",
        "{{>}}",
        "{{@.}}",
        "{{>.}}",
        "{{xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx}}", /* 66 */
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        struct az_tpl_set *set = az_tpl_set_new(NULL);
        char *why = NULL;
        if (az_tpl_set_add(set, "bad", bad[i], strlen(bad[i]), &why))
            fail_msg("\"%s\" should not parse", bad[i]);
        assert_non_null(why);
        assert_contains(why, "template bad, line 1");
        free(why);
        /* and rendering it is a failure, not a crash or half a page */
        why = NULL;
        assert_null(az_tpl_render(set, "bad", AZ_LANG_JA, NULL, 1024, NULL, &why));
        assert_non_null(why);
        free(why);
        az_tpl_set_free(set);
    }
    /* the line is where the problem is */
    struct az_tpl_set *set = az_tpl_set_new(NULL);
    char *why = NULL;
    const char *text = "one\ntwo\n{{#open}}\nfour {{/shut}}\n";
    assert_false(az_tpl_set_add(set, "t", text, strlen(text), &why));
    assert_contains(why, "line 4");
    free(why);
    why = NULL;
    text = "a\0b";
    assert_false(az_tpl_set_add(set, "nul", text, 3, &why));
    free(why);
    /* replacing a broken template with a good one mends it */
    assert_true(az_tpl_set_add(set, "t", "ok", 2, NULL));
    char *out = az_tpl_render(set, "t", AZ_LANG_JA, NULL, 16, NULL, NULL);
    assert_string_equal(out, "ok");
    free(out);
    az_tpl_set_free(set);
}

static void test_bounds(void **state)
{
    (void)state;
    /* sections nest at most 16 deep in one template */
    struct strbuf sb;
    strbuf_init(&sb, 4096);
    for (int i = 0; i < 16; i++)
        strbuf_addf(&sb, "{{#s%d}}", i);
    strbuf_adds(&sb, "x");
    for (int i = 15; i >= 0; i--)
        strbuf_addf(&sb, "{{/s%d}}", i);
    struct az_tpl_set *set = az_tpl_set_new(NULL);
    assert_true(az_tpl_set_add(set, "ok", sb.buf, sb.len, NULL));
    strbuf_release(&sb);
    for (int i = 0; i < 17; i++)
        strbuf_addf(&sb, "{{#s%d}}", i);
    for (int i = 16; i >= 0; i--)
        strbuf_addf(&sb, "{{/s%d}}", i);
    char *why = NULL;
    assert_false(az_tpl_set_add(set, "deep", sb.buf, sb.len, &why));
    assert_contains(why, "nest");
    free(why);
    strbuf_release(&sb);

    /* output over the cap: no page at all, never a truncated one */
    assert_true(az_tpl_set_add(set, "rep", "{{#items}}{{s}}{{/items}}", 25, NULL));
    json_t *items = json_array();
    char chunk[101];
    memset(chunk, 'y', 100);
    chunk[100] = '\0';
    for (int i = 0; i < 100; i++)
        json_array_append_new(items, json_pack("{s:s}", "s", chunk));
    json_t *vars = json_pack("{s:o}", "items", items);
    size_t len = 0;
    char *out = az_tpl_render(set, "rep", AZ_LANG_JA, vars, 10000, &len, NULL);
    assert_non_null(out);
    assert_int_equal(len, 10000);
    free(out);
    why = NULL;
    assert_null(az_tpl_render(set, "rep", AZ_LANG_JA, vars, 9999, &len, &why));
    assert_contains(why, "larger");
    free(why);
    /* escaping counts: 100 values of 100 '<' are 40 KB of output */
    json_t *lt = json_array();
    memset(chunk, '<', 100);
    for (int i = 0; i < 100; i++)
        json_array_append_new(lt, json_pack("{s:s}", "s", chunk));
    json_object_set_new(vars, "items", lt);
    why = NULL;
    assert_null(az_tpl_render(set, "rep", AZ_LANG_JA, vars, 39999, &len, &why));
    free(why);
    json_decref(vars);
    az_tpl_set_free(set);

    /* the real pages are refused over AZ_PAGE_MAX too */
    vars = json_pack("{s:s}", "title", "t");
    char *huge = xmalloc(AZ_PAGE_MAX + 1);
    memset(huge, 'z', AZ_PAGE_MAX);
    huge[AZ_PAGE_MAX] = '\0';
    json_object_set_new(vars, "message", json_string(huge));
    free(huge);
    assert_null(az_page_render("error", AZ_LANG_JA, vars, &len));
    json_decref(vars);
}

/* ---- the language ---- */

static void test_lang(void **state)
{
    (void)state;
    static const struct {
        const char *ui, *al;
        enum az_lang want;
    } cases[] = {
        {NULL, NULL, AZ_LANG_JA},
        {"", "", AZ_LANG_JA},
        {"en", NULL, AZ_LANG_EN},
        {"en-GB", "ja", AZ_LANG_EN},
        {"EN", NULL, AZ_LANG_EN},
        {"fr en ja", NULL, AZ_LANG_EN},
        {"fr-CA ja-JP en", "en", AZ_LANG_JA},
        {"  de   en  ", NULL, AZ_LANG_EN},
        {"fr", "en", AZ_LANG_EN}, /* nothing supported in ui_locales: Accept-Language */
        {"eng", "en", AZ_LANG_EN},
        {"jav", NULL, AZ_LANG_JA},
        {NULL, "en-US,en;q=0.9,ja;q=0.5", AZ_LANG_EN},
        {NULL, "ja,en;q=0.9", AZ_LANG_JA},
        {NULL, "en;q=0.4, ja;q=0.6", AZ_LANG_JA},
        {NULL, "ja;q=0.4, en;q=0.6", AZ_LANG_EN},
        {NULL, "ja;q=0.5, en;q=0.5", AZ_LANG_JA}, /* a tie: the first */
        {NULL, "en;q=0.5, ja;q=0.5", AZ_LANG_EN},
        {NULL, "fr", AZ_LANG_JA},
        {NULL, "fr, de;q=0.9", AZ_LANG_JA},
        {NULL, "fr, en;q=0.1", AZ_LANG_EN},
        {NULL, "en;q=0", AZ_LANG_JA},
        {NULL, "ja;q=0.000, en;q=0.001", AZ_LANG_EN},
        {NULL, "*", AZ_LANG_JA},
        {NULL, "en;q=0.5, *;q=0.8", AZ_LANG_JA},
        {NULL, "*;q=0.1, en;q=0.2", AZ_LANG_EN},
        {NULL, "EN-us", AZ_LANG_EN},
        {NULL, "en ; q=1.000", AZ_LANG_EN},
        {NULL, " , ,en", AZ_LANG_EN},
        {NULL, "en;Q=0.7", AZ_LANG_EN},
        /* malformed elements are skipped, a malformed header gives ja */
        {NULL, "en;q=2", AZ_LANG_JA},
        {NULL, "en;q=1.1", AZ_LANG_JA},
        {NULL, "en;q=0.1234", AZ_LANG_JA},
        {NULL, "en;q=", AZ_LANG_JA},
        {NULL, "en;q=.5", AZ_LANG_JA},
        {NULL, "en;q=abc", AZ_LANG_JA},
        {NULL, "en;level=1", AZ_LANG_JA},
        {NULL, "en;", AZ_LANG_JA},
        {NULL, ";q=1", AZ_LANG_JA},
        {NULL, "en-", AZ_LANG_JA},
        {NULL, "e n", AZ_LANG_JA},
        {NULL, "én", AZ_LANG_JA},
        {NULL, "toolongtag-en", AZ_LANG_JA},
        {NULL, "\x01\xff", AZ_LANG_JA},
        {NULL, "en;q=abc, en-GB;q=0.3", AZ_LANG_EN},
        {"en;q=1", "ja", AZ_LANG_JA}, /* ui_locales are plain tags */
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        enum az_lang got = az_page_lang_pick(cases[i].ui, cases[i].al);
        if (got != cases[i].want)
            fail_msg("ui_locales=%s Accept-Language=%s: %s, want %s",
                     cases[i].ui ? cases[i].ui : "(none)", cases[i].al ? cases[i].al : "(none)",
                     az_lang_tag(got), az_lang_tag(cases[i].want));
    }
    /* a long header stops being read, but does not crash */
    struct strbuf sb;
    strbuf_init(&sb, 1 << 20);
    for (int i = 0; i < 1000; i++)
        strbuf_adds(&sb, "fr;q=0.5,");
    strbuf_adds(&sb, "en");
    assert_int_equal(az_page_lang_pick(NULL, sb.buf), AZ_LANG_JA);
    strbuf_release(&sb);
    assert_string_equal(az_lang_tag(AZ_LANG_JA), "ja");
    assert_string_equal(az_lang_tag(AZ_LANG_EN), "en");
}

/* ---- the real pages ---- */

static bool in_list(const char *name, size_t n, const char *const *list)
{
    for (; *list; list++) {
        if (strlen(*list) == n && strncmp(*list, name, n) == 0)
            return true;
    }
    return false;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == ':' || c == '_';
}

/* Checks html is well-formed in the strict sense these pages keep to:
 * every element closed in order (but void ones), every attribute value
 * double-quoted, no stray < or &, no inline style or script. */
static void assert_well_formed(const char *html, const char *what)
{
    static const char *const voids[] = {"meta", "link", "input", "br", "hr", "img", NULL};
    const char *stack[64];
    size_t depth[64];
    int n = 0;
    const char *p = html;
    if (strncmp(p, "<!DOCTYPE html>\n", 16) != 0)
        fail_msg("%s: does not start with <!DOCTYPE html>", what);
    p += 16;
    while (*p) {
        if (*p == '&') {
            const char *q = p + 1;
            if (*q == '#')
                q++;
            while ((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9'))
                q++;
            if (*q != ';' || q == p + 1)
                fail_msg("%s: a stray & at %.40s", what, p);
            p = q + 1;
            continue;
        }
        if (*p == '>')
            fail_msg("%s: a stray > at %.40s", what, p);
        if (*p != '<') {
            p++;
            continue;
        }
        bool closing = p[1] == '/';
        const char *name = p + 1 + closing;
        size_t len = 0;
        while (name_char(name[len]))
            len++;
        if (!len)
            fail_msg("%s: a stray < at %.40s", what, p);
        p = name + len;
        if (closing) {
            if (*p != '>')
                fail_msg("%s: a bad end tag at %.40s", what, name);
            if (!n || depth[n - 1] != len || strncmp(stack[n - 1], name, len) != 0)
                fail_msg("%s: </%.*s> closes <%.*s>", what, (int)len, name,
                         n ? (int)depth[n - 1] : 0, n ? stack[n - 1] : "");
            n--;
            p++;
            continue;
        }
        if ((len == 6 && strncmp(name, "script", 6) == 0) ||
            (len == 5 && strncmp(name, "style", 5) == 0))
            fail_msg("%s: has <%.*s>", what, (int)len, name);
        for (;;) {
            while (*p == ' ' || *p == '\n')
                p++;
            if (*p == '>')
                break;
            size_t an = 0;
            while (name_char(p[an]))
                an++;
            if (!an)
                fail_msg("%s: a bad attribute at %.40s", what, p);
            if ((an == 5 && strncmp(p, "style", 5) == 0) || (an > 2 && strncmp(p, "on", 2) == 0))
                fail_msg("%s: an inline %.*s attribute", what, (int)an, p);
            p += an;
            if (*p == '=') {
                if (p[1] != '"')
                    fail_msg("%s: an unquoted attribute value at %.40s", what, p - an);
                const char *end = strchr(p + 2, '"');
                if (!end)
                    fail_msg("%s: an unclosed attribute value", what);
                for (const char *c = p + 2; c < end; c++) {
                    if (*c == '<' || *c == '>')
                        fail_msg("%s: < or > inside an attribute value at %.40s", what, p - an);
                }
                p = end + 1;
            }
        }
        p++;
        if (!in_list(name, len, voids)) {
            if (n == (int)ARRAY_SIZE(stack))
                fail_msg("%s: nests too deeply", what);
            stack[n] = name;
            depth[n++] = len;
        }
    }
    if (n)
        fail_msg("%s: <%.*s> is never closed", what, (int)depth[n - 1], stack[n - 1]);
    if (count(html, "<h1") != 1 || count(html, "<main") != 1 || count(html, "</html>") != 1)
        fail_msg("%s: needs one <h1>, one <main>", what);
    /* the skip link's target */
    assert_contains(html, "<main id=\"main\">");
    assert_contains(html, "<a class=\"skip\" href=\"#main\">");
    assert_lacks(html, "{{");
    assert_lacks(html, "}}");
    assert_lacks(html, "<script");
    assert_lacks(html, "javascript:");
    assert_contains(html, "<link rel=\"stylesheet\" href=\"/static/renkei.css?v=");
    assert_contains(html, "<meta charset=\"utf-8\">");
    assert_contains(html,
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
}

/* Every control has a label: each id of an input that is not hidden is
 * named by a <label for>. */
static void assert_labelled(const char *html, const char *what)
{
    for (const char *p = strstr(html, "<input"); p; p = strstr(p + 1, "<input")) {
        const char *end = strchr(p, '>');
        char tag[1024];
        size_t n = (size_t)(end - p) < sizeof tag - 1 ? (size_t)(end - p) : sizeof tag - 1;
        memcpy(tag, p, n);
        tag[n] = '\0';
        if (strstr(tag, "type=\"hidden\""))
            continue;
        const char *id = strstr(tag, " id=\"");
        if (!id)
            fail_msg("%s: a control without an id: %s", what, tag);
        id += 5;
        char want[256];
        int k = snprintf(want, sizeof want, "<label for=\"%.*s\">", (int)strcspn(id, "\""), id);
        assert_true(k > 0 && (size_t)k < sizeof want);
        if (!strstr(html, want))
            fail_msg("%s: no %s", what, want);
    }
    for (const char *p = strstr(html, "<button"); p; p = strstr(p + 1, "<button")) {
        if (strncmp(p, "<button type=\"submit\"", 21) != 0)
            fail_msg("%s: a button that is not type=submit: %.60s", what, p);
    }
}

static char *page(const char *name, enum az_lang lang, const char *vars_json)
{
    json_t *vars = vars_json ? json_loads(vars_json, 0, NULL) : NULL;
    if (vars_json && !vars)
        fail_msg("bad test JSON %s", vars_json);
    size_t len = 0;
    char *html = az_page_render(name, lang, vars, &len);
    json_decref(vars);
    if (!html)
        fail_msg("page %s did not render", name);
    assert_int_equal(strlen(html), len);
    char what[64];
    snprintf(what, sizeof what, "%s (%s)", name, az_lang_tag(lang));
    assert_well_formed(html, what);
    assert_labelled(html, what);
    assert_contains(html, lang == AZ_LANG_JA ? "<html lang=\"ja\">" : "<html lang=\"en\">");
    return html;
}

static void test_page_login(void **state)
{
    (void)state;
    const char *vars = "{\"action\": \"/login\", \"csrf\": \"c<s>rf&1\", \"r\": \"r-123\","
                       " \"login\": \"taro\\\"@example.jp\", \"client_name\": \"防災<アプリ>\","
                       " \"tenant_name\": \"高松町\"}";
    char *html = page("login", AZ_LANG_JA, vars);
    assert_contains(html, "<form method=\"post\" action=\"/login\"");
    assert_contains(html, "<input type=\"hidden\" name=\"csrf\" value=\"c&lt;s&gt;rf&amp;1\">");
    assert_contains(html, "<input type=\"hidden\" name=\"r\" value=\"r-123\">");
    assert_contains(html,
                    "name=\"login\" value=\"taro&quot;@example.jp\" autocomplete=\"username\"");
    assert_contains(html, "name=\"password\" autocomplete=\"current-password\"");
    assert_contains(html, "「防災&lt;アプリ&gt;」にサインインします。");
    assert_contains(html, "高松町");
    assert_contains(html, ">サインイン</button>");
    assert_lacks(html, "role=\"alert\"");
    assert_lacks(html, "aria-invalid");
    free(html);

    /* an error by its key, with the minutes of signin.throttled; no r */
    html = page("login", AZ_LANG_JA,
                "{\"action\": \"/login\", \"csrf\": \"x\", \"r\": \"\", \"error\": "
                "\"signin.throttled\", \"minutes\": 15}");
    assert_contains(html, "role=\"alert\"");
    assert_contains(html, "15分ほど");
    assert_contains(html, "aria-invalid=\"true\"");
    assert_lacks(html, "name=\"r\"");
    assert_lacks(html, "サインインします。");
    free(html);

    html = page("login", AZ_LANG_EN, "{\"csrf\": \"x\", \"error\": \"signin.bad\"}");
    assert_contains(html, "The login ID or password is not correct.");
    assert_contains(html, ">Sign in</button>");
    free(html);
    /* nothing passed at all still renders */
    free(page("login", AZ_LANG_JA, NULL));
}

static void test_page_consent(void **state)
{
    (void)state;
    const char *vars =
        "{\"action\": \"/consent\", \"csrf\": \"tok\", \"r\": \"r1\", \"client_name\": \"見守り\","
        " \"tenant_name\": \"東町\", \"scopes\": ["
        "{\"scope\": \"openid\", \"title\": \"T-openid\", \"desc\": \"D-openid\", \"checked\": "
        "true,"
        " \"required\": true},"
        "{\"scope\": \"profile\", \"title\": \"T<profile>\", \"desc\": \"D-profile\", \"checked\":"
        " true, \"required\": false},"
        "{\"scope\": \"ngsi.read\", \"title\": \"T-read\", \"desc\": \"D-read\", \"checked\": "
        "false}"
        "]}";
    char *html = page("consent", AZ_LANG_JA, vars);
    assert_int_equal(count(html, "type=\"checkbox\""), 3);
    assert_int_equal(count(html, "<fieldset"), 1);
    assert_int_equal(count(html, "<legend>"), 1);
    /* the required one: a checked disabled box and a hidden input that submits it */
    assert_contains(html, "<input type=\"checkbox\" id=\"scope-openid\" checked disabled");
    assert_contains(html, "<input type=\"hidden\" name=\"scope\" value=\"openid\">");
    assert_int_equal(count(html, "disabled"), 1);
    assert_int_equal(count(html, "チェックを外すことはできません"), 1);
    assert_contains(html, "aria-describedby=\"scope-openid-desc scope-openid-req\"");
    assert_int_equal(count(html, "name=\"scope\""), 3);
    assert_contains(html, "id=\"scope-profile\" name=\"scope\" value=\"profile\" checked ");
    assert_contains(html, "id=\"scope-ngsi.read\" name=\"scope\" value=\"ngsi.read\" aria-");
    assert_contains(html, "<strong>T&lt;profile&gt;</strong>");
    assert_contains(html, "<p class=\"desc\" id=\"scope-ngsi.read-desc\">D-read</p>");
    assert_contains(html, "<button type=\"submit\" name=\"decision\" value=\"allow\"");
    assert_contains(html, "<button type=\"submit\" name=\"decision\" value=\"deny\"");
    assert_contains(html, ">許可する</button>");
    assert_contains(html, ">許可しない</button>");
    assert_contains(html, "「見守り」が");
    assert_contains(html, "「アカウント」のページ");
    free(html);
    html = page("consent", AZ_LANG_EN, vars);
    assert_contains(html, ">Allow</button>");
    assert_contains(html, "Required");
    free(html);
}

static void test_page_account(void **state)
{
    (void)state;
    const char *vars =
        "{\"csrf\": \"k\", \"name\": \"山田 花子\", \"login\": \"hanako@example.jp\","
        " \"notice\": \"account.revoked\","
        " \"apps\": [{\"grant_id\": \"g1\", \"client_name\": \"A<1>\", \"tenant_name\": \"西町\","
        " \"granted_at\": \"2026年11月1日 10:00\", \"scopes\": [{\"title\": \"お名前\"}, "
        "{\"title\":"
        " \"メール\"}]}, {\"grant_id\": \"g2\", \"client_name\": \"B\", \"scopes\": []}],"
        " \"access\": [{\"time\": \"11/2 9:00\", \"consumer\": \"西町\", \"client\": \"A\","
        " \"provider\": \"東町\", \"purpose\": \"防災\", \"decision\": \"提供しました\"}],"
        " \"access_more_url\": \"/account?after=5&x=1\"}";
    char *html = page("account", AZ_LANG_JA, vars);
    assert_contains(html, "role=\"status\"");
    assert_contains(html, "アプリへの許可を取り消しました。");
    assert_int_equal(count(html, "action=\"/account/revoke\""), 2);
    assert_contains(html, "<input type=\"hidden\" name=\"grant_id\" value=\"g1\">");
    assert_contains(html, "<input type=\"hidden\" name=\"grant_id\" value=\"g2\">");
    assert_int_equal(count(html, "<input type=\"hidden\" name=\"csrf\" value=\"k\">"), 3);
    assert_contains(html, "aria-label=\"「A&lt;1&gt;」への許可を取り消す\">取り消す</button>");
    assert_contains(html, "<li>メール</li>");
    assert_int_equal(count(html, "<ul"), 1); /* B allowed nothing listed: no empty list */
    assert_contains(html, "<caption>あなたのデータを読んだ記録</caption>");
    assert_int_equal(count(html, "<tr>"), 2);
    assert_contains(html, "<td data-label=\"目的\">防災</td>");
    assert_contains(html, "href=\"/account?after=5&amp;x=1\"");
    assert_contains(html, "action=\"/logout\"");
    assert_contains(html, ">サインアウト</button>");
    assert_lacks(html, "許可しているアプリはありません");
    assert_lacks(html, "記録は、まだありません");
    free(html);

    html = page("account", AZ_LANG_JA,
                "{\"csrf\": \"k\", \"name\": \"n\", \"login\": \"l\", \"apps\": [], \"no_apps\":"
                " true, \"no_access\": true}");
    assert_contains(html, "許可しているアプリはありません。");
    assert_contains(html, "記録は、まだありません");
    assert_lacks(html, "<table");
    assert_lacks(html, "/account/revoke");
    assert_lacks(html, "role=\"status\"");
    free(html);
    free(page("account", AZ_LANG_EN, vars));
}

static void test_page_error_logout(void **state)
{
    (void)state;
    char *html = page("error", AZ_LANG_JA,
                      "{\"title\": \"T<\", \"message\": \"M&\", \"detail\": \"d\\\"\"}");
    assert_contains(html, "<h1>T&lt;</h1>");
    assert_contains(html, "role=\"alert\"");
    assert_contains(html, "<p>M&amp;</p>");
    assert_contains(html, "d&quot;");
    free(html);
    html = page("error", AZ_LANG_EN, "{\"title\": \"T\", \"message\": \"M\"}");
    assert_lacks(html, "Details");
    free(html);

    html = page("logout", AZ_LANG_JA,
                "{\"action\": \"/logout\", \"csrf\": \"c\", \"client_name\": \"X\","
                " \"post_logout_redirect_uri\": \"https://app.example/bye?a=1&b=2\","
                " \"state\": \"s1\", \"client_id\": \"\"}");
    assert_contains(
        html, "name=\"post_logout_redirect_uri\" value=\"https://app.example/bye?a=1&amp;b=2\"");
    assert_contains(html, "name=\"state\" value=\"s1\"");
    assert_lacks(html, "client_id");
    assert_contains(html, "name=\"decision\" value=\"logout\"");
    assert_contains(html, "name=\"decision\" value=\"cancel\"");
    assert_contains(html, "「X」から");
    free(html);
    html = page("logout", AZ_LANG_EN, "{\"action\": \"/logout\", \"csrf\": \"c\"}");
    assert_lacks(html, "post_logout_redirect_uri");
    assert_lacks(html, "has asked");
    free(html);

    html = page("logged_out", AZ_LANG_JA, "{\"redirect_uri\": \"https://app.example/\"}");
    assert_contains(html, "<a class=\"button\" href=\"https://app.example/\">アプリに戻る</a>");
    free(html);
    html = page("logged_out", AZ_LANG_EN, NULL);
    assert_lacks(html, "<a href"); /* no link back: only the skip link */
    assert_contains(html, "You have signed out.");
    free(html);

    /* unknown pages render nothing */
    size_t len;
    assert_null(az_page_render("nope", AZ_LANG_JA, NULL, &len));
}

/* ---- the catalogue and the templates as files ---- */

static void test_catalogue_complete(void **state)
{
    (void)state;
    char *why = NULL;
    if (!az_page_check(&why))
        fail_msg("%s", why);
    /* the keys the handlers use, in both languages */
    static const char *const keys[] = {
        "error.title",
        "error.invalid_client",
        "error.invalid_redirect_uri",
        "error.invalid_request",
        "error.expired",
        "error.csrf",
        "error.unavailable",
        "error.not_found",
        "error.internal",
        "signin.bad",
        "signin.disabled",
        "signin.throttled",
        "signin.empty",
        "logout.done",
        "account.revoked",
        "account.decision.permit",
        "account.decision.deny",
        "scope.unknown.title",
        "scope.unknown.desc",
    };
    static const char *const scopes[] = {"openid",     "profile",    "email", "offline_access",
                                         "ngsi.read",  "ngsi.write", "admin", "tenant.admin",
                                         "audit.read", "introspect"};
    for (int l = AZ_LANG_JA; l <= AZ_LANG_EN; l++) {
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
            if (!az_page_text((enum az_lang)l, keys[i]))
                fail_msg("no %s text for %s", az_lang_tag((enum az_lang)l), keys[i]);
        }
        for (size_t i = 0; i < ARRAY_SIZE(scopes); i++) {
            char key[96];
            snprintf(key, sizeof key, "scope.%s.title", scopes[i]);
            assert_non_null(az_page_text((enum az_lang)l, key));
            snprintf(key, sizeof key, "scope.%s.desc", scopes[i]);
            assert_non_null(az_page_text((enum az_lang)l, key));
        }
    }
    assert_null(az_page_text(AZ_LANG_JA, "no.such.key"));
    assert_contains(az_page_text(AZ_LANG_JA, "scope.openid.title"), "サインインしたこと");
    /* formatted text for vars: placeholders filled, nothing escaped */
    json_t *vars = json_pack("{s:i}", "minutes", 5);
    char *s = az_page_format(AZ_LANG_JA, "signin.throttled", vars);
    assert_contains(s, "5分ほど");
    free(s);
    json_decref(vars);
    vars = json_pack("{s:s}", "client_name", "A&B");
    s = az_page_format(AZ_LANG_EN, "account.revoke_label", vars);
    assert_string_equal(s, "Revoke the permission of “A&B”");
    free(s);
    json_decref(vars);
    assert_null(az_page_format(AZ_LANG_JA, "no.such.key", NULL));
}

/* In the template sources, a tag that prints a value inside an HTML tag
 * sits in a double-quoted attribute value, so no value can end an
 * attribute or add one. */
static void test_templates_quote_attributes(void **state)
{
    (void)state;
    size_t html_files = 0;
    for (size_t i = 0; i < az_page_files_count; i++) {
        const struct az_page_file *f = &az_page_files[i];
        size_t n = strlen(f->name);
        if (n < 5 || strcmp(f->name + n - 5, ".html") != 0)
            continue;
        html_files++;
        assert_int_equal(strlen(f->data), f->len);
        assert_attributes_quoted(f->name, f->data);
    }
    assert_true(html_files >= 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_catalogue),
        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_standalone_lines),
        cmocka_unit_test(test_partials),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_lang),
        cmocka_unit_test(test_page_login),
        cmocka_unit_test(test_page_consent),
        cmocka_unit_test(test_page_account),
        cmocka_unit_test(test_page_error_logout),
        cmocka_unit_test(test_catalogue_complete),
        cmocka_unit_test(test_templates_quote_attributes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
