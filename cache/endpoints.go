package cache

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
)

// The endpoints of a service are defined by one rule, which endpointSet
// keeps true change by change, at the cost of the change rather than of
// the service:
//
//   - Instances are ordered by source, then ID (their key).
//   - Instances with the same address (case folded) and port are one
//     endpoint: the first in key order; the others are shadowed, and step
//     in when it goes. A skydns record is told apart by its name too.
//   - Each endpoint has a chain of candidate labels: the label of its ID
//     (when not empty), then that label with a hash of source and ID (see
//     suffixed), then with hashes of "source/ID#1", "#2", and so on. Its
//     label is the first candidate not taken by an endpoint earlier in key
//     order. Only IDs crafted to collide get past the second candidate;
//     those instances are clashes.
//
// So an endpoint's label depends only on the endpoints before it. Adding
// one takes the first free or later-held candidate of its chain, and a
// later holder moves on along its own chain; removing one frees its label
// for the earliest endpoint that had tried it, whose own label is freed in
// turn. Each step moves an endpoint forward (adding) or back (removing)
// along its chain, so a change touches the endpoints it collides with, and
// usually nothing but itself.

// instKey orders the instances of a service.
type instKey struct{ source, id string }

func (k instKey) compare(o instKey) int {
	return cmp.Or(cmp.Compare(k.source, o.source), cmp.Compare(k.id, o.id))
}

type hostPort struct {
	addr string // case folded
	port uint16
	// A skydns record's source and id: its name tells it apart.
	source, id string
}

// hostPortOf is what in is deduplicated by.
func hostPortOf(in *Instance) hostPort {
	hp := hostPort{addr: foldCase(in.Address), port: in.Port}
	if in.SkyDNS != nil {
		hp.source, hp.id = in.Source, in.ID
	}
	return hp
}

// entry is one instance in an endpointSet.
type entry struct {
	in   *Instance // never changed: replaced when the instance changes
	key  instKey
	hp   hostPort
	base string // Label(in.ID)
	// pos is the position of label in the chain (0 is the ID's label,
	// even when that is empty and so never a candidate); label is "" when
	// the instance is shadowed.
	pos   int
	label string
}

// first is the position of the first candidate of e's chain.
func (e *entry) first() int {
	if e.base == "" {
		return 1
	}
	return 0
}

// candidate returns the label at position pos of e's chain.
func (e *entry) candidate(pos int) string {
	switch pos {
	case 0:
		return e.base
	case 1:
		return suffixed(e.base, e.key.source+"/"+e.key.id)
	default:
		return suffixed(e.base, e.key.source+"/"+e.key.id+"#"+strconv.Itoa(pos-1))
	}
}

// clash reports whether e's label is past the second candidate.
func (e *entry) clash() bool { return e.label != "" && e.pos >= 2 }

// endpointSet is the instances of one service and its endpoints, kept by
// the rule above. It is not safe for concurrent use.
//
// Its maps are smallMaps: most services hold a few instances.
type endpointSet struct {
	entries smallMap[instKey, *entry]
	// groups holds the instances of each address and port, in key order:
	// the first is the endpoint, the others are shadowed.
	groups smallMap[hostPort, []*entry]
	// byLabel holds the endpoints by label.
	byLabel smallMap[string, *entry]
	// tried holds, by label, the endpoints that have it in their chain
	// before their own label: every one is later than the label's holder.
	tried map[string][]*entry
	// clashes are the endpoints past their second candidate.
	clashes map[*entry]struct{}
	// changed holds the labels whose endpoint came, went or changed since
	// the last take.
	changed smallMap[string, struct{}]
}

// newEndpointSet returns an empty set sized for n instances.
func newEndpointSet(n int) *endpointSet {
	// tried and clashes are made when first needed: most services never
	// need them.
	s := &endpointSet{}
	s.entries.size(n)
	s.groups.size(n)
	s.byLabel.size(n)
	s.changed.size(n)
	return s
}

// Len is the number of endpoints.
func (s *endpointSet) Len() int { return s.byLabel.len() }

// put adds or updates in (in.Source set), reporting whether anything
// changed.
func (s *endpointSet) put(in *Instance) bool {
	key := instKey{in.Source, in.ID}
	e, ok := s.entries.get(key)
	if ok {
		if e.in.Equal(in) {
			return false
		}
		if e.hp == hostPortOf(in) {
			// Same key, address and port: the same label.
			e.in = in
			if e.label != "" {
				s.markChanged(e.label)
			}
			return true
		}
		s.delete(key)
	}
	s.add(in)
	return true
}

// add adds an instance whose key is not in s.
func (s *endpointSet) add(in *Instance) {
	e := &entry{in: in, key: instKey{in.Source, in.ID}, hp: hostPortOf(in), base: Label(in.ID)}
	s.entries.set(e.key, e)
	g, _ := s.groups.get(e.hp)
	i, _ := slices.BinarySearchFunc(g, e, func(a, b *entry) int { return a.key.compare(b.key) })
	g = slices.Insert(g, i, e)
	s.groups.set(e.hp, g)
	if i != 0 {
		return // shadowed
	}
	if len(g) > 1 {
		s.unassign(g[1]) // it was the endpoint: now shadowed
	}
	s.assign(e, e.first())
}

// delete removes the instance with key, if any, reporting whether it was
// there.
func (s *endpointSet) delete(key instKey) bool {
	e, ok := s.entries.get(key)
	if !ok {
		return false
	}
	s.entries.delete(key)
	g, _ := s.groups.get(e.hp)
	i := slices.Index(g, e)
	g = slices.Delete(g, i, i+1)
	if len(g) == 0 {
		s.groups.delete(e.hp)
	} else {
		s.groups.set(e.hp, g)
	}
	if i == 0 {
		s.unassign(e)
		if len(g) > 0 {
			s.assign(g[0], g[0].first())
		}
	}
	return true
}

// assign gives e the first candidate of its chain, from position pos on,
// not held by an earlier endpoint; a later holder moves on along its own
// chain.
func (s *endpointSet) assign(e *entry, pos int) {
	for {
		label := e.candidate(pos)
		h, _ := s.byLabel.get(label)
		if h != nil && h.key.compare(e.key) < 0 {
			s.addTried(label, e)
			pos++
			continue
		}
		s.take(e, label, pos)
		if h == nil {
			return
		}
		// h is later than e: it now tries label in vain, and goes on.
		s.setClash(h, false)
		h.label = ""
		s.addTried(label, h)
		e, pos = h, h.pos+1
	}
}

// take gives e label, at position pos of its chain.
func (s *endpointSet) take(e *entry, label string, pos int) {
	e.label, e.pos = label, pos
	s.byLabel.set(label, e)
	s.markChanged(label)
	s.setClash(e, e.clash())
}

// unassign takes e's label from it, and gives the label to the earliest
// endpoint that tried it, whose own label goes the same way.
func (s *endpointSet) unassign(e *entry) {
	s.untry(e, e.first(), e.pos)
	s.setClash(e, false)
	label := e.label
	e.label = ""
	s.byLabel.delete(label)
	s.markChanged(label)
	for {
		tried := s.tried[label]
		if len(tried) == 0 {
			delete(s.tried, label)
			return
		}
		z := slices.MinFunc(tried, func(a, b *entry) int { return a.key.compare(b.key) })
		// z tried every candidate before its label in vain; label is the
		// first of them now free.
		pos := z.first()
		for z.candidate(pos) != label {
			pos++
		}
		old := z.label
		s.untry(z, pos, z.pos)
		s.byLabel.delete(old)
		s.take(z, label, pos)
		label = old
		s.markChanged(label)
	}
}

// untry forgets that e tried the candidates of its chain from position
// from up to, not including, to.
func (s *endpointSet) untry(e *entry, from, to int) {
	for pos := from; pos < to; pos++ {
		label := e.candidate(pos)
		tried := s.tried[label]
		if i := slices.Index(tried, e); i >= 0 {
			tried = slices.Delete(tried, i, i+1)
		}
		if len(tried) == 0 {
			delete(s.tried, label)
		} else {
			s.tried[label] = tried
		}
	}
}

// markChanged notes that label's endpoint came, went or changed.
func (s *endpointSet) markChanged(label string) {
	s.changed.set(label, struct{}{})
}

// addTried notes that e tried label in vain.
func (s *endpointSet) addTried(label string, e *entry) {
	if s.tried == nil {
		s.tried = map[string][]*entry{}
	}
	s.tried[label] = append(s.tried[label], e)
}

func (s *endpointSet) setClash(e *entry, clash bool) {
	if clash {
		if s.clashes == nil {
			s.clashes = map[*entry]struct{}{}
		}
		s.clashes[e] = struct{}{}
	} else {
		delete(s.clashes, e)
	}
}

// clashIDs returns the clashing instances as "source/id", sorted.
func (s *endpointSet) clashIDs() []string {
	ids := make([]string, 0, len(s.clashes))
	for e := range s.clashes {
		ids = append(ids, e.key.source+"/"+e.key.id)
	}
	slices.Sort(ids)
	return ids
}

// all returns every endpoint, in no order, and forgets the changes.
func (s *endpointSet) all() []Endpoint {
	eps := make([]Endpoint, 0, s.byLabel.len())
	for label, e := range s.byLabel.all() {
		eps = append(eps, Endpoint{Label: label, Instance: e.in})
	}
	s.changed = smallMap[string, struct{}]{} // not clear: a cleared map keeps its size, and ranging over it costs that
	return eps
}

// takeChanges returns the labels changed since the last takeChanges or
// all, in no order, each with its endpoint now.
func (s *endpointSet) takeChanges() []labelChange {
	out := make([]labelChange, 0, s.changed.len())
	for label := range s.changed.all() {
		c := labelChange{label: label}
		if e, _ := s.byLabel.get(label); e != nil {
			c.ep = &Endpoint{Label: label, Instance: e.in}
		}
		out = append(out, c)
	}
	s.changed = smallMap[string, struct{}]{}
	return out
}

// labelChange is a label whose endpoint changed: ep is the endpoint now,
// nil when the label is free.
type labelChange struct {
	label string
	ep    *Endpoint
}

// applyChanges returns old (sorted by label) with changes applied, in a
// new slice, sorted by label.
func applyChanges(old []Endpoint, changes []labelChange) []Endpoint {
	slices.SortFunc(changes, func(a, b labelChange) int { return cmp.Compare(a.label, b.label) })
	out := make([]Endpoint, 0, len(old)+len(changes))
	i := 0
	for _, c := range changes {
		for i < len(old) && old[i].Label < c.label {
			out = append(out, old[i])
			i++
		}
		if i < len(old) && old[i].Label == c.label {
			i++
		}
		if c.ep != nil {
			out = append(out, *c.ep)
		}
	}
	return append(out, old[i:]...)
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

// foldCase returns s with ASCII letters lowercased: s itself when it has
// no capital (most addresses), else a copy.
func foldCase(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return r >= 'A' && r <= 'Z' })
	if i < 0 {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if c := b[i]; c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
