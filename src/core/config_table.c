/* The settings of tern.conf, each declared once (type, default, range, help,
 * where the value goes), the value types' text forms (sizes, durations,
 * quoting), and the two texts made from the table: the canonical config
 * (config_serialize) and the commented defaults (config_describe_defaults).
 * config.c reads files against the same table; a unit test holds
 * docs/tern.conf.5 to it.
 * SECURITY: the checks here see values from the (trusted but possibly wrong)
 * config file; they only read NUL-terminated strings of bounded length. */
#include "core/config.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/xmalloc.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define FIELD(type, member)                                                    \
	.offset = offsetof(type, member), .size = sizeof(((type *)0)->member)
#define COUNT(type, member) .count_offset = offsetof(type, member)

/* Index = enum listener_service; also the block label's choices. */
static const char *const service_names[] = {
    [SERVICE_SMTP] = "smtp",
    [SERVICE_SUBMISSION] = "submission",
    [SERVICE_SUBMISSIONS] = "submissions",
    [SERVICE_LMTP] = "lmtp",
    [SERVICE_IMAP] = "imap",
    [SERVICE_IMAPS] = "imaps",
    [SERVICE_POP3] = "pop3",
    [SERVICE_POP3S] = "pop3s",
    [SERVICE_MANAGESIEVE] = "managesieve",
    [SERVICE_HTTP] = "http",
    [SERVICE_COUNT] = NULL,
};

static const uint16_t service_ports[SERVICE_COUNT] = {
    [SERVICE_SMTP] = 25,          [SERVICE_SUBMISSION] = 587,
    [SERVICE_SUBMISSIONS] = 465,  [SERVICE_LMTP] = 24,
    [SERVICE_IMAP] = 143,         [SERVICE_IMAPS] = 993,
    [SERVICE_POP3] = 110,         [SERVICE_POP3S] = 995,
    [SERVICE_MANAGESIEVE] = 4190, [SERVICE_HTTP] = 8080,
};

static const enum listener_tls service_tls[SERVICE_COUNT] = {
    [SERVICE_SMTP] = LISTENER_TLS_STARTTLS,
    [SERVICE_SUBMISSION] = LISTENER_TLS_STARTTLS,
    [SERVICE_SUBMISSIONS] = LISTENER_TLS_IMPLICIT,
    [SERVICE_LMTP] = LISTENER_TLS_NONE,
    [SERVICE_IMAP] = LISTENER_TLS_STARTTLS,
    [SERVICE_IMAPS] = LISTENER_TLS_IMPLICIT,
    [SERVICE_POP3] = LISTENER_TLS_STARTTLS,
    [SERVICE_POP3S] = LISTENER_TLS_IMPLICIT,
    [SERVICE_MANAGESIEVE] = LISTENER_TLS_STARTTLS,
    [SERVICE_HTTP] = LISTENER_TLS_NONE,
};

/* Index = enum listener_tls. */
static const char *const tls_names[] = {"none", "starttls", "implicit", NULL};

/* Index = enum log_level (a unit test holds this to log_level_name()). */
static const char *const log_level_names[] = {
    "trace", "debug", "info", "notice", "warning", "error", NULL};

/* Index = enum sql_backend (src/directory/sql.h). */
static const char *const backend_names[] = {"sqlite", "pgsql", "mysql", NULL};

static const char *const inbound_names[] = {"accept", "reject", NULL};

/* The facilities log_open_syslog() knows. */
static const char *const facility_names[] = {
    "mail",   "daemon", "user",   "local0", "local1", "local2",
    "local3", "local4", "local5", "local6", "local7", NULL};

const char *
config_service_name(enum listener_service s)
{
	if ((unsigned)s >= SERVICE_COUNT)
		return "unknown";
	return service_names[s];
}

enum listener_tls
config_service_default_tls(enum listener_service s)
{
	if ((unsigned)s >= SERVICE_COUNT)
		return LISTENER_TLS_NONE;
	return service_tls[s];
}

uint16_t
config_service_default_port(enum listener_service s)
{
	if ((unsigned)s >= SERVICE_COUNT)
		return 0;
	return service_ports[s];
}

const char *
config_tls_name(enum listener_tls t)
{
	if ((unsigned)t >= NELEM(tls_names) - 1)
		return "unknown";
	return tls_names[t];
}

/* A host name goes into SMTP greetings and EHLO, so it must be a plain DNS
 * name: letters, digits, '-', '.', and '_' (seen on real hosts). */
static int
check_hostname(const char *value, char **why_r)
{
	size_t len = strlen(value);

	if (len > 253) {
		*why_r = xstrdup("longer than 253 characters");
		return -1;
	}
	for (const char *p = value; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		    *p == '_')
			continue;
		*why_r = xasprintf("\"%s\" is not a host name", value);
		return -1;
	}
	return 0;
}

/* The system's name, or "localhost" when it has none a greeting could use:
 * a default must never make an empty config invalid. */
static char *
default_hostname(const void *obj)
{
	char name[256];
	char *why = NULL;

	(void)obj;
	if (gethostname(name, sizeof(name)) < 0 || name[0] == '\0')
		return xstrdup("localhost");
	name[sizeof(name) - 1] = '\0';
	if (check_hostname(name, &why) < 0) {
		free(why);
		return xstrdup("localhost");
	}
	return xstrdup(name);
}

static int
parse_port(const char *s, uint16_t *port_r)
{
	unsigned long v = 0;

	if (*s == '\0' || strlen(s) > 5)
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*port_r = (uint16_t)v;
	return 0;
}

static bool
is_ip(const char *s, int af)
{
	unsigned char addr[16];

	return inet_pton(af, s, addr) == 1;
}

/* "ADDR", "ADDR:PORT" or "[V6]:PORT"; a bare IPv6 literal is an address. */
static int
check_resolver(const char *value, char **why_r)
{
	char host[64];
	const char *start = value, *end, *colon;
	bool v6 = value[0] == '[';
	uint16_t port;

	if (is_ip(value, AF_INET) || is_ip(value, AF_INET6))
		return 0;
	if (v6) {
		start++;
		end = strchr(start, ']');
		if (end == NULL || end[1] != ':')
			goto bad;
		colon = end + 1;
	} else {
		colon = strrchr(value, ':');
		if (colon == NULL)
			goto bad;
		end = colon;
	}
	if ((size_t)(end - start) >= sizeof(host))
		goto bad;
	memcpy(host, start, (size_t)(end - start));
	host[end - start] = '\0';
	if (!is_ip(host, v6 ? AF_INET6 : AF_INET) ||
	    parse_port(colon + 1, &port) < 0)
		goto bad;
	return 0;
bad:
	*why_r = xasprintf("\"%s\" is not ADDR, ADDR:PORT or [IPV6]:PORT with "
	                   "an IP address and a port 1..65535",
	                   value);
	return -1;
}

static int
check_address(const char *value, char **why_r)
{
	if (strcmp(value, "*") == 0 || is_ip(value, AF_INET) ||
	    is_ip(value, AF_INET6))
		return 0;
	*why_r =
	    xasprintf("\"%s\" is not an IPv4 or IPv6 address or \"*\"", value);
	return -1;
}

/* An address for From: and MAIL FROM: local@domain, printable ASCII,
 * nothing a header or SMTP command would need quoted. */
static int
check_report_from(const char *value, char **why_r)
{
	const char *at = strchr(value, '@');

	if (*value == '\0')
		return 0;
	if (strlen(value) > 254 || at == NULL || at == value ||
	    strchr(at + 1, '@') != NULL || at[1] == '\0' ||
	    strpbrk(value, " \t<>()[],;:\\\"") != NULL)
		goto bad;
	for (const char *p = value; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			goto bad;
	return check_hostname(at + 1, why_r);
bad:
	*why_r = xasprintf("\"%s\" is not an address local@domain", value);
	return -1;
}

static char *
default_listener_tls(const void *obj)
{
	const struct config_listener *l = obj;

	return xstrdup(config_tls_name(config_service_default_tls(l->service)));
}

/* One bound address: port, then (family, bytes) with family 0 for "*". Sorted
 * this way, anything that cannot be bound together sits next to something
 * it clashes with: "*" first in its port, a wildcard (0.0.0.0, ::) first in
 * its family, equal addresses side by side. So the check is n log n even
 * for a generated file with thousands of listeners. */
struct bound {
	uint16_t port;
	int af;
	unsigned char bytes[16];
	size_t li, ai; /* listener and address index: file order */
};

static int
bound_cmp(const void *pa, const void *pb)
{
	const struct bound *a = pa, *b = pb;
	int c;

	if (a->port != b->port)
		return a->port < b->port ? -1 : 1;
	if (a->af != b->af)
		return a->af < b->af ? -1 : 1;
	if ((c = memcmp(a->bytes, b->bytes, sizeof(a->bytes))) != 0)
		return c;
	if (a->li != b->li)
		return a->li < b->li ? -1 : 1;
	return a->ai < b->ai ? -1 : a->ai > b->ai;
}

/* Would binding both fail? Equal addresses do, and on Linux a wildcard
 * also takes every address of its family ("*": of both). */
static bool
bound_clash(const struct bound *a, const struct bound *b)
{
	static const unsigned char any[16];

	if (a->port != b->port)
		return false;
	if (a->af == 0 || b->af == 0)
		return true;
	return a->af == b->af &&
	       (memcmp(a->bytes, any, 16) == 0 ||
	        memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0);
}

static size_t
bounds_collect(const struct config *cfg, struct bound *v)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct config_listener *l = &cfg->listeners[i];

		for (size_t j = 0; j < l->naddresses; j++, n++) {
			memset(&v[n], 0, sizeof(v[n]));
			v[n].port = l->port;
			v[n].li = i;
			v[n].ai = j;
			if (inet_pton(AF_INET, l->addresses[j], v[n].bytes) ==
			    1)
				v[n].af = AF_INET;
			else if (inet_pton(AF_INET6, l->addresses[j],
			                   v[n].bytes) == 1)
				v[n].af = AF_INET6;
		}
	}
	return n;
}

static int
finish_listeners(const struct config *cfg, const char **file_r, int *line_r,
                 char **why_r)
{
	const struct config_listener *a, *b;
	struct bound *v, *x = NULL, *y = NULL;
	size_t n = 0;

	for (size_t i = 0; i < cfg->nlisteners; i++)
		n += cfg->listeners[i].naddresses;
	if (n == 0)
		return 0;
	v = xcalloc(n, sizeof(*v));
	n = bounds_collect(cfg, v);
	qsort(v, n, sizeof(*v), bound_cmp);
	for (size_t i = 1; i < n && x == NULL; i++) {
		if (bound_clash(&v[i - 1], &v[i])) {
			/* Report at the later one, naming the earlier. */
			bool later =
			    v[i].li > v[i - 1].li ||
			    (v[i].li == v[i - 1].li && v[i].ai > v[i - 1].ai);
			x = later ? &v[i - 1] : &v[i];
			y = later ? &v[i] : &v[i - 1];
		}
	}
	if (x != NULL) {
		a = &cfg->listeners[x->li];
		b = &cfg->listeners[y->li];
		*file_r = b->file;
		*line_r = b->line;
		*why_r = xasprintf("listener %s: address %s port %u overlaps "
		                   "the listener at %s:%d",
		                   config_service_name(b->service),
		                   b->addresses[y->ai], (unsigned)b->port,
		                   a->file, a->line);
	}
	free(v);
	return x != NULL ? -1 : 0;
}

static int
cert_cmp(const void *pa, const void *pb)
{
	const struct config_certificate *a = *(const void *const *)pa;
	const struct config_certificate *b = *(const void *const *)pb;
	int c = strcmp(a->name, b->name);

	return c != 0 ? c : (a > b) - (a < b);
}

/* Names are unique (sorted, so n log n). */
static int
finish_certificates(const struct config *cfg, const char **file_r, int *line_r,
                    char **why_r)
{
	const struct config_certificate **v, *a = NULL, *b = NULL;
	size_t n = cfg->ncertificates;

	if (n == 0)
		return 0;
	v = xcalloc(n, sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = &cfg->certificates[i];
	qsort(v, n, sizeof(*v), cert_cmp);
	for (size_t i = 1; i < n && a == NULL; i++) {
		if (strcmp(v[i - 1]->name, v[i]->name) == 0) {
			a = v[i - 1];
			b = v[i];
		}
	}
	free(v);
	if (a == NULL)
		return 0;
	*file_r = b->file;
	*line_r = b->line;
	*why_r = xasprintf("certificate \"%s\" is already defined at %s:%d",
	                   b->name, a->file, a->line);
	return -1;
}

static int finish_relays(const struct config *cfg, const char **file_r,
                         int *line_r, char **why_r);

static int
finish_root(const void *obj, const char **file_r, int *line_r, char **why_r)
{
	if (finish_listeners(obj, file_r, line_r, why_r) < 0 ||
	    finish_certificates(obj, file_r, line_r, why_r) < 0)
		return -1;
	return finish_relays(obj, file_r, line_r, why_r);
}

/* "192.0.2.0/24", "2001:db8::/32", or a single address. */
static int
check_cidr(const char *v, char **why_r)
{
	unsigned char addr[16];
	char host[64], *end;
	const char *slash = strchr(v, '/');
	size_t hlen = slash != NULL ? (size_t)(slash - v) : strlen(v);
	long bits, max;

	if (hlen == 0 || hlen >= sizeof(host))
		goto bad;
	memcpy(host, v, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, addr) == 1)
		max = 32;
	else if (inet_pton(AF_INET6, host, addr) == 1)
		max = 128;
	else
		goto bad;
	if (slash == NULL)
		return 0;
	bits = strtol(slash + 1, &end, 10);
	if (slash[1] == '\0' || *end != '\0' || bits < 0 || bits > max)
		goto bad;
	return 0;
bad:
	*why_r =
	    xasprintf("\"%s\" is not an address or ADDRESS/BITS network", v);
	return -1;
}

#define MS_SECOND 1000ULL
#define MS_HOUR (3600 * MS_SECOND)
#define MS_DAY (24 * MS_HOUR)

/* A listener: `listener SERVICE { … }`. */
static const struct config_setting listener_settings[] = {
    {.name = "address",
     .type = CONFIG_LIST,
     .def = "127.0.0.1",
     FIELD(struct config_listener, addresses),
     COUNT(struct config_listener, naddresses),
     .check = check_address,
     .help = "The IP addresses to listen on, one or more on the line; "
             "\"*\" is every IPv4 and IPv6 address."},
    {.name = "port",
     .type = CONFIG_INT,
     .flags = CONFIG_F_REQUIRED,
     .min = 1,
     .max = 65535,
     .example = "25",
     FIELD(struct config_listener, port),
     .help = "The TCP port. Required; the usual ones are lmtp 24, smtp "
             "25, pop3 110, imap 143, submissions 465, submission 587, "
             "imaps 993, pop3s 995, managesieve 4190, http 8080."},
    {.name = "tls",
     .type = CONFIG_ENUM,
     .choices = tls_names,
     .def_help = "implicit for submissions, imaps and pop3s; none for "
                 "lmtp and http; starttls for the others",
     .example = "starttls",
     FIELD(struct config_listener, tls),
     .default_fn = default_listener_tls,
     .help = "none: plaintext only; starttls: plaintext with the upgrade "
             "offered; implicit: TLS from the first byte."},
    {.name = "proxy_protocol",
     .type = CONFIG_BOOL,
     .def = "no",
     FIELD(struct config_listener, proxy_protocol),
     .help = "Expect a PROXY protocol version 2 header from a load "
             "balancer before the session, and use the client address it "
             "carries; a connection without a valid one is closed."},
    {.name = "max_connections",
     .type = CONFIG_INT,
     .def = "1000",
     .min = 1,
     .max = 1000000,
     FIELD(struct config_listener, max_connections),
     .help = "Connections open at once on this listener; more are "
             "refused with the protocol's temporary error."},
    {.name = "max_connections_per_ip",
     .type = CONFIG_INT,
     .def = "20",
     .min = 1,
     .max = 100000,
     FIELD(struct config_listener, max_connections_per_ip),
     .help = "Connections open at once from one client address; more "
             "are refused."},
};

static const struct config_block listener_block = {
    .name = "listener",
    .label = {.name = "SERVICE",
              .type = CONFIG_ENUM,
              .choices = service_names,
              .example = "smtp",
              FIELD(struct config_listener, service),
              .help = "A socket to accept connections on, for one "
                      "service; repeatable."},
    .settings = listener_settings,
    .nsettings = NELEM(listener_settings),
    .elem_size = sizeof(struct config_listener),
    .file_offset = offsetof(struct config_listener, file),
    .line_offset = offsetof(struct config_listener, line),
};

/* A certificate: `certificate NAME { … }`. */
static const struct config_setting certificate_settings[] = {
    {.name = "cert",
     .type = CONFIG_PATH,
     .flags = CONFIG_F_REQUIRED,
     .example = "/etc/tern/mail.example.org.pem",
     FIELD(struct config_certificate, cert),
     .help = "The certificate chain in PEM, leaf first."},
    {.name = "key",
     .type = CONFIG_PATH,
     .flags = CONFIG_F_REQUIRED,
     .example = "/etc/tern/mail.example.org.key",
     FIELD(struct config_certificate, key),
     .help = "The private key in PEM."},
};

static const struct config_block certificate_block = {
    .name = "certificate",
    .label = {.name = "NAME",
              .type = CONFIG_STRING,
              .example = "default",
              FIELD(struct config_certificate, name),
              .help = "A certificate and its key, reread when the files "
                      "change; repeatable. The first one is the default; "
                      "the others are chosen by SNI from the names they "
                      "carry."},
    .settings = certificate_settings,
    .nsettings = NELEM(certificate_settings),
    .elem_size = sizeof(struct config_certificate),
    .file_offset = offsetof(struct config_certificate, file),
    .line_offset = offsetof(struct config_certificate, line),
};

/* `relay NAME { … }`: a smarthost. Index = enum relay_tls. */
static const char *const relay_tls_names[] = {"starttls", "tls", "none", NULL};

/* "example.org", "*.example.org" or "*". */
static int
check_domain_pattern(const char *value, char **why_r)
{
	const char *name = value;

	if (strcmp(value, "*") == 0)
		return 0;
	if (strncmp(value, "*.", 2) == 0)
		name = value + 2;
	if (name[0] == '\0' || check_hostname(name, why_r) < 0) {
		free(*why_r);
		*why_r =
		    xasprintf("\"%s\" is not a domain, *.domain or *", value);
		return -1;
	}
	return 0;
}

static const struct config_setting relay_settings[] = {
    {.name = "host",
     .type = CONFIG_STRING,
     .flags = CONFIG_F_REQUIRED,
     .example = "email-smtp.eu-west-1.amazonaws.com",
     FIELD(struct config_relay, host),
     .check = check_hostname,
     .help = "The relay's host name or IP address."},
    {.name = "port",
     .type = CONFIG_INT,
     .def = "587",
     .min = 1,
     .max = 65535,
     FIELD(struct config_relay, port),
     .help = "The relay's port: 587 for STARTTLS, 465 for tls."},
    {.name = "tls",
     .type = CONFIG_ENUM,
     .def = "starttls",
     .choices = relay_tls_names,
     FIELD(struct config_relay, tls),
     .help = "starttls: STARTTLS required (never plaintext); tls: TLS from "
             "the first byte; none: plaintext, for a relay on a loopback "
             "address only."},
    {.name = "tls_verify",
     .type = CONFIG_BOOL,
     .def = "yes",
     FIELD(struct config_relay, tls_verify),
     .help = "Check the relay's certificate chain and that it names host."},
    {.name = "ca_file",
     .type = CONFIG_PATH,
     .flags = CONFIG_F_EMPTY_OK,
     .def = "",
     FIELD(struct config_relay, ca_file),
     .help = "Trusted certificates (PEM) for the relay; \"\" is the "
             "system store."},
    {.name = "user",
     .type = CONFIG_STRING,
     .flags = CONFIG_F_EMPTY_OK,
     .def = "",
     FIELD(struct config_relay, user),
     .help = "The AUTH user name at the relay; \"\" sends no AUTH."},
    {.name = "password_file",
     .type = CONFIG_PATH,
     .flags = CONFIG_F_EMPTY_OK,
     .def = "",
     FIELD(struct config_relay, password_file),
     .help = "A file whose first line is the AUTH password, readable by "
             "queue_user (quickstart keeps it in data_dir/relay/)."},
};

static const struct config_block relay_block = {
    .name = "relay",
    .label = {.name = "NAME",
              .type = CONFIG_STRING,
              .example = "ses",
              FIELD(struct config_relay, name),
              .help = "A smarthost that routes can send mail through; "
                      "repeatable."},
    .settings = relay_settings,
    .nsettings = NELEM(relay_settings),
    .elem_size = sizeof(struct config_relay),
    .file_offset = offsetof(struct config_relay, file),
    .line_offset = offsetof(struct config_relay, line),
};

static const struct config_setting route_settings[] = {
    {.name = "recipient_domains",
     .type = CONFIG_LIST,
     .def = "*",
     .example = "example.org *.example.net",
     FIELD(struct config_route, recipient_domains),
     COUNT(struct config_route, nrecipient_domains),
     .check = check_domain_pattern,
     .help = "Recipient domains this route is for: a domain, *.domain "
             "(its subdomains) or * (any)."},
    {.name = "sender_domains",
     .type = CONFIG_LIST,
     .def = "*",
     .example = "example.com",
     FIELD(struct config_route, sender_domains),
     COUNT(struct config_route, nsender_domains),
     .check = check_domain_pattern,
     .help = "Envelope sender domains this route is for, in the same "
             "forms (* also matches the null sender)."},
    {.name = "via",
     .type = CONFIG_STRING,
     .flags = CONFIG_F_REQUIRED,
     .example = "ses",
     FIELD(struct config_route, via),
     .help = "mx (the recipient domain's MX hosts) or the NAME of a relay "
             "block."},
};

static const struct config_block route_block = {
    .name = "route",
    .label = {.name = "NAME",
              .type = CONFIG_STRING,
              .example = "default",
              FIELD(struct config_route, name),
              .help = "Where mail for other domains goes; the first route "
                      "that matches wins, and mail no route matches goes "
                      "to the MX hosts. Local domains always deliver "
                      "locally."},
    .settings = route_settings,
    .nsettings = NELEM(route_settings),
    .elem_size = sizeof(struct config_route),
    .file_offset = offsetof(struct config_route, file),
    .line_offset = offsetof(struct config_route, line),
};

/* A host that is a loopback address (or localhost). */
static bool
is_loopback_host(const char *host)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

/* Relay names unique, plaintext only on loopback, AUTH complete; every
 * route's via names mx or a relay. */
static int
finish_relays(const struct config *cfg, const char **file_r, int *line_r,
              char **why_r)
{
	for (size_t i = 0; i < cfg->nrelays; i++) {
		const struct config_relay *r = &cfg->relays[i];

		*file_r = r->file;
		*line_r = r->line;
		if (strcmp(r->name, "mx") == 0) {
			*why_r = xstrdup("relay \"mx\": the name mx is "
			                 "reserved for MX delivery");
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(cfg->relays[j].name, r->name) != 0)
				continue;
			*why_r = xasprintf("relay \"%s\" is already defined "
			                   "at %s:%d",
			                   r->name, cfg->relays[j].file,
			                   cfg->relays[j].line);
			return -1;
		}
		if (r->tls == RELAY_TLS_NONE && !is_loopback_host(r->host)) {
			*why_r = xasprintf("relay \"%s\": tls none is only for "
			                   "a relay on a loopback address",
			                   r->name);
			return -1;
		}
		if ((r->user[0] == '\0') != (r->password_file[0] == '\0')) {
			*why_r = xasprintf("relay \"%s\": user and "
			                   "password_file go together",
			                   r->name);
			return -1;
		}
	}
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct config_route *rt = &cfg->routes[i];
		bool found = strcmp(rt->via, "mx") == 0;

		for (size_t j = 0; j < cfg->nrelays && !found; j++)
			found = strcmp(cfg->relays[j].name, rt->via) == 0;
		if (!found) {
			*file_r = rt->file;
			*line_r = rt->line;
			*why_r =
			    xasprintf("route \"%s\": via \"%s\" is neither "
			              "mx nor a relay's name",
			              rt->name, rt->via);
			return -1;
		}
	}
	return 0;
}

/* The top level. */
static const struct config_setting root_settings[] = {
    {.name = "hostname",
     .type = CONFIG_STRING,
     .def_help = "the system host name",
     FIELD(struct config, hostname),
     .check = check_hostname,
     .default_fn = default_hostname,
     .help = "The name of this server in SMTP greetings and certificates; "
             "it should resolve to this host and be the target of its "
             "reverse DNS."},
    {.name = "data_dir",
     .type = CONFIG_PATH,
     .def = "/var/lib/tern",
     FIELD(struct config, data_dir),
     .help = "Where the directory database, queue, mailboxes and keys "
             "live."},
    {.name = "log_level",
     .type = CONFIG_ENUM,
     .def = "info",
     .choices = log_level_names,
     FIELD(struct config, log_level),
     .help = "The least important events that are logged."},
    {.name = "log_syslog",
     .type = CONFIG_BOOL,
     .def = "no",
     FIELD(struct config, log_syslog),
     .help = "Log to syslog as well as to standard error."},
    {.name = "syslog_facility",
     .type = CONFIG_ENUM,
     .flags = CONFIG_F_ENUM_NAME,
     .def = "mail",
     .choices = facility_names,
     FIELD(struct config, syslog_facility),
     .help = "The syslog facility, when log_syslog is yes."},
    {.name = "front_user",
     .type = CONFIG_STRING,
     .def = "tern-front",
     FIELD(struct config, front_user),
     .help = "The system user the network-facing process runs as when "
             "tern is started as root."},
    {.name = "lookup_user",
     .type = CONFIG_STRING,
     .def = "tern-lookup",
     FIELD(struct config, lookup_user),
     .help = "The system user of the process that holds the user "
             "directory and DKIM keys, when started as root."},
    {.name = "queue_user",
     .type = CONFIG_STRING,
     .def = "tern-queue",
     FIELD(struct config, queue_user),
     .help = "The system user of the mail queue process, when started as "
             "root."},
    {.name = "store_user",
     .type = CONFIG_STRING,
     .def = "tern-store",
     FIELD(struct config, store_user),
     .help = "The system user of the mailbox process, when started as "
             "root."},
    {.name = "shutdown_timeout",
     .type = CONFIG_DURATION,
     .def = "30s",
     .min = MS_SECOND,
     .max = MS_HOUR,
     FIELD(struct config, shutdown_timeout_ms),
     .help = "How long a stop waits for sessions and deliveries in flight "
             "before closing them."},
    {.name = "certificate_check_interval",
     .type = CONFIG_DURATION,
     .def = "10s",
     .min = 100,
     .max = MS_DAY,
     FIELD(struct config, certificate_check_interval_ms),
     .help = "How often the certificate and key files are checked for "
             "renewal; changed files are loaded without a restart."},
    {.name = "restart_backoff_max",
     .type = CONFIG_DURATION,
     .def = "60s",
     .min = MS_SECOND,
     .max = MS_HOUR,
     FIELD(struct config, restart_backoff_max_ms),
     .help = "The longest wait before a crashed process is restarted; the "
             "wait doubles with each crash in a row."},
    {.name = "resolver",
     .type = CONFIG_STRING,
     .flags = CONFIG_F_EMPTY_OK,
     .def = "",
     FIELD(struct config, resolver),
     .check = check_resolver,
     .help = "Send every DNS query to this server (ADDR, ADDR:PORT or "
             "[IPV6]:PORT, e.g. 127.0.0.1:53) instead of the system "
             "resolver; \"\" is the system resolver."},
    {.name = "dns_trust_anchor",
     .type = CONFIG_PATH,
     .flags = CONFIG_F_EMPTY_OK,
     .def = "",
     FIELD(struct config, dns_trust_anchor),
     .help = "The DNSSEC root trust anchor file (e.g. "
             "/usr/share/dns/root.key); \"\" turns DNSSEC validation off, "
             "and with it DANE."},
    {.name = "directory_backend",
     .type = CONFIG_ENUM,
     .def = "sqlite",
     .choices = backend_names,
     FIELD(struct config, directory_backend),
     .help = "Where domains, users and aliases are kept: sqlite (a file "
             "in data_dir), pgsql (PostgreSQL) or mysql (MariaDB or "
             "MySQL)."},
    {.name = "directory_connect",
     .type = CONFIG_STRING,
     .flags = CONFIG_F_EMPTY_OK,
     .def = "",
     .example = "host=/run/postgresql dbname=tern user=tern",
     FIELD(struct config, directory_connect),
     .help = "How to reach the directory: for sqlite a file path (\"\" is "
             "data_dir/directory.db); for pgsql a libpq connection "
             "string; for mysql \"host=H port=P socket=S user=U "
             "password=W database=D\"."},
    {.name = "subaddress_separator",
     .type = CONFIG_STRING,
     .flags = CONFIG_F_EMPTY_OK,
     .def = "+",
     FIELD(struct config, subaddress_separator),
     .help = "Characters that start a subaddress: mail for user+tag@ goes "
             "to user@. \"\" turns subaddresses off."},
    {.name = "suspended_inbound",
     .type = CONFIG_ENUM,
     .def = "accept",
     .choices = inbound_names,
     FIELD(struct config, suspended_inbound),
     .help = "Mail for a suspended user: accept it (the user just cannot "
             "log in or send), or reject it with 550 5.2.1."},
    {.name = "allow_plain_passwords",
     .type = CONFIG_BOOL,
     .def = "no",
     FIELD(struct config, allow_plain_passwords),
     .help = "Accept {PLAIN} (clear text) password entries in the "
             "directory, as imported from an old setup."},
    {.name = "argon2_memory",
     .type = CONFIG_SIZE,
     .def = "64M",
     .min = 8ULL << 20,
     .max = 4ULL << 30,
     FIELD(struct config, argon2_memory),
     .help = "Memory for each new Argon2id password hash; more is slower "
             "to attack and to log in."},
    {.name = "argon2_time",
     .type = CONFIG_INT,
     .def = "3",
     .min = 1,
     .max = 100,
     FIELD(struct config, argon2_time),
     .help = "Argon2id passes for each new password hash."},
    {.name = "argon2_parallelism",
     .type = CONFIG_INT,
     .def = "1",
     .min = 1,
     .max = 64,
     FIELD(struct config, argon2_parallelism),
     .help = "Argon2id lanes for each new password hash."},
    {.name = "scram_iterations",
     .type = CONFIG_INT,
     .def = "10000",
     .min = 4096,
     .max = 10000000,
     FIELD(struct config, scram_iterations),
     .help = "PBKDF2 iterations of the SCRAM-SHA-256 keys stored when a "
             "password is set (RFC 7677 asks for at least 4096)."},
    {.name = "auth_max_failures",
     .type = CONFIG_INT,
     .def = "10",
     .min = 1,
     .max = 100000,
     FIELD(struct config, auth_max_failures),
     .help = "Failed logins from one IP address within auth_failure_window "
             "that get it banned."},
    {.name = "auth_failure_window",
     .type = CONFIG_DURATION,
     .def = "10m",
     .min = MS_SECOND,
     .max = MS_DAY,
     FIELD(struct config, auth_failure_window_ms),
     .help = "How far back failed logins are counted."},
    {.name = "auth_ban_time",
     .type = CONFIG_DURATION,
     .def = "1h",
     .min = MS_SECOND,
     .max = 30 * MS_DAY,
     FIELD(struct config, auth_ban_time_ms),
     .help = "How long a banned IP address may not log in; bans survive "
             "a restart."},
    {.name = "auth_delay_max",
     .type = CONFIG_DURATION,
     .def = "15s",
     .min = 0,
     .max = 60 * MS_SECOND,
     FIELD(struct config, auth_delay_max_ms),
     .help = "The longest a login answer is held back after repeated "
             "failures (the delay doubles with each failure)."},
    {.name = "auth_trusted_networks",
     .type = CONFIG_LIST,
     .flags = CONFIG_F_EMPTY_OK,
     .def = "",
     .example = "127.0.0.0/8 ::1",
     FIELD(struct config, auth_trusted_networks),
     COUNT(struct config, nauth_trusted_networks),
     .check = check_cidr,
     .help = "Networks whose failed logins are never delayed or banned "
             "(\"\" is none)."},
    {.name = "smtp_line_max",
     .type = CONFIG_INT,
     .def = "2048",
     .min = 512,
     .max = 65536,
     FIELD(struct config, smtp_line_max),
     .help = "Longest SMTP command line, CRLF included (RFC 5321 asks "
             "for at least 512); longer ones get 500 5.5.2."},
    {.name = "message_size_max",
     .type = CONFIG_SIZE,
     .def = "50M",
     .min = 64 * 1024,
     .max = 4ULL << 30,
     FIELD(struct config, message_size_max),
     .help = "Largest message accepted (announced as SIZE); larger ones "
             "get 552 5.3.4."},
    {.name = "smtp_header_max",
     .type = CONFIG_SIZE,
     .def = "1M",
     .min = 16 * 1024,
     .max = 64ULL << 20,
     FIELD(struct config, smtp_header_max),
     .help = "Largest header section of a message; larger ones get 552 "
             "5.3.4."},
    {.name = "smtp_recipients_max",
     .type = CONFIG_INT,
     .def = "100",
     .min = 1,
     .max = 10000,
     FIELD(struct config, smtp_recipients_max),
     .help = "Recipients per message; more get 452 4.5.3 (the client "
             "sends them in another message)."},
    {.name = "smtp_errors_max",
     .type = CONFIG_INT,
     .def = "10",
     .min = 1,
     .max = 1000,
     FIELD(struct config, smtp_errors_max),
     .help = "Bad commands in one session before it is closed with 421."},
    {.name = "smtp_reject_bare_lf",
     .type = CONFIG_BOOL,
     .def = "no",
     FIELD(struct config, smtp_reject_bare_lf),
     .help = "Refuse messages with a bare LF or CR (550 5.5.2) instead of "
             "turning them into CRLF."},
    {.name = "smtp_idle_timeout",
     .type = CONFIG_DURATION,
     .def = "5m",
     .min = 10 * MS_SECOND,
     .max = MS_HOUR,
     FIELD(struct config, smtp_idle_timeout_ms),
     .help = "How long a session may wait for the client's next command or "
             "data (RFC 5321 4.5.3.2 asks for at least 5 minutes)."},
    {.name = "dmarc_enforce",
     .type = CONFIG_BOOL,
     .def = "yes",
     FIELD(struct config, dmarc_enforce),
     .help = "Apply the sender domain's DMARC policy to mail on the MX: "
             "reject answers 550 5.7.1, quarantine delivers to Junk."},
    {.name = "arc_trusted_sealers",
     .type = CONFIG_LIST,
     .flags = CONFIG_F_EMPTY_OK,
     .def = "",
     .example = "lists.example.org",
     FIELD(struct config, arc_trusted_sealers),
     COUNT(struct config, narc_trusted_sealers),
     .help = "Forwarders (ARC sealer domains) whose ARC result overrides "
             "a DMARC failure when they saw DMARC pass (\"\" is none)."},
    {.name = "dmarc_reports",
     .type = CONFIG_BOOL,
     .def = "yes",
     FIELD(struct config, dmarc_reports),
     .help = "Record the DMARC results of inbound mail and send aggregate "
             "reports to the rua addresses of sender domains that ask for "
             "them (RFC 7489 7.2)."},
    {.name = "dmarc_report_interval",
     .type = CONFIG_DURATION,
     .def = "24h",
     .min = 10 * MS_SECOND,
     .max = 7 * MS_DAY,
     FIELD(struct config, dmarc_report_interval_ms),
     .help = "The period of the DMARC aggregate reports sent to the rua "
             "addresses of sender domains (RFC 7489 7.2): one report per "
             "domain and period, sent when the period ends."},
    {.name = "dmarc_report_from",
     .type = CONFIG_STRING,
     .flags = CONFIG_F_EMPTY_OK,
     .def = "",
     .example = "dmarc-reports@example.org",
     FIELD(struct config, dmarc_report_from),
     .check = check_report_from,
     .help = "The address DMARC aggregate reports come from, envelope and "
             "From: (\"\" is postmaster@ the hostname)."},
    {.name = "tlsrpt_reports",
     .type = CONFIG_BOOL,
     .def = "yes",
     FIELD(struct config, tlsrpt_reports),
     .help = "Send the daily SMTP TLS reports (RFC 8460) about our "
             "outbound sessions to the domains that publish an "
             "_smtp._tls record."},
    {.name = "tlsrpt_report_from",
     .type = CONFIG_STRING,
     .flags = CONFIG_F_EMPTY_OK,
     .def = "",
     .example = "tls-reports@example.org",
     FIELD(struct config, tlsrpt_report_from),
     .check = check_report_from,
     .help = "The address TLS reports come from, envelope and From: "
             "(\"\" is postmaster@ the hostname)."},
    {.name = "srs",
     .type = CONFIG_BOOL,
     .def = "yes",
     FIELD(struct config, srs),
     .help = "Rewrite the envelope sender of mail an alias forwards to an "
             "external address (SRS), so that SPF passes at the "
             "destination, and accept bounces to those addresses for the "
             "original sender. The secrets are in DATA/srs.keys."},
    {.name = "srs_domain",
     .type = CONFIG_STRING,
     .flags = CONFIG_F_EMPTY_OK,
     .def = "",
     .example = "example.org",
     FIELD(struct config, srs_domain),
     .check = check_hostname,
     .help = "The domain of the rewritten senders: one of ours whose SPF "
             "record allows this server (\"\" is the forwarding alias's "
             "own domain)."},
    {.name = "queue_retry_first",
     .type = CONFIG_DURATION,
     .def = "5m",
     .min = MS_SECOND,
     .max = MS_DAY,
     FIELD(struct config, queue_retry_first_ms),
     .help = "The wait before the first retry of a temporary failure; "
             "each later wait doubles, up to queue_retry_max."},
    {.name = "queue_retry_max",
     .type = CONFIG_DURATION,
     .def = "1h",
     .min = MS_SECOND,
     .max = MS_DAY,
     FIELD(struct config, queue_retry_max_ms),
     .help = "The longest wait between two attempts."},
    {.name = "queue_lifetime",
     .type = CONFIG_DURATION,
     .def = "5d",
     .min = 10 * MS_SECOND,
     .max = 30 * MS_DAY,
     FIELD(struct config, queue_lifetime_ms),
     .help = "How long a recipient may stay queued after temporary "
             "failures before it fails for good and the sender gets a "
             "bounce."},
    {.name = "queue_delay_warning",
     .type = CONFIG_DURATION,
     .def = "4h",
     .max = 30 * MS_DAY,
     FIELD(struct config, queue_delay_warning_ms),
     .help = "After this long in the queue, a recipient that is still "
             "being retried gets its sender one \"delayed\" DSN (when "
             "its NOTIFY asks for DELAY or says nothing); 0 sends none."},
    {.name = "outbound_concurrency",
     .type = CONFIG_INT,
     .def = "20",
     .min = 1,
     .max = 64,
     FIELD(struct config, outbound_concurrency),
     .help = "Outbound SMTP deliveries at once (each runs on its own "
             "worker thread)."},
    {.name = "outbound_destination_concurrency",
     .type = CONFIG_INT,
     .def = "5",
     .min = 1,
     .max = 64,
     FIELD(struct config, outbound_destination_concurrency),
     .help = "Outbound deliveries at once to one destination (a relay, or "
             "one recipient domain's MX hosts)."},
    {.name = "outbound_mx_port",
     .type = CONFIG_INT,
     .def = "25",
     .min = 1,
     .max = 65535,
     FIELD(struct config, outbound_mx_port),
     .help = "The port of MX hosts. Only tests change it."},
    {.name = "outbound_ipv6",
     .type = CONFIG_BOOL,
     .def = "yes",
     FIELD(struct config, outbound_ipv6),
     .help = "Also deliver to MX hosts over IPv6 (IPv4 is always used)."},
    {.name = "mta_sts_ca_file",
     .type = CONFIG_PATH,
     .flags = CONFIG_F_EMPTY_OK,
     .def = "",
     FIELD(struct config, mta_sts_ca_file),
     .help = "Trusted certificates (PEM) for MTA-STS: the policy's web "
             "server and the MX hosts of a domain with a policy; \"\" is "
             "the system store. Only tests change it."},
    {.name = "mta_sts_port",
     .type = CONFIG_INT,
     .def = "443",
     .min = 1,
     .max = 65535,
     FIELD(struct config, mta_sts_port),
     .help = "The HTTPS port of MTA-STS policy servers. Only tests change "
             "it."},
    {.name = "outbound_connect_timeout",
     .type = CONFIG_DURATION,
     .def = "30s",
     .min = 100,
     .max = 5 * 60 * MS_SECOND,
     FIELD(struct config, outbound_connect_timeout_ms),
     .help = "How long to wait for a TCP connection to an MX host or "
             "relay before trying the next address."},
    {.name = "sending_limit_messages",
     .type = CONFIG_INT,
     .def = "200",
     .min = 0,
     .max = 1000000,
     FIELD(struct config, sending_limit_messages),
     .help = "Messages to remote recipients one authenticated user may send "
             "in an hour; over it their outbound mail is held and their "
             "sending suspended (0 is no limit)."},
    {.name = "sending_limit_recipients",
     .type = CONFIG_INT,
     .def = "1000",
     .min = 0,
     .max = 10000000,
     FIELD(struct config, sending_limit_recipients),
     .help = "Remote recipients one authenticated user may send to in an "
             "hour; over it their outbound mail is held and their sending "
             "suspended (0 is no limit)."},
    {.name = "sending_spike_factor",
     .type = CONFIG_INT,
     .def = "10",
     .min = 0,
     .max = 10000,
     FIELD(struct config, sending_spike_factor),
     .help = "A user who sends more than this many times their busiest "
             "hour of the last 7 days within an hour is suspended as for "
             "a limit (0 turns the spike rule off)."},
    {.name = "sending_spike_floor",
     .type = CONFIG_INT,
     .def = "50",
     .min = 0,
     .max = 1000000,
     FIELD(struct config, sending_spike_floor),
     .help = "Messages in an hour at or below which no spike is seen, so "
             "that a new user's first burst is not suspended."},
    {.name = "listener",
     .type = CONFIG_BLOCK,
     .block = &listener_block,
     FIELD(struct config, listeners),
     COUNT(struct config, nlisteners)},
    {.name = "certificate",
     .type = CONFIG_BLOCK,
     .block = &certificate_block,
     FIELD(struct config, certificates),
     COUNT(struct config, ncertificates)},
    {.name = "relay",
     .type = CONFIG_BLOCK,
     .block = &relay_block,
     FIELD(struct config, relays),
     COUNT(struct config, nrelays)},
    {.name = "route",
     .type = CONFIG_BLOCK,
     .block = &route_block,
     FIELD(struct config, routes),
     COUNT(struct config, nroutes)},
};

const struct config_block config_root = {
    .name = "",
    .settings = root_settings,
    .nsettings = NELEM(root_settings),
    .elem_size = sizeof(struct config),
    .finish = finish_root,
};

static void
collect_names(const struct config_block *b, const char **names, size_t *n)
{
	for (size_t i = 0; i < b->nsettings; i++) {
		if (names != NULL)
			names[*n] = b->settings[i].name;
		(*n)++;
		if (b->settings[i].type == CONFIG_BLOCK)
			collect_names(b->settings[i].block, names, n);
	}
}

size_t
config_table_names(const char ***names_r)
{
	size_t n = 0;
	const char **names;

	collect_names(&config_root, NULL, &n);
	names = xcalloc(n, sizeof(*names));
	n = 0;
	collect_names(&config_root, names, &n);
	*names_r = names;
	return n;
}

/* Value types: sizes (binary units), durations, numbers. */

static int
parse_digits(const char **s, uint64_t *v_r)
{
	uint64_t v = 0;
	const char *p = *s;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*s = p;
	*v_r = v;
	return 0;
}

int
config_parse_uint(const char *s, uint64_t *v_r)
{
	return parse_digits(&s, v_r) < 0 || *s != '\0' ? -1 : 0;
}

static int
scale(uint64_t v, uint64_t unit, uint64_t *r)
{
	if (v > UINT64_MAX / unit)
		return -1;
	*r = v * unit;
	return 0;
}

static const char size_units[] = "kMGT"; /* 2^10, 2^20, 2^30, 2^40 */

int
config_parse_size(const char *s, uint64_t *bytes_r)
{
	uint64_t v;

	if (parse_digits(&s, &v) < 0)
		return -1;
	if (*s == '\0')
		return scale(v, 1, bytes_r);
	for (int i = 0; i < 4; i++) {
		if ((*s | 0x20) == (size_units[i] | 0x20) && s[1] == '\0')
			return scale(v, 1ULL << (10 * (i + 1)), bytes_r);
	}
	return -1;
}

static const struct {
	const char *name;
	uint64_t ms;
} duration_units[] = {
    {"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1},
};

int
config_parse_duration(const char *s, uint64_t *ms_r)
{
	uint64_t v;

	if (parse_digits(&s, &v) < 0)
		return -1;
	for (size_t i = 0; i < NELEM(duration_units); i++) {
		if (strcmp(s, duration_units[i].name) == 0)
			return scale(v, duration_units[i].ms, ms_r);
	}
	return -1;
}

int
config_parse_bool(const char *s, bool *value_r)
{
	if (strcmp(s, "yes") != 0 && strcmp(s, "no") != 0)
		return -1;
	*value_r = s[0] == 'y';
	return 0;
}

/* The largest unit that is exact, so that parsing the text gives v back. */
char *
config_format_number(const struct config_setting *s, uint64_t v)
{
	if (s->type == CONFIG_DURATION) {
		for (size_t i = 0; v != 0 && i < NELEM(duration_units); i++) {
			if (v % duration_units[i].ms == 0)
				return xasprintf(
				    "%llu%s",
				    (unsigned long long)(v /
				                         duration_units[i].ms),
				    duration_units[i].name);
		}
		return xstrdup("0s");
	}
	for (int i = 3; s->type == CONFIG_SIZE && v != 0 && i >= 0; i--) {
		uint64_t unit = 1ULL << (10 * (i + 1));

		if (v % unit == 0)
			return xasprintf("%llu%c",
			                 (unsigned long long)(v / unit),
			                 size_units[i]);
	}
	return xasprintf("%llu", (unsigned long long)v);
}

bool
config_needs_quotes(const char *s)
{
	return *s == '\0' || strcmp(s, "{") == 0 || strcmp(s, "}") == 0 ||
	       strpbrk(s, " \t#\"\\") != NULL;
}

/* Writing text. Appending to an unbounded buffer fails only past SIZE_MAX/2,
 * which is not a config. */
static void __attribute__((format(printf, 2, 3)))
out(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	if (buf_append_str(b, s) < 0)
		abort();
	free(s);
}

static void
out_word(struct buf *b, const char *s)
{
	if (!config_needs_quotes(s)) {
		out(b, "%s", s);
		return;
	}
	out(b, "\"");
	for (; *s != '\0'; s++)
		out(b, "%s%c", *s == '"' || *s == '\\' ? "\\" : "", *s);
	out(b, "\"");
}

static char *
buf_take(struct buf *b)
{
	char *r = xstrdup(buf_cstr(b));

	buf_free(b);
	return r;
}

/* Read-only views of a field; config.c stores them. */
static const void *
ptr_at(const void *obj, size_t offset)
{
	const void *p;

	memcpy(&p, (const char *)obj + offset, sizeof(p));
	return p;
}

static uint64_t
uint_at(const void *obj, const struct config_setting *s)
{
	union {
		uint8_t u8;
		uint16_t u16;
		uint32_t u32;
		uint64_t u64;
	} u;

	memcpy(&u, (const char *)obj + s->offset, s->size);
	return s->size == 1   ? u.u8
	       : s->size == 2 ? u.u16
	       : s->size == 4 ? u.u32
	                      : u.u64;
}

static size_t
count_at(const void *obj, const struct config_setting *s)
{
	return *(const size_t *)((const char *)obj + s->count_offset);
}

/* A value as config.c reads it back. */
static void
out_value(struct buf *b, const struct config_setting *s, const void *obj)
{
	const char *const *items;
	uint64_t v;
	char *text;

	switch (s->type) {
	case CONFIG_STRING:
	case CONFIG_PATH:
		out_word(b, ptr_at(obj, s->offset));
		break;
	case CONFIG_LIST:
		items = ptr_at(obj, s->offset);
		if (count_at(obj, s) == 0)
			out(b, "\"\"");
		for (size_t i = 0; i < count_at(obj, s); i++) {
			out(b, "%s", i > 0 ? " " : "");
			out_word(b, items[i]);
		}
		break;
	case CONFIG_ENUM:
		if (s->flags & CONFIG_F_ENUM_NAME) {
			out_word(b, ptr_at(obj, s->offset));
			break;
		}
		v = uint_at(obj, s);
		for (size_t i = 0; i <= v; i++) {
			if (s->choices[i] == NULL)
				abort(); /* not a value the parser stores */
		}
		out(b, "%s", s->choices[v]);
		break;
	case CONFIG_BOOL:
		out(b, "%s", uint_at(obj, s) ? "yes" : "no");
		break;
	default:
		text = config_format_number(s, uint_at(obj, s));
		out(b, "%s", text);
		free(text);
		break;
	}
}

static void
serialize_object(struct buf *b, const struct config_block *blk, const void *obj,
                 int depth)
{
	for (size_t i = 0; i < blk->nsettings; i++) {
		const struct config_setting *s = &blk->settings[i];
		const char *elems;

		if (s->type != CONFIG_BLOCK) {
			out(b, "%.*s%s ", depth, "\t\t\t\t", s->name);
			out_value(b, s, obj);
			out(b, "\n");
			continue;
		}
		elems = ptr_at(obj, s->offset);
		for (size_t k = 0; k < count_at(obj, s); k++) {
			const void *elem = elems + k * s->block->elem_size;

			out(b, "%.*s%s ", depth, "\t\t\t\t", s->name);
			out_value(b, &s->block->label, elem);
			out(b, " {\n");
			serialize_object(b, s->block, elem, depth + 1);
			out(b, "%.*s}\n", depth, "\t\t\t\t");
		}
	}
}

char *
config_serialize(const struct config *cfg)
{
	struct buf b;

	buf_init(&b, 0);
	out(&b, "# tern.conf, canonical form\n");
	serialize_object(&b, &config_root, cfg, 0);
	return buf_take(&b);
}

/* Text as "# " lines that fit in 76 columns after lead. */
static void
describe_wrap(struct buf *b, const char *lead, const char *text)
{
	size_t width = lead[0] != '\0' ? 66 : 74;

	while (*text != '\0') {
		size_t n = strlen(text), cut = n;

		if (n > width) {
			for (cut = width; cut > 0 && text[cut] != ' '; cut--)
				;
			if (cut == 0)
				cut = n;
		}
		out(b, "%s# %.*s\n", lead, (int)cut, text);
		text += cut;
		while (*text == ' ')
			text++;
	}
}

/* "integer 1..65535; default: 1000" and the like. */
static void
describe_type(struct buf *b, const char *lead, const struct config_setting *s)
{
	static const char *const types[] = {
	    [CONFIG_STRING] = "string",
	    [CONFIG_PATH] = "path, relative to the file it is in",
	    [CONFIG_BOOL] = "yes or no",
	    [CONFIG_INT] = "integer",
	    [CONFIG_SIZE] = "size (k, M, G, T)",
	    [CONFIG_DURATION] = "duration (ms, s, m, h, d)",
	    [CONFIG_ENUM] = "one of",
	    [CONFIG_LIST] = "one or more values",
	};
	struct buf t;
	char *lo, *hi;

	buf_init(&t, 0);
	out(&t, "%s", types[s->type]);
	for (size_t i = 0; s->type == CONFIG_ENUM && s->choices[i]; i++)
		out(&t, "%s %s", i > 0 ? "," : "", s->choices[i]);
	if (s->type == CONFIG_INT || s->type == CONFIG_SIZE ||
	    s->type == CONFIG_DURATION) {
		lo = config_format_number(s, s->min);
		hi =
		    s->max != 0 ? config_format_number(s, s->max) : xstrdup("");
		out(&t, " %s..%s", lo, hi);
		free(lo);
		free(hi);
	}
	if (s->flags & CONFIG_F_REQUIRED)
		out(&t, "; required");
	else if (s->def != NULL && s->def[0] == '\0')
		out(&t, "; default: \"\" (off)");
	else
		out(&t, "; default: %s", s->def != NULL ? s->def : s->def_help);
	describe_wrap(b, lead, buf_cstr(&t));
	buf_free(&t);
}

/* Help, type, then the setting commented out with its default (or, where
 * the default depends on the block, an example). */
static void
describe_setting(struct buf *b, const struct config_setting *s, bool in_block)
{
	const char *lead = in_block ? "#\t" : "";
	char *value;

	describe_wrap(b, lead, s->help);
	describe_type(b, lead, s);
	if (s->def != NULL)
		value = xstrdup(s->def);
	else if (!in_block && s->default_fn != NULL)
		value = s->default_fn(NULL);
	else
		value = xstrdup(s->example);
	out(b, "%s%s ", in_block ? "#\t" : "#", s->name);
	if (s->type == CONFIG_LIST && *value != '\0')
		out(b, "%s", value);
	else
		out_word(b, value);
	out(b, "\n%s\n", in_block ? "#" : "");
	free(value);
}

static void
describe_block(struct buf *b, const struct config_setting *s)
{
	const struct config_block *blk = s->block;
	struct buf t;

	describe_wrap(b, "", blk->label.help);
	buf_init(&t, 0);
	out(&t, "%s %s { ... }, %s: ", s->name, blk->label.name,
	    blk->label.name);
	for (size_t i = 0; blk->label.choices && blk->label.choices[i]; i++)
		out(&t, "%s%s", i > 0 ? ", " : "one of ",
		    blk->label.choices[i]);
	if (blk->label.choices == NULL)
		out(&t, "a name");
	describe_wrap(b, "", buf_cstr(&t));
	buf_free(&t);
	out(b, "#%s %s {\n", s->name, blk->label.example);
	for (size_t i = 0; i < blk->nsettings; i++)
		describe_setting(b, &blk->settings[i], true);
	out(b, "#}\n\n");
}

char *
config_describe_defaults(void)
{
	struct buf b;

	buf_init(&b, 0);
	out(&b, "# tern.conf: every setting and its default (tern config "
	        "defaults).\n# Remove the \"#\" before a setting to change it; "
	        "see tern.conf(5).\n\n");
	for (size_t i = 0; i < config_root.nsettings; i++) {
		if (config_root.settings[i].type == CONFIG_BLOCK)
			describe_block(&b, &config_root.settings[i]);
		else
			describe_setting(&b, &config_root.settings[i], false);
	}
	return buf_take(&b);
}
