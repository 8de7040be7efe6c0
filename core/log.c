#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/log.h"

static atomic_int log_level = CORE_LOG_INFO;
static _Thread_local const char *log_request_id;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void core_log_set_level(enum core_log_level level)
{
    atomic_store(&log_level, (int)level);
}

bool core_log_enabled(enum core_log_level level)
{
    return (int)level >= atomic_load(&log_level);
}

bool core_log_level_parse(const char *s, enum core_log_level *out)
{
    for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum core_log_level)i;
            return true;
        }
    }
    return false;
}

void core_log_set_request_id(const char *request_id)
{
    log_request_id = request_id;
}

static void write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(2, buf, len);
        if (n <= 0)
            return; /* stderr is gone; nothing better to do */
        buf += n;
        len -= (size_t)n;
    }
}

void core_log_fields(enum core_log_level level, const char *msg, json_t *fields)
{
    if (!core_log_enabled(level)) {
        json_decref(fields);
        return;
    }
    char now[32];
    core_time_rfc3339(now);
    json_t *line = json_object();
    json_object_set_new(line, "time", json_string(now));
    json_object_set_new(line, "level", json_string(level_names[level]));
    /* A message is ours, but may quote a peer's bytes: keep it valid JSON. */
    json_t *m = json_string(msg);
    json_object_set_new(line, "msg", m ? m : json_string("(message is not valid UTF-8)"));
    if (log_request_id)
        json_object_set_new(line, "request_id", json_string(log_request_id));
    if (fields)
        json_object_update(line, fields);
    json_decref(fields);
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(line);
    if (!text)
        return;
    size_t len = strlen(text);
    text = xrealloc(text, len + 2);
    text[len] = '\n';
    write_all(text, len + 1);
    free(text);
}

void core_logf(enum core_log_level level, const char *fmt, ...)
{
    if (!core_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    core_log_fields(level, msg, NULL);
    free(msg);
}

void core_log_bug_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    core_log_fields(CORE_LOG_ERROR, msg, json_pack("{s:s, s:i}", "file", file, "line", line));
    free(msg);
}
