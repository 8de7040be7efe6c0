#ifndef CORE_JSON_H
#define CORE_JSON_H

#include "core/core.h"

/* Checks the bytes of a JSON document for nesting deeper than max (brackets
 * outside strings). Cheap, and done before the parser sees the bytes:
 * jansson itself recurses up to 2048 levels. */
bool core_json_depth_ok(const char *data, size_t len, int max);

#endif
