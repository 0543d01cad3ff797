/* The first words of each protocol: see front_proto.h.
 * SECURITY: input lines are bounded by the caller; a command is matched
 * only against a fixed table, and nothing from the client is echoed back
 * except an IMAP tag of bounded length and safe characters. Logins are
 * offered only under TLS; credentials go to the verifier and are wiped. */
#include "roles/front_proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <assert.h>
#include <openssl/crypto.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "core/xmalloc.h"
#include "directory/sasl.h"

enum front_family { FAMILY_IMAP, FAMILY_POP3, FAMILY_SIEVE, FAMILY_HTTP };

#define TAG_MAX 64

enum auth_state {
	AUTH_NONE,     /* no login under way */
	AUTH_EXCHANGE, /* a challenge is out: the next line answers it */
	AUTH_PENDING,  /* the verifier is checking */
	AUTH_FINAL,    /* success data is out: waiting for the empty line */
};

struct front_proto {
	enum listener_service service;
	enum front_family family;
	bool tls_active;
	bool starttls_allowed;
	bool closing;
	struct front_io io;

	enum auth_state auth;
	struct sasl_session *sasl;
	char tag[TAG_MAX + 1]; /* IMAP: the tag of the login under way */
	bool logged_in;
	char user[SASL_USER_MAX + 1];
	char *pop3_user; /* POP3: USER given, PASS awaited */
};

/* SMTP, submission and LMTP are src/smtp's (front_smtp.c). */
static bool
is_smtp(enum listener_service s)
{
	return s == SERVICE_SMTP || s == SERVICE_SUBMISSION ||
	       s == SERVICE_SUBMISSIONS || s == SERVICE_LMTP;
}

static enum front_family
family_of(enum listener_service s)
{
	switch (s) {
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

static void say(struct front_proto *p, const char *fmt, ...)
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
front_proto_new(enum listener_service service, bool tls_active,
                bool starttls_allowed, const struct front_io *io)
{
	struct front_proto *p = xcalloc(1, sizeof(*p));

	assert(!is_smtp(service));
	p->service = service;
	p->family = family_of(service);
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
	sasl_free(&(*p)->sasl);
	free((*p)->pop3_user);
	xfree(p);
}

static bool
can_starttls(const struct front_proto *p)
{
	return p->starttls_allowed && !p->tls_active;
}

/* Logins are offered on these services, under TLS, until one succeeds. */
static bool
auth_offered(const struct front_proto *p)
{
	switch (p->service) {
	case SERVICE_IMAP:
	case SERVICE_IMAPS:
	case SERVICE_POP3:
	case SERVICE_POP3S:
		return p->io.verifier != NULL && p->tls_active && !p->logged_in;
	default:
		return false;
	}
}

#define SASL_MECHS "PLAIN LOGIN SCRAM-SHA-256"

static void
imap_capability(struct front_proto *p, char *out, size_t size)
{
	if (auth_offered(p))
		snprintf(out, size,
		         "IMAP4rev1 IMAP4rev2 SASL-IR AUTH=PLAIN "
		         "AUTH=LOGIN AUTH=SCRAM-SHA-256");
	else if (p->logged_in)
		snprintf(out, size, "IMAP4rev1 IMAP4rev2");
	else
		snprintf(out, size, "IMAP4rev1 IMAP4rev2%s LOGINDISABLED",
		         can_starttls(p) ? " STARTTLS" : "");
}

/* ---- logins ---- */

enum auth_reply {
	REPLY_OK,
	REPLY_FAIL,
	REPLY_TEMPFAIL,
	REPLY_BAD,
	REPLY_ABORT,
	REPLY_NOMECH,
	REPLY_NEEDTLS
};

static void
auth_reply(struct front_proto *p, enum auth_reply r)
{
	static const char *const imap[] = {
	    [REPLY_OK] = "OK Logged in",
	    [REPLY_FAIL] = ("NO [AUTHENTICATIONFAILED] Authentication "
	                    "failed"),
	    [REPLY_TEMPFAIL] = ("NO [UNAVAILABLE] Temporary authentication "
	                        "failure"),
	    [REPLY_BAD] = "BAD Invalid authentication exchange",
	    [REPLY_ABORT] = "BAD Authentication cancelled",
	    [REPLY_NOMECH] = "NO Unsupported authentication mechanism",
	    [REPLY_NEEDTLS] = "NO [PRIVACYREQUIRED] Use STARTTLS first",
	};
	static const char *const pop3[] = {
	    [REPLY_OK] = "+OK Logged in",
	    [REPLY_FAIL] = "-ERR [AUTH] Authentication failed",
	    [REPLY_TEMPFAIL] = ("-ERR [SYS/TEMP] Temporary authentication "
	                        "failure"),
	    [REPLY_BAD] = "-ERR Invalid authentication exchange",
	    [REPLY_ABORT] = "-ERR Authentication cancelled",
	    [REPLY_NOMECH] = "-ERR Unsupported authentication mechanism",
	    [REPLY_NEEDTLS] = "-ERR [AUTH] Use STLS first",
	};

	switch (p->family) {
	case FAMILY_IMAP:
		say(p, "%s %s\r\n", p->tag, imap[r]);
		break;
	default:
		say(p, "%s\r\n", pop3[r]);
		break;
	}
}

static void
auth_end(struct front_proto *p, enum auth_reply r)
{
	sasl_free(&p->sasl);
	p->auth = AUTH_NONE;
	auth_reply(p, r);
}

/* Send a challenge (or final success data), base64 as every protocol
 * here wants it. */
static void
auth_send_challenge(struct front_proto *p)
{
	const uint8_t *data;
	size_t len;
	char *b64;

	sasl_challenge(p->sasl, &data, &len);
	b64 = xmalloc(BASE64_ENCODED_SIZE(len));
	sasl_base64_encode(data, len, b64);
	say(p, "+ %s\r\n", b64);
	free(b64);
}

static void
auth_success(struct front_proto *p)
{
	p->logged_in = true;
	if (p->user[0] == '\0')
		snprintf(p->user, sizeof(p->user), "%s", sasl_user(p->sasl));
	if (p->family == FAMILY_IMAP && p->io.handoff != NULL) {
		sasl_free(&p->sasl);
		p->auth = AUTH_NONE;
		p->io.handoff(p->io.arg, p->tag);
		return;
	}
	auth_end(p, REPLY_OK);
}

/* Act on the SASL session's new status. */
static void
auth_after(struct front_proto *p, enum sasl_status st)
{
	const uint8_t *data;
	size_t len;

	switch (st) {
	case SASL_CONTINUE:
		p->auth = AUTH_EXCHANGE;
		auth_send_challenge(p);
		break;
	case SASL_PENDING:
		p->auth = AUTH_PENDING;
		break;
	case SASL_SUCCESS:
		sasl_challenge(p->sasl, &data, &len);
		if (len > 0 && p->auth != AUTH_FINAL) {
			/* SCRAM's server signature goes out as one more
			 * challenge, answered by an empty line. */
			p->auth = AUTH_FINAL;
			auth_send_challenge(p);
		} else {
			auth_success(p);
		}
		break;
	case SASL_FAIL:
		p->user[0] = '\0';
		auth_end(p, REPLY_FAIL);
		break;
	case SASL_TEMPFAIL:
		p->user[0] = '\0';
		auth_end(p, REPLY_TEMPFAIL);
		break;
	case SASL_ERROR:
		p->user[0] = '\0';
		auth_end(p, REPLY_BAD);
		break;
	}
}

/* Feed one client answer: base64, "" for empty, or "*" to abort. */
static void
auth_feed(struct front_proto *p, const char *b64, size_t len, bool initial)
{
	uint8_t in[SASL_INPUT_MAX];
	size_t n = 0;

	if (len == 1 && b64[0] == '*') {
		sasl_abort(p->sasl);
		auth_end(p, REPLY_ABORT);
		return;
	}
	/* In an initial response "=" stands for an empty one. */
	if (!(initial && len == 1 && b64[0] == '=') && len > 0 &&
	    sasl_base64_decode(b64, len, in, sizeof(in), &n) < 0) {
		auth_end(p, REPLY_BAD);
		return;
	}
	auth_after(p, sasl_step(p->sasl, in, n));
	OPENSSL_cleanse(in, n);
}

static void
auth_line(struct front_proto *p, const char *line, size_t len)
{
	if (p->auth == AUTH_FINAL) {
		if (len == 1 && line[0] == '*')
			auth_end(p, REPLY_ABORT);
		else if (len != 0)
			auth_end(p, REPLY_BAD);
		else
			auth_success(p);
		return;
	}
	auth_feed(p, line, len, false);
}

/* AUTH/AUTHENTICATE MECH [initial-response]. */
static void
auth_start(struct front_proto *p, const char *args, size_t len)
{
	const char *ir = memchr(args, ' ', len);
	size_t mlen = ir != NULL ? (size_t)(ir - args) : len;
	char mech_name[32];
	enum sasl_mech mech;

	if (!auth_offered(p)) {
		auth_reply(p, p->logged_in ? REPLY_BAD : REPLY_NEEDTLS);
		return;
	}
	if (mlen == 0 || mlen >= sizeof(mech_name)) {
		auth_reply(p, REPLY_NOMECH);
		return;
	}
	memcpy(mech_name, args, mlen);
	mech_name[mlen] = '\0';
	if (sasl_mech_parse(mech_name, &mech) < 0) {
		auth_reply(p, REPLY_NOMECH);
		return;
	}
	p->user[0] = '\0';
	p->sasl = sasl_new(mech, p->io.verifier);
	if (ir == NULL)
		auth_after(p, sasl_step(p->sasl, NULL, 0));
	else
		auth_feed(p, ir + 1, (size_t)(args + len - ir - 1), true);
}

/* IMAP LOGIN and POP3 PASS: a PLAIN exchange with the credentials. */
static void
auth_plain(struct front_proto *p, const char *user, size_t ulen,
           const char *pass, size_t plen)
{
	uint8_t msg[2 * SASL_USER_MAX + 2];

	if (ulen > SASL_USER_MAX || plen > SASL_USER_MAX || ulen == 0 ||
	    plen == 0) {
		auth_reply(p, REPLY_FAIL);
		return;
	}
	msg[0] = '\0';
	memcpy(msg + 1, user, ulen);
	msg[1 + ulen] = '\0';
	memcpy(msg + 2 + ulen, pass, plen);
	p->user[0] = '\0';
	p->sasl = sasl_new(SASL_MECH_PLAIN, p->io.verifier);
	auth_after(p, sasl_step(p->sasl, msg, 2 + ulen + plen));
	OPENSSL_cleanse(msg, sizeof(msg));
}

bool
front_proto_busy(const struct front_proto *p)
{
	return p->auth == AUTH_PENDING;
}

const char *
front_proto_user(const struct front_proto *p)
{
	return p->logged_in ? p->user : NULL;
}

void
front_proto_auth_password_result(struct front_proto *p, int result,
                                 const char *user)
{
	if (p->sasl == NULL || p->auth != AUTH_PENDING)
		return;
	if (result == 0 && user != NULL)
		snprintf(p->user, sizeof(p->user), "%s", user);
	auth_after(p, sasl_password_result(p->sasl, result));
}

void
front_proto_auth_scram_params_result(struct front_proto *p, int result,
                                     const unsigned char *salt, size_t salt_len,
                                     unsigned iterations)
{
	if (p->sasl == NULL || p->auth != AUTH_PENDING)
		return;
	auth_after(p, sasl_scram_params_result(p->sasl, result, salt, salt_len,
	                                       iterations));
}

void
front_proto_auth_scram_check_result(struct front_proto *p, int result,
                                    const char *user,
                                    const unsigned char *signature)
{
	if (p->sasl == NULL || p->auth != AUTH_PENDING)
		return;
	if (result == 0 && user != NULL)
		snprintf(p->user, sizeof(p->user), "%s", user);
	auth_after(p, sasl_scram_check_result(p->sasl, result, signature));
}

void
front_proto_start(struct front_proto *p)
{
	char caps[128];

	switch (p->family) {
	case FAMILY_IMAP:
		imap_capability(p, caps, sizeof(caps));
		say(p, "* OK [CAPABILITY %s] tern ready\r\n", caps);
		break;
	case FAMILY_POP3:
		say(p, "+OK tern ready\r\n");
		break;
	case FAMILY_SIEVE:
		say(p,
		    "\"IMPLEMENTATION\" \"tern\"\r\n%s\"VERSION\" \"1.0\"\r\n"
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

/* One IMAP astring: an atom or a "quoted" string (literals are for the
 * real IMAP module). Unescaped into out; the rest of the line in *rest_r.
 * -1 on bad syntax. */
static int
imap_astring(const char *s, size_t len, char *out, size_t outmax,
             size_t *outlen_r, const char **rest_r)
{
	size_t i = 0, n = 0;

	if (len > 0 && s[0] == '"') {
		for (i = 1; i < len && s[i] != '"'; i++) {
			if (s[i] == '\\' && i + 1 < len)
				i++;
			if (n >= outmax || s[i] == '\r' || s[i] == '\n')
				return -1;
			out[n++] = s[i];
		}
		if (i >= len)
			return -1;
		i++;
	} else {
		for (; i < len && s[i] != ' '; i++) {
			unsigned char c = (unsigned char)s[i];

			if (n >= outmax || c <= 0x20 || c == 0x7f ||
			    strchr("(){%*\"\\", c))
				return -1;
			out[n++] = s[i];
		}
		if (n == 0)
			return -1;
	}
	*outlen_r = n;
	*rest_r = s + i;
	return 0;
}

static void
imap_login(struct front_proto *p, const char *args, size_t len)
{
	char user[SASL_USER_MAX], pass[SASL_USER_MAX];
	size_t ulen, plen;
	const char *rest, *end = args + len;

	if (!auth_offered(p)) {
		auth_reply(p, p->logged_in ? REPLY_BAD : REPLY_NEEDTLS);
		return;
	}
	if (imap_astring(args, len, user, sizeof(user), &ulen, &rest) < 0 ||
	    rest >= end || *rest != ' ' ||
	    imap_astring(rest + 1, (size_t)(end - rest - 1), pass, sizeof(pass),
	                 &plen, &rest) < 0 ||
	    rest != end) {
		say(p, "%s BAD Invalid arguments to LOGIN\r\n", p->tag);
		OPENSSL_cleanse(pass, sizeof(pass));
		return;
	}
	auth_plain(p, user, ulen, pass, plen);
	OPENSSL_cleanse(pass, sizeof(pass));
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
	} else if (word_is(cmd, cn, "AUTHENTICATE") ||
	           word_is(cmd, cn, "LOGIN")) {
		snprintf(p->tag, sizeof(p->tag), "%.*s", (int)tn, line);
		if (word_is(cmd, cn, "LOGIN"))
			imap_login(p, rest, (size_t)(line + len - rest));
		else
			auth_start(p, rest, (size_t)(line + len - rest));
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
		say(p,
		    "+OK Capability list follows\r\n%s%sIMPLEMENTATION "
		    "tern\r\n.\r\n",
		    can_starttls(p) ? "STLS\r\n" : "",
		    auth_offered(p) ? "USER\r\nSASL " SASL_MECHS "\r\n" : "");
	} else if (word_is(line, n, "USER")) {
		free(p->pop3_user);
		p->pop3_user = NULL;
		if (!auth_offered(p)) {
			auth_reply(p, p->logged_in ? REPLY_BAD : REPLY_NEEDTLS);
		} else if (rest >= line + len ||
		           (size_t)(line + len - rest) > SASL_USER_MAX) {
			say(p, "-ERR Bad user name\r\n");
		} else {
			p->pop3_user =
			    xstrndup(rest, (size_t)(line + len - rest));
			say(p, "+OK\r\n");
		}
	} else if (word_is(line, n, "PASS")) {
		if (p->pop3_user == NULL || !auth_offered(p)) {
			say(p, "-ERR USER first\r\n");
		} else {
			char *user = p->pop3_user;

			p->pop3_user = NULL;
			auth_plain(p, user, strlen(user), rest,
			           (size_t)(line + len - rest));
			free(user);
		}
	} else if (word_is(line, n, "AUTH") && rest < line + len) {
		auth_start(p, rest, (size_t)(line + len - rest));
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
	say(p,
	    "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	    sizeof(nf) - 1, nf);
	leave(p);
}

void
front_proto_line(struct front_proto *p, const char *line, size_t len)
{
	if (p->closing)
		return;
	if (p->auth == AUTH_EXCHANGE || p->auth == AUTH_FINAL) {
		auth_line(p, line, len);
		return;
	}
	if (p->auth == AUTH_PENDING) {
		/* The connection holds input while busy; this is a bug. */
		abort();
	}
	switch (p->family) {
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
	if (is_smtp(service))
		return "421 4.7.0 Too many connections, try again later\r\n";
	switch (family_of(service)) {
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
