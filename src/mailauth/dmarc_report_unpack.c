/* The containers of DMARC aggregate reports: the attachments of a report
 * message (src/mail's MIME parser and decoders), gzip (RFC 1952) and zip
 * (APPNOTE: central directory, stored and deflate members) through zlib.
 * SECURITY: all of it is untrusted. Output is capped at
 * DMARC_REPORT_XML_MAX and, past DMARC_REPORT_RATIO_FREE, at
 * DMARC_REPORT_RATIO_MAX bytes per compressed byte read (all the streams of
 * one container together), checked after each 64 KiB of output, so a
 * decompression bomb stops within a few MiB. Zip
 * offsets and sizes are checked against the archive before use; encrypted
 * members, zip64, multi-disk archives and other methods are refused;
 * member CRCs and sizes are verified. */
#include "mailauth/dmarc_report.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "core/xmalloc.h"
#include "mail/header.h"
#include "mail/mime.h"

#define INFLATE_CHUNK (64 * 1024)

/* Shown in messages: "20 MiB". */
#define XML_MAX_MIB (DMARC_REPORT_XML_MAX / (1024 * 1024))

static int unpack_fail(char **error_r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
unpack_fail(char **error_r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	*error_r = xvasprintf(fmt, ap);
	va_end(ap);
	return -1;
}

enum dmarc_report_format
dmarc_report_sniff(const void *data, size_t len)
{
	const unsigned char *p = data;
	/* data may be NULL when len is 0: no arithmetic on it then. */
	const unsigned char *end = len > 0 ? p + len : p;

	if (len >= 2 && p[0] == 0x1f && p[1] == 0x8b)
		return DMARC_REPORT_FMT_GZIP;
	if (len >= 4 && memcmp(p, "PK\3\4", 4) == 0)
		return DMARC_REPORT_FMT_ZIP;
	if (len >= 4 && memcmp(p, "PK\5\6", 4) == 0)
		return DMARC_REPORT_FMT_ZIP;
	if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p < end && *p == '<' ? DMARC_REPORT_FMT_XML
	                            : DMARC_REPORT_FMT_UNKNOWN;
}

void
dmarc_report_docs_clear(struct dmarc_report_docs *docs)
{
	for (size_t i = 0; i < docs->n; i++) {
		buf_free(&docs->xml[i]);
		free(docs->name[i]);
	}
	memset(docs, 0, sizeof(*docs));
}

/* ------------------------------------------------------------ inflate */

/* Bytes read and written so far by the streams of one container: the
 * ratio cap applies to all of them together, so that many small bombs do
 * not pass where one big one would not. */
struct budget {
	size_t in, out;
};

/* Inflate in[0..len) with zs (initialised by the caller for the format)
 * into out, which may grow to limit bytes. Stops at the end of the stream;
 * *used_r is the input consumed, and b counts what was read and written.
 * what names the container in messages. */
static int
inflate_bounded(z_stream *zs, const unsigned char *in, size_t len,
                struct buf *out, size_t limit, struct budget *b, size_t *used_r,
                const char *what, char **error_r)
{
	unsigned char *chunk = xmalloc(INFLATE_CHUNK);
	size_t produced = 0, used = 0;
	int zr, rc = -1;

	zs->next_in = (unsigned char *)in;
	zs->avail_in = (uInt)len;
	for (;;) {
		size_t n;

		zs->next_out = chunk;
		zs->avail_out = INFLATE_CHUNK;
		zr = inflate(zs, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
			unpack_fail(error_r, "%s: corrupt data (%s)", what,
			            zs->msg != NULL ? zs->msg
			                            : "inflate failed");
			break;
		}
		n = INFLATE_CHUNK - zs->avail_out;
		used = len - zs->avail_in;
		produced += n;
		if (n > limit - out->len || buf_append(out, chunk, n) < 0) {
			unpack_fail(error_r,
			            "%s: more than %u MiB uncompressed", what,
			            XML_MAX_MIB);
			break;
		}
		if (b->out + produced > DMARC_REPORT_RATIO_FREE &&
		    (b->out + produced) / DMARC_REPORT_RATIO_MAX >
		        b->in + used) {
			unpack_fail(error_r,
			            "%s: compresses more than %d:1 (a "
			            "decompression bomb?)",
			            what, DMARC_REPORT_RATIO_MAX);
			break;
		}
		if (zr == Z_STREAM_END) {
			*used_r = used;
			rc = 0;
			break;
		}
		if (zr == Z_BUF_ERROR || (n == 0 && zs->avail_in == 0)) {
			unpack_fail(error_r, "%s: truncated", what);
			break;
		}
	}
	free(chunk);
	b->in += used;
	b->out += produced;
	return rc;
}

int
dmarc_report_gunzip(const void *data, size_t len, struct buf *out,
                    char **error_r)
{
	const unsigned char *p = data;
	size_t pos = 0, start = out->len;
	struct budget b = {0, 0};
	z_stream zs;

	*error_r = NULL;
	if (len < 2 || p[0] != 0x1f || p[1] != 0x8b)
		return unpack_fail(error_r, "gzip: not gzip data");
	if (len > UINT32_MAX)
		return unpack_fail(error_r, "gzip: too large");
	memset(&zs, 0, sizeof(zs));
	/* 16 + 15: a gzip wrapper (header and CRC checked by zlib). */
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
		return unpack_fail(error_r, "gzip: cannot initialise zlib");
	/* Concatenated members (RFC 1952 §2.2) form one file. */
	while (pos < len) {
		size_t used = 0;

		if (pos > 0 &&
		    (len - pos < 2 || p[pos] != 0x1f || p[pos + 1] != 0x8b))
			break; /* trailing bytes, as gzip(1) ignores them */
		if (inflate_bounded(&zs, p + pos, len - pos, out,
		                    DMARC_REPORT_XML_MAX, &b, &used, "gzip",
		                    error_r) < 0) {
			inflateEnd(&zs);
			out->len = start;
			return -1;
		}
		pos += used;
		if (inflateReset(&zs) != Z_OK)
			break;
	}
	inflateEnd(&zs);
	return 0;
}

/* ------------------------------------------------------------ zip */

#define ZIP_LOCAL_SIG 0x04034b50u
#define ZIP_CENTRAL_SIG 0x02014b50u
#define ZIP_EOCD_SIG 0x06054b50u
#define ZIP_LOCAL_LEN 30
#define ZIP_CENTRAL_LEN 46
#define ZIP_EOCD_LEN 22
#define ZIP_COMMENT_MAX 0xffff
#define ZIP_FLAG_ENCRYPTED 0x0001u
#define ZIP_METHOD_STORED 0
#define ZIP_METHOD_DEFLATE 8
#define ZIP_NAME_SHOWN 64

static uint16_t
le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t
le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

struct zip_entry {
	const unsigned char *name;
	size_t name_len;
	uint16_t flags, method;
	uint32_t crc, csize, usize, offset;
};

/* A member name for messages and for the docs: printable ASCII, at most
 * ZIP_NAME_SHOWN bytes. */
static char *
zip_name_shown(const struct zip_entry *e)
{
	size_t n = e->name_len < ZIP_NAME_SHOWN ? e->name_len : ZIP_NAME_SHOWN;
	char *s = xmalloc(n + 1);

	for (size_t i = 0; i < n; i++)
		s[i] = e->name[i] >= 0x20 && e->name[i] < 0x7f
		           ? (char)e->name[i]
		           : '?';
	s[n] = '\0';
	return s;
}

static bool
zip_name_is_xml(const struct zip_entry *e)
{
	return e->name_len >= 4 &&
	       strncasecmp((const char *)e->name + e->name_len - 4, ".xml",
	                   4) == 0;
}

static bool
zip_is_file(const struct zip_entry *e)
{
	/* Directories end in "/"; macOS adds resource forks under
	 * __MACOSX/. */
	return e->name_len > 0 && e->name[e->name_len - 1] != '/' &&
	       !(e->name_len >= 9 && memcmp(e->name, "__MACOSX/", 9) == 0);
}

/* The end of central directory record: the last one in the final 64 KiB
 * plus its own size. Its offset, or -1. */
static ptrdiff_t
zip_find_eocd(const unsigned char *p, size_t len)
{
	size_t lowest;

	if (len < ZIP_EOCD_LEN)
		return -1;
	lowest = len - ZIP_EOCD_LEN > ZIP_COMMENT_MAX
	             ? len - ZIP_EOCD_LEN - ZIP_COMMENT_MAX
	             : 0;
	for (size_t i = len - ZIP_EOCD_LEN + 1; i-- > lowest;) {
		if (le32(p + i) == ZIP_EOCD_SIG &&
		    i + ZIP_EOCD_LEN + le16(p + i + 20) <= len)
			return (ptrdiff_t)i;
	}
	return -1;
}

/* One member into out (limit: the bytes still allowed in all). */
static int
zip_member(const unsigned char *p, size_t cd_offset, const struct zip_entry *e,
           struct buf *out, size_t limit, struct budget *b, const char *shown,
           char **error_r)
{
	const unsigned char *data;
	size_t start, used = 0;
	z_stream zs;
	char what[ZIP_NAME_SHOWN + 8];
	int rc;

	snprintf(what, sizeof(what), "zip %s", shown);
	if (e->flags & ZIP_FLAG_ENCRYPTED)
		return unpack_fail(error_r, "%s: encrypted", what);
	if (e->method != ZIP_METHOD_STORED && e->method != ZIP_METHOD_DEFLATE)
		return unpack_fail(error_r,
		                   "%s: compression method %u is not "
		                   "supported (only stored and deflate)",
		                   what, e->method);
	if ((size_t)e->offset + ZIP_LOCAL_LEN > cd_offset ||
	    le32(p + e->offset) != ZIP_LOCAL_SIG)
		return unpack_fail(error_r, "%s: bad local header offset",
		                   what);
	start = (size_t)e->offset + ZIP_LOCAL_LEN + le16(p + e->offset + 26) +
	        le16(p + e->offset + 28);
	if (start > cd_offset || e->csize > cd_offset - start)
		return unpack_fail(error_r,
		                   "%s: data past the end of the "
		                   "archive (truncated?)",
		                   what);
	data = p + start;
	if (e->usize > limit)
		return unpack_fail(error_r, "%s: more than %u MiB uncompressed",
		                   what, XML_MAX_MIB);
	if (e->method == ZIP_METHOD_STORED) {
		if (e->csize != e->usize)
			return unpack_fail(error_r, "%s: stored sizes differ",
			                   what);
		if (buf_append(out, data, e->csize) < 0)
			return unpack_fail(error_r,
			                   "%s: more than %u MiB uncompressed",
			                   what, XML_MAX_MIB);
		b->in += e->csize;
		b->out += e->csize;
	} else {
		memset(&zs, 0, sizeof(zs));
		/* -15: raw deflate, no wrapper. */
		if (inflateInit2(&zs, -MAX_WBITS) != Z_OK)
			return unpack_fail(error_r,
			                   "%s: cannot initialise zlib", what);
		rc = inflate_bounded(&zs, data, e->csize, out, limit, b, &used,
		                     what, error_r);
		inflateEnd(&zs);
		if (rc < 0)
			return -1;
	}
	if (out->len != e->usize)
		return unpack_fail(error_r,
		                   "%s: %zu bytes uncompressed, the directory "
		                   "says %u",
		                   what, out->len, e->usize);
	if (crc32(0, out->data, (uInt)out->len) != e->crc)
		return unpack_fail(error_r, "%s: CRC mismatch", what);
	return 0;
}

/* The central directory entry at *pos; moves *pos past it. */
static int
zip_entry(const unsigned char *p, size_t cd_end, size_t *pos,
          struct zip_entry *e, char **error_r)
{
	const unsigned char *c = p + *pos;
	size_t next;

	if (cd_end - *pos < ZIP_CENTRAL_LEN || le32(c) != ZIP_CENTRAL_SIG)
		return unpack_fail(error_r, "zip: bad central directory");
	next =
	    *pos + ZIP_CENTRAL_LEN + le16(c + 28) + le16(c + 30) + le16(c + 32);
	if (next > cd_end)
		return unpack_fail(error_r, "zip: bad central directory");
	e->flags = le16(c + 8);
	e->method = le16(c + 10);
	e->crc = le32(c + 16);
	e->csize = le32(c + 20);
	e->usize = le32(c + 24);
	e->name = c + ZIP_CENTRAL_LEN;
	e->name_len = le16(c + 28);
	e->offset = le32(c + 42);
	if (e->csize == UINT32_MAX || e->usize == UINT32_MAX ||
	    e->offset == UINT32_MAX)
		return unpack_fail(error_r, "zip: zip64 is not supported");
	*pos = next;
	return 0;
}

int
dmarc_report_unzip(const void *data, size_t len, struct dmarc_report_docs *docs,
                   char **error_r)
{
	const unsigned char *p = data, *eocd;
	struct zip_entry entries[DMARC_REPORT_ZIP_ENTRIES_MAX];
	size_t nentries, pos, cd_offset, cd_size, total = 0, nchosen = 0;
	struct budget b = {0, 0};
	bool any_xml = false;
	ptrdiff_t at;

	*error_r = NULL;
	memset(docs, 0, sizeof(*docs));
	if (len > UINT32_MAX)
		return unpack_fail(error_r, "zip: too large");
	if ((at = zip_find_eocd(p, len)) < 0)
		return unpack_fail(error_r, "zip: no central directory "
		                            "(truncated?)");
	eocd = p + at;
	if (le16(eocd + 4) != 0 || le16(eocd + 6) != 0 ||
	    le16(eocd + 8) != le16(eocd + 10))
		return unpack_fail(error_r, "zip: multi-disk archives are not "
		                            "supported");
	nentries = le16(eocd + 10);
	cd_size = le32(eocd + 12);
	cd_offset = le32(eocd + 16);
	if (nentries == 0xffff || cd_size == UINT32_MAX ||
	    cd_offset == UINT32_MAX)
		return unpack_fail(error_r, "zip: zip64 is not supported");
	if (cd_offset > (size_t)at || cd_size > (size_t)at - cd_offset)
		return unpack_fail(error_r, "zip: bad central directory "
		                            "(truncated?)");
	if (nentries > DMARC_REPORT_ZIP_ENTRIES_MAX)
		return unpack_fail(error_r, "zip: more than %d entries",
		                   DMARC_REPORT_ZIP_ENTRIES_MAX);
	pos = cd_offset;
	for (size_t i = 0; i < nentries; i++) {
		if (zip_entry(p, cd_offset + cd_size, &pos, &entries[i],
		              error_r) < 0)
			return -1;
		if (zip_is_file(&entries[i]) && zip_name_is_xml(&entries[i]))
			any_xml = true;
	}
	for (size_t i = 0; i < nentries; i++) {
		const struct zip_entry *e = &entries[i];
		char *shown;

		if (!zip_is_file(e) || (any_xml && !zip_name_is_xml(e)))
			continue;
		if (nchosen == DMARC_REPORT_MEMBERS_MAX) {
			dmarc_report_docs_clear(docs);
			return unpack_fail(error_r,
			                   "zip: more than %d report members",
			                   DMARC_REPORT_MEMBERS_MAX);
		}
		if (total == DMARC_REPORT_XML_MAX) {
			dmarc_report_docs_clear(docs);
			return unpack_fail(error_r,
			                   "zip: more than %u MiB uncompressed",
			                   XML_MAX_MIB);
		}
		shown = zip_name_shown(e);
		buf_init(&docs->xml[docs->n], DMARC_REPORT_XML_MAX - total);
		docs->name[docs->n] = shown;
		docs->n++;
		nchosen++;
		if (zip_member(p, cd_offset, e, &docs->xml[docs->n - 1],
		               DMARC_REPORT_XML_MAX - total, &b, shown,
		               error_r) < 0) {
			dmarc_report_docs_clear(docs);
			return -1;
		}
		total += docs->xml[docs->n - 1].len;
	}
	if (docs->n == 0)
		return unpack_fail(error_r, "zip: no file in the archive");
	return 0;
}

int
dmarc_report_unpack(const void *data, size_t len,
                    struct dmarc_report_docs *docs, char **error_r)
{
	*error_r = NULL;
	memset(docs, 0, sizeof(*docs));
	switch (dmarc_report_sniff(data, len)) {
	case DMARC_REPORT_FMT_XML:
		if (len > DMARC_REPORT_XML_MAX)
			return unpack_fail(error_r, "XML: more than %u MiB",
			                   XML_MAX_MIB);
		buf_init(&docs->xml[0], DMARC_REPORT_XML_MAX);
		docs->n = 1;
		buf_append(&docs->xml[0], data, len);
		return 0;
	case DMARC_REPORT_FMT_GZIP:
		buf_init(&docs->xml[0], DMARC_REPORT_XML_MAX);
		docs->n = 1;
		if (dmarc_report_gunzip(data, len, &docs->xml[0], error_r) <
		    0) {
			dmarc_report_docs_clear(docs);
			return -1;
		}
		return 0;
	case DMARC_REPORT_FMT_ZIP:
		return dmarc_report_unzip(data, len, docs, error_r);
	default:
		return unpack_fail(error_r, "neither XML, gzip nor zip");
	}
}

/* ------------------------------------------------------------ messages */

/* XML read from the attachments of one message, in all: past it the
 * remaining attachments are refused. */
#define MESSAGE_XML_MAX (2 * (size_t)DMARC_REPORT_XML_MAX)

struct items {
	struct dmarc_report_item *v;
	size_t n, cap;
	size_t parts;
	size_t xml_total;
};

static struct dmarc_report_item *
items_add(struct items *it, const char *filename)
{
	struct dmarc_report_item *item;

	if (it->n == it->cap) {
		it->cap = it->cap == 0 ? 4 : it->cap * 2;
		it->v = xreallocarray(it->v, it->cap, sizeof(it->v[0]));
	}
	item = &it->v[it->n++];
	memset(item, 0, sizeof(*item));
	item->filename = xstrdup(filename);
	return item;
}

static bool
name_is_report(const char *name)
{
	static const char *const suffixes[] = {".xml", ".gz", ".zip", ".gzip"};
	size_t len = strlen(name);

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		size_t n = strlen(suffixes[i]);

		if (len > n && strcasecmp(name + len - n, suffixes[i]) == 0)
			return true;
	}
	return false;
}

static bool
type_is_report(const struct mime_content *ct)
{
	static const char *const types[] = {
	    "application/gzip",
	    "application/x-gzip",
	    "application/zip",
	    "application/x-zip",
	    "application/x-zip-compressed",
	    "application/xml",
	    "text/xml",
	};
	char full[128];

	if (snprintf(full, sizeof(full), "%s/%s", ct->type, ct->subtype) >=
	    (int)sizeof(full))
		return false;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcasecmp(full, types[i]) == 0)
			return true;
	return false;
}

/* A parameter as UTF-8 into out (RFC 2231 "name*" or RFC 2047 words). */
static bool
param_decoded(const struct mime_content *ct, const char *name, struct buf *out)
{
	char ext[32];
	const char *v;

	snprintf(ext, sizeof(ext), "%s*", name);
	if ((v = mime_content_param(ct, ext)) != NULL)
		mime_param_decode(v, true, out);
	else if ((v = mime_content_param(ct, name)) != NULL)
		mime_param_decode(v, false, out);
	else
		return false;
	return true;
}

/* The attachment's file name: Content-Disposition filename, else
 * Content-Type name; control characters become '?'. malloc'd. */
static char *
part_filename(const struct mime_content *ct, const struct mime_content *disp)
{
	struct buf b;
	char *s;

	buf_init(&b, 0);
	if (disp == NULL || !param_decoded(disp, "filename", &b))
		param_decoded(ct, "name", &b);
	if (b.len > 200)
		b.len = 200;
	s = xstrndup(b.len > 0 ? (const char *)b.data : "", b.len);
	buf_free(&b);
	for (char *c = s; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	return s;
}

/* Each document of one attachment, parsed. */
static void
attachment(struct items *it, const char *body, size_t len, const char *filename)
{
	struct dmarc_report_docs docs;
	struct dmarc_report_item *item;
	char *error = NULL;

	if (it->xml_total >= MESSAGE_XML_MAX) {
		item = items_add(it, filename);
		item->error = xasprintf("not read: the reports of this message "
		                        "exceed %zu MiB",
		                        MESSAGE_XML_MAX / (1024 * 1024));
		return;
	}
	if (dmarc_report_unpack(body, len, &docs, &error) < 0) {
		item = items_add(it, filename);
		item->error = error;
		return;
	}
	for (size_t i = 0; i < docs.n; i++) {
		char *name = docs.name[i] != NULL
		                 ? xasprintf("%s/%s", filename, docs.name[i])
		                 : xstrdup(filename);

		item = items_add(it, name);
		free(name);
		it->xml_total += docs.xml[i].len;
		if (dmarc_report_parse(docs.xml[i].data, docs.xml[i].len,
		                       &item->feedback, &error) < 0)
			item->error = error;
		/* The XML is not needed once parsed. */
		buf_free(&docs.xml[i]);
	}
	dmarc_report_docs_clear(&docs);
}

static void
leaf_part(struct items *it, const struct mime_message *m,
          const struct mime_part *part)
{
	struct header_iter hi;
	struct header_field f;
	struct mime_content ct, disp;
	bool have_ct = false, have_disp = false;
	enum mime_cte cte = MIME_CTE_78BIT;
	struct buf tmp, body;
	char *filename;

	if ((part->flags & MIME_PART_IS_MIME) == 0)
		return;
	buf_init(&tmp, 0);
	header_iter_init(&hi, m->data + part->offset, part->hdr_size);
	while (header_iter_next(&hi, &f)) {
		if (!have_ct && header_field_is(&f, "Content-Type")) {
			buf_reset(&tmp);
			header_field_unfold(&f, &tmp);
			mime_content_type_parse((const char *)tmp.data, tmp.len,
			                        &ct);
			have_ct = true;
		} else if (!have_disp &&
		           header_field_is(&f, "Content-Disposition")) {
			buf_reset(&tmp);
			header_field_unfold(&f, &tmp);
			have_disp =
			    mime_disposition_parse((const char *)tmp.data,
			                           tmp.len, &disp) == 0;
		} else if (header_field_is(&f, "Content-Transfer-Encoding")) {
			buf_reset(&tmp);
			header_field_unfold(&f, &tmp);
			cte = mime_cte_parse((const char *)tmp.data, tmp.len);
		}
	}
	buf_free(&tmp);
	if (!have_ct)
		mime_content_type_parse("text/plain", 10, &ct);
	filename = part_filename(&ct, have_disp ? &disp : NULL);
	if (type_is_report(&ct) || name_is_report(filename)) {
		it->parts++;
		buf_init(&body, 0);
		mime_body_decode(m->data + part->offset + part->hdr_size,
		                 part->body_size, cte, &body);
		attachment(it, (const char *)body.data, body.len, filename);
		buf_free(&body);
	}
	free(filename);
	mime_content_clear(&ct);
	if (have_disp)
		mime_content_clear(&disp);
}

size_t
dmarc_report_from_message(const char *msg, size_t len,
                          struct dmarc_report_item **items_r)
{
	struct mime_message *m = mime_parse(msg, len);
	const struct mime_part *part = m->root;
	struct items it = {0};

	/* Depth first over the tree, without recursion: children, then the
	 * next sibling, then up. */
	while (part != NULL && it.parts < DMARC_REPORT_PARTS_MAX) {
		if (part->children != NULL) {
			part = part->children;
			continue;
		}
		leaf_part(&it, m, part);
		while (part != NULL && part->next == NULL)
			part = part->parent;
		if (part != NULL)
			part = part->next;
	}
	mime_message_free(&m);
	*items_r = it.v;
	return it.n;
}

void
dmarc_report_items_free(struct dmarc_report_item **items, size_t n)
{
	if (*items == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free((*items)[i].filename);
		free((*items)[i].error);
		dmarc_report_free(&(*items)[i].feedback);
	}
	xfree(items);
}
