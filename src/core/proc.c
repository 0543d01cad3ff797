/* Process helpers: see proc.h.
 * SECURITY: privilege drop order is chroot, setgroups, setresgid, setresuid,
 * then each is checked with getresuid/getresgid/getgroups, and regaining root
 * must fail. */
#include "core/proc.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"

int
proc_user_ids(const char *user, uid_t *uid_r, gid_t *gid_r)
{
	struct passwd *pw;

	errno = 0;
	if ((pw = getpwnam(user)) == NULL)
		return -1;
	*uid_r = pw->pw_uid;
	*gid_r = pw->pw_gid;
	return 0;
}

static int
proc_verify_ids(uid_t uid, gid_t gid, char **error_r)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid, groups[2];
	int n;

	if (getresuid(&ruid, &euid, &suid) < 0 ||
	    getresgid(&rgid, &egid, &sgid) < 0) {
		*error_r = xasprintf("getresuid: %s", strerror(errno));
		return -1;
	}
	if (ruid != uid || euid != uid || suid != uid || rgid != gid ||
	    egid != gid || sgid != gid) {
		*error_r = xstrdup("ids did not change as asked");
		return -1;
	}
	n = getgroups(2, groups);
	if (n < 0 || n > 1 || (n == 1 && groups[0] != gid)) {
		*error_r = xstrdup("supplementary groups not dropped");
		return -1;
	}
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		*error_r = xstrdup("root could be regained after the drop");
		return -1;
	}
	return 0;
}

int
proc_drop_privileges(const char *user, const char *chroot_dir, char **error_r)
{
	uid_t uid;
	gid_t gid;

	if (geteuid() == 0) {
		if (proc_user_ids(user, &uid, &gid) < 0) {
			*error_r = xasprintf("user %s does not exist", user);
			return -1;
		}
		if (chroot_dir != NULL &&
		    (chroot(chroot_dir) < 0 || chdir("/") < 0)) {
			*error_r = xasprintf("chroot %s: %s", chroot_dir,
			                     strerror(errno));
			return -1;
		}
		if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0) {
			*error_r = xasprintf("switching to user %s: %s", user,
			                     strerror(errno));
			return -1;
		}
		if (proc_verify_ids(uid, gid, error_r) < 0)
			return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		*error_r =
		    xasprintf("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Run a program and wait; 0 if it exited 0. */
static int
proc_run(char *const argv[])
{
	pid_t pid;
	int status;

	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int
proc_ensure_system_user(const char *user, char **error_r)
{
	uid_t uid;
	gid_t gid;
	char *argv[] = {"/usr/sbin/useradd", "--system",
	                "--user-group",      "--no-create-home",
	                "--home-dir",        "/nonexistent",
	                "--shell",           "/usr/sbin/nologin",
	                (char *)user,        NULL};

	if (proc_user_ids(user, &uid, &gid) == 0)
		return 0;
	if (geteuid() != 0) {
		*error_r = xasprintf("user %s does not exist and only root "
		                     "can create it",
		                     user);
		return -1;
	}
	if (proc_run(argv) < 0 || proc_user_ids(user, &uid, &gid) < 0) {
		*error_r = xasprintf("could not create system user %s with "
		                     "useradd",
		                     user);
		return -1;
	}
	log_notice(NULL, "event=user-created user=%s uid=%u", user,
	           (unsigned)uid);
	return 0;
}

/* The argv area we may overwrite for the title. */
static char *title_area;
static size_t title_size;

void
proc_title_init(int argc, char **argv)
{
	if (argc < 1)
		return;
	title_area = argv[0];
	/* argv strings are contiguous: the area runs to the end of the last. */
	title_size =
	    (size_t)(argv[argc - 1] + strlen(argv[argc - 1]) - argv[0]) + 1;
}

void
proc_set_title(const char *title)
{
	char comm[16];

	snprintf(comm, sizeof(comm), "%s", title);
	prctl(PR_SET_NAME, comm, 0, 0, 0);
	if (title_area == NULL || title_size < 2)
		return;
	memset(title_area, 0, title_size);
	snprintf(title_area, title_size, "%s", title);
}

int
proc_mkdir(const char *path, int mode, const char *owner, char **error_r)
{
	char tmp[PATH_MAX];
	uid_t uid;
	gid_t gid;

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) {
		*error_r = xasprintf("%s: path too long", path);
		return -1;
	}
	for (char *p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST) {
			*error_r =
			    xasprintf("mkdir %s: %s", tmp, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	if (mkdir(path, (mode_t)mode) < 0 && errno != EEXIST) {
		*error_r = xasprintf("mkdir %s: %s", path, strerror(errno));
		return -1;
	}
	if (chmod(path, (mode_t)mode) < 0) {
		*error_r = xasprintf("chmod %s: %s", path, strerror(errno));
		return -1;
	}
	if (owner != NULL && geteuid() == 0) {
		if (proc_user_ids(owner, &uid, &gid) < 0) {
			*error_r = xasprintf("user %s does not exist", owner);
			return -1;
		}
		if (chown(path, uid, gid) < 0) {
			*error_r =
			    xasprintf("chown %s: %s", path, strerror(errno));
			return -1;
		}
	}
	return 0;
}
