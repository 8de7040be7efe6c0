#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "exchange/xc_entity.h"

static json_t *parse(const char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    return v;
}

/* Stored-form attributes of an object given as JSON text. */
static json_t *attrs_of(const char *text)
{
    json_t *src = parse(text);
    const char *why = NULL;
    json_t *a = xc_attrs_parse(src, false, &why);
    json_decref(src);
    assert_non_null(a);
    return a;
}

static void test_names(void **state)
{
    (void)state;
    assert_null(xc_check_name("Room1"));
    assert_null(xc_check_name("urn:ngsi-ld:Shelter:takamatsu-001"));
    char max[257];
    memset(max, 'a', 256);
    max[256] = '\0';
    assert_null(xc_check_name(max));
    char over[258];
    memset(over, 'a', 257);
    over[257] = '\0';
    assert_string_equal(xc_check_name(over), "too long");
    assert_string_equal(xc_check_name(""), "empty");
    assert_non_null(xc_check_name(NULL));
    const char *bad[] = {"a b",  "a\tb", "a&b", "a?b", "a/b", "a#b", "a<b", "a>b",
                         "a\"b", "a'b",  "a=b", "a;b", "a(b", "a)b", "é",   "a\x7f"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (!xc_check_name(bad[i]))
            fail_msg("name \"%s\" should be refused", bad[i]);
    assert_true(xc_has_forbidden("a;b"));
    assert_false(xc_has_forbidden("a b/c#d&e?"));
}

static void test_split(void **state)
{
    (void)state;
    struct core_pool *pool = core_pool_new();
    const char **v;
    size_t n;
    assert_true(xc_split_list(pool, "a,b,c", 3, &v, &n));
    assert_int_equal(n, 3);
    assert_string_equal(v[2], "c");
    assert_false(xc_split_list(pool, "a,b,c", 2, &v, &n));
    assert_false(xc_split_list(pool, "a,,c", 5, &v, &n));
    assert_false(xc_split_list(pool, "a,", 5, &v, &n));
    assert_false(xc_split_list(pool, "", 5, &v, &n));
    core_pool_free(pool);
}

static void test_default_types(void **state)
{
    (void)state;
    const char *why = NULL;
    json_t *body = parse("{\"id\":\"E1\",\"s\":\"x\",\"n\":1.5,\"i\":3,\"b\":true,\"o\":{\"k\":1},"
                         "\"a\":[1],\"z\":null}");
    const char *id, *type;
    json_t *attrs;
    assert_true(xc_entity_parse(body, true, &id, &type, &attrs, &why));
    assert_string_equal(id, "E1");
    assert_null(type); /* none given: "Thing" when created */
    const char *expect[][2] = {{"s", "Text"},    {"n", "Number"},          {"i", "Number"},
                               {"b", "Boolean"}, {"o", "StructuredValue"}, {"a", "StructuredValue"},
                               {"z", "None"}};
    for (size_t i = 0; i < ARRAY_SIZE(expect); i++) {
        json_t *a = json_object_get(attrs, expect[i][0]);
        assert_non_null(a);
        assert_string_equal(json_string_value(json_object_get(a, "type")), expect[i][1]);
        assert_true(json_is_object(json_object_get(a, "metadata")));
    }
    json_decref(attrs);
    json_decref(body);
}

static void test_normalized(void **state)
{
    (void)state;
    const char *why = NULL, *id, *type;
    json_t *attrs;
    json_t *ok = parse("{\"id\":\"R\",\"type\":\"Room\",\"t\":{\"value\":21,\"type\":\"Float\","
                       "\"metadata\":{\"acc\":{\"value\":0.9}}},\"novalue\":{\"type\":\"X\"}}");
    assert_true(xc_entity_parse(ok, false, &id, &type, &attrs, &why));
    json_t *md = json_object_get(json_object_get(attrs, "t"), "metadata");
    assert_string_equal(json_string_value(json_object_get(json_object_get(md, "acc"), "type")),
                        "Number");
    assert_true(json_is_null(json_object_get(json_object_get(attrs, "novalue"), "value")));
    json_decref(attrs);
    json_decref(ok);

    const char *bad[] = {
        "{\"type\":\"Room\"}",                              /* no id */
        "{\"id\":7}",                                       /* id not a string */
        "{\"id\":\"a b\"}",                                 /* forbidden in id */
        "{\"id\":\"R\",\"type\":\"\"}",                     /* empty type */
        "{\"id\":\"R\",\"t\":21}",                          /* normalized needs objects */
        "{\"id\":\"R\",\"t\":{\"value\":\"<script>\"}}",    /* forbidden in a value */
        "{\"id\":\"R\",\"t\":{\"value\":{\"k\":\"a;b\"}}}", /* also deep inside */
        "{\"id\":\"R\",\"t\":{\"value\":1,\"extra\":1}}",   /* unknown member */
        "{\"id\":\"R\",\"t\":{\"value\":1,\"metadata\":[]}}",
        "{\"id\":\"R\",\"t\":{\"value\":1,\"type\":3}}",
        "{\"id\":\"R\",\"dateCreated\":{\"value\":1}}", /* system attribute */
        "{\"id\":\"R\",\"a/b\":{\"value\":1}}",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        json_t *b = parse(bad[i]);
        attrs = NULL;
        why = NULL;
        if (xc_entity_parse(b, false, &id, &type, &attrs, &why))
            fail_msg("%s should be refused", bad[i]);
        assert_non_null(why);
        json_decref(b);
    }
    /* TextUnrestricted lets the forbidden characters through */
    json_t *tu = parse("{\"id\":\"R\",\"t\":{\"value\":\"a<b\",\"type\":\"TextUnrestricted\"}}");
    assert_true(xc_entity_parse(tu, false, &id, &type, &attrs, &why));
    json_decref(attrs);
    json_decref(tu);
}

static void test_merge(void **state)
{
    (void)state;
    struct core_pool *pool = core_pool_new();
    json_t *stored =
        attrs_of("{\"a\":{\"value\":1,\"metadata\":{\"m\":{\"value\":1}}},\"b\":{\"value\":2}}");
    xc_attrs_stamp(stored, "2026-01-01T00:00:00.000Z");
    struct xc_merge_result res;

    /* update: same value is no change; new value is; missing names reported */
    json_t *in =
        attrs_of("{\"a\":{\"value\":1,\"metadata\":{\"m\":{\"value\":1}}},\"b\":{\"value\":3},"
                 "\"c\":{\"value\":4}}");
    xc_attrs_merge(pool, stored, in, XC_MERGE_UPDATE, "2026-01-02T00:00:00.000Z", false, false,
                   &res);
    assert_int_equal(res.nchanged, 1);
    assert_string_equal(res.changed[0], "b");
    assert_int_equal(res.nmissing, 1);
    assert_string_equal(res.missing[0], "c");
    json_t *b = json_object_get(stored, "b");
    assert_int_equal(json_integer_value(json_object_get(b, "value")), 3);
    assert_string_equal(json_string_value(json_object_get(b, "dateCreated")),
                        "2026-01-01T00:00:00.000Z");
    assert_string_equal(json_string_value(json_object_get(b, "dateModified")),
                        "2026-01-02T00:00:00.000Z");
    assert_null(json_object_get(stored, "c"));
    json_decref(in);

    /* metadata merge by default, replaced with overwrite */
    in = attrs_of("{\"a\":{\"value\":5,\"metadata\":{\"n\":{\"value\":2}}}}");
    xc_attrs_merge(pool, stored, in, XC_MERGE_APPEND, "t3", false, false, &res);
    json_t *md = json_object_get(json_object_get(stored, "a"), "metadata");
    assert_non_null(json_object_get(md, "m"));
    assert_non_null(json_object_get(md, "n"));
    xc_attrs_merge(pool, stored, in, XC_MERGE_APPEND, "t4", true, false, &res);
    md = json_object_get(json_object_get(stored, "a"), "metadata");
    assert_null(json_object_get(md, "m"));
    /* forced: an unchanged attribute still counts */
    xc_attrs_merge(pool, stored, in, XC_MERGE_APPEND, "t5", true, false, &res);
    assert_int_equal(res.nchanged, 0);
    xc_attrs_merge(pool, stored, in, XC_MERGE_APPEND, "t5", true, true, &res);
    assert_int_equal(res.nchanged, 1);
    json_decref(in);

    /* strict append refuses existing names */
    in = attrs_of("{\"a\":{\"value\":0},\"d\":{\"value\":0}}");
    xc_attrs_merge(pool, stored, in, XC_MERGE_APPEND_STRICT, "t6", false, false, &res);
    assert_int_equal(res.nmissing, 1);
    assert_string_equal(res.missing[0], "a");
    assert_non_null(json_object_get(stored, "d"));
    json_decref(in);

    /* replace drops what is not given */
    in = attrs_of("{\"z\":{\"value\":0}}");
    xc_attrs_merge(pool, stored, in, XC_MERGE_REPLACE, "t7", false, false, &res);
    assert_int_equal(json_object_size(stored), 1);
    assert_non_null(json_object_get(stored, "z"));
    json_decref(in);

    /* delete */
    in = parse("{\"z\":null,\"y\":null}");
    xc_attrs_merge(pool, stored, in, XC_MERGE_DELETE, "t8", false, false, &res);
    assert_int_equal(json_object_size(stored), 0);
    assert_int_equal(res.nmissing, 1);
    json_decref(in);
    json_decref(stored);
    core_pool_free(pool);
}

static void test_render(void **state)
{
    (void)state;
    json_t *attrs = attrs_of(
        "{\"t\":{\"value\":21,\"metadata\":{\"acc\":{\"value\":0.9}}},\"n\":{\"value\":\"x\"}}");
    xc_attrs_stamp(attrs, "2026-01-01T00:00:00.000Z");
    struct xc_render r = {.format = XC_NORMALIZED};
    json_t *e = xc_entity_render("E", "T", attrs, "C", "M", &r);
    assert_string_equal(json_string_value(json_object_get(e, "id")), "E");
    /* stored dates never leak into the attribute */
    assert_null(json_object_get(json_object_get(e, "t"), "dateCreated"));
    assert_non_null(json_object_get(json_object_get(json_object_get(e, "t"), "metadata"), "acc"));
    json_decref(e);

    const char *list[] = {"n", "dateCreated", "missing"};
    const char *md[] = {"dateModified"};
    r = (struct xc_render){
        .format = XC_NORMALIZED, .attrs = list, .nattrs = 3, .metadata = md, .nmetadata = 1};
    e = xc_entity_render("E", "T", attrs, "C", "M", &r);
    assert_int_equal(json_object_size(e), 4); /* id, type, n, dateCreated */
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(e, "dateCreated"), "value")), "C");
    json_t *nmd = json_object_get(json_object_get(e, "n"), "metadata");
    assert_non_null(json_object_get(nmd, "dateModified"));
    json_decref(e);

    r = (struct xc_render){.format = XC_KEYVALUES};
    e = xc_entity_render("E", "T", attrs, "C", "M", &r);
    assert_int_equal(json_integer_value(json_object_get(e, "t")), 21);
    json_decref(e);

    const char *two[] = {"t", "n"};
    r = (struct xc_render){.format = XC_VALUES, .attrs = two, .nattrs = 2};
    e = xc_entity_render("E", "T", attrs, "C", "M", &r);
    assert_true(json_is_array(e));
    assert_int_equal(json_array_size(e), 2);
    assert_string_equal(json_string_value(json_array_get(e, 1)), "x");
    json_decref(e);

    const char *except[] = {"t"};
    r = (struct xc_render){.format = XC_KEYVALUES, .except = except, .nexcept = 1};
    e = xc_entity_render("E", "T", attrs, "C", "M", &r);
    assert_null(json_object_get(e, "t"));
    assert_non_null(json_object_get(e, "n"));
    json_decref(e);
    json_decref(attrs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),         cmocka_unit_test(test_split),
        cmocka_unit_test(test_default_types), cmocka_unit_test(test_normalized),
        cmocka_unit_test(test_merge),         cmocka_unit_test(test_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
