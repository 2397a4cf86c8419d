package dnsserver

import (
	"context"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Answer builds the response to req as it would be sent over TCP or UDP
// to client.
func (h *Handler) Answer(req *dns.Msg, tcp bool, client netip.Addr) *dns.Msg {
	return h.answerFrom(h.idx.Load(), req, tcp, client, &rotation{off: h.next()})
}

// rotation is where the rotated records of an answer start (off, taken
// modulo their count), and, once the answer is built, how many distinct
// starts it has (period: the count of rotated records, 1 when none) and
// what locality made of it.
type rotation struct {
	off, period int
	loc         localResult // what locality made of the answer
}

// start records that n records rotate and returns their first one's index.
func (r *rotation) start(n int) int {
	if n == 0 {
		return 0
	}
	r.period = n
	return r.off % n
}

// answerFrom is Answer from idx, its rotated records starting at rot.
func (h *Handler) answerFrom(idx *index, req *dns.Msg, tcp bool, client netip.Addr, rot *rotation) *dns.Msg {
	m := new(dns.Msg)
	m.Id = req.Id
	m.Response = true
	m.Opcode = req.Opcode
	if req.Opcode != dns.OpcodeQuery {
		// RFC 8906 section 8: only the ID, opcode, QR and rcode; what the
		// other fields mean under an unknown opcode is unknown.
		m.Rcode = dns.RcodeNotImplemented
		return m
	}
	m.RecursionDesired = req.RecursionDesired
	m.CheckingDisabled = req.CheckingDisabled
	m.Question = req.Question // as sent, case kept
	m.Compress = true

	if countOPT(req.Extra) > 1 {
		// RFC 6891 section 6.1.1; which of them would the reply echo?
		m.Rcode = dns.RcodeFormatError
		return m
	}
	reqOpt := req.IsEdns0()
	if reqOpt != nil {
		opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		opt.SetUDPSize(uint16(idx.set.UDPSize))
		opt.SetDo(reqOpt.Do())
		m.Extra = []dns.RR{opt}
		switch {
		case reqOpt.Version() != 0:
			m.Rcode = dns.RcodeBadVers
			return m
		case !wellFormedOptions(reqOpt):
			m.Rcode = dns.RcodeFormatError
			return m
		}
	}
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := req.Question[0]
	switch {
	case q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY:
		m.Rcode = dns.RcodeRefused
		return m
	case q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR:
		// No zone transfers, of the zones or through the forwarder.
		m.Rcode = dns.RcodeRefused
		return m
	}
	m.RecursionAvailable = idx.set.Forwarder != nil

	name := strings.ToLower(q.Name)
	r := idx.resolve(name)
	switch {
	case r.zone != nil:
		m.Authoritative = true
		answerName(m, r, q, rot)
	case q.Qtype == dns.TypePTR && len(idx.reverse(name)) > 0:
		m.Authoritative = true
		m.Answer = rotated(nil, q.Name, idx.reverse(name), 0)
	case idx.set.Forwarder != nil:
		return h.forward(idx.set, req, m, client, tcp)
	default:
		m.Rcode = dns.RcodeRefused
		return m
	}
	fit(m, maxSize(reqOpt, tcp, idx.set.UDPSize))
	return m
}

func (h *Handler) forward(set *settings, req, m *dns.Msg, client netip.Addr, tcp bool) *dns.Msg {
	ctx := context.Background()
	if set.ForwardTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, set.ForwardTimeout)
		defer cancel()
	}
	resp, err := set.Forwarder.Forward(ctx, req, client)
	if err != nil || resp == nil {
		h.log.Debug("forward failed", "err", err)
		m.Rcode = dns.RcodeServerFailure
		return m
	}
	resp.Id = req.Id
	resp.Question = req.Question
	// The forwarder refuses a client outside its allowed networks (an
	// upstream's REFUSED is its error): no recursion for that client.
	resp.RecursionAvailable = resp.Rcode != dns.RcodeRefused
	fit(resp, maxSize(req.IsEdns0(), tcp, set.UDPSize))
	return resp
}

// answerName fills m for q from what its name is in the zones.
func answerName(m *dns.Msg, r named, q dns.Question, rot *rotation) {
	switch r.kind {
	case kindApex:
		if !answerSkyApex(m, r, q) {
			answerApex(m, r.zone, q)
		}
	case kindSky:
		answerSky(m, r, q, rot)
	case kindSet:
		answerSet(m, q, r.set, rot)
	case kindSRV:
		if q.Qtype == dns.TypeSRV {
			answerSet(m, q, r.set, rot)
		}
	case kindInstance:
		answerInstance(m, q, r.inst)
	}
	finish(m, r.zone, q, r.kind != kindNone)
}

// answerApex adds the apex's SOA, its NS (itself, with its addresses) or
// its addresses.
func answerApex(m *dns.Msg, z *zone, q dns.Question) {
	switch q.Qtype {
	case dns.TypeA, dns.TypeAAAA:
		for _, rr := range z.glue {
			if rr.Header().Rrtype == q.Qtype {
				rr = dns.Copy(rr)
				rr.Header().Name = q.Name
				m.Answer = append(m.Answer, rr)
			}
		}
	case dns.TypeSOA:
		soa := z.soa
		soa.Hdr.Name = q.Name
		m.Answer = append(m.Answer, &soa)
	case dns.TypeNS:
		ns := z.ns
		ns.Hdr.Name = q.Name
		m.Answer = append(m.Answer, &ns)
		m.Extra = append(m.Extra, z.glue...)
	}
}

// answerSet adds the records of set for q's type (A, AAAA or SRV with its
// targets' addresses), rotated as rot says so that first picks and trimmed
// answers spread load.
func answerSet(m *dns.Msg, q dns.Question, set *rrsets, rot *rotation) {
	rot.loc = set.loc.of(q.Qtype)
	switch q.Qtype {
	case dns.TypeA:
		m.Answer = rotated(m.Answer, q.Name, set.a, rot.start(len(set.a)))
	case dns.TypeAAAA:
		m.Answer = rotated(m.Answer, q.Name, set.aaaa, rot.start(len(set.aaaa)))
	case dns.TypeSRV:
		off := rot.start(len(set.srv))
		m.Answer = rotated(m.Answer, q.Name, set.srv, off)
		for i := range set.glue {
			m.Extra = append(m.Extra, set.glue[(i+off)%len(set.glue)]...)
		}
	}
}

// answerInstance adds one instance's records of q's type.
func answerInstance(m *dns.Msg, q dns.Question, node *instNode) {
	if len(node.cname) > 0 && q.Qtype != dns.TypeANY {
		m.Answer = rotated(m.Answer, q.Name, node.cname, 0)
		return
	}
	switch q.Qtype {
	case dns.TypeA:
		m.Answer = rotated(m.Answer, q.Name, node.a, 0)
	case dns.TypeAAAA:
		m.Answer = rotated(m.Answer, q.Name, node.aaaa, 0)
	case dns.TypeTXT:
		m.Answer = rotated(m.Answer, q.Name, node.txt, 0)
	case dns.TypeSRV:
		m.Answer = rotated(m.Answer, q.Name, node.srv, 0)
		m.Extra = append(m.Extra, node.glue...)
	}
}

// finish completes an in-zone answer: ANY gets the minimal RFC 8482 answer,
// an existing name without records of the type gets NODATA and a missing one
// NXDOMAIN, both with the SOA whose minimum is the negative TTL (RFC 2308).
func finish(m *dns.Msg, z *zone, q dns.Question, exists bool) {
	if exists && q.Qtype == dns.TypeANY {
		m.Answer = append(m.Answer[:0], &dns.HINFO{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeHINFO, Class: dns.ClassINET, Ttl: z.ns.Hdr.Ttl},
			Cpu: "RFC8482",
		})
		return
	}
	if len(m.Answer) > 0 {
		return
	}
	if !exists {
		m.Rcode = dns.RcodeNameError
	}
	m.Extra = onlyOPT(m.Extra)
	soa := z.soa
	m.Ns = append(m.Ns, &soa)
}

func (h *Handler) next() int { return int(h.rot.Add(1)) }

// rotated appends src to dst starting at off (mod len), each record a copy
// owned by name so the answer repeats the question's spelling.
func rotated[T any, P interface {
	*T
	dns.RR
}](dst []dns.RR, name string, src []T, off int) []dns.RR {
	if len(src) == 0 {
		return dst
	}
	buf := make([]T, len(src))
	off %= len(src)
	for i := range buf {
		buf[i] = src[(i+off)%len(src)]
		rr := P(&buf[i])
		rr.Header().Name = name
		dst = append(dst, rr)
	}
	return dst
}

// countOPT returns how many OPT records extra holds.
func countOPT(extra []dns.RR) int {
	n := 0
	for _, rr := range extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			n++
		}
	}
	return n
}

// wellFormedOptions reports whether the EDNS options of opt have lengths
// their RFCs allow: a COOKIE is a client cookie of 8 octets, alone or with
// a server cookie of 8 to 32 (RFC 7873 section 5.2.2: anything else is
// FORMERR). Options discodns does not know are ignored (RFC 6891).
func wellFormedOptions(opt *dns.OPT) bool {
	for _, o := range opt.Option {
		if c, ok := o.(*dns.EDNS0_COOKIE); ok {
			// miekg/dns keeps the cookie as hex: two characters an octet.
			if n := len(c.Cookie) / 2; n != 8 && (n < 16 || n > 40) {
				return false
			}
		}
	}
	return true
}
