/* store: the mailboxes. Local delivery for queue (into the user's mailbox
 * store, fsync'd before it reports) and IMAP sessions after login (handed
 * over by front, run in store_imap.c). Disk work runs on a worker pool so
 * one slow mailbox never stalls the others.
 * SECURITY: runs as its own unprivileged user; only it opens mailboxes.
 * It takes a message descriptor and recipient addresses from queue; paths
 * are built and checked in src/store/maildir.c and src/store/mailbox.c. */
#include <event2/event.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/workpool.h"
#include "core/xmalloc.h"
#include "roles/roles.h"
#include "roles/store.h"
#include "queue/spool.h"
#include "store/ledger.h"
#include "store/mailbox.h"
#include "store/maildir.h"

#define DELIVER_RCPTS_MAX 10000
/* Deliveries to one recipient that one worker takes at once, as one group
 * commit (mbox_deliver_many). */
#define DELIVER_BATCH_MAX 64
#define STORE_THREADS 4
/* Header fields queue may ask to put first (front's check results). */
#define DELIVER_HEADERS_MAX (64 * 1024)

/* Mailbox stores of recent recipients, kept open for their next delivery:
 * opening one costs index.db's checks and statements, and the last close
 * a checkpoint, an fsync and a new WAL file next time, for every message.
 * A handle is taken out while a worker uses it, and is used again only
 * if its directory and index.db are still the same files. */
#define HANDLES_MAX 32
#define HANDLE_IDLE_MS 60000
/* A kept handle gives back its caches (mbox_user_trim) once unused this
 * long, not after every delivery: under load, the next batch for the same
 * user came within milliseconds and made them again, page by page. */
#define HANDLE_TRIM_MS 1000
/* The text index is caught up one user at a time, in slices of this
 * much work, so deliveries and sessions keep their share of the pool. */
#define TEXT_SLICE_MS 100
#define TEXT_TODO_MAX 1024

struct store_handle {
	char *dir;
	struct mbox_user *u;
	dev_t dev;
	ino_t dir_ino, db_ino;
	uint64_t used_ms;
	bool trimmed;
};

struct store_handles {
	pthread_mutex_t mu;
	struct store_handle h[HANDLES_MAX];
	size_t n;
	/* On the loop: the trim timer, a trim job out, and whether the
	 * job left handles to trim later (set by the job, read after). */
	struct event *trim_ev;
	bool trim_running;
	bool trim_again;
};

/* The identity of dir and its index.db; false when either is gone. */
static bool
handle_stat(const char *dir, dev_t *dev_r, ino_t *dir_ino_r, ino_t *db_ino_r)
{
	struct stat sd, sb;
	char *db = xasprintf("%s/index.db", dir);
	bool ok = stat(dir, &sd) == 0 && stat(db, &sb) == 0;

	free(db);
	if (ok) {
		*dev_r = sd.st_dev;
		*dir_ino_r = sd.st_ino;
		*db_ino_r = sb.st_ino;
	}
	return ok;
}

static void
handle_close(struct store_handle *h)
{
	mbox_user_close(&h->u);
	free(h->dir);
	*h = (struct store_handle){0};
}

/* On a worker: dir's kept store, or NULL. */
static struct mbox_user *
handles_take(struct store *st, const char *dir)
{
	struct store_handles *hs = st->handles;
	struct store_handle h = {0};
	dev_t dev;
	ino_t dir_ino, db_ino;

	pthread_mutex_lock(&hs->mu);
	for (size_t i = 0; i < hs->n; i++) {
		if (strcmp(hs->h[i].dir, dir) == 0) {
			h = hs->h[i];
			hs->h[i] = hs->h[--hs->n];
			break;
		}
	}
	pthread_mutex_unlock(&hs->mu);
	if (h.u == NULL)
		return NULL;
	if (!handle_stat(dir, &dev, &dir_ino, &db_ino) || dev != h.dev ||
	    dir_ino != h.dir_ino || db_ino != h.db_ino) {
		handle_close(&h); /* moved, removed or reindexed meanwhile */
		return NULL;
	}
	free(h.dir);
	return h.u;
}

/* On a worker: keep u for dir's next delivery; the least recently used
 * and the long idle ones are closed. */
static void
handles_put(struct store *st, const char *dir, struct mbox_user *u)
{
	struct store_handles *hs = st->handles;
	struct store_handle h = {.u = u}, out[HANDLES_MAX + 1];
	uint64_t now = clock_mono_ms();
	size_t nout = 0;

	if (!handle_stat(dir, &h.dev, &h.dir_ino, &h.db_ino)) {
		mbox_user_close(&u);
		return;
	}
	h.dir = xstrdup(dir);
	h.used_ms = now;
	pthread_mutex_lock(&hs->mu);
	for (size_t i = 0; i < hs->n;) {
		if (now - hs->h[i].used_ms > HANDLE_IDLE_MS) {
			out[nout++] = hs->h[i];
			hs->h[i] = hs->h[--hs->n];
		} else {
			i++;
		}
	}
	if (hs->n == HANDLES_MAX) {
		size_t lru = 0;

		for (size_t i = 1; i < hs->n; i++)
			if (hs->h[i].used_ms < hs->h[lru].used_ms)
				lru = i;
		out[nout++] = hs->h[lru];
		hs->h[lru] = hs->h[--hs->n];
	}
	hs->h[hs->n++] = h;
	pthread_mutex_unlock(&hs->mu);
	for (size_t i = 0; i < nout; i++)
		handle_close(&out[i]);
}

/* On a worker: the caches of the handles unused for HANDLE_TRIM_MS
 * given back; trim_again when others are to be trimmed later. */
static void
handles_trim_job(void *arg)
{
	struct store_handles *hs = ((struct store *)arg)->handles;
	uint64_t now = clock_mono_ms();

	pthread_mutex_lock(&hs->mu);
	hs->trim_again = false;
	for (size_t i = 0; i < hs->n; i++) {
		if (hs->h[i].trimmed)
			continue;
		if (now - hs->h[i].used_ms >= HANDLE_TRIM_MS) {
			mbox_user_trim(hs->h[i].u, MBOX_TRIM_CACHE);
			hs->h[i].trimmed = true;
		} else {
			hs->trim_again = true;
		}
	}
	pthread_mutex_unlock(&hs->mu);
}

/* On the loop: a trim in HANDLE_TRIM_MS, unless one is due already. */
static void
handles_trim_later(struct store *st)
{
	struct store_handles *hs = st->handles;
	struct timeval tv = {HANDLE_TRIM_MS / 1000,
	                     (HANDLE_TRIM_MS % 1000) * 1000};

	if (st->stopping || hs->trim_running ||
	    evtimer_pending(hs->trim_ev, NULL))
		return;
	evtimer_add(hs->trim_ev, &tv);
}

static void
handles_trim_done(void *arg)
{
	struct store *st = arg;

	st->handles->trim_running = false;
	if (st->handles->trim_again)
		handles_trim_later(st);
	store_session_gone(st);
}

static void
handles_trim_cb(evutil_socket_t fd, short what, void *arg)
{
	struct store *st = arg;

	(void)fd;
	(void)what;
	if (st->stopping)
		return;
	st->handles->trim_running = true;
	workpool_submit(st->pool, NULL, handles_trim_job, handles_trim_done,
	                st);
}

/* At exit, with no delivery out. */
static void
handles_close_all(struct store *st)
{
	struct store_handles *hs = st->handles;

	if (hs == NULL)
		return;
	if (hs->trim_ev != NULL)
		event_free(hs->trim_ev);
	hs->trim_ev = NULL;
	for (size_t i = 0; i < hs->n; i++)
		handle_close(&hs->h[i]);
	hs->n = 0;
}

/* One DELIVER request from queue, out on the pool. */
struct delivery {
	struct store *st;
	int fd;
	char *id;
	char *rp;
	char *headers; /* from front's checks, put after Delivered-To */
	bool junk;     /* front's checks said: into Junk */
	char **rcpts;
	size_t n;
	bool *todo;               /* not yet in the ledger */
	enum maildir_result *results;
	char **errors;
	size_t left; /* recipients still out in a rcpt_queue */
};

/* One recipient of a delivery, waiting in its rcpt_queue. */
struct rcpt_task {
	struct delivery *d;
	size_t i;
	struct rcpt_task *next;
};

/* The deliveries to one recipient address: the loop appends to pending;
 * one worker at a time takes a batch of them (one mbox_deliver_many), so
 * the messages that arrive while a user's group commit runs go into the
 * next one together, and two workers never wait on one index's lock. */
struct rcpt_queue {
	struct store *st;
	char *rcpt;
	struct rcpt_task *pending, **tail;
	struct rcpt_task *batch; /* on a worker; NULL when idle */
	char *text_lag;          /* the batch's user dir, its text index lags */
	struct rcpt_queue *next;
};

static void
delivery_free(struct delivery *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->rcpts[i]);
		free(d->errors[i]);
	}
	if (d->fd >= 0)
		close(d->fd);
	free(d->rcpts);
	free(d->errors);
	free(d->results);
	free(d->todo);
	free(d->id);
	free(d->rp);
	free(d->headers);
	free(d);
}

/* On a worker: the batch of q, delivered to the recipient's mailbox store
 * in one group commit. Each task writes only its own result slot. */
static void
rcpt_batch_job(void *arg)
{
	struct rcpt_queue *q = arg;
	struct mbox_delivery *items;
	struct mbox_user *u = NULL;
	struct rcpt_task *t;
	enum maildir_result r;
	char *dir = NULL, *error = NULL;
	size_t n = 0, k;
	int ret;

	for (t = q->batch; t != NULL; t = t->next)
		n++;
	r = maildir_locate(q->st->mail_root, q->rcpt, &dir, &error);
	if (r != MAILDIR_OK) {
		for (t = q->batch; t != NULL; t = t->next) {
			t->d->results[t->i] = r;
			t->d->errors[t->i] =
			    xstrdup(error != NULL ? error : "no mailbox");
		}
		free(error);
		return;
	}
	items = xcalloc(n, sizeof(*items));
	for (t = q->batch, k = 0; t != NULL; t = t->next, k++) {
		struct delivery *d = t->d;

		items[k].name = d->junk ? "Junk" : "INBOX";
		items[k].prefix =
		    xasprintf("Return-Path: <%s>\r\nDelivered-To: %s\r\n%s",
		              d->rp, q->rcpt, d->headers);
		items[k].msg_fd = d->fd;
	}
	if ((u = handles_take(q->st, dir)) != NULL)
		ret = MBOX_OK;
	else
		ret = mbox_user_open(dir, 0, &u, &error);
	if (ret == MBOX_OK) {
		bool index_failed = false;

		(void)mbox_deliver_many(u, items, n);
		for (k = 0; k < n; k++)
			index_failed |= items[k].rc == MBOX_ERR_TEMP;
		if (mbox_text_lagging(u))
			q->text_lag = xstrdup(dir);
		/* A store that failed is opened afresh next time. */
		if (index_failed)
			mbox_user_close(&u);
		else
			handles_put(q->st, dir, u);
	}
	for (t = q->batch, k = 0; t != NULL; t = t->next, k++) {
		struct delivery *d = t->d;

		if (ret != MBOX_OK) {
			items[k].rc = ret;
			items[k].error =
			    xstrdup(error != NULL ? error : "mailbox error");
		}
		if (items[k].rc == MBOX_OK) {
			log_info(d->id,
			         "event=stored to=<%s> mailbox=%s uid=%u",
			         q->rcpt, items[k].name, items[k].uid);
			d->results[t->i] = MAILDIR_OK;
		} else {
			d->results[t->i] = MAILDIR_TEMPFAIL;
			d->errors[t->i] = items[k].error != NULL
			                      ? items[k].error
			                      : xstrdup("mailbox error");
			items[k].error = NULL;
		}
		free((char *)items[k].prefix);
		free(items[k].error);
	}
	free(items);
	free(error);
	free(dir);
}

static void rcpt_batch_done(void *arg);

/* On the loop: the next batch of q out on the pool. */
static void
rcpt_queue_run(struct rcpt_queue *q)
{
	struct rcpt_task **end = &q->pending;

	for (size_t n = 0; *end != NULL && n < DELIVER_BATCH_MAX; n++)
		end = &(*end)->next;
	q->batch = q->pending;
	q->pending = *end;
	*end = NULL;
	if (q->pending == NULL)
		q->tail = &q->pending;
	workpool_submit(q->st->pool, q, rcpt_batch_job, rcpt_batch_done, q);
}

static void delivery_record(struct delivery *d, uint64_t now);
static void delivery_reply(struct delivery *d);

/* On the loop: the batch's deliveries whose every recipient is done go
 * into the ledger, in one transaction, and are then answered; q runs
 * again or goes away. */
static void
rcpt_batch_done(void *arg)
{
	struct rcpt_queue *q = arg;
	struct store *st = q->st;
	struct rcpt_task *t, *next;
	struct delivery *done[DELIVER_BATCH_MAX];
	uint64_t now = clock_wall_ms();
	size_t ndone = 0;

	ledger_begin(st->ledger);
	for (t = q->batch; t != NULL; t = next) {
		next = t->next;
		if (--t->d->left == 0) { /* its last recipient */
			delivery_record(t->d, now);
			done[ndone++] = t->d;
		}
		free(t);
	}
	q->batch = NULL;
	if (q->text_lag != NULL) {
		store_text_lag(st, q->text_lag);
		xfree(&q->text_lag);
	}
	ledger_prune(st->ledger, now);
	(void)ledger_commit(st->ledger);
	handles_trim_later(st);
	if (q->pending != NULL) {
		rcpt_queue_run(q);
	} else {
		for (struct rcpt_queue **p = &st->rcpt_queues; *p != NULL;
		     p = &(*p)->next) {
			if (*p == q) {
				*p = q->next;
				break;
			}
		}
		free(q->rcpt);
		free(q);
	}
	/* Last: the last reply may end the process when stopping. */
	for (size_t i = 0; i < ndone; i++)
		delivery_reply(done[i]);
}

/* On the loop: recipient i of d into its recipient's queue. */
static void
rcpt_enqueue(struct store *st, struct delivery *d, size_t i)
{
	struct rcpt_task *t = xcalloc(1, sizeof(*t));
	struct rcpt_queue *q;

	t->d = d;
	t->i = i;
	for (q = st->rcpt_queues; q != NULL; q = q->next)
		if (strcmp(q->rcpt, d->rcpts[i]) == 0)
			break;
	if (q == NULL) {
		q = xcalloc(1, sizeof(*q));
		q->st = st;
		q->rcpt = xstrdup(d->rcpts[i]);
		q->tail = &q->pending;
		q->next = st->rcpt_queues;
		st->rcpt_queues = q;
	}
	*q->tail = t;
	q->tail = &t->next;
	d->left++;
	if (q->batch == NULL)
		rcpt_queue_run(q);
}

/* On the loop: the recipients d delivered, into the ledger (before queue
 * hears of them). */
static void
delivery_record(struct delivery *d, uint64_t now)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->todo[i] && d->results[i] == MAILDIR_OK)
			ledger_record(d->st->ledger, d->id, d->rcpts[i], now);
}

/* On the loop, once recorded: answer queue, wake IDLE sessions. */
static void
delivery_reply(struct delivery *d)
{
	struct store *st = d->st;
	struct ipc_peer *queue = child_peer(st->ctx, "queue");
	struct buf b;

	buf_init(&b, 0);
	ipc_put_str(&b, d->id);
	ipc_put_u32(&b, (uint32_t)d->n);
	for (size_t i = 0; i < d->n; i++) {
		if (d->todo[i] && d->results[i] == MAILDIR_OK)
			store_sessions_notify(st, d->rcpts[i]);
		ipc_put_str(&b, d->rcpts[i]);
		ipc_put_u32(&b, d->results[i] == MAILDIR_OK         ? 0
		                : d->results[i] == MAILDIR_TEMPFAIL ? 1
		                                                    : 2);
		ipc_put_str(&b, d->errors[i] != NULL ? d->errors[i] : "");
	}
	/* Without queue (it restarted) the answer is lost; queue asks again
	 * and the ledger says "already delivered". */
	if (queue != NULL)
		ipc_send(queue, IPC_MSG_DELIVERED, 0, -1, b.data, b.len);
	buf_free(&b);
	delivery_free(d);
	st->deliveries--;
	store_session_gone(st);
}

static const struct ipc_rule queue_rules[] = {
    {IPC_MSG_DELIVER, 12, IPC_MAX_PAYLOAD, IPC_FD_REQUIRED},
    {IPC_MSG_PING, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_PONG, 0, 0, IPC_FD_NEVER},
    {0, 0, 0, IPC_FD_NEVER},
};

static const struct ipc_rule front_rules[] = {
    {IPC_MSG_SESSION_OPEN, 24, 4096, IPC_FD_REQUIRED},
    {IPC_MSG_PING, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_PONG, 0, 0, IPC_FD_NEVER},
    {0, 0, 0, IPC_FD_NEVER},
};

static const char *
store_user(const struct config *cfg)
{
	return cfg->store_user;
}

static void
delivery_nothing(void *arg)
{
	(void)arg;
}

/* On the loop: a delivery every recipient of which the ledger knew. */
static void
delivery_answer(void *arg)
{
	delivery_reply(arg);
}

static void
deliver(struct store *st, struct ipc_msg *msg)
{
	struct delivery *d;
	struct ipc_reader r;
	char *id, *rp;
	uint32_t n;

	ipc_reader_init(&r, msg);
	id = ipc_get_str(&r);
	rp = ipc_get_str(&r);
	n = ipc_get_u32(&r);
	/* rp becomes the Return-Path line: queue never sends a control
	 * byte in it, and store does not trust it to. */
	if (id == NULL || rp == NULL || r.error || n == 0 ||
	    n > DELIVER_RCPTS_MAX || !maildir_header_value_ok(rp)) {
		log_error(NULL, "event=bad-deliver-request");
		free(id);
		free(rp);
		return;
	}
	d = xcalloc(1, sizeof(*d));
	d->st = st;
	d->id = id;
	d->rp = rp;
	d->n = n;
	d->rcpts = xcalloc(n, sizeof(*d->rcpts));
	d->errors = xcalloc(n, sizeof(*d->errors));
	d->results = xcalloc(n, sizeof(*d->results));
	d->todo = xcalloc(n, sizeof(*d->todo));
	d->fd = -1;
	for (uint32_t i = 0; i < n; i++)
		d->rcpts[i] = ipc_get_str(&r);
	d->headers = ipc_get_str(&r);
	d->junk = (ipc_get_u32(&r) & SPOOL_FLAG_JUNK) != 0;
	if (ipc_reader_done(&r) < 0 || d->headers == NULL ||
	    strlen(d->headers) > DELIVER_HEADERS_MAX) {
		log_error(id, "event=bad-deliver-request");
		delivery_free(d);
		return;
	}
	d->fd = msg->fd;
	msg->fd = -1;
	/* queue asks again after a crash: the ledger knows what went in. */
	for (uint32_t i = 0; i < n; i++) {
		if (ledger_seen(st->ledger, id, d->rcpts[i]) == 1) {
			log_info(id, "event=already-delivered to=<%s>",
			         d->rcpts[i]);
			d->results[i] = MAILDIR_OK;
		} else {
			d->todo[i] = true;
		}
	}
	st->deliveries++;
	/* Each recipient waits in its own queue (the descriptor is shared:
	 * every read is a pread from offset 0). */
	for (uint32_t i = 0; i < n; i++)
		if (d->todo[i])
			rcpt_enqueue(st, d, i);
	/* All in the ledger already: answered from the loop, not now. */
	if (d->left == 0)
		workpool_submit(st->pool, NULL, delivery_nothing,
		                delivery_answer, d);
}

static const struct ipc_rule *
store_peer_rules(const char *peer)
{
	if (strcmp(peer, "queue") == 0)
		return queue_rules;
	if (strcmp(peer, "front") == 0)
		return front_rules;
	return NULL;
}

static void
store_peer_message(struct child_ctx *ctx, struct child_link *link,
                   struct ipc_msg *msg)
{
	(void)link;
	if (msg->type == IPC_MSG_DELIVER)
		deliver(ctx->role, msg);
	else if (msg->type == IPC_MSG_SESSION_OPEN)
		store_session_open(ctx->role, msg);
}

static int
store_start(struct child_ctx *ctx, char **error_r)
{
	struct store *st = xcalloc(1, sizeof(*st));
	char *path;

	ctx->role = st;
	st->ctx = ctx;
	st->base = ctx->base;
	/* One malloc arena for the store's threads, set before the pool
	 * starts them. With one each, a command on a worker that had not
	 * run one for a while met fresh memory: a SELECT of 100,000
	 * messages took 12-19 ms instead of 4 (one page fault per 4 KiB,
	 * 20 us each on a VM), about one in five. Two CPUs' worth of
	 * workers hardly contend for the lock; tcache serves most calls. */
	(void)mallopt(M_ARENA_MAX, 1);
	st->mail_root = xasprintf("%s/mail", ctx->cfg->data_dir);
	st->hostname = xstrdup(ctx->cfg->hostname);
	st->append_max = (size_t)ctx->cfg->message_size_max;
	if (role_check_dir(ctx->cfg, "mail", error_r) < 0)
		return -1;
	path = xasprintf("%s/.delivered.db", st->mail_root);
	st->ledger = ledger_open(path, error_r);
	free(path);
	if (st->ledger == NULL)
		return -1;
	st->pool = workpool_new(ctx->base, STORE_THREADS);
	st->handles = xcalloc(1, sizeof(*st->handles));
	pthread_mutex_init(&st->handles->mu, NULL);
	st->handles->trim_ev = evtimer_new(st->base, handles_trim_cb, st);
	return 0;
}

static void
store_message(struct child_ctx *ctx, struct ipc_msg *msg)
{
	(void)ctx;
	log_warn(NULL, "event=unexpected-message type=%u", msg->type);
}

/* ---- the text index, caught up in the background ---- */

/* A user whose text index lacks messages; while it is being worked on,
 * st->text_running. */
struct text_todo {
	struct store *st;
	char *dir;
	bool again;     /* lagged anew while running */
	bool more;      /* the slice ended with work left */
	size_t indexed; /* in all slices so far */
	uint64_t start; /* ms */
	char *error;
	struct text_todo *next;
};

static void text_kick(struct store *st);

/* On a worker: one slice of catching up. */
static void
text_job(void *arg)
{
	struct text_todo *t = arg;
	struct mbox_user *u;
	uint64_t start = clock_mono_ms();
	size_t n;
	int rc;

	t->more = false;
	if ((u = handles_take(t->st, t->dir)) == NULL &&
	    mbox_user_open(t->dir, 0, &u, &t->error) != MBOX_OK)
		return;
	do {
		rc = mbox_text_catch_up(u, &t->more, &n, &t->error);
		t->indexed += n;
	} while (rc == MBOX_OK && t->more &&
	         clock_mono_ms() - start < TEXT_SLICE_MS);
	(void)mbox_text_lagging(u); /* its own catching up */
	if (rc == MBOX_OK)
		handles_put(t->st, t->dir, u);
	else
		mbox_user_close(&u);
}

static void
text_todo_free(struct text_todo *t)
{
	free(t->dir);
	free(t->error);
	free(t);
}

/* On the loop: the slice is over; the user goes to the back of the line
 * when it has more, so one big mailbox does not hold up the others. */
static void
text_done(void *arg)
{
	struct text_todo *t = arg, **p;
	struct store *st = t->st;

	st->text_running = NULL;
	handles_trim_later(st);
	if (t->error != NULL) {
		log_error(NULL, "event=text-index-failed dir=%s error=%s",
		          t->dir, t->error);
		text_todo_free(t);
	} else if ((t->more || t->again) && !st->stopping) {
		t->again = false;
		for (p = &st->text_todo; *p != NULL; p = &(*p)->next)
			;
		*p = t;
	} else {
		if (t->indexed > 0)
			log_info(
			    NULL,
			    "event=text-indexed dir=%s messages=%zu ms=%llu",
			    t->dir, t->indexed,
			    (unsigned long long)(clock_mono_ms() - t->start));
		text_todo_free(t);
	}
	text_kick(st);
	store_session_gone(st);
}

static void
text_kick(struct store *st)
{
	struct text_todo *t = st->text_todo;

	if (st->text_running != NULL || t == NULL || st->stopping)
		return;
	st->text_todo = t->next;
	t->next = NULL;
	st->text_running = t;
	workpool_submit(st->pool, NULL, text_job, text_done, t);
}

void
store_text_lag(struct store *st, const char *dir)
{
	struct text_todo *t, **p;
	size_t n = 0;

	if (st->stopping)
		return;
	if (st->text_running != NULL &&
	    strcmp(st->text_running->dir, dir) == 0) {
		st->text_running->again = true;
		return;
	}
	for (p = &st->text_todo; *p != NULL; p = &(*p)->next, n++)
		if (strcmp((*p)->dir, dir) == 0)
			return;
	if (n >= TEXT_TODO_MAX)
		return; /* its next SELECT or delivery asks again */
	t = xcalloc(1, sizeof(*t));
	t->st = st;
	t->dir = xstrdup(dir);
	t->start = clock_mono_ms();
	*p = t;
	text_kick(st);
}

void
store_session_gone(struct store *st)
{
	if (st->stopping && st->deliveries == 0 && st->nsessions == 0 &&
	    workpool_pending(st->pool) == 0) {
		handles_close_all(st);
		child_exit(st->ctx);
	}
}

static void
store_shutdown(struct child_ctx *ctx)
{
	struct store *st = ctx->role;

	/* Deliveries out on the pool finish and are answered; sessions
	 * get a BYE. The parent's shutdown timeout bounds the wait. */
	st->stopping = true;
	while (st->text_todo != NULL) {
		struct text_todo *t = st->text_todo;

		st->text_todo = t->next;
		text_todo_free(t);
	}
	store_sessions_shutdown(st);
	store_session_gone(st);
}

const struct role_ops role_store = {
    .name = "store",
    .user = store_user,
    .chroot = false,
    .start = store_start,
    .message = store_message,
    .shutdown = store_shutdown,
    .peer_rules = store_peer_rules,
    .peer_message = store_peer_message,
};
