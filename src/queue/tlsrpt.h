/* TLS reporting data (RFC 8460): per day and policy domain, how many
 * outbound sessions succeeded and which failed how, under which policy
 * (MTA-STS, DANE/TLSA, or none found), kept in DIR/tlsrpt.db for the
 * daily reports to the domain's rua. Recorded from the queue's worker
 * threads: one SQLite connection in serialized mode.
 * SECURITY: every value is a bound parameter; host names and details
 * come from DNS and remote servers and are bounded (TLSRPT_TEXT_MAX). */
#ifndef TERN_QUEUE_TLSRPT_H
#define TERN_QUEUE_TLSRPT_H

#include <stddef.h>
#include <stdint.h>

#define TLSRPT_TEXT_MAX 255

enum tlsrpt_policy {
	TLSRPT_POLICY_STS,  /* "sts" */
	TLSRPT_POLICY_TLSA, /* "tlsa" */
	TLSRPT_POLICY_NONE, /* "no-policy-found" */
};

/* RFC 8460 4.3 result types, and success. */
enum tlsrpt_result {
	TLSRPT_SUCCESS,
	TLSRPT_STARTTLS_NOT_SUPPORTED,
	TLSRPT_CERTIFICATE_HOST_MISMATCH,
	TLSRPT_CERTIFICATE_NOT_TRUSTED,
	TLSRPT_VALIDATION_FAILURE,
	TLSRPT_TLSA_INVALID,
	TLSRPT_DNSSEC_INVALID,
	TLSRPT_STS_WEBPKI_INVALID,
};

const char *tlsrpt_policy_name(enum tlsrpt_policy p);
const char *tlsrpt_result_name(enum tlsrpt_result r);

struct tlsrpt;

struct tlsrpt *tlsrpt_open(const char *path, char **error_r);
void tlsrpt_close(struct tlsrpt **t);

/* Count one session to domain's MX host mx (or the failure before it)
 * on the UTC day of now_ms. detail: a short reason for failures, or
 * NULL. 0, or -1 with *error_r. */
int tlsrpt_record(struct tlsrpt *t, uint64_t now_ms, const char *domain,
                  enum tlsrpt_policy policy, const char *mx,
                  enum tlsrpt_result result, const char *detail,
                  char **error_r);

/* The counts of domain on day ("YYYY-MM-DD"): successes and failures,
 * for reports and tests. */
int tlsrpt_counts(struct tlsrpt *t, const char *day, const char *domain,
                  uint64_t *success_r, uint64_t *failure_r, char **error_r);

/* "YYYY-MM-DD", the UTC day of now_ms. */
void tlsrpt_day(uint64_t now_ms, char day[11]);

/* A day's data about one recipient domain: one report. */
struct tlsrpt_key {
	char day[11];
	char domain[TLSRPT_TEXT_MAX + 1];
};

/* The (day, domain) pairs of days before before_day, oldest first, at
 * most max. 0 with *keys_r (free()), or -1 with *error_r. */
int tlsrpt_due(struct tlsrpt *t, const char *before_day, size_t max,
               struct tlsrpt_key **keys_r, size_t *n_r, char **error_r);

/* The rows of one report. */
struct tlsrpt_entry {
	char *policy, *mx, *result, *detail;
	uint64_t count;
};
int tlsrpt_entries(struct tlsrpt *t, const struct tlsrpt_key *key,
                   struct tlsrpt_entry **entries_r, size_t *n_r,
                   char **error_r);
void tlsrpt_entries_free(struct tlsrpt_entry **entries, size_t n);

/* The report is sent (or never will be): its rows go. */
int tlsrpt_forget(struct tlsrpt *t, const struct tlsrpt_key *key,
                  char **error_r);
/* Rows of days before before_day go (unsent reports given up). The
 * number of rows removed, or -1 with *error_r. */
int tlsrpt_prune(struct tlsrpt *t, const char *before_day, char **error_r);

#endif
