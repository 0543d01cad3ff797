/* ipc: typed, length-prefixed messages with descriptor passing between
 * tern's processes, on a libevent loop or blocking (see ipc.h).
 * SECURITY: the peer may be compromised. Each header is checked against the
 * type's rule before its payload is awaited; input is held in a buffer
 * bounded by IPC_MAX_PAYLOAD, output by IPC_MAX_OUTPUT; received descriptors
 * are bounded and each must be claimed by the message it came with. Nothing
 * a peer sends aborts this process: it only ends the link. */
#include "core/ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/log.h"
#include "core/xmalloc.h"

/* Descriptors received but not yet claimed by their message. One is the
 * most a well-behaved peer can have in flight (it arrives with the first
 * byte of its message); the rest is slack for one recvmsg. */
#define IPC_MAX_FDS 16
#define IPC_ROLE_NAME_MAX 64
#define IPC_READ_CHUNK (64 * 1024)
#define IPC_WHY_MAX 160
#define IPC_ERROR_MAX 128

/* One queued message: header and payload in one block. fd (or -1) goes
 * with the first byte and is closed once sent. */
struct ipc_out {
	struct ipc_out *next;
	int fd;
	size_t off;
	size_t len;
	uint8_t data[];
};

struct ipc_peer {
	int fd; /* -1 once the link is down */
	char *name;
	char *remote_name; /* from the peer's HELLO */
	const struct ipc_rule *rules;
	ipc_msg_fn *on_msg;
	ipc_close_fn *on_close;
	void *ctx;
	struct event *ev_read;
	struct event *ev_write;
	struct event *ev_close; /* delivers on_close from the loop */

	struct buf in;
	int fds[IPC_MAX_FDS]; /* FIFO of received descriptors */
	size_t fd_head;
	size_t fd_count;

	struct ipc_out *out_head;
	struct ipc_out *out_tail;
	size_t out_bytes;

	bool hello_seen;
	bool open;
	/* ipc_peer_free ran inside one of our callbacks: the memory goes
	 * when the outermost callback returns. */
	bool freed;
	unsigned busy;
	char why[IPC_WHY_MAX];
};

/* Received with one recvmsg. */
struct ipc_fds {
	int fd[IPC_MAX_FDS];
	size_t n;
	bool lost; /* more arrived than fit: those were closed */
};

static const struct ipc_rule ipc_hello_rule = {
    IPC_MSG_HELLO,
    4,
    8 + IPC_ROLE_NAME_MAX,
    IPC_FD_NEVER,
};

static _Thread_local char ipc_error[IPC_ERROR_MAX];

static const char *__attribute__((format(printf, 1, 2)))
ipc_errorf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(ipc_error, sizeof(ipc_error), fmt, ap);
	va_end(ap);
	return ipc_error;
}

static void
ipc_close_fd(int *fd)
{
	if (*fd >= 0) {
		(void)close(*fd);
		*fd = -1;
	}
}

static void
ipc_close_fds(struct ipc_fds *f)
{
	for (size_t i = 0; i < f->n; i++)
		ipc_close_fd(&f->fd[i]);
	f->n = 0;
}

static void
ipc_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
ipc_be32(uint8_t *p, uint32_t v)
{
	ipc_be16(p, (uint16_t)(v >> 16));
	ipc_be16(p + 2, (uint16_t)v);
}

static uint16_t
ipc_get_be16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t
ipc_get_be32(const uint8_t *p)
{
	return (uint32_t)ipc_get_be16(p) << 16 | ipc_get_be16(p + 2);
}

/* --- framing --- */

void
ipc_header_encode(uint8_t out[IPC_HEADER_SIZE], uint32_t len, uint16_t type,
                  uint16_t flags, uint32_t reqid)
{
	ipc_be32(out, len);
	ipc_be16(out + 4, type);
	ipc_be16(out + 6, flags);
	ipc_be32(out + 8, reqid);
}

int
ipc_header_decode(const uint8_t *in, size_t inlen, uint32_t *len_r,
                  uint16_t *type_r, uint16_t *flags_r, uint32_t *reqid_r,
                  const char **error_r)
{
	uint32_t len;
	uint16_t flags;

	if (inlen < IPC_HEADER_SIZE)
		return 1;
	len = ipc_get_be32(in);
	flags = ipc_get_be16(in + 6);
	if (len > IPC_MAX_PAYLOAD) {
		*error_r = ipc_errorf("payload of %u bytes over the bound",
		                      (unsigned)len);
		return -1;
	}
	if ((flags & ~IPC_FLAG_FD) != 0) {
		*error_r = ipc_errorf("unknown flags 0x%04x", (unsigned)flags);
		return -1;
	}
	*len_r = len;
	*type_r = ipc_get_be16(in + 4);
	*flags_r = flags;
	*reqid_r = ipc_get_be32(in + 8);
	return 0;
}

/* --- payload writers and readers --- */

/* Payloads are built in an unbounded buf (ipc_send enforces the bound), so
 * a failed append is a caller's bug, not something a peer can cause. */
static void
ipc_put_raw(struct buf *b, const void *p, size_t len)
{
	if (buf_append(b, p, len) < 0) {
		log_error(NULL, "event=bug where=ipc_put len=%zu max=%zu", len,
		          b->max);
		abort();
	}
}

void
ipc_put_u32(struct buf *b, uint32_t v)
{
	uint8_t p[4];

	ipc_be32(p, v);
	ipc_put_raw(b, p, sizeof(p));
}

void
ipc_put_u64(struct buf *b, uint64_t v)
{
	ipc_put_u32(b, (uint32_t)(v >> 32));
	ipc_put_u32(b, (uint32_t)v);
}

void
ipc_put_bytes(struct buf *b, const void *p, size_t len)
{
	if (len > UINT32_MAX) {
		log_error(NULL, "event=bug where=ipc_put_bytes len=%zu", len);
		abort();
	}
	ipc_put_u32(b, (uint32_t)len);
	ipc_put_raw(b, p, len);
}

void
ipc_put_str(struct buf *b, const char *s)
{
	ipc_put_bytes(b, s, strlen(s));
}

void
ipc_reader_init(struct ipc_reader *r, const struct ipc_msg *msg)
{
	r->p = msg->data;
	r->left = msg->len;
	r->error = false;
}

/* Take n bytes, or latch the error. */
static bool
ipc_take(struct ipc_reader *r, size_t n, const uint8_t **p_r)
{
	if (r->error || r->left < n) {
		r->error = true;
		return false;
	}
	*p_r = r->p;
	r->p += n;
	r->left -= n;
	return true;
}

uint32_t
ipc_get_u32(struct ipc_reader *r)
{
	const uint8_t *p;

	return ipc_take(r, 4, &p) ? ipc_get_be32(p) : 0;
}

uint64_t
ipc_get_u64(struct ipc_reader *r)
{
	uint64_t hi = ipc_get_u32(r);

	return hi << 32 | ipc_get_u32(r);
}

const uint8_t *
ipc_get_bytes(struct ipc_reader *r, size_t *len_r)
{
	const uint8_t *p;
	uint32_t len = ipc_get_u32(r);

	*len_r = 0;
	if (!ipc_take(r, len, &p))
		return NULL;
	*len_r = len;
	/* An empty field still gets a usable pointer. */
	return p != NULL ? p : (const uint8_t *)"";
}

char *
ipc_get_str(struct ipc_reader *r)
{
	size_t len;
	const uint8_t *p = ipc_get_bytes(r, &len);

	if (p == NULL)
		return NULL;
	if (memchr(p, '\0', len) != NULL) {
		r->error = true;
		return NULL;
	}
	return xstrndup((const char *)p, len);
}

int
ipc_reader_done(const struct ipc_reader *r)
{
	return r->error || r->left != 0 ? -1 : 0;
}

/* --- socket primitives, shared by the loop and the blocking calls --- */

/* One sendmsg; pass_fd (unless -1) rides on the first byte. EINTR is
 * retried; SIGPIPE is never raised. */
static ssize_t
ipc_sendmsg(int fd, const uint8_t *p, size_t len, int pass_fd)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} cmsg;
	struct iovec iov = {(void *)p, len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (pass_fd >= 0) {
		memset(&cmsg, 0, sizeof(cmsg));
		mh.msg_control = cmsg.buf;
		mh.msg_controllen = sizeof(cmsg.buf);
		cmsg.hdr.cmsg_level = SOL_SOCKET;
		cmsg.hdr.cmsg_type = SCM_RIGHTS;
		cmsg.hdr.cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(&cmsg.hdr), &pass_fd, sizeof(int));
	}
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n;
}

/* Collect the SCM_RIGHTS descriptors of one received message. */
static void
ipc_collect_fds(struct msghdr *mh, struct ipc_fds *fds)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c != NULL;
	     c = CMSG_NXTHDR(mh, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (fds->n < IPC_MAX_FDS) {
				fds->fd[fds->n++] = fd;
			} else {
				(void)close(fd);
				fds->lost = true;
			}
		}
	}
	if ((mh->msg_flags & MSG_CTRUNC) != 0)
		fds->lost = true;
}

/* One recvmsg into p; descriptors are added to fds. Bytes, 0 at EOF, -1
 * with errno (EINTR is retried). */
static ssize_t
ipc_recvmsg(int fd, uint8_t *p, size_t len, struct ipc_fds *fds)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
	} cmsg;
	struct iovec iov = {p, len};
	struct msghdr mh;
	ssize_t n;
	int flags = 0;

#ifdef MSG_CMSG_CLOEXEC
	/* Received descriptors must not leak into a re-exec'd child. */
	flags |= MSG_CMSG_CLOEXEC;
#endif
	do {
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cmsg.buf;
		mh.msg_controllen = sizeof(cmsg.buf);
		n = recvmsg(fd, &mh, flags);
	} while (n < 0 && errno == EINTR);
	if (n >= 0)
		ipc_collect_fds(&mh, fds);
	return n;
}

static bool
ipc_would_block(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK;
}

static int64_t
ipc_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until deadline (< 0: forever). 1 ready, 0 timed
 * out, -1 error. */
static int
ipc_poll(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	int64_t left;
	int r;

	for (;;) {
		left = -1;
		if (deadline >= 0) {
			left = deadline - ipc_now_ms();
			if (left < 0)
				left = 0;
		}
		r = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (r >= 0 || errno != EINTR)
			return r > 0 ? 1 : r;
	}
}

/* --- the peer on the loop --- */

static void ipc_on_read(evutil_socket_t fd, short what, void *arg);
static void ipc_on_write(evutil_socket_t fd, short what, void *arg);
static void ipc_on_close(evutil_socket_t fd, short what, void *arg);

/* Stop all I/O and release what the link holds; the peer's memory (and the
 * input of a message being delivered) stays until ipc_destroy. */
static void
ipc_teardown(struct ipc_peer *peer)
{
	struct ipc_out *o;

	peer->open = false;
	(void)event_del(peer->ev_read);
	(void)event_del(peer->ev_write);
	ipc_close_fd(&peer->fd);
	while ((o = peer->out_head) != NULL) {
		peer->out_head = o->next;
		ipc_close_fd(&o->fd);
		free(o);
	}
	peer->out_tail = NULL;
	peer->out_bytes = 0;
	for (; peer->fd_count > 0; peer->fd_count--) {
		ipc_close_fd(&peer->fds[peer->fd_head]);
		peer->fd_head = (peer->fd_head + 1) % IPC_MAX_FDS;
	}
}

static void
ipc_destroy(struct ipc_peer *peer)
{
	event_free(peer->ev_read);
	event_free(peer->ev_write);
	event_free(peer->ev_close);
	buf_free(&peer->in);
	free(peer->name);
	free(peer->remote_name);
	free(peer);
}

/* The link is over: say why from the loop, never from inside a call the
 * owner made (ipc_send), so on_close may always free the peer. */
static void __attribute__((format(printf, 2, 3)))
ipc_fail(struct ipc_peer *peer, const char *fmt, ...)
{
	va_list ap;

	if (!peer->open)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(peer->why, sizeof(peer->why), fmt, ap);
	va_end(ap);
	ipc_teardown(peer);
	event_active(peer->ev_close, EV_TIMEOUT, 0);
}

/* Our callbacks bracket user code with these, so that ipc_peer_free from
 * inside on_msg or on_close only marks the peer. True: it is gone. */
static void
ipc_enter(struct ipc_peer *peer)
{
	peer->busy++;
}

static bool
ipc_leave(struct ipc_peer *peer)
{
	if (--peer->busy == 0 && peer->freed) {
		ipc_destroy(peer);
		return true;
	}
	return false;
}

static void
ipc_on_close(evutil_socket_t fd, short what, void *arg)
{
	struct ipc_peer *peer = arg;

	(void)fd;
	(void)what;
	log_debug(NULL, "event=ipc_closed local=%s remote=%s why=%s",
	          peer->name, peer->remote_name, peer->why);
	ipc_enter(peer);
	peer->on_close(peer, peer->why, peer->ctx);
	(void)ipc_leave(peer);
}

static void
ipc_enqueue(struct ipc_peer *peer, uint16_t type, uint32_t reqid, int fd,
            const void *data, size_t len)
{
	struct ipc_out *o = xmalloc(sizeof(*o) + IPC_HEADER_SIZE + len);

	o->next = NULL;
	o->fd = fd;
	o->off = 0;
	o->len = IPC_HEADER_SIZE + len;
	ipc_header_encode(o->data, (uint32_t)len, type,
	                  fd >= 0 ? IPC_FLAG_FD : 0, reqid);
	if (len > 0)
		memcpy(o->data + IPC_HEADER_SIZE, data, len);
	if (peer->out_tail != NULL)
		peer->out_tail->next = o;
	else
		peer->out_head = o;
	peer->out_tail = o;
	peer->out_bytes += o->len;
}

/* The write event waits for room in the socket (or for the peer's first
 * read, before it): from now on until ipc_write has sent all. */
static void
ipc_wait_writable(struct ipc_peer *peer)
{
	if (event_add(peer->ev_write, NULL) < 0)
		fatal(EX_OSERR, "event=ipc_event_add_failed what=write");
}

/* Write what the socket takes. 0 all sent, 1 would block, -1 link failed. */
static int
ipc_write(struct ipc_peer *peer)
{
	struct ipc_out *o;
	ssize_t n;

	while ((o = peer->out_head) != NULL) {
		n = ipc_sendmsg(peer->fd, o->data + o->off, o->len - o->off,
		                o->off == 0 ? o->fd : -1);
		if (n < 0 && ipc_would_block(errno))
			return 1;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			ipc_fail(peer, "closed by peer");
			return -1;
		}
		if (n < 0) {
			ipc_fail(peer, "sendmsg: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			return 1;
		/* The descriptor left with the first byte. */
		ipc_close_fd(&o->fd);
		o->off += (size_t)n;
		peer->out_bytes -= (size_t)n;
		if (o->off < o->len)
			continue;
		peer->out_head = o->next;
		if (peer->out_head == NULL)
			peer->out_tail = NULL;
		free(o);
	}
	(void)event_del(peer->ev_write);
	return 0;
}

static void
ipc_on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)ipc_write(arg);
}

static const struct ipc_rule *
ipc_find_rule(const struct ipc_peer *peer, uint16_t type)
{
	if (type == IPC_MSG_HELLO)
		return &ipc_hello_rule;
	for (const struct ipc_rule *r = peer->rules; r->type != 0; r++) {
		if (r->type == type)
			return r;
	}
	return NULL;
}

/* Judge a header as soon as it is complete, before its payload arrives.
 * Its descriptor, if any, came with its first byte: it is at the FIFO's
 * head by now. */
static int
ipc_check_header(struct ipc_peer *peer, uint32_t len, uint16_t type,
                 uint16_t flags)
{
	const struct ipc_rule *rule;
	bool has_fd = (flags & IPC_FLAG_FD) != 0;

	if (!peer->hello_seen && type != IPC_MSG_HELLO) {
		ipc_fail(peer, "message type %u before HELLO", type);
		return -1;
	}
	if (peer->hello_seen && type == IPC_MSG_HELLO) {
		ipc_fail(peer, "second HELLO");
		return -1;
	}
	if ((rule = ipc_find_rule(peer, type)) == NULL) {
		ipc_fail(peer, "message type %u not allowed", type);
		return -1;
	}
	if (len < rule->min_len || len > rule->max_len) {
		ipc_fail(peer, "message type %u of %u bytes, allowed %u..%u",
		         type, (unsigned)len, (unsigned)rule->min_len,
		         (unsigned)rule->max_len);
		return -1;
	}
	if (has_fd && rule->fd == IPC_FD_NEVER) {
		ipc_fail(peer, "message type %u may not carry a descriptor",
		         type);
		return -1;
	}
	if (!has_fd && rule->fd == IPC_FD_REQUIRED) {
		ipc_fail(peer, "message type %u needs a descriptor", type);
		return -1;
	}
	if (has_fd && peer->fd_count == 0) {
		ipc_fail(peer, "message type %u lacks its descriptor", type);
		return -1;
	}
	return 0;
}

static bool
ipc_valid_name(const uint8_t *p, size_t len)
{
	if (len == 0 || len > IPC_ROLE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] <= ' ' || p[i] >= 0x7F)
			return false;
	}
	return true;
}

static void
ipc_hello(struct ipc_peer *peer, const struct ipc_msg *msg)
{
	struct ipc_reader r;
	uint32_t version;
	const uint8_t *name;
	size_t len;

	ipc_reader_init(&r, msg);
	/* The version comes first so that any future layout still gets a
	 * clear answer. */
	version = ipc_get_u32(&r);
	if (version != IPC_PROTOCOL_VERSION) {
		ipc_fail(peer, "protocol version %u, expected %d",
		         (unsigned)version, IPC_PROTOCOL_VERSION);
		return;
	}
	name = ipc_get_bytes(&r, &len);
	if (ipc_reader_done(&r) < 0 || !ipc_valid_name(name, len)) {
		ipc_fail(peer, "malformed HELLO");
		return;
	}
	peer->remote_name = xstrndup((const char *)name, len);
	peer->hello_seen = true;
	log_debug(NULL, "event=ipc_hello local=%s remote=%s", peer->name,
	          peer->remote_name);
}

static int
ipc_fifo_pop(struct ipc_peer *peer)
{
	int fd = peer->fds[peer->fd_head];

	peer->fds[peer->fd_head] = -1;
	peer->fd_head = (peer->fd_head + 1) % IPC_MAX_FDS;
	peer->fd_count--;
	return fd;
}

static void
ipc_deliver(struct ipc_peer *peer, struct ipc_msg *msg)
{
	if (msg->type == IPC_MSG_HELLO)
		ipc_hello(peer, msg);
	else
		peer->on_msg(peer, msg, peer->ctx);
	/* Not taken by the callback: ours to close. */
	ipc_close_fd(&msg->fd);
}

/* A descriptor arrives with the first byte of the message that claims it,
 * never earlier. So while a message is at the head of the input, the only
 * descriptors that may be waiting are its own and, when the next message
 * has begun, that one's. Anything more was sent to confuse the pairing. */
static int
ipc_check_unclaimed(struct ipc_peer *peer, size_t allowed)
{
	if (peer->fd_count <= allowed)
		return 0;
	ipc_fail(peer, "%zu descriptors not claimed by a message",
	         peer->fd_count - allowed);
	return -1;
}

/* The same once the complete messages are gone: only the one still
 * arriving may own a descriptor (unknown until its header is complete). */
static void
ipc_check_unclaimed_partial(struct ipc_peer *peer)
{
	size_t allowed = 0;

	if (peer->in.len > 0 && peer->in.len < IPC_HEADER_SIZE)
		allowed = 1;
	else if (peer->in.len > 0)
		allowed = (ipc_get_be16(peer->in.data + 6) & IPC_FLAG_FD) != 0;
	(void)ipc_check_unclaimed(peer, allowed);
}

/* Deliver every complete message in the input buffer. */
static void
ipc_dispatch(struct ipc_peer *peer)
{
	size_t off = 0, after;
	struct ipc_msg msg;
	uint32_t len;
	const char *error;
	int r;

	while (peer->open) {
		r = ipc_header_decode(peer->in.data + off, peer->in.len - off,
		                      &len, &msg.type, &msg.flags, &msg.reqid,
		                      &error);
		if (r < 0)
			ipc_fail(peer, "%s", error);
		if (r != 0 ||
		    ipc_check_header(peer, len, msg.type, msg.flags) < 0)
			break;
		after = peer->in.len - off - IPC_HEADER_SIZE;
		if (after < len)
			break;
		after -= len;
		if (ipc_check_unclaimed(peer, (msg.flags & IPC_FLAG_FD) != 0
		                                  ? 1 + (after > 0)
		                                  : (after > 0)) < 0)
			break;
		msg.data = peer->in.data + off + IPC_HEADER_SIZE;
		msg.len = len;
		msg.fd =
		    (msg.flags & IPC_FLAG_FD) != 0 ? ipc_fifo_pop(peer) : -1;
		off += IPC_HEADER_SIZE + len;
		ipc_deliver(peer, &msg);
	}
	if (!peer->open)
		return;
	buf_consume(&peer->in, off);
	ipc_check_unclaimed_partial(peer);
}

static int
ipc_fifo_push(struct ipc_peer *peer, struct ipc_fds *fds)
{
	size_t i;

	for (i = 0; i < fds->n && peer->fd_count < IPC_MAX_FDS; i++) {
		peer->fds[(peer->fd_head + peer->fd_count) % IPC_MAX_FDS] =
		    fds->fd[i];
		fds->fd[i] = -1;
		peer->fd_count++;
	}
	if (i < fds->n || fds->lost) {
		ipc_close_fds(fds);
		return -1;
	}
	fds->n = 0;
	return 0;
}

/* One recvmsg per wake-up (the loop calls again while data is waiting),
 * then deliver what is complete. */
static void
ipc_read(struct ipc_peer *peer)
{
	uint8_t chunk[IPC_READ_CHUNK];
	struct ipc_fds fds = {.n = 0};
	size_t room = peer->in.max - peer->in.len;
	ssize_t n;

	if (room == 0) {
		/* Unreachable: a full buffer holds a complete message. */
		ipc_fail(peer, "input over the bound");
		return;
	}
	n = ipc_recvmsg(peer->fd, chunk,
	                room < sizeof(chunk) ? room : sizeof(chunk), &fds);
	if (n < 0 && ipc_would_block(errno))
		return;
	if (n < 0 && errno == ECONNRESET) {
		ipc_fail(peer, "closed by peer");
		return;
	}
	if (n < 0) {
		ipc_fail(peer, "recvmsg: %s", strerror(errno));
		return;
	}
	if (ipc_fifo_push(peer, &fds) < 0) {
		ipc_fail(peer, "more than %d descriptors pending", IPC_MAX_FDS);
		return;
	}
	if (n == 0 && peer->in.len > 0) {
		ipc_fail(peer, "closed by peer inside a message (%zu bytes)",
		         peer->in.len);
		return;
	}
	if (n == 0) {
		ipc_fail(peer, "closed by peer");
		return;
	}
	/* Cannot fail: room was measured against the bound. */
	(void)buf_append(&peer->in, chunk, (size_t)n);
	ipc_dispatch(peer);
}

static void
ipc_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct ipc_peer *peer = arg;

	(void)fd;
	(void)what;
	ipc_enter(peer);
	ipc_read(peer);
	(void)ipc_leave(peer);
}

static struct event *
ipc_event_new(struct event_base *base, int fd, short what, event_callback_fn fn,
              void *arg)
{
	struct event *ev = event_new(base, fd, what, fn, arg);

	if (ev == NULL)
		fatal(EX_OSERR, "event=ipc_event_new_failed");
	return ev;
}

struct ipc_peer *
ipc_peer_new(struct event_base *base, int fd, const char *role_name,
             const struct ipc_rule *rules, ipc_msg_fn *on_msg,
             ipc_close_fn *on_close, void *ctx)
{
	struct ipc_peer *peer = xcalloc(1, sizeof(*peer));
	struct buf hello;
	int fl;

	if (!ipc_valid_name((const uint8_t *)role_name, strlen(role_name)))
		fatal(EX_SOFTWARE, "event=ipc_bad_role_name name=%s",
		      role_name);
	if ((fl = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		fatal(EX_OSERR, "event=ipc_nonblock_failed error=%s",
		      strerror(errno));
	peer->fd = fd;
	peer->name = xstrdup(role_name);
	peer->rules = rules;
	peer->on_msg = on_msg;
	peer->on_close = on_close;
	peer->ctx = ctx;
	buf_init(&peer->in, IPC_HEADER_SIZE + IPC_MAX_PAYLOAD);
	peer->ev_read =
	    ipc_event_new(base, fd, EV_READ | EV_PERSIST, ipc_on_read, peer);
	peer->ev_write =
	    ipc_event_new(base, fd, EV_WRITE | EV_PERSIST, ipc_on_write, peer);
	peer->ev_close = ipc_event_new(base, -1, 0, ipc_on_close, peer);
	peer->open = true;

	buf_init(&hello, 0);
	ipc_put_u32(&hello, IPC_PROTOCOL_VERSION);
	ipc_put_str(&hello, role_name);
	ipc_enqueue(peer, IPC_MSG_HELLO, 0, -1, hello.data, hello.len);
	ipc_wait_writable(peer);
	buf_free(&hello);
	if (event_add(peer->ev_read, NULL) < 0)
		fatal(EX_OSERR, "event=ipc_event_add_failed what=read");
	return peer;
}

/* No callback runs after this. From inside on_msg or on_close the memory
 * is released when that callback returns. */
void
ipc_peer_free(struct ipc_peer **peerp)
{
	struct ipc_peer *peer = *peerp;

	if (peer == NULL)
		return;
	*peerp = NULL;
	ipc_teardown(peer);
	(void)event_del(peer->ev_close);
	if (peer->busy > 0)
		peer->freed = true;
	else
		ipc_destroy(peer);
}

/* NULL until the peer's HELLO arrived. */
const char *
ipc_peer_remote_name(const struct ipc_peer *peer)
{
	return peer->remote_name;
}

bool
ipc_peer_is_open(const struct ipc_peer *peer)
{
	return peer->open;
}

int
ipc_send(struct ipc_peer *peer, uint16_t type, uint32_t reqid, int fd,
         const void *data, size_t len)
{
	if (type == IPC_MSG_HELLO) {
		log_error(NULL, "event=bug where=ipc_send type=HELLO");
		abort();
	}
	if (!peer->open) {
		ipc_close_fd(&fd);
		return -1;
	}
	if (len > IPC_MAX_PAYLOAD) {
		log_warn(NULL,
		         "event=ipc_send_too_big remote=%s type=%u len=%zu",
		         peer->remote_name, type, len);
		ipc_close_fd(&fd);
		return -1;
	}
	if (peer->out_bytes + IPC_HEADER_SIZE + len > IPC_MAX_OUTPUT) {
		ipc_close_fd(&fd);
		ipc_fail(peer, "output over %d bytes: peer stopped reading",
		         IPC_MAX_OUTPUT);
		return -1;
	}
	ipc_enqueue(peer, type, reqid, fd, data, len);
	/* Alone in the queue: sent now. Left to the write event, each
	 * message cost two epoll_ctl(2) calls (the event added, then
	 * removed once sent) and a loop round. A link that fails here says
	 * so from the loop (ipc_fail), as it would have then. */
	if (peer->out_head == peer->out_tail && ipc_write(peer) == 1)
		ipc_wait_writable(peer);
	return 0;
}

int
ipc_flush(struct ipc_peer *peer, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : ipc_now_ms() + timeout_ms;
	int r;

	for (;;) {
		if (!peer->open)
			return -1;
		if ((r = ipc_write(peer)) <= 0)
			return r;
		if ((r = ipc_poll(peer->fd, POLLOUT, deadline)) <= 0)
			return -1;
	}
}

/* --- blocking calls (before a loop exists, and for the CLI) --- */

/* The caller keeps pass_fd: it is copied into the peer, not consumed. */
int
ipc_send_blocking(int fd, uint16_t type, uint32_t reqid, int pass_fd,
                  const void *data, size_t len, const char **error_r)
{
	uint8_t *msg;
	size_t off = 0, total = IPC_HEADER_SIZE + len;
	ssize_t n;

	if (len > IPC_MAX_PAYLOAD) {
		*error_r =
		    ipc_errorf("payload of %zu bytes over the bound", len);
		return -1;
	}
	msg = xmalloc(total);
	ipc_header_encode(msg, (uint32_t)len, type,
	                  pass_fd >= 0 ? IPC_FLAG_FD : 0, reqid);
	if (len > 0)
		memcpy(msg + IPC_HEADER_SIZE, data, len);
	while (off < total) {
		n = ipc_sendmsg(fd, msg + off, total - off,
		                off == 0 ? pass_fd : -1);
		if (n < 0 && ipc_would_block(errno) &&
		    ipc_poll(fd, POLLOUT, -1) >= 0)
			continue;
		if (n <= 0) {
			*error_r = ipc_errorf("sendmsg: %s", strerror(errno));
			free(msg);
			return -1;
		}
		off += (size_t)n;
	}
	free(msg);
	return 0;
}

/* Read exactly len bytes (never more: what follows belongs to the next
 * reader of this socket), collecting descriptors into fds. */
static int
ipc_read_exact(int fd, uint8_t *p, size_t len, int64_t deadline,
               struct ipc_fds *fds, const char **error_r)
{
	size_t got = 0;
	ssize_t n;
	int r;

	while (got < len) {
		if ((r = ipc_poll(fd, POLLIN, deadline)) <= 0) {
			*error_r =
			    r == 0 ? "timed out"
			           : ipc_errorf("poll: %s", strerror(errno));
			return -1;
		}
		n = ipc_recvmsg(fd, p + got, len - got, fds);
		if (n < 0 && ipc_would_block(errno))
			continue;
		if (n < 0) {
			*error_r = ipc_errorf("recvmsg: %s", strerror(errno));
			return -1;
		}
		if (fds->lost) {
			*error_r = "too many descriptors";
			return -1;
		}
		if (n == 0) {
			*error_r = "closed by peer";
			return -1;
		}
		got += (size_t)n;
	}
	return 0;
}

int
ipc_recv_blocking(int fd, int timeout_ms, uint16_t *type_r, uint32_t *reqid_r,
                  int *fd_r, uint8_t **data_r, size_t *len_r,
                  const char **error_r)
{
	int64_t deadline = timeout_ms < 0 ? -1 : ipc_now_ms() + timeout_ms;
	struct ipc_fds fds = {.n = 0};
	uint8_t hdr[IPC_HEADER_SIZE], *data = NULL;
	uint32_t len;
	uint16_t flags;

	*fd_r = -1;
	*data_r = NULL;
	*len_r = 0;
	if (ipc_read_exact(fd, hdr, sizeof(hdr), deadline, &fds, error_r) < 0 ||
	    ipc_header_decode(hdr, sizeof(hdr), &len, type_r, &flags, reqid_r,
	                      error_r) < 0)
		goto fail;
	if (len > 0) {
		data = xmalloc(len);
		if (ipc_read_exact(fd, data, len, deadline, &fds, error_r) < 0)
			goto fail;
	}
	if (fds.n != ((flags & IPC_FLAG_FD) != 0 ? 1u : 0u)) {
		*error_r = ipc_errorf("%zu descriptors with a message that "
		                      "claims %d",
		                      fds.n, (flags & IPC_FLAG_FD) != 0);
		goto fail;
	}
	*fd_r = fds.n == 1 ? fds.fd[0] : -1;
	*data_r = data;
	*len_r = len;
	return 0;
fail:
	ipc_close_fds(&fds);
	free(data);
	return -1;
}
