/* ipc: length-prefixed typed messages between tern's processes over
 * SOCK_STREAM socketpairs, with optional file-descriptor passing
 * (SCM_RIGHTS) and a request id for replies.
 *
 * Wire format of one message: a 12-byte header in network byte order
 *   u32 length of the payload (<= IPC_MAX_PAYLOAD)
 *   u16 type
 *   u16 flags (IPC_FLAG_FD: one descriptor travels with this message)
 *   u32 request id (0 when not a request or reply)
 * then the payload. A descriptor is sent as SCM_RIGHTS ancillary data with
 * the first byte of its message's header.
 *
 * SECURITY: a peer may be compromised. Decoding is strict: a payload over
 * the bound, an unknown type, a length outside the type's rule, a descriptor
 * where none is allowed (or missing where one is required), or a short read
 * at close marks the peer broken; the link is closed and the close callback
 * says why. The first message each way must be IPC_MSG_HELLO carrying
 * IPC_PROTOCOL_VERSION; a mismatch is broken too. */
#ifndef TERN_CORE_IPC_H
#define TERN_CORE_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

struct event_base;

#define IPC_PROTOCOL_VERSION 1
#define IPC_HEADER_SIZE 12
#define IPC_MAX_PAYLOAD (256 * 1024)
#define IPC_FLAG_FD 0x0001
/* Output queued beyond this marks the peer broken (it stopped reading). */
#define IPC_MAX_OUTPUT (16 * 1024 * 1024)

/* How a final recipient is reached (RCPT_REPLY, SPOOL_COMMIT). */
#define IPC_RCPT_LOCAL 0x1     /* a mailbox here */
#define IPC_RCPT_FORWARDED 0x2 /* an alias of ours sends it on outside */

/* Message types. Each role's table of accepted types lives in that role. */
enum ipc_msg_type {
	IPC_MSG_HELLO = 1,	 /* u32 protocol version, str role name */
	IPC_MSG_CONFIG,		 /* str: config_serialize() text */
	IPC_MSG_READY,		 /* child → parent: initialised */
	IPC_MSG_SHUTDOWN,	 /* parent → child: finish in flight, exit 0 */
	IPC_MSG_RELOAD,		 /* parent → child: str new config text */
	IPC_MSG_LISTENER,	 /* parent → front: fd + u32 listener index */
	IPC_MSG_CERTIFICATES,	 /* parent → front: u32 n, n × (str cert, str key) */
	IPC_MSG_PING,		 /* either way, answered by PONG, same id */
	IPC_MSG_PONG,
	IPC_MSG_LINK,		 /* parent → child: fd + str peer role name */
	/* front → lookup, each answered by AUTH_REPLY with the same id:
	 * str service, str ip, str user, then per type: */
	IPC_MSG_AUTH_PASSWORD,	   /* str authzid, bytes password */
	IPC_MSG_AUTH_SCRAM_PARAMS, /* nothing more */
	IPC_MSG_AUTH_SCRAM_CHECK,  /* bytes auth message, bytes proof */
	/* lookup → front: u32 result (0 ok, 1 wrong, 2 temporary), str the
	 * canonical user, bytes salt, u32 iterations, bytes server signature
	 * (empty where they do not apply). */
	IPC_MSG_AUTH_REPLY,
	/* front (or queue) → lookup: str address as given, u32 1 if
	 * authenticated, str the envelope sender ("" for <>).
	 * Reply RCPT_REPLY: u32 result (0 accept, 1 unknown user, 2 relay
	 * denied, 3 disabled, 4 temporary), u32 n, n × (str final address,
	 * u32 IPC_RCPT_* bits, str the envelope sender to use for it (SRS)
	 * or ""). The same bits go in the envelope of SPOOL_COMMIT. */
	IPC_MSG_RCPT_CHECK,
	IPC_MSG_RCPT_REPLY,
	/* front → lookup: str user, str address. Reply SENDER_REPLY: u32
	 * result (0 allowed, 1 refused, 2 temporary). */
	IPC_MSG_SENDER_CHECK,
	IPC_MSG_SENDER_REPLY,
	/* front → queue: a new spool file. Reply SPOOL_FILE: fd + str id, or
	 * no fd and "" when none could be made. */
	IPC_MSG_SPOOL_CREATE,
	IPC_MSG_SPOOL_FILE,
	/* front → queue: str id, then the envelope (see roles/queue.c).
	 * Reply SPOOL_COMMITTED: u32 0 durable / 1 failed, str id. */
	IPC_MSG_SPOOL_COMMIT,
	IPC_MSG_SPOOL_COMMITTED,
	/* front → queue: str id of a file that will not be committed. */
	IPC_MSG_SPOOL_ABORT,
	/* queue → store: fd of the message, str id, str return path, u32 n,
	 * n × str recipient, str header fields to put first (or ""), u32
	 * SPOOL_FLAG_* (JUNK: into the Junk mailbox). Reply DELIVERED: str id, u32 n, n × (str
	 * recipient, u32 result (0 ok, 1 temporary, 2 permanent), str why). */
	IPC_MSG_DELIVER,
	IPC_MSG_DELIVERED,
	/* front → store, after an IMAP (or POP3) login: fd of the session's
	 * socketpair end, str service ("imap"), str user (canonical), str
	 * login tag, str connection id, str client ip, u32 1 if TLS. No
	 * reply: store answers the login on the socket itself. */
	IPC_MSG_SESSION_OPEN,
	/* front → lookup: str domain. Reply DKIM_KEYS_REPLY: u32 n, n × (str
	 * selector, u32 algorithm as enum dkim_algorithm). */
	IPC_MSG_DKIM_KEYS,
	IPC_MSG_DKIM_KEYS_REPLY,
	/* front → lookup: str domain, u32 n, n × (str selector, u32
	 * algorithm, bytes digest). Reply DKIM_SIGNATURES: u32 n, n × bytes
	 * signature (empty where signing failed). */
	IPC_MSG_DKIM_SIGN,
	IPC_MSG_DKIM_SIGNATURES,
	/* queue → lookup: str user (canonical address), str reason ("limit"
	 * or "spike"): the user went over the sending limits
	 * (roles/queue_limits.c); lookup suspends the user in the directory.
	 * No reply. */
	IPC_MSG_USER_SUSPEND,
	/* front → queue, after the DMARC check of a message on the MX
	 * listener, once per From domain whose record has mailto: rua URIs:
	 * str header From domain, str policy domain, str source ip, str
	 * envelope From (SPF) domain, u32 SPF result, u32 n (at most 8), n ×
	 * (str DKIM domain, str selector, u32 result), u32 DMARC result, u32
	 * disposition applied, u32 flags (aligned DKIM, SPF), u32 reasons,
	 * u32 p, sp, pct, adkim, aspf, u32 n (at most 4), n × (str rua URI,
	 * u64 size limit) (mailauth/dmarc_agg.h). Queue keeps it for the
	 * aggregate reports (roles/queue_dmarc.c). No reply. */
	IPC_MSG_DMARC_RECORD,
	IPC_MSG_TYPE_MAX
};

/* A received message. data/len and fd are valid during the callback only;
 * to keep the descriptor, set msg->fd = -1 after taking it (else it is
 * closed after the callback returns). */
struct ipc_msg {
	uint16_t type;
	uint16_t flags;
	uint32_t reqid;
	int fd; /* -1 if none */
	const uint8_t *data;
	size_t len;
};

/* What a peer may send: messages of other types are a protocol error. */
struct ipc_rule {
	uint16_t type;
	uint32_t min_len;
	uint32_t max_len;
	enum { IPC_FD_NEVER, IPC_FD_OPTIONAL, IPC_FD_REQUIRED } fd;
};

struct ipc_peer;
typedef void ipc_msg_fn(struct ipc_peer *peer, struct ipc_msg *msg,
			void *ctx);
/* Called once when the link ends: why is "closed by peer", or what was
 * wrong. The peer must not be used after this returns except to free it. */
typedef void ipc_close_fn(struct ipc_peer *peer, const char *why, void *ctx);

/* Takes ownership of fd (a connected SOCK_STREAM AF_UNIX socket; made
 * non-blocking). rules ends with an entry whose type is 0; the HELLO
 * exchange is handled inside: on_msg never sees HELLO, and no other message
 * is delivered before the peer's HELLO arrived. role_name is sent in our
 * HELLO; the peer's is available with ipc_peer_remote_name(). */
struct ipc_peer *ipc_peer_new(struct event_base *base, int fd,
			      const char *role_name,
			      const struct ipc_rule *rules, ipc_msg_fn *on_msg,
			      ipc_close_fn *on_close, void *ctx);
void ipc_peer_free(struct ipc_peer **peer);
const char *ipc_peer_remote_name(const struct ipc_peer *peer);
bool ipc_peer_is_open(const struct ipc_peer *peer);
/* Queue a message. fd (or -1) is owned by ipc from this call on and closed
 * once sent. -1 if the payload is over the bound or the peer is closed. */
int ipc_send(struct ipc_peer *peer, uint16_t type, uint32_t reqid, int fd,
	     const void *data, size_t len);
/* Write everything queued, blocking up to timeout_ms (for shutdown). */
int ipc_flush(struct ipc_peer *peer, int timeout_ms);

/* Pure framing, for tests and fuzzing: encode a header; decode one from
 * bytes (0 ok, 1 need more, -1 bad, with *error_r). */
void ipc_header_encode(uint8_t out[IPC_HEADER_SIZE], uint32_t len,
		       uint16_t type, uint16_t flags, uint32_t reqid);
int ipc_header_decode(const uint8_t *in, size_t inlen, uint32_t *len_r,
		      uint16_t *type_r, uint16_t *flags_r, uint32_t *reqid_r,
		      const char **error_r);

/* Payload building and reading. Writers append to a struct buf; readers
 * never read past the end and latch an error. Strings are u32 length +
 * bytes (no NUL on the wire; the reader returns a NUL-terminated copy or a
 * pointer+length into the payload). */
void ipc_put_u32(struct buf *b, uint32_t v);
void ipc_put_u64(struct buf *b, uint64_t v);
void ipc_put_str(struct buf *b, const char *s);
void ipc_put_bytes(struct buf *b, const void *p, size_t len);

struct ipc_reader {
	const uint8_t *p;
	size_t left;
	bool error;
};
void ipc_reader_init(struct ipc_reader *r, const struct ipc_msg *msg);
uint32_t ipc_get_u32(struct ipc_reader *r);
uint64_t ipc_get_u64(struct ipc_reader *r);
/* Pointer into the payload, length in *len_r; NULL (and error) if short. */
const uint8_t *ipc_get_bytes(struct ipc_reader *r, size_t *len_r);
/* malloc'd NUL-terminated copy; NULL (and error) if short or it holds NUL. */
char *ipc_get_str(struct ipc_reader *r);
/* 0 if everything was read without error and nothing is left over. */
int ipc_reader_done(const struct ipc_reader *r);

/* Blocking variants for a child before its loop starts and for the CLI:
 * send one message / receive one message (payload malloc'd into *data_r).
 * timeout_ms < 0 waits forever. 0 ok, -1 error with *error_r. */
int ipc_send_blocking(int fd, uint16_t type, uint32_t reqid, int pass_fd,
		      const void *data, size_t len, const char **error_r);
int ipc_recv_blocking(int fd, int timeout_ms, uint16_t *type_r,
		      uint32_t *reqid_r, int *fd_r, uint8_t **data_r,
		      size_t *len_r, const char **error_r);

#endif
