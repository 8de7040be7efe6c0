#include <stdio.h>

#include "core/cli.h"

extern const struct core_app renkei_app;

int main(int argc, char **argv)
{
    return core_main(&renkei_app, argc, argv);
}
