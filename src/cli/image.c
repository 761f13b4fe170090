/* image — `microvim image add|ls|rm`: upload kernel and initrd blobs by content address,
 * then register the image that names them; and `microvim pool create|ls|rm`, the warm
 * pools that keep guests of an image booted and paused (docs/API.md, "Warm pools"). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/corelist.h"
#include "common/digest.h"
#include "common/fs.h"
#include "common/http.h"
#include "common/model.h"
#include "common/tls.h"

#define BLOB_MAX (64 << 20)

static const char *command_name = "image"; /* in messages: image or pool */

struct image_client {
	struct corelist cores;
	char *token;
	bool json;
};

/* One call to the list of cores (common/corelist.h): a blob PUT is content-addressed and
 * an image's add or removal says what it found, so each may be sent again to another. */
static int call(struct image_client *ic, const char *method, const char *path, const json_t *body, const void *raw,
                size_t raw_len, double timeout_s, struct http_response *r, char *err, size_t errlen)
{
	struct corelist_request rq = {.method = method, .path = path, .token = ic->token, .body = body, .raw = raw,
	                              .raw_len = raw_len, .timeout_s = timeout_s,
	                              .note = strcmp(command_name, "pool") == 0 ? "microvim pool" : "microvim image"};
	return corelist_call(&ic->cores, &rq, r, err, errlen);
}

static int read_token(struct image_client *ic, const char *path)
{
	int rc;
	free(ic->token);
	ic->token = NULL;
	if ((rc = fs_read_token(path, &ic->token)) < 0) {
		fprintf(stderr, "microvim %s: cannot read --token-file %s: %s\n", command_name, path, strerror(-rc));
		return -1;
	}
	return 0;
}

static int answer(int rc, struct http_response *r, const char *err, int ok1, int ok2, json_t **out)
{
	json_t *b;
	if (rc < 0) {
		fprintf(stderr, "microvim %s: %s\n", command_name, err);
		return EXIT_UNREACHABLE;
	}
	b = r->len ? json_loads(r->body, 0, NULL) : NULL;
	if (r->status != ok1 && r->status != ok2) {
		const json_t *e = json_object_get(b, "error");
		fprintf(stderr, "microvim %s: %d %s: %s\n", command_name, r->status,
		        json_string_value(json_object_get(e, "code")) ?: "error",
		        json_string_value(json_object_get(e, "message")) ?: "(no message)");
		json_decref(b);
		return EXIT_FAILED;
	}
	if (out)
		*out = b;
	else
		json_decref(b);
	return EXIT_OK;
}

/* Uploads a file as a blob; digest gets its address. */
static int upload(struct image_client *ic, const char *file, char digest[DIGEST_LEN + 1])
{
	char *data, path[128], err[768];
	size_t len;
	struct http_response r;
	int rc = fs_read_file(file, BLOB_MAX, &data, &len);
	if (rc < 0) {
		fprintf(stderr, "microvim image: cannot read %s: %s\n", file, rc == -EFBIG ? "larger than 64 MiB" : strerror(-rc));
		return EXIT_FAILED;
	}
	digest_sha256(data, len, digest);
	snprintf(path, sizeof path, "/v1/blobs/%s", digest);
	rc = call(ic, "PUT", path, NULL, data, len, 120, &r, err, sizeof err);
	free(data);
	rc = answer(rc, &r, err, 200, 201, NULL);
	http_response_free(&r);
	return rc;
}

static int image_add(struct image_client *ic, const char *name, const char *kernel, const char *initrd,
                     const char *cmdline, const char *xen_type)
{
	char kd[DIGEST_LEN + 1], id[DIGEST_LEN + 1], err[768];
	struct http_response r;
	json_t *body, *out = NULL;
	int rc;

	if ((rc = upload(ic, kernel, kd)) != EXIT_OK || (initrd && (rc = upload(ic, initrd, id)) != EXIT_OK))
		return rc;
	body = json_pack("{s:s, s:s}", "name", name, "kernel", kd);
	if (initrd)
		json_object_set_new(body, "initrd", json_string(id));
	if (cmdline)
		json_object_set_new(body, "cmdline", json_string(cmdline));
	if (xen_type)
		json_object_set_new(body, "xen_type", json_string(xen_type));
	rc = call(ic, "POST", "/v1/images", body, NULL, 0, 30, &r, err, sizeof err);
	json_decref(body);
	rc = answer(rc, &r, err, 201, 201, &out);
	http_response_free(&r);
	if (rc == EXIT_OK) {
		if (ic->json)
			json_dumpf(out, stdout, JSON_INDENT(2)), putchar('\n');
		else
			printf("image %s: kernel %s%s%s\n", name, kd, initrd ? ", initrd " : "", initrd ? id : "");
	}
	json_decref(out);
	return rc;
}

static int image_ls(struct image_client *ic)
{
	char err[768];
	struct http_response r;
	json_t *out = NULL, *img;
	size_t i;
	int rc = call(ic, "GET", "/v1/images", NULL, NULL, 0, 30, &r, err, sizeof err);
	rc = answer(rc, &r, err, 200, 200, &out);
	http_response_free(&r);
	if (rc != EXIT_OK)
		return rc;
	if (ic->json) {
		json_dumpf(out, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		printf("%-24s  %-20s  %10s  %s\n", "NAME", "KERNEL", "SIZE", "CMDLINE");
		json_array_foreach(json_object_get(out, "images"), i, img)
			printf("%-24s  %.20s  %10lld  %s\n", json_string_value(json_object_get(img, "name")),
			       json_string_value(json_object_get(img, "kernel")),
			       (long long)json_integer_value(json_object_get(img, "kernel_size")),
			       json_string_value(json_object_get(img, "cmdline")) ?: "");
	}
	json_decref(out);
	return EXIT_OK;
}

static int image_rm(struct image_client *ic, const char *name)
{
	char err[768], path[128];
	struct http_response r;
	int rc;
	snprintf(path, sizeof path, "/v1/images/%s", name);
	rc = call(ic, "DELETE", path, NULL, NULL, 0, 30, &r, err, sizeof err);
	rc = answer(rc, &r, err, 204, 204, NULL);
	http_response_free(&r);
	if (rc == EXIT_OK && !ic->json)
		printf("image %s removed\n", name);
	return rc;
}

int cmd_image(int argc, char **argv)
{
	static const struct option opts[] = {
		{"core", required_argument, NULL, 'c'}, {"token-file", required_argument, NULL, 't'},
		{"json", no_argument, NULL, 'j'},        {"kernel", required_argument, NULL, 'k'},
		{"initrd", required_argument, NULL, 'i'}, {"cmdline", required_argument, NULL, 'l'},
		{"xen-type", required_argument, NULL, 'x'}, {"tls-ca", required_argument, NULL, 'a'},
		{NULL, 0, NULL, 0},
	};
	struct image_client ic = {0};
	const char *core = getenv("MICROVIM_CORE") ?: "http://127.0.0.1:4650";
	const char *kernel = NULL, *initrd = NULL, *cmdline = NULL, *xen_type = NULL, *verb;
	const char *core_from = getenv("MICROVIM_CORE") ? "$MICROVIM_CORE" : "the default core URL";
	int opt, rc = EXIT_USAGE;

	if (getenv("MICROVIM_TOKEN") && !(ic.token = strdup(getenv("MICROVIM_TOKEN"))))
		return EXIT_FAILED;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': core = optarg; core_from = "--core"; break;
		case 't': if (read_token(&ic, optarg) < 0) goto out; break;
		case 'j': ic.json = true; break;
		case 'a': http_client_tls_files(&(struct tls_files){.ca = optarg}); break;
		case 'k': kernel = optarg; break;
		case 'i': initrd = optarg; break;
		case 'l': cmdline = optarg; break;
		case 'x': xen_type = optarg; break;
		default: cli_usage("image", 1); goto out;
		}
	}
	if (cli_core_list(&ic.cores, core, core_from) < 0)
		goto out;
	verb = optind < argc ? argv[optind] : "";
	if (strcmp(verb, "add") == 0 && optind + 2 == argc && kernel && name_valid(argv[optind + 1]))
		rc = image_add(&ic, argv[optind + 1], kernel, initrd, cmdline, xen_type);
	else if (strcmp(verb, "ls") == 0 && optind + 1 == argc)
		rc = image_ls(&ic);
	else if (strcmp(verb, "rm") == 0 && optind + 2 == argc)
		rc = image_rm(&ic, argv[optind + 1]);
	else
		cli_usage("image", 1);
out:
	free(ic.token);
	return rc;
}

/* ---- pools ---- */

struct pool_args {
	const char *image, *driver, *ready, *accel, *machine;
	double vcpus;
	long long memory_mb, size;
};

static int pool_create(struct image_client *ic, const char *name, const struct pool_args *pa)
{
	char err[512];
	struct http_response r;
	json_t *out = NULL, *body = json_pack("{s:s, s:s, s:s, s:I}", "name", name, "driver", pa->driver, "image",
	                                      pa->image, "size", (json_int_t)pa->size), *res = json_object();
	int rc;
	if (pa->ready)
		json_object_set_new(body, "ready", json_pack("{s:s}", "serial", pa->ready));
	if (pa->vcpus > 0)
		json_object_set_new(res, "vcpus", json_real(pa->vcpus));
	if (pa->memory_mb > 0)
		json_object_set_new(res, "memory_mb", json_integer(pa->memory_mb));
	if (json_object_size(res))
		json_object_set(body, "resources", res);
	json_decref(res);
	if (pa->accel || pa->machine) {
		json_t *cfg = json_object();
		if (pa->accel)
			json_object_set_new(cfg, "accel", json_string(pa->accel));
		if (pa->machine)
			json_object_set_new(cfg, "machine", json_string(pa->machine));
		json_object_set_new(body, "config", cfg);
	}
	rc = call(ic, "POST", "/v1/pools", body, NULL, 0, 30, &r, err, sizeof err);
	json_decref(body);
	rc = answer(rc, &r, err, 201, 201, &out);
	http_response_free(&r);
	if (rc == EXIT_OK) {
		if (ic->json)
			json_dumpf(out, stdout, JSON_INDENT(2)), putchar('\n');
		else
			printf("pool %s: %lld warm guests of image %s (%s), booting on the nodes\n", name, pa->size, pa->image,
			       pa->driver);
	}
	json_decref(out);
	return rc;
}

static int pool_ls(struct image_client *ic)
{
	char err[512];
	struct http_response r;
	json_t *out = NULL, *p;
	size_t i;
	int rc = call(ic, "GET", "/v1/pools", NULL, NULL, 0, 30, &r, err, sizeof err);
	rc = answer(rc, &r, err, 200, 200, &out);
	http_response_free(&r);
	if (rc != EXIT_OK)
		return rc;
	if (ic->json) {
		json_dumpf(out, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		printf("%-24s  %-8s  %-20s  %5s  %5s  %7s  %s\n", "NAME", "DRIVER", "IMAGE", "SIZE", "WARM", "BOOTING",
		       "READY MARKER");
		json_array_foreach(json_object_get(out, "pools"), i, p)
			printf("%-24s  %-8s  %-20s  %5lld  %5lld  %7lld  %s\n", json_string_value(json_object_get(p, "name")),
			       json_string_value(json_object_get(p, "driver")), json_string_value(json_object_get(p, "image")),
			       (long long)json_integer_value(json_object_get(p, "size")),
			       (long long)json_integer_value(json_object_get(p, "warm")),
			       (long long)json_integer_value(json_object_get(p, "booting")),
			       json_string_value(json_object_get(json_object_get(p, "ready"), "serial")) ?: "");
	}
	json_decref(out);
	return EXIT_OK;
}

static int pool_rm(struct image_client *ic, const char *name)
{
	char err[512], path[128];
	struct http_response r;
	int rc;
	snprintf(path, sizeof path, "/v1/pools/%s", name);
	rc = call(ic, "DELETE", path, NULL, NULL, 0, 30, &r, err, sizeof err);
	rc = answer(rc, &r, err, 204, 204, NULL);
	http_response_free(&r);
	if (rc == EXIT_OK && !ic->json)
		printf("pool %s removed (the nodes stop its guests)\n", name);
	return rc;
}

int cmd_pool(int argc, char **argv)
{
	static const struct option opts[] = {
		{"core", required_argument, NULL, 'c'},   {"token-file", required_argument, NULL, 't'},
		{"json", no_argument, NULL, 'j'},          {"tls-ca", required_argument, NULL, 'a'},
		{"image", required_argument, NULL, 'i'},   {"driver", required_argument, NULL, 'd'},
		{"size", required_argument, NULL, 's'},    {"ready", required_argument, NULL, 'r'},
		{"vcpus", required_argument, NULL, 'v'},   {"memory-mb", required_argument, NULL, 'm'},
		{"accel", required_argument, NULL, 'x'},   {"machine", required_argument, NULL, 'M'},
		{NULL, 0, NULL, 0},
	};
	struct image_client ic = {0};
	const char *core = getenv("MICROVIM_CORE") ?: "http://127.0.0.1:4650";
	struct pool_args pa = {.driver = "qemu"};
	const char *core_from = getenv("MICROVIM_CORE") ? "$MICROVIM_CORE" : "the default core URL", *verb;
	char *end;
	int opt, rc = EXIT_USAGE;

	command_name = "pool";
	if (getenv("MICROVIM_TOKEN") && !(ic.token = strdup(getenv("MICROVIM_TOKEN"))))
		return EXIT_FAILED;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': core = optarg; core_from = "--core"; break;
		case 't': if (read_token(&ic, optarg) < 0) goto out; break;
		case 'j': ic.json = true; break;
		case 'a': http_client_tls_files(&(struct tls_files){.ca = optarg}); break;
		case 'i': pa.image = optarg; break;
		case 'd': pa.driver = optarg; break;
		case 'r': pa.ready = optarg; break;
		case 'x': pa.accel = optarg; break;
		case 'M': pa.machine = optarg; break;
		case 's':
		case 'm':
			errno = 0;
			*(opt == 's' ? &pa.size : &pa.memory_mb) = strtoll(optarg, &end, 10);
			if (errno || end == optarg || *end) {
				fprintf(stderr, "microvim pool: --%s takes an integer\n", opt == 's' ? "size" : "memory-mb");
				goto out;
			}
			break;
		case 'v':
			pa.vcpus = strtod(optarg, &end);
			if (end == optarg || *end) {
				fprintf(stderr, "microvim pool: --vcpus takes a number\n");
				goto out;
			}
			break;
		default: cli_usage("pool", 1); goto out;
		}
	}
	if (cli_core_list(&ic.cores, core, core_from) < 0)
		goto out;
	verb = optind < argc ? argv[optind] : "";
	if (strcmp(verb, "create") == 0 && optind + 2 == argc && pa.image && pa.size > 0)
		rc = pool_create(&ic, argv[optind + 1], &pa); /* the core checks every value */
	else if (strcmp(verb, "ls") == 0 && optind + 1 == argc)
		rc = pool_ls(&ic);
	else if (strcmp(verb, "rm") == 0 && optind + 2 == argc)
		rc = pool_rm(&ic, argv[optind + 1]);
	else
		cli_usage("pool", 1);
out:
	free(ic.token);
	return rc;
}
