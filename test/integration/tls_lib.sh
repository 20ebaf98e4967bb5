# TLS helpers for the t_tls_*.sh tests (sourced after lib.sh): a self-signed ECDSA
# certificate made with the openssl CLI, and a relay configuration with a TLS listener.
TLSC="python3 $HERE/tlsc.py"

# tls_cert NAME [CN]: $T/NAME.crt and $T/NAME.key (P-256, one day).
tls_cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj "/CN=${2:-relay.test}" -keyout "$T/$1.key" -out "$T/$1.crt" >/dev/null 2>&1 \
    || fail "openssl could not make a certificate"
}

# tls_config MODE [listener lines] [-- top-level lines]: $T/ringrelay.yaml with one TLS
# listener (certificate $T/cert.crt) in tls_mode MODE.
tls_config() {
  local mode=$1; shift
  local l=() top=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do l+=("    $1"); shift; done
  [ "${1:-}" = "--" ] && shift
  top=("$@")
  cat > "$T/ringrelay.yaml" <<YAML
hostname: relay.test
workers: 2
spool: { path: $T/spool }
listeners:
  - id: mta
    address: 127.0.0.1
    port: 0
    tls: { certificate: $T/cert.crt, key: $T/cert.key }
    tls_mode: $mode
$( [ ${#l[@]} -gt 0 ] && printf '%s\n' "${l[@]}" )
relay:
  networks: [127.0.0.0/8, 203.0.113.0/24]
$(rr_dns_default "${top[@]}")
YAML
  [ ${#top[@]} -gt 0 ] && printf '%s\n' "${top[@]}" >> "$T/ringrelay.yaml"
  return 0
}
