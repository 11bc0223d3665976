/* The C tests' one assertion: CHECK(condition) prints the file, line and condition that
 * failed, and exits non-zero (the test programs stop at the first failed check). */
#ifndef REFSCOPE_TEST_CHECK_H
#define REFSCOPE_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(condition)                                                                 \
    do {                                                                                 \
        if (!(condition)) {                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #condition); \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

#endif
