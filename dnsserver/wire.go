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

// wireVariants is how many rotations of an answer are kept; queries take
// them in turn, which spreads load as rotating every answer does.
const wireVariants = 4

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

// wireEntry is the packed answer of one key, ID 0, RD and CD clear, the
// question in lowercase.
type wireEntry struct {
	variants  [][]byte
	next      atomic.Uint32
	rcode     int
	truncated bool
}

// wireCache is an index's packed answers.
type wireCache struct {
	mu    sync.RWMutex
	m     map[wireKey]*wireEntry
	bytes int
}

func (c *wireCache) get(k wireKey) *wireEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[k]
}

func (c *wireCache) put(k wireKey, e *wireEntry) {
	size := len(k.name)
	for _, v := range e.variants {
		size += len(v)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[wireKey]*wireEntry{}
	}
	if _, dup := c.m[k]; !dup && c.bytes+size <= maxWireBytes {
		c.m[k] = e
		c.bytes += size
	}
}

// wireAnswer returns the packed answer to req from the wire cache, filling
// it on a miss, or nil when req needs the full path: anything but one
// IN question with plain EDNS, or an answer that is not authoritative
// (forwarded, refused).
func (h *Handler) wireAnswer(req *dns.Msg, tcp bool) ([]byte, *wireEntry) {
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
	v := e.variants[int(e.next.Add(1))%len(e.variants)]
	out := make([]byte, len(v))
	copy(out, v)
	out[0], out[1] = byte(req.Id>>8), byte(req.Id)
	if req.RecursionDesired {
		out[2] |= 1 // RD
	}
	if req.CheckingDisabled {
		out[3] |= 1 << 4 // CD
	}
	// The question as sent: same length as its lowercase form.
	if off, err := dns.PackDomainName(q.Name, out, 12, nil, false); err != nil || off != 12+wireNameLen(v) {
		return nil, nil
	}
	return out, e
}

// wireNameLen is the length of the question name in a packed message.
func wireNameLen(msg []byte) int {
	off := 12
	for off < len(msg) && msg[off] != 0 {
		off += int(msg[off]) + 1
	}
	return off + 1 - 12
}

// fillWire builds and packs the answers of key from idx and keeps them;
// an answer that is not authoritative or too large is kept as an entry
// without variants, so the next query goes straight to the full path.
func (h *Handler) fillWire(idx *index, key wireKey, tcp bool) *wireEntry {
	if z, _ := idx.findZone(key.name); z == nil && (key.qtype != dns.TypePTR || len(idx.reverse(key.name)) == 0) {
		return &wireEntry{} // forwarded or refused: never cached, nothing kept
	}
	req := new(dns.Msg)
	req.SetQuestion(key.name, key.qtype)
	req.RecursionDesired = false
	if key.edns {
		req.SetEdns0(key.udpSize, key.do)
	}
	e := &wireEntry{}
	for range wireVariants {
		resp := h.answerFrom(idx, req, tcp, netip.Addr{})
		b, err := resp.Pack()
		if !resp.Authoritative || err != nil || len(b) > maxWireAnswer {
			e = &wireEntry{}
			break
		}
		e.variants = append(e.variants, b)
		e.rcode, e.truncated = resp.Rcode, resp.Truncated
	}
	idx.wire.put(key, e)
	return e
}
