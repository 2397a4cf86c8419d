package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkEtcdLargeTable loads 10,000 services of 10 instances (100,000
// keys, discox layout) into etcd and measures discodns from start to the
// first DNS answer for the last service (svc-9999, last in etcd's key
// order) with all its instances (listed, compiled, answering), and its
// resident memory then.
//
//	go test ./test -run '^$' -bench EtcdLargeTable -benchtime 3x
func BenchmarkEtcdLargeTable(b *testing.B) {
	const services, perService = 10000, 10
	e := startEtcd(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var ops []clientv3.Op
	for s := range services {
		for i := range perService {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("/services/svc-%d/10.%d.%d.%d:%d", s, i, s/250, s%250+1, 8000+i), `{"weight":5}`))
			if len(ops) == 128 {
				if _, err := e.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
					b.Fatal(err)
				}
				ops = ops[:0]
			}
		}
	}
	if len(ops) > 0 {
		if _, err := e.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
	}
	var took []time.Duration
	var rss float64
	for b.Loop() {
		start := time.Now()
		d := launchDiscodns(b, fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]
[http]
listen = "{{HTTP}}"
[[source]]
type = "etcd"
endpoints = [%q]
`, e.endpoint()))
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
		d.cmd.Process.Kill()
		<-d.done
	}
	b.ReportMetric(float64(percentile(took, 50).Milliseconds()), "ready-ms")
	b.ReportMetric(rss/1e6, "rss-MB")
}
