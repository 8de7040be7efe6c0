#ifndef TSUP_H
#define TSUP_H

/*
 * Test support shared by the C tests that need a real PostgreSQL or a real
 * HTTP server on loopback: a fresh migrated database per test program, and
 * the core server in-process with a libcurl client.
 */
#include <curl/curl.h>
#include <jansson.h>

#include "core/router.h"
#include "core/strbuf.h"

/* ---- database ---- */

/* Creates a fresh database named prefix_<random> on RENKEI_TEST_DB (or on a
 * cluster of its own started with ops/pg), applies the migrations, and
 * returns its superuser conninfo (owned by tsup). NULL on failure. */
const char *tsup_db_create(const char *prefix);
/* Drops it (and stops the private cluster). */
void tsup_db_drop(void);
/* The superuser conninfo of the cluster's postgres database. */
const char *tsup_admin_conninfo(void);
/* Runs SQL as the superuser on conninfo; fails the test on error. */
void tsup_exec(const char *conninfo, const char *sql);
/* The first value of a query run as the superuser ("" for no rows); the
 * buffer is reused by the next call. */
const char *tsup_value(const char *conninfo, const char *sql);

/* ---- the master secret ---- */

/* Creates a master secret in a private temporary directory and loads it
 * (core_secret_load); false on failure. */
bool tsup_secret_create(void);
/* Forgets it and removes the directory; false if it cannot be removed. */
bool tsup_secret_remove(void);

/* ---- HTTP ---- */

/* Starts the core server on 127.0.0.1:<free port> with router. */
void tsup_http_start(const struct core_router *router);
void tsup_http_stop(void);
/* "http://127.0.0.1:<port>" */
const char *tsup_base(void);

struct tsup_resp {
    long status;
    struct strbuf body;
    char content_type[128];
    char request_id[160];
    char allow[64];
    char total[16];
    char location[256];
    char etag[64];
    char www_authenticate[256];
    CURLcode rc;
};

/* One request. headers: NULL-terminated "Name: value" lines or NULL. body:
 * sent as is; or, when body is NULL and chunked_len > 0, that many bytes
 * sent chunked. */
void tsup_request(struct tsup_resp *r, const char *method, const char *path,
                  const char *const *headers, const char *body, size_t chunked_len);
void tsup_resp_release(struct tsup_resp *r);
/* Points an easy handle's body and headers at r (for tests that drive curl
 * themselves, e.g. to reuse one connection). */
void tsup_curl_sink(CURL *c, struct tsup_resp *r);
/* The body as JSON (fails the test if it is not); the caller decrefs. */
json_t *tsup_json(struct tsup_resp *r);
/* Asserts an NGSI-style error reply {"error": name, "description": ...}
 * with the status and Content-Type application/json; releases r. */
void tsup_assert_error(struct tsup_resp *r, long status, const char *name);

#endif
