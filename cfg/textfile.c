/* cfg/textfile — see textfile.h. */
#include "cfg/textfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int textfile_err(char *err, size_t errlen, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int textfile_err(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
	va_list ap;
	int n;
	if (err == NULL || errlen == 0)
		return -1;
	n = snprintf(err, errlen, "%s:0:0: ", path);
	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int textfile_read(const char *path, size_t max, char **buf, size_t *len, char *err,
                  size_t errlen)
{
	struct stat st;
	char *b = NULL;
	size_t n = 0, cap;
	int fd;

	*buf = NULL;
	*len = 0;
	/* O_NONBLOCK: the open itself never waits (a FIFO without a writer). */
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return textfile_err(err, errlen, path, "cannot open: %s", strerror(errno));
	if (fstat(fd, &st) != 0) {
		textfile_err(err, errlen, path, "cannot open: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		textfile_err(err, errlen, path, "not a regular file");
		goto fail;
	}
	if (st.st_size < 0 || (uintmax_t)st.st_size > max)
		goto too_big;
	/* One more octet than the size says: a file that grows meanwhile is seen growing,
	 * and the NUL fits. (Files of /proc say 0 and are read all the same.) */
	cap = (size_t)st.st_size + 1;
	for (;;) {
		ssize_t r;
		if (n == cap) {
			char *nb;
			if (n > max)
				goto too_big;
			cap = cap < max / 2 ? cap * 2 : max + 1;
			nb = realloc(b, cap);
			if (nb == NULL)
				goto oom;
			b = nb;
		} else if (b == NULL) {
			b = malloc(cap);
			if (b == NULL)
				goto oom;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			textfile_err(err, errlen, path, "read error: %s", strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	b[n] = '\0';                       /* n < cap: a read ended the loop */
	close(fd);
	*buf = b;
	*len = n;
	return 0;
too_big:
	textfile_err(err, errlen, path, "file larger than %zu bytes", max);
	goto fail;
oom:
	textfile_err(err, errlen, path, "out of memory");
fail:
	free(b);
	close(fd);
	return -1;
}
