/* Tests for tern.conf (src/core/config.c, src/core/config_table.c): values
 * of every type, each class of error with its exact "FILE:LINE: why", files
 * and includes, the canonical round trip, the defaults text, and the man page
 * against the table. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/xmalloc.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static struct config *
parse(const char *text, char **error_r)
{
	*error_r = NULL;
	return config_parse("t.conf", "/b", text, strlen(text), error_r);
}

static struct config *
parse_ok(const char *text)
{
	char *error = NULL;
	struct config *cfg = parse(text, &error);

	if (cfg == NULL)
		fail_msg("%s", error);
	return cfg;
}

/* serialize → parse → serialize gives the same text. */
static char *
round_trip(const struct config *cfg)
{
	char *text = config_serialize(cfg), *again, *error = NULL;
	struct config *back;

	back = config_parse("rt", "/nonexistent", text, strlen(text), &error);
	if (back == NULL)
		fail_msg("reparse: %s\n%s", error, text);
	again = config_serialize(back);
	assert_string_equal(again, text);
	free(again);
	config_free(&back);
	return text;
}

/* A temp directory for file and include tests, removed afterwards. */
static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
tmpdir_setup(void **state)
{
	char tmpl[] = "/tmp/tern-config-XXXXXX";

	if (mkdtemp(tmpl) == NULL)
		return -1;
	*state = xstrdup(tmpl);
	return 0;
}

static int
tmpdir_teardown(void **state)
{
	nftw(*state, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(*state);
	return 0;
}

static char *
write_file(const char *dir, const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	return path;
}

static void
defaults_applied(void **state)
{
	struct config *cfg = parse_ok("");
	char host[256] = "";

	(void)state;
	gethostname(host, sizeof(host) - 1);
	assert_string_equal(cfg->path, "t.conf");
	assert_string_equal(cfg->hostname,
	                    host[0] != '\0' ? host : "localhost");
	assert_string_equal(cfg->data_dir, "/var/lib/tern");
	assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);
	assert_false(cfg->log_syslog);
	assert_string_equal(cfg->syslog_facility, "mail");
	assert_string_equal(cfg->front_user, "tern-front");
	assert_string_equal(cfg->lookup_user, "tern-lookup");
	assert_string_equal(cfg->queue_user, "tern-queue");
	assert_string_equal(cfg->store_user, "tern-store");
	assert_int_equal(cfg->shutdown_timeout_ms, 30000);
	assert_int_equal(cfg->certificate_check_interval_ms, 10000);
	assert_int_equal(cfg->restart_backoff_max_ms, 60000);
	assert_string_equal(cfg->resolver, "");
	assert_string_equal(cfg->dns_trust_anchor, "");
	assert_int_equal(cfg->nlisteners, 0);
	assert_int_equal(cfg->ncertificates, 0);
	config_free(&cfg);
	assert_null(cfg);
}

static void
top_level_values(void **state)
{
	struct config *cfg =
	    parse_ok("# a comment line\n"
	             "   \t\n"
	             "hostname mail.example.org   # trailing comment\n"
	             "data_dir data\n"
	             "log_level debug\n"
	             "log_syslog yes\n"
	             "syslog_facility local3\n"
	             "front_user \"front \\\"user\\\" \\\\ #1\"\n"
	             "lookup_user \"t\xc3\xabrn\"\n"
	             "queue_user q\\u\n"
	             "\tstore_user\t\"s\"\t\n"
	             "shutdown_timeout 5m\r\n"
	             "certificate_check_interval 500ms\n"
	             "restart_backoff_max 1h\n"
	             "resolver \"[::1]:5353\"\n"
	             "dns_trust_anchor /usr/share/dns/root.key");

	(void)state;
	assert_string_equal(cfg->hostname, "mail.example.org");
	assert_string_equal(cfg->data_dir, "/b/data");
	assert_int_equal(cfg->log_level, LOG_LEVEL_DEBUG);
	assert_true(cfg->log_syslog);
	assert_string_equal(cfg->syslog_facility, "local3");
	assert_string_equal(cfg->front_user, "front \"user\" \\ #1");
	assert_string_equal(cfg->lookup_user, "t\xc3\xabrn");
	assert_string_equal(cfg->queue_user, "q\\u");
	assert_string_equal(cfg->store_user, "s");
	assert_int_equal(cfg->shutdown_timeout_ms, 300000);
	assert_int_equal(cfg->certificate_check_interval_ms, 500);
	assert_int_equal(cfg->restart_backoff_max_ms, 3600000);
	assert_string_equal(cfg->resolver, "[::1]:5353");
	assert_string_equal(cfg->dns_trust_anchor, "/usr/share/dns/root.key");
	free(round_trip(cfg));
	config_free(&cfg);
}

static void
resolver_forms(void **state)
{
	static const char *const good[] = {
	    "127.0.0.1", "127.0.0.1:53", "[2001:db8::1]:53", "::1", "\"\"",
	};
	static const char *const bad[] = {
	    "example.com", "127.0.0.1:0", "127.0.0.1:65536", "[::1]",
	    "[::1]53",     "1.2.3:53",    "127.0.0.1:",      "::1:53x",
	};
	char *text, *error;
	struct config *cfg;

	(void)state;
	for (size_t i = 0; i < NELEM(good); i++) {
		text = xasprintf("resolver %s\n", good[i]);
		cfg = parse_ok(text);
		config_free(&cfg);
		free(text);
	}
	for (size_t i = 0; i < NELEM(bad); i++) {
		text = xasprintf("resolver %s\n", bad[i]);
		cfg = parse(text, &error);
		if (cfg != NULL)
			fail_msg("accepted %s", bad[i]);
		assert_non_null(strstr(error, "t.conf:1: resolver: \""));
		free(error);
		free(text);
	}
}

static void
listeners_and_certificates(void **state)
{
	struct config *cfg = parse_ok("listener smtp {\n"
	                              "\tport 25\n"
	                              "}\n"
	                              "listener imaps {\n"
	                              "  address * # every address\n"
	                              "  port 993\n"
	                              "  proxy_protocol yes\n"
	                              "  max_connections 1000000\n"
	                              "  max_connections_per_ip 1\n"
	                              "}\n"
	                              "listener lmtp {\n"
	                              "  address ::1 127.0.0.2 \"10.0.0.1\"\n"
	                              "  port 24\n"
	                              "  tls starttls\n"
	                              "}\n"
	                              "certificate \"main cert\" {\n"
	                              "  cert certs/a.pem\n"
	                              "  key /k/a.key\n"
	                              "}\n"
	                              "certificate other {\n"
	                              "  key b.key\n"
	                              "  cert b.pem\n"
	                              "}\n");
	const struct config_listener *l = cfg->listeners;

	(void)state;
	assert_int_equal(cfg->nlisteners, 3);
	assert_int_equal(l[0].service, SERVICE_SMTP);
	assert_int_equal(l[0].port, 25);
	assert_int_equal(l[0].naddresses, 1);
	assert_string_equal(l[0].addresses[0], "127.0.0.1");
	assert_int_equal(l[0].tls, LISTENER_TLS_STARTTLS);
	assert_false(l[0].proxy_protocol);
	assert_int_equal(l[0].max_connections, 1000);
	assert_int_equal(l[0].max_connections_per_ip, 20);
	assert_string_equal(l[0].file, "t.conf");
	assert_int_equal(l[0].line, 1);
	assert_int_equal(l[1].service, SERVICE_IMAPS);
	assert_string_equal(l[1].addresses[0], "*");
	assert_int_equal(l[1].tls, LISTENER_TLS_IMPLICIT);
	assert_true(l[1].proxy_protocol);
	assert_int_equal(l[1].max_connections, 1000000);
	assert_int_equal(l[1].max_connections_per_ip, 1);
	assert_int_equal(l[1].line, 4);
	assert_int_equal(l[2].service, SERVICE_LMTP);
	assert_int_equal(l[2].naddresses, 3);
	assert_string_equal(l[2].addresses[0], "::1");
	assert_string_equal(l[2].addresses[2], "10.0.0.1");
	assert_int_equal(l[2].tls, LISTENER_TLS_STARTTLS);
	assert_int_equal(cfg->ncertificates, 2);
	assert_string_equal(cfg->certificates[0].name, "main cert");
	assert_string_equal(cfg->certificates[0].cert, "/b/certs/a.pem");
	assert_string_equal(cfg->certificates[0].key, "/k/a.key");
	assert_string_equal(cfg->certificates[1].name, "other");
	assert_string_equal(cfg->certificates[1].cert, "/b/b.pem");
	assert_int_equal(cfg->certificates[1].line, 20);
	free(round_trip(cfg));
	config_free(&cfg);
}

/* Each service's TLS default reaches a listener that does not say. */
static void
listener_tls_defaults(void **state)
{
	(void)state;
	for (int s = 0; s < SERVICE_COUNT; s++) {
		char *text = xasprintf("listener %s {\nport %d\n}\n",
		                       config_service_name(s), 1000 + s);
		struct config *cfg = parse_ok(text);

		assert_int_equal(cfg->listeners[0].service, s);
		assert_int_equal(cfg->listeners[0].tls,
		                 config_service_default_tls(s));
		config_free(&cfg);
		free(text);
	}
}

static void
service_tables(void **state)
{
	static const struct {
		enum listener_service s;
		const char *name;
		uint16_t port;
		enum listener_tls tls;
	} want[] = {
	    {SERVICE_SMTP, "smtp", 25, LISTENER_TLS_STARTTLS},
	    {SERVICE_SUBMISSION, "submission", 587, LISTENER_TLS_STARTTLS},
	    {SERVICE_SUBMISSIONS, "submissions", 465, LISTENER_TLS_IMPLICIT},
	    {SERVICE_LMTP, "lmtp", 24, LISTENER_TLS_NONE},
	    {SERVICE_IMAP, "imap", 143, LISTENER_TLS_STARTTLS},
	    {SERVICE_IMAPS, "imaps", 993, LISTENER_TLS_IMPLICIT},
	    {SERVICE_POP3, "pop3", 110, LISTENER_TLS_STARTTLS},
	    {SERVICE_POP3S, "pop3s", 995, LISTENER_TLS_IMPLICIT},
	    {SERVICE_MANAGESIEVE, "managesieve", 4190, LISTENER_TLS_STARTTLS},
	    {SERVICE_HTTP, "http", 8080, LISTENER_TLS_NONE},
	};

	(void)state;
	assert_int_equal(NELEM(want), SERVICE_COUNT);
	for (size_t i = 0; i < NELEM(want); i++) {
		assert_string_equal(config_service_name(want[i].s),
		                    want[i].name);
		assert_int_equal(config_service_default_port(want[i].s),
		                 want[i].port);
		assert_int_equal(config_service_default_tls(want[i].s),
		                 want[i].tls);
	}
	assert_string_equal(config_service_name(SERVICE_COUNT), "unknown");
	assert_string_equal(config_tls_name(LISTENER_TLS_NONE), "none");
	assert_string_equal(config_tls_name(LISTENER_TLS_STARTTLS), "starttls");
	assert_string_equal(config_tls_name(LISTENER_TLS_IMPLICIT), "implicit");
}

static void
value_parsers(void **state)
{
	static const struct {
		const char *s;
		int rc;
		uint64_t v;
	} sizes[] =
	    {
	        {"0", 0, 0},
	        {"1024", 0, 1024},
	        {"64k", 0, 65536},
	        {"64K", 0, 65536},
	        {"10M", 0, 10485760},
	        {"1G", 0, 1073741824},
	        {"2t", 0, 2199023255552ULL},
	        {"18446744073709551615", 0, UINT64_MAX},
	        {"18446744073709551616", -1, 0},
	        {"16777216T", -1, 0},
	        {"", -1, 0},
	        {"k", -1, 0},
	        {"10x", -1, 0},
	        {"10kb", -1, 0},
	        {"-1", -1, 0},
	        {" 1", -1, 0},
	        {"1 ", -1, 0},
	    },
	  durations[] = {
	      {"0s", 0, 0},
	      {"500ms", 0, 500},
	      {"30s", 0, 30000},
	      {"5m", 0, 300000},
	      {"1h", 0, 3600000},
	      {"2d", 0, 172800000},
	      {"18446744073709551615ms", 0, UINT64_MAX},
	      {"213503982335d", -1, 0},
	      {"30", -1, 0},
	      {"1w", -1, 0},
	      {"", -1, 0},
	      {"s", -1, 0},
	      {"1.5s", -1, 0},
	      {"5 m", -1, 0},
	      {"5S", -1, 0},
	  };
	uint64_t v;
	bool b;

	(void)state;
	for (size_t i = 0; i < NELEM(sizes); i++) {
		v = 0;
		assert_int_equal(config_parse_size(sizes[i].s, &v),
		                 sizes[i].rc);
		assert_int_equal(v, sizes[i].v);
	}
	for (size_t i = 0; i < NELEM(durations); i++) {
		v = 0;
		assert_int_equal(config_parse_duration(durations[i].s, &v),
		                 durations[i].rc);
		assert_int_equal(v, durations[i].v);
	}
	assert_int_equal(config_parse_bool("yes", &b), 0);
	assert_true(b);
	assert_int_equal(config_parse_bool("no", &b), 0);
	assert_false(b);
	assert_int_equal(config_parse_bool("true", &b), -1);
	assert_int_equal(config_parse_bool("Yes", &b), -1);
	assert_int_equal(config_parse_bool("", &b), -1);
	assert_int_equal(config_parse_uint("65535", &v), 0);
	assert_int_equal(v, 65535);
	assert_int_equal(config_parse_uint("+1", &v), -1);
	assert_int_equal(config_parse_uint("0x10", &v), -1);
}

static void
number_formats(void **state)
{
	static const struct config_setting dur = {.type = CONFIG_DURATION},
	                                   size = {.type = CONFIG_SIZE},
	                                   num = {.type = CONFIG_INT};
	static const struct {
		const struct config_setting *s;
		uint64_t v;
		const char *text;
	} cases[] = {
	    {&dur, 0, "0s"},          {&dur, 1, "1ms"},
	    {&dur, 1500, "1500ms"},   {&dur, 60000, "1m"},
	    {&dur, 90000, "90s"},     {&dur, 86400000, "1d"},
	    {&size, 0, "0"},          {&size, 1000, "1000"},
	    {&size, 1024, "1k"},      {&size, 1536, "1536"},
	    {&size, 10485760, "10M"}, {&size, 1ULL << 40, "1T"},
	    {&num, 70000, "70000"},
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		char *text = config_format_number(cases[i].s, cases[i].v);
		uint64_t back;

		assert_string_equal(text, cases[i].text);
		if (cases[i].s == &dur)
			assert_int_equal(config_parse_duration(text, &back), 0);
		else
			assert_int_equal(config_parse_size(text, &back), 0);
		assert_int_equal(back, cases[i].v);
		free(text);
	}
}

/* Each class of mistake, with its exact message. */
static void
errors(void **state)
{
	static const struct {
		const char *text;
		size_t len; /* 0: strlen(text) */
		const char *error;
	} cases[] = {
	    {"hostnmae x\n", 0, "t.conf:1: unknown setting \"hostnmae\""},
	    {"\n\nlog_level loud\n", 0,
	     "t.conf:3: log_level: \"loud\" is not one of trace, debug, "
	     "info, notice, warning, error"},
	    {"log_level\n", 0, "t.conf:1: log_level: needs a value"},
	    {"log_level info debug\n", 0,
	     "t.conf:1: log_level: takes one value, not 2 (quote a value "
	     "that has spaces)"},
	    {"log_level info\nlog_level debug\n", 0,
	     "t.conf:2: log_level: already set at line 1"},
	    {"log_syslog maybe\n", 0,
	     "t.conf:1: log_syslog: \"maybe\" is not yes or no"},
	    {"syslog_facility kern\n", 0,
	     "t.conf:1: syslog_facility: \"kern\" is not one of mail, "
	     "daemon, user, local0, local1, local2, local3, local4, local5, "
	     "local6, local7"},
	    {"shutdown_timeout 2h\n", 0,
	     "t.conf:1: shutdown_timeout: 2h is out of range 1s..1h"},
	    {"certificate_check_interval 99ms\n", 0,
	     "t.conf:1: certificate_check_interval: 99ms is out of range "
	     "100ms..1d"},
	    {"shutdown_timeout 30\n", 0,
	     "t.conf:1: shutdown_timeout: \"30\" is not a duration (a "
	     "number and ms, s, m, h or d)"},
	    {"front_user \"\"\n", 0, "t.conf:1: front_user: must not be empty"},
	    {"hostname \"a b\"\n", 0,
	     "t.conf:1: hostname: \"a b\" is not a host name"},
	    {"data_dir \"\"\n", 0, "t.conf:1: data_dir: must not be empty"},
	    {"\n\n\n\n\nlistener imaps {\n  port 70000\n}\n", 0,
	     "t.conf:7: listener imaps: port: 70000 is out of range "
	     "1..65535"},
	    {"listener imap {\nport 1a\n}\n", 0,
	     "t.conf:2: listener imap: port: \"1a\" is not a number"},
	    {"listener smtp {\n  address 127.0.0.1\n}\n", 0,
	     "t.conf:1: listener smtp: port is required"},
	    {"listener smtp {\nport 25\nport 26\n}\n", 0,
	     "t.conf:3: listener smtp: port: already set at line 2"},
	    {"listener smtp {\nport 25\naddress 1.2.3\n}\n", 0,
	     "t.conf:3: listener smtp: address: \"1.2.3\" is not an IPv4 or "
	     "IPv6 address or \"*\""},
	    {"listener smtp {\nport 25\naddress\n}\n", 0,
	     "t.conf:3: listener smtp: address: needs a value"},
	    {"listener smtp {\nport 25\nprot 1\n}\n", 0,
	     "t.conf:3: listener smtp: unknown setting \"prot\""},
	    {"listener smtp {\nport 25\ntls maybe\n}\n", 0,
	     "t.conf:3: listener smtp: tls: \"maybe\" is not one of none, "
	     "starttls, implicit"},
	    {"listener smtpx {\n}\n", 0,
	     "t.conf:1: listener: \"smtpx\" is not one of smtp, submission, "
	     "submissions, lmtp, imap, imaps, pop3, pop3s, managesieve, "
	     "http"},
	    {"listener {\n}\n", 0,
	     "t.conf:1: listener: takes one SERVICE before \"{\", not 0"},
	    {"listener smtp imap {\n}\n", 0,
	     "t.conf:1: listener: takes one SERVICE before \"{\", not 2"},
	    {"listener smtp\n", 0,
	     "t.conf:1: listener is a block: listener SERVICE { ... }"},
	    {"hostname x {\n}\n", 0,
	     "t.conf:1: hostname is a setting, not a block"},
	    {"frob x {\n}\n", 0, "t.conf:1: unknown block \"frob\""},
	    {"listener smtp {\nport 25\nlistener imap {\n}\n}\n", 0,
	     "t.conf:3: listener smtp: unknown block \"listener\""},
	    {"{\n", 0, "t.conf:1: \"{\" without a block name"},
	    {"listener smtp { port 25 }\n", 0,
	     "t.conf:1: \"{\" must end the line"},
	    {"listener smtp {\nport 25\n} x\n", 0,
	     "t.conf:3: \"}\" must be alone on its line"},
	    {"\n\n\n\n\n\n\n\n}\n", 0, "t.conf:9: \"}\" without an open block"},
	    {"listener smtp {\nport 25\n\n", 0,
	     "t.conf:3: block \"listener\" opened at line 1 is not closed"},
	    {"listener smtp {\nport 25\n}\nlistener imap {\nport 25\n}\n", 0,
	     "t.conf:4: listener imap: address 127.0.0.1 port 25 overlaps "
	     "the listener at t.conf:1"},
	    {"listener smtp {\naddress *\nport 25\n}\n"
	     "listener imap {\naddress ::1\nport 25\n}\n",
	     0,
	     "t.conf:5: listener imap: address ::1 port 25 overlaps the "
	     "listener at t.conf:1"},
	    {"listener smtp {\naddress ::1 0:0::1\nport 25\n}\n", 0,
	     "t.conf:1: listener smtp: address 0:0::1 port 25 overlaps the "
	     "listener at t.conf:1"},
	    {"listener smtp {\naddress 0.0.0.0\nport 25\n}\n"
	     "listener imap {\naddress 10.1.1.1\nport 25\n}\n",
	     0,
	     "t.conf:5: listener imap: address 10.1.1.1 port 25 overlaps "
	     "the listener at t.conf:1"},
	    {"certificate a {\ncert c\n}\n", 0,
	     "t.conf:1: certificate a: key is required"},
	    {"certificate a {\ncert c\nkey k\n}\ncertificate a {\ncert "
	     "c\nkey k\n}\n",
	     0, "t.conf:5: certificate \"a\" is already defined at t.conf:1"},
	    {"certificate \"\" {\n}\n", 0,
	     "t.conf:1: certificate: must not be empty"},
	    {"include\n", 0, "t.conf:1: include takes one file name"},
	    {"include a b\n", 0, "t.conf:1: include takes one file name"},
	    {"include \"\"\n", 0, "t.conf:1: include takes one file name"},
	    {"hostname \"abc\n", 0, "t.conf:1: unterminated quoted string"},
	    {"hostname \"a\\n\"\n", 0,
	     "t.conf:1: in quotes, \\ must be followed by \" or \\"},
	    {"hostname \"a\"b\n", 0,
	     "t.conf:1: a space must follow a closing quote"},
	    {"hostname a\"b\"\n", 0,
	     "t.conf:1: a quote inside a word (quote the whole value)"},
	    {"log_level info\n\0\n", 17, "t.conf:2: NUL byte"},
	    {"hostname a\x01\n", 0, "t.conf:1: control character 0x01"},
	    {"hostname a\x7f\n", 0, "t.conf:1: control character 0x7f"},
	    {"hostname a\rb\n", 0, "t.conf:1: control character 0x0d"},
	    {"hostname a\r", 0, "t.conf:1: control character 0x0d"},
	    {"# \xc2\x85\n", 0, "t.conf:1: control character U+0085"},
	    {"# \xff\n", 0, "t.conf:1: invalid UTF-8"},
	    {"# \xc0\xaf\n", 0, "t.conf:1: invalid UTF-8"},
	    {"# \xed\xa0\x80\n", 0, "t.conf:1: invalid UTF-8"},
	    {"# \xf4\x90\x80\x80\n", 0, "t.conf:1: invalid UTF-8"},
	    {"# \xe2\x82\n", 0, "t.conf:1: invalid UTF-8"},
	};
	char *error;
	struct config *cfg;

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		size_t len =
		    cases[i].len ? cases[i].len : strlen(cases[i].text);

		error = NULL;
		cfg = config_parse("t.conf", "/b", cases[i].text, len, &error);
		if (cfg != NULL)
			fail_msg("case %zu parsed: %s", i, cases[i].text);
		if (strcmp(error, cases[i].error) != 0)
			fail_msg("case %zu:\n got  %s\n want %s", i, error,
			         cases[i].error);
		free(error);
	}
}

/* Bounds: line length, words per line, file size, value length. */
static void
limits(void **state)
{
	char *line = xmalloc(CONFIG_LINE_MAX + 64), *error, *words, *text;
	struct config *cfg;

	(void)state;
	/* Exactly CONFIG_LINE_MAX bytes is fine (a comment), one more is
	 * not. */
	memset(line, '#', CONFIG_LINE_MAX);
	line[CONFIG_LINE_MAX] = '\0';
	cfg = parse_ok(line);
	config_free(&cfg);
	memcpy(line + CONFIG_LINE_MAX, "#\n", 3);
	assert_null(parse(line, &error));
	assert_string_equal(error, "t.conf:1: line too long (over 4096 bytes)");
	free(error);

	/* 64 words: the key and 63 addresses. 65: too many. */
	words = xstrdup("address");
	for (int i = 0; i < CONFIG_TOKENS_MAX - 1; i++) {
		text = xasprintf("%s 10.0.0.%d", words, i);
		free(words);
		words = text;
	}
	text = xasprintf("listener smtp {\nport 25\n%s\n}\n", words);
	cfg = parse_ok(text);
	assert_int_equal(cfg->listeners[0].naddresses, CONFIG_TOKENS_MAX - 1);
	free(round_trip(cfg));
	config_free(&cfg);
	free(text);
	text = xasprintf("listener smtp {\nport 25\n%s 10.0.1.1\n}\n", words);
	assert_null(parse(text, &error));
	assert_string_equal(error,
	                    "t.conf:3: too many words on one line (over 64)");
	free(error);
	free(text);
	free(words);

	/* A value over 1024 bytes, or a path that grows past it. */
	memset(line, 'a', 1100);
	memcpy(line, "front_user ", 11);
	line[1100] = '\0';
	assert_null(parse(line, &error));
	assert_string_equal(error,
	                    "t.conf:1: front_user: value longer than 1024 "
	                    "bytes");
	free(error);
	memset(line, 'a', 1100);
	memcpy(line, "data_dir ", 9);
	line[9 + 1023] = '\0';
	assert_null(parse(line, &error));
	assert_string_equal(error, "t.conf:1: data_dir: longer than 1024 "
	                           "bytes once made absolute");
	free(error);
	free(line);

	line = xcalloc(CONFIG_FILE_MAX + 2, 1);
	memset(line, '\n', CONFIG_FILE_MAX + 1);
	assert_null(
	    config_parse("t.conf", "/b", line, CONFIG_FILE_MAX + 1, &error));
	assert_string_equal(error, "t.conf: larger than 1048576 bytes");
	free(error);
	cfg = config_parse("t.conf", "/b", line, CONFIG_FILE_MAX, &error);
	assert_non_null(cfg);
	config_free(&cfg);
	free(line);
}

static void
load_files(void **state)
{
	const char *dir = *state;
	char *main_path, *sub, *error, *want, cwd[4096];
	struct config *cfg;

	free(write_file(dir, "sub.conf", "cert a.pem\nkey a.key\n"));
	assert_int_equal(mkdir(sub = xasprintf("%s/d", dir), 0700), 0);
	free(write_file(sub, "inner.conf",
	                "log_level error\ninclude ../leaf.conf\n"));
	free(write_file(dir, "leaf.conf", "data_dir spool\n"));
	main_path = write_file(dir, "tern.conf",
	                       "include d/inner.conf\n"
	                       "certificate c {\n"
	                       "  include sub.conf\n"
	                       "}\n");
	cfg = config_load(main_path, &error);
	if (cfg == NULL)
		fail_msg("%s", error);
	assert_string_equal(cfg->path, main_path);
	assert_int_equal(cfg->log_level, LOG_LEVEL_ERROR);
	/* Relative to the file the value is in: leaf.conf, read from d/. */
	want = xasprintf("%s/d/../spool", dir);
	assert_string_equal(cfg->data_dir, want);
	free(want);
	want = xasprintf("%s/a.pem", dir);
	assert_string_equal(cfg->certificates[0].cert, want);
	free(want);
	config_free(&cfg);

	/* A relative main path becomes absolute. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	cfg = config_load("./tern.conf", &error);
	assert_int_equal(chdir(cwd), 0);
	assert_non_null(cfg);
	assert_string_equal(cfg->path, main_path);
	config_free(&cfg);
	/* So does a relative base directory given to config_parse. */
	assert_int_equal(chdir(dir), 0);
	cfg = config_parse("x", "d", "data_dir s\n", 11, &error);
	assert_int_equal(chdir(cwd), 0);
	assert_non_null(cfg);
	want = xasprintf("%s/d/s", dir);
	assert_string_equal(cfg->data_dir, want);
	free(want);
	config_free(&cfg);

	assert_null(config_load(sub, &error));
	want = xasprintf("%s: cannot open: not a regular file", sub);
	assert_string_equal(error, want);
	free(want);
	free(error);
	free(sub);
	free(main_path);

	main_path = xasprintf("%s/nope.conf", dir);
	assert_null(config_load(main_path, &error));
	want =
	    xasprintf("%s: cannot open: No such file or directory", main_path);
	assert_string_equal(error, want);
	free(want);
	free(error);
	free(main_path);
}

/* Include mistakes: each names the including file and line. */
static void
include_errors(void **state)
{
	static const struct {
		const char *files[3][2]; /* name, text; files[0] is loaded */
		const char *error;       /* after "DIR/" */
	} cases[] = {
	    {{{"a.conf", "\ninclude missing.conf\n"}},
	     "a.conf:2: include \"missing.conf\": No such file or "
	     "directory"},
	    {{{"a.conf", "include a.conf\n"}},
	     "a.conf:1: include \"a.conf\": a cycle (DIR/a.conf is already "
	     "being read)"},
	    {{{"a.conf", "include b.conf\n"}, {"b.conf", "include a.conf\n"}},
	     "b.conf:1: include \"a.conf\": a cycle (DIR/a.conf is already "
	     "being read)"},
	    {{{"a.conf", "include b.conf\n"},
	      {"b.conf", "log_level debug\nlog_level x\n"}},
	     "b.conf:2: log_level: already set at line 1"},
	    {{{"a.conf", "log_level debug\ninclude b.conf\n"},
	      {"b.conf", "log_level info\n"}},
	     "b.conf:1: log_level: already set at DIR/a.conf:1"},
	    {{{"a.conf", "include b.conf\n}\n"},
	      {"b.conf", "listener smtp {\nport 25\n"}},
	     "b.conf:2: block \"listener\" opened at line 1 is not closed"},
	    {{{"a.conf", "listener smtp {\nport 25\ninclude b.conf\n"},
	      {"b.conf", "}\n"}},
	     "b.conf:1: \"}\" without an open block"},
	    {{{"a.conf", "include .\n"}},
	     "a.conf:1: include \".\": not a regular file"},
	};
	const char *dir = *state;
	char *error, *want, *path;
	struct config *cfg;

	for (size_t i = 0; i < NELEM(cases); i++) {
		char *sub = xasprintf("%s/%zu", dir, i);

		assert_int_equal(mkdir(sub, 0700), 0);
		for (int k = 2; k >= 0; k--) {
			if (cases[i].files[k][0] != NULL)
				free(write_file(sub, cases[i].files[k][0],
				                cases[i].files[k][1]));
		}
		path = xasprintf("%s/%s", sub, cases[i].files[0][0]);
		cfg = config_load(path, &error);
		assert_null(cfg);
		want = xasprintf("%s/%s", sub, cases[i].error);
		/* "DIR" in the expected text is the case's directory. */
		for (char *p; (p = strstr(want, "DIR")) != NULL;) {
			char *w = xasprintf("%.*s%s%s", (int)(p - want), want,
			                    sub, p + 3);
			free(want);
			want = w;
		}
		if (strcmp(error, want) != 0)
			fail_msg("case %zu:\n got  %s\n want %s", i, error,
			         want);
		free(want);
		free(error);
		free(path);
		free(sub);
	}
}

/* Chains of includes: CONFIG_INCLUDE_DEPTH below the main file is the
 * deepest allowed. */
static void
include_depth(void **state)
{
	const char *dir = *state;
	char *name, *text, *error, *want;
	struct config *cfg;

	for (int i = 0; i <= CONFIG_INCLUDE_DEPTH + 1; i++) {
		name = xasprintf("f%d.conf", i);
		text = i == CONFIG_INCLUDE_DEPTH + 1
		           ? xstrdup("log_level debug\n")
		           : xasprintf("include f%d.conf\n", i + 1);
		free(write_file(dir, name, text));
		free(name);
		free(text);
	}
	name = xasprintf("%s/f1.conf", dir);
	cfg = config_load(name, &error);
	if (cfg == NULL)
		fail_msg("%s", error);
	assert_int_equal(cfg->log_level, LOG_LEVEL_DEBUG);
	config_free(&cfg);
	free(name);

	name = xasprintf("%s/f0.conf", dir);
	assert_null(config_load(name, &error));
	want = xasprintf("%s/f%d.conf:1: include \"f%d.conf\": nested too "
	                 "deeply (over %d)",
	                 dir, CONFIG_INCLUDE_DEPTH, CONFIG_INCLUDE_DEPTH + 1,
	                 CONFIG_INCLUDE_DEPTH);
	assert_string_equal(error, want);
	free(want);
	free(error);
	free(name);
}

/* Includes fail softly from memory too: the fuzz target relies on it. */
static void
include_from_memory(void **state)
{
	char *error;

	(void)state;
	assert_null(
	    config_parse("fuzz", "/nonexistent", "include x\n", 10, &error));
	assert_string_equal(error, "fuzz:1: include \"x\": No such file or "
	                           "directory");
	free(error);
}

static void
round_trips(void **state)
{
	static const char *const texts[] = {
	    "",
	    "hostname h\nresolver 10.0.0.1:53\nshutdown_timeout 1500ms\n",
	    "front_user \"{\"\nlookup_user \"}\"\nqueue_user \"#\"\n"
	    "store_user \"a\\\"b\"\n",
	    "restart_backoff_max 3600s\ncertificate_check_interval 86400s\n",
	    "listener http {\naddress :: 0.0.0.0\nport 8080\n"
	    "tls implicit\n}\ncertificate \"x y\" {\ncert \"/a b\"\nkey "
	    "k\n}\n",
	};
	char *text;
	struct config *cfg;

	(void)state;
	for (size_t i = 0; i < NELEM(texts); i++) {
		cfg = parse_ok(texts[i]);
		text = round_trip(cfg);
		config_free(&cfg);
		free(text);
	}
	cfg = parse_ok(texts[2]);
	text = config_serialize(cfg);
	assert_non_null(strstr(text, "\nfront_user \"{\"\n"));
	assert_non_null(strstr(text, "\nstore_user \"a\\\"b\"\n"));
	config_free(&cfg);
	free(text);
}

/* The defaults text is itself a valid (all commented) config, names every
 * setting, and its block examples parse once uncommented. */
static void
describe_defaults(void **state)
{
	char *text = config_describe_defaults(), *error, *blocks, *o;
	bool in_block = false;
	const char **names;
	size_t n = config_table_names(&names);
	struct config *cfg;

	(void)state;
	cfg = parse_ok(text);
	config_free(&cfg);
	for (size_t i = 0; i < n; i++) {
		char *needle = xasprintf("#%s ", names[i]);
		char *tabbed = xasprintf("#\t%s ", names[i]);

		if (strstr(text, needle) == NULL &&
		    strstr(text, tabbed) == NULL)
			fail_msg("%s is not in the defaults text", names[i]);
		free(needle);
		free(tabbed);
	}
	free(names);

	/* Keep only the "#listener … #}" and "#certificate … #}" lines,
	 * without their first "#". */
	blocks = xcalloc(strlen(text) + 1, 1);
	o = blocks;
	for (char *line = text, *next; *line != '\0'; line = next) {
		next = strchr(line, '\n');
		next = next != NULL ? next + 1 : line + strlen(line);
		if (strncmp(line, "#listener ", 10) == 0 ||
		    strncmp(line, "#certificate ", 13) == 0)
			in_block = true;
		if (in_block) {
			memcpy(o, line + 1, (size_t)(next - line - 1));
			o += next - line - 1;
		}
		if (strncmp(line, "#}", 2) == 0)
			in_block = false;
	}
	cfg = config_parse("ex", "/", blocks, strlen(blocks), &error);
	if (cfg == NULL)
		fail_msg("%s\n%s", error, blocks);
	assert_int_equal(cfg->nlisteners, 1);
	assert_int_equal(cfg->listeners[0].port, 25);
	assert_int_equal(cfg->ncertificates, 1);
	config_free(&cfg);
	free(blocks);
	free(text);
}

static void
check_table(const struct config_block *b, bool in_block)
{
	for (size_t i = 0; i < b->nsettings; i++) {
		const struct config_setting *s = &b->settings[i];

		assert_non_null(s->name);
		if (s->type == CONFIG_BLOCK) {
			assert_non_null(s->block);
			check_table(s->block, true);
			continue;
		}
		assert_non_null(s->help);
		if ((s->type == CONFIG_INT ||
		     (s->type == CONFIG_ENUM &&
		      !(s->flags & CONFIG_F_ENUM_NAME))) &&
		    s->size != 1 && s->size != 2 && s->size != 4 &&
		    s->size != 8)
			fail_msg("%s: field size %zu", s->name, s->size);
		/* A default, and something to show in `tern config defaults`.
		 */
		if (s->def == NULL)
			assert_true((s->flags & CONFIG_F_REQUIRED) ||
			            (s->default_fn != NULL && s->def_help));
		if (s->def == NULL && (in_block || s->default_fn == NULL))
			assert_non_null(s->example);
		for (size_t k = 0; k < i; k++)
			assert_string_not_equal(b->settings[k].name, s->name);
	}
}

/* The table is consistent, and agrees with log.h about level names. */
static void
table_sane(void **state)
{
	const struct config_setting *level = NULL;
	enum log_level l;

	(void)state;
	check_table(&config_root, false);
	for (size_t i = 0; i < config_root.nsettings; i++) {
		if (strcmp(config_root.settings[i].name, "log_level") == 0)
			level = &config_root.settings[i];
	}
	assert_non_null(level);
	for (size_t i = 0; level->choices[i] != NULL; i++) {
		assert_int_equal(log_level_parse(level->choices[i], &l), 0);
		assert_int_equal(l, i);
		assert_string_equal(log_level_name(l), level->choices[i]);
	}
	assert_string_equal(log_level_name(LOG_LEVEL_ERROR), "error");
}

/* docs/tern.conf.5 documents every name in the table as "\fBNAME\fR" at
 * the start of a line, so the page cannot fall behind the table. */
static void
man_page_complete(void **state)
{
	const char *srcdir = getenv("TERN_TEST_SRCDIR");
	char *path, *page, *needle;
	const char **names;
	size_t n, len;
	FILE *f;

	(void)state;
	if (srcdir == NULL)
		skip();
	path = xasprintf("%s/docs/tern.conf.5", srcdir);
	f = fopen(path, "r");
	if (f == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	page = xcalloc(1, 1024 * 1024);
	len = fread(page, 1, 1024 * 1024 - 1, f);
	page[len] = '\0';
	fclose(f);
	n = config_table_names(&names);
	for (size_t i = 0; i < n; i++) {
		needle = xasprintf("\n\\fB%s\\fR", names[i]);
		if (strstr(page, needle) == NULL)
			fail_msg("%s does not document %s", path, names[i]);
		free(needle);
	}
	free(names);
	free(page);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(defaults_applied),
	    cmocka_unit_test(top_level_values),
	    cmocka_unit_test(resolver_forms),
	    cmocka_unit_test(listeners_and_certificates),
	    cmocka_unit_test(listener_tls_defaults),
	    cmocka_unit_test(service_tables),
	    cmocka_unit_test(value_parsers),
	    cmocka_unit_test(number_formats),
	    cmocka_unit_test(errors),
	    cmocka_unit_test(limits),
	    cmocka_unit_test_setup_teardown(load_files, tmpdir_setup,
	                                    tmpdir_teardown),
	    cmocka_unit_test_setup_teardown(include_errors, tmpdir_setup,
	                                    tmpdir_teardown),
	    cmocka_unit_test_setup_teardown(include_depth, tmpdir_setup,
	                                    tmpdir_teardown),
	    cmocka_unit_test(include_from_memory),
	    cmocka_unit_test(round_trips),
	    cmocka_unit_test(describe_defaults),
	    cmocka_unit_test(table_sane),
	    cmocka_unit_test(man_page_complete),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
