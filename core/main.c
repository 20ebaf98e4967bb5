/* ringrelay — main: the command line, start-up, signals (signalfd in this thread only),
 * configuration reload, graceful stop. Everything on the data path lives in the workers. */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <libgen.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "cfg/config.h"
#include "cfg/snapshot.h"
#include "core/connlimit.h"
#include "core/inbound.h"
#include "core/tlsout.h"
#include "core/log.h"
#include "core/control.h"
#include "core/ops.h"
#include "core/qid.h"
#include "core/spooldir.h"
#include "core/worker.h"
#include "net/listener.h"

#include "core/version.h"
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: ringrelay [-c FILE]            run in the foreground (logs to stderr)\n"
	        "       ringrelay --check [-c FILE]    validate the configuration\n"
	        "       ringrelay --queue [--json] [-c FILE]   list the queue\n"
	        "       ringrelay --show QUEUEID [-c FILE]     print a queued message\n"
	        "       ringrelay ctl [-c FILE] status|queue [--json]|sites|proxies|flush [DOMAIN|QUEUEID]|hold|release|delete|bounce ID|--all|reload|help\n"
	        "       ringrelay --version | --help\n"
	        "Without -c the embedded defaults are used (listen 127.0.0.1:2525, spool ./spool).\n");
}

static int mkdir_p(const char *path)
{
	char buf[4096];
	if (strlen(path) >= sizeof buf)
		return -ENAMETOOLONG;
	strcpy(buf, path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static unsigned sa_port(const struct sockaddr_storage *sa)
{
	return sa->ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)sa)->sin6_port)
	                                 : ntohs(((const struct sockaddr_in *)sa)->sin_port);
}

static void sa_set_port(struct sockaddr_storage *sa, unsigned port)
{
	if (sa->ss_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
}

/* Same listening address? Port 0 (ephemeral) in the new file matches the bound port. */
static bool same_listeners(const struct config *old, struct config *nw)
{
	if (old->nlisteners != nw->nlisteners)
		return false;
	for (size_t i = 0; i < nw->nlisteners; i++) {
		struct sockaddr_storage a = nw->listeners[i].addr;
		if (sa_port(&a) == 0)
			sa_set_port(&a, sa_port(&old->listeners[i].addr));
		if (a.ss_family != old->listeners[i].addr.ss_family ||
		    memcmp(&a, &old->listeners[i].addr, nw->listeners[i].addrlen) != 0)
			return false;
		nw->listeners[i].addr = a;
	}
	return true;
}

/* proxy_hosts_file watching. We watch the directories holding the files (editors and
 * deploy tools replace files by rename) and react only to a finished write
 * (IN_CLOSE_WRITE) or a rename into place (IN_MOVED_TO), never to a truncation, so a
 * half-written file is never loaded. */
struct watcher {
	int fd;
};

static void watch_rearm(struct watcher *wt, const struct config *cfg)
{
	if (wt->fd >= 0)
		close(wt->fd);
	wt->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (wt->fd < 0) {
		log_warn("event=inotify_failed error=\"%s\" note=\"proxy_hosts_file reloads on SIGHUP only\"",
		         strerror(errno));
		return;
	}
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const char *f = cfg->listeners[i].proxy_hosts_file;
		if (!f)
			continue;
		char dir[4096];
		snprintf(dir, sizeof dir, "%s", f);
		if (inotify_add_watch(wt->fd, dirname(dir), IN_CLOSE_WRITE | IN_MOVED_TO) < 0)
			log_warn("event=inotify_failed file=%s error=\"%s\"", f, strerror(errno));
	}
}

/* Does a name from an inotify event belong to one of the proxy_hosts_files? */
static bool watched_name(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const char *f = cfg->listeners[i].proxy_hosts_file;
		if (!f)
			continue;
		const char *base = strrchr(f, '/');
		if (strcmp(base ? base + 1 : f, name) == 0)
			return true;
	}
	return false;
}

static void proxy_hosts_reload(void)
{
	char err[1024];
	struct snapshot *s = snapshot_rebuild_proxy_hosts(snapshot_get(), err, sizeof err);
	if (!s) {
		char esc[2048];
		log_err("event=proxy_hosts_reload_failed keeping=old error=\"%s\"",
		        log_escape(esc, sizeof esc, err, strlen(err)));
		return;
	}
	uint64_t gen = s->generation;
	snapshot_publish(s);
	log_info("event=proxy_hosts_reloaded generation=%llu", (unsigned long long)gen);
}

/* Drain the inotify queue; reload once if any event named a watched file. */
static void watch_events(struct watcher *wt)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool hit = false;
	for (;;) {
		ssize_t n = read(wt->fd, buf, sizeof buf);
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
			if (ev->len > 0 && watched_name(snapshot_get()->cfg, ev->name))
				hit = true;
			p += sizeof *ev + ev->len;
		}
	}
	if (hit)
		proxy_hosts_reload();
}

static struct egress_rt *main_egress;   /* the workers' sources and pools (core/egress) */

/* The egress table of snapshot s, published before s is (so a worker that sees s finds its
 * transports' pools). Out of memory: the old one stays (logged). */
static void egress_renew(const struct snapshot *s)
{
	struct egress_tab *t = egress_build(s->cfg, s->generation, egress_now(main_egress));
	if (!t) {
		log_err("event=egress_failed error=\"out of memory\" note=\"sources and proxy pools "
		        "stay as they were\"");
		return;
	}
	egress_publish(main_egress, t);
}

/* The resolvers each worker's DNS channel was made with (core/queue: at start). */
static bool same_dns(const struct config *a, const struct config *b)
{
	if (a->ndns_servers != b->ndns_servers)
		return false;
	for (size_t i = 0; i < a->ndns_servers; i++)
		if (strcmp(a->dns_servers[i], b->dns_servers[i]) != 0)
			return false;
	return true;
}

static bool reload(const char *path, const struct config *cur)
{
	char err[1024];
	struct config *c = config_load(path, err, sizeof err);
	if (!c) {
		char esc[2048];
		log_err("event=reload_failed keeping=old error=\"%s\"",
		        log_escape(esc, sizeof esc, err, strlen(err)));
		return false;
	}
	if (!same_listeners(cur, c)) {
		log_err("event=reload_failed keeping=old error=\"listeners changed: a restart is needed to rebind\"");
		config_free(c);
		return false;
	}
	/* What the workers were started with cannot change under them: refused like the
	 * listeners, never taken and ignored. */
	const char *fixed = strcmp(cur->spool_path, c->spool_path) != 0 ? "spool.path"
	                  : cur->spool_sync != c->spool_sync           ? "spool.sync"
	                  : cur->workers != c->workers                 ? "workers"
	                  : !same_dns(cur, c)                          ? "dns.servers"
	                  : strcmp(cur->control_path, c->control_path) != 0 ||
	                    cur->control_mode != c->control_mode ? "control"
	                  : cur->metrics != c->metrics ||
	                    (c->metrics && (cur->metrics_addrlen != c->metrics_addrlen ||
	                                    memcmp(&cur->metrics_addr, &c->metrics_addr,
	                                           c->metrics_addrlen) != 0)) ? "metrics"
	                                                               : NULL;
	if (fixed) {
		log_err("event=reload_failed keeping=old error=\"%s changed: a restart is needed\"", fixed);
		config_free(c);
		return false;
	}
	/* New connections take the new certificate and key, and the transports' new CA
	 * files; the old ones keep theirs. When the second fails, the first goes back to
	 * the running configuration's files. */
	bool in_ok = inbound_tls_load(c, err, sizeof err) == 0;
	if (!in_ok || tlsout_load(c, err, sizeof err) < 0) {
		char esc[2048], again[256];
		if (in_ok && inbound_tls_load(cur, again, sizeof again) < 0)
			log_err("event=tls_restore_failed error=\"%s\"",
			        log_escape(esc, sizeof esc, again, strlen(again)));
		log_err("event=reload_failed keeping=old error=\"%s\"",
		        log_escape(esc, sizeof esc, err, strlen(err)));
		config_free(c);
		return false;
	}
	struct snapshot *s = snapshot_new(c);
	if (!s) {
		log_err("event=reload_failed keeping=old error=\"out of memory\"");
		return false;
	}
	uint64_t gen = s->generation;
	egress_renew(s);
	snapshot_publish(s);
	log_info("event=reloaded generation=%llu", (unsigned long long)gen);
	return true;
}

/* The start-up scan: every live message becomes a queue_recovered, given to the worker
 * whose segment holds it once their number is known. */
struct scan_ctx {
	struct queue_recovered *head;
	size_t n, open;
};

static char *view_dup(struct spoolrec_view v)
{
	char *p = malloc(v.len + 1);
	if (p) {
		memcpy(p, v.p, v.len);
		p[v.len] = '\0';
	}
	return p;
}

static int scan_msg(void *ctx, const struct spooldir_msg *sm)
{
	struct scan_ctx *x = ctx;
	const struct spoolrec_msg *m = sm->m;
	struct queue_recovered *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->nrcpt = m->nrcpt;
	r->rcpt = calloc(m->nrcpt ? m->nrcpt : 1, sizeof *r->rcpt);
	r->r = calloc(m->nrcpt ? m->nrcpt : 1, sizeof *r->r);
	r->sender = view_dup(m->sender);
	if (!r->rcpt || !r->r || !r->sender) {
		queue_recovered_free(r);
		return -ENOMEM;
	}
	snprintf(r->qid, sizeof r->qid, "%.*s", (int)m->qid.len, m->qid.p);
	r->arrival_s = m->arrival;
	r->flags = m->flags;
	r->seg_worker = sm->worker;
	r->loc = (struct spool_loc){ sm->seq, sm->off, sm->len };
	r->size = m->data.len;
	uint32_t off = 0;
	struct spoolrec_view v;
	for (size_t i = 0; i < m->nrcpt && spoolrec_next_rcpt(m, &off, &v); i++) {
		if (!(r->rcpt[i] = view_dup(v))) {
			queue_recovered_free(r);
			return -ENOMEM;
		}
		const struct spooldir_rcpt *st = &sm->rcpt[i];
		r->r[i].state = st->state == SPOOLREC_RS_DELIVERED ? QR_DELIVERED
		              : st->state == SPOOLREC_RS_BOUNCED   ? QR_BOUNCED : QR_OPEN;
		r->r[i].attempts = st->attempts;
		r->r[i].next_try_s = st->state == SPOOLREC_RS_DEFERRED ? st->next_try : 0;
		if (r->r[i].state == QR_OPEN)
			x->open++;
	}
	r->next = x->head;
	x->head = r;
	x->n++;
	return 0;
}

/* What the start-up scan could not read: a torn tail (a crash in the middle of a write,
 * never acknowledged) is information; damage followed by valid records is an error. */
static void scan_damage(void *ctx, const struct spooldir_damage *d)
{
	(void)ctx;
	if (d->cut_short)
		log_err("event=spool_cut_short segment=%s size=%llu note=\"torn or empty, and later "
		        "segments of its worker hold records: it lost its end to something other than "
		        "a crash while it was written; acknowledged mail in it may be gone\"",
		        d->segment, (unsigned long long)d->offset);
	else if (d->torn)
		log_info("event=spool_torn segment=%s offset=%llu dropped=%llu reason=\"%s\"",
		         d->segment, (unsigned long long)d->offset, (unsigned long long)d->octets,
		         spoolrec_strerror(d->err));
	else
		log_err("event=spool_corrupt segment=%s offset=%llu skipped=%llu reason=\"%s\"",
		        d->segment, (unsigned long long)d->offset, (unsigned long long)d->octets,
		        spoolrec_strerror(d->err));
}

static void server_free(struct server *srv)
{
	if (srv->recovered)
		for (unsigned i = 0; i < srv->nworkers; i++)
			queue_recovered_free(srv->recovered[i]);
	free(srv->recovered);
	srv->recovered = NULL;
	if (!srv->workers)
		return;
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];
		for (size_t l = 0; w->lis && l < w->nlis; l++)
			if (w->lis[l].fd >= 0)
				close(w->lis[l].fd);
		free(w->lis);
	}
	free(srv->workers);
	srv->workers = NULL;
	qid_blocks_close(&srv->qid_blocks);
}

/* Everything that can fail before the configuration is published; on failure the caller
 * still owns cfg. */
static int prepare(struct config *cfg, struct server *srv)
{
	int ret = mkdir_p(cfg->spool_path);
	if (ret < 0) {
		log_err("event=start_failed error=\"spool %s: %s\"", cfg->spool_path, strerror(-ret));
		return -1;
	}
	/* One relay per spool: two would write the same segment names. The lock lives as
	 * long as the process (the fd is never closed; the kernel drops it at exit). */
	char lockpath[4200];
	snprintf(lockpath, sizeof lockpath, "%s/.lock", cfg->spool_path);
	int lfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB) < 0) {
		log_err("event=start_failed error=\"spool %s: %s\"", cfg->spool_path,
		        errno == EWOULDBLOCK ? "in use by another ringrelay" : strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	struct spooldir_stats st = { 0 };
	const struct spooldir_ops scan_ops = { NULL, scan_damage, 1 };
	struct scan_ctx sx = { 0 };
	ret = spooldir_scan_state(cfg->spool_path, &scan_ops, scan_msg, &sx, &st);
	if (ret < 0) {
		queue_recovered_free(sx.head);
		log_err("event=start_failed error=\"spool scan %s: %s\"", cfg->spool_path, strerror(-ret));
		return -1;
	}
	log_info("event=spool_scan path=%s segments=%zu live=%zu done=%zu torn_segments=%zu torn_bytes=%llu "
	         "corrupt_regions=%zu corrupt_bytes=%llu unknown_records=%zu",
	         cfg->spool_path, st.segments, st.live, st.done, st.torn,
	         (unsigned long long)st.torn_bytes, st.corrupt,
	         (unsigned long long)st.corrupt_bytes, st.unknown);
	log_info("event=queue_rebuilt messages=%zu recipients_open=%zu voided=%zu finished=%zu outcomes=%zu duplicates=%zu",
	         sx.n, sx.open, st.voided, st.finished, st.outcomes, st.duplicates);
	if (st.trimmed || st.removed)
		log_info("event=spool_trim path=%s cut=%zu removed=%zu freed=%llu note=\"space allocated ahead by a process that did not stop cleanly\"",
		         cfg->spool_path, st.trimmed, st.removed, (unsigned long long)st.trimmed_bytes);
	if (!cfg->spool_sync)
		log_warn("event=spool_sync_off note=\"a 250 no longer means the message is on disk\"");
	connlimit_init();
	ret = qid_blocks_open(&srv->qid_blocks, cfg->spool_path);
	if (ret < 0) {
		queue_recovered_free(sx.head);
		log_err("event=start_failed error=\"queue id blocks %s/.qid: %s\"%s", cfg->spool_path,
		        strerror(-ret), ret == -EOVERFLOW || ret == -EINVAL
		                ? " note=\"the file does not hold a queue id counter (damaged?); never "
		                  "set it lower than it was, or queue ids repeat\"" : "");
		return -1;
	}

	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	srv->nworkers = cfg->workers ? cfg->workers : (unsigned)(ncpu > 0 ? ncpu : 1);
	srv->spool_dir = cfg->spool_path;
	srv->spool_sync = cfg->spool_sync;
	srv->workers = calloc(srv->nworkers, sizeof *srv->workers);
	srv->recovered = calloc(srv->nworkers, sizeof *srv->recovered);
	if (!srv->workers || !srv->recovered) {
		queue_recovered_free(sx.head);
		return -1;
	}
	/* Each message to the worker whose segment holds it (its outcome notes then go to
	 * that worker's segments, which reclaim needs: core/spool.h); a segment of a worker
	 * index that no longer exists (fewer workers now), k, to worker k % workers. */
	while (sx.head) {
		struct queue_recovered *r = sx.head;
		sx.head = r->next;
		unsigned wi = r->seg_worker % srv->nworkers;
		r->next = srv->recovered[wi];
		srv->recovered[wi] = r;
	}
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];
		w->id = i;
		w->cpu = ncpu > 0 ? (int)(i % (unsigned)ncpu) : -1;
		w->lis = calloc(cfg->nlisteners, sizeof *w->lis);
		if (!w->lis)
			return -1;
		w->nlis = cfg->nlisteners;
		for (size_t l = 0; l < cfg->nlisteners; l++)
			w->lis[l].fd = w->lis[l].acc.fd = -1;
	}
	for (size_t l = 0; l < cfg->nlisteners; l++) {
		struct config_listener *lc = &cfg->listeners[l];
		if (sa_port(&lc->addr) != 0 && (ret = listener_probe(&lc->addr, lc->addrlen)) < 0) {
			char a[80];
			listener_fmt((struct sockaddr *)&lc->addr, a, sizeof a);
			log_err("event=start_failed error=\"listen %s: %s\"%s", a, strerror(-ret),
			        ret == -EADDRINUSE ? " note=\"another program, or another ringrelay, listens there\"" : "");
			return -1;
		}
		for (unsigned i = 0; i < srv->nworkers; i++) {
			int fd = listener_open(&lc->addr, lc->addrlen);   /* port 0 -> the bound one */
			char a[80];
			listener_fmt((struct sockaddr *)&lc->addr, a, sizeof a);
			if (fd < 0) {
				log_err("event=start_failed error=\"listen %s: %s\"", a, strerror(-fd));
				return -1;
			}
			srv->workers[i].lis[l].fd = fd;
			srv->workers[i].lis[l].idx = (unsigned)l;
			if (i == 0)
				log_info("event=listen id=%s addr=%s proxy_protocol=%s", lc->id, a,
				         lc->proxy_protocol == CONFIG_PROXY_OFF ? "off" :
				         lc->proxy_protocol == CONFIG_PROXY_TRUSTED ? "trusted" : "required");
		}
	}
	return 0;
}


/* The allocator (jemalloc in the release build) tunes for a daemon that holds a large
 * queue: freed pages go back to the system within a couple of seconds, from a background
 * thread, instead of staying resident until their arena runs again. */
const char *malloc_conf = "background_thread:true,dirty_decay_ms:2000,muzzy_decay_ms:0";

/* jemalloc's control call, when jemalloc is the allocator (weak: absent under libc's). */
extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
	__attribute__((weak));

/* Give back to the system what the start-up scan used and freed: its messages were built
 * by this thread and taken over (and freed) by the workers, and this thread's arena
 * would otherwise keep those pages resident for good. */
static void give_back_memory(void)
{
	if (mallctl)
		mallctl("arena.4096.purge", NULL, NULL, NULL, 0);   /* 4096: every arena */
	else
		malloc_trim(0);
}

static int run(const char *path, struct config *cfg)
{
	struct server srv = { 0 };
	char tls_err[512];
	if (inbound_tls_load(cfg, tls_err, sizeof tls_err) < 0 ||
	    tlsout_load(cfg, tls_err, sizeof tls_err) < 0) {
		char esc[1024];
		log_err("event=start_failed error=\"tls: %s\"",
		        log_escape(esc, sizeof esc, tls_err, strlen(tls_err)));
		inbound_tls_fini();
		tlsout_fini();
		config_free(cfg);
		return EXIT_RUNTIME;
	}
	if (prepare(cfg, &srv) < 0) {
		server_free(&srv);
		config_free(cfg);
		inbound_tls_fini();
		tlsout_fini();
		return EXIT_RUNTIME;
	}
	struct snapshot *snap = snapshot_new(cfg);      /* owns cfg from here on */
	if (!snap) {
		server_free(&srv);
		inbound_tls_fini();
		tlsout_fini();
		return EXIT_RUNTIME;
	}
	main_egress = &srv.egress;
	egress_renew(snap);
	snapshot_publish(snap);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);   /* blocked since main() began */
	int ret = sfd < 0 ? -errno : worker_start_all(&srv);
	if (ret == 0)
		give_back_memory();            /* the scan's messages are the workers' now */
	const char *what = "workers";
	if (ret == 0)
		ret = ops_start(&srv, snapshot_get()->cfg, &what);   /* control socket, metrics */
	if (ret < 0) {
		log_err("event=start_failed error=\"%s: %s\"", what, strerror(-ret));
		worker_stop_all(&srv);
		server_free(&srv);
		if (sfd >= 0)
			close(sfd);
		egress_fini(&srv.egress);
		snapshot_publish(NULL);
		inbound_tls_fini();
		tlsout_fini();
		return EXIT_RUNTIME;
	}
	log_info("event=ready version=%s workers=%u config=%s", RINGRELAY_VERSION, srv.nworkers,
	         path ? path : "(defaults)");
	/* systemd (Type=notify): ready once every listener is bound and every worker runs;
	 * without NOTIFY_SOCKET these do nothing */
	sd_notifyf(0, "READY=1\nSTATUS=ready: %u workers, config %s", srv.nworkers,
	           path ? path : "(defaults)");

	struct watcher wt = { .fd = -1 };
	watch_rearm(&wt, snapshot_get()->cfg);
	for (;;) {
		struct pollfd pfd[2] = { { .fd = sfd, .events = POLLIN }, { .fd = wt.fd, .events = POLLIN } };
		if (poll(pfd, wt.fd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (wt.fd >= 0 && (pfd[1].revents & POLLIN))
			watch_events(&wt);
		if (!(pfd[0].revents & POLLIN))
			continue;
		struct signalfd_siginfo si;
		ssize_t n = read(sfd, &si, sizeof si);
		if (n != sizeof si) {
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			break;
		}
		if (si.ssi_signo == SIGHUP) {
			log_info("event=reload_requested");
			sd_notify(0, "RELOADING=1\nSTATUS=reloading");
			control_reload_begins();
			/* Only this thread publishes, so the current snapshot cannot go away here. */
			bool ok = reload(path, snapshot_get()->cfg);
			control_reloaded(ok);      /* for `ringrelay ctl reload` */
			sd_notifyf(0, "READY=1\nSTATUS=%s: %u workers, config %s",
			           ok ? "ready (reloaded)" : "ready (reload failed: the old configuration runs)",
			           srv.nworkers, path ? path : "(defaults)");
			watch_rearm(&wt, snapshot_get()->cfg);
			continue;
		}
		log_info("event=stop_requested signal=%s", si.ssi_signo == SIGTERM ? "TERM" : "INT");
		sd_notify(0, "STOPPING=1\nSTATUS=stopping: finishing transactions in flight");
		break;
	}
	if (wt.fd >= 0)
		close(wt.fd);
	worker_stop_all(&srv);
	ops_stop();
	server_free(&srv);
	close(sfd);
	egress_fini(&srv.egress);
	snapshot_publish(NULL);
	inbound_tls_fini();
	tlsout_fini();
	log_info("event=stopped");
	return 0;
}

int main(int argc, char **argv)
{
	/* First thing: the signals the daemon handles are blocked (they are read from a
	 * signalfd once it runs), so a SIGHUP or SIGTERM that comes during start-up waits
	 * instead of killing the process; SIGPIPE is ignored. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* ringrelay ctl [-c FILE] COMMAND [ARGS]: the control socket's client (its arguments
	 * are the command's, not ours: no getopt over them) */
	if (argc >= 2 && strcmp(argv[1], "ctl") == 0) {
		sigprocmask(SIG_UNBLOCK, &sigs, NULL);
		int a = 2;
		const char *cpath = NULL;
		if (argc >= 4 && strcmp(argv[2], "-c") == 0) {
			cpath = argv[3];
			a = 4;
		}
		char cerr[1024];
		struct config *ccfg = config_load(cpath, cerr, sizeof cerr);
		if (!ccfg) {
			fprintf(stderr, "%s\n", cerr);
			return EXIT_USAGE;
		}
		int rc = control_client(ccfg, argc - a, argv + a);
		config_free(ccfg);
		return rc;
	}
	enum { OPT_CHECK = 256, OPT_QUEUE, OPT_JSON, OPT_VERSION, OPT_SHOW };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, OPT_CHECK },
		{ "queue", no_argument, NULL, OPT_QUEUE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "show", required_argument, NULL, OPT_SHOW },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL, *show = NULL;
	bool check = false, queue = false, json = false;
	int o;
	while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': path = optarg; break;
		case OPT_CHECK: check = true; break;
		case OPT_QUEUE: queue = true; break;
		case OPT_JSON: json = true; break;
		case OPT_SHOW: show = optarg; break;
		case OPT_VERSION: printf("ringrelay %s\n", RINGRELAY_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (check || queue || show)
		sigprocmask(SIG_UNBLOCK, &sigs, NULL);   /* tools: ^C works as usual */
	if (optind != argc || (check + queue + (show != NULL)) > 1 || (json && !queue)) {
		usage(stderr);
		return EXIT_USAGE;
	}
	char err[1024];
	struct config *cfg = config_load(path, err, sizeof err);
	if (!cfg) {
		fprintf(stderr, "%s\n", err);
		return EXIT_USAGE;
	}
	if (check) {
		/* the certificates, keys and CA files too, as the daemon will load them: a file
		 * that is there but unusable (not PEM, a key of another certificate) fails here,
		 * not at start */
		char sum[512], terr[512];
		if (inbound_tls_load(cfg, terr, sizeof terr) < 0 || tlsout_load(cfg, terr, sizeof terr) < 0) {
			fprintf(stderr, "%s:0:0: tls: %s\n", path ? path : "(defaults)", terr);
			inbound_tls_fini();
			tlsout_fini();
			config_free(cfg);
			return EXIT_USAGE;
		}
		inbound_tls_fini();
		tlsout_fini();
		config_summary(cfg, sum, sizeof sum);
		printf("%s\n", sum);
		config_free(cfg);
		return 0;
	}
	if (show) {
		int ret = spooldir_show(cfg->spool_path, show, stdout);
		if (ret == -ENOENT)
			fprintf(stderr, "ringrelay: %s: no such message in the queue\n", show);
		else if (ret < 0)
			fprintf(stderr, "ringrelay: show %s: %s\n", show, strerror(-ret));
		config_free(cfg);
		return ret < 0 ? EXIT_RUNTIME : 0;
	}
	if (queue) {
		int ret = spooldir_list(cfg->spool_path, stdout, json);
		if (ret < 0)
			fprintf(stderr, "ringrelay: queue %s: %s\n", cfg->spool_path, strerror(-ret));
		config_free(cfg);
		return ret < 0 ? EXIT_RUNTIME : 0;
	}
	return run(path, cfg);
}
