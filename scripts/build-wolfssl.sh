#!/usr/bin/env bash
# Build a fast, static wolfSSL from Debian's own source package (issue 10, part 1).
#
# Debian's libwolfssl is built without AES-NI or assembly (AES-128-GCM about 30x slower
# here: bench/RESULTS.md). This fetches the wolfssl source package of the system's release
# through apt, without touching the system's apt configuration (a private deb-src list
# made from the system's sources, private lists and cache), unpacks it with Debian's
# patches applied (dpkg-source -x), and builds a static library into
#   $WOLFSSL_DIR (default third_party/wolfssl): install/{include,lib/libwolfssl.a}
# The Makefile links it when it is there, else the packaged libwolfssl-dev (pkg-config).
#
# Skipped, silently, when the build is there and was made with the same options and
# source version. After a Debian security update of wolfssl: scripts/build-wolfssl.sh
# --force (or rm -rf third_party/wolfssl), then rebuild the relay (make clean all).
# Exit 0 when built or already there; 1 when it could not be built (the caller warns
# and the relay falls back to the packaged library).
#   scripts/build-wolfssl.sh [--force] [--print-version]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${WOLFSSL_DIR:-$root/third_party/wolfssl}
case "$dir" in /*) ;; *) dir=$root/$dir ;; esac
force=
case "${1:-}" in
  '') ;;
  --force) force=1 ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

# Keep this lean: what the relay needs (TLS 1.2 and 1.3, ECDSA and RSA, SNI for the next
# hop's name, ALPN, session tickets for outbound resumption) and the fast code paths.
OPTS=(--enable-aesni --enable-intelasm --enable-sp --enable-sp-asm --enable-tls13
      --enable-sni --enable-alpn --enable-session-ticket --enable-curve25519
      --enable-static --disable-shared --disable-examples --disable-crypttests
      --disable-benchmark)
stamp_want="options=${OPTS[*]}"

mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9                          # two `make deps` at once: one builds, the other waits

if [ -z "$force" ] && [ -f "$dir/install/lib/libwolfssl.a" ] && [ -f "$dir/stamp" ] &&
   [ "$(sed -n 2p "$dir/stamp")" = "$stamp_want" ]; then
  exit 0
fi

log=$dir/build.log
: >"$log"
fail() { echo "build-wolfssl: $1 (log: $log)" >&2; exit 1; }
for tool in autoreconf automake libtoolize dpkg-source; do
  command -v "$tool" >/dev/null || fail "$tool missing (scripts/install-deps.sh installs it)"
done
echo "build-wolfssl: building a static wolfSSL from Debian's source into $dir (once, ~1 min)" >&2

# 1. A private deb-src list: the system's deb822 sources with Types: deb-src (and the
#    one-line sources.list format, deb -> deb-src), private lists and package cache.
apt=$dir/apt
rm -rf "$apt"; mkdir -p "$apt/sources" "$apt/lists/partial" "$apt/cache/archives/partial"
n=0
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  sed -E 's/^Types:.*/Types: deb-src/' "$f" >"$apt/sources/$(basename "$f")"; n=$((n + 1))
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -f "$f" ] || continue
  sed -nE 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >"$apt/sources/$(basename "$f")"; n=$((n + 1))
done
[ "$n" -gt 0 ] || fail "no apt sources found under /etc/apt"
APTOPT=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt/sources"
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt-get "${APTOPT[@]}" -qq update >>"$log" 2>&1 || fail "apt-get update (deb-src) failed"

# 2. The source package, unpacked with Debian's patches (dpkg-source -x applies them).
src=$dir/src
rm -rf "$src"; mkdir -p "$src"
(cd "$src" && apt-get "${APTOPT[@]}" -qq source --download-only wolfssl) >>"$log" 2>&1 ||
  fail "apt-get source wolfssl failed"
dsc=$(ls "$src"/wolfssl_*.dsc 2>/dev/null | head -1)
[ -n "$dsc" ] || fail "no wolfssl .dsc downloaded"
version=$(sed -nE 's/^Version: //p' "$dsc")
# apt checked every file's hash against the signed Sources index.
(cd "$src" && dpkg-source --no-check -x "$(basename "$dsc")" tree) >>"$log" 2>&1 ||
  fail "dpkg-source -x failed"

# 3. Configure and build the library only (no tests, examples or benchmark programs).
jobs=$(nproc 2>/dev/null || echo 2)
(
  cd "$src/tree"
  autoreconf -fi
  ./configure --prefix="$dir/install" "${OPTS[@]}" CFLAGS="-O2 -g -fPIC"
  make -j"$jobs" src/libwolfssl.la
  rm -rf "$dir/install"
  make install-libLTLIBRARIES install-nobase_includeHEADERS install-pkgconfigDATA
) >>"$log" 2>&1 || fail "configure or make failed"
[ -f "$dir/install/lib/libwolfssl.a" ] || fail "no libwolfssl.a after the build"
printf 'version=%s\n%s\n' "$version" "$stamp_want" >"$dir/stamp"
echo "build-wolfssl: wolfSSL $version built: $dir/install/lib/libwolfssl.a" >&2
