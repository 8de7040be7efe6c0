#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/time.h>

#include <openssl/crypto.h>

#include "audit/au_internal.h"
#include "core/crypto.h"
#include "core/log.h"

/*
 * The append path. Every append, whoever makes it, runs the same steps in a
 * transaction: lock the head row, give each entry the next seq, write the
 * entries, the subtree nodes they complete and the new head. The head lock
 * is what keeps seq gap-free and the tree one tree with several hub
 * processes writing. au_append() queues entries for a per-process appender
 * thread that commits whatever has queued up as one transaction (group
 * commit), so the head lock is taken once per batch rather than per entry.
 */

#define BATCH_MAX 512
/* One appender thread per process. Measured: a second one, whose batch waits
 * for the head lock while the first commits, only halves the batches (the
 * lock serialises them anyway) and lowers throughput at 8 and 64 writers. */
#define APPENDERS 1

/* ---- entries ---- */

void au_time_now(char out[32])
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    time_t t = tv.tv_sec;
    gmtime_r(&t, &tm);
    xsnprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
              tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec);
}

static bool kind_ok(const char *k)
{
    size_t n = 0;
    bool dot_ok = false;
    for (; k[n]; n++) {
        char c = k[n];
        if (c == '.' && dot_ok)
            dot_ok = false;
        else if ((c >= 'a' && c <= 'z') || c == '_')
            dot_ok = true;
        else
            return false;
    }
    return n > 0 && n <= 64 && dot_ok;
}

/* A string member, or null; false when s is not UTF-8 or too long. */
static bool set_str(json_t *o, const char *name, const char *s, size_t max)
{
    if (!s)
        return json_object_set_new(o, name, json_null()) == 0;
    if (strlen(s) > max)
        return false;
    json_t *v = json_string(s);
    return v && json_object_set_new(o, name, v) == 0;
}

static bool set_obj(json_t *o, const char *name, json_t *v)
{
    if (v && !json_is_object(v))
        return false;
    return json_object_set(o, name, v ? v : json_null()) == 0;
}

json_t *au_entry_object(const struct au_entry *e, uint64_t seq, const char *time, const char **why)
{
    *why = NULL;
    if (!e->kind || !kind_ok(e->kind))
        *why = "kind must be lower-case words joined by dots";
    else if (e->decision && strcmp(e->decision, "permit") != 0 && strcmp(e->decision, "deny") != 0)
        *why = "decision must be permit or deny";
    if (*why)
        return NULL;
    json_t *o = json_object();
    json_t *consumer = NULL;
    if (e->consumer_tenant || e->consumer_client) {
        consumer = json_object();
        if (!set_str(consumer, "tenant", e->consumer_tenant, 64) ||
            !set_str(consumer, "client", e->consumer_client, 64))
            *why = "consumer tenant or client is not a short UTF-8 string";
    }
    json_object_set_new(o, "consumer", consumer ? consumer : json_null());
    if (!*why &&
        !(set_str(o, "kind", e->kind, 64) && set_str(o, "tenant", e->tenant, 64) &&
          set_str(o, "actor", e->actor, 200) && set_str(o, "decision", e->decision, 8) &&
          set_str(o, "reason", e->reason, 1000) && set_str(o, "provider", e->provider, 64) &&
          set_str(o, "agreement", e->agreement, 64) && set_str(o, "purpose", e->purpose, 200) &&
          set_str(o, "resident", e->resident, 64)))
        *why = "a string member is too long or not UTF-8";
    if (!*why && !(set_obj(o, "request", e->request) && set_obj(o, "outcome", e->outcome) &&
                   set_obj(o, "detail", e->detail)))
        *why = "request, outcome and detail must be objects";
    if (*why) {
        json_decref(o);
        return NULL;
    }
    json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    json_object_set_new(o, "time", json_string(time));
    return o;
}

void au_hash_b64(const au_hash h, char out[45])
{
    char *s = core_b64_encode(h, AU_HASH);
    xsnprintf(out, 45, "%s", s);
    free(s);
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

bool au_hash_from_b64(const char *s, au_hash out)
{
    /* 32 bytes are 43 characters and one '=' (no allocation: verifiers
     * decode one per entry) */
    if (!s || strlen(s) != 44 || s[43] != '=')
        return false;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (int i = 0; i < 43; i++) {
        int v = b64_value(s[i]);
        if (v < 0)
            return false;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* the two bits left over must be zero, or two strings decode alike */
    return o == AU_HASH && (acc & ((1u << bits) - 1)) == 0;
}

static pthread_once_t ref_once = PTHREAD_ONCE_INIT;
static unsigned char ref_key[32];

static void ref_key_init(void)
{
    core_secret_derive("renkei.audit.resident-ref.v1", ref_key, sizeof ref_key);
}

void au_resident_ref(const char *common_id, char out[44])
{
    pthread_once(&ref_once, ref_key_init);
    unsigned char mac[32];
    core_hmac_sha256(ref_key, common_id, strlen(common_id), mac);
    char *s = core_b64url_encode(mac, sizeof mac);
    xsnprintf(out, 44, "%s", s);
    free(s);
}

/* ---- one batch, in a transaction ---- */

static struct core_stmt au_head_read_stmt =
    CORE_STMT("au_head_read", "SELECT tree_size, frontier, pending_taken FROM audit_head");
static struct core_stmt au_head_lock_stmt = CORE_STMT(
    "au_head_lock", "SELECT tree_size, frontier, pending_taken FROM audit_head FOR UPDATE");
/* The entries, the nodes they complete and the new head, in one statement:
 * one round trip per batch while the head is locked. */
static struct core_stmt au_batch_write_stmt = CORE_STMT(
    "au_batch_write",
    "WITH e AS (INSERT INTO audit_entries (seq, time, kind, tenant, consumer_tenant, "
    "consumer_client, provider, agreement, purpose, decision, resident, canonical, leaf_hash) "
    "SELECT s, t::timestamptz, k, te, ct, cc, p, a, pu, d, r, c, decode(h, 'hex') "
    "FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "$7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[]) "
    "AS u(s, t, k, te, ct, cc, p, a, pu, d, r, c, h)), "
    "n AS (INSERT INTO audit_nodes (level, idx, hash) SELECT l, i, decode(h, 'hex') "
    "FROM unnest($14::smallint[], $15::bigint[], $16::text[]) AS u(l, i, h)) "
    "UPDATE audit_head SET tree_size = $17, frontier = decode($18, 'hex'), "
    "pending_taken = greatest(pending_taken, $19)");

/* The head from a result of (tree_size, frontier, pending_taken), binary. */
static bool head_parse(PGresult *r, struct au_frontier *f, int64_t *pending_taken)
{
    bool ok = PQntuples(r) == 1 && PQgetlength(r, 0, 0) == 8 && PQgetlength(r, 0, 2) == 8;
    if (ok) {
        uint64_t size = 0, taken = 0;
        const unsigned char *p = (const unsigned char *)PQgetvalue(r, 0, 0);
        const unsigned char *q = (const unsigned char *)PQgetvalue(r, 0, 2);
        for (int i = 0; i < 8; i++) {
            size = size << 8 | p[i];
            taken = taken << 8 | q[i];
        }
        ok = au_frontier_load(f, size, (const unsigned char *)PQgetvalue(r, 0, 1),
                              (size_t)PQgetlength(r, 0, 1));
        if (pending_taken)
            *pending_taken = (int64_t)taken;
    }
    if (!ok)
        core_log_bug("the audit head row is missing or does not fit its tree size");
    return ok;
}

bool au_head_read(struct core_db_conn *c, bool lock, struct au_frontier *f, int64_t *pending_taken)
{
    PGresult *r =
        core_db_execp(c, lock ? &au_head_lock_stmt : &au_head_read_stmt, 0, NULL, NULL, NULL, 1);
    if (!r)
        return false;
    bool ok = head_parse(r, f, pending_taken);
    PQclear(r);
    return ok;
}

/* A PostgreSQL array literal of text values, built up one element at a time. */
struct pgarr {
    struct strbuf sb;
    bool any;
};

static void pgarr_init(struct pgarr *a)
{
    strbuf_init(&a->sb, SIZE_MAX);
    strbuf_add(&a->sb, "{", 1);
    a->any = false;
}

static void pgarr_add(struct pgarr *a, const char *s)
{
    if (a->any)
        strbuf_add(&a->sb, ",", 1);
    a->any = true;
    if (!s) {
        strbuf_add(&a->sb, "NULL", 4);
        return;
    }
    strbuf_add(&a->sb, "\"", 1);
    for (const char *p = s; *p;) {
        size_t run = strcspn(p, "\"\\");
        strbuf_add(&a->sb, p, run);
        p += run;
        if (*p) {
            strbuf_add(&a->sb, "\\", 1);
            strbuf_add(&a->sb, p++, 1);
        }
    }
    strbuf_add(&a->sb, "\"", 1);
}

static const char *pgarr_done(struct pgarr *a)
{
    strbuf_add(&a->sb, "}", 1);
    return a->sb.buf;
}

enum {
    C_SEQ,
    C_TIME,
    C_KIND,
    C_TENANT,
    C_CT,
    C_CC,
    C_PROV,
    C_AGR,
    C_PURP,
    C_DEC,
    C_RES,
    C_CANON,
    C_HASH,
    C__N
};

struct batch {
    const struct au_entry **e;
    size_t n;
    uint64_t first_seq;    /* out */
    int64_t pending_taken; /* to record, or 0 */
    const char *why;       /* a malformed entry: our bug */
    bool own_tx;           /* the batch is the whole transaction */
    struct pgarr nl, ni, nh;
    size_t nodes;
};

static void on_node(void *arg, unsigned level, uint64_t idx, const au_hash h)
{
    struct batch *b = arg;
    char buf[32], hex[2 * AU_HASH + 1];
    xsnprintf(buf, sizeof buf, "%u", level);
    pgarr_add(&b->nl, buf);
    xsnprintf(buf, sizeof buf, "%llu", (unsigned long long)idx);
    pgarr_add(&b->ni, buf);
    core_hex(h, AU_HASH, hex);
    pgarr_add(&b->nh, hex);
    b->nodes++;
}

static enum core_db_rc batch_tx(struct core_db_conn *c, struct batch *b)
{
    struct au_frontier f;
    int64_t taken;
    /* the head, locked: sent with BEGIN when the batch is its own transaction */
    PGresult *head = core_db_first_result(c, &au_head_lock_stmt);
    if (head ? !head_parse(head, &f, &taken) : !au_head_read(c, true, &f, &taken))
        return CORE_DB_ERROR;
    b->first_seq = f.size;
    char time[32];
    au_time_now(time);

    struct pgarr col[C__N];
    for (int i = 0; i < C__N; i++)
        pgarr_init(&col[i]);
    pgarr_init(&b->nl);
    pgarr_init(&b->ni);
    pgarr_init(&b->nh);
    b->nodes = 0;
    enum core_db_rc rc = CORE_DB_OK;
    struct strbuf canon;
    strbuf_init(&canon, AU_ENTRY_MAX);
    for (size_t i = 0; i < b->n; i++) {
        const struct au_entry *e = b->e[i];
        uint64_t seq = f.size;
        json_t *o = au_entry_object(e, seq, time, &b->why);
        canon.len = 0;
        if (o && !au_canonical(o, &canon, 0))
            b->why = "the entry is too large or holds a fraction or a huge number";
        json_decref(o);
        if (b->why) {
            core_log_bug("audit entry of kind %s refused: %s", e->kind ? e->kind : "(none)",
                         b->why);
            rc = CORE_DB_ROLLBACK;
            goto cleanup;
        }
        au_hash leaf;
        au_leaf_hash(canon.buf, canon.len, leaf);
        au_frontier_append(&f, leaf, on_node, b);
        char buf[32], hex[2 * AU_HASH + 1];
        xsnprintf(buf, sizeof buf, "%llu", (unsigned long long)seq);
        core_hex(leaf, AU_HASH, hex);
        const char *v[C__N] = {buf,
                               time,
                               e->kind,
                               e->tenant,
                               e->consumer_tenant,
                               e->consumer_client,
                               e->provider,
                               e->agreement,
                               e->purpose,
                               e->decision,
                               e->resident,
                               canon.buf,
                               hex};
        for (int k = 0; k < C__N; k++)
            pgarr_add(&col[k], v[k]);
    }
    char size[32], taken_s[32];
    xsnprintf(size, sizeof size, "%llu", (unsigned long long)f.size);
    xsnprintf(taken_s, sizeof taken_s, "%lld", (long long)b->pending_taken);
    char *fhex = xmalloc(f.count * 2 * AU_HASH + 1);
    fhex[0] = '\0';
    for (size_t i = 0; i < f.count; i++)
        core_hex(f.hash[i], AU_HASH, fhex + i * 2 * AU_HASH);
    const char *v[C__N + 6];
    for (int k = 0; k < C__N; k++)
        v[k] = pgarr_done(&col[k]);
    v[C__N] = pgarr_done(&b->nl);
    v[C__N + 1] = pgarr_done(&b->ni);
    v[C__N + 2] = pgarr_done(&b->nh);
    v[C__N + 3] = size;
    v[C__N + 4] = fhex;
    v[C__N + 5] = taken_s;
    /* in a transaction of our own, the write and COMMIT go in one round
     * trip: the head lock is held one round trip less */
    PGresult *r = b->own_tx ? core_db_exec_commit(c, &au_batch_write_stmt, C__N + 6, v)
                            : core_db_exec(c, &au_batch_write_stmt, C__N + 6, v);
    free(fhex);
    if (!r || strcmp(PQcmdTuples(r), "1") != 0)
        rc = CORE_DB_ERROR;
    PQclear(r);
cleanup:
    strbuf_release(&canon);
    for (int i = 0; i < C__N; i++)
        strbuf_release(&col[i].sb);
    strbuf_release(&b->nl.sb);
    strbuf_release(&b->ni.sb);
    strbuf_release(&b->nh.sb);
    return rc;
}

bool au_append_in_tx(struct core_db_conn *c, const struct au_entry *e, uint64_t *seq)
{
    struct batch b = {.e = &e, .n = 1};
    if (batch_tx(c, &b) != CORE_DB_OK)
        return false;
    if (seq)
        *seq = b.first_seq;
    return true;
}

bool au_event_record(struct core_db_conn *c, const char *kind, const char *tenant,
                     const char *actor, json_t *detail)
{
    struct au_entry e = {.kind = kind, .tenant = tenant, .actor = actor, .detail = detail};
    return au_append_in_tx(c, &e, NULL);
}

static enum core_db_rc batch_tx_cb(struct core_db_conn *c, void *arg)
{
    struct batch *b = arg;
    b->own_tx = true;
    return batch_tx(c, b);
}

/* A batch as a transaction of its own: BEGIN and the head lock go in one
 * round trip, the write and COMMIT in another. */
static enum core_db_rc batch_run(struct batch *b, struct core_db_err *err)
{
    static const struct core_db_first lock = {.st = &au_head_lock_stmt, .result_format = 1};
    return core_db_tx_first(CORE_DB_PLATFORM, CORE_TX_WRITE, &lock, batch_tx_cb, b, err);
}

bool au_append_batch(const struct au_entry **e, size_t n, uint64_t *first)
{
    struct batch b = {.e = e, .n = n};
    struct core_db_err err;
    if (batch_run(&b, &err) != CORE_DB_OK)
        return false;
    if (first)
        *first = b.first_seq;
    return true;
}

/* ---- taking over pending_events ---- */

static struct core_stmt au_pending_stmt =
    CORE_STMT("au_pending",
              "SELECT id, to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
              "kind, tenant, actor, detail::text FROM pending_events WHERE id > $1 "
              "ORDER BY id LIMIT 1000");

struct takeover {
    size_t moved;
    bool more, none;
};

static enum core_db_rc takeover_tx(struct core_db_conn *c, void *arg)
{
    struct takeover *t = arg;
    t->more = false;
    struct au_frontier f;
    int64_t taken;
    if (!au_head_read(c, true, &f, &taken))
        return CORE_DB_ERROR;
    char after[32];
    xsnprintf(after, sizeof after, "%lld", (long long)taken);
    const char *v[] = {after};
    PGresult *r = core_db_exec(c, &au_pending_stmt, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    int rows = PQntuples(r);
    t->none = rows == 0;
    if (rows == 0) {
        PQclear(r);
        return CORE_DB_ROLLBACK;
    }
    struct strbuf canon;
    strbuf_init(&canon, AU_ENTRY_MAX - 1024);
    struct au_entry *es = xcalloc((size_t)rows, sizeof *es);
    const struct au_entry **ep = xcalloc((size_t)rows, sizeof *ep);
    long last = 0;
    for (int i = 0; i < rows; i++) {
        core_parse_long(PQgetvalue(r, i, 0), 0, LONG_MAX, &last);
        const char *text = PQgetvalue(r, i, 5);
        json_t *d = json_loads(text, 0, NULL);
        canon.len = 0;
        if (!json_is_object(d) || !au_canonical(d, &canon, 0)) {
            /* not representable in the log (a fraction, a huge number, too
             * big): kept as a digest of what it was, never dropped */
            unsigned char h[32];
            char hex[65];
            core_sha256(text, strlen(text), h);
            core_hex(h, sizeof h, hex);
            json_decref(d);
            d = json_pack("{s:s, s:b}", "detail_sha256", hex, "detail_unrepresentable", 1);
        }
        /* what the pending row knew, kept in the entry */
        json_object_set_new(d, "pending_id", json_integer(last));
        json_object_set_new(d, "recorded", json_string(PQgetvalue(r, i, 1)));
        es[i] = (struct au_entry){.kind = PQgetvalue(r, i, 2),
                                  .tenant = PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3),
                                  .actor = PQgetvalue(r, i, 4),
                                  .detail = d};
        ep[i] = &es[i];
    }
    strbuf_release(&canon);
    struct batch b = {.e = ep, .n = (size_t)rows, .pending_taken = last};
    enum core_db_rc rc = batch_tx(c, &b);
    for (int i = 0; i < rows; i++)
        json_decref(es[i].detail);
    free(es);
    free(ep);
    PQclear(r);
    t->moved = (size_t)rows;
    t->more = rows == 1000;
    return rc;
}

bool au_takeover(void)
{
    size_t total = 0;
    for (;;) {
        struct takeover t = {0};
        struct core_db_err err;
        enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, takeover_tx, &t, &err);
        if (rc == CORE_DB_ROLLBACK && t.none)
            break;
        if (rc == CORE_DB_ROLLBACK) {
            core_log_bug("pending audit events could not be taken over: an entry was refused");
            return false;
        }
        if (rc != CORE_DB_OK) {
            core_warn("pending audit events not taken over yet: %s", err.message);
            return false;
        }
        total += t.moved;
        if (!t.more)
            break;
    }
    if (total)
        core_info("took %zu pending events over into the audit log", total);
    return true;
}

/* ---- the group-commit appender ---- */

static atomic_ullong m_appended, m_failed, m_batches;

/* Histograms: entries per group commit, and seconds from an entry's queueing
 * to its commit (what a cross-town reply waits for). */
static const double batch_le[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
static const double wait_le[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                 0.05,   0.1,   0.25,  0.5,   1,    2.5};
static atomic_ullong m_batch_b[ARRAY_SIZE(batch_le) + 1], m_batch_sum;
static atomic_ullong m_wait_b[ARRAY_SIZE(wait_le) + 1], m_wait_sum_us;

static void observe(atomic_ullong *buckets, const double *le, size_t n, double v)
{
    size_t i = 0;
    while (i < n && v > le[i])
        i++;
    atomic_fetch_add(&buckets[i], 1); /* per bucket; summed when rendered */
}

static void render_hist(struct strbuf *out, const char *name, const char *help,
                        atomic_ullong *buckets, const double *le, size_t n, double sum)
{
    strbuf_addf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    unsigned long long cum = 0;
    for (size_t i = 0; i < n; i++) {
        cum += atomic_load(&buckets[i]);
        strbuf_addf(out, "%s_bucket{le=\"%g\"} %llu\n", name, le[i], cum);
    }
    cum += atomic_load(&buckets[n]);
    strbuf_addf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, cum, name,
                sum, name, cum);
}

void au_metrics(struct strbuf *out)
{
    strbuf_addf(out,
                "# HELP renkei_audit_appends_total Entries committed to the audit log by this "
                "process through the appender.\n"
                "# TYPE renkei_audit_appends_total counter\n"
                "renkei_audit_appends_total %llu\n"
                "# HELP renkei_audit_append_failures_total Appends refused or lost to a database "
                "failure (their requests failed closed).\n"
                "# TYPE renkei_audit_append_failures_total counter\n"
                "renkei_audit_append_failures_total %llu\n"
                "# HELP renkei_audit_batches_total Group commits made by the appender.\n"
                "# TYPE renkei_audit_batches_total counter\n"
                "renkei_audit_batches_total %llu\n",
                (unsigned long long)atomic_load(&m_appended),
                (unsigned long long)atomic_load(&m_failed),
                (unsigned long long)atomic_load(&m_batches));
    render_hist(out, "renkei_audit_batch_entries", "Entries per group commit of the appender.",
                m_batch_b, batch_le, ARRAY_SIZE(batch_le), (double)atomic_load(&m_batch_sum));
    render_hist(out, "renkei_audit_append_wait_seconds",
                "Time from an entry's queueing to its commit (a cross-town reply waits for it).",
                m_wait_b, wait_le, ARRAY_SIZE(wait_le), (double)atomic_load(&m_wait_sum_us) / 1e6);
}

struct waiter {
    const struct au_entry *e;
    uint64_t queued_us; /* when it was queued, for the wait histogram */
    uint64_t seq;
    int state;            /* 0 queued, 1 done, -1 failed */
    pthread_cond_t done;  /* each waiter its own: a batch wakes only its writers */
    au_append_done async; /* set: nobody waits; the appender calls it and frees the waiter */
    void *async_arg;
    struct waiter *next;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t work;
    struct waiter *head, *tail;
    bool running, stopping;
    pthread_t thread[APPENDERS];
} ap = {.mu = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER};

static void *appender_main(void *unused)
{
    (void)unused;
    const struct au_entry *es[BATCH_MAX];
    struct waiter *ws[BATCH_MAX];
    pthread_mutex_lock(&ap.mu);
    for (;;) {
        while (!ap.head && !ap.stopping)
            pthread_cond_wait(&ap.work, &ap.mu);
        if (!ap.head && ap.stopping)
            break;
        size_t n = 0;
        while (ap.head && n < BATCH_MAX) {
            ws[n] = ap.head;
            es[n] = ap.head->e;
            ap.head = ap.head->next;
            n++;
        }
        if (!ap.head)
            ap.tail = NULL;
        pthread_mutex_unlock(&ap.mu);

        /* results are kept here and handed over under the lock: a writer
         * leaves (and its waiter goes away) as soon as it sees its state */
        uint64_t seq[BATCH_MAX];
        int state[BATCH_MAX];
        struct batch b = {.e = es, .n = n};
        struct core_db_err err;
        enum core_db_rc rc = batch_run(&b, &err);
        if (rc == CORE_DB_ROLLBACK && n > 1) {
            /* one malformed entry must not fail the others: commit one by one */
            for (size_t i = 0; i < n; i++) {
                struct batch one = {.e = &es[i], .n = 1};
                enum core_db_rc r1 = batch_run(&one, &err);
                seq[i] = one.first_seq;
                state[i] = r1 == CORE_DB_OK ? 1 : -1;
            }
        } else {
            if (rc != CORE_DB_OK && rc != CORE_DB_ROLLBACK)
                core_error("audit append of %zu entries failed: %s", n, err.message);
            for (size_t i = 0; i < n; i++) {
                seq[i] = b.first_seq + i;
                state[i] = rc == CORE_DB_OK ? 1 : -1;
            }
        }
        atomic_fetch_add(&m_batches, 1);
        observe(m_batch_b, batch_le, ARRAY_SIZE(batch_le), (double)n);
        atomic_fetch_add(&m_batch_sum, n);
        uint64_t done_us = core_now_us();
        for (size_t i = 0; i < n; i++) {
            atomic_fetch_add(state[i] > 0 ? &m_appended : &m_failed, 1);
            uint64_t waited = done_us > ws[i]->queued_us ? done_us - ws[i]->queued_us : 0;
            observe(m_wait_b, wait_le, ARRAY_SIZE(wait_le), (double)waited / 1e6);
            atomic_fetch_add(&m_wait_sum_us, waited);
        }
        /* an asynchronous writer is told outside the lock (its callback
         * may take other locks); its waiter is the appender's to free */
        for (size_t i = 0; i < n; i++) {
            if (ws[i]->async) {
                ws[i]->async(ws[i]->async_arg, state[i] > 0, seq[i]);
                free(ws[i]);
                ws[i] = NULL;
            }
        }
        pthread_mutex_lock(&ap.mu);
        for (size_t i = 0; i < n; i++) {
            if (!ws[i])
                continue;
            ws[i]->seq = seq[i];
            ws[i]->state = state[i];
            pthread_cond_signal(&ws[i]->done);
        }
    }
    pthread_mutex_unlock(&ap.mu);
    return NULL;
}

void au_appender_start(void)
{
    pthread_mutex_lock(&ap.mu);
    if (!ap.running) {
        ap.stopping = false;
        for (int i = 0; i < APPENDERS; i++)
            if (pthread_create(&ap.thread[i], NULL, appender_main, NULL) != 0) {
                core_log_bug("cannot start the audit appender threads");
                abort();
            }
        ap.running = true;
    }
    pthread_mutex_unlock(&ap.mu);
}

void au_appender_stop(void)
{
    pthread_mutex_lock(&ap.mu);
    if (!ap.running) {
        pthread_mutex_unlock(&ap.mu);
        return;
    }
    ap.stopping = true;
    pthread_cond_broadcast(&ap.work);
    pthread_mutex_unlock(&ap.mu);
    for (int i = 0; i < APPENDERS; i++)
        pthread_join(ap.thread[i], NULL);
    pthread_mutex_lock(&ap.mu);
    ap.running = false;
    pthread_mutex_unlock(&ap.mu);
}

bool au_append(const struct au_entry *e, uint64_t *seq)
{
    pthread_mutex_lock(&ap.mu);
    if (!ap.running || ap.stopping) {
        /* no appender (a command, or shutting down): a transaction of its own */
        pthread_mutex_unlock(&ap.mu);
        struct batch b = {.e = &e, .n = 1};
        struct core_db_err err;
        if (batch_run(&b, &err) != CORE_DB_OK)
            return false;
        if (seq)
            *seq = b.first_seq;
        return true;
    }
    struct waiter w = {.e = e, .queued_us = core_now_us()};
    pthread_cond_init(&w.done, NULL);
    if (ap.tail)
        ap.tail->next = &w;
    else
        ap.head = &w;
    ap.tail = &w;
    pthread_cond_signal(&ap.work);
    while (w.state == 0)
        pthread_cond_wait(&w.done, &ap.mu);
    pthread_mutex_unlock(&ap.mu);
    pthread_cond_destroy(&w.done);
    if (w.state < 0)
        return false;
    if (seq)
        *seq = w.seq;
    return true;
}

void au_append_async(const struct au_entry *e, au_append_done done, void *arg)
{
    pthread_mutex_lock(&ap.mu);
    if (!ap.running || ap.stopping) {
        pthread_mutex_unlock(&ap.mu);
        uint64_t seq = 0;
        bool ok = au_append(e, &seq);
        done(arg, ok, seq);
        return;
    }
    struct waiter *w = xcalloc(1, sizeof *w);
    w->e = e;
    w->queued_us = core_now_us();
    w->async = done;
    w->async_arg = arg;
    if (ap.tail)
        ap.tail->next = w;
    else
        ap.head = w;
    ap.tail = w;
    pthread_cond_signal(&ap.work);
    pthread_mutex_unlock(&ap.mu);
}
