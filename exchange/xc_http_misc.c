/*
 * GET /version (Orion's shape, so FIWARE tools that probe it recognise an
 * NGSI-v2 broker), GET /v2 (entry points), and the entity types.
 */
#include <sys/utsname.h>

#include <curl/curl.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <openssl/crypto.h>

#include "exchange/xc_cross.h"
#include "exchange/xc_http.h"

/* The Orion release whose NGSI-v2 behaviour this store follows. */
#define ORION_COMPAT "3.10.1"

static uint64_t started_us;

static void get_version(struct core_req *req)
{
    xc_correlator(req);
    uint64_t up = (core_now_us() - started_us) / 1000000;
    char uptime[64];
    xsnprintf(uptime, sizeof uptime, "%llu d, %llu h, %llu m, %llu s",
              (unsigned long long)(up / 86400), (unsigned long long)(up / 3600 % 24),
              (unsigned long long)(up / 60 % 60), (unsigned long long)(up % 60));
    struct utsname u;
    const char *machine = uname(&u) == 0 ? u.machine : "unknown";
    char mhd[32];
    xsnprintf(mhd, sizeof mhd, "%s", MHD_get_version());
    json_t *libs = json_pack("{s:s, s:s, s:s, s:s, s:i}", "libcurl",
                             curl_version_info(CURLVERSION_NOW)->version, "libmicrohttpd", mhd,
                             "openssl", OpenSSL_version(OPENSSL_VERSION), "jansson",
                             JANSSON_VERSION, "libpq", PQlibVersion());
    json_t *orion =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "version", ORION_COMPAT,
                  "uptime", uptime, "git_hash", "nogitversion", "compile_time", "nodate",
                  "compiled_by", "renkei", "compiled_in", "renkei", "release_date", "nodate",
                  "machine", machine, "doc", "https://fiware-orion.rtfd.io/", "libversions", libs);
    xc_reply_json(req, 200,
                  json_pack("{s:o, s:{s:s}}", "orion", orion, "renkei", "version", RENKEI_VERSION));
}

static void get_v2(struct core_req *req)
{
    xc_correlator(req);
    xc_reply_json(req, 200,
                  json_pack("{s:s, s:s, s:s, s:s}", "entities_url", "/v2/entities", "types_url",
                            "/v2/types", "subscriptions_url", "/v2/subscriptions",
                            "registrations_url", "/v2/registrations"));
}

/* The hosted store answers for its own entities only: it holds no context
 * provider registrations, and refuses to create one rather than accept a
 * forwarding it would not do. */
static void get_registrations(struct core_req *req)
{
    struct xc_ngsi n;
    if (!xc_accept(req, false) || !xc_ngsi_begin(req, &n, XC_READ, XC_OPT_COUNT))
        return;
    if (n.opts & XC_OPT_COUNT)
        core_reply_header(req, "Fiware-Total-Count", "0");
    xc_reply_json(req, 200, json_array());
}

static void post_registrations(struct core_req *req)
{
    struct xc_ngsi n;
    if (!xc_ngsi_begin(req, &n, XC_WRITE, 0))
        return;
    core_reply_error(req, CORE_ERR_NOT_IMPLEMENTED,
                     "the hosted store does not forward to context providers: registrations "
                     "are not supported");
}

/* Another town's types: those its agreement covers (the store narrows
 * the SQL), with the agreed attributes only. */
static bool cross_types(struct xc_ngsi *n, const char *type)
{
    if (!n->x)
        return true;
    if (n->remote) {
        xc_cross_deny(n, XC_DENY_TYPE,
                      "the types of a town's own city OS are listed in the catalogue "
                      "(/exchange/v1/catalog), not read through the hub");
        return false;
    }
    return xc_cross_decide(n, XC_AG_READ, type ? &type : NULL, type ? 1 : 0);
}

static void narrow_type_attrs(const struct xc_ngsi *n, json_t *t)
{
    struct xc_render r = {0};
    xc_cross_render(n, &r);
    json_t *attrs = json_object_get(t, "attrs");
    if (!r.restricted || !json_is_object(attrs))
        return;
    const char *k;
    json_t *v, *tmp;
    json_object_foreach_safe(attrs, tmp, k, v)
    {
        size_t i = 0;
        while (i < r.nallow && strcmp(r.allow[i], k) != 0)
            i++;
        if (i == r.nallow)
            json_object_del(attrs, k);
    }
}

static void get_types(struct core_req *req)
{
    struct xc_ngsi n;
    long limit, offset, total = -1;
    json_t *out;
    if (!xc_accept(req, false) || !xc_ngsi_begin(req, &n, XC_READ, XC_OPT_COUNT | XC_OPT_VALUES) ||
        !xc_read_page(req, &limit, &offset) || !cross_types(&n, NULL))
        return;
    enum xc_rc rc = xc_store_types(&n, NULL, limit, offset, n.opts & XC_OPT_VALUES, &out, &total);
    if (rc != XC_OK) {
        xc_reply_rc(req, rc, NULL);
        return;
    }
    size_t i;
    json_t *t;
    json_array_foreach(out, i, t) narrow_type_attrs(&n, t);
    if (n.opts & XC_OPT_COUNT)
        core_reply_header(req, "Fiware-Total-Count", core_psprintf(req->pool, "%ld", total));
    xc_reply_json(req, 200, out);
}

static void get_type(struct core_req *req)
{
    struct xc_ngsi n;
    const char *type;
    json_t *out;
    if (!xc_accept(req, false) || !xc_ngsi_begin(req, &n, XC_READ, 0) ||
        !xc_path_name(req, "type", "entity type", &type) || !cross_types(&n, type))
        return;
    enum xc_rc rc = xc_store_types(&n, type, 1, 0, false, &out, NULL);
    if (rc != XC_OK) {
        xc_reply_rc(req, rc, NULL);
        return;
    }
    json_t *t = json_array_get(out, 0);
    if (!t) {
        json_decref(out);
        core_reply_error(req, CORE_ERR_NOT_FOUND, "Entity type not found");
        return;
    }
    narrow_type_attrs(&n, t);
    json_t *body = json_pack("{s:O, s:O}", "attrs", json_object_get(t, "attrs"), "count",
                             json_object_get(t, "count"));
    json_decref(out);
    xc_reply_json(req, 200, body);
}

void xc_misc_routes(struct core_router *r)
{
    static const struct core_route routes[] = {
        {CORE_GET, "/version", get_version, "NGSI-v2: broker version (Orion's shape)", "exchange",
         0},
        {CORE_GET, "/v2", get_v2, "NGSI-v2: entry points", "exchange", 0},
        {CORE_GET, "/v2/registrations", get_registrations,
         "NGSI-v2: context provider registrations (the hosted store holds none)", "exchange", 0},
        {CORE_POST, "/v2/registrations", post_registrations,
         "NGSI-v2: refused (the hosted store does not forward)", "exchange", XC_BODY_MAX},
        {CORE_GET, "/v2/types", get_types, "NGSI-v2: entity types with attributes and counts",
         "exchange", 0},
        {CORE_GET, "/v2/types/{type}", get_type, "NGSI-v2: one entity type", "exchange", 0},
    };
    started_us = core_now_us();
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
        core_router_add(r, &routes[i]);
}
