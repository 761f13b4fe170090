#include "node/imagecache.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/digest.h"
#include "common/fs.h"
#include "common/log.h"

#define BLOB_TIMEOUT_S 120

struct imagecache {
	struct imagecache_options o;
	char dir[4096];
	struct evhttp_connection *conn;
	unsigned conn_gen; /* the link's gen conn was made for */
	int in_flight;     /* fetches on conn */
};

/* A connection to the core in use: when the link moved since conn was made, a new one; the
 * old one goes when its fetches have ended (they fail or finish where they were sent). */
static struct evhttp_connection *blob_conn(struct imagecache *ic)
{
	if (ic->conn && ic->conn_gen == ic->o.link->gen)
		return ic->conn;
	if (ic->conn && ic->in_flight > 0)
		evhttp_connection_free_on_completion(ic->conn);
	else if (ic->conn)
		evhttp_connection_free(ic->conn);
	ic->in_flight = 0;
	if (!(ic->conn = tls_http_connection(ic->o.base, ic->o.tls, ic->o.link->host, ic->o.link->port)))
		fatalx("cannot create an HTTP connection");
	evhttp_connection_set_timeout(ic->conn, BLOB_TIMEOUT_S);
	ic->conn_gen = ic->o.link->gen;
	return ic->conn;
}

struct imagecache *imagecache_new(const struct imagecache_options *o, char *err, size_t errlen)
{
	struct imagecache *ic = calloc(1, sizeof *ic);
	int rc;
	if (!ic)
		fatal("calloc");
	ic->o = *o;
	if (snprintf(ic->dir, sizeof ic->dir, "%s/images", o->data_dir) >= (int)sizeof ic->dir) {
		snprintf(err, errlen, "--data-dir path too long");
		goto fail;
	}
	if ((rc = fs_mkdir_p(ic->dir, 0700)) < 0) {
		snprintf(err, errlen, "cannot create the image cache %s: %s", ic->dir, strerror(-rc));
		goto fail;
	}
	blob_conn(ic);
	return ic;
fail:
	imagecache_free(ic);
	return NULL;
}

void imagecache_free(struct imagecache *ic)
{
	if (!ic)
		return;
	if (ic->conn)
		evhttp_connection_free(ic->conn);
	free(ic);
}

bool imagecache_lookup(const struct imagecache *ic, const char *inst_dir, const char *digest, char *path,
                       size_t len)
{
	struct stat st;
	int n = ic->o.off ? snprintf(path, len, "%s/%s", inst_dir, digest_hex(digest))
	                  : snprintf(path, len, "%s/%s", ic->dir, digest_hex(digest));
	if (n < 0 || n >= (int)len)
		return false;
	return stat(path, &st) == 0;
}

struct fetch {
	struct imagecache *ic;
	char digest[DIGEST_LEN + 1];
	char path[4096];
	struct evbuffer *data;
	imagecache_done_fn *done;
	void *arg;
	int rc;
	unsigned gen; /* of the connection it went on */
};

/* On a worker: checks the digest and writes the file atomically (no fsync: a cache). */
static void store_work(void *arg)
{
	struct fetch *f = arg;
	size_t len = evbuffer_get_length(f->data);
	const void *bytes = evbuffer_pullup(f->data, (ev_ssize_t)len);
	char dir[4096], actual[DIGEST_LEN + 1];
	snprintf(dir, sizeof dir, "%s", f->path);
	*strrchr(dir, '/') = '\0';
	if ((f->rc = fs_mkdir_p(dir, 0750)) < 0)
		return;
	digest_sha256(bytes, len, actual);
	f->rc = strcmp(actual, f->digest) != 0 ? -EBADMSG : fs_write_atomic(f->path, bytes, len, false);
}

static void store_done(void *arg)
{
	struct fetch *f = arg;
	char why[256];
	snprintf(why, sizeof why, "image blob %.80s: %s", f->digest,
	         f->rc == -EBADMSG ? "digest mismatch, the fetched bytes are not the image" : strerror(-f->rc));
	f->done(f->arg, f->rc, f->rc < 0 ? why : NULL);
	evbuffer_free(f->data);
	free(f);
}

static void on_blob(struct evhttp_request *req, void *arg)
{
	struct fetch *f = arg;
	int status = req ? evhttp_request_get_response_code(req) : 0;
	char why[256];
	if (f->gen == f->ic->conn_gen)
		f->ic->in_flight--;
	if (status != 200) {
		if (status)
			snprintf(why, sizeof why, "cannot fetch image blob %.80s: the core answered %d", f->digest, status);
		else
			snprintf(why, sizeof why, "cannot fetch image blob %.80s: no answer from the core", f->digest);
		f->done(f->arg, -EIO, why);
		free(f);
		return;
	}
	if (!(f->data = evbuffer_new()))
		fatal("evbuffer_new");
	evbuffer_add_buffer(f->data, evhttp_request_get_input_buffer(req)); /* the request is freed after this */
	worker_submit(f->ic->o.workers, store_work, store_done, f);
}

void imagecache_fetch(struct imagecache *ic, const char *digest, const char *path, imagecache_done_fn *done,
                      void *arg)
{
	struct fetch *f = calloc(1, sizeof *f);
	struct evhttp_request *req;
	struct evhttp_connection *conn;
	struct evkeyvalq *h;
	char uri[128], buf[300];
	if (!f)
		fatal("calloc");
	*f = (struct fetch){.ic = ic, .done = done, .arg = arg};
	snprintf(f->digest, sizeof f->digest, "%s", digest);
	snprintf(f->path, sizeof f->path, "%s", path);
	snprintf(uri, sizeof uri, "/v1/blobs/%s", digest);
	req = evhttp_request_new(on_blob, f);
	h = evhttp_request_get_output_headers(req);
	snprintf(buf, sizeof buf, "%s:%d", ic->o.link->host, ic->o.link->port);
	evhttp_add_header(h, "Host", buf);
	if (ic->o.token && ic->o.token[0]) {
		snprintf(buf, sizeof buf, "Bearer %s", ic->o.token);
		evhttp_add_header(h, "Authorization", buf);
	}
	conn = blob_conn(ic);
	f->gen = ic->conn_gen;
	if (evhttp_make_request(conn, req, EVHTTP_REQ_GET, uri) < 0) {
		char why[256];
		snprintf(why, sizeof why, "cannot fetch image blob %.80s: cannot send the request", digest);
		done(arg, -EIO, why);
		free(f);
		return;
	}
	ic->in_flight++;
}
