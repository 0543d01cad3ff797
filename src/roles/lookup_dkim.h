/* lookup's DKIM keys and signing for front (lookup_dkim.c). Private to
 * src/roles. */
#ifndef TERN_ROLES_LOOKUP_DKIM_H
#define TERN_ROLES_LOOKUP_DKIM_H

struct ipc_msg;
struct ipc_peer;

/* IPC_MSG_DKIM_KEYS: answer DKIM_KEYS_REPLY. */
void lookup_dkim_keys(const char *data_dir, struct ipc_peer *peer,
                      struct ipc_msg *msg);
/* IPC_MSG_DKIM_SIGN: answer DKIM_SIGNATURES. */
void lookup_dkim_sign(const char *data_dir, struct ipc_peer *peer,
                      struct ipc_msg *msg);

#endif
