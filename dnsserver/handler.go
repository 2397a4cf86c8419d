// Package dnsserver answers DNS for the services in the cache: the zone's
// names from a compiled index of the latest snapshot, everything else
// forwarded or refused. It never calls a registry.
package dnsserver

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/discodns/discodns/cache"
)

// Forwarder resolves names outside the zones. It is nil when forwarding is
// off.
type Forwarder interface {
	// Forward answers req from upstream servers for a client at addr, or
	// returns an error when it cannot.
	Forward(ctx context.Context, req *dns.Msg, client netip.Addr) (*dns.Msg, error)
}

// Options configure the answers. They are taken as given: config owns
// every default and check.
type Options struct {
	// Zone is the default zone, answered even when no source uses it.
	Zone string
	// TTL of positive answers and NegativeTTL (SOA minimum) of negative ones.
	TTL, NegativeTTL time.Duration
	// UDPSize caps the size of UDP answers to EDNS clients; below 512
	// (zero) it is 512, the size every DNS client takes.
	UDPSize int
	// NSAddrs are the addresses published for the zones' name server.
	NSAddrs []netip.Addr
	// Forwarder resolves names outside the zones; nil refuses them.
	Forwarder Forwarder
	// ForwardTimeout bounds one forwarded query; zero leaves it to the
	// forwarder's own timeouts.
	ForwardTimeout time.Duration
	// ClientRateLimit, when > 0, bounds the queries per second of each
	// client address (IPv6 by /64). Over it, UDP queries are dropped,
	// except every other one, which gets an empty truncated answer so a
	// real client retries over TCP (like BIND's RRL slip); TCP queries get
	// REFUSED.
	ClientRateLimit int
}

// Handler answers queries from the latest compiled index. Its ServeDNS is
// safe for concurrent use and never waits on a registry.
type Handler struct {
	metrics *Metrics
	log     *slog.Logger

	idx  atomic.Pointer[index] // the options in force travel with it
	rot  atomic.Uint32
	slip atomic.Uint32

	mu   sync.Mutex // serialises Update and SetOptions
	snap *cache.Snapshot
	set  *settings
}

// settings are the options in force and what derives from them. Each index
// carries its settings, so a query is answered with one consistent set
// even while SetOptions swaps them.
type settings struct {
	Options
	ttl, negTTL uint32
	limiter     *clientLimiter // nil: no rate limit
}

func newSettings(opt Options) *settings {
	opt.UDPSize = max(opt.UDPSize, dns.MinMsgSize)
	opt.Zone = dns.CanonicalName(opt.Zone)
	s := &settings{Options: opt, ttl: uint32(opt.TTL / time.Second), negTTL: uint32(opt.NegativeTTL / time.Second)}
	if opt.ClientRateLimit > 0 {
		s.limiter = newClientLimiter(opt.ClientRateLimit)
	}
	return s
}

// NewHandler returns a handler with an empty table; call Update or Follow to
// give it data. A nil metrics records nothing.
func NewHandler(opt Options, metrics *Metrics, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	h := &Handler{metrics: metrics, log: log, snap: &cache.Snapshot{}, set: newSettings(opt)}
	// Empty, and not ready until the first snapshot from a table.
	idx := compile(nil, h.snap, h.set)
	idx.ready = false
	h.idx.Store(idx)
	return h
}

// Update compiles snap and makes it the table answers come from.
func (h *Handler) Update(snap *cache.Snapshot) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.snap = snap
	h.idx.Store(compile(h.idx.Load(), snap, h.set))
}

// SetOptions puts opt in force: queries already being answered finish
// with the old options, the next ones get the new. The rate limiter starts
// afresh.
func (h *Handler) SetOptions(opt Options) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.set = newSettings(opt)
	idx := compile(h.idx.Load(), h.snap, h.set)
	idx.ready = idx.ready && h.idx.Load().ready
	h.idx.Store(idx)
}

// Follow keeps the handler on the latest snapshot of table until ctx ends.
func (h *Handler) Follow(ctx context.Context, table cache.Snapshots) {
	for {
		snap := table.Snapshot()
		h.Update(snap)
		select {
		case <-snap.Superseded():
		case <-ctx.Done():
			return
		}
	}
}

// Version is the snapshot version answers currently come from.
func (h *Handler) Version() uint64 { return h.idx.Load().version }

// Ready reports whether answers come from a snapshot in which every source
// had listed (see cache.Snapshot.Ready).
func (h *Handler) Ready() bool { return h.idx.Load().ready }

// ServeDNS implements dns.Handler.
func (h *Handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	start := time.Now()
	tcp := false
	if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
		tcp = true
	}
	client := remoteAddr(w)
	var resp *dns.Msg
	if l := h.idx.Load().set.limiter; l != nil && !l.allow(client) {
		h.metrics.rateLimited()
		if !tcp && h.slip.Add(1)%2 == 1 {
			return // dropped
		}
		resp = new(dns.Msg)
		resp.SetReply(req)
		if tcp {
			resp.Rcode = dns.RcodeRefused
		} else {
			resp.Truncated = true
		}
	} else if out, e := h.wireAnswer(req, tcp); out != nil {
		if _, err := w.Write(out); err != nil {
			h.log.Debug("write response", "client", w.RemoteAddr(), "err", err)
		}
		if h.metrics != nil {
			h.metrics.observe(tcp, req.Question[0].Qtype, e.rcode, e.truncated, time.Since(start))
		}
		return
	} else {
		resp = h.Answer(req, tcp, client)
	}
	if err := w.WriteMsg(resp); err != nil {
		h.log.Debug("write response", "client", w.RemoteAddr(), "err", err)
	}
	if h.metrics != nil {
		var qtype uint16
		if len(req.Question) == 1 {
			qtype = req.Question[0].Qtype
		}
		h.metrics.observe(tcp, qtype, resp.Rcode, resp.Truncated, time.Since(start))
	}
}

// Answer builds the response to req as it would be sent over TCP or UDP
// to client.
func (h *Handler) Answer(req *dns.Msg, tcp bool, client netip.Addr) *dns.Msg {
	return h.answerFrom(h.idx.Load(), req, tcp, client, &rotation{off: h.next()})
}

// rotation is where the rotated records of an answer start (off, taken
// modulo their count), and, once the answer is built, how many distinct
// starts it has (period: the count of rotated records, 1 when none).
type rotation struct {
	off, period int
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
	m.RecursionDesired = req.RecursionDesired
	m.CheckingDisabled = req.CheckingDisabled
	m.Question = req.Question // as sent, case kept
	m.Compress = true

	reqOpt := req.IsEdns0()
	if reqOpt != nil {
		opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		opt.SetUDPSize(uint16(idx.set.UDPSize))
		opt.SetDo(reqOpt.Do())
		m.Extra = []dns.RR{opt}
		if reqOpt.Version() != 0 {
			m.Rcode = dns.RcodeBadVers
			return m
		}
	}
	switch {
	case req.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
		return m
	case len(req.Question) != 1:
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := req.Question[0]
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		m.Rcode = dns.RcodeRefused
		return m
	}
	m.RecursionAvailable = idx.set.Forwarder != nil

	name := strings.ToLower(q.Name)
	z, labels := idx.findZone(name)
	switch {
	case z != nil:
		m.Authoritative = true
		h.answerZone(m, idx, z, labels, q, rot)
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
	resp.RecursionAvailable = true
	fit(resp, maxSize(req.IsEdns0(), tcp, set.UDPSize))
	return resp
}

// answerZone fills m for a name inside zone z; labels are the name's labels
// below the apex, lowercase.
func (h *Handler) answerZone(m *dns.Msg, idx *index, z *zone, labels []string, q dns.Question, rot *rotation) {
	n := len(labels)
	switch {
	case n == 0:
		h.answerApex(m, z, q)
		return
	case n == 2 && labels[0] == "ns" && labels[1] == "dns" && idx.service("dns."+z.name) == nil:
		for _, rr := range z.glue {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
		h.finish(m, z, q, true)
		return
	}
	last := labels[n-1]
	if proto, ok := strings.CutPrefix(last, "_"); ok {
		// _<svc>._tcp, _<svc>._udp and _<svc>._<tag>, and their parents.
		// _<svc>._tls is the named port "tls" when the service has one.
		switch {
		case n == 1:
			st := idx.zoneStats(z)
			exists := (st.svcs > 0 && (proto == "tcp" || proto == "udp")) || st.tags[proto] > 0 ||
				(proto == "tls" && st.tls > 0)
			h.finish(m, z, q, exists)
		case n == 2 && strings.HasPrefix(labels[0], "_"):
			var set *rrsets
			if cs := idx.service(labels[0][1:] + "." + z.name); cs != nil {
				switch {
				case proto == "tcp" || proto == "udp":
					set = cs.all
				case proto == "tls" && cs.ports["tls"] != nil:
					set = cs.ports["tls"]
				default:
					set = cs.tags[proto]
				}
			}
			if set != nil && q.Qtype == dns.TypeSRV {
				h.answerSet(m, q, set, rot)
			}
			h.finish(m, z, q, set != nil)
		default:
			h.finish(m, z, q, false)
		}
		return
	}
	cs := idx.service(last + "." + z.name)
	switch {
	case cs == nil:
		h.finish(m, z, q, n == 1 && last == "dns") // parent of ns.dns
	case n == 1:
		h.answerSet(m, q, cs.all, rot)
		h.finish(m, z, q, true)
	case n == 2 && cs.insts[labels[0]] != nil:
		h.answerInstance(m, q, cs.insts[labels[0]])
		h.finish(m, z, q, true)
	case n == 2 && cs.tags[labels[0]] != nil:
		h.answerSet(m, q, cs.tags[labels[0]], rot)
		h.finish(m, z, q, true)
	case n <= 3 && cs.ports != nil && labels[n-2] == "_tcp":
		// _<name>._tcp.<svc>, and _tcp.<svc> as its empty non-terminal.
		var set *rrsets
		if n == 3 {
			if name, ok := strings.CutPrefix(labels[0], "_"); ok {
				set = cs.ports[name]
			}
		}
		if set != nil && q.Qtype == dns.TypeSRV {
			h.answerSet(m, q, set, rot)
		}
		h.finish(m, z, q, n == 2 || set != nil)
	default:
		h.finish(m, z, q, false)
	}
}

func (h *Handler) answerApex(m *dns.Msg, z *zone, q dns.Question) {
	switch q.Qtype {
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
	h.finish(m, z, q, true)
}

// answerSet adds the records of set for q's type (A, AAAA or SRV with its
// targets' addresses), rotated as rot says so that first picks and trimmed
// answers spread load.
func (h *Handler) answerSet(m *dns.Msg, q dns.Question, set *rrsets, rot *rotation) {
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

func (h *Handler) answerInstance(m *dns.Msg, q dns.Question, node *instNode) {
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
	}
}

// finish completes an in-zone answer: ANY gets the minimal RFC 8482 answer,
// an existing name without records of the type gets NODATA and a missing one
// NXDOMAIN, both with the SOA whose minimum is the negative TTL (RFC 2308).
func (h *Handler) finish(m *dns.Msg, z *zone, q dns.Question, exists bool) {
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

// remoteAddr is the client's address, without parsing a string.
func remoteAddr(w dns.ResponseWriter) netip.Addr {
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}
