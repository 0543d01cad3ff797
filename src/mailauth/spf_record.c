/* SPF records (RFC 7208 §4.5, §4.6, §5, §6, §12): selecting "v=spf1",
 * splitting terms, parsing mechanisms, CIDR lengths and modifiers.
 * SECURITY: records come from any DNS publisher; the parser reads only
 * within the lengths given and allocates nothing. */
#include "mailauth/spf_int.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	enum spf_mech mech;
} mechanisms[] = {
    {"all", SPF_MECH_ALL}, {"include", SPF_MECH_INCLUDE}, {"a", SPF_MECH_A},
    {"mx", SPF_MECH_MX},   {"ptr", SPF_MECH_PTR},         {"ip4", SPF_MECH_IP4},
    {"ip6", SPF_MECH_IP6}, {"exists", SPF_MECH_EXISTS},
};

static int
fail(const char **error_r, const char *reason)
{
	if (error_r != NULL)
		*error_r = reason;
	return -1;
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
name_is(const char *s, size_t n, const char *name)
{
	return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

bool
spf_record_is_spf1(const char *txt)
{
	return strncasecmp(txt, "v=spf1", 6) == 0 &&
	       (txt[6] == '\0' || txt[6] == ' ');
}

/* ip4-cidr-length / ip6-cidr-length digits: "0" or no leading zero, at most
 * max. */
static int
parse_cidr(const char *d, size_t n, unsigned int max, unsigned int *out)
{
	unsigned int v = 0;

	if (n == 0 || n > 3 || (n > 1 && d[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit((unsigned char)d[i]))
			return -1;
		v = v * 10 + (unsigned int)(d[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/* ip4-network: four qnum, no leading zeros. */
static int
parse_ip4(const char *s, size_t n, uint8_t *out)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		size_t st = i;
		unsigned int v = 0;

		while (i < n && is_digit((unsigned char)s[i]) && i - st < 3)
			v = v * 10 + (unsigned int)(s[i++] - '0');
		if (i == st || v > 255 || (i - st > 1 && s[st] == '0'))
			return -1;
		out[part] = (uint8_t)v;
		if (part < 3) {
			if (i >= n || s[i] != '.')
				return -1;
			i++;
		}
	}
	return i == n ? 0 : -1;
}

static int
parse_ip6(const char *s, size_t n, uint8_t *out)
{
	char tmp[64];

	if (n == 0 || n >= sizeof(tmp) || memchr(s, '\0', n) != NULL)
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return inet_pton(AF_INET6, tmp, out) == 1 ? 0 : -1;
}

/* Take a dual-cidr-length off the end of s[0..*n): "/24", "//64",
 * "/24//64". */
static int
take_dual_cidr(const char *s, size_t *n, struct spf_term *t)
{
	size_t j = *n;

	while (j > 0 && is_digit((unsigned char)s[j - 1]))
		j--;
	if (j < *n && j >= 2 && s[j - 1] == '/' && s[j - 2] == '/') {
		if (parse_cidr(s + j, *n - j, 128, &t->cidr6) < 0)
			return -1;
		*n = j - 2;
		j = *n;
		while (j > 0 && is_digit((unsigned char)s[j - 1]))
			j--;
	}
	if (j < *n && j >= 1 && s[j - 1] == '/') {
		if (parse_cidr(s + j, *n - j, 32, &t->cidr4) < 0)
			return -1;
		*n = j - 1;
	}
	return 0;
}

static int
parse_domain_arg(const char *rest, size_t rlen, struct spf_term *t,
                 const char **error_r)
{
	if (rlen < 1 || rest[0] != ':')
		return fail(error_r, "mechanism needs ':' and a domain");
	t->arg = rest + 1;
	t->arg_len = rlen - 1;
	if (!spf_domain_spec_valid(t->arg, t->arg_len))
		return fail(error_r, "bad domain-spec");
	return 0;
}

static int
parse_mechanism(struct spf_term *t, const char *rest, size_t rlen,
                const char **error_r)
{
	const char *slash;
	size_t n;

	switch (t->mech) {
	case SPF_MECH_ALL:
		if (rlen != 0)
			return fail(error_r, "\"all\" takes no argument");
		return 0;
	case SPF_MECH_INCLUDE:
	case SPF_MECH_EXISTS:
		return parse_domain_arg(rest, rlen, t, error_r);
	case SPF_MECH_PTR:
		if (rlen == 0)
			return 0;
		return parse_domain_arg(rest, rlen, t, error_r);
	case SPF_MECH_A:
	case SPF_MECH_MX:
		n = rlen;
		if (take_dual_cidr(rest, &n, t) < 0)
			return fail(error_r, "bad CIDR length");
		if (n == 0)
			return 0;
		return parse_domain_arg(rest, n, t, error_r);
	case SPF_MECH_IP4:
	case SPF_MECH_IP6:
		if (rlen < 2 || rest[0] != ':')
			return fail(error_r, "ip4/ip6 needs ':' and a network");
		rest++;
		rlen--;
		slash = memchr(rest, '/', rlen);
		n = slash != NULL ? (size_t)(slash - rest) : rlen;
		if (t->mech == SPF_MECH_IP4 ? parse_ip4(rest, n, t->net) < 0
		                            : parse_ip6(rest, n, t->net) < 0)
			return fail(error_r, "bad IP network");
		if (slash != NULL &&
		    parse_cidr(slash + 1, rlen - n - 1,
		               t->mech == SPF_MECH_IP4 ? 32 : 128,
		               t->mech == SPF_MECH_IP4 ? &t->cidr4
		                                       : &t->cidr6) < 0)
			return fail(error_r, "bad CIDR length");
		t->arg = rest;
		t->arg_len = rlen;
		return 0;
	}
	return fail(error_r, "unknown mechanism");
}

int
spf_term_parse(const char *s, size_t len, struct spf_term *t,
               const char **error_r)
{
	size_t i = 0, n0;
	bool qualified = false;

	memset(t, 0, sizeof(*t));
	t->text = s;
	t->len = len;
	t->qualifier = SPF_PASS;
	t->cidr4 = 32;
	t->cidr6 = 128;
	if (len > 0 && strchr("+-~?", s[0]) != NULL && s[0] != '\0') {
		t->qualifier = s[0] == '-'   ? SPF_FAIL
		               : s[0] == '~' ? SPF_SOFTFAIL
		               : s[0] == '?' ? SPF_NEUTRAL
		                             : SPF_PASS;
		qualified = true;
		i = 1;
	}
	/* name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) */
	n0 = i;
	if (i < len && is_alpha((unsigned char)s[i])) {
		i++;
		while (i < len && (is_alpha((unsigned char)s[i]) ||
		                   is_digit((unsigned char)s[i]) ||
		                   s[i] == '-' || s[i] == '_' || s[i] == '.'))
			i++;
	}
	if (i == n0)
		return fail(error_r, "term does not start with a name");
	if (i < len && s[i] == '=') {
		if (qualified)
			return fail(error_r, "qualifier on a modifier");
		t->arg = s + i + 1;
		t->arg_len = len - i - 1;
		if (name_is(s + n0, i - n0, "redirect") ||
		    name_is(s + n0, i - n0, "exp")) {
			t->kind = name_is(s + n0, i - n0, "exp")
			              ? SPF_TERM_EXP
			              : SPF_TERM_REDIRECT;
			if (!spf_domain_spec_valid(t->arg, t->arg_len))
				return fail(error_r,
				            "bad domain-spec in a modifier");
			return 0;
		}
		t->kind = SPF_TERM_UNKNOWN;
		return spf_macro_check(t->arg, t->arg_len, SPF_MACRO_MODIFIER,
		                       error_r);
	}
	t->kind = SPF_TERM_MECHANISM;
	for (size_t k = 0; k < sizeof(mechanisms) / sizeof(mechanisms[0]);
	     k++) {
		if (!name_is(s + n0, i - n0, mechanisms[k].name))
			continue;
		if (i < len && s[i] != ':' && s[i] != '/')
			break;
		t->mech = mechanisms[k].mech;
		return parse_mechanism(t, s + i, len - i, error_r);
	}
	return fail(error_r, "unknown mechanism");
}

int
spf_term_next(const char *rec, size_t len, size_t *pos, struct spf_term *t,
              const char **error_r)
{
	size_t i = *pos, st;

	if (i == 0)
		i = len < 6 ? len : 6; /* "v=spf1" */
	while (i < len && rec[i] == ' ')
		i++;
	if (i >= len) {
		*pos = len;
		return 0;
	}
	st = i;
	while (i < len && rec[i] != ' ')
		i++;
	*pos = st;
	if (spf_term_parse(rec + st, i - st, t, error_r) < 0)
		return -1;
	*pos = i;
	return 1;
}

int
spf_record_check(const char *rec, size_t len, struct spf_record_info *info,
                 const char **error_r)
{
	struct spf_term t;
	size_t pos = 0;
	int rc;

	memset(info, 0, sizeof(*info));
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)rec[i];

		if (c < 0x20 || c > 0x7e) {
			info->bad_pos = i;
			info->bad_len = 1;
			return fail(error_r,
			            "control or non-ASCII byte in the record");
		}
	}
	if (len < 6 || strncasecmp(rec, "v=spf1", 6) != 0 ||
	    (len > 6 && rec[6] != ' '))
		return fail(error_r, "not a v=spf1 record");
	while ((rc = spf_term_next(rec, len, &pos, &t, error_r)) == 1) {
		if (t.kind == SPF_TERM_REDIRECT) {
			if (info->has_redirect)
				rc = fail(error_r, "redirect= given twice");
			info->redirect = t;
			info->has_redirect = true;
		} else if (t.kind == SPF_TERM_EXP) {
			if (info->has_exp)
				rc = fail(error_r, "exp= given twice");
			info->exp = t;
			info->has_exp = true;
		}
		if (rc < 0) {
			info->bad_pos = (size_t)(t.text - rec);
			info->bad_len = t.len;
			return -1;
		}
	}
	if (rc < 0) {
		size_t e = pos;

		while (e < len && rec[e] != ' ')
			e++;
		info->bad_pos = pos;
		info->bad_len = e - pos;
		return -1;
	}
	return 0;
}
