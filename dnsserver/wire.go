package dnsserver

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// The wire cache keeps packed answers, so that a repeated question costs a
// map lookup, a copy and three patches (ID, flags, the question's
// spelling) instead of building and packing a message. It outlives
// snapshots: an answer that depends on one service alone (its addresses,
// its SRV sets, an instance's records) stays while that service is
// unchanged, so a change costs the answers of what it changed. Every other
// answer (negative answers, whose SOA serial is the snapshot's, the apex,
// reverse names) holds for the index it was packed from.

// maxWireBytes bounds the packed answers kept (past it the cache starts
// afresh), and maxWireAnswer the size of one: larger answers (big services
// over TCP) take the full path every time.
const (
	maxWireBytes  = 16 << 20
	maxWireAnswer = 4096
	wireShards    = 64 // locks of the cache, so that cores rarely share one
)

// wireQuestion is what a cacheable answer depends on besides its name and
// the index.
type wireQuestion struct {
	qtype   uint16
	limit   int // the response size limit
	edns    bool
	do      bool
	udpSize uint16 // the client's advertised size, echoed nowhere but kept exact
}

// wireKey identifies a cached answer.
type wireKey struct {
	name string // lowercase, in presentation format
	wireQuestion
}

// wireEntry is the packed answers of one key: one variant per rotation of
// the answer's records (as many as there are records, so that every
// instance comes first in turn), each packed on first use.
type wireEntry struct {
	key wireKey
	// The answers hold while the service at fqdn is the one stamped
	// owner, when the answer depends on that service alone, or else
	// while the index is the one stamped at.
	fqdn      string
	owner, at *stamp
	// node, when sky is set, stamps the skydns name the answers depend
	// on alone: they hold while the zone's tree has that very node, as it
	// does at once while the tree is the one stamped root, unchanged.
	sky        bool
	node, root *stamp

	variants []atomic.Pointer[wireVariant] // empty: not cacheable
	next     atomic.Uint32
	size     atomic.Int64 // octets of the cache's budget the entry holds
}

// stamp is the identity of a compiled index, service or skydns name for
// the wire cache. An entry keeps the stamps of what its answers depend on,
// which pins a byte each rather than what they stamp (a whole index, a
// service's record sets, a tree of names), and holds while the index still
// has the objects stamped so. (Weak pointers pinned nothing, but turning
// one into a strong pointer waits, once the GC has tried to end a mark
// phase, until it has: queries waited up to 150 ms for it.)
type stamp struct{ _ byte }

// validFor reports whether e's answers are idx's.
func (e *wireEntry) validFor(idx *index) bool {
	if e.sky {
		z, _ := idx.zoneOf(e.key.name)
		if z == nil {
			return false
		}
		if root := idx.skyRoots[z.name]; root != nil && root.stamp == e.root {
			return true
		}
		n := idx.skyNodeOf(e.key.name)
		return n != nil && n.stamp == e.node
	}
	if e.fqdn == "" {
		return e.at == idx.stamp
	}
	cs := idx.service(e.fqdn)
	return cs != nil && cs.stamp == e.owner
}

// wireVariant is one packed answer (ID 0, RD and CD clear, the question in
// lowercase), with what the metrics say of it.
type wireVariant struct {
	msg       []byte
	rcode     int
	truncated bool
	loc       localResult // what locality made of it, for the metrics
}

// wireCache is the packed answers, at most maxWireBytes of them, in shards
// by a hash of the key.
type wireCache struct {
	seed   maphash.Seed
	shards [wireShards]wireShard
	bytes  atomic.Int64
}

type wireShard struct {
	mu sync.RWMutex
	m  map[uint64]*wireEntry
	_  [64]byte // keeps the locks of shards off one cache line
}

func newWireCache() *wireCache {
	c := &wireCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = map[uint64]*wireEntry{}
	}
	return c
}

// sum hashes a key.
func (c *wireCache) sum(name string, q wireQuestion) uint64 {
	x := uint64(q.qtype) | uint64(q.udpSize)<<16 | uint64(q.limit)<<32
	if q.edns {
		x |= 1 << 63
	}
	if q.do {
		x |= 1 << 62
	}
	h := maphash.String(c.seed, name) ^ x*0x9e3779b97f4a7c15
	return h ^ h>>29
}

// get returns the entry of the key whose hash is sum, or nil.
func (c *wireCache) get(sum uint64, name string, q wireQuestion) *wireEntry {
	sh := &c.shards[sum%wireShards]
	sh.mu.RLock()
	e := sh.m[sum]
	sh.mu.RUnlock()
	if e == nil || e.key.name != name || e.key.wireQuestion != q {
		return nil
	}
	return e
}

// put keeps e under sum, in place of what was there, when the budget has
// room for it.
func (c *wireCache) put(sum uint64, e *wireEntry) {
	if !c.reserve(e, len(e.key.name)+8*len(e.variants)+64) {
		return
	}
	sh := &c.shards[sum%wireShards]
	sh.mu.Lock()
	old := sh.m[sum]
	sh.m[sum] = e
	sh.mu.Unlock()
	if old != nil {
		c.bytes.Add(-old.size.Load())
	}
}

// reserve takes n octets of the budget for e, and reports whether they
// were there.
func (c *wireCache) reserve(e *wireEntry, n int) bool {
	if c.bytes.Add(int64(n)) > maxWireBytes {
		c.bytes.Add(-int64(n))
		return false
	}
	e.size.Add(int64(n))
	return true
}

// full reports whether the budget is spent.
func (c *wireCache) full() bool { return c.bytes.Load() > maxWireBytes-maxWireAnswer }

// wireAnswer returns the packed answer to req from the wire cache, filling
// it on a miss, or nil when req needs the full path: anything but one
// IN question with plain EDNS, or an answer that is not authoritative
// (forwarded, refused).
func (h *Handler) wireAnswer(req *dns.Msg, tcp bool) ([]byte, *wireVariant) {
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 || req.Question[0].Qclass != dns.ClassINET {
		return nil, nil
	}
	opt := req.IsEdns0()
	if opt != nil && (opt.Version() != 0 || len(opt.Option) > 0 || len(req.Extra) > 1) {
		return nil, nil
	}
	if opt == nil && len(req.Extra) > 0 {
		return nil, nil
	}
	q := req.Question[0]
	idx := h.idx.Load()
	wq := wireQuestion{qtype: q.Qtype, limit: maxSize(opt, tcp, idx.set.UDPSize)}
	if opt != nil {
		wq.edns, wq.do, wq.udpSize = true, opt.Do(), opt.UDPSize()
	}
	v := h.cachedVariant(idx, strings.ToLower(q.Name), wq, tcp)
	if v == nil {
		return nil, nil
	}
	out := make([]byte, len(v.msg))
	copy(out, v.msg)
	patch(out, req.Id, req.RecursionDesired, req.CheckingDisabled)
	// The question as sent: same length as its lowercase form.
	if off, err := dns.PackDomainName(q.Name, out, headerLen, nil, false); err != nil || off != headerLen+wireNameLen(v.msg) {
		return nil, nil
	}
	return out, v
}

// patch sets the ID and echoes the RD and CD flags of a query in a packed
// answer from the cache.
func patch(out []byte, id uint16, rd, cd bool) {
	binary.BigEndian.PutUint16(out, id)
	if rd {
		out[2] |= 1
	}
	if cd {
		out[3] |= 1 << 4
	}
}

// wireNameLen is the length of the question name in a packed message.
func wireNameLen(msg []byte) int {
	off := headerLen
	for off < len(msg) && msg[off] != 0 {
		off += int(msg[off]) + 1
	}
	return off + 1 - headerLen
}

// cachedVariant returns the next packed answer (in the rotation of its
// records) to the question name (lowercase; it may alias a buffer of the
// caller's) and q from idx, filling the cache on a miss, or nil when the
// answer is not cacheable.
func (h *Handler) cachedVariant(idx *index, name string, q wireQuestion, tcp bool) *wireVariant {
	c := h.wire.Load()
	sum := c.sum(name, q)
	e := c.get(sum, name, q)
	if e == nil || !e.validFor(idx) {
		e = h.fillWire(c, idx, wireKey{name: strings.Clone(name), wireQuestion: q}, sum, tcp)
	}
	if len(e.variants) == 0 {
		return nil // not cacheable: the full path answers
	}
	i := int(e.next.Add(1)-1) % len(e.variants)
	v := e.variants[i].Load()
	if v == nil {
		if v, _ = h.packWire(idx, e.key, tcp, i); v == nil {
			return nil
		}
		if c.reserve(e, len(v.msg)) && !e.variants[i].CompareAndSwap(nil, v) {
			c.bytes.Add(-int64(len(v.msg))) // filled meanwhile: give the bytes back
			e.size.Add(-int64(len(v.msg)))
		}
		h.renewIfFull(c)
	}
	return v
}

// fillWire packs one variant of key's answer from idx and keeps an entry
// with room for the others; an answer that is not authoritative or too
// large is kept as an entry without variants, so the next query goes
// straight to the full path.
func (h *Handler) fillWire(c *wireCache, idx *index, key wireKey, sum uint64, tcp bool) *wireEntry {
	r := idx.resolve(key.name)
	if r.zone == nil && (key.qtype != dns.TypePTR || len(idx.reverse(key.name)) == 0) {
		return &wireEntry{} // forwarded or refused: never cached, nothing kept
	}
	// The first query of an entry starts where the handler's rotation
	// is, not always at the first record.
	off := h.next()
	e := &wireEntry{key: key, at: idx.stamp}
	v, rot := h.packWire(idx, key, tcp, off)
	if v != nil {
		e.variants = make([]atomic.Pointer[wireVariant], rot.period)
		e.next.Store(uint32(off))
		if c.reserve(e, len(v.msg)) {
			e.variants[off%rot.period].Store(v)
		}
		switch {
		case v.rcode != dns.RcodeSuccess || binary.BigEndian.Uint16(v.msg[6:]) == 0:
		case r.svc != nil:
			// Records of one service: they hold while it is unchanged.
			e.fqdn, e.owner, e.at = r.svc.svc.FQDN, r.svc.stamp, nil
		case r.node != nil:
			// Records of one skydns name: they hold while it is.
			e.sky, e.node, e.at = true, r.node.stamp, nil
			e.root = idx.skyRoots[r.zone.name].stamp
		}
	} else if r.svc != nil {
		e.fqdn, e.owner, e.at = r.svc.svc.FQDN, r.svc.stamp, nil
	}
	c.put(sum, e)
	h.renewIfFull(c)
	return e
}

// renewIfFull starts the cache afresh when c, the cache in use, has spent
// its budget: stale entries of services long changed and names asked once
// leave with it, and the names still asked come back at their next query.
func (h *Handler) renewIfFull(c *wireCache) {
	if c.full() && h.wire.CompareAndSwap(c, newWireCache()) {
		h.metrics.wireRenewed()
	}
}

// packWire builds and packs key's answer from idx with its records rotated
// by off, or returns nil when it is not authoritative or too large.
func (h *Handler) packWire(idx *index, key wireKey, tcp bool, off int) (*wireVariant, rotation) {
	req := new(dns.Msg)
	req.SetQuestion(key.name, key.qtype)
	req.RecursionDesired = false
	if key.edns {
		req.SetEdns0(key.udpSize, key.do)
	}
	rot := rotation{off: off, period: 1}
	resp := h.answerFrom(idx, req, tcp, netip.Addr{}, &rot)
	b, err := resp.Pack()
	if !resp.Authoritative || err != nil || len(b) > maxWireAnswer {
		return nil, rot
	}
	return &wireVariant{msg: b, rcode: resp.Rcode, truncated: resp.Truncated, loc: rot.loc}, rot
}
