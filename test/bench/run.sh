#!/usr/bin/env bash
# Runs every benchmark whose figure the README quotes, in the README's
# order, and prints each figure under a header that names where it goes:
# the queries-per-second table (discodns, CoreDNS with the etcd plugin with
# and without cache, Consul's DNS and a bare miekg/dns reference, on the same
# data, discodns and CoreDNS also under etcd churn), the freshness table,
# ZooKeeper's initial list, the large etcd table, and the micro benchmarks
# of the answer path and of a change. Builds discodns without the race
# detector. About 8 minutes on a 2-core machine.
#
#   ./test/bench/run.sh                         # the README's figures
#   DISCODNS_BENCH_QUICK=1 ./test/bench/run.sh  # a few minutes: shorter runs, fewer samples
#   DISCODNS_BENCH_SECONDS=30 ./test/bench/run.sh  # dnsperf runs of 30 s
#   DISCODNS_BENCH_SOAK=30m ./test/bench/run.sh    # and the Reliability section's long soak
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${DISCODNS_CACHE:-$HOME/.cache/discodns}"
mkdir -p "$cache/bin"
export PATH="$cache/bin:$PATH"
command -v dnsperf >/dev/null || { echo "dnsperf is required (apt-get install dnsperf)"; exit 1; }
DISCODNS_CACHE="$cache" ./test/tools/build-consul.sh
[ -x "$cache/bin/coredns" ] || GOBIN="$cache/bin" go install github.com/coredns/coredns@v1.15.0

# samples FULL QUICK: the iteration count of a benchmark in each mode.
samples() { if [ -n "${DISCODNS_BENCH_QUICK:-}" ]; then echo "$2"; else echo "$1"; fi; }
if [ -n "${DISCODNS_BENCH_QUICK:-}" ]; then
	export DISCODNS_BENCH_SECONDS="${DISCODNS_BENCH_SECONDS:-3}"
	micro=0.2s
else
	micro=2s
fi

# bench PACKAGE PATTERN BENCHTIME: one go test run of the benchmarks
# matching PATTERN.
bench() {
	echo "\$ go test $1 -run '^\$' -bench '$2' -benchtime $3"
	go test "$1" -count=1 -timeout 30m -run '^$' -bench "$2" -benchtime "$3" 2>&1 |
		grep -v '^goos:\|^goarch:\|^pkg:\|^cpu:\|^PASS$'
}

echo "== Performance: queries per second"
bench ./test CompareDNS 1x
echo "== Performance: freshness (registry write to the first DNS answer that shows it)"
bench ./test 'Freshness/discodns' "$(samples 100x 20x)"
bench ./test 'Freshness/coredns' "$(samples 20x 3x)"
bench ./test ZooKeeperChange "$(samples 200x 30x)"
bench ./test ConsulHealthChange "$(samples 100x 20x)"
bench ./test ConsulRegistration "$(samples 100x 10x)"
echo "== Architecture: ZooKeeper initial list"
bench ./test ZooKeeperInitialList "$(samples 10x 2x)"
echo "== Performance: scale"
bench ./test EtcdLargeTable "$(samples 3x 1x)"
echo "== Changes at scale: churn in other services, one change at 1,000 and 100,000 instances, bursts"
bench ./test 'Churn$' 1x
bench ./test ChangeAtScale "$(samples 50x 10x)"
bench ./test 'Burst$' 1x
echo "== Performance: the answer path and the cost of a change"
bench ./dnsserver 'Answer|ChangeOneInstance' "$micro"
bench ./cache PutOneInstance "$micro"

# The figures of the README's Reliability section come from the long soak,
# which takes as long as it is told: DISCODNS_BENCH_SOAK=30m runs it here.
if [ -n "${DISCODNS_BENCH_SOAK:-}" ]; then
	echo "== Reliability: the soak, ${DISCODNS_BENCH_SOAK} of faults, discodns built without -race"
	echo "\$ DISCODNS_NO_RACE=1 go test ./test -run 'TestSoak\$' -soak ${DISCODNS_BENCH_SOAK} -v"
	DISCODNS_NO_RACE=1 go test ./test -count=1 -run 'TestSoak$' -soak "$DISCODNS_BENCH_SOAK" -timeout 3h 2>&1 | tail -n 20
	cat "${TMPDIR:-/tmp}/discodns-soak-report.txt"
else
	echo "== Reliability: skipped (DISCODNS_BENCH_SOAK=30m runs the long soak)"
fi
