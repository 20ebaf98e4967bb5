# Issue 7, defect 7: a valid PROXY header followed by more than about 8 KB of client data
# in the same read was refused ("header too long"): the size check counted everything
# received, not the header. A 28-octet v2 header and 9,000 octets of NOOP in one send must
# be served: a banner, then one 250 per NOOP.
. "$(dirname "$0")/lib.sh"
rr_proxy_config trusted 'proxy_hosts: [127.0.0.1]'
rr_start
out=$(python3 "$HERE/flood.py" proxytail $RR_PORT 203.0.113.9 1500)
echo "$out"
expect_match "$out" '^replies=1501 first=220 relay\.test ESMTP ringrelay last=250 2\.0\.0 Ok$' "1500 NOOPs behind the header"
wait_log 'event=proxy sid=[0-9.]+ client=203\.0\.113\.9 proxy=127\.0\.0\.1 version=2' || fail "header not applied"
expect_nomatch "$(cat "$T/relay.log")" 'proxy_invalid' "no invalid-header complaint"
# The header itself is still bounded: a v2 header claiming more than proxy_max_header.
big=$(python3 -c '
import struct,sys
sig=b"\r\n\r\n\x00\r\nQUIT\n"
print((sig+bytes([0x21,0x11])+struct.pack("!H",60000)).hex())')
[ ${#big} -eq 32 ] || fail "could not build the oversized header"
out=$(python3 -c "
import socket,sys
s=socket.create_connection(('127.0.0.1',$RR_PORT)); s.sendall(bytes.fromhex('$big')+b'x'*70000)
s.settimeout(5); print(s.recv(4096).decode())")
expect_match "$out" '^421 4\.7\.0 Invalid PROXY header' "a header over proxy_max_header"
rr_stop
ok "PROXY v2 header + 9,000 octets in one send served; an oversized header still refused"
