/* Tests for queue/spool.c: the create/commit/deliver cycle, group commit
 * and its one-by-one fallback, retries, crash recovery at open, envelope
 * round trips, DSNs due, holds, the operator's view and actions, schema
 * upgrades, and the commit rate, single and grouped (printed). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "queue/spool.h"

struct fixture {
	char dir[256];
	struct spool *sp;
};

/* The wait the tests retry after (the queue computes its own). */
#define RETRY_MS (60 * (uint64_t)1000)

/* One recipient's outcome without DSN details; a recipient that is not
 * pending (or not there) is an error here. */
static int
rcpt_result(struct spool *sp, const char *id, const char *address,
            enum spool_rcpt_state state, const char *diagnostic,
            uint64_t next_try_ms, char **error_r)
{
	const struct spool_result res = {
	    .state = state,
	    .diagnostic = diagnostic,
	    .next_try_ms = next_try_ms,
	};
	int rc = spool_rcpt_update(sp, id, address, &res, error_r);

	if (rc == 1) {
		*error_r = xasprintf("%s: no pending recipient %s", id,
		                     address != NULL ? address : "");
		return -1;
	}
	return rc;
}

static uint64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static double
mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
reopen(struct fixture *f)
{
	char *error = NULL;

	spool_close(&f->sp);
	assert_null(f->sp);
	f->sp = spool_open(f->dir, &error);
	if (f->sp == NULL)
		fail_msg("spool_open: %s", error);
}

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	char *error = NULL;
	int n;

	n = snprintf(f->dir, sizeof(f->dir), "%s/test_spool.XXXXXX",
	             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	assert_true(n > 0 && (size_t)n < sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	f->sp = spool_open(f->dir, &error);
	if (f->sp == NULL)
		fail_msg("spool_open: %s", error);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	struct dirent *de;
	DIR *d;

	spool_close(&f->sp);
	d = opendir(f->dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

/* Message files in the directory (names of 16 characters). */
static size_t
count_files(const struct fixture *f)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(f->dir);

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strlen(de->d_name) == SPOOL_ID_SIZE - 1)
			n++;
	closedir(d);
	return n;
}

static bool
file_exists(const struct fixture *f, const char *id)
{
	struct stat sb;
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", f->dir, id);
	return stat(path, &sb) == 0;
}

static void
write_all(int fd, const char *s)
{
	size_t len = strlen(s);

	assert_int_equal(write(fd, s, len), (ssize_t)len);
}

/* Create, write body, commit with recipients rcpts[0..n). */
static void
spool_message(struct fixture *f, const char *body, const char *const *rcpts,
              size_t n, char id_r[SPOOL_ID_SIZE])
{
	struct spool_rcpt r[8];
	struct spool_envelope env = {
	    .mail_from = (char *)"sender@example.org",
	    .helo = (char *)"mx.example.org",
	    .client_ip = (char *)"192.0.2.1",
	    .size = strlen(body),
	    .rcpts = r,
	    .nrcpts = n,
	};
	char *error = NULL;
	size_t i;
	int fd;

	assert_true(n <= 8);
	memset(r, 0, sizeof(r));
	for (i = 0; i < n; i++)
		r[i].address = (char *)rcpts[i];
	fd = spool_create(f->sp, id_r, &error);
	if (fd < 0)
		fail_msg("spool_create: %s", error);
	write_all(fd, body);
	close(fd);
	if (spool_commit(f->sp, id_r, &env, &error) < 0)
		fail_msg("spool_commit: %s", error);
}

/* A created and written file, not committed. */
static void
create_file(struct fixture *f, const char *body, char id_r[SPOOL_ID_SIZE])
{
	char *error = NULL;
	int fd;

	fd = spool_create(f->sp, id_r, &error);
	if (fd < 0)
		fail_msg("spool_create: %s", error);
	write_all(fd, body);
	close(fd);
}

/* n messages of one recipient each (rcpt-<i>@example.com), created and
 * committed as one batch; results_r[i] as spool_commit_batch() left it.
 * ids_r[i] is used as given when it is not empty (an id never created,
 * or one already committed). Returns spool_commit_batch()'s result. */
enum { BATCH_MAX = 64 };
static const char batch_body[] = "Subject: batch\r\n\r\nbody\r\n";
static int
commit_batch(struct fixture *f, size_t n, char ids_r[][SPOOL_ID_SIZE],
             int *results_r)
{
	const char *body = batch_body;
	struct spool_rcpt r[BATCH_MAX];
	struct spool_envelope env[BATCH_MAX];
	const struct spool_envelope *envs[BATCH_MAX];
	const char *ids[BATCH_MAX];
	char addr[BATCH_MAX][32], *error = NULL;
	size_t i;
	int ret;

	assert_true(n <= BATCH_MAX);
	for (i = 0; i < n; i++) {
		if (ids_r[i][0] == '\0')
			create_file(f, body, ids_r[i]);
		snprintf(addr[i], sizeof(addr[i]), "rcpt-%zu@example.com", i);
		r[i] = (struct spool_rcpt){.address = addr[i]};
		env[i] = (struct spool_envelope){
		    .mail_from = (char *)"sender@example.org",
		    .size = strlen(body),
		    .rcpts = &r[i],
		    .nrcpts = 1,
		};
		envs[i] = &env[i];
		ids[i] = ids_r[i];
		results_r[i] = 7; /* must be overwritten */
	}
	ret = spool_commit_batch(f->sp, ids, envs, n, results_r, &error);
	if (ret == 0)
		assert_null(error);
	else
		assert_non_null(error);
	free(error);
	return ret;
}

static void
check_counts(struct fixture *f, size_t messages, size_t pending)
{
	size_t m, p;
	char *error = NULL;

	assert_int_equal(spool_count(f->sp, &m, &p, &error), 0);
	assert_int_equal(m, messages);
	assert_int_equal(p, pending);
}

/* Finished messages' files wait for a commit that syncs: they go at
 * spool_close(), and once SPOOL_LATER_MAX wait, the next outcome syncs and
 * they all go. */
static void
test_files_wait_for_a_sync(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com"};
	char(*ids)[SPOOL_ID_SIZE] = xcalloc(SPOOL_LATER_MAX + 1, sizeof(*ids));
	char *error = NULL;

	for (size_t i = 0; i < 3; i++)
		spool_message(f, "Subject: x\r\n\r\nx\r\n", rcpts, 1, ids[i]);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(rcpt_result(f->sp, ids[i], rcpts[0],
		                             SPOOL_RCPT_DELIVERED, "250 ok", 0,
		                             &error),
		                 0);
	check_counts(f, 0, 0);
	assert_int_equal(count_files(f), 3);
	/* Gone at the close itself (spool_open would remove them anyway, as
	 * files without rows). */
	spool_close(&f->sp);
	assert_int_equal(count_files(f), 0);
	f->sp = spool_open(f->dir, &error);
	assert_non_null(f->sp);

	for (size_t i = 0; i <= SPOOL_LATER_MAX; i++)
		spool_message(f, "Subject: x\r\n\r\nx\r\n", rcpts, 1, ids[i]);
	for (size_t i = 0; i < SPOOL_LATER_MAX; i++)
		assert_int_equal(rcpt_result(f->sp, ids[i], rcpts[0],
		                             SPOOL_RCPT_DELIVERED, "250 ok", 0,
		                             &error),
		                 0);
	assert_int_equal(count_files(f), SPOOL_LATER_MAX + 1);
	assert_int_equal(rcpt_result(f->sp, ids[SPOOL_LATER_MAX], rcpts[0],
	                             SPOOL_RCPT_DELIVERED, "250 ok", 0, &error),
	                 0);
	assert_int_equal(count_files(f), 0);
	check_counts(f, 0, 0);
	free(ids);
}

/* The inode of DIR/name, 0 when there is none; *size_r its size. */
static ino_t
file_ino(const struct fixture *f, const char *name, off_t *size_r)
{
	struct stat sb;
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	if (stat(path, &sb) < 0)
		return 0;
	if (size_r != NULL)
		*size_r = sb.st_size;
	return sb.st_ino;
}

/* The file of a finished message is emptied and kept for the next one
 * (no inode freed and made per message), also across a restart. */
static void
test_file_pool(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com"};
	static const char big[] = "Subject: a longer message\r\n\r\n"
	                          "with a body of some length\r\n";
	static const char small[] = "Subject: s\r\n\r\ns\r\n";
	char id[SPOOL_ID_SIZE], id2[SPOOL_ID_SIZE], pool[64], *error = NULL;
	ino_t ino;
	off_t size = -1;

	spool_message(f, big, rcpts, 1, id);
	ino = file_ino(f, id, NULL);
	assert_true(ino != 0);
	assert_int_equal(rcpt_result(f->sp, id, rcpts[0], SPOOL_RCPT_DELIVERED,
	                             "250 ok", 0, &error),
	                 0);
	spool_flush(f->sp);
	assert_false(file_exists(f, id));
	snprintf(pool, sizeof(pool), "pool.%s", id);
	assert_int_equal(file_ino(f, pool, &size), ino);
	assert_int_equal(size, 0); /* no mail kept in it */

	/* The next message takes it, empty (its commit checks the size),
	 * even if something wrote into it meanwhile. */
	{
		char path[512];
		int fd;

		snprintf(path, sizeof(path), "%s/%s", f->dir, pool);
		fd = open(path, O_WRONLY);
		assert_true(fd >= 0);
		write_all(fd, big);
		close(fd);
	}
	spool_message(f, small, rcpts, 1, id2);
	assert_int_equal(file_ino(f, id2, &size), ino);
	assert_int_equal(size, (off_t)strlen(small));
	assert_int_equal(file_ino(f, pool, NULL), 0);

	/* Kept over a restart: the queue's open takes it over. */
	assert_int_equal(rcpt_result(f->sp, id2, rcpts[0], SPOOL_RCPT_DELIVERED,
	                             "250 ok", 0, &error),
	                 0);
	spool_flush(f->sp);
	snprintf(pool, sizeof(pool), "pool.%s", id2);
	assert_int_equal(file_ino(f, pool, NULL), ino);
	reopen(f);
	spool_message(f, big, rcpts, 1, id);
	assert_int_equal(file_ino(f, id, &size), ino);
	assert_int_equal(size, (off_t)strlen(big));
	check_counts(f, 1, 1);
}

static void
test_lifecycle(void **state)
{
	struct fixture *f = *state;
	static const char body[] = "Subject: hi\r\n\r\nhello\r\n";
	static const char *const rcpts[] = {"a@example.com", "b@example.net"};
	char id[SPOOL_ID_SIZE], buf[128], *error = NULL;
	struct spool_due *due;
	size_t n;
	ssize_t got;
	int fd;

	spool_message(f, body, rcpts, 2, id);
	assert_true(file_exists(f, id));
	check_counts(f, 1, 2);

	assert_int_equal(
	    spool_due(f->sp, wall_ms() + 1000, 10, &due, &n, &error), 0);
	assert_int_equal(n, 2);
	assert_string_equal(due[0].id, id);
	assert_string_equal(due[0].address, "a@example.com");
	assert_string_equal(due[1].address, "b@example.net");
	assert_int_equal(due[0].attempts, 0);
	assert_false(due[0].local);
	spool_due_free(&due, n);
	assert_null(due);

	fd = spool_open_message(f->sp, id, &error);
	assert_true(fd >= 0);
	got = read(fd, buf, sizeof(buf));
	assert_int_equal(got, (ssize_t)strlen(body));
	assert_memory_equal(buf, body, strlen(body));
	/* read-only */
	assert_true(write(fd, "x", 1) < 0);
	close(fd);

	assert_int_equal(rcpt_result(f->sp, id, "a@example.com",
	                             SPOOL_RCPT_DELIVERED, "250 ok", 0, &error),
	                 0);
	assert_true(file_exists(f, id));
	check_counts(f, 1, 1);
	/* Not pending any more: a second result is refused. */
	assert_int_equal(rcpt_result(f->sp, id, "a@example.com",
	                             SPOOL_RCPT_DELIVERED, NULL, 0, &error),
	                 -1);
	free(error);
	error = NULL;
	assert_int_equal(rcpt_result(f->sp, id, "b@example.net",
	                             SPOOL_RCPT_DELIVERED, "250 ok", 0, &error),
	                 0);
	/* The rows are gone; the file waits until that is on disk: the next
	 * message accepted syncs it (or spool_flush). */
	check_counts(f, 0, 0);
	assert_true(file_exists(f, id));
	{
		const char *other[] = {"c@example.com"};
		char id2[SPOOL_ID_SIZE];

		spool_message(f, body, other, 1, id2);
		assert_false(file_exists(f, id));
		assert_int_equal(rcpt_result(f->sp, id2, "c@example.com",
		                             SPOOL_RCPT_DELIVERED, "250 ok", 0,
		                             &error),
		                 0);
		assert_true(file_exists(f, id2));
		spool_flush(f->sp);
		assert_false(file_exists(f, id2));
	}
	assert_int_equal(spool_due(f->sp, UINT64_MAX, 10, &due, &n, &error), 0);
	assert_int_equal(n, 0);
	assert_null(due);
	assert_int_equal(spool_open_message(f->sp, id, &error), -1);
	free(error);
	error = NULL;
	assert_int_equal(
	    spool_envelope(f->sp, id, &(struct spool_envelope){0}, &error), -1);
	free(error);
}

static void
test_deferred(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com", "b@example.com"};
	char id[SPOOL_ID_SIZE], *error = NULL;
	struct spool_due *due;
	uint64_t t;
	size_t n;

	spool_message(f, "x\r\n", rcpts, 2, id);
	t = wall_ms() + 1000;
	assert_int_equal(spool_due(f->sp, t, 10, &due, &n, &error), 0);
	assert_int_equal(n, 2);
	spool_due_free(&due, n);

	assert_int_equal(rcpt_result(f->sp, id, "a@example.com",
	                             SPOOL_RCPT_PENDING, "451 try later",
	                             t + RETRY_MS, &error),
	                 0);
	assert_true(file_exists(f, id));
	check_counts(f, 1, 2);

	/* Only b is due now. */
	assert_int_equal(spool_due(f->sp, t, 10, &due, &n, &error), 0);
	assert_int_equal(n, 1);
	assert_string_equal(due[0].address, "b@example.com");
	spool_due_free(&due, n);
	assert_int_equal(
	    spool_due(f->sp, t + RETRY_MS - 1, 10, &due, &n, &error), 0);
	assert_int_equal(n, 1);
	spool_due_free(&due, n);

	/* Both due later, in next_try order, with the attempt counted. */
	assert_int_equal(spool_due(f->sp, t + RETRY_MS, 10, &due, &n, &error),
	                 0);
	assert_int_equal(n, 2);
	assert_string_equal(due[0].address, "b@example.com");
	assert_int_equal(due[0].attempts, 0);
	assert_string_equal(due[1].address, "a@example.com");
	assert_int_equal(due[1].attempts, 1);
	spool_due_free(&due, n);
	/* LIMIT */
	assert_int_equal(spool_due(f->sp, UINT64_MAX, 1, &due, &n, &error), 0);
	assert_int_equal(n, 1);
	spool_due_free(&due, n);
	assert_int_equal(spool_due(f->sp, UINT64_MAX, 0, &due, &n, &error), 0);
	assert_int_equal(n, 0);

	/* A permanent failure and a delivery: the message stays for the
	 * bounce (NOTIFY not given means FAILURE), then goes. */
	assert_int_equal(rcpt_result(f->sp, id, "b@example.com",
	                             SPOOL_RCPT_FAILED, "550 no such user", 0,
	                             &error),
	                 0);
	assert_true(file_exists(f, id));
	check_counts(f, 1, 1);
	assert_int_equal(rcpt_result(f->sp, id, "a@example.com",
	                             SPOOL_RCPT_DELIVERED, NULL, 0, &error),
	                 0);
	assert_true(file_exists(f, id));
	check_counts(f, 1, 0);
	assert_int_equal(spool_dsn_done(f->sp, id, &error), 0);
	assert_false(file_exists(f, id));
	check_counts(f, 0, 0);
}

static void
test_rcpt_result_errors(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com"};
	char id[SPOOL_ID_SIZE], *error = NULL;

	spool_message(f, "x\r\n", rcpts, 1, id);
	assert_int_equal(rcpt_result(f->sp, id, "nobody@example.com",
	                             SPOOL_RCPT_DELIVERED, NULL, 0, &error),
	                 -1);
	assert_non_null(error);
	xfree(&error);
	assert_int_equal(rcpt_result(f->sp, "0123456789abcdef", "a@example.com",
	                             SPOOL_RCPT_DELIVERED, NULL, 0, &error),
	                 -1);
	xfree(&error);
	assert_int_equal(rcpt_result(f->sp, "../../etc/passwd", "a@example.com",
	                             SPOOL_RCPT_DELIVERED, NULL, 0, &error),
	                 -1);
	xfree(&error);
	assert_int_equal(rcpt_result(f->sp, id, "a@example.com",
	                             (enum spool_rcpt_state)7, NULL, 0, &error),
	                 -1);
	xfree(&error);
	/* Nothing changed, and no transaction was left open. */
	check_counts(f, 1, 1);
	assert_true(file_exists(f, id));
	assert_int_equal(rcpt_result(f->sp, id, "a@example.com",
	                             SPOOL_RCPT_DELIVERED, NULL, 0, &error),
	                 0);
	check_counts(f, 0, 0);
}

static void
test_commit_errors(void **state)
{
	struct fixture *f = *state;
	struct spool_rcpt r = {.address = (char *)"a@example.com"};
	struct spool_envelope env = {
	    .mail_from = (char *)"",
	    .rcpts = &r,
	    .nrcpts = 1,
	};
	static const char *const rcpts[] = {"a@example.com"};
	char id[SPOOL_ID_SIZE], *error = NULL;
	int fd;

	/* Unknown (never created) and malformed ids. */
	assert_int_equal(spool_commit(f->sp, "0123456789abcdef", &env, &error),
	                 -1);
	assert_non_null(error);
	xfree(&error);
	assert_int_equal(spool_commit(f->sp, "queue.db", &env, &error), -1);
	xfree(&error);
	assert_int_equal(spool_commit(f->sp, "0123456789ABCDEF", &env, &error),
	                 -1);
	xfree(&error);
	assert_int_equal(spool_commit(f->sp, "0123456789abcdef0", &env, &error),
	                 -1);
	xfree(&error);
	check_counts(f, 0, 0);

	fd = spool_create(f->sp, id, &error);
	assert_true(fd >= 0);
	write_all(fd, "four");
	close(fd);
	/* No recipients, no sender, wrong size. */
	env.nrcpts = 0;
	assert_int_equal(spool_commit(f->sp, id, &env, &error), -1);
	xfree(&error);
	env.nrcpts = 1;
	env.mail_from = NULL;
	assert_int_equal(spool_commit(f->sp, id, &env, &error), -1);
	xfree(&error);
	env.mail_from = (char *)"";
	env.size = 5;
	assert_int_equal(spool_commit(f->sp, id, &env, &error), -1);
	xfree(&error);
	check_counts(f, 0, 0);
	env.size = 4;
	assert_int_equal(spool_commit(f->sp, id, &env, &error), 0);
	check_counts(f, 1, 1);
	/* Twice: refused, the first commit stands. */
	assert_int_equal(spool_commit(f->sp, id, &env, &error), -1);
	xfree(&error);
	check_counts(f, 1, 1);
	spool_message(f, "y", rcpts, 1, id);
	check_counts(f, 2, 2);
}

/* A recipient insert that fails half-way leaves no message row behind:
 * a trigger (added through a second connection) makes it fail. */
static void
test_commit_rollback(void **state)
{
	struct fixture *f = *state;
	struct spool_rcpt r[2] = {{.address = (char *)"ok@example.com"},
	                          {.address = (char *)"boom@example.com"}};
	struct spool_envelope env = {
	    .mail_from = (char *)"s@example.org",
	    .rcpts = r,
	    .nrcpts = 2,
	};
	char id[SPOOL_ID_SIZE], path[512], *error = NULL;
	sqlite3 *db;
	int fd;

	snprintf(path, sizeof(path), "%s/queue.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db,
	                 "CREATE TRIGGER boom BEFORE INSERT ON rcpts"
	                 " WHEN NEW.address = 'boom@example.com'"
	                 " BEGIN SELECT RAISE(ABORT, 'boom'); END",
	                 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);

	fd = spool_create(f->sp, id, &error);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(spool_commit(f->sp, id, &env, &error), -1);
	assert_non_null(strstr(error, "boom"));
	xfree(&error);
	check_counts(f, 0, 0);
	assert_int_equal(
	    spool_envelope(f->sp, id, &(struct spool_envelope){0}, &error), -1);
	xfree(&error);
	/* The file is still the caller's: commit again without the bad one. */
	assert_true(file_exists(f, id));
	env.nrcpts = 1;
	assert_int_equal(spool_commit(f->sp, id, &env, &error), 0);
	check_counts(f, 1, 1);
}

static void
test_discard(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com"};
	char id[SPOOL_ID_SIZE], id2[SPOOL_ID_SIZE], *error = NULL;
	int fd;

	fd = spool_create(f->sp, id, &error);
	assert_true(fd >= 0);
	close(fd);
	assert_true(file_exists(f, id));
	spool_discard(f->sp, id);
	assert_false(file_exists(f, id));
	spool_discard(f->sp, id); /* again: harmless */
	spool_discard(f->sp, "../queue.db");

	/* A committed message is never discarded. */
	spool_message(f, "x", rcpts, 1, id2);
	spool_discard(f->sp, id2);
	assert_true(file_exists(f, id2));
	check_counts(f, 1, 1);
}

static void
test_crash_recovery(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com", "b@example.com"};
	char kept[SPOOL_ID_SIZE], lost[SPOOL_ID_SIZE], gone[SPOOL_ID_SIZE];
	char path[512], *error = NULL;
	int fd;

	spool_message(f, "kept\r\n", rcpts, 2, kept);
	/* Created and written, never committed: the crash came first. */
	fd = spool_create(f->sp, lost, &error);
	assert_true(fd >= 0);
	write_all(fd, "half a message");
	close(fd);
	/* Committed, then its file deleted behind our back (a bug). */
	spool_message(f, "gone\r\n", rcpts, 2, gone);
	snprintf(path, sizeof(path), "%s/%s", f->dir, gone);
	assert_int_equal(unlink(path), 0);
	/* Someone else's file is left alone. */
	snprintf(path, sizeof(path), "%s/README", f->dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);

	check_counts(f, 2, 4);
	assert_int_equal(count_files(f), 2);
	reopen(f);
	assert_false(file_exists(f, lost));
	assert_false(file_exists(f, gone));
	assert_true(file_exists(f, kept));
	assert_true(file_exists(f, "README"));
	check_counts(f, 1, 2);
	assert_int_equal(
	    spool_envelope(f->sp, gone, &(struct spool_envelope){0}, &error),
	    -1);
	free(error);
}

static void
test_survives_reopen(void **state)
{
	struct fixture *f = *state;
	struct spool_rcpt r[3] = {
	    {.address = (char *)"local@example.com",
	     .local = true,
	     .notify = 5},
	    {.address = (char *)"far@example.net",
	     .orcpt = (char *)"rfc822;Far@Example.NET",
	     .notify = 2},
	    {.address = (char *)"third@example.org"},
	};
	struct spool_envelope env =
	                          {
	                              .mail_from = (char *)"s@example.org",
	                              .helo = (char *)"client.example",
	                              .client_ip = (char *)"2001:db8::1",
	                              .size = 5,
	                              .rcpts = r,
	                              .nrcpts = 3,
	                          },
	                      got;
	char id[SPOOL_ID_SIZE], buf[16], *error = NULL;
	struct spool_due *due;
	size_t n, i;
	int fd;

	fd = spool_create(f->sp, id, &error);
	assert_true(fd >= 0);
	write_all(fd, "body\n");
	close(fd);
	assert_int_equal(spool_commit(f->sp, id, &env, &error), 0);
	reopen(f);
	reopen(f);

	assert_int_equal(spool_envelope(f->sp, id, &got, &error), 0);
	assert_string_equal(got.mail_from, "s@example.org");
	assert_string_equal(got.client_ip, "2001:db8::1");
	assert_int_equal(got.size, 5);
	assert_int_equal(got.nrcpts, 3);
	for (i = 0; i < 3; i++) {
		assert_string_equal(got.rcpts[i].address, r[i].address);
		assert_int_equal(got.rcpts[i].local, r[i].local);
		assert_int_equal(got.rcpts[i].notify, r[i].notify);
	}
	assert_string_equal(got.rcpts[1].orcpt, r[1].orcpt);
	assert_null(got.rcpts[0].orcpt);
	spool_envelope_clear(&got);
	assert_null(got.rcpts);
	assert_null(got.mail_from);

	assert_int_equal(
	    spool_due(f->sp, wall_ms() + 1000, 10, &due, &n, &error), 0);
	assert_int_equal(n, 3);
	assert_true(due[0].local);
	for (i = 0; i < 3; i++)
		assert_int_equal(due[i].notify, r[i].notify);
	assert_null(due[0].orcpt);
	assert_string_equal(due[1].orcpt, r[1].orcpt);
	assert_null(due[2].orcpt);
	spool_due_free(&due, n);
	fd = spool_open_message(f->sp, id, &error);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "body\n", 5);
	close(fd);
}

static void
test_envelope_round_trip(void **state)
{
	struct fixture *f = *state;
	static const char evil[] =
	    "x'); DROP TABLE messages; -- \"%s\\ ? ?1 :a @b $c";
	struct spool_rcpt r[3] = {
	    {.address = (char *)evil, .orcpt = (char *)evil},
	    {.address = (char *)"\xc3\xa9t\xc3\xa9@exemple.fr",
	     .forwarded = true,
	     .sender = (char *)"SRS0=abcdef=aa=exemple.fr=x@example.org"},
	    /* a repeated recipient is delivered once */
	    {.address = (char *)evil, .local = true},
	};
	struct spool_envelope env =
	                          {
	                              .mail_from = (char *)"",
	                              .helo = (char *)evil,
	                              .client_ip = NULL,
	                              .auth_user = NULL,
	                              .ret = (char *)"HDRS",
	                              .envid = (char *)evil,
	                              .smtputf8 = true,
	                              .size = 0,
	                              .headers = (char *)"Authentication-"
	                                                 "Results: h; spf=pass"
	                                                 "\r\n",
	                              .fwd_headers =
	                                  (char *)"ARC-Seal: i=1\r\n",
	                              .rcpts = r,
	                              .nrcpts = 3,
	                          },
	                      got;
	char id[SPOOL_ID_SIZE], *error = NULL;
	int fd;

	fd = spool_create(f->sp, id, &error);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(spool_commit(f->sp, id, &env, &error), 0);
	assert_int_equal(spool_envelope(f->sp, id, &got, &error), 0);
	assert_string_equal(got.mail_from, "");
	assert_string_equal(got.helo, evil);
	assert_null(got.client_ip);
	assert_null(got.auth_user);
	assert_string_equal(got.ret, "HDRS");
	assert_string_equal(got.envid, evil);
	assert_true(got.smtputf8);
	assert_int_equal(got.size, 0);
	assert_string_equal(got.headers,
	                    "Authentication-Results: h; spf=pass\r\n");
	assert_string_equal(got.fwd_headers, "ARC-Seal: i=1\r\n");
	assert_int_equal(got.nrcpts, 2);
	assert_string_equal(got.rcpts[0].address, evil);
	assert_string_equal(got.rcpts[0].orcpt, evil);
	assert_false(got.rcpts[0].local);
	assert_false(got.rcpts[0].forwarded);
	assert_null(got.rcpts[0].sender);
	assert_string_equal(got.rcpts[1].address,
	                    "\xc3\xa9t\xc3\xa9@exemple.fr");
	assert_null(got.rcpts[1].orcpt);
	assert_true(got.rcpts[1].forwarded);
	assert_string_equal(got.rcpts[1].sender,
	                    "SRS0=abcdef=aa=exemple.fr=x@example.org");
	spool_envelope_clear(&got);
	check_counts(f, 1, 2);
	{
		/* The queue sees each recipient's sender when it is due. */
		struct spool_due *due = NULL;
		size_t n = 0;

		assert_int_equal(
		    spool_due(f->sp, UINT64_MAX, 10, &due, &n, &error), 0);
		assert_int_equal(n, 2);
		for (size_t i = 0; i < n; i++) {
			bool fwd = strcmp(due[i].address, evil) != 0;

			assert_int_equal(due[i].forwarded, fwd);
			if (fwd)
				assert_string_equal(due[i].sender, r[1].sender);
			else
				assert_null(due[i].sender);
		}
		spool_due_free(&due, n);
	}

	assert_int_equal(
	    rcpt_result(f->sp, id, evil, SPOOL_RCPT_FAILED, evil, 0, &error),
	    0);
	check_counts(f, 1, 1);
	reopen(f);
	check_counts(f, 1, 1);
}

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void
test_ids_unique(void **state)
{
	struct fixture *f = *state;
	enum { N = 1000 };
	char(*ids)[SPOOL_ID_SIZE] = xcalloc(N, sizeof(*ids));
	char *error = NULL;
	struct stat sb;
	char path[512];
	size_t i, j;
	int fd;

	for (i = 0; i < N; i++) {
		fd = spool_create(f->sp, ids[i], &error);
		assert_true(fd >= 0);
		assert_int_equal(strlen(ids[i]), SPOOL_ID_SIZE - 1);
		for (j = 0; j < SPOOL_ID_SIZE - 1; j++)
			assert_non_null(strchr("0123456789abcdef", ids[i][j]));
		if (i == 0) {
			assert_int_equal(fstat(fd, &sb), 0);
			assert_int_equal(sb.st_mode & 0777, 0600);
			assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		}
		close(fd);
	}
	assert_int_equal(count_files(f), N);
	qsort(ids, N, sizeof(*ids), cmp_id);
	for (i = 1; i < N; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);
	for (i = 0; i < N; i++)
		spool_discard(f->sp, ids[i]);
	assert_int_equal(count_files(f), 0);
	free(ids);

	/* The database is private too. */
	snprintf(path, sizeof(path), "%s/queue.db", f->dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
}

static void
test_retry_delay(void **state)
{
	/* The defaults (5 minutes doubling to 1 hour) and a short one. */
	static const struct {
		uint64_t first, max;
		unsigned attempts;
		uint64_t want;
	} cases[] = {
	    {300000, 3600000, 0, 300000},
	    {300000, 3600000, 1, 300000},
	    {300000, 3600000, 2, 600000},
	    {300000, 3600000, 4, 2400000},
	    {300000, 3600000, 5, 3600000},
	    {300000, 3600000, UINT32_MAX, 3600000},
	    {1000, 2000, 3, 2000},
	    {5000, 1000, 1, 1000},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(spool_retry_delay_ms(cases[i].first,
		                                      cases[i].max,
		                                      cases[i].attempts),
		                 cases[i].want);
}

static void
test_open_errors(void **state)
{
	struct fixture *f = *state;
	char path[512], *error = NULL;

	snprintf(path, sizeof(path), "%s/missing", f->dir);
	assert_null(spool_open(path, &error));
	assert_non_null(error);
	free(error);
}

static void
test_commit_batch(void **state)
{
	struct fixture *f = *state;
	char ids[10][SPOOL_ID_SIZE] = {{0}}, *error = NULL;
	int results[10];
	struct spool_due *due;
	uint64_t before = wall_ms(), after;
	size_t n, i, j;

	assert_int_equal(commit_batch(f, 10, ids, results), 0);
	after = wall_ms();
	for (i = 0; i < 10; i++)
		assert_int_equal(results[i], 0);
	check_counts(f, 10, 10);
	assert_int_equal(
	    spool_due(f->sp, wall_ms() + 1000, 100, &due, &n, &error), 0);
	assert_int_equal(n, 10);
	for (i = 0; i < 10; i++) {
		for (j = 0; j < n && strcmp(due[j].id, ids[i]) != 0; j++)
			;
		assert_true(j < n);
		assert_int_equal(due[j].attempts, 0);
		/* created_ms: when the batch was committed */
		assert_true(due[j].created_ms >= before);
		assert_true(due[j].created_ms <= after);
	}
	spool_due_free(&due, n);
	/* Durable: still there after a reopen (which removes orphans). */
	reopen(f);
	check_counts(f, 10, 10);
	assert_int_equal(count_files(f), 10);

	/* An empty batch does nothing. */
	assert_int_equal(spool_commit_batch(f->sp, NULL, NULL, 0, NULL, &error),
	                 0);
	assert_null(error);
}

/* One bad message in a batch fails alone: an id never created (refused
 * before the transaction), an id already committed and a recipient a
 * trigger refuses (both refused inside it: the batch is rolled back and
 * the others are committed one by one). */
static void
test_commit_batch_fallback(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com"};
	char ids[6][SPOOL_ID_SIZE] = {{0}}, committed[SPOOL_ID_SIZE];
	char path[512], *error = NULL;
	int results[6];
	sqlite3 *db;
	size_t i;

	/* Unknown id at 2. */
	snprintf(ids[2], sizeof(ids[2]), "%s", "0123456789abcdef");
	assert_int_equal(commit_batch(f, 5, ids, results), -1);
	for (i = 0; i < 5; i++)
		assert_int_equal(results[i], i == 2 ? -1 : 0);
	check_counts(f, 4, 4);

	/* Already committed at 0 and 3 (same size: refused by the
	 * database, not by the size check), and a refused recipient at 4
	 * (rcpt-4@…). */
	spool_message(f, batch_body, rcpts, 1, committed);
	check_counts(f, 5, 5);
	snprintf(path, sizeof(path), "%s/queue.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db,
	                 "CREATE TRIGGER boom BEFORE INSERT ON rcpts"
	                 " WHEN NEW.address = 'rcpt-4@example.com'"
	                 " BEGIN SELECT RAISE(ABORT, 'boom'); END",
	                 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	memset(ids, 0, sizeof(ids));
	memcpy(ids[0], committed, SPOOL_ID_SIZE);
	memcpy(ids[3], committed, SPOOL_ID_SIZE);
	assert_int_equal(commit_batch(f, 6, ids, results), -1);
	for (i = 0; i < 6; i++)
		assert_int_equal(results[i],
		                 i == 0 || i == 3 || i == 4 ? -1 : 0);
	check_counts(f, 8, 8);
	/* Exactly the successes have rows; the refused file is the
	 * caller's to discard. */
	for (i = 0; i < 6; i++) {
		struct spool_envelope got;
		int rc = spool_envelope(f->sp, ids[i], &got, &error);

		if (i == 4) {
			assert_int_equal(rc, -1);
			xfree(&error);
			assert_true(file_exists(f, ids[i]));
			spool_discard(f->sp, ids[i]);
			assert_false(file_exists(f, ids[i]));
			continue;
		}
		assert_int_equal(rc, 0);
		spool_envelope_clear(&got);
	}

	/* A batch of one goes the same way. */
	memset(ids, 0, sizeof(ids));
	snprintf(ids[0], sizeof(ids[0]), "%s", "../queue.db");
	assert_int_equal(commit_batch(f, 1, ids, results), -1);
	assert_int_equal(results[0], -1);
	check_counts(f, 8, 8);
}

/* Informational: commits per second with both fsyncs and a transaction,
 * one by one and in groups of 20 (one directory fsync and one
 * transaction per group). */
/* The commit in steps (the queue runs the syncs on a thread): files of
 * messages finished before the rows went in are removed once the WAL's
 * sync is done; one finished after that waits for the next sync, which
 * this commit's sync may not have covered. */
static void
test_commit_steps(void **state)
{
	struct fixture *f = *state;
	const char *ra[] = {"a@example.com"}, *rc[] = {"c@example.com"};
	char a[SPOOL_ID_SIZE], b[SPOOL_ID_SIZE], c[SPOOL_ID_SIZE];
	struct spool_rcpt r = {.address = (char *)"b@example.com"};
	struct spool_envelope env = {
	    .mail_from = (char *)"sender@example.org",
	    .size = 6,
	    .rcpts = &r,
	    .nrcpts = 1,
	};
	const struct spool_envelope *envs[] = {&env};
	const char *ids[] = {b};
	struct spool_commit *sc;
	struct spool_due *due = NULL;
	char *error = NULL;
	size_t n = 0;
	int results[1] = {7};

	spool_message(f, "body a", ra, 1, a);
	spool_message(f, "body c", rc, 1, c);
	create_file(f, "body b", b);
	assert_int_equal(rcpt_result(f->sp, a, "a@example.com",
	                             SPOOL_RCPT_DELIVERED, "250 ok", 0, &error),
	                 0);
	assert_true(file_exists(f, a)); /* until a sync */

	sc = spool_commit_begin(f->sp, ids, envs, 1);
	spool_commit_sync_files(sc);
	spool_commit_insert(sc);
	/* In the database, not yet on disk. */
	check_counts(f, 2, 2);
	assert_int_equal(rcpt_result(f->sp, c, "c@example.com",
	                             SPOOL_RCPT_DELIVERED, "250 ok", 0, &error),
	                 0);
	spool_commit_sync_rows(sc);
	assert_int_equal(spool_commit_end(&sc, results, &error), 0);
	assert_null(sc);
	assert_null(error);
	assert_int_equal(results[0], 0);
	assert_false(file_exists(f, a));
	assert_true(file_exists(f, c));
	assert_true(file_exists(f, b));
	assert_int_equal(spool_due(f->sp, UINT64_MAX, 10, &due, &n, &error), 0);
	assert_int_equal(n, 1);
	assert_string_equal(due[0].id, b);
	spool_due_free(&due, n);
	spool_flush(f->sp);
	assert_false(file_exists(f, c));

	/* A file that does not match its envelope fails at the files'
	 * step, and the end says why. */
	create_file(f, "body b, longer", b);
	results[0] = 7;
	sc = spool_commit_begin(f->sp, ids, envs, 1);
	spool_commit_sync_files(sc);
	spool_commit_insert(sc);
	spool_commit_sync_rows(sc);
	assert_int_equal(spool_commit_end(&sc, results, &error), 1);
	assert_int_equal(results[0], -1);
	assert_non_null(strstr(error, "envelope says 6"));
	free(error);
	check_counts(f, 1, 1);
}

/* With removals deferred, a finished message's file stays until the owner
 * takes it, removes it (into the pool) and hands the result back; the
 * next message then reuses that file. What waits at close goes then. */
static void
test_recycle_deferred(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com"};
	char id[SPOOL_ID_SIZE], id2[SPOOL_ID_SIZE], pool[64], *error = NULL;
	struct spool_recycle *r;
	ino_t ino;
	off_t size = -1;

	spool_defer_removals(f->sp);
	assert_null(spool_recycle_take(f->sp));
	spool_message(f, "body a", rcpts, 1, id);
	ino = file_ino(f, id, NULL);
	assert_int_equal(rcpt_result(f->sp, id, rcpts[0], SPOOL_RCPT_DELIVERED,
	                             "250 ok", 0, &error),
	                 0);
	spool_flush(f->sp);
	/* Due, but not removed on this thread. */
	assert_true(file_exists(f, id));
	r = spool_recycle_take(f->sp);
	assert_non_null(r);
	assert_null(spool_recycle_take(f->sp)); /* taken once */
	assert_true(file_exists(f, id));
	spool_recycle_run(r);
	assert_false(file_exists(f, id));
	snprintf(pool, sizeof(pool), "pool.%s", id);
	assert_int_equal(file_ino(f, pool, &size), ino);
	assert_int_equal(size, 0);
	/* A second run (at exit) changes nothing. */
	spool_recycle_run(r);
	assert_int_equal(file_ino(f, pool, NULL), ino);
	spool_recycle_done(f->sp, &r);
	assert_null(r);

	/* Back in the pool: the next message takes that file. */
	spool_message(f, "body b", rcpts, 1, id2);
	assert_int_equal(file_ino(f, id2, &size), ino);
	assert_int_equal(size, 6);
	assert_int_equal(file_ino(f, pool, NULL), 0);

	/* Left waiting at close: removed by the close. */
	assert_int_equal(rcpt_result(f->sp, id2, rcpts[0], SPOOL_RCPT_DELIVERED,
	                             "250 ok", 0, &error),
	                 0);
	spool_flush(f->sp);
	assert_true(file_exists(f, id2));
	spool_close(&f->sp);
	assert_false(file_exists(f, id2));
	f->sp = spool_open(f->dir, &error);
	assert_non_null(f->sp);
	check_counts(f, 0, 0);
}

/* Outcomes recorded together: each stands or fails alone. */
static void
test_outcomes_together(void **state)
{
	struct fixture *f = *state;
	const char *r1[] = {"a@example.com", "b@example.com"},
	           *r2[] = {"c@example.com"};
	char m1[SPOOL_ID_SIZE], m2[SPOOL_ID_SIZE];
	const struct spool_result done = {
	    .state = SPOOL_RCPT_DELIVERED,
	    .diagnostic = "250 ok",
	};
	const struct spool_result again = {
	    .state = SPOOL_RCPT_PENDING,
	    .diagnostic = "451 later",
	    .next_try_ms = UINT64_MAX / 2,
	};
	struct spool_outcome o[5];
	struct spool_info info;
	char *errors[5], *error = NULL;
	int rcs[5];

	spool_message(f, "one", r1, 2, m1);
	spool_message(f, "two", r2, 1, m2);
	o[0] = (struct spool_outcome){m1, "a@example.com", &done};
	o[1] = (struct spool_outcome){m1, "nobody@example.com", &done};
	o[2] = (struct spool_outcome){m2, "c@example.com", &done};
	/* a@ again: no longer pending, refused; the others stay in. */
	o[3] = (struct spool_outcome){m1, "a@example.com", &done};
	o[4] = (struct spool_outcome){m1, "b@example.com", &again};
	spool_rcpt_update_many(f->sp, o, 5, rcs, errors);
	assert_int_equal(rcs[0], 0);
	assert_int_equal(rcs[1], 1);
	assert_int_equal(rcs[2], 0);
	assert_int_equal(rcs[3], -1);
	assert_int_equal(rcs[4], 0);
	assert_null(errors[0]);
	assert_non_null(strstr(errors[3], "not pending"));
	for (size_t i = 0; i < 5; i++)
		free(errors[i]);
	/* m2 is done; m1 waits for b@. */
	check_counts(f, 1, 1);
	assert_int_equal(spool_show(f->sp, m1, &info, &error), 0);
	assert_int_equal(info.nrcpts, 2);
	assert_int_equal(info.rcpts[0].state, SPOOL_RCPT_DELIVERED);
	assert_int_equal(info.rcpts[1].state, SPOOL_RCPT_PENDING);
	assert_int_equal(info.rcpts[1].attempts, 1);
	spool_info_clear(&info);
	assert_true(file_exists(f, m2));
	spool_flush(f->sp);
	assert_false(file_exists(f, m2));
	assert_true(file_exists(f, m1));
}

static void
test_commit_rate(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com"};
	char id[SPOOL_ID_SIZE], ids[20][SPOOL_ID_SIZE];
	enum { N = 200, GROUP = 20 };
	int results[GROUP];
	double t0, dt, single;
	size_t i, j;

	t0 = mono_s();
	for (i = 0; i < N; i++)
		spool_message(f, "Subject: x\r\n\r\nsmall\r\n", rcpts, 1, id);
	dt = mono_s() - t0;
	single = dt > 0 ? N / dt : 0.0;
	fprintf(stderr,
	        "commits_per_s=%.0f (%d commits one by one in %.3f s, "
	        "%s)\n",
	        single, N, dt, f->dir);
	check_counts(f, N, N);

	t0 = mono_s();
	for (i = 0; i < N / GROUP; i++) {
		memset(ids, 0, sizeof(ids));
		assert_int_equal(commit_batch(f, GROUP, ids, results), 0);
		for (j = 0; j < GROUP; j++)
			assert_int_equal(results[j], 0);
	}
	dt = mono_s() - t0;
	fprintf(stderr,
	        "commits_per_s=%.0f (%d commits in groups of %d in %.3f s; "
	        "x%.1f; both include spool_create)\n",
	        dt > 0 ? N / dt : 0.0, N, GROUP, dt,
	        dt > 0 && single > 0 ? N / dt / single : 0.0);
	check_counts(f, 2 * N, 2 * N);
}

/* ------------------------------------------------ DSNs, holds, the view */

#define N_NEVER 0x1
#define N_SUCCESS 0x2
#define N_FAILURE 0x4
#define N_DELAY 0x8

/* One message from sender (auth_user may be NULL) to rcpts[0..n) with
 * the NOTIFY bits notify[i] (notify may be NULL: none given). */
static void
spool_from(struct fixture *f, const char *sender, const char *auth_user,
           const char *const *rcpts, const unsigned *notify, size_t n,
           char id_r[SPOOL_ID_SIZE])
{
	struct spool_rcpt r[8];
	struct spool_envelope env = {
	    .mail_from = (char *)sender,
	    .helo = (char *)"client.example",
	    .client_ip = (char *)"192.0.2.7",
	    .auth_user = (char *)auth_user,
	    .size = 3,
	    .rcpts = r,
	    .nrcpts = n,
	};
	char *error = NULL;
	size_t i;
	int fd;

	assert_true(n <= 8);
	memset(r, 0, sizeof(r));
	for (i = 0; i < n; i++) {
		r[i].address = (char *)rcpts[i];
		r[i].notify = notify != NULL ? notify[i] : 0;
	}
	fd = spool_create(f->sp, id_r, &error);
	if (fd < 0)
		fail_msg("spool_create: %s", error);
	write_all(fd, "x\r\n");
	close(fd);
	if (spool_commit(f->sp, id_r, &env, &error) < 0)
		fail_msg("spool_commit: %s", error);
}

/* Is id among the messages with a DSN due? */
static bool
dsn_is_due(struct fixture *f, const char *id)
{
	char(*ids)[SPOOL_ID_SIZE] = NULL, *error = NULL;
	bool found = false;
	size_t n, i;

	if (spool_dsn_due(f->sp, 1000, &ids, &n, &error) < 0)
		fail_msg("spool_dsn_due: %s", error);
	for (i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			found = true;
	free(ids);
	return found;
}

/* Recipients of id that spool_due() returns at now. */
static size_t
due_of(struct fixture *f, const char *id, uint64_t now)
{
	struct spool_due *due;
	char *error = NULL;
	size_t n, i, k = 0;

	if (spool_due(f->sp, now, 1000, &due, &n, &error) < 0)
		fail_msg("spool_due: %s", error);
	for (i = 0; i < n; i++)
		if (strcmp(due[i].id, id) == 0)
			k++;
	spool_due_free(&due, n);
	return k;
}

/* A message of queue's own waits for its signatures: nothing of it is
 * due until spool_sign_done, which puts the fields on top. */
static void
test_sign_first(void **state)
{
	struct fixture *f = *state;
	struct spool_rcpt r = {.address = (char *)"a@example.com"};
	struct spool_envelope env = {
	    .mail_from = (char *)"",
	    .headers = (char *)"X-Old: 1\r\n",
	    .flags = SPOOL_FLAG_SIGN,
	    .rcpts = &r,
	    .nrcpts = 1,
	};
	struct spool_envelope got;
	char id[SPOOL_ID_SIZE], other[SPOOL_ID_SIZE], *error = NULL;
	char(*ids)[SPOOL_ID_SIZE] = NULL;
	size_t n = 0;
	int fd;

	fd = spool_create(f->sp, id, &error);
	assert_true(fd >= 0);
	write_all(fd, "x\r\n");
	close(fd);
	assert_int_equal(spool_commit(f->sp, id, &env, &error), 0);
	spool_from(f, "s@example.org", NULL,
	           (const char *const[]){"b@example.com"}, NULL, 1, other);

	assert_int_equal(due_of(f, id, UINT64_MAX), 0);
	assert_int_equal(due_of(f, other, UINT64_MAX), 1);
	assert_int_equal(spool_sign_due(f->sp, 10, &ids, &n, &error), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], id);
	free(ids);

	reopen(f); /* still waiting after a restart */
	assert_int_equal(due_of(f, id, UINT64_MAX), 0);
	assert_int_equal(
	    spool_sign_done(f->sp, id, "DKIM-Signature: a\r\n", &error), 0);
	assert_int_equal(due_of(f, id, UINT64_MAX), 1);
	assert_int_equal(spool_envelope(f->sp, id, &got, &error), 0);
	assert_string_equal(got.headers, "DKIM-Signature: a\r\nX-Old: 1\r\n");
	assert_int_equal(got.flags, 0);
	spool_envelope_clear(&got);
	/* Once only; an unknown id is not an error. */
	assert_int_equal(spool_sign_done(f->sp, id, "X: 2\r\n", &error), 1);
	assert_int_equal(spool_sign_done(f->sp, other, "X: 2\r\n", &error), 1);
	assert_int_equal(spool_sign_due(f->sp, 10, &ids, &n, &error), 0);
	assert_int_equal(n, 0);
	free(ids);
}

static void
test_dsn_rules(void **state)
{
	static const struct {
		const char *sender;
		unsigned notify;
		enum spool_rcpt_state outcome;
		bool dsn_passed;
		bool due;
	} cases[] = {
	    /* failures: NOTIFY absent means FAILURE */
	    {"s@example.org", 0, SPOOL_RCPT_FAILED, false, true},
	    {"s@example.org", N_FAILURE, SPOOL_RCPT_FAILED, false, true},
	    {"s@example.org", N_FAILURE | N_DELAY, SPOOL_RCPT_FAILED, false,
	     true},
	    {"s@example.org", N_SUCCESS | N_FAILURE, SPOOL_RCPT_FAILED, false,
	     true},
	    {"s@example.org", N_NEVER, SPOOL_RCPT_FAILED, false, false},
	    {"s@example.org", N_SUCCESS, SPOOL_RCPT_FAILED, false, false},
	    {"s@example.org", N_DELAY, SPOOL_RCPT_FAILED, false, false},
	    {"s@example.org", N_SUCCESS | N_DELAY, SPOOL_RCPT_FAILED, false,
	     false},
	    /* a DSN never goes to <> */
	    {"", 0, SPOOL_RCPT_FAILED, false, false},
	    {"", N_FAILURE, SPOOL_RCPT_FAILED, false, false},
	    {"", N_SUCCESS, SPOOL_RCPT_DELIVERED, false, false},
	    /* deliveries: only NOTIFY=SUCCESS, and not when passed on */
	    {"s@example.org", 0, SPOOL_RCPT_DELIVERED, false, false},
	    {"s@example.org", N_SUCCESS, SPOOL_RCPT_DELIVERED, false, true},
	    {"s@example.org", N_SUCCESS | N_FAILURE, SPOOL_RCPT_DELIVERED,
	     false, true},
	    {"s@example.org", N_SUCCESS, SPOOL_RCPT_DELIVERED, true, false},
	    {"s@example.org", N_FAILURE, SPOOL_RCPT_DELIVERED, false, false},
	    {"s@example.org", N_DELAY, SPOOL_RCPT_DELIVERED, false, false},
	    {"s@example.org", N_NEVER, SPOOL_RCPT_DELIVERED, false, false},
	    /* still pending: no DSN (DELAY is not the spool's business) */
	    {"s@example.org", 0, SPOOL_RCPT_PENDING, false, false},
	    {"s@example.org", N_DELAY | N_FAILURE, SPOOL_RCPT_PENDING, false,
	     false},
	};
	struct fixture *f = *state;
	static const char *const rcpts[] = {"r@example.com"};
	char id[SPOOL_ID_SIZE], *error = NULL;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct spool_result res = {
		    .state = cases[i].outcome,
		    .diagnostic = "diag",
		    .next_try_ms = UINT64_MAX / 2,
		    .dsn_passed = cases[i].dsn_passed,
		};
		bool final = cases[i].outcome != SPOOL_RCPT_PENDING;

		spool_from(f, cases[i].sender, NULL, rcpts, &cases[i].notify, 1,
		           id);
		assert_int_equal(
		    spool_rcpt_update(f->sp, id, rcpts[0], &res, &error), 0);
		if (dsn_is_due(f, id) != cases[i].due)
			fail_msg("case %zu: DSN %s", i,
			         cases[i].due ? "not due" : "due");
		/* Kept while pending or while a DSN is due. */
		spool_flush(f->sp);
		if (file_exists(f, id) != (!final || cases[i].due))
			fail_msg("case %zu: file %s", i,
			         file_exists(f, id) ? "kept" : "gone");
		if (cases[i].due) {
			assert_int_equal(spool_dsn_done(f->sp, id, &error), 0);
			assert_false(file_exists(f, id));
		} else if (!final) {
			assert_int_equal(spool_delete(f->sp, id, &error), 0);
		}
		check_counts(f, 0, 0);
	}
}

/* A delay notice: due once per recipient that asked for DELAY (or gave no
 * NOTIFY), never for NOTIFY=FAILURE alone; the message stays pending. */
static void
test_delay_notice(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com", "b@example.net",
	                                    "c@example.net"};
	static const unsigned notify[] = {0, N_DELAY | N_FAILURE, N_FAILURE};
	struct spool_result later = {
	    .state = SPOOL_RCPT_PENDING,
	    .diagnostic = "451 4.3.0 try later",
	    .status = "4.3.0",
	    .delay_notice = true,
	};
	struct spool_dsn_rcpt *d;
	char id[SPOOL_ID_SIZE], *error = NULL;
	size_t n;

	spool_from(f, "s@example.org", NULL, rcpts, notify, 3, id);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(
		    spool_rcpt_update(f->sp, id, rcpts[i], &later, &error), 0);
	assert_true(dsn_is_due(f, id));
	assert_int_equal(spool_dsn_rcpts(f->sp, id, &d, &n, &error), 0);
	assert_int_equal(n, 2);
	assert_string_equal(d[0].address, "a@example.com");
	assert_int_equal(d[0].state, SPOOL_RCPT_PENDING);
	assert_string_equal(d[1].address, "b@example.net");
	spool_dsn_rcpts_free(&d, n);
	assert_int_equal(spool_dsn_done(f->sp, id, &error), 0);
	assert_false(dsn_is_due(f, id));
	assert_true(file_exists(f, id));
	/* Once: a later deferral does not mark another. */
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(
		    spool_rcpt_update(f->sp, id, rcpts[i], &later, &error), 0);
	assert_false(dsn_is_due(f, id));
	/* Without the flag, nothing either. */
	later.delay_notice = false;
	spool_from(f, "s@example.org", NULL, rcpts, notify, 3, id);
	assert_int_equal(spool_rcpt_update(f->sp, id, rcpts[0], &later, &error),
	                 0);
	assert_false(dsn_is_due(f, id));
}

/* A message waits for its DSN, survives a reopen (recovery keeps it),
 * and goes with spool_dsn_done() once nothing is pending. */
static void
test_dsn_keep_and_done(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com", "b@example.net",
	                                    "c@example.net"};
	static const unsigned notify[] = {0, N_SUCCESS, N_NEVER};
	struct spool_result fail = {
	    .state = SPOOL_RCPT_FAILED,
	    .diagnostic = "550 5.1.1 no such user",
	    .remote_mta = "mx.example.com",
	    .status = "5.1.1",
	};
	struct spool_result relayed = {
	    .state = SPOOL_RCPT_DELIVERED,
	    .diagnostic = "250 ok",
	    .remote_mta = "mx.example.net",
	    .status = "2.0.0",
	    .relayed = true,
	};
	struct spool_result never = {.state = SPOOL_RCPT_FAILED};
	struct spool_dsn_rcpt *d;
	char id[SPOOL_ID_SIZE], *error = NULL;
	uint64_t before = wall_ms();
	size_t n;

	spool_from(f, "s@example.org", NULL, rcpts, notify, 3, id);
	assert_false(dsn_is_due(f, id));
	assert_int_equal(spool_dsn_rcpts(f->sp, id, &d, &n, &error), 0);
	assert_int_equal(n, 0);
	assert_null(d);

	assert_int_equal(
	    spool_rcpt_update(f->sp, id, "a@example.com", &fail, &error), 0);
	assert_true(dsn_is_due(f, id));
	reopen(f);
	assert_true(dsn_is_due(f, id));
	assert_int_equal(spool_dsn_rcpts(f->sp, id, &d, &n, &error), 0);
	assert_int_equal(n, 1);
	assert_string_equal(d[0].address, "a@example.com");
	assert_null(d[0].orcpt);
	assert_int_equal(d[0].state, SPOOL_RCPT_FAILED);
	assert_false(d[0].relayed);
	assert_string_equal(d[0].status, "5.1.1");
	assert_string_equal(d[0].diagnostic, "550 5.1.1 no such user");
	assert_string_equal(d[0].remote_mta, "mx.example.com");
	assert_true(d[0].last_try_ms >= before);
	assert_true(d[0].last_try_ms <= wall_ms());
	spool_dsn_rcpts_free(&d, n);
	assert_null(d);

	/* Done while b and c are pending: the message stays. */
	assert_int_equal(spool_dsn_done(f->sp, id, &error), 0);
	assert_false(dsn_is_due(f, id));
	assert_true(file_exists(f, id));
	check_counts(f, 1, 2);

	/* c fails with NOTIFY=NEVER, b is relayed with SUCCESS asked. */
	assert_int_equal(
	    spool_rcpt_update(f->sp, id, "c@example.net", &never, &error), 0);
	assert_false(dsn_is_due(f, id));
	assert_int_equal(
	    spool_rcpt_update(f->sp, id, "b@example.net", &relayed, &error), 0);
	assert_true(dsn_is_due(f, id));
	assert_true(file_exists(f, id));
	check_counts(f, 1, 0);
	reopen(f);
	assert_true(file_exists(f, id));
	assert_int_equal(spool_dsn_rcpts(f->sp, id, &d, &n, &error), 0);
	assert_int_equal(n, 1);
	assert_string_equal(d[0].address, "b@example.net");
	assert_int_equal(d[0].state, SPOOL_RCPT_DELIVERED);
	assert_true(d[0].relayed);
	assert_string_equal(d[0].remote_mta, "mx.example.net");
	spool_dsn_rcpts_free(&d, n);

	assert_int_equal(spool_dsn_done(f->sp, id, &error), 0);
	assert_false(file_exists(f, id));
	check_counts(f, 0, 0);
	/* Gone: both say so with 1. */
	assert_int_equal(spool_dsn_done(f->sp, id, &error), 1);
	assert_int_equal(
	    spool_rcpt_update(f->sp, id, "b@example.net", &relayed, &error), 1);
	assert_int_equal(spool_dsn_done(f->sp, "../x", &error), -1);
	xfree(&error);
	assert_int_equal(spool_dsn_rcpts(f->sp, "nope", &d, &n, &error), -1);
	xfree(&error);
}

static void
test_rcpt_update(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com", "b@example.com"};
	struct spool_result res = {
	    .state = SPOOL_RCPT_PENDING,
	    .diagnostic = "451 4.7.1 later",
	    .remote_mta = "mx.example.com",
	    .status = "4.7.1",
	};
	struct spool_info info;
	char id[SPOOL_ID_SIZE], *error = NULL;
	uint64_t t = wall_ms();

	spool_from(f, "s@example.org", NULL, rcpts, NULL, 2, id);
	res.next_try_ms = t + 60000;
	assert_int_equal(
	    spool_rcpt_update(f->sp, id, "a@example.com", &res, &error), 0);
	res.next_try_ms = t + 120000;
	assert_int_equal(
	    spool_rcpt_update(f->sp, id, "a@example.com", &res, &error), 0);
	assert_int_equal(spool_show(f->sp, id, &info, &error), 0);
	assert_int_equal(info.rcpts[0].attempts, 2);
	assert_int_equal(info.rcpts[0].next_try_ms, t + 120000);
	assert_true(info.rcpts[0].last_try_ms >= t);
	assert_string_equal(info.rcpts[0].diagnostic, "451 4.7.1 later");
	assert_string_equal(info.rcpts[0].remote_mta, "mx.example.com");
	assert_int_equal(info.rcpts[1].attempts, 0);
	assert_int_equal(info.rcpts[1].last_try_ms, 0);
	assert_null(info.rcpts[1].diagnostic);
	assert_null(info.rcpts[1].remote_mta);
	spool_info_clear(&info);
	/* Unknown recipient or message: 1; bad input: -1. */
	assert_int_equal(
	    spool_rcpt_update(f->sp, id, "z@example.com", &res, &error), 1);
	assert_int_equal(spool_rcpt_update(f->sp, "0123456789abcdef",
	                                   "a@example.com", &res, &error),
	                 1);
	assert_int_equal(
	    spool_rcpt_update(f->sp, "x", "a@example.com", &res, &error), -1);
	xfree(&error);
	assert_int_equal(spool_rcpt_update(f->sp, id, NULL, &res, &error), -1);
	xfree(&error);
	res.state = (enum spool_rcpt_state)9;
	assert_int_equal(
	    spool_rcpt_update(f->sp, id, "a@example.com", &res, &error), -1);
	xfree(&error);
	/* Final already: refused, no transaction left open. */
	res.state = SPOOL_RCPT_DELIVERED;
	assert_int_equal(
	    spool_rcpt_update(f->sp, id, "b@example.com", &res, &error), 0);
	assert_int_equal(
	    spool_rcpt_update(f->sp, id, "b@example.com", &res, &error), -1);
	xfree(&error);
	check_counts(f, 1, 1);
	assert_int_equal(
	    spool_rcpt_update(f->sp, id, "a@example.com", &res, &error), 0);
	check_counts(f, 0, 0);
	spool_flush(f->sp);
	assert_false(file_exists(f, id));
}

static void
test_dsn_due_order(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com"};
	struct spool_result fail = {.state = SPOOL_RCPT_FAILED};
	char ids[3][SPOOL_ID_SIZE], (*due)[SPOOL_ID_SIZE], *error = NULL;
	size_t n, i;

	for (i = 0; i < 3; i++) {
		spool_from(f, "s@example.org", NULL, rcpts, NULL, 1, ids[i]);
		/* created_ms orders them */
		usleep(2000);
	}
	for (i = 3; i-- > 0;)
		assert_int_equal(
		    spool_rcpt_update(f->sp, ids[i], rcpts[0], &fail, &error),
		    0);
	assert_int_equal(spool_dsn_due(f->sp, 10, &due, &n, &error), 0);
	assert_int_equal(n, 3);
	for (i = 0; i < 3; i++)
		assert_string_equal(due[i], ids[i]);
	free(due);
	assert_int_equal(spool_dsn_due(f->sp, 2, &due, &n, &error), 0);
	assert_int_equal(n, 2);
	assert_string_equal(due[1], ids[1]);
	free(due);
	assert_int_equal(spool_dsn_due(f->sp, 0, &due, &n, &error), 0);
	assert_int_equal(n, 0);
	assert_null(due);
	/* A held message waits for its release, DSN included. */
	assert_int_equal(spool_hold(f->sp, ids[0], true, &error), 0);
	assert_int_equal(spool_dsn_due(f->sp, 10, &due, &n, &error), 0);
	assert_int_equal(n, 2);
	assert_string_equal(due[0], ids[1]);
	free(due);
	assert_int_equal(spool_hold(f->sp, ids[0], false, &error), 0);
	assert_true(dsn_is_due(f, ids[0]));
}

static void
test_hold(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com", "b@example.com"};
	struct spool_info info;
	char id[SPOOL_ID_SIZE], other[SPOOL_ID_SIZE], *error = NULL;
	uint64_t now = wall_ms() + 1000;

	spool_from(f, "s@example.org", NULL, rcpts, NULL, 2, id);
	spool_from(f, "s@example.org", NULL, rcpts, NULL, 1, other);
	assert_int_equal(due_of(f, id, now), 2);
	assert_int_equal(spool_hold(f->sp, id, true, &error), 0);
	assert_int_equal(due_of(f, id, now), 0);
	assert_int_equal(due_of(f, other, now), 1);
	assert_int_equal(due_of(f, id, UINT64_MAX), 0);
	/* twice: still 0 */
	assert_int_equal(spool_hold(f->sp, id, true, &error), 0);
	assert_int_equal(spool_show(f->sp, id, &info, &error), 0);
	assert_true(info.held);
	spool_info_clear(&info);
	/* Held survives a reopen. */
	reopen(f);
	assert_int_equal(due_of(f, id, now), 0);
	assert_int_equal(spool_hold(f->sp, id, false, &error), 0);
	assert_int_equal(due_of(f, id, now), 2);
	assert_int_equal(spool_show(f->sp, id, &info, &error), 0);
	assert_false(info.held);
	spool_info_clear(&info);

	assert_int_equal(spool_hold(f->sp, "0123456789abcdef", true, &error),
	                 1);
	assert_int_equal(spool_hold(f->sp, "0123456789ABCDEF", true, &error),
	                 -1);
	xfree(&error);
	check_counts(f, 2, 3);
}

static void
test_retry_now(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com", "b@example.com"};
	struct spool_result later = {
	    .state = SPOOL_RCPT_PENDING,
	    .next_try_ms = wall_ms() + 3600 * 1000,
	};
	struct spool_result done = {.state = SPOOL_RCPT_DELIVERED};
	struct spool_info info;
	char id[SPOOL_ID_SIZE], *error = NULL;
	uint64_t now = wall_ms() + 1000;

	spool_from(f, "s@example.org", NULL, rcpts, NULL, 2, id);
	assert_int_equal(
	    spool_rcpt_update(f->sp, id, "a@example.com", &later, &error), 0);
	assert_int_equal(
	    spool_rcpt_update(f->sp, id, "b@example.com", &later, &error), 0);
	assert_int_equal(due_of(f, id, now), 0);

	/* Held: nothing changes. */
	assert_int_equal(spool_hold(f->sp, id, true, &error), 0);
	assert_int_equal(spool_retry_now(f->sp, id, &error), 0);
	assert_int_equal(spool_hold(f->sp, id, false, &error), 0);
	assert_int_equal(due_of(f, id, now), 0);

	assert_int_equal(spool_retry_now(f->sp, id, &error), 0);
	assert_int_equal(due_of(f, id, now), 2);
	assert_int_equal(spool_show(f->sp, id, &info, &error), 0);
	assert_int_equal(info.next_try_ms, 0);
	assert_int_equal(info.rcpts[0].attempts, 1);
	spool_info_clear(&info);

	/* Only pending recipients are touched. */
	assert_int_equal(
	    spool_rcpt_update(f->sp, id, "a@example.com", &done, &error), 0);
	assert_int_equal(
	    spool_rcpt_update(f->sp, id, "b@example.com", &later, &error), 0);
	assert_int_equal(spool_retry_now(f->sp, id, &error), 0);
	assert_int_equal(due_of(f, id, now), 1);
	assert_int_equal(spool_show(f->sp, id, &info, &error), 0);
	assert_int_equal(info.rcpts[0].state, SPOOL_RCPT_DELIVERED);
	assert_int_equal(info.rcpts[1].next_try_ms, 0);
	spool_info_clear(&info);

	assert_int_equal(spool_retry_now(f->sp, "0123456789abcdef", &error), 1);
	assert_int_equal(spool_retry_now(f->sp, "", &error), -1);
	xfree(&error);
}

static void
test_delete(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com", "b@example.com"};
	struct spool_result fail = {.state = SPOOL_RCPT_FAILED};
	struct spool_info info;
	char id[SPOOL_ID_SIZE], kept[SPOOL_ID_SIZE], *error = NULL;

	spool_from(f, "s@example.org", NULL, rcpts, NULL, 2, id);
	spool_from(f, "s@example.org", NULL, rcpts, NULL, 2, kept);
	/* A DSN due does not stop a delete (no DSN is sent). */
	assert_int_equal(
	    spool_rcpt_update(f->sp, id, "a@example.com", &fail, &error), 0);
	assert_true(dsn_is_due(f, id));
	assert_true(file_exists(f, id));
	assert_int_equal(spool_delete(f->sp, id, &error), 0);
	assert_false(file_exists(f, id));
	assert_false(dsn_is_due(f, id));
	assert_int_equal(spool_show(f->sp, id, &info, &error), 1);
	assert_int_equal(due_of(f, id, UINT64_MAX), 0);
	check_counts(f, 1, 2);
	assert_true(file_exists(f, kept));
	/* A delivery's result arriving afterwards: 1. */
	assert_int_equal(
	    spool_rcpt_update(f->sp, id, "b@example.com", &fail, &error), 1);
	assert_int_equal(spool_delete(f->sp, id, &error), 1);
	assert_int_equal(spool_delete(f->sp, "../queue.db", &error), -1);
	xfree(&error);
	reopen(f);
	check_counts(f, 1, 2);
	assert_int_equal(count_files(f), 1);
}

static void
test_hold_user(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com"};
	char a1[SPOOL_ID_SIZE], a2[SPOOL_ID_SIZE], b[SPOOL_ID_SIZE];
	char c[SPOOL_ID_SIZE], *error = NULL;
	uint64_t now = wall_ms() + 1000;
	size_t n;

	spool_from(f, "alice@example.org", "alice@example.org", rcpts, NULL, 1,
	           a1);
	spool_from(f, "alice@example.org", "alice@example.org", rcpts, NULL, 1,
	           a2);
	spool_from(f, "bob@example.org", "bob@example.org", rcpts, NULL, 1, b);
	spool_from(f, "alice@example.org", NULL, rcpts, NULL, 1, c);
	assert_int_equal(spool_hold(f->sp, a2, true, &error), 0);

	assert_int_equal(
	    spool_hold_user(f->sp, "alice@example.org", true, &n, &error), 0);
	assert_int_equal(n, 1); /* a2 was held already */
	assert_int_equal(due_of(f, a1, now), 0);
	assert_int_equal(due_of(f, a2, now), 0);
	assert_int_equal(due_of(f, b, now), 1);
	assert_int_equal(due_of(f, c, now), 1); /* not authenticated */
	assert_int_equal(
	    spool_hold_user(f->sp, "alice@example.org", true, &n, &error), 0);
	assert_int_equal(n, 0);
	assert_int_equal(
	    spool_hold_user(f->sp, "nobody@example.org", true, &n, &error), 0);
	assert_int_equal(n, 0);
	/* Bound, not pasted: a quote in the name is just a name. */
	assert_int_equal(
	    spool_hold_user(f->sp, "x' OR '1'='1", true, &n, &error), 0);
	assert_int_equal(n, 0);
	assert_int_equal(due_of(f, b, now), 1);

	assert_int_equal(
	    spool_hold_user(f->sp, "alice@example.org", false, &n, &error), 0);
	assert_int_equal(n, 2);
	assert_int_equal(due_of(f, a1, now), 1);
	assert_int_equal(due_of(f, a2, now), 1);
	assert_int_equal(spool_hold_user(f->sp, NULL, true, &n, &error), -1);
	xfree(&error);
}

static void
test_list_show(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com", "b@example.net"};
	struct spool_result later = {
	    .state = SPOOL_RCPT_PENDING,
	    .diagnostic = "451 later",
	    .remote_mta = "mx.example.net",
	};
	struct spool_result done = {.state = SPOOL_RCPT_DELIVERED};
	struct spool_info *list, info;
	char id1[SPOOL_ID_SIZE], id2[SPOOL_ID_SIZE], *error = NULL;
	uint64_t before = wall_ms();
	size_t n;

	assert_int_equal(spool_list(f->sp, &list, &n, &error), 0);
	assert_int_equal(n, 0);
	assert_null(list);

	spool_from(f, "alice@example.org", "alice@example.org", rcpts, NULL, 2,
	           id1);
	usleep(2000);
	spool_from(f, "", NULL, rcpts + 1, NULL, 1, id2);
	later.next_try_ms = before + 600000;
	assert_int_equal(
	    spool_rcpt_update(f->sp, id1, "b@example.net", &later, &error), 0);
	assert_int_equal(
	    spool_rcpt_update(f->sp, id1, "a@example.com", &done, &error), 0);
	assert_int_equal(spool_hold(f->sp, id2, true, &error), 0);

	assert_int_equal(spool_list(f->sp, &list, &n, &error), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].id, id1);
	assert_string_equal(list[0].mail_from, "alice@example.org");
	assert_string_equal(list[0].auth_user, "alice@example.org");
	assert_string_equal(list[0].client_ip, "192.0.2.7");
	assert_int_equal(list[0].size, 3);
	assert_true(list[0].created_ms >= before);
	assert_false(list[0].held);
	assert_int_equal(list[0].nrcpts, 2);
	assert_int_equal(list[0].npending, 1);
	assert_int_equal(list[0].next_try_ms, before + 600000);
	assert_string_equal(list[0].rcpts[0].address, "a@example.com");
	assert_int_equal(list[0].rcpts[0].state, SPOOL_RCPT_DELIVERED);
	assert_false(list[0].rcpts[0].local);
	assert_string_equal(list[0].rcpts[1].address, "b@example.net");
	assert_int_equal(list[0].rcpts[1].state, SPOOL_RCPT_PENDING);
	assert_int_equal(list[0].rcpts[1].attempts, 1);
	assert_string_equal(list[0].rcpts[1].diagnostic, "451 later");
	assert_string_equal(list[0].rcpts[1].remote_mta, "mx.example.net");
	assert_string_equal(list[1].id, id2);
	assert_string_equal(list[1].mail_from, "");
	assert_null(list[1].auth_user);
	assert_true(list[1].held);
	assert_int_equal(list[1].npending, 1);
	assert_true(list[1].next_try_ms > 0);
	assert_true(list[1].created_ms >= list[0].created_ms);
	spool_list_free(&list, n);
	assert_null(list);

	assert_int_equal(spool_show(f->sp, id2, &info, &error), 0);
	assert_string_equal(info.id, id2);
	assert_true(info.held);
	assert_int_equal(info.nrcpts, 1);
	assert_string_equal(info.rcpts[0].address, "b@example.net");
	assert_null(info.rcpts[0].orcpt);
	spool_info_clear(&info);
	assert_null(info.rcpts);
	assert_int_equal(spool_show(f->sp, "0123456789abcdef", &info, &error),
	                 1);
	assert_int_equal(spool_show(f->sp, "0123", &info, &error), -1);
	xfree(&error);
	/* No read transaction was left open: a write goes through. */
	assert_int_equal(spool_hold(f->sp, id2, false, &error), 0);
}

/* The CLI's open leaves files without rows alone (a message being
 * written) and shares the database with the queue's open. */
static void
test_open_admin(void **state)
{
	struct fixture *f = *state;
	static const char *const rcpts[] = {"a@example.com"};
	char writing[SPOOL_ID_SIZE], id[SPOOL_ID_SIZE], *error = NULL;
	struct spool *admin;
	uint64_t now = wall_ms() + 1000;

	create_file(f, "half", writing);
	spool_from(f, "s@example.org", NULL, rcpts, NULL, 1, id);
	admin = spool_open_admin(f->dir, &error);
	if (admin == NULL)
		fail_msg("spool_open_admin: %s", error);
	assert_true(file_exists(f, writing));
	/* Changes through one handle show in the other. */
	assert_int_equal(spool_hold(admin, id, true, &error), 0);
	assert_int_equal(due_of(f, id, now), 0);
	assert_int_equal(spool_hold(admin, id, false, &error), 0);
	assert_int_equal(due_of(f, id, now), 1);
	assert_int_equal(spool_delete(admin, id, &error), 0);
	assert_int_equal(due_of(f, id, now), 0);
	assert_false(file_exists(f, id));
	spool_close(&admin);
	assert_null(admin);
	assert_true(file_exists(f, writing));
	reopen(f);
	assert_false(file_exists(f, writing));

	snprintf(id, sizeof(id), "%s", "missing");
	assert_null(spool_open_admin("/nonexistent/queue", &error));
	xfree(&error);
}

/* A queue.db of an older version (as those versions created it, with a
 * message in it) is upgraded at open and its message goes on. */
static void
test_migration(void **state)
{
	static const char v1[] =
	    "CREATE TABLE messages (id TEXT PRIMARY KEY NOT NULL,"
	    " mail_from TEXT NOT NULL, helo TEXT, client_ip TEXT,"
	    " auth_user TEXT, ret TEXT, envid TEXT,"
	    " smtputf8 INTEGER NOT NULL, size INTEGER NOT NULL,"
	    " created_ms INTEGER NOT NULL);";
	static const char v3[] =
	    "CREATE TABLE messages (id TEXT PRIMARY KEY NOT NULL,"
	    " mail_from TEXT NOT NULL, helo TEXT, client_ip TEXT,"
	    " auth_user TEXT, ret TEXT, envid TEXT,"
	    " smtputf8 INTEGER NOT NULL, size INTEGER NOT NULL,"
	    " created_ms INTEGER NOT NULL, headers TEXT,"
	    " flags INTEGER NOT NULL DEFAULT 0);";
	static const char rcpts_old[] =
	    "CREATE TABLE rcpts ("
	    " id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"
	    " address TEXT NOT NULL, orcpt TEXT, notify INTEGER NOT NULL,"
	    " local INTEGER NOT NULL,"
	    " state INTEGER NOT NULL CHECK (state IN (0, 1, 2)),"
	    " attempts INTEGER NOT NULL, next_try_ms INTEGER NOT NULL,"
	    " diagnostic TEXT, PRIMARY KEY (id, address));"
	    "CREATE INDEX rcpts_due ON rcpts (state, next_try_ms);"
	    "INSERT INTO messages (id, mail_from, smtputf8, size, created_ms)"
	    " VALUES ('00112233445566aa', 's@example.org', 0, 3, 1000);"
	    "INSERT INTO rcpts VALUES ('00112233445566aa', 'a@example.com',"
	    " 'rfc822;A@example.com', 4, 0, 0, 2, 5000, '451 later');"
	    "INSERT INTO rcpts VALUES ('00112233445566aa', 'b@example.com',"
	    " NULL, 0, 1, 1, 1, 0, NULL);";
	static const struct {
		const char *messages;
		int version;
	} cases[] = {{v1, 1}, {v3, 3}};
	static const char id[] = "00112233445566aa";
	struct fixture *f = *state;
	struct spool_result fail = {.state = SPOOL_RCPT_FAILED};
	struct spool_info info;
	struct spool_due *due;
	char path[512], sql[64], *error = NULL;
	sqlite3_stmt *st;
	sqlite3 *db;
	size_t i, n;
	int fd;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		spool_close(&f->sp);
		snprintf(path, sizeof(path), "%s/queue.db", f->dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/queue.db-wal", f->dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/queue.db-shm", f->dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/queue.db", f->dir);
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d;",
		         cases[i].version);
		assert_int_equal(
		    sqlite3_exec(db, cases[i].messages, NULL, NULL, NULL),
		    SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, rcpts_old, NULL, NULL, NULL),
		                 SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL),
		                 SQLITE_OK);
		sqlite3_close(db);
		snprintf(path, sizeof(path), "%s/%s", f->dir, id);
		fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
		assert_true(fd >= 0);
		write_all(fd, "x\r\n");
		close(fd);

		reopen(f);
		assert_true(file_exists(f, id));
		assert_int_equal(spool_show(f->sp, id, &info, &error), 0);
		assert_false(info.held);
		assert_int_equal(info.nrcpts, 2);
		assert_int_equal(info.npending, 1);
		assert_int_equal(info.rcpts[0].attempts, 2);
		assert_int_equal(info.rcpts[0].last_try_ms, 0);
		assert_null(info.rcpts[0].remote_mta);
		assert_string_equal(info.rcpts[0].diagnostic, "451 later");
		assert_int_equal(info.rcpts[1].state, SPOOL_RCPT_DELIVERED);
		assert_true(info.rcpts[1].local);
		spool_info_clear(&info);
		assert_int_equal(spool_due(f->sp, 5000, 10, &due, &n, &error),
		                 0);
		assert_int_equal(n, 1);
		assert_int_equal(due[0].notify, 4);
		assert_string_equal(due[0].orcpt, "rfc822;A@example.com");
		assert_false(due[0].forwarded); /* version 6's columns */
		assert_null(due[0].sender);
		spool_due_free(&due, n);

		/* The new columns work: a hold, then a DSN due. */
		assert_int_equal(spool_hold(f->sp, id, true, &error), 0);
		assert_int_equal(due_of(f, id, UINT64_MAX), 0);
		assert_int_equal(spool_hold(f->sp, id, false, &error), 0);
		assert_int_equal(spool_rcpt_update(f->sp, id, "a@example.com",
		                                   &fail, &error),
		                 0);
		assert_true(dsn_is_due(f, id));
		reopen(f);
		assert_true(dsn_is_due(f, id));

		snprintf(path, sizeof(path), "%s/queue.db", f->dir);
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version",
		                                    -1, &st, NULL),
		                 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(st, 0), 6);
		sqlite3_finalize(st);
		sqlite3_close(db);

		assert_int_equal(spool_dsn_done(f->sp, id, &error), 0);
		assert_false(file_exists(f, id));
		check_counts(f, 0, 0);
	}
}

/* A database from a newer program is refused, not downgraded. */
static void
test_newer_schema(void **state)
{
	struct fixture *f = *state;
	char path[512], *error = NULL;
	sqlite3 *db;

	spool_close(&f->sp);
	snprintf(path, sizeof(path), "%s/queue.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_null(spool_open(f->dir, &error));
	assert_non_null(strstr(error, "newer"));
	xfree(&error);
	assert_null(spool_open_admin(f->dir, &error));
	xfree(&error);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db, "PRAGMA user_version = 6", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	reopen(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_pool, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_files_wait_for_a_sync, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_deferred, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rcpt_result_errors, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_commit_errors, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_commit_rollback, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_discard, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crash_recovery, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_survives_reopen, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_envelope_round_trip, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_ids_unique, setup, teardown),
	    cmocka_unit_test(test_retry_delay),
	    cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_batch_fallback, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_dsn_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dsn_keep_and_done, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_rcpt_update, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dsn_due_order, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_hold, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retry_now, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hold_user, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_show, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_admin, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migration, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_schema, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delay_notice, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sign_first, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_rate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_steps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recycle_deferred, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_outcomes_together, setup,
	                                    teardown),
	};

	log_init("test", LOG_LEVEL_ERROR, true);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
