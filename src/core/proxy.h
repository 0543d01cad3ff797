/* PROXY protocol version 2 (the binary header HAProxy and load balancers send
 * first on a connection) — strict parser, no I/O.
 * SECURITY: the header comes from the network. Only the v2 signature is
 * accepted (no v1 text form); version must be 2; command LOCAL or PROXY;
 * family INET/INET6 over STREAM (UNSPEC only with LOCAL); the declared
 * length is bounded by PROXY_V2_MAX_LEN and must hold the address block
 * exactly followed by well-formed TLVs (a CRC32C TLV, when present, must
 * match). Anything else is an error: the connection is to be closed. */
#ifndef TERN_CORE_PROXY_H
#define TERN_CORE_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXY_V2_SIG_LEN 12
#define PROXY_V2_HEADER_LEN 16
/* Bound on the declared length of address block + TLVs. */
#define PROXY_V2_MAX_LEN 1024

struct proxy_info {
	bool local; /* LOCAL command: keep the real socket addresses */
	struct sockaddr_storage src;
	struct sockaddr_storage dst;
	socklen_t addrlen; /* of src and dst; 0 when local */
	bool have_ssl_tlv; /* PP2_TYPE_SSL present (client used TLS) */
};

enum proxy_result {
	PROXY_NEED_MORE = 0, /* not enough bytes yet; call again with more */
	PROXY_DONE = 1,	     /* *consumed_r bytes are the header */
	PROXY_ERROR = -1,    /* *error_r says what is wrong */
};

/* Parse a header from the start of data. Never reads beyond len. */
enum proxy_result proxy_v2_parse(const uint8_t *data, size_t len,
				 struct proxy_info *info, size_t *consumed_r,
				 const char **error_r);

#endif
