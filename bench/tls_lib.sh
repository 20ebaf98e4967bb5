#!/usr/bin/env bash
# make bench-tls-lib: the fast static wolfSSL (scripts/build-wolfssl.sh) against Debian's
# packaged libwolfssl, on this machine: wolfSSL's own benchmark program (from the source
# tree) for AES-128-GCM, and bench/tls_bench (net/tls, in memory) for handshakes/s.
#   bench/tls_lib.sh [SECONDS]    (WOLFSSL_DIR as for the Makefile)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-2}
wd=${WOLFSSL_DIR:-third_party/wolfssl}
tree=$wd/src/tree inst=$wd/install
[ -f "$inst/lib/libwolfssl.a" ] && [ -d "$tree" ] || { echo "bench-tls-lib: run scripts/build-wolfssl.sh first" >&2; exit 1; }
pkg-config --exists wolfssl || { echo "bench-tls-lib: libwolfssl-dev missing" >&2; exit 1; }
out=${BUILD:-build}/tls-lib; mkdir -p "$out/inc/wolfcrypt/benchmark" "$out/certs"
cp "$tree/wolfcrypt/benchmark/benchmark.h" "$out/inc/wolfcrypt/benchmark/"
(cd "$out/certs" &&
 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ec.key \
   -out ec.pem -days 2 -subj /CN=localhost >/dev/null 2>&1 &&
 openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.pem -days 2 \
   -subj /CN=localhost >/dev/null 2>&1)
BF=(-O2 -DUSE_CERT_BUFFERS_2048 -DUSE_CERT_BUFFERS_256 "$tree/wolfcrypt/benchmark/benchmark.c")
TF=(-O2 -I. -D_GNU_SOURCE bench/tls_bench.c net/tls.c net/buf.c)
cc "${BF[@]}" -I"$inst/include" -I"$out/inc" -o "$out/wc_built" "$inst/lib/libwolfssl.a" -lm -lpthread
cc "${BF[@]}" $(pkg-config --cflags wolfssl) -I"$out/inc" -o "$out/wc_pkg" $(pkg-config --libs wolfssl) -lm -lpthread
cc "${TF[@]}" -I"$inst/include" -o "$out/tls_built" "$inst/lib/libwolfssl.a" -lm -lpthread
cc "${TF[@]}" $(pkg-config --cflags wolfssl) -o "$out/tls_pkg" $(pkg-config --libs wolfssl) -lpthread
echo "# $(date -u +%FT%TZ) $(uname -n), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
echo "# wolfSSL $(sed -n 1p "$wd/stamp" | cut -d= -f2) built ($inst/lib/libwolfssl.a) vs packaged $(dpkg-query -W -f='${Version}' libwolfssl35 2>/dev/null || echo '?')"
for v in pkg built; do
  echo "## $v"
  "$out/wc_$v" -aes-gcm 2>&1 | grep -E 'AES-128-GCM-(enc|dec)' || true
  "$out/wc_$v" -ecc -p256 2>&1 | grep -E 'ECDSA|ECDHE' | grep 256 || true
  "$out/tls_$v" "$out/certs" "$secs"
done
