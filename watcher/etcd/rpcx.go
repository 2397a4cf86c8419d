package etcd

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// rpcxSplitter returns the key splitter of the rpcx layout, written by
// rpcx-etcd's serverplugin (Register in serverplugin/etcdv3.go of
// github.com/rpcxio/rpcx-etcd): <base>/<service>/<network>@<host:port>.
// The directory markers it writes too, <base> (value "rpcx_path") and
// <base>/<service> (value the service's name), are not instances and no
// error either.
func rpcxSplitter(prefix string) func(key string) (service, id string, err error) {
	return func(key string) (string, string, error) {
		rest, ok := strings.CutPrefix(key, prefix)
		if ok && !strings.Contains(rest, "/") {
			return "", "", errOtherKey
		}
		return watcher.SplitKey(prefix, key)
	}
}

// DecodeRPCX decodes the rpcx layout: the id is <network>@<host:port>
// (network tcp, kcp, quic...; a unix socket has no port and is an error),
// the value the service's metadata as a URL query,
// "weight=10&group=test&state=inactive". state=inactive takes the
// instance out (watcher.ErrRemoved), weight is the SRV weight, group a
// tag, and every other parameter metadata.
func DecodeRPCX(service, id string, value []byte) (cache.Instance, error) {
	network, addr, ok := strings.Cut(id, "@")
	if !ok || network == "" {
		return cache.Instance{}, fmt.Errorf("rpcx key: %q is not <network>@<address>", id)
	}
	host, port, err := watcher.ParseHostPort(addr)
	if err != nil {
		return cache.Instance{}, fmt.Errorf("rpcx key: %w", err)
	}
	q, err := url.ParseQuery(strings.TrimSpace(string(value)))
	if err != nil {
		return cache.Instance{}, fmt.Errorf("rpcx metadata: %w", err)
	}
	if q.Get("state") == "inactive" {
		return cache.Instance{}, watcher.ErrRemoved
	}
	in := watcher.NewInstance(service, id, host, port)
	for k, vs := range q {
		v := strings.Join(vs, ",")
		switch k {
		case "weight":
			w, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return cache.Instance{}, fmt.Errorf("rpcx metadata: weight %q is not 0 to 65535", v)
			}
			in.Weight = uint16(w)
		case "group":
			if v != "" {
				in.Tags = append(in.Tags, v)
			}
		case "state":
		default:
			if in.Meta == nil {
				in.Meta = map[string]string{}
			}
			in.Meta[k] = v
		}
	}
	return in, nil
}
