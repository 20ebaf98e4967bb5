/* test/proto/smtp_srv_test — the inbound SMTP session, byte by byte.
 *
 * Each table case is a client byte stream with the exact transcript the session must
 * write (banner included), the messages it must hand out (envelope and exact data) and
 * the last event. Every case runs one-shot, split in two at every offset, and one octet
 * at a time; all runs must give the same result. The driver behaves like the real
 * caller: on SMTP_SRV_EV_MESSAGE it records the message, checks that the session now
 * consumes nothing (SMTP_SRV_EV_WAIT), reports the spool result and feeds the rest. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/smtp_srv.h"

/* ---- fixtures --------------------------------------------------------------------- */

#define HOST "mx.example.com"
#define PEER "192.0.2.1"
#define NOW  ((time_t)1795255200)              /* Sat, 21 Nov 2026 10:00:00 UTC */
#define DATE "Sat, 21 Nov 2026 10:00:00 +0000"

struct t_ctx {
	unsigned nqid;
	unsigned nrelay;                       /* rcpt_allowed calls */
	bool use_now;                          /* the clock is `now`, not NOW */
	time_t now;
	const char *qid;                       /* every queue id is this (NULL: Q1, Q2, ...) */
	bool qid_fail;                         /* new_qid fails */
};

/* Relay policy of the tests: everything but denied.example. */
static bool t_rcpt_allowed(void *ctx, const char *domain, size_t len)
{
	((struct t_ctx *)ctx)->nrelay++;
	return !(len == 14 && strncasecmp(domain, "denied.example", 14) == 0);
}

static bool t_new_qid(void *ctx, char *buf, size_t cap)
{
	struct t_ctx *c = ctx;

	if (c->qid_fail)
		return false;
	if (c->qid)
		snprintf(buf, cap, "%s", c->qid);
	else
		snprintf(buf, cap, "Q%u", ++c->nqid);
	return true;
}

static time_t t_now(void *ctx)
{
	const struct t_ctx *c = ctx;

	return c->use_now ? c->now : NOW;
}

static const struct smtp_srv_ops t_ops = { .rcpt_allowed = t_rcpt_allowed, .new_qid = t_new_qid, .now = t_now };

static const struct smtp_srv_limits t_lim = {
	.max_message_size = 10000, .max_recipients = 3, .max_line_length = 78, .max_errors = 20,
};
static const struct smtp_srv_limits t_lim_small = {
	.max_message_size = 100, .max_recipients = 3, .max_line_length = 78, .max_errors = 20,
};

/* ---- expected texts --------------------------------------------------------------- */

#define BANNER   "220 " HOST " ESMTP ringrelay\r\n"
#define EHLO_SZ(size) \
	"250-" HOST "\r\n250-PIPELINING\r\n250-SIZE " size "\r\n250-VRFY\r\n" \
	"250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
#define EHLO_R   EHLO_SZ("10000")
#define HELO_R   "250 " HOST "\r\n"
#define OK       "250 2.0.0 Ok\r\n"
#define MAIL_OK  "250 2.1.0 Ok\r\n"
#define RCPT_OK  "250 2.1.5 Ok\r\n"
#define DATA_GO  "354 End data with <CR><LF>.<CR><LF>\r\n"
#define QUEUED(q) "250 2.0.0 Ok: queued as " q "\r\n"
#define QFAIL    "451 4.3.0 Error: queue file write error\r\n"
#define BYE      "221 2.0.0 Bye\r\n"
#define R502     "502 5.5.2 Error: command not recognized\r\n"
#define R500     "500 5.5.2 Error: bad syntax\r\n"
#define BARE_LF  "550 5.5.2 Error: bare <LF> received\r\n"
#define BARE_CR  "550 5.5.2 Error: bare <CR> received\r\n"
#define TOO_LONG "500 5.5.2 Error: command too long\r\n"
#define LINE_LONG "550 5.6.0 Error: message line too long\r\n"
#define TOO_BIG  "552 5.3.4 Error: message file too big\r\n"
#define NEED_MAIL "503 5.5.1 Error: need MAIL command\r\n"
#define NEED_RCPT "503 5.5.1 Error: need RCPT command\r\n"
#define NO_RCPT  "554 5.5.1 Error: no valid recipients\r\n"
#define NEED_HELO "503 5.5.1 Error: send HELO/EHLO first\r\n"
#define NESTED   "503 5.5.1 Error: nested MAIL command\r\n"
#define BAD_FROM "501 5.1.7 Bad sender address syntax\r\n"
#define BAD_TO   "501 5.1.3 Bad recipient address syntax\r\n"
#define SYN_MAIL "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
#define SYN_RCPT "501 5.5.4 Syntax: RCPT TO:<address>\r\n"
#define TOO_MANY_RCPT "452 4.5.3 Error: too many recipients\r\n"
#define TOO_MANY_ERR  "421 4.7.0 " HOST " Error: too many errors\r\n"

/* The Received: header: one recipient, or any other number. */
#define RCVD1(helo, proto, qid, rcpt)                                                 \
	"Received: from " helo " (" PEER " [" PEER "])\r\n\tby " HOST " (ringrelay) with " \
	proto " id " qid "\r\n\tfor <" rcpt ">; " DATE "\r\n"
#define RCVDN(helo, proto, qid)                                                       \
	"Received: from " helo " (" PEER " [" PEER "])\r\n\tby " HOST " (ringrelay) with " \
	proto " id " qid ";\r\n\t" DATE "\r\n"

#define X10  "xxxxxxxxxx"
#define X50  X10 X10 X10 X10 X10
#define X100 X50 X50
#define X500 X100 X100 X100 X100 X100
#define L77  X50 X10 X10 "xxxxxxx"
#define L78  L77 "x"
#define E5   "XXXX\r\nXXXX\r\nXXXX\r\nXXXX\r\nXXXX\r\n"
#define R5   R502 R502 R502 R502 R502

/* Client streams used by several cases. */
#define START    "EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n"
#define START_R  BANNER EHLO_R MAIL_OK RCPT_OK
#define MSG1 "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\nx\r\n.\r\n"
#define SMUG_HEAD START "DATA\r\nSubject: s\r\n\r\nbody"
#define SMUG_CMDS \
	"MAIL FROM:<evil@bad.example>\r\nRCPT TO:<victim@y.example>\r\nDATA\r\n" \
	"Subject: smuggled\r\n\r\nevil"
#define AFTER_SMUG \
	"MAIL FROM:<a@x.example>\r\nRCPT TO:<c@y.example>\r\nDATA\r\nreal\r\n.\r\nQUIT\r\n"
#define AFTER_SMUG_R MAIL_OK RCPT_OK DATA_GO QUEUED("Q2") BYE
#define AFTER_SMUG_MSG \
	{ "Q2", "c.example", "a@x.example", { "c@y.example" }, 0, \
	  RCVD1("c.example", "ESMTP", "Q2", "c@y.example") "real\r\n" }

#define MSG_HEAD   "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n"
#define MSG_HEAD_R MAIL_OK RCPT_OK DATA_GO
#define L8    "xxxxxxxx\r\n"
#define L8X9  L8 L8 L8 L8 L8 L8 L8 L8 L8
#define L8X10 L8X9 L8

/* ---- cases ------------------------------------------------------------------------ */

enum t_after { T_AFTER_NONE = 0, T_AFTER_TIMEOUT, T_AFTER_SHUTDOWN };

struct want_msg {
	const char *qid, *helo, *mail_from;
	const char *rcpt[4];                   /* NULL-terminated */
	unsigned flags;                        /* SMTP_SRV_NODOT aside: see nodot */
	const char *data;                      /* compared over strlen() unless want_len */
	int nodot;                             /* SMTP_SRV_NODOT: 1 set, -1 clear, 0 either;
	                                          always: when set, no line of the data
	                                          begins with '.' */
};

struct srv_case {
	const char *name;
	const char *in;
	size_t in_len;
	const char *want_out;
	struct want_msg want_msg[3];
	size_t want_nmsg;
	size_t want_len[3];                    /* data length of message n if not strlen() */
	enum smtp_srv_ev want_ev;
	unsigned fail_mask;                    /* bit n: queue_failed() for message n */
	enum t_after after;
	const struct smtp_srv_limits *lim;     /* NULL: t_lim */
	const char *peer;                      /* NULL: PEER */
};

#define IN(s) .in = s, .in_len = sizeof(s) - 1
#define BIN_DATA RCVD1("c.example", "ESMTP", "Q1", "b@y.example") "\x01\x7f\x80\xff\tz\0y\r\n"

static const struct srv_case srv_cases[] = {
	{
		.name = "full session",
		IN("EHLO client.example\r\nMAIL FROM:<alice@example.org>\r\n"
		   "RCPT TO:<bob@example.com>\r\nDATA\r\nSubject: hi\r\n\r\nhello\r\n.\r\n"
		   "QUIT\r\n"),
		.want_out = BANNER EHLO_R MAIL_OK RCPT_OK DATA_GO QUEUED("Q1") BYE,
		.want_msg = { { "Q1", "client.example", "alice@example.org", { "bob@example.com" },
		                0,
		                RCVD1("client.example", "ESMTP", "Q1", "bob@example.com")
		                "Subject: hi\r\n\r\nhello\r\n" } },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "pipelined session, two messages",
		IN("EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n"
		   "RCPT TO:<c@y.example>\r\nDATA\r\none\r\n.\r\nMAIL FROM:<d@x.example>\r\n"
		   "RCPT TO:<e@y.example>\r\nDATA\r\ntwo\r\n.\r\nNOOP\r\nRSET\r\nQUIT\r\n"
		   "NOOP\r\n"),
		.want_out = BANNER EHLO_R MAIL_OK RCPT_OK RCPT_OK DATA_GO QUEUED("Q1") MAIL_OK
		            RCPT_OK DATA_GO QUEUED("Q2") OK OK BYE,
		.want_msg = {
			{ "Q1", "c.example", "a@x.example", { "b@y.example", "c@y.example" }, 0,
			  RCVDN("c.example", "ESMTP", "Q1") "one\r\n" },
			{ "Q2", "c.example", "d@x.example", { "e@y.example" }, 0,
			  RCVD1("c.example", "ESMTP", "Q2", "e@y.example") "two\r\n" },
		},
		.want_nmsg = 2,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "HELO: SMTP in Received, input left unterminated",
		IN("HELO old.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n"
		   "DATA\r\nx\r\n.\r\nNOOP"),
		.want_out = BANNER HELO_R MAIL_OK RCPT_OK DATA_GO QUEUED("Q1"),
		.want_msg = { { "Q1", "old.example", "a@x.example", { "b@y.example" }, 0,
		                RCVD1("old.example", "SMTP", "Q1", "b@y.example") "x\r\n" } },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_NONE,
	},
	{
		.name = "null sender, postmaster, empty message right after 354",
		IN("EHLO c.example\r\nMAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nDATA\r\n.\r\n"),
		.want_out = BANNER EHLO_R MAIL_OK RCPT_OK DATA_GO QUEUED("Q1"),
		.want_msg = { { "Q1", "c.example", "", { "Postmaster" }, 0,
		                RCVD1("c.example", "ESMTP", "Q1", "Postmaster") } },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_NONE,
	},
	{
		.name = "SIZE, BODY, SMTPUTF8 parameters",
		IN("EHLO c.example\r\n"
		   "MAIL FROM:<a@x.example> SIZE=500 BODY=8BITMIME\r\n"
		   "RCPT TO:<b@y.example>\r\nDATA\r\n8bit \xc3\xa9\r\n.\r\n"
		   "mail from:<\xc3\xa9@x.example>  size=10000 smtputf8 body=7bit\r\n"
		   "RCPT TO:<b@\xc3\xa9.example>\r\nDATA\r\nu\r\n.\r\n"),
		.want_out = BANNER EHLO_R MAIL_OK RCPT_OK DATA_GO QUEUED("Q1") MAIL_OK RCPT_OK
		            DATA_GO QUEUED("Q2"),
		.want_msg = {
			{ "Q1", "c.example", "a@x.example", { "b@y.example" }, SMTP_SRV_8BITMIME,
			  RCVD1("c.example", "ESMTP", "Q1", "b@y.example") "8bit \xc3\xa9\r\n" },
			{ "Q2", "c.example", "\xc3\xa9@x.example", { "b@\xc3\xa9.example" },
			  SMTP_SRV_SMTPUTF8,
			  RCVD1("c.example", "UTF8SMTP", "Q2", "b@\xc3\xa9.example") "u\r\n" },
		},
		.want_nmsg = 2,
		.want_ev = SMTP_SRV_EV_NONE,
	},
	{
		.name = "space after colon, case-insensitive commands",
		IN("ehlo c.example\r\nmail from: <a@x.example>\r\nrCpT To:  <b@y.example>\r\n"
		   "data\r\nx\r\n.\r\nquit\r\n"),
		.want_out = BANNER EHLO_R MAIL_OK RCPT_OK DATA_GO QUEUED("Q1") BYE,
		.want_msg = { { "Q1", "c.example", "a@x.example", { "b@y.example" }, 0,
		                RCVD1("c.example", "ESMTP", "Q1", "b@y.example") "x\r\n" } },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "parameter errors",
		IN("EHLO c.example\r\n"
		   "MAIL FROM:<a@x.example> SIZE=10001\r\n"
		   "MAIL FROM:<a@x.example> SIZE=99999999999999999999999\r\n"
		   "MAIL FROM:<a@x.example> SIZE=12k\r\n"
		   "MAIL FROM:<a@x.example> SIZE=\r\n"
		   "MAIL FROM:<a@x.example> BODY=BINARYMIME\r\n"
		   "MAIL FROM:<a@x.example> FOO=bar\r\n"
		   "MAIL FROM:<a@x.example> AUTH=<>\r\n"
		   "MAIL FROM:<\xc3\xa9@x.example>\r\n"
		   "MAIL FROM:<a@x.example> SIZE=10000\r\n"
		   "RCPT TO:<b@y.example> NOTIFY=NEVER\r\n"
		   "RCPT TO:<b@\xc3\xa9.example>\r\n"
		   "QUIT\r\n"),
		.want_out = BANNER EHLO_R
		            "552 5.3.4 Message size exceeds fixed limit\r\n"
		            "552 5.3.4 Message size exceeds fixed limit\r\n"
		            "501 5.5.4 Bad message size syntax\r\n"
		            "501 5.5.4 Bad message size syntax\r\n"
		            "555 5.5.4 Unsupported option: BODY=BINARYMIME\r\n"
		            "555 5.5.4 Unsupported option: FOO=bar\r\n"
		            "555 5.5.4 Unsupported option: AUTH=<>\r\n"
		            "553 5.6.7 Must declare SMTPUTF8 to send unicode address\r\n"
		            MAIL_OK
		            "555 5.5.4 Unsupported option: NOTIFY=NEVER\r\n"
		            "553 5.6.7 Must declare SMTPUTF8 to send unicode address\r\n"
		            BYE,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "syntax errors",
		IN("EHLO\r\nHELO \r\nEHLO c.example\r\n"
		   "MAIL FROM:a@x.example\r\n"
		   "MAIL TO:<a@x.example>\r\n"
		   "MAIL FROM:\r\n"
		   "MAIL FROM :<a@x.example>\r\n"
		   "MAIL FROM:<a@x.example>junk\r\n"
		   "MAIL FROM:<a@@x.example>\r\n"
		   "MAIL FROM:<a@x.example\r\n"
		   "MAIL FROM:<a@x.example>\r\n"
		   "RCPT TO:<b@@y.example>\r\n"
		   "RCPT TO:<b>\r\n"
		   "RCPT TO:<>\r\n"
		   "RCPT FROM:<b@y.example>\r\n"
		   "RCPT TO:\r\n"
		   "RCPT TO:<b@y.example>\r\n"
		   "DATA now\r\n"
		   "RSET please\r\n"
		   "VRFY\r\n"
		   "QUIT\r\n"),
		.want_out = BANNER "501 5.5.4 Syntax: EHLO hostname\r\n"
		            "501 5.5.4 Syntax: HELO hostname\r\n" EHLO_R
		            BAD_FROM SYN_MAIL SYN_MAIL SYN_MAIL BAD_FROM BAD_FROM BAD_FROM
		            MAIL_OK BAD_TO BAD_TO BAD_TO SYN_RCPT SYN_RCPT RCPT_OK
		            "501 5.5.4 Syntax: DATA\r\n"
		            "501 5.5.4 Syntax: RSET\r\n"
		            "501 5.5.4 Syntax: VRFY address\r\n" BYE,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "unknown commands, empty line, NUL",
		IN("\r\n \r\n NOOP\r\nSTARTTLS\r\nAUTH PLAIN AGJvYgBzZWNyZXQ=\r\n"
		   "BDAT 10 LAST\r\nMAILFROM:<a@x.example>\r\nNOOPE\r\nNO\0OP\r\nQUIT now\r\n"),
		.want_out = BANNER R500 R500 R500 R502 R502 R502 R502 R502 R500 BYE,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "503 ordering errors",
		IN("MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n"
		   "EHLO c.example\r\nRCPT TO:<b@y.example>\r\nDATA\r\n"
		   "MAIL FROM:<a@x.example>\r\nMAIL FROM:<a@x.example>\r\nDATA\r\n"
		   "RCPT TO:<b@y.example>\r\nMAIL FROM:<a@x.example>\r\nQUIT\r\n"),
		.want_out = BANNER NEED_HELO NEED_MAIL NEED_RCPT EHLO_R NEED_MAIL NEED_RCPT
		            MAIL_OK NESTED NO_RCPT RCPT_OK NESTED BYE,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "EHLO and RSET reset the transaction",
		IN("RSET\r\nMAIL FROM:<a@x.example>\r\n"
		   "EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n"
		   "EHLO c.example\r\nDATA\r\nRCPT TO:<b@y.example>\r\n"
		   "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nRSET\r\nDATA\r\n"
		   "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nHELO h.example\r\n"
		   "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\nz\r\n.\r\n"),
		.want_out = BANNER OK NEED_HELO EHLO_R MAIL_OK RCPT_OK EHLO_R NEED_RCPT
		            NEED_MAIL MAIL_OK RCPT_OK OK NEED_RCPT MAIL_OK RCPT_OK HELO_R MAIL_OK
		            RCPT_OK DATA_GO QUEUED("Q4"),
		.want_msg = { { "Q4", "h.example", "a@x.example", { "b@y.example" }, 0,
		                RCVD1("h.example", "SMTP", "Q4", "b@y.example") "z\r\n" } },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_NONE,
	},
	{
		.name = "relay denied, postmaster needs no relay",
		IN(START "RCPT TO:<x@denied.example>\r\nRCPT TO:<\"q u\"@DENIED.Example>\r\n"
		   "RCPT TO:<postmaster>\r\nDATA\r\nm\r\n.\r\n"),
		.want_out = START_R "554 5.7.1 <x@denied.example>: Relay access denied\r\n"
		            "554 5.7.1 <\"q u\"@DENIED.Example>: Relay access denied\r\n"
		            RCPT_OK DATA_GO QUEUED("Q1"),
		.want_msg = { { "Q1", "c.example", "a@x.example", { "b@y.example", "postmaster" }, 0,
		                RCVDN("c.example", "ESMTP", "Q1") "m\r\n" } },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_NONE,
	},
	{
		.name = "too many recipients (limit 3), source route dropped",
		IN(START "RCPT TO:<@relay.example:c@y.example>\r\nRCPT TO:<d@y.example>\r\n"
		   "RCPT TO:<e@y.example>\r\nRCPT TO:<x@denied.example>\r\nDATA\r\nm\r\n.\r\n"),
		.want_out = START_R RCPT_OK RCPT_OK TOO_MANY_RCPT TOO_MANY_RCPT DATA_GO
		            QUEUED("Q1"),
		.want_msg = { { "Q1", "c.example", "a@x.example",
		                { "b@y.example", "c@y.example", "d@y.example" }, 0,
		                RCVDN("c.example", "ESMTP", "Q1") "m\r\n" } },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_NONE,
	},
	{
		.name = "over-long command: 512 octets ok, 513 refused",
		IN("NOOP " X500 "xxxxxxx\r\nNOOP " X500 "xxxxxxxx\r\nVRFY " X500 X500 X500 "\r\n"
		   "VRFY " X500 "\n" "VRFY b\r\n"),
		.want_out = BANNER OK TOO_LONG TOO_LONG BARE_LF
		            "252 2.0.0 Send some mail, I'll try my best\r\n",
		.want_ev = SMTP_SRV_EV_NONE,
	},
	{
		.name = "over-long data line: 78 octets ok, 79 refused",
		IN(START "DATA\r\n" L78 "\r\n.." L77 "\r\n.\r\n"
		   "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n"
		   "ok\r\n" L78 "x\r\nmore\r\n.\r\n"),
		.want_out = START_R DATA_GO QUEUED("Q1") MAIL_OK RCPT_OK DATA_GO LINE_LONG,
		.want_msg = { { "Q1", "c.example", "a@x.example", { "b@y.example" }, 0,
		                RCVD1("c.example", "ESMTP", "Q1", "b@y.example")
		                L78 "\r\n." L77 "\r\n" } },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_NONE,
	},
	{
		.name = "message size: 100 octets ok, 101 too big",
		IN(START "DATA\r\n" X50 "\r\n" X10 X10 X10 X10 "xxxxxx\r\n.\r\n"
		   "MAIL FROM:<a@x.example> SIZE=101\r\n"
		   "MAIL FROM:<a@x.example> SIZE=100\r\nRCPT TO:<b@y.example>\r\nDATA\r\n"
		   X50 "\r\n" X10 X10 X10 X10 "xxxxxxx\r\n" X50 "\r\n.\r\nQUIT\r\n"),
		.want_out = BANNER EHLO_SZ("100") MAIL_OK RCPT_OK DATA_GO QUEUED("Q1")
		            "552 5.3.4 Message size exceeds fixed limit\r\n"
		            MAIL_OK RCPT_OK DATA_GO TOO_BIG BYE,
		.want_msg = { { "Q1", "c.example", "a@x.example", { "b@y.example" }, 0,
		                RCVD1("c.example", "ESMTP", "Q1", "b@y.example")
		                X50 "\r\n" X10 X10 X10 X10 "xxxxxx\r\n" } },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_CLOSE,
		.lim = &t_lim_small,
	},
	{
		/* the bulk path takes runs of plain lines; what is not plain goes octet by
		 * octet, and the bulk path picks up behind it (after a dot, mid-line) */
		.name = "runs of plain lines, dot lines amid them, the end right behind",
		IN(START "DATA\r\n" L78 "\r\n" L77 "\r\nabc\r\n\r\n..dot\r\n.x" L77 "\r\n"
		   "..\r\nx\r\n...\r\n\r\nplain\r\n.\r\nNOOP\r\n"),
		.want_out = START_R DATA_GO QUEUED("Q1") OK,
		.want_msg = { { "Q1", "c.example", "a@x.example", { "b@y.example" }, 0,
		                RCVD1("c.example", "ESMTP", "Q1", "b@y.example")
		                L78 "\r\n" L77 "\r\nabc\r\n\r\n.dot\r\nx" L77 "\r\n"
		                ".\r\nx\r\n..\r\n\r\nplain\r\n" } },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_NONE,
	},
	{
		.name = "line limit in runs of plain lines: 78 ok, 79 refused, the dot not counted",
		IN(START "DATA\r\na\r\n" L78 "\r\n.." L77 "\r\nb\r\n.\r\n"
		   MSG_HEAD "a\r\n" L78 "x\r\nb\r\n.\r\n"
		   MSG_HEAD "a\r\n." L78 "\r\nb\r\n.\r\n"
		   MSG_HEAD "a\r\n.." L78 "\r\nb\r\n.\r\n"),
		.want_out = START_R DATA_GO QUEUED("Q1") MSG_HEAD_R LINE_LONG MSG_HEAD_R QUEUED("Q3")
		            MSG_HEAD_R LINE_LONG,
		.want_msg = {
			{ "Q1", "c.example", "a@x.example", { "b@y.example" }, 0,
			  RCVD1("c.example", "ESMTP", "Q1", "b@y.example")
			  "a\r\n" L78 "\r\n." L77 "\r\nb\r\n" },
			{ "Q3", "c.example", "a@x.example", { "b@y.example" }, 0,
			  RCVD1("c.example", "ESMTP", "Q3", "b@y.example") "a\r\n" L78 "\r\nb\r\n" },
		},
		.want_nmsg = 2,
		.want_ev = SMTP_SRV_EV_NONE,
	},
	{
		/* 10 octets a line: the 100 octets of the limit are ten lines */
		.name = "size limit in runs of plain lines: 100 ok, 101 by a CRLF or by text",
		IN(START "DATA\r\n" L8X10 ".\r\n"
		   MSG_HEAD L8X9 "xxxxxxxxx\r\n.\r\n"
		   MSG_HEAD L8X9 "xxxxxxxxxxx\r\n.\r\n"
		   MSG_HEAD L8X9 "..xxxxxxxx\r\n.\r\n"
		   MSG_HEAD L8X9 ".xxxxxxxx\r\n.\r\n"),
		.want_out = BANNER EHLO_SZ("100") MAIL_OK RCPT_OK DATA_GO QUEUED("Q1")
		            MSG_HEAD_R TOO_BIG MSG_HEAD_R TOO_BIG MSG_HEAD_R TOO_BIG
		            MSG_HEAD_R QUEUED("Q5"),
		.want_msg = {
			{ "Q1", "c.example", "a@x.example", { "b@y.example" }, 0,
			  RCVD1("c.example", "ESMTP", "Q1", "b@y.example") L8X10 },
			{ "Q5", "c.example", "a@x.example", { "b@y.example" }, 0,
			  RCVD1("c.example", "ESMTP", "Q5", "b@y.example") L8X9 "xxxxxxxx\r\n" },
		},
		.want_nmsg = 2,
		.want_ev = SMTP_SRV_EV_NONE,
		.lim = &t_lim_small,
	},
	{
		.name = "bare CR and LF amid runs of plain lines",
		IN(START "DATA\r\na\r\nb\r\nc\rd\r\ne\r\n.\r\n"
		   MSG_HEAD "a\r\nb\nc\r\n.\r\n"
		   MSG_HEAD "a\r\n\r\r\nb\r\n.\r\n"
		   MSG_HEAD "a\r\nb\r\n\n.\r\nc\r\n.\r\n"
		   MSG_HEAD "x\r\n.\r\r\n.\r\n"
		   MSG_HEAD "x\r\n.\r\nQUIT\r\n"),
		.want_out = START_R DATA_GO BARE_CR MSG_HEAD_R BARE_LF MSG_HEAD_R BARE_CR
		            MSG_HEAD_R BARE_LF MSG_HEAD_R BARE_CR MSG_HEAD_R QUEUED("Q6") BYE,
		.want_msg = { { "Q6", "c.example", "a@x.example", { "b@y.example" }, 0,
		                RCVD1("c.example", "ESMTP", "Q6", "b@y.example") "x\r\n" } },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "defects behind a run: too big then too long, too big then bare CR",
		IN(START "DATA\r\n" L8X10 L78 "x\r\n.\r\n"
		   MSG_HEAD L8X10 "y\r\na\rb\r\n.\r\n"
		   MSG_HEAD L8X10 L78 "x\r\nc\nd\r\n.\r\n"),
		.want_out = BANNER EHLO_SZ("100") MAIL_OK RCPT_OK DATA_GO LINE_LONG
		            MSG_HEAD_R BARE_CR MSG_HEAD_R BARE_LF,
		.want_ev = SMTP_SRV_EV_NONE,
		.lim = &t_lim_small,
	},
	{
		.name = "dot-unstuffing; only a line that is exactly '.' ends DATA",
		IN(START "DATA\r\n..x\r\n...\r\n..\r\nx.\r\n. \r\n.x\r\n\r\n.\r\n"),
		.want_out = START_R DATA_GO QUEUED("Q1"),
		.want_msg = { { "Q1", "c.example", "a@x.example", { "b@y.example" }, 0,
		                RCVD1("c.example", "ESMTP", "Q1", "b@y.example")
		                ".x\r\n..\r\n.\r\nx.\r\n \r\nx\r\n\r\n" } },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_NONE,
	},
	{
		.name = "binary and 8-bit octets in data pass through",
		IN(START "DATA\r\n\x01\x7f\x80\xff\tz\0y\r\n.\r\n"),
		.want_out = START_R DATA_GO QUEUED("Q1"),
		.want_msg = { { "Q1", "c.example", "a@x.example", { "b@y.example" }, 0, BIN_DATA } },
		.want_len = { sizeof(BIN_DATA) - 1 },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_NONE,
	},
	{
		.name = "smuggling \\n.\\n",
		IN(SMUG_HEAD "\n.\n" SMUG_CMDS "\r\n.\r\n" AFTER_SMUG),
		.want_out = START_R DATA_GO BARE_LF AFTER_SMUG_R,
		.want_msg = { AFTER_SMUG_MSG },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "smuggling \\n.\\r\\n",
		IN(SMUG_HEAD "\n.\r\n" SMUG_CMDS "\r\n.\r\n" AFTER_SMUG),
		.want_out = START_R DATA_GO BARE_LF AFTER_SMUG_R,
		.want_msg = { AFTER_SMUG_MSG },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "smuggling \\r\\n.\\n",
		IN(SMUG_HEAD "\r\n.\n" SMUG_CMDS "\r\n.\r\n" AFTER_SMUG),
		.want_out = START_R DATA_GO BARE_LF AFTER_SMUG_R,
		.want_msg = { AFTER_SMUG_MSG },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "smuggling \\r.\\r\\n",
		IN(SMUG_HEAD "\r.\r\n" SMUG_CMDS "\r\n.\r\n" AFTER_SMUG),
		.want_out = START_R DATA_GO BARE_CR AFTER_SMUG_R,
		.want_msg = { AFTER_SMUG_MSG },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "smuggling \\n.\\n twice, then the real end",
		IN(SMUG_HEAD "\n.\n" SMUG_CMDS "\n.\n" "\r\n.\r\nQUIT\r\n"),
		.want_out = START_R DATA_GO BARE_LF BYE,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "smuggling \\n.\\r\\n twice, then the real end",
		IN(SMUG_HEAD "\n.\r\n" SMUG_CMDS "\n.\r\n" "\r\n.\r\nQUIT\r\n"),
		.want_out = START_R DATA_GO BARE_LF BYE,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "smuggling \\r\\n.\\n twice, then the real end",
		IN(SMUG_HEAD "\r\n.\n" SMUG_CMDS "\r\n.\n" "\r\n.\r\nQUIT\r\n"),
		.want_out = START_R DATA_GO BARE_LF BYE,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "smuggling \\r.\\r\\n twice, then the real end",
		IN(SMUG_HEAD "\r.\r\n" SMUG_CMDS "\r.\r\n" "\r\n.\r\nQUIT\r\n"),
		.want_out = START_R DATA_GO BARE_CR BYE,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "bare LF in data wins over a long line and the size",
		IN(START "DATA\r\n" L78 "xx\r\nbare\nlf\r\n.\r\n"),
		.want_out = START_R DATA_GO BARE_LF,
		.want_ev = SMTP_SRV_EV_NONE,
	},
	{
		.name = "bare CR and LF in commands",
		IN("NOOP\nEHLO c.example\r\nMAIL FROM:<a@x.example>\n"
		   "RCPT TO:<b@y.example>\r\nNO\rOP\r\nNOOP\r\r\nNOOP\r\n\nNOOP\r\n\rNOOP\r\n"
		   "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\n"
		   "DATA\r\nq\r\n.\r\nNOOP\r"),
		.want_out = BANNER BARE_LF EHLO_R BARE_LF NEED_MAIL BARE_CR BARE_CR OK BARE_LF
		            OK BARE_CR MAIL_OK RCPT_OK BARE_LF DATA_GO QUEUED("Q1"),
		.want_msg = { { "Q1", "c.example", "a@x.example", { "b@y.example" }, 0,
		                RCVD1("c.example", "ESMTP", "Q1", "b@y.example") "q\r\n" } },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_NONE,
	},
	{
		.name = "20 errors: 421 and close, the rest is not consumed",
		IN(E5 E5 E5 E5 "NOOP\r\n"),
		.want_out = BANNER R5 R5 R5 R5 TOO_MANY_ERR,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "errors of every kind count; a refused message too",
		IN(E5 E5 E5 "MAIL FROM:<a@x.example>\r\nNOOP\n\r\nXXXX\r\nEHLO c.example\r\n"
		   "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\nx\ny\r\n.\r\n"
		   "NOOP\r\n"),
		.want_out = BANNER R5 R5 R5 NEED_HELO BARE_LF R500 R502 EHLO_R MAIL_OK RCPT_OK DATA_GO
		            BARE_LF TOO_MANY_ERR,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "QUIT closes; nothing after it is read",
		IN("QUIT\r\nEHLO c.example\r\n"),
		.want_out = BANNER BYE,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		.name = "queue_failed answers 451, the session goes on",
		IN(START "DATA\r\none\r\n.\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n"
		   "DATA\r\ntwo\r\n.\r\nQUIT\r\n"),
		.want_out = START_R DATA_GO QFAIL MAIL_OK RCPT_OK DATA_GO QUEUED("Q2") BYE,
		.want_msg = {
			{ "Q1", "c.example", "a@x.example", { "b@y.example" }, 0,
			  RCVD1("c.example", "ESMTP", "Q1", "b@y.example") "one\r\n" },
			{ "Q2", "c.example", "a@x.example", { "b@y.example" }, 0,
			  RCVD1("c.example", "ESMTP", "Q2", "b@y.example") "two\r\n" },
		},
		.want_nmsg = 2,
		.want_ev = SMTP_SRV_EV_CLOSE,
		.fail_mask = 1u << 0,
	},
	{
		.name = "idle timeout",
		IN("EHLO c.example\r\nMAIL FROM:<a@x.example>\r\n"),
		.want_out = BANNER EHLO_R MAIL_OK "421 4.4.2 " HOST " Error: timeout exceeded\r\n",
		.want_ev = SMTP_SRV_EV_NONE,
		.after = T_AFTER_TIMEOUT,
	},
	{
		.name = "shutdown in the middle of DATA",
		IN(START "DATA\r\npartial\r\n"),
		.want_out = START_R DATA_GO "421 4.3.2 " HOST " Service shutting down\r\n",
		.want_ev = SMTP_SRV_EV_NONE,
		.after = T_AFTER_SHUTDOWN,
	},
	{
		.name = "greetings: EHLO twice, HELO after EHLO, EHLO after HELO",
		IN("EHLO a.example\r\nEHLO b.example\r\nHELO c.example\r\nEHLO d.example\r\n"
		   "HELO e.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n"
		   "DATA\r\nx\r\n.\r\nEHLO f.example\r\nMAIL FROM:<a@x.example>\r\n"
		   "RCPT TO:<b@y.example>\r\nDATA\r\ny\r\n.\r\n"),
		.want_out = BANNER EHLO_R EHLO_R HELO_R EHLO_R HELO_R MAIL_OK RCPT_OK DATA_GO
		            QUEUED("Q1") EHLO_R MAIL_OK RCPT_OK DATA_GO QUEUED("Q2"),
		.want_msg = {
			{ "Q1", "e.example", "a@x.example", { "b@y.example" }, 0,
			  RCVD1("e.example", "SMTP", "Q1", "b@y.example") "x\r\n" },
			{ "Q2", "f.example", "a@x.example", { "b@y.example" }, 0,
			  RCVD1("f.example", "ESMTP", "Q2", "b@y.example") "y\r\n" },
		},
		.want_nmsg = 2,
		.want_ev = SMTP_SRV_EV_NONE,
	},
	{
		.name = "an unsupported option is echoed in printable ASCII only",
		IN("EHLO c.example\r\nMAIL FROM:<a@x.example> X=\x01\x7f\x80\xff\tb\r\n"
		   "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example> \x1b[2J\r\nQUIT\r\n"),
		.want_out = BANNER EHLO_R "555 5.5.4 Unsupported option: X=?????b\r\n" MAIL_OK
		            "555 5.5.4 Unsupported option: ?[2J\r\n" BYE,
		.want_ev = SMTP_SRV_EV_CLOSE,
	},
	{
		/* issue 7, defect 10: the name went into the header as sent */
		.name = "HELO name in Received: controls, 8-bit octets, TAB and DEL are ?",
		IN("EHLO \x1b[2J\x07\"q=1\r\n" MSG1
		   "HELO h\xc3\xa9llo\x80\xff\t\x7fz trailing words\r\n" MSG1),
		.want_out = BANNER EHLO_R MAIL_OK RCPT_OK DATA_GO QUEUED("Q1")
		            HELO_R MAIL_OK RCPT_OK DATA_GO QUEUED("Q2"),
		.want_msg = {
			{ "Q1", "?[2J?\"q=1", "a@x.example", { "b@y.example" }, 0,
			  RCVD1("?[2J?\"q=1", "ESMTP", "Q1", "b@y.example") "x\r\n" },
			{ "Q2", "h??llo????z", "a@x.example", { "b@y.example" }, 0,
			  RCVD1("h??llo????z", "SMTP", "Q2", "b@y.example") "x\r\n" },
		},
		.want_nmsg = 2,
		.want_ev = SMTP_SRV_EV_NONE,
	},
	{
		.name = "recipient in Received: UTF-8 kept with SMTPUTF8, C1 controls and U+2028 are ?",
		IN("EHLO c.example\r\n"
		   "MAIL FROM:<a@x.example> SMTPUTF8\r\nRCPT TO:<\"\xc2\x85\xe2\x80\xa8 \xc2\xa0\"@y.example>\r\n"
		   "DATA\r\nx\r\n.\r\n"
		   "MAIL FROM:<a@x.example> SMTPUTF8\r\nRCPT TO:<d\xc3\xb6rte@b\xc3\xbc" "cher.example>\r\n"
		   "DATA\r\ny\r\n.\r\n"
		   "MAIL FROM:<a@x.example> SMTPUTF8\r\nRCPT TO:<a@b\xc2\x9b" "c.example>\r\n"
		   "RCPT TO:<\xe2\x80\xa9@denied.example>\r\nDATA\r\nz\r\n.\r\n"),
		.want_out = BANNER EHLO_R MAIL_OK RCPT_OK DATA_GO QUEUED("Q1") MAIL_OK RCPT_OK DATA_GO
		            QUEUED("Q2") MAIL_OK RCPT_OK
		            "554 5.7.1 <???@denied.example>: Relay access denied\r\n" DATA_GO
		            QUEUED("Q3"),
		.want_msg = {
			{ "Q1", "c.example", "a@x.example",
			  { "\"\xc2\x85\xe2\x80\xa8 \xc2\xa0\"@y.example" }, SMTP_SRV_SMTPUTF8,
			  RCVD1("c.example", "UTF8SMTP", "Q1", "\"????? \xc2\xa0\"@y.example") "x\r\n" },
			{ "Q2", "c.example", "a@x.example", { "d\xc3\xb6rte@b\xc3\xbc" "cher.example" },
			  SMTP_SRV_SMTPUTF8,
			  RCVD1("c.example", "UTF8SMTP", "Q2", "d\xc3\xb6rte@b\xc3\xbc" "cher.example")
			  "y\r\n" },
			{ "Q3", "c.example", "a@x.example", { "a@b\xc2\x9b" "c.example" },
			  SMTP_SRV_SMTPUTF8,
			  RCVD1("c.example", "UTF8SMTP", "Q3", "a@b??c.example") "z\r\n" },
		},
		.want_nmsg = 3,
		.want_ev = SMTP_SRV_EV_NONE,
	},
	{
		.name = "Received: with an IPv6 peer, VRFY",
		IN("VRFY bob\r\nEHLO [IPv6:2001:db8::1]\r\nMAIL FROM:<a@x.example>\r\n"
		   "RCPT TO:<b@[192.0.2.7]>\r\nDATA\r\nv6\r\n.\r\n"),
		.want_out = BANNER "252 2.0.0 Send some mail, I'll try my best\r\n" EHLO_R MAIL_OK
		            RCPT_OK DATA_GO QUEUED("Q1"),
		.want_msg = { { "Q1", "[IPv6:2001:db8::1]", "a@x.example", { "b@[192.0.2.7]" }, 0,
		                "Received: from [IPv6:2001:db8::1] (2001:db8::1 [IPv6:2001:db8::1])"
		                "\r\n\tby " HOST " (ringrelay) with ESMTP id Q1\r\n"
		                "\tfor <b@[192.0.2.7]>; " DATE "\r\nv6\r\n" } },
		.want_nmsg = 1,
		.want_ev = SMTP_SRV_EV_NONE,
		.peer = "2001:db8::1",
	},
};

#define NCASES (sizeof(srv_cases) / sizeof(srv_cases[0]))

/* ---- driver ----------------------------------------------------------------------- */

/* A growing octet string, always NUL-terminated (for the failure messages). */
struct t_buf {
	char *p;
	size_t len, cap;
};

static void t_put(struct t_buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = 2 * (b->len + n + 1);
		b->p = realloc(b->p, b->cap);
		cr_assert(b->p);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void t_puts(struct t_buf *b, const char *s)
{
	t_put(b, s, strlen(s));
}

#define GOT_MAX_MSG 4

struct got_msg {
	char *qid, *helo, *mail_from;
	char *rcpt[4];
	size_t nrcpt;
	unsigned flags;
	uint8_t *data;
	size_t len;
};

struct got_run {
	struct t_buf out;                      /* the transcript */
	struct got_msg msg[GOT_MAX_MSG];
	size_t nmsg;
	enum smtp_srv_ev ev;
	bool closing;
	struct t_ctx ctx;
};

static void got_drain(struct smtp_srv *s, struct got_run *g)
{
	size_t n;
	const uint8_t *p = smtp_srv_out(s, &n);

	if (n == 0)
		return;
	t_put(&g->out, p, n);
	/* take it in two bites to exercise out_consume() */
	smtp_srv_out_consume(s, n / 2);
	p = smtp_srv_out(s, &n);
	smtp_srv_out_consume(s, n);
	smtp_srv_out(s, &n);
	cr_assert_eq(n, 0);
}

static char *xstrdup(const char *p)
{
	char *q = strdup(p);

	cr_assert(q);
	return q;
}

static void got_record(struct got_run *g, const struct smtp_srv_msg *m)
{
	struct got_msg *r;

	cr_assert(m);
	cr_assert_lt(g->nmsg, GOT_MAX_MSG, "too many messages");
	cr_assert_leq(m->nrcpt, 3);
	r = &g->msg[g->nmsg++];
	r->qid = xstrdup(m->qid);
	r->helo = xstrdup(m->helo);
	r->mail_from = xstrdup(m->mail_from);
	r->nrcpt = m->nrcpt;
	for (size_t i = 0; i < m->nrcpt; i++)
		r->rcpt[i] = xstrdup(m->rcpt[i]);
	r->flags = m->flags;
	r->len = m->len;
	r->data = malloc(m->len ? m->len : 1);
	cr_assert(r->data);
	memcpy(r->data, m->data, m->len);
}

static void got_free(struct got_run *g)
{
	for (size_t k = 0; k < g->nmsg; k++) {
		struct got_msg *r = &g->msg[k];

		free(r->qid);
		free(r->helo);
		free(r->mail_from);
		for (size_t i = 0; i < r->nrcpt; i++)
			free(r->rcpt[i]);
		free(r->data);
	}
	free(g->out.p);
	memset(g, 0, sizeof(*g));
}

/* Run a case with the input cut into pieces at cuts[0] < cuts[1] < ... (each piece in
 * its own heap buffer of exactly its size, so ASan sees any read past a piece). */
static void run_case(const struct srv_case *c, const size_t *cuts, size_t ncuts,
                     struct got_run *g)
{
	struct smtp_srv *s;
	size_t start = 0;
	bool closed = false;

	memset(g, 0, sizeof(*g));
	s = smtp_srv_new(HOST, c->peer ? c->peer : PEER, c->lim ? c->lim : &t_lim, &t_ops,
	                 &g->ctx);
	cr_assert(s);
	smtp_srv_start(s);
	got_drain(s, g);
	g->ev = SMTP_SRV_EV_NONE;
	for (size_t k = 0; k <= ncuts && !closed; k++) {
		size_t end = k < ncuts ? cuts[k] : c->in_len;
		size_t n = end - start, off = 0, used;
		uint8_t *buf = malloc(n ? n : 1);

		cr_assert(buf);
		memcpy(buf, c->in + start, n);
		start = end;
		for (;;) {
			enum smtp_srv_ev ev = smtp_srv_feed(s, buf + off, n - off, &used);

			cr_assert_leq(used, n - off);
			off += used;
			got_drain(s, g);
			g->ev = ev;
			if (ev == SMTP_SRV_EV_MESSAGE) {
				cr_assert(smtp_srv_in_transaction(s));
				got_record(g, smtp_srv_message(s));
				/* until the spool result, nothing is consumed */
				cr_assert_eq(smtp_srv_feed(s, buf + off, n - off, &used),
				             SMTP_SRV_EV_WAIT);
				cr_assert_eq(used, 0);
				if (c->fail_mask & (1u << (g->nmsg - 1)))
					smtp_srv_queue_failed(s);
				else
					smtp_srv_queued(s);
				cr_assert_null(smtp_srv_message(s));
				cr_assert(!smtp_srv_in_transaction(s));
				got_drain(s, g);
				continue;
			}
			if (ev == SMTP_SRV_EV_CLOSE) {
				cr_assert(smtp_srv_closing(s));
				/* after CLOSE nothing more is consumed */
				cr_assert_eq(smtp_srv_feed(s, buf + off, n - off, &used),
				             SMTP_SRV_EV_CLOSE);
				cr_assert_eq(used, 0);
				got_drain(s, g);
				closed = true;
				break;
			}
			cr_assert_eq(ev, SMTP_SRV_EV_NONE);
			cr_assert_eq(off, n);
			break;
		}
		free(buf);
	}
	if (c->after == T_AFTER_TIMEOUT)
		smtp_srv_timeout(s);
	else if (c->after == T_AFTER_SHUTDOWN)
		smtp_srv_shutdown(s);
	got_drain(s, g);
	g->closing = smtp_srv_closing(s);
	smtp_srv_free(s);
}

/* Printable form of a byte string for failure messages (caller frees). */
static char *esc(const void *v, size_t n)
{
	const uint8_t *p = v;
	char *o = malloc(4 * n + 1), *q = o;

	cr_assert(o);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r')
			q += sprintf(q, "\\r");
		else if (p[i] == '\n')
			q += sprintf(q, "\\n\n");
		else if (p[i] < 32 || p[i] > 126)
			q += sprintf(q, "\\x%02x", p[i]);
		else
			*q++ = (char)p[i];
	}
	*q = '\0';
	return o;
}

#define CHECK(cond, ...)                       \
	do {                                   \
		if (!(cond)) {                 \
			ok = false;            \
			cr_expect_fail(__VA_ARGS__); \
		}                              \
	} while (0)

static bool expect_bytes(const char *what, const char *how, const struct srv_case *c,
                         const void *got, size_t got_len, const void *want, size_t want_len)
{
	char *g, *w;

	if (got_len == want_len && memcmp(got, want, got_len) == 0)
		return true;
	g = esc(got, got_len);
	w = esc(want, want_len);
	cr_expect_fail("%s [%s]: %s differs\n--- got:\n%s\n--- want:\n%s", c->name, how, what, g,
	               w);
	free(g);
	free(w);
	return false;
}

static size_t want_data_len(const struct srv_case *c, size_t k)
{
	return c->want_len[k] ? c->want_len[k] : strlen(c->want_msg[k].data);
}

/* Compare one run with the case; false (after reporting) on any difference. */
static bool check_run(const struct srv_case *c, const struct got_run *g, const char *how)
{
	bool want_closing = c->want_ev == SMTP_SRV_EV_CLOSE || c->after != T_AFTER_NONE;
	bool ok = true;

	ok &= expect_bytes("transcript", how, c, g->out.p, g->out.len, c->want_out,
	                   strlen(c->want_out));
	CHECK(g->ev == c->want_ev, "%s [%s]: last event %d, want %d", c->name, how, g->ev,
	      c->want_ev);
	CHECK(g->closing == want_closing, "%s [%s]: closing %d", c->name, how, g->closing);
	CHECK(g->nmsg == c->want_nmsg, "%s [%s]: %zu messages, want %zu", c->name, how, g->nmsg,
	      c->want_nmsg);
	for (size_t k = 0; k < g->nmsg && k < c->want_nmsg; k++) {
		const struct got_msg *r = &g->msg[k];
		const struct want_msg *w = &c->want_msg[k];
		size_t want_nrcpt = 0;

		while (want_nrcpt < 4 && w->rcpt[want_nrcpt])
			want_nrcpt++;
		CHECK(strcmp(r->qid, w->qid) == 0, "%s [%s]: msg %zu qid %s", c->name, how, k,
		      r->qid);
		CHECK(strcmp(r->helo, w->helo) == 0, "%s [%s]: msg %zu helo %s", c->name, how, k,
		      r->helo);
		CHECK(strcmp(r->mail_from, w->mail_from) == 0, "%s [%s]: msg %zu from %s", c->name,
		      how, k, r->mail_from);
		CHECK(r->nrcpt == want_nrcpt, "%s [%s]: msg %zu nrcpt %zu", c->name, how, k,
		      r->nrcpt);
		for (size_t i = 0; i < r->nrcpt && i < want_nrcpt; i++)
			CHECK(strcmp(r->rcpt[i], w->rcpt[i]) == 0, "%s [%s]: msg %zu rcpt %zu %s",
			      c->name, how, k, i, r->rcpt[i]);
		CHECK((r->flags & ~(unsigned)SMTP_SRV_NODOT) == w->flags, "%s [%s]: msg %zu flags %u",
		      c->name, how, k, r->flags);
		if (r->flags & SMTP_SRV_NODOT)
			for (size_t i = 0; i < r->len; i++)
				CHECK(!(r->data[i] == '.' && (i == 0 || r->data[i - 1] == '\n')),
				      "%s [%s]: msg %zu NODOT but a line at %zu begins with '.'",
				      c->name, how, k, i);
		CHECK(w->nodot == 0 || (w->nodot > 0) == !!(r->flags & SMTP_SRV_NODOT),
		      "%s [%s]: msg %zu NODOT %d, want %d", c->name, how, k,
		      !!(r->flags & SMTP_SRV_NODOT), w->nodot);
		ok &= expect_bytes("message data", how, c, r->data, r->len, w->data,
		                   want_data_len(c, k));
	}
	return ok;
}

ParameterizedTestParameters(smtp_srv, session)
{
	static size_t idx[NCASES];

	for (size_t i = 0; i < NCASES; i++)
		idx[i] = i;
	return cr_make_param_array(size_t, idx, NCASES);
}

ParameterizedTest(size_t *i, smtp_srv, session)
{
	const struct srv_case *c = &srv_cases[*i];
	struct got_run g;
	char how[64];
	size_t *cuts;

	run_case(c, NULL, 0, &g);
	check_run(c, &g, "one piece");
	got_free(&g);

	for (size_t k = 1; k < c->in_len; k++) {
		bool ok;

		snprintf(how, sizeof(how), "split at %zu", k);
		run_case(c, &k, 1, &g);
		ok = check_run(c, &g, how);
		got_free(&g);
		if (!ok)
			break;                      /* one failing split is enough to read */
	}

	cuts = malloc(c->in_len * sizeof(*cuts));
	cr_assert(cuts);
	for (size_t k = 1; k < c->in_len; k++)
		cuts[k - 1] = k;
	run_case(c, cuts, c->in_len ? c->in_len - 1 : 0, &g);
	check_run(c, &g, "one octet at a time");
	got_free(&g);
	free(cuts);
}

/* ---- lifecycle and API edges ------------------------------------------------------ */

static struct smtp_srv *t_new(struct t_ctx *ctx, const struct smtp_srv_limits *lim)
{
	struct smtp_srv *s = smtp_srv_new(HOST, PEER, lim, &t_ops, ctx);

	cr_assert(s);
	return s;
}

/* One feed call; *used (if wanted) gets the octets consumed. */
static enum smtp_srv_ev t_feed(struct smtp_srv *s, const char *p, size_t n, size_t *used)
{
	size_t u;
	enum smtp_srv_ev ev = smtp_srv_feed(s, (const uint8_t *)p, n, used ? used : &u);

	return ev;
}

static bool t_out_is(struct smtp_srv *s, const char *want)
{
	size_t n;
	const uint8_t *p = smtp_srv_out(s, &n);
	bool ok = n == strlen(want) && memcmp(p, want, n) == 0;

	if (!ok) {
		char *g = esc(p, n), *w = esc(want, strlen(want));

		cr_log_error("output\n--- got:\n%s\n--- want:\n%s", g, w);
		free(g);
		free(w);
	}
	smtp_srv_out_consume(s, n);
	return ok;
}

Test(smtp_srv, new_free_and_peer)
{
	static const struct smtp_srv_ops no_qid = { .rcpt_allowed = t_rcpt_allowed, .now = t_now };
	struct t_ctx ctx = { 0 };
	struct smtp_srv *s;
	const struct smtp_srv_msg *m;
	size_t used;
	static const char in[] = START "DATA\r\nx\r\n.\r\n";

	smtp_srv_free(NULL);
	cr_assert_null(smtp_srv_new(HOST, PEER, &t_lim, &no_qid, &ctx));
	cr_assert_null(smtp_srv_new(HOST, PEER, &t_lim, NULL, &ctx));

	s = t_new(&ctx, &t_lim);
	cr_assert_eq(smtp_srv_set_peer(s, "198.51.100.5"), 0);
	cr_assert(!smtp_srv_closing(s));
	cr_assert(!smtp_srv_in_transaction(s));
	cr_assert_null(smtp_srv_message(s));
	smtp_srv_start(s);
	cr_assert_eq(smtp_srv_set_peer(s, "203.0.113.1"), -EINVAL);
	cr_assert_eq(t_feed(s, in, sizeof(in) - 1, &used), SMTP_SRV_EV_MESSAGE);
	cr_assert_eq(used, sizeof(in) - 1);
	m = smtp_srv_message(s);
	cr_assert(m);
	{
		static const char want[] =
			"Received: from c.example (198.51.100.5 [198.51.100.5])\r\n"
			"\tby " HOST " (ringrelay) with ESMTP id Q1\r\n"
			"\tfor <b@y.example>; " DATE "\r\nx\r\n";

		cr_assert_eq(m->len, sizeof(want) - 1);
		cr_assert(memcmp(m->data, want, m->len) == 0);
	}
	cr_assert(t_out_is(s, START_R DATA_GO));
	cr_assert_eq(t_feed(s, "NOOP\r\n", 6, &used), SMTP_SRV_EV_WAIT);
	cr_assert_eq(used, 0);
	cr_assert(t_out_is(s, ""));
	smtp_srv_queued(s);
	cr_assert(t_out_is(s, QUEUED("Q1")));
	cr_assert_eq(t_feed(s, "NOOP\r\n", 6, &used), SMTP_SRV_EV_NONE);
	cr_assert(t_out_is(s, OK));
	smtp_srv_free(s);
}

Test(smtp_srv, zero_limits_mean_defaults)
{
	static const struct smtp_srv_limits zero = { 0 };
	struct t_ctx ctx = { 0 };
	struct smtp_srv *s = t_new(&ctx, &zero);

	smtp_srv_start(s);
	cr_assert_eq(t_feed(s, "EHLO c\r\n", 8, NULL), SMTP_SRV_EV_NONE);
	cr_assert(t_out_is(s, BANNER EHLO_SZ("52428800")));
	smtp_srv_free(s);

	s = t_new(&ctx, NULL);
	smtp_srv_start(s);
	cr_assert_eq(t_feed(s, "EHLO c\r\n", 8, NULL), SMTP_SRV_EV_NONE);
	cr_assert(t_out_is(s, BANNER EHLO_SZ("52428800")));
	smtp_srv_free(s);
}

/* in_transaction() from the 354 to the spool result; a timeout while the message is
 * being spooled keeps it valid until queued(), which then writes nothing. */
Test(smtp_srv, transaction_and_timeout_while_spooling)
{
	struct t_ctx ctx = { 0 };
	struct smtp_srv *s = t_new(&ctx, &t_lim);
	static const char in[] = START "DATA\r\n";
	size_t used;

	smtp_srv_start(s);
	cr_assert_eq(t_feed(s, in, sizeof(in) - 1, NULL), SMTP_SRV_EV_NONE);
	cr_assert(smtp_srv_in_transaction(s));
	cr_assert_eq(t_feed(s, "x\r\n.\r\nQUIT\r\n", 12, &used), SMTP_SRV_EV_MESSAGE);
	cr_assert_eq(used, 6);
	cr_assert(smtp_srv_in_transaction(s));
	smtp_srv_timeout(s);
	cr_assert(smtp_srv_closing(s));
	cr_assert(!smtp_srv_in_transaction(s));
	cr_assert(smtp_srv_message(s));
	cr_assert_eq(smtp_srv_message(s)->nrcpt, 1);
	smtp_srv_queued(s);
	cr_assert_null(smtp_srv_message(s));
	cr_assert(t_out_is(s, START_R DATA_GO "421 4.4.2 " HOST " Error: timeout exceeded\r\n"));
	cr_assert_eq(t_feed(s, "QUIT\r\n", 6, &used), SMTP_SRV_EV_CLOSE);
	cr_assert_eq(used, 0);
	smtp_srv_shutdown(s);                   /* already closing: no second 421 */
	smtp_srv_timeout(s);
	cr_assert(t_out_is(s, ""));
	smtp_srv_free(s);
}

/* smtp_srv_take_data: the message's octets leave the session in a buffer of the caller's
 * (a small message's a copy, a large one's the session's own), taken once; the session
 * answers as before, and the next message, small or large, is whole. */
Test(smtp_srv, take_data_hands_the_buffer_over)
{
	struct t_ctx ctx = { 0 };
	struct smtp_srv_limits lim = t_lim;
	lim.max_message_size = 1u << 20;
	struct smtp_srv *s = t_new(&ctx, &lim);
	static const char in[] = START "DATA\r\n";
	static const size_t lines[] = { 30, 2000, 50, 3000, 1800, 10 };   /* x 40 octets */
	char *big = malloc(3000 * 40 + 3);
	size_t used;

	cr_assert(big);
	smtp_srv_start(s);
	cr_assert_null(smtp_srv_take_data(s), "no message: nothing to take");
	for (size_t round = 0; round < sizeof lines / sizeof lines[0]; round++) {
		size_t n = 0;

		for (size_t l = 0; l < lines[round]; l++) {
			memset(big + n, (int)('a' + (l + round) % 26), 38);
			memcpy(big + n + 38, "\r\n", 2);
			n += 40;
		}
		memcpy(big + n, ".\r\n", 3);
		cr_assert_eq(t_feed(s, in, sizeof(in) - 1, NULL), SMTP_SRV_EV_NONE);
		cr_assert_eq(t_feed(s, big, n + 3, &used), SMTP_SRV_EV_MESSAGE);
		const struct smtp_srv_msg *m = smtp_srv_message(s);
		cr_assert(m);
		size_t len = m->len;
		cr_assert_gt(len, n, "the Received: header and the lines");
		cr_assert(memcmp(m->data + len - n, big, n) == 0);
		uint8_t *d = smtp_srv_take_data(s);
		cr_assert(d);
		cr_assert(memcmp(d + len - n, big, n) == 0, "round %zu: the octets came along",
		          round);
		cr_assert_null(smtp_srv_take_data(s), "taken once");
		smtp_srv_queued(s);
		cr_assert(smtp_srv_message(s) == NULL);
		memset(d, 0, len);              /* the caller's: the session does not read it */
		free(d);
		char want[64];
		snprintf(want, sizeof want, QUEUED("Q%zu"), round + 1);
		size_t ol;
		const uint8_t *o = smtp_srv_out(s, &ol);
		cr_assert(ol >= strlen(want) &&
		          memcmp(o + ol - strlen(want), want, strlen(want)) == 0,
		          "round %zu: queued", round);
		smtp_srv_out_consume(s, ol);
	}
	free(big);
	smtp_srv_free(s);
}

/* mail_room: no room, MAIL is answered 452 4.3.1 (Postfix's words), not counted as an
 * error, with the SIZE given; room again, the transaction goes on as ever. */
static uint64_t t_room_size;
static unsigned t_room_calls;
static bool t_room_ok;
static bool t_mail_room(void *ctx, uint64_t size)
{
	(void)ctx;
	t_room_size = size;
	t_room_calls++;
	return t_room_ok;
}

Test(smtp_srv, mail_refused_without_room)
{
	struct t_ctx ctx = { 0 };
	struct smtp_srv_ops ops = t_ops;
	struct smtp_srv_limits lim = t_lim;
	lim.max_errors = 2;
	ops.mail_room = t_mail_room;
	struct smtp_srv *s = smtp_srv_new(HOST, PEER, &lim, &ops, &ctx);
	cr_assert(s);
	smtp_srv_start(s);
	t_room_ok = false;
	static const char in1[] = "EHLO c.example\r\nMAIL FROM:<a@x.example> SIZE=4000\r\n"
	                          "RCPT TO:<b@y.example>\r\nMAIL FROM:<a@x.example>\r\n"
	                          "MAIL FROM:<a@x.example>\r\n";
	cr_assert_eq(t_feed(s, in1, sizeof(in1) - 1, NULL), SMTP_SRV_EV_NONE);
	cr_assert_eq(t_room_calls, 3);
	cr_assert_eq(t_room_size, 0, "no SIZE: 0");
	cr_assert_eq(ctx.nqid, 0, "no queue id for a refused MAIL");
	cr_assert(t_out_is(s, BANNER EHLO_R "452 4.3.1 Insufficient system storage\r\n" NEED_MAIL
	                          "452 4.3.1 Insufficient system storage\r\n"
	                          "452 4.3.1 Insufficient system storage\r\n"),
	          "refused, and three of them did not reach max_errors 2");
	cr_assert(!smtp_srv_closing(s));
	t_room_ok = true;
	static const char in2[] = "MAIL FROM:<a@x.example> SIZE=4000\r\nRCPT TO:<b@y.example>\r\n";
	cr_assert_eq(t_feed(s, in2, sizeof(in2) - 1, NULL), SMTP_SRV_EV_NONE);
	cr_assert_eq(t_room_size, 4000);
	cr_assert(t_out_is(s, MAIL_OK RCPT_OK));
	smtp_srv_free(s);
}

/* mem_take/mem_give: the message buffer is charged to the caller's budget while the
 * session holds it. A growth the budget refuses: nothing more of that message is kept
 * (the buffer is given back at once), its end of data is answered 452 4.3.1, not counted
 * as an error; a DATA the budget has no room for at all is answered 452 4.3.1 itself. */
struct t_budget {
	struct t_ctx ctx;                      /* first: the ops' other callbacks take it */
	size_t held, limit, most, refused;
};

static bool t_mem_take(void *ctx, size_t n)
{
	struct t_budget *b = ctx;
	cr_assert_gt(n, 0);
	if (b->held + n > b->limit) {
		b->refused++;
		return false;
	}
	b->held += n;
	if (b->held > b->most)
		b->most = b->held;
	return true;
}

static void t_mem_give(void *ctx, size_t n)
{
	struct t_budget *b = ctx;
	cr_assert_leq(n, b->held, "gave back %zu of %zu held", n, b->held);
	b->held -= n;
}

static struct smtp_srv *t_new_budget(struct t_budget *b, size_t limit)
{
	static const struct smtp_srv_ops ops = { .rcpt_allowed = t_rcpt_allowed,
		                                 .new_qid = t_new_qid, .now = t_now,
		                                 .mem_take = t_mem_take, .mem_give = t_mem_give };
	struct smtp_srv_limits lim = t_lim;
	memset(b, 0, sizeof *b);
	b->limit = limit;
	lim.max_message_size = 1u << 20;
	lim.max_errors = 2;
	struct smtp_srv *s = smtp_srv_new(HOST, PEER, &lim, &ops, b);
	cr_assert(s);
	smtp_srv_start(s);
	cr_assert(t_out_is(s, BANNER));
	return s;
}

/* n octets of 40-octet lines, then (end) the end of data */
static char *t_lines(size_t n, bool end, size_t *len)
{
	char *p = malloc(n + 3);
	cr_assert(p);
	for (size_t k = 0; k < n; k += 40) {
		memset(p + k, 'm', 38);
		memcpy(p + k + 38, "\r\n", 2);
	}
	*len = n;
	if (end) {
		memcpy(p + n, ".\r\n", 3);
		*len += 3;
	}
	return p;
}

#define NO_ROOM "452 4.3.1 Insufficient system storage\r\n"

Test(smtp_srv, memory_budget_charges_the_buffer)
{
	struct t_budget b;
	struct smtp_srv *s = t_new_budget(&b, SIZE_MAX / 4);
	static const char head[] = "EHLO c.example\r\n" MSG_HEAD;
	size_t n;
	/* a large message: charged as it grows, given back when it is handed over */
	char *big = t_lines(200000, true, &n);
	cr_assert_eq(t_feed(s, head, sizeof head - 1, NULL), SMTP_SRV_EV_NONE);
	cr_assert_gt(b.held, 0, "the Received: header is in the buffer");
	cr_assert_eq(t_feed(s, big, n, NULL), SMTP_SRV_EV_MESSAGE);
	cr_assert_geq(b.held, 200000);
	uint8_t *d = smtp_srv_take_data(s);
	cr_assert(d);
	cr_assert_eq(b.held, 0, "handed over: no longer the session's");
	free(d);
	smtp_srv_queued(s);
	free(big);
	smtp_srv_free(s);
	cr_assert_eq(b.held, 0);
	/* a small one: copied out, the session keeps (and is charged for) its buffer until
	 * it is freed */
	s = t_new_budget(&b, SIZE_MAX / 4);
	static const char small[] = "EHLO c.example\r\n" MSG_HEAD "hello\r\n.\r\n";
	cr_assert_eq(t_feed(s, small, sizeof small - 1, NULL), SMTP_SRV_EV_MESSAGE);
	d = smtp_srv_take_data(s);
	cr_assert(d);
	free(d);
	smtp_srv_queued(s);
	cr_assert_eq(b.held, 4096, "the first allocation, kept");
	smtp_srv_free(s);
	cr_assert_eq(b.held, 0, "freed with the session");
	cr_assert_eq(b.refused, 0);
}

Test(smtp_srv, memory_budget_refuses_a_growth)
{
	struct t_budget b;
	struct smtp_srv *s = t_new_budget(&b, 16384);
	static const char head[] = "EHLO c.example\r\n" MSG_HEAD;
	size_t n;
	char *part = t_lines(40000, false, &n);
	cr_assert_eq(t_feed(s, head, sizeof head - 1, NULL), SMTP_SRV_EV_NONE);
	cr_assert(t_out_is(s, EHLO_SZ("1048576") MSG_HEAD_R));
	cr_assert_eq(t_feed(s, part, n, NULL), SMTP_SRV_EV_NONE);
	cr_assert_eq(b.refused, 1, "the growth past 16384 was asked once");
	cr_assert_eq(b.held, 0, "what was kept is given back at once, before the end");
	cr_assert(t_out_is(s, ""), "nothing said before the end of data");
	cr_assert_eq(t_feed(s, part, n, NULL), SMTP_SRV_EV_NONE);
	cr_assert_eq(b.refused, 1, "nothing more asked for that message");
	cr_assert_leq(b.most, 16384);
	cr_assert_eq(t_feed(s, ".\r\n", 3, NULL), SMTP_SRV_EV_NONE);
	cr_assert(t_out_is(s, NO_ROOM));
	/* twice more: not counted towards max_errors (2) */
	for (int k = 0; k < 2; k++) {
		cr_assert_eq(t_feed(s, MSG_HEAD, sizeof MSG_HEAD - 1, NULL), SMTP_SRV_EV_NONE);
		cr_assert_eq(t_feed(s, part, n, NULL), SMTP_SRV_EV_NONE);
		cr_assert_eq(t_feed(s, ".\r\n", 3, NULL), SMTP_SRV_EV_NONE);
		cr_assert(t_out_is(s, MSG_HEAD_R NO_ROOM));
	}
	cr_assert(!smtp_srv_closing(s));
	/* a message that fits goes through */
	static const char small[] = MSG_HEAD "hello\r\n.\r\n";
	cr_assert_eq(t_feed(s, small, sizeof small - 1, NULL), SMTP_SRV_EV_MESSAGE);
	cr_assert_eq(smtp_srv_message(s)->len,
	             strlen(RCVD1("c.example", "ESMTP", "Q4", "b@y.example") "hello\r\n"));
	smtp_srv_queued(s);
	cr_assert(t_out_is(s, MSG_HEAD_R QUEUED("Q4")));
	free(part);
	smtp_srv_free(s);
	cr_assert_eq(b.held, 0);
}

Test(smtp_srv, memory_budget_refuses_data)
{
	struct t_budget b;
	struct smtp_srv *s = t_new_budget(&b, 100);     /* not even the first allocation */
	static const char in[] = "EHLO c.example\r\n" MSG_HEAD "hello\r\n.\r\nQUIT\r\n";
	cr_assert_eq(t_feed(s, in, sizeof in - 1, NULL), SMTP_SRV_EV_CLOSE);
	/* DATA refused, the transaction reset: the text is read as commands (each an
	 * error: the second closes the session, max_errors 2) */
	cr_assert(t_out_is(s, EHLO_SZ("1048576") MAIL_OK RCPT_OK
	                      "451 4.3.1 Insufficient system storage\r\n" R502 R502 TOO_MANY_ERR));
	cr_assert_eq(b.held, 0);
	cr_assert_eq(b.refused, 1);
	smtp_srv_free(s);
}

/* A session's first buffer is sized by its last message (data_hint); when the budget has
 * no room for that, the smallest is asked for before DATA is refused. */
Test(smtp_srv, memory_budget_first_buffer_falls_back)
{
	struct t_budget b;
	struct smtp_srv *s = t_new_budget(&b, 4u << 20);
	static const char head[] = "EHLO c.example\r\n" MSG_HEAD;
	size_t n;
	char *big = t_lines(900000, true, &n);
	cr_assert_eq(t_feed(s, head, sizeof head - 1, NULL), SMTP_SRV_EV_NONE);
	cr_assert_eq(t_feed(s, big, n, NULL), SMTP_SRV_EV_MESSAGE);
	free(smtp_srv_take_data(s));
	smtp_srv_queued(s);
	cr_assert_eq(b.held, 0);
	b.limit = 512u << 10;                   /* others hold the rest now */
	static const char small[] = MSG_HEAD "hello\r\n.\r\n";
	cr_assert_eq(t_feed(s, small, sizeof small - 1, NULL), SMTP_SRV_EV_MESSAGE);
	cr_assert_eq(b.refused, 1, "the hinted size was asked first");
	cr_assert_eq(b.held, 4096, "then the smallest");
	smtp_srv_queued(s);
	free(big);
	smtp_srv_free(s);
	cr_assert_eq(b.held, 0);
}

/* The same stream, whole, in two at every offset and octet by octet: the same replies,
 * the same refusal (the buffer grows the same whatever the pieces). */
Test(smtp_srv, memory_budget_at_every_split)
{
	static const char head[] = "EHLO c.example\r\n" MSG_HEAD;
	static const char tail[] = MSG_HEAD "hi\r\n.\r\n";
	size_t n;
	char *part = t_lines(9000, false, &n);
	size_t len = sizeof head - 1 + n + 3 + sizeof tail - 1;
	char *in = malloc(len);
	cr_assert(in);
	memcpy(in, head, sizeof head - 1);
	memcpy(in + sizeof head - 1, part, n);
	memcpy(in + sizeof head - 1 + n, ".\r\n", 3);
	memcpy(in + sizeof head - 1 + n + 3, tail, sizeof tail - 1);
	for (size_t limit = 4096; limit <= 16384; limit *= 2) {
		char *want = NULL;
		size_t wlen = 0;
		for (size_t cut = 0; cut <= len; cut += (cut < 200 || len - cut < 200) ? 1 : 97) {
			struct t_budget b;
			struct smtp_srv *s = t_new_budget(&b, limit);
			struct t_buf out = { 0 };
			size_t off = 0;
			size_t pieces[2] = { cut, len - cut };
			for (int k = 0; k < 2; k++) {
				size_t left = pieces[k];
				while (left > 0) {
					size_t used;
					enum smtp_srv_ev ev = t_feed(s, in + off, left, &used);
					size_t on;
					const uint8_t *o = smtp_srv_out(s, &on);
					t_put(&out, o, on);
					smtp_srv_out_consume(s, on);
					off += used;
					left -= used;
					if (ev == SMTP_SRV_EV_MESSAGE) {
						smtp_srv_queued(s);
						o = smtp_srv_out(s, &on);
						t_put(&out, o, on);
						smtp_srv_out_consume(s, on);
					} else {
						cr_assert_eq(ev, SMTP_SRV_EV_NONE);
						cr_assert_eq(left, 0);
					}
				}
			}
			if (!want) {
				want = malloc(out.len + 1);
				cr_assert(want);
				memcpy(want, out.p, out.len);
				wlen = out.len;
				bool refused = b.refused > 0;
				cr_assert_eq(refused, limit < 16384, "limit %zu", limit);
			}
			cr_assert(out.len == wlen && memcmp(out.p, want, wlen) == 0,
			          "limit %zu cut %zu: another transcript", limit, cut);
			smtp_srv_free(s);
			cr_assert_eq(b.held, 0);
			free(out.p);
		}
		free(want);
	}
	free(in);
	free(part);
}

/* ---- the DATA lexer against a reference model ------------------------------------- */

static uint32_t t_rand(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static size_t t_pick(uint32_t *x, size_t n)
{
	return t_rand(x) % n;
}

/* The reference: what the lexer must make of the stream str after "DATA\r\n", by the
 * rules at the top of smtp_srv.c, written as plainly as possible. DATA ends at the first
 * "\r\n.\r\n" of "\r\n" + str (the leading CRLF stands for the end of the DATA command
 * line). The message is refused for a bare line ending iff a CR not followed by LF or a
 * LF not preceded by CR comes before that CRLF (the first one names the reply). Else it
 * is the text up to that CRLF, cut into lines at CRLF, one leading dot removed from each
 * line; refused if a line is longer than the line limit, else if it is over the size. */
struct t_ref {
	size_t end;                            /* octets of str through the end of data */
	const char *bare;                      /* reply to the first bare CR or LF, or NULL */
	size_t longest;                        /* the longest line, unstuffed (if !bare) */
	bool dotted;                           /* a line had a dot removed (if !bare) */
	struct t_buf data;                     /* the unstuffed lines with CRLF (if !bare) */
};

static void t_ref_of(const char *str, size_t sl, struct t_ref *r)
{
	char *ref = malloc(sl + 2);
	size_t rl = sl + 2, end = rl;

	cr_assert(ref);
	memset(r, 0, sizeof(*r));
	memcpy(ref, "\r\n", 2);
	memcpy(ref + 2, str, sl);
	for (size_t k = 0; k + 5 <= rl; k++)
		if (memcmp(ref + k, "\r\n.\r\n", 5) == 0) {
			end = k;
			break;
		}
	cr_assert_lt(end, rl, "the generator always ends the data");
	r->end = end + 3;                      /* ref[end + 5] is str[end + 3] */
	/* ref[0, end + 2) holds every line ending of the message */
	for (size_t k = 0; k < end + 2 && !r->bare; k++) {
		if (ref[k] == '\r' && ref[k + 1] != '\n')
			r->bare = BARE_CR;
		else if (ref[k] == '\n' && (k == 0 || ref[k - 1] != '\r'))
			r->bare = BARE_LF;
	}
	t_put(&r->data, "", 0);
	for (size_t k = 2; !r->bare && k < end + 2;) {
		size_t e = k, n;

		while (!(ref[e] == '\r' && ref[e + 1] == '\n'))
			e++;
		n = e - k;
		if (n > 0 && ref[k] == '.') {
			k++;
			n--;
			r->dotted = true;
		}
		t_put(&r->data, ref + k, n);
		t_put(&r->data, "\r\n", 2);
		if (n > r->longest)
			r->longest = n;
		k = e + 2;
	}
	free(ref);
}

/* A line for the stream: len octets of text (no CR or LF; dots, NUL, 8-bit, TAB) and
 * CRLF, sent with a transparency dot when it starts with a dot, and now and then when it
 * does not (the lexer must remove it either way). */
static void t_gen_line(uint32_t *x, struct t_buf *b, size_t len)
{
	static const char alpha[] = "aaaaaaaab. \t\x80\xff";   /* its NUL too */
	char text[1024];

	cr_assert_lt(len, sizeof(text));
	for (size_t k = 0; k < len; k++)
		text[k] = alpha[t_pick(x, sizeof(alpha))];
	if (len > 0 && (text[0] == '.' || t_pick(x, 4) == 0))
		t_put(b, ".", 1);
	t_put(b, text, len);
	t_put(b, "\r\n", 2);
}

/* A length for a line under the limit: the edges more often than the rest. */
static size_t t_gen_len(uint32_t *x, size_t maxline)
{
	switch (t_pick(x, 8)) {
	case 0:
		return 0;
	case 1:
		return 1;
	case 2:
		return maxline;
	case 3:
		return maxline - 1;
	default:
		return t_pick(x, maxline + 1);
	}
}

static bool t_at_bol(const struct t_buf *b)
{
	return b->len == 0 || (b->len >= 2 && memcmp(b->p + b->len - 2, "\r\n", 2) == 0);
}

/* A random stream of DATA octets ending in the end of data: pieces of plain lines (runs
 * of up to 40, or 400 now and then; 10 of long lines), and unless clean, of CR/LF/'.'/'a' soup, bare CRs
 * and LFs, smuggling sequences and lines one over maxline. */
static void t_gen(uint32_t *x, struct t_buf *b, size_t maxline, bool clean, size_t npieces)
{
	static const char *const defects[] = {
		"\r", "\n", "\r\r\n", "\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r\n", "x\r\rx", "\n\r",
	};

	for (size_t k = 0; k < npieces; k++) {
		size_t n;

		switch (t_pick(x, clean ? 3 : 6)) {
		case 0:                                       /* one line */
			if (!t_at_bol(b))
				t_put(b, "\r\n", 2);
			t_gen_line(x, b, t_gen_len(x, maxline));
			break;
		case 1:                                       /* a run of lines */
		case 2:
			if (!t_at_bol(b))
				t_put(b, "\r\n", 2);
			n = 2 + t_pick(x, maxline > 100 ? 10 : t_pick(x, 16) == 0 ? 400 : 40);
			for (size_t i = 0; i < n; i++)
				t_gen_line(x, b, t_gen_len(x, maxline));
			break;
		case 3:                                       /* soup */
			n = 1 + t_pick(x, 8);
			for (size_t i = 0; i < n; i++)
				t_put(b, &"\r\n.a"[t_pick(x, 4)], 1);
			break;
		case 4:
			t_puts(b, defects[t_pick(x, sizeof(defects) / sizeof(defects[0]))]);
			break;
		case 5:                                       /* one over the line limit */
			if (!t_at_bol(b))
				t_put(b, "\r\n", 2);
			t_gen_line(x, b, maxline + 1);
			break;
		}
	}
	if (t_at_bol(b) && t_pick(x, 2))
		t_puts(b, ".\r\n");
	else
		t_puts(b, "\r\n.\r\n");
}

/* Cuts for a run: at, before or after CRs, LFs and dots of the data part, and a few
 * anywhere; sorted, distinct, inside (0, n). Returns how many. */
static size_t t_gen_cuts(uint32_t *x, const char *in, size_t n, size_t head, size_t *cuts)
{
	size_t m = 0, want = 1 + t_pick(x, 12);

	for (size_t k = 0; k < want; k++) {
		size_t j = head + t_pick(x, n - head);

		for (int probe = 0; probe < 16 && !strchr("\r\n.", in[j] ? in[j] : 'x'); probe++)
			j = head + t_pick(x, n - head);
		j = j + t_pick(x, 3);                   /* before it, at it, after it */
		if (j >= 1)
			j--;
		if (j > 0 && j < n)
			cuts[m++] = j;
	}
	for (size_t k = t_pick(x, 4); k > 0; k--)
		cuts[m++] = 1 + t_pick(x, n - 1);
	for (size_t i = 1; i < m; i++)                     /* insertion sort, then unique */
		for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
			size_t t = cuts[j];

			cuts[j] = cuts[j - 1];
			cuts[j - 1] = t;
		}
	size_t u = 0;
	for (size_t i = 0; i < m; i++)
		if (u == 0 || cuts[u - 1] != cuts[i])
			cuts[u++] = cuts[i];
	return u;
}

/* Random DATA streams against the reference, each fed behind EHLO/MAIL/RCPT/DATA and
 * followed by a NOOP: the transcript must be the 354, then 250 (and the message, octet
 * for octet) or the reference's refusal, then the NOOP's 250 (so the data ended exactly
 * where the reference says: a session that ended it earlier would answer what follows
 * as commands, one that ended it later would take the NOOP as text). Every stream runs
 * in one piece, cut at and around its CRs, LFs and dots, in chunks of a random size, and
 * when short one octet at a time. The streams: CR/LF/'.'/'a' soup, long runs of plain
 * lines (so the bulk path and its hand-overs to the octet-by-octet path), lines with
 * transparency dots, lines of exactly the limit and one over, bare CRs and LFs; the
 * limits: the line limit the generator aimed at, or exactly the longest line, or one
 * less; the size limit exactly the message, one less, one more, random or the default. */
/* The case of one DATA stream str (its reference r) after START: in, out and msg filled
 * (the caller frees them), c made to expect the verdict (a refusal, or the message "Q1"
 * with NODOT as the reference says) with the SIZE eff_size in the EHLO reply. */
static void t_stream_case(struct srv_case *c, const char *str, const struct t_ref *r,
                          const char *verdict, size_t eff_size,
                          const struct smtp_srv_limits *lim, struct t_buf *in,
                          struct t_buf *out, struct t_buf *msg)
{
	char ehlo[512];

	t_puts(in, START "DATA\r\n");
	t_put(in, str, r->end);
	t_puts(in, "NOOP\r\n");
	snprintf(ehlo, sizeof ehlo, EHLO_SZ("%zu"), eff_size);
	t_puts(out, BANNER);
	t_puts(out, ehlo);
	t_puts(out, MAIL_OK RCPT_OK DATA_GO);
	t_puts(out, verdict ? verdict : QUEUED("Q1"));
	t_puts(out, OK);
	c->in = in->p;
	c->in_len = in->len;
	c->want_out = out->p;
	c->want_ev = SMTP_SRV_EV_NONE;
	c->lim = lim;
	if (!verdict) {
		t_puts(msg, RCVD1("c.example", "ESMTP", "Q1", "b@y.example"));
		t_put(msg, r->data.p, r->data.len);
		c->want_msg[0] = (struct want_msg){ "Q1", "c.example", "a@x.example",
		                                    { "b@y.example" }, 0, msg->p,
		                                    r->dotted ? -1 : 1 };
		c->want_len[0] = msg->len;
		c->want_nmsg = 1;
	}
}

Test(smtp_srv, data_lexer_matches_reference)
{
	static const char head[] = START "DATA\r\n";
	const size_t head_len = sizeof(head) - 1;
	uint32_t seed = 0x5eed1234u;

	for (int iter = 0; iter < 20000; iter++) {
		struct smtp_srv_limits lim = { .max_recipients = 3, .max_errors = 20 };
		struct t_buf str = { 0 }, in = { 0 }, out = { 0 }, msg = { 0 };
		struct t_ref r;
		size_t maxline, eff_line, eff_size, *cuts, ncuts;
		const char *verdict;
		char name[64];
		struct srv_case c = { 0 };
		struct got_run g;
		bool ok = true;

		switch (t_pick(&seed, 8)) {
		case 0:
			maxline = 76;
			break;
		case 1:
			maxline = 998;
			break;
		default:
			maxline = 1 + t_pick(&seed, 12);
			break;
		}
		if (iter % 4 == 0)                              /* soup alone, short */
			for (size_t n = t_pick(&seed, 14); n > 0; n--)
				t_put(&str, &"\r\n.a"[t_pick(&seed, 4)], 1);
		t_gen(&seed, &str, maxline, iter % 4 == 1 || iter % 4 == 2,
		      iter % 4 == 0 ? 0 : 1 + t_pick(&seed, maxline > 100 ? 3 : 8));
		t_ref_of(str.p, str.len, &r);

		switch (t_pick(&seed, 4)) {
		case 0:
			lim.max_line_length = (unsigned)r.longest;
			break;
		case 1:
			lim.max_line_length = r.longest > 1 ? (unsigned)r.longest - 1 : 1;
			break;
		default:
			lim.max_line_length = (unsigned)maxline;
			break;
		}
		switch (t_pick(&seed, 6)) {
		case 0:
		case 1:
			lim.max_message_size = r.data.len;
			break;
		case 2:
			lim.max_message_size = r.data.len > 1 ? r.data.len - 1 : 1;
			break;
		case 3:
			lim.max_message_size = r.data.len + 1;
			break;
		case 4:
			lim.max_message_size = 1 + t_pick(&seed, r.data.len + 1);
			break;
		default:
			lim.max_message_size = 0;                /* the default */
			break;
		}
		eff_line = lim.max_line_length ? lim.max_line_length : 998;
		eff_size = lim.max_message_size ? lim.max_message_size : 52428800;
		verdict = r.bare                     ? r.bare
		          : r.longest > eff_line     ? LINE_LONG
		          : r.data.len > eff_size    ? TOO_BIG
		                                     : NULL;

		t_stream_case(&c, str.p, &r, verdict, eff_size, &lim, &in, &out, &msg);
		snprintf(name, sizeof name, "random stream, iteration %d", iter);
		c.name = name;

		cuts = malloc(in.len * sizeof(*cuts));
		cr_assert(cuts);
		run_case(&c, NULL, 0, &g);
		ok &= check_run(&c, &g, "one piece");
		got_free(&g);
		for (int k = 0; k < 2 && ok; k++) {
			ncuts = t_gen_cuts(&seed, in.p, in.len, head_len, cuts);
			run_case(&c, cuts, ncuts, &g);
			ok &= check_run(&c, &g, "cut around CR, LF and '.'");
			got_free(&g);
		}
		if (ok) {
			size_t step = 1 + t_pick(&seed, t_pick(&seed, 2) ? 16 : 200);

			if (in.len / step > 4000)               /* a big stream: fewer chunks */
				step = in.len / 4000 + 1;

			ncuts = 0;
			for (size_t k = step; k < in.len; k += step)
				cuts[ncuts++] = k;
			run_case(&c, cuts, ncuts, &g);
			ok &= check_run(&c, &g, "in chunks of a random size");
			got_free(&g);
		}
		if (ok && in.len <= 400) {
			for (size_t k = 1; k < in.len; k++)
				cuts[k - 1] = k;
			run_case(&c, cuts, in.len - 1, &g);
			ok &= check_run(&c, &g, "one octet at a time");
			got_free(&g);
		}
		if (!ok) {
			char *e = esc(str.p, r.end);

			cr_assert_fail("iteration %d, max_line_length %u, max_message_size %llu, "
			               "stream:\n%s", iter, lim.max_line_length,
			               (unsigned long long)lim.max_message_size, e);
		}
		free(cuts);
		free(msg.p);
		free(r.data.p);
		free(str.p);
		free(in.p);
		free(out.p);
	}
}

/* The bulk path against the reference where it hands over to the octet-by-octet one: runs
 * of plain lines of several lengths, each spoiled once at every offset of its first 200
 * octets — a CR, a LF, a dot, or a line made 200 octets longer — so that every defect
 * falls at every place of a line and of a run; each stream fed in one piece and cut at
 * every 61st octet. (Measured: an SSE2 scan of 64-octet blocks was slower here than the
 * two memchr calls a line of glibc's AVX2 ones: 11 against 8.7 us per 100 KiB.) */
Test(smtp_srv, data_lexer_blocks_at_every_offset)
{
	static const size_t lens[] = { 1, 7, 62, 63, 64, 65, 76, 127, 128, 200 };
	static const char spoil[] = "\r\n.X";
	for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
		struct t_buf base = { 0 };
		size_t L = lens[li];

		for (size_t k = 0; base.len < 640; k++) {       /* lines of L octets and CRLF */
			for (size_t j = 0; j < L; j++)
				t_put(&base, &"abcdefghijklmnopqrstuvwxyz0123456789"[(k * 7 + j) % 36],
				      1);
			t_put(&base, "\r\n", 2);
		}
		for (size_t at = 0; at < 200; at++) {
			for (size_t v = 0; v < sizeof spoil - 1; v++) {
				struct t_buf str = { 0 }, in = { 0 }, out = { 0 }, msg = { 0 };
				struct smtp_srv_limits lim = { .max_recipients = 3, .max_errors = 20,
				                               .max_line_length = 100 };
				struct t_ref r;
				struct got_run g;
				struct srv_case c = { 0 };
				char name[96];
				size_t cuts[64], ncuts = 0;
				bool ok;

				t_put(&str, base.p, base.len);
				if (spoil[v] == 'X') {                  /* the line 200 octets long */
					size_t e = at;
					while (e < str.len && str.p[e] != '\r')
						e++;
					memset(str.p + at, 'y', e - at);
					t_put(&str, "", 0);
					for (size_t j = 0; j < 200; j++)
						t_put(&str, "z", 1);
					memmove(str.p + e + 200, str.p + e, str.len - e - 200);
					memset(str.p + e, 'z', 200);
				} else {
					str.p[at] = spoil[v];
				}
				t_puts(&str, ".\r\n");
				t_ref_of(str.p, str.len, &r);
				const char *verdict = r.bare ? r.bare
				                      : r.longest > 100 ? LINE_LONG : NULL;
				t_stream_case(&c, str.p, &r, verdict, 52428800u, &lim, &in, &out, &msg);
				snprintf(name, sizeof name, "lines of %zu, '%s' at %zu", L,
				         spoil[v] == '\r' ? "CR" : spoil[v] == '\n' ? "LF"
				         : spoil[v] == '.' ? "dot" : "long", at);
				c.name = name;
				run_case(&c, NULL, 0, &g);
				ok = check_run(&c, &g, "one piece");
				got_free(&g);
				for (size_t k = 61; k < in.len && ncuts < 64; k += 61)
					cuts[ncuts++] = k;
				run_case(&c, cuts, ncuts, &g);
				ok &= check_run(&c, &g, "cut every 61");
				got_free(&g);
				cr_assert(ok, "%s", name);
				free(str.p);
				free(in.p);
				free(out.p);
				free(msg.p);
				free(r.data.p);
			}
		}
		free(base.p);
	}
}

/* ---- bounded memory --------------------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
/* From the sanitizer runtime (GCC ships no header for it). */
size_t __sanitizer_get_current_allocated_bytes(void);

/* An endless command line and an endless message keep at most their limits in memory:
 * feed megabytes and watch the heap (ASan's own count of live allocations). */
Test(smtp_srv, memory_stays_bounded)
{
	static const struct smtp_srv_limits lim = {
		.max_message_size = 64 * 1024, .max_recipients = 3, .max_line_length = 998,
		.max_errors = 20,
	};
	static const char head[] = START "DATA\r\n";
	struct t_ctx ctx = { 0 };
	struct smtp_srv *s = t_new(&ctx, &lim);
	size_t chunk_len = 64 * 1024, base, peak = 0, used;
	char *chunk = malloc(chunk_len);

	cr_assert(chunk);
	smtp_srv_start(s);
	smtp_srv_out_consume(s, SIZE_MAX);
	base = __sanitizer_get_current_allocated_bytes();

	memset(chunk, 'x', chunk_len);                      /* a 4 MiB command line */
	for (int k = 0; k < 64; k++) {
		cr_assert_eq(t_feed(s, chunk, chunk_len, &used), SMTP_SRV_EV_NONE);
		cr_assert_eq(used, chunk_len);
		size_t now = __sanitizer_get_current_allocated_bytes();
		if (now > peak)
			peak = now;
	}
	cr_assert_eq(t_feed(s, "\r\n", 2, NULL), SMTP_SRV_EV_NONE);
	cr_assert(t_out_is(s, TOO_LONG));
	cr_assert_lt(peak - base, 4096, "command line: %zu octets kept", peak - base);

	cr_assert_eq(t_feed(s, head, sizeof(head) - 1, NULL), SMTP_SRV_EV_NONE);
	smtp_srv_out_consume(s, SIZE_MAX);
	for (size_t i = 0; i < chunk_len; i += 80)          /* 8 MiB of 78-octet lines */
		memcpy(chunk + i, L78 "\r\n", chunk_len - i < 80 ? chunk_len - i : 80);
	for (int k = 0; k < 128; k++) {
		cr_assert_eq(t_feed(s, chunk, chunk_len, &used), SMTP_SRV_EV_NONE);
		size_t now = __sanitizer_get_current_allocated_bytes();
		if (now > peak)
			peak = now;
	}
	cr_assert_eq(t_feed(s, "\r\n.\r\n", 5, NULL), SMTP_SRV_EV_NONE);
	cr_assert(t_out_is(s, TOO_BIG));
	cr_assert_lt(peak - base, 64 * 1024 + 8192, "message: %zu octets kept", peak - base);

	/* A message of exactly max_message_size in one piece (one run of the bulk path,
	 * so one reserve for all of it): accepted, and held in header + 64 KiB. */
	cr_assert_eq(t_feed(s, head + 16, sizeof(head) - 1 - 16, NULL), SMTP_SRV_EV_NONE);
	smtp_srv_out_consume(s, SIZE_MAX);
	memcpy(chunk + chunk_len - 16, "xxxxxxxxxxxxxx\r\n", 16);    /* 819 * 80 + 16 octets */
	cr_assert_eq(t_feed(s, chunk, chunk_len, &used), SMTP_SRV_EV_NONE);
	cr_assert_eq(used, chunk_len);
	peak = __sanitizer_get_current_allocated_bytes();
	cr_assert_eq(t_feed(s, ".\r\n", 3, &used), SMTP_SRV_EV_MESSAGE);
	cr_assert_eq(smtp_srv_message(s)->len - strlen(RCVD1("c.example", "ESMTP", "Q2",
	                                                     "b@y.example")), 64 * 1024);
	cr_assert_lt(peak - base, 64 * 1024 + 8192, "message: %zu octets kept", peak - base);
	smtp_srv_queued(s);

	free(chunk);
	smtp_srv_free(s);
}
#endif

/* ---- refuse: the caller answers the message with its own 4xx/5xx ------------------- */

/* refuse() answers the pending message with the caller's line instead of 250, ends the
 * transaction (pipelined commands behind it then run), does not count as a client error,
 * and after a timeout only releases the message. */
Test(smtp_srv, refuse_answers_the_message)
{
	static const struct smtp_srv_limits lim = {
		.max_message_size = 10000, .max_recipients = 3, .max_line_length = 78,
		.max_errors = 2,
	};
	static const char msg[] = "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n"
	                          "DATA\r\nx\r\n.\r\n";
	static const char in[] = "EHLO c.example\r\n"
	                         "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n"
	                         "DATA\r\nx\r\n.\r\nNOOP\r\n";
	struct t_ctx ctx = { 0 };
	struct smtp_srv *s = t_new(&ctx, &lim);
	size_t used;

	smtp_srv_start(s);
	cr_assert_eq(t_feed(s, in, sizeof(in) - 1, &used), SMTP_SRV_EV_MESSAGE);
	cr_assert_eq(used, sizeof(in) - 1 - 6);
	cr_assert(smtp_srv_message(s));
	smtp_srv_refuse(s, "554 5.7.1 Error: rejected by ringsink");
	cr_assert_null(smtp_srv_message(s));
	cr_assert(!smtp_srv_in_transaction(s));
	cr_assert(!smtp_srv_closing(s));
	cr_assert(t_out_is(s, BANNER EHLO_SZ("10000") MAIL_OK RCPT_OK DATA_GO
	                      "554 5.7.1 Error: rejected by ringsink\r\n"));
	cr_assert_eq(t_feed(s, "NOOP\r\n", 6, &used), SMTP_SRV_EV_NONE);
	cr_assert(t_out_is(s, OK));

	/* Three more refusals with max_errors 2: none is the client's error. */
	for (unsigned k = 2; k <= 4; k++) {
		char want[64];

		snprintf(want, sizeof want, "Q%u", k);
		cr_assert_eq(t_feed(s, msg, sizeof(msg) - 1, &used), SMTP_SRV_EV_MESSAGE);
		cr_assert_eq(used, sizeof(msg) - 1);
		cr_assert_str_eq(smtp_srv_message(s)->qid, want);
		smtp_srv_refuse(s, k % 2 ? "451 4.3.0 Error: deferred by ringsink"
		                         : "554 5.7.1 Error: rejected by ringsink");
		cr_assert(t_out_is(s, k % 2 ? MAIL_OK RCPT_OK DATA_GO "451 4.3.0 Error: deferred by ringsink\r\n"
		                            : MAIL_OK RCPT_OK DATA_GO "554 5.7.1 Error: rejected by ringsink\r\n"));
	}
	cr_assert(!smtp_srv_closing(s));

	/* The next message is queued as usual: the refusals left no trace. */
	cr_assert_eq(t_feed(s, msg, sizeof(msg) - 1, &used), SMTP_SRV_EV_MESSAGE);
	cr_assert_eq(smtp_srv_message(s)->nrcpt, 1);
	smtp_srv_queued(s);
	cr_assert(t_out_is(s, MAIL_OK RCPT_OK DATA_GO QUEUED("Q5")));

	/* Timed out while the message waited: refuse() only releases it. */
	cr_assert_eq(t_feed(s, msg, sizeof(msg) - 1, &used), SMTP_SRV_EV_MESSAGE);
	smtp_srv_timeout(s);
	smtp_srv_refuse(s, "451 4.3.0 Error: deferred by ringsink");
	cr_assert_null(smtp_srv_message(s));
	cr_assert(t_out_is(s, MAIL_OK RCPT_OK DATA_GO "421 4.4.2 " HOST " Error: timeout exceeded\r\n"));
	cr_assert_eq(t_feed(s, "QUIT\r\n", 6, &used), SMTP_SRV_EV_CLOSE);
	smtp_srv_free(s);
}

/* ---- replies and the Received: header, pinned byte by byte ------------------------- */


/* Feed one transaction that must hand out a message and compare its data with want.
 * The message is left pending (the caller answers it). */
static bool t_message_is(struct smtp_srv *s, const char *in, const void *want,
                         size_t want_len)
{
	size_t used, n = strlen(in);
	const struct smtp_srv_msg *m;
	bool ok;

	cr_assert_eq(t_feed(s, in, n, &used), SMTP_SRV_EV_MESSAGE);
	cr_assert_eq(used, n);
	m = smtp_srv_message(s);
	cr_assert(m);
	ok = m->len == want_len && memcmp(m->data, want, want_len) == 0;
	if (!ok) {
		char *g = esc(m->data, m->len), *w = esc(want, want_len);

		cr_log_error("message\n--- got:\n%s\n--- want:\n%s", g, w);
		free(g);
		free(w);
	}
	return ok;
}

/* The date of Received: for times a session meets one after the other: the same second
 * twice, the next second, leap days, years of fewer and more than four digits and
 * before year 1, and times gmtime_r cannot convert (written as the epoch). */
Test(smtp_srv, received_dates)
{
	static const struct {
		time_t t;
		const char *date;
	} want[] = {
		{ 0, "Thu, 1 Jan 1970 00:00:00 +0000" },
		{ NOW, DATE },
		{ NOW, DATE },
		{ NOW + 1, "Sat, 21 Nov 2026 10:00:01 +0000" },
		{ NOW, DATE },
		{ 951868799, "Tue, 29 Feb 2000 23:59:59 +0000" },
		{ 951868800, "Wed, 1 Mar 2000 00:00:00 +0000" },
		{ -30610306677LL, "Tue, 31 Dec 0999 01:02:03 +0000" },
		{ -62135596800LL, "Mon, 1 Jan 0001 00:00:00 +0000" },
		{ -62324899200LL, "Mon, 2 Jan -005 00:00:00 +0000" },
		{ 327403843750LL, "Sat, 6 Jan 12345 08:09:10 +0000" },
		/* the last second whose year fits an int, and the first whose year + 1900
		 * does not (printf got int overflow there) */
		{ 67767976233532799LL, "Tue, 31 Dec 2147483647 23:59:59 +0000" },
		{ 67767976233532800LL, "Wed, 1 Jan 2147483648 00:00:00 +0000" },
		{ INT64_MAX, "Thu, 1 Jan 1970 00:00:00 +0000" },
		{ INT64_MIN, "Thu, 1 Jan 1970 00:00:00 +0000" },
		{ 1, "Thu, 1 Jan 1970 00:00:01 +0000" },
	};
	struct t_ctx ctx = { .use_now = true };
	struct smtp_srv *s = t_new(&ctx, &t_lim);

	smtp_srv_start(s);
	cr_assert_eq(t_feed(s, "EHLO c.example\r\n", 16, NULL), SMTP_SRV_EV_NONE);
	cr_assert(t_out_is(s, BANNER EHLO_R));
	for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
		char qid[16], rcvd[256];
		int n;

		ctx.now = want[k].t;
		snprintf(qid, sizeof qid, "Q%zu", k + 1);
		n = snprintf(rcvd, sizeof rcvd,
		             "Received: from c.example (" PEER " [" PEER "])\r\n"
		             "\tby " HOST " (ringrelay) with ESMTP id %s\r\n"
		             "\tfor <b@y.example>; %s\r\nx\r\n",
		             qid, want[k].date);
		cr_assert(t_message_is(s, MSG1, rcvd, (size_t)n), "time %lld",
		          (long long)want[k].t);
		smtp_srv_queued(s);
		smtp_srv_out_consume(s, SIZE_MAX);
	}
	smtp_srv_free(s);
}

/* A hostname longer than the first output allocation, in every reply that carries it;
 * the largest SIZE; HELO; 421 for too many errors. */
Test(smtp_srv, long_hostname_in_replies)
{
	static const struct smtp_srv_limits lim = {
		.max_message_size = UINT64_MAX, .max_recipients = 3, .max_line_length = 78,
		.max_errors = 2,
	};
	static const char in[] = "EHLO c.example\r\nHELO h.example\r\n" MSG1;
	struct t_ctx ctx = { 0 };
	char host[601], want[4096];
	struct smtp_srv *s;
	size_t used;

	memset(host, 'h', 600);
	memcpy(host + 590, ".example", 9);
	s = smtp_srv_new(host, PEER, &lim, &t_ops, &ctx);
	cr_assert(s);
	smtp_srv_start(s);
	snprintf(want, sizeof want, "Received: from h.example (" PEER " [" PEER "])\r\n"
	         "\tby %s (ringrelay) with SMTP id Q1\r\n\tfor <b@y.example>; " DATE "\r\nx\r\n",
	         host);
	cr_assert(t_message_is(s, in, want, strlen(want)));
	smtp_srv_queued(s);
	snprintf(want, sizeof want,
	         "220 %s ESMTP ringrelay\r\n"
	         "250-%s\r\n250-PIPELINING\r\n250-SIZE 18446744073709551615\r\n250-VRFY\r\n"
	         "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
	         "250 %s\r\n" MAIL_OK RCPT_OK DATA_GO QUEUED("Q1"),
	         host, host, host);
	cr_assert(t_out_is(s, want));
	cr_assert_eq(t_feed(s, "X\r\nY\r\nZ\r\n", 9, &used), SMTP_SRV_EV_CLOSE);
	cr_assert_eq(used, 6);
	snprintf(want, sizeof want, R502 R502 "421 4.7.0 %s Error: too many errors\r\n", host);
	cr_assert(t_out_is(s, want));
	smtp_srv_free(s);

	for (int k = 0; k < 2; k++) {
		s = smtp_srv_new(host, PEER, &lim, &t_ops, &ctx);
		cr_assert(s);
		smtp_srv_start(s);
		(k ? smtp_srv_shutdown : smtp_srv_timeout)(s);
		snprintf(want, sizeof want, "220 %s ESMTP ringrelay\r\n421 %s %s %s\r\n", host,
		         k ? "4.3.2" : "4.4.2", host,
		         k ? "Service shutting down" : "Error: timeout exceeded");
		cr_assert(t_out_is(s, want));
		smtp_srv_free(s);
	}
}

/* The longest queue id new_qid may write (SMTP_SRV_QID_MAX - 1 octets) in the reply and
 * in Received:, with several recipients; a refuse() reply longer than the first output
 * allocation. */
Test(smtp_srv, longest_qid_and_long_refusal)
{
	static const char in[] = "EHLO c.example\r\nMAIL FROM:<a@x.example>\r\n"
	                         "RCPT TO:<b@y.example>\r\nRCPT TO:<c@y.example>\r\n"
	                         "DATA\r\nx\r\n.\r\n";
#define QID31 "ABCDEFGHIJKLMNOPQRSTUVWXYZ01234"
	static const char want[] = RCVDN("c.example", "ESMTP", QID31) "x\r\n";
	struct t_ctx ctx = { .qid = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" };
	struct smtp_srv *s = t_new(&ctx, &t_lim);
	char reply[700], out[800];

	smtp_srv_start(s);
	cr_assert(t_message_is(s, in, want, sizeof(want) - 1));
	smtp_srv_queued(s);
	cr_assert(t_out_is(s, BANNER EHLO_R MAIL_OK RCPT_OK RCPT_OK DATA_GO QUEUED(QID31)));

	memset(reply, 'r', sizeof reply - 1);
	memcpy(reply, "451 4.3.0 ", 10);
	reply[sizeof reply - 1] = '\0';
	cr_assert(t_message_is(s, MSG1, RCVD1("c.example", "ESMTP", QID31, "b@y.example") "x\r\n",
	                       sizeof(RCVD1("c.example", "ESMTP", QID31, "b@y.example") "x\r\n") - 1));
	smtp_srv_refuse(s, reply);
	snprintf(out, sizeof out, MAIL_OK RCPT_OK DATA_GO "%s\r\n", reply);
	cr_assert(t_out_is(s, out));
#undef QID31
	smtp_srv_free(s);
}

/* Every other field of Received: comes from the caller (hostname, peer, queue id): an
 * octet outside 0x21..0x7e in any of them is written as ?, in the header and in every
 * reply that carries it, so not even a caller's bug can fold or break the header or
 * a reply. */
Test(smtp_srv, untrusted_fields_in_received)
{
#define EVIL_HOST "mx??X-Evil:?1?"
#define EVIL_PEER "192.0.2.1???X"
#define EVIL_QID  "Q??X????1"
	static const char want[] =
		"Received: from c.example (" EVIL_PEER " [" EVIL_PEER "])\r\n"
		"\tby " EVIL_HOST " (ringrelay) with ESMTP id " EVIL_QID "\r\n"
		"\tfor <b@y.example>; " DATE "\r\nx\r\n";
	struct t_ctx ctx = { .qid = "Q\r\nX\x7f\xc3\xa9 1" };
	struct smtp_srv *s = smtp_srv_new("mx\r\nX-Evil: 1\x1b", "192.0.2.1\r\n\tX", &t_lim,
	                                  &t_ops, &ctx);

	cr_assert(s);
	smtp_srv_start(s);
	cr_assert(t_message_is(s, "EHLO c.example\r\n" MSG1, want, sizeof(want) - 1));
	cr_assert_str_eq(smtp_srv_message(s)->qid, EVIL_QID);
	smtp_srv_queued(s);
	smtp_srv_timeout(s);
	cr_assert(t_out_is(s, "220 " EVIL_HOST " ESMTP ringrelay\r\n"
	                      "250-" EVIL_HOST "\r\n250-PIPELINING\r\n250-SIZE 10000\r\n"
	                      "250-VRFY\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
	                      "250 SMTPUTF8\r\n" MAIL_OK RCPT_OK DATA_GO
	                      "250 2.0.0 Ok: queued as " EVIL_QID "\r\n"
	                      "421 4.4.2 " EVIL_HOST " Error: timeout exceeded\r\n"));
	smtp_srv_free(s);

	/* set_peer() (after a PROXY header) is held to the same rule */
	ctx.qid = NULL;
	s = t_new(&ctx, &t_lim);
	cr_assert_eq(smtp_srv_set_peer(s, "2001:db8::1\n\xff"), 0);
	smtp_srv_start(s);
	{
		static const char want6[] =
			"Received: from c.example (2001:db8::1?? [IPv6:2001:db8::1??])\r\n"
			"\tby " HOST " (ringrelay) with ESMTP id Q1\r\n"
			"\tfor <b@y.example>; " DATE "\r\nx\r\n";

		cr_assert(t_message_is(s, "EHLO c.example\r\n" MSG1, want6, sizeof(want6) - 1));
	}
	smtp_srv_queued(s);
	smtp_srv_free(s);
#undef EVIL_HOST
#undef EVIL_PEER
#undef EVIL_QID
}

/* No queue id can be made (the relay's id block is not durable): MAIL gets a temporary
 * 451, the session stays where it was, and it is not the client's error (30 in a row do
 * not reach max_errors). */
Test(smtp_srv, mail_without_a_queue_id)
{
	struct t_ctx ctx = { .qid_fail = true };
	struct smtp_srv *s = t_new(&ctx, &t_lim);
	char in[2048] = "EHLO client.example\r\n";

	for (int i = 0; i < 30; i++)
		strcat(in, "MAIL FROM:<a@example.org>\r\n");
	strcat(in, "RCPT TO:<b@example.net>\r\n");
	smtp_srv_start(s);
	t_out_is(s, "220 " HOST " ESMTP ringrelay\r\n");
	cr_assert_eq(t_feed(s, in, strlen(in), NULL), SMTP_SRV_EV_NONE);
	size_t n;
	const uint8_t *out = smtp_srv_out(s, &n);
	char *text = strndup((const char *)out, n);
	size_t k = 0;
	for (const char *p = text; (p = strstr(p, "451 4.3.0 Error: queue file write error\r\n")); p++)
		k++;
	cr_assert_eq(k, 30, "got %zu 451s in:\n%s", k, text);
	cr_assert(strstr(text, "503 5.5.1 Error: need MAIL command\r\n"));
	cr_assert_null(strstr(text, "421"));
	free(text);
	smtp_srv_free(s);
}

/* A reply is at most 512 octets with its CRLF (RFC 5321 4.5.3.1.5), even when it echoes an
 * option from the longest command line allowed (found by the smtp_srv fuzz target). */
Test(smtp_srv, option_echo_fits_a_reply_line)
{
	struct t_ctx ctx = { 0 };
	struct smtp_srv *s = t_new(&ctx, &t_lim);
	char in[2048] = "EHLO c.example\r\nMAIL FROM:<> ";
	size_t n = strlen(in), start = strlen("EHLO c.example\r\n");
	while (n - start < SMTP_SRV_CMD_MAX)
		in[n++] = 'X';
	memcpy(in + n, "\r\n", 3);
	smtp_srv_start(s);
	cr_assert_eq(t_feed(s, in, strlen(in), NULL), SMTP_SRV_EV_NONE);
	size_t len;
	const uint8_t *out = smtp_srv_out(s, &len);
	char *text = strndup((const char *)out, len);
	char *line = strstr(text, "555 5.5.4 Unsupported option: XXX");
	cr_assert_not_null(line, "%s", text);
	char *end = strstr(line, "\r\n");
	cr_assert_eq(end - line + 2, 512, "a %td-octet reply", end - line + 2);
	free(text);
	smtp_srv_free(s);
}

/* A bulk client pipelines more recipients than max_recipients: each extra one gets 452
 * and the transaction of those accepted goes on; the first 1000 such 452s are not errors
 * (Postfix's smtpd_recipient_overshoot_limit), so 30 over a limit of 1 do not end the
 * session. */
Test(smtp_srv, recipient_overshoot_is_not_an_error)
{
	struct t_ctx ctx = { 0 };
	struct smtp_srv_limits lim = t_lim;
	lim.max_recipients = 1;
	struct smtp_srv *s = t_new(&ctx, &lim);
	char in[4096] = "EHLO c.example\r\nMAIL FROM:<a@x.example>\r\n";
	for (int i = 0; i < 31; i++)
		sprintf(in + strlen(in), "RCPT TO:<r%d@y.example>\r\n", i);
	strcat(in, "DATA\r\nhello\r\n.\r\n");
	smtp_srv_start(s);
	size_t used;
	cr_assert_eq(t_feed(s, in, strlen(in), &used), SMTP_SRV_EV_MESSAGE);
	cr_assert_eq(smtp_srv_message(s)->nrcpt, 1);
	size_t len;
	const uint8_t *out = smtp_srv_out(s, &len);
	char *text = strndup((const char *)out, len);
	size_t k = 0;
	for (const char *p = text; (p = strstr(p, "452 4.5.3 Error: too many recipients\r\n")); p++)
		k++;
	cr_assert_eq(k, 30, "%s", text);
	cr_assert_null(strstr(text, "421"), "%s", text);
	free(text);
	smtp_srv_queued(s);
	smtp_srv_free(s);
}

/* ---- STARTTLS (RFC 3207, CVE-2011-0411) ------------------------------------------- */

#define EHLO_TLS_R \
	"250-" HOST "\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-VRFY\r\n" \
	"250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-STARTTLS\r\n250 SMTPUTF8\r\n"

Test(smtp_srv, starttls_stops_the_feed_and_resets_the_session)
{
	struct t_ctx ctx = { 0 };
	struct smtp_srv *s = smtp_srv_new(HOST, PEER, &t_lim, &t_ops, &ctx);
	cr_assert(s);
	smtp_srv_set_tls(s, SMTP_SRV_TLS_OFFER);
	smtp_srv_start(s);
	static const char in[] = "EHLO c.example\r\nSTARTTLS\r\nRSET\r\n";
	size_t used = 0;
	cr_assert_eq(t_feed(s, in, sizeof in - 1, &used), SMTP_SRV_EV_STARTTLS);
	cr_assert_eq(used, sizeof in - 1 - 6, "nothing behind STARTTLS consumed");
	cr_assert(t_out_is(s, BANNER EHLO_TLS_R "220 2.0.0 Ready to start TLS\r\n"));
	/* (the caller drops "RSET\r\n"); back to before EHLO, TLS active */
	static const char in2[] = "MAIL FROM:<a@x.example>\r\nEHLO c.example\r\nSTARTTLS\r\n"
	                          "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n"
	                          "hi\r\n.\r\n";
	cr_assert_eq(t_feed(s, in2, sizeof in2 - 1, NULL), SMTP_SRV_EV_MESSAGE);
	cr_assert(t_out_is(s, "503 5.5.1 Error: send HELO/EHLO first\r\n" EHLO_R
	                      "554 5.5.1 Error: TLS already active\r\n" MAIL_OK RCPT_OK
	                      "354 End data with <CR><LF>.<CR><LF>\r\n"));
	const struct smtp_srv_msg *m = smtp_srv_message(s);
	cr_assert(strstr((const char *)m->data, " with ESMTPS id Q1") != NULL, "Received: ESMTPS");
	smtp_srv_free(s);
}

Test(smtp_srv, starttls_refusals_and_required)
{
	struct t_ctx ctx = { 0 };
	struct smtp_srv *s = smtp_srv_new(HOST, PEER, &t_lim, &t_ops, &ctx);
	cr_assert(s);
	smtp_srv_set_tls(s, SMTP_SRV_TLS_REQUIRE);
	smtp_srv_start(s);
	static const char in[] = "EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nSTARTTLS now\r\n";
	cr_assert_eq(t_feed(s, in, sizeof in - 1, NULL), SMTP_SRV_EV_NONE);
	cr_assert(t_out_is(s, BANNER EHLO_TLS_R "530 5.7.0 Must issue a STARTTLS command first\r\n"
	                      "501 5.5.4 Syntax: STARTTLS\r\n"));
	smtp_srv_free(s);
	/* without TLS, STARTTLS is unknown and EHLO does not offer it */
	s = smtp_srv_new(HOST, PEER, &t_lim, &t_ops, &ctx);
	cr_assert(s);
	smtp_srv_start(s);
	static const char in3[] = "EHLO c.example\r\nSTARTTLS\r\n";
	cr_assert_eq(t_feed(s, in3, sizeof in3 - 1, NULL), SMTP_SRV_EV_NONE);
	cr_assert(t_out_is(s, BANNER EHLO_R "502 5.5.2 Error: command not recognized\r\n"));
	smtp_srv_free(s);
	/* inside a transaction */
	s = smtp_srv_new(HOST, PEER, &t_lim, &t_ops, &ctx);
	cr_assert(s);
	smtp_srv_set_tls(s, SMTP_SRV_TLS_OFFER);
	smtp_srv_start(s);
	static const char in4[] = "HELO c.example\r\nMAIL FROM:<a@x.example>\r\nSTARTTLS\r\n";
	cr_assert_eq(t_feed(s, in4, sizeof in4 - 1, NULL), SMTP_SRV_EV_NONE);
	cr_assert(t_out_is(s, BANNER HELO_R MAIL_OK
	                      "503 5.5.1 Error: MAIL transaction in progress\r\n"));
	smtp_srv_free(s);
}
