package test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"
)

// burstWait bounds every wait of the burst benchmarks: generous, since
// before batching a burst of 20,000 into one service took minutes.
const burstWait = 10 * time.Minute

// TestBurstIntoOneService writes 20,000 instances into one service, as
// fast as etcd takes them, then deletes them one by one, each time with
// an unrelated change written right after: the burst, and the unrelated
// change, are answered within a limit that is generous for a burst that
// costs what it changed (about a second here) and far short of one that
// rebuilds its service per event (minutes).
func TestBurstIntoOneService(t *testing.T) {
	const n = 20000
	const within = 3 * time.Minute
	l := burstLayouts[0]
	e := startEtcd(t)
	d := startDiscodns(t, l.config(e.endpoint()))
	big := func(int) string { return "big" }
	keys := make([]string, n)
	for i := range keys {
		keys[i] = l.key(big(i), i)
	}
	commitOps(t, e, keys, func(i int, k string) clientv3.Op { return clientv3.OpPut(k, l.value(i)) })
	e.put(l.key("small", 0), l.value(0))
	e.put(l.key("small", 1), l.value(1))
	answers := func(name, addr string, present bool) func() error {
		return func() error {
			m, err := d.exchange(name, dns.TypeA, "udp")
			if err != nil {
				return err
			}
			has := false
			for _, rr := range m.Answer {
				if a, ok := rr.(*dns.A); ok && a.A.String() == addr {
					has = true
				}
			}
			if has != present {
				return fmt.Errorf("answer %v", m.Answer)
			}
			return nil
		}
	}
	eventually(t, within, "the unrelated instance written after the burst is answered", answers(l.fqdn("small", 1), burstAddr(1), true))
	eventually(t, within, "the last instance of the burst is answered", answers(l.fqdn("big", n-1), burstAddr(n-1), true))
	eventually(t, within, "the service has every instance", func() error {
		svcs, err := d.services()
		if err != nil {
			return err
		}
		if got := len(svcs["big.svc.internal."]); got != n {
			return fmt.Errorf("%d instances", got)
		}
		return nil
	})
	commitOps(t, e, keys, func(_ int, k string) clientv3.Op { return clientv3.OpDelete(k) })
	e.del(l.key("small", 1))
	eventually(t, within, "the unrelated instance deleted after the service is gone", answers(l.fqdn("small", 1), burstAddr(1), false))
	eventually(t, within, "the service deleted instance by instance is gone", func() error {
		m, err := d.exchange("big.svc.internal.", dns.TypeA, "udp")
		if err != nil {
			return err
		}
		if m.Rcode != dns.RcodeNameError {
			return fmt.Errorf("rcode %s, %d answers", dns.RcodeToString[m.Rcode], len(m.Answer))
		}
		return nil
	})
	if err := answers(l.fqdn("small", 0), burstAddr(0), true)(); err != nil {
		t.Fatalf("the other unrelated instance: %v", err)
	}
	if w := d.gauge("discodns_cache_writes_total"); w < 2*n {
		t.Fatalf("discodns_cache_writes_total = %v, want at least %d", w, 2*n)
	}
}

// burstLayout is how a burst writes instance i of service svc into etcd,
// and the DNS name that answers it.
type burstLayout struct {
	name   string
	prefix string // what discodns watches
	config func(endpoint string) string
	key    func(svc string, i int) string
	value  func(i int) string
	fqdn   func(svc string, i int) string
}

var burstLayouts = []burstLayout{
	{
		// discox: each event is a Put or Delete of one instance.
		name:   "discox",
		prefix: "/services/",
		config: func(endpoint string) string {
			return fmt.Sprintf("[dns]\nlisten = [\"{{DNS}}\"]\n[http]\nlisten = \"{{HTTP}}\"\n[[source]]\ntype = \"etcd\"\nendpoints = [%q]\n", endpoint)
		},
		key:   func(svc string, i int) string { return fmt.Sprintf("/services/%s/%s:80", svc, burstAddr(i)) },
		value: func(int) string { return "" },
		fqdn: func(svc string, i int) string {
			return fmt.Sprintf("%s-80.%s.svc.internal.", strings.ReplaceAll(burstAddr(i), ".", "-"), svc)
		},
	},
	{
		// skydns: weights are relative within a service, so each event
		// rewrites its service (the watcher's rescaling).
		name:   "skydns",
		prefix: "/skydns/",
		config: skydnsConfig,
		key:    func(svc string, i int) string { return fmt.Sprintf("/skydns/internal/svc/%s/i%d", svc, i) },
		value:  func(i int) string { return fmt.Sprintf(`{"host":%q,"port":80}`, burstAddr(i)) },
		fqdn:   func(svc string, i int) string { return fmt.Sprintf("i%d.%s.svc.internal.", i, svc) },
	},
}

// BenchmarkBurst writes bursts into etcd (transactions of 128 keys, as
// fast as etcd takes them), in the discox and the skydns layout, and
// measures discodns through DNS:
//
//   - n=N: N instances into one service, and N one-instance services, each
//     timed from the first write to the DNS answer of the last instance
//     written (answers follow etcd's order, so all are served then);
//     one/distinct is their ratio. While each burst is being served,
//     unrelated changes are written one after the other, each timed from
//     its write to its answer (p50, p99, max): behind the burst into
//     distinct services, they show the wait for the writes etcd ordered
//     before them, which discodns cannot skip. Each wait is split in two:
//     etcd's (the Put's own latency, behind the burst's transactions) and
//     discodns's (from the Put's return to the answer), both as maxima.
//     A plain etcd watcher of discodns's prefix, on its own connection,
//     notes when each change reached it: unrelated-watcher is etcd's
//     delivery behind the burst, which no watcher can shorten, and
//     beyond-watcher is what discodns adds to it (from the watcher's
//     receipt to discodns's answer; p50, p99, max).
//
//     Each iteration then deletes its bursts, so that every one starts
//     from the same table.
//
//     distinct-cpu-x-test is the CPU discodns spent over the bursts into
//     distinct services against what the test process spent over them:
//     etcd (embedded) committing and delivering the writes, the writer,
//     and the plain watcher and unrelated writes beside. On cores shared
//     with etcd, discodns keeps up with a burst only when it spends less
//     than etcd does; above 1, changes written near a burst's end wait for
//     the backlog it leaves.
//
//   - delete-6000: a 6,000-instance service deleted instance by instance,
//     then one instance of an unrelated service: the time from that
//     delete to the answer without it.
//
//     go test ./test -run '^$' -bench Burst -benchtime 1x -timeout 30m
func BenchmarkBurst(b *testing.B) {
	for _, l := range burstLayouts {
		for _, n := range []int{4000, 20000} {
			b.Run(fmt.Sprintf("%s/n=%d", l.name, n), func(b *testing.B) {
				e := startEtcd(b)
				d := startDiscodns(b, l.config(e.endpoint()))
				a := watchArrivals(b, e, l.prefix)
				var one, distinct time.Duration
				var unrelated, unrelatedDistinct waits
				var daemonCPU, testCPU time.Duration
				for it := 0; b.Loop(); it++ {
					var took time.Duration
					distinctSvc := func(i int) string { return fmt.Sprintf("d%d-%d", it, i) }
					oneSvc := func(int) string { return fmt.Sprintf("one%d", it) }
					d0, t0 := d.cpu(), selfCPU(b)
					unrelatedDistinct.add(duringBurst(b, e, d, a, l, fmt.Sprintf("ud%d", it), func() {
						took = burstInto(b, e, d, l, distinctSvc, n)
					}))
					daemonCPU += d.cpu() - d0
					testCPU += selfCPU(b) - t0
					distinct += took
					unrelated.add(duringBurst(b, e, d, a, l, fmt.Sprintf("u%d", it), func() {
						took = burstInto(b, e, d, l, oneSvc, n)
					}))
					one += took
					// Every iteration starts from the same table.
					removeBurst(b, e, d, l, distinctSvc, n)
					removeBurst(b, e, d, l, oneSvc, n)
				}
				b.ReportMetric(float64(one.Milliseconds())/float64(b.N), "one-ms")
				b.ReportMetric(float64(distinct.Milliseconds())/float64(b.N), "distinct-ms")
				b.ReportMetric(float64(one)/float64(distinct), "one/distinct")
				b.ReportMetric(float64(daemonCPU)/float64(testCPU), "distinct-cpu-x-test")
				b.ReportMetric(float64(len(unrelated.total))/float64(b.N), "unrelated-changes")
				b.ReportMetric(ms(percentile(unrelated.total, 50)), "unrelated-p50-ms")
				b.ReportMetric(ms(percentile(unrelated.total, 99)), "unrelated-p99-ms")
				b.ReportMetric(ms(percentile(unrelated.total, 100)), "unrelated-max-ms")
				b.ReportMetric(ms(percentile(unrelated.put, 100)), "unrelated-etcd-max-ms")
				b.ReportMetric(ms(percentile(unrelated.discodns, 100)), "unrelated-discodns-max-ms")
				b.ReportMetric(ms(percentile(unrelated.watcher, 100)), "unrelated-watcher-max-ms")
				b.ReportMetric(ms(percentile(unrelated.beyond, 50)), "unrelated-beyond-watcher-p50-ms")
				b.ReportMetric(ms(percentile(unrelated.beyond, 99)), "unrelated-beyond-watcher-p99-ms")
				b.ReportMetric(ms(percentile(unrelated.beyond, 100)), "unrelated-beyond-watcher-max-ms")
				// The same during the burst into distinct services: what
				// etcd's ordering of the writes costs whatever discodns does.
				b.ReportMetric(ms(percentile(unrelatedDistinct.total, 50)), "unrelated-in-distinct-p50-ms")
				b.ReportMetric(ms(percentile(unrelatedDistinct.total, 100)), "unrelated-in-distinct-max-ms")
				b.ReportMetric(ms(percentile(unrelatedDistinct.discodns, 100)), "unrelated-in-distinct-discodns-max-ms")
				b.ReportMetric(ms(percentile(unrelatedDistinct.beyond, 100)), "unrelated-in-distinct-beyond-watcher-max-ms")
			})
		}
		b.Run(l.name+"/delete-6000", func(b *testing.B) {
			const n = 6000
			e := startEtcd(b)
			d := startDiscodns(b, l.config(e.endpoint()))
			var took []time.Duration
			for it := 0; b.Loop(); it++ {
				big := func(int) string { return fmt.Sprintf("big%d", it) }
				burstInto(b, e, d, l, big, n)
				small := fmt.Sprintf("small%d", it)
				e.put(l.key(small, 0), l.value(0))
				e.put(l.key(small, 1), l.value(1))
				waitAnswer(b, d, l.fqdn(small, 1), burstAddr(1), true, time.Now())
				keys := make([]string, n)
				for i := range keys {
					keys[i] = l.key(big(i), i)
				}
				commitOps(b, e, keys, func(_ int, k string) clientv3.Op { return clientv3.OpDelete(k) })
				start := time.Now()
				e.del(l.key(small, 1))
				took = append(took, waitAnswer(b, d, l.fqdn(small, 1), burstAddr(1), false, start))
			}
			b.ReportMetric(ms(percentile(took, 50)), "unrelated-delete-ms")
		})
	}
}

// burstInto writes instances 0 to n-1, instance i into service svc(i), in
// transactions of 128, and returns the time from the first write until
// the last one is answered.
func burstInto(b *testing.B, e *etcd, d *discodns, l burstLayout, svc func(int) string, n int) time.Duration {
	b.Helper()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = l.key(svc(i), i)
	}
	start := time.Now()
	commitOps(b, e, keys, func(i int, k string) clientv3.Op { return clientv3.OpPut(k, l.value(i)) })
	return waitAnswer(b, d, l.fqdn(svc(n-1), n-1), burstAddr(n-1), true, start)
}

// removeBurst deletes what burstInto wrote and waits until the last
// instance is no longer answered.
func removeBurst(b *testing.B, e *etcd, d *discodns, l burstLayout, svc func(int) string, n int) {
	b.Helper()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = l.key(svc(i), i)
	}
	commitOps(b, e, keys, func(_ int, k string) clientv3.Op { return clientv3.OpDelete(k) })
	waitAnswer(b, d, l.fqdn(svc(n-1), n-1), burstAddr(n-1), false, time.Now())
}

// selfCPU returns the CPU time the test process has used so far.
func selfCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// burstAddr is the address of the ith instance of a burst.
func burstAddr(i int) string { return fmt.Sprintf("10.%d.%d.%d", 100+i/62500, i/250%250, i%250+1) }

// commitOps applies op to every key in etcd transactions of 128.
func commitOps(b testing.TB, e *etcd, keys []string, op func(int, string) clientv3.Op) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), burstWait)
	defer cancel()
	var ops []clientv3.Op
	for j, k := range keys {
		ops = append(ops, op(j, k))
		if len(ops) == 128 || j == len(keys)-1 {
			if _, err := e.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
}

// waitAnswer polls name (A, UDP) until its answer holds addr (present) or
// no longer does (!present), and returns the time since start.
func waitAnswer(b *testing.B, d *discodns, name, addr string, present bool, start time.Time) time.Duration {
	b.Helper()
	took, err := answered(d, name, addr, present, start)
	if err != nil {
		b.Fatal(err)
	}
	return took
}

// answered is waitAnswer for any goroutine: it returns an error instead
// of failing the benchmark.
func answered(d *discodns, name, addr string, present bool, start time.Time) (time.Duration, error) {
	for {
		m, err := d.exchange(name, dns.TypeA, "udp")
		if err == nil {
			has := false
			for _, rr := range m.Answer {
				if a, ok := rr.(*dns.A); ok && a.A.String() == addr {
					has = true
				}
			}
			if has == present {
				return time.Since(start), nil
			}
		}
		if time.Since(start) > burstWait {
			return 0, fmt.Errorf("%s: answer with %s present=%v not within %v: %v %v", name, addr, present, burstWait, m, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// waits are the times unrelated changes took to be answered: in all, in
// etcd (the Put), in discodns (from the Put's return to the answer), until
// a plain etcd watcher of the same prefix received the change, and in
// discodns beyond that watcher (from its receipt to the answer).
type waits struct{ total, put, discodns, watcher, beyond []time.Duration }

func (w *waits) add(o waits) {
	w.total = append(w.total, o.total...)
	w.put = append(w.put, o.put...)
	w.discodns = append(w.discodns, o.discodns...)
	w.watcher = append(w.watcher, o.watcher...)
	w.beyond = append(w.beyond, o.beyond...)
}

// arrivals is a plain etcd watch of a prefix, on its own connection as
// discodns's is, that notes when each key's event arrived: the reference
// for how long etcd took to deliver a change to any watcher, so the
// benchmark can tell etcd's delivery from discodns's own work.
type arrivals struct {
	mu   sync.Mutex
	at   map[string]time.Time
	more chan struct{} // closed and renewed at each response
}

// watchArrivals starts watching prefix on e; it stops with the benchmark.
func watchArrivals(b *testing.B, e *etcd, prefix string) *arrivals {
	b.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.srv.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &arrivals{at: map[string]time.Time{}, more: make(chan struct{})}
	ch := cli.Watch(ctx, prefix, clientv3.WithPrefix())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for resp := range ch {
			now := time.Now()
			a.mu.Lock()
			for _, ev := range resp.Events {
				if _, ok := a.at[string(ev.Kv.Key)]; !ok {
					a.at[string(ev.Kv.Key)] = now
				}
			}
			close(a.more)
			a.more = make(chan struct{})
			a.mu.Unlock()
		}
	}()
	b.Cleanup(func() {
		cancel()
		<-done
		cli.Close()
	})
	return a
}

// arrived returns when key's first event reached the watcher, waiting
// for it at most burstWait.
func (a *arrivals) arrived(key string) (time.Time, error) {
	deadline := time.After(burstWait)
	for {
		a.mu.Lock()
		t, ok := a.at[key]
		more := a.more
		a.mu.Unlock()
		if ok {
			return t, nil
		}
		select {
		case <-more:
		case <-deadline:
			return time.Time{}, fmt.Errorf("the plain watcher did not see %s within %v", key, burstWait)
		}
	}
}

// duringBurst runs burst, and from its start until it returns writes one
// unrelated instance after another (each in its own service named from
// prefix), returning the time each took to be answered, and, through a,
// to reach a plain watcher.
func duringBurst(b *testing.B, e *etcd, d *discodns, a *arrivals, l burstLayout, prefix string, burst func()) waits {
	b.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	var took waits
	var keys []string
	var starts []time.Time
	var failed error
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), burstWait)
		defer cancel()
		for k := 0; ; k++ {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			svc := fmt.Sprintf("%s-%d", prefix, k)
			key := l.key(svc, k)
			start := time.Now()
			if _, err := e.cli.Put(ctx, key, l.value(k)); err != nil {
				failed = err
				return
			}
			put := time.Since(start)
			t, err := answered(d, l.fqdn(svc, k), burstAddr(k), true, start)
			if err != nil {
				failed = err
				return
			}
			keys, starts = append(keys, key), append(starts, start)
			took.total = append(took.total, t)
			took.put = append(took.put, put)
			took.discodns = append(took.discodns, t-put)
		}
	})
	burst()
	close(done)
	wg.Wait()
	if failed != nil {
		b.Fatal(failed)
	}
	for i, key := range keys {
		at, err := a.arrived(key)
		if err != nil {
			b.Fatal(err)
		}
		seen := at.Sub(starts[i])
		took.watcher = append(took.watcher, seen)
		took.beyond = append(took.beyond, took.total[i]-seen)
	}
	return took
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
