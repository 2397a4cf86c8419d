package consul

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/discodns/discodns/watcher"
)

// instanceKey names one service instance in the catalog.
type instanceKey struct{ node, id string }

// instanceState is what the catalog says of an instance: enough to tell
// that it changed.
type instanceState struct {
	service  string
	modified uint64
}

// placement is every service instance of the datacenter as a node scan saw
// it; nil when there is none to compare with.
type placement map[instanceKey]instanceState

// changed adds to names the services whose instances differ between p and
// next: added, removed or modified.
func (p placement) changed(next placement, names map[string]struct{}) {
	for k, st := range next {
		if old, ok := p[k]; !ok || old != st {
			names[st.service] = struct{}{}
			if ok {
				names[old.service] = struct{}{} // the id may have moved to another service
			}
		}
	}
	for k, st := range p {
		if _, ok := next[k]; !ok {
			names[st.service] = struct{}{}
		}
	}
}

// Ways a change of the service list finds the unwatched services it
// changed, the lookup label of discodns_watcher_consul_catalog_changes_total.
const (
	lookupNone     = "none"       // every service is watched: nothing to find
	lookupNodeScan = "node_scan"  // the services each node holds: 1 + nodes requests to the servers
	lookupSweep    = "view_sweep" // every unwatched service from the agent's views
)

// lookup returns how to find which of the unwatched services (unwatched of
// them) a change of the service list changed, with nodes the nodes known
// to hold an instance and server whether the agent is a Consul server.
//
// A sweep reads every unwatched service from the agent's views: one
// request to the agent each, none to the servers (a view, once read,
// follows its service's events). A node scan lists each node's services
// (1 + nodes requests, however many services) and has only the changed
// ones read. From a client agent the scan's requests reach the servers,
// from every discodns of a fleet at each change: 1 + nodes per host, what
// this source exists to avoid (BenchmarkFleetConsulAgents: 107 server
// requests and 210 KB per discodns per change with 100 nodes, against 1.3
// and 1.65 KB for the sweep, whose first reads subscribe the agent to each
// unwatched service once). So a client agent always sweeps. On a server
// agent both stay on that server, and the way with fewer requests is
// taken: with few services past the watch bound the sweep; with many
// services on few nodes the scan (2,000 services on 4 nodes: a sweep of
// the views takes 1.1 s, the scan 0.12 s; see BenchmarkConsulViewSweep).
func lookup(unwatched, nodes int, server bool) string {
	switch {
	case unwatched == 0:
		return lookupNone
	case server && unwatched > nodes+1:
		return lookupNodeScan
	default:
		return lookupSweep
	}
}

// scanInstances, on a server agent (its callers ask only there), lists
// the nodes of the datacenter and, when lookup says a node scan is the
// cheaper way to find changes in unwatched services, every service
// instance, node by node: one request for the nodes and one per node,
// however many services there are. It returns the instances (nil when it
// did not scan) and the number of nodes.
func (c *Source) scanInstances(ctx context.Context, unwatched int) (placement, int, error) {
	if err := c.limiter.Wait(ctx); err != nil {
		return nil, 0, err
	}
	start := time.Now()
	nodes, meta, err := c.client.Catalog().Nodes(c.queryOptions(ctx, 0))
	err = leaderKnown(meta, err)
	c.agent.request(endpointCatalogNodes, start, err)
	if err != nil {
		return nil, 0, fmt.Errorf("consul catalog nodes: %w", err)
	}
	if lookup(unwatched, len(nodes), true) != lookupNodeScan {
		return nil, len(nodes), nil
	}
	var mu sync.Mutex
	out := placement{}
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Node
	}
	err = watcher.ForEach(ctx, names, c.cfg.MaxConnections-2, func(ctx context.Context, node string) error {
		if err := c.limiter.Wait(ctx); err != nil {
			return err
		}
		start := time.Now()
		list, meta, err := c.client.Catalog().NodeServiceList(node, c.queryOptions(ctx, 0))
		err = leaderKnown(meta, err)
		c.agent.request(endpointCatalogNodeServices, start, err)
		if err != nil {
			return fmt.Errorf("consul catalog node services %s: %w", node, err)
		}
		if list == nil {
			return nil // the node left meanwhile
		}
		mu.Lock()
		defer mu.Unlock()
		for _, svc := range list.Services {
			out[instanceKey{node, svc.ID}] = instanceState{service: svc.Service, modified: svc.ModifyIndex}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return out, len(nodes), nil
}
