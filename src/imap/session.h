/* An IMAP4rev2/IMAP4rev1 session after login: the authenticated and
 * selected states (RFC 9051 with RFC 3501 compatibility), run against the
 * user's mailbox store (src/store/mailbox.h). A synchronous state machine
 * with no I/O of its own: the store role reads the socket, calls
 * imap_session_run on a worker thread with the bytes that arrived, and
 * writes out what the session produced. One call at a time per session.
 * SECURITY: client input (after login, but still a client); every command
 * goes through src/imap/parser.c with its bounds; output is produced in
 * slices (a FETCH of a large range yields IMAP_RUN_OUTPUT and resumes) so
 * a session never holds more than about IMAP_OUTPUT_SLICE bytes of
 * pending output beyond one message. */
#ifndef TERN_IMAP_SESSION_H
#define TERN_IMAP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define IMAP_OUTPUT_SLICE (256 * 1024)

struct mbox_user;

struct imap_session_settings {
	size_t line_max;      /* command line bound (8192) */
	size_t literal_max;   /* non-APPEND literal bound (64 KiB) */
	size_t append_max;    /* APPENDLIMIT (the message size limit) */
	unsigned idle_poll_ms;/* how often IDLE looks for changes (1000) */
	const char *hostname; /* for the greeting-free login reply text */
};

struct imap_session;

/* user: the canonical address (for logs); store: the opened mailbox store,
 * owned by the session from now on. */
struct imap_session *imap_session_new(const char *user,
                                      struct mbox_user *store,
                                      const struct imap_session_settings *set);
void imap_session_free(struct imap_session **s);
/* The last store failure of the call just made (I/O, SQLite), malloc'd,
 * or NULL: the role logs it. */
char *imap_session_take_error(struct imap_session *s);
/* The session waits for its client (IMAP_RUN_INPUT or IMAP_RUN_IDLE):
 * give back what is cached only for speed. */
void imap_session_trim(struct imap_session *s);

/* The tagged OK that completes the login in front ("TAG OK [CAPABILITY …]
 * Logged in"), written by the session so that the capabilities are the
 * post-login ones. */
void imap_session_login_reply(struct imap_session *s, const char *tag,
                              struct buf *out);

enum imap_run_result {
	IMAP_RUN_INPUT,  /* waiting for more input (all of it consumed) */
	IMAP_RUN_OUTPUT, /* stopped with output to flush; call run again
	                    (with the remaining input) once it is written */
	IMAP_RUN_IDLE,   /* in IDLE: call imap_session_idle_poll every
	                    idle_poll_ms and run when input arrives */
	IMAP_RUN_CLOSE,  /* LOGOUT done or a fatal error: flush and close */
};

/* Process input[0..len) (may be 0 bytes to resume), appending responses
 * to out; *consumed_r: bytes used (the caller keeps the rest). */
enum imap_run_result imap_session_run(struct imap_session *s,
                                      const uint8_t *input, size_t len,
                                      size_t *consumed_r, struct buf *out);
/* During IDLE: report changes to the selected mailbox (EXISTS, EXPUNGE,
 * FETCH FLAGS) into out. Cheap when nothing changed. */
void imap_session_idle_poll(struct imap_session *s, struct buf *out);
/* The server stops: "* BYE" into out. */
void imap_session_shutdown(struct imap_session *s, struct buf *out);
/* The mailbox currently selected (NULL when none), for the role's
 * change notifications. */
const char *imap_session_selected(const struct imap_session *s);

#endif
