package consul

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// runSession lists everything, then follows changes until an error.
func (c *Source) runSession(ctx context.Context, sink cache.Sink, reason string, bo *watcher.Backoff, outage *watcher.Outage, decodes *watcher.DecodeLog) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := c.newSession(sink, decodes)
	s.watches.max = c.watchBound(ctx)
	s.server = c.agentIsServer(ctx)
	listCtx := context.WithValue(ctx, leaderReads{}, true)
	catalogIndex, services, err := c.catalogServices(listCtx, 0)
	if err != nil {
		return err
	}
	healthIndex, checks, err := c.healthState(listCtx, 0)
	if err != nil {
		return err
	}
	s.wanted = c.wanted(services)
	// Before the list, so that a change after the scan is in the list too
	// and the first change of the service list compares with it.
	var seen placement
	var nodes int
	if unwatched := len(s.wanted) - s.watches.max; unwatched > 0 && s.server {
		if seen, nodes, err = c.scanInstances(listCtx, unwatched); err != nil {
			return err
		}
	}
	if err := s.list(listCtx, s.wanted); err != nil {
		return err
	}
	c.metrics.Relist(c.cfg.Name, reason)
	outage.Recover()
	bo.Reset()
	c.log.Info("consul listed", "services", len(s.instances), "reason", reason)

	// The followers and workers end before the watches are stopped, so
	// that none starts a watch or writes after the session.
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		s.stopWatches()
	}()
	s.plan(ctx, s.wanted, false)
	errc := make(chan error, 2)
	wg.Go(func() { errc <- s.followCatalog(ctx, catalogIndex, services, seen, nodes) })
	wg.Go(func() { errc <- s.followHealth(ctx, healthIndex, checks) })
	for range c.cfg.MaxConnections - 2 {
		wg.Go(func() { s.work(ctx) })
	}
	resync := time.NewTicker(c.cfg.ResyncInterval)
	defer resync.Stop()
	for {
		select {
		case err := <-errc:
			return err
		case <-resync.C:
			c.metrics.Relist(c.cfg.Name, watcher.ReasonPeriodic)
			wanted := s.catalog()
			s.plan(ctx, wanted, true)
			s.queue.add(false, s.unwatched(s.known())...)
			s.queue.add(false, s.unwatched(wanted)...)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// newSession returns a session that has written nothing yet; decodes
// outlives it, so that a bad instance is not reported again by the list
// of the next session.
func (c *Source) newSession(sink cache.Sink, decodes *watcher.DecodeLog) *session {
	return &session{
		c:             c,
		sink:          sink,
		instances:     map[string]map[string]cache.Instance{},
		nodes:         map[string]map[string]struct{}{},
		placed:        map[string]map[string]struct{}{},
		watched:       map[string]struct{}{},
		unwatchedWake: make(chan struct{}, 1),
		decodes:       decodes,
		queue:         newWorkQueue(),
		watches:       watches{max: c.cfg.MaxConnections - 3, running: map[string]*watch{}},
	}
}

// session is the state of one Consul session: what was written to
// the sink, and the services waiting to be fetched.
type session struct {
	c       *Source
	sink    cache.Sink
	queue   *workQueue
	watches watches
	// server is whether the agent is a Consul server (see lookup), asked
	// as the session starts.
	server bool

	mu        sync.Mutex
	wanted    []string                             // services in the catalog that pass the tag filter
	instances map[string]map[string]cache.Instance // service -> id -> instance, as written
	nodes     map[string]map[string]struct{}       // node -> services with an instance on it
	placed    map[string]map[string]struct{}       // service -> nodes it has an instance on
	watched   map[string]struct{}                  // services a watch follows (see plan)
	// unwatchedCount is how many wanted services the last plan left
	// unwatched; plan wakes followHealth through unwatchedWake when some are.
	unwatchedCount int
	unwatchedWake  chan struct{}
	decodes        *watcher.DecodeLog // by service/node/id, in groups by service
}

// list fetches every service with the worker count as concurrency and
// replaces the source's instances with the result.
func (s *session) list(ctx context.Context, services []string) error {
	s.decodes.StartList()
	err := watcher.ForEach(ctx, services, s.c.cfg.MaxConnections-2, func(ctx context.Context, name string) error {
		entries, err := s.c.healthService(ctx, name)
		if err == nil {
			s.apply(name, entries, false)
		}
		return err
	})
	s.decodes.EndList(err == nil)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []cache.Instance
	for _, ids := range s.instances {
		for _, in := range ids {
			all = append(all, in)
		}
	}
	s.sink.Replace(s.c.cfg.Name, all)
	return nil
}

// known returns every service that has instances.
func (s *session) known() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.instances))
}

// catalog returns the services of the last catalog list that pass the tag
// filter.
func (s *session) catalog() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wanted
}

// apply records the instances of service decoded from entries, and when
// write is set writes the difference to the sink.
func (s *session) apply(service string, entries []*api.ServiceEntry, write bool) {
	next := map[string]cache.Instance{}
	nodes := map[string]struct{}{}
	var failed []string
	for _, e := range entries {
		if e.Service == nil || e.Node == nil {
			continue
		}
		nodes[e.Node.Node] = struct{}{}
		in, ok, err := s.c.decode(e)
		key := service + "/" + e.Node.Node + "/" + e.Service.ID
		if err != nil {
			s.decodes.Failed(service, key, err, "service", service, "node", e.Node.Node, "id", e.Service.ID)
			failed = append(failed, key)
			continue
		}
		if ok {
			next[in.ID] = in
		}
	}
	// An instance that decodes now, or went, is forgotten.
	s.decodes.Retain(service, failed)

	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.instances[service]
	for node := range s.placed[service] {
		if _, ok := nodes[node]; !ok {
			delete(s.nodes[node], service)
			if len(s.nodes[node]) == 0 {
				delete(s.nodes, node)
			}
		}
	}
	for node := range nodes {
		if s.nodes[node] == nil {
			s.nodes[node] = map[string]struct{}{}
		}
		s.nodes[node][service] = struct{}{}
	}
	if len(nodes) == 0 {
		delete(s.placed, service)
	} else {
		s.placed[service] = nodes
	}
	if len(next) == 0 {
		delete(s.instances, service)
	} else {
		s.instances[service] = next
	}
	if !write {
		return
	}
	changed := false
	for id := range prev {
		if _, ok := next[id]; !ok {
			changed = true
			s.c.metrics.Event(s.c.cfg.Name, watcher.OpDelete)
		}
	}
	for id, in := range next {
		if old, ok := prev[id]; !ok || !old.Equal(&in) {
			changed = true
			s.c.metrics.Event(s.c.cfg.Name, watcher.OpPut)
		}
	}
	if changed {
		// At once: one by one, a service whose instances were all replaced
		// between two fetches would be served empty in between.
		s.sink.ReplaceService(s.c.cfg.Name, service, slices.Collect(maps.Values(next)))
	}
}
