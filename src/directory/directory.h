/* The directory: domains, users, aliases, app passwords and sender
 * permissions, in one schema on any sql.h backend, with forward migrations
 * (schema_version). Addresses are stored as address_key() strings (lower
 * case local part, A-label domain); callers normalize with src/mail/address
 * before calling, and these functions check again.
 * SECURITY: runs in lookup and in the CLI (as the operator); every value is
 * a bound parameter; list results are bounded by the caller's limit. */
#ifndef TERN_DIRECTORY_DIRECTORY_H
#define TERN_DIRECTORY_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "directory/sql.h"

#define DIRECTORY_SCHEMA_VERSION 1
#define ALIAS_DEPTH_MAX 8	/* alias → alias chains */
#define ALIAS_EXPANSION_MAX 1000 /* addresses one expansion may yield */

/* App password services, a bit each. */
#define DIR_SERVICE_IMAP 0x1
#define DIR_SERVICE_POP3 0x2
#define DIR_SERVICE_SMTP 0x4
#define DIR_SERVICE_SIEVE 0x8
#define DIR_SERVICE_ALL 0xf

struct directory;

struct dir_user {
	char *address;
	char *password_hash; /* NULL: no password (cannot log in) */
	char *scram;	     /* password_scram_keys() text or NULL */
	uint64_t quota_bytes; /* 0: no limit */
	bool suspended;
	int64_t created; /* unix seconds */
};

struct dir_app_password {
	int64_t id;
	char *label;
	char *password_hash;
	char *scram;
	unsigned services; /* DIR_SERVICE_* */
	int64_t created;
};

/* Open (and with migrate, create or upgrade the schema to
 * DIRECTORY_SCHEMA_VERSION in one transaction). A database whose version
 * is newer than this build is refused. */
struct directory *directory_open(enum sql_backend backend, const char *target,
				 bool migrate, char **error_r);
void directory_close(struct directory **dir);
int directory_schema_version(struct directory *dir, int *version_r,
			     char **error_r);

/* Each returns 0 ok, -1 error (*error_r: "domain example.org exists",
 * "no user a@b", or the driver's message); lookups return 1 found, 0 not
 * found, -1 error. */
int directory_domain_add(struct directory *dir, const char *domain,
			 char **error_r);
/* Refused while users or aliases of the domain exist unless force. */
int directory_domain_del(struct directory *dir, const char *domain, bool force,
			 char **error_r);
int directory_domain_exists(struct directory *dir, const char *domain,
			    char **error_r);
int directory_domain_list(struct directory *dir, char ***domains_r,
			  size_t *n_r, char **error_r);

/* The user's domain must exist. */
int directory_user_add(struct directory *dir, const struct dir_user *user,
		       char **error_r);
int directory_user_del(struct directory *dir, const char *address,
		       char **error_r);
int directory_user_get(struct directory *dir, const char *address,
		       struct dir_user *user_r, char **error_r);
int directory_user_set_password(struct directory *dir, const char *address,
				const char *hash, const char *scram,
				char **error_r);
int directory_user_set_suspended(struct directory *dir, const char *address,
				 bool suspended, char **error_r);
int directory_user_set_quota(struct directory *dir, const char *address,
			     uint64_t quota_bytes, char **error_r);
/* domain NULL: all users. Sorted by address. */
int directory_user_list(struct directory *dir, const char *domain,
			struct dir_user **users_r, size_t *n_r, char **error_r);
void dir_user_clear(struct dir_user *user);
void dir_users_free(struct dir_user **users, size_t n);

/* source: "local@domain" or "@domain" (catch-all); the source's domain must
 * exist; dests are addresses (local or external). Adding to an existing
 * source replaces its destinations. */
int directory_alias_set(struct directory *dir, const char *source,
			const char *const *dests, size_t ndests,
			char **error_r);
int directory_alias_del(struct directory *dir, const char *source,
			char **error_r);
int directory_alias_get(struct directory *dir, const char *source,
			char ***dests_r, size_t *n_r, char **error_r);
/* Every alias: sources_r[i] → dests_r[i] (comma-joined), sorted. */
int directory_alias_list(struct directory *dir, char ***sources_r,
			 char ***dests_r, size_t *n_r, char **error_r);

/* Where mail for address goes: a user → itself; an alias → its
 * destinations, expanded recursively (depth ALIAS_DEPTH_MAX, loops cut and
 * reported, at most ALIAS_EXPANSION_MAX results); else the domain's
 * catch-all if any. Returns 1 with the final addresses (users of local
 * domains and external addresses, deduplicated), 0 when nothing matches,
 * -1 on error (a loop or a bound exceeded is an error with its reason). */
int directory_resolve(struct directory *dir, const char *address,
		      char ***addresses_r, size_t *n_r, char **error_r);

int directory_app_password_add(struct directory *dir, const char *address,
			       const char *label, const char *hash,
			       const char *scram, unsigned services,
			       char **error_r);
int directory_app_password_del(struct directory *dir, const char *address,
			       const char *label, char **error_r);
int directory_app_password_list(struct directory *dir, const char *address,
				struct dir_app_password **list_r, size_t *n_r,
				char **error_r);
void dir_app_passwords_free(struct dir_app_password **list, size_t n);

/* May user send as address? Its own address, any alias source whose
 * destinations include the user, and explicit grants. 1 yes, 0 no, -1. */
int directory_sender_allowed(struct directory *dir, const char *user,
			     const char *address, char **error_r);
int directory_sender_grant(struct directory *dir, const char *user,
			   const char *address, char **error_r);
int directory_sender_revoke(struct directory *dir, const char *user,
			    const char *address, char **error_r);

void directory_strings_free(char ***strings, size_t n);

#endif
