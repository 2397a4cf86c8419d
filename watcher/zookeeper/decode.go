package zookeeper

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// curatorInstance is Apache Curator's ServiceInstance as JSON (also written
// by Spring Cloud Zookeeper and Dubbo 3).
type curatorInstance struct {
	Name    string          `json:"name"`
	ID      string          `json:"id"`
	Address string          `json:"address"`
	Port    *int            `json:"port"`
	SSLPort *int            `json:"sslPort"`
	Enabled *bool           `json:"enabled"`
	Payload json.RawMessage `json:"payload"`
}

// DecodeCurator decodes a Curator ServiceInstance. id is the node name; the
// instance's id comes from the JSON when set. enabled=false returns
// watcher.ErrRemoved (a missing enabled means true). sslPort becomes the named port
// "tls"; payload.metadata (an object of strings, as Spring Cloud writes it)
// becomes the metadata. Two metadata keys say more: instance_status
// OUT_OF_SERVICE (Spring Cloud Zookeeper) returns watcher.ErrRemoved, and
// dubbo.endpoints (Dubbo 3 application level) gives named ports, one per
// protocol (see watcher.DubboEndpoints).
func DecodeCurator(service, id string, value []byte) (cache.Instance, error) {
	var ci curatorInstance
	if err := watcher.DecodeObject(value, &ci, "curator instance"); err != nil {
		return cache.Instance{}, err
	}
	if ci.Enabled != nil && !*ci.Enabled {
		return cache.Instance{}, watcher.ErrRemoved
	}
	if ci.Address == "" {
		return cache.Instance{}, errors.New("curator instance: no address")
	}
	host, err := watcher.ParseHost(ci.Address)
	if err != nil {
		return cache.Instance{}, fmt.Errorf("curator instance: %w", err)
	}
	in := cache.Instance{
		Service:  service,
		ID:       id,
		Address:  host,
		Priority: watcher.DefaultPriority,
		Weight:   watcher.DefaultWeight,
	}
	if ci.ID != "" {
		in.ID = ci.ID
	}
	if ci.Port == nil && ci.SSLPort == nil {
		return cache.Instance{}, errors.New("curator instance: neither port nor sslPort")
	}
	if ci.Port != nil {
		if in.Port, err = portNumber("port", *ci.Port); err != nil {
			return cache.Instance{}, err
		}
	}
	if ci.SSLPort != nil {
		tls, err := portNumber("sslPort", *ci.SSLPort)
		if err != nil {
			return cache.Instance{}, err
		}
		in.Ports = map[string]uint16{"tls": tls}
		if ci.Port == nil {
			in.Port = tls
		}
	}
	if len(ci.Payload) > 0 && !watcher.IsNull(ci.Payload) {
		var payload struct {
			Metadata map[string]string `json:"metadata"`
		}
		// A payload of another shape is the registrant's own business.
		if json.Unmarshal(ci.Payload, &payload) == nil && len(payload.Metadata) > 0 {
			in.Meta = payload.Metadata
		}
	}
	if strings.EqualFold(in.Meta[instanceStatusKey], statusOutOfService) {
		return cache.Instance{}, watcher.ErrRemoved
	}
	if eps, ok := in.Meta[watcher.DubboEndpointsKey]; ok {
		ports, err := watcher.DubboEndpoints(eps)
		if err != nil {
			return cache.Instance{}, fmt.Errorf("curator instance: %w", err)
		}
		for name, p := range ports {
			if in.Ports == nil {
				in.Ports = map[string]uint16{}
			}
			in.Ports[name] = p
		}
	}
	return in, nil
}

// Spring Cloud Zookeeper's instance status, in payload.metadata
// (org.springframework.cloud.zookeeper.support.StatusConstants): an
// instance set OUT_OF_SERVICE through the service-registry endpoint is out.
const (
	instanceStatusKey  = "instance_status"
	statusOutOfService = "OUT_OF_SERVICE"
)

// serversetMember is a Finagle/Aurora serverset member node.
type serversetMember struct {
	ServiceEndpoint     *serversetEndpoint           `json:"serviceEndpoint"`
	AdditionalEndpoints map[string]serversetEndpoint `json:"additionalEndpoints"`
	Status              string                       `json:"status"`
	Shard               *int                         `json:"shard"`
}

type serversetEndpoint struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// IsServersetMember reports whether a serverset child node is an instance.
func IsServersetMember(node string) bool { return strings.HasPrefix(node, "member_") }

// DecodeServerset decodes a serverset member. Only status ALIVE serves
// (others return watcher.ErrRemoved); additionalEndpoints become named ports, and
// shard becomes the metadata key "shard".
func DecodeServerset(service, id string, value []byte) (cache.Instance, error) {
	var m serversetMember
	if err := watcher.DecodeObject(value, &m, "serverset member"); err != nil {
		return cache.Instance{}, err
	}
	if m.ServiceEndpoint == nil || m.ServiceEndpoint.Host == "" {
		return cache.Instance{}, errors.New("serverset member: no serviceEndpoint")
	}
	if m.Status != "ALIVE" {
		return cache.Instance{}, watcher.ErrRemoved
	}
	port, err := portNumber("serviceEndpoint.port", m.ServiceEndpoint.Port)
	if err != nil {
		return cache.Instance{}, err
	}
	host, err := watcher.ParseHost(m.ServiceEndpoint.Host)
	if err != nil {
		return cache.Instance{}, fmt.Errorf("serverset member: serviceEndpoint: %w", err)
	}
	in := watcher.NewInstance(service, id, host, port)
	for name, ep := range m.AdditionalEndpoints {
		label := cache.Label(name)
		if label == "" {
			return cache.Instance{}, fmt.Errorf("serverset member: endpoint name %q is not a DNS label", name)
		}
		p, err := portNumber("additionalEndpoints."+name+".port", ep.Port)
		if err != nil {
			return cache.Instance{}, err
		}
		if in.Ports == nil {
			in.Ports = map[string]uint16{}
		}
		in.Ports[label] = p
	}
	if m.Shard != nil {
		in.Meta = map[string]string{"shard": fmt.Sprint(*m.Shard)}
	}
	return in, nil
}

// portNumber checks that p is a TCP/UDP port.
func portNumber(field string, p int) (uint16, error) {
	if p < 1 || p > 65535 {
		return 0, fmt.Errorf("%s %d out of range 1-65535", field, p)
	}
	return uint16(p), nil
}
