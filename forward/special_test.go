package forward

import (
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSpecialUseNames(t *testing.T) {
	const (
		v6Loopback    = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."
		v6Unspecified = "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."
	)
	tests := []struct {
		name   string
		qtype  uint16
		rcode  int
		answer string // the answer's data, "" for none
		soa    string // the zone of the SOA in Authority, "" for none
	}{
		// RFC 6761 section 6.3.
		{"localhost.", dns.TypeA, dns.RcodeSuccess, "127.0.0.1", ""},
		{"localhost.", dns.TypeAAAA, dns.RcodeSuccess, "::1", ""},
		{"db.app.LocalHost.", dns.TypeA, dns.RcodeSuccess, "127.0.0.1", ""},
		{"x.localhost.", dns.TypeAAAA, dns.RcodeSuccess, "::1", ""},
		{"localhost.", dns.TypeMX, dns.RcodeSuccess, "", "localhost."},
		{"x.localhost.", dns.TypeTXT, dns.RcodeSuccess, "", "localhost."},
		{"localhost.", dns.TypeSOA, dns.RcodeSuccess, "localhost. nobody.invalid. 1 3600 1200 604800 10800", ""},
		// RFC 6761 section 6.4, RFC 6762, RFC 7686.
		{"invalid.", dns.TypeA, dns.RcodeNameError, "", "invalid."},
		{"foo.invalid.", dns.TypeA, dns.RcodeNameError, "", "invalid."},
		{"printer.local.", dns.TypeA, dns.RcodeNameError, "", "local."},
		{"LOCAL.", dns.TypeSOA, dns.RcodeNameError, "", "local."},
		{"onion.", dns.TypeA, dns.RcodeNameError, "", "onion."},
		{"3g2upl4pq6kufc4m.onion.", dns.TypeAAAA, dns.RcodeNameError, "", "onion."},
		// RFC 6303.
		{"1.2.3.10.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, "", "10.in-addr.arpa."},
		{"1.0.16.172.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, "", "16.172.in-addr.arpa."},
		{"1.0.20.172.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, "", "20.172.in-addr.arpa."},
		{"1.0.31.172.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, "", "31.172.in-addr.arpa."},
		{"5.1.168.192.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, "", "168.192.in-addr.arpa."},
		{"1.1.254.169.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, "", "254.169.in-addr.arpa."},
		{"1.0.64.100.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, "", "64.100.in-addr.arpa."},
		{"1.0.127.100.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, "", "127.100.in-addr.arpa."},
		{"1.0.0.0.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, "", "0.in-addr.arpa."},
		{"1.2.3.4.5.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeNameError, "", "d.f.ip6.arpa."},
		{"0.8.e.f.ip6.arpa.", dns.TypePTR, dns.RcodeNameError, "", "8.e.f.ip6.arpa."},
		{"0.9.e.f.ip6.arpa.", dns.TypePTR, dns.RcodeNameError, "", "9.e.f.ip6.arpa."},
		{"0.A.E.F.ip6.arpa.", dns.TypePTR, dns.RcodeNameError, "", "a.e.f.ip6.arpa."},
		{"0.b.e.f.ip6.arpa.", dns.TypePTR, dns.RcodeNameError, "", "b.e.f.ip6.arpa."},
		{"1.1.1.127.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, "", "127.in-addr.arpa."},
		{"1.0.0.127.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, "localhost.", ""},
		{"1.0.0.127.in-addr.arpa.", dns.TypeA, dns.RcodeSuccess, "", "127.in-addr.arpa."},
		{v6Loopback, dns.TypePTR, dns.RcodeSuccess, "localhost.", ""},
		{v6Loopback, dns.TypeTXT, dns.RcodeSuccess, "", v6Loopback},
		{"x." + v6Loopback, dns.TypePTR, dns.RcodeNameError, "", v6Loopback},
		{"x." + v6Unspecified, dns.TypePTR, dns.RcodeNameError, "", v6Unspecified},
		// A zone's apex exists (RFC 6303 section 3): SOA, NODATA otherwise.
		{v6Unspecified, dns.TypePTR, dns.RcodeSuccess, "", v6Unspecified},
		{"10.in-addr.arpa.", dns.TypeNS, dns.RcodeSuccess, "", "10.in-addr.arpa."},
		{"10.in-addr.arpa.", dns.TypeSOA, dns.RcodeSuccess, "10.in-addr.arpa. nobody.invalid. 1 3600 1200 604800 10800", ""},
	}
	up := startUpstream(t, answer(300))
	f, _, _ := newTestForwarder(t, Config{Upstreams: []string{up.addr}, CacheSize: 10})
	for _, tt := range tests {
		t.Run(tt.name+"/"+dns.TypeToString[tt.qtype], func(t *testing.T) {
			m := mustForward(t, f, query(tt.name, tt.qtype, false))
			if m.Rcode != tt.rcode || !m.Authoritative {
				t.Errorf("rcode %s AA=%v, want %s AA=true", dns.RcodeToString[m.Rcode], m.Authoritative, dns.RcodeToString[tt.rcode])
			}
			var answer string
			switch {
			case len(m.Answer) > 1:
				t.Errorf("answers %v", m.Answer)
			case len(m.Answer) == 1:
				rr := m.Answer[0]
				if h := rr.Header(); h.Name != tt.name || h.Rrtype != tt.qtype {
					t.Errorf("answer %v for %s %s", rr, tt.name, dns.TypeToString[tt.qtype])
				}
				answer = rr.String()[len(rr.Header().String()):]
			}
			if answer != tt.answer {
				t.Errorf("answer %q, want %q", answer, tt.answer)
			}
			var soa string
			if len(m.Ns) == 1 {
				if s, ok := m.Ns[0].(*dns.SOA); ok {
					soa = s.Hdr.Name
				}
			}
			if soa != tt.soa || len(m.Ns) > 1 {
				t.Errorf("authority %v, want the SOA of %q", m.Ns, tt.soa)
			}
			if m.IsEdns0() == nil {
				t.Error("no OPT in the reply to an EDNS0 query")
			}
		})
	}
	if up.count() != 0 {
		t.Errorf("%d special-use queries forwarded", up.count())
	}
	if got := testutil.ToFloat64(f.metrics.local); got != float64(len(tests)) {
		t.Errorf("local_answers_total = %v, want %d", got, len(tests))
	}
}

func TestNotSpecialNamesAreForwarded(t *testing.T) {
	names := []string{
		"example.com.",
		"localhost.example.com.",
		"mylocalhost.",
		"notlocal.",
		"invalid.example.",
		"onion.example.",
		"1.0.15.172.in-addr.arpa.",
		"1.0.32.172.in-addr.arpa.",
		"1.0.016.172.in-addr.arpa.",
		"1.0.63.100.in-addr.arpa.",
		"1.0.128.100.in-addr.arpa.",
		"4.4.8.8.in-addr.arpa.",
		"1.0.0.11.in-addr.arpa.",
		"0.c.e.f.ip6.arpa.",
		"8.b.d.0.1.0.0.2.ip6.arpa.",
		"in-addr.arpa.",
		"arpa.",
		".",
	}
	up := startUpstream(t, answer(300))
	f, _, _ := newTestForwarder(t, Config{Upstreams: []string{up.addr}})
	for i, name := range names {
		m := mustForward(t, f, query(name, dns.TypePTR, false))
		if m.Authoritative || up.count() != i+1 {
			t.Errorf("%s answered locally", name)
		}
	}
}
