package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkChurn measures the queries per second discodns answers (dnsperf,
// half A and half SRV over UDP with EDNS, 100 services of 10 instances, as
// BenchmarkCompareDNS) on a static table and while 100 and 1,000 changes
// per second land in 10 other services that no query asks. Each change
// publishes a snapshot; what a change did not touch keeps its compiled
// and packed answers, so the figures under churn should stay near the
// static one (target: 0.9x at 1,000 changes per second). The runs take
// turns, twice, and the better of each is reported. On a small machine the
// embedded etcd and the writers share the cores with discodns and dnsperf,
// so the benchmark also reports what discodns itself spends on a change:
// its CPU time beyond what its queries cost at the static rate, per
// change written.
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

	rates := []int{0, 100, 1000}
	best := make([]float64, len(rates))
	written := make([]float64, len(rates))
	cpuPerChange := make([]float64, len(rates)) // µs, of the last run
	var cpuPerQuery float64                     // seconds, static
	for b.Loop() {
		for range 2 {
			for i, rate := range rates {
				var stop func() float64
				cpu, start := d.gauge("process_cpu_seconds_total"), time.Now()
				if rate > 0 {
					stop = churnWriters(b, e, rate)
				}
				qps, _ := dnsperfQPS(b, fmt.Sprintf("discodns, churn %d/s", rate), d.dns, queries, seconds)
				if stop != nil {
					written[i] = stop()
				}
				elapsed := time.Since(start).Seconds()
				cpu = d.gauge("process_cpu_seconds_total") - cpu
				if rate == 0 {
					cpuPerQuery = cpu / (qps * elapsed)
				} else {
					cpuPerChange[i] = (cpu - cpuPerQuery*qps*elapsed) / (written[i] * elapsed) * 1e6
				}
				best[i] = max(best[i], qps)
			}
		}
	}
	for i, rate := range rates {
		fmt.Printf("churn %4d/s (%.0f written/s): %.0f qps, %.2fx static, discodns CPU per change %.0f µs\n",
			rate, written[i], best[i], best[i]/best[0], cpuPerChange[i])
	}
	b.ReportMetric(best[0], "static-qps")
	b.ReportMetric(best[1]/best[0], "churn100-x-static")
	b.ReportMetric(best[2]/best[0], "churn1000-x-static")
	b.ReportMetric(cpuPerChange[2], "cpu-us-per-change")
}

// churnWriters is churn at perSecond changes per second, spread over
// enough writers that etcd's latency does not cap the rate.
func churnWriters(b *testing.B, e *etcd, perSecond int) (stop func() float64) {
	writers := max(perSecond/100, 1)
	stops := make([]func() float64, writers)
	for w := range stops {
		stops[w] = churn(b, e, perSecond/writers)
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
