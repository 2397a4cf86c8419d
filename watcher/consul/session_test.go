package consul

import (
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/discodns/discodns/watcher/internal/watchertest"
)

// TestConsulApplyAtOnce hands the session a fetch in which every instance
// of a service was replaced since the last one (two catalog changes
// between fetches): the service must go from one set to the other without
// an empty moment.
func TestConsulApplyAtOnce(t *testing.T) {
	sink := watchertest.NewEmptyWatch()
	s := (&Source{cfg: Config{Name: "consul"}}).newSession(sink)
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
