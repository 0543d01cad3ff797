/* Tests for the mailbox store (src/store/mailbox*.c): default folders,
 * names and their on-disk escaping, CREATE/RENAME/DELETE, APPEND and
 * reading back, UIDs and MODSEQs, CONDSTORE changes, COPY/MOVE, delivery,
 * changes made by other Maildir tools, reindex, concurrent handles and
 * processes, limits; TERN_MAILBOX_BIG=N times opening an N-message box. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/xmalloc.h"
#include "store/mailbox.h"
#include "store/mailbox_int.h"

struct fixture {
	char *root;
	char *dir; /* ROOT/example.org/alice: made by mbox_user_open */
};

static int
rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

static int
setup(void **state)
{
	char tmpl[] = "/tmp/tern-mailbox-XXXXXX";
	struct fixture *f;

	if (mkdtemp(tmpl) == NULL)
		return -1;
	f = xcalloc(1, sizeof(*f));
	f->root = xstrdup(tmpl);
	f->dir = xasprintf("%s/example.org/alice", tmpl);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	(void)nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f->root);
	free(f->dir);
	free(f);
	return 0;
}

static struct mbox_user *
open_user(const struct fixture *f, uint64_t quota)
{
	struct mbox_user *u = NULL;
	char *error = NULL;
	int rc = mbox_user_open(f->dir, quota, &u, &error);

	if (rc != MBOX_OK)
		fail_msg("mbox_user_open: %s", error);
	assert_non_null(u);
	return u;
}

static struct mbox *
open_box(struct mbox_user *u, const char *name)
{
	struct mbox *box = NULL;
	char *error = NULL;
	int rc = mbox_open(u, name, false, &box, &error);

	if (rc != MBOX_OK)
		fail_msg("mbox_open(%s): %d %s", name, rc, error);
	return box;
}

static uint32_t
append(struct mbox_user *u, const char *name, const char *msg, uint32_t flags,
       const char *keywords)
{
	uint32_t uidvalidity = 0, uid = 0;
	char *error = NULL;
	int rc = mbox_append(u, name, msg, strlen(msg), flags, keywords, 0,
	                     &uidvalidity, &uid, &error);

	if (rc != MBOX_OK)
		fail_msg("mbox_append(%s): %d %s", name, rc, error);
	assert_true(uid > 0);
	assert_true(uidvalidity > 0);
	return uid;
}

static char *
read_msg(struct mbox *box, uint32_t uid)
{
	struct buf b;
	char *error = NULL, *s;
	int rc;

	buf_init(&b, 0);
	rc = mbox_read(box, uid, &b, &error);
	if (rc != MBOX_OK)
		fail_msg("mbox_read(%u): %d %s", uid, rc, error);
	s = xstrndup(b.len > 0 ? (const char *)b.data : "", b.len);
	buf_free(&b);
	return s;
}

static void
sync_box(struct mbox *box)
{
	char *error = NULL;

	if (mbox_sync(box, &error) != MBOX_OK)
		fail_msg("mbox_sync: %s", error);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Entries of a directory (not "." or ".."), sorted. */
static size_t
list_dir(const char *path, char ***names_r)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		names = xreallocarray(names, n + 1, sizeof(*names));
		names[n++] = xstrdup(e->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_str);
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

static size_t
count_dir(const char *path)
{
	char **names;
	size_t n = list_dir(path, &names);

	free_names(names, n);
	return n;
}

static bool
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static char *
read_file(const char *path, size_t *len_r)
{
	struct stat st;
	char *data;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	data = xmalloc((size_t)st.st_size + 1);
	assert_int_equal(read(fd, data, (size_t)st.st_size), st.st_size);
	data[st.st_size] = '\0';
	close(fd);
	*len_r = (size_t)st.st_size;
	return data;
}

static void
write_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
}

/* The single file of DIR/cur whose name holds needle (NULL: the only
 * file); malloc'd name. */
static char *
cur_file(const char *maildir, const char *needle)
{
	char *cur = xasprintf("%s/cur", maildir), **names, *hit = NULL;
	size_t n = list_dir(cur, &names);

	for (size_t i = 0; i < n; i++) {
		if (needle == NULL || strstr(names[i], needle) != NULL) {
			assert_null(hit);
			hit = xstrdup(names[i]);
		}
	}
	assert_non_null(hit);
	free_names(names, n);
	free(cur);
	return hit;
}

/* mbox_list entry by name, or NULL. */
static const struct mbox_info *
find_info(const struct mbox_info *list, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i].name, name) == 0)
			return &list[i];
	return NULL;
}

static struct mbox_info
status(struct mbox_user *u, const char *name)
{
	struct mbox_info info;
	char *error = NULL;
	int rc = mbox_status(u, name, &info, &error);

	if (rc != MBOX_OK)
		fail_msg("mbox_status(%s): %d %s", name, rc, error);
	return info;
}

/* Make new/ and cur/ look untouched for a while (so that the next sync
 * trusts their mtimes), as they would be some seconds later. */
static void
age_dirs(const char *maildir)
{
	struct timespec t[2];
	char *p;

	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec -= 10;
	t[1] = t[0];
	p = xasprintf("%s/cur", maildir);
	assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);
	free(p);
	p = xasprintf("%s/new", maildir);
	assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);
	free(p);
}

/* ---- tests ---- */

static void
user_defaults(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *name;
		const char *dir;
		enum mbox_special special;
	} want[] = {
	    {"INBOX", NULL, MBOX_SPECIAL_NONE},
	    {"Archive", ".Archive", MBOX_SPECIAL_ARCHIVE},
	    {"Drafts", ".Drafts", MBOX_SPECIAL_DRAFTS},
	    {"Junk", ".Junk", MBOX_SPECIAL_JUNK},
	    {"Sent", ".Sent", MBOX_SPECIAL_SENT},
	    {"Trash", ".Trash", MBOX_SPECIAL_TRASH},
	};
	struct mbox_user *u = open_user(f, 0);
	struct mbox_info *list;
	struct stat st;
	size_t n;
	char *error = NULL, *p;

	assert_int_equal(mbox_list(u, true, &list, &n, &error), MBOX_OK);
	assert_int_equal(n, 6);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(list[i].name, want[i].name);
		assert_int_equal(list[i].special, want[i].special);
		assert_true(list[i].exists);
		assert_true(list[i].subscribed);
		assert_false(list[i].has_children);
		assert_int_equal(list[i].messages, 0);
		assert_int_equal(list[i].uidnext, 1);
		assert_true(list[i].uidvalidity > 0);
		if (i > 0)
			assert_true(list[i].uidvalidity !=
			            list[i - 1].uidvalidity);
		if (want[i].dir != NULL) {
			p = xasprintf("%s/%s/cur", f->dir, want[i].dir);
			assert_true(exists(p));
			free(p);
			p = xasprintf("%s/%s/maildirfolder", f->dir,
			              want[i].dir);
			assert_true(exists(p));
			free(p);
		}
	}
	mbox_info_free_list(&list, n);
	assert_null(list);
	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	p = xasprintf("%s/index.db", f->dir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(p);
	mbox_user_close(&u);
	assert_null(u);

	/* A second open finds them, creates nothing new. */
	u = open_user(f, 0);
	assert_int_equal(mbox_list(u, false, &list, &n, &error), MBOX_OK);
	assert_int_equal(n, 6);
	mbox_info_free_list(&list, n);
	/* A deleted default stays deleted. */
	assert_int_equal(mbox_delete(u, "Junk", &error), MBOX_OK);
	mbox_user_close(&u);
	u = open_user(f, 0);
	assert_int_equal(mbox_list(u, false, &list, &n, &error), MBOX_OK);
	assert_int_equal(n, 6); /* Junk: subscribed, \NonExistent */
	assert_false(find_info(list, n, "Junk")->exists);
	assert_true(find_info(list, n, "Junk")->subscribed);
	mbox_info_free_list(&list, n);
	mbox_user_close(&u);
}

static void
name_validation(void **state)
{
	static const char *const good[] = {
	    "INBOX",
	    "inbox",
	    "Work",
	    "Work/2024",
	    "a.b",
	    ".hidden",
	    "Ünïcödé",
	    "日本語",
	    "a&b",
	    "with space",
	    "x/y/z",
	    "a~b\\c",
	    "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p", /* 16 levels */
	    "😀",
	    "...x",
	    "x..",
	};
	static const char *const bad[] = {
	    "",
	    "/",
	    "/a",
	    "a/",
	    "a//b",
	    ".",
	    "..",
	    "a/./b",
	    "a/../b",
	    "a/..",
	    "a*",
	    "a%",
	    "\x01",
	    "a\x7f",
	    "tab\there",
	    "\xc0\xaf",
	    "\xed\xa0\x80",
	    "\xff",
	    "\xc2\x85",
	    "caf\xc3",
	    "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q", /* 17 levels */
	};
	char longname[300], amps[200];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!mbox_name_valid(good[i]))
			fail_msg("refused: %s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (mbox_name_valid(bad[i]))
			fail_msg("accepted: %s", bad[i]);
	assert_false(mbox_name_valid(NULL));
	/* 255 bytes, but its directory ".aaa…" would be 256. */
	memset(longname, 'a', 255);
	longname[255] = '\0';
	assert_false(mbox_name_valid(longname));
	longname[254] = '\0';
	assert_true(mbox_name_valid(longname));
	memset(longname, 'a', 256);
	longname[256] = '\0';
	assert_false(mbox_name_valid(longname));
	/* Two levels of 127: 255 bytes, ".a….a…" 256 on disk. */
	memset(longname, 'a', 255);
	longname[127] = '/';
	longname[255] = '\0';
	assert_false(mbox_name_valid(longname));
	/* "&" is "&-" on disk: 100 fit, 128 do not. */
	memset(amps, '&', 100);
	amps[100] = '\0';
	assert_true(mbox_name_valid(amps));
	memset(amps, '&', 128);
	amps[128] = '\0';
	assert_false(mbox_name_valid(amps));
}

/* The escaping: table of name → directory, and back. */
static void
name_escaping(void **state)
{
	static const struct {
		const char *name, *dir;
	} cases[] = {
	    {"Work", ".Work"},
	    {"Work/2024", ".Work.2024"},
	    {"a.b", ".a&AC4-b"},
	    {".hidden", ".&AC4-hidden"},
	    {"a..b", ".a&AC4ALg-b"},
	    {"a&b", ".a&-b"},
	    {"Ünï", ".&ANw-n&AO8-"},
	    {"日本語", ".&ZeVnLIqe-"},
	    {"😀", ".&2D3eAA-"},
	    {"inbox/Sub", ".INBOX.Sub"},
	    {"with space/x~y", ".with space.x~y"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *canon = mi_name_canon(cases[i].name);
		char *dir = mi_name_to_dir(canon);
		char *back;

		assert_non_null(dir);
		assert_string_equal(dir, cases[i].dir);
		back = mi_dir_to_name(dir);
		assert_non_null(back);
		assert_string_equal(back, canon);
		free(back);
		free(dir);
		free(canon);
	}
	{
		char *dir = mi_name_to_dir("INBOX");

		assert_string_equal(dir, ".");
		free(dir);
	}
	/* Directories that are no folder this escaping makes. */
	static const char *const not_folders[] = {
	    ".",      "..",     ".INBOX", ".inbox.x",
	    ".a..b",  ".a.",    ".&Jjo",  ".&AGE-" /* "a" needlessly encoded */,
	    ".&-.x*", ".&2D0-", ".a&ZZ-",
	};
	for (size_t i = 0; i < sizeof(not_folders) / sizeof(not_folders[0]);
	     i++) {
		char *name = mi_dir_to_name(not_folders[i]);

		if (name != NULL)
			fail_msg("%s decoded to %s", not_folders[i], name);
	}
}

static void
create_rename_delete(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 0);
	struct mbox_info *list, info;
	struct mbox *box;
	uint32_t uv_work, uv_2024, uid;
	size_t n;
	char *error = NULL, *p, *msg;

	assert_int_equal(mbox_create(u, "Work/2024", MBOX_SPECIAL_NONE, &error),
	                 MBOX_OK);
	/* The parent came along. */
	info = status(u, "Work");
	uv_work = info.uidvalidity;
	assert_true(info.has_children);
	mbox_info_clear(&info);
	info = status(u, "Work/2024");
	uv_2024 = info.uidvalidity;
	assert_false(info.has_children);
	mbox_info_clear(&info);
	p = xasprintf("%s/.Work.2024/cur", f->dir);
	assert_true(exists(p));
	free(p);
	uid = append(u, "Work/2024", "Subject: x\r\n\r\nbody\r\n", 0, NULL);
	assert_int_equal(uid, 1);

	assert_int_equal(mbox_create(u, "Work", 0, &error), MBOX_ERR_EXISTS);
	free(error);
	assert_int_equal(mbox_create(u, "inbox", 0, &error), MBOX_ERR_EXISTS);
	free(error);
	assert_int_equal(mbox_create(u, "a*b", 0, &error), MBOX_ERR_BADNAME);
	free(error);
	assert_int_equal(mbox_delete(u, "Work", &error), MBOX_ERR_CANNOT);
	free(error);
	assert_int_equal(mbox_delete(u, "INBOX", &error), MBOX_ERR_CANNOT);
	free(error);
	assert_int_equal(mbox_delete(u, "Nope", &error), MBOX_ERR_NOTFOUND);
	free(error);
	assert_int_equal(mbox_subscribe(u, "Work/2024", true, &error), MBOX_OK);

	/* RENAME: children move, UIDVALIDITY and messages stay. */
	assert_int_equal(mbox_rename(u, "Work", "Work/Sub", &error),
	                 MBOX_ERR_CANNOT);
	free(error);
	assert_int_equal(mbox_rename(u, "Work", "Sent", &error),
	                 MBOX_ERR_EXISTS);
	free(error);
	assert_int_equal(mbox_rename(u, "Nope", "Other", &error),
	                 MBOX_ERR_NOTFOUND);
	free(error);
	assert_int_equal(mbox_rename(u, "Work", "Jobs", &error), MBOX_OK);
	assert_int_equal(mbox_status(u, "Work", &info, &error),
	                 MBOX_ERR_NOTFOUND);
	free(error);
	info = status(u, "Jobs");
	assert_int_equal(info.uidvalidity, uv_work);
	mbox_info_clear(&info);
	info = status(u, "Jobs/2024");
	assert_int_equal(info.uidvalidity, uv_2024);
	assert_int_equal(info.messages, 1);
	assert_true(info.subscribed);
	mbox_info_clear(&info);
	p = xasprintf("%s/.Jobs.2024/cur", f->dir);
	assert_true(exists(p));
	free(p);
	p = xasprintf("%s/.Work.2024", f->dir);
	assert_false(exists(p));
	free(p);
	box = open_box(u, "Jobs/2024");
	msg = read_msg(box, 1);
	assert_string_equal(msg, "Subject: x\r\n\r\nbody\r\n");
	free(msg);
	mbox_close(&box);

	/* DELETE: the subscription outlives the mailbox. */
	assert_int_equal(mbox_delete(u, "Jobs/2024", &error), MBOX_OK);
	assert_int_equal(mbox_delete(u, "Jobs", &error), MBOX_OK);
	p = xasprintf("%s/.Jobs", f->dir);
	assert_false(exists(p));
	free(p);
	p = xasprintf("%s/tmp", f->dir);
	assert_int_equal(count_dir(p), 0);
	free(p);
	assert_int_equal(mbox_list(u, false, &list, &n, &error), MBOX_OK);
	assert_null(find_info(list, n, "Jobs"));
	assert_non_null(find_info(list, n, "Jobs/2024"));
	assert_false(find_info(list, n, "Jobs/2024")->exists);
	assert_true(find_info(list, n, "Jobs/2024")->subscribed);
	mbox_info_free_list(&list, n);

	/* Re-created: a new, greater UIDVALIDITY; UIDs from 1 again. */
	assert_int_equal(mbox_create(u, "Jobs/2024", 0, &error), MBOX_OK);
	info = status(u, "Jobs/2024");
	assert_true(info.uidvalidity > uv_2024);
	assert_int_equal(info.uidnext, 1);
	assert_int_equal(info.messages, 0);
	mbox_info_clear(&info);
	mbox_user_close(&u);
}

/* "G/p" → "G" where "G" does not exist (folders made by another tool):
 * a child's new name is another child's old one. */
static void
rename_overlapping(void **state)
{
	struct fixture *f = *state;
	static const char *const names[] = {"G/p", "G/p/p", "G/p/x", "G/p/p/x"};
	static const char *const dirs[] = {".G.p", ".G.p.p", ".G.p.x",
	                                   ".G.p.p.x"};
	static const char *const after[] = {"G", "G/p", "G/x", "G/p/x"};
	struct mbox_user *u;
	struct mbox_info *list;
	size_t n;
	char *error = NULL;

	/* An empty user first, so that the folders are found later. */
	u = open_user(f, 0);
	mbox_user_close(&u);
	for (size_t i = 0; i < 4; i++) {
		char *p = xasprintf("%s/%s", f->dir, dirs[i]);

		assert_int_equal(mkdir(p, 0700), 0);
		free(p);
	}
	u = open_user(f, 0);
	for (size_t i = 0; i < 4; i++)
		append(u, names[i], names[i], 0, NULL);
	assert_int_equal(mbox_list(u, false, &list, &n, &error), MBOX_OK);
	assert_null(find_info(list, n, "G"));
	assert_non_null(find_info(list, n, "G/p/p/x"));
	mbox_info_free_list(&list, n);
	assert_int_equal(mbox_subscribe(u, "G/p/p", true, &error), MBOX_OK);

	assert_int_equal(mbox_rename(u, "G/p", "G", &error), MBOX_OK);
	assert_int_equal(mbox_list(u, false, &list, &n, &error), MBOX_OK);
	for (size_t i = 0; i < 4; i++) {
		const struct mbox_info *info = find_info(list, n, after[i]);

		assert_non_null(info);
		assert_true(info->exists);
	}
	assert_null(find_info(list, n, "G/p/p"));
	assert_null(find_info(list, n, "G/p/p/x"));
	assert_true(find_info(list, n, "G")->has_children);
	assert_true(find_info(list, n, "G/p")->subscribed);
	assert_false(find_info(list, n, "G/x")->subscribed);
	mbox_info_free_list(&list, n);
	/* Each message is where its mailbox went. */
	for (size_t i = 0; i < 4; i++) {
		struct mbox *box = open_box(u, after[i]);
		char *msg = read_msg(box, 1);

		assert_string_equal(msg, names[i]);
		free(msg);
		mbox_close(&box);
	}
	for (size_t i = 0; i < 4; i++) {
		char *p = xasprintf("%s/%s", f->dir, dirs[i]);
		char *dir = mi_name_to_dir(after[i]);
		char *q = xasprintf("%s/%s/cur", f->dir, dir);

		assert_true(exists(q));
		free(q);
		free(dir);
		free(p);
	}
	{
		char *p = xasprintf("%s/tmp", f->dir);

		assert_int_equal(count_dir(p), 0);
		free(p);
	}
	mbox_user_close(&u);
}

static void
rename_inbox(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 0);
	struct mbox_info info;
	struct mbox *box;
	uint32_t uv;
	char *error = NULL, *msg, *p;

	append(u, "INBOX", "one\r\n", MBOX_F_SEEN, "$Important");
	append(u, "INBOX", "two\r\n", 0, NULL);
	assert_int_equal(mbox_create(u, "INBOX/Child", 0, &error), MBOX_OK);
	info = status(u, "INBOX");
	uv = info.uidvalidity;
	assert_true(info.has_children);
	mbox_info_clear(&info);
	box = open_box(u, "INBOX");
	mbox_cache_set(box, 1, "envelope", "(\"env\")", 7);

	assert_int_equal(mbox_rename(u, "INBOX", "INBOX/Child", &error),
	                 MBOX_ERR_EXISTS);
	free(error);
	assert_int_equal(mbox_rename(u, "inbox", "Old", &error), MBOX_OK);
	info = status(u, "INBOX");
	assert_int_equal(info.uidvalidity, uv);
	assert_int_equal(info.messages, 0);
	assert_int_equal(info.uidnext, 3);
	mbox_info_clear(&info);
	info = status(u, "INBOX/Child");
	mbox_info_clear(&info);
	info = status(u, "Old");
	assert_true(info.uidvalidity > uv);
	assert_int_equal(info.messages, 2);
	assert_int_equal(info.unseen, 1);
	mbox_info_clear(&info);
	p = xasprintf("%s/cur", f->dir);
	assert_int_equal(count_dir(p), 0);
	free(p);

	/* The open INBOX sees both expunged. */
	{
		struct mbox_msg *ch;
		uint32_t *exp;
		size_t nch, nexp;

		sync_box(box);
		assert_int_equal(
		    mbox_changes(box, 1, &ch, &nch, &exp, &nexp, &error),
		    MBOX_OK);
		assert_int_equal(nch, 0);
		assert_int_equal(nexp, 2);
		assert_int_equal(exp[0], 1);
		assert_int_equal(exp[1], 2);
		free(exp);
		assert_int_equal(mbox_get_info(box)->messages, 0);
	}
	mbox_close(&box);
	box = open_box(u, "Old");
	msg = read_msg(box, 1);
	assert_string_equal(msg, "one\r\n");
	free(msg);
	{
		struct mbox_msg *list;
		size_t n;
		char *v;
		size_t vlen;

		assert_int_equal(mbox_messages(box, &list, &n, &error),
		                 MBOX_OK);
		assert_int_equal(n, 2);
		assert_int_equal(list[0].flags, MBOX_F_SEEN);
		assert_string_equal(list[0].keywords, "$Important");
		mbox_msg_free_list(&list, n);
		assert_int_equal(mbox_cache_get(box, 1, "envelope", &v, &vlen),
		                 1);
		assert_int_equal(vlen, 7);
		free(v);
	}
	mbox_close(&box);
	/* INBOX works on. */
	assert_int_equal(append(u, "INBOX", "three\r\n", 0, NULL), 3);
	mbox_user_close(&u);
}

static void
append_read_back(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 0);
	static const char crlf[] = "Subject: hi\r\nTo: a@b\r\n\r\nline 1\r\n"
	                           "line 2\r\n";
	static const char lf[] = "Subject: hi\nTo: a@b\n\nline 1\nline 2\n";
	static const char mixed[] = "a\nb\r\nlone\rcr\r\nend";
	static const char mixed_out[] = "a\r\nb\r\nlone\rcr\r\nend";
	struct mbox_msg *list;
	struct mbox *box;
	struct stat st;
	uint32_t uid, uidvalidity;
	size_t n, len;
	char *error = NULL, *name, *p, *data, *msg;
	const int64_t date = 1700000000;

	assert_int_equal(mbox_append(u, "INBOX", crlf, strlen(crlf),
	                             MBOX_F_SEEN | MBOX_F_FLAGGED, NULL, date,
	                             &uidvalidity, &uid, &error),
	                 MBOX_OK);
	assert_int_equal(uid, 1);
	append(u, "INBOX", mixed, 0, NULL);
	assert_int_equal(mbox_append(u, "Nope", crlf, strlen(crlf), 0, NULL, 0,
	                             &uidvalidity, &uid, &error),
	                 MBOX_ERR_NOTFOUND);
	free(error);

	/* On disk: LF, the sizes and the flags in the name, mtime = date. */
	name = cur_file(f->dir, ":2,FS");
	p = xasprintf(",S=%zu,W=%zu:2,FS", strlen(lf), strlen(crlf));
	assert_non_null(strstr(name, p));
	free(p);
	p = xasprintf("%s/cur/%s", f->dir, name);
	data = read_file(p, &len);
	assert_int_equal(len, strlen(lf));
	assert_memory_equal(data, lf, len);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mtime, date);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(data);
	free(p);
	free(name);
	p = xasprintf("%s/tmp", f->dir);
	assert_int_equal(count_dir(p), 0);
	free(p);

	/* Read back: CRLF, exactly size bytes. */
	box = open_box(u, "INBOX");
	assert_int_equal(mbox_messages(box, &list, &n, &error), MBOX_OK);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].uid, 1);
	assert_int_equal(list[0].size, strlen(crlf));
	assert_int_equal(list[0].flags, MBOX_F_SEEN | MBOX_F_FLAGGED);
	assert_int_equal(list[0].internaldate, date);
	assert_null(list[0].keywords);
	assert_int_equal(list[1].size, strlen(mixed_out));
	assert_true(list[1].internaldate > date);
	mbox_msg_free_list(&list, n);
	msg = read_msg(box, 1);
	assert_string_equal(msg, crlf);
	free(msg);
	msg = read_msg(box, 2);
	assert_string_equal(msg, mixed_out);
	free(msg);
	assert_int_equal(mbox_get_info(box)->size,
	                 strlen(crlf) + strlen(mixed_out));
	assert_int_equal(mbox_get_info(box)->unseen, 1);
	{
		struct buf b;

		buf_init(&b, 0);
		assert_int_equal(mbox_read(box, 99, &b, &error),
		                 MBOX_ERR_NOTFOUND);
		free(error);
		/* Appends to what the buffer holds; a bounded buffer that
		 * cannot take it is left as it was. */
		buf_append_str(&b, "* 1 FETCH ");
		assert_int_equal(mbox_read(box, 1, &b, &error), MBOX_OK);
		assert_int_equal(b.len, 10 + strlen(crlf));
		buf_free(&b);
		buf_init(&b, 20);
		buf_append_str(&b, "x");
		assert_int_equal(mbox_read(box, 1, &b, &error), MBOX_ERR_TEMP);
		free(error);
		assert_int_equal(b.len, 1);
		buf_free(&b);
	}
	/* Empty message. */
	assert_int_equal(mbox_append(u, "INBOX", "", 0, 0, NULL, 0,
	                             &uidvalidity, &uid, &error),
	                 MBOX_OK);
	sync_box(box);
	msg = read_msg(box, uid);
	assert_string_equal(msg, "");
	free(msg);
	mbox_close(&box);
	mbox_user_close(&u);
}

static void
uids_and_modseq(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 0);
	struct mbox *box;
	uint32_t *exp, *failed, uidnext;
	size_t nexp, nfailed;
	uint64_t m0, m1, m2, m3, m4, modseq;
	char *error = NULL;

	box = open_box(u, "INBOX");
	m0 = mbox_get_info(box)->highestmodseq;
	assert_int_equal(append(u, "INBOX", "1\r\n", 0, NULL), 1);
	assert_int_equal(append(u, "INBOX", "2\r\n", 0, NULL), 2);
	assert_int_equal(append(u, "INBOX", "3\r\n", 0, NULL), 3);
	sync_box(box);
	m1 = mbox_get_info(box)->highestmodseq;
	assert_true(m1 >= m0 + 3);
	assert_int_equal(mbox_get_info(box)->uidnext, 4);

	uint32_t three = 3;
	assert_int_equal(mbox_store_flags(box, &three, 1, MBOX_FLAGS_ADD,
	                                  MBOX_F_DELETED, NULL, 0, &failed,
	                                  &nfailed, &error),
	                 MBOX_OK);
	m2 = mbox_get_info(box)->highestmodseq;
	assert_true(m2 > m1);
	/* Not \Deleted: EXPUNGE of a UID set leaves it. */
	uint32_t two_three[] = {2, 3};
	assert_int_equal(mbox_expunge(box, two_three, 2, &exp, &nexp, &error),
	                 MBOX_OK);
	assert_int_equal(nexp, 1);
	assert_int_equal(exp[0], 3);
	free(exp);
	m3 = mbox_get_info(box)->highestmodseq;
	assert_true(m3 > m2);
	assert_int_equal(mbox_get_info(box)->messages, 2);

	/* The expunged UID is never handed out again. */
	assert_int_equal(append(u, "INBOX", "4\r\n", 0, NULL), 4);
	assert_int_equal(mbox_peek(u, "INBOX", &modseq, &uidnext, &error),
	                 MBOX_OK);
	assert_int_equal(uidnext, 5);
	assert_true(modseq > m3);
	/* Across a close and reopen, too. */
	mbox_close(&box);
	mbox_user_close(&u);
	u = open_user(f, 0);
	assert_int_equal(append(u, "INBOX", "5\r\n", 0, NULL), 5);
	box = open_box(u, "INBOX");
	m4 = mbox_get_info(box)->highestmodseq;
	assert_true(m4 > modseq);
	/* A STORE that changes nothing takes no MODSEQ. */
	uint32_t one = 1;
	assert_int_equal(mbox_store_flags(box, &one, 1, MBOX_FLAGS_REMOVE,
	                                  MBOX_F_SEEN, NULL, 0, &failed,
	                                  &nfailed, &error),
	                 MBOX_OK);
	assert_int_equal(mbox_get_info(box)->highestmodseq, m4);
	mbox_close(&box);
	mbox_user_close(&u);
}

static void
changes_since(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 0);
	struct mbox *box;
	struct mbox_msg *ch, *list;
	uint32_t *exp, *failed;
	size_t nch, nexp, nfailed, n;
	uint64_t since;
	char *error = NULL;

	for (int i = 0; i < 5; i++)
		append(u, "INBOX", "m\r\n", 0, NULL);
	box = open_box(u, "INBOX");
	since = mbox_get_info(box)->highestmodseq;
	assert_int_equal(
	    mbox_changes(box, since, &ch, &nch, &exp, &nexp, &error), MBOX_OK);
	assert_int_equal(nch, 0);
	assert_int_equal(nexp, 0);

	uint32_t uids[] = {2, 4};
	assert_int_equal(mbox_store_flags(box, uids, 2, MBOX_FLAGS_ADD,
	                                  MBOX_F_SEEN | MBOX_F_DELETED, "Work",
	                                  0, &failed, &nfailed, &error),
	                 MBOX_OK);
	assert_null(failed);
	uint32_t four = 4;
	assert_int_equal(mbox_expunge(box, NULL, 0, &exp, &nexp, &error),
	                 MBOX_OK);
	assert_int_equal(nexp, 2);
	free(exp);
	(void)four;
	append(u, "INBOX", "new\r\n", 0, NULL);
	sync_box(box);

	assert_int_equal(
	    mbox_changes(box, since, &ch, &nch, &exp, &nexp, &error), MBOX_OK);
	/* 2 and 4 are gone; 6 is new. */
	assert_int_equal(nch, 1);
	assert_int_equal(ch[0].uid, 6);
	assert_true(ch[0].modseq > since);
	assert_int_equal(nexp, 2);
	assert_int_equal(exp[0], 2);
	assert_int_equal(exp[1], 4);
	mbox_msg_free_list(&ch, nch);
	free(exp);

	since = mbox_get_info(box)->highestmodseq;
	uint32_t three = 3;
	assert_int_equal(mbox_store_flags(box, &three, 1, MBOX_FLAGS_SET,
	                                  MBOX_F_FLAGGED, "$label1 Work", 0,
	                                  &failed, &nfailed, &error),
	                 MBOX_OK);
	assert_int_equal(
	    mbox_changes(box, since, &ch, &nch, &exp, &nexp, &error), MBOX_OK);
	assert_int_equal(nch, 1);
	assert_int_equal(ch[0].uid, 3);
	assert_int_equal(ch[0].flags, MBOX_F_FLAGGED);
	assert_string_equal(ch[0].keywords, "$label1 Work");
	assert_int_equal(ch[0].modseq, mbox_get_info(box)->highestmodseq);
	assert_int_equal(nexp, 0);
	mbox_msg_free_list(&ch, nch);
	free(exp);

	/* Keywords: removal is case-insensitive. */
	assert_int_equal(mbox_store_flags(box, &three, 1, MBOX_FLAGS_REMOVE, 0,
	                                  "work", 0, &failed, &nfailed, &error),
	                 MBOX_OK);
	assert_int_equal(mbox_messages(box, &list, &n, &error), MBOX_OK);
	assert_int_equal(n, 4);
	assert_int_equal(list[1].uid, 3);
	assert_string_equal(list[1].keywords, "$label1");
	mbox_msg_free_list(&list, n);
	mbox_close(&box);
	mbox_user_close(&u);
}

static void
store_unchangedsince(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 0);
	struct mbox *box;
	struct mbox_msg *list;
	uint32_t *failed;
	size_t nfailed, n;
	uint64_t before;
	char *error = NULL, *name;

	for (int i = 0; i < 3; i++)
		append(u, "INBOX", "m\r\n", 0, NULL);
	box = open_box(u, "INBOX");
	before = mbox_get_info(box)->highestmodseq;
	uint32_t two = 2;
	assert_int_equal(mbox_store_flags(box, &two, 1, MBOX_FLAGS_ADD,
	                                  MBOX_F_ANSWERED, NULL, 0, &failed,
	                                  &nfailed, &error),
	                 MBOX_OK);
	/* Message 2 changed after "before": left alone, reported. */
	uint32_t all[] = {1, 2, 3};
	assert_int_equal(mbox_store_flags(box, all, 3, MBOX_FLAGS_ADD,
	                                  MBOX_F_FLAGGED, NULL, before, &failed,
	                                  &nfailed, &error),
	                 MBOX_ERR_MODIFIED);
	free(error);
	assert_int_equal(nfailed, 1);
	assert_int_equal(failed[0], 2);
	free(failed);
	assert_int_equal(mbox_messages(box, &list, &n, &error), MBOX_OK);
	assert_int_equal(list[0].flags, MBOX_F_FLAGGED);
	assert_int_equal(list[1].flags, MBOX_F_ANSWERED);
	assert_int_equal(list[2].flags, MBOX_F_FLAGGED);
	assert_true(list[0].modseq > before);
	mbox_msg_free_list(&list, n);
	/* The file name follows the flags. */
	name = cur_file(f->dir, ":2,R");
	free(name);
	/* With a current MODSEQ it applies. */
	assert_int_equal(mbox_store_flags(box, &two, 1, MBOX_FLAGS_ADD,
	                                  MBOX_F_FLAGGED, NULL,
	                                  mbox_get_info(box)->highestmodseq,
	                                  &failed, &nfailed, &error),
	                 MBOX_OK);
	assert_int_equal(nfailed, 0);
	name = cur_file(f->dir, ":2,FR");
	free(name);
	/* Read-only handles refuse changes. */
	mbox_close(&box);
	assert_int_equal(mbox_open(u, "INBOX", true, &box, &error), MBOX_OK);
	assert_int_equal(mbox_store_flags(box, &two, 1, MBOX_FLAGS_ADD,
	                                  MBOX_F_SEEN, NULL, 0, &failed,
	                                  &nfailed, &error),
	                 MBOX_ERR_CANNOT);
	free(error);
	mbox_close(&box);
	mbox_user_close(&u);
}

static void
copy_and_move(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 0);
	struct mbox *box, *dst;
	struct mbox_msg *list;
	uint32_t *src_uids, *dst_uids, *exp, uv, *failed;
	size_t n, nc, nexp, nfailed;
	char *error = NULL, *msg, *p;
	struct mbox_info info;

	append(u, "INBOX", "first\r\n", MBOX_F_SEEN, "$Forwarded");
	append(u, "INBOX", "second\r\n", 0, NULL);
	append(u, "INBOX", "third\r\n", MBOX_F_FLAGGED, NULL);
	append(u, "Archive", "already\r\n", 0, NULL);
	box = open_box(u, "INBOX");
	uint32_t one = 1;
	uint32_t one_two[] = {1, 2, 7};
	assert_int_equal(mbox_store_flags(box, &one, 1, MBOX_FLAGS_ADD, 0,
	                                  "$Forwarded", 0, &failed, &nfailed,
	                                  &error),
	                 MBOX_OK);

	assert_int_equal(mbox_copy(box, one_two, 3, "Nope", false, &uv,
	                           &src_uids, &dst_uids, &nc, &error),
	                 MBOX_ERR_NOTFOUND);
	free(error);
	assert_int_equal(mbox_copy(box, one_two, 3, "Archive", false, &uv,
	                           &src_uids, &dst_uids, &nc, &error),
	                 MBOX_OK);
	assert_int_equal(nc, 2); /* 7 does not exist */
	assert_int_equal(src_uids[0], 1);
	assert_int_equal(src_uids[1], 2);
	assert_int_equal(dst_uids[0], 2);
	assert_int_equal(dst_uids[1], 3);
	info = status(u, "Archive");
	assert_int_equal(uv, info.uidvalidity);
	assert_int_equal(info.messages, 3);
	mbox_info_clear(&info);
	free(src_uids);
	free(dst_uids);
	assert_int_equal(mbox_get_info(box)->messages, 3);

	dst = open_box(u, "Archive");
	assert_int_equal(mbox_messages(dst, &list, &n, &error), MBOX_OK);
	assert_int_equal(n, 3);
	assert_int_equal(list[1].flags, MBOX_F_SEEN);
	assert_string_equal(list[1].keywords, "$Forwarded");
	assert_int_equal(list[1].size, 7);
	mbox_msg_free_list(&list, n);
	msg = read_msg(dst, 3);
	assert_string_equal(msg, "second\r\n");
	free(msg);

	/* MOVE: gone from the source (and its files), there in dest. */
	uint32_t three = 3;
	assert_int_equal(mbox_copy(box, &three, 1, "Archive", true, &uv,
	                           &src_uids, &dst_uids, &nc, &error),
	                 MBOX_OK);
	assert_int_equal(nc, 1);
	assert_int_equal(dst_uids[0], 4);
	free(src_uids);
	free(dst_uids);
	assert_int_equal(mbox_get_info(box)->messages, 2);
	p = xasprintf("%s/cur", f->dir);
	assert_int_equal(count_dir(p), 2);
	free(p);
	{
		struct mbox_msg *ch;
		uint32_t *e;
		size_t nch, ne;

		assert_int_equal(
		    mbox_changes(box, 0, &ch, &nch, &e, &ne, &error), MBOX_OK);
		assert_int_equal(ne, 1);
		assert_int_equal(e[0], 3);
		mbox_msg_free_list(&ch, nch);
		free(e);
	}
	sync_box(dst);
	msg = read_msg(dst, 4);
	assert_string_equal(msg, "third\r\n");
	free(msg);
	assert_int_equal(mbox_get_info(dst)->messages, 4);

	/* COPY into the same mailbox. */
	uint32_t two = 2;
	assert_int_equal(mbox_copy(box, &two, 1, "INBOX", false, &uv, &src_uids,
	                           &dst_uids, &nc, &error),
	                 MBOX_OK);
	assert_int_equal(dst_uids[0], 4);
	free(src_uids);
	free(dst_uids);
	msg = read_msg(box, 4);
	assert_string_equal(msg, "second\r\n");
	free(msg);
	assert_int_equal(mbox_get_info(box)->messages, 3);
	(void)exp;
	(void)nexp;
	mbox_close(&dst);
	mbox_close(&box);
	mbox_user_close(&u);
}

static int
msg_fd_from(const char *data)
{
	char tmpl[] = "/tmp/tern-msg-XXXXXX";
	int fd = mkstemp(tmpl);

	assert_true(fd >= 0);
	unlink(tmpl);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	return fd;
}

/* Group commit: five deliveries in one call, to three mailbox names (one
 * missing: INBOX), the last over the quota. Each gets its own result, the
 * others commit together; nothing is left in tmp/ or linked for the one
 * that failed. */
static void
deliver_many(void **state)
{
	struct fixture *f = *state;
	/* The messages are 22 to 30 bytes: four fit, the fifth does not. */
	struct mbox_user *u = open_user(f, 100);
	struct mbox_delivery it[5] = {
	    {.name = "INBOX"},
	    {.name = "Junk", .flags = MBOX_F_SEEN},
	    {.name = "Nope"},
	    {.name = "INBOX", .prefix = "X-A: 1\r\n"},
	    {.name = "INBOX"},
	};
	static const uint32_t want_uid[5] = {1, 1, 2, 3, 0};
	struct mbox *box;
	char **names, *path, *msg;
	size_t n;
	int fd[5];

	for (int i = 0; i < 5; i++) {
		char *text = xasprintf("Subject: m\r\n\r\nbody %d\r\n", i);

		it[i].msg_fd = fd[i] = msg_fd_from(text);
		free(text);
	}
	assert_int_equal(mbox_deliver_many(u, it, 5), 4);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(it[i].rc, i < 4 ? MBOX_OK : MBOX_ERR_QUOTA);
		assert_int_equal(it[i].uid, want_uid[i]);
		assert_true((it[i].error == NULL) == (i < 4));
		free(it[i].error);
		close(fd[i]);
	}
	box = open_box(u, "INBOX");
	assert_int_equal(mbox_get_info(box)->messages, 3);
	msg = read_msg(box, 2);
	assert_string_equal(msg, "Subject: m\r\n\r\nbody 2\r\n");
	free(msg);
	msg = read_msg(box, 3);
	assert_string_equal(msg, "X-A: 1\r\nSubject: m\r\n\r\nbody 3\r\n");
	free(msg);
	mbox_close(&box);
	box = open_box(u, "Junk");
	assert_int_equal(mbox_get_info(box)->messages, 1);
	assert_int_equal(mbox_get_info(box)->unseen, 0);
	mbox_close(&box);
	path = xasprintf("%s/cur", f->dir);
	n = list_dir(path, &names);
	assert_int_equal(n, 3);
	free_names(names, n);
	free(path);
	path = xasprintf("%s/tmp", f->dir);
	n = list_dir(path, &names);
	assert_int_equal(n, 0);
	free_names(names, n);
	free(path);
	mbox_user_close(&u);
}

static void
deliver(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 0);
	static const char prefix[] = "Return-Path: <s@x.org>\r\n"
	                             "Delivered-To: alice@example.org\r\n";
	struct mbox *box;
	struct buf big;
	uint32_t uid;
	char *error = NULL, *msg, *want;
	int fd;

	fd = msg_fd_from("Subject: d\r\n\r\nhello\r\n");
	assert_int_equal(mbox_deliver(u, "Junk", prefix, fd, 0, &uid, &error),
	                 MBOX_OK);
	assert_int_equal(uid, 1);
	/* A mailbox that does not exist (or a bad name): INBOX. */
	assert_int_equal(
	    mbox_deliver(u, "Nope", prefix, fd, MBOX_F_FLAGGED, &uid, &error),
	    MBOX_OK);
	assert_int_equal(uid, 1);
	assert_int_equal(mbox_deliver(u, "a//b", NULL, fd, 0, &uid, &error),
	                 MBOX_OK);
	assert_int_equal(uid, 2);
	close(fd);
	box = open_box(u, "Junk");
	msg = read_msg(box, 1);
	want = xasprintf("%sSubject: d\r\n\r\nhello\r\n", prefix);
	assert_string_equal(msg, want);
	free(msg);
	mbox_close(&box);
	box = open_box(u, "INBOX");
	msg = read_msg(box, 1);
	assert_string_equal(msg, want);
	free(msg);
	free(want);
	msg = read_msg(box, 2);
	assert_string_equal(msg, "Subject: d\r\n\r\nhello\r\n");
	free(msg);
	assert_int_equal(mbox_get_info(box)->unseen, 2);

	/* A few MiB, streamed; a CRLF split across chunks. */
	buf_init(&big, 0);
	buf_append_str(&big, "Subject: big\r\n\r\n");
	while (big.len < 3 * 1024 * 1024 + 7)
		buf_append_str(&big, "0123456789abcdef0123456789abcdef0123456"
		                     "789abcdef0123456789abcde\r\n");
	buf_cstr(&big);
	fd = msg_fd_from((const char *)big.data);
	assert_int_equal(mbox_deliver(u, "INBOX", NULL, fd, 0, &uid, &error),
	                 MBOX_OK);
	close(fd);
	sync_box(box);
	{
		struct buf out;

		buf_init(&out, 0);
		assert_int_equal(mbox_read(box, uid, &out, &error), MBOX_OK);
		assert_int_equal(out.len, big.len);
		assert_memory_equal(out.data, big.data, big.len);
		buf_free(&out);
	}
	buf_free(&big);
	mbox_close(&box);
	mbox_user_close(&u);
}

/* Another Maildir tool: drops into new/, renames in cur/, deletes. */
static void
other_tools(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 0);
	struct mbox *box;
	struct mbox_msg *list, *ch;
	uint32_t *exp, uidnext;
	size_t n, nch, nexp;
	uint64_t since, modseq;
	char *error = NULL, *p, *q, *name, *msg;

	append(u, "INBOX", "ours\r\n", 0, NULL);
	box = open_box(u, "INBOX");
	age_dirs(f->dir);
	since = mbox_get_info(box)->highestmodseq;

	/* Dropped into new/ (LF, no sizes in the name), written at another
	 * time than the name says. */
	p = xasprintf("%s/new/1600000000.M1P1.otherhost", f->dir);
	write_file(p, "From: tool\n\nbody\n");
	{
		struct timespec ts[2] = {{.tv_sec = 1650000000},
		                         {.tv_sec = 1650000000}};

		assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	}
	free(p);
	/* mbox_peek notices (IDLE polling). */
	assert_int_equal(mbox_peek(u, "INBOX", &modseq, &uidnext, &error),
	                 MBOX_OK);
	assert_int_equal(uidnext, 3);
	assert_true(modseq > since);
	sync_box(box);
	assert_int_equal(mbox_get_info(box)->messages, 2);
	msg = read_msg(box, 2);
	assert_string_equal(msg, "From: tool\r\n\r\nbody\r\n");
	free(msg);
	p = xasprintf("%s/new", f->dir);
	assert_int_equal(count_dir(p), 0);
	free(p);
	name = cur_file(f->dir, "otherhost");
	assert_string_equal(name, "1600000000.M1P1.otherhost:2,");
	free(name);
	/* The scan read no file, nor its inode: size and date are guesses
	 * (no S= in the name: 0; the time the name starts with) until
	 * asked for. */
	assert_int_equal(mbox_messages(box, &list, &n, &error), MBOX_OK);
	assert_true(list[0].size_known);
	assert_false(list[1].size_known);
	assert_int_equal(list[1].size, 0);
	assert_int_equal(list[1].internaldate, 1600000000);
	mbox_msg_free_list(&list, n);
	{
		uint32_t uids[] = {2, 1, 99};
		uint64_t sizes[3];
		int64_t dates[3];
		uint64_t before = mbox_get_info(box)->size;

		assert_int_equal(mbox_sizes(box, uids, 3, sizes, dates, &error),
		                 MBOX_OK);
		assert_int_equal(sizes[0],
		                 strlen("From: tool\r\n\r\nbody\r\n"));
		assert_int_equal(dates[0], 1650000000);
		assert_int_equal(sizes[1], strlen("ours\r\n"));
		assert_true(dates[1] > 1650000000);
		assert_int_equal(sizes[2], 0); /* no such message */
		/* Recorded, and the mailbox's SIZE follows. */
		assert_int_equal(mbox_get_info(box)->size,
		                 before + strlen("From: tool\r\n\r\nbody\r\n"));
	}
	assert_int_equal(mbox_messages(box, &list, &n, &error), MBOX_OK);
	assert_true(list[1].size_known);
	assert_int_equal(list[1].size, strlen("From: tool\r\n\r\nbody\r\n"));
	assert_int_equal(list[1].internaldate, 1650000000);
	mbox_msg_free_list(&list, n);

	/* Flags changed by renaming in cur/. */
	age_dirs(f->dir);
	since = mbox_get_info(box)->highestmodseq;
	p = xasprintf("%s/cur/1600000000.M1P1.otherhost:2,", f->dir);
	q = xasprintf("%s/cur/1600000000.M1P1.otherhost:2,FST", f->dir);
	assert_int_equal(rename(p, q), 0);
	free(p);
	free(q);
	sync_box(box);
	assert_int_equal(
	    mbox_changes(box, since, &ch, &nch, &exp, &nexp, &error), MBOX_OK);
	assert_int_equal(nch, 1);
	assert_int_equal(ch[0].uid, 2);
	assert_int_equal(ch[0].flags,
	                 MBOX_F_FLAGGED | MBOX_F_SEEN | MBOX_F_DELETED);
	assert_int_equal(nexp, 0);
	mbox_msg_free_list(&ch, nch);
	free(exp);
	/* Reading through the old name copes with a rename it missed. */
	age_dirs(f->dir);
	p = xasprintf("%s/cur/1600000000.M1P1.otherhost:2,FST", f->dir);
	q = xasprintf("%s/cur/1600000000.M1P1.otherhost:2,S", f->dir);
	assert_int_equal(rename(p, q), 0);
	free(p);
	msg = read_msg(box, 2);
	assert_string_equal(msg, "From: tool\r\n\r\nbody\r\n");
	free(msg);

	/* Deleted by the tool: expunged. */
	age_dirs(f->dir);
	since = mbox_get_info(box)->highestmodseq;
	assert_int_equal(unlink(q), 0);
	free(q);
	sync_box(box);
	assert_int_equal(
	    mbox_changes(box, since, &ch, &nch, &exp, &nexp, &error), MBOX_OK);
	assert_int_equal(nexp, 1);
	assert_int_equal(exp[0], 2);
	mbox_msg_free_list(&ch, nch);
	free(exp);
	assert_int_equal(mbox_get_info(box)->messages, 1);
	{
		struct buf b;

		buf_init(&b, 0);
		assert_int_equal(mbox_read(box, 2, &b, &error),
		                 MBOX_ERR_NOTFOUND);
		free(error);
		buf_free(&b);
	}

	/* A folder made by another tool, then removed by it. */
	p = xasprintf("%s/.Tool&AC4-made", f->dir);
	assert_int_equal(mkdir(p, 0700), 0);
	q = xasprintf("%s/cur", p);
	assert_int_equal(mkdir(q, 0700), 0);
	free(q);
	q = xasprintf("%s/new", p);
	assert_int_equal(mkdir(q, 0700), 0);
	free(q);
	q = xasprintf("%s/new/1.M1P1.x", p);
	write_file(q, "x\n");
	free(q);
	{
		struct mbox_info info = status(u, "Tool.made");

		assert_int_equal(info.messages, 1);
		mbox_info_clear(&info);
	}
	/* A directory that is no escaped name is left alone. */
	q = xasprintf("%s/.not..valid", f->dir);
	assert_int_equal(mkdir(q, 0700), 0);
	free(q);
	{
		struct mbox_info *l;
		size_t ln;

		assert_int_equal(mbox_list(u, false, &l, &ln, &error), MBOX_OK);
		assert_int_equal(ln, 7);
		mbox_info_free_list(&l, ln);
	}
	q = xasprintf("rm -rf '%s'", p);
	assert_int_equal(system(q), 0);
	free(q);
	free(p);
	{
		struct mbox_info info;

		assert_int_equal(mbox_status(u, "Tool.made", &info, &error),
		                 MBOX_ERR_NOTFOUND);
		free(error);
	}
	mbox_close(&box);
	mbox_user_close(&u);
}

static void
reindex(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 0);
	struct mbox_info info;
	struct mbox *box;
	struct mbox_msg *list;
	uint32_t uv, uv_work, *failed;
	size_t n, nfailed;
	char *error = NULL, *p, *name;

	assert_int_equal(mbox_create(u, "Work", 0, &error), MBOX_OK);
	for (int i = 1; i <= 4; i++) {
		char *m = xasprintf("m%d\r\n", i);

		append(u, "INBOX", m, 0, NULL);
		free(m);
	}
	append(u, "Work", "w\r\n", 0, "$Work");
	box = open_box(u, "INBOX");
	uint32_t uid3 = 3;
	assert_int_equal(mbox_store_flags(box, &uid3, 1, MBOX_FLAGS_ADD,
	                                  MBOX_F_ANSWERED, "$Label", 0, &failed,
	                                  &nfailed, &error),
	                 MBOX_OK);
	mbox_close(&box);
	info = status(u, "INBOX");
	uv = info.uidvalidity;
	mbox_info_clear(&info);
	info = status(u, "Work");
	uv_work = info.uidvalidity;
	mbox_info_clear(&info);
	mbox_user_close(&u);

	/* Meanwhile: one file gone, one new. */
	name = cur_file(f->dir, ":2,R");
	(void)name;
	free(name);
	{
		char **names;
		char *cur = xasprintf("%s/cur", f->dir);
		size_t nn = list_dir(cur, &names);

		assert_int_equal(nn, 4);
		for (size_t i = 0; i < nn; i++) {
			size_t len;
			char *data;

			p = xasprintf("%s/%s", cur, names[i]);
			data = read_file(p, &len);
			if (strcmp(data, "m1\n") == 0) /* UID 1 */
				assert_int_equal(unlink(p), 0);
			free(data);
			free(p);
		}
		assert_int_equal(count_dir(cur), 3);
		free_names(names, nn);
		free(cur);
	}
	p = xasprintf("%s/cur/9999999999.M1P1.later:2,S", f->dir);
	write_file(p, "late\n");
	free(p);

	assert_int_equal(mbox_reindex(f->dir, &error), MBOX_OK);
	u = open_user(f, 0);
	info = status(u, "INBOX");
	assert_int_equal(info.uidvalidity, uv);
	assert_int_equal(info.messages, 4);
	assert_int_equal(info.uidnext, 6);
	mbox_info_clear(&info);
	box = open_box(u, "INBOX");
	assert_int_equal(mbox_messages(box, &list, &n, &error), MBOX_OK);
	assert_int_equal(n, 4);
	assert_int_equal(list[0].uid, 2);
	assert_int_equal(list[1].uid, 3);
	assert_int_equal(list[1].flags, MBOX_F_ANSWERED);
	assert_string_equal(list[1].keywords, "$Label");
	assert_int_equal(list[2].uid, 4);
	assert_int_equal(list[3].uid, 5);
	assert_int_equal(list[3].flags, MBOX_F_SEEN);
	mbox_msg_free_list(&list, n);
	mbox_close(&box);
	info = status(u, "Work");
	assert_int_equal(info.uidvalidity, uv_work);
	mbox_info_clear(&info);
	mbox_user_close(&u);

	/* Index lost: rebuilt, new UIDVALIDITYs, messages all there. */
	p = xasprintf("%s/index.db", f->dir);
	assert_int_equal(unlink(p), 0);
	free(p);
	p = xasprintf("%s/index.db-wal", f->dir);
	(void)unlink(p);
	free(p);
	p = xasprintf("%s/index.db-shm", f->dir);
	(void)unlink(p);
	free(p);
	assert_int_equal(mbox_reindex(f->dir, &error), MBOX_OK);
	u = open_user(f, 0);
	info = status(u, "INBOX");
	assert_true(info.uidvalidity != uv);
	assert_int_equal(info.messages, 4);
	mbox_info_clear(&info);
	info = status(u, "Work");
	assert_int_equal(info.messages, 1);
	mbox_info_clear(&info);
	info = status(u, "Sent");
	assert_int_equal(info.special, MBOX_SPECIAL_SENT);
	mbox_info_clear(&info);
	mbox_user_close(&u);

	/* A corrupt index is put aside. */
	p = xasprintf("%s/index.db", f->dir);
	{
		int fd = open(p, O_WRONLY | O_TRUNC);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, "garbage garbage garbage", 23), 23);
		close(fd);
	}
	free(p);
	p = xasprintf("%s/index.db-wal", f->dir);
	(void)unlink(p);
	free(p);
	assert_int_equal(mbox_reindex(f->dir, &error), MBOX_OK);
	u = open_user(f, 0);
	info = status(u, "INBOX");
	assert_int_equal(info.messages, 4);
	mbox_info_clear(&info);
	mbox_user_close(&u);
}

/* A RENAME cut short by a crash leaves a folder parked in tmp/: it is put
 * back when the user is opened next. */
static void
rename_crash_recovery(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 0);
	struct mbox_info info;
	sqlite3 *db;
	sqlite3_stmt *st;
	long long id;
	char *p, *q, *error = NULL;

	assert_int_equal(mbox_create(u, "Park", 0, &error), MBOX_OK);
	append(u, "Park", "kept\r\n", 0, NULL);
	mbox_user_close(&u);
	p = xasprintf("%s/index.db", f->dir);
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	free(p);
	assert_int_equal(sqlite3_prepare_v2(db,
	                                    "SELECT id FROM mailboxes"
	                                    " WHERE name = 'Park'",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	p = xasprintf("%s/.Park", f->dir);
	q = xasprintf("%s/tmp/rename.%lld", f->dir, id);
	assert_int_equal(rename(p, q), 0);

	u = open_user(f, 0);
	assert_true(exists(p));
	assert_false(exists(q));
	info = status(u, "Park");
	assert_int_equal(info.messages, 1);
	mbox_info_clear(&info);
	free(p);
	free(q);
	mbox_user_close(&u);
}

/* The CRLF → LF writer fed one byte at a time writes what it writes when
 * fed everything at once. */
static void
writer_trickle(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 0);
	static const char *const inputs[] = {
	    "a\r\nb\r\n", "\r",   "\r\r\n",
	    "x\ry",       "\n\n", "\r\n\r",
	    "lone\r",     "",     "mixed\nand\r\n\r\rend",
	};

	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		char *data[2];
		size_t len[2];
		uint64_t crlf[2];

		for (int mode = 0; mode < 2; mode++) {
			struct mi_writer w;
			char *error = NULL, *path;
			const char *in = inputs[i];

			assert_int_equal(mi_writer_open(u, &w, &error),
			                 MBOX_OK);
			if (mode == 0) {
				assert_int_equal(
				    mi_writer_write(&w, in, strlen(in)), 0);
			} else {
				for (size_t j = 0; in[j] != '\0'; j++)
					assert_int_equal(
					    mi_writer_write(&w, in + j, 1), 0);
			}
			assert_int_equal(
			    mi_writer_finish(u, &w, 1000000000, &error),
			    MBOX_OK);
			path = xasprintf("%s/tmp/%s", f->dir, w.tmpname);
			data[mode] = read_file(path, &len[mode]);
			assert_int_equal(len[mode], w.lf_size);
			crlf[mode] = w.crlf_size;
			/* The reader's count agrees with the writer's. */
			{
				int fd = open(path, O_RDONLY);
				uint64_t size;

				assert_true(fd >= 0);
				assert_int_equal(mi_file_crlf_size(fd, &size),
				                 0);
				assert_int_equal(size, w.crlf_size);
				close(fd);
			}
			free(path);
			mi_writer_abort(u, &w);
		}
		assert_int_equal(len[0], len[1]);
		assert_memory_equal(data[0], data[1], len[0]);
		assert_int_equal(crlf[0], crlf[1]);
		free(data[0]);
		free(data[1]);
	}
	mbox_user_close(&u);
}

/* The writer against the rule it keeps, on input longer than its buffer
 * (MI_CHUNK) fed in pieces that split CRLFs: every CRLF → LF, every
 * other byte (a CR alone, an LF alone) as it is; sizes as the reader
 * counts them. */
static void
writer_spans(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 0);
	size_t n = 3 * MI_CHUNK + 123, pieces[] = {n, 7777, 4096, 1};

	for (size_t pc = 0; pc < sizeof(pieces) / sizeof(pieces[0]); pc++) {
		char *in = xmalloc(n), *want = xmalloc(n), *got, *path;
		size_t wlen = 0, glen, line = 0;
		uint64_t want_crlf = 0, size;
		unsigned seed = 7;
		struct mi_writer w;
		char *error = NULL;
		int fd;

		for (size_t i = 0; i < n; i++) {
			unsigned r = (unsigned)rand_r(&seed) % 100;

			/* Mostly CRLF lines of varying length. */
			if (i > 0 && in[i - 1] == '\r')
				in[i] = r < 90 ? '\n' : 'x';
			else if (++line % 61 == 0 || r < 2)
				in[i] = '\r';
			else if (r < 3)
				in[i] = '\n';
			else
				in[i] = (char)('a' + r % 26);
		}
		for (size_t i = 0; i < n; i++) {
			if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n')
				continue;
			want[wlen++] = in[i];
			want_crlf += in[i] == '\n' ? 2 : 1;
		}
		assert_int_equal(mi_writer_open(u, &w, &error), MBOX_OK);
		for (size_t i = 0; i < n; i += pieces[pc]) {
			size_t k = n - i < pieces[pc] ? n - i : pieces[pc];

			assert_int_equal(mi_writer_write(&w, in + i, k), 0);
		}
		assert_int_equal(mi_writer_finish(u, &w, 1000000000, &error),
		                 MBOX_OK);
		path = xasprintf("%s/tmp/%s", f->dir, w.tmpname);
		got = read_file(path, &glen);
		assert_int_equal(glen, wlen);
		assert_memory_equal(got, want, wlen);
		assert_int_equal(w.lf_size, wlen);
		assert_int_equal(w.crlf_size, want_crlf);
		fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(mi_file_crlf_size(fd, &size), 0);
		assert_int_equal(size, want_crlf);
		close(fd);
		mi_writer_abort(u, &w);
		free(path);
		free(got);
		free(want);
		free(in);
	}
	mbox_user_close(&u);
}

static void
two_handles(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *a = open_user(f, 0), *b = open_user(f, 0);
	struct mbox *ba, *bb;
	struct mbox_msg *ch;
	uint32_t *exp, *failed;
	size_t nch, nexp, nfailed;
	uint64_t since;
	char *error = NULL;

	ba = open_box(a, "INBOX");
	bb = open_box(b, "INBOX");
	since = mbox_get_info(bb)->highestmodseq;
	assert_int_equal(append(a, "INBOX", "from a\r\n", 0, NULL), 1);
	assert_int_equal(append(b, "INBOX", "from b\r\n", 0, NULL), 2);
	sync_box(ba);
	sync_box(bb);
	assert_int_equal(mbox_get_info(ba)->messages, 2);
	assert_int_equal(mbox_get_info(bb)->messages, 2);
	uint32_t one = 1;
	assert_int_equal(mbox_store_flags(ba, &one, 1, MBOX_FLAGS_ADD,
	                                  MBOX_F_SEEN | MBOX_F_DELETED, NULL, 0,
	                                  &failed, &nfailed, &error),
	                 MBOX_OK);
	sync_box(bb);
	assert_int_equal(
	    mbox_changes(bb, since, &ch, &nch, &exp, &nexp, &error), MBOX_OK);
	assert_int_equal(nch, 2);
	assert_int_equal(ch[0].flags, MBOX_F_SEEN | MBOX_F_DELETED);
	mbox_msg_free_list(&ch, nch);
	free(exp);
	since = mbox_get_info(bb)->highestmodseq;
	assert_int_equal(mbox_expunge(ba, NULL, 0, &exp, &nexp, &error),
	                 MBOX_OK);
	free(exp);
	sync_box(bb);
	assert_int_equal(
	    mbox_changes(bb, since, &ch, &nch, &exp, &nexp, &error), MBOX_OK);
	assert_int_equal(nexp, 1);
	assert_int_equal(exp[0], 1);
	free(exp);
	mbox_msg_free_list(&ch, nch);
	/* b creates, a sees; a renames, b's open box keeps working. */
	assert_int_equal(mbox_create(b, "Shared", 0, &error), MBOX_OK);
	assert_int_equal(append(a, "Shared", "s\r\n", 0, NULL), 1);
	mbox_close(&bb);
	bb = open_box(b, "Shared");
	assert_int_equal(mbox_rename(a, "Shared", "Renamed", &error), MBOX_OK);
	assert_int_equal(append(a, "Renamed", "t\r\n", 0, NULL), 2);
	sync_box(bb);
	assert_int_equal(mbox_get_info(bb)->messages, 2);
	assert_string_equal(mbox_get_info(bb)->name, "Renamed");
	{
		char *msg = read_msg(bb, 2);

		assert_string_equal(msg, "t\r\n");
		free(msg);
	}
	/* Deleted under b's feet. */
	assert_int_equal(mbox_delete(a, "Renamed", &error), MBOX_OK);
	assert_int_equal(mbox_sync(bb, &error), MBOX_ERR_NOTFOUND);
	free(error);
	mbox_close(&bb);
	mbox_close(&ba);
	mbox_user_close(&a);
	mbox_user_close(&b);
}

/* Processes appending at once: every message gets its own UID. */
static void
concurrent_processes(void **state)
{
	struct fixture *f = *state;
	enum { PROCS = 4, EACH = 25 };
	struct mbox_user *u = open_user(f, 0);
	struct mbox *box;
	struct mbox_msg *list;
	pid_t pids[PROCS];
	size_t n;
	char *error = NULL;

	for (int p = 0; p < PROCS; p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			struct mbox_user *cu = NULL;
			int bad = 0;

			if (mbox_user_open(f->dir, 0, &cu, &error) != MBOX_OK)
				_exit(2);
			for (int i = 0; i < EACH; i++) {
				uint32_t uid;
				char *m = xasprintf("proc %d msg %d\r\n", p, i);

				if (mbox_append(cu, i % 2 ? "INBOX" : "Archive",
				                m, strlen(m), 0, NULL, 0, NULL,
				                &uid, &error) != MBOX_OK)
					bad = 1;
				free(m);
			}
			mbox_user_close(&cu);
			_exit(bad);
		}
	}
	/* The parent syncs meanwhile. */
	box = open_box(u, "INBOX");
	for (int i = 0; i < 20; i++)
		sync_box(box);
	for (int p = 0; p < PROCS; p++) {
		int st;

		assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	sync_box(box);
	assert_int_equal(mbox_messages(box, &list, &n, &error), MBOX_OK);
	assert_int_equal(n, PROCS * (EACH / 2));
	for (size_t i = 0; i < n; i++)
		assert_int_equal(list[i].uid, i + 1);
	mbox_msg_free_list(&list, n);
	mbox_close(&box);
	{
		struct mbox_info info = status(u, "Archive");

		assert_int_equal(info.messages, PROCS * (EACH - EACH / 2));
		assert_int_equal(info.uidnext, info.messages + 1);
		mbox_info_clear(&info);
	}
	mbox_user_close(&u);
}

/* Threads, each with its own handle on the same user (as the store's
 * worker threads have, one session each). */
struct thread_arg {
	const char *dir;
	int id;
	int failures;
};

static void *
thread_main(void *p)
{
	struct thread_arg *a = p;
	struct mbox_user *u = NULL;
	struct mbox *box = NULL;
	char *error = NULL;

	if (mbox_user_open(a->dir, 0, &u, &error) != MBOX_OK) {
		free(error);
		a->failures++;
		return NULL;
	}
	if (mbox_open(u, "INBOX", false, &box, &error) != MBOX_OK) {
		free(error);
		a->failures++;
	}
	for (int i = 0; i < 20; i++) {
		char *m = xasprintf("thread %d msg %d\r\n", a->id, i);
		uint32_t uid;

		if (mbox_append(u, "INBOX", m, strlen(m), 0, NULL, 0, NULL,
		                &uid, &error) != MBOX_OK) {
			free(error);
			error = NULL;
			a->failures++;
		}
		free(m);
		if (box != NULL && mbox_sync(box, &error) != MBOX_OK) {
			free(error);
			error = NULL;
			a->failures++;
		}
	}
	mbox_close(&box);
	mbox_user_close(&u);
	return NULL;
}

static void
concurrent_threads(void **state)
{
	struct fixture *f = *state;
	enum { THREADS = 4 };
	struct mbox_user *u = open_user(f, 0);
	struct thread_arg args[THREADS];
	pthread_t th[THREADS];
	struct mbox_info info;

	for (int i = 0; i < THREADS; i++) {
		args[i] = (struct thread_arg){.dir = f->dir, .id = i};
		assert_int_equal(
		    pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].failures, 0);
	}
	info = status(u, "INBOX");
	assert_int_equal(info.messages, THREADS * 20);
	assert_int_equal(info.uidnext, THREADS * 20 + 1);
	mbox_info_clear(&info);
	mbox_user_close(&u);
}

static void
limits(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 100);
	struct mbox *box;
	struct mbox_msg *list;
	uint32_t uid, uv, *failed, *src, *dst;
	size_t n, nfailed, nc;
	char *error = NULL, kw[64 * 8];
	size_t o = 0;

	/* Keywords: 64 distinct per mailbox. */
	for (int i = 0; i < MBOX_KEYWORDS_MAX; i++)
		o += (size_t)snprintf(kw + o, sizeof(kw) - o, "%sk%d",
		                      i ? " " : "", i);
	append(u, "INBOX", "a\r\n", 0, kw);
	assert_int_equal(mbox_append(u, "INBOX", "b\r\n", 3, 0, "K0 another", 0,
	                             &uv, &uid, &error),
	                 MBOX_ERR_LIMIT);
	free(error);
	/* Known ones (any case) still go; spelled as first seen. */
	uid = append(u, "INBOX", "b\r\n", 0, "K0 K63");
	box = open_box(u, "INBOX");
	assert_int_equal(mbox_messages(box, &list, &n, &error), MBOX_OK);
	assert_int_equal(n, 2);
	assert_string_equal(list[1].keywords, "k0 k63");
	mbox_msg_free_list(&list, n);
	assert_int_equal(mbox_store_flags(box, &uid, 1, MBOX_FLAGS_ADD, 0,
	                                  "new1", 0, &failed, &nfailed, &error),
	                 MBOX_ERR_LIMIT);
	free(error);
	static const char *const badkw[] = {"\\Seen", "a(b", "a]",
	                                    "x*",     "q\"", "\x01"};
	for (size_t i = 0; i < sizeof(badkw) / sizeof(badkw[0]); i++) {
		assert_int_equal(mbox_store_flags(box, &uid, 1, MBOX_FLAGS_ADD,
		                                  0, badkw[i], 0, &failed,
		                                  &nfailed, &error),
		                 MBOX_ERR_BADNAME);
		free(error);
	}
	/* Quota 100 bytes: 6 used so far. */
	{
		char big[120];

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_int_equal(mbox_append(u, "INBOX", big, 90, 0, NULL, 0,
		                             &uv, &uid, &error),
		                 MBOX_OK);
		assert_int_equal(mbox_append(u, "INBOX", big, 10, 0, NULL, 0,
		                             &uv, &uid, &error),
		                 MBOX_ERR_QUOTA);
		free(error);
		int fd = msg_fd_from(big);
		assert_int_equal(
		    mbox_deliver(u, "INBOX", NULL, fd, 0, &uid, &error),
		    MBOX_ERR_QUOTA);
		free(error);
		close(fd);
		uint32_t u3 = 3;
		assert_int_equal(mbox_copy(box, &u3, 1, "Trash", false, &uv,
		                           &src, &dst, &nc, &error),
		                 MBOX_ERR_QUOTA);
		free(error);
		/* MOVE adds nothing. */
		assert_int_equal(mbox_copy(box, &u3, 1, "Trash", true, &uv,
		                           &src, &dst, &nc, &error),
		                 MBOX_OK);
		free(src);
		free(dst);
		/* No file left behind by the refusals. */
		char *p = xasprintf("%s/tmp", f->dir);
		assert_int_equal(count_dir(p), 0);
		free(p);
		p = xasprintf("%s/cur", f->dir);
		assert_int_equal(count_dir(p), 2);
		free(p);
	}
	/* Depth via CREATE. */
	assert_int_equal(
	    mbox_create(u, "1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17", 0,
	                &error),
	    MBOX_ERR_BADNAME);
	free(error);
	mbox_close(&box);
	mbox_user_close(&u);
}

/* TERN_MAILBOX_BIG=N: N messages made as files (as an import would),
 * indexed once, then opened with nothing changed: that must be cheap. */
static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *snap_path(const struct fixture *f);

static void
big_mailbox(void **state)
{
	struct fixture *f = *state;
	const char *env = getenv("TERN_MAILBOX_BIG");
	long count = env != NULL ? atol(env) : 2000;
	struct mbox_user *u = open_user(f, 0);
	struct mbox *box;
	struct mbox_msg *list;
	size_t n;
	double t0, t_import, t_open, t_list, t_rescan;
	char *error = NULL, *cur = xasprintf("%s/cur", f->dir);
	int dfd = open(cur, O_RDONLY | O_DIRECTORY);
	static const char body[] = "Subject: bulk\n\nhello\n";

	assert_true(dfd >= 0);
	mi_snap_min = 1000;
	for (long i = 0; i < count; i++) {
		char name[128];
		int fd;

		snprintf(name, sizeof(name),
		         "%ld.M%ldP1Q1.bulk,S=%zu,W=%zu:2,%s",
		         1500000000 + i / 2, i, strlen(body), strlen(body) + 3,
		         i % 3 ? "S" : "");
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, body, strlen(body)),
		                 (ssize_t)strlen(body));
		close(fd);
	}
	close(dfd);
	/* As if written a while ago: the scan's record of the mtimes then
	 * holds (a directory changed within the last second is always
	 * scanned again). */
	age_dirs(f->dir);
	t0 = now_s();
	box = open_box(u, "INBOX");
	t_import = now_s() - t0;
	/* The counters of a scan this big are added once, not by the
	 * trigger for each row (MI_BULK_ROWS). */
	assert_true(count >= MI_BULK_ROWS);
	assert_int_equal(mbox_get_info(box)->messages, (uint32_t)count);
	assert_int_equal(mbox_get_info(box)->unseen, (uint32_t)(count + 2) / 3);
	assert_int_equal(mbox_get_info(box)->deleted, 0);
	assert_int_equal(mbox_get_info(box)->size,
	                 (uint64_t)count * (strlen(body) + 3));
	/* Its commit left the checkpoint to the next one, and only that
	 * commit. */
	{
		sqlite3_stmt *st;

		assert_int_equal(sqlite3_prepare_v2(u->db,
		                                    "PRAGMA wal_autocheckpoint",
		                                    -1, &st, NULL),
		                 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(st, 0),
		                 MI_WAL_AUTOCHECKPOINT);
		sqlite3_finalize(st);
	}
	/* The rows of a scan into an empty index went straight into a
	 * snapshot, which the list below is read from. */
	{
		char *snap = snap_path(f);

		assert_int_equal(access(snap, F_OK), 0);
		free(snap);
	}
	mbox_close(&box);
	mbox_user_close(&u);

	u = open_user(f, 0);
	t0 = now_s();
	box = open_box(u, "INBOX");
	t_open = now_s() - t0;
	t0 = now_s();
	assert_int_equal(mbox_messages(box, &list, &n, &error), MBOX_OK);
	t_list = now_s() - t0;
	assert_int_equal(n, (size_t)count);
	/* UIDs in the order of the times the names start with (the
	 * INTERNALDATE guessed from them); two files share each second. */
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(list[i].uid, i + 1);
		assert_int_equal(list[i].internaldate,
		                 1500000000 + (long)i / 2);
		/* and then in name order: file i is seen unless i % 3 == 0 */
		assert_int_equal((list[i].flags & MBOX_F_SEEN) != 0,
		                 i % 3 != 0);
		assert_int_equal(list[i].size, strlen(body) + 3);
	}
	mbox_msg_free_list(&list, n);
	/* One file from another tool: a full scan of cur/. */
	{
		char *p = xasprintf("%s/new/1900000000.M1P1.late", f->dir);

		write_file(p, body);
		free(p);
	}
	t0 = now_s();
	sync_box(box);
	t_rescan = now_s() - t0;
	assert_int_equal(mbox_get_info(box)->messages, (uint32_t)count + 1);
	/* Every file matched its row: none was expunged and added again. */
	assert_int_equal(mbox_get_info(box)->uidnext, (uint32_t)count + 2);
	/* and the trigger is back for the rows that follow. */
	assert_int_equal(mbox_get_info(box)->unseen,
	                 (uint32_t)(count + 2) / 3 + 1);
	append(u, "INBOX", "x\r\n", MBOX_F_DELETED, NULL);
	sync_box(box);
	assert_int_equal(mbox_get_info(box)->messages, (uint32_t)count + 2);
	assert_int_equal(mbox_get_info(box)->deleted, 1);
	fprintf(stderr,
	        "# big mailbox: %ld messages: import %.3f s, open %.4f s, "
	        "messages %.4f s, rescan after a change %.3f s\n",
	        count, t_import, t_open, t_list, t_rescan);
	assert_true(t_open + t_list < 1.0);
	mbox_close(&box);
	mbox_user_close(&u);
	free(cur);
	mi_snap_min = 8192;
}

/* Age index.db and its WAL too (mbox_quiet trusts no fresh stamp). */
static void
age_all(const char *maildir)
{
	struct timespec t[2];
	char *p;

	age_dirs(maildir);
	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec -= 10;
	t[1] = t[0];
	p = xasprintf("%s/index.db", maildir);
	assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);
	free(p);
	p = xasprintf("%s/index.db-wal", maildir);
	(void)utimensat(AT_FDCWD, p, t, 0);
	free(p);
}

/* An IDLE session's poll without SQLite: quiet until a change made
 * through the index (another handle) or by another tool (new/); the
 * closed index opens again on its own. */
static void
quiet_and_closed(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 0), *other;
	struct mbox *box;
	uint64_t modseq;
	uint32_t uidnext;
	char *error = NULL, *p;

	append(u, "INBOX", "one\r\n", 0, NULL);
	box = open_box(u, "INBOX");
	mbox_quiet_mark(box);
	assert_false(mbox_quiet(box)); /* stamps too fresh to trust */
	age_all(f->dir);
	mbox_quiet_mark(box);
	assert_true(mbox_quiet(box));
	/* The last connection closes without a checkpoint: the files stay
	 * as they were. */
	mbox_user_trim(u, MBOX_TRIM_CLOSE);
	assert_true(mbox_quiet(box));

	other = open_user(f, 0);
	append(other, "INBOX", "two\r\n", 0, NULL);
	assert_false(mbox_quiet(box));
	/* The closed index opens again for the next question. */
	assert_int_equal(mbox_peek(u, "INBOX", &modseq, &uidnext, &error),
	                 MBOX_OK);
	assert_int_equal(uidnext, 3);

	age_all(f->dir);
	mbox_quiet_mark(box);
	mbox_user_trim(u, MBOX_TRIM_CLOSE);
	assert_true(mbox_quiet(box));
	p = xasprintf("%s/new/1600000000.M9P9.tool", f->dir);
	write_file(p, "Subject: x\n\nbody\n");
	free(p);
	assert_false(mbox_quiet(box));
	assert_int_equal(mbox_peek(u, "INBOX", &modseq, &uidnext, &error),
	                 MBOX_OK);
	assert_int_equal(uidnext, 4);
	mbox_close(&box);
	mbox_user_close(&other);
	mbox_user_close(&u);
}

/* An index.db of schema version 1 (before size_known and the text index)
 * opens as the current version, its messages' sizes known, and says its
 * messages need indexing. */
static void
schema_upgrade(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 0);
	struct mbox_msg *list;
	struct mbox *box;
	sqlite3 *db;
	char *error = NULL, *path;
	size_t n;

	append(u, "INBOX", "one\r\n", 0, NULL);
	mbox_user_close(&u);
	path = xasprintf("%s/index.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db,
	                 "DROP TABLE msgtext_terms;"
	                 "DROP TABLE msgtext;"
	                 "DROP TABLE text_next;"
	                 "DROP INDEX messages_size_todo;"
	                 "ALTER TABLE messages DROP COLUMN size_known;"
	                 "UPDATE schema_version SET version = 1;",
	                 NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);

	u = open_user(f, 0);
	box = open_box(u, "INBOX");
	assert_true(mbox_text_lagging(u));
	assert_int_equal(mbox_messages(box, &list, &n, &error), MBOX_OK);
	assert_int_equal(n, 1);
	assert_true(list[0].size_known);
	assert_int_equal(list[0].size, 5);
	mbox_msg_free_list(&list, n);
	mbox_close(&box);
	mbox_user_close(&u);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	{
		sqlite3_stmt *st;

		assert_int_equal(sqlite3_prepare_v2(db,
		                                    "SELECT version FROM "
		                                    "schema_version",
		                                    -1, &st, NULL),
		                 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(st, 0), MI_SCHEMA_VERSION);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	free(path);
}

/* The rows of INBOX as the index has them, in UID order. */
static size_t
truth_rows(const struct fixture *f, struct mbox_msg **list_r)
{
	char *path = xasprintf("%s/index.db", f->dir);
	struct mbox_msg *list = NULL;
	sqlite3_stmt *st;
	sqlite3 *db;
	size_t n = 0;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_prepare_v2(db,
	                       "SELECT uid, modseq, flags, keywords,"
	                       " internaldate, size, size_known FROM messages"
	                       " WHERE mailbox_id = (SELECT id FROM mailboxes"
	                       " WHERE name = 'INBOX') ORDER BY uid",
	                       -1, &st, NULL),
	    SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *kw = sqlite3_column_text(st, 3);

		list = xreallocarray(list, n + 1, sizeof(*list));
		list[n++] = (struct mbox_msg){
		    .uid = (uint32_t)sqlite3_column_int64(st, 0),
		    .modseq = (uint64_t)sqlite3_column_int64(st, 1),
		    .flags = (uint32_t)sqlite3_column_int64(st, 2),
		    .keywords = kw != NULL && kw[0] != '\0'
		                    ? xstrdup((const char *)kw)
		                    : NULL,
		    .internaldate = sqlite3_column_int64(st, 4),
		    .size = (uint64_t)sqlite3_column_int64(st, 5),
		    .size_known = sqlite3_column_int(st, 6) != 0,
		};
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(path);
	*list_r = list;
	return n;
}

/* mbox_messages() and mbox_messages_each() agree with the rows. */
static void
expect_rows(const struct fixture *f, struct mbox *box)
{
	struct mbox_msg *want, *got;
	size_t nwant = truth_rows(f, &want), ngot;
	char *error = NULL;

	assert_int_equal(mbox_messages(box, &got, &ngot, &error), MBOX_OK);
	assert_int_equal(ngot, nwant);
	for (size_t i = 0; i < nwant; i++) {
		assert_int_equal(got[i].uid, want[i].uid);
		assert_int_equal(got[i].modseq, want[i].modseq);
		assert_int_equal(got[i].flags, want[i].flags);
		assert_int_equal(got[i].internaldate, want[i].internaldate);
		assert_int_equal(got[i].size, want[i].size);
		assert_int_equal(got[i].size_known, want[i].size_known);
		if (want[i].keywords == NULL)
			assert_null(got[i].keywords);
		else
			assert_string_equal(got[i].keywords, want[i].keywords);
	}
	mbox_msg_free_list(&got, ngot);
	mbox_msg_free_list(&want, nwant);
}

/* INBOX's snapshot file (its path malloc'd). */
static char *
snap_path(const struct fixture *f)
{
	char *path = xasprintf("%s/index.db", f->dir), *snap;
	sqlite3_stmt *st;
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
	                                    "SELECT id FROM mailboxes"
	                                    " WHERE name = 'INBOX'",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snap = xasprintf("%s/index.snap.%lld", f->dir,
	                 (long long)sqlite3_column_int64(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(path);
	return snap;
}

/* INBOX's snapshot (NULL when there is none); *len_r its length. */
static void *
snap_blob(const struct fixture *f, size_t *len_r)
{
	char *path = snap_path(f);
	FILE *fp = fopen(path, "rb");
	void *data = NULL;
	long n;

	*len_r = 0;
	free(path);
	if (fp == NULL)
		return NULL;
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	rewind(fp);
	data = xmalloc((size_t)n + 1);
	assert_int_equal(fread(data, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	*len_r = (size_t)n;
	return data;
}

static void
db_exec(const struct fixture *f, const char *sql)
{
	char *path = xasprintf("%s/index.db", f->dir);
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	free(path);
}

/* A big mailbox's list comes from its snapshot and the changes since;
 * whatever the snapshot misses, the list stays the index's. */
static void
snapshot_list(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 0);
	struct mbox *box;
	uint32_t *failed, *exp, three = 3, five = 5;
	size_t nfailed, nexp, len, len2;
	void *blob, *blob2;
	char *error = NULL, *p;

	mi_snap_min = 4;
	for (int i = 0; i < 16; i++)
		append(u, "INBOX", "Subject: x\r\n\r\nbody\r\n",
		       i == 1 ? MBOX_F_SEEN : 0, i == 1 ? "$Work" : NULL);
	box = open_box(u, "INBOX");
	assert_null(snap_blob(f, &len));
	expect_rows(f, box);
	blob = snap_blob(f, &len);
	assert_non_null(blob);

	/* Flags, keywords, an expunge and a new message: merged in, and the
	 * snapshot is left as it was (up to a quarter of it may change). */
	assert_int_equal(mbox_store_flags(box, &three, 1, MBOX_FLAGS_ADD,
	                                  MBOX_F_FLAGGED, "$Later", 0, &failed,
	                                  &nfailed, &error),
	                 MBOX_OK);
	free(failed);
	assert_int_equal(mbox_store_flags(box, &five, 1, MBOX_FLAGS_ADD,
	                                  MBOX_F_DELETED, NULL, 0, &failed,
	                                  &nfailed, &error),
	                 MBOX_OK);
	free(failed);
	assert_int_equal(mbox_expunge(box, &five, 1, &exp, &nexp, &error),
	                 MBOX_OK);
	assert_int_equal(nexp, 1);
	free(exp);
	append(u, "INBOX", "new\r\n", 0, NULL);
	sync_box(box);
	expect_rows(f, box);
	blob2 = snap_blob(f, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(blob2, blob, len);
	free(blob2);

	/* A row gone behind the index's back (no MODSEQ): the counter
	 * disagrees with the merge, the rows win, the snapshot is new. */
	db_exec(f, "DELETE FROM messages WHERE uid = 2");
	expect_rows(f, box);
	blob2 = snap_blob(f, &len2);
	assert_non_null(blob2);
	assert_true(len2 != len || memcmp(blob2, blob, len) != 0);
	free(blob2);
	free(blob);

	/* A damaged one is not used, and is replaced. */
	p = snap_path(f);
	assert_int_equal(unlink(p), 0);
	write_file(p, "TSN1");
	free(p);
	expect_rows(f, box);
	blob = snap_blob(f, &len);
	assert_true(len > 4);
	free(blob);

	/* Sizes read later carry no MODSEQ: the snapshot goes. */
	mbox_close(&box);
	age_dirs(f->dir);
	p = xasprintf("%s/new/1600000000.M1P1.otherhost", f->dir);
	write_file(p, "From: tool\n\nbody\n");
	free(p);
	box = open_box(u, "INBOX");
	expect_rows(f, box);
	assert_non_null((blob = snap_blob(f, &len)));
	free(blob);
	{
		struct mbox_msg *all;
		size_t n = truth_rows(f, &all);
		uint32_t uid = 0;
		uint64_t size;

		for (size_t i = 0; i < n; i++)
			if (!all[i].size_known)
				uid = all[i].uid;
		mbox_msg_free_list(&all, n);
		assert_true(uid > 0);

		assert_int_equal(mbox_sizes(box, &uid, 1, &size, NULL, &error),
		                 MBOX_OK);
		assert_int_equal(size, strlen("From: tool\r\n\r\nbody\r\n"));
	}
	assert_null(snap_blob(f, &len));
	expect_rows(f, box);

	/* A mailbox grown small again keeps no snapshot. */
	{
		struct mbox_msg *all;
		size_t n = truth_rows(f, &all);
		uint32_t uids[32];

		assert_true(n > 4 && n <= 32);
		for (size_t i = 0; i < n; i++)
			uids[i] = all[i].uid;
		mbox_msg_free_list(&all, n);
		assert_int_equal(mbox_store_flags(box, uids, n - 1,
		                                  MBOX_FLAGS_ADD,
		                                  MBOX_F_DELETED, NULL, 0,
		                                  &failed, &nfailed, &error),
		                 MBOX_OK);
		free(failed);
		assert_int_equal(
		    mbox_expunge(box, NULL, 0, &exp, &nexp, &error), MBOX_OK);
		assert_int_equal(nexp, n - 1);
		free(exp);
	}
	expect_rows(f, box);
	assert_null(snap_blob(f, &len));
	mbox_close(&box);
	mi_snap_min = 8192;
	mbox_user_close(&u);
}

/* Reads in UID order take file names from rows read ahead; a name made
 * stale meanwhile (another session's flag change renames the file, an
 * expunge removes it) is looked up again. */
static void
read_ahead(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *a = open_user(f, 0), *b = open_user(f, 0);
	struct mbox *ba, *bb;
	uint32_t *failed, *exp, seven = 7, eight = 8;
	size_t nfailed, nexp;
	char *error = NULL, *msg, *want;
	struct buf out;

	for (int i = 1; i <= 10; i++) {
		want = xasprintf("message %d\r\n", i);
		append(a, "INBOX", want, 0, NULL);
		free(want);
	}
	ba = open_box(a, "INBOX");
	bb = open_box(b, "INBOX");
	for (uint32_t uid = 1; uid <= 4; uid++) {
		msg = read_msg(ba, uid);
		want = xasprintf("message %u\r\n", uid);
		assert_string_equal(msg, want);
		free(want);
		free(msg);
	}
	assert_true(a->win.n > 0); /* read ahead past 7 and 8 */
	assert_true(a->win.ah.hi >= 8);
	assert_int_equal(mbox_store_flags(bb, &seven, 1, MBOX_FLAGS_ADD,
	                                  MBOX_F_FLAGGED, NULL, 0, &failed,
	                                  &nfailed, &error),
	                 MBOX_OK);
	free(failed);
	assert_int_equal(mbox_store_flags(bb, &eight, 1, MBOX_FLAGS_ADD,
	                                  MBOX_F_DELETED, NULL, 0, &failed,
	                                  &nfailed, &error),
	                 MBOX_OK);
	free(failed);
	assert_int_equal(mbox_expunge(bb, &eight, 1, &exp, &nexp, &error),
	                 MBOX_OK);
	free(exp);
	for (uint32_t uid = 5; uid <= 10; uid++) {
		buf_init(&out, 0);
		if (uid == 8) {
			assert_int_equal(mbox_read(ba, uid, &out, &error),
			                 MBOX_ERR_NOTFOUND);
			free(error);
			error = NULL;
			buf_free(&out);
			continue;
		}
		buf_free(&out);
		msg = read_msg(ba, uid);
		want = xasprintf("message %u\r\n", uid);
		assert_string_equal(msg, want);
		free(want);
		free(msg);
	}
	/* A command's end forgets it. */
	mbox_user_trim(a, MBOX_TRIM_CACHE);
	assert_int_equal(a->win.n, 0);
	mbox_close(&ba);
	mbox_close(&bb);
	mbox_user_close(&a);
	mbox_user_close(&b);
}

/* Cache values wait for a write and are read ahead in UID order; what a
 * reader sees is what was set, missing ones missing. */
static void
cache_batches(void **state)
{
	struct fixture *f = *state;
	struct mbox_user *u = open_user(f, 0);
	struct mbox *box;
	char *v, want[32];
	size_t len;

	for (int i = 1; i <= 12; i++)
		append(u, "INBOX", "x\r\n", 0, NULL);
	box = open_box(u, "INBOX");
	for (uint32_t uid = 1; uid <= 12; uid++) {
		if (uid == 5)
			continue;
		snprintf(want, sizeof(want), "value %u", uid);
		mbox_cache_set(box, uid, "f", want, strlen(want));
	}
	mbox_cache_set(box, 3, "g", "other", 5);
	/* Waiting, and still answered. */
	assert_true(u->ncw > 0);
	assert_int_equal(mbox_cache_get(box, 3, "g", &v, &len), 1);
	assert_string_equal(v, "other");
	free(v);
	mbox_user_trim(u, MBOX_TRIM_CACHE);
	assert_int_equal(u->ncw, 0);
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t uid = 1; uid <= 12; uid++) {
			int r = mbox_cache_get(box, uid, "f", &v, &len);

			if (uid == 5) {
				assert_int_equal(r, 0);
				continue;
			}
			assert_int_equal(r, 1);
			snprintf(want, sizeof(want), "value %u", uid);
			assert_string_equal(v, want);
			assert_int_equal(len, strlen(want));
			free(v);
		}
		assert_true(u->cwin.n > 0); /* read ahead */
		assert_int_equal(mbox_cache_get(box, 3, "g", &v, &len), 1);
		assert_string_equal(v, "other");
		free(v);
		assert_int_equal(mbox_cache_get(box, 4, "g", &v, &len), 0);
		mbox_user_trim(u, MBOX_TRIM_CACHE);
	}
	mbox_close(&box);
	mbox_user_close(&u);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(user_defaults, setup, teardown),
	    cmocka_unit_test(name_validation),
	    cmocka_unit_test(name_escaping),
	    cmocka_unit_test_setup_teardown(create_rename_delete, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(rename_overlapping, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(rename_inbox, setup, teardown),
	    cmocka_unit_test_setup_teardown(append_read_back, setup, teardown),
	    cmocka_unit_test_setup_teardown(uids_and_modseq, setup, teardown),
	    cmocka_unit_test_setup_teardown(changes_since, setup, teardown),
	    cmocka_unit_test_setup_teardown(store_unchangedsince, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(copy_and_move, setup, teardown),
	    cmocka_unit_test_setup_teardown(deliver, setup, teardown),
	    cmocka_unit_test_setup_teardown(deliver_many, setup, teardown),
	    cmocka_unit_test_setup_teardown(other_tools, setup, teardown),
	    cmocka_unit_test_setup_teardown(schema_upgrade, setup, teardown),
	    cmocka_unit_test_setup_teardown(snapshot_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(read_ahead, setup, teardown),
	    cmocka_unit_test_setup_teardown(cache_batches, setup, teardown),
	    cmocka_unit_test_setup_teardown(quiet_and_closed, setup, teardown),
	    cmocka_unit_test_setup_teardown(reindex, setup, teardown),
	    cmocka_unit_test_setup_teardown(rename_crash_recovery, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(writer_trickle, setup, teardown),
	    cmocka_unit_test_setup_teardown(writer_spans, setup, teardown),
	    cmocka_unit_test_setup_teardown(two_handles, setup, teardown),
	    cmocka_unit_test_setup_teardown(concurrent_processes, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(concurrent_threads, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(big_mailbox, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
