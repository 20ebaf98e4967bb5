/* core/log — see log.h. */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_BUF 65536
#define LOG_LINE 4096

static enum log_level log_min = LOG_INFO;
static __thread char tbuf[LOG_BUF];
static __thread size_t tlen;
static __thread bool tbuffered;
static __thread time_t tsec;
static __thread char tstamp[64];

static const char *const level_name[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level l) { log_min = l; }
void log_thread_buffered(bool on) { tbuffered = on; }

static void write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;         /* stderr gone: nothing sensible left to do */
		}
		p += w;
		n -= (size_t)w;
	}
}

void log_flush(void)
{
	if (tlen > 0)
		write_all(tbuf, tlen);
	tlen = 0;
}

void log_msg(enum log_level l, const char *fmt, ...)
{
	if (l < log_min)
		return;
	if (tlen + LOG_LINE > LOG_BUF)
		log_flush();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	/* The stamp: "YYYY-MM-DDTHH:MM:SS" made once a second per thread, then the
	 * milliseconds by hand (this prefix is on every line, the per-message ones too). */
	if (ts.tv_sec != tsec || !tstamp[0]) {
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		snprintf(tstamp, sizeof tstamp, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
		         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		tsec = ts.tv_sec;
	}
	char *p = tbuf + tlen;
	size_t room = LOG_LINE;
	size_t sl = strlen(tstamp), ll = strlen(level_name[l]);
	unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
	memcpy(p, tstamp, sl);
	p[sl] = '.';
	p[sl + 1] = (char)('0' + ms / 100);
	p[sl + 2] = (char)('0' + ms / 10 % 10);
	p[sl + 3] = (char)('0' + ms % 10);
	p[sl + 4] = 'Z';
	p[sl + 5] = ' ';
	memcpy(p + sl + 6, level_name[l], ll);
	p[sl + 6 + ll] = ' ';
	int n = (int)(sl + 7 + ll);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(p + n, room - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > room - 2)
		len = room - 2;     /* cut: the line still ends with a newline */
	p[len++] = '\n';
	tlen += len;
	if (!tbuffered)
		log_flush();
}

static char *escape(char *dst, size_t cap, const void *src, size_t len, bool space);

char *log_escape(char *dst, size_t cap, const void *src, size_t len)
{
	return escape(dst, cap, src, len, false);
}

char *log_escape_text(char *dst, size_t cap, const char *src)
{
	return escape(dst, cap, src, strlen(src), true);
}

static char *escape(char *dst, size_t cap, const void *src, size_t len, bool space)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = src;
	size_t o = 0;
	if (cap == 0)
		return dst;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];
		bool plain = (c > 0x20 || (space && c == 0x20)) && c < 0x7f && c != '\\' && c != '"';
		size_t need = plain ? 1 : 4;
		if (o + need + 4 > cap) {       /* keep room for "..." and NUL */
			if (o + 4 <= cap) {
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (plain) {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return dst;
}
