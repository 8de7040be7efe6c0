#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "exchange/xc_subs.h"

#define MINIMAL                                                                                    \
    "{\"subject\": {\"entities\": [{\"idPattern\": \".*\", \"type\": \"Room\"}]}, "                \
    "\"notification\": {\"http\": {\"url\": \"http://localhost:1234/notify\"}}}"

/* Parses text; returns whether it passed, with err filled otherwise. */
static bool parse(const char *text, struct xc_sub *s, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, 0, &jerr);
    if (!doc)
        fail_msg("test document does not parse: %s: %s", jerr.text, text);
    bool ok = xc_sub_parse(doc, "/", s, err, errlen);
    json_decref(doc);
    return ok;
}

static void expect_error(const char *text, const char *want)
{
    struct xc_sub s;
    char err[300] = "";
    if (parse(text, &s, err, sizeof err)) {
        xc_sub_release(&s);
        fail_msg("accepted, expected \"%s\": %s", want, text);
    }
    if (!strstr(err, want))
        fail_msg("error \"%s\", expected \"%s\": %s", err, want, text);
}

static void test_minimal(void **state)
{
    (void)state;
    struct xc_sub s;
    char err[300];
    assert_true(parse(MINIMAL, &s, err, sizeof err));
    assert_int_equal(s.nent, 1);
    assert_string_equal(s.ent[0].id_pattern, ".*");
    assert_string_equal(s.ent[0].type, "Room");
    assert_int_equal(s.alteration, XC_ALT_CREATE | XC_ALT_CHANGE);
    assert_int_equal(s.status, XC_SUB_ACTIVE);
    assert_int_equal(s.format, XC_NORMALIZED);
    assert_false(s.has_expires);
    assert_false(s.custom);
    /* the stored shape: defaults spelled out as Orion shows them */
    char *spec = json_dumps(s.spec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(spec,
                        "{\"subject\":{\"entities\":[{\"idPattern\":\".*\",\"type\":\"Room\"}],"
                        "\"condition\":{\"attrs\":[]}},\"notification\":{\"attrs\":[],"
                        "\"onlyChangedAttrs\":false,\"attrsFormat\":\"normalized\","
                        "\"http\":{\"url\":\"http://localhost:1234/notify\"}}}");
    free(spec);
    xc_sub_release(&s);
}

static void test_full(void **state)
{
    (void)state;
    const char *text =
        "{\"description\": \"rivers\", \"subject\": {\"entities\": [{\"id\": \"R1\"}, "
        "{\"idPattern\": \"^Gauge\", \"typePattern\": \"^Water\"}], \"condition\": {\"attrs\": "
        "[\"level\", \"level\"], \"expression\": {\"q\": \"level>2\"}, \"alterationTypes\": "
        "[\"entityCreate\", \"entityDelete\"]}}, \"notification\": {\"httpCustom\": {\"url\": "
        "\"https://example.jp/n\", \"headers\": {\"X-Town\": \"kagawa\"}, \"qs\": {\"k\": \"v "
        "w\"}, "
        "\"method\": \"PUT\"}, \"exceptAttrs\": [\"secret\"], \"attrsFormat\": \"keyValues\", "
        "\"metadata\": [\"accuracy\"], \"onlyChangedAttrs\": true, \"timesSent\": 3}, "
        "\"expires\": \"2040-01-01T14:00:00.00Z\", \"status\": \"oneshot\", \"throttling\": 5, "
        "\"maxFailsLimit\": 3}";
    struct xc_sub s;
    char err[300] = "";
    if (!parse(text, &s, err, sizeof err))
        fail_msg("refused: %s", err);
    assert_int_equal(s.nent, 2);
    assert_int_equal(s.ncond, 1); /* duplicates dropped */
    assert_string_equal(s.q, "level>2");
    assert_int_equal(s.alteration, XC_ALT_CREATE | XC_ALT_DELETE);
    assert_true(s.custom);
    assert_true(s.except);
    assert_string_equal(s.method, "PUT");
    assert_int_equal(s.format, XC_KEYVALUES);
    assert_true(s.only_changed);
    assert_int_equal(s.status, XC_SUB_ONESHOT);
    assert_int_equal(s.throttling, 5);
    assert_int_equal(s.max_fails, 3);
    assert_true(s.has_expires);
    char t[32];
    xc_sub_time_format(s.expires_ms, t);
    assert_string_equal(t, "2040-01-01T14:00:00.000Z");
    /* read-only counters sent back are not stored */
    assert_null(json_object_get(json_object_get(s.spec, "notification"), "timesSent"));
    xc_sub_release(&s);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("{}", "empty payload");
    expect_error("[]", "Errors found in incoming JSON buffer");
    expect_error("{\"notification\": {\"http\": {\"url\": \"http://a\"}}}",
                 "no subject for subscription specified");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}}",
                 "no notification for subscription specified");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": {}}",
                 "http notification is missing");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": {\"http\": "
                 "{}}}",
                 "mandatory field /url/ missing");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": {\"http\": "
                 "{\"url\": \"ftp://a/b\"}}}",
                 "Invalid URL parsing notification url");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": {\"http\": "
                 "{\"url\": \"not a url\"}}}",
                 "Invalid URL parsing notification url");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": "
                 "{\"httpCustom\": {\"url\": \"gopher://a\"}}}",
                 "invalid custom /url/");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": {\"http\": "
                 "{\"url\": \"http://a\"}, \"httpCustom\": {\"url\": \"http://a\"}}}",
                 "notification has http and httpCustom");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": {\"http\": "
                 "{\"url\": \"http://a\"}, \"attrs\": [\"x\"], \"exceptAttrs\": [\"y\"]}}",
                 "http notification has attrs and exceptAttrs");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": {\"http\": "
                 "{\"url\": \"http://a\"}, \"exceptAttrs\": []}}",
                 "exceptAttrs is empty");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": {\"http\": "
                 "{\"url\": \"http://a\"}, \"attrsFormat\": \"legacy\"}}",
                 "invalid attrsFormat");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": {\"http\": "
                 "{\"url\": \"http://a\"}}, \"expires\": \"tomorrow\"}",
                 "expires has an invalid format");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": {\"http\": "
                 "{\"url\": \"http://a\"}}, \"status\": \"expired\"}",
                 "status is not valid");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": {\"http\": "
                 "{\"url\": \"http://a\"}}, \"colour\": \"blue\"}",
                 "unrecognized field in subscription: /colour/");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\", \"kind\": 1}]}, \"notification\": "
                 "{\"http\": {\"url\": \"http://a\"}}}",
                 "/subject/entities/kind/");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\", \"idPattern\": \"a\"}]}, "
                 "\"notification\": {\"http\": {\"url\": \"http://a\"}}}",
                 "has both /id/ and /idPattern/");
    expect_error("{\"subject\": {\"entities\": [{\"type\": \"T\"}]}, \"notification\": {\"http\": "
                 "{\"url\": \"http://a\"}}}",
                 "does not have /id/ nor /idPattern/");
    expect_error("{\"subject\": {\"entities\": [{\"idPattern\": \"(\"}]}, \"notification\": "
                 "{\"http\": {\"url\": \"http://a\"}}}",
                 "Invalid regex for entity idPattern");
    expect_error("{\"subject\": {\"entities\": [{\"idPattern\": \"a\", \"typePattern\": \"[\"}]}, "
                 "\"notification\": {\"http\": {\"url\": \"http://a\"}}}",
                 "Invalid regex for entity typePattern");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a b\"}]}, \"notification\": {\"http\": "
                 "{\"url\": \"http://a\"}}}",
                 "forbidden characters in /entities/ vector item /id/");
    expect_error("{\"subject\": {\"entities\": []}, \"notification\": {\"http\": {\"url\": "
                 "\"http://a\"}}}",
                 "no subject entities specified");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}], \"condition\": {}}, "
                 "\"notification\": {\"http\": {\"url\": \"http://a\"}}}",
                 "condition is empty");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}], \"condition\": {\"expression\": "
                 "{\"georel\": \"near;maxDistance:10\"}}}, \"notification\": {\"http\": {\"url\": "
                 "\"http://a\"}}}",
                 "partial geo expression");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}], \"condition\": {\"expression\": "
                 "{\"q\": \"\"}}}, \"notification\": {\"http\": {\"url\": \"http://a\"}}}",
                 "q is empty");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}], \"condition\": "
                 "{\"alterationTypes\": [\"entityRename\"]}}, \"notification\": {\"http\": "
                 "{\"url\": \"http://a\"}}}",
                 "alterationTypes element");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": "
                 "{\"httpCustom\": {\"url\": \"http://a\", \"method\": \"FETCH\"}}}",
                 "unknown method httpCustom notification");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": "
                 "{\"httpCustom\": {\"url\": \"http://a\", \"headers\": {}}}}",
                 "notification httpCustom headers is empty");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": "
                 "{\"httpCustom\": {\"url\": \"http://a\", \"headers\": {\"X-A\": 1}}}}",
                 "element is not a string");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": "
                 "{\"httpCustom\": {\"url\": \"http://a\", \"headers\": {\"Bad Name\": \"v\"}}}}",
                 "invalid name or value");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": {\"http\": "
                 "{\"url\": \"http://a\"}}, \"throttling\": -1}",
                 "throttling must be a whole number");
    expect_error("{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": {\"http\": "
                 "{\"url\": \"http://a\"}}, \"throttling\": 1.5}",
                 "throttling must be a whole number");
    expect_error("{\"description\": 7, \"subject\": {\"entities\": [{\"id\": \"a\"}]}, "
                 "\"notification\": {\"http\": {\"url\": \"http://a\"}}}",
                 "description is not a string");
    expect_error("{\"description\": \"<script>\", \"subject\": {\"entities\": [{\"id\": \"a\"}]}, "
                 "\"notification\": {\"http\": {\"url\": \"http://a\"}}}",
                 "forbidden characters in description");
}

static void test_bounds(void **state)
{
    (void)state;
    struct strbuf b;
    strbuf_init(&b, 1 << 20);
    /* a description of 1024 bytes passes, 1025 does not */
    for (int over = 0; over <= 1; over++) {
        b.len = 0;
        strbuf_adds(&b, "{\"description\": \"");
        for (int i = 0; i < XC_SUB_DESC_MAX + over; i++)
            strbuf_adds(&b, "d");
        strbuf_adds(&b, "\", \"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": "
                        "{\"http\": {\"url\": \"http://a\"}}}");
        struct xc_sub s;
        char err[300];
        bool ok = parse(b.buf, &s, err, sizeof err);
        if (ok)
            xc_sub_release(&s);
        assert_int_equal(ok, !over);
        if (over)
            assert_string_equal(err, "max description length exceeded");
    }
    /* 100 entities pass, 101 do not */
    for (int over = 0; over <= 1; over++) {
        b.len = 0;
        strbuf_adds(&b, "{\"subject\": {\"entities\": [");
        for (int i = 0; i < XC_SUB_ENTITIES_MAX + over; i++)
            strbuf_addf(&b, "%s{\"id\": \"e%d\"}", i ? "," : "", i);
        strbuf_adds(&b, "]}, \"notification\": {\"http\": {\"url\": \"http://a\"}}}");
        struct xc_sub s;
        char err[300];
        bool ok = parse(b.buf, &s, err, sizeof err);
        if (ok)
            xc_sub_release(&s);
        assert_int_equal(ok, !over);
    }
    /* 100 attrs pass, 101 do not */
    for (int over = 0; over <= 1; over++) {
        b.len = 0;
        strbuf_adds(&b, "{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": "
                        "{\"http\": {\"url\": \"http://a\"}, \"attrs\": [");
        for (int i = 0; i < XC_SUB_ATTRS_MAX + over; i++)
            strbuf_addf(&b, "%s\"a%d\"", i ? "," : "", i);
        strbuf_adds(&b, "]}}");
        struct xc_sub s;
        char err[300];
        bool ok = parse(b.buf, &s, err, sizeof err);
        if (ok)
            xc_sub_release(&s);
        assert_int_equal(ok, !over);
    }
    /* a URL of 2049 bytes is refused */
    b.len = 0;
    strbuf_adds(&b, "{\"subject\": {\"entities\": [{\"id\": \"a\"}]}, \"notification\": {\"http\": "
                    "{\"url\": \"http://a/");
    for (int i = 0; i < XC_SUB_URL_MAX; i++)
        strbuf_adds(&b, "u");
    strbuf_adds(&b, "\"}}}");
    expect_error(b.buf, "longer than 2048");
    strbuf_release(&b);
}

static void test_times(void **state)
{
    (void)state;
    int64_t ms;
    char t[32];
    assert_true(xc_sub_time_parse("2040-01-01T14:00:00.00Z", &ms));
    xc_sub_time_format(ms, t);
    assert_string_equal(t, "2040-01-01T14:00:00.000Z");
    assert_true(xc_sub_time_parse("2040-01-01", &ms));
    xc_sub_time_format(ms, t);
    assert_string_equal(t, "2040-01-01T00:00:00.000Z");
    assert_true(xc_sub_time_parse("2040-01-01T14:30+09:00", &ms));
    xc_sub_time_format(ms, t);
    assert_string_equal(t, "2040-01-01T05:30:00.000Z");
    assert_true(xc_sub_time_parse("2024-02-29T235959.5-0130", &ms));
    xc_sub_time_format(ms, t);
    assert_string_equal(t, "2024-03-01T01:29:59.500Z");
    assert_true(xc_sub_time_parse("1970-01-01T00:00:00Z", &ms));
    assert_int_equal(ms, 0);
    const char *bad[] = {"",
                         "2040",
                         "2040-13-01",
                         "2023-02-29",
                         "2040-01-01T24:00",
                         "2040-01-01T14:00:00.Z",
                         "2040-01-01+09:00",
                         "2040-01-01T14:00:00Zjunk",
                         "2040-01-01 14:00:00",
                         "tomorrow"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (xc_sub_time_parse(bad[i], &ms))
            fail_msg("\"%s\" should not parse", bad[i]);
}

static void test_paths(void **state)
{
    (void)state;
    assert_true(xc_sub_path_match("/", "/"));
    assert_false(xc_sub_path_match("/", "/a"));
    assert_true(xc_sub_path_match("/#", "/"));
    assert_true(xc_sub_path_match("/#", "/a/b"));
    assert_true(xc_sub_path_match("/a", "/a"));
    assert_false(xc_sub_path_match("/a", "/a/b"));
    assert_true(xc_sub_path_match("/a/#", "/a"));
    assert_true(xc_sub_path_match("/a/#", "/a/b/c"));
    assert_false(xc_sub_path_match("/a/#", "/ab"));
    assert_false(xc_sub_path_match("/a/#", "/"));
}

static void test_matching(void **state)
{
    (void)state;
    struct xc_sub s;
    char err[300] = "";
    const char *text = "{\"subject\": {\"entities\": [{\"id\": \"Room1\"}, {\"idPattern\": "
                       "\"^Gauge[0-9]+$\", \"typePattern\": \"^River\"}], \"condition\": "
                       "{\"attrs\": [\"level\"]}}, \"notification\": {\"http\": {\"url\": "
                       "\"http://a\"}}}";
    if (!parse(text, &s, err, sizeof err))
        fail_msg("refused: %s", err);
    assert_true(xc_sub_entity_match(&s, "Room1", "Room"));
    assert_true(xc_sub_entity_match(&s, "Room1", "Anything"));
    assert_false(xc_sub_entity_match(&s, "Room2", "Room"));
    assert_true(xc_sub_entity_match(&s, "Gauge12", "RiverLevel"));
    assert_false(xc_sub_entity_match(&s, "Gauge12", "Rain"));
    assert_false(xc_sub_entity_match(&s, "Gauge12x", "RiverLevel"));

    const char *level[] = {"level"}, *rain[] = {"rain"};
    struct xc_change ch = {.changed = level, .nchanged = 1};
    assert_true(xc_sub_condition_match(&s, &ch)); /* an update of level */
    ch.changed = rain;
    assert_false(xc_sub_condition_match(&s, &ch)); /* of another attribute */
    ch.entity_created = true;
    assert_false(xc_sub_condition_match(&s, &ch)); /* created without level */
    ch.changed = level;
    assert_true(xc_sub_condition_match(&s, &ch));
    ch.entity_created = false;
    ch.entity_deleted = true;
    ch.nchanged = 0;
    assert_false(xc_sub_condition_match(&s, &ch)); /* deletes need entityDelete */
    ch.entity_deleted = false;
    assert_false(xc_sub_condition_match(&s, &ch)); /* no actual change: entityUpdate only */
    xc_sub_release(&s);

    text = "{\"subject\": {\"entities\": [{\"idPattern\": \".*\"}], \"condition\": "
           "{\"alterationTypes\": [\"entityDelete\", \"entityUpdate\"]}}, \"notification\": "
           "{\"http\": {\"url\": \"http://a\"}}}";
    if (!parse(text, &s, err, sizeof err))
        fail_msg("refused: %s", err);
    struct xc_change del = {.entity_deleted = true};
    assert_true(xc_sub_condition_match(&s, &del));
    struct xc_change noop = {0};
    assert_true(xc_sub_condition_match(&s, &noop));
    struct xc_change create = {.entity_created = true, .changed = level, .nchanged = 1};
    assert_false(xc_sub_condition_match(&s, &create));
    xc_sub_release(&s);
}

static void test_render(void **state)
{
    (void)state;
    struct xc_sub_row row = {
        .id = "0123456789abcdef01234567",
        .spec = "{\"description\":\"d\",\"subject\":{\"entities\":[{\"id\":\"a\"}],\"condition\":"
                "{\"attrs\":[]}},\"notification\":{\"attrs\":[],\"onlyChangedAttrs\":false,"
                "\"attrsFormat\":\"normalized\",\"http\":{\"url\":\"http://a\"}},"
                "\"throttling\":5}",
        .status = "expired",
        .expires = "2020-01-01T00:00:00.000Z",
        .times_sent = 2,
        .fails_counter = 1,
        .last_notification = "2020-01-01T00:00:00.000Z",
        .last_failure = "2020-01-01T00:00:00.000Z",
        .last_failure_reason = "Couldn't connect to server",
    };
    json_t *o = xc_sub_render(&row);
    assert_non_null(o);
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(
        text,
        "{\"id\":\"0123456789abcdef01234567\",\"description\":\"d\",\"subject\":{\"entities\":"
        "[{\"id\":\"a\"}],\"condition\":{\"attrs\":[]}},\"notification\":{\"attrs\":[],"
        "\"onlyChangedAttrs\":false,\"attrsFormat\":\"normalized\",\"http\":{\"url\":"
        "\"http://a\"},\"timesSent\":2,\"lastNotification\":\"2020-01-01T00:00:00.000Z\","
        "\"lastFailure\":\"2020-01-01T00:00:00.000Z\",\"lastFailureReason\":\"Couldn't "
        "connect to server\",\"failsCounter\":1},\"expires\":\"2020-01-01T00:00:00.000Z\","
        "\"status\":\"expired\",\"throttling\":5}");
    free(text);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal),  cmocka_unit_test(test_full),
        cmocka_unit_test(test_errors),   cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_times),    cmocka_unit_test(test_paths),
        cmocka_unit_test(test_matching), cmocka_unit_test(test_render),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
