/* Process helpers: privilege drop with verification, process titles, system
 * users, and the sysexits codes the CLI and roles exit with.
 * SECURITY: runs as root; every id change is verified after it is made, and a
 * failed drop is fatal — a role never runs with more rights than asked. */
#ifndef TERN_CORE_PROC_H
#define TERN_CORE_PROC_H

#include <stdbool.h>
#include <sys/types.h>

/* sysexits.h values, named once. */
#define EXIT_USAGE 64
#define EXIT_DATAERR 65
#define EXIT_UNAVAILABLE 69
#define EXIT_SOFTWARE 70
#define EXIT_OSERR 71
#define EXIT_TEMPFAIL 75
#define EXIT_CONFIG 78

/* When running as root: optionally chroot to chroot_dir (NULL: none), then
 * switch to user's uid, primary gid and only that group, verify all three,
 * and set no_new_privs. Not root: only no_new_privs. */
int proc_drop_privileges(const char *user, const char *chroot_dir,
                         char **error_r);
/* uid/gid of a user; -1 if there is none. */
int proc_user_ids(const char *user, uid_t *uid_r, gid_t *gid_r);
/* Create a system user (and group of the same name) with no login shell
 * and no home when it does not exist yet. Root only. */
int proc_ensure_system_user(const char *user, char **error_r);

/* Set the process title shown by ps/top: the kernel name (comm, 15 bytes)
 * and the command line (overwriting the original argv area). Call
 * proc_title_init(argc, argv) first thing in main. */
void proc_title_init(int argc, char **argv);
void proc_set_title(const char *title);

/* Make a directory (and parents) with mode; when owner is not NULL and we
 * are root, chown it to that user. An existing directory is kept, but its
 * owner and mode are corrected. */
int proc_mkdir(const char *path, int mode, const char *owner, char **error_r);

#endif
