#!/usr/bin/env bash
# Measures how the DNS front end scales with cores: the server pinned to
# 1, 2, 4, ... cores (taskset, GOMAXPROCS alike), up to what the machine
# has less the load generator's share, and dnsperf (UDP, EDNS, 50% A and
# 50% SRV over 100 services of 10 instances, the data of
# BenchmarkCompareDNS) against each of:
#
#   raw       test/bench/rawanswer: SO_REUSEPORT sockets answering a fixed
#             packed reply, no parsing: the limit
#   batched   the same, reading and writing 32 datagrams per system call
#             (recvmmsg/sendmmsg): whether batching would pay
#   discodns  this tree, built without the race detector
#   CoreDNS   1.15, etcd plugin, cache 5, multisocket
#
# all reading one embedded etcd (test/bench/benchetcd) that runs unpinned.
# It prints queries per second and average latency per core count, and
# the ratios discodns/CoreDNS and discodns/raw.
#
#   ./test/bench/cores.sh
#   DISCODNS_BENCH_SECONDS=30 ./test/bench/cores.sh   # dnsperf runs of 30 s (default 10)
#   DISCODNS_BENCH_LOADGEN_CORES=4 ./test/bench/cores.sh  # cores kept for dnsperf
#
# DISCODNS_BENCH_LOADGEN_CORES defaults to a quarter of the cores, and to
# 0 on a machine of 2 cores or fewer: there dnsperf runs unpinned and
# shares the server's cores, so the figures compare the servers with
# each other, not with a machine that has cores to spare.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache="${DISCODNS_CACHE:-$HOME/.cache/discodns}"
mkdir -p "$cache/bin"
export PATH="$cache/bin:$PATH"
for tool in dnsperf taskset dig; do
	command -v "$tool" >/dev/null || { echo "$tool is required (apt-get install dnsperf util-linux bind9-dnsutils)"; exit 1; }
done
[ -x "$cache/bin/coredns" ] || GOBIN="$cache/bin" go install github.com/coredns/coredns@v1.15.0

seconds="${DISCODNS_BENCH_SECONDS:-10}"
ncpu="$(nproc)"
if [ "$ncpu" -le 2 ]; then loadgen="${DISCODNS_BENCH_LOADGEN_CORES:-0}"; else loadgen="${DISCODNS_BENCH_LOADGEN_CORES:-$((ncpu / 4))}"; fi
maxcores=$((ncpu - loadgen))
[ "$maxcores" -ge 1 ] || { echo "no core left for the server ($ncpu cores, $loadgen for dnsperf)"; exit 1; }
# dnsperf runs on the last $loadgen cores, the server on the first ones.
dnsperf_pin=()
[ "$loadgen" -eq 0 ] || dnsperf_pin=(taskset -c "$maxcores-$((ncpu - 1))")

tmp="$(mktemp -d)"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/" . ./test/bench/rawanswer ./test/bench/benchetcd

# A free loopback port, UDP and TCP.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

etcd="127.0.0.1:$(port)"
"$tmp/benchetcd" -addr "$etcd" >"$tmp/etcd.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do grep -q '^ready' "$tmp/etcd.log" && break; sleep 0.1; done
grep -q '^ready' "$tmp/etcd.log" || { cat "$tmp/etcd.log"; exit 1; }

for s in $(seq 0 99); do printf 'svc-%d.svc.internal A\nsvc-%d.svc.internal SRV\n' "$s" "$s"; done >"$tmp/queries"

# start NAME CORES ADDR: starts NAME pinned to the first CORES cores,
# answering on ADDR; sets pid.
start() {
	local name=$1 cores=$2 addr=$3 pin=(taskset -c "0-$(($2 - 1))")
	case $name in
	raw)
		GOMAXPROCS=$cores "${pin[@]}" "$tmp/rawanswer" -addr "$addr" -sockets "$cores" >>"$tmp/$name.log" 2>&1 &
		;;
	batched)
		GOMAXPROCS=$cores "${pin[@]}" "$tmp/rawanswer" -addr "$addr" -sockets "$cores" -batch 32 >>"$tmp/$name.log" 2>&1 &
		;;
	discodns)
		cat >"$tmp/discodns.toml" <<-TOML
			[dns]
			listen = ["$addr"]
			zone = "svc.internal."
			[log]
			level = "warn"
			[[source]]
			type = "etcd"
			endpoints = ["$etcd"]
			prefix = "/skydns"
			format = "skydns"
		TOML
		GOMAXPROCS=$cores "${pin[@]}" "$tmp/discodns" -config "$tmp/discodns.toml" >>"$tmp/$name.log" 2>&1 &
		;;
	coredns)
		cat >"$tmp/Corefile" <<-COREFILE
			svc.internal.:${addr##*:} {
				bind 127.0.0.1
				multisocket $cores
				cache 5
				etcd svc.internal {
					endpoint http://$etcd
					path /skydns
				}
			}
		COREFILE
		GOMAXPROCS=$cores "${pin[@]}" "$cache/bin/coredns" -conf "$tmp/Corefile" -quiet >>"$tmp/$name.log" 2>&1 &
		;;
	esac
	pid=$!
	pids+=("$pid")
	for _ in $(seq 300); do
		[ "$(dig +short +tries=1 +time=1 @127.0.0.1 -p "${addr##*:}" svc-0.svc.internal A 2>/dev/null | wc -l)" -eq 10 ] && return
		sleep 0.1
	done
	echo "$name did not answer svc-0.svc.internal on $addr:"
	cat "$tmp/$name.log"
	dig +tries=1 +time=1 @127.0.0.1 -p "${addr##*:}" svc-0.svc.internal A || true
	exit 1
}

# measure NAME CORES: sets qps and ms (average latency) of one dnsperf run.
measure() {
	local addr out
	addr="127.0.0.1:$(port)"
	start "$1" "$2" "$addr"
	out="$("${dnsperf_pin[@]}" dnsperf -s 127.0.0.1 -p "${addr##*:}" -d "$tmp/queries" -e -l "$seconds" -c 4 -q 200 2>&1)" || true
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	qps="$(awk '/Queries per second:/ { printf "%.0f", $4 }' <<<"$out")"
	ms="$(awk '/Average Latency \(s\):/ { printf "%.2f", $4 * 1000 }' <<<"$out")"
	[ -n "$qps" ] && [ -n "$ms" ] || { echo "dnsperf on $1 printed no figures:"; echo "$out"; exit 1; }
}

echo "$ncpu cores; server on 1..$maxcores of them, dnsperf $([ "$loadgen" -eq 0 ] && echo "unpinned (sharing)" || echo "on $loadgen"); ${seconds}s per run"
printf '%-6s %-22s %-22s %-22s %-22s %-16s %-14s %-16s %-14s\n' cores "raw qps (avg ms)" "batched qps (avg ms)" "discodns qps (avg ms)" "CoreDNS qps (avg ms)" discodns/CoreDNS discodns/raw discodns/batched batched/raw
cores=1
while [ "$cores" -le "$maxcores" ]; do
	measure raw "$cores"
	rq=$qps rl=$ms
	measure batched "$cores"
	bq=$qps bl=$ms
	measure discodns "$cores"
	dq=$qps dl=$ms
	measure coredns "$cores"
	cq=$qps cl=$ms
	printf '%-6s %-22s %-22s %-22s %-22s %-16s %-14s %-16s %-14s\n' "$cores" "$rq ($rl)" "$bq ($bl)" "$dq ($dl)" "$cq ($cl)" \
		"$(awk -v a="$dq" -v b="$cq" 'BEGIN { printf "%.2fx", a / b }')" \
		"$(awk -v a="$dq" -v b="$rq" 'BEGIN { printf "%.2fx", a / b }')" \
		"$(awk -v a="$dq" -v b="$bq" 'BEGIN { printf "%.2fx", a / b }')" \
		"$(awk -v a="$bq" -v b="$rq" 'BEGIN { printf "%.2fx", a / b }')"
	if [ "$cores" -lt "$maxcores" ] && [ $((cores * 2)) -gt "$maxcores" ]; then cores=$maxcores; else cores=$((cores * 2)); fi
done
