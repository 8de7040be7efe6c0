/* The consoles' compiled-in pages: every template parses and includes what
 * exists, every catalogue key has ja and en texts with the same
 * placeholders, every value printed inside an HTML tag sits in a quoted
 * attribute, no inline script or style, and the scripts and stylesheets are
 * there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/page_scan.h"

#include "console/cn_page.h"

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void test_check(void **state)
{
    (void)state;
    char *why = NULL;
    if (!cn_page_check(&why))
        fail_msg("%s", why);
    for (int l = AZ_LANG_JA; l <= AZ_LANG_EN; l++) {
        static const char *const keys[] = {
            "console.error.signin",    "console.error.forbidden", "console.error.unavailable",
            "console.error.internal",  "console.error.form",      "console.error.csrf",
            "console.error.not_found",
        };
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
            if (!cn_text((enum az_lang)l, keys[i]))
                fail_msg("no %s text for %s", az_lang_tag((enum az_lang)l), keys[i]);
    }
}

static void test_templates(void **state)
{
    (void)state;
    size_t html = 0, css = 0;
    for (size_t i = 0; i < cn_page_files_count; i++) {
        const struct az_page_file *f = &cn_page_files[i];
        assert_int_equal(strlen(f->data), f->len);
        if (ends_with(f->name, ".css"))
            css++;
        if (!ends_with(f->name, ".html"))
            continue;
        html++;
        /* CSP allows neither: the page must not need them */
        if (strstr(f->data, "style=") || strstr(f->data, "javascript:"))
            fail_msg("%s: an inline style or javascript: URL", f->name);
        for (const char *s = strstr(f->data, "<script"); s; s = strstr(s + 1, "<script"))
            if (!strncmp(s, "<script>", 8) || !strstr(s, "src=\"{{") ||
                strstr(s, "src=\"{{") > strchr(s, '>'))
                fail_msg("%s: a <script> without src from the hub: %.60s", f->name, s);
        assert_attributes_quoted(f->name, f->data);
    }
    assert_true(html >= 4);
    assert_true(css >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_templates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
