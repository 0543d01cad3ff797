/* The Maildir side of the mailbox store: mailbox names ↔ Maildir++ folder
 * directories, message file names with their flags, directories, and the
 * message files themselves (CRLF → LF on the way in, LF → CRLF out).
 *
 * Folder names on disk (Maildir++): "A/B" is the directory ".A.B" beside
 * cur/ new/ tmp/ of INBOX. Each level is written in IMAP modified UTF-7
 * (RFC 3501 5.1.3, as Dovecot and Courier do): printable ASCII stands for
 * itself, "&" is "&-", and every other character (non-ASCII) goes in a
 * "&…-" run of modified base64 of UTF-16. A "." inside a level is written
 * the same way, as the character U+002E in a base64 run ("a.b" → "a&AC4-b"),
 * so the escaping stays plain modified UTF-7 that any IMAP-aware tool
 * decodes, and "." remains only the hierarchy separator. The result never
 * holds "/", a control byte, an empty level or a level "." or "..".
 *
 * SECURITY: names reach here only after mbox_name_valid(); directory names
 * from readdir() are accepted as folders only when they decode to a valid
 * name whose encoding is exactly that directory. Files are created O_EXCL,
 * 0600, and every open uses O_NOFOLLOW relative to a directory fd. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/utf8.h"
#include "core/xmalloc.h"
#include "store/mailbox_int.h"

#define MI_HOST_MAX 64
#define MI_CREATE_TRIES 16
#define MI_FILE_NAME_MAX 255

static const char mi_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static atomic_ulong mi_counter;

/* ---- UTF-8 ---- */

static void
mi_utf8_put(struct buf *out, uint32_t cp)
{
	uint8_t b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (uint8_t)cp, n = 1;
	} else if (cp < 0x800) {
		b[0] = (uint8_t)(0xc0 | (cp >> 6));
		b[1] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (uint8_t)(0xe0 | (cp >> 12));
		b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (uint8_t)(0xf0 | (cp >> 18));
		b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		b[3] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 4;
	}
	(void)buf_append(out, b, n);
}

/* ---- names ---- */

static bool
mi_level_is_inbox(const char *s, size_t len)
{
	return len == 5 && strncasecmp(s, "INBOX", 5) == 0;
}

char *
mi_name_canon(const char *name)
{
	char *canon = xstrdup(name);
	size_t first = strcspn(canon, "/");

	if (mi_level_is_inbox(canon, first))
		memcpy(canon, "INBOX", 5);
	return canon;
}

bool
mi_name_is_inbox(const char *canon)
{
	return strcmp(canon, "INBOX") == 0;
}

/* Modified base64 of the UTF-16 units[0..n), between "&" and "-". */
static void
mi_utf7_run(struct buf *out, const uint16_t *units, size_t n)
{
	uint32_t bits = 0;
	int nbits = 0;

	(void)buf_append_byte(out, '&');
	for (size_t i = 0; i < n; i++) {
		bits = (bits << 16) | units[i];
		nbits += 16;
		while (nbits >= 6) {
			nbits -= 6;
			(void)buf_append_byte(
			    out, (uint8_t)mi_b64[(bits >> nbits) & 0x3f]);
		}
	}
	if (nbits > 0)
		(void)buf_append_byte(
		    out, (uint8_t)mi_b64[(bits << (6 - nbits)) & 0x3f]);
	(void)buf_append_byte(out, '-');
}

/* One level (s[0..len), valid UTF-8) in modified UTF-7 with "." escaped. */
static void
mi_utf7_level(struct buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	uint16_t units[2 * MBOX_NAME_MAX];
	size_t nunits = 0, i = 0;

	while (i < len) {
		uint32_t cp = 0;
		size_t n = utf8_decode(p + i, len - i, &cp);

		if (n == 0) /* not reached after validation */
			cp = 0xfffd, n = 1;
		i += n;
		if (cp >= 0x20 && cp <= 0x7e && cp != '.') {
			if (nunits > 0)
				mi_utf7_run(out, units, nunits);
			nunits = 0;
			if (cp == '&')
				(void)buf_append(out, "&-", 2);
			else
				(void)buf_append_byte(out, (uint8_t)cp);
		} else if (cp >= 0x10000) {
			cp -= 0x10000;
			units[nunits++] = (uint16_t)(0xd800 | (cp >> 10));
			units[nunits++] = (uint16_t)(0xdc00 | (cp & 0x3ff));
		} else {
			units[nunits++] = (uint16_t)cp;
		}
	}
	if (nunits > 0)
		mi_utf7_run(out, units, nunits);
}

char *
mi_name_to_dir(const char *canon)
{
	struct buf out;
	const char *p = canon;
	char *dir;

	if (mi_name_is_inbox(canon))
		return xstrdup(MI_INBOX_DIR);
	buf_init(&out, 0);
	while (*p != '\0') {
		size_t len = strcspn(p, "/");

		(void)buf_append_byte(&out, '.');
		mi_utf7_level(&out, p, len);
		p += len;
		if (*p == '/')
			p++;
	}
	if (out.len == 0 || out.len > MI_FILE_NAME_MAX) {
		buf_free(&out);
		return NULL;
	}
	dir = xstrndup((const char *)out.data, out.len);
	buf_free(&out);
	return dir;
}

static int
mi_b64_value(char c)
{
	const char *p = strchr(mi_b64, c);

	return c != '\0' && p != NULL ? (int)(p - mi_b64) : -1;
}

/* Decode one modified UTF-7 level s[0..len) into out; -1 when invalid. */
static int
mi_utf7_decode_level(struct buf *out, const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint32_t bits = 0, high = 0;
		int nbits = 0;
		size_t start;

		if (s[i] != '&') {
			(void)buf_append_byte(out, (uint8_t)s[i]);
			i++;
			continue;
		}
		i++;
		if (i < len && s[i] == '-') {
			(void)buf_append_byte(out, '&');
			i++;
			continue;
		}
		start = i;
		for (; i < len && s[i] != '-'; i++) {
			int v = mi_b64_value(s[i]);

			if (v < 0)
				return -1;
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			if (nbits >= 16) {
				uint32_t unit;

				nbits -= 16;
				unit = (bits >> nbits) & 0xffff;
				if (unit >= 0xd800 && unit <= 0xdbff) {
					if (high != 0)
						return -1;
					high = unit;
					continue;
				}
				if (unit >= 0xdc00 && unit <= 0xdfff) {
					if (high == 0)
						return -1;
					unit = 0x10000 +
					       ((high - 0xd800) << 10) +
					       (unit - 0xdc00);
					high = 0;
				} else if (high != 0) {
					return -1;
				}
				mi_utf8_put(out, unit);
			}
		}
		/* A run ends with "-", holds something, leaves < 6 zero bits
		 * and no lone high surrogate. */
		if (i >= len || i == start || nbits >= 6 ||
		    (bits & ((1u << nbits) - 1)) != 0 || high != 0)
			return -1;
		i++;
	}
	return 0;
}

char *
mi_dir_to_name(const char *dir)
{
	struct buf out;
	const char *p;
	char *name = NULL, *canon, *again;

	if (dir[0] != '.' || dir[1] == '\0')
		return NULL;
	buf_init(&out, 4 * MI_FILE_NAME_MAX);
	p = dir + 1;
	while (*p != '\0') {
		size_t len = strcspn(p, ".");

		if (out.len > 0)
			(void)buf_append_byte(&out, '/');
		if (len == 0 || mi_utf7_decode_level(&out, p, len) < 0)
			goto out;
		p += len;
		if (*p == '.' && *++p == '\0')
			goto out; /* trailing "." */
	}
	if (buf_cstr(&out) == NULL || !mbox_name_valid((const char *)out.data))
		goto out;
	canon = mi_name_canon((const char *)out.data);
	again = mi_name_is_inbox(canon) ? NULL : mi_name_to_dir(canon);
	if (again != NULL && strcmp(again, dir) == 0) {
		name = canon;
		canon = NULL;
	}
	free(again);
	free(canon);
out:
	buf_free(&out);
	return name;
}

bool
mbox_name_valid(const char *name)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t len, i = 0, level_start = 0, levels = 1;
	char *canon, *dir;

	if (name == NULL || (len = strlen(name)) == 0 || len > MBOX_NAME_MAX)
		return false;
	while (i <= len) {
		uint32_t cp = 0;
		size_t n;

		if (i == len || p[i] == '/') {
			size_t l = i - level_start;

			if (l == 0 || (l == 1 && p[level_start] == '.') ||
			    (l == 2 && p[level_start] == '.' &&
			     p[level_start + 1] == '.'))
				return false;
			if (i == len)
				break;
			if (++levels > MBOX_DEPTH_MAX)
				return false;
			level_start = ++i;
			continue;
		}
		if ((n = utf8_decode(p + i, len - i, &cp)) == 0)
			return false;
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == '*' ||
		    cp == '%')
			return false;
		i += n;
	}
	/* Its directory must fit in a file name. */
	canon = mi_name_canon(name);
	dir = mi_name_to_dir(canon);
	free(canon);
	free(dir);
	return dir != NULL;
}

/* ---- message file names ---- */

static const struct {
	char letter;
	uint32_t flag;
} mi_letters[] = {
    {'D', MBOX_F_DRAFT}, {'F', MBOX_F_FLAGGED}, {'R', MBOX_F_ANSWERED},
    {'S', MBOX_F_SEEN},  {'T', MBOX_F_DELETED},
};
#define MI_NLETTERS (sizeof(mi_letters) / sizeof(mi_letters[0]))

size_t
mi_base_len(const char *filename)
{
	return strcspn(filename, ":");
}

uint32_t
mi_flags_from_name(const char *filename)
{
	const char *info = filename + mi_base_len(filename);
	uint32_t flags = 0;

	if (strncmp(info, ":2,", 3) != 0)
		return 0;
	for (const char *p = info + 3; *p != '\0'; p++)
		for (size_t i = 0; i < MI_NLETTERS; i++)
			if (*p == mi_letters[i].letter)
				flags |= mi_letters[i].flag;
	return flags;
}

static int
mi_char_cmp(const void *a, const void *b)
{
	return *(const unsigned char *)a - *(const unsigned char *)b;
}

char *
mi_name_with_flags(const char *filename, uint32_t flags)
{
	size_t base = mi_base_len(filename);
	const char *info = filename + base;
	char letters[128];
	size_t n = 0;

	if (strncmp(info, ":2,", 3) == 0) {
		for (const char *p = info + 3; *p != '\0'; p++) {
			bool ours = false;

			for (size_t i = 0; i < MI_NLETTERS; i++)
				ours |= *p == mi_letters[i].letter;
			/* Other letters (P, Dovecot's keyword letters) stay,
			 * once each. */
			if (!ours && (unsigned char)*p > 0x20 &&
			    (unsigned char)*p < 0x7f &&
			    memchr(letters, *p, n) == NULL &&
			    n < sizeof(letters) - 1)
				letters[n++] = *p;
		}
	}
	for (size_t i = 0; i < MI_NLETTERS; i++)
		if (flags & mi_letters[i].flag)
			letters[n++] = mi_letters[i].letter;
	qsort(letters, n, 1, mi_char_cmp);
	letters[n] = '\0';
	return xasprintf("%.*s:2,%s", (int)base, filename, letters);
}

static bool
mi_size_field(const char *base, size_t len, const char *key, uint64_t *v_r)
{
	size_t klen = strlen(key);
	const char *comma;

	/* key starts with ','; scanning for it is cheap (a first scan
	 * looks at 100,000 names). */
	for (size_t i = 0;
	     i + klen < len &&
	     (comma = memchr(base + i, key[0], len - i - klen)) != NULL;
	     i++) {
		uint64_t v = 0;
		size_t j;

		i = (size_t)(comma - base);
		if (memcmp(base + i, key, klen) != 0)
			continue;
		for (j = i + klen; j < len && base[j] >= '0' && base[j] <= '9';
		     j++) {
			if (v > (UINT64_MAX - 9) / 10)
				return false;
			v = v * 10 + (uint64_t)(base[j] - '0');
		}
		if (j == i + klen || (j < len && base[j] != ','))
			return false;
		*v_r = v;
		return true;
	}
	return false;
}

bool
mi_name_sizes(const char *filename, uint64_t *s_r, uint64_t *w_r)
{
	size_t len = mi_base_len(filename);

	return mi_size_field(filename, len, ",S=", s_r) &&
	       mi_size_field(filename, len, ",W=", w_r);
}

/* The host name with "/", ":", "," and "." written as octal escapes (the
 * Maildir spec asks it for "/" and ":"; "," would confuse ",S=") and
 * control or space bytes as "_". */
static void
mi_hostname(char *out, size_t size)
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

/* The host and pid parts of new names, read once per process (as
 * Dovecot reads the host name at start): two system calls per delivery
 * otherwise. A forked child reads its pid again. */
static pthread_once_t mi_name_once = PTHREAD_ONCE_INIT;
static char mi_name_host[MI_HOST_MAX + 1];
static atomic_long mi_name_pid;

static void
mi_name_pid_refresh(void)
{
	atomic_store(&mi_name_pid, (long)getpid());
}

static void
mi_name_init(void)
{
	mi_hostname(mi_name_host, sizeof(mi_name_host));
	mi_name_pid_refresh();
	(void)pthread_atfork(NULL, NULL, mi_name_pid_refresh);
}

char *
mi_unique_base(void)
{
	struct timespec ts;
	unsigned long q = atomic_fetch_add(&mi_counter, 1);

	(void)pthread_once(&mi_name_once, mi_name_init);
	clock_gettime(CLOCK_REALTIME, &ts);
	return xasprintf("%lld.M%ldP%ldQ%lu.%s", (long long)ts.tv_sec,
	                 ts.tv_nsec / 1000, atomic_load(&mi_name_pid), q,
	                 mi_name_host);
}

/* ---- directories ---- */

int64_t
mi_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
mi_mtime_ns(int fd, int64_t *ns_r)
{
	struct stat sb;

	if (fstat(fd, &sb) < 0)
		return -1;
	*ns_r = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
	return 0;
}

int
mi_fsync_dir(int fd, const char *what, char **error_r)
{
	if (fsync(fd) < 0)
		return mi_syserr(error_r, "fsync(%s)", what);
	return MBOX_OK;
}

int
mi_rename_noreplace(int olddirfd, const char *oldname, int newdirfd,
                    const char *newname)
{
	if (renameat2(olddirfd, oldname, newdirfd, newname, RENAME_NOREPLACE) ==
	    0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* A filesystem without RENAME_NOREPLACE: link refuses to replace. */
	if (linkat(olddirfd, oldname, newdirfd, newname, 0) < 0)
		return -1;
	(void)unlinkat(olddirfd, oldname, 0);
	return 0;
}

void
mi_dirs_close(struct mi_dirs *d)
{
	if (d->dirfd >= 0)
		close(d->dirfd);
	if (d->curfd >= 0)
		close(d->curfd);
	if (d->newfd >= 0)
		close(d->newfd);
	d->dirfd = d->curfd = d->newfd = -1;
}

int
mi_dirs_open(struct mbox_user *u, const char *dir, struct mi_dirs *d,
             char **error_r)
{
	*d = (struct mi_dirs){.dirfd = -1, .curfd = -1, .newfd = -1};
	d->dirfd = openat(u->dirfd, dir, MI_DIR_FLAGS);
	if (d->dirfd < 0) {
		if (errno == ENOENT)
			return mi_err(error_r, MBOX_ERR_NOTFOUND,
			              "%s/%s: mailbox directory missing",
			              u->dir, dir);
		return mi_syserr(error_r, "open(%s/%s)", u->dir, dir);
	}
	for (int tries = 0; tries < 2; tries++) {
		d->curfd = openat(d->dirfd, "cur", MI_DIR_FLAGS);
		d->newfd = openat(d->dirfd, "new", MI_DIR_FLAGS);
		if (d->curfd >= 0 && d->newfd >= 0)
			return MBOX_OK;
		if (errno != ENOENT || tries > 0)
			break;
		/* A folder made by hand without its subdirectories. */
		if (d->curfd >= 0)
			close(d->curfd);
		if (d->newfd >= 0)
			close(d->newfd);
		d->curfd = d->newfd = -1;
		int rc = mi_folder_make(u, dir, error_r);
		if (rc != MBOX_OK) {
			mi_dirs_close(d);
			return rc;
		}
	}
	mi_syserr(error_r, "open(%s/%s/cur)", u->dir, dir);
	mi_dirs_close(d);
	return MBOX_ERR_TEMP;
}

int
mi_folder_make(struct mbox_user *u, const char *dir, char **error_r)
{
	static const char *const subdirs[] = {"cur", "new", "tmp"};
	bool made = false, made_sub = false;
	int fd, rc = MBOX_ERR_TEMP;

	if (mkdirat(u->dirfd, dir, 0700) == 0)
		made = true;
	else if (errno != EEXIST)
		return mi_syserr(error_r, "mkdir(%s/%s)", u->dir, dir);
	if ((fd = openat(u->dirfd, dir, MI_DIR_FLAGS)) < 0)
		return mi_syserr(error_r, "open(%s/%s)", u->dir, dir);
	for (size_t i = 0; i < 3; i++) {
		if (mkdirat(fd, subdirs[i], 0700) == 0)
			made_sub = true;
		else if (errno != EEXIST) {
			mi_syserr(error_r, "mkdir(%s/%s/%s)", u->dir, dir,
			          subdirs[i]);
			goto out;
		}
	}
	if (strcmp(dir, MI_INBOX_DIR) != 0) {
		int f =
		    openat(fd, "maildirfolder",
		           O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

		if (f >= 0) {
			close(f);
		} else if (errno != EEXIST) {
			mi_syserr(error_r, "create(%s/%s/maildirfolder)",
			          u->dir, dir);
			goto out;
		}
	}
	if (made_sub && fsync(fd) < 0) {
		mi_syserr(error_r, "fsync(%s/%s)", u->dir, dir);
		goto out;
	}
	if (made && fsync(u->dirfd) < 0) {
		mi_syserr(error_r, "fsync(%s)", u->dir);
		goto out;
	}
	rc = MBOX_OK;
out:
	close(fd);
	return rc;
}

int
mi_rmtree(int dirfd, const char *name)
{
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	fd = openat(dirfd, name, MI_DIR_FLAGS);
	if (fd < 0)
		return unlinkat(dirfd, name, 0);
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) == 0)
			continue;
		if ((errno == EISDIR || errno == EPERM) &&
		    mi_rmtree(fd, de->d_name) == 0)
			continue;
		rc = -1;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
		rc = -1;
	return rc;
}

/* ---- message files ---- */

int
mi_write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int
mi_writer_open(struct mbox_user *u, struct mi_writer *w, char **error_r)
{
	*w = (struct mi_writer){.fd = -1};
	for (int tries = 0; tries < MI_CREATE_TRIES; tries++) {
		char *name = mi_unique_base();

		w->fd = openat(
		    u->tmpfd, name,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (w->fd >= 0) {
			w->tmpname = name;
			w->buf = xmalloc(MI_CHUNK);
			return MBOX_OK;
		}
		free(name);
		if (errno != EEXIST)
			break;
	}
	return mi_syserr(error_r, "create(%s/tmp)", u->dir);
}

static inline int
mi_writer_byte(struct mi_writer *w, uint8_t c)
{
	if (w->len == MI_CHUNK) {
		if (mi_write_all(w->fd, w->buf, w->len) < 0)
			return -1;
		w->len = 0;
	}
	w->buf[w->len++] = c;
	w->lf_size++;
	w->crlf_size += c == '\n' && w->last != '\r' ? 2 : 1;
	w->last = c;
	return 0;
}

/* n bytes without a CR, as mi_writer_byte would take them one by one. */
static int
mi_writer_span(struct mi_writer *w, const uint8_t *p, size_t n)
{
	const uint8_t *lf = p, *end = p + n;
	size_t lfs = 0;

	if (n == 0)
		return 0;
	while ((lf = memchr(lf, '\n', (size_t)(end - lf))) != NULL) {
		lfs++;
		lf++;
	}
	/* Each LF is 2 bytes in CRLF form, unless a CR is before it. */
	w->crlf_size += n + lfs - (p[0] == '\n' && w->last == '\r');
	w->lf_size += n;
	w->last = end[-1];
	while (n > 0) {
		size_t k = MI_CHUNK - w->len;

		if (k > n)
			k = n;
		memcpy(w->buf + w->len, p, k);
		w->len += k;
		p += k;
		n -= k;
		if (w->len == MI_CHUNK) {
			if (mi_write_all(w->fd, w->buf, w->len) < 0)
				return -1;
			w->len = 0;
		}
	}
	return 0;
}

/* CRLF → LF; a lone CR stays; a CR at the end of one call waits for the
 * next. Runs between CRs are copied whole. */
int
mi_writer_write(struct mi_writer *w, const void *data, size_t len)
{
	const uint8_t *p = data, *end = p + len;

	while (p < end) {
		const uint8_t *cr;

		if (w->cr) {
			w->cr = false;
			if (*p != '\n' && mi_writer_byte(w, '\r') < 0)
				return -1;
		}
		cr = memchr(p, '\r', (size_t)(end - p));
		if (mi_writer_span(w, p,
		                   (size_t)((cr != NULL ? cr : end) - p)) < 0)
			return -1;
		if (cr == NULL)
			break;
		w->cr = true;
		p = cr + 1;
	}
	return 0;
}

/* The buffered bytes out, and the internal date on the file. */
static int
mi_writer_flush_out(struct mbox_user *u, struct mi_writer *w,
                    int64_t internaldate, char **error_r)
{
	struct timespec times[2];

	if (w->cr) {
		w->cr = false;
		if (mi_writer_byte(w, '\r') < 0)
			return mi_syserr(error_r, "write(%s/tmp/%s)", u->dir,
			                 w->tmpname);
	}
	if (mi_write_all(w->fd, w->buf, w->len) < 0)
		return mi_syserr(error_r, "write(%s/tmp/%s)", u->dir,
		                 w->tmpname);
	w->len = 0;
	/* The internal date is the file's mtime, as Dovecot keeps it: a
	 * reindex finds it again. */
	times[0].tv_sec = 0;
	times[0].tv_nsec = UTIME_OMIT;
	times[1].tv_sec = (time_t)internaldate;
	times[1].tv_nsec = 0;
	if (futimens(w->fd, times) < 0)
		return mi_syserr(error_r, "futimens(%s/tmp/%s)", u->dir,
		                 w->tmpname);
	xfree(&w->buf);
	return MBOX_OK;
}

int
mi_writer_finish(struct mbox_user *u, struct mi_writer *w, int64_t internaldate,
                 char **error_r)
{
	int rc = mi_writer_flush_out(u, w, internaldate, error_r);

	return rc != MBOX_OK ? rc : mi_writer_sync(u, w, error_r);
}

int
mi_writer_finish_nosync(struct mbox_user *u, struct mi_writer *w,
                        int64_t internaldate, char **error_r)
{
	int rc = mi_writer_flush_out(u, w, internaldate, error_r);

	/* Writeback starts now, while the next files are written;
	 * durable_sync_started() waits for it. */
	if (rc == MBOX_OK)
		(void)sync_file_range(w->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	return rc;
}

int
mi_writer_sync(struct mbox_user *u, struct mi_writer *w, char **error_r)
{
	int rc;

	if (fsync(w->fd) < 0)
		return mi_syserr(error_r, "fsync(%s/tmp/%s)", u->dir,
		                 w->tmpname);
	rc = close(w->fd);
	w->fd = -1;
	if (rc < 0)
		return mi_syserr(error_r, "close(%s/tmp/%s)", u->dir,
		                 w->tmpname);
	return MBOX_OK;
}

void
mi_writer_abort(struct mbox_user *u, struct mi_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmpname != NULL)
		(void)unlinkat(u->tmpfd, w->tmpname, 0);
	free(w->tmpname);
	free(w->buf);
	*w = (struct mi_writer){.fd = -1};
}

int
mi_writer_link(struct mbox_user *u, struct mi_writer *w, int curfd,
               uint32_t flags, char **filename_r, char **error_r)
{
	char *base = xstrdup(w->tmpname);

	for (int tries = 0; tries < MI_CREATE_TRIES; tries++) {
		char *plain = xasprintf("%s,S=%llu,W=%llu", base,
		                        (unsigned long long)w->lf_size,
		                        (unsigned long long)w->crlf_size);
		char *name = mi_name_with_flags(plain, flags);
		int rc;

		free(plain);
		/* Never replaces a file: one call where link and unlink were
		 * two (link and unlink where the file system cannot). */
		rc = mi_rename_noreplace(u->tmpfd, w->tmpname, curfd, name);
		if (rc == 0) {
			xfree(&w->tmpname);
			free(base);
			*filename_r = name;
			return MBOX_OK;
		}
		free(name);
		if (errno != EEXIST)
			break;
		free(base);
		base = mi_unique_base();
	}
	free(base);
	return mi_syserr(error_r, "link(%s/tmp/%s)", u->dir, w->tmpname);
}

int
mi_file_crlf_size(int fd, uint64_t *w_r)
{
	uint8_t *in = xmalloc(MI_CHUNK), prev = 0;
	uint64_t w = 0;
	off_t off = 0;

	for (;;) {
		ssize_t r = pread(fd, in, MI_CHUNK, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(in);
			return -1;
		}
		if (r == 0)
			break;
		off += r;
		for (ssize_t i = 0; i < r; i++) {
			w += in[i] == '\n' && prev != '\r' ? 2 : 1;
			prev = in[i];
		}
		if ((size_t)r < MI_CHUNK)
			break; /* the end, as in mi_file_read_crlf */
	}
	free(in);
	*w_r = w;
	return 0;
}

int
mi_file_read_crlf(int fd, struct buf *out, uint64_t *n_r)
{
	uint8_t *in = xmalloc(MI_CHUNK), *conv = xmalloc(2 * MI_CHUNK);
	uint8_t prev = 0;
	uint64_t n = 0;
	off_t off = 0;
	int rc = 0;

	for (;;) {
		ssize_t r = pread(fd, in, MI_CHUNK, off);
		size_t o = 0;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -1;
			break;
		}
		if (r == 0)
			break;
		off += r;
		for (ssize_t i = 0; i < r; i++) {
			if (in[i] == '\n' && prev != '\r')
				conv[o++] = '\r';
			conv[o++] = in[i];
			prev = in[i];
		}
		if (buf_append(out, conv, o) < 0) {
			errno = ENOBUFS;
			rc = -1;
			break;
		}
		n += o;
		/* A regular file reads short only at its end (message files
		 * never grow): no second read to hear it. */
		if ((size_t)r < MI_CHUNK)
			break;
	}
	free(in);
	free(conv);
	*n_r = n;
	return rc;
}
