package watcher_test

import (
	"testing"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/internal/watchertest"
)

// TestDecodeKratos decodes what Kratos's etcd and ZooKeeper registries
// store: json.Marshal of registry.ServiceInstance (registry/registry.go of
// github.com/go-kratos/kratos; contrib/registry/etcd/service.go and
// contrib/registry/zookeeper/service.go), with endpoints as its transports
// build them ("grpc://host:port?isSecure=false" in older releases,
// "grpcs"/"https" with TLS).
func TestDecodeKratos(t *testing.T) {
	full := cache.Instance{Address: "10.0.0.5", Port: 8000, Priority: 1, Weight: 1,
		Ports: map[string]uint16{"http": 8000, "grpc": 9000},
		Meta:  map[string]string{"version": "v1.0.0", "zone": "a"}}
	watchertest.RunDecodeCases(t, watcher.DecodeKratos, []watchertest.DecodeCase{
		{Name: "helloworld", ID: "b1f2",
			Value: `{"id":"b1f2","name":"web","version":"v1.0.0","metadata":{"zone":"a"},"endpoints":["http://10.0.0.5:8000","grpc://10.0.0.5:9000"]}`,
			Want:  full},
		{Name: "isSecure query", ID: "b1f2",
			Value: `{"id":"b1f2","name":"web","version":"","metadata":null,"endpoints":["grpc://10.0.0.5:9000?isSecure=false"]}`,
			Want: cache.Instance{Address: "10.0.0.5", Port: 9000, Priority: 1, Weight: 1,
				Ports: map[string]uint16{"grpc": 9000}}},
		{Name: "tls schemes", ID: "x",
			Value: `{"name":"web","endpoints":["grpcs://[2001:db8::1]:9443","https://[2001:db8::1]:8443"]}`,
			Want: cache.Instance{Address: "2001:db8::1", Port: 9443, Priority: 1, Weight: 1,
				Ports: map[string]uint16{"grpcs": 9443, "https": 8443}}},
		{Name: "unusable endpoint skipped", ID: "x",
			Value: `{"name":"web","endpoints":["grpc://10.0.0.5","http://10.0.0.5:8000"]}`,
			Want: cache.Instance{Address: "10.0.0.5", Port: 8000, Priority: 1, Weight: 1,
				Ports: map[string]uint16{"http": 8000}}},
		{Name: "no name uses the key", ID: "x", Value: `{"endpoints":["grpc://10.0.0.5:9000"]}`,
			Want: cache.Instance{Address: "10.0.0.5", Port: 9000, Priority: 1, Weight: 1,
				Ports: map[string]uint16{"grpc": 9000}}},
		{Name: "truncated json", ID: "x", Value: `{"id":"x","name":"web","endpoints":["grpc://10.0.0.5:9`, WantErr: true},
		{Name: "no endpoints", ID: "x", Value: `{"name":"web","endpoints":[]}`, WantErr: true},
		{Name: "no usable endpoint", ID: "x", Value: `{"name":"web","endpoints":["grpc://10.0.0.5","http://0.0.0.0:80","::"]}`, WantErr: true},
		{Name: "another service's name", ID: "x", Value: `{"name":"web-admin","endpoints":["grpc://10.0.0.5:9000"]}`, WantErr: true},
		{Name: "not an object", ID: "x", Value: `10.0.0.5:9000`, WantErr: true},
	})
}
