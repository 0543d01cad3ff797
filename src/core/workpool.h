/* A small pool of threads for blocking work (SQLite, Maildir, fsync, DNS
 * with the synchronous resolver) whose completions run back on the libevent
 * loop: the job function runs on a worker thread, its done function later on
 * the loop thread. Jobs queued with the same non-NULL key run one at a time
 * and in order (one command per connection at a time, ARCHITECTURE.md §1). */
#ifndef TERN_CORE_WORKPOOL_H
#define TERN_CORE_WORKPOOL_H

#include <stddef.h>

struct event_base;
struct workpool;

typedef void workpool_job_fn(void *arg);
typedef void workpool_done_fn(void *arg);

/* threads: 1..64. Aborts on failure to start (a start-up failure). */
struct workpool *workpool_new(struct event_base *base, unsigned threads);
/* Waits for the jobs already running, drops the queued ones without
 * running them or their done functions. */
void workpool_free(struct workpool **p);
/* Queue job(arg) on a worker, then done(arg) on the loop thread (done may
 * be NULL). key: jobs with the same key never overlap and run in order. */
/* From the loop thread only. */
void workpool_submit(struct workpool *p, const void *key,
                     workpool_job_fn *job, workpool_done_fn *done, void *arg);
/* Jobs queued or running. */
size_t workpool_pending(const struct workpool *p);

#endif
