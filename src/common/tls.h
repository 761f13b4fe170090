/* tls — HTTPS for microvim's HTTP, through OpenSSL and libevent's bufferevent_openssl.
 *
 *   server   tls_server_new: the certificate chain and key of --tls-cert/--tls-key, TLS 1.2
 *            at least. With a client CA (--tls-client-ca) the server asks every client for a
 *            certificate: one that does not verify against that CA fails the handshake; no
 *            certificate at all is let through (people carry bearer tokens, not
 *            certificates), and a route that needs one asks tls_request_peer_verified.
 *   client   tls_client_new: verifies the server's chain against --tls-ca (or the system's
 *            store) and that the certificate names the host dialled (a DNS name, or an IP
 *            address in its subjectAltName); optionally presents a certificate of its own.
 *
 * The files are checked when the context is made, so that a daemon refuses to start with
 * a message naming the file and the fault (missing, not PEM, expired, key not matching)
 * instead of failing every handshake later. Errors: NULL / -1 with a sentence in err.
 * A context is shared by every connection made from it; free it after them. */
#ifndef MICROVIM_TLS_H
#define MICROVIM_TLS_H

#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stddef.h>

struct tls_ctx;

/* The files of one side; any may be NULL where the side allows. Messages name them by the
 * options that give them: --tls-cert, --tls-key, --tls-ca, --tls-client-ca. */
struct tls_files {
	const char *cert;      /* PEM chain: the server's (required) or the client's (optional) */
	const char *key;       /* PEM private key of cert; required with cert */
	const char *ca;        /* client: CAs that sign the server (NULL: the system store);
	                        * server: CAs that sign client certificates (NULL: none asked) */
};

struct tls_ctx *tls_server_new(const struct tls_files *f, char *err, size_t errlen);
struct tls_ctx *tls_client_new(const struct tls_files *f, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *t);
/* True when the server context asks clients for certificates (made with a client CA). */
bool tls_asks_client_cert(const struct tls_ctx *t);

/* Server: a bufferevent that accepts a TLS connection, for evhttp_set_bevcb (the socket is
 * set by evhttp; freeing the bufferevent closes it). NULL when out of memory. */
struct bufferevent *tls_server_bufferevent(struct event_base *base, struct tls_ctx *t);
/* Server: the connection of req presented a client certificate that verified. */
bool tls_request_peer_verified(struct evhttp_request *req);

/* Client: a connection to host:port, over TLS with t, or plain HTTP when t is NULL.
 * NULL when out of memory. */
struct evhttp_connection *tls_http_connection(struct event_base *base, struct tls_ctx *t, const char *host,
                                              int port);
/* Client: after a request on evcon got no answer, why the TLS layer failed, as a sentence
 * ("the certificate of 127.0.0.1 was refused: unable to get local issuer certificate ...");
 * false when TLS is not the reason (or evcon is plain). Consumes the recorded reason. */
bool tls_connection_error(struct evhttp_connection *evcon, char *buf, size_t len);

#endif
