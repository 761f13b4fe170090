/* secret — tokens and password hashes (secret.h). */
#include "common/secret.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SALT_LEN 16
#define DERIVED_LEN 32

static void to_hex(const unsigned char *in, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * len] = '\0';
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Exactly 2 * len lower-case hex characters into len bytes. */
static int from_hex(const char *s, size_t slen, unsigned char *out, size_t len)
{
	if (slen != 2 * len)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int hi = hex_val(s[2 * i]), lo = hex_val(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

static int random_hex(size_t bytes, char *out)
{
	unsigned char buf[32];
	if (bytes > sizeof buf || RAND_bytes(buf, (int)bytes) != 1)
		return -1;
	to_hex(buf, bytes, out);
	OPENSSL_cleanse(buf, sizeof buf);
	return 0;
}

int secret_token_new(char out[SECRET_TOKEN_LEN + 1])
{
	memcpy(out, SECRET_TOKEN_PREFIX, 4);
	return random_hex(32, out + 4);
}

int secret_id_new(char out[SECRET_ID_LEN + 1]) { return random_hex(SECRET_ID_LEN / 2, out); }

bool secret_token_well_formed(const char *s)
{
	if (strncmp(s, SECRET_TOKEN_PREFIX, 4) != 0 || strlen(s) != SECRET_TOKEN_LEN)
		return false;
	for (const char *p = s + 4; *p; p++)
		if (hex_val(*p) < 0)
			return false;
	return true;
}

void secret_token_hash(const char *token, char out[SECRET_HASH_HEX_LEN + 1])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)token, strlen(token), md);
	to_hex(md, sizeof md, out);
}

bool secret_hash_equal(const char *a, const char *b)
{
	size_t n = strlen(a);
	return n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0;
}

static int derive(const char *password, const unsigned char *salt, unsigned rounds,
                  unsigned char out[DERIVED_LEN])
{
	return PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, SALT_LEN, (int)rounds, EVP_sha256(),
	                         DERIVED_LEN, out) == 1 ? 0 : -1;
}

int secret_password_hash(const char *password, unsigned rounds, char out[SECRET_PASSWORD_HASH_MAX + 1])
{
	unsigned char salt[SALT_LEN], dk[DERIVED_LEN];
	char salt_hex[2 * SALT_LEN + 1], dk_hex[2 * DERIVED_LEN + 1];
	int n;
	if (rounds == 0 || RAND_bytes(salt, sizeof salt) != 1 || derive(password, salt, rounds, dk) < 0)
		return -1;
	to_hex(salt, sizeof salt, salt_hex);
	to_hex(dk, sizeof dk, dk_hex);
	OPENSSL_cleanse(dk, sizeof dk);
	n = snprintf(out, SECRET_PASSWORD_HASH_MAX + 1, "pbkdf2-sha256$%u$%s$%s", rounds, salt_hex, dk_hex);
	return n > 0 && n <= SECRET_PASSWORD_HASH_MAX ? 0 : -1;
}

bool secret_password_verify(const char *password, const char *stored)
{
	static const char scheme[] = "pbkdf2-sha256$";
	unsigned char salt[SALT_LEN], want[DERIVED_LEN], got[DERIVED_LEN];
	const char *p = stored, *salt_end;
	char *end;
	unsigned long rounds;
	bool ok;

	if (strncmp(p, scheme, sizeof scheme - 1) != 0)
		return false;
	p += sizeof scheme - 1;
	rounds = strtoul(p, &end, 10);
	if (end == p || *end != '$' || rounds == 0 || rounds > 100000000)
		return false;
	p = end + 1;
	if (!(salt_end = strchr(p, '$')) || from_hex(p, (size_t)(salt_end - p), salt, sizeof salt) < 0 ||
	    from_hex(salt_end + 1, strlen(salt_end + 1), want, sizeof want) < 0)
		return false;
	if (derive(password, salt, (unsigned)rounds, got) < 0)
		return false;
	ok = CRYPTO_memcmp(got, want, sizeof got) == 0;
	OPENSSL_cleanse(got, sizeof got);
	return ok;
}
