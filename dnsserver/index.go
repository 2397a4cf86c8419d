package dnsserver

import (
	"maps"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/cache/shardmap"
)

// index is the answer table compiled from one cache snapshot. It is
// immutable once published; the hot path reads it without locks.
type index struct {
	stamp   *stamp          // the index's identity, for the wire cache
	set     *settings       // the options answers follow
	snap    *cache.Snapshot // the snapshot compiled
	version uint64
	ready   bool // every source had listed in the snapshot
	ttl     uint32
	zones   []*zone                         // longest name first, for suffix matching
	shards  [cache.NumShards]*compiledShard // services by FQDN, sharded as in the snapshot

	statsOnce sync.Once
	stats     map[*zone]*zoneStats // the shards' statistics summed, on first use

	skyRoots map[string]*skyNode // the trees of skydns names by zone

	fresh []*compiledService // the services compiled for this index (see warm)
}

// warm builds the record sets of the services compiled for idx, which
// queries would otherwise build on first use, until stop is closed.
func (idx *index) warm(stop <-chan struct{}) {
	for _, cs := range idx.fresh {
		select {
		case <-stop:
			return
		default:
		}
		cs.setsBy(byFollow)
	}
}

// zone holds what the apex answers. The apex is its own name server
// (the NS target and the SOA MNAME), so no service name can hide it.
type zone struct {
	name string
	soa  dns.SOA
	ns   dns.NS
	glue []dns.RR // A/AAAA of the apex, the name server
}

// zoneStats tell which empty non-terminals of a zone exist.
type zoneStats struct {
	tags map[string]int // tag label -> services carrying it (for _<tag> non-terminals)
	svcs int            // services in the zone (for _tcp and _udp non-terminals)
	tls  int            // services with a named port "tls" (for the _tls non-terminal)
}

// compiledShard is one shard of compiled services; it is reused as a whole
// while its snapshot shard is unchanged, with the reverse map and the zone
// statistics of its services, so that a change rebuilds those for its
// shard alone.
type compiledShard struct {
	src      *cache.ServiceShard
	services *shardmap.Map[*compiledService]

	ptrOnce sync.Once
	ptr     map[string][]dns.PTR // reverse name -> PTRs, built on first use

	statsOnce sync.Once
	stats     map[string]*zoneStats // by zone name, built on first use
}

// rrsets are the records of a name that answers for a set of instances.
// The sets of named ports hold SRV records and their glue alone.
type rrsets struct {
	a    []dns.A
	aaaa []dns.AAAA
	srv  []dns.SRV
	glue [][]dns.RR // address records of each SRV target, aligned with srv
	eps  []int32    // the endpoint of each SRV record, aligned with srv

	local *rrsets      // the set as locality answers it; nil: as it is
	loc   localResults // of a locality view: local or spilled over
}

// instNode answers for one instance name.
type instNode struct {
	a     []dns.A
	aaaa  []dns.AAAA
	txt   []dns.TXT
	srv   []dns.SRV   // the instance's own SRV record
	glue  []dns.RR    // the address record of its target
	cname []dns.CNAME // when the instance address is a host name
}

// compiledService holds every answer under one service name. It depends on
// the cache.Service alone, so an unchanged service is reused as is, and a
// changed one reuses the records of its unchanged endpoints.
//
// Compiling a service costs its changed endpoints; its record sets, which
// copy every endpoint's records, are built on first use (sets), so that a
// burst into a large service does not hold up the snapshots that carry
// other changes: Follow builds them until a newer snapshot comes
// (index.warm), else the first query that needs them does.
type compiledService struct {
	stamp *stamp // the compiled service's identity, for the wire cache
	svc   *cache.Service
	ttl   uint32
	// eps are the records of each endpoint, aligned with svc.Endpoints
	// (sorted by label: instance finds an instance name by binary search);
	// read through records, since a small service may compile them on
	// first use (see lazyRecords). epsReady is set once they are.
	eps      []*endpointRecords
	epsOnce  sync.Once
	epsReady atomic.Bool
	// sky are the records of a service of the skydns layout, one for
	// each endpoint; they answer from the zone's tree of names (see
	// skydns.go), not as a service. Nil for other layouts.
	sky []*skyRecord

	locality *Locality // what the sets' locality views follow
	metrics  *Metrics  // counts the sets built
	setsOnce sync.Once
	built    *serviceSets
}

// serviceSets are the record sets of a service.
type serviceSets struct {
	all  *rrsets
	tags map[string]*rrsets
	// ports are the SRV sets of named ports (_<name>._tcp.<svc>), by port
	// name; nil when no instance has one.
	ports map[string]*rrsets
	// tiers are the locality tier of each endpoint; nil when locality is
	// off or no instance has locality data.
	tiers []tier
}

// sets returns cs's record sets, building them on first use.
func (cs *compiledService) sets() *serviceSets { return cs.setsBy(byQuery) }

// setsBy is sets, counting the sets built by who builds them: a query
// (byQuery) or Follow (byFollow).
func (cs *compiledService) setsBy(who int) *serviceSets {
	cs.setsOnce.Do(func() {
		cs.built = cs.buildSets()
		cs.metrics.setsBuilt(who)
	})
	return cs.built
}

// endpointRecords are what one endpoint contributes to its service's
// answers. They depend on the endpoint alone (and the service's name and
// the TTL), so they are compiled once and reused while the endpoint's
// label and version stay (see cache.Endpoint.Version).
type endpointRecords struct {
	node  *instNode // the records at the instance's own name
	srv   dns.SRV   // its SRV record in the service's sets
	glue  []dns.RR  // the address record of the SRV target
	tags  []string  // its tags' labels, each once
	ports []namedPort
	// reverse is the reverse name of the instance's address, "" for a
	// host name; ptr its PTR record.
	reverse string
	ptr     dns.PTR
}

// namedPort is a named port of an instance, by label.
type namedPort struct {
	label string
	port  uint16
}

// compile builds the index for snap, reusing what prev compiled: whole
// shards that did not change, and services that did not change within the
// others. A change costs its shard, not the table.
func compile(prev *index, snap *cache.Snapshot, set *settings) *index {
	defaultZone, ttl, negTTL, nsAddrs := set.Zone, set.ttl, set.negTTL, set.NSAddrs
	if prev != nil && (prev.set.ttl != ttl || prev.set != set && !prev.set.Locality.equal(&set.Locality)) {
		prev = nil // records carry the TTL, sets the locality: compile everything again
	}
	idx := &index{stamp: new(stamp), set: set, snap: snap, version: snap.Version, ready: snap.Ready(), ttl: ttl}
	zones := map[string]*zone{defaultZone: newZone(defaultZone, uint32(snap.Version), ttl, negTTL, nsAddrs)}
	for _, name := range snap.Zones {
		if zones[name] == nil {
			zones[name] = newZone(name, uint32(snap.Version), ttl, negTTL, nsAddrs)
		}
	}
	// What changed since prev, by shard, when the snapshot can tell;
	// else every service of a changed shard is compared.
	var changed []shardChange // when known, sorted by shard
	var known bool
	var swaps []swap // the services replaced, for the skydns trees
	if prev != nil {
		fqdns, ok := snap.ChangedSince(prev.snap)
		if known = ok; ok {
			changed = byShard(fqdns)
			swaps = make([]swap, 0, len(fqdns))
		}
		set.metrics.compiled(ok)
	}
	for i := range cache.NumShards {
		var mine []shardChange // the changes in shard i, when known
		if known {
			n := 0
			for n < len(changed) && changed[n].shard == i {
				n++
			}
			mine, changed = changed[:n], changed[n:]
		}
		src := snap.Services.Shard(i)
		var old *compiledShard
		if prev != nil {
			old = prev.shards[i]
		}
		if old != nil && old.src == src {
			idx.shards[i] = old
			continue
		}
		if src == nil { // the shard's services are gone
			if old != nil {
				for _, was := range old.services.All() {
					swaps = append(swaps, swap{was, nil})
				}
			}
			continue
		}
		// A copy of the old shard's services (its buckets shared until
		// changed), changed where the snapshot changed.
		var services *shardmap.Map[*compiledService]
		if old != nil {
			services = old.services
		}
		edit := services.Edit()
		update := func(fqdn string, svc *cache.Service) {
			was, _ := edit.Get(fqdn)
			switch {
			case was != nil && was.svc == svc, was == nil && svc == nil:
				return
			case svc == nil:
				edit.Delete(fqdn)
				swaps = append(swaps, swap{was, nil})
				return
			}
			cs := compileSkyDNS(svc, ttl, was)
			if cs == nil {
				cs = compileService(svc, was, set)
				idx.fresh = append(idx.fresh, cs)
			}
			edit.Set(fqdn, cs)
			swaps = append(swaps, swap{was, cs})
		}
		if known && old != nil {
			for _, c := range mine {
				update(c.fqdn, src.Get(c.fqdn))
			}
		} else {
			for fqdn, svc := range src.All() {
				update(fqdn, svc)
			}
			if edit.Len() != src.Len() {
				for fqdn := range services.All() { // the old map: edits copy what they change
					if src.Get(fqdn) == nil {
						update(fqdn, nil)
					}
				}
			}
		}
		idx.shards[i] = &compiledShard{src: src, services: edit.Map()}
	}
	idx.skyRoots = skyTrees(prev, swaps)
	idx.zones = slices.SortedFunc(maps.Values(zones), func(a, b *zone) int {
		return len(b.name) - len(a.name)
	})
	return idx
}

// shardChange is a changed service and its shard.
type shardChange struct {
	shard int
	fqdn  string
}

// byShard returns fqdns sorted by shard, for compile to take shard by
// shard.
func byShard(fqdns []string) []shardChange {
	out := make([]shardChange, len(fqdns))
	for j, fqdn := range fqdns {
		out[j] = shardChange{cache.ShardOf(fqdn), fqdn}
	}
	slices.SortFunc(out, func(a, b shardChange) int { return a.shard - b.shard })
	return out
}

// service returns the compiled service with fqdn, or nil.
func (idx *index) service(fqdn string) *compiledService {
	sh := idx.shards[cache.ShardOf(fqdn)]
	if sh == nil {
		return nil
	}
	cs, _ := sh.services.Get(fqdn)
	return cs
}

// zoneStats returns the statistics of z, summing every shard's the first
// time one is asked for (empty non-terminals are rare questions).
func (idx *index) zoneStats(z *zone) *zoneStats {
	idx.statsOnce.Do(func() {
		idx.stats = map[*zone]*zoneStats{}
		for _, z := range idx.zones {
			st := &zoneStats{tags: map[string]int{}}
			for _, sh := range idx.shards {
				if sh != nil {
					st.add(sh.zoneStats()[z.name])
				}
			}
			idx.stats[z] = st
		}
	})
	return idx.stats[z]
}

// zoneStats returns the statistics of the shard's services by zone.
func (sh *compiledShard) zoneStats() map[string]*zoneStats {
	sh.statsOnce.Do(func() {
		sh.stats = map[string]*zoneStats{}
		for _, cs := range sh.services.All() {
			if cs.sky != nil {
				continue // skydns records have no _tcp, _udp or tags
			}
			st := sh.stats[cs.svc.Zone]
			if st == nil {
				st = &zoneStats{tags: map[string]int{}}
				sh.stats[cs.svc.Zone] = st
			}
			st.svcs++
			sets := cs.sets()
			for tag := range sets.tags {
				st.tags[tag]++
			}
			if sets.ports["tls"] != nil {
				st.tls++
			}
		}
	})
	return sh.stats
}

// add adds the statistics of o (nil: none) to st.
func (st *zoneStats) add(o *zoneStats) {
	if o == nil {
		return
	}
	st.svcs += o.svcs
	st.tls += o.tls
	for tag, n := range o.tags {
		st.tags[tag] += n
	}
}

func newZone(name string, serial, ttl, negTTL uint32, nsAddrs []netip.Addr) *zone {
	nsName := name // no registry service can take the apex
	z := &zone{name: name}
	z.soa = dns.SOA{
		Hdr:     dns.RR_Header{Name: name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: negTTL},
		Ns:      nsName,
		Mbox:    "hostmaster." + name,
		Serial:  serial,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  negTTL,
	}
	z.ns = dns.NS{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: ttl}, Ns: nsName}
	for _, ip := range nsAddrs {
		z.glue = append(z.glue, addrRR(nsName, ip, ttl))
	}
	return z
}

func addrRR(name string, ip netip.Addr, ttl uint32) dns.RR {
	if ip.Is4() {
		return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: net.IP(ip.AsSlice())}
	}
	return &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: net.IP(ip.AsSlice())}
}

// lazyRecords is the most endpoints of a service whose records compile on
// first use when there are none to reuse: a burst of new services (or
// changes to services nobody asked for since their last change) then
// costs the compile its services, not their records, which the first
// query of each, or Follow once the snapshot lasts (index.warm), builds.
// A larger service compiles them at once, so that its first query does
// not wait for them.
const lazyRecords = 64

// compileService compiles svc, reusing the records of the endpoints that
// prev (the service's previous compilation, or nil) compiled and that did
// not change since: a change costs the endpoints it changed. Its records
// and sets follow set.
func compileService(svc *cache.Service, prev *compiledService, set *settings) *compiledService {
	cs := &compiledService{stamp: new(stamp), svc: svc, ttl: set.ttl, locality: &set.Locality, metrics: set.metrics}
	if prev == nil || !prev.epsReady.Load() {
		if len(svc.Endpoints) <= lazyRecords {
			return cs
		}
		prev = nil // no records to reuse
	}
	eps := compileRecords(svc, prev, cs.ttl)
	cs.epsOnce.Do(func() { cs.setRecords(eps) })
	return cs
}

// compileRecords compiles the records of svc's endpoints, reusing those
// of prev (nil: none; else its records are compiled) that did not change.
func compileRecords(svc *cache.Service, prev *compiledService, ttl uint32) []*endpointRecords {
	eps := make([]*endpointRecords, len(svc.Endpoints))
	var was unchanged
	if prev != nil {
		was.olds = prev.svc.Endpoints
	}
	for i := range svc.Endpoints {
		ep := &svc.Endpoints[i]
		if j := was.find(ep); j >= 0 {
			eps[i] = prev.eps[j]
		} else {
			eps[i] = compileEndpoint(svc, ep, ttl)
		}
	}
	return eps
}

// records returns the records of cs's endpoints, compiling them on first
// use; none for a service of the skydns layout (see sky).
func (cs *compiledService) records() []*endpointRecords {
	if cs.sky != nil {
		return nil
	}
	cs.epsOnce.Do(func() { cs.setRecords(compileRecords(cs.svc, nil, cs.ttl)) })
	return cs.eps
}

// setRecords sets cs's records; the caller runs it in cs.epsOnce.
func (cs *compiledService) setRecords(eps []*endpointRecords) {
	cs.eps = eps
	cs.epsReady.Store(true)
}

// buildSets builds cs's record sets from its endpoints' records, with
// their locality views.
func (cs *compiledService) buildSets() *serviceSets {
	eps := cs.records()
	n := len(eps)
	s := &serviceSets{
		all:  &rrsets{a: make([]dns.A, 0, n), srv: make([]dns.SRV, 0, n), glue: make([][]dns.RR, 0, n), eps: make([]int32, 0, n)},
		tags: map[string]*rrsets{},
	}
	for i, rec := range eps {
		s.all.add(i, rec.node, rec.srv, rec.glue)
		for _, label := range rec.tags {
			set := s.tags[label]
			if set == nil {
				set = &rrsets{}
				s.tags[label] = set
			}
			set.add(i, rec.node, rec.srv, rec.glue)
		}
		for _, p := range rec.ports {
			if s.ports == nil {
				s.ports = map[string]*rrsets{}
			}
			set := s.ports[p.label]
			if set == nil {
				set = &rrsets{}
				s.ports[p.label] = set
			}
			srv := rec.srv
			srv.Port = p.port
			set.srv = append(set.srv, srv)
			set.glue = append(set.glue, rec.glue)
			set.eps = append(set.eps, int32(i))
		}
	}
	if cs.locality != nil {
		cs.locality.localize(cs.svc, s)
	}
	return s
}

// unchanged finds the endpoints of a new compilation of a service, taken
// in order, among olds, the endpoints of its previous one (both sorted by
// label).
type unchanged struct {
	olds []cache.Endpoint
	next int
}

// find returns the index in olds of ep unchanged (same label and version),
// or -1; ep must come after the endpoints asked for before it.
func (u *unchanged) find(ep *cache.Endpoint) int {
	for u.next < len(u.olds) && u.olds[u.next].Label < ep.Label {
		u.next++
	}
	if ep.Version != 0 && u.next < len(u.olds) && u.olds[u.next].Label == ep.Label && u.olds[u.next].Version == ep.Version {
		return u.next
	}
	return -1
}

// compileEndpoint compiles the records of ep, an endpoint of svc.
func compileEndpoint(svc *cache.Service, ep *cache.Endpoint, ttl uint32) *endpointRecords {
	target := svc.InstanceName(ep)
	node := &instNode{}
	var glue []dns.RR
	var reverse string
	if ip, isIP := ep.IP(); isIP {
		if ip.Zone() == "" {
			reverse = reverseName(ip)
		}
		glue = []dns.RR{addrRR(target, ip, ttl)}
		if ip.Is4() {
			node.a = []dns.A{*glue[0].(*dns.A)}
		} else {
			node.aaaa = []dns.AAAA{*glue[0].(*dns.AAAA)}
		}
	} else {
		// A host name is its own SRV target: an alias may never be one.
		target = dns.Fqdn(strings.ToLower(ep.Address))
		node.cname = []dns.CNAME{{Hdr: hdr(dns.TypeCNAME, ttl), Target: target}}
	}
	if txt := metaTXT(ep.Meta); len(txt) > 0 {
		node.txt = []dns.TXT{{Hdr: hdr(dns.TypeTXT, ttl), Txt: txt}}
	}
	rec := &endpointRecords{
		node: node,
		srv:  dns.SRV{Hdr: hdr(dns.TypeSRV, ttl), Priority: ep.Priority, Weight: ep.Weight, Port: ep.Port, Target: target},
		glue: glue,
	}
	if reverse != "" {
		rec.reverse, rec.ptr = reverse, dns.PTR{Hdr: hdr(dns.TypePTR, ttl), Ptr: svc.InstanceName(ep)}
	}
	if !ep.AtService {
		// An instance answers SRV at its own name too, as CoreDNS
		// answers a skydns record's name.
		node.srv, node.glue = []dns.SRV{rec.srv}, glue
	}
	for j, tag := range ep.Tags {
		label := cache.Label(tag)
		if label == "" || slices.ContainsFunc(ep.Tags[:j], func(t string) bool { return cache.Label(t) == label }) {
			continue // the same tag twice, or two tags with one label
		}
		rec.tags = append(rec.tags, label)
	}
	// A port 0 is no port; of two names with one label, the first in
	// sort order wins.
	for _, name := range slices.Sorted(maps.Keys(ep.Ports)) {
		label := cache.Label(name)
		if label == "" || ep.Ports[name] == 0 || slices.ContainsFunc(rec.ports, func(p namedPort) bool { return p.label == label }) {
			continue
		}
		rec.ports = append(rec.ports, namedPort{label, ep.Ports[name]})
	}
	return rec
}

// reverseName returns the name of ip under in-addr.arpa. or ip6.arpa.
func reverseName(ip netip.Addr) string {
	const hex = "0123456789abcdef"
	var b []byte
	if ip.Is4() {
		b = make([]byte, 0, len("255.255.255.255.in-addr.arpa."))
		a := ip.As4()
		for i := 3; i >= 0; i-- {
			b = strconv.AppendUint(b, uint64(a[i]), 10)
			b = append(b, '.')
		}
		return string(append(b, "in-addr.arpa."...))
	}
	b = make([]byte, 0, 64+len("ip6.arpa."))
	a := ip.As16()
	for i := 15; i >= 0; i-- {
		b = append(b, hex[a[i]&0xf], '.', hex[a[i]>>4], '.')
	}
	return string(append(b, "ip6.arpa."...))
}

// instance returns the records of the instance labelled label, or nil.
func (cs *compiledService) instance(label string) *instNode {
	eps := cs.svc.Endpoints
	i := sort.Search(len(eps), func(i int) bool { return eps[i].Label >= label })
	if i == len(eps) || eps[i].Label != label || eps[i].AtService {
		return nil
	}
	return cs.records()[i].node
}

func (s *rrsets) add(ep int, node *instNode, srv dns.SRV, glue []dns.RR) {
	s.a = append(s.a, node.a...)
	s.aaaa = append(s.aaaa, node.aaaa...)
	s.srv = append(s.srv, srv)
	s.glue = append(s.glue, glue)
	s.eps = append(s.eps, int32(ep))
}

func hdr(t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

// metaTXT renders metadata as sorted key=value strings, each cut to the 255
// octets a TXT string may hold.
func metaTXT(meta map[string]string) []string {
	keys := slices.Sorted(maps.Keys(meta))
	txt := make([]string, 0, len(keys))
	for _, k := range keys {
		s := k + "=" + meta[k]
		if len(s) > 255 {
			s = s[:255]
		}
		txt = append(txt, s)
	}
	return txt
}

// findZone returns the zone that holds name (lowercase, fully qualified,
// in presentation format) and the labels of name below the zone apex. The
// labels are split as DNS does: x\.svc.internal. is the label "x.svc"
// under internal., outside svc.internal.
func (idx *index) findZone(name string) (*zone, []string) {
	z, below := idx.zoneOf(name)
	if below == "" {
		return z, nil
	}
	return z, dns.SplitDomainName(below)
}

// zoneOf returns the zone that holds name, as findZone, and the part of
// name below its apex, with a trailing dot ("" for the apex).
func (idx *index) zoneOf(name string) (*zone, string) {
	for _, z := range idx.zones {
		if name == z.name {
			return z, ""
		}
		if dot := len(name) - len(z.name) - 1; strings.HasSuffix(name, z.name) && name[dot] == '.' && !escaped(name, dot) {
			return z, name[:dot+1]
		}
	}
	return nil, ""
}

// escaped reports whether the character at i of a name in presentation
// format is escaped: preceded by an odd number of backslashes.
func escaped(name string, i int) bool {
	n := 0
	for i--; i >= 0 && name[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// reverse returns the PTR records of a reverse name, sorted: every shard's,
// each shard building its reverse map the first time one is asked for.
func (idx *index) reverse(name string) []dns.PTR {
	if !strings.HasSuffix(name, ".in-addr.arpa.") && !strings.HasSuffix(name, ".ip6.arpa.") {
		return nil
	}
	var ptrs []dns.PTR
	for _, sh := range idx.shards {
		if sh != nil {
			ptrs = append(ptrs, sh.reverse(idx.ttl)[name]...)
		}
	}
	slices.SortFunc(ptrs, func(a, b dns.PTR) int { return strings.Compare(a.Ptr, b.Ptr) })
	return ptrs
}

// reverse returns the shard's reverse map; ttl is the index's, the same for
// every index that shares the shard.
func (sh *compiledShard) reverse(ttl uint32) map[string][]dns.PTR {
	sh.ptrOnce.Do(func() {
		sh.ptr = map[string][]dns.PTR{}
		for _, cs := range sh.services.All() {
			if cs.sky == nil {
				for _, rec := range cs.records() {
					if rec.reverse != "" {
						sh.ptr[rec.reverse] = append(sh.ptr[rec.reverse], rec.ptr)
					}
				}
				continue
			}
			for i := range cs.svc.Endpoints {
				ep := &cs.svc.Endpoints[i]
				if ip, ok := ep.IP(); ok && ip.Zone() == "" {
					rev := reverseName(ip)
					sh.ptr[rev] = append(sh.ptr[rev], dns.PTR{Hdr: hdr(dns.TypePTR, ttl), Ptr: cs.svc.InstanceName(ep)})
				}
			}
		}
	})
	return sh.ptr
}

// kind is what a name inside the zones is.
type kind uint8

const (
	kindNone     kind = iota // no such name: NXDOMAIN
	kindEmpty                // exists but holds no records (empty non-terminal)
	kindApex                 // the zone apex: SOA, NS and the name server's addresses
	kindSet                  // a service or a tag: A, AAAA and SRV of its instances
	kindSRV                  // _<svc>._tcp, _<svc>._<tag>, _<port>._tcp.<svc>: SRV only
	kindInstance             // one instance: its address (or alias) and TXT
	kindSky                  // a name of a skydns service: what CoreDNS answers
)

// named is what a name is, as resolve found it.
type named struct {
	kind kind
	zone *zone     // nil: outside every zone
	set  *rrsets   // kindSet and kindSRV
	inst *instNode // kindInstance
	// svc is the service that holds set or inst: their answers depend on
	// it alone.
	svc     *compiledService
	sky     *skySet // kindSky
	wildCut bool    // sky holds the first maxWildRecords of a wildcard's records
	// node is the skydns name whose set sky is, when its answers depend
	// on its records alone: they hold while the zone's tree has it.
	node *skyNode
	idx  *index // the index that resolved the name, for the names it leads to
}

// resolvePlain tells what name (lowercase, fully qualified) is, in one
// look-up, locality aside (resolve applies it).
func (idx *index) resolvePlain(name string) named {
	z, labels := idx.findZone(name)
	r := named{zone: z, idx: idx}
	n := len(labels)
	switch {
	case z == nil:
		return r
	case n == 0:
		r.kind = kindApex
		return r
	}
	if root := idx.skyRoots[z.name]; root != nil {
		if sky, ok := resolveSky(r, root, labels); ok {
			return sky
		}
	}
	last := labels[n-1]
	if proto, ok := strings.CutPrefix(last, "_"); ok {
		// _<svc>._tcp, _<svc>._udp and _<svc>._<tag>, and their parents.
		// _<svc>._tls is the named port "tls" when the service has one.
		switch {
		case n == 1:
			st := idx.zoneStats(z)
			if (st.svcs > 0 && (proto == "tcp" || proto == "udp")) || st.tags[proto] > 0 || (proto == "tls" && st.tls > 0) {
				r.kind = kindEmpty
			}
		case n == 2 && strings.HasPrefix(labels[0], "_"):
			if cs := idx.service(labels[0][1:] + "." + z.name); cs != nil {
				switch {
				case cs.sky != nil:
					// skydns records answer their own names alone
				case proto == "tcp" || proto == "udp":
					r.set = cs.sets().all
				case proto == "tls" && cs.sets().ports["tls"] != nil:
					r.set = cs.sets().ports["tls"]
				default:
					r.set = cs.sets().tags[proto]
				}
				r.svc = cs
			}
			if r.set != nil {
				r.kind = kindSRV
			}
		}
		return r
	}
	cs := idx.service(last + "." + z.name)
	var inst *instNode
	if n == 2 && cs != nil && cs.sky == nil {
		inst = cs.instance(labels[0])
	}
	switch {
	case cs == nil || cs.sky != nil:
	case n == 1:
		r.kind, r.set = kindSet, cs.sets().all
	case inst != nil:
		r.kind, r.inst = kindInstance, inst // no need of the sets
	default:
		sets := cs.sets()
		switch {
		case n == 2 && sets.tags[labels[0]] != nil:
			r.kind, r.set = kindSet, sets.tags[labels[0]]
		case n <= 3 && sets.ports != nil && labels[n-2] == "_tcp":
			// _<name>._tcp.<svc>, and _tcp.<svc> as its empty non-terminal.
			if n == 2 {
				r.kind = kindEmpty
			} else if port, ok := strings.CutPrefix(labels[0], "_"); ok && sets.ports[port] != nil {
				r.kind, r.set = kindSRV, sets.ports[port]
			}
		}
	}
	if r.set != nil || r.inst != nil {
		r.svc = cs
	}
	return r
}
