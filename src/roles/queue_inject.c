/* queue, messages of its own (DSNs, DMARC aggregate reports): the bytes
 * written to a new spool file and committed with their envelope, as a
 * commit from front would be, without going through front.
 * SECURITY: the caller builds the message and chooses the recipients (as
 * lookup resolved them); ids come from spool_create. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/xmalloc.h"
#include "roles/queue_int.h"

int
queue_inject(struct queue *q, const void *msg, size_t len,
             struct spool_envelope *env, char newid_r[SPOOL_ID_SIZE],
             char **error_r)
{
	const uint8_t *p = msg;
	int fd;

	if ((fd = spool_create(q->spool, newid_r, error_r)) < 0)
		return -1;
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, p + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			*error_r = xasprintf("write: %s",
			                     w < 0 ? strerror(errno) : "short");
			close(fd);
			spool_discard(q->spool, newid_r);
			return -1;
		}
		off += (size_t)w;
	}
	close(fd);
	env->size = len;
	if (spool_commit(q->spool, newid_r, env, error_r) < 0) {
		spool_discard(q->spool, newid_r);
		return -1;
	}
	return 0;
}
