package consul

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// work fetches queued services until ctx ends: an urgent one (a change)
// from the agent's view of it, a background one (the resync) from the
// servers, to repair anything the views missed.
func (s *session) work(ctx context.Context) {
	for {
		name, urgent, ok := s.queue.next(ctx)
		if !ok {
			return
		}
		var entries []*api.ServiceEntry
		var err error
		if urgent {
			_, entries, err = s.c.cachedService(ctx, name, 0)
		} else {
			entries, err = s.c.healthService(ctx, name)
		}
		if err != nil {
			s.queue.done(name)
			if ctx.Err() != nil {
				return
			}
			// Try again shortly; a lasting outage ends the session through
			// the blocking queries.
			s.c.log.Debug("consul fetch failed; retrying", "service", name, "err", err)
			s.queue.add(urgent, name)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		s.apply(name, entries, true)
		s.queue.done(name)
	}
}

// workQueue holds the services waiting to be fetched, urgent ones first;
// a service is never handed to two workers at once.
type workQueue struct {
	mu         sync.Mutex
	urgent     map[string]struct{}
	background map[string]struct{}
	inflight   map[string]struct{}
	wake       chan struct{}
}

func newWorkQueue() *workQueue {
	return &workQueue{
		urgent:     map[string]struct{}{},
		background: map[string]struct{}{},
		inflight:   map[string]struct{}{},
		wake:       make(chan struct{}, 1),
	}
}

// add queues names; urgent ones are fetched before any background one.
func (q *workQueue) add(urgent bool, names ...string) {
	if len(names) == 0 {
		return
	}
	q.mu.Lock()
	for _, n := range names {
		if urgent {
			q.urgent[n] = struct{}{}
			delete(q.background, n)
		} else if _, ok := q.urgent[n]; !ok {
			q.background[n] = struct{}{}
		}
	}
	q.mu.Unlock()
	q.signal()
}

func (q *workQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// next waits for a service to fetch; ok is false when ctx ended.
func (q *workQueue) next(ctx context.Context) (name string, urgent, ok bool) {
	for {
		q.mu.Lock()
		name, urgent, ok = q.take(q.urgent, true)
		if !ok {
			name, urgent, ok = q.take(q.background, false)
		}
		// Names held by a watch stay queued: wake another worker whenever
		// any is left, and let it find out.
		more := len(q.urgent)+len(q.background) > 0
		q.mu.Unlock()
		if ok {
			if more {
				q.signal() // let another worker take the next one
			}
			return name, urgent, true
		}
		select {
		case <-ctx.Done():
			return "", false, false
		case <-q.wake:
		}
	}
}

func (q *workQueue) take(from map[string]struct{}, urgent bool) (string, bool, bool) {
	for n := range from {
		if _, busy := q.inflight[n]; busy {
			continue
		}
		delete(from, n)
		q.inflight[n] = struct{}{}
		return n, urgent, true
	}
	return "", false, false
}

// hold waits until no worker fetches name, then keeps every worker from
// fetching it until done(name): a watch owns the service meanwhile, so that
// an older fetch is never written after a newer answer. Names queued while
// held wait; done hands them to the workers. It returns false when ctx
// ended first.
func (q *workQueue) hold(ctx context.Context, name string) bool {
	for {
		q.mu.Lock()
		_, busy := q.inflight[name]
		if !busy {
			q.inflight[name] = struct{}{}
		}
		q.mu.Unlock()
		if !busy {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// done releases name after a fetch.
func (q *workQueue) done(name string) {
	q.mu.Lock()
	delete(q.inflight, name)
	q.mu.Unlock()
	q.signal()
}
