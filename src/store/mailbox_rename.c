/* RENAME (RFC 9051 6.3.6): a mailbox and its children move to a new name
 * (directories renamed, rows and subscriptions follow, UIDVALIDITY kept);
 * renaming INBOX moves its messages into a new mailbox and leaves INBOX
 * empty. Directories go through tmp/ ("rename.<id>") so that a child's new
 * name may be another child's old one; a crash in between leaves them
 * there, and mi_tmp_recover() (run when a user is opened) puts them back.
 * SECURITY: both names pass mbox_name_valid(); directories come from
 * mi_name_to_dir(). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "store/mailbox_int.h"

#define MI_PARK_PREFIX "rename."

struct mi_move {
	int64_t id;
	char *oldname, *newname;
	char *olddir, *newdir;
	char *parked;
	int state; /* 0 in place, 1 parked in tmp/, 2 at its new place */
};

static void
mi_moves_free(struct mi_move *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].oldname);
		free(m[i].newname);
		free(m[i].olddir);
		free(m[i].newdir);
		free(m[i].parked);
	}
	free(m);
}

static int
mi_row_rename(struct mbox_user *u, int64_t id, const char *name,
              const char *dir, char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_BOX_RENAME, error_r);

	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, dir, -1, SQLITE_STATIC);
	return mi_step_done(u, st, error_r);
}

/* from and its children, with their new names. */
static int
mi_moves_collect(struct mbox_user *u, const struct mi_box *from, const char *to,
                 struct mi_move **moves_r, size_t *n_r, char **error_r)
{
	struct mi_move *m = xcalloc(1, sizeof(*m));
	size_t n = 1, fromlen = strlen(from->name);
	sqlite3_stmt *st = mi_st(u, MI_BOX_RANGE, error_r);
	char *lo, *hi;
	int step, rc = MBOX_OK;

	m[0].id = from->id;
	m[0].oldname = xstrdup(from->name);
	m[0].olddir = xstrdup(from->dir);
	if (st == NULL) {
		mi_moves_free(m, n);
		return MBOX_ERR_TEMP;
	}
	mi_child_range(from->name, &lo, &hi);
	sqlite3_bind_text(st, 1, lo, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hi, -1, SQLITE_STATIC);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct mi_box b;

		mi_box_from_row(st, &b);
		m = xreallocarray(m, n + 1, sizeof(*m));
		m[n] = (struct mi_move){
		    .id = b.id, .oldname = b.name, .olddir = b.dir};
		n++;
	}
	mi_done(st);
	free(lo);
	free(hi);
	if (step != SQLITE_DONE) {
		mi_moves_free(m, n);
		return mi_dberr(u, error_r, "mailboxes");
	}
	for (size_t i = 0; i < n && rc == MBOX_OK; i++) {
		struct mi_box b;
		bool ours = false;

		m[i].newname = xasprintf("%s%s", to, m[i].oldname + fromlen);
		if (!mbox_name_valid(m[i].newname) ||
		    (m[i].newdir = mi_name_to_dir(m[i].newname)) == NULL) {
			rc = mi_err(error_r, MBOX_ERR_BADNAME,
			            "new name of %s is invalid", m[i].oldname);
			break;
		}
		rc = mi_box_by_name(u, m[i].newname, &b, NULL);
		for (size_t j = 0; rc == MBOX_OK && j < n; j++)
			ours |= b.id == m[j].id;
		mi_box_clear(&b);
		if (rc == MBOX_OK && !ours)
			rc = mi_err(error_r, MBOX_ERR_EXISTS,
			            "mailbox %s exists", m[i].newname);
		else if (rc == MBOX_OK || rc == MBOX_ERR_NOTFOUND)
			rc = MBOX_OK;
		else
			rc = mi_dberr(u, error_r, "mailboxes");
	}
	if (rc != MBOX_OK) {
		mi_moves_free(m, n);
		return rc;
	}
	*moves_r = m;
	*n_r = n;
	return MBOX_OK;
}

/* Undo the directory moves made so far (best effort, logged). */
static void
mi_moves_undo(struct mbox_user *u, struct mi_move *m, size_t n)
{
	for (size_t i = n; i-- > 0;) {
		if (m[i].state == 2 &&
		    renameat(u->dirfd, m[i].newdir, u->tmpfd, m[i].parked) == 0)
			m[i].state = 1;
		if (m[i].state == 1 &&
		    renameat(u->tmpfd, m[i].parked, u->dirfd, m[i].olddir) == 0)
			m[i].state = 0;
		if (m[i].state != 0)
			log_error(NULL,
			          "event=mailbox_rename_undo user=%s dir=%s "
			          "error=%s",
			          u->dir, m[i].olddir, strerror(errno));
	}
}

static int
mi_moves_apply(struct mbox_user *u, struct mi_move *m, size_t n, char **error_r)
{
	int rc;

	/* Rows out of each other's way first, then at their new names. */
	for (size_t i = 0; i < n; i++) {
		char *tmp = xasprintf("\001%lld", (long long)m[i].id);

		rc = mi_row_rename(u, m[i].id, tmp, tmp, error_r);
		free(tmp);
		if (rc != MBOX_OK)
			return rc;
	}
	for (size_t i = 0; i < n; i++)
		if ((rc = mi_row_rename(u, m[i].id, m[i].newname, m[i].newdir,
		                        error_r)) != MBOX_OK)
			return rc;
	/* The same for the directories. */
	for (size_t i = 0; i < n; i++) {
		m[i].parked =
		    xasprintf("%s%lld", MI_PARK_PREFIX, (long long)m[i].id);
		if (renameat(u->dirfd, m[i].olddir, u->tmpfd, m[i].parked) <
		    0) {
			if (errno == ENOENT) {
				/* Already gone: make an empty one. */
				if ((rc = mi_folder_make(u, m[i].newdir,
				                         error_r)) != MBOX_OK)
					return rc;
				m[i].state = 3;
				continue;
			}
			return mi_syserr(error_r, "rename(%s/%s)", u->dir,
			                 m[i].olddir);
		}
		m[i].state = 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (m[i].state != 1)
			continue;
		if (mi_rename_noreplace(u->tmpfd, m[i].parked, u->dirfd,
		                        m[i].newdir) < 0) {
			if (errno == EEXIST)
				return mi_err(error_r, MBOX_ERR_EXISTS,
				              "%s/%s exists", u->dir,
				              m[i].newdir);
			return mi_syserr(error_r, "rename(%s/%s)", u->dir,
			                 m[i].newdir);
		}
		m[i].state = 2;
	}
	if ((rc = mi_fsync_dir(u->tmpfd, "tmp", error_r)) != MBOX_OK)
		return rc;
	return mi_fsync_dir(u->dirfd, u->dir, error_r);
}

/* Subscriptions of the moved names follow them. */
static int
mi_subs_move(struct mbox_user *u, const char *from, const char *to,
             char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_SUB_RANGE, error_r);
	size_t n = 0, fromlen = strlen(from);
	char **names = NULL, *lo, *hi;
	int step, rc = MBOX_OK;

	if (st == NULL)
		return MBOX_ERR_TEMP;
	mi_child_range(from, &lo, &hi);
	sqlite3_bind_text(st, 1, from, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, lo, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, hi, -1, SQLITE_STATIC);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(st, 0);

		if (v == NULL)
			continue;
		names = xreallocarray(names, n + 1, sizeof(*names));
		names[n++] = xstrdup((const char *)v);
	}
	mi_done(st);
	free(lo);
	free(hi);
	if (step != SQLITE_DONE)
		rc = mi_dberr(u, error_r, "subscriptions");
	for (size_t i = 0; i < n && rc == MBOX_OK; i++) {
		if ((st = mi_st(u, MI_SUB_DEL, error_r)) == NULL) {
			rc = MBOX_ERR_TEMP;
			break;
		}
		sqlite3_bind_text(st, 1, names[i], -1, SQLITE_STATIC);
		rc = mi_step_done(u, st, error_r);
	}
	for (size_t i = 0; i < n && rc == MBOX_OK; i++) {
		char *name = xasprintf("%s%s", to, names[i] + fromlen);

		if ((st = mi_st(u, MI_SUB_ADD, error_r)) == NULL) {
			free(name);
			rc = MBOX_ERR_TEMP;
			break;
		}
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		rc = mi_step_done(u, st, error_r);
		free(name);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* INBOX: its messages (files linked, rows moved, UIDs kept) go to a new
 * mailbox to; INBOX stays, empty, its UIDs recorded as expunged. The
 * files leave INBOX after the commit: a crash in between duplicates them
 * (they come back to INBOX as new messages), never loses them. */
static int
mi_rename_inbox(struct mbox_user *u, const char *to, char **error_r)
{
	struct mi_box inbox = {0}, dest = {0};
	struct mi_dirs from_d = {-1, -1, -1}, to_d = {-1, -1, -1};
	char **files = NULL;
	size_t n = 0, linked = 0;
	sqlite3_stmt *st;
	uint64_t modseq;
	int rc, step;

	/* New files in new/ get their UIDs (and their place in cur/). */
	if ((rc = mi_box_synced(u, "INBOX", &inbox, error_r)) != MBOX_OK)
		return rc;
	mi_box_clear(&inbox);
	if ((rc = mi_begin(u, error_r)) != MBOX_OK)
		return rc;
	if ((rc = mi_box_by_name(u, "INBOX", &inbox, error_r)) != MBOX_OK)
		goto fail;
	rc = mi_box_by_name(u, to, &dest, NULL);
	mi_box_clear(&dest);
	if (rc == MBOX_OK) {
		rc = mi_err(error_r, MBOX_ERR_EXISTS, "mailbox %s exists", to);
		goto fail;
	}
	if ((rc = mi_create_levels(u, to, true, MBOX_SPECIAL_NONE, NULL,
	                           error_r)) != MBOX_OK ||
	    (rc = mi_box_by_name(u, to, &dest, error_r)) != MBOX_OK ||
	    (rc = mi_dirs_open(u, inbox.dir, &from_d, error_r)) != MBOX_OK ||
	    (rc = mi_dirs_open(u, dest.dir, &to_d, error_r)) != MBOX_OK)
		goto fail;
	if ((st = mi_st(u, MI_MSG_FILES, error_r)) == NULL) {
		rc = MBOX_ERR_TEMP;
		goto fail;
	}
	sqlite3_bind_int64(st, 1, inbox.id);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *f = sqlite3_column_text(st, 2);

		if (f == NULL)
			continue;
		files = xreallocarray(files, n + 1, sizeof(*files));
		files[n++] = xstrdup((const char *)f);
	}
	mi_done(st);
	if (step != SQLITE_DONE) {
		rc = mi_dberr(u, error_r, "messages");
		goto fail;
	}
	for (; linked < n; linked++) {
		if (linkat(from_d.curfd, files[linked], to_d.curfd,
		           files[linked], 0) < 0) {
			rc = mi_syserr(error_r, "link(%s/cur/%s)", dest.dir,
			               files[linked]);
			goto fail;
		}
	}
	if ((rc = mi_fsync_dir(to_d.curfd, dest.dir, error_r)) != MBOX_OK)
		goto fail;
	modseq = inbox.highestmodseq + 1;
	if ((st = mi_st(u, MI_EXP_ALL, error_r)) == NULL) {
		rc = MBOX_ERR_TEMP;
		goto fail;
	}
	sqlite3_bind_int64(st, 1, inbox.id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)modseq);
	if ((rc = mi_step_done(u, st, error_r)) != MBOX_OK)
		goto fail;
	if ((st = mi_st(u, MI_KW_COPY, error_r)) == NULL) {
		rc = MBOX_ERR_TEMP;
		goto fail;
	}
	sqlite3_bind_int64(st, 1, inbox.id);
	sqlite3_bind_int64(st, 2, dest.id);
	if ((rc = mi_step_done(u, st, error_r)) != MBOX_OK)
		goto fail;
	if ((st = mi_st(u, MI_MSG_MOVE_ALL, error_r)) == NULL) {
		rc = MBOX_ERR_TEMP;
		goto fail;
	}
	sqlite3_bind_int64(st, 1, inbox.id);
	sqlite3_bind_int64(st, 2, dest.id);
	u->text_lag = true; /* dest's messages are not in the text index */
	if ((rc = mi_step_done(u, st, error_r)) != MBOX_OK ||
	    (rc = mi_box_set_counters(u, inbox.id, inbox.uidnext, modseq,
	                              error_r)) != MBOX_OK ||
	    (rc = mi_box_set_counters(u, dest.id, inbox.uidnext, modseq,
	                              error_r)) != MBOX_OK ||
	    (rc = mi_commit(u, error_r)) != MBOX_OK)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (unlinkat(from_d.curfd, files[i], 0) < 0 && errno != ENOENT)
			log_error(NULL,
			          "event=mailbox_rename_inbox_unlink user=%s "
			          "file=%s error=%s",
			          u->dir, files[i], strerror(errno));
	(void)fsync(from_d.curfd);
	log_info(NULL,
	         "event=mailbox_rename user=%s from=INBOX to=%s messages=%zu",
	         u->dir, to, n);
	rc = MBOX_OK;
	goto out;
fail:
	mi_rollback(u);
	for (size_t i = 0; i < linked; i++)
		(void)unlinkat(to_d.curfd, files[i], 0);
	/* The new mailbox did not exist: its directory goes too. */
	if (dest.dir != NULL)
		(void)mi_rmtree(u->dirfd, dest.dir);
out:
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	free(files);
	mi_dirs_close(&from_d);
	mi_dirs_close(&to_d);
	mi_box_clear(&inbox);
	mi_box_clear(&dest);
	return rc;
}

int
mbox_rename(struct mbox_user *u, const char *from, const char *to,
            char **error_r)
{
	struct mi_box fb = {0}, tb;
	struct mi_move *moves = NULL;
	size_t n = 0, fromlen;
	char *cfrom, *cto;
	int rc;

	if (!mbox_name_valid(from) || !mbox_name_valid(to))
		return mi_err(error_r, MBOX_ERR_BADNAME,
		              "invalid mailbox name");
	cfrom = mi_name_canon(from);
	cto = mi_name_canon(to);
	fromlen = strlen(cfrom);
	if (mi_name_is_inbox(cto) || strcmp(cfrom, cto) == 0) {
		rc = mi_err(error_r, MBOX_ERR_EXISTS, "mailbox %s exists", cto);
		goto out;
	}
	/* INBOX's children stay where they are: "INBOX/old" is fine. */
	if (!mi_name_is_inbox(cfrom) && strncmp(cto, cfrom, fromlen) == 0 &&
	    cto[fromlen] == '/') {
		rc = mi_err(error_r, MBOX_ERR_CANNOT,
		            "cannot rename a mailbox into itself");
		goto out;
	}
	if ((rc = mi_folders_sync(u, false, error_r)) != MBOX_OK)
		goto out;
	if (mi_name_is_inbox(cfrom)) {
		rc = mi_rename_inbox(u, cto, error_r);
		goto out;
	}
	if ((rc = mi_begin(u, error_r)) != MBOX_OK)
		goto out;
	if ((rc = mi_box_by_name(u, cfrom, &fb, error_r)) != MBOX_OK)
		goto fail;
	rc = mi_box_by_name(u, cto, &tb, NULL);
	mi_box_clear(&tb);
	if (rc == MBOX_OK) {
		rc = mi_err(error_r, MBOX_ERR_EXISTS, "mailbox %s exists", cto);
		goto fail;
	}
	if ((rc = mi_moves_collect(u, &fb, cto, &moves, &n, error_r)) !=
	        MBOX_OK ||
	    (rc = mi_create_levels(u, cto, false, MBOX_SPECIAL_NONE, NULL,
	                           error_r)) != MBOX_OK)
		goto fail;
	if ((rc = mi_moves_apply(u, moves, n, error_r)) != MBOX_OK ||
	    (rc = mi_subs_move(u, cfrom, cto, error_r)) != MBOX_OK ||
	    (rc = mi_commit(u, error_r)) != MBOX_OK) {
		mi_moves_undo(u, moves, n);
		goto fail;
	}
	log_info(NULL, "event=mailbox_rename user=%s from=%s to=%s boxes=%zu",
	         u->dir, cfrom, cto, n);
	goto out;
fail:
	mi_rollback(u);
out:
	mi_moves_free(moves, n);
	mi_box_clear(&fb);
	free(cfrom);
	free(cto);
	return rc;
}

int
mi_tmp_recover_locked(struct mbox_user *u, char **error_r)
{
	struct dirent *de;
	bool restored = false;
	DIR *d;
	int fd;

	fd = openat(u->tmpfd, ".", MI_DIR_FLAGS);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return mi_syserr(error_r, "opendir(%s/tmp)", u->dir);
	}
	while ((de = readdir(d)) != NULL) {
		struct mi_box b;
		struct stat sb;
		char *end;
		long long id;

		if (strncmp(de->d_name, MI_PARK_PREFIX,
		            strlen(MI_PARK_PREFIX)) != 0)
			continue;
		id = strtoll(de->d_name + strlen(MI_PARK_PREFIX), &end, 10);
		if (*end != '\0' || mi_box_by_id(u, id, &b, NULL) != MBOX_OK) {
			mi_box_clear(&b);
			log_error(NULL,
			          "event=mailbox_parked_unknown user=%s dir=%s",
			          u->dir, de->d_name);
			continue;
		}
		if (fstatat(u->dirfd, b.dir, &sb, AT_SYMLINK_NOFOLLOW) < 0 &&
		    errno == ENOENT &&
		    renameat(u->tmpfd, de->d_name, u->dirfd, b.dir) == 0) {
			restored = true;
			log_notice(NULL,
			           "event=mailbox_parked_restored user=%s "
			           "mailbox=%s",
			           u->dir, b.name);
		} else
			log_error(NULL,
			          "event=mailbox_parked_kept user=%s dir=%s "
			          "mailbox=%s",
			          u->dir, de->d_name, b.name);
		mi_box_clear(&b);
	}
	closedir(d);
	if (restored)
		return mi_fsync_dir(u->dirfd, u->dir, error_r);
	return MBOX_OK;
}

int
mi_tmp_recover(struct mbox_user *u, char **error_r)
{
	int rc;

	if ((rc = mi_begin(u, error_r)) != MBOX_OK)
		return rc;
	rc = mi_tmp_recover_locked(u, error_r);
	mi_rollback(u); /* nothing written: the lock only kept others out */
	return rc;
}
