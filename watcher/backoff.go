package watcher

import (
	"context"
	"math/rand/v2"
	"time"
)

// MinBackoff and MaxBackoff bound the delay between a source's retries
// (and, for etcd, gRPC's reconnection attempts).
const (
	MinBackoff = 100 * time.Millisecond
	MaxBackoff = 2 * time.Second
)

// Backoff yields exponentially growing delays from min to max, with
// jitter. The zero value is not usable; use NewBackoff.
type Backoff struct {
	min, max time.Duration
	next     time.Duration
}

// NewBackoff returns a Backoff whose first delay is min and whose delays
// grow to max.
func NewBackoff(min, max time.Duration) *Backoff {
	return &Backoff{min: min, max: max, next: min}
}

// delay returns the next delay and doubles the one after it, up to max.
func (b *Backoff) delay() time.Duration {
	d := b.next
	b.next = min(2*b.next, b.max)
	// Up to 20% less, so that sources failing together retry apart.
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// Reset starts again from min.
func (b *Backoff) Reset() { b.next = b.min }

// Wait sleeps for the next delay; it returns false if ctx ended first.
func (b *Backoff) Wait(ctx context.Context) bool {
	t := time.NewTimer(b.delay())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
