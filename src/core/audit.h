/* audit — every mutating request (POST, PUT, DELETE, PATCH of the user routes; the nodes'
 * own heartbeats and reports are not) as one JSON line in DATA_DIR/audit.log (0600,
 * appended): who (user, project, role, or how it authenticated), the route, the path's id,
 * the result (HTTP status), when. Refused requests are recorded too. Each line also goes to
 * /v1/events for those who see every project (admins), as {"type": "audit", ...}.
 *
 * A request answered while it is dispatched is recorded at once; one answered later (a
 * create with ?wait, a log-in checked off the loop) when its answer is written. Tokens
 * and passwords are never in a line. Errors: opening says why in err; a failed write is
 * logged (at most once a minute) and the request goes on. */
#ifndef MICROVIM_AUDIT_H
#define MICROVIM_AUDIT_H

#include <event2/http.h>
#include <stddef.h>

#include "core/authz.h"

#define AUDIT_FILE "audit.log"

struct audit;
struct events;

struct audit *audit_open(const char *data_dir, struct events *events, char *err, size_t errlen);
void audit_close(struct audit *a);
/* After the handler of a mutating request returned. who: NULL when no token came. */
void audit_request(struct audit *a, struct evhttp_request *req, const char *route, const char *id,
                   const struct authz_principal *who);
/* The guard's on-reply: records a request whose answer came later. */
void audit_replied(struct audit *a, struct evhttp_request *req);

#endif
