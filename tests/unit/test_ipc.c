/* Tests for ipc: pure framing and payload helpers, then real socketpairs on
 * a libevent loop (HELLO, traffic both ways, descriptor passing, every way
 * a peer can break the link, re-entrant send and free), then the blocking
 * calls. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/ipc.h"

static const struct ipc_rule rules[] = {
    {IPC_MSG_READY, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_CONFIG, 0, IPC_MAX_PAYLOAD, IPC_FD_OPTIONAL},
    {IPC_MSG_LISTENER, 4, 4, IPC_FD_REQUIRED},
    {IPC_MSG_PING, 0, IPC_MAX_PAYLOAD, IPC_FD_NEVER},
    {IPC_MSG_PONG, 0, IPC_MAX_PAYLOAD, IPC_FD_NEVER},
    {0, 0, 0, IPC_FD_NEVER},
};

/* --- pure framing --- */

static void
test_header_table(void **state)
{
	static const struct {
		uint32_t len;
		uint16_t type, flags;
		uint32_t reqid;
		size_t inlen;
		int want;
		const char *error;
	} cases[] = {
	    {0, IPC_MSG_READY, 0, 0, 12, 0, NULL},
	    {5, IPC_MSG_PING, 0, 0xDEADBEEF, 12, 0, NULL},
	    {IPC_MAX_PAYLOAD, IPC_MSG_CONFIG, IPC_FLAG_FD, 7, 12, 0, NULL},
	    {IPC_MAX_PAYLOAD + 1, IPC_MSG_CONFIG, 0, 0, 12, -1,
	     "payload of 262145 bytes over the bound"},
	    {300000, IPC_MSG_PING, 0, 0, 12, -1,
	     "payload of 300000 bytes over the bound"},
	    {1, IPC_MSG_PING, 0x0002, 0, 12, -1, "unknown flags 0x0002"},
	    {5, IPC_MSG_PING, 0, 1, 11, 1, NULL},
	    {5, IPC_MSG_PING, 0, 1, 0, 1, NULL},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t hdr[IPC_HEADER_SIZE];
		uint32_t len = 0, reqid = 0;
		uint16_t type = 0, flags = 0;
		const char *error = NULL;
		int r;

		ipc_header_encode(hdr, cases[i].len, cases[i].type,
		                  cases[i].flags, cases[i].reqid);
		r = ipc_header_decode(hdr, cases[i].inlen, &len, &type, &flags,
		                      &reqid, &error);
		assert_int_equal(r, cases[i].want);
		if (r < 0) {
			assert_string_equal(error, cases[i].error);
			continue;
		}
		if (r > 0)
			continue;
		assert_int_equal(len, cases[i].len);
		assert_int_equal(type, cases[i].type);
		assert_int_equal(flags, cases[i].flags);
		assert_int_equal(reqid, cases[i].reqid);
	}
}

static void
test_header_wire(void **state)
{
	uint8_t hdr[IPC_HEADER_SIZE];
	static const uint8_t want[IPC_HEADER_SIZE] = {
	    0, 0, 1, 2, 0, 8, 0, 1, 0xAA, 0xBB, 0xCC, 0xDD};

	(void)state;
	ipc_header_encode(hdr, 0x102, IPC_MSG_PING, IPC_FLAG_FD, 0xAABBCCDD);
	assert_memory_equal(hdr, want, sizeof(want));
}

static struct ipc_msg
msg_of(const struct buf *b)
{
	struct ipc_msg m = {.fd = -1, .data = b->data, .len = b->len};
	return m;
}

static void
test_reader_roundtrip(void **state)
{
	struct buf b;
	struct ipc_msg m;
	struct ipc_reader r;
	const uint8_t *p;
	size_t len;
	char *s;

	(void)state;
	buf_init(&b, 0);
	ipc_put_u32(&b, 0x01020304);
	ipc_put_u64(&b, 0x1122334455667788ull);
	ipc_put_str(&b, "front");
	ipc_put_str(&b, "");
	ipc_put_bytes(&b, "a\0b", 3);
	m = msg_of(&b);
	ipc_reader_init(&r, &m);
	assert_int_equal(ipc_get_u32(&r), 0x01020304);
	assert_true(ipc_get_u64(&r) == 0x1122334455667788ull);
	s = ipc_get_str(&r);
	assert_string_equal(s, "front");
	free(s);
	s = ipc_get_str(&r);
	assert_string_equal(s, "");
	free(s);
	p = ipc_get_bytes(&r, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(p, "a\0b", 3);
	assert_int_equal(ipc_reader_done(&r), 0);
	buf_free(&b);
}

static void
test_reader_bounds(void **state)
{
	static const uint8_t short_u32[3] = {0, 0, 1};
	static const uint8_t short_str[4 + 5] = {0,   0,   0,   10, 'h',
	                                         'e', 'l', 'l', 'o'};
	static const uint8_t nul_str[4 + 3] = {0, 0, 0, 3, 'a', 0, 'b'};
	static const uint8_t leftover[4 + 1] = {0, 0, 0, 9, 'x'};
	static const uint8_t huge_len[4] = {0xFF, 0xFF, 0xFF, 0xFF};
	struct ipc_msg m = {.fd = -1};
	struct ipc_reader r;
	size_t len = 99;

	(void)state;
	m.data = short_u32, m.len = sizeof(short_u32);
	ipc_reader_init(&r, &m);
	assert_int_equal(ipc_get_u32(&r), 0);
	assert_true(r.error);
	assert_int_equal(ipc_reader_done(&r), -1);

	m.data = short_str, m.len = sizeof(short_str);
	ipc_reader_init(&r, &m);
	assert_null(ipc_get_str(&r));
	assert_true(r.error);
	/* The error is latched: later reads get nothing. */
	assert_int_equal(ipc_get_u32(&r), 0);
	assert_int_equal(ipc_reader_done(&r), -1);

	m.data = nul_str, m.len = sizeof(nul_str);
	ipc_reader_init(&r, &m);
	assert_null(ipc_get_str(&r));
	assert_int_equal(ipc_reader_done(&r), -1);
	/* The same bytes are fine as bytes. */
	ipc_reader_init(&r, &m);
	assert_non_null(ipc_get_bytes(&r, &len));
	assert_int_equal(len, 3);
	assert_int_equal(ipc_reader_done(&r), 0);

	m.data = leftover, m.len = sizeof(leftover);
	ipc_reader_init(&r, &m);
	assert_int_equal(ipc_get_u32(&r), 9);
	assert_int_equal(ipc_reader_done(&r), -1);

	m.data = huge_len, m.len = sizeof(huge_len);
	ipc_reader_init(&r, &m);
	assert_null(ipc_get_bytes(&r, &len));
	assert_int_equal(len, 0);
	assert_int_equal(ipc_reader_done(&r), -1);

	m.data = NULL, m.len = 0;
	ipc_reader_init(&r, &m);
	assert_int_equal(ipc_get_u64(&r), 0);
	assert_int_equal(ipc_reader_done(&r), -1);
}

/* --- on the loop --- */

#define MAX_SEEN 16

struct side {
	struct ipc_peer *peer;
	/* messages seen */
	int n;
	uint16_t type[MAX_SEEN];
	uint32_t reqid[MAX_SEEN];
	char data[MAX_SEEN][64];
	char fd_read[MAX_SEEN][32]; /* what the passed fd gave */
	size_t len[MAX_SEEN];
	uint32_t sum[MAX_SEEN];
	int kept_fd;
	/* close */
	int closes;
	char why[200];
	/* behaviour */
	bool echo;          /* answer PING with PONG, same id and payload */
	bool free_in_msg;   /* free the peer on the first message */
	bool free_in_close; /* free the peer from on_close */
	bool keep_fd;       /* take the descriptor of a message */
};

static void
side_on_msg(struct ipc_peer *peer, struct ipc_msg *msg, void *ctx)
{
	struct side *s = ctx;
	int i = s->n++;

	assert_ptr_equal(peer, s->peer);
	assert_true(i < MAX_SEEN);
	s->type[i] = msg->type;
	s->reqid[i] = msg->reqid;
	s->len[i] = msg->len;
	for (size_t k = 0; k < msg->len; k++)
		s->sum[i] = s->sum[i] * 31 + msg->data[k];
	snprintf(s->data[i], sizeof(s->data[i]), "%.*s",
	         (int)(msg->len < 63 ? msg->len : 63), (const char *)msg->data);
	if (msg->fd >= 0 && !s->keep_fd) {
		ssize_t n =
		    read(msg->fd, s->fd_read[i], sizeof(s->fd_read[i]) - 1);
		assert_true(n >= 0);
		s->fd_read[i][n] = '\0';
	}
	if (msg->fd >= 0 && s->keep_fd) {
		s->kept_fd = msg->fd;
		msg->fd = -1;
	}
	if (s->echo && msg->type == IPC_MSG_PING)
		assert_int_equal(ipc_send(peer, IPC_MSG_PONG, msg->reqid, -1,
		                          msg->data, msg->len),
		                 0);
	if (s->free_in_msg) {
		ipc_peer_free(&s->peer);
		assert_null(s->peer);
	}
}

static void
side_on_close(struct ipc_peer *peer, const char *why, void *ctx)
{
	struct side *s = ctx;

	assert_ptr_equal(peer, s->peer);
	s->closes++;
	snprintf(s->why, sizeof(s->why), "%s", why);
	assert_false(ipc_peer_is_open(peer));
	if (s->free_in_close)
		ipc_peer_free(&s->peer);
}

/* Descriptors open in this process: every test must end where it began. */
static int
count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

struct fixture {
	int fds_before;
	struct event_base *base;
	int sv[2];
	struct side a, b;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->fds_before = count_fds();
	f->base = event_base_new();
	assert_non_null(f->base);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, f->sv), 0);
	f->a.kept_fd = f->b.kept_fd = -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	ipc_peer_free(&f->a.peer);
	ipc_peer_free(&f->b.peer);
	for (int i = 0; i < 2; i++) {
		if (f->sv[i] >= 0)
			close(f->sv[i]);
	}
	if (f->a.kept_fd >= 0)
		close(f->a.kept_fd);
	if (f->b.kept_fd >= 0)
		close(f->b.kept_fd);
	event_base_free(f->base);
	assert_int_equal(count_fds(), f->fds_before);
	free(f);
	return 0;
}

/* Peers on both ends; the fixture no longer owns the sockets. */
static void
pair(struct fixture *f)
{
	f->a.peer = ipc_peer_new(f->base, f->sv[0], "parent", rules,
	                         side_on_msg, side_on_close, &f->a);
	f->b.peer = ipc_peer_new(f->base, f->sv[1], "front", rules, side_on_msg,
	                         side_on_close, &f->b);
	f->sv[0] = f->sv[1] = -1;
}

/* A peer on sv[0] only; the test plays the other end raw on sv[1]. */
static void
half(struct fixture *f)
{
	f->a.peer = ipc_peer_new(f->base, f->sv[0], "parent", rules,
	                         side_on_msg, side_on_close, &f->a);
	f->sv[0] = -1;
}

static void
spin(struct fixture *f, int rounds)
{
	for (int i = 0; i < rounds; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
}

/* Run the loop until *cond holds (or fail after a generous bound). */
#define RUN_UNTIL(f, cond)                                                     \
	do {                                                                   \
		int rounds_ = 0;                                               \
		while (!(cond)) {                                              \
			assert_true(rounds_++ < 200000);                       \
			event_base_loop((f)->base, EVLOOP_NONBLOCK);           \
		}                                                              \
	} while (0)

static void
raw_send(int fd, uint16_t type, uint32_t reqid, int pass_fd, const void *p,
         size_t len)
{
	const char *error = NULL;

	if (ipc_send_blocking(fd, type, reqid, pass_fd, p, len, &error) < 0)
		fail_msg("ipc_send_blocking: %s", error);
}

static void
raw_hello(int fd, uint32_t version, const char *name)
{
	struct buf b;

	buf_init(&b, 0);
	ipc_put_u32(&b, version);
	ipc_put_str(&b, name);
	raw_send(fd, IPC_MSG_HELLO, 0, -1, b.data, b.len);
	buf_free(&b);
}

/* A pipe with text waiting in it; returns the read end. */
static int
pipe_with(const char *text)
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], text, strlen(text)),
	                 (ssize_t)strlen(text));
	close(p[1]);
	return p[0];
}

static void
test_exchange(void **state)
{
	struct fixture *f = *state;
	uint8_t idx[4] = {0, 0, 0, 3};

	pair(f);
	f->b.echo = true;
	assert_null(ipc_peer_remote_name(f->a.peer));
	/* Sent before either HELLO arrived: queued behind ours. */
	assert_int_equal(ipc_send(f->a.peer, IPC_MSG_PING, 1, -1, "one", 3), 0);
	assert_int_equal(ipc_send(f->a.peer, IPC_MSG_PING, 2, -1, "two", 3), 0);
	assert_int_equal(ipc_send(f->a.peer, IPC_MSG_PING, 3, -1, "", 0), 0);
	assert_int_equal(ipc_send(f->b.peer, IPC_MSG_READY, 0, -1, NULL, 0), 0);
	assert_int_equal(ipc_send(f->b.peer, IPC_MSG_LISTENER, 9,
	                          pipe_with("through the pipe"), idx, 4),
	                 0);
	RUN_UNTIL(f, f->a.n == 5);
	assert_string_equal(ipc_peer_remote_name(f->a.peer), "front");
	assert_string_equal(ipc_peer_remote_name(f->b.peer), "parent");

	assert_int_equal(f->b.n, 3);
	assert_int_equal(f->b.type[0], IPC_MSG_PING);
	assert_int_equal(f->b.reqid[2], 3);
	assert_string_equal(f->b.data[1], "two");

	assert_int_equal(f->a.type[0], IPC_MSG_READY);
	assert_int_equal(f->a.type[1], IPC_MSG_LISTENER);
	assert_int_equal(f->a.reqid[1], 9);
	assert_string_equal(f->a.fd_read[1], "through the pipe");
	for (int i = 2; i < 5; i++) {
		assert_int_equal(f->a.type[i], IPC_MSG_PONG);
		assert_int_equal(f->a.reqid[i], (uint32_t)i - 1);
	}
	assert_string_equal(f->a.data[2], "one");
	assert_string_equal(f->a.data[4], "");
	assert_int_equal(f->a.closes + f->b.closes, 0);
	assert_int_equal(ipc_flush(f->a.peer, 100), 0);
}

/* Payloads at the bound arrive whole, over many reads, both ways. */
static void
test_large(void **state)
{
	struct fixture *f = *state;
	uint8_t *big = malloc(IPC_MAX_PAYLOAD);
	uint32_t sum = 0;

	for (size_t k = 0; k < IPC_MAX_PAYLOAD; k++) {
		big[k] = (uint8_t)(k * 7 + k / 251);
		sum = sum * 31 + big[k];
	}
	pair(f);
	f->b.echo = true;
	for (uint32_t i = 0; i < 3; i++)
		assert_int_equal(ipc_send(f->a.peer, IPC_MSG_PING, i, -1, big,
		                          IPC_MAX_PAYLOAD),
		                 0);
	RUN_UNTIL(f, f->a.n == 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(f->b.len[i], IPC_MAX_PAYLOAD);
		assert_int_equal(f->b.sum[i], sum);
		assert_int_equal(f->a.reqid[i], (uint32_t)i);
		assert_int_equal(f->a.sum[i], sum);
	}
	assert_int_equal(f->a.closes + f->b.closes, 0);
	free(big);
}

/* The receiver keeps a descriptor past the callback. */
static void
test_keep_fd(void **state)
{
	struct fixture *f = *state;
	char got[16] = {0};

	pair(f);
	f->a.keep_fd = true;
	assert_int_equal(
	    ipc_send(f->b.peer, IPC_MSG_CONFIG, 0, pipe_with("kept"), "cfg", 3),
	    0);
	/* OPTIONAL: the same type without one is fine too. */
	assert_int_equal(ipc_send(f->b.peer, IPC_MSG_CONFIG, 0, -1, "c", 1), 0);
	RUN_UNTIL(f, f->a.n == 2);
	assert_true(f->a.kept_fd >= 0);
	assert_int_equal(read(f->a.kept_fd, got, sizeof(got) - 1), 4);
	assert_string_equal(got, "kept");
	assert_int_equal(f->a.closes, 0);
}

/* Many descriptors in a row, each paired with its own message. */
static void
test_many_fds(void **state)
{
	struct fixture *f = *state;
	uint8_t idx[4] = {0};
	char text[16];

	pair(f);
	for (int i = 0; i < 12; i++) {
		snprintf(text, sizeof(text), "pipe %d", i);
		assert_int_equal(ipc_send(f->b.peer, IPC_MSG_LISTENER,
		                          (uint32_t)i, pipe_with(text), idx, 4),
		                 0);
		if (i % 3 == 0)
			assert_int_equal(
			    ipc_send(f->b.peer, IPC_MSG_READY, 0, -1, NULL, 0),
			    0);
	}
	RUN_UNTIL(f, f->a.n == 16);
	for (int i = 0, j = 0; i < 16; i++) {
		if (f->a.type[i] != IPC_MSG_LISTENER)
			continue;
		snprintf(text, sizeof(text), "pipe %d", j);
		assert_int_equal(f->a.reqid[i], (uint32_t)j);
		assert_string_equal(f->a.fd_read[i], text);
		j++;
	}
	assert_int_equal(f->a.closes, 0);
}

/* Each way a raw peer can break the link, and the reason given. */
struct break_case {
	const char *name;
	void (*act)(int fd);
	bool close; /* then close the raw end */
	const char *why;
};

static void
act_type77(int fd)
{
	raw_hello(fd, IPC_PROTOCOL_VERSION, "front");
	raw_send(fd, 77, 0, -1, NULL, 0);
}

static void
act_oversized(int fd)
{
	uint8_t hdr[IPC_HEADER_SIZE];

	raw_hello(fd, IPC_PROTOCOL_VERSION, "front");
	/* Only the header: the bound is enforced before any payload. */
	ipc_header_encode(hdr, 300000, IPC_MSG_PING, 0, 0);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
}

static void
act_version(int fd)
{
	raw_hello(fd, 2, "front");
}

static void
act_before_hello(int fd)
{
	raw_send(fd, IPC_MSG_PING, 0, -1, "x", 1);
}

static void
act_second_hello(int fd)
{
	raw_hello(fd, IPC_PROTOCOL_VERSION, "front");
	raw_hello(fd, IPC_PROTOCOL_VERSION, "front");
}

static void
act_bad_name(int fd)
{
	raw_hello(fd, IPC_PROTOCOL_VERSION, "fr ont");
}

static void
act_close(int fd)
{
	raw_hello(fd, IPC_PROTOCOL_VERSION, "front");
}

static void
act_close_mid(int fd)
{
	raw_hello(fd, IPC_PROTOCOL_VERSION, "front");
	assert_int_equal(write(fd, "\0\0\0", 3), 3);
}

static void
act_len_rule(int fd)
{
	raw_hello(fd, IPC_PROTOCOL_VERSION, "front");
	raw_send(fd, IPC_MSG_READY, 0, -1, "x", 1);
}

static void
act_fd_missing(int fd)
{
	raw_hello(fd, IPC_PROTOCOL_VERSION, "front");
	raw_send(fd, IPC_MSG_LISTENER, 0, -1, "\0\0\0\0", 4);
}

static void
act_fd_never(int fd)
{
	int p = pipe_with("x");

	raw_hello(fd, IPC_PROTOCOL_VERSION, "front");
	raw_send(fd, IPC_MSG_PING, 0, p, "x", 1);
	close(p);
}

/* A descriptor on a message that does not claim one. */
static void
act_fd_unclaimed(int fd)
{
	uint8_t msg[IPC_HEADER_SIZE + 1];
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} cmsg;
	struct iovec iov = {msg, sizeof(msg)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	int p = pipe_with("x");

	raw_hello(fd, IPC_PROTOCOL_VERSION, "front");
	ipc_header_encode(msg, 1, IPC_MSG_PING, 0, 0);
	msg[IPC_HEADER_SIZE] = 'x';
	memset(&cmsg, 0, sizeof(cmsg));
	mh.msg_control = cmsg.buf;
	mh.msg_controllen = sizeof(cmsg.buf);
	cmsg.hdr.cmsg_level = SOL_SOCKET;
	cmsg.hdr.cmsg_type = SCM_RIGHTS;
	cmsg.hdr.cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(&cmsg.hdr), &p, sizeof(int));
	assert_int_equal(sendmsg(fd, &mh, 0), (ssize_t)sizeof(msg));
	close(p);
}

static void
act_bad_flags(int fd)
{
	uint8_t hdr[IPC_HEADER_SIZE];

	raw_hello(fd, IPC_PROTOCOL_VERSION, "front");
	ipc_header_encode(hdr, 0, IPC_MSG_READY, 0x8000, 0);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
}

static const struct break_case break_cases[] = {
    {"type 77", act_type77, false, "message type 77 not allowed"},
    {"oversized", act_oversized, false,
     "payload of 300000 bytes over the bound"},
    {"version", act_version, false, "protocol version 2, expected 1"},
    {"before hello", act_before_hello, false, "message type 8 before HELLO"},
    {"second hello", act_second_hello, false, "second HELLO"},
    {"bad name", act_bad_name, false, "malformed HELLO"},
    {"close", act_close, true, "closed by peer"},
    {"close mid", act_close_mid, true,
     "closed by peer inside a message (3 bytes)"},
    {"length rule", act_len_rule, false,
     "message type 3 of 1 bytes, allowed 0..0"},
    {"fd missing", act_fd_missing, false, "message type 6 needs a descriptor"},
    {"fd never", act_fd_never, false,
     "message type 8 may not carry a descriptor"},
    {"fd unclaimed", act_fd_unclaimed, false,
     "1 descriptors not claimed by a message"},
    {"bad flags", act_bad_flags, false, "unknown flags 0x8000"},
};

/* Take the peer's HELLO off the raw end, so that the raw end closing later
 * leaves nothing unread (which the kernel would report as a reset). */
static void
read_hello(struct fixture *f)
{
	uint16_t type;
	uint32_t reqid;
	int fd;
	uint8_t *data;
	size_t len;
	const char *error;

	assert_int_equal(ipc_flush(f->a.peer, 1000), 0);
	assert_int_equal(ipc_recv_blocking(f->sv[1], 1000, &type, &reqid, &fd,
	                                   &data, &len, &error),
	                 0);
	assert_int_equal(type, IPC_MSG_HELLO);
	free(data);
}

static void
test_break(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(break_cases) / sizeof(break_cases[0]);
	     i++) {
		const struct break_case *c = &break_cases[i];
		void *st = NULL;
		struct fixture *f;

		setup(&st);
		f = st;
		half(f);
		read_hello(f);
		c->act(f->sv[1]);
		if (c->close) {
			close(f->sv[1]);
			f->sv[1] = -1;
		}
		RUN_UNTIL(f, f->a.closes > 0);
		spin(f, 10);
		if (strcmp(f->a.why, c->why) != 0)
			fail_msg("%s: why \"%s\"", c->name, f->a.why);
		assert_int_equal(f->a.closes, 1);
		assert_false(ipc_peer_is_open(f->a.peer));
		/* Nothing after the breaking message was delivered. */
		if (f->a.n != 0)
			fail_msg("%s: %d messages", c->name, f->a.n);
		assert_int_equal(ipc_send(f->a.peer, IPC_MSG_PING, 0,
		                          pipe_with("x"), NULL, 0),
		                 -1);
		teardown(&st);
	}
}

/* The link breaks while the raw end is still open: it sees EOF. */
static void
test_break_closes_socket(void **state)
{
	struct fixture *f = *state;
	char c;

	half(f);
	act_type77(f->sv[1]);
	RUN_UNTIL(f, f->a.closes > 0);
	for (;;) {
		ssize_t n = read(f->sv[1], &c, 1);
		if (n == 0)
			break;
		assert_true(n == 1); /* our HELLO first */
	}
}

static void
test_peer_free_is_closed_by_peer(void **state)
{
	struct fixture *f = *state;

	pair(f);
	RUN_UNTIL(f, ipc_peer_remote_name(f->a.peer) != NULL &&
	                 ipc_peer_remote_name(f->b.peer) != NULL);
	ipc_peer_free(&f->b.peer);
	RUN_UNTIL(f, f->a.closes > 0);
	assert_string_equal(f->a.why, "closed by peer");
	spin(f, 10);
	assert_int_equal(f->a.closes, 1);
	assert_int_equal(f->b.closes, 0);
}

static void
test_free_in_msg(void **state)
{
	struct fixture *f = *state;

	pair(f);
	f->b.free_in_msg = true;
	for (uint32_t i = 1; i <= 3; i++)
		assert_int_equal(
		    ipc_send(f->a.peer, IPC_MSG_PING, i, -1, "p", 1), 0);
	assert_int_equal(
	    ipc_send(f->a.peer, IPC_MSG_CONFIG, 4, pipe_with("y"), "c", 1), 0);
	RUN_UNTIL(f, f->a.closes > 0);
	spin(f, 10);
	assert_null(f->b.peer);
	assert_int_equal(f->b.n, 1);
	assert_int_equal(f->b.closes, 0);
	assert_string_equal(f->a.why, "closed by peer");
}

static void
test_free_in_close(void **state)
{
	struct fixture *f = *state;

	pair(f);
	f->a.free_in_close = true;
	RUN_UNTIL(f, ipc_peer_remote_name(f->a.peer) != NULL);
	ipc_peer_free(&f->b.peer);
	RUN_UNTIL(f, f->a.closes > 0);
	assert_null(f->a.peer);
	spin(f, 10);
	assert_int_equal(f->a.closes, 1);
}

/* A peer that stops reading: the sender's queue hits its bound, the link
 * is declared broken from the loop, not inside ipc_send. */
static void
test_output_bound(void **state)
{
	struct fixture *f = *state;
	uint8_t *big = calloc(1, IPC_MAX_PAYLOAD);
	int i, r = 0;

	half(f);
	for (i = 0; i < 100 && r == 0; i++)
		r = ipc_send(f->a.peer, IPC_MSG_PING, 0, -1, big,
		             IPC_MAX_PAYLOAD);
	assert_int_equal(r, -1);
	assert_int_equal(i, IPC_MAX_OUTPUT / (IPC_MAX_PAYLOAD + 12) + 1);
	assert_int_equal(f->a.closes, 0);
	assert_false(ipc_peer_is_open(f->a.peer));
	RUN_UNTIL(f, f->a.closes > 0);
	assert_string_equal(f->a.why,
	                    "output over 16777216 bytes: peer stopped reading");
	free(big);
}

static void
test_send_too_big(void **state)
{
	struct fixture *f = *state;
	uint8_t *big = calloc(1, IPC_MAX_PAYLOAD + 1);

	half(f);
	assert_int_equal(ipc_send(f->a.peer, IPC_MSG_PING, 0, pipe_with("z"),
	                          big, IPC_MAX_PAYLOAD + 1),
	                 -1);
	/* Our own mistake does not break the link. */
	assert_true(ipc_peer_is_open(f->a.peer));
	free(big);
}

static void
test_flush(void **state)
{
	struct fixture *f = *state;
	uint8_t *big = calloc(1, IPC_MAX_PAYLOAD);
	uint16_t type;
	uint32_t reqid;
	int fd;
	uint8_t *data;
	size_t len;
	const char *error;

	half(f);
	assert_int_equal(ipc_send(f->a.peer, IPC_MSG_PING, 5, -1, "hi", 2), 0);
	assert_int_equal(ipc_flush(f->a.peer, 1000), 0);
	assert_int_equal(ipc_recv_blocking(f->sv[1], 1000, &type, &reqid, &fd,
	                                   &data, &len, &error),
	                 0);
	assert_int_equal(type, IPC_MSG_HELLO);
	free(data);
	assert_int_equal(ipc_recv_blocking(f->sv[1], 1000, &type, &reqid, &fd,
	                                   &data, &len, &error),
	                 0);
	assert_int_equal(type, IPC_MSG_PING);
	assert_int_equal(reqid, 5);
	assert_int_equal(len, 2);
	free(data);
	/* Nobody reads now: a large queue cannot drain in time. */
	for (int i = 0; i < 20; i++)
		assert_int_equal(ipc_send(f->a.peer, IPC_MSG_PING, 0, -1, big,
		                          IPC_MAX_PAYLOAD),
		                 0);
	assert_int_equal(ipc_flush(f->a.peer, 50), -1);
	assert_true(ipc_peer_is_open(f->a.peer));
	free(big);
}

/* --- blocking --- */

static void
test_blocking(void **state)
{
	struct fixture *f = *state;
	uint16_t type;
	uint32_t reqid;
	int fd, p = pipe_with("blocking pipe");
	uint8_t *data;
	size_t len;
	const char *error = NULL;
	char got[32] = {0};

	raw_send(f->sv[0], IPC_MSG_LISTENER, 42, p, "\0\0\0\1", 4);
	close(p); /* the sender keeps its copy */
	raw_send(f->sv[0], IPC_MSG_READY, 43, -1, NULL, 0);
	assert_int_equal(ipc_recv_blocking(f->sv[1], 1000, &type, &reqid, &fd,
	                                   &data, &len, &error),
	                 0);
	assert_int_equal(type, IPC_MSG_LISTENER);
	assert_int_equal(reqid, 42);
	assert_int_equal(len, 4);
	assert_memory_equal(data, "\0\0\0\1", 4);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, got, sizeof(got) - 1), 13);
	assert_string_equal(got, "blocking pipe");
	close(fd);
	free(data);

	assert_int_equal(ipc_recv_blocking(f->sv[1], 1000, &type, &reqid, &fd,
	                                   &data, &len, &error),
	                 0);
	assert_int_equal(type, IPC_MSG_READY);
	assert_int_equal(reqid, 43);
	assert_int_equal(fd, -1);
	assert_int_equal(len, 0);
	assert_null(data);

	/* Nothing more: times out. */
	assert_int_equal(ipc_recv_blocking(f->sv[1], 20, &type, &reqid, &fd,
	                                   &data, &len, &error),
	                 -1);
	assert_string_equal(error, "timed out");
}

static void
test_blocking_errors(void **state)
{
	struct fixture *f = *state;
	uint8_t hdr[IPC_HEADER_SIZE];
	uint16_t type;
	uint32_t reqid;
	int fd;
	uint8_t *data;
	size_t len;
	const char *error = NULL;
	uint8_t *big = calloc(1, IPC_MAX_PAYLOAD + 1);

	assert_int_equal(ipc_send_blocking(f->sv[0], IPC_MSG_PING, 0, -1, big,
	                                   IPC_MAX_PAYLOAD + 1, &error),
	                 -1);
	assert_string_equal(error, "payload of 262145 bytes over the bound");
	free(big);

	ipc_header_encode(hdr, 300000, IPC_MSG_PING, 0, 0);
	assert_int_equal(write(f->sv[0], hdr, sizeof(hdr)),
	                 (ssize_t)sizeof(hdr));
	assert_int_equal(ipc_recv_blocking(f->sv[1], 1000, &type, &reqid, &fd,
	                                   &data, &len, &error),
	                 -1);
	assert_string_equal(error, "payload of 300000 bytes over the bound");

	/* A partial message, then EOF. */
	ipc_header_encode(hdr, 10, IPC_MSG_PING, 0, 0);
	assert_int_equal(write(f->sv[0], hdr, sizeof(hdr)),
	                 (ssize_t)sizeof(hdr));
	assert_int_equal(write(f->sv[0], "abc", 3), 3);
	close(f->sv[0]);
	f->sv[0] = -1;
	assert_int_equal(ipc_recv_blocking(f->sv[1], 1000, &type, &reqid, &fd,
	                                   &data, &len, &error),
	                 -1);
	assert_string_equal(error, "closed by peer");
	assert_null(data);
	assert_int_equal(fd, -1);
}

/* FD flag set but nothing passed: refused, not trusted. */
static void
test_blocking_fd_mismatch(void **state)
{
	struct fixture *f = *state;
	uint8_t hdr[IPC_HEADER_SIZE];
	uint16_t type;
	uint32_t reqid;
	int fd;
	uint8_t *data;
	size_t len;
	const char *error = NULL;

	ipc_header_encode(hdr, 0, IPC_MSG_LISTENER, IPC_FLAG_FD, 0);
	assert_int_equal(write(f->sv[0], hdr, sizeof(hdr)),
	                 (ssize_t)sizeof(hdr));
	assert_int_equal(ipc_recv_blocking(f->sv[1], 1000, &type, &reqid, &fd,
	                                   &data, &len, &error),
	                 -1);
	assert_string_equal(error,
	                    "0 descriptors with a message that claims 1");
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_table),
	    cmocka_unit_test(test_header_wire),
	    cmocka_unit_test(test_reader_roundtrip),
	    cmocka_unit_test(test_reader_bounds),
	    T(test_exchange),
	    T(test_large),
	    T(test_keep_fd),
	    T(test_many_fds),
	    cmocka_unit_test(test_break),
	    T(test_break_closes_socket),
	    T(test_peer_free_is_closed_by_peer),
	    T(test_free_in_msg),
	    T(test_free_in_close),
	    T(test_output_bound),
	    T(test_send_too_big),
	    T(test_flush),
	    T(test_blocking),
	    T(test_blocking_errors),
	    T(test_blocking_fd_mismatch),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
