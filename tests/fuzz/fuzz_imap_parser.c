/* libFuzzer target for the IMAP command reader: the input arrives in chunks
 * of pseudo-random sizes (derived from the input itself, so the seed corpus
 * stays plain IMAP); every command's arguments then go through the FETCH,
 * SEARCH, sequence-set, flag, date and modified UTF-7 interpreters.
 * SECURITY: this is the parser in front of every IMAP session. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap/parser.h"

#define FUZZ_ARGS_MAX 300

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t
fuzz_next(uint32_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 17;
	*state ^= *state << 5;
	return *state;
}

/* Each tree node is well-formed: strings NUL-terminated at len, a plain
 * string holds no NUL. */
static void
fuzz_check_args(const struct imap_arg *a, size_t n, size_t *total)
{
	for (size_t i = 0; i < n; i++) {
		(*total)++;
		if (a[i].type == IMAP_ARG_LIST) {
			if (a[i].count > 0 && a[i].list == NULL)
				abort();
			fuzz_check_args(a[i].list, a[i].count, total);
			continue;
		}
		if (a[i].str == NULL || a[i].str[a[i].len] != '\0')
			abort();
		if (!a[i].literal8 && strlen(a[i].str) != a[i].len)
			abort();
	}
}

/* mUTF-7 must round-trip exactly (one spelling per name); valid UTF-8
 * must survive the trip through mUTF-7. */
static void
fuzz_strings(const struct imap_arg *a, size_t n)
{
	struct buf u, m;
	const char *s;
	size_t len;
	time_t t;
	int zone;

	buf_init(&u, 0);
	buf_init(&m, 0);
	for (size_t i = 0; i < n; i++) {
		if (a[i].type == IMAP_ARG_LIST) {
			fuzz_strings(a[i].list, a[i].count);
			continue;
		}
		if (!imap_arg_astring(&a[i], &s, &len))
			continue;
		buf_reset(&u);
		buf_reset(&m);
		if (imap_mutf7_to_utf8(s, len, &u) == 0) {
			imap_utf8_to_mutf7((const char *)u.data, u.len, &m);
			if (m.len != len ||
			    (len > 0 && memcmp(m.data, s, len) != 0))
				abort();
		}
		/* Anything without NUL encodes to valid mUTF-7 (malformed
		 * UTF-8 as U+FFFD), and that decodes and re-encodes to
		 * itself. */
		buf_reset(&u);
		buf_reset(&m);
		imap_utf8_to_mutf7(s, len, &m);
		if (memchr(s, '\0', len) == NULL) {
			struct buf again;

			if (imap_mutf7_to_utf8((const char *)m.data, m.len,
			                       &u) < 0)
				abort();
			buf_init(&again, 0);
			imap_utf8_to_mutf7((const char *)u.data, u.len, &again);
			if (again.len != m.len ||
			    (m.len > 0 &&
			     memcmp(again.data, m.data, m.len) != 0))
				abort();
			buf_free(&again);
		}
		buf_reset(&u);
		imap_write_string(&u, s, len, (len & 1) != 0);
		if (imap_datetime_parse(s, len, &t, &zone) == 0) {
			buf_reset(&u);
			imap_datetime_write(&u, t, zone);
		}
		(void)imap_date_parse(s, len, &t);
	}
	buf_free(&u);
	buf_free(&m);
}

static void
fuzz_command(const struct imap_command *c, uint32_t *rng)
{
	struct imap_fetch_spec fetch;
	struct imap_search_program prog;
	struct imap_seqset set;
	const char *error;
	size_t total = 0;
	uint32_t flags;
	struct buf kw;
	int r;

	if (c->tag[0] == '\0' || c->name[0] == '\0')
		abort();
	fuzz_check_args(c->args, c->count, &total);
	if (total > FUZZ_ARGS_MAX)
		abort();
	fuzz_strings(c->args, c->count);

	/* FETCH, STORE, COPY…: the set comes first. */
	if (c->count > 0 && c->args[0].type == IMAP_ARG_ATOM &&
	    imap_seqset_parse(c->args[0].str, c->args[0].len, &set) == 0) {
		uint32_t max = fuzz_next(rng) % 200, prev = 0;

		imap_seqset_resolve(&set, max);
		for (size_t i = 0; i < set.n; i++) {
			/* Sorted, disjoint, not adjacent. */
			if (set.ranges[i].lo > set.ranges[i].hi ||
			    (i > 0 && set.ranges[i].lo <= prev + 1))
				abort();
			prev = set.ranges[i].hi;
			if (!imap_seqset_contains(&set, set.ranges[i].lo) ||
			    !imap_seqset_contains(&set, set.ranges[i].hi))
				abort();
		}
		imap_seqset_clear(&set);
	}
	if (strcmp(c->name, "FETCH") == 0 ||
	    strcmp(c->name, "UID FETCH") == 0) {
		if (c->count > 0) {
			r = imap_fetch_parse(c->args + 1, c->count - 1, &fetch,
			                     &error);
			if (r < 0 && error == NULL)
				abort();
			for (size_t i = 0; r == 0 && i < fetch.n; i++) {
				if (fetch.items[i].name == NULL ||
				    fetch.items[i].section.nparts >
				        IMAP_SECTION_DEPTH_MAX ||
				    fetch.items[i].section.nfields >
				        IMAP_SECTION_FIELDS_MAX)
					abort();
			}
			imap_fetch_spec_clear(&fetch);
		}
	}
	if (strcmp(c->name, "SEARCH") == 0 ||
	    strcmp(c->name, "UID SEARCH") == 0) {
		r = imap_search_parse(c->args, c->count, &prog, &error);
		if (r < 0 && error == NULL)
			abort();
		imap_search_program_clear(&prog);
	}
	/* STORE seq FLAGS (…); APPEND box (…); anything else: each list. */
	buf_init(&kw, 1024);
	for (size_t i = 0; i < c->count; i++) {
		if ((c->args[i].type == IMAP_ARG_LIST ||
		     c->args[i].type == IMAP_ARG_ATOM) &&
		    imap_flags_parse(&c->args[i], &flags, &kw) == 0) {
			struct buf out;

			buf_init(&out, 0);
			imap_flags_write(&out, flags, buf_cstr(&kw),
			                 (flags & 1) != 0);
			buf_free(&out);
		}
	}
	buf_free(&kw);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct imap_parser_limits lim = {
	    .line_max = 512,
	    .literal_max = 256,
	    .append_max = 2048,
	    .command_max = 4096,
	    .depth_max = 8,
	    .args_max = FUZZ_ARGS_MAX,
	};
	struct imap_parser *p = imap_parser_new(&lim);
	uint32_t rng = 2166136261u;
	size_t off = 0, end = 0, used;
	bool line_mode = false;
	const struct imap_command *cmd;
	const char *line;
	size_t len;

	for (size_t i = 0; i < size; i++)
		rng = (rng ^ data[i]) * 16777619u;
	if (rng == 0)
		rng = 1;
	while (off < size) {
		enum imap_parse_result r;
		size_t avail;

		if (off == end) {
			size_t chunk = 1 + fuzz_next(&rng) % 97;

			end = size - end < chunk ? size : end + chunk;
		}
		avail = end - off;
		r = line_mode
		        ? imap_parser_feed_line(p, data + off, avail, &used)
		        : imap_parser_feed(p, data + off, avail, &used);
		if (used > avail)
			abort();
		off += used;
		switch (r) {
		case IMAP_PARSE_NEED_MORE:
			if (used != avail)
				abort();
			break;
		case IMAP_PARSE_CONTINUE:
			if (line_mode)
				abort();
			break;
		case IMAP_PARSE_COMMAND:
			if (line_mode) {
				line = imap_parser_line(p, &len);
				if (line == NULL || line[len] != '\0' ||
				    strlen(line) != len ||
				    memchr(line, '\r', len) != NULL ||
				    len > lim.line_max)
					abort();
				line_mode = false;
				break;
			}
			cmd = imap_parser_command(p);
			fuzz_command(cmd, &rng);
			if (strcmp(cmd->name, "IDLE") == 0 ||
			    strcmp(cmd->name, "AUTHENTICATE") == 0)
				line_mode = true;
			/* The session forgets pipelined input after STARTTLS
			 * (the rest of this chunk is then a new stream). */
			if (strcmp(cmd->name, "STARTTLS") == 0)
				imap_parser_reset(p);
			break;
		case IMAP_PARSE_BAD:
			if (imap_parser_error(p)[0] == '\0' ||
			    imap_parser_error_tag(p)[0] == '\0')
				abort();
			line_mode = false;
			break;
		case IMAP_PARSE_FATAL:
			imap_parser_free(&p);
			return 0;
		}
	}
	imap_parser_free(&p);
	return 0;
}
