package test

import (
	"bytes"
	"compress/zlib"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/test/registries"
)

// goMicroTag is a tag as go-micro's Consul registry writes it
// (github.com/go-micro/plugins v4/registry/consul, encoding.go encode):
// prefix, then the hex of the zlib-compressed data.
func goMicroTag(prefix, data string) string {
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	w.Write([]byte(data))
	w.Close()
	return prefix + hex.EncodeToString(b.Bytes())
}

// TestConsulFrameworks registers with a real Consul agent exactly what
// the Kratos and go-micro Consul registrars send, and asks dig:
//
//   - Kratos (github.com/go-kratos/kratos contrib/registry/consul,
//     client.go Register): one TaggedAddresses entry per endpoint under its
//     scheme, holding the endpoint URL; Address and Port the first
//     endpoint's; the tag version=<version>; a TTL check "service:<id>"
//     (its TCP checks of the endpoints are left out: the addresses are
//     not reachable here). Each endpoint answers _<scheme>._tcp.<svc>.
//   - go-micro (github.com/go-micro/plugins v4/registry/consul, consul.go
//     Register): the tags t-<hex> per metadata entry, e-<hex> per endpoint
//     and v-<hex> for the version; Meta the node metadata. No encoded tag
//     answers as a tag name, and the version is in the instance's TXT.
func TestConsulFrameworks(t *testing.T) {
	need(t, "dig")
	agent := registries.StartConsul(t)
	client := consulClient(t, agent)
	register := func(r *api.AgentServiceRegistration) {
		t.Helper()
		if err := client.Agent().ServiceRegister(r); err != nil {
			t.Fatal(err)
		}
	}
	register(&api.AgentServiceRegistration{
		ID: "6b1f0f4e-kratos-1", Name: "helloworld", Meta: map[string]string{"zone": "a"},
		Tags: []string{"version=v1.0.0"},
		TaggedAddresses: map[string]api.ServiceAddress{
			"http": {Address: "http://10.0.0.5:8000", Port: 8000},
			"grpc": {Address: "grpc://10.0.0.5:9000", Port: 9000},
		},
		Address: "10.0.0.5", Port: 8000,
		Checks: api.AgentServiceChecks{{CheckID: "service:6b1f0f4e-kratos-1", TTL: "10m", Status: api.HealthPassing}},
	})
	microTags := []string{
		goMicroTag("t-", `{"protocol":"grpc"}`),
		goMicroTag("e-", `{"name":"Greeter.Hello","request":{"name":"Request","type":"Request"},"response":{"name":"Response","type":"Response"},"metadata":{}}`),
		goMicroTag("v-", "latest"),
	}
	register(&api.AgentServiceRegistration{
		ID: "greeter-2f9c6c1e", Name: "greeter", Tags: microTags, Port: 9090, Address: "10.0.0.6",
		Meta:  map[string]string{"protocol": "grpc"},
		Check: &api.AgentServiceCheck{CheckID: "greeter-2f9c6c1e", TTL: "10m", Status: api.HealthPassing},
	})
	d := startDiscodns(t, consulConfig(agent.Addr(), ""))
	d.waitInstances("helloworld.svc.internal.", 1)
	d.waitInstances("greeter.svc.internal.", 1)

	for _, tc := range []struct{ name, want string }{
		{"_grpc._tcp.helloworld.svc.internal.", "9000"},
		{"_http._tcp.helloworld.svc.internal.", "8000"},
		{"helloworld.svc.internal.", "8000"},
	} {
		r, err := dig(t, d.dns, "SRV", tc.name)
		if err != nil {
			t.Fatal(err)
		}
		var ports []string
		for _, rr := range r.answer {
			if srv, ok := rr.(*dns.SRV); ok {
				ports = append(ports, fmt.Sprint(srv.Port))
			}
		}
		if r.status != "NOERROR" || !slices.Equal(ports, []string{tc.want}) || len(r.additional) == 0 {
			t.Errorf("SRV %s: %s ports %v, want %s with its address:\n%s", tc.name, r.status, ports, tc.want, r.raw)
		}
	}

	for _, tag := range microTags {
		label := cache.Label(tag)
		queries := []struct{ qtype, name string }{{"A", label + ".greeter.svc.internal."}}
		if len(label) < 63 { // "_" and the label must fit one label
			queries = append(queries, struct{ qtype, name string }{"SRV", "_greeter._" + label + ".svc.internal."})
		}
		for _, q := range queries {
			r, err := dig(t, d.dns, q.qtype, q.name)
			if err != nil {
				t.Fatal(err)
			}
			if r.status != "NXDOMAIN" {
				t.Errorf("go-micro's encoded tag answers: %s %s: %s\n%s", q.qtype, q.name, r.status, r.raw)
			}
		}
	}
	r, err := dig(t, d.dns, "SRV", "greeter.svc.internal.")
	if err != nil || len(r.answer) != 1 {
		t.Fatalf("SRV greeter: %v %v", r, err)
	}
	target := r.answer[0].(*dns.SRV).Target
	eventually(t, 10*time.Second, "the go-micro version in TXT", func() error {
		r, err := dig(t, d.dns, "TXT", target)
		if err != nil {
			return err
		}
		if len(r.answer) != 1 || !strings.Contains(r.answer[0].String(), `"version=latest"`) {
			return fmt.Errorf("TXT %s: %s", target, r.raw)
		}
		return nil
	})
}
