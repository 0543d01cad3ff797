/* The worker-thread pool: a FIFO of jobs under one mutex, N threads that
 * take the first job whose key is not already running, and a completion
 * list the loop drains when a pipe wakes it. Job and done functions never
 * run under the lock. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/log.h"
#include "core/workpool.h"
#include "core/xmalloc.h"

#define WORKPOOL_THREADS_MAX 64

struct work {
	const void *key;
	workpool_job_fn *job;
	workpool_done_fn *done;
	void *arg;
	struct work *next;
};

struct workpool {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct work *queue, **queue_tail; /* waiting to run */
	struct work *finished, **finished_tail;
	const void *running[WORKPOOL_THREADS_MAX]; /* keys, per thread */
	pthread_t threads[WORKPOOL_THREADS_MAX];
	unsigned nthreads;
	size_t pending;
	bool stopping;
	int pipe_r, pipe_w;
	struct event *ev;
};

/* The first queued job whose key no thread is running (under the lock).
 * Jobs of one key stay in order: a later job of a key is never taken while
 * an earlier one of the same key is still queued before it. */
static struct work *
take_job(struct workpool *p)
{
	struct work **pp, *w;

	for (pp = &p->queue; (w = *pp) != NULL; pp = &w->next) {
		bool busy = false;

		if (w->key != NULL) {
			for (unsigned i = 0; i < p->nthreads && !busy; i++)
				busy = p->running[i] == w->key;
			for (struct work *e = p->queue; e != w && !busy;
			     e = e->next)
				busy = e->key == w->key;
		}
		if (busy)
			continue;
		*pp = w->next;
		if (p->queue_tail == &w->next)
			p->queue_tail = pp;
		w->next = NULL;
		return w;
	}
	return NULL;
}

struct worker_arg {
	struct workpool *pool;
	unsigned index;
};

static void *
worker_main(void *arg)
{
	struct worker_arg *wa = arg;
	struct workpool *p = wa->pool;
	unsigned me = wa->index;
	struct work *w = NULL;
	bool wake_loop;

	free(wa);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->stopping && (w = take_job(p)) == NULL)
			pthread_cond_wait(&p->wake, &p->lock);
		if (p->stopping)
			break;
		p->running[me] = w->key;
		pthread_mutex_unlock(&p->lock);

		w->job(w->arg);

		pthread_mutex_lock(&p->lock);
		p->running[me] = NULL;
		/* A queued job of this key may be runnable now: one thread
		 * for it. Every other job got its signal when queued; a
		 * broadcast here woke every idle thread for nothing. */
		if (w->key != NULL && p->queue != NULL)
			pthread_cond_signal(&p->wake);
		/* The loop owes a drain while the list is not empty: only
		 * the first job onto it writes to the pipe. */
		wake_loop = p->finished == NULL;
		*p->finished_tail = w;
		p->finished_tail = &w->next;
		if (wake_loop && write(p->pipe_w, "", 1) < 0 && errno != EAGAIN)
			log_error(NULL, "event=workpool-wake-failed error=%s",
			          strerror(errno));
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* On the loop: run the done functions of the finished jobs. */
static void
workpool_drain(evutil_socket_t fd, short what, void *arg)
{
	struct workpool *p = arg;
	struct work *list, *w;
	char sink[256];

	(void)what;
	while (read(fd, sink, sizeof(sink)) > 0)
		;
	pthread_mutex_lock(&p->lock);
	list = p->finished;
	p->finished = NULL;
	p->finished_tail = &p->finished;
	pthread_mutex_unlock(&p->lock);
	while ((w = list) != NULL) {
		list = w->next;
		p->pending--;
		if (w->done != NULL)
			w->done(w->arg);
		free(w);
	}
}

struct workpool *
workpool_new(struct event_base *base, unsigned threads)
{
	struct workpool *p = xcalloc(1, sizeof(*p));
	int fds[2];

	if (threads < 1 || threads > WORKPOOL_THREADS_MAX)
		fatal(EX_OSERR, "workpool: %u threads out of range", threads);
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
		fatal(EX_OSERR, "workpool: pipe: %s", strerror(errno));
	p->pipe_r = fds[0];
	p->pipe_w = fds[1];
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	p->queue_tail = &p->queue;
	p->finished_tail = &p->finished;
	p->ev = event_new(base, p->pipe_r, EV_READ | EV_PERSIST,
	                  workpool_drain, p);
	if (p->ev == NULL || event_add(p->ev, NULL) < 0)
		fatal(EX_OSERR, "workpool: cannot watch its pipe");
	for (unsigned i = 0; i < threads; i++) {
		struct worker_arg *wa = xmalloc(sizeof(*wa));
		int err;

		wa->pool = p;
		wa->index = i;
		if ((err = pthread_create(&p->threads[i], NULL, worker_main,
		                          wa)) != 0)
			fatal(EX_OSERR, "workpool: pthread_create: %s", strerror(err));
		p->nthreads++;
	}
	return p;
}

void
workpool_free(struct workpool **pp)
{
	struct workpool *p = *pp;
	struct work *w;

	if (p == NULL)
		return;
	*pp = NULL;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	while ((w = p->queue) != NULL) {
		p->queue = w->next;
		free(w);
	}
	while ((w = p->finished) != NULL) {
		p->finished = w->next;
		free(w);
	}
	event_free(p->ev);
	close(p->pipe_r);
	close(p->pipe_w);
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void
workpool_submit(struct workpool *p, const void *key, workpool_job_fn *job,
                workpool_done_fn *done, void *arg)
{
	struct work *w = xcalloc(1, sizeof(*w));

	w->key = key;
	w->job = job;
	w->done = done;
	w->arg = arg;
	pthread_mutex_lock(&p->lock);
	*p->queue_tail = w;
	p->queue_tail = &w->next;
	p->pending++;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
}

size_t
workpool_pending(const struct workpool *p)
{
	return p->pending;
}
