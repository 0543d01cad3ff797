/* The mailbox store of one user (mailbox.h): opening it (directory,
 * index.db, default mailboxes), LIST, STATUS, CREATE, DELETE, SUBSCRIBE and
 * the IDLE change counter. RENAME is in mailbox_rename.c, one open mailbox
 * in mailbox_msg.c, new messages in mailbox_append.c.
 * SECURITY: every name from a client passes mbox_name_valid() before it is
 * looked up or turned into a directory (mi_name_to_dir: escaped, never "/"
 * or ".."); directories are created 0700 and opened with O_NOFOLLOW. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "store/mailbox_int.h"

/* tmp/ files older than this are leftovers of a crash (Maildir: 36 h). */
#define MI_TMP_STALE_S (36 * 3600)

static const struct {
	const char *name;
	enum mbox_special special;
} mi_defaults[] = {
    {"Drafts", MBOX_SPECIAL_DRAFTS},   {"Sent", MBOX_SPECIAL_SENT},
    {"Junk", MBOX_SPECIAL_JUNK},       {"Trash", MBOX_SPECIAL_TRASH},
    {"Archive", MBOX_SPECIAL_ARCHIVE},
};

void
mi_child_range(const char *name, char **lo_r, char **hi_r)
{
	*lo_r = xasprintf("%s/", name);
	*hi_r = xasprintf("%s0", name); /* "0" follows "/" */
}

static int
mi_has_children(struct mbox_user *u, const char *name, bool *has_r,
                char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_BOX_RANGE, error_r);
	char *lo, *hi;
	int rc;

	*has_r = false;
	if (st == NULL)
		return MBOX_ERR_TEMP;
	mi_child_range(name, &lo, &hi);
	sqlite3_bind_text(st, 1, lo, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hi, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	*has_r = rc == SQLITE_ROW;
	mi_done(st);
	free(lo);
	free(hi);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return mi_dberr(u, error_r, "mailboxes");
	return MBOX_OK;
}

static int
mi_subscribed(struct mbox_user *u, const char *name, bool *on_r, char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_SUB_GET, error_r);
	int64_t v;
	int rc;

	*on_r = false;
	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = mi_step_int(u, st, &v, error_r);
	*on_r = v != 0;
	return rc;
}

static void
mi_info_from_box(const struct mi_box *b, struct mbox_info *info)
{
	*info = (struct mbox_info){
	    .name = xstrdup(b->name),
	    .exists = true,
	    .special = b->special,
	    .uidvalidity = b->uidvalidity,
	    .uidnext = b->uidnext,
	    .highestmodseq = b->highestmodseq,
	    .messages = b->messages,
	    .unseen = b->unseen,
	    .deleted = b->deleted,
	    .size = b->size,
	};
}

int
mi_info_fill(struct mbox_user *u, const struct mi_box *b,
             struct mbox_info *info, char **error_r)
{
	int rc;

	mi_info_from_box(b, info);
	if ((rc = mi_subscribed(u, b->name, &info->subscribed, error_r)) !=
	        MBOX_OK ||
	    (rc = mi_has_children(u, b->name, &info->has_children, error_r)) !=
	        MBOX_OK)
		mbox_info_clear(info);
	return rc;
}

void
mbox_info_clear(struct mbox_info *info)
{
	free(info->name);
	*info = (struct mbox_info){0};
}

void
mbox_info_free_list(struct mbox_info **list, size_t n)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		mbox_info_clear(&(*list)[i]);
	xfree(list);
}

/* ---- opening ---- */

/* mkdir -p of the user's directory (its parents are the operator's). */
static int
mi_mkdirs(const char *dir, char **error_r)
{
	char *path;

	if (mkdir(dir, 0700) == 0 || errno == EEXIST)
		return MBOX_OK;
	if (errno != ENOENT)
		return mi_syserr(error_r, "mkdir(%s)", dir);
	path = xstrdup(dir);
	for (char *p = path + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			int rc = mi_syserr(error_r, "mkdir(%s)", path);

			free(path);
			return rc;
		}
		*p = '/';
	}
	free(path);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return mi_syserr(error_r, "mkdir(%s)", dir);
	return MBOX_OK;
}

/* A fresh index: INBOX and the special-use mailboxes (adopting their
 * directories when they exist: an index rebuilt from scratch), subscribed.
 * Inside the transaction mi_db_open() left open. */
static int
mi_create_defaults(struct mbox_user *u, char **error_r)
{
	uint32_t uidvalidity;
	sqlite3_stmt *st;
	int rc;

	if ((rc = mi_new_uidvalidity(u, &uidvalidity, error_r)) != MBOX_OK ||
	    (rc = mi_box_insert(u, "INBOX", MI_INBOX_DIR, MBOX_SPECIAL_NONE,
	                        uidvalidity, 1, 1, NULL, error_r)) != MBOX_OK)
		return rc;
	for (size_t i = 0; i < sizeof(mi_defaults) / sizeof(mi_defaults[0]);
	     i++) {
		if ((rc = mi_create_levels(u, mi_defaults[i].name, true,
		                           mi_defaults[i].special, NULL,
		                           error_r)) != MBOX_OK)
			return rc;
	}
	for (size_t i = 0; i <= sizeof(mi_defaults) / sizeof(mi_defaults[0]);
	     i++) {
		const char *name = i == 0 ? "INBOX" : mi_defaults[i - 1].name;

		if ((st = mi_st(u, MI_SUB_ADD, error_r)) == NULL)
			return MBOX_ERR_TEMP;
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		if ((rc = mi_step_done(u, st, error_r)) != MBOX_OK)
			return rc;
	}
	return MBOX_OK;
}

/* tmp/: remove what a crash left (stale message files, deleted mailboxes)
 * and put back folders a crash parked mid-rename. */
static void
mi_tmp_clean(struct mbox_user *u)
{
	bool parked = false;
	struct dirent *de;
	time_t now = time(NULL);
	DIR *d;
	int fd = openat(u->tmpfd, ".", MI_DIR_FLAGS);

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat sb;

		if (de->d_name[0] == '.' ||
		    fstatat(u->tmpfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (strncmp(de->d_name, "rename.", 7) == 0 &&
		    S_ISDIR(sb.st_mode)) {
			parked = true;
		} else if (strncmp(de->d_name, MI_DELETED_PREFIX,
		                   strlen(MI_DELETED_PREFIX)) == 0 &&
		           S_ISDIR(sb.st_mode)) {
			if (mi_rmtree(u->tmpfd, de->d_name) < 0)
				log_warn(NULL,
				         "event=mailbox_tmp_clean user=%s "
				         "file=%s error=%s",
				         u->dir, de->d_name, strerror(errno));
		} else if (S_ISREG(sb.st_mode) &&
		           sb.st_mtime < now - MI_TMP_STALE_S) {
			(void)unlinkat(u->tmpfd, de->d_name, 0);
		}
	}
	closedir(d);
	if (parked) {
		char *error = NULL;

		if (mi_tmp_recover(u, &error) != MBOX_OK) {
			log_error(NULL,
			          "event=mailbox_tmp_recover user=%s error=%s",
			          u->dir, error);
			free(error);
		}
	}
}

int
mbox_user_open(const char *dir, uint64_t quota_bytes, struct mbox_user **user_r,
               char **error_r)
{
	struct mbox_user *u = xcalloc(1, sizeof(*u));
	bool created;
	int rc;

	*user_r = NULL;
	u->dir = xstrdup(dir);
	u->dirfd = u->tmpfd = -1;
	buf_init(&u->text_msg, MI_TEXT_MESSAGE_MAX + 1);
	buf_init(&u->text_out, 0);
	buf_init(&u->text_words, 0);
	buf_init(&u->text_batch, 0);
	u->quota = quota_bytes;
	if ((rc = mi_mkdirs(dir, error_r)) != MBOX_OK)
		goto fail;
	/* The operator's path may hold symlinks; its last step may not. */
	if ((u->dirfd = open(dir, MI_DIR_FLAGS)) < 0) {
		rc = mi_syserr(error_r, "open(%s)", dir);
		goto fail;
	}
	if ((rc = mi_folder_make(u, MI_INBOX_DIR, error_r)) != MBOX_OK)
		goto fail;
	if ((u->tmpfd = openat(u->dirfd, "tmp", MI_DIR_FLAGS)) < 0) {
		rc = mi_syserr(error_r, "open(%s/tmp)", dir);
		goto fail;
	}
	if ((rc = mi_db_open(u, &created, error_r)) != MBOX_OK)
		goto fail;
	if (created) {
		if ((rc = mi_create_defaults(u, error_r)) != MBOX_OK) {
			mi_rollback(u);
			goto fail;
		}
		if ((rc = mi_commit(u, error_r)) != MBOX_OK)
			goto fail;
		/* index.db must be found after a crash. */
		if ((rc = mi_fsync_dir(u->dirfd, dir, error_r)) != MBOX_OK)
			goto fail;
	}
	mi_tmp_clean(u);
	if ((rc = mi_folders_sync(u, false, error_r)) != MBOX_OK)
		goto fail;
	*user_r = u;
	return MBOX_OK;
fail:
	mbox_user_close(&u);
	return rc;
}

void
mbox_user_close(struct mbox_user **user)
{
	struct mbox_user *u = *user;

	if (u == NULL)
		return;
	mi_window_drop(u);
	mi_cache_flush(u);
	buf_free(&u->text_msg);
	buf_free(&u->text_out);
	buf_free(&u->text_words);
	buf_free(&u->text_batch);
	if (u->db != NULL)
		mi_db_close(u);
	if (u->tmpfd >= 0)
		close(u->tmpfd);
	if (u->dirfd >= 0)
		close(u->dirfd);
	free(u->dir);
	free(u);
	*user = NULL;
}

void
mbox_user_trim(struct mbox_user *u, enum mbox_trim what)
{
	mi_window_drop(u);
	mi_cache_flush(u);
	buf_free(&u->text_msg);
	buf_free(&u->text_out);
	buf_free(&u->text_words);
	buf_free(&u->text_batch);
	if (u->db == NULL)
		return;
	if (what == MBOX_TRIM_CLOSE) {
		if (!sqlite3_get_autocommit(u->db))
			return; /* inside a change */
		/* The last connection to close would checkpoint the WAL into
		 * index.db and remove it: work (and an fsync) per IDLE, and
		 * moved stamps for mbox_quiet. The next one does it. */
		(void)sqlite3_db_config(u->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
		                        1, NULL);
		mi_db_close(u); /* about 27 KB of schema and state */
		return;
	}
	if (what == MBOX_TRIM_STATEMENTS) {
		/* About 40 KB for the ones a session uses. */
		for (size_t i = 0; i < MI_ST_COUNT; i++) {
			sqlite3_finalize(u->st[i]);
			u->st[i] = NULL;
		}
	}
	/* The page cache's first bulk allocation alone is about 85 KB. */
	(void)sqlite3_db_release_memory(u->db);
}

/* The checks every name from a client gets; *canon_r malloc'd. */
static int
mi_name_check(const char *name, char **canon_r, char **error_r)
{
	*canon_r = NULL;
	if (!mbox_name_valid(name))
		return mi_err(error_r, MBOX_ERR_BADNAME,
		              "invalid mailbox name");
	*canon_r = mi_name_canon(name);
	return MBOX_OK;
}

/* ---- LIST ---- */

/* By name, INBOX first, "/" sorting before every other byte so that
 * children follow their parent. */
static int
mi_list_cmp(const void *x, const void *y)
{
	const unsigned char *a =
	    (const unsigned char *)((const struct mbox_info *)x)->name;
	const unsigned char *b =
	    (const unsigned char *)((const struct mbox_info *)y)->name;
	bool ai = strcmp((const char *)a, "INBOX") == 0;
	bool bi = strcmp((const char *)b, "INBOX") == 0;

	if (ai || bi)
		return bi - ai;
	for (;; a++, b++) {
		unsigned ca = *a == '/' ? 1 : *a, cb = *b == '/' ? 1 : *b;

		if (ca != cb || ca == 0)
			return (int)ca - (int)cb;
	}
}

/* Bring every mailbox up to date (for the counts). */
static void
mi_sync_all(struct mbox_user *u)
{
	sqlite3_stmt *st = mi_st(u, MI_BOX_ALL, NULL);
	int64_t *ids = NULL;
	char **dirs = NULL;
	size_t n = 0;

	if (st == NULL)
		return;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *dir = sqlite3_column_text(st, 2);

		ids = xreallocarray(ids, n + 1, sizeof(*ids));
		dirs = xreallocarray(dirs, n + 1, sizeof(*dirs));
		ids[n] = sqlite3_column_int64(st, 0);
		dirs[n] = xstrdup(dir != NULL ? (const char *)dir : "");
		n++;
	}
	mi_done(st);
	for (size_t i = 0; i < n; i++) {
		struct mi_dirs d;
		char *error = NULL;

		if (mi_dirs_open(u, dirs[i], &d, &error) == MBOX_OK) {
			(void)mi_sync(u, ids[i], &d, false, &error);
			mi_dirs_close(&d);
		}
		if (error != NULL) {
			log_warn(NULL,
			         "event=mailbox_sync_failed dir=%s error=%s",
			         dirs[i], error);
			free(error);
		}
		free(dirs[i]);
	}
	free(ids);
	free(dirs);
}

int
mbox_list(struct mbox_user *u, bool counts, struct mbox_info **list_r,
          size_t *n_r, char **error_r)
{
	struct mbox_info *list = NULL;
	size_t n = 0, nboxes;
	sqlite3_stmt *st;
	int rc, step;

	*list_r = NULL;
	*n_r = 0;
	if ((rc = mi_folders_sync(u, false, error_r)) != MBOX_OK)
		return rc;
	if (counts)
		mi_sync_all(u);
	if ((st = mi_st(u, MI_BOX_ALL, error_r)) == NULL)
		return MBOX_ERR_TEMP;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct mi_box b;

		mi_box_from_row(st, &b);
		list = xreallocarray(list, n + 1, sizeof(*list));
		mi_info_from_box(&b, &list[n++]);
		mi_box_clear(&b);
	}
	mi_done(st);
	if (step != SQLITE_DONE)
		goto dberr;
	nboxes = n;
	if (nboxes > 0)
		qsort(list, nboxes, sizeof(*list), mi_list_cmp);
	if ((st = mi_st(u, MI_SUB_ALL, error_r)) == NULL) {
		mbox_info_free_list(&list, n);
		return MBOX_ERR_TEMP;
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		struct mbox_info key = {.name = (char *)name}, *hit = NULL;

		if (name == NULL)
			continue;
		if (nboxes > 0)
			hit = bsearch(&key, list, nboxes, sizeof(*list),
			              mi_list_cmp);
		if (hit != NULL) {
			hit->subscribed = true;
			continue;
		}
		list = xreallocarray(list, n + 1, sizeof(*list));
		list[n++] = (struct mbox_info){.name = xstrdup(name),
		                               .subscribed = true};
	}
	mi_done(st);
	if (step != SQLITE_DONE)
		goto dberr;
	if (n > 0)
		qsort(list, n, sizeof(*list), mi_list_cmp);
	/* Children (existing ones) follow their parent directly. */
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(list[i].name);

		if (strcmp(list[i].name, "INBOX") == 0) {
			for (size_t j = 0; j < n && !list[i].has_children; j++)
				list[i].has_children =
				    list[j].exists &&
				    strncmp(list[j].name, "INBOX/", 6) == 0;
			continue;
		}
		for (size_t j = i + 1;
		     j < n && strncmp(list[j].name, list[i].name, len) == 0 &&
		     list[j].name[len] == '/';
		     j++) {
			if (list[j].exists) {
				list[i].has_children = true;
				break;
			}
		}
	}
	*list_r = list;
	*n_r = n;
	return MBOX_OK;
dberr:
	mbox_info_free_list(&list, n);
	return mi_dberr(u, error_r, "list");
}

int
mbox_status(struct mbox_user *u, const char *name, struct mbox_info *info_r,
            char **error_r)
{
	struct mi_box b;
	char *canon = NULL;
	int rc;

	*info_r = (struct mbox_info){0};
	if ((rc = mi_name_check(name, &canon, error_r)) != MBOX_OK)
		return rc;
	rc = mi_box_synced(u, canon, &b, error_r);
	free(canon);
	if (rc != MBOX_OK)
		return rc;
	rc = mi_info_fill(u, &b, info_r, error_r);
	mi_box_clear(&b);
	return rc;
}

int
mbox_peek(struct mbox_user *u, const char *name, uint64_t *modseq_r,
          uint32_t *uidnext_r, char **error_r)
{
	struct mi_box b;
	char *canon = NULL;
	int rc;

	if ((rc = mi_name_check(name, &canon, error_r)) != MBOX_OK)
		return rc;
	rc = mi_box_synced(u, canon, &b, error_r);
	free(canon);
	if (rc != MBOX_OK)
		return rc;
	*modseq_r = b.highestmodseq;
	*uidnext_r = b.uidnext;
	mi_box_clear(&b);
	return MBOX_OK;
}

/* ---- CREATE, DELETE, SUBSCRIBE ---- */

int
mi_create_levels(struct mbox_user *u, const char *canon, bool self,
                 enum mbox_special special, size_t *made_r, char **error_r)
{
	sqlite3_stmt *st;
	int64_t count;
	size_t made = 0;
	int rc;

	if (made_r != NULL)
		*made_r = 0;
	if ((st = mi_st(u, MI_BOX_COUNT, error_r)) == NULL)
		return MBOX_ERR_TEMP;
	if ((rc = mi_step_int(u, st, &count, error_r)) != MBOX_OK)
		return rc;
	for (size_t end = 0;; end++) {
		bool last = canon[end] == '\0';
		struct mi_box b;
		uint32_t uidvalidity;
		char *level, *dir;

		if (!last && canon[end] != '/')
			continue;
		if (last && !self)
			break;
		level = xstrndup(canon, end);
		rc = mi_box_by_name(u, level, &b, error_r);
		mi_box_clear(&b);
		if (rc == MBOX_OK) {
			free(level);
			if (last)
				break;
			continue;
		}
		if (rc != MBOX_ERR_NOTFOUND) {
			free(level);
			return rc;
		}
		if (error_r != NULL)
			xfree(error_r);
		if (count + (int64_t)made >= MBOX_COUNT_MAX) {
			free(level);
			return mi_err(error_r, MBOX_ERR_LIMIT,
			              "more than %d mailboxes", MBOX_COUNT_MAX);
		}
		if ((dir = mi_name_to_dir(level)) == NULL) {
			free(level);
			return mi_err(error_r, MBOX_ERR_BADNAME,
			              "mailbox name too long");
		}
		if ((rc = mi_folder_make(u, dir, error_r)) == MBOX_OK &&
		    (rc = mi_new_uidvalidity(u, &uidvalidity, error_r)) ==
		        MBOX_OK)
			rc = mi_box_insert(u, level, dir,
			                   last ? special : MBOX_SPECIAL_NONE,
			                   uidvalidity, 1, 1, NULL, error_r);
		free(dir);
		free(level);
		if (rc != MBOX_OK)
			return rc;
		made++;
		if (made_r != NULL)
			*made_r = made;
		if (last)
			break;
	}
	return MBOX_OK;
}

int
mbox_create(struct mbox_user *u, const char *name, enum mbox_special special,
            char **error_r)
{
	struct mi_box b;
	char *canon = NULL;
	int rc;

	if ((rc = mi_name_check(name, &canon, error_r)) != MBOX_OK)
		return rc;
	if (special < MBOX_SPECIAL_NONE || special > MBOX_SPECIAL_ARCHIVE) {
		free(canon);
		return mi_err(error_r, MBOX_ERR_BADNAME, "invalid special use");
	}
	if ((rc = mi_folders_sync(u, false, error_r)) != MBOX_OK)
		goto out;
	if ((rc = mi_begin(u, error_r)) != MBOX_OK)
		goto out;
	rc = mi_box_by_name(u, canon, &b, NULL);
	mi_box_clear(&b);
	if (rc == MBOX_OK) {
		rc = mi_err(error_r, MBOX_ERR_EXISTS, "mailbox %s exists",
		            canon);
		mi_rollback(u);
		goto out;
	}
	if ((rc = mi_create_levels(u, canon, true, special, NULL, error_r)) !=
	    MBOX_OK) {
		/* The directories stay: empty folders the next folder scan
		 * adopts, which is what a retry would make anyway. */
		mi_rollback(u);
		goto out;
	}
	rc = mi_commit(u, error_r);
	if (rc == MBOX_OK)
		log_info(NULL, "event=mailbox_create user=%s mailbox=%s",
		         u->dir, canon);
out:
	free(canon);
	return rc;
}

int
mbox_delete(struct mbox_user *u, const char *name, char **error_r)
{
	struct mi_box b = {0};
	sqlite3_stmt *st;
	char *canon, *base, *parked = NULL;
	bool children;
	int rc;

	if ((rc = mi_name_check(name, &canon, error_r)) != MBOX_OK)
		return rc;
	if (mi_name_is_inbox(canon)) {
		free(canon);
		return mi_err(error_r, MBOX_ERR_CANNOT, "cannot delete INBOX");
	}
	if ((rc = mi_folders_sync(u, false, error_r)) != MBOX_OK ||
	    (rc = mi_begin(u, error_r)) != MBOX_OK) {
		free(canon);
		return rc;
	}
	if ((rc = mi_box_by_name(u, canon, &b, error_r)) != MBOX_OK)
		goto fail;
	if ((rc = mi_has_children(u, canon, &children, error_r)) != MBOX_OK)
		goto fail;
	if (children) {
		rc = mi_err(error_r, MBOX_ERR_CANNOT, "mailbox %s has children",
		            canon);
		goto fail;
	}
	if ((st = mi_st(u, MI_BOX_DELETE, error_r)) == NULL) {
		rc = MBOX_ERR_TEMP;
		goto fail;
	}
	sqlite3_bind_int64(st, 1, b.id);
	if ((rc = mi_step_done(u, st, error_r)) != MBOX_OK)
		goto fail;
	u->text_gone = true;
	mi_snap_forget(u, b.id);
	/* Out of the way in one rename, removed after the commit. */
	base = mi_unique_base();
	parked = xasprintf("%s%s", MI_DELETED_PREFIX, base);
	free(base);
	if (renameat(u->dirfd, b.dir, u->tmpfd, parked) < 0) {
		if (errno != ENOENT) {
			rc = mi_syserr(error_r, "rename(%s/%s)", u->dir, b.dir);
			goto fail;
		}
		xfree(&parked);
	}
	if (parked != NULL &&
	    (rc = mi_fsync_dir(u->dirfd, u->dir, error_r)) != MBOX_OK)
		goto undo;
	if ((rc = mi_commit(u, error_r)) != MBOX_OK)
		goto undo;
	if (parked != NULL && mi_rmtree(u->tmpfd, parked) < 0)
		log_warn(NULL,
		         "event=mailbox_delete_files user=%s dir=%s "
		         "error=%s",
		         u->dir, parked, strerror(errno));
	log_info(NULL, "event=mailbox_delete user=%s mailbox=%s", u->dir,
	         canon);
	free(parked);
	free(canon);
	mi_box_clear(&b);
	return MBOX_OK;
undo:
	if (parked != NULL && renameat(u->tmpfd, parked, u->dirfd, b.dir) < 0)
		log_error(NULL,
		          "event=mailbox_delete_undo user=%s dir=%s parked=%s "
		          "error=%s",
		          u->dir, b.dir, parked, strerror(errno));
fail:
	mi_rollback(u);
	free(parked);
	free(canon);
	mi_box_clear(&b);
	return rc;
}

int
mbox_subscribe(struct mbox_user *u, const char *name, bool on, char **error_r)
{
	sqlite3_stmt *st;
	char *canon = NULL;
	int rc;

	if ((rc = mi_name_check(name, &canon, error_r)) != MBOX_OK)
		return rc;
	if ((st = mi_st(u, on ? MI_SUB_ADD : MI_SUB_DEL, error_r)) == NULL) {
		free(canon);
		return MBOX_ERR_TEMP;
	}
	sqlite3_bind_text(st, 1, canon, -1, SQLITE_STATIC);
	rc = mi_step_done(u, st, error_r);
	free(canon);
	return rc;
}
