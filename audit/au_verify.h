#ifndef AU_VERIFY_H
#define AU_VERIFY_H

/* The verifiers: of the log in the database, and of an exported file. */
#include <openssl/evp.h>

#include "audit/au_internal.h"

/* Where the verifier finds a checkpoint's public key: a JWKS (an auditor's
 * own copy) or the hub's sealed keys. */
typedef EVP_PKEY *(*au_key_fn)(void *arg, const char *kid);

/* A JWKS document's key of kid, EC P-256 only (new reference, or NULL). */
EVP_PKEY *au_jwks_key(void *jwks, const char *kid);

struct au_report {
    bool ok;
    uint64_t entries;     /* entries read */
    uint64_t checkpoints; /* checkpoints checked */
    uint64_t tree_size;   /* the tree the entries form */
    au_hash root;
    int64_t first_bad;  /* the first bad entry's seq, -1 when none is known */
    int64_t bad_last;   /* >= 0: it is known only to lie in first_bad..bad_last */
    uint64_t uncovered; /* entries after the last checkpoint */
    char problem[512];  /* what is wrong, in a sentence */
};

/* Verifies the whole log. held: checkpoints the auditor kept from earlier
 * (may be none), which the log must still contain (catches a log cut back or
 * rewritten with the database's checkpoints and head). progress (may be
 * NULL) is called now and then with (done, total). false with r->problem
 * when the database failed; r->ok false when the log does not verify. */
bool au_verify_db(au_key_fn key, void *key_arg, const struct au_checkpoint *held, size_t nheld,
                  void (*progress)(uint64_t done, uint64_t total), struct au_report *r);

/* Verifies an export (JSON lines or CSV, told apart by its first line)
 * against a checkpoint (with a range proof when the export is part of the
 * log) whose key comes from key. */
bool au_verify_file(FILE *in, json_t *checkpoint, au_key_fn key, void *key_arg,
                    struct au_report *r);

/* The seq written inside canonical bytes (the last "seq" member: in the
 * canonical form only "tenant" and "time", both strings, follow it). */
bool au_embedded_seq(const char *canonical, size_t len, int64_t *out);

#endif
