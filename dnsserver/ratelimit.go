package dnsserver

import (
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// clientLimiter is a token bucket per client address (IPv6 clients by their
// /64): rate queries per second with bursts of rate. It tracks at most
// maxClients clients: a new one past that takes the bucket of the client
// heard from least recently (an eviction, counted), so a flood of spoofed
// source addresses costs a fixed amount of memory. An evicted client that
// comes back starts with a full bucket, as it would after a second's rest.
type clientLimiter struct {
	rate       float64
	maxClients int
	// spareLoopback lets loopback clients through unlimited.
	spareLoopback bool
	now           func() time.Time
	metrics       *Metrics

	mu      sync.Mutex
	clients *simplelru.LRU[netip.Addr, *bucket]
}

type bucket struct {
	tokens float64
	last   time.Time
}

// newClientLimiter returns a limiter of rate queries per second per client
// that tracks at most maxClients (below 1: 1) clients, and counts its
// evictions in metrics (nil: nowhere).
func newClientLimiter(rate, maxClients int, metrics *Metrics) *clientLimiter {
	maxClients = max(maxClients, 1)
	// NewLRU fails only for a size below 1.
	clients, _ := simplelru.NewLRU[netip.Addr, *bucket](maxClients, nil)
	return &clientLimiter{rate: float64(rate), maxClients: maxClients, now: time.Now, metrics: metrics, clients: clients}
}

// allow takes a token for client and reports whether it had one.
func (l *clientLimiter) allow(client netip.Addr) bool {
	if l.spareLoopback && client.IsLoopback() {
		return true
	}
	client = clientKey(client)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.clients.Get(client)
	if !ok {
		b = l.newBucket()
		b.tokens, b.last = l.rate, now
		l.clients.Add(client, b)
	}
	b.tokens = min(l.rate, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// newBucket returns the bucket for a new client: the one of the client
// heard from least recently, forgotten, when the table is full.
func (l *clientLimiter) newBucket() *bucket {
	if l.clients.Len() < l.maxClients {
		return new(bucket)
	}
	_, b, _ := l.clients.RemoveOldest()
	l.metrics.rateLimitEvicted()
	return b
}

// len returns how many clients the limiter tracks.
func (l *clientLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.clients.Len()
}
