/* Group commit of files: see durable.h. */
#include "core/durable.h"

#include <errno.h>
#include <unistd.h>

int
durable_sync(int dirfd, const int *fds, size_t n, int *errs)
{
	int rc = 0;

	/* One by one, which also says which one failed. */
	for (size_t i = 0; i < n; i++) {
		errs[i] = 0;
		if (fsync(fds[i]) < 0) {
			errs[i] = errno;
			rc = -1;
		}
	}
	if (dirfd >= 0 && fsync(dirfd) < 0) {
		int err = errno;

		for (size_t i = 0; i < n; i++)
			if (errs[i] == 0)
				errs[i] = err;
		rc = -1;
	}
	return rc;
}
