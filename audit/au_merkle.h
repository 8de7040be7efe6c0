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

/* §2.1.3.2: leaf (its leaf hash) at index is in the tree of size with root. */
bool au_verify_inclusion(const au_hash leaf, uint64_t index, uint64_t size, const au_hash *path,
                         size_t path_len, const au_hash root);
/* §2.1.4.2: the tree of size first with root1 is a prefix of the tree of
 * size second with root2. */
bool au_verify_consistency(uint64_t first, uint64_t second, const au_hash root1,
                           const au_hash root2, const au_hash *path, size_t path_len);

#endif
