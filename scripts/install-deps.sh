#!/usr/bin/env bash
# Install every build, test and peer dependency of ringrelay with apt-get.
# Idempotent and quiet when everything is already there.
#   scripts/install-deps.sh           build, test and peer dependencies
#   scripts/install-deps.sh --bench   also the extras of `make bench`: perf, valgrind, GNU
#                                     time, and nodejs + npm for Haraka if node is missing
set -euo pipefail

bench=
case "${1:-}" in
  '') ;;
  --bench) bench=1 ;;
  *) echo "usage: $0 [--bench]" >&2; exit 2 ;;
esac

PKGS=(
  build-essential pkg-config
  liburing-dev libwolfssl-dev libjemalloc-dev libcriterion-dev
  autoconf automake libtool   # scripts/build-wolfssl.sh (libwolfssl-dev: its fallback)
  openssl                     # test/net/tls_test: makes its self-signed certificates
  ca-certificates             # tls: verify without tls_ca_file takes its bundle (and cfg tests)
  libcyaml-dev libyaml-dev liburcu-dev libc-ares-dev
  libsystemd-dev              # sd_notify (Type=notify under systemd)
  scdoc mandoc                # man pages: built from doc/*.scd, checked with mandoc -T lint
  swaks haproxy postfix
  libnet-ssleay-perl          # swaks --tls / --tlsc (test/integration/t_tls_*.sh)
  prometheus                  # promtool check metrics (t_metrics.sh)
  lintian                     # make deb's check (t_deb.sh)
  dnsmasq-base                # test/net/dns_test: a private DNS server (not "dnsmasq", a service)
  pflogsumm                   # t_deliver_peers: summarises our log (via scripts/pflogsumm-feed)
  python3 procps psmisc util-linux iproute2 strace
  clang libclang-rt-14-dev    # make fuzz: libFuzzer runtime (clang -fsanitize=fuzzer)
)
if [ -n "$bench" ]; then
  PKGS+=(linux-perf valgrind time)
  # Haraka (bench/peers/haraka.sh) runs on node; a node from elsewhere (e.g. NodeSource,
  # which bundles npm and conflicts with Debian's npm) is used as it is.
  command -v node >/dev/null || PKGS+=(nodejs)
  command -v npm >/dev/null || PKGS+=(npm)
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# The fast static wolfSSL (once; quiet when it is there). Without it the relay links
# the packaged libwolfssl-dev, slower, and says so.
build_wolfssl() {
  bash "$(dirname "$0")/build-wolfssl.sh" ||
    echo "install-deps: WARNING: the fast wolfSSL build failed; linking the packaged libwolfssl (slower TLS)" >&2
}
if [ ${#missing[@]} -eq 0 ]; then build_wolfssl; exit 0; fi

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}" >&2
# Postfix: preseed "No configuration" so it installs without prompting and starts nothing.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
# Never start services from package installs (postfix, haproxy) on this machine.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  made_policy=1
fi
trap '[ -n "$made_policy" ] && $SUDO rm -f "$policy"' EXIT
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
build_wolfssl
