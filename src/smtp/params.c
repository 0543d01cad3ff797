/* SMTP server command arguments: paths (RFC 5321 §4.1.2, source routes
 * dropped), MAIL and RCPT parameters (SIZE RFC 1870, BODY RFC 6152,
 * SMTPUTF8 RFC 6531, DSN RFC 3461, AUTH= RFC 4954).
 * SECURITY: all from the peer: paths go through address_parse(), values
 * are checked against their grammar and length (ENVID 100, ORCPT 500). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "mail/address.h"
#include "smtp/server_int.h"

#define ENVID_MAX 100
#define ORCPT_MAX 500

static bool
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* xtext (RFC 3461 §4): "+" HEX HEX or printable ASCII but "+" and "=". */
static bool
xtext_valid(const char *v, size_t max)
{
	size_t n = strlen(v);

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c == '+') {
			if (i + 2 >= n || !is_hex(v[i + 1]) ||
			    !is_hex(v[i + 2]))
				return false;
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return false;
		}
	}
	return true;
}

int
smtp_parse_u64(const char *v, uint64_t *r)
{
	uint64_t n = 0;

	if (*v == '\0' || strlen(v) > 20)
		return -1;
	for (; *v != '\0'; v++) {
		if (*v < '0' || *v > '9')
			return -1;
		if (n > (UINT64_MAX - (uint64_t)(*v - '0')) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*v - '0');
	}
	*r = n;
	return 0;
}

/* "FROM:<path>" / "TO:<path>" with at most one space after the colon.
 * On success *mailbox_r is the path without <> and source route ("" for
 * <>) and *rest_r points at the parameters. Returns NULL or the reply. */
const char *
smtp_parse_path(struct smtp_server *s, char *args, enum smtp_path_kind kind,
                char **mailbox_r, char **rest_r)
{
	const char *prefix = kind == SMTP_PATH_MAIL ? "FROM:" : "TO:";
	size_t plen = strlen(prefix);
	char *p, *q, *box;
	bool quoted = false;
	struct address addr;
	const char *err;

	if (strncasecmp(args, prefix, plen) != 0)
		return kind == SMTP_PATH_MAIL
		           ? "501 5.5.4 Syntax: MAIL FROM:<address>"
		           : "501 5.5.4 Syntax: RCPT TO:<address>";
	p = args + plen;
	if (*p == ' ')
		p++;
	if (*p != '<')
		return kind == SMTP_PATH_MAIL
		           ? "501 5.5.4 Syntax: MAIL FROM:<address>"
		           : "501 5.5.4 Syntax: RCPT TO:<address>";
	for (q = p + 1; *q != '\0'; q++) {
		if (quoted) {
			if (*q == '\\' && q[1] != '\0')
				q++;
			else if (*q == '"')
				quoted = false;
		} else if (*q == '"') {
			quoted = true;
		} else if (*q == '>') {
			break;
		}
	}
	if (*q != '>' || (q[1] != '\0' && q[1] != ' '))
		return "501 5.5.4 Syntax error in path";
	*q = '\0';
	*rest_r = q + 1;
	box = p + 1;
	if (*box == '@') {
		/* A source route (RFC 5321 §4.1.2, C.): accepted, dropped. */
		char *colon = strchr(box, ':');

		if (colon == NULL)
			return "501 5.5.4 Syntax error in path";
		for (char *r = box; r < colon; r++)
			if (!(r[0] == '@' || r[0] == ',' || r[0] == '.' ||
			      r[0] == '-' || r[0] == '[' || r[0] == ']' ||
			      (r[0] >= '0' && r[0] <= '9') ||
			      ((r[0] | 0x20) >= 'a' && (r[0] | 0x20) <= 'z')))
				return "501 5.5.4 Syntax error in path";
		box = colon + 1;
	}
	if (*box == '\0') {
		if (kind == SMTP_PATH_RCPT)
			return "553 5.1.3 Error: bad recipient address syntax";
	} else if (kind == SMTP_PATH_RCPT &&
	           strcasecmp(box, "postmaster") == 0) {
		box = "postmaster";
	} else if (address_parse(box, strlen(box), &addr, &err) < 0) {
		log_debug(s->log_id, "event=smtp_bad_address reason=%s", err);
		return kind == SMTP_PATH_MAIL
		           ? "501 5.1.7 Error: bad sender address syntax"
		           : "553 5.1.3 Error: bad recipient address syntax";
	}
	*mailbox_r = box;
	return NULL;
}

bool
smtp_has_8bit(const char *v)
{
	for (; *v != '\0'; v++)
		if ((unsigned char)*v >= 0x80)
			return true;
	return false;
}

/* Split "KEY[=VALUE] KEY[=VALUE]…" one parameter at a time. */
static char *
next_param(char **rest, char **value_r)
{
	char *p = *rest, *end, *eq;

	while (*p == ' ')
		p++;
	if (*p == '\0')
		return NULL;
	end = strchr(p, ' ');
	if (end != NULL)
		*end++ = '\0';
	*rest = end != NULL ? end : p + strlen(p);
	eq = strchr(p, '=');
	if (eq != NULL)
		*eq++ = '\0';
	*value_r = eq;
	return p;
}

const char *
smtp_mail_params(struct smtp_server *s, char *rest)
{
	unsigned seen = 0;
	char *key, *v;

	while ((key = next_param(&rest, &v)) != NULL) {
		unsigned bit;

		if (strcasecmp(key, "SIZE") == 0)
			bit = 1;
		else if (strcasecmp(key, "BODY") == 0)
			bit = 2;
		else if (strcasecmp(key, "SMTPUTF8") == 0)
			bit = 4;
		else if (strcasecmp(key, "RET") == 0)
			bit = 8;
		else if (strcasecmp(key, "ENVID") == 0)
			bit = 16;
		else if (strcasecmp(key, "AUTH") == 0)
			bit = 32;
		else
			return "555 5.5.4 Error: unsupported parameter";
		if (seen & bit)
			return "501 5.5.4 Error: duplicate parameter";
		seen |= bit;
		if (bit == 4) {
			if (v != NULL)
				return "501 5.5.4 Error: bad SMTPUTF8 "
				       "parameter";
			s->env.smtputf8 = true;
			continue;
		}
		if (v == NULL || *v == '\0')
			return "501 5.5.4 Error: parameter needs a value";
		switch (bit) {
		case 1:
			if (smtp_parse_u64(v, &s->env.size) < 0)
				return "501 5.5.4 Error: bad SIZE parameter";
			if (s->env.size > s->lim.message_max)
				return "552 5.3.4 Error: message size exceeds "
				       "fixed limit";
			break;
		case 2:
			if (strcasecmp(v, "8BITMIME") == 0)
				s->env.body_8bit = true;
			else if (strcasecmp(v, "BINARYMIME") == 0)
				return "555 5.5.4 Error: BINARYMIME not "
				       "supported";
			else if (strcasecmp(v, "7BIT") != 0)
				return "501 5.5.4 Error: bad BODY parameter";
			break;
		case 8:
			if (strcasecmp(v, "FULL") != 0 &&
			    strcasecmp(v, "HDRS") != 0)
				return "501 5.5.4 Error: bad RET parameter";
			s->env.ret = xstrdup(v);
			for (char *c = s->env.ret; *c != '\0'; c++)
				*c = (char)(*c & ~0x20);
			break;
		case 16:
			if (!xtext_valid(v, ENVID_MAX))
				return "501 5.5.4 Error: bad ENVID parameter";
			s->env.envid = xstrdup(v);
			break;
		default:
			break; /* AUTH=: accepted and ignored */
		}
	}
	return NULL;
}

static const char *
notify_parse(const char *v, unsigned *r)
{
	char tmp[64], *save = NULL, *tok;
	unsigned n = 0;

	if (strlen(v) >= sizeof(tmp))
		return "501 5.5.4 Error: bad NOTIFY parameter";
	memcpy(tmp, v, strlen(v) + 1);
	for (tok = strtok_r(tmp, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		if (strcasecmp(tok, "NEVER") == 0)
			n |= SMTP_NOTIFY_NEVER;
		else if (strcasecmp(tok, "SUCCESS") == 0)
			n |= SMTP_NOTIFY_SUCCESS;
		else if (strcasecmp(tok, "FAILURE") == 0)
			n |= SMTP_NOTIFY_FAILURE;
		else if (strcasecmp(tok, "DELAY") == 0)
			n |= SMTP_NOTIFY_DELAY;
		else
			return "501 5.5.4 Error: bad NOTIFY parameter";
	}
	if (n == 0 || ((n & SMTP_NOTIFY_NEVER) && n != SMTP_NOTIFY_NEVER))
		return "501 5.5.4 Error: bad NOTIFY parameter";
	*r = n;
	return NULL;
}

const char *
smtp_rcpt_params(struct smtp_server *s, char *rest)
{
	char *key, *v;
	const char *err;

	while ((key = next_param(&rest, &v)) != NULL) {
		if (v == NULL || *v == '\0')
			return "501 5.5.4 Error: parameter needs a value";
		if (strcasecmp(key, "NOTIFY") == 0) {
			if (s->pending.notify != 0)
				return "501 5.5.4 Error: duplicate parameter";
			if ((err = notify_parse(v, &s->pending.notify)) != NULL)
				return err;
		} else if (strcasecmp(key, "ORCPT") == 0) {
			char *semi = strchr(v, ';');

			if (s->pending.orcpt != NULL)
				return "501 5.5.4 Error: duplicate parameter";
			if (semi == NULL || semi == v ||
			    !xtext_valid(semi + 1, ORCPT_MAX) ||
			    strlen(v) > ORCPT_MAX)
				return "501 5.5.4 Error: bad ORCPT parameter";
			s->pending.orcpt = xstrdup(v);
		} else {
			return "555 5.5.4 Error: unsupported parameter";
		}
	}
	return NULL;
}
