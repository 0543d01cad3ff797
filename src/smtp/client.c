/* The SMTP client session (see client.h): the reply parser, the commands
 * from greeting to QUIT, and the message body (dot-stuffing, CRLF, BDAT).
 * SECURITY: every reply byte comes from the network. Lines and replies are
 * bounded and checked strictly, bytes nobody asked for end the session,
 * input read before the TLS handshake is dropped, and envelope strings
 * with control characters are never written into a command. */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "smtp/client.h"

#define BDAT_CHUNK (64 * 1024)
#define MINUTES(n) ((uint64_t)(n)*60 * 1000)

enum client_state {
	CLIENT_GREETING,
	CLIENT_EHLO,
	CLIENT_HELO,
	CLIENT_STARTTLS,
	CLIENT_TLS, /* the owner does the handshake */
	CLIENT_AUTH,
	CLIENT_READY,
	CLIENT_MAIL,
	CLIENT_RCPT,
	CLIENT_DATA,
	CLIENT_BODY,
	CLIENT_EOD,
	CLIENT_RSET,
	CLIENT_QUIT,
	CLIENT_CLOSED,
};

enum auth_step {
	AUTH_PLAIN,      /* "AUTH PLAIN <initial response>" sent */
	AUTH_LOGIN_USER, /* "AUTH LOGIN" sent, the user name is asked */
	AUTH_LOGIN_PASS, /* the user name sent, the password is asked */
	AUTH_LOGIN_DONE, /* the password sent */
};

struct rcpt_track {
	bool valid;    /* sent (its address is clean) */
	bool accepted; /* a 2xx to its RCPT, waiting for the final reply */
};

struct smtp_client {
	struct smtp_client_options opt;
	enum client_state state;
	struct smtp_client_ext ext;
	bool size_offered; /* SIZE, with or without a limit */
	bool tls_active;
	bool starttls_refused;
	enum auth_step auth_step;

	struct buf line; /* the reply line being read */
	struct buf out;
	int reply_code;
	unsigned reply_lines;
	char reply_text[SMTP_CLIENT_REPLY_TEXT_MAX];
	size_t reply_text_len;

	bool failed;
	struct smtp_client_error err;
	bool done_now; /* a transaction ended in this call: TXN_DONE */

	/* The transaction in progress. */
	struct smtp_client_txn *txn;
	struct rcpt_track *track;
	size_t cur; /* the rcpt whose RCPT reply comes next */
	size_t naccepted;
	bool mail_ok, pipelined, bdat, bdat_failed, eod_ignore;
	unsigned bdat_outstanding; /* BDAT replies still awaited */
	bool bol, cr;              /* body: at a line start, CR pending */
	struct buf chunk;          /* BDAT: normalized bytes not yet sent */
};

typedef void reply_fn(struct smtp_client *c);

static reply_fn on_greeting, on_ehlo, on_helo, on_starttls, on_auth, on_mail,
    on_rcpt, on_data, on_bdat, on_eod, on_rset, on_quit;

/* Each state: its name for the log, the stage named in errors, how long
 * its reply may take (RFC 5321 4.5.3.2) and what to do with the reply
 * (NULL: none is awaited). */
static const struct client_state_info {
	const char *name;
	const char *stage;
	uint64_t timeout_ms;
	reply_fn *reply;
} states[] = {
    [CLIENT_GREETING] = {"greeting", "greeting", MINUTES(5), on_greeting},
    [CLIENT_EHLO] = {"ehlo", "ehlo", MINUTES(5), on_ehlo},
    [CLIENT_HELO] = {"helo", "ehlo", MINUTES(5), on_helo},
    [CLIENT_STARTTLS] = {"starttls", "starttls", MINUTES(5), on_starttls},
    [CLIENT_TLS] = {"tls", "starttls", 0, NULL},
    [CLIENT_AUTH] = {"auth", "auth", MINUTES(5), on_auth},
    [CLIENT_READY] = {"ready", "idle", 0, NULL},
    [CLIENT_MAIL] = {"mail", "mail", MINUTES(5), on_mail},
    [CLIENT_RCPT] = {"rcpt", "rcpt", MINUTES(5), on_rcpt},
    [CLIENT_DATA] = {"data", "data", MINUTES(2), on_data},
    [CLIENT_BODY] = {"body", "data", MINUTES(10), on_bdat},
    [CLIENT_EOD] = {"eod", "eod", MINUTES(10), on_eod},
    [CLIENT_RSET] = {"rset", "rset", MINUTES(5), on_rset},
    [CLIENT_QUIT] = {"quit", "quit", MINUTES(5), on_quit},
    [CLIENT_CLOSED] = {"closed", "quit", 0, NULL},
};

static void
set_state(struct smtp_client *c, enum client_state st)
{
	if (c->state == st)
		return;
	log_trace(c->opt.log_id, "event=smtp_client_state from=%s to=%s",
	          states[c->state].name, states[st].name);
	c->state = st;
}

static bool
awaiting(const struct smtp_client *c)
{
	if (c->state == CLIENT_BODY)
		return c->bdat_outstanding > 0;
	return states[c->state].reply != NULL;
}

static void
out_str(struct smtp_client *c, const char *s)
{
	(void)buf_append_str(&c->out, s);
}

/* The enhanced status code at the start of text (RFC 2034) when its class
 * is the reply's, else one made up from the code. */
static void
status_from(int code, const char *text, char out[16])
{
	const char *p = text;
	int cls = code / 100;
	size_t i = 2, n;

	if (p[0] == '0' + cls && (cls == 2 || cls == 4 || cls == 5) &&
	    p[1] == '.') {
		for (n = 0; n < 3 && p[i] >= '0' && p[i] <= '9'; n++)
			i++;
		if (n > 0 && p[i] == '.') {
			i++;
			for (n = 0; n < 3 && p[i] >= '0' && p[i] <= '9'; n++)
				i++;
			if (n > 0 && (p[i] == '\0' || p[i] == ' ')) {
				memcpy(out, p, i);
				out[i] = '\0';
				return;
			}
		}
	}
	snprintf(out, 16, "%d.0.0", cls == 2 || cls == 5 ? cls : 4);
}

/* ---- recipients and the end of a transaction ---- */

static void
rcpt_set(struct smtp_client_rcpt *r, int code, const char *status,
         const char *text)
{
	r->code = code;
	if (status != NULL)
		snprintf(r->status, sizeof(r->status), "%s", status);
	else
		status_from(code, text, r->status);
	free(r->reply);
	r->reply = xstrdup(text);
}

/* Every recipient still undecided (accepted_only: and accepted by RCPT)
 * gets this result. */
static void
rcpts_set(struct smtp_client *c, bool accepted_only, int code,
          const char *status, const char *text)
{
	for (size_t i = 0; i < c->txn->nrcpts; i++)
		if (c->txn->rcpts[i].code == 0 &&
		    (c->track[i].accepted || !accepted_only))
			rcpt_set(&c->txn->rcpts[i], code, status, text);
}

/* The reply just read decides every recipient accepted by RCPT. */
static void
rcpts_accepted_reply(struct smtp_client *c)
{
	rcpts_set(c, true, c->reply_code, NULL, c->reply_text);
}

static void
txn_done(struct smtp_client *c)
{
	for (size_t i = 0; i < c->txn->nrcpts; i++)
		assert(c->txn->rcpts[i].code != 0);
	xfree(&c->track);
	buf_free(&c->chunk);
	c->txn = NULL;
	c->done_now = true;
	set_state(c, CLIENT_READY);
	log_trace(c->opt.log_id, "event=smtp_client_txn_done");
}

/* What a call that may end a transaction returns: TXN_DONE once. */
static enum smtp_client_event
result(struct smtp_client *c)
{
	bool done = c->done_now;

	c->done_now = false;
	return done ? SMTP_CLIENT_TXN_DONE : smtp_client_event(c);
}

static void
send_rset(struct smtp_client *c)
{
	out_str(c, "RSET\r\n");
	set_state(c, CLIENT_RSET);
}

/* ---- session failures ---- */

/* The session ends: status NULL takes it from text; quit says a QUIT
 * goes out first (not after a 421 or a broken reply). A transaction in
 * progress ends first (TXN_DONE) with a temporary error for every
 * recipient still undecided. */
static void
fail(struct smtp_client *c, const char *stage, int code, const char *status,
     const char *text, bool permanent, bool quit)
{
	struct smtp_client_error *e = &c->err;

	if (c->state == CLIENT_CLOSED)
		return;
	c->failed = true;
	e->code = code;
	if (status != NULL)
		snprintf(e->status, sizeof(e->status), "%s", status);
	else
		status_from(code, text, e->status);
	snprintf(e->text, sizeof(e->text), "%s", text);
	e->permanent = permanent;
	e->stage = stage;
	log_debug(c->opt.log_id,
	          "event=smtp_client_failed stage=%s code=%d status=%s "
	          "permanent=%d text=%s",
	          stage, code, e->status, permanent, e->text);
	if (c->txn != NULL) {
		rcpts_set(c, false, code / 100 == 4 ? code : 451,
		          e->status[0] == '4' ? e->status : "4.4.2", e->text);
		txn_done(c);
	}
	if (quit)
		out_str(c, "QUIT\r\n");
	buf_reset(&c->line);
	c->reply_lines = 0;
	set_state(c, CLIENT_CLOSED);
}

/* The reply just read ends the session. */
static void
fail_reply(struct smtp_client *c, const char *stage, bool permanent)
{
	fail(c, stage, c->reply_code, NULL, c->reply_text, permanent,
	     c->reply_code != 421);
}

/* The server broke the protocol; after QUIT that is just the end. */
static void
fail_protocol(struct smtp_client *c, const char *text)
{
	if (c->state == CLIENT_QUIT) {
		set_state(c, CLIENT_CLOSED);
		return;
	}
	fail(c, states[c->state].stage, 0, "4.5.0", text, false, false);
}

/* A 3xx where only 2xx, 4xx or 5xx make sense (RFC 5321 4.2.1). */
static bool
reply_intermediate(struct smtp_client *c)
{
	if (c->reply_code / 100 != 3)
		return false;
	fail_protocol(c, "unexpected intermediate reply from the server");
	return true;
}

/* ---- greeting, EHLO, STARTTLS, AUTH ---- */

static void
send_hello(struct smtp_client *c, bool ehlo)
{
	memset(&c->ext, 0, sizeof(c->ext));
	c->size_offered = false;
	(void)buf_printf(&c->out, "%s %s\r\n", ehlo ? "EHLO" : "HELO",
	                 c->opt.helo_name);
	set_state(c, ehlo ? CLIENT_EHLO : CLIENT_HELO);
}

static void
ext_size(struct smtp_client *c, const char *p, size_t n)
{
	uint64_t v = 0;
	size_t i = 0;

	c->size_offered = true;
	while (i < n && p[i] == ' ')
		i++;
	for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
		if (v > (UINT64_MAX - 9) / 10) {
			v = 0; /* absurd: no limit */
			break;
		}
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	c->ext.size_max = v;
}

static void
ext_auth(struct smtp_client *c, const char *p, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		while (i < n && p[i] == ' ')
			i++;
		for (k = i; k < n && p[k] != ' ';)
			k++;
		if (k - i == 5 && strncasecmp(p + i, "PLAIN", 5) == 0)
			c->ext.auth_plain = true;
		else if (k - i == 5 && strncasecmp(p + i, "LOGIN", 5) == 0)
			c->ext.auth_login = true;
		i = k;
	}
}

static const struct ext_keyword {
	const char *name;
	size_t flag; /* offset of the bool in struct smtp_client_ext */
	void (*args)(struct smtp_client *c, const char *p, size_t n);
} ext_keywords[] = {
    {"PIPELINING", offsetof(struct smtp_client_ext, pipelining), NULL},
    {"8BITMIME", offsetof(struct smtp_client_ext, eightbitmime), NULL},
    {"SMTPUTF8", offsetof(struct smtp_client_ext, smtputf8), NULL},
    {"DSN", offsetof(struct smtp_client_ext, dsn), NULL},
    {"CHUNKING", offsetof(struct smtp_client_ext, chunking), NULL},
    {"STARTTLS", offsetof(struct smtp_client_ext, starttls), NULL},
    {"ENHANCEDSTATUSCODES",
     offsetof(struct smtp_client_ext, enhancedstatuscodes), NULL},
    {"SIZE", 0, ext_size},
    {"AUTH", 0, ext_auth},
};

/* One line of a 2xx EHLO reply after the first: "KEYWORD[ params]", or
 * the old "AUTH=MECH…" form. */
static void
ehlo_keyword(struct smtp_client *c, const char *p, size_t n)
{
	size_t k = 0;

	while (k < n && p[k] != ' ' && p[k] != '=')
		k++;
	for (size_t i = 0; i < sizeof(ext_keywords) / sizeof(*ext_keywords);
	     i++) {
		const struct ext_keyword *kw = &ext_keywords[i];

		if (strlen(kw->name) != k || strncasecmp(p, kw->name, k) != 0)
			continue;
		if (kw->args != NULL)
			kw->args(c, p + k + (k < n), n - k - (k < n));
		else
			*(bool *)((char *)&c->ext + kw->flag) = true;
		return;
	}
}

static void
send_b64_line(struct smtp_client *c, const char *prefix, const void *data,
              size_t len)
{
	char *enc = xmalloc(BASE64_ENCODED_SIZE(len));

	base64_encode(data, len, enc);
	(void)buf_printf(&c->out, "%s%s\r\n", prefix, enc);
	explicit_bzero(enc, strlen(enc));
	free(enc);
}

static void
start_auth(struct smtp_client *c)
{
	const char *user = c->opt.auth_user, *pass = c->opt.auth_password;

	if (user == NULL || pass == NULL) {
		set_state(c, CLIENT_READY);
		return;
	}
	if (!c->tls_active && !c->opt.auth_without_tls) {
		fail(c, "auth", 0, "4.7.0",
		     "no TLS: credentials are never sent in clear", false,
		     true);
		return;
	}
	if (c->ext.auth_plain) {
		size_t ulen = strlen(user), plen = strlen(pass);
		size_t len = ulen + plen + 2;
		uint8_t *raw = xmalloc(len);

		raw[0] = '\0';
		memcpy(raw + 1, user, ulen);
		raw[1 + ulen] = '\0';
		memcpy(raw + 2 + ulen, pass, plen);
		send_b64_line(c, "AUTH PLAIN ", raw, len);
		explicit_bzero(raw, len);
		free(raw);
		c->auth_step = AUTH_PLAIN;
	} else if (c->ext.auth_login) {
		out_str(c, "AUTH LOGIN\r\n");
		c->auth_step = AUTH_LOGIN_USER;
	} else {
		fail(c, "auth", 0, "4.7.0",
		     "the server offers neither AUTH PLAIN nor AUTH LOGIN",
		     false, true);
		return;
	}
	set_state(c, CLIENT_AUTH);
}

/* EHLO or HELO worked: STARTTLS, then AUTH, then READY. */
static void
after_hello(struct smtp_client *c)
{
	enum smtp_client_tls tls = c->opt.tls;

	if (!c->tls_active && (tls == SMTP_CLIENT_TLS_OPPORTUNISTIC ||
	                       tls == SMTP_CLIENT_TLS_REQUIRED)) {
		if (c->ext.starttls && !c->starttls_refused) {
			out_str(c, "STARTTLS\r\n");
			set_state(c, CLIENT_STARTTLS);
			return;
		}
		if (tls == SMTP_CLIENT_TLS_REQUIRED) {
			fail(c, "starttls", 0, "4.7.4", "STARTTLS not offered",
			     false, true);
			return;
		}
	}
	start_auth(c);
}

static void
on_greeting(struct smtp_client *c)
{
	if (c->reply_code == 220)
		send_hello(c, true);
	else
		fail_reply(c, "greeting", c->reply_code / 100 == 5);
}

static void
on_ehlo(struct smtp_client *c)
{
	switch (c->reply_code / 100) {
	case 2:
		c->ext.esmtp = true;
		after_hello(c);
		break;
	case 5: /* RFC 5321 3.2: not an ESMTP server, say HELO */
		send_hello(c, false);
		break;
	default:
		fail_reply(c, "ehlo", false);
	}
}

static void
on_helo(struct smtp_client *c)
{
	if (c->reply_code / 100 == 2)
		after_hello(c);
	else
		fail_reply(c, "ehlo", c->reply_code / 100 == 5);
}

static void
on_starttls(struct smtp_client *c)
{
	if (c->reply_code == 220) {
		set_state(c, CLIENT_TLS);
	} else if (c->opt.tls == SMTP_CLIENT_TLS_REQUIRED) {
		fail(c, "starttls", c->reply_code, NULL, c->reply_text, false,
		     true);
	} else {
		c->starttls_refused = true;
		after_hello(c);
	}
}

static void
on_auth(struct smtp_client *c)
{
	const char *s;

	switch (c->auth_step) {
	case AUTH_LOGIN_USER:
	case AUTH_LOGIN_PASS:
		if (c->reply_code != 334)
			break;
		s = c->auth_step == AUTH_LOGIN_USER ? c->opt.auth_user
		                                    : c->opt.auth_password;
		send_b64_line(c, "", s, strlen(s));
		c->auth_step++;
		return;
	case AUTH_PLAIN:
	case AUTH_LOGIN_DONE:
		if (c->reply_code != 235)
			break;
		log_trace(c->opt.log_id, "event=smtp_client_auth_ok");
		set_state(c, CLIENT_READY);
		return;
	}
	/* A refusal is a configuration problem: the mail stays queued. */
	fail(c, "auth", c->reply_code, NULL, c->reply_text, false, true);
}

/* ---- the transaction ---- */

/* No control characters (no CR or LF to end the command early). */
static bool
clean(const char *s, bool space_ok)
{
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch < 0x20 || ch == 0x7f || (ch == ' ' && !space_ok))
			return false;
	}
	return true;
}

static size_t
next_valid(const struct smtp_client *c, size_t from)
{
	while (from < c->txn->nrcpts && !c->track[from].valid)
		from++;
	return from;
}

static void
send_rcpt(struct smtp_client *c, size_t i)
{
	const struct smtp_client_rcpt *r = &c->txn->rcpts[i];
	unsigned notify = r->notify;

	(void)buf_printf(&c->out, "RCPT TO:<%s>", r->address);
	if (c->ext.dsn && (notify & 0xf) != 0) {
		if (notify & 0x1)
			out_str(c, " NOTIFY=NEVER");
		else
			(void)buf_printf(
			    &c->out, " NOTIFY=%s%s%s%s%s",
			    notify & 0x2 ? "SUCCESS" : "",
			    notify & 0x2 && notify & 0xc ? "," : "",
			    notify & 0x4 ? "FAILURE" : "",
			    notify & 0x4 && notify & 0x8 ? "," : "",
			    notify & 0x8 ? "DELAY" : "");
	}
	if (c->ext.dsn && r->orcpt != NULL)
		(void)buf_printf(&c->out, " ORCPT=%s", r->orcpt);
	out_str(c, "\r\n");
}

static void
send_mail(struct smtp_client *c)
{
	const struct smtp_client_txn *t = c->txn;

	(void)buf_printf(&c->out, "MAIL FROM:<%s>", t->mail_from);
	if (c->size_offered)
		(void)buf_printf(&c->out, " SIZE=%" PRIu64, t->size);
	if (t->body_8bit && c->ext.eightbitmime)
		out_str(c, " BODY=8BITMIME");
	if (t->smtputf8)
		out_str(c, " SMTPUTF8");
	if (c->ext.dsn && t->ret != NULL)
		(void)buf_printf(&c->out, " RET=%s", t->ret);
	if (c->ext.dsn && t->envid != NULL)
		(void)buf_printf(&c->out, " ENVID=%s", t->envid);
	out_str(c, "\r\n");
}

/* A reason this transaction cannot go to this server at all, or NULL. */
static const char *
txn_refusal(struct smtp_client *c, const struct smtp_client_txn *t, int *code_r,
            const char **status_r, char *text, size_t size)
{
	if (c->ext.size_max != 0 && t->size > c->ext.size_max) {
		*code_r = 552;
		*status_r = "5.3.4";
		snprintf(text, size,
		         "message too big for the remote server (%" PRIu64
		         " bytes, limit %" PRIu64 ")",
		         t->size, c->ext.size_max);
		return text;
	}
	if (t->smtputf8 && !c->ext.smtputf8) {
		*code_r = 553;
		*status_r = "5.6.7";
		return "the remote server does not support SMTPUTF8";
	}
	if (!clean(t->mail_from, true) ||
	    (t->envid != NULL && !clean(t->envid, false)) ||
	    (t->ret != NULL && strcasecmp(t->ret, "FULL") != 0 &&
	     strcasecmp(t->ret, "HDRS") != 0)) {
		*code_r = 501;
		*status_r = "5.5.4";
		return "invalid sender or envelope parameters";
	}
	return NULL;
}

enum smtp_client_event
smtp_client_begin(struct smtp_client *c, struct smtp_client_txn *t)
{
	char buf[160];
	const char *why, *status = NULL;
	int code = 0;

	assert(c->state == CLIENT_READY && c->txn == NULL);
	assert(t->nrcpts > 0 && t->rcpts != NULL);
	for (size_t i = 0; i < t->nrcpts; i++) {
		t->rcpts[i].code = 0;
		t->rcpts[i].status[0] = '\0';
		t->rcpts[i].reply = NULL;
	}
	c->txn = t;
	c->track = xcalloc(t->nrcpts, sizeof(*c->track));
	c->mail_ok = c->bdat_failed = c->eod_ignore = false;
	c->naccepted = 0;
	c->bdat_outstanding = 0;
	why = txn_refusal(c, t, &code, &status, buf, sizeof(buf));
	if (why != NULL) {
		rcpts_set(c, false, code, status, why);
		txn_done(c);
		return result(c);
	}
	for (size_t i = 0; i < t->nrcpts; i++) {
		const struct smtp_client_rcpt *r = &t->rcpts[i];

		c->track[i].valid =
		    clean(r->address, true) &&
		    (r->orcpt == NULL || clean(r->orcpt, false));
		if (!c->track[i].valid)
			rcpt_set(&t->rcpts[i], 501, "5.1.3",
			         "invalid recipient address");
	}
	c->cur = next_valid(c, 0);
	if (c->cur == t->nrcpts) {
		txn_done(c);
		return result(c);
	}
	c->pipelined = c->ext.pipelining;
	c->bdat = c->opt.use_chunking && c->ext.chunking && c->ext.pipelining;
	send_mail(c);
	if (c->pipelined) {
		for (size_t i = c->cur; i < t->nrcpts; i = next_valid(c, i + 1))
			send_rcpt(c, i);
		if (!c->bdat)
			out_str(c, "DATA\r\n");
	}
	set_state(c, CLIENT_MAIL);
	return SMTP_CLIENT_WAIT;
}

static void
start_body(struct smtp_client *c)
{
	c->bol = true;
	c->cr = false;
	set_state(c, CLIENT_BODY);
}

static void
on_mail(struct smtp_client *c)
{
	if (reply_intermediate(c))
		return;
	c->mail_ok = c->reply_code / 100 == 2;
	if (!c->mail_ok)
		rcpts_set(c, false, c->reply_code, NULL, c->reply_text);
	if (c->pipelined) {
		set_state(c, CLIENT_RCPT); /* their replies come anyway */
	} else if (!c->mail_ok) {
		send_rset(c);
	} else {
		send_rcpt(c, c->cur);
		set_state(c, CLIENT_RCPT);
	}
}

static void
on_rcpt(struct smtp_client *c)
{
	size_t i = c->cur;

	if (reply_intermediate(c))
		return;
	if (c->mail_ok) {
		if (c->reply_code / 100 == 2) {
			c->track[i].accepted = true;
			c->naccepted++;
		} else
			rcpt_set(&c->txn->rcpts[i], c->reply_code, NULL,
			         c->reply_text);
	}
	c->cur = next_valid(c, i + 1);
	if (c->cur < c->txn->nrcpts) {
		if (!c->pipelined)
			send_rcpt(c, c->cur);
		return;
	}
	if (c->pipelined && !c->bdat)
		set_state(c, CLIENT_DATA); /* already sent */
	else if (!c->mail_ok || c->naccepted == 0)
		send_rset(c);
	else if (c->bdat)
		start_body(c);
	else {
		out_str(c, "DATA\r\n");
		set_state(c, CLIENT_DATA);
	}
}

static void
on_data(struct smtp_client *c)
{
	int cls = c->reply_code / 100;

	if (!c->mail_ok || c->naccepted == 0) {
		/* RFC 2920 3.1: a DATA accepted anyway gets a lone dot. */
		if (c->reply_code == 354) {
			out_str(c, ".\r\n");
			c->eod_ignore = true;
			set_state(c, CLIENT_EOD);
		} else {
			send_rset(c);
		}
	} else if (c->reply_code == 354) {
		start_body(c);
	} else if (cls == 4 || cls == 5) {
		rcpts_accepted_reply(c);
		send_rset(c);
	} else {
		/* A 250 here would lose the message: never a success. */
		fail_protocol(c, "unexpected reply to DATA");
	}
}

/* One BDAT reply: a failure fails the transaction, the other chunks'
 * replies are then only read. */
static void
on_bdat(struct smtp_client *c)
{
	if (reply_intermediate(c))
		return;
	c->bdat_outstanding--;
	if (c->reply_code / 100 != 2 && !c->bdat_failed) {
		c->bdat_failed = true;
		rcpts_accepted_reply(c);
	}
}

static void
on_eod(struct smtp_client *c)
{
	if (reply_intermediate(c))
		return;
	if (c->eod_ignore) {
		send_rset(c);
		return;
	}
	if (c->bdat) {
		on_bdat(c);
		if (c->bdat_outstanding > 0)
			return;
		if (c->bdat_failed) {
			send_rset(c); /* RFC 3030 2: the state is unknown */
			return;
		}
	}
	rcpts_accepted_reply(c);
	txn_done(c);
}

static void
on_rset(struct smtp_client *c)
{
	txn_done(c);
}

static void
on_quit(struct smtp_client *c)
{
	set_state(c, CLIENT_CLOSED);
}

/* ---- the message body ---- */

/* Every line end (CRLF, LF, CR) becomes CRLF; stuff: a dot starting a
 * line gets another (DATA). The state crosses calls. */
static void
body_normalize(struct smtp_client *c, struct buf *dst, const uint8_t *p,
               size_t len, bool stuff)
{
	size_t i = 0, j;

	while (i < len) {
		if (c->cr) {
			c->cr = false;
			(void)buf_append(dst, "\r\n", 2);
			c->bol = true;
			if (p[i] == '\n') {
				i++;
				continue;
			}
		}
		if (p[i] == '\r') {
			c->cr = true;
			i++;
			continue;
		}
		if (p[i] == '\n') {
			(void)buf_append(dst, "\r\n", 2);
			c->bol = true;
			i++;
			continue;
		}
		if (c->bol && stuff && p[i] == '.')
			(void)buf_append_byte(dst, '.');
		for (j = i; j < len && p[j] != '\r' && p[j] != '\n';)
			j++;
		(void)buf_append(dst, p + i, j - i);
		c->bol = false;
		i = j;
	}
}

/* The message ends with a line end. */
static void
body_finish_line(struct smtp_client *c, struct buf *dst)
{
	if (c->cr || !c->bol)
		(void)buf_append(dst, "\r\n", 2);
	c->cr = false;
	c->bol = true;
}

static void
bdat_flush(struct smtp_client *c, bool last)
{
	size_t off = 0;

	while (c->chunk.len - off >= BDAT_CHUNK) {
		(void)buf_printf(&c->out, "BDAT %d\r\n", BDAT_CHUNK);
		(void)buf_append(&c->out, c->chunk.data + off, BDAT_CHUNK);
		c->bdat_outstanding++;
		off += BDAT_CHUNK;
	}
	if (last) {
		(void)buf_printf(&c->out, "BDAT %zu LAST\r\n",
		                 c->chunk.len - off);
		(void)buf_append(&c->out, c->chunk.data + off,
		                 c->chunk.len - off);
		c->bdat_outstanding++;
		off = c->chunk.len;
	}
	buf_consume(&c->chunk, off);
}

void
smtp_client_body(struct smtp_client *c, const uint8_t *data, size_t len)
{
	if (c->state == CLIENT_CLOSED)
		return;
	assert(c->state == CLIENT_BODY);
	if (!c->bdat) {
		body_normalize(c, &c->out, data, len, true);
	} else if (!c->bdat_failed) {
		body_normalize(c, &c->chunk, data, len, false);
		bdat_flush(c, false);
	}
}

enum smtp_client_event
smtp_client_body_end(struct smtp_client *c)
{
	if (c->state == CLIENT_CLOSED)
		return SMTP_CLIENT_CLOSED;
	assert(c->state == CLIENT_BODY);
	if (!c->bdat) {
		body_finish_line(c, &c->out);
		out_str(c, ".\r\n");
		set_state(c, CLIENT_EOD);
	} else if (!c->bdat_failed) {
		body_finish_line(c, &c->chunk);
		bdat_flush(c, true);
		set_state(c, CLIENT_EOD);
	} else if (c->bdat_outstanding > 0) {
		set_state(c, CLIENT_EOD); /* read the other chunks' replies */
	} else {
		send_rset(c);
	}
	return result(c);
}

/* ---- reply parsing ---- */

static void
reply_text_add(struct smtp_client *c, const uint8_t *p, size_t n)
{
	size_t max = sizeof(c->reply_text) - 1;

	if (n == 0)
		return;
	if (c->reply_text_len > 0 && c->reply_text_len < max)
		c->reply_text[c->reply_text_len++] = ' ';
	for (size_t i = 0; i < n && c->reply_text_len < max; i++)
		c->reply_text[c->reply_text_len++] =
		    p[i] < 0x20 || p[i] == 0x7f ? '?' : (char)p[i];
	c->reply_text[c->reply_text_len] = '\0';
}

static bool
is_digit(uint8_t ch)
{
	return ch >= '0' && ch <= '9';
}

/* One reply line without its line end: "ddd", "ddd text" or "ddd-text". */
static void
reply_line(struct smtp_client *c)
{
	const uint8_t *p = c->line.data;
	size_t n = c->line.len;
	int code;
	bool last;

	if (n > 0 && p[n - 1] == '\r')
		n--; /* n <= SMTP_CLIENT_LINE_MAX: see smtp_client_input() */
	if (n < 3 || p[0] < '2' || p[0] > '5' || !is_digit(p[1]) ||
	    !is_digit(p[2]) || (n > 3 && p[3] != ' ' && p[3] != '-')) {
		fail_protocol(c, "malformed reply line");
		return;
	}
	code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	if (c->reply_lines == 0) {
		c->reply_code = code;
		c->reply_text_len = 0;
		c->reply_text[0] = '\0';
	} else if (code != c->reply_code) {
		fail_protocol(c, "different codes in one multi-line reply");
		return;
	}
	if (++c->reply_lines > SMTP_CLIENT_REPLY_LINES_MAX) {
		fail_protocol(c, "too many lines in one reply");
		return;
	}
	last = n == 3 || p[3] == ' ';
	if (n > 4) {
		reply_text_add(c, p + 4, n - 4);
		if (c->state == CLIENT_EHLO && code / 100 == 2 &&
		    c->reply_lines > 1)
			ehlo_keyword(c, (const char *)p + 4, n - 4);
	}
	buf_reset(&c->line);
	if (!last)
		return;
	c->reply_lines = 0;
	log_trace(c->opt.log_id, "event=smtp_client_reply state=%s code=%d",
	          states[c->state].name, code);
	if (code == 421 && c->state != CLIENT_QUIT)
		fail_reply(c, states[c->state].stage, false);
	else
		states[c->state].reply(c);
}

enum smtp_client_event
smtp_client_input(struct smtp_client *c, const uint8_t *data, size_t len)
{
	size_t i = 0, n;
	const uint8_t *lf;

	while (i < len && c->state != CLIENT_CLOSED) {
		if (c->state == CLIENT_TLS)
			break; /* read before the handshake: dropped */
		if (c->line.len == 0 && !awaiting(c)) {
			fail_protocol(c, "unexpected data from the server");
			break;
		}
		lf = memchr(data + i, '\n', len - i);
		n = lf != NULL ? (size_t)(lf - (data + i)) : len - i;
		/* Room for SMTP_CLIENT_LINE_MAX bytes and a CR. */
		if (buf_append(&c->line, data + i, n) < 0 ||
		    (c->line.len > SMTP_CLIENT_LINE_MAX &&
		     c->line.data[SMTP_CLIENT_LINE_MAX] != '\r')) {
			fail_protocol(c, "reply line too long");
			break;
		}
		i += n;
		if (lf == NULL)
			break;
		i++;
		reply_line(c);
	}
	return result(c);
}

/* ---- the session ---- */

struct smtp_client *
smtp_client_new(const struct smtp_client_options *opt)
{
	struct smtp_client *c = xcalloc(1, sizeof(*c));

	assert(opt->helo_name != NULL && clean(opt->helo_name, false));
	c->opt = *opt;
	c->state = CLIENT_GREETING;
	c->tls_active = opt->tls == SMTP_CLIENT_TLS_IMPLICIT;
	buf_init(&c->line, SMTP_CLIENT_LINE_MAX + 1); /* + a CR */
	buf_init(&c->out, 0);
	buf_init(&c->chunk, 0);
	return c;
}

void
smtp_client_free(struct smtp_client **cp)
{
	struct smtp_client *c = *cp;

	if (c == NULL)
		return;
	if (c->out.data != NULL) /* may hold AUTH data */
		explicit_bzero(c->out.data, c->out.cap);
	buf_free(&c->out);
	buf_free(&c->line);
	buf_free(&c->chunk);
	free(c->track);
	free(c);
	*cp = NULL;
}

enum smtp_client_event
smtp_client_eof(struct smtp_client *c)
{
	if (c->state == CLIENT_QUIT)
		set_state(c, CLIENT_CLOSED);
	else
		fail(c, states[c->state].stage, 0, "4.4.2", "connection lost",
		     false, false);
	return result(c);
}

enum smtp_client_event
smtp_client_event(const struct smtp_client *c)
{
	switch (c->state) {
	case CLIENT_TLS:
		return SMTP_CLIENT_STARTTLS;
	case CLIENT_READY:
		return SMTP_CLIENT_READY;
	case CLIENT_BODY:
		return SMTP_CLIENT_BODY;
	case CLIENT_CLOSED:
		return SMTP_CLIENT_CLOSED;
	default:
		return SMTP_CLIENT_WAIT;
	}
}

const uint8_t *
smtp_client_output(const struct smtp_client *c, size_t *len_r)
{
	*len_r = c->out.len;
	return c->out.data;
}

void
smtp_client_output_consume(struct smtp_client *c, size_t n)
{
	assert(n <= c->out.len);
	buf_consume(&c->out, n);
}

enum smtp_client_event
smtp_client_tls_started(struct smtp_client *c)
{
	if (c->state == CLIENT_CLOSED)
		return SMTP_CLIENT_CLOSED;
	assert(c->state == CLIENT_TLS);
	c->tls_active = true;
	buf_reset(&c->line);
	c->reply_lines = 0;
	send_hello(c, true);
	return result(c);
}

enum smtp_client_event
smtp_client_quit(struct smtp_client *c)
{
	if (c->state == CLIENT_CLOSED)
		return SMTP_CLIENT_CLOSED;
	assert(c->state == CLIENT_READY);
	out_str(c, "QUIT\r\n");
	set_state(c, CLIENT_QUIT);
	return result(c);
}

void
smtp_client_txn_clear(struct smtp_client_txn *t)
{
	for (size_t i = 0; i < t->nrcpts; i++) {
		xfree(&t->rcpts[i].reply);
		t->rcpts[i].code = 0;
		t->rcpts[i].status[0] = '\0';
	}
}

const struct smtp_client_ext *
smtp_client_ext(const struct smtp_client *c)
{
	return &c->ext;
}

bool
smtp_client_tls_active(const struct smtp_client *c)
{
	return c->tls_active;
}

const struct smtp_client_error *
smtp_client_error(const struct smtp_client *c)
{
	return c->failed ? &c->err : NULL;
}

uint64_t
smtp_client_timeout_ms(const struct smtp_client *c)
{
	return awaiting(c) ? states[c->state].timeout_ms : 0;
}
