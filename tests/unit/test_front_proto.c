/* Tests for the first words front speaks (src/roles/front_proto.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "core/buf.h"
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
	struct front_io io = {probe_write, probe_starttls, probe_close, pr};
	struct front_proto *p;

	memset(pr, 0, sizeof(*pr));
	buf_init(&pr->out, 0);
	p = front_proto_new(s, "mx.example.test", tls, starttls, &io);
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

static void
smtp_starttls_flow(void **state)
{
	struct probe pr;
	struct front_proto *p = start(&pr, SERVICE_SUBMISSION, false, true);

	(void)state;
	assert_string_equal(said(&pr), "220 mx.example.test ESMTP tern\r\n");
	send_line(p, &pr, "EHLO client");
	assert_non_null(strstr(said(&pr), "250-STARTTLS\r\n"));
	send_line(p, &pr, "starttls");
	assert_string_equal(said(&pr), "220 2.0.0 Ready to start TLS\r\n");
	assert_int_equal(pr.starttls, 1);
	front_proto_tls_started(p);
	/* After TLS, STARTTLS is neither offered nor accepted. */
	send_line(p, &pr, "EHLO client");
	assert_null(strstr(said(&pr), "STARTTLS"));
	send_line(p, &pr, "STARTTLS");
	assert_string_equal(said(&pr), "502 5.5.1 Command not implemented\r\n");
	assert_int_equal(pr.starttls, 1);
	send_line(p, &pr, "QUIT");
	assert_string_equal(said(&pr), "221 2.0.0 Bye\r\n");
	assert_int_equal(pr.closed, 1);
	/* Nothing is answered once closing. */
	send_line(p, &pr, "NOOP");
	assert_string_equal(said(&pr), "");
	front_proto_free(&p);
	buf_free(&pr.out);
}

static void
smtp_without_certificate_offers_no_tls(void **state)
{
	struct probe pr;
	struct front_proto *p = start(&pr, SERVICE_SMTP, false, false);

	(void)state;
	send_line(p, &pr, "EHLO client");
	assert_null(strstr(said(&pr), "STARTTLS"));
	send_line(p, &pr, "STARTTLS");
	assert_int_equal(pr.starttls, 0);
	send_line(p, &pr, "MAIL FROM:<a@b>");
	assert_string_equal(said(&pr), "502 5.5.1 Command not implemented\r\n");
	buf_reset(&pr.out);
	front_proto_line_too_long(p);
	assert_string_equal(said(&pr), "500 5.5.2 Line too long\r\n");
	buf_reset(&pr.out);
	front_proto_shutdown(p);
	assert_string_equal(said(&pr),
			    "421 4.3.2 mx.example.test Server shutting down\r\n");
	assert_int_equal(pr.closed, 1);
	front_proto_free(&p);
	buf_free(&pr.out);
}

static void
lmtp_wants_lhlo(void **state)
{
	struct probe pr;
	struct front_proto *p = start(&pr, SERVICE_LMTP, false, false);

	(void)state;
	send_line(p, &pr, "HELO x");
	assert_string_equal(said(&pr), "502 5.5.1 Command not implemented\r\n");
	send_line(p, &pr, "LHLO x");
	assert_non_null(strstr(said(&pr), "250 ENHANCEDSTATUSCODES"));
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(smtp_starttls_flow),
		cmocka_unit_test(smtp_without_certificate_offers_no_tls),
		cmocka_unit_test(lmtp_wants_lhlo),
		cmocka_unit_test(imap_tags_are_checked),
		cmocka_unit_test(pop3_and_http),
		cmocka_unit_test(sieve_speaks_first_after_tls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
