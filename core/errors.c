#include "core/errors.h"
#include "core/log.h"

static const struct core_err_info registry[] = {
#define CORE_ERR(id, status, name, desc) [CORE_ERR_##id] = {status, name, desc},
#include "core/errors.def"
#undef CORE_ERR
};

const struct core_err_info *core_err_info(enum core_err code)
{
    if ((unsigned)code >= CORE_ERR__COUNT) {
        core_log_bug("unknown error code %d", (int)code);
        return &registry[CORE_ERR_INTERNAL];
    }
    return &registry[code];
}
