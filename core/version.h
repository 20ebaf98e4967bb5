/* core/version — the one place the version is written (the binary, --version, logs, ctl
 * status, the metrics' build_info, the Debian package via scripts/make-deb.sh). */
#ifndef CORE_VERSION_H
#define CORE_VERSION_H
#define RINGRELAY_VERSION "0.1.0"
#endif
