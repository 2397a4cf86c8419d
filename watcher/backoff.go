package watcher

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff yields exponentially growing delays from min to max, with
// jitter. The zero value is not usable; use newBackoff.
type backoff struct {
	min, max time.Duration
	next     time.Duration
}

func newBackoff(min, max time.Duration) *backoff {
	return &backoff{min: min, max: max, next: min}
}

// delay returns the next delay and doubles the one after it, up to max.
func (b *backoff) delay() time.Duration {
	d := b.next
	b.next = min(2*b.next, b.max)
	// Up to 20% less, so that sources failing together retry apart.
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// reset starts again from min.
func (b *backoff) reset() { b.next = b.min }

// wait sleeps for the next delay; it returns false if ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.delay())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
