/* The master secret's record in the database, the nodes' agreement on it,
 * and its rotation (see core/secret.h). */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/cli.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/db.h"
#include "core/db_listen.h"
#include "core/log.h"
#include "core/reload.h"
#include "core/secret.h"

#define ID_HEX 17 /* 8 bytes in hex and NUL */

static struct core_stmt secret_state_read_stmt =
    CORE_STMT("secret_state_read", "SELECT encode(master_id, 'hex'), generation FROM secret_state");
static struct core_stmt secret_state_insert_stmt = CORE_STMT(
    "secret_state_insert", "INSERT INTO secret_state (master_id) VALUES (decode($1, 'hex')) "
                           "ON CONFLICT DO NOTHING");
static struct core_stmt secret_state_lock_stmt =
    CORE_STMT("secret_state_lock", "SELECT encode(master_id, 'hex'), generation FROM "
                                   "secret_state FOR UPDATE");
static struct core_stmt secret_state_advance_stmt =
    CORE_STMT("secret_state_advance",
              "UPDATE secret_state SET master_id = decode($1, 'hex'), generation = generation + 1, "
              "changed_at = now() RETURNING generation");

static void id_hex(const unsigned char id[8], char out[ID_HEX])
{
    core_hex(id, 8, out);
}

static char *new_path(void)
{
    return xasprintf("%s.new", core_cfg.secret_file);
}

/* Whether RENKEI_SECRET_FILE holds the master want names. */
static bool file_holds(const char *want)
{
    struct core_secret s;
    char *err = NULL;
    if (!core_secret_read(core_cfg.secret_file, false, &s, &err)) {
        free(err);
        return false;
    }
    char hex[ID_HEX];
    id_hex(s.id, hex);
    core_secret_free(&s);
    return strcmp(hex, want) == 0;
}

/* Renames RENKEI_SECRET_FILE.new over RENKEI_SECRET_FILE, durably, when it
 * holds the master want names (never another rotation's). A hub on this
 * machine may have done it first (it follows the rotation's NOTIFY): then
 * the file already holds want. */
static int lock_fd(void);

static bool promote_new_file(const char *want, bool locked, char *err, size_t errlen)
{
    /* a hub takes the rotation's lock for it, or leaves the move to the
     * rotation running on this machine (it would move the right file) */
    int lfd = -1;
    if (!locked) {
        lfd = lock_fd();
        if (lfd < 0) {
            xsnprintf(err, errlen, "a rotation on this machine holds its lock: it moves the file");
            return false;
        }
    }
    char *from = new_path();
    char *copy = xstrdup(core_cfg.secret_file);
    struct core_secret s;
    char *rerr = NULL;
    bool ok = false;
    struct stat st;
    if (lstat(from, &st) != 0 && errno == ENOENT) {
        ok = file_holds(want);
        if (!ok)
            xsnprintf(err, errlen, "%s is gone, and %s does not hold master secret %s", from,
                      core_cfg.secret_file, want);
        goto done;
    }
    if (!core_secret_read(from, false, &s, &rerr)) {
        xsnprintf(err, errlen, "%s", rerr);
        free(rerr);
        goto done;
    }
    char hex[ID_HEX];
    id_hex(s.id, hex);
    core_secret_free(&s);
    if (strcmp(hex, want) != 0) {
        xsnprintf(err, errlen, "%s holds master secret %s, not %s: left alone", from, hex, want);
        goto done;
    }
    ok = rename(from, core_cfg.secret_file) == 0;
    int e = errno;
    if (ok) {
        int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            (void)fsync(fd);
            close(fd);
        }
    } else if (e == ENOENT && file_holds(want)) {
        ok = true;
    } else {
        xsnprintf(err, errlen, "cannot rename %s to %s: %s", from, core_cfg.secret_file,
                  strerror(e));
    }
done:
    if (lfd >= 0)
        close(lfd);
    free(copy);
    free(from);
    return ok;
}

/* ---- a node agrees with the database ---- */

/* The columns of sealed values (from the app), for the first record. */
static const struct core_sealed_col *sealed_cols;
static size_t nsealed_cols;

struct state_arg {
    char id[ID_HEX];
    long generation;
    char why[400]; /* the first record refused */
};

/* Before a node records its master as the database's: every value there
 * must be sealed under it (a node given the wrong file must not claim a
 * database others have sealed). */
static enum core_db_rc check_first_record(struct core_db_conn *c, struct state_arg *a,
                                          const char *mine)
{
    for (size_t i = 0; i < nsealed_cols; i++) {
        const struct core_sealed_col *col = &sealed_cols[i];
        char *sql = xasprintf("SELECT %s, %s FROM %s WHERE %s IS NOT NULL LIMIT 1", col->id_col,
                              col->sealed_col, col->table, col->sealed_col);
        PGresult *r = core_db_exec_sql(c, sql, 0, NULL);
        free(sql);
        if (!r)
            return CORE_DB_ERROR;
        bool ok = true;
        if (PQntuples(r) == 1) {
            const char *id = PQgetvalue(r, 0, 0);
            size_t len = 0, plen = 0;
            unsigned char *sealed = PQunescapeBytea((unsigned char *)PQgetvalue(r, 0, 1), &len);
            unsigned char *plain = NULL;
            ok = sealed && core_open(col->label, id, strlen(id), sealed, len, &plain, &plen);
            if (ok) {
                OPENSSL_cleanse(plain, plen);
                free(plain);
            } else {
                unsigned char by[8];
                char hex[ID_HEX] = "(first form)";
                if (sealed && core_sealed_by(sealed, len, by))
                    id_hex(by, hex);
                xsnprintf(a->why, sizeof a->why,
                          "%s.%s of %s does not open under RENKEI_SECRET_FILE's master secret %s "
                          "(it is sealed under %s): this is not this database's secret file",
                          col->table, col->sealed_col, id, mine, hex);
            }
            PQfreemem(sealed);
        }
        PQclear(r);
        if (!ok)
            return CORE_DB_ROLLBACK;
    }
    return CORE_DB_OK;
}

static enum core_db_rc state_tx(struct core_db_conn *c, void *p)
{
    struct state_arg *a = p;
    a->id[0] = a->why[0] = '\0';
    PGresult *r = core_db_exec(c, &secret_state_read_stmt, 0, NULL);
    if (!r)
        return CORE_DB_ERROR;
    if (PQntuples(r) == 0) {
        /* the first to meet this database: record the master in use */
        PQclear(r);
        unsigned char id[8];
        core_secret_id(id);
        char hex[ID_HEX];
        id_hex(id, hex);
        enum core_db_rc rc = check_first_record(c, a, hex);
        if (rc != CORE_DB_OK)
            return rc;
        const char *v[] = {hex};
        r = core_db_exec(c, &secret_state_insert_stmt, 1, v);
        if (!r)
            return CORE_DB_ERROR;
        PQclear(r);
        r = core_db_exec(c, &secret_state_read_stmt, 0, NULL);
        if (!r)
            return CORE_DB_ERROR;
    }
    if (PQntuples(r) == 1) {
        xsnprintf(a->id, sizeof a->id, "%s", PQgetvalue(r, 0, 0));
        long g;
        a->generation = core_parse_long(PQgetvalue(r, 0, 1), 0, 1L << 30, &g) ? g : 0;
    }
    PQclear(r);
    return CORE_DB_OK;
}

/* Reads path for the master whose id is want; true (and in use) when it is
 * there. */
static bool adopt_from(const char *path, const char *want, bool *other_root)
{
    struct core_secret s;
    char *err = NULL;
    if (!core_secret_read(path, false, &s, &err)) {
        free(err);
        return false;
    }
    char hex[ID_HEX];
    id_hex(s.id, hex);
    bool ok = strcmp(hex, want) == 0;
    if (ok && !core_secret_use(&s)) {
        *other_root = true;
        ok = false;
    }
    core_secret_free(&s);
    return ok;
}

/* Adoptions come from two threads (the listener's NOTIFY, the reload's
 * read): one at a time, and never back to an older generation than one
 * already taken (a read made just before a rotation's commit). */
static pthread_mutex_t adopt_mu = PTHREAD_MUTEX_INITIALIZER;
static long adopted_generation = -1;
static unsigned long notified; /* adoptions the listener began; under adopt_mu */
static struct core_reload *secret_reload;

/* Takes the master want (of generation gen) names from the secret file, or
 * from the file a rotation prepared beside it (then moved into place).
 * Readiness follows: blocked, naming both masters, while this node holds
 * another. */
static bool adopt_locked(const char *want, long gen, char *why, size_t why_len);

/* From the listener: a rotation's NOTIFY, in commit order. */
static bool adopt_notified(const char *want, long gen, char *why, size_t why_len)
{
    pthread_mutex_lock(&adopt_mu);
    notified++;
    bool ok = gen < adopted_generation || adopt_locked(want, gen, why, why_len);
    pthread_mutex_unlock(&adopt_mu);
    return ok;
}

/* From the reload thread: the record as read at mark (the count of
 * notified adoptions then). A NOTIFY taken since came after that read: the
 * read is stale, and decides nothing (the listener asked for a new one). */
static bool adopt_read(const char *want, long gen, unsigned long mark, char *why, size_t why_len)
{
    pthread_mutex_lock(&adopt_mu);
    bool ok = notified != mark || adopt_locked(want, gen, why, why_len);
    pthread_mutex_unlock(&adopt_mu);
    return ok;
}

static unsigned long notified_now(void)
{
    pthread_mutex_lock(&adopt_mu);
    unsigned long n = notified;
    pthread_mutex_unlock(&adopt_mu);
    return n;
}

/* Under adopt_mu: the record names want (generation gen), authoritatively. */
static bool adopt_locked(const char *want, long gen, char *why, size_t why_len)
{
    bool ok = false;
    char mine[ID_HEX];
    unsigned char id[8];
    core_secret_id(id);
    id_hex(id, mine);
    if (strcmp(mine, want) == 0) {
        ok = true;
        goto done;
    }
    bool other_root = false;
    if (adopt_from(core_cfg.secret_file, want, &other_root)) {
        core_logf(CORE_LOG_INFO, "master secret %s taken from %s (rotated from %s)", want,
                  core_cfg.secret_file, mine);
        ok = true;
        goto done;
    }
    char *np = new_path();
    ok = !other_root && adopt_from(np, want, &other_root);
    if (ok) {
        char err[300];
        if (promote_new_file(want, false, err, sizeof err))
            core_logf(CORE_LOG_INFO, "master secret %s taken from %s, now moved to %s", want, np,
                      core_cfg.secret_file);
        else
            core_logf(CORE_LOG_WARN, "master secret %s taken from %s, but %s", want, np, err);
    } else if (other_root) {
        xsnprintf(why, why_len,
                  "the master secret %s found for this database belongs to another installation "
                  "(its root differs from RENKEI_SECRET_FILE's)",
                  want);
    } else {
        xsnprintf(why, why_len,
                  "the database's values are sealed under master secret %s, and "
                  "RENKEI_SECRET_FILE (%s) holds %s: copy the rotated secret file here from the "
                  "node where `renkei secret rotate` ran",
                  want, core_cfg.secret_file, mine);
    }
    free(np);
done:
    if (ok) {
        adopted_generation = gen;
        core_reload_block(secret_reload, NULL);
    } else {
        core_reload_block(secret_reload, why);
    }
    return ok;
}

static bool secret_load(void)
{
    struct state_arg a = {{0}, 0, {0}};
    struct core_db_err err;
    core_reload_mark();
    unsigned long mark = notified_now();
    enum core_db_rc rc = core_db_tx_racing(CORE_DB_PLATFORM, CORE_TX_WRITE, state_tx, &a, &err);
    if (rc == CORE_DB_ROLLBACK) {
        core_logf(CORE_LOG_ERROR, "%s", a.why);
        core_reload_block(secret_reload, a.why);
        return false;
    }
    if (rc != CORE_DB_OK) {
        core_logf(CORE_LOG_WARN, "the master secret's record not read: %s", err.message);
        return false;
    }
    char why[400];
    if (!a.id[0] || !adopt_read(a.id, a.generation, mark, why, sizeof why)) {
        core_logf(CORE_LOG_ERROR, "%s", a.id[0] ? why : "no master secret record");
        return false;
    }
    return true;
}

/* On the listener's thread, before the notifications that follow in the
 * same commit (re-sealed keys, upstreams): those open under the new master.
 * The payload: the new master's id and its generation. */
static void on_secret(const char *payload, void *arg)
{
    (void)arg;
    char want[ID_HEX], why[400];
    long gen = -1;
    const char *sp = strchr(payload, ' ');
    if (!sp || (size_t)(sp - payload) != ID_HEX - 1 ||
        !core_parse_long(sp + 1, 0, 1L << 30, &gen)) {
        core_reload_request(secret_reload);
        return;
    }
    memcpy(want, payload, ID_HEX - 1);
    want[ID_HEX - 1] = '\0';
    if (!adopt_notified(want, gen, why, sizeof why)) {
        core_logf(CORE_LOG_ERROR, "%s", why);
        core_reload_request(secret_reload);
    }
}

static void on_secret_reset(void *arg)
{
    (void)arg;
    core_reload_request(secret_reload);
}

void core_secret_start(const struct core_app *app)
{
    sealed_cols = app->sealed;
    nsealed_cols = app->nsealed;
    core_db_listen("renkei_secret", on_secret, on_secret_reset, NULL);
    secret_reload = core_reload_add("the master secret", secret_load);
    core_reload_gate(secret_reload);
}

/* ---- rotation ---- */

struct rotate_arg {
    const struct core_app *app;
    const struct core_secret *next;
    char cur[ID_HEX], next_id[ID_HEX];
    const char *actor;
    bool finished_before; /* the record names next already */
    long generation;
    json_t *counts;
    char why[400];
};

static char *bytea_hex(const unsigned char *b, size_t len)
{
    char *s = xmalloc(2 * len + 3);
    s[0] = '\\';
    s[1] = 'x';
    core_hex(b, len, s + 2);
    return s;
}

/* Re-seals every value of one column under the next master; false with
 * a->why when one does not open, CORE_DB_ERROR kept apart by *db_failed. */
static bool reseal_column(struct core_db_conn *c, struct rotate_arg *a,
                          const struct core_sealed_col *col, bool *db_failed)
{
    char *sel = xasprintf("SELECT %s, %s FROM %s WHERE %s IS NOT NULL ORDER BY 1 FOR UPDATE",
                          col->id_col, col->sealed_col, col->table, col->sealed_col);
    char *upd = xasprintf("UPDATE %s SET %s = $2::bytea WHERE %s = $1", col->table, col->sealed_col,
                          col->id_col);
    PGresult *r = core_db_exec_sql(c, sel, 0, NULL);
    bool ok = r != NULL;
    *db_failed = !ok;
    int n = ok ? PQntuples(r) : 0;
    for (int i = 0; i < n && ok; i++) {
        const char *id = PQgetvalue(r, i, 0);
        size_t sealed_len = 0, plain_len = 0;
        unsigned char *sealed = PQunescapeBytea((unsigned char *)PQgetvalue(r, i, 1), &sealed_len);
        unsigned char *plain = NULL;
        if (!sealed ||
            !core_open(col->label, id, strlen(id), sealed, sealed_len, &plain, &plain_len)) {
            xsnprintf(a->why, sizeof a->why,
                      "%s.%s of %s does not open under master secret %s: nothing was changed",
                      col->table, col->sealed_col, id, a->cur);
            ok = false;
        } else {
            unsigned char *again;
            size_t again_len;
            core_seal_under(a->next, col->label, id, strlen(id), plain, plain_len, &again,
                            &again_len);
            char *hex = bytea_hex(again, again_len);
            const char *v[] = {id, hex};
            PGresult *u = core_db_exec_sql(c, upd, 2, v);
            ok = u != NULL;
            *db_failed = !ok;
            PQclear(u);
            free(hex);
            free(again);
            OPENSSL_cleanse(plain, plain_len);
            free(plain);
        }
        PQfreemem(sealed);
    }
    if (ok)
        json_object_set_new(a->counts, col->table, json_integer(n));
    PQclear(r);
    free(sel);
    free(upd);
    return ok;
}

static enum core_db_rc rotate_tx(struct core_db_conn *c, void *p)
{
    struct rotate_arg *a = p;
    json_object_clear(a->counts);
    a->finished_before = false;
    a->why[0] = '\0';
    const char *v[] = {a->cur};
    PGresult *r = core_db_exec(c, &secret_state_insert_stmt, 1, v);
    if (!r)
        return CORE_DB_ERROR;
    PQclear(r);
    r = core_db_exec(c, &secret_state_lock_stmt, 0, NULL);
    if (!r)
        return CORE_DB_ERROR;
    char recorded[ID_HEX] = "";
    if (PQntuples(r) == 1)
        xsnprintf(recorded, sizeof recorded, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (strcmp(recorded, a->next_id) == 0) {
        a->finished_before = true;
        return CORE_DB_ROLLBACK;
    }
    if (strcmp(recorded, a->cur) != 0) {
        xsnprintf(a->why, sizeof a->why,
                  "the database's values are sealed under master secret %s, not under "
                  "RENKEI_SECRET_FILE's %s: nothing was changed",
                  recorded, a->cur);
        return CORE_DB_ROLLBACK;
    }
    /* the record first: its notification reaches the nodes before the
     * re-sealed rows' */
    const char *nv[] = {a->next_id};
    r = core_db_exec(c, &secret_state_advance_stmt, 1, nv);
    if (!r)
        return CORE_DB_ERROR;
    long g;
    a->generation = core_parse_long(PQgetvalue(r, 0, 0), 0, 1L << 30, &g) ? g : 0;
    PQclear(r);
    for (size_t i = 0; i < a->app->nsealed; i++) {
        bool db_failed = false;
        if (!reseal_column(c, a, &a->app->sealed[i], &db_failed))
            return db_failed ? CORE_DB_ERROR : CORE_DB_ROLLBACK;
    }
    json_t *d = json_pack("{s:i, s:s, s:s, s:O}", "generation", (int)a->generation, "master",
                          a->next_id, "previous", a->cur, "resealed", a->counts);
    bool ok = a->app->record_event(c, "secret.rotate", NULL, a->actor, d);
    json_decref(d);
    return ok ? CORE_DB_OK : CORE_DB_ERROR;
}

/* The next master: the one a --prepare (or an interrupted rotation) left
 * beside the file, or a new one written there now, so that the commit
 * never precedes the file that can open what it sealed. */
static bool next_secret(const struct core_secret *cur, bool prepared_only, struct core_secret *next)
{
    char *np = new_path();
    char *err = NULL;
    bool ok = false;
    struct stat st;
    if (lstat(np, &st) == 0) {
        if (!core_secret_read(np, false, next, &err)) {
            fprintf(stderr, "renkei: secret: %s\n", err);
        } else if (next->root_len != cur->root_len ||
                   CRYPTO_memcmp(next->root, cur->root, cur->root_len) != 0) {
            fprintf(stderr,
                    "renkei: secret: %s belongs to another installation (its root differs from "
                    "RENKEI_SECRET_FILE's): remove it\n",
                    np);
            core_secret_free(next);
        } else if (prepared_only) {
            char hex[ID_HEX];
            id_hex(next->id, hex);
            printf("%s holds master secret %s already: copy it beside RENKEI_SECRET_FILE on "
                   "every other node, then run `renkei secret rotate`\n",
                   np, hex);
            core_secret_free(next);
            ok = true;
        } else {
            ok = true;
        }
    } else {
        core_secret_new(cur, next);
        if (!core_secret_write(np, next, &err)) {
            fprintf(stderr, "renkei: secret: %s\n", err);
            core_secret_free(next);
        } else {
            ok = true;
            if (prepared_only) {
                char hex[ID_HEX];
                id_hex(next->id, hex);
                printf("prepared master secret %s in %s: copy it beside RENKEI_SECRET_FILE on "
                       "every other node, then run `renkei secret rotate`\n",
                       hex, np);
                core_secret_free(next);
            }
        }
    }
    free(err);
    free(np);
    return ok;
}

/* The lock file beside the secret, taken (LOCK_EX, not waiting): its
 * descriptor, or -1 with errno (EWOULDBLOCK: someone holds it). */
static int lock_fd(void)
{
    char *path = xasprintf("%s.lock", core_cfg.secret_file);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    free(path);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        fd = -1;
    }
    return fd;
}

/* One rotation at a time on this machine, and no hub moving a prepared
 * file meanwhile: the lock is held until the process ends. (Rotations on
 * two machines meet in the database: the second finds the record names
 * another master.) */
static bool take_rotation_lock(void)
{
    int fd = lock_fd();
    if (fd < 0)
        fprintf(stderr, "renkei: secret: %s.lock: %s\n", core_cfg.secret_file,
                errno == EWOULDBLOCK ? "another `renkei secret rotate` is running"
                                     : strerror(errno));
    return fd >= 0; /* the descriptor stays open: the lock lasts as long as we do */
}

static int cmd_rotate(const struct core_app *app, bool prepare)
{
    struct core_secret cur, next;
    char *err = NULL;
    if (!core_secret_read(core_cfg.secret_file, false, &cur, &err)) {
        fprintf(stderr, "renkei: secret: %s\n", err);
        free(err);
        return 1;
    }
    if (!take_rotation_lock()) {
        core_secret_free(&cur);
        return 1;
    }
    int rc = 1;
    if (!next_secret(&cur, prepare, &next))
        goto done;
    if (prepare) {
        rc = 0;
        goto done;
    }
    struct rotate_arg a = {.app = app, .next = &next, .counts = json_object()};
    id_hex(cur.id, a.cur);
    id_hex(next.id, a.next_id);
    a.actor = core_cli_actor();
    struct core_db_err e;
    enum core_db_rc r = core_db_tx(CORE_DB_PLATFORM, CORE_TX_WRITE, rotate_tx, &a, &e);
    char perr[300];
    if (r == CORE_DB_ROLLBACK && a.finished_before) {
        if (!promote_new_file(a.next_id, true, perr, sizeof perr)) {
            fprintf(stderr, "renkei: secret: %s\n", perr);
        } else {
            printf("finished an interrupted rotation: master secret %s is in %s\n", a.next_id,
                   core_cfg.secret_file);
            rc = 0;
        }
    } else if (r == CORE_DB_UNAVAILABLE) {
        fprintf(stderr,
                "renkei: secret: the database was lost during the rotation (%s): whether it "
                "committed is unknown; %s.new is kept: run `renkei secret rotate` again, which "
                "finishes it or does it\n",
                e.message, core_cfg.secret_file);
    } else if (r != CORE_DB_OK) {
        fprintf(stderr,
                "renkei: secret: rotation failed: %s\n(%s.new is kept: the next `renkei secret "
                "rotate` uses it)\n",
                a.why[0] ? a.why : e.message, core_cfg.secret_file);
    } else if (!promote_new_file(a.next_id, true, perr, sizeof perr)) {
        fprintf(stderr,
                "renkei: secret: the database is re-sealed under master secret %s, but %s: move "
                "%s.new to %s by hand (or run `renkei secret rotate` again)\n",
                a.next_id, perr, core_cfg.secret_file, core_cfg.secret_file);
    } else {
        printf("rotated the master secret: generation %ld, master %s (was %s)\n", a.generation,
               a.next_id, a.cur);
        const char *table;
        json_t *n;
        json_object_foreach(a.counts, table, n)
        {
            printf("  re-sealed %lld value(s) of %s\n", (long long)json_integer_value(n), table);
        }
        rc = 0;
    }
    free((char *)a.actor);
    json_decref(a.counts);
done:
    core_secret_free(&cur);
    core_secret_free(&next);
    return rc;
}

/* ---- status ---- */

struct status_arg {
    const struct core_app *app;
    json_t *out;
};

static json_int_t count_of(const char *text)
{
    long v;
    return core_parse_long(text, 0, 1L << 40, &v) ? (json_int_t)v : -1;
}

static enum core_db_rc status_tx(struct core_db_conn *c, void *p)
{
    struct status_arg *a = p;
    json_object_clear(a->out);
    PGresult *r = core_db_exec_sql(
        c,
        "SELECT encode(master_id, 'hex'), generation, to_char(changed_at AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM secret_state",
        0, NULL);
    if (!r)
        return CORE_DB_ERROR;
    if (PQntuples(r) == 1)
        json_object_set_new(a->out, "database",
                            json_pack("{s:s, s:I, s:s}", "master", PQgetvalue(r, 0, 0),
                                      "generation", count_of(PQgetvalue(r, 0, 1)), "changed_at",
                                      PQgetvalue(r, 0, 2)));
    PQclear(r);
    json_t *sealed = json_object();
    json_object_set_new(a->out, "sealed", sealed);
    for (size_t i = 0; i < a->app->nsealed; i++) {
        const struct core_sealed_col *col = &a->app->sealed[i];
        /* the master each value names (version 2), or "v1" for the first form */
        char *sql = xasprintf("SELECT CASE WHEN get_byte(%s, 0) = 2 THEN encode(substring(%s "
                              "FROM 2 FOR 8), 'hex') ELSE 'v1' END AS m, count(*) FROM %s WHERE "
                              "%s IS NOT NULL AND length(%s) > 9 GROUP BY m ORDER BY m",
                              col->sealed_col, col->sealed_col, col->table, col->sealed_col,
                              col->sealed_col);
        r = core_db_exec_sql(c, sql, 0, NULL);
        free(sql);
        if (!r)
            return CORE_DB_ERROR;
        json_t *by = json_object();
        for (int j = 0; j < PQntuples(r); j++)
            json_object_set_new(by, PQgetvalue(r, j, 0),
                                json_integer(count_of(PQgetvalue(r, j, 1))));
        json_object_set_new(sealed, col->table, by);
        PQclear(r);
    }
    return CORE_DB_OK;
}

static int cmd_status(const struct core_app *app, bool json)
{
    unsigned char id[8];
    core_secret_id(id);
    char mine[ID_HEX];
    id_hex(id, mine);
    struct status_arg a = {app, json_object()};
    struct core_db_err e;
    if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, status_tx, &a, &e) != CORE_DB_OK) {
        fprintf(stderr, "renkei: secret: %s\n", e.message);
        json_decref(a.out);
        return 1;
    }
    char *np = new_path();
    struct stat st;
    json_object_set_new(a.out, "file",
                        json_pack("{s:s, s:s}", "path", core_cfg.secret_file, "master", mine));
    if (lstat(np, &st) == 0)
        json_object_set_new(a.out, "prepared", json_string(np));
    json_t *db = json_object_get(a.out, "database");
    const char *dbm = json_string_value(json_object_get(db, "master"));
    bool agree = !dbm || strcmp(dbm, mine) == 0;
    json_object_set_new(a.out, "agree", json_boolean(agree));
    if (json) {
        core_cli_print_json(a.out);
    } else {
        printf("RENKEI_SECRET_FILE  %s  master %s\n", core_cfg.secret_file, mine);
        if (db)
            printf("database            master %s  generation %lld  since %s\n", dbm,
                   (long long)json_integer_value(json_object_get(db, "generation")),
                   json_string_value(json_object_get(db, "changed_at")));
        else
            printf("database            no record yet (the first hub to start writes it)\n");
        if (lstat(np, &st) == 0)
            printf("prepared            %s\n", np);
        const char *table;
        json_t *by;
        json_object_foreach(json_object_get(a.out, "sealed"), table, by)
        {
            const char *m;
            json_t *n;
            json_object_foreach(by, m, n)
            {
                printf("sealed              %-18s %lld under %s\n", table,
                       (long long)json_integer_value(n), strcmp(m, "v1") == 0 ? "(first form)" : m);
            }
        }
        if (!agree)
            printf("the file and the database disagree: this node cannot open the database's "
                   "values\n");
    }
    free(np);
    json_decref(a.out);
    return agree ? 0 : 1;
}

static int secret_usage(const struct core_app *app, const char *why)
{
    return core_cli_bad_usage(app, "secret", "secret: %s", why);
}

int core_cmd_secret(const struct core_app *app, int argc, char **argv)
{
    if (argc < 2)
        return secret_usage(app, "use secret rotate [--prepare] or secret status [--json]");
    bool rotate = strcmp(argv[1], "rotate") == 0, status = strcmp(argv[1], "status") == 0;
    bool prepare = false, json = false;
    for (int i = 2; i < argc; i++) {
        if (rotate && strcmp(argv[i], "--prepare") == 0 && !prepare)
            prepare = true;
        else if (status && strcmp(argv[i], "--json") == 0 && !json)
            json = true;
        else
            return secret_usage(app, "unexpected argument");
    }
    if (!rotate && !status)
        return secret_usage(app, "use secret rotate [--prepare] or secret status [--json]");
    /* the secret file must exist already: a rotation never creates the first */
    struct stat st;
    if (!core_cli_config(true, false))
        return 1;
    if (lstat(core_cfg.secret_file, &st) != 0) {
        fprintf(stderr, "renkei: secret: RENKEI_SECRET_FILE \"%s\": %s\n", core_cfg.secret_file,
                strerror(errno));
        core_cli_finish();
        return 1;
    }
    char *err = NULL;
    if (!core_secret_load(core_cfg.secret_file, &err)) {
        fprintf(stderr, "renkei: %s\n", err);
        free(err);
        core_cli_finish();
        return 1;
    }
    core_db_init(core_cfg.db, 1);
    int rc = rotate ? cmd_rotate(app, prepare) : cmd_status(app, json);
    core_cli_finish();
    return rc;
}
