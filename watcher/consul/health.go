package consul

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/hashicorp/consul/api"
)

type checkKey struct{ node, id string }

type checkState struct {
	status, service string
	modified        uint64
}

// followHealth follows the checks that are not passing and has the
// unwatched services whose checks changed status fetched at once. While
// every service is watched it queries nothing (a watch sees its service's
// checks, the node's included, change by itself), so that a check change
// costs the servers no request; when a service is unwatched again, it
// reads the checks without blocking and fetches what changed meanwhile.
func (s *session) followHealth(ctx context.Context, index uint64, checks api.HealthChecks) error {
	prev := indexChecks(checks)
	index = nextIndex(0, index)
	for {
		if !s.anyUnwatched() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-s.unwatchedWake:
				index = 0
				continue
			}
		}
		next, checks, err := s.c.healthState(ctx, index)
		if err != nil {
			return err
		}
		if next == index {
			continue
		}
		cur := indexChecks(checks)
		changed := map[string]struct{}{}
		var nodes []string
		mark := func(node string, st checkState) {
			if st.service != "" {
				changed[st.service] = struct{}{}
			} else {
				nodes = append(nodes, node) // a node check: every service on the node
			}
		}
		for k, st := range cur {
			if old, ok := prev[k]; !ok || old != st {
				mark(k.node, st)
			}
		}
		for k, st := range prev {
			if _, ok := cur[k]; !ok {
				mark(k.node, st)
			}
		}
		s.mu.Lock()
		for _, node := range nodes {
			for svc := range s.nodes[node] {
				changed[svc] = struct{}{}
			}
		}
		s.mu.Unlock()
		names := s.unwatched(slices.Collect(maps.Keys(changed)))
		s.queue.add(true, names...)
		s.settle(ctx, names)
		prev = cur
		index = nextIndex(index, next)
	}
}

func indexChecks(checks api.HealthChecks) map[checkKey]checkState {
	m := make(map[checkKey]checkState, len(checks))
	for _, ch := range checks {
		m[checkKey{ch.Node, ch.CheckID}] = checkState{status: ch.Status, service: ch.ServiceName, modified: ch.ModifyIndex}
	}
	return m
}

// healthState returns every health check that is not passing, blocking
// until the index of the checks passes index (when not 0). Any check
// changing status shows in the difference between two answers (it enters
// or leaves the list, or changes in it), while the answers stay as small
// as the number of unhealthy checks.
func (c *Source) healthState(ctx context.Context, index uint64) (uint64, api.HealthChecks, error) {
	if err := c.limiter.Wait(ctx); err != nil {
		return 0, nil, err
	}
	start := time.Now()
	q := c.queryOptions(ctx, index)
	q.Filter = `Status != "passing"`
	checks, meta, err := c.client.Health().State(api.HealthAny, q)
	err = leaderKnown(meta, err)
	c.agent.request(endpointHealthState, start, err)
	if err != nil {
		return 0, nil, fmt.Errorf("consul health state: %w", err)
	}
	return meta.LastIndex, checks, nil
}
