package watcher

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/test/registries"
)

func TestNextIndex(t *testing.T) {
	for _, tc := range []struct{ prev, index, want uint64 }{
		{0, 0, 1},   // never block on 0
		{5, 9, 9},   // moved on
		{9, 9, 9},   // no change
		{9, 5, 0},   // went backwards: start over
		{0, 42, 42}, // first answer
	} {
		if got := nextIndex(tc.prev, tc.index); got != tc.want {
			t.Errorf("nextIndex(%d, %d) = %d, want %d", tc.prev, tc.index, got, tc.want)
		}
	}
}

func TestWorkQueue(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q := newWorkQueue()
	q.add(false, "a", "b")
	q.add(true, "c")
	q.add(false, "c") // already urgent: stays urgent
	name, urgent, ok := q.next(ctx)
	if !ok || name != "c" || !urgent {
		t.Fatalf("first = %q %v %v, want the urgent c", name, urgent, ok)
	}
	// c is in flight: queued again, it is not handed out twice.
	q.add(true, "c")
	seen := map[string]bool{}
	for range 2 {
		name, _, _ := q.next(ctx)
		seen[name] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Fatalf("got %v while c was in flight, want a and b", seen)
	}
	q.done("c")
	if name, urgent, _ := q.next(ctx); name != "c" || !urgent {
		t.Fatalf("after done: %q %v, want c again", name, urgent)
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if name, _, ok := q.next(short); ok {
		t.Fatalf("empty queue handed out %q", name)
	}
}

func TestConsulDecode(t *testing.T) {
	c := &Consul{cfg: ConsulConfig{IncludeWarning: true}}
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
		{"port out of range", entry(api.HealthPassing, "10.0.0.1", 70000, api.AgentWeights{}), false, "", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, ok, err := c.decode(tc.e)
			if (err != nil) != tc.err || ok != tc.served {
				t.Fatalf("served %v err %v, want served %v err %v", ok, err, tc.served, tc.err)
			}
			if ok && (in.Address != tc.address || in.Weight != tc.weight || in.ID != "n1/web-1" || in.Service != "web") {
				t.Errorf("instance %+v, want address %s weight %d", in, tc.address, tc.weight)
			}
		})
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

// consulHarness is a Consul source on a real dev agent.
type consulHarness struct {
	*harness
	agent  *registries.Consul
	client *api.Client
}

func newConsulHarness(t *testing.T, cfg ConsulConfig) *consulHarness {
	t.Helper()
	agent := registries.StartConsul(t)
	cfg.Name = "consul"
	cfg.Address = agent.Addr()
	if cfg.Wait == 0 {
		cfg.Wait = 5 * time.Second
	}
	h := newSourceHarness(t, cfg.Name, func(m *Metrics, log *slog.Logger) (Source, error) {
		return NewConsul(cfg, m, log)
	})
	client, err := api.NewClient(&api.Config{Address: agent.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	return &consulHarness{harness: h, agent: agent, client: client}
}

// register registers an agent service with a TTL check in status.
func (h *consulHarness) register(id, name, addr string, port int, status string, mod func(*api.AgentServiceRegistration)) {
	h.t.Helper()
	reg := &api.AgentServiceRegistration{
		ID: id, Name: name, Address: addr, Port: port,
		Check: &api.AgentServiceCheck{CheckID: "check-" + id, TTL: "10m", Status: status},
	}
	if mod != nil {
		mod(reg)
	}
	if err := h.client.Agent().ServiceRegister(reg); err != nil {
		h.t.Fatalf("register %s: %v", id, err)
	}
}

func (h *consulHarness) setStatus(id, status string) {
	h.t.Helper()
	if err := h.client.Agent().UpdateTTL("check-"+id, "set by the test", status); err != nil {
		h.t.Fatalf("update check of %s: %v", id, err)
	}
}

func TestConsulSource(t *testing.T) {
	h := newConsulHarness(t, ConsulConfig{IncludeWarning: true})
	h.register("web-1", "web", "10.0.0.1", 8080, api.HealthPassing, func(r *api.AgentServiceRegistration) {
		r.Tags = []string{"blue", "v1"}
		r.Meta = map[string]string{"version": "1.2"}
		r.Weights = &api.AgentWeights{Passing: 5, Warning: 2}
	})
	h.register("web-2", "web", "10.0.0.2", 8080, api.HealthPassing, nil)
	h.register("web-3", "web", "", 9090, api.HealthPassing, nil) // the node's address
	h.register("db-1", "db", "2001:db8::7", 5432, api.HealthCritical, nil)
	h.run()
	h.waitState(cache.StateConnected)
	h.waitEndpoints("web", "dev/web-1=10.0.0.1:8080", "dev/web-2=10.0.0.2:8080", "dev/web-3=127.0.0.1:9090")
	h.waitEndpoints("db") // critical from the start

	in, _ := h.instance("web", "dev/web-1")
	if in.Weight != 5 || len(in.Tags) != 2 || in.Meta["version"] != "1.2" {
		t.Errorf("web-1 = %+v, want weight 5, two tags and meta", in)
	}

	// Health: critical removes, passing restores, warning stays (weight
	// Warning), maintenance removes.
	h.setStatus("web-2", api.HealthCritical)
	h.waitEndpoints("web", "dev/web-1=10.0.0.1:8080", "dev/web-3=127.0.0.1:9090")
	h.setStatus("web-2", api.HealthPassing)
	h.setStatus("db-1", api.HealthPassing)
	h.waitEndpoints("web", "dev/web-1=10.0.0.1:8080", "dev/web-2=10.0.0.2:8080", "dev/web-3=127.0.0.1:9090")
	h.waitEndpoints("db", "dev/db-1=2001:db8::7:5432")
	h.setStatus("web-1", api.HealthWarning)
	h.waitFor("web-1 at its warning weight", func() bool {
		in, ok := h.instance("web", "dev/web-1")
		return ok && in.Weight == 2
	}, func() string { in, _ := h.instance("web", "dev/web-1"); return fmt.Sprint(in) })
	if err := h.client.Agent().EnableServiceMaintenance("web-1", "test"); err != nil {
		t.Fatal(err)
	}
	h.waitEndpoints("web", "dev/web-2=10.0.0.2:8080", "dev/web-3=127.0.0.1:9090")
	if err := h.client.Agent().DisableServiceMaintenance("web-1"); err != nil {
		t.Fatal(err)
	}
	h.waitEndpoints("web", "dev/web-1=10.0.0.1:8080", "dev/web-2=10.0.0.2:8080", "dev/web-3=127.0.0.1:9090")

	// Registration changes without a check changing: a new port, a new
	// service, a deregistration.
	h.register("web-3", "web", "", 9191, api.HealthPassing, nil)
	h.waitEndpoints("web", "dev/web-1=10.0.0.1:8080", "dev/web-2=10.0.0.2:8080", "dev/web-3=127.0.0.1:9191")
	h.register("cache-1", "cache", "10.0.2.1", 6379, api.HealthPassing, nil)
	h.waitEndpoints("cache", "dev/cache-1=10.0.2.1:6379")
	if err := h.client.Agent().ServiceDeregister("web-3"); err != nil {
		t.Fatal(err)
	}
	h.waitEndpoints("web", "dev/web-1=10.0.0.1:8080", "dev/web-2=10.0.0.2:8080")
	if err := h.client.Agent().ServiceDeregister("cache-1"); err != nil {
		t.Fatal(err)
	}
	h.waitEndpoints("cache")
	if h.events(OpPut) == 0 || h.events(OpDelete) == 0 {
		t.Errorf("events put %v delete %v, want both counted", h.events(OpPut), h.events(OpDelete))
	}
}

func TestConsulWarningExcluded(t *testing.T) {
	h := newConsulHarness(t, ConsulConfig{IncludeWarning: false})
	h.register("web-1", "web", "10.0.0.1", 80, api.HealthPassing, nil)
	h.register("web-2", "web", "10.0.0.2", 80, api.HealthWarning, nil)
	h.run()
	h.waitEndpoints("web", "dev/web-1=10.0.0.1:80")
	h.setStatus("web-1", api.HealthWarning)
	h.waitEndpoints("web")
	h.setStatus("web-2", api.HealthPassing)
	h.waitEndpoints("web", "dev/web-2=10.0.0.2:80")
}

func TestConsulTagFilter(t *testing.T) {
	h := newConsulHarness(t, ConsulConfig{IncludeWarning: true, Tags: []string{"dns"}})
	h.register("web-1", "web", "10.0.0.1", 80, api.HealthPassing, func(r *api.AgentServiceRegistration) { r.Tags = []string{"dns"} })
	h.register("web-2", "web", "10.0.0.2", 80, api.HealthPassing, nil)
	h.register("db-1", "db", "10.0.1.1", 5432, api.HealthPassing, nil)
	h.run()
	h.waitEndpoints("web", "dev/web-1=10.0.0.1:80")
	h.register("db-1", "db", "10.0.1.1", 5432, api.HealthPassing, func(r *api.AgentServiceRegistration) { r.Tags = []string{"dns"} })
	h.waitEndpoints("db", "dev/db-1=10.0.1.1:5432")
	if got := h.endpoints("consul"); got != nil {
		t.Errorf("consul itself has no dns tag but is served: %v", got)
	}
}

// TestConsulRestart restarts the (in-memory) dev agent: the source is stale
// meanwhile with its last instances, then converges to exactly the new
// agent's content.
func TestConsulRestart(t *testing.T) {
	h := newConsulHarness(t, ConsulConfig{IncludeWarning: true})
	h.register("web-1", "web", "10.0.0.1", 80, api.HealthPassing, nil)
	h.register("db-1", "db", "10.0.1.1", 5432, api.HealthPassing, nil)
	h.run()
	h.waitEndpoints("web", "dev/web-1=10.0.0.1:80")
	h.waitEndpoints("db", "dev/db-1=10.0.1.1:5432")

	h.agent.Stop()
	h.waitState(cache.StateStale)
	if got := h.endpoints("web"); len(got) != 1 {
		t.Fatalf("while the agent is down: %v, want the last known instance", got)
	}
	h.agent.Start()
	h.register("web-2", "web", "10.0.0.2", 80, api.HealthPassing, nil)
	h.register("cache-1", "cache", "10.0.2.1", 6379, api.HealthPassing, nil)
	h.waitState(cache.StateConnected)
	h.waitEndpoints("web", "dev/web-2=10.0.0.2:80")
	h.waitEndpoints("cache", "dev/cache-1=10.0.2.1:6379")
	h.waitEndpoints("db")
	if h.relists(ReasonReconnect) == 0 || h.registryErrors() == 0 {
		t.Errorf("reconnect relists %v, errors %v: want both counted", h.relists(ReasonReconnect), h.registryErrors())
	}
}

// TestConsulNodeCheck fails a node-level check: every instance on the node
// goes, and comes back when it passes.
func TestConsulNodeCheck(t *testing.T) {
	h := newConsulHarness(t, ConsulConfig{IncludeWarning: true})
	h.register("web-1", "web", "10.0.0.1", 80, api.HealthPassing, nil)
	h.register("db-1", "db", "10.0.1.1", 5432, api.HealthPassing, nil)
	err := h.client.Agent().CheckRegister(&api.AgentCheckRegistration{
		ID: "node-disk", Name: "disk", AgentServiceCheck: api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.run()
	h.waitEndpoints("web", "dev/web-1=10.0.0.1:80")
	if err := h.client.Agent().UpdateTTL("node-disk", "full", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	h.waitEndpoints("web")
	h.waitEndpoints("db")
	if err := h.client.Agent().UpdateTTL("node-disk", "ok", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	h.waitEndpoints("web", "dev/web-1=10.0.0.1:80")
	h.waitEndpoints("db", "dev/db-1=10.0.1.1:5432")
}
