# The layer rule (DESIGN.md): proto/ libc only; cfg/ and net/ on proto/; core/ on all.
# scripts/check-layers.sh passes on the tree, and fails, naming the file and line, on a
# copy of it where a lower layer includes a higher one (each kind of violation once).
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$HERE/../.." && pwd)
bash "$ROOT/scripts/check-layers.sh" "$ROOT" > "$T/ok.out" 2>&1 || { cat "$T/ok.out" >&2; fail "the tree breaks the layer rule"; }
try() {  # try FILE LINE WANT: copy the tree, add LINE to FILE, expect a complaint about FILE
  rm -rf "$T/tree"; mkdir -p "$T/tree"
  cp -r "$ROOT/proto" "$ROOT/cfg" "$ROOT/net" "$ROOT/core" "$T/tree/"
  printf '%s\n' "$2" >> "$T/tree/$1"
  if bash "$ROOT/scripts/check-layers.sh" "$T/tree" > "$T/bad.out" 2>&1; then
    fail "not caught: '$2' in $1"
  fi
  grep -q "^$1:[0-9]*: " "$T/bad.out" || { cat "$T/bad.out" >&2; fail "no FILE:LINE for $1"; }
}
try net/stream.c   '#include "core/log.h"'
try net/loop.h     '#include "cfg/config.h"'
try cfg/config.c   '#include "net/stream.h"'
try cfg/cidr.h     '#include "core/worker.h"'
try proto/proxy.c  '#include "net/buf.h"'
try proto/smtp_srv.c '#include <liburing.h>'
try proto/spoolrec.h '#include <sys/socket.h>'
try net/uring.c    '#include <urcu-qsbr.h>'
try cfg/snapshot.c '#include <liburing.h>'
ok "the tree keeps the layer rule; nine kinds of violation are each caught with FILE:LINE"
