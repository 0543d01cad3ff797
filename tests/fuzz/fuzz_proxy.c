/* libFuzzer target for the PROXY v2 parser: any input must give a result
 * without reading out of bounds, and a parsed header must parse the same
 * from exactly its own bytes (and not from one byte fewer).
 * SECURITY: this is the network-facing parser in front of every listener. */
#include <stdint.h>
#include <stdlib.h>

#include "core/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_info info;
	size_t consumed, again;
	const char *error;
	enum proxy_result r;

	r = proxy_v2_parse(data, size, &info, &consumed, &error);
	if (r == PROXY_ERROR && error == NULL)
		abort();
	if (r != PROXY_DONE)
		return 0;
	if (consumed > size || consumed < PROXY_V2_HEADER_LEN ||
	    consumed > PROXY_V2_HEADER_LEN + PROXY_V2_MAX_LEN)
		abort();
	if (proxy_v2_parse(data, consumed, &info, &again, &error) !=
	        PROXY_DONE ||
	    again != consumed)
		abort();
	if (proxy_v2_parse(data, consumed - 1, &info, &again, &error) !=
	    PROXY_NEED_MORE)
		abort();
	return 0;
}
