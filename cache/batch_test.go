package cache

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// running returns a table whose writes Run publishes, and stops Run when
// the test ends.
func running(t *testing.T, sources ...string) *Table {
	t.Helper()
	tb := newTable(t, sources...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tb.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	// Run has started when a write no longer publishes by itself.
	for {
		tb.mu.Lock()
		ok := tb.running
		tb.mu.Unlock()
		if ok {
			return tb
		}
		time.Sleep(time.Millisecond)
	}
}

func synced(t *testing.T, tb *Table) *Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := tb.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	return tb.Snapshot()
}

// TestBatchPublication: while Run publishes, writes only record; one
// publication takes everything recorded, every service changed once, in
// one snapshot.
func TestBatchPublication(t *testing.T) {
	tb := newTable(t, "etcd")
	tb.Replace("etcd", []Instance{inst("web", "a", "10.0.0.1", 80), inst("db", "x", "10.0.1.1", 5432)})
	before := tb.Snapshot()
	tb.mu.Lock()
	tb.running = true // as Run does, without its goroutine: nothing publishes
	tb.mu.Unlock()
	for i := range 1000 {
		tb.Put("etcd", inst("web", fmt.Sprint("w", i), fmt.Sprintf("10.1.%d.%d", i/250, i%250), 80))
	}
	tb.Delete("etcd", "db", "x")
	tb.Put("etcd", inst("cache", "c", "10.0.2.1", 6379))
	if tb.Snapshot() != before {
		t.Fatal("a write published while Run publishes")
	}
	select {
	case <-tb.wake:
	default:
		t.Fatal("writes did not wake Run")
	}
	tb.publish(false)
	snap := tb.Snapshot()
	if snap.Version != before.Version+1 {
		t.Fatalf("version %d, want one publication after %d", snap.Version, before.Version)
	}
	if n := len(snap.Services.Get("web." + zone).Endpoints); n != 1001 {
		t.Fatalf("web has %d endpoints, want 1001", n)
	}
	if snap.Services.Get("db."+zone) != nil || snap.Services.Get("cache."+zone) == nil {
		t.Fatal("db or cache not changed in the batch")
	}
	if st := snap.Sources[0]; st.Services != 2 || st.Instances != 1002 {
		t.Fatalf("source status %+v", st)
	}
	if len(snap.Changes) != 2+3 { // the list, then web, db, cache
		t.Fatalf("changes %+v", snap.Changes)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tb.Sync(ctx); err != nil {
		t.Fatalf("Sync after the publication: %v", err)
	}
	tb.Put("etcd", inst("web", "late", "10.2.0.1", 80))
	if err := tb.Sync(ctx); err == nil {
		t.Fatal("Sync returned before a pending write was published")
	}
}

// TestRunPublishes: writes under Run reach a snapshot, which Sync waits
// for, and are published when Run stops.
func TestRunPublishes(t *testing.T) {
	tb := newTable(t, "etcd")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tb.Run(ctx)
	}()
	for i := range 500 {
		tb.Put("etcd", inst("web", fmt.Sprint(i), fmt.Sprintf("10.1.%d.%d", i/250, i%250), 80))
	}
	if n := len(synced(t, tb).Services.Get("web." + zone).Endpoints); n != 500 {
		t.Fatalf("after Sync: %d endpoints, want 500", n)
	}
	cancel()
	<-done
	tb.Put("etcd", inst("web", "after", "10.2.0.1", 80))
	if n := len(tb.Snapshot().Services.Get("web." + zone).Endpoints); n != 501 {
		t.Fatalf("a write after Run stopped: %d endpoints, want 501", n)
	}
}

// TestReplaceServiceNeverEmpty: readers following snapshots while a
// service's instances are replaced, again and again, and other services
// change, see the old set or the new one, never a mix or nothing.
func TestReplaceServiceNeverEmpty(t *testing.T) {
	tb := running(t, "zk")
	sets := [2][]Instance{}
	for i := range 300 {
		sets[0] = append(sets[0], inst("web", fmt.Sprint("a", i), fmt.Sprintf("10.0.%d.%d", i/250, i%250), 80))
		sets[1] = append(sets[1], inst("web", fmt.Sprint("b", i), fmt.Sprintf("10.1.%d.%d", i/250, i%250), 80))
	}
	tb.ReplaceService("zk", "web", sets[0])
	synced(t, tb)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad []string
	var seen int
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			svc := tb.Snapshot().Services.Get("web." + zone)
			seen++
			if svc == nil {
				bad = append(bad, "gone")
				continue
			}
			if len(svc.Endpoints) != 300 || svc.Endpoints[0].ID[0] != svc.Endpoints[299].ID[0] {
				bad = append(bad, fmt.Sprintf("%d endpoints, %s to %s", len(svc.Endpoints), svc.Endpoints[0].ID, svc.Endpoints[len(svc.Endpoints)-1].ID))
			}
		}
	})
	for round := range 200 {
		tb.ReplaceService("zk", "web", sets[(round+1)%2])
		tb.Put("zk", inst("other", "o", fmt.Sprintf("10.9.0.%d", round%250+1), 80))
	}
	last := synced(t, tb)
	close(stop)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("readers saw %d bad states of %d, first: %v", len(bad), seen, bad[0])
	}
	if svc := last.Services.Get("web." + zone); svc == nil || svc.Endpoints[0].ID != "a0" {
		t.Fatalf("last snapshot: %+v, want set a", svc)
	}
}

// TestDeleteLargeService deletes a large service instance by instance,
// then one instance of another: both are gone once published, and the
// other service keeps its other instance.
func TestDeleteLargeService(t *testing.T) {
	for _, mode := range []string{"each write", "batched"} {
		t.Run(mode, func(t *testing.T) {
			// Publishing each write costs a copy of the service: fewer.
			tb, n := newTable(t, "etcd"), 1500
			if mode == "batched" {
				tb, n = running(t, "etcd"), 6000
			}
			var big []Instance
			for i := range n {
				big = append(big, inst("big", fmt.Sprint("i", i), fmt.Sprintf("10.%d.%d.%d", i/62500, i/250%250, i%250+1), 80))
			}
			tb.Replace("etcd", append(slices.Clone(big), inst("small", "keep", "10.9.0.1", 80), inst("small", "gone", "10.9.0.2", 80)))
			if got := len(synced(t, tb).Services.Get("big." + zone).Endpoints); got != n {
				t.Fatalf("big has %d endpoints, want %d", got, n)
			}
			for _, in := range big {
				tb.Delete("etcd", "big", in.ID)
			}
			tb.Delete("etcd", "small", "gone")
			snap := synced(t, tb)
			if snap.Services.Get("big."+zone) != nil {
				t.Fatal("big still served")
			}
			if got := labels(snap.Services.Get("small." + zone)); !slices.Equal(got, []string{"keep"}) {
				t.Fatalf("small = %v, want [keep]", got)
			}
			if st := snap.Sources[0]; st.Services != 1 || st.Instances != 1 {
				t.Fatalf("source status %+v", st)
			}
			if c := snap.Changes[0]; c.FQDN != "small."+zone || c.Instances != 1 || c.Before != 2 {
				if c = snap.Changes[1]; c.FQDN != "small."+zone || c.Instances != 1 || c.Before != 2 {
					t.Fatalf("changes %+v", snap.Changes[:2])
				}
			}
		})
	}
}

// TestReplaceServiceDiff: a ReplaceService with the same instances
// publishes nothing; with one changed, added and removed, the service has
// exactly the new set, with the counts to match.
func TestReplaceServiceDiff(t *testing.T) {
	tb := newTable(t, "sky")
	var set []Instance
	for i := range 50 {
		set = append(set, inst("web", fmt.Sprint("i", i), fmt.Sprintf("10.0.0.%d", i+1), 80))
	}
	tb.ReplaceService("sky", "web", set)
	before := tb.Snapshot()
	tb.ReplaceService("sky", "web", slices.Clone(set))
	if tb.Snapshot() != before {
		t.Fatal("an identical ReplaceService published")
	}
	next := slices.Clone(set[1:])
	next[0].Weight = 9
	next = append(next, inst("web", "new", "10.0.1.1", 80))
	tb.ReplaceService("sky", "web", next)
	snap := tb.Snapshot()
	want, _ := referenceEndpoints(withSource(next, "sky"))
	if got := snap.Services.Get("web." + zone).Endpoints; !equalEndpoints(got, want) {
		t.Fatalf("endpoints\n got %v\nwant %v", show(got), show(want))
	}
	if st := snap.Sources[0]; st.Instances != 50 || st.Services != 1 {
		t.Fatalf("status %+v", st)
	}
}

func withSource(insts []Instance, source string) []Instance {
	out := slices.Clone(insts)
	for i := range out {
		out[i].Source = source
	}
	return out
}

// TestWriteDuringBuild: while a publication builds, writes to the table,
// to the service being built or any other, go through, and the next
// publication takes them.
func TestWriteDuringBuild(t *testing.T) {
	tb := newTable(t, "etcd")
	var big []Instance
	for i := range 5000 {
		big = append(big, inst("big", fmt.Sprint("i", i), fmt.Sprintf("10.%d.%d.%d", i/62500, i/250%250, i%250+1), 80))
	}
	tb.Replace("etcd", big)
	tb.mu.Lock()
	tb.running = true // writes only record; this test publishes
	tb.mu.Unlock()
	inBuild, release := make(chan struct{}), make(chan struct{})
	tb.building = func() {
		tb.building = nil
		close(inBuild)
		<-release
	}
	tb.Put("etcd", inst("big", "new", "10.200.0.1", 80))
	published := make(chan struct{})
	go func() {
		defer close(published)
		tb.publish(false)
	}()
	<-inBuild
	// Were writes waiting for the build, this would never return.
	tb.Put("etcd", inst("other", "o", "10.201.0.1", 80))
	tb.Delete("etcd", "big", "i7")
	close(release)
	<-published
	snap := tb.Snapshot()
	if n := len(snap.Services.Get("big." + zone).Endpoints); n != 5001 || snap.Services.Get("other."+zone) != nil {
		t.Fatalf("the publication took %d endpoints of big and other=%v; want 5001 and none of the writes made during the build", n, snap.Services.Get("other."+zone))
	}
	tb.publish(false)
	snap = tb.Snapshot()
	if n := len(snap.Services.Get("big." + zone).Endpoints); n != 5000 || snap.Services.Get("other."+zone) == nil {
		t.Fatalf("the next publication: big has %d endpoints, other=%v; want 5000 and other", n, snap.Services.Get("other."+zone))
	}
}

// TestLargeServicePaced: while Run publishes, a large service published a
// moment ago is held back (paced: a millisecond per endpoint here, so a
// second), and another service's change goes out without it; a snapshot
// claims the writes (Sync) only once it holds every service written, and
// the service held back is published when it is due, with no further
// write.
func TestLargeServicePaced(t *testing.T) {
	tb := running(t, "etcd")
	tb.mu.Lock()
	tb.paceUnit = time.Millisecond
	tb.mu.Unlock()
	tb.ReplaceService("etcd", "big", largeService())
	synced(t, tb)
	start := time.Now()
	tb.Put("etcd", inst("big", "late", "10.9.0.1", 80))
	tb.Put("etcd", inst("small", "s", "10.8.0.1", 80))
	for tb.Snapshot().Services.Get("small."+zone) == nil {
		if time.Since(start) > time.Minute {
			t.Fatal("the small service's change was not published")
		}
		time.Sleep(time.Millisecond)
	}
	snap := tb.Snapshot()
	if time.Since(start) < 900*time.Millisecond { // else the machine stalled past the hold
		if n := len(snap.Services.Get("big." + zone).Endpoints); n != pacedFrom {
			t.Fatalf("the large service has %d endpoints in the snapshot with the small one, want %d: not held back", n, pacedFrom)
		}
		tb.mu.Lock()
		written := tb.written
		tb.mu.Unlock()
		if snap.Writes >= written {
			t.Fatalf("the snapshot claims %d writes of %d with a service held back", snap.Writes, written)
		}
	}
	if n := len(synced(t, tb).Services.Get("big." + zone).Endpoints); n != pacedFrom+1 {
		t.Fatalf("the large service has %d endpoints once due, want %d", n, pacedFrom+1)
	}
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Fatalf("the large service was published again after %v, want about a second", took)
	}
}

// TestLargeServiceYields: a large service that is due yields once to the
// other changes recorded with it: one publication takes them, the next
// takes it.
func TestLargeServiceYields(t *testing.T) {
	tb := newTable(t, "etcd")
	tb.mu.Lock()
	tb.running = true // as Run does, without its goroutine: publish by hand
	tb.paceUnit = time.Nanosecond
	tb.mu.Unlock()
	tb.ReplaceService("etcd", "big", largeService())
	tb.publish(true)
	time.Sleep(time.Millisecond) // past the microsecond the service is held
	tb.Put("etcd", inst("big", "late", "10.9.0.1", 80))
	tb.Put("etcd", inst("small", "s", "10.8.0.1", 80))
	sizes := func() (int, int) {
		snap := tb.Snapshot()
		n := 0
		if s := snap.Services.Get("small." + zone); s != nil {
			n = len(s.Endpoints)
		}
		return len(snap.Services.Get("big." + zone).Endpoints), n
	}
	tb.publish(true)
	if b, s := sizes(); b != pacedFrom || s != 1 {
		t.Fatalf("first publication: big %d, small %d endpoints; want %d and 1", b, s, pacedFrom)
	}
	tb.publish(true)
	if b, s := sizes(); b != pacedFrom+1 || s != 1 {
		t.Fatalf("second publication: big %d, small %d endpoints; want %d and 1", b, s, pacedFrom+1)
	}
	if w := tb.Snapshot().Writes; w != tb.written {
		t.Fatalf("the snapshot claims %d writes of %d with nothing held back", w, tb.written)
	}
}

// largeService is the instances of a service "big" just large enough to
// be paced.
func largeService() []Instance {
	var big []Instance
	for i := range pacedFrom {
		big = append(big, inst("big", fmt.Sprint("b", i), fmt.Sprintf("10.1.%d.%d", i/250, i%250), 80))
	}
	return big
}
