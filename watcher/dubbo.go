package watcher

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/discodns/discodns/cache"
)

// DubboProviders is the only child of a Dubbo interface node whose
// children are instances; consumers, configurators and routers are not.
const DubboProviders = "providers"

// dubboDefaultWeight is the weight Dubbo gives a provider URL without one
// (org.apache.dubbo.rpc.cluster.Constants.DEFAULT_WEIGHT).
const dubboDefaultWeight = 100

// dubboLeftOut are the provider URL parameters not published as
// metadata: methods lists every method of the interface and can be long.
var dubboLeftOut = map[string]bool{"methods": true}

// DecodeDubbo decodes a Dubbo provider of the interface-level layout that
// Dubbo Java 2.x and 3.x and dubbo-go write to ZooKeeper and etcd:
// <group>/<interface>/providers/<URL-encoded provider URL>. service is the
// interface node; id is the provider node, the provider URL such as
// dubbo://10.0.0.5:20880/org.example.Greeter?application=app&weight=100,
// encoded as java.net.URLEncoder does; value (empty on etcd, anything on
// ZooKeeper) is ignored: everything is in the URL.
//
// The URL's host and port are the instance's; its protocol is also the
// named port of that port (_dubbo._tcp.<svc>, _tri._tcp.<svc>); weight is
// the SRV weight (100 when absent, as Dubbo has it); the other parameters
// but methods become metadata (version, group, application...). A provider
// with disabled=true, or enabled=false without disabled, is out
// (ErrRemoved), as Dubbo's RegistryDirectory.toInvokers has it. The
// instance's ID is the protocol, host and port with a hash of the whole
// URL, unique per provider node.
func DecodeDubbo(service, id string, _ []byte) (cache.Instance, error) {
	node := id[strings.LastIndexByte(id, '/')+1:]
	if len(node) > MaxValueSize {
		return cache.Instance{}, fmt.Errorf("dubbo provider URL of %d bytes is over the limit of %d", len(node), MaxValueSize)
	}
	raw, err := url.QueryUnescape(node)
	if err != nil {
		return cache.Instance{}, fmt.Errorf("dubbo provider node %q: %w", abbrev([]byte(node)), err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return cache.Instance{}, fmt.Errorf("dubbo provider URL: %w", err)
	}
	protocol := cache.Label(u.Scheme)
	if protocol == "" || u.Host == "" {
		return cache.Instance{}, fmt.Errorf("dubbo provider URL %q: want protocol://host:port/interface", abbrev([]byte(raw)))
	}
	host, port, err := ParseHostPort(u.Host)
	if err != nil {
		return cache.Instance{}, fmt.Errorf("dubbo provider URL: %w", err)
	}
	params := u.Query()
	if v, ok := params["disabled"]; ok {
		if v[0] == "true" {
			return cache.Instance{}, ErrRemoved
		}
	} else if params.Get("enabled") == "false" {
		return cache.Instance{}, ErrRemoved
	}
	in := cache.Instance{
		Service:  service,
		ID:       fmt.Sprintf("%s-%s-%08x", protocol, net.JoinHostPort(host, strconv.Itoa(int(port))), hash32(node)),
		Address:  host,
		Port:     port,
		Priority: DefaultPriority,
		Weight:   dubboDefaultWeight,
		Ports:    map[string]uint16{protocol: port},
	}
	if w, ok := params["weight"]; ok {
		n, err := strconv.ParseUint(w[0], 10, 16)
		if err != nil {
			return cache.Instance{}, fmt.Errorf("dubbo provider URL: weight %q is not a number from 0 to 65535", w[0])
		}
		in.Weight = uint16(n)
	}
	for k, v := range params {
		if dubboLeftOut[k] || k == "" {
			continue
		}
		if in.Meta == nil {
			in.Meta = make(map[string]string, len(params))
		}
		in.Meta[k] = v[0]
	}
	return in, nil
}

// hash32 is a short stable hash of s.
func hash32(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// DubboEndpointsKey is the metadata key under which Dubbo 3's
// application-level registration lists its ports, as a JSON string
// (org.apache.dubbo.registry.client.metadata.ServiceInstanceMetadataUtils
// ENDPOINTS; dubbo-go writes the same key).
const DubboEndpointsKey = "dubbo.endpoints"

// DubboEndpoints decodes a dubbo.endpoints value, such as
// [{"port":20882,"protocol":"dubbo"},{"port":50051,"protocol":"tri"}],
// into named ports: each protocol's label to its port.
func DubboEndpoints(value string) (map[string]uint16, error) {
	var eps []struct {
		Port     int    `json:"port"`
		Protocol string `json:"protocol"`
	}
	if err := json.Unmarshal([]byte(value), &eps); err != nil {
		return nil, fmt.Errorf("%s: want a JSON list of {port, protocol}: %w", DubboEndpointsKey, err)
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("%s: empty list", DubboEndpointsKey)
	}
	ports := make(map[string]uint16, len(eps))
	for _, ep := range eps {
		name := cache.Label(ep.Protocol)
		if name == "" {
			return nil, fmt.Errorf("%s: protocol %q is not a DNS label", DubboEndpointsKey, ep.Protocol)
		}
		if ep.Port < 1 || ep.Port > 65535 {
			return nil, fmt.Errorf("%s: port %d of %s out of range 1-65535", DubboEndpointsKey, ep.Port, ep.Protocol)
		}
		ports[name] = uint16(ep.Port)
	}
	return ports, nil
}
