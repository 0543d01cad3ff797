/* DKIM driver for the interop tests: sign or verify the message on stdin.
 *   dkim_driver sign KEYFILE DOMAIN SELECTOR [options] < msg
 *   dkim_driver verify RECORDS [-n NOW] [-L] < msg
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
#include "mailauth/dkim.h"

#define DRIVER_INPUT_MAX (64 * 1024 * 1024)
#define DRIVER_RECORDS_MAX 1024

struct driver_record {
	char *name;
	char *value; /* NULL with status */
	enum ma_dns_status status;
};

struct driver_zone {
	size_t count;
	struct driver_record rec[DRIVER_RECORDS_MAX];
};

static void
usage(void)
{
	fprintf(stderr,
	        "usage: dkim_driver sign KEYFILE DOMAIN SELECTOR [-a ALG] "
	        "[-c HEADER/BODY] [-t TIME] [-x EXPIRE] [-h NAME:NAME…] "
	        "[-i IDENTITY] [-l] < message\n"
	        "       dkim_driver verify RECORDS [-n NOW] [-L] < message\n");
	exit(2);
}

/* Read all of f; LF not preceded by CR becomes CRLF when crlf. */
static uint8_t *
read_all(FILE *f, bool crlf, size_t *len_r)
{
	struct buf b;
	int c, prev = 0;

	buf_init(&b, DRIVER_INPUT_MAX);
	while ((c = getc(f)) != EOF) {
		if (crlf && c == '\n' && prev != '\r' &&
		    buf_append_byte(&b, '\r') < 0)
			break;
		if (buf_append_byte(&b, (uint8_t)c) < 0)
			break;
		prev = c;
	}
	if (c != EOF) {
		fprintf(stderr, "input larger than %d bytes\n",
		        DRIVER_INPUT_MAX);
		exit(1);
	}
	*len_r = b.len;
	if (b.data == NULL)
		return xcalloc(1, 1);
	return b.data;
}

static EVP_PKEY *
load_key(const char *path)
{
	FILE *f = fopen(path, "r");
	uint8_t *text, seed[64];
	size_t len, n = 0, seedlen;
	EVP_PKEY *pkey = NULL;

	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		exit(1);
	}
	text = read_all(f, false, &len);
	fclose(f);
	if (len > 10 && memcmp(text, "-----BEGIN", 10) == 0) {
		BIO *bio = BIO_new_mem_buf(text, (int)len);
		pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		BIO_free(bio);
	} else {
		for (size_t i = 0; i < len; i++)
			if (text[i] > ' ')
				text[n++] = text[i];
		if (base64_decode((char *)text, n, seed, sizeof(seed),
		                  &seedlen) == 0 &&
		    seedlen == 32)
			pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519,
			                                    NULL, seed, 32);
	}
	free(text);
	if (pkey == NULL) {
		fprintf(stderr, "%s: not a PEM key or an Ed25519 seed\n", path);
		exit(1);
	}
	return pkey;
}

static time_t
parse_time(const char *s)
{
	char *end;
	long long v = strtoll(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < 0)
		usage();
	return (time_t)v;
}

/* "From:To" → NULL-terminated array (in place). */
static const char **
split_headers(char *list)
{
	size_t n = 1;
	const char **v;

	for (char *p = list; *p != '\0'; p++)
		n += *p == ':';
	v = xcalloc(n + 1, sizeof(*v));
	n = 0;
	for (char *tok = strtok(list, ":"); tok != NULL;
	     tok = strtok(NULL, ":"))
		v[n++] = tok;
	return v;
}

static enum dkim_canon
parse_canon(const char *s, size_t len)
{
	if (len == 6 && strncmp(s, "simple", 6) == 0)
		return DKIM_CANON_SIMPLE;
	if (len == 7 && strncmp(s, "relaxed", 7) == 0)
		return DKIM_CANON_RELAXED;
	usage();
	return DKIM_CANON_RELAXED;
}

static int
cmd_sign(int argc, char **argv)
{
	struct dkim_sign_params p = {0};
	const char **headers = NULL, *error = NULL;
	bool alg_given = false;
	EVP_PKEY *key;
	uint8_t *msg;
	size_t len;
	char *field;
	int c;

	if (argc < 4)
		usage();
	key = load_key(argv[1]);
	p.domain = argv[2];
	p.selector = argv[3];
	p.timestamp = time(NULL);
	optind = 4;
	while ((c = getopt(argc, argv, "a:c:t:x:h:i:l")) != -1) {
		const char *slash;
		switch (c) {
		case 'a':
			alg_given = true;
			if (strcmp(optarg, "rsa-sha256") == 0)
				p.algorithm = DKIM_ALG_RSA_SHA256;
			else if (strcmp(optarg, "ed25519-sha256") == 0)
				p.algorithm = DKIM_ALG_ED25519_SHA256;
			else
				usage();
			break;
		case 'c':
			slash = strchr(optarg, '/');
			p.header_canon =
			    parse_canon(optarg, slash ? (size_t)(slash - optarg)
			                              : strlen(optarg));
			p.body_canon =
			    slash ? parse_canon(slash + 1, strlen(slash + 1))
			          : DKIM_CANON_SIMPLE;
			break;
		case 't':
			p.timestamp = parse_time(optarg);
			break;
		case 'x':
			p.expiration = parse_time(optarg);
			break;
		case 'h':
			headers = split_headers(optarg);
			p.headers = headers;
			break;
		case 'i':
			p.identity = optarg;
			break;
		case 'l':
			p.body_length = true;
			break;
		default:
			usage();
		}
	}
	if (!alg_given)
		p.algorithm = EVP_PKEY_is_a(key, "ED25519")
		                  ? DKIM_ALG_ED25519_SHA256
		                  : DKIM_ALG_RSA_SHA256;
	msg = read_all(stdin, true, &len);
	field = dkim_sign_message(msg, len, &p, key, &error);
	if (field == NULL) {
		fprintf(stderr, "sign: %s\n", error);
		return 1;
	}
	fputs(field, stdout);
	free(field);
	free(msg);
	free(headers);
	EVP_PKEY_free(key);
	return 0;
}

static void
zone_load(struct driver_zone *z, const char *path)
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
		struct driver_record *r;
		char *sp, *v;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if ((sp = strpbrk(line, " \t")) == NULL ||
		    z->count == DRIVER_RECORDS_MAX)
			continue;
		*sp = '\0';
		v = sp + 1;
		v += strspn(v, " \t");
		r = &z->rec[z->count++];
		r->name = xstrdup(line);
		r->status = MA_DNS_OK;
		if (strcmp(v, "NXDOMAIN") == 0)
			r->status = MA_DNS_NXDOMAIN;
		else if (strncmp(v, "~~", 2) == 0)
			r->status = MA_DNS_TEMPFAIL;
		else
			r->value = xstrdup(strcmp(v, "\"\"") == 0 ? "" : v);
	}
	free(line);
	fclose(f);
}

static int
zone_lookup(void *arg, const char *name, enum ma_dns_type type,
            struct ma_dns_answer *ans)
{
	struct driver_zone *z = arg;

	ans->status = MA_DNS_NXDOMAIN;
	if (type != MA_DNS_TXT)
		return 0;
	for (size_t i = 0; i < z->count; i++) {
		struct driver_record *r = &z->rec[i];
		if (strcasecmp(r->name, name) != 0)
			continue;
		if (r->status != MA_DNS_OK) {
			ans->status = r->status;
			return 0;
		}
		ans->rr =
		    xreallocarray(ans->rr, ans->count + 1, sizeof(*ans->rr));
		ans->rr[ans->count++] = xstrdup(r->value);
		ans->status = MA_DNS_OK;
	}
	return 0;
}

static int
cmd_verify(int argc, char **argv)
{
	static struct driver_zone zone;
	struct ma_dns dns = {.lookup = zone_lookup, .arg = &zone};
	struct dkim_limits limits = {0};
	struct dkim_verify_result res;
	time_t now = time(NULL);
	struct buf out;
	uint8_t *msg;
	size_t len;
	int c;

	if (argc < 2)
		usage();
	zone_load(&zone, argv[1]);
	optind = 2;
	while ((c = getopt(argc, argv, "n:L")) != -1) {
		switch (c) {
		case 'n':
			now = parse_time(optarg);
			break;
		case 'L': /* legacy corpora: rsa-sha1, 512-bit keys */
			limits.rsa_sha1 = true;
			limits.rsa_bits_min = 512;
			break;
		default:
			usage();
		}
	}
	msg = read_all(stdin, true, &len);
	dkim_verify(&dns, msg, len, now, &limits, &res);
	buf_init(&out, 0);
	if (res.count == 0)
		buf_append_str(&out, "dkim=none\n");
	for (size_t i = 0; i < res.count; i++) {
		dkim_ar_append(&out, &res.sig[i]);
		buf_append_byte(&out, '\n');
	}
	fwrite(out.data, 1, out.len, stdout);
	buf_free(&out);
	free(msg);
	for (size_t i = 0; i < zone.count; i++) {
		free(zone.rec[i].name);
		free(zone.rec[i].value);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	if (strcmp(argv[1], "sign") == 0)
		return cmd_sign(argc - 1, argv + 1);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 1, argv + 1);
	usage();
	return 2;
}
