/* A JSON request body as the hub takes one (core_req_parse_json): the depth
 * check before the parser, jansson with duplicate keys refused, then what
 * the hub does with parsed JSON everywhere: the compact writer (which must
 * match jansson's byte for byte) and the audit log's canonical form (which
 * must read back as the same value). */
#include "audit/au_internal.h"
#include "core/http.h"
#include "core/json.h"
#include "core/strbuf.h"
#include "tests/fuzz/fuzz.h"

static int depth_of(const json_t *v)
{
    int d = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *)v, k, m)
        {
            int dm = depth_of(m);
            if (dm > d)
                d = dm;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m)
        {
            int dm = depth_of(m);
            if (dm > d)
                d = dm;
        }
        return d + 1;
    }
    return 0;
}

static void same_dump(const json_t *v, int precision)
{
    size_t flags = JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(precision ? precision : 17);
    char *want = json_dumps(v, flags);
    size_t len = 0;
    char *got = core_json_dump(v, precision, &len);
    if (!want || !got)
        fuzz_fail("a parsed value did not serialize (jansson %p, ours %p)", (void *)want,
                  (void *)got);
    if (strcmp(want, got) != 0 || len != strlen(want))
        fuzz_fail("core_json_dump differs from json_dumps at precision %d:\n%s\n%s", precision, got,
                  want);
    free(want);
    free(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024)
        return 0;
    const char *text = (const char *)data;
    bool shallow = core_json_depth_ok(text, size, CORE_JSON_MAX_DEPTH);
    json_error_t err;
    json_t *v = json_loadb(text, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!v)
        return 0;
    int d = depth_of(v);
    if (shallow != (d <= CORE_JSON_MAX_DEPTH))
        fuzz_fail("the depth check says %s for a document %d deep", shallow ? "fine" : "too deep",
                  d);
    if (shallow) {
        same_dump(v, 0);
        same_dump(v, 15);
        struct strbuf sb;
        strbuf_init(&sb, 1 << 20);
        if (au_canonical(v, &sb, 0)) {
            json_t *back =
                json_loadb(sb.buf, sb.len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
            if (!back)
                fuzz_fail("the canonical form does not parse: %s (%.*s)", err.text, (int)sb.len,
                          sb.buf);
            if (!json_equal(v, back))
                fuzz_fail("the canonical form reads back as another value: %.*s", (int)sb.len,
                          sb.buf);
            json_decref(back);
        }
        strbuf_release(&sb);
    }
    json_decref(v);
    return 0;
}
