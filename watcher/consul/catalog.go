package consul

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// followCatalog follows the service list from index, and seen, what the
// last node scan saw (see scanInstances). When the list changes, the watches follow
// the new list (see plan), and the workers fetch, from the agent's views,
// the services that came, went or changed tags, and the unwatched ones
// whose instances changed: the list does not say which, so while some
// service is unwatched, each change finds them the cheaper way (see
// lookup): a node scan compared with the previous one, or a sweep of every
// unwatched service. What is fetched is fetched again a moment later
// (settle): an agent's view follows the servers a moment behind.
func (s *session) followCatalog(ctx context.Context, index uint64, services map[string][]string, seen placement, nodes int) error {
	index = nextIndex(0, index)
	for {
		next, latest, err := s.c.catalogServices(ctx, index)
		if err != nil {
			return err
		}
		if next == index {
			continue // the wait ended with no change
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
		wanted := s.c.wanted(latest)
		s.mu.Lock()
		s.wanted = wanted
		nodes = max(nodes, len(s.nodes))
		s.mu.Unlock()
		unwatched := s.plan(ctx, wanted, false)
		how := lookup(len(unwatched), nodes, s.server)
		if how == lookupNodeScan {
			// After plan: a service it stopped watching changes after its
			// watch ended, so after the previous scan.
			current, n, err := s.c.scanInstances(ctx, len(unwatched))
			if err != nil {
				return err
			}
			nodes = n
			if seen == nil || current == nil {
				how = lookupSweep // nothing to compare with, or more nodes than services
			} else {
				seen.changed(current, changed)
			}
			seen = current
		} else {
			seen = nil
		}
		if how == lookupSweep {
			for _, name := range unwatched {
				changed[name] = struct{}{}
			}
		}
		s.c.agent.catalogChange(how)
		names := s.unwatched(slices.Collect(maps.Keys(changed)))
		s.queue.add(true, names...)
		s.settle(ctx, names)
		services = latest
		index = nextIndex(index, next)
	}
}

// settle queues names again after the settle delay, unless ctx ends first.
func (s *session) settle(ctx context.Context, names []string) {
	if len(names) == 0 {
		return
	}
	time.AfterFunc(settle, func() {
		if ctx.Err() == nil {
			s.queue.add(true, s.unwatched(names)...)
		}
	})
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
