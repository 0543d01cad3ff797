/* queue, messages of its own (DSNs, DMARC aggregate reports): the bytes
 * written to a new spool file and committed with their envelope, as a
 * commit from front would be, without going through front.
 * SECURITY: the caller builds the message and chooses the recipients (as
 * lookup resolved them); ids come from spool_create. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ipc.h"
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
	/* Due once queue_sign.c has had it signed. */
	env->flags |= SPOOL_FLAG_SIGN;
	if (spool_commit(q->spool, newid_r, env, error_r) < 0) {
		spool_discard(q->spool, newid_r);
		return -1;
	}
	return 0;
}

int
queue_finals_read(struct ipc_msg *msg, size_t max, struct queue_finals *f)
{
	struct ipc_reader r;
	uint32_t n;

	memset(f, 0, sizeof(*f));
	ipc_reader_init(&r, msg);
	f->result = ipc_get_u32(&r);
	n = ipc_get_u32(&r);
	if (r.error || n > max)
		return -1;
	if (n > 0) {
		f->addr = xcalloc(n, sizeof(*f->addr));
		f->local = xcalloc(n, sizeof(*f->local));
	}
	while (f->n < n && !r.error) {
		char *a = ipc_get_str(&r), *sender;

		f->local[f->n] = (ipc_get_u32(&r) & IPC_RCPT_LOCAL) != 0;
		/* An SRS sender for a forwarded address is not used: queue's
		 * own messages come from <> or a postmaster of ours. */
		sender = ipc_get_str(&r);
		free(sender);
		if (a == NULL)
			break;
		f->addr[f->n++] = a;
	}
	if (ipc_reader_done(&r) < 0 || f->n != n) {
		queue_finals_clear(f);
		return -1;
	}
	return 0;
}

void
queue_finals_clear(struct queue_finals *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->addr[i]);
	free(f->addr);
	free(f->local);
	memset(f, 0, sizeof(*f));
}
