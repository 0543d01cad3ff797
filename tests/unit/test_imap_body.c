/* Tests for the IMAP body module (src/imap/body.c, body_section.c): the
 * ENVELOPE, BODY and BODYSTRUCTURE of every message in tests/data/mime
 * against what Dovecot 2.3.19 answered (NAME.expected), BODY[section] and
 * BINARY[part] against Dovecot's bytes (NAME.sections), SEARCH helpers,
 * and a robustness pass over truncated and mutated messages. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/buf.h"
#include "core/xmalloc.h"
#include "imap/body.h"
#include "mail/mailtext.h"

#define MSG_MAX (4 * 1024 * 1024)

static char *
read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *data;
	size_t n;

	if (f == NULL)
		return NULL;
	data = xmalloc(MSG_MAX + 1);
	n = fread(data, 1, MSG_MAX, f);
	fclose(f);
	data[n] = '\0';
	*len_r = n;
	return data;
}

static const char *
data_dir(void)
{
	static char dir[4096];
	const char *srcdir = getenv("TERN_TEST_SRCDIR");

	if (srcdir == NULL)
		return NULL;
	snprintf(dir, sizeof(dir), "%s/tests/data/mime", srcdir);
	return dir;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The corpus: every NAME.eml, sorted. */
static size_t
corpus_names(char ***names_r)
{
	const char *dir = data_dir();
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;

	*names_r = NULL;
	if (dir == NULL || (d = opendir(dir)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);

		if (len < 5 || strcmp(e->d_name + len - 4, ".eml") != 0)
			continue;
		if (n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			names = xreallocarray(names, cap, sizeof(*names));
		}
		names[n++] = xstrndup(e->d_name, len - 4);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), name_cmp);
	*names_r = names;
	return n;
}

static void
free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static char *
load(const char *name, const char *ext, size_t *len_r)
{
	char path[4096];
	int n = snprintf(path, sizeof(path), "%s/%s%s", data_dir(), name, ext);

	if (n < 0 || (size_t)n >= sizeof(path))
		fail_msg("path too long: %s/%s%s", data_dir(), name, ext);
	return read_file(path, len_r);
}

static void
print_diff(const char *what, const char *name, const char *want, size_t wlen,
           const char *got, size_t glen)
{
	size_t i = 0;

	while (i < wlen && i < glen && want[i] == got[i])
		i++;
	print_error("%s %s differs at byte %zu\n want: %.*s\n  got: %.*s\n",
	            name, what, i, (int)(wlen - i < 200 ? wlen - i : 200),
	            want + i, (int)(glen - i < 200 ? glen - i : 200), got + i);
}

/* NAME.expected: optional "# …" comment lines, then the BODYSTRUCTURE,
 * BODY and ENVELOPE lines Dovecot returned. */
static void
corpus_matches_dovecot(void **state)
{
	char **names;
	size_t n = corpus_names(&names), failed = 0;

	(void)state;
	if (data_dir() == NULL)
		skip();
	assert_true(n >= 30);
	for (size_t i = 0; i < n; i++) {
		size_t mlen, elen;
		char *msg = load(names[i], ".eml", &mlen);
		char *exp = load(names[i], ".expected", &elen);
		const char *e = exp;
		struct buf out;

		assert_non_null(msg);
		if (exp == NULL)
			fail_msg("%s.expected is missing", names[i]);
		while (*e == '#') {
			const char *nl = strchr(e, '\n');

			e = nl == NULL ? exp + elen : nl + 1;
		}
		buf_init(&out, 0);
		buf_append_str(&out, "BODYSTRUCTURE ");
		imap_body_structure(msg, mlen, true, &out);
		buf_append_str(&out, "\nBODY ");
		imap_body_structure(msg, mlen, false, &out);
		buf_append_str(&out, "\nENVELOPE ");
		imap_body_envelope(msg, mlen, &out);
		buf_append_str(&out, "\n");
		if (out.len != elen - (size_t)(e - exp) ||
		    memcmp(out.data, e, out.len) != 0) {
			print_diff("BODYSTRUCTURE/ENVELOPE", names[i], e,
			           elen - (size_t)(e - exp), (char *)out.data,
			           out.len);
			failed++;
		}
		buf_free(&out);
		free(msg);
		free(exp);
	}
	free_names(names, n);
	assert_int_equal(failed, 0);
}

/* "1.2.HEADER.FIELDS (A B)" into a section. */
static void
section_parse(const char *spec, struct imap_section *sec)
{
	const char *p = spec;

	memset(sec, 0, sizeof(*sec));
	while (*p >= '0' && *p <= '9') {
		sec->part[sec->nparts++] =
		    (uint32_t)strtoul(p, (char **)&p, 10);
		if (*p == '.')
			p++;
	}
	if (*p == '\0') {
		sec->kind = IMAP_SECTION_ALL;
	} else if (strcmp(p, "HEADER") == 0) {
		sec->kind = IMAP_SECTION_HEADER;
	} else if (strcmp(p, "TEXT") == 0) {
		sec->kind = IMAP_SECTION_TEXT;
	} else if (strcmp(p, "MIME") == 0) {
		sec->kind = IMAP_SECTION_MIME;
	} else {
		const char *l = strchr(p, '(');

		sec->kind = strncmp(p, "HEADER.FIELDS.NOT", 17) == 0
		                ? IMAP_SECTION_FIELDS_NOT
		                : IMAP_SECTION_FIELDS;
		assert_non_null(l);
		l++;
		while (*l != ')' && *l != '\0') {
			size_t w = strcspn(l, " )");

			sec->fields =
			    xreallocarray(sec->fields, sec->nfields + 1,
			                  sizeof(*sec->fields));
			sec->fields[sec->nfields++] = xstrndup(l, w);
			l += w;
			while (*l == ' ')
				l++;
		}
	}
}

static void
section_free(struct imap_section *sec)
{
	for (size_t i = 0; i < sec->nfields; i++)
		free(sec->fields[i]);
	free(sec->fields);
	sec->fields = NULL;
	sec->nfields = 0;
}

/* Where tern deliberately answers otherwise than Dovecot did. */
static const struct {
	const char *name, *what; /* what: "BODY[spec]", "*" for all */
	const char *why;
} known_differences[] = {
    /* sections point into the stored message, which is in CRLF form;
       Dovecot turns bare LFs into CRLF on output */
    {"lf_only", "BODY[]", "bare LF kept"},
    {"lf_only", "BODY[HEADER]", "bare LF kept"},
    {"lf_only", "BODY[TEXT]", "bare LF kept"},
    {"lf_only", "BODY[1]", "bare LF kept"},
    {"lf_only", "BODY[1.1]", "bare LF kept"},
    {"lf_only", "BODY[1.MIME]", "bare LF kept"},
    {"lf_only", "BODY[2.MIME]", "bare LF kept"},
    {"lf_only", "BODY[2.1.MIME]", "bare LF kept"},
    /* NUL to 0x80 for a literal is the FETCH writer's job */
    {"nul_and_ctl", "BODY[]", "NUL kept"},
    {"nul_and_ctl", "BODY[TEXT]", "NUL kept"},
    {"nul_and_ctl", "BODY[1]", "NUL kept"},
    /* the encapsulated header is cut by a boundary: Dovecot's header
       filter reads on past the part into the next one */
    {"rfc822_variants", "BODY[2.HEADER.FIELDS (Subject)]", "cut header"},
    {"rfc822_variants", "BODY[2.HEADER.FIELDS.NOT (Subject)]", "cut header"},
};

static bool
known_difference(const char *name, const char *what)
{
	for (size_t i = 0;
	     i < sizeof(known_differences) / sizeof(*known_differences); i++) {
		if (strcmp(known_differences[i].name, name) == 0 &&
		    strcmp(known_differences[i].what, what) == 0)
			return true;
	}
	return false;
}

/* One record of NAME.sections against tern; returns false on mismatch. */
static bool
check_section(const char *name, const char *msg, size_t mlen, bool binary,
              const char *spec, const char *want, size_t wlen, const char *no)
{
	struct imap_section sec;
	struct buf scratch, out;
	const char *data = NULL;
	size_t dlen = 0;
	bool ok = true;
	int ret;
	char what[300];

	snprintf(what, sizeof(what), "%s[%s]", binary ? "BINARY" : "BODY",
	         spec);
	section_parse(spec, &sec);
	buf_init(&scratch, 0);
	buf_init(&out, 0);
	if (binary) {
		ret = imap_body_binary(msg, mlen, sec.part, sec.nparts, &out);
		data = (const char *)out.data;
		dlen = ret == 0 ? out.len : 0;
		if (no != NULL && strncmp(no, "[UNKNOWN-CTE]", 13) == 0) {
			ok = ret == -2;
		} else if (no != NULL) {
			/* Dovecot refuses invalid QP/base64 ([PARSE]); tern
			   decodes what it can */
			ok = ret == 0;
		} else {
			/* a missing part is an empty string in IMAP */
			ok = (ret == 0 || ret == -1) && dlen == wlen &&
			     (wlen == 0 || memcmp(data, want, wlen) == 0);
		}
	} else {
		ret =
		    imap_body_section(msg, mlen, &sec, &scratch, &data, &dlen);
		if (ret < 0)
			dlen = 0;
		ok = dlen == wlen &&
		     (wlen == 0 || memcmp(data, want, wlen) == 0);
	}
	if (!ok && known_difference(name, what))
		ok = true;
	if (!ok)
		print_diff(what, name, want, wlen, data == NULL ? "" : data,
		           dlen);
	section_free(&sec);
	buf_free(&scratch);
	buf_free(&out);
	return ok;
}

/* NAME.sections: "BODY[spec] LEN\n" or "BINARY[spec] LEN\n" then LEN
 * bytes and "\n"; or "BINARY[spec] NO reason\n". */
static void
sections_match_dovecot(void **state)
{
	char **names;
	size_t n = corpus_names(&names), failed = 0, checked = 0;

	(void)state;
	if (data_dir() == NULL)
		skip();
	for (size_t i = 0; i < n; i++) {
		size_t mlen, slen;
		char *msg = load(names[i], ".eml", &mlen);
		char *secs = load(names[i], ".sections", &slen);
		const char *p = secs, *end = secs + slen;

		if (secs == NULL) {
			free(msg);
			continue;
		}
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			const char *lb = strchr(p, '['), *rb;
			bool binary = strncmp(p, "BINARY", 6) == 0;
			char spec[256];
			size_t wlen = 0;
			const char *no = NULL, *want = NULL;

			assert_non_null(nl);
			assert_non_null(lb);
			rb = memchr(lb, ']', (size_t)(nl - lb));
			assert_non_null(rb);
			assert_true((size_t)(rb - lb) < sizeof(spec));
			memcpy(spec, lb + 1, (size_t)(rb - lb - 1));
			spec[rb - lb - 1] = '\0';
			if (strncmp(rb + 2, "NO ", 3) == 0) {
				no = rb + 5;
				p = nl + 1;
			} else {
				wlen = strtoul(rb + 2, NULL, 10);
				want = nl + 1;
				p = want + wlen + 1;
				assert_true(p <= end);
			}
			if (!check_section(names[i], msg, mlen, binary, spec,
			                   want, wlen, no))
				failed++;
			checked++;
		}
		free(msg);
		free(secs);
	}
	free_names(names, n);
	assert_true(checked > 500);
	assert_int_equal(failed, 0);
}

/* Sections on a small message, one case per rule. */
struct section_case {
	const char *msg;
	const char *spec;
	int ret;
	const char *want;
};

#define MP                                                                     \
	"Subject: s\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"      \
	"pre\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\n"         \
	"Content-Type: message/rfc822\r\n\r\nSubject: in\r\nX: y\r\n\r\n"      \
	"inner\r\n--b--\r\n"

static const struct section_case section_cases[] = {
    {"Subject: a\r\n\r\nbody\r\n", "", 0, "Subject: a\r\n\r\nbody\r\n"},
    {"Subject: a\r\n\r\nbody\r\n", "HEADER", 0, "Subject: a\r\n\r\n"},
    {"Subject: a\r\n\r\nbody\r\n", "TEXT", 0, "body\r\n"},
    {"Subject: a\r\n\r\nbody\r\n", "1", 0, "body\r\n"},
    {"Subject: a\r\n\r\nbody\r\n", "1.MIME", 0, "Subject: a\r\n\r\n"},
    {"Subject: a\r\n\r\nbody\r\n", "2", -1, ""},
    {"Subject: a\r\n\r\nbody\r\n", "1.1", -1, ""},
    {"Subject: a\r\n\r\nbody\r\n", "1.HEADER", -1, ""},
    {"Subject: a\r\n\r\nbody\r\n", "MIME", -1, ""},
    {"Subject: a\r\n\r\nbody\r\n", "HEADER.FIELDS (SUBJECT)", 0,
     "Subject: a\r\n\r\n"},
    {"Subject: a\r\n\r\nbody\r\n", "HEADER.FIELDS (X)", 0, "\r\n"},
    {"Subject: a\r\n b\r\nX: 1\r\n\r\n", "HEADER.FIELDS.NOT (X)", 0,
     "Subject: a\r\n b\r\n\r\n"},
    {"Subject: a\nX: 1\n\nbody\n", "HEADER.FIELDS (x)", 0, "X: 1\r\n\r\n"},
    {"Subject: a", "HEADER.FIELDS (subject)", 0, "Subject: a\r\n"},
    {"Subject: a", "HEADER.FIELDS.NOT (x)", 0, "Subject: a"},
    {MP, "1", 0, "one"},
    {MP, "1.MIME", 0, "Content-Type: text/plain\r\n\r\n"},
    {MP, "2.MIME", 0, "Content-Type: message/rfc822\r\n\r\n"},
    {MP, "2", 0, "Subject: in\r\nX: y\r\n\r\ninner"},
    {MP, "2.HEADER", 0, "Subject: in\r\nX: y\r\n\r\n"},
    {MP, "2.TEXT", 0, "inner"},
    {MP, "2.1", 0, "inner"},
    {MP, "2.HEADER.FIELDS (X)", 0, "X: y\r\n\r\n"},
    {MP, "1.HEADER", -1, ""},
    {MP, "3", -1, ""},
    {MP, "TEXT", 0,
     "pre\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\n"
     "Content-Type: message/rfc822\r\n\r\nSubject: in\r\nX: y\r\n\r\n"
     "inner\r\n--b--\r\n"},
};

static void
sections_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(section_cases) / sizeof(*section_cases);
	     i++) {
		const struct section_case *c = &section_cases[i];
		struct imap_section sec;
		struct buf scratch;
		const char *data;
		size_t len;
		int ret;

		section_parse(c->spec, &sec);
		buf_init(&scratch, 0);
		ret = imap_body_section(c->msg, strlen(c->msg), &sec, &scratch,
		                        &data, &len);
		if (ret != c->ret || (ret == 0 && (len != strlen(c->want) ||
		                                   memcmp(data, c->want, len))))
			fail_msg("case %zu [%s]: ret %d, got \"%.*s\"", i,
			         c->spec, ret, (int)(ret == 0 ? len : 0),
			         ret == 0 ? data : "");
		buf_free(&scratch);
		section_free(&sec);
	}
}

struct binary_case {
	const char *msg;
	const char *spec;
	int ret;
	const char *want;
	size_t want_len; /* 0: strlen(want) */
};

static const struct binary_case binary_cases[] = {
    {"Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n", "1", 0,
     "\x00\x01\x02", 3},
    {"Content-Transfer-Encoding: quoted-printable\r\n\r\na=3Db=\r\nc \r\nd",
     "1", 0, "a=bc\r\nd", 0},
    {"Content-Transfer-Encoding: x-uue\r\n\r\nzz", "1", -2, "", 0},
    {"Content-Transfer-Encoding:\r\n\r\nzz", "1", -2, "", 0},
    {"Content-Transfer-Encoding: 8bit\r\n\r\nline\nbare\n", "1", 0,
     "line\r\nbare\r\n", 0},
    {"Content-Transfer-Encoding: base64\r\n\r\naGk=\r\n", "", 0,
     "Content-Transfer-Encoding: binary\r\n\r\nhi", 0},
    {"Subject: x\r\n\r\nplain", "2", -1, "", 0},
    /* nothing decoded: the part as it is, CTE field included */
    {"Content-Transfer-Encoding: base64\r\nContent-Type: message/rfc822\r\n"
     "\r\nSubject: hi\r\n\r\nbody",
     "", 0,
     "Content-Transfer-Encoding: base64\r\nContent-Type: message/rfc822\r\n"
     "\r\nSubject: hi\r\n\r\nbody",
     0},
    {"Content-Transfer-Encoding: base64\r\nContent-Type: message/rfc822\r\n"
     "\r\nSubject: hi\r\n\r\nbody",
     "1", 0, "Subject: hi\r\n\r\nbody", 0},
    {"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
     "Content-Transfer-Encoding: base64\r\n\r\naGk=\r\n--b--\r\n",
     "1", 0, "hi", 0},
    {"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
     "Content-Transfer-Encoding: base64\r\n\r\naGk=\r\n--b--\r\n",
     "", 0,
     "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
     "Content-Transfer-Encoding: binary\r\n\r\nhi\r\n--b--\r\n",
     0},
};

static void
binary_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(binary_cases) / sizeof(*binary_cases);
	     i++) {
		const struct binary_case *c = &binary_cases[i];
		struct imap_section sec;
		struct buf out;
		size_t wl = c->want_len != 0 ? c->want_len : strlen(c->want);
		int ret;

		section_parse(c->spec, &sec);
		buf_init(&out, 0);
		ret = imap_body_binary(c->msg, strlen(c->msg), sec.part,
		                       sec.nparts, &out);
		if (ret != c->ret ||
		    (ret == 0 && (out.len != wl ||
		                  (wl > 0 && memcmp(out.data, c->want, wl)))))
			fail_msg("case %zu [%s]: ret %d, got \"%.*s\"", i,
			         c->spec, ret, (int)out.len, (char *)out.data);
		buf_free(&out);
		section_free(&sec);
	}
}

struct header_text_case {
	const char *msg;
	const char *name;
	int ret;
	const char *want;
};

static const struct header_text_case header_text_cases[] = {
    {"Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\n", "subject", 0, "café"},
    {"Subject: =?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=\r\n\r\n", "Subject", 0,
     "ab"},
    {"Subject: x =?ISO-8859-1?B?5Q==?= y\r\n\r\n", "Subject", 0, "x å y"},
    {"Subject: one\r\n two\r\n\r\n", "Subject", 0, "one  two"},
    {"To: a@b\r\nTo: c@d\r\n\r\n", "to", 0, "a@b\nc@d"},
    {"To: a@b\r\n\r\nSubject: body\r\n", "Subject", -1, ""},
    {"A: 1\r\nB: 2\r\n\r\n", NULL, 0, "A: 1\nB: 2"},
    {"Subject: bad \xff utf8\r\n\r\n", "subject", 0, "bad \xef\xbf\xbd utf8"},
    {"Subject: =?bogus-charset?q?x?=\r\n\r\n", "subject", 0, "x"},
};

static void
header_text_table(void **state)
{
	(void)state;
	for (size_t i = 0;
	     i < sizeof(header_text_cases) / sizeof(*header_text_cases); i++) {
		const struct header_text_case *c = &header_text_cases[i];
		struct buf out;
		int ret;

		buf_init(&out, 0);
		ret = mailtext_header(c->msg, strlen(c->msg), c->name, &out);
		assert_int_equal(ret, c->ret);
		if (ret == 0 &&
		    (out.len != strlen(c->want) ||
		     (out.len > 0 && memcmp(out.data, c->want, out.len) != 0)))
			fail_msg("case %zu: got \"%.*s\"", i, (int)out.len,
			         (char *)out.data);
		buf_free(&out);
	}
}

struct search_text_case {
	const char *msg;
	const char *want;
};

static const struct search_text_case search_text_cases[] = {
    {"Subject: x\r\n\r\nplain body\r\n", "plain body\r\n"},
    {"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
     "Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe\r\n",
     "Grüße\r\n"},
    {"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
     "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
     "aGVsbG8=\r\n--b\r\nContent-Type: image/png\r\n\r\nPNG\r\n--b\r\n"
     "Content-Type: text/html; charset=utf-8\r\n\r\n<b>x</b>\r\n--b--\r\n",
     "hello\n<b>x</b>"},
    {"Content-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\ninner text",
     "inner text"},
};

static void
search_text_table(void **state)
{
	(void)state;
	for (size_t i = 0;
	     i < sizeof(search_text_cases) / sizeof(*search_text_cases); i++) {
		const struct search_text_case *c = &search_text_cases[i];
		struct buf out;

		buf_init(&out, 0);
		mailtext_body(c->msg, strlen(c->msg), &out);
		if (out.len != strlen(c->want) ||
		    (out.len > 0 && memcmp(out.data, c->want, out.len) != 0))
			fail_msg("case %zu: got \"%.*s\"", i, (int)out.len,
			         (char *)out.data);
		buf_free(&out);
	}
}

struct date_case {
	const char *date;
	int ret;
	const char *want; /* YYYY-MM-DD HH:MM:SS as written */
};

static const struct date_case date_cases[] = {
    {"Mon, 7 Feb 1994 21:52:25 -0800 (PST)", 0, "1994-02-07 21:52:25"},
    {"7 Feb 1994 21:52 +0100", 0, "1994-02-07 21:52:00"},
    {"Fri, 04 Mar 22 13:00:00 GMT", 0, "2022-03-04 13:00:00"},
    {"Fri, 4 Mar 99 13:00:00 EST", 0, "1999-03-04 13:00:00"},
    {"(comment) Thu,\r\n 3 Mar 2022 12:00:00 +0000", 0, "2022-03-03 12:00:00"},
    {"yesterday", -1, NULL},
    {"32 Jan 2022 00:00:00 +0000", -1, NULL},
    {"1 Foo 2022 00:00:00 +0000", -1, NULL},
    {"1 Jan 2022 25:00:00 +0000", -1, NULL},
    {"", -1, NULL},
};

static void
sent_date_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(date_cases) / sizeof(*date_cases); i++) {
		const struct date_case *c = &date_cases[i];
		char *msg =
		    xasprintf("Subject: x\r\nDate: %s\r\n\r\nb", c->date);
		time_t t = 0;
		int ret = imap_body_sent_date(msg, strlen(msg), &t);

		if (ret != c->ret)
			fail_msg("case %zu (%s): ret %d", i, c->date, ret);
		if (ret == 0) {
			struct tm tm;
			char s[32];

			gmtime_r(&t, &tm);
			strftime(s, sizeof(s), "%Y-%m-%d %H:%M:%S", &tm);
			assert_string_equal(s, c->want);
		}
		free(msg);
	}
	assert_int_equal(
	    imap_body_sent_date("Subject: x\r\n\r\n", 15, &(time_t){0}), -1);
}

/* IMAP syntax of a BODYSTRUCTURE/ENVELOPE answer: balanced lists,
 * terminated quoted strings, literals whose counts fit. */
static bool
well_formed(const char *s, size_t len)
{
	size_t i = 0;
	int depth = 0;

	while (i < len) {
		char c = s[i];

		if (c == '(') {
			depth++;
			i++;
		} else if (c == ')') {
			if (--depth < 0)
				return false;
			i++;
		} else if (c == '"') {
			for (i++; i < len && s[i] != '"'; i++) {
				if (s[i] == '\\')
					i++;
				if (i < len && (s[i] == '\r' || s[i] == '\n'))
					return false;
			}
			if (i >= len)
				return false;
			i++;
		} else if (c == '{') {
			char *end;
			unsigned long n = strtoul(s + i + 1, &end, 10);

			if (*end != '}' || end[1] != '\r' || end[2] != '\n')
				return false;
			i = (size_t)(end + 3 - s) + n;
			if (i > len)
				return false;
		} else if (c == '\r' || c == '\n' || c == '\0') {
			return false;
		} else {
			i++;
		}
	}
	return depth == 0;
}

static void
check_robust(const char *msg, size_t len)
{
	struct buf out;

	buf_init(&out, 0);
	imap_body_structure(msg, len, true, &out);
	if (!well_formed((char *)out.data, out.len))
		fail_msg("bad BODYSTRUCTURE for %zu bytes: %.*s", len,
		         (int)out.len, (char *)out.data);
	buf_reset(&out);
	imap_body_structure(msg, len, false, &out);
	assert_true(well_formed((char *)out.data, out.len));
	buf_reset(&out);
	imap_body_envelope(msg, len, &out);
	assert_true(well_formed((char *)out.data, out.len));
	buf_free(&out);
}

/* Every prefix of each corpus message (every byte for small ones) and
 * some byte mutations give well-formed answers: the parser is not
 * incremental, so this stands in for the trickle test. */
static void
robustness(void **state)
{
	char **names;
	size_t n = corpus_names(&names);
	unsigned int seed = 12345;

	(void)state;
	if (data_dir() == NULL)
		skip();
	for (size_t i = 0; i < n; i++) {
		size_t mlen;
		char *msg = load(names[i], ".eml", &mlen);
		size_t step = mlen > 4000 ? 97 : 1;

		for (size_t l = 0; l <= mlen; l += step)
			check_robust(msg, l);
		for (int k = 0; k < 200 && mlen > 0; k++) {
			size_t at;

			seed = seed * 1103515245 + 12345;
			at = (seed >> 8) % mlen;
			msg[at] = "\r\n-:;\"\\(=? \0x"[(seed >> 4) % 13];
			check_robust(msg, mlen);
		}
		free(msg);
	}
	free_names(names, n);
}

/* The cached header block answers, for every corpus message (and a few
 * hand-made ones), what the message does: top-level HEADER.FIELDS of
 * cached fields, SEARCH's header text and the Date for SENT*. */
static void
header_cache_block(void **state)
{
	static const char *const specs[] = {
	    "HEADER.FIELDS (FROM TO SUBJECT DATE)",
	    "HEADER.FIELDS (subject)",
	    "HEADER.FIELDS (REFERENCES IN-REPLY-TO X-PRIORITY)",
	    "HEADER.FIELDS (NEWSGROUPS)",
	    "HEADER.FIELDS (CONTENT-TYPE MESSAGE-ID)",
	};
	static const char *const names[] = {
	    "From", "To", "Cc", "Bcc", "Subject", "Date", "Content-Type"};
	static const char *const extra[] = {
	    "Subject: no end of line",
	    "Subject: a\r\nX-Other: b\r\nSubject: second\r\n "
	    "folded\r\n\r\nbody",
	    "X-Only: one\r\n\r\nSubject: in the body\r\n",
	    "\r\nSubject: body only\r\n",
	    "Subject: cr at the end\r",
	    "From: a@b\nSubject: lf only\n\nbody\n",
	};
	char **corpus;
	size_t n = corpus_names(&corpus), unkept = 0;

	(void)state;
	for (size_t i = 0; i < n + sizeof(extra) / sizeof(*extra); i++) {
		size_t mlen;
		char *msg = i < n ? load(corpus[i], ".eml", &mlen)
		                  : xstrdup(extra[i - n]);
		struct buf block, s1, s2, t1, t2;
		const char *d1, *d2;
		size_t l1, l2;
		time_t a, b;

		if (i >= n)
			mlen = strlen(msg);
		assert_non_null(msg);
		buf_init(&block, 0);
		buf_init(&s1, 0);
		buf_init(&s2, 0);
		buf_init(&t1, 0);
		buf_init(&t2, 0);
		imap_hdr_cache_block(msg, mlen, &block);
		if (block.len == 0) {
			/* All header, its last line without an end: not
			 * kept. Only the hand-made ones are like that. */
			assert_true(i >= n);
			unkept++;
			goto next;
		}
		assert_non_null(buf_cstr(&block));
		for (size_t k = 0; k < sizeof(specs) / sizeof(*specs); k++) {
			struct imap_section sec;

			section_parse(specs[k], &sec);
			assert_true(imap_hdr_cache_covers(&sec));
			assert_int_equal(
			    imap_body_section(msg, mlen, &sec, &s1, &d1, &l1),
			    0);
			assert_int_equal(imap_body_section((char *)block.data,
			                                   block.len, &sec, &s2,
			                                   &d2, &l2),
			                 0);
			if (l1 != l2 || memcmp(d1, d2, l1) != 0)
				print_diff(specs[k],
				           i < n ? corpus[i] : extra[i - n], d1,
				           l1, d2, l2);
			assert_int_equal(l1, l2);
			assert_memory_equal(d1, d2, l1);
			imap_section_clear(&sec);
		}
		for (size_t k = 0; k < sizeof(names) / sizeof(*names); k++) {
			int r1, r2;

			buf_reset(&t1);
			buf_reset(&t2);
			r1 = mailtext_header(msg, mlen, names[k], &t1);
			r2 = mailtext_header((char *)block.data, block.len,
			                     names[k], &t2);
			assert_int_equal(r1, r2);
			assert_int_equal(t1.len, t2.len);
			if (t1.len > 0)
				assert_memory_equal(t1.data, t2.data, t1.len);
		}
		a = b = 0;
		assert_int_equal(
		    imap_body_sent_date(msg, mlen, &a),
		    imap_body_sent_date((char *)block.data, block.len, &b));
		assert_int_equal(a, b);
	next:
		buf_free(&block);
		buf_free(&s1);
		buf_free(&s2);
		buf_free(&t1);
		buf_free(&t2);
		free(msg);
	}
	free_names(corpus, n);
	assert_int_equal(unkept, 2);
	/* Fields outside the set, HEADER and parts are not answered. */
	{
		struct imap_section sec;

		section_parse("HEADER.FIELDS (FROM X-SPAM)", &sec);
		assert_false(imap_hdr_cache_covers(&sec));
		imap_section_clear(&sec);
		section_parse("HEADER.FIELDS.NOT (FROM)", &sec);
		assert_false(imap_hdr_cache_covers(&sec));
		imap_section_clear(&sec);
		section_parse("1.HEADER.FIELDS (FROM)", &sec);
		assert_false(imap_hdr_cache_covers(&sec));
		imap_section_clear(&sec);
		section_parse("HEADER", &sec);
		assert_false(imap_hdr_cache_covers(&sec));
		imap_section_clear(&sec);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(corpus_matches_dovecot),
	    cmocka_unit_test(sections_match_dovecot),
	    cmocka_unit_test(sections_table),
	    cmocka_unit_test(binary_table),
	    cmocka_unit_test(header_text_table),
	    cmocka_unit_test(search_text_table),
	    cmocka_unit_test(sent_date_table),
	    cmocka_unit_test(robustness),
	    cmocka_unit_test(header_cache_block),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
