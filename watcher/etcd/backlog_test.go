package etcd

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
	"github.com/discodns/discodns/watcher/internal/watchertest"
)

func splitTest(key string) (string, string, error) { return watcher.SplitKey("/s/", key) }

func testEvent(typ mvccpb.Event_EventType, key string, rev int64) *clientv3.Event {
	return &clientv3.Event{Type: typ, Kv: &mvccpb.KeyValue{Key: []byte(key), ModRevision: rev}}
}

// TestBacklogTakesTurns: a change queued behind a burst into another
// service is handed out after at most one turn of the burst.
func TestBacklogTakesTurns(t *testing.T) {
	b := newBacklog(splitTest)
	var burst []*clientv3.Event
	for i := range 10 * turnEvents {
		burst = append(burst, testEvent(mvccpb.PUT, fmt.Sprintf("/s/big/%d", i), int64(i)))
	}
	b.add(burst)
	b.add([]*clientv3.Event{testEvent(mvccpb.PUT, "/s/small/1", 1), testEvent(mvccpb.PUT, "bad", 2)})
	if b.events != len(burst)+2 {
		t.Fatalf("events = %d, want %d", b.events, len(burst)+2)
	}
	var services []string
	for {
		turn := b.turn()
		if len(turn) == 0 {
			break
		}
		if len(turn) > turnEvents {
			t.Fatalf("a turn of %d events, want at most %d", len(turn), turnEvents)
		}
		services = append(services, turn[0].service)
		for _, ev := range turn {
			if ev.service != turn[0].service {
				t.Fatalf("a turn mixes services %q and %q", turn[0].service, ev.service)
			}
		}
	}
	want := []string{"big", "small", "", "big"}
	for i, s := range want {
		if i >= len(services) || services[i] != s {
			t.Fatalf("turns by service %q, want them to start %q", services, want)
		}
	}
	if b.events != 0 || len(b.queues) != 0 {
		t.Fatalf("an empty backlog holds %d events, %d queues", b.events, len(b.queues))
	}
}

// TestBacklogReusesQueues: a burst into many services reuses the queues
// that turns emptied, and a turn's events stay as handed out until the
// next turn, whatever is added meanwhile.
func TestBacklogReusesQueues(t *testing.T) {
	b := newBacklog(splitTest)
	b.add([]*clientv3.Event{testEvent(mvccpb.PUT, "/s/a/1", 1), testEvent(mvccpb.PUT, "/s/b/1", 2)})
	check := func(turn []event, key string) {
		t.Helper()
		if len(turn) != 1 || turn[0].key != key {
			t.Fatalf("turn %v, want the event of %s", turn, key)
		}
	}
	first := b.turn()
	check(first, "/s/a/1")
	b.add([]*clientv3.Event{testEvent(mvccpb.PUT, "/s/c/1", 3)})
	check(first, "/s/a/1") // a's queue is not free before the next turn
	second := b.turn()
	check(second, "/s/b/1")
	if len(b.free) != 1 {
		t.Fatalf("%d free queues after two emptied, one of them handed out, want 1", len(b.free))
	}
	b.add([]*clientv3.Event{testEvent(mvccpb.PUT, "/s/d/1", 4)})
	if len(b.free) != 0 {
		t.Fatalf("%d free queues after a new service came, want 0", len(b.free))
	}
	check(second, "/s/b/1")
	check(b.turn(), "/s/c/1")
	check(b.turn(), "/s/d/1")
	if b.turn() != nil || b.events != 0 || len(b.queues) != 0 {
		t.Fatalf("the backlog holds %d events in %d queues, want none", b.events, len(b.queues))
	}
}

// TestBacklogKeepsEachKeysOrder adds random events in random batches,
// taking random turns in between, and checks that every key's events come
// out in the order they went in, each once, and that the split is kept.
func TestBacklogKeepsEachKeysOrder(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 3))
		b := newBacklog(splitTest)
		var rev int64
		last := map[string]int64{}
		var in, out int
		take := func() {
			for _, ev := range b.turn() {
				out++
				if ev.Kv.ModRevision <= last[ev.key] {
					t.Fatalf("seed %d: %s at revision %d after %d", seed, ev.key, ev.Kv.ModRevision, last[ev.key])
				}
				last[ev.key] = ev.Kv.ModRevision
				service, id, err := splitTest(ev.key)
				if ev.service != service || ev.id != id || (ev.err == nil) != (err == nil) {
					t.Fatalf("seed %d: %s split as %q %q %v", seed, ev.key, ev.service, ev.id, ev.err)
				}
			}
		}
		for range 300 {
			var batch []*clientv3.Event
			for range r.IntN(3 * turnEvents) {
				rev++
				key := fmt.Sprintf("/s/svc%d/%d", r.IntN(4)*r.IntN(4), r.IntN(50))
				if r.IntN(20) == 0 {
					key = "/elsewhere"
				}
				typ := mvccpb.PUT
				if r.IntN(3) == 0 {
					typ = mvccpb.DELETE
				}
				batch = append(batch, testEvent(typ, key, rev))
			}
			in += len(batch)
			b.add(batch)
			for range r.IntN(6) {
				take()
			}
			if b.events != in-out {
				t.Fatalf("seed %d: backlog counts %d events, holds %d", seed, b.events, in-out)
			}
		}
		for b.events > 0 {
			take()
		}
		if out != in || len(b.turns) != 0 || len(b.queues) != 0 {
			t.Fatalf("seed %d: %d events in, %d out; %d turns and %d queues left", seed, in, out, len(b.turns), len(b.queues))
		}
	}
}

// gatedSink is a table that records the order of its Puts, and holds the
// first Put of service gate until open is closed.
type gatedSink struct {
	*cache.Table
	gate  string
	held  chan struct{} // closed when the first Put of gate waits
	open  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	order []string // services, one per Put
}

func (s *gatedSink) Put(source string, in cache.Instance) {
	if in.Service == s.gate {
		s.once.Do(func() {
			close(s.held)
			<-s.open
		})
	}
	s.mu.Lock()
	s.order = append(s.order, in.Service)
	s.mu.Unlock()
	s.Table.Put(source, in)
}

// TestEtcdBurstTakesTurns: a change written after a burst into another
// service reaches the table after at most a few turns of the burst, not
// behind all of it, and the burst and the change are all applied. The
// source is held in its first Put of the burst until etcd has delivered
// everything to a watcher of the test, so that its watch has it too.
func TestEtcdBurstTakesTurns(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := startEtcd(t)
	cli := newClient(t, srv.Endpoints())
	put(t, cli, "/services/small/10.0.0.1:80", "")

	h := newHarness(t, Config{Endpoints: srv.Endpoints(), Prefix: "/services"})
	sink := &gatedSink{Table: h.Table, gate: "big", held: make(chan struct{}), open: make(chan struct{})}
	r, rev := listedRun(ctx, t, h, sink)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.follow(ctx, rev)
	}()
	defer func() { cancel(); <-done }()

	seen := cli.Watch(ctx, "/services/small/", clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	const n = 20 * turnEvents
	for i := 0; i < n; i += 100 {
		var ops []clientv3.Op
		for j := i; j < min(i+100, n); j++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("/services/big/10.1.%d.%d:80", j/250, j%250), ""))
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	put(t, cli, "/services/small/10.0.0.2:80", "")
	select {
	case <-sink.held:
	case <-time.After(watchertest.WaitTimeout):
		t.Fatal("the source applied no event of the burst")
	}
	select {
	case <-seen:
	case <-time.After(watchertest.WaitTimeout):
		t.Fatal("etcd did not deliver the change")
	}
	time.Sleep(200 * time.Millisecond) // for the source's watch to have it too
	close(sink.open)

	h.WaitEndpoints("small", "10.0.0.1:80=10.0.0.1:80", "10.0.0.2:80=10.0.0.2:80")
	h.WaitFor("the burst applied", func() bool { return len(h.Endpoints("big")) == n },
		func() string { return fmt.Sprint(len(h.Endpoints("big")), " instances") })
	sink.mu.Lock()
	order := slices.Clone(sink.order)
	sink.mu.Unlock()
	at := slices.Index(order, "small")
	if at < 0 || at > 3*turnEvents {
		t.Fatalf("the change was applied after %d events of the burst, want at most %d (turns of %d)", at, 3*turnEvents, turnEvents)
	}
	if got := h.Events(watcher.OpPut); got != n+1 {
		t.Fatalf("put events = %v, want %d", got, n+1)
	}
}

// TestEtcdBacklogBound: with a backlog bound smaller than a burst, the
// source stops reading ahead, counts it, and still applies everything.
func TestEtcdBacklogBound(t *testing.T) {
	t.Parallel()
	srv := startEtcd(t)
	cli := newClient(t, srv.Endpoints())
	h := newHarness(t, Config{Endpoints: srv.Endpoints(), Prefix: "/services"})
	h.Src.(*Source).maxBacklog = 50
	h.Run()
	h.WaitFor("listed", func() bool { return h.Status().Listed }, func() string { return "not listed" })
	const n = 1000
	for i := 0; i < n; i += 100 {
		var ops []clientv3.Op
		for j := i; j < i+100; j++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("/services/svc%d/10.1.%d.%d:80", j%7, j/250, j%250), ""))
		}
		if _, err := cli.Txn(context.Background()).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	h.WaitFor("the burst applied", func() bool { return h.Events(watcher.OpPut) == n },
		func() string { return fmt.Sprint(h.Events(watcher.OpPut), " puts") })
	total := 0
	for i := range 7 {
		total += len(h.Endpoints(fmt.Sprintf("svc%d", i)))
	}
	if total != n {
		t.Fatalf("%d instances in the table, want %d", total, n)
	}
	if got := h.SourceCounter("discodns_watcher_etcd_backlog_full_total"); got < 1 {
		t.Fatalf("discodns_watcher_etcd_backlog_full_total = %v, want at least 1 (a response of 100 events into a backlog of 50)", got)
	}
}
