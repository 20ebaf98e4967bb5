/* proto/spoolrec — the on-disk record format of the spool segments. Pure: bytes in,
 * bytes out, no I/O.
 *
 * A segment file is a sequence of records. Every record is
 *   magic "RRS1" (4) | type (1) | reserved (3, zero) | payload length (4, LE) |
 *   CRC-32C of type+reserved+length+payload (4, LE) | payload
 * so that a record that was torn by a crash (short, or with a bad checksum) is detected.
 *
 * Types:
 *   SPOOLREC_MSG  — an accepted message: qid, arrival time, flags, sender, recipients,
 *                   client (as shown in logs), data (the message with its Received:).
 *   SPOOLREC_DONE — the message qid needs no more work (delivered or bounced).
 * Strings in a payload are length-prefixed (u32 LE); no NUL terminators on disk. */
#ifndef PROTO_SPOOLREC_H
#define PROTO_SPOOLREC_H

#include <stddef.h>
#include <stdint.h>

#define SPOOLREC_HDR_LEN 16
#define SPOOLREC_MAX_PAYLOAD (1u << 30)

enum spoolrec_type { SPOOLREC_NONE = 0, SPOOLREC_MSG = 1, SPOOLREC_DONE = 2 };

enum spoolrec_rc { SPOOLREC_OK = 0, SPOOLREC_AGAIN, SPOOLREC_ERR };

enum spoolrec_err {
	SPOOLREC_E_NONE = 0,
	SPOOLREC_E_MAGIC,      /* not a record start */
	SPOOLREC_E_TYPE,       /* unknown type or non-zero reserved octets */
	SPOOLREC_E_LENGTH,     /* payload length over SPOOLREC_MAX_PAYLOAD */
	SPOOLREC_E_CRC,        /* checksum mismatch */
	SPOOLREC_E_PAYLOAD,    /* payload fields inconsistent with its length */
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
	struct spoolrec_view data;
};

/* Size the encoded MSG record will take. */
size_t spoolrec_msg_size(const char *qid, const char *sender, const char *client,
                         const char *const *rcpt, size_t nrcpt, size_t datalen);
/* Encode a MSG record into out (cap >= spoolrec_msg_size()); returns bytes written. */
size_t spoolrec_encode_msg(uint8_t *out, size_t cap, const char *qid, uint64_t arrival,
                           uint32_t flags, const char *sender, const char *client,
                           const char *const *rcpt, size_t nrcpt,
                           const uint8_t *data, size_t datalen);
/* The record without its data, for a vectored write: out[0..ret) then data[0..datalen)
 * is byte for byte what spoolrec_encode_msg() writes. 0 when it cannot be encoded. */
size_t spoolrec_msg_head_size(const char *qid, const char *sender, const char *client,
                              const char *const *rcpt, size_t nrcpt, size_t datalen);
size_t spoolrec_encode_msg_head(uint8_t *out, size_t cap, const char *qid, uint64_t arrival,
                                uint32_t flags, const char *sender, const char *client,
                                const char *const *rcpt, size_t nrcpt,
                                const uint8_t *data, size_t datalen);
/* Encode a DONE record for qid; returns bytes written (cap >= SPOOLREC_HDR_LEN+4+strlen). */
size_t spoolrec_encode_done(uint8_t *out, size_t cap, const char *qid);

/* Decode one record at the start of [p, p+len).
 *   SPOOLREC_OK:    *used = record length, *type set, *msg filled for MSG, *done_qid for DONE
 *   SPOOLREC_AGAIN: the bytes are a valid beginning of a record but it is incomplete
 *   SPOOLREC_ERR:   *err says why */
enum spoolrec_rc spoolrec_decode(const uint8_t *p, size_t len, size_t *used,
                                 enum spoolrec_type *type, struct spoolrec_msg *msg,
                                 struct spoolrec_view *done_qid, enum spoolrec_err *err);

/* Iterate recipients: *off starts at 0; returns 1 and sets *r while there is one. */
int spoolrec_next_rcpt(const struct spoolrec_msg *m, uint32_t *off, struct spoolrec_view *r);

#endif
