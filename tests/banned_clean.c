/* Must compile: the same file without the banned call (so the failing test
 * above fails for the right reason, not a broken include path). */
#include "core/core.h"

int banned_clean(char *dst, size_t n);
int banned_clean(char *dst, size_t n)
{
    return xsnprintf(dst, n, "%s", "x") ? 0 : 1;
}
