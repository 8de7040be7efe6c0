#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"

static char dir[] = "/tmp/renkei-crypto.XXXXXX";

static char *path_in_dir(const char *name)
{
    return xasprintf("%s/%s", dir, name);
}

static int setup(void **state)
{
    (void)state;
    core_log_set_level(CORE_LOG_ERROR);
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    core_secret_release();
    char *cmd = xasprintf("rm -rf '%s'", dir);
    int rc = system(cmd);
    free(cmd);
    return rc == 0 ? 0 : -1;
}

static void test_secret_created_0600(void **state)
{
    (void)state;
    char *p = path_in_dir("sub/secret"); /* the directory is made too */
    char *err = NULL;
    assert_true(core_secret_load(p, &err));
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 32);
    /* loading again keeps the same secret: derived keys stay equal */
    unsigned char k1[32], k2[32];
    core_secret_derive("test", k1, sizeof k1);
    assert_true(core_secret_load(p, &err));
    core_secret_derive("test", k2, sizeof k2);
    assert_memory_equal(k1, k2, 32);
    core_secret_derive("other", k2, sizeof k2);
    assert_memory_not_equal(k1, k2, 32);
    free(p);
}

static void test_secret_refused(void **state)
{
    (void)state;
    char *p = path_in_dir("open");
    int fd = open(p, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "0123456789abcdef0123456789abcdef", 32), 32);
    close(fd);
    chmod(p, 0644);
    char *err = NULL;
    assert_false(core_secret_load(p, &err));
    assert_non_null(strstr(err, "RENKEI_SECRET_FILE"));
    assert_non_null(strstr(err, "0644"));
    free(err);
    chmod(p, 0600);
    assert_true(core_secret_load(p, &err));
    free(p);

    p = path_in_dir("short");
    fd = open(p, O_WRONLY | O_CREAT, 0600);
    assert_int_equal(write(fd, "short", 5), 5);
    close(fd);
    err = NULL;
    assert_false(core_secret_load(p, &err));
    assert_non_null(strstr(err, "32"));
    free(err);
    free(p);

    /* a directory others may write: they could swap the file */
    char *shared = path_in_dir("shared");
    mkdir(shared, 0700);
    chmod(shared, 0777);
    p = path_in_dir("shared/secret");
    err = NULL;
    assert_false(core_secret_load(p, &err)); /* refused before anything is created */
    assert_non_null(strstr(err, "others may write"));
    free(err);
    struct stat st;
    assert_int_equal(stat(p, &st), -1);
    chmod(shared, 0700);
    assert_true(core_secret_load(p, &err));
    free(p);
    free(shared);

    p = path_in_dir("adir");
    mkdir(p, 0700);
    err = NULL;
    assert_false(core_secret_load(p, &err));
    assert_non_null(strstr(err, "RENKEI_SECRET_FILE"));
    free(err);
    free(p);
}

static void test_seal_open(void **state)
{
    (void)state;
    char *p = path_in_dir("seal");
    char *err = NULL;
    assert_true(core_secret_load(p, &err));
    const char *token = "upstream-bearer-token-高松";
    unsigned char *sealed, *plain;
    size_t sealed_len, plain_len;
    core_seal("upstream", "takamatsu", 9, token, strlen(token), &sealed, &sealed_len);
    assert_int_equal(sealed_len, 1 + 8 + 12 + strlen(token) + 16);
    assert_null(memmem(sealed, sealed_len, "upstream-bearer", 15)); /* not in the clear */

    assert_true(core_open("upstream", "takamatsu", 9, sealed, sealed_len, &plain, &plain_len));
    assert_int_equal(plain_len, strlen(token));
    assert_string_equal((char *)plain, token);
    free(plain);

    /* another row, another purpose, a flipped bit, a truncation: all refused */
    assert_false(core_open("upstream", "kanonji", 7, sealed, sealed_len, &plain, &plain_len));
    assert_false(core_open("signing-key", "takamatsu", 9, sealed, sealed_len, &plain, &plain_len));
    sealed[20] ^= 1;
    assert_false(core_open("upstream", "takamatsu", 9, sealed, sealed_len, &plain, &plain_len));
    sealed[20] ^= 1;
    assert_false(core_open("upstream", "takamatsu", 9, sealed, 20, &plain, &plain_len));

    /* two seals of the same text differ (fresh nonce) */
    unsigned char *again;
    size_t again_len;
    core_seal("upstream", "takamatsu", 9, token, strlen(token), &again, &again_len);
    assert_memory_not_equal(sealed, again, sealed_len);
    free(again);

    /* a different master secret cannot open it */
    char *p2 = path_in_dir("seal2");
    assert_true(core_secret_load(p2, &err));
    assert_false(core_open("upstream", "takamatsu", 9, sealed, sealed_len, &plain, &plain_len));
    free(sealed);
    free(p);
    free(p2);
}

/* A rotation: a new master with the same root. Derived keys stay, values
 * sealed before still open (first form too), new ones name the new master,
 * and the second form of the file reads back what was written. */
static void test_rotation(void **state)
{
    (void)state;
    char *p = path_in_dir("rot");
    char *p_new = path_in_dir("rot.new");
    char *err = NULL;
    assert_true(core_secret_load(p, &err));
    unsigned char d1[32], d2[32], id1[8], id2[8], by[8];
    core_secret_derive("renkei.authz.pairwise.v1", d1, sizeof d1);
    core_secret_id(id1);
    unsigned char *v2, *plain;
    size_t v2_len, plain_len;
    core_seal("upstream", "kanonji", 7, "s3cret", 6, &v2, &v2_len);
    assert_true(core_sealed_by(v2, v2_len, by));
    assert_memory_equal(by, id1, 8);
    /* the first form: version 1, no id, the same nonce, ciphertext and tag */
    size_t v1_len = v2_len - 8;
    unsigned char *v1 = malloc(v1_len);
    v1[0] = 1;
    memcpy(v1 + 1, v2 + 9, v2_len - 9);
    assert_false(core_sealed_by(v1, v1_len, by));
    assert_true(core_open("upstream", "kanonji", 7, v1, v1_len, &plain, &plain_len));
    free(plain);

    struct core_secret cur, next, back;
    assert_true(core_secret_read(p, false, &cur, &err));
    assert_memory_equal(cur.id, id1, 8);
    core_secret_new(&cur, &next);
    assert_memory_not_equal(next.id, cur.id, 8);
    assert_true(core_secret_write(p_new, &next, &err));
    struct stat st;
    assert_int_equal(stat(p_new, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_true(core_secret_read(p_new, false, &back, &err));
    assert_memory_equal(back.id, next.id, 8);
    assert_int_equal(back.root_len, cur.root_len);
    assert_memory_equal(back.root, cur.root, cur.root_len);

    /* sealed under next without using it: the master in use cannot open it */
    unsigned char *under;
    size_t under_len;
    core_seal_under(&next, "upstream", "kanonji", 7, "s3cret", 6, &under, &under_len);
    assert_false(core_open("upstream", "kanonji", 7, under, under_len, &plain, &plain_len));

    assert_true(core_secret_use(&back));
    core_secret_id(id2);
    assert_memory_equal(id2, next.id, 8);
    core_secret_derive("renkei.authz.pairwise.v1", d2, sizeof d2);
    assert_memory_equal(d1, d2, sizeof d1); /* lasting values do not change */
    assert_true(core_open("upstream", "kanonji", 7, under, under_len, &plain, &plain_len));
    free(plain);
    /* the previous master still opens what it sealed, both forms */
    assert_true(core_open("upstream", "kanonji", 7, v2, v2_len, &plain, &plain_len));
    free(plain);
    assert_true(core_open("upstream", "kanonji", 7, v1, v1_len, &plain, &plain_len));
    free(plain);
    unsigned char *now;
    size_t now_len;
    core_seal("upstream", "kanonji", 7, "s3cret", 6, &now, &now_len);
    assert_true(core_sealed_by(now, now_len, by));
    assert_memory_equal(by, id2, 8);

    /* another installation's file (another root) is refused */
    struct core_secret stranger;
    char *p_other = path_in_dir("other");
    assert_true(core_secret_read(p_other, true, &stranger, &err));
    assert_false(core_secret_use(&stranger));
    core_secret_free(&stranger);

    /* malformed second forms are refused with a reason */
    char *p_bad = path_in_dir("bad");
    int fd = open(p_bad, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    const char *bad = "renkei-secret 2\nmaster=abc\nroot=def\n0123456789abcdef0123456789";
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    assert_false(core_secret_read(p_bad, false, &stranger, &err));
    assert_non_null(strstr(err, "line 2 must be master="));
    free(err);

    core_secret_free(&cur);
    core_secret_free(&next);
    core_secret_free(&back);
    free(v1);
    free(v2);
    free(under);
    free(now);
    free(p);
    free(p_new);
    free(p_other);
    free(p_bad);
}

static void test_hex_sha256(void **state)
{
    (void)state;
    unsigned char d[32];
    char hex[65];
    core_sha256("abc", 3, d);
    core_hex(d, 32, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_created_0600), cmocka_unit_test(test_secret_refused),
        cmocka_unit_test(test_seal_open),           cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_hex_sha256),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
