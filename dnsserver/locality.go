package dnsserver

import (
	"cmp"
	"reflect"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/discodns/discodns/cache"
)

// Locality names. They hold '_' inside a label or start one with "_all",
// and no service, tag or instance label can: cache.Label makes those of
// [a-z0-9-] alone. The names that start with '_' today (_<svc>._tcp,
// _<svc>._<tag>, _<port>._tcp.<svc>) are answered before these are tried,
// so none of them changes meaning (a named port "all" keeps
// _all._tcp.<svc>).
//
//   - _all.<name>.<zone>, where <name> is any name of a set of instances
//     (<svc>, <tag>.<svc>, _<svc>._tcp, an intersection), answers it as
//     if the host had no locality;
//   - <tag>_<tag>[_<tag>...].<svc>.<zone> and _<svc>._<tag>_<tag>.<zone>
//     answer the instances that carry every one of the tags, in any
//     order. No such instance: NXDOMAIN, as for a tag no instance carries
//     (the name owns nothing and has nothing below); instances without
//     records of the type asked: NODATA.
const (
	bypassLabel = "_all"
	tagJoin     = "_"
)

// Locality is where the host is, and how answers prefer instances there.
// The zero Locality (no Zone) answers every name as if there were none.
type Locality struct {
	// Zone and Region of the host; Region may be empty.
	Zone, Region string
	// MinLocalCount and MinLocalFraction: A and AAAA answer the same-zone
	// instances of a set alone while they are at least MinLocalCount of
	// them and at least MinLocalFraction of the set; else every instance
	// (the answer spills over). At least one either way.
	MinLocalCount    int
	MinLocalFraction float64
	// Keys are the metadata keys that give an instance's zone and region,
	// by source name; a source that is not there uses DefaultKeys.
	Keys        map[string]LocalityKeys
	DefaultKeys LocalityKeys
}

// LocalityKeys are metadata keys that give an instance's locality, the
// first one set winning; each is looked up in the instance's metadata,
// then in its node's (cache.Instance.NodeMeta).
type LocalityKeys struct {
	Zone, Region []string
}

// localResult is what locality made of one answer, for the metrics.
type localResult uint8

const (
	localNone    localResult = iota // no locality: not counted
	localLocal                      // same-zone instances first (SRV) or alone (A, AAAA)
	localSpilled                    // too few same-zone instances: everyone, alike
)

// tier is how near an instance is, nearest first.
type tier uint8

const (
	tierZone   tier = iota // the host's zone
	tierRegion             // the host's region, another zone
	tierOther              // elsewhere, or it does not say
)

// on reports whether l prefers anything.
func (l *Locality) on() bool { return l.Zone != "" }

// equal reports whether l and o answer alike.
func (l *Locality) equal(o *Locality) bool { return reflect.DeepEqual(l, o) }

// tiers returns the tier of each of svc's endpoints, or nil when none has
// locality data (the service is answered as if locality were off).
func (l *Locality) tiers(svc *cache.Service) []tier {
	out := make([]tier, len(svc.Endpoints))
	known := false
	for i := range svc.Endpoints {
		ep := svc.Endpoints[i].Instance
		keys, ok := l.Keys[ep.Source]
		if !ok {
			keys = l.DefaultKeys
		}
		zone, region := lookupMeta(ep, keys.Zone), lookupMeta(ep, keys.Region)
		known = known || zone != "" || region != ""
		switch {
		case zone != "" && strings.EqualFold(zone, l.Zone):
			out[i] = tierZone
		case region != "" && strings.EqualFold(region, l.Region):
			out[i] = tierRegion
		default:
			out[i] = tierOther
		}
	}
	if !known {
		return nil
	}
	return out
}

// lookupMeta returns the value of the first of keys that ep's metadata,
// or else its node's, sets.
func lookupMeta(ep *cache.Instance, keys []string) string {
	for _, k := range keys {
		if v := ep.Meta[k]; v != "" {
			return v
		}
		if v := ep.NodeMeta[k]; v != "" {
			return v
		}
	}
	return ""
}

// enough reports whether local same-zone instances of total are enough to
// answer alone.
func (l *Locality) enough(local, total int) bool {
	return local > 0 && local >= l.MinLocalCount && float64(local) >= l.MinLocalFraction*float64(total)-1e-9
}

// localize gives the sets of svc their locality views, when l is on and
// any of svc's instances has locality data.
func (l *Locality) localize(svc *cache.Service, s *serviceSets) {
	if !l.on() {
		return
	}
	if s.tiers = l.tiers(svc); s.tiers == nil {
		return
	}
	l.view(s.all, s.tiers)
	for _, set := range s.tags {
		l.view(set, s.tiers)
	}
	for _, set := range s.ports {
		l.view(set, s.tiers)
	}
}

// view sets set.local to set as locality answers it (tiers by endpoint):
// SRV with same-zone instances at the best priority, same-region next and
// the rest after, each tier keeping the instances' own priorities in
// order and their weights; A (and AAAA) of the same-zone instances alone
// while they are enough of the set's A (AAAA) records, else of every
// instance. With too few same-zone instances for SRV, they share the
// same-region tier.
func (l *Locality) view(set *rrsets, tiers []tier) {
	v := &rrsets{eps: set.eps, glue: set.glue}
	local := &rrsets{}
	for i, e := range set.eps {
		if tiers[e] == tierZone {
			local.eps = append(local.eps, e)
			local.addAddrs(set.glue[i])
		}
	}
	v.loc.srv = l.result(len(local.eps), len(set.eps))
	if v.loc.a = l.result(len(local.a), len(set.a)); v.loc.a == localLocal {
		v.a = local.a
	} else {
		v.a = set.a
	}
	if v.loc.aaaa = l.result(len(local.aaaa), len(set.aaaa)); v.loc.aaaa == localLocal {
		v.aaaa = local.aaaa
	} else {
		v.aaaa = set.aaaa
	}

	type rank struct {
		t tier
		p uint16
	}
	cmpRank := func(a, b rank) int { return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.p, b.p)) }
	ranks := make([]rank, len(set.srv))
	for i := range set.srv {
		ranks[i] = rank{tiers[set.eps[i]], set.srv[i].Priority}
		if ranks[i].t == tierZone && v.loc.srv == localSpilled {
			ranks[i].t = tierRegion
		}
	}
	order := slices.Clone(ranks)
	slices.SortFunc(order, cmpRank)
	order = slices.Compact(order)
	v.srv = slices.Clone(set.srv)
	for i := range v.srv {
		p, _ := slices.BinarySearchFunc(order, ranks[i], cmpRank)
		v.srv[i].Priority = uint16(p)
	}
	set.local = v
}

// result tells whether local same-zone records of total are enough to
// answer alone; none of none is no answer, and not counted.
func (l *Locality) result(local, total int) localResult {
	switch {
	case total == 0:
		return localNone
	case l.enough(local, total):
		return localLocal
	}
	return localSpilled
}

// localResults are what locality makes of a set's answers, by type.
type localResults struct {
	a, aaaa, srv localResult
}

// of returns the result of an answer of type qtype.
func (r localResults) of(qtype uint16) localResult {
	switch qtype {
	case dns.TypeA:
		return r.a
	case dns.TypeAAAA:
		return r.aaaa
	case dns.TypeSRV:
		return r.srv
	}
	return localNone
}

// resolve tells what name (lowercase, fully qualified) is, in one look-up,
// as locality answers it: a set's locality view when it has one, and the
// set itself at _all.<set> (<set> any name of A, AAAA or SRV records of
// instances).
func (idx *index) resolve(name string) named {
	r := idx.resolveTags(name)
	if r.kind == kindNone && r.zone != nil {
		if rest, ok := strings.CutPrefix(name, bypassLabel+"."); ok {
			if b := idx.resolveTags(rest); b.kind == kindSet || b.kind == kindSRV {
				return b
			}
		}
	}
	if r.set != nil && r.set.local != nil {
		r.set = r.set.local
	}
	return r
}

// resolveTags is resolvePlain, and tag intersections where it found
// nothing: <tag>_<tag>.<svc> and _<svc>._<tag>_<tag>.
func (idx *index) resolveTags(name string) named {
	r := idx.resolvePlain(name)
	if r.kind != kindNone || r.zone == nil || !strings.Contains(name, tagJoin) {
		return r // every name below holds a '_'
	}
	_, labels := idx.findZone(name)
	if len(labels) == 1 {
		// _<tag>_<tag>, the empty non-terminal above _<svc>._<tag>_<tag>:
		// it exists when some service carries each of the tags (a name
		// said to exist for nothing below is NODATA, while NXDOMAIN for
		// one with names below hides them from resolvers that cut at it,
		// RFC 8020).
		if proto, ok := strings.CutPrefix(labels[0], "_"); ok && strings.Contains(proto, tagJoin) {
			st := idx.zoneStats(r.zone)
			if !slices.ContainsFunc(strings.Split(proto, tagJoin), func(t string) bool { return st.tags[t] == 0 }) {
				r.kind = kindEmpty
			}
		}
	}
	if len(labels) != 2 {
		return r
	}
	svc, tags, k := labels[1], labels[0], kindSet
	if strings.HasPrefix(svc, "_") && strings.HasPrefix(tags, "_") {
		svc, tags, k = tags[1:], svc[1:], kindSRV
	}
	if !strings.Contains(tags, tagJoin) || strings.HasPrefix(tags, "_") {
		return r
	}
	if cs := idx.service(svc + "." + r.zone.name); cs != nil {
		if set := cs.intersect(strings.Split(tags, tagJoin), &idx.set.Locality); set != nil {
			r.kind, r.set, r.svc = k, set, cs
		}
	}
	return r
}

// intersect returns the set of cs's instances that carry every one of
// tags (labels), with its locality view; nil when a tag is not one of
// cs's, or when no instance carries them all: the name does not exist,
// as a tag that no instance carries does not. It walks the tags' sets,
// whose endpoints are in ascending order, as the set of all instances'
// are (its i-th is endpoint i).
func (cs *compiledService) intersect(tags []string, l *Locality) *rrsets {
	sets := cs.sets()
	var eps []int32
	for i, t := range tags {
		set := sets.tags[t]
		if set == nil {
			return nil
		}
		if i == 0 {
			eps = slices.Clone(set.eps)
			continue
		}
		kept := eps[:0]
		for j, k := 0, 0; j < len(eps) && k < len(set.eps); {
			switch {
			case eps[j] < set.eps[k]:
				j++
			case eps[j] > set.eps[k]:
				k++
			default:
				kept = append(kept, eps[j])
				j, k = j+1, k+1
			}
		}
		eps = kept
	}
	if len(eps) == 0 {
		return nil
	}
	set := &rrsets{eps: eps, srv: make([]dns.SRV, len(eps)), glue: make([][]dns.RR, len(eps))}
	for i, e := range eps {
		set.srv[i], set.glue[i] = sets.all.srv[e], sets.all.glue[e]
		set.addAddrs(set.glue[i])
	}
	if sets.tiers != nil {
		l.view(set, sets.tiers)
	}
	return set
}

// addAddrs adds the address records of an instance (its SRV glue) to the
// set's A and AAAA records.
func (s *rrsets) addAddrs(glue []dns.RR) {
	for _, rr := range glue {
		switch rr := rr.(type) {
		case *dns.A:
			s.a = append(s.a, *rr)
		case *dns.AAAA:
			s.aaaa = append(s.aaaa, *rr)
		}
	}
}
