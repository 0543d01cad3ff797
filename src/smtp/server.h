/* The SMTP server session (RFC 5321 with ESMTP; LMTP, RFC 2033) as a state
 * machine: bytes in, replies out, and a few questions to its owner (may
 * this recipient be accepted, give me a spool file, commit this message)
 * answered asynchronously. It knows nothing of processes or sockets.
 *
 * Extensions: PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES, STARTTLS,
 * AUTH (src/directory/sasl, SASL-IR), SMTPUTF8, CHUNKING (BDAT), DSN
 * (parameters parsed and kept in the envelope), HELP, NOOP, RSET, QUIT;
 * VRFY answers 252; EXPN is refused.
 *
 * SECURITY: every byte comes from the network. Command lines are bounded
 * (limits.line_max); the message is bounded (limits.message_max) and so is
 * its header (limits.header_max); recipients and errors are counted. The
 * end of DATA is only CRLF "." CRLF: no bare-LF or bare-CR variant ever
 * ends a message early (SMTP smuggling); bare LF and bare CR inside the
 * data are turned into CRLF (or the message is refused with 550 5.5.2 when
 * limits.reject_bare_lf). After STARTTLS everything buffered is dropped by
 * the caller and the session starts over (CVE-2011-0411). */
#ifndef TERN_SMTP_SERVER_H
#define TERN_SMTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sasl_verifier;

enum smtp_kind {
	SMTP_KIND_MX,         /* port 25: local domains only, no AUTH */
	SMTP_KIND_SUBMISSION, /* 587/465: AUTH required (after TLS) */
	SMTP_KIND_LMTP,       /* RFC 2033: LHLO, a reply per recipient */
};

struct smtp_limits {
	size_t line_max;      /* command line incl. CRLF (default 2048) */
	uint64_t message_max; /* SIZE (default 50 MiB) */
	size_t header_max;    /* bytes of header section (default 1 MiB) */
	unsigned rcpt_max;    /* recipients per message (default 100) */
	unsigned errors_max;  /* bad commands before 421 and close (10) */
	bool reject_bare_lf;  /* refuse bare LF/CR with 550 5.5.2 */
};

void smtp_limits_default(struct smtp_limits *l);

/* DSN (RFC 3461) NOTIFY bits. */
#define SMTP_NOTIFY_NEVER 0x1
#define SMTP_NOTIFY_SUCCESS 0x2
#define SMTP_NOTIFY_FAILURE 0x4
#define SMTP_NOTIFY_DELAY 0x8

struct smtp_rcpt {
	char *address;   /* the path as given, without <> (source route
	                    dropped), e.g. "Bob+x@Example.org" */
	unsigned notify; /* SMTP_NOTIFY_*, 0 = not given */
	char *orcpt;     /* ORCPT value or NULL */
};

struct smtp_envelope {
	char *helo;
	char *mail_from; /* "" for the null sender <> */
	bool body_8bit;  /* BODY=8BITMIME */
	bool smtputf8;
	uint64_t size; /* SIZE= as declared, 0 if none */
	char *ret;     /* RET=FULL|HDRS or NULL */
	char *envid;   /* ENVID or NULL */
	struct smtp_rcpt *rcpts;
	size_t nrcpts;
	char *auth_user; /* NULL when not authenticated */
};

/* Questions the session asks its owner. Each is answered later (or from
 * inside the call) through the matching smtp_server_*_result(); until then
 * the session consumes no more input. */
struct smtp_server_io {
	void (*write)(void *arg, const char *data, size_t len);
	/* Start TLS once everything written is flushed. */
	void (*starttls)(void *arg);
	/* Close once everything written is flushed. */
	void (*close)(void *arg);
	/* May this recipient be accepted? (address: as in smtp_rcpt) */
	void (*check_rcpt)(void *arg, const char *address);
	/* Submission: may the logged-in user use this envelope sender? */
	void (*check_sender)(void *arg, const char *user, const char *address);
	/* A spool file for the message: answer smtp_server_data_ready(). */
	void (*data_begin)(void *arg);
	/* Append message bytes (already normalized, dot-unstuffed, CRLF line
	 * ends, Received: first). 0 ok, -1 failed (disk): the session
	 * answers 451 at the end and aborts. */
	int (*data_write)(void *arg, const void *data, size_t len);
	/* The message is complete: make it durable with this envelope and
	 * answer smtp_server_commit_result(). */
	void (*data_commit)(void *arg, const struct smtp_envelope *env);
	/* The message will not be committed (RSET, error, close). */
	void (*data_abort)(void *arg);
	/* Logins (SUBMISSION only). */
	const struct sasl_verifier *verifier;
	void *arg;
};

struct smtp_server;

/* hostname: ours, for the greeting and Received:. client_ip and
 * client_port: the peer (after PROXY). tls_active: implicit TLS. */
struct smtp_server *smtp_server_new(enum smtp_kind kind,
                                    const struct smtp_limits *limits,
                                    const char *hostname, const char *client_ip,
                                    bool tls_active, bool starttls_offered,
                                    const struct smtp_server_io *io);
void smtp_server_free(struct smtp_server **s);
/* Send the greeting. */
void smtp_server_start(struct smtp_server *s);
/* Feed input; returns how many bytes were used. Fewer than len means the
 * session waits for an answer (or is closing): feed the rest later. */
size_t smtp_server_input(struct smtp_server *s, const uint8_t *data,
                         size_t len);
/* True while an answer is awaited: hold input. */
bool smtp_server_busy(const struct smtp_server *s);
/* True while message bytes are read (DATA, or a BDAT chunk): input in
 * big pieces is welcome. */
bool smtp_server_in_message(const struct smtp_server *s);
/* The TLS handshake finished (after STARTTLS): forget the session so far
 * (RFC 3207: the client must EHLO again). version/cipher for Received:. */
void smtp_server_tls_started(struct smtp_server *s, const char *version,
                             const char *cipher);
/* The server is stopping (421 now, or after the transaction in progress
 * completes) / the idle timeout expired (421). */
void smtp_server_shutdown(struct smtp_server *s);
void smtp_server_timeout(struct smtp_server *s);

/* Answers. check_rcpt result: 0 accept, 1 unknown user (550 5.1.1),
 * 2 relay denied (554 5.7.1), 3 mailbox disabled (550 5.2.1), -1
 * temporary (451 4.3.0). */
void smtp_server_rcpt_result(struct smtp_server *s, int result);
/* check_sender: 0 allowed, 1 not allowed (553 5.7.1), -1 temporary. */
void smtp_server_sender_result(struct smtp_server *s, int result);
/* data_begin: 0 ready (354 / BDAT goes on), -1 temporary (451). */
void smtp_server_data_ready(struct smtp_server *s, int result);
/* data_commit: 0 queued as queue_id (250), -1 temporary (451). LMTP
 * answers once per accepted recipient with the same result. */
/* data_commit refused for good by a check (DMARC reject): "550 5.7.1
 * reason" (per recipient on LMTP); the message is not queued. */
void smtp_server_commit_refused(struct smtp_server *s, const char *reason);
/* The same with another 5xx code (553: the From: header names an address
 * the user may not send as). */
void smtp_server_commit_refused_code(struct smtp_server *s, int code,
                                     const char *reason);
void smtp_server_commit_result(struct smtp_server *s, int result,
                               const char *queue_id);

/* The verifier's answers for AUTH (SUBMISSION), as in front_proto: user
 * is the canonical login name on success (NULL: the name given). */
void smtp_server_auth_password_result(struct smtp_server *s, int result,
                                      const char *user);
void smtp_server_auth_scram_params_result(struct smtp_server *s, int result,
                                          const uint8_t *salt, size_t salt_len,
                                          uint32_t iterations);
void smtp_server_auth_scram_check_result(struct smtp_server *s, int result,
                                         const char *user,
                                         const uint8_t signature[32]);

/* For the connection log line. */
const char *smtp_server_helo(const struct smtp_server *s);
const char *smtp_server_auth_user(const struct smtp_server *s);
/* The current transaction's MAIL FROM ("" for <> or none yet). */
const char *smtp_server_mail_from(const struct smtp_server *s);

#endif
