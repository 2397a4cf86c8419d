package consul

import (
	"bytes"
	"compress/zlib"
	"encoding/hex"
	"maps"
	"slices"
	"testing"

	"github.com/hashicorp/consul/api"
)

// goMicroEncode is go-micro's encode (v4/registry/consul/encoding.go): the
// hex of the zlib-compressed data.
func goMicroEncode(data string) string {
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	w.Write([]byte(data))
	w.Close()
	return hex.EncodeToString(b.Bytes())
}

func TestNamedPorts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tagged map[string]api.ServiceAddress
		want   map[string]uint16
	}{
		{"kratos endpoints", map[string]api.ServiceAddress{
			"http": {Address: "http://10.0.0.5:8000", Port: 8000},
			"grpc": {Address: "grpc://10.0.0.5:9000", Port: 9000},
		}, map[string]uint16{"http": 8000, "grpc": 9000}},
		{"consul's own keys", map[string]api.ServiceAddress{
			"lan_ipv4": {Address: "10.0.0.5", Port: 8000}, "wan": {Address: "10.0.0.5", Port: 8000},
			"lan": {Address: "lan://10.0.0.5:1", Port: 1}, "virtual": {Address: "240.0.0.1", Port: 8000},
		}, nil},
		{"no URL", map[string]api.ServiceAddress{"grpc": {Address: "10.0.0.5", Port: 9000}}, nil},
		{"scheme is not the key", map[string]api.ServiceAddress{"grpc": {Address: "http://10.0.0.5:9000"}}, nil},
		{"no port", map[string]api.ServiceAddress{"grpc": {Address: "grpc://10.0.0.5"}}, nil},
		{"port 0", map[string]api.ServiceAddress{"grpc": {Address: "grpc://10.0.0.5:0"}}, nil},
		{"port out of range", map[string]api.ServiceAddress{"grpc": {Address: "grpc://10.0.0.5:70000"}}, nil},
		{"another host", map[string]api.ServiceAddress{"grpc": {Address: "grpc://10.0.0.6:9000"}}, nil},
		{"bad URL", map[string]api.ServiceAddress{"grpc": {Address: "grpc://%zz"}}, nil},
		{"scheme case", map[string]api.ServiceAddress{"GRPCS": {Address: "grpcs://10.0.0.5:9443"}}, map[string]uint16{"grpcs": 9443}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := namedPorts("10.0.0.5", tc.tagged); !maps.Equal(got, tc.want) {
				t.Errorf("namedPorts %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSplitTags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tags    []string
		served  []string
		version string
	}{
		{"plain", []string{"blue", "version=v1.0.0"}, []string{"blue", "version=v1.0.0"}, ""},
		{"go-micro", []string{"t-" + goMicroEncode(`{"k":"v"}`), "e-" + goMicroEncode(`{"name":"Say.Hello"}`), "v-" + goMicroEncode("1.2.3"), "blue"},
			[]string{"blue"}, "1.2.3"},
		{"look-alikes stay", []string{"t-shirt", "e-mail", "v-1", "t-abcd", "v-0000"}, []string{"t-shirt", "e-mail", "v-1", "t-abcd", "v-0000"}, ""},
		{"zlib header, bad data", []string{"v-789c00"}, nil, ""},
		{"long version cut", []string{"v-" + goMicroEncode(string(bytes.Repeat([]byte("x"), 1000)))}, nil, string(bytes.Repeat([]byte("x"), maxVersionSize))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			served, version := splitTags(tc.tags)
			if !slices.Equal(served, tc.served) || version != tc.version {
				t.Errorf("splitTags %q %q, want %q %q", served, version, tc.served, tc.version)
			}
		})
	}
}

// TestConsulDecodeFrameworks: a Kratos registration serves its endpoints
// as named ports; a go-micro one serves no encoded tag and its version as
// metadata, which Meta overrides.
func TestConsulDecodeFrameworks(t *testing.T) {
	c := &Source{}
	entry := func(svc *api.AgentService) *api.ServiceEntry {
		return &api.ServiceEntry{Node: &api.Node{Node: "n1", Address: "10.0.0.9"}, Service: svc,
			Checks: api.HealthChecks{{Status: api.HealthPassing}}}
	}
	in, ok, err := c.decode(entry(&api.AgentService{ID: "k1", Service: "helloworld", Address: "10.0.0.5", Port: 8000,
		Tags: []string{"version=v1.0.0"}, TaggedAddresses: map[string]api.ServiceAddress{
			"http": {Address: "http://10.0.0.5:8000", Port: 8000}, "grpc": {Address: "grpc://10.0.0.5:9000", Port: 9000},
			"lan_ipv4": {Address: "10.0.0.5", Port: 8000}}}))
	if err != nil || !ok || !maps.Equal(in.Ports, map[string]uint16{"http": 8000, "grpc": 9000}) || in.Port != 8000 {
		t.Errorf("kratos: %+v %v %v", in, ok, err)
	}
	in, ok, err = c.decode(entry(&api.AgentService{ID: "m1", Service: "greeter", Address: "10.0.0.6", Port: 9090,
		Tags: []string{"t-" + goMicroEncode(`{"a":"b"}`), "v-" + goMicroEncode("latest")}, Meta: map[string]string{"a": "b"}}))
	if err != nil || !ok || len(in.Tags) != 0 || !maps.Equal(in.Meta, map[string]string{"a": "b", "version": "latest"}) {
		t.Errorf("go-micro: %+v %v %v", in, ok, err)
	}
	in, _, _ = c.decode(entry(&api.AgentService{ID: "m2", Service: "greeter", Address: "10.0.0.6", Port: 9090,
		Tags: []string{"v-" + goMicroEncode("latest")}, Meta: map[string]string{"version": "mine"}}))
	if in.Meta["version"] != "mine" {
		t.Errorf("go-micro version over Meta's: %v", in.Meta)
	}
}
