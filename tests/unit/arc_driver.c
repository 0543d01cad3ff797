/* ARC driver for the interop tests: seal or validate the message on stdin.
 *   arc_driver seal KEYFILE DOMAIN SELECTOR -r AUTHRES [options] < msg
 *   arc_driver verify RECORDS [-n NOW] [-i REMOTE_IP] < msg
 * KEYFILE: PEM or a base64 Ed25519 seed; RECORDS: "name TXT-value" lines. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/xmalloc.h"
#include "mailauth/arc.h"

#define ARC_DRIVER_INPUT_MAX (64 * 1024 * 1024)
#define ARC_DRIVER_RECORDS_MAX 256

struct arc_driver_rr {
	char *name;
	char *value; /* NULL: status says why not */
	enum ma_dns_status status;
};

struct arc_driver_zone {
	size_t count;
	struct arc_driver_rr rr[ARC_DRIVER_RECORDS_MAX];
};

static void
usage(void)
{
	fprintf(stderr,
	        "usage: arc_driver seal KEYFILE DOMAIN SELECTOR -r AUTHRES "
	        "[-a ALG] [-t TIME] [-c none|pass|fail | -z RECORDS] "
	        "[-h NAME:NAME…] < message\n"
	        "       arc_driver verify RECORDS [-n NOW] [-i REMOTE_IP] "
	        "< message\n");
	exit(2);
}

/* All of f; with crlf, a LF without its CR gets one. */
static uint8_t *
slurp(FILE *f, bool crlf, size_t *len_r)
{
	struct buf b;
	int c, prev = 0;

	buf_init(&b, ARC_DRIVER_INPUT_MAX);
	while ((c = getc(f)) != EOF) {
		if ((crlf && c == '\n' && prev != '\r' &&
		     buf_append_byte(&b, '\r') < 0) ||
		    buf_append_byte(&b, (uint8_t)c) < 0) {
			fprintf(stderr, "input larger than %d bytes\n",
			        ARC_DRIVER_INPUT_MAX);
			exit(1);
		}
		prev = c;
	}
	*len_r = b.len;
	return b.data != NULL ? b.data : xcalloc(1, 1);
}

static EVP_PKEY *
key_load(const char *path)
{
	FILE *f = fopen(path, "r");
	uint8_t *text, seed[64];
	size_t len, n = 0, seedlen = 0;
	EVP_PKEY *pkey = NULL;

	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		exit(1);
	}
	text = slurp(f, false, &len);
	fclose(f);
	if (len > 10 && memcmp(text, "-----BEGIN", 10) == 0) {
		BIO *bio = BIO_new_mem_buf(text, (int)len);
		pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		BIO_free(bio);
	} else {
		for (size_t i = 0; i < len; i++)
			if (text[i] > ' ')
				text[n++] = text[i];
		if (base64_decode((const char *)text, n, seed, sizeof(seed),
		                  &seedlen) == 0 &&
		    seedlen == 32)
			pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519,
			                                    NULL, seed, 32);
	}
	free(text);
	if (pkey == NULL) {
		fprintf(stderr, "%s: neither a PEM key nor an Ed25519 seed\n",
		        path);
		exit(1);
	}
	return pkey;
}

static time_t
time_arg(const char *s)
{
	char *end;
	long long v = strtoll(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < 0)
		usage();
	return (time_t)v;
}

static void
zone_read(struct arc_driver_zone *z, const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		exit(1);
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		struct arc_driver_rr *rr;
		char *value;

		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		value = strpbrk(line, " \t");
		if (line[0] == '\0' || line[0] == '#' || value == NULL)
			continue;
		if (z->count == ARC_DRIVER_RECORDS_MAX) {
			fprintf(stderr, "%s: too many records\n", path);
			exit(1);
		}
		*value++ = '\0';
		value += strspn(value, " \t");
		rr = &z->rr[z->count++];
		rr->name = xstrdup(line);
		rr->status = MA_DNS_OK;
		if (strcmp(value, "NXDOMAIN") == 0)
			rr->status = MA_DNS_NXDOMAIN;
		else if (strcmp(value, "TEMPFAIL") == 0)
			rr->status = MA_DNS_TEMPFAIL;
		else
			rr->value = xstrdup(value);
	}
	free(line);
	fclose(f);
}

static void
zone_free(struct arc_driver_zone *z)
{
	for (size_t i = 0; i < z->count; i++) {
		free(z->rr[i].name);
		free(z->rr[i].value);
	}
	z->count = 0;
}

static int
zone_answer(void *arg, const char *name, enum ma_dns_type type,
            struct ma_dns_answer *ans)
{
	const struct arc_driver_zone *z = arg;

	ans->status = MA_DNS_NXDOMAIN;
	for (size_t i = 0; type == MA_DNS_TXT && i < z->count; i++) {
		const struct arc_driver_rr *rr = &z->rr[i];
		if (strcasecmp(rr->name, name) != 0)
			continue;
		if (rr->status != MA_DNS_OK) {
			ans->status = rr->status;
			return 0;
		}
		ans->rr =
		    xreallocarray(ans->rr, ans->count + 1, sizeof(*ans->rr));
		ans->rr[ans->count++] = xstrdup(rr->value);
		ans->status = MA_DNS_OK;
	}
	return 0;
}

static struct arc_verify_result *
validate(const char *records, const uint8_t *msg, size_t len, time_t now)
{
	static struct arc_driver_zone zone;
	struct ma_dns dns = {.lookup = zone_answer, .arg = &zone};
	struct arc_verify_result *res = NULL;

	zone_read(&zone, records);
	arc_verify(&dns, msg, len, now, NULL, &res);
	zone_free(&zone);
	return res;
}

static enum arc_status
status_arg(const char *s)
{
	if (strcmp(s, "none") == 0)
		return ARC_NONE;
	if (strcmp(s, "pass") == 0)
		return ARC_PASS;
	if (strcmp(s, "fail") == 0)
		return ARC_FAIL;
	usage();
	return ARC_FAIL;
}

/* "From:To" → a NULL-terminated vector pointing into list. */
static const char **
names_arg(char *list)
{
	size_t n = 2;
	const char **v;
	char *save = NULL;

	for (const char *p = list; *p != '\0'; p++)
		n += *p == ':';
	v = xcalloc(n, sizeof(*v));
	n = 0;
	for (char *t = strtok_r(list, ":", &save); t != NULL;
	     t = strtok_r(NULL, ":", &save))
		v[n++] = t;
	return v;
}

static int
cmd_seal(int argc, char **argv)
{
	struct arc_seal_params p = {.chain = ARC_NONE};
	const char **names = NULL, *records = NULL, *error = NULL;
	bool alg_set = false, chain_set = false;
	EVP_PKEY *key;
	uint8_t *msg;
	size_t len;
	char *fields;
	int c;

	if (argc < 4)
		usage();
	key = key_load(argv[1]);
	p.domain = argv[2];
	p.selector = argv[3];
	p.timestamp = time(NULL);
	optind = 4;
	while ((c = getopt(argc, argv, "r:a:t:c:z:h:")) != -1) {
		switch (c) {
		case 'r':
			p.authres = optarg;
			break;
		case 'a':
			alg_set = true;
			if (strcmp(optarg, "rsa-sha256") == 0)
				p.algorithm = DKIM_ALG_RSA_SHA256;
			else if (strcmp(optarg, "ed25519-sha256") == 0)
				p.algorithm = DKIM_ALG_ED25519_SHA256;
			else
				usage();
			break;
		case 't':
			p.timestamp = time_arg(optarg);
			break;
		case 'c':
			chain_set = true;
			p.chain = status_arg(optarg);
			break;
		case 'z': /* validate first; the status found is cv= */
			records = optarg;
			break;
		case 'h':
			names = names_arg(optarg);
			p.headers = names;
			break;
		default:
			usage();
		}
	}
	if (p.authres == NULL || (chain_set && records != NULL))
		usage();
	if (!alg_set)
		p.algorithm = EVP_PKEY_is_a(key, "ED25519")
		                  ? DKIM_ALG_ED25519_SHA256
		                  : DKIM_ALG_RSA_SHA256;
	msg = slurp(stdin, true, &len);
	if (records != NULL) {
		struct arc_verify_result *res =
		    validate(records, msg, len, time(NULL));
		p.chain = res->status;
		arc_verify_result_free(&res);
	}
	fields = arc_seal_message(msg, len, &p, key, &error);
	if (fields == NULL) {
		fprintf(stderr, "seal: %s\n", error);
		return 1;
	}
	fputs(fields, stdout);
	free(fields);
	free(msg);
	free(names);
	EVP_PKEY_free(key);
	return 0;
}

/* Line 1: the Authentication-Results resinfo; then one line per set. */
static int
cmd_verify(int argc, char **argv)
{
	struct arc_verify_result *res;
	const char *ip = NULL;
	time_t now = time(NULL);
	struct buf out;
	uint8_t *msg;
	size_t len;
	int c;

	if (argc < 2)
		usage();
	optind = 2;
	while ((c = getopt(argc, argv, "n:i:")) != -1) {
		switch (c) {
		case 'n':
			now = time_arg(optarg);
			break;
		case 'i':
			ip = optarg;
			break;
		default:
			usage();
		}
	}
	msg = slurp(stdin, true, &len);
	res = validate(argv[1], msg, len, now);
	buf_init(&out, 0);
	arc_ar_append(&out, res, ip);
	buf_printf(&out,
	           "\nstatus=%s reason=\"%s\" instance=%u "
	           "oldest-pass=%u count=%zu\n",
	           arc_status_str(res->status), arc_reason_str(res->reason),
	           res->reason_instance, res->oldest_pass, res->count);
	for (size_t i = 0; i < res->count; i++) {
		const struct arc_set_result *s = &res->set[i];
		buf_printf(&out,
		           "i=%u cv=%s as=%s as.d=%s as.s=%s ams=%s "
		           "aar=%s\n",
		           s->instance, arc_status_str(s->cv),
		           dkim_result_str(s->seal.result), s->seal.domain,
		           s->seal.selector, dkim_result_str(s->ams.result),
		           s->aar != NULL ? s->aar : "");
	}
	fwrite(out.data, 1, out.len, stdout);
	buf_free(&out);
	arc_verify_result_free(&res);
	free(msg);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "seal") == 0)
		return cmd_seal(argc - 1, argv + 1);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 1, argv + 1);
	usage();
	return 2;
}
