/* proto/msghdr — facts read from a message's header section (RFC 5322), without a parser
 * for the fields themselves.
 *
 * The header section is the run of header lines at the start of the message: a line
 * "name: value" (name: printable ASCII other than ':', optionally followed by spaces or
 * tabs before the colon, RFC 5322 4.5.3 obs-optional) and its folded continuation lines
 * (starting with a space or tab). It ends at the first empty line, at the first line that
 * is not a header line, or at the end of the data. Lines end in CRLF (the server's DATA
 * lexer guarantees it for stored mail); a last line without CRLF is still looked at.
 */
#ifndef PROTO_MSGHDR_H
#define PROTO_MSGHDR_H

#include <stddef.h>
#include <stdint.h>

/* How many "Received:" fields (name compared without regard to case) the header section
 * of data[0..len) holds, counting stops once it exceeds `stop` (returns stop + 1 then),
 * so a hostile header of a million Received: lines costs no more than stop + 1 of them
 * plus the scan to reach them. This is the hop count of a mail loop check (Postfix's
 * hopcount_limit). */
unsigned msghdr_received_count(const uint8_t *data, size_t len, unsigned stop);

#endif
