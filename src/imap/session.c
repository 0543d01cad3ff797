/* The IMAP session after login (session.h): state, command table, run loop
 * with output slices, the selected mailbox's view, the small commands.
 * SECURITY: client input only via src/imap/parser.c; 20 BADs end it. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"
#include "imap/session_int.h"

#define DEF_LINE_MAX 8192
#define DEF_LITERAL_MAX (64 * 1024)
#define DEF_APPEND_MAX (50 * 1024 * 1024)
#define DEF_IDLE_POLL_MS 1000
#define ID_FIELDS_MAX 30 /* RFC 2971: at most 30 pairs */
#define ID_VALUE_MAX 1024

void
imap_set_state(struct imap_session *s, enum imap_state st)
{
	/* No log line: the role logs per command (session.h). Only IDLE
	 * lets the view sleep: every other state may need all of it. */
	if (st != IMAP_STATE_IDLE && st != IMAP_STATE_LOGOUT &&
	    imap_view_wake(s) < 0) {
		imap_printf(s, "* BYE [UNAVAILABLE] Mailbox unavailable, try "
		               "again later\r\n");
		st = IMAP_STATE_LOGOUT;
	}
	s->state = st;
}

/* ---- output ---- */

static void imap_vprintf(struct buf *out, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
imap_vprintf(struct buf *out, const char *fmt, va_list ap)
{
	char line[512];
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(line, sizeof(line), fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(line)) {
		(void)buf_append(out, line, (size_t)n);
	} else {
		char *big = xvasprintf(fmt, ap);

		(void)buf_append_str(out, big);
		free(big);
	}
}

void
imap_printf(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	imap_vprintf(s->out, fmt, ap);
	va_end(ap);
}

void
imap_write(struct imap_session *s, const void *data, size_t len)
{
	(void)buf_append(s->out, data, len);
}

void
imap_reply(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	buf_reset(&s->tagged);
	va_start(ap, fmt);
	imap_vprintf(&s->tagged, fmt, ap);
	va_end(ap);
	s->tagged_bad =
	    s->tagged.len >= 3 && memcmp(s->tagged.data, "BAD", 3) == 0;
}

void
imap_set_step(struct imap_session *s, imap_step_fn *step,
              imap_step_free_fn *step_free, void *ctx)
{
	s->step = step;
	s->step_free = step_free;
	s->step_ctx = ctx;
}

bool
imap_out_full(const struct imap_session *s)
{
	return s->out->len - s->out_base >= IMAP_OUTPUT_SLICE;
}

void
imap_capability_string(const struct imap_session *s, struct buf *out)
{
	(void)buf_printf(
	    out,
	    "IMAP4rev1 IMAP4rev2 LITERAL+ ENABLE IDLE NAMESPACE ID "
	    "UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE "
	    "CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH "
	    "SEARCHRES BINARY CONDSTORE STATUS=SIZE APPENDLIMIT=%zu",
	    s->set.append_max);
}

void
imap_enable_condstore(struct imap_session *s)
{
	if (s->condstore)
		return;
	s->condstore = true;
	if (imap_selected(s))
		imap_printf(s, "* OK [HIGHESTMODSEQ %" PRIu64 "] Highest\r\n",
		            s->view.modseq);
}

const char *
imap_mbox_error(int err)
{
	switch (err) {
	case MBOX_ERR_NOTFOUND:
		return "[NONEXISTENT] No such mailbox";
	case MBOX_ERR_EXISTS:
		return "[ALREADYEXISTS] Mailbox already exists";
	case MBOX_ERR_BADNAME:
		return "[CANNOT] Invalid mailbox name";
	case MBOX_ERR_LIMIT:
		return "[LIMIT] Too many mailboxes, levels or keywords";
	case MBOX_ERR_CANNOT:
		return "[CANNOT] Operation not permitted";
	case MBOX_ERR_QUOTA:
		return "[OVERQUOTA] Quota exceeded";
	case MBOX_ERR_MODIFIED:
		return "[MODIFIED] Modified";
	case MBOX_ERR_TEMP:
	default:
		return "[UNAVAILABLE] Temporary failure, try again later";
	}
}

/* ---- mailbox names ---- */

int
imap_name_from_client(struct imap_session *s, const struct imap_arg *a,
                      struct buf *out)
{
	const char *str;
	size_t len;

	buf_reset(out);
	if (!imap_arg_astring(a, &str, &len) || memchr(str, '\0', len) != NULL)
		return -1;
	if (s->rev2) {
		if (buf_append(out, str, len) != 0)
			return -1;
	} else if (imap_mutf7_to_utf8(str, len, out) != 0) {
		return -1;
	}
	if (buf_cstr(out) == NULL)
		return -1;
	if (out->len >= 5 && strncasecmp((char *)out->data, "INBOX", 5) == 0 &&
	    (out->len == 5 || out->data[5] == MBOX_DELIM))
		memcpy(out->data, "INBOX", 5);
	return 0;
}

void
imap_write_mailbox(struct imap_session *s, const char *name)
{
	struct buf tmp;

	if (s->rev2) {
		imap_write_string(s->out, name, strlen(name), true);
		return;
	}
	buf_init(&tmp, 0);
	imap_utf8_to_mutf7(name, strlen(name), &tmp);
	imap_write_string(s->out, tmp.len > 0 ? (char *)tmp.data : "", tmp.len,
	                  false);
	buf_free(&tmp);
}

/* ---- the view of the selected mailbox ---- */

bool
imap_selected(const struct imap_session *s)
{
	return s->view.box != NULL;
}

size_t
imap_view_lower(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

ptrdiff_t
imap_view_find(const struct imap_view *v, uint32_t uid)
{
	size_t i = imap_view_lower(v, uid);

	return i < v->n && v->msgs[i].uid == uid ? (ptrdiff_t)i : -1;
}

bool
imap_msg_recent(const struct imap_session *s, const struct imap_msg *m)
{
	return m->uid >= s->view.recent_min;
}

size_t
imap_view_recent_count(const struct imap_session *s)
{
	const struct imap_view *v = &s->view;

	return v->n - imap_view_lower(v, v->recent_min);
}

static bool
kw_known(const struct imap_view *v, const char *kw, size_t len)
{
	for (size_t i = 0; i < v->nkw; i++)
		if (strlen(v->kw[i]) == len &&
		    strncasecmp(v->kw[i], kw, len) == 0)
			return true;
	return false;
}

/* Learn the keywords of one message (FLAGS lists them). */
static void
kw_note(struct imap_view *v, const char *keywords)
{
	const char *p = keywords;

	while (p != NULL && *p != '\0') {
		size_t len = strcspn(p, " ");

		if (len > 0 && !kw_known(v, p, len)) {
			v->kw =
			    xreallocarray(v->kw, v->nkw + 1, sizeof(*v->kw));
			v->kw[v->nkw++] = xstrndup(p, len);
			v->kw_changed = true;
		}
		p += len;
		while (*p == ' ')
			p++;
	}
}

static bool
kw_same(const char *a, const char *b)
{
	if (a == NULL)
		a = "";
	if (b == NULL)
		b = "";
	return strcmp(a, b) == 0;
}

/* The message array of a new view: a big one is filled at once. */
static struct imap_msg *
view_array(size_t n)
{
	return xmalloc_big(n, sizeof(struct imap_msg));
}

static void
view_push(struct imap_view *v, struct mbox_msg *src)
{
	struct imap_msg *m;

	if (v->n == v->cap) {
		v->cap = v->cap == 0 ? 64 : v->cap * 2;
		v->msgs = xreallocarray(v->msgs, v->cap, sizeof(*v->msgs));
	}
	m = &v->msgs[v->n++];
	m->uid = src->uid;
	m->flags = src->flags & IMAP_MSG_SYSFLAGS;
	m->modseq = src->modseq;
	m->internaldate = src->internaldate;
	m->size = src->size;
	if (!src->size_known)
		m->flags |= IMAP_MSG_SIZE_UNKNOWN;
	m->keywords = src->keywords;
	src->keywords = NULL;
	kw_note(v, m->keywords);
	if (m->uid >= v->uidnext)
		v->uidnext = m->uid + 1;
	if (m->modseq > v->modseq)
		v->modseq = m->modseq;
}

static void view_free(struct imap_view *v);

static void
view_push_cb(void *ctx, struct mbox_msg *m)
{
	view_push(ctx, m);
}

static void
mark_dirty(struct imap_view *v, struct imap_msg *m)
{
	if ((m->flags & IMAP_MSG_DIRTY) != 0)
		return;
	m->flags |= IMAP_MSG_DIRTY;
	if (v->nnotify == v->notify_cap) {
		v->notify_cap = v->notify_cap == 0 ? 64 : v->notify_cap * 2;
		v->notify =
		    xreallocarray(v->notify, v->notify_cap, sizeof(*v->notify));
	}
	v->notify[v->nnotify++] = m->uid;
}

static const struct imap_recent_mark *
recent_find(const struct imap_session *s, const char *name)
{
	for (size_t i = 0; i < s->nrecent; i++)
		if (strcmp(s->recent[i].name, name) == 0)
			return &s->recent[i];
	return NULL;
}

static void
recent_remember(struct imap_session *s, const struct imap_view *v)
{
	struct imap_recent_mark *r =
	    (struct imap_recent_mark *)recent_find(s, v->name);

	if (r == NULL) {
		if (s->nrecent == IMAP_RECENT_MEMORY_MAX) {
			/* Forget the oldest. */
			free(s->recent[0].name);
			memmove(&s->recent[0], &s->recent[1],
			        (s->nrecent - 1) * sizeof(*s->recent));
			s->nrecent--;
		}
		s->recent = xreallocarray(s->recent, s->nrecent + 1,
		                          sizeof(*s->recent));
		r = &s->recent[s->nrecent++];
		r->name = xstrdup(v->name);
	}
	r->uidvalidity = v->uidvalidity;
	r->uidnext = v->uidnext;
}

/* \Recent is approximated per session: a message is recent to this
 * session when it arrived after the session last had the mailbox selected
 * (or while it has it selected); on a first SELECT nothing is recent. */
int
imap_view_open(struct imap_session *s, const char *name, bool readonly,
               char **error_r)
{
	struct imap_view *v = &s->view;
	const struct imap_recent_mark *rm;
	const struct mbox_info *info;
	struct mbox *box = NULL;
	int r;

	r = mbox_open(s->store, name, readonly, &box, error_r);
	if (r != 0)
		return r;
	info = mbox_get_info(box);
	memset(v, 0, sizeof(*v));
	v->box = box;
	v->name = xstrdup(info->name != NULL ? info->name : name);
	v->readonly = readonly;
	v->uidvalidity = info->uidvalidity;
	v->uidnext = info->uidnext;
	v->modseq = info->highestmodseq;
	if (info->messages > 0) {
		v->cap = info->messages;
		v->msgs = view_array(v->cap);
	}
	r = mbox_messages_each(box, view_push_cb, v, error_r);
	if (r != 0) {
		view_free(v);
		return r;
	}
	rm = recent_find(s, v->name);
	if (rm != NULL && rm->uidvalidity == v->uidvalidity)
		v->recent_min = rm->uidnext;
	else
		v->recent_min = v->uidnext;
	v->kw_changed = false;
	v->told_exists = v->n;
	v->told_recent = imap_view_recent_count(s);
	return 0;
}

void
imap_view_close(struct imap_session *s)
{
	struct imap_view *v = &s->view;

	if (v->box == NULL)
		return;
	recent_remember(s, v);
	view_free(v);
}

static void
view_free(struct imap_view *v)
{
	mbox_close(&v->box);
	if (v->msgs != NULL)
		for (size_t i = 0; i < v->n; i++)
			free(v->msgs[i].keywords);
	free(v->msgs);
	free(v->asleep);
	for (size_t i = 0; i < v->nkw; i++)
		free(v->kw[i]);
	free(v->kw);
	free(v->notify);
	free(v->name);
	memset(v, 0, sizeof(*v));
}

void
imap_view_sync(struct imap_session *s)
{
	struct imap_view *v = &s->view;
	struct mbox_msg *ch = NULL;
	uint32_t *xp = NULL;
	size_t nch = 0, nxp = 0;
	uint64_t peek_modseq = 0;
	uint32_t peek_uidnext = 0;
	char *err = NULL;
	int r;

	/* Never while EXPUNGE responses are half written. */
	if (v->box == NULL || v->xp_active)
		return;
	if ((r = mbox_peek(s->store, v->name, &peek_modseq, &peek_uidnext,
	                   &err)) != 0) {
		imap_store_error(s, r, &err);
		return;
	}
	if (peek_modseq <= v->modseq && peek_uidnext <= v->uidnext)
		return;
	if (v->asleep != NULL) {
		/* Waking reads the whole mailbox: it is the sync. */
		if (imap_view_wake(s) < 0) {
			imap_printf(s, "* BYE [UNAVAILABLE] Mailbox "
			               "unavailable, try again later\r\n");
			imap_set_state(s, IMAP_STATE_LOGOUT);
			return;
		}
		if (peek_modseq > v->modseq)
			v->modseq = peek_modseq;
		if (peek_uidnext > v->uidnext)
			v->uidnext = peek_uidnext;
		return;
	}
	if ((r = mbox_changes(v->box, v->modseq, &ch, &nch, &xp, &nxp, &err)) !=
	    0) {
		imap_store_error(s, r, &err);
		return;
	}
	for (size_t i = 0; i < nch; i++) {
		struct mbox_msg *c = &ch[i];
		ptrdiff_t idx = imap_view_find(v, c->uid);

		if (c->modseq > peek_modseq)
			peek_modseq = c->modseq;
		if (idx < 0) {
			/* New mail: UIDs only grow. */
			if (v->n == 0 || c->uid > v->msgs[v->n - 1].uid)
				view_push(v, c);
			continue;
		}
		struct imap_msg *m = &v->msgs[idx];

		if ((m->flags & IMAP_MSG_EXPUNGED) != 0)
			continue;
		if ((m->flags & IMAP_MSG_SYSFLAGS) !=
		        (c->flags & IMAP_MSG_SYSFLAGS) ||
		    !kw_same(m->keywords, c->keywords)) {
			m->flags = (m->flags & ~IMAP_MSG_SYSFLAGS) |
			           (c->flags & IMAP_MSG_SYSFLAGS);
			free(m->keywords);
			m->keywords = c->keywords;
			c->keywords = NULL;
			kw_note(v, m->keywords);
			mark_dirty(v, m);
		}
		if (c->modseq > m->modseq)
			m->modseq = c->modseq;
	}
	imap_view_mark_expunged(s, xp, nxp);
	if (peek_modseq > v->modseq)
		v->modseq = peek_modseq;
	if (peek_uidnext > v->uidnext)
		v->uidnext = peek_uidnext;
	mbox_msg_free_list(&ch, nch);
	free(xp);
}

void
imap_view_sleep(struct imap_session *s)
{
	struct imap_view *v = &s->view;
	size_t nr = 0;

	if (v->box == NULL || v->asleep != NULL || v->xp_active ||
	    v->n_expunged > 0 || v->notify_pos < v->nnotify || v->kw_changed ||
	    v->told_exists != v->n)
		return;
	for (size_t i = 0; i < v->n; i++)
		if (i == 0 || v->msgs[i].uid != v->msgs[i - 1].uid + 1)
			nr++;
	/* One pair at least: an empty mailbox sleeps too. */
	v->asleep =
	    xreallocarray(NULL, nr > 0 ? nr : 1, 2 * sizeof(*v->asleep));
	nr = 0;
	for (size_t i = 0; i < v->n; i++) {
		if (i == 0 || v->msgs[i].uid != v->msgs[i - 1].uid + 1)
			v->asleep[2 * nr++] = v->msgs[i].uid;
		v->asleep[2 * nr - 1] = v->msgs[i].uid;
		free(v->msgs[i].keywords);
	}
	v->nasleep = nr;
	xfree(&v->msgs);
	v->cap = 0;
	v->nnotify = v->notify_pos = v->notify_cap = 0;
	xfree(&v->notify);
}

/* The view again from the store, as a sync would leave it: messages gone
 * meanwhile are marked expunged (still counted until reported), changed
 * ones (MODSEQ past the view's) are to be told, new ones appended. */
int
imap_view_wake(struct imap_session *s)
{
	struct imap_view *v = &s->view;
	struct mbox_msg *list = NULL;
	size_t n = 0, k = 0, want = v->n;
	uint64_t modseq = v->modseq;
	uint32_t uidnext = v->uidnext;
	char *err = NULL;
	int r;

	if (v->asleep == NULL)
		return 0;
	if ((r = mbox_messages(v->box, &list, &n, &err)) != 0) {
		imap_store_error(s, r, &err);
		return -1;
	}
	v->n = 0;
	v->cap = want > n ? want : n;
	v->msgs =
	    xreallocarray(NULL, v->cap > 0 ? v->cap : 1, sizeof(*v->msgs));
	for (size_t g = 0; g < v->nasleep; g++) {
		uint32_t last = v->asleep[2 * g + 1];

		for (uint32_t uid = v->asleep[2 * g];; uid++) {
			while (k < n && list[k].uid < uid)
				k++; /* not ours to tell (never seen) */
			if (k < n && list[k].uid == uid) {
				bool changed = list[k].modseq > modseq;

				view_push(v, &list[k++]);
				if (changed)
					mark_dirty(v, &v->msgs[v->n - 1]);
			} else {
				/* Gone: a placeholder keeps its number. */
				struct mbox_msg gone = {.uid = uid,
				                        .size_known = true};

				view_push(v, &gone);
				v->msgs[v->n - 1].flags |= IMAP_MSG_EXPUNGED;
				v->n_expunged++;
			}
			if (uid == last)
				break;
		}
	}
	for (; k < n; k++)
		if (list[k].uid >= uidnext)
			view_push(v, &list[k]);
	mbox_msg_free_list(&list, n);
	xfree(&v->asleep);
	v->nasleep = 0;
	return 0;
}

int
imap_view_sizes(struct imap_session *s, const uint32_t *idx, size_t n,
                char **error_r)
{
	struct imap_view *v = &s->view;
	size_t count = idx != NULL ? n : v->n, nu = 0;
	uint32_t *uids = NULL;
	size_t *at = NULL;
	uint64_t *sizes;
	int64_t *dates;
	int rc;

	for (size_t i = 0; i < count; i++) {
		size_t x = idx != NULL ? idx[i] : i;

		if ((v->msgs[x].flags & IMAP_MSG_SIZE_UNKNOWN) == 0)
			continue;
		if (uids == NULL) {
			uids = xreallocarray(NULL, count, sizeof(*uids));
			at = xreallocarray(NULL, count, sizeof(*at));
		}
		uids[nu] = v->msgs[x].uid;
		at[nu++] = x;
	}
	if (nu == 0)
		return 0;
	sizes = xreallocarray(NULL, nu, sizeof(*sizes));
	dates = xreallocarray(NULL, nu, sizeof(*dates));
	rc = mbox_sizes(v->box, uids, nu, sizes, dates, error_r);
	if (rc == 0) {
		for (size_t i = 0; i < nu; i++) {
			v->msgs[at[i]].size = sizes[i];
			v->msgs[at[i]].internaldate = dates[i];
			v->msgs[at[i]].flags &= ~IMAP_MSG_SIZE_UNKNOWN;
		}
	}
	free(sizes);
	free(dates);
	free(uids);
	free(at);
	return rc == 0 ? 0 : -1;
}

void
imap_view_mark_expunged(struct imap_session *s, const uint32_t *uids, size_t n)
{
	struct imap_view *v = &s->view;

	for (size_t i = 0; i < n; i++) {
		ptrdiff_t idx = imap_view_find(v, uids[i]);

		if (idx >= 0 && (v->msgs[idx].flags & IMAP_MSG_EXPUNGED) == 0) {
			v->msgs[idx].flags |= IMAP_MSG_EXPUNGED;
			v->n_expunged++;
		}
	}
}

void
imap_write_flags(struct imap_session *s, const struct imap_msg *m)
{
	imap_write(s, "FLAGS ", 6);
	imap_flags_write(s->out, m->flags & IMAP_MSG_SYSFLAGS, m->keywords,
	                 !s->rev2 && imap_msg_recent(s, m));
}

static void
write_flag_list(struct imap_session *s, bool wildcard)
{
	const struct imap_view *v = &s->view;

	imap_write(s, "(\\Answered \\Flagged \\Deleted \\Seen \\Draft", 41);
	for (size_t i = 0; i < v->nkw; i++)
		imap_printf(s, " %s", v->kw[i]);
	if (wildcard && v->nkw < MBOX_KEYWORDS_MAX)
		imap_write(s, " \\*", 3);
	imap_write(s, ")", 1);
}

void
imap_write_flags_responses(struct imap_session *s)
{
	imap_write(s, "* FLAGS ", 8);
	write_flag_list(s, false);
	imap_write(s, "\r\n", 2);
	if (s->view.readonly) {
		imap_printf(s,
		            "* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
	} else {
		imap_write(s, "* OK [PERMANENTFLAGS ", 21);
		write_flag_list(s, true);
		imap_printf(s, "] Flags permitted\r\n");
	}
}

/* Write the EXPUNGE responses, lowest first (each one renumbers the
 * messages after it), then drop the messages from the view. */
static bool
notify_expunges(struct imap_session *s)
{
	struct imap_view *v = &s->view;
	size_t j = 0;

	if (!v->xp_active) {
		v->xp_active = true;
		v->xp_pos = 0;
		v->xp_removed = 0;
	}
	for (; v->xp_pos < v->n; v->xp_pos++) {
		if ((v->msgs[v->xp_pos].flags & IMAP_MSG_EXPUNGED) == 0)
			continue;
		if (imap_out_full(s))
			return false;
		imap_printf(s, "* %zu EXPUNGE\r\n",
		            v->xp_pos + 1 - v->xp_removed);
		v->xp_removed++;
	}
	for (size_t i = 0; i < v->n; i++) {
		if ((v->msgs[i].flags & IMAP_MSG_EXPUNGED) != 0)
			free(v->msgs[i].keywords);
		else
			v->msgs[j++] = v->msgs[i];
	}
	v->n = j;
	v->n_expunged = 0;
	v->told_exists = v->n;
	v->told_recent = imap_view_recent_count(s);
	v->xp_active = false;
	return true;
}

void
imap_view_flags_notify(struct imap_session *s)
{
	if (s->view.box != NULL && s->view.kw_changed) {
		imap_write_flags_responses(s);
		s->view.kw_changed = false;
	}
}

bool
imap_view_notify(struct imap_session *s, bool allow_expunge)
{
	struct imap_view *v = &s->view;

	if (v->box == NULL)
		return true;
	imap_view_flags_notify(s);
	if (v->n > v->told_exists && !v->xp_active) {
		size_t recent = imap_view_recent_count(s);

		imap_printf(s, "* %zu EXISTS\r\n", v->n);
		v->told_exists = v->n;
		if (!s->rev2 && recent != v->told_recent)
			imap_printf(s, "* %zu RECENT\r\n", recent);
		v->told_recent = recent;
	}
	if (allow_expunge && (v->n_expunged > 0 || v->xp_active) &&
	    !notify_expunges(s))
		return false;
	while (v->notify_pos < v->nnotify) {
		uint32_t uid = v->notify[v->notify_pos];
		ptrdiff_t idx;
		struct imap_msg *m;

		if (imap_out_full(s))
			return false;
		v->notify_pos++;
		idx = imap_view_find(v, uid);
		if (idx < 0)
			continue;
		m = &v->msgs[idx];
		if ((m->flags & IMAP_MSG_DIRTY) == 0 ||
		    (m->flags & IMAP_MSG_EXPUNGED) != 0)
			continue;
		m->flags &= ~IMAP_MSG_DIRTY;
		imap_printf(s, "* %td FETCH (", idx + 1);
		imap_write_flags(s, m);
		if (s->condstore)
			imap_printf(s, " UID %" PRIu32 " MODSEQ (%" PRIu64 ")",
			            m->uid, m->modseq);
		imap_write(s, ")\r\n", 3);
	}
	v->nnotify = v->notify_pos = 0;
	return true;
}

static void
idx_push(uint32_t **v, size_t *n, size_t *cap, uint32_t x)
{
	if (*n == *cap) {
		*cap = *cap == 0 ? 64 : *cap * 2;
		*v = xreallocarray(*v, *cap, sizeof(**v));
	}
	(*v)[(*n)++] = x;
}

int
imap_view_resolve(struct imap_session *s, const struct imap_arg *a, bool uid,
                  uint32_t **idx_r, size_t *n_r, const char **error_r)
{
	const struct imap_view *v = &s->view;
	struct imap_seqset set;
	uint32_t *idx = NULL;
	size_t n = 0, cap = 0;

	*idx_r = NULL;
	*n_r = 0;
	if (a->type != IMAP_ARG_ATOM ||
	    imap_seqset_parse(a->str, a->len, &set) != 0) {
		*error_r = "Invalid sequence set";
		return -1;
	}
	if (set.is_saved) {
		for (size_t i = 0; i < s->nsaved; i++) {
			ptrdiff_t k = imap_view_find(v, s->saved[i]);

			if (k >= 0)
				idx_push(&idx, &n, &cap, (uint32_t)k);
		}
	} else if (uid) {
		imap_seqset_resolve(&set, v->n > 0 ? v->msgs[v->n - 1].uid : 0);
		for (size_t r = 0; r < set.n; r++) {
			for (size_t i = imap_view_lower(v, set.ranges[r].lo);
			     i < v->n && v->msgs[i].uid <= set.ranges[r].hi;
			     i++)
				idx_push(&idx, &n, &cap, (uint32_t)i);
		}
	} else {
		/* RFC 9051 9: "*" names no message in an empty mailbox. */
		bool star = set.n > 0 && set.ranges[set.n - 1].hi == UINT32_MAX;

		imap_seqset_resolve(&set, (uint32_t)v->n);
		for (size_t r = 0; r < set.n || (star && v->n == 0); r++) {
			if ((star && v->n == 0) || set.ranges[r].lo == 0 ||
			    set.ranges[r].hi > v->n) {
				imap_seqset_clear(&set);
				free(idx);
				*error_r = "Invalid message sequence number";
				return -1;
			}
		}
		for (size_t r = 0; r < set.n; r++)
			for (uint64_t i = set.ranges[r].lo;
			     i <= set.ranges[r].hi; i++)
				idx_push(&idx, &n, &cap, (uint32_t)(i - 1));
	}
	imap_seqset_clear(&set);
	*idx_r = idx;
	*n_r = n;
	return 0;
}

void
imap_write_set(struct buf *out, const uint32_t *v, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t j = i;

		while (j + 1 < n && v[j + 1] == v[j] + 1)
			j++;
		if (i > 0)
			(void)buf_append_byte(out, ',');
		if (j > i)
			(void)buf_printf(out, "%" PRIu32 ":%" PRIu32, v[i],
			                 v[j]);
		else
			(void)buf_printf(out, "%" PRIu32, v[i]);
		i = j + 1;
	}
}

/* ---- small commands ---- */

static void
cmd_capability(struct imap_session *s, const struct imap_command *c)
{
	(void)c;
	imap_write(s, "* CAPABILITY ", 13);
	imap_capability_string(s, s->out);
	imap_write(s, "\r\n", 2);
	imap_reply(s, "OK Capability completed");
}

static void
cmd_noop(struct imap_session *s, const struct imap_command *c)
{
	imap_reply(s, "OK %s completed", c->name);
}

static void
cmd_logout(struct imap_session *s, const struct imap_command *c)
{
	(void)c;
	imap_printf(s, "* BYE Logging out\r\n");
	imap_reply(s, "OK Logout completed");
}

static void
cmd_already(struct imap_session *s, const struct imap_command *c)
{
	(void)c;
	imap_reply(s, "BAD Already logged in");
}

static void
cmd_enable(struct imap_session *s, const struct imap_command *c)
{
	bool condstore = false, rev2 = false;

	for (size_t i = 0; i < c->count; i++) {
		if (c->args[i].type != IMAP_ARG_ATOM) {
			imap_reply(s, "BAD Invalid capability name");
			return;
		}
		if (imap_arg_atom_is(&c->args[i], "CONDSTORE"))
			condstore = !s->condstore;
		else if (imap_arg_atom_is(&c->args[i], "IMAP4rev2"))
			rev2 = !s->rev2;
	}
	imap_write(s, "* ENABLED", 9);
	if (condstore) {
		imap_write(s, " CONDSTORE", 10);
		s->condstore = true;
	}
	if (rev2) {
		imap_write(s, " IMAP4rev2", 10);
		s->rev2 = true;
	}
	imap_write(s, "\r\n", 2);
	imap_reply(s, "OK Enabled");
}

static void
cmd_id(struct imap_session *s, const struct imap_command *c)
{
	const struct imap_arg *a = &c->args[0];

	if (a->type == IMAP_ARG_LIST) {
		if (a->count % 2 != 0 || a->count > 2 * ID_FIELDS_MAX) {
			imap_reply(s, "BAD Invalid ID list");
			return;
		}
		for (size_t i = 0; i < a->count; i++) {
			const struct imap_arg *f = &a->list[i];

			if (f->type == IMAP_ARG_LIST ||
			    (f->type == IMAP_ARG_NIL && i % 2 == 0) ||
			    f->len > ID_VALUE_MAX) {
				imap_reply(s, "BAD Invalid ID list");
				return;
			}
		}
	} else if (a->type != IMAP_ARG_NIL) {
		imap_reply(s, "BAD Invalid ID argument");
		return;
	}
	imap_printf(s, "* ID (\"name\" \"tern\")\r\n");
	imap_reply(s, "OK ID completed");
}

static void
cmd_namespace(struct imap_session *s, const struct imap_command *c)
{
	(void)c;
	imap_printf(s, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
	imap_reply(s, "OK Namespace completed");
}

static void
cmd_idle(struct imap_session *s, const struct imap_command *c)
{
	(void)c;
	s->idle_return = s->state;
	imap_set_state(s, IMAP_STATE_IDLE);
	imap_printf(s, "+ idling\r\n");
	imap_view_sync(s);
	(void)imap_view_notify(s, true);
}

#define AS (IMAP_CMD_AUTH | IMAP_CMD_SELECTED)
#define SEL IMAP_CMD_SELECTED
#define NOX IMAP_CMD_NO_EXPUNGE
#define UID IMAP_CMD_UID
#define WR IMAP_CMD_WRITE
#define ANY 255

static const struct imap_cmd_def commands[] = {
    {"CAPABILITY", AS, 0, 0, cmd_capability},
    {"NOOP", AS, 0, 0, cmd_noop},
    {"LOGOUT", AS, 0, 0, cmd_logout},
    {"ENABLE", AS, 1, ANY, cmd_enable},
    {"ID", AS, 1, 1, cmd_id},
    {"NAMESPACE", AS, 0, 0, cmd_namespace},
    {"IDLE", AS, 0, 0, cmd_idle},
    {"SELECT", AS, 1, 2, imap_cmd_select},
    {"EXAMINE", AS, 1, 2, imap_cmd_examine},
    {"CREATE", AS, 1, 2, imap_cmd_create},
    {"DELETE", AS, 1, 1, imap_cmd_delete},
    {"RENAME", AS, 2, 2, imap_cmd_rename},
    {"SUBSCRIBE", AS, 1, 1, imap_cmd_subscribe},
    {"UNSUBSCRIBE", AS, 1, 1, imap_cmd_unsubscribe},
    {"LIST", AS, 2, 5, imap_cmd_list},
    {"LSUB", AS, 2, 2, imap_cmd_lsub},
    {"STATUS", AS, 2, 2, imap_cmd_status},
    {"APPEND", AS, 2, 4, imap_cmd_append},
    {"CHECK", SEL, 0, 0, cmd_noop},
    {"CLOSE", SEL, 0, 0, imap_cmd_close},
    {"UNSELECT", SEL, 0, 0, imap_cmd_unselect},
    {"EXPUNGE", SEL | WR, 0, 0, imap_cmd_expunge},
    {"UID EXPUNGE", SEL | UID | WR, 1, 1, imap_cmd_expunge},
    {"SEARCH", SEL | NOX, 1, ANY, imap_cmd_search},
    {"UID SEARCH", SEL | UID, 1, ANY, imap_cmd_search},
    {"FETCH", SEL | NOX, 2, 3, imap_cmd_fetch},
    {"UID FETCH", SEL | UID, 2, 3, imap_cmd_fetch},
    {"STORE", SEL | NOX | WR, 3, ANY, imap_cmd_store},
    {"UID STORE", SEL | UID | WR, 3, ANY, imap_cmd_store},
    {"COPY", SEL, 2, 2, imap_cmd_copy},
    {"UID COPY", SEL | UID, 2, 2, imap_cmd_copy},
    {"MOVE", SEL | WR, 2, 2, imap_cmd_move},
    {"UID MOVE", SEL | UID | WR, 2, 2, imap_cmd_move},
    {"LOGIN", AS, 0, ANY, cmd_already},
    {"AUTHENTICATE", AS, 0, ANY, cmd_already},
    {"STARTTLS", AS, 0, ANY, cmd_already},
};

#undef AS
#undef SEL
#undef NOX
#undef UID
#undef WR
#undef ANY

static const struct imap_cmd_def *
cmd_find(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* ---- the session ---- */

struct imap_session *
imap_session_new(const char *user, struct mbox_user *store,
                 const struct imap_session_settings *set)
{
	struct imap_session *s = xcalloc(1, sizeof(*s));
	struct imap_parser_limits lim;

	s->user = xstrdup(user != NULL ? user : "");
	s->store = store;
	s->set = *set;
	if (s->set.line_max == 0)
		s->set.line_max = DEF_LINE_MAX;
	if (s->set.literal_max == 0)
		s->set.literal_max = DEF_LITERAL_MAX;
	if (s->set.append_max == 0)
		s->set.append_max = DEF_APPEND_MAX;
	if (s->set.idle_poll_ms == 0)
		s->set.idle_poll_ms = DEF_IDLE_POLL_MS;
	s->set.hostname = NULL; /* not kept: the caller owns it */
	memset(&lim, 0, sizeof(lim));
	lim.line_max = s->set.line_max;
	lim.literal_max = s->set.literal_max;
	lim.append_max = s->set.append_max;
	lim.command_max =
	    s->set.append_max + 2 * s->set.line_max + s->set.literal_max;
	lim.depth_max = 16;
	lim.args_max = 10000;
	s->parser = imap_parser_new(&lim);
	buf_init(&s->tagged, 0);
	s->state = IMAP_STATE_AUTH;
	return s;
}

static void
step_drop(struct imap_session *s)
{
	if (s->step_free != NULL && s->step_ctx != NULL)
		s->step_free(s->step_ctx);
	s->step = NULL;
	s->step_free = NULL;
	s->step_ctx = NULL;
}

void
imap_session_free(struct imap_session **sp)
{
	struct imap_session *s = *sp;

	if (s == NULL)
		return;
	step_drop(s);
	imap_view_close(s);
	for (size_t i = 0; i < s->nrecent; i++)
		free(s->recent[i].name);
	free(s->recent);
	imap_saved_clear(s);
	imap_parser_free(&s->parser);
	buf_free(&s->tagged);
	free(s->store_error);
	mbox_user_close(&s->store);
	free(s->user);
	free(s);
	*sp = NULL;
}

/* In IDLE with everything told: the view sleeps and index.db is closed
 * until a poll's stat(2)s see a change (mbox_quiet). */
static void
idle_rest(struct imap_session *s)
{
	imap_view_sleep(s);
	if (s->view.box != NULL && s->view.asleep == NULL) {
		mbox_user_trim(s->store, MBOX_TRIM_STATEMENTS);
		return;
	}
	mbox_user_trim(s->store, MBOX_TRIM_CLOSE);
	if (s->view.box != NULL)
		mbox_quiet_mark(s->view.box);
}

void
imap_store_error(struct imap_session *s, int r, char **err)
{
	if (r == MBOX_ERR_TEMP && *err != NULL) {
		free(s->store_error);
		s->store_error = *err;
		*err = NULL;
	}
	xfree(err);
}

char *
imap_session_take_error(struct imap_session *s)
{
	char *e = s->store_error;

	s->store_error = NULL;
	return e;
}

void
imap_session_trim(struct imap_session *s)
{
	/* Statements are made again per command (tens of microseconds each),
	 * so only a session in IDLE gives them back. */
	if (s->state == IMAP_STATE_IDLE)
		idle_rest(s);
	else
		mbox_user_trim(s->store, MBOX_TRIM_CACHE);
}

void
imap_session_login_reply(struct imap_session *s, const char *tag,
                         struct buf *out)
{
	(void)buf_printf(out, "%s OK [CAPABILITY ", tag);
	imap_capability_string(s, out);
	(void)buf_append_str(out, "] Logged in\r\n");
}

static void
cmd_begin(struct imap_session *s, const struct imap_command *c)
{
	const struct imap_cmd_def *def = cmd_find(c->name);

	s->busy = true;
	(void)snprintf(s->tag, sizeof(s->tag), "%s", c->tag);
	buf_reset(&s->tagged);
	s->tagged_bad = false;
	s->synced = false;
	s->def = def;
	if (def == NULL) {
		imap_reply(s, "BAD Unknown command");
		return;
	}
	if (s->state == IMAP_STATE_AUTH && (def->flags & IMAP_CMD_AUTH) == 0) {
		imap_reply(s, "BAD No mailbox selected");
		return;
	}
	if (c->count < def->args_min ||
	    (def->args_max != 255 && c->count > def->args_max)) {
		imap_reply(s, "BAD Wrong number of arguments");
		return;
	}
	if ((def->flags & IMAP_CMD_WRITE) != 0 && s->view.readonly) {
		imap_reply(s, "NO Mailbox is read-only");
		return;
	}
	imap_reply(s, "OK Completed");
	def->run(s, c);
}

/* Run the rest of the command in progress: its own slices, then what the
 * client must hear about the mailbox, then the tagged reply. */
static bool
cmd_continue(struct imap_session *s)
{
	bool allow;

	if (s->step != NULL) {
		if (!s->step(s))
			return false;
		step_drop(s);
	}
	if (s->state == IMAP_STATE_IDLE)
		return true;
	allow = s->def == NULL || (s->def->flags & IMAP_CMD_NO_EXPUNGE) == 0;
	if (imap_selected(s) && !s->synced && !s->tagged_bad)
		imap_view_sync(s);
	s->synced = true;
	if (!imap_view_notify(s, allow))
		return false;
	imap_printf(s, "%s %.*s\r\n", s->tag, (int)s->tagged.len,
	            (const char *)s->tagged.data);
	if (s->tagged_bad)
		s->bad_count++;
	else
		s->bad_count = 0;
	s->busy = false;
	if (s->def != NULL && s->def->run == cmd_logout) {
		imap_set_state(s, IMAP_STATE_LOGOUT);
	} else if (s->bad_count >= IMAP_BAD_MAX) {
		imap_printf(s, "* BYE Too many invalid commands\r\n");
		imap_set_state(s, IMAP_STATE_LOGOUT);
	}
	s->def = NULL;
	return true;
}

static void
parse_error(struct imap_session *s)
{
	const char *tag = imap_parser_error_tag(s->parser);
	const char *err = imap_parser_error(s->parser);

	/* RFC 7889: an APPEND over APPENDLIMIT is NO [TOOBIG]. */
	if (strncmp(err, "[TOOBIG]", 8) == 0) {
		imap_printf(s, "%s NO %s\r\n", tag, err);
		s->bad_count = 0;
		return;
	}
	imap_printf(s, "%s BAD %s\r\n", tag, err);
	if (++s->bad_count >= IMAP_BAD_MAX) {
		imap_printf(s, "* BYE Too many invalid commands\r\n");
		imap_set_state(s, IMAP_STATE_LOGOUT);
	}
}

/* IDLE: one line arrived. */
static void
idle_line(struct imap_session *s, const char *line, size_t len)
{
	if (len == 4 && strncasecmp(line, "DONE", 4) == 0)
		imap_reply(s, "OK Idle completed");
	else
		imap_reply(s, "BAD Expected DONE");
	imap_set_state(s, imap_selected(s) ? IMAP_STATE_SELECTED
	                                   : IMAP_STATE_AUTH);
}

enum imap_run_result
imap_session_run(struct imap_session *s, const uint8_t *input, size_t len,
                 size_t *consumed_r, struct buf *out)
{
	enum imap_parse_result r;
	size_t off = 0, c;

	s->out = out;
	s->out_base = out->len;
	for (;;) {
		*consumed_r = off;
		if (s->state == IMAP_STATE_LOGOUT)
			return IMAP_RUN_CLOSE;
		if (s->busy && s->state != IMAP_STATE_IDLE) {
			if (!cmd_continue(s))
				return IMAP_RUN_OUTPUT;
			continue;
		}
		if (imap_out_full(s))
			return IMAP_RUN_OUTPUT;
		if (s->state == IMAP_STATE_IDLE) {
			r = imap_parser_feed_line(s->parser, input + off,
			                          len - off, &c);
			off += c;
			if (r == IMAP_PARSE_NEED_MORE) {
				*consumed_r = off;
				return IMAP_RUN_IDLE;
			}
			if (r == IMAP_PARSE_COMMAND) {
				size_t llen;
				const char *line =
				    imap_parser_line(s->parser, &llen);

				idle_line(s, line, llen);
			} else if (r == IMAP_PARSE_BAD) {
				idle_line(s, "", 0);
			} else {
				imap_printf(s, "* BYE %s\r\n",
				            imap_parser_error(s->parser));
				imap_set_state(s, IMAP_STATE_LOGOUT);
			}
			continue;
		}
		r = imap_parser_feed(s->parser, input + off, len - off, &c);
		off += c;
		switch (r) {
		case IMAP_PARSE_NEED_MORE:
			*consumed_r = off;
			return IMAP_RUN_INPUT;
		case IMAP_PARSE_CONTINUE:
			imap_printf(s, "+ OK\r\n");
			break;
		case IMAP_PARSE_BAD:
			parse_error(s);
			break;
		case IMAP_PARSE_FATAL:
			imap_printf(s, "* BYE %s\r\n",
			            imap_parser_error(s->parser));
			imap_set_state(s, IMAP_STATE_LOGOUT);
			break;
		case IMAP_PARSE_COMMAND:
			cmd_begin(s, imap_parser_command(s->parser));
			break;
		}
	}
}

void
imap_session_idle_poll(struct imap_session *s, struct buf *out)
{
	s->out = out;
	s->out_base = out->len;
	if (s->state != IMAP_STATE_IDLE || !imap_selected(s))
		return;
	if (s->view.asleep != NULL && mbox_quiet(s->view.box))
		return; /* nothing changed: not even SQLite is needed */
	imap_view_sync(s);
	/* What does not fit in this slice goes out on the next poll. */
	(void)imap_view_notify(s, true);
	if (s->state == IMAP_STATE_IDLE)
		idle_rest(s);
}

void
imap_session_shutdown(struct imap_session *s, struct buf *out)
{
	(void)buf_append_str(out, "* BYE Server shutting down\r\n");
	imap_set_state(s, IMAP_STATE_LOGOUT);
}

const char *
imap_session_selected(const struct imap_session *s)
{
	return s->view.box != NULL ? s->view.name : NULL;
}
