package dnsserver

import (
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// isWild reports whether a label is one of CoreDNS's wildcards, which
// match any label of a skydns name.
func isWild(label string) bool { return label == "*" || label == "any" }

// resolveSky resolves the name of labels (below r's zone) in root, the
// zone's tree of skydns names. It reports false when the tree does not
// have the name: another layout's services may.
func resolveSky(r named, root *skyNode, labels []string) (named, bool) {
	if slices.ContainsFunc(labels, isWild) {
		return resolveWild(r, root, labels)
	}
	n := root
	for i := len(labels) - 1; i >= 0; i-- {
		if n = n.children.get(labels[i]); n == nil {
			return r, false
		}
	}
	r.kind, r.sky = kindSky, n.answers(r.zone.name)
	if !r.sky.elsewhere() {
		r.node = n // its answers depend on n alone
	}
	return r, true
}

// skyNodeOf returns the node of the skydns name (lowercase, fully
// qualified), or nil, without allocating: the wire cache asks it at every
// answer it keeps for a skydns name.
func (idx *index) skyNodeOf(name string) *skyNode {
	z, below := idx.zoneOf(name)
	if z == nil || below == "" {
		return nil
	}
	n := idx.skyRoots[z.name]
	for end := len(below) - 1; end > 0 && n != nil; {
		start := end - 1
		for start >= 0 && (below[start] != '.' || escaped(below, start)) {
			start--
		}
		n, end = n.children.get(below[start+1:end]), start
	}
	return n
}

// resolveWild resolves a name with wildcard labels in root as CoreDNS
// does: it answers the records at or below every name it matches, up to
// maxWildRecords of them found within maxWildVisits names. It reports
// false when the labels above the first wildcard are no name of the tree.
func resolveWild(r named, root *skyNode, labels []string) (named, bool) {
	path := slices.Clone(labels)
	slices.Reverse(path) // top first
	top := root
	for _, label := range path {
		if isWild(label) {
			break
		}
		if top = top.children.get(label); top == nil {
			return r, false
		}
	}
	var recs []*skyRecord
	visits := 0
	var match func(n *skyNode, rest []string)
	match = func(n *skyNode, rest []string) {
		if visits++; visits > maxWildVisits || len(recs) > maxWildRecords {
			r.wildCut = true
			return
		}
		switch {
		case len(rest) == 0:
			recs = n.collect(recs, maxWildRecords+1)
		case isWild(rest[0]):
			for _, c := range n.children.all() {
				if match(c, rest[1:]); r.wildCut {
					return
				}
			}
		case n.children.get(rest[0]) != nil:
			match(n.children.get(rest[0]), rest[1:])
		}
	}
	match(root, path)
	if len(recs) > maxWildRecords {
		recs, r.wildCut = recs[:maxWildRecords], true
	}
	// CoreDNS reads below the labels above the first wildcard: anything
	// there makes the name exist, with or without records.
	r.kind, r.sky = kindSky, newSkySet(recs, nil, r.zone.name)
	return r, true
}

// skyWalk is where following the aliases of one answer stands: the
// follows left to it, and whether one was given up for want of them.
type skyWalk struct {
	left int
	cut  bool
}

// newSkyWalk starts the walk of an answer: maxAliasFollows follows.
func newSkyWalk() *skyWalk { return &skyWalk{left: maxAliasFollows} }

// done counts in metrics (nil: nowhere) an answer whose walk was cut.
func (w *skyWalk) done(metrics *Metrics) {
	if w.cut {
		metrics.skydnsCut(cutAliasFollows)
	}
}

// answerSky fills m for q from a skydns name's answers.
func answerSky(m *dns.Msg, r named, q dns.Question, rot *rotation) {
	s, w := r.sky, newSkyWalk()
	defer w.done(r.idx.set.metrics)
	if r.wildCut {
		r.idx.set.metrics.skydnsCut(cutWildRecords)
	}
	switch q.Qtype {
	case dns.TypeA:
		m.Answer = r.idx.skyAnswer(m.Answer, r.zone, q.Name, q.Qtype, s, rot.start(len(s.a)), nil, w)
	case dns.TypeAAAA:
		m.Answer = r.idx.skyAnswer(m.Answer, r.zone, q.Name, q.Qtype, s, rot.start(len(s.aaaa)), nil, w)
	case dns.TypeTXT:
		m.Answer = r.idx.skyAnswer(m.Answer, r.zone, q.Name, q.Qtype, s, 0, nil, w)
	case dns.TypeSRV:
		answerSet(m, q, &s.rrsets, rot)
		for _, target := range s.targets {
			m.Extra = append(m.Extra, r.idx.chase(target, dns.TypeA, nil, w)...)
		}
	case dns.TypeCNAME:
		m.Answer = rotated(m.Answer, q.Name, s.cname, 0)
	}
}

// skyAnswer appends to out the answers of s, the set of name, to a
// question of type qtype (A, AAAA or TXT): its records, its address
// records from off, and its aliases followed as far as chain and w allow.
func (idx *index) skyAnswer(out []dns.RR, z *zone, name string, qtype uint16, s *skySet, off int, chain []string, w *skyWalk) []dns.RR {
	aliases := s.alias
	switch qtype {
	case dns.TypeA:
		out = rotated(out, name, s.a, off)
	case dns.TypeAAAA:
		out = rotated(out, name, s.aaaa, off)
	case dns.TypeTXT:
		out = rotated(out, name, s.txt, 0)
		aliases = s.txtAlias
	}
	return append(out, idx.follow(z, name, qtype, aliases, chain, w)...)
}

// follow returns the CNAMEs of name (as asked) to aliases, each with the
// records of its target inside zone z: an alias to a name inside the zone
// answers only when its target has records, and is not followed when
// it loops (chain holds the targets followed so far), when the chain is
// longer than maxCNAMEChain, when its target is name or below it, or when
// the answer has followed maxAliasFollows aliases (w).
func (idx *index) follow(z *zone, name string, qtype uint16, aliases []skyAlias, chain []string, w *skyWalk) []dns.RR {
	var out []dns.RR
	lower := strings.ToLower(name)
	for _, a := range aliases {
		if dns.IsSubDomain(lower, a.target) || len(chain) > maxCNAMEChain || slices.Contains(chain, a.target) {
			continue
		}
		cname := &dns.CNAME{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: a.ttl}, Target: a.target}
		if !dns.IsSubDomain(z.name, a.target) {
			out = append(out, cname) // the client's resolver follows it
			continue
		}
		if next := idx.chase(a.target, qtype, append(slices.Clip(chain), a.target), w); len(next) > 0 {
			out = append(append(out, cname), next...)
		}
	}
	return out
}

// chase returns the records of type qtype (A, AAAA or TXT) of name, a
// name inside the zones, with its aliases followed as far as chain and w
// allow; nothing when w has no follow left.
func (idx *index) chase(name string, qtype uint16, chain []string, w *skyWalk) []dns.RR {
	if w.left == 0 {
		w.cut = true
		return nil
	}
	w.left--
	r := idx.resolve(name)
	if r.kind == kindSky {
		return idx.skyAnswer(nil, r.zone, name, qtype, r.sky, 0, chain, w)
	}
	m := new(dns.Msg)
	answerName(m, r, dns.Question{Name: name, Qtype: qtype, Qclass: dns.ClassINET}, &rotation{})
	return m.Answer
}

// answerSkyApex answers the apex's NS question from the records at and
// below ns.dns.<zone>, and its A and AAAA questions from those of
// apex.dns.<zone>, as CoreDNS does, when the zone has them; it reports
// false when it has not.
func answerSkyApex(m *dns.Msg, r named, q dns.Question) bool {
	under := r.idx.skyRoots[r.zone.name]
	if under != nil {
		under = under.children.get("dns")
	}
	if under == nil {
		return false
	}
	switch q.Qtype {
	case dns.TypeNS:
		n := under.children.get("ns")
		if n == nil {
			return false
		}
		seen := map[string]bool{}
		for _, rec := range n.answers(r.zone.name).hosts {
			if !rec.ip.IsValid() {
				continue
			}
			target := targetStrip(rec.name, rec.strip)
			m.Extra = append(m.Extra, addrRR(target, rec.ip, rec.ttl))
			if !seen[target] {
				seen[target] = true
				m.Answer = append(m.Answer, &dns.NS{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: rec.ttl}, Ns: target})
			}
		}
		return len(m.Answer) > 0
	case dns.TypeA, dns.TypeAAAA:
		n := under.children.get("apex")
		if n == nil {
			return false
		}
		w := newSkyWalk()
		defer w.done(r.idx.set.metrics)
		m.Answer = r.idx.skyAnswer(m.Answer, r.zone, q.Name, q.Qtype, n.answers(r.zone.name), 0, nil, w)
		return true
	}
	return false
}
