package dnsserver

import (
	"cmp"
	"hash/maphash"
	"iter"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/cache/shardmap"
)

// The records of the skydns layout answer every name as CoreDNS's etcd
// plugin does: a name's answers are the records of the keys below it, or
// its own key's when there are none, at any depth. The records of a zone
// live in a tree of names (skyNode) whose answers are built on a name's
// first question; a change copies the path from the zone to the records
// it changed and shares the rest with the tree before it, so a change
// costs its path, not the zone or a top label's hierarchy.

// maxCNAMEChain bounds the aliases followed for one answer, as CoreDNS
// does: a longer chain, like a loop, is not followed.
const maxCNAMEChain = 10

// maxWildRecords bounds the records one wildcard question (*, any)
// gathers, and maxWildVisits the names it looks at to find them: past
// either, the answer holds the records found so far.
const (
	maxWildRecords = 10000
	maxWildVisits  = 10000
)

// maxAliasFollows bounds the aliases one answer follows inside the zone,
// all chains together: aliases that branch cost no more than that.
const maxAliasFollows = 100

// skyRecord is one skydns record, ready to answer.
type skyRecord struct {
	// ref tells the record apart in its zone: its source, service and
	// id. A service's compilation makes records anew; the tree keeps
	// those of endpoints that did not change, so removals go by ref.
	ref skyRef
	// path is the record's labels below the zone, top first, and key
	// the same "/"-joined: the order of its etcd key, which CoreDNS's
	// groups depend on.
	path  []string
	key   string
	depth int    // len(path): which group of an answer wins
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

// skyRef is what tells a skydns record apart in its zone.
type skyRef struct{ source, service, id string }

// hasHost reports whether the record has a host: it answers A, AAAA, SRV
// and CNAME questions.
func (r *skyRecord) hasHost() bool { return r.ip.IsValid() || r.alias != "" }

// skyNode is one name of a zone's skydns tree. Once in a published index it is
// never changed, only replaced by a copy (skyEdit).
type skyNode struct {
	stamp    *stamp  // the node's identity, for the wire cache
	edit     *editID // the edit that made the node (see skyEdit.mine)
	children skyChildren
	own      []*skyRecord // the records of this very name
	count    int          // records at or below the name

	once sync.Once
	set  *skySet // answers, built on first use
}

// answers returns the name's answers in zone (the tree's zone, the same
// at every call): CoreDNS's prefix read gives the records below the name,
// or its own when none are below.
func (n *skyNode) answers(zone string) *skySet {
	n.once.Do(func() {
		recs := n.own
		if n.count > len(n.own) {
			recs = nil
			for _, c := range n.children.all() {
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
	for _, c := range n.children.all() {
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

// skySet is what a skydns name answers, built from the
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

// compileSkyDNS compiles svc when it holds skydns records (one parent
// name's: see etcd.SkyDNSSplitter), and returns nil for any other
// service. Its records answer from the zone's tree (skyTrees), not as a
// service of their own. The records of endpoints that prev (the service's
// previous compilation, or nil) compiled and that did not change since
// are reused.
func compileSkyDNS(svc *cache.Service, ttl uint32, prev *compiledService) *compiledService {
	if !slices.ContainsFunc(svc.Endpoints, func(ep cache.Endpoint) bool { return ep.SkyDNS != nil }) {
		return nil
	}
	cs := &compiledService{stamp: new(stamp), svc: svc, sky: make([]*skyRecord, len(svc.Endpoints))}
	var was unchanged
	if prev != nil && prev.sky != nil {
		was.olds = prev.svc.Endpoints
	}
	for i := range svc.Endpoints {
		if j := was.find(&svc.Endpoints[i]); j >= 0 {
			cs.sky[i] = prev.sky[j]
		} else {
			cs.sky[i] = newSkyRecord(svc, &svc.Endpoints[i], ttl)
		}
	}
	return cs
}

// newSkyRecord returns the record of ep, an endpoint of svc.
func newSkyRecord(svc *cache.Service, ep *cache.Endpoint, ttl uint32) *skyRecord {
	name := svc.InstanceName(ep)
	rel := strings.TrimSuffix(strings.TrimSuffix(name, svc.Zone), ".") // the labels below the zone
	var path []string
	if strings.Contains(rel, `\`) {
		path = dns.SplitDomainName(rel) // escaped dots are no label's end
	} else {
		path = strings.Split(rel, ".")
	}
	slices.Reverse(path)
	rec := &skyRecord{
		ref:      skyRef{ep.Source, svc.FQDN, ep.ID},
		path:     path,
		key:      strings.Join(path, "/"),
		depth:    len(path),
		name:     name,
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
	return rec
}

// swap is a service that a compilation replaced: was by now, either
// nil for none.
type swap struct{ was, now *compiledService }

// skyTrees returns the trees of skydns names by zone: prev's (none when
// prev is nil), edited with the records of the services swapped since.
func skyTrees(prev *index, swaps []swap) map[string]*skyNode {
	edits := map[string]*skyEdit{}
	edit := func(zone string) *skyEdit {
		e := edits[zone]
		if e == nil {
			var root *skyNode
			if prev != nil {
				root = prev.skyRoots[zone]
			}
			if root == nil {
				root = &skyNode{stamp: new(stamp)}
			}
			e = newSkyEdit(root)
			edits[zone] = e
		}
		return e
	}
	for _, sw := range swaps {
		skyChange(edit, sw.was, sw.now)
	}
	roots := map[string]*skyNode{}
	if prev != nil {
		maps.Copy(roots, prev.skyRoots)
	}
	for zone, e := range edits {
		if e.root.count > 0 {
			roots[zone] = e.root
		} else {
			delete(roots, zone)
		}
	}
	return roots
}

// skyChange edits the trees (edit gives a zone's) from the records of
// old to those of cs, either nil or of another layout for none: it
// removes and adds the records of the endpoints that changed.
func skyChange(edit func(zone string) *skyEdit, old, cs *compiledService) {
	var olds, news []cache.Endpoint
	if old != nil && old.sky != nil {
		olds = old.svc.Endpoints
	}
	if cs != nil && cs.sky != nil {
		news = cs.svc.Endpoints
	}
	if len(olds) > 0 && len(news) > 0 && old.svc.Zone != cs.svc.Zone {
		skyChange(edit, old, nil)
		skyChange(edit, nil, cs)
		return
	}
	for i, j := 0, 0; i < len(olds) || j < len(news); {
		c := 1 // which comes first: -1 the old endpoint, 1 the new one
		switch {
		case i == len(olds):
		case j == len(news):
			c = -1
		default:
			c = cmp.Compare(olds[i].Label, news[j].Label)
		}
		if c == 0 && (olds[i].Version != 0 && olds[i].Version == news[j].Version || olds[i].Instance.Equal(news[j].Instance)) {
			i, j = i+1, j+1
			continue
		}
		if c <= 0 {
			edit(old.svc.Zone).remove(old.sky[i])
			i++
		}
		if c >= 0 {
			edit(cs.svc.Zone).add(cs.sky[j])
			j++
		}
	}
}

// skyEdit changes a tree by copying the nodes on the paths it changes;
// the copies hold id, and the edit changes them in place. freshShards are
// the copies of shards of their children, with the builders that change
// them.
type skyEdit struct {
	root        *skyNode
	id          *editID
	freshShards map[*skyShard]*shardmap.Builder[*skyNode]
}

// editID is the identity of a skyEdit, which the nodes it made hold: no
// two edits share one while a node holds it.
type editID struct{ _ byte }

func newSkyEdit(root *skyNode) *skyEdit {
	return &skyEdit{root: root, id: new(editID), freshShards: map[*skyShard]*shardmap.Builder[*skyNode]{}}
}

// skyWide is how many children a node holds in its sorted list; past it
// they go in skyShards shards by a hash of the label, each a shardmap, so
// that a copy of a wide node (a zone with many names right below it)
// copies a few small arrays of the shard and one bucket: a change costs
// its path, not the width of the tree.
const (
	skyWide   = 256
	skyShards = 256
)

// skyShard is one shard of a wide node's children.
type skyShard struct{ m *shardmap.Map[*skyNode] }

// skyChildren are a node's children by label.
type skyChildren struct {
	// list holds a narrow node's, sorted by label: most nodes have one
	// child or a few, and a copy of the list is one small array.
	list   []skyChild
	shards []*skyShard  // a wide node's (then list is nil)
	seed   maphash.Seed // the shards' hash
}

// skyChild is a child of a narrow node.
type skyChild struct {
	label string
	node  *skyNode
}

// find returns the position of label in a narrow node's list, and whether
// it is there.
func (c *skyChildren) find(label string) (int, bool) {
	return slices.BinarySearchFunc(c.list, label, func(k skyChild, l string) int { return strings.Compare(k.label, l) })
}

func (c *skyChildren) shard(label string) int {
	return int(maphash.String(c.seed, label) % skyShards)
}

// get returns the child with label, or nil.
func (c *skyChildren) get(label string) *skyNode {
	if c.shards != nil {
		n, _ := c.shards[c.shard(label)].m.Get(label)
		return n
	}
	if i, ok := c.find(label); ok {
		return c.list[i].node
	}
	return nil
}

// all yields every child, in no order.
func (c *skyChildren) all() iter.Seq2[string, *skyNode] {
	return func(yield func(string, *skyNode) bool) {
		if c.shards == nil {
			for _, k := range c.list {
				if !yield(k.label, k.node) {
					return
				}
			}
			return
		}
		for _, sh := range c.shards {
			for l, n := range sh.m.All() {
				if !yield(l, n) {
					return
				}
			}
		}
	}
}

// clone returns a copy of c that shares the shards of a wide node: the
// edit copies a shard before it changes it (setChild).
func (c *skyChildren) clone() skyChildren {
	if c.shards != nil {
		return skyChildren{shards: slices.Clone(c.shards), seed: c.seed}
	}
	return skyChildren{list: slices.Clone(c.list)}
}

// setChild sets the child of n (one of the edit's copies) with label to
// c, or removes it when c is nil.
func (e *skyEdit) setChild(n *skyNode, label string, c *skyNode) {
	kids := &n.children
	if kids.shards == nil {
		i, found := kids.find(label)
		switch {
		case c == nil:
			if found {
				kids.list = slices.Delete(kids.list, i, i+1)
			}
			return
		case found:
			kids.list[i].node = c
			return
		}
		kids.list = slices.Insert(kids.list, i, skyChild{label, c})
		if len(kids.list) > skyWide {
			kids.seed = maphash.MakeSeed()
			kids.shards = make([]*skyShard, skyShards)
			for i := range kids.shards {
				b := (*shardmap.Map[*skyNode])(nil).Edit()
				kids.shards[i] = &skyShard{m: b.Map()}
				e.freshShards[kids.shards[i]] = b
			}
			for _, k := range kids.list {
				e.freshShards[kids.shards[kids.shard(k.label)]].Set(k.label, k.node)
			}
			kids.list = nil
		}
		return
	}
	i := kids.shard(label)
	sh := kids.shards[i]
	b := e.freshShards[sh]
	if b == nil {
		b = sh.m.Edit()
		sh = &skyShard{m: b.Map()}
		kids.shards[i] = sh
		e.freshShards[sh] = b
	}
	if c == nil {
		b.Delete(label)
	} else {
		b.Set(label, c)
	}
}

// mine returns n, or its copy when n is not the edit's own.
func (e *skyEdit) mine(n *skyNode) *skyNode {
	if n.edit == e.id {
		return n
	}
	return &skyNode{stamp: new(stamp), edit: e.id, children: n.children.clone(), own: slices.Clone(n.own), count: n.count}
}

// add adds rec at its name.
func (e *skyEdit) add(rec *skyRecord) {
	e.root = e.mine(e.root)
	n := e.root
	n.count++
	for _, label := range rec.path {
		c := n.children.get(label)
		if c == nil {
			c = &skyNode{stamp: new(stamp), edit: e.id}
		} else {
			c = e.mine(c)
		}
		e.setChild(n, label, c)
		c.count++
		n = c
	}
	n.own = append(n.own, rec)
}

// remove removes the record of rec's name with rec's ref, and the names
// it leaves empty.
func (e *skyEdit) remove(rec *skyRecord) {
	it := func(r *skyRecord) bool { return r.ref == rec.ref }
	var below [16]*skyNode
	path := below[:0] // the nodes of rec's name and above it, but the root
	n := e.root
	for _, label := range rec.path {
		if n = n.children.get(label); n == nil {
			return
		}
		path = append(path, n)
	}
	if !slices.ContainsFunc(n.own, it) {
		return
	}
	e.root = e.mine(e.root)
	n = e.root
	n.count--
	for k, label := range rec.path {
		if path[k].count == 1 {
			e.setChild(n, label, nil) // the last record below: the name goes
			return
		}
		c := e.mine(path[k])
		c.count--
		e.setChild(n, label, c)
		n = c
	}
	n.own = slices.DeleteFunc(n.own, it)
}
