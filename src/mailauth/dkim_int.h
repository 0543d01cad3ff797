/* DKIM internals shared by dkim*.c, arc*.c and the fuzzers: tag lists (RFC
 * 6376 §3.2), header splitting and canonicalization (§3.4), key records (§3.6).
 * SECURITY: all of these parse peer bytes; outputs are bounded by the
 * DKIM_*_MAX limits and inputs are never written to. */
#ifndef TERN_MAILAUTH_DKIM_INT_H
#define TERN_MAILAUTH_DKIM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "core/buf.h"
#include "mailauth/dkim.h"

/* ------------------------------------------------------------- tag lists */

#define DKIM_TAGS_MAX 64
/* The largest base64 value decoded: a key's DER (RSA-16384 is ~2.1 KB). */
#define DKIM_KEY_DER_MAX 4096

struct dkim_tag {
	const char *name;
	size_t name_len;
	const char *value; /* FWS around it trimmed; inner FWS kept */
	size_t value_len;
	/* The raw value span, from after "=" up to ";" or the end, as offsets
	 * into the parsed text: what "b= treated as empty" deletes. */
	size_t raw_start, raw_end;
};

struct dkim_tags {
	size_t count;
	struct dkim_tag tag[DKIM_TAGS_MAX];
};

/* RFC 6376 §3.2 tag=value list; duplicate names and more than
 * DKIM_TAGS_MAX tags are errors. 0, or -1 with a static reason. */
int dkim_tags_parse(const char *text, size_t len, struct dkim_tags *tags,
                    const char **error_r);
const struct dkim_tag *dkim_tags_get(const struct dkim_tags *tags,
                                     const char *name);
bool dkim_tag_value_is(const struct dkim_tag *tag, const char *s);
/* Next item of a ":"-separated list with FWS around items trimmed; false at
 * the end. *pos starts at 0. An empty item is returned as such. */
bool dkim_list_next(const char *list, size_t len, size_t *pos,
                    const char **item_r, size_t *item_len_r);
/* base64 with FWS anywhere ignored (RFC 6376 base64string). */
int dkim_base64_decode(const char *text, size_t len, uint8_t *out,
                       size_t outmax, size_t *outlen_r);
/* dkim-quoted-printable (RFC 6376 §2.11) into out (NUL-terminated); -1 on
 * a bad escape, a control byte or more than outmax - 1 bytes. */
int dkim_qp_decode(const char *text, size_t len, char *out, size_t outmax);
/* A DNS name: labels of 1..63 letters, digits, "-" or "_", at most
 * DKIM_DOMAIN_MAX in all, no empty label. */
bool dkim_domain_valid(const char *s, size_t len);
/* d=, s= and a= of a new signature or seal: present, valid names (and the
 * key's DNS name within bounds), rsa-sha256 or ed25519-sha256. 0, or -1
 * with a static reason. */
int dkim_signing_id_check(const char *domain, const char *selector,
                          enum dkim_algorithm algorithm,
                          const char **error_r);
/* Decimal of 1..maxdigits digits. */
bool dkim_parse_uint(const char *s, size_t len, size_t maxdigits,
                     uint64_t *v_r);
bool dkim_ci_equal(const char *a, size_t alen, const char *b, size_t blen);

/* --------------------------------------------------------------- message */

struct dkim_field {
	const uint8_t *data; /* the whole field, with its final CRLF */
	size_t len;
	size_t name_len;  /* name without WSP before the colon */
	size_t value_off; /* after the colon; 0 when there is no colon */
};

struct dkim_msg {
	struct dkim_field *fields; /* at most DKIM_HEADER_FIELDS_MAX */
	size_t count;
	bool too_many;       /* fields past the maximum were not kept */
	size_t dkim_sigs;    /* DKIM-Signature fields in the whole header */
	size_t arc_fields;   /* ARC-Seal, ARC-Message-Signature and
	                        ARC-Authentication-Results, likewise */
	const uint8_t *body; /* after the empty line; NULL: no body */
	size_t body_len;
};

/* Split msg into header fields (CRLF lines, continuation lines start with
 * WSP) and body. Never fails; free with dkim_msg_clear. */
void dkim_msg_parse(const uint8_t *msg, size_t len, struct dkim_msg *m);
void dkim_msg_clear(struct dkim_msg *m);
bool dkim_field_is(const struct dkim_field *f, const char *name,
                   size_t name_len);

/* ------------------------------------------------------- canonicalization */

/* Append the canonical form of one header field (with its final CRLF, or
 * without it when strip_crlf: the DKIM-Signature field itself). */
int dkim_canon_header(enum dkim_canon canon, const uint8_t *field, size_t len,
                      bool strip_crlf, struct buf *out);

#define DKIM_BODY_STAGE 4096

/* Streaming body canonicalization and hash: update with any split of the
 * body, the result is the same. */
struct dkim_body {
	enum dkim_canon canon;
	EVP_MD_CTX *md;
	uint64_t limit;       /* bytes to hash (l=), UINT64_MAX: all */
	uint64_t total;       /* canonical bytes produced */
	uint64_t empty_lines; /* held back: trailing empty lines are dropped */
	bool cr;              /* a CR waits for its LF */
	bool wsp;             /* relaxed: WSP waits for a non-WSP byte */
	bool line;            /* the current line has content */
	size_t staged;
	uint8_t stage[DKIM_BODY_STAGE];
};

int dkim_body_init(struct dkim_body *b, enum dkim_canon canon, const EVP_MD *md,
                   uint64_t limit);
void dkim_body_update(struct dkim_body *b, const uint8_t *data, size_t len);
/* The digest into out (EVP_MAX_MD_SIZE), its length in *len_r. */
int dkim_body_final(struct dkim_body *b, uint8_t *out, unsigned *len_r);
void dkim_body_clear(struct dkim_body *b);

/* ------------------------------------------------------------ key records */

enum dkim_key_type {
	DKIM_KEY_RSA,
	DKIM_KEY_ED25519,
};

#define DKIM_KEY_HASH_SHA1 0x1
#define DKIM_KEY_HASH_SHA256 0x2

struct dkim_key {
	EVP_PKEY *pkey; /* NULL when revoked */
	enum dkim_key_type type;
	unsigned hashes; /* DKIM_KEY_HASH_*, all when h= is absent */
	unsigned bits;   /* RSA modulus bits */
	bool revoked;    /* empty p= */
	bool testing;    /* t=y */
	bool strict;     /* t=s */
};

/* Parse a key record (RFC 6376 §3.6.1, RFC 8463 §4.2). DKIM_R_OK with *key
 * filled (free with dkim_key_clear), or the permerror reason. A revoked
 * key is DKIM_R_OK with key->revoked: the caller decides what it means. */
enum dkim_reason dkim_key_parse(const char *text, size_t len,
                                struct dkim_key *key);
void dkim_key_clear(struct dkim_key *key);

/* ------------------------------------------------------ DKIM-Signature */

struct dkim_sig {
	enum dkim_algorithm algorithm;
	enum dkim_canon header_canon, body_canon;
	char domain[DKIM_DOMAIN_MAX + 1];
	char selector[DKIM_DOMAIN_MAX + 1];
	char identity[DKIM_IDENTITY_MAX + 1]; /* "" when i= is absent */
	const char *identity_domain;          /* into identity, or domain */
	const char *h;                        /* h= value (into the field) */
	size_t h_len;
	uint8_t b[DKIM_SIGNATURE_MAX];
	size_t b_len;
	uint8_t bh[EVP_MAX_MD_SIZE];
	size_t bh_len;
	bool has_l, has_t, has_x;
	uint64_t l, t, x;
	/* Offsets of b='s raw value within the field. */
	size_t b_start, b_end;
};

/* Parse the DKIM-Signature field (name included); fills what it can of
 * res (d=, s=, a=, i=, header.b) even on error. DKIM_R_OK or a permerror
 * reason. */
enum dkim_reason dkim_sig_parse(const struct dkim_field *field,
                                const struct dkim_limits *limits,
                                struct dkim_sig *sig,
                                struct dkim_sig_result *res);

/* The DKIM-like fields of ARC (RFC 8617 §4.1.2, §4.1.3). */
enum dkim_sig_kind {
	DKIM_SIG_DKIM,     /* DKIM-Signature: dkim_sig_parse */
	DKIM_SIG_ARC_AMS,  /* no v= (ignored), i= is the ARC instance (left
	                      to the caller), otherwise DKIM's rules */
	DKIM_SIG_ARC_SEAL, /* a b d s required, h= refused (DKIM_R_SYNTAX),
	                      no bh/c/l/q: relaxed header canonicalization */
};

/* dkim_sig_parse for any of the three kinds; sig->identity stays "" and
 * sig->identity_domain is d= for the ARC kinds. */
enum dkim_reason dkim_sig_parse_kind(const struct dkim_field *field,
                                     const struct dkim_limits *limits,
                                     enum dkim_sig_kind kind,
                                     struct dkim_sig *sig,
                                     struct dkim_sig_result *res);
/* The result a reason maps to (DKIM_R_OK: pass). */
enum dkim_result dkim_reason_result(enum dkim_reason reason);
const EVP_MD *dkim_algorithm_md(enum dkim_algorithm algorithm);
/* The canonicalized header data a signature covers: the fields named in h
 * (bottom-up, each instance once, missing ones skipped), then sig_field
 * with b='s value [b_start, b_end) removed and no final CRLF. sig_field may
 * be a field of m (skipped for selection) or the signer's new field. */
int dkim_header_data(const struct dkim_msg *m, enum dkim_canon canon,
                     const char *h, size_t h_len, const uint8_t *sig_field,
                     size_t sig_len, size_t b_start, size_t b_end,
                     struct buf *out);

/* ----------------------------------------------------- verification parts */

/* The key of sig (s=._domainkey.d=) through dns: the first usable record.
 * DKIM_R_OK with *key (dkim_key_clear), DKIM_R_DNS, or a key reason. */
enum dkim_reason dkim_fetch_key(const struct ma_dns *dns,
                                const struct dkim_sig *sig,
                                struct dkim_key *key);
/* Does key fit sig: type, h=, revoked, RSA size, t=s. */
enum dkim_reason dkim_key_check(const struct dkim_key *key,
                                const struct dkim_sig *sig,
                                unsigned rsa_bits_min);
/* sig->b over the digest of the header data (RSA PKCS#1 v1.5 or
 * Ed25519 over the digest bytes). */
bool dkim_check_signature(const struct dkim_key *key,
                          const struct dkim_sig *sig, const uint8_t *digest,
                          size_t dlen);

/* ---------------------------------------------------------- signing parts */

/* Base64 characters kept on the "b=" line: never fold right after "b=". */
#define DKIM_B_RESERVE 8

/* Builds a folded header field: tokens separated by " ", folded with
 * "\r\n " before DKIM_LINE_MAX. */
struct dkim_fold {
	struct buf *out;
	size_t col;
};

/* Append tok, preceded by " " when space; fold first when the line would
 * pass DKIM_LINE_MAX with reserve more characters. */
int dkim_fold_add(struct dkim_fold *f, const char *tok, size_t len, bool space,
                  size_t reserve);
/* " tag=value;" */
int dkim_fold_tag(struct dkim_fold *f, const char *tag, const char *value);
/* " h=name : name …;" from a ":"-joined list. */
int dkim_sign_h(struct dkim_fold *f, const struct buf *h);
/* The h= list ("From:From:To:…") into out: headers as given (each name
 * checked, From required), or NULL: the default list (dkim_sign.c). */
int dkim_sign_header_list(const struct dkim_msg *m, const char *const *headers,
                          struct buf *out, const char **error_r);
/* The SHA-256 body hash of m in canon, base64 into bh (NUL-terminated,
 * BASE64_ENCODED_SIZE(DKIM_DIGEST_MAX) bytes), the canonical length in
 * *len_r. */
int dkim_sign_body_hash(const struct dkim_msg *m, enum dkim_canon canon,
                        char *bh, uint64_t *len_r);
/* A signer for a field built elsewhere (ARC): field ends with "b=" at
 * column col, data is the canonicalized header data; both buffers are
 * taken over (left empty). NULL when hashing fails. */
struct dkim_signer *dkim_signer_new(enum dkim_algorithm algorithm,
                                    struct buf *field, size_t col,
                                    struct buf *data);

#endif
