/* The SMTP client session (RFC 5321 with ESMTP) as a state machine: the
 * server's replies in, commands out, and a few events for its owner (do the
 * TLS handshake now, the message body is wanted, a transaction is over).
 * It knows nothing of sockets, DNS, TLS libraries or the queue. One session
 * carries any number of transactions (connection reuse).
 *
 * Extensions used when the server offers them: PIPELINING (MAIL, every RCPT
 * and DATA in one write), SIZE (checked before MAIL: a message too big for
 * the server fails for good without being sent), 8BITMIME (BODY=8BITMIME),
 * SMTPUTF8 (a transaction that needs it fails for good when it is missing,
 * RFC 6531 3.4), DSN (NOTIFY, ORCPT, RET, ENVID passed on), CHUNKING (BDAT
 * instead of DATA), STARTTLS, AUTH PLAIN and LOGIN (only once TLS is up,
 * unless the owner says the link is trusted).
 *
 * SECURITY: every reply byte comes from the network. Reply lines are bounded
 * (SMTP_CLIENT_LINE_MAX) and so is the number of lines in one reply
 * (SMTP_CLIENT_REPLY_LINES_MAX); a reply that breaks the grammar (no
 * three-digit code, mixed codes in one multi-line reply, a reply nobody
 * asked for) ends the session with a temporary error, never a guess.
 * Message bytes are dot-stuffed here and every line end becomes CRLF, so a
 * bare LF or CR in the spool can never end the DATA early at the remote
 * (SMTP smuggling). After STARTTLS, reply bytes buffered before the
 * handshake are discarded (the server-side CVE-2011-0411 class, mirrored),
 * and the session asks EHLO again. */
#ifndef TERN_SMTP_CLIENT_H
#define TERN_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_CLIENT_LINE_MAX 4096        /* bytes of one reply line */
#define SMTP_CLIENT_REPLY_LINES_MAX 128  /* lines of one reply */
#define SMTP_CLIENT_REPLY_TEXT_MAX 1024  /* kept of a reply, for logs/DSNs */

enum smtp_client_tls {
	SMTP_CLIENT_TLS_NONE,	      /* never STARTTLS (loopback relays) */
	SMTP_CLIENT_TLS_OPPORTUNISTIC, /* STARTTLS when offered */
	SMTP_CLIENT_TLS_REQUIRED,      /* STARTTLS or fail (temporary) */
	SMTP_CLIENT_TLS_IMPLICIT,      /* TLS is already up (port 465) */
};

struct smtp_client_options {
	const char *helo_name; /* EHLO/HELO argument: our hostname */
	enum smtp_client_tls tls;
	/* AUTH with these when both are set; a server that offers neither
	 * PLAIN nor LOGIN, or refuses them, fails the session (temporary:
	 * it is a configuration problem, the mail stays queued). */
	const char *auth_user;
	const char *auth_password;
	/* AUTH also without TLS (a loopback relay with tls none). */
	bool auth_without_tls;
	bool use_chunking; /* BDAT when offered (default true); used only
			      with PIPELINING, so that the chunks stream */
	const char *log_id; /* the id on trace/debug log lines, or NULL */
};

/* DSN NOTIFY bits: the same values as smtp/server.h's SMTP_NOTIFY_*. */
struct smtp_client_rcpt {
	const char *address; /* without <> */
	unsigned notify;     /* 0: not given */
	const char *orcpt;   /* "rfc822;addr" as received, or NULL */
	/* Filled by the session when the transaction is over: */
	int code;       /* the reply code that decided (250, 451, 550…) */
	char status[16]; /* enhanced status "5.1.1", or made up from code */
	char *reply;    /* the reply text, one line, malloc'd (free with
			   smtp_client_txn_clear) */
};

struct smtp_client_txn {
	const char *mail_from; /* "" for <> */
	uint64_t size;	       /* exact bytes the owner will send */
	bool body_8bit;	       /* BODY=8BITMIME */
	bool smtputf8;	       /* needs SMTPUTF8 (non-ASCII addresses or
				  headers) */
	const char *ret;       /* "FULL", "HDRS" or NULL */
	const char *envid;     /* xtext as received, or NULL */
	struct smtp_client_rcpt *rcpts;
	size_t nrcpts;
};

enum smtp_client_event {
	/* Nothing to do but send the output and feed more input. */
	SMTP_CLIENT_WAIT,
	/* Send the output, then do the TLS handshake and call
	 * smtp_client_tls_started(). */
	SMTP_CLIENT_STARTTLS,
	/* Connected and greeted (and TLS and AUTH done): start a
	 * transaction with smtp_client_begin(), or smtp_client_quit(). Also
	 * after each transaction once its results are read. */
	SMTP_CLIENT_READY,
	/* The server wants the message: call smtp_client_body() with all of
	 * it (any pieces), then smtp_client_body_end(). */
	SMTP_CLIENT_BODY,
	/* The transaction is over: every rcpt has code/status/reply. Then
	 * READY follows (or CLOSED if the server went away). */
	SMTP_CLIENT_TXN_DONE,
	/* The session is over (after QUIT, or an error: see
	 * smtp_client_error()). Send what output is left (a QUIT), then
	 * close the connection. */
	SMTP_CLIENT_CLOSED,
};

struct smtp_client;

/* The session starts waiting for the greeting. options strings must
 * outlive the session. */
struct smtp_client *smtp_client_new(const struct smtp_client_options *opt);
void smtp_client_free(struct smtp_client **c);

/* Reply bytes from the server, any pieces. Returns the next event (the
 * same as smtp_client_event()), except that a transaction that ended
 * during the call is reported once as TXN_DONE; smtp_client_event() then
 * tells what follows (READY, or CLOSED when the session died with it).
 * The same holds for every other call that returns an event. */
enum smtp_client_event smtp_client_input(struct smtp_client *c,
					 const uint8_t *data, size_t len);
/* The connection ended (EOF or error) before QUIT: the session fails with
 * a temporary error and every transaction in progress with it. */
enum smtp_client_event smtp_client_eof(struct smtp_client *c);
enum smtp_client_event smtp_client_event(const struct smtp_client *c);

/* Bytes to send now (commands, message data). The owner sends them and
 * consumes what it sent. */
const uint8_t *smtp_client_output(const struct smtp_client *c, size_t *len_r);
void smtp_client_output_consume(struct smtp_client *c, size_t n);

/* After SMTP_CLIENT_STARTTLS: the handshake is done; buffered input is
 * dropped and EHLO goes out again. */
enum smtp_client_event smtp_client_tls_started(struct smtp_client *c);

/* From READY: start a transaction. txn (and its strings) must stay valid
 * until TXN_DONE; the results go into txn->rcpts (their code, status and
 * reply are reset here: smtp_client_txn_clear() a reused txn first). A
 * transaction that cannot go to this server at all (too big for its SIZE,
 * needs SMTPUTF8 it lacks) ends at once: TXN_DONE with 5xx results and
 * nothing sent. */
enum smtp_client_event smtp_client_begin(struct smtp_client *c,
					 struct smtp_client_txn *txn);
/* From BODY: message bytes, as stored (CRLF or bare LF line ends; the
 * session stuffs dots and writes CRLF). */
void smtp_client_body(struct smtp_client *c, const uint8_t *data,
		      size_t len);
enum smtp_client_event smtp_client_body_end(struct smtp_client *c);
/* From READY: say QUIT; CLOSED follows the reply (or EOF). */
enum smtp_client_event smtp_client_quit(struct smtp_client *c);
/* Free the reply strings of a finished transaction's recipients. */
void smtp_client_txn_clear(struct smtp_client_txn *txn);

/* What the server offered in its EHLO reply (valid from READY). */
struct smtp_client_ext {
	bool esmtp; /* EHLO worked (else HELO) */
	bool pipelining, eightbitmime, smtputf8, dsn, chunking, starttls;
	bool enhancedstatuscodes;
	bool auth_plain, auth_login;
	uint64_t size_max; /* 0: no SIZE or no limit given */
};
const struct smtp_client_ext *smtp_client_ext(const struct smtp_client *c);
bool smtp_client_tls_active(const struct smtp_client *c);

/* After CLOSED on an error, or for a session-level failure: the reply or
 * our reason. code: the server's reply code (e.g. 421, 554 greeting, 535
 * AUTH), or 0 when the failure is ours (bad reply, EOF, STARTTLS required
 * but not offered). permanent: retrying this server is pointless for
 * every message (a 5xx greeting); the owner may try the next MX. */
struct smtp_client_error {
	int code;
	char status[16];
	char text[SMTP_CLIENT_REPLY_TEXT_MAX];
	bool permanent;
	const char *stage; /* "greeting", "ehlo", "starttls", "auth",
			      "idle", "mail", "rcpt", "data", "eod", "rset",
			      "quit" */
};
/* NULL when the session has not failed. */
const struct smtp_client_error *smtp_client_error(const struct smtp_client *c);

/* How long to wait for the reply expected now, in ms (RFC 5321 4.5.3.2:
 * greeting 5 min, MAIL 5 min, RCPT 5 min, DATA 2 min, end of data 10
 * min, others 5 min); 0 when no reply is awaited. */
uint64_t smtp_client_timeout_ms(const struct smtp_client *c);

#endif
