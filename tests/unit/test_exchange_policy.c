/*
 * Agreements and policy decisions without a database: the checks of a
 * proposal's terms, times and rates, the JSON shape, and the decision rules
 * over a given set of agreements (each deny reason, the most specific one,
 * narrowing, choice by the Renkei-Agreement header, the time window's
 * edges) and the per-minute rate window.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "exchange/xc_agreement.h"
#include "exchange/xc_policy.h"

static char **list(const char *const *v, size_t n)
{
    char **out = xcalloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = xstrdup(v[i]);
    return out;
}

/* An active read agreement takamatsu -> kanonji for Parking, purpose
 * traffic, all attributes, no window, no rate. */
static void make(struct xc_agreement *a, const char *id)
{
    static const char *const types[] = {"Parking"};
    static const char *const purposes[] = {"traffic"};
    memset(a, 0, sizeof *a);
    xsnprintf(a->id, sizeof a->id, "%s", id);
    xsnprintf(a->provider, sizeof a->provider, "takamatsu");
    xsnprintf(a->consumer, sizeof a->consumer, "kanonji");
    a->types = list(types, 1);
    a->ntypes = 1;
    a->purposes = list(purposes, 1);
    a->npurposes = 1;
    a->actions = XC_AG_READ;
    a->state = XC_AG_ACTIVE;
    a->version = 1;
}

static void set_list(char ***v, size_t *n, const char *const *items, size_t count)
{
    for (size_t i = 0; i < *n; i++)
        free((*v)[i]);
    free(*v);
    *v = list(items, count);
    *n = count;
}

static const char *const PARKING[] = {"Parking"};

static struct xc_policy_ask ask_default(void)
{
    struct xc_policy_ask q = {
        .provider = "takamatsu",
        .consumer = "kanonji",
        .action = XC_AG_READ,
        .purpose = "traffic",
        .types = PARKING,
        .ntypes = 1,
        .now = 1800000000,
    };
    return q;
}

static enum xc_deny decide(struct xc_agreement *ags, size_t n, const struct xc_policy_ask *q,
                           char *chosen)
{
    struct xc_decision d;
    xc_policy_decide_over(ags, n, q, &d);
    if (chosen)
        xsnprintf(chosen, XC_AG_ID_LEN + 1, "%s", d.has_ag ? d.ag.id : "");
    assert_true(d.permit == (d.deny == XC_DENY_NONE));
    assert_true(d.detail[0] != '\0');
    enum xc_deny r = d.deny;
    xc_decision_release(&d);
    return r;
}

static void test_check(void **state)
{
    (void)state;
    struct xc_agreement a;
    char err[300];
    make(&a, "ag_aaaaaaaaaaaaaaaaaaaaaaaa");
    assert_true(xc_agreement_check(&a, err, sizeof err));

    xsnprintf(a.consumer, sizeof a.consumer, "takamatsu");
    assert_false(xc_agreement_check(&a, err, sizeof err));
    assert_non_null(strstr(err, "same town"));
    xsnprintf(a.consumer, sizeof a.consumer, "Kanonji!");
    assert_false(xc_agreement_check(&a, err, sizeof err));
    assert_non_null(strstr(err, "consumer"));
    xsnprintf(a.consumer, sizeof a.consumer, "kanonji");

    set_list(&a.types, &a.ntypes, NULL, 0);
    assert_false(xc_agreement_check(&a, err, sizeof err));
    assert_non_null(strstr(err, "at least one"));
    static const char *const dup[] = {"A", "B", "A"};
    set_list(&a.types, &a.ntypes, dup, 3);
    assert_false(xc_agreement_check(&a, err, sizeof err));
    assert_non_null(strstr(err, "item 3 repeats item 1"));
    static const char *const badname[] = {"a b"};
    set_list(&a.types, &a.ntypes, badname, 1);
    assert_false(xc_agreement_check(&a, err, sizeof err));
    set_list(&a.types, &a.ntypes, PARKING, 1);

    const char *many[XC_AG_LIST_MAX + 1];
    char names[XC_AG_LIST_MAX + 1][8];
    for (int i = 0; i <= XC_AG_LIST_MAX; i++) {
        snprintf(names[i], sizeof names[i], "a%d", i);
        many[i] = names[i];
    }
    set_list(&a.attrs, &a.nattrs, many, XC_AG_LIST_MAX);
    assert_true(xc_agreement_check(&a, err, sizeof err));
    set_list(&a.attrs, &a.nattrs, many, XC_AG_LIST_MAX + 1);
    assert_false(xc_agreement_check(&a, err, sizeof err));
    assert_non_null(strstr(err, "more than 100"));
    set_list(&a.attrs, &a.nattrs, NULL, 0);

    a.actions = 0;
    assert_false(xc_agreement_check(&a, err, sizeof err));
    a.actions = 4;
    assert_false(xc_agreement_check(&a, err, sizeof err));
    a.actions = XC_AG_READ | XC_AG_WRITE;
    assert_true(xc_agreement_check(&a, err, sizeof err));

    a.valid_from = 1000;
    a.valid_until = 1000;
    assert_false(xc_agreement_check(&a, err, sizeof err));
    assert_non_null(strstr(err, "after valid_from"));
    a.valid_until = 1001;
    assert_true(xc_agreement_check(&a, err, sizeof err));

    a.rate_per_minute = -1;
    assert_false(xc_agreement_check(&a, err, sizeof err));
    a.rate_per_minute = XC_AG_RATE_MAX + 1;
    assert_false(xc_agreement_check(&a, err, sizeof err));
    a.rate_per_minute = XC_AG_RATE_MAX;
    assert_true(xc_agreement_check(&a, err, sizeof err));

    a.resident_attr = xstrdup("refResident");
    assert_false(xc_agreement_check(&a, err, sizeof err)); /* not personal */
    a.personal = true;
    xc_agreement_defaults(&a);
    assert_string_equal(a.consent_scope, "exchange.takamatsu");
    assert_string_equal(a.resident_attr, "refResident");
    assert_true(xc_agreement_check(&a, err, sizeof err));

    a.description = xstrdup("line\nbreak");
    assert_false(xc_agreement_check(&a, err, sizeof err));
    xc_agreement_release(&a);
}

static void test_purpose(void **state)
{
    (void)state;
    const char *good[] = {"traffic", "0day", "a.b_c-d", "x"};
    for (size_t i = 0; i < ARRAY_SIZE(good); i++)
        assert_null(xc_ag_check_purpose(good[i]));
    char max[XC_AG_PURPOSE_MAX + 2];
    memset(max, 'a', sizeof max);
    max[XC_AG_PURPOSE_MAX] = '\0';
    assert_null(xc_ag_check_purpose(max));
    max[XC_AG_PURPOSE_MAX] = 'a';
    max[XC_AG_PURPOSE_MAX + 1] = '\0';
    assert_non_null(xc_ag_check_purpose(max));
    const char *bad[] = {"", "Traffic", ".x", "-x", "a b", "a/b", "tr\xc3\xa4"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_non_null(xc_ag_check_purpose(bad[i]));
}

static void test_time_rate(void **state)
{
    (void)state;
    int64_t t;
    assert_true(xc_ag_time_parse("2026-04-01T00:00:00Z", &t));
    assert_int_equal(t, 1775001600);
    assert_true(xc_ag_time_parse("2026-04-01T09:00:00+09:00", &t));
    assert_int_equal(t, 1775001600);
    assert_true(xc_ag_time_parse("2026-04-01T00:00:00.123Z", &t));
    assert_int_equal(t, 1775001600);
    const char *bad[] = {"2026-04-01",           "2026-04-01T00:00:00",
                         "2026-02-30T00:00:00Z", "2026-04-01 00:00:00Z",
                         "2026-04-01T24:00:00Z", "2026-04-01T00:00:00+0900",
                         "1970-01-01T00:00:00Z", "tomorrow"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        assert_false(xc_ag_time_parse(bad[i], &t));
    char buf[32];
    xc_ag_time_format(1775001600, buf);
    assert_string_equal(buf, "2026-04-01T00:00:00Z");

    int r;
    assert_true(xc_ag_rate_parse("60/min", &r));
    assert_int_equal(r, 60);
    assert_true(xc_ag_rate_parse("0", &r));
    assert_int_equal(r, 0);
    assert_false(xc_ag_rate_parse("60/hour", &r));
    assert_false(xc_ag_rate_parse("-1", &r));
    assert_false(xc_ag_rate_parse("/min", &r));
    assert_false(xc_ag_rate_parse("1000001", &r));
}

static void test_json(void **state)
{
    (void)state;
    struct xc_agreement a;
    make(&a, "ag_aaaaaaaaaaaaaaaaaaaaaaaa");
    a.valid_until = 1775001600;
    json_t *j = xc_agreement_json(&a);
    const char *keys[] = {"id",         "provider",    "consumer",        "entity_types",
                          "attrs",      "actions",     "purposes",        "personal",
                          "valid_from", "valid_until", "rate_per_minute", "state"};
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        assert_non_null(json_object_get(j, keys[i]));
    assert_true(json_is_null(json_object_get(j, "valid_from")));
    assert_string_equal(json_string_value(json_object_get(j, "valid_until")),
                        "2026-04-01T00:00:00Z");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "active");
    assert_null(json_object_get(j, "consent_scope")); /* personal only */
    json_decref(j);
    xc_agreement_release(&a);
}

static void test_reasons(void **state)
{
    (void)state;
    struct xc_agreement a;
    make(&a, "ag_aaaaaaaaaaaaaaaaaaaaaaaa");
    struct xc_policy_ask q = ask_default();
    assert_int_equal(decide(&a, 1, &q, NULL), XC_DENY_NONE);

    /* nothing between these towns */
    struct xc_policy_ask other = q;
    other.consumer = "ayagawa";
    assert_int_equal(decide(&a, 1, &other, NULL), XC_DENY_NO_AGREEMENT);
    assert_int_equal(decide(NULL, 0, &q, NULL), XC_DENY_NO_AGREEMENT);

    struct xc_policy_ask p = q;
    p.purpose = NULL;
    assert_int_equal(decide(&a, 1, &p, NULL), XC_DENY_NO_PURPOSE);
    p.purpose = "marketing";
    assert_int_equal(decide(&a, 1, &p, NULL), XC_DENY_PURPOSE);

    static const char *const bus[] = {"Bus"};
    struct xc_policy_ask t = q;
    t.types = bus;
    assert_int_equal(decide(&a, 1, &t, NULL), XC_DENY_TYPE);

    struct xc_policy_ask w = q;
    w.action = XC_AG_WRITE;
    assert_int_equal(decide(&a, 1, &w, NULL), XC_DENY_ACTION);

    static const char *const agreed[] = {"availableSpotNumber"};
    set_list(&a.attrs, &a.nattrs, agreed, 1);
    static const char *const owner[] = {"owner"};
    struct xc_policy_ask at = q;
    at.attrs = owner;
    at.nattrs = 1;
    assert_int_equal(decide(&a, 1, &at, NULL), XC_DENY_ATTR);
    at.attrs = agreed;
    assert_int_equal(decide(&a, 1, &at, NULL), XC_DENY_NONE);

    a.state = XC_AG_PROPOSED;
    assert_int_equal(decide(&a, 1, &q, NULL), XC_DENY_PROPOSED);
    a.state = XC_AG_SUSPENDED;
    assert_int_equal(decide(&a, 1, &q, NULL), XC_DENY_SUSPENDED);
    a.state = XC_AG_REVOKED;
    assert_int_equal(decide(&a, 1, &q, NULL), XC_DENY_REVOKED);
    a.state = XC_AG_ACTIVE;

    /* the window is [from, until) */
    a.valid_from = q.now;
    a.valid_until = q.now + 60;
    assert_int_equal(decide(&a, 1, &q, NULL), XC_DENY_NONE);
    a.valid_from = q.now + 1;
    assert_int_equal(decide(&a, 1, &q, NULL), XC_DENY_NOT_YET);
    a.valid_from = q.now - 60;
    a.valid_until = q.now;
    assert_int_equal(decide(&a, 1, &q, NULL), XC_DENY_EXPIRED);
    a.valid_until = q.now + 1;
    assert_int_equal(decide(&a, 1, &q, NULL), XC_DENY_NONE);
    xc_agreement_release(&a);

    for (int d = XC_DENY_NONE; d <= XC_DENY_NOT_LINKED; d++)
        assert_string_not_equal(xc_deny_code((enum xc_deny)d), "?");
}

static void test_most_specific(void **state)
{
    (void)state;
    struct xc_agreement ags[3];
    make(&ags[0], "ag_aaaaaaaaaaaaaaaaaaaaaaaa"); /* other purpose */
    make(&ags[1], "ag_bbbbbbbbbbbbbbbbbbbbbbbb"); /* covers all, suspended */
    make(&ags[2], "ag_cccccccccccccccccccccccc"); /* other type */
    static const char *const tourism[] = {"tourism"};
    set_list(&ags[0].purposes, &ags[0].npurposes, tourism, 1);
    ags[1].state = XC_AG_SUSPENDED;
    static const char *const bus[] = {"Bus"};
    set_list(&ags[2].types, &ags[2].ntypes, bus, 1);
    struct xc_policy_ask q = ask_default();
    char chosen[XC_AG_ID_LEN + 1];
    assert_int_equal(decide(ags, 3, &q, chosen), XC_DENY_SUSPENDED);
    assert_string_equal(chosen, "ag_bbbbbbbbbbbbbbbbbbbbbbbb");

    /* without the suspended one, the purpose is what is missing */
    assert_int_equal(decide(ags, 1, &q, chosen), XC_DENY_PURPOSE);
    struct xc_agreement two[2] = {ags[2], ags[0]};
    assert_int_equal(decide(two, 2, &q, chosen), XC_DENY_PURPOSE);
    assert_string_equal(chosen, "ag_aaaaaaaaaaaaaaaaaaaaaaaa");

    /* the detail of a purpose denial names the pair's own agreement only */
    struct xc_policy_ask p = q;
    p.purpose = "marketing";
    struct xc_decision d;
    xc_policy_decide_over(ags, 1, &p, &d);
    assert_non_null(strstr(d.detail, "marketing"));
    assert_non_null(strstr(d.detail, "tourism"));
    xc_decision_release(&d);

    /* an agreement of another pair is never chosen nor named */
    struct xc_agreement foreign;
    make(&foreign, "ag_222222222222222222222222");
    xsnprintf(foreign.consumer, sizeof foreign.consumer, "ayagawa");
    set_list(&foreign.purposes, &foreign.npurposes, (const char *const[]){"secret.plan"}, 1);
    struct xc_agreement mix[2] = {foreign, ags[2]};
    xc_policy_decide_over(mix, 2, &q, &d);
    assert_int_equal(d.deny, XC_DENY_TYPE);
    assert_string_equal(d.ag.id, "ag_cccccccccccccccccccccccc");
    assert_null(strstr(d.detail, "secret.plan"));
    assert_null(strstr(d.detail, "ayagawa"));
    xc_decision_release(&d);
    xc_agreement_release(&foreign);
    for (int i = 0; i < 3; i++)
        xc_agreement_release(&ags[i]);
}

static void test_choice(void **state)
{
    (void)state;
    struct xc_agreement ags[3];
    make(&ags[0], "ag_cccccccccccccccccccccccc");
    make(&ags[1], "ag_aaaaaaaaaaaaaaaaaaaaaaaa");
    make(&ags[2], "ag_bbbbbbbbbbbbbbbbbbbbbbbb");
    static const char *const both[] = {"Parking", "Bus"};
    set_list(&ags[0].types, &ags[0].ntypes, both, 2);
    ags[1].rate_per_minute = 5;
    struct xc_policy_ask q = ask_default();
    char chosen[XC_AG_ID_LEN + 1];

    /* the first by id that covers everything */
    assert_int_equal(decide(ags, 3, &q, chosen), XC_DENY_NONE);
    assert_string_equal(chosen, "ag_aaaaaaaaaaaaaaaaaaaaaaaa");
    /* narrowing: no type named, still the first by id; the caller narrows
     * to its types */
    struct xc_policy_ask none = q;
    none.types = NULL;
    none.ntypes = 0;
    assert_int_equal(decide(ags, 3, &none, chosen), XC_DENY_NONE);
    assert_string_equal(chosen, "ag_aaaaaaaaaaaaaaaaaaaaaaaa");
    /* two types: only the one that covers both */
    struct xc_policy_ask two = q;
    two.types = both;
    two.ntypes = 2;
    assert_int_equal(decide(ags, 3, &two, chosen), XC_DENY_NONE);
    assert_string_equal(chosen, "ag_cccccccccccccccccccccccc");

    /* the Renkei-Agreement header picks one, and only that one */
    struct xc_policy_ask named = q;
    named.agreement = "ag_bbbbbbbbbbbbbbbbbbbbbbbb";
    assert_int_equal(decide(ags, 3, &named, chosen), XC_DENY_NONE);
    assert_string_equal(chosen, "ag_bbbbbbbbbbbbbbbbbbbbbbbb");
    ags[2].state = XC_AG_SUSPENDED;
    assert_int_equal(decide(ags, 3, &named, chosen), XC_DENY_SUSPENDED);
    named.agreement = "ag_zzzzzzzzzzzzzzzzzzzzzzzz";
    assert_int_equal(decide(ags, 3, &named, chosen), XC_DENY_NO_AGREEMENT);
    assert_string_equal(chosen, "");
    for (int i = 0; i < 3; i++)
        xc_agreement_release(&ags[i]);
}

static void test_rate(void **state)
{
    (void)state;
    struct xc_rate r = {0};
    int64_t t0 = 1800000000 - 1800000000 % 60; /* the start of a minute */
    for (int i = 0; i < 3; i++)
        assert_true(xc_rate_take(&r, 3, t0 + i));
    assert_false(xc_rate_take(&r, 3, t0 + 59));
    assert_true(xc_rate_take(&r, 3, t0 + 60)); /* a new minute */
    assert_true(xc_rate_take(&r, 3, t0 + 61));
    assert_true(xc_rate_take(&r, 3, t0 + 62));
    assert_false(xc_rate_take(&r, 3, t0 + 119));
    for (int i = 0; i < 1000; i++)
        assert_true(xc_rate_take(&r, 0, t0)); /* 0: no limit */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check),     cmocka_unit_test(test_purpose),
        cmocka_unit_test(test_time_rate), cmocka_unit_test(test_json),
        cmocka_unit_test(test_reasons),   cmocka_unit_test(test_most_specific),
        cmocka_unit_test(test_choice),    cmocka_unit_test(test_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
