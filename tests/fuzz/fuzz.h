#ifndef RENKEI_FUZZ_H
#define RENKEI_FUZZ_H

/*
 * The fuzz harnesses (tests/fuzz/fuzz_*.c): each defines
 * LLVMFuzzerTestOneInput. Built with clang's libFuzzer in the fuzz tree
 * (RENKEI_FUZZ, ops/fuzz); built with replay.c instead in the other trees,
 * where ctest runs every seed and every past crash through it.
 *
 * A harness checks what must hold, not only that nothing crashes: a broken
 * property calls fuzz_fail, which aborts with a message.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define fuzz_fail(...)                                                                             \
    do {                                                                                           \
        fprintf(stderr, "fuzz: property broken at %s:%d: ", __FILE__, __LINE__);                   \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

/* data as a NUL-terminated string (malloc'd; an embedded NUL ends it early,
 * as it would a C string from a header or parameter). */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Splits data at the first byte sep: *a gets the part before, *b after
 * (both malloc'd strings); false when sep is absent. */
static inline int fuzz_split(const uint8_t *data, size_t size, uint8_t sep, char **a, char **b)
{
    const uint8_t *p = memchr(data, sep, size);
    if (!p)
        return 0;
    *a = fuzz_str(data, (size_t)(p - data));
    *b = fuzz_str(p + 1, size - (size_t)(p - data) - 1);
    return 1;
}

#endif
