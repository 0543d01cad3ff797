/* Listening sockets and per-address connection counting: see listener.h.
 * SECURITY: addresses in the counter come from accept(), not from peers'
 * words; PROXY-supplied addresses are counted the same way once parsed. */
#include "core/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/xmalloc.h"

#define LISTEN_BACKLOG 511

static int
listener_open(const char *addr, uint16_t port, int *fd_r, char **why_r)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, on = 1;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) ==
	    1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, addr,
	                     &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		len = sizeof(*sin6);
	} else {
		*why_r = xstrdup("not an IP address");
		return -1;
	}
	fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*why_r = xstrdup(strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	/* "::" then means IPv6 only, so "*" can bind 0.0.0.0 beside it. */
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    listen(fd, LISTEN_BACKLOG) < 0) {
		*why_r = xstrdup(strerror(errno));
		close(fd);
		return -1;
	}
	*fd_r = fd;
	return 0;
}

int
listener_bind_all(const struct config *cfg, struct listen_socket **socks_r,
                  size_t *n_r, char **error_r)
{
	struct listen_socket *socks = NULL;
	size_t n = 0;

	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct config_listener *l = &cfg->listeners[i];

		for (size_t j = 0; j < l->naddresses; j++) {
			const char *wild[] = {"0.0.0.0", "::"};
			const char *one[] = {l->addresses[j]};
			int star = strcmp(l->addresses[j], "*") == 0;
			const char **addrs = star ? wild : one;
			size_t naddrs = star ? 2 : 1;

			for (size_t k = 0; k < naddrs; k++) {
				struct listen_socket *s;
				char *why = NULL;
				int fd;

				if (listener_open(addrs[k], l->port, &fd,
				                  &why) < 0) {
					*error_r = xasprintf(
					    "%s:%d: listener %s: bind "
					    "%s%s%s:%u: %s",
					    l->file, l->line,
					    config_service_name(l->service),
					    strchr(addrs[k], ':') ? "[" : "",
					    addrs[k],
					    strchr(addrs[k], ':') ? "]" : "",
					    l->port, why);
					free(why);
					listener_close_all(&socks, &n);
					return -1;
				}
				socks =
				    xreallocarray(socks, n + 1, sizeof(*socks));
				s = &socks[n++];
				s->fd = fd;
				s->listener = i;
				s->port = l->port;
				snprintf(s->address, sizeof(s->address), "%s",
				         addrs[k]);
			}
		}
	}
	*socks_r = socks;
	*n_r = n;
	return 0;
}

void
listener_close_all(struct listen_socket **socks, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		close((*socks)[i].fd);
	free(*socks);
	*socks = NULL;
	*n = 0;
}

const char *
listener_addr_string(const struct sockaddr *sa, char *out, size_t outlen,
                     uint16_t *port_r)
{
	uint16_t port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)outlen);
		port = ntohs(sin->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], out,
			          (socklen_t)outlen);
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, out,
			          (socklen_t)outlen);
		port = ntohs(sin6->sin6_port);
	} else {
		snprintf(out, outlen, "unknown");
	}
	if (port_r != NULL)
		*port_r = port;
	return out;
}

/* Open hashing on the address text; entries are removed when their count
 * drops to zero, so the table holds at most one entry per live connection. */
struct ip_entry {
	char addr[64];
	uint32_t count;
	struct ip_entry *next;
};

#define IP_BUCKETS 1024

struct ip_counter {
	struct ip_entry *buckets[IP_BUCKETS];
};

static size_t
ip_hash(const char *s)
{
	size_t h = 5381; /* djb2: the keys are not attacker-chosen in bulk */

	while (*s != '\0')
		h = h * 33 + (unsigned char)*s++;
	return h % IP_BUCKETS;
}

struct ip_counter *
ip_counter_new(void)
{
	return xcalloc(1, sizeof(struct ip_counter));
}

void
ip_counter_free(struct ip_counter **c)
{
	if (*c == NULL)
		return;
	for (size_t i = 0; i < IP_BUCKETS; i++) {
		struct ip_entry *e = (*c)->buckets[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	xfree(c);
}

static struct ip_entry **
ip_find(const struct ip_counter *c, const char *addr)
{
	struct ip_entry *const *pp = &c->buckets[ip_hash(addr)];

	while (*pp != NULL && strcmp((*pp)->addr, addr) != 0)
		pp = &(*pp)->next;
	return (struct ip_entry **)pp;
}

int
ip_counter_add(struct ip_counter *c, const char *addr, uint32_t limit)
{
	struct ip_entry **pp = ip_find(c, addr);

	if (*pp == NULL) {
		if (limit == 0)
			return -1;
		*pp = xcalloc(1, sizeof(**pp));
		snprintf((*pp)->addr, sizeof((*pp)->addr), "%s", addr);
	} else if ((*pp)->count >= limit) {
		return -1;
	}
	(*pp)->count++;
	return 0;
}

void
ip_counter_remove(struct ip_counter *c, const char *addr)
{
	struct ip_entry **pp = ip_find(c, addr), *e = *pp;

	if (e == NULL)
		return;
	if (--e->count == 0) {
		*pp = e->next;
		free(e);
	}
}

uint32_t
ip_counter_get(const struct ip_counter *c, const char *addr)
{
	struct ip_entry **pp = ip_find(c, addr);

	return *pp == NULL ? 0 : (*pp)->count;
}
