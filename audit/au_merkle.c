#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "audit/au_merkle.h"
#include "core/crypto.h"

void au_leaf_hash(const void *data, size_t len, au_hash out)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char zero = 0x00;
    unsigned int n = AU_HASH;
    if (!c || !EVP_DigestInit_ex(c, core_sha256_md(), NULL) || !EVP_DigestUpdate(c, &zero, 1) ||
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

/* ---- proofs over any source of subtree hashes ---- */

static uint64_t split64(uint64_t n)
{
    uint64_t k = 1;
    while (k << 1 < n)
        k <<= 1;
    return k;
}

static int path_fn(uint64_t lo, uint64_t hi, uint64_t m, au_subtree_fn get, void *arg, au_hash *out,
                   int used)
{
    if (hi - lo == 1)
        return used;
    uint64_t k = split64(hi - lo);
    if (m < lo + k) {
        used = path_fn(lo, lo + k, m, get, arg, out, used);
        get(arg, lo + k, hi, out[used]);
    } else {
        used = path_fn(lo + k, hi, m, get, arg, out, used);
        get(arg, lo, lo + k, out[used]);
    }
    return used + 1;
}

int au_inclusion_proof_fn(uint64_t n, uint64_t m, au_subtree_fn get, void *arg,
                          au_hash out[AU_PROOF_MAX])
{
    if (m >= n)
        return -1;
    return path_fn(0, n, m, get, arg, out, 0);
}

static int subproof_fn(uint64_t lo, uint64_t hi, uint64_t m, bool b, au_subtree_fn get, void *arg,
                       au_hash *out, int used)
{
    if (m == hi - lo) {
        if (b)
            return used;
        get(arg, lo, hi, out[used]);
        return used + 1;
    }
    uint64_t k = split64(hi - lo);
    if (m <= k) {
        used = subproof_fn(lo, lo + k, m, b, get, arg, out, used);
        get(arg, lo + k, hi, out[used]);
    } else {
        used = subproof_fn(lo + k, hi, m - k, false, get, arg, out, used);
        get(arg, lo, lo + k, out[used]);
    }
    return used + 1;
}

int au_consistency_proof_fn(uint64_t n, uint64_t m, au_subtree_fn get, void *arg,
                            au_hash out[AU_PROOF_MAX])
{
    if (m == 0 || m > n)
        return -1;
    return subproof_fn(0, n, m, true, get, arg, out, 0);
}

/* The range proof walks MTH's recursion and takes, left to right, the hash of
 * every subtree that lies wholly outside [a, b). */
static int range_fn(uint64_t lo, uint64_t hi, uint64_t a, uint64_t b, au_subtree_fn get, void *arg,
                    au_hash *out, int used)
{
    if (hi <= a || lo >= b) {
        if (used >= 2 * AU_PROOF_MAX)
            return -1;
        get(arg, lo, hi, out[used]);
        return used + 1;
    }
    if (lo >= a && hi <= b)
        return used;
    uint64_t k = split64(hi - lo);
    used = range_fn(lo, lo + k, a, b, get, arg, out, used);
    return used < 0 ? used : range_fn(lo + k, hi, a, b, get, arg, out, used);
}

int au_range_proof_fn(uint64_t n, uint64_t a, uint64_t b, au_subtree_fn get, void *arg,
                      au_hash out[2 * AU_PROOF_MAX])
{
    if (a >= b || b > n)
        return -1;
    return range_fn(0, n, a, b, get, arg, out, 0);
}

struct range_src {
    const au_hash *leaves; /* leaves[0] is leaf a */
    uint64_t a, b;
    const au_hash *proof;
    size_t len, next;
    bool bad;
};

static void range_root(struct range_src *s, uint64_t lo, uint64_t hi, au_hash out)
{
    if (hi <= s->a || lo >= s->b) {
        if (s->next >= s->len) {
            s->bad = true;
            memset(out, 0, AU_HASH);
            return;
        }
        memcpy(out, s->proof[s->next++], AU_HASH);
        return;
    }
    if (lo >= s->a && hi <= s->b) {
        au_tree_head(s->leaves + (lo - s->a), (size_t)(hi - lo), out);
        return;
    }
    uint64_t k = split64(hi - lo);
    au_hash l, r;
    range_root(s, lo, lo + k, l);
    range_root(s, lo + k, hi, r);
    au_node_hash(l, r, out);
}

bool au_verify_range(const au_hash *leaves, uint64_t a, uint64_t b, uint64_t n,
                     const au_hash *proof, size_t len, const au_hash root)
{
    if (a >= b || b > n)
        return false;
    struct range_src s = {.leaves = leaves, .a = a, .b = b, .proof = proof, .len = len};
    au_hash r;
    range_root(&s, 0, n, r);
    return !s.bad && s.next == len && CRYPTO_memcmp(r, root, AU_HASH) == 0;
}

/* ---- the same proofs over an array of leaves ---- */

static void array_subtree(void *arg, uint64_t lo, uint64_t hi, au_hash out)
{
    const au_hash *leaves = arg;
    au_tree_head(leaves + lo, (size_t)(hi - lo), out);
}

int au_inclusion_proof(const au_hash *leaves, size_t n, size_t m, au_hash out[AU_PROOF_MAX])
{
    return au_inclusion_proof_fn(n, m, array_subtree, (void *)leaves, out);
}

int au_consistency_proof(const au_hash *leaves, size_t n, size_t m, au_hash out[AU_PROOF_MAX])
{
    return au_consistency_proof_fn(n, m, array_subtree, (void *)leaves, out);
}

int au_range_proof(const au_hash *leaves, size_t n, size_t a, size_t b,
                   au_hash out[2 * AU_PROOF_MAX])
{
    return au_range_proof_fn(n, a, b, array_subtree, (void *)leaves, out);
}

/* ---- the frontier: the running tree head ---- */

void au_frontier_append(struct au_frontier *f, const au_hash leaf, au_frontier_node_fn node,
                        void *arg)
{
    au_hash carry;
    memcpy(carry, leaf, AU_HASH);
    uint64_t n = f->size;
    for (unsigned level = 0; n >> level & 1; level++) {
        f->count--;
        au_node_hash(f->hash[f->count], carry, carry);
        if (node)
            node(arg, level + 1, n >> (level + 1), carry);
    }
    memcpy(f->hash[f->count++], carry, AU_HASH);
    f->size++;
}

void au_frontier_append_subtree(struct au_frontier *f, unsigned level, const au_hash h)
{
    au_hash carry;
    memcpy(carry, h, AU_HASH);
    uint64_t n = f->size >> level;
    for (unsigned l = 0; n >> l & 1; l++) {
        f->count--;
        au_node_hash(f->hash[f->count], carry, carry);
    }
    memcpy(f->hash[f->count++], carry, AU_HASH);
    f->size += (uint64_t)1 << level;
}

void au_frontier_root(const struct au_frontier *f, au_hash out)
{
    if (f->count == 0) {
        core_sha256("", 0, out);
        return;
    }
    memcpy(out, f->hash[f->count - 1], AU_HASH);
    for (size_t i = f->count - 1; i-- > 0;)
        au_node_hash(f->hash[i], out, out);
}

bool au_frontier_load(struct au_frontier *f, uint64_t size, const unsigned char *hashes, size_t len)
{
    size_t count = (size_t)__builtin_popcountll(size);
    if (len != count * AU_HASH)
        return false;
    f->size = size;
    f->count = count;
    memcpy(f->hash, hashes, len);
    return true;
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
