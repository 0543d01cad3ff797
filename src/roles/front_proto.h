/* The first words front speaks on IMAP, POP3, ManageSieve and HTTP until
 * each service's own protocol module is wired in (SMTP, submission and
 * LMTP already have theirs, src/smtp): the greeting, capability discovery,
 * STARTTLS
 * (so TLS upgrade works end to end), NOOP, the polite ways to leave,
 * and logins (SASL PLAIN, LOGIN, SCRAM-SHA-256; IMAP LOGIN; POP3 USER/PASS)
 * checked by lookup. Every other command is answered "not implemented" in
 * the protocol's own syntax. A pure state machine: lines in, replies out
 * through front_io. */
#ifndef TERN_ROLES_FRONT_PROTO_H
#define TERN_ROLES_FRONT_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

struct sasl_verifier;

/* What the protocol asks of the connection. */
struct front_io {
	void (*write)(void *arg, const char *data, size_t len);
	/* Start a TLS handshake once the reply just written is flushed. */
	void (*starttls)(void *arg);
	/* Close once everything written is flushed. */
	void (*close)(void *arg);
	void *arg;
	/* Who checks logins (lookup, through front); NULL: no AUTH offered. */
	const struct sasl_verifier *verifier;
	/* IMAP: a login succeeded and the session moves on to the mailbox
	 * store, which answers the login command (tag) itself. NULL: the
	 * protocol answers OK and stays. */
	void (*handoff)(void *arg, const char *tag);
};

struct front_proto;

struct front_proto *front_proto_new(enum listener_service service,
                                    bool tls_active, bool starttls_allowed,
                                    const struct front_io *io);
void front_proto_free(struct front_proto **p);
/* Send the greeting. */
void front_proto_start(struct front_proto *p);
/* One input line, without its line end. */
void front_proto_line(struct front_proto *p, const char *line, size_t len);
/* A line over the bound arrived (and was discarded). */
void front_proto_line_too_long(struct front_proto *p);
/* The STARTTLS handshake finished: forget everything said before it. */
void front_proto_tls_started(struct front_proto *p);
/* The server is stopping: say so and close. */
void front_proto_shutdown(struct front_proto *p);
/* The idle timeout expired: say so and close. */
void front_proto_timeout(struct front_proto *p);
/* Logins (submission, IMAP, POP3; only once TLS is active). While a check
 * is out with the verifier the protocol is busy: the connection must hold
 * further input lines until one of the *_result calls has answered. */
bool front_proto_busy(const struct front_proto *p);
/* result: 0 ok, 1 wrong, -1 temporary failure. user: the canonical
 * address the verifier matched (on success). */
void front_proto_auth_password_result(struct front_proto *p, int result,
                                      const char *user);
void front_proto_auth_scram_params_result(struct front_proto *p, int result,
                                          const unsigned char *salt,
                                          size_t salt_len, unsigned iterations);
void front_proto_auth_scram_check_result(struct front_proto *p, int result,
                                         const char *user,
                                         const unsigned char *signature);
/* The logged-in user, or NULL. */
const char *front_proto_user(const struct front_proto *p);

/* What front says when it refuses a connection (limits), for every
 * service, SMTP included. */
const char *front_proto_refusal(enum listener_service service);

#endif
