/* Tests for the Sender Rewriting Scheme (src/mail/srs.c): known-answer
 * hashes, SRS0 and SRS1 round trips through one, two and three
 * forwarders, case changes, tampering, expiry around the 1024-day wrap,
 * secret rotation, malformed reverse addresses, and the secrets file. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mail/address.h"
#include "mail/srs.h"

#define DAY 19000 /* 2022-01-08; 19000 % 1024 = 568 = "ry" */
#define OUT_MAX 600

/* ------------------------------------------------------------ helpers */

/* One secret: seed, seed + 1, … */
static struct srs_keys
keys_one(uint8_t seed)
{
	struct srs_keys k;

	memset(&k, 0, sizeof(k));
	for (size_t i = 0; i < SRS_SECRET_LEN; i++)
		k.secret[0][i] = (uint8_t)(seed + i);
	k.n = 1;
	return k;
}

static void
forward_ok(const struct srs_keys *k, const char *sender, const char *domain,
           uint64_t day, char out[OUT_MAX])
{
	const char *why = NULL;

	if (srs_forward(k, sender, domain, day, out, OUT_MAX, &why) != 0)
		fail_msg("forward %s: %s", sender, why);
	assert_true(strlen(out) <= ADDRESS_MAX);
}

/* Reverse the local part of a whole address. */
static enum srs_reverse_result
reverse_addr(const struct srs_keys *k, const char *addr, uint64_t day,
             char out[OUT_MAX])
{
	char local[OUT_MAX];
	const char *at = strrchr(addr, '@');

	assert_non_null(at);
	assert_true((size_t)(at - addr) < sizeof(local));
	memcpy(local, addr, (size_t)(at - addr));
	local[at - addr] = '\0';
	return srs_reverse(k, local, day, out, OUT_MAX);
}

static void
upper(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)toupper((unsigned char)*s);
}

/* ---------------------------------------------------------- known answers */

/* Expected hashes computed independently with Python:
 *   k = bytes(range(1, 33))
 *   base64.b32encode(hmac.new(k, MSG, hashlib.sha256).digest())[:6].lower()
 * with MSG b"ry=example.org=alice" → "657ty3" and
 * b"first.example==657ty3=ry=example.org=alice" → "cbu5qs". */
static void
known_answer(void **state)
{
	struct srs_keys k = keys_one(1);
	char out[OUT_MAX], back[OUT_MAX];

	(void)state;
	forward_ok(&k, "alice@example.org", "first.example", DAY, out);
	assert_string_equal(out,
	                    "SRS0=657ty3=ry=example.org=alice@first.example");
	forward_ok(&k, "SRS0=657ty3=ry=example.org=alice@first.example",
	           "second.example", DAY, out);
	assert_string_equal(out, "SRS1=cbu5qs=first.example==657ty3=ry="
	                         "example.org=alice@second.example");
	assert_int_equal(srs_reverse(&k, "SRS0=657TY3=RY=example.org=alice",
	                             DAY, back, sizeof(back)),
	                 SRS_OK);
	assert_string_equal(back, "alice@example.org");
}

/* ------------------------------------------------------------ round trips */

static void
round_trip_srs0(void **state)
{
	static const char *const senders[] = {
	    "alice@example.org",
	    "Alice.Smith@Example.ORG",
	    "a@b",
	    "x+tag@sub.example.co.uk",
	    "\"quoted@local\"@example.net",
	    "user@[192.0.2.1]",
	    "SRS0=@odd.example", /* SRS-looking, not SRS: wrapped as is */
	    "SRS1=abc@odd.example",
	    "srs1=h=fwd=@odd.example",
	};
	struct srs_keys k = keys_one(7);
	char out[OUT_MAX], back[OUT_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(senders) / sizeof(senders[0]); i++) {
		forward_ok(&k, senders[i], "fwd.example", DAY, out);
		assert_true(strncmp(out, "SRS0=", 5) == 0);
		assert_int_equal(reverse_addr(&k, out, DAY, back), SRS_OK);
		assert_string_equal(back, senders[i]);
	}
}

/* A forwards alice's mail to B, which forwards it on: B's SRS1 reverses
 * to A's SRS0, which only A can reverse to alice. */
static void
second_forwarder(void **state)
{
	struct srs_keys a = keys_one(1), b = keys_one(100);
	char s0[OUT_MAX], s1[OUT_MAX], back[OUT_MAX], orig[OUT_MAX];

	(void)state;
	forward_ok(&a, "alice@example.org", "a.example", DAY, s0);
	forward_ok(&b, s0, "b.example", DAY + 1, s1);
	assert_true(strncmp(s1, "SRS1=", 5) == 0);
	assert_non_null(strstr(s1, "=a.example==")); /* first forwarder */
	assert_true(strcmp(strrchr(s1, '@'), "@b.example") == 0);

	assert_int_equal(reverse_addr(&b, s1, DAY + 2, back), SRS_OK);
	assert_string_equal(back, s0);
	assert_int_equal(reverse_addr(&a, s1, DAY + 2, orig), SRS_BAD_HASH);
	assert_int_equal(reverse_addr(&b, back, DAY + 2, orig), SRS_BAD_HASH);
	assert_int_equal(reverse_addr(&a, back, DAY + 2, orig), SRS_OK);
	assert_string_equal(orig, "alice@example.org");
}

/* C forwards B's SRS1: still SRS1 with A as first forwarder, signed by C,
 * and C's reverse goes straight to A. */
static void
srs1_of_srs1(void **state)
{
	struct srs_keys a = keys_one(1), b = keys_one(100), c = keys_one(200);
	char s0[OUT_MAX], s1[OUT_MAX], s1c[OUT_MAX], back[OUT_MAX],
	    orig[OUT_MAX];

	(void)state;
	forward_ok(&a, "alice@example.org", "a.example", DAY, s0);
	forward_ok(&b, s0, "b.example", DAY, s1);
	forward_ok(&c, s1, "c.example", DAY, s1c);
	assert_true(strncmp(s1c, "SRS1=", 5) == 0);
	/* Same text between hash and '@' (A's SRS0 keeps its place), other
	 * hash, other domain. */
	assert_int_equal(strrchr(s1c, '@') - s1c, strrchr(s1, '@') - s1);
	assert_memory_equal(s1c + 11, s1 + 11,
	                    (size_t)(strrchr(s1, '@') - s1) - 11);
	assert_true(strncmp(s1c + 11, "=a.example==", 12) == 0);
	assert_true(strcmp(strrchr(s1c, '@'), "@c.example") == 0);
	assert_true(strncmp(s1c, s1, 11) != 0);

	assert_int_equal(reverse_addr(&b, s1c, DAY, back), SRS_BAD_HASH);
	assert_int_equal(reverse_addr(&c, s1c, DAY, back), SRS_OK);
	assert_string_equal(back, s0);
	assert_int_equal(reverse_addr(&a, back, DAY, orig), SRS_OK);
	assert_string_equal(orig, "alice@example.org");
}

/* MTAs may change the case of a local part. */
static void
case_changes(void **state)
{
	struct srs_keys a = keys_one(1), b = keys_one(100);
	char s0[OUT_MAX], s1[OUT_MAX], back[OUT_MAX];

	(void)state;
	forward_ok(&a, "alice@example.org", "a.example", DAY, s0);
	forward_ok(&b, s0, "b.example", DAY, s1);
	upper(s0);
	upper(s1);
	assert_int_equal(reverse_addr(&a, s0, DAY, back), SRS_OK);
	assert_string_equal(back, "ALICE@EXAMPLE.ORG");
	assert_int_equal(reverse_addr(&b, s1, DAY, back), SRS_OK);
	assert_int_equal(strncmp(back, "SRS0=", 5), 0);
	assert_int_equal(reverse_addr(&a, back, DAY, s0), SRS_OK);
	assert_int_equal(strcasecmp(s0, "alice@example.org"), 0);
}

/* -------------------------------------------------------------- tampering */

static void
tampered(void **state)
{
	static const struct {
		const char *from, *to;
	} edits[] = {
	    {"SRS0=657ty3", "SRS0=657ty4"}, /* hash */
	    {"SRS0=657ty3", "SRS0=a57ty3"}, /* hash, first char */
	    {"=ry=", "=rz="},               /* timestamp, still young */
	    {"example.org", "example.net"}, /* domain */
	    {"=alice@", "=alicf@"},         /* local */
	    {"=alice@", "=alice2@"},        /* local, longer */
	    {"example.org=alice", "example.or=galice"}, /* moved '=' */
	};
	struct srs_keys k = keys_one(1);
	char out[OUT_MAX], back[OUT_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		char addr[OUT_MAX];
		char *p;

		forward_ok(&k, "alice@example.org", "first.example", DAY, out);
		p = strstr(out, edits[i].from);
		assert_non_null(p);
		snprintf(addr, sizeof(addr), "%.*s%s%s", (int)(p - out), out,
		         edits[i].to, p + strlen(edits[i].from));
		assert_int_equal(reverse_addr(&k, addr, DAY, back),
		                 SRS_BAD_HASH);
	}

	/* SRS1: the first forwarder and the rest are covered too. */
	forward_ok(&k, "SRS0=657ty3=ry=example.org=alice@first.example",
	           "second.example", DAY, out);
	assert_int_equal(reverse_addr(&k, out, DAY, back), SRS_OK);
	out[12] = 'g'; /* first.example → girst.example */
	assert_int_equal(reverse_addr(&k, out, DAY, back), SRS_BAD_HASH);
}

/* ------------------------------------------------------------------ time */

static enum srs_reverse_result
made_checked(uint64_t made, uint64_t checked)
{
	struct srs_keys k = keys_one(1);
	char out[OUT_MAX], back[OUT_MAX];

	forward_ok(&k, "alice@example.org", "first.example", made, out);
	return reverse_addr(&k, out, checked, back);
}

static void
expiry(void **state)
{
	(void)state;
	assert_int_equal(made_checked(DAY, DAY), SRS_OK);
	assert_int_equal(made_checked(DAY, DAY + SRS_MAX_AGE_DAYS), SRS_OK);
	assert_int_equal(made_checked(DAY, DAY + SRS_MAX_AGE_DAYS + 1),
	                 SRS_EXPIRED);
	assert_int_equal(made_checked(DAY, DAY + 500), SRS_EXPIRED);
	/* Around the wrap of the 10-bit day. */
	assert_int_equal(made_checked(1023, 1030), SRS_OK);
	assert_int_equal(made_checked(1023, 1023 + 22), SRS_EXPIRED);
	assert_int_equal(made_checked(19 * 1024 + 1020, 20 * 1024 + 3), SRS_OK);
	/* From the future: one day is another host's clock, two is not. */
	assert_int_equal(made_checked(DAY + 1, DAY), SRS_OK);
	assert_int_equal(made_checked(DAY + 2, DAY), SRS_EXPIRED);
	assert_int_equal(made_checked(DAY + 100, DAY), SRS_EXPIRED);
	assert_int_equal(made_checked(1024, 1023), SRS_OK);
	assert_int_equal(made_checked(1025, 1023), SRS_EXPIRED);
}

/* A bad hash is reported as such even on an expired address. */
static void
bad_hash_before_expired(void **state)
{
	struct srs_keys k = keys_one(1);
	char out[OUT_MAX];

	(void)state;
	assert_int_equal(srs_reverse(&k, "SRS0=aaaaaa=aa=example.org=alice",
	                             DAY, out, sizeof(out)),
	                 SRS_BAD_HASH);
	assert_int_equal(made_checked(DAY, DAY + 100), SRS_EXPIRED);
}

/* -------------------------------------------------------------- rotation */

static void
rotation(void **state)
{
	struct srs_keys a = keys_one(1), b = keys_one(50), ba = keys_one(50),
	                none;
	char out[OUT_MAX], back[OUT_MAX];

	(void)state;
	memcpy(ba.secret[1], a.secret[0], SRS_SECRET_LEN);
	ba.n = 2;
	memset(&none, 0, sizeof(none));

	forward_ok(&a, "alice@example.org", "first.example", DAY, out);
	assert_int_equal(reverse_addr(&ba, out, DAY, back), SRS_OK);
	assert_string_equal(back, "alice@example.org");
	assert_int_equal(reverse_addr(&b, out, DAY, back), SRS_BAD_HASH);
	assert_int_equal(reverse_addr(&none, out, DAY, back), SRS_BAD_HASH);

	/* New addresses are made with the first secret. */
	forward_ok(&ba, "alice@example.org", "first.example", DAY, out);
	assert_int_equal(reverse_addr(&b, out, DAY, back), SRS_OK);
	assert_int_equal(reverse_addr(&a, out, DAY, back), SRS_BAD_HASH);
}

/* ------------------------------------------------------ '=' in local parts */

static void
verp(void **state)
{
	static const char *const senders[] = {
	    "list-bounces+bob=example.net@lists.example.org",
	    "a=b=c@d.example",
	    "=@d.example",
	    "==x==@d.example",
	};
	struct srs_keys k = keys_one(3);
	char out[OUT_MAX], back[OUT_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(senders) / sizeof(senders[0]); i++) {
		forward_ok(&k, senders[i], "fwd.example", DAY, out);
		assert_int_equal(reverse_addr(&k, out, DAY, back), SRS_OK);
		assert_string_equal(back, senders[i]);
	}
}

/* ----------------------------------------------------------------- limits */

static void
too_long(void **state)
{
	struct srs_keys k = keys_one(1);
	char sender[400], out[OUT_MAX], back[OUT_MAX];
	const char *why = NULL;
	size_t fixed, n;

	(void)state;
	/* "SRS0=" hash "=" TT "=" "d.example" "=" local "@" "f.example" */
	fixed = 5 + SRS_HASH_LEN + 1 + 2 + 1 + 9 + 1 + 1 + 9;
	n = ADDRESS_MAX - fixed; /* the longest local part that fits */
	memset(sender, 'x', n);
	snprintf(sender + n, sizeof(sender) - n, "@d.example");
	forward_ok(&k, sender, "f.example", DAY, out);
	assert_int_equal(strlen(out), ADDRESS_MAX);
	assert_true(strlen(sender) - strlen("@d.example") > ADDRESS_LOCAL_MAX);
	assert_int_equal(reverse_addr(&k, out, DAY, back), SRS_OK);
	assert_string_equal(back, sender);

	/* Exactly the room needed, and one byte less. */
	assert_int_equal(srs_forward(&k, sender, "f.example", DAY, out,
	                             ADDRESS_MAX + 1, &why),
	                 0);
	assert_int_equal(
	    srs_forward(&k, sender, "f.example", DAY, out, ADDRESS_MAX, &why),
	    -1);
	assert_string_equal(why, "SRS address too long");

	/* One octet over ADDRESS_MAX. */
	memset(sender, 'x', n + 1);
	snprintf(sender + n + 1, sizeof(sender) - n - 1, "@d.example");
	why = NULL;
	assert_int_equal(
	    srs_forward(&k, sender, "f.example", DAY, out, sizeof(out), &why),
	    -1);
	assert_string_equal(why, "SRS address too long");

	/* A sender far too long. */
	memset(sender, 'y', sizeof(sender) - 12);
	snprintf(sender + sizeof(sender) - 12, 12, "@d.example");
	assert_int_equal(
	    srs_forward(&k, sender, "f.example", DAY, out, sizeof(out), &why),
	    -1);

	/* SRS1 over the limit. */
	memset(sender, 'z', 300);
	memcpy(sender, "SRS0=hhhh=tt=d.example=", 23);
	snprintf(sender + 240, sizeof(sender) - 240, "@d.example");
	assert_int_equal(
	    srs_forward(&k, sender, "f.example", DAY, out, sizeof(out), &why),
	    -1);

	/* Reverse into too small a buffer. */
	forward_ok(&k, "alice@example.org", "first.example", DAY, out);
	*strrchr(out, '@') = '\0';
	assert_int_equal(
	    srs_reverse(&k, out, DAY, back, sizeof("alice@example.org")),
	    SRS_OK);
	assert_int_equal(
	    srs_reverse(&k, out, DAY, back, sizeof("alice@example.org") - 1),
	    SRS_MALFORMED);
}

static void
forward_refused(void **state)
{
	static const char *const senders[] = {
	    "",
	    "alice",
	    "@example.org",
	    "alice@",
	    "al ice@example.org",
	    "alice@exa\tmple.org",
	    "alice\r@example.org",
	    "alice\x7f@example.org",
	    "alice@example=org",
	};
	struct srs_keys k = keys_one(1), none;
	char out[OUT_MAX];
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof(senders) / sizeof(senders[0]); i++) {
		why = NULL;
		assert_int_equal(srs_forward(&k, senders[i], "f.example", DAY,
		                             out, sizeof(out), &why),
		                 -1);
		assert_non_null(why);
	}
	/* Our own domain must not be ambiguous either. */
	for (size_t i = 0; i < 4; i++) {
		static const char *const bad[] = {"", "f@x", "f=x", "f x"};

		why = NULL;
		assert_int_equal(
		    srs_forward(&k, "a@b", bad[i], DAY, out, sizeof(out), &why),
		    -1);
		assert_string_equal(why, "bad SRS domain");
	}
	memset(&none, 0, sizeof(none));
	assert_int_equal(
	    srs_forward(&none, "a@b", "f.example", DAY, out, sizeof(out), &why),
	    -1);
	assert_non_null(why);
}

static void
malformed(void **state)
{
	static const char *const locals[] = {
	    "",
	    "alice",
	    "SRS0",
	    "SRS0=",
	    "SRS0=abc",
	    "SRS0=abcdef",
	    "SRS0=abcdef=",
	    "SRS0=abcdef=aa",
	    "SRS0=abcdef=aa=",
	    "SRS0=abcdef=aa=dom",
	    "SRS0=abcdef=aa=dom=",
	    "SRS0=abcdef=aa==local",
	    "SRS0=abcdef=a1=dom=loc",  /* '1' is not base32 */
	    "SRS0=abcdef=a=dom=loc",   /* short timestamp */
	    "SRS0=abcdef=aaa=dom=loc", /* long timestamp */
	    "SRS0=abcde=aa=dom=loc",   /* short hash */
	    "SRS0=abcdefg=aa=dom=loc", /* long hash */
	    "SRS0=abcde0=aa=dom=loc",  /* '0' is not base32 */
	    "SRS0=abcd-f=aa=dom=loc",
	    "SRS0=abcdef=aa=d@m=loc",   /* '@' in the domain */
	    "SRS0=abcdef=aa=dom=lo c",  /* space */
	    "SRS0=abcdef=aa=dom=lo\tc", /* control */
	    "SRS0=abcdef=aa=dom=lo\x01",
	    "SRS0=abcdef=aa=dom=lo\x7f",
	    " SRS0=abcdef=aa=dom=loc",
	    "SRS2=abcdef=aa=dom=loc",
	    "SRS=abcdef=aa=dom=loc",
	    "SRS0-abcdef=aa=dom=loc",
	    "SRS1=",
	    "SRS1=abcdef",
	    "SRS1=abcdef=",
	    "SRS1=abcdef=fwd",
	    "SRS1=abcdef=fwd=",
	    "SRS1=abcdef=fwd=rest",  /* one '=', not two */
	    "SRS1=abcdef=fwd==",     /* empty rest */
	    "SRS1=abcdef===rest",    /* empty forwarder */
	    "SRS1=abcd=fwd==rest",   /* short hash */
	    "SRS1=abcdef=f@d==rest", /* '@' in the forwarder */
	    "SRS1=abcdef=fwd==re st",
	};
	struct srs_keys k = keys_one(1);
	char out[OUT_MAX], big[1200];

	(void)state;
	for (size_t i = 0; i < sizeof(locals) / sizeof(locals[0]); i++) {
		enum srs_reverse_result r =
		    srs_reverse(&k, locals[i], DAY, out, sizeof(out));

		if (r != SRS_MALFORMED)
			fail_msg("case %zu \"%s\": %d", i, locals[i], r);
	}

	/* Over 512 bytes, even though well formed. */
	snprintf(big, sizeof(big), "SRS0=abcdef=aa=dom=");
	memset(big + strlen(big), 'x', 600);
	big[19 + 600] = '\0';
	assert_int_equal(srs_reverse(&k, big, DAY, out, sizeof(out)),
	                 SRS_MALFORMED);
	/* A well-formed one with a wrong hash is a bad hash, not malformed. */
	big[500] = '\0';
	assert_int_equal(srs_reverse(&k, big, DAY, out, sizeof(out)),
	                 SRS_BAD_HASH);
}

static void
is_srs(void **state)
{
	(void)state;
	assert_true(srs_is_srs("SRS0=x"));
	assert_true(srs_is_srs("srs0="));
	assert_true(srs_is_srs("Srs1=abc"));
	assert_true(srs_is_srs("SRS1=abc=d==e"));
	assert_false(srs_is_srs("SRS2=abc"));
	assert_false(srs_is_srs("SRS0"));
	assert_false(srs_is_srs("SRS0-x"));
	assert_false(srs_is_srs("xSRS0=x"));
	assert_false(srs_is_srs(""));
	assert_false(srs_is_srs(NULL));
}

/* ----------------------------------------------------------- secrets file */

static char tmpdir[64];

static int
make_tmpdir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_srs.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
remove_tmpdir(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
path_of(char path[128], const char *name)
{
	snprintf(path, 128, "%s/%s", tmpdir, name);
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* A 32-byte secret of bytes seed, seed + 1, … in base64 (Python
 * base64.b64encode(bytes(range(1, 33))) for seed 1). */
#define SECRET_1 "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
#define SECRET_100 "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM="

static void
keys_create(void **state)
{
	struct srs_keys k, again;
	struct stat st;
	char path[128], *error = NULL, out[OUT_MAX], back[OUT_MAX];

	(void)state;
	path_of(path, "new.secret");
	assert_int_equal(srs_keys_load(path, false, &k, &error), -1);
	assert_non_null(error);
	assert_non_null(strstr(error, path));
	free(error);
	assert_int_not_equal(stat(path, &st), 0);

	error = NULL;
	assert_int_equal(srs_keys_load(path, true, &k, &error), 0);
	assert_null(error);
	assert_int_equal(k.n, 1);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	assert_int_equal(srs_keys_load(path, false, &again, &error), 0);
	assert_int_equal(again.n, 1);
	assert_memory_equal(k.secret[0], again.secret[0], SRS_SECRET_LEN);
	/* create on an existing file loads it, no new secret. */
	assert_int_equal(srs_keys_load(path, true, &again, &error), 0);
	assert_memory_equal(k.secret[0], again.secret[0], SRS_SECRET_LEN);

	forward_ok(&k, "alice@example.org", "f.example", DAY, out);
	assert_int_equal(reverse_addr(&again, out, DAY, back), SRS_OK);

	/* No directory to create it in. */
	path_of(path, "nodir/new.secret");
	assert_int_equal(srs_keys_load(path, true, &k, &error), -1);
	assert_non_null(error);
	free(error);
}

static void
keys_file(void **state)
{
	struct srs_keys k, one = keys_one(1), hundred = keys_one(100);
	char path[128], *error = NULL;

	(void)state;
	path_of(path, "two.secret");
	write_file(path, "# comment\n\n   \n" SECRET_100 "\r\n"
	                 "  # indented comment\n" SECRET_1 "  \n");
	assert_int_equal(srs_keys_load(path, false, &k, &error), 0);
	assert_null(error);
	assert_int_equal(k.n, 2);
	assert_memory_equal(k.secret[0], hundred.secret[0], SRS_SECRET_LEN);
	assert_memory_equal(k.secret[1], one.secret[0], SRS_SECRET_LEN);

	/* No final newline. */
	write_file(path, SECRET_1);
	assert_int_equal(srs_keys_load(path, false, &k, &error), 0);
	assert_int_equal(k.n, 1);
	assert_memory_equal(k.secret[0], one.secret[0], SRS_SECRET_LEN);

	/* More than SRS_SECRETS_MAX: the oldest are ignored. */
	{
		char text[2048];
		size_t len = 0;

		for (int i = 0; i < SRS_SECRETS_MAX + 2; i++)
			len += (size_t)snprintf(
			    text + len, sizeof(text) - len, "%s\n",
			    i == SRS_SECRETS_MAX + 1 ? "junk" : SECRET_1);
		write_file(path, text);
		assert_int_equal(srs_keys_load(path, false, &k, &error), 0);
		assert_int_equal(k.n, SRS_SECRETS_MAX);
	}
}

static void
keys_file_errors(void **state)
{
	static const struct {
		const char *text, *error;
	} cases[] = {
	    {"", ": no secret"},
	    {"# only a comment\n\n", ": no secret"},
	    {"# c\n" SECRET_1 "\nnot base64!\n", " line 3: not base64"},
	    {SECRET_1 "\n" SECRET_1 "=\n", " line 2: not base64"},
	    {"\n\nAQID\n", " line 3: secret of 3 bytes, not 32"},
	    {"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAh\n",
	     " line 1: secret of 33 bytes, not 32"},
	    {"AQ IDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\n",
	     " line 1: not base64"},
	};
	struct srs_keys k;
	char path[128], *error;

	(void)state;
	path_of(path, "bad.secret");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char want[256];

		write_file(path, cases[i].text);
		error = NULL;
		assert_int_equal(srs_keys_load(path, true, &k, &error), -1);
		assert_int_equal(k.n, 0);
		snprintf(want, sizeof(want), "%s%s", path, cases[i].error);
		assert_string_equal(error, want);
		free(error);
	}

	/* Over 64 KiB. */
	{
		char *text = malloc(70000);

		assert_non_null(text);
		memset(text, '#', 69999);
		text[69999] = '\0';
		write_file(path, text);
		free(text);
		error = NULL;
		assert_int_equal(srs_keys_load(path, false, &k, &error), -1);
		assert_non_null(strstr(error, "longer than"));
		free(error);
	}

	/* Not a regular file. */
	error = NULL;
	assert_int_equal(srs_keys_load(tmpdir, false, &k, &error), -1);
	assert_non_null(error);
	free(error);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(known_answer),
	    cmocka_unit_test(round_trip_srs0),
	    cmocka_unit_test(second_forwarder),
	    cmocka_unit_test(srs1_of_srs1),
	    cmocka_unit_test(case_changes),
	    cmocka_unit_test(tampered),
	    cmocka_unit_test(expiry),
	    cmocka_unit_test(bad_hash_before_expired),
	    cmocka_unit_test(rotation),
	    cmocka_unit_test(verp),
	    cmocka_unit_test(too_long),
	    cmocka_unit_test(forward_refused),
	    cmocka_unit_test(malformed),
	    cmocka_unit_test(is_srs),
	    cmocka_unit_test(keys_create),
	    cmocka_unit_test(keys_file),
	    cmocka_unit_test(keys_file_errors),
	};

	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
