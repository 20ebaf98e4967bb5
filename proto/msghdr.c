/* proto/msghdr — see msghdr.h. */
#include "proto/msghdr.h"

#include <string.h>
#include <strings.h>

/* The end of the line starting at p[i]: the index of its CR of CRLF, or len. */
static size_t line_end(const uint8_t *p, size_t len, size_t i)
{
	const uint8_t *lf = memchr(p + i, '\n', len - i);
	if (lf == NULL)
		return len;
	size_t e = (size_t)(lf - p);
	return e > i && p[e - 1] == '\r' ? e - 1 : e;
}

/* The length of the field name of the line p[0..n), or 0 when it is not a header line. */
static size_t field_name(const uint8_t *p, size_t n)
{
	size_t k = 0;
	while (k < n && p[k] > 0x20 && p[k] < 0x7f && p[k] != ':')
		k++;
	size_t name = k;
	while (k < n && (p[k] == ' ' || p[k] == '\t'))
		k++;
	return name > 0 && k < n && p[k] == ':' ? name : 0;
}

unsigned msghdr_received_count(const uint8_t *data, size_t len, unsigned stop)
{
	unsigned count = 0;
	size_t i = 0;
	while (i < len) {
		size_t e = line_end(data, len, i);
		size_t n = e - i;
		if (n == 0)
			break;                      /* the empty line: the body follows */
		if (data[i] != ' ' && data[i] != '\t') {
			size_t name = field_name(data + i, n);
			if (name == 0)
				break;              /* not a header line: no header section left */
			if (name == 8 && strncasecmp((const char *)data + i, "Received", 8) == 0 &&
			    ++count > stop)
				return count;
		} else if (i == 0) {
			break;                      /* a continuation of nothing */
		}
		i = e;
		if (i < len && data[i] == '\r')
			i++;
		if (i < len && data[i] == '\n')
			i++;
	}
	return count;
}
