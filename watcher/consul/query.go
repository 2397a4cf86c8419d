package consul

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"
)

// leaderReads marks a context whose reads are consistent: the list that
// starts a session. A server that has just restarted can answer stale (and
// default) reads from a catalog that has not replayed its log yet (seen
// empty in the soak); a consistent read waits until the leader has.
type leaderReads struct{}

func (c *Source) queryOptions(ctx context.Context, index uint64) *api.QueryOptions {
	consistent := ctx.Value(leaderReads{}) != nil
	q := &api.QueryOptions{AllowStale: !consistent, RequireConsistent: consistent, WaitIndex: index}
	if index > 0 {
		q.WaitTime = c.cfg.Wait
	}
	return q.WithContext(ctx)
}

// healthService returns every instance of service with its checks.
func (c *Source) healthService(ctx context.Context, service string) ([]*api.ServiceEntry, error) {
	if err := c.limiter.Wait(ctx); err != nil {
		return nil, err
	}
	start := time.Now()
	entries, meta, err := c.client.Health().Service(service, "", false, c.queryOptions(ctx, 0))
	err = leaderKnown(meta, err)
	c.agent.request(endpointHealthService, start, err)
	if err != nil {
		return nil, fmt.Errorf("consul health service %s: %w", service, err)
	}
	return entries, nil
}

// nextIndex applies Consul's rules for blocking query indexes: start over
// when the index goes backwards, and never block on 0.
func nextIndex(prev, index uint64) uint64 {
	if index < prev {
		return 0
	}
	return max(index, 1)
}

// errNoLeader is returned for a stale read from a server that knows no
// leader: it may be a server that restarted and has not caught up with the
// catalog yet, so its answer could lack services that exist.
var errNoLeader = errors.New("the Consul server answering knows no leader; its catalog may be behind")

// leaderKnown turns a stale read without a known leader into errNoLeader.
func leaderKnown(meta *api.QueryMeta, err error) error {
	if err == nil && meta != nil && !meta.KnownLeader {
		return errNoLeader
	}
	return err
}
