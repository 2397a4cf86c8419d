package dnsserver

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestClientLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newClientLimiter(10, 100, nil)
	l.now = func() time.Time { return now }
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	allowed := 0
	for range 25 {
		if l.allow(a) {
			allowed++
		}
	}
	if allowed != 10 {
		t.Errorf("burst: %d allowed, want 10", allowed)
	}
	if !l.allow(b) {
		t.Error("another client was limited")
	}
	now = now.Add(500 * time.Millisecond) // 5 tokens back
	allowed = 0
	for range 10 {
		if l.allow(a) {
			allowed++
		}
	}
	if allowed != 5 {
		t.Errorf("after 0.5 s: %d allowed, want 5", allowed)
	}
	// One IPv6 /64 is one client.
	v6a, v6b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::ffff")
	for range 10 {
		l.allow(v6a)
	}
	if l.allow(v6b) {
		t.Error("a second address of the same /64 got its own bucket")
	}
}

// TestClientLimiterBound: the limiter tracks at most its size in clients,
// forgets the one heard from least recently for a new one, counts that,
// and an evicted client comes back with a full bucket.
func TestClientLimiterBound(t *testing.T) {
	metrics := NewMetrics(prometheus.NewRegistry())
	now := time.Unix(1000, 0)
	l := newClientLimiter(2, 3, metrics)
	l.now = func() time.Time { return now }
	metrics.trackLimiter(l)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}) }
	first := addr(0)
	l.allow(first)
	l.allow(first) // its bucket is empty now
	for i := range 1000 {
		l.allow(addr(1000 + i))
		if n := l.len(); n > 3 {
			t.Fatalf("after %d clients the limiter tracks %d, more than 3", i+2, n)
		}
	}
	if got := testutil.ToFloat64(metrics.evictions); got != 998 {
		t.Errorf("evictions = %v, want 998 (1001 clients in a table of 3)", got)
	}
	if got := testutil.ToFloat64(metrics.clients); got != 3 {
		t.Errorf("tracked clients gauge = %v, want 3", got)
	}
	if !l.allow(first) {
		t.Error("an evicted client did not start again with a full bucket")
	}

	// A client heard from recently survives newcomers; the least recent
	// one is the one forgotten.
	a, b, c, d := addr(1), addr(2), addr(3), addr(4)
	l = newClientLimiter(1, 2, nil)
	l.now = func() time.Time { return now }
	l.allow(a) // a's bucket is empty
	l.allow(b)
	l.allow(a) // a is the most recent now, and still empty
	l.allow(c) // b goes
	if l.allow(a) {
		t.Error("a, heard from recently, was forgotten")
	}
	l.allow(d) // c goes: a was asked after it
	if l.allow(a) {
		t.Error("a was forgotten before c")
	}
}

// BenchmarkClientLimiter measures allow: one client again and again (the
// common case), 1,000 clients in turn (all tracked), and a flood of new
// source addresses in a full table of 10,000 (every query evicts).
//
//	go test ./dnsserver -run '^$' -bench ClientLimiter
func BenchmarkClientLimiter(b *testing.B) {
	addr := func(i uint32) netip.Addr {
		return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	for _, bc := range []struct {
		name    string
		clients uint32 // distinct addresses asked in turn; 0: a new one each time
	}{
		{"one-client", 1},
		{"1000-clients", 1000},
		{"flood", 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l := newClientLimiter(1<<30, 10000, nil)
			i := uint32(0)
			for b.Loop() {
				c := i
				if bc.clients > 0 {
					c = i % bc.clients
				}
				l.allow(addr(c))
				i++
			}
		})
	}
}
