#ifndef CORE_ERRORS_H
#define CORE_ERRORS_H

#include "core/core.h"

/* Error codes from core/errors.def. */
enum core_err {
#define CORE_ERR(id, status, name, desc) CORE_ERR_##id,
#include "core/errors.def"
#undef CORE_ERR
    CORE_ERR__COUNT
};

struct core_err_info {
    unsigned status;         /* HTTP status */
    const char *name;        /* the "error" member of the body */
    const char *description; /* the default "description" */
};

/* The registry entry for code; an out-of-range code is our bug and maps to INTERNAL. */
const struct core_err_info *core_err_info(enum core_err code);

#endif
