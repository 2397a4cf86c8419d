package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BenchmarkFreshness measures the time from an etcd write (a new instance,
// skydns layout) to the first DNS answer that shows it: discodns, and
// CoreDNS's etcd plugin with `cache 5` on the same etcd, in the same run.
//
//	go test ./test -run '^$' -bench Freshness/discodns -benchtime 100x
//	go test ./test -run '^$' -bench Freshness/coredns -benchtime 20x
func BenchmarkFreshness(b *testing.B) {
	e := startEtcd(b)
	for s := range 10 {
		e.put(fmt.Sprintf("/skydns/internal/svc/svc-%d/i0", s), fmt.Sprintf(`{"host":"10.0.%d.1","port":80}`, s))
	}
	d := startDiscodns(b, skydnsConfig(e.endpoint()))
	d.waitInstances("svc-9.svc.internal.", 1)
	for ti, target := range []struct{ name, addr string }{
		{"discodns", d.dns},
		{"coredns-cache-5", startCoreDNS(b, e.endpoint(), 5)},
	} {
		b.Run(target.name, func(b *testing.B) {
			c := &dns.Client{Timeout: time.Second}
			shows := func(name, addr string) bool {
				m := new(dns.Msg)
				m.SetQuestion(name, dns.TypeA)
				resp, _, err := c.Exchange(m, target.addr)
				if err != nil {
					return false
				}
				for _, rr := range resp.Answer {
					if strings.HasSuffix(rr.String(), "\t"+addr) {
						return true
					}
				}
				return false
			}
			var took []time.Duration
			for n := 0; b.Loop(); n++ {
				s := n % 10
				name := fmt.Sprintf("svc-%d.svc.internal.", s)
				shows(name, "10.0.0.1")                                        // warm any cache with the current answer
				addr := fmt.Sprintf("10.%d.%d.%d", 100+ti, n/250%250, n%250+1) // unique to this target and write
				start := time.Now()
				e.put(fmt.Sprintf("/skydns/internal/svc/svc-%d/%s-%d", s, target.name, n), fmt.Sprintf(`{"host":%q,"port":80}`, addr))
				for !shows(name, addr) {
					if time.Since(start) > 30*time.Second {
						b.Fatalf("%s: %s not answered within 30 s", target.name, addr)
					}
					time.Sleep(time.Millisecond)
				}
				took = append(took, time.Since(start))
			}
			b.ReportMetric(float64(percentile(took, 50).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(percentile(took, 99).Microseconds())/1000, "p99-ms")
		})
	}
}
