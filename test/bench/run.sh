#!/usr/bin/env bash
# One command for the performance comparison of the README: builds
# discodns (without the race detector), starts CoreDNS with the etcd plugin
# (with and without cache), Consul's DNS and a bare miekg/dns fixed-answer
# reference on the same data, runs dnsperf against each in turn, twice, and
# prints the table; then the freshness benchmarks (registry write to the
# first DNS answer that shows it).
#
#   ./test/bench/run.sh            # 10 s per dnsperf run
#   DISCODNS_BENCH_SECONDS=30 ./test/bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${DISCODNS_CACHE:-$HOME/.cache/discodns}"
mkdir -p "$cache/bin"
export PATH="$cache/bin:$PATH"
command -v dnsperf >/dev/null || { echo "dnsperf is required (apt-get install dnsperf)"; exit 1; }
DISCODNS_CACHE="$cache" ./test/tools/build-consul.sh
[ -x "$cache/bin/coredns" ] || GOBIN="$cache/bin" go install github.com/coredns/coredns@v1.15.0

echo "== queries per second"
go test ./test -count=1 -run '^$' -bench 'CompareDNS' -benchtime 1x -timeout 30m
echo "== freshness"
go test ./test -count=1 -run '^$' -bench 'Freshness|ConsulHealthChange|ZooKeeperChange' -benchtime 100x -timeout 30m
