/*
 * The audit log's byte formats (audit/FORMAT.md): RFC 8785 canonical JSON,
 * entries, the seq inside canonical bytes, checkpoints' signed message and
 * JSON, base64 hashes, CSV cells, time filters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "audit/au_query.h"
#include "audit/au_verify.h"
#include "core/crypto.h"
#include "core/jose.h"

static char *canon(const char *json)
{
    json_t *v = json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    assert_non_null(v);
    struct strbuf sb;
    strbuf_init(&sb, 1 << 20);
    bool ok = au_canonical(v, &sb, 0);
    json_decref(v);
    if (!ok) {
        strbuf_release(&sb);
        return NULL;
    }
    return strbuf_detach(&sb, NULL);
}

static void expect(const char *in, const char *out)
{
    char *got = canon(in);
    assert_non_null(got);
    assert_string_equal(got, out);
    free(got);
}

static void test_canonical(void **state)
{
    (void)state;
    expect("{\"b\": 1, \"a\": [true, false, null], \"c\": {\"z\": \"\", \"y\": -5}}",
           "{\"a\":[true,false,null],\"b\":1,\"c\":{\"y\":-5,\"z\":\"\"}}");
    /* only " \\ and controls are escaped; named escapes where JSON has them,
     * lower-case \\u00xx for the rest; / and non-ASCII stay as they are */
    expect("\"a\\\"b\\\\c/d\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\"",
           "\"a\\\"b\\\\c/d\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\"");
    expect("\"香川県 \\u20ac \\ud83d\\ude00\"", "\"香川県 € 😀\"");
    /* RFC 8785 §3.2.3: names sorted by UTF-16 code units, so U+1F600
     * (surrogates D83D DE00) sorts before U+FB33, unlike in UTF-8 */
    expect("{\"\\ufb33\": 1, \"\\ud83d\\ude00\": 2, \"a\": 3, \"\\u00e9\": 4}",
           "{\"a\":3,\"é\":4,\"😀\":2,\"דּ\":1}");
    expect("9007199254740991", "9007199254740991");
    expect("-9007199254740991", "-9007199254740991");
    /* outside the restricted set: fractions, integers past 2^53, depth > 16 */
    assert_null(canon("1.5"));
    assert_null(canon("9007199254740992"));
    char deep[64];
    xsnprintf(deep, sizeof deep, "%.17s1%.17s", "[[[[[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]]]]]");
    assert_null(canon(deep)); /* 17 levels */
    xsnprintf(deep, sizeof deep, "%.16s1%.16s", "[[[[[[[[[[[[[[[[[[[[", "]]]]]]]]]]]]]]]]]]]]");
    expect(deep, deep);
    /* a NUL inside a string is a control like the others */
    expect("\"a\\u0000b\"", "\"a\\u0000b\"");
}

static void test_entry_object(void **state)
{
    (void)state;
    json_t *req = json_pack("{s:s}", "method", "GET");
    struct au_entry e = {.kind = "transfer",
                         .decision = "deny",
                         .consumer_tenant = "a",
                         .provider = "b",
                         .request = req};
    const char *why;
    json_t *o = au_entry_object(&e, 42, "2026-11-26T07:57:01.123456Z", &why);
    assert_non_null(o);
    struct strbuf sb;
    strbuf_init(&sb, AU_ENTRY_MAX);
    assert_true(au_canonical(o, &sb, 0));
    assert_string_equal(
        sb.buf,
        "{\"actor\":null,\"agreement\":null,\"consumer\":{\"client\":null,\"tenant\":\"a\"},"
        "\"decision\":\"deny\",\"detail\":null,\"kind\":\"transfer\",\"outcome\":null,"
        "\"provider\":\"b\",\"purpose\":null,\"reason\":null,\"request\":{\"method\":"
        "\"GET\"},\"resident\":null,\"seq\":42,\"tenant\":null,\"time\":"
        "\"2026-11-26T07:57:01.123456Z\"}");
    int64_t seq;
    assert_true(au_embedded_seq(sb.buf, sb.len, &seq));
    assert_int_equal(seq, 42);
    strbuf_release(&sb);
    json_decref(o);
    /* malformed entries */
    const char *bad_kinds[] = {"", "Transfer", "a..b", ".a", "a.", "a b", NULL};
    for (int i = 0; bad_kinds[i]; i++) {
        struct au_entry b = {.kind = bad_kinds[i]};
        assert_null(au_entry_object(&b, 0, "t", &why));
        assert_non_null(why);
    }
    struct au_entry b = {.kind = "transfer", .decision = "perhaps"};
    assert_null(au_entry_object(&b, 0, "t", &why));
    json_t *arr = json_array();
    struct au_entry c = {.kind = "transfer", .outcome = arr};
    assert_null(au_entry_object(&c, 0, "t", &why));
    json_decref(arr);
    struct au_entry d = {.kind = "transfer", .provider = "\xff\xfe"};
    assert_null(au_entry_object(&d, 0, "t", &why));
    json_decref(req);
}

static void test_embedded_seq(void **state)
{
    (void)state;
    int64_t s;
    /* the last "seq" member wins: one inside a nested object comes earlier */
    const char *t = "{\"detail\":{\"seq\":9},\"seq\":7,\"tenant\":\"x\",\"time\":\"t\"}";
    assert_true(au_embedded_seq(t, strlen(t), &s));
    assert_int_equal(s, 7);
    assert_false(au_embedded_seq("{}", 2, &s));
    assert_false(au_embedded_seq("{\"seq\":}", 8, &s));
    assert_false(au_embedded_seq("{\"seq\":1x}", 10, &s));
}

static void test_hash_b64(void **state)
{
    (void)state;
    au_hash h, back;
    for (int i = 0; i < AU_HASH; i++)
        h[i] = (unsigned char)(i * 37 + 250);
    char b64[45];
    au_hash_b64(h, b64);
    assert_int_equal(strlen(b64), 44);
    assert_true(au_hash_from_b64(b64, back));
    assert_memory_equal(h, back, AU_HASH);
    b64[43] = 'A'; /* padding gone */
    assert_false(au_hash_from_b64(b64, back));
    assert_false(au_hash_from_b64("AAAA", back));
    assert_false(au_hash_from_b64(NULL, back));
    /* base64url characters are not base64 */
    assert_false(au_hash_from_b64("-_______________________________________AA=", back));
    unsigned char *raw;
    size_t n;
    assert_true(core_b64_decode("TWE=", 4, &raw, &n));
    assert_int_equal(n, 2);
    assert_memory_equal(raw, "Ma", 2);
    free(raw);
    assert_false(core_b64_decode("TWE", 3, &raw, &n));
    assert_false(core_b64_decode("T=E=", 4, &raw, &n));
    assert_false(core_b64_decode("TWF=", 4, &raw, &n)); /* non-zero spare bits */
}

static EVP_PKEY *one_key(void *arg, const char *kid)
{
    (void)kid;
    EVP_PKEY *k = arg;
    EVP_PKEY_up_ref(k);
    return k;
}

static void test_checkpoint(void **state)
{
    (void)state;
    struct au_checkpoint cp = {.tree_size = 40};
    memset(cp.root, 0xab, AU_HASH);
    xsnprintf(cp.time, sizeof cp.time, "2026-11-26T08:05:24.729790Z");
    xsnprintf(cp.kid, sizeof cp.kid, "audit-abc");
    size_t len;
    char *m = au_checkpoint_message(&cp, &len);
    assert_string_equal(m, "renkei audit checkpoint v1\n40\n"
                           "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n"
                           "2026-11-26T08:05:24.729790Z\naudit-abc\n");
    EVP_PKEY *k = core_key_generate(CORE_ES256);
    core_es256_sign(k, m, len, cp.sig);
    assert_true(core_es256_verify(k, m, len, cp.sig, sizeof cp.sig));
    free(m);
    json_t *j = au_checkpoint_json(&cp);
    struct au_checkpoint back;
    const char *why;
    assert_true(au_checkpoint_parse(j, &back, &why));
    assert_memory_equal(&back, &cp, sizeof cp);
    json_object_set_new(j, "time", json_string("2026-11-26 08:05:24Z"));
    assert_false(au_checkpoint_parse(j, &back, &why));
    json_decref(j);

    /* verify-file on a one-entry export signed by k */
    json_t *o = au_entry_object(&(struct au_entry){.kind = "tenant.create", .tenant = "t"}, 0,
                                cp.time, &why);
    struct strbuf sb;
    strbuf_init(&sb, AU_ENTRY_MAX);
    assert_true(au_canonical(o, &sb, 0));
    json_decref(o);
    au_hash leaf;
    au_leaf_hash(sb.buf, sb.len, leaf);
    char b64[45];
    au_hash_b64(leaf, b64);
    struct strbuf line;
    strbuf_init(&line, SIZE_MAX);
    au_render_jsonl(&line, sb.buf, sb.len, b64);
    cp.tree_size = 1;
    memcpy(cp.root, leaf, AU_HASH);
    m = au_checkpoint_message(&cp, &len);
    core_es256_sign(k, m, len, cp.sig);
    free(m);
    j = au_checkpoint_json(&cp);
    struct au_report r;
    FILE *in = fmemopen(line.buf, line.len, "r");
    assert_true(au_verify_file(in, j, one_key, k, &r));
    fclose(in);
    assert_true(r.ok);
    assert_int_equal(r.entries, 1);
    /* one byte changed inside the entry */
    char *p = strstr(line.buf, "\"t\"");
    p[1] = 'u';
    in = fmemopen(line.buf, line.len, "r");
    assert_true(au_verify_file(in, j, one_key, k, &r));
    fclose(in);
    assert_false(r.ok);
    assert_int_equal(r.first_bad, 0);
    p[1] = 't';
    /* another key */
    EVP_PKEY *other = core_key_generate(CORE_ES256);
    in = fmemopen(line.buf, line.len, "r");
    assert_true(au_verify_file(in, j, one_key, other, &r));
    fclose(in);
    assert_false(r.ok);
    EVP_PKEY_free(other);
    json_decref(j);
    strbuf_release(&line);
    strbuf_release(&sb);
    EVP_PKEY_free(k);
}

/* An entry whose leaf hash (base64) starts with '+' is written with the
 * spreadsheet guard in CSV, and still verifies. */
static void test_csv_guarded_hash(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, AU_ENTRY_MAX);
    au_hash leaf;
    char b64[45], name[32], time[32] = "2026-11-26T08:05:24.729790Z";
    const char *why;
    for (int i = 0;; i++) {
        xsnprintf(name, sizeof name, "t%d", i);
        json_t *o = au_entry_object(&(struct au_entry){.kind = "tenant.create", .tenant = name}, 0,
                                    time, &why);
        sb.len = 0;
        assert_true(au_canonical(o, &sb, 0));
        json_decref(o);
        au_leaf_hash(sb.buf, sb.len, leaf);
        au_hash_b64(leaf, b64);
        if (b64[0] == '+')
            break;
        assert_true(i < 100000);
    }
    struct strbuf csv;
    strbuf_init(&csv, SIZE_MAX);
    au_csv_header(&csv);
    au_render_csv(&csv, sb.buf, sb.len, b64);
    assert_non_null(strstr(csv.buf, ",\"'+"));
    EVP_PKEY *k = core_key_generate(CORE_ES256);
    struct au_checkpoint cp = {.tree_size = 1};
    memcpy(cp.root, leaf, AU_HASH);
    xsnprintf(cp.time, sizeof cp.time, "%s", time);
    xsnprintf(cp.kid, sizeof cp.kid, "audit-x");
    size_t len;
    char *m = au_checkpoint_message(&cp, &len);
    core_es256_sign(k, m, len, cp.sig);
    free(m);
    json_t *j = au_checkpoint_json(&cp);
    struct au_report r;
    FILE *in = fmemopen(csv.buf, csv.len, "r");
    assert_true(au_verify_file(in, j, one_key, k, &r));
    fclose(in);
    if (!r.ok)
        fail_msg("%s", r.problem);
    json_decref(j);
    EVP_PKEY_free(k);
    strbuf_release(&csv);
    strbuf_release(&sb);
}

static void test_csv_cells(void **state)
{
    (void)state;
    struct strbuf sb;
    strbuf_init(&sb, SIZE_MAX);
    au_csv_field(&sb, "plain", 5);
    strbuf_adds(&sb, "|");
    au_csv_field(&sb, "a,b", 3);
    strbuf_adds(&sb, "|");
    au_csv_field(&sb, "say \"hi\"", 8);
    strbuf_adds(&sb, "|");
    au_csv_field(&sb, "=SUM(A1)", 8);
    strbuf_adds(&sb, "|");
    au_csv_field(&sb, "line\nbreak", 10);
    assert_string_equal(sb.buf, "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"'=SUM(A1)\"|\"line\nbreak\"");
    strbuf_release(&sb);
}

static void test_time_param(void **state)
{
    (void)state;
    const char *good[] = {"2026-11-26",
                          "2026-11-26T08:00:00Z",
                          "2026-11-26T08:00:00.5Z",
                          "2026-11-26T08:00:00.123456789+09:00",
                          "2026-11-26t08:00:00-05:30",
                          "2028-02-29",
                          "2000-02-29T23:59:59Z",
                          NULL};
    const char *bad[] = {"",
                         "yesterday",
                         "2026-11-2",
                         "2026-11-26T08:00Z",
                         "2026-11-26T08:00:00",
                         "2026-11-26T08:00:00.Z",
                         "2026-11-26T08:00:00+0900",
                         "2026-11-26 08:00:00Z",
                         "2026-11-26T08:00:00Z;DROP",
                         NULL};
    for (int i = 0; good[i]; i++)
        assert_true(au_time_param_ok(good[i]));
    for (int i = 0; bad[i]; i++)
        assert_false(au_time_param_ok(bad[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical),        cmocka_unit_test(test_entry_object),
        cmocka_unit_test(test_embedded_seq),     cmocka_unit_test(test_hash_b64),
        cmocka_unit_test(test_checkpoint),       cmocka_unit_test(test_csv_cells),
        cmocka_unit_test(test_csv_guarded_hash), cmocka_unit_test(test_time_param),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
