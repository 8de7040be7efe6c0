#ifndef CN_ADMIN_H
#define CN_ADMIN_H

/*
 * What the operator console's pages share (console/cn_admin*.c): who may
 * use them, the towns for the selects, notices after a change, errors shown
 * on the page that was sent, and the status each module's answer means.
 * Every module call passes ctx->context and ctx->actor, as the admin API
 * does: row-level security in the database backs up each check made here.
 */
#include <jansson.h>

#include "authz/az_client.h"
#include "console/cn_page.h"
#include "exchange/xc_agreement.h"
#include "tenants/tn.h"

#define CN_ADMIN_ROLES (AZ_ROLE_TENANT_ADMIN | AZ_ROLE_PLATFORM_ADMIN)

/* The most towns the console reads (selects, the matrix). */
#define CN_ADMIN_TOWNS_MAX 500

/* The towns the context may read, in id order, at most CN_ADMIN_TOWNS_MAX
 * (*more set when there are others). *out: release each, free the array. */
enum tn_rc cn_admin_towns(const struct cn_ctx *ctx, struct tn_tenant **out, size_t *n, bool *more,
                          struct tn_result *res);
void cn_admin_towns_free(struct tn_tenant *list, size_t n);

/* [{id, name, selected}] for a <select> of towns; skip (may be NULL) is
 * left out. New reference. */
json_t *cn_admin_town_options(const struct tn_tenant *list, size_t n, const char *selected,
                              const char *skip);
/* The name of town id in list, or id itself. */
const char *cn_admin_town_name(const struct tn_tenant *list, size_t n, const char *id);
/* v[0..n) joined by ", " (a list of types, attributes, purposes), in req->pool. */
char *cn_admin_join(struct core_req *req, char *const *v, size_t n);

/* ?done=X of a list page: sets var "notice" to the catalogue's text of
 * "admin.done.X" when X is one of known (NULL-terminated). */
void cn_admin_notice(struct core_req *req, const struct cn_ctx *ctx, json_t *vars,
                     const char *const *known);

/* The error of a form, shown on the page (role="alert"): var "error" the
 * catalogue's text of key, "error_detail" the module's words (may be NULL),
 * and "invalid" {field: true} for the field to mark (may be NULL). */
void cn_admin_set_error(json_t *vars, const struct cn_ctx *ctx, const char *key, const char *detail,
                        const char *field);

/* The HTTP status and catalogue key of a module's refusal; 0 when it is
 * not the person's doing (database down, our bug): the caller then sends
 * the error page with cn_admin_fail. */
unsigned cn_admin_tn_status(enum tn_rc rc, const char **key);
unsigned cn_admin_az_status(enum az_rc rc, const char **key);
unsigned cn_admin_xc_status(enum xc_ag_rc rc, const char **key);
/* The error page for a failure of ours: 503 (unavailable) or 500. */
void cn_admin_fail(struct core_req *req, const struct cn_ctx *ctx, bool unavailable);

/* A whole decimal in [min, max] from a form; false when absent or not. */
bool cn_admin_int(const char *s, long min, long max, long *out);

/* Each page's routes. */
struct core_router;
void cn_admin_overview_routes(struct core_router *r);
void cn_admin_towns_routes(struct core_router *r);
void cn_admin_clients_routes(struct core_router *r);
void cn_admin_agreements_routes(struct core_router *r);

#endif
