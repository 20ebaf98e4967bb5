/* test/proto/smtp_cli_test — the outbound SMTP client, byte by byte.
 *
 * Table cases are whole conversations: the server's turns (what it sends after each
 * group of our commands), the messages the owner hands over, and the exact result: every
 * write the client made (write boundaries shown as '|', the body being one write), and a
 * log of the events, the capabilities at READY and every recipient's result. A driver
 * plays the owner as core/deliver does: it feeds the server's octets (exact-size heap
 * copies, so ASan sees any read past them), keeps what was not consumed, pops events and
 * acts on them at once (READY/MSG_DONE: the next message or QUIT; BODY: the body, through
 * the client's dot-stuffer for DATA). Each case runs with each turn in one piece, with the
 * whole server stream cut at every offset, and one octet at a time; all must give the
 * same result. (A cut never makes a chunk cross a turn: the server cannot send its next
 * turn before it has our commands.)
 *
 * The other tests cover what a conversation table cannot show: the exact bytes offered
 * before each reply, the dot-stuffer against a reference under every split, the
 * terminator, timeouts per state, 1000 recipients, the limits and hostile replies. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_cli.h"

/* Test hook compiled into proto/smtp_cli.c under RR_TEST_BUILD. */
void smtp_cli_test_fail_alloc(unsigned long nth);

/* ---- texts ------------------------------------------------------------------------ */

#define HELO_NAME "out7.example.com"
#define GREET     "220 mx.example.com ESMTP Postfix\r\n"
#define W_EHLO    "EHLO " HELO_NAME "\r\n|"
#define W_HELO    "HELO " HELO_NAME "\r\n|"
#define W_QUIT    "QUIT\r\n|"
#define BYE       "221 2.0.0 Bye\r\n"
#define MAIL_OK   "250 2.1.0 Ok\r\n"
#define RCPT_OK   "250 2.1.5 Ok\r\n"
#define GO        "354 End data with <CR><LF>.<CR><LF>\r\n"
#define QUEUED    "250 2.0.0 Ok: queued as 4F1\r\n"
#define RSET_OK   "250 2.0.0 Ok\r\n"

#define EHLO_PIPE                                                                        \
	"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n"     \
	"250-ENHANCEDSTATUSCODES\r\n250 SMTPUTF8\r\n"
#define EHLO_PIPE_TEXT \
	"250 mx.example.com PIPELINING SIZE 10000 8BITMIME ENHANCEDSTATUSCODES SMTPUTF8"
#define EHLO_PIPE_CAPS " caps: esmtp pipelining size=10000 8bitmime smtputf8 enhancedstatuscodes\n"
#define EV_READY_PIPE  "READY 250 EHLO: " EHLO_PIPE_TEXT "\n" EHLO_PIPE_CAPS

#define EHLO_SLOW     "250-mx.example.com\r\n250-SIZE 10000\r\n250 8BITMIME\r\n"
#define EV_READY_SLOW \
	"READY 250 EHLO: 250 mx.example.com SIZE 10000 8BITMIME\n" \
	" caps: esmtp size=10000 8bitmime\n"

#define EHLO_CHUNK    "250-mx.example.com\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SIZE\r\n"
#define EV_READY_CHUNK \
	"READY 250 EHLO: 250 mx.example.com PIPELINING CHUNKING SIZE\n" \
	" caps: esmtp pipelining chunking size=0\n"

#define EV_BODY_DATA   "BODY 354 DATA: 354 End data with <CR><LF>.<CR><LF>\n"
#define EV_DONE_QUEUED "MSG_DONE 250 end of DATA: 250 2.0.0 Ok: queued as 4F1\n"
#define R_QUEUED(r)    " " r ": 250 end of DATA: 250 2.0.0 Ok: queued as 4F1\n"
#define EV_CLOSED      "CLOSED 221 QUIT: 221 2.0.0 Bye\n"

#define X10    "xxxxxxxxxx"
#define X100   X10 X10 X10 X10 X10 X10 X10 X10 X10 X10
#define X1000  X100 X100 X100 X100 X100 X100 X100 X100 X100 X100
#define X4092  X1000 X1000 X1000 X1000 X10 X10 X10 X10 X10 X10 X10 X10 X10 "xx"
#define L10    "250-x\r\n250-x\r\n250-x\r\n250-x\r\n250-x\r\n250-x\r\n250-x\r\n250-x\r\n" \
               "250-x\r\n250-x\r\n"
#define L50    L10 L10 L10 L10 L10
#define L199   L50 L50 L50 L10 L10 L10 L10 "250-x\r\n250-x\r\n250-x\r\n250-x\r\n250-x\r\n" \
               "250-x\r\n250-x\r\n250-x\r\n250-x\r\n"

/* ---- cases ------------------------------------------------------------------------ */

#define T_MAXRCPT 8
#define T_MAXMSG  3
#define T_MAXTURN 14

struct t_msg {
	const char *from;
	const char *rcpt[T_MAXRCPT];           /* NULL-terminated */
	const char *body;                      /* as stored: CRLF lines, not stuffed */
	unsigned need;
	uint64_t size;                         /* 0: strlen(body) */
};

struct cli_case {
	const char *name;
	const char *turns[T_MAXTURN];          /* the server's, NULL-terminated */
	size_t turn_len[T_MAXTURN];            /* when not strlen() (a NUL inside) */
	struct t_msg msg[T_MAXMSG];
	size_t nmsg;
	bool idle;                             /* when no message is left: no QUIT either */
	const char *want_out;                  /* our writes, each followed by '|' */
	const char *want_log;
	const char *want_state;
};

static const struct cli_case cli_cases[] = {
	{
		.name = "PIPELINING: one write, dot-stuffed body, QUIT",
		.turns = { GREET, EHLO_PIPE, MAIL_OK RCPT_OK RCPT_OK GO, QUEUED, BYE },
		.msg = { { "a@x.example", { "b@y.example", "c@y.example" },
		           ".hidden\r\nline\r\n..two\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO
		            "MAIL FROM:<a@x.example> SIZE=22\r\nRCPT TO:<b@y.example>\r\n"
		            "RCPT TO:<c@y.example>\r\nDATA\r\n|"
		            "..hidden\r\nline\r\n...two\r\n|.\r\n|" W_QUIT,
		.want_log = EV_READY_PIPE EV_BODY_DATA EV_DONE_QUEUED R_QUEUED("b@y.example")
		            R_QUEUED("c@y.example") EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "no PIPELINING: one command per reply",
		.turns = { GREET, EHLO_SLOW, MAIL_OK, RCPT_OK, RCPT_OK, GO, QUEUED, BYE },
		.msg = { { "a@x.example", { "b@y.example", "c@y.example" }, "hi\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO "MAIL FROM:<a@x.example> SIZE=4\r\n|RCPT TO:<b@y.example>\r\n|"
		            "RCPT TO:<c@y.example>\r\n|DATA\r\n|hi\r\n|.\r\n|" W_QUIT,
		.want_log = EV_READY_SLOW EV_BODY_DATA EV_DONE_QUEUED R_QUEUED("b@y.example")
		            R_QUEUED("c@y.example") EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "CHUNKING with PIPELINING: BDAT LAST and the raw body",
		.turns = { GREET, EHLO_CHUNK, MAIL_OK RCPT_OK "550 5.1.1 <c@y.example>: unknown\r\n",
		           "250 2.0.0 Ok: 7 octets queued as 4F2\r\n", BYE },
		.msg = { { "a@x.example", { "b@y.example", "c@y.example" }, ".a\r\n.\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO "MAIL FROM:<a@x.example> SIZE=7\r\nRCPT TO:<b@y.example>\r\n"
		            "RCPT TO:<c@y.example>\r\n|BDAT 7 LAST\r\n|.a\r\n.\r\n|" W_QUIT,
		.want_log = EV_READY_CHUNK
		            "BODY 550 RCPT TO: 550 5.1.1 <c@y.example>: unknown\n"
		            "MSG_DONE 250 BDAT: 250 2.0.0 Ok: 7 octets queued as 4F2\n"
		            " b@y.example: 250 BDAT: 250 2.0.0 Ok: 7 octets queued as 4F2\n"
		            " c@y.example: 550 RCPT TO: 550 5.1.1 <c@y.example>: unknown\n"
		            EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "CHUNKING without PIPELINING, empty body",
		.turns = { GREET, "250-mx.example.com\r\n250 chunking\r\n", MAIL_OK, RCPT_OK,
		           "250 2.0.0 Ok\r\n", BYE },
		.msg = { { "", { "b@y.example" }, "" } },
		.nmsg = 1,
		.want_out = W_EHLO "MAIL FROM:<>\r\n|RCPT TO:<b@y.example>\r\n|BDAT 0 LAST\r\n||"
		            W_QUIT,
		.want_log = "READY 250 EHLO: 250 mx.example.com chunking\n caps: esmtp chunking\n"
		            "BODY 250 RCPT TO: 250 2.1.5 Ok\n"
		            "MSG_DONE 250 BDAT: 250 2.0.0 Ok\n"
		            " b@y.example: 250 BDAT: 250 2.0.0 Ok\n" EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "CHUNKING, no recipient accepted: no BDAT",
		.turns = { GREET, EHLO_CHUNK, MAIL_OK "452 4.2.2 Mailbox full\r\n", BYE },
		.msg = { { "a@x.example", { "b@y.example" }, "x\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO "MAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<b@y.example>\r\n|"
		            W_QUIT,
		.want_log = EV_READY_CHUNK
		            "MSG_DONE 452 RCPT TO: 452 4.2.2 Mailbox full\n"
		            " b@y.example: 452 RCPT TO: 452 4.2.2 Mailbox full\n" EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "EHLO refused with 5xx: HELO, no extensions",
		.turns = { GREET, "502 5.5.2 Error: command not recognized\r\n",
		           "250 mx.example.com\r\n", MAIL_OK, RCPT_OK, GO, QUEUED, BYE },
		.msg = { { "a@x.example", { "b@y.example" }, "x", SMTP_CLI_NEED_8BIT } },
		.nmsg = 1,
		.want_out = W_EHLO W_HELO "MAIL FROM:<a@x.example>\r\n|RCPT TO:<b@y.example>\r\n|"
		            "DATA\r\n|x|\r\n.\r\n|" W_QUIT,
		.want_log = "READY 250 HELO: 250 mx.example.com\n caps:\n" EV_BODY_DATA
		            EV_DONE_QUEUED R_QUEUED("b@y.example") EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "EHLO 554 and HELO 554: fail with HELO's reply",
		.turns = { GREET, "554 5.7.1 go away\r\n", "554 5.7.1 still no\r\n" },
		.want_out = W_EHLO W_HELO,
		.want_log = "FAIL 554 HELO: 554 5.7.1 still no\n",
		.want_state = "failed",
	},
	{
		.name = "EHLO 4xx fails",
		.turns = { GREET, "451 4.3.0 try later\r\n" },
		.want_out = W_EHLO,
		.want_log = "FAIL 451 EHLO: 451 4.3.0 try later\n",
		.want_state = "failed",
	},
	{
		.name = "greeting 421 (multi-line) fails",
		.turns = { "421-4.7.0 mx.example.com busy\r\n421 4.7.0 try again later\r\n" },
		.want_out = "",
		.want_log = "FAIL 421 connect: 421 4.7.0 mx.example.com busy 4.7.0 try again later\n",
		.want_state = "failed",
	},
	{
		.name = "greeting 554 fails",
		.turns = { "554 5.3.2 No SMTP service here\r\n" },
		.want_out = "",
		.want_log = "FAIL 554 connect: 554 5.3.2 No SMTP service here\n",
		.want_state = "failed",
	},
	{
		.name = "greeting 450 fails",
		.turns = { "450 busy\r\n" },
		.want_out = "",
		.want_log = "FAIL 450 connect: 450 busy\n",
		.want_state = "failed",
	},
	{
		.name = "greeting that is not a reply",
		.turns = { "SSH-2.0-OpenSSH_9.6\r\n" },
		.want_out = "",
		.want_log = "FAIL 0 connect: malformed reply: SSH-2.0-OpenSSH_9.6\n",
		.want_state = "failed",
	},
	{
		.name = "greeting 354 is unexpected",
		.turns = { "354 what\r\n" },
		.want_out = "",
		.want_log = "FAIL 0 connect: unexpected reply to connect: 354 what\n",
		.want_state = "failed",
	},
	{
		.name = "421 mid-transaction (pipelined)",
		.turns = { GREET, EHLO_PIPE, MAIL_OK "550 5.1.1 unknown\r\n421 4.4.2 timeout\r\n" },
		.msg = { { "a@x.example", { "b@y.example", "c@y.example", "d@y.example" }, "x\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO
		            "MAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<b@y.example>\r\n"
		            "RCPT TO:<c@y.example>\r\nRCPT TO:<d@y.example>\r\nDATA\r\n|",
		.want_log = EV_READY_PIPE "FAIL 421 RCPT TO: 421 4.4.2 timeout\n"
		            " b@y.example: 550 RCPT TO: 550 5.1.1 unknown\n"
		            " c@y.example: -\n d@y.example: -\n",
		.want_state = "failed",
	},
	{
		.name = "421 in reply to DATA (no pipelining)",
		.turns = { GREET, EHLO_SLOW, MAIL_OK, RCPT_OK, "421 4.3.2 shutting down\r\n" },
		.msg = { { "a@x.example", { "b@y.example" }, "x\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO "MAIL FROM:<a@x.example> SIZE=3\r\n|RCPT TO:<b@y.example>\r\n|"
		            "DATA\r\n|",
		.want_log = EV_READY_SLOW "FAIL 421 DATA: 421 4.3.2 shutting down\n"
		            " b@y.example: -\n",
		.want_state = "failed",
	},
	{
		.name = "MAIL refused (pipelined): every recipient gets it, the rest is read, "
		        "next message starts with RSET",
		.turns = { GREET, EHLO_PIPE,
		           "553 5.7.1 <a@x.example>: Sender address rejected\r\n"
		           "503 5.5.1 Error: need MAIL command\r\n503 5.5.1 Error: need MAIL command\r\n"
		           "503 5.5.1 Error: need MAIL command\r\n",
		           RSET_OK MAIL_OK RCPT_OK GO, QUEUED, BYE },
		.msg = { { "a@x.example", { "b@y.example", "c@y.example" }, "x\r\n" },
		         { "d@x.example", { "e@y.example" }, "y\r\n" } },
		.nmsg = 2,
		.want_out = W_EHLO
		            "MAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<b@y.example>\r\n"
		            "RCPT TO:<c@y.example>\r\nDATA\r\n|"
		            "RSET\r\nMAIL FROM:<d@x.example> SIZE=3\r\nRCPT TO:<e@y.example>\r\n"
		            "DATA\r\n|y\r\n|.\r\n|" W_QUIT,
		.want_log = EV_READY_PIPE
		            "MSG_DONE 503 DATA: 503 5.5.1 Error: need MAIL command\n"
		            " b@y.example: 553 MAIL FROM: 553 5.7.1 <a@x.example>: Sender address rejected\n"
		            " c@y.example: 553 MAIL FROM: 553 5.7.1 <a@x.example>: Sender address rejected\n"
		            EV_BODY_DATA EV_DONE_QUEUED R_QUEUED("e@y.example") EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "MAIL refused (pipelined) and DATA 354 anyway: lone dot",
		.turns = { GREET, EHLO_PIPE, "451 4.3.0 later\r\n503 need MAIL\r\n" GO,
		           "554 5.5.1 no valid recipients\r\n", BYE },
		.msg = { { "a@x.example", { "b@y.example" }, "x\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO
		            "MAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<b@y.example>\r\nDATA\r\n|"
		            ".\r\n|" W_QUIT,
		.want_log = EV_READY_PIPE
		            "MSG_DONE 554 end of DATA: 554 5.5.1 no valid recipients\n"
		            " b@y.example: 451 MAIL FROM: 451 4.3.0 later\n" EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "MAIL refused (no pipelining): no RCPT sent",
		.turns = { GREET, EHLO_SLOW, "552 5.3.4 Message size exceeds fixed limit\r\n",
		           RSET_OK, MAIL_OK, RCPT_OK, GO, QUEUED, BYE },
		.msg = { { "a@x.example", { "b@y.example", "c@y.example" }, "x\r\n" },
		         { "a@x.example", { "b@y.example" }, "x\r\n" } },
		.nmsg = 2,
		.want_out = W_EHLO "MAIL FROM:<a@x.example> SIZE=3\r\n|RSET\r\n|"
		            "MAIL FROM:<a@x.example> SIZE=3\r\n|RCPT TO:<b@y.example>\r\n|DATA\r\n|"
		            "x\r\n|.\r\n|" W_QUIT,
		.want_log = EV_READY_SLOW
		            "MSG_DONE 552 MAIL FROM: 552 5.3.4 Message size exceeds fixed limit\n"
		            " b@y.example: 552 MAIL FROM: 552 5.3.4 Message size exceeds fixed limit\n"
		            " c@y.example: 552 MAIL FROM: 552 5.3.4 Message size exceeds fixed limit\n"
		            EV_BODY_DATA EV_DONE_QUEUED R_QUEUED("b@y.example") EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "some RCPT refused",
		.turns = { GREET, EHLO_PIPE,
		           MAIL_OK "550 5.1.1 <b@y.example>: Recipient address rejected\r\n" RCPT_OK
		           "452 4.5.3 Error: too many recipients\r\n" GO,
		           QUEUED, BYE },
		.msg = { { "a@x.example", { "b@y.example", "c@y.example", "d@y.example" }, "x\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO
		            "MAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<b@y.example>\r\n"
		            "RCPT TO:<c@y.example>\r\nRCPT TO:<d@y.example>\r\nDATA\r\n|"
		            "x\r\n|.\r\n|" W_QUIT,
		.want_log = EV_READY_PIPE EV_BODY_DATA EV_DONE_QUEUED
		            " b@y.example: 550 RCPT TO: 550 5.1.1 <b@y.example>: Recipient address rejected\n"
		            R_QUEUED("c@y.example")
		            " d@y.example: 452 RCPT TO: 452 4.5.3 Error: too many recipients\n"
		            EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "all RCPT refused, DATA 354 anyway: lone dot, final reply is nobody's",
		.turns = { GREET, EHLO_PIPE,
		           MAIL_OK "550 5.1.1 no\r\n550 5.1.1 no\r\n" GO,
		           "554 5.5.1 Error: no valid recipients\r\n", BYE },
		.msg = { { "a@x.example", { "b@y.example", "c@y.example" }, "x\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO
		            "MAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<b@y.example>\r\n"
		            "RCPT TO:<c@y.example>\r\nDATA\r\n|.\r\n|" W_QUIT,
		.want_log = EV_READY_PIPE
		            "MSG_DONE 554 end of DATA: 554 5.5.1 Error: no valid recipients\n"
		            " b@y.example: 550 RCPT TO: 550 5.1.1 no\n"
		            " c@y.example: 550 RCPT TO: 550 5.1.1 no\n" EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "all RCPT refused, final 250 after the lone dot still nobody's",
		.turns = { GREET, EHLO_PIPE, MAIL_OK "450 4.2.0 greylisted\r\n" GO, QUEUED, BYE },
		.msg = { { "a@x.example", { "b@y.example" }, "x\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO
		            "MAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<b@y.example>\r\nDATA\r\n|"
		            ".\r\n|" W_QUIT,
		.want_log = EV_READY_PIPE EV_DONE_QUEUED
		            " b@y.example: 450 RCPT TO: 450 4.2.0 greylisted\n" EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "all RCPT refused, DATA refused",
		.turns = { GREET, EHLO_PIPE,
		           MAIL_OK "550 5.1.1 no\r\n554 5.5.1 Error: no valid recipients\r\n", BYE },
		.msg = { { "a@x.example", { "b@y.example" }, "x\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO
		            "MAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<b@y.example>\r\nDATA\r\n|"
		            W_QUIT,
		.want_log = EV_READY_PIPE
		            "MSG_DONE 554 DATA: 554 5.5.1 Error: no valid recipients\n"
		            " b@y.example: 550 RCPT TO: 550 5.1.1 no\n" EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "all RCPT refused without pipelining: no DATA",
		.turns = { GREET, EHLO_SLOW, MAIL_OK, "550 5.1.1 no\r\n", "551 5.1.6 moved\r\n", BYE },
		.msg = { { "a@x.example", { "b@y.example", "c@y.example" }, "x\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO "MAIL FROM:<a@x.example> SIZE=3\r\n|RCPT TO:<b@y.example>\r\n|"
		            "RCPT TO:<c@y.example>\r\n|" W_QUIT,
		.want_log = EV_READY_SLOW "MSG_DONE 551 RCPT TO: 551 5.1.6 moved\n"
		            " b@y.example: 550 RCPT TO: 550 5.1.1 no\n"
		            " c@y.example: 551 RCPT TO: 551 5.1.6 moved\n" EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "DATA refused: accepted recipients get its reply",
		.turns = { GREET, EHLO_PIPE,
		           MAIL_OK RCPT_OK "550 5.1.1 no\r\n451 4.3.0 Error: queue file write error\r\n",
		           BYE },
		.msg = { { "a@x.example", { "b@y.example", "c@y.example" }, "x\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO
		            "MAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<b@y.example>\r\n"
		            "RCPT TO:<c@y.example>\r\nDATA\r\n|" W_QUIT,
		.want_log = EV_READY_PIPE
		            "MSG_DONE 451 DATA: 451 4.3.0 Error: queue file write error\n"
		            " b@y.example: 451 DATA: 451 4.3.0 Error: queue file write error\n"
		            " c@y.example: 550 RCPT TO: 550 5.1.1 no\n" EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "final 5xx and final 4xx, connection reused with RSET",
		.turns = { GREET, EHLO_PIPE, MAIL_OK RCPT_OK GO,
		           "554 5.7.1 rejected: spam\r\n",
		           RSET_OK MAIL_OK RCPT_OK GO, "451 4.7.1 try later\r\n", BYE },
		.msg = { { "a@x.example", { "b@y.example" }, "spam\r\n" },
		         { "a@x.example", { "c@y.example" }, "ham\r\n" } },
		.nmsg = 2,
		.want_out = W_EHLO
		            "MAIL FROM:<a@x.example> SIZE=6\r\nRCPT TO:<b@y.example>\r\nDATA\r\n|"
		            "spam\r\n|.\r\n|"
		            "RSET\r\nMAIL FROM:<a@x.example> SIZE=5\r\nRCPT TO:<c@y.example>\r\n"
		            "DATA\r\n|ham\r\n|.\r\n|" W_QUIT,
		.want_log = EV_READY_PIPE EV_BODY_DATA
		            "MSG_DONE 554 end of DATA: 554 5.7.1 rejected: spam\n"
		            " b@y.example: 554 end of DATA: 554 5.7.1 rejected: spam\n"
		            EV_BODY_DATA
		            "MSG_DONE 451 end of DATA: 451 4.7.1 try later\n"
		            " c@y.example: 451 end of DATA: 451 4.7.1 try later\n" EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "RSET on reuse without pipelining; three messages",
		.turns = { GREET, EHLO_SLOW, MAIL_OK, RCPT_OK, GO, QUEUED,
		           RSET_OK, MAIL_OK, RCPT_OK, GO, QUEUED, BYE },
		.msg = { { "a@x.example", { "b@y.example" }, "1\r\n" },
		         { "a@x.example", { "c@y.example" }, "toolarge\r\n", 0, 10001 },
		         { "a@x.example", { "d@y.example" }, "3\r\n" } },
		.nmsg = 3,
		.want_out = W_EHLO "MAIL FROM:<a@x.example> SIZE=3\r\n|RCPT TO:<b@y.example>\r\n|"
		            "DATA\r\n|1\r\n|.\r\n|RSET\r\n|MAIL FROM:<a@x.example> SIZE=3\r\n|"
		            "RCPT TO:<d@y.example>\r\n|DATA\r\n|3\r\n|.\r\n|" W_QUIT,
		.want_log = EV_READY_SLOW EV_BODY_DATA EV_DONE_QUEUED R_QUEUED("b@y.example")
		            "REFUSED\n"
		            " c@y.example: 552 MAIL FROM: 552 5.3.4 Message size exceeds fixed "
		            "maximum message size\n"
		            EV_BODY_DATA EV_DONE_QUEUED R_QUEUED("d@y.example") EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "SIZE exceeded locally on a fresh connection: no RSET after it",
		.turns = { GREET, EHLO_PIPE, MAIL_OK RCPT_OK GO, QUEUED, BYE },
		.msg = { { "a@x.example", { "b@y.example", "c@y.example" }, "x", 0, 10001 },
		         { "a@x.example", { "d@y.example" }, "x", 0, 10000 } },
		.nmsg = 2,
		.want_out = W_EHLO
		            "MAIL FROM:<a@x.example> SIZE=10000\r\nRCPT TO:<d@y.example>\r\nDATA\r\n|"
		            "x|\r\n.\r\n|" W_QUIT,
		.want_log = EV_READY_PIPE "REFUSED\n"
		            " b@y.example: 552 MAIL FROM: 552 5.3.4 Message size exceeds fixed "
		            "maximum message size\n"
		            " c@y.example: 552 MAIL FROM: 552 5.3.4 Message size exceeds fixed "
		            "maximum message size\n"
		            EV_BODY_DATA EV_DONE_QUEUED R_QUEUED("d@y.example") EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "SMTPUTF8 needed but not offered: 553 locally; 8BITMIME not offered: no BODY=",
		.turns = { GREET, "250-mx.example.com\r\n250 PIPELINING\r\n", MAIL_OK RCPT_OK GO,
		           QUEUED, BYE },
		.msg = { { "\xc3\xa9@x.example", { "b@y.example" }, "x\r\n", SMTP_CLI_NEED_UTF8 },
		         { "a@x.example", { "b@y.example" }, "\xc3\xa9\r\n", SMTP_CLI_NEED_8BIT } },
		.nmsg = 2,
		.want_out = W_EHLO "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n|"
		            "\xc3\xa9\r\n|.\r\n|" W_QUIT,
		.want_log = "READY 250 EHLO: 250 mx.example.com PIPELINING\n caps: esmtp pipelining\n"
		            "REFUSED\n"
		            " b@y.example: 553 MAIL FROM: 553 5.6.7 SMTPUTF8 is required, but was "
		            "not offered by the server\n"
		            EV_BODY_DATA EV_DONE_QUEUED R_QUEUED("b@y.example") EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "SMTPUTF8 and BODY=8BITMIME when offered",
		.turns = { GREET, EHLO_PIPE, MAIL_OK RCPT_OK GO, QUEUED, BYE },
		.msg = { { "\xc3\xa9@x.example", { "b@\xc3\xa9.example" }, "\xc3\xa9\r\n",
		           SMTP_CLI_NEED_UTF8 | SMTP_CLI_NEED_8BIT } },
		.nmsg = 1,
		.want_out = W_EHLO
		            "MAIL FROM:<\xc3\xa9@x.example> SIZE=4 BODY=8BITMIME SMTPUTF8\r\n"
		            "RCPT TO:<b@\xc3\xa9.example>\r\nDATA\r\n|\xc3\xa9\r\n|.\r\n|" W_QUIT,
		.want_log = EV_READY_PIPE EV_BODY_DATA EV_DONE_QUEUED
		            R_QUEUED("b@\xc3\xa9.example") EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "a recipient with CR LF is never written",
		.turns = { GREET, EHLO_PIPE, MAIL_OK RCPT_OK GO, QUEUED, BYE },
		.msg = { { "a@x.example", { "b@y.example\r\nRSET", "c@y.example" }, "x\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO
		            "MAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<c@y.example>\r\nDATA\r\n|"
		            "x\r\n|.\r\n|" W_QUIT,
		.want_log = EV_READY_PIPE EV_BODY_DATA EV_DONE_QUEUED
		            " b@y.example\r\nRSET: 501 RCPT TO: 501 5.1.3 Bad recipient address syntax\n"
		            R_QUEUED("c@y.example") EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "RSET refused fails the connection",
		.turns = { GREET, EHLO_PIPE, MAIL_OK RCPT_OK GO, QUEUED,
		           "500 5.5.1 what\r\n503 nested\r\n" },
		.msg = { { "a@x.example", { "b@y.example" }, "x\r\n" },
		         { "a@x.example", { "c@y.example" }, "x\r\n" } },
		.nmsg = 2,
		.want_out = W_EHLO
		            "MAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<b@y.example>\r\nDATA\r\n|"
		            "x\r\n|.\r\n|"
		            "RSET\r\nMAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<c@y.example>\r\n"
		            "DATA\r\n|",
		.want_log = EV_READY_PIPE EV_BODY_DATA EV_DONE_QUEUED R_QUEUED("b@y.example")
		            "FAIL 500 RSET: 500 5.5.1 what\n c@y.example: -\n",
		.want_state = "failed",
	},
	{
		.name = "QUIT answered with 421 still closes",
		.turns = { GREET, EHLO_PIPE, "421 4.3.2 bye\r\n" },
		.want_out = W_EHLO W_QUIT,
		.want_log = EV_READY_PIPE "CLOSED 421 QUIT: 421 4.3.2 bye\n",
		.want_state = "closed",
	},
	{
		.name = "QUIT, then anything the server says is ignored",
		.turns = { GREET, EHLO_PIPE, BYE "garbage\r\n" },
		.want_out = W_EHLO W_QUIT,
		.want_log = EV_READY_PIPE EV_CLOSED,
		.want_state = "closed",
	},
	{
		.name = "bare LF, lower case, no enhanced codes, empty texts",
		.turns = { "220\n", "250-mx\n250-pipelining\n250-size\n250-Chunking\n250-8bitmime\n"
		           "250-smtputf8\n250-starttls\n250 enhancedstatuscodes\n",
		           "250 \n250\r\n", "250 ok\n", "221\n" },
		.msg = { { "a@x.example", { "b@y.example" }, "x\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO "MAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<b@y.example>\r\n|"
		            "BDAT 3 LAST\r\n|x\r\n|" W_QUIT,
		.want_log = "READY 250 EHLO: 250 mx pipelining size Chunking 8bitmime smtputf8 "
		            "starttls enhancedstatuscodes\n"
		            " caps: esmtp pipelining chunking size=0 8bitmime smtputf8 starttls "
		            "enhancedstatuscodes\n"
		            "BODY 250 RCPT TO: 250\n"
		            "MSG_DONE 250 BDAT: 250 ok\n b@y.example: 250 BDAT: 250 ok\n"
		            "CLOSED 221 QUIT: 221\n",
		.want_state = "closed",
	},
	{
		.name = "SIZE values: huge is none, words are ignored",
		.turns = { GREET, "250-mx\r\n250-SIZE 99999999999999999999999\r\n250-SIZES 5\r\n"
		           "250-XPIPELINING\r\n250 AUTH PLAIN LOGIN\r\n" },
		.idle = true,
		.want_out = W_EHLO,
		.want_log = "READY 250 EHLO: 250 mx SIZE 99999999999999999999999 SIZES 5 XPIPELINING "
		            "AUTH PLAIN LOGIN\n caps: esmtp size=0\n",
		.want_state = "ready",
	},
	{
		.name = "NUL octets in a reply become '?'",
		.turns = { GREET, "250-mx\0x\r\n250 PIPE\0LINING\r\n" },
		.turn_len = { 0, 27 },
		.idle = true,
		.want_out = W_EHLO,
		.want_log = "READY 250 EHLO: 250 mx?x PIPE?LINING\n caps: esmtp\n",
		.want_state = "ready",
	},
	{
		.name = "reply when none is expected",
		.turns = { GREET, EHLO_PIPE, "250 surprise\r\n" },
		.idle = true,
		.want_out = W_EHLO,
		.want_log = EV_READY_PIPE "FAIL 0 none: unexpected reply: 250 surprise\n",
		.want_state = "failed",
	},
	{
		.name = "421 while idle",
		.turns = { GREET, EHLO_PIPE, "421 4.4.2 mx.example.com Error: timeout exceeded\r\n" },
		.idle = true,
		.want_out = W_EHLO,
		.want_log = EV_READY_PIPE
		            "FAIL 421 none: 421 4.4.2 mx.example.com Error: timeout exceeded\n",
		.want_state = "failed",
	},
	{
		.name = "MSG_DONE and an extra reply in one read: both events",
		.turns = { GREET, EHLO_PIPE, MAIL_OK RCPT_OK GO, QUEUED "250 extra\r\n" },
		.msg = { { "a@x.example", { "b@y.example" }, "x\r\n" } },
		.nmsg = 1,
		.idle = true,
		.want_out = W_EHLO
		            "MAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<b@y.example>\r\nDATA\r\n|"
		            "x\r\n|.\r\n|",
		.want_log = EV_READY_PIPE EV_BODY_DATA EV_DONE_QUEUED R_QUEUED("b@y.example")
		            "FAIL 0 none: unexpected reply: 250 extra\n",
		.want_state = "failed",
	},
	{
		.name = "3xx to RCPT is unexpected",
		.turns = { GREET, EHLO_SLOW, MAIL_OK, "354 go on\r\n" },
		.msg = { { "a@x.example", { "b@y.example" }, "x\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO "MAIL FROM:<a@x.example> SIZE=3\r\n|RCPT TO:<b@y.example>\r\n|",
		.want_log = EV_READY_SLOW "FAIL 0 RCPT TO: unexpected reply to RCPT TO: 354 go on\n"
		            " b@y.example: -\n",
		.want_state = "failed",
	},
	{
		.name = "250 to DATA is unexpected",
		.turns = { GREET, EHLO_SLOW, MAIL_OK, RCPT_OK, "250 sure\r\n" },
		.msg = { { "a@x.example", { "b@y.example" }, "x\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO "MAIL FROM:<a@x.example> SIZE=3\r\n|RCPT TO:<b@y.example>\r\n|"
		            "DATA\r\n|",
		.want_log = EV_READY_SLOW "FAIL 0 DATA: unexpected reply to DATA: 250 sure\n"
		            " b@y.example: -\n",
		.want_state = "failed",
	},
	{
		.name = "garbage instead of a RCPT reply",
		.turns = { GREET, EHLO_PIPE, MAIL_OK "OK\r\n" },
		.msg = { { "a@x.example", { "b@y.example" }, "x\r\n" } },
		.nmsg = 1,
		.want_out = W_EHLO
		            "MAIL FROM:<a@x.example> SIZE=3\r\nRCPT TO:<b@y.example>\r\nDATA\r\n|",
		.want_log = EV_READY_PIPE "FAIL 0 RCPT TO: malformed reply: OK\n b@y.example: -\n",
		.want_state = "failed",
	},
	{
		.name = "codes that differ within a reply",
		.turns = { GREET, "250-mx.example.com\r\n251 PIPELINING\r\n" },
		.want_out = W_EHLO,
		.want_log = "FAIL 0 EHLO: malformed reply: 251 PIPELINING\n",
		.want_state = "failed",
	},
	{
		.name = "bad separator",
		.turns = { "220-a\r\n220_b\r\n" },
		.want_out = "",
		.want_log = "FAIL 0 connect: malformed reply: 220_b\n",
		.want_state = "failed",
	},
	{
		.name = "a line shorter than a code",
		.turns = { "22\r\n" },
		.want_out = "",
		.want_log = "FAIL 0 connect: malformed reply: 22\n",
		.want_state = "failed",
	},
	{
		.name = "code 600",
		.turns = { "600 no\r\n" },
		.want_out = "",
		.want_log = "FAIL 0 connect: malformed reply: 600 no\n",
		.want_state = "failed",
	},
	{
		.name = "code 199",
		.turns = { "199 no\r\n" },
		.want_out = "",
		.want_log = "FAIL 0 connect: malformed reply: 199 no\n",
		.want_state = "failed",
	},
	{
		.name = "a line of 4096 octets is taken",
		.turns = { "220 " X4092 "\r\n" },
		.idle = true,
		.want_out = W_EHLO,
		.want_log = "",
		.want_state = "ehlo",
	},
	{
		.name = "a line of 4097 octets is too long",
		.turns = { "220 " X4092 "x\r\n" },
		.want_out = "",
		.want_log = "FAIL 0 connect: reply line too long\n",
		.want_state = "failed",
	},
	{
		.name = "a line of 4097 octets ending in a bare LF is too long",
		.turns = { "220 " X4092 "x\n" },
		.want_out = "",
		.want_log = "FAIL 0 connect: reply line too long\n",
		.want_state = "failed",
	},
	{
		.name = "a line of 4096 octets ending in a bare LF is taken",
		.turns = { "220 " X4092 "\n" },
		.idle = true,
		.want_out = W_EHLO,
		.want_log = "",
		.want_state = "ehlo",
	},
	{
		.name = "4097 octets and CR, no LF yet: too long already",
		.turns = { "220 " X4092 "x\r" },
		.want_out = "",
		.want_log = "FAIL 0 connect: reply line too long\n",
		.want_state = "failed",
	},
	{
		.name = "4096 octets and CR, no LF yet: waits",
		.turns = { "220 " X4092 "\r" },
		.want_out = "",
		.want_log = "left 4097\n",
		.want_state = "greeting",
	},
	{
		.name = "200 lines are taken",
		.turns = { GREET, "250-mx\r\n" L199 },
		.want_out = W_EHLO,
		.want_log = "left 0\n",
		.want_state = "ehlo",
	},
	{
		.name = "a reply of 200 lines completes",
		.turns = { GREET, L199 "250 PIPELINING\r\n" },
		.idle = true,
		.want_out = W_EHLO,
		.want_log = "READY 250 EHLO: 250 x" /* 198 more " x" */
		            " x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x"
		            " x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x"
		            " x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x"
		            " x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x"
		            " x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x x"
		            " x x x x x x x x x x x x x x x x x x x x x x x x x x x x"
		            " PIPELINING\n caps: esmtp pipelining\n",
		.want_state = "ready",
	},
	{
		.name = "a reply of 201 lines is too long",
		.turns = { GREET, "250-mx\r\n" L199 "250 PIPELINING\r\n" },
		.want_out = W_EHLO,
		.want_log = "FAIL 0 EHLO: too many reply lines\n",
		.want_state = "failed",
	},
};

#define NCASES (sizeof(cli_cases) / sizeof(cli_cases[0]))

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
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void t_puts(struct t_buf *b, const char *s)
{
	t_put(b, s, strlen(s));
}

static void t_printf(struct t_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void t_printf(struct t_buf *b, const char *fmt, ...)
{
	char tmp[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	cr_assert(n >= 0 && (size_t)n < sizeof tmp);
	t_put(b, tmp, (size_t)n);
}

static void t_buf_free(struct t_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

struct t_run {
	struct t_buf out;                      /* our writes, '|' after each */
	struct t_buf log;
	struct t_buf pend;                     /* server octets not consumed yet */
	const char *state;
	size_t next_msg;                       /* messages handed over so far */
	const struct t_msg *cur;               /* in a transaction */
};

static const char *t_kind(enum smtp_cli_ev_kind k)
{
	switch (k) {
	case SMTP_CLI_EV_NONE: return "NONE";
	case SMTP_CLI_EV_READY: return "READY";
	case SMTP_CLI_EV_BODY: return "BODY";
	case SMTP_CLI_EV_MSG_DONE: return "MSG_DONE";
	case SMTP_CLI_EV_FAIL: return "FAIL";
	case SMTP_CLI_EV_CLOSED: return "CLOSED";
	case SMTP_CLI_EV_TLS: return "TLS";
	case SMTP_CLI_EV_TLS_REFUSED: return "TLS_REFUSED";
	}
	return "?";
}

static void t_log_caps(struct t_buf *b, const struct smtp_cli_caps *k)
{
	t_puts(b, " caps:");
	if (k->esmtp)
		t_puts(b, " esmtp");
	if (k->pipelining)
		t_puts(b, " pipelining");
	if (k->chunking)
		t_puts(b, " chunking");
	if (k->size)
		t_printf(b, " size=%llu", (unsigned long long)k->size_max);
	if (k->eightbitmime)
		t_puts(b, " 8bitmime");
	if (k->smtputf8)
		t_puts(b, " smtputf8");
	if (k->starttls)
		t_puts(b, " starttls");
	if (k->enhancedstatuscodes)
		t_puts(b, " enhancedstatuscodes");
	t_puts(b, "\n");
}

static void t_log_results(const struct smtp_cli *c, const struct t_msg *m, struct t_buf *b)
{
	size_t n = 0;

	while (n < T_MAXRCPT && m->rcpt[n])
		n++;
	cr_assert_eq(c->nrcpt, n);
	for (size_t i = 0; i < n; i++) {
		const struct smtp_cli_reply *r = smtp_cli_result(c, i);

		if (!r) {
			t_printf(b, " %s: -\n", m->rcpt[i]);
			continue;
		}
		cr_assert(r->cmd);
		t_printf(b, " %s: %u %s: %s\n", m->rcpt[i], r->code, r->cmd, r->text);
	}
	cr_assert_null(smtp_cli_result(c, n));
}

static void t_take_out(struct smtp_cli *c, struct t_run *g)
{
	size_t len;
	const char *p = smtp_cli_out(c, &len);

	if (len == 0)
		return;
	/* Take it in two pieces, as a short send would. */
	t_put(&g->out, p, len / 2);
	smtp_cli_out_done(c, len / 2);
	p = smtp_cli_out(c, &len);
	t_put(&g->out, p, len);
	smtp_cli_out_done(c, len);
	t_puts(&g->out, "|");
	p = smtp_cli_out(c, &len);
	cr_assert_eq(len, 0);
}

/* The body as the owner sends it: DATA through c->dot, in pieces of 3; BDAT raw. */
static void t_send_body(struct smtp_cli *c, const struct t_msg *m, struct t_run *g)
{
	const char *p = m->body;
	size_t n = strlen(p);

	if (c->body == SMTP_CLI_BODY_BDAT) {
		t_put(&g->out, p, n);
	} else {
		while (n) {
			size_t chunk = n < 3 ? n : 3;
			size_t off = 0;

			while (off < chunk) {
				bool dot;
				size_t k = smtp_cli_dot_next(&c->dot, p + off, chunk - off, &dot);

				cr_assert_leq(k, chunk - off);
				t_put(&g->out, p + off, k);
				off += k;
				if (dot)
					t_put(&g->out, ".", 1);
				else
					cr_assert_eq(off, chunk);
			}
			p += chunk;
			n -= chunk;
		}
	}
	t_puts(&g->out, "|");
	smtp_cli_body_done(c);
}

/* READY or MSG_DONE: the next message, or QUIT. */
static void t_next_msg(struct smtp_cli *c, const struct cli_case *k, struct t_run *g)
{
	while (g->next_msg < k->nmsg) {
		const struct t_msg *m = &k->msg[g->next_msg++];
		size_t n = 0;
		uint64_t size = m->size ? m->size : strlen(m->body);

		while (n < T_MAXRCPT && m->rcpt[n])
			n++;
		if (smtp_cli_send_msg(c, m->from, m->rcpt, n, size, m->need) == 0) {
			cr_assert_eq(c->nrcpt, n);
			g->cur = m;
			return;
		}
		cr_assert_str_eq(smtp_cli_state_name(c), "ready");
		t_puts(&g->log, "REFUSED\n");
		t_log_results(c, m, &g->log);
	}
	if (!k->idle)
		smtp_cli_quit(c);
}

static void t_react(struct smtp_cli *c, const struct cli_case *k, struct t_run *g)
{
	struct smtp_cli_ev ev;

	t_take_out(c, g);
	while (smtp_cli_next(c, &ev)) {
		cr_assert(ev.reply.cmd);
		cr_assert_lt(strlen(ev.reply.text), SMTP_CLI_TEXT_MAX + 1);
		t_printf(&g->log, "%s %u %s: %s\n", t_kind(ev.kind), ev.reply.code, ev.reply.cmd,
		         ev.reply.text);
		switch (ev.kind) {
		case SMTP_CLI_EV_READY:
			t_log_caps(&g->log, &c->caps);
			t_next_msg(c, k, g);
			break;
		case SMTP_CLI_EV_BODY:
			cr_assert(g->cur);
			t_take_out(c, g);
			t_send_body(c, g->cur, g);
			break;
		case SMTP_CLI_EV_MSG_DONE:
			t_log_results(c, g->cur, &g->log);
			g->cur = NULL;
			t_next_msg(c, k, g);
			break;
		case SMTP_CLI_EV_FAIL:
			if (g->cur)
				t_log_results(c, g->cur, &g->log);
			g->cur = NULL;
			break;
		case SMTP_CLI_EV_TLS:           /* the table's cases never say STARTTLS */
		case SMTP_CLI_EV_TLS_REFUSED:
			cr_assert_fail("STARTTLS was not sent");
			break;
		case SMTP_CLI_EV_CLOSED:
		case SMTP_CLI_EV_NONE:
			break;
		}
		t_take_out(c, g);
	}
	cr_assert_eq(ev.kind, SMTP_CLI_EV_NONE);
}

/* Offer the server's octets p[0..n) as the owner does: appended to what is pending, as
 * an exact-size heap copy. */
static void t_feed(struct smtp_cli *c, const struct cli_case *k, struct t_run *g,
                   const char *p, size_t n)
{
	char *copy;
	size_t used;

	t_put(&g->pend, p, n);
	copy = malloc(g->pend.len ? g->pend.len : 1);
	cr_assert(copy);
	memcpy(copy, g->pend.p, g->pend.len);
	used = smtp_cli_input(c, copy, g->pend.len);
	free(copy);
	cr_assert_leq(used, g->pend.len);
	memmove(g->pend.p, g->pend.p + used, g->pend.len - used);
	g->pend.len -= used;
	g->pend.p[g->pend.len] = '\0';
	t_react(c, k, g);
}

static size_t t_turn_len(const struct cli_case *k, size_t t)
{
	return k->turn_len[t] ? k->turn_len[t] : strlen(k->turns[t]);
}

/* cut: 0 each turn in one piece; 1 one octet at a time; else the whole server stream is
 * cut once, at offset cut - 1 (and at every turn's end). */
static void t_run_case(const struct cli_case *k, size_t cut, struct t_run *g)
{
	struct smtp_cli c;
	size_t base = 0;

	memset(g, 0, sizeof *g);
	t_put(&g->out, "", 0);
	t_put(&g->log, "", 0);
	t_put(&g->pend, "", 0);
	smtp_cli_init(&c, HELO_NAME, NULL);
	cr_assert_str_eq(smtp_cli_state_name(&c), "greeting");
	for (size_t t = 0; t < T_MAXTURN && k->turns[t]; t++) {
		const char *p = k->turns[t];
		size_t n = t_turn_len(k, t), i = 0;

		while (i < n) {
			size_t step = n - i;

			if (cut == 1)
				step = 1;
			else if (cut > 1 && base + i < cut - 1 && cut - 1 < base + n)
				step = cut - 1 - (base + i);
			t_feed(&c, k, g, p + i, step);
			i += step;
		}
		base += n;
	}
	if (g->pend.len || (k->want_log && strstr(k->want_log, "left ")))
		t_printf(&g->log, "left %zu\n", g->pend.len);
	g->state = smtp_cli_state_name(&c);
	smtp_cli_free(&c);
	cr_assert_str_eq(smtp_cli_state_name(&c), "none");
}

static size_t t_stream_len(const struct cli_case *k)
{
	size_t n = 0;

	for (size_t t = 0; t < T_MAXTURN && k->turns[t]; t++)
		n += t_turn_len(k, t);
	return n;
}

static void t_run_free(struct t_run *g)
{
	t_buf_free(&g->out);
	t_buf_free(&g->log);
	t_buf_free(&g->pend);
}

static void t_check(const struct cli_case *k, const struct t_run *g, const char *how)
{
	cr_expect_str_eq(g->out.p, k->want_out, "%s (%s): writes\n got: %s\nwant: %s", k->name,
	                 how, g->out.p, k->want_out);
	cr_expect_str_eq(g->log.p, k->want_log, "%s (%s): log\n got: %s\nwant: %s", k->name, how,
	                 g->log.p, k->want_log);
	cr_expect_str_eq(g->state, k->want_state, "%s (%s): state", k->name, how);
}

ParameterizedTestParameters(smtp_cli, conversation)
{
	static size_t idx[NCASES];

	for (size_t i = 0; i < NCASES; i++)
		idx[i] = i;
	return cr_make_param_array(size_t, idx, NCASES);
}

ParameterizedTest(size_t *i, smtp_cli, conversation)
{
	const struct cli_case *k = &cli_cases[*i];
	size_t total = t_stream_len(k);
	struct t_run one, g;
	char how[64];

	t_run_case(k, 0, &one);
	t_check(k, &one, "one piece per turn");
	t_run_case(k, 1, &g);
	t_check(k, &g, "octet by octet");
	t_run_free(&g);
	for (size_t cut = 1; cut < total; cut++) {
		bool same;

		t_run_case(k, cut + 1, &g);
		same = strcmp(g.out.p, one.out.p) == 0 && strcmp(g.log.p, one.log.p) == 0 &&
		       strcmp(g.state, one.state) == 0;
		if (!same) {
			snprintf(how, sizeof how, "cut at %zu", cut);
			t_check(k, &g, how);
			t_run_free(&g);
			break;
		}
		t_run_free(&g);
	}
	t_run_free(&one);
}

/* ---- helpers for the single tests ------------------------------------------------- */

static void feed(struct smtp_cli *c, const char *s)
{
	size_t n = strlen(s);
	char *copy = malloc(n ? n : 1);

	cr_assert(copy);
	memcpy(copy, s, n);
	cr_assert_eq(smtp_cli_input(c, copy, n), n, "not all of \"%s\" was consumed", s);
	free(copy);
}

/* The output offered now must be exactly `want`; it is then taken. */
static void out_is(struct smtp_cli *c, const char *want)
{
	size_t len;
	const char *p = smtp_cli_out(c, &len);

	cr_assert_eq(len, strlen(want), "output \"%.*s\", want \"%s\"", (int)len, p, want);
	cr_assert(memcmp(p, want, len) == 0, "output \"%.*s\", want \"%s\"", (int)len, p, want);
	smtp_cli_out_done(c, len);
}

static void ev_is(struct smtp_cli *c, enum smtp_cli_ev_kind kind, unsigned code,
                  struct smtp_cli_ev *ev)
{
	cr_assert(smtp_cli_next(c, ev), "no event, want %s", t_kind(kind));
	cr_assert_eq(ev->kind, kind, "event %s, want %s (%s)", t_kind(ev->kind), t_kind(kind),
	             ev->reply.text);
	cr_assert_eq(ev->reply.code, code, "code %u, want %u (%s)", ev->reply.code, code,
	             ev->reply.text);
}

static void no_ev(struct smtp_cli *c)
{
	struct smtp_cli_ev ev;

	cr_assert(!smtp_cli_next(c, &ev), "unexpected event %s: %s", t_kind(ev.kind),
	          ev.reply.text);
}

/* Greeting and EHLO done with `ehlo` as the reply; the client is READY. */
static void start(struct smtp_cli *c, const char *ehlo)
{
	struct smtp_cli_ev ev;

	smtp_cli_init(c, HELO_NAME, NULL);
	out_is(c, "");
	feed(c, GREET);
	out_is(c, "EHLO " HELO_NAME "\r\n");
	feed(c, ehlo);
	ev_is(c, SMTP_CLI_EV_READY, 250, &ev);
	no_ev(c);
	cr_assert_str_eq(smtp_cli_state_name(c), "ready");
}

static const char *const RCPT2[] = { "b@y.example", "c@y.example" };

/* ---- the exact writes ------------------------------------------------------------- */

Test(smtp_cli, pipelining_one_write)
{
	struct smtp_cli c;
	struct smtp_cli_ev ev;

	start(&c, EHLO_PIPE);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 2, 1234, 0), 0);
	out_is(&c, "MAIL FROM:<a@x.example> SIZE=1234\r\nRCPT TO:<b@y.example>\r\n"
	           "RCPT TO:<c@y.example>\r\nDATA\r\n");
	cr_assert_str_eq(smtp_cli_state_name(&c), "mail");
	feed(&c, MAIL_OK);
	cr_assert_str_eq(smtp_cli_state_name(&c), "rcpt");
	feed(&c, RCPT_OK RCPT_OK);
	cr_assert_str_eq(smtp_cli_state_name(&c), "data");
	cr_assert_eq(c.accepted, 2);
	cr_assert_eq(c.rcpt_replies, 2);
	out_is(&c, "");
	no_ev(&c);
	feed(&c, GO);
	ev_is(&c, SMTP_CLI_EV_BODY, 354, &ev);
	cr_assert_eq(c.body, SMTP_CLI_BODY_DATA);
	cr_assert_str_eq(ev.reply.cmd, "DATA");
	out_is(&c, "");
	smtp_cli_body_done(&c);
	out_is(&c, ".\r\n");
	feed(&c, QUEUED);
	ev_is(&c, SMTP_CLI_EV_MSG_DONE, 250, &ev);
	cr_assert_eq(c.messages, 1);
	cr_assert_eq(c.transactions, 1);
	/* reuse: RSET in the same write */
	cr_assert_eq(smtp_cli_send_msg(&c, "", RCPT2 + 1, 1, 5, SMTP_CLI_NEED_8BIT), 0);
	out_is(&c, "RSET\r\nMAIL FROM:<> SIZE=5 BODY=8BITMIME\r\nRCPT TO:<c@y.example>\r\n"
	           "DATA\r\n");
	cr_assert_str_eq(smtp_cli_state_name(&c), "rset");
	smtp_cli_free(&c);
}

Test(smtp_cli, no_pipelining_one_command_at_a_time)
{
	struct smtp_cli c;
	struct smtp_cli_ev ev;

	start(&c, EHLO_SLOW);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 2, 7, 0), 0);
	out_is(&c, "MAIL FROM:<a@x.example> SIZE=7\r\n");
	out_is(&c, "");
	feed(&c, MAIL_OK);
	out_is(&c, "RCPT TO:<b@y.example>\r\n");
	feed(&c, RCPT_OK);
	out_is(&c, "RCPT TO:<c@y.example>\r\n");
	feed(&c, RCPT_OK);
	out_is(&c, "DATA\r\n");
	feed(&c, GO);
	ev_is(&c, SMTP_CLI_EV_BODY, 354, &ev);
	smtp_cli_body_done(&c);
	out_is(&c, ".\r\n");
	feed(&c, QUEUED);
	ev_is(&c, SMTP_CLI_EV_MSG_DONE, 250, &ev);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 7, 0), 0);
	out_is(&c, "RSET\r\n");
	feed(&c, RSET_OK);
	out_is(&c, "MAIL FROM:<a@x.example> SIZE=7\r\n");
	smtp_cli_free(&c);
}

Test(smtp_cli, output_taken_late_and_in_pieces)
{
	struct smtp_cli c;
	struct smtp_cli_ev ev;
	const char *p;
	size_t len;

	start(&c, EHLO_SLOW);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 7, 0), 0);
	p = smtp_cli_out(&c, &len);
	cr_assert_eq(len, 32);
	cr_assert(memcmp(p, "MAIL", 4) == 0);
	smtp_cli_out_done(&c, 5);
	out_is(&c, "FROM:<a@x.example> SIZE=7\r\n");
	/* more than offered is taken as all */
	feed(&c, MAIL_OK);
	p = smtp_cli_out(&c, &len);
	cr_assert_eq(len, 23);
	smtp_cli_out_done(&c, 1000);
	out_is(&c, "");
	feed(&c, RCPT_OK);
	feed(&c, GO);
	ev_is(&c, SMTP_CLI_EV_BODY, 354, &ev);
	/* "DATA\r\n" still not taken when the body ends: the terminator goes behind it */
	smtp_cli_body_done(&c);
	out_is(&c, "DATA\r\n.\r\n");
	smtp_cli_free(&c);
}

Test(smtp_cli, bdat_reply_before_body_done_is_held)
{
	struct smtp_cli c;
	struct smtp_cli_ev ev;

	start(&c, EHLO_CHUNK);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 100, 0), 0);
	out_is(&c, "MAIL FROM:<a@x.example> SIZE=100\r\nRCPT TO:<b@y.example>\r\n");
	feed(&c, MAIL_OK RCPT_OK);
	ev_is(&c, SMTP_CLI_EV_BODY, 250, &ev);
	cr_assert_eq(c.body, SMTP_CLI_BODY_BDAT);
	out_is(&c, "BDAT 100 LAST\r\n");
	cr_assert_eq(smtp_cli_timeout(&c), 0);
	/* the recv completes before the owner sees its send done */
	feed(&c, "250 2.0.0 Ok: queued\r\n");
	no_ev(&c);
	cr_assert_str_eq(smtp_cli_state_name(&c), "body");
	smtp_cli_body_done(&c);
	ev_is(&c, SMTP_CLI_EV_MSG_DONE, 250, &ev);
	cr_assert_str_eq(ev.reply.cmd, "BDAT");
	cr_assert_str_eq(smtp_cli_result(&c, 0)->text, "250 2.0.0 Ok: queued");
	out_is(&c, "");
	cr_assert_str_eq(smtp_cli_state_name(&c), "ready");
	smtp_cli_free(&c);
}

/* A server that answers RSET twice shifts every reply after it by one: the reply taken as
 * BDAT's is a RCPT reply (250 2.1.5), while its real verdict (554) is still to come. An
 * addressing status is never taken as the end of a message: the transaction fails, its
 * recipients get no result (deferred by the owner), never "sent". */
Test(smtp_cli, shifted_reply_is_not_delivery)
{
	struct smtp_cli c;
	struct smtp_cli_ev ev;

	start(&c, EHLO_CHUNK);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 100, 0), 0);
	feed(&c, "250 2.1.0 ok\r\n250 2.1.0 ok\r\n");   /* MAIL's twice */
	ev_is(&c, SMTP_CLI_EV_BODY, 250, &ev);            /* the second taken as RCPT's */
	smtp_cli_body_done(&c);
	feed(&c, "250 2.1.5 ok\r\n");                     /* RCPT's, taken as BDAT's */
	ev_is(&c, SMTP_CLI_EV_FAIL, 0, &ev);
	cr_assert_str_eq(ev.reply.text, "unexpected reply to BDAT: 250 2.1.5 ok");
	smtp_cli_free(&c);

	/* the same through DATA: the dot's reply 250 2.1.5 */
	start(&c, EHLO_PIPE);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 100, 0), 0);
	smtp_cli_out_done(&c, SIZE_MAX);
	feed(&c, MAIL_OK RCPT_OK GO);
	ev_is(&c, SMTP_CLI_EV_BODY, 354, &ev);
	smtp_cli_body_done(&c);
	feed(&c, "250 2.1.5 ok\r\n");
	ev_is(&c, SMTP_CLI_EV_FAIL, 0, &ev);
	smtp_cli_free(&c);

	/* a plain 250 (no status) and 2.0.0 / 2.6.0 are the end of a message as before */
	start(&c, EHLO_CHUNK);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 100, 0), 0);
	feed(&c, MAIL_OK RCPT_OK);
	ev_is(&c, SMTP_CLI_EV_BODY, 250, &ev);
	smtp_cli_body_done(&c);
	feed(&c, "250 2.6.0 <id@x> Queued mail for delivery\r\n");
	ev_is(&c, SMTP_CLI_EV_MSG_DONE, 250, &ev);
	smtp_cli_free(&c);
}

Test(smtp_cli, bdat_second_early_reply_and_421_during_body)
{
	struct smtp_cli c;
	struct smtp_cli_ev ev;

	start(&c, EHLO_CHUNK);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 100, 0), 0);
	feed(&c, MAIL_OK RCPT_OK);
	ev_is(&c, SMTP_CLI_EV_BODY, 250, &ev);
	feed(&c, "250 one\r\n250 two\r\n");
	ev_is(&c, SMTP_CLI_EV_FAIL, 0, &ev);
	cr_assert_str_eq(ev.reply.text, "unexpected reply: 250 two");
	smtp_cli_free(&c);

	start(&c, EHLO_PIPE);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 100, 0), 0);
	smtp_cli_out_done(&c, SIZE_MAX);
	feed(&c, MAIL_OK RCPT_OK GO);
	ev_is(&c, SMTP_CLI_EV_BODY, 354, &ev);
	feed(&c, "421 4.4.2 timeout\r\n");
	ev_is(&c, SMTP_CLI_EV_FAIL, 421, &ev);
	cr_assert_null(smtp_cli_result(&c, 0));
	smtp_cli_body_done(&c);                   /* too late: nothing happens */
	out_is(&c, "");
	cr_assert_eq(smtp_cli_input(&c, "250 ok\r\n", 8), 8);
	no_ev(&c);
	cr_assert_str_eq(smtp_cli_state_name(&c), "failed");
	smtp_cli_free(&c);
}

Test(smtp_cli, reply_during_data_body_is_unexpected)
{
	struct smtp_cli c;
	struct smtp_cli_ev ev;

	start(&c, EHLO_PIPE);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 100, 0), 0);
	feed(&c, MAIL_OK RCPT_OK GO);
	ev_is(&c, SMTP_CLI_EV_BODY, 354, &ev);
	feed(&c, "552 5.3.4 too big\r\n");
	ev_is(&c, SMTP_CLI_EV_FAIL, 0, &ev);
	cr_assert_str_eq(ev.reply.text, "unexpected reply: 552 5.3.4 too big");
	cr_assert_str_eq(ev.reply.cmd, "none");
	smtp_cli_free(&c);
}

/* ---- the dot-stuffer -------------------------------------------------------------- */

/* Reference: a '.' after CRLF (or at the start) gets another. */
static void dot_ref(const char *p, size_t n, struct t_buf *out, bool *bol_end)
{
	bool bol = true, cr = false;

	for (size_t i = 0; i < n; i++) {
		if (bol && p[i] == '.')
			t_put(out, ".", 1);
		t_put(out, p + i, 1);
		bol = cr && p[i] == '\n';
		cr = p[i] == '\r';
	}
	*bol_end = bol;
}

/* Stuff p through d in the given pieces. */
static void dot_run(const char *p, size_t n, const size_t *cuts, size_t ncuts,
                    struct t_buf *out, struct smtp_cli_dot *d)
{
	size_t from = 0;

	smtp_cli_dot_init(d);
	for (size_t k = 0; k <= ncuts; k++) {
		size_t to = k < ncuts ? cuts[k] : n;
		size_t len = to - from;
		char *copy = malloc(len ? len : 1);

		cr_assert(copy);
		memcpy(copy, p + from, len);
		for (size_t off = 0; off < len || len == 0;) {
			bool ins = true;
			size_t r = smtp_cli_dot_next(d, copy + off, len - off, &ins);

			cr_assert_leq(r, len - off);
			t_put(out, copy + off, r);
			off += r;
			if (!ins) {
				cr_assert_eq(off, len);
				break;
			}
			cr_assert_lt(off, len);
			cr_assert_eq(copy[off], '.');
			t_put(out, ".", 1);
		}
		free(copy);
		from = to;
	}
}

static const char *const dot_bodies[] = {
	"",
	".",
	"..",
	".\r\n",
	"...\r\n.\r\n..\r\n",
	"a\r\n.b\r\n",
	"a\r\n.",
	"a\r\n.\r\n.\r\n",
	"\r\n.\r\n",
	"a\r.b\r\n",           /* CR without LF: not a line start */
	"a\n.b\r\n",           /* bare LF: not a line start (lines are CRLF) */
	"a\r\r\n.b",
	"\r\n\r\n.\r\n\r\n..x",
	"no dots at all\r\nin this body\r\n",
	"ends without CRLF",
	"ends with CR\r",
	".\r\n.\r\n.\r\n.\r\n.\r\n.\r\n",
	"x.\r\n.x.\r\n..\r\n",
};

Test(smtp_cli, dot_stuffing_every_split)
{
	for (size_t b = 0; b < sizeof dot_bodies / sizeof dot_bodies[0]; b++) {
		const char *p = dot_bodies[b];
		size_t n = strlen(p);
		struct t_buf want = { 0 }, got = { 0 };
		struct smtp_cli_dot d;
		bool bol;

		t_put(&want, "", 0);
		dot_ref(p, n, &want, &bol);
		/* one piece, every cut in two, every pair of cuts in three, octet by octet */
		for (size_t i = 0; i <= n; i++) {
			for (size_t j = i; j <= n; j++) {
				size_t cuts[2] = { i, j };

				t_put(&got, "", 0);
				got.len = 0;
				dot_run(p, n, cuts, 2, &got, &d);
				cr_assert_eq(got.len, want.len, "body %zu cuts %zu,%zu", b, i, j);
				cr_assert(memcmp(got.p, want.p, want.len) == 0,
				          "body %zu cuts %zu,%zu: got \"%s\" want \"%s\"", b, i, j,
				          got.p, want.p);
				cr_assert_eq(d.st == 0, bol, "body %zu: end state", b);
			}
		}
		{
			size_t cuts[64];

			cr_assert_lt(n, 64);
			for (size_t i = 0; i < n; i++)
				cuts[i] = i + 1;
			got.len = 0;
			dot_run(p, n, cuts, n ? n - 1 : 0, &got, &d);
			cr_assert_eq(got.len, want.len);
			cr_assert(memcmp(got.p, want.p, want.len) == 0);
		}
		t_buf_free(&want);
		t_buf_free(&got);
	}
}

/* smtp_cli_dot_plain: for a body no line of which begins with a dot (the owner's promise),
 * every split leaves the state where smtp_cli_dot_next leaves it, so the final dot line
 * is right; bodies made of CR, LF and 'a' (dots would break the promise). */
Test(smtp_cli, dot_plain_state_every_split)
{
	static const char alpha[] = "\r\na";
	char p[6];

	for (unsigned code = 0; code < 3u * 3 * 3 * 3 * 3 * 3; code++) {
		unsigned c = code;
		size_t n = 0;

		for (int k = 0; k < 6; k++, c /= 3)
			p[n++] = alpha[c % 3];
		for (size_t len = 0; len <= n; len++)
			for (size_t i = 0; i <= len; i++)
				for (size_t j = i; j <= len; j++) {
					struct smtp_cli_dot ref, got;
					size_t cuts[2] = { i, j };
					struct t_buf out = { 0 };

					dot_run(p, len, cuts, 2, &out, &ref);
					cr_assert_eq(out.len, len, "no dot was added");
					t_buf_free(&out);
					smtp_cli_dot_init(&got);
					smtp_cli_dot_plain(&got, p, i);
					smtp_cli_dot_plain(&got, p + i, j - i);
					smtp_cli_dot_plain(&got, p + j, len - j);
					cr_assert_eq(got.st, ref.st, "code %u len %zu cuts %zu,%zu", code,
					             len, i, j);
				}
	}
}

Test(smtp_cli, dot_stuffing_known_answers)
{
	static const struct {
		const char *in, *want;
	} t[] = {
		{ ".", ".." },
		{ ".a\r\n..b\r\nc.\r\n", "..a\r\n...b\r\nc.\r\n" },
		{ "a\r\n.", "a\r\n.." },
		{ "a\n.", "a\n." },
		{ "a\r.", "a\r." },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct t_buf got = { 0 };
		struct smtp_cli_dot d;

		t_put(&got, "", 0);
		dot_run(t[i].in, strlen(t[i].in), NULL, 0, &got, &d);
		cr_assert_str_eq(got.p, t[i].want);
		t_buf_free(&got);
	}
}

/* The terminator after a DATA body: ".\r\n" at a line start, "\r\n.\r\n" otherwise. */
Test(smtp_cli, terminator_after_body)
{
	static const struct {
		const char *body, *want;
	} t[] = {
		{ "", ".\r\n" },
		{ "a\r\n", ".\r\n" },
		{ "a", "\r\n.\r\n" },
		{ "a\r", "\r\n.\r\n" },
		{ "a\n", "\r\n.\r\n" },
		{ ".", "\r\n.\r\n" },
		{ "a\r\n.\r\n", ".\r\n" },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct smtp_cli c;
		struct smtp_cli_ev ev;
		const char *p = t[i].body;
		size_t n = strlen(p);

		start(&c, EHLO_PIPE);
		cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, n, 0), 0);
		smtp_cli_out_done(&c, SIZE_MAX);
		feed(&c, MAIL_OK RCPT_OK GO);
		ev_is(&c, SMTP_CLI_EV_BODY, 354, &ev);
		/* byte by byte through the client's own stuffer */
		for (size_t k = 0; k < n; k++) {
			bool ins;

			while (smtp_cli_dot_next(&c.dot, p + k, 1, &ins) == 0 && ins)
				;
		}
		smtp_cli_body_done(&c);
		out_is(&c, t[i].want);
		cr_assert_str_eq(smtp_cli_state_name(&c), "dot");
		smtp_cli_free(&c);
	}
}

/* ---- timeouts --------------------------------------------------------------------- */

Test(smtp_cli, timeouts_rfc)
{
	struct smtp_cli_timeouts t;

	smtp_cli_timeouts_rfc(&t);
	cr_assert_eq(t.greeting, 300000);
	cr_assert_eq(t.helo, 300000);
	cr_assert_eq(t.mail, 300000);
	cr_assert_eq(t.rcpt, 300000);
	cr_assert_eq(t.data_init, 120000);
	cr_assert_eq(t.data_block, 180000);
	cr_assert_eq(t.data_end, 600000);
	cr_assert_eq(t.rset, 300000);
	cr_assert_eq(t.quit, 300000);
}

Test(smtp_cli, timeout_per_state)
{
	const struct smtp_cli_timeouts to = { .greeting = 1, .helo = 2, .mail = 3, .rcpt = 4,
	                                      .data_init = 5, .data_block = 6, .data_end = 7,
	                                      .rset = 8, .quit = 9 };
	struct smtp_cli c;
	struct smtp_cli_ev ev;

	smtp_cli_init(&c, HELO_NAME, &to);
	cr_assert_eq(smtp_cli_timeout(&c), 1);
	feed(&c, GREET);
	cr_assert_eq(smtp_cli_timeout(&c), 2);
	feed(&c, "502 no\r\n");
	cr_assert_str_eq(smtp_cli_state_name(&c), "helo");
	cr_assert_eq(smtp_cli_timeout(&c), 2);
	feed(&c, "250 mx\r\n");
	ev_is(&c, SMTP_CLI_EV_READY, 250, &ev);
	cr_assert_eq(smtp_cli_timeout(&c), 0);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 2, 1, 0), 0);
	cr_assert_eq(smtp_cli_timeout(&c), 3);
	feed(&c, MAIL_OK);
	cr_assert_eq(smtp_cli_timeout(&c), 4);
	feed(&c, RCPT_OK);
	cr_assert_eq(smtp_cli_timeout(&c), 4);
	feed(&c, RCPT_OK);
	cr_assert_eq(smtp_cli_timeout(&c), 5);
	feed(&c, GO);
	ev_is(&c, SMTP_CLI_EV_BODY, 354, &ev);
	cr_assert_eq(smtp_cli_timeout(&c), 0);
	cr_assert_eq(c.to.data_block, 6);
	smtp_cli_body_done(&c);
	cr_assert_eq(smtp_cli_timeout(&c), 7);
	feed(&c, QUEUED);
	ev_is(&c, SMTP_CLI_EV_MSG_DONE, 250, &ev);
	cr_assert_eq(smtp_cli_timeout(&c), 0);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 1, 0), 0);
	cr_assert_eq(smtp_cli_timeout(&c), 8);
	feed(&c, RSET_OK "550 no\r\n");
	cr_assert_eq(smtp_cli_timeout(&c), 0);
	ev_is(&c, SMTP_CLI_EV_MSG_DONE, 550, &ev);
	smtp_cli_quit(&c);
	cr_assert_str_eq(smtp_cli_state_name(&c), "quit");
	cr_assert_eq(smtp_cli_timeout(&c), 9);
	feed(&c, BYE);
	ev_is(&c, SMTP_CLI_EV_CLOSED, 221, &ev);
	cr_assert_eq(smtp_cli_timeout(&c), 0);
	smtp_cli_free(&c);

	/* BDAT's reply: data_end; zeros: RFC values */
	const struct smtp_cli_timeouts some = { .data_end = 77 };
	smtp_cli_init(&c, HELO_NAME, &some);
	cr_assert_eq(smtp_cli_timeout(&c), 300000);
	cr_assert_eq(c.to.data_init, 120000);
	feed(&c, GREET);
	feed(&c, EHLO_CHUNK);
	ev_is(&c, SMTP_CLI_EV_READY, 250, &ev);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 1, 0), 0);
	feed(&c, MAIL_OK RCPT_OK);
	ev_is(&c, SMTP_CLI_EV_BODY, 250, &ev);
	smtp_cli_body_done(&c);
	cr_assert_str_eq(smtp_cli_state_name(&c), "bdat");
	cr_assert_eq(smtp_cli_timeout(&c), 77);
	smtp_cli_free(&c);
}

/* ---- STARTTLS ---------------------------------------------------------------------- */

#define EHLO_TLS "250-mx.example.com\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 SIZE 5000\r\n"

/* 220 to STARTTLS, then octets an attacker put behind it in plaintext (a fake EHLO reply
 * and more), split at every octet: the input that completes the 220 returns exactly up
 * to its end, TLS is the only event, and nothing after it is ever read as a reply. Then
 * the handshake's end sends EHLO again and READY carries only what is said over TLS. */
Test(smtp_cli, starttls_every_split_ignores_what_follows)
{
	static const char stream[] = "220 2.0.0 Ready to start TLS\r\n"
	                             "250-mx\r\n250 CHUNKING\r\n550 x\r\n";
	const size_t r220 = strlen("220 2.0.0 Ready to start TLS\r\n");
	const size_t n = strlen(stream);

	for (size_t cut = 0; cut <= n; cut++) {
		struct smtp_cli c;
		struct smtp_cli_ev ev;

		start(&c, EHLO_TLS);
		cr_assert(c.caps.starttls && c.caps.pipelining);
		cr_assert_eq(smtp_cli_starttls(&c), 0);
		out_is(&c, "STARTTLS\r\n");
		cr_assert_str_eq(smtp_cli_state_name(&c), "starttls");
		cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 1, 0), -1);
		size_t u1 = smtp_cli_input(&c, stream, cut);
		size_t seen = u1;
		if (cut < r220) {               /* the 220 is not whole yet: its start is kept */
			cr_assert_eq(u1, 0, "cut %zu used %zu", cut, u1);
			no_ev(&c);
			seen = smtp_cli_input(&c, stream, n);
		}
		cr_assert_eq(seen, r220, "cut %zu: used %zu", cut, seen);
		ev_is(&c, SMTP_CLI_EV_TLS, 220, &ev);
		cr_assert_str_eq(ev.reply.cmd, "STARTTLS");
		no_ev(&c);
		cr_assert_str_eq(smtp_cli_state_name(&c), "tls handshake");
		/* the owner drops the rest; whatever else it offers is not read */
		cr_assert_eq(smtp_cli_input(&c, stream + r220, n - r220), n - r220);
		cr_assert_eq(c.tls_ignored, n - r220);
		no_ev(&c);
		out_is(&c, "");
		smtp_cli_tls_up(&c);
		cr_assert(c.tls);
		cr_assert(!c.caps.pipelining && !c.caps.starttls && !c.caps.size);
		out_is(&c, "EHLO " HELO_NAME "\r\n");
		feed(&c, "250-mx.example.com\r\n250-STARTTLS\r\n250 CHUNKING\r\n");
		ev_is(&c, SMTP_CLI_EV_READY, 250, &ev);
		cr_assert(c.caps.chunking && c.caps.starttls);
		cr_assert_eq(smtp_cli_starttls(&c), -1);   /* never twice */
		out_is(&c, "");
		cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 1, 0), 0);
		smtp_cli_free(&c);
	}
}

Test(smtp_cli, starttls_refused_goes_on_in_plaintext)
{
	struct smtp_cli c;
	struct smtp_cli_ev ev;

	start(&c, EHLO_TLS);
	cr_assert_eq(smtp_cli_starttls(&c), 0);
	out_is(&c, "STARTTLS\r\n");
	feed(&c, "454 4.7.0 TLS not available due to local problem\r\n");
	ev_is(&c, SMTP_CLI_EV_TLS_REFUSED, 454, &ev);
	cr_assert_str_eq(ev.reply.cmd, "STARTTLS");
	no_ev(&c);
	cr_assert_str_eq(smtp_cli_state_name(&c), "ready");
	cr_assert(!c.tls);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 1, 0), 0);
	out_is(&c, "MAIL FROM:<a@x.example> SIZE=1\r\nRCPT TO:<b@y.example>\r\nDATA\r\n");
	smtp_cli_free(&c);

	start(&c, EHLO_TLS);                 /* 5xx: the same */
	cr_assert_eq(smtp_cli_starttls(&c), 0);
	out_is(&c, "STARTTLS\r\n");
	feed(&c, "502 5.5.1 no\r\n");
	ev_is(&c, SMTP_CLI_EV_TLS_REFUSED, 502, &ev);
	smtp_cli_quit(&c);
	out_is(&c, "QUIT\r\n");
	smtp_cli_free(&c);
}

Test(smtp_cli, starttls_421_3xx_and_not_allowed)
{
	struct smtp_cli c;
	struct smtp_cli_ev ev;

	start(&c, EHLO_TLS);
	cr_assert_eq(smtp_cli_starttls(&c), 0);
	out_is(&c, "STARTTLS\r\n");
	feed(&c, "421 4.3.2 going down\r\n");
	ev_is(&c, SMTP_CLI_EV_FAIL, 421, &ev);
	smtp_cli_free(&c);

	start(&c, EHLO_TLS);
	cr_assert_eq(smtp_cli_starttls(&c), 0);
	out_is(&c, "STARTTLS\r\n");
	feed(&c, "354 go on\r\n");
	ev_is(&c, SMTP_CLI_EV_FAIL, 0, &ev);
	smtp_cli_free(&c);

	start(&c, EHLO_PIPE);                /* not offered */
	cr_assert(!c.caps.starttls);
	cr_assert_eq(smtp_cli_starttls(&c), -1);
	out_is(&c, "");
	cr_assert_str_eq(smtp_cli_state_name(&c), "ready");
	smtp_cli_free(&c);

	smtp_cli_init(&c, HELO_NAME, NULL);  /* not ready */
	cr_assert_eq(smtp_cli_starttls(&c), -1);
	smtp_cli_tls_up(&c);                 /* not in the TLS state: nothing */
	cr_assert(!c.tls);
	out_is(&c, "");
	feed(&c, GREET);
	out_is(&c, "EHLO " HELO_NAME "\r\n");
	feed(&c, EHLO_TLS);
	ev_is(&c, SMTP_CLI_EV_READY, 250, &ev);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 1, 0), 0);
	cr_assert_eq(smtp_cli_starttls(&c), -1);   /* a transaction under way */
	smtp_cli_free(&c);
}

Test(smtp_cli, starttls_timeouts_are_helo)
{
	const struct smtp_cli_timeouts to = { .greeting = 1, .helo = 2, .mail = 3 };
	struct smtp_cli c;
	struct smtp_cli_ev ev;

	smtp_cli_init(&c, HELO_NAME, &to);
	feed(&c, GREET);
	feed(&c, EHLO_TLS);
	ev_is(&c, SMTP_CLI_EV_READY, 250, &ev);
	cr_assert_eq(smtp_cli_starttls(&c), 0);
	cr_assert_eq(smtp_cli_timeout(&c), 2);
	feed(&c, "220 go\r\n");
	ev_is(&c, SMTP_CLI_EV_TLS, 220, &ev);
	cr_assert_eq(smtp_cli_timeout(&c), 2);   /* the handshake's wait */
	smtp_cli_tls_up(&c);
	cr_assert_eq(smtp_cli_timeout(&c), 2);
	smtp_cli_free(&c);
}

/* ---- many recipients -------------------------------------------------------------- */

static void many(bool pipelining, size_t n)
{
	struct smtp_cli c;
	struct smtp_cli_ev ev;
	char (*addr)[32] = calloc(n, sizeof *addr);
	const char **rcpt = calloc(n, sizeof *rcpt);
	struct t_buf want = { 0 }, replies = { 0 };

	cr_assert(addr && rcpt);
	start(&c, pipelining ? EHLO_PIPE : EHLO_SLOW);
	t_puts(&want, "MAIL FROM:<a@x.example> SIZE=3\r\n");
	for (size_t i = 0; i < n; i++) {
		snprintf(addr[i], sizeof addr[i], "r%zu@y.example", i);
		rcpt[i] = addr[i];
		t_printf(&want, "RCPT TO:<%s>\r\n", addr[i]);
		/* every 7th refused, each with its own text */
		if (i % 7 == 3)
			t_printf(&replies, "550 5.1.1 <%s>: unknown\r\n", addr[i]);
		else
			t_puts(&replies, RCPT_OK);
	}
	t_puts(&want, "DATA\r\n");
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", rcpt, n, 3, 0), 0);
	if (pipelining) {
		out_is(&c, want.p);
		feed(&c, MAIL_OK);
		feed(&c, replies.p);
	} else {
		const char *r = replies.p;

		out_is(&c, "MAIL FROM:<a@x.example> SIZE=3\r\n");
		feed(&c, MAIL_OK);
		for (size_t i = 0; i < n; i++) {
			const char *e = strchr(r, '\n') + 1;
			char line[64];

			snprintf(line, sizeof line, "RCPT TO:<%s>\r\n", addr[i]);
			out_is(&c, line);
			memcpy(line, r, (size_t)(e - r));
			line[e - r] = '\0';
			feed(&c, line);
			r = e;
		}
		out_is(&c, "DATA\r\n");
	}
	cr_assert_eq(c.rcpt_replies, n);
	feed(&c, GO);
	ev_is(&c, SMTP_CLI_EV_BODY, 354, &ev);
	smtp_cli_body_done(&c);
	feed(&c, QUEUED);
	ev_is(&c, SMTP_CLI_EV_MSG_DONE, 250, &ev);
	for (size_t i = 0; i < n; i++) {
		const struct smtp_cli_reply *r = smtp_cli_result(&c, i);
		char w[64];

		cr_assert(r);
		if (i % 7 == 3) {
			snprintf(w, sizeof w, "550 5.1.1 <%s>: unknown", addr[i]);
			cr_assert_eq(r->code, 550);
			cr_assert_str_eq(r->text, w);
			cr_assert_str_eq(r->cmd, "RCPT TO");
		} else {
			cr_assert_eq(r->code, 250);
			cr_assert_str_eq(r->cmd, "end of DATA");
		}
	}
	cr_assert_null(smtp_cli_result(&c, n));
	smtp_cli_free(&c);
	t_buf_free(&want);
	t_buf_free(&replies);
	free(addr);
	free(rcpt);
}

Test(smtp_cli, thousand_recipients_pipelined)
{
	many(true, 1000);
}

Test(smtp_cli, thousand_recipients_one_at_a_time)
{
	many(false, 1000);
}

Test(smtp_cli, recipient_limit)
{
	struct smtp_cli c;
	const char **rcpt = calloc(SMTP_CLI_RCPT_MAX + 1, sizeof *rcpt);

	cr_assert(rcpt);
	for (size_t i = 0; i <= SMTP_CLI_RCPT_MAX; i++)
		rcpt[i] = "b@y.example";
	start(&c, EHLO_PIPE);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", rcpt, SMTP_CLI_RCPT_MAX + 1, 1, 0), -1);
	cr_assert_eq(smtp_cli_result(&c, 0)->code, 452);
	cr_assert_str_eq(smtp_cli_result(&c, SMTP_CLI_RCPT_MAX)->text,
	                 "452 4.5.3 Too many recipients for one transaction");
	out_is(&c, "");
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", rcpt, 0, 1, 0), -1);
	cr_assert_null(smtp_cli_result(&c, 0));
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", rcpt, SMTP_CLI_RCPT_MAX, 1, 0), 0);
	cr_assert_eq(c.rcpt_sent, SMTP_CLI_RCPT_MAX);
	smtp_cli_free(&c);
	free(rcpt);
}

/* ---- local refusals and misuse ---------------------------------------------------- */

Test(smtp_cli, local_refusals)
{
	struct smtp_cli c;
	const char *bad[] = { "b@y.example\n", "c@y.example\x7f" };
	char longaddr[SMTP_CLI_ADDR_MAX + 2];

	start(&c, EHLO_PIPE);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 2, 10001, 0), -1);
	cr_assert_eq(smtp_cli_result(&c, 1)->code, 552);
	cr_assert_str_eq(smtp_cli_result(&c, 1)->text,
	                 "552 5.3.4 Message size exceeds fixed maximum message size");
	cr_assert_str_eq(smtp_cli_result(&c, 1)->cmd, "MAIL FROM");
	cr_assert_null(smtp_cli_result(&c, 2));
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 2, 10000, 0), 0);
	smtp_cli_free(&c);

	start(&c, EHLO_SLOW);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 2, 1, SMTP_CLI_NEED_UTF8), -1);
	cr_assert_eq(smtp_cli_result(&c, 0)->code, 553);
	cr_assert(strncmp(smtp_cli_result(&c, 0)->text, "553 5.6.7 ", 10) == 0);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example\r\nQUIT", RCPT2, 2, 1, 0), -1);
	cr_assert_eq(smtp_cli_result(&c, 0)->code, 501);
	cr_assert_str_eq(smtp_cli_result(&c, 0)->text, "501 5.1.7 Bad sender address syntax");
	cr_assert_eq(smtp_cli_send_msg(&c, NULL, RCPT2, 2, 1, 0), -1);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", bad, 2, 1, 0), -1);
	cr_assert_eq(smtp_cli_result(&c, 0)->code, 501);
	cr_assert_str_eq(smtp_cli_result(&c, 1)->text, "501 5.1.3 Bad recipient address syntax");
	cr_assert_str_eq(smtp_cli_result(&c, 1)->cmd, "RCPT TO");
	memset(longaddr, 'a', sizeof longaddr - 1);
	longaddr[sizeof longaddr - 1] = '\0';
	cr_assert_eq(smtp_cli_send_msg(&c, longaddr, RCPT2, 2, 1, 0), -1);
	longaddr[SMTP_CLI_ADDR_MAX] = '\0';
	out_is(&c, "");
	cr_assert_eq(c.transactions, 0);
	cr_assert_str_eq(smtp_cli_state_name(&c), "ready");
	/* nothing was sent: no RSET before this one */
	cr_assert_eq(smtp_cli_send_msg(&c, longaddr, RCPT2, 1, 1, 0), 0);
	{
		size_t len;
		const char *p = smtp_cli_out(&c, &len);

		cr_assert(len > 11 && memcmp(p, "MAIL FROM:<aaa", 14) == 0);
	}
	/* in a transaction: -1, and nothing changes */
	cr_assert_eq(smtp_cli_send_msg(&c, "z@x.example", RCPT2, 2, 1, 0), -1);
	cr_assert_eq(c.nrcpt, 1);
	cr_assert_str_eq(smtp_cli_state_name(&c), "mail");
	smtp_cli_quit(&c);                        /* not READY: nothing */
	cr_assert_str_eq(smtp_cli_state_name(&c), "mail");
	smtp_cli_body_done(&c);                   /* not BODY: nothing */
	cr_assert_str_eq(smtp_cli_state_name(&c), "mail");
	smtp_cli_free(&c);

	/* before READY */
	smtp_cli_init(&c, HELO_NAME, NULL);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 2, 1, 0), -1);
	cr_assert_eq(smtp_cli_result(&c, 1)->code, 451);
	out_is(&c, "");
	smtp_cli_free(&c);
}

Test(smtp_cli, helo_name_is_escaped)
{
	struct smtp_cli c;
	char longname[400];

	smtp_cli_init(&c, "evil\r\nQUIT x", NULL);
	feed(&c, GREET);
	out_is(&c, "EHLO evil??QUIT?x\r\n");
	smtp_cli_free(&c);
	smtp_cli_init(&c, NULL, NULL);
	feed(&c, GREET);
	out_is(&c, "EHLO localhost\r\n");
	smtp_cli_free(&c);
	memset(longname, 'h', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	smtp_cli_init(&c, longname, NULL);
	feed(&c, GREET);
	{
		size_t len;

		smtp_cli_out(&c, &len);
		cr_assert_eq(len, 5 + SMTP_CLI_HELO_MAX + 2);
	}
	smtp_cli_free(&c);
}

/* ---- replies: texts and limits ---------------------------------------------------- */

Test(smtp_cli, reply_text_assembly)
{
	struct smtp_cli c;
	struct smtp_cli_ev ev;
	char big[700];

	start(&c, EHLO_SLOW);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 1, 0), 0);
	feed(&c, "550-5.1.1 The email account that you tried to reach does not exist.\r\n"
	         "550-5.1.1 Please try\r\n550 5.1.1 https://support.example/?p=1 x - gsmtp\r\n");
	ev_is(&c, SMTP_CLI_EV_MSG_DONE, 550, &ev);
	cr_assert_str_eq(ev.reply.text,
	                 "550 5.1.1 The email account that you tried to reach does not exist. "
	                 "5.1.1 Please try 5.1.1 https://support.example/?p=1 x - gsmtp");
	cr_assert_str_eq(ev.reply.cmd, "MAIL FROM");
	cr_assert_str_eq(smtp_cli_result(&c, 0)->text, ev.reply.text);
	/* cut at SMTP_CLI_TEXT_MAX; a control octet other than NUL/CR/LF is kept */
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 1, 0), 0);
	feed(&c, RSET_OK);
	memset(big, 'y', sizeof big);
	memcpy(big, "451-4.3.0 \x01\t", 12);
	memcpy(big + 600, "\r\n451 end\r\n", 12);
	feed(&c, big);
	ev_is(&c, SMTP_CLI_EV_MSG_DONE, 451, &ev);
	cr_assert_eq(strlen(ev.reply.text), SMTP_CLI_TEXT_MAX);
	cr_assert(memcmp(ev.reply.text, "451 4.3.0 \x01\tyyy", 15) == 0);
	smtp_cli_free(&c);
}

Test(smtp_cli, long_line_needs_no_lf_to_fail)
{
	struct smtp_cli c;
	struct smtp_cli_ev ev;
	char *p = malloc(SMTP_CLI_LINE_MAX + 2);

	cr_assert(p);
	memset(p, 'x', SMTP_CLI_LINE_MAX + 2);
	memcpy(p, "220 ", 4);
	smtp_cli_init(&c, HELO_NAME, NULL);
	/* one short of the window: waits, consumes nothing */
	cr_assert_eq(smtp_cli_input(&c, p, SMTP_CLI_LINE_MAX + 1), 0);
	no_ev(&c);
	cr_assert_eq(smtp_cli_input(&c, p, SMTP_CLI_LINE_MAX + 2), SMTP_CLI_LINE_MAX + 2);
	ev_is(&c, SMTP_CLI_EV_FAIL, 0, &ev);
	cr_assert_str_eq(ev.reply.text, "reply line too long");
	cr_assert_str_eq(ev.reply.cmd, "connect");
	smtp_cli_free(&c);
	free(p);
}

Test(smtp_cli, partial_lines_are_left)
{
	struct smtp_cli c;
	struct smtp_cli_ev ev;

	smtp_cli_init(&c, HELO_NAME, NULL);
	cr_assert_eq(smtp_cli_input(&c, "220 mx", 6), 0);
	cr_assert_eq(smtp_cli_input(&c, "220 mx\r", 7), 0);
	cr_assert_eq(smtp_cli_input(&c, "220-mx\r\n220 ", 12), 8);
	cr_assert_eq(smtp_cli_input(&c, "220 ESMTP\r\n250", 14), 11);
	out_is(&c, "EHLO " HELO_NAME "\r\n");
	cr_assert_eq(smtp_cli_input(&c, "", 0), 0);
	cr_assert_eq(smtp_cli_input(&c, "250\r\n", 5), 5);
	ev_is(&c, SMTP_CLI_EV_READY, 250, &ev);
	cr_assert_str_eq(ev.reply.text, "250");
	cr_assert(c.caps.esmtp && !c.caps.pipelining);
	smtp_cli_free(&c);
}

Test(smtp_cli, garbage_after_fail_is_consumed)
{
	struct smtp_cli c;
	struct smtp_cli_ev ev;
	static const char junk[] = "\0\0\0\xff\xfe garbage\r\nmore\n\0";

	smtp_cli_init(&c, HELO_NAME, NULL);
	cr_assert_eq(smtp_cli_input(&c, junk, sizeof junk - 1), sizeof junk - 1);
	ev_is(&c, SMTP_CLI_EV_FAIL, 0, &ev);
	cr_assert_str_eq(ev.reply.text, "malformed reply: ???\xff\xfe garbage");
	no_ev(&c);
	cr_assert_eq(smtp_cli_input(&c, junk, sizeof junk - 1), sizeof junk - 1);
	no_ev(&c);
	cr_assert_eq(smtp_cli_send_msg(&c, "a@x.example", RCPT2, 1, 1, 0), -1);
	cr_assert_eq(smtp_cli_result(&c, 0)->code, 451);
	smtp_cli_quit(&c);
	out_is(&c, "");
	cr_assert_str_eq(smtp_cli_state_name(&c), "failed");
	smtp_cli_free(&c);
	smtp_cli_free(NULL);
}

Test(smtp_cli, state_names)
{
	static const char *const want[] = { "none", "greeting", "ehlo", "helo", "starttls",
	                                    "tls handshake", "ready", "rset",
	                                    "mail", "rcpt", "data", "body", "bdat", "dot",
	                                    "quit", "closed", "failed" };
	struct smtp_cli c;

	memset(&c, 0, sizeof c);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		c.state = (enum smtp_cli_state)i;
		cr_assert_str_eq(smtp_cli_state_name(&c), want[i]);
	}
	cr_assert_eq((size_t)SMTP_CLI_ST_FAILED + 1, sizeof want / sizeof want[0]);
}

/* ---- allocation failures ---------------------------------------------------------- */

/* Fail the nth allocation, for every n the conversation makes: each run ends cleanly,
 * the client failing the connection ("out of memory") or refusing the message locally
 * (451), with nothing leaked (ASan) and never a write that was not asked for. */
Test(smtp_cli, allocation_failures)
{
	static const struct cli_case k = {
		.name = "two messages, refusals, reuse",
		.turns = { GREET, EHLO_PIPE,
		           MAIL_OK "550 5.1.1 no\r\n" RCPT_OK "551 5.1.6 moved\r\n" GO, QUEUED,
		           RSET_OK MAIL_OK RCPT_OK GO, "452 4.3.1 full\r\n", BYE },
		.msg = { { "a@x.example", { "b@y.example", "c@y.example", "d@y.example" }, "x\r\n" },
		         { "a@x.example", { "e@y.example" }, "y\r\n" } },
		.nmsg = 2,
	};
	struct t_run clean, g;
	unsigned long nth;

	t_run_case(&k, 0, &clean);
	cr_assert_str_eq(clean.state, "closed");
	for (nth = 1; nth < 100; nth++) {
		smtp_cli_test_fail_alloc(nth);
		t_run_case(&k, 0, &g);
		smtp_cli_test_fail_alloc(0);
		if (strcmp(g.log.p, clean.log.p) == 0 && strcmp(g.out.p, clean.out.p) == 0) {
			t_run_free(&g);
			break;                        /* the nth allocation was never made */
		}
		cr_assert((strstr(g.log.p, "FAIL 0 ") && strstr(g.log.p, "out of memory")) ||
		          strstr(g.log.p, "451 MAIL FROM: 451 4.3.0 Insufficient system resources"),
		          "allocation %lu:\n%s", nth, g.log.p);
		cr_assert(strncmp(g.out.p, clean.out.p, g.out.len) == 0 ||
		          strstr(g.log.p, "REFUSED"), "allocation %lu: wrote\n%s", nth, g.out.p);
		t_run_free(&g);
	}
	cr_assert_gt(nth, 4, "only %lu allocations", nth - 1);
	cr_assert_lt(nth, 100);
	t_run_free(&clean);
}
