#include "common/digest.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

void digest_sha256(const void *data, size_t len, char out[DIGEST_LEN + 1])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != sizeof md)
		fatalx("sha256 failed");
	memcpy(out, "sha256:", 7);
	for (int i = 0; i < 32; i++)
		snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
}

bool digest_valid(const char *s)
{
	return strlen(s) == DIGEST_LEN && strncmp(s, "sha256:", 7) == 0 &&
	       strspn(s + 7, "0123456789abcdef") == 64;
}

const char *digest_hex(const char *digest) { return digest + 7; }
