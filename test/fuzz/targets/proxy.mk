# PROXY v1/v2 codec. A v2 header is at most 16 + 65535 octets (proxy_max_header caps it
# at 65551): inputs a little longer than that, so bytes after a maximal header occur too.
FUZZ_SRC_proxy    := test/fuzz/proxy_fuzz.c proto/proxy.c proto/crc32c.c
FUZZ_MAXLEN_proxy := 65600
# a run re-parses many prefixes of inputs up to 64 KiB: fewer runs keep fuzz-smoke short
FUZZ_SMOKE_RUNS_proxy := 5000
