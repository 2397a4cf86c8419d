package watcher

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/discodns/discodns/cache"
)

// emptyWatch is a Sink that records every instance set a service passes
// through and reports when one was empty.
type emptyWatch struct {
	held    map[string]map[string]bool // service -> instance IDs
	emptied []string
}

func (e *emptyWatch) Replace(_ string, ins []cache.Instance) {
	e.held = map[string]map[string]bool{}
	for _, in := range ins {
		e.Put("", in)
	}
}

func (e *emptyWatch) Put(_ string, in cache.Instance) {
	if e.held[in.Service] == nil {
		e.held[in.Service] = map[string]bool{}
	}
	e.held[in.Service][in.ID] = true
}

func (e *emptyWatch) Delete(_, service, id string) {
	delete(e.held[service], id)
	if len(e.held[service]) == 0 {
		e.emptied = append(e.emptied, service)
	}
}

func (e *emptyWatch) ReplaceService(_, service string, ins []cache.Instance) {
	had := len(e.held[service]) > 0
	delete(e.held, service)
	for _, in := range ins {
		e.Put("", in)
	}
	if had && len(ins) == 0 {
		e.emptied = append(e.emptied, service)
	}
}

func (e *emptyWatch) SetState(string, cache.State, error) {}

func (e *emptyWatch) instances(service string) string {
	return strings.Join(slices.Sorted(maps.Keys(e.held[service])), ",")
}

// TestConsulApplyAtOnce hands the session a fetch in which every instance
// of a service was replaced since the last one (two catalog changes
// between fetches): the service must go from one set to the other without
// an empty moment.
func TestConsulApplyAtOnce(t *testing.T) {
	sink := &emptyWatch{held: map[string]map[string]bool{}}
	s := (&Consul{cfg: ConsulConfig{Name: "consul"}}).newSession(sink)
	entry := func(id string) *api.ServiceEntry {
		return &api.ServiceEntry{
			Node:    &api.Node{Node: "n1", Address: "10.0.0.9"},
			Service: &api.AgentService{ID: id, Service: "web", Port: 80},
		}
	}
	s.apply("web", []*api.ServiceEntry{entry("web-1")}, true)
	s.apply("web", []*api.ServiceEntry{entry("web-2")}, true)
	if got := sink.instances("web"); got != "n1/web-2" {
		t.Fatalf("web = %q, want n1/web-2", got)
	}
	if len(sink.emptied) > 0 {
		t.Errorf("web was served with no instance between two fetches that both had one")
	}
	s.apply("web", nil, true)
	if got := sink.instances("web"); got != "" {
		t.Errorf("web = %q after a fetch with no instance, want nothing", got)
	}
}
