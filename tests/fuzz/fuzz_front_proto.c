/* libFuzzer target: the first-words protocols (src/roles/front_proto.c).
 * The first byte picks the service (low bits) and the TLS state (high
 * bits); the rest is split into lines, and any login check is answered. Every
 * reply must be CRLF-terminated lines and the state machine must survive
 * any order of commands. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "directory/sasl.h"
#include "roles/front_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static enum listener_service service;

static void
check_write(void *arg, const char *data, size_t len)
{
	(void)arg;
	/* Replies always end a line: a protocol never leaves half of one.
	 * (An HTTP answer ends with its body instead.) */
	if (service == SERVICE_HTTP)
		return;
	if (len < 2 || data[len - 2] != '\r' || data[len - 1] != '\n')
		abort();
}

static void
noop(void *arg)
{
	(void)arg;
}

/* The services front_proto speaks (SMTP has src/smtp). */
static const enum listener_service services[] = {
    SERVICE_IMAP,  SERVICE_IMAPS,       SERVICE_POP3,
    SERVICE_POP3S, SERVICE_MANAGESIEVE, SERVICE_HTTP,
};

static void
verify_password(void *arg, const char *authzid, const char *user,
                const char *password, size_t len)
{
	(void)arg;
	(void)authzid;
	(void)user;
	(void)password;
	(void)len;
}

static void
verify_scram_params(void *arg, const char *user)
{
	(void)arg;
	(void)user;
}

static void
verify_scram_check(void *arg, const char *user, const uint8_t *am,
                   size_t am_len, const uint8_t *proof, size_t proof_len)
{
	(void)arg;
	(void)user;
	(void)am;
	(void)am_len;
	(void)proof;
	(void)proof_len;
}

static const struct sasl_verifier verifier = {
    .check_password = verify_password,
    .scram_params = verify_scram_params,
    .scram_check = verify_scram_check,
};

/* Answer a check that is out, as lookup would, later. */
static void
answer(struct front_proto *p, unsigned *turn)
{
	static const uint8_t salt[16] = {1, 2, 3};
	static const uint8_t sig[32] = {4, 5, 6};
	int result = (int)(*turn % 3) - 1; /* -1, 0, 1 in turn */

	(*turn)++;
	/* Only the call matching the pending question has an effect. */
	front_proto_auth_password_result(p, result, "a@b.test");
	if (front_proto_busy(p))
		front_proto_auth_scram_params_result(p, result, salt,
		                                     sizeof(salt), 4096);
	if (front_proto_busy(p))
		front_proto_auth_scram_check_result(p, result, "a@b.test", sig);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct front_io io = {check_write, noop, noop, NULL, &verifier, NULL};
	struct front_proto *p;
	size_t start = 1;
	unsigned turn = 0;

	if (size < 1)
		return 0;
	service = services[(data[0] & 0x07) % 6];
	p = front_proto_new(service, data[0] & 0x80, data[0] & 0x40, &io);
	front_proto_start(p);
	for (size_t i = 1; i <= size; i++) {
		if (i == size || data[i] == '\n') {
			if (i - start > 2048)
				front_proto_line_too_long(p);
			else
				front_proto_line(p, (const char *)data + start,
				                 i - start);
			if (front_proto_busy(p))
				answer(p, &turn);
			start = i + 1;
		}
		if (i == size)
			break;
	}
	if (data[0] & 0x20)
		front_proto_tls_started(p);
	front_proto_shutdown(p);
	front_proto_free(&p);
	return 0;
}
