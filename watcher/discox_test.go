package watcher_test

import (
	"errors"
	"testing"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/internal/watchertest"
)

func TestDecodeDiscox(t *testing.T) {
	def := func(addr string, port uint16) cache.Instance {
		return cache.Instance{Address: addr, Port: port, Priority: 1, Weight: 1}
	}
	watchertest.RunDecodeCases(t, watcher.DecodeDiscox, []watchertest.DecodeCase{
		{Name: "empty value", ID: "10.0.0.5:8080", Want: def("10.0.0.5", 8080)},
		{Name: "blank value", ID: "10.0.0.5:8080", Value: " \n", Want: def("10.0.0.5", 8080)},
		{Name: "empty object", ID: "10.0.0.5:8080", Value: "{}", Want: def("10.0.0.5", 8080)},
		{Name: "ipv6", ID: "[2001:db8::1]:9000", Want: def("2001:db8::1", 9000)},
		{Name: "host name", ID: "web-1.example.com:80", Want: def("web-1.example.com", 80)},
		{Name: "single label host", ID: "localhost:80", Want: def("localhost", 80)},
		{Name: "attributes", ID: "10.0.0.5:8080",
			Value: `{"weight":5,"priority":2,"tags":["blue","canary"],"meta":{"version":"1.2"}}`,
			Want: cache.Instance{Address: "10.0.0.5", Port: 8080, Priority: 2, Weight: 5,
				Tags: []string{"blue", "canary"}, Meta: map[string]string{"version": "1.2"}}},
		{Name: "zero weight and priority", ID: "10.0.0.5:8080", Value: `{"weight":0,"priority":0}`,
			Want: cache.Instance{Address: "10.0.0.5", Port: 8080}},
		{Name: "max weight", ID: "10.0.0.5:8080", Value: `{"weight":65535}`,
			Want: cache.Instance{Address: "10.0.0.5", Port: 8080, Priority: 1, Weight: 65535}},
		{Name: "null fields are absent", ID: "10.0.0.5:8080", Value: `{"weight":null,"tags":null,"meta":null}`,
			Want: def("10.0.0.5", 8080)},
		{Name: "unknown fields become metadata", ID: "10.0.0.5:8080",
			Value: `{"zone":"a","shard":3,"tls":true,"extra":{"a": [1, 2]},"none":null,"meta":{"zone":"b"}}`,
			Want: cache.Instance{Address: "10.0.0.5", Port: 8080, Priority: 1, Weight: 1,
				Meta: map[string]string{"zone": "b", "shard": "3", "tls": "true", "extra": `{"a":[1,2]}`}}},
		{Name: "ipv4-mapped ipv6", ID: "[::ffff:10.7.0.1]:80", Want: def("10.7.0.1", 80)},
		{Name: "ipv6 canonical form", ID: "[2001:DB8:0:0::1]:80", Want: def("2001:db8::1", 80)},
		{Name: "host name lowercased", ID: "Web-1.Example.com.:80", Want: def("web-1.example.com", 80)},
		{Name: "id with several elements", ID: "dc1/10.0.0.5:8080", Want: def("10.0.0.5", 8080)},

		{Name: "not json", ID: "10.0.0.5:8080", Value: "weight=5", WantErr: true},
		{Name: "json array", ID: "10.0.0.5:8080", Value: "[1]", WantErr: true},
		{Name: "json null", ID: "10.0.0.5:8080", Value: "null", WantErr: true},
		{Name: "json string", ID: "10.0.0.5:8080", Value: `"x"`, WantErr: true},
		{Name: "truncated json", ID: "10.0.0.5:8080", Value: `{"weight":5`, WantErr: true},
		{Name: "missing port", ID: "10.0.0.5", WantErr: true},
		{Name: "empty port", ID: "10.0.0.5:", WantErr: true},
		{Name: "port zero", ID: "10.0.0.5:0", WantErr: true},
		{Name: "port too big", ID: "10.0.0.5:65536", WantErr: true},
		{Name: "port not a number", ID: "10.0.0.5:http", WantErr: true},
		{Name: "negative port", ID: "10.0.0.5:-1", WantErr: true},
		{Name: "ipv6 without brackets", ID: "2001:db8::1:9000", WantErr: true},
		{Name: "ipv6 with zone", ID: "[fe80::1%eth0]:80", WantErr: true},
		{Name: "empty host", ID: ":80", WantErr: true},
		{Name: "unspecified ipv4", ID: "0.0.0.0:80", WantErr: true},
		{Name: "unspecified ipv6", ID: "[::]:80", WantErr: true},
		{Name: "broadcast", ID: "255.255.255.255:80", WantErr: true},
		{Name: "multicast", ID: "239.1.2.3:80", WantErr: true},
		{Name: "ipv6 link-local", ID: "[fe80::1]:80", WantErr: true},
		{Name: "bad host", ID: "web_1!:80", WantErr: true},
		{Name: "bad ipv4", ID: "10.0.0.256:80", WantErr: true},
		{Name: "weight too big", ID: "10.0.0.5:80", Value: `{"weight":65536}`, WantErr: true},
		{Name: "negative priority", ID: "10.0.0.5:80", Value: `{"priority":-1}`, WantErr: true},
		{Name: "fractional weight", ID: "10.0.0.5:80", Value: `{"weight":1.5}`, WantErr: true},
		{Name: "weight as string", ID: "10.0.0.5:80", Value: `{"weight":"5"}`, WantErr: true},
		{Name: "tags not a list", ID: "10.0.0.5:80", Value: `{"tags":"blue"}`, WantErr: true},
		{Name: "tags not strings", ID: "10.0.0.5:80", Value: `{"tags":[1]}`, WantErr: true},
		{Name: "meta not an object", ID: "10.0.0.5:80", Value: `{"meta":["a"]}`, WantErr: true},
		{Name: "meta values not strings", ID: "10.0.0.5:80", Value: `{"meta":{"a":1}}`, WantErr: true},
		// Relaxed: what Kitex on ZooKeeper and dubbo-go on etcd write.
		// kitex-contrib/registry-zookeeper entity/entity.go RegistryEntity.
		{Name: "kitex zookeeper", ID: "10.0.0.5:8888", Value: `{"Weight":10,"Tags":{"cluster":"a","env":"prod"}}`,
			Want: cache.Instance{Address: "10.0.0.5", Port: 8888, Priority: 1, Weight: 10, Tags: []string{"cluster=a", "env=prod"}}},
		{Name: "kitex zookeeper without tags", ID: "10.0.0.5:8888", Value: `{"Weight":10,"Tags":null}`,
			Want: cache.Instance{Address: "10.0.0.5", Port: 8888, Priority: 1, Weight: 10}},
		{Name: "lower case wins over another spelling", ID: "10.0.0.5:80", Value: `{"Weight":10,"weight":20,"WEIGHT":30}`,
			Want: cache.Instance{Address: "10.0.0.5", Port: 80, Priority: 1, Weight: 20}},
		// dubbo-go registry/servicediscovery DefaultServiceInstance as JSON.
		{Name: "dubbo-go instance", ID: "10.0.0.6:20000",
			Value: `{"ID":"10.0.0.6:20000","ServiceName":"greeter","Host":"10.0.0.6","Port":20000,"Enable":true,"Healthy":true,` +
				`"Metadata":{"dubbo.metadata.revision":"abc","dubbo.endpoints":"[{\"port\":20000,\"protocol\":\"dubbo\"},{\"port\":50051,\"protocol\":\"tri\"}]"}}`,
			Want: cache.Instance{Address: "10.0.0.6", Port: 20000, Priority: 1, Weight: 1,
				Ports: map[string]uint16{"dubbo": 20000, "tri": 50051},
				Meta: map[string]string{"ID": "10.0.0.6:20000", "ServiceName": "greeter", "Host": "10.0.0.6", "Port": "20000",
					"dubbo.metadata.revision": "abc", "dubbo.endpoints": `[{"port":20000,"protocol":"dubbo"},{"port":50051,"protocol":"tri"}]`}}},
		{Name: "tags object not strings", ID: "10.0.0.5:80", Value: `{"Tags":{"a":1}}`, WantErr: true},
		{Name: "enable not a bool", ID: "10.0.0.5:80", Value: `{"Enable":"yes"}`, WantErr: true},
		{Name: "bad dubbo.endpoints", ID: "10.0.0.5:80", Value: `{"Metadata":{"dubbo.endpoints":"[{\"port\":20000"}}`, WantErr: true},
	})
}

// TestDecodeDiscoxOut: dubbo-go's Enable and Healthy false take the
// instance out, which is no error.
func TestDecodeDiscoxOut(t *testing.T) {
	for _, v := range []string{`{"Enable":false,"Healthy":true}`, `{"Enable":true,"Healthy":false}`, `{"enabled":false}`} {
		if _, err := watcher.DecodeDiscox("web", "10.0.0.5:80", []byte(v)); !errors.Is(err, watcher.ErrRemoved) {
			t.Errorf("%s: err %v, want watcher.ErrRemoved", v, err)
		}
	}
}
