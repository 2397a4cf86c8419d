package cache

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"strconv"
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
	Instance
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

	superseded chan struct{}
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

type sourceData struct {
	status   SourceStatus
	services map[string]map[string]Instance // registry service name -> id -> instance
	count    int                            // instances in services
	// unnamed holds the IDs of the instances of service names with no
	// usable label, which are not served: a name is logged when it
	// enters, and forgotten when its last instance goes.
	unnamed map[string]map[string]struct{}
}

// Table merges every source's instances and publishes snapshots. It is safe
// for concurrent use; readers never block writers.
type Table struct {
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	sources  map[string]*sourceData
	members  map[string]map[member]struct{} // FQDN -> contributing (source, service)
	services *Services                      // as in the last snapshot
	dirty    map[string]struct{}            // FQDNs to rebuild
	recent   []Change                       // the last changes, newest first, as published
	collided map[string][]string            // FQDN -> "source/service" names not served
	clashes  map[string]int                 // FQDN -> instances whose suffixed label was taken
	clashed  int                            // the sum of clashes
	version  uint64

	snap atomic.Pointer[Snapshot]
}

// NewTable returns an empty table with no sources.
func NewTable(log *slog.Logger) *Table {
	if log == nil {
		log = slog.Default()
	}
	t := &Table{
		log:      log,
		now:      time.Now,
		sources:  map[string]*sourceData{},
		members:  map[string]map[member]struct{}{},
		services: &Services{},
		dirty:    map[string]struct{}{},
		collided: map[string][]string{},
		clashes:  map[string]int{},
	}
	t.snap.Store(&Snapshot{Services: t.services, superseded: make(chan struct{})})
	return t
}

// AddSource registers a source and the zone its services live in. A source
// must be added before it writes to the table; until it lists, the table is
// not ready.
func (t *Table) AddSource(name, zone string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.sources[name]; ok {
		return
	}
	t.sources[name] = &sourceData{
		status:   SourceStatus{Name: name, Zone: zone, State: StateSyncing, Since: t.now()},
		services: map[string]map[string]Instance{},
		unnamed:  map[string]map[string]struct{}{},
	}
	t.publish()
}

// RemoveSource drops a source and everything it held.
func (t *Table) RemoveSource(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	src, ok := t.sources[name]
	if !ok {
		return
	}
	for svc := range src.services {
		t.unlink(name, src, svc)
	}
	delete(t.sources, name)
	t.publish()
}

// Snapshot returns the latest snapshot. It never blocks.
func (t *Table) Snapshot() *Snapshot { return t.snap.Load() }

// Replace implements Sink.
func (t *Table) Replace(source string, instances []Instance) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if src := t.source(source); src != nil {
		t.replace(source, src, instances)
		t.publish()
	}
}

// replace sets everything source holds and marks it listed and
// connected, without publishing; the caller holds t.mu.
func (t *Table) replace(source string, src *sourceData, instances []Instance) {
	next := map[string]map[string]Instance{}
	unnamed := map[string]map[string]struct{}{}
	for _, in := range instances {
		if Label(in.Service) == "" {
			addID(unnamed, in.Service, in.ID)
			continue
		}
		in.Source = source
		ids := next[in.Service]
		if ids == nil {
			ids = map[string]Instance{}
			next[in.Service] = ids
		}
		ids[in.ID] = in
	}
	for svc, ids := range src.services {
		nids, ok := next[svc]
		if !ok {
			t.unlink(source, src, svc)
			continue
		}
		if !maps.EqualFunc(ids, nids, func(a, b Instance) bool { return a.Equal(&b) }) {
			src.services[svc] = nids
			t.markDirty(source, src, svc)
		}
	}
	for svc, nids := range next {
		if _, ok := src.services[svc]; !ok {
			src.services[svc] = nids
			t.link(source, src, svc)
		}
	}
	for svc := range unnamed {
		if _, known := src.unnamed[svc]; !known {
			t.logUnnamed(source, svc)
		}
	}
	src.unnamed = unnamed
	src.count = 0
	for _, ids := range src.services {
		src.count += len(ids)
	}
	now := t.now()
	src.status.Listed = true
	src.status.LastList = now
	src.status.Seeded = time.Time{}
	t.setState(src, StateConnected, nil, now)
}

// ReplaceService implements Sink, publishing once.
func (t *Table) ReplaceService(source, service string, instances []Instance) {
	t.mu.Lock()
	defer t.mu.Unlock()
	src := t.source(source)
	if src == nil {
		return
	}
	if Label(service) == "" {
		t.replaceUnnamed(source, src, service, instances)
		return
	}
	next := make(map[string]Instance, len(instances))
	for _, in := range instances {
		in.Source = source
		next[in.ID] = in
	}
	ids, had := src.services[service]
	src.count += len(next) - len(ids)
	switch {
	case len(next) == 0 && had:
		t.unlink(source, src, service)
	case len(next) == 0:
		return
	case !had:
		src.services[service] = next
		t.link(source, src, service)
	case maps.EqualFunc(ids, next, func(a, b Instance) bool { return a.Equal(&b) }):
		return
	default:
		src.services[service] = next
		t.markDirty(source, src, service)
	}
	t.publish()
}

// Put implements Sink.
func (t *Table) Put(source string, in Instance) {
	t.mu.Lock()
	defer t.mu.Unlock()
	src := t.source(source)
	if src == nil {
		return
	}
	if Label(in.Service) == "" {
		_, known := src.unnamed[in.Service]
		addID(src.unnamed, in.Service, in.ID)
		if !known {
			t.logUnnamed(source, in.Service)
			t.publish()
		}
		return
	}
	in.Source = source
	ids, ok := src.services[in.Service]
	if !ok {
		src.services[in.Service] = map[string]Instance{in.ID: in}
		src.count++
		t.link(source, src, in.Service)
		t.publish()
		return
	}
	old, had := ids[in.ID]
	if had && old.Equal(&in) {
		return
	}
	if !had {
		src.count++
	}
	ids[in.ID] = in
	t.markDirty(source, src, in.Service)
	t.publish()
}

// Delete implements Sink.
func (t *Table) Delete(source, service, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	src := t.source(source)
	if src == nil {
		return
	}
	if ids, ok := src.unnamed[service]; ok {
		delete(ids, id)
		if len(ids) == 0 {
			delete(src.unnamed, service)
			t.publish()
		}
		return
	}
	ids, ok := src.services[service]
	if !ok {
		return
	}
	if _, ok := ids[id]; !ok {
		return
	}
	src.count--
	if len(ids) == 1 {
		t.unlink(source, src, service)
	} else {
		delete(ids, id)
		t.markDirty(source, src, service)
	}
	t.publish()
}

// SetState implements Sink.
func (t *Table) SetState(source string, state State, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	src := t.source(source)
	if src == nil {
		return
	}
	if t.setState(src, state, err, t.now()) {
		t.publish()
	}
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
// label (none forgets it), logging the name when it is new and publishing
// when the number of such names changes.
func (t *Table) replaceUnnamed(source string, src *sourceData, service string, instances []Instance) {
	_, known := src.unnamed[service]
	delete(src.unnamed, service)
	for _, in := range instances {
		addID(src.unnamed, service, in.ID)
	}
	_, now := src.unnamed[service]
	if now && !known {
		t.logUnnamed(source, service)
	}
	if now != known {
		t.publish()
	}
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

func (t *Table) link(source string, src *sourceData, service string) {
	fqdn := t.fqdn(src, service)
	m := t.members[fqdn]
	if m == nil {
		m = map[member]struct{}{}
		t.members[fqdn] = m
	}
	m[member{source, service}] = struct{}{}
	t.dirty[fqdn] = struct{}{}
}

func (t *Table) unlink(source string, src *sourceData, service string) {
	fqdn := t.fqdn(src, service)
	delete(src.services, service)
	if m := t.members[fqdn]; m != nil {
		delete(m, member{source, service})
		if len(m) == 0 {
			delete(t.members, fqdn)
		}
	}
	t.dirty[fqdn] = struct{}{}
}

func (t *Table) markDirty(_ string, src *sourceData, service string) {
	t.dirty[t.fqdn(src, service)] = struct{}{}
}

// publish rebuilds the dirty services and swaps in a new snapshot. The
// caller holds t.mu.
func (t *Table) publish() {
	services := t.services
	if len(t.dirty) > 0 {
		changes := make(map[string]*Service, len(t.dirty))
		for fqdn := range t.dirty {
			changes[fqdn] = t.build(fqdn) // nil: gone
		}
		clear(t.dirty)
		t.record(changes)
		services = t.services.with(changes)
		t.services = services
	}
	t.version++
	snap := &Snapshot{
		Version:    t.version,
		Services:   services,
		Changes:    t.recent,
		superseded: make(chan struct{}),
	}
	zones := map[string]struct{}{}
	for _, src := range t.sources {
		st := src.status
		st.Services = len(src.services)
		st.Instances = src.count
		st.InvalidNames = len(src.unnamed)
		snap.Sources = append(snap.Sources, st)
		zones[st.Zone] = struct{}{}
	}
	slices.SortFunc(snap.Sources, func(a, b SourceStatus) int { return cmp.Compare(a.Name, b.Name) })
	snap.Zones = slices.Sorted(maps.Keys(zones))
	for _, names := range t.collided {
		snap.Collisions = append(snap.Collisions, names...)
	}
	slices.Sort(snap.Collisions)
	snap.InstanceLabelCollisions = t.clashed
	old := t.snap.Swap(snap)
	close(old.superseded)
}

// build merges every contributor of fqdn into one Service, or returns nil
// when nothing is left.
func (t *Table) build(fqdn string) *Service {
	m := t.members[fqdn]
	if len(m) == 0 {
		delete(t.collided, fqdn)
		t.setClashes(fqdn, nil)
		return nil
	}
	contributors := slices.SortedFunc(maps.Keys(m), func(a, b member) int {
		return cmp.Or(cmp.Compare(a.service, b.service), cmp.Compare(a.source, b.source))
	})
	chosen := servedName(contributors)
	var insts []Instance
	var lost []string
	var zone string
	before := t.collided[fqdn]
	for _, c := range contributors {
		if c.service != chosen {
			key := c.source + "/" + c.service
			lost = append(lost, key)
			if !slices.Contains(before, key) {
				t.log.Warn("service name collides with another after conversion to a DNS label; not served",
					"source", c.source, "service", c.service, "label", fqdn, "served", chosen)
			}
			continue
		}
		src := t.sources[c.source]
		zone = src.status.Zone
		for _, in := range src.services[c.service] {
			insts = append(insts, in)
		}
	}
	if len(lost) > 0 {
		t.collided[fqdn] = lost
	} else {
		delete(t.collided, fqdn)
	}
	if len(insts) == 0 {
		t.setClashes(fqdn, nil)
		return nil
	}
	svc := &Service{Name: Label(chosen), Zone: zone, FQDN: fqdn}
	var clashes []string
	svc.Endpoints, clashes = endpoints(insts)
	t.setClashes(fqdn, clashes)
	return svc
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

// setClashes records the instances of fqdn, as "source/id", whose
// suffixed label was taken, and logs the new ones.
func (t *Table) setClashes(fqdn string, clashes []string) {
	old := t.clashes[fqdn]
	if len(clashes) > old {
		t.log.Warn("instance IDs give a DNS label taken in their service even with its hash suffix; given a further suffix",
			"service", fqdn, "instances", clashes)
	}
	t.clashed += len(clashes) - old
	if len(clashes) == 0 {
		delete(t.clashes, fqdn)
	} else {
		t.clashes[fqdn] = len(clashes)
	}
}

func foldCase(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// endpoints deduplicates instances by address and port (first source and
// ID win) and gives each a label unique within the service: the label of
// its ID, or when that is taken or empty the label with a hash of source
// and ID (see suffixed). When that too is taken, which only IDs crafted
// to collide bring about, it hashes again until the label is free; those
// instances are returned as clashes, "source/id".
func endpoints(insts []Instance) (eps []Endpoint, clashes []string) {
	slices.SortFunc(insts, func(a, b Instance) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.ID, b.ID))
	})
	type hostPort struct {
		addr string
		port uint16
		id   string // a skydns record's: its name tells it apart
	}
	seen := make(map[hostPort]struct{}, len(insts))
	used := make(map[string]struct{}, len(insts))
	eps = make([]Endpoint, 0, len(insts))
	for _, in := range insts {
		key := hostPort{foldCase(in.Address), in.Port, ""}
		if in.SkyDNS != nil {
			key.id = in.Source + "/" + in.ID
		}
		if _, dup := seen[key]; dup {
			continue
		}
		seen[key] = struct{}{}
		base := Label(in.ID)
		label := base
		if _, taken := used[label]; taken || label == "" {
			id := in.Source + "/" + in.ID
			label = suffixed(base, id)
			// Each round hashes a new key, and at most len(used)
			// labels are taken: a free one comes but for a hash
			// collision.
			for n := 1; ; n++ {
				if _, taken := used[label]; !taken {
					break
				}
				if n == 1 {
					clashes = append(clashes, id)
				}
				label = suffixed(base, id+"#"+strconv.Itoa(n))
			}
		}
		used[label] = struct{}{}
		eps = append(eps, Endpoint{Label: label, Instance: in})
	}
	slices.SortFunc(eps, func(a, b Endpoint) int { return cmp.Compare(a.Label, b.Label) })
	return eps, clashes
}

// suffixed appends a short stable hash of key to label, keeping it a valid
// label of at most 63 octets.
func suffixed(label, key string) string {
	h := fnv.New32a()
	h.Write([]byte(key))
	suffix := fmt.Sprintf("%08x", h.Sum32())
	if label == "" {
		return "i" + suffix
	}
	if len(label) > 63-9 {
		label = label[:63-9]
	}
	return label + "-" + suffix
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

// record notes the changes about to be published, in a new slice (the
// old one belongs to published snapshots); the caller holds t.mu.
func (t *Table) record(changes map[string]*Service) {
	now := t.now()
	var fresh []Change
	for fqdn, svc := range changes {
		c := Change{Time: now, FQDN: fqdn}
		if svc != nil {
			c.Instances = len(svc.Endpoints)
		}
		if old := t.services.Get(fqdn); old != nil {
			c.Before = len(old.Endpoints)
		}
		if c.Instances == 0 && c.Before == 0 {
			continue
		}
		fresh = append(fresh, c)
	}
	if len(fresh) == 0 {
		return
	}
	slices.Reverse(fresh)
	keep := min(len(t.recent), max(maxRecentChanges-len(fresh), 0))
	t.recent = append(fresh[:min(len(fresh), maxRecentChanges):min(len(fresh), maxRecentChanges)], t.recent[:keep]...)
}
