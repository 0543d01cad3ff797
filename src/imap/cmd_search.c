/* IMAP SEARCH and UID SEARCH (ESEARCH, SEARCHRES, MODSEQ): metadata first,
 * a message is read only when a header or body key still decides.
 * SECURITY: program bounded by the parser; messages via src/imap/body.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"
#include "imap/body.h"
#include "mail/mailtext.h"
#include "imap/session_int.h"

#define DAY 86400
/* BODY and TEXT keys of one SEARCH narrowed by the store's text index;
 * any others read every message. */
#define SEARCH_TEXT_KEYS_MAX 8

/* The messages the text index says may match one BODY or TEXT key. */
struct search_cand {
	const struct imap_search_key *k;
	uint32_t *uids; /* ascending */
	size_t n;
	uint32_t below; /* UIDs from here on are not in the index yet */
};

/* The message being tested, its content read at most once. */
struct search_msg {
	struct imap_session *s;
	const struct imap_msg *m;
	uint32_t seq;
	bool loaded;
	bool readable;
	struct buf data;
	bool have_body;
	struct buf body; /* decoded text parts */
	bool have_hdrs;
	struct buf hdrs; /* every header field */
	bool cached_tried, cached_ok;
	struct buf cached; /* the cached header block (IMAP_CACHE_HEADERS) */
	struct buf tmp;
	struct search_cand cand[SEARCH_TEXT_KEYS_MAX];
	size_t ncand;
};

struct search_out {
	char tag[IMAP_TAG_MAX + 1];
	uint32_t *nums; /* sequence numbers or UIDs, ascending */
	size_t n;
	size_t pos;
	int phase;
	bool esearch;
	bool uid;
	uint32_t ret;
	bool modseq;
	uint64_t maxmod;
};

void
imap_saved_clear(struct imap_session *s)
{
	xfree(&s->saved);
	s->nsaved = 0;
}

static int64_t
day_of(int64_t t)
{
	int64_t r = t % DAY;

	if (r < 0)
		r += DAY;
	return t - r;
}

static bool
ci_contains(const char *hay, size_t hlen, const char *needle)
{
	size_t nlen = strlen(needle);

	if (nlen == 0)
		return true;
	if (nlen > hlen)
		return false;
	for (size_t i = 0; i + nlen <= hlen; i++)
		if (strncasecmp(hay + i, needle, nlen) == 0)
			return true;
	return false;
}

static bool
keyword_has(const char *keywords, const char *kw)
{
	size_t len = strlen(kw);
	const char *p = keywords;

	while (p != NULL && *p != '\0') {
		size_t l = strcspn(p, " ");

		if (l == len && strncasecmp(p, kw, len) == 0)
			return true;
		p += l;
		while (*p == ' ')
			p++;
	}
	return false;
}

/* Whether uid is in the ascending uids[0..n). */
static bool
uids_has(const uint32_t *uids, size_t n, uint32_t uid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (uids[mid] < uid)
			lo = mid + 1;
		else if (uids[mid] > uid)
			hi = mid;
		else
			return true;
	}
	return false;
}

static bool
saved_has(const struct imap_session *s, uint32_t uid)
{
	return uids_has(s->saved, s->nsaved, uid);
}

/* Ask the text index about each BODY and TEXT key (mbox_text_candidates):
 * a message it leaves out cannot match the key, one it lists is still
 * tested, so answers are the same with or without the index. */
static void
sm_text_candidates(struct search_msg *sm, const struct imap_search_key *k)
{
	struct search_cand *c;
	char *err = NULL;
	int r;

	for (size_t i = 0; i < k->nchildren; i++)
		sm_text_candidates(sm, &k->children[i]);
	if ((k->type != IMAP_SK_BODY && k->type != IMAP_SK_TEXT) ||
	    k->str == NULL || sm->ncand == SEARCH_TEXT_KEYS_MAX)
		return;
	c = &sm->cand[sm->ncand];
	r = mbox_text_candidates(sm->s->view.box, k->str, &c->uids, &c->n,
	                         &c->below, &err);
	if (r != MBOX_OK || c->below == 0) {
		imap_store_error(sm->s, r, &err); /* then every one is read */
		free(c->uids);
		*c = (struct search_cand){0};
		return;
	}
	c->k = k;
	sm->ncand++;
}

/* false when the text index rules the message out for key k. */
static bool
sm_text_candidate(const struct search_msg *sm, const struct imap_search_key *k)
{
	uint32_t uid = sm->m->uid;

	for (size_t i = 0; i < sm->ncand; i++) {
		const struct search_cand *c = &sm->cand[i];

		if (c->k == k)
			return uid >= c->below || uids_has(c->uids, c->n, uid);
	}
	return true;
}

static bool
sm_load(struct search_msg *sm)
{
	char *err = NULL;

	if (!sm->loaded) {
		sm->loaded = true;
		buf_reset(&sm->data);
		int r = mbox_read(sm->s->view.box, sm->m->uid, &sm->data, &err);

		sm->readable = r == 0;
		imap_store_error(sm->s, r, &err);
		/* The body functions want a terminated string. */
		if (sm->readable && buf_cstr(&sm->data) == NULL)
			sm->readable = false;
	}
	return sm->readable;
}

/* What a key on cached header fields looks at: the message when it is
 * read already, else the cached block when FETCH kept one. SEARCH does
 * not keep blocks: writing 100,000 of them made a first SEARCH of a big
 * mailbox four times slower than reading the files. */
static bool
sm_headers(struct search_msg *sm, const char **msg_r, size_t *len_r)
{
	if (!sm->loaded && !sm->cached_tried) {
		char *v;
		size_t len;

		sm->cached_tried = true;
		buf_reset(&sm->cached);
		if (mbox_cache_get(sm->s->view.box, sm->m->uid,
		                   IMAP_CACHE_HEADERS, &v, &len) == 1) {
			buf_append(&sm->cached, v, len);
			free(v);
			sm->cached_ok = buf_cstr(&sm->cached) != NULL;
		} else {
			(void)sm_load(sm);
		}
	}
	if (sm->loaded) {
		*msg_r = (const char *)sm->data.data;
		*len_r = sm->data.len;
		return sm->readable;
	}
	*msg_r = (const char *)sm->cached.data;
	*len_r = sm->cached.len;
	return sm->cached_ok;
}

static void
sm_reset(struct search_msg *sm, const struct imap_msg *m, uint32_t seq)
{
	sm->m = m;
	sm->seq = seq;
	sm->cached_tried = sm->cached_ok = false;
	sm->loaded = sm->readable = false;
	sm->have_body = sm->have_hdrs = false;
}

static int
sm_date_cmp(enum imap_search_key_type t, int64_t when, time_t date)
{
	int64_t d = day_of(when);

	switch (t) {
	case IMAP_SK_BEFORE:
	case IMAP_SK_SENTBEFORE:
		return d < (int64_t)date;
	case IMAP_SK_ON:
	case IMAP_SK_SENTON:
		return d == day_of((int64_t)date);
	default:
		return d >= (int64_t)date;
	}
}

/* 1 match, 0 no match, -1 undecided without reading the message. */
static int
eval(struct search_msg *sm, const struct imap_search_key *k, bool can_read)
{
	const struct imap_session *s = sm->s;
	const struct imap_msg *m = sm->m;
	const char *msg;
	size_t len;
	time_t sent;
	int r, acc;

	switch (k->type) {
	case IMAP_SK_ALL:
		return 1;
	case IMAP_SK_AND:
		acc = 1;
		for (size_t i = 0; i < k->nchildren; i++) {
			r = eval(sm, &k->children[i], can_read);
			if (r == 0)
				return 0;
			if (r < 0)
				acc = -1;
		}
		return acc;
	case IMAP_SK_OR:
		acc = 0;
		for (size_t i = 0; i < k->nchildren; i++) {
			r = eval(sm, &k->children[i], can_read);
			if (r == 1)
				return 1;
			if (r < 0)
				acc = -1;
		}
		return acc;
	case IMAP_SK_NOT:
		if (k->nchildren == 0)
			return 0;
		r = eval(sm, &k->children[0], can_read);
		return r < 0 ? -1 : !r;
	case IMAP_SK_SEQSET:
		return k->set.is_saved ? saved_has(s, m->uid)
		                       : imap_seqset_contains(&k->set, sm->seq);
	case IMAP_SK_UID:
		return k->set.is_saved ? saved_has(s, m->uid)
		                       : imap_seqset_contains(&k->set, m->uid);
	case IMAP_SK_FLAG:
		return (m->flags & k->flag) != 0;
	case IMAP_SK_NOFLAG:
		return (m->flags & k->flag) == 0;
	case IMAP_SK_KEYWORD:
		return keyword_has(m->keywords, k->str != NULL ? k->str : "");
	case IMAP_SK_UNKEYWORD:
		return !keyword_has(m->keywords, k->str != NULL ? k->str : "");
	case IMAP_SK_RECENT:
		return imap_msg_recent(s, m);
	case IMAP_SK_OLD:
		return !imap_msg_recent(s, m);
	case IMAP_SK_NEW:
		return imap_msg_recent(s, m) && (m->flags & MBOX_F_SEEN) == 0;
	case IMAP_SK_BEFORE:
	case IMAP_SK_ON:
	case IMAP_SK_SINCE:
		return sm_date_cmp(k->type, m->internaldate, k->date);
	case IMAP_SK_LARGER:
		return m->size > k->number;
	case IMAP_SK_SMALLER:
		return m->size < k->number;
	case IMAP_SK_MODSEQ:
		return m->modseq >= k->number;
	case IMAP_SK_SENTBEFORE:
	case IMAP_SK_SENTON:
	case IMAP_SK_SENTSINCE:
	case IMAP_SK_HEADER:
		break;
	case IMAP_SK_BODY:
	case IMAP_SK_TEXT:
		if (!sm_text_candidate(sm, k))
			return 0;
		break;
	}
	if (!can_read)
		return -1;
	if (k->type == IMAP_SK_HEADER
	        ? k->header != NULL && imap_hdr_cache_has(k->header)
	        : k->type != IMAP_SK_BODY && k->type != IMAP_SK_TEXT) {
		/* SENT*: Date is one of the cached fields. */
		if (!sm_headers(sm, &msg, &len))
			return 0;
	} else {
		if (!sm_load(sm))
			return 0;
		msg = (const char *)sm->data.data;
		len = sm->data.len;
	}
	switch (k->type) {
	case IMAP_SK_SENTBEFORE:
	case IMAP_SK_SENTON:
	case IMAP_SK_SENTSINCE:
		if (imap_body_sent_date(msg, len, &sent) != 0)
			return 0;
		return sm_date_cmp(k->type, (int64_t)sent, k->date);
	case IMAP_SK_HEADER:
		buf_reset(&sm->tmp);
		if (mailtext_header(msg, len, k->header, &sm->tmp) != 0)
			return 0;
		return ci_contains((const char *)sm->tmp.data, sm->tmp.len,
		                   k->str != NULL ? k->str : "");
	case IMAP_SK_TEXT:
		if (!sm->have_hdrs) {
			buf_reset(&sm->hdrs);
			(void)mailtext_header(msg, len, NULL, &sm->hdrs);
			sm->have_hdrs = true;
		}
		if (ci_contains((const char *)sm->hdrs.data, sm->hdrs.len,
		                k->str != NULL ? k->str : ""))
			return 1;
		__attribute__((fallthrough));
	case IMAP_SK_BODY:
		if (!sm->have_body) {
			buf_reset(&sm->body);
			mailtext_body(msg, len, &sm->body);
			sm->have_body = true;
		}
		return ci_contains((const char *)sm->body.data, sm->body.len,
		                   k->str != NULL ? k->str : "");
	default:
		return 0;
	}
}

/* '*' in the key's sets, and whether MODSEQ and sizes are used. */
static void
keys_resolve(const struct imap_view *v, struct imap_search_key *k,
             bool *modseq_r, bool *size_r)
{
	if (k->type == IMAP_SK_LARGER || k->type == IMAP_SK_SMALLER ||
	    k->type == IMAP_SK_BEFORE || k->type == IMAP_SK_ON ||
	    k->type == IMAP_SK_SINCE)
		*size_r = true; /* and the date: imap_view_sizes */
	if (k->type == IMAP_SK_SEQSET)
		imap_seqset_resolve(&k->set, (uint32_t)v->n);
	else if (k->type == IMAP_SK_UID)
		imap_seqset_resolve(&k->set,
		                    v->n > 0 ? v->msgs[v->n - 1].uid : 0);
	else if (k->type == IMAP_SK_MODSEQ)
		*modseq_r = true;
	for (size_t i = 0; i < k->nchildren; i++)
		keys_resolve(v, &k->children[i], modseq_r, size_r);
}

static void
search_out_free(void *ctx)
{
	struct search_out *o = ctx;

	free(o->nums);
	free(o);
}

static bool
search_step(struct imap_session *s)
{
	struct search_out *o = s->step_ctx;

	if (o->phase == 0) {
		if (o->esearch) {
			imap_printf(s, "* ESEARCH (TAG ");
			imap_write_string(s->out, o->tag, strlen(o->tag),
			                  false);
			imap_printf(s, ")%s", o->uid ? " UID" : "");
			if ((o->ret & IMAP_SEARCH_RET_MIN) != 0 && o->n > 0)
				imap_printf(s, " MIN %" PRIu32, o->nums[0]);
			if ((o->ret & IMAP_SEARCH_RET_MAX) != 0 && o->n > 0)
				imap_printf(s, " MAX %" PRIu32,
				            o->nums[o->n - 1]);
			if ((o->ret & IMAP_SEARCH_RET_COUNT) != 0)
				imap_printf(s, " COUNT %zu", o->n);
			if ((o->ret & IMAP_SEARCH_RET_ALL) != 0 && o->n > 0)
				imap_printf(s, " ALL ");
			else
				o->pos = o->n;
		} else {
			imap_printf(s, "* SEARCH");
		}
		o->phase = 1;
	}
	while (o->phase == 1 && o->pos < o->n) {
		size_t i = o->pos, j = i;

		if (imap_out_full(s))
			return false;
		if (!o->esearch) {
			imap_printf(s, " %" PRIu32, o->nums[i]);
			o->pos++;
			continue;
		}
		while (j + 1 < o->n && o->nums[j + 1] == o->nums[j] + 1)
			j++;
		imap_printf(s, "%s%" PRIu32, i > 0 ? "," : "", o->nums[i]);
		if (j > i)
			imap_printf(s, ":%" PRIu32, o->nums[j]);
		o->pos = j + 1;
	}
	if (o->modseq && o->n > 0)
		imap_printf(s,
		            o->esearch ? " MODSEQ %" PRIu64
		                       : " (MODSEQ %" PRIu64 ")",
		            o->maxmod);
	imap_printf(s, "\r\n");
	return true;
}

/* RFC 5182: what SAVE keeps (UIDs). */
static void
search_save(struct imap_session *s, const struct search_out *o,
            const uint32_t *uids)
{
	bool all =
	    (o->ret & (IMAP_SEARCH_RET_ALL | IMAP_SEARCH_RET_COUNT)) != 0 ||
	    (o->ret & (IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX)) == 0;

	imap_saved_clear(s);
	if (o->n == 0)
		return;
	if (all) {
		s->saved = xreallocarray(NULL, o->n, sizeof(*s->saved));
		memcpy(s->saved, uids, o->n * sizeof(*s->saved));
		s->nsaved = o->n;
		return;
	}
	s->saved = xreallocarray(NULL, 2, sizeof(*s->saved));
	if ((o->ret & IMAP_SEARCH_RET_MIN) != 0)
		s->saved[s->nsaved++] = uids[0];
	if ((o->ret & IMAP_SEARCH_RET_MAX) != 0 &&
	    (s->nsaved == 0 || uids[o->n - 1] != s->saved[0]))
		s->saved[s->nsaved++] = uids[o->n - 1];
}

void
imap_cmd_search(struct imap_session *s, const struct imap_command *c)
{
	const struct imap_view *v = &s->view;
	bool uid = (s->def->flags & IMAP_CMD_UID) != 0;
	struct imap_search_program prog;
	struct search_msg sm;
	struct search_out *o;
	uint32_t *uids = NULL;
	const char *error = NULL;
	bool modseq = false, size = false;
	char *err = NULL;
	int r;

	r = imap_search_parse(c->args, c->count, &prog, &error);
	if (r == -2) {
		imap_reply(s, "NO [BADCHARSET (UTF-8 US-ASCII)] %s",
		           error != NULL ? error : "Unsupported charset");
		return;
	}
	if (r != 0) {
		imap_reply(s, "BAD %s",
		           error != NULL ? error : "Invalid SEARCH");
		return;
	}
	keys_resolve(v, &prog.root, &modseq, &size);
	if (size && imap_view_sizes(s, NULL, 0, &err) != 0) {
		imap_store_error(s, MBOX_ERR_TEMP, &err);
		imap_search_program_clear(&prog);
		imap_reply(s, "NO [UNAVAILABLE] Messages could not be read, "
		              "try again later");
		return;
	}
	if (modseq)
		imap_enable_condstore(s);

	o = xcalloc(1, sizeof(*o));
	(void)snprintf(o->tag, sizeof(o->tag), "%s", s->tag);
	o->uid = uid;
	o->modseq = modseq;
	o->esearch = prog.esearch || s->rev2;
	o->ret = prog.esearch ? prog.ret : IMAP_SEARCH_RET_ALL;
	if (v->n > 0) {
		o->nums = xreallocarray(NULL, v->n, sizeof(*o->nums));
		uids = xreallocarray(NULL, v->n, sizeof(*uids));
	}
	memset(&sm, 0, sizeof(sm));
	sm.s = s;
	buf_init(&sm.data, 0);
	buf_init(&sm.body, 0);
	buf_init(&sm.hdrs, 0);
	buf_init(&sm.tmp, 0);
	buf_init(&sm.cached, 0);
	if (v->n > 0)
		sm_text_candidates(&sm, &prog.root);
	for (size_t i = 0; i < v->n; i++) {
		const struct imap_msg *m = &v->msgs[i];

		if ((m->flags & IMAP_MSG_EXPUNGED) != 0)
			continue;
		sm_reset(&sm, m, (uint32_t)(i + 1));
		r = eval(&sm, &prog.root, false);
		if (r < 0)
			r = eval(&sm, &prog.root, true);
		if (r != 1)
			continue;
		if (m->modseq > o->maxmod)
			o->maxmod = m->modseq;
		uids[o->n] = m->uid;
		o->nums[o->n++] = uid ? m->uid : (uint32_t)(i + 1);
	}
	buf_free(&sm.data);
	buf_free(&sm.body);
	buf_free(&sm.hdrs);
	buf_free(&sm.tmp);
	buf_free(&sm.cached);
	for (size_t i = 0; i < sm.ncand; i++)
		free(sm.cand[i].uids);
	imap_search_program_clear(&prog);

	if ((o->ret & IMAP_SEARCH_RET_SAVE) != 0)
		search_save(s, o, uids);
	free(uids);
	imap_reply(s, "OK SEARCH completed");
	/* SAVE alone answers no ESEARCH (RFC 5182 2.4). */
	if (o->esearch && (o->ret & ~(uint32_t)IMAP_SEARCH_RET_SAVE) == 0) {
		search_out_free(o);
		return;
	}
	imap_set_step(s, search_step, search_out_free, o);
}
