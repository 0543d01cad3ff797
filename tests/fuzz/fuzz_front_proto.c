/* libFuzzer target: the first-words protocols (src/roles/front_proto.c).
 * The first byte picks the service; the rest is split into lines. Every
 * reply must be CRLF-terminated lines and the state machine must survive
 * any order of commands. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "roles/front_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static enum listener_service service;

static void
check_write(void *arg, const char *data, size_t len)
{
	(void)arg;
	/* Replies always end a line: a protocol never leaves half of one.
	 * (An HTTP answer ends with its body instead.) */
	if (service == SERVICE_HTTP)
		return;
	if (len < 2 || data[len - 2] != '\r' || data[len - 1] != '\n')
		abort();
}

static void
noop(void *arg)
{
	(void)arg;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct front_io io = {check_write, noop, noop, NULL, NULL};
	struct front_proto *p;
	size_t start = 1;

	if (size < 1)
		return 0;
	service = (enum listener_service)(data[0] % SERVICE_COUNT);
	p = front_proto_new(service, "mx.example.test", data[0] & 0x80,
	                    data[0] & 0x40, &io);
	front_proto_start(p);
	for (size_t i = 1; i <= size; i++) {
		if (i == size || data[i] == '\n') {
			if (i - start > 2048)
				front_proto_line_too_long(p);
			else
				front_proto_line(p, (const char *)data + start,
				                 i - start);
			start = i + 1;
		}
		if (i == size)
			break;
	}
	if (data[0] & 0x20)
		front_proto_tls_started(p);
	front_proto_shutdown(p);
	front_proto_free(&p);
	return 0;
}
