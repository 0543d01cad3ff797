/* ARC sealing of inbound mail that one of our aliases forwards to an
 * external address (front_arc.c): the digests are made in front, the
 * signatures in lookup, as for DKIM. Private to src/roles. */
#ifndef TERN_ROLES_FRONT_ARC_H
#define TERN_ROLES_FRONT_ARC_H

struct front_conn;
struct ipc_reader;

/* fields: ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results
 * ("" when no set could be made: the copies are forwarded unsealed). */
typedef void front_arc_done_fn(struct front_conn *c, const char *fields);

/* Seal the message in spool_fd with a key of domain (one of ours):
 * authres is the Authentication-Results value of our checks, chain the
 * ARC chain status they found (enum arc_status). done runs later on the
 * loop, always. */
void front_arc_start(struct front_conn *c, int spool_fd, const char *domain,
                     const char *authres, int chain, front_arc_done_fn *done);
/* lookup's answers (IPC_MSG_DKIM_KEYS_REPLY, IPC_MSG_DKIM_SIGNATURES). */
void front_arc_keys_reply(struct front_conn *c, struct ipc_reader *r);
void front_arc_signatures_reply(struct front_conn *c, struct ipc_reader *r);
/* A question to lookup could not be asked. */
void front_arc_failed(struct front_conn *c);
/* The connection goes away. */
void front_arc_abandon(struct front_conn *c);

#endif
