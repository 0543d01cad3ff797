/* One open mailbox (mailbox.h): SELECT/EXAMINE, the message list and what
 * changed since a MODSEQ, reading a message (LF on disk → CRLF), the
 * per-message cache, STORE (flags in the index and in the Maildir file
 * name) and EXPUNGE.
 * SECURITY: file names come from the index (which got them from readdir or
 * made them) and are opened relative to the mailbox's cur/ fd with
 * O_NOFOLLOW; keywords are checked (IMAP atoms, bounded count and length). */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "store/mailbox_int.h"

int
mi_box_refresh(struct mbox *box, char **error_r)
{
	struct mbox_info info;
	struct mi_box b;
	int rc;

	if ((rc = mi_box_by_id(box->u, box->id, &b, error_r)) != MBOX_OK)
		return rc;
	rc = mi_info_fill(box->u, &b, &info, error_r);
	mi_box_clear(&b);
	if (rc != MBOX_OK)
		return rc;
	mbox_info_clear(&box->info);
	box->info = info;
	return MBOX_OK;
}

int
mbox_open(struct mbox_user *u, const char *name, bool readonly,
          struct mbox **box_r, char **error_r)
{
	struct mbox *box;
	struct mi_box b;
	char *canon = NULL;
	uint32_t next;
	int rc;

	*box_r = NULL;
	if (!mbox_name_valid(name))
		return mi_err(error_r, MBOX_ERR_BADNAME,
		              "invalid mailbox name");
	canon = mi_name_canon(name);
	rc = mi_box_lookup(u, canon, &b, error_r);
	free(canon);
	if (rc != MBOX_OK)
		return rc;
	box = xcalloc(1, sizeof(*box));
	box->u = u;
	box->id = b.id;
	box->readonly = readonly;
	rc = mi_dirs_open(u, b.dir, &box->dirs, error_r);
	mi_box_clear(&b);
	if (rc != MBOX_OK) {
		free(box);
		return rc;
	}
	if ((rc = mbox_sync(box, error_r)) != MBOX_OK) {
		mbox_close(&box);
		return rc;
	}
	/* A mailbox from before the text index, or one whose catching up
	 * was cut short (a restart): picked up here. */
	if (mi_text_next(u, box->id, &next, NULL) == MBOX_OK &&
	    next < box->info.uidnext)
		u->text_lag = true;
	*box_r = box;
	return MBOX_OK;
}

void
mbox_close(struct mbox **boxp)
{
	struct mbox *box = *boxp;

	if (box == NULL)
		return;
	mi_dirs_close(&box->dirs);
	mbox_info_clear(&box->info);
	free(box);
	*boxp = NULL;
}

const struct mbox_info *
mbox_get_info(const struct mbox *box)
{
	return &box->info;
}

static void
mi_stamp_file(int dirfd, const char *name, int64_t *mtime_r, int64_t *size_r)
{
	struct stat sb;

	*mtime_r = *size_r = 0;
	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
		*mtime_r = (int64_t)sb.st_mtim.tv_sec * 1000000000 +
		           sb.st_mtim.tv_nsec;
		*size_r = (int64_t)sb.st_size;
	}
}

static bool
mi_stamps_take(struct mbox *box, struct mi_stamps *st)
{
	memset(st, 0, sizeof(*st));
	mi_stamp_file(box->u->dirfd, MI_DB_NAME, &st->db_mtime, &st->db_size);
	mi_stamp_file(box->u->dirfd, MI_DB_NAME "-wal", &st->wal_mtime,
	              &st->wal_size);
	return mi_mtime_ns(box->dirs.newfd, &st->new_mtime) == 0 &&
	       mi_mtime_ns(box->dirs.curfd, &st->cur_mtime) == 0;
}

void
mbox_quiet_mark(struct mbox *box)
{
	int64_t trust = mi_now_ns() - MI_SYNC_SLACK_NS;
	struct mi_stamps *q = &box->quiet;

	box->quiet_valid = mi_stamps_take(box, q) && q->db_mtime < trust &&
	                   q->wal_mtime < trust && q->new_mtime < trust &&
	                   q->cur_mtime < trust;
}

bool
mbox_quiet(struct mbox *box)
{
	struct mi_stamps now;

	return box->quiet_valid && mi_stamps_take(box, &now) &&
	       memcmp(&now, &box->quiet, sizeof(now)) == 0;
}

int
mbox_sync(struct mbox *box, char **error_r)
{
	int rc = mi_sync(box->u, box->id, &box->dirs, false, error_r);

	if (rc != MBOX_OK)
		return rc;
	return mi_box_refresh(box, error_r);
}

void
mbox_msg_clear(struct mbox_msg *m)
{
	free(m->keywords);
	*m = (struct mbox_msg){0};
}

void
mbox_msg_free_list(struct mbox_msg **list, size_t n)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free((*list)[i].keywords);
	xfree(list);
}

int
mi_msg_each(struct mbox_user *u, sqlite3_stmt *st, mbox_msg_fn *fn, void *ctx,
            char **error_r)
{
	int step;

	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *kw = sqlite3_column_text(st, 3);
		struct mbox_msg m = {
		    .uid = (uint32_t)sqlite3_column_int64(st, 0),
		    .modseq = (uint64_t)sqlite3_column_int64(st, 1),
		    .flags =
		        (uint32_t)sqlite3_column_int64(st, 2) & MI_FLAGS_MASK,
		    .keywords = kw != NULL && kw[0] != '\0'
		                    ? xstrdup((const char *)kw)
		                    : NULL,
		    .internaldate = sqlite3_column_int64(st, 4),
		    .size = (uint64_t)sqlite3_column_int64(st, 5),
		    .size_known = sqlite3_column_int(st, 6) != 0,
		};

		fn(ctx, &m);
		free(m.keywords);
	}
	mi_done(st);
	if (step != SQLITE_DONE)
		return mi_dberr(u, error_r, "messages");
	return MBOX_OK;
}

struct mi_msg_list {
	struct mbox_msg *list;
	size_t n, cap;
};

static void
mi_msg_list_add(void *ctx, struct mbox_msg *m)
{
	struct mi_msg_list *l = ctx;

	if (l->n == l->cap) {
		l->cap = l->cap < 16 ? 16 : l->cap * 2;
		l->list = xreallocarray(l->list, l->cap, sizeof(*l->list));
	}
	l->list[l->n++] = *m;
	m->keywords = NULL;
}

/* Rows of MI_MSG_LIST / MI_MSG_CHANGED (bound) into a list. */
static int
mi_msg_rows(struct mbox_user *u, sqlite3_stmt *st, size_t hint,
            struct mbox_msg **list_r, size_t *n_r, char **error_r)
{
	struct mi_msg_list l = {.cap = hint};
	int rc;

	if (hint > 0)
		l.list = xreallocarray(NULL, hint, sizeof(*l.list));
	rc = mi_msg_each(u, st, mi_msg_list_add, &l, error_r);
	if (rc != MBOX_OK) {
		mbox_msg_free_list(&l.list, l.n);
		return rc;
	}
	*list_r = l.list;
	*n_r = l.n;
	return MBOX_OK;
}

int
mbox_messages_each(struct mbox *box, mbox_msg_fn *fn, void *ctx, char **error_r)
{
	return mi_messages_all(box, fn, ctx, error_r);
}

int
mbox_messages(struct mbox *box, struct mbox_msg **list_r, size_t *n_r,
              char **error_r)
{
	struct mi_msg_list l = {.cap = box->info.messages};
	int rc;

	*list_r = NULL;
	*n_r = 0;
	if (l.cap > 0)
		l.list = xreallocarray(NULL, l.cap, sizeof(*l.list));
	rc = mi_messages_all(box, mi_msg_list_add, &l, error_r);
	if (rc != MBOX_OK) {
		mbox_msg_free_list(&l.list, l.n);
		return rc;
	}
	*list_r = l.list;
	*n_r = l.n;
	return MBOX_OK;
}

int
mbox_changes(struct mbox *box, uint64_t since_modseq,
             struct mbox_msg **changed_r, size_t *nchanged_r,
             uint32_t **expunged_r, size_t *nexpunged_r, char **error_r)
{
	struct mbox_user *u = box->u;
	sqlite3_stmt *st = mi_st(u, MI_MSG_CHANGED, error_r);
	uint32_t *exp = NULL;
	size_t n = 0;
	int rc, step;

	*changed_r = NULL;
	*nchanged_r = 0;
	*expunged_r = NULL;
	*nexpunged_r = 0;
	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_int64(st, 1, box->id);
	sqlite3_bind_int64(
	    st, 2,
	    since_modseq > INT64_MAX ? INT64_MAX : (sqlite3_int64)since_modseq);
	if ((rc = mi_msg_rows(u, st, 0, changed_r, nchanged_r, error_r)) !=
	    MBOX_OK)
		return rc;
	if ((st = mi_st(u, MI_EXP_SINCE, error_r)) == NULL) {
		mbox_msg_free_list(changed_r, *nchanged_r);
		return MBOX_ERR_TEMP;
	}
	sqlite3_bind_int64(st, 1, box->id);
	sqlite3_bind_int64(
	    st, 2,
	    since_modseq > INT64_MAX ? INT64_MAX : (sqlite3_int64)since_modseq);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		exp = xreallocarray(exp, n + 1, sizeof(*exp));
		exp[n++] = (uint32_t)sqlite3_column_int64(st, 0);
	}
	mi_done(st);
	if (step != SQLITE_DONE) {
		free(exp);
		mbox_msg_free_list(changed_r, *nchanged_r);
		*nchanged_r = 0;
		return mi_dberr(u, error_r, "expunged");
	}
	*expunged_r = exp;
	*nexpunged_r = n;
	return MBOX_OK;
}

/* One message row. */
struct mi_msgrow {
	uint64_t modseq;
	uint32_t flags;
	char *keywords;
	int64_t internaldate;
	uint64_t size;
	bool size_known;
	char *filename;
};

static void
mi_msgrow_clear(struct mi_msgrow *r)
{
	free(r->keywords);
	free(r->filename);
	*r = (struct mi_msgrow){0};
}

static int
mi_msg_get(struct mbox_user *u, int64_t id, uint32_t uid, struct mi_msgrow *r,
           char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_MSG_GET, error_r);
	int step;

	*r = (struct mi_msgrow){0};
	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, uid);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		const unsigned char *kw = sqlite3_column_text(st, 2);
		const unsigned char *fn = sqlite3_column_text(st, 5);

		r->modseq = (uint64_t)sqlite3_column_int64(st, 0);
		r->flags =
		    (uint32_t)sqlite3_column_int64(st, 1) & MI_FLAGS_MASK;
		r->keywords = kw != NULL && kw[0] != '\0'
		                  ? xstrdup((const char *)kw)
		                  : NULL;
		r->internaldate = sqlite3_column_int64(st, 3);
		r->size = (uint64_t)sqlite3_column_int64(st, 4);
		r->size_known = sqlite3_column_int(st, 6) != 0;
		r->filename = xstrdup(fn != NULL ? (const char *)fn : "");
		mi_done(st);
		return MBOX_OK;
	}
	mi_done(st);
	if (step != SQLITE_DONE)
		return mi_dberr(u, error_r, "messages");
	return mi_err(error_r, MBOX_ERR_NOTFOUND, "no message UID %u", uid);
}

static void
mi_window_rows_free(struct mi_window *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->rows[i].filename);
	xfree(&w->rows);
	w->n = 0;
	w->ah.lo = w->ah.hi = 0;
}

static void
mi_cache_window_rows_free(struct mi_cache_window *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->rows[i].value);
	xfree(&c->rows);
	c->n = 0;
	c->ah.lo = c->ah.hi = 0;
}

void
mi_window_drop(struct mbox_user *u)
{
	mi_window_rows_free(&u->win);
	u->win = (struct mi_window){0};
	mi_cache_window_rows_free(&u->cwin);
	free(u->cwin.field);
	u->cwin = (struct mi_cache_window){0};
}

enum mi_ahead_step { MI_AHEAD_INSIDE, MI_AHEAD_LOAD, MI_AHEAD_ASK };

/* Where a read of uid falls: among the rows read ahead, at the third read
 * in a row going up (time to read ahead from it), or neither (ask the
 * index for the one row). */
static enum mi_ahead_step
mi_ahead_step(struct mi_ahead *a, int64_t box_id, uint32_t uid)
{
	bool inside;

	if (a->box_id != box_id) {
		*a = (struct mi_ahead){.box_id = box_id, .last_uid = uid};
		return MI_AHEAD_ASK;
	}
	inside = a->hi != 0 && uid >= a->lo && uid <= a->hi;
	if (!inside)
		a->run = uid > a->last_uid ? a->run + 1 : 0;
	a->last_uid = uid;
	if (inside)
		return MI_AHEAD_INSIDE;
	return a->run >= 2 ? MI_AHEAD_LOAD : MI_AHEAD_ASK;
}

/* The index of uid among n rows of stride bytes, each starting with its
 * UID, ascending; n when it is not there. */
static size_t
mi_rows_find(const void *rows, size_t n, size_t stride, uint32_t uid)
{
	const char *p = rows;
	size_t lo = 0, hi = n;
	uint32_t v;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		memcpy(&v, p + mid * stride, sizeof(v));
		if (v < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == n)
		return n;
	memcpy(&v, p + lo * stride, sizeof(v));
	return v == uid ? lo : n;
}

_Static_assert(offsetof(struct mi_window_row, uid) == 0 &&
                   offsetof(struct mi_cache_row, uid) == 0,
               "window rows start with their UID");

/* The next MI_WINDOW_ROWS rows from uid on. A read-ahead: on any failure
 * there is simply no window. */
static void
mi_window_load(struct mbox *box, uint32_t uid)
{
	struct mi_window *w = &box->u->win;
	sqlite3_stmt *st = mi_st(box->u, MI_MSG_WINDOW, NULL);

	mi_window_rows_free(w);
	if (st == NULL)
		return;
	sqlite3_bind_int64(st, 1, box->id);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_int(st, 3, MI_WINDOW_ROWS);
	w->rows = xreallocarray(NULL, MI_WINDOW_ROWS, sizeof(*w->rows));
	while (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *fn = sqlite3_column_text(st, 3);

		w->rows[w->n++] = (struct mi_window_row){
		    .uid = (uint32_t)sqlite3_column_int64(st, 0),
		    .size = (uint64_t)sqlite3_column_int64(st, 1),
		    .size_known = sqlite3_column_int(st, 2) != 0,
		    .filename = xstrdup(fn != NULL ? (const char *)fn : ""),
		};
	}
	mi_done(st);
	if (w->n > 0) {
		w->ah.lo = uid;
		w->ah.hi = w->rows[w->n - 1].uid;
	}
}

/* uid's file name and size from the window (loaded when the reads go in
 * UID order); false: ask the index (for a message new since, too). */
static bool
mi_window_get(struct mbox *box, uint32_t uid, struct mi_msgrow *r)
{
	struct mi_window *w = &box->u->win;
	size_t i;

	switch (mi_ahead_step(&w->ah, box->id, uid)) {
	case MI_AHEAD_ASK:
		return false;
	case MI_AHEAD_LOAD:
		mi_window_load(box, uid);
		break;
	case MI_AHEAD_INSIDE:
		break;
	}
	i = mi_rows_find(w->rows, w->n, sizeof(*w->rows), uid);
	if (i == w->n)
		return false;
	*r = (struct mi_msgrow){
	    .size = w->rows[i].size,
	    .size_known = w->rows[i].size_known,
	    .filename = xstrdup(w->rows[i].filename),
	};
	return true;
}

/* The row of uid and its file, open; *fd_r < 0 on error. Only the file
 * name and the size of *r are set. */
static int
mi_msg_open(struct mbox *box, uint32_t uid, struct mi_msgrow *r, int *fd_r,
            char **error_r)
{
	bool ahead = mi_window_get(box, uid, r);
	int fd = -1, rc;

	*fd_r = -1;
	for (int tries = 0; tries < 2 && fd < 0; tries++) {
		if (!ahead && (rc = mi_msg_get(box->u, box->id, uid, r,
		                               error_r)) != MBOX_OK)
			return rc;
		fd = openat(box->dirs.curfd, r->filename,
		            O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			break;
		if (errno == ENOENT && ahead) {
			/* A stale name read ahead: the index has the
			 * current one. Not a try. */
			mi_msgrow_clear(r);
			mi_window_drop(box->u);
			ahead = false;
			tries--;
			continue;
		}
		if (errno != ENOENT || tries > 0) {
			rc = errno == ENOENT
			         ? mi_err(error_r, MBOX_ERR_NOTFOUND,
			                  "message UID %u is gone", uid)
			         : mi_syserr(error_r, "open(%s/cur/%s)",
			                     box->info.name, r->filename);
			mi_msgrow_clear(r);
			return rc;
		}
		/* Renamed (flags) or removed by another tool. */
		mi_msgrow_clear(r);
		if ((rc = mi_sync(box->u, box->id, &box->dirs, false,
		                  error_r)) != MBOX_OK)
			return rc;
	}
	*fd_r = fd;
	return MBOX_OK;
}

int
mbox_sizes(struct mbox *box, const uint32_t *uids, size_t n, uint64_t *sizes_r,
           int64_t *dates_r, char **error_r)
{
	struct mbox_user *u = box->u;
	bool *read = n > 0 ? xcalloc(n, sizeof(*read)) : NULL;
	int64_t *dates = n > 0 ? xcalloc(n, sizeof(*dates)) : NULL;
	size_t nread = 0;
	int rc = MBOX_OK;

	for (size_t i = 0; i < n && rc == MBOX_OK; i++) {
		struct mi_msgrow r;
		struct stat sb;
		char *err = NULL;
		int fd;

		sizes_r[i] = 0;
		rc = mi_msg_open(box, uids[i], &r, &fd, &err);
		if (rc == MBOX_ERR_NOTFOUND) {
			free(err);
			rc = MBOX_OK;
			continue;
		}
		if (rc != MBOX_OK) {
			if (error_r != NULL)
				*error_r = err;
			else
				free(err);
			break;
		}
		/* INTERNALDATE is the mtime (tern sets it on every file it
		 * writes; a link for COPY shares it). */
		if (fstat(fd, &sb) == 0)
			dates[i] = (int64_t)sb.st_mtim.tv_sec;
		if (r.size_known) {
			sizes_r[i] = r.size;
		} else if (mi_file_crlf_size(fd, &sizes_r[i]) < 0) {
			rc = mi_syserr(error_r, "read(%s/cur/%s)",
			               box->info.name, r.filename);
		} else {
			read[i] = true;
			nread++;
		}
		close(fd);
		mi_msgrow_clear(&r);
	}
	/* Recorded in one transaction: one fsync for the lot. */
	if (rc == MBOX_OK && nread > 0 && !box->readonly &&
	    (rc = mi_begin(u, error_r)) == MBOX_OK) {
		for (size_t i = 0; i < n && rc == MBOX_OK; i++) {
			sqlite3_stmt *st;

			if (!read[i])
				continue;
			if ((st = mi_st(u, MI_MSG_SET_SIZE, error_r)) == NULL) {
				rc = MBOX_ERR_TEMP;
				break;
			}
			sqlite3_bind_int64(st, 1, box->id);
			sqlite3_bind_int64(st, 2, uids[i]);
			sqlite3_bind_int64(st, 3, (sqlite3_int64)sizes_r[i]);
			sqlite3_bind_int64(st, 4, dates[i]);
			rc = mi_step_done(u, st, error_r);
		}
		/* The sizes carry no new MODSEQ for a snapshot to see. */
		if (rc == MBOX_OK)
			mi_snap_forget(u, box->id);
		if (rc == MBOX_OK)
			rc = mi_commit(u, error_r);
		else
			mi_rollback(u);
		if (rc == MBOX_OK)
			rc = mi_box_refresh(box, error_r);
	}
	if (dates_r != NULL && n > 0)
		memcpy(dates_r, dates, n * sizeof(*dates));
	free(dates);
	free(read);
	return rc;
}

int
mbox_sizes_settle(struct mbox_user *u, const char *name, char **error_r)
{
	struct mbox *box;
	sqlite3_stmt *st;
	uint32_t *uids = NULL;
	uint64_t *sizes;
	size_t n = 0, cap = 0;
	int rc, step;

	if ((rc = mbox_open(u, name, false, &box, error_r)) != MBOX_OK)
		return rc;
	if ((st = mi_st(u, MI_MSG_SIZE_TODO, error_r)) == NULL) {
		mbox_close(&box);
		return MBOX_ERR_TEMP;
	}
	sqlite3_bind_int64(st, 1, box->id);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap == 0 ? 256 : cap * 2;
			uids = xreallocarray(uids, cap, sizeof(*uids));
		}
		uids[n++] = (uint32_t)sqlite3_column_int64(st, 0);
	}
	mi_done(st);
	if (step != SQLITE_DONE) {
		rc = mi_dberr(u, error_r, "messages");
	} else if (n > 0) {
		sizes = xreallocarray(NULL, n, sizeof(*sizes));
		rc = mbox_sizes(box, uids, n, sizes, NULL, error_r);
		free(sizes);
	}
	free(uids);
	mbox_close(&box);
	return rc;
}

int
mbox_read(struct mbox *box, uint32_t uid, struct buf *out, char **error_r)
{
	struct mi_msgrow r;
	size_t start = out->len;
	uint64_t n;
	int fd, rc;

	if ((rc = mi_msg_open(box, uid, &r, &fd, error_r)) != MBOX_OK)
		return rc;
	if (mi_file_read_crlf(fd, out, &n) < 0) {
		rc = errno == ENOBUFS
		         ? mi_err(error_r, MBOX_ERR_TEMP,
		                  "message UID %u does not fit the buffer", uid)
		         : mi_syserr(error_r, "read(%s/cur/%s)", box->info.name,
		                     r.filename);
		out->len = start;
		close(fd);
		mi_msgrow_clear(&r);
		return rc;
	}
	close(fd);
	if (r.size_known && n != r.size) {
		/* Changed on disk behind our back: the size a client was told
		 * no longer holds. */
		log_error(NULL,
		          "event=mailbox_size_mismatch user=%s mailbox=%s "
		          "uid=%u file=%s index=%llu file_crlf=%llu",
		          box->u->dir, box->info.name, uid, r.filename,
		          (unsigned long long)r.size, (unsigned long long)n);
		out->len = start;
		mi_msgrow_clear(&r);
		return mi_err(error_r, MBOX_ERR_TEMP,
		              "message UID %u changed on disk", uid);
	}
	mi_msgrow_clear(&r);
	return MBOX_OK;
}

/* The next MI_WINDOW_ROWS values of c->field from uid on. */
static void
mi_cache_window_load(struct mbox *box, uint32_t uid)
{
	struct mi_cache_window *c = &box->u->cwin;
	sqlite3_stmt *st = mi_st(box->u, MI_CACHE_WINDOW, NULL);

	mi_cache_window_rows_free(c);
	if (st == NULL)
		return;
	sqlite3_bind_int64(st, 1, box->id);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_text(st, 3, c->field, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, MI_WINDOW_ROWS);
	c->rows = xreallocarray(NULL, MI_WINDOW_ROWS, sizeof(*c->rows));
	while (sqlite3_step(st) == SQLITE_ROW) {
		const void *v = sqlite3_column_blob(st, 1);
		size_t len = (size_t)sqlite3_column_bytes(st, 1);
		struct mi_cache_row *r = &c->rows[c->n++];

		r->uid = (uint32_t)sqlite3_column_int64(st, 0);
		r->value = xmalloc(len + 1);
		if (len > 0 && v != NULL)
			memcpy(r->value, v, len);
		r->value[len] = '\0';
		r->len = len;
	}
	mi_done(st);
	c->ah.lo = uid;
	/* Fewer than asked for: nothing more was cached past them. */
	c->ah.hi = c->n == MI_WINDOW_ROWS ? c->rows[c->n - 1].uid : UINT32_MAX;
}

/* From the values read ahead: 1 found, 0 not cached, -1 ask the index
 * (not read in UID order). */
static int
mi_cache_window_get(struct mbox *box, uint32_t uid, const char *field,
                    char **value_r, size_t *len_r)
{
	struct mi_cache_window *c = &box->u->cwin;
	size_t i;

	if (c->field == NULL || strcmp(c->field, field) != 0) {
		mi_cache_window_rows_free(c);
		free(c->field);
		c->field = xstrdup(field);
		c->ah.box_id = 0; /* start again */
	}
	switch (mi_ahead_step(&c->ah, box->id, uid)) {
	case MI_AHEAD_ASK:
		return -1;
	case MI_AHEAD_LOAD:
		mi_cache_window_load(box, uid);
		if (c->ah.hi == 0)
			return -1; /* nothing read ahead */
		break;
	case MI_AHEAD_INSIDE:
		break;
	}
	i = mi_rows_find(c->rows, c->n, sizeof(*c->rows), uid);
	if (i == c->n)
		return 0;
	*value_r = xmalloc(c->rows[i].len + 1);
	memcpy(*value_r, c->rows[i].value, c->rows[i].len + 1);
	*len_r = c->rows[i].len;
	return 1;
}

int
mbox_cache_get(struct mbox *box, uint32_t uid, const char *field,
               char **value_r, size_t *len_r)
{
	struct mbox_user *u = box->u;
	sqlite3_stmt *st;
	int found = 0;

	*value_r = NULL;
	*len_r = 0;
	for (size_t i = u->ncw; i-- > 0;) {
		const struct mi_cache_write *w = &u->cw[i];

		if (w->box_id == box->id && w->uid == uid &&
		    strcmp(w->field, field) == 0) {
			*value_r = xmalloc(w->len + 1);
			memcpy(*value_r, w->value, w->len);
			(*value_r)[w->len] = '\0';
			*len_r = w->len;
			return 1;
		}
	}
	switch (mi_cache_window_get(box, uid, field, value_r, len_r)) {
	case 1:
		return 1;
	case 0:
		return 0;
	default:
		break;
	}
	if ((st = mi_st(u, MI_CACHE_GET, NULL)) == NULL)
		return 0;
	sqlite3_bind_int64(st, 1, box->id);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_text(st, 3, field, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const void *v = sqlite3_column_blob(st, 0);
		size_t len = (size_t)sqlite3_column_bytes(st, 0);

		/* NUL-terminated too, for string values. */
		*value_r = xmalloc(len + 1);
		if (len > 0 && v != NULL)
			memcpy(*value_r, v, len);
		(*value_r)[len] = '\0';
		*len_r = len;
		found = 1;
	}
	mi_done(st);
	return found;
}

void
mbox_cache_set(struct mbox *box, uint32_t uid, const char *field,
               const char *value, size_t len)
{
	struct mbox_user *u = box->u;
	struct mi_cache_write *w;

	if (value == NULL || len > INT32_MAX)
		return;
	if (u->ncw % 16 == 0)
		u->cw = xreallocarray(u->cw, u->ncw + 16, sizeof(*u->cw));
	w = &u->cw[u->ncw++];
	w->box_id = box->id;
	w->uid = uid;
	w->field = xstrdup(field);
	w->value = xmalloc(len > 0 ? len : 1);
	memcpy(w->value, value, len);
	w->len = len;
	if (u->ncw >= MI_CACHE_BATCH)
		mi_cache_flush(u);
}

static void
mi_cache_clear(struct mbox_user *u)
{
	for (size_t i = 0; i < u->ncw; i++) {
		free(u->cw[i].field);
		free(u->cw[i].value);
	}
	xfree(&u->cw);
	u->ncw = 0;
}

void
mi_cache_write_pending(struct mbox_user *u)
{
	/* Taken first: a write cannot come back here. */
	struct mi_cache_write *cw = u->cw;
	size_t n = u->ncw;

	u->cw = NULL;
	u->ncw = 0;
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *st = mi_st(u, MI_CACHE_SET, NULL);
		int rc;

		if (st == NULL)
			break;
		sqlite3_bind_int64(st, 1, cw[i].box_id);
		sqlite3_bind_int64(st, 2, cw[i].uid);
		sqlite3_bind_text(st, 3, cw[i].field, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 4, cw[i].value, (int)cw[i].len,
		                  SQLITE_STATIC);
		rc = sqlite3_step(st);
		mi_done(st);
		/* A message expunged meanwhile fails the foreign key:
		 * harmless. */
		if (rc != SQLITE_DONE && rc != SQLITE_CONSTRAINT_FOREIGNKEY)
			log_warn(NULL,
			         "event=mailbox_cache_set user=%s error=%s",
			         u->dir, sqlite3_errmsg(u->db));
	}
	for (size_t i = 0; i < n; i++) {
		free(cw[i].field);
		free(cw[i].value);
	}
	free(cw);
}

void
mi_cache_flush(struct mbox_user *u)
{
	char *error = NULL;

	if (u->ncw == 0)
		return;
	if (u->db != NULL && !sqlite3_get_autocommit(u->db)) {
		mi_cache_write_pending(u);
		return;
	}
	/* mi_begin writes them. A cache: on failure they are dropped, and
	 * its commit need not wait for the disk (the next FULL one syncs
	 * the WAL with these frames in it). */
	if (mi_st(u, MI_BEGIN, NULL) == NULL) { /* opens index.db again */
		mi_cache_clear(u);
		return;
	}
	(void)sqlite3_exec(u->db, "PRAGMA synchronous=NORMAL", NULL, NULL,
	                   NULL);
	if (mi_begin(u, &error) != MBOX_OK || mi_commit(u, &error) != MBOX_OK)
		log_warn(NULL, "event=mailbox_cache_set user=%s error=%s",
		         u->dir, error != NULL ? error : "");
	(void)sqlite3_exec(u->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
	free(error);
	mi_cache_clear(u);
}

/* ---- STORE ---- */

/* Whether the space-separated list has word (case-insensitive). */
static bool
mi_list_has(const char *list, const char *word, size_t len)
{
	const char *p = list;

	while (p != NULL && *p != '\0') {
		size_t n = strcspn(p, " ");

		if (n == len && strncasecmp(p, word, len) == 0)
			return true;
		p += n;
		while (*p == ' ')
			p++;
	}
	return false;
}

/* old op kw (both canonical space-separated, NULL = none); malloc'd or
 * NULL. */
static char *
mi_keywords_apply(const char *old, enum mbox_flag_op op, const char *kw)
{
	struct buf out;
	const char *p;
	char *res = NULL;

	if (op == MBOX_FLAGS_SET)
		return kw != NULL ? xstrdup(kw) : NULL;
	buf_init(&out, 0);
	for (p = old; p != NULL && *p != '\0';) {
		size_t n = strcspn(p, " ");

		if (n > 0 &&
		    !(op == MBOX_FLAGS_REMOVE && mi_list_has(kw, p, n))) {
			if (out.len > 0)
				(void)buf_append_byte(&out, ' ');
			(void)buf_append(&out, p, n);
		}
		p += n;
		while (*p == ' ')
			p++;
	}
	if (op == MBOX_FLAGS_ADD) {
		for (p = kw; p != NULL && *p != '\0';) {
			size_t n = strcspn(p, " ");

			if (n > 0 && !mi_list_has(old, p, n)) {
				if (out.len > 0)
					(void)buf_append_byte(&out, ' ');
				(void)buf_append(&out, p, n);
			}
			p += n;
			while (*p == ' ')
				p++;
		}
	}
	if (out.len > 0)
		res = xstrndup((const char *)out.data, out.len);
	buf_free(&out);
	return res;
}

static bool
mi_str_eq(const char *a, const char *b)
{
	return strcmp(a != NULL ? a : "", b != NULL ? b : "") == 0;
}

struct mi_renamed {
	char *from, *to;
};

static void
mi_renames_undo(int curfd, struct mi_renamed *r, size_t n, bool undo)
{
	for (size_t i = n; i-- > 0;) {
		if (undo && renameat(curfd, r[i].to, curfd, r[i].from) < 0)
			log_error(NULL,
			          "event=mailbox_store_undo file=%s error=%s",
			          r[i].to, strerror(errno));
		free(r[i].from);
		free(r[i].to);
	}
	free(r);
}

/* Inside a transaction: the mailbox row, with new files picked up first
 * (so that stored file names are current). */
static int
mi_box_locked(struct mbox *box, struct mi_box *b, char **error_r)
{
	int rc;

	if ((rc = mi_box_by_id(box->u, box->id, b, error_r)) != MBOX_OK)
		return rc;
	return mi_sync_locked(box->u, b, &box->dirs, false, error_r);
}

int
mbox_store_flags(struct mbox *box, const uint32_t *uids, size_t n,
                 enum mbox_flag_op op, uint32_t flags, const char *keywords,
                 uint64_t unchangedsince, uint32_t **failed_r,
                 size_t *nfailed_r, char **error_r)
{
	struct mbox_user *u = box->u;
	struct mi_renamed *renamed = NULL;
	size_t nrenamed = 0, nfailed = 0;
	uint32_t *failed = NULL;
	struct mi_box b = {0};
	char *kw = NULL;
	bool changed = false;
	uint64_t modseq;
	int rc;

	*failed_r = NULL;
	*nfailed_r = 0;
	if (box->readonly)
		return mi_err(error_r, MBOX_ERR_CANNOT, "mailbox is read-only");
	if (op != MBOX_FLAGS_SET && op != MBOX_FLAGS_ADD &&
	    op != MBOX_FLAGS_REMOVE)
		return mi_err(error_r, MBOX_ERR_CANNOT, "invalid STORE op");
	if (!mi_keywords_valid(keywords))
		return mi_err(error_r, MBOX_ERR_BADNAME, "invalid keyword");
	flags &= MI_FLAGS_MASK;
	if ((rc = mi_begin(u, error_r)) != MBOX_OK)
		return rc;
	if ((rc = mi_box_locked(box, &b, error_r)) != MBOX_OK)
		goto fail;
	/* Removing needs no registration (nor counts against the limit). */
	if (op == MBOX_FLAGS_REMOVE)
		kw = keywords != NULL ? xstrdup(keywords) : NULL;
	else if ((rc = mi_keywords_register(u, box->id, keywords, &kw,
	                                    error_r)) != MBOX_OK)
		goto fail;
	modseq = b.highestmodseq + 1;
	for (size_t i = 0; i < n; i++) {
		struct mi_msgrow r;
		uint32_t nflags;
		char *nkw, *nname;
		sqlite3_stmt *st;

		rc = mi_msg_get(u, box->id, uids[i], &r, NULL);
		if (rc == MBOX_ERR_NOTFOUND)
			continue; /* expunged meanwhile */
		if (rc != MBOX_OK) {
			rc = mi_dberr(u, error_r, "messages");
			goto fail;
		}
		if (unchangedsince != 0 && r.modseq > unchangedsince) {
			failed =
			    xreallocarray(failed, nfailed + 1, sizeof(*failed));
			failed[nfailed++] = uids[i];
			mi_msgrow_clear(&r);
			continue;
		}
		nflags = op == MBOX_FLAGS_SET   ? flags
		         : op == MBOX_FLAGS_ADD ? r.flags | flags
		                                : r.flags & ~flags;
		nkw = (op == MBOX_FLAGS_SET || keywords != NULL)
		          ? mi_keywords_apply(r.keywords, op, kw)
		          : (r.keywords != NULL ? xstrdup(r.keywords) : NULL);
		if (nflags == r.flags && mi_str_eq(nkw, r.keywords)) {
			free(nkw);
			mi_msgrow_clear(&r);
			continue;
		}
		nname = nflags == r.flags
		            ? xstrdup(r.filename)
		            : mi_name_with_flags(r.filename, nflags);
		if (strcmp(nname, r.filename) != 0) {
			if (mi_rename_noreplace(box->dirs.curfd, r.filename,
			                        box->dirs.curfd, nname) < 0) {
				rc = mi_syserr(error_r, "rename(%s/cur/%s)",
				               b.dir, r.filename);
				free(nkw);
				free(nname);
				mi_msgrow_clear(&r);
				goto fail;
			}
			renamed = xreallocarray(renamed, nrenamed + 1,
			                        sizeof(*renamed));
			renamed[nrenamed].from = xstrdup(r.filename);
			renamed[nrenamed].to = xstrdup(nname);
			nrenamed++;
		}
		st = mi_st(u, MI_MSG_SET_FLAGS, error_r);
		if (st != NULL) {
			sqlite3_bind_int64(st, 1, box->id);
			sqlite3_bind_int64(st, 2, uids[i]);
			sqlite3_bind_int64(st, 3, nflags);
			if (nkw != NULL)
				sqlite3_bind_text(st, 4, nkw, -1,
				                  SQLITE_STATIC);
			else
				sqlite3_bind_null(st, 4);
			sqlite3_bind_int64(st, 5, (sqlite3_int64)modseq);
			sqlite3_bind_text(st, 6, nname, -1, SQLITE_STATIC);
			rc = mi_step_done(u, st, error_r);
		} else {
			rc = MBOX_ERR_TEMP;
		}
		free(nkw);
		free(nname);
		mi_msgrow_clear(&r);
		if (rc != MBOX_OK)
			goto fail;
		changed = true;
	}
	if (changed) {
		/* The new file names must survive a crash with the index. */
		if (nrenamed > 0 && (rc = mi_fsync_dir(box->dirs.curfd, b.dir,
		                                       error_r)) != MBOX_OK)
			goto fail;
		if ((rc = mi_box_set_counters(u, box->id, b.uidnext, modseq,
		                              error_r)) != MBOX_OK)
			goto fail;
	}
	if ((rc = mi_commit(u, error_r)) != MBOX_OK)
		goto fail;
	mi_renames_undo(box->dirs.curfd, renamed, nrenamed, false);
	mi_box_clear(&b);
	free(kw);
	if ((rc = mi_box_refresh(box, error_r)) != MBOX_OK) {
		free(failed);
		return rc;
	}
	*failed_r = failed;
	*nfailed_r = nfailed;
	if (nfailed > 0)
		return mi_err(error_r, MBOX_ERR_MODIFIED,
		              "%zu messages changed since %llu", nfailed,
		              (unsigned long long)unchangedsince);
	return MBOX_OK;
fail:
	mi_rollback(u);
	mi_renames_undo(box->dirs.curfd, renamed, nrenamed, true);
	mi_box_clear(&b);
	free(kw);
	free(failed);
	return rc;
}

/* ---- EXPUNGE ---- */

int
mbox_expunge(struct mbox *box, const uint32_t *uids, size_t n,
             uint32_t **expunged_r, size_t *nexpunged_r, char **error_r)
{
	struct mbox_user *u = box->u;
	struct mi_box b = {0};
	uint32_t *gone = NULL;
	char **files = NULL;
	size_t ngone = 0;
	uint64_t modseq;
	int rc;

	*expunged_r = NULL;
	*nexpunged_r = 0;
	if (box->readonly)
		return mi_err(error_r, MBOX_ERR_CANNOT, "mailbox is read-only");
	if ((rc = mi_begin(u, error_r)) != MBOX_OK)
		return rc;
	if ((rc = mi_box_locked(box, &b, error_r)) != MBOX_OK)
		goto fail;
	if (uids == NULL) {
		sqlite3_stmt *st = mi_st(u, MI_MSG_DELETED, error_r);
		int step;

		if (st == NULL) {
			rc = MBOX_ERR_TEMP;
			goto fail;
		}
		sqlite3_bind_int64(st, 1, box->id);
		while ((step = sqlite3_step(st)) == SQLITE_ROW) {
			const unsigned char *fn = sqlite3_column_text(st, 1);

			gone = xreallocarray(gone, ngone + 1, sizeof(*gone));
			files = xreallocarray(files, ngone + 1, sizeof(*files));
			gone[ngone] = (uint32_t)sqlite3_column_int64(st, 0);
			files[ngone++] =
			    xstrdup(fn != NULL ? (const char *)fn : "");
		}
		mi_done(st);
		if (step != SQLITE_DONE) {
			rc = mi_dberr(u, error_r, "messages");
			goto fail;
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			struct mi_msgrow r;

			rc = mi_msg_get(u, box->id, uids[i], &r, error_r);
			if (rc == MBOX_ERR_NOTFOUND) {
				if (error_r != NULL)
					xfree(error_r);
				continue;
			}
			if (rc != MBOX_OK)
				goto fail;
			if (r.flags & MBOX_F_DELETED) {
				gone = xreallocarray(gone, ngone + 1,
				                     sizeof(*gone));
				files = xreallocarray(files, ngone + 1,
				                      sizeof(*files));
				gone[ngone] = uids[i];
				files[ngone++] = r.filename;
				r.filename = NULL;
			}
			mi_msgrow_clear(&r);
		}
	}
	rc = MBOX_OK;
	modseq = b.highestmodseq + 1;
	for (size_t i = 0; i < ngone && rc == MBOX_OK; i++) {
		/* The file first: a row without its file is expunged by the
		 * next sync anyway, a file without its row would come back. */
		if (unlinkat(box->dirs.curfd, files[i], 0) < 0 &&
		    errno != ENOENT) {
			rc = mi_syserr(error_r, "unlink(%s/cur/%s)", b.dir,
			               files[i]);
			break;
		}
		rc = mi_msg_expunge(u, box->id, gone[i], modseq, error_r);
	}
	if (rc == MBOX_OK && ngone > 0 &&
	    ((rc = mi_fsync_dir(box->dirs.curfd, b.dir, error_r)) != MBOX_OK ||
	     (rc = mi_box_set_counters(u, box->id, b.uidnext, modseq,
	                               error_r)) != MBOX_OK))
		goto fail;
	if (rc != MBOX_OK || (rc = mi_commit(u, error_r)) != MBOX_OK)
		goto fail;
	for (size_t i = 0; i < ngone; i++)
		free(files[i]);
	free(files);
	mi_box_clear(&b);
	if ((rc = mi_box_refresh(box, error_r)) != MBOX_OK) {
		free(gone);
		return rc;
	}
	*expunged_r = gone;
	*nexpunged_r = ngone;
	return MBOX_OK;
fail:
	mi_rollback(u);
	for (size_t i = 0; i < ngone; i++)
		free(files[i]);
	free(files);
	free(gone);
	mi_box_clear(&b);
	return rc;
}
