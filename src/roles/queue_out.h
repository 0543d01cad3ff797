/* One outbound delivery attempt, run on a queue worker thread: one
 * message's recipients for one destination (a relay, or a domain's MX
 * hosts), over one SMTP client session (src/smtp/client.h) with blocking
 * sockets under timeouts. Everything it needs is copied into the job, so a
 * reload on the loop cannot pull anything from under it.
 * SECURITY: talks to remote servers; all it gets back are reply texts,
 * bounded by the SMTP client, and the outcome per recipient. */
#ifndef TERN_ROLES_QUEUE_OUT_H
#define TERN_ROLES_QUEUE_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "mailauth/dnsif.h"

struct mtasts_cache;
struct tlsrpt;

enum out_outcome {
	OUT_DELIVERED,
	OUT_TEMPFAIL,
	OUT_PERMFAIL,
};

struct out_rcpt {
	char *address;
	unsigned notify;
	char *orcpt;
	/* results */
	enum out_outcome outcome;
	char status[16];
	char *diagnostic; /* the reply ("550 5.1.1 …") or our words */
};

struct out_relay {
	char *name;
	char *host;
	uint16_t port;
	int tls;        /* enum relay_tls */
	char *user;     /* NULL: no AUTH */
	char *password; /* NULL: no AUTH */
	SSL_CTX *ctx;   /* verifying (or not, by tls_verify); referenced */
	bool verify;
};

struct out_job {
	/* in */
	char id[17];
	int fd;        /* the spool file; closed by queue_out_run */
	char *headers; /* put before the message, or NULL */
	char *mail_from;
	bool smtputf8;
	char *ret, *envid;
	char *domain; /* the recipients' domain (MX) */
	/* "relay:NAME" or "mx:DOMAIN": sessions to it are kept for the next
	 * message (connection reuse); NULL: a new session, closed after */
	char *dest_key;
	struct out_relay *relay; /* or NULL: MX delivery */
	struct out_rcpt *rcpts;
	size_t nrcpts;
	char *helo_name;
	uint16_t mx_port;
	bool ipv6;
	uint64_t connect_timeout_ms;
	SSL_CTX *mx_ctx; /* unverified (opportunistic) unless a host has
	                    DANE (SSL_CTX_dane_enable done); referenced */
	struct ma_dns dns;
	/* MTA-STS (RFC 8461): the policy cache (shared, thread-safe), the
	 * context that verifies MX certificates against the WebPKI (or
	 * mta_sts_ca_file; referenced), how to fetch policies */
	struct mtasts_cache *sts_cache;
	/* TLS-RPT data (RFC 8460), shared; NULL: not recorded */
	struct tlsrpt *tlsrpt;
	SSL_CTX *sts_ctx;
	char *sts_ca_file; /* or NULL: the system store */
	uint16_t sts_port;
	/* set up failed (rcpts already carry the outcome): do not run */
	bool prefailed;
	/* out */
	char *remote_mta;  /* the host that gave the answers, or NULL */
	bool dsn_passed;   /* that server took the DSN parameters along */
	char tls_info[96]; /* "TLSv1.3 TLS_AES_256_GCM_SHA384", with " dane"
	                      or " mta-sts" when DANE or MTA-STS
	                      authenticated the server, or "" */
};

/* Run the attempt; fills every rcpt's outcome. */
void queue_out_run(struct out_job *job);
void queue_out_job_free(struct out_job **job);

#endif
