/* tern queue list|show|retry|hold|release|delete: the operator's view of
 * the spool (DATA_DIR/queue) and the few actions on a message in it. Safe
 * beside a running instance: the spool is SQLite in WAL mode with a busy
 * timeout, and the queue looks for due recipients every second, so retry
 * and release take effect within a second, without a signal.
 * SECURITY: run as root it becomes queue_user before it opens anything in
 * the spool (files it makes are the queue's); an ID is checked (16
 * lower-case hex digits) before it is used; envelope text comes from peers
 * and is printed escaped (JSON) or with control bytes replaced (text). */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/dirutil.h"
#include "core/config.h"
#include "core/log.h"
#include "core/proc.h"
#include "core/xmalloc.h"
#include "queue/spool.h"

/* "2026-01-15T10:00:00Z" */
#define TIME_SIZE 32

struct queue_cmd {
	const char *what; /* "tern queue hold": the prefix of every error */
	const char *id;   /* checked; NULL for list */
	bool json;
	struct spool *sp; /* NULL: there is no spool yet (never started) */
};

struct queue_sub {
	const char *name;
	bool takes_id;
	bool takes_json;
	int (*run)(struct queue_cmd *q);
};

static int queue_fail(const struct queue_cmd *q, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
queue_fail(const struct queue_cmd *q, int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", q->what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

/* A spool error (freed here): the database is busy or broken, which a
 * later try may not see. */
static int
queue_spool_fail(const struct queue_cmd *q, char **error)
{
	queue_fail(q, EXIT_TEMPFAIL, "%s", *error != NULL ? *error : "failed");
	free(*error);
	*error = NULL;
	return EXIT_TEMPFAIL;
}

static int
queue_no_such(const struct queue_cmd *q)
{
	return queue_fail(q, EXIT_UNAVAILABLE,
	                  "no message %s in the queue (`tern queue list` "
	                  "shows them)",
	                  q->id);
}

static bool
id_valid(const char *id)
{
	size_t i;

	for (i = 0; id[i] != '\0'; i++)
		if (i == SPOOL_ID_SIZE - 1 ||
		    !((id[i] >= '0' && id[i] <= '9') ||
		      (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return i == SPOOL_ID_SIZE - 1;
}

static void
format_time(uint64_t ms, char out[TIME_SIZE])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(out, TIME_SIZE, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, TIME_SIZE, "?");
}

static const char *
state_word(enum spool_rcpt_state state)
{
	switch (state) {
	case SPOOL_RCPT_PENDING:
		return "pending";
	case SPOOL_RCPT_DELIVERED:
		return "delivered";
	case SPOOL_RCPT_FAILED:
		return "failed";
	}
	return "unknown";
}

/* ------------------------------------------------------------ JSON */

static void
json_str_or_null(const char *s)
{
	if (s == NULL)
		fputs("null", stdout);
	else
		cli_json_string(stdout, s);
}

static void
json_time(uint64_t ms)
{
	char t[TIME_SIZE];

	format_time(ms, t);
	cli_json_string(stdout, t);
}

static void
json_message(const struct spool_info *m, const char *indent)
{
	printf("%s{\"id\": \"%s\", \"from\": ", indent, m->id);
	cli_json_string(stdout, m->mail_from);
	printf(", \"size\": %llu, \"arrival\": ", (unsigned long long)m->size);
	json_time(m->created_ms);
	printf(", \"held\": %s, \"signing\": %s, \"auth_user\": ",
	       m->held ? "true" : "false", m->signing ? "true" : "false");
	json_str_or_null(m->auth_user);
	fputs(", \"client_ip\": ", stdout);
	json_str_or_null(m->client_ip);
	fputs(", \"next_try\": ", stdout);
	if (m->npending > 0)
		json_time(m->next_try_ms);
	else
		fputs("null", stdout);
	fputs(", \"recipients\": [", stdout);
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct spool_rcpt_info *r = &m->rcpts[i];

		printf("%s\n%s  {\"address\": ", i > 0 ? "," : "", indent);
		cli_json_string(stdout, r->address);
		fputs(", \"orcpt\": ", stdout);
		json_str_or_null(r->orcpt);
		printf(", \"state\": \"%s\", \"attempts\": %u, \"next_try\": ",
		       state_word(r->state), r->attempts);
		if (r->state == SPOOL_RCPT_PENDING)
			json_time(r->next_try_ms);
		else
			fputs("null", stdout);
		fputs(", \"last_try\": ", stdout);
		if (r->last_try_ms != 0)
			json_time(r->last_try_ms);
		else
			fputs("null", stdout);
		fputs(", \"diagnostic\": ", stdout);
		json_str_or_null(r->diagnostic);
		fputs(", \"remote_mta\": ", stdout);
		json_str_or_null(r->remote_mta);
		fputs(", \"sender\": ", stdout);
		json_str_or_null(r->sender);
		printf(", \"forwarded\": %s, \"local\": %s}",
		       r->forwarded ? "true" : "false",
		       r->local ? "true" : "false");
	}
	if (m->nrcpts > 0)
		printf("\n%s]}", indent);
	else
		fputs("]}", stdout);
}

/* ------------------------------------------------------------ text */

static void
text_sender(const char *s)
{
	putchar('<');
	cli_text_cell(stdout, s, 0);
	putchar('>');
}

static void
text_message_line(const struct spool_info *m)
{
	char t[TIME_SIZE];

	format_time(m->created_ms, t);
	printf("%s  %8llu  %s  ", m->id, (unsigned long long)m->size, t);
	text_sender(m->mail_from);
	if (m->held)
		fputs("  HELD", stdout);
	if (m->signing)
		fputs("  SIGNING", stdout);
	putchar('\n');
}

/* "    pending    <rcpt>  attempts=2  next=…  451 4.4.1 …" */
static void
text_rcpt_line(const struct spool_rcpt_info *r)
{
	char t[TIME_SIZE];

	printf("    %-9s  ", state_word(r->state));
	text_sender(r->address);
	printf("  attempts=%u", r->attempts);
	if (r->state == SPOOL_RCPT_PENDING) {
		if (r->next_try_ms == 0)
			snprintf(t, sizeof(t), "now");
		else
			format_time(r->next_try_ms, t);
		printf("  next=%s", t);
	}
	if (r->diagnostic != NULL) {
		fputs("  ", stdout);
		cli_text_cell(stdout, r->diagnostic, 0);
	}
	putchar('\n');
}

static void
text_field(const char *name, const char *value)
{
	printf("%s: ", name);
	cli_text_cell(stdout, value != NULL ? value : "-", 0);
	putchar('\n');
}

static void
text_show(const struct spool_info *m)
{
	char t[TIME_SIZE];

	printf("id: %s\nfrom: ", m->id);
	text_sender(m->mail_from);
	format_time(m->created_ms, t);
	printf("\nsize: %llu\narrival: %s\nheld: %s\n",
	       (unsigned long long)m->size, t, m->held ? "yes" : "no");
	if (m->signing)
		fputs("signing: waiting for its DKIM signatures\n", stdout);
	text_field("auth_user", m->auth_user);
	text_field("client_ip", m->client_ip);
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct spool_rcpt_info *r = &m->rcpts[i];

		fputs("recipient: ", stdout);
		text_sender(r->address);
		printf("\n  state: %s\n  local: %s\n  attempts: %u\n",
		       state_word(r->state), r->local ? "yes" : "no",
		       r->attempts);
		if (r->last_try_ms != 0) {
			format_time(r->last_try_ms, t);
			printf("  last_try: %s\n", t);
		}
		if (r->state == SPOOL_RCPT_PENDING) {
			if (r->next_try_ms == 0)
				snprintf(t, sizeof(t), "now");
			else
				format_time(r->next_try_ms, t);
			printf("  next_try: %s\n", t);
		}
		if (r->orcpt != NULL) {
			fputs("  ", stdout);
			text_field("orcpt", r->orcpt);
		}
		if (r->forwarded)
			fputs("  forwarded: yes\n", stdout);
		if (r->sender != NULL) {
			fputs("  sender: ", stdout);
			text_sender(r->sender);
			putchar('\n');
		}
		if (r->remote_mta != NULL) {
			fputs("  ", stdout);
			text_field("remote_mta", r->remote_mta);
		}
		if (r->diagnostic != NULL) {
			fputs("  ", stdout);
			text_field("diagnostic", r->diagnostic);
		}
	}
}

/* ------------------------------------------------------------ commands */

static int
queue_list(struct queue_cmd *q)
{
	struct spool_info *list = NULL;
	size_t n = 0, pending = 0;
	char *error = NULL;

	if (q->sp != NULL && spool_list(q->sp, &list, &n, &error) < 0)
		return queue_spool_fail(q, &error);
	if (q->json) {
		fputs("{\"messages\": [", stdout);
		for (size_t i = 0; i < n; i++) {
			fputs(i > 0 ? ",\n" : "\n", stdout);
			json_message(&list[i], "  ");
		}
		fputs(n > 0 ? "\n]}\n" : "]}\n", stdout);
	} else {
		for (size_t i = 0; i < n; i++) {
			text_message_line(&list[i]);
			for (size_t r = 0; r < list[i].nrcpts; r++)
				text_rcpt_line(&list[i].rcpts[r]);
			pending += list[i].npending;
		}
		printf("%zu message%s, %zu recipient%s pending\n", n,
		       n == 1 ? "" : "s", pending, pending == 1 ? "" : "s");
	}
	spool_list_free(&list, n);
	return 0;
}

static int
queue_show(struct queue_cmd *q)
{
	struct spool_info info;
	char *error = NULL;

	if (q->sp == NULL)
		return queue_no_such(q);
	switch (spool_show(q->sp, q->id, &info, &error)) {
	case 0:
		break;
	case 1:
		return queue_no_such(q);
	default:
		return queue_spool_fail(q, &error);
	}
	if (q->json) {
		json_message(&info, "");
		putchar('\n');
	} else {
		text_show(&info);
	}
	spool_info_clear(&info);
	return 0;
}

static int
queue_retry(struct queue_cmd *q)
{
	struct spool_info info;
	char *error = NULL;
	bool held;

	if (q->sp == NULL)
		return queue_no_such(q);
	switch (spool_show(q->sp, q->id, &info, &error)) {
	case 0:
		held = info.held;
		spool_info_clear(&info);
		break;
	case 1:
		return queue_no_such(q);
	default:
		return queue_spool_fail(q, &error);
	}
	switch (spool_retry_now(q->sp, q->id, &error)) {
	case 0:
		break;
	case 1:
		return queue_no_such(q);
	default:
		return queue_spool_fail(q, &error);
	}
	if (held)
		fprintf(stderr,
		        "%s: note: %s is held, nothing changed; `tern queue "
		        "release %s` first\n",
		        q->what, q->id, q->id);
	else
		printf("%s: pending recipients are due now\n", q->id);
	return 0;
}

static int
queue_hold_or_release(struct queue_cmd *q, bool hold)
{
	char *error = NULL;

	if (q->sp == NULL)
		return queue_no_such(q);
	switch (spool_hold(q->sp, q->id, hold, &error)) {
	case 0:
		printf("%s: %s\n", q->id, hold ? "held" : "released");
		return 0;
	case 1:
		return queue_no_such(q);
	default:
		return queue_spool_fail(q, &error);
	}
}

static int
queue_hold(struct queue_cmd *q)
{
	return queue_hold_or_release(q, true);
}

static int
queue_release(struct queue_cmd *q)
{
	return queue_hold_or_release(q, false);
}

static int
queue_delete(struct queue_cmd *q)
{
	char *error = NULL;

	if (q->sp == NULL)
		return queue_no_such(q);
	switch (spool_delete(q->sp, q->id, &error)) {
	case 0:
		printf("%s: deleted\n", q->id);
		return 0;
	case 1:
		return queue_no_such(q);
	default:
		return queue_spool_fail(q, &error);
	}
}

static const struct queue_sub queue_subs[] = {
    {"list", false, true, queue_list},
    {"show", true, true, queue_show},
    {"retry", true, false, queue_retry},
    {"hold", true, false, queue_hold},
    {"release", true, false, queue_release},
    {"delete", true, false, queue_delete},
};

#define NSUBS (sizeof(queue_subs) / sizeof(queue_subs[0]))

/* As the queue user, open DATA_DIR/queue beside the running queue; *sp_r
 * stays NULL when the directory does not exist yet (never served). */
static int
queue_open(struct queue_cmd *q, const struct config *cfg, struct spool **sp_r)
{
	char *dir, *error = NULL;
	struct stat st;

	*sp_r = NULL;
	if (geteuid() == 0 &&
	    proc_drop_privileges(cfg->queue_user, NULL, &error) < 0) {
		queue_fail(q, EXIT_OSERR, "cannot become %s: %s",
		           cfg->queue_user, error);
		free(error);
		return EXIT_OSERR;
	}
	dir = xasprintf("%s/queue", cfg->data_dir);
	if (stat(dir, &st) < 0 && errno == ENOENT) {
		free(dir);
		return 0;
	}
	*sp_r = spool_open_admin(dir, &error);
	free(dir);
	if (*sp_r == NULL)
		return queue_spool_fail(q, &error);
	return 0;
}

static int
queue_run(const struct cli_env *env, int argc, char **argv)
{
	const struct queue_sub *sub = NULL;
	struct queue_cmd q = {.what = "tern queue"};
	struct config *cfg;
	char what[32];
	int rc;

	for (size_t i = 0; argc > 1 && i < NSUBS; i++)
		if (strcmp(argv[1], queue_subs[i].name) == 0)
			sub = &queue_subs[i];
	if (sub == NULL)
		return cli_usage(&cli_cmd_queue);
	snprintf(what, sizeof(what), "tern queue %s", sub->name);
	q.what = what;
	for (int i = 2; i < argc; i++) {
		if (sub->takes_json && strcmp(argv[i], "--json") == 0) {
			q.json = true;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "%s: unknown option %s\n", what,
			        argv[i]);
			return cli_usage(&cli_cmd_queue);
		} else if (sub->takes_id && q.id == NULL) {
			q.id = argv[i];
		} else {
			fprintf(stderr, "%s: too many arguments\n", what);
			return cli_usage(&cli_cmd_queue);
		}
	}
	if (sub->takes_id && q.id == NULL) {
		fprintf(stderr,
		        "%s: which message? (an ID from `tern queue "
		        "list`)\n",
		        what);
		return cli_usage(&cli_cmd_queue);
	}
	if (q.id != NULL && !id_valid(q.id))
		return queue_fail(&q, EXIT_DATAERR,
		                  "not a queue id (16 lower-case hexadecimal "
		                  "digits): %.40s",
		                  q.id);

	cfg = cli_load_config(env);
	/* The spool logs its own events for the queue's log; here each
	 * command says what matters in its own words. */
	log_init("cli", LOG_LEVEL_ERROR, true);
	if ((rc = queue_open(&q, cfg, &q.sp)) == 0) {
		rc = sub->run(&q);
		spool_close(&q.sp);
	}
	config_free(&cfg);
	return rc;
}

const struct cli_command cli_cmd_queue = {
    .name = "queue",
    .usage = "list [--json] | show ID [--json] | retry|hold|release|delete "
             "ID",
    .summary = "look at the mail queue; retry, hold, release or delete a "
               "message",
    .help = "list [--json]\n"
            "    every message in the queue, oldest first: id, size, "
            "arrival (UTC),\n"
            "    sender and HELD, then a line per recipient: state "
            "(pending,\n"
            "    delivered, failed), attempts, next try, last "
            "diagnostic\n"
            "show ID [--json]\n"
            "    one message in full\n"
            "retry ID\n"
            "    every pending recipient of ID is due now (a held "
            "message is left\n"
            "    as it is: release it first)\n"
            "hold ID\n"
            "    no delivery attempt and no DSN for ID until it is "
            "released\n"
            "release ID\n"
            "    undo hold; recipients whose next try has passed are "
            "due at once\n"
            "delete ID\n"
            "    remove the message and its file, without any bounce\n"
            "\n"
            "ID is the queue id of `list` (16 lower-case hexadecimal "
            "digits). Safe\n"
            "while the server runs: the queue looks at due recipients "
            "every second.\n"
            "Run as root it works as the queue_user. --json prints one "
            "JSON document\n"
            "(list: {\"messages\": [...]}; show: one message object). "
            "Exit 64 for bad\n"
            "usage, 65 for a malformed ID, 69 when there is no such "
            "message, 75 when\n"
            "the queue database cannot be read or changed.\n",
    .run = queue_run,
};
