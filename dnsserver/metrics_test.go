package dnsserver

import (
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRequestLabels: each outcome is counted under its own label, BADVERS
// as BADVERS (miekg/dns's table says BADSIG), and queries over the rate
// limit not at all.
func TestRequestLabels(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tcp    bool
		o      Outcome
		labels []string // nil: not counted
	}{
		{"NOERROR", false, Outcome{Qtype: dns.TypeA}, []string{"udp", "A", "NOERROR"}},
		{"BADVERS", false, Outcome{Qtype: dns.TypeA, Rcode: dns.RcodeBadVers}, []string{"udp", "A", "BADVERS"}},
		{"other type and rcode", true, Outcome{Qtype: dns.TypeMX, Rcode: dns.RcodeYXDomain}, []string{"tcp", "other", "other"}},
		{"rate limited, truncated", false, Outcome{Qtype: dns.TypeA, Truncated: true, RateLimited: true}, nil},
		{"rate limited, refused", true, Outcome{Qtype: dns.TypeA, Rcode: dns.RcodeRefused, RateLimited: true}, nil},
		{"dropped", false, Outcome{Qtype: dns.TypeA, Dropped: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMetrics(prometheus.NewRegistry())
			m.observe(tc.tcp, tc.o, 0)
			if n := testutil.CollectAndCount(m.requests); n != len(tc.labels)/3 {
				t.Fatalf("%d series counted, want %d", n, len(tc.labels)/3)
			}
			if tc.labels != nil {
				if got := testutil.ToFloat64(m.requests.WithLabelValues(tc.labels...)); got != 1 {
					t.Errorf("%v counted %v times, want 1", tc.labels, got)
				}
			}
		})
	}
}
