package forward

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no upstreams", Config{}},
		{"no port", Config{Upstreams: []string{"192.0.2.1"}}},
		{"name, not address", Config{Upstreams: []string{"dns.example:53"}}},
		{"port 0", Config{Upstreams: []string{"192.0.2.1:0"}}},
		{"negative cache", Config{Upstreams: []string{"192.0.2.1:53"}, CacheSize: -1}},
		{"negative timeout", Config{Upstreams: []string{"192.0.2.1:53"}, Timeout: -time.Second}},
		{"no timeout", Config{Upstreams: []string{"192.0.2.1:53"}}},
		{"invalid prefix", Config{Upstreams: []string{"192.0.2.1:53"}, Allow: []netip.Prefix{{}}}},
		{"no cap", Config{Upstreams: []string{"192.0.2.1:53"}, Timeout: time.Second}},
		{"negative cap", Config{Upstreams: []string{"192.0.2.1:53"}, Timeout: time.Second, MaxInFlight: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg, nil, nil); err == nil {
				t.Error("New succeeded")
			}
		})
	}
	if _, err := New(Config{Upstreams: []string{"192.0.2.1:53", "[2001:db8::1]:53"}, Timeout: time.Second, MaxInFlight: 1}, nil, nil); err != nil {
		t.Errorf("New with nil registry and logger: %v", err)
	}
}

func TestRefusesDisallowedClients(t *testing.T) {
	up := startUpstream(t, answer(300))
	f, _, _ := newTestForwarder(t, Config{
		Upstreams: []string{up.addr},
		Allow:     []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")},
	})
	tests := []struct {
		client string
		name   string
		allow  bool
	}{
		{"192.0.2.1", "example.com.", false},
		{"11.0.0.1", "example.com.", false},
		{"2001:db8::1", "example.com.", false},
		{"127.0.0.1", "localhost.", false}, // refused before special-use names
		{"10.1.2.3", "example.com.", true},
		{"::ffff:10.1.2.3", "example.com.", true},
		{"fd12::1", "example.com.", true},
	}
	refused := 0
	for _, tt := range tests {
		t.Run(tt.client, func(t *testing.T) {
			before := up.count()
			m, err := f.Forward(context.Background(), query(tt.name, dns.TypeA, false), netip.MustParseAddr(tt.client))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.allow {
				refused++
				if m.Rcode != dns.RcodeRefused || len(m.Answer) != 0 {
					t.Errorf("got rcode %s with %d answers, want REFUSED", dns.RcodeToString[m.Rcode], len(m.Answer))
				}
				if up.count() != before {
					t.Error("upstream queried for a refused client")
				}
				return
			}
			if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
				t.Errorf("got rcode %s with %d answers, want an answer", dns.RcodeToString[m.Rcode], len(m.Answer))
			}
		})
	}
	if got := testutil.ToFloat64(f.metrics.refused); got != float64(refused) {
		t.Errorf("refused_total = %v, want %d", got, refused)
	}

	f, _, _ = newTestForwarder(t, Config{Upstreams: []string{up.addr}, Allow: []netip.Prefix{}})
	m, err := forward(t, f, query("example.com.", dns.TypeA, false))
	if err != nil || m.Rcode != dns.RcodeRefused {
		t.Errorf("empty Allow: %v, %v; want REFUSED", m, err)
	}
}

func TestUpstreamQuery(t *testing.T) {
	up := startUpstream(t, answer(300))
	f, _, _ := newTestForwarder(t, Config{Upstreams: []string{up.addr}})
	for _, do := range []bool{false, true} {
		req := query("Example.COM.", dns.TypeA, do)
		req.Id = 4242
		req.CheckingDisabled = true
		req.IsEdns0().Option = append(req.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		m := mustForward(t, f, req)

		q := up.lastQuery()
		switch {
		case q.Id == req.Id:
			t.Error("upstream query reuses the client's ID")
		case !q.RecursionDesired:
			t.Error("upstream query without RD")
		case !q.CheckingDisabled:
			t.Error("upstream query lost CD")
		case len(q.Question) != 1 || q.Question[0] != req.Question[0]:
			t.Errorf("upstream question %v, want %v", q.Question, req.Question)
		case q.IsEdns0() == nil:
			t.Fatal("upstream query without EDNS0")
		case q.IsEdns0().UDPSize() != 1232:
			t.Errorf("upstream UDP size %d, want 1232", q.IsEdns0().UDPSize())
		case q.IsEdns0().Do() != do:
			t.Errorf("upstream DO %v, want %v", q.IsEdns0().Do(), do)
		case len(q.IsEdns0().Option) != 0:
			t.Errorf("client EDNS options forwarded: %v", q.IsEdns0().Option)
		}

		if m.Id != req.Id || !m.Response || len(m.Answer) != 1 || m.Authoritative {
			t.Errorf("reply: %v", m)
		}
		o := m.IsEdns0()
		if o == nil || o.Do() != do || len(o.Option) != 0 {
			t.Errorf("reply OPT %v, want DO=%v and no options", o, do)
		}
	}
	// A client without EDNS0 gets no OPT.
	req := new(dns.Msg).SetQuestion("plain.example.", dns.TypeA)
	if m := mustForward(t, f, req); m.IsEdns0() != nil {
		t.Errorf("OPT in the reply to a query without EDNS0: %v", m)
	}
	// Every query comes from a new socket.
	up.mu.Lock()
	ports := append([]int(nil), up.ports...)
	up.mu.Unlock()
	seen := map[int]bool{}
	for _, p := range ports {
		seen[p] = true
	}
	if len(seen) < len(ports)-1 {
		t.Errorf("source ports %v, want a new one per query", ports)
	}
}

func TestBadRepliesFailOver(t *testing.T) {
	tests := []struct {
		name  string
		reply replyFunc
	}{
		{"wrong ID", func(r *dns.Msg, tcp bool) *dns.Msg {
			m := answer(300)(r, tcp)
			m.Id = r.Id + 1
			return m
		}},
		{"wrong name", func(r *dns.Msg, tcp bool) *dns.Msg {
			m := answer(300)(r, tcp)
			m.Question[0].Name = "evil.example."
			return m
		}},
		{"wrong type", func(r *dns.Msg, tcp bool) *dns.Msg {
			m := answer(300)(r, tcp)
			m.Question[0].Qtype = dns.TypeAAAA
			return m
		}},
		{"wrong class", func(r *dns.Msg, tcp bool) *dns.Msg {
			m := answer(300)(r, tcp)
			m.Question[0].Qclass = dns.ClassCHAOS
			return m
		}},
		{"no question", func(r *dns.Msg, tcp bool) *dns.Msg {
			m := answer(300)(r, tcp)
			m.Question = nil
			return m
		}},
		{"SERVFAIL", rcodeReply(dns.RcodeServerFailure)},
		{"REFUSED", rcodeReply(dns.RcodeRefused)},
		{"no reply", func(*dns.Msg, bool) *dns.Msg { return nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // the silent upstreams' timeouts overlap
			bad := startUpstream(t, tt.reply)
			good := startUpstream(t, answer(300))
			f, _, _ := newTestForwarder(t, Config{Upstreams: []string{bad.addr, good.addr}, Timeout: silentUpstreamTimeout})
			m := mustForward(t, f, query("example.com.", dns.TypeA, false))
			if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || m.Answer[0].Header().Name != "example.com." {
				t.Errorf("reply %v, want the good upstream's answer", m)
			}
			if bad.count() != 1 || good.count() != 1 {
				t.Errorf("queries: bad %d, good %d; want 1 each", bad.count(), good.count())
			}
			rcode := "error"
			if tt.name == "SERVFAIL" || tt.name == "REFUSED" {
				rcode = tt.name
			}
			if got := testutil.ToFloat64(f.metrics.requests.WithLabelValues(bad.addr, rcode)); got != 1 {
				t.Errorf("requests_total{upstream=bad,rcode=%s} = %v, want 1", rcode, got)
			}
			if got := testutil.ToFloat64(f.metrics.requests.WithLabelValues(good.addr, "NOERROR")); got != 1 {
				t.Errorf("requests_total{upstream=good,rcode=NOERROR} = %v, want 1", got)
			}

			// Alone, the bad upstream is an error, not an answer.
			f, _, _ = newTestForwarder(t, Config{Upstreams: []string{bad.addr}, Timeout: silentUpstreamTimeout})
			if m, err := forward(t, f, query("example.com.", dns.TypeA, false)); err == nil {
				t.Errorf("got %v, want an error", m)
			}
		})
	}
}

func TestTruncatedRetriesOverTCP(t *testing.T) {
	up := startUpstream(t, func(r *dns.Msg, tcp bool) *dns.Msg {
		if !tcp {
			m := new(dns.Msg).SetReply(r)
			m.Truncated = true
			return m
		}
		ttl := make([]uint32, 100)
		for i := range ttl {
			ttl[i] = 300
		}
		return answer(ttl...)(r, tcp)
	})
	f, _, _ := newTestForwarder(t, Config{Upstreams: []string{up.addr}, CacheSize: 10})
	m := mustForward(t, f, query("big.example.", dns.TypeA, false))
	if m.Truncated || len(m.Answer) != 100 {
		t.Errorf("reply TC=%v with %d answers, want the full answer over TCP", m.Truncated, len(m.Answer))
	}
	if up.udp.Load() != 1 || up.tcp.Load() != 1 {
		t.Errorf("queries: %d over UDP, %d over TCP; want 1 each", up.udp.Load(), up.tcp.Load())
	}
	// The TCP answer is cached.
	mustForward(t, f, query("big.example.", dns.TypeA, false))
	if up.count() != 2 {
		t.Errorf("%d queries, want the second answer from the cache", up.count())
	}
}

func TestFailoverOrderAndHealth(t *testing.T) {
	a := startUpstream(t, rcodeReply(dns.RcodeServerFailure))
	b := startUpstream(t, answer(300))
	c := startUpstream(t, answer(300))
	f, _, clock := newTestForwarder(t, Config{Upstreams: []string{a.addr, b.addr, c.addr}})
	healthy := func(u *fakeUpstream) float64 {
		return testutil.ToFloat64(f.metrics.healthy.WithLabelValues(u.addr))
	}
	step := func(wantA, wantB int) {
		t.Helper()
		m := mustForward(t, f, query("example.com.", dns.TypeA, false))
		if len(m.Answer) != 1 {
			t.Fatalf("reply %v", m)
		}
		if a.count() != wantA || b.count() != wantB || c.count() != 0 {
			t.Fatalf("queries a=%d b=%d c=%d, want %d %d 0", a.count(), b.count(), c.count(), wantA, wantB)
		}
	}
	// Three failures in a row: a is tried first every time, then skipped.
	step(1, 1)
	step(2, 2)
	if healthy(a) != 1 {
		t.Error("a unhealthy after 2 failures")
	}
	step(3, 3)
	if healthy(a) != 0 || healthy(b) != 1 {
		t.Errorf("healthy a=%v b=%v, want 0 1", healthy(a), healthy(b))
	}
	step(3, 4)
	// Retried after 1 s; another failure doubles the wait to 2 s.
	clock.advance(time.Second)
	step(4, 5)
	step(4, 6)
	clock.advance(time.Second)
	step(4, 7)
	clock.advance(time.Second)
	step(5, 8)
	// The wait stops doubling at 30 s.
	for _, wait := range []time.Duration{4, 8, 16, 30, 30} {
		clock.advance((wait - 1) * time.Second)
		step(a.count(), b.count()+1)
		clock.advance(time.Second)
		step(a.count()+1, b.count()+1)
	}
	// A success makes a healthy and first again.
	a.setReply(answer(300))
	clock.advance(30 * time.Second)
	step(a.count()+1, b.count())
	step(a.count()+1, b.count())
	if healthy(a) != 1 {
		t.Error("a still unhealthy after a success")
	}
}

func TestAllUnhealthyTriedAnyway(t *testing.T) {
	a := startUpstream(t, rcodeReply(dns.RcodeServerFailure))
	b := startUpstream(t, rcodeReply(dns.RcodeRefused))
	f, _, _ := newTestForwarder(t, Config{Upstreams: []string{a.addr, b.addr}})
	for i := 1; i <= 5; i++ {
		m, err := forward(t, f, query("example.com.", dns.TypeA, false))
		if err == nil {
			t.Fatalf("got %v, want an error (SERVFAIL), never REFUSED", m)
		}
		if a.count() != i || b.count() != i {
			t.Fatalf("query %d: a=%d b=%d, want both tried", i, a.count(), b.count())
		}
	}
	// Once one recovers it is used.
	b.setReply(answer(300))
	if m := mustForward(t, f, query("example.com.", dns.TypeA, false)); len(m.Answer) != 1 {
		t.Errorf("reply %v", m)
	}
}

// TestUnhealthyWarnedOnce: every query to a dead upstream fails, and
// clients choose how many there are, so the warning comes once per outage
// and the failures after it are logged at debug level.
func TestUnhealthyWarnedOnce(t *testing.T) {
	up := startUpstream(t, rcodeReply(dns.RcodeServerFailure))
	f, _, clock := newTestForwarder(t, Config{Upstreams: []string{up.addr}})
	var logs bytes.Buffer
	f.log = slog.New(slog.NewTextHandler(&logs, nil))
	fail := func(n int) {
		t.Helper()
		for range n {
			if m, err := forward(t, f, query("example.com.", dns.TypeA, false)); err == nil {
				t.Fatalf("got %v, want an error", m)
			}
			clock.advance(time.Minute) // past any backoff: every query is tried
		}
	}
	for _, tc := range []struct {
		name            string
		failures        int
		recover         bool
		warned, healthy int
	}{
		{"an outage", 50, false, 1, 0},
		{"recovered", 0, true, 1, 1},
		{"a second outage", 50, false, 2, 1},
	} {
		fail(tc.failures)
		if tc.recover {
			up.setReply(answer(300))
			mustForward(t, f, query("example.org.", dns.TypeA, false))
			up.setReply(rcodeReply(dns.RcodeServerFailure))
		}
		warned, healthy := strings.Count(logs.String(), "upstream unhealthy"), strings.Count(logs.String(), "upstream healthy again")
		if warned != tc.warned || healthy != tc.healthy {
			t.Errorf("after %s: %d warnings and %d recoveries logged, want %d and %d:\n%s", tc.name, warned, healthy, tc.warned, tc.healthy, logs.String())
		}
	}
}

func TestClosedPortsFailFast(t *testing.T) {
	f, _, _ := newTestForwarder(t, Config{
		Upstreams: []string{closedPort(t), closedPort(t), closedPort(t)},
		Timeout:   time.Minute,
	})
	for range 5 { // also once all are unhealthy
		start := time.Now()
		m, err := forward(t, f, query("example.com.", dns.TypeA, false))
		if err == nil {
			t.Fatalf("got %v, want an error", m)
		}
		// A closed port answers at once (ICMP), long before the timeout.
		if d := time.Since(start); d > patience {
			t.Fatalf("Forward took %v with closed ports: it waited for the %v timeout", d, time.Minute)
		}
	}
}

func TestContextDone(t *testing.T) {
	release := make(chan struct{})
	slow := startUpstream(t, func(r *dns.Msg, tcp bool) *dns.Msg {
		<-release
		return nil
	})
	defer close(release)
	other := startUpstream(t, answer(300))
	f, _, _ := newTestForwarder(t, Config{Upstreams: []string{slow.addr, other.addr}, Timeout: time.Minute})
	healthy := func() float64 { return testutil.ToFloat64(f.metrics.healthy.WithLabelValues(slow.addr)) }
	call := func(ctx context.Context, want error) {
		t.Helper()
		start := time.Now()
		m, err := f.Forward(ctx, query("example.com.", dns.TypeA, false), localClient)
		if !errors.Is(err, want) {
			t.Fatalf("got %v, %v; want %v", m, err, want)
		}
		if d := time.Since(start); d > patience {
			t.Fatalf("Forward took %v after its context ended: it waited for the %v upstream timeout", d, time.Minute)
		}
		if other.count() != 0 {
			t.Fatal("next upstream tried after the context ended")
		}
		time.Sleep(20 * time.Millisecond) // let the flight end, so the next call starts its own
	}

	// Cancellation says nothing about the upstream.
	for range 4 {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		call(ctx, context.Canceled)
	}
	if healthy() != 1 {
		t.Error("the caller's cancellation made an upstream unhealthy")
	}

	// No answer within the caller's deadline is a failure.
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		call(ctx, context.DeadlineExceeded)
		cancel()
	}
	if healthy() != 0 {
		t.Error("an upstream silent for three deadlines still healthy")
	}
	if m := mustForward(t, f, query("example.com.", dns.TypeA, false)); len(m.Answer) != 1 || other.count() != 1 {
		t.Errorf("reply %v, want the answer of the next upstream", m)
	}
}

func TestSingleflight(t *testing.T) {
	release := make(chan struct{})
	up := startUpstream(t, func(r *dns.Msg, tcp bool) *dns.Msg {
		<-release
		return answer(300)(r, tcp)
	})
	f, _, _ := newTestForwarder(t, Config{Upstreams: []string{up.addr}, Timeout: 5 * time.Second})
	const n = 20
	var wg sync.WaitGroup
	replies := make([]*dns.Msg, n)
	for i := range n {
		wg.Go(func() {
			req := query("example.com.", dns.TypeA, false)
			req.Id = uint16(i)
			m, err := forward(t, f, req)
			if err != nil {
				t.Error(err)
				return
			}
			replies[i] = m
		})
	}
	for testutil.ToFloat64(f.metrics.cacheMisses) < n {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // from the miss to joining the flight
	close(release)
	wg.Wait()
	if up.count() != 1 {
		t.Errorf("%d upstream queries for %d identical concurrent ones, want 1", up.count(), n)
	}
	for i, m := range replies {
		if m == nil || m.Id != uint16(i) || len(m.Answer) != 1 {
			t.Fatalf("reply %d: %v", i, m)
		}
		for j := range i {
			if m.Answer[0] == replies[j].Answer[0] {
				t.Fatalf("replies %d and %d share records", i, j)
			}
		}
	}
}

// TestMaxInFlight: with MaxInFlight queries waiting on a slow upstream,
// any other query that needs the upstream, an identical one included,
// fails at once with ErrOverload or, when the cache holds a stale answer,
// gets that; once the upstream answers, the slots are free again.
func TestMaxInFlight(t *testing.T) {
	const maxInFlight = 2
	release := make(chan struct{})
	up := startUpstream(t, func(r *dns.Msg, tcp bool) *dns.Msg {
		if r.Question[0].Name != "stale.example." {
			<-release
		}
		return answer(1)(r, tcp)
	})
	f, _, clock := newTestForwarder(t, Config{Upstreams: []string{up.addr}, CacheSize: 10, MaxStale: time.Hour, MaxInFlight: maxInFlight})
	mustForward(t, f, query("stale.example.", dns.TypeA, false))
	clock.advance(2 * time.Second)

	var wg sync.WaitGroup
	for _, name := range []string{"a.example.", "b.example."} {
		wg.Go(func() {
			if m, err := forward(t, f, query(name, dns.TypeA, false)); err != nil || len(m.Answer) != 1 {
				t.Errorf("%s in flight: %v %v", name, m, err)
			}
		})
	}
	for testutil.ToFloat64(f.metrics.inFlight) < maxInFlight {
		time.Sleep(time.Millisecond)
	}
	for _, tc := range []struct {
		name     string
		wantTTLs []uint32 // nil: ErrOverload
	}{
		{"c.example.", nil},
		{"a.example.", nil}, // the same as one in flight
		{"stale.example.", []uint32{staleTTL}},
	} {
		m, err := forward(t, f, query(tc.name, dns.TypeA, false))
		switch {
		case tc.wantTTLs == nil && !errors.Is(err, ErrOverload):
			t.Errorf("%s over the cap: %v %v, want ErrOverload", tc.name, m, err)
		case tc.wantTTLs != nil && (err != nil || !slices.Equal(ttls(m.Answer), tc.wantTTLs)):
			t.Errorf("%s over the cap: %v %v, want a stale answer", tc.name, m, err)
		}
	}
	if got := testutil.ToFloat64(f.metrics.overload); got != 3 {
		t.Errorf("overload_total %v, want 3", got)
	}
	if got := testutil.ToFloat64(f.metrics.stale); got != 1 {
		t.Errorf("stale_answers_total %v, want 1", got)
	}
	close(release)
	wg.Wait()
	if got := testutil.ToFloat64(f.metrics.inFlight); got != 0 {
		t.Errorf("in_flight_queries %v after the upstream answered, want 0", got)
	}
	if m, err := forward(t, f, query("c.example.", dns.TypeA, false)); err != nil || len(m.Answer) != 1 {
		t.Errorf("after the upstream answered: %v %v", m, err)
	}
}

func TestMetricsLabels(t *testing.T) {
	up := startUpstream(t, answer(300))
	f, reg, _ := newTestForwarder(t, Config{Upstreams: []string{up.addr}, CacheSize: 10})
	mustForward(t, f, query("example.com.", dns.TypeA, false))
	mustForward(t, f, query("example.com.", dns.TypeA, false))
	mustForward(t, f, query("localhost.", dns.TypeA, false))
	if _, err := f.Forward(context.Background(), query("example.com.", dns.TypeA, false), netip.MustParseAddr("192.0.2.1")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"requests_total", testutil.ToFloat64(f.metrics.requests.WithLabelValues(up.addr, "NOERROR")), 1},
		{"cache_hits_total", testutil.ToFloat64(f.metrics.cacheHits), 1},
		{"cache_misses_total", testutil.ToFloat64(f.metrics.cacheMisses), 1},
		{"local_answers_total", testutil.ToFloat64(f.metrics.local), 1},
		{"refused_total", testutil.ToFloat64(f.metrics.refused), 1},
		{"stale_answers_total", testutil.ToFloat64(f.metrics.stale), 0},
		{"upstream_healthy", testutil.ToFloat64(f.metrics.healthy.WithLabelValues(up.addr)), 1},
		{"in_flight_queries", testutil.ToFloat64(f.metrics.inFlight), 0},
		{"overload_total", testutil.ToFloat64(f.metrics.overload), 0},
		{"cache_too_large_total", testutil.ToFloat64(f.metrics.cacheTooLarge), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"discodns_forward_requests_total":            true,
		"discodns_forward_upstream_duration_seconds": true,
		"discodns_forward_cache_hits_total":          true,
		"discodns_forward_cache_misses_total":        true,
		"discodns_forward_cache_too_large_total":     true,
		"discodns_forward_stale_answers_total":       true,
		"discodns_forward_refused_total":             true,
		"discodns_forward_local_answers_total":       true,
		"discodns_forward_upstream_healthy":          true,
		"discodns_forward_in_flight_queries":         true,
		"discodns_forward_overload_total":            true,
	}
	for _, mf := range families {
		if !want[mf.GetName()] {
			t.Errorf("unexpected metric %s", mf.GetName())
		}
		delete(want, mf.GetName())
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "upstream" && l.GetName() != "rcode" {
					t.Errorf("%s has label %s", mf.GetName(), l.GetName())
				}
			}
			if h := m.GetHistogram(); h != nil && h.GetSampleCount() != 1 {
				t.Errorf("%s count %d, want 1", mf.GetName(), h.GetSampleCount())
			}
		}
	}
	for name := range want {
		t.Errorf("metric %s not registered", name)
	}
	// A second Forwarder (a reload) counts on in the same collectors.
	again, err := New(Config{Upstreams: []string{up.addr}, Timeout: time.Second, MaxInFlight: 1}, reg, nil)
	if err != nil {
		t.Fatalf("a second Forwarder on the same registry: %v", err)
	}
	if again.metrics.refused != f.metrics.refused {
		t.Error("the second Forwarder has collectors of its own")
	}
}

func BenchmarkCacheHit(b *testing.B) {
	up := startUpstream(b, answer(300, 300))
	f, _, _ := newTestForwarder(b, Config{Upstreams: []string{up.addr}, CacheSize: 1000})
	req := query("www.example.com.", dns.TypeA, false)
	mustForward(b, f, req)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Forward(ctx, req, localClient); err != nil {
			b.Fatal(err)
		}
	}
	if up.count() != 1 {
		b.Fatalf("%d upstream queries, want 1", up.count())
	}
}
