/* The SMTP/LMTP server session (see server.h): command lines, the command
 * table, the transaction and the answers from the owner.
 * SECURITY: every byte comes from the network. Command lines are capped at
 * limits.line_max (the rest of a long line is dropped, the session stays in
 * step), paths are parsed strictly and checked with address_parse(), ESMTP
 * parameters are validated and bounded, errors and recipients are counted.
 * Nothing is read past a command whose answer is awaited. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "mail/address.h"
#include "smtp/server_int.h"

#define VERB_MAX 16
#define HELO_MAX 255

static const char *const state_names[] = {
    [SMTP_STATE_INIT] = "init",
    [SMTP_STATE_GREETED] = "greeted",
    [SMTP_STATE_IDLE] = "idle",
    [SMTP_STATE_SENDER_CHECK] = "sender-check",
    [SMTP_STATE_MAIL] = "mail",
    [SMTP_STATE_RCPT_CHECK] = "rcpt-check",
    [SMTP_STATE_DATA_BEGIN] = "data-begin",
    [SMTP_STATE_DATA] = "data",
    [SMTP_STATE_BDAT_BEGIN] = "bdat-begin",
    [SMTP_STATE_BDAT] = "bdat",
    [SMTP_STATE_COMMIT] = "commit",
    [SMTP_STATE_AUTH] = "auth",
    [SMTP_STATE_AUTH_PENDING] = "auth-pending",
    [SMTP_STATE_TLS] = "tls",
    [SMTP_STATE_CLOSED] = "closed",
};

void
smtp_limits_default(struct smtp_limits *l)
{
	l->line_max = 2048;
	l->message_max = 50 * 1024 * 1024;
	l->header_max = 1024 * 1024;
	l->rcpt_max = 100;
	l->errors_max = 10;
	l->reject_bare_lf = false;
}

void
smtp_set_state(struct smtp_server *s, enum smtp_state st)
{
	if (s->state == st)
		return;
	log_trace(s->log_id, "event=smtp_state from=%s to=%s",
	          state_names[s->state], state_names[st]);
	s->state = st;
}

void
smtp_reply_raw(struct smtp_server *s, const char *line, size_t len)
{
	if (s->state == SMTP_STATE_CLOSED)
		return;
	s->io.write(s->io.arg, line, len);
	if (line[0] == '5' && s->lim.errors_max > 0 &&
	    ++s->errors >= s->lim.errors_max)
		s->too_many_errors = true;
}

void
smtp_reply(struct smtp_server *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 2)
		n = (int)sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	smtp_reply_raw(s, line, (size_t)n);
}

/* ---- the transaction ---- */

static void
rcpt_clear(struct smtp_rcpt *r)
{
	xfree(&r->address);
	xfree(&r->orcpt);
	r->notify = 0;
}

static void
tx_reset(struct smtp_server *s)
{
	if (s->data_open) {
		s->data_open = false;
		s->io.data_abort(s->io.arg);
	}
	xfree(&s->env.mail_from);
	xfree(&s->env.ret);
	xfree(&s->env.envid);
	for (size_t i = 0; i < s->env.nrcpts; i++)
		rcpt_clear(&s->env.rcpts[i]);
	xfree(&s->env.rcpts);
	s->env.nrcpts = 0;
	s->rcpt_cap = 0;
	s->env.body_8bit = s->env.smtputf8 = false;
	s->env.size = 0;
	rcpt_clear(&s->pending);
	s->tx_active = s->tx_data = s->tx_bdat = false;
	s->bdat_left = 0;
	s->bdat_error = NULL;
	s->bdat_discard = s->bdat_last = false;
	smtp_data_clear(s);
}

enum smtp_state
smtp_idle_state(const struct smtp_server *s)
{
	return s->helo != NULL ? SMTP_STATE_IDLE : SMTP_STATE_GREETED;
}

static void
session_close(struct smtp_server *s)
{
	if (s->state == SMTP_STATE_CLOSED)
		return;
	tx_reset(s);
	sasl_free(&s->sasl);
	smtp_set_state(s, SMTP_STATE_CLOSED);
	s->io.close(s->io.arg);
}

static void
close_with(struct smtp_server *s, const char *ecode, const char *text)
{
	smtp_reply(s, "421 %s %s %s", ecode, s->hostname, text);
	session_close(s);
}

/* After every step: too many errors ends the session. */
static bool
in_message(const struct smtp_server *s)
{
	switch (s->state) {
	case SMTP_STATE_DATA_BEGIN:
	case SMTP_STATE_DATA:
	case SMTP_STATE_BDAT_BEGIN:
	case SMTP_STATE_BDAT:
	case SMTP_STATE_COMMIT:
		return true;
	default:
		return s->data_open;
	}
}

void
smtp_after(struct smtp_server *s)
{
	if (s->state == SMTP_STATE_CLOSED)
		return;
	if (s->too_many_errors) {
		log_info(s->log_id, "event=smtp_too_many_errors errors=%u",
		         s->errors);
		close_with(s, "4.7.0", "Error: too many errors");
	} else if (s->shutdown_pending && !in_message(s) &&
	           !smtp_server_busy(s)) {
		close_with(s, "4.3.2", "Service shutting down");
	}
}

/* ---- commands ---- */

#define CMD_HELO_FIRST 0x01 /* only after HELO/EHLO/LHLO */
#define CMD_NOT_LMTP 0x02   /* HELO, EHLO: LMTP wants LHLO (RFC 2033) */
#define CMD_LMTP_ONLY 0x04  /* LHLO */
#define CMD_GROUP_END 0x08  /* RFC 2920 §3.1: last of a pipelined group */
#define CMD_NO_ARGS 0x10    /* RFC 5321 §4.1.1: no parameters */
#define CMD_NEED_ARGS 0x20  /* an argument is required */

struct smtp_command {
	const char *name;
	/* NULL when the command may run now, else the reply. */
	const char *(*check)(struct smtp_server *s);
	void (*run)(struct smtp_server *s, char *args);
	unsigned flags;
	const char *syntax; /* the reply for missing/extra arguments */
};

static bool
auth_offered(const struct smtp_server *s)
{
	return s->kind == SMTP_KIND_SUBMISSION && s->tls_active &&
	       !s->logged_in && s->io.verifier != NULL;
}

static bool
starttls_offered(const struct smtp_server *s)
{
	return s->starttls_offered && !s->tls_active;
}

static void
run_helo(struct smtp_server *s, char *args, bool esmtp)
{
	struct buf b;
	size_t n = strlen(args);

	if (n == 0 || n > HELO_MAX || strchr(args, ' ') != NULL) {
		smtp_reply(s, "501 5.5.4 Syntax: %s hostname",
		           s->kind == SMTP_KIND_LMTP ? "LHLO"
		           : esmtp                   ? "EHLO"
		                                     : "HELO");
		return;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)args[i] < 0x21 ||
		    (unsigned char)args[i] > 0x7e) {
			smtp_reply(s, "501 5.5.2 Error: invalid hostname");
			return;
		}
	/* RFC 5321 §4.1.4: HELO/EHLO in a transaction is a RSET. */
	tx_reset(s);
	free(s->helo);
	s->helo = xstrdup(args);
	s->esmtp = esmtp;
	smtp_set_state(s, SMTP_STATE_IDLE);
	if (!esmtp) {
		smtp_reply(s, "250 %s", s->hostname);
		return;
	}
	buf_init(&b, 0);
	buf_printf(&b, "250-%s\r\n", s->hostname);
	buf_append_str(&b, "250-PIPELINING\r\n");
	buf_printf(&b, "250-SIZE %" PRIu64 "\r\n", s->lim.message_max);
	buf_append_str(&b, "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
	                   "250-SMTPUTF8\r\n250-CHUNKING\r\n");
	if (starttls_offered(s))
		buf_append_str(&b, "250-STARTTLS\r\n");
	if (auth_offered(s))
		buf_append_str(&b, "250-AUTH PLAIN LOGIN SCRAM-SHA-256\r\n");
	buf_append_str(&b, "250 DSN\r\n");
	smtp_reply_raw(s, (const char *)b.data, b.len);
	buf_free(&b);
}

static void
cmd_ehlo(struct smtp_server *s, char *args)
{
	run_helo(s, args, true);
}

static void
cmd_helo(struct smtp_server *s, char *args)
{
	run_helo(s, args, false);
}

static const char *
check_mail(struct smtp_server *s)
{
	if (s->tx_active)
		return "503 5.5.1 Error: nested MAIL command";
	if (s->kind == SMTP_KIND_SUBMISSION && !s->logged_in)
		return "530 5.7.0 Authentication required";
	return NULL;
}

static void
cmd_mail(struct smtp_server *s, char *args)
{
	char *box = NULL, *rest = NULL;
	const char *err = smtp_parse_path(s, args, SMTP_PATH_MAIL, &box, &rest);

	if (err == NULL)
		err = smtp_mail_params(s, rest);
	if (err == NULL && smtp_has_8bit(box) && !s->env.smtputf8)
		err = "553 5.6.7 Error: SMTPUTF8 is required for this address";
	if (err == NULL && s->kind == SMTP_KIND_SUBMISSION && *box == '\0')
		err = "553 5.7.1 Error: the null sender is not allowed here";
	if (err != NULL) {
		tx_reset(s);
		smtp_reply(s, "%s", err);
		return;
	}
	s->env.mail_from = xstrdup(box);
	if (s->kind == SMTP_KIND_SUBMISSION) {
		smtp_set_state(s, SMTP_STATE_SENDER_CHECK);
		s->io.check_sender(s->io.arg, s->user, s->env.mail_from);
		return;
	}
	s->tx_active = true;
	smtp_set_state(s, SMTP_STATE_MAIL);
	smtp_reply(s, "250 2.1.0 Ok");
}

static const char *
check_rcpt(struct smtp_server *s)
{
	if (!s->tx_active)
		return "503 5.5.1 Error: need MAIL command";
	if (s->tx_bdat || s->tx_data)
		return "503 5.5.1 Error: message data in progress";
	return NULL;
}

static void
cmd_rcpt(struct smtp_server *s, char *args)
{
	char *box = NULL, *rest = NULL;
	const char *err;

	rcpt_clear(&s->pending);
	err = smtp_parse_path(s, args, SMTP_PATH_RCPT, &box, &rest);
	if (err == NULL)
		err = smtp_rcpt_params(s, rest);
	if (err == NULL && smtp_has_8bit(box) && !s->env.smtputf8)
		err = "553 5.6.7 Error: SMTPUTF8 is required for this address";
	if (err == NULL && s->env.nrcpts >= s->lim.rcpt_max)
		err = "452 4.5.3 Error: too many recipients";
	if (err != NULL) {
		rcpt_clear(&s->pending);
		smtp_reply(s, "%s", err);
		return;
	}
	s->pending.address = xstrdup(box);
	smtp_set_state(s, SMTP_STATE_RCPT_CHECK);
	s->io.check_rcpt(s->io.arg, s->pending.address);
}

static const char *
check_data(struct smtp_server *s)
{
	if (!s->tx_active)
		return "503 5.5.1 Error: need MAIL command";
	if (s->tx_bdat)
		return "503 5.5.1 Error: DATA after BDAT";
	if (s->env.nrcpts == 0)
		return "554 5.5.1 Error: no valid recipients";
	return NULL;
}

static void
cmd_data(struct smtp_server *s, char *args)
{
	(void)args;
	s->tx_data = true;
	smtp_set_state(s, SMTP_STATE_DATA_BEGIN);
	s->io.data_begin(s->io.arg);
}

static void
cmd_bdat(struct smtp_server *s, char *args)
{
	char *sp = strchr(args, ' ');
	uint64_t size;

	if (sp != NULL)
		*sp++ = '\0';
	if (smtp_parse_u64(args, &size) < 0 ||
	    (sp != NULL && strcasecmp(sp, "LAST") != 0)) {
		smtp_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		return;
	}
	s->bdat_left = size;
	s->bdat_last = sp != NULL;
	s->bdat_error = NULL;
	s->bdat_discard = false;
	if (!s->tx_active)
		s->bdat_error = "503 5.5.1 Error: need MAIL command";
	else if (s->tx_data)
		s->bdat_error = "503 5.5.1 Error: BDAT after DATA";
	else if (s->env.nrcpts == 0)
		s->bdat_error = "554 5.5.1 Error: no valid recipients";
	if (s->bdat_error != NULL) {
		/* RFC 3030 §2: the chunk is read and dropped. */
		s->bdat_discard = true;
		smtp_set_state(s, SMTP_STATE_BDAT);
	} else if (!s->tx_bdat) {
		s->tx_bdat = true;
		smtp_set_state(s, SMTP_STATE_BDAT_BEGIN);
		s->io.data_begin(s->io.arg);
		return;
	} else {
		smtp_set_state(s, SMTP_STATE_BDAT);
	}
	if (s->bdat_left == 0)
		smtp_server_chunk_end(s);
}

static void
cmd_rset(struct smtp_server *s, char *args)
{
	(void)args;
	tx_reset(s);
	smtp_set_state(s, smtp_idle_state(s));
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct smtp_server *s, char *args)
{
	(void)args;
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct smtp_server *s, char *args)
{
	(void)args;
	smtp_reply(s, "221 2.0.0 Bye");
	session_close(s);
}

static void
cmd_help(struct smtp_server *s, char *args)
{
	(void)args;
	smtp_reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT "
	              "RSET NOOP QUIT HELP VRFY STARTTLS AUTH");
}

static void
cmd_vrfy(struct smtp_server *s, char *args)
{
	(void)args;
	smtp_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message "
	              "and attempt delivery");
}

static void
cmd_expn(struct smtp_server *s, char *args)
{
	(void)args;
	smtp_reply(s, "502 5.5.1 Error: command not implemented");
}

static const char *
check_starttls(struct smtp_server *s)
{
	if (s->tls_active)
		return "503 5.5.1 Error: TLS already active";
	if (!s->starttls_offered)
		return "502 5.5.1 Error: command not implemented";
	if (s->tx_active)
		return "503 5.5.1 Error: MAIL transaction in progress";
	return NULL;
}

static void
cmd_starttls(struct smtp_server *s, char *args)
{
	(void)args;
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	smtp_set_state(s, SMTP_STATE_TLS);
	s->io.starttls(s->io.arg);
}

static const struct smtp_command commands[] = {
    {"EHLO", NULL, cmd_ehlo, CMD_NOT_LMTP | CMD_NEED_ARGS | CMD_GROUP_END,
     "501 5.5.4 Syntax: EHLO hostname"},
    {"HELO", NULL, cmd_helo, CMD_NOT_LMTP | CMD_NEED_ARGS | CMD_GROUP_END,
     "501 5.5.4 Syntax: HELO hostname"},
    {"LHLO", NULL, cmd_ehlo, CMD_LMTP_ONLY | CMD_NEED_ARGS | CMD_GROUP_END,
     "501 5.5.4 Syntax: LHLO hostname"},
    {"MAIL", check_mail, cmd_mail, CMD_HELO_FIRST | CMD_NEED_ARGS,
     "501 5.5.4 Syntax: MAIL FROM:<address>"},
    {"RCPT", check_rcpt, cmd_rcpt, CMD_HELO_FIRST | CMD_NEED_ARGS,
     "501 5.5.4 Syntax: RCPT TO:<address>"},
    {"DATA", check_data, cmd_data, CMD_HELO_FIRST | CMD_NO_ARGS | CMD_GROUP_END,
     "501 5.5.4 Syntax: DATA"},
    /* BDAT checks after parsing the size: a refused chunk is read. */
    {"BDAT", NULL, cmd_bdat, CMD_NEED_ARGS,
     "501 5.5.4 Syntax: BDAT size [LAST]"},
    {"RSET", NULL, cmd_rset, CMD_NO_ARGS, "501 5.5.4 Syntax: RSET"},
    {"NOOP", NULL, cmd_noop, CMD_GROUP_END, NULL},
    {"QUIT", NULL, cmd_quit, CMD_GROUP_END, NULL},
    {"HELP", NULL, cmd_help, CMD_GROUP_END, NULL},
    {"VRFY", NULL, cmd_vrfy, CMD_NEED_ARGS | CMD_GROUP_END,
     "501 5.5.4 Syntax: VRFY address"},
    {"EXPN", NULL, cmd_expn, CMD_GROUP_END, NULL},
    {"STARTTLS", check_starttls, cmd_starttls,
     CMD_HELO_FIRST | CMD_NO_ARGS | CMD_GROUP_END,
     "501 5.5.4 Syntax: STARTTLS"},
    {"AUTH", smtp_check_auth, smtp_cmd_auth,
     CMD_HELO_FIRST | CMD_NEED_ARGS | CMD_GROUP_END,
     "501 5.5.4 Syntax: AUTH mechanism"},
};

static void
command(struct smtp_server *s, char *line, size_t len)
{
	const struct smtp_command *cmd = NULL;
	char *args;
	size_t vlen;
	const char *err;

	if (memchr(line, '\0', len) != NULL) {
		smtp_reply(s, "500 5.5.2 Error: bad character in command");
		return;
	}
	args = strchr(line, ' ');
	vlen = args != NULL ? (size_t)(args - line) : len;
	if (args != NULL)
		*args++ = '\0';
	else
		args = line + len;
	if (vlen > 0 && vlen <= VERB_MAX)
		for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]);
		     i++)
			if (strcasecmp(line, commands[i].name) == 0)
				cmd = &commands[i];
	if (cmd == NULL ||
	    ((cmd->flags & CMD_LMTP_ONLY) && s->kind != SMTP_KIND_LMTP)) {
		smtp_reply(s, "500 5.5.2 Error: command not recognized");
		return;
	}
	log_trace(s->log_id, "event=smtp_command verb=%s", cmd->name);
	if ((cmd->flags & CMD_NOT_LMTP) && s->kind == SMTP_KIND_LMTP) {
		smtp_reply(s, "500 5.5.1 Error: LMTP requires LHLO");
		return;
	}
	if ((cmd->flags & CMD_HELO_FIRST) && s->helo == NULL) {
		smtp_reply(s, "503 5.5.1 Error: send %s first",
		           s->kind == SMTP_KIND_LMTP ? "LHLO" : "HELO/EHLO");
		return;
	}
	if (((cmd->flags & CMD_NO_ARGS) && *args != '\0') ||
	    ((cmd->flags & CMD_NEED_ARGS) && *args == '\0')) {
		smtp_reply(s, "%s", cmd->syntax);
		return;
	}
	if (cmd->check != NULL && (err = cmd->check(s)) != NULL) {
		smtp_reply(s, "%s", err);
		return;
	}
	cmd->run(s, args);
}

static void
line_too_long(struct smtp_server *s)
{
	if (s->state == SMTP_STATE_AUTH) {
		sasl_free(&s->sasl);
		s->auth_final = false;
		smtp_set_state(s, smtp_idle_state(s));
	}
	smtp_reply(s, "500 5.5.2 Error: line too long");
}

/* One command line (or AUTH answer), up to its LF. */
static size_t
line_input(struct smtp_server *s, const uint8_t *p, size_t len)
{
	const uint8_t *lf = memchr(p, '\n', len);
	size_t k = lf != NULL ? (size_t)(lf - p) + 1 : len, n;
	char *line;

	if (!s->line_overflow && buf_append(&s->line, p, k) < 0) {
		s->line_overflow = true;
		buf_reset(&s->line);
	}
	if (lf == NULL)
		return k;
	if (s->line_overflow) {
		s->line_overflow = false;
		buf_reset(&s->line);
		line_too_long(s);
		return k;
	}
	n = s->line.len - 1;
	s->line_crlf = n > 0 && s->line.data[n - 1] == '\r';
	if (s->line_crlf)
		n--;
	s->line.len = n;
	line = (char *)buf_cstr(&s->line);
	if (s->state == SMTP_STATE_AUTH)
		smtp_auth_line(s, line, n);
	else
		command(s, line, n);
	buf_reset(&s->line);
	return k;
}

/* ---- the message ends ---- */

static void
commit(struct smtp_server *s)
{
	s->data_open = false;
	s->env.helo = s->helo;
	s->env.auth_user = s->logged_in ? s->user : NULL;
	smtp_set_state(s, SMTP_STATE_COMMIT);
	s->io.data_commit(s->io.arg, &s->env);
}

static void
message_refused(struct smtp_server *s, const char *err)
{
	log_info(s->log_id, "event=smtp_message_refused reply=%s", err);
	tx_reset(s);
	smtp_set_state(s, smtp_idle_state(s));
	smtp_reply(s, "%s", err);
}

void
smtp_server_message_end(struct smtp_server *s)
{
	const char *err = smtp_data_finish(s);

	if (err != NULL)
		message_refused(s, err);
	else
		commit(s);
}

void
smtp_server_chunk_end(struct smtp_server *s)
{
	const char *err = s->bdat_error;
	uint64_t size = s->msg_size;

	if (err == NULL)
		err = smtp_data_error(s);
	if (err != NULL) {
		message_refused(s, err);
		return;
	}
	if (s->bdat_last) {
		smtp_server_message_end(s);
		return;
	}
	smtp_set_state(s, SMTP_STATE_MAIL);
	smtp_reply(s, "250 2.0.0 Ok: %" PRIu64 " octets received", size);
}

/* ---- the public interface ---- */

struct smtp_server *
smtp_server_new(enum smtp_kind kind, const struct smtp_limits *limits,
                const char *hostname, const char *client_ip, bool tls_active,
                bool starttls_offered, const struct smtp_server_io *io)
{
	static unsigned long sessions;
	struct smtp_server *s = xcalloc(1, sizeof(*s));

	s->kind = kind;
	if (limits != NULL)
		s->lim = *limits;
	else
		smtp_limits_default(&s->lim);
	if (s->lim.line_max < 512)
		s->lim.line_max = 512; /* RFC 5321 §4.5.3.1.4 */
	s->hostname = xstrdup(hostname);
	s->client_ip = xstrdup(client_ip);
	snprintf(s->log_id, sizeof(s->log_id), "smtp-%lu", ++sessions);
	s->tls_active = tls_active;
	s->starttls_offered = starttls_offered;
	s->io = *io;
	s->state = SMTP_STATE_INIT;
	buf_init(&s->line, s->lim.line_max);
	return s;
}

void
smtp_server_free(struct smtp_server **sp)
{
	struct smtp_server *s = *sp;

	if (s == NULL)
		return;
	tx_reset(s);
	sasl_free(&s->sasl);
	OPENSSL_cleanse(s->line.data, s->line.cap);
	buf_free(&s->line);
	free(s->helo);
	free(s->hostname);
	free(s->client_ip);
	free(s->tls_version);
	free(s->tls_cipher);
	OPENSSL_cleanse(s->user, sizeof(s->user));
	xfree(sp);
}

void
smtp_server_start(struct smtp_server *s)
{
	if (s->state != SMTP_STATE_INIT)
		return;
	smtp_set_state(s, SMTP_STATE_GREETED);
	smtp_reply(s, "220 %s %s tern", s->hostname,
	           s->kind == SMTP_KIND_LMTP ? "LMTP" : "ESMTP");
}

bool
smtp_server_busy(const struct smtp_server *s)
{
	switch (s->state) {
	case SMTP_STATE_SENDER_CHECK:
	case SMTP_STATE_RCPT_CHECK:
	case SMTP_STATE_DATA_BEGIN:
	case SMTP_STATE_BDAT_BEGIN:
	case SMTP_STATE_COMMIT:
	case SMTP_STATE_AUTH_PENDING:
		return true;
	default:
		return false;
	}
}

bool
smtp_server_in_message(const struct smtp_server *s)
{
	return s->state == SMTP_STATE_DATA ||
	       (s->state == SMTP_STATE_BDAT && s->bdat_left > 0);
}

size_t
smtp_server_input(struct smtp_server *s, const uint8_t *data, size_t len)
{
	size_t used = 0;

	while (used < len) {
		if (s->state == SMTP_STATE_INIT ||
		    s->state == SMTP_STATE_CLOSED || smtp_server_busy(s))
			return used;
		switch (s->state) {
		case SMTP_STATE_TLS:
			/* RFC 3207 §5 / CVE-2011-0411: nothing sent before
			 * the handshake is ever read. The caller drops (and
			 * logs) what is left. */
			return used;
		case SMTP_STATE_DATA:
			used += smtp_data_input(s, data + used, len - used);
			break;
		case SMTP_STATE_BDAT:
			if (s->bdat_left == 0)
				smtp_server_chunk_end(s);
			else
				used +=
				    smtp_bdat_input(s, data + used, len - used);
			break;
		default:
			used += line_input(s, data + used, len - used);
			break;
		}
		smtp_after(s);
	}
	return used;
}

void
smtp_server_tls_started(struct smtp_server *s, const char *version,
                        const char *cipher)
{
	free(s->tls_version);
	free(s->tls_cipher);
	s->tls_version = version != NULL ? xstrdup(version) : NULL;
	s->tls_cipher = cipher != NULL ? xstrdup(cipher) : NULL;
	s->tls_active = true;
	if (s->state == SMTP_STATE_INIT || s->state == SMTP_STATE_CLOSED)
		return; /* implicit TLS: only the names for Received: */
	/* RFC 3207 §4.2: discard everything known from the client. */
	tx_reset(s);
	sasl_free(&s->sasl);
	s->auth_final = false;
	xfree(&s->helo);
	s->esmtp = false;
	s->logged_in = false;
	s->user[0] = '\0';
	buf_reset(&s->line);
	s->line_overflow = false;
	smtp_set_state(s, SMTP_STATE_GREETED);
}

void
smtp_server_shutdown(struct smtp_server *s)
{
	if (s->state == SMTP_STATE_CLOSED)
		return;
	if (in_message(s)) {
		s->shutdown_pending = true; /* after the transaction */
		return;
	}
	close_with(s, "4.3.2", "Service shutting down");
}

void
smtp_server_timeout(struct smtp_server *s)
{
	if (s->state == SMTP_STATE_CLOSED)
		return;
	log_info(s->log_id, "event=smtp_timeout state=%s",
	         state_names[s->state]);
	close_with(s, "4.4.2", "Error: timeout exceeded");
}

void
smtp_server_rcpt_result(struct smtp_server *s, int result)
{
	static const char *const refusals[] = {
	    "550 5.1.1 Error: recipient address rejected: user unknown",
	    "554 5.7.1 Error: relay access denied",
	    "550 5.2.1 Error: mailbox disabled",
	};

	if (s->state != SMTP_STATE_RCPT_CHECK)
		return;
	smtp_set_state(s, SMTP_STATE_MAIL);
	if (result == 0) {
		if (s->env.nrcpts == s->rcpt_cap) {
			s->rcpt_cap = s->rcpt_cap == 0 ? 4 : s->rcpt_cap * 2;
			s->env.rcpts = xreallocarray(s->env.rcpts, s->rcpt_cap,
			                             sizeof(*s->env.rcpts));
		}
		s->env.rcpts[s->env.nrcpts++] = s->pending;
		memset(&s->pending, 0, sizeof(s->pending));
		smtp_reply(s, "250 2.1.5 Ok");
	} else {
		rcpt_clear(&s->pending);
		if (result >= 1 && result <= 3)
			smtp_reply(s, "%s", refusals[result - 1]);
		else
			smtp_reply(s, "451 4.3.0 Error: temporary failure, "
			              "try again later");
	}
	smtp_after(s);
}

void
smtp_server_sender_result(struct smtp_server *s, int result)
{
	if (s->state != SMTP_STATE_SENDER_CHECK)
		return;
	if (result == 0) {
		s->tx_active = true;
		smtp_set_state(s, SMTP_STATE_MAIL);
		smtp_reply(s, "250 2.1.0 Ok");
	} else {
		tx_reset(s);
		smtp_set_state(s, smtp_idle_state(s));
		if (result == 1)
			smtp_reply(s, "553 5.7.1 Error: sender address not "
			              "owned by user");
		else
			smtp_reply(s, "451 4.3.0 Error: temporary failure, "
			              "try again later");
	}
	smtp_after(s);
}

void
smtp_server_data_ready(struct smtp_server *s, int result)
{
	if (s->state != SMTP_STATE_DATA_BEGIN &&
	    s->state != SMTP_STATE_BDAT_BEGIN) {
		/* Too late (closed): give the spool file back. */
		if (result == 0)
			s->io.data_abort(s->io.arg);
		return;
	}
	if (result == 0) {
		s->data_open = true;
		smtp_data_start(s);
	}
	if (s->state == SMTP_STATE_DATA_BEGIN) {
		if (result == 0) {
			smtp_set_state(s, SMTP_STATE_DATA);
			smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
		} else {
			s->tx_data = false;
			smtp_set_state(s, SMTP_STATE_MAIL);
			smtp_reply(s, "451 4.3.0 Error: temporary failure, "
			              "try again later");
		}
	} else {
		if (result != 0) {
			s->bdat_error = "451 4.3.0 Error: temporary failure, "
			                "try again later";
			s->bdat_discard = true;
		}
		smtp_set_state(s, SMTP_STATE_BDAT);
		if (s->bdat_left == 0)
			smtp_server_chunk_end(s);
	}
	smtp_after(s);
}

static void
queue_id_clean(const char *in, char *out, size_t size)
{
	size_t n = 0;

	for (; in != NULL && *in != '\0' && n + 1 < size; in++)
		out[n++] = (*in > 0x20 && *in < 0x7f) ? *in : '?';
	out[n] = '\0';
}

void
smtp_server_commit_result(struct smtp_server *s, int result,
                          const char *queue_id)
{
	char id[64];
	size_t n;

	if (s->state != SMTP_STATE_COMMIT)
		return;
	queue_id_clean(queue_id, id, sizeof(id));
	n = s->kind == SMTP_KIND_LMTP ? s->env.nrcpts : 1;
	log_debug(s->log_id,
	          "event=smtp_message result=%d queue_id=%s rcpts=%zu", result,
	          id, s->env.nrcpts);
	for (size_t i = 0; i < n; i++) {
		const char *who =
		    s->kind == SMTP_KIND_LMTP ? s->env.rcpts[i].address : NULL;

		if (result == 0 && who != NULL)
			smtp_reply(s, "250 2.0.0 <%s> Ok: queued as %s", who,
			           id);
		else if (result == 0)
			smtp_reply(s, "250 2.0.0 Ok: queued as %s", id);
		else if (who != NULL)
			smtp_reply(s,
			           "451 4.3.0 <%s> Error: queue file write "
			           "error",
			           who);
		else
			smtp_reply(s, "451 4.3.0 Error: queue file write "
			              "error");
	}
	tx_reset(s);
	smtp_set_state(s, smtp_idle_state(s));
	smtp_after(s); /* a pending shutdown closes now */
}

void
smtp_server_commit_refused(struct smtp_server *s, const char *reason)
{
	smtp_server_commit_refused_code(s, 550, reason);
}

void
smtp_server_commit_refused_code(struct smtp_server *s, int code,
                                const char *reason)
{
	char text[256];
	size_t n;

	if (s->state != SMTP_STATE_COMMIT)
		return;
	/* The reason may quote a domain from the message: printable only. */
	n = 0;
	for (const char *p = reason;
	     p != NULL && *p != '\0' && n + 1 < sizeof(text); p++)
		text[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
	text[n] = '\0';
	n = s->kind == SMTP_KIND_LMTP ? s->env.nrcpts : 1;
	log_info(s->log_id,
	         "event=smtp_message result=refused rcpts=%zu "
	         "reason=%s",
	         s->env.nrcpts, text);
	for (size_t i = 0; i < n; i++) {
		if (s->kind == SMTP_KIND_LMTP)
			smtp_reply(s, "%d 5.7.1 <%s> %s", code,
			           s->env.rcpts[i].address, text);
		else
			smtp_reply(s, "%d 5.7.1 %s", code, text);
	}
	tx_reset(s);
	smtp_set_state(s, smtp_idle_state(s));
	smtp_after(s);
}

const char *
smtp_server_helo(const struct smtp_server *s)
{
	return s->helo;
}

const char *
smtp_server_mail_from(const struct smtp_server *s)
{
	return s->env.mail_from != NULL ? s->env.mail_from : "";
}

const char *
smtp_server_auth_user(const struct smtp_server *s)
{
	return s->logged_in ? s->user : NULL;
}
