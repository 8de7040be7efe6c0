#include <stdatomic.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "audit/au_internal.h"
#include "core/crypto.h"
#include "core/db_listen.h"
#include "core/jose.h"
#include "core/log.h"
#include "core/reload.h"

/*
 * Signed checkpoints. The checkpoint key is the audit log's own ES256 key,
 * never a token-signing key: its private half is sealed with the master
 * secret, every key ever used stays published (checkpoints are kept forever
 * and must verify years later), and the signature covers a text message
 * (FORMAT.md) that cannot be mistaken for a JWS.
 */

#define MESSAGE_HEAD "renkei audit checkpoint v1\n"

struct akey {
    char kid[80];
    EVP_PKEY *pkey; /* private, or public only for another node's file key */
    json_t *jwk;
    bool active;
    bool can_sign; /* this node holds its private half */
};

static struct {
    pthread_rwlock_t lock;
    struct akey *keys;
    size_t n;
} ks = {.lock = PTHREAD_RWLOCK_INITIALIZER};

static void keys_free(struct akey *k, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        EVP_PKEY_free(k[i].pkey);
        json_decref(k[i].jwk);
    }
    free(k);
}

char *au_checkpoint_message(const struct au_checkpoint *cp, size_t *len)
{
    char root[45];
    au_hash_b64(cp->root, root);
    char *m = xasprintf(MESSAGE_HEAD "%llu\n%s\n%s\n%s\n", (unsigned long long)cp->tree_size, root,
                        cp->time, cp->kid);
    *len = strlen(m);
    return m;
}

json_t *au_checkpoint_json(const struct au_checkpoint *cp)
{
    char root[45];
    au_hash_b64(cp->root, root);
    char *sig = core_b64_encode(cp->sig, sizeof cp->sig);
    json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:s}", "tree_size", (json_int_t)cp->tree_size,
                          "root_hash", root, "time", cp->time, "kid", cp->kid, "signature", sig);
    free(sig);
    return j;
}

static bool time_ok(const char *t)
{
    /* 2026-11-26T07:57:01.123456Z */
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    if (strlen(t) != sizeof shape - 1)
        return false;
    for (size_t i = 0; i < sizeof shape - 1; i++)
        if (shape[i] == 'd' ? !(t[i] >= '0' && t[i] <= '9') : t[i] != shape[i])
            return false;
    return true;
}

bool au_checkpoint_parse(json_t *j, struct au_checkpoint *cp, const char **why)
{
    memset(cp, 0, sizeof *cp);
    json_t *size = json_object_get(j, "tree_size");
    const char *root = json_string_value(json_object_get(j, "root_hash"));
    const char *time = json_string_value(json_object_get(j, "time"));
    const char *kid = json_string_value(json_object_get(j, "kid"));
    const char *sig = json_string_value(json_object_get(j, "signature"));
    unsigned char *raw = NULL;
    size_t n = 0;
    if (!json_is_object(j))
        *why = "a checkpoint is a JSON object";
    else if (!json_is_integer(size) || json_integer_value(size) < 0)
        *why = "tree_size must be a non-negative integer";
    else if (!au_hash_from_b64(root, cp->root))
        *why = "root_hash must be a base64 SHA-256 hash";
    else if (!time || !time_ok(time))
        *why = "time must be RFC 3339 UTC with microseconds";
    else if (!kid || strlen(kid) >= sizeof cp->kid)
        *why = "kid is missing or too long";
    else if (!sig || !core_b64_decode(sig, strlen(sig), &raw, &n) || n != sizeof cp->sig)
        *why = "signature must be 64 bytes in base64";
    else
        *why = NULL;
    if (!*why) {
        cp->tree_size = (uint64_t)json_integer_value(size);
        xsnprintf(cp->time, sizeof cp->time, "%s", time);
        xsnprintf(cp->kid, sizeof cp->kid, "%s", kid);
        memcpy(cp->sig, raw, sizeof cp->sig);
    }
    free(raw);
    return !*why;
}

/* ---- keys ---- */

#define AU_KEY_COLUMNS "kid, private_sealed, state, held, public_jwk, public_mac"
static struct core_stmt au_keys_load_stmt =
    CORE_STMT("au_keys_load", "SELECT " AU_KEY_COLUMNS " FROM audit_keys ORDER BY created_at");
static struct core_stmt au_keys_insert_stmt =
    CORE_STMT("au_keys_insert", "INSERT INTO audit_keys (kid, public_jwk, private_sealed, state) "
                                "VALUES ($1, $2::jsonb, $3, 'active')");
static struct core_stmt au_keys_insert_file_stmt = CORE_STMT(
    "au_keys_insert_file", "INSERT INTO audit_keys (kid, public_jwk, private_sealed, state, held, "
                           "public_mac) VALUES ($1, $2::jsonb, NULL, 'active', 'file', $3)");
static struct core_stmt au_keys_retire_stmt =
    CORE_STMT("au_keys_retire", "UPDATE audit_keys SET state = 'retired' WHERE state = 'active' "
                                "RETURNING kid");
static struct core_stmt au_keys_active_held_stmt =
    CORE_STMT("au_keys_active_held", "SELECT held FROM audit_keys WHERE state = 'active'");

#define AU_FILE_KEY_LABEL "renkei.audit.file-key.v1"

/* A file key's row is believed only with the root's MAC of its kid
 * (core_file_row_mac; see migration 0010). */
static void file_key_mac(const char *kid, unsigned char mac[32])
{
    core_file_row_mac(AU_FILE_KEY_LABEL, kid, mac);
}

static bool insert_key(struct core_db_conn *c, char *kid_out, size_t kid_len)
{
    struct core_sealed_key k;
    core_sealed_key_new(CORE_ES256, AU_KEY_LABEL, "audit-", &k);
    const char *v[] = {k.kid, k.jwk, (const char *)k.sealed};
    int lengths[] = {0, 0, (int)k.sealed_len};
    int formats[] = {0, 0, 1};
    PGresult *r = core_db_execp(c, &au_keys_insert_stmt, 3, v, lengths, formats, 0);
    if (r)
        PQclear(r);
    if (kid_out)
        xsnprintf(kid_out, kid_len, "%s", k.kid);
    core_sealed_key_release(&k);
    return r != NULL;
}

struct load_arg {
    struct akey *keys;
    size_t n;
    bool created;
};

/* The public key of another node's file key, after its row's checks: its
 * kid is "audit-" and the thumbprint of its public JWK, an EC key, with the
 * MAC only a holder of the root can make. */
static EVP_PKEY *file_row_key(PGresult *r, int i, const char *kid)
{
    if (strncmp(kid, "audit-", 6) != 0)
        return NULL;
    size_t mac_len = 0;
    unsigned char *mac = PQgetisnull(r, i, 5)
                             ? NULL
                             : PQunescapeBytea((unsigned char *)PQgetvalue(r, i, 5), &mac_len);
    const char *why;
    EVP_PKEY *pub = core_file_row_key(PQgetvalue(r, i, 4), mac, mac_len, kid + 6, "EC",
                                      AU_FILE_KEY_LABEL, kid, &why);
    PQfreemem(mac);
    if (!pub)
        core_logf(CORE_LOG_ERROR, "audit key %s held in a file is not trusted: %s", kid, why);
    return pub;
}

/* Adds the keys of r's rows (AU_KEY_COLUMNS, text) to a; true when one is
 * active. *mine: this node's file key has a row; *mine_active: it is the
 * active one. */
static bool add_rows(struct load_arg *a, PGresult *r, bool *mine, bool *mine_active)
{
    int rows = PQntuples(r);
    a->keys = xcalloc((size_t)rows + 1, sizeof *a->keys);
    bool active = false;
    const char *fthumb = NULL;
    EVP_PKEY *fk = core_audit_file_key(&fthumb, NULL);
    *mine = *mine_active = false;
    for (int i = 0; i < rows; i++) {
        struct akey *k = &a->keys[a->n];
        xsnprintf(k->kid, sizeof k->kid, "%s", PQgetvalue(r, i, 0));
        k->active = strcmp(PQgetvalue(r, i, 2), "active") == 0;
        if (strcmp(PQgetvalue(r, i, 3), "file") == 0) {
            if (fk && strcmp(k->kid + 6, fthumb) == 0 && strncmp(k->kid, "audit-", 6) == 0) {
                EVP_PKEY_up_ref(fk);
                k->pkey = fk;
                k->can_sign = true;
                *mine = true;
                *mine_active = k->active;
            } else {
                k->pkey = file_row_key(r, i, k->kid);
            }
        } else {
            /* The public half is derived from the sealed private half, not
             * read from public_jwk: only a holder of the master secret can
             * add a key that verifies. */
            size_t sealed_len = 0;
            unsigned char *sealed =
                PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 1), &sealed_len);
            k->pkey =
                sealed ? core_sealed_key_open(AU_KEY_LABEL, "audit key", k->kid, sealed, sealed_len)
                       : NULL;
            PQfreemem(sealed);
            k->can_sign = true;
        }
        if (!k->pkey || !EVP_PKEY_is_a(k->pkey, "EC")) {
            EVP_PKEY_free(k->pkey);
            k->pkey = NULL;
            continue;
        }
        k->jwk = core_jwk_public(k->pkey);
        json_object_set_new(k->jwk, "kid", json_string(k->kid));
        json_object_set_new(k->jwk, "use", json_string("sig"));
        json_object_set_new(k->jwk, "alg", json_string("ES256"));
        active = active || k->active;
        a->n++;
    }
    return active;
}

/* This node's file key becomes the active checkpoint key; the one before
 * retires (kept and published forever, as every audit key). */
static bool insert_file_key(struct core_db_conn *c)
{
    const char *thumb = NULL;
    EVP_PKEY *fk = core_audit_file_key(&thumb, NULL);
    char kid[80];
    xsnprintf(kid, sizeof kid, "audit-%s", thumb);
    PGresult *r = core_db_exec(c, &au_keys_retire_stmt, 0, NULL);
    if (!r)
        return false;
    json_t *retired = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(retired, json_string(PQgetvalue(r, i, 0)));
    PQclear(r);
    json_t *jwk = core_jwk_public(fk);
    char *text = json_dumps(jwk, JSON_COMPACT);
    json_decref(jwk);
    unsigned char mac[32];
    file_key_mac(kid, mac);
    const char *v[] = {kid, text, (const char *)mac};
    int lengths[] = {0, 0, (int)sizeof mac};
    int formats[] = {0, 0, 1};
    r = core_db_execp(c, &au_keys_insert_file_stmt, 3, v, lengths, formats, 0);
    free(text);
    bool ok = r != NULL;
    PQclear(r);
    json_t *d = json_pack("{s:s, s:o, s:s}", "created", kid, "retired", retired, "held", "file");
    ok = ok && au_event_record(c, "audit.key_rotate", NULL, "hub:audit-key-file", d);
    json_decref(d);
    return ok;
}

static void load_clear(struct load_arg *a)
{
    keys_free(a->keys, a->n);
    a->keys = NULL;
    a->n = 0;
    a->created = false;
}

static enum core_db_rc load_once(struct core_db_conn *c, void *p)
{
    struct load_arg *a = p;
    load_clear(a);
    PGresult *r = core_db_execp(c, &au_keys_load_stmt, 0, NULL, NULL, NULL, 0);
    if (!r)
        return CORE_DB_ERROR;
    bool mine, mine_active;
    bool active = add_rows(a, r, &mine, &mine_active);
    PQclear(r);
    if (core_audit_file_key(NULL, NULL)) {
        /* a file key never seen here becomes the active one; once retired
         * (replaced by another node's), it never comes back */
        if (!mine) {
            if (!insert_file_key(c))
                return CORE_DB_ERROR;
            a->created = true;
        }
    } else if (!active) {
        if (!insert_key(c, NULL, 0))
            return CORE_DB_ERROR;
        a->created = true;
    }
    return CORE_DB_OK;
}

/* The usual load: one statement, read-only. False (a cleared) when there is
 * no active key yet, or this node's file key is not in the table: that
 * takes a write. */
static bool load_read(struct load_arg *a)
{
    static const struct core_db_query q = {
        "SELECT " AU_KEY_COLUMNS " FROM audit_keys ORDER BY created_at", 0, NULL};
    PGresult *r = NULL;
    struct core_db_err err;
    core_reload_mark();
    if (core_db_read(CORE_DB_PLATFORM, CORE_TX_READ, &q, 1, &r, &err) != CORE_DB_OK)
        return false;
    bool mine, mine_active;
    bool active = add_rows(a, r, &mine, &mine_active);
    PQclear(r);
    bool done = core_audit_file_key(NULL, NULL) ? mine : active;
    if (!done)
        load_clear(a);
    return done;
}

static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;

static bool keys_load_locked(void);

/* One load at a time (the listener, the checkpointer and a signer may all
 * ask): otherwise an older read could replace a newer one. */
bool au_keys_load(void)
{
    pthread_mutex_lock(&load_mu);
    bool ok = keys_load_locked();
    pthread_mutex_unlock(&load_mu);
    return ok;
}

/* Reads the keys; when the first had to be created, reads them again, in
 * the same transaction. */
static enum core_db_rc load_tx(struct core_db_conn *c, void *p)
{
    struct load_arg *a = p;
    core_reload_mark();
    enum core_db_rc rc = load_once(c, a);
    if (rc != CORE_DB_OK || !a->created)
        return rc;
    rc = load_once(c, a);
    a->created = true;
    return rc;
}

static bool keys_load_locked(void)
{
    struct load_arg a = {0};
    struct core_db_err err;
    if (!load_read(&a) &&
        core_db_tx_racing(CORE_DB_PLATFORM, CORE_TX_WRITE, load_tx, &a, &err) != CORE_DB_OK) {
        keys_free(a.keys, a.n);
        core_warn("audit keys not loaded: %s", err.message);
        return false;
    }
    if (a.created)
        core_info("created the audit checkpoint key");
    pthread_rwlock_wrlock(&ks.lock);
    keys_free(ks.keys, ks.n);
    ks.keys = a.keys;
    ks.n = a.n;
    pthread_rwlock_unlock(&ks.lock);
    return true;
}

void au_keys_release(void)
{
    pthread_rwlock_wrlock(&ks.lock);
    keys_free(ks.keys, ks.n);
    ks.keys = NULL;
    ks.n = 0;
    pthread_rwlock_unlock(&ks.lock);
}

bool au_keys_loaded(void)
{
    pthread_rwlock_rdlock(&ks.lock);
    bool loaded = ks.keys != NULL;
    pthread_rwlock_unlock(&ks.lock);
    return loaded;
}

json_t *au_jwks(void)
{
    pthread_rwlock_rdlock(&ks.lock);
    if (!ks.keys) {
        pthread_rwlock_unlock(&ks.lock);
        return NULL;
    }
    json_t *keys = json_array();
    for (size_t i = 0; i < ks.n; i++)
        json_array_append_new(keys, json_deep_copy(ks.keys[i].jwk));
    pthread_rwlock_unlock(&ks.lock);
    return keys;
}

/* Signs cp (its kid set to the active key's); false without a key. */
static bool sign(struct au_checkpoint *cp)
{
    bool ok = false;
    pthread_rwlock_rdlock(&ks.lock);
    for (size_t i = 0; i < ks.n; i++) {
        if (!ks.keys[i].active || !ks.keys[i].can_sign)
            continue;
        xsnprintf(cp->kid, sizeof cp->kid, "%s", ks.keys[i].kid);
        size_t len;
        char *m = au_checkpoint_message(cp, &len);
        core_es256_sign(ks.keys[i].pkey, m, len, cp->sig);
        free(m);
        ok = true;
        break;
    }
    pthread_rwlock_unlock(&ks.lock);
    return ok;
}

static enum core_db_rc rotate_tx(struct core_db_conn *c, void *p)
{
    PGresult *r = core_db_exec(c, &au_keys_active_held_stmt, 0, NULL);
    if (!r)
        return CORE_DB_ERROR;
    bool in_file = PQntuples(r) > 0 && strcmp(PQgetvalue(r, 0, 0), "file") == 0;
    PQclear(r);
    if (in_file)
        return CORE_DB_ROLLBACK; /* rotated by replacing the file */
    r = core_db_exec(c, &au_keys_retire_stmt, 0, NULL);
    if (!r)
        return CORE_DB_ERROR;
    json_t *retired = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(retired, json_string(PQgetvalue(r, i, 0)));
    PQclear(r);
    char kid[80];
    json_t *d = p;
    if (!insert_key(c, kid, sizeof kid)) {
        json_decref(retired);
        return CORE_DB_ERROR;
    }
    json_object_set_new(d, "retired", retired);
    json_object_set_new(d, "created", json_string(kid));
    return au_event_record(c, "audit.key_rotate", NULL,
                           json_string_value(json_object_get(d, "actor")), d)
               ? CORE_DB_OK
               : CORE_DB_ERROR;
}

json_t *au_keys_rotate(const char *actor, char *err, size_t errlen)
{
    json_t *d = json_pack("{s:s}", "actor", actor);
    struct core_db_err e;
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, rotate_tx, d, &e);
    if (rc != CORE_DB_OK) {
        xsnprintf(err, errlen, "%s",
                  rc == CORE_DB_ROLLBACK ? "the active checkpoint key is held in "
                                           "RENKEI_AUDIT_KEY_FILE: rotate it by replacing the file"
                                         : e.message);
        json_decref(d);
        return NULL;
    }
    json_object_del(d, "actor");
    return d;
}

/* ---- making checkpoints ---- */

static struct core_stmt au_checkpoint_latest_stmt =
    CORE_STMT("au_checkpoint_latest", "SELECT tree_size, root_hash, time, kid, signature "
                                      "FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1");
static struct core_stmt au_checkpoint_insert_stmt = CORE_STMT(
    "au_checkpoint_insert", "INSERT INTO audit_checkpoints (tree_size, root_hash, time, kid, "
                            "signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING");

bool au_checkpoint_row(PGresult *r, int i, struct au_checkpoint *cp)
{
    memset(cp, 0, sizeof *cp);
    if (PQgetlength(r, i, 0) != 8 || PQgetlength(r, i, 1) != AU_HASH ||
        PQgetlength(r, i, 4) != (int)sizeof cp->sig)
        return false;
    const unsigned char *p = (const unsigned char *)PQgetvalue(r, i, 0);
    for (int k = 0; k < 8; k++)
        cp->tree_size = cp->tree_size << 8 | p[k];
    memcpy(cp->root, PQgetvalue(r, i, 1), AU_HASH);
    xsnprintf(cp->time, sizeof cp->time, "%.*s", PQgetlength(r, i, 2), PQgetvalue(r, i, 2));
    xsnprintf(cp->kid, sizeof cp->kid, "%.*s", PQgetlength(r, i, 3), PQgetvalue(r, i, 3));
    memcpy(cp->sig, PQgetvalue(r, i, 4), sizeof cp->sig);
    return true;
}

struct now_arg {
    struct au_checkpoint cp;
    bool make; /* false: only read the latest */
    bool have, made, no_key;
    uint64_t log_size; /* the log's size the transaction saw */
};

/* What the last round saw, for /metrics: the latest checkpoint's size and
 * time (unix seconds; 0: none yet) and the log's size. */
static atomic_ullong m_cp_size, m_cp_time, m_log_size;

static void note_round(const struct now_arg *a)
{
    if (a->have) {
        struct tm tm = {0};
        if (strptime(a->cp.time, "%Y-%m-%dT%H:%M:%S", &tm))
            atomic_store(&m_cp_time, (unsigned long long)timegm(&tm));
        atomic_store(&m_cp_size, a->cp.tree_size);
    }
    atomic_store(&m_log_size, a->log_size);
}

void au_checkpoint_metrics(struct strbuf *out)
{
    unsigned long long t = atomic_load(&m_cp_time), size = atomic_load(&m_cp_size),
                       log = atomic_load(&m_log_size);
    long long age = t ? (long long)time(NULL) - (long long)t : -1;
    strbuf_addf(out,
                "# HELP renkei_audit_checkpoint_age_seconds Seconds since the latest signed "
                "checkpoint (-1: none yet), as this process's checkpointer last read it.\n"
                "# TYPE renkei_audit_checkpoint_age_seconds gauge\n"
                "renkei_audit_checkpoint_age_seconds %lld\n"
                "# HELP renkei_audit_entries_uncheckpointed Entries of the log not yet under a "
                "signed checkpoint.\n"
                "# TYPE renkei_audit_entries_uncheckpointed gauge\n"
                "renkei_audit_entries_uncheckpointed %llu\n",
                age, log > size ? log - size : 0ULL);
}

static enum core_db_rc now_tx(struct core_db_conn *c, void *p)
{
    struct now_arg *a = p;
    a->have = a->made = a->no_key = false;
    PGresult *r = core_db_execp(c, &au_checkpoint_latest_stmt, 0, NULL, NULL, NULL, 1);
    if (!r)
        return CORE_DB_ERROR;
    a->have = PQntuples(r) == 1 && au_checkpoint_row(r, 0, &a->cp);
    PQclear(r);
    struct au_frontier f;
    if (!au_head_read(c, false, &f, NULL))
        return CORE_DB_ERROR;
    a->log_size = f.size;
    if (!a->make || f.size == 0 || (a->have && a->cp.tree_size >= f.size))
        return CORE_DB_OK;
    struct au_checkpoint cp = {.tree_size = f.size};
    au_frontier_root(&f, cp.root);
    au_time_now(cp.time);
    if (!sign(&cp)) {
        a->no_key = true;
        return CORE_DB_ROLLBACK;
    }
    char size[32];
    xsnprintf(size, sizeof size, "%llu", (unsigned long long)cp.tree_size);
    const char *v[] = {size, (const char *)cp.root, cp.time, cp.kid, (const char *)cp.sig};
    int lengths[] = {0, AU_HASH, 0, 0, (int)sizeof cp.sig};
    int formats[] = {0, 1, 0, 0, 1};
    r = core_db_execp(c, &au_checkpoint_insert_stmt, 5, v, lengths, formats, 0);
    if (!r)
        return CORE_DB_ERROR;
    /* another node may have signed this size first: then its one stands */
    bool inserted = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (inserted) {
        a->cp = cp;
        a->have = a->made = true;
    }
    return CORE_DB_OK;
}

bool au_checkpoint_now(struct au_checkpoint *out, bool *made)
{
    struct now_arg a = {.make = true};
    struct core_db_err err;
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, now_tx, &a, &err);
    if (rc == CORE_DB_ROLLBACK && a.no_key && au_keys_load())
        rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, now_tx, &a, &err);
    if (rc == CORE_DB_OK && !a.made) {
        /* nothing new, or lost a race: read the latest */
        a.make = false;
        rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, now_tx, &a, &err);
    }
    if (rc != CORE_DB_OK) {
        if (rc != CORE_DB_ROLLBACK)
            core_warn("no audit checkpoint made: %s", err.message);
        return false;
    }
    note_round(&a);
    if (made)
        *made = a.made;
    if (out) {
        if (!a.have)
            return false;
        *out = a.cp;
    }
    return true;
}

/* ---- the checkpointer: one tick a second ---- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool running, stopping;
    pthread_t thread;
} cpt = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *checkpointer_main(void *unused)
{
    (void)unused;
    /* The first round waits a second too: the keys come with the other
     * loads (core_reload), and a start has enough connections to open. */
    bool keys = false, taken = false;
    pthread_mutex_lock(&cpt.mu);
    while (!cpt.stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&cpt.cv, &cpt.mu, &ts);
        if (cpt.stopping)
            break;
        pthread_mutex_unlock(&cpt.mu);
        if (!keys)
            keys = au_keys_loaded() || au_keys_load();
        if (!taken)
            taken = au_takeover();
        if (keys)
            au_checkpoint_now(NULL, NULL);
        pthread_mutex_lock(&cpt.mu);
    }
    pthread_mutex_unlock(&cpt.mu);
    return NULL;
}

void au_checkpointer_start(void)
{
    pthread_mutex_lock(&cpt.mu);
    if (!cpt.running) {
        cpt.stopping = false;
        if (pthread_create(&cpt.thread, NULL, checkpointer_main, NULL) != 0) {
            core_log_bug("cannot start the audit checkpointer thread");
            abort();
        }
        cpt.running = true;
    }
    pthread_mutex_unlock(&cpt.mu);
}

void au_checkpointer_stop(void)
{
    pthread_mutex_lock(&cpt.mu);
    if (!cpt.running) {
        pthread_mutex_unlock(&cpt.mu);
        return;
    }
    cpt.stopping = true;
    pthread_cond_signal(&cpt.cv);
    pthread_mutex_unlock(&cpt.mu);
    pthread_join(cpt.thread, NULL);
    pthread_mutex_lock(&cpt.mu);
    cpt.running = false;
    pthread_mutex_unlock(&cpt.mu);
}

/* The public key of kid, from the loaded keys; a new reference or NULL. */
EVP_PKEY *au_key_public(const char *kid)
{
    EVP_PKEY *k = NULL;
    pthread_rwlock_rdlock(&ks.lock);
    for (size_t i = 0; i < ks.n; i++) {
        if (strcmp(ks.keys[i].kid, kid) == 0) {
            k = ks.keys[i].pkey;
            EVP_PKEY_up_ref(k);
            break;
        }
    }
    pthread_rwlock_unlock(&ks.lock);
    return k;
}
