/* Local delivery into Maildir (the format every Maildir tool reads):
 * data/mail/DOMAIN/LOCAL/{tmp,new,cur}. A message is written to tmp/,
 * fsync'd, linked into new/, and the directory fsync'd, before a recipient
 * is reported delivered.
 * SECURITY: runs in store only. Paths are built from directory keys
 * (address_key form, checked again here: no "/", no "..", no leading ".",
 * bounded) under the mail root; files are created O_EXCL, 0600, with
 * O_NOFOLLOW on every open. */
#ifndef TERN_STORE_MAILDIR_H
#define TERN_STORE_MAILDIR_H

#include <stddef.h>
#include <stdint.h>

enum maildir_result {
	MAILDIR_OK = 0,
	MAILDIR_TEMPFAIL = -1, /* disk full, I/O error: retry later */
	MAILDIR_PERMFAIL = -2, /* an address that cannot be a mailbox */
};

/* The mailbox directory of address ("local@domain") under mail_root,
 * created with tmp/ new/ cur/ (0700) if missing. malloc'd path or NULL. */
char *maildir_path(const char *mail_root, const char *address,
		   char **error_r);
/* The same, saying whether a failure is temporary (I/O) or permanent (an
 * address that cannot be a mailbox). */
enum maildir_result maildir_locate(const char *mail_root, const char *address,
                                   char **path_r, char **error_r);

/* Deliver the message read from msg_fd (from offset 0, CRLF line ends) to
 * each recipient: "Return-Path: <return_path>" and "Delivered-To: rcpt"
 * lines first, then the message with LF line ends (Maildir convention).
 * results[i] and, on failure, errors[i] (malloc'd) per recipient. */
void maildir_deliver(const char *mail_root, int msg_fd,
		     const char *return_path, const char *const *rcpts,
		     size_t n, enum maildir_result *results, char **errors);

#endif
