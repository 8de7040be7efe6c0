#ifndef CORE_LOG_H
#define CORE_LOG_H

#include <jansson.h>

#include "core/core.h"

/*
 * Logging: one JSON object per line on stderr, written with one write(2) so
 * lines from different threads never interleave. Every line has "time",
 * "level" and "msg"; lines written while a request is being handled also
 * carry its "request_id".
 */
enum core_log_level { CORE_LOG_DEBUG, CORE_LOG_INFO, CORE_LOG_WARN, CORE_LOG_ERROR };

void core_log_set_level(enum core_log_level level);
bool core_log_enabled(enum core_log_level level);
/* Parses "debug", "info", "warn", "error"; false for anything else. */
bool core_log_level_parse(const char *s, enum core_log_level *out);

/* Logs msg with extra fields (an object whose reference is stolen; may be NULL). */
void core_log_fields(enum core_log_level level, const char *msg, json_t *fields);
void core_logf(enum core_log_level level, const char *fmt, ...) PRINTF_LIKE(2, 3);
/* Our own invariant broke: logged at error with the source location. */
void core_log_bug_at(const char *file, int line, const char *fmt, ...) PRINTF_LIKE(3, 4);
#define core_log_bug(...) core_log_bug_at(__FILE__, __LINE__, __VA_ARGS__)

/* The request id attached to log lines written by this thread (NULL: none). */
void core_log_set_request_id(const char *request_id);

#define core_debug(...) core_logf(CORE_LOG_DEBUG, __VA_ARGS__)
#define core_info(...)  core_logf(CORE_LOG_INFO, __VA_ARGS__)
#define core_warn(...)  core_logf(CORE_LOG_WARN, __VA_ARGS__)
#define core_error(...) core_logf(CORE_LOG_ERROR, __VA_ARGS__)

#endif
