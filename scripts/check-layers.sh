#!/usr/bin/env bash
# The layer rule of DESIGN.md, checked on the includes of every source file:
#   proto/  libc only: no other layer, no liburing/wolfSSL/c-ares/YAML/RCU, no socket headers
#   cfg/    proto/ and cfg/; libcyaml, libyaml, liburcu; never net/ or core/
#   net/    proto/ and net/; liburing (later c-ares, wolfSSL); never cfg/ or core/
#   core/   anything of the four
# Usage: scripts/check-layers.sh [ROOT]   (default: the repository). Prints each violation
# as FILE:LINE: include, and exits 1 when there is one.
set -u
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2
bad=0
inc_re='^[[:space:]]*#[[:space:]]*include[[:space:]]*([<"][^>"]+[>"])'
# check DIR ALLOWED_QUOTED_DIRS FORBIDDEN_ANGLE_REGEX
check() {
  local dir=$1 allowed=$2 forbid=$3 f
  for f in "$dir"/*.c "$dir"/*.h; do
    [ -f "$f" ] || continue
    while IFS=: read -r ln text; do
      local inc=
      [[ $text =~ $inc_re ]] && inc=${BASH_REMATCH[1]}   # no fork per line: bash's own regex
      [ -n "$inc" ] || continue
      case $inc in
        \"*)
          local top=${inc#\"}; top=${top%%/*}
          if [[ " $allowed " != *" $top "* ]]; then
            echo "$f:$ln: $inc (layer $dir may include only: $allowed)"; bad=1
          fi ;;
        \<*)
          if [ -n "$forbid" ] && [[ $inc =~ $forbid ]]; then
            echo "$f:$ln: $inc (not allowed in $dir)"; bad=1
          fi ;;
      esac
    done < <(grep -nE '^[[:space:]]*#[[:space:]]*include' "$f")
  done
}
check proto "proto" '^<(liburing|wolfssl/|ares|cyaml/|yaml\.h|urcu|jemalloc|criterion/|sys/socket\.h|netinet/|arpa/|netdb\.h|sys/epoll)'
check cfg   "proto cfg" '^<(liburing|wolfssl/|ares)'
check net   "proto net" '^<(cyaml/|yaml\.h|urcu)'
check core  "proto cfg net core" ''
[ "$bad" -eq 0 ] || { echo "check-layers: a lower layer includes a higher one (DESIGN.md, Layers)" >&2; exit 1; }
exit 0
