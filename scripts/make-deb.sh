#!/usr/bin/env bash
# make deb: build/ringrelay_VERSION_ARCH.deb from the release build (make all) with
# dpkg-deb: the daemon in /usr/sbin, ringblast and ringsink in /usr/bin, the packaged
# configuration in /etc/ringrelay (a conffile), the unit, the man pages, the copyright
# and changelog; the `ringrelay` system user and /var/spool/ringrelay made by postinst.
# Dependencies are the Debian packages that hold the shared libraries the binaries use
# directly (their NEEDED entries, dpkg -S), each at least at its installed version.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
VERSION=$(sed -nE 's/^#define RINGRELAY_VERSION "([^"]+)"$/\1/p' core/version.h)
ARCH=$(dpkg --print-architecture)
[ -n "$VERSION" ] || { echo "make-deb: no version in core/version.h" >&2; exit 1; }
for f in "$BUILD/ringrelay" "$BUILD/ringblast" "$BUILD/ringsink" "$BUILD/man/man8/ringrelay.8"; do
	[ -f "$f" ] || { echo "make-deb: $f missing (make all)" >&2; exit 1; }
done
ROOT=$BUILD/deb/root
rm -rf "$BUILD/deb"
install -d "$ROOT/DEBIAN" "$ROOT/usr/sbin" "$ROOT/usr/bin" "$ROOT/etc/ringrelay" \
	"$ROOT/lib/systemd/system" "$ROOT/usr/share/doc/ringrelay/examples"
for m in 1 5 8; do install -d "$ROOT/usr/share/man/man$m"; done
strip_to() { install -m 0755 "$1" "$2"; strip --strip-unneeded --remove-section=.comment --remove-section=.note "$2"; }
strip_to "$BUILD/ringrelay" "$ROOT/usr/sbin/ringrelay"
strip_to "$BUILD/ringblast" "$ROOT/usr/bin/ringblast"
strip_to "$BUILD/ringsink" "$ROOT/usr/bin/ringsink"
install -m 0644 etc/debian/ringrelay.yaml "$ROOT/etc/ringrelay/ringrelay.yaml"
install -m 0644 etc/ringrelay.service "$ROOT/lib/systemd/system/ringrelay.service"
install -m 0644 etc/ringrelay.yaml "$ROOT/usr/share/doc/ringrelay/examples/ringrelay.yaml"
install -m 0644 etc/haproxy-outbound.cfg "$ROOT/usr/share/doc/ringrelay/examples/haproxy-outbound.cfg"
for p in "$BUILD"/man/man*/*; do
	sec=$(basename "$(dirname "$p")")
	gzip -9n < "$p" > "$ROOT/usr/share/man/$sec/$(basename "$p").gz"
done
cat > "$ROOT/usr/share/doc/ringrelay/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: ringrelay
Comment: This build links wolfSSL statically (Debian's wolfssl source package, rebuilt
 with AES-NI and assembly: scripts/build-wolfssl.sh). wolfSSL is GPL-2+ (or a
 commercial license): whoever distributes this binary takes on its terms.

Files: *
Copyright: 2026 the ringrelay authors
License: GPL-2+

Files: wolfssl/*
Copyright: 2006-2022 wolfSSL Inc.
License: GPL-2+

License: GPL-2+
 This program is free software; you can redistribute it and/or modify it under the
 terms of the GNU General Public License as published by the Free Software Foundation;
 either version 2 of the License, or (at your option) any later version.
 .
 On Debian systems, the complete text of the GNU General Public License version 2 can
 be found in /usr/share/common-licenses/GPL-2.
COPY
{
	printf 'ringrelay (%s) unstable; urgency=medium\n\n' "$VERSION"
	printf '  * Built from git %s.\n\n' "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	printf ' -- ringrelay builders <ringrelay@example.com>  %s\n' "$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n > "$ROOT/usr/share/doc/ringrelay/changelog.gz"   # a native package's
install -m 0755 etc/debian/postinst "$ROOT/DEBIAN/postinst"
install -m 0755 etc/debian/postrm "$ROOT/DEBIAN/postrm"
install -m 0755 etc/debian/prerm "$ROOT/DEBIAN/prerm"
echo /etc/ringrelay/ringrelay.yaml > "$ROOT/DEBIAN/conffiles"
# dependencies: the packages of the shared libraries
deps=$(for b in "$ROOT"/usr/sbin/* "$ROOT"/usr/bin/*; do
		objdump -p "$b" | awk '$1 == "NEEDED" {print $2}'
	done | sort -u | while read -r so; do
		lib=$(ldconfig -p | awk -v so="$so" '$1 == so && /x86-64|x32|64bit/ {print $NF; exit}')
		[ -n "$lib" ] || lib=$(ldconfig -p | awk -v so="$so" '$1 == so {print $NF; exit}')
		[ -n "$lib" ] || continue
		real=$(readlink -f "$lib")
		pkg=$(dpkg -S "$real" 2> /dev/null | head -1 | cut -d: -f1) ||
			pkg=$(dpkg -S "$lib" 2> /dev/null | head -1 | cut -d: -f1) || true
		[ -n "$pkg" ] || pkg=$(dpkg -S "$lib" 2> /dev/null | head -1 | cut -d: -f1)
		[ -n "$pkg" ] || continue
		ver=$(dpkg-query -W -f='${Version}' "$pkg" | sed 's/-[^-]*$//')
		echo "$pkg (>= $ver)"
	done | sort -u | paste -sd, | sed 's/,/, /g')
size=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
cat > "$ROOT/DEBIAN/control" <<CTL
Package: ringrelay
Version: $VERSION
Architecture: $ARCH
Maintainer: ringrelay builders <ringrelay@example.com>
Installed-Size: $size
Depends: adduser, $deps
Section: mail
Priority: optional
Homepage: https://ringrelay.invalid/
Description: store-and-forward SMTP relay on io_uring with HAProxy PROXY support
 ringrelay accepts mail over SMTP, writes each message durably to its spool
 before it answers 250, and delivers it to its next hop directly or through a
 tier of HAProxy servers it speaks the PROXY protocol to, choosing the source
 address of each connection. It includes ringblast, an SMTP load generator, and
 ringsink, an SMTP sink, both on the same runtime.
CTL
(cd "$ROOT" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$ROOT/DEBIAN/md5sums"
chmod 0644 "$ROOT/DEBIAN/md5sums" "$ROOT/DEBIAN/control" "$ROOT/DEBIAN/conffiles"
out=$BUILD/ringrelay_${VERSION}_${ARCH}.deb
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$out" > /dev/null
echo "make-deb: $out"
