package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sys/unix"
)

// BenchmarkChurn measures the queries per second discodns answers (dnsperf,
// half A and half SRV over UDP with EDNS, 100 services of 10 instances, as
// BenchmarkCompareDNS) on a static table and while 100 and 1,000 changes
// per second land in 10 other services that no query asks. Each change
// publishes a snapshot; what a change did not touch keeps its compiled
// and packed answers, so the figures under churn should stay near the
// static one (target: 0.9x at 1,000 changes per second).
//
// On a small machine the embedded etcd and the writers share the cores
// with discodns and dnsperf, so a fourth row, the bystander, writes the
// same 1,000 changes per second to keys outside discodns's prefix: etcd
// and the writers do the same work, discodns none. churn1000/bystander is
// what discodns's own handling of the changes costs its queries, whatever
// the machine lends etcd. The rows take turns, twice, and the better of
// each is reported. Before them, 1,000 changes per second land with no
// queries at all, and discodns's CPU time over that run per change written
// is what a change costs it (cpu-us-per-change). Last, apart: static and
// churn 1,000/s again with the registry on a CPU of its own (see below),
// which is what a deployment sees.
//
//	go test ./test -run '^$' -bench Churn -benchtime 1x
func BenchmarkChurn(b *testing.B) {
	seconds := 10
	if s := os.Getenv("DISCODNS_BENCH_SECONDS"); s != "" {
		seconds, _ = strconv.Atoi(s)
	}
	e := startCompareEtcd(b)
	d := startDiscodns(b, skydnsConfig(e.endpoint()))
	for s := range compareServices {
		eventually(b, 30*time.Second, "svc-"+strconv.Itoa(s)+" answered", func() error { return checkAnswers(d.dns, compareZone, s) })
	}
	var q strings.Builder
	for s := range compareServices {
		fmt.Fprintf(&q, "svc-%d.%s A\nsvc-%d.%s SRV\n", s, compareZone, s, compareZone)
	}
	queries := filepath.Join(b.TempDir(), "queries")
	os.WriteFile(queries, []byte(q.String()), 0o644)

	type row struct {
		name      string
		rate      int
		bystander bool
		qps       float64 // the better run
		written   float64 // changes per second, of the last run
	}
	rows := []*row{{name: "static"}, {name: "churn 100/s", rate: 100}, {name: "churn 1000/s", rate: 1000}, {name: "bystander 1000/s", rate: 1000, bystander: true}}
	static, churn1000, bystander := rows[0], rows[2], rows[3]
	// measure runs dnsperf against each row in turn, twice, with the
	// row's churn written meanwhile, and keeps the better of each; dnsperf
	// runs on cpus, or where the test does for "".
	measure := func(rows []*row, cpus string) {
		for range 2 {
			for _, r := range rows {
				var stop func() float64
				if r.rate > 0 {
					stop = churnWriters(b, e, r.rate, r.bystander)
				}
				qps, _ := dnsperfQPSOn(b, cpus, "discodns, "+r.name, d.dns, queries, seconds)
				if stop != nil {
					r.written = stop()
				}
				r.qps = max(r.qps, qps)
			}
		}
	}
	var cpuPerChange float64 // µs
	for b.Loop() {
		cpu, start := d.cpu(), time.Now()
		stop := churnWriters(b, e, 1000, false)
		time.Sleep(time.Duration(seconds) * time.Second)
		written := stop() * time.Since(start).Seconds()
		cpuPerChange = float64((d.cpu() - cpu).Microseconds()) / written
		measure(rows, "")
	}
	for _, r := range rows {
		fmt.Printf("%-16s (%4.0f written/s): %6.0f qps, %.2fx static, %.2fx bystander\n",
			r.name, r.written, r.qps, r.qps/static.qps, r.qps/bystander.qps)
	}
	fmt.Printf("discodns CPU per change, 1,000 changes/s and no queries: %.0f µs\n", cpuPerChange)
	b.ReportMetric(static.qps, "static-qps")
	b.ReportMetric(rows[1].qps/static.qps, "churn100-x-static")
	b.ReportMetric(churn1000.qps/static.qps, "churn1000-x-static")
	b.ReportMetric(bystander.qps/static.qps, "bystander-x-static")
	b.ReportMetric(churn1000.qps/bystander.qps, "churn1000-x-bystander")
	b.ReportMetric(cpuPerChange, "cpu-us-per-change")

	// Apart: the registry on a CPU of its own, as in a deployment, where
	// etcd runs on other machines and discodns shares its host with the
	// programs that query it. discodns restarts on the host's CPUs (so
	// that it sizes its sockets and GOMAXPROCS to them), and dnsperf runs
	// there too. The static and churn rows then give discodns and dnsperf
	// the same CPUs, and their ratio is what handling the changes costs
	// discodns's answers.
	host, ok := apart(b, func() {
		d.restart()
		d.waitReady()
	})
	if !ok {
		return
	}
	for s := range compareServices {
		eventually(b, 30*time.Second, "svc-"+strconv.Itoa(s)+" answered after the restart", func() error { return checkAnswers(d.dns, compareZone, s) })
	}
	apartRows := []*row{{name: "apart static"}, {name: "apart churn 1000/s", rate: 1000}}
	measure(apartRows, host)
	for _, r := range apartRows {
		fmt.Printf("%-18s (%4.0f written/s): %6.0f qps, %.2fx apart static\n", r.name, r.written, r.qps, r.qps/apartRows[0].qps)
	}
	b.ReportMetric(apartRows[0].qps, "apart-static-qps")
	b.ReportMetric(apartRows[1].qps/apartRows[0].qps, "apart-churn1000-x-static")
}

// apart runs start (which starts discodns) with the test process on the
// host's CPUs, all but the last, so that what it starts inherits them,
// then moves the test process, which holds the embedded etcd and the
// writers, to the last CPU until the benchmark ends: the registry apart,
// as in a deployment. It returns the host's CPUs as a taskset list, or
// false, starting nothing, on a machine of one CPU.
func apart(b *testing.B, start func()) (host string, ok bool) {
	b.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		b.Fatalf("the test's CPUs: %v", err)
	}
	var cpus []string // the CPUs the test may use, as the kernel numbers them
	for c := 0; len(cpus) < set.Count(); c++ {
		if set.IsSet(c) {
			cpus = append(cpus, strconv.Itoa(c))
		}
	}
	if len(cpus) < 2 {
		return "", false
	}
	host = strings.Join(cpus[:len(cpus)-1], ",")
	pin(b, os.Getpid(), host)
	b.Cleanup(func() { pin(b, os.Getpid(), strings.Join(cpus, ",")) })
	start()
	pin(b, os.Getpid(), cpus[len(cpus)-1])
	return host, true
}

// pin restricts every thread of process pid, and the processes it starts
// from then on, to cpus (a taskset list such as "0-2").
func pin(b *testing.B, pid int, cpus string) {
	b.Helper()
	if out, err := exec.Command(need(b, "taskset"), "-a", "-p", "-c", cpus, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		b.Fatalf("taskset %s %d: %v: %s", cpus, pid, err, out)
	}
}

// churnWriters is churn at perSecond changes per second, spread over
// enough writers that etcd's latency does not cap the rate.
func churnWriters(b *testing.B, e *etcd, perSecond int, bystander bool) (stop func() float64) {
	writers := max(perSecond/100, 1)
	stops := make([]func() float64, writers)
	for w := range stops {
		stops[w] = churn(b, e, perSecond/writers, bystander)
	}
	return func() float64 {
		total := 0.0
		for _, s := range stops {
			total += s()
		}
		return total
	}
}

// BenchmarkChangeAtScale measures the time from an etcd write (a new
// instance in an existing service, discox layout) to the first DNS answer
// that shows it, on tables of 1,000 and 100,000 instances (services of 10),
// with the ratio of the medians: a change should cost what it changed,
// not the size of the table (target: 1x). The two tables live in two
// etcds, so it also reports etcd's part: the put until it returned.
//
//	go test ./test -run '^$' -bench ChangeAtScale -benchtime 50x
func BenchmarkChangeAtScale(b *testing.B) {
	const perService = 10
	sizes := []int{1000, 100000}
	took := make([][]time.Duration, len(sizes))
	puts := make([][]time.Duration, len(sizes)) // etcd's part: the put until it returns
	type run struct {
		d   *discodns
		e   *etcd
		svc int
	}
	runs := make([]run, len(sizes))
	for i, size := range sizes {
		e := startEtcd(b)
		loadDiscox(b, e, size/perService, perService)
		d := launchDiscodns(b, discoxConfig(e.endpoint()))
		last := fmt.Sprintf("svc-%d.svc.internal.", size/perService-1)
		eventually(b, 2*time.Minute, last+" answered", func() error {
			m, err := d.exchange(last, dns.TypeA, "udp")
			if err != nil || len(m.Answer) != perService {
				return fmt.Errorf("%v %v", m, err)
			}
			return nil
		})
		runs[i] = run{d, e, size / perService}
	}
	for n := 0; b.Loop(); n++ {
		for i, r := range runs {
			s := n % r.svc
			name := fmt.Sprintf("svc-%d.svc.internal.", s)
			addr := fmt.Sprintf("10.250.%d.%d", n/250%250, n%250+1)
			start := time.Now()
			r.e.put(fmt.Sprintf("/services/svc-%d/%s:80", s, addr), `{}`)
			puts[i] = append(puts[i], time.Since(start))
			for !answersAddr(r.d, name, addr) {
				if time.Since(start) > 30*time.Second {
					b.Fatalf("%s not answered within 30 s", addr)
				}
				time.Sleep(200 * time.Microsecond)
			}
			took[i] = append(took[i], time.Since(start))
		}
	}
	for i, size := range sizes {
		fmt.Printf("%d instances: write to answer p50 %v, p99 %v; of which the etcd put p50 %v\n",
			size, percentile(took[i], 50), percentile(took[i], 99), percentile(puts[i], 50))
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(percentile(took[0], 50)), "p50-1k-ms")
	b.ReportMetric(ms(percentile(took[1], 50)), "p50-100k-ms")
	b.ReportMetric(ms(percentile(took[1], 99)), "p99-100k-ms")
	b.ReportMetric(float64(percentile(took[1], 50))/float64(percentile(took[0], 50)), "p50-100k-x-1k")
	b.ReportMetric(ms(percentile(puts[0], 50)), "put-p50-1k-ms")
	b.ReportMetric(ms(percentile(puts[1], 50)), "put-p50-100k-ms")
}

// answersAddr reports whether an A query for name answers addr.
func answersAddr(d *discodns, name, addr string) bool {
	m, err := d.exchange(name, dns.TypeA, "udp")
	if err != nil {
		return false
	}
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok && a.A.String() == addr {
			return true
		}
	}
	return false
}

// discoxConfig is a configuration of one etcd source in the discox layout.
func discoxConfig(endpoint string) string {
	return fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]
[http]
listen = "{{HTTP}}"
[[source]]
type = "etcd"
endpoints = [%q]
`, endpoint)
}

// loadDiscox writes services of perService instances into e in the discox
// layout under /services, in transactions of 128 keys.
func loadDiscox(b *testing.B, e *etcd, services, perService int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var ops []clientv3.Op
	flush := func() {
		if len(ops) == 0 {
			return
		}
		if _, err := e.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
		ops = ops[:0]
	}
	for s := range services {
		for i := range perService {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("/services/svc-%d/10.%d.%d.%d:%d", s, i, s/250, s%250+1, 8000+i), `{"weight":5}`))
			if len(ops) == 128 {
				flush()
			}
		}
	}
	flush()
}
