/* A minimal test harness: each CHECK prints nothing on success; each TEST prints PASS or FAIL. */
#ifndef EC1_TEST_CHECK_H
#define EC1_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failed;
static int tests_failed;

#define CHECK(cond)                                                                         \
	do {                                                                                \
		if (!(cond)) {                                                              \
			printf("    %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
			check_failed = 1;                                                   \
		}                                                                           \
	} while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                                           \
	do {                                                                                      \
		const char *h_ = (hay);                                                           \
		if (!h_ || !strstr(h_, (needle))) {                                               \
			printf("    %s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, \
			       h_ ? h_ : "(null)", (needle));                                     \
			check_failed = 1;                                                         \
		}                                                                                 \
	} while (0)

#define TEST(fn)                                                         \
	do {                                                             \
		check_failed = 0;                                        \
		fn();                                                    \
		printf("%s: %s\n", check_failed ? "FAIL" : "PASS", #fn); \
		tests_failed += check_failed;                            \
	} while (0)

#endif
