/* Delivery status notifications: the multipart/report (RFC 6522) with a
 * plain-text explanation, the RFC 3464 delivery-status fields (RFC 6533
 * global forms for SMTPUTF8 mail) and the original or its header section.
 * SECURITY: every text that reaches a header or a status field (remote
 * replies, addresses, ids) is cleaned first: controls become spaces, runs
 * of spaces collapse, non-ASCII becomes '?' (or must be valid UTF-8 in a
 * global DSN), lengths are bounded, and long fields are folded at spaces,
 * so no input can start a field or a line of its own. The boundary is
 * checked against every byte of every part. */
#include "core/utf8.h"
#include "mail/dsn.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"

#define DSN_FIELD_MAX 512 /* bytes kept of an address, id or host */
#define DSN_FOLD_AT 78    /* header lines are folded past this column */
#define DSN_TEXT_WIDTH 76 /* the human-readable part is wrapped here */
#define DSN_BOUNDARY_TRIES 1000
#define DSN_QID_MAX 16 /* bytes of the queue id used in the boundary */

/* Output with a sticky error: after one failed append every later one is
 * a no-op, and the caller checks once. */
struct dsn_out {
	struct buf *b;
	int err;
};

static void
put(struct dsn_out *o, const void *p, size_t n)
{
	if (o->err == 0 && n > 0 && buf_append(o->b, p, n) < 0)
		o->err = -1;
}

static void
puts_(struct dsn_out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void
crlf(struct dsn_out *o)
{
	put(o, "\r\n", 2);
}

/* Clean an untrusted text into out (size max + 1): controls (C0, DEL,
 * and C1 in UTF-8) become spaces, whitespace runs collapse to one space,
 * leading and trailing spaces go; non-ASCII becomes '?' unless utf8 and
 * valid. At most max bytes are kept, never half a character. Returns the
 * length. */
static size_t
clean(const char *in, size_t max, bool utf8, char *out)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t n = in != NULL ? strlen(in) : 0, o = 0;
	bool space = false;

	for (size_t i = 0; i < n;) {
		size_t len = 1;
		const unsigned char *ch = p + i;
		unsigned char rep = 0;

		if (p[i] < 0x20 || p[i] == 0x7f) {
			rep = ' ';
		} else if (p[i] >= 0x80) {
			len = utf8 ? utf8_seq_len(p + i, n - i) : 0;
			if (len == 0) {
				len = 1;
				rep = '?';
			} else if (len == 2 && p[i] == 0xc2 &&
			           p[i + 1] < 0xa0) {
				rep = ' '; /* C1 control */
			}
		}
		i += len;
		if (rep == ' ' || (rep == 0 && *ch == ' ')) {
			space = o > 0;
			continue;
		}
		size_t need = (rep != 0 ? 1 : len) + (space ? 1 : 0);
		if (o + need > max)
			break;
		if (space)
			out[o++] = ' ';
		space = false;
		if (rep != 0) {
			out[o++] = (char)rep;
		} else {
			memcpy(out + o, ch, len);
			o += len;
		}
	}
	out[o] = '\0';
	return o;
}

static bool
has_8bit(const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++)
		if (s[i] >= 0x80)
			return true;
	return false;
}

/* "Thu, 01 Jan 2026 12:00:00 +0000" (RFC 5322 3.3), locale-free. */
static void
format_date(time_t t, char *out, size_t outlen)
{
	static const char *const wday[] = {"Sun", "Mon", "Tue", "Wed",
	                                   "Thu", "Fri", "Sat"};
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr",
	                                  "May", "Jun", "Jul", "Aug",
	                                  "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;
	int n;

	if (gmtime_r(&t, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 ||
	    tm.tm_mon < 0 || tm.tm_mon > 11) {
		memset(&tm, 0, sizeof(tm));
		tm.tm_year = 70;
		tm.tm_mday = 1;
		tm.tm_wday = 4;
	}
	n = snprintf(out, outlen, "%s, %02d %s %04d %02d:%02d:%02d +0000",
	             wday[tm.tm_wday], tm.tm_mday, mon[tm.tm_mon],
	             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (n < 0 || (size_t)n >= outlen)
		out[0] = '\0';
}

/* One header (or delivery-status) field, "Name: value" CRLF, folded at
 * spaces before column DSN_FOLD_AT. value is clean (one line, single
 * spaces, no leading or trailing space). */
static void
field(struct dsn_out *o, const char *name, const char *value)
{
	size_t col = strlen(name) + 1;
	bool first = true;

	puts_(o, name);
	put(o, ":", 1);
	while (*value != '\0') {
		const char *sp = strchr(value, ' ');
		size_t wlen = sp != NULL ? (size_t)(sp - value) : strlen(value);

		if (!first && col + 1 + wlen > DSN_FOLD_AT) {
			crlf(o);
			col = 0;
		}
		put(o, " ", 1);
		put(o, value, wlen);
		col += 1 + wlen;
		first = false;
		value += wlen;
		if (*value == ' ')
			value++;
	}
	crlf(o);
}

static void
field_date(struct dsn_out *o, const char *name, time_t t)
{
	char date[64];

	format_date(t, date, sizeof(date));
	field(o, name, date);
}

/* Text for the human-readable part, wrapped at spaces to DSN_TEXT_WIDTH
 * with indent spaces before every line. text is clean. */
static void
wrapped(struct dsn_out *o, const char *text, size_t indent)
{
	static const char spaces[] = "        ";
	size_t col = 0;

	if (indent > sizeof(spaces) - 1)
		indent = sizeof(spaces) - 1;
	while (*text != '\0') {
		const char *sp = strchr(text, ' ');
		size_t wlen = sp != NULL ? (size_t)(sp - text) : strlen(text);

		if (col > indent && col + 1 + wlen > DSN_TEXT_WIDTH) {
			crlf(o);
			col = 0;
		}
		if (col == 0) {
			put(o, spaces, indent);
			col = indent;
		} else {
			put(o, " ", 1);
			col++;
		}
		put(o, text, wlen);
		col += wlen;
		text += wlen;
		if (*text == ' ')
			text++;
	}
	if (col > 0)
		crlf(o);
}

static const char *
action_name(enum dsn_action a)
{
	switch (a) {
	case DSN_FAILED:
		return "failed";
	case DSN_DELAYED:
		return "delayed";
	case DSN_DELIVERED:
		return "delivered";
	case DSN_RELAYED:
		return "relayed";
	}
	return "failed";
}

static const char *
action_words(enum dsn_action a)
{
	switch (a) {
	case DSN_FAILED:
		return "delivery failed";
	case DSN_DELAYED:
		return "delivery delayed, still trying";
	case DSN_DELIVERED:
		return "delivered";
	case DSN_RELAYED:
		return "relayed to a server that sends no delivery reports";
	}
	return "delivery failed";
}

/* "x.y.z" with a class of 2, 4 or 5 and at most 3 digits per part; else
 * the default for the action. */
static const char *
status_code(const struct dsn_rcpt *rc)
{
	const char *s = rc->status;
	int parts = 0, digits = 0;

	if (s != NULL && (s[0] == '2' || s[0] == '4' || s[0] == '5') &&
	    s[1] == '.') {
		for (const char *p = s; *p != '\0'; p++) {
			if (*p >= '0' && *p <= '9') {
				if (++digits > 3)
					break;
			} else if (*p == '.' && digits > 0 && parts < 2) {
				parts++;
				digits = 0;
			} else {
				digits = 99;
				break;
			}
		}
		if (parts == 2 && digits > 0 && digits <= 3)
			return s;
	}
	switch (rc->action) {
	case DSN_DELAYED:
		return "4.0.0";
	case DSN_DELIVERED:
	case DSN_RELAYED:
		return "2.0.0";
	case DSN_FAILED:
		break;
	}
	return "5.0.0";
}

static bool
any_action(const struct dsn_report *r, enum dsn_action a)
{
	for (size_t i = 0; i < r->nrcpts; i++)
		if (r->rcpts[i].action == a)
			return true;
	return false;
}

/* Part 1: the explanation in plain words. */
static void
build_text(const struct dsn_report *r, struct dsn_out *o)
{
	bool u = r->smtputf8;
	char host[DSN_FIELD_MAX + 1], line[DSN_FIELD_MAX + 64];
	char addr[DSN_FIELD_MAX + 1], remote[DSN_FIELD_MAX + 1];
	char diag[DSN_DIAGNOSTIC_MAX + 1], date[64];
	int n;

	clean(r->reporting_mta, DSN_FIELD_MAX, false, host);
	n = snprintf(line, sizeof(line), "This is the mail system at host %s.",
	             host);
	if (n > 0 && (size_t)n < sizeof(line))
		wrapped(o, line, 0);
	crlf(o);
	if (any_action(r, DSN_FAILED))
		wrapped(o,
		        "I'm sorry to have to tell you that your message could "
		        "not be delivered to one or more recipients. The "
		        "reasons are below; the original message is attached.",
		        0);
	else if (any_action(r, DSN_DELAYED))
		wrapped(o,
		        "Your message could not be delivered yet to one or "
		        "more recipients. It stays in the queue and delivery "
		        "will be retried; you do not need to send it again.",
		        0);
	else
		wrapped(o,
		        "Your message was delivered to the recipients below, "
		        "as you asked.",
		        0);
	if (r->queue_id != NULL) {
		char qid[DSN_FIELD_MAX + 1];

		clean(r->queue_id, DSN_FIELD_MAX, false, qid);
		crlf(o);
		puts_(o, "Queue ID: ");
		puts_(o, qid);
		crlf(o);
	}
	for (size_t i = 0; i < r->nrcpts; i++) {
		const struct dsn_rcpt *rc = &r->rcpts[i];

		crlf(o);
		clean(rc->address, DSN_FIELD_MAX, u, addr);
		put(o, "<", 1);
		puts_(o, addr);
		puts_(o, ">: ");
		puts_(o, action_words(rc->action));
		crlf(o);
		if (rc->action == DSN_DELAYED && rc->will_retry_until != 0) {
			format_date(rc->will_retry_until, date, sizeof(date));
			puts_(o, "    retried until ");
			puts_(o, date);
			crlf(o);
		}
		if (rc->diagnostic == NULL)
			continue;
		clean(rc->diagnostic, DSN_DIAGNOSTIC_MAX, u, diag);
		if (rc->remote_mta != NULL) {
			clean(rc->remote_mta, DSN_FIELD_MAX, false, remote);
			puts_(o, "    host ");
			puts_(o, remote);
			puts_(o, " said:");
			crlf(o);
		}
		wrapped(o, diag, 4);
	}
}

/* "rfc822; a@b", or "utf-8; …" for a non-ASCII address in a global DSN
 * (RFC 6533 3). */
static void
recipient_field(struct dsn_out *o, const char *name, const char *addr,
                bool smtputf8)
{
	char a[DSN_FIELD_MAX + 1], v[DSN_FIELD_MAX + 16];
	size_t n = clean(addr, DSN_FIELD_MAX, smtputf8, a);

	snprintf(v, sizeof(v), "%s; %s", has_8bit(a, n) ? "utf-8" : "rfc822",
	         a);
	field(o, name, v);
}

/* Part 2: the RFC 3464 fields, in the order of its ABNF (2.1). */
static void
build_status(const struct dsn_report *r, struct dsn_out *o)
{
	bool u = r->smtputf8;
	char v[DSN_DIAGNOSTIC_MAX + 32], t[DSN_DIAGNOSTIC_MAX + 1];

	if (r->envid != NULL) {
		clean(r->envid, DSN_FIELD_MAX, false, t);
		field(o, "Original-Envelope-Id", t);
	}
	clean(r->reporting_mta, DSN_FIELD_MAX, false, t);
	snprintf(v, sizeof(v), "dns; %s", t);
	field(o, "Reporting-MTA", v);
	if (r->arrival != 0)
		field_date(o, "Arrival-Date", r->arrival);
	if (r->queue_id != NULL) {
		clean(r->queue_id, DSN_FIELD_MAX, false, t);
		field(o, "X-tern-Queue-ID", t);
	}
	for (size_t i = 0; i < r->nrcpts; i++) {
		const struct dsn_rcpt *rc = &r->rcpts[i];

		crlf(o);
		if (rc->orcpt != NULL) {
			clean(rc->orcpt, DSN_FIELD_MAX, u, t);
			field(o, "Original-Recipient", t);
		}
		recipient_field(o, "Final-Recipient", rc->address, u);
		field(o, "Action", action_name(rc->action));
		field(o, "Status", status_code(rc));
		if (rc->remote_mta != NULL) {
			clean(rc->remote_mta, DSN_FIELD_MAX, false, t);
			snprintf(v, sizeof(v), "dns; %s", t);
			field(o, "Remote-MTA", v);
		}
		if (rc->diagnostic != NULL) {
			clean(rc->diagnostic, DSN_DIAGNOSTIC_MAX, u, t);
			snprintf(v, sizeof(v), "%s; %s",
			         rc->remote_mta != NULL ? "smtp" : "x-tern", t);
			field(o, "Diagnostic-Code", v);
		}
		if (rc->last_attempt != 0)
			field_date(o, "Last-Attempt-Date", rc->last_attempt);
		if (rc->action == DSN_DELAYED && rc->will_retry_until != 0)
			field_date(o, "Will-Retry-Until", rc->will_retry_until);
	}
}

/* Bytes of the original that go back: all of it, or its header section
 * (up to the first empty line, bounded by max_original when set, cut
 * at a line end). *headers_r says which. */
static size_t
original_extent(const struct dsn_report *r, const uint8_t *p, size_t n,
                bool *headers_r)
{
	size_t end = n, last_line = 0;

	*headers_r =
	    r->headers_only || (r->max_original > 0 && n > r->max_original);
	if (!*headers_r)
		return n;
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n' && p[i] != '\r')
			continue;
		size_t next = i + 1;

		if (p[i] == '\r' && next < n && p[next] == '\n')
			next++;
		if (i == last_line) { /* the empty line */
			end = last_line;
			break;
		}
		if (r->max_original > 0 && next > r->max_original) {
			end = last_line;
			break;
		}
		last_line = next;
		i = next - 1;
	}
	if (end == n && r->max_original > 0 && n > r->max_original)
		end = last_line; /* no empty line: keep whole lines only */
	return end;
}

/* The original with bare CR and bare LF turned into CRLF. */
static void
put_original(struct dsn_out *o, const uint8_t *p, size_t n)
{
	size_t start = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\r' && p[i] != '\n')
			continue;
		put(o, p + start, i - start);
		crlf(o);
		if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
			i++;
		start = i + 1;
	}
	put(o, p + start, n - start);
	if (n > 0 && p[n - 1] != '\n' && p[n - 1] != '\r')
		crlf(o);
}

static uint64_t
fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t
mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static bool
contains(const void *hay, size_t n, const char *needle)
{
	/* memmem wants a valid pointer even for an empty haystack. */
	return hay != NULL && n > 0 &&
	       memmem(hay, n, needle, strlen(needle)) != NULL;
}

/* Candidate try for the boundary: the first is plain (queue id and
 * time); later ones add a hash of all the content, which the content
 * cannot contain without changing it. */
static void
boundary_candidate(const struct dsn_report *r, unsigned int try, uint64_t hash,
                   char *out, size_t outlen)
{
	char qid[DSN_QID_MAX + 1];
	size_t q = 0;

	for (const char *p = r->queue_id != NULL ? r->queue_id : "";
	     *p != '\0' && q < DSN_QID_MAX; p++) {
		char c = *p;
		bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		          (c >= 'A' && c <= 'Z');

		qid[q++] = ok ? c : '_';
	}
	qid[q] = '\0';
	if (try == 0)
		snprintf(out, outlen, "=_tern-dsn-%s-%llx", qid,
		         (unsigned long long)r->now);
	else
		snprintf(out, outlen, "=_tern-dsn-%s-%llx-%u-%016llx", qid,
		         (unsigned long long)r->now, try,
		         (unsigned long long)mix64(hash ^ try));
}

static const char *
subject(const struct dsn_report *r)
{
	if (any_action(r, DSN_FAILED))
		return "Undelivered Mail Returned to Sender";
	if (any_action(r, DSN_DELAYED))
		return "Delayed Mail (still being retried)";
	return "Successful Mail Delivery Report";
}

static void
part_header(struct dsn_out *o, const char *boundary, const char *descr,
            const char *type, bool eightbit)
{
	puts_(o, "--");
	puts_(o, boundary);
	crlf(o);
	field(o, "Content-Description", descr);
	field(o, "Content-Type", type);
	if (eightbit)
		field(o, "Content-Transfer-Encoding", "8bit");
	crlf(o);
}

int
dsn_build(const struct dsn_report *r, const uint8_t *original,
          size_t original_len, struct buf *out)
{
	struct buf text, status;
	struct dsn_out to, so, o = {out, 0};
	size_t start = out->len, keep = 0;
	bool headers = false, text8, status8, orig8 = false;
	bool u = r->smtputf8;
	char boundary[80], v[DSN_FIELD_MAX + 128], t[DSN_FIELD_MAX + 1];
	char date[64];
	uint64_t hash;
	unsigned int try;

	buf_init(&text, out->max);
	buf_init(&status, out->max);
	to = (struct dsn_out){&text, 0};
	so = (struct dsn_out){&status, 0};
	build_text(r, &to);
	build_status(r, &so);
	if (to.err < 0 || so.err < 0)
		goto fail;
	text8 = has_8bit(text.data, text.len);
	status8 = has_8bit(status.data, status.len);

	if (original == NULL)
		original_len = 0;
	if (original_len > 0) {
		keep = original_extent(r, original, original_len, &headers);
		orig8 = has_8bit(original, keep);
	}

	/* A boundary found in no part (the original is searched whole: the
	 * boundary has no CR or LF, so converting line ends cannot make or
	 * break a match). If the original defeats every try, it is left out
	 * (RFC 6522 makes the third part optional). */
	hash = fnv1a(0xcbf29ce484222325ULL, text.data, text.len);
	hash = fnv1a(hash, status.data, status.len);
	hash = fnv1a(hash, original, original_len);
	for (try = 0; try < 2 * DSN_BOUNDARY_TRIES; try++) {
		if (try == DSN_BOUNDARY_TRIES)
			original_len = keep = 0;
		boundary_candidate(r, try, hash, boundary, sizeof(boundary));
		if (!contains(text.data, text.len, boundary) &&
		    !contains(status.data, status.len, boundary) &&
		    !contains(original, original_len, boundary))
			break;
	}
	if (try == 2 * DSN_BOUNDARY_TRIES)
		goto fail; /* only our own two parts left: cannot happen */

	clean(r->reporting_mta, DSN_FIELD_MAX, false, t);
	snprintf(v, sizeof(v), "Mail Delivery System <MAILER-DAEMON@%s>", t);
	field(&o, "From", v);
	clean(r->sender, DSN_FIELD_MAX, u, t);
	snprintf(v, sizeof(v), "<%s>", t);
	field(&o, "To", t[0] != '\0' ? v : "undisclosed-recipients:;");
	field(&o, "Subject", subject(r));
	format_date(r->now, date, sizeof(date));
	field(&o, "Date", date);
	if (r->message_id != NULL) {
		clean(r->message_id, DSN_FIELD_MAX, false, t);
		field(&o, "Message-ID", t);
	} else {
		/* boundary[2..] is "tern-dsn-<queue id>-<time>" */
		clean(r->reporting_mta, DSN_FIELD_MAX, false, t);
		snprintf(v, sizeof(v), "<%.40s@%s>", boundary + 2, t);
		field(&o, "Message-ID", v);
	}
	field(&o, "MIME-Version", "1.0");
	field(&o, "Auto-Submitted", "auto-replied");
	snprintf(v, sizeof(v),
	         "multipart/report; report-type=%s; boundary=\"%s\"",
	         u ? "global-delivery-status" : "delivery-status", boundary);
	field(&o, "Content-Type", v);
	if (text8 || status8 || orig8)
		field(&o, "Content-Transfer-Encoding", "8bit");
	crlf(&o);
	puts_(&o, "This is a MIME-encapsulated message.");
	crlf(&o);
	crlf(&o);

	part_header(&o, boundary, "Notification",
	            text8 ? "text/plain; charset=utf-8"
	                  : "text/plain; charset=us-ascii",
	            text8);
	put(&o, text.data, text.len);
	crlf(&o);
	part_header(&o, boundary, "Delivery report",
	            u ? "message/global-delivery-status"
	              : "message/delivery-status",
	            status8);
	put(&o, status.data, status.len);
	if (original_len > 0) {
		const char *type, *descr;

		if (headers) {
			type = u ? "message/global-headers"
			         : "text/rfc822-headers";
			descr = "Undelivered Message Headers";
		} else {
			type = u ? "message/global" : "message/rfc822";
			descr = "Undelivered Message";
		}
		if (!any_action(r, DSN_FAILED))
			descr = headers ? "Message Headers" : "Message";
		crlf(&o);
		part_header(&o, boundary, descr, type, orig8);
		put_original(&o, original, keep);
	}
	crlf(&o);
	puts_(&o, "--");
	puts_(&o, boundary);
	puts_(&o, "--");
	crlf(&o);
	if (o.err < 0)
		goto fail;
	buf_free(&text);
	buf_free(&status);
	return 0;
fail:
	out->len = start;
	buf_free(&text);
	buf_free(&status);
	return -1;
}
