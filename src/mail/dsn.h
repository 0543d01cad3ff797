/* Delivery status notifications (RFC 3464, RFC 3462 multipart/report;
 * RFC 6533 message/global-delivery-status for SMTPUTF8 mail): the message
 * the queue sends back to an envelope sender when delivery failed, was
 * delayed, or (NOTIFY=SUCCESS) succeeded. Pure text building: no I/O.
 * SECURITY: the diagnostic texts come from remote servers; they are
 * folded to printable ASCII (or UTF-8 for a global DSN), bounded, and
 * never allowed to start a header field or a MIME boundary of their own. */
#ifndef TERN_MAIL_DSN_H
#define TERN_MAIL_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct buf;

#define DSN_DIAGNOSTIC_MAX 900 /* bytes of one Diagnostic-Code kept */

enum dsn_action {
	DSN_FAILED,
	DSN_DELAYED,
	DSN_DELIVERED,
	DSN_RELAYED, /* handed to a server that does not do DSN */
};

struct dsn_rcpt {
	const char *address;	/* Final-Recipient, without "rfc822;" */
	const char *orcpt;	/* ORCPT as received ("rfc822;bob@x"), or
				   NULL */
	enum dsn_action action;
	const char *status;	/* "5.1.1", "4.4.1", "2.0.0" */
	const char *remote_mta; /* the host that answered, or NULL */
	/* The remote's reply ("550 5.1.1 <bob@x>: no such user") or our own
	 * words ("expired after 5 days in the queue"); may be NULL. When
	 * remote_mta is set it becomes "smtp; …", else "x-tern; …". */
	const char *diagnostic;
	time_t last_attempt; /* 0: none */
	time_t will_retry_until; /* DELAYED only, 0: omit */
};

struct dsn_report {
	const char *reporting_mta; /* our hostname */
	const char *sender;	   /* the original envelope sender: To: */
	const char *queue_id;	   /* X-Postfix-style id in the text */
	const char *envid;	   /* Original-Envelope-Id, or NULL */
	time_t arrival;		   /* when we accepted the message */
	time_t now;		   /* Date: */
	const char *message_id;	   /* "<…@host>" for Message-ID: */
	bool smtputf8;		   /* global DSN (RFC 6533) */
	/* RET=HDRS (or the original is over max_original): only the header
	 * section of the original goes back (text/rfc822-headers); else the
	 * whole message (message/rfc822). */
	bool headers_only;
	size_t max_original; /* 0: no limit */
	const struct dsn_rcpt *rcpts;
	size_t nrcpts;
};

/* Append the whole DSN message (header and body, CRLF line ends, ready
 * for the spool) to out. original/original_len: the original message as
 * spooled (any line ends; may be NULL/0). From: is
 * "Mail Delivery System <MAILER-DAEMON@reporting_mta>"; the Subject says
 * what happened ("Undelivered Mail Returned to Sender", "Delayed Mail
 * (still being retried)", "Successful Mail Delivery Report"); the first
 * part explains it in plain words per recipient. 0, or -1 when out is
 * full (its max). */
int dsn_build(const struct dsn_report *r, const uint8_t *original,
              size_t original_len, struct buf *out);

#endif
