/* The mailauth DNS interface: see dnsif.h. Answers are owned by the caller
 * that zeroed them; this frees what a provider put in. */
#include "mailauth/dnsif.h"

#include <stdlib.h>
#include <string.h>

void
ma_dns_answer_clear(struct ma_dns_answer *ans)
{
	if (ans->rr != NULL) {
		for (size_t i = 0; i < ans->count; i++)
			free(ans->rr[i]);
		free(ans->rr);
	}
	memset(ans, 0, sizeof(*ans));
}
