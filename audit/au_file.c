#include <stdlib.h>

#include <openssl/crypto.h>

#include "audit/au_query.h"
#include "audit/au_verify.h"
#include "core/crypto.h"
#include "core/jose.h"
#include "core/log.h"

/*
 * `renkei audit verify-file`: what an outside auditor runs on an export,
 * with no database: the checkpoint's signature against their copy of the
 * JWKS, every entry's leaf hash from its canonical form (RFC 8785, recomputed
 * from the parsed entry, so an edit anywhere in the line shows), seq order,
 * and the tree head against the checkpoint (with the range proof when the
 * export holds part of the log).
 */

#define FIELD_MAX (AU_ENTRY_MAX + 1024)

static void problem(struct au_report *r, int64_t seq, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void problem(struct au_report *r, int64_t seq, const char *fmt, ...)
{
    if (!r->ok)
        return;
    r->ok = false;
    r->first_bad = seq;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->problem, sizeof r->problem, fmt, ap);
    va_end(ap);
}

/*
 * Input read in blocks, with lines bounded: getline() would hold a line of
 * any length in memory, and fgets() stops seeing a line at a NUL byte (so
 * bytes after one would go unchecked).
 */
struct input {
    FILE *in;
    char *buf;
    size_t cap, start, end;
    bool eof;
};

static void input_fill(struct input *t)
{
    if (t->start > 0) {
        memmove(t->buf, t->buf + t->start, t->end - t->start);
        t->end -= t->start;
        t->start = 0;
    }
    size_t got = t->end < t->cap ? fread(t->buf + t->end, 1, t->cap - t->end, t->in) : 0;
    if (got == 0)
        t->eof = true;
    t->end += got;
}

static int input_getc(struct input *t)
{
    if (t->start == t->end) {
        if (t->eof)
            return EOF;
        input_fill(t);
        if (t->start == t->end)
            return EOF;
    }
    return (unsigned char)t->buf[t->start++];
}

/* The next line without its end (\n, \r\n), or NULL at the end. A line
 * longer than FIELD_MAX is skipped whole and reported with *too_long. */
static char *input_line(struct input *t, size_t *len, bool *too_long)
{
    *too_long = false;
    for (;;) {
        char *p = t->buf + t->start;
        char *nl = memchr(p, '\n', t->end - t->start);
        size_t have = nl ? (size_t)(nl - p) : t->end - t->start;
        if (have > FIELD_MAX) {
            /* drop it up to its end */
            *too_long = true;
            while (!nl && !t->eof) {
                t->start = t->end;
                input_fill(t);
                nl = memchr(t->buf + t->start, '\n', t->end - t->start);
            }
            t->start = nl ? (size_t)(nl - t->buf) + 1 : t->end;
            *len = 0;
            return t->buf;
        }
        if (nl || (t->eof && have > 0)) {
            t->start += have + (nl != NULL);
            while (have && p[have - 1] == '\r')
                have--;
            *len = have;
            return p;
        }
        if (t->eof)
            return NULL;
        input_fill(t);
    }
}

/* One CSV record (RFC 4180); false at the end of input. Fields are
 * malloc'd into f[0..*n). *bad when the record is malformed or too big. */
static bool csv_record(struct input *in, char **f, int max, int *n, bool *bad, long *line)
{
    struct strbuf cur;
    strbuf_init(&cur, FIELD_MAX);
    *n = 0;
    *bad = false;
    int c = input_getc(in);
    if (c == EOF) {
        strbuf_release(&cur);
        return false;
    }
    bool quoted = false, was_quoted = false;
    for (;; c = input_getc(in)) {
        if (quoted) {
            if (c == EOF) {
                *bad = true;
                break;
            }
            if (c == '"') {
                int d = input_getc(in);
                if (d == '"') {
                    strbuf_add(&cur, "\"", 1);
                    continue;
                }
                quoted = false;
                c = d;
            } else {
                if (c == '\n')
                    (*line)++;
                if (c == 0)
                    *bad = true; /* no cell holds a NUL byte */
                char ch = (char)c;
                strbuf_add(&cur, &ch, 1);
                continue;
            }
        }
        if (c == '"' && cur.len == 0 && !was_quoted) {
            quoted = was_quoted = true;
            continue;
        }
        if (c == ',' || c == '\n' || c == '\r' || c == EOF) {
            /* a field over the cap is a bad record, not a truncated field */
            if (cur.toobig)
                *bad = true;
            if (*n < max) {
                f[(*n)++] = strbuf_detach(&cur, NULL);
            } else {
                *bad = true;
                strbuf_release(&cur);
            }
            strbuf_init(&cur, FIELD_MAX);
            was_quoted = false;
            if (c == ',')
                continue;
            if (c == '\r' && (c = input_getc(in)) != '\n')
                *bad = true;
            if (c == '\n')
                (*line)++;
            break;
        }
        char ch = (char)c;
        if (was_quoted || c == 0)
            *bad = true; /* text after a closing quote, or a NUL byte */
        strbuf_add(&cur, &ch, 1);
    }
    if (cur.toobig)
        *bad = true;
    strbuf_release(&cur);
    return true;
}

struct fctx {
    struct au_report *r;
    uint64_t first, end; /* the entries the file must hold: [first, end) */
    bool full;
    struct au_frontier f;
    au_hash *leaves;
    size_t nleaves, alloc;
    uint64_t expect;
    long line;
};

/* Checks one parsed entry (leaf_hash removed) against the hash it claimed. */
static void take(struct fctx *x, json_t *o, const char *claimed)
{
    struct au_report *r = x->r;
    int64_t at = (int64_t)x->expect;
    json_t *seq = json_object_get(o, "seq");
    if (!json_is_integer(seq)) {
        problem(r, at, "line %ld: the entry has no seq", x->line);
        return;
    }
    if ((uint64_t)json_integer_value(seq) != x->expect)
        problem(r, at,
                "line %ld: expected entry %llu, found entry %lld (missing, inserted or "
                "reordered entries)",
                x->line, (unsigned long long)x->expect, (long long)json_integer_value(seq));
    struct strbuf canon;
    strbuf_init(&canon, AU_ENTRY_MAX);
    au_hash leaf, want;
    if (!au_canonical(o, &canon, 0))
        problem(r, at, "line %ld: entry %llu holds values outside the canonical form", x->line,
                (unsigned long long)x->expect);
    au_leaf_hash(canon.buf, canon.len, leaf);
    strbuf_release(&canon);
    if (!au_hash_from_b64(claimed, want) || CRYPTO_memcmp(leaf, want, AU_HASH) != 0)
        problem(r, at, "line %ld: entry %llu was altered: it does not hash to its leaf_hash",
                x->line, (unsigned long long)x->expect);
    if (x->expect >= x->end)
        problem(r, at, "line %ld: entry %llu lies beyond what the checkpoint covers", x->line,
                (unsigned long long)x->expect);
    else if (x->full)
        au_frontier_append(&x->f, leaf, NULL, NULL);
    else {
        if (x->nleaves == x->alloc) {
            x->alloc = x->alloc ? 2 * x->alloc : 1024;
            x->leaves = xrealloc(x->leaves, x->alloc * sizeof *x->leaves);
        }
        memcpy(x->leaves[x->nleaves++], leaf, AU_HASH);
    }
    x->expect++;
    r->entries++;
}

/*
 * The fast path, for lines as renkei writes them: the canonical bytes with
 * ,"leaf_hash":"..." put before the closing brace. Hashing those bytes is
 * enough: bytes that hash to a leaf the signed tree holds are that leaf's
 * canonical bytes. Any other line (re-serialized by another tool, or
 * altered) takes the slow path, which parses and canonicalizes it.
 */
static bool jsonl_fast(struct fctx *x, char *line, size_t len)
{
    static const char key[] = ",\"leaf_hash\":\"";
    size_t kl = sizeof key - 1, tail = kl + 44 + 2;
    if (len <= tail || line[len - 1] != '}' || line[len - 2] != '"' ||
        memcmp(line + len - tail, key, kl) != 0 || x->expect >= x->end)
        return false;
    char b64[45];
    memcpy(b64, line + len - 46, 44);
    b64[44] = '\0';
    au_hash want, leaf;
    if (!au_hash_from_b64(b64, want))
        return false;
    size_t cut = len - tail;
    char saved = line[cut];
    line[cut] = '}';
    au_leaf_hash(line, cut + 1, leaf);
    int64_t seq;
    bool ok = CRYPTO_memcmp(leaf, want, AU_HASH) == 0 && au_embedded_seq(line, cut + 1, &seq) &&
              (uint64_t)seq == x->expect;
    line[cut] = saved;
    if (!ok)
        return false;
    if (x->full)
        au_frontier_append(&x->f, leaf, NULL, NULL);
    else {
        if (x->nleaves == x->alloc) {
            x->alloc = x->alloc ? 2 * x->alloc : 1024;
            x->leaves = xrealloc(x->leaves, x->alloc * sizeof *x->leaves);
        }
        memcpy(x->leaves[x->nleaves++], leaf, AU_HASH);
    }
    x->expect++;
    x->r->entries++;
    return true;
}

static void jsonl_line(struct fctx *x, char *line, size_t len)
{
    if (jsonl_fast(x, line, len))
        return;
    json_error_t e;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &e);
    const char *lh = json_string_value(json_object_get(o, "leaf_hash"));
    if (!json_is_object(o) || !lh) {
        problem(x->r, (int64_t)x->expect, "line %ld: not an entry with a leaf_hash (%s)", x->line,
                o ? "no leaf_hash" : e.text);
        json_decref(o);
        x->expect++;
        return;
    }
    char *claimed = xstrdup(lh);
    json_object_del(o, "leaf_hash");
    take(x, o, claimed);
    free(claimed);
    json_decref(o);
}

static void csv_row(struct fctx *x, char **f, int n)
{
    if (n != AU_CSV_NCOLS) {
        problem(x->r, (int64_t)x->expect, "line %ld: %d columns, not %d", x->line, n, AU_CSV_NCOLS);
        x->expect++;
        return;
    }
    const char *entry = f[AU_CSV_NCOLS - 1];
    json_t *o = json_loads(entry, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(o)) {
        problem(x->r, (int64_t)x->expect, "line %ld: the entry column is not a JSON object",
                x->line);
        json_decref(o);
        x->expect++;
        return;
    }
    /* the readable columns must say what the entry says */
    for (int i = 0; i < AU_CSV_NCOLS - 1; i++) {
        if (strcmp(au_csv_columns[i], "leaf_hash") == 0)
            continue;
        char *want = au_csv_value(o, i);
        const char *got = f[i];
        if (got[0] == '\'' && want[0] && strchr("=+-@\t\r", want[0]))
            got++;
        if (strcmp(want, got) != 0)
            problem(x->r, (int64_t)x->expect,
                    "line %ld: column %s says \"%.60s\", the entry says \"%.60s\"", x->line,
                    au_csv_columns[i], got, want);
        free(want);
    }
    int lh = 0;
    while (strcmp(au_csv_columns[lh], "leaf_hash") != 0)
        lh++;
    /* a hash starting with + carries the spreadsheet guard too */
    const char *claimed = f[lh];
    if (claimed[0] == '\'' && claimed[1] && strchr("=+-@\t\r", claimed[1]))
        claimed++;
    take(x, o, claimed);
    json_decref(o);
}

bool au_verify_file(FILE *in, json_t *checkpoint, au_key_fn key, void *key_arg, struct au_report *r)
{
    memset(r, 0, sizeof *r);
    r->ok = true;
    r->first_bad = r->bad_last = -1;
    struct au_checkpoint cp;
    const char *why;
    if (!au_checkpoint_parse(checkpoint, &cp, &why)) {
        xsnprintf(r->problem, sizeof r->problem, "the checkpoint file: %s", why);
        return false;
    }
    struct fctx x = {.r = r, .end = cp.tree_size, .full = true, .line = 1};
    json_t *range = json_object_get(checkpoint, "range");
    au_hash proof[2 * AU_PROOF_MAX];
    size_t plen = 0;
    if (range) {
        json_t *first = json_object_get(range, "first"), *last = json_object_get(range, "last");
        json_t *hashes = json_object_get(range, "hashes");
        if (!json_is_integer(first) || !json_is_integer(last) || !json_is_array(hashes) ||
            json_integer_value(first) < 0 || json_integer_value(last) < json_integer_value(first) ||
            (uint64_t)json_integer_value(last) >= cp.tree_size ||
            json_array_size(hashes) > 2 * AU_PROOF_MAX) {
            xsnprintf(r->problem, sizeof r->problem,
                      "the checkpoint file: range needs first <= last < tree_size and hashes");
            return false;
        }
        for (size_t i = 0; i < json_array_size(hashes); i++)
            if (!au_hash_from_b64(json_string_value(json_array_get(hashes, i)), proof[plen++])) {
                xsnprintf(r->problem, sizeof r->problem,
                          "the checkpoint file: range hash %zu is not a base64 hash", i);
                return false;
            }
        x.first = (uint64_t)json_integer_value(first);
        x.end = (uint64_t)json_integer_value(last) + 1;
        x.full = false;
    }
    x.expect = x.first;

    /* the signature first: nothing else means anything without it */
    EVP_PKEY *k = key(key_arg, cp.kid);
    size_t mlen;
    char *m = au_checkpoint_message(&cp, &mlen);
    bool sig_ok = k && core_es256_verify(k, m, mlen, cp.sig, sizeof cp.sig);
    free(m);
    EVP_PKEY_free(k);
    r->checkpoints = 1;
    if (!sig_ok)
        problem(r, -1,
                k ? "the checkpoint's signature does not verify"
                  : "the checkpoint's key is not in the JWKS");

    struct input t = {.in = in, .cap = 2 * (FIELD_MAX + 1)};
    t.buf = xmalloc(t.cap);
    size_t len;
    bool too_long;
    char *line = input_line(&t, &len, &too_long);
    struct strbuf hdr;
    strbuf_init(&hdr, SIZE_MAX);
    au_csv_header(&hdr);
    if (line && len >= 4 && memcmp(line, "seq,", 4) == 0) {
        if (len != hdr.len - 2 || memcmp(line, hdr.buf, len) != 0)
            problem(r, -1, "line 1: not the CSV header of an audit export");
        x.line = 2;
        char *f[AU_CSV_NCOLS + 1];
        int nf;
        bool bad;
        long start = x.line;
        while (csv_record(&t, f, AU_CSV_NCOLS + 1, &nf, &bad, &x.line)) {
            long here = x.line;
            x.line = start;
            if (bad)
                problem(r, (int64_t)x.expect, "line %ld: a malformed CSV record", start);
            else
                csv_row(&x, f, nf);
            for (int i = 0; i < nf; i++)
                free(f[i]);
            x.line = start = here;
        }
    } else {
        while (line) {
            if (too_long)
                problem(r, (int64_t)x.expect, "line %ld: longer than any entry", x.line);
            else if (len)
                jsonl_line(&x, line, len);
            x.line++;
            line = input_line(&t, &len, &too_long);
        }
    }
    strbuf_release(&hdr);
    free(t.buf);
    if (ferror(in)) {
        xsnprintf(r->problem, sizeof r->problem, "the export cannot be read");
        free(x.leaves);
        return false;
    }
    if (x.expect < x.end)
        problem(r, (int64_t)x.expect, "entries %llu to %llu are missing from the file",
                (unsigned long long)x.expect, (unsigned long long)x.end - 1);
    if (r->ok) {
        bool root_ok;
        if (x.full) {
            au_frontier_root(&x.f, r->root);
            root_ok = CRYPTO_memcmp(r->root, cp.root, AU_HASH) == 0;
        } else {
            root_ok = au_verify_range((const au_hash *)x.leaves, x.first, x.end, cp.tree_size,
                                      (const au_hash *)proof, plen, cp.root);
            memcpy(r->root, cp.root, AU_HASH);
        }
        if (!root_ok) {
            r->bad_last = (int64_t)x.end - 1;
            problem(r, (int64_t)x.first,
                    "the entries do not form the tree the checkpoint signed (size %llu)",
                    (unsigned long long)cp.tree_size);
        }
    }
    r->tree_size = cp.tree_size;
    free(x.leaves);
    return true;
}
