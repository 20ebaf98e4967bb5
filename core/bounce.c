/* core/bounce — see bounce.h. */
#include "core/bounce.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg/config.h"
#include "core/log.h"
#include "core/worker.h"
#include "proto/dsn.h"

struct bounce {
	struct queue *q;
	struct smtp_srv_msg sm;
	char qid[QID_LEN + 1];
	char *to;
	const char *rcpt[1];
	uint8_t *data;
	size_t len;
	uint64_t arrival;
	struct queue_msg *m;               /* the bounced message (a reference held) */
	uint32_t *idx;                     /* its recipients the DSN reports */
	uint32_t n;
};

static void bounce_spooled(void *waiter, bool ok, const struct spool_loc *loc)
{
	struct bounce *b = waiter;
	if (ok && loc->len <= SPOOL_COPY_MAX) {
		queue_accepted(b->q, &b->sm, b->arrival, loc, b->data);   /* the queue's now */
		b->data = NULL;
	} else if (ok) {
		queue_accepted(b->q, &b->sm, b->arrival, loc, NULL);
	}
	else
		log_err("event=bounce_failed qid=%s dsn=%s recipients=%u note=\"the spool refused the "
		        "notification; the recipients stay queued and bounce again at their next try\"",
		        b->m->qid, b->qid, b->n);
	queue_bounce_done(b->q, b->m, b->idx, b->n, ok);
	free(b->idx);
	free(b->data);
	free(b->to);
	free(b);
}

/* "host X said: 550 ..." wants the host name: relay is "name[addr]:port" or "none". */
static void relay_host(const char *relay, char *out, size_t cap)
{
	size_t n = strcspn(relay, "[");
	if (strcmp(relay, "none") == 0 || n == 0) {
		out[0] = '\0';
		return;
	}
	if (n >= cap)
		n = cap - 1;
	memcpy(out, relay, n);
	out[n] = '\0';
}

void bounce_send(struct queue *q, struct queue_msg *m, const uint32_t *idx,
                 const char *const *text, uint32_t n, const char *relay)
{
	if (m->sender[0] == '\0') {
		log_info("event=bounce_not_sent qid=%s recipients=%u reason=\"null sender\"", m->qid, n);
		return;
	}
	struct worker *w = q->w;
	const struct config *cfg = w->snap->cfg;
	struct bounce *b = calloc(1, sizeof *b);
	struct dsn_rcpt *r = calloc(n, sizeof *r);
	char host[256];
	relay_host(relay, host, sizeof host);
	if (!b || !r)
		goto fail;
	b->idx = malloc(n * sizeof *b->idx);
	if (!b->idx)
		goto fail;
	memcpy(b->idx, idx, n * sizeof *idx);
	b->n = n;
	b->m = m;
	uint64_t now = (uint64_t)time(NULL);
	if (qid_next(&w->qid, now, b->qid) < 0)
		goto fail;
	for (uint32_t i = 0; i < n; i++) {
		const char *t = text[i] ? text[i] : "";
		char st[16] = "5.0.0";
		const char *p = strlen(t) > 4 && t[3] == ' ' ? t + 4 : t;
		size_t k = strspn(p, "0123456789.");
		if (k >= 5 && k < sizeof st && p[0] == '5' && p[1] == '.') {
			memcpy(st, p, k);
			st[k] = '\0';
		}
		r[i].rcpt = m->r[idx[i]].addr;
		r[i].action = DSN_FAILED;
		r[i].remote_mta = host[0] ? host : NULL;
		r[i].diag = t;
		r[i].in_reply_to = host[0] ? "end of DATA" : NULL;
		r[i].status = strdup(st);
	}
	struct dsn_msg dm = {
		.reporting_mta = cfg->hostname, .qid = m->qid, .sender = m->sender,
		.arrival = m->arrival_ms / 1000u, .now = now, .rcpt = r, .nrcpt = n,
		.orig = m->body, .orig_len = m->body ? m->size : 0, .dsn_qid = b->qid,
	};
	b->data = dsn_build(&dm, &b->len);
	for (uint32_t i = 0; i < n; i++)
		free((char *)(uintptr_t)r[i].status);
	free(r);
	r = NULL;
	b->to = strdup(m->sender);
	if (!b->data || !b->to)
		goto fail;
	b->q = q;
	b->arrival = now;
	b->rcpt[0] = b->to;
	b->sm = (struct smtp_srv_msg){ .qid = b->qid, .helo = cfg->hostname, .mail_from = "",
	                               .rcpt = b->rcpt, .nrcpt = 1, .flags = 0,
	                               .data = b->data, .len = b->len };
	m->refs++;                         /* until the DSN is in the spool (or not) */
	if (spool_append_to(q->spool, b, bounce_spooled, &b->sm, "local", now) < 0) {
		m->refs--;
		goto fail;
	}
	q->dsns++;
	log_info("%s: sender non-delivery notification: %s", m->qid, b->qid);
	log_info("%s: from=<>, size=%zu, nrcpt=1 (queue active)", b->qid, b->len);  /* as qmgr */
	return;
fail:
	log_err("event=bounce_failed qid=%s recipients=%u note=\"no notification could be made; "
	        "the recipients stay queued and bounce again at their next try\"", m->qid, n);
	if (b) {
		free(b->data);
		free(b->to);
		free(b->idx);
	}
	free(b);
	free(r);
	m->refs++;                         /* queue_bounce_done drops one */
	queue_bounce_done(q, m, idx, n, false);
}
