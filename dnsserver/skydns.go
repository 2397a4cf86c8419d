package dnsserver

import (
	"cmp"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/discodns/discodns/cache"
)

// A service of the skydns layout answers every name at or below it as
// CoreDNS's etcd plugin does: a name's answers are the records of the keys
// below it, or its own key's when there are none, at any depth. Its
// records live in a tree of names (skyNode) whose answers are built on a
// name's first question; a change copies the path from the service's name
// to the records it changed and shares the rest with the tree before it,
// so a change costs its path, not the service.

// maxCNAMEChain bounds the aliases followed for one answer, as CoreDNS
// does: a longer chain, like a loop, is not followed.
const maxCNAMEChain = 10

// maxWildRecords bounds the records one wildcard question (*, any)
// gathers: past it, the answer holds the first ones, in key order.
const maxWildRecords = 10000

// skyRecord is one record of a skydns service, ready to answer.
type skyRecord struct {
	// ref tells the record apart within its service: its source and id.
	ref string
	// key is the record's labels from the service down, "/"-joined: the
	// order of its etcd key, which CoreDNS's groups depend on.
	key   string
	depth int    // its labels below the zone: which group of an answer wins
	name  string // its own name, fully qualified
	// ip is the host when it is an address; else alias is the host name,
	// fully qualified ("" when the record has text alone).
	ip    netip.Addr
	alias string
	text  string

	port, priority, weight uint16
	ttl                    uint32
	strip                  int
	group                  string
}

// hasHost reports whether the record has a host: it answers A, AAAA, SRV
// and CNAME questions.
func (r *skyRecord) hasHost() bool { return r.ip.IsValid() || r.alias != "" }

// skyNode is one name of a skydns service. Once in a published index it is
// never changed, only replaced by a copy (skyEdit).
type skyNode struct {
	children map[string]*skyNode // by label
	own      []*skyRecord        // the records of this very name
	count    int                 // records at or below the name

	once sync.Once
	set  *skySet // answers, built on first use
}

// answers returns the name's answers in zone (the service's zone, the same
// at every call): CoreDNS's prefix read gives the records below the name,
// or its own when none are below.
func (n *skyNode) answers(zone string) *skySet {
	n.once.Do(func() {
		recs := n.own
		if len(n.children) > 0 {
			recs = nil
			for _, c := range n.children {
				recs = c.collect(recs, math.MaxInt)
			}
		}
		n.set = newSkySet(recs, n.own, zone)
	})
	return n.set
}

// collect appends the records at or below n to recs, up to limit in all.
func (n *skyNode) collect(recs []*skyRecord, limit int) []*skyRecord {
	recs = append(recs, n.own[:min(len(n.own), max(limit-len(recs), 0))]...)
	for _, c := range n.children {
		if len(recs) >= limit {
			break
		}
		recs = c.collect(recs, limit)
	}
	return recs
}

// skyAlias is a record whose host is a name: a CNAME to follow.
type skyAlias struct {
	target string
	ttl    uint32
}

// skySet is what a name of a skydns service answers, built from the
// records of its prefix read as CoreDNS builds its answers.
type skySet struct {
	// rrsets are the A and AAAA records (one per address) and the SRV
	// records, their weights rescaled within each priority, with the
	// addresses of targets that are the records' own names.
	rrsets
	txt []dns.TXT
	// alias and txtAlias are the hosts that are names, CNAMEs followed
	// inside the zone for A and AAAA, and for TXT questions.
	alias, txtAlias []skyAlias
	// targets are the SRV targets inside the zone that are host names:
	// their addresses join the additional section when asked.
	targets []string
	// cname is the CNAME question's answer: the host of the name's own
	// record, when it is a name.
	cname []dns.CNAME
	// hosts are the records with a host, after grouping: the NS set of
	// ns.dns.<zone>.
	hosts []*skyRecord
}

// elsewhere reports whether the set's answers depend on other names:
// aliases and targets are followed when asked.
func (s *skySet) elsewhere() bool {
	return len(s.alias) > 0 || len(s.txtAlias) > 0 || len(s.targets) > 0
}

// newSkySet builds the answers of recs (in any order), and the CNAME
// answer of own, the records of the name itself.
func newSkySet(recs, own []*skyRecord, zone string) *skySet {
	recs = slices.Clone(recs)
	slices.SortFunc(recs, func(a, b *skyRecord) int { return cmp.Compare(a.key, b.key) })
	s := &skySet{}
	s.hosts = skyGroup(slices.DeleteFunc(slices.Clone(recs), func(r *skyRecord) bool { return !r.hasHost() }))
	sums := map[uint16]int{}
	for _, r := range s.hosts {
		sums[r.priority] += int(r.weight)
	}
	type hostPort struct {
		target string
		port   uint16
	}
	srvAt := map[hostPort]int{}
	seen := map[string]bool{} // addresses, and target addresses, already answered
	targets := map[string]bool{}
	for _, r := range s.hosts {
		w := uint16(math.Floor(100 / float64(sums[r.priority]) * float64(r.weight)))
		srv := dns.SRV{Hdr: hdr(dns.TypeSRV, r.ttl), Priority: r.priority, Weight: max(w, 1), Port: r.port}
		switch {
		case r.alias != "" && r.text == "":
			s.alias = append(s.alias, skyAlias{r.alias, r.ttl})
			srv.Target = targetStrip(r.alias, r.strip)
			s.srv = append(s.srv, srv)
			s.glue = append(s.glue, nil)
			if dns.IsSubDomain(zone, srv.Target) && !targets[srv.Target] {
				targets[srv.Target] = true
				s.targets = append(s.targets, srv.Target)
			}
		case r.ip.IsValid():
			if addr := r.ip.String(); !seen[addr] {
				seen[addr] = true
				if rr := addrRR("", r.ip, r.ttl); r.ip.Is4() {
					s.a = append(s.a, *rr.(*dns.A))
				} else {
					s.aaaa = append(s.aaaa, *rr.(*dns.AAAA))
				}
			}
			srv.Target = targetStrip(r.name, r.strip)
			k := hostPort{srv.Target, srv.Port}
			i, dup := srvAt[k]
			if !dup {
				i = len(s.srv)
				srvAt[k] = i
				s.srv = append(s.srv, srv)
				s.glue = append(s.glue, nil)
			}
			if g := srv.Target + " " + r.ip.String(); !seen[g] {
				seen[g] = true
				s.glue[i] = append(s.glue[i], addrRR(srv.Target, r.ip, r.ttl))
			}
		}
	}
	texts := map[string]bool{}
	for _, r := range skyGroup(slices.DeleteFunc(recs, func(r *skyRecord) bool { return !r.hasHost() && r.text == "" })) {
		switch {
		case r.alias != "" && r.text == "":
			s.txtAlias = append(s.txtAlias, skyAlias{r.alias, r.ttl})
		case !r.ip.IsValid() && !texts[r.text]:
			texts[r.text] = true
			s.txt = append(s.txt, dns.TXT{Hdr: hdr(dns.TypeTXT, r.ttl), Txt: split255(r.text)})
		}
	}
	own = skyGroup(slices.DeleteFunc(slices.Clone(own), func(r *skyRecord) bool { return !r.hasHost() }))
	if len(own) > 0 && own[0].alias != "" {
		s.cname = []dns.CNAME{{Hdr: hdr(dns.TypeCNAME, own[0].ttl), Target: own[0].alias}}
	}
	return s
}

// skyGroup keeps the records of recs (in key order) that CoreDNS's groups
// let answer together: the group of the shallowest grouped records wins,
// records without a group always answer, and two groups at that depth
// cancel grouping.
func skyGroup(recs []*skyRecord) []*skyRecord {
	if len(recs) == 0 {
		return recs
	}
	group, depth := recs[0].group, recs[0].depth
	for _, r := range recs[1:] {
		if r.depth >= depth {
			continue
		}
		if r.group == "" {
			break
		}
		group, depth = r.group, r.depth
	}
	if group == "" {
		return recs
	}
	kept := make([]*skyRecord, 0, len(recs))
	for _, r := range recs {
		switch {
		case r.group == "" || r.group == group:
			kept = append(kept, r)
		case r.depth == depth:
			return recs // two groups at the winning depth: no grouping
		}
	}
	return kept
}

// targetStrip drops the first n labels of name, unless it has no more than
// n labels.
func targetStrip(name string, n int) string {
	if n <= 0 {
		return name
	}
	if starts := dns.Split(name); n < len(starts) {
		return name[starts[n]:]
	}
	return name
}

// split255 cuts s into the strings of at most 255 octets a TXT record
// holds.
func split255(s string) []string {
	var out []string
	for len(s) > 255 {
		out, s = append(out, s[:255]), s[255:]
	}
	return append(out, s)
}

// compileSkyDNS compiles svc when it is a service of the skydns layout,
// editing the tree of was (the service's previous compilation, nil for
// none), and returns nil for any other service.
func compileSkyDNS(svc *cache.Service, ttl uint32, was *compiledService) *compiledService {
	if !slices.ContainsFunc(svc.Endpoints, func(ep cache.Endpoint) bool { return ep.SkyDNS != nil }) {
		return nil
	}
	cs := &compiledService{svc: svc, tags: map[string]*rrsets{}, insts: map[string]*instNode{}}
	if was == nil || was.sky == nil || was.svc.Zone != svc.Zone {
		e := newSkyEdit(&skyNode{})
		for i := range svc.Endpoints {
			e.add(svc, &svc.Endpoints[i], ttl)
		}
		cs.sky = e.root
		return cs
	}
	e := newSkyEdit(was.sky)
	olds, news := was.svc.Endpoints, svc.Endpoints
	for len(olds) > 0 || len(news) > 0 {
		c := 1 // which comes first: -1 the old endpoint, 1 the new one
		switch {
		case len(olds) == 0:
		case len(news) == 0:
			c = -1
		default:
			c = cmp.Compare(olds[0].Label, news[0].Label)
		}
		if c == 0 && olds[0].Instance.Equal(&news[0].Instance) {
			olds, news = olds[1:], news[1:]
			continue
		}
		if c <= 0 {
			e.remove(was.svc, &olds[0])
			olds = olds[1:]
		}
		if c >= 0 {
			e.add(svc, &news[0], ttl)
			news = news[1:]
		}
	}
	cs.sky = e.root
	return cs
}

// skyEdit changes a tree by copying the nodes on the paths it changes;
// fresh are the copies, which it may change in place.
type skyEdit struct {
	root  *skyNode
	fresh map[*skyNode]bool
}

func newSkyEdit(root *skyNode) *skyEdit {
	return &skyEdit{root: root, fresh: map[*skyNode]bool{}}
}

// mine returns n, or its copy when n is not the edit's own.
func (e *skyEdit) mine(n *skyNode) *skyNode {
	if e.fresh[n] {
		return n
	}
	c := &skyNode{children: maps.Clone(n.children), own: slices.Clone(n.own), count: n.count}
	e.fresh[c] = true
	return c
}

// path returns the labels of ep's name below svc, top first.
func skyPath(svc *cache.Service, ep *cache.Endpoint) []string {
	rel, ok := strings.CutSuffix(svc.InstanceName(ep), "."+svc.FQDN)
	if !ok {
		return nil
	}
	labels := dns.SplitDomainName(rel)
	slices.Reverse(labels)
	return labels
}

// add adds the record of ep, an endpoint of svc.
func (e *skyEdit) add(svc *cache.Service, ep *cache.Endpoint, ttl uint32) {
	path := skyPath(svc, ep)
	rec := &skyRecord{
		ref:      ep.Source + "/" + ep.ID,
		key:      strings.Join(append([]string{svc.Name}, path...), "/"),
		depth:    len(path) + 1,
		name:     svc.InstanceName(ep),
		port:     ep.Port,
		priority: ep.Priority,
		weight:   ep.Weight,
		ttl:      ttl,
	}
	if ip, ok := ep.IP(); ok {
		rec.ip = ip
	} else if ep.Address != "" {
		rec.alias = dns.Fqdn(strings.ToLower(ep.Address))
	}
	if sky := ep.SkyDNS; sky != nil {
		rec.text, rec.strip, rec.group = sky.Text, sky.TargetStrip, sky.Group
		if sky.TTL > 0 {
			rec.ttl = sky.TTL
		}
	}
	e.root = e.mine(e.root)
	n := e.root
	n.count++
	for _, label := range path {
		c := n.children[label]
		if c == nil {
			c = &skyNode{}
			e.fresh[c] = true
		} else {
			c = e.mine(c)
		}
		if n.children == nil {
			n.children = map[string]*skyNode{}
		}
		n.children[label] = c
		c.count++
		n = c
	}
	n.own = append(n.own, rec)
}

// remove removes the record of ep, an endpoint of svc.
func (e *skyEdit) remove(svc *cache.Service, ep *cache.Endpoint) {
	path, ref := skyPath(svc, ep), ep.Source+"/"+ep.ID
	mine := func(r *skyRecord) bool { return r.ref == ref }
	n := e.root
	for _, label := range path {
		if n = n.children[label]; n == nil {
			return
		}
	}
	if !slices.ContainsFunc(n.own, mine) {
		return
	}
	e.root = e.mine(e.root)
	n = e.root
	n.count--
	for _, label := range path {
		c := e.mine(n.children[label])
		if c.count--; c.count == 0 {
			delete(n.children, label) // the last record below: the name goes
			return
		}
		n.children[label] = c
		n = c
	}
	n.own = slices.DeleteFunc(n.own, mine)
}
