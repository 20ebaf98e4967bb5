/* test/cfg/textfile_test — cfg/textfile: a regular file is read whole (NULs and all), up
 * to the size limit and not one octet more; anything else (FIFO, directory, device) is
 * refused at once, never waited on. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg/textfile.h"

static char *write_temp(const void *content, size_t len)
{
	char *path = strdup("/tmp/textfile_test_XXXXXX");
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, content, len), (ssize_t)len);
	close(fd);
	return path;
}

Test(textfile, reads_a_regular_file_whole)
{
	static const char want[] = "hostname: a\n\0after a NUL\n";
	char *path = write_temp(want, sizeof(want) - 1);
	char *got_buf = NULL, err[256] = "";
	size_t got_len = 0;
	cr_assert_eq(textfile_read(path, 1024, &got_buf, &got_len, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(got_len, sizeof(want) - 1);
	cr_expect_eq(memcmp(got_buf, want, sizeof(want) - 1), 0);
	cr_expect_eq(got_buf[got_len], '\0');
	free(got_buf);
	unlink(path);
	free(path);
}

Test(textfile, empty_file)
{
	char *path = write_temp("", 0);
	char *got_buf = NULL;
	size_t got_len = 1;
	cr_assert_eq(textfile_read(path, 16, &got_buf, &got_len, NULL, 0), 0);
	cr_assert_not_null(got_buf);
	cr_expect_eq(got_len, 0);
	cr_expect_eq(got_buf[0], '\0');
	free(got_buf);
	unlink(path);
	free(path);
}

Test(textfile, size_limit_is_exact)
{
	char content[100];
	memset(content, 'x', sizeof(content));
	char *path = write_temp(content, sizeof(content));
	char *got_buf = NULL, got_err[256] = "", want_err[256];
	size_t got_len = 0;

	cr_expect_eq(textfile_read(path, 100, &got_buf, &got_len, got_err, sizeof(got_err)), 0);
	cr_expect_eq(got_len, 100);
	free(got_buf);

	cr_expect_eq(textfile_read(path, 99, &got_buf, &got_len, got_err, sizeof(got_err)), -1);
	cr_expect_null(got_buf);
	snprintf(want_err, sizeof(want_err), "%s:0:0: file larger than 99 bytes", path);
	cr_expect_str_eq(got_err, want_err);
	unlink(path);
	free(path);
}

/* Files of /proc say they are empty (st_size 0) and are not: read until EOF. */
Test(textfile, size_zero_in_stat_is_not_trusted)
{
	char *got_buf = NULL, err[256] = "";
	size_t got_len = 0;
	cr_assert_eq(textfile_read("/proc/self/status", 1 << 20, &got_buf, &got_len, err,
	                           sizeof(err)), 0, "%s", err);
	cr_expect_gt(got_len, 0);
	cr_expect(strstr(got_buf, "Name:") != NULL);
	free(got_buf);
	cr_expect_eq(textfile_read("/proc/self/status", 8, &got_buf, &got_len, err,
	                           sizeof(err)), -1);
	cr_expect(strstr(err, "file larger than 8 bytes") != NULL, "got '%s'", err);
}

Test(textfile, not_regular_files_are_refused_at_once)
{
	char dir[] = "/tmp/textfile_test_XXXXXX";
	char fifo[300], want_err[400], got_err[400] = "";
	char *got_buf = NULL;
	size_t got_len = 0;
	cr_assert_not_null(mkdtemp(dir));
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0, "mkfifo: %s", strerror(errno));

	const char *paths[] = { fifo, dir, "/dev/null" };
	alarm(5);                          /* a blocking open would hang: SIGALRM fails it */
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		cr_expect_eq(textfile_read(paths[i], 1024, &got_buf, &got_len, got_err,
		                           sizeof(got_err)), -1, "%s", paths[i]);
		cr_expect_null(got_buf);
		snprintf(want_err, sizeof(want_err), "%s:0:0: not a regular file", paths[i]);
		cr_expect_str_eq(got_err, want_err);
	}
	alarm(0);
	unlink(fifo);
	rmdir(dir);
}

Test(textfile, missing_file)
{
	char *got_buf = NULL, got_err[256] = "";
	size_t got_len = 0;
	cr_expect_eq(textfile_read("/nonexistent/x.yaml", 1024, &got_buf, &got_len, got_err,
	                           sizeof(got_err)), -1);
	cr_expect_str_eq(got_err, "/nonexistent/x.yaml:0:0: cannot open: No such file or "
	                 "directory");
}
