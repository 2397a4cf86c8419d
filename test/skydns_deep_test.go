package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// skyDeepServices is how many services each table of BenchmarkSkyDNSDeep
// holds, with two instances each.
const skyDeepServices = 1000

// skyDeepName is service i of the deep table: five levels below the zone,
// <svc>.<team>.<cluster>.<env>.<region>, so that the two regions are the
// table's two largest skydns services.
func skyDeepName(i int, zone string) string {
	return fmt.Sprintf("svc%d.team%d.c%d.%s.r%d.%s", i%5, i/5%5, i/25%4,
		[]string{"prod", "stage", "dev", "qa", "perf"}[i/100%5], i/500, zone)
}

// BenchmarkSkyDNSDeep compares a deep skydns table (1,000 services five
// levels below the zone) with a flat one (1,000 services right below it),
// both in one discodns on one etcd: the time from an etcd write (a new
// instance) to the first answer that shows it, and dnsperf's queries per
// second over the services' names (the mean of two runs each, in the order
// flat, deep, deep, flat). It reports each figure and the ratio deep/flat,
// which is 1 when depth costs nothing.
//
//	go test ./test -run '^$' -bench SkyDNSDeep -benchtime 100x
func BenchmarkSkyDNSDeep(b *testing.B) {
	const zone = "skydns.test."
	seconds := 5
	if s := os.Getenv("DISCODNS_BENCH_SECONDS"); s != "" {
		seconds, _ = strconv.Atoi(s)
	}
	e := startEtcd(b)
	tables := []struct {
		name  string
		names []string
		took  []time.Duration
	}{{name: "flat"}, {name: "deep"}}
	for i := range skyDeepServices {
		tables[0].names = append(tables[0].names, fmt.Sprintf("svc%d.%s", i, zone))
		tables[1].names = append(tables[1].names, skyDeepName(i, zone))
		for t := range tables {
			for inst := range 2 {
				e.put(skyKey(fmt.Sprintf("i%d.%s", inst, tables[t].names[i])),
					fmt.Sprintf(`{"host":"10.%d.%d.%d","port":80}`, 2*t+inst+1, i/250, i%250+1))
			}
		}
	}
	d := startDiscodns(b, skydnsZoneConfig(e.endpoint(), zone))
	shows := func(name, addr string) bool { return answersAddr(d, name, addr) }
	eventually(b, 60*time.Second, "both tables answered", func() error {
		for t := range tables {
			last := tables[t].names[skyDeepServices-1]
			if !shows(last, fmt.Sprintf("10.%d.%d.%d", 2*t+2, (skyDeepServices-1)/250, (skyDeepServices-1)%250+1)) {
				return fmt.Errorf("%s does not answer yet", last)
			}
		}
		return nil
	})

	for n := 0; b.Loop(); n++ {
		for k := range tables {
			t := (k + n) % len(tables) // each table first in turn
			name := tables[t].names[n*7%skyDeepServices]
			addr := fmt.Sprintf("10.%d.%d.%d", 100+t, n/250%250, n%250+1) // unique to this table and write
			shows(name, "10.0.0.0")                                       // the answer before, cached
			start := time.Now()
			e.put(skyKey(fmt.Sprintf("w%d.%s", n, name)), fmt.Sprintf(`{"host":%q,"port":80}`, addr))
			for !shows(name, addr) {
				if time.Since(start) > 30*time.Second {
					b.Fatalf("%s: %s not answered within 30 s", tables[t].name, addr)
				}
				time.Sleep(time.Millisecond)
			}
			tables[t].took = append(tables[t].took, time.Since(start))
		}
	}
	p50 := func(t int) float64 { return float64(percentile(tables[t].took, 50).Microseconds()) / 1000 }
	b.ReportMetric(p50(0), "flat-p50-ms")
	b.ReportMetric(p50(1), "deep-p50-ms")
	b.ReportMetric(p50(1)/p50(0), "deep/flat-p50")

	var files [2]string
	for t := range tables {
		var q strings.Builder
		for _, name := range tables[t].names {
			fmt.Fprintf(&q, "%s A\n", name)
		}
		files[t] = filepath.Join(b.TempDir(), tables[t].name)
		if err := os.WriteFile(files[t], []byte(q.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var qps [2]float64
	for _, t := range []int{0, 1, 1, 0} { // each table first and last once
		q, _ := dnsperfQPS(b, tables[t].name, d.dns, files[t], seconds)
		qps[t] += q / 2
	}
	b.ReportMetric(qps[0], "flat-qps")
	b.ReportMetric(qps[1], "deep-qps")
	b.ReportMetric(qps[1]/qps[0], "deep/flat-qps")
}
