#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

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

/*
 * The log is read in chunks of 2^16 entries by one worker per core, each on
 * its own connection with a binary COPY: a chunk's worker checks its entries
 * (order, embedded seq, leaf hash), computes their subtree, and keeps its
 * frontier at every checkpoint inside the chunk. The main thread then joins
 * the chunks in order, so every checkpoint's root is compared against the
 * tree of exactly its size. Entries below the head's size never change in a
 * sound log, so the chunks need no common snapshot; the head and counts are
 * read first, in one.
 */
#define CHUNK_LEVEL 16
#define CHUNK       ((uint64_t)1 << CHUNK_LEVEL)
#define WORKERS_MAX 16

struct snap {
    struct au_checkpoint cp;
    bool held;                /* one the auditor holds, not one from the database */
    struct au_frontier local; /* of the chunk's leaves up to cp.tree_size */
    bool sig_ok, have;
};

struct chunk {
    uint64_t lo, hi;
    const struct au_checkpoint *held;
    size_t nheld;
    struct au_frontier local;
    struct snap *snaps;
    size_t nsnaps;
    uint64_t rows, expect;
    int64_t bad;
    char problem[512];
    bool done, db_failed;
};

struct vctx {
    au_key_fn key;
    void *key_arg;
    const struct au_checkpoint *held;
    size_t nheld;
    struct chunk *chunks;
    size_t nchunks;
    atomic_size_t next;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void chunk_problem(struct chunk *ch, int64_t seq, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void chunk_problem(struct chunk *ch, int64_t seq, const char *fmt, ...)
{
    if (ch->bad >= 0)
        return;
    ch->bad = seq;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ch->problem, sizeof ch->problem, fmt, ap);
    va_end(ap);
}

static uint64_t be64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | (unsigned char)p[i];
    return v;
}

static bool chunk_row(void *arg, int nf, const char *const *field, const int *len)
{
    struct chunk *ch = arg;
    if (nf != 3 || !field[0] || len[0] != 8 || !field[1]) {
        chunk_problem(ch, (int64_t)ch->expect, "a stored entry row is malformed");
        return false;
    }
    uint64_t seq = be64(field[0]);
    const char *canon = field[1];
    size_t clen = (size_t)len[1];
    if (seq != ch->expect) {
        chunk_problem(ch, (int64_t)ch->expect,
                      "entry %llu is missing (deleted): the next entry stored is %llu",
                      (unsigned long long)ch->expect, (unsigned long long)seq);
        return false; /* the tree of this chunk cannot be built */
    }
    int64_t inner;
    if (!au_embedded_seq(canon, clen, &inner))
        chunk_problem(ch, (int64_t)seq, "entry %llu is not in the canonical form",
                      (unsigned long long)seq);
    else if ((uint64_t)inner != seq)
        chunk_problem(ch, inner < (int64_t)seq ? inner : (int64_t)seq,
                      "entry stored at %llu says it is entry %lld: entries were inserted, "
                      "deleted or reordered from %lld on",
                      (unsigned long long)seq, (long long)inner,
                      (long long)(inner < (int64_t)seq ? inner : (int64_t)seq));
    au_hash leaf;
    au_leaf_hash(canon, clen, leaf);
    if (!field[2] || len[2] != AU_HASH || CRYPTO_memcmp(leaf, field[2], AU_HASH) != 0)
        chunk_problem(ch, (int64_t)seq,
                      "entry %llu was altered: its bytes do not hash to its "
                      "leaf hash",
                      (unsigned long long)seq);
    au_frontier_append(&ch->local, leaf, NULL, NULL);
    ch->rows++;
    ch->expect = seq + 1;
    for (size_t i = 0; i < ch->nsnaps; i++)
        if (ch->snaps[i].cp.tree_size == ch->expect) {
            ch->snaps[i].local = ch->local;
            ch->snaps[i].have = true;
        }
    return true;
}

static struct core_stmt au_verify_cps_stmt = CORE_STMT(
    "au_verify_cps", "SELECT tree_size, root_hash, time, kid, signature FROM audit_checkpoints "
                     "WHERE tree_size > $1 AND tree_size <= $2 ORDER BY tree_size");

static enum core_db_rc chunk_tx(struct core_db_conn *c, void *arg)
{
    struct chunk *ch = arg;
    /* a retried transaction starts over */
    memset(&ch->local, 0, sizeof ch->local);
    free(ch->snaps);
    ch->snaps = NULL;
    ch->nsnaps = 0;
    ch->rows = 0;
    ch->expect = ch->lo;
    ch->bad = -1;
    char lo[32], hi[32];
    xsnprintf(lo, sizeof lo, "%llu", (unsigned long long)ch->lo);
    xsnprintf(hi, sizeof hi, "%llu", (unsigned long long)ch->hi);
    const char *v[] = {lo, hi};
    PGresult *r = core_db_execp(c, &au_verify_cps_stmt, 2, v, NULL, NULL, 1);
    if (!r)
        return CORE_DB_ERROR;
    size_t rows = (size_t)PQntuples(r);
    ch->snaps = xcalloc(rows + ch->nheld + 1, sizeof *ch->snaps);
    for (size_t i = 0; i < rows; i++)
        if (!au_checkpoint_row(r, (int)i, &ch->snaps[ch->nsnaps++].cp))
            chunk_problem(ch, -1, "a checkpoint row is malformed");
    PQclear(r);
    for (size_t i = 0; i < ch->nheld; i++) {
        if (ch->held[i].tree_size <= ch->lo || ch->held[i].tree_size > ch->hi)
            continue;
        /* in order of size, after the database's one of the same size */
        size_t at = ch->nsnaps;
        while (at > 0 && ch->snaps[at - 1].cp.tree_size > ch->held[i].tree_size)
            at--;
        memmove(&ch->snaps[at + 1], &ch->snaps[at], (ch->nsnaps - at) * sizeof *ch->snaps);
        ch->snaps[at] = (struct snap){.cp = ch->held[i], .held = true};
        ch->nsnaps++;
    }
    /* COPY takes no parameters: the bounds are numbers of our own */
    char *sql = xasprintf("COPY (SELECT seq, canonical, leaf_hash FROM audit_entries "
                          "WHERE seq >= %s AND seq < %s ORDER BY seq) TO STDOUT (FORMAT binary)",
                          lo, hi);
    bool ok = core_db_copy_out(c, sql, chunk_row, ch);
    free(sql);
    if (!ok)
        return CORE_DB_ERROR;
    if (ch->expect < ch->hi)
        chunk_problem(ch, (int64_t)ch->expect,
                      "entry %llu is missing (deleted): the log's head counts %llu entries",
                      (unsigned long long)ch->expect, (unsigned long long)ch->hi);
    return CORE_DB_OK;
}

static void *worker(void *arg)
{
    struct vctx *v = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&v->next, 1);
        if (i >= v->nchunks)
            break;
        struct chunk *ch = &v->chunks[i];
        struct core_db_err err;
        bool ok = core_db_tx(CORE_DB_PLATFORM, CORE_TX_SNAPSHOT, chunk_tx, ch, &err) == CORE_DB_OK;
        if (ok)
            for (size_t k = 0; k < ch->nsnaps; k++) {
                struct au_checkpoint *cp = &ch->snaps[k].cp;
                EVP_PKEY *key = v->key(v->key_arg, cp->kid);
                size_t len;
                char *m = au_checkpoint_message(cp, &len);
                ch->snaps[k].sig_ok =
                    key && core_es256_verify(key, m, len, cp->sig, sizeof cp->sig);
                free(m);
                EVP_PKEY_free(key);
            }
        pthread_mutex_lock(&v->mu);
        ch->done = true;
        ch->db_failed = !ok;
        if (!ok)
            xsnprintf(ch->problem, sizeof ch->problem, "%s", err.message);
        pthread_cond_broadcast(&v->cv);
        pthread_mutex_unlock(&v->mu);
    }
    return NULL;
}

static struct core_stmt au_verify_head_stmt =
    CORE_STMT("au_verify_head",
              "SELECT h.tree_size, h.frontier, "
              "(SELECT count(*) FROM audit_entries e WHERE e.seq >= h.tree_size), "
              "(SELECT min(c.tree_size) FROM audit_checkpoints c WHERE c.tree_size > h.tree_size) "
              "FROM audit_head h");

struct head_arg {
    struct au_frontier head;
    bool head_ok;
    int64_t beyond;
    int64_t cp_beyond; /* -1: none */
};

static enum core_db_rc head_tx(struct core_db_conn *c, void *arg)
{
    struct head_arg *h = arg;
    PGresult *r = core_db_execp(c, &au_verify_head_stmt, 0, NULL, NULL, NULL, 1);
    if (!r)
        return CORE_DB_ERROR;
    h->head_ok = PQntuples(r) == 1 && PQgetlength(r, 0, 0) == 8;
    if (h->head_ok) {
        h->head_ok = au_frontier_load(&h->head, be64(PQgetvalue(r, 0, 0)),
                                      (const unsigned char *)PQgetvalue(r, 0, 1),
                                      (size_t)PQgetlength(r, 0, 1));
        h->head.size = be64(PQgetvalue(r, 0, 0));
        h->beyond = (int64_t)be64(PQgetvalue(r, 0, 2));
        h->cp_beyond = PQgetisnull(r, 0, 3) ? -1 : (int64_t)be64(PQgetvalue(r, 0, 3));
    }
    PQclear(r);
    return CORE_DB_OK;
}

bool au_verify_db(au_key_fn key, void *key_arg, const struct au_checkpoint *held, size_t nheld,
                  void (*progress)(uint64_t done, uint64_t total), struct au_report *r)
{
    memset(r, 0, sizeof *r);
    r->ok = true;
    r->first_bad = -1;
    struct head_arg h = {0};
    struct core_db_err err;
    if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_SNAPSHOT, head_tx, &h, &err) != CORE_DB_OK) {
        xsnprintf(r->problem, sizeof r->problem, "the database failed: %s", err.message);
        return false;
    }
    if (!h.head_ok) {
        problem(r, 0, "the log's head row is missing or does not fit its tree size");
        return true;
    }
    uint64_t size = h.head.size;
    struct vctx v = {
        .key = key, .key_arg = key_arg, .nchunks = (size_t)((size + CHUNK - 1) / CHUNK)};
    pthread_mutex_init(&v.mu, NULL);
    pthread_cond_init(&v.cv, NULL);
    v.chunks = xcalloc(v.nchunks + 1, sizeof *v.chunks);
    for (size_t i = 0; i < v.nchunks; i++) {
        v.chunks[i].lo = i * CHUNK;
        v.chunks[i].hi = i + 1 == v.nchunks ? size : (i + 1) * CHUNK;
        v.chunks[i].bad = -1;
        v.chunks[i].held = held;
        v.chunks[i].nheld = nheld;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nw = cores < 1 ? 1 : cores > WORKERS_MAX ? WORKERS_MAX : (size_t)cores;
    if (nw > v.nchunks)
        nw = v.nchunks;
    pthread_t t[WORKERS_MAX];
    for (size_t i = 0; i < nw; i++)
        if (pthread_create(&t[i], NULL, worker, &v) != 0) {
            core_log_bug("cannot start a verifier thread");
            abort();
        }

    /* join the chunks in order */
    struct au_frontier g = {0};
    uint64_t last_good = 0, prev_good = 0;
    bool db_failed = false;
    for (size_t i = 0; i < v.nchunks && !db_failed; i++) {
        struct chunk *ch = &v.chunks[i];
        pthread_mutex_lock(&v.mu);
        while (!ch->done)
            pthread_cond_wait(&v.cv, &v.mu);
        pthread_mutex_unlock(&v.mu);
        if (ch->db_failed) {
            db_failed = true;
            xsnprintf(r->problem, sizeof r->problem, "the database failed: %s", ch->problem);
            break;
        }
        r->entries += ch->rows;
        for (size_t k = 0; k < ch->nsnaps; k++) {
            struct snap *sn = &ch->snaps[k];
            if (ch->bad >= 0 && (uint64_t)ch->bad < sn->cp.tree_size)
                problem(r, ch->bad, "%s", ch->problem);
            r->checkpoints++;
            if (!sn->sig_ok) {
                problem(r, -1,
                        "checkpoint at tree size %llu: its key %s is unknown or its "
                        "signature does not verify",
                        (unsigned long long)sn->cp.tree_size, sn->cp.kid);
                continue;
            }
            if (!sn->have)
                continue; /* its entries are missing: reported with the chunk */
            struct au_frontier f = g;
            for (size_t j = 0; j < sn->local.count; j++)
                memcpy(f.hash[f.count++], sn->local.hash[j], AU_HASH);
            au_hash root;
            au_frontier_root(&f, root);
            /* the last size known good below this one */
            uint64_t below = last_good < sn->cp.tree_size ? last_good : prev_good;
            if (CRYPTO_memcmp(root, sn->cp.root, AU_HASH) != 0 && sn->held) {
                problem(r, (int64_t)below,
                        "entries %llu to %llu do not form the tree of the checkpoint you hold "
                        "(size %llu): the log was rewritten",
                        (unsigned long long)below, (unsigned long long)sn->cp.tree_size - 1,
                        (unsigned long long)sn->cp.tree_size);
                continue;
            }
            if (CRYPTO_memcmp(root, sn->cp.root, AU_HASH) != 0) {
                problem(r, (int64_t)last_good,
                        "entries %llu to %llu do not form the tree signed at size %llu: one of "
                        "them was changed, inserted, deleted or moved",
                        (unsigned long long)last_good, (unsigned long long)sn->cp.tree_size - 1,
                        (unsigned long long)sn->cp.tree_size);
                continue;
            }
            if (sn->cp.tree_size > last_good) {
                prev_good = last_good;
                last_good = sn->cp.tree_size;
            }
        }
        if (ch->bad >= 0)
            problem(r, ch->bad, "%s", ch->problem);
        if (ch->hi - ch->lo == CHUNK && ch->local.count == 1) {
            au_frontier_append_subtree(&g, CHUNK_LEVEL, ch->local.hash[0]);
        } else {
            for (size_t j = 0; j < ch->local.count; j++)
                memcpy(g.hash[g.count++], ch->local.hash[j], AU_HASH);
            g.size += ch->local.size;
        }
        if (progress)
            progress(r->entries, size);
    }
    for (size_t i = 0; i < nw; i++)
        pthread_join(t[i], NULL);
    for (size_t i = 0; i < v.nchunks; i++)
        free(v.chunks[i].snaps);
    free(v.chunks);
    pthread_mutex_destroy(&v.mu);
    pthread_cond_destroy(&v.cv);
    if (db_failed)
        return false;

    for (size_t i = 0; i < nheld; i++)
        if (held[i].tree_size > size)
            problem(r, (int64_t)size,
                    "the checkpoint you hold covers %llu entries, the log has %llu: it was cut "
                    "back",
                    (unsigned long long)held[i].tree_size, (unsigned long long)size);
    if (h.cp_beyond >= 0)
        problem(r, (int64_t)size,
                "the checkpoint at tree size %lld covers entries that are missing from %llu on "
                "(deleted)",
                (long long)h.cp_beyond, (unsigned long long)size);
    if (h.beyond > 0)
        problem(r, (int64_t)size,
                "%lld entries lie beyond the log's head (%llu entries): inserted, or the head "
                "was set back",
                (long long)h.beyond, (unsigned long long)size);
    if (r->ok && (g.size != size || g.count != h.head.count ||
                  CRYPTO_memcmp(g.hash, h.head.hash, g.count * AU_HASH) != 0))
        problem(r, (int64_t)last_good, "the log's head does not match the tree its entries form");
    r->tree_size = g.size;
    au_frontier_root(&g, r->root);
    r->uncovered = size - last_good;
    return true;
}
