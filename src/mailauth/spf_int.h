/* SPF internals shared by spf.c, spf_macro.c, spf_record.c, their unit test
 * and fuzzer: macro expansion (§7), record terms (§4.6, §5, §6).
 * SECURITY: everything here reads untrusted record text; lengths are explicit
 * and every output goes to a bounded struct buf. */
#ifndef TERN_MAILAUTH_SPF_INT_H
#define TERN_MAILAUTH_SPF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "mailauth/spf.h"

/* Bytes a domain-spec may expand to before truncation to SPF_DOMAIN_MAX;
 * over it the target counts as malformed. */
#define SPF_EXPAND_MAX 4096

/* ---------------------------------------------------------------- macros */

enum spf_macro_mode {
	SPF_MACRO_DOMAIN,   /* domain-spec: letters s l o d i p v h */
	SPF_MACRO_MODIFIER, /* unknown-modifier value: any macro letter */
	SPF_MACRO_EXPLAIN,  /* explain-string: SP allowed, c r t too */
};

struct spf_macro_env {
	const char *sender;        /* %{s} */
	const char *local;         /* %{l} */
	const char *sender_domain; /* %{o} */
	const char *domain;        /* %{d} */
	const char *helo;          /* %{h} */
	const char *receiver;      /* %{r} */
	const struct spf_ip *ip;   /* %{i} %{c} %{v} */
	long long now;             /* %{t} */
	/* %{p}: the validated client name for domain (§7.3), or "unknown".
	 * NULL: always "unknown". */
	const char *(*ptr_name)(void *arg, const char *domain);
	void *arg;
};

/* Syntax of a macro string (§7.1) in the given mode: 0, or -1 with a static
 * reason. */
int spf_macro_check(const char *s, size_t len, enum spf_macro_mode mode,
                    const char **error_r);
/* Expand s, appending to out. 0, or -1 with a static reason (syntax, out
 * full). */
int spf_macro_expand(const struct spf_macro_env *env, const char *s, size_t len,
                     enum spf_macro_mode mode, struct buf *out,
                     const char **error_r);
/* A domain-spec (§7.1): valid macro string ending in a macro-expand or in
 * "." toplabel ["."]. */
bool spf_domain_spec_valid(const char *s, size_t len);
/* Expand a domain-spec to the name to query (§7.3: the final dot dropped,
 * leading labels removed down to 253 octets) into name (SPF_DOMAIN_MAX + 1
 * bytes). 0, or -1 (static reason) when the result is not a name we query. */
int spf_expand_domain(const struct spf_macro_env *env, const char *spec,
                      size_t len, char *name, const char **error_r);
/* A name we hand to the DNS provider: 1..253 octets, labels 1..63 octets,
 * bytes 0x20..0x7e except '\\' (presentation form needs no escapes). */
bool spf_name_valid(const char *name, size_t len);
/* <domain> of initial processing (§4.3): name syntax as above with letters,
 * digits, '-' and '_' only, and at least two labels. */
bool spf_domain_initial_valid(const char *name, size_t len);
/* "192.0.2.1" / "2001:db8::1" of ip into text (SPF_IP_TEXT_MAX bytes). */
void spf_ip_text(const struct spf_ip *ip, char *text);

/* ---------------------------------------------------------------- records */

enum spf_mech {
	SPF_MECH_ALL,
	SPF_MECH_INCLUDE,
	SPF_MECH_A,
	SPF_MECH_MX,
	SPF_MECH_PTR,
	SPF_MECH_IP4,
	SPF_MECH_IP6,
	SPF_MECH_EXISTS,
};

enum spf_term_kind {
	SPF_TERM_MECHANISM,
	SPF_TERM_REDIRECT,
	SPF_TERM_EXP,
	SPF_TERM_UNKNOWN, /* unknown modifier: checked, then ignored */
};

/* One term, pointing into the record text. */
struct spf_term {
	enum spf_term_kind kind;
	enum spf_mech mech;
	enum spf_result qualifier; /* pass fail softfail neutral */
	const char *text;          /* the term as written */
	size_t len;
	const char *arg; /* domain-spec or modifier value; NULL if none */
	size_t arg_len;
	unsigned int cidr4, cidr6; /* a, mx, ip4 (cidr4), ip6 (cidr6) */
	uint8_t net[16];           /* ip4, ip6 */
};

/* "v=spf1" followed by SP or the end, case-insensitive (§4.5). */
bool spf_record_is_spf1(const char *txt);
/* Parse one term (no spaces in it). 0, or -1 with a static reason. */
int spf_term_parse(const char *s, size_t len, struct spf_term *term,
                   const char **error_r);
/* The next term of a record at *pos (start at 0: the version is skipped):
 * 1 a term, 0 the end, -1 a syntax error (*pos on the bad term). */
int spf_term_next(const char *rec, size_t len, size_t *pos,
                  struct spf_term *term, const char **error_r);

struct spf_record_info {
	struct spf_term redirect; /* valid when has_redirect */
	struct spf_term exp;      /* valid when has_exp */
	bool has_redirect, has_exp;
	size_t bad_pos, bad_len; /* the offending term on error */
};

/* Check a whole "v=spf1" record before evaluating it (§4.6: a syntax error
 * anywhere is a permerror): bytes, every term, redirect=/exp= at most once.
 * 0, or -1 with a static reason. */
int spf_record_check(const char *rec, size_t len, struct spf_record_info *info,
                     const char **error_r);

#endif
