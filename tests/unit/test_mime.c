/* Tests for the MIME parser and header helpers (src/mail/mime.c,
 * src/mail/header.c): header fields and unfolding, Content-Type and RFC
 * 2231 parameters, encoded words, QP/base64, charsets, part trees and
 * their offsets, section lookup, the depth and part-count bounds, linear
 * time on hostile input, and tree invariants for every prefix of a
 * message (the parser works on whole messages; prefixes are its trickle
 * test). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/xmalloc.h"
#include "mail/header.h"
#include "mail/mime.h"

static void
assert_buf(const struct buf *b, const char *want)
{
	if (b->len != strlen(want) ||
	    (b->len > 0 && memcmp(b->data, want, b->len) != 0))
		fail_msg("want \"%s\", got \"%.*s\"", want, (int)b->len,
		         (const char *)b->data);
}

/*
 * Header fields
 */

struct field_case {
	const char *block;
	const char *want; /* "name=value|…" with values unfolded, then
	                     "#eoh" when the empty line was reached */
};

static const struct field_case field_cases[] = {
    {"A: 1\r\nB: 2\r\n\r\nbody", "A=1|B=2|#eoh"},
    {"A:1\nB:\t 2 \n\nbody", "A=1|B=2 |#eoh"},
    {"Subject: a\r\n b\r\n\tc\r\n\r\n", "Subject=a\n b\n\tc|#eoh"},
    {"X:\r\n  \r\n y\r\n\r\n", "X=\n  \n y|#eoh"},
    {"X:\r\n \r\n y\r\n\r\n", "X= \n y|#eoh"},
    {"X: \r\n\r\n", "X=|#eoh"},
    {"X:   \r\n\r\n", "X=  |#eoh"},
    {"Subject  : spaced\r\n\r\n", "Subject=spaced|#eoh"},
    {"no colon here\r\nA: b\r\n\r\n", "=no colon here|A=b|#eoh"},
    {"A: b\r\nlast without newline", "A=b|=last without newline"},
    {"\r\nbody: not a header", "#eoh"},
    {"\nA: b", "#eoh"},
    {"", ""},
    {" leading: ws\r\n\r\n", " leading=ws|#eoh"},
    {"A: b\r\n\r", "A=b|=\r"},
    {"A: x\r\r\n\r\n", "A=x\r|#eoh"},
};

static void
header_fields(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(field_cases) / sizeof(*field_cases);
	     i++) {
		const struct field_case *c = &field_cases[i];
		struct header_iter it;
		struct header_field f;
		struct buf got;
		size_t total = 0;
		const char *end = c->block + strlen(c->block);

		buf_init(&got, 0);
		header_iter_init(&it, c->block, strlen(c->block));
		while (header_iter_next(&it, &f)) {
			buf_append(&got, f.name, f.name_len);
			buf_append_byte(&got, '=');
			header_field_unfold(&f, &got);
			buf_append_byte(&got, '|');
			total += f.len;
		}
		/* fields cover the block up to the empty line */
		if (it.eoh)
			assert_true((size_t)(it.p - c->block) - total <= 2 &&
			            it.p <= end);
		else
			assert_ptr_equal(c->block + total, it.p);
		if (it.eoh)
			buf_append_str(&got, "#eoh");
		if (got.len > 0 && got.data[got.len - 1] == '|')
			got.len--;
		if (got.len != strlen(c->want) ||
		    (got.len > 0 && memcmp(got.data, c->want, got.len) != 0))
			fail_msg("case %zu: want \"%s\" got \"%.*s\"", i,
			         c->want, (int)got.len, (char *)got.data);
		buf_free(&got);
	}
}

static void
header_long_name(void **state)
{
	static const char tail[] = ": v\r\n\r\n";
	char block[HEADER_NAME_MAX + 20];
	struct header_iter it;
	struct header_field f;

	(void)state;
	memset(block, 'N', HEADER_NAME_MAX + 1);
	memcpy(block + HEADER_NAME_MAX + 1, tail, sizeof(tail));
	header_iter_init(&it, block, strlen(block));
	assert_true(header_iter_next(&it, &f));
	/* an overlong name makes the whole line the value */
	assert_int_equal(f.name_len, 0);
	assert_int_equal(f.value_len, HEADER_NAME_MAX + 4);
	assert_false(header_iter_next(&it, &f));
	assert_true(it.eoh);
}

/*
 * Content-Type, Content-Disposition, RFC 2231
 */

struct ctype_case {
	const char *value;
	const char *type, *subtype;
	bool broken;
	const char *params; /* "name=value;…" */
};

static const struct ctype_case ctype_cases[] = {
    {"text/plain", "text", "plain", false, ""},
    {" TEXT/Plain ; CHARSET=\"US-ASCII\"", "TEXT", "Plain", false,
     "CHARSET=US-ASCII"},
    {"text/plain; charset=iso-8859-1; format=flowed", "text", "plain", false,
     "charset=iso-8859-1;format=flowed"},
    {"text", "text", "", true, ""},
    {"text/", "", "", true, ""},
    {";;;", "", "", true, ""},
    {"foo/bar/baz; x=y", "", "", true, ""},
    {"text/plain (comment) ; (c2) charset = \"x\" (c3)", "text", "plain", false,
     "charset=x"},
    {"image/jpeg; name=a b c; =x; y=", "image", "jpeg", false, "name=a;=x;y="},
    {"a/b; n=\"q\\\"uo\\\\te\"", "a", "b", false, "n=q\"uo\\te"},
    {"a/b; n==?utf-8?b?eA==?=", "a", "b", false, "n==?utf-8?b?eA==?="},
    {"multipart/mixed;\n boundary=\"=_x\"", "multipart", "mixed", false,
     "boundary==_x"},
    /* RFC 2231: continuations merge, extended sections keep the
       charset'lang' prefix and escape plain ones */
    {"a/b; t*0=\"ab\"; t*1=cd", "a", "b", false, "t=abcd"},
    {"a/b; t*1=cd; t*0=ab", "a", "b", false, "t=abcd"},
    {"a/b; t*=us-ascii'en'a%20b", "a", "b", false, "t*=us-ascii'en'a%20b"},
    {"a/b; t*0*=utf-8''%E2%82%AC; t*1=\"5%\"", "a", "b", false,
     "t*=utf-8''%E2%82%AC5%25"},
    {"a/b; t*0=x; t*0*=y", "a", "b", false, "t*0=x;t*0*=y"},
    {"a/b; t*0=x; t*1*=%79", "a", "b", false, "t*=''x%79"},
    {"a/b; n*0=a; n*2=c", "a", "b", false, "n*0=a;n*2=c"},
    {"a/b; x=1; n*0=a; n*1=b; y=2", "a", "b", false, "x=1;y=2;n=ab"},
    /* Dovecot keeps the index of the previous section for "k*" */
    {"a/b; n*1=z; t*=v", "a", "b", false, "n*1=z;t*1*=v"},
};

static void
format_params(const struct mime_content *ct, struct buf *out)
{
	for (size_t i = 0; i < ct->nparams; i++) {
		if (i > 0)
			buf_append_byte(out, ';');
		buf_append_str(out, ct->params[i].name);
		buf_append_byte(out, '=');
		buf_append_str(out, ct->params[i].value);
	}
}

static void
content_type(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ctype_cases) / sizeof(*ctype_cases);
	     i++) {
		const struct ctype_case *c = &ctype_cases[i];
		struct mime_content ct;
		struct buf p;

		mime_content_type_parse(c->value, strlen(c->value), &ct);
		buf_init(&p, 0);
		format_params(&ct, &p);
		if (strcmp(ct.type, c->type) != 0 ||
		    strcmp(ct.subtype, c->subtype) != 0 ||
		    ct.broken != c->broken || p.len != strlen(c->params) ||
		    (p.len > 0 && memcmp(p.data, c->params, p.len) != 0))
			fail_msg("case %zu (%s): got %s/%s broken=%d \"%.*s\"",
			         i, c->value, ct.type, ct.subtype, ct.broken,
			         (int)p.len, (char *)p.data);
		buf_free(&p);
		mime_content_clear(&ct);
	}
}

static void
content_type_param_bound(void **state)
{
	struct buf v;
	struct mime_content ct;

	(void)state;
	buf_init(&v, 0);
	buf_append_str(&v, "a/b");
	for (int i = 0; i < MIME_PARAMS_MAX * 3; i++)
		buf_printf(&v, "; p%d=%d", i, i);
	mime_content_type_parse((char *)v.data, v.len, &ct);
	assert_int_equal(ct.nparams, MIME_PARAMS_MAX);
	assert_string_equal(mime_content_param(&ct, "P0"), "0");
	assert_null(mime_content_param(&ct, "p200"));
	mime_content_clear(&ct);
	buf_free(&v);
}

static void
disposition(void **state)
{
	struct mime_content ct;
	struct buf p;

	(void)state;
	buf_init(&p, 0);
	assert_int_equal(
	    mime_disposition_parse("attachment; filename=\"a b.txt\"; size=3",
	                           38, &ct),
	    0);
	assert_string_equal(ct.type, "attachment");
	format_params(&ct, &p);
	assert_buf(&p, "filename=a b.txt;size=3");
	mime_content_clear(&ct);
	assert_int_equal(mime_disposition_parse("inline", 6, &ct), 0);
	assert_string_equal(ct.type, "inline");
	assert_int_equal(ct.nparams, 0);
	mime_content_clear(&ct);
	assert_int_equal(mime_disposition_parse("x (unterminated", 15, &ct),
	                 -1);
	buf_free(&p);
}

struct decode_case {
	const char *in;
	bool extended;
	const char *want;
};

static const struct decode_case param_decode_cases[] = {
    {"utf-8''%E2%82%AC%20rates.txt", true, "€ rates.txt"},
    {"iso-8859-1'de'Gr%FC%DFe", true, "Grüße"},
    {"''plain", true, "plain"},
    {"no-quotes%41", true, "no-quotesA"},
    {"bogus-charset''a%FF", true, "a\xef\xbf\xbd"},
    {"=?UTF-8?Q?Rechnung_M=C3=A4rz.pdf?=", false, "Rechnung März.pdf"},
    {"plain.txt", false, "plain.txt"},
};

static void
param_decode(void **state)
{
	(void)state;
	for (size_t i = 0;
	     i < sizeof(param_decode_cases) / sizeof(*param_decode_cases);
	     i++) {
		struct buf out;

		buf_init(&out, 0);
		mime_param_decode(param_decode_cases[i].in,
		                  param_decode_cases[i].extended, &out);
		assert_buf(&out, param_decode_cases[i].want);
		buf_free(&out);
	}
}

/*
 * Encoded words, charsets, transfer encodings
 */

static const struct decode_case header_decode_cases[] = {
    {"=?ISO-8859-1?Q?Andr=E9?= Pirard", false, "André Pirard"},
    {"=?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?=", false, "Jürgen Müller"},
    {"=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\n "
     "=?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=",
     false, "If you can read this you understand the example."},
    {"(=?ISO-8859-1?Q?a?= b)", false, "(a b)"},
    {"=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=", false, "ab"},
    {"=?US-ASCII*EN?Q?Keith_Moore?=", false, "Keith Moore"},
    {"=?utf-8?x?abc?= =?broken", false, "=?utf-8?x?abc?= =?broken"},
    {"a =?utf-8?q?=E2=82=AC?= b", false, "a € b"},
    {"=?unknown-cs?q?plain?=", false, "plain"},
    {"raw \xe9 latin1", false, "raw \xef\xbf\xbd latin1"},
};

static void
header_decode(void **state)
{
	(void)state;
	for (size_t i = 0;
	     i < sizeof(header_decode_cases) / sizeof(*header_decode_cases);
	     i++) {
		struct buf out;

		buf_init(&out, 0);
		mime_header_decode(header_decode_cases[i].in,
		                   strlen(header_decode_cases[i].in), &out);
		if (out.len != strlen(header_decode_cases[i].want) ||
		    (out.len > 0 &&
		     memcmp(out.data, header_decode_cases[i].want, out.len)))
			fail_msg("case %zu: got \"%.*s\"", i, (int)out.len,
			         (char *)out.data);
		buf_free(&out);
	}
}

struct qp_case {
	const char *in, *want;
};

static const struct qp_case qp_cases[] = {
    {"a=3Db", "a=b"},
    {"soft=\r\nbreak", "softbreak"},
    {"soft= \t\nbreak", "softbreak"},
    {"trailing   \r\nws\t\n", "trailing\r\nws\r\n"},
    {"lower=c3=a9", "lower\xc3\xa9"},
    {"bad=ZZ=4", "bad=ZZ=4"},
    {"end=", "end="},
    {"keep  inner  ws", "keep  inner  ws"},
    {"bare\rcr", "bare\rcr"},
    {"", ""},
};

static void
qp_decode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(qp_cases) / sizeof(*qp_cases); i++) {
		struct buf out;

		buf_init(&out, 0);
		mime_qp_decode(qp_cases[i].in, strlen(qp_cases[i].in), &out);
		assert_buf(&out, qp_cases[i].want);
		buf_free(&out);
	}
}

static const struct qp_case b64_cases[] = {
    {"SGVsbG8sIFdvcmxkIQ==", "Hello, World!"},
    {"SGVs\r\nbG8=\r\n", "Hello"},
    {"SG Vs*bG8", "Hello"},
    {"aGk=aGk=", "hihi"},
    {"aGk", "hi"},
    {"", ""},
};

static void
base64_decode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(b64_cases) / sizeof(*b64_cases); i++) {
		struct buf out;

		buf_init(&out, 0);
		mime_base64_decode(b64_cases[i].in, strlen(b64_cases[i].in),
		                   &out);
		assert_buf(&out, b64_cases[i].want);
		buf_free(&out);
	}
}

static void
cte_parse(void **state)
{
	static const struct {
		const char *v;
		enum mime_cte cte;
	} cases[] = {
	    {"7bit", MIME_CTE_78BIT},
	    {" 8BIT ", MIME_CTE_78BIT},
	    {"base64 (comment)", MIME_CTE_BASE64},
	    {"Quoted-Printable", MIME_CTE_QP},
	    {"binary", MIME_CTE_BINARY},
	    {"base64; x=y", MIME_CTE_BASE64},
	    {"7bit junk", MIME_CTE_UNKNOWN},
	    {"x-uuencode", MIME_CTE_UNKNOWN},
	    {"", MIME_CTE_UNKNOWN},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		assert_int_equal(mime_cte_parse(cases[i].v, strlen(cases[i].v)),
		                 cases[i].cte);
}

static void
charsets(void **state)
{
	struct buf out;
	const char *in;

	(void)state;
	buf_init(&out, 0);
	assert_int_equal(
	    mime_charset_to_utf8("ISO-8859-1", "\xe9t\xe9", 3, &out), 0);
	assert_buf(&out, "été");
	buf_reset(&out);
	assert_int_equal(mime_charset_to_utf8("windows-1252", "\x80", 1, &out),
	                 0);
	assert_buf(&out, "€");
	buf_reset(&out);
	assert_int_equal(
	    mime_charset_to_utf8("UTF-8", "ok\xc3(\xed\xa0\x80", 7, &out), 0);
	assert_buf(&out, "ok\xef\xbf\xbd(\xef\xbf\xbd");
	buf_reset(&out);
	/* One U+FFFD for a lead byte and the continuation bytes it announces
	 * (overlong, past U+10FFFF, cut short), one for each stray byte. */
	in = "\xe0\x80\xaf|\xf4\x90\x80\x80\x80|\xe2\x82"
	     "a|\xc0\xaf|\xf0\x9f\x98";
	mime_utf8_sanitize(in, strlen(in), &out);
	assert_buf(&out, "\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd"
	                 "a|\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd");
	buf_reset(&out);
	/* Bad bytes after, inside and at the end of runs of eight ASCII
	 * bytes and more (read eight at a time). */
	in = "abcdefg\xff"
	     "zzabcdefgh\xff"
	     "abcdefghijklmno\xc3\xa9pqrstuvw\x80"
	     "12345678\xe2\x82\xac"
	     "1234567\xf0";
	mime_utf8_sanitize(in, strlen(in), &out);
	assert_buf(&out, "abcdefg\xef\xbf\xbd"
	                 "zzabcdefgh\xef\xbf\xbd"
	                 "abcdefghijklmno\xc3\xa9"
	                 "pqrstuvw\xef\xbf\xbd"
	                 "12345678\xe2\x82\xac"
	                 "1234567\xef\xbf\xbd");
	buf_reset(&out);
	assert_int_equal(mime_charset_to_utf8("no-such-charset", "x", 1, &out),
	                 -1);
	assert_int_equal(out.len, 0);
	assert_int_equal(mime_charset_to_utf8("Shift_JIS", "\x82\xa0", 2, &out),
	                 0);
	assert_buf(&out, "あ");
	buf_reset(&out);
	/* a truncated multibyte sequence at the end */
	assert_int_equal(mime_charset_to_utf8("Shift_JIS", "a\x82", 2, &out),
	                 0);
	assert_buf(&out, "a\xef\xbf\xbd");
	buf_free(&out);
}

/*
 * Trees
 */

/* Preorder: flags letters, offset, header and body sizes, body lines. */
static void
dump_tree(const struct mime_part *p, struct buf *out)
{
	buf_append_byte(out, '[');
	if (p->flags & MIME_PART_MULTIPART)
		buf_append_byte(out, 'M');
	if (p->flags & MIME_PART_DIGEST)
		buf_append_byte(out, 'D');
	if (p->flags & MIME_PART_RFC822)
		buf_append_byte(out, 'R');
	if (p->flags & MIME_PART_TEXT)
		buf_append_byte(out, 'T');
	if (p->flags & MIME_PART_OVERFLOW)
		buf_append_byte(out, 'O');
	buf_printf(out, " %zu %zu %zu %zu", p->offset, p->hdr_size,
	           p->body_size, p->body_lines);
	for (const struct mime_part *c = p->children; c != NULL; c = c->next)
		dump_tree(c, out);
	buf_append_byte(out, ']');
}

struct tree_case {
	const char *msg;
	const char *tree;
};

static const struct tree_case tree_cases[] = {
    {"", "[T 0 0 0 0]"},
    {"A: b\r\n\r\nbody\r\n", "[T 0 8 6 1]"},
    {"A: b", "[T 0 4 0 0]"},
    {"\r\nbody", "[T 0 2 4 0]"},
    /* multipart: the CRLF before a boundary belongs to the boundary */
    {"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
     "pre\r\n--b\r\n\r\none\r\n--b\r\nContent-Type: text/html\r\n\r\n"
     "two\r\n--b--\r\nepi\r\n",
     "[M 0 45 66 10[T 55 2 3 0][T 67 27 3 0]]"},
    /* without MIME-Version or Content-Type, Content-* do not count */
    {"Content-Transfer-Encoding: base64\r\n\r\nx", "[T 0 37 1 0]"},
    /* no boundary parameter: a multipart without parts */
    {"Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\nx\r\n", "[M 0 33 10 3]"},
    /* an unterminated multipart ends at the end of the message */
    {"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx",
     "[M 0 45 8 2[T 50 2 1 0]]"},
    /* message/rfc822 holds a message */
    {"Content-Type: message/rfc822\r\n\r\nA: b\r\n\r\nin\r\n",
     "[R 0 32 12 3[T 32 8 4 1]]"},
    /* digest parts default to message/rfc822 */
    {"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n"
     "A: b\r\n\r\nx\r\n--d--\r\n",
     "[MD 0 46 25 6[R 51 2 9 2[T 53 8 1 0]]]"},
    /* a boundary cuts a part's header; its newline goes to the boundary */
    {"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nA: 1\r\n"
     "--b--\r\n",
     "[M 0 45 18 3[T 50 4 0 0]]"},
    /* an outer boundary right after the empty line takes its newline */
    {"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
     "Content-Type: text/plain\r\n\r\n--b--\r\n",
     "[M 0 45 40 4[T 50 26 0 0]]"},
    /* the longest (and innermost) matching boundary wins */
    {"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
     "Content-Type: multipart/mixed; boundary=bb\r\n\r\n--bb\r\n\r\ni\r\n"
     "--b\r\n\r\no\r\n--b--\r\n",
     "[M 0 45 79 10[M 50 46 9 2[T 102 2 1 0]][T 112 2 1 0]]"},
    /* bare LF counts as CRLF in the virtual sizes (not shown here) */
    {"A: b\n\nx\ny\n", "[T 0 6 4 2]"},
};

static void
trees(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(tree_cases) / sizeof(*tree_cases); i++) {
		const struct tree_case *c = &tree_cases[i];
		struct mime_message *m = mime_parse(c->msg, strlen(c->msg));
		struct buf out;

		buf_init(&out, 0);
		dump_tree(m->root, &out);
		if (out.len != strlen(c->tree) ||
		    (out.len > 0 && memcmp(out.data, c->tree, out.len) != 0))
			fail_msg("case %zu: want %s got %.*s", i, c->tree,
			         (int)out.len, (char *)out.data);
		buf_free(&out);
		mime_message_free(&m);
		assert_null(m);
	}
}

static void
vsizes(void **state)
{
	const char *msg = "A: b\n\nx\ny\r\nz\n";
	struct mime_message *m = mime_parse(msg, strlen(msg));

	(void)state;
	assert_int_equal(m->root->hdr_size, 6);
	assert_int_equal(m->root->hdr_vsize, 8);
	assert_int_equal(m->root->body_size, 7);
	assert_int_equal(m->root->body_vsize, 9);
	assert_int_equal(m->root->body_lines, 3);
	mime_message_free(&m);
}

static void
part_find(void **state)
{
	const char *msg =
	    "Content-Type: multipart/mixed; "
	    "boundary=b\r\n\r\n--b\r\n\r\none\r\n"
	    "--b\r\nContent-Type: message/rfc822\r\n\r\n"
	    "Content-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n\r\n"
	    "x\r\n--c\r\n\r\ny\r\n--c--\r\n--b--\r\n";
	struct mime_message *m = mime_parse(msg, strlen(msg));
	const struct mime_part *root = m->root, *two = root->children->next;
	const struct mime_part *inner = two->children;
	static const struct {
		uint32_t path[4];
		size_t n;
		int which; /* 0 NULL, 1 root, 2 part 1, 3 part 2, 4 inner msg,
		              5 inner part 1, 6 inner part 2 */
	} cases[] = {
	    {{0}, 0, 1},    {{1}, 1, 2},       {{2}, 1, 3},
	    {{3}, 1, 0},    {{0}, 1, 0},       {{1, 1}, 2, 2},
	    {{1, 2}, 2, 0}, {{2, 1}, 2, 5},    {{2, 2}, 2, 6},
	    {{2, 3}, 2, 0}, {{2, 1, 1}, 3, 5}, {{2, 1, 1, 1}, 4, 0},
	};
	const struct mime_part *parts[7];

	(void)state;
	parts[0] = NULL;
	parts[1] = root;
	parts[2] = root->children;
	parts[3] = two;
	parts[4] = inner;
	parts[5] = inner->children;
	parts[6] = inner->children->next;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		if (mime_part_find(root, cases[i].path, cases[i].n) !=
		    parts[cases[i].which])
			fail_msg("case %zu", i);
	}
	mime_message_free(&m);

	/* "1" of a single part is its body; "1.1" needs message/rfc822 */
	m = mime_parse("A: b\r\n\r\nx", 9);
	assert_ptr_equal(mime_part_find(m->root, (uint32_t[]){1}, 1), m->root);
	assert_null(mime_part_find(m->root, (uint32_t[]){1, 1}, 2));
	mime_message_free(&m);
	m = mime_parse("Content-Type: message/rfc822\r\n\r\nA: b\r\n\r\nx", 40);
	assert_ptr_equal(mime_part_find(m->root, (uint32_t[]){1, 1}, 2),
	                 m->root->children);
	mime_message_free(&m);
}

/* Invariants of any tree: parts cover their parents' bodies in order,
 * sizes add up, nothing points outside the message. */
static void
check_part(const struct mime_message *m, const struct mime_part *p,
           unsigned int depth, size_t *count)
{
	size_t end = p->offset + p->hdr_size + p->body_size;
	size_t pos = p->offset + p->hdr_size;

	(*count)++;
	assert_true(depth <= MIME_DEPTH_MAX);
	assert_true(end <= m->len);
	assert_true(p->hdr_vsize >= p->hdr_size);
	assert_true(p->body_vsize >= p->body_size);
	assert_true(p->body_lines <= p->body_size);
	if ((p->flags & MIME_PART_RFC822) != 0) {
		assert_non_null(p->children);
		assert_null(p->children->next);
	}
	for (const struct mime_part *c = p->children; c != NULL; c = c->next) {
		assert_ptr_equal(c->parent, p);
		assert_true(c->offset >= pos);
		check_part(m, c, depth + 1, count);
		pos = c->offset + c->hdr_size + c->body_size;
		assert_true(pos <= end);
	}
}

static void
check_tree(const char *msg, size_t len)
{
	struct mime_message *m = mime_parse(msg, len);
	size_t count = 0;

	assert_int_equal(m->root->offset, 0);
	assert_int_equal(m->root->hdr_size + m->root->body_size, len);
	check_part(m, m->root, 0, &count);
	assert_int_equal(count, m->nparts);
	assert_true(count <= MIME_PARTS_MAX);
	mime_message_free(&m);
}

static const char *const prefix_msgs[] = {
    "From: a@b\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"x y\"\r\n\r\npre\r\n"
    "--x y\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n"
    "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n"
    "A: b\r\n\r\nc\r\n--d--\r\n--x y\r\nContent-Type: text/plain\r\n"
    "\r\nbody\r\n--x y--\r\nepilogue\r\n",
    "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: "
    "multipart/mixed; boundary=bb\n\n--bb\n\nx\n--b\n--bb--\n--b--",
};

static void
prefixes(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(prefix_msgs) / sizeof(*prefix_msgs);
	     i++) {
		size_t len = strlen(prefix_msgs[i]);

		for (size_t l = 0; l <= len; l++)
			check_tree(prefix_msgs[i], l);
	}
}

static size_t
tree_depth(const struct mime_part *p)
{
	size_t d = 0;

	for (const struct mime_part *c = p->children; c != NULL; c = c->next) {
		size_t cd = tree_depth(c) + 1;

		if (cd > d)
			d = cd;
	}
	return d;
}

static void
depth_bound(void **state)
{
	struct buf msg;
	struct mime_message *m;

	(void)state;
	buf_init(&msg, 0);
	for (int i = 0; i < MIME_DEPTH_MAX * 2; i++)
		buf_printf(
		    &msg,
		    "Content-Type: multipart/mixed; boundary=\"=%d=\"\r\n"
		    "\r\n--=%d=\r\n",
		    i, i);
	buf_append_str(&msg, "\r\nleaf\r\n");
	m = mime_parse((char *)msg.data, msg.len);
	assert_int_equal(tree_depth(m->root), MIME_DEPTH_MAX - 1);
	check_tree((char *)msg.data, msg.len);
	mime_message_free(&m);

	buf_reset(&msg);
	for (int i = 0; i < MIME_DEPTH_MAX * 2; i++)
		buf_append_str(&msg, "Content-Type: message/rfc822\r\n\r\n");
	m = mime_parse((char *)msg.data, msg.len);
	assert_int_equal(tree_depth(m->root), MIME_DEPTH_MAX - 1);
	check_tree((char *)msg.data, msg.len);
	mime_message_free(&m);
	buf_free(&msg);
}

static void
parts_bound(void **state)
{
	struct buf msg;
	struct mime_message *m;

	(void)state;
	buf_init(&msg, 0);
	buf_append_str(&msg,
	               "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
	for (int i = 0; i < MIME_PARTS_MAX + 500; i++)
		buf_append_str(&msg, "--p\r\n\r\nx\r\n");
	buf_append_str(&msg, "--p--\r\n");
	m = mime_parse((char *)msg.data, msg.len);
	assert_int_equal(m->nparts, MIME_PARTS_MAX);
	assert_int_equal(m->root->nchildren, MIME_PARTS_MAX - 1);
	check_tree((char *)msg.data, msg.len);
	mime_message_free(&m);
	buf_free(&msg);
}

static double
parse_seconds(const char *msg, size_t len)
{
	struct timespec a, b;
	struct mime_message *m;

	clock_gettime(CLOCK_MONOTONIC, &a);
	m = mime_parse(msg, len);
	clock_gettime(CLOCK_MONOTONIC, &b);
	mime_message_free(&m);
	return (double)(b.tv_sec - a.tv_sec) +
	       (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

/* Many open boundaries sharing a long prefix and a body full of lines
 * that almost match them: time grows with the size, not its square. */
static void
linear_time(void **state)
{
	struct buf msg;
	char prefix[MIME_BOUNDARY_MAX - 4];
	double t1, t2;
	size_t half;

	(void)state;
	memset(prefix, 'p', sizeof(prefix) - 1);
	prefix[sizeof(prefix) - 1] = '\0';
	buf_init(&msg, 0);
	for (int i = 0; i < MIME_DEPTH_MAX - 2; i++)
		buf_printf(&msg,
		           "Content-Type: multipart/mixed; boundary=%s%03d\r\n"
		           "\r\n--%s%03d\r\n",
		           prefix, i, prefix, i);
	buf_append_str(&msg, "\r\n");
	while (msg.len < 4 * 1024 * 1024)
		buf_printf(&msg, "--%s999\r\n", prefix);
	half = msg.len / 2;
	/* the best of three runs, against noise from other processes */
	t1 = t2 = 1e9;
	for (int i = 0; i < 3; i++) {
		double a = parse_seconds((char *)msg.data, half);
		double b = parse_seconds((char *)msg.data, msg.len);

		t1 = a < t1 ? a : t1;
		t2 = b < t2 ? b : t2;
	}
	/* a quadratic parser would take 4 times as long */
	if (t2 > 3 * t1 + 0.05)
		fail_msg("%.3fs for %zu bytes, %.3fs for %zu", t1, half, t2,
		         msg.len);
	buf_free(&msg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(header_fields),
	    cmocka_unit_test(header_long_name),
	    cmocka_unit_test(content_type),
	    cmocka_unit_test(content_type_param_bound),
	    cmocka_unit_test(disposition),
	    cmocka_unit_test(param_decode),
	    cmocka_unit_test(header_decode),
	    cmocka_unit_test(qp_decode),
	    cmocka_unit_test(base64_decode),
	    cmocka_unit_test(cte_parse),
	    cmocka_unit_test(charsets),
	    cmocka_unit_test(trees),
	    cmocka_unit_test(vsizes),
	    cmocka_unit_test(part_find),
	    cmocka_unit_test(prefixes),
	    cmocka_unit_test(depth_bound),
	    cmocka_unit_test(parts_bound),
	    cmocka_unit_test(linear_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
