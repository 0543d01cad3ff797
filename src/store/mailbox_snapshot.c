/* Snapshots of a big mailbox's message list (mailbox_int.h).
 *
 * Reading 100,000 rows out of SQLite for every SELECT costs about 25 ms,
 * most of it in the per-column calls. A snapshot is the same list packed
 * into one file, "index.snap.ID" beside index.db, written after a full
 * read, with the MODSEQ it is good for. The next read maps the file and
 * applies what changed since that MODSEQ (rows with a greater MODSEQ,
 * UIDs expunged later), which the index already keeps for CONDSTORE. So a
 * snapshot is never wrong for being old, only slower; it is rewritten
 * once the changes grow. (As a blob in index.db it cost 5-30 ms to read:
 * SQLite walks 850 overflow pages, from the WAL when not checkpointed.)
 *
 * Changes that carry no new MODSEQ (a size read later, reindex) forget
 * the snapshot (mi_snap_forget). As a last guard the merged list must
 * have as many messages as the mailbox's counter, read in the same
 * transaction as the changes; otherwise the rows are read and the
 * snapshot replaced. A new mailbox with a reused id has another
 * UIDVALIDITY, which the snapshot must match.
 *
 * The file is a cache in this machine's byte order, written to tmp/ and
 * renamed (never fsync'd: a torn one fails the checks):
 *   header:  magic u32, uidvalidity u32, count u32, 0 u32, modseq u64
 *   records: uid u32, flags u32 (bit 31: size known), modseq u64,
 *            internaldate i64, size u64, keyword length u16, keywords.
 * UIDs ascend. Anything else makes it unusable, never trusted. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "store/mailbox_int.h"

#define SNAP_MAGIC 0x314e5354u /* "TSN1" */
#define SNAP_HEAD 24
#define SNAP_REC 34
#define SNAP_SIZE_KNOWN 0x80000000u
#define SNAP_CHUNK (64 * 1024) /* bytes written at once from rows */

_Static_assert(MBOX_KEYWORDS_MAX *(MBOX_KEYWORD_LEN_MAX + 1) <= 65535,
               "a message's keywords fit a snapshot record");

uint32_t mi_snap_min = 8192;

struct snap {
	const uint8_t *data;
	size_t len;
	uint32_t count;
	uint64_t modseq;
};

/* A record at *pos into m (keywords pointing into the blob, not
 * terminated: *kwlen_r bytes); false past the end or when malformed. */
static bool
snap_next(const struct snap *s, size_t *pos, struct mbox_msg *m,
          const char **kw_r, size_t *kwlen_r)
{
	uint32_t flags;
	uint16_t kwlen;
	const uint8_t *p;

	if (s->len - *pos < SNAP_REC)
		return false;
	p = s->data + *pos;
	memcpy(&m->uid, p, 4);
	memcpy(&flags, p + 4, 4);
	memcpy(&m->modseq, p + 8, 8);
	memcpy(&m->internaldate, p + 16, 8);
	memcpy(&m->size, p + 24, 8);
	memcpy(&kwlen, p + 32, 2);
	if (s->len - *pos - SNAP_REC < kwlen)
		return false;
	m->flags = flags & MI_FLAGS_MASK;
	m->size_known = (flags & SNAP_SIZE_KNOWN) != 0;
	m->keywords = NULL;
	*kw_r = (const char *)p + SNAP_REC;
	*kwlen_r = kwlen;
	*pos += SNAP_REC + kwlen;
	return true;
}

static void
snap_put(struct buf *b, const struct mbox_msg *m)
{
	size_t kwlen = m->keywords != NULL ? strlen(m->keywords) : 0;
	uint32_t flags = m->flags | (m->size_known ? SNAP_SIZE_KNOWN : 0);
	uint16_t kw16 = (uint16_t)kwlen;
	uint8_t rec[SNAP_REC];

	memcpy(rec, &m->uid, 4);
	memcpy(rec + 4, &flags, 4);
	memcpy(rec + 8, &m->modseq, 8);
	memcpy(rec + 16, &m->internaldate, 8);
	memcpy(rec + 24, &m->size, 8);
	memcpy(rec + 32, &kw16, 2);
	buf_append(b, rec, sizeof(rec));
	buf_append(b, m->keywords, kwlen);
}

/* The header checked, and every record readable with UIDs ascending:
 * nothing is handed out from a blob that is not whole. */
static bool
snap_parse(const void *data, size_t len, uint32_t uidvalidity, struct snap *s)
{
	uint32_t magic, uidv, count, zero, prev = 0;
	size_t pos = SNAP_HEAD;

	if (data == NULL || len < SNAP_HEAD)
		return false;
	s->data = data;
	s->len = len;
	memcpy(&magic, s->data, 4);
	memcpy(&uidv, s->data + 4, 4);
	memcpy(&count, s->data + 8, 4);
	memcpy(&zero, s->data + 12, 4);
	memcpy(&s->modseq, s->data + 16, 8);
	if (magic != SNAP_MAGIC || uidv != uidvalidity || zero != 0)
		return false;
	for (uint32_t i = 0; i < count; i++) {
		struct mbox_msg m;
		const char *kw;
		size_t kwlen;

		if (!snap_next(s, &pos, &m, &kw, &kwlen) || m.uid <= prev)
			return false;
		prev = m.uid;
	}
	s->count = count;
	return pos == len;
}

/* A snapshot being made while the rows go by. */
struct snap_build {
	mbox_msg_fn *fn;
	void *ctx;
	struct buf b; /* room for the header, then the records */
	uint32_t count;
	uint64_t modseq; /* the greatest row MODSEQ */
};

static void
snap_build_cb(void *ctx, struct mbox_msg *m)
{
	struct snap_build *sb = ctx;

	snap_put(&sb->b, m);
	sb->count++;
	if (m->modseq > sb->modseq)
		sb->modseq = m->modseq;
	sb->fn(sb->ctx, m);
}

static int
snap_count(struct mbox_user *u, enum mi_st which, int64_t id, uint64_t modseq,
           int64_t *n_r, char **error_r)
{
	sqlite3_stmt *st = mi_st(u, which, error_r);

	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)modseq);
	return mi_step_int(u, st, n_r, error_r);
}

#define SNAP_PREFIX "index.snap."

static char *
snap_name(int64_t id)
{
	return xasprintf(SNAP_PREFIX "%lld", (long long)id);
}

void
mi_snap_forget(struct mbox_user *u, int64_t id)
{
	struct dirent *de;
	DIR *dir;
	int fd;

	if (id != 0) {
		char *name = snap_name(id);

		(void)unlinkat(u->dirfd, name, 0);
		free(name);
		return;
	}
	if ((fd = openat(u->dirfd, ".", MI_DIR_FLAGS)) < 0)
		return;
	if ((dir = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(dir)) != NULL)
		if (strncmp(de->d_name, SNAP_PREFIX, strlen(SNAP_PREFIX)) == 0)
			(void)unlinkat(u->dirfd, de->d_name, 0);
	closedir(dir);
}

/* The snapshot of mailbox id: the header, then count records that
 * records(ctx, fd) writes. A cache: failing to write it is not an error. */
static void
snap_write(struct mbox_user *u, int64_t id, uint32_t uidvalidity,
           uint32_t count, uint64_t modseq, bool (*records)(void *, int),
           void *ctx)
{
	uint32_t head[4] = {SNAP_MAGIC, uidvalidity, count, 0};
	uint8_t hb[SNAP_HEAD];
	char *tmp, *name;
	bool ok;
	int fd;

	memcpy(hb, head, sizeof(head));
	memcpy(hb + sizeof(head), &modseq, sizeof(modseq));
	tmp = mi_unique_base();
	name = snap_name(id);
	fd = openat(u->tmpfd, tmp,
	            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	ok = fd >= 0 && mi_write_all(fd, hb, sizeof(hb)) == 0 &&
	     records(ctx, fd);
	if (fd >= 0 && close(fd) < 0)
		ok = false;
	if (ok && renameat(u->tmpfd, tmp, u->dirfd, name) < 0)
		ok = false;
	if (!ok) {
		log_warn(
		    NULL,
		    "event=mailbox_snapshot_skipped user=%s mailbox_id=%lld "
		    "error=%s",
		    u->dir, (long long)id, strerror(errno));
		(void)unlinkat(u->tmpfd, tmp, 0);
	}
	free(tmp);
	free(name);
}

static bool
snap_build_records(void *ctx, int fd)
{
	const struct snap_build *sb = ctx;

	return mi_write_all(fd, sb->b.data + SNAP_HEAD,
	                    sb->b.len - SNAP_HEAD) == 0;
}

/* The rows just read, as the mailbox's snapshot; or none when it is
 * small. */
static void
snap_store(struct mbox *box, struct snap_build *sb, bool had_snapshot)
{
	if (box->readonly || (sb->count < mi_snap_min && !had_snapshot))
		return;
	if (sb->count < mi_snap_min) {
		mi_snap_forget(box->u, box->id);
		return;
	}
	snap_write(box->u, box->id, box->info.uidvalidity, sb->count,
	           sb->modseq, snap_build_records, sb);
}

struct snap_of_rows {
	const struct mi_new_row *rows;
	size_t n;
	uint64_t modseq;
};

/* Through a small buffer: one of 3.4 MB for 100,000 rows cost more in
 * page faults than the rest. */
static bool
snap_rows_records(void *ctx, int fd)
{
	const struct snap_of_rows *r = ctx;
	struct buf b;
	bool ok = true;

	buf_init(&b, 0);
	for (size_t i = 0; i < r->n && ok; i++) {
		struct mbox_msg m = {
		    .uid = r->rows[i].uid,
		    .modseq = r->modseq,
		    .flags = r->rows[i].flags & MI_FLAGS_MASK,
		    .internaldate = r->rows[i].internaldate,
		    .size = r->rows[i].size,
		    .size_known = r->rows[i].size_known,
		};

		snap_put(&b, &m);
		if (b.len >= SNAP_CHUNK || i + 1 == r->n) {
			ok = mi_write_all(fd, b.data, b.len) == 0;
			b.len = 0;
		}
	}
	buf_free(&b);
	return ok;
}

void
mi_snap_of_rows(struct mbox_user *u, int64_t id, uint32_t uidvalidity,
                uint64_t modseq, const struct mi_new_row *rows, size_t n)
{
	struct snap_of_rows r = {.rows = rows, .n = n, .modseq = modseq};

	if (n < mi_snap_min || n > UINT32_MAX)
		return;
	snap_write(u, id, uidvalidity, (uint32_t)n, modseq, snap_rows_records,
	           &r);
}

/* Every row, to fn (and into a new snapshot). */
static int
snap_rows(struct mbox *box, mbox_msg_fn *fn, void *ctx, bool had_snapshot,
          char **error_r)
{
	struct snap_build sb = {.fn = fn, .ctx = ctx};
	sqlite3_stmt *st = mi_st(box->u, MI_MSG_LIST, error_r);
	bool build = !box->readonly &&
	             (had_snapshot || box->info.messages >= mi_snap_min);
	int rc;

	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_int64(st, 1, box->id);
	if (!build)
		return mi_msg_each(box->u, st, fn, ctx, error_r);
	buf_init(&sb.b, 0);
	buf_append(&sb.b, (const uint8_t[SNAP_HEAD]){0}, SNAP_HEAD);
	rc = mi_msg_each(box->u, st, snap_build_cb, &sb, error_r);
	if (rc == MBOX_OK)
		snap_store(box, &sb, had_snapshot);
	buf_free(&sb.b);
	return rc;
}

static int
uid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static bool
uid_in(const uint32_t *uids, size_t n, uint32_t uid)
{
	return n > 0 && bsearch(&uid, uids, n, sizeof(*uids), uid_cmp) != NULL;
}

/* The snapshot with the changes since merged in, UID order, to fn;
 * *used_r false (nothing handed out) when it cannot be used. */
static int
snap_merge(struct mbox *box, const struct snap *s, mbox_msg_fn *fn, void *ctx,
           bool *used_r, char **error_r)
{
	struct mbox_user *u = box->u;
	struct mbox_msg *ch = NULL;
	uint32_t *xp = NULL;
	size_t nch = 0, nxp = 0, j = 0, pos = SNAP_HEAD, total = 0;
	int64_t nchanged, nexpunged;
	struct mi_box b;
	int rc;

	*used_r = false;
	if ((rc = snap_count(u, MI_MSG_CHANGED_COUNT, box->id, s->modseq,
	                     &nchanged, error_r)) != MBOX_OK ||
	    (rc = snap_count(u, MI_EXP_COUNT, box->id, s->modseq, &nexpunged,
	                     error_r)) != MBOX_OK)
		return rc;
	/* Past a quarter, reading the rows is about as quick. */
	if ((uint64_t)(nchanged + nexpunged) > s->count / 4)
		return MBOX_OK;
	if ((rc = mbox_changes(box, s->modseq, &ch, &nch, &xp, &nxp,
	                       error_r)) != MBOX_OK)
		return rc;
	if (nxp > 1)
		qsort(xp, nxp, sizeof(*xp), uid_cmp);
	/* The guard: merged, the list has the counter's length. */
	for (uint32_t i = 0; i < s->count; i++) {
		struct mbox_msg m;
		const char *kw;
		size_t kwlen;

		(void)snap_next(s, &pos, &m, &kw, &kwlen);
		while (j < nch && ch[j].uid < m.uid) {
			j++;
			total++;
		}
		if (j < nch && ch[j].uid == m.uid)
			continue; /* counted with ch */
		if (!uid_in(xp, nxp, m.uid))
			total++;
	}
	total += nch - j;
	if ((rc = mi_box_by_id(u, box->id, &b, error_r)) != MBOX_OK)
		goto out;
	if (total != b.messages) {
		log_warn(NULL,
		         "event=mailbox-snapshot-mismatch user=%s mailbox=%s "
		         "snapshot=%zu index=%u",
		         u->dir, box->info.name, total, b.messages);
		mi_box_clear(&b);
		goto out;
	}
	mi_box_clear(&b);

	*used_r = true;
	pos = SNAP_HEAD;
	j = 0;
	for (uint32_t i = 0; i < s->count; i++) {
		struct mbox_msg m;
		const char *kw;
		size_t kwlen;

		(void)snap_next(s, &pos, &m, &kw, &kwlen);
		for (; j < nch && ch[j].uid < m.uid; j++)
			fn(ctx, &ch[j]);
		if (j < nch && ch[j].uid == m.uid) {
			fn(ctx, &ch[j++]);
			continue;
		}
		if (uid_in(xp, nxp, m.uid))
			continue;
		if (kwlen > 0)
			m.keywords = xstrndup(kw, kwlen);
		fn(ctx, &m);
		free(m.keywords);
	}
	for (; j < nch; j++)
		fn(ctx, &ch[j]);
out:
	mbox_msg_free_list(&ch, nch);
	free(xp);
	return rc;
}

/* The snapshot file mapped (NULL when absent or unreadable; *exists_r
 * tells whether there is one to replace). */
static void *
snap_map(struct mbox_user *u, int64_t id, size_t *len_r, bool *exists_r)
{
	char *name = snap_name(id);
	int fd = openat(u->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	void *p = NULL;

	*exists_r = fd >= 0 || errno != ENOENT;
	*len_r = 0;
	free(name);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size >= SNAP_HEAD && (uint64_t)st.st_size <= SIZE_MAX / 2) {
		p = mmap(NULL, (size_t)st.st_size, PROT_READ,
		         MAP_PRIVATE | MAP_POPULATE, fd, 0);
		if (p == MAP_FAILED)
			p = NULL;
		else
			*len_r = (size_t)st.st_size;
	}
	close(fd);
	return p;
}

int
mi_messages_all(struct mbox *box, mbox_msg_fn *fn, void *ctx, char **error_r)
{
	struct mbox_user *u = box->u;
	struct snap s;
	size_t len;
	bool had, used = false, in_txn = false;
	void *data = snap_map(u, box->id, &len, &had);
	int rc = MBOX_OK;

	if (data != NULL && snap_parse(data, len, box->info.uidvalidity, &s)) {
		/* It opens index.db again if an IDLE closed it. */
		if (mi_st(u, MI_MSG_CHANGED_COUNT, error_r) == NULL) {
			rc = MBOX_ERR_TEMP;
		} else if (sqlite3_get_autocommit(u->db)) {
			/* The changes and the counter from one moment. */
			if (sqlite3_exec(u->db, "BEGIN", NULL, NULL, NULL) !=
			    SQLITE_OK)
				rc = mi_dberr(u, error_r, "begin");
			else
				in_txn = true;
		}
		if (rc == MBOX_OK)
			rc = snap_merge(box, &s, fn, ctx, &used, error_r);
		if (in_txn)
			(void)sqlite3_exec(u->db, "COMMIT", NULL, NULL, NULL);
	}
	if (data != NULL)
		munmap(data, len);
	if (rc == MBOX_OK && !used)
		rc = snap_rows(box, fn, ctx, had, error_r);
	return rc;
}
