/* corelink — see corelink.h. */
#include "node/corelink.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/http.h"

static int point_at(struct corelink *l, const char *url)
{
	char host[256];
	int port;
	if (http_parse_url(url, host, sizeof host, &port) < 0)
		return -EINVAL;
	snprintf(l->url, sizeof l->url, "%s", url);
	snprintf(l->host, sizeof l->host, "%s", host);
	l->port = port;
	l->gen++;
	return 0;
}

int corelink_init(struct corelink *l, const char *list, char *err, size_t errlen)
{
	memset(l, 0, sizeof *l);
	if (corelist_parse(&l->list, list, err, errlen) < 0)
		return -EINVAL;
	return point_at(l, corelist_current(&l->list));
}

bool corelink_failed(struct corelink *l, double *delay_s)
{
	const char *entry = corelist_current(&l->list);
	bool on_entry = strcmp(l->url, entry) == 0;
	*delay_s = 0;
	if (on_entry && l->list.n == 1)
		return false; /* nowhere else to go: the caller backs off, as before lists */
	/* from a redirect's leader the list goes on after the entry that redirected (a list of
	 * one: that entry again) */
	if (l->list.n == 1 || corelist_advance(&l->list))
		*delay_s = corelist_backoff_s(++l->rounds);
	point_at(l, corelist_current(&l->list));
	return true;
}

int corelink_redirect(struct corelink *l, const char *location)
{
	char base[CORELIST_URL_MAX], path[2048];
	if (corelist_redirect(location, "/", base, sizeof base, path, sizeof path) < 0 || strcmp(base, l->url) == 0)
		return -EINVAL; /* not a URL, or this core again: a loop, not a leader */
	return point_at(l, base);
}

void corelink_answered(struct corelink *l)
{
	l->rounds = 0;
	corelist_answered(&l->list);
}

bool corelink_tls(const struct corelink *l, bool *mixed)
{
	bool first = http_url_is_tls(l->list.urls[0]);
	*mixed = false;
	for (int i = 1; i < l->list.n; i++)
		if (http_url_is_tls(l->list.urls[i]) != first)
			*mixed = true;
	return first;
}
