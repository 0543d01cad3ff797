/* libFuzzer target: the SMTP client session (src/smtp/client.c) against a
 * fuzzed server. Byte 0 picks the options (bits 0-1 TLS mode, 2 AUTH, 3
 * AUTH without TLS, 4 CHUNKING, 5 SMTPUTF8, 6 8BITMIME, 7 DSN fields);
 * byte 1 the piece sizes (low 7 bits, 0: a read at once) and a body past
 * one BDAT chunk (bit 7); the rest is the server's bytes, its reads
 * separated by 0xff (the owner answers events between reads). The owner answers
 * every event: two transactions, then QUIT. Every result must be filled
 * after TXN_DONE, the output must never hold a bare CR or LF, and nothing
 * may crash or leak. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NRCPTS 3

static struct smtp_client *cl;
static struct smtp_client_txn txn;
static struct smtp_client_rcpt rcpts[NRCPTS];
static int begun, body_step;
static bool quit_sent, closed, big_body, use_chunking;
static uint8_t big[70000];

static void
drain(void)
{
	size_t len;
	const uint8_t *p = smtp_client_output(cl, &len);

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			abort();
		if (p[i] == '\r' && (i + 1 == len || p[i + 1] != '\n'))
			abort();
	}
	smtp_client_output_consume(cl, len);
	(void)smtp_client_timeout_ms(cl);
}

static void
check_results(void)
{
	for (size_t i = 0; i < txn.nrcpts; i++) {
		const struct smtp_client_rcpt *r = &txn.rcpts[i];

		if (r->code < 200 || r->code > 599 || r->reply == NULL ||
		    r->status[0] == '\0' || r->status[1] != '.')
			abort();
		if ((r->code / 100 == 2) != (r->status[0] == '2'))
			abort();
	}
	smtp_client_txn_clear(&txn);
}

static void
send_body(bool finish)
{
	static const char head[] = "Subject: fuzz\r\n\r\n.hello\n.\r";

	if (body_step == 0) {
		smtp_client_body(cl, (const uint8_t *)head, sizeof(head) - 1);
		if (big_body)
			smtp_client_body(cl, big, sizeof(big));
		body_step = 1;
		if (!finish)
			return;
	}
	smtp_client_body(cl, (const uint8_t *)"\nbye.", 5);
	body_step = 2;
}

static bool
bdat_mode(void)
{
	const struct smtp_client_ext *x = smtp_client_ext(cl);

	return use_chunking && x->chunking && x->pipelining;
}

/* Answer events until the session waits for the server. */
static void
handle(enum smtp_client_event ev, bool finish)
{
	for (;;) {
		drain();
		switch (ev) {
		case SMTP_CLIENT_WAIT:
			return;
		case SMTP_CLIENT_STARTTLS:
			ev = smtp_client_tls_started(cl);
			break;
		case SMTP_CLIENT_READY:
			if (quit_sent)
				abort();
			if (begun < 2) {
				begun++;
				body_step = 0;
				ev = smtp_client_begin(cl, &txn);
			} else {
				quit_sent = true;
				ev = smtp_client_quit(cl);
			}
			break;
		case SMTP_CLIENT_BODY:
			/* BDAT replies may come while the body goes out;
			 * with DATA nothing may. */
			send_body(finish || !bdat_mode());
			if (body_step < 2)
				return; /* the rest after more input */
			ev = smtp_client_body_end(cl);
			break;
		case SMTP_CLIENT_TXN_DONE:
			check_results();
			ev = smtp_client_event(cl);
			if (ev == SMTP_CLIENT_TXN_DONE)
				abort();
			break;
		case SMTP_CLIENT_CLOSED:
			closed = true;
			return;
		default:
			abort();
		}
	}
}

/* One read from the server, in pieces. */
static void
feed_read(const uint8_t *p, size_t len, size_t piece, uint32_t *seed)
{
	size_t off = 0, n;

	while (off < len && !closed) {
		n = len - off;
		if (piece != 0) {
			*seed = *seed * 1103515245 + 12345;
			n = 1 + (*seed >> 16) % piece;
			if (n > len - off)
				n = len - off;
		}
		handle(smtp_client_input(cl, p + off, n), false);
		off += n;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t f = size > 0 ? data[0] : 0, g = size > 1 ? data[1] : 0;
	struct smtp_client_options o = {
	    .helo_name = "mail.example.org",
	    .tls = (enum smtp_client_tls)(f & 3),
	    .auth_user = f & 4 ? "user" : NULL,
	    .auth_password = f & 4 ? "secret" : NULL,
	    .auth_without_tls = f & 8,
	    .use_chunking = f & 16,
	};
	static const char *const addrs[NRCPTS] = {
	    "b@example.net", "c@example.net", "d@example.net"};
	size_t off = size > 2 ? 2 : size, piece = g & 0x7f;
	uint32_t seed = g;

	if (big[0] == 0) {
		memset(big, 'z', sizeof(big));
		for (size_t i = 80; i < sizeof(big); i += 81)
			big[i] = i % 7 == 0 ? '\r' : '\n';
		big[0] = '.';
	}
	memset(&txn, 0, sizeof(txn));
	memset(rcpts, 0, sizeof(rcpts));
	txn.mail_from = "a@example.org";
	txn.size = 1000;
	txn.smtputf8 = f & 32;
	txn.body_8bit = f & 64;
	if (f & 128) {
		txn.ret = "HDRS";
		txn.envid = "QQ314159";
	}
	for (size_t i = 0; i < NRCPTS; i++) {
		rcpts[i].address = addrs[i];
		rcpts[i].notify = f & 128 ? (unsigned)(1u << i) : 0;
		rcpts[i].orcpt = f & 128 ? "rfc822;b@example.net" : NULL;
	}
	txn.rcpts = rcpts;
	txn.nrcpts = NRCPTS;
	begun = body_step = 0;
	quit_sent = closed = false;
	big_body = g & 0x80;
	use_chunking = o.use_chunking;

	cl = smtp_client_new(&o);
	handle(smtp_client_event(cl), false);
	while (off < size && !closed) {
		const uint8_t *sep = memchr(data + off, 0xff, size - off);
		size_t end = sep != NULL ? (size_t)(sep - data) : size;

		feed_read(data + off, end - off, piece, &seed);
		off = sep != NULL ? end + 1 : size;
	}
	if (!closed && smtp_client_event(cl) == SMTP_CLIENT_BODY)
		handle(SMTP_CLIENT_BODY, true);
	if (!closed)
		handle(smtp_client_eof(cl), true);
	if (!closed || smtp_client_event(cl) != SMTP_CLIENT_CLOSED)
		abort();
	/* An error ends the session unless QUIT did. */
	if (quit_sent != (smtp_client_error(cl) == NULL))
		abort();
	smtp_client_txn_clear(&txn);
	smtp_client_free(&cl);
	return 0;
}
