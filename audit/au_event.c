#include <stdlib.h>

#include "audit/au.h"

static struct core_stmt au_event_record_stmt =
    CORE_STMT("au_event_record", "INSERT INTO pending_events (kind, tenant, actor, detail) "
                                 "VALUES ($1, $2, $3, $4::jsonb)");

bool au_event_record(struct core_db_conn *c, const char *kind, const char *tenant,
                     const char *actor, json_t *detail)
{
    char *text = detail ? json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    const char *v[] = {kind, tenant, actor, text ? text : "{}"};
    PGresult *r = core_db_exec(c, &au_event_record_stmt, 4, v);
    free(text);
    if (!r)
        return false;
    PQclear(r);
    return true;
}
