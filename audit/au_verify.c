#include <stdlib.h>

#include <openssl/crypto.h>

#include "audit/au_verify.h"
#include "core/crypto.h"
#include "core/jose.h"
#include "core/log.h"

/*
 * `renkei audit verify`: reads the head, every checkpoint and every entry in
 * one snapshot, recomputes each leaf from its canonical bytes and the tree
 * from the leaves, and checks every checkpoint's signature and root against
 * the tree of its size (which also proves each checkpoint consistent with the
 * next). Nothing the database says is taken on trust but the bytes: stored
 * leaf hashes and the head are only compared against.
 */

#define PAGE 20000

EVP_PKEY *au_jwks_key(void *jwks, const char *kid)
{
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(jwks, "keys"), i, k)
    {
        const char *id = json_string_value(json_object_get(k, "kid"));
        const char *alg = json_string_value(json_object_get(k, "alg"));
        if (!id || strcmp(id, kid) != 0 || (alg && strcmp(alg, "ES256") != 0))
            continue;
        const char *why;
        EVP_PKEY *p = core_jwk_import(k, &why);
        if (p && !EVP_PKEY_is_a(p, "EC")) {
            EVP_PKEY_free(p);
            p = NULL;
        }
        return p;
    }
    return NULL;
}

bool au_embedded_seq(const char *s, size_t len, int64_t *out)
{
    static const char key[] = "\"seq\":";
    size_t kl = sizeof key - 1;
    if (len < kl)
        return false;
    for (size_t i = len - kl + 1; i-- > 0;) {
        if (memcmp(s + i, key, kl) != 0)
            continue;
        int64_t v = 0;
        size_t j = i + kl, start = j;
        while (j < len && s[j] >= '0' && s[j] <= '9' && j - start < 18)
            v = v * 10 + (s[j++] - '0');
        if (j == start || (j < len && s[j] != ',' && s[j] != '}'))
            return false;
        *out = v;
        return true;
    }
    return false;
}

static void problem(struct au_report *r, int64_t seq, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void problem(struct au_report *r, int64_t seq, const char *fmt, ...)
{
    if (!r->ok)
        return; /* the first problem is the one reported */
    r->ok = false;
    r->first_bad = seq;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->problem, sizeof r->problem, fmt, ap);
    va_end(ap);
}

/* Checks cp's signature; false (and a problem) when it fails. */
static bool check_signature(const struct au_checkpoint *cp, au_key_fn key, void *key_arg,
                            struct au_report *r, int64_t bad_seq)
{
    EVP_PKEY *k = key(key_arg, cp->kid);
    if (!k) {
        problem(r, bad_seq, "checkpoint at tree size %llu is signed with key %s, which is unknown",
                (unsigned long long)cp->tree_size, cp->kid);
        return false;
    }
    size_t len;
    char *m = au_checkpoint_message(cp, &len);
    bool ok = core_es256_verify(k, m, len, cp->sig, sizeof cp->sig);
    free(m);
    EVP_PKEY_free(k);
    if (!ok)
        problem(r, bad_seq, "checkpoint at tree size %llu has a signature that does not verify",
                (unsigned long long)cp->tree_size);
    return ok;
}

static struct core_stmt au_verify_head_stmt =
    CORE_STMT("au_verify_head", "SELECT tree_size, frontier, pending_taken, "
                                "(SELECT count(*) FROM audit_checkpoints) FROM audit_head");
static struct core_stmt au_verify_entries_stmt =
    CORE_STMT("au_verify_entries", "SELECT seq, canonical, leaf_hash FROM audit_entries "
                                   "WHERE seq >= $1 ORDER BY seq LIMIT $2");
static struct core_stmt au_verify_checkpoints_stmt =
    CORE_STMT("au_verify_checkpoints",
              "SELECT tree_size, root_hash, time, kid, signature FROM "
              "audit_checkpoints WHERE tree_size > $1 ORDER BY tree_size LIMIT 1000");

struct vctx {
    au_key_fn key;
    void *key_arg;
    void (*progress)(uint64_t, uint64_t);
    struct au_report *r;
    struct au_frontier f;
    struct au_checkpoint *cps;
    size_t ncps, cpi;
    uint64_t last_good_cp; /* size of the last checkpoint that matched */
    uint64_t cps_after;    /* checkpoints read so far end at this size */
    bool cps_done;
};

static uint64_t be64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | (unsigned char)p[i];
    return v;
}

static bool load_checkpoints(struct core_db_conn *c, struct vctx *v)
{
    char after[32];
    xsnprintf(after, sizeof after, "%llu", (unsigned long long)v->cps_after);
    const char *p[] = {after};
    PGresult *r = core_db_execp(c, &au_verify_checkpoints_stmt, 1, p, NULL, NULL, 1);
    if (!r)
        return false;
    free(v->cps);
    v->ncps = (size_t)PQntuples(r);
    v->cps = xcalloc(v->ncps + 1, sizeof *v->cps);
    v->cpi = 0;
    for (size_t i = 0; i < v->ncps; i++) {
        if (!au_checkpoint_row(r, (int)i, &v->cps[i]))
            problem(v->r, -1, "a checkpoint row is malformed");
        v->cps_after = v->cps[i].tree_size;
    }
    v->cps_done = v->ncps < 1000;
    PQclear(r);
    return true;
}

/* Checks the checkpoints the tree has now reached. */
static bool at_size(struct core_db_conn *c, struct vctx *v)
{
    for (;;) {
        if (v->cpi == v->ncps) {
            if (v->cps_done)
                return true;
            if (!load_checkpoints(c, v))
                return false;
            continue;
        }
        struct au_checkpoint *cp = &v->cps[v->cpi];
        if (cp->tree_size > v->f.size)
            return true;
        v->cpi++;
        v->r->checkpoints++;
        int64_t bad = (int64_t)v->last_good_cp;
        if (!check_signature(cp, v->key, v->key_arg, v->r, -1))
            continue;
        au_hash root;
        au_frontier_root(&v->f, root);
        if (CRYPTO_memcmp(root, cp->root, AU_HASH) != 0) {
            problem(v->r, bad,
                    "entries %llu to %llu do not form the tree signed at size %llu: one of them "
                    "was changed, inserted, deleted or moved",
                    (unsigned long long)v->last_good_cp, (unsigned long long)cp->tree_size - 1,
                    (unsigned long long)cp->tree_size);
            continue;
        }
        v->last_good_cp = cp->tree_size;
    }
}

static enum core_db_rc verify_tx(struct core_db_conn *c, void *arg)
{
    struct vctx *v = arg;
    struct au_report *r = v->r;
    /* a retried transaction starts over */
    memset(&v->f, 0, sizeof v->f);
    v->last_good_cp = v->cps_after = 0;
    v->cps_done = false;
    memset(r, 0, sizeof *r);
    r->ok = true;
    r->first_bad = -1;
    PGresult *h = core_db_execp(c, &au_verify_head_stmt, 0, NULL, NULL, NULL, 1);
    if (!h)
        return CORE_DB_ERROR;
    if (PQntuples(h) != 1) {
        PQclear(h);
        problem(r, 0, "the audit head row is missing");
        return CORE_DB_OK;
    }
    uint64_t head_size = be64(PQgetvalue(h, 0, 0));
    struct au_frontier head;
    bool head_ok = au_frontier_load(&head, head_size, (const unsigned char *)PQgetvalue(h, 0, 1),
                                    (size_t)PQgetlength(h, 0, 1));
    uint64_t ncp_total = be64(PQgetvalue(h, 0, 3));
    (void)ncp_total;
    PQclear(h);
    if (!load_checkpoints(c, v))
        return CORE_DB_ERROR;

    uint64_t expect = 0;
    for (;;) {
        char from[32], lim[32];
        xsnprintf(from, sizeof from, "%llu", (unsigned long long)expect);
        xsnprintf(lim, sizeof lim, "%d", PAGE);
        const char *p[] = {from, lim};
        PGresult *e = core_db_execp(c, &au_verify_entries_stmt, 2, p, NULL, NULL, 1);
        if (!e)
            return CORE_DB_ERROR;
        int rows = PQntuples(e);
        for (int i = 0; i < rows; i++) {
            uint64_t seq = be64(PQgetvalue(e, i, 0));
            const char *canon = PQgetvalue(e, i, 1);
            size_t len = (size_t)PQgetlength(e, i, 1);
            if (seq != expect) {
                problem(r, (int64_t)expect,
                        "entry %llu is missing (deleted): the next entry stored is %llu",
                        (unsigned long long)expect, (unsigned long long)seq);
                expect = seq; /* go on, so the tree check says the same */
            }
            int64_t inner;
            if (!au_embedded_seq(canon, len, &inner))
                problem(r, (int64_t)seq, "entry %llu is not in the canonical form",
                        (unsigned long long)seq);
            else if ((uint64_t)inner != seq)
                problem(r, inner < (int64_t)seq ? inner : (int64_t)seq,
                        "entry stored at %llu says it is entry %lld: entries were inserted, "
                        "deleted or reordered from %lld on",
                        (unsigned long long)seq, (long long)inner,
                        (long long)(inner < (int64_t)seq ? inner : (int64_t)seq));
            au_hash leaf;
            au_leaf_hash(canon, len, leaf);
            if (PQgetlength(e, i, 2) != AU_HASH ||
                CRYPTO_memcmp(leaf, PQgetvalue(e, i, 2), AU_HASH) != 0)
                problem(r, (int64_t)seq,
                        "entry %llu was altered: its bytes do not hash to its leaf hash",
                        (unsigned long long)seq);
            au_frontier_append(&v->f, leaf, NULL, NULL);
            r->entries++;
            expect = seq + 1;
            if (!at_size(c, v)) {
                PQclear(e);
                return CORE_DB_ERROR;
            }
        }
        PQclear(e);
        if (v->progress)
            v->progress(r->entries, head_size);
        if (rows < PAGE)
            break;
    }
    if (v->cpi < v->ncps || !v->cps_done) {
        struct au_checkpoint *cp = &v->cps[v->cpi];
        problem(r, (int64_t)v->f.size,
                "the checkpoint at tree size %llu covers entries that are missing from %llu on "
                "(deleted)",
                (unsigned long long)cp->tree_size, (unsigned long long)v->f.size);
    }
    if (!head_ok || head_size != v->f.size)
        problem(r, (int64_t)(head_size < v->f.size ? head_size : v->f.size),
                "the log's head says %llu entries, the table holds %llu",
                (unsigned long long)head_size, (unsigned long long)v->f.size);
    else if (head.count != v->f.count ||
             CRYPTO_memcmp(head.hash, v->f.hash, head.count * AU_HASH) != 0)
        problem(r, (int64_t)v->last_good_cp,
                "the log's head does not match the tree its entries form");
    r->tree_size = v->f.size;
    au_frontier_root(&v->f, r->root);
    r->uncovered = v->f.size - v->last_good_cp;
    return CORE_DB_OK;
}

bool au_verify_db(au_key_fn key, void *key_arg, void (*progress)(uint64_t done, uint64_t total),
                  struct au_report *r)
{
    struct vctx v = {.key = key, .key_arg = key_arg, .progress = progress, .r = r};
    memset(r, 0, sizeof *r);
    r->ok = true;
    r->first_bad = -1;
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_SNAPSHOT, verify_tx, &v, &err);
    free(v.cps);
    if (rc != CORE_DB_OK) {
        xsnprintf(r->problem, sizeof r->problem, "the database failed: %s", err.message);
        return false;
    }
    return true;
}
