/* renkei audit verify | export | verify-file | checkpoint | rotate-key */
#include <getopt.h>
#include <stdlib.h>
#include <unistd.h>

#include "audit/au_query.h"
#include "audit/au_verify.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/log.h"

static const char audit_usage[] =
    "audit verify [--jwks FILE] [--checkpoint FILE]... [--json]\n"
    "       renkei audit export [--format jsonl|csv] [--from SEQ] [--to SEQ] [--checkpoint FILE] "
    "[--jwks FILE]\n"
    "       renkei audit verify-file FILE --checkpoint FILE --jwks FILE [--json]\n"
    "       renkei audit checkpoint [--json]\n"
    "       renkei audit rotate-key [--json]";

static int usage(const char *why)
{
    fprintf(stderr, "renkei: audit: %s\nusage: renkei %s\n", why, audit_usage);
    return 2;
}

static bool setup(int pool)
{
    core_cli_audit_signs = true;
    if (!core_cli_config(true, true))
        return false;
    core_db_init(core_cfg.db, pool);
    return true;
}

static EVP_PKEY *hub_key(void *arg, const char *kid)
{
    (void)arg;
    return au_key_public(kid);
}

static json_t *load_json(const char *what, const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        fprintf(stderr, "renkei: audit: %s %s: %s\n", what, path, e.text);
    return j;
}

static bool tty;

static void progress(uint64_t done, uint64_t total)
{
    if (!tty || total == 0)
        return;
    int pct = (int)(done * 100 / total), bar = pct / 4;
    fprintf(stderr, "\r[%.*s%*s] %3d%% %llu/%llu entries", bar, "#########################",
            25 - bar, "", pct, (unsigned long long)done, (unsigned long long)total);
    if (done >= total)
        fputc('\n', stderr);
}

static int print_report(const struct au_report *r, bool json, const char *what)
{
    char root[45];
    au_hash_b64(r->root, root);
    if (json) {
        json_t *j = json_pack("{s:b, s:I, s:I, s:I, s:s, s:I}", "ok", r->ok, "entries",
                              (json_int_t)r->entries, "checkpoints", (json_int_t)r->checkpoints,
                              "tree_size", (json_int_t)r->tree_size, "root_hash", root, "uncovered",
                              (json_int_t)r->uncovered);
        json_object_set_new(j, "first_bad_seq",
                            r->first_bad >= 0 ? json_integer(r->first_bad) : json_null());
        /* set when the bad entry is known only to lie in first_bad_seq..this */
        json_object_set_new(j, "first_bad_last",
                            r->bad_last >= 0 ? json_integer(r->bad_last) : json_null());
        json_object_set_new(j, "problem", r->ok ? json_null() : json_string(r->problem));
        core_cli_print_json(j);
        json_decref(j);
    } else if (r->ok) {
        printf("%s: intact: %llu entries, %llu checkpoints verified, root %s\n", what,
               (unsigned long long)r->entries, (unsigned long long)r->checkpoints, root);
        if (r->uncovered)
            printf("%s: %llu newest entries are not covered by a checkpoint yet\n", what,
                   (unsigned long long)r->uncovered);
    } else {
        printf("%s: TAMPERED: %s\n", what, r->problem);
        if (r->first_bad >= 0 && r->bad_last >= 0)
            printf("%s: first bad entry: somewhere in %lld..%lld\n", what, (long long)r->first_bad,
                   (long long)r->bad_last);
        else if (r->first_bad >= 0)
            printf("%s: first bad entry: %lld\n", what, (long long)r->first_bad);
    }
    return r->ok ? 0 : 1;
}

#define HELD_MAX 64

static int cmd_verify(int argc, char **argv)
{
    bool json = false;
    const char *jwks_path = NULL;
    struct au_checkpoint held[HELD_MAX];
    size_t nheld = 0;
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"jwks", required_argument, NULL, 'k'},
                                         {"checkpoint", required_argument, NULL, 'c'},
                                         {0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j') {
            json = true;
        } else if (c == 'k') {
            jwks_path = optarg;
        } else if (c == 'c') {
            if (nheld == HELD_MAX)
                return usage("at most 64 --checkpoint files");
            json_t *cj = load_json("--checkpoint", optarg);
            const char *why = "";
            bool ok = cj && au_checkpoint_parse(cj, &held[nheld], &why);
            json_decref(cj);
            if (!ok) {
                if (*why)
                    fprintf(stderr, "renkei: audit: --checkpoint %s: %s\n", optarg, why);
                return 2;
            }
            nheld++;
        } else {
            return usage("unknown option to audit verify");
        }
    }
    if (optind != argc)
        return usage("audit verify takes no arguments");
    json_t *jwks = jwks_path ? load_json("--jwks", jwks_path) : NULL;
    if (jwks_path && !jwks)
        return 2;
    /* a connection per verifier thread, and one for the head */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (!setup(cores < 1 ? 2 : cores > 16 ? 17 : (int)cores + 1)) {
        json_decref(jwks);
        return 1;
    }
    int rc = 1;
    struct au_report r;
    tty = isatty(STDERR_FILENO) && !json;
    if (!jwks && !au_keys_load()) {
        fprintf(stderr, "renkei: audit: the checkpoint keys cannot be loaded\n");
    } else if (!au_verify_db(jwks ? au_jwks_key : hub_key, jwks, held, nheld, progress, &r)) {
        fprintf(stderr, "renkei: audit: %s\n", r.problem);
    } else {
        rc = print_report(&r, json, "audit verify");
    }
    json_decref(jwks);
    au_keys_release();
    core_cli_finish();
    return rc;
}

/* ---- export ---- */

struct out {
    bool csv;
    struct strbuf sb;
};

static void out_row(void *arg, int64_t seq, const char *canonical, size_t len, const char *leaf)
{
    struct out *o = arg;
    (void)seq;
    if (o->csv)
        au_render_csv(&o->sb, canonical, len, leaf);
    else
        au_render_jsonl(&o->sb, canonical, len, leaf);
    if (o->sb.len > 1 << 20) {
        fwrite(o->sb.buf, 1, o->sb.len, stdout);
        o->sb.len = 0;
    }
}

struct range_arg {
    uint64_t n, a, b;
};

static int range_proof(void *arg, au_subtree_fn get, void *get_arg, au_hash *out)
{
    struct range_arg *ra = arg;
    return au_range_proof_fn(ra->n, ra->a, ra->b, get, get_arg, out);
}

struct rp_tx {
    struct range_arg ra;
    au_hash hashes[2 * AU_PROOF_MAX];
    int len;
};

static enum core_db_rc rp_tx(struct core_db_conn *c, void *arg)
{
    struct rp_tx *t = arg;
    bool ok;
    t->len = au_dbtree_proof(c, range_proof, &t->ra, t->hashes, &ok);
    return ok ? CORE_DB_OK : CORE_DB_ERROR;
}

static bool write_json(const char *path, json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2));
    FILE *f = fopen(path, "w");
    bool ok = f && text && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0)
        ok = false;
    free(text);
    if (!ok)
        fprintf(stderr, "renkei: audit: cannot write %s\n", path);
    return ok;
}

static int cmd_export(int argc, char **argv)
{
    const char *format = "jsonl", *from_s = NULL, *to_s = NULL, *cp_path = NULL, *jwks_path = NULL;
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'}, {"from", required_argument, NULL, 'a'},
        {"to", required_argument, NULL, 'b'},     {"checkpoint", required_argument, NULL, 'c'},
        {"jwks", required_argument, NULL, 'k'},   {0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            format = optarg;
            break;
        case 'a':
            from_s = optarg;
            break;
        case 'b':
            to_s = optarg;
            break;
        case 'c':
            cp_path = optarg;
            break;
        case 'k':
            jwks_path = optarg;
            break;
        default:
            return usage("unknown option to audit export");
        }
    }
    long from = 0, to = LONG_MAX;
    if (optind != argc)
        return usage("audit export takes no arguments");
    if (strcmp(format, "jsonl") != 0 && strcmp(format, "csv") != 0)
        return usage("--format must be jsonl or csv");
    if ((from_s && !core_parse_long(from_s, 0, LONG_MAX, &from)) ||
        (to_s && !core_parse_long(to_s, 0, LONG_MAX, &to)) || from > to)
        return usage("--from and --to must be entry numbers, from <= to");
    if (!setup(1))
        return 1;
    int rc = 1;
    struct out o = {.csv = strcmp(format, "csv") == 0};
    strbuf_init(&o.sb, SIZE_MAX);
    struct au_checkpoint cp;
    /* the export ends at a checkpoint, made now if the log grew since the last */
    if (!au_keys_load() || !au_checkpoint_now(&cp, NULL)) {
        fprintf(stderr, "renkei: audit: no checkpoint: the log is empty, or the database or the "
                        "checkpoint key is unavailable\n");
        goto cleanup;
    }
    if ((uint64_t)from >= cp.tree_size) {
        fprintf(stderr, "renkei: audit: --from %ld: the log has %llu entries\n", from,
                (unsigned long long)cp.tree_size);
        goto cleanup;
    }
    if ((uint64_t)to >= cp.tree_size)
        to = (long)cp.tree_size - 1;
    json_t *cpj = au_checkpoint_json(&cp);
    if (from > 0 || (uint64_t)to + 1 < cp.tree_size) {
        struct rp_tx t = {.ra = {.n = cp.tree_size, .a = (uint64_t)from, .b = (uint64_t)to + 1}};
        if (core_db_tx(CORE_DB_PLATFORM, CORE_TX_READ, rp_tx, &t, NULL) != CORE_DB_OK ||
            t.len < 0) {
            json_decref(cpj);
            fprintf(stderr, "renkei: audit: the range proof cannot be read\n");
            goto cleanup;
        }
        json_t *hashes = json_array();
        for (int i = 0; i < t.len; i++) {
            char b64[45];
            au_hash_b64(t.hashes[i], b64);
            json_array_append_new(hashes, json_string(b64));
        }
        json_object_set_new(cpj, "range",
                            json_pack("{s:I, s:I, s:o}", "first", (json_int_t)from, "last",
                                      (json_int_t)to, "hashes", hashes));
    }
    bool ok = !cp_path || write_json(cp_path, cpj);
    json_decref(cpj);
    if (ok && jwks_path) {
        json_t *keys = au_jwks();
        json_t *doc = json_pack("{s:o}", "keys", keys ? keys : json_array());
        ok = write_json(jwks_path, doc);
        json_decref(doc);
    }
    if (!ok)
        goto cleanup;
    if (o.csv)
        au_csv_header(&o.sb);
    struct au_filter f = {.after = from - 1, .upto = to};
    for (;;) {
        int64_t last = f.after;
        long n = au_query_page(CORE_DB_PLATFORM, &f, 5000, out_row, &o, &last);
        if (n < 0) {
            fprintf(stderr, "renkei: audit: the database failed during the export\n");
            goto cleanup;
        }
        f.after = last;
        if (n < 5000)
            break;
    }
    fwrite(o.sb.buf, 1, o.sb.len, stdout);
    rc = fflush(stdout) == 0 ? 0 : 1;
cleanup:
    strbuf_release(&o.sb);
    au_keys_release();
    core_cli_finish();
    return rc;
}

static int cmd_verify_file(int argc, char **argv)
{
    bool json = false;
    const char *cp_path = NULL, *jwks_path = NULL;
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"checkpoint", required_argument, NULL, 'c'},
                                         {"jwks", required_argument, NULL, 'k'},
                                         {0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j')
            json = true;
        else if (c == 'c')
            cp_path = optarg;
        else if (c == 'k')
            jwks_path = optarg;
        else
            return usage("unknown option to audit verify-file");
    }
    if (optind != argc - 1 || !cp_path || !jwks_path)
        return usage("give the export FILE, --checkpoint FILE and --jwks FILE");
    json_t *cp = load_json("--checkpoint", cp_path);
    json_t *jwks = cp ? load_json("--jwks", jwks_path) : NULL;
    if (!cp || !jwks) {
        json_decref(cp);
        return 2;
    }
    const char *path = argv[optind];
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!in) {
        fprintf(stderr, "renkei: audit: cannot open %s\n", path);
        json_decref(cp);
        json_decref(jwks);
        return 2;
    }
    struct au_report r;
    int rc;
    if (!au_verify_file(in, cp, au_jwks_key, jwks, &r)) {
        fprintf(stderr, "renkei: audit: %s\n", r.problem);
        rc = 2;
    } else {
        rc = print_report(&r, json, "audit verify-file");
    }
    if (in != stdin)
        fclose(in);
    json_decref(cp);
    json_decref(jwks);
    return rc;
}

static int cmd_checkpoint(int argc, char **argv, bool rotate)
{
    bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
    if (argc > 2 || (argc == 2 && !json))
        return usage(rotate ? "audit rotate-key takes only --json"
                            : "audit checkpoint takes only --json");
    if (!setup(1))
        return 1;
    int rc = 1;
    if (!au_keys_load()) {
        fprintf(stderr, "renkei: audit: the checkpoint keys cannot be loaded\n");
    } else if (rotate) {
        char err[300];
        char *who = core_cli_actor();
        json_t *d = au_keys_rotate(who, err, sizeof err);
        free(who);
        if (!d) {
            fprintf(stderr, "renkei: audit: rotation failed: %s\n", err);
        } else {
            if (json)
                core_cli_print_json(d);
            else
                printf("audit key %s is active\n",
                       json_string_value(json_object_get(d, "created")));
            json_decref(d);
            rc = 0;
        }
    } else {
        struct au_checkpoint cp;
        bool made = false;
        if (!au_checkpoint_now(&cp, &made)) {
            fprintf(stderr, "renkei: audit: no checkpoint: the log is empty or the database is "
                            "unavailable\n");
        } else {
            json_t *j = au_checkpoint_json(&cp);
            if (json)
                core_cli_print_json(j);
            else
                printf("checkpoint %s: tree size %llu, root %s, %s\n", made ? "made" : "unchanged",
                       (unsigned long long)cp.tree_size,
                       json_string_value(json_object_get(j, "root_hash")), cp.time);
            json_decref(j);
            rc = 0;
        }
    }
    au_keys_release();
    core_cli_finish();
    return rc;
}

int au_cmd_audit(const struct core_app *app, int argc, char **argv)
{
    (void)app;
    if (argc < 2)
        return usage("say what to do");
    const char *what = argv[1];
    if (strcmp(what, "verify") == 0)
        return cmd_verify(argc - 1, argv + 1);
    if (strcmp(what, "export") == 0)
        return cmd_export(argc - 1, argv + 1);
    if (strcmp(what, "verify-file") == 0)
        return cmd_verify_file(argc - 1, argv + 1);
    if (strcmp(what, "checkpoint") == 0)
        return cmd_checkpoint(argc - 1, argv + 1, false);
    if (strcmp(what, "rotate-key") == 0)
        return cmd_checkpoint(argc - 1, argv + 1, true);
    return usage("unknown audit command");
}
