/*
 * A subscription's expression (q, mq, geo) is evaluated on the entity as
 * the change being matched left it, not on the entity as it is in the
 * database when the matcher gets to the change: with two quick updates
 * (25, then 35, under "temperature>30"), the first must not be notified
 * because the second has committed meanwhile. Here the stored entity and
 * the change disagree on purpose, and the change decides.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/db.h"
#include "core/log.h"
#include "exchange/xc_ngsi.h"
#include "exchange/xc_subs.h"
#include "tests/support/tsup.h"

#define TOWN "kagawa_subx"

static const char *conninfo;

static int setup(void **state)
{
    (void)state;
    core_log_set_level(CORE_LOG_ERROR);
    conninfo = tsup_db_create("t_xc_subx");
    if (!conninfo)
        return -1;
    tsup_exec(conninfo, "INSERT INTO renkei.tenants (id, name, city_os) VALUES "
                        "('" TOWN "', 'Kagawa subscriptions', 'hosted')");
    /* what the database holds now: 35 degrees, at Takamatsu station */
    tsup_exec(conninfo,
              "INSERT INTO renkei.ngsi_entities (tenant_id, service_path, id, type, attrs, geom) "
              "VALUES ('" TOWN "', '/', 'Room1', 'Room', '{\"temperature\": {\"type\": \"Number\", "
              "\"value\": 35, \"metadata\": {\"unit\": {\"type\": \"Text\", \"value\": \"C\"}}}, "
              "\"location\": {\"type\": \"geo:point\", \"value\": \"34.3503, 134.0467\"}}', "
              "public.ST_SetSRID(public.ST_MakePoint(134.0467, 34.3503), 4326))");
    core_db_init(conninfo, 2);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    core_db_shutdown();
    tsup_db_drop();
    return 0;
}

static void parse_sub(const char *spec, struct xc_sub *s)
{
    json_t *doc = json_loads(spec, 0, NULL);
    assert_non_null(doc);
    char err[300];
    if (!xc_sub_parse(doc, "/", s, err, sizeof err))
        fail_msg("subscription does not parse: %s", err);
    json_decref(doc);
}

/* Whether s's expression holds for Room1 as a change with attrs left it. */
static bool matches(const struct xc_sub *s, const char *attrs_text)
{
    json_t *attrs = json_loads(attrs_text, 0, NULL);
    assert_non_null(attrs);
    const char *changed[] = {"temperature"};
    struct xc_change ch = {.tenant = TOWN,
                           .service_path = "/",
                           .id = "Room1",
                           .type = "Room",
                           .attrs = attrs,
                           .created = "2026-11-27T00:00:00.000Z",
                           .modified = "2026-11-27T00:00:01.000Z",
                           .changed = changed,
                           .nchanged = 1};
    bool ok = false;
    assert_int_equal(xc_subs_db_expr_match(TOWN, s, &ch, &ok), XC_SUBS_OK);
    json_decref(attrs);
    return ok;
}

static void test_q_on_the_change(void **state)
{
    (void)state;
    struct xc_sub s;
    parse_sub("{\"subject\": {\"entities\": [{\"id\": \"Room1\", \"type\": \"Room\"}], "
              "\"condition\": {\"expression\": {\"q\": \"temperature>30\"}}}, "
              "\"notification\": {\"http\": {\"url\": \"http://127.0.0.1:9/n\"}}}",
              &s);
    /* the database holds 35; the change being matched set 25 */
    assert_false(matches(&s, "{\"temperature\": {\"type\": \"Number\", \"value\": 25}}"));
    assert_true(matches(&s, "{\"temperature\": {\"type\": \"Number\", \"value\": 35}}"));
    xc_sub_release(&s);
}

static void test_mq_on_the_change(void **state)
{
    (void)state;
    struct xc_sub s;
    parse_sub("{\"subject\": {\"entities\": [{\"id\": \"Room1\", \"type\": \"Room\"}], "
              "\"condition\": {\"expression\": {\"mq\": \"temperature.unit==F\"}}}, "
              "\"notification\": {\"http\": {\"url\": \"http://127.0.0.1:9/n\"}}}",
              &s);
    /* the database says C */
    assert_true(matches(&s, "{\"temperature\": {\"type\": \"Number\", \"value\": 95, \"metadata\": "
                            "{\"unit\": {\"type\": \"Text\", \"value\": \"F\"}}}}"));
    assert_false(matches(&s, "{\"temperature\": {\"type\": \"Number\", \"value\": 35, "
                             "\"metadata\": {\"unit\": {\"type\": \"Text\", \"value\": \"C\"}}}}"));
    xc_sub_release(&s);
}

static void test_geo_on_the_change(void **state)
{
    (void)state;
    struct xc_sub s;
    parse_sub("{\"subject\": {\"entities\": [{\"id\": \"Room1\", \"type\": \"Room\"}], "
              "\"condition\": {\"expression\": {\"georel\": \"near;maxDistance:2000\", "
              "\"geometry\": \"point\", \"coords\": \"34.3503,134.0467\"}}}, "
              "\"notification\": {\"http\": {\"url\": \"http://127.0.0.1:9/n\"}}}",
              &s);
    /* the database has it at the station; the change moved it to Kotohira,
     * about 30 km away, and back */
    assert_false(matches(&s, "{\"location\": {\"type\": \"geo:point\", \"value\": "
                             "\"34.1880, 133.8200\"}}"));
    assert_true(matches(&s, "{\"location\": {\"type\": \"geo:point\", \"value\": "
                            "\"34.3510, 134.0470\"}}"));
    /* no location at all: no geographic match */
    assert_false(matches(&s, "{\"temperature\": {\"type\": \"Number\", \"value\": 1}}"));
    xc_sub_release(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q_on_the_change),
        cmocka_unit_test(test_mq_on_the_change),
        cmocka_unit_test(test_geo_on_the_change),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
