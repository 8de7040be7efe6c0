/*
 * orion-standin: a small stand-in for a town's Orion (NGSI-v2) for tests of
 * the hub's forwarding. In memory, one store per Fiware-Service and exact
 * Fiware-ServicePath; Orion's status codes, error bodies, Location and
 * Fiware-Total-Count; Fiware-Correlator echoed.
 *
 *   orion-standin [--port N] [--token T] [--token-endpoint --client-id ID
 *                 --client-secret S [--expires-in SECONDS]]
 *
 * --port 0 (the default) picks a free port; "port N" is printed on stdout
 * once listening. --token: every NGSI request needs "Authorization: Bearer
 * T" (401 otherwise). --token-endpoint: POST /token issues T to the client
 * (client_secret_basic, grant_type=client_credentials).
 *
 * For tests: POST /__control {"mode": "normal" | "slow" | "garbage" | "huge"
 * | "close" | "status500" | "status401once", "delay_ms": N} changes how NGSI
 * requests are answered (slow waits delay_ms first; huge streams 17 MiB;
 * close drops the connection unanswered; status401once refuses the next
 * request only). GET /__stats: {"connections", "requests", "token_requests",
 * "last_headers"} (the NGSI request's headers as they arrived).
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BODY_MAX  (1024 * 1024)
#define HUGE_SIZE (17u * 1024u * 1024u)

static struct {
    pthread_mutex_t mu;
    json_t *store; /* {service: {path: [entity, ...]}} */
    json_t *last_headers;
    long connections, requests, token_requests;
    char mode[32];
    long delay_ms;
    const char *token, *client_id, *client_secret;
    long expires_in;
    int token_endpoint;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER, .mode = "normal", .expires_in = 3600};

struct body {
    char *buf;
    size_t len;
    int toobig;
};

/* ---- replies ---- */

static enum MHD_Result send_bytes(struct MHD_Connection *c, unsigned status, const char *ctype,
                                  const char *data, size_t len, const char *location)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (ctype)
        MHD_add_response_header(r, "Content-Type", ctype);
    if (location)
        MHD_add_response_header(r, "Location", location);
    const char *corr = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Fiware-Correlator");
    MHD_add_response_header(r, "Fiware-Correlator", corr ? corr : "standin-correlator");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *j,
                                 const char *total)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (total)
        MHD_add_response_header(r, "Fiware-Total-Count", total);
    const char *corr = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Fiware-Correlator");
    MHD_add_response_header(r, "Fiware-Correlator", corr ? corr : "standin-correlator");
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *error,
                                  const char *description)
{
    return send_json(c, status, json_pack("{s:s, s:s}", "error", error, "description", description),
                     NULL);
}

static enum MHD_Result not_found(struct MHD_Connection *c)
{
    return send_error(c, 404, "NotFound",
                      "The requested entity has not been found. Check type and id");
}

static enum MHD_Result empty(struct MHD_Connection *c, unsigned status, const char *location)
{
    return send_bytes(c, status, NULL, "", 0, location);
}

/* ---- the store ---- */

static const char *arg(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

/* The entity list for the request's service and path (created on demand). */
static json_t *entities_of(struct MHD_Connection *c)
{
    const char *svc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Fiware-Service");
    const char *path = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Fiware-ServicePath");
    svc = svc ? svc : "";
    path = path && *path ? path : "/";
    json_t *s = json_object_get(S.store, svc);
    if (!s) {
        s = json_object();
        json_object_set_new(S.store, svc, s);
    }
    json_t *list = json_object_get(s, path);
    if (!list) {
        list = json_array();
        json_object_set_new(s, path, list);
    }
    return list;
}

/* Whether csv (comma-separated) holds word; csv NULL holds everything. */
static int in_list(const char *csv, const char *word)
{
    if (!csv)
        return 1;
    size_t n = strlen(word);
    for (const char *p = csv; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0)
            return 1;
        p += len + (e ? 1 : 0);
    }
    return 0;
}

static int has_option(const char *options, const char *opt)
{
    return options && in_list(options, opt);
}

/* An attribute in normalized form from what a client sent. */
static json_t *normalize_attr(json_t *v, int key_values)
{
    json_t *val = key_values ? v : json_object_get(v, "value");
    const char *type = key_values ? NULL : json_string_value(json_object_get(v, "type"));
    if (!type) {
        type = json_is_string(val)                         ? "Text"
               : json_is_number(val)                       ? "Number"
               : json_is_boolean(val)                      ? "Boolean"
               : json_is_object(val) || json_is_array(val) ? "StructuredValue"
                                                           : "None";
    }
    json_t *md = key_values ? NULL : json_object_get(v, "metadata");
    return json_pack("{s:s, s:O, s:O}", "type", type, "value", val ? val : json_null(), "metadata",
                     md ? md : json_object());
}

/* Copies the attributes of src (a client's entity, or attrs) into e. */
static void put_attrs(json_t *e, json_t *src, int key_values)
{
    const char *k;
    json_t *v;
    json_object_foreach(src, k, v)
    {
        if (strcmp(k, "id") != 0 && strcmp(k, "type") != 0)
            json_object_set_new(e, k, normalize_attr(v, key_values));
    }
}

static json_t *find(json_t *list, const char *id, const char *type, size_t *idx, int *many)
{
    json_t *hit = NULL;
    size_t i;
    json_t *e;
    *many = 0;
    json_array_foreach(list, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "id")), id) == 0 &&
            (!type || strcmp(json_string_value(json_object_get(e, "type")), type) == 0)) {
            if (hit)
                *many = 1;
            hit = e;
            if (idx)
                *idx = i;
        }
    }
    return hit;
}

/* The entity as Orion renders it: normalized, keyValues or values. */
static json_t *render(json_t *e, const char *attrs, const char *options, int with_id)
{
    int kv = has_option(options, "keyValues"), values = has_option(options, "values");
    json_t *out = values ? json_array() : json_object();
    if (with_id && !values) {
        json_object_set(out, "id", json_object_get(e, "id"));
        json_object_set(out, "type", json_object_get(e, "type"));
    }
    const char *k;
    json_t *v;
    json_object_foreach(e, k, v)
    {
        if (!strcmp(k, "id") || !strcmp(k, "type") || !in_list(attrs, k))
            continue;
        if (values)
            json_array_append(out, json_object_get(v, "value"));
        else
            json_object_set(out, k, kv ? json_object_get(v, "value") : v);
    }
    return out;
}

struct query {
    const char *ids, *types, *pattern, *attrs, *options;
    const char *q; /* statements "name==value" or "name=='value'" joined by ';' */
    json_t *specs; /* op/query's "entities", or NULL */
    long limit, offset;
};

/* One q statement "name==value" (value optionally in single quotes) against
 * the attribute's value (a string, or a number compared as written). -1 for
 * a statement the stand-in does not understand. */
static int q_statement(json_t *e, const char *st, size_t len)
{
    const char *eq = NULL;
    for (size_t i = 0; i + 1 < len; i++)
        if (st[i] == '=' && st[i + 1] == '=') {
            eq = st + i;
            break;
        }
    if (!eq || eq == st)
        return -1;
    char name[257], want[257];
    size_t nl = (size_t)(eq - st), vl = len - nl - 2;
    const char *v = eq + 2;
    if (nl >= sizeof name || vl >= sizeof want)
        return -1;
    if (vl >= 2 && v[0] == '\'' && v[vl - 1] == '\'') {
        v++;
        vl -= 2;
    }
    memcpy(name, st, nl);
    name[nl] = '\0';
    memcpy(want, v, vl);
    want[vl] = '\0';
    json_t *a = json_object_get(e, name);
    json_t *val = json_object_get(a, "value");
    if (json_is_string(val))
        return strcmp(json_string_value(val), want) == 0;
    if (json_is_number(val))
        return json_number_value(val) == strtod(want, NULL);
    return 0;
}

/* q as Orion reads it: split at every ';', every statement must hold. */
static int q_matches(json_t *e, const char *q)
{
    if (!q)
        return 1;
    const char *p = q;
    for (;;) {
        size_t len = strcspn(p, ";");
        if (len && q_statement(e, p, len) != 1)
            return 0;
        if (!p[len])
            return 1;
        p += len + 1;
    }
}

static int matches(json_t *e, const struct query *q, regex_t *re)
{
    if (!q_matches(e, q->q))
        return 0;
    const char *id = json_string_value(json_object_get(e, "id"));
    const char *type = json_string_value(json_object_get(e, "type"));
    if (q->specs) {
        size_t i;
        json_t *s;
        json_array_foreach(q->specs, i, s)
        {
            const char *sid = json_string_value(json_object_get(s, "id"));
            const char *spat = json_string_value(json_object_get(s, "idPattern"));
            const char *stype = json_string_value(json_object_get(s, "type"));
            if (stype && strcmp(stype, type) != 0)
                continue;
            if (sid && strcmp(sid, id) != 0)
                continue;
            if (spat) {
                regex_t r;
                if (regcomp(&r, spat, REG_EXTENDED | REG_NOSUB) != 0)
                    continue;
                int m = regexec(&r, id, 0, NULL, 0) == 0;
                regfree(&r);
                if (!m)
                    continue;
            }
            return 1;
        }
        return json_array_size(q->specs) == 0;
    }
    return in_list(q->ids, id) && in_list(q->types, type) &&
           (!re || regexec(re, id, 0, NULL, 0) == 0);
}

static enum MHD_Result run_query(struct MHD_Connection *c, const struct query *q)
{
    regex_t re;
    if (q->pattern && regcomp(&re, q->pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return send_error(c, 400, "BadRequest", "Invalid regex for entity id pattern");
    json_t *out = json_array();
    long total = 0;
    size_t i;
    json_t *e;
    json_array_foreach(entities_of(c), i, e)
    {
        if (!matches(e, q, q->pattern ? &re : NULL))
            continue;
        if (total >= q->offset && total < q->offset + q->limit)
            json_array_append_new(out, render(e, q->attrs, q->options, 1));
        total++;
    }
    if (q->pattern)
        regfree(&re);
    char tc[32];
    snprintf(tc, sizeof tc, "%ld", total);
    return send_json(c, 200, out, has_option(q->options, "count") ? tc : NULL);
}

static int parse_paging(struct MHD_Connection *c, struct query *q)
{
    const char *l = arg(c, "limit"), *o = arg(c, "offset");
    char *end;
    q->limit = 20;
    q->offset = 0;
    if (l) {
        q->limit = strtol(l, &end, 10);
        if (*end || q->limit < 1 || q->limit > 1000)
            return 0;
    }
    if (o) {
        q->offset = strtol(o, &end, 10);
        if (*end || q->offset < 0)
            return 0;
    }
    return 1;
}

/* ---- NGSI handlers (under S.mu) ---- */

static enum MHD_Result ngsi(struct MHD_Connection *c, const char *url, const char *method,
                            json_t *body)
{
    const char *options = arg(c, "options");
    int kv = has_option(options, "keyValues");
    if (!strcmp(url, "/version") && !strcmp(method, "GET"))
        return send_json(
            c, 200,
            json_pack("{s:{s:s, s:s}}", "orion", "version", "3.10.1", "release_date", "standin"),
            NULL);
    if (!strcmp(url, "/v2/entities") && !strcmp(method, "GET")) {
        struct query q = {arg(c, "id"),
                          arg(c, "type"),
                          arg(c, "idPattern"),
                          arg(c, "attrs"),
                          options,
                          arg(c, "q"),
                          NULL,
                          0,
                          0};
        if (!parse_paging(c, &q))
            return send_error(c, 400, "BadRequest", "Bad pagination limit or offset");
        return run_query(c, &q);
    }
    if (!strcmp(url, "/v2/entities") && !strcmp(method, "POST")) {
        const char *id = json_string_value(json_object_get(body, "id"));
        const char *type = json_string_value(json_object_get(body, "type"));
        if (!id)
            return send_error(c, 400, "BadRequest", "entity id is missing");
        type = type ? type : "Thing";
        json_t *list = entities_of(c);
        int many;
        if (find(list, id, type, NULL, &many))
            return send_error(c, 422, "Unprocessable", "Already Exists");
        json_t *e = json_pack("{s:s, s:s}", "id", id, "type", type);
        put_attrs(e, body, kv);
        json_array_append_new(list, e);
        char loc[600];
        snprintf(loc, sizeof loc, "/v2/entities/%s?type=%s", id, type);
        return empty(c, 201, loc);
    }
    if (!strcmp(url, "/v2/op/query") && !strcmp(method, "POST")) {
        json_t *attrs = json_object_get(body, "attrs");
        char alist[1024] = "";
        size_t i;
        json_t *a;
        json_array_foreach(attrs, i, a)
        {
            size_t n = strlen(alist);
            snprintf(alist + n, sizeof alist - n, "%s%s", n ? "," : "", json_string_value(a));
        }
        json_t *specs = json_object_get(body, "entities");
        struct query q = {
            NULL,
            NULL,
            NULL,
            json_array_size(attrs) ? alist : NULL,
            options,
            json_string_value(json_object_get(json_object_get(body, "expression"), "q")),
            json_is_array(specs) ? specs : json_array(),
            0,
            0};
        enum MHD_Result r = parse_paging(c, &q)
                                ? run_query(c, &q)
                                : send_error(c, 400, "BadRequest", "Bad pagination limit");
        if (!json_is_array(specs))
            json_decref(q.specs);
        return r;
    }
    if (!strcmp(url, "/v2/op/update") && !strcmp(method, "POST")) {
        const char *action = json_string_value(json_object_get(body, "actionType"));
        json_t *ents = json_object_get(body, "entities");
        if (!action || !json_is_array(ents))
            return send_error(c, 400, "BadRequest", "actionType and entities are required");
        json_t *list = entities_of(c);
        size_t i;
        json_t *in;
        json_array_foreach(ents, i, in)
        {
            const char *id = json_string_value(json_object_get(in, "id"));
            const char *type = json_string_value(json_object_get(in, "type"));
            if (!id)
                return send_error(c, 400, "BadRequest", "entity id is missing");
            size_t at;
            int many;
            json_t *e = find(list, id, type, &at, &many);
            if (!strcmp(action, "delete")) {
                if (e)
                    json_array_remove(list, at);
                continue;
            }
            if (!e && !strcmp(action, "update"))
                return not_found(c);
            if (!e) {
                e = json_pack("{s:s, s:s}", "id", id, "type", type ? type : "Thing");
                json_array_append_new(list, e);
            }
            put_attrs(e, in, kv);
        }
        return empty(c, 204, NULL);
    }
    if (strncmp(url, "/v2/entities/", 13) != 0)
        return send_error(c, 400, "BadRequest", "service not found");

    /* /v2/entities/{id}[/attrs[/{name}]] */
    char id[512];
    const char *rest = url + 13, *slash = strchr(rest, '/');
    size_t idlen = slash ? (size_t)(slash - rest) : strlen(rest);
    if (idlen == 0 || idlen >= sizeof id)
        return send_error(c, 400, "BadRequest", "Invalid characters in entity id");
    memcpy(id, rest, idlen);
    id[idlen] = '\0';
    const char *sub = slash ? slash : "";
    size_t at;
    int many;
    json_t *list = entities_of(c);
    json_t *e = find(list, id, arg(c, "type"), &at, &many);
    if (!e)
        return not_found(c);
    if (many)
        return send_error(c, 409, "TooManyResults",
                          "More than one matching entity. Please refine your query");
    if (!*sub && !strcmp(method, "GET"))
        return send_json(c, 200, render(e, arg(c, "attrs"), options, 1), NULL);
    if (!*sub && !strcmp(method, "DELETE")) {
        json_array_remove(list, at);
        return empty(c, 204, NULL);
    }
    if (!strcmp(sub, "/attrs") && !strcmp(method, "GET"))
        return send_json(c, 200, render(e, arg(c, "attrs"), options, 0), NULL);
    if (!strcmp(sub, "/attrs") && (!strcmp(method, "PATCH") || !strcmp(method, "POST"))) {
        if (!json_is_object(body))
            return send_error(c, 400, "ParseError", "Errors found in incoming JSON buffer");
        if (!strcmp(method, "PATCH")) {
            const char *k;
            json_t *v;
            json_object_foreach(body, k, v)
            {
                if (!json_object_get(e, k))
                    return send_error(c, 422, "PartialUpdate",
                                      "one or more of the attributes in the request do not exist");
            }
        }
        put_attrs(e, body, kv);
        return empty(c, 204, NULL);
    }
    if (!strncmp(sub, "/attrs/", 7) && !strcmp(method, "GET")) {
        json_t *a = json_object_get(e, sub + 7);
        if (!a || !strcmp(sub + 7, "id") || !strcmp(sub + 7, "type"))
            return send_error(c, 404, "NotFound", "The entity does not have such an attribute");
        return send_json(c, 200, json_incref(a), NULL);
    }
    return send_error(c, 405, "MethodNotAllowed", "method not allowed");
}

/* ---- the token endpoint ---- */

static int form_value(const char *form, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);
    for (const char *p = form; p && *p;) {
        const char *e = strchr(p, '&');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > n && p[n] == '=' && !strncmp(p, name, n) && len - n - 1 < outlen) {
            memcpy(out, p + n + 1, len - n - 1);
            out[len - n - 1] = '\0';
            MHD_http_unescape(out);
            return 1;
        }
        p = e ? e + 1 : NULL;
    }
    return 0;
}

static enum MHD_Result token(struct MHD_Connection *c, const char *form)
{
    char *pass = NULL;
    char *user = MHD_basic_auth_get_username_password(c, &pass);
    char grant[64];
    int ok = user && pass && form && form_value(form, "grant_type", grant, sizeof grant) &&
             !strcmp(grant, "client_credentials");
    if (ok) {
        MHD_http_unescape(user);
        MHD_http_unescape(pass);
        ok = !strcmp(user, S.client_id) && !strcmp(pass, S.client_secret);
    }
    MHD_free(user);
    MHD_free(pass);
    if (!ok)
        return send_json(c, 401, json_pack("{s:s}", "error", "invalid_client"), NULL);
    return send_json(c, 200,
                     json_pack("{s:s, s:s, s:i}", "access_token", S.token, "token_type", "Bearer",
                               "expires_in", (int)S.expires_in),
                     NULL);
}

/* ---- faults and the dispatcher ---- */

static ssize_t huge_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    if (pos >= HUGE_SIZE)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = HUGE_SIZE - pos < max ? (size_t)(HUGE_SIZE - pos) : max;
    memset(buf, pos == 0 ? '[' : ' ', n);
    return (ssize_t)n;
}

static enum MHD_Result record_header(void *cls, enum MHD_ValueKind kind, const char *k,
                                     const char *v)
{
    (void)kind;
    json_object_set_new(cls, k, json_string(v ? v : ""));
    return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)version;
    struct body *b = *con_cls;
    if (!b) {
        *con_cls = calloc(1, sizeof *b);
        return MHD_YES;
    }
    if (*upload_size) {
        if (b->len + *upload_size > BODY_MAX) {
            b->toobig = 1;
        } else {
            b->buf = realloc(b->buf, b->len + *upload_size + 1);
            memcpy(b->buf + b->len, upload, *upload_size);
            b->len += *upload_size;
            b->buf[b->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (b->toobig)
        return send_error(c, 413, "RequestEntityTooLarge", "payload too large");
    json_t *body = NULL;
    if (b->len) {
        body = json_loadb(b->buf, b->len, 0, NULL);
    }

    enum MHD_Result r;
    pthread_mutex_lock(&S.mu);
    if (!strcmp(url, "/__stats")) {
        r = send_json(c, 200,
                      json_pack("{s:i, s:i, s:i, s:O}", "connections", (int)S.connections,
                                "requests", (int)S.requests, "token_requests",
                                (int)S.token_requests, "last_headers", S.last_headers),
                      NULL);
    } else if (!strcmp(url, "/__control")) {
        const char *mode = json_string_value(json_object_get(body, "mode"));
        if (mode)
            snprintf(S.mode, sizeof S.mode, "%s", mode);
        if (json_is_integer(json_object_get(body, "delay_ms")))
            S.delay_ms = (long)json_integer_value(json_object_get(body, "delay_ms"));
        r = empty(c, 204, NULL);
    } else if (!strcmp(url, "/token") && S.token_endpoint && !strcmp(method, "POST")) {
        S.token_requests++;
        r = token(c, b->buf);
    } else {
        S.requests++;
        json_decref(S.last_headers);
        S.last_headers = json_object();
        MHD_get_connection_values(c, MHD_HEADER_KIND, record_header, S.last_headers);
        char mode[32];
        snprintf(mode, sizeof mode, "%s", S.mode);
        long delay = S.delay_ms;
        if (!strcmp(mode, "status401once"))
            snprintf(S.mode, sizeof S.mode, "normal");
        const char *authz = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        int authed =
            !S.token || (authz && !strncmp(authz, "Bearer ", 7) && !strcmp(authz + 7, S.token));
        if (!strcmp(mode, "slow")) {
            pthread_mutex_unlock(&S.mu);
            usleep((useconds_t)delay * 1000);
            pthread_mutex_lock(&S.mu);
        }
        if (!strcmp(mode, "close")) {
            r = MHD_NO;
        } else if (!strcmp(mode, "garbage")) {
            static const char junk[] = "<html>this is not JSON {\"";
            r = send_bytes(c, 200, "application/json", junk, sizeof junk - 1, NULL);
        } else if (!strcmp(mode, "huge")) {
            struct MHD_Response *resp =
                MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 65536, huge_reader, NULL, NULL);
            MHD_add_response_header(resp, "Content-Type", "application/json");
            r = MHD_queue_response(c, 200, resp);
            MHD_destroy_response(resp);
        } else if (!strcmp(mode, "status500")) {
            r = send_error(c, 500, "InternalServerError", "standin failure");
        } else if (!authed || !strcmp(mode, "status401once")) {
            r = send_error(c, 401, "Unauthorized", "a valid bearer token is required");
        } else if (b->len && !body) {
            r = send_error(c, 400, "ParseError", "Errors found in incoming JSON buffer");
        } else {
            r = ngsi(c, url, method, body);
        }
    }
    pthread_mutex_unlock(&S.mu);
    json_decref(body);
    return r;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct body *b = *con_cls;
    if (b) {
        free(b->buf);
        free(b);
    }
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    (void)c;
    (void)socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        pthread_mutex_lock(&S.mu);
        S.connections++;
        pthread_mutex_unlock(&S.mu);
    }
}

int main(int argc, char **argv)
{
    long port = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--token-endpoint")) {
            S.token_endpoint = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "orion-standin: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--port"))
            port = strtol(v, NULL, 10);
        else if (!strcmp(a, "--token"))
            S.token = v;
        else if (!strcmp(a, "--client-id"))
            S.client_id = v;
        else if (!strcmp(a, "--client-secret"))
            S.client_secret = v;
        else if (!strcmp(a, "--expires-in"))
            S.expires_in = strtol(v, NULL, 10);
        else {
            fprintf(stderr, "orion-standin: unknown option %s\n", a);
            return 2;
        }
    }
    if (S.token_endpoint && (!S.token || !S.client_id || !S.client_secret)) {
        fprintf(stderr, "orion-standin: --token-endpoint needs --token, --client-id and "
                        "--client-secret\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    S.store = json_object();
    S.last_headers = json_object();
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
        (uint16_t)port, NULL, NULL, handle, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)60, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "orion-standin: cannot listen on port %ld\n", port);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("port %u\n", (unsigned)info->port);
    fflush(stdout);
    for (;;)
        pause();
}
