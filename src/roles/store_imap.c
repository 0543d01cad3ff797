/* store's side of IMAP sessions: front hands over a socketpair after a
 * login (IPC_MSG_SESSION_OPEN); store reads it on the loop and runs the
 * session (src/imap/session.c) on the worker pool, one call at a time per
 * session, writing what it produced back. IDLE sessions are polled every
 * second and at once when store delivers to their user.
 * SECURITY: the bytes are a client's, relayed by front; the user name comes
 * from front, which had lookup check the login. It is checked again as an
 * address before it names a directory (maildir_path). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/buf.h"
#include "core/ipc.h"
#include "core/log.h"
#include "core/workpool.h"
#include "core/xmalloc.h"
#include "imap/session.h"
#include "roles/store.h"
#include "store/mailbox.h"
#include "store/maildir.h"

/* Output queued to front above which a session is not run again until it
 * drains (the session itself produces at most about a slice per run). */
#define SESSION_OUTPUT_HIGH (512 * 1024)
/* Input read ahead of the session. */
#define SESSION_INPUT_HIGH (256 * 1024)
#define SESSION_IDLE_POLL_MS 1000
#define IMAP_LINE_MAX 8192
#define IMAP_LITERAL_MAX (64 * 1024)

struct store_session {
	struct store *st;
	char id[24];
	char *user;
	char *tag;
	struct bufferevent *bev;
	struct imap_session *imap;
	struct mbox_user *mu; /* the store imap uses, on the pool only */
	char *dir;            /* the user's mail directory */
	bool text_lag;        /* a job saw mbox_text_lagging */
	struct buf in;  /* bytes taken from the socket, not yet consumed */
	struct buf out; /* what the last job produced */
	enum imap_run_result last;
	bool busy;      /* a job is out on the pool */
	bool closing;   /* flush, then free */
	bool gone;      /* the socket is dead: free once not busy */
	bool want_poll; /* a delivery for this user arrived */
	bool stopping;  /* shutdown asked while busy */
	struct event *poll_ev;
	struct store_session *prev, *next;
};

static void session_schedule(struct store_session *s);

static void
session_unlink(struct store_session *s)
{
	struct store *st = s->st;

	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		st->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	st->nsessions--;
}

/* The session's store handle and SQLite connections are closed on the
 * pool (in order after any job of this session), the rest here. */
static void
free_job(void *arg)
{
	struct store_session *s = arg;

	if (s->imap != NULL)
		imap_session_free(&s->imap);
}

static void
free_done(void *arg)
{
	struct store_session *s = arg;
	struct store *st = s->st;

	buf_free(&s->in);
	buf_free(&s->out);
	free(s->user);
	free(s->tag);
	free(s->dir);
	free(s);
	store_session_gone(st);
}

static void
session_free(struct store_session *s)
{
	log_info(s->id, "event=session-end user=%s", s->user);
	if (s->poll_ev != NULL)
		event_free(s->poll_ev);
	s->poll_ev = NULL;
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	s->bev = NULL;
	session_unlink(s);
	workpool_submit(s->st->pool, s, free_job, free_done, s);
}

/* Hand what the last job produced to front; close once flushed when the
 * session is over. false: s is freed. */
static bool
session_flush(struct store_session *s)
{
	if (s->out.len > 0)
		bufferevent_write(s->bev, s->out.data, s->out.len);
	/* Freed rather than kept: a big FETCH's slices would otherwise stay
	 * allocated for as long as the session lives. */
	buf_free(&s->out);
	if (s->closing) {
		bufferevent_disable(s->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
			session_free(s);
			return false;
		}
	}
	return true;
}

/* After any job: the session is ours again. false: it is over (freed, or
 * closing once flushed). */
static bool
session_job_over(struct store_session *s)
{
	s->busy = false;
	if (s->gone) {
		session_free(s);
		return false;
	}
	if (s->stopping && s->imap != NULL) {
		imap_session_shutdown(s->imap, &s->out);
		s->closing = true;
	}
	return session_flush(s) && !s->closing;
}

/* ---- open ---- */

static void
open_job(void *arg)
{
	struct store_session *s = arg;
	struct imap_session_settings set = {
	    .line_max = IMAP_LINE_MAX,
	    .literal_max = IMAP_LITERAL_MAX,
	    .append_max = s->st->append_max,
	    .idle_poll_ms = SESSION_IDLE_POLL_MS,
	    .hostname = s->st->hostname,
	};
	struct mbox_user *mu = NULL;
	char *dir, *error = NULL;

	dir = maildir_path(s->st->mail_root, s->user, &error);
	if (dir == NULL || mbox_user_open(dir, 0, &mu, &error) != MBOX_OK) {
		log_error(s->id, "event=mailbox-open-failed user=%s error=%s",
		          s->user, error != NULL ? error : "?");
		buf_printf(&s->out,
		           "%s NO [UNAVAILABLE] Mailbox unavailable, try again "
		           "later\r\n",
		           s->tag);
		s->last = IMAP_RUN_CLOSE;
	} else {
		s->imap = imap_session_new(s->user, mu, &set);
		s->mu = mu;
		s->dir = dir;
		dir = NULL;
		imap_session_login_reply(s->imap, s->tag, &s->out);
		s->last = IMAP_RUN_INPUT;
		imap_session_trim(s->imap);
	}
	free(error);
	free(dir);
}

static void
open_done(void *arg)
{
	struct store_session *s = arg;

	if (s->last == IMAP_RUN_CLOSE)
		s->closing = true;
	if (!session_job_over(s))
		return;
	log_info(s->id, "event=session-start user=%s", s->user);
	bufferevent_enable(s->bev, EV_READ);
	session_schedule(s);
}

/* ---- run ---- */

/* On the pool, after the session ran: a store failure it met (I/O,
 * SQLite) has its log line; the client only saw NO [UNAVAILABLE]. */
static void
session_log_error(struct store_session *s)
{
	char *e = imap_session_take_error(s->imap);

	if (e != NULL) {
		log_error(s->id, "event=imap-store-error user=%s error=%s",
		          s->user, e);
		free(e);
	}
}

/* On the pool, when the session waits for its client: what an idle
 * session keeps is what a thousand of them cost. */
static void
session_trim(struct store_session *s)
{
	if (s->in.len == 0)
		buf_free(&s->in);
	imap_session_trim(s->imap);
}

static void
run_job(void *arg)
{
	struct store_session *s = arg;
	size_t used = 0;

	s->last = imap_session_run(s->imap, s->in.data, s->in.len, &used,
	                           &s->out);
	buf_consume(&s->in, used);
	session_log_error(s);
	s->text_lag |= mbox_text_lagging(s->mu);
	if (s->last == IMAP_RUN_INPUT || s->last == IMAP_RUN_IDLE)
		session_trim(s);
}

static void
poll_job(void *arg)
{
	struct store_session *s = arg;

	imap_session_idle_poll(s->imap, &s->out);
	session_log_error(s);
	s->text_lag |= mbox_text_lagging(s->mu);
}

static void
poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct store_session *s = arg;

	(void)fd;
	(void)what;
	s->want_poll = true;
	session_schedule(s);
}

static void
run_done(void *arg)
{
	struct store_session *s = arg;

	if (s->text_lag) {
		s->text_lag = false;
		store_text_lag(s->st, s->dir);
	}
	if (!session_job_over(s))
		return;
	switch (s->last) {
	case IMAP_RUN_CLOSE:
		s->closing = true;
		(void)session_flush(s);
		return;
	case IMAP_RUN_IDLE:
		if (s->poll_ev == NULL) {
			struct timeval tv = {SESSION_IDLE_POLL_MS / 1000,
			                     (SESSION_IDLE_POLL_MS % 1000) *
			                         1000};

			s->poll_ev = event_new(s->st->base, -1, EV_PERSIST,
			                       poll_cb, s);
			event_add(s->poll_ev, &tv);
		}
		break;
	default:
		if (s->poll_ev != NULL) {
			event_free(s->poll_ev);
			s->poll_ev = NULL;
		}
		break;
	}
	session_schedule(s);
}

/* Run the session if there is something for it to do and nobody else is
 * running it: new input, output it stopped for (now drained), or an IDLE
 * poll. */
static void
session_schedule(struct store_session *s)
{
	struct evbuffer *input;
	size_t queued;

	if (s->busy || s->closing || s->gone || s->bev == NULL ||
	    s->imap == NULL)
		return;
	queued = evbuffer_get_length(bufferevent_get_output(s->bev));
	if (queued > SESSION_OUTPUT_HIGH)
		return; /* session_write_cb calls again */
	input = bufferevent_get_input(s->bev);
	if (evbuffer_get_length(input) > 0 && s->in.len < SESSION_INPUT_HIGH) {
		/* The session consumes what it can each run (its parser keeps
		 * partial commands); what it leaves waits here, bounded. */
		size_t n = evbuffer_get_length(input);

		buf_append(&s->in, evbuffer_pullup(input, (ssize_t)n), n);
		evbuffer_drain(input, n);
	}
	if (s->in.len > 0 || s->last == IMAP_RUN_OUTPUT) {
		s->busy = true;
		s->want_poll = false;
		workpool_submit(s->st->pool, s, run_job, run_done, s);
	} else if (s->want_poll && s->last == IMAP_RUN_IDLE) {
		s->busy = true;
		s->want_poll = false;
		workpool_submit(s->st->pool, s, poll_job, run_done, s);
	}
}

/* ---- socket ---- */

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	session_schedule(arg);
}

static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct store_session *s = arg;

	if (s->closing && !s->busy &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		session_free(s);
		return;
	}
	session_schedule(s);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct store_session *s = arg;

	(void)bev;
	if (what & BEV_EVENT_ERROR)
		log_info(s->id, "event=session-io-error error=%s",
		         strerror(errno));
	if (s->busy) {
		s->gone = true;
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
		return;
	}
	session_free(s);
}

void
store_session_open(struct store *st, struct ipc_msg *msg)
{
	struct store_session *s;
	struct ipc_reader r;
	char *service, *user, *tag, *id, *ip;
	uint32_t tls;

	ipc_reader_init(&r, msg);
	service = ipc_get_str(&r);
	user = ipc_get_str(&r);
	tag = ipc_get_str(&r);
	id = ipc_get_str(&r);
	ip = ipc_get_str(&r);
	tls = ipc_get_u32(&r);
	if (ipc_reader_done(&r) < 0 || strcmp(service, "imap") != 0 ||
	    user[0] == '\0' || tag[0] == '\0' || strlen(tag) > 64 ||
	    st->stopping) {
		log_error(NULL, "event=bad-session-open");
		goto out;
	}
	s = xcalloc(1, sizeof(*s));
	s->st = st;
	snprintf(s->id, sizeof(s->id), "%s", id);
	s->user = user;
	s->tag = tag;
	user = tag = NULL;
	buf_init(&s->in, 0);
	buf_init(&s->out, 0);
	s->bev = bufferevent_socket_new(st->base, msg->fd,
	                                BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		free(s->user);
		free(s->tag);
		free(s);
		goto out;
	}
	msg->fd = -1;
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb,
	                  session_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SESSION_INPUT_HIGH);
	bufferevent_enable(s->bev, EV_WRITE);
	s->next = st->sessions;
	if (st->sessions != NULL)
		st->sessions->prev = s;
	st->sessions = s;
	st->nsessions++;
	log_info(s->id, "event=session-open user=%s ip=%s tls=%s", s->user,
	         ip, tls ? "yes" : "no");
	s->busy = true;
	workpool_submit(st->pool, s, open_job, open_done, s);
out:
	free(service);
	free(user);
	free(tag);
	free(id);
	free(ip);
}

void
store_sessions_notify(struct store *st, const char *user)
{
	for (struct store_session *s = st->sessions; s != NULL; s = s->next) {
		if (s->last == IMAP_RUN_IDLE && strcmp(s->user, user) == 0) {
			s->want_poll = true;
			session_schedule(s);
		}
	}
}

void
store_sessions_shutdown(struct store *st)
{
	struct store_session *s, *next;

	for (s = st->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->busy) {
			s->stopping = true;
		} else if (!s->closing && s->imap != NULL) {
			imap_session_shutdown(s->imap, &s->out);
			s->closing = true;
			(void)session_flush(s);
		}
	}
}
