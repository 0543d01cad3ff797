/* libFuzzer target for SMTP TLS Reporting (src/mailauth/tlsrpt_report.c):
 * the input, split at NUL or '\n' into up to four strings, is the TXT
 * records at _smtp._tls (as DNS would hand them over), a rua URI, and the
 * strings of report rows and of a report mail.
 * SECURITY: all of it is attacker-controlled (DNS answers, MX names,
 * remote servers' replies). A record that parses must hold bounded
 * mailto:/https: URIs; an address, one '@' and no special character; the
 * JSON must be balanced, its strings escaped and valid UTF-8; the mail
 * printable ASCII in CRLF lines of at most 998; and a bounded buffer that
 * is too small must be left as it was. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/xmalloc.h"
#include "mailauth/tlsrpt_report.h"

#define NSTR 4
#define NROWS 6
#define JSON_MAX (4u * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_address(const char *addr)
{
	const char *at = strchr(addr, '@');

	if (at == NULL || at == addr || at[1] == '\0' ||
	    strchr(at + 1, '@') != NULL || strlen(addr) > TLSRPT_ADDRESS_MAX)
		abort();
	for (const char *p = addr; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f || strchr(",<>\"\\", *p) != NULL)
			abort();
}

static void
fuzz_mailto(const char *uri)
{
	char addr[TLSRPT_ADDRESS_MAX + 1];

	if (tlsrpt_mailto(uri, addr) == 0)
		check_address(addr);
	else if (addr[0] != '\0')
		abort();
}

static void
fuzz_record(const char *const *txt, size_t n)
{
	struct tlsrpt_policy_record rec;

	if (tlsrpt_policy_parse(txt, n, &rec) < 0) {
		if (rec.nrua != 0)
			abort();
		return;
	}
	if (rec.nrua == 0 || rec.nrua > TLSRPT_RUA_MAX)
		abort();
	for (size_t i = 0; i < rec.nrua; i++) {
		const char *u = rec.rua[i];

		if (strnlen(u, TLSRPT_URI_MAX + 1) > TLSRPT_URI_MAX ||
		    (strncasecmp(u, "mailto:", 7) != 0 &&
		     strncasecmp(u, "https://", 8) != 0))
			abort();
		for (const char *p = u; *p != '\0'; p++)
			if (*p <= 0x20 || *p >= 0x7f)
				abort();
		fuzz_mailto(u);
	}
}

/* Bytes of one UTF-8 sequence at p (the JSON must hold valid ones). */
static size_t
utf8_ok(const uint8_t *p, size_t left)
{
	size_t n = p[0] < 0x80   ? 1
	           : p[0] < 0xc2 ? 0
	           : p[0] < 0xe0 ? 2
	           : p[0] < 0xf0 ? 3
	           : p[0] < 0xf5 ? 4
	                         : 0;
	uint32_t cp;

	if (n == 0 || n > left)
		return 0;
	if (n == 1)
		return 1;
	cp = p[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* Brackets balanced and matched outside strings; inside, no control
 * character, only the escapes we write. */
static void
check_json(const uint8_t *p, size_t len)
{
	char stack[16];
	size_t depth = 0;
	bool in_str = false;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_ok(p + i, len - i);

		if (n == 0)
			abort();
		if (in_str) {
			if (p[i] < 0x20)
				abort();
			if (p[i] == '"') {
				in_str = false;
			} else if (p[i] == '\\') {
				if (i + 1 == len ||
				    strchr("\"\\u", p[i + 1]) == NULL)
					abort();
				n = p[i + 1] == 'u' ? 6 : 2;
				if (i + n > len)
					abort();
			}
		} else if (p[i] == '"') {
			in_str = true;
		} else if (p[i] == '{' || p[i] == '[') {
			if (depth == sizeof(stack))
				abort();
			stack[depth++] = p[i] == '{' ? '}' : ']';
		} else if (p[i] == '}' || p[i] == ']') {
			if (depth == 0 || stack[--depth] != (char)p[i])
				abort();
		}
		i += n;
	}
	if (in_str || depth != 0 || len < 2 || p[0] != '{' ||
	    memcmp(p + len - 2, "}\n", 2) != 0)
		abort();
}

static void
fuzz_json(const char *const *s, const uint8_t *data, size_t size)
{
	static const char *const types[] = {"sts", "tlsa", "no-policy-found"};
	static const char *const results[] = {"success", "tlsa-invalid"};
	const char *lines[] = {s[0], s[1]};
	struct tlsrpt_report_meta m = {
	    .org_name = s[0],
	    .contact = s[1],
	    .report_id = s[2],
	    .domain = s[3],
	    .begin = 1704067200,
	    .end = 1704153599,
	    .sts_lines = lines,
	    .nsts_lines = size % 3,
	    .sts_mx = lines + 1,
	    .nsts_mx = size % 2,
	};
	struct tlsrpt_row rows[NROWS];
	struct buf b;
	size_t max;

	/* Each row's fields: the strings or fixed names, picked by bytes. */
	for (size_t i = 0; i < NROWS; i++) {
		uint8_t k = size > i ? data[i] : (uint8_t)i;

		rows[i].policy = k & 0x80 ? s[i % NSTR] : types[k % 3];
		rows[i].mx = s[(i + 1) % NSTR];
		rows[i].result =
		    k & 0x40 ? s[(i + 2) % NSTR] : results[(k >> 2) & 1];
		rows[i].detail = k & 0x20 ? s[(i + 3) % NSTR] : "";
		rows[i].count = k & 0x10 ? UINT64_MAX - k : k;
	}
	buf_init(&b, JSON_MAX);
	if (tlsrpt_report_json(&m, rows, NROWS, &b) < 0)
		abort();
	check_json(b.data, b.len);
	/* Too small: refused, nothing left behind. */
	max = b.len;
	buf_free(&b);
	buf_init(&b, 1 + (size > 0 ? data[size - 1] : 0) % max);
	if (b.max < max) {
		if (tlsrpt_report_json(&m, rows, NROWS, &b) != -1 || b.len != 0)
			abort();
	}
	buf_free(&b);
}

/* Printable ASCII in CRLF lines of at most 998. */
static void
check_mail(const uint8_t *p, size_t len)
{
	size_t line = 0;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\r' && i + 1 < len && p[i + 1] == '\n') {
			i++;
			line = 0;
		} else if (p[i] < 0x20 || p[i] >= 0x7f || ++line > 998) {
			abort();
		}
	}
	if (line != 0)
		abort();
}

static void
fuzz_mail(const char *const *s, const uint8_t *data, size_t size)
{
	struct tlsrpt_mail m = {
	    .from = "tlsrpt@mx.example.org",
	    .to = s[0],
	    .submitter = s[1],
	    .domain = s[2],
	    .report_id = s[3],
	    .message_id = "<1@mx.example.org>",
	    .begin = 1704067200,
	    .end = 1704153599,
	    .date = 1704153659,
	};
	char file[256];
	struct buf b;

	if (tlsrpt_filename(&m, file, sizeof(file)) == 0 &&
	    strpbrk(file, "/\"\\ ") != NULL)
		abort();
	buf_init(&b, 0);
	if (tlsrpt_report_message(&m, data, size, &b) == 0)
		check_mail(b.data, b.len);
	else if (b.len != 0)
		abort();
	buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = xmalloc(size + 1);
	const char *s[NSTR];
	size_t n = 0;
	char *p = copy, *end = copy + size;

	memcpy(copy, data, size);
	copy[size] = '\0';
	/* Up to NSTR strings; the last one ends at the next separator. */
	while (n < NSTR) {
		char *sep = p;

		while (sep < end && *sep != '\0' && *sep != '\n')
			sep++;
		*sep = '\0';
		s[n++] = p;
		if (sep == end)
			break;
		p = sep + 1;
	}
	fuzz_record(s, n);
	fuzz_mailto(s[0]);
	for (size_t i = n; i < NSTR; i++)
		s[i] = "";
	fuzz_json(s, data, size);
	fuzz_mail(s, data, size);
	free(copy);
	return 0;
}
