/* digest — content addresses of image blobs: "sha256:" + 64 lower-case hex characters. */
#ifndef MICROVIM_DIGEST_H
#define MICROVIM_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#define DIGEST_LEN 71 /* "sha256:" + 64 hex */

/* out gets "sha256:<hex>" (DIGEST_LEN + 1 bytes). */
void digest_sha256(const void *data, size_t len, char out[DIGEST_LEN + 1]);
bool digest_valid(const char *s);
/* The hex part of a valid digest. */
const char *digest_hex(const char *digest);

#endif
