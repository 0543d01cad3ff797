/* Tests for the PROXY v2 parser: a table of valid and broken headers, each
 * also fed one byte at a time (same result) and followed by payload bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "core/proxy.h"

/* A header under construction. */
struct hb {
	uint8_t b[2048];
	size_t len;
	size_t crc_off; /* 0: no CRC32C TLV */
};

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static void
hb_put(struct hb *h, const void *p, size_t len)
{
	assert_true(h->len + len <= sizeof(h->b));
	memcpy(h->b + h->len, p, len);
	h->len += len;
}

static void
hb_u8(struct hb *h, uint8_t v)
{
	hb_put(h, &v, 1);
}

static void
hb_u16(struct hb *h, uint16_t v)
{
	hb_u8(h, (uint8_t)(v >> 8));
	hb_u8(h, (uint8_t)v);
}

static void
hb_start(struct hb *h, uint8_t ver_cmd, uint8_t fam)
{
	memset(h, 0, sizeof(*h));
	hb_put(h, sig, sizeof(sig));
	hb_u8(h, ver_cmd);
	hb_u8(h, fam);
	hb_u16(h, 0); /* set by hb_end */
}

static void
hb_tlv(struct hb *h, uint8_t type, const void *value, uint16_t len)
{
	hb_u8(h, type);
	hb_u16(h, len);
	hb_put(h, value, len);
}

/* 192.0.2.1:56324 → 198.51.100.7:25 */
static void
hb_inet(struct hb *h)
{
	static const uint8_t a[12] = {192, 0, 2,    1,    198, 51,
	                              100, 7, 0xDC, 0x04, 0,   25};
	hb_put(h, a, sizeof(a));
}

/* 2001:db8::1:443 → 2001:db8::2:993 */
static void
hb_inet6(struct hb *h)
{
	uint8_t a[36] = {0};

	a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = 0xb8, a[15] = 1;
	a[16] = 0x20, a[17] = 0x01, a[18] = 0x0d, a[19] = 0xb8, a[31] = 2;
	a[32] = 0x01, a[33] = 0xBB, a[34] = 0x03, a[35] = 0xE1;
	hb_put(h, a, sizeof(a));
}

/* Independent table-driven CRC32C (RFC 4960 appendix B). */
static uint32_t
test_crc32c(const uint8_t *p, size_t len)
{
	static uint32_t table[256];
	uint32_t crc = 0xFFFFFFFFu;

	if (table[1] == 0) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
			table[i] = c;
		}
	}
	for (size_t i = 0; i < len; i++)
		crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
	return ~crc;
}

static void
hb_crc_tlv(struct hb *h)
{
	static const uint8_t zero[4];

	hb_tlv(h, 0x03, zero, 4);
	h->crc_off = h->len - 4;
}

/* Set the length field and, when asked for, fill the CRC (+ delta to
 * corrupt it). */
static void
hb_end_len(struct hb *h, uint16_t len, uint32_t crc_delta)
{
	h->b[14] = (uint8_t)(len >> 8);
	h->b[15] = (uint8_t)len;
	if (h->crc_off != 0) {
		uint32_t crc = test_crc32c(h->b, h->len) + crc_delta;
		h->b[h->crc_off] = (uint8_t)(crc >> 24);
		h->b[h->crc_off + 1] = (uint8_t)(crc >> 16);
		h->b[h->crc_off + 2] = (uint8_t)(crc >> 8);
		h->b[h->crc_off + 3] = (uint8_t)crc;
	}
}

static void
hb_end(struct hb *h)
{
	hb_end_len(h, (uint16_t)(h->len - 16), 0);
}

/* The builders: one per table row. */
static void
b_inet(struct hb *h)
{
	hb_start(h, 0x21, 0x11);
	hb_inet(h);
	hb_end(h);
}

static void
b_inet6(struct hb *h)
{
	hb_start(h, 0x21, 0x21);
	hb_inet6(h);
	hb_end(h);
}

static void
b_local(struct hb *h)
{
	hb_start(h, 0x20, 0x00);
	hb_end(h);
}

static void
b_local_inet(struct hb *h)
{
	hb_start(h, 0x20, 0x11);
	hb_inet(h);
	hb_end(h);
}

static void
hb_ssl_tlv(struct hb *h, uint8_t client)
{
	uint8_t v[5 + 3 + 7] = {client, 0, 0, 0, 0, 0x21, 0, 7};

	memcpy(v + 8, "TLSv1.3", 7);
	hb_tlv(h, 0x20, v, sizeof(v));
}

static void
b_tlvs(struct hb *h)
{
	hb_start(h, 0x21, 0x11);
	hb_inet(h);
	hb_tlv(h, 0x01, "smtp", 4);        /* ALPN */
	hb_tlv(h, 0x02, "mx.example", 10); /* AUTHORITY */
	hb_ssl_tlv(h, 0x01);
	hb_tlv(h, 0x04, "", 0);  /* NOOP, empty */
	hb_tlv(h, 0xE0, "x", 1); /* custom */
	hb_crc_tlv(h);
	hb_end(h);
}

static void
b_ssl_plain(struct hb *h)
{
	hb_start(h, 0x21, 0x21);
	hb_inet6(h);
	hb_ssl_tlv(h, 0x00);
	hb_end(h);
}

static void
b_crc_v6(struct hb *h)
{
	hb_start(h, 0x21, 0x21);
	hb_inet6(h);
	hb_crc_tlv(h);
	hb_tlv(h, 0x05, "id-1", 4);
	hb_end(h);
}

static void
b_bad_sig(struct hb *h)
{
	hb_start(h, 0x21, 0x11);
	h->b[6] = 0x0B;
	hb_inet(h);
	hb_end(h);
}

static void
b_v1_text(struct hb *h)
{
	memset(h, 0, sizeof(*h));
	hb_put(h, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 32);
}

static void
b_version1(struct hb *h)
{
	hb_start(h, 0x11, 0x11);
	hb_inet(h);
	hb_end(h);
}

static void
b_command5(struct hb *h)
{
	hb_start(h, 0x25, 0x11);
	hb_inet(h);
	hb_end(h);
}

static void
b_unspec_proxy(struct hb *h)
{
	hb_start(h, 0x21, 0x00);
	hb_end(h);
}

static void
b_udp(struct hb *h)
{
	hb_start(h, 0x21, 0x12);
	hb_inet(h);
	hb_end(h);
}

static void
b_unix(struct hb *h)
{
	hb_start(h, 0x21, 0x31);
	hb_end(h);
}

static void
b_family4(struct hb *h)
{
	hb_start(h, 0x21, 0x41);
	hb_end(h);
}

static void
b_mixed_unspec(struct hb *h)
{
	hb_start(h, 0x21, 0x10);
	hb_inet(h);
	hb_end(h);
}

static void
b_over_bound(struct hb *h)
{
	hb_start(h, 0x21, 0x11);
	hb_inet(h);
	hb_end_len(h, 2000, 0);
}

static void
b_short_v6(struct hb *h)
{
	hb_start(h, 0x21, 0x21);
	hb_inet(h); /* 12 bytes where 36 are due */
	hb_end(h);
}

static void
b_tlv_overrun(struct hb *h)
{
	hb_start(h, 0x21, 0x11);
	hb_inet(h);
	hb_ssl_tlv(h, 0x01);
	hb_end(h);
	/* Declared length one byte short: the SSL TLV now runs past it. */
	hb_end_len(h, (uint16_t)(h->len - 16 - 1), 0);
	h->len--;
}

static void
b_stray_bytes(struct hb *h)
{
	hb_start(h, 0x21, 0x11);
	hb_inet(h);
	hb_tlv(h, 0x01, "smtp", 4);
	hb_u16(h, 0x0102); /* too short for a TLV */
	hb_end(h);
}

static void
b_ssl_sub_overrun(struct hb *h)
{
	uint8_t v[5 + 3 + 2] = {1, 0, 0, 0, 0, 0x22, 0, 9, 'a', 'b'};

	hb_start(h, 0x21, 0x11);
	hb_inet(h);
	hb_tlv(h, 0x20, v, sizeof(v));
	hb_end(h);
}

static void
b_ssl_short(struct hb *h)
{
	hb_start(h, 0x21, 0x11);
	hb_inet(h);
	hb_tlv(h, 0x20, "\1\0\0", 3);
	hb_end(h);
}

static void
b_ssl_twice(struct hb *h)
{
	hb_start(h, 0x21, 0x11);
	hb_inet(h);
	hb_ssl_tlv(h, 0x01);
	hb_ssl_tlv(h, 0x01);
	hb_end(h);
}

static void
b_crc_bad(struct hb *h)
{
	hb_start(h, 0x21, 0x11);
	hb_inet(h);
	hb_crc_tlv(h);
	hb_end_len(h, (uint16_t)(h->len - 16), 1);
}

static void
b_crc_len(struct hb *h)
{
	hb_start(h, 0x21, 0x11);
	hb_inet(h);
	hb_tlv(h, 0x03, "\0\0\0", 3);
	hb_end(h);
}

static void
b_crc_twice(struct hb *h)
{
	hb_start(h, 0x21, 0x11);
	hb_inet(h);
	hb_crc_tlv(h);
	hb_tlv(h, 0x03, "\0\0\0\0", 4);
	hb_end(h);
}

static void
b_unique_id_long(struct hb *h)
{
	uint8_t id[129] = {0};

	hb_start(h, 0x21, 0x11);
	hb_inet(h);
	hb_tlv(h, 0x05, id, sizeof(id));
	hb_end(h);
}

/* Longest accepted: the declared length is exactly the bound. */
static void
b_max_len(struct hb *h)
{
	uint8_t pad[1024 - 12 - 3] = {0};

	hb_start(h, 0x21, 0x11);
	hb_inet(h);
	hb_tlv(h, 0x04, pad, sizeof(pad));
	hb_end(h);
}

struct proxy_case {
	const char *name;
	void (*build)(struct hb *h);
	enum proxy_result want;
	const char *error;
	/* For DONE: expected family (AF_UNSPEC when local), TLS flag. */
	int af;
	bool ssl;
	/* For errors: bytes after which the error is already known. */
	size_t error_at;
};

static const struct proxy_case cases[] = {
    {"inet", b_inet, PROXY_DONE, NULL, AF_INET, false, 0},
    {"inet6", b_inet6, PROXY_DONE, NULL, AF_INET6, false, 0},
    {"local", b_local, PROXY_DONE, NULL, AF_UNSPEC, false, 0},
    {"local inet", b_local_inet, PROXY_DONE, NULL, AF_UNSPEC, false, 0},
    {"tlvs+crc", b_tlvs, PROXY_DONE, NULL, AF_INET, true, 0},
    {"ssl plain", b_ssl_plain, PROXY_DONE, NULL, AF_INET6, false, 0},
    {"crc v6", b_crc_v6, PROXY_DONE, NULL, AF_INET6, false, 0},
    {"max len", b_max_len, PROXY_DONE, NULL, AF_INET, false, 0},
    {"bad sig", b_bad_sig, PROXY_ERROR, "bad signature", 0, false, 7},
    {"v1 text", b_v1_text, PROXY_ERROR, "bad signature", 0, false, 1},
    {"version 1", b_version1, PROXY_ERROR, "version 1 not supported", 0, false,
     13},
    {"command 5", b_command5, PROXY_ERROR, "unknown command 5", 0, false, 13},
    {"unspec proxy", b_unspec_proxy, PROXY_ERROR,
     "family UNSPEC needs command LOCAL", 0, false, 14},
    {"udp", b_udp, PROXY_ERROR, "transport DGRAM not supported", 0, false, 14},
    {"unix", b_unix, PROXY_ERROR, "family UNIX not supported", 0, false, 14},
    {"family 4", b_family4, PROXY_ERROR, "unknown address family 4", 0, false,
     14},
    {"mixed unspec", b_mixed_unspec, PROXY_ERROR,
     "family byte 0x10 mixes UNSPEC", 0, false, 14},
    {"over bound", b_over_bound, PROXY_ERROR, "length 2000 over the bound 1024",
     0, false, 16},
    {"short v6", b_short_v6, PROXY_ERROR,
     "address block of 12 bytes needs 36 for INET6", 0, false, 16},
    {"tlv overrun", b_tlv_overrun, PROXY_ERROR, "TLV 0x20 overruns the header",
     0, false, 0},
    {"stray bytes", b_stray_bytes, PROXY_ERROR,
     "2 stray bytes after the last TLV", 0, false, 0},
    {"ssl sub overrun", b_ssl_sub_overrun, PROXY_ERROR,
     "SSL sub-TLV 0x22 overruns the SSL TLV", 0, false, 0},
    {"ssl short", b_ssl_short, PROXY_ERROR, "SSL TLV of 3 bytes, needs 5", 0,
     false, 0},
    {"ssl twice", b_ssl_twice, PROXY_ERROR, "duplicate SSL TLV", 0, false, 0},
    {"crc mismatch", b_crc_bad, PROXY_ERROR, "CRC32C mismatch", 0, false, 0},
    {"crc len", b_crc_len, PROXY_ERROR, "CRC32C TLV of 3 bytes, needs 4", 0,
     false, 0},
    {"crc twice", b_crc_twice, PROXY_ERROR, "duplicate CRC32C TLV", 0, false,
     0},
    {"unique id", b_unique_id_long, PROXY_ERROR,
     "UNIQUE_ID TLV of 129 bytes over 128", 0, false, 0},
};

static void
check_done(const struct proxy_case *c, const struct hb *h,
           const struct proxy_info *info, size_t consumed)
{
	assert_int_equal(consumed, h->len);
	assert_int_equal(info->local, c->af == AF_UNSPEC);
	assert_int_equal(info->have_ssl_tlv, c->ssl);
	if (c->af == AF_INET) {
		const struct sockaddr_in *s =
		    (const struct sockaddr_in *)&info->src;
		const struct sockaddr_in *d =
		    (const struct sockaddr_in *)&info->dst;
		assert_int_equal(info->addrlen, sizeof(*s));
		assert_int_equal(s->sin_family, AF_INET);
		assert_int_equal(d->sin_family, AF_INET);
		assert_int_equal(ntohl(s->sin_addr.s_addr), 0xC0000201);
		assert_int_equal(ntohl(d->sin_addr.s_addr), 0xC6336407);
		assert_int_equal(ntohs(s->sin_port), 56324);
		assert_int_equal(ntohs(d->sin_port), 25);
	} else if (c->af == AF_INET6) {
		const struct sockaddr_in6 *s =
		    (const struct sockaddr_in6 *)&info->src;
		const struct sockaddr_in6 *d =
		    (const struct sockaddr_in6 *)&info->dst;
		assert_int_equal(info->addrlen, sizeof(*s));
		assert_int_equal(s->sin6_family, AF_INET6);
		assert_int_equal(s->sin6_addr.s6_addr[1], 0x01);
		assert_int_equal(s->sin6_addr.s6_addr[15], 1);
		assert_int_equal(d->sin6_addr.s6_addr[15], 2);
		assert_int_equal(ntohs(s->sin6_port), 443);
		assert_int_equal(ntohs(d->sin6_port), 993);
	} else {
		assert_int_equal(info->addrlen, 0);
	}
}

static void
run_case(const struct proxy_case *c)
{
	struct hb h;
	struct proxy_info info;
	size_t consumed;
	const char *error;
	enum proxy_result r;

	c->build(&h);
	r = proxy_v2_parse(h.b, h.len, &info, &consumed, &error);
	if (r != c->want)
		fail_msg("%s: result %d, error %s", c->name, r,
		         error == NULL ? "-" : error);
	if (r == PROXY_DONE) {
		assert_null(error);
		check_done(c, &h, &info, consumed);
	} else {
		assert_string_equal(error, c->error);
		assert_int_equal(consumed, 0);
	}
}

/* Feed every prefix: NEED_MORE until the answer is known, then the same
 * answer as for the whole input. */
static void
trickle_case(const struct proxy_case *c)
{
	struct hb h;
	struct proxy_info info;
	size_t consumed, n;
	const char *error;
	enum proxy_result r = PROXY_NEED_MORE;

	c->build(&h);
	for (n = 0; n <= h.len; n++) {
		r = proxy_v2_parse(h.b, n, &info, &consumed, &error);
		if (r != PROXY_NEED_MORE)
			break;
		assert_int_equal(consumed, 0);
	}
	if (r != c->want)
		fail_msg("%s: trickle result %d at %zu", c->name, r, n);
	if (r == PROXY_DONE) {
		assert_int_equal(n, h.len);
		check_done(c, &h, &info, consumed);
	} else {
		assert_string_equal(error, c->error);
		if (c->error_at != 0)
			assert_int_equal(n, c->error_at);
	}
}

/* Bytes after the header belong to the application and are left alone. */
static void
trailing_case(const struct proxy_case *c)
{
	struct hb h;
	struct proxy_info info;
	size_t consumed;
	const char *error;

	c->build(&h);
	if (c->want != PROXY_DONE)
		return;
	hb_put(&h, "EHLO x\r\n", 8);
	assert_int_equal(proxy_v2_parse(h.b, h.len, &info, &consumed, &error),
	                 PROXY_DONE);
	assert_int_equal(consumed, h.len - 8);
}

static void
test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
}

static void
test_trickle(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		trickle_case(&cases[i]);
}

static void
test_trailing(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		trailing_case(&cases[i]);
}

/* The test's own CRC32C gives the standard check value, so a header it
 * signs is a fair test of the parser's. */
static void
test_crc_reference(void **state)
{
	(void)state;
	assert_int_equal(test_crc32c((const uint8_t *)"123456789", 9),
	                 0xE3069283u);
}

/* A length that promises more than arrives never completes: the caller's
 * timeout ends it, the parser does not guess. */
static void
test_length_lies_long(void **state)
{
	struct hb h;
	struct proxy_info info;
	size_t consumed;
	const char *error;

	(void)state;
	hb_start(&h, 0x21, 0x11);
	hb_inet(&h);
	hb_end_len(&h, 100, 0);
	assert_int_equal(proxy_v2_parse(h.b, h.len, &info, &consumed, &error),
	                 PROXY_NEED_MORE);
	/* Application bytes read as TLVs do not make a valid header. */
	hb_put(&h, "EHLO mail.example.org\r\nMAIL FROM:<a@b>\r\n", 40);
	memset(h.b + h.len, 'X', 100);
	h.len += 100;
	assert_int_equal(proxy_v2_parse(h.b, h.len, &info, &consumed, &error),
	                 PROXY_ERROR);
	assert_string_equal(error, "TLV 0x45 overruns the header");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc_reference),
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_trickle),
	    cmocka_unit_test(test_trailing),
	    cmocka_unit_test(test_length_lies_long),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
