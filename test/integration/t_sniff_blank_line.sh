# Review finding (minor): on a listener with proxy_protocol: off (the default), a client
# whose first line is empty ("\r\n", a prefix of the PROXY v2 signature) gets no reply:
# the sniffer waits for more octets to tell it from a v2 header, so the client waits
# for its "500 5.5.2 Error: bad syntax" until the idle timeout (300 s). Two CRLFs wait
# too. Any octet that cannot continue the signature should end the wait; a complete
# line that is not a PROXY header could be answered.
. "$(dirname "$0")/lib.sh"
rr_start
out=$(python3 - $RR_PORT <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.settimeout(2)
s.recv(1000)                      # banner
s.sendall(b"\r\n")
try:
    print(s.recv(1000).decode().strip())
except socket.timeout:
    print("no reply within 2 s")
PY
)
rr_stop
expect_match "$out" '^500 5\.5\.2' "reply to an empty first line (got: $out)"
ok "an empty first command line is answered"
