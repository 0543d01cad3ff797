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

/* Outbound TLS to a relay (index = the "tls" choice). */
enum relay_tls {
	RELAY_TLS_STARTTLS, /* STARTTLS required */
	RELAY_TLS_IMPLICIT, /* TLS from the first byte (port 465) */
	RELAY_TLS_NONE,     /* plaintext: loopback relays only */
};

/* A smarthost: `relay NAME { … }`. */
struct config_relay {
	char *file;
	int line;
	char *name;
	char *host; /* name or IP literal */
	uint16_t port;
	enum relay_tls tls;
	bool tls_verify;     /* check the certificate and the host name */
	char *ca_file;       /* "" = the system store */
	char *user;          /* "" = no AUTH */
	char *password_file; /* "" = no AUTH; read by the queue process */
};

/* Where mail that is not for a local domain goes: `route NAME { … }`;
 * first match wins, no match: MX. */
struct config_route {
	char *file;
	int line;
	char *name;
	char **recipient_domains; /* "*", "example.org", "*.example.org" */
	size_t nrecipient_domains;
	char **sender_domains; /* the same forms; "*" = any sender */
	size_t nsender_domains;
	char *via; /* "mx" or a relay's name */
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

	/* The directory and logins (src/directory). */
	int directory_backend;	   /* 0 sqlite, 1 pgsql, 2 mysql */
	char *directory_connect;   /* "" = DATA_DIR/directory.db (sqlite) */
	char *subaddress_separator; /* "" = no subaddresses */
	int suspended_inbound;	   /* 0 accept, 1 reject (5.2.1) */
	bool allow_plain_passwords;
	uint64_t argon2_memory; /* bytes */
	uint32_t argon2_time;
	uint32_t argon2_parallelism;
	uint32_t scram_iterations;
	uint32_t auth_max_failures;
	uint64_t auth_failure_window_ms;
	uint64_t auth_ban_time_ms;
	uint64_t auth_delay_max_ms;
	char **auth_trusted_networks;
	size_t nauth_trusted_networks;

	/* SMTP, submission and LMTP sessions (src/smtp). */
	uint32_t smtp_line_max;
	uint64_t message_size_max;
	uint64_t smtp_header_max;
	uint32_t smtp_recipients_max;
	uint32_t smtp_errors_max;
	bool smtp_reject_bare_lf;
	uint64_t smtp_idle_timeout_ms;

	/* Mail authentication (front_auth.c). */
	bool dmarc_enforce;
	char **arc_trusted_sealers;
	size_t narc_trusted_sealers;
	/* DMARC aggregate reports we send (roles/queue_dmarc.c). */
	bool dmarc_reports;
	uint64_t dmarc_report_interval_ms;
	char *dmarc_report_from; /* "" = postmaster@hostname */
	/* TLS-RPT reports we send (roles/queue_tlsrpt.c). */
	bool tlsrpt_reports;
	char *tlsrpt_report_from; /* "" = postmaster@hostname */
	/* Forwarding to external aliases (roles/lookup.c, mail/srs.c). */
	bool srs;
	char *srs_domain; /* "" = the alias's own domain */

	/* Outbound delivery (src/queue, roles/queue*.c). */
	uint64_t queue_retry_first_ms;
	uint64_t queue_retry_max_ms;
	uint64_t queue_lifetime_ms;
	uint64_t queue_delay_warning_ms; /* 0: no delay notices */
	uint32_t outbound_concurrency;
	uint32_t outbound_destination_concurrency;
	uint16_t outbound_mx_port;
	bool outbound_ipv6;
	uint64_t outbound_connect_timeout_ms;
	char *mta_sts_ca_file; /* "" = the system store */
	uint16_t mta_sts_port;

	/* Abuse limits on authenticated senders (roles/queue_limits.c). */
	uint32_t sending_limit_messages;   /* per user per hour, 0 = off */
	uint32_t sending_limit_recipients; /* per user per hour, 0 = off */
	uint32_t sending_spike_factor;	   /* × usual hourly max, 0 = off */
	uint32_t sending_spike_floor;	   /* no spike at or below this */

	struct config_listener *listeners;
	size_t nlisteners;
	struct config_certificate *certificates;
	size_t ncertificates;
	struct config_relay *relays;
	size_t nrelays;
	struct config_route *routes;
	size_t nroutes;
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
/* Decimal digits only, no sign: 0 or -1. */
int config_parse_uint(const char *s, uint64_t *v_r);

/* The settings table (config_table.c), walked by config.c, the CLI and the
 * tests. Each setting is one row: name, type, default, bounds, help, and
 * where its value lives (offsetof in struct config or in a block's struct). */
enum config_type {
	CONFIG_STRING,
	CONFIG_PATH,     /* made absolute against the file's directory */
	CONFIG_BOOL,     /* yes | no */
	CONFIG_INT,      /* decimal, min..max; stored in `size` bytes */
	CONFIG_SIZE,     /* 10M, 64k, 1G: uint64_t bytes */
	CONFIG_DURATION, /* 500ms, 30s, 5m, 1h, 2d: uint64_t milliseconds */
	CONFIG_ENUM,     /* one of choices: index in `size` bytes, or a name */
	CONFIG_LIST,     /* one or more words: char ** plus a size_t count */
	CONFIG_BLOCK,    /* name LABEL { … }: an array + count */
};

#define CONFIG_F_REQUIRED 0x1  /* no default: the setting must be written */
#define CONFIG_F_EMPTY_OK 0x2  /* "" is a valid value (meaning "off") */
#define CONFIG_F_ENUM_NAME 0x4 /* ENUM stored as its name (char *) */

struct config_block;

struct config_setting {
	const char *name;
	enum config_type type;
	unsigned flags;
	const char *def; /* default as text; NULL: default_fn or required */
	const char *def_help; /* the default in words, when def is NULL */
	uint64_t min, max;    /* INT, SIZE, DURATION (ms); max 0: no bound */
	const char *const *choices; /* ENUM, NULL-terminated */
	size_t offset, size;        /* the field; size for INT and ENUM */
	size_t count_offset;        /* LIST and BLOCK: the size_t count */
	const char *example;        /* a value for `config defaults` */
	const char *help;
	/* Extra syntax check of one value; fills *why_r (malloc'd) on error. */
	int (*check)(const char *value, char **why_r);
	/* A default computed from the object (the system hostname, the TLS
	 * mode of a listener's service); malloc'd text. */
	char *(*default_fn)(const void *obj);
	const struct config_block *block; /* BLOCK */
};

struct config_block {
	const char *name;            /* "listener"; "" for the top level */
	struct config_setting label; /* the argument before "{" */
	const struct config_setting *settings;
	size_t nsettings;
	size_t elem_size, file_offset, line_offset;
	/* Checks over the whole object once it is complete. On error *why_r is
	 * malloc'd and *file_r / *line_r may name a better place than the
	 * block's opening line. */
	int (*finish)(const void *obj, const char **file_r, int *line_r,
	              char **why_r);
};

/* The top level of tern.conf. */
extern const struct config_block config_root;

/* Every setting and block name in the table (blocks' settings included, a
 * name may repeat); *names_r is malloc'd, the strings are static. */
size_t config_table_names(const char ***names_r);
/* An INT, SIZE or DURATION value as text that parses back to v, in the
 * largest exact unit ("30s", "10M", "25"). malloc'd. */
char *config_format_number(const struct config_setting *s, uint64_t v);
/* Must s be written "quoted" to read back as one word? */
bool config_needs_quotes(const char *s);

#endif
