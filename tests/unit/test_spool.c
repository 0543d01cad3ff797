/* Tests for queue/spool.c: the create/commit/deliver cycle, group commit
 * and its one-by-one fallback, retries, crash recovery at open, envelope
 * round trips and the commit rate, single and grouped (printed). */
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

	assert_int_equal(spool_rcpt_result(f->sp, id, "a@example.com",
	                                   SPOOL_RCPT_DELIVERED, "250 ok", 0,
	                                   &error),
	                 0);
	assert_true(file_exists(f, id));
	check_counts(f, 1, 1);
	/* Not pending any more: a second result is refused. */
	assert_int_equal(spool_rcpt_result(f->sp, id, "a@example.com",
	                                   SPOOL_RCPT_DELIVERED, NULL, 0,
	                                   &error),
	                 -1);
	free(error);
	error = NULL;
	assert_int_equal(spool_rcpt_result(f->sp, id, "b@example.net",
	                                   SPOOL_RCPT_DELIVERED, "250 ok", 0,
	                                   &error),
	                 0);
	assert_false(file_exists(f, id));
	check_counts(f, 0, 0);
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

	assert_int_equal(spool_rcpt_result(f->sp, id, "a@example.com",
	                                   SPOOL_RCPT_PENDING, "451 try later",
	                                   t + spool_retry_delay_ms(1), &error),
	                 0);
	assert_true(file_exists(f, id));
	check_counts(f, 1, 2);

	/* Only b is due now. */
	assert_int_equal(spool_due(f->sp, t, 10, &due, &n, &error), 0);
	assert_int_equal(n, 1);
	assert_string_equal(due[0].address, "b@example.com");
	spool_due_free(&due, n);
	assert_int_equal(spool_due(f->sp, t + spool_retry_delay_ms(1) - 1, 10,
	                           &due, &n, &error),
	                 0);
	assert_int_equal(n, 1);
	spool_due_free(&due, n);

	/* Both due later, in next_try order, with the attempt counted. */
	assert_int_equal(
	    spool_due(f->sp, t + spool_retry_delay_ms(1), 10, &due, &n, &error),
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

	/* A permanent failure and a delivery: the message goes. */
	assert_int_equal(spool_rcpt_result(f->sp, id, "b@example.com",
	                                   SPOOL_RCPT_FAILED,
	                                   "550 no such user", 0, &error),
	                 0);
	assert_true(file_exists(f, id));
	check_counts(f, 1, 1);
	assert_int_equal(spool_rcpt_result(f->sp, id, "a@example.com",
	                                   SPOOL_RCPT_DELIVERED, NULL, 0,
	                                   &error),
	                 0);
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
	assert_int_equal(spool_rcpt_result(f->sp, id, "nobody@example.com",
	                                   SPOOL_RCPT_DELIVERED, NULL, 0,
	                                   &error),
	                 -1);
	assert_non_null(error);
	xfree(&error);
	assert_int_equal(
	    spool_rcpt_result(f->sp, "0123456789abcdef", "a@example.com",
	                      SPOOL_RCPT_DELIVERED, NULL, 0, &error),
	    -1);
	xfree(&error);
	assert_int_equal(
	    spool_rcpt_result(f->sp, "../../etc/passwd", "a@example.com",
	                      SPOOL_RCPT_DELIVERED, NULL, 0, &error),
	    -1);
	xfree(&error);
	assert_int_equal(spool_rcpt_result(f->sp, id, "a@example.com",
	                                   (enum spool_rcpt_state)7, NULL, 0,
	                                   &error),
	                 -1);
	xfree(&error);
	/* Nothing changed, and no transaction was left open. */
	check_counts(f, 1, 1);
	assert_true(file_exists(f, id));
	assert_int_equal(spool_rcpt_result(f->sp, id, "a@example.com",
	                                   SPOOL_RCPT_DELIVERED, NULL, 0,
	                                   &error),
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
	    {.address = (char *)"\xc3\xa9t\xc3\xa9@exemple.fr"},
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
	assert_int_equal(got.nrcpts, 2);
	assert_string_equal(got.rcpts[0].address, evil);
	assert_string_equal(got.rcpts[0].orcpt, evil);
	assert_false(got.rcpts[0].local);
	assert_string_equal(got.rcpts[1].address,
	                    "\xc3\xa9t\xc3\xa9@exemple.fr");
	assert_null(got.rcpts[1].orcpt);
	spool_envelope_clear(&got);
	check_counts(f, 1, 2);

	assert_int_equal(spool_rcpt_result(f->sp, id, evil, SPOOL_RCPT_FAILED,
	                                   evil, 0, &error),
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
	static const struct {
		unsigned attempts;
		uint64_t minutes;
	} cases[] = {{0, 1},  {1, 1},  {2, 5},     {3, 15},         {4, 30},
	             {5, 60}, {6, 60}, {1000, 60}, {UINT32_MAX, 60}};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(spool_retry_delay_ms(cases[i].attempts),
		                 cases[i].minutes * 60 * 1000);
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
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
	    cmocka_unit_test_setup_teardown(test_commit_rate, setup, teardown),
	};

	log_init("test", LOG_LEVEL_ERROR, true);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
