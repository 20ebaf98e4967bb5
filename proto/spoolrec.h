/* proto/spoolrec — the on-disk record format of the spool segments. Pure: bytes in,
 * bytes out, no I/O, no allocation.
 *
 * A segment file is a sequence of records. Every record is
 *   magic "RRS1" (4) | type (1) | reserved (3, zero) | payload length (4, LE) |
 *   CRC-32C of type+reserved+length+payload (4, LE) | payload
 * so that a record that was torn by a crash (short, or with a bad checksum) is detected.
 * A segment may end in zero octets after its last record (space written ahead, so that
 * fdatasync has no metadata to journal).
 *
 * Types:
 *   SPOOLREC_MSG  — an accepted message: qid, arrival time, flags, sender, recipients,
 *                   client (as shown in logs), a nonce, data (the message with its
 *                   Received:, stored scrambled: XORed with a keystream of the nonce).
 *                   The nonce is random per record, so a client cannot know how the
 *                   octets it sends will lie on disk: a record forged inside a message
 *                   (which the scan could otherwise take for real when it resynchronises
 *                   after damage) comes out as noise.
 *   SPOOLREC_DONE — the message qid needs no more work (delivered or bounced).
 *   SPOOLREC_PAD  — nothing: zeros that fill a commit up to the block size of the disk
 *                   (commits are written with O_DIRECT, so each one ends at a boundary).
 *   SPOOLREC_RCPT — an outcome of one delivery attempt for some recipients of the message
 *                   qid: qid, state (SPOOLREC_RS_DELIVERED, _BOUNCED: final; _DEFERRED:
 *                   to be tried again), attempts so far, next try (unix seconds; 0, and
 *                   only 0, for a final state), the time of the attempt, and n >= 1
 *                   recipient indexes (u32, each an index into the MSG record's recipient
 *                   list, in its order; not checked against it here: the MSG may be in
 *                   another segment). One record carries the same outcome for several
 *                   recipients of one message. Merging the outcomes of a message is the
 *                   reader's (core/spooldir.h).
 *   SPOOLREC_VOID — the message qid was never acknowledged (its 451 went out after its
 *                   record was written): a reader treats it like DONE.
 *   any other non-zero type octet (> SPOOLREC_VOID) — a record of a newer build: decoded as
 *                   SPOOLREC_UNKNOWN (checked like any record, payload not looked at),
 *                   so that an older build steps over it instead of calling it damage.
 * Strings in a payload are length-prefixed (u32 LE); no NUL terminators on disk. */
#ifndef PROTO_SPOOLREC_H
#define PROTO_SPOOLREC_H

#include <stddef.h>
#include <stdint.h>

#define SPOOLREC_HDR_LEN 16
#define SPOOLREC_MAX_PAYLOAD (1u << 30)

/* SPOOLREC_NONE is never a valid type octet. SPOOLREC_UNKNOWN is not a type octet either
 * (it is out of the octet's range): it is what decoding says of a valid record whose type
 * octet this build does not know. */
enum spoolrec_type {
	SPOOLREC_NONE = 0,
	SPOOLREC_MSG = 1,
	SPOOLREC_DONE = 2,
	SPOOLREC_PAD = 3,
	SPOOLREC_RCPT = 4,
	SPOOLREC_VOID = 5,
	SPOOLREC_UNKNOWN = 0x100,
};

/* The state octet of a RCPT record. SPOOLREC_RS_OPEN is never on disk: it is what a
 * reader says of a recipient that has no outcome yet (never tried). */
enum spoolrec_rcpt_state {
	SPOOLREC_RS_OPEN = 0,
	SPOOLREC_RS_DELIVERED = 1,     /* final */
	SPOOLREC_RS_BOUNCED = 2,       /* final */
	SPOOLREC_RS_DEFERRED = 3,      /* to be tried again at next_try */
};

/* A DEFERRED recipient whose next_try is at or past this is held by the operator (ringrelay
 * ctl hold): never tried by itself, until released (a later note). 2^40 s is in the year
 * 36812: no real retry is that far, and x 1000 (ms) still fits 64 bits. */
#define SPOOLREC_HELD (1ull << 40)
/* At or past this (a held value too): returned to the sender by the operator (ringrelay ctl
 * bounce) while in a delivery: bounced with a DSN at its next try if that delivery's own
 * outcome (a later, final note) did not make it in. */
#define SPOOLREC_RETURN (1ull << 41)

enum spoolrec_rc { SPOOLREC_OK = 0, SPOOLREC_AGAIN, SPOOLREC_ERR };

enum spoolrec_err {
	SPOOLREC_E_NONE = 0,
	SPOOLREC_E_MAGIC,      /* not a record start */
	SPOOLREC_E_TYPE,       /* type octet zero or non-zero reserved octets */
	SPOOLREC_E_LENGTH,     /* payload length over SPOOLREC_MAX_PAYLOAD */
	SPOOLREC_E_CRC,        /* checksum mismatch */
	SPOOLREC_E_PAYLOAD,    /* payload fields inconsistent with its length */
	SPOOLREC_E_TRUNCATED,  /* (scan only) the record runs past the end of the segment */
};
const char *spoolrec_strerror(enum spoolrec_err e);

/* A decoded message; pointers are views into the decoded buffer (not NUL-terminated
 * unless stated). */
struct spoolrec_view { const char *p; uint32_t len; };

struct spoolrec_msg {
	struct spoolrec_view qid;
	uint64_t arrival;               /* unix seconds */
	uint32_t flags;                 /* smtp_srv flags */
	struct spoolrec_view sender;
	struct spoolrec_view client;
	uint32_t nrcpt;
	const uint8_t *rcpt_block;      /* iterate with spoolrec_next_rcpt() */
	uint32_t rcpt_block_len;
	uint64_t nonce;
	struct spoolrec_view data;      /* as stored: spoolrec_scramble(.., nonce) gives it back */
};

/* Size the encoded MSG record will take; 0 when it cannot be encoded (a field over 4 GiB
 * or the payload over SPOOLREC_MAX_PAYLOAD). */
size_t spoolrec_msg_size(const char *qid, const char *sender, const char *client,
                         const char *const *rcpt, size_t nrcpt, size_t datalen);
/* Encode a MSG record into out (cap >= spoolrec_msg_size()), its data scrambled with
 * nonce; returns bytes written, 0 (writing nothing) when cap is too small or the MSG
 * cannot be encoded. */
size_t spoolrec_encode_msg(uint8_t *out, size_t cap, const char *qid, uint64_t arrival,
                           uint32_t flags, uint64_t nonce, const char *sender,
                           const char *client, const char *const *rcpt, size_t nrcpt,
                           const uint8_t *data, size_t datalen);
/* XOR n octets with the keystream of nonce (dst may be src): scrambles the data of a
 * record, and unscrambles it. */
void spoolrec_scramble(uint8_t *dst, const uint8_t *src, size_t n, uint64_t nonce);
/* The same for the octets at offset `at` of the data (at a multiple of 8). */
void spoolrec_scramble_at(uint8_t *dst, const uint8_t *src, size_t n, uint64_t nonce,
                          uint64_t at);

/* For vectored, copy-free writes: everything of the MSG record but the data itself.
 * spoolrec_msg_head_size() is spoolrec_msg_size() - datalen (0 when the MSG cannot be
 * encoded). spoolrec_encode_msg_head() writes the record header and every payload field
 * up to and including data's length prefix into out (cap >= the head size) and returns
 * the octets written (0, writing nothing, when cap is too small or the MSG cannot be
 * encoded). data is the data as stored, already scrambled with nonce
 * (spoolrec_scramble); the CRC in the header covers it too (it is read, not copied): the
 * record on disk is out[0..ret) followed by data[0..datalen), octet for octet what
 * spoolrec_encode_msg() writes. data must not change until it has been written. */
size_t spoolrec_msg_head_size(const char *qid, const char *sender, const char *client,
                              const char *const *rcpt, size_t nrcpt, size_t datalen);
size_t spoolrec_encode_msg_head(uint8_t *out, size_t cap, const char *qid, uint64_t arrival,
                                uint32_t flags, uint64_t nonce, const char *sender,
                                const char *client, const char *const *rcpt, size_t nrcpt,
                                const uint8_t *data, size_t datalen);
/* A PAD record taking exactly len octets (len >= SPOOLREC_HDR_LEN): the header written to
 * hdr, and a payload of len - SPOOLREC_HDR_LEN zero octets that the caller puts behind
 * it (spoolrec_encode_pad writes them too). 0 when len is too short or too long. */
size_t spoolrec_pad_header(uint8_t hdr[SPOOLREC_HDR_LEN], size_t len);
size_t spoolrec_encode_pad(uint8_t *out, size_t len);
/* Encode a DONE record for qid; returns bytes written (cap >= SPOOLREC_HDR_LEN+4+strlen). */
size_t spoolrec_encode_done(uint8_t *out, size_t cap, const char *qid);

/* A decoded RCPT record; views point into the decoded buffer. idx holds n u32 LE
 * recipient indexes, unaligned: read them with spoolrec_outcome_idx(). */
struct spoolrec_outcome {
	struct spoolrec_view qid;
	uint8_t state;                  /* SPOOLREC_RS_DELIVERED, _BOUNCED or _DEFERRED */
	uint32_t attempts;
	uint64_t next_try, at;          /* unix seconds; next_try 0 for a final state */
	uint32_t n;                     /* >= 1 */
	const uint8_t *idx;             /* n u32 LE */
};

/* Recipient index i of o (i < o->n); UINT32_MAX, which indexes no recipient, when i is
 * out of range. */
uint32_t spoolrec_outcome_idx(const struct spoolrec_outcome *o, uint32_t i);

/* Size the encoded RCPT record will take for a qid of qidlen octets and n indexes; 0 when
 * it cannot be encoded (n == 0, or over SPOOLREC_MAX_PAYLOAD). */
size_t spoolrec_rcpt_size(size_t qidlen, uint32_t n);
/* Encode a RCPT record: the outcome state of the attempt made at `at` for the recipients
 * idx[0..n) of message qid. Returns bytes written; 0, writing nothing, when cap is too
 * small or the arguments are invalid: n == 0 or idx NULL, state not one of
 * SPOOLREC_RS_DELIVERED/_BOUNCED/_DEFERRED, a final state with next_try != 0. */
size_t spoolrec_encode_rcpt(uint8_t *out, size_t cap, const char *qid, uint8_t state,
                            uint32_t attempts, uint64_t next_try, uint64_t at,
                            const uint32_t *idx, uint32_t n);
/* Encode a VOID record for qid (cap >= SPOOLREC_HDR_LEN+4+strlen); 0, writing nothing,
 * when cap is too small. */
size_t spoolrec_encode_void(uint8_t *out, size_t cap, const char *qid);

/* Decode one record at the start of [p, p+len).
 *   SPOOLREC_OK:    *used = record length, *type set (MSG, DONE, PAD, RCPT, VOID or
 *                   UNKNOWN), *msg filled for MSG, *done_qid for DONE, VOID and RCPT (the
 *                   qid; spoolrec_outcome() gives the rest of a RCPT); an UNKNOWN record's
 *                   payload is only covered by the CRC, never parsed. A RCPT payload is
 *                   parsed and checked in full (state, next_try, n, the indexes filling the
 *                   payload exactly): a RCPT that does not parse is SPOOLREC_E_PAYLOAD
 *   SPOOLREC_AGAIN: the bytes are a valid beginning of a record but it is incomplete
 *   SPOOLREC_ERR:   *err says why
 * Any out-pointer may be NULL. */
enum spoolrec_rc spoolrec_decode(const uint8_t *p, size_t len, size_t *used,
                                 enum spoolrec_type *type, struct spoolrec_msg *msg,
                                 struct spoolrec_view *done_qid, enum spoolrec_err *err);

/* The same without computing the CRC: for a record that spoolrec_decode() or
 * spoolrec_scan() has already verified, read again from the same unchanged bytes (the
 * second pass of a scan). Every field is still bounds-checked, so bytes that were never
 * verified cannot make it read outside [p, p+len); they are just not integrity-checked. */
enum spoolrec_rc spoolrec_decode_verified(const uint8_t *p, size_t len, size_t *used,
                                          enum spoolrec_type *type, struct spoolrec_msg *msg,
                                          struct spoolrec_view *done_qid,
                                          enum spoolrec_err *err);

/* Decode the RCPT record at the start of [rec, rec+len) into *o (octets after the record
 * are not looked at). The record is verified: header, CRC, then every payload field, as
 * spoolrec_decode() does, so it may be given bytes nobody checked.
 *   SPOOLREC_OK:    *o filled (views into rec)
 *   SPOOLREC_AGAIN: a consistent beginning of a record, incomplete
 *   SPOOLREC_ERR:   *err says why; SPOOLREC_E_TYPE also for a valid record that is not a
 *                   RCPT
 * o and err may be NULL. */
enum spoolrec_rc spoolrec_outcome(const uint8_t *rec, size_t len, struct spoolrec_outcome *o,
                                  enum spoolrec_err *err);

/* ---- copies (segment reclaim) -----------------------------------------------------------
 * A live message of a segment that is about to be removed is copied forward into a newer
 * segment: its MSG record octet for octet (same qid, nonce and scrambled data) but for the
 * copy generation, the top octet of its flags (0 as accepted, one more per copy, at most
 * 255), followed by RCPT records that restate what is known of each recipient (final
 * ones, and deferred ones with their attempts and next try), so that the outcome records
 * in the segments removed after it are no longer needed. The whole copy is written in one
 * commit. A reader that finds a message twice (a crash between a copy's commit and the
 * removal of the original) keeps the one of the lowest generation (core/spooldir.h says
 * why) and merges the outcomes of both, which are by qid anyway. */
#define SPOOLREC_GEN_SHIFT 24
#define SPOOLREC_FLAGS_MASK 0x00ffffffu   /* the smtp_srv flags of a MSG */
#define SPOOLREC_GEN_MAX 255u

static inline unsigned spoolrec_gen(uint32_t flags)
{
	return flags >> SPOOLREC_GEN_SHIFT;
}

/* What a copy restates of one recipient: SPOOLREC_RS_OPEN (nothing), _DELIVERED,
 * _BOUNCED, or _DEFERRED with attempts and next_try. */
struct spoolrec_rstate {
	uint8_t state;
	uint32_t attempts;
	uint64_t next_try;
};

/* The copy of the MSG record rec[0..len) (verified: header, CRC, payload; it must be one
 * whole MSG record) with n == its recipient count states st, made at `at`: the record with
 * its generation one higher (saturating at SPOOLREC_GEN_MAX), then its RCPT records (runs
 * of consecutive recipients with one state, at most 64 indexes each). With out == NULL
 * returns the size the copy takes; else writes it (cap >= that size) and returns it. 0
 * when rec is not one whole valid MSG record, n is not its recipient count, or a state is
 * invalid (a final state with a next_try, an unknown state). The MSG record comes first:
 * its length is len. */
size_t spoolrec_encode_copy(uint8_t *out, size_t cap, const uint8_t *rec, size_t len,
                            const struct spoolrec_rstate *st, uint32_t n, uint64_t at);

/* ---- the segment scan ------------------------------------------------------------------
 * spoolrec_scan() walks a whole segment (a mapping of the file, not a stream) and reports,
 * in order, events whose [off, off+len) ranges cover [0, seglen) without gap or overlap:
 *
 *   RECORD   a valid record (magic, sane header, CRC-32C over the whole record, inside the
 *            segment); type MSG, DONE, PAD, RCPT, VOID or UNKNOWN, decoded into msg (MSG),
 *            done_qid (DONE, VOID, RCPT: the qid) and outcome (RCPT).
 *   SKIPPED  octets that are not a valid record, followed by a valid record: corruption
 *            (bit rot, a lost page). The scan resynchronises on the first offset after the
 *            bad record's start that holds a valid record, so nothing that follows the
 *            damage is dropped. Always followed by a RECORD. err: why the record at off
 *            was refused (SPOOLREC_E_TRUNCATED when it claimed more than is left).
 *   TORN     octets that are not a valid record, with no valid record after them: a write
 *            torn by a crash, never acknowledged; not an error. At most one, just before
 *            END. err as for SKIPPED.
 *   END      the rest of the segment, [off, seglen): zero octets only (space written
 *            ahead and not used yet; len may be 0). Always the last event.
 *
 * The zero tail is found from the end, a word at a time, before the walk; the search for
 * the next record uses memmem() for the magic, so neither costs a decode per offset. Each
 * record is decoded once (a record found by resynchronising is handed on as decoded). A
 * valid record embedded in a damaged record's data (a message that carries a spool
 * segment) is found like any other record when its host is damaged: the format cannot
 * tell them apart.
 *
 * cb returns 0 to go on; spoolrec_scan() returns 0 after END, or cb's first non-zero
 * value. Views in an event point into p and stay valid as long as p does. */
enum spoolrec_scan_kind {
	SPOOLREC_SCAN_NONE = 0,
	SPOOLREC_SCAN_RECORD,
	SPOOLREC_SCAN_SKIPPED,
	SPOOLREC_SCAN_TORN,
	SPOOLREC_SCAN_END,
};

struct spoolrec_scan_ev {
	enum spoolrec_scan_kind kind;
	size_t off;
	size_t len;
	enum spoolrec_type type;           /* RECORD */
	struct spoolrec_msg msg;           /* RECORD of type MSG */
	struct spoolrec_view done_qid;     /* RECORD of type DONE, VOID or RCPT: its qid */
	struct spoolrec_outcome outcome;   /* RECORD of type RCPT */
	enum spoolrec_err err;             /* SKIPPED, TORN */
};

typedef int (*spoolrec_scan_cb)(void *ctx, const struct spoolrec_scan_ev *ev);

int spoolrec_scan(const uint8_t *p, size_t len, spoolrec_scan_cb cb, void *ctx);

/* Iterate recipients: *off starts at 0; returns 1 and sets *r while there is one. */
int spoolrec_next_rcpt(const struct spoolrec_msg *m, uint32_t *off, struct spoolrec_view *r);

#endif
