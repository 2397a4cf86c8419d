// Package forward resolves names outside discodns's zones by forwarding
// them to upstream recursive servers, so that discodns can be a machine's
// only resolver. It refuses clients outside the allowed networks, answers
// special-use names itself, fails over between upstreams by health, and
// caches responses, serving them stale when every upstream fails.
package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"
)

// Config configures a Forwarder.
type Config struct {
	// Upstreams are "IP:port" addresses, in order of preference; at least
	// one.
	Upstreams []string
	// Allow lists the client networks allowed to use forwarding. Clients
	// outside them are refused; an empty list refuses everyone.
	Allow []netip.Prefix
	// Timeout bounds one attempt at one upstream; > 0.
	Timeout time.Duration
	// CacheSize is the number of cached responses; 0 disables the cache.
	// Responses that would take more than 16 KiB of memory are not cached.
	CacheSize int
	// MaxStale is how long past expiry a cached answer may still be served
	// when every upstream fails or the query is over MaxInFlight (RFC
	// 8767); 0 (or less) never serves stale answers.
	MaxStale time.Duration
	// MaxInFlight caps the queries waiting on upstream servers at once,
	// those that share another's exchange included, and with them the
	// goroutines and sockets forwarding holds; > 0. A query over the cap
	// is answered stale when it can be, or else fails at once with
	// ErrOverload.
	MaxInFlight int
}

// ErrOverload is the error of a query that found MaxInFlight queries
// already waiting on upstream servers and no stale answer to serve.
var ErrOverload = errors.New("too many queries waiting on upstream servers")

// Forwarder answers queries from upstream servers. Its Forward method is
// safe for concurrent use.
type Forwarder struct {
	upstreams []*upstream
	allow     []netip.Prefix
	timeout   time.Duration
	cache     *cache // nil when disabled
	group     singleflight.Group
	slots     chan struct{} // one per query waiting on upstreams
	metrics   *metrics
	log       *slog.Logger
	now       func() time.Time // the clock of the cache and health; tests replace it
}

// New returns a Forwarder for cfg. It registers its metrics with reg
// unless reg is nil, and logs to log, or slog.Default() when nil.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Forwarder, error) {
	if len(cfg.Upstreams) == 0 {
		return nil, errors.New("forward: no upstream servers")
	}
	if cfg.CacheSize < 0 {
		return nil, fmt.Errorf("forward: negative cache size %d", cfg.CacheSize)
	}
	if cfg.Timeout <= 0 {
		return nil, fmt.Errorf("forward: timeout %v, want more than 0", cfg.Timeout)
	}
	if cfg.MaxInFlight <= 0 {
		return nil, fmt.Errorf("forward: %d queries in flight at most, want more than 0", cfg.MaxInFlight)
	}
	if log == nil {
		log = slog.Default()
	}
	f := &Forwarder{
		timeout: cfg.Timeout,
		slots:   make(chan struct{}, cfg.MaxInFlight),
		log:     log,
		now:     time.Now,
	}
	for _, p := range cfg.Allow {
		if !p.IsValid() {
			return nil, fmt.Errorf("forward: invalid allowed network %v", p)
		}
		f.allow = append(f.allow, p.Masked())
	}
	addrs := make([]string, 0, len(cfg.Upstreams))
	for _, s := range cfg.Upstreams {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return nil, fmt.Errorf("forward: upstream %q: %w", s, err)
		}
		if ap.Port() == 0 {
			return nil, fmt.Errorf("forward: upstream %q: port 0", s)
		}
		addrs = append(addrs, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String())
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	f.metrics = m
	for _, a := range addrs {
		f.upstreams = append(f.upstreams, newUpstream(a, m))
	}
	if cfg.CacheSize > 0 {
		if f.cache, err = newCache(cfg.CacheSize, cfg.MaxStale, m.cacheTooLarge); err != nil {
			return nil, fmt.Errorf("forward: cache: %w", err)
		}
	}
	return f, nil
}

// Forward answers req, which has one question, for a client at addr. It
// refuses clients outside the allowed networks, answers special-use names
// itself, and otherwise answers from the cache or from the first upstream
// server that answers. The caller owns the reply; it sets the reply's ID
// and question. When every upstream fails, or ctx ends first, or
// MaxInFlight queries are already waiting on upstreams, Forward answers
// from an expired cache entry at most MaxStale past its expiry (RFC 8767),
// or else returns an error (ErrOverload over the cap), which the caller
// should turn into SERVFAIL. Concurrent identical queries share one
// upstream exchange, run under the first caller's ctx.
func (f *Forwarder) Forward(ctx context.Context, req *dns.Msg, client netip.Addr) (*dns.Msg, error) {
	if len(req.Question) != 1 {
		m := reply(req)
		m.Rcode = dns.RcodeFormatError
		return m, nil
	}
	if !f.allowed(client) {
		f.metrics.refused.Inc()
		m := reply(req)
		m.Rcode = dns.RcodeRefused
		return m, nil
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if zone, k := specialZone(name); k != notSpecial {
		f.metrics.local.Inc()
		m := reply(req)
		answerSpecial(m, q, name, zone, k)
		return m, nil
	}

	var do bool
	opt := req.IsEdns0()
	if opt != nil {
		do = opt.Do()
	}
	k := cacheKey{name: name, qtype: q.Qtype, qclass: q.Qclass, do: do, cd: req.CheckingDisabled}
	if m := f.cache.fresh(k, f.now()); m != nil {
		f.metrics.cacheHits.Inc()
		return finish(req, opt, m), nil
	}
	f.metrics.cacheMisses.Inc()

	m, err := f.ask(ctx, k, q)
	if err == nil {
		return finish(req, opt, m), nil
	}
	if m := f.cache.stale(k, f.now()); m != nil {
		f.metrics.stale.Inc()
		f.log.Debug("serving stale answer", "name", q.Name, "type", dns.Type(q.Qtype), "err", err)
		return finish(req, opt, m), nil
	}
	return nil, err
}

// ask returns a copy of the upstreams' reply to q, whose key is k, within
// the cap on queries waiting on upstreams: over it, it fails at once.
func (f *Forwarder) ask(ctx context.Context, k cacheKey, q dns.Question) (*dns.Msg, error) {
	select {
	case f.slots <- struct{}{}:
	default:
		f.metrics.overload.Inc()
		return nil, fmt.Errorf("forward %s: %w", q.Name, ErrOverload)
	}
	f.metrics.inFlight.Inc()
	defer func() {
		<-f.slots
		f.metrics.inFlight.Dec()
	}()
	ch := f.group.DoChan(k.String(), func() (any, error) { return f.resolve(ctx, k, q) })
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return clone(res.Val.(*dns.Msg), 0, 0), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("forward %s: %w", q.Name, context.Cause(ctx))
	}
}

// allowed reports whether client may use forwarding.
func (f *Forwarder) allowed(client netip.Addr) bool {
	client = client.Unmap()
	for _, p := range f.allow {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// resolve asks the upstreams in order for q, skipping unhealthy ones
// unless all are, and caches the first good reply under k. The reply is
// shared between concurrent callers and must not be modified. An upstream
// that does not answer before ctx's deadline has failed; one interrupted
// by the cancellation of ctx has not.
func (f *Forwarder) resolve(ctx context.Context, k cacheKey, q dns.Question) (*dns.Msg, error) {
	var errs []error
	tried := false
	for _, all := range []bool{false, true} {
		if all && tried {
			break
		}
		for _, u := range f.upstreams {
			if !all && !u.available(f.now()) {
				continue
			}
			tried = true
			if err := ctxDone(ctx); err != nil {
				errs = append(errs, err)
				return nil, fmt.Errorf("forward %s: %w", q.Name, errors.Join(errs...))
			}
			r, err := f.exchange(ctx, u, q, k.do, k.cd)
			if err != nil {
				if errors.Is(ctx.Err(), context.Canceled) {
					return nil, fmt.Errorf("forward %s: %w", q.Name, context.Cause(ctx))
				}
				errs = append(errs, err)
				// Warn once per outage: every query to a dead upstream
				// fails, and clients choose how many there are.
				if d, down := u.failed(f.now()); down {
					f.log.Warn("upstream unhealthy", "upstream", u.addr, "retry_in", d, "err", err)
				} else {
					f.log.Debug("upstream failed", "upstream", u.addr, "retry_in", d, "err", err)
				}
				continue
			}
			if u.succeeded() {
				f.log.Info("upstream healthy again", "upstream", u.addr)
			}
			f.cache.add(k, sanitize(r, k.do), f.now())
			return r, nil
		}
	}
	return nil, fmt.Errorf("forward %s: every upstream failed: %w", q.Name, errors.Join(errs...))
}

// ctxDone returns ctx's error, or context.DeadlineExceeded once its
// deadline has passed even if its timer has not fired yet.
func ctxDone(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// sanitize prepares an upstream reply for clients: it drops the upstream's
// OPT record (each client gets its own), clears AA, which a forwarder
// never sets, and AD unless the query had DO set.
func sanitize(r *dns.Msg, do bool) *dns.Msg {
	extra := r.Extra[:0]
	for _, rr := range r.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	clear(r.Extra[len(extra):])
	r.Extra = extra
	r.Authoritative = false
	r.AuthenticatedData = r.AuthenticatedData && do
	return r
}

// reply returns an empty reply to req, with an OPT record if req has one.
func reply(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	if opt := req.IsEdns0(); opt != nil {
		m.Extra = []dns.RR{clientOPT(opt)}
	}
	return m
}

// finish turns m, a copy of an upstream reply, into the reply to req,
// whose OPT record is opt or nil.
func finish(req *dns.Msg, opt *dns.OPT, m *dns.Msg) *dns.Msg {
	m.Id = req.Id
	m.Response = true
	m.Opcode = req.Opcode
	m.RecursionDesired = req.RecursionDesired
	m.CheckingDisabled = req.CheckingDisabled
	m.Question = req.Question
	if opt != nil {
		m.Extra = append(m.Extra, clientOPT(opt))
	}
	return m
}

// clientOPT returns the OPT record of a reply to a query with opt.
func clientOPT(opt *dns.OPT) *dns.OPT {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(udpSize)
	o.SetDo(opt.Do())
	return o
}
