package consul

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/config"
	"github.com/discodns/discodns/test/registries"
	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/internal/watchertest"
)

// consulHarness is a Consul source on a real dev agent.
type consulHarness struct {
	*watchertest.Harness
	agent  *registries.Consul
	client *api.Client
}

func newConsulHarness(t *testing.T, cfg Config) *consulHarness {
	t.Helper()
	agent := registries.StartConsul(t)
	cfg.Name = "consul"
	cfg.Address = agent.Addr()
	if cfg.Wait == 0 {
		cfg.Wait = 5 * time.Second
	}
	d := config.DefaultSource(config.TypeConsul)
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = d.MaxConnections
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = d.RateLimit
	}
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = d.ResyncInterval
	}
	h := watchertest.New(t, cfg.Name, func(m *watcher.Metrics, log *slog.Logger) (watcher.Source, error) {
		return New(cfg, m, log)
	})
	client, err := api.NewClient(&api.Config{Address: agent.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	return &consulHarness{Harness: h, agent: agent, client: client}
}

// register registers an agent service with a TTL check in status.
func (h *consulHarness) register(id, name, addr string, port int, status string, mod func(*api.AgentServiceRegistration)) {
	h.T.Helper()
	reg := &api.AgentServiceRegistration{
		ID: id, Name: name, Address: addr, Port: port,
		Check: &api.AgentServiceCheck{CheckID: "check-" + id, TTL: "10m", Status: status},
	}
	if mod != nil {
		mod(reg)
	}
	if err := h.client.Agent().ServiceRegister(reg); err != nil {
		h.T.Fatalf("register %s: %v", id, err)
	}
}

func (h *consulHarness) setStatus(id, status string) {
	h.T.Helper()
	if err := h.client.Agent().UpdateTTL("check-"+id, "set by the test", status); err != nil {
		h.T.Fatalf("update check of %s: %v", id, err)
	}
}

// TestConsulSource follows registrations and checks with every service
// watched (8 connections), one watched and the others not (4), and none
// watched (3).
func TestConsulSource(t *testing.T) {
	for _, conns := range []int{8, 4, 3} {
		t.Run(fmt.Sprintf("max_connections=%d", conns), func(t *testing.T) {
			testConsulSource(t, conns)
		})
	}
}

func testConsulSource(t *testing.T, conns int) {
	h := newConsulHarness(t, Config{IncludeWarning: true, MaxConnections: conns})
	h.register("web-1", "web", "10.0.0.1", 8080, api.HealthPassing, func(r *api.AgentServiceRegistration) {
		r.Tags = []string{"blue", "v1"}
		r.Meta = map[string]string{"version": "1.2"}
		r.Weights = &api.AgentWeights{Passing: 5, Warning: 2}
	})
	h.register("web-2", "web", "10.0.0.2", 8080, api.HealthPassing, nil)
	h.register("web-3", "web", "", 9090, api.HealthPassing, nil) // the node's address
	h.register("db-1", "db", "2001:db8::7", 5432, api.HealthCritical, nil)
	h.Run()
	h.WaitState(cache.StateConnected)
	h.WaitEndpoints("web", "dev/web-1=10.0.0.1:8080", "dev/web-2=10.0.0.2:8080", "dev/web-3=127.0.0.1:9090")
	h.WaitEndpoints("db") // critical from the start

	in, _ := h.Instance("web", "dev/web-1")
	if in.Weight != 5 || len(in.Tags) != 2 || in.Meta["version"] != "1.2" {
		t.Errorf("web-1 = %+v, want weight 5, two tags and meta", in)
	}

	// Health: critical removes, passing restores, warning stays (weight
	// Warning), maintenance removes.
	h.setStatus("web-2", api.HealthCritical)
	h.WaitEndpoints("web", "dev/web-1=10.0.0.1:8080", "dev/web-3=127.0.0.1:9090")
	h.setStatus("web-2", api.HealthPassing)
	h.setStatus("db-1", api.HealthPassing)
	h.WaitEndpoints("web", "dev/web-1=10.0.0.1:8080", "dev/web-2=10.0.0.2:8080", "dev/web-3=127.0.0.1:9090")
	h.WaitEndpoints("db", "dev/db-1=2001:db8::7:5432")
	h.setStatus("web-1", api.HealthWarning)
	h.WaitFor("web-1 at its warning weight", func() bool {
		in, ok := h.Instance("web", "dev/web-1")
		return ok && in.Weight == 2
	}, func() string { in, _ := h.Instance("web", "dev/web-1"); return fmt.Sprint(in) })
	if err := h.client.Agent().EnableServiceMaintenance("web-1", "test"); err != nil {
		t.Fatal(err)
	}
	h.WaitEndpoints("web", "dev/web-2=10.0.0.2:8080", "dev/web-3=127.0.0.1:9090")
	if err := h.client.Agent().DisableServiceMaintenance("web-1"); err != nil {
		t.Fatal(err)
	}
	h.WaitEndpoints("web", "dev/web-1=10.0.0.1:8080", "dev/web-2=10.0.0.2:8080", "dev/web-3=127.0.0.1:9090")

	// Registration changes without a check changing: a new port, a new
	// service, a deregistration.
	h.register("web-3", "web", "", 9191, api.HealthPassing, nil)
	h.WaitEndpoints("web", "dev/web-1=10.0.0.1:8080", "dev/web-2=10.0.0.2:8080", "dev/web-3=127.0.0.1:9191")
	h.register("cache-1", "cache", "10.0.2.1", 6379, api.HealthPassing, nil)
	h.WaitEndpoints("cache", "dev/cache-1=10.0.2.1:6379")
	if err := h.client.Agent().ServiceDeregister("web-3"); err != nil {
		t.Fatal(err)
	}
	h.WaitEndpoints("web", "dev/web-1=10.0.0.1:8080", "dev/web-2=10.0.0.2:8080")
	if err := h.client.Agent().ServiceDeregister("cache-1"); err != nil {
		t.Fatal(err)
	}
	h.WaitEndpoints("cache")
	if h.Events(watcher.OpPut) == 0 || h.Events(watcher.OpDelete) == 0 {
		t.Errorf("events put %v delete %v, want both counted", h.Events(watcher.OpPut), h.Events(watcher.OpDelete))
	}
}

func TestConsulWarningExcluded(t *testing.T) {
	h := newConsulHarness(t, Config{IncludeWarning: false})
	h.register("web-1", "web", "10.0.0.1", 80, api.HealthPassing, nil)
	h.register("web-2", "web", "10.0.0.2", 80, api.HealthWarning, nil)
	h.Run()
	h.WaitEndpoints("web", "dev/web-1=10.0.0.1:80")
	h.setStatus("web-1", api.HealthWarning)
	h.WaitEndpoints("web")
	h.setStatus("web-2", api.HealthPassing)
	h.WaitEndpoints("web", "dev/web-2=10.0.0.2:80")
}

func TestConsulTagFilter(t *testing.T) {
	h := newConsulHarness(t, Config{IncludeWarning: true, Tags: []string{"dns"}})
	h.register("web-1", "web", "10.0.0.1", 80, api.HealthPassing, func(r *api.AgentServiceRegistration) { r.Tags = []string{"dns"} })
	h.register("web-2", "web", "10.0.0.2", 80, api.HealthPassing, nil)
	h.register("db-1", "db", "10.0.1.1", 5432, api.HealthPassing, nil)
	h.Run()
	h.WaitEndpoints("web", "dev/web-1=10.0.0.1:80")
	h.register("db-1", "db", "10.0.1.1", 5432, api.HealthPassing, func(r *api.AgentServiceRegistration) { r.Tags = []string{"dns"} })
	h.WaitEndpoints("db", "dev/db-1=10.0.1.1:5432")
	if got := h.Endpoints("consul"); got != nil {
		t.Errorf("consul itself has no dns tag but is served: %v", got)
	}
}

// TestConsulRestart restarts the (in-memory) dev agent: the source is stale
// meanwhile with its last instances, then converges to exactly the new
// agent's content.
func TestConsulRestart(t *testing.T) {
	h := newConsulHarness(t, Config{IncludeWarning: true})
	h.register("web-1", "web", "10.0.0.1", 80, api.HealthPassing, nil)
	h.register("db-1", "db", "10.0.1.1", 5432, api.HealthPassing, nil)
	h.Run()
	h.WaitEndpoints("web", "dev/web-1=10.0.0.1:80")
	h.WaitEndpoints("db", "dev/db-1=10.0.1.1:5432")

	h.agent.Stop()
	h.WaitState(cache.StateStale)
	if got := h.Endpoints("web"); len(got) != 1 {
		t.Fatalf("while the agent is down: %v, want the last known instance", got)
	}
	h.agent.Start()
	h.register("web-2", "web", "10.0.0.2", 80, api.HealthPassing, nil)
	h.register("cache-1", "cache", "10.0.2.1", 6379, api.HealthPassing, nil)
	h.WaitState(cache.StateConnected)
	h.WaitEndpoints("web", "dev/web-2=10.0.0.2:80")
	h.WaitEndpoints("cache", "dev/cache-1=10.0.2.1:6379")
	h.WaitEndpoints("db")
	if h.Relists(watcher.ReasonReconnect) == 0 || h.RegistryErrors() == 0 {
		t.Errorf("reconnect relists %v, errors %v: want both counted", h.Relists(watcher.ReasonReconnect), h.RegistryErrors())
	}
}

// TestConsulNodeCheck fails a node-level check: every instance on the node
// goes, and comes back when it passes.
func TestConsulNodeCheck(t *testing.T) {
	h := newConsulHarness(t, Config{IncludeWarning: true})
	h.register("web-1", "web", "10.0.0.1", 80, api.HealthPassing, nil)
	h.register("db-1", "db", "10.0.1.1", 5432, api.HealthPassing, nil)
	err := h.client.Agent().CheckRegister(&api.AgentCheckRegistration{
		ID: "node-disk", Name: "disk", AgentServiceCheck: api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Run()
	h.WaitEndpoints("web", "dev/web-1=10.0.0.1:80")
	if err := h.client.Agent().UpdateTTL("node-disk", "full", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	h.WaitEndpoints("web")
	h.WaitEndpoints("db")
	if err := h.client.Agent().UpdateTTL("node-disk", "ok", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	h.WaitEndpoints("web", "dev/web-1=10.0.0.1:80")
	h.WaitEndpoints("db", "dev/db-1=10.0.1.1:5432")
}
