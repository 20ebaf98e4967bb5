# Found in review: every start preallocates a 64 MiB segment per worker (fallocate); a crash
# (kill -9, OOM kill, power loss) leaves them allocated, and no later start or clean stop
# gives the space back: the start-up scan calls their zero tail "unused space" and the
# new process opens new segments. A crash loop (Restart=always) fills the disk at
# workers x 64 MiB per crash, and then every message is answered 451.
. "$(dirname "$0")/lib.sh"
rr_config
for i in 1 2 3; do rr_start; rr_kill9; done
rr_start
swaks --server 127.0.0.1:$RR_PORT --from a@x.test --to b@local.test >/dev/null 2>&1 || fail "swaks"
rr_stop
# (the spool's reserves, .reserve-w*, are a fixed size kept across starts, at most 16 MiB
# per worker: core/spool.h, Free space; not what a crash leaves behind)
kib=$(du -sk --exclude='.reserve-w*' "$T/spool" | cut -f1)
ls -la "$T/spool" >&2
[ "$kib" -lt 4096 ] || fail "after 3 crashes and a clean restart+stop the spool (1 message queued) takes $kib KiB on disk"
ok "crashes leave no preallocated space behind once the relay has run again"
