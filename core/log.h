/* core/log — one line per event, key=value, to stderr.
 *
 * Each thread buffers its lines; a worker flushes once per loop turn (log_flush), other
 * threads flush every line. A line is written with one write(2), so lines from threads
 * never interleave. Untrusted bytes go through log_escape(): printable ASCII except
 * backslash, double quote and space pass; everything else becomes \xHH; the result is cut
 * at a bound and marked with "...". */
#ifndef CORE_LOG_H
#define CORE_LOG_H
#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERR };

void log_set_level(enum log_level l);
/* This thread buffers until log_flush() (workers), instead of writing every line. */
void log_thread_buffered(bool on);
void log_msg(enum log_level l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_flush(void);
/* Escape src[0..len) into dst (always NUL-terminated); returns dst. */
char *log_escape(char *dst, size_t cap, const void *src, size_t len);
/* The same for a text read by people (a reply, a reason): spaces pass too. */
char *log_escape_text(char *dst, size_t cap, const char *src);

#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_err(...)  log_msg(LOG_ERR, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
