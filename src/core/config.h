/* tern.conf: the file grammar, the table of settings, and the typed result.
 *
 * Grammar (line oriented): `key value…` per line; `name arg… {` opens a
 * block closed by `}` on its own line; `#` starts a comment outside quotes;
 * values may be "double quoted" with \" and \\ escapes; `include PATH`
 * (relative to the including file) reads another file in place. Every
 * setting is declared once in config_table.c with its type, default, range,
 * unit and help text; the parser, `tern config check`, `tern config
 * defaults`, the quickstart file and the docs all follow that table.
 * SECURITY: the file is trusted but may be wrong: every line, token, file
 * size, include depth and block depth is bounded, and every mistake is
 * reported as "FILE:LINE: what is wrong" rather than guessed around. */
#ifndef TERN_CORE_CONFIG_H
#define TERN_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"

#define CONFIG_LINE_MAX 4096
#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_INCLUDE_DEPTH 8
#define CONFIG_BLOCK_DEPTH 4
#define CONFIG_TOKENS_MAX 64

enum listener_service {
	SERVICE_SMTP,	     /* MX, port 25 */
	SERVICE_SUBMISSION,  /* 587, STARTTLS */
	SERVICE_SUBMISSIONS, /* 465, implicit TLS */
	SERVICE_LMTP,
	SERVICE_IMAP,
	SERVICE_IMAPS,
	SERVICE_POP3,
	SERVICE_POP3S,
	SERVICE_MANAGESIEVE,
	SERVICE_HTTP,
	SERVICE_COUNT
};

enum listener_tls {
	LISTENER_TLS_NONE,     /* plaintext only */
	LISTENER_TLS_STARTTLS, /* plaintext, upgrade offered */
	LISTENER_TLS_IMPLICIT, /* TLS from the first byte */
};

struct config_listener {
	char *file; /* where the block is, for messages */
	int line;
	enum listener_service service;
	char **addresses; /* "127.0.0.1", "::1", "*" (all IPv4 and IPv6) */
	size_t naddresses;
	uint16_t port;
	enum listener_tls tls;
	bool proxy_protocol;
	uint32_t max_connections;
	uint32_t max_connections_per_ip;
};

struct config_certificate {
	char *file;
	int line;
	char *name; /* the block label; SNI uses the names in the certificate */
	char *cert; /* PEM chain, absolute path */
	char *key;  /* PEM private key, absolute path */
};

struct config {
	char *path; /* the main file, absolute */

	char *hostname;
	char *data_dir; /* absolute */
	enum log_level log_level;
	bool log_syslog;
	char *syslog_facility;

	char *front_user;
	char *lookup_user;
	char *queue_user;
	char *store_user;

	uint64_t shutdown_timeout_ms;
	uint64_t certificate_check_interval_ms;
	uint64_t restart_backoff_max_ms;

	char *resolver;		/* "ADDR:PORT", "" = the system resolver */
	char *dns_trust_anchor; /* root key file, "" = no DNSSEC validation */

	struct config_listener *listeners;
	size_t nlisteners;
	struct config_certificate *certificates;
	size_t ncertificates;
};

/* Read and check a file. NULL on error, with *error_r set to a malloc'd
 * "FILE:LINE: what is wrong" (free it). Relative paths in values are made
 * absolute against the directory of the file they appear in. */
struct config *config_load(const char *path, char **error_r);
/* The same from memory; name is used in messages and base_dir resolves
 * relative paths. */
struct config *config_parse(const char *name, const char *base_dir,
			    const char *text, size_t len, char **error_r);
/* Canonical text that config_parse() reads back to an equal config: how the
 * parent hands the config to each role over ipc. malloc'd. */
char *config_serialize(const struct config *cfg);
/* The whole table as a commented file: every setting, its default, range and
 * help (`tern config defaults`). malloc'd. */
char *config_describe_defaults(void);
void config_free(struct config **cfg);

const char *config_service_name(enum listener_service s);
/* The service's default TLS mode and port (before the port offset). */
enum listener_tls config_service_default_tls(enum listener_service s);
uint16_t config_service_default_port(enum listener_service s);
const char *config_tls_name(enum listener_tls t);

/* Value parsers shared with the CLI, each 0 or -1. */
int config_parse_size(const char *s, uint64_t *bytes_r);
int config_parse_duration(const char *s, uint64_t *ms_r);
int config_parse_bool(const char *s, bool *value_r);

#endif
