/* proto/msghdr: the hop count of a message's header section. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "proto/msghdr.h"

static unsigned count(const char *s, unsigned stop)
{
	return msghdr_received_count((const uint8_t *)s, strlen(s), stop);
}

Test(msghdr, counts_received_fields_of_the_header_only)
{
	cr_expect_eq(count("", 50), 0);
	cr_expect_eq(count("Subject: x\r\n\r\nbody\r\n", 50), 0);
	cr_expect_eq(count("Received: a\r\nReceived: b\r\nSubject: x\r\n\r\n", 50), 2);
	/* Name compared without case; RFC 5322's obsolete space before the colon. */
	cr_expect_eq(count("received: a\r\nRECEIVED: b\r\nReceived \t: c\r\n\r\n", 50), 3);
	/* Folded continuation lines belong to their field, even when they look like one. */
	cr_expect_eq(count("Received: from a\r\n\tby b\r\n Received: no\r\n\r\n", 50), 1);
	/* Other names that start or end alike are not hops. */
	cr_expect_eq(count("Received-SPF: pass\r\nX-Received: a\r\nReceivedx: b\r\n"
	                   "Receive: c\r\n\r\n", 50), 0);
	/* The body is not the header: a forwarded message's Received lines do not count. */
	cr_expect_eq(count("Received: a\r\n\r\nReceived: b\r\nReceived: c\r\n", 50), 1);
	/* A line that is not a header line ends the header section. */
	cr_expect_eq(count("Received: a\r\nnot a header\r\nReceived: b\r\n", 50), 1);
	cr_expect_eq(count("Received: a\r\n: empty name\r\nReceived: b\r\n", 50), 1);
	/* A continuation line first is no header at all. */
	cr_expect_eq(count(" Received: a\r\nReceived: b\r\n", 50), 0);
	/* The last line may lack its CRLF; bare LF ends a line too. */
	cr_expect_eq(count("Received: a\r\nReceived: b", 50), 2);
	cr_expect_eq(count("Received: a\nReceived: b\n\nReceived: c\n", 50), 2);
	/* A name with no colon on its line is not a field. */
	cr_expect_eq(count("Received\r\nReceived: b\r\n", 50), 0);
}

Test(msghdr, stops_after_the_limit)
{
	size_t n = 100000;
	const char *line = "Received: x\r\n";
	size_t l = strlen(line);
	char *buf = malloc(n * l + 1);
	cr_assert_not_null(buf);
	for (size_t i = 0; i < n; i++)
		memcpy(buf + i * l, line, l);
	buf[n * l] = '\0';
	cr_expect_eq(msghdr_received_count((const uint8_t *)buf, n * l, 50), 51);
	cr_expect_eq(msghdr_received_count((const uint8_t *)buf, n * l, 0), 1);
	cr_expect_eq(msghdr_received_count((const uint8_t *)buf, 50 * l, 50), 50);
	cr_expect_eq(msghdr_received_count((const uint8_t *)buf, 51 * l, 50), 51);
	cr_expect_eq(msghdr_received_count((const uint8_t *)buf, n * l, 1000000), n);
	free(buf);
}

/* Every prefix of a header, copied to a buffer of exactly that size (ASan sees any read
 * past it): the count is that of the complete lines it holds, plus a last partial line
 * when that already names the field. */
Test(msghdr, every_prefix)
{
	const char *h = "Received: from a (b [1.2.3.4])\r\n\tby c; d\r\nReceived: e\r\n"
	                "Subject: s\r\nreceived : f\r\n\r\nReceived: g\r\n";
	size_t len = strlen(h);
	for (size_t k = 0; k <= len; k++) {
		uint8_t *p = malloc(k ? k : 1);
		cr_assert_not_null(p);
		memcpy(p, h, k);
		unsigned got = msghdr_received_count(p, k, 50);
		/* expected: fields whose "name:" lies fully inside the prefix */
		unsigned want = 0;
		const char *marks[] = { "Received:", "Received: e", "received :" };
		const char *at[] = { h, strstr(h, "Received: e"), strstr(h, "received :") };
		for (int m = 0; m < 3; m++)
			if ((size_t)(at[m] - h) + strcspn(marks[m], ":") + 1 <= k)
				want++;
		cr_expect_eq(got, want, "prefix %zu: got %u want %u", k, got, want);
		free(p);
	}
}
