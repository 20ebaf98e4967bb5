/* core/owner — see owner.h. */
#include "core/owner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/deliver.h"
#include "core/log.h"
#include "core/worker.h"
#include "net/post.h"

/* The letters' kinds, registered on every worker's loop (net/dns has USER + 8 and 9). */
enum { OWNER_OP_JOB = NET_OP_USER + 12, OWNER_OP_DONE = NET_OP_USER + 13 };

/* Home -> owner: a job, with what the owner needs to deliver it. */
struct job_letter {
	struct net_letter l;
	struct queue_job *home;            /* the home's job: opaque here, echoed back */
	unsigned from;                     /* the home worker */
	char *key, *transport, *sender, **rcpt;
	uint32_t n;
	char qid[32];
	uint32_t flags;
	uint64_t arrival_ms;
	unsigned seg_worker;
	struct spool_loc loc;
	size_t size;
	uint8_t *body;                     /* a copy, or NULL: read from the spool */
	uint64_t t_sched_ms, t_ready_ms;
	uint64_t dns_expires_ms;
	size_t naddr;
	struct queue_addr addr[];          /* the site's, as the home resolved them */
};

/* Owner -> home: the results of a job, or its drop. */
struct done_letter {
	struct net_letter l;
	struct queue_job *home;
	bool dropped;
	bool reroute;                      /* (with dropped) group it again at home */
	unsigned conn_use;
	uint64_t t_ready_ms, t_taken_ms, t_conn_ms;
	char relay[440];                   /* (with its source= and proxy=: core/deliver) */
	size_t nres;
	struct { unsigned code; char *text; char dsn[16]; bool has_dsn; } r[];
};

unsigned owner_of(const char *key, unsigned n)
{
	uint64_t h = 1469598103934665603ull;          /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= 1099511628211ull;
	}
	return n ? (unsigned)(h % n) : 0;
}

static void job_letter_free(struct job_letter *t)
{
	free(t->key);
	free(t->transport);
	free(t->sender);
	for (uint32_t k = 0; t->rcpt && k < t->n; k++)
		free(t->rcpt[k]);
	free(t->rcpt);
	free(t->body);
	free(t);
}

/* ---- the home's side ---------------------------------------------------------------- */

bool owner_post(struct queue *q, struct queue_site *s, struct queue_job *j)
{
	struct worker *w = q->w;
	struct server *srv = w->srv;
	/* until every worker's ring is up (start-up: adopted mail), each delivers its own */
	if (srv->nworkers < 2 || q->stopping || !atomic_load(&srv->all_up))
		return false;
	unsigned to = owner_of(s->key, srv->nworkers);
	if (to == w->id)
		return false;
	struct queue_msg *m = j->m;
	struct job_letter *t = calloc(1, sizeof *t + s->naddr * sizeof t->addr[0]);
	if (!t)
		return false;
	t->home = j;
	t->from = w->id;
	t->key = strdup(s->key);
	t->transport = strdup(s->transport);
	t->sender = strdup(m->sender);
	t->rcpt = calloc(j->n, sizeof *t->rcpt);
	t->n = j->n;
	bool ok = t->key && t->transport && t->sender && t->rcpt;
	for (uint32_t k = 0; ok && k < j->n; k++)
		ok = (t->rcpt[k] = strdup(m->r[j->idx[k]].addr)) != NULL;
	if (ok && m->body) {
		t->body = malloc(m->size ? m->size : 1);
		ok = t->body != NULL;
		if (ok)
			memcpy(t->body, m->body, m->size);
	}
	if (!ok) {
		job_letter_free(t);
		return false;                  /* out of memory: delivered here instead */
	}
	memcpy(t->qid, m->qid, sizeof t->qid);
	t->flags = m->flags;
	t->arrival_ms = m->arrival_ms;
	t->seg_worker = m->seg_worker;
	t->loc = m->loc;
	t->size = m->size;
	t->t_sched_ms = j->t_sched_ms;
	t->t_ready_ms = q->loop->now_ms;
	t->naddr = s->naddr;
	t->dns_expires_ms = s->dns_expires_ms;
	memcpy(t->addr, s->addr, s->naddr * sizeof s->addr[0]);
	j->site = NULL;
	q->away++;
	net_post(q->loop, &srv->office, &srv->workers[to].loop, OWNER_OP_JOB, &t->l);
	return true;
}

/* Results (or a drop) came home: end the job as if it had been delivered here. */
static void on_done(struct net_loop *l, struct net_op *op, int res, unsigned flags)
{
	(void)l;
	(void)res;
	(void)flags;
	struct done_letter *t = (struct done_letter *)((char *)op - offsetof(struct done_letter, l.op));
	struct queue_job *j = t->home;
	struct queue *q = j->q;
	q->away--;
	if (t->dropped && t->reroute) {
		queue_job_regroup(j);           /* its owner's reload routes it elsewhere */
	} else if (t->dropped) {
		queue_job_drop(j);              /* its recipients stay queued in the spool */
	} else {
		struct qresult *r = calloc(t->nres ? t->nres : 1, sizeof *r);
		if (r) {
			for (size_t k = 0; k < t->nres; k++)
				r[k] = (struct qresult){ t->r[k].code, t->r[k].text,
				                         t->r[k].has_dsn ? t->r[k].dsn : NULL };
			j->t_ready_ms = t->t_ready_ms;
			j->t_taken_ms = t->t_taken_ms;
			j->t_conn_ms = t->t_conn_ms;
			queue_job_done(j, r, t->nres, t->relay, t->conn_use);
			free(r);
		} else {
			queue_job_drop(j);
		}
	}
	for (size_t k = 0; k < t->nres; k++)
		free(t->r[k].text);
	free(t);
}

/* ---- the owner's side --------------------------------------------------------------- */

static struct queue_site *owner_site(struct queue *q, const struct job_letter *t)
{
	struct queue_site *s = queue_site_get(q, t->key, t->transport);
	if (!s)
		return NULL;
	/* the home's resolution is the newer one when ours is missing or older */
	if (t->naddr > 0 && (s->naddr == 0 || s->dns_expires_ms < t->dns_expires_ms)) {
		memcpy(s->addr, t->addr, t->naddr * sizeof s->addr[0]);
		s->naddr = t->naddr;
		s->next_addr = 0;
		s->dns_expires_ms = t->dns_expires_ms;
	}
	return s;
}

static void post_home(struct queue *q, unsigned home, struct done_letter *t)
{
	struct server *srv = q->w->srv;
	net_post(q->loop, &srv->office, &srv->workers[home].loop, OWNER_OP_DONE, &t->l);
}

/* A job of another worker arrived: queue it on our site like one of ours. */
static void on_job(struct net_loop *l, struct net_op *op, int res, unsigned flags)
{
	(void)l;
	(void)res;
	(void)flags;
	struct job_letter *t = (struct job_letter *)((char *)op - offsetof(struct job_letter, l.op));
	struct worker *w = (struct worker *)((char *)l - offsetof(struct worker, loop));
	struct queue *q = &w->queue;
	struct queue_site *s = q->stopping ? NULL : owner_site(q, t);
	struct queue_job *j = s ? queue_foreign_job(q, t->qid, t->sender, t->flags, t->arrival_ms,
	                                            t->seg_worker, &t->loc, t->size, t->body,
	                                            t->rcpt, t->n, t->transport)
	                        : NULL;
	if (!j) {                          /* stopping (or out of memory): straight home */
		struct done_letter *d = calloc(1, sizeof *d);
		if (!d) {
			log_err("event=owner_lost qid=%s note=\"out of memory; its recipients stay "
			        "queued in the spool\"", t->qid);
			job_letter_free(t);         /* (the home waits for it until it stops) */
			return;
		}
		d->home = t->home;
		d->dropped = true;
		post_home(q, t->from, d);
		job_letter_free(t);
		return;
	}
	t->sender = NULL;                  /* queue_foreign_job took them over (the strings */
	t->body = NULL;                    /* of rcpt, not the array) */
	free(t->rcpt);
	t->rcpt = NULL;
	j->home = t->home;
	j->home_worker = t->from;
	j->t_sched_ms = t->t_sched_ms;
	q->foreign++;
	job_letter_free(t);
	queue_site_enqueue(s, j);
}

static struct done_letter *done_new(struct queue_job *j, size_t nres)
{
	struct done_letter *d = calloc(1, sizeof *d + nres * sizeof d->r[0]);
	if (!d)
		return NULL;
	d->home = j->home;
	d->nres = nres;
	return d;
}

void owner_return(struct queue_job *j, const struct qresult *res, size_t nres,
                  const char *relay, unsigned conn_use)
{
	struct queue *q = j->q;
	struct done_letter *d = done_new(j, nres);
	bool ok = d != NULL;
	for (size_t k = 0; ok && k < nres; k++) {
		d->r[k].code = res[k].code;
		ok = (d->r[k].text = strdup(res[k].text ? res[k].text : "")) != NULL;
		if (ok && res[k].dsn) {
			snprintf(d->r[k].dsn, sizeof d->r[k].dsn, "%s", res[k].dsn);
			d->r[k].has_dsn = true;
		}
	}
	if (!ok) {                         /* out of memory: home without results */
		if (d)
			for (size_t k = 0; k < nres; k++)
				free(d->r[k].text);
		free(d);
		owner_drop(j);
		return;
	}
	snprintf(d->relay, sizeof d->relay, "%s", relay);
	d->conn_use = conn_use;
	d->t_ready_ms = j->t_ready_ms;
	d->t_taken_ms = j->t_taken_ms;
	d->t_conn_ms = j->t_conn_ms;
	unsigned home = j->home_worker;
	j->home = NULL;
	q->foreign--;
	queue_job_drop(j);
	post_home(q, home, d);
}

static void owner_home(struct queue_job *j, bool reroute)
{
	struct queue *q = j->q;
	struct done_letter *d = done_new(j, 0);
	unsigned home = j->home_worker;
	j->home = NULL;
	q->foreign--;
	queue_job_drop(j);
	if (!d) {
		log_err("event=owner_lost note=\"out of memory; the job's recipients stay queued in "
		        "the spool\"");
		return;
	}
	d->dropped = true;
	d->reroute = reroute;
	post_home(q, home, d);
}

void owner_reroute(struct queue_job *j)
{
	owner_home(j, true);
}

void owner_drop(struct queue_job *j)
{
	owner_home(j, false);
}

/* ---- life --------------------------------------------------------------------------- */

void owner_init(struct worker *w)
{
	net_loop_handle(&w->loop, OWNER_OP_JOB, on_job);
	net_loop_handle(&w->loop, OWNER_OP_DONE, on_done);
}

bool owner_idle(struct worker *w)
{
	struct server *srv = w->srv;
	if (atomic_load(&srv->stopping_workers) < srv->nworkers)
		return false;
	if (w->queue_up && (w->queue.away > 0 || w->queue.foreign > 0))
		return false;
	if (net_post_pending(&w->loop))
		return false;
	return net_post_inflight(&srv->office) == 0;
}
