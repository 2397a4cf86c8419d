package dnsserver

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher/etcd"
)

// discard is the dns.ResponseWriter of the benchmarks: a UDP client on
// loopback whose responses are packed, as miekg/dns's writer does before
// it sends, and dropped. last keeps the last one written.
type discard struct{ last []byte }

var (
	benchLocal  = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	benchClient = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
)

func (d *discard) LocalAddr() net.Addr  { return benchLocal }
func (d *discard) RemoteAddr() net.Addr { return benchClient }
func (d *discard) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = d.Write(b)
	return err
}
func (d *discard) Write(b []byte) (int, error) { d.last = b; return len(b), nil }
func (d *discard) Close() error                { return nil }
func (d *discard) TsigStatus() error           { return nil }
func (d *discard) TsigTimersOnly(bool)         {}
func (d *discard) Hijack()                     {}

// BenchmarkAnswer measures what answering one question costs, on one
// goroutine and without the socket (ns/op is the cost of one answer on one
// core; the socket and miekg/dns's reading of the query come on top), for
// questions of the fixture asked over UDP with EDNS (1232):
//
//   - reference: the least a miekg/dns server does, writing a precomputed
//     reply with the query's ID and question (packed by the writer);
//   - served: ServeDNS, which answers a repeated question from the wire
//     cache of packed answers;
//   - full: building the answer from the compiled index and packing it,
//     the path of a question's first query after each change.
//
// served and full report their cost as a multiple of the reference's,
// measured just before them (x-reference).
//
//	go test ./dnsserver -run '^$' -bench Answer
func BenchmarkAnswer(b *testing.B) {
	h, _ := fixture(b, Options{UDPSize: 1232})
	for _, q := range []struct {
		name, qname string
		qtype       uint16
	}{
		{"A-10", "mid.svc.internal.", dns.TypeA},
		{"SRV-10", "_mid._tcp.svc.internal.", dns.TypeSRV},
		{"NXDOMAIN", "nope.svc.internal.", dns.TypeA},
		{"A-200-trimmed", "big.svc.internal.", dns.TypeA},
	} {
		req := query(q.qname, q.qtype)
		req.SetEdns0(1232, false)
		var refNs float64
		run := func(name string, answer func(w *discard)) {
			b.Run(q.name+"/"+name, func(b *testing.B) {
				w := &discard{}
				b.ReportAllocs()
				for b.Loop() {
					answer(w)
				}
				if w.last == nil {
					b.Fatal("nothing written")
				}
				ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				if refNs == 0 {
					refNs = ns
				} else {
					b.ReportMetric(ns/refNs, "x-reference")
				}
			})
		}
		fixed := h.Answer(req, false, loopback)
		run("reference", func(w *discard) {
			m := *fixed
			m.Id = req.Id
			m.Question = req.Question
			w.WriteMsg(&m)
		})
		run("served", func(w *discard) { h.ServeDNS(w, req) })
		run("full", func(w *discard) { w.WriteMsg(h.Answer(req, false, loopback)) })
	}
}

// BenchmarkChangeOneInstance changes the port of one instance (svc-7/i3)
// in tables of 100 and 10,000 services of 10 instances and measures
// everything the change costs before answers show it, as the daemon does
// it: Table.Put (the table copies the changed shard and publishes a
// snapshot), Update (Follow compiles the snapshot into a new index), and
// the first queries on the new index, which refill the wire cache for the
// changed name (A and SRV) and build the index's table-wide structures on
// first use: the reverse (PTR) map, asked for one instance address, and
// the zone statistics, asked for the empty non-terminal _tcp.<zone>. Each
// step reports its mean: put-us, compile-us, names-us (A and SRV of the
// changed name), ptr-map-us, zone-stats-us. The wire cache of every other
// name is refilled by that name's next query (the full path of
// BenchmarkAnswer, once per name and change), which this does not count.
//
//	go test ./dnsserver -run '^$' -bench ChangeOneInstance
func BenchmarkChangeOneInstance(b *testing.B) {
	for _, services := range []int{100, 10000} {
		b.Run(fmt.Sprintf("services=%d", services), func(b *testing.B) {
			tb := cache.NewTable(quiet)
			tb.AddSource("etcd", testZone)
			var insts []cache.Instance
			for s := range services {
				for i := range 10 {
					insts = append(insts, cache.Instance{Service: fmt.Sprintf("svc-%d", s), ID: fmt.Sprintf("i%d", i),
						Address: fmt.Sprintf("10.%d.%d.%d", i, s/256%256, s%256), Port: uint16(8000 + i), Priority: 1, Weight: 1})
				}
			}
			tb.Replace("etcd", insts)
			h := NewHandler(Options{Zone: testZone, TTL: 5 * time.Second}, nil, quiet)
			h.Update(tb.Snapshot())
			steps := []struct {
				metric  string
				queries []*dns.Msg
				took    time.Duration
			}{
				{metric: "names-us", queries: []*dns.Msg{query("svc-7.svc.internal.", dns.TypeA), query("svc-7.svc.internal.", dns.TypeSRV)}},
				{metric: "ptr-map-us", queries: []*dns.Msg{query("7.0.3.10.in-addr.arpa.", dns.TypePTR)}}, // i3 of svc-7
				{metric: "zone-stats-us", queries: []*dns.Msg{query("_tcp.svc.internal.", dns.TypeSRV)}},  // NODATA
			}
			w := &discard{}
			var put, compile time.Duration
			b.ReportAllocs()
			for n := 0; b.Loop(); n++ {
				start := time.Now()
				tb.Put("etcd", cache.Instance{Service: "svc-7", ID: "i3", Address: "10.3.0.7", Port: uint16(9000 + n%1000), Priority: 1, Weight: 1})
				put += time.Since(start)
				start = time.Now()
				h.Update(tb.Snapshot())
				compile += time.Since(start)
				for i := range steps {
					start = time.Now()
					for _, q := range steps[i].queries {
						h.ServeDNS(w, q)
					}
					steps[i].took += time.Since(start)
				}
			}
			// The answers are right and show the last change.
			for _, st := range steps {
				for _, q := range st.queries {
					h.ServeDNS(w, q)
					resp := new(dns.Msg)
					if err := resp.Unpack(w.last); err != nil || resp.Rcode != dns.RcodeSuccess ||
						q.Question[0].Qtype == dns.TypeSRV && len(resp.Answer) > 0 &&
							!slices.ContainsFunc(resp.Answer, func(rr dns.RR) bool { return rr.(*dns.SRV).Port == uint16(9000+(b.N-1)%1000) }) ||
						q.Question[0].Qtype == dns.TypePTR && len(resp.Answer) != 1 {
						b.Fatalf("%s: %v %v", q.Question[0].String(), err, resp)
					}
				}
			}
			perOp := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(b.N) }
			b.ReportMetric(perOp(put), "put-us")
			b.ReportMetric(perOp(compile), "compile-us")
			for _, st := range steps {
				b.ReportMetric(perOp(st.took), st.metric)
			}
		})
	}
}

// BenchmarkChangeInLargeService changes the port of one instance of a
// service of 10, 1,000 and 20,000 instances (each with a tag and
// metadata) and measures what the change costs before answers show it:
// the table's publication (put-us: Put and Sync, which copies the
// service's endpoints) and the compilation of the snapshot (compile-us:
// Update, which compiles the changed endpoint), then what it costs after
// (sets-us: building the service's record sets, which the daemon does
// when no newer snapshot waits, or a query on first use). x-small is put
// and compile against the same in a service of 10, measured in the same
// run: a change should be visible at the cost of what it changed, not the
// size of its service; x-small-with-sets counts the sets too.
//
//	go test ./dnsserver -run '^$' -bench ChangeInLargeService
func BenchmarkChangeInLargeService(b *testing.B) {
	change := func(b *testing.B, size int, timed bool) (put, compile, sets time.Duration) {
		b.StopTimer()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		insts := make([]cache.Instance, size)
		addr := func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256) }
		for i := range insts {
			insts[i] = cache.Instance{Service: "big", ID: fmt.Sprint("i", i), Address: addr(i), Port: 8000, Priority: 1, Weight: 1,
				Tags: []string{fmt.Sprint("t", i%4)}, Meta: map[string]string{"version": "v1"}}
		}
		tb, h := runningTable(b, ctx, insts)
		if timed {
			b.StartTimer()
		}
		for n := range b.N {
			i := n * 7919 % size
			in := insts[i]
			in.Port = uint16(9000 + (n/size)%1000) // a new port each time
			start := time.Now()
			tb.Put("etcd", in)
			if err := tb.Sync(ctx); err != nil {
				b.Fatal(err)
			}
			put += time.Since(start)
			start = time.Now()
			h.Update(tb.Snapshot())
			compile += time.Since(start)
			start = time.Now()
			h.idx.Load().warm(nil)
			sets += time.Since(start)
		}
		b.StopTimer()
		w := &discard{}
		h.ServeDNS(w, query("big.svc.internal.", dns.TypeSRV))
		resp := new(dns.Msg)
		if err := resp.Unpack(w.last); err != nil || !resp.Truncated && len(resp.Answer) == 0 {
			b.Fatalf("big SRV: %v %v", err, resp)
		}
		return put, compile, sets
	}
	for _, size := range []int{1000, 20000} {
		b.Run(fmt.Sprintf("instances=%d", size), func(b *testing.B) {
			smallPut, smallCompile, smallSets := change(b, 10, false)
			put, compile, sets := change(b, size, true)
			perOp := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(b.N) }
			b.ReportMetric(perOp(put), "put-us")
			b.ReportMetric(perOp(compile), "compile-us")
			b.ReportMetric(perOp(sets), "sets-us")
			b.ReportMetric(float64(put+compile)/float64(smallPut+smallCompile), "x-small")
			b.ReportMetric(float64(put+compile+sets)/float64(smallPut+smallCompile+smallSets), "x-small-with-sets")
		})
	}
}

// BenchmarkChangeManyServices changes one instance in each of 128
// services (one etcd transaction's worth, as a deploy across services
// writes) in a table of 1,000 and of 100,000 one-instance services, and
// measures the publication (put-us: the Puts and Sync) and the
// compilation (compile-us) of that one snapshot. x-small is their sum
// against the same in the table of 1,000, measured in the same run: a
// batch should cost what it changed, not the size of the table.
//
//	go test ./dnsserver -run '^$' -bench ChangeManyServices
func BenchmarkChangeManyServices(b *testing.B) {
	const batch = 128
	change := func(b *testing.B, services int, timed bool) (put, compile time.Duration) {
		b.StopTimer()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		inst := func(s, port int) cache.Instance {
			return cache.Instance{Service: fmt.Sprint("svc-", s), ID: "i0", Address: fmt.Sprintf("10.%d.%d.%d", s/65536, s/256%256, s%256), Port: uint16(port), Priority: 1, Weight: 1}
		}
		insts := make([]cache.Instance, services)
		for s := range insts {
			insts[s] = inst(s, 8000)
		}
		tb, h := runningTable(b, ctx, insts)
		if timed {
			b.StartTimer()
		}
		for n := range b.N {
			start := time.Now()
			for k := range batch {
				tb.Put("etcd", inst((n*batch+k)*7919%services, 9000+n%1000))
			}
			if err := tb.Sync(ctx); err != nil {
				b.Fatal(err)
			}
			put += time.Since(start)
			start = time.Now()
			h.Update(tb.Snapshot())
			compile += time.Since(start)
		}
		b.StopTimer()
		return put, compile
	}
	b.Run("services=100000", func(b *testing.B) {
		smallPut, smallCompile := change(b, 1000, false)
		put, compile := change(b, 100000, true)
		perOp := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(b.N) }
		b.ReportMetric(perOp(put), "put-us")
		b.ReportMetric(perOp(compile), "compile-us")
		b.ReportMetric(float64(put+compile)/float64(smallPut+smallCompile), "x-small")
	})
}

// runningTable returns a table that publishes as the daemon's does (Run,
// until ctx ends), holding insts, and a handler on its snapshot.
func runningTable(b *testing.B, ctx context.Context, insts []cache.Instance) (*cache.Table, *Handler) {
	tb := cache.NewTable(quiet)
	tb.AddSource("etcd", testZone)
	go tb.Run(ctx)
	tb.Replace("etcd", insts)
	if err := tb.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	h := NewHandler(Options{Zone: testZone, TTL: 5 * time.Second}, nil, quiet)
	h.Update(tb.Snapshot())
	return tb, h
}

// BenchmarkNewServices is what a burst into separate services costs
// discodns in process, per service: 20,000 new one-instance services
// written 128 at a time (an etcd transaction's worth), each batch
// published and compiled, from an empty table. In the skydns layout each
// key is split and its record decoded as the etcd source does; in the
// discox layout the instance is made directly. cpu-ns/service is the
// process's CPU (the collector's included, which runs beside the
// benchmark), ns/service the time.
//
//	go test ./dnsserver -run '^$' -bench NewServices -benchmem -benchtime 5x
func BenchmarkNewServices(b *testing.B) {
	const n, batch = 20000, 128
	split := etcd.SkyDNSSplitter("/skydns/", testZone)
	layouts := []struct {
		name     string
		instance func(it, i int, addr string) cache.Instance
	}{
		{"skydns", func(it, i int, addr string) cache.Instance {
			svc, id, err := split(fmt.Sprintf("/skydns/internal/svc/d%d-%d/i%d", it, i, i))
			if err != nil {
				b.Fatal(err)
			}
			in, err := etcd.DecodeSkyDNS(svc, id, fmt.Appendf(nil, `{"host":%q,"port":80}`, addr))
			if err != nil {
				b.Fatal(err)
			}
			return in
		}},
		{"discox", func(it, i int, addr string) cache.Instance {
			return cache.Instance{Service: fmt.Sprintf("d%d-%d", it, i), ID: addr + ":80", Address: addr, Port: 80}
		}},
	}
	for _, l := range layouts {
		b.Run(l.name, func(b *testing.B) {
			cpu0 := processCPU(b)
			for it := range b.N {
				b.StopTimer()
				ctx, cancel := context.WithCancel(context.Background())
				tb, h := runningTable(b, ctx, nil)
				b.StartTimer()
				for i := range n {
					tb.Put("etcd", l.instance(it, i, fmt.Sprintf("10.%d.%d.%d", 100+i/62500, i/250%250, i%250+1)))
					if (i+1)%batch == 0 || i == n-1 {
						if err := tb.Sync(ctx); err != nil {
							b.Fatal(err)
						}
						h.Update(tb.Snapshot())
					}
				}
				if cs := h.idx.Load().service(fmt.Sprintf("d%d-%d.%s", it, n-1, testZone)); cs == nil {
					b.Fatal("the last service is not compiled")
				}
				b.StopTimer()
				cancel()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/service")
			b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N*n), "cpu-ns/service")
		})
	}
}

// processCPU returns the CPU time the process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
