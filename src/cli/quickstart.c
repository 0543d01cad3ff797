/* tern quickstart: create a working instance in a directory — tern.conf,
 * data/, a self-signed certificate, DKIM keys, the domain (and a first user)
 * in the directory — and print the DNS records the domain needs. Refuses
 * to overwrite an existing tern.conf. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/keys.h"
#include "core/proc.h"
#include "core/xmalloc.h"

#define EXIT_CANTCREAT 73
#define CERT_DAYS 825

struct quickstart {
	char *dir; /* absolute */
	char *domain;
	char *hostname;
	const char *listen;
	long port_offset;
	const char *resolver;
	/* --relay HOST:PORT: all outbound mail through this smarthost */
	char *relay_host;
	long relay_port;
	const char *relay_tls; /* starttls | tls | none */
	const char *relay_user;
	const char *relay_password_file; /* the operator's file */
	const char *user; /* local part of a first user, or NULL */
	bool password_stdin;
	char selector_rsa[16];
	char selector_ed[16];
};

/* An ASCII host name: labels of letters, digits and inner hyphens. IDN
 * names are taken in A-label form (xn--…) until the directory speaks IDN. */
static int
check_hostname(const char *what, char *name)
{
	size_t label = 0, len = strlen(name);

	if (len == 0 || len > 253 || name[0] == '.' || name[len - 1] == '.')
		goto bad;
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || name[i - 1] == '-')
				goto bad;
			label = 0;
			continue;
		}
		if (!isalnum(c) && !(c == '-' && label > 0))
			goto bad;
		name[i] = (char)tolower(c);
		label++;
	}
	if (strchr(name, '.') == NULL)
		goto bad;
	return 0;
bad:
	fprintf(stderr,
	        "tern quickstart: %s \"%s\" is not a valid domain "
	        "name (ASCII letters, digits, hyphens; use the "
	        "xn-- form for IDN)\n",
	        what, name);
	return -1;
}

static int
make_dir(const char *path, int mode, const char *owner)
{
	char *error = NULL;

	if (proc_mkdir(path, mode, owner, &error) < 0) {
		fprintf(stderr, "tern quickstart: %s\n", error);
		free(error);
		return -1;
	}
	return 0;
}

static int
chown_to(const char *path, const char *user)
{
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0)
		return 0;
	if (proc_user_ids(user, &uid, &gid) < 0 || chown(path, uid, gid) < 0) {
		fprintf(stderr, "tern quickstart: chown %s to %s failed\n",
		        path, user);
		return -1;
	}
	return 0;
}

static void
add_listener(struct buf *b, const struct quickstart *q, enum listener_service s,
             const char *addr)
{
	buf_printf(b, "listener %s {\n\taddress %s\n\tport %ld\n}\n",
	           config_service_name(s), addr,
	           q->port_offset + config_service_default_port(s));
}

static char *
render_config(const struct quickstart *q)
{
	char *text;
	struct buf b;
	/* LMTP has no authentication and HTTP serves metrics: loopback. */
	static const struct {
		enum listener_service s;
		const char *comment;
	} services[] = {
	    {SERVICE_SMTP, "mail from the internet (MX)"},
	    {SERVICE_SUBMISSION, "mail from your users, STARTTLS"},
	    {SERVICE_SUBMISSIONS, "mail from your users, implicit TLS"},
	    {SERVICE_IMAP, "mailbox access, STARTTLS"},
	    {SERVICE_IMAPS, "mailbox access, implicit TLS"},
	    {SERVICE_POP3, "POP3, STLS"},
	    {SERVICE_POP3S, "POP3, implicit TLS"},
	    {SERVICE_MANAGESIEVE, "Sieve script upload"},
	    {SERVICE_LMTP, "LMTP for other MTAs on this host (loopback)"},
	    {SERVICE_HTTP, "metrics, autoconfig, MTA-STS (loopback)"},
	};

	buf_init(&b, 0);
	buf_printf(&b,
	           "# tern.conf for %s, made by `tern quickstart`.\n"
	           "# Every setting and its default: `tern config defaults`;\n"
	           "# the manual: tern.conf(5). Check edits with `tern config "
	           "check`,\n# apply them with `tern reload`.\n\n"
	           "hostname %s\n"
	           "# Relative paths are relative to this file.\n"
	           "data_dir data\n"
	           "log_level info\n\n",
	           q->domain, q->hostname);
	if (q->resolver != NULL)
		buf_printf(&b,
		           "# Every DNS query goes to this server.\n"
		           "resolver %s\n\n",
		           q->resolver);
	if (q->relay_host != NULL) {
		buf_printf(&b,
		           "# Outbound mail goes through this relay "
		           "(tern.conf(5), RELAYS).\n"
		           "relay main {\n\thost %s\n\tport %ld\n\ttls %s\n",
		           q->relay_host, q->relay_port, q->relay_tls);
		if (q->relay_user != NULL)
			buf_printf(&b,
			           "\tuser \"%s\"\n"
			           "\tpassword_file data/relay/main.password\n",
			           q->relay_user);
		buf_printf(&b, "}\nroute all {\n\tvia main\n}\n\n");
	}
	buf_printf(&b,
	           "# The first certificate is the default; clients that "
	           "send SNI get the\n# one whose names match. Renewed "
	           "files are picked up without a reload.\n"
	           "certificate %s {\n\tcert data/tls/%s.crt\n"
	           "\tkey data/tls/%s.key\n}\n\n",
	           q->hostname, q->hostname, q->hostname);
	for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
		enum listener_service s = services[i].s;
		int loopback = s == SERVICE_LMTP || s == SERVICE_HTTP;

		buf_printf(&b, "# %s\n", services[i].comment);
		add_listener(&b, q, s, loopback ? "127.0.0.1" : q->listen);
	}
	text = xstrndup((const char *)b.data, b.len);
	buf_free(&b);
	return text;
}

/* A TXT value as BIND wants it: strings of at most 255 bytes. */
static void
print_txt(const char *owner, const char *value)
{
	size_t len = strlen(value);

	printf("%-28s IN TXT   ", owner);
	if (len > 255)
		printf("( ");
	for (size_t i = 0; i < len; i += 255)
		printf("%s\"%.*s\"",
		       i > 0 ? "\n"
		               "                                      "
		             : "",
		       (int)(len - i < 255 ? len - i : 255), value + i);
	printf("%s\n", len > 255 ? " )" : "");
}

static int
print_records(const struct quickstart *q, const char *data)
{
	char tlsa[65], *path, *rec, *owner, *error = NULL;
	const char *sels[2] = {q->selector_rsa, q->selector_ed};

	printf("\nPublish these DNS records for %s (BIND syntax):\n\n",
	       q->domain);
	owner = xasprintf("%s.", q->domain);
	printf("%-28s IN MX    10 %s.\n", owner, q->hostname);
	print_txt(owner, "v=spf1 mx -all");
	free(owner);
	for (size_t i = 0; i < 2; i++) {
		path = xasprintf("%s/dkim/%s/%s.key", data, q->domain, sels[i]);
		rec = keys_dkim_record(path, &error);
		free(path);
		if (rec == NULL)
			goto fail;
		owner = xasprintf("%s._domainkey.%s.", sels[i], q->domain);
		print_txt(owner, rec);
		free(owner);
		free(rec);
	}
	owner = xasprintf("_dmarc.%s.", q->domain);
	rec =
	    xasprintf("v=DMARC1; p=none; rua=mailto:postmaster@%s", q->domain);
	print_txt(owner, rec);
	free(owner);
	free(rec);
	path = xasprintf("%s/tls/%s.crt", data, q->hostname);
	if (keys_tlsa_311(path, tlsa, &error) < 0) {
		free(path);
		goto fail;
	}
	free(path);
	owner = xasprintf("_25._tcp.%s.", q->hostname);
	printf("%-28s IN TLSA  3 1 1 %s\n", owner, tlsa);
	free(owner);
	printf("\n%s also needs A/AAAA records for this machine's public "
	       "address.\nThe TLSA record pins this certificate's key: update "
	       "it when the key changes.\n",
	       q->hostname);
	return 0;
fail:
	fprintf(stderr, "tern quickstart: %s\n", error);
	free(error);
	return -1;
}

static int
create_keys(const struct quickstart *q, const char *data,
            const char *lookup_user)
{
	char *error = NULL, *dkim_dir, *cert, *key, *p;
	int rc = -1;

	cert = xasprintf("%s/tls/%s.crt", data, q->hostname);
	key = xasprintf("%s/tls/%s.key", data, q->hostname);
	dkim_dir = xasprintf("%s/dkim/%s", data, q->domain);
	if (keys_create_selfsigned(q->hostname, CERT_DAYS, cert, key, &error) <
	    0)
		goto out;
	if (make_dir(dkim_dir, 0700, lookup_user) < 0)
		goto out;
	p = xasprintf("%s/%s.key", dkim_dir, q->selector_rsa);
	if (keys_create_dkim_rsa(p, 2048, &error) < 0 ||
	    chown_to(p, lookup_user) < 0) {
		free(p);
		goto out;
	}
	free(p);
	p = xasprintf("%s/%s.key", dkim_dir, q->selector_ed);
	if (keys_create_dkim_ed25519(p, &error) < 0 ||
	    chown_to(p, lookup_user) < 0) {
		free(p);
		goto out;
	}
	free(p);
	rc = 0;
out:
	if (error != NULL) {
		fprintf(stderr, "tern quickstart: %s\n", error);
		free(error);
	}
	free(cert);
	free(key);
	free(dkim_dir);
	return rc;
}

/* The relay password goes into data/relay/, readable by the queue
 * process only (the operator's file may be anywhere, owned by anyone). */
static int
copy_relay_password(const struct quickstart *q, const char *data,
                    const char *queue_user)
{
	char *dir = xasprintf("%s/relay", data);
	char *path = xasprintf("%s/main.password", dir);
	char line[1100], *error = NULL;
	FILE *f = fopen(q->relay_password_file, "re");
	size_t len = 0;
	int rc = -1;

	if (f == NULL) {
		fprintf(stderr,
		        "tern quickstart: --relay-password-file %s: %s\n",
		        q->relay_password_file, strerror(errno));
		goto out;
	}
	if (fgets(line, sizeof(line) - 1, f) != NULL)
		len = strcspn(line, "\r\n");
	if (len == 0) {
		fprintf(stderr,
		        "tern quickstart: --relay-password-file %s: no "
		        "password on its first line\n",
		        q->relay_password_file);
		fclose(f);
		goto out;
	}
	fclose(f);
	line[len++] = '\n';
	if (make_dir(dir, 0700, queue_user) < 0)
		goto out;
	if (keys_write_file(path, line, len, 0600, &error) < 0 ||
	    chown_to(path, queue_user) < 0) {
		if (error != NULL)
			fprintf(stderr, "tern quickstart: %s\n", error);
		free(error);
		goto out;
	}
	rc = 0;
out:
	explicit_bzero(line, sizeof(line));
	free(dir);
	free(path);
	return rc;
}

/* Add the domain, and the first user if asked, with the same commands an
 * operator would run (`tern domain add`, `tern user add`). */
static int
quickstart_directory(const struct quickstart *q, const char *conf_path)
{
	struct cli_env env = {conf_path, true};
	char *address = NULL;
	int rc;

	rc =
	    cli_dispatch(&env, 3, (char *[]){"domain", "add", q->domain, NULL});
	if (rc == 0 && q->user != NULL) {
		address = xasprintf("%s@%s", q->user, q->domain);
		rc = cli_dispatch(&env, q->password_stdin ? 4 : 3,
		                  (char *[]){"user", "add", address,
		                             "--password-stdin", NULL});
		free(address);
	}
	return rc == 0 ? 0 : -1;
}

static int
quickstart_create(struct quickstart *q)
{
	char *conf_path, *data, *tls, *text, *error = NULL;
	struct config *cfg;
	int rc = EXIT_CANTCREAT;
	struct stat st;

	conf_path = xasprintf("%s/tern.conf", q->dir);
	data = xasprintf("%s/data", q->dir);
	tls = xasprintf("%s/tls", data);
	if (stat(conf_path, &st) == 0) {
		fprintf(stderr,
		        "tern quickstart: %s exists; not overwriting "
		        "it (move it away to start over)\n",
		        conf_path);
		goto out;
	}
	text = render_config(q);
	/* Parse what we are about to write, so a bad --listen or --resolver
	 * cannot leave a broken file behind; the defaults supply the role
	 * users. */
	cfg = config_parse(conf_path, q->dir, text, strlen(text), &error);
	if (cfg == NULL) {
		/* Only option values reach the file: one of them is bad. */
		fprintf(stderr, "tern quickstart: bad option value: %s\n",
		        error);
		free(error);
		free(text);
		rc = EXIT_USAGE;
		goto out;
	}
	if (geteuid() == 0) {
		const char *users[] = {cfg->front_user, cfg->lookup_user,
		                       cfg->queue_user, cfg->store_user};

		for (size_t i = 0; i < 4; i++) {
			if (proc_ensure_system_user(users[i], &error) < 0) {
				fprintf(stderr, "tern quickstart: %s\n", error);
				free(error);
				goto out_cfg;
			}
		}
	}
	if (make_dir(q->dir, 0755, NULL) < 0 ||
	    make_dir(data, 0755, NULL) < 0 || make_dir(tls, 0700, NULL) < 0 ||
	    create_keys(q, data, cfg->lookup_user) < 0)
		goto out_cfg;
	if (q->relay_user != NULL &&
	    copy_relay_password(q, data, cfg->queue_user) < 0)
		goto out_cfg;
	if (keys_write_file(conf_path, text, strlen(text), 0640, &error) < 0) {
		fprintf(stderr, "tern quickstart: %s\n", error);
		free(error);
		goto out_cfg;
	}
	if (quickstart_directory(q, conf_path) < 0) {
		/* Leave no tern.conf behind, so that running quickstart again
		 * (with the mistake fixed) works. */
		unlink(conf_path);
		goto out_cfg;
	}
	printf("Created %s and %s/ for %s (host %s).\n", conf_path, data,
	       q->domain, q->hostname);
	printf("Ports: SMTP %ld, submission %ld and %ld (TLS), IMAP %ld and "
	       "%ld (TLS), POP3 %ld and %ld (TLS), LMTP %ld, HTTP %ld.\n",
	       q->port_offset + 25, q->port_offset + 587, q->port_offset + 465,
	       q->port_offset + 143, q->port_offset + 993, q->port_offset + 110,
	       q->port_offset + 995, q->port_offset + 24,
	       q->port_offset + 8080);
	if (print_records(q, data) < 0)
		goto out_cfg;
	printf("\nStart it with: tern -c %s serve\n", conf_path);
	rc = 0;
out_cfg:
	config_free(&cfg);
	free(text);
out:
	free(conf_path);
	free(data);
	free(tls);
	return rc;
}

/* --relay HOST:PORT ([V6]:PORT for an IPv6 address). */
static int
parse_relay(const char *arg, struct quickstart *q)
{
	const char *colon = strrchr(arg, ':');
	const char *host = arg;
	size_t hlen;
	char *end;

	if (colon == NULL)
		goto bad;
	hlen = (size_t)(colon - arg);
	if (arg[0] == '[' && hlen > 2 && arg[hlen - 1] == ']') {
		host++;
		hlen -= 2;
	}
	if (hlen == 0)
		goto bad;
	errno = 0;
	q->relay_port = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || colon[1] == '\0' ||
	    q->relay_port < 1 || q->relay_port > 65535)
		goto bad;
	free(q->relay_host);
	q->relay_host = xstrndup(host, hlen);
	return 0;
bad:
	fprintf(stderr, "tern quickstart: --relay wants HOST:PORT, e.g. "
	                "email-smtp.eu-west-1.amazonaws.com:587\n");
	return -1;
}

static int
quickstart_run(const struct cli_env *env, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"domain", required_argument, NULL, 'D'},
	    {"hostname", required_argument, NULL, 'H'},
	    {"listen", required_argument, NULL, 'l'},
	    {"port-offset", required_argument, NULL, 'p'},
	    {"resolver", required_argument, NULL, 'r'},
	    {"user", required_argument, NULL, 'u'},
	    {"password-stdin", no_argument, NULL, 'P'},
	    {"relay", required_argument, NULL, 'R'},
	    {"relay-tls", required_argument, NULL, 'T'},
	    {"relay-user", required_argument, NULL, 'U'},
	    {"relay-password-file", required_argument, NULL, 'W'},
	    {NULL, 0, NULL, 0},
	};
	struct quickstart q = {.listen = "127.0.0.1",
	                       .port_offset = geteuid() == 0 ? 0 : 10000};
	const char *dir = NULL;
	char abs[PATH_MAX], cwd[PATH_MAX], *end;
	struct tm tm;
	time_t now = time(NULL);
	int c, rc;

	(void)env;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'D':
			free(q.domain);
			q.domain = xstrdup(optarg);
			break;
		case 'H':
			free(q.hostname);
			q.hostname = xstrdup(optarg);
			break;
		case 'l':
			q.listen = optarg;
			break;
		case 'p':
			errno = 0;
			q.port_offset = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || q.port_offset < 0 ||
			    q.port_offset > 65535 - 8080) {
				fprintf(stderr,
				        "tern quickstart: "
				        "--port-offset must be 0.."
				        "%d\n",
				        65535 - 8080);
				return EXIT_USAGE;
			}
			break;
		case 'r':
			q.resolver = optarg;
			break;
		case 'u':
			q.user = optarg;
			break;
		case 'P':
			q.password_stdin = true;
			break;
		case 'R':
			if (parse_relay(optarg, &q) < 0)
				return EXIT_USAGE;
			break;
		case 'T':
			q.relay_tls = optarg;
			break;
		case 'U':
			q.relay_user = optarg;
			break;
		case 'W':
			q.relay_password_file = optarg;
			break;
		default:
			return cli_usage(&cli_cmd_quickstart);
		}
	}
	if (q.relay_host == NULL &&
	    (q.relay_tls != NULL || q.relay_user != NULL ||
	     q.relay_password_file != NULL)) {
		fprintf(stderr, "tern quickstart: --relay-tls, --relay-user "
		                "and --relay-password-file go with --relay\n");
		free(q.relay_host);
		return EXIT_USAGE;
	}
	if ((q.relay_user == NULL) != (q.relay_password_file == NULL)) {
		fprintf(stderr, "tern quickstart: --relay-user and "
		                "--relay-password-file go together\n");
		free(q.relay_host);
		return EXIT_USAGE;
	}
	if (q.relay_host != NULL && q.relay_tls == NULL)
		q.relay_tls = "starttls";
	if (q.relay_tls != NULL && strcmp(q.relay_tls, "starttls") != 0 &&
	    strcmp(q.relay_tls, "tls") != 0 &&
	    strcmp(q.relay_tls, "none") != 0) {
		fprintf(stderr, "tern quickstart: --relay-tls is starttls, tls "
		                "or none\n");
		free(q.relay_host);
		return EXIT_USAGE;
	}
	if (dir == NULL || q.domain == NULL || optind != argc ||
	    (q.password_stdin && q.user == NULL)) {
		free(q.relay_host);
		free(q.domain);
		free(q.hostname);
		return cli_usage(&cli_cmd_quickstart);
	}
	if (q.hostname == NULL)
		q.hostname = xasprintf("mail.%s", q.domain);
	rc = EXIT_USAGE;
	if (check_hostname("--domain", q.domain) < 0 ||
	    check_hostname("--hostname", q.hostname) < 0)
		goto out;
	if (dir[0] == '/') {
		snprintf(abs, sizeof(abs), "%s", dir);
	} else if (getcwd(cwd, sizeof(cwd)) == NULL ||
	           snprintf(abs, sizeof(abs), "%s/%s", cwd, dir) >=
	               (int)sizeof(abs)) {
		fprintf(stderr, "tern quickstart: --dir: path too long\n");
		goto out;
	}
	q.dir = abs;
	gmtime_r(&now, &tm);
	strftime(q.selector_rsa, sizeof(q.selector_rsa), "%Y%m%dr", &tm);
	strftime(q.selector_ed, sizeof(q.selector_ed), "%Y%m%de", &tm);
	rc = quickstart_create(&q);
out:
	free(q.domain);
	free(q.hostname);
	free(q.relay_host);
	return rc;
}

const struct cli_command cli_cmd_quickstart = {
    .name = "quickstart",
    .usage = "--dir DIR --domain DOMAIN [--hostname HOST] [--listen ADDR]\n"
             "                 [--port-offset N] [--resolver ADDR:PORT]\n"
             "                 [--user LOCALPART [--password-stdin]]\n"
             "                 [--relay HOST:PORT [--relay-tls "
             "starttls|tls|none]\n"
             "                  [--relay-user USER --relay-password-file "
             "FILE]]",
    .summary = "create a working instance in DIR and print its DNS records",
    .help = "--dir DIR           where tern.conf and data/ go "
            "(tern.conf must not exist)\n"
            "--domain DOMAIN     the mail domain\n"
            "--hostname HOST     this server's name (default mail.DOMAIN)\n"
            "--listen ADDR       address of the public listeners "
            "(default 127.0.0.1)\n"
            "--port-offset N     added to every standard port (default 0 "
            "as root,\n"
            "                    10000 otherwise)\n"
            "--resolver ADDR:PORT  send every DNS query to this server\n"
            "--user LOCALPART    also create LOCALPART@DOMAIN; its password "
            "comes\n"
            "                    from a prompt, or one line of stdin with\n"
            "                    --password-stdin\n"
            "--relay HOST:PORT   send all outbound mail through this relay\n"
            "                    (default: straight to the MX hosts)\n"
            "--relay-tls MODE    starttls (default), tls (port 465), or "
            "none\n"
            "                    (a relay on a loopback address only)\n"
            "--relay-user USER --relay-password-file FILE\n"
            "                    AUTH at the relay; the first line of FILE "
            "is\n"
            "                    copied to data/relay/main.password\n",
    .run = quickstart_run,
};
