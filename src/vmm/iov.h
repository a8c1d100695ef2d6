/* Copies between scatter lists (guest buffers) and flat buffers: the VMM's one pair of them. */
#ifndef EC1_VMM_IOV_H
#define EC1_VMM_IOV_H

#include <stddef.h>
#include <sys/uio.h>

/* Copies at most len bytes from [skip, ...) of iov into buf; returns the bytes copied. */
size_t iov_to_buf(const struct iovec *iov, unsigned int n, size_t skip, void *buf, size_t len);
/* Copies at most len bytes of buf into iov from offset skip on; returns the bytes copied. */
size_t iov_from_buf(const struct iovec *iov, unsigned int n, size_t skip, const void *buf,
		    size_t len);

/*
 * The bytes [skip, skip + len) of iov (fewer where it is shorter) as a scatter list of its own in
 * out, which has room for n entries; returns its count. Nothing is copied.
 */
unsigned int iov_slice(const struct iovec *iov, unsigned int n, size_t skip, size_t len,
		       struct iovec *out);
/* The bytes iov holds. */
size_t iov_length(const struct iovec *iov, unsigned int n);

#endif
