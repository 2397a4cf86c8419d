package watcher

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/discodns/discodns/cache"
)

// kratosInstance is a Kratos registry.ServiceInstance as its etcd and
// ZooKeeper registries store it (contrib/registry/etcd and
// contrib/registry/zookeeper of github.com/go-kratos/kratos, JSON of
// registry/registry.go).
type kratosInstance struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Version   string            `json:"version"`
	Metadata  map[string]string `json:"metadata"`
	Endpoints []string          `json:"endpoints"`
}

// DecodeKratos decodes a Kratos service instance, stored by Kratos at
// <namespace>/<name>/<id> (namespace "/microservices" by default) on etcd
// and on ZooKeeper: a JSON object with id, name, version, metadata and
// endpoints, URLs such as "grpc://10.0.0.5:9000?isSecure=false".
//
// The name in the JSON is the service; one that is not the key's service
// is refused, since a deletion finds the instance by its key. Each
// endpoint's scheme is a named port ("grpc", "http", "grpcs", "https"),
// the first usable endpoint gives the address and the main port, and
// endpoints that give no host and port are skipped; none usable is an
// error. version and metadata become metadata.
func DecodeKratos(service, id string, value []byte) (cache.Instance, error) {
	var ki kratosInstance
	if err := DecodeObject(value, &ki, "kratos instance"); err != nil {
		return cache.Instance{}, err
	}
	if ki.Name != "" && ki.Name != service {
		return cache.Instance{}, fmt.Errorf("kratos instance: name %q is not the key's service %q", ki.Name, service)
	}
	in := NewInstance(service, id, "", 0)
	var errs []error
	for _, raw := range ki.Endpoints {
		scheme, host, port, err := parseEndpoint(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if in.Address == "" {
			in.Address, in.Port = host, port
		}
		if in.Ports == nil {
			in.Ports = map[string]uint16{}
		}
		if _, ok := in.Ports[scheme]; !ok {
			in.Ports[scheme] = port
		}
	}
	if in.Address == "" {
		return cache.Instance{}, fmt.Errorf("kratos instance: no usable endpoint in %q: %w", ki.Endpoints, errors.Join(errs...))
	}
	if ki.Version != "" || len(ki.Metadata) > 0 {
		in.Meta = make(map[string]string, len(ki.Metadata)+1)
		for k, v := range ki.Metadata {
			in.Meta[k] = v
		}
		if ki.Version != "" {
			in.Meta["version"] = ki.Version
		}
	}
	return in, nil
}

// parseEndpoint splits an endpoint URL "scheme://host:port?..." into its
// scheme, as a DNS label, and its host and port.
func parseEndpoint(raw string) (scheme, host string, port uint16, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", 0, fmt.Errorf("endpoint %q: %w", raw, err)
	}
	scheme = cache.Label(u.Scheme)
	if scheme == "" {
		return "", "", 0, fmt.Errorf("endpoint %q: no scheme", raw)
	}
	host, port, err = ParseHostPort(u.Host)
	if err != nil {
		return "", "", 0, fmt.Errorf("endpoint %q: %w", raw, err)
	}
	return scheme, host, port, nil
}
