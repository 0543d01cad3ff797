/* libFuzzer target for the tern.conf reader: any bytes give a config or a
 * "fuzz:LINE: why" error, and a config that parses serializes to text that
 * parses back to the same canonical text (what the parent sends the roles).
 * SECURITY: the config is trusted but may be junk; the reader must not read
 * out of bounds, leak, or accept what it cannot write back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg, *back;
	char *error = NULL, *text, *again;

	/* Includes name files under /nonexistent: they fail, as they should. */
	cfg = config_parse("fuzz", "/nonexistent", (const char *)data, size,
	                   &error);
	if (cfg == NULL) {
		if (error == NULL || strncmp(error, "fuzz", 4) != 0)
			abort();
		free(error);
		return 0;
	}
	text = config_serialize(cfg);
	back = config_parse("fuzz", "/nonexistent", text, strlen(text), &error);
	if (back == NULL)
		abort(); /* canonical text the reader refuses */
	again = config_serialize(back);
	if (strcmp(text, again) != 0)
		abort(); /* the round trip changed a value */
	free(again);
	free(text);
	config_free(&back);
	config_free(&cfg);
	return 0;
}
