/* Group commit of files: see durable.h. */
#include "core/durable.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Whether the system's unwritten data is small enough for a syncfs. */
static bool
durable_little_dirty(void)
{
	char buf[4096];
	unsigned long long kb, total = 0;
	int fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
	ssize_t len;
	int found = 0;

	if (fd < 0)
		return false;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return false;
	buf[len] = '\0';
	for (char *line = buf; line != NULL && found < 2;) {
		char *next = strchr(line, '\n');

		if (sscanf(line, "Dirty: %llu kB", &kb) == 1 ||
		    sscanf(line, "Writeback: %llu kB", &kb) == 1) {
			total += kb;
			found++;
		}
		line = next != NULL ? next + 1 : NULL;
	}
	return found == 2 && total * 1024 <= DURABLE_DIRTY_MAX;
}

int
durable_sync(int dirfd, const int *fds, size_t n, int *errs)
{
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		errs[i] = 0;
	/* More than two fsyncs to save, and little else to write. */
	if (n + (dirfd >= 0) > 2 && durable_little_dirty() &&
	    syncfs(fds[0]) == 0) {
		bool bad = false;

		/* Each file's own write errors (since it was opened), which
		 * syncfs reports for the file system as a whole: waiting on
		 * pages already written costs no flush. */
		for (size_t i = 0; i < n; i++)
			bad |=
			    sync_file_range(fds[i], 0, 0,
			                    SYNC_FILE_RANGE_WAIT_BEFORE |
			                        SYNC_FILE_RANGE_WRITE |
			                        SYNC_FILE_RANGE_WAIT_AFTER) < 0;
		if (!bad && fsync(fds[0]) == 0)
			return 0;
	}
	/* One by one: the slow way, and the way to learn which failed. */
	for (size_t i = 0; i < n; i++) {
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
