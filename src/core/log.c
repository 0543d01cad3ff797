/* Event logging: see log.h.
 * SECURITY: values from peers pass through log_put_value(), which escapes
 * every byte that could end a line, open a field or confuse a parser. */
#include "core/log.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

static const char *log_name = "tern";
static enum log_level log_level = LOG_LEVEL_INFO;
static bool log_to_stderr = true;
static bool log_to_syslog = false;
/* Every line carries the pid: asked once (getpid(2) is a system call per
 * line otherwise), and again in the child of a fork. */
static pid_t log_pid;

static void
log_pid_refresh(void)
{
	log_pid = getpid();
}

static const char *const level_names[] = {
    [LOG_LEVEL_TRACE] = "trace",     [LOG_LEVEL_DEBUG] = "debug",
    [LOG_LEVEL_INFO] = "info",       [LOG_LEVEL_NOTICE] = "notice",
    [LOG_LEVEL_WARNING] = "warning", [LOG_LEVEL_ERROR] = "error",
};

static const int syslog_prio[] = {
    [LOG_LEVEL_TRACE] = LOG_DEBUG,     [LOG_LEVEL_DEBUG] = LOG_DEBUG,
    [LOG_LEVEL_INFO] = LOG_INFO,       [LOG_LEVEL_NOTICE] = LOG_NOTICE,
    [LOG_LEVEL_WARNING] = LOG_WARNING, [LOG_LEVEL_ERROR] = LOG_ERR,
};

void
log_init(const char *name, enum log_level level, bool to_stderr)
{
	static bool registered;

	if (!registered && pthread_atfork(NULL, NULL, log_pid_refresh) == 0)
		registered = true;
	log_pid_refresh();
	log_name = name;
	log_level = level;
	log_to_stderr = to_stderr;
}

void
log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level
log_get_level(void)
{
	return log_level;
}

const char *
log_level_name(enum log_level level)
{
	if ((size_t)level >= sizeof(level_names) / sizeof(level_names[0]))
		return "unknown";
	return level_names[level];
}

int
log_level_parse(const char *name, enum log_level *level_r)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
	     i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static const struct {
	const char *name;
	int facility;
} facilities[] = {
    {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},
    {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
    {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
    {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
};

int
log_open_syslog(const char *facility)
{
	for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]);
	     i++) {
		if (strcmp(facility, facilities[i].name) == 0) {
			openlog("tern", LOG_PID | LOG_NDELAY,
			        facilities[i].facility);
			log_to_syslog = true;
			return 0;
		}
	}
	return -1;
}

void
log_close_syslog(void)
{
	if (log_to_syslog)
		closelog();
	log_to_syslog = false;
}

/* A bounded output cursor: writes past the end are counted, not stored. */
struct log_out {
	char *p;
	size_t size;
	size_t len;
};

static void
log_putc(struct log_out *o, char c)
{
	if (o->len + 1 < o->size)
		o->p[o->len] = c;
	o->len++;
}

static void
log_puts(struct log_out *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		log_putc(o, s[i]);
}

static bool
log_value_is_bare(const unsigned char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '"' ||
		    s[i] == '\\' || s[i] == '=')
			return false;
	}
	return true;
}

/* Write a value bare when it is safe, else quoted with C-like escapes. */
static void
log_put_value(struct log_out *o, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;

	if (log_value_is_bare(u, n)) {
		log_puts(o, s, n);
		return;
	}
	log_putc(o, '"');
	for (size_t i = 0; i < n; i++) {
		if (u[i] == '"' || u[i] == '\\') {
			log_putc(o, '\\');
			log_putc(o, (char)u[i]);
		} else if (u[i] < 0x20 || u[i] >= 0x7f) {
			log_puts(o, "\\x", 2);
			log_putc(o, hex[u[i] >> 4]);
			log_putc(o, hex[u[i] & 15]);
		} else {
			log_putc(o, (char)u[i]);
		}
	}
	log_putc(o, '"');
}

size_t
log_format(char *out, size_t size, const char *fmt, va_list ap)
{
	struct log_out o = {out, size, 0};
	char num[64];

	for (const char *f = fmt; *f != '\0'; f++) {
		int lmod = 0, zmod = 0, precision = -1;

		if (*f != '%') {
			log_putc(&o, *f);
			continue;
		}
		f++;
		if (f[0] == '.' && f[1] == '*') {
			precision = va_arg(ap, int);
			f += 2;
		}
		while (*f == 'l') {
			lmod++;
			f++;
		}
		if (*f == 'z') {
			zmod = 1;
			f++;
		}
		switch (*f) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			size_t n;

			if (s == NULL)
				s = "(null)";
			n = precision >= 0 ? strnlen(s, (size_t)precision)
			                   : strlen(s);
			log_put_value(&o, s, n);
			break;
		}
		case 'd':
		case 'i':
			if (zmod)
				snprintf(num, sizeof(num), "%zd",
				         va_arg(ap, ssize_t));
			else if (lmod >= 2)
				snprintf(num, sizeof(num), "%lld",
				         va_arg(ap, long long));
			else if (lmod == 1)
				snprintf(num, sizeof(num), "%ld",
				         va_arg(ap, long));
			else
				snprintf(num, sizeof(num), "%d",
				         va_arg(ap, int));
			log_puts(&o, num, strlen(num));
			break;
		case 'u':
		case 'x': {
			unsigned long long v;

			if (zmod)
				v = va_arg(ap, size_t);
			else if (lmod >= 2)
				v = va_arg(ap, unsigned long long);
			else if (lmod == 1)
				v = va_arg(ap, unsigned long);
			else
				v = va_arg(ap, unsigned int);
			snprintf(num, sizeof(num), *f == 'u' ? "%llu" : "%llx",
			         v);
			log_puts(&o, num, strlen(num));
			break;
		}
		case 'c': {
			char c = (char)va_arg(ap, int);

			log_put_value(&o, &c, 1);
			break;
		}
		case '%':
			log_putc(&o, '%');
			break;
		default:
			/* A format bug: show it rather than guess the type. */
			log_puts(&o, "%?", 2);
			if (*f == '\0')
				f--;
			break;
		}
	}
	if (size > 0)
		out[o.len < size ? o.len : size - 1] = '\0';
	return o.len < size ? o.len : (size > 0 ? size - 1 : 0);
}

void
log_vmsg(enum log_level level, const char *id, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	char stamp[40];
	struct timespec ts;
	struct tm tm;

	if (level < log_level)
		return;
	log_format(line, sizeof(line), fmt, ap);
	if (log_to_stderr) {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %s[%ld]: level=%s id=%s %s\n", stamp,
		        ts.tv_nsec / 1000000, log_name,
		        (long)(log_pid != 0 ? log_pid : getpid()),
		        level_names[level], id != NULL ? id : "-", line);
		fflush(stderr);
	}
	if (log_to_syslog)
		syslog(syslog_prio[level], "%s: level=%s id=%s %s", log_name,
		       level_names[level], id != NULL ? id : "-", line);
}

void
log_msg(enum log_level level, const char *id, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, id, fmt, ap);
	va_end(ap);
}

void
fatal(int exit_code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERROR, NULL, fmt, ap);
	va_end(ap);
	exit(exit_code);
}
