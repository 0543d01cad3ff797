/* Tests for core/dns: lookups against a real unbound started here (a
 * local-data zone and an ldns-signed auth-zone), and the rdata decoders on
 * malformed input. unbound and ldnsutils are required, never skipped.
 * SECURITY: the server listens on 127.0.0.1 only, from a mkdtemp directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/dns.h"

#ifndef UNBOUND_BIN
#define UNBOUND_BIN "/usr/sbin/unbound"
#endif
#define START_TIMEOUT_MS 10000
#define LOOP_TIMEOUT_MS 8000
#define SETTLE_MS 300 /* time for a dropped answer to arrive anyway */

#define TYPE_A 1
#define TYPE_MX 15
#define TYPE_TXT 16
#define TYPE_AAAA 28

static struct {
	char dir[64];
	pid_t pid;
	unsigned port;
	char addr[32]; /* "127.0.0.1:PORT" */
	char ds[512];  /* trust anchor for signed.example. */
} srv = {.pid = -1};

/* --- helpers: files and child processes --- */

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void
path_in_dir(char *out, size_t outlen, const char *name)
{
	int n = snprintf(out, outlen, "%s/%s", srv.dir, name);

	if (n < 0 || (size_t)n >= outlen)
		abort();
}

static int
write_file(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	path_in_dir(path, sizeof(path), name);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -1;
}

static char *
read_file(const char *name)
{
	char path[256];
	char *text = NULL;
	size_t cap = 0;
	FILE *f;

	path_in_dir(path, sizeof(path), name);
	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	ssize_t n = getdelim(&text, &cap, '\0', f);
	fclose(f);
	if (n < 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* The child dies with us, so a crashed test leaves no server behind. */
static pid_t
spawn(char *const argv[], const char *out_name, const char *err_name)
{
	char path[256];
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (chdir(srv.dir) < 0)
		_exit(126);
	if (out_name != NULL) {
		path_in_dir(path, sizeof(path), out_name);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
			_exit(126);
	}
	if (err_name != NULL) {
		path_in_dir(path, sizeof(path), err_name);
		int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(126);
	}
	execv(argv[0], argv);
	_exit(127);
}

static int
run(char *const argv[], const char *out_name)
{
	int status;
	pid_t pid = spawn(argv, out_name, "tools.log");

	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		print_error("%s failed (status %d); see %s/tools.log\n",
		            argv[0], status, srv.dir);
		return -1;
	}
	return 0;
}

/* Keep going past a failure: a half-removed directory helps nobody. */
static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* --- the signed zone --- */

static const char signed_zone[] =
    "$ORIGIN signed.example.\n"
    "$TTL 3600\n"
    "@ IN SOA ns.signed.example. host.signed.example. 1 3600 900 "
    "604800 300\n"
    "@ IN NS ns.signed.example.\n"
    "ns IN A 192.0.2.53\n"
    "www IN A 192.0.2.10\n"
    "bad IN A 192.0.2.66\n";

/* Change bad's address after signing: its RRSIG no longer matches. */
static int
tamper_zone(void)
{
	char *text = read_file("signed.zone");
	char *p = text != NULL ? strstr(text, "192.0.2.66") : NULL;
	int rc = -1;

	if (p != NULL) {
		memcpy(p, "192.0.2.99", 10);
		rc = write_file("signed.zone", text);
	}
	free(text);
	return rc;
}

static int
read_ds(const char *key)
{
	char name[128];
	char *text;

	snprintf(name, sizeof(name), "%s.ds", key);
	if ((text = read_file(name)) == NULL)
		return -1;
	text[strcspn(text, "\n")] = '\0';
	snprintf(srv.ds, sizeof(srv.ds), "%s", text);
	free(text);
	return srv.ds[0] != '\0' ? 0 : -1;
}

static int
sign_zone(void)
{
	char *keygen[] = {"/usr/bin/ldns-keygen", "-a", "ECDSAP256SHA256", "-k",
	                  "signed.example",       NULL};
	char *key;

	if (access(keygen[0], X_OK) < 0) {
		print_error("ldns-keygen missing: apt-get install ldnsutils\n");
		return -1;
	}
	if (write_file("signed.example.zone", signed_zone) < 0 ||
	    run(keygen, "keyname") < 0 || (key = read_file("keyname")) == NULL)
		return -1;
	key[strcspn(key, "\n")] = '\0';
	char *sign[] = {"/usr/bin/ldns-signzone", "-f", "signed.zone",
	                "signed.example.zone",    key,  NULL};
	int rc = run(sign, NULL) < 0 || read_ds(key) < 0 || tamper_zone() < 0
	             ? -1
	             : 0;
	free(key);
	return rc;
}

/* --- the server --- */

static const char conf_fmt[] =
    "server:\n"
    "\tverbosity: 1\n"
    "\tinterface: 127.0.0.1\n"
    "\tport: %u\n"
    "\tdo-ip6: no\n"
    "\tdo-not-query-localhost: no\n"
    "\tchroot: \"\"\n"
    "\tusername: \"\"\n"
    "\tdirectory: \"%s\"\n"
    "\tpidfile: \"%s/unbound.pid\"\n"
    "\tlogfile: \"\"\n"
    "\tuse-syslog: no\n"
    "\tnum-threads: 1\n"
    "\tmodule-config: \"iterator\"\n"
    "\tlocal-zone: \"tern.example.\" static\n"
    "\tlocal-data: \"a.tern.example. 300 IN A 192.0.2.1\"\n"
    "\tlocal-data: \"a.tern.example. 300 IN AAAA 2001:db8::1\"\n"
    "\tlocal-data: \"mx.tern.example. MX 10 mail.tern.example.\"\n"
    "\tlocal-data: \"mx.tern.example. MX 20 backup.tern.example.\"\n"
    "\tlocal-data: \"nullmx.tern.example. MX 0 .\"\n"
    "\tlocal-data: 'txt.tern.example. TXT \"v=spf1 -all\"'\n"
    "\tlocal-data: 'multi.tern.example. TXT \"part one \" \"part two\"'\n"
    "\tlocal-data: 'long.tern.example. TXT \"%s\" \"%s\"'\n"
    "auth-zone:\n"
    "\tname: \"signed.example.\"\n"
    "\tzonefile: \"%s/signed.zone\"\n"
    "\tfor-downstream: yes\n"
    "\tfor-upstream: yes\n"
    "remote-control:\n"
    "\tcontrol-enable: no\n";

static char long_a[201], long_b[101];

static int
write_conf(void)
{
	char conf[4096];

	memset(long_a, 'a', sizeof(long_a) - 1);
	memset(long_b, 'b', sizeof(long_b) - 1);
	int n = snprintf(conf, sizeof(conf), conf_fmt, srv.port, srv.dir,
	                 srv.dir, long_a, long_b, srv.dir);
	if (n < 0 || (size_t)n >= sizeof(conf))
		return -1;
	return write_file("unbound.conf", conf);
}

/* A port free for both UDP and TCP right now. */
static int
pick_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	int t = socket(AF_INET, SOCK_STREAM, 0);
	int rc = -1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (u >= 0 && t >= 0 &&
	    bind(u, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(u, (struct sockaddr *)&sin, &sl) == 0 &&
	    bind(t, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
		srv.port = ntohs(sin.sin_port);
		rc = 0;
	}
	if (u >= 0)
		close(u);
	if (t >= 0)
		close(t);
	return rc;
}

/* One UDP query for a.tern.example A; 0 when any answer comes back. */
static int
probe(void)
{
	static const uint8_t query[] = {
	    0x12, 0x34, 0x01, 0x00, 0,   1,   0,   0,   0, 0,   0,
	    0,    1,    'a',  4,    't', 'e', 'r', 'n', 7, 'e', 'x',
	    'a',  'm',  'p',  'l',  'e', 0,   0,   1,   0, 1};
	struct sockaddr_in sin = {.sin_family = AF_INET,
	                          .sin_port = htons((uint16_t)srv.port)};
	uint8_t buf[512];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int rc = -1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	if (sendto(fd, query, sizeof(query), 0, (struct sockaddr *)&sin,
	           sizeof(sin)) == (ssize_t)sizeof(query)) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, 200) == 1 &&
		    recv(fd, buf, sizeof(buf), 0) >= 12 && buf[0] == 0x12 &&
		    buf[1] == 0x34 && (buf[2] & 0x80))
			rc = 0;
	}
	close(fd);
	return rc;
}

static void
server_stop(void)
{
	int status;

	if (srv.pid <= 0)
		return;
	kill(srv.pid, SIGTERM);
	for (long end = now_ms() + 3000; now_ms() < end; usleep(10000)) {
		if (waitpid(srv.pid, &status, WNOHANG) == srv.pid) {
			srv.pid = -1;
			return;
		}
	}
	kill(srv.pid, SIGKILL);
	waitpid(srv.pid, &status, 0);
	srv.pid = -1;
}

static int
server_wait_ready(void)
{
	int status;

	for (long end = now_ms() + START_TIMEOUT_MS; now_ms() < end;) {
		if (waitpid(srv.pid, &status, WNOHANG) == srv.pid) {
			srv.pid = -1; /* died: port taken, bad config… */
			return -1;
		}
		if (probe() == 0)
			return 0;
		usleep(20000);
	}
	return -1;
}

static int
server_start(void)
{
	char conf[256];
	char *argv[] = {UNBOUND_BIN, "-d", "-c", conf, NULL};

	if (access(UNBOUND_BIN, X_OK) < 0) {
		print_error(UNBOUND_BIN " missing: apt-get install unbound\n");
		return -1;
	}
	path_in_dir(conf, sizeof(conf), "unbound.conf");
	/* Another process may grab the port between pick and bind. */
	for (int attempt = 0; attempt < 3; attempt++) {
		if (pick_port() < 0 || write_conf() < 0)
			return -1;
		if ((srv.pid = spawn(argv, NULL, "unbound.log")) < 0)
			return -1;
		if (server_wait_ready() == 0) {
			snprintf(srv.addr, sizeof(srv.addr), "127.0.0.1:%u",
			         srv.port);
			return 0;
		}
		server_stop();
	}
	print_error("unbound did not answer; see %s/unbound.log\n", srv.dir);
	return -1;
}

static void
cleanup(void)
{
	server_stop();
	if (srv.dir[0] != '\0') {
		nftw(srv.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
		srv.dir[0] = '\0';
	}
}

static int
group_setup(void **state)
{
	(void)state;
	snprintf(srv.dir, sizeof(srv.dir), "/tmp/tern-test-dns-XXXXXX");
	if (mkdtemp(srv.dir) == NULL) {
		srv.dir[0] = '\0';
		return -1;
	}
	atexit(cleanup);
	return sign_zone() < 0 || server_start() < 0 ? -1 : 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	cleanup();
	return 0;
}

/* --- running lookups --- */

#define MAX_RR 8

struct lookup {
	int calls;
	int status;
	int rcode;
	bool nxdomain, havedata;
	enum dns_security security;
	bool have_why;
	uint32_t ttl;
	int qtype;
	size_t count;
	int decode_rc; /* first decoder failure */
	uint16_t pref[MAX_RR];
	char value[MAX_RR][512];
};

struct ctx {
	struct event_base *base;
	struct dns_resolver *r;
	int pending;
	bool timed_out;
	bool free_on_answer; /* the first callback frees r */
};

static struct ctx *cur; /* the callbacks' view of the running test */

static int
decode_one(int qtype, const uint8_t *rd, size_t len, struct lookup *l, size_t i)
{
	char *txt;

	switch (qtype) {
	case TYPE_A:
		return dns_rdata_a(rd, len, l->value[i], sizeof(l->value[i]));
	case TYPE_AAAA:
		return dns_rdata_aaaa(rd, len, l->value[i],
		                      sizeof(l->value[i]));
	case TYPE_MX:
		return dns_rdata_mx(rd, len, &l->pref[i], l->value[i],
		                    sizeof(l->value[i]));
	case TYPE_TXT:
		if (dns_rdata_txt(rd, len, &txt) < 0)
			return -1;
		snprintf(l->value[i], sizeof(l->value[i]), "%s", txt);
		free(txt);
		return 0;
	}
	return 0;
}

static void
lookup_fill(struct lookup *l, int status, const struct dns_result *res)
{
	l->calls++;
	l->status = status;
	if (res != NULL) {
		l->rcode = res->rcode;
		l->nxdomain = res->nxdomain;
		l->havedata = res->havedata;
		l->security = res->security;
		l->have_why = res->why_bogus != NULL;
		l->ttl = res->ttl;
		l->qtype = res->qtype;
		l->count = res->count;
		for (size_t i = 0; i < res->count && i < MAX_RR; i++)
			if (decode_one(res->qtype, res->rdata[i],
			               res->rdata_len[i], l, i) < 0)
				l->decode_rc = -1;
	}
}

static void
on_done(void *arg, int status, const struct dns_result *res)
{
	lookup_fill(arg, status, res);
	if (cur->free_on_answer)
		dns_resolver_free(&cur->r);
	if (--cur->pending == 0)
		event_base_loopbreak(cur->base);
}

/* For other threads than the loop's: no loop bookkeeping. */
static void
on_sync_done(void *arg, int status, const struct dns_result *res)
{
	lookup_fill(arg, status, res);
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct ctx *c = arg;

	(void)fd;
	(void)what;
	c->timed_out = true;
	event_base_loopbreak(c->base);
}

/* Run the loop until every expected callback ran, or for ms. */
static void
loop_run(struct ctx *c, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = ms % 1000 * 1000};
	struct event *t = evtimer_new(c->base, on_timeout, c);

	c->timed_out = false;
	evtimer_add(t, &tv);
	event_base_dispatch(c->base);
	event_free(t);
}

static void
loop_wait(struct ctx *c)
{
	loop_run(c, LOOP_TIMEOUT_MS);
	assert_false(c->timed_out);
}

static void
ctx_open(struct ctx *c, const char *ta)
{
	char *err = NULL;

	memset(c, 0, sizeof(*c));
	cur = c;
	assert_non_null(c->base = event_base_new());
	c->r = dns_resolver_new(c->base, srv.addr, NULL, &err);
	if (c->r == NULL)
		fail_msg("dns_resolver_new: %s", err);
	if (ta != NULL && dns_resolver_add_trust_anchor(c->r, ta, &err) < 0)
		fail_msg("add_trust_anchor: %s", err);
}

static void
ctx_close(struct ctx *c)
{
	dns_resolver_free(&c->r);
	assert_null(c->r);
	event_base_free(c->base);
	cur = NULL;
}

static struct dns_query *
start(struct ctx *c, const char *name, int type, struct lookup *l)
{
	struct dns_query *q;

	memset(l, 0, sizeof(*l));
	c->pending++;
	q = dns_lookup(c->r, name, type, on_done, l);
	assert_non_null(q);
	assert_int_equal(l->calls, 0); /* never called back synchronously */
	return q;
}

static void
assert_answer(const struct lookup *l, size_t count)
{
	assert_int_equal(l->calls, 1);
	assert_int_equal(l->status, 0);
	assert_int_equal(l->rcode, 0);
	assert_true(l->havedata);
	assert_int_equal(l->count, count);
	assert_int_equal(l->decode_rc, 0);
}

/* --- tests against the server --- */

static void
test_a_aaaa(void **state)
{
	struct ctx c;
	struct lookup a, aaaa;

	(void)state;
	ctx_open(&c, NULL);
	start(&c, "a.tern.example", TYPE_A, &a);
	start(&c, "a.tern.example.", TYPE_AAAA, &aaaa);
	loop_wait(&c);
	assert_answer(&a, 1);
	assert_string_equal(a.value[0], "192.0.2.1");
	assert_int_equal(a.ttl, 300);
	assert_int_equal(a.qtype, TYPE_A);
	assert_answer(&aaaa, 1);
	assert_string_equal(aaaa.value[0], "2001:db8::1");
	ctx_close(&c);
}

static void
test_mx(void **state)
{
	struct ctx c;
	struct lookup mx, null;

	(void)state;
	ctx_open(&c, NULL);
	start(&c, "mx.tern.example", TYPE_MX, &mx);
	start(&c, "nullmx.tern.example", TYPE_MX, &null);
	loop_wait(&c);
	assert_answer(&mx, 2);
	int first = mx.pref[0] == 10 ? 0 : 1; /* answer order is not fixed */
	assert_int_equal(mx.pref[first], 10);
	assert_string_equal(mx.value[first], "mail.tern.example");
	assert_int_equal(mx.pref[1 - first], 20);
	assert_string_equal(mx.value[1 - first], "backup.tern.example");
	assert_answer(&null, 1);
	assert_int_equal(null.pref[0], 0);
	assert_string_equal(null.value[0], ".");
	ctx_close(&c);
}

static void
test_txt(void **state)
{
	struct ctx c;
	struct lookup one, multi, lng;
	char want[sizeof(long_a) + sizeof(long_b)];

	(void)state;
	ctx_open(&c, NULL);
	start(&c, "txt.tern.example", TYPE_TXT, &one);
	start(&c, "multi.tern.example", TYPE_TXT, &multi);
	start(&c, "long.tern.example", TYPE_TXT, &lng);
	loop_wait(&c);
	assert_answer(&one, 1);
	assert_string_equal(one.value[0], "v=spf1 -all");
	assert_answer(&multi, 1);
	assert_string_equal(multi.value[0], "part one part two");
	assert_answer(&lng, 1);
	snprintf(want, sizeof(want), "%s%s", long_a, long_b);
	assert_int_equal(strlen(lng.value[0]), 300);
	assert_string_equal(lng.value[0], want);
	ctx_close(&c);
}

/* The blocking form, from a thread that is not the loop's (how the
 * workers use it), with several threads on one resolver at once. */
struct sync_arg {
	struct dns_resolver *r;
	const char *name;
	int type;
	struct lookup l;
	int ret;
};

static void *
sync_thread(void *arg)
{
	struct sync_arg *a = arg;

	a->ret = dns_resolve_sync(a->r, a->name, a->type, on_sync_done, &a->l);
	return NULL;
}

static void
test_sync_from_threads(void **state)
{
	struct ctx c;
	struct sync_arg a[3] = {
	    {.name = "txt.tern.example", .type = TYPE_TXT},
	    {.name = "a.tern.example", .type = TYPE_A},
	    {.name = "nothere.tern.example", .type = TYPE_A},
	};
	pthread_t t[3];

	(void)state;
	ctx_open(&c, NULL);
	for (int i = 0; i < 3; i++) {
		a[i].r = c.r;
		assert_int_equal(pthread_create(&t[i], NULL, sync_thread, &a[i]),
		                 0);
	}
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(a[0].ret, 0);
	assert_answer(&a[0].l, 1);
	assert_string_equal(a[0].l.value[0], "v=spf1 -all");
	assert_answer(&a[1].l, 1);
	assert_string_equal(a[1].l.value[0], "192.0.2.1");
	assert_int_equal(a[2].l.calls, 1);
	assert_true(a[2].l.nxdomain);
	/* Again: answers from the resolver's cache of blocking lookups are
	 * whole copies, their TTL counting down from the record's 300 s. */
	for (int i = 0; i < 3; i++) {
		memset(&a[i].l, 0, sizeof(a[i].l));
		a[i].ret = dns_resolve_sync(c.r, a[i].name, a[i].type,
		                            on_sync_done, &a[i].l);
		assert_int_equal(a[i].ret, 0);
		assert_int_equal(a[i].l.calls, 1);
		assert_int_equal(a[i].l.qtype, a[i].type);
	}
	assert_answer(&a[0].l, 1);
	assert_string_equal(a[0].l.value[0], "v=spf1 -all");
	assert_true(a[0].l.ttl > 0 && a[0].l.ttl <= 300);
	assert_answer(&a[1].l, 1);
	assert_string_equal(a[1].l.value[0], "192.0.2.1");
	assert_true(a[2].l.nxdomain);
	assert_int_equal(a[2].l.count, 0);
	/* Bad input is refused without a query. */
	memset(&a[0].l, 0, sizeof(a[0].l));
	assert_int_equal(
	    dns_resolve_sync(c.r, "", TYPE_A, on_sync_done, &a[0].l), -1);
	assert_int_equal(a[0].l.calls, 1);
	ctx_close(&c);
}

/* Many blocking lookups at once, while the loop serves an asynchronous
 * one on the same resolver: each thread gets its own answers (they share
 * one collecting thread and one condition variable). */
struct sync_many {
	struct dns_resolver *r;
	const char *name;
	const char *want;
	int ok;
};

static void *
sync_many_thread(void *arg)
{
	struct sync_many *m = arg;

	for (int i = 0; i < 100; i++) {
		struct lookup l;

		memset(&l, 0, sizeof(l));
		if (dns_resolve_sync(m->r, m->name, m->want[0] == 'v' ? TYPE_TXT
		                                                      : TYPE_A,
		                     on_sync_done, &l) == 0 &&
		    l.calls == 1 && l.count == 1 &&
		    strcmp(l.value[0], m->want) == 0)
			m->ok++;
	}
	return NULL;
}

static void
test_sync_many(void **state)
{
	struct ctx c;
	struct lookup async;
	struct sync_many m[4] = {
	    {.name = "txt.tern.example", .want = "v=spf1 -all"},
	    {.name = "a.tern.example", .want = "192.0.2.1"},
	    {.name = "txt.tern.example", .want = "v=spf1 -all"},
	    {.name = "a.tern.example", .want = "192.0.2.1"},
	};
	pthread_t t[4];

	(void)state;
	ctx_open(&c, NULL);
	start(&c, "mx.tern.example", TYPE_MX, &async);
	for (int i = 0; i < 4; i++) {
		m[i].r = c.r;
		assert_int_equal(
		    pthread_create(&t[i], NULL, sync_many_thread, &m[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(m[i].ok, 100);
	}
	loop_wait(&c);
	assert_answer(&async, 2);
	ctx_close(&c);
}

static void
test_nxdomain_nodata(void **state)
{
	struct ctx c;
	struct lookup nx, nodata;

	(void)state;
	ctx_open(&c, NULL);
	start(&c, "missing.tern.example", TYPE_A, &nx);
	start(&c, "a.tern.example", TYPE_MX, &nodata);
	loop_wait(&c);
	assert_int_equal(nx.status, 0);
	assert_int_equal(nx.rcode, 3);
	assert_true(nx.nxdomain);
	assert_false(nx.havedata);
	assert_int_equal(nx.count, 0);
	assert_int_equal(nodata.status, 0);
	assert_int_equal(nodata.rcode, 0);
	assert_false(nodata.nxdomain);
	assert_false(nodata.havedata);
	assert_int_equal(nodata.count, 0);
	ctx_close(&c);
}

static void
test_insecure_without_anchor(void **state)
{
	struct ctx c;
	struct lookup a, signed_a;

	(void)state;
	ctx_open(&c, NULL);
	start(&c, "a.tern.example", TYPE_A, &a);
	start(&c, "www.signed.example", TYPE_A, &signed_a);
	loop_wait(&c);
	assert_answer(&a, 1);
	assert_int_equal(a.security, DNS_INSECURE);
	assert_false(a.have_why);
	/* Signed, but nothing to validate it against. */
	assert_answer(&signed_a, 1);
	assert_int_equal(signed_a.security, DNS_INSECURE);
	ctx_close(&c);
}

static void
test_dnssec_secure_and_bogus(void **state)
{
	struct ctx c;
	struct lookup good, bad, nx, outside;

	(void)state;
	ctx_open(&c, srv.ds);
	start(&c, "www.signed.example", TYPE_A, &good);
	start(&c, "bad.signed.example", TYPE_A, &bad);
	start(&c, "missing.signed.example", TYPE_A, &nx);
	start(&c, "a.tern.example", TYPE_A, &outside);
	loop_wait(&c);
	assert_answer(&good, 1);
	assert_string_equal(good.value[0], "192.0.2.10");
	assert_int_equal(good.security, DNS_SECURE);
	assert_false(good.have_why);
	assert_int_equal(bad.status, 0);
	assert_int_equal(bad.security, DNS_BOGUS);
	assert_true(bad.have_why);
	assert_int_equal(nx.status, 0);
	assert_true(nx.nxdomain);
	assert_int_equal(nx.security, DNS_SECURE); /* proven by NSEC */
	assert_int_equal(outside.security, DNS_INSECURE);
	ctx_close(&c);
}

static void
test_anchor_after_lookup_refused(void **state)
{
	struct ctx c;
	struct lookup a;
	char *err = NULL;

	(void)state;
	ctx_open(&c, NULL);
	start(&c, "a.tern.example", TYPE_A, &a);
	assert_int_equal(dns_resolver_add_trust_anchor(c.r, srv.ds, &err), -1);
	assert_non_null(err);
	free(err);
	loop_wait(&c);
	ctx_close(&c);
}

static void
test_cancel(void **state)
{
	struct ctx c;
	struct lookup cancelled, other;
	struct dns_query *q;

	(void)state;
	ctx_open(&c, NULL);
	q = start(&c, "a.tern.example", TYPE_A, &cancelled);
	dns_cancel(&q);
	assert_null(q);
	c.pending--;
	dns_cancel(&q); /* NULL: no-op */
	start(&c, "a.tern.example", TYPE_AAAA, &other);
	loop_wait(&c);
	assert_int_equal(other.calls, 1);
	loop_run(&c, SETTLE_MS);
	assert_int_equal(cancelled.calls, 0);
	ctx_close(&c);
}

static void
test_free_with_outstanding(void **state)
{
	struct ctx c;
	struct lookup l[3];

	(void)state;
	ctx_open(&c, NULL);
	start(&c, "a.tern.example", TYPE_A, &l[0]);
	start(&c, "mx.tern.example", TYPE_MX, &l[1]);
	start(&c, "x", 0, &l[2]); /* a deferred failure, freed as well */
	dns_resolver_free(&c.r);
	assert_null(c.r);
	loop_run(&c, SETTLE_MS);
	for (int i = 0; i < 3; i++)
		assert_int_equal(l[i].calls, 0);
	ctx_close(&c);
}

static void
test_free_from_callback(void **state)
{
	struct ctx c;
	struct lookup l[4];

	(void)state;
	ctx_open(&c, NULL);
	for (int i = 0; i < 4; i++)
		start(&c, "a.tern.example", TYPE_A, &l[i]);
	c.free_on_answer = true;
	c.pending = 1; /* only the first answer may call back */
	loop_wait(&c);
	assert_null(c.r);
	loop_run(&c, SETTLE_MS);
	assert_int_equal(l[0].calls + l[1].calls + l[2].calls + l[3].calls, 1);
	ctx_close(&c);
}

static void
test_immediate_errors_deferred(void **state)
{
	struct ctx c;
	struct lookup longname, badtype, cancelled, emptylabel, longlabel;
	char name[400], label[80];
	struct dns_query *q;

	(void)state;
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	memset(label, 'b', sizeof(label) - 1); /* one label of 79 */
	label[sizeof(label) - 1] = '\0';
	ctx_open(&c, NULL);
	start(&c, name, TYPE_A, &longname);
	/* libunbound's own checks: also reported later, never inline */
	start(&c, "a..tern.example", TYPE_A, &emptylabel);
	start(&c, label, TYPE_A, &longlabel);
	start(&c, "a.tern.example", 70000, &badtype);
	q = start(&c, "a.tern.example", -1, &cancelled);
	dns_cancel(&q);
	c.pending--;
	loop_wait(&c);
	assert_int_equal(longname.calls, 1);
	assert_int_equal(longname.status, -1);
	assert_int_equal(badtype.calls, 1);
	assert_int_equal(badtype.status, -1);
	assert_int_equal(emptylabel.calls, 1);
	assert_int_equal(emptylabel.status, -1);
	assert_int_equal(longlabel.calls, 1);
	assert_int_equal(longlabel.status, -1);
	assert_int_equal(cancelled.calls, 0);
	ctx_close(&c);
}

/* --- configuration --- */

static void
test_server_syntax(void **state)
{
	static const char *const bad[] = {"bogus",       "127.0.0.1:",
	                                  "127.0.0.1:0", "127.0.0.1:65536",
	                                  "1.2.3.4:x",   "[::1",
	                                  "[::1]x",      "[127.0.0.1]:53",
	                                  "::1:zz",      "127.0.0.1:53:53",
	                                  ":53",         "[]:53"};
	static const char *const good[] = {"127.0.0.1", "127.0.0.1:5353",
	                                   "[::1]:53", "::1", "[2001:db8::1]"};
	struct event_base *base = event_base_new();
	struct dns_resolver *r;
	char *err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		r = dns_resolver_new(base, bad[i], NULL, &err);
		if (r != NULL)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_non_null(err);
		free(err);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err = NULL;
		r = dns_resolver_new(base, good[i], NULL, &err);
		if (r == NULL)
			fail_msg("refused \"%s\": %s", good[i], err);
		dns_resolver_free(&r);
	}
	/* The system resolver: /etc/resolv.conf, read now. */
	err = NULL;
	r = dns_resolver_new(base, "", NULL, &err);
	if (r == NULL)
		fail_msg("system resolver: %s", err);
	dns_resolver_free(&r);
	event_base_free(base);
}

static void
test_trust_anchor_file(void **state)
{
	static const struct {
		const char *text;
		bool ok;
	} cases[] = {
	    {"; comment only\n\n", false},
	    {"x. IN DS 1 13 2 ( AABB )\n", false},
	    {"$ORIGIN x.\n", false},
	    {"; header\nsigned.example. IN DS 1 13 2 AABB ; c\n\n", true},
	};
	struct event_base *base = event_base_new();
	struct dns_resolver *r;
	char path[256], *err;

	(void)state;
	path_in_dir(path, sizeof(path), "anchor.key");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(write_file("anchor.key", cases[i].text), 0);
		err = NULL;
		r = dns_resolver_new(base, srv.addr, path, &err);
		if ((r != NULL) != cases[i].ok)
			fail_msg("case %zu: %s", i, err ? err : "accepted");
		free(err);
		dns_resolver_free(&r);
	}
	err = NULL;
	assert_null(
	    dns_resolver_new(base, srv.addr, "/nonexistent/root.key", &err));
	assert_non_null(err);
	free(err);
	err = NULL;
	r = dns_resolver_new(base, srv.addr, "", &err); /* "" means none */
	assert_non_null(r);
	assert_int_equal(dns_resolver_add_trust_anchor(r, "a\nb", &err), -1);
	free(err);
	dns_resolver_free(&r);
	event_base_free(base);
}

/* --- decoders, no server --- */

static void
test_rdata_a_aaaa(void **state)
{
	static const uint8_t v4[] = {192, 0, 2, 1};
	static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
	char out[64], tiny[4];

	(void)state;
	assert_int_equal(dns_rdata_a(v4, 4, out, sizeof(out)), 0);
	assert_string_equal(out, "192.0.2.1");
	assert_int_equal(dns_rdata_a(v4, 3, out, sizeof(out)), -1);
	assert_int_equal(dns_rdata_a(v6, 5, out, sizeof(out)), -1);
	assert_int_equal(dns_rdata_a(v4, 4, tiny, sizeof(tiny)), -1);
	assert_int_equal(dns_rdata_aaaa(v6, 16, out, sizeof(out)), 0);
	assert_string_equal(out, "2001:db8::1");
	assert_int_equal(dns_rdata_aaaa(v6, 15, out, sizeof(out)), -1);
	assert_int_equal(dns_rdata_aaaa(v6, 4, out, sizeof(out)), -1);
	assert_int_equal(dns_rdata_aaaa(v4, 4, out, sizeof(out)), -1);
	assert_int_equal(dns_rdata_aaaa(v6, 16, tiny, sizeof(tiny)), -1);
}

#define RD(...) (const uint8_t[]){__VA_ARGS__}, sizeof((uint8_t[]){__VA_ARGS__})

static void
test_rdata_txt(void **state)
{
	const struct {
		const uint8_t *rd;
		size_t len;
		const char *want; /* NULL: malformed */
	} cases[] = {
	    {RD(3, 'a', 'b', 'c'), "abc"},
	    {RD(2, 'a', 'b', 1, 'c'), "abc"},
	    {RD(0), ""},
	    {RD(0, 2, 'h', 'i', 0), "hi"},
	    {RD(4, 'a', 'b', 'c'), NULL},    /* truncated string */
	    {RD(2, 'a', 'b', 3, 'c'), NULL}, /* truncated second */
	    {RD(3, 'a', 0, 'c'), NULL},      /* NUL inside */
	    {(const uint8_t *)"", 0, NULL},  /* no string at all */
	};
	char *out;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = dns_rdata_txt(cases[i].rd, cases[i].len, &out);
		if (cases[i].want == NULL) {
			assert_int_equal(rc, -1);
			assert_null(out);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_string_equal(out, cases[i].want);
		free(out);
	}
}

static void
test_rdata_txt_max(void **state)
{
	uint8_t rd[65535 + 1];
	size_t len = 0;
	char *out;

	(void)state;
	while (len + 256 <= 65535) {
		rd[len++] = 255;
		memset(rd + len, 'x', 255);
		len += 255;
	}
	assert_int_equal(dns_rdata_txt(rd, len, &out), 0);
	assert_int_equal(strlen(out), len / 256 * 255);
	free(out);
	memset(rd, 0, sizeof(rd));
	assert_int_equal(dns_rdata_txt(rd, sizeof(rd), &out), -1);
}

static void
test_rdata_mx(void **state)
{
	const struct {
		const uint8_t *rd;
		size_t len;
		const char *want; /* NULL: malformed */
	} cases[] = {
	    {RD(0, 10, 2, 'm', 'x', 1, 'x', 0), "mx.x"},
	    {RD(0, 0, 0), "."},
	    {RD(0, 10, 3, 'a', '.', 'b', 0), "a\\.b"},
	    {RD(0, 10, 3, 'a', ' ', '\\', 0), "a\\032\\\\"},
	    {RD(0, 10, 2, 0xff, 0x0a, 0), "\\255\\010"},
	    {RD(0, 10), NULL},                 /* no name */
	    {RD(0, 10, 2, 'm', 'x'), NULL},    /* no root label */
	    {RD(0, 10, 5, 'm', 'x', 0), NULL}, /* label past end */
	    {RD(0, 10, 0xc0, 0x0c), NULL},     /* compression */
	    {RD(0, 10, 0x40, 'a', 0), NULL},   /* extended label */
	    {RD(0, 10, 1, 'a', 0, 'z'), NULL}, /* trailing byte */
	};
	uint16_t pref;
	char host[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pref = 0;
		int rc = dns_rdata_mx(cases[i].rd, cases[i].len, &pref, host,
		                      sizeof(host));
		if (cases[i].want == NULL) {
			if (rc != -1)
				fail_msg("case %zu accepted", i);
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(pref, (cases[i].rd[0] << 8) | cases[i].rd[1]);
		assert_string_equal(host, cases[i].want);
	}
}

/* Label and total limits: 63 per label, 255 for the wire name. */
static void
test_rdata_mx_limits(void **state)
{
	uint8_t rd[2 + 300];
	char host[1100], tiny[4];
	uint16_t pref;
	size_t len = 2;

	(void)state;
	rd[0] = 0;
	rd[1] = 5;
	rd[len++] = 64; /* overlong label */
	memset(rd + len, 'a', 64);
	rd[len + 64] = 0;
	assert_int_equal(dns_rdata_mx(rd, len + 65, &pref, host, sizeof(host)),
	                 -1);
	/* 4 labels of 63: 4 * 64 + 1 = 257 wire bytes, too long */
	len = 2;
	for (int i = 0; i < 4; i++) {
		rd[len++] = 63;
		memset(rd + len, 'b', 63);
		len += 63;
	}
	rd[len++] = 0;
	assert_int_equal(dns_rdata_mx(rd, len, &pref, host, sizeof(host)), -1);
	/* 3 labels of 63 and one of 61: 255 bytes, the maximum */
	rd[2 + 3 * 64] = 61;
	len = 2 + 3 * 64 + 1 + 61;
	rd[len++] = 0;
	assert_int_equal(dns_rdata_mx(rd, len, &pref, host, sizeof(host)), 0);
	assert_int_equal(pref, 5);
	assert_int_equal(strlen(host), 253);
	/* does not fit the caller's buffer */
	assert_int_equal(dns_rdata_mx(rd, len, &pref, tiny, sizeof(tiny)), -1);
}

/* One group: meson reads TAP, which allows one plan per run. */
int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rdata_a_aaaa),
	    cmocka_unit_test(test_rdata_txt),
	    cmocka_unit_test(test_rdata_txt_max),
	    cmocka_unit_test(test_rdata_mx),
	    cmocka_unit_test(test_rdata_mx_limits),
	    cmocka_unit_test(test_server_syntax),
	    cmocka_unit_test(test_trust_anchor_file),
	    cmocka_unit_test(test_a_aaaa),
	    cmocka_unit_test(test_mx),
	    cmocka_unit_test(test_txt),
	    cmocka_unit_test(test_nxdomain_nodata),
	    cmocka_unit_test(test_sync_from_threads),
	    cmocka_unit_test(test_sync_many),
	    cmocka_unit_test(test_insecure_without_anchor),
	    cmocka_unit_test(test_dnssec_secure_and_bogus),
	    cmocka_unit_test(test_anchor_after_lookup_refused),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_free_with_outstanding),
	    cmocka_unit_test(test_free_from_callback),
	    cmocka_unit_test(test_immediate_errors_deferred),
	};

	alarm(25); /* last resort; the server dies with us */
	return cmocka_run_group_tests_name("dns", tests, group_setup,
	                                   group_teardown);
}
