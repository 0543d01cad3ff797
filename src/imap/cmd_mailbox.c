/* IMAP mailbox commands: SELECT EXAMINE CREATE DELETE RENAME (UN)SUBSCRIBE
 * LIST (LIST-EXTENDED, SPECIAL-USE, LIST-STATUS) LSUB STATUS.
 * SECURITY: client names are checked (mbox_name_valid) before the store. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"
#include "imap/session_int.h"

/* STATUS items. */
enum status_item {
	ST_MESSAGES = 1u << 0,
	ST_UIDNEXT = 1u << 1,
	ST_UIDVALIDITY = 1u << 2,
	ST_UNSEEN = 1u << 3,
	ST_DELETED = 1u << 4,
	ST_SIZE = 1u << 5,
	ST_HIGHESTMODSEQ = 1u << 6,
	ST_RECENT = 1u << 7,
};

static const struct {
	const char *name;
	unsigned bit;
} status_items[] = {
    {"MESSAGES", ST_MESSAGES},
    {"UIDNEXT", ST_UIDNEXT},
    {"UIDVALIDITY", ST_UIDVALIDITY},
    {"UNSEEN", ST_UNSEEN},
    {"DELETED", ST_DELETED},
    {"SIZE", ST_SIZE},
    {"HIGHESTMODSEQ", ST_HIGHESTMODSEQ},
    {"RECENT", ST_RECENT},
};

/* A name argument: NO (already answered) when it is not valid. */
static int
name_arg(struct imap_session *s, const struct imap_arg *a, struct buf *name,
         const char *code)
{
	if (imap_name_from_client(s, a, name) != 0 ||
	    !mbox_name_valid((const char *)name->data)) {
		imap_reply(s, "NO %s", code);
		return -1;
	}
	return 0;
}

static void
reply_mbox_error(struct imap_session *s, int r, char **err)
{
	imap_reply(s, "NO %s", imap_mbox_error(r));
	imap_store_error(s, r, err);
}

/* ---- SELECT / EXAMINE ---- */

static void
select_common(struct imap_session *s, const struct imap_command *c,
              bool readonly)
{
	struct imap_view *v = &s->view;
	bool condstore = false;
	struct buf name;
	char *err = NULL;
	size_t unseen = 0;
	int r;

	if (c->count == 2) {
		const struct imap_arg *p = &c->args[1];

		if (p->type != IMAP_ARG_LIST) {
			imap_reply(s, "BAD Invalid SELECT parameters");
			return;
		}
		for (size_t i = 0; i < p->count; i++) {
			if (!imap_arg_atom_is(&p->list[i], "CONDSTORE")) {
				imap_reply(s, "BAD Unknown SELECT parameter");
				return;
			}
			condstore = true;
		}
	}
	/* A SELECT deselects first, whether it succeeds or not. */
	if (imap_selected(s)) {
		imap_view_close(s);
		imap_saved_clear(s);
		if (s->rev2)
			imap_printf(
			    s, "* OK [CLOSED] Previous mailbox closed\r\n");
		imap_set_state(s, IMAP_STATE_AUTH);
	}
	buf_init(&name, 0);
	if (name_arg(s, &c->args[0], &name, "[NONEXISTENT] No such mailbox") !=
	    0)
		goto out;
	r = imap_view_open(s, (const char *)name.data, readonly, &err);
	if (r != 0) {
		if (r == MBOX_ERR_BADNAME)
			r = MBOX_ERR_NOTFOUND;
		reply_mbox_error(s, r, &err);
		goto out;
	}
	imap_set_state(s, IMAP_STATE_SELECTED);
	s->synced = true;
	if (condstore)
		s->condstore = true;
	for (size_t i = 0; i < v->n; i++) {
		if ((v->msgs[i].flags & MBOX_F_SEEN) == 0) {
			unseen = i + 1;
			break;
		}
	}
	if (s->rev2) {
		imap_printf(s, "* %zu EXISTS\r\n", v->n);
		imap_write_flags_responses(s);
	} else {
		imap_write_flags_responses(s);
		imap_printf(s, "* %zu EXISTS\r\n", v->n);
		imap_printf(s, "* %zu RECENT\r\n", imap_view_recent_count(s));
		if (unseen > 0)
			imap_printf(s, "* OK [UNSEEN %zu] First unseen\r\n",
			            unseen);
	}
	imap_printf(s, "* OK [UIDVALIDITY %" PRIu32 "] UIDs valid\r\n",
	            v->uidvalidity);
	imap_printf(s, "* OK [UIDNEXT %" PRIu32 "] Predicted next UID\r\n",
	            v->uidnext);
	imap_printf(s, "* OK [HIGHESTMODSEQ %" PRIu64 "] Highest\r\n",
	            v->modseq);
	if (s->rev2) {
		imap_printf(s, "* LIST () \"/\" ");
		imap_write_mailbox(s, v->name);
		imap_printf(s, "\r\n");
	}
	imap_reply(s, "OK [%s] %s completed",
	           readonly ? "READ-ONLY" : "READ-WRITE",
	           readonly ? "EXAMINE" : "SELECT");
out:
	buf_free(&name);
}

void
imap_cmd_select(struct imap_session *s, const struct imap_command *c)
{
	select_common(s, c, false);
}

void
imap_cmd_examine(struct imap_session *s, const struct imap_command *c)
{
	select_common(s, c, true);
}

/* ---- CREATE / DELETE / RENAME / (UN)SUBSCRIBE ---- */

static const struct {
	const char *attr;
	enum mbox_special special;
} special_names[] = {
    {"\\Drafts", MBOX_SPECIAL_DRAFTS},   {"\\Sent", MBOX_SPECIAL_SENT},
    {"\\Junk", MBOX_SPECIAL_JUNK},       {"\\Trash", MBOX_SPECIAL_TRASH},
    {"\\Archive", MBOX_SPECIAL_ARCHIVE},
};

static const char *
special_attr(enum mbox_special sp)
{
	for (size_t i = 0; i < sizeof(special_names) / sizeof(special_names[0]);
	     i++)
		if (special_names[i].special == sp)
			return special_names[i].attr;
	return NULL;
}

/* CREATE parameters "(USE (\Sent))" (RFC 6154). 0, or -1 answered. */
static int
create_params(struct imap_session *s, const struct imap_arg *p,
              enum mbox_special *special_r)
{
	*special_r = MBOX_SPECIAL_NONE;
	if (p->type != IMAP_ARG_LIST || p->count % 2 != 0) {
		imap_reply(s, "BAD Invalid CREATE parameters");
		return -1;
	}
	for (size_t i = 0; i < p->count; i += 2) {
		const struct imap_arg *use = &p->list[i + 1];

		if (!imap_arg_atom_is(&p->list[i], "USE") ||
		    use->type != IMAP_ARG_LIST) {
			imap_reply(s, "BAD Unknown CREATE parameter");
			return -1;
		}
		if (use->count > 1) {
			imap_reply(s, "NO [USEATTR] One special use at most");
			return -1;
		}
		for (size_t j = 0; j < use->count; j++) {
			size_t k;

			for (k = 0; k < sizeof(special_names) /
			                    sizeof(special_names[0]);
			     k++)
				if (imap_arg_atom_is(&use->list[j],
				                     special_names[k].attr))
					break;
			if (k ==
			    sizeof(special_names) / sizeof(special_names[0])) {
				imap_reply(s, "NO [USEATTR] Unknown special "
				              "use");
				return -1;
			}
			*special_r = special_names[k].special;
		}
	}
	return 0;
}

void
imap_cmd_create(struct imap_session *s, const struct imap_command *c)
{
	enum mbox_special special = MBOX_SPECIAL_NONE;
	struct buf name;
	char *err = NULL;
	int r;

	if (c->count == 2 && create_params(s, &c->args[1], &special) != 0)
		return;
	buf_init(&name, 0);
	if (imap_name_from_client(s, &c->args[0], &name) != 0) {
		imap_reply(s, "NO [CANNOT] Invalid mailbox name");
		goto out;
	}
	/* "CREATE a/b/" creates a/b (RFC 9051 6.3.4). */
	if (name.len > 1 && name.data[name.len - 1] == MBOX_DELIM)
		name.data[--name.len] = '\0';
	if (!mbox_name_valid((const char *)name.data)) {
		imap_reply(s, "NO [CANNOT] Invalid mailbox name");
		goto out;
	}
	r = mbox_create(s->store, (const char *)name.data, special, &err);
	if (r != 0)
		reply_mbox_error(s, r, &err);
	else
		imap_reply(s, "OK CREATE completed");
out:
	buf_free(&name);
}

void
imap_cmd_delete(struct imap_session *s, const struct imap_command *c)
{
	struct buf name;
	char *err = NULL;
	int r;

	buf_init(&name, 0);
	if (name_arg(s, &c->args[0], &name, "[NONEXISTENT] No such mailbox") !=
	    0)
		goto out;
	r = mbox_delete(s->store, (const char *)name.data, &err);
	if (r == MBOX_ERR_CANNOT &&
	    strcmp((const char *)name.data, "INBOX") != 0) {
		imap_reply(s, "NO [HASCHILDREN] Mailbox has children");
		xfree(&err);
	} else if (r != 0) {
		reply_mbox_error(s, r, &err);
	} else {
		/* The selected mailbox is gone: back to authenticated. */
		if (imap_selected(s) &&
		    strcmp(s->view.name, (const char *)name.data) == 0) {
			imap_view_close(s);
			imap_saved_clear(s);
			imap_set_state(s, IMAP_STATE_AUTH);
			imap_printf(s, "* OK [CLOSED] Mailbox deleted\r\n");
		}
		imap_reply(s, "OK DELETE completed");
	}
out:
	buf_free(&name);
}

void
imap_cmd_rename(struct imap_session *s, const struct imap_command *c)
{
	struct buf from, to;
	char *err = NULL;
	int r;

	buf_init(&from, 0);
	buf_init(&to, 0);
	if (name_arg(s, &c->args[0], &from, "[NONEXISTENT] No such mailbox") !=
	        0 ||
	    name_arg(s, &c->args[1], &to, "[CANNOT] Invalid mailbox name") != 0)
		goto out;
	r = mbox_rename(s->store, (const char *)from.data,
	                (const char *)to.data, &err);
	if (r != 0) {
		reply_mbox_error(s, r, &err);
		goto out;
	}
	/* The selected mailbox (or one below it) now has another name. */
	if (imap_selected(s) && strcmp(s->view.name, "INBOX") != 0) {
		size_t fl = from.len;
		const char *cur = s->view.name;

		if (strncmp(cur, (const char *)from.data, fl) == 0 &&
		    (cur[fl] == '\0' || cur[fl] == MBOX_DELIM)) {
			char *n =
			    xasprintf("%s%s", (const char *)to.data, cur + fl);

			free(s->view.name);
			s->view.name = n;
		}
	}
	imap_reply(s, "OK RENAME completed");
out:
	buf_free(&from);
	buf_free(&to);
}

static void
subscribe_common(struct imap_session *s, const struct imap_command *c, bool on)
{
	struct buf name;
	char *err = NULL;
	int r;

	buf_init(&name, 0);
	if (name_arg(s, &c->args[0], &name, "[CANNOT] Invalid mailbox name") !=
	    0)
		goto out;
	r = mbox_subscribe(s->store, (const char *)name.data, on, &err);
	if (r != 0)
		reply_mbox_error(s, r, &err);
	else
		imap_reply(s, "OK %s completed",
		           on ? "SUBSCRIBE" : "UNSUBSCRIBE");
out:
	buf_free(&name);
}

void
imap_cmd_subscribe(struct imap_session *s, const struct imap_command *c)
{
	subscribe_common(s, c, true);
}

void
imap_cmd_unsubscribe(struct imap_session *s, const struct imap_command *c)
{
	subscribe_common(s, c, false);
}

/* ---- STATUS ---- */

static int
status_items_parse(const struct imap_arg *a, unsigned *mask_r)
{
	*mask_r = 0;
	if (a->type != IMAP_ARG_LIST || a->count == 0)
		return -1;
	for (size_t i = 0; i < a->count; i++) {
		size_t k;

		for (k = 0; k < sizeof(status_items) / sizeof(status_items[0]);
		     k++)
			if (imap_arg_atom_is(&a->list[i], status_items[k].name))
				break;
		if (k == sizeof(status_items) / sizeof(status_items[0]))
			return -1;
		*mask_r |= status_items[k].bit;
	}
	return 0;
}

/* \Recent of another mailbox is 0 (see imap_view_open). */
static void
status_write(struct imap_session *s, const struct mbox_info *info,
             unsigned mask)
{
	bool first = true;

	imap_printf(s, "* STATUS ");
	imap_write_mailbox(s, info->name);
	imap_printf(s, " (");
	for (size_t k = 0; k < sizeof(status_items) / sizeof(status_items[0]);
	     k++) {
		uint64_t v = 0;

		if ((mask & status_items[k].bit) == 0)
			continue;
		switch (status_items[k].bit) {
		case ST_MESSAGES:
			v = info->messages;
			break;
		case ST_UIDNEXT:
			v = info->uidnext;
			break;
		case ST_UIDVALIDITY:
			v = info->uidvalidity;
			break;
		case ST_UNSEEN:
			v = info->unseen;
			break;
		case ST_DELETED:
			v = info->deleted;
			break;
		case ST_SIZE:
			v = info->size;
			break;
		case ST_HIGHESTMODSEQ:
			v = info->highestmodseq;
			break;
		case ST_RECENT:
			if (imap_selected(s) &&
			    strcmp(s->view.name, info->name) == 0)
				v = imap_view_recent_count(s);
			break;
		}
		imap_printf(s, "%s%s %" PRIu64, first ? "" : " ",
		            status_items[k].name, v);
		first = false;
	}
	imap_printf(s, ")\r\n");
}

void
imap_cmd_status(struct imap_session *s, const struct imap_command *c)
{
	struct mbox_info info;
	unsigned mask;
	struct buf name;
	char *err = NULL;
	int r;

	if (status_items_parse(&c->args[1], &mask) != 0) {
		imap_reply(s, "BAD Invalid STATUS items");
		return;
	}
	buf_init(&name, 0);
	if (name_arg(s, &c->args[0], &name, "[NONEXISTENT] No such mailbox") !=
	    0)
		goto out;
	memset(&info, 0, sizeof(info));
	/* SIZE may not be less than the sum of the RFC822.SIZEs (RFC 8438). */
	r = (mask & ST_SIZE) != 0
	        ? mbox_sizes_settle(s->store, (const char *)name.data, &err)
	        : 0;
	if (r == 0)
		r = mbox_status(s->store, (const char *)name.data, &info, &err);
	if (r != 0) {
		reply_mbox_error(s, r, &err);
		goto out;
	}
	if ((mask & ST_HIGHESTMODSEQ) != 0)
		imap_enable_condstore(s);
	if (info.name == NULL)
		info.name = xstrdup((const char *)name.data);
	status_write(s, &info, mask);
	mbox_info_clear(&info);
	imap_reply(s, "OK STATUS completed");
out:
	buf_free(&name);
}

/* ---- LIST / LSUB ---- */

enum list_sel {
	LSEL_SUBSCRIBED = 1u << 0,
	LSEL_RECURSIVE = 1u << 1,
	LSEL_SPECIAL = 1u << 2,
	LSEL_REMOTE = 1u << 3,
};

enum list_ret {
	LRET_SUBSCRIBED = 1u << 0,
	LRET_CHILDREN = 1u << 1,
	LRET_SPECIAL = 1u << 2,
	LRET_STATUS = 1u << 3,
};

struct lentry {
	char *name;
	bool exists;
	bool subscribed;
	bool has_children;     /* an existing mailbox below */
	bool child_subscribed; /* a subscribed name below */
	enum mbox_special special;
};

struct list_req {
	unsigned sel, ret, status_mask;
	bool extended;
	bool lsub;
	char **patterns; /* UTF-8, reference prepended */
	size_t npatterns;
};

static int
lentry_cmp(const void *a, const void *b)
{
	const struct lentry *x = a, *y = b;
	bool xi = strcmp(x->name, "INBOX") == 0;
	bool yi = strcmp(y->name, "INBOX") == 0;

	if (xi || yi)
		return xi && yi ? 0 : xi ? -1 : 1;
	return strcmp(x->name, y->name);
}

static struct lentry *
lentry_find(struct lentry *v, size_t n, const char *name)
{
	struct lentry key = {.name = (char *)name};

	return bsearch(&key, v, n, sizeof(*v), lentry_cmp);
}

/* Every mailbox, subscription and (missing) parent, sorted, unique. */
static int
list_entries(struct imap_session *s, struct lentry **v_r, size_t *n_r)
{
	struct mbox_info *infos = NULL;
	struct lentry *v = NULL;
	size_t ninfos = 0, n = 0, cap = 0, j;
	char *err = NULL;
	int r;

	r = mbox_list(s->store, false, &infos, &ninfos, &err);
	if (r != 0) {
		imap_store_error(s, r, &err);
		return r;
	}
	for (size_t i = 0; i < ninfos; i++) {
		const char *nm = infos[i].name;

		for (const char *p = strchr(nm, MBOX_DELIM); p != NULL;
		     p = strchr(p + 1, MBOX_DELIM)) {
			if (n == cap) {
				cap = cap == 0 ? 64 : cap * 2;
				v = xreallocarray(v, cap, sizeof(*v));
			}
			memset(&v[n], 0, sizeof(v[n]));
			v[n++].name = xstrndup(nm, (size_t)(p - nm));
		}
		if (n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		v[n].name = xstrdup(nm);
		v[n].exists = infos[i].exists;
		v[n].subscribed = infos[i].subscribed;
		v[n].has_children = infos[i].has_children;
		v[n].child_subscribed = false;
		v[n].special = infos[i].special;
		n++;
	}
	mbox_info_free_list(&infos, ninfos);
	if (n == 0) {
		*v_r = NULL;
		*n_r = 0;
		return 0;
	}
	qsort(v, n, sizeof(*v), lentry_cmp);
	/* Merge duplicates (a parent added above and its own row). */
	j = 0;
	for (size_t i = 1; i < n; i++) {
		if (strcmp(v[i].name, v[j].name) == 0) {
			v[j].exists |= v[i].exists;
			v[j].subscribed |= v[i].subscribed;
			v[j].has_children |= v[i].has_children;
			if (v[i].special != MBOX_SPECIAL_NONE)
				v[j].special = v[i].special;
			free(v[i].name);
		} else {
			v[++j] = v[i];
		}
	}
	n = j + 1;
	/* What lies below each name. */
	for (size_t i = 0; i < n; i++) {
		char *tmp;

		if (!v[i].exists && !v[i].subscribed)
			continue;
		tmp = xstrdup(v[i].name);
		for (char *p = strrchr(tmp, MBOX_DELIM); p != NULL;
		     p = strrchr(tmp, MBOX_DELIM)) {
			struct lentry *parent;

			*p = '\0';
			parent = lentry_find(v, n, tmp);
			if (parent != NULL) {
				parent->has_children |= v[i].exists;
				parent->child_subscribed |= v[i].subscribed;
			}
		}
		free(tmp);
	}
	*v_r = v;
	*n_r = n;
	return 0;
}

/* Whether name matches pattern ('*' anything, '%' anything but the
 * delimiter). A row of booleans over the name, one pass per pattern
 * character: no backtracking. */
static bool
list_match(const char *pat, const char *name)
{
	bool a[MBOX_NAME_MAX + 2], b[MBOX_NAME_MAX + 2];
	bool *cur = a, *next = b;
	size_t nlen = strlen(name);

	if (nlen > MBOX_NAME_MAX)
		return false;
	memset(a, 0, sizeof(a));
	cur[0] = true;
	for (const char *p = pat; *p != '\0'; p++) {
		bool any = false, run = false;
		bool *t;

		if (*p == '*' && p[1] == '*')
			continue;
		for (size_t j = 0; j <= nlen; j++) {
			if (*p == '*') {
				run |= cur[j];
				next[j] = run;
			} else if (*p == '%') {
				if (j > 0 && name[j - 1] == MBOX_DELIM)
					run = false;
				run |= cur[j];
				next[j] = run;
			} else {
				next[j] =
				    j > 0 && cur[j - 1] && name[j - 1] == *p;
			}
			any |= next[j];
		}
		if (!any)
			return false;
		t = cur;
		cur = next;
		next = t;
	}
	return cur[nlen];
}

static bool
list_matches(const struct list_req *q, const char *name)
{
	for (size_t i = 0; i < q->npatterns; i++)
		if (list_match(q->patterns[i], name))
			return true;
	return false;
}

static void
list_req_clear(struct list_req *q)
{
	for (size_t i = 0; i < q->npatterns; i++)
		free(q->patterns[i]);
	free(q->patterns);
	q->patterns = NULL;
	q->npatterns = 0;
}

/* ref + pattern in UTF-8; an empty pattern is kept as "". */
static int
list_add_pattern(struct imap_session *s, struct list_req *q, const char *ref,
                 const struct imap_arg *a, bool *empty_r)
{
	struct buf pat;
	char *full;

	buf_init(&pat, 0);
	if (imap_name_from_client(s, a, &pat) != 0) {
		buf_free(&pat);
		return -1;
	}
	if (pat.len == 0)
		*empty_r = true;
	full = xasprintf("%s%s", ref, (const char *)pat.data);
	buf_free(&pat);
	if (strncasecmp(full, "INBOX", 5) == 0 &&
	    (full[5] == '\0' || full[5] == MBOX_DELIM))
		memcpy(full, "INBOX", 5);
	q->patterns =
	    xreallocarray(q->patterns, q->npatterns + 1, sizeof(*q->patterns));
	q->patterns[q->npatterns++] = full;
	return 0;
}

static bool
list_wanted(const struct list_req *q, const struct lentry *e, bool *childinfo_r)
{
	*childinfo_r = false;
	if (q->lsub) {
		if (e->subscribed)
			return true;
		/* "%" hides a subscribed child: show its parent. */
		for (size_t i = 0; i < q->npatterns; i++)
			if (strchr(q->patterns[i], '%') != NULL &&
			    e->child_subscribed)
				return true;
		return false;
	}
	if ((q->sel & LSEL_SUBSCRIBED) != 0) {
		if (e->subscribed)
			return (q->sel & LSEL_SPECIAL) == 0 ||
			       e->special != MBOX_SPECIAL_NONE;
		if ((q->sel & LSEL_RECURSIVE) != 0 && e->child_subscribed) {
			*childinfo_r = true;
			return true;
		}
		return false;
	}
	if ((q->sel & LSEL_SPECIAL) != 0)
		return e->exists && e->special != MBOX_SPECIAL_NONE;
	return e->exists || e->has_children;
}

static void
list_write(struct imap_session *s, const struct list_req *q,
           const struct lentry *e, bool childinfo)
{
	bool sp = false;

#define ATTR(str)                                                              \
	do {                                                                   \
		imap_printf(s, "%s%s", sp ? " " : "", str);                    \
		sp = true;                                                     \
	} while (0)

	imap_printf(s, "* %s (", q->lsub ? "LSUB" : "LIST");
	if (!e->exists || (q->lsub && !e->subscribed)) {
		if (q->lsub || (!q->extended && !s->rev2))
			ATTR("\\Noselect");
		else
			ATTR("\\NonExistent");
	}
	if (!q->lsub) {
		if (e->has_children)
			ATTR("\\HasChildren");
		else if (e->exists)
			ATTR("\\HasNoChildren");
		if (e->subscribed && ((q->sel & LSEL_SUBSCRIBED) != 0 ||
		                      (q->ret & LRET_SUBSCRIBED) != 0))
			ATTR("\\Subscribed");
		if (e->exists && e->special != MBOX_SPECIAL_NONE)
			ATTR(special_attr(e->special));
	}
#undef ATTR
	imap_printf(s, ") \"/\" ");
	imap_write_mailbox(s, e->name);
	if (childinfo)
		imap_printf(s, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
	imap_printf(s, "\r\n");
}

/* LIST-STATUS: the STATUS of a listed mailbox (errors skip it). */
static void
list_status(struct imap_session *s, const struct list_req *q,
            const struct lentry *e)
{
	struct mbox_info info;
	char *err = NULL;
	int r;

	memset(&info, 0, sizeof(info));
	r = (q->status_mask & ST_SIZE) != 0
	        ? mbox_sizes_settle(s->store, e->name, &err)
	        : 0;
	if (r == 0)
		r = mbox_status(s->store, e->name, &info, &err);
	if (r != 0) {
		imap_store_error(s, r, &err);
		return;
	}
	if (info.name == NULL)
		info.name = xstrdup(e->name);
	status_write(s, &info, q->status_mask);
	mbox_info_clear(&info);
}

static void
list_run(struct imap_session *s, struct list_req *q)
{
	struct lentry *v = NULL;
	size_t n = 0;
	int r;

	r = list_entries(s, &v, &n);
	if (r != 0) {
		imap_reply(s, "NO %s", imap_mbox_error(r));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		bool childinfo;

		if (list_matches(q, v[i].name) &&
		    list_wanted(q, &v[i], &childinfo)) {
			list_write(s, q, &v[i], childinfo);
			if ((q->ret & LRET_STATUS) != 0 && v[i].exists)
				list_status(s, q, &v[i]);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	imap_reply(s, "OK %s completed", q->lsub ? "LSUB" : "LIST");
}

static int
list_sel_parse(const struct imap_arg *a, unsigned *sel_r)
{
	for (size_t i = 0; i < a->count; i++) {
		const struct imap_arg *o = &a->list[i];

		if (imap_arg_atom_is(o, "SUBSCRIBED"))
			*sel_r |= LSEL_SUBSCRIBED;
		else if (imap_arg_atom_is(o, "RECURSIVEMATCH"))
			*sel_r |= LSEL_RECURSIVE;
		else if (imap_arg_atom_is(o, "SPECIAL-USE"))
			*sel_r |= LSEL_SPECIAL;
		else if (imap_arg_atom_is(o, "REMOTE"))
			*sel_r |= LSEL_REMOTE;
		else
			return -1;
	}
	/* RFC 5258 3.1: RECURSIVEMATCH needs another option. */
	if ((*sel_r & LSEL_RECURSIVE) != 0 &&
	    (*sel_r & (LSEL_SUBSCRIBED | LSEL_SPECIAL)) == 0)
		return -1;
	return 0;
}

static int
list_ret_parse(const struct imap_arg *a, struct list_req *q)
{
	if (a->type != IMAP_ARG_LIST)
		return -1;
	for (size_t i = 0; i < a->count; i++) {
		const struct imap_arg *o = &a->list[i];

		if (imap_arg_atom_is(o, "SUBSCRIBED")) {
			q->ret |= LRET_SUBSCRIBED;
		} else if (imap_arg_atom_is(o, "CHILDREN")) {
			q->ret |= LRET_CHILDREN;
		} else if (imap_arg_atom_is(o, "SPECIAL-USE")) {
			q->ret |= LRET_SPECIAL;
		} else if (imap_arg_atom_is(o, "STATUS")) {
			if (i + 1 >= a->count ||
			    status_items_parse(&a->list[i + 1],
			                       &q->status_mask) != 0)
				return -1;
			q->ret |= LRET_STATUS;
			i++;
		} else {
			return -1;
		}
	}
	return 0;
}

void
imap_cmd_list(struct imap_session *s, const struct imap_command *c)
{
	struct list_req q;
	size_t i = 0;
	bool empty = false;
	struct buf ref;
	const struct imap_arg *pat;

	memset(&q, 0, sizeof(q));
	buf_init(&ref, 0);
	if (c->args[0].type == IMAP_ARG_LIST) {
		q.extended = true;
		if (list_sel_parse(&c->args[0], &q.sel) != 0) {
			imap_reply(s, "BAD Invalid LIST selection options");
			goto out;
		}
		i = 1;
	}
	if (c->count < i + 2) {
		imap_reply(s, "BAD Missing LIST arguments");
		goto out;
	}
	if (imap_name_from_client(s, &c->args[i], &ref) != 0) {
		imap_reply(s, "BAD Invalid reference");
		goto out;
	}
	pat = &c->args[i + 1];
	if (pat->type == IMAP_ARG_LIST) {
		q.extended = true;
		for (size_t k = 0; k < pat->count; k++)
			if (list_add_pattern(s, &q, (const char *)ref.data,
			                     &pat->list[k], &empty) != 0) {
				imap_reply(s, "BAD Invalid pattern");
				goto out;
			}
	} else if (list_add_pattern(s, &q, (const char *)ref.data, pat,
	                            &empty) != 0) {
		imap_reply(s, "BAD Invalid pattern");
		goto out;
	}
	i += 2;
	if (i < c->count) {
		q.extended = true;
		if (i + 2 != c->count ||
		    !imap_arg_atom_is(&c->args[i], "RETURN") ||
		    list_ret_parse(&c->args[i + 1], &q) != 0) {
			imap_reply(s, "BAD Invalid LIST return options");
			goto out;
		}
	}
	/* LIST "" "": the hierarchy delimiter (RFC 9051 6.3.9). */
	if (empty && q.npatterns == 1 && pat->type != IMAP_ARG_LIST) {
		imap_printf(s, "* LIST (\\Noselect) \"/\" \"\"\r\n");
		imap_reply(s, "OK LIST completed");
		goto out;
	}
	list_run(s, &q);
out:
	list_req_clear(&q);
	buf_free(&ref);
}

void
imap_cmd_lsub(struct imap_session *s, const struct imap_command *c)
{
	struct list_req q;
	struct buf ref;
	bool empty = false;

	memset(&q, 0, sizeof(q));
	q.lsub = true;
	buf_init(&ref, 0);
	if (imap_name_from_client(s, &c->args[0], &ref) != 0 ||
	    list_add_pattern(s, &q, (const char *)ref.data, &c->args[1],
	                     &empty) != 0) {
		imap_reply(s, "BAD Invalid LSUB arguments");
		goto out;
	}
	if (empty) {
		imap_printf(s, "* LSUB (\\Noselect) \"/\" \"\"\r\n");
		imap_reply(s, "OK LSUB completed");
		goto out;
	}
	list_run(s, &q);
out:
	list_req_clear(&q);
	buf_free(&ref);
}
