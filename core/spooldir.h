/* core/spooldir — reading a spool directory back: the startup scan that rebuilds the queue,
 * and the listing of `ringrelay --queue`.
 *
 * Segment files are named "w<WORKER>-<SEQ>.seg" (SEQ: 16 hex digits, increasing). Each
 * segment is walked by spoolrec_scan() (proto/spoolrec.h), which tells apart:
 *   - valid records (MSG, DONE, RCPT outcomes, VOID, PAD, and records of a newer build's
 *     types: kept, counted in `unknown`, never read as damage);
 *   - corruption: octets that are not a valid record but are followed by one. The scan
 *     resynchronises on the next valid record, so one damaged record costs that record
 *     only. This is an error (a record that may have been acknowledged is gone): counted
 *     in `corrupt`/`corrupt_bytes` and handed to the `damage` callback for the log;
 *   - a torn tail: damage with no valid record after it, a write cut by a crash, never
 *     acknowledged (a 250 is only sent after a completed fdatasync covering the record):
 *     dropped, counted in `torn`/`torn_bytes`, handed to `damage` with torn = 1, not an
 *     error;
 *   - zero octets up to the end of the segment: space written ahead, not used yet; not
 *     counted anywhere.
 *
 * Outcomes. A RCPT record gives one outcome (delivered, bounced: final; deferred, with
 * attempts and next try) to some recipients of a message, by index into its MSG record's
 * recipient list. The outcomes of a message, from any segment, in any order, merge per
 * recipient:
 *   - a final state beats a deferred one, whichever came first;
 *   - between two final states the first seen (segment order, then offset) stays;
 *   - between two deferred ones the one with more attempts wins; with as many, the later
 *     next try;
 *   - an index >= the message's recipient count is ignored (counted in `bad_outcomes`);
 *   - outcomes of a qid that has no MSG record are ignored.
 * A recipient without an outcome is open (SPOOLREC_RS_OPEN: never tried).
 *
 * Copies. A message found twice (proto/spoolrec.h: a copy of a reclaimed segment and its
 * original, both still there after a crash) is handed out once: the record of the lowest
 * copy generation, the first seen on a tie (a copy the crash cut may lie whole on disk
 * without the RCPT records that restate its recipients; the older record never lacks
 * one); its outcomes from every segment are merged as above (they are by qid); counted
 * in `duplicates`.
 *
 * A message is live when it has a MSG record, no DONE and no VOID record in any segment,
 * and at least one recipient that is not final. One with a DONE is counted in `done`, one
 * with a VOID (and no DONE) in `voided`; one whose recipients all have a final outcome (a
 * crash lost its DONE record) in `finished`. (A MSG without recipients has none that is
 * final: it stays live, as it always was.) Only live messages reach the callbacks,
 * `--queue` and `--show`.
 *
 * Memory: pass 1 keeps, per MSG record, its place and qid; per DONE/VOID its qid; per
 * RCPT record its fields and indexes. Nothing is kept per message for outcomes: a spool
 * of a million messages and a few outcome records needs room for the few records only
 * (and, while messages are handed out, a scratch array of one message's recipients).
 *
 * This module does not log: the caller (core/main.c) logs what the callbacks and the
 * stats say. */
#ifndef CORE_SPOOLDIR_H
#define CORE_SPOOLDIR_H

#include <stdio.h>
#include <stdint.h>
#include "proto/spoolrec.h"

struct spooldir_stats {
	size_t segments;          /* segment files read */
	size_t live;              /* live messages */
	size_t done;              /* messages with a DONE record */
	size_t torn;              /* segments that ended in a torn record */
	size_t cut_short;         /* torn or empty segments with later ones of their worker */
	uint64_t torn_bytes;      /* octets dropped in torn tails (up to their last non-zero) */
	size_t corrupt;           /* damaged regions skipped (each followed by a valid record) */
	uint64_t corrupt_bytes;   /* octets in them */
	size_t unknown;           /* valid records of a type this build does not know (kept) */
	size_t trimmed;           /* (trim) segments whose unused tail was given back */
	size_t removed;           /* (trim) segments that held nothing and were removed */
	uint64_t trimmed_bytes;   /* (trim) octets given back */
	size_t voided;            /* messages with a VOID record (and no DONE): never acked */
	size_t finished;          /* messages with no DONE whose recipients are all final */
	size_t outcomes;          /* RCPT records read */
	size_t bad_outcomes;      /* recipient indexes ignored: >= the message's nrcpt */
	size_t duplicates;        /* MSG records of a qid seen before (a copy made by segment
	                           * reclaim and its original, when a crash came between the
	                           * copy's commit and the original's removal): one is handed out */
};

/* One damaged stretch of a segment: [offset, offset+octets) of file `segment` (its name
 * in the directory) held no valid record. err says why the record at offset was refused
 * (spoolrec_strerror()). */
struct spooldir_damage {
	const char *segment;
	uint64_t offset;
	uint64_t octets;
	int torn;                 /* 1: torn tail, not an error; 0: corruption, an error */
	enum spoolrec_err err;
	int cut_short;            /* 1: a torn or empty segment its worker wrote past (later
	                             segments hold records): an error, acknowledged mail may
	                             be lost; offset = its size */
};

/* Called once per live message, in segment then record order. seg is the segment file
 * name, off the record's offset. Return 0 to go on, non-zero to stop. */
typedef int (*spooldir_cb)(void *ctx, const char *seg, uint64_t off,
                           const struct spoolrec_msg *m);

/* A recipient of a live message, its outcomes merged. */
struct spooldir_rcpt {
	uint8_t state;            /* SPOOLREC_RS_OPEN (never tried) or the merged
	                           * SPOOLREC_RS_* (a live message may have final ones) */
	uint32_t attempts;        /* of the outcome that won; 0 when open */
	uint64_t next_try;        /* unix seconds, deferred only; 0 otherwise */
};

/* A live message with where its MSG record lies and the state of each recipient. */
struct spooldir_msg {
	const char *seg;          /* segment file name */
	unsigned worker;          /* from the name: w<WORKER>-<SEQ>.seg */
	uint64_t seq;
	uint64_t off;             /* the MSG record's offset in the segment */
	uint64_t len;             /* and its length, header included */
	const struct spoolrec_msg *m;
	const struct spooldir_rcpt *rcpt;   /* m->nrcpt entries, in the MSG's recipient order */
};

/* Called once per live message like spooldir_cb, with the recipients' states. Everything
 * it points to is valid during the call only. */
typedef int (*spooldir_state_cb)(void *ctx, const struct spooldir_msg *m);

/* What the scan calls; either may be NULL. damage is called during the walk of the
 * segments (segment order, then offset order), before any msg call; all calls get the
 * same ctx. */
struct spooldir_ops {
	spooldir_cb msg;
	void (*damage)(void *ctx, const struct spooldir_damage *d);
	/* Give back what a crash left allocated: cut each segment's zero tail (space
	 * allocated ahead, never written) and remove a segment of zeros only. For the daemon
	 * at start-up, before any writer runs; never for a reader like --queue. */
	int trim;
};

/* Scan DIR. Returns 0 (a missing directory is an empty queue) or -errno. st may be NULL. */
int spooldir_scan_ops(const char *dir, const struct spooldir_ops *ops, void *ctx,
                      struct spooldir_stats *st);
/* The same, with msg_state called for each live message instead of ops->msg when it is
 * not NULL. ops may be NULL. (msg_state is an argument, not a member of spooldir_ops:
 * a new member would break callers that fill the struct by position, such as
 * core/main.c, under -Werror=missing-field-initializers.) */
int spooldir_scan_state(const char *dir, const struct spooldir_ops *ops,
                        spooldir_state_cb msg_state, void *ctx, struct spooldir_stats *st);
/* The same with only a msg callback. */
int spooldir_scan(const char *dir, spooldir_cb cb, void *ctx, struct spooldir_stats *st);

/* Every segment file of dir (regular files with a segment name), in (worker, seq)
 * order: cb(ctx, worker, seq, size in octets); a non-zero return stops and is returned.
 * 0 (a missing directory has none) or -errno. */
typedef int (*spooldir_seg_cb)(void *ctx, unsigned worker, uint64_t seq, uint64_t size);
int spooldir_segments(const char *dir, spooldir_seg_cb cb, void *ctx);

/* Highest SEQ among worker w's segments in dir, or 0 when there are none. */
uint64_t spooldir_last_seq(const char *dir, unsigned worker);

/* `ringrelay --queue`: one line per live message, like mailq, listing only the
 * recipients that are not final (open or deferred):
 *   QID  SIZE  ARRIVAL(ISO 8601 UTC)  <sender>  <rcpt1> <rcpt2> ...
 * a deferred recipient followed by " (attempts=N next_try=YYYY-MM-DDTHH:MM:SSZ)"; or with
 * json != 0 one JSON object per line:
 *   {"queue_id":"...","sender":"...","recipients":["..."],"size":N,"arrival":"...",
 *    "attempts":N,"next_try":"..."|null,
 *    "recipient_state":[{"address":"...","attempts":N,"next_try":"..."|null}]}
 * where "recipients" and "recipient_state" list the same recipients in the same order,
 * "attempts" is the most attempts of any recipient (final ones included) and "next_try"
 * the earliest next try of a deferred recipient (null when none is deferred).
 * Strings are escaped (JSON escapes; in text mode, bytes outside printable ASCII as \xHH).
 * Ends (text mode) with "-- N messages". Returns 0 or -errno. */
int spooldir_list(const char *dir, FILE *out, int json);
/* The listing's writers, shared with the live listing (core/control): a string as text
 * (bytes outside printable ASCII, and '\\', as \xHH), as a JSON string (UTF-8 kept,
 * a bad byte as U+FFFD, controls escaped), and unix seconds as ISO 8601 UTC. */
void spooldir_put_text(FILE *f, const char *s, size_t n);
void spooldir_put_json(FILE *f, const char *str, size_t n);
void spooldir_iso8601(char *buf, size_t cap, uint64_t t);

/* `ringrelay --show QID` (like Postfix's postcat -bq): the message data of a live message,
 * unscrambled, as it was received (with our Received: header). 0, -ENOENT when no live
 * message has that id, or -errno. */
int spooldir_show(const char *dir, const char *qid, FILE *out);

#endif
