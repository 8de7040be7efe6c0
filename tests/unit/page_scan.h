#ifndef TESTS_UNIT_PAGE_SCAN_H
#define TESTS_UNIT_PAGE_SCAN_H

/* For the page tests (test_authz_page.c, test_console_pages.c): a template
 * source's values printed inside an HTML tag sit in double-quoted attribute
 * values, so no value can end an attribute or add one. Include after
 * cmocka.h. */
#include <stdbool.h>
#include <string.h>

static inline void assert_attributes_quoted(const char *name, const char *text)
{
    bool in_tag = false, in_value = false;
    for (const char *p = text; *p; p++) {
        if (strncmp(p, "{{!", 3) == 0) {
            const char *end = strstr(p, "}}");
            assert_non_null(end);
            p = end + 1;
            continue;
        }
        if (strncmp(p, "{{", 2) == 0) {
            char sig = p[2];
            bool prints = sig != '#' && sig != '^' && sig != '/' && sig != '>';
            if (in_tag && !in_value && prints)
                fail_msg("%s: %.30s prints outside a quoted attribute value", name, p);
            p = strstr(p, "}}") + 1;
            continue;
        }
        if (!in_tag && *p == '<')
            in_tag = true;
        else if (in_tag && *p == '"')
            in_value = !in_value;
        else if (in_tag && !in_value && *p == '>')
            in_tag = false;
        else if (in_tag && !in_value && *p == '\'')
            fail_msg("%s: single-quoted attribute at %.30s", name, p);
    }
    assert_false(in_tag);
}

#endif
