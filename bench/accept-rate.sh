#!/usr/bin/env bash
# Measure how fast an SMTP server accepts mail, with Postfix's smtp-source.
#
#   bench/accept-rate.sh NAME HOST:PORT [SESSIONS MESSAGES BYTES]
#
# Runs  smtp-source -s SESSIONS -m MESSAGES -l BYTES -d -f sender@example.com
#       -t rcpt@example.net HOST:PORT   (bounded by `timeout`, default 300 s)
# and prints one line:  NAME msgs=N secs=S rate=R/s
# Defaults: 50 sessions, 20000 messages, 4096 bytes. -d keeps each session open
# across messages (no pipelining). Exits non-zero if smtp-source fails, times out
# or reports any warning/error (e.g. a rejected command).
# Environment: ACCEPT_RATE_TIMEOUT (seconds, default 300).
set -euo pipefail

usage() { echo "usage: $0 NAME HOST:PORT [SESSIONS MESSAGES BYTES]" >&2; exit 2; }
[ $# -eq 2 ] || [ $# -eq 5 ] || usage

name=$1 target=$2
sessions=${3:-50} messages=${4:-20000} bytes=${5:-4096}
limit=${ACCEPT_RATE_TIMEOUT:-300}

for v in "$sessions" "$messages" "$bytes" "$limit"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "accept-rate.sh: not a positive integer: $v" >&2; exit 2; }
done
[[ $target =~ ^[^:]+:[0-9]+$ ]] || { echo "accept-rate.sh: target must be HOST:PORT" >&2; exit 2; }

SMTP_SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)
[ -x "$SMTP_SOURCE" ] || { echo "accept-rate.sh: smtp-source not found (postfix package)" >&2; exit 1; }

errf=$(mktemp)
trap 'rm -f "$errf"' EXIT

t0=$(date +%s.%N)
rc=0
timeout "$limit" "$SMTP_SOURCE" -s "$sessions" -m "$messages" -l "$bytes" -d \
  -f sender@example.com -t rcpt@example.net "$target" >/dev/null 2>"$errf" || rc=$?
t1=$(date +%s.%N)

if (( rc != 0 )) || [ -s "$errf" ]; then
  if (( rc == 124 )); then
    echo "accept-rate.sh: $name: smtp-source timed out after ${limit}s" >&2
  else
    echo "accept-rate.sh: $name: smtp-source failed (exit $rc), its errors:" >&2
  fi
  head -n 20 "$errf" >&2
  n=$(wc -l <"$errf")
  (( n > 20 )) && echo "... ($n lines in all)" >&2
  exit 1
fi

awk -v n="$name" -v m="$messages" -v a="$t0" -v b="$t1" \
  'BEGIN { s = b - a; printf "%s msgs=%d secs=%.3f rate=%.1f/s\n", n, m, s, m / s }'
