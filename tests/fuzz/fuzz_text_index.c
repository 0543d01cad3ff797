/* libFuzzer target for the text index of the mailbox store
 * (src/store/mailbox_text.c): for any search string, every message whose
 * search text contains it, as IMAP SEARCH BODY and TEXT test it (ASCII
 * case-insensitive substring), is among the index's candidates. A small
 * mailbox of fixed messages (encodings, charsets, punctuation inside
 * words, non-Latin scripts, a word too long to index) is made once.
 * SECURITY: search strings come from IMAP clients; they are split by
 * SQLite's tokenizer and quoted into an FTS5 query, which must neither
 * fail on any of them nor leave out a match. */
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/buf.h"
#include "mail/mailtext.h"
#include "store/mailbox.h"

#define FUZZ_STRING_MAX 300

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const messages[] = {
    "From: Zoë <zoe@example.org>\r\nSubject: Brewing notes\r\n\r\n"
    "The zymurgical part is here; don't forget the yeast.\r\n"
    "Numbers: 3.14159, 2026-11-23 and x_y-z.\r\n",
    "Subject: =?utf-8?q?Caf=C3=A9_cr=C3=A8me?=\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    "D=C3=A9j=C3=A0 vu =E2=80=94 don=E2=80=99t panic. Stra=C3=9Fe, "
    "=C3=85ngstr=C3=B6m, soft=\r\nbreak.\r\n",
    "Subject: numbers\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    "aW52b2ljZSBudW1iZXIgNDIsIGR1ZSAxLzEyLg==\r\n",
    "Subject: parts\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: 8bit\r\n\r\nna\xefve fa\xe7"
    "ade\r\n--b\r\n"
    "Content-Type: text/html\r\n\r\n<p>Hello&nbsp;<b>World</b></p>\r\n"
    "--b--\r\n",
    "Subject: scripts\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2"
    "\xd0\xb5\xd1\x82 \xce\xb1\xce\xb2\xce\xb3 \xf0\x9f\x98\x80 emoji\r\n",
    "Subject: plain\r\n\r\nMIXED case WoRdS and under_scores, "
    "e-mail, a.b.c, \"quoted\" (paren) [bracket] {brace} #tag @at\r\n",
    NULL, /* the long word, made at start */
};

#define NMSG (sizeof(messages) / sizeof(messages[0]))

static char root[64];
static struct mbox_user *user;
static struct mbox *box;
static struct buf hdrs[NMSG], bodies[NMSG];
static uint32_t uids[NMSG];

static int
rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void
cleanup(void)
{
	mbox_close(&box);
	mbox_user_close(&user);
	if (root[0] != '\0')
		(void)nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
setup(void)
{
	char *error = NULL, dir[128];
	struct buf longmsg;

	snprintf(root, sizeof(root), "/tmp/tern-fuzz-text-XXXXXX");
	if (mkdtemp(root) == NULL)
		abort();
	atexit(cleanup);
	snprintf(dir, sizeof(dir), "%s/example.org/u", root);
	if (mbox_user_open(dir, 0, &user, &error) != MBOX_OK)
		abort();
	buf_init(&longmsg, 0);
	buf_append_str(&longmsg, "Subject: long\r\n\r\nbefore ");
	for (int i = 0; i < 9000; i++)
		buf_append_byte(&longmsg, (uint8_t)('a' + i % 26));
	buf_append_str(&longmsg, " after\r\n");
	for (size_t i = 0; i < NMSG; i++) {
		const char *m = messages[i] != NULL
		                    ? messages[i]
		                    : (const char *)longmsg.data;
		size_t len = messages[i] != NULL ? strlen(m) : longmsg.len;
		uint32_t uidv;
		struct buf raw;

		if (mbox_append(user, "INBOX", m, len, 0, NULL, 0, &uidv,
		                &uids[i], &error) != MBOX_OK)
			abort();
		if (i == 0 &&
		    mbox_open(user, "INBOX", true, &box, &error) != MBOX_OK)
			abort();
		/* The text as SEARCH sees it: from the stored message. */
		buf_init(&raw, 0);
		if (mbox_read(box, uids[i], &raw, &error) != MBOX_OK ||
		    buf_cstr(&raw) == NULL)
			abort();
		buf_init(&hdrs[i], 0);
		buf_init(&bodies[i], 0);
		(void)mailtext_header((const char *)raw.data, raw.len, NULL,
		                      &hdrs[i]);
		mailtext_body((const char *)raw.data, raw.len, &bodies[i]);
		buf_free(&raw);
	}
	buf_free(&longmsg);
}

/* IMAP SEARCH's test (src/imap/cmd_search.c). */
static int
ci_contains(const struct buf *hay, const char *needle)
{
	size_t n = strlen(needle);

	if (n == 0)
		return 1;
	for (size_t i = 0; i + n <= hay->len; i++)
		if (strncasecmp((const char *)hay->data + i, needle, n) == 0)
			return 1;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[FUZZ_STRING_MAX + 1];
	uint32_t *cands = NULL, below = 0;
	size_t n = 0, len = size < FUZZ_STRING_MAX ? size : FUZZ_STRING_MAX;
	char *error = NULL;

	if (box == NULL)
		setup();
	memcpy(s, data, len);
	s[len] = '\0'; /* a search string ends at its first NUL */
	if (mbox_text_candidates(box, s, &cands, &n, &below, &error) != MBOX_OK)
		abort(); /* no string may break the query */
	for (size_t i = 1; i < n; i++)
		if (cands[i] <= cands[i - 1])
			abort();
	for (size_t i = 0; i < NMSG && below > 0; i++) {
		bool listed = false;

		if (uids[i] >= below ||
		    !(ci_contains(&hdrs[i], s) || ci_contains(&bodies[i], s)))
			continue;
		for (size_t k = 0; k < n; k++)
			listed |= cands[k] == uids[i];
		if (!listed) {
			fprintf(stderr, "message %zu left out for \"%s\"\n", i,
			        s);
			abort();
		}
	}
	free(cands);
	return 0;
}
