/* libFuzzer target for src/directory/sasl.c: client messages fed through the
 * PLAIN, LOGIN and SCRAM-SHA-256 state machines with a fake verifier, plus
 * the base64 decoder. Input: one flag byte (mechanism in the low bits, see
 * below), then client messages separated by 0xFF (never valid UTF-8).
 * Aborts on any inconsistency between returned and reported status. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "directory/sasl.h"

#define FLAG_ASYNC 0x04        /* verifier answers after sasl_step returns */
#define FLAG_NO_IR 0x08        /* first step is "no initial response" */
#define FLAG_ABORT 0x10        /* client aborts after the last message */
#define FLAG_TEST_NONCE 0x20   /* fixed SCRAM server nonce "SRV" */
#define FLAG_STEP_PENDING 0x40 /* async: next message before the answer */
#define FLAG_FAIL_FIRST 0x80   /* the verifier's first answer is "wrong" */
#define DELIM 0xff
#define STEPS_MAX 8

enum call {
	CALL_NONE,
	CALL_PASSWORD,
	CALL_PARAMS,
	CALL_CHECK,
};

struct fake {
	struct sasl_session *s;
	bool async;
	bool params_tempfail;
	enum call pending;
	unsigned answers;
	int last_answer;
	bool ever_ok;
};

static void
check(bool ok)
{
	if (!ok)
		abort();
}

/* Checks answer ok and wrong in turn; SCRAM parameters always come, but
 * for a user whose name starts with '!' (a temporary failure). */
static int
next_answer(struct fake *f, enum call call)
{
	if (call == CALL_PARAMS)
		return f->params_tempfail ? -1 : 0;
	return (int)(f->answers++ % 2);
}

static void
answer(struct fake *f)
{
	static const uint8_t salt[16] = "0123456789abcdef";
	static const uint8_t sig[32] = {1, 2, 3};
	enum call call = f->pending;
	int r = next_answer(f, call);

	f->pending = CALL_NONE;
	f->last_answer = r;
	if (r == 0 && call != CALL_PARAMS)
		f->ever_ok = true;
	switch (call) {
	case CALL_PASSWORD:
		sasl_password_result(f->s, r);
		break;
	case CALL_PARAMS:
		sasl_scram_params_result(f->s, r, salt, sizeof(salt), 4096);
		break;
	case CALL_CHECK:
		sasl_scram_check_result(f->s, r, r == 0 ? sig : NULL);
		break;
	case CALL_NONE:
		break;
	}
}

static void
called(struct fake *f, enum call call)
{
	check(f->pending == CALL_NONE);
	check(sasl_status(f->s) == SASL_PENDING);
	f->pending = call;
	if (!f->async)
		answer(f);
}

static void
fake_check_password(void *arg, const char *authzid, const char *user,
                    const char *password, size_t password_len)
{
	check(authzid != NULL && strlen(authzid) <= SASL_USER_MAX);
	check(user[0] != '\0' && strlen(user) <= SASL_USER_MAX);
	check(password_len > 0 && password_len <= SASL_INPUT_MAX);
	check(strlen(password) == password_len);
	called(arg, CALL_PASSWORD);
}

static void
fake_scram_params(void *arg, const char *user)
{
	struct fake *f = arg;

	check(user[0] != '\0' && strlen(user) <= SASL_USER_MAX);
	f->params_tempfail = user[0] == '!';
	called(f, CALL_PARAMS);
}

static void
fake_scram_check(void *arg, const char *user, const uint8_t *auth_message,
                 size_t auth_len, const uint8_t *proof, size_t proof_len)
{
	check(user[0] != '\0');
	check(auth_message != NULL && auth_len > 0);
	check(proof != NULL && proof_len == 32);
	called(arg, CALL_CHECK);
}

static bool
terminal(enum sasl_status st)
{
	return st == SASL_SUCCESS || st == SASL_FAIL || st == SASL_TEMPFAIL ||
	       st == SASL_ERROR;
}

/* Whatever the status, what the session reports must fit it. */
static void
check_session(const struct fake *f, enum sasl_mech mech, enum sasl_status st)
{
	const uint8_t *data;
	size_t len;

	check(st == sasl_status(f->s));
	check(strlen(sasl_user(f->s)) <= SASL_USER_MAX);
	if (st == SASL_PENDING)
		check(f->pending != CALL_NONE);
	/* A step while waiting (ERROR) or an abort (FAIL) ends the session
	 * before the verifier answers. */
	if (f->pending != CALL_NONE)
		check(st == SASL_PENDING || st == SASL_ERROR ||
		      st == SASL_FAIL);
	if (!f->async)
		check(st != SASL_PENDING);
	sasl_challenge(f->s, &data, &len);
	check(data != NULL);
	switch (st) {
	case SASL_SUCCESS:
		check(sasl_user(f->s)[0] != '\0');
		check(f->ever_ok && f->last_answer == 0);
		if (mech == SASL_MECH_SCRAM_SHA_256)
			check(len == 46 && memcmp(data, "v=", 2) == 0);
		else
			check(len == 0);
		break;
	case SASL_ERROR:
		check(sasl_error(f->s)[0] != '\0');
		check(len == 0);
		break;
	case SASL_FAIL:
	case SASL_TEMPFAIL:
	case SASL_PENDING:
		check(len == 0);
		break;
	case SASL_CONTINUE:
		if (len > 0 && mech == SASL_MECH_SCRAM_SHA_256)
			check(memcmp(data, "r=", 2) == 0);
		break;
	}
}

/* Strict base64 has one encoding per byte string: a decode that
 * succeeds must re-encode to the very same text. */
static void
check_base64(const uint8_t *in, size_t len)
{
	static uint8_t out[SASL_INPUT_MAX];
	static char again[4 * ((SASL_INPUT_MAX + 2) / 3) + 1];
	size_t n;

	if (sasl_base64_decode((const char *)in, len, out, sizeof(out), &n) < 0)
		return;
	check(n <= sizeof(out));
	check(sasl_base64_encode(out, n, again) == len);
	check(memcmp(again, in, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	struct fake f = {0};
	struct sasl_verifier v = {
	    .check_password = fake_check_password,
	    .scram_params = fake_scram_params,
	    .scram_check = fake_scram_check,
	    .arg = &f,
	};
	enum sasl_mech mech;
	enum sasl_status st = SASL_CONTINUE;
	uint8_t flags;
	size_t pos = 1;
	int steps = 0;

	if (!quiet) {
		log_set_level(LOG_LEVEL_ERROR);
		quiet = true;
	}
	if (size == 0)
		return 0;
	flags = data[0];
	mech = (enum sasl_mech)((flags & 0x03) % 3);
	f.async = (flags & FLAG_ASYNC) != 0;
	f.answers = (flags & FLAG_FAIL_FIRST) != 0 ? 1 : 0;
	f.s = sasl_new(mech, &v);
	if ((flags & FLAG_TEST_NONCE) != 0)
		sasl_test_set_server_nonce(f.s, "SRV");

	if ((flags & FLAG_NO_IR) != 0) {
		st = sasl_step(f.s, NULL, 0);
		check(st == SASL_CONTINUE);
		check_session(&f, mech, st);
	}
	while (pos <= size && steps++ < STEPS_MAX) {
		const uint8_t *msg = data + pos;
		const uint8_t *end = memchr(msg, DELIM, size - pos);
		size_t len = end != NULL ? (size_t)(end - msg) : size - pos;
		enum sasl_status prev = st;

		check_base64(msg, len);
		st = sasl_step(f.s, msg, len);
		if (terminal(prev) || prev == SASL_PENDING ||
		    len > SASL_INPUT_MAX)
			check(st == SASL_ERROR);
		check_session(&f, mech, st);
		pos += len + 1;
		/* Answer now, or let the next message (or the abort) arrive
		 * too early. */
		if (st == SASL_PENDING &&
		    ((flags & FLAG_STEP_PENDING) == 0 ||
		     (pos > size && (flags & FLAG_ABORT) == 0))) {
			answer(&f);
			st = sasl_status(f.s);
			check(st != SASL_PENDING);
			check_session(&f, mech, st);
		}
		/* A late answer to an ended session changes nothing. */
		if (f.pending != CALL_NONE && st != SASL_PENDING) {
			answer(&f);
			check(sasl_status(f.s) == st);
		}
	}
	if ((flags & FLAG_ABORT) != 0) {
		enum sasl_status before = sasl_status(f.s);

		sasl_abort(f.s);
		st = sasl_status(f.s);
		if (terminal(before))
			check(st == before);
		else
			check(st == SASL_FAIL);
		/* A verifier answer still due is ignored. */
		if (f.pending != CALL_NONE) {
			answer(&f);
			check(sasl_status(f.s) == st);
		}
	}
	sasl_free(&f.s);
	check(f.s == NULL);
	return 0;
}
