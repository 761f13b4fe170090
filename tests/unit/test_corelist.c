/* test_corelist — the --core list (common/corelist.h): parsing and its messages, the
 * rotation with rounds and backoff, redirects; and the node's link (node/corelink.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/corelist.h"
#include "node/corelink.h"
#include "unit.h"

static void test_parse(void)
{
	struct corelist l;
	char err[600];
	CHECK_EQ_INT(corelist_parse(&l, "http://127.0.0.1:4650", err, sizeof err), 0);
	CHECK_EQ_INT(l.n, 1);
	CHECK_STR(corelist_current(&l), "http://127.0.0.1:4650");
	CHECK_EQ_INT(corelist_parse(&l, "http://a:1, https://b:2 ,http://c:3", err, sizeof err), 0);
	CHECK_EQ_INT(l.n, 3);
	CHECK_STR(l.urls[1], "https://b:2");
	CHECK_STR(l.urls[2], "http://c:3");

	CHECK_EQ_INT(corelist_parse(&l, "http://a:1,127.0.0.1:4651", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "entry 2 of 2") && strstr(err, "use http://127.0.0.1:4651"));
	CHECK_EQ_INT(corelist_parse(&l, "127.0.0.1:4650", err, sizeof err), -EINVAL);
	CHECK(!strstr(err, "entry") && strstr(err, "lacks its scheme"));
	CHECK_EQ_INT(corelist_parse(&l, "http://a:1,,http://b:2", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "entry 2 of 3") && strstr(err, "empty"));
	CHECK_EQ_INT(corelist_parse(&l, "http://a:1,", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "entry 2 of 2"));
	CHECK_EQ_INT(corelist_parse(&l, "", err, sizeof err), -EINVAL);
	CHECK_EQ_INT(corelist_parse(&l, "http://a:1,http://a:1", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "again"));
	CHECK_EQ_INT(corelist_parse(&l, "http://a:1/v1,http://b:2", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "entry 1 of 2") && strstr(err, "no path"));
	char many[2000] = "";
	for (int i = 0; i <= CORELIST_MAX; i++)
		snprintf(many + strlen(many), sizeof many - strlen(many), "%shttp://h:%d", i ? "," : "", 1000 + i);
	CHECK_EQ_INT(corelist_parse(&l, many, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "at most 16"));
}

static void test_rotation(void)
{
	struct corelist l;
	char err[200];
	CHECK_EQ_INT(corelist_parse(&l, "http://a:1,http://b:2,http://c:3", err, sizeof err), 0);
	CHECK(!corelist_advance(&l)); /* a fails: b */
	CHECK_STR(corelist_current(&l), "http://b:2");
	CHECK(!corelist_advance(&l)); /* b fails: c */
	CHECK(corelist_advance(&l));  /* c fails: a round is over */
	CHECK_STR(corelist_current(&l), "http://a:1");
	CHECK(!corelist_advance(&l));
	corelist_answered(&l); /* b answered: a new round starts there */
	CHECK(!corelist_advance(&l));
	CHECK(!corelist_advance(&l));
	CHECK(corelist_advance(&l));
	CHECK_STR(corelist_current(&l), "http://b:2");
	CHECK(corelist_backoff_s(1) == CORELIST_BACKOFF_MIN_S);
	CHECK(corelist_backoff_s(2) == 2 * CORELIST_BACKOFF_MIN_S);
	CHECK(corelist_backoff_s(50) == CORELIST_BACKOFF_MAX_S);
	CHECK(corelist_status_fails_over(0) && corelist_status_fails_over(503) && corelist_status_fails_over(502));
	CHECK(!corelist_status_fails_over(500) && !corelist_status_fails_over(404) && !corelist_status_fails_over(307));
}

static void test_redirect(void)
{
	char base[CORELIST_URL_MAX], path[256];
	CHECK_EQ_INT(corelist_redirect("http://10.0.0.2:4650", "/v1/x?a=1", base, sizeof base, path, sizeof path), 0);
	CHECK_STR(base, "http://10.0.0.2:4650");
	CHECK_STR(path, "/v1/x?a=1");
	CHECK_EQ_INT(corelist_redirect("http://10.0.0.2:4650/", "/v1/x", base, sizeof base, path, sizeof path), 0);
	CHECK_STR(path, "/v1/x");
	CHECK_EQ_INT(corelist_redirect("https://l:1/v1/nodes/register", "/v1/x", base, sizeof base, path, sizeof path), 0);
	CHECK_STR(base, "https://l:1");
	CHECK_STR(path, "/v1/nodes/register");
	CHECK_EQ_INT(corelist_redirect("/v1/x", "/v1/x", base, sizeof base, path, sizeof path), -EINVAL);
	CHECK_EQ_INT(corelist_redirect("http://:1", "/", base, sizeof base, path, sizeof path), -EINVAL);
	char key[CORELIST_IDEM_KEY_LEN + 1], key2[CORELIST_IDEM_KEY_LEN + 1];
	corelist_idem_key(key);
	corelist_idem_key(key2);
	CHECK_EQ_INT((int)strlen(key), CORELIST_IDEM_KEY_LEN);
	CHECK(strcmp(key, key2) != 0);
}

static void test_link(void)
{
	struct corelink l;
	char err[200];
	double delay;
	unsigned gen;
	bool mixed;
	/* one core: it never moves (the agent backs off, as before lists) */
	CHECK_EQ_INT(corelink_init(&l, "http://a:1", err, sizeof err), 0);
	CHECK(!corelink_failed(&l, &delay));
	CHECK_STR(l.host, "a");
	/* a follower's redirect to the leader, then the leader fails: back to the entry, after a wait */
	CHECK_EQ_INT(corelink_redirect(&l, "http://leader:9/v1/nodes/register"), 0);
	CHECK_STR(l.url, "http://leader:9");
	CHECK_EQ_INT(l.port, 9);
	CHECK_EQ_INT(corelink_redirect(&l, "http://leader:9"), -EINVAL); /* to itself: a loop */
	CHECK(corelink_failed(&l, &delay) && delay > 0);
	CHECK_STR(l.url, "http://a:1");

	CHECK_EQ_INT(corelink_init(&l, "http://a:1,http://b:2", err, sizeof err), 0);
	gen = l.gen;
	CHECK(corelink_failed(&l, &delay) && delay == 0); /* a: b at once */
	CHECK_STR(l.url, "http://b:2");
	CHECK(l.gen != gen);
	CHECK(corelink_failed(&l, &delay) && delay == CORELIST_BACKOFF_MIN_S); /* a round: wait */
	CHECK(corelink_failed(&l, &delay) && delay == 0);
	CHECK(corelink_failed(&l, &delay) && delay == 2 * CORELIST_BACKOFF_MIN_S);
	corelink_answered(&l);
	CHECK(corelink_failed(&l, &delay) && delay == 0);
	CHECK(!corelink_tls(&l, &mixed) && !mixed);

	/* the entry a redirected to (b, the next entry) fails: not b again, but c */
	CHECK_EQ_INT(corelink_init(&l, "http://a:1,http://b:2,http://c:3", err, sizeof err), 0);
	CHECK_EQ_INT(corelink_redirect(&l, "http://b:2/v1/nodes/register"), 0);
	corelink_answered(&l);
	CHECK(corelink_failed(&l, &delay) && delay == 0);
	CHECK_STR(l.url, "http://c:3");
	/* c redirects to a, which fails: b next (c is the entry in use, a the failed core) */
	CHECK_EQ_INT(corelink_redirect(&l, "http://a:1"), 0);
	CHECK(corelink_failed(&l, &delay));
	CHECK_STR(l.url, "http://b:2");
	CHECK_EQ_INT(corelink_init(&l, "https://a:1,http://b:2", err, sizeof err), 0);
	CHECK(corelink_tls(&l, &mixed) && mixed);
}

int main(void)
{
	RUN(test_parse);
	RUN(test_rotation);
	RUN(test_redirect);
	RUN(test_link);
	UNIT_END();
}
