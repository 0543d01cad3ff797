/* Strict base64: see base64.h. */
#include "core/base64.h"

static const char b64_alphabet[] = BASE64_ALPHABET;

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
base64_decode(const char *in, size_t len, uint8_t *out, size_t outmax,
              size_t *outlen_r)
{
	size_t o = 0;

	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		const unsigned char *q = (const unsigned char *)in + i;
		size_t pad = 0, nbytes;
		uint32_t acc = 0;

		/* '=' only closes the last quantum: "xx==" or "xxx=". */
		if (i + 4 == len && q[3] == '=')
			pad = q[2] == '=' ? 2 : 1;
		for (size_t j = 0; j < 4 - pad; j++) {
			int v = b64_value(q[j]);

			if (v < 0)
				return -1;
			acc = acc << 6 | (uint32_t)v;
		}
		acc <<= 6 * pad;
		/* The bits under the padding must be zero (RFC 4648 §3.5),
		 * so every byte string has exactly one encoding. */
		if ((pad == 1 && (acc & 0xff) != 0) ||
		    (pad == 2 && (acc & 0xffff) != 0))
			return -1;
		nbytes = 3 - pad;
		if (outmax - o < nbytes)
			return -1;
		out[o++] = (uint8_t)(acc >> 16);
		if (nbytes > 1)
			out[o++] = (uint8_t)(acc >> 8);
		if (nbytes > 2)
			out[o++] = (uint8_t)acc;
	}
	*outlen_r = o;
	return 0;
}

size_t
base64_encode(const uint8_t *in, size_t len, char *out)
{
	size_t o = 0, i = 0;

	for (; len - i >= 3; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		             in[i + 2];

		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 0x3f];
		out[o++] = b64_alphabet[(v >> 6) & 0x3f];
		out[o++] = b64_alphabet[v & 0x3f];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 0x3f];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 0x3f];
		out[o++] = b64_alphabet[(v >> 6) & 0x3f];
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}
