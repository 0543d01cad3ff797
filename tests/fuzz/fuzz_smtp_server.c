/* libFuzzer target: the SMTP server session (src/smtp/server.c). The first
 * byte picks the kind, the TLS state and whether answers come at once or
 * later; the second seeds the chunk sizes; the rest is fed in random-sized
 * pieces. Answers alternate ok/fail. Every reply must end in CRLF, nothing
 * may crash or leak, and a session never takes input while it waits. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "directory/sasl.h"
#include "smtp/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct smtp_server *srv;
static bool defer, pend_rcpt, pend_sender, pend_ready, pend_commit, closed;
static bool tls_asked;
static unsigned flip;
static int data_open;

static int
answer(void)
{
	return (flip++ & 1) ? -1 : 0;
}

static void
f_write(void *arg, const char *d, size_t len)
{
	(void)arg;
	if (len < 2 || d[len - 2] != '\r' || d[len - 1] != '\n')
		abort();
	if (memchr(d, '\0', len) != NULL)
		abort();
}

static void
f_starttls(void *arg)
{
	(void)arg;
	tls_asked = true;
}

static void
f_close(void *arg)
{
	(void)arg;
	closed = true;
}

static void
f_check_rcpt(void *arg, const char *a)
{
	(void)arg;
	(void)a;
	if (defer)
		pend_rcpt = true;
	else
		smtp_server_rcpt_result(srv, (int)(flip++ % 5) - 1);
}

static void
f_check_sender(void *arg, const char *u, const char *a)
{
	(void)arg;
	(void)u;
	(void)a;
	if (defer)
		pend_sender = true;
	else
		smtp_server_sender_result(srv, answer());
}

static void
f_data_begin(void *arg)
{
	(void)arg;
	if (defer) {
		pend_ready = true;
		return;
	}
	if (answer() == 0) {
		data_open++;
		smtp_server_data_ready(srv, 0);
	} else {
		smtp_server_data_ready(srv, -1);
	}
}

static int
f_data_write(void *arg, const void *d, size_t len)
{
	(void)arg;
	(void)d;
	if (data_open != 1 || len == 0)
		abort();
	return 0;
}

static void
f_data_commit(void *arg, const struct smtp_envelope *env)
{
	(void)arg;
	if (env->nrcpts == 0 || data_open != 1)
		abort();
	data_open--;
	if (defer)
		pend_commit = true;
	else
		smtp_server_commit_result(srv, answer(), "Q1");
}

static void
f_data_abort(void *arg)
{
	(void)arg;
	if (data_open != 1)
		abort();
	data_open--;
}

static void
v_password(void *arg, const char *authzid, const char *user,
           const char *password, size_t len)
{
	(void)arg;
	(void)authzid;
	(void)password;
	(void)len;
	if (!defer)
		smtp_server_auth_password_result(srv, answer(), user);
}

static void
v_params(void *arg, const char *user)
{
	static const uint8_t salt[16];

	(void)arg;
	(void)user;
	smtp_server_auth_scram_params_result(srv, answer(), salt, sizeof(salt),
	                                     4096);
}

static void
v_check(void *arg, const char *user, const uint8_t *am, size_t al,
        const uint8_t *proof, size_t pl)
{
	static const uint8_t sig[32];

	(void)arg;
	(void)am;
	(void)al;
	(void)proof;
	(void)pl;
	smtp_server_auth_scram_check_result(srv, answer(), user, sig);
}

static const struct sasl_verifier verifier = {v_password, v_params, v_check,
                                              NULL};

static bool
pump(void)
{
	if (pend_rcpt) {
		pend_rcpt = false;
		smtp_server_rcpt_result(srv, (int)(flip++ % 5) - 1);
	} else if (pend_sender) {
		pend_sender = false;
		smtp_server_sender_result(srv, answer());
	} else if (pend_ready) {
		pend_ready = false;
		if (answer() == 0) {
			data_open++;
			smtp_server_data_ready(srv, 0);
		} else {
			smtp_server_data_ready(srv, -1);
		}
	} else if (pend_commit) {
		pend_commit = false;
		smtp_server_commit_result(srv, answer(), "Q2");
	} else if (smtp_server_busy(srv)) {
		/* AUTH waiting on a deferred verifier. */
		smtp_server_auth_password_result(srv, answer(), NULL);
		if (smtp_server_busy(srv))
			return false;
	} else {
		return false;
	}
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_server_io io = {
	    f_write,        f_starttls,   f_close,      f_check_rcpt,
	    f_check_sender, f_data_begin, f_data_write, f_data_commit,
	    f_data_abort,   &verifier,    NULL,
	};
	struct smtp_limits lim;
	unsigned seed;
	size_t off = 2;

	if (size < 2)
		return 0;
	defer = data[0] & 0x04;
	pend_rcpt = pend_sender = pend_ready = pend_commit = closed = false;
	tls_asked = false;
	flip = 0;
	data_open = 0;
	seed = data[1];
	smtp_limits_default(&lim);
	lim.line_max = 512;
	lim.message_max = 4096;
	lim.header_max = 1024;
	lim.rcpt_max = 5;
	lim.errors_max = (data[0] & 0x40) ? 0 : 20;
	lim.reject_bare_lf = data[0] & 0x08;
	srv = smtp_server_new((enum smtp_kind)(data[0] % 3), &lim,
	                      "mx.example.test", "192.0.2.1", data[0] & 0x10,
	                      data[0] & 0x20, &io);
	smtp_server_start(srv);
	if (data[0] & 0x80) /* pretend the client asked for TLS already */
		smtp_server_tls_started(srv, "TLSv1.3",
		                        "TLS_AES_128_GCM_SHA256");
	while (off < size && !closed) {
		size_t chunk, n;

		seed = seed * 1103515245u + 12345u;
		chunk = 1 + (seed >> 16) % 64;
		if (chunk > size - off)
			chunk = size - off;
		n = smtp_server_input(srv, data + off, chunk);
		if (n > chunk)
			abort();
		if (n > 0 && smtp_server_busy(srv) && n < chunk &&
		    smtp_server_input(srv, data + off + n, chunk - n) != 0)
			abort(); /* busy: nothing more may be taken */
		off += n;
		if (tls_asked) {
			/* The handshake finishes; the caller drops the rest
			 * of the chunk, as front does. */
			off += chunk - n;
			tls_asked = false;
			smtp_server_tls_started(srv, "TLSv1.3", "X");
		} else if (n < chunk && !closed && !pump()) {
			abort(); /* stalled without waiting for anything */
		}
	}
	while (!closed && pump())
		;
	if (seed & 1)
		smtp_server_shutdown(srv);
	else
		smtp_server_timeout(srv);
	smtp_server_free(&srv);
	if (data_open != 0)
		abort();
	return 0;
}
