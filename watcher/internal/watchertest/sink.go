package watchertest

import (
	"maps"
	"slices"
	"strings"

	"github.com/discodns/discodns/cache"
)

// EmptyWatch is a cache.Sink that records every instance set a service
// passes through and reports when one was empty.
type EmptyWatch struct {
	held map[string]map[string]bool // service -> instance IDs
	// Emptied lists the services, in order, each time one was left with
	// no instance.
	Emptied []string
}

// NewEmptyWatch returns an EmptyWatch that holds nothing.
func NewEmptyWatch() *EmptyWatch {
	return &EmptyWatch{held: map[string]map[string]bool{}}
}

// Replace implements cache.Sink.
func (e *EmptyWatch) Replace(_ string, ins []cache.Instance) {
	e.held = map[string]map[string]bool{}
	for _, in := range ins {
		e.Put("", in)
	}
}

// Put implements cache.Sink.
func (e *EmptyWatch) Put(_ string, in cache.Instance) {
	if e.held[in.Service] == nil {
		e.held[in.Service] = map[string]bool{}
	}
	e.held[in.Service][in.ID] = true
}

// Delete implements cache.Sink.
func (e *EmptyWatch) Delete(_, service, id string) {
	delete(e.held[service], id)
	if len(e.held[service]) == 0 {
		e.Emptied = append(e.Emptied, service)
	}
}

// ReplaceService implements cache.Sink.
func (e *EmptyWatch) ReplaceService(_, service string, ins []cache.Instance) {
	had := len(e.held[service]) > 0
	delete(e.held, service)
	for _, in := range ins {
		e.Put("", in)
	}
	if had && len(ins) == 0 {
		e.Emptied = append(e.Emptied, service)
	}
}

// SetState implements cache.Sink.
func (e *EmptyWatch) SetState(string, cache.State, error) {}

// Instances lists the IDs of the instances service holds, sorted and
// joined with commas.
func (e *EmptyWatch) Instances(service string) string {
	return strings.Join(slices.Sorted(maps.Keys(e.held[service])), ",")
}
