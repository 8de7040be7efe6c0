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
        const char *use = json_string_value(json_object_get(k, "use"));
        /* only the log's own keys sign checkpoints, never a token key */
        if (!id || strcmp(id, kid) != 0 || strncmp(id, "audit-", 6) != 0 ||
            (alg && strcmp(alg, "ES256") != 0) || (use && strcmp(use, "sig") != 0))
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
/* A problem known only to lie somewhere in entries first..last. */
static void problem_range(struct au_report *r, uint64_t first, uint64_t last, const char *fmt, ...)
    PRINTF_LIKE(4, 5);
static void problem_range(struct au_report *r, uint64_t first, uint64_t last, const char *fmt, ...)
{
    if (!r->ok)
        return;
    r->ok = false;
    r->first_bad = (int64_t)first;
    r->bad_last = (int64_t)last;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->problem, sizeof r->problem, fmt, ap);
    va_end(ap);
}
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

/*
 * The columns beside the canonical bytes (what auditors filter on, and what
 * row-level security decides by) are not covered by the hash, so they are
 * compared with the entry's members. A small scanner finds the top-level
 * members of canonical bytes; a string with escapes is decoded by jansson.
 */
enum {
    M_TIME,
    M_KIND,
    M_TENANT,
    M_CTENANT,
    M_CCLIENT,
    M_PROVIDER,
    M_AGREEMENT,
    M_PURPOSE,
    M_DECISION,
    M_RESIDENT,
    M__N
};
static const char *const member_names[M__N] = {
    "time",     "kind",      "tenant",  "consumer.tenant", "consumer.client",
    "provider", "agreement", "purpose", "decision",        "resident"};

struct span {
    const char *p; /* the value's text (a string with its quotes), NULL: absent */
    size_t n;
};

/* The end of the JSON value at p (canonical bytes: no whitespace). */
static const char *value_end(const char *p, const char *end)
{
    if (p >= end)
        return NULL;
    if (*p == '"') {
        for (p++; p < end; p++) {
            if (*p == '\\')
                p++;
            else if (*p == '"')
                return p + 1;
        }
        return NULL;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; p < end; p++) {
            if (*p == '"') {
                p = value_end(p, end);
                if (!p)
                    return NULL;
                p--;
            } else if (*p == '{' || *p == '[') {
                depth++;
            } else if ((*p == '}' || *p == ']') && --depth == 0) {
                return p + 1;
            }
        }
        return NULL;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']')
        p++;
    return p;
}

/* Finds the members of the object at [p, end) named in names (n of them). */
static bool members(const char *p, const char *end, const char *const *names, size_t n,
                    struct span *out)
{
    if (p >= end || *p != '{')
        return false;
    for (p++; p < end && *p != '}';) {
        const char *k = p, *ke = value_end(p, end);
        if (!ke || *k != '"' || ke >= end || *ke != ':')
            return false;
        const char *v = ke + 1, *ve = value_end(v, end);
        if (!ve)
            return false;
        for (size_t i = 0; i < n; i++)
            if (names[i] && strlen(names[i]) == (size_t)(ke - k - 2) &&
                memcmp(names[i], k + 1, (size_t)(ke - k - 2)) == 0)
                out[i] = (struct span){v, (size_t)(ve - v)};
        p = ve < end && *ve == ',' ? ve + 1 : ve;
    }
    return p < end;
}

/* A column (NULL: SQL NULL) equals a member (a JSON string, or null). */
static bool same(const char *col, int col_len, struct span v)
{
    if (!v.p)
        return false;
    if (v.n == 4 && memcmp(v.p, "null", 4) == 0)
        return col == NULL;
    if (!col || v.n < 2 || v.p[0] != '"')
        return false;
    if (!memchr(v.p, '\\', v.n))
        return (size_t)col_len == v.n - 2 && memcmp(col, v.p + 1, v.n - 2) == 0;
    json_t *j = json_loadb(v.p, v.n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    bool eq = json_is_string(j) && json_string_length(j) == (size_t)col_len &&
              memcmp(json_string_value(j), col, (size_t)col_len) == 0;
    json_decref(j);
    return eq;
}

/* The entry's time ("2026-11-26T07:57:01.123456Z") as PostgreSQL's binary
 * timestamptz: microseconds since 2000-01-01 UTC. */
static bool time_micros(struct span v, int64_t *out)
{
    static const char shape[] = "\"dddd-dd-ddTdd:dd:dd.ddddddZ\"";
    if (!v.p || v.n != sizeof shape - 1)
        return false;
    for (size_t i = 0; i < v.n; i++)
        if (shape[i] == 'd' ? !(v.p[i] >= '0' && v.p[i] <= '9') : v.p[i] != shape[i])
            return false;
    const char *t = v.p + 1;
    int f[7];
    static const int at[7] = {0, 5, 8, 11, 14, 17, 20}, width[7] = {4, 2, 2, 2, 2, 2, 6};
    for (int i = 0; i < 7; i++) {
        f[i] = 0;
        for (int k = 0; k < width[i]; k++)
            f[i] = f[i] * 10 + (t[at[i] + k] - '0');
    }
    int64_t days = core_days_from_civil(f[0], f[1], f[2]) - core_days_from_civil(2000, 1, 1);
    *out = ((days * 24 + f[3]) * 60 + f[4]) * 60 * 1000000 + (int64_t)f[5] * 1000000 + f[6];
    return true;
}

/* Compares the row's columns (fields 3..) with the entry's members. */
static void check_columns(struct chunk *ch, uint64_t seq, const char *canon, size_t clen,
                          const char *const *field, const int *len)
{
    static const char *const top[] = {"time",      "kind",    "tenant",   "consumer", "provider",
                                      "agreement", "purpose", "decision", "resident"};
    struct span t[ARRAY_SIZE(top)] = {0}, cons[2] = {0};
    static const char *const cnames[2] = {"tenant", "client"};
    const char *end = canon + clen;
    if (!members(canon, end, top, ARRAY_SIZE(top), t)) {
        chunk_problem(ch, (int64_t)seq, "entry %llu is not a JSON object", (unsigned long long)seq);
        return;
    }
    bool cnull = t[3].p && t[3].n == 4 && memcmp(t[3].p, "null", 4) == 0;
    if (t[3].p && !cnull && !members(t[3].p, t[3].p + t[3].n, cnames, 2, cons)) {
        chunk_problem(ch, (int64_t)seq, "entry %llu has a malformed consumer",
                      (unsigned long long)seq);
        return;
    }
    if (cnull)
        cons[0] = cons[1] = t[3];
    struct span v[M__N] = {t[0], t[1], t[2], cons[0], cons[1], t[4], t[5], t[6], t[7], t[8]};
    int64_t us;
    if (!field[3] || len[3] != 8 || !time_micros(v[M_TIME], &us) || (int64_t)be64(field[3]) != us) {
        chunk_problem(ch, (int64_t)seq,
                      "entry %llu: its time column differs from the entry (changed after it was "
                      "written)",
                      (unsigned long long)seq);
        return;
    }
    for (int i = M_KIND; i < M__N; i++)
        if (!same(field[3 + i], len[3 + i], v[i])) {
            chunk_problem(ch, (int64_t)seq,
                          "entry %llu: its %s column differs from the entry (changed after it "
                          "was written: who may see it, or how it is found, was altered)",
                          (unsigned long long)seq, member_names[i]);
            return;
        }
}

static bool chunk_row(void *arg, int nf, const char *const *field, const int *len)
{
    struct chunk *ch = arg;
    if (nf != 3 + M__N || !field[0] || len[0] != 8 || !field[1]) {
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
    else
        check_columns(ch, seq, canon, clen, field, len);
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
    char *sql = xasprintf("COPY (SELECT seq, canonical, leaf_hash, time, kind, tenant, "
                          "consumer_tenant, consumer_client, provider, agreement, purpose, "
                          "decision, resident FROM audit_entries "
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
    r->first_bad = r->bad_last = -1;
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
    bool db_failed = false, broken = false;
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
            if (!sn->have || broken)
                continue; /* its entries are missing: reported with the chunk */
            struct au_frontier f = g;
            for (size_t j = 0; j < sn->local.count; j++)
                memcpy(f.hash[f.count++], sn->local.hash[j], AU_HASH);
            au_hash root;
            au_frontier_root(&f, root);
            /* the last size known good below this one */
            uint64_t below = last_good < sn->cp.tree_size ? last_good : prev_good;
            if (CRYPTO_memcmp(root, sn->cp.root, AU_HASH) != 0 && sn->held) {
                problem_range(
                    r, below, sn->cp.tree_size - 1,
                    "entries %llu to %llu do not form the tree of the checkpoint you hold "
                    "(size %llu): the log was rewritten",
                    (unsigned long long)below, (unsigned long long)sn->cp.tree_size - 1,
                    (unsigned long long)sn->cp.tree_size);
                continue;
            }
            if (CRYPTO_memcmp(root, sn->cp.root, AU_HASH) != 0) {
                problem_range(
                    r, last_good, sn->cp.tree_size - 1,
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
        if (ch->local.size != ch->hi - ch->lo) {
            /* entries are missing (reported above): the tree past this point
             * cannot be rebuilt, so later checkpoints are not compared */
            broken = true;
        } else if (ch->hi - ch->lo == CHUNK) {
            au_frontier_append_subtree(&g, CHUNK_LEVEL, ch->local.hash[0]);
        } else {
            /* the last chunk, partial: its subtrees follow the complete ones */
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
    if (r->ok && !broken &&
        (g.size != size || g.count != h.head.count ||
         CRYPTO_memcmp(g.hash, h.head.hash, g.count * AU_HASH) != 0))
        problem(r, (int64_t)last_good, "the log's head does not match the tree its entries form");
    r->tree_size = g.size;
    au_frontier_root(&g, r->root);
    r->uncovered = size - last_good;
    return true;
}
