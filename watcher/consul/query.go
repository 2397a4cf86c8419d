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

// healthService returns every instance of service with its checks, read
// from the servers (a consistent read when ctx asks for one).
func (c *Source) healthService(ctx context.Context, service string) ([]*api.ServiceEntry, error) {
	_, entries, err := c.serviceHealth(ctx, service, c.queryOptions(ctx, 0), endpointHealthService)
	return entries, err
}

// cachedService returns every instance of service with its checks from the
// agent's materialized view of it, blocking until the view's index passes
// index (when not 0). A request with ?cached or an index is what makes an
// agent with the streaming backend (use_streaming_backend, on by default
// since Consul 1.10) answer from a view it keeps up to date from the
// events the servers push, instead of an RPC to the servers: one
// subscription per service on the agent, whatever the number of readers,
// nodes or changes. Such a view knows no leader (it is the agent's), so
// X-Consul-KnownLeader is not asked of it; an agent without the streaming
// backend answers from its cache, which does.
func (c *Source) cachedService(ctx context.Context, service string, index uint64) (uint64, []*api.ServiceEntry, error) {
	q := c.queryOptions(ctx, index)
	q.UseCache = true
	endpoint := endpointHealthServiceCached
	if index > 0 {
		endpoint = endpointHealthServiceWatch
	}
	return c.serviceHealth(ctx, service, q, endpoint)
}

// serviceHealth is one /v1/health/service request, recorded under endpoint.
func (c *Source) serviceHealth(ctx context.Context, service string, q *api.QueryOptions, endpoint string) (uint64, []*api.ServiceEntry, error) {
	if err := c.limiter.Wait(ctx); err != nil {
		return 0, nil, err
	}
	start := time.Now()
	entries, meta, err := c.client.Health().Service(service, "", false, q)
	if meta == nil || meta.QueryBackend != api.QueryBackendStreaming {
		err = leaderKnown(meta, err)
	}
	c.agent.request(endpoint, start, err)
	if err != nil {
		return 0, nil, fmt.Errorf("consul health service %s: %w", service, err)
	}
	return meta.LastIndex, entries, nil
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
