/* test_tls — TLS contexts refuse bad files with a sentence naming them; real handshakes
 * over loopback (server by evhttp with tls_server_bufferevent, client by
 * tls_http_connection): verified, wrong CA, wrong host, and client certificates (mTLS).
 * The certificates come from tests/tls/make-certs (the openssl command), run from the
 * repository's root like every unit test. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "common/tls.h"
#include "unit.h"

static char dir[] = "/tmp/microvim-test-tls-XXXXXX";

static const char *file(const char *name)
{
	static char paths[32][256]; /* enough for every path one test holds at once */
	static int next;
	char *p = paths[next++ % 32];
	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

static bool contains(const char *s, const char *part)
{
	if (!strstr(s, part)) {
		fprintf(stderr, "  \"%s\" lacks \"%s\"\n", s, part);
		return false;
	}
	return true;
}

/* A server context from these files must fail with a message holding `want`. */
static void server_refused(const char *cert, const char *key, const char *ca, const char *want)
{
	char err[512] = "";
	struct tls_files f = {.cert = cert ? file(cert) : NULL, .key = key ? file(key) : NULL, .ca = ca ? file(ca) : NULL};
	struct tls_ctx *t = tls_server_new(&f, err, sizeof err);
	CHECK(t == NULL);
	CHECK(contains(err, want));
	tls_ctx_free(t);
}

static void test_server_files(void)
{
	char err[512] = "";
	struct tls_files good = {.cert = file("server.pem"), .key = file("server.key")};
	struct tls_ctx *t = tls_server_new(&good, err, sizeof err);
	CHECK(t != NULL);
	CHECK(!tls_asks_client_cert(t));
	tls_ctx_free(t);
	good.ca = file("ca.pem");
	t = tls_server_new(&good, err, sizeof err);
	CHECK(t != NULL);
	CHECK(tls_asks_client_cert(t));
	tls_ctx_free(t);

	server_refused("missing.pem", "server.key", NULL, "cannot read --tls-cert");
	server_refused("missing.pem", "server.key", NULL, "No such file");
	server_refused("garbage.pem", "server.key", NULL, "holds no PEM certificate");
	server_refused("expired.pem", "expired.key", NULL, "expired on 2020-02-01");
	server_refused("server.pem", "node.key", NULL, "is not the key of the certificate");
	server_refused("server.pem", "garbage.pem", NULL, "--tls-key");
	server_refused("server.pem", "missing.key", NULL, "cannot read --tls-key");
	server_refused("server.pem", NULL, NULL, "needs --tls-key");
	server_refused(NULL, NULL, NULL, "--tls-cert FILE and --tls-key FILE");
	server_refused("server.pem", "server.key", "garbage.pem", "--tls-client-ca");
}

static void test_client_files(void)
{
	char err[512] = "";
	struct tls_files f = {.ca = file("ca.pem")};
	struct tls_ctx *t = tls_client_new(&f, err, sizeof err);
	CHECK(t != NULL);
	tls_ctx_free(t);
	f = (struct tls_files){0}; /* the system store */
	t = tls_client_new(&f, err, sizeof err);
	CHECK(t != NULL);
	tls_ctx_free(t);
	f = (struct tls_files){.ca = file("garbage.pem")};
	CHECK(tls_client_new(&f, err, sizeof err) == NULL);
	CHECK(contains(err, "--tls-ca"));
	f = (struct tls_files){.ca = file("ca.pem"), .cert = file("node.pem"), .key = file("other-node.key")};
	CHECK(tls_client_new(&f, err, sizeof err) == NULL);
	CHECK(contains(err, "is not the key"));
}

/* ---- handshakes ---- */

struct server {
	struct evhttp *http;
	struct tls_ctx *tls;
	int port;
};

static struct bufferevent *server_bev(struct event_base *base, void *arg)
{
	return tls_server_bufferevent(base, arg);
}

/* Answers "verified" or "anonymous": what the connection's client certificate was. */
static void handle(struct evhttp_request *req, UNUSED void *arg)
{
	const char *who = tls_request_peer_verified(req) ? "verified" : "anonymous";
	evbuffer_add(evhttp_request_get_output_buffer(req), who, strlen(who));
	evhttp_send_reply(req, 200, "OK", NULL);
}

static int server_start(struct event_base *base, struct server *s, const char *client_ca)
{
	char err[512];
	struct tls_files f = {.cert = file("server.pem"), .key = file("server.key"), .ca = client_ca};
	struct evhttp_bound_socket *b;
	if (!(s->tls = tls_server_new(&f, err, sizeof err))) {
		fprintf(stderr, "  %s\n", err);
		return -1;
	}
	s->http = evhttp_new(base);
	evhttp_set_bevcb(s->http, server_bev, s->tls);
	evhttp_set_gencb(s->http, handle, NULL);
	if (!(b = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0)))
		return -1;
	{
		struct sockaddr_in sin;
		socklen_t len = sizeof sin;
		getsockname(evhttp_bound_socket_get_fd(b), (struct sockaddr *)&sin, &len);
		s->port = ntohs(sin.sin_port);
	}
	return 0;
}

static void server_stop(struct server *s)
{
	evhttp_free(s->http);
	tls_ctx_free(s->tls);
}

struct answer {
	struct event_base *base;
	int status;
	char body[64];
};

static void answered(struct evhttp_request *req, void *arg)
{
	struct answer *a = arg;
	if (req && (a->status = evhttp_request_get_response_code(req)) > 0) {
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		size_t n = evbuffer_get_length(in) < sizeof a->body - 1 ? evbuffer_get_length(in) : sizeof a->body - 1;
		evbuffer_remove(in, a->body, n);
		a->body[n] = '\0';
	}
	event_base_loopbreak(a->base);
}

/* One GET / to host:port with a client made of f; err gets the TLS reason when no answer. */
static int get(struct event_base *base, const char *host, int port, const struct tls_files *f, char *body,
               char *err, size_t errlen)
{
	char cerr[512];
	struct answer a = {.base = base};
	struct tls_ctx *t = tls_client_new(f, cerr, sizeof cerr);
	struct evhttp_connection *c;
	struct evhttp_request *req;

	err[0] = body[0] = '\0';
	if (!t) {
		snprintf(err, errlen, "%s", cerr);
		return -1;
	}
	c = tls_http_connection(base, t, host, port);
	evhttp_connection_set_timeout(c, 10);
	req = evhttp_request_new(answered, &a);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", host);
	evhttp_make_request(c, req, EVHTTP_REQ_GET, "/");
	event_base_dispatch(base);
	if (a.status == 0 && !tls_connection_error(c, err, errlen))
		snprintf(err, errlen, "no answer, and no TLS reason");
	snprintf(body, 64, "%s", a.body);
	evhttp_connection_free(c);
	tls_ctx_free(t);
	return a.status;
}

static void test_handshakes(void)
{
	struct event_base *base = event_base_new();
	struct server s = {0};
	char body[64], err[512];
	struct tls_files ca = {.ca = file("ca.pem")}, wrong = {.ca = file("other-ca.pem")};

	CHECK_EQ_INT(server_start(base, &s, NULL), 0);
	CHECK_EQ_INT(get(base, "127.0.0.1", s.port, &ca, body, err, sizeof err), 200);
	CHECK_STR(body, "anonymous");
	CHECK_EQ_INT(get(base, "localhost", s.port, &ca, body, err, sizeof err), 200);

	CHECK_EQ_INT(get(base, "127.0.0.1", s.port, &wrong, body, err, sizeof err), 0);
	CHECK(contains(err, "the certificate of 127.0.0.1 was refused"));
	CHECK(contains(err, "--tls-ca"));
	/* The system store does not know the test CA either. */
	struct tls_files system = {0};
	CHECK_EQ_INT(get(base, "127.0.0.1", s.port, &system, body, err, sizeof err), 0);
	CHECK(contains(err, "was refused"));
	server_stop(&s);

	/* A certificate for another host, by the right CA: the name check refuses it. */
	{
		char e[512];
		struct tls_files f = {.cert = file("elsewhere.pem"), .key = file("elsewhere.key")};
		struct evhttp_bound_socket *b;
		struct sockaddr_in sin;
		socklen_t len = sizeof sin;
		s.tls = tls_server_new(&f, e, sizeof e);
		CHECK(s.tls != NULL);
		s.http = evhttp_new(base);
		evhttp_set_bevcb(s.http, server_bev, s.tls);
		evhttp_set_gencb(s.http, handle, NULL);
		b = evhttp_bind_socket_with_handle(s.http, "127.0.0.1", 0);
		getsockname(evhttp_bound_socket_get_fd(b), (struct sockaddr *)&sin, &len);
		CHECK_EQ_INT(get(base, "127.0.0.1", ntohs(sin.sin_port), &ca, body, err, sizeof err), 0);
		CHECK(contains(err, "does not name this host"));
		server_stop(&s);
	}
	event_base_free(base);
}

static void test_client_certificates(void)
{
	struct event_base *base = event_base_new();
	struct server s = {0};
	char body[64], err[512];
	struct tls_files node = {.ca = file("ca.pem"), .cert = file("node.pem"), .key = file("node.key")};
	struct tls_files none = {.ca = file("ca.pem")};
	struct tls_files stranger = {.ca = file("ca.pem"), .cert = file("other-node.pem"), .key = file("other-node.key")};

	CHECK_EQ_INT(server_start(base, &s, file("ca.pem")), 0);
	CHECK_EQ_INT(get(base, "127.0.0.1", s.port, &node, body, err, sizeof err), 200);
	CHECK_STR(body, "verified");
	if (strcmp(body, "verified") != 0)
		fprintf(stderr, "  %s\n", err);
	CHECK_EQ_INT(get(base, "127.0.0.1", s.port, &none, body, err, sizeof err), 200);
	CHECK_STR(body, "anonymous");
	/* Signed by a CA the server does not take: the handshake fails, no request is read. */
	CHECK_EQ_INT(get(base, "127.0.0.1", s.port, &stranger, body, err, sizeof err), 0);
	CHECK(contains(err, "TLS handshake with 127.0.0.1 failed"));
	CHECK(contains(err, "refused this client's certificate"));
	server_stop(&s);
	event_base_free(base);
}

int main(void)
{
	char cmd[512];
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(cmd, sizeof cmd, "tests/tls/make-certs %s", dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "tests/tls/make-certs failed (run from the repository's root; needs openssl)\n");
		return 1;
	}
	RUN(test_server_files);
	RUN(test_client_files);
	RUN(test_handshakes);
	RUN(test_client_certificates);
	fs_remove_tree(dir);
	UNIT_END();
}
