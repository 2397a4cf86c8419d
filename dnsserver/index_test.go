package dnsserver

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/discodns/discodns/cache"
)

// TestIncrementalCompile changes a service at random, step by step
// (instances come, go, move to another address or port, change tags,
// named ports and metadata; IDs collide into suffixed labels), and checks
// after each step that the service compiled from the previous one, which
// reuses the records of unchanged endpoints, is the service compiled
// afresh, record for record. A fifth of the steps ask nothing, so the
// next compiles from a service whose records were never compiled (see
// lazyRecords).
func TestIncrementalCompile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tb := cache.NewTable(quiet)
	tb.AddSource("etcd", testZone)
	tb.AddSource("consul", testZone)
	h := NewHandler(Options{Zone: testZone, TTL: 5 * time.Second}, nil, quiet)
	random := func(source string) cache.Instance {
		in := cache.Instance{
			Service: "web", Source: source,
			ID:       []string{"a", "b", "c", "A", "a_", "d", "e", "f", "g", "h"}[rng.IntN(10)] + fmt.Sprint(rng.IntN(3)),
			Address:  []string{"10.0.0.1", "10.0.0.2", "2001:db8::1", "host.example"}[rng.IntN(4)],
			Port:     uint16(8000 + rng.IntN(3)),
			Priority: 1, Weight: uint16(rng.IntN(3)),
		}
		for range rng.IntN(3) {
			in.Tags = append(in.Tags, []string{"v1", "v2", "canary", "V1"}[rng.IntN(4)])
		}
		if rng.IntN(2) == 0 {
			in.Meta = map[string]string{"version": fmt.Sprint(rng.IntN(3))}
		}
		if rng.IntN(3) == 0 {
			in.Ports = map[string]uint16{"tls": uint16(rng.IntN(2) * 9443), "admin": 9000}
		}
		return in
	}
	var compared int
	for step := range 2000 {
		source := []string{"etcd", "consul"}[rng.IntN(2)]
		in := random(source)
		if rng.IntN(4) == 0 {
			tb.Delete(source, in.Service, in.ID)
		} else {
			tb.Put(source, in)
		}
		h.Update(tb.Snapshot())
		cs := h.idx.Load().service("web." + testZone)
		if cs == nil || rng.IntN(5) == 0 {
			continue
		}
		fresh := compileService(cs.svc, nil, h.idx.Load().set)
		if !reflect.DeepEqual(cs.sets(), fresh.sets()) {
			t.Fatalf("step %d: the compiled service differs from one compiled afresh:\n%+v\n%+v", step, cs.sets().all, fresh.sets().all)
		}
		for _, ep := range cs.svc.Endpoints {
			if !reflect.DeepEqual(cs.instance(ep.Label), fresh.instance(ep.Label)) {
				t.Fatalf("step %d: instance %s differs", step, ep.Label)
			}
			if cs.instance(ep.Label) == nil {
				t.Fatalf("step %d: instance %s not found", step, ep.Label)
			}
		}
		if cs.instance("nosuch") != nil || cs.instance("") != nil {
			t.Fatalf("step %d: an instance that is not there is found", step)
		}
		compared++
	}
	if compared < 1000 {
		t.Fatalf("compared %d steps only", compared)
	}
	// And the answers agree with the table.
	m := h.Answer(query("web."+testZone, dns.TypeSRV), true, loopback)
	if n := len(h.idx.Load().service("web." + testZone).svc.Endpoints); len(m.Answer) != n {
		t.Errorf("SRV answers %d records for %d endpoints", len(m.Answer), n)
	}
}

func TestReverseName(t *testing.T) {
	for _, addr := range []string{"10.0.0.1", "192.168.255.7", "0.0.0.0", "2001:db8::1", "::1", "fe80::a:b:c:d"} {
		want, err := dns.ReverseAddr(addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := reverseName(netip.MustParseAddr(addr)); got != want {
			t.Errorf("reverseName(%s) = %s, want %s", addr, got, want)
		}
	}
}

// TestSetsBuiltOnFirstUse: compiling a changed service leaves its record
// sets to its first use; an instance name does not need them, the service
// name does, and warm builds them for the services compiled.
func TestSetsBuiltOnFirstUse(t *testing.T) {
	tb := cache.NewTable(quiet)
	tb.AddSource("etcd", testZone)
	for i := range 3 {
		tb.Put("etcd", cache.Instance{Service: "web", ID: fmt.Sprint("i", i), Address: fmt.Sprint("10.0.0.", i+1), Port: 80})
	}
	metrics := NewMetrics(prometheus.NewRegistry())
	h := NewHandler(Options{Zone: testZone, TTL: 5 * time.Second}, metrics, quiet)
	h.Update(tb.Snapshot())
	cs := h.idx.Load().service("web." + testZone)
	if cs == nil || cs.built != nil {
		t.Fatalf("compiled service %v: want its sets not built", cs)
	}
	if m := h.Answer(query("i1.web."+testZone, dns.TypeA), false, loopback); len(m.Answer) != 1 || cs.built != nil {
		t.Fatalf("instance answer %v; sets built %v: want one A, no sets", m.Answer, cs.built != nil)
	}
	if m := h.Answer(query("web."+testZone, dns.TypeA), false, loopback); len(m.Answer) != 3 || cs.built == nil {
		t.Fatalf("service answer %v; sets built %v: want three A, the sets", m.Answer, cs.built != nil)
	}
	tb.Put("etcd", cache.Instance{Service: "web", ID: "i3", Address: "10.0.0.4", Port: 80})
	h.Update(tb.Snapshot())
	idx := h.idx.Load()
	if cs := idx.service("web." + testZone); len(idx.fresh) != 1 || idx.fresh[0] != cs || cs.built != nil {
		t.Fatalf("after a change: fresh %v, want the changed service alone, unbuilt", idx.fresh)
	}
	idx.warm(nil)
	if idx.fresh[0].built == nil || len(idx.fresh[0].built.all.a) != 4 {
		t.Fatalf("warm did not build the sets of the changed service")
	}
	queries, follows := testutil.ToFloat64(metrics.setsBuilds[byQuery]), testutil.ToFloat64(metrics.setsBuilds[byFollow])
	if queries != 1 || follows != 1 {
		t.Errorf("discodns_dns_record_sets_built_total: query %v, follow %v; want 1 and 1", queries, follows)
	}
}

// TestCompileFollowsChanges: compiling from the previous index visits
// only the services the snapshots since changed (cache.Snapshot.
// ChangedSince); after random changes to many services, with snapshots
// skipped between compilations (as Follow skips them), and more than the
// change log holds at times, the index holds exactly the table's
// services, each compiled from the table's current service.
func TestCompileFollowsChanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tb := cache.NewTable(quiet)
	tb.AddSource("etcd", testZone)
	metrics := NewMetrics(prometheus.NewRegistry())
	h := NewHandler(Options{Zone: testZone, TTL: 5 * time.Second}, metrics, quiet)
	wantCompared := 1.0 // the first: the handler starts from no table's snapshot
	last := tb.Snapshot().Version
	for step := range 300 {
		writes := 1 + rng.IntN(4)
		if step%50 == 49 {
			writes = 100 // more publications than a snapshot's change log tells
		}
		for range writes {
			svc := fmt.Sprint("svc-", rng.IntN(60))
			id := fmt.Sprint("i", rng.IntN(3))
			if rng.IntN(3) == 0 {
				tb.Delete("etcd", svc, id)
			} else {
				tb.Put("etcd", cache.Instance{Service: svc, ID: id, Address: fmt.Sprint("10.0.0.", 1+rng.IntN(200)), Port: 80})
			}
		}
		snap := tb.Snapshot()
		if snap.Version-last > 64 {
			wantCompared++ // more publications than the change log tells
		}
		last = snap.Version
		h.Update(snap)
		idx := h.idx.Load()
		n := 0
		for _, sh := range idx.shards {
			if sh == nil {
				continue
			}
			for fqdn, cs := range sh.services.All() {
				n++
				if got := snap.Services.Get(fqdn); got == nil || got != cs.svc {
					t.Fatalf("step %d: %s compiled from %p, the table has %p", step, fqdn, cs.svc, got)
				}
			}
		}
		if want := snap.Services.Len(); n != want {
			t.Fatalf("step %d: the index holds %d services, the table %d", step, n, want)
		}
	}
	// A snapshot more than 64 publications after the last compiled was
	// compared; the others followed their changes.
	followed, compared := testutil.ToFloat64(metrics.compiles[0]), testutil.ToFloat64(metrics.compiles[1])
	if compared != wantCompared || followed != 300-wantCompared || wantCompared == 0 {
		t.Errorf("compiles: %v following the changes, %v compared; want %v and %v", followed, compared, 300-wantCompared, wantCompared)
	}
}

// TestLazyRecords: a new service of at most lazyRecords endpoints is
// compiled without its records, which its first queries build (at once
// from many goroutines: the race detector watches), and a change to it
// then reuses them; a larger service has its records from the start.
func TestLazyRecords(t *testing.T) {
	tb := cache.NewTable(quiet)
	tb.AddSource("etcd", testZone)
	h := NewHandler(Options{Zone: testZone, TTL: 5 * time.Second}, nil, quiet)
	put := func(svc string, n int) {
		for i := range n {
			tb.Put("etcd", cache.Instance{Service: svc, ID: fmt.Sprint("i", i), Address: fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), Port: 80})
		}
	}
	put("small", lazyRecords)
	put("large", lazyRecords+1)
	h.Update(tb.Snapshot())
	small, large := h.idx.Load().service("small."+testZone), h.idx.Load().service("large."+testZone)
	if small == nil || large == nil {
		t.Fatal("a service is not compiled")
	}
	if small.epsReady.Load() || !large.epsReady.Load() {
		t.Fatalf("records compiled: small %v, large %v; want false, true", small.epsReady.Load(), large.epsReady.Load())
	}
	instance := small.svc.Endpoints[0].Label + ".small." + testZone
	var wg sync.WaitGroup
	answers := make([][3]int, 8)
	for g := range answers {
		wg.Go(func() {
			answers[g] = [3]int{
				len(h.Answer(query("small."+testZone, dns.TypeA), true, loopback).Answer),
				len(h.Answer(query("small."+testZone, dns.TypeSRV), true, loopback).Answer),
				len(h.Answer(query(instance, dns.TypeA), true, loopback).Answer),
			}
		})
	}
	wg.Wait()
	for g, a := range answers {
		if a != [3]int{lazyRecords, lazyRecords, 1} {
			t.Fatalf("goroutine %d: A, SRV and instance answers %v, want %d, %d, 1", g, a, lazyRecords, lazyRecords)
		}
	}
	if !small.epsReady.Load() {
		t.Fatal("the small service's records are not compiled after its queries")
	}
	tb.Put("etcd", cache.Instance{Service: "small", ID: "i0", Address: "10.9.9.9", Port: 80})
	h.Update(tb.Snapshot())
	changed := h.idx.Load().service("small." + testZone)
	if changed == small || !changed.epsReady.Load() {
		t.Fatal("a change to a service whose records were compiled does not compile its records at once")
	}
	if reused := changed.eps[1] == small.eps[1]; !reused {
		t.Fatal("the records of an unchanged endpoint were not reused")
	}
}
