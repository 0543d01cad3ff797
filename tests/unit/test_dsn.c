/* Tests for delivery status notifications (src/mail/dsn.c): failed,
 * delayed and delivered reports taken apart by a small MIME splitter and
 * checked field by field; headers-only and size-limited originals, line
 * end repair, header injection through remote replies, boundary
 * collisions, global (SMTPUTF8) DSNs and the buffer maximum. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/xmalloc.h"
#include "mail/dsn.h"

#define T_NOW 1767268800     /* Thu, 01 Jan 2026 12:00:00 +0000 */
#define T_ARRIVAL 1766836800 /* Sat, 27 Dec 2025 12:00:00 +0000 */

/* ------------------------------------------------------ a MIME splitter */

struct part {
	char *hdr; /* header section, CRLF lines, without the empty line */
	char *body;
	size_t body_len;
};

struct dsn_msg {
	char *raw;
	size_t len;
	char *hdr;
	char boundary[128];
	struct part parts[8];
	size_t nparts;
};

/* Value of field name in a header section, unfolded (CRLF before a
 * space or tab removed), into out; false when absent. */
static bool
hget(const char *hdr, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name), o = 0;
	const char *p = hdr;

	while (p != NULL && *p != '\0') {
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			p += nl + 1;
			while (*p == ' ')
				p++;
			for (; *p != '\0'; p++) {
				if (p[0] == '\r' && p[1] == '\n') {
					if (p[2] != ' ' && p[2] != '\t')
						break;
					p++;
					continue;
				}
				if (o + 1 < outlen)
					out[o++] = *p;
			}
			out[o] = '\0';
			return true;
		}
		p = strstr(p, "\r\n");
		if (p != NULL)
			p += 2;
	}
	return false;
}

static bool
has_field(const char *hdr, const char *name)
{
	char v[2048];

	return hget(hdr, name, v, sizeof(v));
}

static void
assert_field(const char *hdr, const char *name, const char *want)
{
	char v[4096];

	if (!hget(hdr, name, v, sizeof(v)))
		fail_msg("no %s field in:\n%s", name, hdr);
	if (strcmp(v, want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", name, v, want);
}

/* Every line ends in CRLF; header-like lines are at most 998 bytes. */
static void
assert_crlf(const char *s, size_t n)
{
	size_t line = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\r') {
			assert_true(i + 1 < n && s[i + 1] == '\n');
			i++;
			assert_true(line <= 998);
			line = 0;
			continue;
		}
		assert_true(s[i] != '\n');
		line++;
	}
	assert_int_equal(line, 0); /* ends with CRLF */
}

static char *
dupn(const char *p, size_t n)
{
	char *s = xmalloc(n + 1);

	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* Header section of s (up to the first empty line) and the rest. */
static void
split_header(const char *s, size_t n, char **hdr_r, const char **body_r,
             size_t *body_len_r)
{
	const char *e = NULL;

	if (n >= 2 && s[0] == '\r' && s[1] == '\n') {
		*hdr_r = dupn("", 0);
		*body_r = s + 2;
		*body_len_r = n - 2;
		return;
	}
	for (size_t i = 0; i + 4 <= n; i++)
		if (memcmp(s + i, "\r\n\r\n", 4) == 0) {
			e = s + i;
			break;
		}
	assert_non_null(e);
	*hdr_r = dupn(s, (size_t)(e - s) + 2);
	*body_r = e + 4;
	*body_len_r = n - (size_t)(e + 4 - s);
}

/* Take a DSN apart: top header, boundary, parts. Asserts the structure
 * (CRLF, one multipart/report, a close delimiter, nothing after it but a
 * CRLF). */
static void
parse(const struct buf *b, struct dsn_msg *m)
{
	char ct[1024], delim[160];
	const char *body, *p, *end, *q;
	size_t body_len, dl;

	memset(m, 0, sizeof(*m));
	m->raw = dupn((const char *)b->data, b->len);
	m->len = b->len;
	assert_crlf(m->raw, m->len);
	split_header(m->raw, m->len, &m->hdr, &body, &body_len);
	assert_true(hget(m->hdr, "Content-Type", ct, sizeof(ct)));
	assert_non_null(strstr(ct, "multipart/report; report-type="));
	p = strstr(ct, "boundary=\"");
	assert_non_null(p);
	p += strlen("boundary=\"");
	q = strchr(p, '"');
	assert_non_null(q);
	assert_true(q > p && (size_t)(q - p) <= 70);
	memcpy(m->boundary, p, (size_t)(q - p));
	m->boundary[q - p] = '\0';

	dl = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", m->boundary);
	end = body + body_len;
	/* the preamble is followed by the first delimiter */
	p = memmem(body, body_len, delim, dl);
	assert_non_null(p);
	for (;;) {
		const char *next, *pb;
		size_t plen;

		p += dl;
		if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
			assert_true(end - p == 4);
			assert_memory_equal(p, "--\r\n", 4);
			break;
		}
		assert_true(end - p >= 2 && p[0] == '\r' && p[1] == '\n');
		p += 2;
		next = memmem(p, (size_t)(end - p), delim, dl);
		assert_non_null(next);
		assert_true(m->nparts < 8);
		split_header(p, (size_t)(next - p), &m->parts[m->nparts].hdr,
		             &pb, &plen);
		m->parts[m->nparts].body = dupn(pb, plen);
		m->parts[m->nparts].body_len = plen;
		m->nparts++;
		p = next;
	}
}

static void
msg_free(struct dsn_msg *m)
{
	free(m->raw);
	free(m->hdr);
	for (size_t i = 0; i < m->nparts; i++) {
		free(m->parts[i].hdr);
		free(m->parts[i].body);
	}
}

static void
assert_part_type(const struct dsn_msg *m, size_t i, const char *type)
{
	assert_true(i < m->nparts);
	assert_field(m->parts[i].hdr, "Content-Type", type);
}

/* Group g (0: per-message fields, 1..: recipients) of a delivery-status
 * body, as a header section. */
static char *
ds_group(const struct dsn_msg *m, size_t g)
{
	const char *p = m->parts[1].body, *e;

	for (size_t i = 0; i < g; i++) {
		p = strstr(p, "\r\n\r\n");
		if (p == NULL)
			return NULL;
		p += 4;
	}
	e = strstr(p, "\r\n\r\n");
	return e != NULL ? dupn(p, (size_t)(e - p) + 2) : xstrdup(p);
}

static size_t
ds_ngroups(const struct dsn_msg *m)
{
	size_t n = 0;
	char *g;

	while ((g = ds_group(m, n)) != NULL) {
		bool empty = g[0] == '\0';

		free(g);
		if (empty)
			break;
		n++;
	}
	return n;
}

/* ---------------------------------------------------------------- cases */

static const char original_lf[] = "From: alice@example.org\n"
                                  "To: bob@x, carol@y\n"
                                  "Subject: hello\n"
                                  "\n"
                                  "Hi there.\n"
                                  "Second line.\n";
static const char original_crlf[] = "From: alice@example.org\r\n"
                                    "To: bob@x, carol@y\r\n"
                                    "Subject: hello\r\n"
                                    "\r\n"
                                    "Hi there.\r\n"
                                    "Second line.\r\n";
static const char original_hdrs[] = "From: alice@example.org\r\n"
                                    "To: bob@x, carol@y\r\n"
                                    "Subject: hello\r\n";

static struct dsn_report
report(const struct dsn_rcpt *rcpts, size_t n)
{
	return (struct dsn_report){
	    .reporting_mta = "mail.example.org",
	    .sender = "alice@example.org",
	    .queue_id = "0123456789abcdef",
	    .envid = "QQ314159",
	    .arrival = T_ARRIVAL,
	    .now = T_NOW,
	    .message_id = "<dsn.0123456789abcdef@mail.example.org>",
	    .rcpts = rcpts,
	    .nrcpts = n,
	};
}

static void
build(const struct dsn_report *r, const char *orig, size_t orig_len,
      struct dsn_msg *m)
{
	struct buf b;

	buf_init(&b, 0);
	assert_int_equal(dsn_build(r, (const uint8_t *)orig, orig_len, &b), 0);
	parse(&b, m);
	buf_free(&b);
}

static void
failed_two_recipients(void **state)
{
	const struct dsn_rcpt rc[] = {
	    {.address = "bob@x",
	     .orcpt = "rfc822;bob@x",
	     .action = DSN_FAILED,
	     .status = "5.1.1",
	     .remote_mta = "mx.x",
	     .diagnostic = "550 5.1.1 <bob@x>: no such user",
	     .last_attempt = T_NOW - 60},
	    {.address = "carol@y",
	     .action = DSN_FAILED,
	     .status = "4.4.7",
	     .diagnostic = "expired after 5 days in the queue"},
	};
	struct dsn_report r = report(rc, 2);
	struct dsn_msg m;
	char *g;

	(void)state;
	build(&r, original_lf, strlen(original_lf), &m);
	assert_field(m.hdr, "From",
	             "Mail Delivery System <MAILER-DAEMON@mail.example.org>");
	assert_field(m.hdr, "To", "<alice@example.org>");
	assert_field(m.hdr, "Subject", "Undelivered Mail Returned to Sender");
	assert_field(m.hdr, "Date", "Thu, 01 Jan 2026 12:00:00 +0000");
	assert_field(m.hdr, "Message-ID",
	             "<dsn.0123456789abcdef@mail.example.org>");
	assert_field(m.hdr, "MIME-Version", "1.0");
	assert_field(m.hdr, "Auto-Submitted", "auto-replied");
	assert_false(has_field(m.hdr, "Content-Transfer-Encoding"));
	assert_int_equal(m.nparts, 3);
	assert_part_type(&m, 0, "text/plain; charset=us-ascii");
	assert_part_type(&m, 1, "message/delivery-status");
	assert_part_type(&m, 2, "message/rfc822");

	/* the human part names both recipients and the reasons */
	assert_non_null(strstr(m.parts[0].body, "<bob@x>: delivery failed"));
	assert_non_null(strstr(m.parts[0].body, "host mx.x said:"));
	assert_non_null(strstr(m.parts[0].body, "no such user"));
	assert_non_null(strstr(m.parts[0].body, "<carol@y>: delivery failed"));
	assert_non_null(strstr(m.parts[0].body, "expired after 5 days"));

	assert_int_equal(ds_ngroups(&m), 3);
	g = ds_group(&m, 0);
	assert_field(g, "Reporting-MTA", "dns; mail.example.org");
	assert_field(g, "Original-Envelope-Id", "QQ314159");
	assert_field(g, "Arrival-Date", "Sat, 27 Dec 2025 12:00:00 +0000");
	assert_field(g, "X-tern-Queue-ID", "0123456789abcdef");
	assert_false(has_field(g, "Final-Recipient"));
	free(g);

	g = ds_group(&m, 1);
	assert_field(g, "Original-Recipient", "rfc822;bob@x");
	assert_field(g, "Final-Recipient", "rfc822; bob@x");
	assert_field(g, "Action", "failed");
	assert_field(g, "Status", "5.1.1");
	assert_field(g, "Remote-MTA", "dns; mx.x");
	assert_field(g, "Diagnostic-Code",
	             "smtp; 550 5.1.1 <bob@x>: no such user");
	assert_field(g, "Last-Attempt-Date", "Thu, 01 Jan 2026 11:59:00 +0000");
	assert_false(has_field(g, "Will-Retry-Until"));
	free(g);

	g = ds_group(&m, 2);
	assert_false(has_field(g, "Original-Recipient"));
	assert_field(g, "Final-Recipient", "rfc822; carol@y");
	assert_field(g, "Action", "failed");
	assert_field(g, "Status", "4.4.7");
	assert_false(has_field(g, "Remote-MTA"));
	assert_field(g, "Diagnostic-Code",
	             "x-tern; expired after 5 days in the queue");
	assert_false(has_field(g, "Last-Attempt-Date"));
	free(g);

	/* the original comes back whole, its bare LFs now CRLF */
	assert_int_equal(m.parts[2].body_len, strlen(original_crlf));
	assert_memory_equal(m.parts[2].body, original_crlf,
	                    strlen(original_crlf));
	msg_free(&m);
}

static void
delayed(void **state)
{
	const struct dsn_rcpt rc[] = {
	    {.address = "bob@x",
	     .action = DSN_DELAYED,
	     .remote_mta = "mx.x",
	     .diagnostic = "451 4.7.1 greylisted, try again later",
	     .last_attempt = T_NOW - 300,
	     .will_retry_until = T_ARRIVAL + 5 * 86400},
	};
	struct dsn_report r = report(rc, 1);
	struct dsn_msg m;
	char *g;

	(void)state;
	r.envid = NULL;
	r.headers_only = true;
	build(&r, original_crlf, strlen(original_crlf), &m);
	assert_field(m.hdr, "Subject", "Delayed Mail (still being retried)");
	assert_non_null(strstr(m.parts[0].body, "delivery delayed"));
	assert_non_null(
	    strstr(m.parts[0].body, "retried until Thu, 01 Jan 2026 12:00:00"));
	g = ds_group(&m, 0);
	assert_false(has_field(g, "Original-Envelope-Id"));
	free(g);
	g = ds_group(&m, 1);
	assert_field(g, "Action", "delayed");
	assert_field(g, "Status", "4.0.0"); /* none given: the default */
	assert_field(g, "Will-Retry-Until", "Thu, 01 Jan 2026 12:00:00 +0000");
	assert_field(g, "Diagnostic-Code",
	             "smtp; 451 4.7.1 greylisted, try again later");
	free(g);
	assert_part_type(&m, 2, "text/rfc822-headers");
	msg_free(&m);
}

static void
delivered_and_relayed(void **state)
{
	const struct dsn_rcpt rc[] = {
	    {.address = "bob@x",
	     .action = DSN_DELIVERED,
	     .status = "2.0.0",
	     .remote_mta = "mx.x",
	     .diagnostic = "250 2.0.0 Ok: queued as 4XYZ"},
	    {.address = "dave@z", .action = DSN_RELAYED},
	};
	struct dsn_report r = report(rc, 2);
	struct dsn_msg m;
	char *g;

	(void)state;
	r.headers_only = true;
	r.queue_id = NULL;
	build(&r, original_crlf, strlen(original_crlf), &m);
	assert_field(m.hdr, "Subject", "Successful Mail Delivery Report");
	g = ds_group(&m, 0);
	assert_false(has_field(g, "X-tern-Queue-ID"));
	free(g);
	g = ds_group(&m, 1);
	assert_field(g, "Action", "delivered");
	assert_field(g, "Status", "2.0.0");
	free(g);
	g = ds_group(&m, 2);
	assert_field(g, "Action", "relayed");
	assert_field(g, "Status", "2.0.0");
	assert_false(has_field(g, "Diagnostic-Code"));
	free(g);
	assert_non_null(strstr(m.parts[0].body, "<dave@z>: relayed"));
	msg_free(&m);
}

static void
headers_only(void **state)
{
	const struct dsn_rcpt rc[] = {
	    {.address = "bob@x", .action = DSN_FAILED, .status = "5.1.1"},
	};
	struct dsn_report r = report(rc, 1);
	struct dsn_msg m;

	(void)state;
	r.headers_only = true;
	build(&r, original_lf, strlen(original_lf), &m);
	assert_int_equal(m.nparts, 3);
	assert_part_type(&m, 2, "text/rfc822-headers");
	assert_int_equal(m.parts[2].body_len, strlen(original_hdrs));
	assert_memory_equal(m.parts[2].body, original_hdrs,
	                    strlen(original_hdrs));
	assert_null(strstr(m.parts[2].body, "Hi there"));
	msg_free(&m);
}

static void
over_max_original(void **state)
{
	const struct dsn_rcpt rc[] = {
	    {.address = "bob@x", .action = DSN_FAILED, .status = "5.1.1"},
	};
	struct dsn_report r = report(rc, 1);
	struct dsn_msg m;

	(void)state;
	/* at the limit: whole */
	r.max_original = strlen(original_crlf);
	build(&r, original_crlf, strlen(original_crlf), &m);
	assert_part_type(&m, 2, "message/rfc822");
	msg_free(&m);

	/* one byte over: headers */
	r.max_original = strlen(original_crlf) - 1;
	build(&r, original_crlf, strlen(original_crlf), &m);
	assert_part_type(&m, 2, "text/rfc822-headers");
	assert_int_equal(m.parts[2].body_len, strlen(original_hdrs));
	assert_memory_equal(m.parts[2].body, original_hdrs,
	                    strlen(original_hdrs));
	msg_free(&m);

	/* a header section over the limit is cut after a whole line */
	r.max_original = strlen("From: alice@example.org\r\n") + 5;
	build(&r, original_crlf, strlen(original_crlf), &m);
	assert_part_type(&m, 2, "text/rfc822-headers");
	assert_string_equal(m.parts[2].body, "From: alice@example.org\r\n");
	msg_free(&m);
}

static void
line_ends_repaired(void **state)
{
	static const char in[] = "A: b\rC: d\n\nbody\r\nline\rx";
	static const char want[] = "A: b\r\nC: d\r\n\r\nbody\r\nline\r\nx\r\n";
	const struct dsn_rcpt rc[] = {
	    {.address = "bob@x", .action = DSN_FAILED},
	};
	struct dsn_report r = report(rc, 1);
	struct dsn_msg m;
	char *g;

	(void)state;
	build(&r, in, strlen(in), &m);
	assert_string_equal(m.parts[2].body, want);
	g = ds_group(&m, 1);
	assert_field(g, "Status", "5.0.0");
	assert_false(has_field(g, "Diagnostic-Code"));
	free(g);
	msg_free(&m);
}

/* No line of the whole DSN may start with name. */
static void
assert_no_line(const struct dsn_msg *m, const char *name)
{
	size_t nl = strlen(name);

	for (const char *p = m->raw; p != NULL; p = strstr(p, "\r\n")) {
		if (p != m->raw)
			p += 2;
		assert_false(strncasecmp(p, name, nl) == 0);
	}
}

static void
injection(void **state)
{
	char longdiag[3000], word[1500];
	const struct dsn_rcpt rc[] = {
	    {.address = "bob@x\r\nBcc: a@evil",
	     .orcpt = "rfc822;bob@x\nBcc: b@evil",
	     .action = DSN_FAILED,
	     .status = "5.1.1\r\nBcc: c@evil",
	     .remote_mta = "mx.x\r\nBcc: d@evil",
	     .diagnostic = "550 x\r\nBcc: evil"},
	    {.address = "carol@y",
	     .action = DSN_FAILED,
	     .diagnostic = longdiag},
	    {.address = "dave@z", .action = DSN_FAILED, .diagnostic = word},
	};
	struct dsn_report r = report(rc, 3);
	struct dsn_msg m;
	char *g, v[4096];

	(void)state;
	for (size_t i = 0; i < sizeof(longdiag) - 1; i++)
		longdiag[i] = i % 10 == 9 ? ' ' : (char)('a' + i % 10);
	longdiag[sizeof(longdiag) - 1] = '\0';
	longdiag[20] = '\t';
	longdiag[40] = '\x1b';
	memset(word, 'w', sizeof(word) - 1);
	word[sizeof(word) - 1] = '\0';
	r.sender = "alice@example.org>\r\nBcc: e@evil";
	r.envid = "id\r\nBcc: f@evil";
	r.message_id = "<m@x>\r\nBcc: g@evil";
	r.reporting_mta = "mail.example.org\r\n\r\n--boundary";

	build(&r, original_crlf, strlen(original_crlf), &m);
	assert_no_line(&m, "Bcc");
	assert_int_equal(m.nparts, 3);
	g = ds_group(&m, 1);
	assert_field(g, "Diagnostic-Code", "smtp; 550 x Bcc: evil");
	assert_field(g, "Final-Recipient", "rfc822; bob@x Bcc: a@evil");
	assert_field(g, "Remote-MTA", "dns; mx.x Bcc: d@evil");
	assert_field(g, "Status", "5.0.0");
	free(g);

	/* bounded and folded: no line of the report over 78 but for one
	 * unbreakable word */
	g = ds_group(&m, 2);
	assert_true(hget(g, "Diagnostic-Code", v, sizeof(v)));
	assert_true(strlen(v) <= strlen("x-tern; ") + DSN_DIAGNOSTIC_MAX);
	assert_true(strlen(v) >= DSN_DIAGNOSTIC_MAX - 10);
	assert_null(strchr(v, '\t'));
	assert_null(strchr(v, '\x1b'));
	for (const char *p = g; *p != '\0';) {
		const char *e = strstr(p, "\r\n");

		assert_non_null(e);
		assert_true(e - p <= 78);
		p = e + 2;
	}
	free(g);
	g = ds_group(&m, 3);
	assert_true(hget(g, "Diagnostic-Code", v, sizeof(v)));
	assert_int_equal(strlen(v), strlen("x-tern; ") + DSN_DIAGNOSTIC_MAX);
	free(g);
	msg_free(&m);
}

static void
boundary_collision(void **state)
{
	const struct dsn_rcpt rc[] = {
	    {.address = "bob@x", .action = DSN_FAILED, .diagnostic = "550 no"},
	};
	struct dsn_report r = report(rc, 1);
	struct dsn_msg m;
	char natural[128], orig[1024];

	(void)state;
	build(&r, NULL, 0, &m);
	snprintf(natural, sizeof(natural), "%s", m.boundary);
	assert_int_equal(strncmp(natural, "=_tern-dsn-0123456789abcdef-", 28),
	                 0);
	msg_free(&m);

	/* the original carries the boundary the DSN would choose first */
	snprintf(orig, sizeof(orig),
	         "Subject: trap\r\n\r\n--%s\r\nContent-Type: text/plain\r\n"
	         "\r\nfake\r\n--%s--\r\n",
	         natural, natural);
	build(&r, orig, strlen(orig), &m);
	assert_string_not_equal(m.boundary, natural);
	assert_null(strstr(orig, m.boundary));
	assert_int_equal(m.nparts, 3);
	assert_string_equal(m.parts[2].body, orig);
	msg_free(&m);

	/* the same through a remote reply */
	{
		const struct dsn_rcpt rc2[] = {
		    {.address = "bob@x",
		     .action = DSN_FAILED,
		     .diagnostic = natural},
		};
		struct dsn_report r2 = report(rc2, 1);

		build(&r2, NULL, 0, &m);
		assert_string_not_equal(m.boundary, natural);
		assert_int_equal(m.nparts, 2);
		msg_free(&m);
	}
}

static void
empty_original(void **state)
{
	const struct dsn_rcpt rc[] = {
	    {.address = "bob@x", .action = DSN_FAILED, .status = "5.1.1"},
	};
	struct dsn_report r = report(rc, 1);
	struct dsn_msg m;

	(void)state;
	build(&r, NULL, 0, &m);
	assert_int_equal(m.nparts, 2);
	assert_part_type(&m, 1, "message/delivery-status");
	msg_free(&m);
	build(&r, "", 0, &m);
	assert_int_equal(m.nparts, 2);
	msg_free(&m);
}

static void
non_ascii(void **state)
{
	static const char orig[] =
	    "Subject: caf\xc3\xa9\r\n\r\n\xc3\xa9t\xc3\xa9"
	    "\r\n";
	const struct dsn_rcpt rc[] = {
	    {.address = "j\xc3\xb6rg@b\xc3\xbc"
	                "cher.example",
	     .action = DSN_FAILED,
	     .remote_mta = "mx.example",
	     .diagnostic = "550 caf\xc3\xa9 \xff\xfe bad \xc2\x85 end"},
	};
	struct dsn_report r = report(rc, 1);
	struct dsn_msg m;
	char *g;

	(void)state;
	/* plain DSN: '?' for every non-ASCII byte of our own text */
	build(&r, orig, strlen(orig), &m);
	assert_field(m.hdr, "Content-Transfer-Encoding", "8bit");
	assert_part_type(&m, 0, "text/plain; charset=us-ascii");
	assert_part_type(&m, 1, "message/delivery-status");
	assert_part_type(&m, 2, "message/rfc822");
	assert_field(m.parts[2].hdr, "Content-Transfer-Encoding", "8bit");
	g = ds_group(&m, 1);
	assert_field(g, "Final-Recipient", "rfc822; j??rg@b??cher.example");
	assert_field(g, "Diagnostic-Code", "smtp; 550 caf?? ?? bad ?? end");
	free(g);
	msg_free(&m);

	/* global DSN: valid UTF-8 stays, invalid bytes and C1 go */
	r.smtputf8 = true;
	build(&r, orig, strlen(orig), &m);
	assert_non_null(strstr(m.hdr, "report-type=global-delivery-status"));
	assert_part_type(&m, 0, "text/plain; charset=utf-8");
	assert_part_type(&m, 1, "message/global-delivery-status");
	assert_part_type(&m, 2, "message/global");
	g = ds_group(&m, 1);
	assert_field(g, "Final-Recipient",
	             "utf-8; j\xc3\xb6rg@b\xc3\xbc"
	             "cher.example");
	assert_field(g, "Diagnostic-Code", "smtp; 550 caf\xc3\xa9 ?? bad end");
	free(g);
	msg_free(&m);

	r.headers_only = true;
	build(&r, orig, strlen(orig), &m);
	assert_part_type(&m, 2, "message/global-headers");
	msg_free(&m);
}

static void
buffer_max(void **state)
{
	const struct dsn_rcpt rc[] = {
	    {.address = "bob@x", .action = DSN_FAILED, .diagnostic = "550 no"},
	};
	struct dsn_report r = report(rc, 1);
	struct buf b;
	size_t full;

	(void)state;
	buf_init(&b, 0);
	assert_int_equal(dsn_build(&r, (const uint8_t *)original_crlf,
	                           strlen(original_crlf), &b),
	                 0);
	full = b.len;
	buf_free(&b);

	buf_init(&b, full);
	assert_int_equal(dsn_build(&r, (const uint8_t *)original_crlf,
	                           strlen(original_crlf), &b),
	                 0);
	assert_int_equal(b.len, full);
	buf_free(&b);

	/* one byte short, or content already there: -1, out unchanged */
	buf_init(&b, full - 1);
	assert_int_equal(dsn_build(&r, (const uint8_t *)original_crlf,
	                           strlen(original_crlf), &b),
	                 -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	buf_init(&b, full + 2);
	assert_int_equal(buf_append(&b, "xyz", 3), 0);
	assert_int_equal(dsn_build(&r, (const uint8_t *)original_crlf,
	                           strlen(original_crlf), &b),
	                 -1);
	assert_int_equal(b.len, 3);
	buf_free(&b);
	buf_init(&b, 100); /* smaller than the first two parts */
	assert_int_equal(dsn_build(&r, NULL, 0, &b), -1);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void
appends_after_existing(void **state)
{
	const struct dsn_rcpt rc[] = {
	    {.address = "bob@x", .action = DSN_FAILED},
	};
	struct dsn_report r = report(rc, 1);
	struct buf b;

	(void)state;
	r.sender = "";
	r.message_id = NULL;
	buf_init(&b, 0);
	assert_int_equal(buf_append(&b, "Received: x\r\n", 13), 0);
	assert_int_equal(dsn_build(&r, NULL, 0, &b), 0);
	assert_memory_equal(b.data, "Received: x\r\nFrom: ", 19);
	assert_non_null(
	    memmem(b.data, b.len, "\r\nTo: undisclosed-recipients:;", 30));
	assert_non_null(memmem(
	    b.data, b.len, "\r\nMessage-ID: <tern-dsn-0123456789abcdef-", 41));
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(failed_two_recipients),
	    cmocka_unit_test(delayed),
	    cmocka_unit_test(delivered_and_relayed),
	    cmocka_unit_test(headers_only),
	    cmocka_unit_test(over_max_original),
	    cmocka_unit_test(line_ends_repaired),
	    cmocka_unit_test(injection),
	    cmocka_unit_test(boundary_collision),
	    cmocka_unit_test(empty_original),
	    cmocka_unit_test(non_ascii),
	    cmocka_unit_test(buffer_max),
	    cmocka_unit_test(appends_after_existing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
