#!/usr/bin/env bash
# Builds the Consul agent the integration tests run, once, into
# $DISCODNS_CACHE/bin/consul (default ~/.cache/discodns). Consul's own go.mod
# has replace directives, so `go install` refuses it; it is built as a
# dependency of a throwaway module instead.
set -euo pipefail
version="${CONSUL_VERSION:-v1.20.6}"
cache="${DISCODNS_CACHE:-$HOME/.cache/discodns}"
bin="$cache/bin/consul"
stamp="$cache/bin/consul.version"
if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
	exit 0
fi
echo "building consul $version (once; cached in $bin)"
mkdir -p "$cache/bin"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
export GOFLAGS=-mod=mod
go mod init consulbuild >/dev/null 2>&1
dir="$(go mod download -json "github.com/hashicorp/consul@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
cat "$dir/go.sum" >> go.sum
# Consul's replace directives, which a dependent module must repeat.
replaces="$(cd "$dir" && go mod edit -json | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    if new["Path"].startswith("."):
        continue  # local submodules: the module proxy versions serve instead
    o = old["Path"] + ("@" + old["Version"] if old.get("Version") else "")
    print("-replace=%s=%s@%s" % (o, new["Path"], new["Version"]))
')"
if [ -n "$replaces" ]; then
	go mod edit $replaces
fi
go get "github.com/hashicorp/consul@$version" >/dev/null 2>&1
go build -o "$bin.tmp" github.com/hashicorp/consul
mv "$bin.tmp" "$bin"
echo "$version" > "$stamp"
"$bin" version | head -1
