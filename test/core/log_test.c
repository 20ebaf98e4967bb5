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
