/* Listening sockets: parent binds every configured listener (it may need
 * root for ports below 1024) and hands the descriptors to front; front
 * counts connections per listener and per client address.
 * SECURITY: the per-IP table is bounded by the number of live connections;
 * it never grows from traffic that was refused. */
#ifndef TERN_CORE_LISTENER_H
#define TERN_CORE_LISTENER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/config.h"

struct listen_socket {
	int fd;
	size_t listener; /* index into cfg->listeners */
	char address[64];
	uint16_t port;
};

/* Bind and listen on every address of every listener. On error nothing is
 * left open and *error_r is "FILE:LINE: listener SERVICE: bind ADDR:PORT:
 * reason". */
int listener_bind_all(const struct config *cfg, struct listen_socket **socks_r,
                      size_t *n_r, char **error_r);
void listener_close_all(struct listen_socket **socks, size_t *n);

/* "127.0.0.1", "::1" of a socket address (IPv4-mapped IPv6 shown as IPv4);
 * port in *port_r when not NULL. */
const char *listener_addr_string(const struct sockaddr *sa, char *out,
                                 size_t outlen, uint16_t *port_r);

/* Live connections per client address. */
struct ip_counter;
struct ip_counter *ip_counter_new(void);
void ip_counter_free(struct ip_counter **c);
/* Count one more connection from addr unless that would exceed limit: 0 ok,
 * -1 over the limit (nothing counted). */
int ip_counter_add(struct ip_counter *c, const char *addr, uint32_t limit);
void ip_counter_remove(struct ip_counter *c, const char *addr);
uint32_t ip_counter_get(const struct ip_counter *c, const char *addr);

#endif
