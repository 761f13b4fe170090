/* os — what the façade's handlers share: OpenStack's error shapes, links, ids, times. */
#include "core/os.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/digest.h"
#include "common/http.h"
#include "common/log.h"

/* Nova's name of an error, by status (nova/api/openstack/wsgi.py's Fault). */
static const char *nova_fault_name(int status)
{
	switch (status) {
	case 400: return "badRequest";
	case 401: return "unauthorized";
	case 403: return "forbidden";
	case 404: return "itemNotFound";
	case 405: return "badMethod";
	case 406: return "notAcceptable";
	case 409: return "conflictingRequest";
	case 413: return "overLimit";
	case 415: return "badMediaType";
	case 429: return "overLimit";
	case 501: return "notImplemented";
	case 503: return "serviceUnavailable";
	default: return status >= 500 ? "computeFault" : "badRequest";
	}
}

static const char *status_title(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 409: return "Conflict";
	case 413: return "Request Entity Too Large";
	case 429: return "Too Many Requests";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	default: return status >= 500 ? "Internal Server Error" : "Bad Request";
	}
}

/* Neutron's type of an error: NetworkNotFound and the like, from the status. */
static const char *neutron_type(int status)
{
	switch (status) {
	case 404: return "NotFound";
	case 401: return "NotAuthorized";
	case 409: return "Conflict";
	default: return status >= 500 ? "InternalError" : "BadRequest";
	}
}

void os_reply_error(struct evhttp_request *req, enum os_service service, const struct mv_error *err)
{
	json_t *body;
	switch (service) {
	case OS_COMPUTE:
		body = json_pack("{s:{s:i, s:s}}", nova_fault_name(err->status), "code", err->status, "message",
		                 err->message);
		break;
	case OS_NETWORK:
		body = json_pack("{s:{s:s, s:s, s:s}}", "NeutronError", "type", neutron_type(err->status), "message",
		                 err->message, "detail", "");
		break;
	case OS_IMAGE: /* Glance's own errors are web pages; the same words, in JSON as clients parse it */
	case OS_IDENTITY:
	default:
		body = json_pack("{s:{s:i, s:s, s:s}}", "error", "code", err->status, "title", status_title(err->status),
		                 "message", err->message);
		break;
	}
	http_reply_json(req, err->status, body);
}

int os_read_body(struct evhttp_request *req, json_t **out, struct mv_error *err)
{
	if (http_read_json(req, out, err) < 0)
		return -1;
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return mv_fail(err, 400, "invalid_type", "the body must be a JSON object");
	}
	return 0;
}

json_t *os_links(const struct osapi *o, const char *versioned, const char *bookmark, const char *id)
{
	char self[512], mark[512];
	snprintf(self, sizeof self, "%s%s/%s", o->url, versioned, id);
	snprintf(mark, sizeof mark, "%s%s/%s", o->url, bookmark, id);
	return json_pack("[{s:s, s:s}, {s:s, s:s}]", "rel", "self", "href", self, "rel", "bookmark", "href", mark);
}

static void uuid_format(const unsigned char b[16], char out[OS_UUID_LEN + 1])
{
	snprintf(out, OS_UUID_LEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
	         b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

void os_uuid_of(const char *kind, const char *name, char out[OS_UUID_LEN + 1])
{
	char text[256], d[DIGEST_LEN + 1];
	unsigned char b[16];
	const char *hex;
	snprintf(text, sizeof text, "%s:%s", kind, name);
	digest_sha256(text, strlen(text), d);
	hex = digest_hex(d);
	for (int i = 0; i < 16; i++)
		sscanf(hex + 2 * i, "%2hhx", &b[i]);
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x50); /* version 5 (name-based, SHA) */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	uuid_format(b, out);
}

void os_uuid_random(char out[OS_UUID_LEN + 1])
{
	unsigned char b[16];
	if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
		fatal("getrandom");
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	uuid_format(b, out);
}

bool os_uuid_valid(const char *s)
{
	if (strlen(s) != OS_UUID_LEN)
		return false;
	for (int i = 0; i < OS_UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]) || !s[i])
			return false;
	}
	return true;
}

#define SERVER_ID_TAIL "-8000-000000000000"

void os_server_id(const char *instance_id, char out[OS_UUID_LEN + 1])
{
	snprintf(out, OS_UUID_LEN + 1, "%.8s-%.4s-%.4s" SERVER_ID_TAIL, instance_id, instance_id + 8,
	         instance_id + 12);
}

static bool hex16(const char *s)
{
	if (strlen(s) != MV_ID_LEN)
		return false;
	for (int i = 0; i < MV_ID_LEN; i++)
		if (!s[i] || !strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

bool os_instance_id(const char *server_id, char out[MV_ID_LEN + 1])
{
	char id[MV_ID_LEN + 1];
	if (os_uuid_valid(server_id) && strcmp(server_id + 18, SERVER_ID_TAIL) == 0) {
		snprintf(id, sizeof id, "%.8s%.4s%.4s", server_id, server_id + 9, server_id + 14);
		server_id = id;
	}
	if (!hex16(server_id))
		return false;
	snprintf(out, MV_ID_LEN + 1, "%s", server_id);
	return true;
}

void os_time(int64_t wall_us, char *buf, int len)
{
	time_t t = (time_t)(wall_us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, (size_t)len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
