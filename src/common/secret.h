/* secret — bearer tokens and passwords, the only place that touches their clear text.
 *
 *   tokens     "mvt_" + 64 hex characters from RAND_bytes (256 bits). The server keeps only
 *              SHA-256 of a token (hex) and compares hashes with CRYPTO_memcmp; a token is
 *              never logged and never stored.
 *   passwords  PBKDF2-HMAC-SHA256, SECRET_PBKDF2_ITERATIONS rounds, a 16-byte random salt,
 *              kept as "pbkdf2-sha256$ROUNDS$SALT_HEX$HASH_HEX" (the rounds travel with the
 *              hash, so raising them later leaves old hashes readable). Deriving one takes
 *              ~0.1-0.3 s of CPU on purpose: callers on an event loop run it off the loop.
 *
 * Errors: 0, or -1 when libcrypto fails (no randomness) or a stored hash does not parse. */
#ifndef MICROVIM_SECRET_H
#define MICROVIM_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#define SECRET_TOKEN_PREFIX "mvt_"
#define SECRET_TOKEN_LEN (4 + 64)   /* prefix + 64 hex */
#define SECRET_HASH_HEX_LEN 64      /* SHA-256, hex */
#define SECRET_ID_LEN 16            /* public ids of tokens: 16 hex (64 bits) */
#define SECRET_PBKDF2_ITERATIONS 310000 /* OWASP's figure for PBKDF2-HMAC-SHA256 */
#define SECRET_PASSWORD_HASH_MAX 160
#define SECRET_PASSWORD_MAX 1024    /* longer passwords are refused at the boundary */

/* A new token: out gets SECRET_TOKEN_LEN characters and a NUL. */
int secret_token_new(char out[SECRET_TOKEN_LEN + 1]);
/* A new random public id (not a secret): SECRET_ID_LEN hex and a NUL. */
int secret_id_new(char out[SECRET_ID_LEN + 1]);
/* True when s has the shape of a token (prefix, 64 lower-case hex): anything else is
 * refused before it is hashed. */
bool secret_token_well_formed(const char *s);
/* SHA-256 of the token, hex. */
void secret_token_hash(const char *token, char out[SECRET_HASH_HEX_LEN + 1]);
/* Constant-time equality of two hashes of the same length (false when lengths differ). */
bool secret_hash_equal(const char *a, const char *b);

/* A new salted hash of password, with `rounds` iterations (SECRET_PBKDF2_ITERATIONS; tests
 * may pass fewer). */
int secret_password_hash(const char *password, unsigned rounds, char out[SECRET_PASSWORD_HASH_MAX + 1]);
/* True when password matches a hash secret_password_hash wrote (constant-time compare). */
bool secret_password_verify(const char *password, const char *stored);

#endif
