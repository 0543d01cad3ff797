/* Unit tests for directory/authlimit: delays, bans on the exact failure,
 * the window, expiry, persistence across reopen, unban and listing, trusted
 * networks, address canonical forms, per-account counting across IPs, the
 * LRU bound, bad CIDRs. Time is the now_ms the tests pass. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "directory/authlimit.h"
#include "test_tmpdir.h"

#define T0 1700000000000ULL /* an epoch in ms, like the callers' clock */
#define WINDOW (10 * 60 * 1000ULL)
#define BAN (60 * 60 * 1000ULL)

struct fixture {
	char *dir;
	char *db;
	struct authlimit *al;
};

static const struct authlimit_policy default_policy = {
    .max_failures = 10,
    .window_ms = WINDOW,
    .ban_ms = BAN,
    .delay_base_ms = 250,
    .delay_max_ms = 15000,
};

static struct authlimit *
open_ok(const char *db, const struct authlimit_policy *policy)
{
	char *error = NULL;
	struct authlimit *al = authlimit_open(db, policy, &error);

	if (al == NULL)
		fail_msg("authlimit_open: %s", error);
	assert_null(error);
	return al;
}

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	if ((f->dir = tmpdir_make("authlimit")) == NULL) {
		free(f);
		return -1;
	}
	f->db = xasprintf("%s/state.db", f->dir);
	f->al = open_ok(f->db, &default_policy);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	authlimit_close(&f->al);
	assert_null(f->al);
	tmpdir_remove(&f->dir);
	free(f->db);
	free(f);
	return 0;
}

/* n failures from ip for account, all at now; returns how many began a
 * ban. */
static int
fail_n(struct authlimit *al, const char *ip, const char *account, int n,
       uint64_t now)
{
	int bans = 0;

	for (int i = 0; i < n; i++)
		bans += authlimit_failure(al, ip, account, now) ? 1 : 0;
	return bans;
}

static void
free_list(char **ips, uint64_t *until, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ips[i]);
	free(ips);
	free(until);
}

static void
test_delay_grows_and_caps(void **state)
{
	struct fixture *f = *state;
	static const uint64_t want[] = {250,  500,  1000,  2000,
	                                4000, 8000, 15000, 15000};
	const char *ip = "198.51.100.7";

	assert_int_equal(authlimit_delay(f->al, ip, "a@example.org", T0), 0);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_false(
		    authlimit_failure(f->al, ip, "a@example.org", T0 + i));
		assert_int_equal(
		    authlimit_delay(f->al, ip, "a@example.org", T0 + i),
		    want[i]);
		/* The IP alone, and the account alone from elsewhere. */
		assert_int_equal(authlimit_delay(f->al, ip, NULL, T0 + i),
		                 want[i]);
		assert_int_equal(authlimit_delay(f->al, "198.51.100.8",
		                                 "a@example.org", T0 + i),
		                 want[i]);
	}
	assert_int_equal(
	    authlimit_delay(f->al, "198.51.100.9", "b@example.org", T0), 0);
	assert_int_equal(authlimit_banned(f->al, ip, T0), 0);
}

static void
test_ban_on_tenth(void **state)
{
	struct fixture *f = *state;
	const char *ip = "203.0.113.50";

	for (int i = 1; i <= 9; i++) {
		assert_false(authlimit_failure(f->al, ip, "u@example.org",
		                               T0 + (uint64_t)i));
		assert_int_equal(authlimit_banned(f->al, ip, T0 + (uint64_t)i),
		                 0);
	}
	assert_true(authlimit_failure(f->al, ip, "u@example.org", T0 + 10));
	assert_int_equal(authlimit_banned(f->al, ip, T0 + 10), BAN);
	/* Further failures do not start another ban nor extend this one. */
	assert_int_equal(fail_n(f->al, ip, "u@example.org", 5, T0 + 20), 0);
	assert_int_equal(authlimit_banned(f->al, ip, T0 + 1010), BAN - 1000);
	/* The right password does not lift it. */
	authlimit_success(f->al, ip, "u@example.org", T0 + 2010);
	assert_int_equal(authlimit_banned(f->al, ip, T0 + 2010), BAN - 2000);
	/* Another IP is not banned. */
	assert_int_equal(authlimit_banned(f->al, "203.0.113.51", T0 + 10), 0);
}

static void
test_window(void **state)
{
	struct fixture *f = *state;
	const char *ip = "203.0.113.60";

	/* 9 old failures, then more than a window later: they are gone. */
	assert_int_equal(fail_n(f->al, ip, NULL, 9, T0), 0);
	assert_int_equal(authlimit_delay(f->al, ip, NULL, T0 + WINDOW + 1), 0);
	assert_false(authlimit_failure(f->al, ip, NULL, T0 + WINDOW + 1));
	assert_int_equal(authlimit_delay(f->al, ip, NULL, T0 + WINDOW + 1),
	                 250);
	assert_int_equal(fail_n(f->al, ip, NULL, 8, T0 + WINDOW + 2), 0);
	assert_int_equal(authlimit_banned(f->al, ip, T0 + WINDOW + 2), 0);
	/* Spread over half a window, they add up. */
	ip = "203.0.113.61";
	assert_int_equal(fail_n(f->al, ip, NULL, 5, T0), 0);
	assert_int_equal(fail_n(f->al, ip, NULL, 4, T0 + WINDOW / 2), 0);
	assert_true(authlimit_failure(f->al, ip, NULL, T0 + WINDOW / 2 + 1));
	/* A clock that steps back still counts them as recent. */
	ip = "203.0.113.62";
	assert_int_equal(fail_n(f->al, ip, NULL, 3, T0 + WINDOW), 0);
	assert_int_equal(authlimit_delay(f->al, ip, NULL, T0), 1000);
}

static void
test_ban_expiry(void **state)
{
	struct fixture *f = *state;
	const char *ip = "2001:db8:ffff::1";
	char **ips, *error = NULL;
	uint64_t *until;
	size_t n;

	assert_int_equal(fail_n(f->al, ip, NULL, 10, T0), 1);
	assert_int_equal(authlimit_banned(f->al, ip, T0 + BAN - 1), 1);
	assert_int_equal(authlimit_banned(f->al, ip, T0 + BAN), 0);
	assert_int_equal(
	    authlimit_list_bans(f->al, T0 + BAN, &ips, &until, &n, &error), 0);
	assert_int_equal(n, 0);
	free_list(ips, until, n);
	/* Gone from the file too. */
	authlimit_close(&f->al);
	f->al = open_ok(f->db, &default_policy);
	assert_int_equal(authlimit_banned(f->al, ip, T0 + 1), 0);
	/* After the ban the IP starts afresh, and can be banned again. */
	assert_int_equal(fail_n(f->al, ip, NULL, 9, T0 + BAN + 5), 0);
	assert_true(authlimit_failure(f->al, ip, NULL, T0 + BAN + 6));
}

static void
test_persistence(void **state)
{
	struct fixture *f = *state;
	struct stat st;

	assert_int_equal(fail_n(f->al, "192.0.2.200", NULL, 10, T0), 1);
	assert_int_equal(fail_n(f->al, "2001:db8::dead", NULL, 10, T0 + 500),
	                 1);
	authlimit_close(&f->al);
	assert_int_equal(stat(f->db, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	f->al = open_ok(f->db, &default_policy);
	assert_int_equal(authlimit_banned(f->al, "192.0.2.200", T0 + 5000),
	                 BAN - 5000);
	assert_int_equal(authlimit_banned(f->al, "2001:db8::dead", T0 + 5000),
	                 BAN - 4500);
	assert_int_equal(authlimit_banned(f->al, "192.0.2.201", T0 + 5000), 0);
	/* Failure counts are memory only: a restart forgets them. */
	assert_int_equal(authlimit_delay(f->al, "192.0.2.200", NULL, T0 + 5000),
	                 0);
}

/* Rows written by hand in other spellings are read canonically and
 * rewritten, so an unban removes them for good. */
static void
test_noncanonical_rows(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;
	char *error = NULL;

	authlimit_close(&f->al);
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db,
	                 "INSERT INTO bans VALUES('::ffff:192.0.2.66', "
	                 "1700000100000), ('2001:DB8::0:66', "
	                 "1700000200000), ('junk', 1700000300000)",
	                 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	f->al = open_ok(f->db, &default_policy);
	assert_int_equal(authlimit_banned(f->al, "192.0.2.66", T0), 100000);
	assert_int_equal(authlimit_banned(f->al, "2001:db8::66", T0), 200000);
	assert_int_equal(authlimit_unban(f->al, "192.0.2.66", &error), 1);
	authlimit_close(&f->al);
	f->al = open_ok(f->db, &default_policy);
	assert_int_equal(authlimit_banned(f->al, "192.0.2.66", T0), 0);
	assert_int_equal(authlimit_banned(f->al, "2001:db8::66", T0), 200000);
}

static void
test_unban(void **state)
{
	struct fixture *f = *state;
	char *error = NULL;

	assert_int_equal(fail_n(f->al, "192.0.2.10", NULL, 10, T0), 1);
	assert_int_equal(authlimit_unban(f->al, "192.0.2.10", &error), 1);
	assert_null(error);
	assert_int_equal(authlimit_banned(f->al, "192.0.2.10", T0 + 1), 0);
	assert_int_equal(authlimit_unban(f->al, "192.0.2.10", &error), 0);
	assert_int_equal(authlimit_unban(f->al, "192.0.2.11", &error), 0);
	/* The mapped spelling names the same address. */
	assert_int_equal(fail_n(f->al, "192.0.2.12", NULL, 10, T0), 1);
	assert_int_equal(authlimit_unban(f->al, "::ffff:192.0.2.12", &error),
	                 1);
	authlimit_close(&f->al);
	f->al = open_ok(f->db, &default_policy);
	assert_int_equal(authlimit_banned(f->al, "192.0.2.10", T0 + 1), 0);
	assert_int_equal(authlimit_banned(f->al, "192.0.2.12", T0 + 1), 0);

	assert_int_equal(authlimit_unban(f->al, "not-an-ip", &error), -1);
	assert_non_null(error);
	assert_non_null(strstr(error, "not-an-ip"));
	free(error);
}

static void
test_list_bans(void **state)
{
	struct fixture *f = *state;
	char **ips, *error = NULL;
	uint64_t *until;
	size_t n;

	assert_int_equal(
	    authlimit_list_bans(f->al, T0, &ips, &until, &n, &error), 0);
	assert_int_equal(n, 0);
	free_list(ips, until, n);

	assert_int_equal(fail_n(f->al, "192.0.2.1", NULL, 10, T0), 1);
	assert_int_equal(fail_n(f->al, "2001:DB8:0:0::7", NULL, 10, T0 + 100),
	                 1);
	assert_int_equal(fail_n(f->al, "192.0.2.3", NULL, 10, T0 + 200), 1);
	assert_int_equal(authlimit_unban(f->al, "192.0.2.3", &error), 1);
	assert_int_equal(
	    authlimit_list_bans(f->al, T0 + 300, &ips, &until, &n, &error), 0);
	assert_null(error);
	assert_int_equal(n, 2);
	assert_string_equal(ips[0], "192.0.2.1");
	assert_int_equal(until[0], T0 + BAN);
	assert_string_equal(ips[1], "2001:db8::7");
	assert_int_equal(until[1], T0 + 100 + BAN);
	free_list(ips, until, n);

	/* Expired ones drop out; the list survives a reopen. */
	authlimit_close(&f->al);
	f->al = open_ok(f->db, &default_policy);
	assert_int_equal(
	    authlimit_list_bans(f->al, T0 + BAN + 50, &ips, &until, &n, &error),
	    0);
	assert_int_equal(n, 1);
	assert_string_equal(ips[0], "2001:db8::7");
	assert_int_equal(until[0], T0 + 100 + BAN);
	free_list(ips, until, n);
}

static void
test_trusted(void **state)
{
	static const char *const nets[] = {"192.0.2.0/24", "2001:db8::/32",
	                                   "127.0.0.1", "10.1.2.3/8"};
	static const char *const trusted_ips[] = {
	    "192.0.2.77",    "192.0.2.255",     "::ffff:192.0.2.9",
	    "2001:db8:1::5", "2001:db8:ffff::", "127.0.0.1",
	    "10.200.0.1",
	};
	struct fixture *f = *state;
	struct authlimit_policy p = default_policy;

	p.trusted = nets;
	p.ntrusted = sizeof(nets) / sizeof(nets[0]);
	authlimit_close(&f->al);
	f->al = open_ok(f->db, &p);
	for (size_t i = 0; i < sizeof(trusted_ips) / sizeof(trusted_ips[0]);
	     i++) {
		const char *ip = trusted_ips[i];

		assert_int_equal(fail_n(f->al, ip, "t@example.org", 25, T0), 0);
		assert_int_equal(authlimit_banned(f->al, ip, T0), 0);
		assert_int_equal(
		    authlimit_delay(f->al, ip, "t@example.org", T0), 0);
	}
	/* Neighbours are not trusted. */
	static const char *const others[] = {"192.0.3.1", "127.0.0.2",
	                                     "2001:db9::1", "11.0.0.1"};
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		assert_int_equal(fail_n(f->al, others[i], NULL, 10, T0), 1);
		assert_true(authlimit_banned(f->al, others[i], T0) > 0);
	}
	/* Failures from trusted IPs still count against the account. */
	assert_int_equal(
	    authlimit_delay(f->al, "198.51.100.1", "t@example.org", T0), 15000);
}

static void
test_mapped_and_canonical(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(fail_n(f->al, "::ffff:203.0.113.5", NULL, 5, T0), 0);
	assert_int_equal(fail_n(f->al, "203.0.113.5", NULL, 4, T0), 0);
	assert_int_equal(authlimit_delay(f->al, "::FFFF:203.0.113.5", NULL, T0),
	                 15000);
	assert_true(authlimit_failure(f->al, "::ffff:cb00:7105", NULL, T0));
	assert_int_equal(authlimit_banned(f->al, "203.0.113.5", T0), BAN);
	assert_int_equal(authlimit_banned(f->al, "::ffff:203.0.113.5", T0),
	                 BAN);

	/* IPv6 spellings of one address, and a zone, are one address. */
	assert_int_equal(fail_n(f->al, "2001:DB8:0:0:0:0:0:1", NULL, 3, T0), 0);
	assert_int_equal(fail_n(f->al, "2001:db8::1", NULL, 3, T0), 0);
	assert_int_equal(fail_n(f->al, "2001:db8:0::0:1", NULL, 3, T0), 0);
	assert_true(authlimit_failure(f->al, "2001:db8::1%eth0", NULL, T0));
	assert_int_equal(authlimit_banned(f->al, "2001:0db8::0001", T0), BAN);
	/* Per single address: the neighbour is free. */
	assert_int_equal(authlimit_banned(f->al, "2001:db8::2", T0), 0);

	/* Not an address: the account still counts, nothing else. */
	assert_false(authlimit_failure(f->al, "garbage", "g@example.org", T0));
	assert_int_equal(authlimit_banned(f->al, "garbage", T0), 0);
	assert_int_equal(authlimit_delay(f->al, "garbage", "g@example.org", T0),
	                 250);
}

static void
test_account_across_ips(void **state)
{
	struct fixture *f = *state;
	char ip[32];

	/* One guess from each of six addresses. */
	for (int i = 0; i < 6; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", 10 + i);
		assert_false(authlimit_failure(f->al, ip, "victim@example.org",
		                               T0 + (uint64_t)i));
		assert_int_equal(
		    authlimit_delay(f->al, ip, NULL, T0 + (uint64_t)i), 250);
	}
	assert_int_equal(authlimit_delay(f->al, "198.51.100.99",
	                                 "victim@example.org", T0 + 10),
	                 8000);
	/* Exact match: another spelling is another account (callers
	 * normalize). */
	assert_int_equal(authlimit_delay(f->al, "198.51.100.99",
	                                 "Victim@example.org", T0 + 10),
	                 0);
	/* A success clears the account, not the IP. */
	authlimit_success(f->al, "198.51.100.10", "victim@example.org",
	                  T0 + 20);
	assert_int_equal(authlimit_delay(f->al, "198.51.100.99",
	                                 "victim@example.org", T0 + 20),
	                 0);
	assert_int_equal(authlimit_delay(f->al, "198.51.100.10",
	                                 "victim@example.org", T0 + 20),
	                 250);
}

static void
ip_of(unsigned i, char *out, size_t size)
{
	snprintf(out, size, "10.%u.%u.%u", (i >> 16) & 0xff, (i >> 8) & 0xff,
	         i & 0xff);
}

static void
test_eviction_bound(void **state)
{
	struct fixture *f = *state;
	const char *a = "198.51.100.200";
	char ip[32], account[48];
	unsigned i;

	assert_false(authlimit_failure(f->al, a, "first@example.org", T0));
	/* Fill to the bound: a is the least recently updated. */
	for (i = 1; i < AUTHLIMIT_TRACK_MAX; i++) {
		ip_of(i, ip, sizeof(ip));
		snprintf(account, sizeof(account), "u%u@example.org", i);
		assert_false(authlimit_failure(f->al, ip, account, T0));
	}
	/* Updating a moves it to the front; the next newcomer evicts the
	 * oldest, 10.0.0.1. */
	assert_false(authlimit_failure(f->al, a, "first@example.org", T0 + 1));
	assert_false(
	    authlimit_failure(f->al, "10.255.0.0", "new@example.org", T0 + 1));
	assert_int_equal(authlimit_delay(f->al, a, NULL, T0 + 2), 500);
	assert_int_equal(authlimit_delay(f->al, "10.0.0.1", NULL, T0 + 2), 0);
	assert_int_equal(
	    authlimit_delay(f->al, "1.1.1.1", "u1@example.org", T0 + 2), 0);
	assert_int_equal(authlimit_delay(f->al, "10.0.0.2", NULL, T0 + 2), 250);
	/* A flood past the bound pushes a out too. */
	for (i = AUTHLIMIT_TRACK_MAX; i < 2 * AUTHLIMIT_TRACK_MAX + 1000; i++) {
		ip_of(i, ip, sizeof(ip));
		snprintf(account, sizeof(account), "u%u@example.org", i);
		assert_false(authlimit_failure(f->al, ip, account, T0 + 3));
	}
	assert_int_equal(authlimit_delay(f->al, a, "first@example.org", T0 + 4),
	                 0);
	ip_of(2 * AUTHLIMIT_TRACK_MAX + 999, ip, sizeof(ip));
	assert_int_equal(authlimit_delay(f->al, ip, NULL, T0 + 4), 250);
}

static void
test_bad_cidr(void **state)
{
	static const char *const bad[] = {
	    "10.0.0.0/33", "2001:db8::/129", "bogus",        "10.0.0.0/", "/24",
	    "10.0.0.0/-1", "10.0.0.0/8x",    "fe80::1%eth0", "",
	};
	struct fixture *f = *state;
	struct authlimit_policy p = default_policy;
	char *error = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *nets[] = {"127.0.0.0/8", bad[i]};

		p.trusted = nets;
		p.ntrusted = 2;
		assert_null(authlimit_open(f->db, &p, &error));
		assert_non_null(error);
		if (strstr(error, "auth_trusted_networks") == NULL ||
		    strstr(error, bad[i]) == NULL)
			fail_msg("error for \"%s\": %s", bad[i], error);
		free(error);
		error = NULL;
	}
	/* A bad policy and an unusable path are errors too. */
	p = default_policy;
	p.max_failures = 0;
	assert_null(authlimit_open(f->db, &p, &error));
	assert_non_null(error);
	free(error);
	error = NULL;
	assert_null(authlimit_open(f->dir, &default_policy, &error));
	assert_non_null(error);
	free(error);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_delay_grows_and_caps, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_ban_on_tenth, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_window, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ban_expiry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_noncanonical_rows, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_unban, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_bans, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_trusted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_mapped_and_canonical, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_account_across_ips, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_eviction_bound, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_bad_cidr, setup, teardown),
	};
	/* The bad-address warnings are expected; keep the output clean. */
	log_init("test", LOG_LEVEL_ERROR, true);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
