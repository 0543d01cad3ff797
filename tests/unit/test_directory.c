/* Conformance tests for the directory (src/directory/directory*.c): schema
 * and migrations, domains, users, aliases and their resolution, app
 * passwords, sender permissions, hostile values, and an informational
 * lookup timing; on the backend the environment names (see
 * sql_test_env.h). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/stat.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "directory/directory.h"
#include "directory/sql.h"
#include "sql_test_env.h"

static struct dir_user
user(const char *address)
{
	return (struct dir_user){.address = (char *)address,
	                         .password_hash = "$argon2id$hash",
	                         .scram = NULL};
}

static void
add_user(struct directory *dir, const char *address)
{
	struct dir_user u = user(address);

	OK(directory_user_add(dir, &u, E));
}

static void
set_alias(struct directory *dir, const char *source, const char *dests)
{
	const char *list[32];
	char copy[1024];
	size_t n = 0;

	snprintf(copy, sizeof(copy), "%s", dests);
	for (char *s = strtok(copy, ","); s != NULL && n < 32;
	     s = strtok(NULL, ","))
		list[n++] = s;
	OK(directory_alias_set(dir, source, list, n, E));
}

/* The resolution of address as one comma-joined string; "" for 0. */
static char *
resolve(struct directory *dir, const char *address)
{
	char **out = NULL;
	struct buf b;
	size_t n = 0;
	char *joined;

	if (directory_resolve(dir, address, &out, &n, E) < 0)
		fail_msg("resolve %s: %s", address, last_err);
	buf_init(&b, 0);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf_append_byte(&b, ',');
		buf_append_str(&b, out[i]);
	}
	joined = strdup(n > 0 ? buf_cstr(&b) : "");
	buf_free(&b);
	directory_strings_free(&out, n);
	return joined;
}

static void
assert_resolves(struct directory *dir, const char *address, const char *want)
{
	char *got = resolve(dir, address);

	assert_string_equal(got, want);
	free(got);
}

static void
setup_domains(struct directory *dir)
{
	OK(directory_domain_add(dir, "example.org", E));
	OK(directory_domain_add(dir, "example.net", E));
}

/* ---- schema ---- */

static void
migrate_creates_version(void **state)
{
	struct directory *dir = *state;
	int v = -1;

	OK(directory_schema_version(dir, &v, E));
	assert_int_equal(v, DIRECTORY_SCHEMA_VERSION);
	if (backend == SQL_SQLITE && strcmp(target, ":memory:") != 0) {
		struct stat st;

		assert_int_equal(stat(target, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
	}
}

static void
reopen_keeps_data(void **state)
{
	struct directory *dir = *state;

	setup_domains(dir);
	add_user(dir, "a@example.org");
	directory_close(&dir);
	*state = NULL;
	/* Without migrating, then migrating again: nothing changes. */
	dir = directory_open(backend, target, false, E);
	if (dir == NULL)
		fail_msg("reopen: %s", last_err);
	*state = dir;
	EXPECT(directory_domain_exists(dir, "example.org", E), 1);
	directory_close(&dir);
	*state = dir = directory_open(backend, target, true, E);
	assert_non_null(dir);
	EXPECT(directory_domain_exists(dir, "example.net", E), 1);
	{
		struct dir_user u;

		EXPECT(directory_user_get(dir, "a@example.org", &u, E), 1);
		dir_user_clear(&u);
	}
}

static void
version_checks(void **state)
{
	struct directory *dir = *state;
	const char *two = "2";
	struct sql_conn *c;
	int v = 0;

	directory_close(&dir);
	*state = NULL;
	c = raw_open();
	raw_exec(c, "UPDATE schema_version SET version = ?", &two, 1);
	assert_null(directory_open(backend, target, true, E));
	assert_non_null(strstr(last_err, "newer"));
	free(last_err);
	last_err = NULL;
	assert_null(directory_open(backend, target, false, E));
	assert_non_null(strstr(last_err, "newer"));
	free(last_err);
	last_err = NULL;

	/* Older (here: none at all) is refused without migrate, and
	 * migrated with it. */
	raw_exec(c, "DELETE FROM schema_version", NULL, 0);
	assert_null(directory_open(backend, target, false, E));
	assert_non_null(strstr(last_err, "needs migrating"));
	free(last_err);
	last_err = NULL;
	*state = dir = directory_open(backend, target, true, E);
	assert_non_null(dir);
	OK(directory_schema_version(dir, &v, E));
	assert_int_equal(v, DIRECTORY_SCHEMA_VERSION);
	sql_close(&c);
}

/* ---- domains ---- */

static void
domains(void **state)
{
	struct directory *dir = *state;
	char **list = NULL;
	size_t n = 0;

	OK(directory_domain_list(dir, &list, &n, E));
	assert_int_equal(n, 0);
	assert_null(list);
	OK(directory_domain_add(dir, "zz.example", E));
	OK(directory_domain_add(dir, "example.org", E));
	OK(directory_domain_add(dir, "a-b.example", E));
	FAILS(directory_domain_add(dir, "example.org", E),
	      "domain example.org exists");
	EXPECT(directory_domain_exists(dir, "example.org", E), 1);
	EXPECT(directory_domain_exists(dir, "example.com", E), 0);
	OK(directory_domain_list(dir, &list, &n, E));
	assert_int_equal(n, 3);
	assert_string_equal(list[0], "a-b.example");
	assert_string_equal(list[1], "example.org");
	assert_string_equal(list[2], "zz.example");
	directory_strings_free(&list, n);
	assert_null(list);
	OK(directory_domain_del(dir, "zz.example", false, E));
	EXPECT(directory_domain_exists(dir, "zz.example", E), 0);
	FAILS(directory_domain_del(dir, "zz.example", false, E),
	      "no domain zz.example");
	/* Only normalized names. */
	FAILS(directory_domain_add(dir, "Example.com", E), "normalized");
	FAILS(directory_domain_add(dir, "", E), "empty");
	FAILS(directory_domain_add(dir, "exa mple.com", E), "invalid domain");
	FAILS(directory_domain_add(dir, "a..b", E), "invalid domain");
	FAILS(directory_domain_add(dir, "bücher.example", E), "normalized");
	OK(directory_domain_add(dir, "xn--bcher-kva.example", E));
}

static void
domain_del_with_users(void **state)
{
	struct directory *dir = *state;
	struct dir_app_password *apps = NULL;
	struct dir_user *users = NULL;
	size_t n = 0;

	setup_domains(dir);
	add_user(dir, "a@example.org");
	add_user(dir, "b@example.net");
	set_alias(dir, "al@example.org", "a@example.org");
	set_alias(dir, "@example.org", "a@example.org");
	set_alias(dir, "x@example.net", "a@example.org");
	OK(directory_app_password_add(dir, "a@example.org", "phone", "h", NULL,
	                              DIR_SERVICE_IMAP, E));
	OK(directory_sender_grant(dir, "a@example.org", "b@example.net", E));
	FAILS(directory_domain_del(dir, "example.org", false, E),
	      "1 users and 2 aliases");
	EXPECT(directory_domain_exists(dir, "example.org", E), 1);
	OK(directory_domain_del(dir, "example.org", true, E));
	EXPECT(directory_domain_exists(dir, "example.org", E), 0);
	OK(directory_user_list(dir, NULL, &users, &n, E));
	assert_int_equal(n, 1);
	assert_string_equal(users[0].address, "b@example.net");
	dir_users_free(&users, n);
	/* Aliases of the domain went with it; others stay. */
	{
		char **src = NULL, **dst = NULL;

		OK(directory_alias_list(dir, &src, &dst, &n, E));
		assert_int_equal(n, 1);
		assert_string_equal(src[0], "x@example.net");
		directory_strings_free(&src, n);
		directory_strings_free(&dst, n);
	}
	/* Re-created, the domain is empty: nothing came back. */
	OK(directory_domain_add(dir, "example.org", E));
	add_user(dir, "a@example.org");
	OK(directory_app_password_list(dir, "a@example.org", &apps, &n, E));
	assert_int_equal(n, 0);
	EXPECT(
	    directory_sender_allowed(dir, "a@example.org", "b@example.net", E),
	    0);
}

/* ---- users ---- */

static void
user_add_get(void **state)
{
	struct directory *dir = *state;
	struct dir_user u = {
	    .address = "alice@example.org",
	    .password_hash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
	    .scram = "SCRAM-SHA-256:4096:salt:stored:server",
	    .quota_bytes = 5ULL << 30,
	    .suspended = true,
	    .created = 1700000000,
	};
	struct dir_user got;
	time_t before = time(NULL);

	FAILS(directory_user_add(dir, &u, E), "no domain example.org");
	setup_domains(dir);
	OK(directory_user_add(dir, &u, E));
	FAILS(directory_user_add(dir, &u, E), "user alice@example.org exists");
	EXPECT(directory_user_get(dir, "alice@example.org", &got, E), 1);
	assert_string_equal(got.address, u.address);
	assert_string_equal(got.password_hash, u.password_hash);
	assert_string_equal(got.scram, u.scram);
	assert_int_equal(got.quota_bytes, 5ULL << 30);
	assert_true(got.suspended);
	assert_int_equal(got.created, 1700000000);
	dir_user_clear(&got);
	assert_null(got.address);

	/* Defaults: no password, no quota, created now. */
	u = (struct dir_user){.address = "bob@example.org"};
	OK(directory_user_add(dir, &u, E));
	EXPECT(directory_user_get(dir, "bob@example.org", &got, E), 1);
	assert_null(got.password_hash);
	assert_null(got.scram);
	assert_int_equal(got.quota_bytes, 0);
	assert_false(got.suspended);
	assert_true(got.created >= (int64_t)before);
	dir_user_clear(&got);

	EXPECT(directory_user_get(dir, "carol@example.org", &got, E), 0);
	assert_null(got.address);
	/* Lookups take normalized keys only. */
	FAILS(directory_user_get(dir, "Alice@example.org", &got, E),
	      "normalized");
}

static void
user_modify(void **state)
{
	struct directory *dir = *state;
	struct dir_user got;

	setup_domains(dir);
	add_user(dir, "a@example.org");
	OK(directory_user_set_password(dir, "a@example.org", "$new$hash",
	                               "scram", E));
	EXPECT(directory_user_get(dir, "a@example.org", &got, E), 1);
	assert_string_equal(got.password_hash, "$new$hash");
	assert_string_equal(got.scram, "scram");
	dir_user_clear(&got);
	OK(directory_user_set_password(dir, "a@example.org", NULL, NULL, E));
	EXPECT(directory_user_get(dir, "a@example.org", &got, E), 1);
	assert_null(got.password_hash);
	assert_null(got.scram);
	dir_user_clear(&got);

	OK(directory_user_set_suspended(dir, "a@example.org", true, E));
	/* Setting the same value again still finds the user. */
	OK(directory_user_set_suspended(dir, "a@example.org", true, E));
	EXPECT(directory_user_get(dir, "a@example.org", &got, E), 1);
	assert_true(got.suspended);
	dir_user_clear(&got);
	OK(directory_user_set_suspended(dir, "a@example.org", false, E));
	EXPECT(directory_user_get(dir, "a@example.org", &got, E), 1);
	assert_false(got.suspended);
	dir_user_clear(&got);

	OK(directory_user_set_quota(dir, "a@example.org", 1000, E));
	OK(directory_user_set_quota(dir, "a@example.org", 1000, E));
	OK(directory_user_set_quota(dir, "a@example.org", INT64_MAX, E));
	EXPECT(directory_user_get(dir, "a@example.org", &got, E), 1);
	assert_int_equal(got.quota_bytes, INT64_MAX);
	dir_user_clear(&got);
	FAILS(directory_user_set_quota(dir, "a@example.org", UINT64_MAX, E),
	      "quota");

	FAILS(directory_user_set_password(dir, "x@example.org", "h", NULL, E),
	      "no user x@example.org");
	FAILS(directory_user_set_suspended(dir, "x@example.org", true, E),
	      "no user x@example.org");
	FAILS(directory_user_set_quota(dir, "x@example.org", 1, E),
	      "no user x@example.org");
	FAILS(directory_user_del(dir, "x@example.org", E),
	      "no user x@example.org");
}

static void
user_list(void **state)
{
	/* Byte order everywhere: "." < "b" < "z" < UTF-8. */
	static const char *const org[] = {"a.b@example.org", "b@example.org",
	                                  "z@example.org",
	                                  "\xc3\xa4@example.org"};
	struct directory *dir = *state;
	struct dir_user *users = NULL;
	size_t n = 0;

	setup_domains(dir);
	add_user(dir, "z@example.org");
	add_user(dir, "\xc3\xa4@example.org");
	add_user(dir, "m@example.net");
	add_user(dir, "b@example.org");
	add_user(dir, "a.b@example.org");
	OK(directory_user_list(dir, "example.org", &users, &n, E));
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(users[i].address, org[i]);
	dir_users_free(&users, n);
	assert_null(users);
	OK(directory_user_list(dir, NULL, &users, &n, E));
	assert_int_equal(n, 5);
	assert_string_equal(users[0].address, "a.b@example.org");
	assert_string_equal(users[3].address, "z@example.org");
	assert_string_equal(users[4].address, "\xc3\xa4@example.org");
	dir_users_free(&users, n);
	OK(directory_user_list(dir, "example.com", &users, &n, E));
	assert_int_equal(n, 0);
	assert_null(users);
}

static void
user_del_cascades(void **state)
{
	struct directory *dir = *state;
	struct dir_app_password *apps = NULL;
	size_t n = 0;

	setup_domains(dir);
	add_user(dir, "a@example.org");
	OK(directory_app_password_add(dir, "a@example.org", "phone", "h1", NULL,
	                              DIR_SERVICE_IMAP, E));
	OK(directory_app_password_add(dir, "a@example.org", "laptop", "h2",
	                              NULL, DIR_SERVICE_ALL, E));
	OK(directory_sender_grant(dir, "a@example.org", "x@example.net", E));
	OK(directory_user_del(dir, "a@example.org", E));
	struct dir_user got;
	EXPECT(directory_user_get(dir, "a@example.org", &got, E), 0);
	add_user(dir, "a@example.org");
	OK(directory_app_password_list(dir, "a@example.org", &apps, &n, E));
	assert_int_equal(n, 0);
	EXPECT(
	    directory_sender_allowed(dir, "a@example.org", "x@example.net", E),
	    0);
}

/* ---- aliases ---- */

static void
aliases(void **state)
{
	struct directory *dir = *state;
	const char *dup[] = {"b@example.org", "a@example.org", "b@example.org"};
	char **list = NULL, **dst = NULL;
	size_t n = 0;

	FAILS(directory_alias_set(dir, "x@example.org", dup, 3, E),
	      "no domain example.org");
	setup_domains(dir);
	OK(directory_alias_set(dir, "x@example.org", dup, 3, E));
	EXPECT(directory_alias_get(dir, "x@example.org", &list, &n, E), 1);
	assert_int_equal(n, 2);
	assert_string_equal(list[0], "a@example.org");
	assert_string_equal(list[1], "b@example.org");
	directory_strings_free(&list, n);
	/* Setting again replaces. */
	set_alias(dir, "x@example.org", "c@elsewhere.example");
	EXPECT(directory_alias_get(dir, "x@example.org", &list, &n, E), 1);
	assert_int_equal(n, 1);
	assert_string_equal(list[0], "c@elsewhere.example");
	directory_strings_free(&list, n);
	EXPECT(directory_alias_get(dir, "y@example.org", &list, &n, E), 0);
	assert_null(list);

	set_alias(dir, "@example.org", "postmaster@example.org");
	set_alias(dir, "a@example.net", "z@example.org,y@example.org");
	OK(directory_alias_list(dir, &list, &dst, &n, E));
	assert_int_equal(n, 3);
	assert_string_equal(list[0], "@example.org");
	assert_string_equal(dst[0], "postmaster@example.org");
	assert_string_equal(list[1], "a@example.net");
	assert_string_equal(dst[1], "y@example.org,z@example.org");
	assert_string_equal(list[2], "x@example.org");
	assert_string_equal(dst[2], "c@elsewhere.example");
	directory_strings_free(&list, n);
	directory_strings_free(&dst, n);

	OK(directory_alias_del(dir, "x@example.org", E));
	FAILS(directory_alias_del(dir, "x@example.org", E),
	      "no alias x@example.org");
	OK(directory_alias_del(dir, "@example.org", E));
	/* Bad input. */
	FAILS(directory_alias_set(dir, "q@example.org", NULL, 0, E),
	      "no destination");
	dup[0] = "@example.org";
	FAILS(directory_alias_set(dir, "q@example.org", dup, 1, E),
	      "destination 1");
	dup[0] = "Upper@example.org";
	FAILS(directory_alias_set(dir, "q@example.org", dup, 1, E),
	      "normalized");
	FAILS(directory_alias_set(dir, "@", dup, 1, E), "domain");
}

static void
resolve_basic(void **state)
{
	struct directory *dir = *state;
	char **out = NULL;
	size_t n = 0;

	setup_domains(dir);
	add_user(dir, "u@example.org");
	assert_resolves(dir, "u@example.org", "u@example.org");
	/* Not ours at all, or ours without a match: 0. */
	EXPECT(directory_resolve(dir, "u@elsewhere.example", &out, &n, E), 0);
	EXPECT(directory_resolve(dir, "nobody@example.org", &out, &n, E), 0);
	assert_null(out);
	assert_int_equal(n, 0);
	/* An alias to a user and to an external address. */
	set_alias(dir, "info@example.org",
	          "u@example.org,boss@elsewhere.example");
	assert_resolves(dir, "info@example.org",
	                "boss@elsewhere.example,u@example.org");
	/* Suspended users still receive (the policy is the caller's). */
	OK(directory_user_set_suspended(dir, "u@example.org", true, E));
	assert_resolves(dir, "u@example.org", "u@example.org");
	/* A user takes its own mail: an alias on its address is not used,
	 * and a user as a destination is final. */
	set_alias(dir, "u@example.org", "w@elsewhere.example");
	assert_resolves(dir, "u@example.org", "u@example.org");
	set_alias(dir, "v@example.org", "v@example.org,u@example.org");
	add_user(dir, "v@example.org");
	assert_resolves(dir, "info@example.org",
	                "boss@elsewhere.example,u@example.org");
	assert_resolves(dir, "v@example.org", "v@example.org");
	/* A destination that leads nowhere is dropped; if nothing is left,
	 * that is an error. */
	set_alias(dir, "d@example.org", "gone@example.org,u2@example.net");
	add_user(dir, "u2@example.net");
	assert_resolves(dir, "d@example.org", "u2@example.net");
	set_alias(dir, "e@example.org", "gone@example.org");
	FAILS(directory_resolve(dir, "e@example.org", &out, &n, E),
	      "no deliverable address");
}

static void
resolve_chains(void **state)
{
	struct directory *dir = *state;

	setup_domains(dir);
	add_user(dir, "u1@example.org");
	add_user(dir, "u2@example.org");
	/* a → b, c; b → u1, u2; c → u2, ext: a diamond, not a loop. */
	set_alias(dir, "a@example.org", "b@example.org,c@example.org");
	set_alias(dir, "b@example.org", "u1@example.org,u2@example.org");
	set_alias(dir, "c@example.org",
	          "u2@example.org,ext@elsewhere.example,b@example.org");
	assert_resolves(dir, "a@example.org",
	                "ext@elsewhere.example,u1@example.org,u2@example.org");
	/* Cross-domain chain. */
	set_alias(dir, "n@example.net", "a@example.org");
	assert_resolves(dir, "n@example.net",
	                "ext@elsewhere.example,u1@example.org,u2@example.org");
}

static void
resolve_loops(void **state)
{
	struct directory *dir = *state;
	char **out = NULL;
	size_t n = 0;

	setup_domains(dir);
	add_user(dir, "u@example.org");
	set_alias(dir, "a@example.org", "b@example.org");
	set_alias(dir, "b@example.org", "u@example.org,a@example.org");
	FAILS(directory_resolve(dir, "a@example.org", &out, &n, E),
	      "loop at a@example.org");
	assert_null(out);
	/* A longer loop, reached through a diamond. */
	set_alias(dir, "b@example.org", "c@example.org,d@example.org");
	set_alias(dir, "c@example.org", "d@example.org");
	set_alias(dir, "d@example.org", "e@example.org");
	set_alias(dir, "e@example.org", "c@example.org");
	FAILS(directory_resolve(dir, "a@example.org", &out, &n, E), "loop");
	/* "a → a" for an address that is no user is a loop too. */
	set_alias(dir, "s@example.org", "s@example.org,u@example.org");
	FAILS(directory_resolve(dir, "s@example.org", &out, &n, E),
	      "loop at s@example.org");
	/* So is a catch-all naming an address that does not exist: it
	 * catches itself. */
	set_alias(dir, "@example.net", "x@example.net");
	FAILS(directory_resolve(dir, "y@example.net", &out, &n, E),
	      "loop at x@example.net");
	add_user(dir, "x@example.net");
	assert_resolves(dir, "y@example.net", "x@example.net");
}

static void
resolve_depth(void **state)
{
	struct directory *dir = *state;
	char src[64], dst[64];
	char **out = NULL;
	size_t n = 0;

	setup_domains(dir);
	add_user(dir, "u@example.org");
	/* l0 → l1 → … → l8 → u: l8 is ALIAS_DEPTH_MAX levels down. */
	for (int i = 0; i < ALIAS_DEPTH_MAX; i++) {
		snprintf(src, sizeof(src), "l%d@example.org", i);
		snprintf(dst, sizeof(dst), "l%d@example.org", i + 1);
		set_alias(dir, src, dst);
	}
	snprintf(src, sizeof(src), "l%d@example.org", ALIAS_DEPTH_MAX);
	set_alias(dir, src, "u@example.org");
	assert_resolves(dir, "l1@example.org", "u@example.org");
	FAILS(directory_resolve(dir, "l0@example.org", &out, &n, E),
	      "over 8 levels");
}

static void
resolve_catchall(void **state)
{
	struct directory *dir = *state;

	setup_domains(dir);
	add_user(dir, "postmaster@example.org");
	add_user(dir, "u@example.org");
	set_alias(dir, "@example.org", "postmaster@example.org");
	set_alias(dir, "al@example.org", "ext@elsewhere.example");
	assert_resolves(dir, "anything@example.org", "postmaster@example.org");
	/* Exact matches win over the catch-all. */
	assert_resolves(dir, "u@example.org", "u@example.org");
	assert_resolves(dir, "al@example.org", "ext@elsewhere.example");
	/* An alias into the domain reaches the catch-all too. */
	set_alias(dir, "x@example.net", "nobody@example.org");
	assert_resolves(dir, "x@example.net", "postmaster@example.org");
	/* Another domain's catch-all does not apply. */
	{
		char **out = NULL;
		size_t n = 0;

		EXPECT(directory_resolve(dir, "z@example.net", &out, &n, E), 0);
	}
}

static void
resolve_bound(void **state)
{
	struct directory *dir = *state;
	const char **dests;
	char **out = NULL;
	size_t n = 0;

	setup_domains(dir);
	dests = calloc(600, sizeof(*dests));
	for (int half = 0; half < 2; half++) {
		for (int i = 0; i < 600; i++) {
			char buf[64];

			snprintf(buf, sizeof(buf), "r%d-%d@elsewhere.example",
			         half, i);
			dests[i] = strdup(buf);
		}
		OK(directory_alias_set(
		    dir, half == 0 ? "h0@example.org" : "h1@example.org", dests,
		    600, E));
		for (int i = 0; i < 600; i++)
			free((char *)dests[i]);
	}
	free(dests);
	set_alias(dir, "all@example.org", "h0@example.org,h1@example.org");
	EXPECT(directory_resolve(dir, "h0@example.org", &out, &n, E), 1);
	assert_int_equal(n, 600);
	directory_strings_free(&out, n);
	FAILS(directory_resolve(dir, "all@example.org", &out, &n, E),
	      "over 1000 addresses");
	assert_null(out);
}

/* ---- app passwords ---- */

static void
app_passwords(void **state)
{
	struct directory *dir = *state;
	struct dir_app_password *list = NULL;
	size_t n = 0;

	setup_domains(dir);
	FAILS(directory_app_password_add(dir, "a@example.org", "phone", "h",
	                                 NULL, DIR_SERVICE_IMAP, E),
	      "no user a@example.org");
	add_user(dir, "a@example.org");
	OK(directory_app_password_add(dir, "a@example.org", "phone", "h1", "s1",
	                              DIR_SERVICE_IMAP | DIR_SERVICE_SMTP, E));
	OK(directory_app_password_add(dir, "a@example.org", "laptop", "h2",
	                              NULL, DIR_SERVICE_ALL, E));
	FAILS(directory_app_password_add(dir, "a@example.org", "phone", "h3",
	                                 NULL, DIR_SERVICE_IMAP, E),
	      "app password phone exists for a@example.org");
	FAILS(directory_app_password_add(dir, "a@example.org", "x", "h", NULL,
	                                 0, E),
	      "services");
	FAILS(directory_app_password_add(dir, "a@example.org", "x", "h", NULL,
	                                 0x10, E),
	      "services");
	FAILS(directory_app_password_add(dir, "a@example.org", "x", NULL, NULL,
	                                 1, E),
	      "password hash");
	OK(directory_app_password_list(dir, "a@example.org", &list, &n, E));
	assert_int_equal(n, 2);
	assert_string_equal(list[0].label, "laptop");
	assert_string_equal(list[0].password_hash, "h2");
	assert_null(list[0].scram);
	assert_int_equal(list[0].services, DIR_SERVICE_ALL);
	assert_string_equal(list[1].label, "phone");
	assert_string_equal(list[1].scram, "s1");
	assert_int_equal(list[1].services, DIR_SERVICE_IMAP | DIR_SERVICE_SMTP);
	assert_true(list[1].id > 0 && list[0].id != list[1].id);
	assert_true(list[1].created > 0);
	dir_app_passwords_free(&list, n);
	assert_null(list);
	OK(directory_app_password_del(dir, "a@example.org", "phone", E));
	FAILS(directory_app_password_del(dir, "a@example.org", "phone", E),
	      "no app password phone for a@example.org");
	OK(directory_app_password_list(dir, "a@example.org", &list, &n, E));
	assert_int_equal(n, 1);
	dir_app_passwords_free(&list, n);
	/* The same label for another user is fine. */
	add_user(dir, "b@example.org");
	OK(directory_app_password_add(dir, "b@example.org", "laptop", "h", NULL,
	                              DIR_SERVICE_POP3, E));
}

/* ---- sender permissions ---- */

static void
sender_allowed(void **state)
{
	struct directory *dir = *state;

	setup_domains(dir);
	add_user(dir, "u@example.org");
	add_user(dir, "v@example.org");
	set_alias(dir, "sales@example.org", "u@example.org,v@example.org");
	set_alias(dir, "team@example.org", "sales@example.org");
	set_alias(dir, "@example.org", "u@example.org");
	EXPECT(
	    directory_sender_allowed(dir, "u@example.org", "u@example.org", E),
	    1);
	EXPECT(directory_sender_allowed(dir, "u@example.org",
	                                "sales@example.org", E),
	       1);
	/* Only direct aliases, and a catch-all grants nothing. */
	EXPECT(directory_sender_allowed(dir, "u@example.org",
	                                "team@example.org", E),
	       0);
	EXPECT(directory_sender_allowed(dir, "u@example.org",
	                                "random@example.org", E),
	       0);
	EXPECT(
	    directory_sender_allowed(dir, "u@example.org", "v@example.org", E),
	    0);
	/* Grants: one address, or a whole domain. */
	OK(directory_sender_grant(dir, "u@example.org", "v@example.org", E));
	FAILS(directory_sender_grant(dir, "u@example.org", "v@example.org", E),
	      "may already send as v@example.org");
	EXPECT(
	    directory_sender_allowed(dir, "u@example.org", "v@example.org", E),
	    1);
	EXPECT(
	    directory_sender_allowed(dir, "v@example.org", "u@example.org", E),
	    0);
	OK(directory_sender_grant(dir, "v@example.org", "@example.net", E));
	EXPECT(directory_sender_allowed(dir, "v@example.org",
	                                "anyone@example.net", E),
	       1);
	EXPECT(directory_sender_allowed(dir, "v@example.org",
	                                "anyone@example.org", E),
	       0);
	OK(directory_sender_revoke(dir, "u@example.org", "v@example.org", E));
	EXPECT(
	    directory_sender_allowed(dir, "u@example.org", "v@example.org", E),
	    0);
	FAILS(directory_sender_revoke(dir, "u@example.org", "v@example.org", E),
	      "no grant");
	FAILS(directory_sender_grant(dir, "w@example.org", "v@example.org", E),
	      "no user w@example.org");
}

/* ---- hostile values ---- */

static void
metacharacters_verbatim(void **state)
{
	static const char *const addrs[] = {
	    "o'brien@example.org",
	    "\"x'; drop table users; --\"@example.org",
	    "\"a\\\"b\"@example.org",
	    "%_!?$1@example.org",
	};
	static const char *const hash = "$x$'\"\\;--%_?$1 DROP TABLE users;";
	static const char *const label = "it's \"work\"; DROP TABLE users; --";
	struct directory *dir = *state;
	struct dir_app_password *list = NULL;
	struct dir_user *users = NULL;
	struct dir_user u;
	size_t n = 0;

	setup_domains(dir);
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		u = (struct dir_user){.address = (char *)addrs[i],
		                      .password_hash = (char *)hash,
		                      .scram = (char *)label};
		OK(directory_user_add(dir, &u, E));
		EXPECT(directory_user_get(dir, addrs[i], &u, E), 1);
		assert_string_equal(u.address, addrs[i]);
		assert_string_equal(u.password_hash, hash);
		assert_string_equal(u.scram, label);
		dir_user_clear(&u);
		OK(directory_app_password_add(dir, addrs[i], label, hash, NULL,
		                              DIR_SERVICE_IMAP, E));
		OK(directory_app_password_list(dir, addrs[i], &list, &n, E));
		assert_int_equal(n, 1);
		assert_string_equal(list[0].label, label);
		assert_string_equal(list[0].password_hash, hash);
		dir_app_passwords_free(&list, n);
		assert_resolves(dir, addrs[i], addrs[i]);
	}
	/* A LIKE pattern character in a key matches only itself. */
	EXPECT(directory_user_get(dir, "%@example.org", &u, E), 0);
	set_alias(dir, "all@example.org", "o'brien@example.org");
	assert_resolves(dir, "all@example.org", "o'brien@example.org");
	OK(directory_user_list(dir, NULL, &users, &n, E));
	assert_int_equal(n, 4);
	dir_users_free(&users, n);
}

static void
invalid_input_refused(void **state)
{
	struct directory *dir = *state;
	char long_addr[400], long_label[80], *long_hash;
	struct dir_user u;

	setup_domains(dir);
	memset(long_addr, 'a', sizeof(long_addr));
	memcpy(long_addr + 321 - strlen("@example.org"), "@example.org",
	       strlen("@example.org") + 1);
	assert_int_equal(strlen(long_addr), 321);
	memset(long_label, 'l', sizeof(long_label) - 1);
	long_label[sizeof(long_label) - 1] = '\0';
	long_hash = malloc(5000);
	memset(long_hash, 'h', 4999);
	long_hash[4999] = '\0';

	FAILS(directory_user_get(dir, "", &u, E), "empty");
	FAILS(directory_user_get(dir, NULL, &u, E), "empty");
	FAILS(directory_user_get(dir, long_addr, &u, E), "over 320 bytes");
	/* A NUL cuts the string: what is left is no address. */
	FAILS(directory_user_get(dir, "a\0b@example.org", &u, E), "invalid");
	FAILS(directory_user_get(dir, "a\n@example.org", &u, E), "control");
	FAILS(directory_user_get(dir, "a\x7f@example.org", &u, E), "control");
	FAILS(directory_user_get(dir, "\xff@example.org", &u, E), "UTF-8");
	FAILS(directory_user_get(dir, "a@example.org\r", &u, E), "control");
	FAILS(directory_user_get(dir, "no-at-sign", &u, E), "invalid address");
	FAILS(directory_domain_add(dir, "a\x01.example", E), "control");
	add_user(dir, "a@example.org");
	FAILS(directory_app_password_add(dir, "a@example.org", long_label, "h",
	                                 NULL, 1, E),
	      "label over 64 bytes");
	FAILS(directory_app_password_add(dir, "a@example.org", "", "h", NULL, 1,
	                                 E),
	      "empty label");
	FAILS(directory_app_password_add(dir, "a@example.org", "a\tb", "h",
	                                 NULL, 1, E),
	      "control");
	FAILS(directory_user_set_password(dir, "a@example.org", long_hash, NULL,
	                                  E),
	      "over 4096 bytes");
	FAILS(directory_sender_allowed(dir, "a@example.org", "@example.org", E),
	      "invalid address");
	free(long_hash);
}

/* ---- performance (informational) ---- */

static void
lookup_timing(void **state)
{
	struct directory *dir = *state;
	int nusers = big ? 100000 : 2000;
	const char *params[3];
	struct timespec t0, t1;
	struct sql_conn *c;
	char addr[64];
	double us;

	OK(directory_domain_add(dir, "big.example", E));
	/* One transaction on a connection of our own (the directory API has
	 * no bulk insert). */
	c = raw_open();
	OK(sql_begin(c, E));
	params[1] = "big.example";
	params[2] = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g";
	for (int i = 0; i < nusers; i++) {
		snprintf(addr, sizeof(addr), "user%06d@big.example", i);
		params[0] = addr;
		OK(sql_exec(c,
		            "INSERT INTO users (address, domain,"
		            " password_hash, created) VALUES (?, ?, ?, 1)",
		            params, 3, NULL, NULL, NULL, E));
	}
	OK(sql_commit(c, E));
	sql_close(&c);

	srand(42);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 1000; i++) {
		struct dir_user u;

		snprintf(addr, sizeof(addr), "user%06d@big.example",
		         rand() % nusers);
		EXPECT(directory_user_get(dir, addr, &u, E), 1);
		dir_user_clear(&u);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 +
	      (double)(t1.tv_nsec - t0.tv_nsec)) /
	     1e3 / 1000;
	fprintf(stderr, "lookup_us=%.1f users=%d backend=%s\n", us, nusers,
	        sql_backend_name(backend));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(migrate_creates_version),
	    T(reopen_keeps_data),
	    T(version_checks),
	    T(domains),
	    T(domain_del_with_users),
	    T(user_add_get),
	    T(user_modify),
	    T(user_list),
	    T(user_del_cascades),
	    T(aliases),
	    T(resolve_basic),
	    T(resolve_chains),
	    T(resolve_loops),
	    T(resolve_depth),
	    T(resolve_catchall),
	    T(resolve_bound),
	    T(app_passwords),
	    T(sender_allowed),
	    T(metacharacters_verbatim),
	    T(invalid_input_refused),
	    T(lookup_timing),
	};

	/* Warnings from resolution (dangling aliases) are expected here. */
	log_init("test", LOG_LEVEL_ERROR, true);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
