/* Tests for the worker-thread pool: every job and its done function run,
 * done functions on the loop thread, jobs of one key in order and never at
 * the same time, jobs of different keys in parallel. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "core/workpool.h"

#define KEYS 4
#define JOBS 400

struct state {
	pthread_mutex_t lock;
	int active[KEYS];   /* jobs of a key running now */
	int last[KEYS];     /* the last sequence number seen per key */
	int overlap;        /* times two jobs of one key overlapped */
	int disorder;       /* times a key's jobs ran out of order */
	int done;           /* done functions run */
	int done_off_loop;  /* done functions run off the loop thread */
	pthread_t loop;
	struct event_base *base;
};

struct job {
	struct state *st;
	int key;
	int seq;
};

static void
job_run(void *arg)
{
	struct job *j = arg;
	struct state *st = j->st;

	pthread_mutex_lock(&st->lock);
	if (st->active[j->key]++ > 0)
		st->overlap++;
	if (j->seq <= st->last[j->key])
		st->disorder++;
	st->last[j->key] = j->seq;
	pthread_mutex_unlock(&st->lock);
	usleep(200);
	pthread_mutex_lock(&st->lock);
	st->active[j->key]--;
	pthread_mutex_unlock(&st->lock);
}

static void
job_done(void *arg)
{
	struct job *j = arg;
	struct state *st = j->st;

	if (!pthread_equal(pthread_self(), st->loop))
		st->done_off_loop++;
	if (++st->done == JOBS)
		event_base_loopbreak(st->base);
	free(j);
}

static void
test_keys_in_order(void **unused)
{
	struct state st = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct workpool *p;

	(void)unused;
	st.base = event_base_new();
	st.loop = pthread_self();
	for (int k = 0; k < KEYS; k++)
		st.last[k] = -1;
	p = workpool_new(st.base, 3);
	for (int i = 0; i < JOBS; i++) {
		struct job *j = calloc(1, sizeof(*j));

		j->st = &st;
		j->key = i % KEYS;
		j->seq = i;
		workpool_submit(p, &st.last[j->key], job_run, job_done, j);
	}
	assert_int_equal(workpool_pending(p), JOBS);
	event_base_dispatch(st.base);
	assert_int_equal(st.done, JOBS);
	assert_int_equal(st.done_off_loop, 0);
	assert_int_equal(st.overlap, 0);
	assert_int_equal(st.disorder, 0);
	assert_int_equal(workpool_pending(p), 0);
	workpool_free(&p);
	assert_null(p);
	event_base_free(st.base);
}

/* Jobs without a key run side by side: two that wait for each other
 * finish only if both run at once. */
struct meet {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int arrived;
	int met;
	int done;
	struct event_base *base;
};

static void
meet_run(void *arg)
{
	struct meet *m = arg;
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 5;
	pthread_mutex_lock(&m->lock);
	m->arrived++;
	pthread_cond_broadcast(&m->cond);
	while (m->arrived < 2 &&
	       pthread_cond_timedwait(&m->cond, &m->lock, &deadline) == 0)
		;
	if (m->arrived >= 2)
		m->met++;
	pthread_mutex_unlock(&m->lock);
}

static void
meet_done(void *arg)
{
	struct meet *m = arg;

	if (++m->done == 2)
		event_base_loopbreak(m->base);
}

static void
test_parallel(void **unused)
{
	struct meet m = {.lock = PTHREAD_MUTEX_INITIALIZER,
	                 .cond = PTHREAD_COND_INITIALIZER};
	struct workpool *p;

	(void)unused;
	m.base = event_base_new();
	p = workpool_new(m.base, 2);
	workpool_submit(p, NULL, meet_run, meet_done, &m);
	workpool_submit(p, NULL, meet_run, meet_done, &m);
	event_base_dispatch(m.base);
	assert_int_equal(m.met, 2);
	workpool_free(&p);
	event_base_free(m.base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keys_in_order),
	    cmocka_unit_test(test_parallel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
