# scdoc's roff, tidied for `mandoc -T lint -W warning`: a .PP right after .SH/.SS/.PP
# or right before another macro line (an empty paragraph) is dropped; nothing else
# changes. Used by the Makefile's man page rule.
function flush_pp(next_line) {
	if (pp && next_line !~ /^\./ && prev !~ /^\.(SH|SS|PP|P|LP)[ \t]*$/ && prev !~ /^\.S[HS] /)
		print ".PP"
	pp = 0
}
/^\.(P|PP|LP)[ \t]*$/ { pp = 1; next }
{
	flush_pp($0)
	print
	if ($0 != "")
		prev = $0
}
