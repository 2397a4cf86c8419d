package consul

import (
	"context"
	"testing"
	"time"
)

func TestWorkQueue(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q := newWorkQueue()
	q.add(false, "a", "b")
	q.add(true, "c")
	q.add(false, "c") // already urgent: stays urgent
	name, urgent, ok := q.next(ctx)
	if !ok || name != "c" || !urgent {
		t.Fatalf("first = %q %v %v, want the urgent c", name, urgent, ok)
	}
	// c is in flight: queued again, it is not handed out twice.
	q.add(true, "c")
	seen := map[string]bool{}
	for range 2 {
		name, _, _ := q.next(ctx)
		seen[name] = true
	}
	if !seen["a"] || !seen["b"] {
		t.Fatalf("got %v while c was in flight, want a and b", seen)
	}
	q.done("c")
	if name, urgent, _ := q.next(ctx); name != "c" || !urgent {
		t.Fatalf("after done: %q %v, want c again", name, urgent)
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if name, _, ok := q.next(short); ok {
		t.Fatalf("empty queue handed out %q", name)
	}
}

// TestWorkQueueHold: a held name is never handed to a worker, hold waits
// for a worker's fetch of it to end, and done hands what was queued
// meanwhile to the workers.
func TestWorkQueueHold(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q := newWorkQueue()
	q.add(true, "a")
	if name, _, _ := q.next(ctx); name != "a" {
		t.Fatalf("next = %q, want a", name)
	}
	held := make(chan bool)
	go func() { held <- q.hold(ctx, "a") }()
	select {
	case <-held:
		t.Fatal("hold returned while a worker fetched a")
	case <-time.After(50 * time.Millisecond):
	}
	q.done("a")
	if !<-held {
		t.Fatal("hold failed")
	}
	q.add(true, "a", "b")
	if name, _, _ := q.next(ctx); name != "b" {
		t.Fatalf("next = %q while a is held, want b", name)
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if name, _, ok := q.next(short); ok {
		t.Fatalf("handed out %q, want nothing while a is held", name)
	}
	q.done("a")
	if name, urgent, _ := q.next(ctx); name != "a" || !urgent {
		t.Fatalf("after done: %q %v, want a, urgent", name, urgent)
	}
	expired, cancelExpired := context.WithCancel(ctx)
	cancelExpired()
	if q.hold(expired, "a") {
		t.Error("hold of a name in flight returned true after its context ended")
	}
}
