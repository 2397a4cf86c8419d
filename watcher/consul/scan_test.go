package consul

import (
	"maps"
	"slices"
	"testing"
)

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		unwatched, nodes int
		server           bool
		want             string
	}{
		{0, 100, true, lookupNone},
		{0, 0, true, lookupNone},
		{0, 100, false, lookupNone},
		{3, 100, true, lookupSweep},      // a sweep of 3 views beats 101 requests
		{101, 100, true, lookupSweep},    // as many requests: the sweep costs the servers none
		{102, 100, true, lookupNodeScan}, // fewer requests, all the server's own
		{1995, 4, true, lookupNodeScan},
		{1, 0, true, lookupSweep},
		// From a client agent the scan's requests reach the servers.
		{102, 100, false, lookupSweep},
		{1995, 4, false, lookupSweep},
	} {
		if got := lookup(tc.unwatched, tc.nodes, tc.server); got != tc.want {
			t.Errorf("lookup(%d unwatched, %d nodes, server %v) = %s, want %s", tc.unwatched, tc.nodes, tc.server, got, tc.want)
		}
	}
}

func TestPlacementChanged(t *testing.T) {
	base := placement{
		{"n1", "web-1"}: {"web", 10},
		{"n2", "web-2"}: {"web", 11},
		{"n1", "db-1"}:  {"db", 12},
		{"n2", "api-1"}: {"api", 13},
	}
	with := func(edit func(p placement)) placement {
		p := maps.Clone(base)
		edit(p)
		return p
	}
	for _, tc := range []struct {
		name string
		next placement
		want []string
	}{
		{"same", maps.Clone(base), nil},
		{"added", with(func(p placement) { p[instanceKey{"n3", "web-3"}] = instanceState{"web", 20} }), []string{"web"}},
		{"removed", with(func(p placement) { delete(p, instanceKey{"n1", "db-1"}) }), []string{"db"}},
		{"modified", with(func(p placement) { p[instanceKey{"n2", "api-1"}] = instanceState{"api", 21} }), []string{"api"}},
		{"renamed", with(func(p placement) { p[instanceKey{"n2", "api-1"}] = instanceState{"apiv2", 22} }), []string{"api", "apiv2"}},
		{"two", with(func(p placement) {
			delete(p, instanceKey{"n1", "web-1"})
			p[instanceKey{"n1", "cache-1"}] = instanceState{"cache", 23}
		}), []string{"cache", "web"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			names := map[string]struct{}{}
			base.changed(tc.next, names)
			if got := slices.Sorted(maps.Keys(names)); !slices.Equal(got, tc.want) {
				t.Errorf("changed %v, want %v", got, tc.want)
			}
		})
	}
}
