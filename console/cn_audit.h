#ifndef CN_AUDIT_H
#define CN_AUDIT_H

/* Shared by the auditor console's files (console/cn_audit*.c). */
#include <jansson.h>

#include "authz/az_page.h"

/* A denial's reason code as people read it: the catalogue's
 * audit.reason.<code>, or the code itself when the catalogue has none
 * (borrowed: the catalogue's or code). */
const char *cn_audit_reason_text(enum az_lang lang, const char *code);

/*
 * The two charts of the console and the tables that carry the same figures,
 * from au_query_stats' object (borrowed) for the days from .. to
 * (YYYY-MM-DD, both shown as inclusive, UTC): sets vars "pairs" (transfers
 * per day per pair of towns) and "reasons" (denials per reason), each with
 * the inline SVG's geometry, its summary (the chart's accessible name) and
 * the table's rows. See console/pages/audit.html for the members.
 */
void cn_audit_charts(json_t *vars, enum az_lang lang, json_t *stats, const char *from,
                     const char *to);

#endif
