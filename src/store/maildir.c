/* Local delivery into Maildir: MAIL_ROOT/DOMAIN/LOCAL/{tmp,new,cur}. Each
 * recipient gets its own file, written to tmp/, fsync'd, linked into new/ and
 * new/ fsync'd before the recipient is reported delivered.
 * SECURITY: runs in store. The address is checked again as two path
 * components (no "/", no control bytes, no leading ".", 1..255 bytes); the
 * tree below the mail root is walked with openat(O_NOFOLLOW) and files are
 * created O_EXCL|O_NOFOLLOW, 0600. The message is streamed, never held whole.
 */
#include "store/maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"

#define MAILDIR_COMPONENT_MAX 255
#define MAILDIR_CHUNK (64 * 1024)
#define MAILDIR_HOST_MAX 100 /* keeps every file name well under 255 */
#define MAILDIR_CREATE_TRIES 10
#define MAILDIR_DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

/* The "Q" part of file names: unique within this process, across threads. */
static atomic_ulong maildir_counter;

/* An opened mailbox: its name parts and the directories delivery needs. */
struct maildir_box {
	char *local;
	char *domain;
	char *rel; /* "DOMAIN/LOCAL", for error messages */
	int tmp_fd;
	int new_fd;
};

static void
maildir_box_close(struct maildir_box *box)
{
	if (box->tmp_fd >= 0)
		close(box->tmp_fd);
	if (box->new_fd >= 0)
		close(box->new_fd);
	box->tmp_fd = box->new_fd = -1;
	xfree(&box->local);
	xfree(&box->domain);
	xfree(&box->rel);
}

/* "WHAT: strerror(errno)" into *error_r, e.g. "mkdir(d/u): Permission
 * denied". Every system error is temporary: a full or failing disk, or a
 * permission the operator can fix; only a bad address is permanent. */
static enum maildir_result maildir_syserr(char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum maildir_result
maildir_syserr(char **error_r, const char *fmt, ...)
{
	int err = errno;
	va_list ap;
	char *what;

	va_start(ap, fmt);
	what = xvasprintf(fmt, ap);
	va_end(ap);
	*error_r = xasprintf("%s: %s", what, strerror(err));
	free(what);
	return MAILDIR_TEMPFAIL;
}

/* A safe single path component: 1..255 bytes, no "/", no control byte, no
 * leading "." (which also refuses "." and ".."). A C string holds no NUL. */
static bool
maildir_component_ok(const char *s, size_t len)
{
	if (len == 0 || len > MAILDIR_COMPONENT_MAX || s[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '/' || c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* Split "local@domain" at the last "@" (a quoted local part may hold "@"). */
static int
maildir_split(const char *address, char **local_r, char **domain_r)
{
	const char *at;
	size_t local_len;

	if (address == NULL || (at = strrchr(address, '@')) == NULL)
		return -1;
	local_len = (size_t)(at - address);
	if (!maildir_component_ok(address, local_len) ||
	    !maildir_component_ok(at + 1, strlen(at + 1)))
		return -1;
	*local_r = xstrndup(address, local_len);
	*domain_r = xstrdup(at + 1);
	return 0;
}

/* Open name under dirfd as a directory (never through a symlink), creating
 * it 0700 first when missing. *created_r tells whether it is new: the caller
 * then fsyncs dirfd so that the creation is durable. */
static int
maildir_open_dir(int dirfd, const char *name, bool *created_r)
{
	*created_r = false;
	if (mkdirat(dirfd, name, 0700) == 0)
		*created_r = true;
	else if (errno != EEXIST)
		return -1;
	return openat(dirfd, name, MAILDIR_DIR_FLAGS);
}

static enum maildir_result
maildir_open(const char *mail_root, const char *address,
             struct maildir_box *box, char **error_r)
{
	static const char *const subdirs[] = {"tmp", "new", "cur"};
	enum maildir_result ret = MAILDIR_TEMPFAIL;
	int root_fd = -1, domain_fd = -1, box_fd = -1;
	bool domain_created, box_created, sub_created = false;

	*box = (struct maildir_box){.tmp_fd = -1, .new_fd = -1};
	if (maildir_split(address, &box->local, &box->domain) < 0) {
		*error_r = xstrdup("invalid mailbox address");
		return MAILDIR_PERMFAIL;
	}
	box->rel = xasprintf("%s/%s", box->domain, box->local);

	/* The mail root is the operator's path: it may be a symlink. */
	root_fd = open(mail_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0) {
		maildir_syserr(error_r, "open(mail root)");
		goto out;
	}
	domain_fd = maildir_open_dir(root_fd, box->domain, &domain_created);
	if (domain_fd < 0) {
		maildir_syserr(error_r, "mkdir(%s)", box->domain);
		goto out;
	}
	if (domain_created && fsync(root_fd) < 0) {
		maildir_syserr(error_r, "fsync(mail root)");
		goto out;
	}
	box_fd = maildir_open_dir(domain_fd, box->local, &box_created);
	if (box_fd < 0) {
		maildir_syserr(error_r, "mkdir(%s)", box->rel);
		goto out;
	}
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		if (mkdirat(box_fd, subdirs[i], 0700) == 0)
			sub_created = true;
		else if (errno != EEXIST) {
			maildir_syserr(error_r, "mkdir(%s/%s)", box->rel,
			               subdirs[i]);
			goto out;
		}
	}
	/* Children first, then the entry of the Maildir in its domain. */
	if (sub_created && fsync(box_fd) < 0) {
		maildir_syserr(error_r, "fsync(%s)", box->rel);
		goto out;
	}
	if (box_created && fsync(domain_fd) < 0) {
		maildir_syserr(error_r, "fsync(%s)", box->domain);
		goto out;
	}
	box->tmp_fd = openat(box_fd, "tmp", MAILDIR_DIR_FLAGS);
	if (box->tmp_fd < 0) {
		maildir_syserr(error_r, "open(%s/tmp)", box->rel);
		goto out;
	}
	box->new_fd = openat(box_fd, "new", MAILDIR_DIR_FLAGS);
	if (box->new_fd < 0) {
		maildir_syserr(error_r, "open(%s/new)", box->rel);
		goto out;
	}
	ret = MAILDIR_OK;
out:
	if (box_fd >= 0)
		close(box_fd);
	if (domain_fd >= 0)
		close(domain_fd);
	if (root_fd >= 0)
		close(root_fd);
	if (ret != MAILDIR_OK)
		maildir_box_close(box);
	return ret;
}

enum maildir_result
maildir_locate(const char *mail_root, const char *address, char **path_r,
               char **error_r)
{
	struct maildir_box box;
	enum maildir_result r;

	*path_r = NULL;
	*error_r = NULL;
	if ((r = maildir_open(mail_root, address, &box, error_r)) !=
	    MAILDIR_OK)
		return r;
	*path_r = xasprintf("%s/%s", mail_root, box.rel);
	maildir_box_close(&box);
	return MAILDIR_OK;
}

char *
maildir_path(const char *mail_root, const char *address, char **error_r)
{
	char *path, *error;

	maildir_locate(mail_root, address, &path, &error);
	if (error_r != NULL)
		*error_r = error;
	else
		free(error);
	return path;
}

/* The host name for file names, with "/", ":" and "," written as octal
 * escapes (Maildir spec; "," would confuse the ",S=" suffix) and any
 * control or space byte as "_". */
static void
maildir_hostname(char *out, size_t size)
{
	char host[256];
	size_t o = 0;

	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	for (const char *p = host; *p != '\0' && o + 5 <= size; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '/' || c == ':' || c == ',') {
			snprintf(out + o, size - o, "\\%03o", c);
			o += 4;
		} else if (c <= 0x20 || c >= 0x7f) {
			out[o++] = '_';
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
}

/* Create tmp/<seconds>.M<usec>P<pid>Q<counter>.<host>, O_EXCL; a name that
 * exists already (a reused pid, a stale file) just takes the next counter. */
static int
maildir_create_tmp(int tmp_fd, char **name_r)
{
	char host[MAILDIR_HOST_MAX + 1];
	struct timespec ts;

	maildir_hostname(host, sizeof(host));
	for (int try = 0; try < MAILDIR_CREATE_TRIES; try++) {
		unsigned long q = atomic_fetch_add(&maildir_counter, 1);
		char *name;
		int fd;

		if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
			return -1;
		name = xasprintf("%lld.M%ldP%ldQ%lu.%s", (long long)ts.tv_sec,
		                 ts.tv_nsec / 1000, (long)getpid(), q, host);
		fd = openat(
		    tmp_fd, name,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0) {
			*name_r = name;
			return fd;
		}
		free(name);
		if (errno != EEXIST)
			return -1;
	}
	errno = EEXIST;
	return -1;
}

/* Buffered output to the new file, counting the bytes written. */
struct maildir_out {
	int fd;
	uint8_t *buf;
	size_t len;
	unsigned long long size;
};

static int
maildir_out_flush(struct maildir_out *out)
{
	const uint8_t *p = out->buf;
	size_t left = out->len;

	while (left > 0) {
		ssize_t w = write(out->fd, p, left);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		p += w;
		left -= (size_t)w;
	}
	out->len = 0;
	return 0;
}

static inline int
maildir_out_byte(struct maildir_out *out, uint8_t c)
{
	if (out->len == MAILDIR_CHUNK && maildir_out_flush(out) < 0)
		return -1;
	out->buf[out->len++] = c;
	out->size++;
	return 0;
}

static int
maildir_out_str(struct maildir_out *out, const char *s)
{
	for (; *s != '\0'; s++) {
		if (maildir_out_byte(out, (uint8_t)*s) < 0)
			return -1;
	}
	return 0;
}

/* Copy the message from offset 0 of msg_fd, CRLF → LF (a lone CR stays),
 * 64 KiB at a time. A CR at the end of one chunk waits for the next. On
 * failure *read_failed_r tells a read error from a write error. */
static int
maildir_copy_message(int msg_fd, struct maildir_out *out, uint8_t *in,
                     bool *read_failed_r)
{
	off_t off = 0;
	bool cr = false;

	*read_failed_r = false;
	for (;;) {
		ssize_t r = pread(msg_fd, in, MAILDIR_CHUNK, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*read_failed_r = true;
			return -1;
		}
		if (r == 0)
			break;
		off += r;
		for (size_t i = 0; i < (size_t)r; i++) {
			uint8_t c = in[i];

			if (cr) {
				cr = false;
				if (c != '\n' &&
				    maildir_out_byte(out, '\r') < 0)
					return -1;
			}
			if (c == '\r') {
				cr = true;
				continue;
			}
			if (maildir_out_byte(out, c) < 0)
				return -1;
		}
	}
	if (cr && maildir_out_byte(out, '\r') < 0)
		return -1;
	return maildir_out_flush(out);
}

/* No CR, LF or other control byte may reach a header line. */
static bool
maildir_header_value_ok(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* Write the recipient's file into tmp/ and fsync it; *size_r is its size.
 * On failure the tmp file is removed. */
static enum maildir_result
maildir_write_tmp(struct maildir_box *box, int msg_fd, const char *return_path,
                  const char *rcpt, char **name_r, unsigned long long *size_r,
                  char **error_r)
{
	struct maildir_out out = {.fd = -1};
	uint8_t *in = NULL;
	char *name = NULL;
	bool read_failed = false;
	enum maildir_result ret = MAILDIR_TEMPFAIL;
	int rc;

	out.fd = maildir_create_tmp(box->tmp_fd, &name);
	if (out.fd < 0)
		return maildir_syserr(error_r, "create(%s/tmp)", box->rel);
	out.buf = xmalloc(MAILDIR_CHUNK);
	in = xmalloc(MAILDIR_CHUNK);
	if (maildir_out_str(&out, "Return-Path: <") < 0 ||
	    maildir_out_str(&out, return_path) < 0 ||
	    maildir_out_str(&out, ">\nDelivered-To: ") < 0 ||
	    maildir_out_str(&out, rcpt) < 0 ||
	    maildir_out_str(&out, "\n") < 0 ||
	    maildir_copy_message(msg_fd, &out, in, &read_failed) < 0) {
		if (read_failed)
			maildir_syserr(error_r, "pread(message)");
		else
			maildir_syserr(error_r, "write(%s/tmp/%s)", box->rel,
			               name);
		goto out;
	}
	if (fsync(out.fd) < 0) {
		maildir_syserr(error_r, "fsync(%s/tmp/%s)", box->rel, name);
		goto out;
	}
	rc = close(out.fd);
	out.fd = -1;
	if (rc < 0) {
		maildir_syserr(error_r, "close(%s/tmp/%s)", box->rel, name);
		goto out;
	}
	ret = MAILDIR_OK;
	*name_r = name;
	name = NULL;
	*size_r = out.size;
out:
	if (out.fd >= 0)
		close(out.fd);
	if (name != NULL) {
		(void)unlinkat(box->tmp_fd, name, 0);
		free(name);
	}
	free(out.buf);
	free(in);
	return ret;
}

static enum maildir_result
maildir_deliver_one(const char *mail_root, int msg_fd, const char *return_path,
                    const char *rcpt, char **error_r)
{
	struct maildir_box box;
	enum maildir_result ret;
	unsigned long long size = 0;
	char *name = NULL, *new_name = NULL;
	bool linked = true;

	ret = maildir_open(mail_root, rcpt, &box, error_r);
	if (ret != MAILDIR_OK)
		return ret;
	ret = maildir_write_tmp(&box, msg_fd, return_path, rcpt, &name, &size,
	                        error_r);
	if (ret != MAILDIR_OK)
		goto out;
	ret = MAILDIR_TEMPFAIL;
	new_name = xasprintf("%s,S=%llu", name, size);
	/* link() refuses to replace an existing file, which rename() would do
	 * silently; filesystems without hard links get rename(). */
	if (linkat(box.tmp_fd, name, box.new_fd, new_name, 0) < 0) {
		if (errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS) {
			maildir_syserr(error_r, "link(%s/new/%s)", box.rel,
			               new_name);
			goto out;
		}
		linked = false;
		if (renameat(box.tmp_fd, name, box.new_fd, new_name) < 0) {
			maildir_syserr(error_r, "rename(%s/new/%s)", box.rel,
			               new_name);
			goto out;
		}
	}
	if (linked && unlinkat(box.tmp_fd, name, 0) < 0)
		log_warn(NULL,
		         "event=maildir_unlink_tmp maildir=%s file=%s "
		         "error=%s",
		         box.rel, name, strerror(errno));
	xfree(&name);
	/* The delivery is durable once new/ is. */
	if (fsync(box.new_fd) < 0) {
		maildir_syserr(error_r, "fsync(%s/new)", box.rel);
		/* Better no copy than one the retry duplicates; the unlink
		 * may fail to persist too, and then the retry duplicates. */
		(void)unlinkat(box.new_fd, new_name, 0);
		goto out;
	}
	/* Only the removal of the tmp name depends on this: a stale tmp file
	 * is harmless, so a failure is logged, not returned. */
	if (fsync(box.tmp_fd) < 0)
		log_warn(NULL, "event=maildir_fsync_tmp maildir=%s error=%s",
		         box.rel, strerror(errno));
	ret = MAILDIR_OK;
out:
	if (name != NULL) {
		(void)unlinkat(box.tmp_fd, name, 0);
		free(name);
	}
	free(new_name);
	maildir_box_close(&box);
	return ret;
}

/* One file per recipient, because the Delivered-To line differs: hard-linking
 * a single file into every Maildir (as some MDAs do) works only when no
 * per-recipient header is written into the file. */
void
maildir_deliver(const char *mail_root, int msg_fd, const char *return_path,
                const char *const *rcpts, size_t n,
                enum maildir_result *results, char **errors)
{
	bool rp_ok;

	if (return_path == NULL)
		return_path = "";
	rp_ok = maildir_header_value_ok(return_path);
	for (size_t i = 0; i < n; i++) {
		errors[i] = NULL;
		if (!rp_ok) {
			results[i] = MAILDIR_PERMFAIL;
			errors[i] = xstrdup("invalid return path");
			continue;
		}
		results[i] = maildir_deliver_one(mail_root, msg_fd, return_path,
		                                 rcpts[i], &errors[i]);
	}
}
