/* core/spooldir — reading a spool directory back: the startup scan that rebuilds the queue,
 * and the listing of `ringrelay --queue`.
 *
 * Segment files are named "w<WORKER>-<SEQ>.seg" (SEQ: 16 hex digits, increasing). The scan
 * reads every segment, decodes its records in order and stops a segment at the first
 * record that is incomplete or fails its checksum: that is a torn tail, never
 * acknowledged (a 250 is only sent after a completed fdatasync covering the record), and
 * it is dropped (reported through the callback's `torn` count). A message is live when
 * its MSG record has no DONE record in any segment. */
#ifndef CORE_SPOOLDIR_H
#define CORE_SPOOLDIR_H

#include <stdio.h>
#include <stdint.h>
#include "proto/spoolrec.h"

struct spooldir_stats {
	size_t segments;      /* segment files read */
	size_t live;          /* live messages */
	size_t done;          /* messages with a DONE record */
	size_t torn;          /* segments that ended in a torn record */
	uint64_t torn_bytes;  /* octets dropped in torn tails */
};

/* Called once per live message, in segment then record order. seg is the segment file
 * name, off the record's offset. Return 0 to go on, non-zero to stop. */
typedef int (*spooldir_cb)(void *ctx, const char *seg, uint64_t off,
                           const struct spoolrec_msg *m);

/* Scan DIR. Returns 0 (a missing directory is an empty queue) or -errno. */
int spooldir_scan(const char *dir, spooldir_cb cb, void *ctx, struct spooldir_stats *st);

/* Highest SEQ among worker w's segments in dir, or 0 when there are none. */
uint64_t spooldir_last_seq(const char *dir, unsigned worker);

/* `ringrelay --queue`: one line per live message, like mailq:
 *   QID  SIZE  ARRIVAL(ISO 8601 UTC)  <sender>  <rcpt1> <rcpt2> ...
 * or with json != 0 one JSON object per line:
 *   {"queue_id":"...","sender":"...","recipients":["..."],"size":N,"arrival":"...",
 *    "attempts":0,"next_try":null}
 * Strings are escaped (JSON escapes; in text mode, bytes outside printable ASCII as \xHH).
 * Ends (text mode) with "-- N messages". Returns 0 or -errno. */
int spooldir_list(const char *dir, FILE *out, int json);

#endif
