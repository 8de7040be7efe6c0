#include "exchange/xc_sql.h"

void xc_sql_init(struct xc_sql *s, struct core_pool *pool)
{
    memset(s, 0, sizeof *s);
    s->pool = pool;
    strbuf_init(&s->text, XC_SQL_MAX_TEXT);
}

void xc_sql_release(struct xc_sql *s)
{
    strbuf_release(&s->text);
    s->nparams = 0;
}

void xc_sql_add(struct xc_sql *s, const char *sql)
{
    if (!strbuf_adds(&s->text, sql))
        s->overflow = true;
}

const char *xc_sql_param_ref(struct xc_sql *s, const char *value)
{
    if (s->nparams >= XC_SQL_MAX_PARAMS) {
        s->overflow = true;
        return "NULL";
    }
    s->params[s->nparams++] = value ? core_pstrdup(s->pool, value) : NULL;
    return core_psprintf(s->pool, "$%d", s->nparams);
}

void xc_sql_param(struct xc_sql *s, const char *value)
{
    xc_sql_add(s, xc_sql_param_ref(s, value));
}

bool xc_sql_ok(const struct xc_sql *s)
{
    return !s->overflow && !s->text.toobig;
}
