/* Tests for the text index of the mailbox store (src/store/mailbox_text.c):
 * what delivery and APPEND index at once, what mbox_text_catch_up fills in
 * later (COPY, files from other tools, an APPEND behind them; an index
 * from before the text index is test_mailbox.c's schema_upgrade), an index
 * built again once mostly made of expunged messages, messages that are
 * always candidates, and, over the MIME corpus, that a message is a
 * candidate for every string its search text has. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/utf8.h"
#include "core/xmalloc.h"
#include "mail/mailtext.h"
#include "store/mailbox.h"
#include "store/mailbox_int.h"
#include "test_tmpdir.h"

struct fixture {
	char *root;
	char *dir; /* ROOT/example.org/alice */
};

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	if ((f->root = tmpdir_make("mbtext")) == NULL) {
		free(f);
		return -1;
	}
	f->dir = xasprintf("%s/example.org/alice", f->root);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	tmpdir_remove(&f->root);
	free(f->dir);
	free(f);
	return 0;
}

static struct mbox_user *
open_user(const struct fixture *f)
{
	struct mbox_user *u = NULL;
	char *error = NULL;

	if (mbox_user_open(f->dir, 0, &u, &error) != MBOX_OK)
		fail_msg("mbox_user_open: %s", error);
	return u;
}

static struct mbox *
open_box(struct mbox_user *u, const char *name)
{
	struct mbox *box = NULL;
	char *error = NULL;

	if (mbox_open(u, name, false, &box, &error) != MBOX_OK)
		fail_msg("mbox_open(%s): %s", name, error);
	return box;
}

/* A message of text (a NUL-terminated string) in a spool-like file. */
static int
msg_fd(const char *text)
{
	char tmpl[] = "/tmp/tern-msg-XXXXXX";
	int fd = mkstemp(tmpl);
	size_t len = strlen(text);

	assert_true(fd >= 0);
	unlink(tmpl);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	return fd;
}

static uint32_t
deliver(struct mbox_user *u, const char *msg)
{
	int fd = msg_fd(msg);
	uint32_t uid = 0;
	char *error = NULL;

	if (mbox_deliver(u, "INBOX", NULL, fd, 0, &uid, &error) != MBOX_OK)
		fail_msg("mbox_deliver: %s", error);
	close(fd);
	return uid;
}

static uint32_t
append(struct mbox_user *u, const char *name, const char *msg)
{
	uint32_t uidvalidity, uid = 0;
	char *error = NULL;

	if (mbox_append(u, name, msg, strlen(msg), 0, NULL, 0, &uidvalidity,
	                &uid, &error) != MBOX_OK)
		fail_msg("mbox_append(%s): %s", name, error);
	return uid;
}

/* The candidates for str as one string "below:uid,uid,…" ("0:" when the
 * index cannot tell). */
static char *
cands(struct mbox *box, const char *str)
{
	uint32_t *uids = NULL, below = 0;
	size_t n = 0;
	char *error = NULL;
	struct buf out;
	char *s;

	if (mbox_text_candidates(box, str, &uids, &n, &below, &error) !=
	    MBOX_OK)
		fail_msg("mbox_text_candidates(%s): %s", str, error);
	buf_init(&out, 0);
	buf_printf(&out, "%u:", below);
	for (size_t i = 0; i < n; i++)
		buf_printf(&out, "%s%u", i > 0 ? "," : "", uids[i]);
	free(uids);
	s = xstrndup((const char *)out.data, out.len);
	buf_free(&out);
	return s;
}

#define assert_cands(box, str, want)                                           \
	do {                                                                   \
		char *got_ = cands(box, str);                                  \
		assert_string_equal(got_, want);                               \
		free(got_);                                                    \
	} while (0)

static size_t
catch_up_all(struct mbox_user *u)
{
	size_t total = 0, n;
	bool more = true;
	char *error = NULL;

	for (int i = 0; more; i++) {
		assert_true(i < 1000);
		if (mbox_text_catch_up(u, &more, &n, &error) != MBOX_OK)
			fail_msg("mbox_text_catch_up: %s", error);
		total += n;
	}
	return total;
}

static const char msg_plain[] = "Subject: Brewing notes\r\n"
                                "\r\n"
                                "the zymurgical part is here\r\n";
static const char msg_qp[] = "Subject: =?utf-8?q?Caf=C3=A9?=\r\n"
                             "MIME-Version: 1.0\r\n"
                             "Content-Type: text/plain; charset=utf-8\r\n"
                             "Content-Transfer-Encoding: quoted-printable\r\n"
                             "\r\n"
                             "d=C3=A9j=C3=A0 vu, don=E2=80=99t panic\r\n";
static const char msg_b64[] = "Subject: numbers\r\n"
                              "MIME-Version: 1.0\r\n"
                              "Content-Type: text/plain\r\n"
                              "Content-Transfer-Encoding: base64\r\n"
                              "\r\n"
                              "aW52b2ljZSBudW1iZXIgNDI=\r\n"; /* invoice
                                                                 number 42 */

/* Delivery indexes at once: whole words, the middle of a word, several
 * words, decoded text (QP, base64, RFC 2047), header text; strings the
 * index cannot narrow down. */
static void
text_delivered(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f);
	struct mbox *box;

	assert_int_equal(deliver(u, msg_plain), 1);
	assert_int_equal(deliver(u, msg_qp), 2);
	assert_int_equal(deliver(u, msg_b64), 3);
	assert_false(mbox_text_lagging(u));
	box = open_box(u, "INBOX");
	assert_false(mbox_text_lagging(u));
	assert_cands(box, "zymurgical", "4:1");
	assert_cands(box, "MURGIC", "4:1");
	assert_cands(box, "cal part i", "4:1");
	assert_cands(box, "the zymurgical part ", "4:1");
	assert_cands(box, "invoice", "4:3");
	assert_cands(box, "number 4", "4:3");
	assert_cands(box, "brewing", "4:1"); /* the header, for TEXT */
	assert_cands(box, "café", "4:2");
	assert_cands(box, "déjà vu", "4:2");
	assert_cands(box, "\xe2\x80\x99t pan", "4:2");
	assert_cands(box, "e", "4:1,2,3");
	assert_cands(box, "nowhere", "4:");
	assert_cands(box, "zymurgical parts", "4:");
	/* No word, or not UTF-8: every message is read. */
	assert_cands(box, "", "0:");
	assert_cands(box, " ,;", "0:");
	assert_cands(box, "\xff\xfe", "0:");
	mbox_close(&box);
	mbox_user_close(&u);
}

/* What misses the index at first: a COPY, files from another tool, and an
 * APPEND behind them, until mbox_text_catch_up; APPEND to a mailbox that
 * is caught up is indexed at once. */
static void
text_catch_up(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f);
	struct mbox *box, *arch;
	uint32_t one = 1, *src = NULL, *dst = NULL, uidv;
	size_t n;
	char *error = NULL, *path;
	FILE *fp;

	assert_int_equal(append(u, "Archive", msg_plain), 1);
	assert_false(mbox_text_lagging(u));
	deliver(u, msg_b64);
	box = open_box(u, "INBOX");
	assert_int_equal(mbox_copy(box, &one, 1, "Archive", false, &uidv, &src,
	                           &dst, &n, &error),
	                 MBOX_OK);
	assert_int_equal(n, 1);
	assert_int_equal(dst[0], 2);
	free(src);
	free(dst);
	assert_true(mbox_text_lagging(u));
	assert_false(mbox_text_lagging(u)); /* said once */
	arch = open_box(u, "Archive");
	assert_cands(arch, "zymurgical", "2:1");
	/* UID 2 is above the index: a candidate for anything. */
	assert_int_equal(append(u, "Archive", msg_qp), 3);
	assert_true(mbox_text_lagging(u));
	assert_cands(arch, "invoice", "2:");

	/* Another tool's file in cur/. */
	path = xasprintf("%s/.Archive/cur/1700000000.M1P1.other:2,S", f->dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs("Subject: other\n\nfrom another tool, a quokka\n", fp);
	fclose(fp);
	free(path);
	if (mbox_sync(arch, &error) != MBOX_OK)
		fail_msg("mbox_sync: %s", error);
	assert_int_equal(mbox_get_info(arch)->messages, 4);
	assert_true(mbox_text_lagging(u));

	assert_int_equal(catch_up_all(u), 3);
	assert_cands(arch, "invoice", "5:2");
	assert_cands(arch, "déjà", "5:3");
	assert_cands(arch, "quokka", "5:4");
	assert_int_equal(catch_up_all(u), 0);
	/* Caught up: APPEND indexes at once again. */
	assert_int_equal(append(u, "Archive", "Subject: x\r\n\r\nwombat\r\n"),
	                 5);
	assert_false(mbox_text_lagging(u));
	assert_cands(arch, "wombat", "6:5");
	mbox_close(&arch);
	mbox_close(&box);
	mbox_user_close(&u);
}

static int64_t
text_rows(struct mbox_user *u)
{
	sqlite3_stmt *st;
	int64_t n;

	assert_int_equal(
	    sqlite3_prepare_v2(u->db, "SELECT count(*) FROM msgtext_docsize",
	                       -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static void
expunge_range(struct mbox *box, uint32_t first, uint32_t last)
{
	uint32_t uids[64], *out = NULL;
	size_t n = 0, nout = 0;
	char *error = NULL;

	for (uint32_t uid = first; uid <= last; uid++)
		uids[n++] = uid;
	if (mbox_store_flags(box, uids, n, MBOX_FLAGS_ADD, MBOX_F_DELETED, NULL,
	                     0, &out, &nout, &error) != MBOX_OK)
		fail_msg("mbox_store_flags: %s", error);
	free(out);
	if (mbox_expunge(box, uids, n, &out, &nout, &error) != MBOX_OK)
		fail_msg("mbox_expunge: %s", error);
	assert_int_equal(nout, n);
	free(out);
}

/* Rows of expunged messages stay until they outnumber the messages (and
 * mi_text_dead_min); then the index is emptied and built again. */
static void
text_prune(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f);
	struct mbox *box;

	mi_text_dead_min = 5;
	for (int i = 1; i <= 19; i++)
		assert_int_equal(deliver(u, msg_plain), (uint32_t)i);
	assert_int_equal(deliver(u, "Subject: x\r\n\r\nwombat\r\n"), 20);
	assert_false(mbox_text_lagging(u));
	assert_int_equal(text_rows(u), 20);
	box = open_box(u, "INBOX");

	/* 3 gone: kept, and no background job asked for. */
	expunge_range(box, 1, 3);
	assert_false(mbox_text_lagging(u));
	assert_int_equal(catch_up_all(u), 0);
	assert_int_equal(text_rows(u), 20);
	/* (their rows are still candidates, which SEARCH finds gone) */
	assert_cands(box, "zymurgical",
	             "21:1,2,3,4,5,6,7,8,9,10,11,12,13,14,"
	             "15,16,17,18,19");

	/* 15 gone, 5 left: the job is asked for, and builds the index again
	 * from those 5. */
	expunge_range(box, 4, 15);
	assert_true(mbox_text_lagging(u));
	assert_int_equal(catch_up_all(u), 5);
	assert_int_equal(text_rows(u), 5);
	assert_cands(box, "zymurgical", "21:16,17,18,19");
	assert_cands(box, "wombat", "21:20");
	/* and delivery indexes at once again. */
	assert_int_equal(deliver(u, "Subject: y\r\n\r\nwombat\r\n"), 21);
	assert_false(mbox_text_lagging(u));
	assert_int_equal(text_rows(u), 6);
	mi_text_dead_min = 10000;
	mbox_close(&box);
	mbox_user_close(&u);
}

/* A message the index cannot hold word by word is a candidate for every
 * string: a word longer than FTS5 keeps, a file that cannot be read. */
static void
text_always(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f);
	struct mbox *box;
	struct buf big;
	uint32_t one = 1, *src = NULL, *dst = NULL, uidv;
	size_t n;
	char *error = NULL, *path, **names = NULL;
	DIR *d;
	struct dirent *e;

	buf_init(&big, 0);
	buf_append_str(&big, "Subject: long\r\n\r\nstart ");
	for (int i = 0; i < 40000; i++)
		buf_append_byte(&big, (uint8_t)('a' + i % 26));
	buf_append_str(&big, " end\r\n");
	buf_append_byte(&big, '\0');
	assert_int_equal(deliver(u, msg_plain), 1);
	assert_int_equal(deliver(u, (const char *)big.data), 2);
	buf_free(&big);
	box = open_box(u, "INBOX");
	assert_cands(box, "zymurgical", "3:1,2");
	assert_cands(box, "nowhere", "3:2");

	/* A copy whose file is gone when the index catches up. */
	assert_int_equal(mbox_copy(box, &one, 1, "Trash", false, &uidv, &src,
	                           &dst, &n, &error),
	                 MBOX_OK);
	free(src);
	free(dst);
	path = xasprintf("%s/.Trash/cur", f->dir);
	assert_non_null(d = opendir(path));
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		names = xreallocarray(names, 1, sizeof(*names));
		names[0] = xasprintf("%s/%s", path, e->d_name);
	}
	closedir(d);
	assert_non_null(names);
	assert_int_equal(unlink(names[0]), 0);
	free(names[0]);
	free(names);
	free(path);
	assert_int_equal(catch_up_all(u), 1);
	mbox_close(&box);
	box = open_box(u, "Trash");
	assert_cands(box, "nowhere", "2:1");
	mbox_close(&box);
	mbox_user_close(&u);
}

/* One group delivery: rows made from each message as it is written (its
 * prefix too) go to the right UID; a message too big to be read whole is
 * indexed from its file; a word too long makes a row of its own kind. */
static void
text_delivered_batch(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f);
	struct mbox_delivery it[5] = {{0}};
	struct mbox *box;
	struct buf big, longword;

	buf_init(&big, 0);
	buf_append_str(&big, "Subject: big\r\n\r\n");
	while (big.len < 1100 * 1024)
		buf_append_str(&big, "the quartzite line of a big message\r\n");
	buf_append_str(&big, "bigend\r\n");
	buf_append_byte(&big, '\0');
	buf_init(&longword, 0);
	buf_append_str(&longword, "Subject: long\r\n\r\n");
	for (int i = 0; i < 9000; i++)
		buf_append_byte(&longword, 'q');
	buf_append_str(&longword, "\r\n");
	buf_append_byte(&longword, '\0');
	it[0] = (struct mbox_delivery){
	    .name = "INBOX",
	    .prefix = "Delivered-To: kestrel@example.test\r\n",
	    .msg_fd = msg_fd(msg_plain)};
	it[1] =
	    (struct mbox_delivery){.name = "INBOX", .msg_fd = msg_fd(msg_qp)};
	it[2] = (struct mbox_delivery){.name = "INBOX",
	                               .msg_fd = msg_fd((char *)big.data)};
	it[3] = (struct mbox_delivery){.name = "INBOX",
	                               .msg_fd = msg_fd((char *)longword.data)};
	it[4] =
	    (struct mbox_delivery){.name = "INBOX", .msg_fd = msg_fd(msg_b64)};
	assert_int_equal(mbox_deliver_many(u, it, 5), 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(it[i].uid, (uint32_t)i + 1);
		close(it[i].msg_fd);
	}
	buf_free(&big);
	buf_free(&longword);
	assert_false(mbox_text_lagging(u));
	box = open_box(u, "INBOX");
	assert_cands(box, "kestrel", "6:1,4");
	assert_cands(box, "zymurgical", "6:1,4");
	assert_cands(box, "déjà vu", "6:2,4");
	assert_cands(box, "quartzite", "6:3,4");
	assert_cands(box, "bigend", "6:3,4");
	assert_cands(box, "invoice", "6:4,5");
	assert_cands(box, "nowhere", "6:4");
	mbox_close(&box);
	mbox_user_close(&u);
}

/* ---- the corpus ---- */

static char *
read_file(const char *path, size_t *len_r)
{
	FILE *fp = fopen(path, "rb");
	struct buf b;
	char chunk[4096];
	size_t r;

	if (fp == NULL)
		return NULL;
	buf_init(&b, 0);
	while ((r = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		buf_append(&b, chunk, r);
	fclose(fp);
	*len_r = b.len;
	buf_append_byte(&b, '\0');
	return (char *)b.data;
}

/* A substring of text[0..len) from a random start, of 1 to 40 bytes: NULL
 * when it is not UTF-8 or has a NUL (no search string has). */
static char *
random_piece(const uint8_t *text, size_t len, unsigned *seed)
{
	size_t start, n;

	if (len == 0)
		return NULL;
	start = (size_t)rand_r(seed) % len;
	n = 1 + (size_t)rand_r(seed) % 40;
	if (n > len - start)
		n = len - start;
	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq_len(text + start + i, n - i);

		if (l == 0 || text[start + i] == '\0')
			return NULL;
		i += l;
	}
	return xstrndup((const char *)text + start, n);
}

/* Every message of the MIME corpus, delivered; then for random pieces of
 * its header text and body text (what SEARCH TEXT and BODY test), the
 * message is a candidate. */
static void
text_corpus_superset(void **state)
{
	struct fixture *f = *state;
	const char *srcdir = getenv("TERN_TEST_SRCDIR");
	struct mbox_user *u = open_user(f);
	struct mbox *box;
	char *dir, *path;
	DIR *d;
	struct dirent *e;
	unsigned seed = 1;
	size_t tried = 0, narrowed = 0, files = 0;

	if (srcdir == NULL)
		skip();
	dir = xasprintf("%s/tests/data/mime", srcdir);
	assert_non_null(d = opendir(dir));
	box = open_box(u, "INBOX");
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name), mlen;
		struct buf hdr, body, raw;
		char *msg, *error = NULL;
		uint32_t uid;

		if (len < 5 || strcmp(e->d_name + len - 4, ".eml") != 0)
			continue;
		path = xasprintf("%s/%s", dir, e->d_name);
		msg = read_file(path, &mlen);
		free(path);
		assert_non_null(msg);
		if (strlen(msg) != mlen) { /* a NUL: not for mbox_deliver */
			free(msg);
			continue;
		}
		uid = deliver(u, msg);
		free(msg);
		files++;
		/* The text as SEARCH sees it: from the stored message. */
		if (mbox_sync(box, &error) != MBOX_OK)
			fail_msg("mbox_sync: %s", error);
		buf_init(&raw, 0);
		if (mbox_read(box, uid, &raw, &error) != MBOX_OK)
			fail_msg("mbox_read: %s", error);
		buf_init(&hdr, 0);
		buf_init(&body, 0);
		(void)mailtext_header((const char *)raw.data, raw.len, NULL,
		                      &hdr);
		mailtext_body((const char *)raw.data, raw.len, &body);
		for (int k = 0; k < 60; k++) {
			const struct buf *t = k % 2 == 0 ? &hdr : &body;
			char *piece = random_piece(t->data, t->len, &seed);
			uint32_t *uids = NULL, below = 0;
			size_t n = 0;
			bool found = false;

			if (piece == NULL)
				continue;
			if (mbox_text_candidates(box, piece, &uids, &n, &below,
			                         &error) != MBOX_OK)
				fail_msg("candidates: %s", error);
			tried++;
			if (below > 0) {
				narrowed++;
				assert_true(below > uid);
				for (size_t i = 0; i < n; i++)
					found |= uids[i] == uid;
				if (!found)
					fail_msg("%s: UID %u not a candidate "
					         "for \"%s\"",
					         e->d_name, uid, piece);
			}
			free(uids);
			free(piece);
		}
		buf_free(&raw);
		buf_free(&hdr);
		buf_free(&body);
	}
	closedir(d);
	free(dir);
	/* Not vacuous: most pieces were answered by the index. */
	assert_true(files >= 20);
	assert_true(tried >= 500);
	assert_true(narrowed * 10 >= tried * 7);
	mbox_close(&box);
	mbox_user_close(&u);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(text_delivered, setup, teardown),
	    cmocka_unit_test_setup_teardown(text_catch_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(text_prune, setup, teardown),
	    cmocka_unit_test_setup_teardown(text_always, setup, teardown),
	    cmocka_unit_test_setup_teardown(text_delivered_batch, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(text_corpus_superset, setup,
	                                    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
