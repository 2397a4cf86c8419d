package consul

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/discodns/discodns/watcher"
)

// followCatalog follows the service list. When it changes, it lists every
// node's service instances and has the services fetched whose instances
// were added, removed or modified, or whose tags changed.
func (s *session) followCatalog(ctx context.Context, index uint64, services map[string][]string, placement map[instanceKey]instanceState) error {
	index = nextIndex(0, index)
	for {
		next, latest, err := s.c.catalogServices(ctx, index)
		if err != nil {
			return err
		}
		if next == index {
			continue // the wait ended with no change
		}
		current, err := s.c.scanInstances(ctx)
		if err != nil {
			return err
		}
		changed := map[string]struct{}{}
		for name, tags := range latest {
			if old, ok := services[name]; !ok || !slices.Equal(old, tags) {
				changed[name] = struct{}{}
			}
		}
		for name := range services {
			if _, ok := latest[name]; !ok {
				changed[name] = struct{}{}
			}
		}
		for k, st := range current {
			if old, ok := placement[k]; !ok || old != st {
				changed[st.service] = struct{}{}
			}
		}
		for k, st := range placement {
			if _, ok := current[k]; !ok {
				changed[st.service] = struct{}{}
			}
		}
		wanted := s.c.wanted(latest)
		s.mu.Lock()
		s.wanted = wanted
		s.mu.Unlock()
		s.queue.add(true, slices.Collect(maps.Keys(changed))...)
		services, placement = latest, current
		index = nextIndex(index, next)
	}
}

// instanceKey names one service instance in the catalog.
type instanceKey struct{ node, id string }

// instanceState is what the catalog says of an instance: enough to tell
// that it changed.
type instanceState struct {
	service  string
	modified uint64
}

// scanInstances lists every service instance of the datacenter, node by
// node: one request for the nodes and one per node, however many services
// there are.
func (c *Source) scanInstances(ctx context.Context) (map[instanceKey]instanceState, error) {
	if err := c.limiter.Wait(ctx); err != nil {
		return nil, err
	}
	start := time.Now()
	nodes, _, err := c.client.Catalog().Nodes(c.queryOptions(ctx, 0))
	c.agent.request(endpointCatalogNodes, start, err)
	if err != nil {
		return nil, fmt.Errorf("consul catalog nodes: %w", err)
	}
	var mu sync.Mutex
	out := map[instanceKey]instanceState{}
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Node
	}
	err = watcher.ForEach(ctx, names, c.cfg.MaxConnections-2, func(ctx context.Context, node string) error {
		if err := c.limiter.Wait(ctx); err != nil {
			return err
		}
		start := time.Now()
		list, _, err := c.client.Catalog().NodeServiceList(node, c.queryOptions(ctx, 0))
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
		return nil, err
	}
	return out, nil
}

// catalogServices returns the service names and their tags, blocking
// until the index passes index (when not 0).
func (c *Source) catalogServices(ctx context.Context, index uint64) (uint64, map[string][]string, error) {
	if err := c.limiter.Wait(ctx); err != nil {
		return 0, nil, err
	}
	start := time.Now()
	services, meta, err := c.client.Catalog().Services(c.queryOptions(ctx, index))
	err = leaderKnown(meta, err)
	c.agent.request(endpointCatalogServices, start, err)
	if err != nil {
		return 0, nil, fmt.Errorf("consul catalog services: %w", err)
	}
	return meta.LastIndex, services, nil
}
