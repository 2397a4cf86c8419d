// Package dnsserver answers DNS for the services in the cache: the zone's
// names from a compiled index of the latest snapshot, everything else
// forwarded or refused. It never calls a registry.
package dnsserver

import (
	"context"
	"encoding/binary"
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
	// ClientRateLimitClients bounds the clients the rate limiter tracks
	// (below 1: 1); past it, a new client takes the place of the one heard
	// from least recently.
	ClientRateLimitClients int
	// SpareLoopback exempts loopback clients from ClientRateLimit. A
	// packet from off the host cannot carry a loopback source address
	// (the kernel drops it), so such a client is no spoofed victim.
	SpareLoopback bool
	// Locality prefers instances near the host; the zero value none.
	Locality Locality
}

// Handler answers queries from the latest compiled index. Its ServeDNS is
// safe for concurrent use and never waits on a registry.
type Handler struct {
	metrics *Metrics
	log     *slog.Logger

	idx  atomic.Pointer[index] // the options in force travel with it
	wire atomic.Pointer[wireCache]
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
	metrics     *Metrics       // where answers count the bounds they hit; nil: nowhere
}

// newSettings derives the settings of opt; the rate limiter's evictions
// and size go to metrics.
func newSettings(opt Options, metrics *Metrics) *settings {
	opt.UDPSize = max(opt.UDPSize, dns.MinMsgSize)
	opt.Zone = dns.CanonicalName(opt.Zone)
	s := &settings{Options: opt, ttl: uint32(opt.TTL / time.Second), negTTL: uint32(opt.NegativeTTL / time.Second), metrics: metrics}
	if opt.ClientRateLimit > 0 {
		s.limiter = newClientLimiter(opt.ClientRateLimit, opt.ClientRateLimitClients, metrics)
		s.limiter.spareLoopback = opt.SpareLoopback
	}
	metrics.trackLimiter(s.limiter)
	return s
}

// NewHandler returns a handler with an empty table; call Update or Follow to
// give it data. A nil metrics records nothing.
func NewHandler(opt Options, metrics *Metrics, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	h := &Handler{metrics: metrics, log: log, snap: &cache.Snapshot{}, set: newSettings(opt, metrics)}
	// Empty, and not ready until the first snapshot from a table.
	idx := compile(nil, h.snap, h.set)
	idx.ready = false
	h.idx.Store(idx)
	h.wire.Store(newWireCache())
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
	h.set = newSettings(opt, h.metrics)
	idx := compile(h.idx.Load(), h.snap, h.set)
	idx.ready = idx.ready && h.idx.Load().ready
	h.idx.Store(idx)
	h.wire.Store(newWireCache()) // answers follow the options
}

// warmAfter is how long a snapshot must last before Follow builds the
// record sets of the services compiled for it: during a burst, snapshots
// come faster, and the sets built for one would be built again for the
// next, taking the CPU that compiles the changes behind them.
const warmAfter = 10 * time.Millisecond

// Follow keeps the handler on the latest snapshot of table until ctx ends.
// Once a snapshot has lasted warmAfter, and until a newer one comes, it
// builds the record sets of the services just compiled, which a query
// would otherwise build on first use.
func (h *Handler) Follow(ctx context.Context, table cache.Snapshots) {
	quiet := time.NewTimer(warmAfter)
	defer quiet.Stop()
	for {
		snap := table.Snapshot()
		h.Update(snap)
		quiet.Reset(warmAfter)
		select {
		case <-quiet.C:
			// A newer snapshot goes first: queries build what they need.
			h.idx.Load().warm(snap.Superseded())
		case <-snap.Superseded():
			continue
		case <-ctx.Done():
			return
		}
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

// ServeDNS implements dns.Handler: Respond, written to w, and counted.
func (h *Handler) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	start := time.Now()
	_, tcp := w.LocalAddr().(*net.TCPAddr)
	out, o := h.Respond(req, tcp, remoteAddr(w))
	if out != nil {
		if _, err := w.Write(out); err != nil {
			h.log.Debug("write response", "client", w.RemoteAddr(), "err", err)
		}
	}
	h.metrics.observe(tcp, o, time.Since(start))
}

// Outcome is what Respond did with a query, for the metrics.
type Outcome struct {
	Qtype     uint16
	Rcode     int
	Truncated bool
	// Dropped: no response (a client over its rate limit, or a response
	// that does not pack).
	Dropped bool
	// RateLimited: the client was over its rate limit; the response, if
	// any, says only that.
	RateLimited bool
	// Locality is what locality made of the answer.
	Locality localResult
}

// Respond answers req, received from client over TCP or UDP, and returns
// the packed response, or nil when the query is dropped. It is the whole
// answer path apart from the transport: a repeated question is answered
// from the wire cache, anything else from the compiled index (or the
// forwarder, for names outside the zones).
func (h *Handler) Respond(req *dns.Msg, tcp bool, client netip.Addr) ([]byte, Outcome) {
	return h.respond(req, tcp, client, h.allow(client))
}

// allow reports whether client is within its rate limit, taking one query
// of it.
func (h *Handler) allow(client netip.Addr) bool {
	l := h.idx.Load().set.limiter
	return l == nil || l.allow(client)
}

// respond is Respond for a client that allowed says is within its rate
// limit or not.
func (h *Handler) respond(req *dns.Msg, tcp bool, client netip.Addr, allowed bool) ([]byte, Outcome) {
	o := Outcome{}
	if len(req.Question) == 1 {
		o.Qtype = req.Question[0].Qtype
	}
	var resp *dns.Msg
	if !allowed {
		h.metrics.rateLimited()
		o.RateLimited = true
		if !tcp && h.slip.Add(1)%2 == 1 {
			o.Dropped = true
			return nil, o
		}
		resp = new(dns.Msg)
		resp.SetReply(req)
		if tcp {
			resp.Rcode = dns.RcodeRefused
		} else {
			resp.Truncated = true
		}
	} else if out, v := h.wireAnswer(req, tcp); out != nil {
		o.Rcode, o.Truncated, o.Locality = v.rcode, v.truncated, v.loc
		return out, o
	} else {
		rot := &rotation{off: h.next()}
		resp = h.answerFrom(h.idx.Load(), req, tcp, client, rot)
		o.Locality = rot.loc
	}
	o.Rcode, o.Truncated = resp.Rcode, resp.Truncated
	out, err := resp.Pack()
	if err != nil {
		h.log.Debug("pack response", "client", client, "err", err)
		o.Dropped = true
		return nil, o
	}
	return out, o
}

// answerFast answers the query in msg from the wire cache without
// unpacking it (see answerPacket), into out, and counts it with m, taking
// start as the time msg arrived. It returns the answer's length, or 0 when
// msg needs the full path. The caller has checked the client's rate limit.
func (h *Handler) answerFast(m *Metrics, msg, out []byte, tcp bool, start time.Time) int {
	n, v := h.answerPacket(msg, out, tcp)
	if n > 0 {
		o := Outcome{Qtype: binary.BigEndian.Uint16(msg[headerLen+wireNameLen(msg):]), Rcode: v.rcode, Truncated: v.truncated, Locality: v.loc}
		m.observe(tcp, o, time.Since(start))
	}
	return n
}

// remoteAddr is the client's address, without parsing a string.
func remoteAddr(w dns.ResponseWriter) netip.Addr { return addrOf(w.RemoteAddr()) }

// addrOf is the IP address of a, unmapped; the zero Addr if it has none.
func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// mayForward reports whether req may go to the forwarder, and so wait on
// an upstream: forwarding is on and its name is outside the zones.
func (h *Handler) mayForward(req *dns.Msg) bool {
	idx := h.idx.Load()
	if idx.set.Forwarder == nil || len(req.Question) != 1 {
		return false
	}
	z, _ := idx.findZone(strings.ToLower(req.Question[0].Name))
	return z == nil
}
