/* Snapshots of a big mailbox's message list (mailbox_int.h).
 *
 * Reading 100,000 rows out of SQLite for every SELECT costs about 25 ms,
 * most of it in the per-column calls. A snapshot is the same list packed
 * into one blob, written after a full read, with the MODSEQ it is good
 * for. The next read takes the blob and applies what changed since that
 * MODSEQ (rows with a greater MODSEQ, UIDs expunged later), which the
 * index already keeps for CONDSTORE. So a snapshot is never wrong for
 * being old, only slower; it is rewritten once the changes grow.
 *
 * Changes that carry no new MODSEQ (a size read later, reindex) forget
 * the snapshot (mi_snap_forget). As a last guard the merged list must
 * have as many messages as the mailbox's counter, read in the same
 * transaction; otherwise the rows are read and the snapshot replaced.
 *
 * The blob is a cache in this machine's byte order:
 *   header:  magic u32, uidvalidity u32, count u32, 0 u32, modseq u64
 *   records: uid u32, flags u32 (bit 31: size known), modseq u64,
 *            internaldate i64, size u64, keyword length u16, keywords.
 * UIDs ascend. Anything else makes it unusable, never trusted. */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "store/mailbox_int.h"

#define SNAP_MAGIC 0x314e5354u /* "TSN1" */
#define SNAP_HEAD 24
#define SNAP_REC 34
#define SNAP_SIZE_KNOWN 0x80000000u

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

int
mi_snap_forget(struct mbox_user *u, int64_t id, char **error_r)
{
	sqlite3_stmt *st =
	    mi_st(u, id != 0 ? MI_SNAP_DEL : MI_SNAP_DEL_ALL, error_r);

	if (st == NULL)
		return MBOX_ERR_TEMP;
	if (id != 0)
		sqlite3_bind_int64(st, 1, id);
	return mi_step_done(u, st, error_r);
}

/* The rows just read, as the mailbox's snapshot; or none when it is small.
 * A cache: failing to write it is not an error. */
static void
snap_store(struct mbox *box, struct snap_build *sb, bool had_snapshot)
{
	struct mbox_user *u = box->u;
	uint32_t head[4] = {SNAP_MAGIC, box->info.uidvalidity, sb->count, 0};
	sqlite3_stmt *st;
	char *error = NULL;
	int rc;

	if (box->readonly || (sb->count < mi_snap_min && !had_snapshot) ||
	    !sqlite3_get_autocommit(u->db))
		return;
	if ((rc = mi_begin(u, &error)) != MBOX_OK)
		goto out;
	if (sb->count < mi_snap_min) {
		rc = mi_snap_forget(u, box->id, &error);
	} else if ((st = mi_st(u, MI_SNAP_PUT, &error)) == NULL) {
		rc = MBOX_ERR_TEMP;
	} else {
		memcpy(sb->b.data, head, sizeof(head));
		memcpy(sb->b.data + sizeof(head), &sb->modseq,
		       sizeof(sb->modseq));
		sqlite3_bind_int64(st, 1, box->id);
		sqlite3_bind_blob64(st, 2, sb->b.data, sb->b.len,
		                    SQLITE_STATIC);
		rc = mi_step_done(u, st, &error);
	}
	if (rc == MBOX_OK)
		rc = mi_commit(u, &error);
	else
		mi_rollback(u);
out:
	if (rc != MBOX_OK)
		log_warn(NULL,
		         "event=mailbox_snapshot_skipped user=%s mailbox=%s "
		         "error=%s",
		         u->dir, box->info.name, error != NULL ? error : "");
	free(error);
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

int
mi_messages_all(struct mbox *box, mbox_msg_fn *fn, void *ctx, char **error_r)
{
	struct mbox_user *u = box->u;
	sqlite3_stmt *st;
	struct snap s;
	bool in_txn = false, had = false, used = false;
	int rc, step;

	/* First: it opens index.db again if an IDLE closed it. */
	if ((st = mi_st(u, MI_SNAP_GET, error_r)) == NULL)
		return MBOX_ERR_TEMP;
	/* The snapshot, the changes and the counter from one moment. */
	if (sqlite3_get_autocommit(u->db)) {
		if (sqlite3_exec(u->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
			return mi_dberr(u, error_r, "begin");
		in_txn = true;
	}
	sqlite3_bind_int64(st, 1, box->id);
	step = sqlite3_step(st);
	if (step == SQLITE_ROW) {
		had = true;
		if (snap_parse(sqlite3_column_blob(st, 0),
		               (size_t)sqlite3_column_bytes(st, 0),
		               box->info.uidvalidity, &s))
			rc = snap_merge(box, &s, fn, ctx, &used, error_r);
		else
			rc = MBOX_OK;
	} else {
		rc = step == SQLITE_DONE ? MBOX_OK
		                         : mi_dberr(u, error_r, "snapshots");
	}
	mi_done(st);
	if (in_txn)
		(void)sqlite3_exec(u->db, "COMMIT", NULL, NULL, NULL);
	if (rc == MBOX_OK && !used)
		rc = snap_rows(box, fn, ctx, had, error_r);
	return rc;
}
