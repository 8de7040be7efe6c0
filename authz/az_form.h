#ifndef AZ_FORM_H
#define AZ_FORM_H

/* application/x-www-form-urlencoded bodies, as the OAuth endpoints take them
 * (RFC 6749 §3.1: no parameter twice). */
#include "core/http.h"

#define AZ_FORM_MAX_PARAMS 32
#define AZ_FORM_MAX_VALUE  8192

struct az_form {
    size_t n;
    const char *keys[AZ_FORM_MAX_PARAMS];
    const char *values[AZ_FORM_MAX_PARAMS];
};

/* Parses data (len bytes) into f, strings in pool. Returns NULL when fine,
 * else a description of the defect (a bad escape, a repeated parameter, too
 * many or too long). */
const char *az_form_parse(const char *data, size_t len, struct core_pool *pool, struct az_form *f);
/* The value of key, or NULL. */
const char *az_form_get(const struct az_form *f, const char *key);
#endif
