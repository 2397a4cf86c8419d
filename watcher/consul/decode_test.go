package consul

import (
	"testing"

	"github.com/hashicorp/consul/api"
)

func TestConsulDecode(t *testing.T) {
	c := &Source{cfg: Config{IncludeWarning: true}}
	entry := func(status, addr string, port int, weights api.AgentWeights) *api.ServiceEntry {
		return &api.ServiceEntry{
			Node:    &api.Node{Node: "n1", Address: "10.0.0.9"},
			Service: &api.AgentService{ID: "web-1", Service: "web", Address: addr, Port: port, Weights: weights, Tags: []string{"blue"}},
			Checks:  api.HealthChecks{{Status: status}},
		}
	}
	for _, tc := range []struct {
		name    string
		e       *api.ServiceEntry
		served  bool
		address string
		weight  uint16
		err     bool
	}{
		{"passing", entry(api.HealthPassing, "10.0.0.1", 80, api.AgentWeights{Passing: 7, Warning: 2}), true, "10.0.0.1", 7, false},
		{"warning weight", entry(api.HealthWarning, "10.0.0.1", 80, api.AgentWeights{Passing: 7, Warning: 2}), true, "10.0.0.1", 2, false},
		{"no weights", entry(api.HealthPassing, "10.0.0.1", 80, api.AgentWeights{}), true, "10.0.0.1", 1, false},
		{"critical", entry(api.HealthCritical, "10.0.0.1", 80, api.AgentWeights{}), false, "", 0, false},
		{"maintenance", entry(api.HealthMaint, "10.0.0.1", 80, api.AgentWeights{}), false, "", 0, false},
		{"node address", entry(api.HealthPassing, "", 80, api.AgentWeights{}), true, "10.0.0.9", 1, false},
		{"ipv6", entry(api.HealthPassing, "2001:db8::1", 80, api.AgentWeights{}), true, "2001:db8::1", 1, false},
		{"bracketed ipv6", entry(api.HealthPassing, "[2001:db8::1]", 80, api.AgentWeights{}), true, "2001:db8::1", 1, false},
		{"ipv4-mapped", entry(api.HealthPassing, "::ffff:10.7.0.1", 80, api.AgentWeights{}), true, "10.7.0.1", 1, false},
		{"unspecified", entry(api.HealthPassing, "0.0.0.0", 80, api.AgentWeights{}), false, "", 0, true},
		{"multicast node address", entry(api.HealthPassing, "", 80, api.AgentWeights{}), false, "", 0, true},
		{"bad host", entry(api.HealthPassing, "web_1!", 80, api.AgentWeights{}), false, "", 0, true},
		{"port out of range", entry(api.HealthPassing, "10.0.0.1", 70000, api.AgentWeights{}), false, "", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "multicast node address" {
				tc.e.Node.Address = "ff02::1"
			}
			in, ok, err := c.decode(tc.e)
			if (err != nil) != tc.err || ok != tc.served {
				t.Fatalf("served %v err %v, want served %v err %v", ok, err, tc.served, tc.err)
			}
			if ok && (in.Address != tc.address || in.Weight != tc.weight || in.ID != "n1/web-1" || in.Service != "web") {
				t.Errorf("instance %+v, want address %s weight %d", in, tc.address, tc.weight)
			}
		})
	}
	e := entry(api.HealthPassing, "10.0.0.1", 80, api.AgentWeights{})
	e.Node.Meta = map[string]string{"zone": "eu-west-1a"}
	if in, _, _ := c.decode(e); in.NodeMeta["zone"] != "eu-west-1a" || in.Meta["zone"] != "" {
		t.Errorf("node meta %v, meta %v: want the node's zone in NodeMeta alone", in.NodeMeta, in.Meta)
	}
	c.cfg.IncludeWarning = false
	if _, ok, _ := c.decode(entry(api.HealthWarning, "10.0.0.1", 80, api.AgentWeights{})); ok {
		t.Error("warning served with include_warning off")
	}
	c.cfg.Tags = []string{"green"}
	if _, ok, _ := c.decode(entry(api.HealthPassing, "10.0.0.1", 80, api.AgentWeights{})); ok {
		t.Error("instance without a wanted tag served")
	}
}
