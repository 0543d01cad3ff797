/* Mailbox directories in Maildir form (the format every Maildir tool
 * reads): data/mail/DOMAIN/LOCAL/{tmp,new,cur}, created 0700 and made
 * durable (the new entries' parents fsync'd) before they are used.
 * SECURITY: runs in store only. Paths are built from directory keys
 * (address_key form, checked again here: no "/", no "..", no leading ".",
 * bounded) under the mail root, with O_NOFOLLOW on every open. */
#ifndef TERN_STORE_MAILDIR_H
#define TERN_STORE_MAILDIR_H

#include <stdbool.h>

enum maildir_result {
	MAILDIR_OK = 0,
	MAILDIR_TEMPFAIL = -1, /* disk full, I/O error: retry later */
	MAILDIR_PERMFAIL = -2, /* an address that cannot be a mailbox */
};

/* The mailbox directory of address ("local@domain") under mail_root,
 * created with tmp/ new/ cur/ (0700) if missing. malloc'd path or NULL. */
char *maildir_path(const char *mail_root, const char *address, char **error_r);
/* The same, saying whether a failure is temporary (I/O) or permanent (an
 * address that cannot be a mailbox). */
enum maildir_result maildir_locate(const char *mail_root, const char *address,
                                   char **path_r, char **error_r);

/* Whether s may stand in a header line written before a delivered message
 * (Return-Path): no control byte, so nothing can end the line early and
 * add a header of its own. */
bool maildir_header_value_ok(const char *s);

#endif
