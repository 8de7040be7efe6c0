#ifndef XC_Q_H
#define XC_Q_H

/*
 * The NGSI-v2 Simple Query Language (q, and mq for metadata) compiled to one
 * SQL boolean expression over a row of renkei.ngsi_entities aliased "e".
 * Every value, name and pattern taken from the query is bound through
 * xc_sql_param; the SQL text holds only what this module writes.
 */
#include "exchange/xc_sql.h"

#define XC_Q_MAX_LEN        8192 /* bytes of q or mq */
#define XC_Q_MAX_STATEMENTS 64
#define XC_Q_MAX_LIST       100 /* items in a == or != list */
#define XC_Q_MAX_DEPTH      16  /* tokens in an attribute path */
#define XC_Q_MAX_NAME       256 /* bytes of one path token */
#define XC_Q_MAX_REGEX      256 /* bytes of a ~= pattern */

enum xc_q_kind { XC_Q_ATTRS, XC_Q_METADATA };

/* Compiles q (kind XC_Q_ATTRS) or mq (XC_Q_METADATA) into one parenthesized
 * boolean SQL expression over the entity row alias "e", appended to out.
 * false with an Orion-like description in err for a bad expression (the
 * caller answers 400 BadRequest); out is then unusable for this query. */
bool xc_q_compile(struct xc_sql *out, const char *q, enum xc_q_kind kind, char *err, size_t errlen);

/* The distinct top-level attribute names a q/mq references, in order of
 * first use (pool strings, *n set); the entity builtins dateCreated and
 * dateModified compared in q are not attributes and are left out. false on a
 * bad expression, with err as xc_q_compile gives it. */
bool xc_q_attrs(struct core_pool *pool, const char *q, enum xc_q_kind kind, const char ***names,
                size_t *n, char *err, size_t errlen);

/* True when pattern is a POSIX extended regular expression that both
 * regcomp and PostgreSQL's ERE mode accept without error (bounded
 * repetition counts, size). false with the reason in err. */
bool xc_q_regex_ok(const char *pattern, char *err, size_t errlen);

#endif
