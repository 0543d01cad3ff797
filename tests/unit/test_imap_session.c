/* Tests for the IMAP session after login (src/imap/session.c, cmd_*.c):
 * scripted input against a real store in a temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "imap/session.h"
#include "imap/session_int.h"
#include "store/mailbox.h"

#define APPEND_MAX (1024 * 1024)

static const char MSG1[] = "From: Alice <alice@example.org>\r\n"
                           "To: Bob <bob@example.org>\r\n"
                           "Subject: Hello world\r\n"
                           "Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
                           "Message-ID: <1@example.org>\r\n"
                           "\r\n"
                           "Hello Bob, this is the body.\r\n";

static const char MSG2[] = "From: Carol <carol@example.org>\r\n"
                           "To: Bob <bob@example.org>\r\n"
                           "Subject: Report\r\n"
                           "Date: Tue, 8 Feb 1994 10:00:00 +0000\r\n"
                           "MIME-Version: 1.0\r\n"
                           "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
                           "\r\n"
                           "--b1\r\n"
                           "Content-Type: text/plain\r\n"
                           "\r\n"
                           "See the attachment, banana.\r\n"
                           "--b1\r\n"
                           "Content-Type: application/octet-stream\r\n"
                           "Content-Transfer-Encoding: base64\r\n"
                           "\r\n"
                           "AAECAw==\r\n"
                           "--b1--\r\n";

static const char MSG3[] = "From: Dave <dave@example.org>\r\n"
                           "Subject: Third\r\n"
                           "\r\n"
                           "small\r\n";

/* ---- fixtures ---- */

struct env {
	char dir[128];
};

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	snprintf(e->dir, sizeof(e->dir), "/tmp/tern-imap-XXXXXX");
	if (mkdtemp(e->dir) == NULL)
		return -1;
	*state = e;
	return 0;
}

static void
teardown_dir(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int
teardown(void **state)
{
	struct env *e = *state;

	teardown_dir(e->dir);
	free(e);
	return 0;
}

static struct imap_session *
sess_new_max(const struct env *e, size_t append_max)
{
	struct imap_session_settings set = {
	    .line_max = 8192,
	    .literal_max = 64 * 1024,
	    .append_max = append_max,
	    .idle_poll_ms = 1000,
	    .hostname = "mail.example.org",
	};
	struct mbox_user *u = NULL;
	char *err = NULL;

	assert_int_equal(mbox_user_open(e->dir, 0, &u, &err), 0);
	return imap_session_new("user@example.org", u, &set);
}

static struct imap_session *
sess_new(const struct env *e)
{
	return sess_new_max(e, APPEND_MAX);
}

/* Deliver through a handle of its own (another process, as it were). */
static uint32_t
deliver(const struct env *e, const char *box, const char *msg, uint32_t flags)
{
	struct mbox_user *u = NULL;
	uint32_t uidvalidity, uid = 0;
	char *err = NULL;

	assert_int_equal(mbox_user_open(e->dir, 0, &u, &err), 0);
	assert_int_equal(mbox_append(u, box, msg, strlen(msg), flags, NULL, 0,
	                             &uidvalidity, &uid, &err),
	                 0);
	mbox_user_close(&u);
	return uid;
}

struct feed_result {
	enum imap_run_result last;
	unsigned slices;  /* IMAP_RUN_OUTPUT returns */
	size_t max_chunk; /* the largest output of one call */
	size_t len;       /* of the whole output */
};

/* Feed input in pieces of step bytes (0: all at once), run until the
 * session wants input; the whole output, NUL-terminated. */
static char *
feed_step(struct imap_session *s, const char *in, size_t len, size_t step,
          struct feed_result *fr)
{
	struct buf out, all;
	size_t off = 0, c;
	enum imap_run_result r;
	struct feed_result tmp;

	if (fr == NULL)
		fr = &tmp;
	memset(fr, 0, sizeof(*fr));
	buf_init(&out, 0);
	buf_init(&all, 0);
	for (;;) {
		size_t avail = len - off;

		if (step != 0 && avail > step)
			avail = step;
		r = imap_session_run(s, (const uint8_t *)in + off, avail, &c,
		                     &out);
		assert_true(c <= avail);
		off += c;
		if (out.len > fr->max_chunk)
			fr->max_chunk = out.len;
		assert_int_equal(buf_append(&all, out.data, out.len), 0);
		buf_reset(&out);
		fr->last = r;
		if (r == IMAP_RUN_OUTPUT) {
			fr->slices++;
			continue;
		}
		if (r == IMAP_RUN_CLOSE || off >= len)
			break;
	}
	buf_free(&out);
	assert_non_null(buf_cstr(&all));
	fr->len = all.len;
	return (char *)all.data;
}

static char *
run(struct imap_session *s, const char *script)
{
	return feed_step(s, script, strlen(script), 0, NULL);
}

/* A function, not a macro body: the compiler cannot prove the strings
 * non-NULL across every call site. */
static void
expect_has(const char *out, const char *needle, bool want)
{
	bool found =
	    out != NULL && needle != NULL && strstr(out, needle) != NULL;

	if (found != want) {
		print_error("%s [%s] in:\n%s\n",
		            want ? "missing" : "unexpected",
		            needle != NULL ? needle : "(null)",
		            out != NULL ? out : "(null)");
		fail();
	}
}

#define HAS(out, needle) expect_has((out), (needle), true)
#define HASNOT(out, needle) expect_has((out), (needle), false)

static size_t
count_of(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(hay, needle); p != NULL;
	     p = strstr(p + 1, needle))
		n++;
	return n;
}

/* ---- login reply, small commands, errors ---- */

static void
test_login_and_small_commands(void **state)
{
	struct env *e = *state;
	struct imap_session *s = sess_new(e);
	struct buf out;
	char *o;

	buf_init(&out, 0);
	imap_session_login_reply(s, "a1", &out);
	assert_non_null(buf_cstr(&out));
	HAS((char *)out.data, "a1 OK [CAPABILITY IMAP4rev1 IMAP4rev2 ");
	HAS((char *)out.data, " APPENDLIMIT=1048576] Logged in\r\n");
	buf_free(&out);

	o = run(s, "a2 CAPABILITY\r\na3 NOOP\r\na4 ID (\"name\" \"x\")\r\n"
	           "a5 NAMESPACE\r\na6 ENABLE CONDSTORE\r\n"
	           "a7 ID NIL\r\n");
	HAS(o, "* CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ ENABLE IDLE "
	       "NAMESPACE ID UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE");
	HAS(o, "ESEARCH SEARCHRES BINARY CONDSTORE");
	HAS(o, "a2 OK");
	HAS(o, "a3 OK NOOP completed\r\n");
	HAS(o, "* ID (\"name\" \"tern\")\r\na4 OK");
	HAS(o, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\na5 OK");
	HAS(o, "* ENABLED CONDSTORE\r\na6 OK");
	HAS(o, "a7 OK");
	free(o);
	imap_session_free(&s);
	assert_null(s);
}

static void
test_errors(void **state)
{
	struct env *e = *state;
	struct imap_session *s = sess_new(e);
	struct feed_result fr;
	struct buf script;
	char *o;

	o = run(s, "b1 FROB\r\nb2 FETCH 1 FLAGS\r\nb3 LOGIN a b\r\n"
	           "b4 SELECT\r\nb5 STATUS INBOX (BOGUS)\r\n"
	           "b6 SELECT nosuchbox\r\nb7 LIST (BOGUS) \"\" *\r\n"
	           "b8 EXPUNGE\r\nb9 ID (\"a\")\r\n");
	HAS(o, "b1 BAD Unknown command\r\n");
	HAS(o, "b2 BAD No mailbox selected\r\n");
	HAS(o, "b3 BAD Already logged in\r\n");
	HAS(o, "b4 BAD");
	HAS(o, "b5 BAD");
	HAS(o, "b6 NO [NONEXISTENT]");
	HAS(o, "b7 BAD");
	HAS(o, "b8 BAD");
	HAS(o, "b9 BAD");
	free(o);

	/* EXAMINE: read-only. */
	deliver(e, "INBOX", MSG1, 0);
	o = run(s, "c1 EXAMINE INBOX\r\nc2 STORE 1 +FLAGS (\\Seen)\r\n"
	           "c3 EXPUNGE\r\nc4 MOVE 1 Trash\r\nc5 FETCH 1 (BODY[])\r\n"
	           "c6 FETCH 1 FLAGS\r\nc7 STORE 1 +FLAGS (\\Recent)\r\n");
	HAS(o, "* OK [PERMANENTFLAGS ()]");
	HAS(o, "c1 OK [READ-ONLY] EXAMINE completed");
	HAS(o, "c2 NO");
	HAS(o, "c3 NO");
	HAS(o, "c4 NO");
	HAS(o, "c5 OK");
	HAS(o, "* 1 FETCH (FLAGS ())\r\nc6 OK"); /* no \Seen in EXAMINE */
	HAS(o, "c7 NO");
	free(o);

	/* Twenty BADs in a row: BYE and close. */
	buf_init(&script, 0);
	for (int i = 0; i < 25; i++)
		buf_printf(&script, "x%d FROB\r\n", i);
	o = feed_step(s, (const char *)script.data, script.len, 0, &fr);
	assert_int_equal(fr.last, IMAP_RUN_CLOSE);
	HAS(o, "x19 BAD Unknown command\r\n* BYE Too many invalid commands");
	HASNOT(o, "x20 ");
	free(o);
	buf_free(&script);
	imap_session_free(&s);
}

static void
test_logout(void **state)
{
	struct env *e = *state;
	struct imap_session *s = sess_new(e);
	struct feed_result fr;
	struct buf out;
	char *o;
	const char *script = "z1 SELECT INBOX\r\nz2 LOGOUT\r\nz3 NOOP\r\n";

	o = feed_step(s, script, strlen(script), 0, &fr);
	assert_int_equal(fr.last, IMAP_RUN_CLOSE);
	HAS(o, "* BYE Logging out\r\nz2 OK Logout completed\r\n");
	HASNOT(o, "z3");
	free(o);
	imap_session_free(&s);

	s = sess_new(e);
	buf_init(&out, 0);
	imap_session_shutdown(s, &out);
	assert_non_null(buf_cstr(&out));
	HAS((char *)out.data, "* BYE");
	buf_free(&out);
	imap_session_free(&s);
}

/* ---- SELECT / EXAMINE ---- */

static void
test_select_rev1(void **state)
{
	struct env *e = *state;
	struct imap_session *s;
	char *o;

	deliver(e, "INBOX", MSG1, MBOX_F_SEEN);
	deliver(e, "INBOX", MSG2, 0);
	deliver(e, "INBOX", MSG3, 0);
	s = sess_new(e);
	assert_null(imap_session_selected(s));
	o = run(s, "s1 SELECT inbox\r\n");
	HAS(o, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n");
	HAS(o, "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen "
	       "\\Draft \\*)]");
	HAS(o, "* 3 EXISTS\r\n* 0 RECENT\r\n* OK [UNSEEN 2]");
	HAS(o, "* OK [UIDVALIDITY ");
	HAS(o, "* OK [UIDNEXT 4]");
	HAS(o, "* OK [HIGHESTMODSEQ ");
	HAS(o, "s1 OK [READ-WRITE] SELECT completed\r\n");
	HASNOT(o, "* LIST");
	free(o);
	assert_string_equal(imap_session_selected(s), "INBOX");

	o = run(s, "s2 EXAMINE INBOX\r\ns3 SELECT INBOX (CONDSTORE)\r\n"
	           "s4 FETCH 1 (FLAGS)\r\n");
	HAS(o, "s2 OK [READ-ONLY]");
	HASNOT(o, "[CLOSED]"); /* rev1 */
	HAS(o, "s3 OK [READ-WRITE]");
	/* CONDSTORE on: FETCH FLAGS comes with MODSEQ. */
	HAS(o, "* 1 FETCH (FLAGS (\\Seen) MODSEQ (");
	free(o);
	imap_session_free(&s);
}

static void
test_select_rev2(void **state)
{
	struct env *e = *state;
	struct imap_session *s;
	char *o;

	deliver(e, "INBOX", MSG1, 0);
	s = sess_new(e);
	o = run(s, "r1 ENABLE IMAP4rev2\r\nr2 SELECT INBOX\r\n"
	           "r3 SELECT Sent\r\nr4 SEARCH ALL\r\n");
	HAS(o, "* ENABLED IMAP4rev2\r\n");
	HAS(o, "* 1 EXISTS\r\n* FLAGS");
	HAS(o, "* LIST () \"/\" \"INBOX\"\r\n");
	HASNOT(o, "RECENT");
	HASNOT(o, "[UNSEEN");
	HAS(o, "* OK [CLOSED] Previous mailbox closed\r\n");
	HAS(o, "r3 OK [READ-WRITE]");
	/* rev2: SEARCH answers ESEARCH. */
	HAS(o, "* ESEARCH (TAG \"r4\")\r\nr4 OK");
	free(o);
	imap_session_free(&s);
}

static void
test_empty_mailbox(void **state)
{
	struct env *e = *state;
	struct imap_session *s = sess_new(e);
	char *o;

	o = run(s, "e1 SELECT Archive\r\ne2 FETCH 1:* (FLAGS)\r\n"
	           "e3 UID FETCH 1:* (FLAGS)\r\ne4 SEARCH 1:*\r\n"
	           "e5 UID SEARCH ALL\r\ne6 STORE 1:* +FLAGS (\\Seen)\r\n"
	           "e7 UID STORE 1:* +FLAGS (\\Seen)\r\ne8 FETCH 1 FLAGS\r\n"
	           "e9 UID COPY 1:* INBOX\r\n");
	HAS(o, "* 0 EXISTS");
	HAS(o, "* OK [UIDNEXT 1]");
	/* RFC 9051 9: "*" in an empty mailbox is BAD for sequence
	 * numbers; a UID range simply matches nothing. */
	HAS(o, "e2 BAD Invalid message sequence number\r\n");
	HAS(o, "e3 OK UID FETCH completed\r\n");
	HAS(o, "* SEARCH\r\ne4 OK");
	HAS(o, "* SEARCH\r\ne5 OK");
	HAS(o, "e6 BAD");
	HAS(o, "e7 OK");
	HAS(o, "e8 BAD");
	HAS(o, "e9 OK");
	HASNOT(o, "FETCH (");
	free(o);
	imap_session_free(&s);
}

/* ---- mailboxes ---- */

static void
test_mailbox_commands(void **state)
{
	struct env *e = *state;
	struct imap_session *s = sess_new(e);
	char *o;

	o = run(s, "m1 CREATE Work/\r\nm2 CREATE Work\r\n"
	           "m3 CREATE Work/Projects\r\nm4 CREATE INBOX\r\n"
	           "m5 DELETE Work\r\nm6 RENAME Work/Projects Work/Old\r\n"
	           "m7 RENAME Nothing Else\r\nm8 DELETE Nothing\r\n"
	           "m9 DELETE INBOX\r\nm10 CREATE a/../b\r\n"
	           "m11 RENAME Work Sent\r\n");
	HAS(o, "m1 OK CREATE completed");
	HAS(o, "m2 NO [ALREADYEXISTS]");
	HAS(o, "m3 OK");
	HAS(o, "m4 NO [ALREADYEXISTS]");
	HAS(o, "m5 NO [HASCHILDREN]");
	HAS(o, "m6 OK RENAME completed");
	HAS(o, "m7 NO [NONEXISTENT]");
	HAS(o, "m8 NO [NONEXISTENT]");
	HAS(o, "m9 NO [CANNOT]");
	HAS(o, "m10 NO [CANNOT]");
	HAS(o, "m11 NO [ALREADYEXISTS]");
	free(o);

	o = run(s, "l1 LIST \"\" \"\"\r\nl2 LIST \"\" *\r\nl3 LIST \"\" %\r\n"
	           "l4 LIST Work/ %\r\n");
	HAS(o, "* LIST (\\Noselect) \"/\" \"\"\r\nl1 OK");
	HAS(o, "* LIST (\\HasNoChildren) \"/\" \"INBOX\"\r\n");
	HAS(o, "* LIST (\\HasChildren) \"/\" \"Work\"\r\n");
	HAS(o, "* LIST (\\HasNoChildren) \"/\" \"Work/Old\"\r\n");
	HAS(o, "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"\r\n");
	HAS(o, "* LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"\r\n");
	/* "%" stops at the delimiter. */
	assert_int_equal(count_of(strstr(o, "l2 OK"), "Work/Old"), 1);
	HAS(strstr(o, "l3 OK") != NULL ? strstr(o, "l2 OK") : o, "l4 OK");
	free(o);

	o = run(s, "l5 LIST \"\" %\r\n");
	HASNOT(o, "Work/Old");
	HAS(o, "\"Work\"");
	free(o);
	o = run(s, "l6 LIST Work/ %\r\n");
	HAS(o, "* LIST (\\HasNoChildren) \"/\" \"Work/Old\"\r\nl6 OK");
	free(o);

	/* Subscriptions, LSUB, LIST-EXTENDED. */
	o = run(s,
	        "u1 SUBSCRIBE Work/Old\r\nu2 SUBSCRIBE Gone\r\n"
	        "u3 LSUB \"\" *\r\nu4 LSUB \"\" %\r\n"
	        "u5 LIST (SUBSCRIBED) \"\" *\r\n"
	        "u6 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" %\r\n"
	        "u7 LIST (SPECIAL-USE) \"\" *\r\n"
	        "u8 LIST \"\" * RETURN (SUBSCRIBED CHILDREN)\r\n"
	        "u9 UNSUBSCRIBE Gone\r\nu10 LIST (RECURSIVEMATCH) \"\" *\r\n");
	HAS(o, "u1 OK SUBSCRIBE completed");
	HAS(o, "u2 OK");
	HAS(o, "* LSUB () \"/\" \"Work/Old\"\r\n");
	HAS(o, "* LSUB (\\Noselect) \"/\" \"Gone\"\r\n");
	/* u4: "%" hides Work/Old: its parent is shown \Noselect. */
	HAS(o, "* LSUB (\\Noselect) \"/\" \"Work\"\r\nu4 OK");
	HAS(o, "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Work/Old\"\r\n");
	HAS(o, "* LIST (\\NonExistent \\Subscribed) \"/\" \"Gone\"\r\n");
	HAS(o, "* LIST (\\HasChildren) \"/\" \"Work\" (\"CHILDINFO\" "
	       "(\"SUBSCRIBED\"))\r\n");
	HAS(o, "* LIST (\\HasNoChildren \\Drafts) \"/\" \"Drafts\"\r\n");
	HASNOT(strstr(o, "u6 OK"), "\"Work\"\r\nu7");
	HAS(o, "u9 OK UNSUBSCRIBE completed");
	HAS(o, "u10 BAD");
	free(o);

	/* STATUS and LIST-STATUS. */
	deliver(e, "Work/Old", MSG1, MBOX_F_SEEN | MBOX_F_DELETED);
	deliver(e, "Work/Old", MSG3, 0);
	o = run(s, "t1 STATUS Work/Old (MESSAGES UIDNEXT UNSEEN DELETED SIZE "
	           "RECENT)\r\nt2 STATUS Nothing (MESSAGES)\r\n"
	           "t3 LIST \"\" Work/* RETURN (STATUS (MESSAGES UNSEEN))\r\n"
	           "t4 STATUS INBOX (HIGHESTMODSEQ UIDVALIDITY)\r\n");
	HAS(o, "* STATUS \"Work/Old\" (MESSAGES 2 UIDNEXT 3 UNSEEN 1 DELETED 1 "
	       "SIZE ");
	HAS(o, " RECENT 0)\r\nt1 OK");
	HAS(o, "t2 NO [NONEXISTENT]");
	HAS(o, "* LIST (\\HasNoChildren) \"/\" \"Work/Old\"\r\n"
	       "* STATUS \"Work/Old\" (MESSAGES 2 UNSEEN 1)\r\nt3 OK");
	HAS(o, "* STATUS \"INBOX\" (UIDVALIDITY ");
	HAS(o, " HIGHESTMODSEQ ");
	free(o);

	/* The selected mailbox renamed, then deleted. */
	o = run(s, "v1 SELECT Work/Old\r\nv2 RENAME Work/Old Work/New\r\n"
	           "v3 FETCH 1:* (UID)\r\nv4 NOOP\r\nv5 DELETE Work/New\r\n"
	           "v6 NOOP\r\nv7 FETCH 1 FLAGS\r\n");
	HAS(o, "v2 OK RENAME completed");
	HAS(o, "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2)\r\nv3 OK");
	HAS(o, "v4 OK");
	HAS(o, "* OK [CLOSED] Mailbox deleted\r\nv5 OK DELETE completed");
	HAS(o, "v6 OK");
	HAS(o, "v7 BAD No mailbox selected");
	assert_null(imap_session_selected(s));
	free(o);
	imap_session_free(&s);
}

static void
test_mailbox_names_utf7(void **state)
{
	struct env *e = *state;
	struct imap_session *s = sess_new(e);
	struct imap_session *s2;
	char *o;

	/* "Entwürfe" in modified UTF-7. */
	o = run(s, "n1 CREATE Entw&APw-rfe\r\nn2 LIST \"\" Entw*\r\n"
	           "n3 CREATE &Jjo-\r\nn4 CREATE bad&-\x01\r\n");
	HAS(o, "n1 OK");
	HAS(o, "* LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe\"\r\n");
	HAS(o, "n3 OK");
	free(o);

	s2 = sess_new(e);
	o = run(s2, "n5 ENABLE IMAP4rev2\r\nn6 LIST \"\" Entw*\r\n"
	            "n7 SELECT \"Entwürfe\"\r\nn8 STATUS \"☺\" (MESSAGES)\r\n");
	HAS(o, "* LIST (\\HasNoChildren) \"/\" \"Entwürfe\"\r\n");
	HAS(o, "n7 OK [READ-WRITE]");
	HAS(o, "* STATUS \"☺\" (MESSAGES 0)");
	free(o);
	imap_session_free(&s2);
	imap_session_free(&s);
}

/* ---- APPEND ---- */

static void
test_append(void **state)
{
	struct env *e = *state;
	struct imap_session *s = sess_new_max(e, 200);
	char *o;

	o = run(s, "p1 APPEND INBOX (\\Seen \\Flagged $Label) "
	           "\"17-Jul-1996 02:44:25 -0700\" {40}\r\n");
	HAS(o, "+ OK\r\n");
	free(o);
	o = run(s, "Subject: one\r\n\r\n0123456789012345678901\r\n\r\n");
	HAS(o, "p1 OK [APPENDUID ");
	HAS(o, " 1] APPEND completed\r\n");
	free(o);

	/* LITERAL+, no continuation. */
	o = run(s, "p2 APPEND INBOX {16+}\r\nSubject: two\r\n\r\n\r\n");
	HASNOT(o, "+ OK");
	HAS(o, " 2] APPEND completed");
	free(o);

	o = run(s, "p3 APPEND Nowhere {16+}\r\nSubject: two\r\n\r\n\r\n"
	           "p4 APPEND INBOX {300}\r\n"
	           "p5 APPEND INBOX (\\Recent) {1+}\r\nx\r\n"
	           "p6 APPEND INBOX \"bad date\" {1+}\r\nx\r\n");
	HAS(o, "p3 NO [TRYCREATE]");
	HAS(o, "p4 NO [TOOBIG]");
	HAS(o, "p5 BAD");
	HAS(o, "p6 BAD");
	free(o);

	o = run(s, "p7 SELECT INBOX\r\np8 FETCH 1 (FLAGS INTERNALDATE "
	           "RFC822.SIZE)\r\n");
	HAS(o, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft "
	       "$Label)\r\n");
	HAS(o, "* 1 FETCH (FLAGS (\\Flagged \\Seen $Label) INTERNALDATE "
	       "\"17-Jul-1996 09:44:25 +0000\" RFC822.SIZE 40)\r\n");
	free(o);

	/* An APPEND to the selected mailbox shows up as EXISTS. */
	o = run(s, "p9 APPEND INBOX {16+}\r\nSubject: thr\r\n\r\n\r\n");
	HAS(o, "* 3 EXISTS\r\n* 1 RECENT\r\np9 OK [APPENDUID");
	free(o);
	imap_session_free(&s);
}

/* ---- FETCH ---- */

static void
test_fetch(void **state)
{
	struct env *e = *state;
	struct imap_session *s;
	struct feed_result fr;
	const char *script;
	char *o;

	deliver(e, "INBOX", MSG1, 0);
	deliver(e, "INBOX", MSG2, 0);
	s = sess_new(e);
	o = run(s, "f1 SELECT INBOX\r\n"
	           "f2 FETCH 1 (UID FLAGS RFC822.SIZE ENVELOPE)\r\n"
	           "f3 FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]\r\n"
	           "f4 FETCH 1 (FLAGS)\r\n");
	HAS(o, "* 1 FETCH (UID 1 FLAGS () RFC822.SIZE 181 ENVELOPE (\"Mon, 7 "
	       "Feb 1994 21:52:25 -0800\" \"Hello world\" ((\"Alice\" NIL "
	       "\"alice\" \"example.org\"))");
	HAS(o, "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {24}\r\n"
	       "Subject: Hello world\r\n\r\n)\r\nf3 OK");
	HAS(o, "* 1 FETCH (FLAGS ())\r\nf4 OK");
	free(o);

	/* Cached header fields were kept by f3; later FETCHes and SEARCHes
	 * of them read the cache (made different here to tell), others the
	 * message. */
	{
		struct mbox_user *u = NULL;
		struct mbox *box = NULL;
		char *err = NULL, *v = NULL;
		size_t vlen;
		static const char fake[] = "Subject: from the cache\r\n\r\n";

		assert_int_equal(mbox_user_open(e->dir, 0, &u, &err), 0);
		assert_int_equal(mbox_open(u, "INBOX", false, &box, &err), 0);
		assert_int_equal(
		    mbox_cache_get(box, 1, IMAP_CACHE_HEADERS, &v, &vlen), 1);
		assert_non_null(strstr(v, "Subject: Hello world\r\n"));
		assert_non_null(strstr(v, "From: "));
		free(v);
		mbox_cache_set(box, 1, IMAP_CACHE_HEADERS, fake,
		               sizeof(fake) - 1);
		mbox_close(&box);
		mbox_user_close(&u);
	}
	o = run(s, "c1 FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]\r\n"
	           "c2 SEARCH SUBJECT \"from the cache\"\r\n"
	           "c3 FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT X-OTHER)]\r\n");
	HAS(o, "Subject: from the cache\r\n\r\n)\r\nc1 OK");
	HAS(o, "* SEARCH 1\r\nc2 OK");
	HAS(o, "Subject: Hello world\r\n\r\n)\r\nc3 OK");
	free(o);

	/* A non-PEEK body fetch sets \Seen and says so. */
	o = run(s, "f5 FETCH 1 BODY[TEXT]\r\nf6 FETCH 1 BODY[]<0.4>\r\n"
	           "f7 FETCH 1:2 (FLAGS)\r\n");
	HAS(o, "* 1 FETCH (BODY[TEXT] {30}\r\nHello Bob, this is the "
	       "body.\r\n FLAGS (\\Seen))\r\nf5 OK");
	HAS(o, "* 1 FETCH (BODY[]<0> {4}\r\nFrom)\r\nf6 OK");
	HAS(o, "* 1 FETCH (FLAGS (\\Seen))\r\n* 2 FETCH (FLAGS ())\r\nf7 OK");
	free(o);

	/* BINARY: a literal8 when the content holds NUL. */
	script = "f8 FETCH 2 (BINARY.PEEK[2] BINARY.SIZE[2] "
	         "BINARY.PEEK[1])\r\nf9 FETCH 2 BODYSTRUCTURE\r\n"
	         "f10 FETCH 2 BODY\r\nf11 FETCH 2 BODY.PEEK[3]\r\n"
	         "f12 FETCH 2 (BODY.PEEK[1.MIME] RFC822.HEADER)\r\n";
	o = feed_step(s, script, strlen(script), 0, &fr);
	assert_non_null(memmem(o, fr.len,
	                       "BINARY[2] ~{4}\r\n\0\1\2\3 BINARY.SIZE[2] 4 "
	                       "BINARY[1] {27}\r\nSee the attachment, "
	                       "banana.)\r\nf8 OK",
	                       81));
	/* The rest, after the NULs. */
	o[fr.len] = '\0';
	for (size_t i = 0; i < fr.len; i++)
		if (o[i] == '\0')
			o[i] = '.';
	HAS(o, "* 2 FETCH (BODYSTRUCTURE ((\"text\" \"plain\"");
	HAS(o, "\"mixed\" (\"boundary\" \"b1\")");
	HAS(o, "* 2 FETCH (BODY ((\"text\" \"plain\"");
	HAS(o, "* 2 FETCH (BODY[3] {0}\r\n)\r\nf11 OK");
	HAS(o, "BODY[1.MIME] {28}\r\nContent-Type: text/plain\r\n\r\n "
	       "RFC822.HEADER {");
	free(o);

	/* The cache answers the second time (same bytes). */
	o = run(s, "f13 FETCH 1:2 (ENVELOPE BODYSTRUCTURE)\r\n"
	           "f14 FETCH 1:2 (ENVELOPE BODYSTRUCTURE)\r\n");
	{
		const char *a = strstr(o, "* 1 FETCH");
		const char *b = strstr(o, "f13 OK");
		const char *c = strstr(b, "* 1 FETCH");
		const char *d = strstr(o, "f14 OK");

		assert_non_null(a);
		assert_non_null(c);
		assert_int_equal(b - a, d - c);
		assert_memory_equal(a, c, (size_t)(b - a));
	}
	free(o);

	/* UID FETCH always has UID; macros; MODSEQ and CHANGEDSINCE. */
	o = run(s, "f15 UID FETCH 2 (FLAGS)\r\nf16 FETCH 2 FAST\r\n"
	           "f17 FETCH 1:2 (UID) (CHANGEDSINCE 1)\r\n"
	           "f18 FETCH 1 (FLAGS) (VANISHED)\r\nf19 FETCH 3 FLAGS\r\n"
	           "f20 FETCH 1 (BOGUS)\r\nf21 UID FETCH 1:* RFC822\r\n");
	HAS(o, "* 2 FETCH (UID 2 FLAGS ())\r\nf15 OK");
	HAS(o, "* 2 FETCH (FLAGS () INTERNALDATE \"");
	HAS(o, "RFC822.SIZE 346)\r\nf16 OK");
	HAS(o, "* 1 FETCH (UID 1 MODSEQ (");
	HAS(o, "f18 BAD");
	HAS(o, "f19 BAD Invalid message sequence number");
	HAS(o, "f20 BAD");
	HAS(o, "* 2 FETCH (UID 2 RFC822 {346}\r\nFrom: Carol");
	HAS(o, "FLAGS (\\Seen) MODSEQ (");
	free(o);
	imap_session_free(&s);
}

/* A FETCH bigger than a slice comes out in several calls, each about
 * IMAP_OUTPUT_SLICE plus at most one message. */
static void
test_fetch_slices(void **state)
{
	struct env *e = *state;
	struct mbox_user *u = NULL;
	struct imap_session *s;
	struct feed_result fr;
	char msg[1200], *err = NULL, *o;
	uint32_t v, uid;
	const char *script = "g1 SELECT INBOX\r\ng2 FETCH 1:* BODY.PEEK[]\r\n"
	                     "g3 NOOP\r\n";

	assert_int_equal(mbox_user_open(e->dir, 0, &u, &err), 0);
	for (int i = 0; i < 400; i++) {
		int n = snprintf(msg, sizeof(msg), "Subject: m%d\r\n\r\n", i);

		memset(msg + n, 'x', 1000);
		memcpy(msg + n + 1000, "\r\n", 3);
		assert_int_equal(mbox_append(u, "INBOX", msg, strlen(msg), 0,
		                             NULL, 0, &v, &uid, &err),
		                 0);
	}
	mbox_user_close(&u);
	s = sess_new(e);
	o = feed_step(s, script, strlen(script), 0, &fr);
	assert_true(fr.slices >= 1);
	assert_true(fr.max_chunk <= IMAP_OUTPUT_SLICE + 2048);
	assert_int_equal(count_of(o, " FETCH (BODY[] {"), 400);
	HAS(o, "* 400 FETCH (BODY[] {1019}\r\nSubject: m399\r\n");
	HAS(o, "g2 OK FETCH completed\r\ng3 OK NOOP completed\r\n");
	free(o);
	imap_session_free(&s);
}

/* ---- STORE ---- */

static void
test_store(void **state)
{
	struct env *e = *state;
	struct imap_session *s;
	char *o;

	deliver(e, "INBOX", MSG1, 0);
	deliver(e, "INBOX", MSG2, 0);
	deliver(e, "INBOX", MSG3, 0);
	s = sess_new(e);
	o = run(s,
	        "w1 SELECT INBOX\r\nw2 STORE 1:2 +FLAGS (\\Seen \\Flagged)\r\n"
	        "w3 STORE 2 -FLAGS \\Flagged\r\n"
	        "w4 STORE 3 +FLAGS.SILENT (\\Deleted)\r\n"
	        "w5 UID STORE 1 FLAGS (\\Answered)\r\n"
	        "w6 STORE 1 +FLAGS ($Work)\r\nw7 STORE 1 BOGUS (\\Seen)\r\n"
	        "w8 STORE 1 +FLAGS \\Seen \\Draft\r\n");
	HAS(o, "* 1 FETCH (FLAGS (\\Flagged \\Seen))\r\n"
	       "* 2 FETCH (FLAGS (\\Flagged \\Seen))\r\nw2 OK STORE completed");
	HAS(o, "* 2 FETCH (FLAGS (\\Seen))\r\nw3 OK");
	HAS(o, "w3 OK STORE completed\r\nw4 OK STORE completed\r\n");
	HAS(o, "* 1 FETCH (FLAGS (\\Answered) UID 1)\r\nw5 OK UID STORE");
	/* A new keyword: FLAGS and PERMANENTFLAGS again. */
	HAS(o, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft "
	       "$Work)\r\n* OK [PERMANENTFLAGS (\\Answered \\Flagged "
	       "\\Deleted \\Seen \\Draft $Work \\*)] Flags permitted\r\n"
	       "* 1 FETCH (FLAGS (\\Answered $Work))\r\nw6 OK");
	HAS(o, "w7 BAD");
	HAS(o, "* 1 FETCH (FLAGS (\\Answered \\Seen \\Draft $Work))\r\nw8 OK");
	free(o);

	/* CONDSTORE: UNCHANGEDSINCE. */
	o = run(s, "c1 FETCH 1:3 (MODSEQ)\r\n");
	{
		unsigned long long m1;
		const char *p = strstr(o, "* 1 FETCH (MODSEQ (");
		char script[200];

		assert_non_null(p);
		m1 = strtoull(p + 19, NULL, 10);
		free(o);
		snprintf(script, sizeof(script),
		         "c2 STORE 1:3 (UNCHANGEDSINCE %llu) +FLAGS.SILENT "
		         "(\\Flagged)\r\n",
		         m1);
		o = run(s, script);
	}
	/* Message 1 was changed at m1 (passes), 2 and 3 too (earlier);
	 * with CONDSTORE, .SILENT still reports UID and MODSEQ. */
	HAS(o, "* 1 FETCH (UID 1 MODSEQ (");
	HAS(o, "c2 OK STORE completed");
	free(o);
	o = run(s, "c3 STORE 1,3 (UNCHANGEDSINCE 1) +FLAGS (\\Draft)\r\n"
	           "c4 UID STORE 1,3 (UNCHANGEDSINCE 1) +FLAGS (\\Draft)\r\n");
	HAS(o, "c3 OK [MODIFIED 1,3] Conditional STORE failed");
	HAS(o, "c4 OK [MODIFIED 1,3] Conditional STORE failed");
	free(o);
	imap_session_free(&s);
}

/* ---- COPY / MOVE / EXPUNGE / CLOSE / UNSELECT ---- */

static void
test_copy_move_expunge(void **state)
{
	struct env *e = *state;
	struct imap_session *s;
	char *o;

	for (int i = 0; i < 5; i++)
		deliver(e, "INBOX", i % 2 ? MSG1 : MSG3, 0);
	s = sess_new(e);
	o = run(s, "k1 SELECT INBOX\r\nk2 COPY 1:2 Archive\r\n"
	           "k3 UID COPY 4:* Archive\r\nk4 COPY 1 Nowhere\r\n"
	           "k5 MOVE 2 Trash\r\n");
	HAS(o, "k2 OK [COPYUID ");
	HAS(o, " 1:2 1:2] COPY completed");
	HAS(o, " 4:5 3:4] UID COPY completed");
	HAS(o, "k4 NO [TRYCREATE]");
	HAS(o, "* OK [COPYUID ");
	HAS(o, " 2 1] Moved\r\n* 2 EXPUNGE\r\nk5 OK MOVE completed");
	free(o);

	/* Now UIDs 1 3 4 5 as 1..4. */
	o = run(s,
	        "k6 UID MOVE 4 Trash\r\nk7 STORE 1 +FLAGS.SILENT (\\Deleted)"
	        "\r\nk8 STORE 3 +FLAGS.SILENT (\\Deleted)\r\n"
	        "k9 UID EXPUNGE 1:4\r\nk10 EXPUNGE\r\nk11 FETCH 1:* UID\r\n");
	HAS(o, "* 3 EXPUNGE\r\nk6 OK UID MOVE completed");
	/* UIDs 1 3 5: 3 and 5 are not in 1:4 but 1 is; UID 5 stays. */
	HAS(o, "* 1 EXPUNGE\r\nk9 OK UID EXPUNGE completed");
	HAS(o, "k10 OK EXPUNGE completed");
	HAS(o, "* 1 FETCH (UID 3)\r\nk11 OK");
	free(o);
	o = run(s, "k12 STORE 1 +FLAGS.SILENT (\\Deleted)\r\n"
	           "k13 UNSELECT\r\nk14 SELECT INBOX\r\nk15 CLOSE\r\n"
	           "k16 SELECT INBOX\r\nk17 CLOSE\r\nk18 FETCH 1 FLAGS\r\n"
	           "k19 STATUS Archive (MESSAGES)\r\nk20 STATUS Trash "
	           "(MESSAGES)\r\n");
	HAS(o, "k13 OK UNSELECT completed");
	HAS(o, "* 1 EXISTS"); /* k14 */
	HAS(o, "k15 OK CLOSE completed");
	HASNOT(o, "EXPUNGE"); /* CLOSE is silent */
	HAS(o, "* 1 EXISTS"); /* k16: the \Deleted one went */
	HAS(o, "k18 BAD No mailbox selected");
	HAS(o, "* STATUS \"Archive\" (MESSAGES 4)");
	HAS(o, "* STATUS \"Trash\" (MESSAGES 2)");
	free(o);
	imap_session_free(&s);
}

/* ---- SEARCH ---- */

static void
test_search(void **state)
{
	struct env *e = *state;
	struct imap_session *s;
	char *o;

	deliver(e, "INBOX", MSG1, MBOX_F_SEEN);
	deliver(e, "INBOX", MSG2, MBOX_F_FLAGGED);
	deliver(e, "INBOX", MSG3, 0);
	s = sess_new(e);
	o = run(s, "q1 SELECT INBOX\r\nq2 SEARCH UNSEEN\r\nq3 SEARCH SEEN\r\n"
	           "q4 SEARCH OR FLAGGED SEEN\r\nq5 SEARCH NOT FLAGGED\r\n"
	           "q6 UID SEARCH 2:*\r\nq7 SEARCH LARGER 200\r\n"
	           "q8 SEARCH SMALLER 100\r\nq9 SEARCH SUBJECT hello\r\n"
	           "q10 SEARCH FROM carol\r\nq11 SEARCH BODY banana\r\n"
	           "q12 SEARCH TEXT \"bob\"\r\nq13 SEARCH HEADER Message-ID "
	           "\"\"\r\nq14 SEARCH SENTBEFORE 8-Feb-1994\r\n"
	           "q15 SEARCH SENTON 8-Feb-1994\r\nq16 SEARCH SINCE 1-Jan-2000"
	           "\r\nq17 SEARCH BEFORE 1-Jan-2000\r\nq18 SEARCH ALL\r\n"
	           "q19 SEARCH 2,3 UNSEEN\r\nq20 SEARCH (OR 1 3) (NOT 3)\r\n"
	           "q21 SEARCH CHARSET KOI8-R ALL\r\nq22 SEARCH BOGUS\r\n"
	           "q23 SEARCH NEW\r\nq24 SEARCH OLD\r\n");
	HAS(o, "* SEARCH 2 3\r\nq2 OK");
	HAS(o, "* SEARCH 1\r\nq3 OK");
	HAS(o, "* SEARCH 1 2\r\nq4 OK");
	HAS(o, "* SEARCH 1 3\r\nq5 OK");
	HAS(o, "* SEARCH 2 3\r\nq6 OK");
	HAS(o, "* SEARCH 2\r\nq7 OK");
	HAS(o, "* SEARCH 3\r\nq8 OK");
	HAS(o, "* SEARCH 1\r\nq9 OK");
	HAS(o, "* SEARCH 2\r\nq10 OK");
	HAS(o, "* SEARCH 2\r\nq11 OK");
	HAS(o, "* SEARCH 1 2\r\nq12 OK");
	HAS(o, "* SEARCH 1\r\nq13 OK");
	HAS(o, "* SEARCH 1\r\nq14 OK");
	HAS(o, "* SEARCH 2\r\nq15 OK");
	HAS(o, "* SEARCH 1 2 3\r\nq16 OK");
	HAS(o, "* SEARCH\r\nq17 OK");
	HAS(o, "* SEARCH 1 2 3\r\nq18 OK");
	HAS(o, "* SEARCH 2 3\r\nq19 OK");
	HAS(o, "* SEARCH 1\r\nq20 OK");
	HAS(o, "q21 NO [BADCHARSET (UTF-8 US-ASCII)]");
	HAS(o, "q22 BAD");
	HAS(o, "* SEARCH\r\nq23 OK");
	HAS(o, "* SEARCH 1 2 3\r\nq24 OK");
	free(o);

	/* ESEARCH, SEARCHRES, MODSEQ. */
	o = run(s, "x1 SEARCH RETURN (MIN MAX COUNT) ALL\r\n"
	           "x2 UID SEARCH RETURN () ALL\r\n"
	           "x3 SEARCH RETURN (COUNT) DELETED\r\n"
	           "x4 SEARCH RETURN (SAVE) UNSEEN\r\nx5 FETCH $ (UID)\r\n"
	           "x6 SEARCH $\r\nx7 UID SEARCH RETURN (SAVE MIN) UNSEEN\r\n"
	           "x8 UID FETCH $ (FLAGS)\r\nx9 SEARCH MODSEQ 1\r\n"
	           "x10 SEARCH RETURN (ALL) MODSEQ 1\r\n");
	HAS(o, "* ESEARCH (TAG \"x1\") MIN 1 MAX 3 COUNT 3\r\nx1 OK");
	HAS(o, "* ESEARCH (TAG \"x2\") UID ALL 1:3\r\nx2 OK");
	HAS(o, "* ESEARCH (TAG \"x3\") COUNT 0\r\nx3 OK");
	HAS(o, "x3 OK SEARCH completed\r\nx4 OK SEARCH completed\r\n");
	HAS(o, "* 2 FETCH (UID 2)\r\n* 3 FETCH (UID 3)\r\nx5 OK");
	HAS(o, "* SEARCH 2 3\r\nx6 OK");
	HAS(o, "* 2 FETCH (UID 2 FLAGS (\\Flagged))\r\nx8 OK");
	HAS(o, "* SEARCH 1 2 3 (MODSEQ ");
	HAS(o, "* ESEARCH (TAG \"x10\") ALL 1:3 MODSEQ ");
	free(o);
	imap_session_free(&s);
}

/* SEARCH on metadata reads no message: with the files gone behind the
 * store's back, flag keys still answer. */
static void
test_search_metadata_only(void **state)
{
	struct env *e = *state;
	struct imap_session *s;
	char path[300], *o;
	FILE *p;

	deliver(e, "INBOX", MSG1, MBOX_F_SEEN);
	deliver(e, "INBOX", MSG2, 0);
	s = sess_new(e);
	o = run(s, "y1 SELECT INBOX\r\n");
	free(o);
	snprintf(path, sizeof(path), "rm -f %s/cur/* %s/new/*", e->dir, e->dir);
	p = popen(path, "r");
	assert_non_null(p);
	pclose(p);
	o = run(s, "y2 SEARCH UNSEEN LARGER 10\r\ny3 SEARCH BODY banana\r\n");
	HAS(o, "* SEARCH 2\r\ny2 OK");
	HAS(o, "* SEARCH\r\ny3 OK");
	free(o);
	imap_session_free(&s);
}

/* ---- two sessions on one mailbox ---- */

static void
test_two_sessions(void **state)
{
	struct env *e = *state;
	struct imap_session *a, *b;
	char *o;

	for (int i = 0; i < 4; i++)
		deliver(e, "INBOX", MSG3, 0);
	a = sess_new(e);
	b = sess_new(e);
	free(run(a, "a1 SELECT INBOX\r\n"));
	free(run(b, "b1 SELECT INBOX\r\n"));

	/* Flags set by B reach A at A's next command. */
	free(run(b, "b2 STORE 2 +FLAGS (\\Flagged)\r\n"));
	o = run(a, "a2 NOOP\r\n");
	HAS(o, "* 2 FETCH (FLAGS (\\Flagged))\r\na2 OK");
	free(o);

	/* An expunge by B: not during A's FETCH, STORE or SEARCH. */
	free(run(b, "b3 STORE 3 +FLAGS.SILENT (\\Deleted)\r\nb4 EXPUNGE\r\n"));
	o = run(a, "a3 FETCH 1:4 (UID)\r\na4 STORE 4 +FLAGS (\\Seen)\r\n"
	           "a5 SEARCH ALL\r\na6 FETCH 3 (UID FLAGS)\r\n");
	HASNOT(o, "EXPUNGE");
	HAS(o, "* 3 FETCH (UID 3)\r\n* 4 FETCH (UID 4)\r\na3 OK");
	HAS(o, "* 4 FETCH (FLAGS (\\Seen))\r\na4 OK");
	/* The expunged message still has its number (and the flags A
	 * knew: the \\Deleted came with the expunge). */
	HAS(o, "* 3 FETCH (UID 3 FLAGS ())\r\na6 OK");
	free(o);
	o = run(a, "a7 FETCH 3 BODY[]\r\n");
	HASNOT(o, "* 3 EXPUNGE");
	HAS(o, "a7 NO [EXPUNGEISSUED]");
	free(o);
	o = run(a, "a8 NOOP\r\na9 FETCH 3 (UID)\r\n");
	HAS(o, "* 3 EXPUNGE\r\na8 OK");
	HAS(o, "* 3 FETCH (UID 4)\r\na9 OK");
	free(o);

	/* UID commands may report expunges: after the data. */
	free(run(b, "b5 STORE 1 +FLAGS.SILENT (\\Deleted)\r\nb6 EXPUNGE\r\n"));
	o = run(a, "a10 UID FETCH 1:* (UID)\r\n");
	HAS(o, "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2)\r\n* 3 FETCH (UID 4)"
	       "\r\n* 1 EXPUNGE\r\na10 OK");
	free(o);

	/* New mail: EXISTS and (rev1) RECENT. */
	deliver(e, "INBOX", MSG1, 0);
	o = run(a, "a11 NOOP\r\na12 SEARCH RECENT\r\na13 FETCH 3 FLAGS\r\n");
	HAS(o, "* 3 EXISTS\r\n* 1 RECENT\r\na11 OK");
	HAS(o, "* SEARCH 3\r\na12 OK");
	HAS(o, "* 3 FETCH (FLAGS (\\Recent))\r\na13 OK");
	free(o);
	o = run(b, "b7 NOOP\r\n");
	HAS(o, "* 3 EXISTS\r\n");
	free(o);
	imap_session_free(&a);
	imap_session_free(&b);
}

/* ---- IDLE ---- */

static void
test_idle(void **state)
{
	struct env *e = *state;
	struct imap_session *s;
	struct feed_result fr;
	struct buf out;
	char *o;
	const char *script = "i1 SELECT INBOX\r\ni2 IDLE\r\n";

	deliver(e, "INBOX", MSG1, 0);
	s = sess_new(e);
	o = feed_step(s, script, strlen(script), 0, &fr);
	assert_int_equal(fr.last, IMAP_RUN_IDLE);
	HAS(o, "+ idling\r\n");
	free(o);

	buf_init(&out, 0);
	imap_session_idle_poll(s, &out);
	assert_int_equal(out.len, 0); /* nothing changed */
	deliver(e, "INBOX", MSG2, 0);
	imap_session_idle_poll(s, &out);
	assert_non_null(buf_cstr(&out));
	HAS((char *)out.data, "* 2 EXISTS\r\n* 1 RECENT\r\n");
	buf_reset(&out);
	imap_session_idle_poll(s, &out);
	assert_int_equal(out.len, 0);
	buf_free(&out);

	o = feed_step(s, "DONE\r\ni3 NOOP\r\n", 15, 0, &fr);
	assert_int_equal(fr.last, IMAP_RUN_INPUT);
	HAS(o, "i2 OK Idle completed\r\ni3 OK");
	free(o);

	o = run(s, "i4 IDLE\r\nNOPE\r\n");
	HAS(o, "i4 BAD Expected DONE");
	free(o);
	imap_session_free(&s);
}

/* A view asleep in IDLE (msgs[] given back) wakes to what a sync would
 * have told: expunges with the old numbers, flags changed, new mail; and
 * DONE after changes the polls did not see yet reports them at the next
 * command. */
static void
test_idle_asleep(void **state)
{
	struct env *e = *state;
	struct imap_session *s, *b;
	struct buf out;
	char *o;

	deliver(e, "INBOX", MSG1, 0);
	deliver(e, "INBOX", MSG2, 0);
	deliver(e, "INBOX", MSG3, 0);
	deliver(e, "INBOX", MSG1, 0);
	s = sess_new(e);
	b = sess_new(e);
	free(run(b, "b1 SELECT INBOX\r\n"));
	/* Not contiguous: UIDs 1, 2, 4 (ranges 1-2 and 4); B numbers its
	 * messages as S does. */
	free(run(b, "b2 STORE 3 +FLAGS.SILENT (\\Deleted)\r\nb3 EXPUNGE\r\n"));
	free(run(s, "s1 SELECT INBOX\r\ns2 IDLE\r\n"));
	imap_session_trim(s);
	assert_null(s->view.msgs);
	assert_int_equal(s->view.nasleep, 2);
	assert_int_equal(s->view.n, 3);

	buf_init(&out, 0);
	imap_session_idle_poll(s, &out);
	assert_int_equal(out.len, 0); /* nothing changed: still asleep */
	assert_null(s->view.msgs);

	free(run(b, "b4 STORE 1 +FLAGS.SILENT (\\Deleted)\r\nb5 EXPUNGE\r\n"
	            "b6 STORE 2 +FLAGS.SILENT (\\Flagged)\r\n"));
	deliver(e, "INBOX", MSG2, 0);
	imap_session_idle_poll(s, &out);
	assert_non_null(buf_cstr(&out));
	/* New mail counted first (the expunged one still has its number),
	 * then the expunge, then the flags under the new numbering. */
	HAS((char *)out.data, "* 4 EXISTS\r\n* 1 RECENT\r\n"
	                      "* 1 EXPUNGE\r\n"
	                      "* 2 FETCH (FLAGS (\\Flagged))\r\n");
	assert_null(s->view.msgs); /* told everything: asleep again */
	buf_reset(&out);
	imap_session_idle_poll(s, &out);
	assert_int_equal(out.len, 0);
	buf_free(&out);

	/* Changes the polls have not seen, then DONE. */
	free(run(b, "b7 NOOP\r\nb8 STORE 2 +FLAGS.SILENT (\\Seen)\r\n"));
	o = run(s, "DONE\r\ns3 FETCH 1:* (UID FLAGS)\r\n");
	HAS(o, "s2 OK Idle completed\r\n");
	HAS(o, "* 1 FETCH (UID 2 FLAGS ())\r\n"
	       "* 2 FETCH (UID 4 FLAGS (\\Flagged \\Seen))\r\n"
	       "* 3 FETCH (UID 5 FLAGS (\\Recent))\r\ns3 OK");
	free(o);
	assert_non_null(s->view.msgs);
	imap_session_free(&s);
	imap_session_free(&b);
}

/* An empty mailbox sleeps too, and wakes to its first message. */
static void
test_idle_asleep_empty(void **state)
{
	struct env *e = *state;
	struct imap_session *s;
	struct buf out;

	s = sess_new(e);
	free(run(s, "s1 SELECT INBOX\r\ns2 IDLE\r\n"));
	imap_session_trim(s);
	assert_non_null(s->view.asleep);
	assert_int_equal(s->view.n, 0);
	deliver(e, "INBOX", MSG1, 0);
	buf_init(&out, 0);
	imap_session_idle_poll(s, &out);
	assert_non_null(buf_cstr(&out));
	HAS((char *)out.data, "* 1 EXISTS\r\n");
	buf_free(&out);
	free(run(s, "DONE\r\n"));
	assert_non_null(s->view.msgs);
	assert_int_equal(s->view.n, 1);
	imap_session_free(&s);
}

/* A store failure (here: a message file that became a directory) is
 * NO [UNAVAILABLE] to the client and kept for the role to log; a client
 * mistake (no such mailbox) is not. */
static void
test_store_error_kept(void **state)
{
	struct env *e = *state;
	struct imap_session *s;
	char path[512], *o, *err;
	struct dirent *d;
	DIR *dir;

	deliver(e, "INBOX", MSG1, 0);
	s = sess_new(e);
	free(run(s, "s1 SELECT INBOX\r\n"));
	snprintf(path, sizeof(path), "%s/cur", e->dir);
	dir = opendir(path);
	assert_non_null(dir);
	while ((d = readdir(dir)) != NULL && d->d_name[0] == '.')
		;
	assert_non_null(d);
	snprintf(path, sizeof(path), "%s/cur/%s", e->dir, d->d_name);
	closedir(dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0700), 0);

	o = run(s, "s2 FETCH 1 BODY.PEEK[]\r\n");
	HAS(o, "s2 NO [UNAVAILABLE]");
	free(o);
	err = imap_session_take_error(s);
	assert_non_null(err);
	assert_non_null(strstr(err, "read("));
	free(err);
	assert_null(imap_session_take_error(s));

	o = run(s, "s3 STATUS Nowhere (MESSAGES)\r\n");
	HAS(o, "s3 NO [NONEXISTENT]");
	free(o);
	assert_null(imap_session_take_error(s));
	imap_session_free(&s);
}

/* index.db and its companions gone: the next store open
 * indexes the Maildir afresh. */
static void
remove_index(const char *dir)
{
	static const char *const names[] = {"index.db", "index.db-wal",
	                                    "index.db-shm"};
	char path[300];

	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		(void)unlink(path);
	}
}

/* Files another tool left are indexed without being read or stat(2)ed;
 * RFC822.SIZE, LARGER/SMALLER and STATUS SIZE still see the exact CRLF
 * size, INTERNALDATE and BEFORE/ON/SINCE the file's mtime (not the time
 * in its name). */
static void
test_sizes_read_later(void **state)
{
	struct env *e = *state;
	/* 22 bytes with LF, 26 with CRLF. */
	static const char lf[] = "Subject: a\n\nbody\nmore\n";
	struct imap_session *s, *b;
	char path[300], *o;
	int fd;

	s = sess_new(e);
	free(run(s, "z0 NOOP\r\n")); /* the store exists now */
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/cur/1700000000.M%dP1.tool:2,S",
		         e->dir, i);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, lf, strlen(lf)),
		                 (ssize_t)strlen(lf));
		/* 15-Apr-2022 05:20:00 +0000; the name says Nov 2023 */
		assert_int_equal(
		    futimens(fd, (struct timespec[2]){{.tv_sec = 1650000000},
		                                      {.tv_sec = 1650000000}}),
		    0);
		close(fd);
	}
	o = run(s, "z1 SELECT INBOX\r\n");
	HAS(o, "* 2 EXISTS\r\n");
	free(o);
	assert_int_equal(s->view.msgs[0].size, 0);
	assert_true((s->view.msgs[0].flags & IMAP_MSG_SIZE_UNKNOWN) != 0);

	o = run(s, "z2 FETCH 2 (RFC822.SIZE)\r\n");
	HAS(o, "* 2 FETCH (RFC822.SIZE 26)\r\nz2 OK");
	free(o);
	assert_true((s->view.msgs[0].flags & IMAP_MSG_SIZE_UNKNOWN) != 0);
	assert_true((s->view.msgs[1].flags & IMAP_MSG_SIZE_UNKNOWN) == 0);

	/* STATUS SIZE reads what is left (RFC 8438: never less than the sum
	 * of the RFC822.SIZEs). */
	b = sess_new(e);
	o = run(b, "y1 STATUS INBOX (MESSAGES SIZE)\r\n");
	HAS(o, "* STATUS \"INBOX\" (MESSAGES 2 SIZE 52)\r\n");
	free(o);
	o = run(b, "y2 EXAMINE INBOX\r\ny3 FETCH 1:* FAST\r\n");
	HAS(o, "* 1 FETCH (FLAGS (\\Seen) INTERNALDATE");
	HAS(o, "RFC822.SIZE 26)\r\n");
	HASNOT(o, "RFC822.SIZE 22");
	free(o);

	o = run(s, "z3 SEARCH LARGER 24\r\n");
	HAS(o, "* SEARCH 1 2\r\nz3 OK");
	free(o);
	assert_true((s->view.msgs[0].flags & IMAP_MSG_SIZE_UNKNOWN) == 0);
	imap_session_free(&b);
	imap_session_free(&s);

	/* A fresh index: dates first. */
	remove_index(e->dir);
	s = sess_new(e);
	o = run(s, "x1 SELECT INBOX\r\nx2 SEARCH BEFORE 1-Jan-2023\r\n");
	HAS(o, "* SEARCH 1 2\r\nx2 OK");
	free(o);
	o = run(s, "x3 SEARCH SINCE 1-Jan-2023\r\nx4 FETCH 1 INTERNALDATE\r\n");
	HAS(o, "* SEARCH\r\nx3 OK");
	HAS(o, "* 1 FETCH (INTERNALDATE \"15-Apr-2022 05:20:00 +0000\")");
	free(o);
	imap_session_free(&s);
}

/* ---- the same script one byte at a time ---- */

/* The numbers that differ between two stores (UIDVALIDITY is a time). */
static void
mask_uidvalidity(char *o)
{
	static const char *const keys[] = {"UIDVALIDITY ", "APPENDUID ",
	                                   "COPYUID "};

	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
		for (char *p = strstr(o, keys[k]); p != NULL;
		     p = strstr(p + 1, keys[k]))
			for (char *d = p + strlen(keys[k]);
			     *d >= '0' && *d <= '9'; d++)
				*d = 'N';
}

static void
test_trickle(void **state)
{
	struct env *e = *state;
	const char *script =
	    "t1 CAPABILITY\r\nt2 CREATE Box\r\n"
	    "t3 APPEND Box (\\Seen) \"01-Feb-2020 10:00:00 +0100\" {31}\r\n"
	    "Subject: trickle\r\n\r\nbody text\r\n"
	    "t4 APPEND Box {16+}\r\nSubject: two\r\n\r\n\r\n"
	    "t5 LIST \"\" *\r\nt6 SELECT Box\r\n"
	    "t7 FETCH 1:* (FLAGS BODY[HEADER] INTERNALDATE)\r\n"
	    "t8 STORE 2 +FLAGS (\\Answered)\r\nt9 SEARCH ANSWERED\r\n"
	    "t10 COPY 1 Box\r\nt11 IDLE\r\nDONE\r\nt12 BOGUS\r\n"
	    "t13 EXPUNGE\r\nt14 LOGOUT\r\n";
	struct env e2;
	struct imap_session *s1, *s2;
	char *o1, *o2;

	snprintf(e2.dir, sizeof(e2.dir), "/tmp/tern-imap2-XXXXXX");
	assert_non_null(mkdtemp(e2.dir));
	s1 = sess_new(e);
	s2 = sess_new(&e2);
	o1 = feed_step(s1, script, strlen(script), 0, NULL);
	o2 = feed_step(s2, script, strlen(script), 1, NULL);
	mask_uidvalidity(o1);
	mask_uidvalidity(o2);
	HAS(o1, "t14 OK Logout completed\r\n");
	HAS(o1, "+ OK\r\n");
	HAS(o1, "t12 BAD");
	assert_string_equal(o1, o2);
	free(o1);
	free(o2);
	imap_session_free(&s1);
	imap_session_free(&s2);
	teardown_dir(e2.dir);
}

/* ---- a large mailbox ---- */

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Messages dropped into new/ as another Maildir tool would; the store
 * indexes them at SELECT. TERN_TEST_LARGE=n sets how many (100000 for
 * the full run; the default keeps the unit run quick). */
static void
test_large_mailbox(void **state)
{
	struct env *e = *state;
	const char *env = getenv("TERN_TEST_LARGE");
	long n = env != NULL ? strtol(env, NULL, 10) : 5000;
	struct imap_session *s, *other;
	struct feed_result fr;
	char path[300], *o;
	double t0, t_select, t_fetch, t_search;

	s = sess_new(e);
	for (long i = 0; i < n; i++) {
		int fd;

		snprintf(path, sizeof(path), "%s/new/1700000000.M%ldP1.test",
		         e->dir, i);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, "Subject: x\n\nbody\n", 17), 17);
		close(fd);
	}
	t0 = now_s();
	o = run(s, "L1 SELECT INBOX\r\n");
	t_select = now_s() - t0;
	snprintf(path, sizeof(path), "* %ld EXISTS\r\n", n);
	HAS(o, path);
	free(o);

	t0 = now_s();
	o = feed_step(s, "L2 UID FETCH 1:* (FLAGS)\r\n", 26, 0, &fr);
	t_fetch = now_s() - t0;
	assert_int_equal(count_of(o, " FETCH (UID "), (size_t)n);
	HAS(o, "L2 OK");
	assert_true(fr.max_chunk <= IMAP_OUTPUT_SLICE + 1024);
	free(o);

	t0 = now_s();
	o = run(s, "L3 SEARCH UNSEEN SMALLER 100\r\nL4 SEARCH RETURN (COUNT) "
	           "SEEN\r\n");
	t_search = now_s() - t0;
	HAS(o, "* ESEARCH (TAG \"L4\") COUNT 0\r\n");
	free(o);
	print_message("large: %ld messages, SELECT (indexing new/) %.3fs, "
	              "UID FETCH 1:* FLAGS %.3fs, SEARCH %.3fs\n",
	              n, t_select, t_fetch, t_search);
	/* Linear in n: generous bounds for a slow (sanitized) build. */
	assert_true(t_fetch < 0.0005 * (double)n + 1.0);
	assert_true(t_search < 0.0005 * (double)n + 1.0);

	/* Another session changes every message, then removes them all:
	 * this one hears n FETCH, then n EXPUNGE, in slices. */
	other = sess_new(e);
	free(run(other, "O1 SELECT INBOX\r\nO2 STORE 1:* +FLAGS.SILENT "
	                "(\\Deleted)\r\n"));
	o = feed_step(s, "L5 NOOP\r\n", 9, 0, &fr);
	assert_int_equal(count_of(o, " FETCH (FLAGS (\\Deleted))\r\n"),
	                 (size_t)n);
	free(o);
	free(run(other, "O3 EXPUNGE\r\n"));
	o = feed_step(s, "L6 NOOP\r\n", 9, 0, &fr);
	assert_int_equal(count_of(o, "* 1 EXPUNGE\r\n"), (size_t)n);
	assert_true(fr.max_chunk <= IMAP_OUTPUT_SLICE + 1024);
	HAS(o, "L6 OK");
	free(o);
	imap_session_free(&other);
	imap_session_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_login_and_small_commands,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_logout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_select_rev1, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_select_rev2, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_mailbox, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_mailbox_commands, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_mailbox_names_utf7, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_append, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fetch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fetch_slices, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_store, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_copy_move_expunge, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_search, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_search_metadata_only, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_two_sessions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idle_asleep, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idle_asleep_empty, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_sizes_read_later, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_store_error_kept, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_trickle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_large_mailbox, setup,
	                                    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
