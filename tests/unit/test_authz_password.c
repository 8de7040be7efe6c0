/*
 * Residents' password hashes: the stored format, verification against a
 * value computed by another scrypt implementation (Python's hashlib), wrong
 * passwords, tampered and malformed strings, the rehash flag, the cost
 * bounds of RENKEI_SCRYPT and of stored hashes, and the login rules. Cheap
 * parameters come through the configuration struct.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <regex.h>

#include "authz/az_resident.h"
#include "core/config.h"

static const char pw[] = "correct horse battery";

/* hashlib.scrypt(b"correct horse battery", salt=bytes(range(16)), n, r, p,
 * dklen=32), written in our format */
static const char known_12_8_1[] =
    "$scrypt$ln=12,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o";
static const char known_13_2_3[] =
    "$scrypt$ln=13,r=2,p=3$AAECAwQFBgcICQoLDA0ODw$Vdk+gb/afXkzsfKUwt8bjN19JLGj7oDoLnKtfX+E0jM";

static void configure(int ln, int r, int p)
{
    core_cfg.scrypt_ln = ln;
    core_cfg.scrypt_r = r;
    core_cfg.scrypt_p = p;
}

static int setup(void **state)
{
    (void)state;
    configure(12, 1, 1);
    return 0;
}

static bool verify(const char *password, const char *stored, bool *rehash)
{
    return az_password_verify(password, strlen(password), stored, rehash);
}

static void test_round_trip(void **state)
{
    (void)state;
    char *h = az_password_hash(pw, strlen(pw));
    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^\\$scrypt\\$ln=12,r=1,p=1\\$[A-Za-z0-9+/]{22}\\$[A-Za-z0-9+/]{43}$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    if (regexec(&re, h, 0, NULL, 0) != 0)
        fail_msg("unexpected format: %s", h);
    regfree(&re);
    bool rehash = true;
    assert_true(verify(pw, h, &rehash));
    assert_false(rehash);
    assert_true(az_password_verify(pw, strlen(pw), h, NULL)); /* rehash may be NULL */
    /* a new salt every time */
    char *h2 = az_password_hash(pw, strlen(pw));
    assert_string_not_equal(h, h2);
    assert_true(verify(pw, h2, NULL));
    /* the length counts, not a NUL */
    char with_nul[] = "abc\0defghij";
    char *h3 = az_password_hash(with_nul, sizeof with_nul - 1);
    assert_true(az_password_verify(with_nul, sizeof with_nul - 1, h3, NULL));
    assert_false(az_password_verify(with_nul, 3, h3, NULL));
    free(h);
    free(h2);
    free(h3);
}

static void test_known_answers(void **state)
{
    (void)state;
    configure(12, 1, 1);
    bool rehash = true;
    assert_true(verify(pw, known_12_8_1, &rehash));
    assert_false(rehash);
    assert_true(verify(pw, known_13_2_3, &rehash));
    assert_false(rehash);
}

static void test_wrong_password(void **state)
{
    (void)state;
    const char *wrong[] = {"", "correct horse batter", "correct horse battery ",
                           "Correct horse battery", "correct horse batterz"};
    for (size_t i = 0; i < ARRAY_SIZE(wrong); i++) {
        bool rehash = true;
        if (verify(wrong[i], known_12_8_1, &rehash))
            fail_msg("\"%s\" verified", wrong[i]);
        assert_false(rehash);
    }
}

static void test_tampered(void **state)
{
    (void)state;
    const char *tampered[] = {
        /* another salt byte */
        "$scrypt$ln=12,r=8,p=1$AAECAwQFBgcICQoLDA0ODg$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$ln=12,r=8,p=1$BAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        /* another hash byte */
        "$scrypt$ln=12,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$nQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$ln=12,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2k",
        /* other parameters */
        "$scrypt$ln=13,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$ln=12,r=7,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$ln=12,r=8,p=2$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
    };
    for (size_t i = 0; i < ARRAY_SIZE(tampered); i++) {
        if (verify(pw, tampered[i], NULL))
            fail_msg("tampered hash %zu verified", i);
    }
}

static void test_malformed(void **state)
{
    (void)state;
    char long_one[300];
    snprintf(long_one, sizeof long_one, "%s%0200d", known_12_8_1, 0);
    const char *bad[] = {
        "",
        "$scrypt$",
        "$scrypt$ln=12,r=8,p=1",
        "$scrypt$ln=12,r=8,p=1$AAECAwQFBgcICQoLDA0ODw",
        "$scrypt$ln=12,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$",
        "$scrypt$ln=12,r=8,p=1$$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        /* padding, which the format leaves out */
        "$scrypt$ln=12,r=8,p=1$AAECAwQFBgcICQoLDA0ODw==$"
        "mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$ln=12,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o=",
        /* a salt or hash of another length */
        "$scrypt$ln=12,r=8,p=1$AAECAwQFBgcICQoLDA0OD$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$ln=12,r=8,p=1$AAECAwQFBgcICQoLDA0ODwA$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$ln=12,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2",
        "$scrypt$ln=12,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2oA",
        /* the same bytes spelled with non-zero unused bits */
        "$scrypt$ln=12,r=8,p=1$AAECAwQFBgcICQoLDA0ODx$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$ln=12,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2p",
        /* base64url instead of base64 */
        "$scrypt$ln=13,r=2,p=3$AAECAwQFBgcICQoLDA0ODw$Vdk-gb_afXkzsfKUwt8bjN19JLGj7oDoLnKtfX-E0jM",
        /* the parameters' spelling */
        "$scrypt$ln=012,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$r=8,ln=12,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$ln=12, r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$LN=12,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$ln=12,r=8$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$ln=12,r=8,p=1,x=1$AAECAwQFBgcICQoLDA0ODw$"
        "mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$ln=+12,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$ln=12,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o$",
        /* another scheme */
        "$2b$12$AAECAwQFBgcICQoLDA0ODwmQODSPipO7v2IkeXX6QyBSRUHAy5goa",
        "$SCRYPT$ln=12,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        long_one,
    };
    assert_false(az_password_verify(pw, strlen(pw), NULL, NULL));
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        bool rehash = true;
        if (verify(pw, bad[i], &rehash))
            fail_msg("malformed \"%s\" verified", bad[i]);
        assert_false(rehash);
    }
}

static void test_rehash(void **state)
{
    (void)state;
    configure(12, 1, 1);
    char *h = az_password_hash(pw, strlen(pw));
    bool rehash;
    configure(13, 1, 1); /* more work configured since */
    assert_true(verify(pw, h, &rehash));
    assert_true(rehash);
    configure(12, 2, 1);
    assert_true(verify(pw, h, &rehash));
    assert_true(rehash);
    configure(12, 1, 2);
    assert_true(verify(pw, h, &rehash));
    assert_true(rehash);
    /* a wrong password says nothing about rehashing */
    assert_false(verify("wrong password", h, &rehash));
    assert_false(rehash);
    /* stronger than configured: kept */
    configure(12, 1, 1);
    assert_true(verify(pw, known_12_8_1, &rehash));
    assert_false(rehash);
    /* the new hash follows the configuration */
    configure(13, 2, 1);
    char *h2 = az_password_hash(pw, strlen(pw));
    assert_int_equal(strncmp(h2, "$scrypt$ln=13,r=2,p=1$", 22), 0);
    assert_true(verify(pw, h2, &rehash));
    assert_false(rehash);
    free(h);
    free(h2);
    configure(12, 1, 1);
}

static void test_default_parameters(void **state)
{
    (void)state;
    /* not configured at all (a caller that never loaded the configuration):
     * the default, OWASP's ln=17,r=8,p=1 */
    configure(0, 0, 0);
    char *d = az_password_dummy();
    assert_int_equal(strncmp(d, "$scrypt$ln=17,r=8,p=1$", 22), 0);
    free(d);
    configure(12, 1, 1);
    d = az_password_dummy();
    assert_int_equal(strncmp(d, "$scrypt$ln=12,r=1,p=1$", 22), 0);
    /* the dummy is well-formed and matches nothing */
    assert_false(verify(pw, d, NULL));
    assert_false(verify("", d, NULL));
    free(d);
}

static void test_cost_bounds(void **state)
{
    (void)state;
    struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"ln=17,r=8,p=1", true},           {"ln=12,r=1,p=1", true},
        {"ln=22,r=2,p=1", true}, /* 1 GiB */
        {"ln=21,r=4,p=16", true},          {"ln=16,r=32,p=1", true},
        {"ln=11,r=8,p=1", false},          {"ln=23,r=1,p=1", false},
        {"ln=22,r=3,p=1", false}, /* 1.5 GiB */
        {"ln=20,r=9,p=1", false},          {"ln=12,r=0,p=1", false},
        {"ln=12,r=33,p=1", false},         {"ln=12,r=8,p=0", false},
        {"ln=12,r=8,p=17", false},         {"ln=17,r=8,p=1,", false},
        {"ln=17;r=8;p=1", false},          {"", false},
        {"ln=99999999999,r=8,p=1", false}, {"ln=-1,r=8,p=1", false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int ln = 0, r = 0, p = 0;
        bool ok = core_config_scrypt_parse(cases[i].s, strlen(cases[i].s), &ln, &r, &p);
        if (ok != cases[i].ok)
            fail_msg("\"%s\": expected %s", cases[i].s, cases[i].ok ? "accepted" : "refused");
    }
    /* a stored hash beyond the bounds is refused without the work (a row
     * cannot make sign-in spend 4 GiB or minutes) */
    const char *costly[] = {
        "$scrypt$ln=23,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$ln=22,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$ln=12,r=8,p=99$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
        "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$mQODSPipO7v2IkeXX6QyBSRUHAy5goafrJaPOn9CN2o",
    };
    for (size_t i = 0; i < ARRAY_SIZE(costly); i++) {
        uint64_t t0 = core_now_us();
        assert_false(verify(pw, costly[i], NULL));
        if (core_now_us() - t0 > 50000)
            fail_msg("\"%s\" was worked on", costly[i]);
    }
}

static const char *lookup(const char *key, void *ctx)
{
    const char *const *kv = ctx;
    for (; kv[0]; kv += 2) {
        if (strcmp(kv[0], key) == 0)
            return kv[1];
    }
    return NULL;
}

static void test_config_key(void **state)
{
    (void)state;
    struct core_config cfg;
    char *err = NULL;
    const char *none[] = {NULL};
    assert_true(core_config_parse(&cfg, lookup, none, &err));
    assert_int_equal(cfg.scrypt_ln, 17);
    assert_int_equal(cfg.scrypt_r, 8);
    assert_int_equal(cfg.scrypt_p, 1);
    core_config_release(&cfg);
    const char *cheap[] = {"RENKEI_SCRYPT", "ln=12,r=8,p=1", NULL};
    assert_true(core_config_parse(&cfg, lookup, cheap, &err));
    assert_int_equal(cfg.scrypt_ln, 12);
    core_config_release(&cfg);
    const char *bad[] = {"ln=11,r=8,p=1", "ln=17, r=8, p=1", "17,8,1", "", "ln=22,r=8,p=1"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        const char *kv[] = {"RENKEI_SCRYPT", bad[i], NULL};
        assert_false(core_config_parse(&cfg, lookup, kv, &err));
        assert_non_null(err);
        if (strncmp(err, "RENKEI_SCRYPT: ", 15) != 0 || strchr(err, '\n'))
            fail_msg("error is not one line naming RENKEI_SCRYPT: %s", err);
        free(err);
        err = NULL;
        core_config_release(&cfg);
    }
}

static void test_login_rules(void **state)
{
    (void)state;
    struct {
        const char *in, *out; /* out NULL: refused */
    } cases[] = {
        {"Alice@Example.JP", "alice@example.jp"},
        {"a@b.jp", "a@b.jp"},
        {"taro.yamada+renkei@mail.example.jp", "taro.yamada+renkei@mail.example.jp"},
        {"+81-90-1234-5678", "+81-90-1234-5678"},
        {"090-1234-5678", "090-1234-5678"},
        {"123456", "123456"},
        {"Yamada_Taro", "yamada_taro"},
        {"abc", "abc"},
        {"a.b-c_d", "a.b-c_d"},
        {"ab", NULL},
        {"", NULL},
        {"alice example", NULL},
        {" alice", NULL},
        {"alice ", NULL},
        {"alice\t", NULL},
        {"ali\x01"
         "ce",
         NULL},
        {"alice@", NULL},
        {"@example.jp", NULL},
        {"alice@example", NULL},
        {"alice@@example.jp", NULL},
        {"a@b@example.jp", NULL},
        {"alice@.jp", NULL},
        {"alice@example.", NULL},
        {"+12345", NULL},                         /* 5 digits */
        {"+123456789012345678901", NULL},         /* 21 digits */
        {"81+90", NULL},                          /* + only in front */
        {"taro!", NULL},                          /* not a plain name */
        {"yamada\xe5\xa4\xaa\xe9\x83\x8e", NULL}, /* not ASCII */
        {"\xef\xbc\xa1lice@example.jp", NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char out[AZ_LOGIN_MAX + 1];
        const char *why = az_login_check(cases[i].in, out);
        if (cases[i].out && why)
            fail_msg("\"%s\" refused: %s", cases[i].in, why);
        if (!cases[i].out && !why)
            fail_msg("\"%s\" accepted as \"%s\"", cases[i].in, out);
        if (cases[i].out)
            assert_string_equal(out, cases[i].out);
    }
    /* 254 bytes at most, a plain name 64 */
    char s[300], out[AZ_LOGIN_MAX + 1];
    for (size_t n = 250; n <= 260; n++) {
        memset(s, 'a', n - 11);
        memcpy(s + n - 11, "@example.jp", 12);
        assert_int_equal(strlen(s), n);
        const char *why = az_login_check(s, out);
        if ((why == NULL) != (n <= AZ_LOGIN_MAX))
            fail_msg("a login of %zu bytes: %s", n, why ? why : "accepted");
    }
    memset(s, 'x', 64);
    s[64] = '\0';
    assert_null(az_login_check(s, out));
    s[64] = 'x';
    s[65] = '\0';
    assert_non_null(az_login_check(s, out));
    assert_non_null(az_login_check(NULL, out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),         cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_wrong_password),     cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_malformed),          cmocka_unit_test(test_rehash),
        cmocka_unit_test(test_default_parameters), cmocka_unit_test(test_cost_bounds),
        cmocka_unit_test(test_config_key),         cmocka_unit_test(test_login_rules),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
