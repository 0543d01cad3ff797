/* SPF conformance driver: reads zone records and checks as tab-separated
 * lines on stdin, answers DNS from that table, prints one line per check.
 * Used by tests/integration/test_spf_suite.py for the RFC 7208/4408 suites.
 *
 * Input (fields escaped: \\ \t \n \r \xHH):
 *   reset                                  forget the zone
 *   zone NAME TYPE DATA                    TYPE: A AAAA MX TXT PTR CNAME
 *                                          TIMEOUT (MX data: "PREF HOST")
 *   check ID IDENTITY IP HELO MAILFROM RECEIVER   IDENTITY: mailfrom|helo
 * Output per check:
 *   ID RESULT EXPLANATION MECHANISM PROBLEM RECEIVED-SPF AUTH-RESULTS
 *
 * The table behaves like the suite's reference driver: a name that is not
 * in it is NXDOMAIN ("error." names time out), a name without records of the
 * type is NODATA, TIMEOUT before any record of the type is a timeout, CNAMEs
 * are followed (a loop is a DNS failure). A TXT string cannot carry a NUL
 * through dnsif's C strings, so NUL bytes are handed over as DEL (0x7f),
 * which no record syntax accepts: the record stays invalid rather than
 * silently cut short. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/xmalloc.h"
#include "mailauth/dnsif.h"
#include "mailauth/spf.h"

#define ZONE_TIMEOUT (-1)
#define ZONE_CNAME 5
#define CNAME_HOPS 8

struct zrec {
	char *name;
	int type;
	char *data;
	size_t len;
};

static struct zrec *zone;
static size_t nzone;

static int
type_code(const char *s)
{
	static const struct {
		const char *name;
		int type;
	} types[] = {
	    {"A", MA_DNS_A},           {"AAAA", MA_DNS_AAAA},
	    {"MX", MA_DNS_MX},         {"TXT", MA_DNS_TXT},
	    {"PTR", MA_DNS_PTR},       {"CNAME", ZONE_CNAME},
	    {"TIMEOUT", ZONE_TIMEOUT},
	};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(s, types[i].name) == 0)
			return types[i].type;
	return 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Unescape in place; returns the length (the result may hold NULs). */
static size_t
unescape(char *s)
{
	size_t o = 0;

	for (size_t i = 0; s[i] != '\0'; i++) {
		if (s[i] != '\\' || s[i + 1] == '\0') {
			s[o++] = s[i];
			continue;
		}
		i++;
		switch (s[i]) {
		case 't':
			s[o++] = '\t';
			break;
		case 'n':
			s[o++] = '\n';
			break;
		case 'r':
			s[o++] = '\r';
			break;
		case 'x':
			if (hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
				s[o++] = (char)(hexval(s[i + 1]) * 16 +
				                hexval(s[i + 2]));
				i += 2;
			} else {
				s[o++] = 'x';
			}
			break;
		default:
			s[o++] = s[i];
			break;
		}
	}
	s[o] = '\0';
	return o;
}

static void
print_escaped(const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\\')
			fputs("\\\\", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
}

static char *
strip_dot(const char *s, size_t len)
{
	if (len > 0 && s[len - 1] == '.')
		len--;
	return xstrndup(s, len);
}

/* The record as a dnsif answer string. */
static char *
rr_text(const struct zrec *z)
{
	char *t, *sp;

	switch (z->type) {
	case MA_DNS_TXT:
		t = xmalloc(z->len + 1);
		for (size_t i = 0; i < z->len; i++)
			t[i] = z->data[i] == '\0' ? '\x7f' : z->data[i];
		t[z->len] = '\0';
		return t;
	case MA_DNS_MX:
		sp = strchr(z->data, ' ');
		if (sp == NULL)
			return xstrdup(z->data);
		t = strip_dot(sp + 1, strlen(sp + 1));
		sp = xasprintf("%.*s %s", (int)(sp - z->data), z->data, t);
		free(t);
		return sp;
	case MA_DNS_PTR:
		return strip_dot(z->data, strlen(z->data));
	default:
		return xstrdup(z->data);
	}
}

static int
table_find(const char *name, enum ma_dns_type type, struct ma_dns_answer *ans,
           int hops)
{
	bool found = false;

	for (size_t i = 0; i < nzone; i++) {
		const struct zrec *z = &zone[i];

		if (strcasecmp(z->name, name) != 0)
			continue;
		found = true;
		if (z->type == ZONE_TIMEOUT) {
			if (ans->count == 0)
				ans->status = MA_DNS_TEMPFAIL;
			return 0;
		}
		if (z->type == ZONE_CNAME && ans->count == 0) {
			char *target = strip_dot(z->data, strlen(z->data));
			int rc = 0;

			if (hops >= CNAME_HOPS)
				ans->status = MA_DNS_TEMPFAIL;
			else
				rc = table_find(target, type, ans, hops + 1);
			free(target);
			return rc;
		}
		if (z->type != (int)type || ans->count >= MA_DNS_RR_MAX)
			continue;
		ans->rr =
		    xreallocarray(ans->rr, ans->count + 1, sizeof(*ans->rr));
		ans->rr[ans->count++] = rr_text(z);
		ans->status = MA_DNS_OK;
	}
	if (!found)
		ans->status = strncasecmp(name, "error.", 6) == 0
		                  ? MA_DNS_TEMPFAIL
		                  : MA_DNS_NXDOMAIN;
	else if (ans->count == 0 && ans->status != MA_DNS_TEMPFAIL)
		ans->status = MA_DNS_NODATA;
	return 0;
}

static int
table_lookup(void *arg, const char *name, enum ma_dns_type type,
             struct ma_dns_answer *ans)
{
	(void)arg;
	ans->status = MA_DNS_NODATA;
	return table_find(name, type, ans, 0);
}

static void
zone_reset(void)
{
	for (size_t i = 0; i < nzone; i++) {
		free(zone[i].name);
		free(zone[i].data);
	}
	free(zone);
	zone = NULL;
	nzone = 0;
}

static void
run_check(char **f, size_t nf)
{
	static const struct ma_dns dns = {table_lookup, NULL};
	struct spf_request req;
	struct spf_outcome *o;
	struct buf b;

	if (nf < 7) {
		printf("%s\tbadline\n", nf > 1 ? f[1] : "?");
		return;
	}
	memset(&req, 0, sizeof(req));
	if (spf_ip_parse(f[3], &req.ip) < 0) {
		printf("%s\tbadip\n", f[1]);
		return;
	}
	req.identity = strcmp(f[2], "helo") == 0 ? SPF_IDENTITY_HELO
	                                         : SPF_IDENTITY_MAILFROM;
	req.helo = f[4];
	req.mail_from = f[5];
	req.receiver = f[6][0] != '\0' ? f[6] : NULL;
	req.default_explanation = "DEFAULT";
	req.now = 1700000000;
	o = spf_check_host(&dns, &req);
	printf("%s\t%s\t", f[1], spf_result_name(o->result));
	print_escaped(o->explanation);
	putchar('\t');
	print_escaped(o->mechanism);
	putchar('\t');
	print_escaped(o->problem);
	putchar('\t');
	buf_init(&b, 4096);
	if (spf_received_spf(o, &b) == 0 && buf_cstr(&b) != NULL)
		print_escaped((const char *)b.data);
	putchar('\t');
	buf_reset(&b);
	if (spf_auth_results(o, &b) == 0 && buf_cstr(&b) != NULL)
		print_escaped((const char *)b.data);
	putchar('\n');
	buf_free(&b);
	spf_outcome_free(&o);
}

int
main(void)
{
	char *line = NULL, *f[8];
	size_t cap = 0, nf;
	ssize_t n;

	while ((n = getline(&line, &cap, stdin)) >= 0) {
		char *p = line, *tab;
		size_t lens[8] = {0};

		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		for (nf = 0; nf < 8 && p != NULL; nf++) {
			f[nf] = p;
			tab = strchr(p, '\t');
			if (tab != NULL)
				*tab++ = '\0';
			p = tab;
		}
		for (size_t i = 0; i < nf; i++)
			lens[i] = unescape(f[i]);
		if (nf == 0 || f[0][0] == '\0' || f[0][0] == '#')
			continue;
		if (strcmp(f[0], "reset") == 0) {
			zone_reset();
		} else if (strcmp(f[0], "zone") == 0 && nf >= 3) {
			zone = xreallocarray(zone, nzone + 1, sizeof(*zone));
			zone[nzone].name = strip_dot(f[1], strlen(f[1]));
			zone[nzone].type = type_code(f[2]);
			zone[nzone].len = nf >= 4 ? lens[3] : 0;
			zone[nzone].data = xmalloc(zone[nzone].len + 1);
			if (nf >= 4)
				memcpy(zone[nzone].data, f[3], lens[3]);
			zone[nzone].data[zone[nzone].len] = '\0';
			nzone++;
		} else if (strcmp(f[0], "check") == 0) {
			run_check(f, nf);
		} else {
			printf("?\tbadline\n");
		}
		fflush(stdout);
	}
	free(line);
	zone_reset();
	return 0;
}
