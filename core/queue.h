/* core/queue — what a worker has to deliver, and when.
 *
 * Messages. Every message this worker accepted (or adopted from the start-up scan) is a
 * queue_msg: its envelope, per-recipient state (open, busy in a delivery, delivered,
 * bounced, deferred until a time), where its record lies in the spool, and its body
 * while it is in memory. Bodies are kept in memory up to QUEUE_BODY_BUDGET octets for
 * the whole worker; past that, or for a message adopted at start-up, the body is read
 * back from the spool (an io_uring read of the record, its CRC checked, unscrambled)
 * when a delivery needs it, and dropped again after. So a backlog of a million queued
 * messages holds envelopes, not bodies.
 *
 * Jobs. The open recipients of a message are grouped by route: one job per (message,
 * transport, next hop or domain), at most QUEUE_JOB_RCPT_MAX recipients each. A job waits
 * on the loop's timer wheel until its next try (the scheduled queue), then, for an `mx`
 * transport, the next hop's MX hosts are looked up (net/dns, cached); then it joins the
 * ready queue of its site. A site is keyed "transport/sitekey": the smarthost's
 * "[host]:port", or the sorted MX host names of the domain (net/dns's site key), so that
 * the domains of one mailbox provider share one queue and one connection limit. The
 * delivery connections of a site (core/deliver) take jobs from its ready queue.
 *
 * Outcomes. A job ends with one result per recipient: 2xx delivered; 5xx bounced (a DSN
 * to the sender, core/bounce); anything else deferred until the next try of
 * queue.retry_schedule, or bounced (5.4.7) once that try would be past queue.max_age.
 * Each result is logged in Postfix's shape and written to the spool as an outcome note
 * (no fsync of its own; see DESIGN-facing notes in README: a lost note costs a duplicate
 * delivery, never a loss). When no recipient is open any more a DONE note ends the
 * message.
 *
 * Reclaim. Each message counts as live in the segment of its MSG record (spool_seg_ref)
 * from its commit (or adoption) until it is freed; the spool removes segments without
 * live messages (core/spool.h, Reclaim). When the spool asks for a segment's live
 * messages to be copied forward (queue_reclaim_copy), each one not in a delivery at the
 * time (no job, no read: it waits for its next try; the others at the next ask, a second
 * later) has its record read back
 * (io_uring), rewritten with the state of its recipients (spoolrec_encode_copy) and
 * committed (spool_append_rec); once that commit is durable the message counts in the
 * copy's segment instead, and its body reads go there.
 *
 * Ownership: a message belongs to its home worker, the one that accepted it (messages of
 * the start-up scan go to the worker whose segment holds them: w<WORKER>-…, a vanished
 * index k to k % workers), so that all the records of a message stay in one worker's
 * chain of segments; its notes, retries and logs are written there. A site belongs to
 * one worker (core/owner): a job ready for a site another worker owns is posted to it,
 * delivered there, and its results come home. */
#ifndef CORE_QUEUE_H
#define CORE_QUEUE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "core/spool.h"
#include "core/why.h"
#include "net/buf.h"
#include "net/alarm.h"
#include "net/dns.h"
#include "net/loop.h"
#include "net/timer.h"
#include "proto/rate.h"
#include "proto/smtp_srv.h"

#define QUEUE_BODY_BUDGET (256u << 20)   /* octets of bodies kept in memory per worker */
#define QUEUE_JOB_RCPT_MAX 1000u         /* recipients per job (per transaction) */
#define QUEUE_HASH 4096u
#define QUEUE_SITE_HASH 4096u            /* sites by key (a bulk sender meets many MX sets) */
#define QUEUE_DSN_READS 32u              /* bodies read back for DSNs at once per worker (a
                                            bounce --all or the expiry of a dead site's
                                            backlog must not read every message at once) */
#define QUEUE_SITE_ADDRS 20u             /* addresses a site tries, in order */
#define QUEUE_DEAD_AFTER 3u              /* failed connections in a row: the site is dead */

enum queue_op_kind {
	QUEUE_OP_READ = SPOOL_OP_UNLINK + 1,
	QUEUE_OP_COPY,                     /* a copy forward's read of the record */
};

/* QR_DELETED: `ctl delete` made it final, without a DSN (the message's DONE is noted). */
enum qrcpt_state { QR_OPEN = 0, QR_BUSY, QR_DELIVERED, QR_BOUNCED, QR_DELETED };

/* Where a busy recipient is, for the operator's listing (set just before it). */
enum qrcpt_where {
	QW_NONE = 0,                       /* busy without a job: its DSN is being stored */
	QW_DNS,                            /* its next hop is being looked up */
	QW_READY,                          /* in its site's ready queue */
	QW_DEAD,                           /*   of a site that is dead */
	QW_NOPROXY,                        /*   of a site with no proxy up for its source */
	QW_SENDING,                        /* in a connection's transaction */
	QW_AWAY,                           /* with a site another worker owns */
};

struct qrcpt {
	char *addr;
	uint8_t state;
	uint8_t where;                     /* enum qrcpt_where (queue_list) */
	uint16_t why;                      /* its last deferral's reason (core/why), 0: none */
	uint32_t attempts;
	uint64_t next_try_s;               /* unix seconds (0: now) */
};

/* What a queued message costs is what a backlog costs: 192 octets here (a jemalloc size
 * class; check with sizeof when adding a field), plus its recipients and strings. A
 * message waiting for its next try has no job: its own timer (the scheduled queue) makes
 * the jobs of its due recipients when it fires. */
struct queue_msg {
	struct timer t;                    /* the scheduled queue: its earliest next try */
	struct queue_msg *hnext;
	char qid[32];
	char *sender;                      /* "" for the null sender */
	struct qrcpt *r;
	uint64_t arrival_ms;               /* unix ms */
	struct spool_loc loc;              /* its MSG record (counted live there: spool_seg_ref) */
	uint8_t *body;                     /* unscrambled data, or NULL (in the spool only) */
	size_t size;                       /* data octets */
	struct queue_job *readers;         /* jobs waiting for a read of its body */
	uint8_t *rbuf;                     /* the read's buffer */
	struct queue *q;
	uint32_t nrcpt;
	uint32_t open;                     /* recipients not final */
	uint32_t flags;                    /* smtp_srv flags (the copy generation masked off) */
	unsigned seg_worker;               /* the segment w<seg_worker>-<loc.seq> */
	unsigned refs;                     /* jobs and reads that point at it */
	int rfd;                           /* the file of a read in flight */
	uint32_t t_sched_cs;               /* when it was scheduled: q->mono0_ms + 10 x this */
	struct net_op rop;
	/* (bit-fields: the struct stays in its 192-octet size class) */
	bool copying : 1;                  /* a copy forward of its record is under way */
	bool reading : 1;                  /* a read of its body is in flight */
	bool foreign : 1;                  /* another worker's message, delivered here
	                                      (core/owner): no notes, not in the hash */
	bool held : 1;                     /* ctl hold: its deferrals wait for a release */
	bool done_noted : 1;               /* its DONE note is written */
	/* QUEUE_CANCEL_*, what the operator asked: deleted (its DONE is noted; jobs still out
	 * only log what comes back), returning (ctl bounce: what comes back deferred, or is
	 * taken from a ready queue, bounces; no retry), held. Written by its home; the worker
	 * that owns a site where a job of it waits reads it (atomic) before it sends the job */
	uint8_t cancel;
};

enum { QUEUE_CANCEL_NONE = 0, QUEUE_CANCEL_DELETED, QUEUE_CANCEL_RETURNING, QUEUE_CANCEL_HELD };

struct queue_site;

struct queue_job {
	struct queue_job *next;            /* ready list / readers / all */
	struct queue_job *all_next, *all_prev;
	struct queue *q;
	struct queue_msg *m;
	char *transport;                   /* id, copied */
	char *domain;                      /* of its recipients (lower-case) */
	struct queue_site *site;           /* once ready */
	uint32_t *idx;
	uint32_t n;
	uint64_t t_sched_ms, t_ready_ms, t_taken_ms, t_conn_ms;  /* monotonic: the delays */
	bool looking;                      /* a DNS lookup is in flight for it */
	bool requeued;                     /* went back in line once after a proxy cut it
	                                      before its end of data (core/deliver): */
	size_t cut_server;                 /*   that proxy (the pool's server index) */
	uint64_t cut_ms;                   /*   and when (monotonic) */
	struct queue_job *home;            /* a foreign job: the home's job, opaque here */
	unsigned home_worker;              /*   and its worker */
	/* a DSN waiting for its message's body to be read back (core/bounce quotes its
	 * header): not a delivery; idx: the bounced recipients, these their texts */
	char **dsn_text;
	char *dsn_relay;
};

struct dconn;

/* An address of a site's next hop, with the host name it was found under. */
struct queue_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char name[256];
};

struct queue_site {
	struct queue_site *next;           /* every site of the worker (new ones at the head:
	                                      core/metrics counts on it) */
	struct queue_site *hnext;          /* site_find's hash chain */
	char *key;                         /* "transport/sitekey[|source][|direct]" */
	char *transport;
	/* core/egress: the source its connections leave from (a transport's `source` entry,
	 * by its addresses "IPv4,IPv6"; NULL: the transport has none), and whether it goes
	 * around the transport's proxy pool (a proxy_bypass_domains domain) */
	char *src_label;
	size_t base_len;                   /* of key's "transport/sitekey" */
	bool direct;
	bool waiting;                      /* no proxy up for its source: said once */
	uint32_t srv_rotor;                /* round robin over the pool's servers */
	struct queue_addr addr[QUEUE_SITE_ADDRS];
	size_t naddr, next_addr;
	unsigned max_conns, max_msgs;
	struct queue_job *ready_head, *ready_tail;
	size_t nready;
	struct dconn *conns;
	unsigned nconns;                   /* open, the QUITting ones included */
	unsigned nquitting;                /* of those, QUIT sent: not counted against limits */
	unsigned fails;                    /* connection failures in a row */
	size_t fail_server;                /* the pool server of the latest (core/deliver) */
	/* core/deliver: the latest transaction that ended through a proxy, and its server:
	 * the site works through the pool, so a cut through another server is that one's */
	uint64_t done_ms;
	const struct egress_transport *done_et;    /* (only compared: the table it was in) */
	size_t done_server;
	/* ... and the latest unclear failure or cut not told yet (sus_ms 0: none), told when a
	 * transaction ends through another server within DELIVER_CUT_PROOF_MS */
	uint64_t sus_ms;
	const struct egress_transport *sus_et;
	size_t sus_server, sus_si;
	int sus_kind;                      /* enum egress_passive_kind: UNCLEAR or CUT */
	int sus_reason, sus_code;
	uint64_t dead_until_ms;
	uint64_t dns_expires_ms;           /* an MX site's addresses are refreshed after */
	/* core/deliver's shaping (zero until its first kick: deliver_shape) */
	bool shaped;
	unsigned window;                   /* connections allowed now: concurrency feedback */
	unsigned credit;                   /* successes towards the next window step */
	unsigned initial, dead_after;      /* the transport's initial_connections, dead_after */
	struct rate msg_rate, conn_rate;   /* the transport's message_rate, connection_rate */
	struct timer kick;                 /* a rate holds it back: kick again then */
	struct net_alarm kick_alarm;       /* the same, to the ms (the wheel: fallback) */
	bool read_busy_logged;             /* event=body_read_busy said, until a read works */
	/* the results its recipients got here (core/metrics): 2xx, 4xx or none, 5xx */
	uint64_t results[3];
};

struct worker;

struct queue {
	struct worker *w;
	struct net_loop *loop;
	struct spool *spool;
	struct dns *dns;
	int spool_dirfd;
	struct queue_msg *hash[QUEUE_HASH];
	struct queue_job *all;             /* every job */
	struct queue_site *sites;
	struct queue_site *site_hash[QUEUE_SITE_HASH];
	size_t body_bytes;
	size_t nmsgs, nrcpt_open;
	uint64_t rnd;
	uint64_t mono0_ms;                 /* the loop's clock at init (t_sched_cs counts from) */
	uint64_t generation;               /* of the configuration it last routed with */
	uint64_t delivered, bounced, deferred, dsns;
	uint64_t rcpt_overflow;            /* recipients sent again at once after a 452 4.5.3 */
	unsigned copy_reads;               /* copy forward reads in flight */
	struct queue_copy *copies_head;    /* copies under way (detached at fini) */
	uint64_t copies;                   /* copies forward made durable */
	size_t away, foreign;              /* jobs at other workers', other workers' jobs here */
	uint32_t src_rotor[16][4][2];      /* per transport (index % 16) and address families:
	                                      the source rotation and the failover's (egress) */
	unsigned long egress_epoch;        /* core/egress's epoch when the sites were last looked at */
	bool stopping, finishing;
	struct tlsout_cache *tls_cache;    /* core/deliver's TLS sessions, made on first use */
	struct why_tab why;                /* the recipients' last deferral reasons */
	/* the census (queue_census_step): the last whole sweep's counts, and the one under way */
	struct queue_census { uint64_t msgs, scheduled, held, busy; } census, census_acc;
	unsigned census_bucket;
	bool census_done;                  /* census holds a whole sweep */
	/* set by core/control around an operator's change: its notes go here (then committed
	 * with spool_append_rec before the answer), not to spool_note */
	struct buf *collect;
	unsigned dsn_reads;                /* DSN jobs whose body read is under way */
	struct queue_job *dsn_wait, *dsn_wait_tail;   /* DSN jobs waiting for a read slot */
};

int queue_init(struct queue *q, struct worker *w, struct net_loop *l, struct spool *sp,
               const char *spool_dir);
void queue_fini(struct queue *q);
/* A message just committed (its 250 is going out): queue it. data: its m->len octets in a
 * malloc'ed buffer that the queue now owns (kept as the body in memory, or freed), or NULL
 * when there is none (a large message: the spool scrambled it in place). */
void queue_accepted(struct queue *q, const struct smtp_srv_msg *m, uint64_t arrival_s,
                    const struct spool_loc *loc, uint8_t *data);
/* A message of the start-up scan. */
struct queue_recovered {
	struct queue_recovered *next;
	char qid[32];
	char *sender;
	char **rcpt;
	struct qrcpt *r;                   /* state, attempts, next try per recipient */
	size_t nrcpt;
	uint64_t arrival_s;
	uint32_t flags;
	unsigned seg_worker;
	struct spool_loc loc;
	size_t size;
};
void queue_adopt(struct queue *q, struct queue_recovered *r);   /* takes r over */
/* The spool's reclaim asks for the live messages of segment w<worker>-<seq> to be copied
 * forward (ctx: the queue). */
void queue_reclaim_copy(void *ctx, unsigned worker, uint64_t seq);
void queue_recovered_free(struct queue_recovered *r);

/* For core/deliver: the next ready job of site s (NULL: none), its body (NULL while it is
 * being read: the job is handed back through deliver_body_ready), and the end. */
struct queue_job *queue_site_take(struct queue_site *s);
/* The same, but the first ready job ok(j, ctx) accepts (NULL: none does; the others stay
 * in line, in order). */
struct queue_job *queue_site_take_if(struct queue_site *s,
                                     bool (*ok)(const struct queue_job *j, const void *ctx),
                                     const void *ctx);
/* Put j (just taken) back first in line, without waking the site. */
void queue_site_unget(struct queue_site *s, struct queue_job *j);
/* 1: body ready in *body, *len; 0: a read was started, deliver_job_body() follows; <0: error. */
int queue_job_body(struct queue_job *j, const uint8_t **body, size_t *len);
/* The results of job j: per recipient of j (in j->idx order) a reply code and text (the
 * server's reply, or a local reason), relay names the server. */
struct qresult {
	unsigned code;                     /* 2xx, 4xx, 5xx; 0 = deferred, no reply */
	const char *text;                  /* the reply as received, or a local text */
	const char *dsn;                   /* "5.1.1", NULL: from the text or the code */
};
void queue_job_done(struct queue_job *j, const struct qresult *res, size_t nres,
                    const char *relay, unsigned conn_use);   /* nres: j->n, or 1 for all */
/* core/bounce: the DSN for m's recipients idx[0..n) (kept open, QR_BUSY, meanwhile) is in
 * the spool (ok: they are bounced now, and noted so) or could not be made or stored (they
 * wait for their next try, and bounce again then). Drops the DSN's reference to m. */
void queue_bounce_done(struct queue *q, struct queue_msg *m, const uint32_t *idx, uint32_t n,
                       bool ok);
/* A reference to m is dropped (a job, a read, a connection's pin). */
void queue_msg_unref(struct queue *q, struct queue_msg *m);
/* A whole site failed before any transaction (refused, timeout, greeting refused): every
 * ready job of it is deferred with that reason, and the site rests. */
void queue_site_fail(struct queue *q, struct queue_site *s, const char *why);
/* Let go of a job without a result (the worker stops): its recipients stay queued in the
 * spool, tried again after a restart. */
void queue_job_drop(struct queue_job *j);
/* For core/owner. The site keyed `key` (made, without addresses, when there is none). */
struct queue_site *queue_site_get(struct queue *q, const char *key, const char *transport);
/* A ready job joins its site (or is posted to the site's owner). */
void queue_site_enqueue(struct queue_site *s, struct queue_job *j);
/* A job of another worker's message, for delivery here: takes sender, body (may be NULL:
 * read from the spool) and the rcpt strings (the array stays the caller's). NULL: out of
 * memory (nothing taken). */
struct queue_job *queue_foreign_job(struct queue *q, const char *qid, char *sender,
                                    uint32_t flags, uint64_t arrival_ms, unsigned seg_worker,
                                    const struct spool_loc *loc, size_t size, uint8_t *body,
                                    char **rcpt, uint32_t n, const char *transport);
bool queue_idle(const struct queue *q);
/* A reload: this worker's jobs waiting in a ready queue under a route, transport or next
 * hop the new configuration no longer gives them are grouped again (jobs in a connection,
 * or at another worker's site, go on as they are). */
void queue_reconfigured(struct queue *q);
/* Every ready job of site s is grouped again (its transport is gone: core/deliver). */
void queue_site_regroup(struct queue *q, struct queue_site *s);
/* core/owner: a job of ours came home to be grouped again (its owner's reload). */
void queue_job_regroup(struct queue_job *j);
/* Every turn: when a proxy server or pair came up or went down (core/egress's epoch moved),
 * a site whose source has a server again is kicked; one whose source has none waits, or
 * (source_failover) its ready jobs are grouped again, which sends them to the
 * transport's other sources. */
void queue_egress_poll(struct queue *q);
void queue_stop(struct queue *q);
/* The census of this worker's own queued recipients for the metrics: scheduled (open,
 * waiting for their next try), held, busy (in a job: DNS, a ready queue, a transaction,
 * or their DSN), and their messages. Counting a backlog of a million at once would stall
 * the loop, so each call counts the next `buckets` of the QUEUE_HASH hash buckets; at the
 * end of a sweep q->census holds its counts (census_done). Called with each publication
 * of the counters (every 100 ms: 82 buckets a call sweep the queue in 5 s). */
void queue_census_step(struct queue *q, unsigned buckets);
/* The operator's view (core/control). queue_list: this worker's messages with recipients
 * not final, as `ringrelay --queue` lists the spool (text, or one JSON object per line),
 * with each recipient's live state (ready, busy: in a delivery now, deferred until
 * next_try; where a busy one is: looking up its next hop, in a ready queue (of a dead
 * site, of one with no proxy up), in a transaction, at another worker's site) and the
 * reason of its last deferral; whole messages until max recipients are listed, the others counted in *more. queue_flush: the
 * deferred open recipients of every message (arg NULL), of the message with queue id
 * arg, or whose domain is arg, are due now (Postfix's postqueue -f / -i / -s); dead
 * sites are tried again at once. Returns the recipients made due (*msgs: their
 * messages). */
size_t queue_list(struct queue *q, FILE *f, bool json, size_t max, size_t *more);
size_t queue_flush(struct queue *q, const char *arg, size_t *msgs);
/* ctl hold / release (Postfix's postsuper -h / -H): every message (qid NULL) or the one
 * with queue id qid. Hold: its open recipients wait (next_try SPOOLREC_HELD, noted in the
 * spool: a restart keeps them held), and those in a delivery now are held when it ends
 * deferred; flush does not touch them. Release: held recipients are due now (noted, as
 * one more attempt: the spool's order-free merge must let the release win). A
 * held message does not expire while held. Returns the recipients changed (*msgs: their
 * messages). */
size_t queue_hold(struct queue *q, const char *qid, size_t *msgs);
size_t queue_release(struct queue *q, const char *qid, size_t *msgs);
/* ctl delete (postsuper -d): every message (qid NULL) or the one with queue id qid is
 * removed: a DONE note at once (a restart does not bring it back), no DSN. A transaction
 * under way for it goes on (its outcome is logged, nothing else follows from it); its
 * jobs still waiting in a ready queue of this worker are dropped when their turn comes.
 * ctl bounce (postsuper -e, KumoMTA's admin bounce): its open recipients bounce now with
 * QUEUE_OP_BOUNCE_TEXT and a DSN to the sender; those in a transaction bounce when it ends
 * without a 2xx. Both return the recipients concerned (*msgs: their messages). */
#define QUEUE_OP_BOUNCE_TEXT "5.0.0 returned to the sender by the operator"
size_t queue_delete(struct queue *q, const char *qid, size_t *msgs);
size_t queue_bounce(struct queue *q, const char *qid, size_t *msgs);

#endif
