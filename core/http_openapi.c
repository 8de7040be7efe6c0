#include <ctype.h>
#include <stdlib.h>

#include "core/http.h"
#include "core/routes.h"
#include "core/strbuf.h"

static char *openapi_text;
static size_t openapi_len;

static char *operation_id(enum core_method m, const char *pattern)
{
    struct strbuf sb;
    strbuf_init(&sb, 512);
    const char *name = core_method_name(m);
    for (const char *p = name; *p; p++) {
        char c = (char)tolower((unsigned char)*p);
        strbuf_add(&sb, &c, 1);
    }
    bool upper = true;
    for (const char *p = pattern; *p; p++) {
        if (isalnum((unsigned char)*p)) {
            char c = upper ? (char)toupper((unsigned char)*p) : *p;
            strbuf_add(&sb, &c, 1);
            upper = false;
        } else {
            upper = true;
        }
    }
    return strbuf_detach(&sb, NULL);
}

void core_openapi_build(const struct core_router *r, const char *server_url)
{
    json_t *paths = json_object();
    for (size_t i = 0; i < core_router_count(r); i++) {
        const struct core_route *rt = core_router_at(r, i);
        json_t *item = json_object_get(paths, rt->pattern);
        if (!item) {
            item = json_object();
            json_object_set_new(paths, rt->pattern, item);
        }
        json_t *params = json_array();
        for (const char *p = strchr(rt->pattern, '{'); p; p = strchr(p + 1, '{')) {
            const char *close = strchr(p, '}');
            char *pname = xstrndup(p + 1, (size_t)(close - p - 1));
            json_array_append_new(params,
                                  json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", pname, "in", "path",
                                            "required", 1, "schema", "type", "string"));
            free(pname);
        }
        char *opid = operation_id(rt->method, rt->pattern);
        json_t *op =
            json_pack("{s:s, s:s, s:[s], s:{s:{s:s}, s:{s:s, s:{s:{s:{s:s}}}}}}", "operationId",
                      opid, "summary", rt->summary ? rt->summary : "", "tags",
                      rt->tag ? rt->tag : "core", "responses", "2XX", "description", "success",
                      "default", "description", "error: {\"error\", \"description\"}", "content",
                      "application/json", "schema", "$ref", "#/components/schemas/Error");
        free(opid);
        if (json_array_size(params))
            json_object_set(op, "parameters", params);
        json_decref(params);
        char method[16];
        const char *mn = core_method_name(rt->method);
        size_t k = 0;
        for (; mn[k] && k < sizeof method - 1; k++)
            method[k] = (char)tolower((unsigned char)mn[k]);
        method[k] = '\0';
        json_object_set_new(item, method, op);
    }
    json_t *doc =
        json_pack("{s:s, s:{s:s, s:s, s:s}, s:[{s:s}], s:o, s:{s:{s:{s:s, s:[s,s], s:{s:{s:s}, "
                  "s:{s:s}}}}}}",
                  "openapi", "3.1.0", "info", "title", "renkei", "version", RENKEI_VERSION,
                  "description", "Multi-tenant identity and data-exchange hub for municipalities",
                  "servers", "url", server_url, "paths", paths, "components", "schemas", "Error",
                  "type", "object", "required", "error", "description", "properties", "error",
                  "type", "string", "description", "type", "string");
    free(openapi_text);
    openapi_text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    openapi_len = openapi_text ? strlen(openapi_text) : 0;
    json_decref(doc);
}

void core_openapi_release(void)
{
    free(openapi_text);
    openapi_text = NULL;
}

static void core_handler_openapi(struct core_req *req)
{
    if (!openapi_text) {
        core_reply_error(req, CORE_ERR_UNAVAILABLE, "the API description is not built yet");
        return;
    }
    core_reply_header(req, "Cache-Control", "no-cache");
    core_reply_bytes(req, 200, "application/json", openapi_text, openapi_len);
}

static const struct core_route openapi_route = {
    CORE_GET,
    "/openapi.json",
    core_handler_openapi,
    "OpenAPI 3.1 description of every route",
    "core",
    0,
};

void core_openapi_routes(struct core_router *r)
{
    core_router_add(r, &openapi_route);
}
