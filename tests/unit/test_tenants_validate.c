#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tenants/tn.h"

static void test_ids(void **state)
{
    (void)state;
    assert_null(tn_check_id("takamatsu"));
    assert_null(tn_check_id("town_01"));
    assert_null(tn_check_id("a"));
    char max[51];
    memset(max, 'a', 50);
    max[50] = '\0';
    assert_null(tn_check_id(max));
    char over[52];
    memset(over, 'a', 51);
    over[51] = '\0';
    assert_non_null(tn_check_id(over));
    const char *bad[] = {"",  "Takamatsu", "taka-matsu", "taka matsu", "高松",
                         "*", "a/b",       "a.b",        "a'b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (!tn_check_id(bad[i]))
            fail_msg("id \"%s\" should be refused", bad[i]);
    }
    assert_non_null(tn_check_id(NULL));
}

static void test_names(void **state)
{
    (void)state;
    assert_null(tn_check_name("高松市"));
    assert_null(tn_check_name("Takamatsu City"));
    /* 200 characters of three bytes each is fine; 201 is not */
    char jp[201 * 3 + 1];
    for (int i = 0; i < 201; i++)
        memcpy(jp + 3 * i, "市", 3);
    jp[200 * 3] = '\0';
    assert_null(tn_check_name(jp));
    jp[200 * 3] = "市"[0];
    jp[201 * 3] = '\0';
    assert_non_null(tn_check_name(jp));
    /* not text */
    assert_non_null(tn_check_name(""));
    assert_non_null(tn_check_name(NULL));
    assert_non_null(tn_check_name("a\x01z"));           /* control */
    assert_non_null(tn_check_name("tab\there"));        /* control */
    assert_non_null(tn_check_name("\xc2\x85"));         /* C1 control */
    assert_non_null(tn_check_name("\xff\xfe"));         /* not UTF-8 */
    assert_non_null(tn_check_name("\xe9\xab"));         /* truncated */
    assert_non_null(tn_check_name("\xc0\xaf"));         /* overlong */
    assert_non_null(tn_check_name("\xed\xa0\x80"));     /* surrogate */
    assert_non_null(tn_check_name("\xf4\x90\x80\x80")); /* past U+10FFFF */
}

static void test_upstreams(void **state)
{
    (void)state;
    struct tn_upstream up = {.url = "https://orion.example.jp:1026", .auth = TN_AUTH_NONE};
    assert_null(tn_check_upstream(&up));
    up.url = "http://10.0.0.5:1026/orion";
    assert_null(tn_check_upstream(&up));
    up.url = "ftp://orion";
    assert_non_null(tn_check_upstream(&up));
    up.url = "https://user:pw@orion";
    assert_non_null(tn_check_upstream(&up));
    up.url = "https://orion#x";
    assert_non_null(tn_check_upstream(&up));
    up.url = NULL;
    assert_non_null(tn_check_upstream(&up));
    up.url = "https://orion";
    up.fiware_service = "Bad-Service";
    assert_non_null(tn_check_upstream(&up));
    up.fiware_service = "town";
    assert_null(tn_check_upstream(&up));

    up.auth = TN_AUTH_BEARER;
    assert_non_null(tn_check_upstream(&up)); /* no token */
    up.secret = "abc.def-ghi";
    up.secret_len = strlen(up.secret);
    assert_null(tn_check_upstream(&up));
    up.secret = "has space";
    up.secret_len = strlen(up.secret);
    assert_non_null(tn_check_upstream(&up));
    up.secret = "abc";
    up.secret_len = 3;
    up.client_id = "x"; /* a bearer takes only a token */
    assert_non_null(tn_check_upstream(&up));
    up.client_id = NULL;

    up.auth = TN_AUTH_CLIENT_CREDENTIALS;
    assert_non_null(tn_check_upstream(&up)); /* no token_url, client_id */
    up.token_url = "https://idp.town.example/token";
    up.client_id = "renkei-hub";
    assert_null(tn_check_upstream(&up));
    up.token_url = "javascript:alert(1)";
    assert_non_null(tn_check_upstream(&up));
    up.token_url = "https://idp.town.example/token";
    up.secret_len = TN_SECRET_MAX + 1;
    assert_non_null(tn_check_upstream(&up));
    up.secret_len = 3;
    up.auth = TN_AUTH_NONE; /* credentials without a type */
    assert_non_null(tn_check_upstream(&up));
}

static void test_json_has_no_secret(void **state)
{
    (void)state;
    struct tn_tenant t = {.name = "善通寺市", .hosted = false, .version = 3};
    xsnprintf(t.id, sizeof t.id, "zentsuji");
    t.up.url = "https://orion.zentsuji.example";
    t.up.auth = TN_AUTH_CLIENT_CREDENTIALS;
    t.up.token_url = "https://idp.example/token";
    t.up.client_id = "hub";
    t.up.secret = "TOPSECRET";
    t.up.secret_len = 9;
    json_t *j = tn_tenant_json(&t);
    char *text = json_dumps(j, 0);
    assert_null(strstr(text, "TOPSECRET"));
    assert_non_null(strstr(text, "\"client_id\": \"hub\""));
    assert_string_equal(json_string_value(json_object_get(j, "name")), "善通寺市");
    assert_true(json_is_null(json_object_get(j, "parent")));
    free(text);
    json_decref(j);
    /* another town's view: a remote city OS without its address */
    t.up.url = NULL;
    j = tn_tenant_json(&t);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "city_os"), "kind")),
                        "remote");
    assert_null(json_object_get(json_object_get(j, "city_os"), "url"));
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_upstreams),
        cmocka_unit_test(test_json_has_no_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
