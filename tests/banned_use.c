/* Must NOT compile: banned.h turns strcpy into an error (the test expects failure). */
#include "core/core.h"

int banned_use(char *dst);
int banned_use(char *dst)
{
    strcpy(dst, "x");
    return 0;
}
