#ifndef XC_SQL_H
#define XC_SQL_H

/*
 * SQL text built at run time for the hosted store's queries (filters, order,
 * geography), with every piece of input bound as a parameter: text appended
 * here is constant SQL written in this module, never request input; input
 * goes through xc_sql_param, which appends "$n" and keeps the value.
 */
#include "core/core.h"
#include "core/pool.h"
#include "core/strbuf.h"

#define XC_SQL_MAX_PARAMS 512
#define XC_SQL_MAX_TEXT   (256 * 1024)

struct xc_sql {
    struct core_pool *pool; /* parameter values are copied into it */
    struct strbuf text;
    const char *params[XC_SQL_MAX_PARAMS];
    int nparams;
    bool overflow; /* too many parameters or too much text: refuse the query */
};

void xc_sql_init(struct xc_sql *s, struct core_pool *pool);
void xc_sql_release(struct xc_sql *s);
/* Appends constant SQL text. */
void xc_sql_add(struct xc_sql *s, const char *sql);
/* Appends "$n" bound to value (copied; NULL binds SQL NULL). */
void xc_sql_param(struct xc_sql *s, const char *value);
/* Binds value and returns "$n" (pool memory) without appending it, for an
 * expression placed elsewhere (an ORDER BY) that shares the parameters. */
const char *xc_sql_param_ref(struct xc_sql *s, const char *value);
/* True while neither bound was passed. */
bool xc_sql_ok(const struct xc_sql *s);

#endif
