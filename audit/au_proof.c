#include <stdlib.h>

#include "audit/au_internal.h"
#include "core/log.h"

/*
 * Proofs from the database. A proof needs the hashes of O(log n) subtrees;
 * each is a complete subtree (a stored node, or a leaf hash) or is built from
 * complete ones. The proof is computed twice: the first pass only notes which
 * complete subtrees it touches, one query fetches them all, and the second
 * pass computes with them.
 */

struct node_key {
    unsigned level;
    uint64_t idx;
    au_hash hash;
    bool found;
};

struct au_dbtree {
    struct node_key *keys;
    size_t n, alloc;
    bool fetched;
    bool missing;
};

struct au_dbtree *au_dbtree_new(void)
{
    return xcalloc(1, sizeof(struct au_dbtree));
}

void au_dbtree_free(struct au_dbtree *t)
{
    if (t) {
        free(t->keys);
        free(t);
    }
}

static struct node_key *find(struct au_dbtree *t, unsigned level, uint64_t idx)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->keys[i].level == level && t->keys[i].idx == idx)
            return &t->keys[i];
    return NULL;
}

static void complete(struct au_dbtree *t, unsigned level, uint64_t idx, au_hash out)
{
    struct node_key *k = find(t, level, idx);
    if (!t->fetched) {
        if (!k) {
            if (t->n == t->alloc) {
                t->alloc = t->alloc ? 2 * t->alloc : 64;
                t->keys = xrealloc(t->keys, t->alloc * sizeof *t->keys);
            }
            t->keys[t->n++] = (struct node_key){.level = level, .idx = idx};
        }
        memset(out, 0, AU_HASH);
        return;
    }
    if (!k || !k->found) {
        t->missing = true;
        memset(out, 0, AU_HASH);
        return;
    }
    memcpy(out, k->hash, AU_HASH);
}

static void subtree(void *arg, uint64_t lo, uint64_t hi, au_hash out)
{
    struct au_dbtree *t = arg;
    uint64_t size = hi - lo;
    if ((size & (size - 1)) == 0 && lo % size == 0) {
        unsigned level = (unsigned)__builtin_ctzll(size);
        complete(t, level, lo >> level, out);
        return;
    }
    uint64_t k = 1;
    while (k << 1 < size)
        k <<= 1;
    au_hash l, r;
    subtree(arg, lo, lo + k, l);
    subtree(arg, lo + k, hi, r);
    au_node_hash(l, r, out);
}

static struct core_stmt au_dbtree_fetch_stmt = CORE_STMT(
    "au_dbtree_fetch", "SELECT level, idx, hash FROM audit_nodes WHERE (level, idx) IN "
                       "(SELECT l, i FROM unnest($1::smallint[], $2::bigint[]) AS u(l, i)) "
                       "UNION ALL SELECT 0::smallint, seq, leaf_hash FROM audit_entries WHERE seq "
                       "= ANY($3::bigint[])");

static bool fetch(struct core_db_conn *c, struct au_dbtree *t)
{
    struct strbuf l, i, s;
    strbuf_init(&l, SIZE_MAX);
    strbuf_init(&i, SIZE_MAX);
    strbuf_init(&s, SIZE_MAX);
    strbuf_adds(&l, "{");
    strbuf_adds(&i, "{");
    strbuf_adds(&s, "{");
    bool any_node = false, any_leaf = false;
    for (size_t k = 0; k < t->n; k++) {
        if (t->keys[k].level == 0) {
            strbuf_addf(&s, "%s%llu", any_leaf ? "," : "", (unsigned long long)t->keys[k].idx);
            any_leaf = true;
        } else {
            strbuf_addf(&l, "%s%u", any_node ? "," : "", t->keys[k].level);
            strbuf_addf(&i, "%s%llu", any_node ? "," : "", (unsigned long long)t->keys[k].idx);
            any_node = true;
        }
    }
    strbuf_adds(&l, "}");
    strbuf_adds(&i, "}");
    strbuf_adds(&s, "}");
    const char *v[] = {l.buf, i.buf, s.buf};
    PGresult *r = core_db_execp(c, &au_dbtree_fetch_stmt, 3, v, NULL, NULL, 1);
    strbuf_release(&l);
    strbuf_release(&i);
    strbuf_release(&s);
    if (!r)
        return false;
    for (int row = 0; row < PQntuples(r); row++) {
        if (PQgetlength(r, row, 0) != 2 || PQgetlength(r, row, 1) != 8 ||
            PQgetlength(r, row, 2) != AU_HASH)
            continue;
        const unsigned char *lv = (const unsigned char *)PQgetvalue(r, row, 0);
        const unsigned char *ix = (const unsigned char *)PQgetvalue(r, row, 1);
        uint64_t idx = 0;
        for (int b = 0; b < 8; b++)
            idx = idx << 8 | ix[b];
        struct node_key *k = find(t, (unsigned)(lv[0] << 8 | lv[1]), idx);
        if (k) {
            memcpy(k->hash, PQgetvalue(r, row, 2), AU_HASH);
            k->found = true;
        }
    }
    PQclear(r);
    t->fetched = true;
    return true;
}

int au_dbtree_proof(struct core_db_conn *c, au_proof_fn fn, void *arg, au_hash *out, bool *ok)
{
    struct au_dbtree *t = au_dbtree_new();
    *ok = false;
    int len = fn(arg, subtree, t, out);
    if (len >= 0 && t->n > 0) {
        if (!fetch(c, t)) {
            au_dbtree_free(t);
            return -1;
        }
        len = fn(arg, subtree, t, out);
        if (t->missing) {
            core_log_bug("a stored audit node needed for a proof is missing");
            au_dbtree_free(t);
            return -1;
        }
    }
    *ok = true;
    au_dbtree_free(t);
    return len;
}
