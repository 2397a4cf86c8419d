package dnsserver

import (
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// The wire cache keeps packed answers per index, so that a repeated
// question costs a map lookup, a copy and three patches (ID, flags, the
// question's spelling) instead of building and packing a message.

// maxWireBytes bounds the packed answers kept per index, and
// maxWireAnswer the size of one: larger answers (big services over TCP)
// take the full path every time.
const (
	maxWireBytes  = 16 << 20
	maxWireAnswer = 4096
)

// wireKey is what a cacheable answer depends on besides the index.
type wireKey struct {
	name    string // lowercase
	qtype   uint16
	limit   int // the response size limit
	edns    bool
	do      bool
	udpSize uint16 // the client's advertised size, echoed nowhere but kept exact
}

// wireEntry is the packed answers of one key: one variant per rotation of
// the answer's records (as many as there are records, so that every
// instance comes first in turn), each packed on first use.
type wireEntry struct {
	variants []atomic.Pointer[wireVariant] // empty: not cacheable
	next     atomic.Uint32
}

// wireVariant is one packed answer (ID 0, RD and CD clear, the question in
// lowercase), with what the metrics say of it.
type wireVariant struct {
	msg       []byte
	rcode     int
	truncated bool
}

// wireCache is an index's packed answers, at most maxWireBytes of them.
type wireCache struct {
	mu    sync.RWMutex
	m     map[wireKey]*wireEntry
	bytes atomic.Int64
}

func (c *wireCache) get(k wireKey) *wireEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[k]
}

// put keeps e for k, unless k is there already or the cache is full.
func (c *wireCache) put(k wireKey, e *wireEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[wireKey]*wireEntry{}
	}
	if _, dup := c.m[k]; !dup && c.reserve(len(k.name)+8*len(e.variants)) {
		c.m[k] = e
	}
}

// reserve takes n bytes of the cache's budget, and reports whether they
// were there.
func (c *wireCache) reserve(n int) bool {
	if c.bytes.Add(int64(n)) > maxWireBytes {
		c.bytes.Add(-int64(n))
		return false
	}
	return true
}

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
	key := wireKey{name: strings.ToLower(q.Name), qtype: q.Qtype, limit: maxSize(opt, tcp, idx.set.UDPSize)}
	if opt != nil {
		key.edns, key.do, key.udpSize = true, opt.Do(), opt.UDPSize()
	}
	e := idx.wire.get(key)
	if e == nil {
		e = h.fillWire(idx, key, tcp)
	}
	if len(e.variants) == 0 {
		return nil, nil // not cacheable: the full path answers
	}
	i := int(e.next.Add(1)-1) % len(e.variants)
	v := e.variants[i].Load()
	if v == nil {
		if v, _ = h.packWire(idx, key, tcp, i); v == nil {
			return nil, nil
		}
		if idx.wire.reserve(len(v.msg)) && !e.variants[i].CompareAndSwap(nil, v) {
			idx.wire.bytes.Add(-int64(len(v.msg))) // filled meanwhile: give the bytes back
		}
	}
	out := make([]byte, len(v.msg))
	copy(out, v.msg)
	out[0], out[1] = byte(req.Id>>8), byte(req.Id)
	if req.RecursionDesired {
		out[2] |= 1 // RD
	}
	if req.CheckingDisabled {
		out[3] |= 1 << 4 // CD
	}
	// The question as sent: same length as its lowercase form.
	if off, err := dns.PackDomainName(q.Name, out, 12, nil, false); err != nil || off != 12+wireNameLen(v.msg) {
		return nil, nil
	}
	return out, v
}

// wireNameLen is the length of the question name in a packed message.
func wireNameLen(msg []byte) int {
	off := 12
	for off < len(msg) && msg[off] != 0 {
		off += int(msg[off]) + 1
	}
	return off + 1 - 12
}

// fillWire packs one variant of key's answer from idx and keeps an entry
// with room for the others; an answer that is not authoritative or
// too large is kept as an entry without variants, so the next query goes
// straight to the full path.
func (h *Handler) fillWire(idx *index, key wireKey, tcp bool) *wireEntry {
	if z, _ := idx.findZone(key.name); z == nil && (key.qtype != dns.TypePTR || len(idx.reverse(key.name)) == 0) {
		return &wireEntry{} // forwarded or refused: never cached, nothing kept
	}
	// The first query of each snapshot starts where the handler's rotation
	// is, not always at the first record.
	off := h.next()
	e := &wireEntry{}
	if v, rot := h.packWire(idx, key, tcp, off); v != nil {
		e.variants = make([]atomic.Pointer[wireVariant], rot.period)
		e.next.Store(uint32(off))
		if idx.wire.reserve(len(v.msg)) {
			e.variants[off%rot.period].Store(v)
		}
	}
	idx.wire.put(key, e)
	return e
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
	return &wireVariant{msg: b, rcode: resp.Rcode, truncated: resp.Truncated}, rot
}
