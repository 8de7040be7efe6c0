#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "audit/au_merkle.h"
#include "core/crypto.h"

void au_leaf_hash(const void *data, size_t len, au_hash out)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char zero = 0x00;
    unsigned int n = AU_HASH;
    if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL) || !EVP_DigestUpdate(c, &zero, 1) ||
        !EVP_DigestUpdate(c, data, len) || !EVP_DigestFinal_ex(c, out, &n))
        abort(); /* SHA-256 cannot fail short of a broken library */
    EVP_MD_CTX_free(c);
}

void au_node_hash(const au_hash left, const au_hash right, au_hash out)
{
    unsigned char buf[1 + 2 * AU_HASH];
    buf[0] = 0x01;
    memcpy(buf + 1, left, AU_HASH);
    memcpy(buf + 1 + AU_HASH, right, AU_HASH);
    core_sha256(buf, sizeof buf, out);
}

/* The largest power of two smaller than n (n > 1). */
static size_t split(size_t n)
{
    size_t k = 1;
    while (k << 1 < n)
        k <<= 1;
    return k;
}

void au_tree_head(const au_hash *leaves, size_t n, au_hash out)
{
    if (n == 0) {
        core_sha256("", 0, out);
        return;
    }
    if (n == 1) {
        memcpy(out, leaves[0], AU_HASH);
        return;
    }
    size_t k = split(n);
    au_hash l, r;
    au_tree_head(leaves, k, l);
    au_tree_head(leaves + k, n - k, r);
    au_node_hash(l, r, out);
}

static int path(const au_hash *leaves, size_t n, size_t m, au_hash *out, int used)
{
    if (n == 1)
        return used;
    size_t k = split(n);
    if (m < k) {
        used = path(leaves, k, m, out, used);
        au_tree_head(leaves + k, n - k, out[used]);
    } else {
        used = path(leaves + k, n - k, m - k, out, used);
        au_tree_head(leaves, k, out[used]);
    }
    return used + 1;
}

int au_inclusion_proof(const au_hash *leaves, size_t n, size_t m, au_hash out[AU_PROOF_MAX])
{
    if (m >= n)
        return -1;
    return path(leaves, n, m, out, 0);
}

static int subproof(const au_hash *leaves, size_t n, size_t m, bool b, au_hash *out, int used)
{
    if (m == n) {
        if (b)
            return used;
        au_tree_head(leaves, n, out[used]);
        return used + 1;
    }
    size_t k = split(n);
    if (m <= k) {
        used = subproof(leaves, k, m, b, out, used);
        au_tree_head(leaves + k, n - k, out[used]);
    } else {
        used = subproof(leaves + k, n - k, m - k, false, out, used);
        au_tree_head(leaves, k, out[used]);
    }
    return used + 1;
}

int au_consistency_proof(const au_hash *leaves, size_t n, size_t m, au_hash out[AU_PROOF_MAX])
{
    if (m == 0 || m > n)
        return -1;
    return subproof(leaves, n, m, true, out, 0);
}

bool au_verify_inclusion(const au_hash leaf, uint64_t index, uint64_t size, const au_hash *p,
                         size_t len, const au_hash root)
{
    if (index >= size || len > AU_PROOF_MAX)
        return false;
    uint64_t fn = index, sn = size - 1;
    au_hash r;
    memcpy(r, leaf, AU_HASH);
    for (size_t i = 0; i < len; i++) {
        if (sn == 0)
            return false;
        if ((fn & 1) || fn == sn) {
            au_node_hash(p[i], r, r);
            if (!(fn & 1)) {
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            au_node_hash(r, p[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && CRYPTO_memcmp(r, root, AU_HASH) == 0;
}

bool au_verify_consistency(uint64_t first, uint64_t second, const au_hash root1,
                           const au_hash root2, const au_hash *p, size_t len)
{
    if (first == 0 || first > second || len > AU_PROOF_MAX)
        return false;
    if (first == second)
        return len == 0 && CRYPTO_memcmp(root1, root2, AU_HASH) == 0;
    if (len == 0)
        return false;
    /* a first tree of a power-of-two size is a node of the second: its root
     * starts the path */
    au_hash path[AU_PROOF_MAX + 1];
    size_t n = 0;
    if ((first & (first - 1)) == 0)
        memcpy(path[n++], root1, AU_HASH);
    for (size_t i = 0; i < len; i++)
        memcpy(path[n++], p[i], AU_HASH);
    uint64_t fn = first - 1, sn = second - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    au_hash fr, sr;
    memcpy(fr, path[0], AU_HASH);
    memcpy(sr, path[0], AU_HASH);
    for (size_t i = 1; i < n; i++) {
        if (sn == 0)
            return false;
        if ((fn & 1) || fn == sn) {
            au_node_hash(path[i], fr, fr);
            au_node_hash(path[i], sr, sr);
            if (!(fn & 1)) {
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            au_node_hash(sr, path[i], sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && CRYPTO_memcmp(fr, root1, AU_HASH) == 0 &&
           CRYPTO_memcmp(sr, root2, AU_HASH) == 0;
}
