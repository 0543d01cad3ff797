/* front's SPF and DKIM checks of inbound mail (front_auth.c). Private to
 * src/roles. */
#ifndef TERN_ROLES_FRONT_AUTH_H
#define TERN_ROLES_FRONT_AUTH_H

#include <stdbool.h>

struct front;
struct front_conn;

#define FRONT_AUTH_THREADS 4

/* What the checks decided. */
enum front_auth_verdict {
	FRONT_AUTH_ACCEPT,
	FRONT_AUTH_JUNK,   /* DMARC quarantine: deliver to Junk */
	FRONT_AUTH_REJECT, /* DMARC reject: 550 5.7.1 reason */
};

struct front_auth_outcome {
	const char *headers; /* to put before the message ("" when none) */
	enum front_auth_verdict verdict;
	const char *reason; /* for a rejection, for the client */
	/* For an ARC set on forwarded copies: the Authentication-Results
	 * value (authserv-id first; "" when none), and the chain as found
	 * (enum arc_status), or -1 when no set may be added (the chain
	 * ended with cv=fail, or is at its longest). */
	const char *authres;
	int arc_chain;
};

typedef void front_auth_done_fn(struct front_conn *c,
                                const struct front_auth_outcome *o);

/* Resolver (before the privilege drop: it reads resolv.conf) and worker
 * threads. */
int front_auth_init(struct front *f, char **error_r);
/* After the drop: the worker threads. */
void front_auth_start(struct front *f);
/* Whether this connection's mail is checked (the MX listener). */
bool front_auth_wanted(const struct front_conn *c);
/* Check the message in spool_fd; done runs later on the loop, only if the
 * connection is still there. */
void front_auth_check(struct front_conn *c, int spool_fd, const char *helo,
                      const char *mail_from, front_auth_done_fn *done);

#endif
