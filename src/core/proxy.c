/* PROXY protocol v2 header parser: see proxy.h. Pure: bytes in, addresses
 * out, no I/O and no allocation.
 * SECURITY: the header comes straight from the network. Every length is
 * checked against what was declared and what was received before a byte is
 * read; anything the spec does not define, or that this server does not
 * support, is an error. Error strings live in a per-thread buffer that the
 * next call overwrites. */
#include "core/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define PP2_VERSION 2
#define PP2_CMD_LOCAL 0x0
#define PP2_CMD_PROXY 0x1

/* Byte 13: family in the high nibble, transport in the low one. */
#define PP2_FAM_UNSPEC 0x0
#define PP2_FAM_INET 0x1
#define PP2_FAM_INET6 0x2
#define PP2_FAM_UNIX 0x3
#define PP2_TRANS_UNSPEC 0x0
#define PP2_TRANS_STREAM 0x1
#define PP2_TRANS_DGRAM 0x2

#define PP2_ADDR_LEN_INET 12  /* 2 × 4 address + 2 × 2 port */
#define PP2_ADDR_LEN_INET6 36 /* 2 × 16 address + 2 × 2 port */

#define PP2_TLV_HEADER_LEN 3
#define PP2_TYPE_CRC32C 0x03
#define PP2_TYPE_UNIQUE_ID 0x05
#define PP2_TYPE_SSL 0x20
#define PP2_CRC32C_LEN 4
#define PP2_UNIQUE_ID_MAX 128
/* struct pp2_tlv_ssl: u8 client, u32 verify, then sub-TLVs. */
#define PP2_SSL_FIXED_LEN 5
#define PP2_CLIENT_SSL 0x01

static const uint8_t proxy_v2_sig[PROXY_V2_SIG_LEN] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};

/* What the address block of an accepted family byte looks like. */
struct proxy_family {
	int af; /* AF_UNSPEC, AF_INET or AF_INET6 */
	const char *name;
	size_t addr_len;
};

/* State gathered while walking the TLVs. */
struct proxy_tlv_state {
	bool have_crc;
	size_t crc_off; /* offset of the CRC32C value in the header */
	uint32_t crc_sent;
	bool have_ssl;
	bool ssl_client;
};

static _Thread_local char proxy_error[128];

static enum proxy_result __attribute__((format(printf, 2, 3)))
proxy_fail(const char **error_r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(proxy_error, sizeof(proxy_error), fmt, ap);
	va_end(ap);
	*error_r = proxy_error;
	return PROXY_ERROR;
}

static uint16_t
proxy_be16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t
proxy_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: the
 * header is at most ~1 KiB, so a table would buy nothing worth its state. */
static uint32_t
proxy_crc32c_update(uint32_t crc, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		for (int bit = 0; bit < 8; bit++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
	}
	return crc;
}

/* The checksum of the whole header with the 4 CRC bytes taken as zero. */
static uint32_t
proxy_crc32c_header(const uint8_t *hdr, size_t len, size_t crc_off)
{
	static const uint8_t zero[PP2_CRC32C_LEN];
	uint32_t crc = 0xFFFFFFFFu;

	crc = proxy_crc32c_update(crc, hdr, crc_off);
	crc = proxy_crc32c_update(crc, zero, sizeof(zero));
	crc = proxy_crc32c_update(crc, hdr + crc_off + PP2_CRC32C_LEN,
	                          len - crc_off - PP2_CRC32C_LEN);
	return crc ^ 0xFFFFFFFFu;
}

/* Byte 13. The spec lets a LOCAL receiver ignore the family, but we accept
 * only what we could parse anyway: TCP over IPv4/IPv6, or UNSPEC for LOCAL. */
static enum proxy_result
proxy_check_family(uint8_t cmd, uint8_t byte, struct proxy_family *fam_r,
                   const char **error_r)
{
	unsigned fam = byte >> 4, trans = byte & 0x0F;

	if (fam > PP2_FAM_UNIX)
		return proxy_fail(error_r, "unknown address family %u", fam);
	if (trans > PP2_TRANS_DGRAM)
		return proxy_fail(error_r, "unknown transport %u", trans);
	if (fam == PP2_FAM_UNIX)
		return proxy_fail(error_r, "family UNIX not supported");
	if (trans == PP2_TRANS_DGRAM)
		return proxy_fail(error_r, "transport DGRAM not supported");
	if (fam == PP2_FAM_UNSPEC && trans == PP2_TRANS_UNSPEC) {
		if (cmd != PP2_CMD_LOCAL)
			return proxy_fail(error_r,
			                  "family UNSPEC needs command LOCAL");
		*fam_r = (struct proxy_family){AF_UNSPEC, "UNSPEC", 0};
		return PROXY_DONE;
	}
	if (fam == PP2_FAM_UNSPEC || trans == PP2_TRANS_UNSPEC)
		return proxy_fail(error_r, "family byte 0x%02x mixes UNSPEC",
		                  byte);
	if (fam == PP2_FAM_INET)
		*fam_r =
		    (struct proxy_family){AF_INET, "INET", PP2_ADDR_LEN_INET};
	else
		*fam_r = (struct proxy_family){AF_INET6, "INET6",
		                               PP2_ADDR_LEN_INET6};
	return PROXY_DONE;
}

/* The fixed 16 bytes, checked as far as they have arrived so that a bad
 * header is refused as early as possible. *total_r is 16 + length. */
static enum proxy_result
proxy_check_fixed(const uint8_t *data, size_t len, struct proxy_family *fam_r,
                  size_t *total_r, const char **error_r)
{
	size_t n = len < PROXY_V2_SIG_LEN ? len : PROXY_V2_SIG_LEN;
	unsigned ver, cmd, hlen;

	if (memcmp(data, proxy_v2_sig, n) != 0)
		return proxy_fail(error_r, "bad signature");
	if (len <= PROXY_V2_SIG_LEN)
		return PROXY_NEED_MORE;
	ver = data[12] >> 4;
	cmd = data[12] & 0x0F;
	if (ver != PP2_VERSION)
		return proxy_fail(error_r, "version %u not supported", ver);
	if (cmd != PP2_CMD_LOCAL && cmd != PP2_CMD_PROXY)
		return proxy_fail(error_r, "unknown command %u", cmd);
	if (len < 14)
		return PROXY_NEED_MORE;
	if (proxy_check_family((uint8_t)cmd, data[13], fam_r, error_r) !=
	    PROXY_DONE)
		return PROXY_ERROR;
	if (len < PROXY_V2_HEADER_LEN)
		return PROXY_NEED_MORE;
	hlen = proxy_be16(data + 14);
	if (hlen > PROXY_V2_MAX_LEN)
		return proxy_fail(error_r, "length %u over the bound %u", hlen,
		                  (unsigned)PROXY_V2_MAX_LEN);
	if (hlen < fam_r->addr_len)
		return proxy_fail(error_r,
		                  "address block of %u bytes needs %zu for %s",
		                  hlen, fam_r->addr_len, fam_r->name);
	*total_r = PROXY_V2_HEADER_LEN + hlen;
	return PROXY_DONE;
}

static void
proxy_read_addresses(const uint8_t *a, int af, struct proxy_info *info)
{
	if (af == AF_INET) {
		struct sockaddr_in *src = (struct sockaddr_in *)&info->src;
		struct sockaddr_in *dst = (struct sockaddr_in *)&info->dst;

		src->sin_family = dst->sin_family = AF_INET;
		memcpy(&src->sin_addr, a, 4);
		memcpy(&dst->sin_addr, a + 4, 4);
		src->sin_port = htons(proxy_be16(a + 8));
		dst->sin_port = htons(proxy_be16(a + 10));
		info->addrlen = sizeof(struct sockaddr_in);
	} else {
		struct sockaddr_in6 *src = (struct sockaddr_in6 *)&info->src;
		struct sockaddr_in6 *dst = (struct sockaddr_in6 *)&info->dst;

		src->sin6_family = dst->sin6_family = AF_INET6;
		memcpy(&src->sin6_addr, a, 16);
		memcpy(&dst->sin6_addr, a + 16, 16);
		src->sin6_port = htons(proxy_be16(a + 32));
		dst->sin6_port = htons(proxy_be16(a + 34));
		info->addrlen = sizeof(struct sockaddr_in6);
	}
}

/* One level of TLVs: the header's own, or the sub-TLVs inside PP2_TYPE_SSL. */
struct proxy_tlv_level {
	const char *kind;      /* "TLV" or "SSL sub-TLV", for errors */
	const char *container; /* "the header" or "the SSL TLV" */
	enum proxy_result (*fn)(const uint8_t *hdr, uint8_t type, size_t off,
	                        size_t vlen, struct proxy_tlv_state *st,
	                        const char **error_r);
};

/* Walk the TLVs in hdr[off, end): every TLV must fit exactly, with no bytes
 * left over. fn (if any) sees each value, which starts at hdr + off. */
static enum proxy_result
proxy_walk_tlvs(const uint8_t *hdr, size_t off, size_t end,
                const struct proxy_tlv_level *level, struct proxy_tlv_state *st,
                const char **error_r)
{
	while (off < end) {
		uint8_t type;
		size_t vlen;

		if (end - off < PP2_TLV_HEADER_LEN)
			return proxy_fail(error_r,
			                  "%zu stray bytes after the last %s",
			                  end - off, level->kind);
		type = hdr[off];
		vlen = proxy_be16(hdr + off + 1);
		off += PP2_TLV_HEADER_LEN;
		if (vlen > end - off)
			return proxy_fail(error_r, "%s 0x%02x overruns %s",
			                  level->kind, type, level->container);
		if (level->fn != NULL &&
		    level->fn(hdr, type, off, vlen, st, error_r) != PROXY_DONE)
			return PROXY_ERROR;
		off += vlen;
	}
	return PROXY_DONE;
}

static const struct proxy_tlv_level proxy_ssl_level = {
    "SSL sub-TLV",
    "the SSL TLV",
    NULL,
};

static enum proxy_result
proxy_tlv_ssl(const uint8_t *hdr, size_t off, size_t vlen,
              struct proxy_tlv_state *st, const char **error_r)
{
	if (st->have_ssl)
		return proxy_fail(error_r, "duplicate SSL TLV");
	if (vlen < PP2_SSL_FIXED_LEN)
		return proxy_fail(error_r, "SSL TLV of %zu bytes, needs %d",
		                  vlen, PP2_SSL_FIXED_LEN);
	st->have_ssl = true;
	st->ssl_client = (hdr[off] & PP2_CLIENT_SSL) != 0;
	/* Sub-TLVs (version, CN, cipher…) are only checked for framing. */
	return proxy_walk_tlvs(hdr, off + PP2_SSL_FIXED_LEN, off + vlen,
	                       &proxy_ssl_level, st, error_r);
}

static enum proxy_result
proxy_tlv(const uint8_t *hdr, uint8_t type, size_t off, size_t vlen,
          struct proxy_tlv_state *st, const char **error_r)
{
	switch (type) {
	case PP2_TYPE_CRC32C:
		if (st->have_crc)
			return proxy_fail(error_r, "duplicate CRC32C TLV");
		if (vlen != PP2_CRC32C_LEN)
			return proxy_fail(
			    error_r, "CRC32C TLV of %zu bytes, needs 4", vlen);
		st->have_crc = true;
		st->crc_off = off;
		st->crc_sent = proxy_be32(hdr + off);
		return PROXY_DONE;
	case PP2_TYPE_UNIQUE_ID:
		if (vlen > PP2_UNIQUE_ID_MAX)
			return proxy_fail(error_r,
			                  "UNIQUE_ID TLV of %zu bytes over %d",
			                  vlen, PP2_UNIQUE_ID_MAX);
		return PROXY_DONE;
	case PP2_TYPE_SSL:
		return proxy_tlv_ssl(hdr, off, vlen, st, error_r);
	default:
		/* ALPN, AUTHORITY, NOOP, NETNS, custom: framing only. */
		return PROXY_DONE;
	}
}

static const struct proxy_tlv_level proxy_top_level = {
    "TLV",
    "the header",
    proxy_tlv,
};

enum proxy_result
proxy_v2_parse(const uint8_t *data, size_t len, struct proxy_info *info,
               size_t *consumed_r, const char **error_r)
{
	struct proxy_family fam = {AF_UNSPEC, "UNSPEC", 0};
	struct proxy_tlv_state st = {0};
	enum proxy_result ret;
	size_t total = 0, tlv_off;

	memset(info, 0, sizeof(*info));
	*consumed_r = 0;
	*error_r = NULL;
	if (len == 0)
		return PROXY_NEED_MORE;
	ret = proxy_check_fixed(data, len, &fam, &total, error_r);
	if (ret != PROXY_DONE)
		return ret;
	if (len < total)
		return PROXY_NEED_MORE;

	tlv_off = PROXY_V2_HEADER_LEN + fam.addr_len;
	if (proxy_walk_tlvs(data, tlv_off, total, &proxy_top_level, &st,
	                    error_r) != PROXY_DONE)
		return PROXY_ERROR;
	if (st.have_crc &&
	    proxy_crc32c_header(data, total, st.crc_off) != st.crc_sent)
		return proxy_fail(error_r, "CRC32C mismatch");

	if ((data[12] & 0x0F) == PP2_CMD_LOCAL)
		info->local = true;
	else
		proxy_read_addresses(data + PROXY_V2_HEADER_LEN, fam.af, info);
	/* The SSL TLV is sent with client = 0 for plain connections too;
	 * only the PP2_CLIENT_SSL bit means the client used TLS. */
	info->have_ssl_tlv = st.have_ssl && st.ssl_client;
	*consumed_r = total;
	return PROXY_DONE;
}
