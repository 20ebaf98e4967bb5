/* Unit tests for core/log: escaping of untrusted bytes. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/log.h"

struct esc_case { const char *in; size_t len; size_t cap; const char *want; };

Test(log, escape_table)
{
	static const struct esc_case cases[] = {
		{ "plain@example.com", 17, 64, "plain@example.com" },
		{ "a b", 3, 64, "a\\x20b" },
		{ "q\"\\", 3, 64, "q\\x22\\x5c" },
		{ "\r\n\x01\xff", 4, 64, "\\x0d\\x0a\\x01\\xff" },
		{ "evil\nevent=queued", 17, 64, "evil\\x0aevent=queued" },
		{ "abcdefghijklmnop", 16, 10, "abcdef..." },
		{ "", 0, 4, "" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char got[128];
		memset(got, 'Z', sizeof got);
		log_escape(got, cases[i].cap, cases[i].in, cases[i].len);
		cr_assert_str_eq(got, cases[i].want, "case %zu", i);
		cr_assert(strlen(got) < cases[i].cap, "case %zu overflows", i);
	}
}

/* Text (a reply, a reason): spaces pass, the rest is escaped as above, so a reply cannot
 * end the quoted value or start a line of its own. */
Test(log, escape_text_table)
{
	static const struct esc_case cases[] = {
		{ "4.4.1 connect to mx: refused", 0, 64, "4.4.1 connect to mx: refused" },
		{ "x\" event=forged", 0, 64, "x\\x22 event=forged" },
		{ "a\r\nb\\\\\x80", 0, 64, "a\\x0d\\x0ab\\x5c\\x5c\\x80" },
		{ "abcdefghijklmnop", 0, 10, "abcdef..." },
		{ "", 0, 4, "" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char got[128];
		memset(got, 'Z', sizeof got);
		log_escape_text(got, cases[i].cap, cases[i].in);
		cr_assert_str_eq(got, cases[i].want, "case %zu", i);
		cr_assert(strlen(got) < cases[i].cap, "case %zu overflows", i);
	}
}

/* One line per event: "YYYY-MM-DDTHH:MM:SS.mmmZ LEVEL text\n", in one write, the stamp in
 * UTC and the milliseconds zero-padded; lines over the bound are cut and still end in \n. */
#include <regex.h>
#include <unistd.h>

Test(log, line_shape)
{
	int fds[2], saved = dup(STDERR_FILENO);
	cr_assert_eq(pipe(fds), 0);
	dup2(fds[1], STDERR_FILENO);
	log_info("event=test n=%d", 42);
	log_err("event=second");
	char big[8000];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	log_warn("event=big v=%s", big);
	dup2(saved, STDERR_FILENO);
	close(fds[1]);
	static char got[16384];
	size_t n = 0;
	ssize_t r;
	while ((r = read(fds[0], got + n, sizeof got - 1 - n)) > 0)
		n += (size_t)r;
	got[n] = '\0';
	close(fds[0]);
	regex_t re;
	cr_assert_eq(regcomp(&re, "^[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\."
	                          "[0-9]{3}Z info event=test n=42\n"
	                          "[0-9-]{10}T[0-9:]{8}\\.[0-9]{3}Z error event=second\n"
	                          "[0-9-]{10}T[0-9:]{8}\\.[0-9]{3}Z warn event=big v=a+\n$",
	                     REG_EXTENDED), 0);
	cr_assert_eq(regexec(&re, got, 0, NULL, 0), 0, "got: %.200s", got);
	regfree(&re);
	cr_assert_lt(strlen(strrchr(got, 'Z')), 4200, "the long line is cut");
}
