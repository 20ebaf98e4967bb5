# Shared by the peer scripts (bench/peers/*.sh); sourced, not run.

# port_in_use PORT: is something listening on 127.0.0.1:PORT?
port_in_use() {
  ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

# wait_banner PORT SECONDS [ALIVE_CMD...]: bounded wait for a 220 banner on
# 127.0.0.1:PORT; gives up early when ALIVE_CMD (if given) fails, i.e. the peer died.
wait_banner() {
  local port=$1 deadline=$((SECONDS + $2))
  shift 2
  while (( SECONDS < deadline )); do
    if [ $# -gt 0 ] && ! "$@" >/dev/null; then
      return 1
    fi
    if timeout 3 bash -c '
        exec 3<>/dev/tcp/127.0.0.1/'"$port"' || exit 1
        IFS= read -r -t 2 line <&3 || exit 1
        printf "QUIT\r\n" >&3
        [[ $line == 220* ]]' 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  return 1
}
