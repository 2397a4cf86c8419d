package dnsserver

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// isWild reports whether a label is one of CoreDNS's wildcards, which
// match any label of a skydns name.
func isWild(label string) bool { return label == "*" || label == "any" }

// resolveSky resolves the name of labels (below r's zone, the last one
// cs's) in the tree of cs, a skydns service.
func resolveSky(r named, cs *compiledService, labels []string) named {
	n := cs.sky
	for i := len(labels) - 2; i >= 0; i-- {
		if n = n.children[labels[i]]; n == nil {
			return r
		}
	}
	r.kind, r.sky = kindSky, n.answers(r.zone.name)
	if !r.sky.elsewhere() {
		r.svc = cs // its answers depend on cs alone
	}
	return r
}

// resolveWild resolves a name with wildcard labels in the skydns services
// of its zone as CoreDNS does: it answers the records at or below every
// name it matches, up to maxWildRecords. It reports false when the name
// is not a skydns name: its service is of another layout.
func (idx *index) resolveWild(r named, labels []string) (named, bool) {
	path := slices.Clone(labels)
	slices.Reverse(path) // top first
	roots := idx.skyServices(r.zone.name)
	if !isWild(path[0]) {
		cs := idx.service(path[0] + "." + r.zone.name)
		if cs == nil || cs.sky == nil {
			return r, false
		}
		roots = []*compiledService{cs}
	}
	if len(roots) == 0 {
		return r, false
	}
	var recs []*skyRecord
	var match func(n *skyNode, rest []string)
	match = func(n *skyNode, rest []string) {
		switch {
		case len(recs) >= maxWildRecords:
		case len(rest) == 0:
			recs = n.collect(recs, maxWildRecords)
		case isWild(rest[0]):
			for _, label := range slices.Sorted(maps.Keys(n.children)) {
				match(n.children[label], rest[1:])
			}
		case n.children[rest[0]] != nil:
			match(n.children[rest[0]], rest[1:])
		}
	}
	for _, cs := range roots {
		match(cs.sky, path[1:])
	}
	if len(recs) == 0 {
		// CoreDNS reads below the labels above the first wildcard:
		// anything there makes the name exist, without records.
		n := roots[0].sky
		for _, label := range path[1:] {
			if isWild(path[0]) || isWild(label) {
				break
			}
			if n = n.children[label]; n == nil {
				return r, true
			}
		}
	}
	r.kind, r.sky = kindSky, newSkySet(recs, nil, r.zone.name)
	return r, true
}

// skyServices returns the skydns services of zone, sorted by name.
func (idx *index) skyServices(zone string) []*compiledService {
	idx.skyOnce.Do(func() {
		idx.sky = map[string][]*compiledService{}
		for _, sh := range idx.shards {
			if sh == nil {
				continue
			}
			for z, list := range sh.skyServices() {
				idx.sky[z] = append(idx.sky[z], list...)
			}
		}
		for _, list := range idx.sky {
			slices.SortFunc(list, func(a, b *compiledService) int { return cmp.Compare(a.svc.Name, b.svc.Name) })
		}
	})
	return idx.sky[zone]
}

// skyServices returns the shard's skydns services by zone.
func (sh *compiledShard) skyServices() map[string][]*compiledService {
	sh.skyOnce.Do(func() {
		sh.sky = map[string][]*compiledService{}
		for _, cs := range sh.services {
			if cs.sky != nil {
				sh.sky[cs.svc.Zone] = append(sh.sky[cs.svc.Zone], cs)
			}
		}
	})
	return sh.sky
}

// answerSky fills m for q from a skydns name's answers.
func answerSky(m *dns.Msg, r named, q dns.Question, rot *rotation) {
	s := r.sky
	switch q.Qtype {
	case dns.TypeA:
		m.Answer = r.idx.skyAnswer(m.Answer, r.zone, q.Name, q.Qtype, s, rot.start(len(s.a)), nil)
	case dns.TypeAAAA:
		m.Answer = r.idx.skyAnswer(m.Answer, r.zone, q.Name, q.Qtype, s, rot.start(len(s.aaaa)), nil)
	case dns.TypeTXT:
		m.Answer = r.idx.skyAnswer(m.Answer, r.zone, q.Name, q.Qtype, s, 0, nil)
	case dns.TypeSRV:
		answerSet(m, q, &s.rrsets, rot)
		for _, target := range s.targets {
			m.Extra = append(m.Extra, r.idx.chase(target, dns.TypeA, nil)...)
		}
	case dns.TypeCNAME:
		m.Answer = rotated(m.Answer, q.Name, s.cname, 0)
	}
}

// skyAnswer appends to out the answers of s, the set of name, to a
// question of type qtype (A, AAAA or TXT): its records, its address
// records from off, and its aliases followed as far as chain allows.
func (idx *index) skyAnswer(out []dns.RR, z *zone, name string, qtype uint16, s *skySet, off int, chain []string) []dns.RR {
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
	return append(out, idx.follow(z, name, qtype, aliases, chain)...)
}

// follow returns the CNAMEs of name (as asked) to aliases, each with the
// records of its target inside zone z: an alias to a name inside the zone
// answers only when its target has records, and is not followed when
// it loops (chain holds the targets followed so far), when the chain is
// longer than maxCNAMEChain, or when its target is name or below it.
func (idx *index) follow(z *zone, name string, qtype uint16, aliases []skyAlias, chain []string) []dns.RR {
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
		if next := idx.chase(a.target, qtype, append(slices.Clip(chain), a.target)); len(next) > 0 {
			out = append(append(out, cname), next...)
		}
	}
	return out
}

// chase returns the records of type qtype (A, AAAA or TXT) of name, a
// name inside the zones, with its aliases followed as far as chain allows.
func (idx *index) chase(name string, qtype uint16, chain []string) []dns.RR {
	r := idx.resolve(name)
	if r.kind == kindSky {
		return idx.skyAnswer(nil, r.zone, name, qtype, r.sky, 0, chain)
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
	cs := r.idx.service("dns." + r.zone.name)
	if cs == nil || cs.sky == nil {
		return false
	}
	switch q.Qtype {
	case dns.TypeNS:
		n := cs.sky.children["ns"]
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
		n := cs.sky.children["apex"]
		if n == nil {
			return false
		}
		m.Answer = r.idx.skyAnswer(m.Answer, r.zone, q.Name, q.Qtype, n.answers(r.zone.name), 0, nil)
		return true
	}
	return false
}
