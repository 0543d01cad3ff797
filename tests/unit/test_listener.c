/* Tests for listening sockets and per-address counting
 * (src/core/listener.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/listener.h"
#include "core/xmalloc.h"

static void
counter_limits_per_address(void **state)
{
	struct ip_counter *c = ip_counter_new();

	(void)state;
	assert_int_equal(ip_counter_add(c, "192.0.2.1", 2), 0);
	assert_int_equal(ip_counter_add(c, "192.0.2.1", 2), 0);
	assert_int_equal(ip_counter_add(c, "192.0.2.1", 2), -1);
	assert_int_equal(ip_counter_get(c, "192.0.2.1"), 2);
	/* Another address has its own count. */
	assert_int_equal(ip_counter_add(c, "2001:db8::1", 2), 0);
	ip_counter_remove(c, "192.0.2.1");
	assert_int_equal(ip_counter_add(c, "192.0.2.1", 2), 0);
	ip_counter_remove(c, "192.0.2.1");
	ip_counter_remove(c, "192.0.2.1");
	assert_int_equal(ip_counter_get(c, "192.0.2.1"), 0);
	/* Removing what is not there is harmless. */
	ip_counter_remove(c, "198.51.100.9");
	ip_counter_free(&c);
	assert_null(c);
}

static void
counter_many_addresses(void **state)
{
	struct ip_counter *c = ip_counter_new();
	char addr[64];

	(void)state;
	for (int i = 0; i < 5000; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.1", i / 256, i % 256);
		assert_int_equal(ip_counter_add(c, addr, 1), 0);
	}
	for (int i = 0; i < 5000; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.1", i / 256, i % 256);
		assert_int_equal(ip_counter_add(c, addr, 1), -1);
		ip_counter_remove(c, addr);
		assert_int_equal(ip_counter_get(c, addr), 0);
	}
	ip_counter_free(&c);
}

static void
addr_string_maps_v4_in_v6(void **state)
{
	struct sockaddr_in6 sin6;
	struct sockaddr_in sin;
	char out[64];
	uint16_t port;

	(void)state;
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(2525);
	inet_pton(AF_INET6, "::ffff:192.0.2.5", &sin6.sin6_addr);
	listener_addr_string((struct sockaddr *)&sin6, out, sizeof(out), &port);
	assert_string_equal(out, "192.0.2.5");
	assert_int_equal(port, 2525);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	listener_addr_string((struct sockaddr *)&sin, out, sizeof(out), &port);
	assert_string_equal(out, "127.0.0.1");
	assert_int_equal(port, 25);
}

/* A port in use gives one line naming the listener, address and port. */
static void
bind_error_names_what_and_where(void **state)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct config_listener l;
	struct config cfg;
	struct listen_socket *socks = NULL;
	size_t n = 0;
	char *error = NULL, *addrs[] = {"127.0.0.1"}, want[128];
	int fd;

	(void)state;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 1), 0);
	getsockname(fd, (struct sockaddr *)&sin, &len);

	memset(&l, 0, sizeof(l));
	memset(&cfg, 0, sizeof(cfg));
	l.file = "t.conf";
	l.line = 7;
	l.service = SERVICE_IMAPS;
	l.addresses = addrs;
	l.naddresses = 1;
	l.port = ntohs(sin.sin_port);
	cfg.listeners = &l;
	cfg.nlisteners = 1;
	assert_int_equal(listener_bind_all(&cfg, &socks, &n, &error), -1);
	snprintf(want, sizeof(want),
	         "t.conf:7: listener imaps: bind 127.0.0.1:%u: Address "
	         "already in use",
	         l.port);
	assert_string_equal(error, want);
	assert_int_equal(n, 0);
	free(error);
	close(fd);

	/* Once free, it binds, on IPv4 and IPv6 loopback alike. */
	l.port = 0;
	{
		char *both[] = {"127.0.0.1", "::1"};

		l.addresses = both;
		l.naddresses = 2;
		assert_int_equal(listener_bind_all(&cfg, &socks, &n, &error),
		                 0);
		assert_int_equal(n, 2);
		assert_string_equal(socks[1].address, "::1");
		listener_close_all(&socks, &n);
		assert_null(socks);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(counter_limits_per_address),
	    cmocka_unit_test(counter_many_addresses),
	    cmocka_unit_test(addr_string_maps_v4_in_v6),
	    cmocka_unit_test(bind_error_names_what_and_where),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
