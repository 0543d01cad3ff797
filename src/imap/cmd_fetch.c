/* IMAP FETCH and UID FETCH: metadata from the view, ENVELOPE/BODYSTRUCTURE
 * cached in the index, sections and BINARY from the message.
 * SECURITY: messages are untrusted (src/imap/body.c); one at a time. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "imap/body.h"
#include "imap/session_int.h"

#define CACHE_ENVELOPE "imap.envelope"
#define CACHE_BODY "imap.body"
#define CACHE_BODYSTRUCTURE "imap.bodystructure"

struct fetch_ctx {
	struct imap_fetch_spec spec;
	uint32_t *idx; /* view indices, ascending */
	size_t n;
	size_t pos;
	bool uid_cmd;
	bool has_uid;
	bool has_flags;
	bool has_modseq;
	bool has_content; /* an item needs the message itself */
	bool hdr_only;    /* …only cached header fields of it */
	bool expunge_issued;
	bool unknown_cte;
	bool failed;
	char **cached; /* per item: ENVELOPE/BODY/BODYSTRUCTURE text */
	size_t *cached_len;
	struct buf msg;
	struct buf scratch;
	struct buf bin;
};

static void
fetch_ctx_free(void *arg)
{
	struct fetch_ctx *f = arg;

	imap_fetch_spec_clear(&f->spec);
	free(f->idx);
	free(f->cached);
	free(f->cached_len);
	buf_free(&f->msg);
	buf_free(&f->scratch);
	buf_free(&f->bin);
	free(f);
}

static const char *
cache_field(enum imap_fetch_item_type t)
{
	switch (t) {
	case IMAP_FETCH_ENVELOPE:
		return CACHE_ENVELOPE;
	case IMAP_FETCH_BODY:
		return CACHE_BODY;
	case IMAP_FETCH_BODYSTRUCTURE:
		return CACHE_BODYSTRUCTURE;
	default:
		return NULL;
	}
}

static bool
item_needs_message(enum imap_fetch_item_type t)
{
	switch (t) {
	case IMAP_FETCH_SECTION:
	case IMAP_FETCH_BINARY:
	case IMAP_FETCH_BINARY_SIZE:
	case IMAP_FETCH_RFC822:
	case IMAP_FETCH_RFC822_HEADER:
	case IMAP_FETCH_RFC822_TEXT:
		return true;
	default:
		return false;
	}
}

static bool
item_sets_seen(const struct imap_fetch_item *it)
{
	switch (it->type) {
	case IMAP_FETCH_SECTION:
	case IMAP_FETCH_BINARY:
	case IMAP_FETCH_RFC822:
	case IMAP_FETCH_RFC822_TEXT:
		return !it->peek;
	default:
		return false;
	}
}

static void
write_literal(struct imap_session *s, const char *data, size_t len, bool allow8)
{
	if (allow8 && memchr(data, '\0', len) != NULL)
		imap_printf(s, "~{%zu}\r\n", len);
	else
		imap_printf(s, "{%zu}\r\n", len);
	imap_write(s, data, len);
}

/* <offset.count> of a section. */
static void
partial(const struct imap_section *sec, const char **data, size_t *len)
{
	if (!sec->partial)
		return;
	if (sec->offset >= *len) {
		*len = 0;
		return;
	}
	*data += sec->offset;
	*len -= sec->offset;
	if (sec->count < *len)
		*len = sec->count;
}

/* Read the message (once per message). 0, or -1 (the message is
 * skipped; the reason is noted for the tagged reply). */
static int
load_message(struct imap_session *s, struct fetch_ctx *f,
             const struct imap_msg *m)
{
	char *err = NULL;
	int r;

	buf_reset(&f->msg);
	r = mbox_read(s->view.box, m->uid, &f->msg, &err);
	imap_store_error(s, r, &err);
	if (r == 0 && buf_cstr(&f->msg) != NULL)
		return 0;
	if (r == MBOX_ERR_NOTFOUND)
		f->expunge_issued = true;
	else
		f->failed = true;
	return -1;
}

static void
write_section(struct imap_session *s, struct fetch_ctx *f,
              const struct imap_fetch_item *it)
{
	const char *msg = (const char *)f->msg.data;
	const char *data = "";
	size_t len = 0;

	buf_reset(&f->scratch);
	if (imap_body_section(msg, f->msg.len, &it->section, &f->scratch, &data,
	                      &len) != 0) {
		data = "";
		len = 0;
	}
	partial(&it->section, &data, &len);
	imap_printf(s, "%s ", it->name);
	write_literal(s, data, len, false);
}

static void
write_binary(struct imap_session *s, struct fetch_ctx *f,
             const struct imap_fetch_item *it)
{
	const char *data;
	size_t len;
	int r;

	buf_reset(&f->bin);
	r = imap_body_binary((const char *)f->msg.data, f->msg.len,
	                     it->section.part, it->section.nparts, &f->bin);
	if (r == -2)
		f->unknown_cte = true;
	if (it->type == IMAP_FETCH_BINARY_SIZE) {
		imap_printf(s, "%s %zu", it->name, r == 0 ? f->bin.len : 0);
		return;
	}
	if (r != 0) {
		imap_printf(s, "%s NIL", it->name);
		return;
	}
	data = f->bin.len > 0 ? (const char *)f->bin.data : "";
	len = f->bin.len;
	partial(&it->section, &data, &len);
	imap_printf(s, "%s ", it->name);
	write_literal(s, data, len, true);
}

static void
write_structure(struct imap_session *s, struct fetch_ctx *f, size_t k,
                const struct imap_msg *m)
{
	const struct imap_fetch_item *it = &f->spec.items[k];
	const char *msg = (const char *)f->msg.data;

	imap_printf(s, "%s ",
	            it->type == IMAP_FETCH_ENVELOPE ? "ENVELOPE"
	            : it->type == IMAP_FETCH_BODY   ? "BODY"
	                                            : "BODYSTRUCTURE");
	if (f->cached[k] != NULL) {
		imap_write(s, f->cached[k], f->cached_len[k]);
		return;
	}
	buf_reset(&f->scratch);
	if (it->type == IMAP_FETCH_ENVELOPE)
		imap_body_envelope(msg, f->msg.len, &f->scratch);
	else
		imap_body_structure(msg, f->msg.len,
		                    it->type == IMAP_FETCH_BODYSTRUCTURE,
		                    &f->scratch);
	imap_write(s, f->scratch.data, f->scratch.len);
	mbox_cache_set(s->view.box, m->uid, cache_field(it->type),
	               (const char *)f->scratch.data, f->scratch.len);
}

/* The cached header block as the message, when there is one. */
static bool
headers_cached(struct imap_session *s, struct fetch_ctx *f,
               const struct imap_msg *m)
{
	char *v;
	size_t len;

	if (mbox_cache_get(s->view.box, m->uid, IMAP_CACHE_HEADERS, &v, &len) !=
	    1)
		return false;
	buf_reset(&f->msg);
	buf_append(&f->msg, v, len);
	free(v);
	return buf_cstr(&f->msg) != NULL;
}

static void
headers_cache(struct imap_session *s, struct fetch_ctx *f,
              const struct imap_msg *m)
{
	buf_reset(&f->scratch);
	imap_hdr_cache_block((const char *)f->msg.data, f->msg.len,
	                     &f->scratch);
	if (f->scratch.len > 0 && f->scratch.len <= IMAP_HDR_CACHE_MAX)
		mbox_cache_set(s->view.box, m->uid, IMAP_CACHE_HEADERS,
		               (const char *)f->scratch.data, f->scratch.len);
}

static void
fetch_one(struct imap_session *s, struct fetch_ctx *f, size_t i)
{
	struct imap_msg *m = &s->view.msgs[i];
	bool need_msg = f->has_content, first = true, flags_out = false;
	bool full = false; /* an ENVELOPE… to make */

	if (f->spec.changedsince != 0 && m->modseq <= f->spec.changedsince)
		return;
	for (size_t k = 0; k < f->spec.n; k++) {
		const char *field = cache_field(f->spec.items[k].type);

		f->cached[k] = NULL;
		if (field == NULL)
			continue;
		if (mbox_cache_get(s->view.box, m->uid, field, &f->cached[k],
		                   &f->cached_len[k]) != 1) {
			f->cached[k] = NULL;
			full = true;
		}
	}
	if (need_msg && !full && f->hdr_only &&
	    (m->flags & IMAP_MSG_EXPUNGED) == 0 && headers_cached(s, f, m))
		need_msg = false;
	else
		need_msg |= full;
	if (need_msg && ((m->flags & IMAP_MSG_EXPUNGED) != 0 ||
	                 load_message(s, f, m) != 0)) {
		if ((m->flags & IMAP_MSG_EXPUNGED) != 0)
			f->expunge_issued = true;
		goto out;
	}
	if (need_msg && f->hdr_only)
		headers_cache(s, f, m);

	imap_printf(s, "* %zu FETCH (", i + 1);
	if (f->uid_cmd && !f->has_uid) {
		imap_printf(s, "UID %" PRIu32, m->uid);
		first = false;
	}
	for (size_t k = 0; k < f->spec.n; k++) {
		const struct imap_fetch_item *it = &f->spec.items[k];

		if (!first)
			imap_write(s, " ", 1);
		first = false;
		switch (it->type) {
		case IMAP_FETCH_UID:
			imap_printf(s, "UID %" PRIu32, m->uid);
			break;
		case IMAP_FETCH_FLAGS:
			imap_write_flags(s, m);
			flags_out = true;
			break;
		case IMAP_FETCH_INTERNALDATE:
			imap_printf(s, "INTERNALDATE ");
			imap_datetime_write(s->out, (time_t)m->internaldate, 0);
			break;
		case IMAP_FETCH_RFC822_SIZE:
			imap_printf(s, "RFC822.SIZE %" PRIu64, m->size);
			break;
		case IMAP_FETCH_ENVELOPE:
		case IMAP_FETCH_BODY:
		case IMAP_FETCH_BODYSTRUCTURE:
			write_structure(s, f, k, m);
			break;
		case IMAP_FETCH_SECTION:
		case IMAP_FETCH_RFC822:
		case IMAP_FETCH_RFC822_HEADER:
		case IMAP_FETCH_RFC822_TEXT:
			write_section(s, f, it);
			break;
		case IMAP_FETCH_BINARY:
		case IMAP_FETCH_BINARY_SIZE:
			write_binary(s, f, it);
			break;
		case IMAP_FETCH_MODSEQ:
			imap_printf(s, "MODSEQ (%" PRIu64 ")", m->modseq);
			break;
		}
	}
	/* Flags that changed (\Seen set by this FETCH, or another session)
	 * are reported with the message. */
	if (!flags_out && (m->flags & IMAP_MSG_DIRTY) != 0) {
		imap_write(s, " ", 1);
		imap_write_flags(s, m);
		flags_out = true;
	}
	if (flags_out && s->condstore && !f->has_modseq)
		imap_printf(s, " MODSEQ (%" PRIu64 ")", m->modseq);
	if (flags_out)
		m->flags &= ~IMAP_MSG_DIRTY;
	imap_write(s, ")\r\n", 3);
out:
	for (size_t k = 0; k < f->spec.n; k++)
		xfree(&f->cached[k]);
}

static bool
fetch_step(struct imap_session *s)
{
	struct fetch_ctx *f = s->step_ctx;

	while (f->pos < f->n) {
		if (imap_out_full(s))
			return false;
		fetch_one(s, f, f->idx[f->pos++]);
	}
	if (f->unknown_cte)
		imap_reply(s, "NO [UNKNOWN-CTE] Unknown content transfer "
		              "encoding");
	else if (f->failed)
		imap_reply(s, "NO [UNAVAILABLE] Some messages could not be "
		              "read, try again later");
	else if (f->expunge_issued)
		imap_reply(s, "NO [EXPUNGEISSUED] Some messages were expunged");
	return true;
}

/* Set \Seen before the answer, so that the FLAGS in it are true. */
static void
fetch_set_seen(struct imap_session *s, struct fetch_ctx *f)
{
	struct imap_view *v = &s->view;
	uint32_t *uids, *failed = NULL;
	size_t n = 0, nfailed = 0;
	char *err = NULL;

	uids = xreallocarray(NULL, f->n, sizeof(*uids));
	for (size_t k = 0; k < f->n; k++) {
		const struct imap_msg *m = &v->msgs[f->idx[k]];

		if ((m->flags & (MBOX_F_SEEN | IMAP_MSG_EXPUNGED)) != 0)
			continue;
		if (f->spec.changedsince != 0 &&
		    m->modseq <= f->spec.changedsince)
			continue;
		uids[n++] = m->uid;
	}
	if (n > 0) {
		int r = mbox_store_flags(v->box, uids, n, MBOX_FLAGS_ADD,
		                         MBOX_F_SEEN, NULL, 0, &failed,
		                         &nfailed, &err);

		if (r != 0)
			imap_store_error(s, r, &err);
		free(failed);
		imap_view_sync(s);
		imap_view_flags_notify(s);
	}
	free(uids);
}

void
imap_cmd_fetch(struct imap_session *s, const struct imap_command *c)
{
	struct fetch_ctx *f = xcalloc(1, sizeof(*f));
	const char *error = NULL;
	bool seen = false, size = false, hdr_only = true;

	f->uid_cmd = (s->def->flags & IMAP_CMD_UID) != 0;
	if (imap_view_resolve(s, &c->args[0], f->uid_cmd, &f->idx, &f->n,
	                      &error) != 0 ||
	    imap_fetch_parse(c->args + 1, c->count - 1, &f->spec, &error) !=
	        0) {
		imap_reply(s, "BAD %s", error);
		fetch_ctx_free(f);
		return;
	}
	if (f->spec.vanished) {
		imap_reply(s, "BAD VANISHED needs QRESYNC");
		fetch_ctx_free(f);
		return;
	}
	for (size_t k = 0; k < f->spec.n; k++) {
		const struct imap_fetch_item *it = &f->spec.items[k];

		f->has_uid |= it->type == IMAP_FETCH_UID;
		f->has_flags |= it->type == IMAP_FETCH_FLAGS;
		f->has_modseq |= it->type == IMAP_FETCH_MODSEQ;
		f->has_content |= item_needs_message(it->type);
		hdr_only &= !item_needs_message(it->type) ||
		            (it->type == IMAP_FETCH_SECTION &&
		             imap_hdr_cache_covers(&it->section));
		/* Both unknown until read for mail other tools left. */
		size |= it->type == IMAP_FETCH_RFC822_SIZE ||
		        it->type == IMAP_FETCH_INTERNALDATE;
		seen |= item_sets_seen(it);
	}
	f->hdr_only = f->has_content && hdr_only;
	if (size) {
		char *err = NULL;

		if (imap_view_sizes(s, f->idx, f->n, &err) != 0) {
			imap_store_error(s, MBOX_ERR_TEMP, &err);
			imap_reply(s, "NO [UNAVAILABLE] Some messages could "
			              "not be read, try again later");
			fetch_ctx_free(f);
			return;
		}
	}
	if (f->has_modseq)
		imap_enable_condstore(s);
	f->cached = xcalloc(f->spec.n, sizeof(*f->cached));
	f->cached_len = xcalloc(f->spec.n, sizeof(*f->cached_len));
	buf_init(&f->msg, 0);
	buf_init(&f->scratch, 0);
	buf_init(&f->bin, 0);
	if (seen && !s->view.readonly && f->n > 0)
		fetch_set_seen(s, f);
	imap_reply(s, "OK %s completed", c->name);
	imap_set_step(s, fetch_step, fetch_ctx_free, f);
}
