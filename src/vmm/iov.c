/* Scatter-list copies (iov.h). */
#include "iov.h"

#include <stdbool.h>
#include <string.h>

/* Copies between iov from offset skip on and buf, at most len bytes, in either direction. */
static size_t copy(const struct iovec *iov, unsigned int n, size_t skip, char *buf, size_t len,
		   bool into_iov)
{
	size_t done = 0;
	for (unsigned int i = 0; i < n && done < len; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		char *seg = (char *)iov[i].iov_base + skip;
		size_t k = iov[i].iov_len - skip < len - done ? iov[i].iov_len - skip : len - done;
		memcpy(into_iov ? seg : buf + done, into_iov ? buf + done : seg, k);
		done += k;
		skip = 0;
	}
	return done;
}

size_t iov_to_buf(const struct iovec *iov, unsigned int n, size_t skip, void *buf, size_t len)
{
	return copy(iov, n, skip, buf, len, false);
}

size_t iov_from_buf(const struct iovec *iov, unsigned int n, size_t skip, const void *buf,
		    size_t len)
{
	return copy(iov, n, skip, (char *)buf, len, true); /* only read from, then */
}

unsigned int iov_slice(const struct iovec *iov, unsigned int n, size_t skip, size_t len,
		       struct iovec *out)
{
	unsigned int k = 0;
	for (unsigned int i = 0; i < n && len; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		size_t seg = iov[i].iov_len - skip < len ? iov[i].iov_len - skip : len;
		out[k].iov_base = (char *)iov[i].iov_base + skip;
		out[k++].iov_len = seg;
		len -= seg;
		skip = 0;
	}
	return k;
}

size_t iov_length(const struct iovec *iov, unsigned int n)
{
	size_t t = 0;
	for (unsigned int i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}
