/* Trace fields for the SMTP server: the Received: header (RFC 5321 §4.4,
 * protocol names from RFC 3848), RFC 5322 dates and Message-IDs.
 * SECURITY: the HELO name and the login come from the peer; they are
 * reduced to safe characters and truncated before they go into a header. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "core/xmalloc.h"
#include "smtp/server_int.h"

#define TRACE_ITEM_MAX 60

/* Copy in to out keeping only characters that cannot break a comment or a
 * header (no controls, parentheses, backslash, non-ASCII), at most
 * TRACE_ITEM_MAX of them. */
static void
trace_clean(const char *in, char *out, size_t size)
{
	size_t n = 0;

	for (; in != NULL && *in != '\0' && n + 1 < size && n < TRACE_ITEM_MAX;
	     in++) {
		unsigned char c = (unsigned char)*in;

		if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' ||
		    c == '\\' || c == ';')
			c = '?';
		out[n++] = (char)c;
	}
	out[n] = '\0';
}

void
smtp_date_now(char *out, size_t size)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
	                                   "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
	                                     "May", "Jun", "Jul", "Aug",
	                                     "Sep", "Oct", "Nov", "Dec"};
	time_t now = time(NULL);
	struct tm tm;

	if (gmtime_r(&now, &tm) == NULL) {
		snprintf(out, size, "Thu, 1 Jan 1970 00:00:00 +0000");
		return;
	}
	snprintf(out, size, "%s, %d %s %d %02d:%02d:%02d +0000",
	         days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	         tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

char *
smtp_message_id(const struct smtp_server *s)
{
	static unsigned long counter;
	unsigned char rnd[8];
	char hex[17];
	struct tm tm;
	time_t now = time(NULL);

	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		unsigned long v = (unsigned long)now ^
		                  ((unsigned long)getpid() << 16) ^ ++counter;
		for (size_t i = 0; i < sizeof(rnd); i++)
			rnd[i] = (unsigned char)(v >> (i * 8));
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	if (gmtime_r(&now, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	return xasprintf("<%04d%02d%02d%02d%02d%02d.%s@%s>", tm.tm_year + 1900,
	                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	                 tm.tm_sec, hex, s->hostname);
}

char *
smtp_received_header(const struct smtp_server *s)
{
	char helo[TRACE_ITEM_MAX + 1], user[TRACE_ITEM_MAX + 1];
	char ver[TRACE_ITEM_MAX + 1], cipher[TRACE_ITEM_MAX + 1];
	char date[64], proto[16], tls[2 * TRACE_ITEM_MAX + 40] = "";
	char auth[TRACE_ITEM_MAX + 40] = "";

	trace_clean(s->helo != NULL ? s->helo : "unknown", helo, sizeof(helo));
	/* RFC 3848: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, LMTP, LMTPS… */
	snprintf(proto, sizeof(proto), "%s%s%s",
	         s->kind == SMTP_KIND_LMTP ? "LMTP"
	         : s->esmtp                ? "ESMTP"
	                                   : "SMTP",
	         s->tls_active ? "S" : "", s->logged_in ? "A" : "");
	if (s->kind != SMTP_KIND_LMTP && !s->esmtp &&
	    (s->tls_active || s->logged_in))
		snprintf(proto, sizeof(proto), "ESMTP%s%s",
		         s->tls_active ? "S" : "", s->logged_in ? "A" : "");
	if (s->tls_active) {
		trace_clean(s->tls_version != NULL ? s->tls_version : "TLS",
		            ver, sizeof(ver));
		trace_clean(s->tls_cipher != NULL ? s->tls_cipher : "unknown",
		            cipher, sizeof(cipher));
		snprintf(tls, sizeof(tls), "\t(using %s with cipher %s)\r\n",
		         ver, cipher);
	}
	if (s->logged_in) {
		trace_clean(s->user, user, sizeof(user));
		snprintf(auth, sizeof(auth), "\t(authenticated user %s)\r\n",
		         user);
	}
	smtp_date_now(date, sizeof(date));
	return xasprintf("Received: from %s ([%s])\r\n%s%s"
	                 "\tby %s (tern) with %s;\r\n\t%s\r\n",
	                 helo, s->client_ip, tls, auth, s->hostname, proto,
	                 date);
}
