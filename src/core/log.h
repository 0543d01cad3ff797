/* Logging: one line per event, "key=value" fields, an id (session, queue or
 * process) on every line; to stderr and, when configured, to syslog.
 * SECURITY: every %s argument is escaped (control bytes, quotes, spaces), so a
 * peer cannot forge log lines. Never pass secrets (passwords, AUTH data). */
#ifndef TERN_CORE_LOG_H
#define TERN_CORE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum log_level {
	LOG_LEVEL_TRACE,
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_NOTICE,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_ERROR,
};

/* name: the process role shown on every line ("parent", "front", "cli"…). */
void log_init(const char *name, enum log_level level, bool to_stderr);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* facility: "mail", "daemon", "local0".."local7"; -1 if unknown. */
int log_open_syslog(const char *facility);
void log_close_syslog(void);
const char *log_level_name(enum log_level level);
/* -1 when name is not a level. */
int log_level_parse(const char *name, enum log_level *level_r);

/* id: the session or queue id; NULL for process-wide events.
 * fmt: "event=NAME key=%s key=%d …"; the line reads
 * "TIME ROLE[PID]: level=LEVEL id=ID event=NAME key=value…". Supported
 * conversions: %s %.*s %d %i %u %x %c %% with the l, ll, z length modifiers. %s
 * values are quoted when they contain anything but printable, unquoted ASCII.
 */
void log_msg(enum log_level level, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, const char *id, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define log_trace(id, ...) log_msg(LOG_LEVEL_TRACE, id, __VA_ARGS__)
#define log_debug(id, ...) log_msg(LOG_LEVEL_DEBUG, id, __VA_ARGS__)
#define log_info(id, ...) log_msg(LOG_LEVEL_INFO, id, __VA_ARGS__)
#define log_notice(id, ...) log_msg(LOG_LEVEL_NOTICE, id, __VA_ARGS__)
#define log_warn(id, ...) log_msg(LOG_LEVEL_WARNING, id, __VA_ARGS__)
#define log_error(id, ...) log_msg(LOG_LEVEL_ERROR, id, __VA_ARGS__)

/* Log at error level and exit with the given sysexits code. */
void fatal(int exit_code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* Format a line exactly as log_msg would (without time and prefix) into out;
 * exposed for tests. Returns the length written (truncated to size-1). */
size_t log_format(char *out, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
