package cache

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// State is the health of one source's view of its registry.
type State int

const (
	// StateSyncing: the source has not finished a list since it started or
	// reconnected.
	StateSyncing State = iota
	// StateConnected: the source listed and is following changes.
	StateConnected
	// StateStale: the registry is unreachable; the last known instances are
	// kept and served.
	StateStale
)

var stateNames = [...]string{"syncing", "connected", "stale"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Sink is how a watcher tells the table what its registry holds. Every call
// names the source; the table keeps each source's instances apart and merges
// them into snapshots.
type Sink interface {
	// Replace sets everything the source holds, dropping what is not listed.
	// Watchers call it after every full list, and it marks the source listed.
	Replace(source string, instances []Instance)
	// Put adds or updates one instance (matched by service and ID).
	Put(source string, in Instance)
	// Delete removes one instance; deleting an unknown one is a no-op.
	Delete(source, service, id string)
	// ReplaceService sets every instance of one service at once, so that
	// readers never see a state between the old set and the new one (a
	// service whose instances were all replaced never looks empty); no
	// instances removes the service.
	ReplaceService(source, service string, instances []Instance)
	// SetState records the source's connection state; err explains a stale
	// state and may be nil otherwise.
	SetState(source string, state State, err error)
}

// SourceStatus is one source's state as seen in a snapshot.
type SourceStatus struct {
	Name  string
	Zone  string
	State State
	// Since is when the source entered State.
	Since time.Time
	// Err is the error that made the source stale, if any.
	Err string
	// Listed is true once the source has completed a full list.
	Listed bool
	// LastList is the time of the last successful full list.
	LastList time.Time
	// Seeded, when not zero, is the time of the state file the source's
	// instances were seeded from at start (see Table.Seed); it is zero
	// once the source has listed its registry.
	Seeded    time.Time
	Services  int
	Instances int
	// InvalidNames counts the source's registry service names that give
	// no usable DNS label and have instances now (their instances are not
	// served).
	InvalidNames int
}

// Endpoint is one instance of a merged service, with its DNS label.
type Endpoint struct {
	// Label is the instance's DNS label, unique within its service.
	Label string
	// Version is set anew, from a counter of the table's, whenever the
	// endpoint at Label comes or changes: two endpoints of one service
	// with the same Label and a Version other than 0 are equal, so a
	// reader may keep what it derived from one for the other.
	Version uint64
	*Instance
}

// Service is one DNS service: the union of every source's instances of
// services whose names map to the same label in the same zone. A Service is
// immutable; a snapshot that did not change it shares the same pointer with
// its predecessor.
type Service struct {
	// Name is the service's DNS label.
	Name string
	// Zone is the zone the service lives in, fully qualified.
	Zone string
	// FQDN is Name.Zone.
	FQDN string
	// Endpoints are sorted by Label and deduplicated by address and port
	// (skydns records by name: two names may hold one address).
	Endpoints []Endpoint
}

// InstanceName is the DNS name of the service's endpoint ep: <label>.FQDN,
// FQDN itself for an instance at the service's own name, and a skydns
// record's own name (<id>.Zone: see etcd.SkyDNSSplitter).
func (s *Service) InstanceName(ep *Endpoint) string {
	switch {
	case ep.AtService:
		return s.FQDN
	case ep.SkyDNS != nil:
		return ep.ID + "." + s.Zone // the record's own name
	}
	return ep.Label + "." + s.FQDN
}

// Snapshot is an immutable view of the whole table.
type Snapshot struct {
	// Version increases with every published snapshot.
	Version uint64
	// Services by FQDN (lowercase, with trailing dot).
	Services *Services
	// Zones holds every zone that sources serve, sorted.
	Zones []string
	// Sources holds every registered source, sorted by name.
	Sources []SourceStatus
	// Collisions lists registry names, as "source/service", that map to
	// a DNS label already taken by another name; those services are not
	// served.
	Collisions []string
	// InstanceLabelCollisions counts the instances whose DNS label was
	// taken in their service even with its usual hash suffix (IDs crafted
	// to collide); each got a further suffix.
	InstanceLabelCollisions int
	// Changes are the last changes of services, newest first; shared
	// between snapshots, never to be modified.
	Changes []Change

	// Writes is the number of writes to the table that changed it, up to
	// this snapshot; against Version, it shows how writes are batched.
	Writes uint64

	superseded chan struct{}
	table      *Table     // the table that published it
	log        *changeLog // the services this and earlier publications changed
}

// changeLog is what one publication changed: the FQDNs of the services it
// added, changed or removed, linked to the earlier publication's log for
// at most maxChangeLog publications, so that a reader that skipped some
// snapshots still learns what changed (see ChangedSince) while the logs
// kept stay few.
type changeLog struct {
	version uint64
	fqdns   []string
	many    bool // more than maxLoggedChanges services changed: fqdns not kept
	// earlier is the previous publication's log; the publisher cuts it
	// once the log is maxChangeLog publications old.
	earlier atomic.Pointer[changeLog]
}

// maxChangeLog bounds the publications a snapshot can tell the changes
// of (ChangedSince), and maxLoggedChanges the services one publication's
// log lists: a publication that changed more (a relist of a large table)
// tells nothing, and its readers compare, so that the logs kept stay
// small whatever the sources do.
const (
	maxChangeLog     = 64
	maxLoggedChanges = 4096
)

// ChangedSince returns the FQDNs of the services added, changed or
// removed by the publications after earlier, up to and including s, in no
// order and possibly repeated, and true; or false when s does not know
// them (earlier is more than 64 publications older, or not an earlier
// snapshot of the same table), and the caller must compare every service.
func (s *Snapshot) ChangedSince(earlier *Snapshot) ([]string, bool) {
	if earlier == s {
		return nil, true
	}
	if earlier == nil || earlier.table != s.table || s.table == nil {
		return nil, false
	}
	v := earlier.Version
	var fqdns []string
	for l := s.log; l != nil && l.version > v; l = l.earlier.Load() {
		if l.many {
			return nil, false
		}
		fqdns = append(fqdns, l.fqdns...)
		if l.version == v+1 {
			return fqdns, true
		}
	}
	return nil, false
}

// Snapshots hands out the latest snapshot of a table: the read-only view
// that readers (the DNS server, the admin pages) get.
type Snapshots interface {
	Snapshot() *Snapshot
}

// Superseded is closed when a newer snapshot has been published.
func (s *Snapshot) Superseded() <-chan struct{} { return s.superseded }

// Ready reports whether every source has completed at least one list.
func (s *Snapshot) Ready() bool {
	for _, src := range s.Sources {
		if !src.Listed {
			return false
		}
	}
	return true
}

type member struct{ source, service string }

// serviceInstances is the instances of one service from one source, by
// ID: a smallMap, as most services have a few. An Instance in the table
// is never changed, only replaced: the sources' maps, the endpoint sets
// and the snapshots' endpoints share it.
type serviceInstances = smallMap[string, *Instance]

type sourceData struct {
	status   SourceStatus
	services map[string]*serviceInstances // by registry service name
	count    int                          // instances in services
	// unnamed holds the IDs of the instances of service names with no
	// usable label, which are not served: a name is logged when it
	// enters, and forgotten when its last instance goes.
	unnamed map[string]map[string]struct{}
}

// group is what the table knows of one FQDN: the registry names that map
// to it, the one served, and the endpoints of its instances.
type group struct {
	// members are sorted by service, then source (see compareMembers):
	// usually one, so a slice, not a map.
	members []member
	// name is the registry name served (see servedName), zone its zone;
	// the other names are in Table.collided.
	name, zone string
	set        *endpointSet
	// full is set when set was built anew: the next publication takes
	// all its endpoints rather than its changes.
	full bool
	// clashes is the number of clashing instances as last published.
	clashes int
	// due is when a large group may be published again (see paced), and
	// yielded is set while it waits, due, for a publication of the other
	// changes to go out first.
	due     time.Time
	yielded bool
}

// paced returns how long after a publication a group of n endpoints is
// held back while Run publishes: paceUnit (a microsecond) per endpoint
// from pacedFrom endpoints on (20 ms at 20,000), none below, and at most
// maxPaced. Publishing a service copies and compiles all its endpoints,
// so during a burst into a large service it is published once per
// interval, and the changes of the other services go out meanwhile,
// without its cost.
func (t *Table) paced(n int) time.Duration {
	if n < pacedFrom {
		return 0
	}
	return min(time.Duration(n)*t.paceUnit, maxPaced)
}

const (
	pacedFrom = 1000
	maxPaced  = time.Second
)

// Table merges every source's instances and publishes snapshots. It is safe
// for concurrent use; readers never block writers.
//
// A write records what changed, at the cost of the change: each service
// keeps its endpoints change by change (see endpointSet). Publication
// drains whatever has changed since the last one, builds each changed
// service once (merging its changed endpoints into the last published
// list) outside the writers' lock, and swaps in one snapshot. Until Run
// is called, every write publishes before it returns; while Run runs,
// writes only record and wake Run's goroutine, so a burst of writes is
// published in a few batches, and Sync waits for a publication.
type Table struct {
	log *slog.Logger
	now func() time.Time

	// wake tells Run's goroutine that there is something to publish.
	wake chan struct{}
	// building, when not nil, is called as a publication starts to build,
	// with t.mu released (tests).
	building func()
	// paceUnit is how long a large group is held back per endpoint (see
	// paced): a microsecond but in tests.
	paceUnit time.Duration

	// pubMu serializes publications; it is taken before mu.
	pubMu sync.Mutex
	// Owned by the publication under pubMu:
	services *Services // as in the last snapshot
	recent   []Change  // the last changes, newest first, as published
	version  uint64
	logs     [maxChangeLog]*changeLog // the last publications' change logs, by version

	mu       sync.Mutex
	sources  map[string]*sourceData
	groups   map[string]*group   // by FQDN
	collided map[string][]string // FQDN -> the names of its group not served, as "source/service"
	dirty    map[string]struct{} // FQDNs changed since the last publication
	pending  bool                // something to publish
	written  uint64              // writes that asked for a publication
	clashed  int                 // the sum of the groups' clashes
	running  bool                // Run publishes
	held     time.Time           // when the first group held back is due (zero: none)
	versions uint64              // the last Endpoint.Version given
	snapshot atomic.Pointer[Snapshot]
}

// nextVersion returns a new Endpoint.Version; the caller holds t.mu.
func (t *Table) nextVersion() uint64 {
	t.versions++
	return t.versions
}

// NewTable returns an empty table with no sources.
func NewTable(log *slog.Logger) *Table {
	if log == nil {
		log = slog.Default()
	}
	t := &Table{
		log:      log,
		now:      time.Now,
		wake:     make(chan struct{}, 1),
		paceUnit: time.Microsecond,
		sources:  map[string]*sourceData{},
		groups:   map[string]*group{},
		collided: map[string][]string{},
		dirty:    map[string]struct{}{},
		services: &Services{},
	}
	t.snapshot.Store(&Snapshot{Services: t.services, superseded: make(chan struct{}), table: t})
	return t
}

// Run publishes the table's writes in batches until ctx ends: from when
// it starts, writes return once recorded, and Run's goroutine publishes
// what has arrived, as often as it can build it. When ctx ends, it
// publishes what is left, and writes publish before they return again.
func (t *Table) Run(ctx context.Context) {
	t.mu.Lock()
	t.running = true
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.running = false
		t.mu.Unlock()
		t.publish(false)
	}()
	for {
		// A group held back (see paced) is published when due, or with
		// the next write after that.
		var due <-chan time.Time
		t.mu.Lock()
		held := t.held
		t.mu.Unlock()
		var timer *time.Timer
		if !held.IsZero() {
			timer = time.NewTimer(time.Until(held))
			due = timer.C
		}
		select {
		case <-ctx.Done():
		case <-t.wake:
		case <-due:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		start := time.Now()
		t.publish(true)
		// Pausing pauseFactor times as long as the publication took, at
		// most maxPause, lets a burst gather into fewer, larger batches:
		// a burst into a large service spends at most a fifth of the
		// time copying it, and leaves the rest to the sources and to the
		// DNS server, which compiles each snapshot it takes. A change
		// that arrives during a burst waits at most the publication under
		// way, the pause and its own publication; a change alone, none.
		// When nothing came during the publication, there is no burst to
		// gather, and no pause: changes a millisecond apart cost no timer.
		t.mu.Lock()
		more := t.pending
		t.mu.Unlock()
		if !more {
			continue
		}
		pause := time.NewTimer(min(pauseFactor*time.Since(start), maxPause))
		select {
		case <-ctx.Done():
			pause.Stop()
			return
		case <-pause.C:
		}
	}
}

// pauseFactor and maxPause set the pause between two publications (see
// Run): four times the last publication, at most a few milliseconds, next
// to the tens that a write takes to reach answers behind a burst.
const (
	pauseFactor = 4
	maxPause    = 8 * time.Millisecond
)

// Sync waits until a snapshot holds every write made before it was
// called, or until ctx ends.
func (t *Table) Sync(ctx context.Context) error {
	t.mu.Lock()
	want := t.written
	t.mu.Unlock()
	for {
		snap := t.snapshot.Load()
		if snap.Writes >= want {
			return nil
		}
		select {
		case <-snap.superseded:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the table to publish: %w", ctx.Err())
		}
	}
}

// write runs f, which reports whether it changed what snapshots show,
// under t.mu, and has a change published: by Run's goroutine while it
// runs, unless now, else before write returns.
func (t *Table) write(now bool, f func() bool) {
	t.mu.Lock()
	changed := f()
	if changed {
		t.pending = true
		t.written++
	}
	later := t.running && !now
	t.mu.Unlock()
	switch {
	case !changed:
	case later:
		select {
		case t.wake <- struct{}{}:
		default:
		}
	default:
		t.publish(false)
	}
}

// AddSource registers a source and the zone its services live in. A source
// must be added before it writes to the table; until it lists, the table is
// not ready. The source is in the snapshot when AddSource returns.
func (t *Table) AddSource(name, zone string) {
	t.write(true, func() bool {
		if _, ok := t.sources[name]; ok {
			return false
		}
		t.sources[name] = &sourceData{
			status:   SourceStatus{Name: name, Zone: zone, State: StateSyncing, Since: t.now()},
			services: map[string]*serviceInstances{},
			unnamed:  map[string]map[string]struct{}{},
		}
		return true
	})
}

// RemoveSource drops a source and everything it held; it is gone from the
// snapshot when RemoveSource returns.
func (t *Table) RemoveSource(name string) {
	t.write(true, func() bool {
		src, ok := t.sources[name]
		if !ok {
			return false
		}
		for svc := range src.services {
			t.unlink(name, src, svc)
		}
		delete(t.sources, name)
		return true
	})
}

// Snapshot returns the latest snapshot. It never blocks.
func (t *Table) Snapshot() *Snapshot { return t.snapshot.Load() }

// Replace implements Sink.
func (t *Table) Replace(source string, instances []Instance) {
	t.write(false, func() bool {
		src := t.source(source)
		if src == nil {
			return false
		}
		t.replace(source, src, instances)
		return true
	})
}

// replace sets everything source holds and marks it listed and
// connected; the caller holds t.mu.
func (t *Table) replace(source string, src *sourceData, instances []Instance) {
	next := map[string]*serviceInstances{}
	unnamed := map[string]map[string]struct{}{}
	for _, in := range instances {
		if Label(in.Service) == "" {
			addID(unnamed, in.Service, in.ID)
			continue
		}
		in.Source = source
		ids := next[in.Service]
		if ids == nil {
			ids = &serviceInstances{}
			next[in.Service] = ids
		}
		ids.set(in.ID, &in)
	}
	for svc := range src.services {
		if _, ok := next[svc]; !ok {
			t.unlink(source, src, svc)
		}
	}
	for svc, nids := range next {
		t.setService(source, src, svc, nids)
	}
	for svc := range unnamed {
		if _, known := src.unnamed[svc]; !known {
			t.logUnnamed(source, svc)
		}
	}
	src.unnamed = unnamed
	now := t.now()
	src.status.Listed = true
	src.status.LastList = now
	src.status.Seeded = time.Time{}
	t.setState(src, StateConnected, nil, now)
}

// ReplaceService implements Sink: readers see the service before or after,
// never in between.
func (t *Table) ReplaceService(source, service string, instances []Instance) {
	t.write(false, func() bool {
		src := t.source(source)
		if src == nil {
			return false
		}
		if Label(service) == "" {
			return t.replaceUnnamed(source, src, service, instances)
		}
		next := &serviceInstances{}
		next.size(len(instances))
		for _, in := range instances {
			in.Source = source
			next.set(in.ID, &in)
		}
		if next.len() == 0 {
			if _, had := src.services[service]; !had {
				return false
			}
			t.unlink(source, src, service)
			return true
		}
		return t.setService(source, src, service, next)
	})
}

// setService sets the instances of service in src (at least one),
// reporting whether anything changed. Its cost is a lookup per instance,
// and the changes.
func (t *Table) setService(source string, src *sourceData, service string, next *serviceInstances) bool {
	ids, had := src.services[service]
	if !had {
		src.services[service] = next
		src.count += next.len()
		t.link(source, src, service)
		return true
	}
	g, fqdn := t.served(src, source, service)
	changed := false
	for id := range ids.all() {
		if _, ok := next.get(id); !ok {
			changed = true
			if g != nil {
				g.set.delete(instKey{source, id})
			}
		}
	}
	for id, in := range next.all() {
		if old, ok := ids.get(id); ok && old.Equal(in) {
			continue
		}
		changed = true
		if g != nil {
			g.set.put(in)
		}
	}
	if !changed {
		return false
	}
	src.services[service] = next
	src.count += next.len() - ids.len()
	if g != nil {
		t.dirty[fqdn] = struct{}{}
	}
	return true
}

// Put implements Sink.
func (t *Table) Put(source string, in Instance) {
	t.write(false, func() bool {
		src := t.source(source)
		return src != nil && t.put(source, src, in)
	})
}

// Delete implements Sink.
func (t *Table) Delete(source, service, id string) {
	t.write(false, func() bool {
		src := t.source(source)
		return src != nil && t.delete(source, src, service, id)
	})
}

// put adds or updates in, reporting whether anything changed.
func (t *Table) put(source string, src *sourceData, in Instance) bool {
	if Label(in.Service) == "" {
		_, known := src.unnamed[in.Service]
		addID(src.unnamed, in.Service, in.ID)
		if !known {
			t.logUnnamed(source, in.Service)
		}
		return !known
	}
	in.Source = source
	ids, ok := src.services[in.Service]
	if !ok {
		ids = &serviceInstances{}
		ids.set(in.ID, &in)
		return t.setService(source, src, in.Service, ids)
	}
	old, had := ids.get(in.ID)
	if had && old.Equal(&in) {
		return false
	}
	if !had {
		src.count++
	}
	ids.set(in.ID, &in)
	if g, fqdn := t.served(src, source, in.Service); g != nil && g.set.put(&in) {
		t.dirty[fqdn] = struct{}{}
	}
	return true
}

// delete removes one instance, reporting whether anything changed.
func (t *Table) delete(source string, src *sourceData, service, id string) bool {
	if ids, ok := src.unnamed[service]; ok {
		delete(ids, id)
		if len(ids) == 0 {
			delete(src.unnamed, service)
			return true
		}
		return false
	}
	ids, ok := src.services[service]
	if !ok {
		return false
	}
	if _, ok := ids.get(id); !ok {
		return false
	}
	if ids.len() == 1 {
		t.unlink(source, src, service)
		return true
	}
	src.count--
	ids.delete(id)
	if g, fqdn := t.served(src, source, service); g != nil && g.set.delete(instKey{source, id}) {
		t.dirty[fqdn] = struct{}{}
	}
	return true
}

// SetState implements Sink.
func (t *Table) SetState(source string, state State, err error) {
	t.write(false, func() bool {
		src := t.source(source)
		return src != nil && t.setState(src, state, err, t.now())
	})
}

func (t *Table) setState(src *sourceData, state State, err error, now time.Time) bool {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if src.status.State == state && src.status.Err == msg {
		return false
	}
	if src.status.State != state {
		src.status.Since = now
	}
	src.status.State = state
	src.status.Err = msg
	return true
}

// replaceUnnamed sets the instances of service, a name with no usable
// label (none forgets it), logging the name when it is new and reporting
// whether the number of such names changed.
func (t *Table) replaceUnnamed(source string, src *sourceData, service string, instances []Instance) bool {
	_, known := src.unnamed[service]
	delete(src.unnamed, service)
	for _, in := range instances {
		addID(src.unnamed, service, in.ID)
	}
	_, now := src.unnamed[service]
	if now && !known {
		t.logUnnamed(source, service)
	}
	return now != known
}

func (t *Table) logUnnamed(source, service string) {
	t.log.Warn("service name has no usable DNS label; its instances are not served", "source", source, "service", service)
}

// addID adds id to the IDs of service in m.
func addID(m map[string]map[string]struct{}, service, id string) {
	ids := m[service]
	if ids == nil {
		ids = map[string]struct{}{}
		m[service] = ids
	}
	ids[id] = struct{}{}
}

func (t *Table) source(name string) *sourceData {
	src, ok := t.sources[name]
	if !ok {
		t.log.Error("write from unregistered source dropped", "source", name)
	}
	return src
}

func (t *Table) fqdn(src *sourceData, service string) string {
	return Label(service) + "." + src.status.Zone
}

// served returns the group of service and its FQDN when service is the
// name served there, else nil.
func (t *Table) served(src *sourceData, source, service string) (*group, string) {
	fqdn := t.fqdn(src, service)
	g := t.groups[fqdn]
	if g == nil || g.name != service {
		return nil, fqdn
	}
	return g, fqdn
}

// link makes (source, service), whose instances are in src, a member of
// its FQDN's group.
func (t *Table) link(source string, src *sourceData, service string) {
	fqdn := t.fqdn(src, service)
	g := t.groups[fqdn]
	if g == nil {
		g = &group{}
		t.groups[fqdn] = g
	}
	m := member{source, service}
	if i, found := slices.BinarySearchFunc(g.members, m, compareMembers); !found {
		g.members = slices.Insert(g.members, i, m)
	}
	if t.choose(fqdn, g) {
		return
	}
	if service == g.name {
		for _, in := range src.services[service].all() {
			g.set.put(in)
		}
		t.dirty[fqdn] = struct{}{}
	}
}

// unlink drops service from src and from its FQDN's group.
func (t *Table) unlink(source string, src *sourceData, service string) {
	fqdn := t.fqdn(src, service)
	ids := src.services[service]
	src.count -= ids.len()
	delete(src.services, service)
	g := t.groups[fqdn]
	if g == nil {
		return
	}
	if i, found := slices.BinarySearchFunc(g.members, member{source, service}, compareMembers); found {
		g.members = slices.Delete(g.members, i, i+1)
	}
	if len(g.members) == 0 {
		delete(t.groups, fqdn)
		delete(t.collided, fqdn)
		t.clashed -= g.clashes
		t.dirty[fqdn] = struct{}{}
		return
	}
	if t.choose(fqdn, g) {
		return
	}
	if service == g.name {
		for id := range ids.all() {
			g.set.delete(instKey{source, id})
		}
		t.dirty[fqdn] = struct{}{}
	}
}

// choose picks the name g serves after its members changed, and reports
// collisions that are new. When the name served changes, it builds g's
// endpoints anew and reports true.
func (t *Table) choose(fqdn string, g *group) bool {
	contributors := g.members
	chosen := servedName(contributors)
	var lost []string
	for _, c := range contributors {
		if c.service == chosen {
			continue
		}
		key := c.source + "/" + c.service
		lost = append(lost, key)
		if !slices.Contains(t.collided[fqdn], key) {
			t.log.Warn("service name collides with another after conversion to a DNS label; not served",
				"source", c.source, "service", c.service, "label", fqdn, "served", chosen)
		}
	}
	if len(lost) > 0 {
		t.collided[fqdn] = lost
	} else {
		delete(t.collided, fqdn)
	}
	if g.set != nil && chosen == g.name {
		return false
	}
	var insts []*Instance
	for _, c := range contributors {
		if c.service == chosen {
			src := t.sources[c.source]
			g.zone = src.status.Zone
			for _, in := range src.services[c.service].all() {
				insts = append(insts, in)
			}
		}
	}
	g.name, g.set, g.full = chosen, newEndpointSet(len(insts)), true
	// In key order, each instance comes after those it could collide
	// with: no label moves while the set is built.
	slices.SortFunc(insts, func(a, b *Instance) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.ID, b.ID))
	})
	for _, in := range insts {
		g.set.add(in)
	}
	t.dirty[fqdn] = struct{}{}
	return true
}

// compareMembers orders the members of a group by service, then source.
func compareMembers(a, b member) int {
	return cmp.Or(cmp.Compare(a.service, b.service), cmp.Compare(a.source, b.source))
}

// servedName picks, among the registry names of contributors (sorted by
// name) that share one DNS label, the one whose instances are served: the
// name that is the label itself, so that no other name mapping to it
// ("-web-", "Web" or "web_" for "web") can take a service over, or else
// the first name. Only contributors of that very name are served; the
// same name from several sources is one service, their union.
func servedName(contributors []member) string {
	label := Label(contributors[0].service)
	for _, c := range contributors {
		if c.service == label {
			return label
		}
	}
	return contributors[0].service
}

// batch is what one publication takes from the table under t.mu.
type batch struct {
	written  uint64
	now      time.Time
	services []serviceChange
	sources  []SourceStatus
	zones    []string
	lost     []string
	clashed  int
}

// serviceChange is a changed service: gone (no name), all its endpoints
// (full), or its changed labels.
type serviceChange struct {
	fqdn, name, zone string
	full             bool
	endpoints        []Endpoint
	changes          []labelChange
}

// publish publishes what the writes recorded since the last publication,
// if anything: it drains the changes under t.mu, builds each changed
// service (the cost of its changes, and a copy of its endpoints) with
// t.mu released, and swaps in one snapshot. With pace, it holds back
// the large services published too recently (see paced).
func (t *Table) publish(pace bool) {
	t.pubMu.Lock()
	defer t.pubMu.Unlock()
	t.mu.Lock()
	if !t.pending {
		t.mu.Unlock()
		return
	}
	b := t.drain(pace)
	t.mu.Unlock()
	if t.building != nil {
		t.building()
	}

	changes := make(map[string]*Service, len(b.services))
	// For RecentChanges, which keeps the last maxRecentChanges: the
	// changes of one publication come at once, in no order, so any of
	// them are the last.
	fresh := make([]Change, 0, min(len(b.services), maxRecentChanges))
	for _, c := range b.services {
		old := t.services.Get(c.fqdn)
		var svc *Service
		switch {
		case c.name == "":
			if old == nil {
				continue
			}
		case c.full || old == nil:
			slices.SortFunc(c.endpoints, func(a, b Endpoint) int { return cmp.Compare(a.Label, b.Label) })
			svc = &Service{Name: Label(c.name), Zone: c.zone, FQDN: c.fqdn, Endpoints: c.endpoints}
		case len(c.changes) > 0:
			svc = &Service{Name: Label(c.name), Zone: c.zone, FQDN: c.fqdn, Endpoints: applyChanges(old.Endpoints, c.changes)}
		default:
			continue
		}
		changes[c.fqdn] = svc
		if ch := (Change{Time: b.now, FQDN: c.fqdn, Instances: svc.size(), Before: old.size()}); (ch.Instances > 0 || ch.Before > 0) && len(fresh) < maxRecentChanges {
			fresh = append(fresh, ch)
		}
	}
	if len(changes) > 0 {
		t.record(fresh)
		t.services = t.services.with(changes)
	}
	t.version++
	log := &changeLog{version: t.version, many: len(changes) > maxLoggedChanges}
	if !log.many {
		log.fqdns = slices.Collect(maps.Keys(changes))
	}
	log.earlier.Store(t.snapshot.Load().log)
	// The logs of the last maxChangeLog publications stay linked; the
	// oldest lets go of the ones before it.
	t.logs[t.version%maxChangeLog] = log
	if oldest := t.logs[(t.version+1)%maxChangeLog]; oldest != nil {
		oldest.earlier.Store(nil)
	}
	snap := &Snapshot{
		Version:                 t.version,
		Services:                t.services,
		Zones:                   b.zones,
		Sources:                 b.sources,
		Collisions:              b.lost,
		InstanceLabelCollisions: b.clashed,
		Changes:                 t.recent,
		Writes:                  b.written,
		superseded:              make(chan struct{}),
		table:                   t,
		log:                     log,
	}
	old := t.snapshot.Swap(snap)
	close(old.superseded)
}

// drain takes what a publication needs from the table, holding back the
// large services published too recently when pace is set; the caller
// holds t.mu and t.pubMu.
func (t *Table) drain(pace bool) *batch {
	b := &batch{written: t.written, now: t.now(), services: make([]serviceChange, 0, len(t.dirty))}
	t.pending = false
	t.held = time.Time{}
	var held map[string]struct{}
	hold := func(fqdn string, until time.Time) {
		if held == nil {
			held = map[string]struct{}{}
		}
		held[fqdn] = struct{}{}
		if t.held.IsZero() || until.Before(t.held) {
			t.held = until
		}
	}
	now := time.Now()  // not t.now: due times are for Run's timer
	var large []string // large groups due
	small := 0         // other groups taken
	for fqdn := range t.dirty {
		g := t.groups[fqdn]
		if pace && g != nil && t.paced(g.set.Len()) > 0 {
			switch {
			case now.Before(g.due):
				hold(fqdn, g.due)
				continue
			case !g.yielded:
				large = append(large, fqdn)
				continue
			}
		} else {
			small++
		}
		b.services = append(b.services, t.take(fqdn, g, now))
	}
	// A large group due yields once to the other changes: they go out
	// without its cost, and it goes out next, at once.
	for _, fqdn := range large {
		g := t.groups[fqdn]
		if small > 0 {
			g.yielded = true
			hold(fqdn, now)
			continue
		}
		b.services = append(b.services, t.take(fqdn, g, now))
	}
	// Not cleared: ranging over a cleared map costs its largest size.
	t.dirty = map[string]struct{}{}
	if held != nil {
		// The snapshot holds the writes made before this one's only
		// when it holds every group written.
		t.dirty, t.pending = held, true
		b.written = t.snapshot.Load().Writes
	}
	zones := map[string]struct{}{}
	for _, src := range t.sources {
		st := src.status
		st.Services = len(src.services)
		st.Instances = src.count
		st.InvalidNames = len(src.unnamed)
		b.sources = append(b.sources, st)
		zones[st.Zone] = struct{}{}
	}
	slices.SortFunc(b.sources, func(a, b SourceStatus) int { return cmp.Compare(a.Name, b.Name) })
	b.zones = slices.Sorted(maps.Keys(zones))
	for _, lost := range t.collided {
		b.lost = append(b.lost, lost...)
	}
	slices.Sort(b.lost)
	b.clashed = t.clashed
	return b
}

// take drains the changes of fqdn, whose group is g (nil: gone), for a
// publication at now; the caller holds t.mu and t.pubMu.
func (t *Table) take(fqdn string, g *group, now time.Time) serviceChange {
	c := serviceChange{fqdn: fqdn}
	if g == nil {
		return c
	}
	g.due, g.yielded = now.Add(t.paced(g.set.Len())), false
	t.setClashes(fqdn, g)
	if g.set.Len() > 0 {
		c.name, c.zone, c.full = g.name, g.zone, g.full
		if c.full || t.services.Get(fqdn) == nil {
			c.endpoints = g.set.all()
			for i := range c.endpoints {
				c.endpoints[i].Version = t.nextVersion()
			}
		} else {
			c.changes = g.set.takeChanges()
			for _, ch := range c.changes {
				if ch.ep != nil {
					ch.ep.Version = t.nextVersion()
				}
			}
		}
		g.full = false
	}
	return c
}

// setClashes counts the clashing instances of g, the group of fqdn, and
// logs them when there are more than before.
func (t *Table) setClashes(fqdn string, g *group) {
	n := len(g.set.clashes)
	if n > g.clashes {
		t.log.Warn("instance IDs give a DNS label taken in their service even with its hash suffix; given a further suffix",
			"service", fqdn, "instances", g.set.clashIDs())
	}
	t.clashed += n - g.clashes
	g.clashes = n
}

// Change is one change of a service in the table, as the status page shows
// it.
type Change struct {
	Time time.Time
	FQDN string
	// Instances is the number of instances after the change; 0 means the
	// service is gone.
	Instances int
	// Before is the number of instances before the change; 0 means the
	// service is new.
	Before int
}

// maxRecentChanges is how many changes RecentChanges keeps.
const maxRecentChanges = 100

// record notes fresh, the changes about to be published (at most
// maxRecentChanges), newest first, in a new slice (the old one belongs to
// published snapshots); the caller holds t.pubMu.
func (t *Table) record(fresh []Change) {
	if len(fresh) == 0 {
		return
	}
	slices.Reverse(fresh)
	keep := min(len(t.recent), maxRecentChanges-len(fresh))
	t.recent = append(fresh[:len(fresh):len(fresh)], t.recent[:keep]...)
}

// size is the number of endpoints of s, 0 for nil.
func (s *Service) size() int {
	if s == nil {
		return 0
	}
	return len(s.Endpoints)
}
