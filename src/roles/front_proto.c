/* The first words of each protocol: see front_proto.h.
 * SECURITY: input lines are bounded by the caller; a command is matched
 * only against a fixed table, and nothing from the client is echoed back
 * except an IMAP tag of bounded length and safe characters. */
#include "roles/front_proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"

enum front_family { FAMILY_SMTP, FAMILY_IMAP, FAMILY_POP3, FAMILY_SIEVE,
		    FAMILY_HTTP };

struct front_proto {
	enum listener_service service;
	enum front_family family;
	char *hostname;
	bool tls_active;
	bool starttls_allowed;
	bool closing;
	struct front_io io;
};

#define TAG_MAX 64

static enum front_family
family_of(enum listener_service s)
{
	switch (s) {
	case SERVICE_SMTP:
	case SERVICE_SUBMISSION:
	case SERVICE_SUBMISSIONS:
	case SERVICE_LMTP:
		return FAMILY_SMTP;
	case SERVICE_IMAP:
	case SERVICE_IMAPS:
		return FAMILY_IMAP;
	case SERVICE_POP3:
	case SERVICE_POP3S:
		return FAMILY_POP3;
	case SERVICE_MANAGESIEVE:
		return FAMILY_SIEVE;
	default:
		return FAMILY_HTTP;
	}
}

static void
say(struct front_proto *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
say(struct front_proto *p, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	p->io.write(p->io.arg, line, (size_t)n);
}

static void
leave(struct front_proto *p)
{
	p->closing = true;
	p->io.close(p->io.arg);
}

struct front_proto *
front_proto_new(enum listener_service service, const char *hostname,
		bool tls_active, bool starttls_allowed,
		const struct front_io *io)
{
	struct front_proto *p = xcalloc(1, sizeof(*p));

	p->service = service;
	p->family = family_of(service);
	p->hostname = xstrdup(hostname);
	p->tls_active = tls_active;
	p->starttls_allowed = starttls_allowed;
	p->io = *io;
	return p;
}

void
front_proto_free(struct front_proto **p)
{
	if (*p == NULL)
		return;
	free((*p)->hostname);
	xfree(p);
}

static bool
can_starttls(const struct front_proto *p)
{
	return p->starttls_allowed && !p->tls_active;
}

static void
imap_capability(struct front_proto *p, char *out, size_t size)
{
	snprintf(out, size, "IMAP4rev1 IMAP4rev2%s LOGINDISABLED",
		 can_starttls(p) ? " STARTTLS" : "");
}

void
front_proto_start(struct front_proto *p)
{
	char caps[128];

	switch (p->family) {
	case FAMILY_SMTP:
		say(p, "220 %s ESMTP tern\r\n", p->hostname);
		break;
	case FAMILY_IMAP:
		imap_capability(p, caps, sizeof(caps));
		say(p, "* OK [CAPABILITY %s] tern ready\r\n", caps);
		break;
	case FAMILY_POP3:
		say(p, "+OK tern ready\r\n");
		break;
	case FAMILY_SIEVE:
		say(p, "\"IMPLEMENTATION\" \"tern\"\r\n%s\"VERSION\" \"1.0\"\r\n"
		       "OK \"tern ready\"\r\n",
		    can_starttls(p) ? "\"STARTTLS\"\r\n" : "");
		break;
	case FAMILY_HTTP:
		break;
	}
}

/* Split "word rest": the first word into cmd (upper-cased view compared
 * case-insensitively), a pointer to the rest. */
static size_t
first_word(const char *line, size_t len, const char **rest_r)
{
	size_t n = 0;

	while (n < len && line[n] != ' ')
		n++;
	*rest_r = n < len ? line + n + 1 : line + len;
	return n;
}

static bool
word_is(const char *w, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(w, name, n) == 0;
}

static void
smtp_line(struct front_proto *p, const char *line, size_t len)
{
	const char *rest;
	size_t n = first_word(line, len, &rest);
	bool lmtp = p->service == SERVICE_LMTP;

	if (word_is(line, n, lmtp ? "LHLO" : "EHLO")) {
		if (can_starttls(p))
			say(p, "250-%s\r\n250-STARTTLS\r\n", p->hostname);
		else
			say(p, "250-%s\r\n", p->hostname);
		say(p, "250 ENHANCEDSTATUSCODES\r\n");
	} else if (!lmtp && word_is(line, n, "HELO")) {
		say(p, "250 %s\r\n", p->hostname);
	} else if (word_is(line, n, "STARTTLS") && can_starttls(p)) {
		say(p, "220 2.0.0 Ready to start TLS\r\n");
		p->io.starttls(p->io.arg);
	} else if (word_is(line, n, "NOOP") || word_is(line, n, "RSET")) {
		say(p, "250 2.0.0 OK\r\n");
	} else if (word_is(line, n, "QUIT")) {
		say(p, "221 2.0.0 Bye\r\n");
		leave(p);
	} else {
		say(p, "502 5.5.1 Command not implemented\r\n");
	}
}

/* An IMAP tag is echoed back, so only safe characters are kept. */
static bool
imap_tag_ok(const char *tag, size_t n)
{
	if (n == 0 || n > TAG_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)tag[i];

		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]+", c))
			return false;
	}
	return true;
}

static void
imap_line(struct front_proto *p, const char *line, size_t len)
{
	const char *rest, *cmd;
	size_t tn = first_word(line, len, &cmd);
	size_t cn = first_word(cmd, (size_t)(line + len - cmd), &rest);
	char caps[128];

	if (!imap_tag_ok(line, tn)) {
		say(p, "* BAD Invalid tag\r\n");
		return;
	}
	if (word_is(cmd, cn, "CAPABILITY")) {
		imap_capability(p, caps, sizeof(caps));
		say(p, "* CAPABILITY %s\r\n%.*s OK CAPABILITY completed\r\n",
		    caps, (int)tn, line);
	} else if (word_is(cmd, cn, "NOOP")) {
		say(p, "%.*s OK NOOP completed\r\n", (int)tn, line);
	} else if (word_is(cmd, cn, "LOGOUT")) {
		say(p, "* BYE Logging out\r\n%.*s OK LOGOUT completed\r\n",
		    (int)tn, line);
		leave(p);
	} else if (word_is(cmd, cn, "STARTTLS") && can_starttls(p)) {
		say(p, "%.*s OK Begin TLS negotiation now\r\n", (int)tn, line);
		p->io.starttls(p->io.arg);
	} else {
		say(p, "%.*s NO Command not implemented\r\n", (int)tn, line);
	}
}

static void
pop3_line(struct front_proto *p, const char *line, size_t len)
{
	const char *rest;
	size_t n = first_word(line, len, &rest);

	if (word_is(line, n, "CAPA")) {
		say(p, "+OK Capability list follows\r\n%sIMPLEMENTATION "
		       "tern\r\n.\r\n",
		    can_starttls(p) ? "STLS\r\n" : "");
	} else if (word_is(line, n, "STLS") && can_starttls(p)) {
		say(p, "+OK Begin TLS negotiation\r\n");
		p->io.starttls(p->io.arg);
	} else if (word_is(line, n, "NOOP")) {
		say(p, "+OK\r\n");
	} else if (word_is(line, n, "QUIT")) {
		say(p, "+OK Bye\r\n");
		leave(p);
	} else {
		say(p, "-ERR Command not implemented\r\n");
	}
}

static void
sieve_line(struct front_proto *p, const char *line, size_t len)
{
	const char *rest;
	size_t n = first_word(line, len, &rest);

	if (word_is(line, n, "STARTTLS") && can_starttls(p)) {
		say(p, "OK \"Begin TLS negotiation\"\r\n");
		p->io.starttls(p->io.arg);
	} else if (word_is(line, n, "CAPABILITY")) {
		front_proto_start(p);
	} else if (word_is(line, n, "NOOP")) {
		say(p, "OK \"NOOP completed\"\r\n");
	} else if (word_is(line, n, "LOGOUT")) {
		say(p, "OK \"Bye\"\r\n");
		leave(p);
	} else {
		say(p, "NO \"Command not implemented\"\r\n");
	}
}

/* HTTP: the request line is enough; headers are read and ignored until the
 * blank line, then one answer and close. */
static void
http_line(struct front_proto *p, const char *line, size_t len)
{
	static const char nf[] = "not found\n";

	(void)line;
	if (len != 0 || p->closing)
		return;
	say(p, "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
	       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	    sizeof(nf) - 1, nf);
	leave(p);
}

void
front_proto_line(struct front_proto *p, const char *line, size_t len)
{
	if (p->closing)
		return;
	switch (p->family) {
	case FAMILY_SMTP:
		smtp_line(p, line, len);
		break;
	case FAMILY_IMAP:
		imap_line(p, line, len);
		break;
	case FAMILY_POP3:
		pop3_line(p, line, len);
		break;
	case FAMILY_SIEVE:
		sieve_line(p, line, len);
		break;
	case FAMILY_HTTP:
		http_line(p, line, len);
		break;
	}
}

void
front_proto_line_too_long(struct front_proto *p)
{
	switch (p->family) {
	case FAMILY_SMTP:
		say(p, "500 5.5.2 Line too long\r\n");
		break;
	case FAMILY_IMAP:
		say(p, "* BAD Line too long\r\n");
		break;
	case FAMILY_POP3:
		say(p, "-ERR Line too long\r\n");
		break;
	case FAMILY_SIEVE:
		say(p, "NO \"Line too long\"\r\n");
		break;
	case FAMILY_HTTP:
		say(p, "HTTP/1.1 431 Request Header Fields Too Large\r\n"
		       "Content-Length: 0\r\nConnection: close\r\n\r\n");
		leave(p);
		break;
	}
}

void
front_proto_tls_started(struct front_proto *p)
{
	p->tls_active = true;
	/* RFC 5804 2.2: the server speaks first again after STARTTLS. */
	if (p->family == FAMILY_SIEVE)
		front_proto_start(p);
}

static void
goodbye(struct front_proto *p, const char *why)
{
	if (p->closing)
		return;
	switch (p->family) {
	case FAMILY_SMTP:
		say(p, "421 4.3.2 %s %s\r\n", p->hostname, why);
		break;
	case FAMILY_IMAP:
		say(p, "* BYE %s\r\n", why);
		break;
	case FAMILY_POP3:
		say(p, "-ERR %s\r\n", why);
		break;
	case FAMILY_SIEVE:
		say(p, "BYE \"%s\"\r\n", why);
		break;
	case FAMILY_HTTP:
		break;
	}
	leave(p);
}

void
front_proto_shutdown(struct front_proto *p)
{
	goodbye(p, "Server shutting down");
}

void
front_proto_timeout(struct front_proto *p)
{
	goodbye(p, "Idle timeout, closing connection");
}

const char *
front_proto_refusal(enum listener_service service)
{
	switch (family_of(service)) {
	case FAMILY_SMTP:
		return "421 4.7.0 Too many connections, try again later\r\n";
	case FAMILY_IMAP:
		return "* BYE Too many connections\r\n";
	case FAMILY_POP3:
		return "-ERR [SYS/TEMP] Too many connections\r\n";
	case FAMILY_SIEVE:
		return "BYE \"Too many connections\"\r\n";
	default:
		return "HTTP/1.1 503 Service Unavailable\r\nContent-Length: "
		       "0\r\nConnection: close\r\n\r\n";
	}
}
