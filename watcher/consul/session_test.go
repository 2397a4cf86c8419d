package consul

import (
	"log/slog"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/internal/watchertest"
)

// TestConsulApplyAtOnce hands the session a fetch in which every instance
// of a service was replaced since the last one (two catalog changes
// between fetches): the service must go from one set to the other without
// an empty moment.
func TestConsulApplyAtOnce(t *testing.T) {
	sink := watchertest.NewEmptyWatch()
	s := (&Source{cfg: Config{Name: "consul"}}).newSession(sink, &watcher.DecodeLog{})
	entry := func(id string) *api.ServiceEntry {
		return &api.ServiceEntry{
			Node:    &api.Node{Node: "n1", Address: "10.0.0.9"},
			Service: &api.AgentService{ID: id, Service: "web", Port: 80},
		}
	}
	s.apply("web", []*api.ServiceEntry{entry("web-1")}, true)
	s.apply("web", []*api.ServiceEntry{entry("web-2")}, true)
	if got := sink.Instances("web"); got != "n1/web-2" {
		t.Fatalf("web = %q, want n1/web-2", got)
	}
	if len(sink.Emptied) > 0 {
		t.Errorf("web was served with no instance between two fetches that both had one")
	}
	s.apply("web", nil, true)
	if got := sink.Instances("web"); got != "" {
		t.Errorf("web = %q after a fetch with no instance, want nothing", got)
	}
}

// TestConsulDecodeLog: an instance that does not decode is counted once
// however often its service is fetched, and forgotten when a fetch no
// longer has it failing, so that its next failure is counted again.
func TestConsulDecodeLog(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := watcher.NewMetrics(reg)
	s := (&Source{cfg: Config{Name: "consul"}}).newSession(watchertest.NewEmptyWatch(),
		&watcher.DecodeLog{Source: "consul", Metrics: m, Log: slog.New(slog.DiscardHandler)})
	entry := func(id, addr string) *api.ServiceEntry {
		return &api.ServiceEntry{
			Node:    &api.Node{Node: "n1", Address: "10.0.0.9"},
			Service: &api.AgentService{ID: id, Service: "web", Address: addr, Port: 80},
		}
	}
	errorsCounted := func() float64 {
		return watchertest.Counter(t, reg, "discodns_watcher_decode_errors_total", "source", "consul")
	}
	good, bad := entry("web-1", "10.0.0.1"), entry("web-2", "0.0.0.0")
	for _, step := range []struct {
		entries []*api.ServiceEntry
		want    float64
	}{
		{[]*api.ServiceEntry{good, bad}, 1},
		{[]*api.ServiceEntry{good, bad}, 1}, // fetched again (a resync)
		{[]*api.ServiceEntry{good}, 1},      // deregistered
		{[]*api.ServiceEntry{good, bad}, 2}, // back, bad again
	} {
		s.apply("web", step.entries, true)
		if got := errorsCounted(); got != step.want {
			t.Fatalf("decode errors %v, want %v", got, step.want)
		}
	}
}
