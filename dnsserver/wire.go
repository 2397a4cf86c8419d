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

// maxWireEntries bounds the packed answers kept per index.
const maxWireEntries = 50000

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
	mu sync.RWMutex
	m  map[wireKey]*wireEntry
}

func (c *wireCache) get(k wireKey) *wireEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[k]
}

func (c *wireCache) put(k wireKey, e *wireEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[wireKey]*wireEntry{}
	}
	if len(c.m) < maxWireEntries {
		c.m[k] = e
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
	key := wireKey{name: strings.ToLower(q.Name), qtype: q.Qtype, limit: maxSize(opt, tcp, h.opt.UDPSize)}
	if opt != nil {
		key.edns, key.do, key.udpSize = true, opt.Do(), opt.UDPSize()
	}
	idx := h.idx.Load()
	e := idx.wire.get(key)
	if e == nil {
		if e = h.fillWire(idx, key, tcp); e == nil {
			return nil, nil
		}
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

// fillWire builds and packs the answers of key from idx, and keeps them
// when they are authoritative.
func (h *Handler) fillWire(idx *index, key wireKey, tcp bool) *wireEntry {
	req := new(dns.Msg)
	req.SetQuestion(key.name, key.qtype)
	req.RecursionDesired = false
	if key.edns {
		req.SetEdns0(key.udpSize, key.do)
	}
	e := &wireEntry{}
	for range wireVariants {
		resp := h.answerFrom(idx, req, tcp, netip.Addr{})
		if !resp.Authoritative {
			return nil
		}
		b, err := resp.Pack()
		if err != nil {
			return nil
		}
		e.variants = append(e.variants, b)
		e.rcode, e.truncated = resp.Rcode, resp.Truncated
	}
	idx.wire.put(key, e)
	return e
}
