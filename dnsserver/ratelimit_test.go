package dnsserver

import (
	"net/netip"
	"testing"
	"time"
)

func TestClientLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newClientLimiter(10)
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
