package consul

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/discodns/discodns/watcher"
)

// watches follows services one blocking query each, up to a bound: the
// connections that max_connections leaves after the two blocking queries
// on the catalog and the health checks and one for the workers. Each is a
// blocking /v1/health/service/<name> on the agent's materialized view of
// the service (see cachedService), so a change costs the servers one event
// pushed to each agent that follows the service, whatever the number of
// nodes and services. Services past the bound are unwatched: the workers
// fetch them from the same views when the catalog or their checks change.
type watches struct {
	max     int
	mu      sync.Mutex // held by plan and stop for their duration
	running map[string]*watch
}

// watch is one running per-service blocking query.
type watch struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// plan watches the first of wanted (sorted) up to the bound and stops the
// other watches, each stopped one before it returns, so that a worker may
// fetch the service at once. With fresh, every watch starts again from a
// read of the servers (the resync). It returns the services left
// unwatched.
func (s *session) plan(ctx context.Context, wanted []string, fresh bool) (unwatched []string) {
	s.watches.mu.Lock()
	defer s.watches.mu.Unlock()
	keep := wanted[:min(len(wanted), s.watches.max)]
	kept := make(map[string]struct{}, len(keep))
	for _, name := range keep {
		kept[name] = struct{}{}
	}
	for name, w := range s.watches.running {
		if _, ok := kept[name]; fresh || !ok {
			w.cancel()
			<-w.done
			delete(s.watches.running, name)
		}
	}
	for _, name := range keep {
		if _, ok := s.watches.running[name]; ok {
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		w := &watch{cancel: cancel, done: make(chan struct{})}
		s.watches.running[name] = w
		go func() {
			defer close(w.done)
			s.watch(wctx, name, fresh)
		}()
	}
	unwatched = wanted[len(keep):]
	s.mu.Lock()
	s.watched = kept
	s.unwatchedCount = len(unwatched)
	s.mu.Unlock()
	if len(unwatched) > 0 {
		select {
		case s.unwatchedWake <- struct{}{}:
		default:
		}
	}
	s.c.agent.watching(len(keep), len(unwatched))
	return unwatched
}

// stopWatches stops every watch and waits for them.
func (s *session) stopWatches() {
	s.watches.mu.Lock()
	defer s.watches.mu.Unlock()
	for name, w := range s.watches.running {
		w.cancel()
		<-w.done
		delete(s.watches.running, name)
	}
	s.c.agent.watching(0, 0)
}

// anyUnwatched reports whether the last plan left a service unwatched.
func (s *session) anyUnwatched() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unwatchedCount > 0
}

// unwatched returns the names no watch follows.
func (s *session) unwatched(names []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool {
		_, ok := s.watched[n]
		return ok
	})
}

// watch follows service until ctx ends: a read of the agent's view (of the
// servers with fresh; never a blocking query on index 0), then blocking
// queries on the view from its index, each answer replacing the service at
// once. An error is retried after a backoff from a read of the view: an
// outage of the agent ends the session through the catalog and health
// queries.
func (s *session) watch(ctx context.Context, service string, fresh bool) {
	if !s.queue.hold(ctx, service) {
		return
	}
	defer s.queue.done(service)
	bo := watcher.NewBackoff(watcher.MinBackoff, watcher.MaxBackoff)
	var index uint64
	for {
		var next uint64
		var entries []*api.ServiceEntry
		var err error
		if fresh {
			next, entries, err = s.c.serviceHealth(ctx, service, s.c.queryOptions(ctx, 0), endpointHealthService)
		} else {
			next, entries, err = s.c.cachedService(ctx, service, index)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.c.log.Debug("consul watch failed; retrying", "service", service, "err", err)
			if !bo.Wait(ctx) {
				return
			}
			index, fresh = 0, false
			continue
		}
		bo.Reset()
		fresh = false
		if index == 0 || next != index {
			s.apply(service, entries, true)
		}
		index = nextIndex(index, next)
	}
}

// settle is how long after a change the unwatched services it queued are
// fetched again: an agent's view follows the servers' events a moment
// behind the catalog query that saw the change.
const settle = time.Second
