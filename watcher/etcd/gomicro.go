package etcd

import (
	"errors"
	"fmt"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// gomicroService is go-micro's registry.Service as its etcd registry stores
// it (encode in v4/registry/etcd/etcd.go of github.com/go-micro/plugins:
// json.Marshal of a Service holding the one node the key is for).
// Endpoints, which can be large, are not decoded.
type gomicroService struct {
	Name     string            `json:"name"`
	Version  string            `json:"version"`
	Metadata map[string]string `json:"metadata"`
	Nodes    []struct {
		ID       string            `json:"id"`
		Address  string            `json:"address"`
		Metadata map[string]string `json:"metadata"`
	} `json:"nodes"`
}

// gomicroMaxValue bounds a go-micro value: its endpoints describe every
// handler's request and response types and can be far larger than other
// layouts' values, though etcd itself refuses a request over 1.5 MiB.
const gomicroMaxValue = 2 << 20

// DecodeGoMicro decodes the gomicro layout, key
// /micro/registry/<service>/<node id>, value a registry.Service JSON whose
// one node gives the address (host:port). version and the service's and
// the node's metadata (the node's winning) become metadata. A value
// without a node with an address is an error.
func DecodeGoMicro(service, id string, value []byte) (cache.Instance, error) {
	var s gomicroService
	if err := watcher.DecodeObject(value, &s, "go-micro service"); err != nil {
		return cache.Instance{}, err
	}
	if len(s.Nodes) == 0 {
		return cache.Instance{}, errors.New("go-micro service: no nodes")
	}
	node := s.Nodes[0]
	host, port, err := watcher.ParseHostPort(node.Address)
	if err != nil {
		return cache.Instance{}, fmt.Errorf("go-micro node %q: %w", node.ID, err)
	}
	in := watcher.NewInstance(service, id, host, port)
	if n := len(s.Metadata) + len(node.Metadata); n > 0 || s.Version != "" {
		in.Meta = make(map[string]string, n+1)
		for k, v := range s.Metadata {
			in.Meta[k] = v
		}
		for k, v := range node.Metadata {
			in.Meta[k] = v
		}
		if s.Version != "" {
			in.Meta["version"] = s.Version
		}
	}
	return in, nil
}
