/* DKIM signing of submitted mail (front_sign.c): the digests are made in
 * front, the signatures in lookup. Private to src/roles. */
#ifndef TERN_ROLES_FRONT_SIGN_H
#define TERN_ROLES_FRONT_SIGN_H

#include <stdbool.h>

struct front_conn;
struct ipc_reader;

/* The DKIM-Signature fields ("" when the message is not signed). */
/* fields: the DKIM-Signature fields ("" when none could be made);
 * refusal: NULL, or why the message must be refused (553 5.7.1: its From:
 * is not one address the logged-in user may send as). */
typedef void front_sign_done_fn(struct front_conn *c, const char *fields,
                                const char *refusal);

/* Submission with a logged-in user. */
bool front_sign_wanted(const struct front_conn *c, const char *auth_user);
/* Sign the message in spool_fd; done runs later (on the loop). */
void front_sign_start(struct front_conn *c, int spool_fd,
                      front_sign_done_fn *done);
/* lookup's answers (IPC_MSG_DKIM_KEYS_REPLY, IPC_MSG_DKIM_SIGNATURES). */
void front_sign_keys_reply(struct front_conn *c, struct ipc_reader *r);
void front_sign_signatures_reply(struct front_conn *c, struct ipc_reader *r);
/* lookup's answer to the From: check (IPC_MSG_SENDER_REPLY). */
void front_sign_from_reply(struct front_conn *c, struct ipc_reader *r);
/* A question to lookup could not be asked. */
void front_sign_failed(struct front_conn *c);
/* The connection goes away. */
void front_sign_abandon(struct front_conn *c);

#endif
