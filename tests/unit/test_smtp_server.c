/* Tests for the SMTP server session (src/smtp/server.c, data.c,
 * received.c): a fake owner records replies and message bytes and answers
 * at once or later. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "directory/sasl.h"
#include "smtp/server.h"

struct fake {
	struct smtp_server *s;
	struct buf out; /* replies */
	struct buf msg; /* message bytes */
	bool defer;     /* answer later (pump()) instead of at once */
	int sender_answer;
	int ready_answer;
	int commit_answer;
	int write_answer;
	int starttls, tls_done, closed, begins, commits, aborts;
	bool pend_rcpt, pend_sender, pend_ready, pend_commit;
	char rcpt[300];
	/* the envelope at commit */
	char mail_from[300], envid[120], ret[8], auth_user[64], helo[64];
	bool body_8bit, smtputf8;
	uint64_t size;
	size_t nrcpts;
	char rcpts[8][300];
	unsigned notify[8];
	char orcpt[8][300];
};

static struct fake F;

static int
rcpt_answer(const char *address)
{
	if (strncmp(address, "unknown@", 8) == 0)
		return 1;
	if (strncmp(address, "relay@", 6) == 0)
		return 2;
	if (strncmp(address, "disabled@", 9) == 0)
		return 3;
	if (strncmp(address, "temp@", 5) == 0)
		return -1;
	return 0;
}

static void
f_write(void *arg, const char *data, size_t len)
{
	struct fake *f = arg;

	assert_true(len >= 2 && data[len - 2] == '\r' && data[len - 1] == '\n');
	buf_append(&f->out, data, len);
}

static void
f_starttls(void *arg)
{
	((struct fake *)arg)->starttls++;
}

static void
f_close(void *arg)
{
	((struct fake *)arg)->closed++;
}

static void
f_check_rcpt(void *arg, const char *address)
{
	struct fake *f = arg;

	snprintf(f->rcpt, sizeof(f->rcpt), "%s", address);
	if (f->defer)
		f->pend_rcpt = true;
	else
		smtp_server_rcpt_result(f->s, rcpt_answer(address));
}

static void
f_check_sender(void *arg, const char *user, const char *address)
{
	struct fake *f = arg;

	assert_string_equal(user, "alice");
	(void)address;
	if (f->defer)
		f->pend_sender = true;
	else
		smtp_server_sender_result(f->s, f->sender_answer);
}

static void
f_data_begin(void *arg)
{
	struct fake *f = arg;

	f->begins++;
	buf_reset(&f->msg);
	if (f->defer)
		f->pend_ready = true;
	else
		smtp_server_data_ready(f->s, f->ready_answer);
}

static int
f_data_write(void *arg, const void *data, size_t len)
{
	struct fake *f = arg;

	buf_append(&f->msg, data, len);
	return f->write_answer;
}

static void
f_data_commit(void *arg, const struct smtp_envelope *env)
{
	struct fake *f = arg;

	f->commits++;
	snprintf(f->mail_from, sizeof(f->mail_from), "%s", env->mail_from);
	snprintf(f->envid, sizeof(f->envid), "%s",
	         env->envid != NULL ? env->envid : "");
	snprintf(f->ret, sizeof(f->ret), "%s",
	         env->ret != NULL ? env->ret : "");
	snprintf(f->auth_user, sizeof(f->auth_user), "%s",
	         env->auth_user != NULL ? env->auth_user : "");
	snprintf(f->helo, sizeof(f->helo), "%s", env->helo);
	f->body_8bit = env->body_8bit;
	f->smtputf8 = env->smtputf8;
	f->size = env->size;
	f->nrcpts = env->nrcpts;
	for (size_t i = 0; i < env->nrcpts && i < 8; i++) {
		snprintf(f->rcpts[i], sizeof(f->rcpts[i]), "%s",
		         env->rcpts[i].address);
		f->notify[i] = env->rcpts[i].notify;
		snprintf(f->orcpt[i], sizeof(f->orcpt[i]), "%s",
		         env->rcpts[i].orcpt != NULL ? env->rcpts[i].orcpt
		                                     : "");
	}
	if (f->defer)
		f->pend_commit = true;
	else
		smtp_server_commit_result(f->s, f->commit_answer, "Q1");
}

static void
f_data_abort(void *arg)
{
	((struct fake *)arg)->aborts++;
}

static void
v_check_password(void *arg, const char *authzid, const char *user,
                 const char *password, size_t password_len)
{
	struct fake *f = arg;

	(void)authzid;
	(void)password_len;
	smtp_server_auth_password_result(
	    f->s,
	    strcmp(user, "alice") == 0 && strcmp(password, "secret") == 0 ? 0
	                                                                  : 1,
	    NULL);
}

static const struct sasl_verifier verifier = {v_check_password, NULL, NULL, &F};

/* Answer whatever is awaited; false if nothing was. */
static bool
pump(struct fake *f)
{
	if (f->pend_rcpt) {
		f->pend_rcpt = false;
		smtp_server_rcpt_result(f->s, rcpt_answer(f->rcpt));
	} else if (f->pend_sender) {
		f->pend_sender = false;
		smtp_server_sender_result(f->s, f->sender_answer);
	} else if (f->pend_ready) {
		f->pend_ready = false;
		smtp_server_data_ready(f->s, f->ready_answer);
	} else if (f->pend_commit) {
		f->pend_commit = false;
		smtp_server_commit_result(f->s, f->commit_answer, "Q1");
	} else {
		return false;
	}
	return true;
}

static struct smtp_limits L;

static void
setup(enum smtp_kind kind, bool tls, bool starttls)
{
	struct smtp_server_io io = {
	    f_write,        f_starttls,   f_close,      f_check_rcpt,
	    f_check_sender, f_data_begin, f_data_write, f_data_commit,
	    f_data_abort,   &verifier,    &F,
	};

	memset(&F, 0, sizeof(F));
	buf_init(&F.out, 0);
	buf_init(&F.msg, 0);
	F.s = smtp_server_new(kind, &L, "mx.example.test", "192.0.2.1", tls,
	                      starttls, &io);
	smtp_server_start(F.s);
	buf_reset(&F.out);
}

static void
teardown_fake(void)
{
	smtp_server_free(&F.s);
	assert_null(F.s);
	buf_free(&F.out);
	buf_free(&F.msg);
}

static int
group_setup(void **state)
{
	(void)state;
	log_init("test", LOG_LEVEL_WARNING, true);
	return 0;
}

static int
each_setup(void **state)
{
	(void)state;
	smtp_limits_default(&L);
	return 0;
}

/* Feed in pieces of at most step bytes, answering awaited questions. */
static void
feed_step(const char *in, size_t len, size_t step)
{
	size_t off = 0;

	while (off < len) {
		size_t chunk = len - off < step ? len - off : step;
		size_t n =
		    smtp_server_input(F.s, (const uint8_t *)in + off, chunk);

		off += n;
		/* Closed, or waiting for the TLS handshake: the caller
		 * drops what is left (as front does). */
		if (n < chunk && (F.closed || F.starttls > F.tls_done))
			break;
		if (n < chunk)
			assert_true(pump(&F));
	}
	while (pump(&F))
		;
}

static void
feed(const char *in)
{
	feed_step(in, strlen(in), strlen(in) + 1);
}

static const char *
out(void)
{
	return buf_cstr(&F.out);
}

static const char *
msg(void)
{
	return buf_cstr(&F.msg);
}

/* The message after the Received: header. */
static const char *
msg_body(void)
{
	const char *m = msg(), *p;

	assert_true(strncmp(m, "Received: ", 10) == 0);
	for (p = m; (p = strstr(p, "\r\n")) != NULL; p += 2)
		if (p[2] != '\t')
			return p + 2;
	fail();
	return NULL;
}

static void
expect_out(const char *want)
{
	assert_string_equal(out(), want);
	buf_reset(&F.out);
}

#define EHLO "EHLO client.example\r\n"

static void
ehlo(void)
{
	feed(EHLO);
	buf_reset(&F.out);
}

/* ---- greeting and EHLO ---- */

static const struct {
	enum smtp_kind kind;
	bool tls, starttls;
	const char *greeting;
	const char *cmd;
	bool has_starttls, has_auth;
} ehlo_cases[] = {
    {SMTP_KIND_MX, false, true, "220 mx.example.test ESMTP tern\r\n", EHLO,
     true, false},
    {SMTP_KIND_MX, true, false, "220 mx.example.test ESMTP tern\r\n", EHLO,
     false, false},
    {SMTP_KIND_SUBMISSION, false, true, "220 mx.example.test ESMTP tern\r\n",
     EHLO, true, false},
    {SMTP_KIND_SUBMISSION, true, true, "220 mx.example.test ESMTP tern\r\n",
     EHLO, false, true},
    {SMTP_KIND_LMTP, false, false, "220 mx.example.test LMTP tern\r\n",
     "LHLO client.example\r\n", false, false},
};

static void
test_greeting_ehlo(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ehlo_cases) / sizeof(ehlo_cases[0]);
	     i++) {
		struct smtp_server_io io = {
		    f_write,        f_starttls,   f_close,      f_check_rcpt,
		    f_check_sender, f_data_begin, f_data_write, f_data_commit,
		    f_data_abort,   &verifier,    &F,
		};

		memset(&F, 0, sizeof(F));
		buf_init(&F.out, 0);
		buf_init(&F.msg, 0);
		F.s = smtp_server_new(ehlo_cases[i].kind, &L, "mx.example.test",
		                      "192.0.2.1", ehlo_cases[i].tls,
		                      ehlo_cases[i].starttls, &io);
		smtp_server_start(F.s);
		expect_out(ehlo_cases[i].greeting);
		feed(ehlo_cases[i].cmd);
		assert_true(strncmp(out(), "250-mx.example.test\r\n", 21) == 0);
		assert_non_null(strstr(out(), "250-PIPELINING\r\n"));
		assert_non_null(strstr(out(), "250-SIZE 52428800\r\n"));
		assert_non_null(strstr(out(), "250-8BITMIME\r\n"));
		assert_non_null(strstr(out(), "250-ENHANCEDSTATUSCODES\r\n"));
		assert_non_null(strstr(out(), "250-SMTPUTF8\r\n"));
		assert_non_null(strstr(out(), "250-CHUNKING\r\n"));
		assert_non_null(strstr(out(), "250 DSN\r\n"));
		assert_int_equal(strstr(out(), "STARTTLS") != NULL,
		                 ehlo_cases[i].has_starttls);
		assert_int_equal(strstr(out(), "250-AUTH PLAIN LOGIN "
		                               "SCRAM-SHA-256\r\n") != NULL,
		                 ehlo_cases[i].has_auth);
		teardown_fake();
	}
}

static void
test_lmtp_needs_lhlo(void **state)
{
	(void)state;
	setup(SMTP_KIND_LMTP, false, false);
	feed("HELO a.example\r\nEHLO a.example\r\nMAIL FROM:<a@b.example>\r\n");
	expect_out("500 5.5.1 Error: LMTP requires LHLO\r\n"
	           "500 5.5.1 Error: LMTP requires LHLO\r\n"
	           "503 5.5.1 Error: send LHLO first\r\n");
	teardown_fake();
	setup(SMTP_KIND_MX, false, false);
	feed("LHLO a.example\r\nHELO a.example\r\n");
	expect_out("500 5.5.2 Error: command not recognized\r\n"
	           "250 mx.example.test\r\n");
	teardown_fake();
}

/* ---- a transaction ---- */

#define MX_SESSION                                                             \
	(EHLO "MAIL FROM:<alice@example.org>\r\n"                              \
	      "RCPT TO:<bob@example.test>\r\n"                                 \
	      "RCPT TO:<unknown@example.test>\r\n"                             \
	      "RCPT TO:<carol@example.test>\r\n"                               \
	      "DATA\r\n"                                                       \
	      "Subject: hi\r\n\r\nHello\r\n..dot\r\n.\r\n"                     \
	      "QUIT\r\n")

#define MX_REPLIES                                                             \
	("250 2.1.0 Ok\r\n"                                                    \
	 "250 2.1.5 Ok\r\n"                                                    \
	 "550 5.1.1 Error: recipient address rejected: user unknown\r\n"       \
	 "250 2.1.5 Ok\r\n"                                                    \
	 "354 End data with <CR><LF>.<CR><LF>\r\n"                             \
	 "250 2.0.0 Ok: queued as Q1\r\n"                                      \
	 "221 2.0.0 Bye\r\n")

static void
test_mx_transaction(void **state)
{
	const char *end;

	(void)state;
	for (int defer = 0; defer < 2; defer++) {
		setup(SMTP_KIND_MX, false, false);
		F.defer = defer;
		feed(MX_SESSION);
		assert_true(strncmp(out(), "250-mx.example.test\r\n", 21) == 0);
		end = strstr(out(), "250 DSN\r\n");
		assert_non_null(end);
		assert_string_equal(end + 9, MX_REPLIES);
		assert_int_equal(F.commits, 1);
		assert_int_equal(F.aborts, 0);
		assert_int_equal(F.closed, 1);
		assert_string_equal(F.mail_from, "alice@example.org");
		assert_int_equal(F.nrcpts, 2);
		assert_string_equal(F.rcpts[0], "bob@example.test");
		assert_string_equal(F.rcpts[1], "carol@example.test");
		assert_string_equal(F.helo, "client.example");
		assert_string_equal(msg_body(), "Subject: hi\r\n\r\nHello\r\n"
		                                ".dot\r\n");
		teardown_fake();
	}
}

static void
test_pipelined_deferred(void **state)
{
	static const char in[] = "MAIL FROM:<a@example.org>\r\n"
	                         "RCPT TO:<b@example.test>\r\n"
	                         "RCPT TO:<temp@example.test>\r\n"
	                         "DATA\r\n"
	                         "x\r\n.\r\n";
	size_t off = 0, n;

	(void)state;
	setup(SMTP_KIND_MX, false, false);
	F.defer = true;
	ehlo();
	/* MAIL is answered at once; the first RCPT waits. */
	n = smtp_server_input(F.s, (const uint8_t *)in, sizeof(in) - 1);
	assert_int_equal(n, strlen("MAIL FROM:<a@example.org>\r\n"
	                           "RCPT TO:<b@example.test>\r\n"));
	assert_true(smtp_server_busy(F.s));
	expect_out("250 2.1.0 Ok\r\n");
	/* Busy: nothing more is taken. */
	assert_int_equal(smtp_server_input(F.s, (const uint8_t *)in + n, 5), 0);
	assert_true(pump(&F));
	expect_out("250 2.1.5 Ok\r\n");
	off = n;
	n = smtp_server_input(F.s, (const uint8_t *)in + off,
	                      sizeof(in) - 1 - off);
	assert_int_equal(n, strlen("RCPT TO:<temp@example.test>\r\n"));
	assert_true(pump(&F));
	expect_out("451 4.3.0 Error: temporary failure, try again later\r\n");
	off += n;
	n = smtp_server_input(F.s, (const uint8_t *)in + off,
	                      sizeof(in) - 1 - off);
	assert_int_equal(n, strlen("DATA\r\n"));
	assert_string_equal(out(), "");
	assert_true(pump(&F));
	expect_out("354 End data with <CR><LF>.<CR><LF>\r\n");
	off += n;
	n = smtp_server_input(F.s, (const uint8_t *)in + off,
	                      sizeof(in) - 1 - off);
	assert_int_equal(off + n, sizeof(in) - 1);
	assert_true(smtp_server_busy(F.s));
	assert_true(pump(&F));
	expect_out("250 2.0.0 Ok: queued as Q1\r\n");
	assert_false(smtp_server_busy(F.s));
	teardown_fake();
}

/* ---- the DATA stream ---- */

static const struct {
	const char *name;
	const char *data_cmd; /* how DATA ends */
	const char *data;     /* after 354, up to and including the end */
	const char *want;     /* the message after Received: */
} stream_cases[] = {
    {"LF.LF", "DATA\r\n", "A\n.\nMAIL FROM:<e@x.example>\r\n.\r\n",
     "A\r\n.\r\nMAIL FROM:<e@x.example>\r\n"},
    {"LF.CRLF", "DATA\r\n", "A\n.\r\nMAIL FROM:<e@x.example>\r\n.\r\n",
     "A\r\n.\r\nMAIL FROM:<e@x.example>\r\n"},
    {"CR.CR", "DATA\r\n", "A\r.\rMAIL FROM:<e@x.example>\r\n.\r\n",
     "A\r\n.\r\nMAIL FROM:<e@x.example>\r\n"},
    {"CRLF.CR", "DATA\r\n", "A\r\n.\rMAIL FROM:<e@x.example>\r\n.\r\n",
     "A\r\n.\r\nMAIL FROM:<e@x.example>\r\n"},
    {"CRLF.LF", "DATA\r\n", "A\r\n.\nMAIL FROM:<e@x.example>\r\n.\r\n",
     "A\r\n.\r\nMAIL FROM:<e@x.example>\r\n"},
    {".CRLF at start after DATA LF", "DATA\n",
     ".\r\nMAIL FROM:<e@x.example>\r\n.\r\n",
     ".\r\nMAIL FROM:<e@x.example>\r\n"},
    {"empty message", "DATA\r\n", ".\r\n", ""},
    {"dot-stuffing", "DATA\r\n", "..a\r\n...\r\n.b\r\n..\r\n.\r\n",
     ".a\r\n..\r\nb\r\n.\r\n"},
    {"bare LF and CR", "DATA\r\n", "a\nb\rc\r\r\nd\r\n.\r\n",
     "a\r\nb\r\nc\r\n\r\nd\r\n"},
    {"CR CR LF", "DATA\r\n", "x\r\r\n.\r\n", "x\r\n\r\n"},
    {"no final CRLF before dot", "DATA\r\n", "abc.\r\n.\r\n", "abc.\r\n"},
    /* Runs of plain lines, which go on in one piece, broken by each
     * kind of line that does not. */
    {"runs of lines", "DATA\r\n",
     "S: a\r\n\r\nl1\r\nl2\r\n..d\r\nl3\r\n\r\nl4\rx\r\nl5\r\n"
     "l6\ny\r\nl7\r\n.\r\n",
     "S: a\r\n\r\nl1\r\nl2\r\n.d\r\nl3\r\n\r\nl4\r\nx\r\nl5\r\n"
     "l6\r\ny\r\nl7\r\n"},
    {"dot line inside a run", "DATA\r\n",
     "a\r\nb\r\n.\nc\r\n.\rd\r\ne\r\n.\r\n",
     "a\r\nb\r\n.\r\nc\r\n.\r\nd\r\ne\r\n"},
};

static void
run_stream(size_t i, size_t step)
{
	static char in[512];

	snprintf(in, sizeof(in),
	         "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
	         "%s%sNOOP\r\n",
	         stream_cases[i].data_cmd, stream_cases[i].data);
	setup(SMTP_KIND_MX, false, false);
	ehlo();
	feed_step(in, strlen(in), step);
}

static void
test_data_stream(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(stream_cases) / sizeof(stream_cases[0]);
	     i++) {
		static const size_t steps[] = {1, 2, 3, 7, 1000};

		for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
			run_stream(i, steps[k]);
			if (strcmp(msg_body(), stream_cases[i].want) != 0)
				fail_msg("%s step %zu: got [%s]",
				         stream_cases[i].name, steps[k],
				         msg_body());
			assert_int_equal(F.commits, 1);
			/* Only one message, and the NOOP after it. */
			assert_string_equal(
			    out(), "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
			           "354 End data with <CR><LF>.<CR><LF>\r\n"
			           "250 2.0.0 Ok: queued as Q1\r\n"
			           "250 2.0.0 Ok\r\n");
			teardown_fake();
		}
	}
}

/* Four megabytes of bare CRs in one buffer: the search for the next LF
 * is not started again at each CR. It was, and this took over a minute;
 * the alarm ends the test long before that (it needs milliseconds). */
static void
test_bare_cr_buffer(void **state)
{
	static const char head[] = "MAIL FROM:<a@example.org>\r\n"
	                           "RCPT TO:<b@example.test>\r\nDATA\r\n"
	                           "Subject: s\r\n\r\n";
	static const char tail[] = "\r\n.\r\n";
	const size_t lines = 2 * 1024 * 1024;
	struct buf in, want;

	(void)state;
	buf_init(&in, 0);
	buf_init(&want, 0);
	buf_append_str(&in, head);
	buf_append_str(&want, "Subject: s\r\n\r\n");
	for (size_t i = 0; i < lines; i++) {
		buf_append_str(&in, "a\r");
		buf_append_str(&want, "a\r\n");
	}
	buf_append_str(&in, tail);
	buf_append_str(&want, "\r\n");
	setup(SMTP_KIND_MX, false, false);
	ehlo();
	alarm(20);
	feed_step((const char *)in.data, in.len, in.len + 1);
	alarm(0);
	assert_int_equal(F.commits, 1);
	assert_string_equal(msg_body(), buf_cstr(&want));
	teardown_fake();
	buf_free(&in);
	buf_free(&want);
}

static void
test_bare_lf_rejected(void **state)
{
	(void)state;
	for (size_t i = 0; i < 6; i++) {
		char in[512];

		snprintf(in, sizeof(in),
		         "MAIL FROM:<a@example.org>\r\n"
		         "RCPT TO:<b@example.test>\r\n%s%sNOOP\r\n",
		         stream_cases[i].data_cmd, stream_cases[i].data);
		smtp_limits_default(&L);
		L.reject_bare_lf = true;
		setup(SMTP_KIND_MX, false, false);
		ehlo();
		feed(in);
		if (i == 5) {
			/* The bare LF ended the DATA command, the message has
			 * none: accepted, the lone "." kept as data. */
			assert_int_equal(F.commits, 1);
			assert_string_equal(msg_body(), stream_cases[i].want);
			teardown_fake();
			continue;
		}
		assert_int_equal(F.commits, 0);
		assert_int_equal(F.aborts, 1);
		assert_string_equal(out(),
		                    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		                    "354 End data with <CR><LF>.<CR><LF>\r\n"
		                    "550 5.5.2 Error: bare <LF> or <CR> "
		                    "received\r\n"
		                    "250 2.0.0 Ok\r\n");
		teardown_fake();
	}
}

static void
test_limits(void **state)
{
	char in[1024];

	(void)state;
	/* SIZE= over the limit. */
	L.message_max = 100;
	setup(SMTP_KIND_MX, false, false);
	ehlo();
	feed("MAIL FROM:<a@example.org> SIZE=101\r\n"
	     "MAIL FROM:<a@example.org> SIZE=100\r\n");
	expect_out("552 5.3.4 Error: message size exceeds fixed limit\r\n"
	           "250 2.1.0 Ok\r\n");
	/* A message over the limit is read to its end and refused. */
	memset(in, 0, sizeof(in));
	strcpy(in, "RCPT TO:<b@example.test>\r\nDATA\r\n");
	for (int i = 0; i < 20; i++)
		strcat(in, "0123456789\r\n");
	strcat(in, ".\r\nNOOP\r\n");
	feed(in);
	expect_out("250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
	           "552 5.3.4 Error: message file too big\r\n"
	           "250 2.0.0 Ok\r\n");
	assert_int_equal(F.aborts, 1);
	assert_int_equal(F.commits, 0);
	teardown_fake();

	/* Header over header_max. */
	smtp_limits_default(&L);
	L.header_max = 64;
	setup(SMTP_KIND_MX, false, false);
	ehlo();
	feed("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
	     "DATA\r\nSubject: 0123456789012345678901234567890123456789\r\n"
	     "X-Long: 0123456789012345678901234567890123456789\r\n\r\nbody\r\n"
	     ".\r\n");
	assert_non_null(strstr(out(), "552 5.3.4 Error: message header too "
	                              "big\r\n"));
	assert_int_equal(F.aborts, 1);
	teardown_fake();

	/* Recipients. */
	smtp_limits_default(&L);
	L.rcpt_max = 2;
	setup(SMTP_KIND_MX, false, false);
	ehlo();
	feed("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
	     "RCPT TO:<c@example.test>\r\nRCPT TO:<d@example.test>\r\n");
	expect_out("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
	           "452 4.5.3 Error: too many recipients\r\n");
	teardown_fake();
}

static void
test_line_too_long_and_errors(void **state)
{
	char in[2048];

	(void)state;
	L.line_max = 512;
	setup(SMTP_KIND_MX, false, false);
	memset(in, 'A', 600);
	memcpy(in + 600, "\r\nNOOP\r\n", 9);
	feed(in);
	expect_out("500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n");
	teardown_fake();

	L.errors_max = 3;
	setup(SMTP_KIND_MX, false, false);
	feed("FOO\r\nBAR\r\nRCPT TO:<a@b.example>\r\nNOOP\r\n");
	expect_out("500 5.5.2 Error: command not recognized\r\n"
	           "500 5.5.2 Error: command not recognized\r\n"
	           "503 5.5.1 Error: send HELO/EHLO first\r\n"
	           "421 4.7.0 mx.example.test Error: too many errors\r\n");
	assert_int_equal(F.closed, 1);
	/* Closed: nothing more is read. */
	assert_int_equal(smtp_server_input(F.s, (const uint8_t *)"NOOP\r\n", 6),
	                 0);
	teardown_fake();
}

static const struct {
	const char *cmd, *reply;
} misc_cases[] = {
    {"VRFY bob\r\n", "252 2.5.0 Cannot VRFY user, but will accept message "
                     "and attempt delivery\r\n"},
    {"VRFY\r\n", "501 5.5.4 Syntax: VRFY address\r\n"},
    {"EXPN staff\r\n", "502 5.5.1 Error: command not implemented\r\n"},
    {"HELP\r\n", "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET "
                 "NOOP QUIT HELP VRFY STARTTLS AUTH\r\n"},
    {"NOOP\r\n", "250 2.0.0 Ok\r\n"},
    {"noop\n", "250 2.0.0 Ok\r\n"},
    {"RSET x\r\n", "501 5.5.4 Syntax: RSET\r\n"},
    {"DATA\r\n", "503 5.5.1 Error: need MAIL command\r\n"},
    {"RCPT TO:<a@b.example>\r\n", "503 5.5.1 Error: need MAIL command\r\n"},
    {"AUTH PLAIN\r\n", "502 5.5.1 Error: authentication not enabled\r\n"},
    {"STARTTLS\r\n", "502 5.5.1 Error: command not implemented\r\n"},
    {"MAIL FROM:a@b.example\r\n", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"},
    {"MAIL FROM:  <a@b.example>\r\n",
     "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"},
    {"MAIL FROM: <a@b.example>\r\n", "250 2.1.0 Ok\r\n"},
    {"MAIL FROM:<>\r\n", "250 2.1.0 Ok\r\n"},
    {"MAIL FROM:<@r1.example,@r2.example:a@b.example>\r\n", "250 2.1.0 Ok\r\n"},
    {"MAIL FROM:<\"a b\"@b.example>\r\n", "250 2.1.0 Ok\r\n"},
    {"MAIL FROM:<a..b@b.example>\r\n",
     "501 5.1.7 Error: bad sender address syntax\r\n"},
    {"MAIL FROM:<a@b.example> BODY=BINARYMIME\r\n",
     "555 5.5.4 Error: BINARYMIME not supported\r\n"},
    {"MAIL FROM:<a@b.example> FOO=1\r\n",
     "555 5.5.4 Error: unsupported parameter\r\n"},
    {"MAIL FROM:<a@b.example> SIZE=1 SIZE=2\r\n",
     "501 5.5.4 Error: duplicate parameter\r\n"},
    {"MAIL FROM:<j\xc3\xb6@b.example>\r\n",
     "553 5.6.7 Error: SMTPUTF8 is required for this address\r\n"},
    {"MAIL FROM:<j\xc3\xb6@b.example> SMTPUTF8\r\n", "250 2.1.0 Ok\r\n"},
    {"MAIL FROM:<a@b.example> AUTH=<>\r\n", "250 2.1.0 Ok\r\n"},
};

static void
test_misc_commands(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(misc_cases) / sizeof(misc_cases[0]);
	     i++) {
		setup(SMTP_KIND_MX, false, false);
		ehlo();
		feed(misc_cases[i].cmd);
		if (strcmp(out(), misc_cases[i].reply) != 0)
			fail_msg("%s: got %s", misc_cases[i].cmd, out());
		teardown_fake();
	}
}

static const struct {
	const char *rcpt, *reply, *stored;
} rcpt_cases[] = {
    {"RCPT TO:<bob@example.test>", "250 2.1.5 Ok", "bob@example.test"},
    {"RCPT TO:<Postmaster>", "250 2.1.5 Ok", "postmaster"},
    {"RCPT TO:<@a.example:Bob+x@Example.test>", "250 2.1.5 Ok",
     "Bob+x@Example.test"},
    {"RCPT TO:<>", "553 5.1.3 Error: bad recipient address syntax", NULL},
    {"RCPT TO:<bob>", "553 5.1.3 Error: bad recipient address syntax", NULL},
    {"RCPT TO:<unknown@example.test>",
     "550 5.1.1 Error: recipient address rejected: user unknown", NULL},
    {"RCPT TO:<relay@example.test>", "554 5.7.1 Error: relay access denied",
     NULL},
    {"RCPT TO:<disabled@example.test>", "550 5.2.1 Error: mailbox disabled",
     NULL},
    {"RCPT TO:<bob@example.test> NOTIFY=NEVER,SUCCESS",
     "501 5.5.4 Error: bad NOTIFY parameter", NULL},
    {"RCPT TO:<bob@example.test> ORCPT=bob@x",
     "501 5.5.4 Error: bad ORCPT parameter", NULL},
};

static void
test_rcpt(void **state)
{
	char in[300];

	(void)state;
	for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]);
	     i++) {
		setup(SMTP_KIND_MX, false, false);
		ehlo();
		feed("MAIL FROM:<a@example.org>\r\n");
		buf_reset(&F.out);
		snprintf(in, sizeof(in), "%s\r\n", rcpt_cases[i].rcpt);
		feed(in);
		snprintf(in, sizeof(in), "%s\r\n", rcpt_cases[i].reply);
		assert_string_equal(out(), in);
		if (rcpt_cases[i].stored != NULL)
			assert_string_equal(F.rcpt, rcpt_cases[i].stored);
		teardown_fake();
	}
}

static void
test_dsn_params(void **state)
{
	(void)state;
	setup(SMTP_KIND_MX, false, false);
	ehlo();
	feed("MAIL FROM:<a@example.org> RET=hdrs ENVID=abc+2Bd SIZE=10 "
	     "BODY=8BITMIME SMTPUTF8\r\n"
	     "RCPT TO:<b@example.test> NOTIFY=SUCCESS,FAILURE "
	     "ORCPT=rfc822;b+40example.test\r\n"
	     "RCPT TO:<c@example.test> NOTIFY=NEVER\r\n"
	     "DATA\r\nx\r\n.\r\n");
	assert_int_equal(F.commits, 1);
	assert_string_equal(F.ret, "HDRS");
	assert_string_equal(F.envid, "abc+2Bd");
	assert_int_equal(F.size, 10);
	assert_true(F.body_8bit);
	assert_true(F.smtputf8);
	assert_int_equal(F.notify[0],
	                 SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE);
	assert_string_equal(F.orcpt[0], "rfc822;b+40example.test");
	assert_int_equal(F.notify[1], SMTP_NOTIFY_NEVER);
	assert_string_equal(F.orcpt[1], "");
	teardown_fake();
}

/* ---- BDAT ---- */

static void
test_bdat(void **state)
{
	static const char in[] = "MAIL FROM:<a@example.org>\r\n"
	                         "RCPT TO:<b@example.test>\r\n"
	                         "BDAT 11\r\nHi\nthere\r\n."
	                         "BDAT 5 LAST\r\n\r\nEnd"
	                         "NOOP\r\n";

	(void)state;
	for (size_t step = 1; step <= sizeof(in); step += 3) {
		setup(SMTP_KIND_MX, false, false);
		ehlo();
		feed_step(in, sizeof(in) - 1, step);
		assert_string_equal(out(),
		                    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
		                    "250 2.0.0 Ok: 11 octets received\r\n"
		                    "250 2.0.0 Ok: queued as Q1\r\n"
		                    "250 2.0.0 Ok\r\n");
		/* Binary clean: no normalization, no unstuffing. */
		assert_string_equal(msg_body(), "Hi\nthere\r\n.\r\nEnd");
		assert_int_equal(F.commits, 1);
		teardown_fake();
	}
}

static void
test_bdat_errors(void **state)
{
	(void)state;
	setup(SMTP_KIND_MX, false, false);
	ehlo();
	/* No MAIL: the chunk is read and dropped, the session in step. */
	feed("BDAT 6\r\nNOOP\r\nNOOP\r\n");
	expect_out("503 5.5.1 Error: need MAIL command\r\n250 2.0.0 Ok\r\n");
	/* No recipient. */
	feed("MAIL FROM:<a@example.org>\r\nBDAT 4 LAST\r\nRSETRSET\r\n");
	expect_out("250 2.1.0 Ok\r\n554 5.5.1 Error: no valid recipients\r\n"
	           "250 2.0.0 Ok\r\n");
	/* DATA after BDAT. */
	feed("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
	     "BDAT 3\r\nabcDATA\r\n");
	expect_out("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	           "250 2.0.0 Ok: 3 octets received\r\n"
	           "503 5.5.1 Error: DATA after BDAT\r\n");
	/* RSET aborts the message. */
	assert_int_equal(F.aborts, 0);
	feed("RSET\r\n");
	expect_out("250 2.0.0 Ok\r\n");
	assert_int_equal(F.aborts, 1);
	/* Over the size limit: refused at the end of that chunk. */
	teardown_fake();
	L.message_max = 8;
	setup(SMTP_KIND_MX, false, false);
	ehlo();
	feed("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
	     "BDAT 9 LAST\r\n123456789BDAT 1 LAST\r\nxNOOP\r\n");
	expect_out("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	           "552 5.3.4 Error: message file too big\r\n"
	           "503 5.5.1 Error: need MAIL command\r\n250 2.0.0 Ok\r\n");
	assert_int_equal(F.aborts, 1);
	assert_int_equal(F.commits, 0);
	teardown_fake();
}

/* ---- LMTP ---- */

static void
test_lmtp(void **state)
{
	(void)state;
	for (int result = 0; result >= -1; result--) {
		setup(SMTP_KIND_LMTP, false, false);
		F.commit_answer = result;
		feed("LHLO client.example\r\n");
		buf_reset(&F.out);
		feed("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
		     "RCPT TO:<unknown@example.test>\r\n"
		     "RCPT TO:<c@example.test>\r\nDATA\r\nhi\r\n.\r\n");
		if (result == 0)
			expect_out("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
			           "550 5.1.1 Error: recipient address "
			           "rejected: user unknown\r\n"
			           "250 2.1.5 Ok\r\n"
			           "354 End data with <CR><LF>.<CR><LF>\r\n"
			           "250 2.0.0 <b@example.test> Ok: queued as "
			           "Q1\r\n"
			           "250 2.0.0 <c@example.test> Ok: queued as "
			           "Q1\r\n");
		else
			assert_non_null(strstr(
			    out(), "354 End data with <CR><LF>.<CR><LF>\r\n"
			           "451 4.3.0 <b@example.test> Error: queue "
			           "file write error\r\n"
			           "451 4.3.0 <c@example.test> Error: queue "
			           "file write error\r\n"));
		assert_non_null(strstr(msg(), " with LMTP;\r\n"));
		teardown_fake();
	}
}

/* ---- submission, AUTH, STARTTLS ---- */

static void
login(void)
{
	feed(EHLO "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	assert_non_null(strstr(out(), "235 2.7.0 Authentication successful"));
	buf_reset(&F.out);
}

static void
test_submission(void **state)
{
	(void)state;
	/* Before TLS: no AUTH, MAIL refused. */
	setup(SMTP_KIND_SUBMISSION, false, true);
	ehlo();
	feed("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nMAIL "
	     "FROM:<alice@example.org>\r\n");
	expect_out("538 5.7.11 Encryption required for requested "
	           "authentication mechanism\r\n"
	           "530 5.7.0 Authentication required\r\n");
	teardown_fake();

	setup(SMTP_KIND_SUBMISSION, true, false);
	ehlo();
	feed("MAIL FROM:<alice@example.org>\r\n"
	     "AUTH PLAIN AGFsaWNlAHdyb25n\r\n"
	     "AUTH FOO\r\nAUTH LOGIN\r\n*\r\n");
	expect_out("530 5.7.0 Authentication required\r\n"
	           "535 5.7.8 Authentication credentials invalid\r\n"
	           "504 5.5.4 Unrecognized authentication mechanism\r\n"
	           "334 VXNlcm5hbWU6\r\n"
	           "501 5.0.0 Authentication cancelled\r\n");
	feed("AUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\n");
	expect_out("334 \r\n235 2.7.0 Authentication successful\r\n");
	assert_string_equal(smtp_server_auth_user(F.s), "alice");
	feed("AUTH PLAIN\r\n");
	expect_out("503 5.5.1 Error: already authenticated\r\n");
	/* The sender check. */
	F.sender_answer = 1;
	feed("MAIL FROM:<eve@example.org>\r\nMAIL FROM:<>\r\n");
	expect_out("553 5.7.1 Error: sender address not owned by user\r\n"
	           "553 5.7.1 Error: the null sender is not allowed here\r\n");
	F.sender_answer = 0;
	feed("MAIL FROM:<alice@example.org>\r\nRCPT TO:<x@example.net>\r\n"
	     "DATA\r\nSubject: s\r\n\r\nbody\r\n.\r\n");
	assert_int_equal(F.commits, 1);
	assert_string_equal(F.auth_user, "alice");
	teardown_fake();
}

#define RCVD_TLS_AUTH                                                          \
	("Received: from client.example ([192.0.2.1])\r\n"                     \
	 "\t(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256)\r\n"            \
	 "\t(authenticated user alice)\r\n"                                    \
	 "\tby mx.example.test (tern) with ESMTPSA;\r\n\t")

static void
test_received_and_added_fields(void **state)
{
	const char *m, *blank;

	(void)state;
	setup(SMTP_KIND_SUBMISSION, true, false);
	smtp_server_tls_started(F.s, "TLSv1.3", "TLS_AES_128_GCM_SHA256");
	login();
	feed("MAIL FROM:<alice@example.org>\r\nRCPT TO:<x@example.net>\r\n"
	     "DATA\r\nSubject: s\r\n\r\nbody\r\n.\r\n");
	m = msg();
	assert_true(strncmp(m, RCVD_TLS_AUTH, strlen(RCVD_TLS_AUTH)) == 0);
	for (const char *l = m; (l = strstr(l, "\r\n")) != NULL; l += 2) {
		const char *next = strstr(l + 2, "\r\n");

		if (next != NULL)
			assert_true(next - (l + 2) < 78);
	}
	blank = strstr(m, "\r\n\r\n");
	assert_non_null(blank);
	assert_non_null(strstr(m, "\r\nDate: "));
	assert_true(strstr(m, "\r\nDate: ") < blank);
	assert_non_null(strstr(m, "\r\nMessage-ID: <"));
	assert_true(strstr(m, "\r\nMessage-ID: <") < blank);
	assert_true(strstr(m, "Subject: s\r\n") < strstr(m, "\r\nDate: "));
	assert_string_equal(blank, "\r\n\r\nbody\r\n");
	/* Present ones are not added again. */
	feed("MAIL FROM:<alice@example.org>\r\nRCPT TO:<x@example.net>\r\n"
	     "DATA\r\nDATE: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	     "message-id: <a@b>\r\n\r\nbody\r\n.\r\n");
	assert_string_equal(msg_body(),
	                    "DATE: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	                    "message-id: <a@b>\r\n\r\nbody\r\n");
	teardown_fake();

	/* MX: nothing added; plain ESMTP. */
	setup(SMTP_KIND_MX, false, false);
	feed("HELO client.example\r\nMAIL FROM:<a@example.org>\r\n"
	     "RCPT TO:<b@example.test>\r\nDATA\r\nSubject: s\r\n\r\nb\r\n"
	     ".\r\n");
	assert_non_null(
	    strstr(msg(), "\tby mx.example.test (tern) with SMTP;"));
	assert_string_equal(msg_body(), "Subject: s\r\n\r\nb\r\n");
	teardown_fake();
}

/* Authentication-Results fields that claim our name come from outside
 * and are dropped (RFC 8601 §5); others stay, folded lines included. */
static void
test_forged_auth_results_removed(void **state)
{
	(void)state;
	setup(SMTP_KIND_MX, false, false);
	feed("HELO client.example\r\nMAIL FROM:<a@example.org>\r\n"
	     "RCPT TO:<b@example.test>\r\nDATA\r\n"
	     "Authentication-Results: MX.example.test; dkim=pass\r\n"
	     "\theader.d=bank.example\r\n"
	     "Subject: s\r\n"
	     "authentication-results:  mx.example.test;\r\n spf=pass\r\n"
	     "Authentication-Results: other.example; spf=fail\r\n"
	     "Authentication-Results: mx.example.test.evil; spf=fail\r\n"
	     "\r\nAuthentication-Results: mx.example.test; body\r\n.\r\n");
	assert_string_equal(
	    msg_body(),
	    "Subject: s\r\n"
	    "Authentication-Results: other.example; spf=fail\r\n"
	    "Authentication-Results: mx.example.test.evil; spf=fail\r\n"
	    "\r\nAuthentication-Results: mx.example.test; body\r\n");
	teardown_fake();
}

static void
test_starttls(void **state)
{
	(void)state;
	setup(SMTP_KIND_MX, false, true);
	ehlo();
	/* Anything pipelined after STARTTLS is never read. */
	feed("STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n");
	expect_out("220 2.0.0 Ready to start TLS\r\n");
	assert_int_equal(F.starttls, 1);
	smtp_server_tls_started(F.s, "TLSv1.3", "TLS_AES_256_GCM_SHA384");
	F.tls_done++;
	assert_null(smtp_server_helo(F.s));
	feed("MAIL FROM:<a@example.org>\r\n");
	expect_out("503 5.5.1 Error: send HELO/EHLO first\r\n");
	feed(EHLO);
	assert_null(strstr(out(), "STARTTLS"));
	buf_reset(&F.out);
	feed("STARTTLS\r\n");
	expect_out("503 5.5.1 Error: TLS already active\r\n");
	feed("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
	     "DATA\r\nx\r\n.\r\n");
	assert_non_null(strstr(msg(), "with ESMTPS;"));
	teardown_fake();
}

static void
test_shutdown_timeout(void **state)
{
	(void)state;
	setup(SMTP_KIND_MX, false, false);
	ehlo();
	feed("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
	     "DATA\r\nx\r\n");
	buf_reset(&F.out);
	smtp_server_shutdown(F.s);
	assert_string_equal(out(), "");
	assert_int_equal(F.closed, 0);
	feed(".\r\nNOOP\r\n");
	expect_out("250 2.0.0 Ok: queued as Q1\r\n"
	           "421 4.3.2 mx.example.test Service shutting down\r\n");
	assert_int_equal(F.closed, 1);
	teardown_fake();

	/* Between BDAT chunks: the transaction still completes. */
	setup(SMTP_KIND_MX, false, false);
	ehlo();
	feed("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
	     "BDAT 2\r\nab");
	buf_reset(&F.out);
	smtp_server_shutdown(F.s);
	feed("BDAT 1 LAST\r\nc");
	expect_out("250 2.0.0 Ok: queued as Q1\r\n"
	           "421 4.3.2 mx.example.test Service shutting down\r\n");
	teardown_fake();

	setup(SMTP_KIND_MX, false, false);
	ehlo();
	smtp_server_shutdown(F.s);
	expect_out("421 4.3.2 mx.example.test Service shutting down\r\n");
	teardown_fake();

	setup(SMTP_KIND_MX, false, false);
	ehlo();
	feed("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
	buf_reset(&F.out);
	F.defer = true;
	assert_int_equal(smtp_server_input(F.s, (const uint8_t *)"DATA\r\n", 6),
	                 6);
	assert_true(smtp_server_busy(F.s));
	/* The data_begin answer comes after the timeout. */
	smtp_server_timeout(F.s);
	expect_out("421 4.4.2 mx.example.test Error: timeout exceeded\r\n");
	smtp_server_data_ready(F.s, 0);
	assert_int_equal(F.aborts, 1);
	teardown_fake();
}

/* STYLE rule 22: one byte at a time, same replies and same data. */
static void
test_trickle(void **state)
{
	static const char session[] =
	    EHLO "MAIL FROM:<a@example.org> SIZE=100\r\n"
	         "RCPT TO:<b@example.test>\r\nRCPT TO:<unknown@x.example>\r\n"
	         "DATA\r\nSubject: t\r\n\r\nline\n..x\r.\r\n.\r\n"
	         "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
	         "BDAT 4\r\nab\r\nBDAT 2 LAST\r\ncd"
	         "VRFY x\r\nFOO\r\nQUIT\r\n";
	char *replies, *data;

	(void)state;
	setup(SMTP_KIND_MX, false, false);
	feed_step(session, sizeof(session) - 1, sizeof(session));
	replies = strdup(out());
	data = strdup(msg_body());
	assert_int_equal(F.closed, 1);
	teardown_fake();
	for (int defer = 0; defer < 2; defer++) {
		setup(SMTP_KIND_MX, false, false);
		F.defer = defer;
		feed_step(session, sizeof(session) - 1, 1);
		assert_string_equal(out(), replies);
		assert_string_equal(msg_body(), data);
		assert_int_equal(F.commits, 2);
		teardown_fake();
	}
	free(replies);
	free(data);
}

static void
test_write_failure(void **state)
{
	(void)state;
	setup(SMTP_KIND_MX, false, false);
	F.write_answer = -1;
	ehlo();
	feed("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\n"
	     "DATA\r\nx\r\n.\r\n");
	assert_non_null(strstr(out(), "451 4.3.0 Error: queue file write "
	                              "error\r\n"));
	assert_int_equal(F.aborts, 1);
	assert_int_equal(F.commits, 0);
	teardown_fake();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_greeting_ehlo, each_setup),
	    cmocka_unit_test_setup(test_lmtp_needs_lhlo, each_setup),
	    cmocka_unit_test_setup(test_mx_transaction, each_setup),
	    cmocka_unit_test_setup(test_pipelined_deferred, each_setup),
	    cmocka_unit_test_setup(test_data_stream, each_setup),
	    cmocka_unit_test_setup(test_bare_cr_buffer, each_setup),
	    cmocka_unit_test_setup(test_bare_lf_rejected, each_setup),
	    cmocka_unit_test_setup(test_limits, each_setup),
	    cmocka_unit_test_setup(test_line_too_long_and_errors, each_setup),
	    cmocka_unit_test_setup(test_misc_commands, each_setup),
	    cmocka_unit_test_setup(test_rcpt, each_setup),
	    cmocka_unit_test_setup(test_dsn_params, each_setup),
	    cmocka_unit_test_setup(test_bdat, each_setup),
	    cmocka_unit_test_setup(test_bdat_errors, each_setup),
	    cmocka_unit_test_setup(test_lmtp, each_setup),
	    cmocka_unit_test_setup(test_submission, each_setup),
	    cmocka_unit_test_setup(test_received_and_added_fields, each_setup),
	    cmocka_unit_test_setup(test_forged_auth_results_removed, each_setup),
	    cmocka_unit_test_setup(test_starttls, each_setup),
	    cmocka_unit_test_setup(test_shutdown_timeout, each_setup),
	    cmocka_unit_test_setup(test_trickle, each_setup),
	    cmocka_unit_test_setup(test_write_failure, each_setup),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
