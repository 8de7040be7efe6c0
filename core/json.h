#ifndef CORE_JSON_H
#define CORE_JSON_H

#include <jansson.h>

#include "core/core.h"

/* Checks the bytes of a JSON document for nesting deeper than max (brackets
 * outside strings). Cheap, and done before the parser sees the bytes:
 * jansson itself recurses up to 2048 levels. */
bool core_json_depth_ok(const char *data, size_t len, int max);

/*
 * The JSON escape of byte c, one of '"', '\\' or a control character below
 * 0x20, into out: \" \\ \b \f \n \r \t, else \u00XX with hex digits from
 * digits ("0123456789abcdef" or upper case: the audit log's canonical form
 * and jansson's differ). Returns its length (2 or 6).
 */
size_t core_json_escape(unsigned char c, const char *digits, char out[6]);

/*
 * Serializes v compactly, byte for byte as json_dumps(v, JSON_COMPACT |
 * JSON_ENCODE_ANY | JSON_REAL_PRECISION(precision)) does (members in
 * insertion order, reals as %.<precision>g with ".0" added to an integral
 * one and the exponent without '+' or leading zeros, only '"', '\\' and
 * control characters escaped), at a fraction of its cost: one growing
 * buffer instead of a callback per token. precision 0 means 17. Returns a
 * malloc'd NUL-terminated string and its length; NULL only for a value
 * nested deeper than 2048 levels.
 */
char *core_json_dump(const json_t *v, int precision, size_t *len);

/* An optional string member of obj: absent or null gives *out NULL and
 * true; anything but a string is refused with "KEY must be a string" in err. */
bool core_json_opt_string(json_t *obj, const char *key, const char **out, char *err, size_t errlen);

#endif
