/* The hub's signing keys, held in memory with their private halves parsed
 * once: signing and verifying never touch the database or parse a key.
 * Changes (a rotation on any node) arrive by NOTIFY renkei_keys. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/crypto.h>

#include "audit/au.h"
#include "authz/az.h"
#include "core/crypto.h"
#include "core/db.h"
#include "core/db_listen.h"
#include "core/log.h"
#include "core/reload.h"

struct key {
    char kid[65];
    enum core_alg alg;
    EVP_PKEY *pkey; /* private, or public only for another node's file key */
    json_t *jwk;    /* public, with kid, use, alg */
    bool active;
    bool signer;         /* this node signs its alg with it */
    bool grace;          /* what this node signed with, replaced: see signing_key */
    time_t retire_after; /* 0: active */
    time_t retiring_at;
};

/* A replaced key is published until retire_after: when the tokens it
 * signed before its replacement, of the longest lifetime then, have
 * expired, and GRACE_S more. A node that signed with it (given the
 * replaced file, or no file while another node switched to one) goes on
 * signing with it for GRACE_S - MARGIN_S after the switch, only tokens that
 * expire MARGIN_S before retire_after: so a rolling change of key files
 * does not stop a node the moment another one restarts with the new key. */
#define GRACE_S  300
#define MARGIN_S 30

static struct {
    pthread_rwlock_t lock;
    struct key *keys;
    size_t n;
} ks = {.lock = PTHREAD_RWLOCK_INITIALIZER};

/* The columns both loads read: kid, alg, private_sealed, state,
 * retire_after (epoch, 0 when active), stale (retiring past its time),
 * held, public_jwk, public_mac, retiring_at (epoch, 0 when active). */
#define KEY_COLUMNS                                                                                \
    "kid, alg, private_sealed, state, coalesce(extract(epoch FROM retire_after)::bigint, 0), "     \
    "state = 'retiring' AND retire_after <= now(), held, public_jwk, public_mac, "                 \
    "coalesce(extract(epoch FROM retiring_at)::bigint, 0)"

static struct core_stmt az_keys_expire_stmt = CORE_STMT(
    "az_keys_expire", "UPDATE signing_keys SET state = 'retired' WHERE state = 'retiring' AND "
                      "retire_after <= now()");
static struct core_stmt az_keys_load_stmt =
    CORE_STMT("az_keys_load", "SELECT " KEY_COLUMNS " FROM signing_keys "
                              "WHERE state = 'active' OR (state = 'retiring' AND retire_after > "
                              "now()) ORDER BY created_at");
static struct core_stmt az_keys_insert_stmt = CORE_STMT(
    "az_keys_insert", "INSERT INTO signing_keys (kid, alg, public_jwk, private_sealed, state) "
                      "VALUES ($1, $2, $3::jsonb, $4, 'active')");
static struct core_stmt az_keys_insert_file_stmt =
    CORE_STMT("az_keys_insert_file", "INSERT INTO signing_keys (kid, alg, public_jwk, "
                                     "private_sealed, state, held, public_mac) "
                                     "VALUES ($1, $2, $3::jsonb, NULL, 'active', 'file', $4)");
static struct core_stmt az_keys_state_stmt =
    CORE_STMT("az_keys_state", "SELECT state FROM signing_keys WHERE kid = $1");
static struct core_stmt az_keys_active_held_stmt = CORE_STMT(
    "az_keys_active_held", "SELECT held FROM signing_keys WHERE state = 'active' AND alg = $1");
/* published until the longest-lived token it may have signed has expired:
 * an access token of the longest lifetime, or an ID token (600 s,
 * az_oidc.c), and 300 s more */
static struct core_stmt az_keys_retire_stmt = CORE_STMT(
    "az_keys_retire",
    "UPDATE signing_keys SET state = 'retiring', retiring_at = now(), retire_after = now() + "
    "make_interval(secs => greatest((SELECT coalesce(max(token_ttl), 600) FROM clients), 600) + "
    "300) WHERE state = 'active' AND alg = $1 RETURNING kid");
static struct core_stmt az_keys_list_stmt =
    CORE_STMT("az_keys_list",
              "SELECT kid, alg, state, to_char(created_at AT TIME ZONE 'UTC', "
              "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), to_char(retire_after AT TIME ZONE 'UTC', "
              "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), held FROM signing_keys ORDER BY created_at");

static void keys_free(struct key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        EVP_PKEY_free(keys[i].pkey);
        json_decref(keys[i].jwk);
    }
    free(keys);
}

/* Creates, seals and inserts a new active key of alg; its kid is the RFC
 * 7638 thumbprint. False when the statement failed. */
static bool insert_new_key(struct core_db_conn *c, enum core_alg alg, char *kid_out, size_t kid_len)
{
    struct core_sealed_key k;
    core_sealed_key_new(alg, AZ_KEY_LABEL, "", &k);
    const char *v[] = {k.kid, core_alg_name(alg), k.jwk, (const char *)k.sealed};
    int lengths[] = {0, 0, 0, (int)k.sealed_len};
    int formats[] = {0, 0, 0, 1};
    PGresult *r = core_db_execp(c, &az_keys_insert_stmt, 4, v, lengths, formats, 0);
    if (r)
        PQclear(r);
    if (kid_out)
        xsnprintf(kid_out, kid_len, "%s", k.kid);
    core_sealed_key_release(&k);
    return r != NULL;
}

struct load_arg {
    struct key *keys;
    size_t n;
    bool signer[CORE_ALG__COUNT];      /* a key this node signs alg with */
    bool file_row[CORE_ALG__COUNT];    /* this node's file key is published */
    bool file_gone[CORE_ALG__COUNT];   /* ... and was retired: never again */
    bool other_file[CORE_ALG__COUNT];  /* the active key is another node's file key */
    time_t grace_end[CORE_ALG__COUNT]; /* this node's replaced file key signs until then */
    bool created;
    json_t *switched; /* file keys made active: {kid: [retiring kids]} */
};

static void load_clear(struct load_arg *a)
{
    keys_free(a->keys, a->n);
    json_t *sw = a->switched;
    memset(a, 0, sizeof *a);
    a->switched = sw;
    if (sw)
        json_object_clear(sw);
}

/* What makes a file key's row trustworthy without its private half: the
 * root's MAC of its kid and algorithm (core_file_row_mac), the kid being
 * the RFC 7638 thumbprint of its public key. A row someone wrote into the
 * database with a key of their own has none. */
static void file_key_mac(const char *kid, enum core_alg alg, unsigned char mac[32])
{
    char *msg = xasprintf("%s\n%s", kid, core_alg_name(alg));
    core_file_row_mac(AZ_FILE_KEY_LABEL, msg, mac);
    free(msg);
}

/* The public key of another node's file key, after its row's checks. */
static EVP_PKEY *file_row_key(PGresult *r, int i, const char *kid, enum core_alg alg)
{
    size_t mac_len = 0;
    unsigned char *mac = PQgetisnull(r, i, 8)
                             ? NULL
                             : PQunescapeBytea((unsigned char *)PQgetvalue(r, i, 8), &mac_len);
    char *msg = xasprintf("%s\n%s", kid, core_alg_name(alg));
    const char *why;
    EVP_PKEY *pub =
        core_file_row_key(PQgetvalue(r, i, 7), mac, mac_len, kid, alg == CORE_ES256 ? "EC" : "RSA",
                          AZ_FILE_KEY_LABEL, msg, &why);
    free(msg);
    PQfreemem(mac);
    if (!pub)
        core_logf(CORE_LOG_ERROR, "signing key %s held in a file is not trusted: %s", kid, why);
    return pub;
}

/* The key of one row: the private half opened from the database, this
 * node's file key, or the public half of another node's file key (to
 * verify its tokens). NULL when it cannot be opened or trusted. */
static EVP_PKEY *row_key(PGresult *r, int i, const char *kid, enum core_alg alg, bool *mine)
{
    const char *fkid = NULL;
    EVP_PKEY *fk = core_file_key(alg, &fkid, NULL);
    *mine = false;
    if (strcmp(PQgetvalue(r, i, 6), "file") == 0) {
        if (fk && strcmp(fkid, kid) == 0) {
            *mine = true;
            EVP_PKEY_up_ref(fk);
            return fk;
        }
        return file_row_key(r, i, kid, alg);
    }
    size_t sealed_len;
    unsigned char *sealed = PQunescapeBytea((unsigned char *)PQgetvalue(r, i, 2), &sealed_len);
    EVP_PKEY *k =
        sealed ? core_sealed_key_open(AZ_KEY_LABEL, "signing key", kid, sealed, sealed_len) : NULL;
    PQfreemem(sealed);
    return k;
}

/* Adds the keys of r's rows (KEY_COLUMNS) to a; true when a row is stale:
 * retiring past its time, so to be marked retired (a write) rather than
 * used. */
static bool add_rows(struct load_arg *a, PGresult *r)
{
    bool stale = false;
    int rows = PQntuples(r);
    a->keys = xcalloc((size_t)rows + 1, sizeof *a->keys);
    for (int i = 0; i < rows; i++) {
        if (PQgetvalue(r, i, 5)[0] == 't') {
            stale = true;
            continue;
        }
        struct key *k = &a->keys[a->n];
        xsnprintf(k->kid, sizeof k->kid, "%s", PQgetvalue(r, i, 0));
        if (!core_alg_parse(PQgetvalue(r, i, 1), &k->alg))
            continue;
        bool mine;
        k->pkey = row_key(r, i, k->kid, k->alg, &mine);
        if (!k->pkey)
            continue;
        bool file = strcmp(PQgetvalue(r, i, 6), "file") == 0;
        k->active = strcmp(PQgetvalue(r, i, 3), "active") == 0;
        /* with a file key for its algorithm, a node signs with that alone;
         * it signs with the active key (a retiring one only within the
         * grace of signing_key) */
        k->signer = k->active && (mine || (!file && !core_file_key(k->alg, NULL, NULL)));
        long v;
        k->retire_after = core_parse_long(PQgetvalue(r, i, 4), 0, 1L << 40, &v) ? (time_t)v : 0;
        k->retiring_at = core_parse_long(PQgetvalue(r, i, 9), 0, 1L << 40, &v) ? (time_t)v : 0;
        /* the key this node signed with until another node's file key
         * replaced it: its own file key, or a database key when it has none */
        k->grace = !k->active && (mine || (!file && !core_file_key(k->alg, NULL, NULL)));
        k->jwk = core_jwk_public(k->pkey);
        json_object_set_new(k->jwk, "kid", json_string(k->kid));
        json_object_set_new(k->jwk, "use", json_string("sig"));
        json_object_set_new(k->jwk, "alg", json_string(core_alg_name(k->alg)));
        if (k->signer)
            a->signer[k->alg] = true;
        if (mine)
            a->file_row[k->alg] = true;
        if (file && !mine && k->active)
            a->other_file[k->alg] = true;
        a->n++;
    }
    /* a database key's grace is for a switch to another node's file key
     * only, and then for the one it replaced (the latest to retire) */
    for (size_t i = 0; i < a->n; i++) {
        struct key *k = &a->keys[i];
        if (!k->grace)
            continue;
        bool latest = true;
        for (size_t j = 0; j < a->n; j++)
            if (j != i && a->keys[j].grace && a->keys[j].alg == k->alg &&
                a->keys[j].retiring_at > k->retiring_at)
                latest = false;
        bool from_file = core_file_key(k->alg, NULL, NULL) != NULL;
        k->grace = latest && (from_file || a->other_file[k->alg]);
        if (k->grace)
            a->grace_end[k->alg] = k->retiring_at + GRACE_S - MARGIN_S;
    }
    return stale;
}

/* True when the set read needs a write: a key to create or to switch to. */
static bool needs_write(const struct load_arg *a)
{
    for (int alg = 0; alg < CORE_ALG__COUNT; alg++) {
        if (core_file_key((enum core_alg)alg, NULL, NULL) ? !a->file_row[alg]
                                                          : !a->signer[alg] && !a->other_file[alg])
            return true;
    }
    return false;
}

/* This node's file key of alg becomes the active key; the active one
 * retires (published until the tokens it signed have expired). */
static enum core_db_rc switch_to_file_key(struct core_db_conn *c, struct load_arg *a,
                                          enum core_alg alg)
{
    const char *kid, *path;
    EVP_PKEY *fk = core_file_key(alg, &kid, &path);
    const char *v[] = {kid};
    PGresult *r = core_db_exec(c, &az_keys_state_stmt, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    if (PQntuples(r) > 0) {
        a->file_gone[alg] = true; /* replaced, and retired: it never comes back */
        PQclear(r);
        return CORE_DB_OK;
    }
    PQclear(r);
    const char *av[] = {core_alg_name(alg)};
    r = core_db_exec(c, &az_keys_retire_stmt, 1, av);
    if (!r)
        return CORE_DB_ERROR;
    json_t *retiring = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(retiring, json_string(PQgetvalue(r, i, 0)));
    PQclear(r);
    json_t *jwk = core_jwk_public(fk);
    char *text = json_dumps(jwk, JSON_COMPACT);
    unsigned char mac[32];
    file_key_mac(kid, alg, mac);
    const char *iv[] = {kid, core_alg_name(alg), text, (const char *)mac};
    int lengths[] = {0, 0, 0, (int)sizeof mac};
    int formats[] = {0, 0, 0, 1};
    r = core_db_execp(c, &az_keys_insert_file_stmt, 4, iv, lengths, formats, 0);
    free(text);
    json_decref(jwk);
    if (!r) {
        json_decref(retiring);
        return CORE_DB_ERROR;
    }
    PQclear(r);
    json_t *d =
        json_pack("{s:[s], s:o, s:s}", "created", kid, "retiring", retiring, "held", "file");
    bool ok = au_event_record(c, "key.rotate", NULL, "hub:signing-key-file", d);
    json_object_set_new(a->switched, kid, json_incref(json_object_get(d, "retiring")));
    json_decref(d);
    a->created = true;
    return ok ? CORE_DB_OK : CORE_DB_ERROR;
}

static enum core_db_rc load_once(struct core_db_conn *c, void *p)
{
    struct load_arg *a = p;
    load_clear(a);
    PGresult *r = core_db_exec(c, &az_keys_expire_stmt, 0, NULL);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    r = core_db_execp(c, &az_keys_load_stmt, 0, NULL, NULL, NULL, 0);
    if (!r)
        return CORE_DB_ERROR;
    add_rows(a, r);
    PQclear(r);
    for (int alg = 0; alg < CORE_ALG__COUNT; alg++) {
        if (core_file_key((enum core_alg)alg, NULL, NULL)) {
            if (a->file_row[alg])
                continue;
            enum core_db_rc rc = switch_to_file_key(c, a, (enum core_alg)alg);
            if (rc != CORE_DB_OK)
                return rc;
        } else if (!a->signer[alg] && !a->other_file[alg]) {
            /* the first key of this algorithm */
            if (!insert_new_key(c, (enum core_alg)alg, NULL, 0))
                return CORE_DB_ERROR;
            a->created = true;
        }
    }
    return CORE_DB_OK;
}

/* Reads the keys; when one had to be created first, reads them again, in
 * the same transaction. */
static enum core_db_rc load_tx(struct core_db_conn *c, void *p)
{
    struct load_arg *a = p;
    core_reload_mark();
    enum core_db_rc rc = load_once(c, a);
    if (rc != CORE_DB_OK || !a->created)
        return rc;
    json_t *switched = json_deep_copy(a->switched);
    rc = load_once(c, a);
    json_object_update(a->switched, switched);
    json_decref(switched);
    a->created = true;
    return rc;
}

/* The usual load: one statement, read-only. False (a cleared) when the set
 * needs a write first: a key to mark retired, one to create or switch to. */
static bool load_read(struct load_arg *a)
{
    static const struct core_db_query q = {"SELECT " KEY_COLUMNS " FROM signing_keys "
                                           "WHERE state IN ('active', 'retiring') ORDER BY "
                                           "created_at",
                                           0, NULL};
    PGresult *r = NULL;
    struct core_db_err err;
    core_reload_mark();
    if (core_db_read(CORE_DB_PLATFORM, CORE_TX_READ, &q, 1, &r, &err) != CORE_DB_OK)
        return false;
    bool stale = add_rows(a, r);
    PQclear(r);
    if (stale || needs_write(a)) {
        load_clear(a);
        return false;
    }
    return true;
}

/* Why this node cannot sign some algorithm (NULL: it can sign every one):
 * what no load can mend, so the hub is not ready until someone acts. *from:
 * when that begins (0: now; later while a replaced file key still signs);
 * of several, the earliest. */
static const char *signing_gap(const struct load_arg *a, char *buf, size_t len, time_t *from)
{
    const char *gap = NULL;
    *from = 0;
    for (int alg = 0; alg < CORE_ALG__COUNT; alg++) {
        if (a->signer[alg] || (gap && a->grace_end[alg] >= *from))
            continue;
        *from = a->grace_end[alg];
        const char *name = core_alg_name((enum core_alg)alg), *kid = NULL, *path = NULL;
        if (core_file_key((enum core_alg)alg, &kid, &path))
            xsnprintf(buf, len,
                      "the %s key of RENKEI_SIGNING_KEY_FILE (%s, kid %s) was replaced by another "
                      "node's key file%s: give this node the current key file",
                      name, path, kid, a->file_gone[alg] ? " and is retired" : "");
        else if (a->other_file[alg])
            xsnprintf(buf, len,
                      "the active %s key is held in a file of another node: set "
                      "RENKEI_SIGNING_KEY_FILE here too",
                      name);
        else
            xsnprintf(buf, len, "no active %s key opens here (see the log)", name);
        gap = buf;
    }
    return gap;
}

bool az_keys_load(void)
{
    struct load_arg a = {.switched = json_object()};
    struct core_db_err err;
    if (!load_read(&a) &&
        core_db_tx_racing(CORE_DB_PLATFORM, CORE_TX_WRITE, load_tx, &a, &err) != CORE_DB_OK) {
        core_logf(CORE_LOG_WARN, "signing keys not loaded: %s", err.message);
        load_clear(&a);
        json_decref(a.switched);
        return false;
    }
    const char *kid;
    json_t *retiring;
    json_object_foreach(a.switched, kid, retiring)
    {
        char *list = json_dumps(retiring, JSON_COMPACT);
        core_logf(CORE_LOG_INFO,
                  "signing key %s of RENKEI_SIGNING_KEY_FILE is now active; %s retiring", kid,
                  list);
        free(list);
    }
    if (a.created && json_object_size(a.switched) == 0)
        core_info("created the first signing keys");
    json_decref(a.switched);
    /* the set is taken even so: tokens of the keys it holds still verify,
     * and a key this node may no longer sign with is no longer used */
    char buf[300];
    time_t from;
    const char *gap = signing_gap(&a, buf, sizeof buf, &from);
    if (gap && core_reload_current()) { /* serving (a command signs nothing) */
        if (from > time(NULL)) {
            char until[32] = "?";
            struct tm tm;
            if (gmtime_r(&from, &tm))
                strftime(until, sizeof until, "%Y-%m-%dT%H:%M:%SZ", &tm);
            core_logf(CORE_LOG_WARN,
                      "%s; until %s it still signs with the key it had tokens that expire while "
                      "that key is published, then it is not ready",
                      gap, until);
        } else
            core_logf(CORE_LOG_ERROR, "not ready: %s", gap);
    }
    core_reload_block_from(core_reload_current(), gap, from);
    pthread_rwlock_wrlock(&ks.lock);
    keys_free(ks.keys, ks.n);
    ks.keys = a.keys;
    ks.n = a.n;
    pthread_rwlock_unlock(&ks.lock);
    return true;
}

void az_keys_release(void)
{
    pthread_rwlock_wrlock(&ks.lock);
    keys_free(ks.keys, ks.n);
    ks.keys = NULL;
    ks.n = 0;
    pthread_rwlock_unlock(&ks.lock);
}

/* The key that signs claims with alg: the active one this node holds, or
 * else its replaced file key while the token expires MARGIN_S before that
 * key's publication ends (other nodes verify it all its life). */
static const struct key *signing_key(enum core_alg alg, json_t *claims)
{
    const struct key *fallback = NULL;
    json_int_t exp = json_integer_value(json_object_get(claims, "exp"));
    time_t now = time(NULL);
    for (size_t i = 0; i < ks.n; i++) {
        const struct key *k = &ks.keys[i];
        if (k->alg != alg)
            continue;
        if (k->signer)
            return k;
        /* within the grace after its replacement, and a token that dies
         * before the key leaves the JWKS (with the verifiers' leeway) */
        if (k->grace && now >= k->retiring_at && now < k->retiring_at + GRACE_S - MARGIN_S &&
            exp > 0 && (time_t)exp + MARGIN_S < k->retire_after &&
            (!fallback || k->retiring_at > fallback->retiring_at))
            fallback = k;
    }
    return fallback;
}

char *az_keys_sign(enum core_alg alg, const char *typ, json_t *claims)
{
    char *out = NULL;
    pthread_rwlock_rdlock(&ks.lock);
    const struct key *k = signing_key(alg, claims);
    if (k) {
        json_t *h =
            json_pack("{s:s, s:s, s:s}", "typ", typ, "alg", core_alg_name(alg), "kid", k->kid);
        out = core_jws_sign(k->pkey, alg, h, claims);
        json_decref(h);
    }
    pthread_rwlock_unlock(&ks.lock);
    return out;
}

bool az_keys_verify(const struct core_jws *j)
{
    const char *kid = json_string_value(json_object_get(j->header, "kid"));
    if (!kid)
        return false;
    bool ok = false;
    time_t now = time(NULL);
    pthread_rwlock_rdlock(&ks.lock);
    for (size_t i = 0; i < ks.n; i++) {
        struct key *k = &ks.keys[i];
        if (strcmp(k->kid, kid) == 0) {
            if (k->active || k->retire_after > now)
                ok = core_jws_verify(j, k->pkey, k->alg);
            break;
        }
    }
    pthread_rwlock_unlock(&ks.lock);
    return ok;
}

bool az_keys_usable(const char *kid)
{
    bool ok = false;
    time_t now = time(NULL);
    pthread_rwlock_rdlock(&ks.lock);
    for (size_t i = 0; i < ks.n && !ok; i++)
        ok = strcmp(ks.keys[i].kid, kid) == 0 &&
             (ks.keys[i].active || ks.keys[i].retire_after > now);
    pthread_rwlock_unlock(&ks.lock);
    return ok;
}

json_t *az_keys_jwks(void)
{
    json_t *keys = json_array();
    time_t now = time(NULL);
    pthread_rwlock_rdlock(&ks.lock);
    for (size_t i = 0; i < ks.n; i++) {
        if (ks.keys[i].active || ks.keys[i].retire_after > now)
            json_array_append(keys, ks.keys[i].jwk);
    }
    pthread_rwlock_unlock(&ks.lock);
    return json_pack("{s:o}", "keys", keys);
}

struct rotate_arg {
    const char *actor;
    json_t *retired;
    json_t *created;
    json_t *in_files;
};

static enum core_db_rc rotate_tx(struct core_db_conn *c, void *p)
{
    struct rotate_arg *a = p;
    json_array_clear(a->retired);
    json_array_clear(a->created);
    json_array_clear(a->in_files);
    for (int alg = 0; alg < CORE_ALG__COUNT; alg++) {
        const char *v[] = {core_alg_name((enum core_alg)alg)};
        /* a key held in a file is rotated by replacing the file */
        PGresult *r = core_db_exec(c, &az_keys_active_held_stmt, 1, v);
        if (!r)
            return CORE_DB_ERROR;
        bool in_file = PQntuples(r) > 0 && strcmp(PQgetvalue(r, 0, 0), "file") == 0;
        PQclear(r);
        if (in_file) {
            json_array_append_new(a->in_files, json_string(v[0]));
            continue;
        }
        r = core_db_exec(c, &az_keys_retire_stmt, 1, v);
        if (!r)
            return CORE_DB_ERROR;
        for (int i = 0; i < PQntuples(r); i++)
            json_array_append_new(a->retired, json_string(PQgetvalue(r, i, 0)));
        PQclear(r);
        char kid[65];
        if (!insert_new_key(c, (enum core_alg)alg, kid, sizeof kid))
            return CORE_DB_ERROR;
        json_array_append_new(a->created, json_string(kid));
    }
    if (json_array_size(a->created) == 0)
        return CORE_DB_ROLLBACK;
    json_t *d = json_pack("{s:O, s:O}", "created", a->created, "retiring", a->retired);
    bool ok = au_event_record(c, "key.rotate", NULL, a->actor, d);
    json_decref(d);
    return ok ? CORE_DB_OK : CORE_DB_ERROR;
}

bool az_keys_rotate(const char *actor, char *err, size_t errlen)
{
    struct rotate_arg a = {actor, json_array(), json_array(), json_array()};
    struct core_db_err e;
    /* READ COMMITTED: the audit event takes the log's head lock, which under
     * SERIALIZABLE fails whenever an append commits meanwhile. Two rotations
     * at once: the second finds no active key to retire, and its new one is
     * refused by the one-active-key index (an error, nothing half done). */
    enum core_db_rc rc = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, rotate_tx, &a, &e);
    bool ok = rc == CORE_DB_OK;
    if (rc == CORE_DB_ROLLBACK)
        xsnprintf(err, errlen,
                  "every active key is held in RENKEI_SIGNING_KEY_FILE: rotate it by replacing "
                  "the file");
    else if (!ok)
        xsnprintf(err, errlen, "%s", e.message[0] ? e.message : "database error");
    else if (json_array_size(a.in_files) > 0)
        for (size_t i = 0; i < json_array_size(a.in_files); i++)
            fprintf(stderr,
                    "renkei: keys: %s is held in RENKEI_SIGNING_KEY_FILE and was left alone: "
                    "rotate it by replacing the file\n",
                    json_string_value(json_array_get(a.in_files, i)));
    json_decref(a.retired);
    json_decref(a.created);
    json_decref(a.in_files);
    return ok;
}

struct list_arg {
    json_t *rows;
};

static enum core_db_rc list_tx(struct core_db_conn *c, void *p)
{
    struct list_arg *a = p;
    json_array_clear(a->rows);
    PGresult *r = core_db_exec(c, &az_keys_list_stmt, 0, NULL);
    if (!r)
        return CORE_DB_ERROR;
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(a->rows, json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s}", "kid",
                                                 PQgetvalue(r, i, 0), "alg", PQgetvalue(r, i, 1),
                                                 "state", PQgetvalue(r, i, 2), "created_at",
                                                 PQgetvalue(r, i, 3), "retire_after",
                                                 PQgetisnull(r, i, 4) ? NULL : PQgetvalue(r, i, 4),
                                                 "held", PQgetvalue(r, i, 5)));
    PQclear(r);
    return CORE_DB_OK;
}

json_t *az_keys_list(void)
{
    struct list_arg a = {json_array()};
    if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, list_tx, &a, NULL) != CORE_DB_OK) {
        json_decref(a.rows);
        return NULL;
    }
    return a.rows;
}
