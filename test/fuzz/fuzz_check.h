/* test/fuzz/fuzz_check.h — the check every libFuzzer harness aborts with (libFuzzer then
 * saves the input), and the entry point's prototype. */
#ifndef TEST_FUZZ_FUZZ_CHECK_H
#define TEST_FUZZ_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FZ_CHECK(cond)                                                                  \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                        \
		}                                                                       \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
