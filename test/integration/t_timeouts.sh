# Idle timeout, and connection limits per client IP.
. "$(dirname "$0")/lib.sh"
rr_config 'limits:' '  idle_timeout: 1' '  max_connections_per_ip: 2'
rr_start
out=$($SMTPC --quiet 2.5 $RR_PORT 'EHLO c.test\r\n')
expect_match "$out" '421 4\.4\.2 relay\.test Error: timeout exceeded' "idle timeout"
expect_match "$out" '\[closed\]' "closed after timeout"
exec 3<>/dev/tcp/127.0.0.1/$RR_PORT
exec 4<>/dev/tcp/127.0.0.1/$RR_PORT
sleep 0.2
out=$($SMTPC $RR_PORT 'QUIT\r\n')
expect_match "$out" '421 4\.7\.0 relay\.test Error: too many connections from 127\.0\.0\.1' "per-IP limit"
exec 3>&- 4>&-
rr_stop
ok "timeout and per-IP limit"
