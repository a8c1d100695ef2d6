/* What bench/'s timing programs share: a millisecond clock, and an order for qsort. */
#ifndef EC1_BENCH_MS_H
#define EC1_BENCH_MS_H

#include <time.h>

/* CLOCK_MONOTONIC in milliseconds. */
static inline double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* qsort's comparison of doubles, ascending. */
static inline int cmp_ms(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

#endif
