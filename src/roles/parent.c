/* parent: binds the listeners, reads certificates, starts and supervises the
 * four roles, reloads on SIGHUP or when certificate files change, and shuts
 * everything down in order on SIGTERM.
 * SECURITY: parent keeps root only to bind, read keys and restart children;
 * it never reads network input, and takes only READY/PING/PONG from
 * children (anything else breaks the link and restarts that child). */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/keys.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/proc.h"
#include "core/tls.h"
#include "core/xmalloc.h"
#include "roles/roles.h"

#define PEM_MAX (1024 * 1024)
/* A child that ran this long before dying starts its backoff afresh. */
#define CHILD_STABLE_MS 60000
#define CHILD_FIRST_RESTART_MS 200

struct child {
	struct parent *parent;
	const struct role_ops *ops;
	pid_t pid;
	struct ipc_peer *peer;
	bool ready;
	unsigned restarts; /* quick deaths in a row */
	struct timespec started;
	struct event *restart_ev;
};

struct cert_state {
	struct stat cert_st, key_st;
	char *cert_pem, *key_pem;
	size_t cert_len, key_len;
};

struct parent {
	struct event_base *base;
	char *config_path;
	struct config *cfg;
	struct listen_socket *socks;
	size_t nsocks;
	struct cert_state *certs; /* cfg->ncertificates entries */
	char *cert_error;         /* last reload failure, logged once */
	struct child children[4];
	bool stopping;
	int pid_fd;
	char *pid_path;
	struct event *sig_ev[4];
	struct event *cert_timer, *kill_timer;
};

static const struct role_ops *const child_roles[4] = {
    &role_lookup,
    &role_queue,
    &role_store,
    &role_front,
};

static const struct ipc_rule parent_rules[] = {
    {IPC_MSG_READY, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_PING, 0, 0, IPC_FD_NEVER},
    {IPC_MSG_PONG, 0, 0, IPC_FD_NEVER},
    {0, 0, 0, IPC_FD_NEVER},
};

static void child_spawn(struct child *c);
static void child_link_all(struct child *c);

static uint64_t
ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - t->tv_sec) * 1000 +
	       (uint64_t)((now.tv_nsec - t->tv_nsec) / 1000000);
}

static struct timeval
tv_ms(uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000),
	                     (suseconds_t)(ms % 1000) * 1000};
	return tv;
}

/* ---- certificates ---- */

static void
cert_state_free(struct cert_state *cs, size_t n)
{
	if (cs == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free(cs[i].cert_pem);
		free(cs[i].key_pem);
	}
	free(cs);
}

/* Read every configured certificate and key, and check that they make a
 * working TLS server. NULL with *error_r on any failure. */
static struct cert_state *
certs_load(const struct config *cfg, char **error_r)
{
	struct cert_state *cs;
	struct tls_pem *pems;
	struct tls_server *srv;
	char *why = NULL;

	if (cfg->ncertificates == 0)
		return NULL;
	cs = xcalloc(cfg->ncertificates, sizeof(*cs));
	pems = xcalloc(cfg->ncertificates, sizeof(*pems));
	for (size_t i = 0; i < cfg->ncertificates; i++) {
		const struct config_certificate *c = &cfg->certificates[i];

		if (stat(c->cert, &cs[i].cert_st) < 0 ||
		    stat(c->key, &cs[i].key_st) < 0 ||
		    (cs[i].cert_pem = keys_read_file(
		         c->cert, PEM_MAX, &cs[i].cert_len, &why)) == NULL ||
		    (cs[i].key_pem = keys_read_file(
		         c->key, PEM_MAX, &cs[i].key_len, &why)) == NULL) {
			*error_r = xasprintf(
			    "%s:%d: certificate %s: %s", c->file, c->line,
			    c->name, why != NULL ? why : strerror(errno));
			goto fail;
		}
		pems[i] = (struct tls_pem){cs[i].cert_pem, cs[i].cert_len,
		                           cs[i].key_pem, cs[i].key_len};
	}
	if ((srv = tls_server_new(pems, cfg->ncertificates, &why)) == NULL) {
		*error_r = xasprintf("%s: %s", cfg->path, why);
		goto fail;
	}
	tls_server_unref(&srv);
	free(pems);
	return cs;
fail:
	free(why);
	free(pems);
	cert_state_free(cs, cfg->ncertificates);
	return NULL;
}

static bool
stat_changed(const char *path, const struct stat *old)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return true;
	return st.st_dev != old->st_dev || st.st_ino != old->st_ino ||
	       st.st_size != old->st_size ||
	       st.st_mtim.tv_sec != old->st_mtim.tv_sec ||
	       st.st_mtim.tv_nsec != old->st_mtim.tv_nsec;
}

static void
certs_send(struct parent *p)
{
	struct child *front = &p->children[3];
	struct buf b;

	if (front->peer == NULL || p->certs == NULL)
		return;
	buf_init(&b, IPC_MAX_PAYLOAD);
	ipc_put_u32(&b, (uint32_t)p->cfg->ncertificates);
	for (size_t i = 0; i < p->cfg->ncertificates; i++) {
		ipc_put_bytes(&b, p->certs[i].cert_pem, p->certs[i].cert_len);
		ipc_put_bytes(&b, p->certs[i].key_pem, p->certs[i].key_len);
	}
	if (ipc_send(front->peer, IPC_MSG_CERTIFICATES, 0, -1, b.data, b.len) <
	    0)
		log_error(NULL, "event=certificates-too-large bytes=%zu",
		          b.len);
	buf_free(&b);
}

/* Load certificates again if asked (force) or if any file changed. */
static void
certs_refresh(struct parent *p, bool force)
{
	struct cert_state *cs;
	char *error = NULL;
	bool changed = force;

	for (size_t i = 0; i < p->cfg->ncertificates && !changed; i++) {
		const struct config_certificate *c = &p->cfg->certificates[i];

		changed = p->certs == NULL ||
		          stat_changed(c->cert, &p->certs[i].cert_st) ||
		          stat_changed(c->key, &p->certs[i].key_st);
	}
	if (!changed)
		return;
	if ((cs = certs_load(p->cfg, &error)) == NULL) {
		/* A renewal may be half written: keep the old pair, retry
		 * on the next tick, and say so once per distinct error. */
		if (error != NULL && (p->cert_error == NULL ||
		                      strcmp(error, p->cert_error) != 0))
			log_warn(NULL,
			         "event=certificate-reload-failed "
			         "error=%s action=keeping-old",
			         error);
		free(p->cert_error);
		p->cert_error = error;
		return;
	}
	xfree(&p->cert_error);
	cert_state_free(p->certs, p->cfg->ncertificates);
	p->certs = cs;
	for (size_t i = 0; i < p->cfg->ncertificates; i++)
		log_info(NULL, "event=certificate-loaded name=%s file=%s",
		         p->cfg->certificates[i].name,
		         p->cfg->certificates[i].cert);
	certs_send(p);
}

static void
cert_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	certs_refresh(arg, false);
}

/* ---- children ---- */

static void
child_send_setup(struct child *c)
{
	struct parent *p = c->parent;
	char *text = config_serialize(p->cfg);

	ipc_send(c->peer, IPC_MSG_CONFIG, 0, -1, text, strlen(text));
	free(text);
	if (c->ops != &role_front)
		return;
	for (size_t i = 0; i < p->nsocks; i++) {
		struct buf b;
		int fd = dup(p->socks[i].fd);

		if (fd < 0)
			fatal(EXIT_OSERR, "event=dup-failed error=%s",
			      strerror(errno));
		buf_init(&b, 0);
		ipc_put_u32(&b, (uint32_t)p->socks[i].listener);
		ipc_put_str(&b, p->socks[i].address);
		ipc_put_u32(&b, p->socks[i].port);
		ipc_send(c->peer, IPC_MSG_LISTENER, 0, fd, b.data, b.len);
		buf_free(&b);
	}
	certs_send(p);
}

static void
child_on_msg(struct ipc_peer *peer, struct ipc_msg *msg, void *arg)
{
	struct child *c = arg;

	switch (msg->type) {
	case IPC_MSG_READY:
		c->ready = true;
		log_info(NULL, "event=child-ready role=%s pid=%ld",
		         c->ops->name, (long)c->pid);
		break;
	case IPC_MSG_PING:
		ipc_send(peer, IPC_MSG_PONG, msg->reqid, -1, NULL, 0);
		break;
	default:
		break;
	}
}

static void
child_on_close(struct ipc_peer *peer, const char *why, void *arg)
{
	struct child *c = arg;

	(void)peer;
	/* A broken link means a broken child: end it; SIGCHLD restarts. */
	if (c->pid > 0 && !c->parent->stopping) {
		log_warn(NULL,
		         "event=child-link-closed role=%s pid=%ld "
		         "reason=%s",
		         c->ops->name, (long)c->pid, why);
		kill(c->pid, SIGKILL);
	}
}

static void
child_restart_cb(evutil_socket_t fd, short what, void *arg)
{
	struct child *c = arg;

	(void)fd;
	(void)what;
	if (!c->parent->stopping)
		child_spawn(c);
}

static void
child_exec(const struct role_ops *ops, int ipc_fd)
{
	char title[32];
	char *argv[] = {title, "__role", (char *)ops->name, NULL};
	sigset_t none;

	snprintf(title, sizeof(title), "tern: %s", ops->name);
	if (ipc_fd == ROLE_IPC_FD) {
		fcntl(ipc_fd, F_SETFD, 0);
	} else if (dup2(ipc_fd, ROLE_IPC_FD) < 0) {
		_exit(EXIT_OSERR);
	}
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execv("/proc/self/exe", argv);
	_exit(127);
}

static void
child_spawn(struct child *c)
{
	struct parent *p = c->parent;
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		fatal(EXIT_OSERR, "event=socketpair-failed error=%s",
		      strerror(errno));
	if ((pid = fork()) < 0)
		fatal(EXIT_OSERR, "event=fork-failed error=%s",
		      strerror(errno));
	if (pid == 0) {
		close(sv[0]);
		child_exec(c->ops, sv[1]);
	}
	close(sv[1]);
	c->pid = pid;
	c->ready = false;
	clock_gettime(CLOCK_MONOTONIC, &c->started);
	c->peer = ipc_peer_new(p->base, sv[0], "parent", parent_rules,
	                       child_on_msg, child_on_close, c);
	log_info(NULL, "event=child-started role=%s pid=%ld", c->ops->name,
	         (long)pid);
	child_send_setup(c);
	child_link_all(c);
}

/* Which roles talk directly: parent makes a socketpair for each pair once
 * both run, and again whenever one of them restarts. Indexes into
 * children[]. */
static const struct {
	size_t a, b;
} child_links[] = {
    {3, 0}, /* front ↔ lookup: logins, recipients */
    {3, 1}, /* front ↔ queue: spool files */
    {1, 2}, /* queue ↔ store: local delivery */
    {3, 2}, /* front ↔ store: IMAP sessions after login */
    {1, 0}, /* queue ↔ lookup: where a DSN goes */
};

static void
child_link_one(struct child *a, struct child *b)
{
	int sv[2];
	struct buf m;

	if (a->peer == NULL || b->peer == NULL)
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		log_error(NULL, "event=link-failed error=%s", strerror(errno));
		return;
	}
	buf_init(&m, 0);
	ipc_put_str(&m, b->ops->name);
	ipc_send(a->peer, IPC_MSG_LINK, 0, sv[0], m.data, m.len);
	buf_reset(&m);
	ipc_put_str(&m, a->ops->name);
	ipc_send(b->peer, IPC_MSG_LINK, 0, sv[1], m.data, m.len);
	buf_free(&m);
}

static void
child_link_all(struct child *c)
{
	struct parent *p = c->parent;
	size_t me = (size_t)(c - p->children);

	for (size_t i = 0; i < sizeof(child_links) / sizeof(child_links[0]);
	     i++) {
		if (child_links[i].a == me)
			child_link_one(c, &p->children[child_links[i].b]);
		else if (child_links[i].b == me)
			child_link_one(&p->children[child_links[i].a], c);
	}
}

static void parent_exit_if_done(struct parent *p);

static void
child_reaped(struct child *c, int status)
{
	struct parent *p = c->parent;
	uint64_t delay;

	if (WIFSIGNALED(status))
		log_msg(p->stopping ? LOG_LEVEL_INFO : LOG_LEVEL_ERROR, NULL,
		        "event=child-exited role=%s pid=%ld signal=%d",
		        c->ops->name, (long)c->pid, WTERMSIG(status));
	else
		log_msg(p->stopping && WEXITSTATUS(status) == 0
		            ? LOG_LEVEL_INFO
		            : LOG_LEVEL_ERROR,
		        NULL, "event=child-exited role=%s pid=%ld status=%d",
		        c->ops->name, (long)c->pid, WEXITSTATUS(status));
	c->pid = 0;
	ipc_peer_free(&c->peer);
	if (p->stopping) {
		parent_exit_if_done(p);
		return;
	}
	if (ms_since(&c->started) > CHILD_STABLE_MS)
		c->restarts = 0;
	delay = CHILD_FIRST_RESTART_MS;
	for (unsigned i = 0;
	     i < c->restarts && delay < p->cfg->restart_backoff_max_ms; i++)
		delay *= 2;
	if (delay > p->cfg->restart_backoff_max_ms)
		delay = p->cfg->restart_backoff_max_ms;
	c->restarts++;
	log_info(NULL, "event=child-restart role=%s delay_ms=%llu",
	         c->ops->name, (unsigned long long)delay);
	struct timeval tv = tv_ms(delay);
	evtimer_add(c->restart_ev, &tv);
}

static void
sigchld_cb(evutil_socket_t fd, short what, void *arg)
{
	struct parent *p = arg;
	pid_t pid;
	int status;

	(void)fd;
	(void)what;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (size_t i = 0; i < 4; i++)
			if (p->children[i].pid == pid)
				child_reaped(&p->children[i], status);
	}
}

/* ---- shutdown and reload ---- */

static void
parent_exit_if_done(struct parent *p)
{
	for (size_t i = 0; i < 4; i++)
		if (p->children[i].pid > 0)
			return;
	log_info(NULL, "event=stopped");
	event_base_loopbreak(p->base);
}

static void
kill_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct parent *p = arg;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < 4; i++) {
		if (p->children[i].pid > 0) {
			log_warn(NULL,
			         "event=child-kill role=%s pid=%ld "
			         "reason=shutdown-timeout",
			         p->children[i].ops->name,
			         (long)p->children[i].pid);
			kill(p->children[i].pid, SIGKILL);
		}
	}
}

static void
parent_stop(struct parent *p, const char *why)
{
	struct timeval tv;

	if (p->stopping)
		return;
	p->stopping = true;
	log_info(NULL, "event=stopping reason=%s", why);
	/* New connections are refused from now on. */
	listener_close_all(&p->socks, &p->nsocks);
	for (size_t i = 0; i < 4; i++) {
		struct child *c = &p->children[i];

		evtimer_del(c->restart_ev);
		if (c->peer != NULL)
			ipc_send(c->peer, IPC_MSG_SHUTDOWN, 0, -1, NULL, 0);
	}
	tv = tv_ms(p->cfg->shutdown_timeout_ms + 2000);
	evtimer_add(p->kill_timer, &tv);
	parent_exit_if_done(p);
}

/* Listeners stay as they were bound: a new listener set needs a restart. */
static bool
listeners_equal(const struct config *a, const struct config *b)
{
	if (a->nlisteners != b->nlisteners)
		return false;
	for (size_t i = 0; i < a->nlisteners; i++) {
		const struct config_listener *x = &a->listeners[i],
		                             *y = &b->listeners[i];

		if (x->service != y->service || x->port != y->port ||
		    x->naddresses != y->naddresses || x->tls != y->tls ||
		    x->proxy_protocol != y->proxy_protocol)
			return false;
		for (size_t j = 0; j < x->naddresses; j++)
			if (strcmp(x->addresses[j], y->addresses[j]) != 0)
				return false;
	}
	return true;
}

static void
parent_reload(struct parent *p)
{
	struct config *cfg, *old;
	char *error = NULL, *text;

	log_info(NULL, "event=reloading file=%s", p->config_path);
	if ((cfg = config_load(p->config_path, &error)) == NULL) {
		log_error(NULL,
		          "event=reload-failed error=%s "
		          "action=keeping-old-config",
		          error);
		free(error);
		return;
	}
	if (!listeners_equal(cfg, p->cfg))
		log_warn(NULL, "event=listeners-changed "
		               "action=\"restart tern to apply\"");
	/* Keep the bound listener set so front's indexes stay valid. */
	{
		struct config_listener *l = cfg->listeners;
		size_t n = cfg->nlisteners;

		cfg->listeners = p->cfg->listeners;
		cfg->nlisteners = p->cfg->nlisteners;
		p->cfg->listeners = l;
		p->cfg->nlisteners = n;
	}
	old = p->cfg;
	cert_state_free(p->certs, old->ncertificates);
	p->certs = NULL;
	p->cfg = cfg;
	config_free(&old);
	log_set_level(cfg->log_level);
	text = config_serialize(cfg);
	for (size_t i = 0; i < 4; i++)
		if (p->children[i].peer != NULL)
			ipc_send(p->children[i].peer, IPC_MSG_RELOAD, 0, -1,
			         text, strlen(text));
	free(text);
	certs_refresh(p, true);
	log_info(NULL, "event=reloaded");
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct parent *p = arg;

	(void)what;
	if (sig == SIGHUP) {
		if (!p->stopping)
			parent_reload(p);
	} else if (p->stopping) {
		log_info(NULL,
		         "event=signal-ignored signal=%d "
		         "reason=already-stopping",
		         (int)sig);
	} else {
		parent_stop(p, sig == SIGTERM ? "SIGTERM" : "SIGINT");
	}
}

/* ---- start-up ---- */

static int
parent_pidfile(struct parent *p, char **error_r)
{
	char buf[32];
	int n;

	p->pid_path = xasprintf("%s/tern.pid", p->cfg->data_dir);
	p->pid_fd = open(p->pid_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (p->pid_fd < 0) {
		*error_r = xasprintf("%s: %s", p->pid_path, strerror(errno));
		return -1;
	}
	if (flock(p->pid_fd, LOCK_EX | LOCK_NB) < 0) {
		n = (int)pread(p->pid_fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		*error_r = xasprintf("tern is already running with this "
		                     "data_dir (pid %s)",
		                     buf);
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(p->pid_fd, 0) < 0 ||
	    pwrite(p->pid_fd, buf, (size_t)n, 0) != n) {
		*error_r = xasprintf("%s: %s", p->pid_path, strerror(errno));
		return -1;
	}
	return 0;
}

/* lookup keeps directory.db and state.db at the top of data_dir, and
 * SQLite needs to create its journal files beside them: the directory is
 * writable by lookup's group, and sticky, so no role can rename or remove
 * what another owns (queue/, mail/…), just as in /tmp. */
static int
parent_share_data_dir(const struct config *cfg, char **error_r)
{
	uid_t uid;
	gid_t gid;

	if (proc_user_ids(cfg->lookup_user, &uid, &gid) < 0) {
		*error_r =
		    xasprintf("user %s does not exist", cfg->lookup_user);
		return -1;
	}
	if (chown(cfg->data_dir, 0, gid) < 0 ||
	    chmod(cfg->data_dir, 01775) < 0) {
		*error_r = xasprintf("%s: %s", cfg->data_dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* As root: the role users exist, and each data directory belongs to the
 * one role that uses it. */
static int
parent_prepare_dirs(const struct config *cfg, char **error_r)
{
	char *path;
	int rc = 0;
	const struct {
		const char *sub;
		int mode;
		const char *owner;
	} dirs[] = {
	    {"", 0755, NULL},
	    {"/empty", 0555, NULL},
	    {"/queue", 0700, cfg->queue_user},
	    {"/mail", 0700, cfg->store_user},
	    {"/dkim", 0700, cfg->lookup_user},
	};

	if (geteuid() == 0) {
		const char *users[] = {cfg->front_user, cfg->lookup_user,
		                       cfg->queue_user, cfg->store_user};

		for (size_t i = 0; i < 4; i++)
			if (proc_ensure_system_user(users[i], error_r) < 0)
				return -1;
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && rc == 0; i++) {
		path = xasprintf("%s%s", cfg->data_dir, dirs[i].sub);
		rc = proc_mkdir(path, dirs[i].mode, dirs[i].owner, error_r);
		free(path);
	}
	if (rc == 0 && geteuid() == 0)
		rc = parent_share_data_dir(cfg, error_r);
	return rc;
}

static bool
config_needs_tls(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].tls != LISTENER_TLS_NONE)
			return true;
	return false;
}

int
parent_main(const char *config_path, struct config *cfg)
{
	static struct parent parent;
	struct parent *p = &parent;
	const int sigs[4] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
	char *error = NULL;
	struct timeval tv;

	memset(p, 0, sizeof(*p));
	p->config_path = xstrdup(config_path);
	p->cfg = cfg;
	p->pid_fd = -1;
	proc_set_title("tern: parent");
	log_init("parent", cfg->log_level, true);
	if (cfg->log_syslog && log_open_syslog(cfg->syslog_facility) < 0)
		log_warn(NULL, "event=syslog-failed");
	signal(SIGPIPE, SIG_IGN);

	if (parent_prepare_dirs(cfg, &error) < 0)
		fatal(EXIT_OSERR, "event=start-failed error=%s", error);
	if (parent_pidfile(p, &error) < 0)
		fatal(EXIT_TEMPFAIL, "event=start-failed error=%s", error);
	if (config_needs_tls(cfg) && cfg->ncertificates == 0)
		fatal(EXIT_CONFIG,
		      "event=start-failed error=\"%s: a listener "
		      "uses TLS but no certificate block is "
		      "configured\"",
		      cfg->path);
	if (cfg->ncertificates > 0 &&
	    (p->certs = certs_load(cfg, &error)) == NULL)
		fatal(EXIT_CONFIG, "event=start-failed error=%s", error);
	if (listener_bind_all(cfg, &p->socks, &p->nsocks, &error) < 0)
		fatal(EXIT_UNAVAILABLE, "event=start-failed error=%s", error);

	if ((p->base = event_base_new()) == NULL)
		fatal(EXIT_OSERR, "event=event-base-failed");
	for (size_t i = 0; i < 4; i++) {
		p->sig_ev[i] = evsignal_new(
		    p->base, sigs[i],
		    sigs[i] == SIGCHLD ? sigchld_cb : signal_cb, p);
		evsignal_add(p->sig_ev[i], NULL);
	}
	p->cert_timer = event_new(p->base, -1, EV_PERSIST, cert_timer_cb, p);
	tv = tv_ms(cfg->certificate_check_interval_ms);
	event_add(p->cert_timer, &tv);
	p->kill_timer = evtimer_new(p->base, kill_timer_cb, p);

	log_info(NULL,
	         "event=starting version=%s config=%s listeners=%zu "
	         "uid=%u",
	         TERN_VERSION, cfg->path, p->nsocks, (unsigned)geteuid());
	for (size_t i = 0; i < 4; i++) {
		struct child *c = &p->children[i];

		c->parent = p;
		c->ops = child_roles[i];
		c->restart_ev = evtimer_new(p->base, child_restart_cb, c);
		child_spawn(c);
	}
	event_base_dispatch(p->base);

	unlink(p->pid_path);
	for (size_t i = 0; i < 4; i++) {
		event_free(p->sig_ev[i]);
		event_free(p->children[i].restart_ev);
	}
	event_free(p->cert_timer);
	event_free(p->kill_timer);
	cert_state_free(p->certs, p->cfg->ncertificates);
	free(p->cert_error);
	event_base_free(p->base);
	config_free(&p->cfg);
	free(p->pid_path);
	free(p->config_path);
	close(p->pid_fd);
	return 0;
}
