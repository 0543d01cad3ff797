/* The directory's aliases: set/get/del/list, resolution of an address to
 * its final mailboxes and external addresses (breadth first, depth and size
 * bounded, loops reported), and who may send as which address.
 * SECURITY: resolution runs on every RCPT from the internet: its work is
 * bounded (ALIAS_DEPTH_MAX levels, ALIAS_EXPANSION_MAX results, a fixed
 * number of lookups) whatever the alias graph, and every value is a bound
 * parameter. */
#include "directory/directory.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "directory/directory_int.h"

/* Paths one resolution may follow (a diamond in the alias graph is followed
 * once per path, so this is above ALIAS_EXPANSION_MAX). */
#define RESOLVE_WORK_MAX (4 * ALIAS_EXPANSION_MAX)

static int
cmp_strings(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- aliases ---- */

int
directory_alias_set(struct directory *dir, const char *source,
                    const char *const *dests, size_t ndests, char **error_r)
{
	const char *domain;
	const char **sorted;
	int found;

	if (dir_check_source(source, error_r) < 0)
		return -1;
	if (ndests == 0)
		return dir_fail(error_r, "alias %s: no destination", source);
	if (ndests > ALIAS_EXPANSION_MAX)
		return dir_fail(error_r, "alias %s: over %d destinations",
		                source, ALIAS_EXPANSION_MAX);
	for (size_t i = 0; i < ndests; i++) {
		char *err = NULL;

		if (dir_check_address(dests[i], &err) < 0) {
			dir_fail(error_r, "alias %s: destination %zu: %s",
			         source, i + 1, err);
			free(err);
			return -1;
		}
	}
	domain = dir_domain_of(source);
	found = dir_exists(dir, "SELECT 1 FROM domains WHERE name = ?", &domain,
	                   1, error_r);
	if (found <= 0)
		return found < 0 ? -1
		                 : dir_fail(error_r, "no domain %s", domain);

	/* Sorted, so duplicates are neighbours and are stored once. */
	sorted = xcalloc(ndests, sizeof(*sorted));
	memcpy(sorted, dests, ndests * sizeof(*sorted));
	qsort(sorted, ndests, sizeof(*sorted), cmp_strings);
	if (dir_begin(dir, error_r) < 0)
		goto fail_nort;
	if (dir_exec(dir, "DELETE FROM aliases WHERE source = ?", &source, 1,
	             NULL, NULL, NULL, error_r) < 0)
		goto fail;
	for (size_t i = 0; i < ndests; i++) {
		const char *params[] = {source, sorted[i]};

		if (i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0)
			continue;
		if (dir_exec(dir,
		             "INSERT INTO aliases (source, destination)"
		             " VALUES (?, ?)",
		             params, 2, NULL, NULL, NULL, error_r) < 0)
			goto fail;
	}
	free(sorted);
	return dir_commit(dir, error_r);
fail:
	dir_rollback(dir);
fail_nort:
	free(sorted);
	return -1;
}

int
directory_alias_del(struct directory *dir, const char *source, char **error_r)
{
	uint64_t affected = 0;

	if (dir_check_source(source, error_r) < 0)
		return -1;
	if (dir_exec(dir, "DELETE FROM aliases WHERE source = ?", &source, 1,
	             NULL, &affected, NULL, error_r) < 0)
		return -1;
	if (affected == 0)
		return dir_fail(error_r, "no alias %s", source);
	return 0;
}

int
directory_alias_get(struct directory *dir, const char *source, char ***dests_r,
                    size_t *n_r, char **error_r)
{
	struct sql_result *res = NULL;
	char **dests = NULL;
	size_t n = 0;

	*dests_r = NULL;
	*n_r = 0;
	if (dir_check_source(source, error_r) < 0)
		return -1;
	if (dir_exec(dir,
	             "SELECT destination FROM aliases WHERE source = ?"
	             " ORDER BY destination",
	             &source, 1, &res, NULL, NULL, error_r) < 0)
		return -1;
	if (res->nrows > 0)
		dests = xcalloc(res->nrows, sizeof(*dests));
	for (size_t i = 0; i < res->nrows; i++) {
		if (sql_cell(res, i, 0) != NULL)
			dests[n++] = xstrdup(sql_cell(res, i, 0));
	}
	sql_result_free(&res);
	*dests_r = dests;
	*n_r = n;
	return n > 0 ? 1 : 0;
}

int
directory_alias_list(struct directory *dir, char ***sources_r, char ***dests_r,
                     size_t *n_r, char **error_r)
{
	struct sql_result *res = NULL;
	char **sources = NULL, **dests = NULL;
	struct buf joined;
	size_t n = 0;

	*sources_r = NULL;
	*dests_r = NULL;
	*n_r = 0;
	if (dir_exec(dir,
	             "SELECT source, destination FROM aliases"
	             " ORDER BY source, destination",
	             NULL, 0, &res, NULL, NULL, error_r) < 0)
		return -1;
	if (res->nrows > 0) {
		sources = xcalloc(res->nrows, sizeof(*sources));
		dests = xcalloc(res->nrows, sizeof(*dests));
	}
	buf_init(&joined, 0);
	for (size_t i = 0; i < res->nrows; i++) {
		const char *src = sql_cell(res, i, 0);
		const char *dst = sql_cell(res, i, 1);

		if (src == NULL || dst == NULL)
			continue;
		if (n == 0 || strcmp(sources[n - 1], src) != 0) {
			if (n > 0) {
				dests[n - 1] = xstrdup(buf_cstr(&joined));
				buf_reset(&joined);
			}
			sources[n++] = xstrdup(src);
		} else {
			buf_append_byte(&joined, ',');
		}
		buf_append_str(&joined, dst);
	}
	if (n > 0)
		dests[n - 1] = xstrdup(buf_cstr(&joined));
	buf_free(&joined);
	sql_result_free(&res);
	*sources_r = sources;
	*dests_r = dests;
	*n_r = n;
	return 0;
}

/* ---- resolution ---- */

/* One distinct address met while resolving, looked up once. */
struct res_entry {
	char *addr;
	bool looked_up;
	bool is_user;
	bool local; /* its domain is one of ours (known when !is_user) */
	bool emitted;
	char **alias; /* exact alias destinations */
	size_t nalias;
	char **catchall; /* the domain's catch-all destinations */
	size_t ncatchall;
};

/* One path being expanded: an entry and how we got there. */
struct res_path {
	size_t entry;
	size_t parent; /* index in paths; SIZE_MAX for the address asked */
	unsigned depth;
};

struct resolver {
	struct directory *dir;
	const char *root;
	struct res_entry *entries;
	size_t nentries, entries_cap;
	size_t *table; /* open addressing: entry index + 1, 0 is empty */
	size_t table_cap;
	struct res_path *paths;
	size_t npaths, paths_cap;
	char **out;
	size_t nout;
};

static uint32_t
hash_str(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++) {
		h ^= (uint8_t)*s;
		h *= 16777619u;
	}
	return h;
}

static void
table_insert(struct resolver *r, size_t idx)
{
	size_t mask = r->table_cap - 1;
	size_t i = hash_str(r->entries[idx].addr) & mask;

	while (r->table[i] != 0)
		i = (i + 1) & mask;
	r->table[i] = idx + 1;
}

/* The entry for addr, added when new. */
static size_t
entry_get(struct resolver *r, const char *addr)
{
	size_t mask, i, idx;

	if (r->table_cap > 0) {
		mask = r->table_cap - 1;
		for (i = hash_str(addr) & mask; r->table[i] != 0;
		     i = (i + 1) & mask) {
			if (strcmp(r->entries[r->table[i] - 1].addr, addr) == 0)
				return r->table[i] - 1;
		}
	}
	if (r->nentries == r->entries_cap) {
		r->entries_cap = r->entries_cap == 0 ? 16 : r->entries_cap * 2;
		r->entries = xreallocarray(r->entries, r->entries_cap,
		                           sizeof(*r->entries));
	}
	idx = r->nentries++;
	memset(&r->entries[idx], 0, sizeof(r->entries[idx]));
	r->entries[idx].addr = xstrdup(addr);
	/* Keep the table at most half full. */
	if (r->nentries * 2 > r->table_cap) {
		free(r->table);
		r->table_cap = r->table_cap == 0 ? 64 : r->table_cap * 2;
		r->table = xcalloc(r->table_cap, sizeof(*r->table));
		for (size_t k = 0; k < r->nentries; k++)
			table_insert(r, k);
	} else {
		table_insert(r, idx);
	}
	return idx;
}

static void
resolver_free(struct resolver *r)
{
	for (size_t i = 0; i < r->nentries; i++) {
		struct res_entry *e = &r->entries[i];

		free(e->addr);
		directory_strings_free(&e->alias, e->nalias);
		directory_strings_free(&e->catchall, e->ncatchall);
	}
	free(r->entries);
	free(r->table);
	free(r->paths);
	directory_strings_free(&r->out, r->nout);
}

/* Rows (kind, value) of a two-part UNION: kind 0 rows are destinations
 * into *dests_r, kind 1 rows say the second part matched. */
static int
union_query(struct directory *dir, const char *sql, const char *p1,
            const char *p2, char ***dests_r, size_t *n_r, bool *second_r,
            char **error_r)
{
	const char *params[] = {p1, p2};
	struct sql_result *res = NULL;

	*second_r = false;
	if (dir_exec(dir, sql, params, 2, &res, NULL, NULL, error_r) < 0)
		return -1;
	for (size_t i = 0; i < res->nrows; i++) {
		const char *kind = sql_cell(res, i, 0);
		const char *v = sql_cell(res, i, 1);

		if (kind == NULL || v == NULL)
			continue;
		if (strcmp(kind, "1") == 0) {
			*second_r = true;
		} else {
			if (*dests_r == NULL)
				*dests_r =
				    xcalloc(res->nrows, sizeof(**dests_r));
			(*dests_r)[(*n_r)++] = xstrdup(v);
		}
	}
	sql_result_free(&res);
	return 0;
}

/* Fill in what the directory knows of an entry: two queries at most. */
static int
lookup(struct resolver *r, struct res_entry *e, char **error_r)
{
	const char *domain;
	char *catchall;
	int rc;

	if (e->looked_up)
		return 0;
	e->looked_up = true;
	if (union_query(r->dir,
	                "SELECT 0, destination FROM aliases WHERE source = ?"
	                " UNION ALL"
	                " SELECT 1, address FROM users WHERE address = ?"
	                " ORDER BY 1, 2",
	                e->addr, e->addr, &e->alias, &e->nalias, &e->is_user,
	                error_r) < 0)
		return -1;
	if (e->is_user)
		return 0;
	domain = dir_domain_of(e->addr);
	catchall = xasprintf("@%s", domain);
	rc = union_query(r->dir,
	                 "SELECT 0, destination FROM aliases WHERE source = ?"
	                 " UNION ALL"
	                 " SELECT 1, name FROM domains WHERE name = ?"
	                 " ORDER BY 1, 2",
	                 catchall, domain, &e->catchall, &e->ncatchall,
	                 &e->local, error_r);
	free(catchall);
	return rc;
}

static int
emit(struct resolver *r, struct res_entry *e, char **error_r)
{
	if (e->emitted)
		return 0;
	if (r->nout >= ALIAS_EXPANSION_MAX)
		return dir_fail(error_r, "%s expands to over %d addresses",
		                r->root, ALIAS_EXPANSION_MAX);
	if (r->nout == 0 || (r->nout & (r->nout - 1)) == 0)
		r->out = xreallocarray(r->out, r->nout == 0 ? 1 : r->nout * 2,
		                       sizeof(*r->out));
	r->out[r->nout++] = xstrdup(e->addr);
	e->emitted = true;
	return 0;
}

/* A destination that leads nowhere: an address of one of our domains that
 * is no user, no alias, and has no catch-all. Skipped, and logged. */
static void
dangling(struct resolver *r, const struct res_entry *from,
         const struct res_entry *e)
{
	log_warn(NULL,
	         "event=alias_dangling address=%s alias=%s destination=%s",
	         r->root, from->addr, e->addr);
}

static bool
is_ancestor(const struct resolver *r, size_t path, size_t entry)
{
	for (size_t p = path; p != SIZE_MAX; p = r->paths[p].parent) {
		if (r->paths[p].entry == entry)
			return true;
	}
	return false;
}

/* Expand path p; *matched_r is false when the address asked for is not
 * ours at all (no alias, user or catch-all). */
static int
expand(struct resolver *r, size_t p, bool *matched_r, char **error_r)
{
	size_t ei = r->paths[p].entry;
	struct res_entry *e = &r->entries[ei];
	bool root = r->paths[p].parent == SIZE_MAX;
	char **dests;
	size_t ndests;

	if (lookup(r, e, error_r) < 0)
		return -1;
	e = &r->entries[ei];
	/* A user takes its own mail (an alias on a user's address is never
	 * used); then an exact alias; then, for one of our domains, its
	 * catch-all. */
	if (e->is_user) {
		return emit(r, e, error_r);
	} else if (e->nalias > 0) {
		dests = e->alias;
		ndests = e->nalias;
	} else if (e->local && e->ncatchall > 0) {
		dests = e->catchall;
		ndests = e->ncatchall;
	} else {
		if (root)
			*matched_r = false;
		else if (!e->local)
			return emit(r, e, error_r); /* external */
		else
			dangling(r, &r->entries[r->paths[p].parent], e);
		return 0;
	}
	for (size_t i = 0; i < ndests; i++) {
		/* entry_get may move the entries (not the dests array): from
		 * here on, indexes rather than pointers. */
		size_t di = entry_get(r, dests[i]);
		struct res_entry *d = &r->entries[di];

		/* Back to an address on the path, itself included ("a → a",
		 * or a catch-all naming an address that does not exist). */
		if (is_ancestor(r, p, di))
			return dir_fail(error_r, "alias loop at %s (from %s)",
			                d->addr, r->root);
		if (r->paths[p].depth + 1 > ALIAS_DEPTH_MAX)
			return dir_fail(error_r,
			                "alias chain from %s over %d levels",
			                r->root, ALIAS_DEPTH_MAX);
		if (r->npaths >= RESOLVE_WORK_MAX)
			return dir_fail(error_r,
			                "alias expansion of %s too large",
			                r->root);
		if (r->npaths == r->paths_cap) {
			r->paths_cap *= 2;
			r->paths = xreallocarray(r->paths, r->paths_cap,
			                         sizeof(*r->paths));
		}
		r->paths[r->npaths++] = (struct res_path){
		    .entry = di,
		    .parent = p,
		    .depth = r->paths[p].depth + 1,
		};
	}
	return 0;
}

int
directory_resolve(struct directory *dir, const char *address,
                  char ***addresses_r, size_t *n_r, char **error_r)
{
	struct resolver r;
	bool matched = true;

	*addresses_r = NULL;
	*n_r = 0;
	if (dir_check_address(address, error_r) < 0)
		return -1;
	memset(&r, 0, sizeof(r));
	r.dir = dir;
	r.root = address;
	r.paths_cap = 16;
	r.paths = xcalloc(r.paths_cap, sizeof(*r.paths));
	r.paths[r.npaths++] = (struct res_path){
	    .entry = entry_get(&r, address),
	    .parent = SIZE_MAX,
	    .depth = 0,
	};
	/* Breadth first: paths[] is the queue, and keeps every parent. */
	for (size_t p = 0; p < r.npaths; p++) {
		if (expand(&r, p, &matched, error_r) < 0) {
			resolver_free(&r);
			return -1;
		}
		if (!matched) {
			resolver_free(&r);
			return 0;
		}
	}
	if (r.nout == 0) {
		resolver_free(&r);
		return dir_fail(
		    error_r, "%s resolves to no deliverable address", address);
	}
	qsort(r.out, r.nout, sizeof(*r.out), cmp_strings);
	*addresses_r = r.out;
	*n_r = r.nout;
	r.out = NULL;
	r.nout = 0;
	resolver_free(&r);
	return 1;
}

/* ---- sender permissions ---- */

int
directory_sender_allowed(struct directory *dir, const char *user,
                         const char *address, char **error_r)
{
	const char *params[5];
	char *catchall;
	int rc;

	if (dir_check_address(user, error_r) < 0 ||
	    dir_check_address(address, error_r) < 0)
		return -1;
	if (strcmp(user, address) == 0)
		return 1;
	/* An alias whose destinations include the user directly (not through
	 * another alias, not a catch-all), or a grant of the address or of
	 * its whole domain ("@domain"). */
	catchall = xasprintf("@%s", dir_domain_of(address));
	params[0] = address;
	params[1] = user;
	params[2] = user;
	params[3] = address;
	params[4] = catchall;
	rc = dir_exists(dir,
	                "SELECT 1 FROM aliases WHERE source = ?"
	                " AND destination = ?"
	                " UNION ALL"
	                " SELECT 1 FROM sender_grants WHERE address = ?"
	                " AND (allowed = ? OR allowed = ?)",
	                params, 5, error_r);
	free(catchall);
	return rc;
}

int
directory_sender_grant(struct directory *dir, const char *user,
                       const char *address, char **error_r)
{
	const char *params[] = {user, address};
	int found;

	if (dir_check_address(user, error_r) < 0 ||
	    dir_check_source(address, error_r) < 0)
		return -1;
	found = dir_exists(dir, "SELECT 1 FROM users WHERE address = ?", &user,
	                   1, error_r);
	if (found <= 0)
		return found < 0 ? -1 : dir_fail(error_r, "no user %s", user);
	return dir_insert(
	    dir, "INSERT INTO sender_grants (address, allowed) VALUES (?, ?)",
	    params, 2, error_r, "%s may already send as %s", user, address);
}

int
directory_sender_revoke(struct directory *dir, const char *user,
                        const char *address, char **error_r)
{
	const char *params[] = {user, address};
	uint64_t affected = 0;

	if (dir_check_address(user, error_r) < 0 ||
	    dir_check_source(address, error_r) < 0)
		return -1;
	if (dir_exec(
	        dir,
	        "DELETE FROM sender_grants WHERE address = ? AND allowed = ?",
	        params, 2, NULL, &affected, NULL, error_r) < 0)
		return -1;
	if (affected == 0)
		return dir_fail(error_r, "%s has no grant to send as %s", user,
		                address);
	return 0;
}
