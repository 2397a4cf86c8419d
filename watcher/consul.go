package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/discodns/discodns/cache"
)

// Defaults for ConsulConfig fields left zero.
const (
	DefaultConsulMaxConnections = 8
	DefaultConsulRateLimit      = 200
	DefaultConsulResync         = 5 * time.Minute
	// DefaultConsulWait is how long a blocking query waits for a change.
	// Consul's own default is 5 minutes; a shorter wait notices an agent
	// that stopped answering (no RST, no FIN) sooner, at the cost of one
	// request per minute per blocking query.
	DefaultConsulWait = time.Minute
)

// ConsulConfig configures a Consul source.
type ConsulConfig struct {
	// Name names the source in the table, in metrics and in logs.
	Name string
	// Address is the agent, host:port or http(s)://host:port.
	Address string
	// Datacenter is the datacenter to read; "" means the agent's.
	Datacenter string
	// Token is the ACL token.
	Token string
	// CAFile, CertFile and KeyFile configure TLS to the agent.
	CAFile, CertFile, KeyFile string
	// IncludeWarning keeps instances whose aggregated health is warning.
	IncludeWarning bool
	// Tags, when not empty, keeps only instances carrying one of them.
	Tags []string
	// MaxConnections bounds the TCP connections to the agent: two carry
	// the blocking queries, the rest fetch changed services. Zero means
	// DefaultConsulMaxConnections; at least 3.
	MaxConnections int
	// RateLimit bounds requests per second; zero means
	// DefaultConsulRateLimit.
	RateLimit int
	// ResyncInterval is how often every service is fetched again, to
	// repair anything missed. Zero means DefaultConsulResync.
	ResyncInterval time.Duration
	// Wait is the blocking query wait; zero means DefaultConsulWait.
	Wait time.Duration
}

// Consul is a Source that mirrors the services of a Consul datacenter,
// keeping only healthy instances.
//
// It keeps the number of connections to the agent bounded whatever the
// number of services: instead of one blocking query per service, it holds
// two. One follows the checks that are not passing
// (/v1/health/state/any, filtered): when that list changes, the services
// whose checks changed status are fetched. The other follows the service
// list (/v1/catalog/services): when its index moves, the source lists the
// service instances of every node (one request per node) and fetches the
// services whose instances were added, removed or modified. Fetches go
// through a pool of MaxConnections-2 workers. Everything is fetched again
// every ResyncInterval, and after any error of a blocking query (the
// source is stale meanwhile and keeps its last instances).
type Consul struct {
	cfg     ConsulConfig
	client  *api.Client
	limiter *rate.Limiter
	metrics *Metrics
	agent   *agentMetrics
	log     *slog.Logger
}

// NewConsul checks cfg and returns a Consul source. metrics may be nil; log
// nil means slog.Default().
func NewConsul(cfg ConsulConfig, metrics *Metrics, log *slog.Logger) (*Consul, error) {
	if cfg.Name == "" {
		return nil, errors.New("consul source: no name")
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = DefaultConsulMaxConnections
	}
	if cfg.MaxConnections < 3 {
		return nil, fmt.Errorf("consul source %s: max connections %d, want at least 3", cfg.Name, cfg.MaxConnections)
	}
	if cfg.RateLimit <= 0 {
		cfg.RateLimit = DefaultConsulRateLimit
	}
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = DefaultConsulResync
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultConsulWait
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("source", cfg.Name)

	tlsConfig, err := api.SetupTLSConfig(&api.TLSConfig{CAFile: cfg.CAFile, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile})
	if err != nil {
		return nil, fmt.Errorf("consul source %s: tls: %w", cfg.Name, err)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 15 * time.Second}
	agent := newAgentMetrics(metrics, cfg.Name)
	gauge := agent.connectionsGauge()
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, network, addr)
			if err != nil || gauge == nil {
				return conn, err
			}
			gauge.Inc()
			return &countedConn{Conn: conn, gauge: gauge}, nil
		},
		TLSClientConfig:     tlsConfig,
		MaxConnsPerHost:     cfg.MaxConnections,
		MaxIdleConnsPerHost: cfg.MaxConnections,
		MaxIdleConns:        cfg.MaxConnections,
		IdleConnTimeout:     90 * time.Second,
	}
	client, err := api.NewClient(&api.Config{
		Address:    cfg.Address,
		Datacenter: cfg.Datacenter,
		Token:      cfg.Token,
		// Consul adds up to wait/16 of jitter to a blocking query; the
		// margin covers a slow response after that.
		HttpClient: &http.Client{Transport: transport, Timeout: cfg.Wait + cfg.Wait/16 + 15*time.Second},
	})
	if err != nil {
		return nil, fmt.Errorf("consul source %s: %w", cfg.Name, err)
	}
	return &Consul{
		cfg:     cfg,
		client:  client,
		limiter: rate.NewLimiter(rate.Limit(cfg.RateLimit), cfg.RateLimit),
		metrics: metrics,
		agent:   agent,
		log:     log,
	}, nil
}

// countedConn decrements gauge once when closed.
type countedConn struct {
	net.Conn
	gauge prometheus.Gauge
	once  sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(c.gauge.Dec)
	return c.Conn.Close()
}

// Name implements Source.
func (c *Consul) Name() string { return c.cfg.Name }

// Run implements Source.
func (c *Consul) Run(ctx context.Context, sink cache.Sink) error {
	c.metrics.InitSource(c.cfg.Name, ReasonInitial, ReasonReconnect, ReasonPeriodic)
	bo := NewBackoff(MinBackoff, MaxBackoff)
	// Logged once per outage: a session that listed ends the outage.
	outage := &Outage{Source: c.cfg.Name, Sink: sink, Metrics: c.metrics, Log: c.log,
		Down:  "consul unavailable; serving the last known instances",
		Still: "consul still unavailable"}
	reason := ReasonInitial
	for {
		err := c.session(ctx, sink, reason, bo, outage)
		if ctx.Err() != nil {
			return nil
		}
		outage.Fail(err)
		reason = ReasonReconnect
		if !bo.Wait(ctx) {
			return nil
		}
	}
}

// session lists everything, then follows changes until an error.
func (c *Consul) session(ctx context.Context, sink cache.Sink, reason string, bo *Backoff, outage *Outage) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := c.newSession(sink)
	listCtx := context.WithValue(ctx, leaderReads{}, true)
	catalogIndex, services, err := c.catalogServices(listCtx, 0)
	if err != nil {
		return err
	}
	placement, err := c.scanInstances(listCtx)
	if err != nil {
		return err
	}
	healthIndex, checks, err := c.healthState(listCtx, 0)
	if err != nil {
		return err
	}
	s.wanted = c.wanted(services)
	if err := s.list(listCtx, s.wanted); err != nil {
		return err
	}
	c.metrics.Relist(c.cfg.Name, reason)
	outage.Recover()
	bo.Reset()
	c.log.Info("consul listed", "services", len(s.instances), "reason", reason)

	errc := make(chan error, 2)
	go func() { errc <- s.followCatalog(ctx, catalogIndex, services, placement) }()
	go func() { errc <- s.followHealth(ctx, healthIndex, checks) }()
	var wg sync.WaitGroup
	for range c.cfg.MaxConnections - 2 {
		wg.Go(func() { s.work(ctx) })
	}
	defer func() {
		cancel()
		wg.Wait()
	}()
	resync := time.NewTicker(c.cfg.ResyncInterval)
	defer resync.Stop()
	for {
		select {
		case err := <-errc:
			return err
		case <-resync.C:
			c.metrics.Relist(c.cfg.Name, ReasonPeriodic)
			s.queue.add(false, s.known()...)
			s.queue.add(false, s.catalog()...)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// wanted returns the names of the services that may have instances passing
// the tag filter, sorted.
func (c *Consul) wanted(services map[string][]string) []string {
	names := make([]string, 0, len(services))
	for name, tags := range services {
		if c.tagged(tags) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// tagged reports whether tags pass the tag filter.
func (c *Consul) tagged(tags []string) bool {
	if len(c.cfg.Tags) == 0 {
		return true
	}
	for _, t := range tags {
		if slices.Contains(c.cfg.Tags, t) {
			return true
		}
	}
	return false
}

// leaderReads marks a context whose reads are consistent: the list that
// starts a session. A server that has just restarted can answer stale (and
// default) reads from a catalog that has not replayed its log yet (seen
// empty in the soak); a consistent read waits until the leader has.
type leaderReads struct{}

func (c *Consul) queryOptions(ctx context.Context, index uint64) *api.QueryOptions {
	consistent := ctx.Value(leaderReads{}) != nil
	q := &api.QueryOptions{AllowStale: !consistent, RequireConsistent: consistent, WaitIndex: index}
	if index > 0 {
		q.WaitTime = c.cfg.Wait
	}
	return q.WithContext(ctx)
}

// catalogServices returns the service names and their tags, blocking
// until the index passes index (when not 0).
func (c *Consul) catalogServices(ctx context.Context, index uint64) (uint64, map[string][]string, error) {
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

// healthState returns every health check that is not passing, blocking
// until the index of the checks passes index (when not 0). Any check
// changing status shows in the difference between two answers (it enters
// or leaves the list, or changes in it), while the answers stay as small
// as the number of unhealthy checks.
func (c *Consul) healthState(ctx context.Context, index uint64) (uint64, api.HealthChecks, error) {
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

// healthService returns every instance of service with its checks.
func (c *Consul) healthService(ctx context.Context, service string) ([]*api.ServiceEntry, error) {
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

func (c *Consul) newSession(sink cache.Sink) *consulSession {
	return &consulSession{
		c:         c,
		sink:      sink,
		instances: map[string]map[string]cache.Instance{},
		nodes:     map[string]map[string]struct{}{},
		placed:    map[string]map[string]struct{}{},
		decodes:   &DecodeLog{Source: c.cfg.Name, Metrics: c.metrics, Log: c.log, Msg: "consul instance skipped"},
		queue:     newWorkQueue(),
	}
}

// consulSession is the state of one Consul session: what was written to
// the sink, and the services waiting to be fetched.
type consulSession struct {
	c     *Consul
	sink  cache.Sink
	queue *workQueue

	mu        sync.Mutex
	wanted    []string                             // services in the catalog that pass the tag filter
	instances map[string]map[string]cache.Instance // service -> id -> instance, as written
	nodes     map[string]map[string]struct{}       // node -> services with an instance on it
	placed    map[string]map[string]struct{}       // service -> nodes it has an instance on
	decodes   *DecodeLog                           // by service/node/id
}

// list fetches every service with the worker count as concurrency and
// replaces the source's instances with the result.
func (s *consulSession) list(ctx context.Context, services []string) error {
	err := ForEach(ctx, services, s.c.cfg.MaxConnections-2, func(ctx context.Context, name string) error {
		entries, err := s.c.healthService(ctx, name)
		if err == nil {
			s.apply(name, entries, false)
		}
		return err
	})
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
func (s *consulSession) known() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.instances))
}

// catalog returns the services of the last catalog list that pass the tag
// filter.
func (s *consulSession) catalog() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wanted
}

// apply records the instances of service decoded from entries, and when
// write is set writes the difference to the sink.
func (s *consulSession) apply(service string, entries []*api.ServiceEntry, write bool) {
	next := map[string]cache.Instance{}
	nodes := map[string]struct{}{}
	for _, e := range entries {
		if e.Service == nil || e.Node == nil {
			continue
		}
		nodes[e.Node.Node] = struct{}{}
		in, ok, err := s.c.decode(e)
		key := service + "/" + e.Node.Node + "/" + e.Service.ID
		if err != nil {
			s.decodes.Failed(key, err, "service", service, "node", e.Node.Node, "id", e.Service.ID)
			continue
		}
		if ok {
			next[in.ID] = in
		}
	}

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
			s.c.metrics.Event(s.c.cfg.Name, OpDelete)
		}
	}
	for id, in := range next {
		if old, ok := prev[id]; !ok || !old.Equal(&in) {
			changed = true
			s.c.metrics.Event(s.c.cfg.Name, OpPut)
		}
	}
	if changed {
		// At once: one by one, a service whose instances were all replaced
		// between two fetches would be served empty in between.
		s.sink.ReplaceService(s.c.cfg.Name, service, slices.Collect(maps.Values(next)))
	}
}

// decode turns one health entry into an instance. It returns ok false for
// an instance that is not served: critical, in maintenance, warning when
// warnings are left out, or without a wanted tag.
func (c *Consul) decode(e *api.ServiceEntry) (in cache.Instance, ok bool, err error) {
	svc := e.Service
	status := e.Checks.AggregatedStatus()
	switch status {
	case api.HealthPassing:
	case api.HealthWarning:
		if !c.cfg.IncludeWarning {
			return in, false, nil
		}
	default: // critical, maintenance
		return in, false, nil
	}
	if !c.tagged(svc.Tags) {
		return in, false, nil
	}
	address := svc.Address
	if address == "" {
		address = e.Node.Address
	}
	if address == "" {
		return in, false, errors.New("no service or node address")
	}
	if strings.HasPrefix(address, "[") && strings.HasSuffix(address, "]") {
		address = address[1 : len(address)-1]
	}
	if svc.Port < 0 || svc.Port > 65535 {
		return in, false, fmt.Errorf("port %d out of range", svc.Port)
	}
	weight := DefaultWeight
	if svc.Weights.Passing > 0 || svc.Weights.Warning > 0 {
		weight = svc.Weights.Passing
		if status == api.HealthWarning {
			weight = svc.Weights.Warning
		}
	}
	if weight < 0 || weight > 65535 {
		return in, false, fmt.Errorf("weight %d out of range", weight)
	}
	return cache.Instance{
		Service:  svc.Service,
		ID:       e.Node.Node + "/" + svc.ID,
		Address:  address,
		Port:     uint16(svc.Port),
		Priority: DefaultPriority,
		Weight:   uint16(weight),
		Tags:     slices.Clone(svc.Tags),
		Meta:     maps.Clone(svc.Meta),
	}, true, nil
}

// followCatalog follows the service list. When it changes, it lists every
// node's service instances and has the services fetched whose instances
// were added, removed or modified, or whose tags changed.
func (s *consulSession) followCatalog(ctx context.Context, index uint64, services map[string][]string, placement map[instanceKey]instanceState) error {
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
func (c *Consul) scanInstances(ctx context.Context) (map[instanceKey]instanceState, error) {
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
	err = ForEach(ctx, names, c.cfg.MaxConnections-2, func(ctx context.Context, node string) error {
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

type checkKey struct{ node, id string }

type checkState struct {
	status, service string
	modified        uint64
}

// followHealth follows the checks that are not passing and has the
// services whose checks changed status fetched at once.
func (s *consulSession) followHealth(ctx context.Context, index uint64, checks api.HealthChecks) error {
	prev := indexChecks(checks)
	index = nextIndex(0, index)
	for {
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
		s.queue.add(true, slices.Collect(maps.Keys(changed))...)
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

// work fetches queued services until ctx ends.
func (s *consulSession) work(ctx context.Context) {
	for {
		name, urgent, ok := s.queue.next(ctx)
		if !ok {
			return
		}
		entries, err := s.c.healthService(ctx, name)
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
		more := len(q.urgent)+len(q.background) > len(q.inflight)
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

// done releases name after a fetch.
func (q *workQueue) done(name string) {
	q.mu.Lock()
	delete(q.inflight, name)
	q.mu.Unlock()
	q.signal()
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
