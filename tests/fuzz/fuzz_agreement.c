/* A data-sharing agreement as POST /admin/v1/agreements takes one
 * (xc_agreement_from_json, then xc_agreement_check inside it): the body's
 * JSON, with the consumer defaulting as for a town's admin. An accepted
 * agreement renders (xc_agreement_json) to JSON that reads back as the same
 * agreement. */
#include "core/http.h"
#include "core/json.h"
#include "exchange/xc_agreement.h"
#include "tests/fuzz/fuzz.h"

static bool same_list(char **a, size_t na, char **b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024 || !core_json_depth_ok((const char *)data, size, CORE_JSON_MAX_DEPTH))
        return 0;
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    struct xc_agreement a = {0};
    char err[300] = "";
    if (!xc_agreement_from_json(body, "kanonji", &a, err, sizeof err)) {
        if (!err[0])
            fuzz_fail("refused without a reason");
        xc_agreement_release(&a);
        json_decref(body);
        return 0;
    }
    if (!a.ntypes || !a.npurposes || !a.actions)
        fuzz_fail("accepted without types, purposes or actions");
    json_t *out = xc_agreement_json(&a);
    struct xc_agreement b = {0};
    char err2[300] = "";
    if (!xc_agreement_from_json(out, "someone-else", &b, err2, sizeof err2))
        fuzz_fail("the rendered agreement is refused: %s", err2);
    if (strcmp(a.provider, b.provider) != 0 || strcmp(a.consumer, b.consumer) != 0 ||
        !same_list(a.types, a.ntypes, b.types, b.ntypes) ||
        !same_list(a.attrs, a.nattrs, b.attrs, b.nattrs) ||
        !same_list(a.purposes, a.npurposes, b.purposes, b.npurposes) || a.actions != b.actions ||
        a.personal != b.personal || !same_str(a.consent_scope, b.consent_scope) ||
        !same_str(a.resident_attr, b.resident_attr) || a.valid_from != b.valid_from ||
        a.valid_until != b.valid_until || a.rate_per_minute != b.rate_per_minute ||
        !same_str(a.description, b.description))
        fuzz_fail("the agreement changed on its way through JSON");
    xc_agreement_release(&b);
    json_decref(out);
    xc_agreement_release(&a);
    json_decref(body);
    return 0;
}
