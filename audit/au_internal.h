#ifndef AU_INTERNAL_H
#define AU_INTERNAL_H

/* Shared inside the audit module only. */
#include "audit/au.h"
#include "audit/au_merkle.h"
#include <openssl/evp.h>

#include "core/strbuf.h"

/* The largest canonical entry accepted (bytes). */
#define AU_ENTRY_MAX (16 * 1024)

/* Writes v as RFC 8785 canonical JSON (integers only, depth <= 16) into sb;
 * false for a value outside that set or a full buffer. */
bool au_canonical(const json_t *v, struct strbuf *sb, int depth);

/* The entry object of e at seq and time (RFC 3339 UTC), as FORMAT.md lists
 * its members; NULL when e is malformed (*why says how). New reference. */
json_t *au_entry_object(const struct au_entry *e, uint64_t seq, const char *time, const char **why);

/* Now as RFC 3339 UTC with microseconds: "2026-11-26T07:57:01.123456Z". */
void au_time_now(char out[32]);

/* Reads the head (tree size and frontier) in the caller's transaction;
 * lock: FOR UPDATE. */
bool au_head_read(struct core_db_conn *c, bool lock, struct au_frontier *f, int64_t *pending_taken);

/* Takes over the events recorded in pending_events before the log existed
 * (once per process; safe with several processes). */
bool au_takeover(void);

/* Appends n entries in one transaction of its own (a bulk load); *first
 * receives the first one's seq. */
bool au_append_batch(const struct au_entry **e, size_t n, uint64_t *first);

/* The appender's counters for /metrics. */
void au_metrics(struct strbuf *out);
void au_checkpoint_metrics(struct strbuf *out); /* checkpoint age, entries not under one */

/* The group-commit appender thread. */
void au_appender_start(void);
void au_appender_stop(void);

/* Checkpoints: the signing key, signing, the checkpointer thread. */
struct au_checkpoint {
    uint64_t tree_size;
    au_hash root;
    char time[32];
    char kid[80];
    unsigned char sig[64];
};
/* The bytes a checkpoint's signature covers (FORMAT.md); caller frees. */
char *au_checkpoint_message(const struct au_checkpoint *cp, size_t *len);
json_t *au_checkpoint_json(const struct au_checkpoint *cp);
/* Parses the JSON shape; false with *why on any defect. */
bool au_checkpoint_parse(json_t *j, struct au_checkpoint *cp, const char **why);
/* Makes a checkpoint of the current tree now unless one exists at its size;
 * *out receives the newest checkpoint. false: database or key unavailable. */
bool au_checkpoint_now(struct au_checkpoint *out, bool *made);
/* Reads row i of (tree_size, root_hash, time, kid, signature), binary. */
bool au_checkpoint_row(PGresult *r, int i, struct au_checkpoint *cp);
void au_checkpointer_start(void);
void au_checkpointer_stop(void);
/* Loads the checkpoint keys (creating the first); false when the database
 * failed. */
bool au_keys_load(void);
/* A load has succeeded. */
bool au_keys_loaded(void);
void au_keys_release(void);
/* The public key of kid (active or retired); a new reference, or NULL. */
EVP_PKEY *au_key_public(const char *kid);
/* Retires the active key and makes a new one; the event is audited. Returns
 * {"retired": [...], "created": kid} or NULL with err. */
json_t *au_keys_rotate(const char *actor, char *err, size_t errlen);

/* A subtree hash source over the database (stored nodes and leaf hashes),
 * for proofs: gather, one query, then answer. */
struct au_dbtree;
struct au_dbtree *au_dbtree_new(void);
void au_dbtree_free(struct au_dbtree *t);
/* Computes a proof with fn over the tree; false when the database failed or
 * a node it needs is missing (logged). */
typedef int (*au_proof_fn)(void *arg, au_subtree_fn get, void *get_arg, au_hash *out);
int au_dbtree_proof(struct core_db_conn *c, au_proof_fn fn, void *arg, au_hash *out, bool *ok);

/* Base64 (standard alphabet) of a hash into out[45]. */
void au_hash_b64(const au_hash h, char out[45]);
/* Decodes a base64 hash; false unless exactly 32 bytes. */
bool au_hash_from_b64(const char *s, au_hash out);

#endif
