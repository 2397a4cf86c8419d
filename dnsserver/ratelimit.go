package dnsserver

import (
	"net/netip"
	"sync"
	"time"
)

// clientLimiter is a token bucket per client address (IPv6 clients by their
// /64): rate queries per second with bursts of rate. It forgets clients
// idle for a minute once it tracks many.
type clientLimiter struct {
	rate float64
	now  func() time.Time

	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxTrackedClients is the number of clients above which idle ones are
// forgotten.
const maxTrackedClients = 10000

func newClientLimiter(rate int) *clientLimiter {
	return &clientLimiter{rate: float64(rate), now: time.Now, buckets: map[netip.Addr]*bucket{}}
}

// allow takes a token for client and reports whether it had one.
func (l *clientLimiter) allow(client netip.Addr) bool {
	if client.Is6() {
		if p, err := client.WithZone("").Prefix(64); err == nil {
			client = p.Addr()
		}
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[client]
	if b == nil {
		if len(l.buckets) >= maxTrackedClients && now.Sub(l.swept) > time.Second {
			l.sweep(now)
		}
		b = &bucket{tokens: l.rate, last: now}
		l.buckets[client] = b
	}
	b.tokens = min(l.rate, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *clientLimiter) sweep(now time.Time) {
	l.swept = now
	for c, b := range l.buckets {
		if now.Sub(b.last) > time.Minute {
			delete(l.buckets, c)
		}
	}
}
