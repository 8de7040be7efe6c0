#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/cidr.h"
#include "core/config.h"

static bool in(const char *range, const char *addr)
{
    struct core_cidr c;
    assert_true(core_cidr_parse(range, &c));
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    struct sockaddr_in a4 = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, addr, &a4.sin_addr) == 1)
        return core_cidr_match(&c, (struct sockaddr *)&a4);
    assert_int_equal(inet_pton(AF_INET6, addr, &a6.sin6_addr), 1);
    return core_cidr_match(&c, (struct sockaddr *)&a6);
}

static void test_match(void **state)
{
    (void)state;
    assert_true(in("127.0.0.0/8", "127.1.2.3"));
    assert_false(in("127.0.0.0/8", "128.0.0.1"));
    assert_true(in("169.254.0.0/16", "169.254.169.254"));
    assert_true(in("10.0.0.0/8", "10.255.255.255"));
    assert_false(in("10.0.0.0/9", "10.128.0.1"));
    assert_true(in("192.168.1.7", "192.168.1.7"));
    assert_false(in("192.168.1.7", "192.168.1.8"));
    assert_true(in("0.0.0.0/0", "8.8.8.8"));
    assert_true(in("fe80::/10", "fe80::1"));
    assert_true(in("fe80::/10", "febf::1"));
    assert_false(in("fe80::/10", "fec0::1"));
    assert_true(in("::1", "::1"));
    /* an IPv4-mapped IPv6 address is its IPv4 address */
    assert_true(in("127.0.0.0/8", "::ffff:127.0.0.1"));
    assert_true(in("10.0.0.0/8", "64:ff9b::a00:5")); /* NAT64 */
    assert_false(in("10.0.0.0/8", "64:ff9b:1::a00:5"));
    assert_false(in("::1", "127.0.0.1"));
    assert_false(in("127.0.0.0/8", "::1"));
}

static void test_parse(void **state)
{
    (void)state;
    struct core_cidr c;
    const char *bad[] = {"",       "/8",          "10.0.0.0/33",  "10.0.0.0/-1", "10.0.0/8",
                         "::/129", "10.0.0.0/8x", "host.example", "10.0.0.0 /8"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
        if (core_cidr_parse(bad[i], &c))
            fail_msg("\"%s\" should be refused", bad[i]);
    struct core_cidr *list;
    size_t n;
    char *why;
    assert_true(core_cidr_parse_list(" 10.0.0.0/8 ,fe80::/10,127.0.0.1 ", &list, &n, &why));
    assert_int_equal(n, 3);
    assert_int_equal(list[2].bits, 32);
    free(list);
    assert_true(core_cidr_parse_list("none", &list, &n, &why));
    assert_int_equal(n, 0);
    free(list);
    assert_false(core_cidr_parse_list("10.0.0.0/8,,fe80::/10", &list, &n, &why));
    assert_string_equal(why, "");
    free(why);
    assert_false(core_cidr_parse_list("10.0.0.0/8, nope", &list, &n, &why));
    assert_string_equal(why, "nope");
    free(why);
    assert_true(core_cidr_parse_list(CORE_NOTIFY_DENY_DEFAULT, &list, &n, &why));
    assert_int_equal(n, 9);
    free(list);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
