package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BenchmarkEtcdLargeTable loads 10,000 services of 10 instances (100,000
// keys, discox layout) into etcd and measures discodns from start to the
// first DNS answer for the last service (svc-9999, last in etcd's key
// order) with all its instances (listed, compiled, answering), and its
// resident memory then and a second later.
//
//	go test ./test -run '^$' -bench EtcdLargeTable -benchtime 3x
func BenchmarkEtcdLargeTable(b *testing.B) {
	const services, perService = 10000, 10
	e := startEtcd(b)
	loadDiscox(b, e, services, perService)
	var took []time.Duration
	var rss, settled float64
	for b.Loop() {
		start := time.Now()
		d := launchDiscodns(b, discoxConfig(e.endpoint()))
		last := fmt.Sprintf("svc-%d.svc.internal.", services-1)
		for {
			if m, err := d.exchange(last, dns.TypeA, "udp"); err == nil && m.Rcode == dns.RcodeSuccess && len(m.Answer) == perService {
				break
			}
			if time.Since(start) > 2*time.Minute {
				b.Fatalf("%s not answered with %d instances within 2 minutes", last, perService)
			}
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, time.Since(start))
		if n, err := d.metric(`discodns_source_instances{source="etcd"}`); err != nil || n != fmt.Sprint(services*perService) {
			b.Fatalf("instances %q %v", n, err)
		}
		rss = d.gauge("process_resident_memory_bytes")
		// Records and sets that no query asked for yet are built once
		// the snapshot has lasted (see dnsserver's Follow): the memory
		// a second later holds them.
		time.Sleep(time.Second)
		settled = d.gauge("process_resident_memory_bytes")
		d.cmd.Process.Kill()
		<-d.done
	}
	b.ReportMetric(float64(percentile(took, 50).Milliseconds()), "ready-ms")
	b.ReportMetric(rss/1e6, "rss-MB")
	b.ReportMetric(settled/1e6, "rss-settled-MB")
}
