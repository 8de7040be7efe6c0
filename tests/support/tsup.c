#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <strings.h>
#include <sys/stat.h>

#include <libpq-fe.h>

#include "core/config.h"
#include "core/crypto.h"
#include "core/http.h"
#include "core/log.h"
#include "core/migrate.h"
#include "tests/support/tsup.h"

/* ---- database ---- */

static char *admin;       /* superuser, dbname=postgres */
static char *db_conninfo; /* superuser, our database */
static char *private_dir; /* our own cluster, if we started one */
static char db_name[64];

static char *run_capture(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    char line[1024];
    char *last = NULL;
    while (fgets(line, sizeof line, p)) {
        free(last);
        line[strcspn(line, "\n")] = '\0';
        last = xstrdup(line);
    }
    if (pclose(p) != 0) {
        free(last);
        return NULL;
    }
    return last;
}

void tsup_exec(const char *conninfo, const char *sql)
{
    PGconn *pg = PQconnectdb(conninfo);
    if (PQstatus(pg) != CONNECTION_OK)
        fail_msg("connect %s: %s", conninfo, PQerrorMessage(pg));
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(pg);
}

const char *tsup_value(const char *conninfo, const char *sql)
{
    static char out[1024];
    PGconn *pg = PQconnectdb(conninfo);
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    xsnprintf(out, sizeof out, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    PQfinish(pg);
    return out;
}

const char *tsup_admin_conninfo(void)
{
    return admin;
}

static char *with_dbname(const char *ci, const char *db)
{
    const char *at = strstr(ci, "dbname=postgres");
    if (!at)
        return xasprintf("%s dbname=%s", ci, db);
    return xasprintf("%.*sdbname=%s%s", (int)(at - ci), ci, db, at + strlen("dbname=postgres"));
}

const char *tsup_db_create(const char *prefix)
{
    const char *env = getenv("RENKEI_TEST_DB");
    if (env && *env) {
        admin = xstrdup(env);
    } else {
        const char *src = getenv("RENKEI_SRC");
        char tmpl[] = "/tmp/renkei-ctest.XXXXXX";
        if (!src || !mkdtemp(tmpl))
            return NULL;
        chmod(tmpl, 0755);
        private_dir = xstrdup(tmpl);
        char *cmd = xasprintf("'%s/ops/pg' start '%s/pg'", src, private_dir);
        admin = run_capture(cmd);
        free(cmd);
        if (!admin)
            return NULL;
    }
    unsigned char r[4];
    FILE *f = fopen("/dev/urandom", "r");
    if (!f || fread(r, 1, 4, f) != 4)
        return NULL;
    fclose(f);
    snprintf(db_name, sizeof db_name, "%s_%02x%02x%02x%02x", prefix, r[0], r[1], r[2], r[3]);
    char *sql = xasprintf("CREATE DATABASE %s", db_name);
    tsup_exec(admin, sql);
    free(sql);
    db_conninfo = with_dbname(admin, db_name);
    if (core_migrate_run(db_conninfo, false, false) != 0)
        return NULL;
    return db_conninfo;
}

void tsup_db_drop(void)
{
    if (db_name[0]) {
        char *sql = xasprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", db_name);
        tsup_exec(admin, sql);
        free(sql);
    }
    if (private_dir) {
        char *cmd = xasprintf("'%s/ops/pg' destroy '%s/pg' >/dev/null 2>&1; rmdir '%s'",
                              getenv("RENKEI_SRC"), private_dir, private_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", private_dir);
        free(cmd);
        free(private_dir);
        private_dir = NULL;
    }
    free(db_conninfo);
    free(admin);
    db_conninfo = admin = NULL;
}

/* ---- HTTP ---- */

static struct core_http_server *srv;
static char base[64];

void tsup_http_start(const struct core_router *router)
{
    struct core_config cfg = {
        .listen = "127.0.0.1:0",
        .listen_host = "127.0.0.1",
        .threads = 4,
        .max_body = 1 << 20,
    };
    int port = 0;
    srv = core_http_bind(&cfg, &port);
    assert_non_null(srv);
    assert_true(core_http_start(srv, &cfg, router));
    assert_true(port > 0);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void tsup_http_stop(void)
{
    core_http_stop(srv, 5, NULL);
    srv = NULL;
    curl_global_cleanup();
}

const char *tsup_base(void)
{
    return base;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct tsup_resp *r = arg;
    strbuf_add(&r->body, p, size * n);
    return size * n;
}

static void copy_header(const char *line, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    if (len <= nlen + 1 || strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
        return;
    const char *v = line + nlen + 1;
    while (*v == ' ')
        v++;
    size_t vlen = (size_t)(line + len - v);
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
        vlen--;
    if (vlen >= outlen)
        vlen = outlen - 1;
    memcpy(out, v, vlen);
    out[vlen] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct tsup_resp *r = arg;
    size_t len = size * n;
    copy_header(p, len, "Content-Type", r->content_type, sizeof r->content_type);
    copy_header(p, len, "X-Request-Id", r->request_id, sizeof r->request_id);
    copy_header(p, len, "Allow", r->allow, sizeof r->allow);
    copy_header(p, len, "Fiware-Total-Count", r->total, sizeof r->total);
    copy_header(p, len, "Location", r->location, sizeof r->location);
    copy_header(p, len, "ETag", r->etag, sizeof r->etag);
    copy_header(p, len, "WWW-Authenticate", r->www_authenticate, sizeof r->www_authenticate);
    return len;
}

void tsup_curl_sink(CURL *c, struct tsup_resp *r)
{
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
}

struct source {
    size_t left;
};

static size_t on_read(char *p, size_t size, size_t n, void *arg)
{
    struct source *s = arg;
    size_t k = size * n < s->left ? size * n : s->left;
    memset(p, ' ', k);
    s->left -= k;
    return k;
}

void tsup_request(struct tsup_resp *r, const char *method, const char *path,
                  const char *const *headers, const char *body, size_t chunked_len)
{
    memset(r, 0, sizeof *r);
    strbuf_init(&r->body, 1 << 20);
    CURL *c = curl_easy_init();
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    struct curl_slist *h = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    struct source src = {chunked_len};
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (chunked_len) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &src);
        h = curl_slist_append(h, "Transfer-Encoding: chunked");
        h = curl_slist_append(h, "Expect:"); /* send the body without waiting */
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    r->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

void tsup_resp_release(struct tsup_resp *r)
{
    strbuf_release(&r->body);
}

json_t *tsup_json(struct tsup_resp *r)
{
    json_error_t e;
    json_t *j = json_loadb(r->body.buf ? r->body.buf : "", r->body.len, 0, &e);
    if (!j)
        fail_msg("reply %ld is not JSON: %s", r->status, r->body.buf ? r->body.buf : "(empty)");
    return j;
}

void tsup_assert_error(struct tsup_resp *r, long status, const char *name)
{
    if (r->status != status)
        fail_msg("expected %ld %s, got %ld: %s", status, name, r->status,
                 r->body.buf ? r->body.buf : "");
    assert_string_equal(r->content_type, "application/json");
    json_t *j = tsup_json(r);
    assert_string_equal(json_string_value(json_object_get(j, "error")), name);
    assert_true(json_is_string(json_object_get(j, "description")));
    assert_int_equal(json_object_size(j), 2);
    json_decref(j);
    tsup_resp_release(r);
}

/* ---- the master secret ---- */

static char secret_dir[] = "/tmp/renkei-test-secret.XXXXXX";

bool tsup_secret_create(void)
{
    if (!mkdtemp(secret_dir))
        return false;
    char *path = xasprintf("%s/secret", secret_dir);
    char *err = NULL;
    bool ok = core_secret_load(path, &err);
    if (!ok)
        fprintf(stderr, "tsup: %s\n", err);
    free(path);
    free(err);
    return ok;
}

bool tsup_secret_remove(void)
{
    core_secret_release();
    char *cmd = xasprintf("rm -rf '%s'", secret_dir);
    int rc = system(cmd);
    free(cmd);
    return rc == 0;
}
