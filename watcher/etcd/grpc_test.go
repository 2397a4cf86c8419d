package etcd

import (
	"errors"
	"testing"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/internal/watchertest"
)

func TestDecodeGRPC(t *testing.T) {
	def := func(addr string, port uint16) cache.Instance {
		return cache.Instance{Address: addr, Port: port, Priority: 1, Weight: 1}
	}
	watchertest.RunDecodeCases(t, DecodeGRPC, []watchertest.DecodeCase{
		{Name: "null metadata", ID: "10.0.0.7:50051", Value: `{"Op":0,"Addr":"10.0.0.7:50051","Metadata":null}`,
			Want: def("10.0.0.7", 50051)},
		{Name: "no op no metadata", ID: "a", Value: `{"Addr":"10.0.0.7:50051"}`, Want: def("10.0.0.7", 50051)},
		{Name: "lowercase fields", ID: "a", Value: `{"op":0,"addr":"10.0.0.7:50051"}`, Want: def("10.0.0.7", 50051)},
		{Name: "ipv6", ID: "a", Value: `{"Op":0,"Addr":"[2001:db8::7]:443"}`, Want: def("2001:db8::7", 443)},
		{Name: "host name", ID: "a", Value: `{"Op":0,"Addr":"greeter.internal:443"}`, Want: def("greeter.internal", 443)},
		{Name: "id with slashes", ID: "zone-a/instance/1", Value: `{"Addr":"10.0.0.7:1"}`, Want: def("10.0.0.7", 1)},
		{Name: "object metadata", ID: "a",
			Value: `{"Op":0,"Addr":"10.0.0.7:50051","Metadata":{"version":"2","weight":10,"labels":{"x":"y"}}}`,
			Want: cache.Instance{Address: "10.0.0.7", Port: 50051, Priority: 1, Weight: 1,
				Meta: map[string]string{"version": "2", "weight": "10", "labels": `{"x":"y"}`}}},
		{Name: "string metadata", ID: "a", Value: `{"Addr":"10.0.0.7:50051","Metadata":"v2"}`,
			Want: cache.Instance{Address: "10.0.0.7", Port: 50051, Priority: 1, Weight: 1,
				Meta: map[string]string{"metadata": "v2"}}},
		{Name: "number metadata", ID: "a", Value: `{"Addr":"10.0.0.7:50051","Metadata":[1, 2]}`,
			Want: cache.Instance{Address: "10.0.0.7", Port: 50051, Priority: 1, Weight: 1,
				Meta: map[string]string{"metadata": "[1,2]"}}},
		{Name: "unknown fields ignored", ID: "a", Value: `{"Addr":"10.0.0.7:50051","Extra":1}`, Want: def("10.0.0.7", 50051)},

		{Name: "ipv4-mapped", ID: "a", Value: `{"Addr":"[::ffff:10.0.0.7]:1"}`, Want: def("10.0.0.7", 1)},
		{Name: "unspecified", ID: "a", Value: `{"Addr":"0.0.0.0:1"}`, WantErr: true},
		{Name: "empty value", ID: "a", Value: "", WantErr: true},
		{Name: "not json", ID: "a", Value: "10.0.0.7:50051", WantErr: true},
		{Name: "json null", ID: "a", Value: "null", WantErr: true},
		{Name: "no addr", ID: "a", Value: `{"Op":0}`, WantErr: true},
		{Name: "addr without port", ID: "a", Value: `{"Addr":"10.0.0.7"}`, WantErr: true},
		{Name: "addr port zero", ID: "a", Value: `{"Addr":"10.0.0.7:0"}`, WantErr: true},
		{Name: "addr bad host", ID: "a", Value: `{"Addr":"-bad-:80"}`, WantErr: true},
		{Name: "unknown op", ID: "a", Value: `{"Op":2,"Addr":"10.0.0.7:1"}`, WantErr: true},
		{Name: "op as string", ID: "a", Value: `{"Op":"0","Addr":"10.0.0.7:1"}`, WantErr: true},
		{Name: "addr as number", ID: "a", Value: `{"Addr":7}`, WantErr: true},
	})

	_, err := DecodeGRPC("web", "a", []byte(`{"Op":1,"Addr":"10.0.0.7:50051"}`))
	if !errors.Is(err, watcher.ErrRemoved) {
		t.Errorf("Op 1: err = %v, want watcher.ErrRemoved", err)
	}
	_, err = DecodeGRPC("web", "a", []byte(`{"Op":1}`))
	if !errors.Is(err, watcher.ErrRemoved) {
		t.Errorf("Op 1 without Addr: err = %v, want watcher.ErrRemoved", err)
	}
}
