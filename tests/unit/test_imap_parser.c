/* Tests for the IMAP command reader and its argument interpreters: tables
 * of valid and broken commands (each also fed one byte at a time, same
 * events), literal flow, bounds, line mode, sequence sets, flags, dates,
 * modified UTF-7, FETCH items and SEARCH programs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "imap/parser.h"
#include "store/mailbox.h"

#define S(x) x, sizeof(x) - 1

static const struct imap_parser_limits test_limits = {
    .line_max = 1000,
    .literal_max = 100,
    .append_max = 1000,
    .command_max = 3000,
    .depth_max = 16,
    .args_max = 100,
};

/* ---- helpers ---- */

static void
dump_args(struct buf *b, const struct imap_arg *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf_append_byte(b, ' ');
		switch (a[i].type) {
		case IMAP_ARG_ATOM:
			buf_append(b, a[i].str, a[i].len);
			break;
		case IMAP_ARG_NIL:
			buf_append_str(b, "NIL");
			break;
		case IMAP_ARG_STRING:
			buf_printf(b, "\"%s\"", a[i].str);
			break;
		case IMAP_ARG_LITERAL:
			buf_printf(b, "%s{%zu}", a[i].literal8 ? "~" : "",
			           a[i].len);
			for (size_t k = 0; k < a[i].len; k++) {
				if (a[i].str[k] == '\0')
					buf_append_str(b, "\\0");
				else
					buf_append_byte(b,
					                (uint8_t)a[i].str[k]);
			}
			break;
		case IMAP_ARG_LIST:
			buf_append_byte(b, '(');
			dump_args(b, a[i].list, a[i].count);
			buf_append_byte(b, ')');
			break;
		}
		/* Every string is NUL-terminated at len. */
		if (a[i].type != IMAP_ARG_LIST)
			assert_int_equal(a[i].str[a[i].len], '\0');
	}
}

/* Feed in, chunk bytes arriving at a time; record every event. */
static void
run_events(struct imap_parser *p, const char *in, size_t len, size_t chunk,
           struct buf *ev)
{
	size_t off = 0, end = 0, used;
	int guard = 0;

	for (;;) {
		enum imap_parse_result r;
		const struct imap_command *c;

		assert_true(++guard < 100000);
		if (off == end) {
			if (end == len)
				break;
			end = end + chunk > len ? len : end + chunk;
		}
		r = imap_parser_feed(p, (const uint8_t *)in + off, end - off,
		                     &used);
		assert_true(used <= end - off);
		off += used;
		switch (r) {
		case IMAP_PARSE_NEED_MORE:
			assert_int_equal(off, end);
			assert_null(imap_parser_command(p));
			break;
		case IMAP_PARSE_CONTINUE:
			buf_append_str(ev, "+;");
			break;
		case IMAP_PARSE_COMMAND:
			c = imap_parser_command(p);
			assert_non_null(c);
			buf_printf(ev, "CMD[%s %s", c->tag, c->name);
			if (c->count > 0) {
				buf_append_byte(ev, ' ');
				dump_args(ev, c->args, c->count);
			}
			buf_append_str(ev, "];");
			break;
		case IMAP_PARSE_BAD:
			buf_printf(ev, "BAD[%s %s];", imap_parser_error_tag(p),
			           imap_parser_error(p));
			break;
		case IMAP_PARSE_FATAL:
			buf_printf(ev, "FATAL[%s];", imap_parser_error(p));
			return;
		}
	}
}

static void
check_events(const struct imap_parser_limits *lim, const char *in, size_t len,
             const char *want)
{
	size_t chunks[] = {len == 0 ? 1 : len, 1, 3, 7};

	for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
		struct imap_parser *p = imap_parser_new(lim);
		struct buf ev;

		buf_init(&ev, 0);
		run_events(p, in, len, chunks[k], &ev);
		buf_append_byte(&ev, 0);
		/* A want without the final ";" is a prefix. */
		if (want[0] != '\0' && want[strlen(want) - 1] != ';'
		        ? strncmp((const char *)ev.data, want, strlen(want)) !=
		              0
		        : strcmp((const char *)ev.data, want) != 0)
			fail_msg("input %.*s (chunk %zu):\n got  %s\n want %s",
			         (int)(len > 200 ? 200 : len), in, chunks[k],
			         (const char *)ev.data, want);
		buf_free(&ev);
		imap_parser_free(&p);
		assert_null(p);
	}
}

/* ---- command tables ---- */

struct event_case {
	const char *in;
	size_t len;
	const char *want;
};

static const struct event_case valid_cases[] = {
    {S("a1 NOOP\r\n"), "CMD[a1 NOOP];"},
    {S("a2 login joe \"pa ss\"\r\n"), "CMD[a2 LOGIN joe \"pa ss\"];"},
    {S("a3 LOGIN \"jo\\\"e\" \"b\\\\s\"\r\n"),
     "CMD[a3 LOGIN \"jo\"e\" \"b\\s\"];"},
    {S("a4 uid fetch 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100>)"
       "\r\n"),
     "CMD[a4 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]"
     "<0.100>)];"},
    {S("a5 LOGIN {3}\r\njoe {4}\r\npass\r\n"),
     "+;+;CMD[a5 LOGIN {3}joe {4}pass];"},
    {S("a6 APPEND INBOX (\\Seen) {5+}\r\nhello\r\n"),
     "CMD[a6 APPEND INBOX (\\Seen) {5}hello];"},
    {S("a7 APPEND INBOX ~{4+}\r\nab\0c\r\n"),
     "CMD[a7 APPEND INBOX ~{4}ab\\0c];"},
    {S("a8 ID (\"name\" \"x\" \"version\" NIL)\r\n"),
     "CMD[a8 ID (\"name\" \"x\" \"version\" NIL)];"},
    {S("a9 X ((a b) (c (d)) ())\r\n"), "CMD[a9 X ((a b) (c (d)) ())];"},
    {S("b1 NOOP\n"), "CMD[b1 NOOP];"},
    {S("b2 STORE 1:3 +FLAGS.SILENT ()\r\n"),
     "CMD[b2 STORE 1:3 +FLAGS.SILENT ()];"},
    {S("b3 UID FETCH 5 (BINARY.PEEK[1]<0.10> BINARY.SIZE[2])\r\n"),
     "CMD[b3 UID FETCH 5 (BINARY.PEEK[1]<0.10> BINARY.SIZE[2])];"},
    {S("b4 SEARCH CHARSET UTF-8 SUBJECT {5+}\r\ncaf\xc3\xa9\r\n"),
     "CMD[b4 SEARCH CHARSET UTF-8 SUBJECT {5}caf\xc3\xa9];"},
    {S("b5 CREATE \"Entw\xc3\xbcrfe\"\r\n"),
     "CMD[b5 CREATE \"Entw\xc3\xbcrfe\"];"},
    {S("b6 LIST \"\" *\r\nb7 LIST \"\" %\r\n"),
     "CMD[b6 LIST \"\" *];CMD[b7 LIST \"\" %];"},
    {S("b8 NOOP \r\n"), "CMD[b8 NOOP];"},
    {S("\r\n\nb9 NOOP\r\n"), "CMD[b9 NOOP];"},
    {S("x]1 CHECK\r\n"), "CMD[x]1 CHECK];"},
    {S("c1 UID EXPUNGE 3000:3002\r\n"), "CMD[c1 UID EXPUNGE 3000:3002];"},
    {S("c2 LOGIN {0}\r\n {0}\r\n\r\n"), "+;+;CMD[c2 LOGIN {0} {0}];"},
    {S("c3 APPEND box (\\Seen) \"7-Feb-1994 21:52:25 -0800\" {3}\r\nabc"
       "\r\n"),
     "+;CMD[c3 APPEND box (\\Seen) \"7-Feb-1994 21:52:25 -0800\" {3}abc];"},
    {S("c4 FETCH 1 BODY[HEADER.FIELDS (\"X-A\" b)]\r\n"),
     "CMD[c4 FETCH 1 BODY[HEADER.FIELDS (\"X-A\" b)]];"},
    {S("c5 SELECT INBOX (CONDSTORE)\r\n"), "CMD[c5 SELECT INBOX (CONDSTORE)];"},
    {S("c6 SELECT foo[bar\r\n"), "CMD[c6 SELECT foo[bar];"},
    {S("c7 APPEND x (\\Seen) {3+}\r\nabc {2+}\r\nde\r\n"),
     "CMD[c7 APPEND x (\\Seen) {3}abc {2}de];"},
    {S("c8 X ({2}\r\nab {1+}\r\nc)\r\n"), "+;CMD[c8 X ({2}ab {1}c)];"},
    {S("c9 X nil \"NIL\"\r\n"), "CMD[c9 X NIL \"NIL\"];"},
    {S("d1 NOOP\r\nd2 NOOP\r\nd3 LOGOUT\r\n"),
     "CMD[d1 NOOP];CMD[d2 NOOP];CMD[d3 LOGOUT];"},
    {S("d4  X  a   b\r\n"), "CMD[d4 X a b];"},
    {S("d5 X \"tab\there\"\r\n"), "CMD[d5 X \"tab\there\"];"},
    {S("d6 X {3}\r\n\r\n\r\n"), "+;CMD[d6 X {3}\r\n\r];"},
    {S("d7 SEARCH OR (FROM a) (TO \"b c\") UID 1:*\r\n"),
     "CMD[d7 SEARCH OR (FROM a) (TO \"b c\") UID 1:*];"},
    {S("d8 FETCH 1:2 (BODY[1.2.MIME] BODY[]<5.6>) (CHANGEDSINCE 7)\r\n"),
     "CMD[d8 FETCH 1:2 (BODY[1.2.MIME] BODY[]<5.6>) (CHANGEDSINCE 7)];"},
    /* U+FFFD itself, a 4-byte sequence and U+10FFFF in a quoted string */
    {S("d9 X \"\xef\xbf\xbd\xf0\x9f\x98\x81\xf4\x8f\xbf\xbf\"\r\n"),
     "CMD[d9 X \"\xef\xbf\xbd\xf0\x9f\x98\x81\xf4\x8f\xbf\xbf\"];"},
};

static const struct event_case invalid_cases[] = {
    {S("a1 LOGIN \"abc\r\nz NOOP\r\n"), "BAD[a1 Missing '\"'];CMD[z NOOP];"},
    {S("a2 NOOP)\r\nz NOOP\r\n"), "BAD[a2 Invalid command name];CMD[z NOOP];"},
    {S("a3 X (a b\r\nz NOOP\r\n"), "BAD[a3 Missing ')'];CMD[z NOOP];"},
    {S("a4 X a)\r\nz NOOP\r\n"), "BAD[a4 Unexpected ')'];CMD[z NOOP];"},
    {S("+ NOOP\r\nz NOOP\r\n"), "BAD[* Invalid tag];CMD[z NOOP];"},
    {S("a5\r\nz NOOP\r\n"), "BAD[a5 Missing command];CMD[z NOOP];"},
    {S("a6 uid\r\nz NOOP\r\n"), "BAD[a6 Missing UID command];CMD[z NOOP];"},
    {S("a7 X \"a\\qb\"\r\nz NOOP\r\n"),
     "BAD[a7 Invalid escape in string];CMD[z NOOP];"},
    {S("a8 X a\0b\r\nz NOOP\r\n"),
     "BAD[a8 Invalid characters in atom];CMD[z NOOP];"},
    {S("a9 X \0\r\nz NOOP\r\n"), "BAD[a9 NUL in command];CMD[z NOOP];"},
    {S("b0 X \"a\0\"\r\nz NOOP\r\n"),
     "BAD[b0 Invalid characters in string];CMD[z NOOP];"},
    {S("b1 X a\rb\r\nz NOOP\r\n"),
     "BAD[b1 Invalid characters in atom];CMD[z NOOP];"},
    {S("b2 X {3}junk\r\nz NOOP\r\n"),
     "BAD[b2 Literal must end the line];CMD[z NOOP];"},
    {S("b3 X {}\r\nz NOOP\r\n"), "BAD[b3 Invalid literal];CMD[z NOOP];"},
    {S("b4 X \"a\"b\r\nz NOOP\r\n"),
     "BAD[b4 Missing space between arguments];CMD[z NOOP];"},
    {S("b5 X (a)(b)\r\nz NOOP\r\n"),
     "BAD[b5 Missing space between arguments];CMD[z NOOP];"},
    {S("b6 X \xff\r\nz NOOP\r\n"),
     "BAD[b6 Invalid characters in command];CMD[z NOOP];"},
    {S("b7 X \"\xc3\x28\"\r\nz NOOP\r\n"),
     "BAD[b7 Invalid UTF-8 in string];CMD[z NOOP];"},
    /* overlong forms, a surrogate, past U+10FFFF, cut short */
    {S("f1 X \"\xc0\xaf\"\r\nz NOOP\r\n"),
     "BAD[f1 Invalid UTF-8 in string];CMD[z NOOP];"},
    {S("f2 X \"\xe0\x80\xaf\"\r\nz NOOP\r\n"),
     "BAD[f2 Invalid UTF-8 in string];CMD[z NOOP];"},
    {S("f3 X \"\xed\xa0\x80\"\r\nz NOOP\r\n"),
     "BAD[f3 Invalid UTF-8 in string];CMD[z NOOP];"},
    {S("f4 X \"\xf4\x90\x80\x80\"\r\nz NOOP\r\n"),
     "BAD[f4 Invalid UTF-8 in string];CMD[z NOOP];"},
    {S("f5 X \"a\xe2\x82\"\r\nz NOOP\r\n"),
     "BAD[f5 Invalid UTF-8 in string];CMD[z NOOP];"},
    {S("b8 FETCH 1 BODY[HEADER\r\nz NOOP\r\n"),
     "BAD[b8 Missing ']'];CMD[z NOOP];"},
    {S("b9 X {123456789012345678901}\r\nz NOOP\r\n"),
     "BAD[b9 Invalid literal size];CMD[z NOOP];"},
    {S("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
       " NOOP\r\nz NOOP\r\n"),
     "BAD[* Invalid tag];CMD[z NOOP];"},
    {S("c1 X a{3}\r\nz NOOP\r\n"),
     "BAD[c1 Invalid characters in atom];CMD[z NOOP];"},
    {S("c2 X (((((((((((((((((a)))))))))))))))))\r\nz NOOP\r\n"),
     "BAD[c2 Too deeply nested];CMD[z NOOP];"},
    {S("c3 X \"\xc3\r\nz NOOP\r\n"), "BAD[c3 Missing '\"'];CMD[z NOOP];"},
    /* An error in a line that ends in a non-synchronizing literal: the
     * literal's bytes are not a command. */
    {S("c4 X \"unterminated {8+}\r\nb NOOP\r\n\r\nz NOOP\r\n"),
     "BAD[c4 Missing '\"'];CMD[z NOOP];"},
    {S("c5 X {4+}\r\na\0bc\r\nz NOOP\r\n"),
     "BAD[c5 NUL in literal];CMD[z NOOP];"},
    {S("c6 X {4}\r\na\0bc\r\nz NOOP\r\n"),
     "+;BAD[c6 NUL in literal];CMD[z NOOP];"},
    {S("c7 X {4+}\r\nabcd\"x\"\r\nz NOOP\r\n"),
     "BAD[c7 Missing space between arguments];CMD[z NOOP];"},
    {S("c8 X {2+}\r\nab (\"x\r\nz NOOP\r\n"),
     "BAD[c8 Missing '\"'];CMD[z NOOP];"},
    /* The skipped line ends in another literal. */
    {S("c9 X \"a {2+}\r\nab {3+}\r\nb N\r\nz NOOP\r\n"),
     "BAD[c9 Missing '\"'];CMD[z NOOP];"},
    {S("e1 X ( {2+}\r\nab {3+}\r\nb N\r\nz NOOP\r\n"),
     "BAD[e1 Missing ')'];CMD[z NOOP];"},
    {S("d1 X ~{2}\r\nzzNOOP\r\nz NOOP\r\n"),
     "+;BAD[d1 Missing space between arguments];CMD[z NOOP];"},
    {S("d2 X ~a~{1}\r\nz NOOP\r\n"),
     "BAD[d2 Invalid characters in atom];CMD[z NOOP];"},
    {S("d3 X {1}x\r\nz NOOP\r\n"),
     "BAD[d3 Literal must end the line];CMD[z NOOP];"},
};

static void
test_valid(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]);
	     i++)
		check_events(&test_limits, valid_cases[i].in,
		             valid_cases[i].len, valid_cases[i].want);
}

static void
test_invalid(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]);
	     i++)
		check_events(&test_limits, invalid_cases[i].in,
		             invalid_cases[i].len, invalid_cases[i].want);
}

/* ---- literal flow, pipelining, bounds ---- */

static void
test_literal_flow(void **state)
{
	struct imap_parser *p = imap_parser_new(&test_limits);
	const struct imap_command *c;
	size_t used;

	(void)state;
	assert_int_equal(
	    imap_parser_feed(p, (const uint8_t *)"a LOGIN {3}\r\n", 13, &used),
	    IMAP_PARSE_CONTINUE);
	assert_int_equal(used, 13);
	assert_null(imap_parser_command(p));
	assert_int_equal(
	    imap_parser_feed(p, (const uint8_t *)"joe {4}\r\n", 9, &used),
	    IMAP_PARSE_CONTINUE);
	assert_int_equal(used, 9);
	assert_int_equal(
	    imap_parser_feed(p, (const uint8_t *)"pass\r\nb NOOP", 12, &used),
	    IMAP_PARSE_COMMAND);
	assert_int_equal(used, 6);
	c = imap_parser_command(p);
	assert_non_null(c);
	assert_string_equal(c->tag, "a");
	assert_string_equal(c->name, "LOGIN");
	assert_int_equal(c->count, 2);
	assert_int_equal(c->args[0].type, IMAP_ARG_LITERAL);
	assert_string_equal(c->args[0].str, "joe");
	assert_string_equal(c->args[1].str, "pass");
	/* The rest waits for its CRLF. */
	assert_int_equal(
	    imap_parser_feed(p, (const uint8_t *)"b NOOP", 6, &used),
	    IMAP_PARSE_NEED_MORE);
	assert_int_equal(used, 6);
	assert_null(imap_parser_command(p));
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)"\r\n", 2, &used),
	                 IMAP_PARSE_COMMAND);
	assert_string_equal(imap_parser_command(p)->tag, "b");

	/* A reset forgets a command cut short by STARTTLS. */
	assert_int_equal(
	    imap_parser_feed(p, (const uint8_t *)"c X {5}\r\nab", 11, &used),
	    IMAP_PARSE_CONTINUE);
	assert_int_equal(used, 9);
	imap_parser_reset(p);
	assert_int_equal(
	    imap_parser_feed(p, (const uint8_t *)"d NOOP\r\n", 8, &used),
	    IMAP_PARSE_COMMAND);
	assert_string_equal(imap_parser_command(p)->tag, "d");
	imap_parser_free(&p);
}

static char *
repeat(const char *head, char c, size_t n, const char *tail, size_t *len_r)
{
	size_t hl = strlen(head), tl = strlen(tail);
	char *s = malloc(hl + n + tl + 1);

	memcpy(s, head, hl);
	memset(s + hl, c, n);
	memcpy(s + hl + n, tail, tl + 1);
	*len_r = hl + n + tl;
	return s;
}

static void
test_bounds(void **state)
{
	struct imap_parser_limits small = test_limits;
	size_t len;
	char *s;

	(void)state;
	/* A line over line_max. */
	s = repeat("a X ", 'x', 1001, "\r\nz NOOP\r\n", &len);
	check_events(&test_limits, s, len, "BAD[a Line too long];CMD[z NOOP];");
	free(s);
	/* Exactly line_max is fine. */
	s = repeat("a X ", 'x', 996, "\r\n", &len);
	check_events(&test_limits, s, len, "CMD[a X ");
	free(s);
	/* An overlong line that ends in a non-sync literal: skipped too. */
	s = repeat("a X ", 'x', 1500, " {8+}\r\nb NOOP\r\n\r\nz NOOP\r\n",
	           &len);
	check_events(&test_limits, s, len, "BAD[a Line too long];CMD[z NOOP];");
	free(s);
	/* Synchronizing literals over the bound: the client sends nothing. */
	check_events(&test_limits, S("a LOGIN {101}\r\nz NOOP\r\n"),
	             "BAD[a Literal too large];CMD[z NOOP];");
	check_events(&test_limits, S("a APPEND INBOX {1001}\r\nz NOOP\r\n"),
	             "BAD[a [TOOBIG] Message too large];CMD[z NOOP];");
	/* APPEND takes append_max. */
	s = repeat("a APPEND INBOX {150+}\r\n", 'm', 150, "\r\n", &len);
	{
		struct imap_parser *p = imap_parser_new(&test_limits);
		struct buf ev;

		buf_init(&ev, 0);
		run_events(p, s, len, 1, &ev);
		assert_int_equal(strncmp((const char *)ev.data,
		                         "CMD[a APPEND INBOX {150}mmm", 27),
		                 0);
		buf_free(&ev);
		imap_parser_free(&p);
	}
	free(s);
	/* Non-synchronizing literals over the bound: the stream is lost. */
	check_events(&test_limits, S("a LOGIN {101+}\r\nz NOOP\r\n"),
	             "FATAL[Literal too large];");
	check_events(&test_limits,
	             S("a X {1+}\r\nb {123456789012345678901+}\r\nz NOOP\r\n"),
	             "FATAL[Literal too large];");
	/* Total command size. */
	small.command_max = 200;
	s = repeat("a X {100+}\r\n", 'a', 100, " {100}\r\nz NOOP\r\n", &len);
	check_events(&small, s, len, "BAD[a Literal too large];CMD[z NOOP];");
	free(s);
	/* Argument count. */
	s = repeat(
	    "a X", ' ', 0,
	    " 1 2 3 4 5 6 7 8 9 10 1 2 3 4 5 6 7 8 9 20 1 2 3 4 5 6 7 8 9 "
	    "30 1 2 3 4 5 6 7 8 9 40 1 2 3 4 5 6 7 8 9 50 1 2 3 4 5 6 7 8 "
	    "9 60 1 2 3 4 5 6 7 8 9 70 1 2 3 4 5 6 7 8 9 80 1 2 3 4 5 6 7 "
	    "8 9 90 1 2 3 4 5 6 7 8 9 100 x\r\nz NOOP\r\n",
	    &len);
	check_events(&test_limits, s, len,
	             "BAD[a Too many arguments];CMD[z NOOP];");
	free(s);
	/* Zero limits take the defaults. */
	{
		struct imap_parser_limits zero = {0};
		struct imap_parser *p = imap_parser_new(&zero);
		size_t used;

		s = repeat("a X ", 'x', 8000, "\r\n", &len);
		assert_int_equal(
		    imap_parser_feed(p, (const uint8_t *)s, len, &used),
		    IMAP_PARSE_COMMAND);
		free(s);
		imap_parser_free(&p);
	}
}

static void
test_line_mode(void **state)
{
	struct imap_parser *p = imap_parser_new(&test_limits);
	const char *in = "a IDLE\r\nDONE\r\nb NOOP\r\n";
	const char *line;
	size_t used, len, off = 0;
	char *s;

	(void)state;
	assert_int_equal(
	    imap_parser_feed(p, (const uint8_t *)in, strlen(in), &used),
	    IMAP_PARSE_COMMAND);
	assert_string_equal(imap_parser_command(p)->name, "IDLE");
	off += used;
	assert_int_equal(imap_parser_feed_line(p, (const uint8_t *)in + off,
	                                       strlen(in) - off, &used),
	                 IMAP_PARSE_COMMAND);
	assert_int_equal(used, 6);
	line = imap_parser_line(p, &len);
	assert_int_equal(len, 4);
	assert_string_equal(line, "DONE");
	assert_null(imap_parser_command(p));
	off += used;
	assert_int_equal(imap_parser_feed(p, (const uint8_t *)in + off,
	                                  strlen(in) - off, &used),
	                 IMAP_PARSE_COMMAND);
	assert_string_equal(imap_parser_command(p)->tag, "b");

	/* Byte by byte, bare LF. */
	for (const char *q = "dGVzdA=="; *q != '\0'; q++)
		assert_int_equal(
		    imap_parser_feed_line(p, (const uint8_t *)q, 1, &used),
		    IMAP_PARSE_NEED_MORE);
	assert_int_equal(
	    imap_parser_feed_line(p, (const uint8_t *)"\n", 1, &used),
	    IMAP_PARSE_COMMAND);
	assert_string_equal(imap_parser_line(p, &len), "dGVzdA==");

	/* Too long: BAD at once, the rest of it skipped. */
	s = repeat("", 'x', 1500, "\r\nDONE\r\n", &len);
	assert_int_equal(
	    imap_parser_feed_line(p, (const uint8_t *)s, len, &used),
	    IMAP_PARSE_BAD);
	assert_string_equal(imap_parser_error(p), "Line too long");
	off = used;
	assert_int_equal(imap_parser_feed_line(p, (const uint8_t *)s + off,
	                                       len - off, &used),
	                 IMAP_PARSE_COMMAND);
	assert_string_equal(imap_parser_line(p, &len), "DONE");
	free(s);

	/* NUL and bare CR. */
	assert_int_equal(
	    imap_parser_feed_line(p, (const uint8_t *)"DO\0NE\r\n", 7, &used),
	    IMAP_PARSE_BAD);
	assert_int_equal(used, 7);
	assert_int_equal(
	    imap_parser_feed_line(p, (const uint8_t *)"DO\rNE\r\n", 7, &used),
	    IMAP_PARSE_BAD);
	assert_int_equal(
	    imap_parser_feed_line(p, (const uint8_t *)"\r\n", 2, &used),
	    IMAP_PARSE_COMMAND);
	assert_string_equal(imap_parser_line(p, &len), "");
	assert_int_equal(len, 0);
	imap_parser_free(&p);
}

/* ---- parsing an argument list for the interpreters ---- */

static struct imap_parser *args_parser;

static const struct imap_command *
parse_cmd(const char *line)
{
	static const struct imap_parser_limits lim = {0};
	char full[4096];
	size_t used;
	int n;

	if (args_parser == NULL)
		args_parser = imap_parser_new(&lim);
	n = snprintf(full, sizeof(full), "t %s\r\n", line);
	assert_true(n > 0 && (size_t)n < sizeof(full));
	if (imap_parser_feed(args_parser, (const uint8_t *)full, (size_t)n,
	                     &used) != IMAP_PARSE_COMMAND)
		fail_msg("does not parse: %s", line);
	return imap_parser_command(args_parser);
}

static int
args_teardown(void **state)
{
	(void)state;
	imap_parser_free(&args_parser);
	return 0;
}

static void
test_args_basic(void **state)
{
	const struct imap_command *c;
	const char *s;
	size_t len;
	uint32_t n;
	uint64_t n64;

	(void)state;
	c = parse_cmd("X 42 4294967295 4294967296 9223372036854775807 "
	              "9223372036854775808 \"str\" NIL 1a ~{3+}\r\nabc");
	assert_true(imap_arg_number(&c->args[0], &n));
	assert_int_equal(n, 42);
	assert_true(imap_arg_number(&c->args[1], &n));
	assert_int_equal(n, UINT32_MAX);
	assert_false(imap_arg_number(&c->args[2], &n));
	assert_true(imap_arg_number64(&c->args[3], &n64));
	assert_true(n64 == INT64_MAX);
	assert_false(imap_arg_number64(&c->args[4], &n64));
	assert_false(imap_arg_number(&c->args[5], &n));
	assert_true(imap_arg_astring(&c->args[5], &s, &len));
	assert_string_equal(s, "str");
	assert_int_equal(len, 3);
	assert_true(imap_arg_astring(&c->args[6], &s, &len));
	assert_string_equal(s, "NIL");
	assert_true(imap_arg_atom_is(&c->args[6], "nil"));
	assert_false(imap_arg_number(&c->args[7], &n));
	assert_true(imap_arg_atom_is(&c->args[7], "1A"));
	assert_false(imap_arg_atom_is(&c->args[7], "1"));
	assert_false(imap_arg_astring(&c->args[8], &s, &len));
}

static void
test_seqset(void **state)
{
	static const char *const bad[] = {
	    "",  "0",   "1:",   ":1",  "1,,2",       "01",  "1,",    "a",
	    ",", "1:0", "*:*:", "1-2", "4294967296", "$,1", "1:*:2", "$$",
	};
	struct imap_seqset set;

	(void)state;
	assert_int_equal(imap_seqset_parse(S("9:*,1:4,7,3"), &set), 0);
	assert_int_equal(set.n, 3);
	assert_int_equal(set.ranges[0].lo, 1);
	assert_int_equal(set.ranges[0].hi, 4);
	assert_int_equal(set.ranges[1].lo, 7);
	assert_int_equal(set.ranges[2].lo, 9);
	assert_true(set.ranges[2].hi == UINT32_MAX);
	imap_seqset_resolve(&set, 20);
	assert_int_equal(set.ranges[2].hi, 20);
	assert_true(imap_seqset_contains(&set, 3));
	assert_false(imap_seqset_contains(&set, 5));
	assert_true(imap_seqset_contains(&set, 20));
	assert_false(imap_seqset_contains(&set, 21));
	assert_false(imap_seqset_contains(&set, 0));
	imap_seqset_clear(&set);
	assert_null(set.ranges);

	/* n:* with n beyond the last message means the last one. */
	assert_int_equal(imap_seqset_parse(S("5:*"), &set), 0);
	imap_seqset_resolve(&set, 3);
	assert_int_equal(set.n, 1);
	assert_int_equal(set.ranges[0].lo, 3);
	assert_int_equal(set.ranges[0].hi, 5);
	imap_seqset_clear(&set);
	assert_int_equal(imap_seqset_parse(S("*:2,*"), &set), 0);
	imap_seqset_resolve(&set, 2);
	assert_int_equal(set.n, 1);
	assert_int_equal(set.ranges[0].lo, 2);
	assert_int_equal(set.ranges[0].hi, 2);
	imap_seqset_clear(&set);
	/* Reversed ranges are swapped; adjacent ones merged. */
	assert_int_equal(imap_seqset_parse(S("4:2,5,6:7"), &set), 0);
	assert_int_equal(set.n, 1);
	assert_int_equal(set.ranges[0].lo, 2);
	assert_int_equal(set.ranges[0].hi, 7);
	imap_seqset_clear(&set);
	/* Empty mailbox: '*' matches nothing. */
	assert_int_equal(imap_seqset_parse(S("1:*"), &set), 0);
	imap_seqset_resolve(&set, 0);
	assert_false(imap_seqset_contains(&set, 1));
	imap_seqset_clear(&set);
	/* $ (SEARCHRES). */
	assert_int_equal(imap_seqset_parse(S("$"), &set), 0);
	assert_true(set.is_saved);
	assert_int_equal(set.n, 0);
	imap_seqset_clear(&set);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (imap_seqset_parse(bad[i], strlen(bad[i]), &set) == 0)
			fail_msg("accepted %s", bad[i]);
		assert_null(set.ranges);
	}
}

static void
test_seqset_large(void **state)
{
	struct imap_seqset set;
	struct buf b;
	clock_t t0 = clock();
	size_t hits = 0;

	(void)state;
	/* 1:* on 100,000 messages. */
	assert_int_equal(imap_seqset_parse(S("1:*"), &set), 0);
	imap_seqset_resolve(&set, 100000);
	for (uint32_t n = 1; n <= 100000; n++)
		hits += imap_seqset_contains(&set, n);
	assert_int_equal(hits, 100000);
	imap_seqset_clear(&set);

	/* 10,000 ranges in reverse order. */
	buf_init(&b, 0);
	for (uint32_t k = 10000; k >= 1; k--)
		buf_printf(&b, "%s%u:%u", k == 10000 ? "" : ",", k * 10,
		           k * 10 + 4);
	assert_int_equal(imap_seqset_parse((const char *)b.data, b.len, &set),
	                 0);
	imap_seqset_resolve(&set, 100000);
	assert_int_equal(set.n, 10000);
	hits = 0;
	for (uint32_t n = 1; n <= 100010; n++)
		hits += imap_seqset_contains(&set, n);
	assert_int_equal(hits, 10000 * 5);
	imap_seqset_clear(&set);
	buf_free(&b);
	assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
}

static void
test_flags(void **state)
{
	static const char *const bad[] = {
	    "(\\Recent)", "\\*",   "(\\Foo)",    "(\"quoted\")",
	    "(a] b)",     "((a))", "(\\Seen %)", "{3+}\r\nabc",
	};
	const struct imap_command *c;
	uint32_t flags;
	struct buf kw, out;

	(void)state;
	buf_init(&kw, 0);
	buf_init(&out, 0);
	c = parse_cmd("X (\\Seen \\flagged foo $Bar FOO \\Deleted \\Draft "
	              "\\Answered)");
	assert_int_equal(imap_flags_parse(&c->args[0], &flags, &kw), 0);
	assert_int_equal(flags, MBOX_F_SEEN | MBOX_F_FLAGGED | MBOX_F_DELETED |
	                            MBOX_F_DRAFT | MBOX_F_ANSWERED);
	assert_int_equal(kw.len, 8);
	assert_memory_equal(kw.data, "foo $Bar", 8);
	c = parse_cmd("X \\Seen");
	assert_int_equal(imap_flags_parse(&c->args[0], &flags, &kw), 0);
	assert_int_equal(flags, MBOX_F_SEEN);
	assert_int_equal(kw.len, 0);
	c = parse_cmd("X ()");
	assert_int_equal(imap_flags_parse(&c->args[0], &flags, &kw), 0);
	assert_int_equal(flags, 0);
	c = parse_cmd("X (foo)");
	assert_int_equal(imap_flags_parse(&c->args[0], &flags, NULL), -1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char line[64];

		snprintf(line, sizeof(line), "X %s", bad[i]);
		c = parse_cmd(line);
		if (imap_flags_parse(&c->args[0], &flags, &kw) == 0)
			fail_msg("accepted %s", bad[i]);
	}

	imap_flags_write(&out,
	                 MBOX_F_SEEN | MBOX_F_FLAGGED | MBOX_F_DELETED |
	                     MBOX_F_DRAFT | MBOX_F_ANSWERED,
	                 "kw1 kw2", true);
	buf_append_byte(&out, 0);
	assert_string_equal(
	    (const char *)out.data,
	    "(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\Recent kw1 kw2)");
	buf_reset(&out);
	imap_flags_write(&out, 0, NULL, false);
	imap_flags_write(&out, 0, "a", false);
	buf_append_byte(&out, 0);
	assert_string_equal((const char *)out.data, "()(a)");
	buf_free(&kw);
	buf_free(&out);
}

static void
test_dates(void **state)
{
	static const char *const bad_dates[] = {
	    "31-Feb-1994", "1-Foo-1994", "1-Feb-94",   "001-Feb-1994",
	    "1-Feb-1994x", "",           "0-Jan-2000", " 1-Feb-1994",
	    "29-Feb-1900", "1/Feb/1994",
	};
	static const char *const bad_datetimes[] = {
	    "17-Jul-1996 02:44:25",       "17-Jul-1996 24:00:00 +0000",
	    "17-Jul-1996 02:44:25 0700",  "17-Jul-1996 02:44:25 -07000",
	    "17-Jul-1996 2:44:25 -0700",  " 17-Jul-1996 02:44:25 -0700",
	    "17-Jul-1996 02:44:25 -0760", "17-Jul-1996  02:44:25 -0700",
	};
	time_t t;
	int zone;
	struct buf out;

	(void)state;
	assert_int_equal(imap_date_parse(S("1-Feb-1994"), &t), 0);
	assert_true(t == 760060800);
	assert_int_equal(imap_date_parse(S("01-feb-1994"), &t), 0);
	assert_true(t == 760060800);
	assert_int_equal(imap_date_parse(S("29-Feb-2000"), &t), 0);
	for (size_t i = 0; i < sizeof(bad_dates) / sizeof(bad_dates[0]); i++)
		if (imap_date_parse(bad_dates[i], strlen(bad_dates[i]), &t) ==
		    0)
			fail_msg("accepted %s", bad_dates[i]);

	assert_int_equal(
	    imap_datetime_parse(S("17-Jul-1996 02:44:25 -0700"), &t, &zone), 0);
	assert_true(t == 837596665);
	assert_int_equal(zone, -420);
	assert_int_equal(
	    imap_datetime_parse(S(" 7-Jul-1996 02:44:25 +0130"), &t, &zone), 0);
	assert_int_equal(zone, 90);
	for (size_t i = 0; i < sizeof(bad_datetimes) / sizeof(bad_datetimes[0]);
	     i++)
		if (imap_datetime_parse(bad_datetimes[i],
		                        strlen(bad_datetimes[i]), &t,
		                        &zone) == 0)
			fail_msg("accepted %s", bad_datetimes[i]);

	buf_init(&out, 0);
	imap_datetime_write(&out, 837596665, -420);
	imap_datetime_write(&out, 0, 90);
	buf_append_byte(&out, 0);
	assert_string_equal((const char *)out.data,
	                    "\"17-Jul-1996 02:44:25 -0700\""
	                    "\"01-Jan-1970 01:30:00 +0130\"");
	buf_free(&out);
}

struct mutf7_case {
	const char *mutf7;
	const char *utf8;
};

static void
test_mutf7(void **state)
{
	static const struct mutf7_case ok[] = {
	    {"INBOX", "INBOX"},
	    {"Entw&APw-rfe", "Entw\xc3\xbcrfe"},
	    {"&ZeVnLIqe-", "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"},
	    {"A&-B", "A&B"},
	    {"&-&-", "&&"},
	    {"&2D3eAQ-", "\xf0\x9f\x98\x81"},
	    {"~peter/mail/&U,BTFw-/&ZeVnLIqe-",
	     "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/"
	     "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"},
	    {"a&AAE-b", "a\x01"
	                "b"},
	    {"&APzYPd4B-x", "\xc3\xbc\xf0\x9f\x98\x81x"},
	    {"&AOQ-&-", "\xc3\xa4&"},
	    {"", ""},
	};
	static const char *const bad[] = {
	    "&AEE-",                      /* printable ASCII encoded */
	    "&AOQ",                       /* not terminated */
	    "&AOQ-&AOQ-",                 /* two runs where one would do */
	    "&Jjo!",                      /* not base64 */
	    "a\x01z",                     /* control character unencoded */
	    "\xc3\xa4",                   /* 8-bit unencoded */
	    "&2D0-",                      /* lone high surrogate */
	    "&3gE-",                      /* lone low surrogate */
	    "&AOQA-",                     /* six or more padding bits */
	    "&AOR-",                      /* non-zero padding bits */
	    "&",          "&A-", "&AAA-", /* U+0000 */
	    "&AOQ/-",                     /* '/' is not modified base64 */
	};
	struct buf out;

	(void)state;
	buf_init(&out, 0);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		buf_reset(&out);
		if (imap_mutf7_to_utf8(ok[i].mutf7, strlen(ok[i].mutf7), &out) <
		    0)
			fail_msg("rejected %s", ok[i].mutf7);
		assert_int_equal(out.len, strlen(ok[i].utf8));
		assert_memory_equal(out.data, ok[i].utf8, out.len);
		buf_reset(&out);
		imap_utf8_to_mutf7(ok[i].utf8, strlen(ok[i].utf8), &out);
		assert_int_equal(out.len, strlen(ok[i].mutf7));
		assert_memory_equal(out.data, ok[i].mutf7, out.len);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_reset(&out);
		buf_append_str(&out, "keep");
		if (imap_mutf7_to_utf8(bad[i], strlen(bad[i]), &out) == 0)
			fail_msg("accepted %s", bad[i]);
		assert_int_equal(out.len, 4); /* nothing appended */
	}
	/* Malformed UTF-8 becomes U+FFFD. */
	buf_reset(&out);
	imap_utf8_to_mutf7(S("a\xff"), &out);
	assert_int_equal(out.len, 6);
	assert_memory_equal(out.data, "a&,,0-", 6);
	/* ... one per byte for a surrogate, whose bytes are each invalid */
	buf_reset(&out);
	imap_utf8_to_mutf7(S("\xed\xa0\x80"), &out);
	assert_int_equal(out.len, 10);
	assert_memory_equal(out.data, "&,,3,,f,9-", 10);
	buf_free(&out);
}

static void
test_write_string(void **state)
{
	struct buf out;

	(void)state;
	buf_init(&out, 0);
	imap_write_string(&out, S("abc"), false);
	imap_write_string(&out, S("a\"b\\c"), false);
	imap_write_string(&out, S("a\r\nb"), false);
	imap_write_string(&out, S("\xc3\xbc"), true);
	imap_write_string(&out, S("\xc3\xbc"), false);
	imap_write_string(&out, S("\xc3"), true);
	imap_write_nstring(&out, NULL, 0, false);
	imap_write_nstring(&out, S(""), false);
	buf_append_byte(&out, 0);
	assert_string_equal((const char *)out.data,
	                    "\"abc\"\"a\\\"b\\\\c\"{4}\r\na\r\nb"
	                    "\"\xc3\xbc\"{2}\r\n\xc3\xbc{1}\r\n\xc3NIL\"\"");
	/* Only well-formed UTF-8 is quoted: U+FFFD itself and a 4-byte
	 * sequence are; an overlong form and a surrogate go as literals. */
	buf_reset(&out);
	imap_write_string(&out, S("\xef\xbf\xbd\xf0\x9f\x98\x81"), true);
	imap_write_string(&out, S("\xc0\xaf"), true);
	imap_write_string(&out, S("\xed\xa0\x80"), true);
	buf_append_byte(&out, 0);
	assert_string_equal((const char *)out.data,
	                    "\"\xef\xbf\xbd\xf0\x9f\x98\x81\""
	                    "{2}\r\n\xc0\xaf{3}\r\n\xed\xa0\x80");
	buf_free(&out);
}

/* ---- FETCH ---- */

struct fetch_case {
	const char *args;
	const char *names; /* reply names, "P:" marks a peek */
	uint64_t changedsince;
	bool vanished;
};

static void
fetch_names(const struct imap_fetch_spec *spec, char *out, size_t size)
{
	size_t off = 0;

	out[0] = '\0';
	for (size_t i = 0; i < spec->n; i++) {
		int n = snprintf(
		    out + off, size - off, "%s%s%s", i > 0 ? " " : "",
		    spec->items[i].peek ? "P:" : "", spec->items[i].name);

		assert_true(n > 0 && (size_t)n < size - off);
		off += (size_t)n;
	}
}

static void
test_fetch(void **state)
{
	static const struct fetch_case ok[] = {
	    {"ALL", "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE", 0, false},
	    {"fast", "FLAGS INTERNALDATE RFC822.SIZE", 0, false},
	    {"FULL", "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY", 0, false},
	    {"(UID BODY.PEEK[HEADER.FIELDS (From to)]<0.100>)",
	     "UID P:BODY[HEADER.FIELDS (FROM TO)]<0>", 0, false},
	    {"BODY[]", "BODY[]", 0, false},
	    {"body[1.2.mime]", "BODY[1.2.MIME]", 0, false},
	    {"(BODY[1.2] BODY[2.HEADER] BODY[TEXT] "
	     "BODY[3.HEADER.FIELDS.NOT (X-Y \"Z\")])",
	     "BODY[1.2] BODY[2.HEADER] BODY[TEXT] "
	     "BODY[3.HEADER.FIELDS.NOT (X-Y \"Z\")]",
	     0, false},
	    {"(BINARY.PEEK[1]<0.10> BINARY.SIZE[2] BINARY[] BINARY[1.2.3])",
	     "P:BINARY[1]<0> P:BINARY.SIZE[2] BINARY[] BINARY[1.2.3]", 0,
	     false},
	    {"(RFC822 RFC822.HEADER RFC822.TEXT RFC822.SIZE BODYSTRUCTURE)",
	     "RFC822 P:RFC822.HEADER RFC822.TEXT RFC822.SIZE BODYSTRUCTURE", 0,
	     false},
	    {"(FLAGS) (CHANGEDSINCE 12345)", "FLAGS MODSEQ", 12345, false},
	    {"(UID FLAGS MODSEQ) (changedsince 1 VANISHED)", "UID FLAGS MODSEQ",
	     1, true},
	    {"(BODY.PEEK[] BODY[] BODY.PEEK[])", "BODY[]", 0, false},
	    {"(BODY[]<100.5> BODY[]<200.5>)", "BODY[]<100> BODY[]<200>", 0,
	     false},
	    {"BODY[4294967295]", "BODY[4294967295]", 0, false},
	};
	static const char *const bad[] = {
	    "()",
	    "(ALL)",
	    "FOO",
	    "BODY[1.0]",
	    "BODY[0]",
	    "BODY[01]",
	    "BODY[MIME]",
	    "BODY[1.]",
	    "BODY[.1]",
	    "BODY[HEADER.FIELDS ()]",
	    "BODY[HEADER.FIELDS]",
	    "BODY[HEADER.FIELDS (A:B)]",
	    "BODY[HEADER.FIELDS  (A)]",
	    "BODY[HEADER.FIELDS (A  B)]",
	    "BODY[HEADER.FIELDS (A )]",
	    "BODY[HEADER.FIELDS (\"A\"B)]",
	    "BODY[HEADER.FIELDS (A)x]",
	    "BODY[HEADERS]",
	    "BODY[]<0.0>",
	    "BODY[]<1>",
	    "BODY[]<1.2",
	    "BODY[]<4294967296.1>",
	    "BODY[]x",
	    "BODY[4294967296]",
	    "BINARY[1.TEXT]",
	    "BINARY.SIZE[1]<0.1>",
	    "BINARY[HEADER]",
	    "BODY.PEEK",
	    "BINARY",
	    "BODYX[]",
	    "(FLAGS) (CHANGEDSINCE 0)",
	    "(FLAGS) (CHANGEDSINCE)",
	    "(FLAGS) (CHANGEDSINCE 1 CHANGEDSINCE 2)",
	    "(FLAGS) (FOO)",
	    "(FLAGS) ()",
	    "(FLAGS) VANISHED",
	    "FLAGS UID",
	    "(FLAGS \"UID\")",
	    "(FLAGS (UID))",
	    "(FLAGS) (VANISHED) x",
	    ("BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23."
	     "24.25.26.27.28.29.30.31.32.33]"),
	};
	struct imap_fetch_spec spec;
	const char *error;
	char names[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char line[512];
		const struct imap_command *c;

		snprintf(line, sizeof(line), "FETCH 1 %s", ok[i].args);
		c = parse_cmd(line);
		if (imap_fetch_parse(c->args + 1, c->count - 1, &spec, &error) <
		    0)
			fail_msg("rejected %s: %s", ok[i].args, error);
		fetch_names(&spec, names, sizeof(names));
		if (strcmp(names, ok[i].names) != 0)
			fail_msg("%s: got %s", ok[i].args, names);
		assert_true(spec.changedsince == ok[i].changedsince);
		assert_int_equal(spec.vanished, ok[i].vanished);
		imap_fetch_spec_clear(&spec);
		assert_null(spec.items);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char line[512];
		const struct imap_command *c;

		snprintf(line, sizeof(line), "FETCH 1 %s", bad[i]);
		c = parse_cmd(line);
		error = NULL;
		if (imap_fetch_parse(c->args + 1, c->count - 1, &spec,
		                     &error) == 0)
			fail_msg("accepted %s", bad[i]);
		assert_non_null(error);
		assert_null(spec.items);
	}
	{
		const struct imap_command *c = parse_cmd("FETCH 1");

		assert_int_equal(
		    imap_fetch_parse(c->args + 1, 0, &spec, &error), -1);
	}

	/* The section as the body module sees it. */
	{
		const struct imap_command *c = parse_cmd(
		    "FETCH 1 (BODY.PEEK[1.2.HEADER.FIELDS (Subject x-a)]<5.10> "
		    "RFC822.HEADER BINARY[3]<0.7>)");
		const struct imap_fetch_item *it;

		assert_int_equal(
		    imap_fetch_parse(c->args + 1, c->count - 1, &spec, &error),
		    0);
		assert_int_equal(spec.n, 3);
		it = &spec.items[0];
		assert_int_equal(it->type, IMAP_FETCH_SECTION);
		assert_true(it->peek);
		assert_int_equal(it->section.nparts, 2);
		assert_int_equal(it->section.part[0], 1);
		assert_int_equal(it->section.part[1], 2);
		assert_int_equal(it->section.kind, IMAP_SECTION_FIELDS);
		assert_int_equal(it->section.nfields, 2);
		assert_string_equal(it->section.fields[0], "SUBJECT");
		assert_string_equal(it->section.fields[1], "X-A");
		assert_true(it->section.partial);
		assert_int_equal(it->section.offset, 5);
		assert_int_equal(it->section.count, 10);
		assert_string_equal(it->name,
		                    "BODY[1.2.HEADER.FIELDS (SUBJECT X-A)]<5>");
		it = &spec.items[1];
		assert_int_equal(it->type, IMAP_FETCH_RFC822_HEADER);
		assert_int_equal(it->section.kind, IMAP_SECTION_HEADER);
		it = &spec.items[2];
		assert_int_equal(it->type, IMAP_FETCH_BINARY);
		assert_false(it->peek);
		assert_int_equal(it->section.nparts, 1);
		assert_int_equal(it->section.part[0], 3);
		assert_int_equal(it->section.count, 7);
		imap_fetch_spec_clear(&spec);
	}
}

/* ---- SEARCH ---- */

static void
key_dump(struct buf *b, const struct imap_search_key *k)
{
	static const char *const names[] = {
	    [IMAP_SK_ALL] = "ALL",
	    [IMAP_SK_AND] = "AND",
	    [IMAP_SK_OR] = "OR",
	    [IMAP_SK_NOT] = "NOT",
	    [IMAP_SK_SEQSET] = "SEQ",
	    [IMAP_SK_UID] = "UID",
	    [IMAP_SK_FLAG] = "FLAG",
	    [IMAP_SK_NOFLAG] = "NOFLAG",
	    [IMAP_SK_KEYWORD] = "KW",
	    [IMAP_SK_UNKEYWORD] = "UNKW",
	    [IMAP_SK_RECENT] = "RECENT",
	    [IMAP_SK_OLD] = "OLD",
	    [IMAP_SK_NEW] = "NEW",
	    [IMAP_SK_BEFORE] = "BEFORE",
	    [IMAP_SK_ON] = "ON",
	    [IMAP_SK_SINCE] = "SINCE",
	    [IMAP_SK_SENTBEFORE] = "SENTBEFORE",
	    [IMAP_SK_SENTON] = "SENTON",
	    [IMAP_SK_SENTSINCE] = "SENTSINCE",
	    [IMAP_SK_LARGER] = "LARGER",
	    [IMAP_SK_SMALLER] = "SMALLER",
	    [IMAP_SK_HEADER] = "HEADER",
	    [IMAP_SK_BODY] = "BODY",
	    [IMAP_SK_TEXT] = "TEXT",
	    [IMAP_SK_MODSEQ] = "MODSEQ",
	};

	buf_append_str(b, names[k->type]);
	switch (k->type) {
	case IMAP_SK_AND:
	case IMAP_SK_OR:
	case IMAP_SK_NOT:
		buf_append_byte(b, '(');
		for (size_t i = 0; i < k->nchildren; i++) {
			if (i > 0)
				buf_append_byte(b, ' ');
			key_dump(b, &k->children[i]);
		}
		buf_append_byte(b, ')');
		break;
	case IMAP_SK_SEQSET:
	case IMAP_SK_UID:
		buf_append_byte(b, ':');
		if (k->set.is_saved)
			buf_append_byte(b, '$');
		for (size_t i = 0; i < k->set.n; i++) {
			uint32_t lo = k->set.ranges[i].lo;
			uint32_t hi = k->set.ranges[i].hi;

			if (i > 0)
				buf_append_byte(b, ',');
			if (lo == UINT32_MAX)
				buf_append_byte(b, '*');
			else
				buf_printf(b, "%u", lo);
			if (hi == UINT32_MAX)
				buf_append_str(b, "-*");
			else
				buf_printf(b, "-%u", hi);
		}
		break;
	case IMAP_SK_FLAG:
	case IMAP_SK_NOFLAG:
		buf_printf(b, ":%u", k->flag);
		break;
	case IMAP_SK_KEYWORD:
	case IMAP_SK_UNKEYWORD:
	case IMAP_SK_BODY:
	case IMAP_SK_TEXT:
		buf_printf(b, ":%s", k->str);
		break;
	case IMAP_SK_HEADER:
		buf_printf(b, ":%s=%s", k->header, k->str);
		break;
	case IMAP_SK_BEFORE:
	case IMAP_SK_ON:
	case IMAP_SK_SINCE:
	case IMAP_SK_SENTBEFORE:
	case IMAP_SK_SENTON:
	case IMAP_SK_SENTSINCE:
		buf_printf(b, ":%lld", (long long)k->date);
		break;
	case IMAP_SK_LARGER:
	case IMAP_SK_SMALLER:
	case IMAP_SK_MODSEQ:
		buf_printf(b, ":%llu", (unsigned long long)k->number);
		break;
	default:
		break;
	}
}

struct search_case {
	const char *args;
	const char *want;
	uint32_t ret;
	bool esearch;
};

static void
test_search(void **state)
{
	static const struct search_case ok[] = {
	    {"ALL", "AND(ALL)", 0, false},
	    {"RETURN (MIN MAX) UNSEEN", "AND(NOFLAG:1)",
	     IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX, true},
	    {"RETURN () ALL", "AND(ALL)", IMAP_SEARCH_RET_ALL, true},
	    {"return (count save all) all", "AND(ALL)",
	     IMAP_SEARCH_RET_COUNT | IMAP_SEARCH_RET_SAVE | IMAP_SEARCH_RET_ALL,
	     true},
	    {"RETURN (MIN) CHARSET utf-8 SUBJECT \"hello\"",
	     "AND(HEADER:Subject=hello)", IMAP_SEARCH_RET_MIN, true},
	    {"CHARSET US-ASCII OR FROM a TO b",
	     "AND(OR(HEADER:From=a HEADER:To=b))", 0, false},
	    {"NOT (SEEN FLAGGED)", "AND(NOT(AND(FLAG:1 FLAG:4)))", 0, false},
	    {"1:3,5 UID 10:* $", "AND(SEQ:1-3,5-5 UID:10-* SEQ:$)", 0, false},
	    {"SINCE 1-Feb-1994 BEFORE \"2-Feb-1994\" ON 1-feb-1994",
	     "AND(SINCE:760060800 BEFORE:760147200 ON:760060800)", 0, false},
	    {"SENTBEFORE 1-Feb-1994 SENTON 1-Feb-1994 SENTSINCE 1-Feb-1994",
	     "AND(SENTBEFORE:760060800 SENTON:760060800 SENTSINCE:760060800)",
	     0, false},
	    {"HEADER X-Foo bar HEADER \"Y\" \"\"",
	     "AND(HEADER:X-Foo=bar HEADER:Y=)", 0, false},
	    {"LARGER 100 SMALLER 2000", "AND(LARGER:100 SMALLER:2000)", 0,
	     false},
	    {"KEYWORD $Junk UNKEYWORD foo", "AND(KW:$Junk UNKW:foo)", 0, false},
	    {"MODSEQ 123", "AND(MODSEQ:123)", 0, false},
	    {"MODSEQ \"/flags/\\\\draft\" all 620162338",
	     "AND(MODSEQ:620162338)", 0, false},
	    {"NEW OLD RECENT UNDRAFT DRAFT UNDELETED DELETED ANSWERED "
	     "UNANSWERED UNFLAGGED",
	     "AND(NEW OLD RECENT NOFLAG:16 FLAG:16 NOFLAG:8 FLAG:8 FLAG:2 "
	     "NOFLAG:2 NOFLAG:4)",
	     0, false},
	    {"BODY x TEXT y BCC a CC b",
	     "AND(BODY:x TEXT:y HEADER:Bcc=a "
	     "HEADER:Cc=b)",
	     0, false},
	    {"SUBJECT {5+}\r\ncaf\xc3\xa9", "AND(HEADER:Subject=caf\xc3\xa9)",
	     0, false},
	    {"SUBJECT {4+}\r\n\xf4\x8f\xbf\xbf",
	     "AND(HEADER:Subject=\xf4\x8f\xbf\xbf)", 0, false},
	    {"OR OR SEEN DRAFT NOT (1 2)",
	     "AND(OR(OR(FLAG:1 FLAG:16) NOT(AND(SEQ:1-1 SEQ:2-2))))", 0, false},
	    {"SUBJECT NIL", "AND(HEADER:Subject=NIL)", 0, false},
	    {"*", "AND(SEQ:*-*)", 0, false},
	};
	static const char *const bad[] = {
	    "FOO",
	    "OR a",
	    "OR SEEN",
	    "NOT",
	    "SINCE 31-Feb-2000",
	    "SINCE",
	    "SINCE (1-Feb-2000)",
	    "UID foo",
	    "UID",
	    "()",
	    "RETURN (FOO) ALL",
	    "RETURN ALL",
	    "RETURN (ALL)",
	    "LARGER x",
	    "LARGER",
	    "SMALLER -1",
	    "HEADER",
	    "HEADER a",
	    "HEADER a:b c",
	    "HEADER \"\" c",
	    "KEYWORD \\Seen",
	    "KEYWORD",
	    "KEYWORD \"x\"",
	    "CHARSET",
	    "SUBJECT",
	    "SUBJECT (a)",
	    "SUBJECT {1+}\r\n\xff",
	    "SUBJECT {2+}\r\n\xc0\xaf",
	    "SUBJECT {3+}\r\n\xe0\x80\xaf",
	    "SUBJECT {3+}\r\n\xed\xa0\x80",
	    "SUBJECT {4+}\r\n\xf4\x90\x80\x80",
	    "SUBJECT {3+}\r\na\xe2\x82",
	    "SUBJECT ~{1+}\r\nx",
	    "MODSEQ",
	    "MODSEQ x",
	    "MODSEQ \"/flags/x\" 5",
	    "MODSEQ \"/flags/x\" bogus 5",
	    "MODSEQ \"x\" all 5",
	    "MODSEQ 9223372036854775808",
	    "1:x",
	    "\"ALL\"",
	    ("NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT NOT "
	     "ALL"),
	    "((((((((((((((((ALL))))))))))))))))",
	    "ALL RETURN (MIN)",
	};
	struct imap_search_program prog;
	const char *error;
	struct buf b;

	(void)state;
	buf_init(&b, 0);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char line[512];
		const struct imap_command *c;

		snprintf(line, sizeof(line), "SEARCH %s", ok[i].args);
		c = parse_cmd(line);
		if (imap_search_parse(c->args, c->count, &prog, &error) != 0)
			fail_msg("rejected %s: %s", ok[i].args, error);
		buf_reset(&b);
		key_dump(&b, &prog.root);
		buf_append_byte(&b, 0);
		if (strcmp((const char *)b.data, ok[i].want) != 0)
			fail_msg("%s: got %s", ok[i].args,
			         (const char *)b.data);
		assert_int_equal(prog.ret, ok[i].ret);
		assert_int_equal(prog.esearch, ok[i].esearch);
		imap_search_program_clear(&prog);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char line[512];
		const struct imap_command *c;

		snprintf(line, sizeof(line), "SEARCH %s", bad[i]);
		c = parse_cmd(line);
		error = NULL;
		if (imap_search_parse(c->args, c->count, &prog, &error) != -1)
			fail_msg("accepted %s", bad[i]);
		assert_non_null(error);
	}
	{
		const struct imap_command *c = parse_cmd("SEARCH");

		assert_int_equal(
		    imap_search_parse(c->args, c->count, &prog, &error), -1);
		c = parse_cmd("SEARCH CHARSET ISO-8859-1 SUBJECT x");
		assert_int_equal(
		    imap_search_parse(c->args, c->count, &prog, &error), -2);
		assert_non_null(error);
	}
	/* Key count bound: 1000 keys pass, 1001 do not. */
	for (int n = 1000; n <= 1001; n++) {
		struct buf line;
		const struct imap_command *c;
		struct imap_parser *p =
		    imap_parser_new(&(struct imap_parser_limits){0});
		size_t used;

		buf_init(&line, 0);
		buf_append_str(&line, "t SEARCH");
		for (int k = 0; k < n; k++)
			buf_append_str(&line, " SEEN");
		buf_append_str(&line, "\r\n");
		assert_int_equal(
		    imap_parser_feed(p, line.data, line.len, &used),
		    IMAP_PARSE_COMMAND);
		c = imap_parser_command(p);
		assert_int_equal(
		    imap_search_parse(c->args, c->count, &prog, &error),
		    n == 1000 ? 0 : -1);
		imap_search_program_clear(&prog);
		buf_free(&line);
		imap_parser_free(&p);
	}
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_invalid),
	    cmocka_unit_test(test_literal_flow),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_line_mode),
	    cmocka_unit_test(test_args_basic),
	    cmocka_unit_test(test_seqset),
	    cmocka_unit_test(test_seqset_large),
	    cmocka_unit_test(test_flags),
	    cmocka_unit_test(test_dates),
	    cmocka_unit_test(test_mutf7),
	    cmocka_unit_test(test_write_string),
	    cmocka_unit_test(test_fetch),
	    cmocka_unit_test(test_search),
	};
	int r = cmocka_run_group_tests(tests, NULL, args_teardown);

	return r;
}
