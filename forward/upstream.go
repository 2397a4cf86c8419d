package forward

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	// udpSize is the EDNS0 buffer size advertised upstream and to clients
	// (DNS flag day 2020).
	udpSize = 1232
	// maxFails consecutive failures mark an upstream unhealthy.
	maxFails = 3
	// minBackoff and maxBackoff bound how long an unhealthy upstream is
	// skipped before it is tried again.
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

// errBadReply is a reply that does not answer the query.
var errBadReply = errors.New("reply does not match the query")

// upstream is one upstream server and its health.
type upstream struct {
	addr     string
	requests *prometheus.CounterVec // curried with upstream
	duration prometheus.Observer
	healthy  prometheus.Gauge

	mu      sync.Mutex
	fails   int           // consecutive failures
	backoff time.Duration // current skip period once unhealthy
	retry   time.Time     // skipped until then once unhealthy
}

func newUpstream(addr string, m *metrics) *upstream {
	u := &upstream{
		addr:     addr,
		requests: m.requests.MustCurryWith(prometheus.Labels{"upstream": addr}),
		duration: m.duration.WithLabelValues(addr),
		healthy:  m.healthy.WithLabelValues(addr),
	}
	u.healthy.Set(1)
	return u
}

// available reports whether u may be tried at now: it is healthy or its
// retry time has come.
func (u *upstream) available(now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.fails < maxFails || !now.Before(u.retry)
}

// succeeded marks u healthy. It reports whether u was unhealthy.
func (u *upstream) succeeded() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	was := u.fails >= maxFails
	u.fails, u.backoff, u.retry = 0, 0, time.Time{}
	u.healthy.Set(1)
	return was
}

// failed counts a failure at now. After maxFails in a row u is skipped
// for a backoff that doubles with every further failure, up to
// maxBackoff. It returns the backoff, or 0 while u is still healthy, and
// whether this failure made u unhealthy: true once per outage, however
// many queries fail in it.
func (u *upstream) failed(now time.Time) (time.Duration, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.fails++
	if u.fails < maxFails {
		return 0, false
	}
	u.backoff = min(max(2*u.backoff, minBackoff), maxBackoff)
	u.retry = now.Add(u.backoff)
	u.healthy.Set(0)
	return u.backoff, u.fails == maxFails
}

// exchange sends q to u over UDP, and again over TCP if the reply is
// truncated, and checks the reply. A SERVFAIL or REFUSED reply is an error.
func (f *Forwarder) exchange(ctx context.Context, u *upstream, q dns.Question, do, cd bool) (*dns.Msg, error) {
	m := &dns.Msg{Question: []dns.Question{q}}
	m.Id = dns.Id()
	m.RecursionDesired = true
	m.CheckingDisabled = cd
	m.SetEdns0(udpSize, do)
	r, err := f.query(ctx, u, "udp", m)
	if err == nil && r.Truncated {
		m.Id = dns.Id()
		r, err = f.query(ctx, u, "tcp", m)
	}
	if err != nil {
		return nil, err
	}
	if r.Rcode == dns.RcodeServerFailure || r.Rcode == dns.RcodeRefused {
		return nil, fmt.Errorf("forward %s to %s: %s", q.Name, u.addr, dns.RcodeToString[r.Rcode])
	}
	return r, nil
}

// query makes one attempt at u over network, bounded by the timeout and
// ctx, and checks that the reply answers m.
func (f *Forwarder) query(ctx context.Context, u *upstream, network string, m *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	c := dns.Client{Net: network, Timeout: f.timeout}
	start := time.Now()
	r, err := exchangeContext(ctx, &c, m, u.addr)
	u.duration.Observe(time.Since(start).Seconds())
	if err == nil {
		err = checkReply(m, r)
	}
	if err != nil {
		u.requests.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("forward %s to %s over %s: %w", m.Question[0].Name, u.addr, network, err)
	}
	rcode, ok := dns.RcodeToString[r.Rcode]
	if !ok {
		rcode = "other"
	}
	u.requests.WithLabelValues(rcode).Inc()
	return r, nil
}

// exchangeContext is c.ExchangeContext, except that it gives up as soon
// as ctx is done rather than only at its deadline. The connection is new,
// so UDP queries come from a random source port.
func exchangeContext(ctx context.Context, c *dns.Client, m *dns.Msg, addr string) (*dns.Msg, error) {
	conn, err := c.DialContext(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r, _, err := c.ExchangeWithConnContext(ctx, m, conn)
	if err != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return r, err
}

// checkReply reports whether r answers the query m: a response with the
// same ID and the same question. The client has already skipped UDP
// replies with another ID.
func checkReply(m, r *dns.Msg) error {
	switch {
	case r.Id != m.Id:
		return fmt.Errorf("%w: ID %d, want %d", errBadReply, r.Id, m.Id)
	case !r.Response || r.Opcode != m.Opcode:
		return fmt.Errorf("%w: not a response", errBadReply)
	case len(r.Question) != 1:
		return fmt.Errorf("%w: %d questions", errBadReply, len(r.Question))
	}
	q, want := r.Question[0], m.Question[0]
	if !strings.EqualFold(q.Name, want.Name) || q.Qtype != want.Qtype || q.Qclass != want.Qclass {
		return fmt.Errorf("%w: question %s", errBadReply, q.String())
	}
	return nil
}
