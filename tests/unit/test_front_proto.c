/* Tests for the first words front speaks (src/roles/front_proto.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "directory/sasl.h"
#include "roles/front_proto.h"

struct probe {
	struct buf out;
	int starttls;
	int closed;
};

static void
probe_write(void *arg, const char *data, size_t len)
{
	struct probe *p = arg;

	buf_append(&p->out, data, len);
}

static void
probe_starttls(void *arg)
{
	((struct probe *)arg)->starttls++;
}

static void
probe_close(void *arg)
{
	((struct probe *)arg)->closed++;
}

static struct front_proto *
start(struct probe *pr, enum listener_service s, bool tls, bool starttls)
{
	struct front_io io = {probe_write, probe_starttls, probe_close, pr,
	                      NULL, NULL};
	struct front_proto *p;

	memset(pr, 0, sizeof(*pr));
	buf_init(&pr->out, 0);
	p = front_proto_new(s, tls, starttls, &io);
	front_proto_start(p);
	return p;
}

static const char *
said(struct probe *pr)
{
	return buf_cstr(&pr->out);
}

static void
send_line(struct front_proto *p, struct probe *pr, const char *line)
{
	buf_reset(&pr->out);
	front_proto_line(p, line, strlen(line));
}

/* Over-long lines and shutdown, in IMAP's words. */
static void
imap_line_too_long_and_shutdown(void **state)
{
	struct probe pr;
	struct front_proto *p = start(&pr, SERVICE_IMAP, false, false);

	(void)state;
	/* No certificate: neither STARTTLS nor logins are offered. */
	assert_null(strstr(said(&pr), "STARTTLS"));
	buf_reset(&pr.out);
	front_proto_line_too_long(p);
	assert_string_equal(said(&pr), "* BAD Line too long\r\n");
	buf_reset(&pr.out);
	front_proto_shutdown(p);
	assert_string_equal(said(&pr), "* BYE Server shutting down\r\n");
	assert_int_equal(pr.closed, 1);
	front_proto_free(&p);
	buf_free(&pr.out);
}

static void
imap_tags_are_checked(void **state)
{
	struct probe pr;
	struct front_proto *p = start(&pr, SERVICE_IMAP, false, true);

	(void)state;
	assert_non_null(strstr(said(&pr), "STARTTLS"));
	send_line(p, &pr, "a1 CAPABILITY");
	assert_non_null(strstr(said(&pr), "a1 OK CAPABILITY completed\r\n"));
	send_line(p, &pr, "a\"b NOOP");
	assert_string_equal(said(&pr), "* BAD Invalid tag\r\n");
	send_line(p, &pr, "");
	assert_string_equal(said(&pr), "* BAD Invalid tag\r\n");
	send_line(p, &pr, "t2 SELECT INBOX");
	assert_string_equal(said(&pr), "t2 NO Command not implemented\r\n");
	send_line(p, &pr, "t3 STARTTLS");
	assert_string_equal(said(&pr), "t3 OK Begin TLS negotiation now\r\n");
	assert_int_equal(pr.starttls, 1);
	front_proto_tls_started(p);
	send_line(p, &pr, "t4 CAPABILITY");
	assert_null(strstr(said(&pr), "STARTTLS"));
	send_line(p, &pr, "t5 LOGOUT");
	assert_string_equal(said(&pr),
	                    "* BYE Logging out\r\nt5 OK LOGOUT completed\r\n");
	assert_int_equal(pr.closed, 1);
	front_proto_free(&p);
	buf_free(&pr.out);
}

static void
pop3_and_http(void **state)
{
	struct probe pr;
	struct front_proto *p = start(&pr, SERVICE_POP3S, true, false);

	(void)state;
	assert_string_equal(said(&pr), "+OK tern ready\r\n");
	send_line(p, &pr, "CAPA");
	assert_null(strstr(said(&pr), "STLS"));
	assert_non_null(strstr(said(&pr), "\r\n.\r\n"));
	send_line(p, &pr, "QUIT");
	assert_int_equal(pr.closed, 1);
	front_proto_free(&p);
	buf_free(&pr.out);

	p = start(&pr, SERVICE_HTTP, false, false);
	assert_string_equal(said(&pr), "");
	send_line(p, &pr, "GET / HTTP/1.1");
	send_line(p, &pr, "Host: x");
	assert_string_equal(said(&pr), "");
	send_line(p, &pr, "");
	assert_non_null(strstr(said(&pr), "HTTP/1.1 404 Not Found\r\n"));
	assert_int_equal(pr.closed, 1);
	front_proto_free(&p);
	buf_free(&pr.out);
}

/* RFC 5804 2.2: after STARTTLS the server sends its capabilities again,
 * now without STARTTLS. */
static void
sieve_speaks_first_after_tls(void **state)
{
	struct probe pr;
	struct front_proto *p = start(&pr, SERVICE_MANAGESIEVE, false, true);

	(void)state;
	assert_non_null(strstr(said(&pr), "\"STARTTLS\"\r\n"));
	send_line(p, &pr, "STARTTLS");
	assert_int_equal(pr.starttls, 1);
	buf_reset(&pr.out);
	front_proto_tls_started(p);
	assert_non_null(strstr(said(&pr), "\"IMPLEMENTATION\" \"tern\"\r\n"));
	assert_non_null(strstr(said(&pr), "OK \"tern ready\"\r\n"));
	assert_null(strstr(said(&pr), "STARTTLS"));
	front_proto_free(&p);
	buf_free(&pr.out);
}

/* A verifier that records the check and lets the test answer it. */
struct fake_verifier {
	char user[64];
	char password[64];
	int calls;
};

static void
fake_check_password(void *arg, const char *authzid, const char *user,
                    const char *password, size_t len)
{
	struct fake_verifier *v = arg;

	(void)authzid;
	snprintf(v->user, sizeof(v->user), "%s", user);
	snprintf(v->password, sizeof(v->password), "%.*s", (int)len, password);
	v->calls++;
}

static struct front_proto *
start_auth(struct probe *pr, enum listener_service s, struct fake_verifier *fv,
           struct sasl_verifier *sv)
{
	struct front_io io = {probe_write, probe_starttls, probe_close,
	                      pr,          sv,             NULL};
	struct front_proto *p;

	memset(pr, 0, sizeof(*pr));
	memset(fv, 0, sizeof(*fv));
	*sv = (struct sasl_verifier){.check_password = fake_check_password,
	                             .arg = fv};
	buf_init(&pr->out, 0);
	p = front_proto_new(s, true, false, &io);
	front_proto_start(p);
	return p;
}

static void
pop3_auth_waits_for_the_verifier(void **state)
{
	struct probe pr;
	struct fake_verifier fv;
	struct sasl_verifier sv;
	struct front_proto *p = start_auth(&pr, SERVICE_POP3S, &fv, &sv);

	(void)state;
	send_line(p, &pr, "CAPA");
	assert_non_null(
	    strstr(said(&pr), "SASL PLAIN LOGIN SCRAM-SHA-256\r\n"));
	/* "\0a@b.test\0pw" */
	send_line(p, &pr, "AUTH PLAIN AGFAYi50ZXN0AHB3");
	assert_int_equal(fv.calls, 1);
	assert_string_equal(fv.user, "a@b.test");
	assert_string_equal(fv.password, "pw");
	assert_true(front_proto_busy(p));
	assert_string_equal(said(&pr), "");
	front_proto_auth_password_result(p, 1, NULL);
	assert_false(front_proto_busy(p));
	assert_string_equal(said(&pr), "-ERR [AUTH] Authentication failed\r\n");
	assert_null(front_proto_user(p));

	send_line(p, &pr, "AUTH LOGIN");
	assert_string_equal(said(&pr), "+ VXNlcm5hbWU6\r\n");
	send_line(p, &pr, "YUBiLnRlc3Q=");
	assert_string_equal(said(&pr), "+ UGFzc3dvcmQ6\r\n");
	send_line(p, &pr, "cHc=");
	assert_true(front_proto_busy(p));
	buf_reset(&pr.out);
	front_proto_auth_password_result(p, 0, "a@b.test");
	assert_string_equal(said(&pr), "+OK Logged in\r\n");
	assert_string_equal(front_proto_user(p), "a@b.test");
	/* Once in, logins are neither offered nor accepted. */
	send_line(p, &pr, "CAPA");
	assert_null(strstr(said(&pr), "SASL"));
	send_line(p, &pr, "AUTH PLAIN AGFAYi50ZXN0AHB3");
	assert_int_equal(fv.calls, 2);
	front_proto_free(&p);
	buf_free(&pr.out);
}

static char handed_tag[64];

static void
probe_handoff(void *arg, const char *tag)
{
	(void)arg;
	snprintf(handed_tag, sizeof(handed_tag), "%s", tag);
}

/* With a handoff, an IMAP login is answered by whoever takes the session
 * (store), not by the first words. */
static void
imap_login_hands_off(void **state)
{
	struct probe pr;
	struct fake_verifier fv;
	struct sasl_verifier sv;
	struct front_io io = {probe_write, probe_starttls, probe_close, &pr,
	                      &sv, probe_handoff};
	struct front_proto *p;

	(void)state;
	memset(&pr, 0, sizeof(pr));
	memset(&fv, 0, sizeof(fv));
	sv = (struct sasl_verifier){.check_password = fake_check_password,
	                            .arg = &fv};
	buf_init(&pr.out, 0);
	p = front_proto_new(SERVICE_IMAPS, true, false, &io);
	front_proto_start(p);
	buf_reset(&pr.out);
	handed_tag[0] = '\0';
	send_line(p, &pr, "a1 LOGIN a@b.test pw");
	front_proto_auth_password_result(p, 1, NULL);
	assert_string_equal(handed_tag, "");
	assert_non_null(strstr(said(&pr), "a1 NO [AUTHENTICATIONFAILED]"));
	buf_reset(&pr.out);
	send_line(p, &pr, "a2 LOGIN a@b.test pw");
	front_proto_auth_password_result(p, 0, "a@b.test");
	assert_string_equal(handed_tag, "a2");
	assert_string_equal(said(&pr), "");
	assert_string_equal(front_proto_user(p), "a@b.test");
	front_proto_free(&p);
	buf_free(&pr.out);
}

static void
auth_needs_tls_and_bad_input_is_refused(void **state)
{
	struct probe pr;
	struct fake_verifier fv;
	struct sasl_verifier sv;
	struct front_io io = {probe_write, probe_starttls, probe_close, &pr,
	                      &sv, NULL};
	struct front_proto *p;

	(void)state;
	p = start_auth(&pr, SERVICE_POP3S, &fv, &sv);
	send_line(p, &pr, "AUTH PLAIN !!");
	assert_string_equal(said(&pr),
	                    "-ERR Invalid authentication exchange\r\n");
	send_line(p, &pr, "AUTH DIGEST-MD5");
	assert_string_equal(said(&pr),
	                    "-ERR Unsupported authentication mechanism\r\n");
	send_line(p, &pr, "AUTH LOGIN");
	send_line(p, &pr, "*");
	assert_string_equal(said(&pr), "-ERR Authentication cancelled\r\n");
	assert_int_equal(fv.calls, 0);
	front_proto_free(&p);
	buf_free(&pr.out);

	/* Before TLS: refused, and nothing reaches the verifier. */
	buf_init(&pr.out, 0);
	p = front_proto_new(SERVICE_POP3, false, true, &io);
	send_line(p, &pr, "AUTH PLAIN AGFAYi50ZXN0AHB3");
	assert_string_equal(said(&pr), "-ERR [AUTH] Use STLS first\r\n");
	send_line(p, &pr, "USER a@b.test");
	assert_string_equal(said(&pr), "-ERR [AUTH] Use STLS first\r\n");
	assert_int_equal(fv.calls, 0);
	front_proto_free(&p);
	buf_free(&pr.out);
}

static void
imap_login_and_pop3_user_pass(void **state)
{
	struct probe pr;
	struct fake_verifier fv;
	struct sasl_verifier sv;
	struct front_proto *p = start_auth(&pr, SERVICE_IMAPS, &fv, &sv);

	(void)state;
	send_line(p, &pr, "a1 LOGIN \"a@b.test\" \"p\\\"w\"");
	assert_string_equal(fv.user, "a@b.test");
	assert_string_equal(fv.password, "p\"w");
	front_proto_auth_password_result(p, 0, "a@b.test");
	assert_string_equal(said(&pr), "a1 OK Logged in\r\n");
	send_line(p, &pr, "a2 LOGIN x y");
	assert_string_equal(said(&pr),
	                    "a2 BAD Invalid authentication exchange\r\n");
	front_proto_free(&p);
	buf_free(&pr.out);

	p = start_auth(&pr, SERVICE_IMAPS, &fv, &sv);
	send_line(p, &pr, "a1 LOGIN onlyone");
	assert_string_equal(said(&pr), "a1 BAD Invalid arguments to LOGIN\r\n");
	front_proto_free(&p);
	buf_free(&pr.out);

	p = start_auth(&pr, SERVICE_POP3S, &fv, &sv);
	send_line(p, &pr, "PASS early");
	assert_string_equal(said(&pr), "-ERR USER first\r\n");
	send_line(p, &pr, "USER a@b.test");
	send_line(p, &pr, "PASS secret word");
	assert_string_equal(fv.password, "secret word");
	front_proto_auth_password_result(p, -1, NULL);
	assert_string_equal(said(&pr), "-ERR [SYS/TEMP] Temporary "
	                               "authentication failure\r\n");
	front_proto_free(&p);
	buf_free(&pr.out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(imap_line_too_long_and_shutdown),
	    cmocka_unit_test(imap_tags_are_checked),
	    cmocka_unit_test(pop3_and_http),
	    cmocka_unit_test(sieve_speaks_first_after_tls),
	    cmocka_unit_test(pop3_auth_waits_for_the_verifier),
	    cmocka_unit_test(auth_needs_tls_and_bad_input_is_refused),
	    cmocka_unit_test(imap_login_hands_off),
	    cmocka_unit_test(imap_login_and_pop3_user_pass),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
