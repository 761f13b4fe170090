/* tls — OpenSSL contexts and libevent's TLS bufferevents (see tls.h).
 *
 * Why the client records its own verification failure: evhttp resets a connection that
 * failed before it calls the request back, and the reset (bufferevent_openssl's set_fd)
 * calls SSL_clear, which forgets SSL_get_verify_result. A verify callback writes the first
 * failure into the SSL's ex_data, which SSL_clear keeps, so the caller can still say why. */
#include "common/tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

struct tls_ctx {
	SSL_CTX *ssl;
	bool server;
	bool asks_client_cert;
};

/* What a client connection remembers across SSL_clear: the host it dialled and the first
 * certificate fault met. */
struct peer_note {
	char host[256];
	char why[384];
};

static int note_index = -1;
static pthread_once_t note_once = PTHREAD_ONCE_INIT;

static void note_free(UNUSED void *parent, void *ptr, UNUSED CRYPTO_EX_DATA *ad, UNUSED int idx,
                      UNUSED long argl, UNUSED void *argp)
{
	free(ptr);
}

static void note_index_init(void)
{
	note_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, note_free);
}

/* The reason OpenSSL queued last, for a sentence; clears the queue. */
static const char *ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	ERR_clear_error();
	return r ? r : "unknown OpenSSL error";
}

/* ---- one record per message ----
 *
 * bufferevent_openssl makes one TLS record (one send) per chain of its output buffer, and
 * evhttp writes a message's head and body as two chains. With Nagle's algorithm the second
 * small send then waits for the peer's delayed ACK: 40 ms on every request and answer. Up
 * to a record's size the output is made one chain as it is filled, so a message leaves as
 * one record; larger ones fill whole records anyway. And OpenSSL writes records of its own
 * (TLS 1.3's session tickets, right after the handshake) straight to the socket: the first
 * answer behind them would wait for their ACK, so the socket gets TCP_NODELAY when a
 * message is queued (the socket is evhttp's to make, and a client's changes on reconnect). */
#define RECORD_MAX 16384

static void coalesce(struct evbuffer *out, const struct evbuffer_cb_info *info, void *arg)
{
	size_t len = evbuffer_get_length(out);
	evutil_socket_t fd;
	int one = 1;

	if (info->n_added == 0)
		return;
	if (len <= RECORD_MAX)
		evbuffer_pullup(out, (ev_ssize_t)len);
	if ((fd = bufferevent_getfd(arg)) >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* best effort: a speed-up */
}

static struct bufferevent *record_per_message(struct bufferevent *bev)
{
	if (bev && !evbuffer_add_cb(bufferevent_get_output(bev), coalesce, bev)) {
		bufferevent_free(bev);
		return NULL;
	}
	return bev;
}

/* ---- checking the files ---- */

/* The file exists and is readable: a sentence naming it and errno otherwise. */
static int check_readable(const char *opt, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot read %s %s: %s", opt, path, strerror(errno));
		return -1;
	}
	fclose(f);
	return 0;
}

static void format_time(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;
	if (ASN1_TIME_to_tm(t, &tm) != 1 || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, len, "(unreadable date)");
}

/* The first certificate of a PEM file: present and valid now (a server that would offer
 * an expired certificate refuses to start rather than fail every handshake). */
static int check_cert_file(const char *opt, const char *path, char *err, size_t errlen)
{
	FILE *f;
	X509 *x;
	char when[64];
	int rc = 0;

	if (check_readable(opt, path, err, errlen) < 0 || !(f = fopen(path, "r")))
		return -1;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	ERR_clear_error();
	if (!x) {
		snprintf(err, errlen, "%s %s holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")", opt, path);
		return -1;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
		format_time(X509_get0_notAfter(x), when, sizeof when);
		snprintf(err, errlen, "%s %s expired on %s; make a new certificate", opt, path, when);
		rc = -1;
	} else if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0) {
		format_time(X509_get0_notBefore(x), when, sizeof when);
		snprintf(err, errlen, "%s %s is not valid before %s (is the clock right?)", opt, path, when);
		rc = -1;
	}
	X509_free(x);
	return rc;
}

static int load_cert_and_key(SSL_CTX *ssl, const struct tls_files *f, char *err, size_t errlen)
{
	if (!f->key) {
		snprintf(err, errlen, "--tls-cert %s needs --tls-key, the file of its private key", f->cert);
		return -1;
	}
	if (check_cert_file("--tls-cert", f->cert, err, errlen) < 0 ||
	    check_readable("--tls-key", f->key, err, errlen) < 0)
		return -1;
	if (SSL_CTX_use_certificate_chain_file(ssl, f->cert) != 1) {
		snprintf(err, errlen, "--tls-cert %s: %s", f->cert, ssl_reason());
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ssl, f->key, SSL_FILETYPE_PEM) != 1 &&
	    ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH) {
		snprintf(err, errlen, "--tls-key %s holds no usable PEM private key (%s)", f->key, ssl_reason());
		return -1;
	}
	if (SSL_CTX_check_private_key(ssl) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "--tls-key %s is not the key of the certificate in --tls-cert %s", f->key, f->cert);
		return -1;
	}
	return 0;
}

static int load_ca(SSL_CTX *ssl, const char *opt, const char *path, char *err, size_t errlen)
{
	if (check_cert_file(opt, path, err, errlen) < 0)
		return -1;
	if (SSL_CTX_load_verify_locations(ssl, path, NULL) != 1) {
		snprintf(err, errlen, "%s %s: %s", opt, path, ssl_reason());
		return -1;
	}
	return 0;
}

static struct tls_ctx *ctx_new(bool server, char *err, size_t errlen)
{
	struct tls_ctx *t = calloc(1, sizeof *t);
	if (!t)
		fatal("calloc");
	t->server = server;
	pthread_once(&note_once, note_index_init);
	if (!(t->ssl = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method())) ||
	    SSL_CTX_set_min_proto_version(t->ssl, TLS1_2_VERSION) != 1) {
		snprintf(err, errlen, "cannot set up TLS: %s", ssl_reason());
		tls_ctx_free(t);
		return NULL;
	}
	return t;
}

/* ---- server ---- */

struct tls_ctx *tls_server_new(const struct tls_files *f, char *err, size_t errlen)
{
	static const unsigned char sid_ctx[] = "microvim";
	struct tls_ctx *t;

	if (!f->cert) {
		snprintf(err, errlen, "TLS needs --tls-cert FILE and --tls-key FILE");
		return NULL;
	}
	if (!(t = ctx_new(true, err, errlen)))
		return NULL;
	if (load_cert_and_key(t->ssl, f, err, errlen) < 0)
		goto fail;
	/* Resumed sessions skip the handshake's costly half; with client certificates they
	 * need a session id context, or OpenSSL refuses to resume. */
	SSL_CTX_set_session_id_context(t->ssl, sid_ctx, sizeof sid_ctx - 1);
	if (f->ca) {
		STACK_OF(X509_NAME) *names;
		if (load_ca(t->ssl, "--tls-client-ca", f->ca, err, errlen) < 0)
			goto fail;
		if ((names = SSL_load_client_CA_file(f->ca)))
			SSL_CTX_set_client_CA_list(t->ssl, names);
		ERR_clear_error();
		/* Asked, not required: a presented certificate must verify (else the handshake
		 * fails); none at all is for the routes to judge (tls_request_peer_verified). */
		SSL_CTX_set_verify(t->ssl, SSL_VERIFY_PEER, NULL);
		t->asks_client_cert = true;
	}
	return t;
fail:
	tls_ctx_free(t);
	return NULL;
}

bool tls_asks_client_cert(const struct tls_ctx *t) { return t && t->asks_client_cert; }

struct bufferevent *tls_server_bufferevent(struct event_base *base, struct tls_ctx *t)
{
	SSL *ssl = SSL_new(t->ssl);
	struct bufferevent *bev;
	if (!ssl)
		return NULL;
	/* CLOSE_ON_FREE: the bufferevent frees the SSL and closes the socket (evhttp then
	 * leaves the socket to it). */
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!bev)
		SSL_free(ssl);
	return record_per_message(bev);
}

static SSL *ssl_of(struct evhttp_connection *evcon)
{
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	return bev ? bufferevent_openssl_get_ssl(bev) : NULL;
}

bool tls_request_peer_verified(struct evhttp_request *req)
{
	SSL *ssl = ssl_of(evhttp_request_get_connection(req));
	return ssl && SSL_get0_peer_certificate(ssl) && SSL_get_verify_result(ssl) == X509_V_OK;
}

/* ---- client ---- */

/* Records the first fault of the server's chain (the handshake fails on it). */
static int verify_note(int ok, X509_STORE_CTX *store)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct peer_note *note = ssl ? SSL_get_ex_data(ssl, note_index) : NULL;
	int e = X509_STORE_CTX_get_error(store);

	/* The leaf passes last when everything before it did: a fault of an earlier handshake
	 * on this connection is no longer the reason for anything. */
	if (ok && note && X509_STORE_CTX_get_error_depth(store) == 0)
		note->why[0] = '\0';
	if (!ok && note && !note->why[0]) {
		const char *hint = "";
		if (e == X509_V_ERR_HOSTNAME_MISMATCH || e == X509_V_ERR_IP_ADDRESS_MISMATCH)
			hint = ": the certificate does not name this host; use the name or address it was made for";
		else if (e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY || e == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
		         e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT || e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT)
			hint = ": give the CA that signed it with --tls-ca FILE (or $MICROVIM_TLS_CA)";
		snprintf(note->why, sizeof note->why, "the certificate of %s was refused: %s%s", note->host,
		         X509_verify_cert_error_string(e), hint);
	}
	return ok;
}

struct tls_ctx *tls_client_new(const struct tls_files *f, char *err, size_t errlen)
{
	struct tls_ctx *t = ctx_new(false, err, errlen);
	if (!t)
		return NULL;
	if (f->ca) {
		if (load_ca(t->ssl, "--tls-ca", f->ca, err, errlen) < 0)
			goto fail;
	} else if (SSL_CTX_set_default_verify_paths(t->ssl) != 1) {
		snprintf(err, errlen, "cannot load the system's CA store (%s); give --tls-ca FILE", ssl_reason());
		goto fail;
	}
	if (f->cert && load_cert_and_key(t->ssl, f, err, errlen) < 0)
		goto fail;
	SSL_CTX_set_verify(t->ssl, SSL_VERIFY_PEER, verify_note);
	return t;
fail:
	tls_ctx_free(t);
	return NULL;
}

/* An SSL for one connection to host: SNI and the name to check (a literal address is
 * checked against the certificate's IP entries, a name against its DNS entries). */
static SSL *client_ssl(struct tls_ctx *t, const char *host)
{
	SSL *ssl = SSL_new(t->ssl);
	struct peer_note *note = calloc(1, sizeof *note);
	unsigned char addr[16];
	bool literal = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
	int ok;

	if (!ssl || !note) {
		SSL_free(ssl);
		free(note);
		return NULL;
	}
	snprintf(note->host, sizeof note->host, "%s", host);
	if (SSL_set_ex_data(ssl, note_index, note) != 1) {
		free(note);
		SSL_free(ssl);
		return NULL;
	}
	if (literal)
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
	else
		ok = SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
	if (ok != 1) {
		ERR_clear_error();
		SSL_free(ssl); /* frees the note (ex_data) */
		return NULL;
	}
	return ssl;
}

struct evhttp_connection *tls_http_connection(struct event_base *base, struct tls_ctx *t, const char *host,
                                              int port)
{
	struct bufferevent *bev;
	SSL *ssl;
	struct evhttp_connection *evcon;

	if (!t)
		return evhttp_connection_base_new(base, NULL, host, (unsigned short)port);
	if (!(ssl = client_ssl(t, host)))
		return NULL;
	if (!(bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE))) {
		SSL_free(ssl);
		return NULL;
	}
	/* A peer that closes without close_notify (evhttp itself, on Connection: close) ends
	 * the stream; it is not an attack on a length-delimited HTTP reply. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	if (!(bev = record_per_message(bev)))
		return NULL;
	if (!(evcon = evhttp_connection_base_bufferevent_new(base, NULL, bev, host, (unsigned short)port)))
		bufferevent_free(bev);
	return evcon;
}

bool tls_connection_error(struct evhttp_connection *evcon, char *buf, size_t len)
{
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	struct peer_note *note = ssl ? SSL_get_ex_data(ssl, note_index) : NULL;
	unsigned long e;

	if (!ssl)
		return false;
	if (note && note->why[0]) {
		snprintf(buf, len, "%s", note->why);
		note->why[0] = '\0';
		return true;
	}
	/* The server refused us (our certificate, say), or spoke no TLS at all. */
	if ((e = bufferevent_get_openssl_error(bev)) == 0)
		return false;
	while (bufferevent_get_openssl_error(bev) != 0) /* the first is the cause; drop the rest */
		;
	const char *reason = ERR_reason_error_string(e);
	if (ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER || ERR_GET_REASON(e) == SSL_R_PACKET_LENGTH_TOO_LONG)
		snprintf(buf, len, "TLS handshake with %s failed: %s (does it speak plain HTTP? then use http://)",
		         note ? note->host : "the server", reason ? reason : "no TLS");
	else if (reason && strstr(reason, "alert") && (strstr(reason, "certificate") || strstr(reason, "unknown ca")))
		snprintf(buf, len, "TLS handshake with %s failed: %s (the server refused this client's certificate: "
		         "give --tls-cert/--tls-key signed by the CA of its --tls-client-ca)",
		         note ? note->host : "the server", reason);
	else
		snprintf(buf, len, "TLS handshake with %s failed: %s", note ? note->host : "the server",
		         reason ? reason : "unknown OpenSSL error");
	return true;
}

void tls_ctx_free(struct tls_ctx *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ssl);
	free(t);
}
