/* Making several files durable at once (group commit).
 *
 * An fsync(2) per file costs a flush of the disk's cache per file: about
 * 0.6 ms each on a virtual disk, and with a spool file and a Maildir file
 * per message that bounded how many messages a second the disk allowed.
 * One syncfs(2) writes every file of a batch at once; an fsync of one of
 * them then flushes the cache (ext4 without a journal writes inodes after
 * the flush of its syncfs): two flushes for the batch. syncfs also writes
 * whatever else the file system has waiting, so it is used only while the
 * system holds little unwritten data (DURABLE_DIRTY_MAX); otherwise, or
 * when it fails, each file gets its own fsync, which also says which one
 * failed. */
#ifndef TERN_CORE_DURABLE_H
#define TERN_CORE_DURABLE_H

#include <stddef.h>

/* Unwritten data (Dirty + Writeback in /proc/meminfo) up to which one
 * syncfs is preferred. */
#define DURABLE_DIRTY_MAX (64u * 1024 * 1024)

/* fds[0..n) (files of the file system of dirfd) and the directory dirfd
 * (or -1: none) on disk. errs[i] is 0, or the errno of file i's fsync;
 * the directory's failure is every file's. Returns 0 when all are on
 * disk, -1 otherwise. */
int durable_sync(int dirfd, const int *fds, size_t n, int *errs);

#endif
