/* Private to the SMTP server session (server.c, data.c, received.c): the
 * session structure and the calls between the command layer and the
 * message stream. Nothing outside src/smtp includes this. */
#ifndef TERN_SMTP_SERVER_INT_H
#define TERN_SMTP_SERVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "directory/sasl.h"
#include "smtp/server.h"

/* The session: one state at a time, changed only by smtp_set_state(). */
enum smtp_state {
	SMTP_STATE_INIT,         /* created, greeting not sent */
	SMTP_STATE_GREETED,      /* waiting for HELO/EHLO/LHLO */
	SMTP_STATE_IDLE,         /* greeted, no transaction */
	SMTP_STATE_SENDER_CHECK, /* MAIL: check_sender is asked */
	SMTP_STATE_MAIL,         /* in a transaction (MAIL accepted) */
	SMTP_STATE_RCPT_CHECK,   /* RCPT: check_rcpt is asked */
	SMTP_STATE_DATA_BEGIN,   /* DATA: data_begin is asked */
	SMTP_STATE_DATA,         /* reading the DATA stream */
	SMTP_STATE_BDAT_BEGIN,   /* first BDAT: data_begin is asked */
	SMTP_STATE_BDAT,         /* reading a BDAT chunk */
	SMTP_STATE_COMMIT,       /* data_commit is asked */
	SMTP_STATE_AUTH,         /* AUTH: a challenge is out */
	SMTP_STATE_AUTH_PENDING, /* AUTH: the verifier is asked */
	SMTP_STATE_TLS,          /* STARTTLS answered: input ignored */
	SMTP_STATE_CLOSED,       /* closing: input refused */
};

/* The DATA stream decoder (dot-unstuffing, line-end normalization). */
enum smtp_dstate {
	SMTP_D_BOL,    /* at the start of a line */
	SMTP_D_TEXT,   /* inside a line */
	SMTP_D_CR,     /* inside a line, after CR */
	SMTP_D_DOT,    /* "." at the start of a line */
	SMTP_D_DOT_CR, /* ".\r" at the start of a line */
};

/* The message goes to the spool file in writes of up to this much. The
 * buffer is made whole at DATA and freed after it: at 64 KB, a new one
 * per message cost more in page faults than the writes it saved. */
#define SMTP_WBUF_MAX 16384

struct smtp_server {
	enum smtp_kind kind;
	struct smtp_limits lim;
	char *hostname;
	unsigned forged_ar; /* Authentication-Results fields dropped */
	char *client_ip;
	char log_id[32];
	bool tls_active;
	bool starttls_offered;
	char *tls_version;
	char *tls_cipher;
	struct smtp_server_io io;
	enum smtp_state state;

	/* command lines */
	struct buf line;
	bool line_overflow;
	bool line_crlf; /* the last command line ended with CRLF */
	unsigned errors;
	bool too_many_errors;
	bool shutdown_pending;

	/* greeting and login */
	char *helo;
	bool esmtp;
	bool logged_in;
	char user[SASL_USER_MAX + 1];
	struct sasl_session *sasl;
	bool auth_final;   /* SCRAM server-final is out: wait for "" */
	bool auth_in_step; /* inside sasl_step(): answers come back there */

	/* the transaction */
	struct smtp_envelope env;
	bool tx_active;
	size_t rcpt_cap;
	struct smtp_rcpt pending; /* RCPT being checked */
	bool tx_data;             /* DATA was used */
	bool tx_bdat;             /* BDAT was used */
	bool data_open;           /* data_begin answered 0, not yet ended */

	/* the message stream */
	enum smtp_dstate dstate;
	bool prev_crlf; /* the last line end was a real CRLF */
	uint64_t msg_size;
	bool too_big;
	bool hdr_too_big;
	bool bad_bare;
	bool write_failed;
	bool in_header;
	struct buf hdr;
	size_t hdr_line_start;
	bool has_date;
	bool has_msgid;
	struct buf wbuf;

	/* BDAT */
	uint64_t bdat_left;
	bool bdat_last;
	bool bdat_discard;
	const char *bdat_error; /* reply after the chunk, or NULL */
};

/* server.c */
void smtp_set_state(struct smtp_server *s, enum smtp_state st);
void smtp_reply(struct smtp_server *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The DATA stream ended with CRLF.CRLF / a BDAT chunk is complete. */
void smtp_server_message_end(struct smtp_server *s);
void smtp_server_chunk_end(struct smtp_server *s);

void smtp_reply_raw(struct smtp_server *s, const char *line, size_t len);
enum smtp_state smtp_idle_state(const struct smtp_server *s);
/* After every step: too many errors ends the session. */
void smtp_after(struct smtp_server *s);

/* params.c: each returns NULL or the reply for the client. */
enum smtp_path_kind { SMTP_PATH_MAIL, SMTP_PATH_RCPT };
int smtp_parse_u64(const char *v, uint64_t *r);
/* "FROM:<path>" / "TO:<path>" (args is modified): *mailbox_r is the path
 * without <> and source route ("" for <>), *rest_r the parameters. */
const char *smtp_parse_path(struct smtp_server *s, char *args,
                            enum smtp_path_kind kind, char **mailbox_r,
                            char **rest_r);
bool smtp_has_8bit(const char *v);
/* Into s->env / s->pending. */
const char *smtp_mail_params(struct smtp_server *s, char *rest);
const char *smtp_rcpt_params(struct smtp_server *s, char *rest);

/* auth.c */
const char *smtp_check_auth(struct smtp_server *s);
void smtp_cmd_auth(struct smtp_server *s, char *args);
/* A client line during the exchange. */
void smtp_auth_line(struct smtp_server *s, const char *line, size_t len);

/* data.c */
/* Reset the stream for a new message and write the Received: header. */
void smtp_data_start(struct smtp_server *s);
/* Free the stream's buffers. */
void smtp_data_clear(struct smtp_server *s);
/* Consume DATA bytes up to and including the final ".\r\n". */
size_t smtp_data_input(struct smtp_server *s, const uint8_t *p, size_t len);
/* Consume up to the rest of the current BDAT chunk. */
size_t smtp_bdat_input(struct smtp_server *s, const uint8_t *p, size_t len);
/* Flush what is buffered (header, added fields, body); then the reply
 * for a refused message, or NULL when it can be committed. */
const char *smtp_data_finish(struct smtp_server *s);
/* The refusal so far (size, header, bare LF, disk), or NULL. */
const char *smtp_data_error(const struct smtp_server *s);

/* received.c */
/* "Received: …\r\n" for this session, allocated. */
char *smtp_received_header(const struct smtp_server *s);
/* RFC 5322 date-time, now, into out (at least 40 bytes). */
void smtp_date_now(char *out, size_t size);
/* "<…@hostname>", allocated. */
char *smtp_message_id(const struct smtp_server *s);

#endif
