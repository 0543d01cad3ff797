/* New messages in a mailbox: APPEND, local delivery (streamed from the
 * spool file) and COPY/MOVE. A new file is written to the user's tmp/
 * (CRLF → LF), fsync'd, and moved into the mailbox's cur/ under the index
 * write lock; cur/ is fsync'd and then the transaction that gives it its
 * UID commits (ARCHITECTURE.md §1 invariant 6).
 * SECURITY: message bytes are data only here (the text index's parser
 * reads them, mailbox_text.c); memory stays bounded whatever the message
 * size (64 KiB chunks; MI_WHOLE_MAX for a message read whole, and
 * MI_TEXT_BATCH_MAX of row texts per call); quota and keyword limits are
 * checked in the transaction that adds the message. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/durable.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "store/mailbox_int.h"

/* A finished tmp file goes into mailbox b: move, fsync, row, commit.
 * Takes the lock itself; b is re-read in it. */
static int
mi_add_file(struct mbox_user *u, const char *canon, struct mi_writer *w,
            uint32_t flags, const char *keywords, int64_t internaldate,
            uint32_t *uidvalidity_r, uint32_t *uid_r, char **error_r)
{
	struct mi_dirs d = {-1, -1, -1};
	struct mi_box b = {0};
	char *kw = NULL, *filename = NULL;
	uint32_t uid;
	int rc;

	if ((rc = mi_begin(u, error_r)) != MBOX_OK)
		return rc;
	if ((rc = mi_box_by_name(u, canon, &b, error_r)) != MBOX_OK)
		goto fail;
	if ((rc = mi_quota_check(u, w->crlf_size, error_r)) != MBOX_OK ||
	    (rc = mi_keywords_register(u, b.id, keywords, &kw, error_r)) !=
	        MBOX_OK ||
	    (rc = mi_dirs_open(u, b.dir, &d, error_r)) != MBOX_OK)
		goto fail;
	if (b.uidnext == UINT32_MAX) {
		rc = mi_err(error_r, MBOX_ERR_LIMIT, "%s: out of UIDs", b.name);
		goto fail;
	}
	if ((rc = mi_writer_link(u, w, d.curfd, flags, &filename, error_r)) !=
	    MBOX_OK)
		goto fail;
	uid = b.uidnext;
	if ((rc = mi_fsync_dir(d.curfd, b.dir, error_r)) != MBOX_OK ||
	    (rc = mi_msg_insert(u, b.id, uid, b.highestmodseq + 1, flags, kw,
	                        internaldate, w->crlf_size, true, filename,
	                        error_r)) != MBOX_OK ||
	    (rc = mi_text_added(u, b.id, uid, d.curfd, filename, error_r)) !=
	        MBOX_OK ||
	    (rc = mi_box_set_counters(u, b.id, uid + 1, b.highestmodseq + 1,
	                              error_r)) != MBOX_OK ||
	    (rc = mi_commit(u, error_r)) != MBOX_OK)
		goto fail;
	if (uidvalidity_r != NULL)
		*uidvalidity_r = b.uidvalidity;
	if (uid_r != NULL)
		*uid_r = uid;
	rc = MBOX_OK;
	goto out;
fail:
	mi_rollback(u);
	if (filename != NULL)
		(void)unlinkat(d.curfd, filename, 0);
out:
	free(filename);
	free(kw);
	mi_dirs_close(&d);
	mi_box_clear(&b);
	return rc;
}

int
mbox_append(struct mbox_user *u, const char *name, const char *data, size_t len,
            uint32_t flags, const char *keywords, int64_t internaldate,
            uint32_t *uidvalidity_r, uint32_t *uid_r, char **error_r)
{
	struct mi_writer w = {.fd = -1};
	struct mi_box b;
	char *canon = NULL;
	int rc;

	if (!mbox_name_valid(name))
		return mi_err(error_r, MBOX_ERR_BADNAME,
		              "invalid mailbox name");
	if (!mi_keywords_valid(keywords))
		return mi_err(error_r, MBOX_ERR_BADNAME, "invalid keyword");
	canon = mi_name_canon(name);
	/* Fail early (TRYCREATE) before writing anything. */
	if ((rc = mi_box_lookup(u, canon, &b, error_r)) != MBOX_OK) {
		free(canon);
		return rc;
	}
	mi_box_clear(&b);
	if (internaldate <= 0)
		internaldate = (int64_t)time(NULL);
	flags &= MI_FLAGS_MASK;
	if ((rc = mi_writer_open(u, &w, error_r)) != MBOX_OK)
		goto out;
	if (mi_writer_write(&w, data, len) < 0) {
		rc = mi_syserr(error_r, "write(%s/tmp/%s)", u->dir, w.tmpname);
		goto out;
	}
	if ((rc = mi_writer_finish(u, &w, internaldate, error_r)) != MBOX_OK)
		goto out;
	rc = mi_add_file(u, canon, &w, flags, keywords, internaldate,
	                 uidvalidity_r, uid_r, error_r);
out:
	mi_writer_abort(u, &w);
	free(canon);
	return rc;
}

/* A message up to this size (prefix included) is read whole at delivery,
 * and its text index row is made from memory instead of from its file
 * read back: the file is then only written. */
#define MI_WHOLE_MAX (1024 * 1024)
/* The row texts of one mbox_deliver_many kept for its transaction, in
 * all; past this an item's row is made from its file in the transaction,
 * as before. */
#define MI_TEXT_BATCH_MAX (8 * 1024 * 1024)

/* Where an item's row text is in u->text_batch. */
struct mi_words {
	size_t off, len;
	bool ok;
};

/* Appends the rest of the message from msg_fd at *off to w through in
 * (MI_CHUNK bytes); *more_r: there was some. */
static int
mi_deliver_stream(struct mbox_user *u, int msg_fd, off_t *off, uint8_t *in,
                  struct mi_writer *w, bool *more_r, char **error_r)
{
	*more_r = false;
	for (;;) {
		ssize_t r = pread(msg_fd, in, MI_CHUNK, *off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return mi_syserr(error_r, "pread(message)");
		if (r == 0)
			return MBOX_OK;
		*off += r;
		*more_r = true;
		if (mi_writer_write(w, in, (size_t)r) < 0)
			return mi_syserr(error_r, "write(%s/tmp/%s)", u->dir,
			                 w->tmpname);
	}
}

/* The prefix and the whole message from msg_fd (offset 0, CRLF, size
 * bytes) into u->text_msg; -1: read error. */
static int
mi_deliver_read(struct mbox_user *u, const char *prefix, int msg_fd,
                size_t size, off_t *off)
{
	struct buf *msg = &u->text_msg;

	buf_reset(msg);
	if ((prefix != NULL && buf_append_str(msg, prefix) < 0) ||
	    buf_reserve(msg, size) < 0)
		return -1;
	while ((size_t)*off < size) {
		ssize_t r = pread(msg_fd, msg->data + msg->len,
		                  size - (size_t)*off, *off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		*off += r;
		msg->len += (size_t)r;
	}
	return 0;
}

/* One delivery's tmp file: the prefix, then the message from msg_fd
 * (offset 0, CRLF); fsync'd unless sync_later (then mi_deliver_sync).
 * A message of at most MI_WHOLE_MAX is read whole into u->text_msg and
 * its row text appended to u->text_batch (*words_r); a bigger one is
 * streamed in MI_CHUNK pieces, memory staying bounded. */
static int
mi_deliver_write(struct mbox_user *u, const struct mbox_delivery *it,
                 int64_t now, uint8_t *in, bool sync_later, struct mi_writer *w,
                 struct mi_words *words_r, char **error_r)
{
	size_t plen = it->prefix != NULL ? strlen(it->prefix) : 0;
	struct stat st;
	off_t off = 0;
	bool whole, more;
	int rc;

	*words_r = (struct mi_words){0};
	whole = u->text_batch.len < MI_TEXT_BATCH_MAX && plen <= MI_WHOLE_MAX &&
	        fstat(it->msg_fd, &st) == 0 && st.st_size >= 0 &&
	        (uint64_t)st.st_size <= MI_WHOLE_MAX - plen;
	if ((rc = mi_writer_open(u, w, error_r)) != MBOX_OK)
		return rc;
	if (whole) {
		if (mi_deliver_read(u, it->prefix, it->msg_fd,
		                    (size_t)st.st_size, &off) < 0)
			return mi_syserr(error_r, "pread(message)");
		if (mi_writer_write(w, u->text_msg.data, u->text_msg.len) < 0)
			return mi_syserr(error_r, "write(%s/tmp/%s)", u->dir,
			                 w->tmpname);
	} else if (it->prefix != NULL &&
	           mi_writer_write(w, it->prefix, plen) < 0) {
		return mi_syserr(error_r, "write(%s/tmp/%s)", u->dir,
		                 w->tmpname);
	}
	/* Whatever fstat did not count: the file is then indexed from
	 * disk. */
	if ((rc = mi_deliver_stream(u, it->msg_fd, &off, in, w, &more,
	                            error_r)) != MBOX_OK)
		return rc;
	if (whole && !more) {
		words_r->off = u->text_batch.len;
		mi_text_words(u, (const char *)u->text_msg.data,
		              u->text_msg.len, &u->text_batch);
		words_r->len = u->text_batch.len - words_r->off;
		words_r->ok = true;
	}
	if (sync_later)
		return mi_writer_finish_nosync(u, w, now, error_r);
	return mi_writer_finish(u, w, now, error_r);
}

/* A mailbox some items of one mbox_deliver_many go to: read once in its
 * transaction; its new UIDs share one MODSEQ. */
struct mi_target {
	struct mi_box b;
	struct mi_dirs d;
	uint32_t uidnext; /* the next UID this call gives */
	uint32_t text_next, text_was; /* mi_text_next, now and before */
	bool used;
};

/* The state of one item between its write and the commit. */
struct mi_item {
	struct mi_writer w;
	struct mi_words words; /* its row text, made as it was written */
	char *filename; /* moved into the target's cur/ */
	struct mi_target *t;
};

/* Inside the transaction: the mailbox for canonical name (else INBOX),
 * one mi_target per mailbox. */
static int
mi_target_get(struct mbox_user *u, const char *canon, struct mi_target *ts,
              size_t *nt, struct mi_target **t_r, char **error_r)
{
	struct mi_box b = {0};
	int rc;

	rc = mi_box_by_name(u, canon, &b, error_r);
	if (rc == MBOX_ERR_NOTFOUND) {
		if (error_r != NULL)
			xfree(error_r);
		rc = mi_box_by_name(u, "INBOX", &b, error_r);
	}
	if (rc != MBOX_OK)
		return rc;
	for (size_t i = 0; i < *nt; i++) {
		if (ts[i].b.id == b.id) {
			mi_box_clear(&b);
			*t_r = &ts[i];
			return MBOX_OK;
		}
	}
	ts[*nt].b = b;
	if ((rc = mi_dirs_open(u, b.dir, &ts[*nt].d, error_r)) != MBOX_OK) {
		mi_box_clear(&ts[*nt].b);
		return rc;
	}
	ts[*nt].uidnext = b.uidnext;
	if ((rc = mi_text_next(u, b.id, &ts[*nt].text_next, error_r)) !=
	    MBOX_OK) {
		mi_dirs_close(&ts[*nt].d);
		mi_box_clear(&ts[*nt].b);
		return rc;
	}
	ts[*nt].text_was = ts[*nt].text_next;
	*t_r = &ts[(*nt)++];
	return MBOX_OK;
}

/* Inside the transaction: item i linked and given its row; an error of
 * this item alone (quota, UIDs, link) is its own, one of the index
 * (MBOX_ERR_TEMP) ends the call. */
static int
mi_deliver_link(struct mbox_user *u, struct mbox_delivery *it,
                struct mi_item *m, int64_t now, struct mi_target *ts,
                size_t *nt)
{
	const char *name =
	    it->name != NULL && mbox_name_valid(it->name) ? it->name : "INBOX";
	char *canon = mi_name_canon(name);
	struct mi_target *t;
	uint32_t flags = it->flags & MI_FLAGS_MASK;
	int rc;

	rc = mi_target_get(u, canon, ts, nt, &t, &it->error);
	free(canon);
	if (rc != MBOX_OK)
		return rc;
	if ((rc = mi_quota_check(u, m->w.crlf_size, &it->error)) != MBOX_OK)
		return rc;
	if (t->uidnext == UINT32_MAX)
		return mi_err(&it->error, MBOX_ERR_LIMIT, "%s: out of UIDs",
		              t->b.name);
	if ((rc = mi_writer_link(u, &m->w, t->d.curfd, flags, &m->filename,
	                         &it->error)) != MBOX_OK)
		return rc;
	m->t = t;
	t->used = true;
	it->uid = t->uidnext++;
	if ((rc = mi_msg_insert(u, t->b.id, it->uid, t->b.highestmodseq + 1,
	                        flags, NULL, now, m->w.crlf_size, true,
	                        m->filename, &it->error)) != MBOX_OK)
		return rc;
	if (t->text_next != it->uid) {
		/* Older messages are not in the text index yet: this one
		 * waits for mbox_text_catch_up with them. */
		u->text_lag = true;
		return MBOX_OK;
	}
	if (m->words.ok)
		rc = mi_text_put_words(u, t->b.id, it->uid,
		                       u->text_batch.data + m->words.off,
		                       m->words.len, &it->error);
	else
		rc = mi_text_add_file(u, t->b.id, it->uid, t->d.curfd,
		                      m->filename, &it->error);
	if (rc != MBOX_OK)
		return rc;
	t->text_next++;
	return MBOX_OK;
}

/* Inside the transaction, once every item is linked: each used cur/
 * fsync'd, the counters set, the commit. */
static int
mi_deliver_commit(struct mbox_user *u, struct mi_target *ts, size_t nt,
                  char **error_r)
{
	int rc;

	for (size_t i = 0; i < nt; i++) {
		if (!ts[i].used)
			continue;
		if ((rc = mi_fsync_dir(ts[i].d.curfd, ts[i].b.dir, error_r)) !=
		        MBOX_OK ||
		    (rc = mi_box_set_counters(u, ts[i].b.id, ts[i].uidnext,
		                              ts[i].b.highestmodseq + 1,
		                              error_r)) != MBOX_OK ||
		    (ts[i].text_next != ts[i].text_was &&
		     (rc = mi_text_set_next(u, ts[i].b.id, ts[i].text_next,
		                            error_r)) != MBOX_OK)) {
			mi_rollback(u);
			return rc;
		}
	}
	return mi_commit(u, error_r);
}

/* Whether an item before i goes to the same mailbox name. */
static bool
mi_name_seen(const struct mbox_delivery *items, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (items[j].name != NULL &&
		    strcmp(items[j].name, items[i].name) == 0)
			return true;
	return false;
}

/* The files of the items written so far on disk at once, and closed; an
 * item whose file did not make it fails. Each file's writeback started
 * when it was finished (mi_writer_finish_nosync). */
static void
mi_deliver_sync(struct mbox_user *u, struct mbox_delivery *items,
                struct mi_item *m, size_t n)
{
	int *fds = xcalloc(n, sizeof(*fds)), *errs = xcalloc(n, sizeof(*errs));
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (items[i].rc == MBOX_OK)
			fds[k++] = m[i].w.fd;
	if (k > 0)
		(void)durable_sync_started(-1, fds, k, errs);
	k = 0;
	for (size_t i = 0; i < n; i++) {
		int err;

		if (items[i].rc != MBOX_OK)
			continue;
		err = errs[k++];
		if (close(m[i].w.fd) < 0 && err == 0)
			err = errno;
		m[i].w.fd = -1;
		if (err != 0) {
			errno = err;
			items[i].rc =
			    mi_syserr(&items[i].error, "fsync(%s/tmp/%s)",
			              u->dir, m[i].w.tmpname);
		}
	}
	free(errs);
	free(fds);
}

size_t
mbox_deliver_many(struct mbox_user *u, struct mbox_delivery *items, size_t n)
{
	struct mi_item *m = xcalloc(n, sizeof(*m));
	struct mi_target *ts = xcalloc(n, sizeof(*ts));
	uint8_t *in = xmalloc(MI_CHUNK);
	int64_t now = (int64_t)time(NULL);
	size_t nt = 0, ok = 0, todo = 0;
	char *error = NULL;
	int rc;

	buf_reset(&u->text_batch);
	for (size_t i = 0; i < n; i++) {
		items[i].rc = MBOX_OK;
		items[i].uid = 0;
		items[i].error = NULL;
		m[i].w = (struct mi_writer){.fd = -1};
		if (items[i].name != NULL && mbox_name_valid(items[i].name) &&
		    !mi_name_seen(items, i)) {
			char *canon = mi_name_canon(items[i].name);
			struct mi_box b;

			/* Finds a folder another tool made; else INBOX. */
			(void)mi_box_lookup(u, canon, &b, NULL);
			mi_box_clear(&b);
			free(canon);
		}
		items[i].rc =
		    mi_deliver_write(u, &items[i], now, in, n > 1, &m[i].w,
		                     &m[i].words, &items[i].error);
	}
	/* Every file written before any goes to disk: together. */
	if (n > 1)
		mi_deliver_sync(u, items, m, n);
	for (size_t i = 0; i < n; i++)
		if (items[i].rc == MBOX_OK)
			todo++;
	rc = todo > 0 ? mi_begin(u, &error) : MBOX_ERR_NOTFOUND;
	for (size_t i = 0; rc == MBOX_OK && i < n; i++) {
		if (items[i].rc != MBOX_OK)
			continue;
		items[i].rc =
		    mi_deliver_link(u, &items[i], &m[i], now, ts, &nt);
		if (items[i].rc == MBOX_ERR_TEMP) {
			/* The index or the disk: the call fails as a whole. */
			rc = MBOX_ERR_TEMP;
			error = xstrdup(items[i].error != NULL
			                    ? items[i].error
			                    : "mailbox index error");
		}
	}
	if (rc == MBOX_OK)
		rc = mi_deliver_commit(u, ts, nt, &error);
	else if (todo > 0)
		mi_rollback(u);
	for (size_t i = 0; i < n; i++) {
		struct mbox_delivery *it = &items[i];

		if (it->rc == MBOX_OK && rc == MBOX_OK) {
			ok++;
		} else if (it->rc == MBOX_OK || rc == MBOX_ERR_TEMP) {
			/* Not committed: the item fails with the call. */
			if (it->rc == MBOX_OK || it->error == NULL) {
				free(it->error);
				it->error = xstrdup(
				    error != NULL ? error
				                  : "mailbox index error");
			}
			it->rc = MBOX_ERR_TEMP;
		}
		if (it->rc != MBOX_OK && m[i].filename != NULL &&
		    m[i].t != NULL)
			(void)unlinkat(m[i].t->d.curfd, m[i].filename, 0);
		if (it->rc != MBOX_OK)
			it->uid = 0;
		free(m[i].filename);
		mi_writer_abort(u, &m[i].w);
	}
	for (size_t i = 0; i < nt; i++) {
		mi_dirs_close(&ts[i].d);
		mi_box_clear(&ts[i].b);
	}
	free(error);
	free(in);
	free(ts);
	free(m);
	return ok;
}

int
mbox_deliver(struct mbox_user *u, const char *name, const char *prefix,
             int msg_fd, uint32_t flags, uint32_t *uid_r, char **error_r)
{
	struct mbox_delivery it = {
	    .name = name, .prefix = prefix, .msg_fd = msg_fd, .flags = flags};

	(void)mbox_deliver_many(u, &it, 1);
	if (it.rc == MBOX_OK && uid_r != NULL)
		*uid_r = it.uid;
	if (error_r != NULL)
		*error_r = it.error;
	else
		free(it.error);
	return it.rc;
}

/* ---- COPY / MOVE ---- */

struct mi_copy {
	uint32_t uid;    /* in the source */
	uint32_t newuid; /* in the destination */
	uint32_t flags;
	char *keywords;
	int64_t internaldate;
	uint64_t size;
	bool size_known;
	char *filename; /* in the source's cur/ */
	char *newname;  /* in the destination's cur/, once made */
};

static void
mi_copies_free(struct mi_copy *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(c[i].keywords);
		free(c[i].filename);
		free(c[i].newname);
	}
	free(c);
}

/* Copy a file's bytes as they are (no line-end conversion) into a new
 * tmp/ file, fsync'd; for file systems without hard links. */
static int
mi_copy_bytes(struct mbox_user *u, int srcfd, char **tmpname_r, char **error_r)
{
	struct mi_writer w;
	uint8_t *in = xmalloc(MI_CHUNK);
	off_t off = 0;
	int rc;

	if ((rc = mi_writer_open(u, &w, error_r)) != MBOX_OK) {
		free(in);
		return rc;
	}
	for (;;) {
		ssize_t r = pread(srcfd, in, MI_CHUNK, off), done = 0;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = mi_syserr(error_r, "pread(copy source)");
			goto fail;
		}
		if (r == 0)
			break;
		off += r;
		while (done < r) {
			ssize_t wr = write(w.fd, in + done, (size_t)(r - done));

			if (wr < 0 && errno == EINTR)
				continue;
			if (wr <= 0) {
				rc = mi_syserr(error_r, "write(%s/tmp/%s)",
				               u->dir, w.tmpname);
				goto fail;
			}
			done += wr;
		}
	}
	if (fsync(w.fd) < 0) {
		rc = mi_syserr(error_r, "fsync(%s/tmp/%s)", u->dir, w.tmpname);
		goto fail;
	}
	free(in);
	close(w.fd);
	w.fd = -1;
	*tmpname_r = w.tmpname;
	w.tmpname = NULL;
	mi_writer_abort(u, &w);
	return MBOX_OK;
fail:
	free(in);
	mi_writer_abort(u, &w);
	return rc;
}

/* Source file → a new name in the destination's cur/ (a hard link; a copy
 * of the bytes where links do not work). */
static int
mi_copy_file(struct mbox_user *u, const struct mi_dirs *src,
             const struct mi_dirs *dst, struct mi_copy *c, char **error_r)
{
	struct stat sb;

	if (fstatat(src->curfd, c->filename, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT
		           ? mi_err(error_r, MBOX_ERR_TEMP,
		                    "message UID %u: file %s gone", c->uid,
		                    c->filename)
		           : mi_syserr(error_r, "stat(%s)", c->filename);
	for (int tries = 0; tries < 16; tries++) {
		char *base = mi_unique_base();
		char *plain =
		    xasprintf("%s,S=%lld,W=%llu", base, (long long)sb.st_size,
		              (unsigned long long)c->size);
		int r;

		c->newname = mi_name_with_flags(plain, c->flags);
		free(plain);
		free(base);
		r = linkat(src->curfd, c->filename, dst->curfd, c->newname, 0);
		if (r < 0 && (errno == EXDEV || errno == EPERM ||
		              errno == EOPNOTSUPP || errno == EMLINK)) {
			int srcfd = openat(src->curfd, c->filename,
			                   O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			char *tmpname = NULL;
			int rc;

			if (srcfd < 0)
				return mi_syserr(error_r, "open(%s)",
				                 c->filename);
			rc = mi_copy_bytes(u, srcfd, &tmpname, error_r);
			close(srcfd);
			if (rc != MBOX_OK)
				return rc;
			r = mi_rename_noreplace(u->tmpfd, tmpname, dst->curfd,
			                        c->newname);
			if (r < 0)
				(void)unlinkat(u->tmpfd, tmpname, 0);
			free(tmpname);
		}
		if (r == 0)
			return MBOX_OK;
		if (errno != EEXIST)
			break;
		xfree(&c->newname);
	}
	int rc = mi_syserr(error_r, "link(%s)", c->filename);

	xfree(&c->newname);
	return rc;
}

static int
mi_copy_collect(struct mbox_user *u, int64_t id, const uint32_t *uids, size_t n,
                struct mi_copy **copies_r, size_t *ncopies_r, uint64_t *bytes_r,
                char **error_r)
{
	struct mi_copy *c = n > 0 ? xcalloc(n, sizeof(*c)) : NULL;
	sqlite3_stmt *st = mi_st(u, MI_MSG_GET, error_r);
	size_t nc = 0;
	uint64_t bytes = 0;

	if (st == NULL) {
		free(c);
		return MBOX_ERR_TEMP;
	}
	for (size_t i = 0; i < n; i++) {
		int step;

		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, uids[i]);
		step = sqlite3_step(st);
		if (step == SQLITE_ROW) {
			const unsigned char *kw = sqlite3_column_text(st, 2);
			const unsigned char *fn = sqlite3_column_text(st, 5);

			c[nc] = (struct mi_copy){
			    .uid = uids[i],
			    .flags = (uint32_t)sqlite3_column_int64(st, 1) &
			             MI_FLAGS_MASK,
			    .keywords = kw != NULL && kw[0] != '\0'
			                    ? xstrdup((const char *)kw)
			                    : NULL,
			    .internaldate = sqlite3_column_int64(st, 3),
			    .size = (uint64_t)sqlite3_column_int64(st, 4),
			    .size_known = sqlite3_column_int(st, 6) != 0,
			    .filename =
			        xstrdup(fn != NULL ? (const char *)fn : ""),
			};
			bytes += c[nc].size;
			nc++;
		}
		mi_done(st);
		if (step != SQLITE_ROW && step != SQLITE_DONE) {
			mi_copies_free(c, nc);
			return mi_dberr(u, error_r, "messages");
		}
	}
	*copies_r = c;
	*ncopies_r = nc;
	*bytes_r = bytes;
	return MBOX_OK;
}

int
mbox_copy(struct mbox *box, const uint32_t *uids, size_t n, const char *dest,
          bool move, uint32_t *dst_uidvalidity_r, uint32_t **src_uids_r,
          uint32_t **dst_uids_r, size_t *ncopied_r, char **error_r)
{
	struct mbox_user *u = box->u;
	struct mi_box src = {0}, dst = {0};
	struct mi_dirs dd = {-1, -1, -1};
	const struct mi_dirs *dstdirs = &dd;
	struct mi_copy *c = NULL;
	size_t nc = 0;
	uint64_t bytes = 0, dst_modseq, src_modseq;
	bool same = false;
	char *canon = NULL;
	int rc;

	*src_uids_r = NULL;
	*dst_uids_r = NULL;
	*ncopied_r = 0;
	if (move && box->readonly)
		return mi_err(error_r, MBOX_ERR_CANNOT, "mailbox is read-only");
	if (!mbox_name_valid(dest))
		return mi_err(error_r, MBOX_ERR_BADNAME,
		              "invalid mailbox name");
	canon = mi_name_canon(dest);
	/* TRYCREATE before any work; finds folders other tools made. */
	if ((rc = mi_box_lookup(u, canon, &dst, error_r)) != MBOX_OK) {
		free(canon);
		return rc;
	}
	mi_box_clear(&dst);
	if ((rc = mi_begin(u, error_r)) != MBOX_OK) {
		free(canon);
		return rc;
	}
	if ((rc = mi_box_by_id(u, box->id, &src, error_r)) != MBOX_OK ||
	    (rc = mi_sync_locked(u, &src, &box->dirs, false, error_r)) !=
	        MBOX_OK ||
	    (rc = mi_box_by_name(u, canon, &dst, error_r)) != MBOX_OK)
		goto fail;
	same = dst.id == src.id;
	if (same)
		dstdirs = &box->dirs;
	else if ((rc = mi_dirs_open(u, dst.dir, &dd, error_r)) != MBOX_OK)
		goto fail;
	/* A MOVE adds nothing to the quota. */
	if ((rc = mi_copy_collect(u, box->id, uids, n, &c, &nc, &bytes,
	                          error_r)) != MBOX_OK ||
	    (!move && (rc = mi_quota_check(u, bytes, error_r)) != MBOX_OK))
		goto fail;
	if (same)
		dst.uidnext = src.uidnext; /* the scan may have moved it */
	if (dst.uidnext > UINT32_MAX - nc) {
		rc = mi_err(error_r, MBOX_ERR_LIMIT, "%s: out of UIDs", canon);
		goto fail;
	}
	dst_modseq = (same ? src.highestmodseq : dst.highestmodseq) + 1;
	src_modseq = src.highestmodseq + 1;
	for (size_t i = 0; i < nc; i++) {
		char *kw = NULL;

		if ((rc = mi_keywords_register(u, dst.id, c[i].keywords, &kw,
		                               error_r)) != MBOX_OK ||
		    (rc = mi_copy_file(u, &box->dirs, dstdirs, &c[i],
		                       error_r)) != MBOX_OK) {
			free(kw);
			goto fail;
		}
		free(c[i].keywords);
		c[i].keywords = kw;
		c[i].newuid = dst.uidnext++;
		u->text_lag = true; /* mbox_text_catch_up reads the copies */
	}
	if (nc > 0 &&
	    (rc = mi_fsync_dir(dstdirs->curfd, dst.dir, error_r)) != MBOX_OK)
		goto fail;
	for (size_t i = 0; i < nc; i++) {
		sqlite3_stmt *st;

		if ((rc = mi_msg_insert(u, dst.id, c[i].newuid, dst_modseq,
		                        c[i].flags, c[i].keywords,
		                        c[i].internaldate, c[i].size,
		                        c[i].size_known, c[i].newname,
		                        error_r)) != MBOX_OK)
			goto fail;
		if ((st = mi_st(u, MI_CACHE_COPY, error_r)) == NULL) {
			rc = MBOX_ERR_TEMP;
			goto fail;
		}
		sqlite3_bind_int64(st, 1, src.id);
		sqlite3_bind_int64(st, 2, c[i].uid);
		sqlite3_bind_int64(st, 3, dst.id);
		sqlite3_bind_int64(st, 4, c[i].newuid);
		if ((rc = mi_step_done(u, st, error_r)) != MBOX_OK)
			goto fail;
		if (move && (rc = mi_msg_expunge(u, src.id, c[i].uid,
		                                 same ? dst_modseq : src_modseq,
		                                 error_r)) != MBOX_OK)
			goto fail;
	}
	if (nc > 0) {
		if ((rc = mi_box_set_counters(u, dst.id, dst.uidnext,
		                              dst_modseq, error_r)) != MBOX_OK)
			goto fail;
		if (move && !same &&
		    (rc = mi_box_set_counters(u, src.id, src.uidnext,
		                              src_modseq, error_r)) != MBOX_OK)
			goto fail;
	}
	if ((rc = mi_commit(u, error_r)) != MBOX_OK)
		goto fail;
	/* MOVE: the source files go after the commit (a crash in between
	 * duplicates, never loses). */
	if (move && nc > 0) {
		for (size_t i = 0; i < nc; i++)
			if (unlinkat(box->dirs.curfd, c[i].filename, 0) < 0 &&
			    errno != ENOENT)
				log_error(NULL,
				          "event=mailbox_move_unlink user=%s "
				          "file=%s error=%s",
				          u->dir, c[i].filename,
				          strerror(errno));
		(void)fsync(box->dirs.curfd);
	}
	if (nc > 0) {
		*src_uids_r = xcalloc(nc, sizeof(uint32_t));
		*dst_uids_r = xcalloc(nc, sizeof(uint32_t));
		for (size_t i = 0; i < nc; i++) {
			(*src_uids_r)[i] = c[i].uid;
			(*dst_uids_r)[i] = c[i].newuid;
		}
	}
	*ncopied_r = nc;
	if (dst_uidvalidity_r != NULL)
		*dst_uidvalidity_r = dst.uidvalidity;
	rc = MBOX_OK;
	{
		char *error = NULL;

		/* Done and committed: stale counters are no failure. */
		if (mi_box_refresh(box, &error) != MBOX_OK) {
			log_warn(NULL, "event=mailbox_refresh user=%s error=%s",
			         u->dir, error);
			free(error);
		}
	}
	goto out;
fail:
	mi_rollback(u);
	for (size_t i = 0; i < nc; i++)
		if (c[i].newname != NULL)
			(void)unlinkat(dstdirs->curfd, c[i].newname, 0);
out:
	mi_copies_free(c, nc);
	mi_dirs_close(&dd);
	mi_box_clear(&src);
	mi_box_clear(&dst);
	free(canon);
	return rc;
}
