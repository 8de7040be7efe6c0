#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit/au_merkle.h"
#include "core/crypto.h"

/* The leaves and tree heads of the Certificate Transparency reference tests,
 * which RFC 9162 keeps. */
static const char *const roots[] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

static au_hash leaves[8];

static int setup(void **state)
{
    (void)state;
    static const unsigned char d3[] = {0x20, 0x21}, d4[] = {0x30, 0x31},
                               d5[] = {0x40, 0x41, 0x42, 0x43};
    unsigned char d6[8], d7[16];
    for (int i = 0; i < 8; i++)
        d6[i] = (unsigned char)(0x50 + i);
    for (int i = 0; i < 16; i++)
        d7[i] = (unsigned char)(0x60 + i);
    au_leaf_hash("", 0, leaves[0]);
    au_leaf_hash("\x00", 1, leaves[1]);
    au_leaf_hash("\x10", 1, leaves[2]);
    au_leaf_hash(d3, 2, leaves[3]);
    au_leaf_hash(d4, 2, leaves[4]);
    au_leaf_hash(d5, 4, leaves[5]);
    au_leaf_hash(d6, 8, leaves[6]);
    au_leaf_hash(d7, 16, leaves[7]);
    return 0;
}

static void test_tree_heads(void **state)
{
    (void)state;
    char hex[65];
    au_hash root;
    for (size_t n = 1; n <= 8; n++) {
        au_tree_head(leaves, n, root);
        core_hex(root, AU_HASH, hex);
        assert_string_equal(hex, roots[n - 1]);
    }
    au_tree_head(leaves, 0, root);
    core_hex(root, AU_HASH, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* Leaves 0..n-1 of a larger tree: a hash of their index. */
static au_hash *make(size_t n)
{
    au_hash *ls = xcalloc(n, sizeof *ls);
    for (size_t i = 0; i < n; i++) {
        char s[24];
        int len = snprintf(s, sizeof s, "entry %zu", i);
        au_leaf_hash(s, (size_t)len, ls[i]);
    }
    return ls;
}

static void test_inclusion(void **state)
{
    (void)state;
    au_hash *ls = make(300);
    au_hash path[AU_PROOF_MAX], root;
    for (size_t n = 1; n <= 300; n++) {
        au_tree_head(ls, n, root);
        /* every leaf up to 100; beyond, the edges and every 7th */
        for (size_t m = 0; m < n; m += n <= 100 || m + 1 == n ? 1 : (m == 0 ? 1 : 7)) {
            int len = au_inclusion_proof(ls, n, m, path);
            assert_true(len >= 0);
            assert_true(au_verify_inclusion(ls[m], m, n, path, (size_t)len, root));
            /* the wrong leaf, or a bent or shortened path: refused (the size
             * itself is bound by the signed checkpoint that carries root) */
            if (n > 1)
                assert_false(au_verify_inclusion(ls[(m + 1) % n], m, n, path, (size_t)len, root));
            if (len > 0) {
                path[len - 1][0] ^= 1;
                assert_false(au_verify_inclusion(ls[m], m, n, path, (size_t)len, root));
                path[len - 1][0] ^= 1;
                assert_false(au_verify_inclusion(ls[m], m, n, path, (size_t)len - 1, root));
            }
        }
        assert_int_equal(au_inclusion_proof(ls, n, n, path), -1);
        assert_false(au_verify_inclusion(ls[0], n, n, path, 0, root));
    }
    free(ls);
}

static void test_consistency(void **state)
{
    (void)state;
    au_hash *ls = make(70);
    au_hash path[AU_PROOF_MAX], r1, r2;
    for (size_t n = 1; n <= 70; n++) {
        au_tree_head(ls, n, r2);
        for (size_t m = 1; m <= n; m++) {
            au_tree_head(ls, m, r1);
            int len = au_consistency_proof(ls, n, m, path);
            assert_true(len >= 0);
            assert_true(au_verify_consistency(m, n, r1, r2, path, (size_t)len));
            if (m < n) {
                /* a forked history, a bent path, swapped sizes: refused */
                au_hash other;
                memcpy(other, r1, AU_HASH);
                other[5] ^= 0x80;
                assert_false(au_verify_consistency(m, n, other, r2, path, (size_t)len));
                assert_false(au_verify_consistency(m, n, r1, other, path, (size_t)len));
                path[0][0] ^= 1;
                assert_false(au_verify_consistency(m, n, r1, r2, path, (size_t)len));
                path[0][0] ^= 1;
                assert_false(au_verify_consistency(n, m, r2, r1, path, (size_t)len));
                assert_false(au_verify_consistency(m, n, r1, r2, path, 0));
            }
        }
        assert_int_equal(au_consistency_proof(ls, n, 0, path), -1);
        assert_int_equal(au_consistency_proof(ls, n, n + 1, path), -1);
    }
    free(ls);
    /* random pairs in trees up to 300 */
    ls = make(300);
    unsigned seed = 12345;
    for (int i = 0; i < 600; i++) {
        size_t n = 1 + rand_r(&seed) % 300, m = 1 + rand_r(&seed) % n;
        au_tree_head(ls, n, r2);
        au_tree_head(ls, m, r1);
        int len = au_consistency_proof(ls, n, m, path);
        assert_true(len >= 0);
        assert_true(au_verify_consistency(m, n, r1, r2, path, (size_t)len));
        if (m < n) {
            r1[0] ^= 1;
            assert_false(au_verify_consistency(m, n, r1, r2, path, (size_t)len));
        }
    }
    free(ls);
}

static void test_range_proofs(void **state)
{
    (void)state;
    au_hash *ls = make(70);
    au_hash proof[2 * AU_PROOF_MAX], root;
    for (size_t n = 1; n <= 70; n++) {
        au_tree_head(ls, n, root);
        for (size_t a = 0; a < n; a++) {
            for (size_t b = a + 1; b <= n; b++) {
                int len = au_range_proof(ls, n, a, b, proof);
                assert_true(len >= 0 && len <= 2 * AU_PROOF_MAX);
                assert_true(au_verify_range(ls + a, a, b, n, proof, (size_t)len, root));
                /* another leaf, a bent hash, a missing or extra hash: refused.
                 * (As with RFC 9162 inclusion proofs, the size is not checked
                 * here: the signed checkpoint binds it to the root.) */
                au_hash save;
                memcpy(save, ls[a], AU_HASH);
                ls[a][3] ^= 1;
                assert_false(au_verify_range(ls + a, a, b, n, proof, (size_t)len, root));
                memcpy(ls[a], save, AU_HASH);
                if (len > 0) {
                    proof[len - 1][0] ^= 1;
                    assert_false(au_verify_range(ls + a, a, b, n, proof, (size_t)len, root));
                    proof[len - 1][0] ^= 1;
                    assert_false(au_verify_range(ls + a, a, b, n, proof, (size_t)len - 1, root));
                }
                if (len < 2 * AU_PROOF_MAX)
                    assert_false(au_verify_range(ls + a, a, b, n, proof, (size_t)len + 1, root));
            }
        }
        assert_int_equal(au_range_proof(ls, n, 0, n + 1, proof), -1);
        assert_int_equal(au_range_proof(ls, n, 1, 1, proof), -1);
    }
    free(ls);
}

struct seen_nodes {
    const au_hash *leaves;
    int count;
    bool bad;
};

static void check_node(void *arg, unsigned level, uint64_t idx, const au_hash h)
{
    struct seen_nodes *s = arg;
    au_hash want;
    au_tree_head(s->leaves + (idx << level), (size_t)1 << level, want);
    if (memcmp(want, h, AU_HASH) != 0)
        s->bad = true;
    s->count++;
}

static void test_frontier(void **state)
{
    (void)state;
    au_hash *ls = make(300);
    struct au_frontier f = {0};
    struct seen_nodes s = {.leaves = ls};
    au_hash root, want;
    au_frontier_root(&f, root);
    au_tree_head(ls, 0, want);
    assert_memory_equal(root, want, AU_HASH);
    for (size_t n = 1; n <= 300; n++) {
        au_frontier_append(&f, ls[n - 1], check_node, &s);
        au_frontier_root(&f, root);
        au_tree_head(ls, n, want);
        assert_memory_equal(root, want, AU_HASH);
        assert_int_equal(f.count, (size_t)__builtin_popcountll(n));
        /* a frontier loads back only with a size that fits its hashes */
        struct au_frontier g;
        assert_true(au_frontier_load(&g, f.size, (const unsigned char *)f.hash, f.count * AU_HASH));
        assert_memory_equal(g.hash, f.hash, f.count * AU_HASH);
        if (__builtin_popcountll(n + 1) != __builtin_popcountll(n))
            assert_false(
                au_frontier_load(&g, f.size + 1, (const unsigned char *)f.hash, f.count * AU_HASH));
    }
    assert_false(s.bad);
    assert_int_equal(s.count, 300 - __builtin_popcountll(300)); /* one node per merge */
    free(ls);
}

static void test_rfc_example_paths(void **state)
{
    (void)state;
    /* RFC 9162 §2.1.5 (the 7-leaf example): the inclusion proof for d0 is
     * [b, h, l]; the consistency proof between 3 and 7 is [c, d, g, l] */
    au_hash path[AU_PROOF_MAX];
    assert_int_equal(au_inclusion_proof(leaves, 7, 0, path), 3);
    assert_memory_equal(path[0], leaves[1], AU_HASH); /* b */
    au_hash h, l, t;
    au_node_hash(leaves[2], leaves[3], h);
    au_node_hash(leaves[4], leaves[5], t);
    au_node_hash(t, leaves[6], l);
    assert_memory_equal(path[1], h, AU_HASH);
    assert_memory_equal(path[2], l, AU_HASH);
    assert_int_equal(au_consistency_proof(leaves, 7, 3, path), 4);
    assert_memory_equal(path[0], leaves[2], AU_HASH); /* c */
    assert_memory_equal(path[1], leaves[3], AU_HASH); /* d */
    au_hash g;
    au_node_hash(leaves[0], leaves[1], g);
    assert_memory_equal(path[2], g, AU_HASH);
    assert_memory_equal(path[3], l, AU_HASH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_heads),  cmocka_unit_test(test_inclusion),
        cmocka_unit_test(test_consistency), cmocka_unit_test(test_range_proofs),
        cmocka_unit_test(test_frontier),    cmocka_unit_test(test_rfc_example_paths),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
