/* The text index of a user's messages, for SEARCH BODY and TEXT: an FTS5
 * table of words (SQLite's unicode61 tokenizer, case folded) in
 * index.db, which lists for a search string the messages that may
 * contain it. IMAP still tests each listed message exactly, so the index
 * only has to never leave out a message that matches.
 *
 * - What is indexed is mailtext_all(), the very text SEARCH tests.
 * - Rows are keyed (mailbox id << 32 | UID) and hold no copy of the text
 *   (contentless, no positions): 100,000 messages take ~14 MB.
 * - text_next says, per mailbox, below which UID every message is in the
 *   index. Delivery indexes in its own transaction when the mailbox is
 *   caught up; APPEND, COPY, MOVE and files from other tools leave a gap
 *   that mbox_text_catch_up() fills in the background. Messages at or
 *   above text_next are always candidates.
 * - Rows of expunged messages stay (a contentless table cannot delete
 *   without the text); they only add candidates that are not in the view.
 *   Once they outnumber the messages (and mi_text_dead_min), the index is
 *   emptied and built again in the background (mt_prune).
 * - A word of the search string that may be cut at either end of the
 *   string (its first and last word) is looked up by substring in the
 *   index's list of terms; the others as whole terms.
 * SECURITY: message text is untrusted and only ever bound as a value; a
 * search string is split by the same tokenizer and each term quoted; at
 * most MT_TERMS_MAX terms per query. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/utf8.h"
#include "core/xmalloc.h"
#include "mail/mailtext.h"
#include "store/mailbox_int.h"

/* The row of a message that cannot be indexed word by word (unreadable,
 * too big, a word longer than FTS5 keeps): it is always a candidate. */
#define MT_ALWAYS "tern0always0candidate"
/* Bigger messages are rows of MT_ALWAYS: search reads them anyway. */
#define MT_MESSAGE_MAX MI_TEXT_MESSAGE_MAX
/* FTS5 keeps the first 32768 bytes of a word; a run of word bytes this
 * long makes the message MT_ALWAYS (folding may lengthen a word). */
#define MT_RUN_MAX 8192
/* Terms of the index one search word may stand for; past that (a short
 * word inside thousands of others) the index would not save much. */
#define MT_TERMS_MAX 512
/* Messages per mbox_text_catch_up transaction. */
#define MT_CHUNK 256

#define MT_ROWID(box, uid) (((int64_t)(box) << 32) | (int64_t)(uid))

int64_t mi_text_dead_min = 10000;

int
mi_text_next(struct mbox_user *u, int64_t id, uint32_t *uid_r, char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_TEXT_NEXT_GET, error_r);
	int64_t v;
	int rc;

	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = mi_step_int(u, st, &v, error_r)) != MBOX_OK)
		return rc;
	*uid_r = v > 0 && v <= UINT32_MAX ? (uint32_t)v : 1;
	return MBOX_OK;
}

int
mi_text_set_next(struct mbox_user *u, int64_t id, uint32_t uid, char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_TEXT_NEXT_SET, error_r);

	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, uid);
	return mi_step_done(u, st, error_r);
}

/* A byte of text as a word keeps it: 0 for ASCII punctuation, space and
 * control (word ends), ASCII letters lowercased, digits and bytes of
 * UTF-8 sequences as they are. */
#define MT_F(c)                                                                  \
	((c) >= 0x80                                                ? (c)        \
	 : (c) >= 'A' && (c) <= 'Z'                                 ? (c) | 0x20 \
	 : ((c) >= 'a' && (c) <= 'z') || ((c) >= '0' && (c) <= '9') ? (c)        \
	                                                            : 0)
#define MT_F4(c) MT_F(c), MT_F((c) + 1), MT_F((c) + 2), MT_F((c) + 3)
#define MT_F16(c) MT_F4(c), MT_F4((c) + 4), MT_F4((c) + 8), MT_F4((c) + 12)
#define MT_F64(c)                                                              \
	MT_F16(c), MT_F16((c) + 16), MT_F16((c) + 32), MT_F16((c) + 48)
static const uint8_t mt_fold[256] = {MT_F64(0), MT_F64(64), MT_F64(128),
                                     MT_F64(192)};

/* One word of mt_words_once's output: where it is in it. */
struct mt_seen {
	uint32_t off, len;
};

/* memcmp, without the cost of a call for words of a few bytes (it was a
 * quarter of the time). */
static bool
mt_same(const uint8_t *a, const uint8_t *b, size_t len)
{
	if (len > 16)
		return memcmp(a, b, len) == 0;
	for (size_t i = 0; i < len; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

/* Eight bytes at a time: a byte-wise hash was a third of the indexing of
 * long words, each byte waiting for the previous multiply. */
static uint32_t
mt_hash(const uint8_t *p, size_t len)
{
	const uint64_t k = 0x9e3779b97f4a7c15u;
	uint64_t h = len * k, v;

	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&v, p, 8);
		h = (h ^ v) * k;
		h ^= h >> 29;
	}
	if (len > 0) {
		v = 0;
		memcpy(&v, p, len);
		h = (h ^ v) * k;
	}
	h ^= h >> 32;
	h *= k;
	return (uint32_t)(h >> 32);
}

/* The words of text (runs of bytes that are not ASCII punctuation, space
 * or control), ASCII lowercased, each once, space-separated, appended to
 * out. The index keeps no positions, only which words a message has, and
 * the tokenizer splits out's words exactly as it would the text (it folds
 * case too, and a word here can only split further, never merge): the
 * same rows for a fraction of the tokens (64 KB of a repetitive message
 * were 14,000 of them). false: a word of MT_RUN_MAX bytes or more (out
 * then holds part of the list). */
static bool
mt_words_once(const uint8_t *t, size_t n, struct buf *out)
{
	size_t cap = 1024, nseen = 0, i = 0;
	uint32_t *slots = xcalloc(cap, sizeof(*slots)); /* entry + 1 */
	struct mt_seen *seen = xreallocarray(NULL, cap / 2 + 1, sizeof(*seen));
	uint8_t *w;
	bool ok = true;

	/* Each word and its space: at most 2 bytes per byte of text. */
	if (buf_reserve(out, 2 * n) < 0) {
		free(slots);
		free(seen);
		return false;
	}
	w = out->data;
	while (i < n) {
		size_t o = out->len, len, k;
		uint8_t *word = w + o, f = 0;

		while (i < n && mt_fold[t[i]] == 0)
			i++;
		for (len = 0; i < n && (f = mt_fold[t[i]]) != 0; i++)
			word[len++] = f;
		if (len == 0)
			break;
		if (len >= MT_RUN_MAX) {
			ok = false;
			break;
		}
		for (k = mt_hash(word, len) & (cap - 1); slots[k] != 0;
		     k = (k + 1) & (cap - 1)) {
			const struct mt_seen *e = &seen[slots[k] - 1];

			if (e->len == len && mt_same(w + e->off, word, len))
				break;
		}
		if (slots[k] != 0)
			continue; /* had it */
		seen[nseen++] =
		    (struct mt_seen){.off = (uint32_t)o, .len = (uint32_t)len};
		slots[k] = (uint32_t)nseen;
		word[len] = ' ';
		out->len += len + 1;
		if (nseen * 2 > cap) {
			/* Grow and place every word again. */
			free(slots);
			cap *= 2;
			slots = xcalloc(cap, sizeof(*slots));
			seen = xreallocarray(seen, cap / 2 + 1, sizeof(*seen));
			for (size_t x = 0; x < nseen; x++) {
				for (k = mt_hash(w + seen[x].off, seen[x].len) &
				         (cap - 1);
				     slots[k] != 0; k = (k + 1) & (cap - 1))
					;
				slots[k] = (uint32_t)x + 1;
			}
		}
	}
	free(slots);
	free(seen);
	return ok;
}

void
mi_text_words(struct mbox_user *u, const char *msg, size_t len, struct buf *out)
{
	struct buf *text = &u->text_out;
	size_t start = out->len;
	bool always = msg == NULL || len > MT_MESSAGE_MAX;

	buf_reset(text);
	if (!always) {
		mailtext_all(msg, len, text);
		always = !mt_words_once(text->data, text->len, out);
	}
	if (always) {
		out->len = start;
		buf_append_str(out, MT_ALWAYS);
	}
}

int
mi_text_put_words(struct mbox_user *u, int64_t id, uint32_t uid,
                  const uint8_t *words, size_t len, char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_TEXT_INSERT, error_r);

	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_int64(st, 1, MT_ROWID(id, uid));
	sqlite3_bind_text(st, 2, len > 0 ? (const char *)words : "", (int)len,
	                  SQLITE_STATIC);
	return mi_step_done(u, st, error_r);
}

/* Inside a transaction: the row of message (id, uid), from its CRLF form
 * msg (NULL: it could not be read). */
static int
mt_put(struct mbox_user *u, int64_t id, uint32_t uid, const char *msg,
       size_t len, char **error_r)
{
	struct buf *words = &u->text_words;

	buf_reset(words);
	mi_text_words(u, msg, len, words);
	return mi_text_put_words(u, id, uid, words->data, words->len, error_r);
}

/* The file in CRLF form (as mbox_read gives it) into out; -1 when it
 * cannot be read or is bigger than MT_MESSAGE_MAX. */
static int
mt_read_crlf(int fd, struct buf *out)
{
	uint8_t chunk[16384];
	uint8_t prev = 0;
	off_t off = 0;

	buf_reset(out);
	for (;;) {
		ssize_t r = pread(fd, chunk, sizeof(chunk), off);
		const uint8_t *p = chunk, *end, *lf;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		off += r;
		end = chunk + r;
		while ((lf = memchr(p, '\n', (size_t)(end - p))) != NULL) {
			uint8_t before = lf > p ? lf[-1] : prev;

			if (buf_append(out, p, (size_t)(lf - p)) < 0 ||
			    buf_append(out, before == '\r' ? "\n" : "\r\n",
			               before == '\r' ? 1 : 2) < 0)
				return -1;
			p = lf + 1;
			prev = '\n';
		}
		if (p < end) {
			if (buf_append(out, p, (size_t)(end - p)) < 0)
				return -1;
			prev = end[-1];
		}
	}
}

int
mi_text_add_file(struct mbox_user *u, int64_t id, uint32_t uid, int curfd,
                 const char *filename, char **error_r)
{
	struct buf *data = &u->text_msg;
	int fd;
	bool ok = false;

	fd = openat(curfd, filename, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		/* Past the bound: a row of MT_ALWAYS. */
		ok = mt_read_crlf(fd, data) == 0 && buf_cstr(data) != NULL;
		close(fd);
	}
	return mt_put(u, id, uid, ok ? (const char *)data->data : NULL,
	              ok ? data->len : 0, error_r);
}

int
mi_text_added(struct mbox_user *u, int64_t id, uint32_t uid, int curfd,
              const char *filename, char **error_r)
{
	uint32_t next;
	int rc;

	if ((rc = mi_text_next(u, id, &next, error_r)) != MBOX_OK)
		return rc;
	if (next != uid) {
		u->text_lag = true;
		return MBOX_OK;
	}
	if ((rc = mi_text_add_file(u, id, uid, curfd, filename, error_r)) !=
	    MBOX_OK)
		return rc;
	return mi_text_set_next(u, id, uid + 1, error_r);
}

/* ---- catching up ---- */

struct mt_file {
	uint32_t uid;
	char *filename;
};

/* Inside a transaction: up to MT_CHUNK messages of the mailbox from UID
 * from on indexed, and text_next moved past them. */
static int
mt_chunk(struct mbox_user *u, int64_t id, const char *dir, uint32_t from,
         uint32_t uidnext, size_t *indexed_r, char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_MSG_WINDOW, error_r);
	struct mt_file files[MT_CHUNK];
	struct mi_dirs d;
	char *err = NULL;
	size_t n = 0;
	uint32_t next = uidnext;
	int rc = MBOX_OK, r;

	if (st == NULL)
		return MBOX_ERR_TEMP;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, from);
	sqlite3_bind_int(st, 3, MT_CHUNK);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 3);

		files[n].uid = (uint32_t)sqlite3_column_int64(st, 0);
		files[n].filename = xstrdup(name != NULL ? name : "");
		n++;
	}
	if (r != SQLITE_DONE)
		rc = mi_dberr(u, error_r, "text index rows");
	mi_done(st);
	if (rc == MBOX_OK && n == MT_CHUNK)
		next = files[n - 1].uid + 1;
	if (rc == MBOX_OK && n > 0) {
		rc = mi_dirs_open(u, dir, &d, &err);
		if (rc == MBOX_OK) {
			for (size_t i = 0; i < n && rc == MBOX_OK; i++)
				rc = mi_text_add_file(
				    u, id, files[i].uid, d.curfd,
				    files[i].filename, error_r);
			*indexed_r = n;
			mi_dirs_close(&d);
		} else if (rc == MBOX_ERR_NOTFOUND) {
			/* Its directory is gone: the rows go with it. */
			next = uidnext;
			rc = MBOX_OK;
		} else if (error_r != NULL) {
			*error_r = err;
			err = NULL;
		}
	}
	free(err);
	if (rc == MBOX_OK)
		rc = mi_text_set_next(u, id, next, error_r);
	for (size_t i = 0; i < n; i++)
		free(files[i].filename);
	return rc;
}

/* The index's rows and the user's messages. */
static int
mt_counts(struct mbox_user *u, int64_t *rows_r, int64_t *live_r, char **error_r)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = mi_st(u, MI_TEXT_ROWS, error_r)) == NULL)
		return MBOX_ERR_TEMP;
	if ((rc = mi_step_int(u, st, rows_r, error_r)) != MBOX_OK)
		return rc;
	if ((st = mi_st(u, MI_MSG_TOTAL, error_r)) == NULL)
		return MBOX_ERR_TEMP;
	return mi_step_int(u, st, live_r, error_r);
}

static bool
mt_too_many(int64_t rows, int64_t live)
{
	return rows - live > mi_text_dead_min && rows - live > live;
}

bool
mi_text_prune_due(struct mbox_user *u)
{
	int64_t rows, live;

	return mt_counts(u, &rows, &live, NULL) == MBOX_OK &&
	       mt_too_many(rows, live);
}

/* Inside a transaction: the index emptied (*reset_r) when it holds more
 * rows of gone messages than mi_text_dead_min and than there are
 * messages. It is then built again like a new one, from UID 1 of every
 * mailbox; meanwhile SEARCH reads the messages not yet indexed. */
static int
mt_prune(struct mbox_user *u, bool *reset_r, char **error_r)
{
	int64_t rows, live;
	int rc;

	*reset_r = false;
	if ((rc = mt_counts(u, &rows, &live, error_r)) != MBOX_OK)
		return rc;
	if (!mt_too_many(rows, live))
		return MBOX_OK;
	if (sqlite3_exec(u->db,
	                 "INSERT INTO msgtext (msgtext) VALUES ('delete-all');"
	                 "DELETE FROM text_next",
	                 NULL, NULL, NULL) != SQLITE_OK)
		return mi_dberr(u, error_r, "text index reset");
	log_notice(NULL,
	           "event=text-index-reset dir=%s rows=%lld messages=%lld",
	           u->dir, (long long)rows, (long long)live);
	*reset_r = true;
	return MBOX_OK;
}

int
mbox_text_catch_up(struct mbox_user *u, bool *more_r, size_t *indexed_r,
                   char **error_r)
{
	bool reset;
	sqlite3_stmt *st;
	int64_t id;
	char *dir = NULL;
	uint32_t uidnext, next;
	int rc, r;

	*more_r = false;
	*indexed_r = 0;
	if ((rc = mi_begin(u, error_r)) != MBOX_OK)
		return rc;
	if ((rc = mt_prune(u, &reset, error_r)) != MBOX_OK) {
		mi_rollback(u);
		return rc;
	}
	if (reset) {
		if ((rc = mi_commit(u, error_r)) != MBOX_OK)
			return rc;
		*more_r = true;
		return MBOX_OK;
	}
	if ((st = mi_st(u, MI_TEXT_LAGGING, error_r)) == NULL) {
		mi_rollback(u);
		return MBOX_ERR_TEMP;
	}
	if ((r = sqlite3_step(st)) == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		dir = xstrdup((const char *)sqlite3_column_text(st, 1));
		uidnext = (uint32_t)sqlite3_column_int64(st, 2);
		next = (uint32_t)sqlite3_column_int64(st, 3);
	} else if (r != SQLITE_DONE) {
		mi_dberr(u, error_r, "text index lag");
		mi_done(st);
		mi_rollback(u);
		return MBOX_ERR_TEMP;
	}
	mi_done(st);
	if (dir == NULL) {
		mi_rollback(u);
		return MBOX_OK;
	}
	rc = mt_chunk(u, id, dir, next, uidnext, indexed_r, error_r);
	free(dir);
	if (rc != MBOX_OK) {
		mi_rollback(u);
		return rc;
	}
	if ((rc = mi_commit(u, error_r)) != MBOX_OK) {
		*indexed_r = 0;
		return rc;
	}
	/* This mailbox or another may have more: the next call says. */
	*more_r = true;
	return MBOX_OK;
}

bool
mbox_text_lagging(struct mbox_user *u)
{
	bool lag = u->text_lag;

	u->text_lag = false;
	return lag;
}

/* ---- search ---- */

/* One word of a search string, as the index's tokenizer made it. */
struct mt_word {
	char *term;
	bool open_start; /* the string starts inside it */
	bool open_end;   /* the string ends inside it */
};

struct mt_words {
	struct mt_word *w;
	size_t n;
	size_t len; /* of the string */
	bool too_long;
};

static int
mt_word_cb(void *ctx, int tflags, const char *tok, int ntok, int start, int end)
{
	struct mt_words *ws = ctx;
	struct mt_word *w;

	(void)tflags;
	if (ntok >= MT_RUN_MAX) {
		ws->too_long = true;
		return SQLITE_OK;
	}
	ws->w = xreallocarray(ws->w, ws->n + 1, sizeof(*ws->w));
	w = &ws->w[ws->n++];
	w->term = xstrndup(tok, (size_t)ntok);
	w->open_start = start == 0;
	w->open_end = (size_t)end == ws->len;
	return SQLITE_OK;
}

static void
mt_words_free(struct mt_words *ws)
{
	for (size_t i = 0; i < ws->n; i++)
		free(ws->w[i].term);
	free(ws->w);
	*ws = (struct mt_words){0};
}

/* The words of str through the tokenizer msgtext was made with; -1 when
 * it cannot be had. */
static int
mt_words(sqlite3 *db, const char *str, struct mt_words *ws)
{
	static const char *const args[] = {"remove_diacritics", "0"};
	fts5_api *api = NULL;
	fts5_tokenizer tk;
	Fts5Tokenizer *tok = NULL;
	sqlite3_stmt *st = NULL;
	void *ud = NULL;
	int rc;

	*ws = (struct mt_words){.len = strlen(str)};
	if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL) !=
	    SQLITE_OK)
		return -1;
	sqlite3_bind_pointer(st, 1, &api, "fts5_api_ptr", NULL);
	(void)sqlite3_step(st);
	sqlite3_finalize(st);
	if (api == NULL || api->iVersion < 2 ||
	    api->xFindTokenizer(api, "unicode61", &ud, &tk) != SQLITE_OK ||
	    tk.xCreate(ud, (const char **)args, 2, &tok) != SQLITE_OK)
		return -1;
	rc = tk.xTokenize(tok, ws, FTS5_TOKENIZE_QUERY, str, (int)ws->len,
	                  mt_word_cb);
	tk.xDelete(tok);
	if (rc != SQLITE_OK || ws->too_long) {
		mt_words_free(ws);
		return -1;
	}
	return 0;
}

/* A term as an FTS5 string: in double quotes, each one doubled. */
static void
mt_quote(struct buf *q, const char *term)
{
	buf_append_byte(q, '"');
	for (const char *p = term; *p != '\0'; p++) {
		if (*p == '"')
			buf_append_byte(q, '"');
		buf_append_byte(q, (uint8_t)*p);
	}
	buf_append_byte(q, '"');
}

/* The query for a string of one open word: every term containing it.
 * -1 when too many do. */
static int
mt_query_inner(struct mbox_user *u, const char *word, struct buf *q,
               char **error_r)
{
	sqlite3_stmt *st = mi_st(u, MI_TEXT_TERMS, error_r);
	size_t n = 0;
	int r;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, word, -1, SQLITE_STATIC);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);

		if (t == NULL)
			continue;
		if (++n > MT_TERMS_MAX)
			break;
		if (q->len > 0)
			buf_append_str(q, " OR ");
		mt_quote(q, t);
	}
	mi_done(st);
	if (n > MT_TERMS_MAX || (r != SQLITE_ROW && r != SQLITE_DONE))
		return -1;
	return 0;
}

/* The FTS5 query whose matches include every message containing the
 * string of ws; -1 when the index cannot narrow it down. */
static int
mt_query(struct mbox_user *u, const struct mt_words *ws, struct buf *q,
         char **error_r)
{
	size_t conds = 0;

	if (ws->n == 0)
		return -1;
	/* (FTS5's AND binds before the OR the caller appends.) */
	/* Every word after the first starts where the text's word does;
	 * one before the last also ends there. */
	for (size_t i = 0; i < ws->n; i++) {
		const struct mt_word *w = &ws->w[i];

		if (w->open_start)
			continue;
		if (conds++ > 0)
			buf_append_str(q, " AND ");
		mt_quote(q, w->term);
		if (w->open_end)
			buf_append_str(q, " *");
	}
	if (conds > 0)
		return 0;
	/* One word, maybe the middle of the text's word. */
	return mt_query_inner(u, ws->w[0].term, q, error_r);
}

int
mbox_text_candidates(struct mbox *box, const char *str, uint32_t **uids_r,
                     size_t *n_r, uint32_t *below_r, char **error_r)
{
	struct mbox_user *u = box->u;
	struct mt_words ws;
	struct buf q;
	sqlite3_stmt *st;
	uint32_t next;
	size_t n = 0, cap = 0;
	uint32_t *uids = NULL;
	int rc, r;

	*uids_r = NULL;
	*n_r = 0;
	*below_r = 0;
	for (size_t i = 0, len = strlen(str); i < len;) {
		size_t l = utf8_seq_len((const uint8_t *)str + i, len - i);

		if (l == 0)
			return MBOX_OK; /* the exact test answers */
		i += l;
	}
	if ((rc = mi_text_next(u, box->id, &next, error_r)) != MBOX_OK)
		return rc;
	if (next <= 1 || u->db == NULL || mt_words(u->db, str, &ws) != 0)
		return MBOX_OK;
	buf_init(&q, 0);
	if (mt_query(u, &ws, &q, error_r) != 0) {
		mt_words_free(&ws);
		buf_free(&q);
		if (error_r != NULL && *error_r != NULL)
			return MBOX_ERR_TEMP;
		return MBOX_OK;
	}
	mt_words_free(&ws);
	/* Empty: no term contains the word; only the unindexable are left. */
	if (q.len > 0)
		buf_append_str(&q, " OR ");
	buf_append_str(&q, MT_ALWAYS);
	buf_append_byte(&q, '\0');
	if ((st = mi_st(u, MI_TEXT_MATCH, error_r)) == NULL) {
		buf_free(&q);
		return MBOX_ERR_TEMP;
	}
	sqlite3_bind_text(st, 1, (const char *)q.data, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, MT_ROWID(box->id, 0));
	sqlite3_bind_int64(st, 3, MT_ROWID(box->id, next - 1));
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		uint32_t uid = (uint32_t)(sqlite3_column_int64(st, 0) &
		                          (int64_t)UINT32_MAX);

		if (n > 0 && uids[n - 1] == uid)
			continue;
		if (n == cap) {
			cap = cap > 0 ? cap * 2 : 64;
			uids = xreallocarray(uids, cap, sizeof(*uids));
		}
		uids[n++] = uid;
	}
	if (r != SQLITE_DONE) {
		rc = mi_dberr(u, error_r, "text index query");
		mi_done(st);
		buf_free(&q);
		free(uids);
		return rc;
	}
	mi_done(st);
	buf_free(&q);
	*uids_r = uids;
	*n_r = n;
	*below_r = next;
	return MBOX_OK;
}
