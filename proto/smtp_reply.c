/* proto/smtp_reply — see smtp_reply.h. */
#include "proto/smtp_reply.h"

#include <string.h>
#include <strings.h>

void smtp_reply_parser_reset(struct smtp_reply_parser *rp)
{
	memset(rp, 0, sizeof *rp);
}

enum smtp_reply_rc smtp_reply_feed(struct smtp_reply_parser *rp, const uint8_t *p, size_t n,
                                   size_t *used, struct smtp_reply *out, const char **err)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = p[i];
		if (ch == '\n') {
			if (rp->len < 3) {
				*err = "reply line shorter than a code";
				return SMTP_REPLY_ERR;
			}
			if (rp->lines == 0)
				rp->r.code = rp->code;
			else if (rp->code != rp->r.code) {
				*err = "codes differ within a multi-line reply";
				return SMTP_REPLY_ERR;
			}
			if (rp->kwlen == 10 && strncasecmp(rp->kw, "PIPELINING", 10) == 0)
				rp->r.pipelining = true;
			rp->lines++;
			bool last = !rp->more;
			rp->len = rp->code = rp->kwlen = 0;
			rp->kwdone = rp->more = rp->cr = false;
			if (last) {
				rp->r.text[rp->tlen] = '\0';
				*out = rp->r;
				*used = i + 1;
				smtp_reply_parser_reset(rp);
				return SMTP_REPLY_OK;
			}
			continue;
		}
		if (rp->cr) {
			*err = "CR not followed by LF in a reply";
			return SMTP_REPLY_ERR;
		}
		if (ch == '\r') {
			rp->cr = true;
			continue;
		}
		unsigned pos = rp->len++;
		if (rp->len > SMTP_REPLY_LINE_MAX) {
			*err = "reply line too long";
			return SMTP_REPLY_ERR;
		}
		if (pos < 3) {
			if (ch < '0' || ch > '9' || (pos == 0 && (ch < '2' || ch > '5'))) {
				*err = "reply line does not start with a code";
				return SMTP_REPLY_ERR;
			}
			rp->code = rp->code * 10 + (unsigned)(ch - '0');
		} else if (pos == 3) {
			if (ch == '-') {
				rp->more = true;
			} else if (ch != ' ') {
				*err = "no space or hyphen after the reply code";
				return SMTP_REPLY_ERR;
			}
		} else if (!rp->kwdone) {
			if (ch == ' ')
				rp->kwdone = true;
			else if (rp->kwlen < sizeof rp->kw)
				rp->kw[rp->kwlen++] = (char)ch;
			else
				rp->kwlen = sizeof rp->kw + 1;
		}
		if (rp->lines == 0 && rp->tlen < sizeof rp->r.text - 1)
			rp->r.text[rp->tlen++] = (ch >= ' ' && ch < 0x7f) ? (char)ch : '?';
	}
	*used = n;
	return SMTP_REPLY_AGAIN;
}
