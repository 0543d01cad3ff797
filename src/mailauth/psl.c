/* The Public Suffix List: the list file into an open-addressing hash table
 * of normalized suffixes, and the registrable domain of a name (see psl.h).
 * SECURITY: names looked up are untrusted: normalized into a bounded stack
 * buffer, then at most one table probe sequence per label. The table is
 * built from the trusted list file under PSL_FILE_MAX and PSL_RULES_MAX and
 * never written after psl_parse() returns. */
#include "mailauth/psl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "core/buf.h"
#include "core/xmalloc.h"
#include "mail/address.h"

/* What the list says about one suffix S (flags of its slot). */
enum {
	PSL_F_RULE = 1 << 0,      /* "S": S is a public suffix */
	PSL_F_WILDCARD = 1 << 1,  /* "*.S": every child of S is one */
	PSL_F_EXCEPTION = 1 << 2, /* "!S": S is not, its parent is */
};

#define PSL_SLOTS_MIN 1024

struct psl_slot {
	uint32_t hash;
	uint32_t off; /* of the name in psl->names */
	uint16_t len; /* 0: empty slot */
	uint8_t flags;
};

struct psl {
	struct buf names; /* the suffixes, back to back, no separators */
	struct psl_slot *slots;
	size_t nslots; /* a power of two, at least twice used */
	size_t used;
	size_t rules, skipped;
};

/* FNV-1a: the keys come from the trusted list, so nobody can aim
 * collisions at the table; lookups only probe. */
static uint32_t
hash_bytes(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static struct psl_slot *
slot_find(const struct psl *psl, const char *key, size_t len, uint32_t hash)
{
	size_t mask = psl->nslots - 1;

	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		struct psl_slot *s = &psl->slots[i];

		if (s->len == 0)
			return s;
		if (s->hash == hash && s->len == len &&
		    memcmp(psl->names.data + s->off, key, len) == 0)
			return s;
	}
}

static void
table_grow(struct psl *psl)
{
	struct psl_slot *old = psl->slots;
	size_t oldn = psl->nslots;

	psl->nslots = oldn == 0 ? PSL_SLOTS_MIN : oldn * 2;
	psl->slots = xcalloc(psl->nslots, sizeof(*psl->slots));
	for (size_t i = 0; i < oldn; i++) {
		const struct psl_slot *o = &old[i];

		if (o->len != 0)
			*slot_find(psl, (const char *)psl->names.data + o->off,
			           o->len, o->hash) = *o;
	}
	free(old);
}

static void
table_add(struct psl *psl, const char *key, size_t len, uint8_t flags)
{
	uint32_t hash = hash_bytes(key, len);
	struct psl_slot *s;

	if ((psl->used + 1) * 2 > psl->nslots)
		table_grow(psl);
	s = slot_find(psl, key, len, hash);
	if (s->len == 0) {
		s->hash = hash;
		s->off = (uint32_t)psl->names.len;
		s->len = (uint16_t)len;
		/* names.max is 0: the rule and name bounds keep it small */
		if (buf_append(&psl->names, key, len) < 0)
			abort();
		psl->used++;
	}
	s->flags |= flags;
}

static uint8_t
table_get(const struct psl *psl, const char *key, size_t len)
{
	return slot_find(psl, key, len, hash_bytes(key, len))->flags;
}

static bool
ascii_label_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int
psl_domain_normalize(const char *name, size_t len, char *out, size_t outlen)
{
	size_t start = 0, o = 0, nlabels = 0;

	if (len == 0 || len > PSL_INPUT_MAX || outlen == 0 || name[0] == '.' ||
	    name[len - 1] == '.')
		return -1;
	while (start < len) {
		const char *dot = memchr(name + start, '.', len - start);
		size_t end = dot != NULL ? (size_t)(dot - name) : len;
		size_t n = end - start;
		char alabel[ADDRESS_DOMAIN_MAX + 1];
		const char *src = name + start;
		bool ascii = true;

		if (n == 0 || ++nlabels > PSL_LABELS_MAX)
			return -1;
		for (size_t i = 0; i < n; i++) {
			if ((unsigned char)src[i] >= 0x80)
				ascii = false;
		}
		if (!ascii) {
			/* IDNA2008 through mail/address, one label at a time
			 * so that '_' in the other labels stays allowed */
			if (address_domain_normalize(src, n, alabel, NULL) < 0)
				return -1;
			src = alabel;
			n = strlen(alabel);
		}
		if (n > PSL_LABEL_MAX || o + (o > 0) + n > PSL_NAME_MAX ||
		    o + (o > 0) + n >= outlen)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)src[i];

			if (!ascii_label_char(c))
				return -1;
			out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
		}
		start = end + 1;
	}
	out[o] = '\0';
	return (int)o;
}

/* One rule line, cut at the first whitespace: "S", "*.S" or "!S". */
static void
parse_rule(struct psl *psl, const char *p, size_t n)
{
	char norm[PSL_NAME_MAX + 1];
	uint8_t flags = PSL_F_RULE;
	int len;

	if (n > 0 && p[0] == '!') {
		flags = PSL_F_EXCEPTION;
		p++;
		n--;
	} else if (n >= 2 && p[0] == '*' && p[1] == '.') {
		flags = PSL_F_WILDCARD;
		p += 2;
		n -= 2;
	}
	/* a wildcard anywhere but leftmost (the list has none) */
	if (memchr(p, '*', n) != NULL || memchr(p, '!', n) != NULL ||
	    (len = psl_domain_normalize(p, n, norm, sizeof(norm))) < 0) {
		psl->skipped++;
		return;
	}
	table_add(psl, norm, (size_t)len, flags);
	psl->rules++;
}

struct psl *
psl_parse(const char *data, size_t len, char **error_r)
{
	struct psl *psl;
	size_t pos = 0;

	if (len > PSL_FILE_MAX) {
		*error_r = xasprintf("list over %d bytes", PSL_FILE_MAX);
		return NULL;
	}
	psl = xcalloc(1, sizeof(*psl));
	buf_init(&psl->names, 0);
	table_grow(psl);
	while (pos < len) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - line) : len - pos;
		size_t w = 0;

		pos += n + (nl != NULL);
		/* "Each line is only read up to the first whitespace" */
		while (w < n && line[w] != ' ' && line[w] != '\t' &&
		       line[w] != '\r' && line[w] != '\v' && line[w] != '\f')
			w++;
		if (w == 0 || (w >= 2 && line[0] == '/' && line[1] == '/'))
			continue;
		if (w > PSL_LINE_MAX) {
			psl->skipped++;
			continue;
		}
		if (psl->rules >= PSL_RULES_MAX) {
			*error_r =
			    xasprintf("list over %d rules", PSL_RULES_MAX);
			psl_free(&psl);
			return NULL;
		}
		parse_rule(psl, line, w);
	}
	if (psl->rules == 0) {
		*error_r = xstrdup("no rules in the list");
		psl_free(&psl);
		return NULL;
	}
	return psl;
}

struct psl *
psl_load(const char *path, char **error_r)
{
	struct psl *psl;
	struct stat st;
	char *data, *err = NULL;
	size_t len = 0, size;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		*error_r = xasprintf("open(%s): %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		*error_r = xasprintf("fstat(%s): %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > PSL_FILE_MAX) {
		*error_r =
		    xasprintf("%s: %s", path,
		              !S_ISREG(st.st_mode) ? "not a regular file"
		                                   : "over the size limit");
		close(fd);
		return NULL;
	}
	/* one byte more than fstat said, to notice a file that grew */
	size = (size_t)st.st_size + 1;
	data = xmalloc(size);
	while (len < size) {
		ssize_t r = read(fd, data + len, size - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*error_r =
			    xasprintf("read(%s): %s", path, strerror(errno));
			free(data);
			close(fd);
			return NULL;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len == size) {
		*error_r = xasprintf("%s: changed while being read", path);
		free(data);
		close(fd);
		return NULL;
	}
	close(fd);
	psl = psl_parse(data, len, &err);
	free(data);
	if (psl == NULL) {
		*error_r = xasprintf("%s: %s", path, err);
		free(err);
	}
	return psl;
}

void
psl_free(struct psl **psl)
{
	if (*psl == NULL)
		return;
	buf_free(&(*psl)->names);
	free((*psl)->slots);
	xfree(psl);
}

size_t
psl_rule_count(const struct psl *psl)
{
	return psl->rules;
}

size_t
psl_skipped_count(const struct psl *psl)
{
	return psl->skipped;
}

int
psl_registrable_domain(const struct psl *psl, const char *name, char *out,
                       size_t outlen)
{
	char norm[PSL_NAME_MAX + 1];
	size_t starts[PSL_LABELS_MAX], nl = 0, suffix = 1, exception = 0;
	uint8_t prev = 0;
	int len;

	/* out may be name itself: read it all before writing */
	len = name == NULL
	          ? -1
	          : psl_domain_normalize(name, strnlen(name, PSL_INPUT_MAX + 1),
	                                 norm, sizeof(norm));
	if (len < 0 || (size_t)len >= outlen) {
		if (outlen > 0)
			out[0] = '\0';
		return -1;
	}
	starts[nl++] = 0;
	for (int i = 0; i < len; i++) {
		if (norm[i] == '.')
			starts[nl++] = (size_t)i + 1;
	}
	/* k = labels of the suffix tried, from the right; prev holds the
	 * flags of the suffix one label shorter (for "*.S") */
	for (size_t k = 1; k <= nl; k++) {
		const char *s = norm + starts[nl - k];
		uint8_t f = table_get(psl, s, (size_t)len - starts[nl - k]);

		if (f & PSL_F_EXCEPTION)
			exception = k;
		if ((f & PSL_F_RULE) || (prev & PSL_F_WILDCARD))
			suffix = k;
		prev = f;
	}
	/* an exception rule prevails; its public suffix drops a label */
	if (exception > 0)
		suffix = exception - 1;
	if (nl <= suffix) {
		memcpy(out, norm, (size_t)len + 1);
		return 1;
	}
	memcpy(out, norm + starts[nl - suffix - 1],
	       (size_t)len - starts[nl - suffix - 1] + 1);
	return 0;
}
