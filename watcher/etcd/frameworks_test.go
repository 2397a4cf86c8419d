package etcd

import (
	"errors"
	"strings"
	"testing"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/internal/watchertest"
)

func def(addr string, port uint16) cache.Instance {
	return cache.Instance{Address: addr, Port: port, Priority: 1, Weight: 1}
}

// TestDecodeGoZero: go-zero's core/discov/publisher.go puts the bare
// listen address (zrpc/internal/rpcpubserver.go publishes ListenOn) under
// <Etcd.Key>/<lease ID> (makeEtcdKey in core/discov/clients.go).
func TestDecodeGoZero(t *testing.T) {
	watchertest.RunDecodeCases(t, DecodeGoZero, []watchertest.DecodeCase{
		{Name: "listen address", ID: "7587861827262480132", Value: "10.0.0.5:8080", Want: def("10.0.0.5", 8080)},
		{Name: "ipv6", ID: "1", Value: "[2001:db8::5]:8080", Want: def("2001:db8::5", 8080)},
		{Name: "host name", ID: "1", Value: "hello-1.internal:8080\n", Want: def("hello-1.internal", 8080)},
		{Name: "no port", ID: "1", Value: "10.0.0.5", WantErr: true},
		{Name: "unspecified", ID: "1", Value: "0.0.0.0:8080", WantErr: true},
		{Name: "json", ID: "1", Value: `{"addr":"10.0.0.5:8080"}`, WantErr: true},
		{Name: "empty", ID: "1", Value: "", WantErr: true},
	})
}

func TestGoZeroSplitter(t *testing.T) {
	for _, tc := range []struct {
		prefix, key, service, id string
		err                      error // nil, errOtherKey, or errMalformed for another error
	}{
		{"", "hello.rpc/7587861827262480132", "hello.rpc", "7587861827262480132", nil},
		{"", "/rpc/user/12", "/rpc/user", "12", nil},
		{"", "/services/web/10.0.0.5:8080", "", "", errOtherKey},
		{"", "hello.rpc", "", "", errOtherKey},
		{"", "/12", "", "", errOtherKey},
		{"hello.rpc/", "hello.rpc/42", "hello.rpc", "42", nil},
		{"hello.rpc/", "hello.rpc2/42", "", "", errOtherKey},
		{"rpc/", "rpc/user/42", "rpc/user", "42", nil},
		{"hello.rpc/", "hello.rpc/abc", "", "", errMalformed},
	} {
		service, id, err := GoZeroSplitter(tc.prefix)(tc.key)
		switch {
		case tc.err == nil && err != nil, tc.err == errOtherKey && !errors.Is(err, errOtherKey),
			tc.err == errMalformed && (err == nil || errors.Is(err, errOtherKey)):
			t.Errorf("prefix %q key %q: err %v, want %v", tc.prefix, tc.key, err, tc.err)
		case service != tc.service || id != tc.id:
			t.Errorf("prefix %q key %q: %q %q, want %q %q", tc.prefix, tc.key, service, id, tc.service, tc.id)
		}
	}
}

// errMalformed stands for an error other than errOtherKey in the splitter
// tables.
var errMalformed = errors.New("malformed")

// TestDecodeGoMicro decodes encode's output in v4/registry/etcd/etcd.go of
// github.com/go-micro/plugins: a registry.Service with the key's one node.
func TestDecodeGoMicro(t *testing.T) {
	const helloworld = `{"name":"helloworld","version":"latest","metadata":null,` +
		`"endpoints":[{"name":"Helloworld.Call","request":{"name":"CallRequest","type":"CallRequest","values":[{"name":"name","type":"string","values":null}]},"response":{"name":"CallResponse","type":"CallResponse","values":null},"metadata":{}}],` +
		`"nodes":[{"id":"helloworld-6c0e4b0e-2bbf-4f58-8b5b-d1a4b5c3e2a1","address":"10.0.0.5:41677","metadata":{"broker":"http","protocol":"mucp","registry":"etcd","server":"mucp","transport":"http"}}]}`
	watchertest.RunDecodeCases(t, DecodeGoMicro, []watchertest.DecodeCase{
		{Name: "helloworld", ID: "helloworld-6c0e4b0e-2bbf-4f58-8b5b-d1a4b5c3e2a1", Value: helloworld,
			Want: cache.Instance{Address: "10.0.0.5", Port: 41677, Priority: 1, Weight: 1,
				Meta: map[string]string{"version": "latest", "broker": "http", "protocol": "mucp",
					"registry": "etcd", "server": "mucp", "transport": "http"}}},
		{Name: "node metadata wins", ID: "n",
			Value: `{"name":"web","metadata":{"zone":"a","x":"1"},"nodes":[{"id":"n","address":"[2001:db8::1]:80","metadata":{"zone":"b"}}]}`,
			Want: cache.Instance{Address: "2001:db8::1", Port: 80, Priority: 1, Weight: 1,
				Meta: map[string]string{"zone": "b", "x": "1"}}},
		{Name: "no nodes", ID: "n", Value: `{"name":"web","version":"latest","nodes":[]}`, WantErr: true},
		{Name: "null nodes", ID: "n", Value: `{"name":"web","nodes":null}`, WantErr: true},
		{Name: "address without port", ID: "n", Value: `{"name":"web","nodes":[{"id":"n","address":"10.0.0.5"}]}`, WantErr: true},
		{Name: "truncated", ID: "n", Value: helloworld[:len(helloworld)/2], WantErr: true},
	})
	big := `{"name":"web","endpoints":[` + strings.Repeat(`{"name":"x","metadata":{}},`, 4000) +
		`{"name":"y"}],"nodes":[{"id":"n","address":"10.0.0.5:1"}]}`
	if len(big) <= watcher.MaxValueSize {
		t.Fatalf("test value of %d bytes is not over MaxValueSize", len(big))
	}
	if _, err := watcher.LimitSizeTo(DecodeGoMicro, gomicroMaxValue)("web", "n", []byte(big)); err != nil {
		t.Errorf("a go-micro value with many endpoints: %v", err)
	}
}

// TestDecodeRPCX: rpcx-etcd's serverplugin/etcdv3.go puts the metadata
// given to Register, a URL query, at <base>/<service>/<ServiceAddress>
// (network@host:port); its refresh re-encodes it with url.Values.Encode.
func TestDecodeRPCX(t *testing.T) {
	watchertest.RunDecodeCases(t, DecodeRPCX, []watchertest.DecodeCase{
		{Name: "empty metadata", ID: "tcp@127.0.0.1:8972", Want: def("127.0.0.1", 8972)},
		{Name: "weight and group", ID: "tcp@10.0.0.5:8972", Value: "weight=10&group=test",
			Want: cache.Instance{Address: "10.0.0.5", Port: 8972, Priority: 1, Weight: 10, Tags: []string{"test"}}},
		{Name: "metrics and state", ID: "quic@10.0.0.5:8972", Value: "calls=3.00&connections=1.00&state=active",
			Want: cache.Instance{Address: "10.0.0.5", Port: 8972, Priority: 1, Weight: 1,
				Meta: map[string]string{"calls": "3.00", "connections": "1.00"}}},
		{Name: "unix socket", ID: "unix@/tmp/rpcx.sock", WantErr: true},
		{Name: "no network", ID: "10.0.0.5:8972", WantErr: true},
		{Name: "no port", ID: "tcp@10.0.0.5", WantErr: true},
		{Name: "bad weight", ID: "tcp@10.0.0.5:1", Value: "weight=heavy", WantErr: true},
		{Name: "bad query", ID: "tcp@10.0.0.5:1", Value: "weight=%zz", WantErr: true},
	})
	if _, err := DecodeRPCX("web", "tcp@10.0.0.5:1", []byte("weight=10&state=inactive")); !errors.Is(err, watcher.ErrRemoved) {
		t.Errorf("state=inactive: err = %v, want watcher.ErrRemoved", err)
	}
}

func TestRPCXSplitter(t *testing.T) {
	split := rpcxSplitter("/rpcx/")
	if _, _, err := split("/rpcx/Arith"); !errors.Is(err, errOtherKey) {
		t.Errorf("service marker: err = %v, want errOtherKey", err)
	}
	if s, id, err := split("/rpcx/Arith/tcp@127.0.0.1:8972"); err != nil || s != "Arith" || id != "tcp@127.0.0.1:8972" {
		t.Errorf("instance key: %q %q %v", s, id, err)
	}
	if _, _, err := split("/rpcx//tcp@127.0.0.1:1"); err == nil || errors.Is(err, errOtherKey) {
		t.Errorf("key without a service: err = %v, want a malformed key", err)
	}
}

// TestDecodeKitex decodes instanceInfo of kitex-contrib/registry-etcd
// (common.go; json.Marshal in register, etcd_registry.go).
func TestDecodeKitex(t *testing.T) {
	watchertest.RunDecodeCases(t, DecodeKitex, []watchertest.DecodeCase{
		{Name: "tags", ID: "10.0.0.5:8888", Value: `{"network":"tcp","address":"10.0.0.5:8888","weight":10,"tags":{"k":"v","cluster":"a"}}`,
			Want: cache.Instance{Address: "10.0.0.5", Port: 8888, Priority: 1, Weight: 10,
				Tags: []string{"cluster=a", "k=v"}, Meta: map[string]string{"k": "v", "cluster": "a"}}},
		{Name: "no tags zero weight", ID: "10.0.0.5:8888", Value: `{"network":"tcp","address":"10.0.0.5:8888","weight":0,"tags":null}`,
			Want: def("10.0.0.5", 8888)},
		{Name: "address from key", ID: "10.0.0.6:1", Value: `{"network":"tcp"}`, Want: def("10.0.0.6", 1)},
		{Name: "no port", ID: "10.0.0.5", Value: `{"network":"tcp","address":"10.0.0.5"}`, WantErr: true},
		{Name: "unix", ID: "x", Value: `{"network":"unix","address":"/tmp/k.sock"}`, WantErr: true},
		{Name: "negative weight", ID: "x", Value: `{"address":"10.0.0.5:1","weight":-1}`, WantErr: true},
		{Name: "truncated", ID: "x", Value: `{"network":"tcp","address":"10.0.0.5:88`, WantErr: true},
	})
}
