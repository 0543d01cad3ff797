/* Making several files durable at once (group commit).
 *
 * Every file's writeback is started, then each file is fsync'd, then the
 * directory, before the one transaction that commits them all. A syncfs(2)
 * for the batch (two flushes of the disk's cache instead of one per file)
 * was tried and measured: on this project's benchmark machine it used
 * about a tenth more CPU per message at the same rate. It writes whatever
 * else the file system holds (other users' mail, SQLite's WAL-index files,
 * which then fault on their next write), and ties the spool's commits to
 * the store's writes. With a journal, ext4 commits the batch's inodes in
 * the first fsync's transaction anyway. */
#ifndef TERN_CORE_DURABLE_H
#define TERN_CORE_DURABLE_H

#include <stddef.h>

/* fds[0..n) (files of the file system of dirfd) and the directory dirfd
 * (or -1: none) on disk. errs[i] is 0, or the errno of file i's fsync;
 * the directory's failure is every file's. Returns 0 when all are on
 * disk, -1 otherwise. */
int durable_sync(int dirfd, const int *fds, size_t n, int *errs);
/* The same for files whose writeback the caller started as it finished
 * each (sync_file_range(2), SYNC_FILE_RANGE_WRITE): only the fsyncs. */
int durable_sync_started(int dirfd, const int *fds, size_t n, int *errs);

#endif
