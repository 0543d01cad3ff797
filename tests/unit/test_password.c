/* Tests for password hashes and SCRAM keys (src/directory/password.c):
 * cross-checked against Dovecot's own `doveadm pw` (a declared test
 * dependency: the test fails without it) and RFC 7677's SCRAM example. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <argon2.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "directory/password.h"

/* Fast Argon2id parameters for tests where the cost is not the point. */
static void
small_policy(struct password_policy *p)
{
	password_policy_default(p);
	p->argon2_time = 1;
	p->argon2_memory_kib = 8192;
	p->argon2_parallelism = 1;
}

static double
now_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
now_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/* ---- doveadm ------------------------------------------------------------ */

/* Run a shell command, return its first output line (malloc'd, no newline)
 * and its exit status. Arguments are single-quoted by the callers, so they
 * must hold no quote. */
static char *
run_line(const char *cmd, int *status_r)
{
	char line[2048];
	FILE *f;
	char *ret = NULL;

	f = popen(cmd, "r");
	assert_non_null(f);
	if (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		ret = strdup(line);
		assert_non_null(ret);
	}
	while (fgets(line, sizeof(line), f) != NULL)
		;
	*status_r = pclose(f);
	return ret;
}

/* `doveadm pw -s SCHEME -p PASSWORD` (scheme NULL: doveadm's default). */
static char *
doveadm_pw(const char *scheme, const char *password)
{
	char cmd[512];
	char *hash;
	int n, status;

	assert_null(strchr(password, '\''));
	if (scheme != NULL)
		n = snprintf(cmd, sizeof(cmd),
		             "doveadm pw -s '%s' -p '%s' 2>&1", scheme,
		             password);
	else
		n = snprintf(cmd, sizeof(cmd), "doveadm pw -p '%s' 2>&1",
		             password);
	assert_true(n > 0 && (size_t)n < sizeof(cmd));
	hash = run_line(cmd, &status);
	if (status != 0 || hash == NULL || hash[0] != '{')
		fail_msg("`%s` failed (status %d): %s (doveadm is a test "
		         "dependency: install dovecot-core)",
		         cmd, status, hash != NULL ? hash : "no output");
	return hash;
}

/* `doveadm pw -t HASH -p PASSWORD`: true when doveadm verifies it. */
static bool
doveadm_verifies(const char *hash, const char *password)
{
	char cmd[2048];
	char *out;
	int n, status;

	assert_null(strchr(password, '\''));
	assert_null(strchr(hash, '\''));
	n = snprintf(cmd, sizeof(cmd), "doveadm pw -t '%s' -p '%s' 2>&1", hash,
	             password);
	assert_true(n > 0 && (size_t)n < sizeof(cmd));
	out = run_line(cmd, &status);
	free(out);
	assert_true(WIFEXITED(status));
	assert_int_not_equal(WEXITSTATUS(status), 127); /* not found */
	return WEXITSTATUS(status) == 0;
}

static const char doveadm_password[] = "Corr3ct horse! battery";

static void
doveadm_hashes_verify(void **state)
{
	static const struct {
		const char *scheme; /* NULL: doveadm's default */
		const char *want;   /* password_scheme() */
		bool crypt;         /* also valid without "{SCHEME}" */
	} cases[] = {
	    {"ARGON2ID", "ARGON2ID", false},
	    {"ARGON2I", "ARGON2I", false},
	    {"BLF-CRYPT", "BLF-CRYPT", true},
	    {"SHA512-CRYPT", "SHA512-CRYPT", true},
	    {"SHA256-CRYPT", "SHA256-CRYPT", true},
	    {"CRYPT", "CRYPT", true},
	    {NULL, "CRYPT", true},
	    {"SSHA512", "SSHA512", false},
	    {"SHA512", "SHA512", false},
	    {"SCRAM-SHA-256", "SCRAM-SHA-256", false},
	    {"PLAIN", "PLAIN", false},
	    {"CLEAR", "CLEAR", false},
	};
	struct password_policy pol;
	size_t len = strlen(doveadm_password);

	(void)state;
	password_policy_default(&pol);
	pol.allow_plain = true;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *hash = doveadm_pw(cases[i].scheme, doveadm_password);

		assert_string_equal(password_scheme(hash), cases[i].want);
		assert_int_equal(
		    password_verify(&pol, hash, doveadm_password, len),
		    PASSWORD_OK);
		assert_int_equal(
		    password_verify(&pol, hash, doveadm_password, len - 1),
		    PASSWORD_MISMATCH);
		assert_int_equal(
		    password_verify(&pol, hash, "Corr3ct horse! batterY", len),
		    PASSWORD_MISMATCH);
		if (cases[i].crypt) {
			const char *bare = strchr(hash, '}') + 1;

			assert_string_equal(password_scheme(bare), "CRYPT");
			assert_int_equal(
			    password_verify(&pol, bare, doveadm_password, len),
			    PASSWORD_OK);
			assert_int_equal(password_verify(&pol, bare, "x", 1),
			                 PASSWORD_MISMATCH);
		}
		free(hash);
	}
}

/* The other direction: doveadm accepts what password_hash() writes. */
static void
doveadm_verifies_ours(void **state)
{
	struct password_policy pol;
	char *error = NULL, *hash;

	(void)state;
	small_policy(&pol);
	hash = password_hash(&pol, doveadm_password, strlen(doveadm_password),
	                     &error);
	assert_non_null(hash);
	assert_true(doveadm_verifies(hash, doveadm_password));
	assert_false(doveadm_verifies(hash, "wrong"));
	free(hash);
}

/* ---- fixed vectors (made once with doveadm 2.3.19.1 / libxcrypt) -------- */

static const struct {
	const char *hash;
	const char *password;
} vectors[] = {
    {"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$Z6rp+oaYcqfsQ60yF7dulg$"
     "1xVfIPv6q4kpWSr70neoHG4QszveVq3ZL7OB72Kw2AU",
     "Tr0ub4dor&3"},
    {"{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$zYFWSPCvX9vnbEVRiH8j6w$"
     "UCR/AL9qBTQT+jtZfE+YEFxfzj5C8UrYbBCTRQC1RiQ",
     "Tr0ub4dor&3"},
    {"{BLF-CRYPT}$2y$05$rsqSHBdOetwn6//.0Z1Hb.Sb.PqQf8/Sa8guAJ0/"
     "wzj37FfvTdFge",
     "Tr0ub4dor&3"},
    {"{SHA512-CRYPT}$6$cfUHFAo5Mtoz56xW$s5K4bnS8zUNYtOZosYT.XlyCpt2YTCt6t29W"
     "z3.4KoRCWsESm8C2Y7iejBzDAm/A.3wOA2Fvt4tGkiaxp0krv.",
     "Tr0ub4dor&3"},
    {"{SHA512-CRYPT}$6$rounds=10000$TCe1NojtWUq71xEN$Hj81LmzIG90gIpXec2/"
     "CAG8gNhhwssb2Zv5Oo.TNbYL7xVXwRfnTS/E5nefFUA5bonhbZDEOwOs6Mu.mAA0Lz0",
     "Tr0ub4dor&3"},
    {"{SHA256-CRYPT}$5$FvswCYxZiVFspir1$uZes0lHU825NPMK9jqwp.hrX9K1VMh.WM19H"
     "DBu8lYB",
     "Tr0ub4dor&3"},
    {"{CRYPT}$2y$05$W9/mwou/a3VkybZWinhTc.aVhX7/xNb407e9PeiNFjO/XJleqz1XW",
     "Tr0ub4dor&3"},
    {"{SSHA512}YCNy7LofwdR28l1FzMnlyGkHF7JKih/BV+8h0Y/a1Y0OVm9lHqLPyWHNSXrw"
     "kK1dWqHWun4RA/T77ZBepmXFg88sMP0=",
     "Tr0ub4dor&3"},
    {"{SHA512}xyu2IccEDPS2R0BjqaeXJpDiUvNa2+fPr/Wx7iMW7+c4LnI9QeATor+8M8MAfF"
     "DFhH0hqInM6DhTbqxyeAjeQA==",
     "Tr0ub4dor&3"},
    {"{SCRAM-SHA-256}4096,iIP18/beS+USbEsLHuCz1Q==,K3Ey7LH3Kx61ruqxR33/"
     "WwCl9i8r12Bj+CEIY4vjKr0=,vJYC8uAAhzIPx5VrnhPqjH5C69kQmac+zkXT7bqucK4=",
     "Tr0ub4dor&3"},
    /* Scheme names match case-insensitively. */
    {"{sha512-crypt}$6$cfUHFAo5Mtoz56xW$s5K4bnS8zUNYtOZosYT.XlyCpt2YTCt6t29W"
     "z3.4KoRCWsESm8C2Y7iejBzDAm/A.3wOA2Fvt4tGkiaxp0krv.",
     "Tr0ub4dor&3"},
    /* Bare crypt strings: yescrypt (libxcrypt), SHA-512, bcrypt. */
    {"$y$j9T$HVUoeQ1qBb.17o59yrPug0$RLzbYHXGCrBUSMfOCEXW1az947AhPsbpGGLPPL3"
     "O38.",
     "Tr0ub4dor&3"},
    {"$6$cfUHFAo5Mtoz56xW$s5K4bnS8zUNYtOZosYT.XlyCpt2YTCt6t29Wz3.4KoRCWsESm8"
     "C2Y7iejBzDAm/A.3wOA2Fvt4tGkiaxp0krv.",
     "Tr0ub4dor&3"},
    {"$2y$05$rsqSHBdOetwn6//.0Z1Hb.Sb.PqQf8/Sa8guAJ0/wzj37FfvTdFge",
     "Tr0ub4dor&3"},
    /* Unsalted SHA-512 may also be hex. */
    {"{SHA512}c72bb621c7040cf4b6474063a9a7972690e252f35adbe7cfaff5b1ee2316ef"
     "e7382e723d41e013a2bfbc33c3007c50c5847d21a889cce838536eac727808de40",
     "Tr0ub4dor&3"},
};

static void
fixed_vectors(void **state)
{
	struct password_policy pol;

	(void)state;
	password_policy_default(&pol);
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const char *h = vectors[i].hash, *pw = vectors[i].password;

		if (password_verify(&pol, h, pw, strlen(pw)) != PASSWORD_OK)
			fail_msg("vector %zu (%s) does not verify", i, h);
		assert_int_equal(password_verify(&pol, h, "Tr0ub4dor&4", 11),
		                 PASSWORD_MISMATCH);
	}
}

/* ---- own hashes --------------------------------------------------------- */

static void
own_hash_roundtrip(void **state)
{
	struct password_policy pol;
	char *error = NULL, *a, *b;

	(void)state;
	small_policy(&pol);
	pol.argon2_time = 2;
	pol.argon2_parallelism = 2;
	a = password_hash(&pol, "s3cret", 6, &error);
	b = password_hash(&pol, "s3cret", 6, &error);
	assert_non_null(a);
	assert_non_null(b);
	assert_true(
	    strncmp(a, "{ARGON2ID}$argon2id$v=19$m=8192,t=2,p=2$",
	            strlen("{ARGON2ID}$argon2id$v=19$m=8192,t=2,p=2$")) == 0);
	assert_string_equal(password_scheme(a), "ARGON2ID");
	/* Different salts, so different strings (and different salt fields). */
	assert_string_not_equal(a, b);
	assert_int_not_equal(strncmp(strrchr(a, 'p'), strrchr(b, 'p'), 26), 0);
	assert_int_equal(password_verify(&pol, a, "s3cret", 6), PASSWORD_OK);
	assert_int_equal(password_verify(&pol, b, "s3cret", 6), PASSWORD_OK);
	assert_int_equal(password_verify(&pol, a, "s3creT", 6),
	                 PASSWORD_MISMATCH);
	/* Verification follows the stored parameters, not the policy. */
	password_policy_default(&pol);
	assert_int_equal(password_verify(&pol, a, "s3cret", 6), PASSWORD_OK);
	free(a);
	free(b);
}

/* One lane, version 19: made and checked by libsodium, and the same
 * strings libargon2 makes and checks; others (two lanes, version 16)
 * still verify through libargon2. */
static void
argon2_two_libraries(void **state)
{
	static const uint8_t salt[16] = "0123456789abcdef";
	struct password_policy pol;
	char *error = NULL, *ours, enc[256], stored[300];

	(void)state;
	small_policy(&pol);
	ours = password_hash(&pol, "s3cret", 6, &error);
	assert_non_null(ours);
	assert_int_equal(strncmp(ours, "{ARGON2ID}$argon2id$v=19$m=8192,t=1,p=1$",
	                         40),
	                 0);
	assert_int_equal(argon2id_verify(ours + 10, "s3cret", 6), ARGON2_OK);
	assert_int_equal(argon2id_verify(ours + 10, "s3creT", 6),
	                 ARGON2_VERIFY_MISMATCH);
	free(ours);

	assert_int_equal(argon2id_hash_encoded(1, 8192, 1, "s3cret", 6, salt,
	                                       sizeof(salt), 32, enc,
	                                       sizeof(enc)),
	                 ARGON2_OK);
	snprintf(stored, sizeof(stored), "{ARGON2ID}%s", enc);
	assert_int_equal(password_verify(&pol, stored, "s3cret", 6),
	                 PASSWORD_OK);
	assert_int_equal(password_verify(&pol, stored, "s3creT", 6),
	                 PASSWORD_MISMATCH);

	assert_int_equal(argon2_hash(1, 8192, 1, "s3cret", 6, salt,
	                             sizeof(salt), NULL, 32, enc, sizeof(enc),
	                             Argon2_id, ARGON2_VERSION_10),
	                 ARGON2_OK);
	assert_null(strstr(enc, "v=19"));
	snprintf(stored, sizeof(stored), "{ARGON2ID}%s", enc);
	assert_int_equal(password_verify(&pol, stored, "s3cret", 6),
	                 PASSWORD_OK);
	assert_int_equal(password_verify(&pol, stored, "s3creT", 6),
	                 PASSWORD_MISMATCH);
}

static void
own_hash_refusals(void **state)
{
	struct password_policy pol;
	char *error = NULL, *h, *big;

	(void)state;
	small_policy(&pol);
	assert_null(password_hash(&pol, "", 0, &error));
	assert_non_null(error);
	free(error);
	error = NULL;
	assert_null(password_hash(&pol, "ab\0cd", 5, &error));
	assert_non_null(strstr(error, "NUL"));
	free(error);
	error = NULL;

	big = malloc(PASSWORD_MAX + 1);
	assert_non_null(big);
	memset(big, 'p', PASSWORD_MAX + 1);
	assert_null(password_hash(&pol, big, PASSWORD_MAX + 1, &error));
	assert_non_null(error);
	free(error);
	error = NULL;
	/* Exactly the maximum is fine, one more byte never verifies. */
	h = password_hash(&pol, big, PASSWORD_MAX, &error);
	assert_non_null(h);
	assert_int_equal(password_verify(&pol, h, big, PASSWORD_MAX),
	                 PASSWORD_OK);
	assert_int_equal(password_verify(&pol, h, big, PASSWORD_MAX + 1),
	                 PASSWORD_MISMATCH);
	free(h);
	free(big);

	/* Bad parameters come back as an error, not a crash. */
	pol.argon2_time = 0;
	assert_null(password_hash(&pol, "x", 1, &error));
	assert_non_null(error);
	free(error);
}

/* ---- policy, malformed input, bounds ------------------------------------ */

static void
plain_needs_policy(void **state)
{
	struct password_policy pol;

	(void)state;
	password_policy_default(&pol);
	assert_false(pol.allow_plain);
	assert_int_equal(password_verify(&pol, "{PLAIN}secret", "secret", 6),
	                 PASSWORD_SCHEME_REFUSED);
	assert_int_equal(password_verify(&pol, "{clear}secret", "secret", 6),
	                 PASSWORD_SCHEME_REFUSED);
	assert_int_equal(password_verify(&pol, "{PLAIN}secret", "nope", 4),
	                 PASSWORD_SCHEME_REFUSED);
	pol.allow_plain = true;
	assert_int_equal(password_verify(&pol, "{PLAIN}secret", "secret", 6),
	                 PASSWORD_OK);
	assert_int_equal(password_verify(&pol, "{Plain}secret", "secret", 6),
	                 PASSWORD_OK);
	assert_int_equal(password_verify(&pol, "{CLEAR}secret", "secret", 6),
	                 PASSWORD_OK);
	assert_int_equal(password_verify(&pol, "{PLAIN}secret", "secre", 5),
	                 PASSWORD_MISMATCH);
	assert_int_equal(password_verify(&pol, "{PLAIN}secret", "secret!", 7),
	                 PASSWORD_MISMATCH);
	assert_int_equal(password_verify(&pol, "{PLAIN}", "", 0), PASSWORD_OK);
	assert_string_equal(password_scheme("{plain}x"), "PLAIN");
}

static void
malformed_hashes(void **state)
{
	static const char *const bad[] = {
	    "",
	    "secret",
	    "{FOO}bar",
	    "{ARGON2ID",
	    "{}x",
	    "{ARGON2ID}",
	    /* Truncated Argon2 strings. */
	    "{ARGON2ID}$argon2id$v=19$m=65536,t=3",
	    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$Z6rp+oaYcqfsQ60yF7dulg",
	    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$Z6rp+oaYcqfsQ60yF7dulg$",
	    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$Z6rp+oaYcqfsQ60yF7dulg$"
	    "1xVfIPv6q4kpWSr70neo",
	    /* Wrong variant, absurd or malformed parameters. */
	    "{ARGON2ID}$argon2i$v=19$m=32768,t=4,p=1$zYFWSPCvX9vnbEVRiH8j6w$"
	    "UCR/AL9qBTQT+jtZfE+YEFxfzj5C8UrYbBCTRQC1RiQ",
	    "{ARGON2ID}$argon2id$v=19$m=99999999,t=3,p=1$Z6rp+oaYcqfsQ60yF7dul"
	    "g$1xVfIPv6q4kpWSr70neoHG4QszveVq3ZL7OB72Kw2AU",
	    "{ARGON2ID}$argon2id$v=19$m=65536,t=1000,p=1$Z6rp+oaYcqfsQ60yF7dul"
	    "g$1xVfIPv6q4kpWSr70neoHG4QszveVq3ZL7OB72Kw2AU",
	    "{ARGON2ID}$argon2id$v=19$m=065536,t=3,p=1$Z6rp+oaYcqfsQ60yF7dul"
	    "g$1xVfIPv6q4kpWSr70neoHG4QszveVq3ZL7OB72Kw2AU",
	    "{ARGON2ID}$argon2id$v=18$m=65536,t=3,p=1$Z6rp+oaYcqfsQ60yF7dulg$"
	    "1xVfIPv6q4kpWSr70neoHG4QszveVq3ZL7OB72Kw2AU",
	    "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$Z6rp+oaYcqfsQ60yF7dulg$"
	    "1xVfIPv6q4kpWSr70neoHG4QszveVq3ZL7OB72Kw2AU\n",
	    /* Garbage crypt. */
	    "{SHA512-CRYPT}garbage",
	    "{SHA512-CRYPT}$6$",
	    "{SHA512-CRYPT}$6$cfUHFAo5Mtoz56xW",
	    "{SHA512-CRYPT}$6$cfUHFAo5Mtoz56xW$tooshort",
	    "{SHA512-CRYPT}$6$cfUHFAo5Mtoz56xW$s5K4bnS8zUNYtOZosYT.XlyCpt2YTCt6"
	    "t29Wz3.4KoRCWsESm8C2Y7iejBzDAm/A.3wOA2Fvt4tGkiaxp0krv!",
	    "{SHA512-CRYPT}$5$FvswCYxZiVFspir1$uZes0lHU825NPMK9jqwp.hrX9K1VMh."
	    "WM19HDBu8lYB",
	    "{SHA512-CRYPT}$6$rounds=999999999$TCe1NojtWUq71xEN$Hj81LmzIG90gIp"
	    "Xec2/CAG8gNhhwssb2Zv5Oo.TNbYL7xVXwRfnTS/E5nefFUA5bonhbZDEOwOs6Mu"
	    ".mAA0Lz0",
	    "{BLF-CRYPT}$2y$31$rsqSHBdOetwn6//.0Z1Hb.Sb.PqQf8/Sa8guAJ0/"
	    "wzj37FfvTdFge",
	    "{BLF-CRYPT}$2y$5$rsqSHBdOetwn6//.0Z1Hb.Sb.PqQf8/Sa8guAJ0/"
	    "wzj37FfvTdFge",
	    "{BLF-CRYPT}$2y$05$short",
	    "{CRYPT}$1$abcdefgh$0123456789012345678901", /* MD5-crypt */
	    "{CRYPT}abJnggxhB/yWI",                      /* DES */
	    "$argon2id$v=19$m=65536,t=3,p=1$Z6rp+oaYcqfsQ60yF7dulg$"
	    "1xVfIPv6q4kpWSr70neoHG4QszveVq3ZL7OB72Kw2AU",
	    /* Bad base64 and wrong lengths in SSHA512 / SHA512. */
	    "{SSHA512}not base64!",
	    "{SSHA512}YCNy7LofwdR28l1FzMnlyGkHF7JKih/BV+8h0Y/a1Y0OVm9lHqLPyWHN"
	    "SXrwkK1dWqHWun4RA/T77ZBepmXFg88sMP0",
	    "{SSHA512}YCNy7LofwdR28l1FzMnlyGkHF7JKih/BV+8h0Y/a1Y0OVm9lHqLPyWHN"
	    "SXrwkK1dWqHWun4RA/T77ZBepmXFg88sMP1=",
	    "{SSHA512}xyu2IccEDPS2R0BjqaeXJpDiUvNa2+fPr/Wx7iMW7+c4LnI9QeATor+8"
	    "M8MAfFDFhH0hqInM6DhTbqxyeAjeQA==", /* digest, no salt */
	    "{SSHA512}",
	    "{SHA512}xyu2IccEDPS2R0BjqaeXJpDiUvNa2+fPr/Wx7iMW7+c4LnI9QeATor+8M"
	    "8MAfFDFhH0hqInM6DhTbqxyeAjeQ",
	    "{SHA512}abc",
	    "{SCRAM-SHA-256}4096,iIP18/beS+USbEsLHuCz1Q==,K3Ey7LH3Kx61ruqxR33/"
	    "WwCl9i8r12Bj+CEIY4vjKr0=",
	    "{SCRAM-SHA-256}1,iIP18/beS+USbEsLHuCz1Q==,K3Ey7LH3Kx61ruqxR33/WwCl"
	    "9i8r12Bj+CEIY4vjKr0=,vJYC8uAAhzIPx5VrnhPqjH5C69kQmac+zkXT7bqucK4=",
	};
	struct password_policy pol;
	char *huge;

	(void)state;
	password_policy_default(&pol);
	pol.allow_plain = true;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum password_result r;

		r = password_verify(&pol, bad[i], "Tr0ub4dor&3", 11);
		if (r != PASSWORD_INVALID_HASH)
			fail_msg("bad hash %zu (%s): got %d", i, bad[i], r);
	}
	assert_int_equal(password_verify(&pol, NULL, "x", 1),
	                 PASSWORD_INVALID_HASH);
	assert_string_equal(password_scheme("{FOO}bar"), "UNKNOWN");
	assert_string_equal(password_scheme("secret"), "UNKNOWN");
	assert_string_equal(password_scheme(NULL), "UNKNOWN");

	/* A stored hash over PASSWORD_HASH_MAX is invalid, even PLAIN. */
	huge = malloc(PASSWORD_HASH_MAX + 2);
	assert_non_null(huge);
	memcpy(huge, "{PLAIN}", 7);
	memset(huge + 7, 'a', PASSWORD_HASH_MAX + 1 - 7);
	huge[PASSWORD_HASH_MAX + 1] = '\0';
	assert_int_equal(
	    password_verify(&pol, huge, huge + 7, PASSWORD_HASH_MAX + 1 - 7),
	    PASSWORD_INVALID_HASH);
	huge[PASSWORD_HASH_MAX] = '\0';
	assert_int_equal(
	    password_verify(&pol, huge, huge + 7, PASSWORD_HASH_MAX - 7),
	    PASSWORD_OK);
	free(huge);
}

static void
password_bounds(void **state)
{
	/* SHA512-CRYPT of "Tr0ub4dor&3": crypt(3) would stop at a NUL. */
	const char *h = vectors[3].hash;
	struct password_policy pol;
	char *big;

	(void)state;
	password_policy_default(&pol);
	pol.allow_plain = true;
	assert_int_equal(password_verify(&pol, h, "Tr0ub4dor&3", 11),
	                 PASSWORD_OK);
	assert_int_equal(password_verify(&pol, h, "Tr0ub4dor&3\0junk", 16),
	                 PASSWORD_MISMATCH);
	assert_int_equal(password_verify(&pol, "{PLAIN}ab", "ab\0", 3),
	                 PASSWORD_MISMATCH);
	assert_int_equal(password_verify(&pol, h, NULL, 0), PASSWORD_MISMATCH);

	big = malloc(PASSWORD_MAX + 1);
	assert_non_null(big);
	memset(big, 'a', PASSWORD_MAX + 1);
	assert_int_equal(password_verify(&pol, h, big, PASSWORD_MAX + 1),
	                 PASSWORD_MISMATCH);
	assert_int_equal(password_verify(&pol, h, big, PASSWORD_MAX),
	                 PASSWORD_MISMATCH);
	assert_int_equal(
	    password_verify(&pol, vectors[7].hash, big, PASSWORD_MAX + 1),
	    PASSWORD_MISMATCH);
	/* The dummy refuses the same inputs without crashing. */
	password_verify_dummy(&pol, big, PASSWORD_MAX + 1);
	password_verify_dummy(&pol, "a\0b", 3);
	free(big);
}

/* ---- timing ------------------------------------------------------------- */

/* Medians of RUNS wrong-password verifications and of as many unknown-user
 * dummies, interleaved. The CPU time of this thread is what is compared: it
 * is the work done, and other load on the machine does not skew it (the
 * wall time, printed too, is what a client would see). */
static void
time_real_and_dummy(const struct password_policy *pol, double *real_r,
                    double *dummy_r)
{
	enum { RUNS = 7 };
	double real[RUNS], fake[RUNS], real_w[RUNS], fake_w[RUNS], c, w;
	char *error = NULL, *hash;

	hash = password_hash(pol, "right", 5, &error);
	assert_non_null(hash);
	password_verify_dummy(pol, "wrong", 5); /* makes the dummy hash */
	for (int i = 0; i < RUNS; i++) {
		w = now_wall();
		c = now_cpu();
		assert_int_equal(password_verify(pol, hash, "wrong", 5),
		                 PASSWORD_MISMATCH);
		real[i] = now_cpu() - c;
		real_w[i] = now_wall() - w;
		w = now_wall();
		c = now_cpu();
		password_verify_dummy(pol, "wrong", 5);
		fake[i] = now_cpu() - c;
		fake_w[i] = now_wall() - w;
	}
	free(hash);
	*real_r = median(real, RUNS);
	*dummy_r = median(fake, RUNS);
	fprintf(stderr,
	        "# argon2id m=%u KiB t=%u: wrong password %.1f ms CPU (%.1f "
	        "wall), unknown user %.1f ms CPU (%.1f wall), ratio %.2f\n",
	        pol->argon2_memory_kib, pol->argon2_time, *real_r * 1e3,
	        median(real_w, RUNS) * 1e3, *dummy_r * 1e3,
	        median(fake_w, RUNS) * 1e3, *dummy_r / *real_r);
}

/* An unknown user costs what a known user with a wrong password does. */
static void
dummy_costs_a_verification(void **state)
{
	struct password_policy pol;
	double r1, f1, r2, f2;

	(void)state;
	small_policy(&pol);
	time_real_and_dummy(&pol, &r1, &f1);
	assert_true(f1 / r1 > 0.5 && f1 / r1 < 2.0);
	/* A new policy makes a new dummy hash with its parameters (memory,
	 * not passes: under ASan, allocation dominates small hashes). */
	pol.argon2_memory_kib = 2 * 8192;
	time_real_and_dummy(&pol, &r2, &f2);
	assert_true(f2 / r2 > 0.5 && f2 / r2 < 2.0);
	assert_true(f2 > 1.3 * f1);
}

/* Informational: how many default-policy logins one core can check. */
static void
default_policy_rate(void **state)
{
	enum { RUNS = 5 };
	struct password_policy pol;
	char *error = NULL, *hash;
	double w, c;

	(void)state;
	password_policy_default(&pol);
	hash = password_hash(&pol, "right", 5, &error);
	assert_non_null(hash);
	w = now_wall();
	c = now_cpu();
	for (int i = 0; i < RUNS; i++)
		assert_int_equal(password_verify(&pol, hash, "wrong", 5),
		                 PASSWORD_MISMATCH);
	c = now_cpu() - c;
	w = now_wall() - w;
	fprintf(
	    stderr,
	    "# argon2id default policy (m=%u KiB t=%u p=%u): %.1f "
	    "verifications/s on one core (%.0f ms CPU, %.0f ms wall each)\n",
	    pol.argon2_memory_kib, pol.argon2_time, pol.argon2_parallelism,
	    RUNS / c, c / RUNS * 1e3, w / RUNS * 1e3);
	free(hash);
}

/* ---- SCRAM-SHA-256 ------------------------------------------------------ */

/* Reference derivation (RFC 5802 §3), written apart from password.c. */
static void
ref_scram_keys(const char *password, const uint8_t *salt, size_t salt_len,
               int iter, uint8_t stored[32], uint8_t server[32])
{
	uint8_t salted[32], client[32];

	assert_int_equal(PKCS5_PBKDF2_HMAC(password, (int)strlen(password),
	                                   salt, (int)salt_len, iter,
	                                   EVP_sha256(), 32, salted),
	                 1);
	assert_non_null(HMAC(EVP_sha256(), salted, 32,
	                     (const uint8_t *)"Client Key", 10, client, NULL));
	assert_int_equal(
	    EVP_Digest(client, 32, stored, NULL, EVP_sha256(), NULL), 1);
	assert_non_null(HMAC(EVP_sha256(), salted, 32,
	                     (const uint8_t *)"Server Key", 10, server, NULL));
}

static size_t
ref_b64_decode(const char *in, uint8_t *out)
{
	size_t len = strlen(in);
	int n = EVP_DecodeBlock(out, (const uint8_t *)in, (int)len);

	assert_true(n >= 0);
	while (len > 0 && in[len - 1] == '=') {
		len--;
		n--;
	}
	return (size_t)n;
}

static void
ref_b64_encode(const uint8_t *in, size_t len, char *out)
{
	EVP_EncodeBlock((uint8_t *)out, in, (int)len);
}

static void
scram_rfc7677(void **state)
{
	static const char auth[] =
	    "n=user,r=rOprNGfwEbeRWgbNEkqO,"
	    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
	    "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
	    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
	uint8_t salt[64], proof[64], want_sig[64], sig[32];
	uint8_t stored[32], server[32];
	char stored64[64], server64[64], text[256];
	struct scram_keys keys;
	struct password_policy pol;
	size_t salt_len;

	(void)state;
	salt_len = ref_b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", salt);
	assert_int_equal(salt_len, 16);
	assert_int_equal(
	    ref_b64_decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	                   proof),
	    32);
	assert_int_equal(
	    ref_b64_decode("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	                   want_sig),
	    32);
	ref_scram_keys("pencil", salt, salt_len, 4096, stored, server);
	ref_b64_encode(stored, 32, stored64);
	ref_b64_encode(server, 32, server64);

	snprintf(text, sizeof(text),
	         "SCRAM-SHA-256$4096$W22ZaJ0SNY7soEsUEjb6gQ==$%s$%s", stored64,
	         server64);
	assert_int_equal(password_scram_parse(text, &keys), 0);
	assert_int_equal(keys.iterations, 4096);
	assert_int_equal(keys.salt_len, 16);
	assert_memory_equal(keys.salt, salt, 16);
	assert_true(password_scram_check(&keys, (const uint8_t *)auth,
	                                 strlen(auth), proof, 32, sig));
	assert_memory_equal(sig, want_sig, 32);

	/* One flipped bit, or a proof of the wrong length, fails. */
	proof[7] ^= 0x10;
	assert_false(password_scram_check(&keys, (const uint8_t *)auth,
	                                  strlen(auth), proof, 32, sig));
	proof[7] ^= 0x10;
	assert_false(password_scram_check(&keys, (const uint8_t *)auth,
	                                  strlen(auth), proof, 31, sig));
	assert_false(password_scram_check(&keys, (const uint8_t *)auth,
	                                  strlen(auth), proof, 33, sig));
	assert_false(password_scram_check(&keys, (const uint8_t *)auth,
	                                  strlen(auth), proof, 0, sig));
	assert_false(password_scram_check(&keys, (const uint8_t *)auth,
	                                  strlen(auth) - 1, proof, 32, sig));

	/* password.c's own derivation, through Dovecot's stored form. */
	password_policy_default(&pol);
	snprintf(text, sizeof(text),
	         "{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,%s,%s", stored64,
	         server64);
	assert_int_equal(password_verify(&pol, text, "pencil", 6), PASSWORD_OK);
	assert_int_equal(password_verify(&pol, text, "pencils", 7),
	                 PASSWORD_MISMATCH);
}

static void
scram_keys_roundtrip(void **state)
{
	struct password_policy pol;
	struct scram_keys k1, k2;
	uint8_t stored[32], server[32];
	char *error = NULL, *a, *b;

	(void)state;
	password_policy_default(&pol);
	pol.scram_iterations = 4096;
	a = password_scram_keys(&pol, "pencil", 6, &error);
	b = password_scram_keys(&pol, "pencil", 6, &error);
	assert_non_null(a);
	assert_non_null(b);
	assert_true(strncmp(a, "SCRAM-SHA-256$4096$", 19) == 0);
	assert_int_equal(password_scram_parse(a, &k1), 0);
	assert_int_equal(password_scram_parse(b, &k2), 0);
	assert_int_equal(k1.iterations, 4096);
	assert_int_equal(k1.salt_len, 16);
	assert_memory_not_equal(k1.salt, k2.salt, 16);
	ref_scram_keys("pencil", k1.salt, k1.salt_len, 4096, stored, server);
	assert_memory_equal(k1.stored_key, stored, 32);
	assert_memory_equal(k1.server_key, server, 32);
	free(a);
	free(b);

	/* The policy's iteration count is used. */
	pol.scram_iterations = 10000;
	a = password_scram_keys(&pol, "pencil", 6, &error);
	assert_non_null(a);
	assert_int_equal(password_scram_parse(a, &k1), 0);
	assert_int_equal(k1.iterations, 10000);
	free(a);

	/* No SASLprep: non-ASCII and control characters are refused. */
	assert_null(password_scram_keys(&pol, "p\xc3\xa9ncil", 7, &error));
	assert_non_null(strstr(error, "SASLprep"));
	free(error);
	error = NULL;
	assert_null(password_scram_keys(&pol, "pen\tcil", 7, &error));
	assert_non_null(error);
	free(error);
	error = NULL;
	assert_null(password_scram_keys(&pol, "pen\0cil", 7, &error));
	assert_non_null(error);
	free(error);
	error = NULL;
	pol.scram_iterations = 100;
	assert_null(password_scram_keys(&pol, "pencil", 6, &error));
	assert_non_null(error);
	free(error);
}

static void
scram_parse_strict(void **state)
{
	static const char *const bad[] = {
	    "",
	    "SCRAM-SHA-1$4096$W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "Hq9TnErBZOgqz/SXQkTXe2L7KLezuGCBfFzfA3QqIAw=$"
	    "lPe5ntTYDFzTHQ7Rl7EOQ1yvuiK0fcRzVYbNsVn3lWA=",
	    "scram-sha-256$4096$W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "Hq9TnErBZOgqz/SXQkTXe2L7KLezuGCBfFzfA3QqIAw=$"
	    "lPe5ntTYDFzTHQ7Rl7EOQ1yvuiK0fcRzVYbNsVn3lWA=",
	    "SCRAM-SHA-256$4095$W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "Hq9TnErBZOgqz/SXQkTXe2L7KLezuGCBfFzfA3QqIAw=$"
	    "lPe5ntTYDFzTHQ7Rl7EOQ1yvuiK0fcRzVYbNsVn3lWA=",
	    "SCRAM-SHA-256$04096$W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "Hq9TnErBZOgqz/SXQkTXe2L7KLezuGCBfFzfA3QqIAw=$"
	    "lPe5ntTYDFzTHQ7Rl7EOQ1yvuiK0fcRzVYbNsVn3lWA=",
	    "SCRAM-SHA-256$99999999999$W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "Hq9TnErBZOgqz/SXQkTXe2L7KLezuGCBfFzfA3QqIAw=$"
	    "lPe5ntTYDFzTHQ7Rl7EOQ1yvuiK0fcRzVYbNsVn3lWA=",
	    "SCRAM-SHA-256$$W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "Hq9TnErBZOgqz/SXQkTXe2L7KLezuGCBfFzfA3QqIAw=$"
	    "lPe5ntTYDFzTHQ7Rl7EOQ1yvuiK0fcRzVYbNsVn3lWA=",
	    /* salt: bad base64, unpadded, too short */
	    "SCRAM-SHA-256$4096$W22ZaJ0SNY7soEsUEjb6g!==$"
	    "Hq9TnErBZOgqz/SXQkTXe2L7KLezuGCBfFzfA3QqIAw=$"
	    "lPe5ntTYDFzTHQ7Rl7EOQ1yvuiK0fcRzVYbNsVn3lWA=",
	    "SCRAM-SHA-256$4096$W22ZaJ0SNY7soEsUEjb6gQ$"
	    "Hq9TnErBZOgqz/SXQkTXe2L7KLezuGCBfFzfA3QqIAw=$"
	    "lPe5ntTYDFzTHQ7Rl7EOQ1yvuiK0fcRzVYbNsVn3lWA=",
	    "SCRAM-SHA-256$4096$AAAA$"
	    "Hq9TnErBZOgqz/SXQkTXe2L7KLezuGCBfFzfA3QqIAw=$"
	    "lPe5ntTYDFzTHQ7Rl7EOQ1yvuiK0fcRzVYbNsVn3lWA=",
	    /* StoredKey of 31 and 33 bytes */
	    "SCRAM-SHA-256$4096$W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "Hq9TnErBZOgqz/SXQkTXe2L7KLezuGCBfFzfA3QqIA==$"
	    "lPe5ntTYDFzTHQ7Rl7EOQ1yvuiK0fcRzVYbNsVn3lWA=",
	    "SCRAM-SHA-256$4096$W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "Hq9TnErBZOgqz/SXQkTXe2L7KLezuGCBfFzfA3QqIAwA$"
	    "lPe5ntTYDFzTHQ7Rl7EOQ1yvuiK0fcRzVYbNsVn3lWA=",
	    /* ServerKey missing, short, trailing field */
	    "SCRAM-SHA-256$4096$W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "Hq9TnErBZOgqz/SXQkTXe2L7KLezuGCBfFzfA3QqIAw=",
	    "SCRAM-SHA-256$4096$W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "Hq9TnErBZOgqz/SXQkTXe2L7KLezuGCBfFzfA3QqIAw=$",
	    "SCRAM-SHA-256$4096$W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "Hq9TnErBZOgqz/SXQkTXe2L7KLezuGCBfFzfA3QqIAw=$"
	    "lPe5ntTYDFzTHQ7Rl7EOQ1yvuiK0fcRzVYbNsVn3lWA=$",
	    "SCRAM-SHA-256$4096$W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "Hq9TnErBZOgqz/SXQkTXe2L7KLezuGCBfFzfA3QqIAw=$"
	    "lPe5ntTYDFzTHQ7Rl7EOQ1yvuiK0fcRzVYbNsVn3lWA= ",
	    /* non-canonical padding bits */
	    "SCRAM-SHA-256$4096$W22ZaJ0SNY7soEsUEjb6gR==$"
	    "Hq9TnErBZOgqz/SXQkTXe2L7KLezuGCBfFzfA3QqIAw=$"
	    "lPe5ntTYDFzTHQ7Rl7EOQ1yvuiK0fcRzVYbNsVn3lWA=",
	};
	static const char good[] =
	    "SCRAM-SHA-256$4096$W22ZaJ0SNY7soEsUEjb6gQ==$"
	    "Hq9TnErBZOgqz/SXQkTXe2L7KLezuGCBfFzfA3QqIAw=$"
	    "lPe5ntTYDFzTHQ7Rl7EOQ1yvuiK0fcRzVYbNsVn3lWA=";
	struct scram_keys keys;

	(void)state;
	assert_int_equal(password_scram_parse(good, &keys), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (password_scram_parse(bad[i], &keys) != -1)
			fail_msg("bad SCRAM text %zu accepted: %s", i, bad[i]);
	}
	assert_int_equal(password_scram_parse(NULL, &keys), -1);
}

static void
scram_fake_keys(void **state)
{
	static const uint8_t zero[32];
	uint8_t secret[32], secret2[32], proof[32], sig[32];
	struct scram_keys a, a2, b, c;

	(void)state;
	memset(secret, 0x42, sizeof(secret));
	memset(secret2, 0x43, sizeof(secret2));
	password_scram_fake("alice@example.org", secret, 10000, &a);
	password_scram_fake("alice@example.org", secret, 10000, &a2);
	password_scram_fake("bob@example.org", secret, 10000, &b);
	password_scram_fake("alice@example.org", secret2, 10000, &c);
	assert_int_equal(a.iterations, 10000);
	assert_int_equal(a.salt_len, 16);
	assert_memory_equal(&a.salt, &a2.salt, sizeof(a.salt));
	assert_memory_equal(a.stored_key, a2.stored_key, 32);
	assert_memory_equal(a.server_key, a2.server_key, 32);
	assert_memory_not_equal(a.salt, b.salt, 16);
	assert_memory_not_equal(a.stored_key, b.stored_key, 32);
	assert_memory_not_equal(a.server_key, b.server_key, 32);
	assert_memory_not_equal(a.salt, c.salt, 16);
	assert_memory_not_equal(a.stored_key, c.stored_key, 32);
	assert_memory_not_equal(a.stored_key, a.server_key, 32);
	assert_memory_not_equal(a.stored_key, zero, 32);
	assert_memory_not_equal(a.salt, a.stored_key, 16);

	/* No proof opens a fake account. */
	for (int i = 0; i < 16; i++) {
		assert_int_equal(RAND_bytes(proof, sizeof(proof)), 1);
		assert_false(password_scram_check(&a, (const uint8_t *)"x", 1,
		                                  proof, 32, sig));
	}
	assert_false(
	    password_scram_check(&a, (const uint8_t *)"x", 1, zero, 32, sig));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(doveadm_hashes_verify),
	    cmocka_unit_test(doveadm_verifies_ours),
	    cmocka_unit_test(fixed_vectors),
	    cmocka_unit_test(own_hash_roundtrip),
	    cmocka_unit_test(argon2_two_libraries),
	    cmocka_unit_test(own_hash_refusals),
	    cmocka_unit_test(plain_needs_policy),
	    cmocka_unit_test(malformed_hashes),
	    cmocka_unit_test(password_bounds),
	    cmocka_unit_test(dummy_costs_a_verification),
	    cmocka_unit_test(default_policy_rate),
	    cmocka_unit_test(scram_rfc7677),
	    cmocka_unit_test(scram_keys_roundtrip),
	    cmocka_unit_test(scram_parse_strict),
	    cmocka_unit_test(scram_fake_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
