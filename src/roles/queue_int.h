/* The queue role's shared state, for its files: queue.c (spool commits,
 * the schedule, local delivery through store), queue_send.c (outbound
 * jobs on worker threads), queue_dsn.c (bounces and other DSNs),
 * queue_inject.c (committing messages of its own) and queue_dmarc.c
 * (DMARC aggregate reports). */
#ifndef TERN_ROLES_QUEUE_INT_H
#define TERN_ROLES_QUEUE_INT_H

#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdint.h>

#include "core/buf.h"
#include "queue/spool.h"
#include "roles/queue_out.h"
#include "roles/roles.h"

#define INFLIGHT_MAX 256
/* store's outcomes waiting to be recorded together, at most */
#define OUTCOMES_MAX 1024
#define DSN_PENDING_MAX 32

/* A message with an attempt under way: store delivery and outbound jobs
 * (parts); it is not looked at again until all are back. */
struct inflight {
	char id[SPOOL_ID_SIZE];
	unsigned attempts; /* of the local recipients */
	uint64_t created_ms;
	unsigned parts;
	bool local; /* one part is with store */
};

/* A destination with deliveries under way (its concurrency limit). */
struct destination {
	char key[300]; /* "relay:NAME" or "mx:DOMAIN" */
	unsigned active;
};

/* A DSN waiting for lookup to say where its recipient (the original
 * sender) lives. */
struct dsn_pending {
	char id[SPOOL_ID_SIZE];
	uint32_t reqid;
	bool active;
};

struct commit_req;
struct commit_batch;
struct outcome;
struct mtasts_cache;
struct tlsrpt;
struct dns_resolver;
struct workpool;

struct queue {
	struct child_ctx *ctx;
	struct spool *spool;
	struct event *tick; /* the periodic look at what is due */
	/* "Look now": a separate one-shot event, because activating the
	 * persistent tick by hand pushes its next timeout further out each
	 * time (libevent bases it on the previous one), and under load the
	 * queue would stop looking at all. */
	struct event *kick;
	struct event *commit_ev; /* runs the pending commits */
	struct commit_req *commits, **commits_tail;
	size_t ncommits;
	struct commit_batch *batch; /* the group commit under way, or NULL */
	struct workpool *sync;      /* its thread, for the disk's waits */
	/* Finished messages' files go on a thread of their own: freeing
	 * their blocks can wait for the disk (a discard). */
	struct workpool *recycle;
	struct spool_recycle *recycling; /* under way */
	bool run_deferred; /* a look at what is due waits for the batch */
	struct event *outcomes_ev; /* records the outcomes below */
	struct outcome *outcomes;
	size_t noutcomes, outcomes_cap;
	struct inflight inflight[INFLIGHT_MAX];
	size_t ninflight;
	/* outbound */
	struct workpool *pool;
	struct dns_resolver *resolver;
	SSL_CTX *mx_ctx;
	SSL_CTX *sts_ctx; /* verifying, for MTA-STS hosts */
	struct mtasts_cache *sts_cache;
	struct tlsrpt *tlsrpt; /* TLS-RPT data, data/queue/tlsrpt.db */
	struct {
		char *name;
		SSL_CTX *ctx;
	} * relay_ctx; /* per relay, made when first used */
	size_t nrelay_ctx;
	struct destination *dests;
	size_t ndests;
	unsigned out_active;
	bool front_flushed; /* stopping: the last answers are sent */
	/* stopping: waiting for outbound sessions, until the deadline */
	struct event *shutdown_ev;
	uint64_t shutdown_deadline_ms;
	/* DSNs */
	struct dsn_pending dsn[DSN_PENDING_MAX];
	uint32_t dsn_reqid;
};

/* queue.c */
struct inflight *queue_inflight_add(struct queue *q, const char *id);
void queue_kick(struct queue *q);
uint64_t queue_retry_delay(const struct config *cfg, unsigned attempts);
void queue_out_done(struct child_ctx *ctx, struct out_job *job,
                    const unsigned *attempts, uint64_t created_ms);

/* queue_send.c */
int queue_send_start(struct child_ctx *ctx, char **error_r);
/* The config changed: relay TLS contexts are made anew when next used. */
void queue_send_reload(struct child_ctx *ctx);
/* Start outbound jobs for the due non-local recipients of message id
 * (due: the whole batch; only id's entries are used). */
void queue_out_dispatch(struct child_ctx *ctx, const char *id,
                        const struct spool_due *due, size_t n);

/* queue_inject.c: write msg into a new spool file and commit it with env
 * (env->size is set here); the id in newid_r. 0, or -1 with *error_r
 * (malloc'd) and nothing left in the spool. */
int queue_inject(struct queue *q, const void *msg, size_t len,
                 struct spool_envelope *env, char newid_r[SPOOL_ID_SIZE],
                 char **error_r);

/* lookup's answer to IPC_MSG_RCPT_CHECK: the result (0 accept, 1
 * unknown, 2 relay denied, 3 disabled, 4 temporary) and the final
 * addresses with their local flags. */
struct queue_finals {
	uint32_t result;
	char **addr;
	bool *local;
	size_t n;
};
/* 0, or -1 when the reply is malformed or names more than max addresses
 * (f is then empty). */
int queue_finals_read(struct ipc_msg *msg, size_t max, struct queue_finals *f);
void queue_finals_clear(struct queue_finals *f);

/* queue_outbox.c: a report of queue's own (msg, taken) to one address:
 * lookup resolves it, then the message is committed from `from`. done
 * runs on the loop, always once, with the new queue id when sent. */
enum queue_outbox_result {
	QUEUE_OUTBOX_SENT,
	QUEUE_OUTBOX_LATER, /* not now (why says so): try at the next run */
	QUEUE_OUTBOX_NEVER, /* the address is not deliverable */
};
typedef void queue_outbox_done_fn(struct child_ctx *ctx, void *arg,
                                  enum queue_outbox_result r, const char *why,
                                  const char *queue_id);
void queue_outbox_send(struct child_ctx *ctx, const char *from, const char *to,
                       struct buf *msg, queue_outbox_done_fn *done, void *arg);
/* An RCPT_REPLY of ours? (then it is handled) */
bool queue_outbox_reply(struct child_ctx *ctx, struct ipc_msg *msg);
/* Each queue run: questions lookup left unanswered are given up. */
void queue_outbox_run(struct child_ctx *ctx);
void queue_outbox_link_down(struct child_ctx *ctx);

/* queue_tlsrpt.c: the daily TLS-RPT reports (RFC 8460). */
void queue_tlsrpt_start(struct child_ctx *ctx);
void queue_tlsrpt_stop(struct child_ctx *ctx);

/* A run's reports and their messages (queue_outbox.c). */
enum report_state {
	REPORT_READY,   /* built, to go */
	REPORT_ASKED,   /* with the outbox */
	REPORT_SENT,    /* committed to the spool */
	REPORT_DROPPED, /* never (why) */
	REPORT_LATER,   /* not now (why): a next run may */
};

struct report_batch;

struct report_msg {
	size_t report;     /* the owner's report index */
	char address[320]; /* the address, or the URI it could not use */
	enum report_state state;
	const char *why;
	struct buf msg;
	struct report_batch *batch;
};

struct report_batch_ops {
	/* A message's outcome (queue_id when sent), or why it never went
	 * out, for the log. */
	void (*log)(struct child_ctx *ctx, void *owner,
	            const struct report_msg *m, const char *queue_id);
	/* Every message of report i is answered: one went (sent), or one
	 * may go at a later run (later). */
	void (*report_done)(struct child_ctx *ctx, void *owner, size_t i,
	                    bool sent, bool later);
	/* Every report is done: the owner may free the batch. */
	void (*done)(struct child_ctx *ctx, void *owner);
};

struct report_batch {
	const struct report_batch_ops *ops;
	void *owner;
	char *from;
	size_t nreports;
	struct report_msg *msgs;
	size_t nmsgs;
	bool *finished; /* per report */
	bool sending;
};

struct report_batch *report_batch_new(const struct report_batch_ops *ops,
                                      void *owner, const char *from,
                                      size_t nreports);
/* A message for report i (msg taken); or one that will not go now
 * (later) or ever. Any thread, before report_batch_send. */
void report_batch_add(struct report_batch *b, size_t report,
                      const char *address, struct buf *msg);
void report_batch_skip(struct report_batch *b, size_t report,
                       const char *address, bool later, const char *why);
/* Send them all (on the loop); the callbacks may run before it returns.
 * A report without messages is done at once (neither sent nor later). */
void report_batch_send(struct child_ctx *ctx, struct report_batch *b);
void report_batch_free(struct report_batch **b);

/* (Re)arm a one-shot timer made on first use. */
void queue_timer_set(struct event **ev, struct child_ctx *ctx,
                     event_callback_fn cb, uint64_t delay_ms);

/* queue_sign.c: DKIM signatures for queue's own messages (those
 * queue_inject commits with SPOOL_FLAG_SIGN), made by lookup. */
void queue_sign_run(struct child_ctx *ctx);
/* IPC_MSG_DKIM_KEYS_REPLY and IPC_MSG_DKIM_SIGNATURES from lookup. */
void queue_sign_reply(struct child_ctx *ctx, struct ipc_msg *msg);
void queue_sign_link_down(struct child_ctx *ctx);

/* queue_dsn.c */
void queue_dsn_run(struct child_ctx *ctx);
void queue_dsn_reply(struct child_ctx *ctx, struct ipc_msg *msg);
void queue_dsn_link_down(struct child_ctx *ctx);

#endif
