package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/discodns/discodns/cache"
)

// DefaultZooKeeperSessionTimeout is used when ZooKeeperConfig leaves it zero.
const DefaultZooKeeperSessionTimeout = 10 * time.Second

// reasonSession is the relist reason for a new ZooKeeper session (after
// the previous one expired).
const reasonSession = "session"

// zkListWorkers bounds the concurrent requests of a full list; the client
// pipelines them on its one connection.
const zkListWorkers = 16

// ZooKeeperConfig configures a ZooKeeper source.
type ZooKeeperConfig struct {
	// Name names the source in the table, in metrics and in logs.
	Name string
	// Servers are the ZooKeeper servers, host:port.
	Servers []string
	// Prefix is the path whose children are services; no trailing slash.
	Prefix string
	// Format is the layout: "discox" (the default), "curator" or
	// "serverset".
	Format string
	// SessionTimeout is the requested session timeout; zero means
	// DefaultZooKeeperSessionTimeout.
	SessionTimeout time.Duration
	// Auth is a digest credential "user:password", or "".
	Auth string
}

// ZooKeeper is a Source that mirrors the tree <prefix>/<service>/<instance>.
//
// go-zookeeper has no persistent watches, so the source arms one-shot
// watches (children of the prefix and of every service, data of every
// instance) and re-arms each one when it fires. Every event, session
// events included, arrives through the client's event callback, which never
// drops one (the client's global event channel does), and is handled in
// order by one goroutine. On every new session (the first, and after an
// expiry) it lists the whole tree again, arming fresh watches, and replaces
// the source's instances. While disconnected the source is stale and keeps
// its instances; on a reconnect within the same session the client re-sets
// the watches and the server fires those whose nodes changed meanwhile.
type ZooKeeper struct {
	cfg     ZooKeeperConfig
	decode  Decoder
	member  func(node string) bool // which children of a service are instances
	metrics *Metrics
	log     *slog.Logger
}

// NewZooKeeper checks cfg and returns a ZooKeeper source. metrics may be
// nil; log nil means slog.Default().
func NewZooKeeper(cfg ZooKeeperConfig, metrics *Metrics, log *slog.Logger) (*ZooKeeper, error) {
	if cfg.Name == "" {
		return nil, errors.New("zookeeper source: no name")
	}
	if len(cfg.Servers) == 0 {
		return nil, fmt.Errorf("zookeeper source %s: no servers", cfg.Name)
	}
	cfg.Prefix = strings.TrimRight(cfg.Prefix, "/")
	if !strings.HasPrefix(cfg.Prefix, "/") {
		return nil, fmt.Errorf("zookeeper source %s: prefix %q must start with / and not be /", cfg.Name, cfg.Prefix)
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = DefaultZooKeeperSessionTimeout
	}
	if log == nil {
		log = slog.Default()
	}
	z := &ZooKeeper{cfg: cfg, member: func(string) bool { return true }, metrics: metrics, log: log.With("source", cfg.Name)}
	switch cfg.Format {
	case "", "discox":
		z.decode = DecodeDiscox
	case "curator":
		z.decode = DecodeCurator
	case "serverset":
		z.decode = DecodeServerset
		z.member = IsServersetMember
	default:
		return nil, fmt.Errorf("zookeeper source %s: unknown format %q", cfg.Name, cfg.Format)
	}
	z.decode = LimitSize(z.decode)
	return z, nil
}

// Name implements Source.
func (z *ZooKeeper) Name() string { return z.cfg.Name }

// Run implements Source.
func (z *ZooKeeper) Run(ctx context.Context, sink cache.Sink) error {
	z.metrics.InitSource(z.cfg.Name, ReasonInitial, reasonSession, ReasonError)
	r := z.newRun(sink)
	conn, _, err := zk.Connect(z.cfg.Servers, z.cfg.SessionTimeout,
		zk.WithEventCallback(r.events.push),
		zk.WithLogger(zkLogger{z.log}),
		zk.WithMaxBufferSize(16<<20))
	if err != nil {
		return fmt.Errorf("zookeeper %v: %w", z.cfg.Servers, err)
	}
	defer conn.Close()
	if z.cfg.Auth != "" {
		if err := conn.AddAuth("digest", []byte(z.cfg.Auth)); err != nil {
			return fmt.Errorf("zookeeper %v: auth: %w", z.cfg.Servers, err)
		}
	}
	r.conn = conn
	r.loop(ctx)
	return nil
}

func (z *ZooKeeper) newRun(sink cache.Sink) *zkRun {
	return &zkRun{
		z:        z,
		sink:     sink,
		events:   newEventQueue(),
		services: map[string]map[string]cache.Instance{},
		outage:   &Outage{Source: z.cfg.Name, Sink: sink, Metrics: z.metrics},
		decodes: &DecodeLog{Source: z.cfg.Name, Metrics: z.metrics, Log: z.log,
			Msg: "skipping registry entry that does not decode"},
	}
}

// zkLogger sends the client's own messages to slog at debug level.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "zk")
}

// eventQueue is an unbounded FIFO: the client's callback must never block.
type eventQueue struct {
	mu     sync.Mutex
	events []zk.Event
	wake   chan struct{}
}

func newEventQueue() *eventQueue { return &eventQueue{wake: make(chan struct{}, 1)} }

func (q *eventQueue) push(ev zk.Event) {
	q.mu.Lock()
	q.events = append(q.events, ev)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) drain() []zk.Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	evs := q.events
	q.events = nil
	return evs
}

// zkConn is the part of *zk.Conn a zkRun reads through.
type zkConn interface {
	ChildrenW(path string) ([]string, *zk.Stat, <-chan zk.Event, error)
	ExistsW(path string) (bool, *zk.Stat, <-chan zk.Event, error)
	GetW(path string) ([]byte, *zk.Stat, <-chan zk.Event, error)
	SessionID() int64
	State() zk.State
}

// zkRun is the state of one Run.
type zkRun struct {
	z      *ZooKeeper
	sink   cache.Sink
	conn   zkConn
	events *eventQueue

	session int64 // the session the table was listed in; 0 before
	dirty   bool  // a watch may be unarmed: list again when connected
	// services maps every service node watched to its instance nodes
	// served, and those to their instances.
	services map[string]map[string]cache.Instance
	outage   *Outage
	decodes  *DecodeLog // by node path
}

func (r *zkRun) loop(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
		case <-r.events.wake:
		}
		for _, ev := range r.events.drain() {
			r.handle(ev)
		}
		if r.dirty && r.conn.State() == zk.StateHasSession {
			r.list(ReasonError)
		}
		if r.dirty {
			retry.Reset(time.Second)
		}
	}
}

// handle applies one event.
func (r *zkRun) handle(ev zk.Event) {
	prefix := r.z.cfg.Prefix
	switch ev.Type {
	case zk.EventSession:
		r.sessionEvent(ev)
		return
	case zk.EventNotWatching:
		return // the session ended; the next one lists everything
	}
	if r.session == 0 || r.session != r.conn.SessionID() {
		return // the list of the new session arms its own watches
	}
	rel, ok := strings.CutPrefix(ev.Path, prefix)
	if !ok || (rel != "" && rel[0] != '/') {
		return
	}
	parts := strings.Split(strings.TrimPrefix(rel, "/"), "/")
	var err error
	switch {
	case rel == "":
		err = r.syncServices()
	case len(parts) == 1:
		if ev.Type == zk.EventNodeChildrenChanged {
			err = r.syncService(parts[0])
		} else if ev.Type == zk.EventNodeDeleted {
			err = r.syncServices()
		}
	case len(parts) == 2:
		// A deleted instance node leaves it to the children of its service
		// to say what the service holds now: a node created before the
		// deletion may be announced after it (an event behind this one, or
		// a reconnect, where the server fires data watches before children
		// watches), and removing this one alone could leave the service
		// empty for a moment although it never was.
		switch ev.Type {
		case zk.EventNodeDataChanged:
			var st instanceStatus
			if st, err = r.syncInstance(parts[0], parts[1]); err == nil && st == vanished {
				err = r.syncService(parts[0])
			}
		case zk.EventNodeDeleted:
			err = r.syncService(parts[0])
		}
	}
	if err != nil {
		r.failed(err)
	}
}

func (r *zkRun) sessionEvent(ev zk.Event) {
	name := r.z.cfg.Name
	switch ev.State {
	case zk.StateHasSession:
		if id := r.conn.SessionID(); id != r.session {
			reason := ReasonInitial
			if r.session != 0 {
				reason = reasonSession
				r.z.log.Info("new zookeeper session; listing everything again")
			}
			r.list(reason)
			return
		}
		r.z.log.Info("zookeeper reconnected in the same session")
		r.sink.SetState(name, cache.StateConnected, nil)
	case zk.StateDisconnected:
		err := errors.New("disconnected from zookeeper")
		if r.session == 0 {
			// Nothing listed yet: no outage to count.
			r.sink.SetState(name, cache.StateStale, err)
			return
		}
		r.z.log.Warn("zookeeper disconnected; serving the last known instances")
		r.outage.Stale(err)
	case zk.StateExpired:
		r.z.log.Warn("zookeeper session expired; serving the last known instances until a new session lists")
		r.outage.Stale(errors.New("zookeeper session expired"))
	case zk.StateAuthFailed:
		r.outage.Stale(errors.New("zookeeper authentication failed"))
	}
}

// failed records an error while following changes: some watch may not be
// armed, so the whole tree is listed again once connected.
func (r *zkRun) failed(err error) {
	r.z.metrics.RegistryError(r.z.cfg.Name)
	r.z.log.Warn("zookeeper read failed; listing again when connected", "err", err)
	r.dirty = true
}

// list reads the whole tree with fresh watches and replaces the source's
// instances.
func (r *zkRun) list(reason string) {
	session := r.conn.SessionID()
	start := time.Now()
	r.decodes.StartList()
	services, err := r.children(r.z.cfg.Prefix)
	if err != nil {
		r.listFailed(err)
		return
	}
	found := make(map[string]map[string]cache.Instance, len(services))
	var mu sync.Mutex
	err = ForEach(context.Background(), services, zkListWorkers, func(_ context.Context, svc string) error {
		insts, err := r.readService(svc)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		found[svc] = insts
		return nil
	})
	if err != nil {
		r.listFailed(err)
		return
	}
	var all []cache.Instance
	for _, insts := range found {
		for _, in := range insts {
			all = append(all, in)
		}
	}
	r.sink.Replace(r.z.cfg.Name, all)
	r.services = found
	r.decodes.EndList(true)
	r.session = session
	r.dirty = false
	r.z.metrics.Relist(r.z.cfg.Name, reason)
	r.z.log.Info("zookeeper listed", "services", len(found), "instances", len(all), "reason", reason, "took", time.Since(start))
}

func (r *zkRun) listFailed(err error) {
	r.decodes.EndList(false)
	r.z.metrics.RegistryError(r.z.cfg.Name)
	r.z.log.Warn("zookeeper list failed; retrying", "err", err)
	if r.session != 0 {
		r.sink.SetState(r.z.cfg.Name, cache.StateStale, err)
	}
	r.session = 0 // watches of this attempt are not all armed
	r.dirty = true
}

// children returns the children of p and arms a children watch on it. A
// missing node has no children; an exists watch then fires on its creation.
func (r *zkRun) children(p string) ([]string, error) {
	kids, _, _, err := r.conn.ChildrenW(p)
	if errors.Is(err, zk.ErrNoNode) {
		ok, _, _, err := r.conn.ExistsW(p)
		if err != nil {
			return nil, fmt.Errorf("zookeeper exists %s: %w", p, err)
		}
		if ok { // created meanwhile
			return r.children(p)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("zookeeper children %s: %w", p, err)
	}
	return kids, nil
}

// readService reads every instance of svc, arming the watches.
func (r *zkRun) readService(svc string) (map[string]cache.Instance, error) {
	for attempt := 1; ; attempt++ {
		nodes, err := r.children(path.Join(r.z.cfg.Prefix, svc))
		if err != nil {
			return nil, err
		}
		insts := map[string]cache.Instance{}
		outdated := false
		for _, node := range nodes {
			if !r.z.member(node) {
				continue
			}
			in, st, err := r.readInstance(svc, node)
			if err != nil {
				return nil, err
			}
			switch st {
			case served:
				insts[node] = in
			case vanished:
				outdated = true
			}
		}
		if !outdated || attempt == zkChildrenAttempts {
			return insts, nil
		}
	}
}

// zkChildrenAttempts bounds how often a service's children are listed
// again because one of them vanished before it was read. Such a list is
// out of date: served as it is, a service whose instances all changed
// between the list and the reads would look empty for a moment although
// it never was.
const zkChildrenAttempts = 3

// instanceStatus is what reading an instance node found.
type instanceStatus int

const (
	served      instanceStatus = iota
	gone                       // not served (ErrRemoved)
	vanished                   // deleted since its parent was listed
	undecodable                // counted, and logged unless reported before
)

// readInstance reads one instance node and arms its data watch.
func (r *zkRun) readInstance(svc, node string) (cache.Instance, instanceStatus, error) {
	p := path.Join(r.z.cfg.Prefix, svc, node)
	data, _, _, err := r.conn.GetW(p)
	if errors.Is(err, zk.ErrNoNode) {
		return cache.Instance{}, vanished, nil // its service's children tell
	}
	if err != nil {
		return cache.Instance{}, gone, fmt.Errorf("zookeeper get %s: %w", p, err)
	}
	in, err := r.z.decode(svc, node, data)
	switch {
	case err == nil:
		return in, served, nil
	case errors.Is(err, ErrRemoved):
		return cache.Instance{}, gone, nil
	default:
		r.decodes.Failed(p, err, "path", p)
		return cache.Instance{}, undecodable, nil
	}
}

// syncServices follows the children of the prefix: new services are read,
// vanished ones removed.
func (r *zkRun) syncServices() error {
	services, err := r.children(r.z.cfg.Prefix)
	if err != nil {
		return err
	}
	seen := make(map[string]struct{}, len(services))
	for _, svc := range services {
		seen[svc] = struct{}{}
		if _, known := r.services[svc]; !known {
			if err := r.syncService(svc); err != nil {
				return err
			}
		}
	}
	for svc, insts := range r.services {
		if _, ok := seen[svc]; !ok {
			for node := range insts {
				r.remove(svc, node)
			}
			delete(r.services, svc)
		}
	}
	return nil
}

// syncService follows the children of one service: new instance nodes are
// read, then vanished ones removed, so that a service that always had an
// instance is never served empty.
func (r *zkRun) syncService(svc string) error {
	if r.services[svc] == nil {
		r.services[svc] = map[string]cache.Instance{}
	}
	var seen map[string]struct{}
	for attempt := 1; ; attempt++ {
		nodes, err := r.children(path.Join(r.z.cfg.Prefix, svc))
		if err != nil {
			return err
		}
		seen = make(map[string]struct{}, len(nodes))
		outdated := false
		for _, node := range nodes {
			if !r.z.member(node) {
				continue
			}
			seen[node] = struct{}{}
			if _, known := r.services[svc][node]; known {
				continue
			}
			st, err := r.syncInstance(svc, node)
			if err != nil {
				return err
			}
			outdated = outdated || st == vanished
		}
		if !outdated || attempt == zkChildrenAttempts {
			break
		}
	}
	for node := range r.services[svc] {
		if _, ok := seen[node]; !ok {
			r.remove(svc, node)
		}
	}
	return nil
}

// syncInstance reads one instance node again and writes the result. A
// node that vanished is left to the caller, which lists its service's
// children again.
func (r *zkRun) syncInstance(svc, node string) (instanceStatus, error) {
	in, st, err := r.readInstance(svc, node)
	if err != nil {
		return st, err
	}
	if st != undecodable {
		r.decodes.Forget(path.Join(r.z.cfg.Prefix, svc, node))
	}
	switch st {
	case vanished:
		return st, nil // the caller lists the children again
	case gone, undecodable:
		r.remove(svc, node)
		return st, nil
	}
	if r.services[svc] == nil {
		r.services[svc] = map[string]cache.Instance{}
	}
	old, had := r.services[svc][node]
	if had && old.Equal(&in) {
		return st, nil
	}
	if had && old.ID != in.ID {
		r.sink.Delete(r.z.cfg.Name, svc, old.ID)
	}
	r.services[svc][node] = in
	r.sink.Put(r.z.cfg.Name, in)
	r.z.metrics.Event(r.z.cfg.Name, OpPut)
	return st, nil
}

// remove stops serving the instance of node, if any. The service stays
// known (its children watch is armed) until its node goes.
func (r *zkRun) remove(svc, node string) {
	insts := r.services[svc]
	in, ok := insts[node]
	if !ok {
		return
	}
	delete(insts, node)
	r.sink.Delete(r.z.cfg.Name, svc, in.ID)
	r.z.metrics.Event(r.z.cfg.Name, OpDelete)
}
