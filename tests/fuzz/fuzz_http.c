/* fuzz_http — the core's whole request path: each input is raw bytes a client sends on a
 * fresh loopback connection to a fresh core (with one node registered and one instance
 * placed, so node routes and instance routes have something to act on). The client shuts
 * its write side after the input and the loop runs until the core closes the connection,
 * the answer goes quiet (10 ms; 40 ms before its first byte), or 300 ms pass. Then a second client must still get
 * GET /v1/health -> 200 (no input stalls the core), and the core is destroyed, which
 * answers whatever the input left waiting: ASan/LSan see every leak.
 *
 * Placeholders in an input (fuzzcore.h): 32 'T' become the node's token, 16 'I' the
 * instance's id, so seeds can reach the node routes and one instance. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzzcore.h"

#define HEALTH "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fuzzcore_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzzcore fc;
	struct evbuffer *ans = evbuffer_new();

	if (!ans)
		abort();
	fuzzcore_start(&fc);
	fuzzcore_setup_node(&fc);
	fuzzcore_exchange(&fc, data, size, 1, 10, 300, NULL);
	fuzzcore_exchange(&fc, HEALTH, sizeof HEALTH - 1, 0, 0, 5000, ans);
	if (fuzzcore_status(ans) != 200) {
		fprintf(stderr, "fuzz_http: after the input, GET /v1/health got no 200 (%zu bytes: %.*s)\n",
		        evbuffer_get_length(ans), (int)evbuffer_get_length(ans), (char *)evbuffer_pullup(ans, -1));
		abort();
	}
	evbuffer_free(ans);
	fuzzcore_stop(&fc);
	return 0;
}
