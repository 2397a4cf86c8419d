package etcd

import (
	"fmt"
	"slices"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// kitexInstance is the instanceInfo of github.com/kitex-contrib/registry-etcd
// (common.go), stored at kitex/registry-etcd/<service>/<host:port>
// (serviceKey in common.go, register in etcd_registry.go).
type kitexInstance struct {
	Network string            `json:"network"`
	Address string            `json:"address"`
	Weight  int               `json:"weight"`
	Tags    map[string]string `json:"tags"`
}

// DecodeKitex decodes the kitex layout: network (tcp; unix has no port
// and is an error), address host:port (the key's id when empty), weight
// (0 to 65535; 0 means the default) and tags, which become key=value tags
// and metadata.
func DecodeKitex(service, id string, value []byte) (cache.Instance, error) {
	var ki kitexInstance
	if err := watcher.DecodeObject(value, &ki, "kitex instance"); err != nil {
		return cache.Instance{}, err
	}
	addr := ki.Address
	if addr == "" {
		addr = id
	}
	host, port, err := watcher.ParseHostPort(addr)
	if err != nil {
		return cache.Instance{}, fmt.Errorf("kitex instance (network %q): %w", ki.Network, err)
	}
	if ki.Weight < 0 || ki.Weight > 65535 {
		return cache.Instance{}, fmt.Errorf("kitex instance: weight %d is not 0 to 65535", ki.Weight)
	}
	in := watcher.NewInstance(service, id, host, port)
	if ki.Weight > 0 {
		in.Weight = uint16(ki.Weight)
	}
	if len(ki.Tags) > 0 {
		in.Meta = make(map[string]string, len(ki.Tags))
		for k, v := range ki.Tags {
			in.Tags = append(in.Tags, k+"="+v)
			in.Meta[k] = v
		}
		slices.Sort(in.Tags)
	}
	return in, nil
}
