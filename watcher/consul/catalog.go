package consul

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// followCatalog follows the service list. When it changes, the watches
// follow the new list (see plan), and the workers fetch the services that
// came, went or changed tags, and every unwatched service: the list does
// not say which service's instances changed, and an unwatched service is
// read from the agent's view of it, which costs the servers nothing. The
// unwatched ones are fetched again a moment later (settle).
func (s *session) followCatalog(ctx context.Context, index uint64, services map[string][]string) error {
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
		s.mu.Unlock()
		unwatched := s.plan(ctx, wanted, false)
		s.queue.add(true, s.unwatched(slices.Collect(maps.Keys(changed)))...)
		s.queue.add(true, unwatched...)
		s.settle(ctx, unwatched)
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
