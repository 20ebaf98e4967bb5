/* core/control — the control socket and `ringrelay ctl` (Postfix's postqueue, in part).
 *
 * The socket (`control: { path, mode }`, default SPOOL/control.sock, 0600) is a service of
 * the operator's thread (core/ops). A request is one line, at most CONTROL_LINE_MAX
 * octets: a command and its arguments. The answer is "ok" or "error: WHY" on its first
 * line, then the body; the daemon closes when it is done. Commands:
 *   status                 version, pid, uptime, workers, connections, queue, counters
 *   queue [--json]         the live queue, like mailq (messages until CONTROL_QUEUE_MAX recipients
 *                          per worker, the rest counted): each recipient's state (ready,
 *                          busy, deferred with its next try) and attempts
 *   flush [DOMAIN|QUEUEID] deferred recipients (all, of a domain, of a message) due now,
 *                          dead sites tried again (postqueue -f, -s, -i); a DOMAIN or
 *                          QUEUEID nothing matches is an error
 *   sites                  every ready queue with connections or mail: state (active,
 *                          idle, dead with the seconds to its retry, source_wait),
 *                          connections in use, window and limit, ready jobs, failures
 *   proxies                every pool server and (server, source) pair as the health
 *                          checker (worker 0) sees it: up or down and for how long,
 *                          checks, failures (by deliveries too), the latest reason
 *   reload                 SIGHUP, and the outcome once the main thread has it (at
 *                          most CONTROL_RELOAD_WAIT_MS): "reloaded" or an error
 *   help
 * What the queue holds is asked of every worker by letter (net/post) and answered by
 * letter; a connection that goes away meanwhile just drops the answers. While the
 * workers stop, commands that need them are answered "error: stopping". */
#ifndef CORE_CONTROL_H
#define CORE_CONTROL_H
#include <stdbool.h>

#include "cfg/config.h"

#define CONTROL_LINE_MAX 1024u
#define CONTROL_QUEUE_MAX 100000u          /* recipients per worker in one `queue` answer
                                              (whole messages: the one that crosses it
                                              is listed) */
#define CONTROL_CONNS_MAX 16u
#define CONTROL_REQUEST_MS 5000u          /* for the request line to come (core/ops) */
#define CONTROL_DEADLINE_MS 60000u         /* then for the answer to go */
#define CONTROL_CLIENT_TIMEOUT_S 30        /* ringrelay ctl gives up after */
#define CONTROL_RELOAD_WAIT_MS 20000u

struct ops_service;
struct net_loop;
struct worker;

struct ops_service *control_service(void);
/* The listening socket at cfg->control_path (a stale socket there, one nobody answers on,
 * is replaced; a live one is EADDRINUSE: another relay runs on this spool), mode
 * cfg->control_mode. fd or -errno. */
int control_open(const struct config *cfg);
/* Close fd (when >= 0) and remove the socket file (once opened). */
void control_close(int fd);
void control_loop_init(struct net_loop *l);     /* the operator's loop */
void control_worker_init(struct worker *w);     /* each worker's */
void control_worker_fini(struct worker *w);     /* after its loop: retries given up */
bool control_idle(void);                        /* no request waits for a worker */
/* The main thread begins a reload (a SIGHUP from anyone) and ends it (ok or not): `ctl
 * reload` waits for one that began after its own SIGHUP. */
void control_reload_begins(void);
void control_reloaded(bool ok);

/* `ringrelay ctl ARGS...` against the daemon of cfg: prints the body, returns the exit
 * status (0 ok, 1 an error answer or no daemon, 2 usage). Never waits longer than
 * CONTROL_CLIENT_TIMEOUT_S. */
int control_client(const struct config *cfg, int argc, char **argv);

#endif
