/* IMAP message commands: APPEND, STORE, COPY, MOVE (and UID forms),
 * EXPUNGE, UID EXPUNGE, CLOSE, UNSELECT.
 * SECURITY: client input; APPEND data is a literal bounded by append_max. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"
#include "imap/session_int.h"

/* ---- APPEND ---- */

void
imap_cmd_append(struct imap_session *s, const struct imap_command *c)
{
	const struct imap_arg *msg;
	struct buf name, kw;
	uint32_t flags = 0, uidvalidity = 0, uid = 0;
	int64_t internaldate = 0;
	char *err = NULL;
	size_t i = 1;
	int r;

	buf_init(&name, 0);
	buf_init(&kw, 0);
	if (c->args[i].type == IMAP_ARG_LIST) {
		if (imap_flags_parse(&c->args[i], &flags, &kw) != 0) {
			imap_reply(s, "BAD Invalid flags");
			goto out;
		}
		i++;
	}
	if (i + 1 < c->count) {
		const char *d;
		size_t dlen;
		time_t t;
		int zone;

		if (c->args[i].type != IMAP_ARG_STRING ||
		    !imap_arg_astring(&c->args[i], &d, &dlen) ||
		    imap_datetime_parse(d, dlen, &t, &zone) != 0) {
			imap_reply(s, "BAD Invalid date-time");
			goto out;
		}
		internaldate = (int64_t)t;
		i++;
	}
	if (i + 1 != c->count) {
		imap_reply(s, "BAD Invalid APPEND arguments");
		goto out;
	}
	msg = &c->args[i];
	if (msg->type != IMAP_ARG_LITERAL && msg->type != IMAP_ARG_STRING) {
		imap_reply(s, "BAD Message must be a literal");
		goto out;
	}
	if (msg->len > s->set.append_max) {
		imap_reply(s, "NO [TOOBIG] Message too large");
		goto out;
	}
	if (msg->len == 0) {
		imap_reply(s, "NO Empty message");
		goto out;
	}
	if (imap_name_from_client(s, &c->args[0], &name) != 0 ||
	    !mbox_name_valid((const char *)name.data)) {
		imap_reply(s, "NO [CANNOT] Invalid mailbox name");
		goto out;
	}
	r = mbox_append(s->store, (const char *)name.data, msg->str, msg->len,
	                flags, kw.len > 0 ? buf_cstr(&kw) : NULL, internaldate,
	                &uidvalidity, &uid, &err);
	if (r == MBOX_ERR_NOTFOUND) {
		imap_reply(s, "NO [TRYCREATE] Mailbox does not exist");
		imap_store_error(s, r, &err);
	} else if (r == MBOX_ERR_BADNAME) {
		imap_reply(s, "NO [CANNOT] Invalid keyword");
		imap_store_error(s, r, &err);
	} else if (r != 0) {
		imap_reply(s, "NO %s", imap_mbox_error(r));
		imap_store_error(s, r, &err);
	} else {
		imap_reply(s,
		           "OK [APPENDUID %" PRIu32 " %" PRIu32 "] APPEND "
		           "completed",
		           uidvalidity, uid);
	}
out:
	buf_free(&name);
	buf_free(&kw);
}

/* ---- helpers ---- */

/* UIDs of the messages at idx[0..n) still in the store. */
static uint32_t *
live_uids(const struct imap_session *s, const uint32_t *idx, size_t n,
          size_t *nuids_r, bool *gone_r)
{
	uint32_t *uids = n > 0 ? xreallocarray(NULL, n, sizeof(*uids)) : NULL;
	size_t k = 0;

	*gone_r = false;
	for (size_t i = 0; i < n; i++) {
		const struct imap_msg *m = &s->view.msgs[idx[i]];

		if ((m->flags & IMAP_MSG_EXPUNGED) != 0)
			*gone_r = true;
		else
			uids[k++] = m->uid;
	}
	*nuids_r = k;
	return uids;
}

static bool
uid_in(const uint32_t *v, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid] < uid)
			lo = mid + 1;
		else if (v[mid] > uid)
			hi = mid;
		else
			return true;
	}
	return false;
}

/* ---- STORE ---- */

struct store_ctx {
	uint32_t *idx;
	size_t n;
	size_t pos;
	uint32_t *failed; /* UIDs, ascending */
	size_t nfailed;
	bool silent;
	bool with_uid;
};

static void
store_ctx_free(void *arg)
{
	struct store_ctx *st = arg;

	free(st->idx);
	free(st->failed);
	free(st);
}

static bool
store_step(struct imap_session *s)
{
	struct store_ctx *st = s->step_ctx;

	while (st->pos < st->n) {
		size_t i = st->idx[st->pos];
		struct imap_msg *m = &s->view.msgs[i];

		if (imap_out_full(s))
			return false;
		st->pos++;
		if ((m->flags & IMAP_MSG_EXPUNGED) != 0 ||
		    uid_in(st->failed, st->nfailed, m->uid))
			continue;
		m->flags &= ~IMAP_MSG_DIRTY;
		imap_printf(s, "* %zu FETCH (", i + 1);
		if (!st->silent)
			imap_write_flags(s, m);
		if (st->with_uid)
			imap_printf(s, "%sUID %" PRIu32, st->silent ? "" : " ",
			            m->uid);
		if (s->condstore)
			imap_printf(s, " MODSEQ (%" PRIu64 ")", m->modseq);
		imap_write(s, ")\r\n", 3);
	}
	return true;
}

/* "FLAGS", "+FLAGS.SILENT", … */
static int
store_item(const struct imap_arg *a, enum mbox_flag_op *op_r, bool *silent_r)
{
	const char *p = a->str;
	size_t len = a->len;

	if (a->type != IMAP_ARG_ATOM)
		return -1;
	*op_r = MBOX_FLAGS_SET;
	if (len > 0 && (p[0] == '+' || p[0] == '-')) {
		*op_r = p[0] == '+' ? MBOX_FLAGS_ADD : MBOX_FLAGS_REMOVE;
		p++;
		len--;
	}
	*silent_r = false;
	if (len == 12 && strncasecmp(p, "FLAGS.SILENT", 12) == 0) {
		*silent_r = true;
		return 0;
	}
	return len == 5 && strncasecmp(p, "FLAGS", 5) == 0 ? 0 : -1;
}

/* The flags: one list, or flags one by one. */
static int
store_flags(const struct imap_command *c, size_t i, uint32_t *flags_r,
            struct buf *kw)
{
	struct buf one;

	*flags_r = 0;
	if (c->args[i].type == IMAP_ARG_LIST)
		return i + 1 == c->count
		           ? imap_flags_parse(&c->args[i], flags_r, kw)
		           : -1;
	buf_init(&one, 0);
	for (; i < c->count; i++) {
		uint32_t f;

		if (c->args[i].type != IMAP_ARG_ATOM ||
		    imap_flags_parse(&c->args[i], &f, &one) != 0) {
			buf_free(&one);
			return -1;
		}
		*flags_r |= f;
		if (one.len > 0) {
			if (kw->len > 0)
				(void)buf_append_byte(kw, ' ');
			(void)buf_append(kw, one.data, one.len);
		}
	}
	buf_free(&one);
	return 0;
}

void
imap_cmd_store(struct imap_session *s, const struct imap_command *c)
{
	bool uid = (s->def->flags & IMAP_CMD_UID) != 0, gone;
	struct store_ctx *st = xcalloc(1, sizeof(*st));
	uint64_t unchangedsince = 0;
	enum mbox_flag_op op;
	const char *error = NULL;
	uint32_t flags, *uids = NULL;
	size_t i = 1, nuids = 0;
	struct buf kw;
	char *err = NULL;
	int r;

	buf_init(&kw, 0);
	if (imap_view_resolve(s, &c->args[0], uid, &st->idx, &st->n, &error) !=
	    0) {
		imap_reply(s, "BAD %s", error);
		goto fail;
	}
	if (c->args[i].type == IMAP_ARG_LIST) {
		const struct imap_arg *m = &c->args[i];

		if (m->count != 2 ||
		    !imap_arg_atom_is(&m->list[0], "UNCHANGEDSINCE") ||
		    !imap_arg_number64(&m->list[1], &unchangedsince)) {
			imap_reply(s, "BAD Invalid STORE modifier");
			goto fail;
		}
		imap_enable_condstore(s);
		i++;
	}
	if (i + 1 >= c->count ||
	    store_item(&c->args[i], &op, &st->silent) != 0) {
		imap_reply(s, "BAD Invalid STORE item");
		goto fail;
	}
	if (store_flags(c, i + 1, &flags, &kw) != 0) {
		imap_reply(s, "BAD Invalid flags");
		goto fail;
	}
	uids = live_uids(s, st->idx, st->n, &nuids, &gone);
	if (nuids > 0) {
		r = mbox_store_flags(s->view.box, uids, nuids, op, flags,
		                     kw.len > 0 ? buf_cstr(&kw) : NULL,
		                     unchangedsince, &st->failed, &st->nfailed,
		                     &err);
		if (r != 0 && r != MBOX_ERR_MODIFIED) {
			if (r == MBOX_ERR_BADNAME)
				imap_reply(s, "BAD Invalid keyword");
			else
				imap_reply(s, "NO %s", imap_mbox_error(r));
			imap_store_error(s, r, &err);
			goto fail;
		}
		imap_store_error(s, r, &err);
	}
	imap_view_sync(s);
	/* A new keyword is announced before it is used. */
	imap_view_flags_notify(s);
	st->with_uid = uid || s->condstore;
	if (st->nfailed > 0) {
		struct buf set;

		buf_init(&set, 0);
		if (uid) {
			imap_write_set(&set, st->failed, st->nfailed);
		} else {
			uint32_t *seqs =
			    xreallocarray(NULL, st->nfailed, sizeof(*seqs));

			for (size_t k = 0; k < st->nfailed; k++)
				seqs[k] =
				    (uint32_t)(imap_view_find(&s->view,
				                              st->failed[k]) +
				               1);
			imap_write_set(&set, seqs, st->nfailed);
			free(seqs);
		}
		imap_reply(s, "OK [MODIFIED %.*s] Conditional STORE failed",
		           (int)set.len, (const char *)set.data);
		buf_free(&set);
	} else if (gone) {
		imap_reply(s, "NO [EXPUNGEISSUED] Some messages were expunged");
	} else {
		imap_reply(s, "OK %s completed", c->name);
	}
	free(uids);
	buf_free(&kw);
	if (st->silent && !s->condstore) {
		/* Our own change: nothing to tell. */
		for (size_t k = 0; k < st->n; k++)
			s->view.msgs[st->idx[k]].flags &= ~IMAP_MSG_DIRTY;
		store_ctx_free(st);
		return;
	}
	imap_set_step(s, store_step, store_ctx_free, st);
	return;
fail:
	free(uids);
	buf_free(&kw);
	store_ctx_free(st);
}

/* ---- COPY / MOVE ---- */

/* "COPYUID v src dst" with the two sets cut into the same runs. */
static void
copyuid_write(struct buf *out, uint32_t uidvalidity, const uint32_t *src,
              const uint32_t *dst, size_t n)
{
	struct buf d;
	size_t i = 0;

	buf_init(&d, 0);
	(void)buf_printf(out, "COPYUID %" PRIu32 " ", uidvalidity);
	while (i < n) {
		size_t j = i;

		while (j + 1 < n && src[j + 1] == src[j] + 1 &&
		       dst[j + 1] == dst[j] + 1)
			j++;
		if (i > 0) {
			(void)buf_append_byte(out, ',');
			(void)buf_append_byte(&d, ',');
		}
		if (j > i) {
			(void)buf_printf(out, "%" PRIu32 ":%" PRIu32, src[i],
			                 src[j]);
			(void)buf_printf(&d, "%" PRIu32 ":%" PRIu32, dst[i],
			                 dst[j]);
		} else {
			(void)buf_printf(out, "%" PRIu32, src[i]);
			(void)buf_printf(&d, "%" PRIu32, dst[i]);
		}
		i = j + 1;
	}
	(void)buf_append_byte(out, ' ');
	(void)buf_append(out, d.data, d.len);
	buf_free(&d);
}

static void
copy_common(struct imap_session *s, const struct imap_command *c, bool move)
{
	bool uid = (s->def->flags & IMAP_CMD_UID) != 0, gone;
	uint32_t *idx = NULL, *uids = NULL, *src = NULL, *dst = NULL;
	size_t n = 0, nuids = 0, ncopied = 0;
	uint32_t uidvalidity = 0;
	const char *error = NULL;
	struct buf name, code;
	char *err = NULL;
	int r;

	buf_init(&name, 0);
	buf_init(&code, 0);
	if (imap_view_resolve(s, &c->args[0], uid, &idx, &n, &error) != 0) {
		imap_reply(s, "BAD %s", error);
		goto out;
	}
	if (imap_name_from_client(s, &c->args[1], &name) != 0 ||
	    !mbox_name_valid((const char *)name.data)) {
		imap_reply(s, "NO [CANNOT] Invalid mailbox name");
		goto out;
	}
	uids = live_uids(s, idx, n, &nuids, &gone);
	if (nuids == 0) {
		if (gone)
			imap_reply(s, "NO [EXPUNGEISSUED] Messages were "
			              "expunged");
		else
			imap_reply(s, "OK No messages");
		goto out;
	}
	r = mbox_copy(s->view.box, uids, nuids, (const char *)name.data, move,
	              &uidvalidity, &src, &dst, &ncopied, &err);
	if (r != 0) {
		if (r == MBOX_ERR_NOTFOUND)
			imap_reply(s, "NO [TRYCREATE] Mailbox does not exist");
		else
			imap_reply(s, "NO %s", imap_mbox_error(r));
		imap_store_error(s, r, &err);
		goto out;
	}
	if (ncopied > 0)
		copyuid_write(&code, uidvalidity, src, dst, ncopied);
	if (move) {
		if (ncopied > 0)
			imap_printf(s, "* OK [%.*s] Moved\r\n", (int)code.len,
			            (const char *)code.data);
		imap_view_mark_expunged(s, src, ncopied);
		imap_reply(s, "OK %s completed", c->name);
	} else if (ncopied > 0) {
		imap_reply(s, "OK [%.*s] %s completed", (int)code.len,
		           (const char *)code.data, c->name);
	} else {
		imap_reply(s, "OK %s completed", c->name);
	}
out:
	free(idx);
	free(uids);
	free(src);
	free(dst);
	buf_free(&name);
	buf_free(&code);
}

void
imap_cmd_copy(struct imap_session *s, const struct imap_command *c)
{
	copy_common(s, c, false);
}

void
imap_cmd_move(struct imap_session *s, const struct imap_command *c)
{
	copy_common(s, c, true);
}

/* ---- EXPUNGE / CLOSE / UNSELECT ---- */

void
imap_cmd_expunge(struct imap_session *s, const struct imap_command *c)
{
	uint32_t *idx = NULL, *uids = NULL, *xp = NULL;
	size_t n = 0, nuids = 0, nxp = 0;
	const char *error = NULL;
	char *err = NULL;
	bool gone;
	int r;

	if ((s->def->flags & IMAP_CMD_UID) != 0) {
		if (imap_view_resolve(s, &c->args[0], true, &idx, &n, &error) !=
		    0) {
			imap_reply(s, "BAD %s", error);
			return;
		}
		uids = live_uids(s, idx, n, &nuids, &gone);
		free(idx);
		if (nuids == 0) {
			free(uids);
			imap_reply(s, "OK %s completed", c->name);
			return;
		}
	}
	r = mbox_expunge(s->view.box, uids, nuids, &xp, &nxp, &err);
	free(uids);
	if (r != 0) {
		imap_reply(s, "NO %s", imap_mbox_error(r));
		imap_store_error(s, r, &err);
		return;
	}
	imap_view_mark_expunged(s, xp, nxp);
	free(xp);
	imap_reply(s, "OK %s completed", c->name);
}

static void
deselect(struct imap_session *s, bool expunge)
{
	uint32_t *xp = NULL;
	size_t nxp = 0;
	char *err = NULL;

	/* CLOSE removes \Deleted messages silently; it cannot fail. */
	if (expunge && !s->view.readonly) {
		int r = mbox_expunge(s->view.box, NULL, 0, &xp, &nxp, &err);

		imap_store_error(s, r, &err);
	}
	free(xp);
	imap_view_close(s);
	imap_saved_clear(s);
	imap_set_state(s, IMAP_STATE_AUTH);
}

void
imap_cmd_close(struct imap_session *s, const struct imap_command *c)
{
	(void)c;
	deselect(s, true);
	imap_reply(s, "OK CLOSE completed");
}

void
imap_cmd_unselect(struct imap_session *s, const struct imap_command *c)
{
	(void)c;
	deselect(s, false);
	imap_reply(s, "OK UNSELECT completed");
}
