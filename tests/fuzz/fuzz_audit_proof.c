/* The audit log's Merkle proofs (RFC 9162 §2.1) as an auditor checks them:
 * over a tree built from the input, every inclusion, consistency and range
 * proof the hub would serve verifies, the frontier the appender keeps gives
 * the same root, and a proof or root with one bit changed never verifies.
 * Then the verifiers get sizes, indexes and paths straight from the input
 * and must not misbehave. */
#include "audit/au_merkle.h"
#include "tests/fuzz/fuzz.h"

#define MAX_LEAVES 64

static void flip(au_hash h, uint8_t how)
{
    h[how % AU_HASH] ^= (unsigned char)(1u << (how % 8));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6 || size > 4096)
        return 0;
    size_t n = data[0] % MAX_LEAVES + 1;
    uint8_t m_in = data[1], a_in = data[2], b_in = data[3], how = data[4];
    const uint8_t *rest = data + 5;
    size_t rest_len = size - 5;

    au_hash leaves[MAX_LEAVES];
    struct au_frontier f = {0};
    for (size_t i = 0; i < n; i++) {
        uint8_t buf[8];
        memcpy(buf, &i, sizeof buf < sizeof i ? sizeof buf : sizeof i);
        size_t take = rest_len ? (i * 7) % rest_len : 0;
        uint8_t piece[64];
        size_t plen = rest_len - take < sizeof piece ? rest_len - take : sizeof piece;
        memcpy(piece, rest + take, plen);
        memcpy(piece + (plen > 56 ? 56 : plen), buf, 8);
        au_leaf_hash(piece, (plen > 56 ? 56 : plen) + 8, leaves[i]);
        au_frontier_append(&f, leaves[i], NULL, NULL);
    }
    au_hash root, froot;
    au_tree_head(leaves, n, root);
    au_frontier_root(&f, froot);
    if (memcmp(root, froot, AU_HASH) != 0)
        fuzz_fail("the frontier's root differs from the tree head (n %zu)", n);

    /* inclusion */
    size_t m = m_in % n;
    au_hash path[AU_PROOF_MAX];
    int len = au_inclusion_proof(leaves, n, m, path);
    if (len < 0)
        fuzz_fail("no inclusion proof for %zu of %zu", m, n);
    if (!au_verify_inclusion(leaves[m], m, n, path, (size_t)len, root))
        fuzz_fail("inclusion of %zu in %zu does not verify", m, n);
    au_hash bad;
    memcpy(bad, root, AU_HASH);
    flip(bad, how);
    if (au_verify_inclusion(leaves[m], m, n, path, (size_t)len, bad))
        fuzz_fail("inclusion verifies against another root");
    if (len > 0) {
        flip(path[how % len], (uint8_t)(how >> 3));
        if (au_verify_inclusion(leaves[m], m, n, path, (size_t)len, root))
            fuzz_fail("inclusion verifies with a changed path");
    }

    /* consistency of the first k leaves with all n */
    size_t k = a_in % n + 1;
    au_hash root1;
    au_tree_head(leaves, k, root1);
    len = au_consistency_proof(leaves, n, k, path);
    if (len < 0)
        fuzz_fail("no consistency proof for %zu of %zu", k, n);
    if (!au_verify_consistency(k, n, root1, root, path, (size_t)len))
        fuzz_fail("consistency %zu -> %zu does not verify", k, n);
    memcpy(bad, root1, AU_HASH);
    flip(bad, how);
    if (au_verify_consistency(k, n, bad, root, path, (size_t)len))
        fuzz_fail("consistency verifies from another first root");
    if (len > 0) {
        flip(path[how % len], (uint8_t)(how >> 3));
        if (au_verify_consistency(k, n, root1, root, path, (size_t)len))
            fuzz_fail("consistency verifies with a changed proof");
    }

    /* a range [a, b) */
    size_t a = a_in % n, b = a + 1 + b_in % (n - a);
    au_hash rproof[2 * AU_PROOF_MAX];
    len = au_range_proof(leaves, n, a, b, rproof);
    if (len < 0)
        fuzz_fail("no range proof for [%zu, %zu) of %zu", a, b, n);
    if (!au_verify_range(leaves + a, a, b, n, rproof, (size_t)len, root))
        fuzz_fail("range [%zu, %zu) of %zu does not verify", a, b, n);
    if (au_verify_range(leaves + a, a, b, n, rproof, (size_t)len, bad))
        fuzz_fail("a range verifies against another root");
    if (len > 0) {
        flip(rproof[how % len], (uint8_t)(how >> 3));
        if (au_verify_range(leaves + a, a, b, n, rproof, (size_t)len, root))
            fuzz_fail("a range verifies with a changed proof");
    }

    /* sizes, indexes and paths straight from the input */
    uint64_t x = 0, y = 0;
    memcpy(&x, data, size >= 8 ? 8 : size);
    if (size >= 16)
        memcpy(&y, data + 8, 8);
    size_t plen = rest_len / AU_HASH;
    if (plen > AU_PROOF_MAX)
        plen = AU_PROOF_MAX;
    au_hash *raw = malloc((plen ? plen : 1) * sizeof *raw);
    if (!raw)
        abort();
    memcpy(raw, rest, plen * AU_HASH);
    au_verify_inclusion(leaves[0], x, y, (const au_hash *)raw, plen, root);
    au_verify_consistency(x, y, root1, root, (const au_hash *)raw, plen);
    if (x < y && y - x <= n)
        au_verify_range(leaves, x, y, n, (const au_hash *)raw, plen, root);
    free(raw);
    return 0;
}
