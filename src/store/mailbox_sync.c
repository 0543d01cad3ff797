/* Keeping index.db and the Maildir in step: files other tools drop into
 * new/ get UIDs (and move to cur/), files renamed in cur/ (flags changed
 * elsewhere) update the flags, files gone are expunged; folder directories
 * made or removed by other tools become or stop being mailboxes.
 * The cheap path compares the mtimes (ns) of new/ and cur/ with what the
 * last scan recorded; a scan runs under the index write lock (BEGIN
 * IMMEDIATE), which every tern change to a Maildir also holds, so a scan
 * never sees half of another tern process's change.
 * SECURITY: file names from readdir() are stored and used only relative to
 * the mailbox's cur/ fd with O_NOFOLLOW; non-regular files are ignored. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "store/mailbox_int.h"

#define MI_NEW_PASSES 8
#define MI_RADIX_MIN 256 /* fewer elements: qsort */

/* File names, copied into big chunks freed together: one malloc per
 * name was a tenth of a first scan of 100,000 files. */
struct mi_names {
	char **chunks;
	size_t n;
	char *next;
	size_t left;
};

#define MI_NAMES_CHUNK (64u * 1024) /* the first; later ones XMALLOC_BIG */

/* A file in cur/. The files and the rows are sorted by key (the number a
 * Maildir name starts with: its time), then unique part: a comparison
 * seldom has to read the names, which lie all over the heap. */
struct mi_disk {
	uint64_t key;
	char *name;
	size_t baselen;
	bool dup;           /* its unique part is another file's too */
	unsigned char type; /* d_type: DT_REG or DT_UNKNOWN */
};

/* A row of messages. */
struct mi_row {
	uint64_t key;
	uint32_t uid;
	uint32_t flags;
	char *filename;
	size_t baselen;
};

struct mi_scan {
	struct mbox_user *u;
	struct mi_box *b;
	const struct mi_dirs *d;
	uint64_t modseq; /* the one for this scan's changes */
	bool changed;
	size_t added, expunged, flagged;
	struct mi_new_row *rows; /* added: inserted together at the end */
	bool whole;              /* rows are all the mailbox has (kept) */
	struct mi_names names;   /* of cur/'s files and the index's rows */
};

static char *
mi_names_copy(struct mi_names *p, const char *s, size_t len)
{
	char *r;

	if (len + 1 > p->left) {
		size_t size = p->n == 0 ? MI_NAMES_CHUNK : XMALLOC_BIG;

		if (size < len + 1)
			size = len + 1;
		p->chunks =
		    xreallocarray(p->chunks, p->n + 1, sizeof(*p->chunks));
		p->chunks[p->n++] = p->next = xmalloc_big(size, 1);
		p->left = size;
	}
	r = p->next;
	memcpy(r, s, len);
	r[len] = '\0';
	p->next += len + 1;
	p->left -= len + 1;
	return r;
}

static void
mi_names_free(struct mi_names *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->chunks[i]);
	free(p->chunks);
	*p = (struct mi_names){0};
}

static uint64_t
mi_name_key(const char *name)
{
	uint64_t v = 0;

	for (int i = 0; i < 19 && name[i] >= '0' && name[i] <= '9'; i++)
		v = v * 10 + (uint64_t)(name[i] - '0');
	return v;
}

static bool
mi_recent(int64_t ns)
{
	int64_t now = mi_now_ns();

	return ns > now - MI_SYNC_SLACK_NS;
}

static int
mi_basecmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* The order of files and rows: key, then unique part. */
static int
mi_order(uint64_t akey, const char *a, size_t alen, uint64_t bkey,
         const char *b, size_t blen)
{
	int c;

	if (akey != bkey)
		return akey < bkey ? -1 : 1;
	c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int
mi_disk_cmp(const void *x, const void *y)
{
	const struct mi_disk *a = x, *b = y;
	int c =
	    mi_order(a->key, a->name, a->baselen, b->key, b->name, b->baselen);

	return c != 0 ? c : strcmp(a->name, b->name);
}

static int
mi_row_cmp(const void *x, const void *y)
{
	const struct mi_row *a = x, *b = y;
	int c = mi_order(a->key, a->filename, a->baselen, b->key, b->filename,
	                 b->baselen);

	return c != 0 ? c : (a->uid > b->uid) - (a->uid < b->uid);
}

/* The key of element i of an array of mi_disk or mi_row (both start
 * with it). */
static uint64_t
mi_key_at(const char *base, size_t i, size_t size)
{
	uint64_t key;

	memcpy(&key, base + i * size, sizeof(key));
	return key;
}

/* qsort(3) by cmp for an array of mi_disk or mi_row: a radix sort on the
 * key, then cmp within each run of equal keys (Maildir names seldom share
 * their second). A comparison sort of 100,000 files took 40 ms. */
static void
mi_sort(void *array, size_t n, size_t size,
        int (*cmp)(const void *, const void *))
{
	char *from = array, *to, *tmp;

	if (n < MI_RADIX_MIN) {
		qsort(array, n, size, cmp);
		return;
	}
	to = tmp = xmalloc_big(n, size);
	for (unsigned shift = 0; shift < 64; shift += 8) {
		size_t at[257] = {0};
		bool one = false;

		for (size_t i = 0; i < n; i++)
			at[((mi_key_at(from, i, size) >> shift) & 0xff) + 1]++;
		for (int b = 1; b <= 256; b++)
			one |= at[b] == n;
		if (one)
			continue; /* that byte is the same in every key */
		for (int b = 0; b < 256; b++)
			at[b + 1] += at[b];
		for (size_t i = 0; i < n; i++) {
			uint64_t key = mi_key_at(from, i, size);

			memcpy(to + at[(key >> shift) & 0xff]++ * size,
			       from + i * size, size);
		}
		to = from;
		from = to == array ? tmp : array;
	}
	if (from != array)
		memcpy(array, from, n * size);
	free(tmp);
	for (size_t i = 0, j; i < n; i = j) {
		uint64_t key = mi_key_at(array, i, size);

		for (j = i + 1; j < n && mi_key_at(array, j, size) == key; j++)
			;
		if (j - i > 1)
			qsort((char *)array + i * size, j - i, size, cmp);
	}
}

/* Room for one more in a growing array of *cap elements of size bytes. */
static void *
mi_grow(void *array, size_t n, size_t *cap, size_t size)
{
	void *bigger;

	if (n < *cap)
		return array;
	*cap = *cap == 0 ? 256 : *cap * 2;
	if (*cap * size < XMALLOC_BIG)
		return xreallocarray(array, *cap, size);
	bigger = xmalloc_big(*cap, size);
	if (n > 0)
		memcpy(bigger, array, n * size);
	free(array);
	return bigger;
}

/* The names in directory fd (not starting with "."; only regular files
 * when the file system tells), copied into names. */
static int
mi_list_dir(int fd, struct mi_names *names, struct mi_disk **list_r,
            size_t *n_r)
{
	struct mi_disk *list = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *dir;
	int dfd = openat(fd, ".", MI_DIR_FLAGS);

	*list_r = NULL;
	*n_r = 0;
	if (dfd < 0)
		return -1;
	if ((dir = fdopendir(dfd)) == NULL) {
		close(dfd);
		return -1;
	}
	while ((errno = 0, de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.' ||
		    (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
			continue;
		list = mi_grow(list, n, &cap, sizeof(*list));
		list[n].key = mi_name_key(de->d_name);
		list[n].name =
		    mi_names_copy(names, de->d_name, strlen(de->d_name));
		list[n].baselen = mi_base_len(de->d_name);
		list[n].dup = false;
		list[n].type = de->d_type;
		n++;
	}
	if (errno != 0) {
		int err = errno;

		free(list);
		closedir(dir);
		errno = err;
		return -1;
	}
	closedir(dir);
	*list_r = list;
	*n_r = n;
	return 0;
}

/* Move what new/ holds to cur/ (adding an empty ":2," info), until a pass
 * finds it empty; *mtime_r is new/'s mtime just before that last pass. */
static int
mi_scan_new(struct mi_scan *s, int64_t *mtime_r, char **error_r)
{
	const struct mi_dirs *d = s->d;

	for (int pass = 0; pass < MI_NEW_PASSES; pass++) {
		struct mi_names names = {0};
		struct mi_disk *list;
		size_t n, moved = 0;

		if (mi_mtime_ns(d->newfd, mtime_r) < 0)
			return mi_syserr(error_r, "stat(%s/new)", s->b->dir);
		if (mi_list_dir(d->newfd, &names, &list, &n) < 0) {
			mi_names_free(&names);
			return mi_syserr(error_r, "readdir(%s/new)", s->b->dir);
		}
		for (size_t i = 0; i < n; i++) {
			const char *name = list[i].name;
			char *target = name[list[i].baselen] == ':'
			                   ? xstrdup(name)
			                   : xasprintf("%s:2,", name);
			int rc = mi_rename_noreplace(d->newfd, name, d->curfd,
			                             target);

			if (rc < 0 && errno == EEXIST) {
				char *base = mi_unique_base();

				free(target);
				target = xasprintf("%s:2,", base);
				free(base);
				rc = mi_rename_noreplace(d->newfd, name,
				                         d->curfd, target);
			}
			free(target);
			if (rc == 0)
				moved++;
			else if (errno != ENOENT) {
				int e = mi_syserr(error_r, "rename(%s/new/%s)",
				                  s->b->dir, name);

				free(list);
				mi_names_free(&names);
				return e;
			}
		}
		free(list);
		mi_names_free(&names);
		if (moved == 0)
			return MBOX_OK;
	}
	/* Something keeps delivering: what is left waits for the next sync,
	 * which the changed mtime asks for. */
	*mtime_r = 0;
	return MBOX_OK;
}

static int
mi_load_rows(struct mi_scan *s, struct mi_row **rows_r, size_t *n_r,
             char **error_r)
{
	struct mbox_user *u = s->u;
	sqlite3_stmt *st = mi_st(u, MI_MSG_FILES, error_r);
	struct mi_row *rows = NULL;
	size_t n = 0, cap = 0;
	int rc;

	*rows_r = NULL;
	*n_r = 0;
	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_int64(st, 1, s->b->id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *f = sqlite3_column_text(st, 2);

		if (n == cap && cap == 0 && s->b->messages > 0) {
			cap = s->b->messages;
			rows = xmalloc_big(cap, sizeof(*rows));
		}
		rows = mi_grow(rows, n, &cap, sizeof(*rows));
		rows[n].uid = (uint32_t)sqlite3_column_int64(st, 0);
		rows[n].flags = (uint32_t)sqlite3_column_int64(st, 1);
		rows[n].filename = mi_names_copy(
		    &s->names, f != NULL ? (const char *)f : "",
		    f != NULL ? (size_t)sqlite3_column_bytes(st, 2) : 0);
		rows[n].key = mi_name_key(rows[n].filename);
		rows[n].baselen = mi_base_len(rows[n].filename);
		n++;
	}
	if (rc != SQLITE_DONE) {
		mi_dberr(u, error_r, "messages");
		mi_done(st);
		free(rows);
		return MBOX_ERR_TEMP;
	}
	mi_done(st);
	*rows_r = rows;
	*n_r = n;
	return MBOX_OK;
}

static uint64_t
mi_scan_modseq(struct mi_scan *s)
{
	s->changed = true;
	return s->modseq;
}

/* A file whose unique part the index knows under another name: another
 * tool renamed it (flags). */
static int
mi_scan_renamed(struct mi_scan *s, const struct mi_row *row, const char *name,
                char **error_r)
{
	struct mbox_user *u = s->u;
	uint32_t flags = mi_flags_from_name(name);
	sqlite3_stmt *st;

	if (flags == row->flags) {
		if ((st = mi_st(u, MI_MSG_SET_NAME, error_r)) == NULL)
			return MBOX_ERR_TEMP;
		sqlite3_bind_int64(st, 1, s->b->id);
		sqlite3_bind_int64(st, 2, row->uid);
		sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
		return mi_step_done(u, st, error_r);
	}
	if ((st = mi_st(u, MI_MSG_SET_SYSFLAGS, error_r)) == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_int64(st, 1, s->b->id);
	sqlite3_bind_int64(st, 2, row->uid);
	sqlite3_bind_int64(st, 3, flags);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)mi_scan_modseq(s));
	sqlite3_bind_text(st, 5, name, -1, SQLITE_STATIC);
	s->flagged++;
	return mi_step_done(u, st, error_r);
}

/* A file the index does not know: a new message. */
static int
mi_scan_add(struct mi_scan *s, struct mi_disk *f, char **error_r)
{
	const struct mi_dirs *d = s->d;
	uint64_t lf, crlf;
	bool known;
	struct stat sb;

	if (f->dup) {
		/* Two files with one unique part (a copy made by hand): the
		 * second gets a unique part of its own. */
		char *base = mi_unique_base();
		char *name = xasprintf("%s%s", base, f->name + f->baselen);

		free(base);
		if (mi_rename_noreplace(d->curfd, f->name, d->curfd, name) <
		    0) {
			free(name);
			if (errno == ENOENT)
				return MBOX_OK;
			return mi_syserr(error_r, "rename(%s/cur/%s)",
			                 s->b->dir, f->name);
		}
		log_notice(NULL,
		           "event=mailbox_duplicate_file dir=%s file=%s "
		           "renamed=%s",
		           s->b->dir, f->name, name);
		f->name = mi_names_copy(&s->names, name, strlen(name));
		f->baselen = mi_base_len(name);
		free(name);
	}
	/* No file is opened here, nor stat(2)ed when readdir said it is a
	 * regular file: a first look at 100,000 messages another tool left
	 * would read them all (stat was a third of the time). The size and
	 * INTERNALDATE are then guesses, from the name (S=, the time it
	 * starts with), made exact when first needed (mbox_sizes). */
	if (f->type == DT_REG) {
		known = false;
		if (!mi_name_sizes(f->name, &lf, &crlf))
			crlf = 0;
		sb.st_mtim.tv_sec = (time_t)strtoll(f->name, NULL, 10);
	} else {
		if (fstatat(d->curfd, f->name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				return MBOX_OK; /* gone meanwhile */
			return mi_syserr(error_r, "stat(%s/cur/%s)", s->b->dir,
			                 f->name);
		}
		if (!S_ISREG(sb.st_mode))
			return MBOX_OK; /* a symlink or worse */
		/* The sizes in the name are trusted only when S= is the
		 * file's; otherwise the exact one is read when first needed
		 * (mbox_sizes). */
		known = mi_name_sizes(f->name, &lf, &crlf) &&
		        lf == (uint64_t)sb.st_size;
		if (!known)
			crlf = (uint64_t)sb.st_size;
	}
	if (s->b->uidnext == UINT32_MAX)
		return mi_err(error_r, MBOX_ERR_LIMIT, "%s: out of UIDs",
		              s->b->name);
	s->u->text_lag = true; /* indexed by mbox_text_catch_up */
	(void)mi_scan_modseq(s);
	s->rows[s->added++] = (struct mi_new_row){
	    .uid = s->b->uidnext++,
	    .flags = mi_flags_from_name(f->name),
	    .internaldate = (int64_t)sb.st_mtim.tv_sec,
	    .size = crlf,
	    .size_known = known,
	    .filename = f->name, /* lives until the scan ends */
	};
	return MBOX_OK;
}

/* The scan proper, under the lock. */
static int
mi_scan(struct mi_scan *s, bool force, char **error_r)
{
	struct mbox_user *u = s->u;
	struct mi_disk *disk = NULL, **news = NULL;
	struct mi_row *rows = NULL;
	size_t nd = 0, nr = 0, nnew = 0, i = 0, j = 0;
	int64_t newm, curm;
	int rc;

	if (!force && mi_mtime_ns(s->d->newfd, &newm) == 0 &&
	    mi_mtime_ns(s->d->curfd, &curm) == 0 && newm == s->b->new_mtime &&
	    curm == s->b->cur_mtime && !mi_recent(newm) && !mi_recent(curm))
		return MBOX_OK; /* another process scanned meanwhile */
	if ((rc = mi_scan_new(s, &newm, error_r)) != MBOX_OK)
		return rc;
	if (mi_mtime_ns(s->d->curfd, &curm) < 0)
		return mi_syserr(error_r, "stat(%s/cur)", s->b->dir);
	if (mi_list_dir(s->d->curfd, &s->names, &disk, &nd) < 0)
		return mi_syserr(error_r, "readdir(%s/cur)", s->b->dir);
	if ((rc = mi_load_rows(s, &rows, &nr, error_r)) != MBOX_OK)
		goto out;
	if (nd > 0)
		mi_sort(disk, nd, sizeof(*disk), mi_disk_cmp);
	if (nr > 0)
		mi_sort(rows, nr, sizeof(*rows), mi_row_cmp);
	news = nd > 0 ? xmalloc_big(nd, sizeof(*news)) : NULL;

	while (rc == MBOX_OK && (i < nd || j < nr)) {
		int c = i >= nd   ? 1
		        : j >= nr ? -1
		                  : mi_order(disk[i].key, disk[i].name,
		                             disk[i].baselen, rows[j].key,
		                             rows[j].filename, rows[j].baselen);
		size_t k, l, pick;

		if (c < 0) {
			news[nnew++] = &disk[i++];
			continue;
		}
		if (c > 0) {
			s->expunged++;
			rc = mi_msg_expunge(u, s->b->id, rows[j++].uid,
			                    mi_scan_modseq(s), error_r);
			continue;
		}
		/* The files [i, k) and rows [j, l) share a unique part. */
		for (k = i + 1;
		     k < nd && mi_basecmp(disk[k].name, disk[k].baselen,
		                          disk[i].name, disk[i].baselen) == 0;
		     k++)
			;
		for (l = j + 1;
		     l < nr &&
		     mi_basecmp(rows[l].filename, rows[l].baselen,
		                rows[j].filename, rows[j].baselen) == 0;
		     l++)
			;
		pick = i;
		for (size_t x = i; x < k; x++)
			if (strcmp(disk[x].name, rows[j].filename) == 0)
				pick = x;
		if (strcmp(disk[pick].name, rows[j].filename) != 0)
			rc = mi_scan_renamed(s, &rows[j], disk[pick].name,
			                     error_r);
		for (size_t x = i; x < k; x++) {
			if (x == pick)
				continue;
			disk[x].dup = true;
			news[nnew++] = &disk[x];
		}
		for (size_t y = j + 1; y < l && rc == MBOX_OK; y++) {
			s->expunged++;
			rc = mi_msg_expunge(u, s->b->id, rows[y].uid,
			                    mi_scan_modseq(s), error_r);
		}
		i = k;
		j = l;
	}
	/* New files get their UIDs in the order of the files: by time first,
	 * as Maildir names start with it. */
	if (nnew > 0)
		s->rows = xmalloc_big(nnew, sizeof(*s->rows));
	for (size_t x = 0; x < nnew && rc == MBOX_OK; x++)
		rc = mi_scan_add(s, news[x], error_r);
	if (rc == MBOX_OK && s->added > 0)
		rc = mi_msg_insert_many(u, s->b->id, s->modseq, s->rows,
		                        s->added, error_r);
	if (rc != MBOX_OK)
		goto out;
	if (s->changed &&
	    (rc = mi_box_set_counters(u, s->b->id, s->b->uidnext, s->modseq,
	                              error_r)) != MBOX_OK)
		goto out;
	{
		sqlite3_stmt *st = mi_st(u, MI_BOX_STAMPS, error_r);

		if (st == NULL) {
			rc = MBOX_ERR_TEMP;
			goto out;
		}
		sqlite3_bind_int64(st, 1, s->b->id);
		sqlite3_bind_int64(st, 2, newm);
		sqlite3_bind_int64(st, 3, curm);
		rc = mi_step_done(u, st, error_r);
	}
	if (rc == MBOX_OK && s->changed)
		log_debug(NULL,
		          "event=mailbox_sync dir=%s added=%zu expunged=%zu "
		          "flags=%zu",
		          s->b->dir, s->added, s->expunged, s->flagged);
	/* The index had no row of this mailbox: what was added is all of
	 * it, for mi_snap_of_rows once committed (their names die here). */
	s->whole = rc == MBOX_OK && nr == 0 && s->added > 0;
out:
	if (!s->whole)
		xfree(&s->rows);
	free(news);
	free(disk);
	free(rows);
	mi_names_free(&s->names);
	return rc;
}

int
mi_sync_locked(struct mbox_user *u, struct mi_box *b, const struct mi_dirs *d,
               bool force, char **error_r)
{
	struct mi_scan s = {.u = u, .d = d, .b = b};

	int rc;

	s.modseq = b->highestmodseq + 1;
	rc = mi_scan(&s, force, error_r);
	if (rc == MBOX_OK && s.changed)
		b->highestmodseq = s.modseq;
	free(s.rows); /* the caller's transaction may yet roll back */
	return rc;
}

int
mi_sync(struct mbox_user *u, int64_t id, const struct mi_dirs *d, bool force,
        char **error_r)
{
	struct mi_scan s = {.u = u, .d = d};
	struct mi_box b;
	int rc;

	if (!force) {
		int64_t newm, curm;

		if (mi_mtime_ns(d->newfd, &newm) < 0 ||
		    mi_mtime_ns(d->curfd, &curm) < 0)
			return mi_syserr(error_r, "stat(%s)", u->dir);
		if ((rc = mi_box_by_id(u, id, &b, error_r)) != MBOX_OK)
			return rc;
		bool fresh = newm == b.new_mtime && curm == b.cur_mtime &&
		             !mi_recent(newm) && !mi_recent(curm);
		mi_box_clear(&b);
		if (fresh)
			return MBOX_OK;
	}
	if ((rc = mi_begin(u, error_r)) != MBOX_OK)
		return rc;
	if ((rc = mi_box_by_id(u, id, &b, error_r)) != MBOX_OK) {
		mi_rollback(u);
		return rc;
	}
	s.b = &b;
	s.modseq = b.highestmodseq + 1;
	rc = mi_scan(&s, force, error_r);
	if (rc == MBOX_OK)
		rc = mi_commit(u, error_r);
	else
		mi_rollback(u);
	if (rc == MBOX_OK && s.whole)
		mi_snap_of_rows(u, id, b.uidvalidity, s.modseq, s.rows,
		                s.added);
	free(s.rows);
	mi_box_clear(&b);
	return rc;
}

int
mi_box_lookup(struct mbox_user *u, const char *canon, struct mi_box *b,
              char **error_r)
{
	int rc = mi_box_by_name(u, canon, b, NULL);

	if (rc == MBOX_ERR_NOTFOUND) {
		/* Perhaps a folder another tool just made. */
		if ((rc = mi_folders_sync(u, false, error_r)) != MBOX_OK)
			return rc;
		return mi_box_by_name(u, canon, b, error_r);
	}
	if (rc != MBOX_OK) /* again, for the error message */
		rc = mi_box_by_name(u, canon, b, error_r);
	return rc;
}

int
mi_box_synced(struct mbox_user *u, const char *canon, struct mi_box *b,
              char **error_r)
{
	struct mi_dirs d;
	int64_t id;
	int rc;

	if ((rc = mi_box_lookup(u, canon, b, error_r)) != MBOX_OK)
		return rc;
	id = b->id;
	rc = mi_dirs_open(u, b->dir, &d, error_r);
	mi_box_clear(b);
	if (rc != MBOX_OK)
		return rc;
	rc = mi_sync(u, id, &d, false, error_r);
	mi_dirs_close(&d);
	if (rc != MBOX_OK)
		return rc;
	return mi_box_by_id(u, id, b, error_r);
}

/* ---- folders ---- */

struct mi_dirent {
	char *dir;
	bool known;
};

static int
mi_folder_dirs(struct mbox_user *u, struct mi_dirent **list_r, size_t *n_r,
               char **error_r)
{
	struct mi_dirent *list = NULL;
	size_t n = 0;
	struct dirent *de;
	DIR *dir;
	int fd = openat(u->dirfd, ".", MI_DIR_FLAGS);

	if (fd < 0 || (dir = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return mi_syserr(error_r, "opendir(%s)", u->dir);
	}
	while ((errno = 0, de = readdir(dir)) != NULL) {
		struct stat sb;

		if (de->d_name[0] != '.' || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(u->dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) <
		        0 ||
		    !S_ISDIR(sb.st_mode))
			continue;
		list = xreallocarray(list, n + 1, sizeof(*list));
		list[n].dir = xstrdup(de->d_name);
		list[n].known = false;
		n++;
	}
	if (errno != 0) {
		int e = mi_syserr(error_r, "readdir(%s)", u->dir);

		closedir(dir);
		for (size_t i = 0; i < n; i++)
			free(list[i].dir);
		free(list);
		return e;
	}
	closedir(dir);
	*list_r = list;
	*n_r = n;
	return MBOX_OK;
}

static int
mi_folders_scan(struct mbox_user *u, int64_t mtime, char **error_r)
{
	struct mi_dirent *dirs = NULL;
	struct mi_box *boxes = NULL;
	size_t nd = 0, nb = 0;
	sqlite3_stmt *st;
	int rc, step;

	/* A RENAME cut short by a crash first, or its folders would look
	 * deleted. */
	if ((rc = mi_tmp_recover_locked(u, error_r)) != MBOX_OK ||
	    (rc = mi_folder_dirs(u, &dirs, &nd, error_r)) != MBOX_OK)
		return rc;
	if ((st = mi_st(u, MI_BOX_ALL, error_r)) == NULL) {
		rc = MBOX_ERR_TEMP;
		goto out;
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		boxes = xreallocarray(boxes, nb + 1, sizeof(*boxes));
		mi_box_from_row(st, &boxes[nb++]);
	}
	mi_done(st);
	if (step != SQLITE_DONE) {
		rc = mi_dberr(u, error_r, "mailboxes");
		goto out;
	}
	/* Mailboxes whose directory is gone. */
	for (size_t b = 0; b < nb && rc == MBOX_OK; b++) {
		bool found = strcmp(boxes[b].dir, MI_INBOX_DIR) == 0;

		for (size_t x = 0; x < nd && !found; x++) {
			if (strcmp(dirs[x].dir, boxes[b].dir) == 0)
				found = dirs[x].known = true;
		}
		if (found)
			continue;
		log_notice(NULL,
		           "event=mailbox_dir_gone user=%s mailbox=%s dir=%s",
		           u->dir, boxes[b].name, boxes[b].dir);
		if ((st = mi_st(u, MI_BOX_DELETE, error_r)) == NULL) {
			rc = MBOX_ERR_TEMP;
			break;
		}
		sqlite3_bind_int64(st, 1, boxes[b].id);
		rc = mi_step_done(u, st, error_r);
		u->text_gone = true;
		mi_snap_forget(u, boxes[b].id);
	}
	/* Directories that are no mailbox yet. */
	for (size_t x = 0; x < nd && rc == MBOX_OK; x++) {
		struct mi_box other;
		char *name;
		uint32_t uidvalidity;
		int r;

		if (dirs[x].known)
			continue;
		if ((name = mi_dir_to_name(dirs[x].dir)) == NULL) {
			log_debug(NULL,
			          "event=mailbox_dir_ignored user=%s dir=%s",
			          u->dir, dirs[x].dir);
			continue;
		}
		r = mi_box_by_name(u, name, &other, NULL);
		mi_box_clear(&other);
		if (r == MBOX_OK) {
			free(name);
			continue;
		}
		if ((rc = mi_new_uidvalidity(u, &uidvalidity, error_r)) ==
		    MBOX_OK)
			rc = mi_box_insert(u, name, dirs[x].dir,
			                   MBOX_SPECIAL_NONE, uidvalidity, 1, 1,
			                   NULL, error_r);
		if (rc == MBOX_OK)
			log_info(NULL,
			         "event=mailbox_dir_found user=%s mailbox=%s",
			         u->dir, name);
		free(name);
	}
	if (rc == MBOX_OK)
		rc = mi_meta_set(u, "folders_mtime", mtime, error_r);
out:
	for (size_t x = 0; x < nd; x++)
		free(dirs[x].dir);
	free(dirs);
	for (size_t b = 0; b < nb; b++)
		mi_box_clear(&boxes[b]);
	free(boxes);
	return rc;
}

int
mi_folders_sync(struct mbox_user *u, bool force, char **error_r)
{
	int64_t mtime, seen;
	int rc;

	if (mi_mtime_ns(u->dirfd, &mtime) < 0)
		return mi_syserr(error_r, "stat(%s)", u->dir);
	if (!force) {
		if ((rc = mi_meta_get(u, "folders_mtime", &seen, error_r)) !=
		    MBOX_OK)
			return rc;
		if (seen == mtime && !mi_recent(mtime))
			return MBOX_OK;
	}
	if ((rc = mi_begin(u, error_r)) != MBOX_OK)
		return rc;
	if (!force &&
	    (rc = mi_meta_get(u, "folders_mtime", &seen, error_r)) != MBOX_OK)
		goto fail;
	if (mi_mtime_ns(u->dirfd, &mtime) < 0) {
		rc = mi_syserr(error_r, "stat(%s)", u->dir);
		goto fail;
	}
	if (!force && seen == mtime && !mi_recent(mtime)) {
		mi_rollback(u);
		return MBOX_OK;
	}
	if ((rc = mi_folders_scan(u, mtime, error_r)) != MBOX_OK)
		goto fail;
	return mi_commit(u, error_r);
fail:
	mi_rollback(u);
	return rc;
}

/* ---- reindex ---- */

static bool
mi_db_healthy(struct mbox_user *u)
{
	sqlite3_stmt *st;
	bool ok;

	if (sqlite3_prepare_v2(u->db, "PRAGMA quick_check", -1, &st, NULL) !=
	    SQLITE_OK)
		return false;
	ok = sqlite3_step(st) == SQLITE_ROW &&
	     sqlite3_column_text(st, 0) != NULL &&
	     strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
	sqlite3_finalize(st);
	return ok;
}

/* An index that cannot be used is kept for a post-mortem, not deleted. */
static int
mi_index_aside(const char *dir, char **error_r)
{
	static const char *const sfx[] = {"", "-wal", "-shm"};
	long long now = (long long)time(NULL);
	int fd = open(dir, MI_DIR_FLAGS);

	if (fd < 0)
		return mi_syserr(error_r, "open(%s)", dir);
	for (size_t i = 0; i < 3; i++) {
		char *from = xasprintf("%s%s", MI_DB_NAME, sfx[i]);
		char *to =
		    xasprintf("%s.broken-%lld%s", MI_DB_NAME, now, sfx[i]);

		if (renameat(fd, from, fd, to) < 0 && errno != ENOENT) {
			int rc = mi_syserr(error_r, "rename(%s/%s)", dir, from);

			free(from);
			free(to);
			close(fd);
			return rc;
		}
		free(from);
		free(to);
	}
	(void)fsync(fd);
	close(fd);
	return MBOX_OK;
}

int
mbox_reindex(const char *dir, char **error_r)
{
	struct mbox_user *u = NULL;
	sqlite3_stmt *st;
	char *error = NULL;
	int64_t *ids = NULL;
	char **dirs = NULL;
	size_t n = 0;
	int rc, step;

	rc = mbox_user_open(dir, 0, &u, &error);
	if (rc == MBOX_OK && !mi_db_healthy(u)) {
		mbox_user_close(&u);
		error = xstrdup("quick_check failed");
		rc = MBOX_ERR_TEMP;
	}
	if (rc != MBOX_OK) {
		/* UIDs cannot be kept: every mailbox gets a new UIDVALIDITY. */
		log_warn(NULL, "event=mailbox_reindex_fresh user=%s reason=%s",
		         dir, error != NULL ? error : "");
		free(error);
		if ((rc = mi_index_aside(dir, error_r)) != MBOX_OK ||
		    (rc = mbox_user_open(dir, 0, &u, error_r)) != MBOX_OK)
			return rc;
	}
	if ((rc = mi_folders_sync(u, true, error_r)) != MBOX_OK)
		goto out;
	if ((st = mi_st(u, MI_BOX_ALL, error_r)) == NULL) {
		rc = MBOX_ERR_TEMP;
		goto out;
	}
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *d = sqlite3_column_text(st, 2);

		ids = xreallocarray(ids, n + 1, sizeof(*ids));
		dirs = xreallocarray(dirs, n + 1, sizeof(*dirs));
		ids[n] = sqlite3_column_int64(st, 0);
		dirs[n++] = xstrdup(d != NULL ? (const char *)d : "");
	}
	mi_done(st);
	if (step != SQLITE_DONE) {
		rc = mi_dberr(u, error_r, "mailboxes");
		goto out;
	}
	for (size_t i = 0; i < n && rc == MBOX_OK; i++) {
		struct mi_dirs d;
		struct mi_box b;
		int64_t maxuid;

		rc = mi_dirs_open(u, dirs[i], &d, error_r);
		if (rc != MBOX_OK)
			break;
		rc = mi_sync(u, ids[i], &d, true, error_r);
		mi_dirs_close(&d);
		if (rc != MBOX_OK)
			break;
		/* UIDs never go back, even after a hand-edited index. */
		if ((rc = mi_begin(u, error_r)) != MBOX_OK)
			break;
		if ((rc = mi_box_by_id(u, ids[i], &b, error_r)) == MBOX_OK &&
		    (st = mi_st(u, MI_MSG_MAXUID, error_r)) != NULL) {
			sqlite3_bind_int64(st, 1, ids[i]);
			rc = mi_step_int(u, st, &maxuid, error_r);
			if (rc == MBOX_OK && (int64_t)b.uidnext <= maxuid)
				rc = mi_box_set_counters(
				    u, b.id, (uint32_t)maxuid + 1,
				    b.highestmodseq + 1, error_r);
		} else if (rc == MBOX_OK) {
			rc = MBOX_ERR_TEMP;
		}
		mi_box_clear(&b);
		if (rc == MBOX_OK)
			rc = mi_commit(u, error_r);
		else
			mi_rollback(u);
	}
	if (rc != MBOX_OK)
		goto out;
	/* The counters, in case the triggers ever missed something. */
	if ((rc = mi_begin(u, error_r)) != MBOX_OK)
		goto out;
	if ((st = mi_st(u, MI_RECOUNT, error_r)) == NULL ||
	    (rc = mi_step_done(u, st, error_r)) != MBOX_OK) {
		mi_rollback(u);
		rc = MBOX_ERR_TEMP;
		goto out;
	}
	rc = mi_commit(u, error_r);
	mi_snap_forget(u, 0);
	if (rc == MBOX_OK)
		log_info(NULL, "event=mailbox_reindex user=%s mailboxes=%zu",
		         dir, n);
out:
	for (size_t i = 0; i < n; i++)
		free(dirs[i]);
	free(dirs);
	free(ids);
	mbox_user_close(&u);
	return rc;
}
