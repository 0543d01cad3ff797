/* Group commit of files: see durable.h. */
#include "core/durable.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int
durable_sync(int dirfd, const int *fds, size_t n, int *errs)
{
	/* Every file's writeback starts first, so that the disk has them
	 * all at once; each fsync then only waits for its own. One by one,
	 * the second file's data went out only once the first one's data,
	 * inode and cache flush were done: 10 files of 4 KB took 5.2 ms
	 * that way, 2.0 ms so (ext4 without a journal, virtio disk). A
	 * failure here is the fsync's to report. */
	if (n > 1)
		for (size_t i = 0; i < n; i++)
			(void)sync_file_range(fds[i], 0, 0,
			                      SYNC_FILE_RANGE_WRITE);
	return durable_sync_started(dirfd, fds, n, errs);
}

int
durable_sync_started(int dirfd, const int *fds, size_t n, int *errs)
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
