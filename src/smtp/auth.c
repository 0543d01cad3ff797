/* SMTP AUTH (RFC 4954) for the server session: drives a SASL state
 * machine (src/directory/sasl) as front_proto does, with the same replies.
 * SECURITY: client answers are bounded by limits.line_max and
 * SASL_INPUT_MAX, decoded strictly, wiped after use; offered only on
 * SUBMISSION under TLS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "smtp/server_int.h"

const char *
smtp_check_auth(struct smtp_server *s)
{
	if (s->kind != SMTP_KIND_SUBMISSION)
		return "502 5.5.1 Error: authentication not enabled";
	if (s->logged_in)
		return "503 5.5.1 Error: already authenticated";
	if (s->tx_active)
		return "503 5.5.1 Error: MAIL transaction in progress";
	if (!s->tls_active)
		return "538 5.7.11 Encryption required for requested "
		       "authentication mechanism";
	if (s->io.verifier == NULL)
		return "454 4.7.0 Temporary authentication failure";
	return NULL;
}

static void
auth_end(struct smtp_server *s, const char *reply)
{
	sasl_free(&s->sasl);
	s->auth_final = false;
	smtp_set_state(s, smtp_idle_state(s));
	smtp_reply(s, "%s", reply);
}

static void
auth_challenge(struct smtp_server *s)
{
	const uint8_t *data;
	size_t len, n;
	char *line;

	sasl_challenge(s->sasl, &data, &len);
	line = xmalloc(4 * ((len + 2) / 3) + 8);
	memcpy(line, "334 ", 4);
	n = 4 + sasl_base64_encode(data, len, line + 4);
	line[n++] = '\r';
	line[n++] = '\n';
	smtp_reply_raw(s, line, n);
	free(line);
	smtp_set_state(s, SMTP_STATE_AUTH);
}

static void
auth_after(struct smtp_server *s, enum sasl_status st)
{
	const uint8_t *data;
	size_t len;

	switch (st) {
	case SASL_CONTINUE:
		auth_challenge(s);
		break;
	case SASL_PENDING:
		smtp_set_state(s, SMTP_STATE_AUTH_PENDING);
		break;
	case SASL_SUCCESS:
		sasl_challenge(s->sasl, &data, &len);
		if (len > 0 && !s->auth_final) {
			s->auth_final = true; /* SCRAM server-final */
			auth_challenge(s);
			break;
		}
		s->logged_in = true;
		if (s->user[0] == '\0')
			snprintf(s->user, sizeof(s->user), "%s",
			         sasl_user(s->sasl));
		log_info(s->log_id, "event=smtp_login user=%s", s->user);
		auth_end(s, "235 2.7.0 Authentication successful");
		break;
	case SASL_FAIL:
		log_info(s->log_id, "event=smtp_login_failed user=%s",
		         sasl_user(s->sasl));
		s->user[0] = '\0';
		auth_end(s, "535 5.7.8 Authentication credentials invalid");
		break;
	case SASL_TEMPFAIL:
		s->user[0] = '\0';
		auth_end(s, "454 4.7.0 Temporary authentication failure");
		break;
	case SASL_ERROR:
		log_info(s->log_id, "event=smtp_login_error reason=%s",
		         sasl_error(s->sasl));
		s->user[0] = '\0';
		auth_end(s, "501 5.5.2 Invalid authentication exchange");
		break;
	}
}

static void
auth_step(struct smtp_server *s, const uint8_t *in, size_t n)
{
	enum sasl_status st;

	/* The verifier may answer from inside sasl_step(). */
	smtp_set_state(s, SMTP_STATE_AUTH_PENDING);
	s->auth_in_step = true;
	st = sasl_step(s->sasl, in, n);
	s->auth_in_step = false;
	auth_after(s, st);
}

static void
auth_feed(struct smtp_server *s, const char *b64, size_t len, bool initial)
{
	uint8_t in[SASL_INPUT_MAX];
	size_t n = 0;

	if (len == 1 && b64[0] == '*') {
		sasl_abort(s->sasl);
		auth_end(s, "501 5.0.0 Authentication cancelled");
		return;
	}
	if (initial && len == 1 && b64[0] == '=') {
		static const uint8_t empty[1];

		auth_step(s, empty, 0); /* "=": an empty initial response */
		return;
	}
	if (len > 0 && sasl_base64_decode(b64, len, in, sizeof(in), &n) < 0) {
		auth_end(s, "501 5.5.2 Invalid authentication exchange");
		return;
	}
	auth_step(s, in, n);
	OPENSSL_cleanse(in, sizeof(in));
}

void
smtp_auth_line(struct smtp_server *s, const char *line, size_t len)
{
	if (s->auth_final) {
		if (len == 1 && line[0] == '*')
			auth_end(s, "501 5.0.0 Authentication cancelled");
		else if (len != 0)
			auth_end(s,
			         "501 5.5.2 Invalid authentication exchange");
		else
			auth_after(s, SASL_SUCCESS);
		return;
	}
	auth_feed(s, line, len, false);
}

void
smtp_cmd_auth(struct smtp_server *s, char *args)
{
	char *ir = strchr(args, ' ');
	enum sasl_mech mech;

	if (ir != NULL)
		*ir++ = '\0';
	if (sasl_mech_parse(args, &mech) < 0) {
		smtp_reply(s,
		           "504 5.5.4 Unrecognized authentication mechanism");
		return;
	}
	s->user[0] = '\0';
	s->auth_final = false;
	s->sasl = sasl_new(mech, s->io.verifier);
	if (ir == NULL)
		auth_step(s, NULL, 0);
	else
		auth_feed(s, ir, strlen(ir), true);
}

void
smtp_server_auth_password_result(struct smtp_server *s, int result,
                                 const char *user)
{
	enum sasl_status st;

	if (s->sasl == NULL || s->state != SMTP_STATE_AUTH_PENDING)
		return;
	if (result == 0 && user != NULL)
		snprintf(s->user, sizeof(s->user), "%s", user);
	st = sasl_password_result(s->sasl, result);
	if (!s->auth_in_step) {
		auth_after(s, st);
		smtp_after(s);
	}
}

void
smtp_server_auth_scram_params_result(struct smtp_server *s, int result,
                                     const uint8_t *salt, size_t salt_len,
                                     uint32_t iterations)
{
	enum sasl_status st;

	if (s->sasl == NULL || s->state != SMTP_STATE_AUTH_PENDING)
		return;
	st = sasl_scram_params_result(s->sasl, result, salt, salt_len,
	                              iterations);
	if (!s->auth_in_step) {
		auth_after(s, st);
		smtp_after(s);
	}
}

void
smtp_server_auth_scram_check_result(struct smtp_server *s, int result,
                                    const char *user,
                                    const uint8_t signature[32])
{
	enum sasl_status st;

	if (s->sasl == NULL || s->state != SMTP_STATE_AUTH_PENDING)
		return;
	if (result == 0 && user != NULL)
		snprintf(s->user, sizeof(s->user), "%s", user);
	st = sasl_scram_check_result(s->sasl, result, signature);
	if (!s->auth_in_step) {
		auth_after(s, st);
		smtp_after(s);
	}
}
