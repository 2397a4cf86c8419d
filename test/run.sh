#!/usr/bin/env bash
# Runs the whole discodns test suite on a fresh machine: installs what the
# tests need (Debian packages, Go tools, cached under ~/.cache/discodns), runs
# the static checks, then every unit, integration and end-to-end test with
# the race detector. This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${DISCODNS_CACHE:-$HOME/.cache/discodns}"
mkdir -p "$cache/bin"
export PATH="$cache/bin:$PATH"

# Debian packages: dig for the end-to-end tests, dnsperf for benchmarks,
# ZooKeeper (with its Java runtime) for the ZooKeeper source, dnsmasq as an
# upstream resolver, unshare (util-linux) for the resolv.conf tests,
# promtool (prometheus) to check the alert rules in contrib/, headless
# Chromium to check the status page, ss (iproute2) to count what a Consul
# server sends its client agents.
packages=(bind9-dnsutils dnsperf zookeeper dnsmasq-base util-linux prometheus chromium iproute2)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing ${missing[*]}"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# staticcheck, built once from the Go module proxy.
if [ ! -x "$cache/bin/staticcheck" ]; then
	echo "building staticcheck"
	GOBIN="$cache/bin" go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi

# Consul, built once from the Go module proxy (a few minutes the first time).
DISCODNS_CACHE="$cache" ./test/tools/build-consul.sh

# CoreDNS, whose etcd plugin the skydns layout is checked against.
if [ ! -x "$cache/bin/coredns" ]; then
	echo "building coredns v1.15.0 (once; cached in $cache/bin)"
	GOBIN="$cache/bin" go install github.com/coredns/coredns@v1.15.0
fi

echo "== static checks"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted"
	exit 1
fi
go vet ./...
staticcheck ./...
# The frameworks' own registrars, a module of their own (test/frameworks).
(cd test/frameworks && go vet ./... && staticcheck ./...)

echo "== tests"
go test -race -count=1 -timeout 20m "$@" ./...
(cd test/frameworks && go test -race -count=1 -timeout 10m ./...)
