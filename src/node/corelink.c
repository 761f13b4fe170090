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
	char failed[CORELIST_URL_MAX];
	bool wrapped = false;
	*delay_s = 0;
	if (l->list.n == 1 && strcmp(l->url, corelist_current(&l->list)) == 0)
		return false; /* nowhere else to go: the caller backs off, as before lists */
	/* The list goes on after the entry in use (a list of one: that entry again), skipping
	 * the core that failed: reached through a redirect it is another entry, often the
	 * next one, and a stalled core takes a whole timeout to fail again. */
	snprintf(failed, sizeof failed, "%s", l->url);
	for (int i = 0; i < l->list.n; i++) {
		if (l->list.n == 1 || corelist_advance(&l->list))
			wrapped = true;
		if (strcmp(corelist_current(&l->list), failed) != 0)
			break;
	}
	if (wrapped)
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
