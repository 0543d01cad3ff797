/* Brute-force protection for logins (the built-in fail2ban): failures are
 * counted per client IP and per account in a sliding window; answers are
 * delayed more as failures grow; too many failures from one IP ban it for
 * a while. Bans are kept in state.db (SQLite) and survive a restart; a
 * right password does not lift a ban. Trusted networks are never delayed
 * or banned.
 * SECURITY: the tables are bounded (AUTHLIMIT_TRACK_MAX entries; the
 * oldest are dropped first), so a flood of addresses cannot exhaust
 * memory. */
#ifndef TERN_DIRECTORY_AUTHLIMIT_H
#define TERN_DIRECTORY_AUTHLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTHLIMIT_TRACK_MAX 100000

struct authlimit_policy {
	uint32_t max_failures;	/* per IP within window: then ban (10) */
	uint64_t window_ms;	/* 10 min */
	uint64_t ban_ms;	/* 1 h */
	uint64_t delay_base_ms; /* first delay after a failure (250 ms) */
	uint64_t delay_max_ms;	/* cap on the delay (15 s) */
	/* CIDR strings ("192.0.2.0/24", "2001:db8::/32", "127.0.0.1"). */
	const char *const *trusted;
	size_t ntrusted;
};

struct authlimit;

/* state_db: path of the SQLite file holding bans (created if missing).
 * Bad trusted networks are an error naming the entry. */
struct authlimit *authlimit_open(const char *state_db,
				 const struct authlimit_policy *policy,
				 char **error_r);
void authlimit_close(struct authlimit **al);

/* Milliseconds left on a ban of ip, 0 if none. */
uint64_t authlimit_banned(struct authlimit *al, const char *ip,
			  uint64_t now_ms);
/* How long to hold back the answer to this attempt, from the recent
 * failures of ip and of account (the larger wins; 0 when trusted). */
uint64_t authlimit_delay(struct authlimit *al, const char *ip,
			 const char *account, uint64_t now_ms);
/* Count a failure; true when it started a ban of ip (logged by the caller
 * with the stable line "event=auth-ban ip=… failures=… ban_s=…"). */
bool authlimit_failure(struct authlimit *al, const char *ip,
		       const char *account, uint64_t now_ms);
/* A success clears the account's failures (not the IP's, not a ban). */
void authlimit_success(struct authlimit *al, const char *ip,
		       const char *account, uint64_t now_ms);
/* Lift a ban (operator action). 1 if there was one, 0 if not, -1 error. */
int authlimit_unban(struct authlimit *al, const char *ip, char **error_r);
/* Current bans: ips_r[i] until until_ms_r[i] (malloc'd arrays). */
int authlimit_list_bans(struct authlimit *al, uint64_t now_ms, char ***ips_r,
			uint64_t **until_ms_r, size_t *n_r, char **error_r);

#endif
