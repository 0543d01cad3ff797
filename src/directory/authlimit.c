/* Brute-force protection for logins: failures counted per client IP and per
 * account in a sliding window, growing answer delays, IP bans kept in
 * state.db. Not thread-safe: one struct authlimit belongs to one loop.
 * SECURITY: ip and account strings come from peers; every table (IPs,
 * accounts, bans) is bounded at AUTHLIMIT_TRACK_MAX entries, the least
 * recently updated dropped first, and hashed with a per-process random
 * SipHash key, so neither a flood of addresses nor chosen collisions can
 * exhaust memory or CPU. SQL is prepared statements with bound values. */
#include "directory/authlimit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/xmalloc.h"

/* The window is cut into this many slots (a power of two); a failure is
 * counted for between about (SLOTS-1)/SLOTS and all of the window, whatever
 * max_failures is, with fixed memory per entry. */
#define AUTHLIMIT_SLOTS 16
/* Longer account names are tracked by their first bytes (RFC 5321 paths are
 * shorter); merging such names can only make limits stricter. */
#define AUTHLIMIT_ACCOUNT_MAX 320
/* An address text with a zone ("fe80::1%eth0") is cut at the '%'. */
#define AUTHLIMIT_IP_TEXT_MAX 64
/* Expired bans dropped per new ban, so a ban costs bounded work. */
#define AUTHLIMIT_SWEEP_MAX 16
#define AUTHLIMIT_BUSY_TIMEOUT_MS 5000

/* One IP, account or ban; a table is a chained hash map plus an LRU list. */
struct entry {
	struct entry *hnext;
	struct entry *prev, *next; /* LRU: head is the most recently updated */
	uint64_t hash;
	uint64_t until_ms;                /* bans */
	uint64_t slot;                    /* failures: newest slot number */
	uint32_t counts[AUTHLIMIT_SLOTS]; /* failures per slot */
	size_t keylen;
	char key[];
};

struct table {
	struct entry **buckets;
	size_t mask; /* buckets - 1 */
	size_t count;
	struct entry *head, *tail;
};

/* Every address is kept as 16 bytes of IPv6, IPv4 as ::ffff:a.b.c.d, so one
 * prefix match serves both families (and "::/0" also covers IPv4). */
struct net {
	uint8_t addr[16];
	unsigned bits;
};

struct addr {
	uint8_t addr[16];
	char text[INET6_ADDRSTRLEN]; /* canonical: a.b.c.d or inet_ntop v6 */
	size_t len;
};

struct authlimit {
	struct authlimit_policy policy; /* trusted points to nets, not kept */
	uint64_t slot_ms;
	uint64_t sipkey[2];
	struct net *nets;
	size_t nnets;
	struct table ips, accounts, bans;
	sqlite3 *db;
	sqlite3_stmt *st_ban, *st_unban;
};

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0,    0,
                                            0, 0, 0, 0, 0xff, 0xff};

/* SipHash-2-4 (Aumasson, Bernstein). */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                               \
	do {                                                                   \
		v0 += v1;                                                      \
		v1 = ROTL(v1, 13);                                             \
		v1 ^= v0;                                                      \
		v0 = ROTL(v0, 32);                                             \
		v2 += v3;                                                      \
		v3 = ROTL(v3, 16);                                             \
		v3 ^= v2;                                                      \
		v0 += v3;                                                      \
		v3 = ROTL(v3, 21);                                             \
		v3 ^= v0;                                                      \
		v2 += v1;                                                      \
		v1 = ROTL(v1, 17);                                             \
		v1 ^= v2;                                                      \
		v2 = ROTL(v2, 32);                                             \
	} while (0)

static uint64_t
load64_le(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t
siphash24(const uint64_t key[2], const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t v0 = 0x736f6d6570736575ULL ^ key[0];
	uint64_t v1 = 0x646f72616e646f6dULL ^ key[1];
	uint64_t v2 = 0x6c7967656e657261ULL ^ key[0];
	uint64_t v3 = 0x7465646279746573ULL ^ key[1];
	uint64_t m, b = (uint64_t)len << 56;
	size_t left = len & 7;
	const uint8_t *end = p + len - left;

	for (; p != end; p += 8) {
		m = load64_le(p);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t i = 0; i < left; i++)
		b |= (uint64_t)p[i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* Tables. */

static void
table_init(struct table *t)
{
	size_t n = 1;

	while (n < AUTHLIMIT_TRACK_MAX)
		n <<= 1;
	t->buckets = xcalloc(n, sizeof(*t->buckets));
	t->mask = n - 1;
	t->count = 0;
	t->head = t->tail = NULL;
}

static void
lru_unlink(struct table *t, struct entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		t->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		t->tail = e->prev;
	e->prev = e->next = NULL;
}

static void
lru_push_head(struct table *t, struct entry *e)
{
	e->prev = NULL;
	e->next = t->head;
	if (t->head != NULL)
		t->head->prev = e;
	else
		t->tail = e;
	t->head = e;
}

static void
lru_push_tail(struct table *t, struct entry *e)
{
	e->next = NULL;
	e->prev = t->tail;
	if (t->tail != NULL)
		t->tail->next = e;
	else
		t->head = e;
	t->tail = e;
}

static void
lru_touch(struct table *t, struct entry *e)
{
	if (t->head == e)
		return;
	lru_unlink(t, e);
	lru_push_head(t, e);
}

static struct entry *
table_find(const struct table *t, const char *key, size_t len, uint64_t hash)
{
	struct entry *e;

	for (e = t->buckets[hash & t->mask]; e != NULL; e = e->hnext) {
		if (e->hash == hash && e->keylen == len &&
		    memcmp(e->key, key, len) == 0)
			return e;
	}
	return NULL;
}

static void
table_remove(struct table *t, struct entry *e)
{
	struct entry **pp = &t->buckets[e->hash & t->mask];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(t, e);
	t->count--;
	free(e);
}

/* A new zeroed entry, not yet in the LRU list; the caller makes room. */
static struct entry *
table_add(struct table *t, const char *key, size_t len, uint64_t hash)
{
	struct entry *e = xcalloc(1, sizeof(*e) + len + 1);
	struct entry **bucket = &t->buckets[hash & t->mask];

	e->hash = hash;
	e->keylen = len;
	memcpy(e->key, key, len);
	e->hnext = *bucket;
	*bucket = e;
	t->count++;
	return e;
}

static void
table_free(struct table *t)
{
	struct entry *e, *next;

	for (e = t->head; e != NULL; e = next) {
		next = e->next;
		free(e);
	}
	xfree(&t->buckets);
	t->count = 0;
	t->head = t->tail = NULL;
}

/* Failure counting in window slots. */

static uint64_t
window_count(const struct authlimit *al, const struct entry *e, uint64_t now)
{
	uint64_t now_slot = now / al->slot_ms, d, sum = 0;

	/* A clock that went back counts everything as recent. */
	d = now_slot > e->slot ? now_slot - e->slot : 0;
	if (d >= AUTHLIMIT_SLOTS)
		return 0;
	for (uint64_t i = 0; i < AUTHLIMIT_SLOTS - d; i++)
		sum += e->counts[(e->slot - i) & (AUTHLIMIT_SLOTS - 1)];
	return sum;
}

static void
window_add(const struct authlimit *al, struct entry *e, uint64_t now)
{
	uint64_t now_slot = now / al->slot_ms;
	uint32_t *c;

	if (now_slot > e->slot) {
		uint64_t d = now_slot - e->slot;

		if (d >= AUTHLIMIT_SLOTS)
			memset(e->counts, 0, sizeof(e->counts));
		else
			for (uint64_t i = 1; i <= d; i++)
				e->counts[(e->slot + i) &
				          (AUTHLIMIT_SLOTS - 1)] = 0;
		e->slot = now_slot;
	}
	c = &e->counts[e->slot & (AUTHLIMIT_SLOTS - 1)];
	if (*c < UINT32_MAX)
		(*c)++;
}

/* The live failure count for key, dropping an entry that has aged out. */
static uint64_t
failures_of(struct authlimit *al, struct table *t, const char *key, size_t len,
            uint64_t now)
{
	struct entry *e;
	uint64_t n;

	if (len == 0)
		return 0;
	e = table_find(t, key, len, siphash24(al->sipkey, key, len));
	if (e == NULL)
		return 0;
	n = window_count(al, e, now);
	if (n == 0)
		table_remove(t, e);
	return n;
}

static uint64_t
failure_add(struct authlimit *al, struct table *t, const char *key, size_t len,
            uint64_t now)
{
	uint64_t hash = siphash24(al->sipkey, key, len);
	struct entry *e = table_find(t, key, len, hash);

	if (e == NULL) {
		if (t->count >= AUTHLIMIT_TRACK_MAX)
			table_remove(t, t->tail);
		e = table_add(t, key, len, hash);
		e->slot = now / al->slot_ms;
		lru_push_head(t, e);
	} else {
		lru_touch(t, e);
	}
	window_add(al, e, now);
	return window_count(al, e, now);
}

static uint64_t
delay_for(const struct authlimit_policy *p, uint64_t failures)
{
	uint64_t shift;

	if (failures == 0 || p->delay_base_ms == 0)
		return 0;
	shift = failures - 1;
	if (shift >= 64 || p->delay_base_ms > (p->delay_max_ms >> shift))
		return p->delay_max_ms;
	return p->delay_base_ms << shift;
}

static size_t
account_len(const char *account)
{
	return account != NULL ? strnlen(account, AUTHLIMIT_ACCOUNT_MAX) : 0;
}

/* Addresses and networks. */

/* Parse ip (IPv4, IPv6, IPv4-mapped IPv6; a "%zone" is ignored) into its
 * canonical text and 16-byte form. */
static int
addr_parse(const char *ip, struct addr *a)
{
	char host[AUTHLIMIT_IP_TEXT_MAX];
	size_t len = strcspn(ip, "%");
	struct in6_addr in6;
	struct in_addr in4;

	if (len == 0 || len >= sizeof(host))
		return -1;
	memcpy(host, ip, len);
	host[len] = '\0';
	if (inet_pton(AF_INET, host, &in4) == 1) {
		memcpy(a->addr, v4mapped_prefix, 12);
		memcpy(a->addr + 12, &in4, 4);
	} else if (inet_pton(AF_INET6, host, &in6) == 1) {
		memcpy(a->addr, &in6, 16);
	} else {
		return -1;
	}
	if (memcmp(a->addr, v4mapped_prefix, 12) == 0) {
		memcpy(&in4, a->addr + 12, 4);
		if (inet_ntop(AF_INET, &in4, a->text, sizeof(a->text)) == NULL)
			return -1;
	} else {
		memcpy(&in6, a->addr, 16);
		if (inet_ntop(AF_INET6, &in6, a->text, sizeof(a->text)) == NULL)
			return -1;
	}
	a->len = strlen(a->text);
	return 0;
}

/* "192.0.2.0/24", "2001:db8::/32" or one address; host bits are cleared,
 * as the config check accepts them. */
static int
net_parse(const char *s, struct net *n)
{
	const char *slash = strchr(s, '/');
	size_t hlen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	char host[AUTHLIMIT_IP_TEXT_MAX];
	struct addr a;
	unsigned max, bits = 0;
	const char *p;

	if (hlen == 0 || hlen >= sizeof(host) || memchr(s, '%', hlen) != NULL)
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (addr_parse(host, &a) < 0)
		return -1;
	/* Written as IPv4: a prefix of 32 bits, counted inside ::ffff:0:0/96.
	 */
	max = strchr(host, ':') == NULL ? 32 : 128;
	if (slash == NULL) {
		bits = max;
	} else {
		if (slash[1] == '\0')
			return -1;
		for (p = slash + 1; *p != '\0'; p++) {
			if (*p < '0' || *p > '9')
				return -1;
			bits = bits * 10 + (unsigned)(*p - '0');
			if (bits > max)
				return -1;
		}
	}
	n->bits = max == 32 ? bits + 96 : bits;
	memcpy(n->addr, a.addr, 16);
	for (unsigned i = 0; i < 16; i++) {
		unsigned keep = n->bits > i * 8 ? n->bits - i * 8 : 0;

		if (keep < 8)
			n->addr[i] &= (uint8_t)(0xff00u >> keep);
	}
	return 0;
}

static bool
net_match(const struct net *n, const uint8_t addr[16])
{
	unsigned full = n->bits / 8, rest = n->bits % 8;

	if (memcmp(n->addr, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((n->addr[full] ^ addr[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

static bool
trusted(const struct authlimit *al, const struct addr *a)
{
	for (size_t i = 0; i < al->nnets; i++) {
		if (net_match(&al->nets[i], a->addr))
			return true;
	}
	return false;
}

/* A caller bug (peer addresses come from the kernel or a binary PROXY
 * header, always valid): the IP part is skipped, the account still counts. */
static int
addr_parse_logged(const char *ip, struct addr *a)
{
	if (ip != NULL && addr_parse(ip, a) == 0)
		return 0;
	log_warn(NULL, "event=authlimit-bad-ip ip=%s", ip != NULL ? ip : "");
	return -1;
}

/* SQLite. */

static int
db_exec(sqlite3 *db, const char *sql, char **error_r)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		rc = SQLITE_OK;
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		*error_r = xasprintf("%s: %s", sql, sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

static int
db_step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
db_ban(struct authlimit *al, const char *ip, size_t len, uint64_t until)
{
	sqlite3_stmt *st = al->st_ban;

	if (sqlite3_bind_text(st, 1, ip, (int)len, SQLITE_TRANSIENT) !=
	        SQLITE_OK ||
	    sqlite3_bind_int64(
	        st, 2, until > INT64_MAX ? INT64_MAX : (int64_t)until) !=
	        SQLITE_OK ||
	    db_step_done(st) < 0) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		log_error(NULL,
		          "event=authlimit-db-error op=ban ip=%.*s error=%s",
		          (int)len, ip, sqlite3_errmsg(al->db));
		return -1;
	}
	return 0;
}

/* -1 on error, else the number of rows deleted. */
static int
db_unban(struct authlimit *al, const char *ip, size_t len)
{
	sqlite3_stmt *st = al->st_unban;

	if (sqlite3_bind_text(st, 1, ip, (int)len, SQLITE_TRANSIENT) !=
	        SQLITE_OK ||
	    db_step_done(st) < 0) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		log_error(NULL,
		          "event=authlimit-db-error op=unban ip=%.*s error=%s",
		          (int)len, ip, sqlite3_errmsg(al->db));
		return -1;
	}
	return sqlite3_changes(al->db);
}

static void
ban_drop(struct authlimit *al, struct entry *e)
{
	db_unban(al, e->key, e->keylen);
	table_remove(&al->bans, e);
}

/* Create the file 0600 ourselves: SQLite would use 0644, and its -wal and
 * -shm files copy the mode of the database. */
static int
db_create_file(const char *path, char **error_r)
{
	struct stat st;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0) {
		*error_r = xasprintf("open(%s): %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*error_r = xasprintf("%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((st.st_mode & 077) != 0 && fchmod(fd, 0600) < 0)
		log_warn(NULL, "event=authlimit-chmod path=%s error=%s", path,
		         strerror(errno));
	close(fd);
	return 0;
}

/* Rows written in another spelling ("::ffff:192.0.2.1", upper case): store
 * the canonical ones, so that an unban cannot miss a row. One transaction. */
static int
db_rewrite_bans(struct authlimit *al, char **error_r)
{
	char *ignored = NULL;
	struct entry *e;

	if (db_exec(al->db, "BEGIN IMMEDIATE", error_r) < 0)
		return -1;
	if (db_exec(al->db, "DELETE FROM bans", error_r) < 0)
		goto rollback;
	for (e = al->bans.head; e != NULL; e = e->next) {
		if (db_ban(al, e->key, e->keylen, e->until_ms) < 0) {
			*error_r = xasprintf("rewriting bans: %s",
			                     sqlite3_errmsg(al->db));
			goto rollback;
		}
	}
	if (db_exec(al->db, "COMMIT", error_r) < 0)
		goto rollback;
	return 0;
rollback:
	if (db_exec(al->db, "ROLLBACK", &ignored) < 0)
		free(ignored);
	return -1;
}

static int
db_load_bans(struct authlimit *al, char **error_r)
{
	static const char trim_sql[] =
	    "DELETE FROM bans WHERE ip NOT IN "
	    "(SELECT ip FROM bans ORDER BY until_ms DESC LIMIT ?)";
	static const char load_sql[] =
	    "SELECT ip, until_ms FROM bans ORDER BY until_ms DESC LIMIT ?";
	sqlite3_stmt *st = NULL;
	bool rewrite = false;
	int rc;

	/* Over the bound (a smaller build, a hand-edited file): keep the
	 * longest bans, as memory does. */
	rc = sqlite3_prepare_v2(al->db, trim_sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 1, AUTHLIMIT_TRACK_MAX);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_DONE)
		goto fail;

	rc = sqlite3_prepare_v2(al->db, load_sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int(st, 1, AUTHLIMIT_TRACK_MAX);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *ip = (const char *)sqlite3_column_text(st, 0);
		int64_t until = sqlite3_column_int64(st, 1);
		struct addr a;
		struct entry *e;
		uint64_t hash;

		rc = SQLITE_OK;
		if (ip == NULL || addr_parse(ip, &a) < 0) {
			log_warn(NULL, "event=authlimit-bad-ban ip=%s",
			         ip != NULL ? ip : "");
			continue;
		}
		hash = siphash24(al->sipkey, a.text, a.len);
		if (table_find(&al->bans, a.text, a.len, hash) != NULL)
			continue; /* rows come longest first */
		e = table_add(&al->bans, a.text, a.len, hash);
		e->until_ms = until > 0 ? (uint64_t)until : 0;
		/* Longest first, so the tail is the soonest to expire. */
		lru_push_tail(&al->bans, e);
		if (strcmp(ip, a.text) != 0)
			rewrite = true;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		goto fail;
	return rewrite ? db_rewrite_bans(al, error_r) : 0;
fail:
	*error_r = xasprintf("loading bans: %s", sqlite3_errmsg(al->db));
	return -1;
}

static int
db_open(struct authlimit *al, const char *path, char **error_r)
{
	int rc;

	if (db_create_file(path, error_r) < 0)
		return -1;
	rc = sqlite3_open_v2(path, &al->db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                         SQLITE_OPEN_NOFOLLOW,
	                     NULL);
	if (rc != SQLITE_OK) {
		*error_r = xasprintf("%s: %s", path,
		                     al->db != NULL ? sqlite3_errmsg(al->db)
		                                    : sqlite3_errstr(rc));
		return -1;
	}
	sqlite3_busy_timeout(al->db, AUTHLIMIT_BUSY_TIMEOUT_MS);
	/* A ban lost to a power cut is harmless: NORMAL is enough. */
	if (db_exec(al->db, "PRAGMA journal_mode=WAL", error_r) < 0 ||
	    db_exec(al->db, "PRAGMA synchronous=NORMAL", error_r) < 0 ||
	    db_exec(al->db,
	            "CREATE TABLE IF NOT EXISTS bans"
	            "(ip TEXT PRIMARY KEY, until_ms INTEGER)",
	            error_r) < 0)
		return -1;
	if (sqlite3_prepare_v2(al->db,
	                       "INSERT OR REPLACE INTO bans(ip, until_ms) "
	                       "VALUES(?, ?)",
	                       -1, &al->st_ban, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(al->db, "DELETE FROM bans WHERE ip = ?", -1,
	                       &al->st_unban, NULL) != SQLITE_OK) {
		*error_r = xasprintf("%s: %s", path, sqlite3_errmsg(al->db));
		return -1;
	}
	return db_load_bans(al, error_r);
}

/* API. */

struct authlimit *
authlimit_open(const char *state_db, const struct authlimit_policy *policy,
               char **error_r)
{
	struct authlimit *al;

	*error_r = NULL;
	if (policy->max_failures == 0 || policy->ban_ms == 0 ||
	    policy->window_ms < AUTHLIMIT_SLOTS) {
		*error_r = xasprintf("authlimit: max_failures and ban time "
		                     "must be positive, the window at least "
		                     "%d ms",
		                     AUTHLIMIT_SLOTS);
		return NULL;
	}
	al = xcalloc(1, sizeof(*al));
	al->policy = *policy;
	al->policy.trusted = NULL;
	al->policy.ntrusted = 0;
	/* Rounded down, so a failure never counts past the window. */
	al->slot_ms = policy->window_ms / AUTHLIMIT_SLOTS;
	if (policy->ntrusted > 0) {
		al->nets = xcalloc(policy->ntrusted, sizeof(*al->nets));
		for (size_t i = 0; i < policy->ntrusted; i++) {
			const char *s = policy->trusted[i];

			if (s == NULL || net_parse(s, &al->nets[i]) < 0) {
				*error_r = xasprintf(
				    "auth_trusted_networks: \"%s\" is not "
				    "an address or ADDRESS/BITS network",
				    s != NULL ? s : "");
				goto fail;
			}
		}
		al->nnets = policy->ntrusted;
	}
	if (getrandom(al->sipkey, sizeof(al->sipkey), 0) !=
	    (ssize_t)sizeof(al->sipkey)) {
		*error_r = xasprintf("getrandom: %s", strerror(errno));
		goto fail;
	}
	table_init(&al->ips);
	table_init(&al->accounts);
	table_init(&al->bans);
	if (db_open(al, state_db, error_r) < 0)
		goto fail;
	return al;
fail:
	authlimit_close(&al);
	return NULL;
}

void
authlimit_close(struct authlimit **alp)
{
	struct authlimit *al = *alp;

	if (al == NULL)
		return;
	sqlite3_finalize(al->st_ban);
	sqlite3_finalize(al->st_unban);
	if (al->db != NULL && sqlite3_close(al->db) != SQLITE_OK)
		log_error(NULL, "event=authlimit-db-error op=close error=%s",
		          sqlite3_errmsg(al->db));
	if (al->ips.buckets != NULL)
		table_free(&al->ips);
	if (al->accounts.buckets != NULL)
		table_free(&al->accounts);
	if (al->bans.buckets != NULL)
		table_free(&al->bans);
	free(al->nets);
	xfree(alp);
}

/* The live ban of a, dropping it (memory and file) once expired. */
static uint64_t
ban_left(struct authlimit *al, const struct addr *a, uint64_t now)
{
	struct entry *e = table_find(&al->bans, a->text, a->len,
	                             siphash24(al->sipkey, a->text, a->len));

	if (e == NULL)
		return 0;
	if (e->until_ms > now)
		return e->until_ms - now;
	ban_drop(al, e);
	return 0;
}

uint64_t
authlimit_banned(struct authlimit *al, const char *ip, uint64_t now_ms)
{
	struct addr a;

	if (addr_parse_logged(ip, &a) < 0 || trusted(al, &a))
		return 0;
	return ban_left(al, &a, now_ms);
}

uint64_t
authlimit_delay(struct authlimit *al, const char *ip, const char *account,
                uint64_t now_ms)
{
	uint64_t n_ip = 0, n_account;
	struct addr a;

	if (addr_parse_logged(ip, &a) == 0) {
		if (trusted(al, &a))
			return 0;
		n_ip = failures_of(al, &al->ips, a.text, a.len, now_ms);
	}
	n_account = failures_of(al, &al->accounts, account,
	                        account_len(account), now_ms);
	return delay_for(&al->policy, n_ip > n_account ? n_ip : n_account);
}

bool
authlimit_failure(struct authlimit *al, const char *ip, const char *account,
                  uint64_t now_ms)
{
	size_t alen = account_len(account);
	uint64_t n, until, hash;
	struct entry *e;
	struct addr a;

	if (alen > 0)
		failure_add(al, &al->accounts, account, alen, now_ms);
	if (addr_parse_logged(ip, &a) < 0 || trusted(al, &a))
		return false;
	/* Per single address; aggregating IPv6 by /64 (one host's usual
	 * share) is a later idea. */
	n = failure_add(al, &al->ips, a.text, a.len, now_ms);
	if (n < al->policy.max_failures || ban_left(al, &a, now_ms) > 0)
		return false;

	/* Expired bans sit at the tail (longest ones are loaded first, new
	 * ones get the same length): drop a few, then make room. */
	for (int i = 0; i < AUTHLIMIT_SWEEP_MAX && al->bans.tail != NULL &&
	                al->bans.tail->until_ms <= now_ms;
	     i++)
		ban_drop(al, al->bans.tail);
	until = now_ms > UINT64_MAX - al->policy.ban_ms
	            ? UINT64_MAX
	            : now_ms + al->policy.ban_ms;
	hash = siphash24(al->sipkey, a.text, a.len);
	e = table_find(&al->bans, a.text, a.len, hash);
	if (e == NULL) {
		if (al->bans.count >= AUTHLIMIT_TRACK_MAX)
			ban_drop(al, al->bans.tail);
		e = table_add(&al->bans, a.text, a.len, hash);
		lru_push_head(&al->bans, e);
	} else {
		lru_touch(&al->bans, e);
	}
	e->until_ms = until;
	/* Kept in memory even if the file write fails (logged). */
	db_ban(al, a.text, a.len, until);
	return true;
}

void
authlimit_success(struct authlimit *al, const char *ip, const char *account,
                  uint64_t now_ms)
{
	size_t alen = account_len(account);
	struct entry *e;

	(void)ip;
	(void)now_ms;
	if (alen == 0)
		return;
	e = table_find(&al->accounts, account, alen,
	               siphash24(al->sipkey, account, alen));
	if (e != NULL)
		table_remove(&al->accounts, e);
}

int
authlimit_unban(struct authlimit *al, const char *ip, char **error_r)
{
	struct entry *e;
	struct addr a;
	int deleted;

	*error_r = NULL;
	if (ip == NULL || addr_parse(ip, &a) < 0) {
		*error_r = xasprintf("\"%s\" is not an IP address",
		                     ip != NULL ? ip : "");
		return -1;
	}
	e = table_find(&al->bans, a.text, a.len,
	               siphash24(al->sipkey, a.text, a.len));
	if (e != NULL)
		table_remove(&al->bans, e);
	deleted = db_unban(al, a.text, a.len);
	if (deleted < 0) {
		*error_r =
		    xasprintf("unban %s: %s", a.text, sqlite3_errmsg(al->db));
		return -1;
	}
	return e != NULL || deleted > 0 ? 1 : 0;
}

int
authlimit_list_bans(struct authlimit *al, uint64_t now_ms, char ***ips_r,
                    uint64_t **until_ms_r, size_t *n_r, char **error_r)
{
	struct entry *e, *prev;
	size_t n = 0;

	*error_r = NULL;
	*ips_r = NULL;
	*until_ms_r = NULL;
	*n_r = 0;
	for (e = al->bans.tail; e != NULL; e = prev) {
		prev = e->prev;
		if (e->until_ms <= now_ms)
			ban_drop(al, e);
	}
	if (al->bans.count == 0)
		return 0;
	*ips_r = xcalloc(al->bans.count, sizeof(**ips_r));
	*until_ms_r = xcalloc(al->bans.count, sizeof(**until_ms_r));
	/* Soonest to expire first, roughly: oldest ban first. */
	for (e = al->bans.tail; e != NULL; e = e->prev) {
		(*ips_r)[n] = xstrdup(e->key);
		(*until_ms_r)[n] = e->until_ms;
		n++;
	}
	*n_r = n;
	return 0;
}
