/* bench/dkim-bench.c — the in-process DKIM loop of bench/dkim.
 *
 * bench/dkim compiles this file twice into its temp dir (not part of the
 * meson build, never run by `make check`):
 *   -DBENCH_TERN      against tern's static libs (src/mailauth/dkim.h)
 *   -DBENCH_OPENDKIM  against libopendkim (Debian libopendkim-dev)
 * so that both libraries run under the same loop, clock and checks.
 *
 *   dkim-bench sign ALG KEYFILE DOMAIN SELECTOR HEADERS MSGFILE SECONDS OUT
 *   dkim-bench verify KEYNAME KEYRECORD MSGFILE SECONDS
 *
 * ALG: rsa-sha256 or ed25519-sha256; KEYFILE: PEM (PKCS#8); HEADERS: the
 * h= list, "from:to:subject"; relaxed/relaxed always; MSGFILE: the message
 * in CRLF form. verify answers the key lookup of KEYNAME
 * ("sel._domainkey.example.com") with KEYRECORD from memory, and anything
 * else with NXDOMAIN.
 *
 * One unmeasured operation, then operations until SECONDS of wall time
 * have passed; each one's result is checked (a signature was made; the
 * signature passed), and the first failure stops the run with exit 1.
 * Prints "ops N wall S cpu S" (cpu: user + system of this process,
 * CLOCK_PROCESS_CPUTIME_ID). sign writes its last DKIM-Signature field to
 * OUT ("DKIM-Signature: ...\r\n"), for bench/dkim to check elsewhere.
 *
 * What one operation is, per library, as a mail server would call it:
 *   tern sign:         dkim_sign_message() with the key loaded once (the
 *                      lookup role keeps its keys loaded);
 *   tern verify:       dkim_verify() through a struct ma_dns;
 *   libopendkim sign:  dkim_sign() (which takes the key as PEM text and
 *                      parses it for every handle), dkim_chunk() of the
 *                      whole message, dkim_eom(), dkim_getsighdr_d(),
 *                      dkim_free();
 *   libopendkim verify: dkim_verify(), dkim_chunk(), dkim_eom() with the
 *                      key from dkim_set_key_lookup(), dkim_free().
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_HEADERS 64

static const char *prog = "dkim-bench";

static void
fail(const char *what, const char *why)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, why ? why : "failed");
	exit(1);
}

static uint8_t *
read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data = NULL;
	size_t cap = 0, len = 0, n;

	if (f == NULL)
		fail(path, strerror(errno));
	do {
		if (len + 65536 + 1 > cap) {
			cap = (len + 65536 + 1) * 2;
			if ((data = realloc(data, cap)) == NULL)
				fail(path, "out of memory");
		}
		n = fread(data + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	if (ferror(f))
		fail(path, strerror(errno));
	fclose(f);
	data[len] = '\0';
	*len_r = len;
	return data;
}

/* "from:to:subject" → NULL-terminated array (in place). */
static const char **
split_headers(char *list)
{
	static const char *v[MAX_HEADERS + 1];
	size_t n = 0;

	for (char *tok = strtok(list, ":"); tok != NULL && n < MAX_HEADERS;
	     tok = strtok(NULL, ":"))
		v[n++] = tok;
	v[n] = NULL;
	return v;
}

static double
now_s(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------- backends
 * backend_init_sign / backend_sign / backend_init_verify / backend_verify:
 * sign returns the malloc'd "DKIM-Signature: …\r\n" field or NULL; verify
 * returns true when the (one) signature passed. */

static bool is_ed25519;
static const char *sign_domain, *sign_selector, *key_name, *key_record;
static const char **sign_headers;

#if defined(BENCH_TERN)

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "mailauth/dkim.h"

#define BACKEND "tern"

static EVP_PKEY *sign_key;

static void
backend_init_sign(const char *keyfile)
{
	FILE *f = fopen(keyfile, "r");

	if (f == NULL)
		fail(keyfile, strerror(errno));
	sign_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (sign_key == NULL)
		fail(keyfile, "not a PEM private key");
}

static char *
backend_sign(const uint8_t *msg, size_t len)
{
	struct dkim_sign_params p = {
	    .domain = sign_domain,
	    .selector = sign_selector,
	    .algorithm =
	        is_ed25519 ? DKIM_ALG_ED25519_SHA256 : DKIM_ALG_RSA_SHA256,
	    .header_canon = DKIM_CANON_RELAXED,
	    .body_canon = DKIM_CANON_RELAXED,
	    .headers = sign_headers,
	    .timestamp = time(NULL),
	};
	const char *error = NULL;
	char *field = dkim_sign_message(msg, len, &p, sign_key, &error);

	if (field == NULL)
		fail("dkim_sign_message", error);
	return field;
}

static int
zone_lookup(void *arg, const char *name, enum ma_dns_type type,
            struct ma_dns_answer *ans)
{
	(void)arg;
	ans->status = MA_DNS_NXDOMAIN;
	if (strcasecmp(name, key_name) != 0)
		return 0;
	if (type != MA_DNS_TXT) {
		ans->status = MA_DNS_NODATA;
		return 0;
	}
	if ((ans->rr = malloc(sizeof(*ans->rr))) == NULL ||
	    (ans->rr[0] = strdup(key_record)) == NULL)
		return -1;
	ans->count = 1;
	ans->status = MA_DNS_OK;
	return 0;
}

static const struct ma_dns zone = {.lookup = zone_lookup, .arg = NULL};

static void
backend_init_verify(void)
{
}

static bool
backend_verify(const uint8_t *msg, size_t len)
{
	struct dkim_verify_result res;

	dkim_verify(&zone, msg, len, time(NULL), NULL, &res);
	if (res.count != 1 || res.sig[0].result != DKIM_PASS) {
		fprintf(stderr, "%s: verify: %s (%s)\n", prog,
		        res.count ? dkim_result_str(res.sig[0].result) : "none",
		        res.count ? dkim_reason_str(res.sig[0].reason) : "");
		return false;
	}
	return true;
}

#elif defined(BENCH_OPENDKIM)

#include <opendkim/dkim.h>

#define BACKEND "libopendkim"

static DKIM_LIB *lib;
static unsigned char *sign_keytext;

static void
lib_init(void)
{
	if ((lib = dkim_init(NULL, NULL)) == NULL)
		fail("dkim_init", NULL);
}

static void
backend_init_sign(const char *keyfile)
{
	size_t len;

	lib_init();
	sign_keytext = read_file(keyfile, &len);
	if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS,
	                 (void *)sign_headers, sizeof(sign_headers)) !=
	    DKIM_STAT_OK)
		fail("dkim_options(DKIM_OPTS_SIGNHDRS)", NULL);
}

static char *
backend_sign(const uint8_t *msg, size_t len)
{
	DKIM_STAT st;
	DKIM *d;
	unsigned char *hdr = NULL;
	size_t hlen = 0;
	char *field;

	d = dkim_sign(lib, (const unsigned char *)"bench", NULL, sign_keytext,
	              (const unsigned char *)sign_selector,
	              (const unsigned char *)sign_domain, DKIM_CANON_RELAXED,
	              DKIM_CANON_RELAXED,
	              is_ed25519 ? DKIM_SIGN_ED25519SHA256
	                         : DKIM_SIGN_RSASHA256,
	              -1, &st);
	if (d == NULL)
		fail("dkim_sign", dkim_getresultstr(st));
	if ((st = dkim_chunk(d, (unsigned char *)msg, len)) != DKIM_STAT_OK ||
	    (st = dkim_chunk(d, NULL, 0)) != DKIM_STAT_OK ||
	    (st = dkim_eom(d, NULL)) != DKIM_STAT_OK ||
	    (st = dkim_getsighdr_d(d, strlen("DKIM-Signature: "), &hdr,
	                           &hlen)) != DKIM_STAT_OK) {
		fprintf(stderr, "%s: %s\n", prog, dkim_geterror(d));
		fail("libopendkim sign", dkim_getresultstr(st));
	}
	/* hdr is folded with bare LF: make it a CRLF header field */
	if ((field = malloc(16 + 2 * hlen + 3)) == NULL)
		fail("sign", "out of memory");
	size_t n = (size_t)sprintf(field, "DKIM-Signature: ");
	for (size_t i = 0; i < hlen; i++) {
		if (hdr[i] == '\n' && (i == 0 || hdr[i - 1] != '\r'))
			field[n++] = '\r';
		field[n++] = (char)hdr[i];
	}
	memcpy(field + n, "\r\n", 3);
	dkim_free(d);
	return field;
}

static DKIM_CBSTAT
key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, unsigned char *buf, size_t buflen)
{
	char name[600];

	(void)dkim;
	snprintf(name, sizeof(name), "%s._domainkey.%s",
	         (const char *)dkim_sig_getselector(sig),
	         (const char *)dkim_sig_getdomain(sig));
	if (strcasecmp(name, key_name) != 0)
		return DKIM_CBSTAT_NOTFOUND;
	if (strlen(key_record) >= buflen)
		return DKIM_CBSTAT_ERROR;
	strcpy((char *)buf, key_record);
	return DKIM_CBSTAT_CONTINUE;
}

static void
backend_init_verify(void)
{
	lib_init();
	if (dkim_set_key_lookup(lib, key_lookup) != DKIM_STAT_OK)
		fail("dkim_set_key_lookup", NULL);
}

static bool
backend_verify(const uint8_t *msg, size_t len)
{
	DKIM_STAT st, eom;
	DKIM_SIGINFO *sig;
	DKIM *d;
	bool pass;

	d = dkim_verify(lib, (const unsigned char *)"bench", NULL, &st);
	if (d == NULL)
		fail("dkim_verify", dkim_getresultstr(st));
	if ((st = dkim_chunk(d, (unsigned char *)msg, len)) != DKIM_STAT_OK ||
	    (st = dkim_chunk(d, NULL, 0)) != DKIM_STAT_OK) {
		fprintf(stderr, "%s: %s\n", prog, dkim_geterror(d));
		fail("dkim_chunk", dkim_getresultstr(st));
	}
	eom = dkim_eom(d, NULL);
	sig = dkim_getsignature(d);
	pass = eom == DKIM_STAT_OK && sig != NULL && DKIM_SIG_CHECK(sig);
	if (!pass)
		fprintf(stderr, "%s: verify: %s (%s)\n", prog,
		        dkim_getresultstr(eom),
		        sig ? dkim_sig_geterrorstr(dkim_sig_geterror(sig)) : "");
	dkim_free(d);
	return pass;
}

#else
#error "build with -DBENCH_TERN or -DBENCH_OPENDKIM"
#endif

/* ----------------------------------------------------------------- loop */

static void
usage(void)
{
	fprintf(stderr,
	        "usage: %s sign ALG KEYFILE DOMAIN SELECTOR HEADERS MSGFILE "
	        "SECONDS OUT\n"
	        "       %s verify KEYNAME KEYRECORD MSGFILE SECONDS\n"
	        "(backend: " BACKEND ")\n",
	        prog, prog);
	exit(2);
}

static double
parse_seconds(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (*s == '\0' || *end != '\0' || !(v > 0))
		usage();
	return v;
}

int
main(int argc, char **argv)
{
	const uint8_t *msg;
	size_t len;
	double seconds, wall0, cpu0, wall, cpu;
	unsigned long ops = 0;
	char *last = NULL;
	bool sign;

	if (argc < 2)
		usage();
	sign = strcmp(argv[1], "sign") == 0;
	if (sign && argc == 10) {
		if (strcmp(argv[2], "ed25519-sha256") == 0)
			is_ed25519 = true;
		else if (strcmp(argv[2], "rsa-sha256") != 0)
			usage();
		sign_domain = argv[4];
		sign_selector = argv[5];
		sign_headers = split_headers(argv[6]);
		msg = read_file(argv[7], &len);
		seconds = parse_seconds(argv[8]);
		backend_init_sign(argv[3]);
	} else if (!sign && strcmp(argv[1], "verify") == 0 && argc == 6) {
		key_name = argv[2];
		key_record = argv[3];
		msg = read_file(argv[4], &len);
		seconds = parse_seconds(argv[5]);
		backend_init_verify();
	} else {
		usage();
	}

	/* one unmeasured operation: first-use costs (OpenSSL's provider and
	 * algorithm fetches, page faults) stay out of the figure */
	if (sign)
		free(backend_sign(msg, len));
	else if (!backend_verify(msg, len))
		return 1;

	wall0 = now_s(CLOCK_MONOTONIC);
	cpu0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
	do {
		if (sign) {
			free(last);
			last = backend_sign(msg, len);
		} else if (!backend_verify(msg, len)) {
			return 1;
		}
		ops++;
	} while (now_s(CLOCK_MONOTONIC) - wall0 < seconds);
	wall = now_s(CLOCK_MONOTONIC) - wall0;
	cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0;

	if (sign) {
		FILE *out = fopen(argv[9], "wb");
		if (out == NULL || fputs(last, out) == EOF || fclose(out) != 0)
			fail(argv[9], strerror(errno));
		free(last);
	}
	printf("ops %lu wall %.6f cpu %.6f\n", ops, wall, cpu);
	return 0;
}
