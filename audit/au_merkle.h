#ifndef AU_MERKLE_H
#define AU_MERKLE_H

/*
 * The Merkle tree of RFC 9162 §2.1 over SHA-256: leaf and node hashes, the
 * tree head, inclusion and consistency proofs, and their verification (what
 * an auditor runs without trusting the database). Proof generation here works
 * on an array of leaf hashes; the log keeps what it needs to serve large trees.
 */
#include "core/core.h"

#define AU_HASH 32
typedef unsigned char au_hash[AU_HASH];

/* SHA-256(0x00 || data) */
void au_leaf_hash(const void *data, size_t len, au_hash out);
/* SHA-256(0x01 || left || right) */
void au_node_hash(const au_hash left, const au_hash right, au_hash out);

/* MTH(D[n]) from the leaf hashes; the empty tree is SHA-256(""). */
void au_tree_head(const au_hash *leaves, size_t n, au_hash out);

/* The longest an inclusion or consistency proof can be (trees < 2^63). */
#define AU_PROOF_MAX 64

/* PATH(m, D[n]) (§2.1.3.1) into path; returns its length, or -1 when m >= n. */
int au_inclusion_proof(const au_hash *leaves, size_t n, size_t m, au_hash path[AU_PROOF_MAX]);
/* PROOF(m, D[n]) (§2.1.4.1); returns its length, or -1 unless 0 < m <= n. */
int au_consistency_proof(const au_hash *leaves, size_t n, size_t m, au_hash path[AU_PROOF_MAX]);

/* The hash of the subtree over leaves [lo, hi) of the tree, from wherever the
 * caller keeps them (an array, stored nodes). */
typedef void (*au_subtree_fn)(void *arg, uint64_t lo, uint64_t hi, au_hash out);
int au_inclusion_proof_fn(uint64_t n, uint64_t m, au_subtree_fn get, void *arg,
                          au_hash out[AU_PROOF_MAX]);
int au_consistency_proof_fn(uint64_t n, uint64_t m, au_subtree_fn get, void *arg,
                            au_hash out[AU_PROOF_MAX]);

/*
 * A range proof: what a holder of leaves [a, b) of a tree of size n needs to
 * recompute its root — the hashes of the subtrees of MTH's recursion (§2.1.1)
 * that lie wholly outside [a, b), left to right (at most 2 per level). Lets an
 * export of part of the log be checked against a signed checkpoint. Returns
 * the proof's length, or -1 unless a < b <= n.
 */
int au_range_proof(const au_hash *leaves, size_t n, size_t a, size_t b,
                   au_hash out[2 * AU_PROOF_MAX]);
int au_range_proof_fn(uint64_t n, uint64_t a, uint64_t b, au_subtree_fn get, void *arg,
                      au_hash out[2 * AU_PROOF_MAX]);
/* True when leaves [a, b) (b - a hashes) and the proof give root for size n. */
bool au_verify_range(const au_hash *leaves, uint64_t a, uint64_t b, uint64_t n,
                     const au_hash *proof, size_t len, const au_hash root);

/*
 * The frontier of a tree: the roots of its perfect subtrees, largest (leftmost)
 * first — one per bit set in its size. Enough to append leaves and to compute
 * the tree head without the leaves.
 */
struct au_frontier {
    uint64_t size;
    size_t count;
    au_hash hash[64];
};
/* Called for each complete subtree an append closes: level >= 1, its index
 * among the subtrees of that level (it covers leaves [idx<<level, (idx+1)<<level)). */
typedef void (*au_frontier_node_fn)(void *arg, unsigned level, uint64_t idx, const au_hash h);
void au_frontier_append(struct au_frontier *f, const au_hash leaf, au_frontier_node_fn node,
                        void *arg);
/* Appends a complete subtree of 2^level leaves whose root is h; the size
 * must be a multiple of 2^level. */
void au_frontier_append_subtree(struct au_frontier *f, unsigned level, const au_hash h);
void au_frontier_root(const struct au_frontier *f, au_hash out);
/* Loads a frontier kept as its hashes concatenated; false when len does not
 * fit size. */
bool au_frontier_load(struct au_frontier *f, uint64_t size, const unsigned char *hashes,
                      size_t len);

/* §2.1.3.2: leaf (its leaf hash) at index is in the tree of size with root. */
bool au_verify_inclusion(const au_hash leaf, uint64_t index, uint64_t size, const au_hash *path,
                         size_t path_len, const au_hash root);
/* §2.1.4.2: the tree of size first with root1 is a prefix of the tree of
 * size second with root2. */
bool au_verify_consistency(uint64_t first, uint64_t second, const au_hash root1,
                           const au_hash root2, const au_hash *path, size_t path_len);

#endif
