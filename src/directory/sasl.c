/* SASL server mechanisms PLAIN, LOGIN and SCRAM-SHA-256 as state machines
 * (see sasl.h); every credential check is the verifier's.
 * SECURITY: runs in front on unauthenticated input: each message is bounded
 * and parsed strictly (UTF-8, no NUL, RFC grammar); a password is copied
 * once for the verifier and wiped when check_password returns. */
#include "directory/sasl.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/xmalloc.h"

#define SCRAM_SERVER_NONCE_BYTES 24
#define SCRAM_TEST_NONCE_MAX 64
#define SCRAM_PROOF_LEN 32
#define SCRAM_SIGNATURE_LEN 32
#define SCRAM_SALT_MAX 128
#define SCRAM_FIELDS_MAX 32

/* Where the exchange is. The WAIT_* states answer SASL_PENDING; the last
 * four are terminal. INITIAL (nothing fed yet) reads as SASL_CONTINUE. */
enum sasl_state {
	SASL_STATE_INITIAL,
	SASL_STATE_PLAIN_MESSAGE,      /* empty challenge sent */
	SASL_STATE_LOGIN_USER,         /* "Username:" sent */
	SASL_STATE_LOGIN_PASSWORD,     /* "Password:" sent */
	SASL_STATE_SCRAM_CLIENT_FIRST, /* empty challenge sent */
	SASL_STATE_SCRAM_CLIENT_FINAL, /* server-first-message sent */
	SASL_STATE_WAIT_PASSWORD,
	SASL_STATE_WAIT_SCRAM_PARAMS,
	SASL_STATE_WAIT_SCRAM_CHECK,
	SASL_STATE_SUCCESS,
	SASL_STATE_FAIL,
	SASL_STATE_TEMPFAIL,
	SASL_STATE_ERROR,
};

static const char *const state_names[] = {
    [SASL_STATE_INITIAL] = "initial",
    [SASL_STATE_PLAIN_MESSAGE] = "plain_message",
    [SASL_STATE_LOGIN_USER] = "login_user",
    [SASL_STATE_LOGIN_PASSWORD] = "login_password",
    [SASL_STATE_SCRAM_CLIENT_FIRST] = "scram_client_first",
    [SASL_STATE_SCRAM_CLIENT_FINAL] = "scram_client_final",
    [SASL_STATE_WAIT_PASSWORD] = "wait_password",
    [SASL_STATE_WAIT_SCRAM_PARAMS] = "wait_scram_params",
    [SASL_STATE_WAIT_SCRAM_CHECK] = "wait_scram_check",
    [SASL_STATE_SUCCESS] = "success",
    [SASL_STATE_FAIL] = "fail",
    [SASL_STATE_TEMPFAIL] = "tempfail",
    [SASL_STATE_ERROR] = "error",
};

struct sasl_session {
	enum sasl_mech mech;
	enum sasl_state state;
	struct sasl_verifier verifier;
	unsigned steps;
	const char *error; /* static text, "" when none */
	char user[SASL_USER_MAX + 1];
	struct buf challenge;
	/* SCRAM: the pieces the AuthMessage and the final checks need. */
	struct buf gs2_header; /* exactly as the client sent it */
	struct buf client_first_bare;
	struct buf nonce; /* client nonce, then client + server nonce */
	struct buf server_first;
	struct buf auth_message;
	char test_nonce[SCRAM_TEST_NONCE_MAX + 1]; /* "" unless a test set it */
};

/* A comma-separated field of a SCRAM message. */
struct field {
	const char *p;
	size_t len;
};

static const char *const mech_names[] = {
    [SASL_MECH_PLAIN] = "PLAIN",
    [SASL_MECH_LOGIN] = "LOGIN",
    [SASL_MECH_SCRAM_SHA_256] = "SCRAM-SHA-256",
};

int
sasl_mech_parse(const char *name, enum sasl_mech *mech_r)
{
	if (name == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(mech_names) / sizeof(mech_names[0]);
	     i++) {
		if (strcasecmp(name, mech_names[i]) == 0) {
			*mech_r = (enum sasl_mech)i;
			return 0;
		}
	}
	return -1;
}

const char *
sasl_mech_name(enum sasl_mech mech)
{
	if ((size_t)mech >= sizeof(mech_names) / sizeof(mech_names[0]))
		return "UNKNOWN";
	return mech_names[mech];
}

static void
sasl_set_state(struct sasl_session *s, enum sasl_state state)
{
	log_trace(NULL, "event=sasl_state mech=%s from=%s to=%s",
	          sasl_mech_name(s->mech), state_names[s->state],
	          state_names[state]);
	s->state = state;
}

static enum sasl_status
sasl_fail_error(struct sasl_session *s, const char *error)
{
	s->error = error;
	buf_reset(&s->challenge);
	sasl_set_state(s, SASL_STATE_ERROR);
	return SASL_ERROR;
}

/* Hand the turn to the verifier: no challenge is due meanwhile. */
static void
sasl_wait(struct sasl_session *s, enum sasl_state state)
{
	buf_reset(&s->challenge);
	sasl_set_state(s, state);
}

static void
sasl_set_challenge(struct sasl_session *s, const void *data, size_t len)
{
	buf_reset(&s->challenge);
	if (buf_append(&s->challenge, data, len) < 0)
		abort(); /* every challenge is built within the bound */
}

struct sasl_session *
sasl_new(enum sasl_mech mech, const struct sasl_verifier *verifier)
{
	struct sasl_session *s;

	assert((size_t)mech < sizeof(mech_names) / sizeof(mech_names[0]));
	assert(verifier != NULL);
	s = xcalloc(1, sizeof(*s));
	s->mech = mech;
	s->state = SASL_STATE_INITIAL;
	s->verifier = *verifier;
	s->error = "";
	/* server-first: nonces, base64 salt and a number. */
	buf_init(&s->challenge, 2 * SASL_INPUT_MAX);
	buf_init(&s->gs2_header, SASL_INPUT_MAX);
	buf_init(&s->client_first_bare, SASL_INPUT_MAX);
	buf_init(&s->nonce, SASL_INPUT_MAX + SCRAM_TEST_NONCE_MAX);
	buf_init(&s->server_first, 2 * SASL_INPUT_MAX);
	buf_init(&s->auth_message, 5 * SASL_INPUT_MAX);
	return s;
}

void
sasl_free(struct sasl_session **sp)
{
	struct sasl_session *s = *sp;

	if (s == NULL)
		return;
	buf_free(&s->challenge);
	buf_free(&s->gs2_header);
	buf_free(&s->client_first_bare);
	buf_free(&s->nonce);
	buf_free(&s->server_first);
	buf_free(&s->auth_message);
	OPENSSL_cleanse(s, sizeof(*s));
	xfree(sp);
}

/* RFC 3629 UTF-8 without NUL (RFC 4616 SAFE, RFC 5802 value-safe-char
 * plus ',' and '='): no overlong forms, no surrogates, <= U+10FFFF. */
static bool
utf8_safe(const uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = p[i];
		size_t n;
		uint8_t lo = 0x80, hi = 0xbf;

		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		if (p[i + 1] < lo || p[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= n; k++) {
			if (p[i + k] < 0x80 || p[i + k] > 0xbf)
				return false;
		}
		i += n + 1;
	}
	return true;
}

/* A user name: 1..SASL_USER_MAX bytes of UTF-8 without NUL. */
static int
sasl_set_user(struct sasl_session *s, const uint8_t *p, size_t len)
{
	if (len == 0 || len > SASL_USER_MAX || !utf8_safe(p, len))
		return -1;
	memcpy(s->user, p, len);
	s->user[len] = '\0';
	return 0;
}

/* Hand a password to the verifier in a NUL-terminated copy that is wiped
 * as soon as the callback returns (it may have answered already). */
static enum sasl_status
sasl_check_password(struct sasl_session *s, const char *authzid,
                    const uint8_t *password, size_t len)
{
	char *copy = xmalloc(len + 1);

	memcpy(copy, password, len);
	copy[len] = '\0';
	sasl_wait(s, SASL_STATE_WAIT_PASSWORD);
	s->verifier.check_password(s->verifier.arg, authzid, s->user, copy,
	                           len);
	OPENSSL_cleanse(copy, len + 1);
	free(copy);
	return sasl_status(s);
}

/* RFC 4616: [authzid] NUL authcid NUL passwd. */
static enum sasl_status
plain_message(struct sasl_session *s, const uint8_t *in, size_t len)
{
	const uint8_t *nul1, *nul2, *authcid, *passwd;
	size_t authzid_len, authcid_len, passwd_len;
	char authzid[SASL_USER_MAX + 1];

	nul1 = len > 0 ? memchr(in, '\0', len) : NULL;
	if (nul1 == NULL)
		return sasl_fail_error(s, "PLAIN: missing NUL");
	authzid_len = (size_t)(nul1 - in);
	authcid = nul1 + 1;
	nul2 = memchr(authcid, '\0', len - authzid_len - 1);
	if (nul2 == NULL)
		return sasl_fail_error(s, "PLAIN: missing second NUL");
	authcid_len = (size_t)(nul2 - authcid);
	passwd = nul2 + 1;
	passwd_len = len - authzid_len - authcid_len - 2;

	if (authzid_len > SASL_USER_MAX || !utf8_safe(in, authzid_len))
		return sasl_fail_error(s, "PLAIN: invalid authzid");
	if (sasl_set_user(s, authcid, authcid_len) < 0)
		return sasl_fail_error(s, "PLAIN: invalid user name");
	if (passwd_len == 0)
		return sasl_fail_error(s, "PLAIN: empty password");
	/* A third NUL lands here too: utf8_safe() refuses NUL. */
	if (!utf8_safe(passwd, passwd_len))
		return sasl_fail_error(s, "PLAIN: invalid password bytes");
	memcpy(authzid, in, authzid_len);
	authzid[authzid_len] = '\0';
	return sasl_check_password(s, authzid, passwd, passwd_len);
}

static enum sasl_status
plain_step(struct sasl_session *s, const uint8_t *in, size_t len)
{
	switch (s->state) {
	case SASL_STATE_INITIAL:
		if (in == NULL) {
			sasl_set_challenge(s, "", 0);
			sasl_set_state(s, SASL_STATE_PLAIN_MESSAGE);
			return SASL_CONTINUE;
		}
		return plain_message(s, in, len);
	case SASL_STATE_PLAIN_MESSAGE:
		return plain_message(s, in, len);
	default:
		return sasl_fail_error(s, "step in the wrong state");
	}
}

/* draft-murchison-sasl-login: the user name must be UTF-8 (it is looked up
 * in the directory); the password only has to be free of NUL, as old
 * clients send it in their local charset. */
static enum sasl_status
login_user(struct sasl_session *s, const uint8_t *in, size_t len)
{
	static const char prompt[] = "Password:";

	if (sasl_set_user(s, in, len) < 0)
		return sasl_fail_error(s, "LOGIN: invalid user name");
	sasl_set_challenge(s, prompt, sizeof(prompt) - 1);
	sasl_set_state(s, SASL_STATE_LOGIN_PASSWORD);
	return SASL_CONTINUE;
}

static enum sasl_status
login_step(struct sasl_session *s, const uint8_t *in, size_t len)
{
	static const char prompt[] = "Username:";

	switch (s->state) {
	case SASL_STATE_INITIAL:
		if (in == NULL) {
			sasl_set_challenge(s, prompt, sizeof(prompt) - 1);
			sasl_set_state(s, SASL_STATE_LOGIN_USER);
			return SASL_CONTINUE;
		}
		return login_user(s, in, len);
	case SASL_STATE_LOGIN_USER:
		return login_user(s, in, len);
	case SASL_STATE_LOGIN_PASSWORD:
		if (len == 0)
			return sasl_fail_error(s, "LOGIN: empty password");
		if (memchr(in, '\0', len) != NULL)
			return sasl_fail_error(s, "LOGIN: NUL in password");
		return sasl_check_password(s, "", in, len);
	default:
		return sasl_fail_error(s, "step in the wrong state");
	}
}

/* Split on ','; an empty message is one empty field. */
static int
split_fields(const uint8_t *in, size_t len, struct field *f, size_t max,
             size_t *n_r)
{
	size_t n = 0, start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && in[i] != ',')
			continue;
		if (n == max)
			return -1;
		f[n].p = (const char *)in + start;
		f[n].len = i - start;
		n++;
		start = i + 1;
	}
	*n_r = n;
	return 0;
}

/* "X=" with X the attribute letter; the value follows. */
static bool
field_is(const struct field *f, char attr)
{
	return f->len >= 2 && f->p[0] == attr && f->p[1] == '=';
}

/* RFC 5802 saslname: "=2C" is ',' and "=3D" is '='; any other '=' is an
 * error. out holds outmax bytes including the NUL. */
static int
saslname_decode(const char *p, size_t len, char *out, size_t outmax)
{
	size_t o = 0;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];

		if (c == '=') {
			if (len - i < 3)
				return -1;
			if (p[i + 1] == '2' && p[i + 2] == 'C')
				c = ',';
			else if (p[i + 1] == '3' && p[i + 2] == 'D')
				c = '=';
			else
				return -1;
			i += 2;
		}
		if (o + 1 >= outmax)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

/* RFC 5802 printable: %x21-2B / %x2D-7E. */
static bool
nonce_valid(const char *p, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c < 0x21 || c > 0x7e || c == ',')
			return false;
	}
	return true;
}

/* An optional extension (attr-val = ALPHA "=" value) to be ignored, as
 * RFC 5802 §7 says. Attribute letters SCRAM itself defines are refused
 * there: a second "r=" or a stray "p=" is a confused or hostile client. */
static bool
extension_valid(const struct field *f)
{
	char c;

	if (f->len < 3 || f->p[1] != '=')
		return false;
	c = f->p[0];
	if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
		return false;
	return strchr("acimnprsve", c) == NULL;
}

/* RFC 5802 §7: gs2-header client-first-message-bare. */
static enum sasl_status
scram_client_first(struct sasl_session *s, const uint8_t *in, size_t len)
{
	struct field f[SCRAM_FIELDS_MAX];
	char authzid[SASL_USER_MAX + 1];
	size_t n, header_len;

	if (!utf8_safe(in, len))
		return sasl_fail_error(s, "SCRAM: invalid client-first bytes");
	if (split_fields(in, len, f, SCRAM_FIELDS_MAX, &n) < 0 || n < 4)
		return sasl_fail_error(s, "SCRAM: malformed client-first");
	/* gs2-cbind-flag: no -PLUS is offered, so "p=" cannot be honoured
	 * and "y" (client could bind, thinks we cannot) is right. */
	if (field_is(&f[0], 'p'))
		return sasl_fail_error(s, "SCRAM: channel binding not "
		                          "supported");
	if (f[0].len != 1 || (f[0].p[0] != 'n' && f[0].p[0] != 'y'))
		return sasl_fail_error(s, "SCRAM: invalid gs2 header");
	authzid[0] = '\0';
	if (f[1].len > 0 && (!field_is(&f[1], 'a') ||
	                     saslname_decode(f[1].p + 2, f[1].len - 2, authzid,
	                                     sizeof(authzid)) < 0))
		return sasl_fail_error(s, "SCRAM: invalid authzid");
	header_len = (size_t)((const uint8_t *)f[2].p - in);

	/* client-first-message-bare */
	if (field_is(&f[2], 'm'))
		return sasl_fail_error(s, "SCRAM: mandatory extension not "
		                          "supported");
	if (!field_is(&f[2], 'n') ||
	    saslname_decode(f[2].p + 2, f[2].len - 2, s->user,
	                    sizeof(s->user)) < 0) {
		s->user[0] = '\0';
		return sasl_fail_error(s, "SCRAM: invalid user name");
	}
	if (!field_is(&f[3], 'r') || !nonce_valid(f[3].p + 2, f[3].len - 2))
		return sasl_fail_error(s, "SCRAM: invalid client nonce");
	for (size_t i = 4; i < n; i++) {
		if (!extension_valid(&f[i]))
			return sasl_fail_error(s, "SCRAM: invalid extension");
	}
	if (authzid[0] != '\0' && strcmp(authzid, s->user) != 0)
		return sasl_fail_error(s, "SCRAM: authzid is not the user");

	buf_reset(&s->gs2_header);
	buf_reset(&s->client_first_bare);
	buf_reset(&s->nonce);
	if (buf_append(&s->gs2_header, in, header_len) < 0 ||
	    buf_append(&s->client_first_bare, in + header_len,
	               len - header_len) < 0 ||
	    buf_append(&s->nonce, f[3].p + 2, f[3].len - 2) < 0)
		return sasl_fail_error(s, "SCRAM: client-first too long");

	sasl_wait(s, SASL_STATE_WAIT_SCRAM_PARAMS);
	s->verifier.scram_params(s->verifier.arg, s->user);
	return sasl_status(s);
}

/* RFC 5802 §7: channel-binding "," nonce ["," extensions] "," proof. */
static enum sasl_status
scram_client_final(struct sasl_session *s, const uint8_t *in, size_t len)
{
	struct field f[SCRAM_FIELDS_MAX];
	char cbind[BASE64_ENCODED_SIZE(SASL_INPUT_MAX)];
	uint8_t proof[SCRAM_PROOF_LEN];
	size_t n, cbind_len, proof_len, without_proof_len;

	if (!utf8_safe(in, len))
		return sasl_fail_error(s, "SCRAM: invalid client-final bytes");
	if (split_fields(in, len, f, SCRAM_FIELDS_MAX, &n) < 0 || n < 3)
		return sasl_fail_error(s, "SCRAM: malformed client-final");
	/* Without channel binding, c= is the gs2 header, base64-encoded. */
	cbind_len =
	    sasl_base64_encode(s->gs2_header.data, s->gs2_header.len, cbind);
	if (!field_is(&f[0], 'c') || f[0].len - 2 != cbind_len ||
	    memcmp(f[0].p + 2, cbind, cbind_len) != 0)
		return sasl_fail_error(s, "SCRAM: channel binding mismatch");
	if (!field_is(&f[1], 'r') || f[1].len - 2 != s->nonce.len ||
	    memcmp(f[1].p + 2, s->nonce.data, s->nonce.len) != 0)
		return sasl_fail_error(s, "SCRAM: nonce mismatch");
	for (size_t i = 2; i + 1 < n; i++) {
		if (!extension_valid(&f[i]))
			return sasl_fail_error(s, "SCRAM: invalid extension");
	}
	if (!field_is(&f[n - 1], 'p'))
		return sasl_fail_error(s, "SCRAM: proof missing or not last");
	if (sasl_base64_decode(f[n - 1].p + 2, f[n - 1].len - 2, proof,
	                       sizeof(proof), &proof_len) < 0 ||
	    proof_len != SCRAM_PROOF_LEN)
		return sasl_fail_error(s, "SCRAM: invalid proof");

	/* AuthMessage = client-first-message-bare "," server-first-message
	 * "," client-final-message-without-proof */
	without_proof_len = (size_t)((const uint8_t *)f[n - 1].p - in) - 1;
	buf_reset(&s->auth_message);
	if (buf_append(&s->auth_message, s->client_first_bare.data,
	               s->client_first_bare.len) < 0 ||
	    buf_append_byte(&s->auth_message, ',') < 0 ||
	    buf_append(&s->auth_message, s->server_first.data,
	               s->server_first.len) < 0 ||
	    buf_append_byte(&s->auth_message, ',') < 0 ||
	    buf_append(&s->auth_message, in, without_proof_len) < 0)
		return sasl_fail_error(s, "SCRAM: AuthMessage too long");

	sasl_wait(s, SASL_STATE_WAIT_SCRAM_CHECK);
	s->verifier.scram_check(s->verifier.arg, s->user, s->auth_message.data,
	                        s->auth_message.len, proof, sizeof(proof));
	OPENSSL_cleanse(proof, sizeof(proof));
	return sasl_status(s);
}

static enum sasl_status
scram_step(struct sasl_session *s, const uint8_t *in, size_t len)
{
	switch (s->state) {
	case SASL_STATE_INITIAL:
		if (in == NULL) {
			sasl_set_challenge(s, "", 0);
			sasl_set_state(s, SASL_STATE_SCRAM_CLIENT_FIRST);
			return SASL_CONTINUE;
		}
		return scram_client_first(s, in, len);
	case SASL_STATE_SCRAM_CLIENT_FIRST:
		return scram_client_first(s, in, len);
	case SASL_STATE_SCRAM_CLIENT_FINAL:
		return scram_client_final(s, in, len);
	default:
		return sasl_fail_error(s, "step in the wrong state");
	}
}

enum sasl_status
sasl_step(struct sasl_session *s, const uint8_t *in, size_t len)
{
	static const uint8_t empty[1];
	bool first = s->state == SASL_STATE_INITIAL;

	assert(in != NULL || len == 0);
	if (sasl_status(s) != SASL_CONTINUE)
		return sasl_fail_error(s, "step in the wrong state");
	if (++s->steps > SASL_STEPS_MAX)
		return sasl_fail_error(s, "too many steps");
	if (len > SASL_INPUT_MAX)
		return sasl_fail_error(s, "input too long");
	/* NULL means "no initial response" only on the first step; later it
	 * is an empty message like any other. */
	if (in == NULL && !first)
		in = empty;
	switch (s->mech) {
	case SASL_MECH_PLAIN:
		return plain_step(s, in, len);
	case SASL_MECH_LOGIN:
		return login_step(s, in, len);
	case SASL_MECH_SCRAM_SHA_256:
		return scram_step(s, in, len);
	}
	return sasl_fail_error(s, "unknown mechanism");
}

void
sasl_abort(struct sasl_session *s)
{
	if (s->state == SASL_STATE_SUCCESS || s->state == SASL_STATE_FAIL ||
	    s->state == SASL_STATE_TEMPFAIL || s->state == SASL_STATE_ERROR)
		return;
	s->error = "aborted";
	buf_reset(&s->challenge);
	sasl_set_state(s, SASL_STATE_FAIL);
}

/* Map a verifier result onto a terminal state; anything but 0 or 1 is a
 * temporary failure, so a garbled answer never authenticates. */
static enum sasl_status
sasl_finish(struct sasl_session *s, int result)
{
	buf_reset(&s->challenge);
	if (result == 0) {
		sasl_set_state(s, SASL_STATE_SUCCESS);
		return SASL_SUCCESS;
	}
	if (result == 1) {
		sasl_set_state(s, SASL_STATE_FAIL);
		return SASL_FAIL;
	}
	s->error = "verifier: temporary failure";
	sasl_set_state(s, SASL_STATE_TEMPFAIL);
	return SASL_TEMPFAIL;
}

static bool
sasl_expects(struct sasl_session *s, enum sasl_state state, const char *what)
{
	if (s->state == state)
		return true;
	/* A client that aborted while the verifier worked gets here. */
	log_debug(NULL, "event=sasl_unexpected_answer answer=%s state=%s", what,
	          state_names[s->state]);
	return false;
}

enum sasl_status
sasl_password_result(struct sasl_session *s, int result)
{
	if (!sasl_expects(s, SASL_STATE_WAIT_PASSWORD, "password"))
		return sasl_status(s);
	return sasl_finish(s, result);
}

enum sasl_status
sasl_scram_params_result(struct sasl_session *s, int result,
                         const uint8_t *salt, size_t salt_len,
                         uint32_t iterations)
{
	uint8_t raw[SCRAM_SERVER_NONCE_BYTES];
	char b64[BASE64_ENCODED_SIZE(SCRAM_SALT_MAX)];
	size_t b64_len;
	int ok;

	if (!sasl_expects(s, SASL_STATE_WAIT_SCRAM_PARAMS, "scram_params"))
		return sasl_status(s);
	if (result != 0)
		return sasl_finish(s, result);
	if (salt == NULL || salt_len == 0 || salt_len > SCRAM_SALT_MAX ||
	    iterations == 0) {
		log_warn(NULL,
		         "event=sasl_bad_scram_params salt_len=%zu "
		         "iterations=%u",
		         salt_len, (unsigned)iterations);
		return sasl_finish(s, -1);
	}

	/* nonce = client nonce + 24 random bytes in base64 (RFC 5802 §5.1
	 * asks for a fresh, unpredictable server part). */
	if (s->test_nonce[0] != '\0') {
		ok = buf_append_str(&s->nonce, s->test_nonce);
	} else {
		if (RAND_bytes(raw, sizeof(raw)) != 1) {
			log_error(NULL, "event=sasl_rand_failed");
			return sasl_finish(s, -1);
		}
		b64_len = sasl_base64_encode(raw, sizeof(raw), b64);
		ok = buf_append(&s->nonce, b64, b64_len);
	}
	if (ok < 0)
		return sasl_finish(s, -1);

	b64_len = sasl_base64_encode(salt, salt_len, b64);
	buf_reset(&s->server_first);
	if (buf_append_str(&s->server_first, "r=") < 0 ||
	    buf_append(&s->server_first, s->nonce.data, s->nonce.len) < 0 ||
	    buf_append_str(&s->server_first, ",s=") < 0 ||
	    buf_append(&s->server_first, b64, b64_len) < 0 ||
	    buf_printf(&s->server_first, ",i=%u", (unsigned)iterations) < 0)
		return sasl_finish(s, -1);
	sasl_set_challenge(s, s->server_first.data, s->server_first.len);
	sasl_set_state(s, SASL_STATE_SCRAM_CLIENT_FINAL);
	return SASL_CONTINUE;
}

enum sasl_status
sasl_scram_check_result(struct sasl_session *s, int result,
                        const uint8_t server_signature[32])
{
	char b64[BASE64_ENCODED_SIZE(SCRAM_SIGNATURE_LEN)];
	size_t b64_len;

	if (!sasl_expects(s, SASL_STATE_WAIT_SCRAM_CHECK, "scram_check"))
		return sasl_status(s);
	if (result != 0)
		return sasl_finish(s, result);
	if (server_signature == NULL)
		return sasl_finish(s, -1);
	sasl_finish(s, 0);
	/* server-final-message = "v=" base64(ServerSignature) */
	b64_len =
	    sasl_base64_encode(server_signature, SCRAM_SIGNATURE_LEN, b64);
	buf_reset(&s->challenge);
	if (buf_append_str(&s->challenge, "v=") < 0 ||
	    buf_append(&s->challenge, b64, b64_len) < 0)
		abort(); /* 46 bytes, far under the bound */
	return SASL_SUCCESS;
}

enum sasl_status
sasl_status(const struct sasl_session *s)
{
	switch (s->state) {
	case SASL_STATE_INITIAL:
	case SASL_STATE_PLAIN_MESSAGE:
	case SASL_STATE_LOGIN_USER:
	case SASL_STATE_LOGIN_PASSWORD:
	case SASL_STATE_SCRAM_CLIENT_FIRST:
	case SASL_STATE_SCRAM_CLIENT_FINAL:
		return SASL_CONTINUE;
	case SASL_STATE_WAIT_PASSWORD:
	case SASL_STATE_WAIT_SCRAM_PARAMS:
	case SASL_STATE_WAIT_SCRAM_CHECK:
		return SASL_PENDING;
	case SASL_STATE_SUCCESS:
		return SASL_SUCCESS;
	case SASL_STATE_FAIL:
		return SASL_FAIL;
	case SASL_STATE_TEMPFAIL:
		return SASL_TEMPFAIL;
	case SASL_STATE_ERROR:
		return SASL_ERROR;
	}
	return SASL_ERROR;
}

void
sasl_challenge(const struct sasl_session *s, const uint8_t **data_r,
               size_t *len_r)
{
	static const uint8_t empty[1];

	if (s->challenge.len == 0) {
		*data_r = empty;
		*len_r = 0;
		return;
	}
	*data_r = s->challenge.data;
	*len_r = s->challenge.len;
}

const char *
sasl_user(const struct sasl_session *s)
{
	return s->user;
}

const char *
sasl_error(const struct sasl_session *s)
{
	return s->error;
}

void
sasl_test_set_server_nonce(struct sasl_session *s, const char *nonce)
{
	size_t len = strlen(nonce);

	if (len > SCRAM_TEST_NONCE_MAX || !nonce_valid(nonce, len)) {
		assert(!"invalid test nonce");
		return;
	}
	memcpy(s->test_nonce, nonce, len + 1);
}

/* The protocols' base64 is the one of src/core. */
int
sasl_base64_decode(const char *in, size_t len, uint8_t *out, size_t outmax,
                   size_t *outlen_r)
{
	return base64_decode(in, len, out, outmax, outlen_r);
}

size_t
sasl_base64_encode(const uint8_t *in, size_t len, char *out)
{
	return base64_encode(in, len, out);
}
