/* Mailbox directories: MAIL_ROOT/DOMAIN/LOCAL/{tmp,new,cur}, found or
 * created (durably) for an address. Delivery into them is the mailbox
 * index's (src/store/mailbox_append.c).
 * SECURITY: runs in store. The address is checked again as two path
 * components (no "/", no control bytes, no leading ".", 1..255 bytes); the
 * tree below the mail root is walked with openat(O_NOFOLLOW), so no
 * symlink below the root is followed.
 */
#include "store/maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/xmalloc.h"

#define MAILDIR_COMPONENT_MAX 255
#define MAILDIR_DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

/* An opened mailbox: its name parts, and tmp/ and new/ opened (proof that
 * both are directories reached through no symlink). */
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
	if ((r = maildir_open(mail_root, address, &box, error_r)) != MAILDIR_OK)
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

bool
maildir_header_value_ok(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}
