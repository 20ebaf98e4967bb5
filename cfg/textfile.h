/* cfg/textfile — read a file an operator names (the configuration, a haproxy_hosts file)
 * whole into memory, without ever blocking and with a bounded size.
 *
 * open(2) of a FIFO for reading blocks until a writer comes, so `ringrelay --check -c FIFO`
 * (or a SIGHUP reload, or a proxy_hosts_file that is a FIFO) would hang. The file is
 * opened O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_NOCTTY, which returns at once for anything, and
 * then must be a regular file (fstat): FIFOs, sockets, devices and directories are
 * refused before a single byte is read. */
#ifndef CFG_TEXTFILE_H
#define CFG_TEXTFILE_H

#include <stddef.h>

/* Read PATH (at most max octets) into a new heap buffer: *buf (the caller frees it) holds
 * *len octets followed by a NUL, which is not counted (the content may hold NULs of its
 * own). Returns 0, or -1 with "PATH:0:0: what is wrong" in err (when err is not NULL):
 *   "cannot open: <strerror>", "not a regular file", "file larger than MAX bytes",
 *   "read error: <strerror>", "out of memory". */
int textfile_read(const char *path, size_t max, char **buf, size_t *len, char *err,
                  size_t errlen);

#endif
