package dnsserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/discodns/discodns/cache"
)

const testZone = "svc.internal."

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fixture returns a handler over a table holding:
//
//	web:  a 10.0.0.1:80 (tag blue, meta version=1.2, ports http 8081, tls 8443),
//	      b 10.0.0.2:8080 (priority 2, weight 5, port http 8082), c 10.0.0.3:80 (tag tls)
//	dual: v4 10.0.1.1:53 (tag tls), v6 [2001:db8::1]:53
//	ext:  h (host db.example.com:5432, port admin 9999)
//	mid:  10 instances, port admin 9001 (SRV fits 512 octets, SRV with glue does not)
//	big:  200 instances, port metrics 9100
func fixture(t testing.TB, opt Options) (*Handler, *cache.Table) {
	t.Helper()
	tb := cache.NewTable(quiet)
	tb.AddSource("etcd", testZone)
	insts := []cache.Instance{
		{Service: "web", ID: "a", Address: "10.0.0.1", Port: 80, Priority: 1, Weight: 1, Tags: []string{"blue"}, Meta: map[string]string{"version": "1.2"},
			Ports: map[string]uint16{"http": 8081, "tls": 8443}},
		{Service: "web", ID: "b", Address: "10.0.0.2", Port: 8080, Priority: 2, Weight: 5, Ports: map[string]uint16{"http": 8082}},
		{Service: "web", ID: "c", Address: "10.0.0.3", Port: 80, Priority: 1, Weight: 1, Tags: []string{"tls"}},
		{Service: "dual", ID: "v4", Address: "10.0.1.1", Port: 53, Priority: 1, Weight: 1, Tags: []string{"tls"}},
		{Service: "dual", ID: "v6", Address: "2001:db8::1", Port: 53, Priority: 1, Weight: 1},
		{Service: "ext", ID: "h", Address: "DB.example.com", Port: 5432, Priority: 1, Weight: 1, Ports: map[string]uint16{"admin": 9999}},
	}
	for i := range 10 {
		insts = append(insts, cache.Instance{Service: "mid", ID: fmt.Sprintf("m%d", i),
			Address: fmt.Sprintf("10.2.0.%d", i+1), Port: 9000, Priority: 1, Weight: 1, Ports: map[string]uint16{"admin": 9001}})
	}
	for i := range 200 {
		insts = append(insts, cache.Instance{Service: "big", ID: fmt.Sprintf("i%03d", i),
			Address: fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), Port: 9000, Priority: 1, Weight: 1, Ports: map[string]uint16{"metrics": 9100}})
	}
	tb.Replace("etcd", insts)
	if opt.Zone == "" {
		opt.Zone = testZone
	}
	if opt.TTL == 0 {
		opt.TTL = 5 * time.Second
		opt.NegativeTTL = 7 * time.Second
	}
	if opt.UDPSize == 0 {
		opt.UDPSize = 1232
	}
	opt.NSAddrs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	h := NewHandler(opt, nil, quiet)
	h.Update(tb.Snapshot())
	return h, tb
}

var loopback = netip.MustParseAddr("127.0.0.1")

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	return out
}

func TestZoneAnswers(t *testing.T) {
	h, _ := fixture(t, Options{})
	type want struct {
		rcode    int
		answers  int
		atype    uint16 // type of every answer record, when answers > 0
		soa      bool   // SOA in Authority
		extra    int    // records in Additional (no OPT in these queries)
		contains string // substring of some answer record
	}
	for _, tc := range []struct {
		name  string
		qname string
		qtype uint16
		want  want
	}{
		{"apex SOA", testZone, dns.TypeSOA, want{rcode: 0, answers: 1, atype: dns.TypeSOA, contains: "hostmaster.svc.internal."}},
		{"apex NS is the apex, with glue", testZone, dns.TypeNS, want{rcode: 0, answers: 1, atype: dns.TypeNS, extra: 1, contains: "NS\tsvc.internal."}},
		{"apex SOA names the apex", testZone, dns.TypeSOA, want{rcode: 0, answers: 1, atype: dns.TypeSOA, contains: "SOA\tsvc.internal. hostmaster"}},
		{"apex A is the name server", testZone, dns.TypeA, want{rcode: 0, answers: 1, atype: dns.TypeA, contains: "127.0.0.1"}},
		{"apex AAAA is NODATA without an IPv6 listener", testZone, dns.TypeAAAA, want{rcode: 0, soa: true}},
		{"no name server below the apex", "ns.dns.svc.internal.", dns.TypeA, want{rcode: dns.RcodeNameError, soa: true}},
		{"dns is no name", "dns.svc.internal.", dns.TypeA, want{rcode: dns.RcodeNameError, soa: true}},
		{"service A", "web.svc.internal.", dns.TypeA, want{rcode: 0, answers: 3, atype: dns.TypeA}},
		{"v4-only service AAAA is NODATA", "web.svc.internal.", dns.TypeAAAA, want{rcode: 0, soa: true}},
		{"dual AAAA", "dual.svc.internal.", dns.TypeAAAA, want{rcode: 0, answers: 1, atype: dns.TypeAAAA, contains: "2001:db8::1"}},
		{"service SRV with glue", "web.svc.internal.", dns.TypeSRV, want{rcode: 0, answers: 3, atype: dns.TypeSRV, extra: 3, contains: "2 5 8080 b.web.svc.internal."}},
		{"_svc._tcp SRV", "_web._tcp.svc.internal.", dns.TypeSRV, want{rcode: 0, answers: 3, atype: dns.TypeSRV, extra: 3}},
		{"_svc._udp SRV", "_web._udp.svc.internal.", dns.TypeSRV, want{rcode: 0, answers: 3, atype: dns.TypeSRV, extra: 3}},
		{"_svc._tcp A is NODATA", "_web._tcp.svc.internal.", dns.TypeA, want{rcode: 0, soa: true}},
		{"_tcp empty non-terminal", "_tcp.svc.internal.", dns.TypeSRV, want{rcode: 0, soa: true}},
		{"_udp empty non-terminal", "_udp.svc.internal.", dns.TypeA, want{rcode: 0, soa: true}},
		{"_tag empty non-terminal", "_blue.svc.internal.", dns.TypeSRV, want{rcode: 0, soa: true}},
		{"unknown _tag is NXDOMAIN", "_green.svc.internal.", dns.TypeSRV, want{rcode: dns.RcodeNameError, soa: true}},
		{"unknown service", "nope.svc.internal.", dns.TypeA, want{rcode: dns.RcodeNameError, soa: true}},
		{"unknown _svc._tcp", "_nope._tcp.svc.internal.", dns.TypeSRV, want{rcode: dns.RcodeNameError, soa: true}},
		{"tag A", "blue.web.svc.internal.", dns.TypeA, want{rcode: 0, answers: 1, atype: dns.TypeA, contains: "10.0.0.1"}},
		{"tag SRV", "_web._blue.svc.internal.", dns.TypeSRV, want{rcode: 0, answers: 1, atype: dns.TypeSRV, extra: 1, contains: "a.web.svc.internal."}},
		{"unknown tag", "_web._green.svc.internal.", dns.TypeSRV, want{rcode: dns.RcodeNameError, soa: true}},
		{"instance A", "a.web.svc.internal.", dns.TypeA, want{rcode: 0, answers: 1, atype: dns.TypeA, contains: "10.0.0.1"}},
		{"instance TXT", "a.web.svc.internal.", dns.TypeTXT, want{rcode: 0, answers: 1, atype: dns.TypeTXT, contains: `"version=1.2"`}},
		{"instance without meta TXT is NODATA", "b.web.svc.internal.", dns.TypeTXT, want{rcode: 0, soa: true}},
		{"instance AAAA is NODATA", "a.web.svc.internal.", dns.TypeAAAA, want{rcode: 0, soa: true}},
		{"instance SRV is its own record", "b.web.svc.internal.", dns.TypeSRV, want{rcode: 0, answers: 1, atype: dns.TypeSRV, extra: 1, contains: "2 5 8080 b.web.svc.internal."}},
		{"host name instance SRV is a CNAME", "h.ext.svc.internal.", dns.TypeSRV, want{rcode: 0, answers: 1, atype: dns.TypeCNAME, contains: "db.example.com."}},
		{"below an instance", "x.a.web.svc.internal.", dns.TypeA, want{rcode: dns.RcodeNameError, soa: true}},
		{"unknown instance", "zz.web.svc.internal.", dns.TypeA, want{rcode: dns.RcodeNameError, soa: true}},
		{"host name target never an alias", "ext.svc.internal.", dns.TypeSRV, want{rcode: 0, answers: 1, atype: dns.TypeSRV, contains: " db.example.com."}},
		{"host name instance is a CNAME", "h.ext.svc.internal.", dns.TypeA, want{rcode: 0, answers: 1, atype: dns.TypeCNAME, contains: "db.example.com."}},
		{"host name service A is NODATA", "ext.svc.internal.", dns.TypeA, want{rcode: 0, soa: true}},
		{"ANY is minimal", "web.svc.internal.", dns.TypeANY, want{rcode: 0, answers: 1, atype: dns.TypeHINFO, contains: "RFC8482"}},
		{"ANY on a missing name", "nope.svc.internal.", dns.TypeANY, want{rcode: dns.RcodeNameError, soa: true}},
		{"MX is NODATA", "web.svc.internal.", dns.TypeMX, want{rcode: 0, soa: true}},
		{"instance PTR", "1.0.0.10.in-addr.arpa.", dns.TypePTR, want{rcode: 0, answers: 1, atype: dns.TypePTR, contains: "a.web.svc.internal."}},
		{"named port SRV with glue", "_http._tcp.web.svc.internal.", dns.TypeSRV, want{rcode: 0, answers: 2, atype: dns.TypeSRV, extra: 2, contains: "2 5 8082 b.web.svc.internal."}},
		{"named port SRV keeps the instance target", "_tls._tcp.web.svc.internal.", dns.TypeSRV, want{rcode: 0, answers: 1, atype: dns.TypeSRV, extra: 1, contains: "1 1 8443 a.web.svc.internal."}},
		{"named port with a host name target", "_admin._tcp.ext.svc.internal.", dns.TypeSRV, want{rcode: 0, answers: 1, atype: dns.TypeSRV, contains: "1 1 9999 db.example.com."}},
		{"_svc._tls is the tls port over the tls tag", "_web._tls.svc.internal.", dns.TypeSRV, want{rcode: 0, answers: 1, atype: dns.TypeSRV, extra: 1, contains: "1 1 8443 a.web.svc.internal."}},
		{"_svc._tls without tls port is the tag", "_dual._tls.svc.internal.", dns.TypeSRV, want{rcode: 0, answers: 1, atype: dns.TypeSRV, extra: 1, contains: "1 1 53 v4.dual.svc.internal."}},
		{"tls tag name unchanged by the tls port", "tls.web.svc.internal.", dns.TypeA, want{rcode: 0, answers: 1, atype: dns.TypeA, contains: "10.0.0.3"}},
		{"_svc._tls A is NODATA", "_web._tls.svc.internal.", dns.TypeA, want{rcode: 0, soa: true}},
		{"named port A is NODATA", "_http._tcp.web.svc.internal.", dns.TypeA, want{rcode: 0, soa: true}},
		{"named port TXT is NODATA", "_http._tcp.web.svc.internal.", dns.TypeTXT, want{rcode: 0, soa: true}},
		{"named port ANY is minimal", "_http._tcp.web.svc.internal.", dns.TypeANY, want{rcode: 0, answers: 1, atype: dns.TypeHINFO, contains: "RFC8482"}},
		{"unknown named port is NXDOMAIN", "_nope._tcp.web.svc.internal.", dns.TypeSRV, want{rcode: dns.RcodeNameError, soa: true}},
		{"named port of another service is NXDOMAIN", "_http._tcp.dual.svc.internal.", dns.TypeSRV, want{rcode: dns.RcodeNameError, soa: true}},
		{"named port under _udp is NXDOMAIN", "_http._udp.web.svc.internal.", dns.TypeSRV, want{rcode: dns.RcodeNameError, soa: true}},
		{"named port without underscore is NXDOMAIN", "http._tcp.web.svc.internal.", dns.TypeSRV, want{rcode: dns.RcodeNameError, soa: true}},
		{"below a named port is NXDOMAIN", "x._http._tcp.web.svc.internal.", dns.TypeSRV, want{rcode: dns.RcodeNameError, soa: true}},
		{"_tcp.svc empty non-terminal", "_tcp.web.svc.internal.", dns.TypeSRV, want{rcode: 0, soa: true}},
		{"_tcp.svc A is NODATA", "_tcp.web.svc.internal.", dns.TypeA, want{rcode: 0, soa: true}},
		{"_tcp.svc without named ports is NXDOMAIN", "_tcp.dual.svc.internal.", dns.TypeSRV, want{rcode: dns.RcodeNameError, soa: true}},
		{"v6 instance PTR", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.", dns.TypePTR, want{rcode: 0, answers: 1, atype: dns.TypePTR, contains: "v6.dual.svc.internal."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.Answer(query(tc.qname, tc.qtype), false, loopback)
			if resp.Rcode != tc.want.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tc.want.rcode])
			}
			if !resp.Authoritative {
				t.Error("AA=0 on an in-zone answer")
			}
			if resp.RecursionAvailable {
				t.Error("RA=1 with forwarding off")
			}
			if len(resp.Answer) != tc.want.answers {
				t.Fatalf("answers %v, want %d", rrStrings(resp.Answer), tc.want.answers)
			}
			for _, rr := range resp.Answer {
				if rr.Header().Rrtype != tc.want.atype {
					t.Errorf("answer %v, want type %s", rr, dns.TypeToString[tc.want.atype])
				}
				if rr.Header().Name != tc.qname {
					t.Errorf("owner %q, want the question's %q", rr.Header().Name, tc.qname)
				}
				if rr.Header().Ttl != resp.Answer[0].Header().Ttl {
					t.Errorf("two TTLs in one RRset: %v", rrStrings(resp.Answer))
				}
			}
			if tc.want.contains != "" && !strings.Contains(strings.Join(rrStrings(resp.Answer), "\n"), tc.want.contains) {
				t.Errorf("answers %v lack %q", rrStrings(resp.Answer), tc.want.contains)
			}
			if len(resp.Extra) != tc.want.extra {
				t.Errorf("additional %v, want %d records", rrStrings(resp.Extra), tc.want.extra)
			}
			hasSOA := len(resp.Ns) == 1 && resp.Ns[0].Header().Rrtype == dns.TypeSOA
			if hasSOA != tc.want.soa {
				t.Errorf("authority %v, want SOA=%v", rrStrings(resp.Ns), tc.want.soa)
			}
			if hasSOA {
				soa := resp.Ns[0].(*dns.SOA)
				if soa.Minttl != 7 || soa.Hdr.Ttl != 7 {
					t.Errorf("negative SOA TTL %d minimum %d, want 7 (negative_ttl)", soa.Hdr.Ttl, soa.Minttl)
				}
			}
			if _, err := resp.Pack(); err != nil {
				t.Errorf("response does not pack: %v", err)
			}
		})
	}
}

// TestInstanceAtService: an instance at the service's own name (a skydns
// record at the service level) is its own SRV target, the service name, and
// has no name below it; its PTR names the service.
func TestInstanceAtService(t *testing.T) {
	h, tb := fixture(t, Options{})
	tb.Replace("etcd", []cache.Instance{
		{Service: "one", ID: "", Address: "10.0.3.1", Port: 80, Priority: 10, Weight: 100, AtService: true},
		{Service: "two", ID: "", Address: "10.0.3.2", Port: 80, Priority: 10, Weight: 50, AtService: true},
		{Service: "two", ID: "x", Address: "10.0.3.3", Port: 81, Priority: 10, Weight: 50},
	})
	h.Update(tb.Snapshot())
	for _, tc := range []struct {
		qname   string
		qtype   uint16
		answers []string
		extra   []string
	}{
		{"one.svc.internal.", dns.TypeSRV, []string{"one.svc.internal.\t5\tIN\tSRV\t10 100 80 one.svc.internal."}, []string{"one.svc.internal.\t5\tIN\tA\t10.0.3.1"}},
		{"two.svc.internal.", dns.TypeSRV, []string{"two.svc.internal.\t5\tIN\tSRV\t10 50 80 two.svc.internal.", "two.svc.internal.\t5\tIN\tSRV\t10 50 81 x.two.svc.internal."}, nil},
		{"x.two.svc.internal.", dns.TypeSRV, []string{"x.two.svc.internal.\t5\tIN\tSRV\t10 50 81 x.two.svc.internal."}, []string{"x.two.svc.internal.\t5\tIN\tA\t10.0.3.3"}},
		{"one.one.svc.internal.", dns.TypeA, nil, nil},
		{"1.3.0.10.in-addr.arpa.", dns.TypePTR, []string{"1.3.0.10.in-addr.arpa.\t5\tIN\tPTR\tone.svc.internal."}, nil},
	} {
		resp := h.Answer(query(tc.qname, tc.qtype), false, loopback)
		got := rrStrings(resp.Answer)
		slices.Sort(got)
		if !slices.Equal(got, tc.answers) {
			t.Errorf("%s %s: answers %q, want %q", dns.TypeToString[tc.qtype], tc.qname, got, tc.answers)
		}
		if tc.extra != nil && !slices.Equal(rrStrings(resp.Extra), tc.extra) {
			t.Errorf("%s %s: additional %q, want %q", dns.TypeToString[tc.qtype], tc.qname, rrStrings(resp.Extra), tc.extra)
		}
		if tc.answers == nil && resp.Rcode != dns.RcodeNameError {
			t.Errorf("%s %s: %s, want NXDOMAIN", dns.TypeToString[tc.qtype], tc.qname, dns.RcodeToString[resp.Rcode])
		}
	}
}

func TestSOASerialFollowsSnapshot(t *testing.T) {
	h, tb := fixture(t, Options{})
	serial := func() uint32 {
		return h.Answer(query(testZone, dns.TypeSOA), false, loopback).Answer[0].(*dns.SOA).Serial
	}
	before := serial()
	tb.Put("etcd", cache.Instance{Service: "new", ID: "n", Address: "10.9.9.9", Port: 1})
	h.Update(tb.Snapshot())
	if after := serial(); after <= before {
		t.Errorf("serial %d after a change, was %d", after, before)
	}
	if got := h.Answer(query("new.svc.internal.", dns.TypeA), false, loopback); len(got.Answer) != 1 {
		t.Errorf("new service not answered: %v", got)
	}
}

func TestQuestionCaseKept(t *testing.T) {
	h, _ := fixture(t, Options{})
	for _, qname := range []string{"WeB.SvC.InTeRnAl.", "_WEB._TCP.svc.internal."} {
		qtype := dns.TypeA
		if strings.HasPrefix(qname, "_") {
			qtype = dns.TypeSRV
		}
		resp := h.Answer(query(qname, qtype), false, loopback)
		if resp.Question[0].Name != qname {
			t.Errorf("question rewritten to %q", resp.Question[0].Name)
		}
		if len(resp.Answer) != 3 || resp.Answer[0].Header().Name != qname {
			t.Errorf("%s: answers %v, want 3 owned by %q", qname, rrStrings(resp.Answer), qname)
		}
	}
}

func TestRotation(t *testing.T) {
	h, _ := fixture(t, Options{})
	firsts := map[string]bool{}
	for range 6 {
		resp := h.Answer(query("web.svc.internal.", dns.TypeA), false, loopback)
		firsts[resp.Answer[0].(*dns.A).A.String()] = true
	}
	if len(firsts) != 3 {
		t.Errorf("first A over 6 queries: %v, want all 3 rotated in", firsts)
	}
	// SRV glue follows its records.
	resp := h.Answer(query("web.svc.internal.", dns.TypeSRV), false, loopback)
	for i, rr := range resp.Answer {
		if resp.Extra[i].Header().Name != rr.(*dns.SRV).Target {
			t.Errorf("glue %d for %s is %s", i, rr.(*dns.SRV).Target, resp.Extra[i].Header().Name)
		}
	}
}

func TestSizing(t *testing.T) {
	h, _ := fixture(t, Options{UDPSize: 1232})
	edns := func(size uint16) *dns.Msg {
		m := query("big.svc.internal.", dns.TypeA)
		m.SetEdns0(size, false)
		return m
	}
	for _, tc := range []struct {
		name    string
		req     *dns.Msg
		tcp     bool
		limit   int
		trunc   bool
		answers int // exact count when > 0
	}{
		{"UDP without EDNS", query("big.svc.internal.", dns.TypeA), false, 512, true, 0},
		{"UDP EDNS 4096 capped at udp_size", edns(4096), false, 1232, true, 0},
		{"UDP EDNS below 512 gets 512", edns(100), false, 512, true, 0},
		{"TCP gets everything", query("big.svc.internal.", dns.TypeA), true, 65535, false, 200},
		{"named port SRV, UDP without EDNS", query("_metrics._tcp.big.svc.internal.", dns.TypeSRV), false, 512, true, 0},
		{"named port SRV over TCP", query("_metrics._tcp.big.svc.internal.", dns.TypeSRV), true, 65535, false, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.Answer(tc.req, tc.tcp, loopback)
			wire, err := resp.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if len(wire) > tc.limit {
				t.Errorf("%d octets, limit %d", len(wire), tc.limit)
			}
			if resp.Truncated != tc.trunc {
				t.Errorf("TC=%v, want %v", resp.Truncated, tc.trunc)
			}
			if tc.answers > 0 && len(resp.Answer) != tc.answers {
				t.Errorf("%d answers, want %d", len(resp.Answer), tc.answers)
			}
			if tc.trunc && (len(resp.Answer) == 0 || len(wire) < tc.limit-100) {
				t.Errorf("trimmed too far: %d answers in %d octets", len(resp.Answer), len(wire))
			}
			if tc.req.IsEdns0() != nil && resp.IsEdns0() == nil {
				t.Error("OPT dropped while trimming")
			}
			if tc.trunc && len(resp.Extra) > len(onlyOPT(resp.Extra)) {
				t.Errorf("glue kept in a truncated answer: %v", rrStrings(resp.Extra))
			}
		})
	}
	// Additional goes first, without TC: mid's 10 SRV fit 512 octets, with
	// their glue they do not. The same holds for its named port.
	for _, name := range []string{"mid.svc.internal.", "_admin._tcp.mid.svc.internal."} {
		req := query(name, dns.TypeSRV)
		full := h.Answer(req, true, loopback)
		noGlue := full.Copy()
		noGlue.Extra = nil
		if full.Len() <= 512 || noGlue.Len() > 512 {
			t.Fatalf("fixture %s: %d octets with glue, %d without; want >512 and <=512", name, full.Len(), noGlue.Len())
		}
		resp := h.Answer(req, false, loopback)
		if resp.Truncated || len(resp.Answer) != 10 || len(resp.Extra) != 0 {
			t.Errorf("%s: TC=%v answers=%d extra=%d, want all 10 answers, no glue, no TC",
				name, resp.Truncated, len(resp.Answer), len(resp.Extra))
		}
	}
}

func TestNamedPorts(t *testing.T) {
	h, tb := fixture(t, Options{})
	// Each named-port SRV is the instance's ordinary SRV with the named
	// port, and its glue follows it through rotation.
	wantPorts := map[string]string{
		"a.web.svc.internal.": "1 1 8081",
		"b.web.svc.internal.": "2 5 8082",
	}
	firsts := map[string]bool{}
	for range 4 {
		resp := h.Answer(query("_http._tcp.web.svc.internal.", dns.TypeSRV), false, loopback)
		if len(resp.Answer) != 2 || len(resp.Extra) != 2 {
			t.Fatalf("answers %v additional %v, want 2 and 2", rrStrings(resp.Answer), rrStrings(resp.Extra))
		}
		firsts[resp.Answer[0].(*dns.SRV).Target] = true
		for i, rr := range resp.Answer {
			srv := rr.(*dns.SRV)
			if got := fmt.Sprintf("%d %d %d", srv.Priority, srv.Weight, srv.Port); got != wantPorts[srv.Target] {
				t.Errorf("%s: priority weight port %q, want %q", srv.Target, got, wantPorts[srv.Target])
			}
			if srv.Hdr.Ttl != 5 {
				t.Errorf("%s: TTL %d, want 5", srv.Target, srv.Hdr.Ttl)
			}
			glue, ok := resp.Extra[i].(*dns.A)
			if !ok || glue.Hdr.Name != srv.Target {
				t.Errorf("glue %d for %s is %v", i, srv.Target, resp.Extra[i])
			}
		}
	}
	if len(firsts) != 2 {
		t.Errorf("first SRV over 4 queries: %v, want both rotated in", firsts)
	}

	// The _tls non-terminal exists for a tls port alone, without a tls tag;
	// port 0 is no port and port names are matched as labels.
	tb.Put("etcd", cache.Instance{Service: "sec", ID: "s", Address: "10.3.0.1", Port: 80, Priority: 1, Weight: 1,
		Ports: map[string]uint16{"tls": 443, "none": 0, "Grpc": 9090}})
	tb.Delete("etcd", "web", "c")
	tb.Delete("etcd", "dual", "v4")
	h.Update(tb.Snapshot())
	for _, tc := range []struct {
		name  string
		qname string
		rcode int
		port  uint16 // of the single SRV answer; 0 for none
	}{
		{"_tls non-terminal from a tls port", "_tls.svc.internal.", dns.RcodeSuccess, 0},
		{"_svc._tls from a tls port", "_sec._tls.svc.internal.", dns.RcodeSuccess, 443},
		{"_svc._tls without tls port or tag", "_dual._tls.svc.internal.", dns.RcodeNameError, 0},
		{"port 0 is no port", "_none._tcp.sec.svc.internal.", dns.RcodeNameError, 0},
		{"port name as a label", "_grpc._tcp.sec.svc.internal.", dns.RcodeSuccess, 9090},
		{"port name case-insensitive", "_GRPC._TCP.sec.svc.internal.", dns.RcodeSuccess, 9090},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.Answer(query(tc.qname, dns.TypeSRV), false, loopback)
			if resp.Rcode != tc.rcode || !resp.Authoritative {
				t.Errorf("rcode %s AA=%v, want %s and AA", dns.RcodeToString[resp.Rcode], resp.Authoritative, dns.RcodeToString[tc.rcode])
			}
			switch {
			case tc.port == 0 && len(resp.Answer) != 0:
				t.Errorf("answers %v, want none", rrStrings(resp.Answer))
			case tc.port != 0 && (len(resp.Answer) != 1 || resp.Answer[0].(*dns.SRV).Port != tc.port):
				t.Errorf("answers %v, want one SRV to port %d", rrStrings(resp.Answer), tc.port)
			case tc.port == 0 && (len(resp.Ns) != 1 || resp.Ns[0].Header().Rrtype != dns.TypeSOA):
				t.Errorf("authority %v, want the SOA", rrStrings(resp.Ns))
			}
		})
	}

	// A changed port is answered after the next update.
	tb.Put("etcd", cache.Instance{Service: "sec", ID: "s", Address: "10.3.0.1", Port: 80, Priority: 1, Weight: 1,
		Ports: map[string]uint16{"tls": 8443}})
	h.Update(tb.Snapshot())
	resp := h.Answer(query("_tls._tcp.sec.svc.internal.", dns.TypeSRV), false, loopback)
	if len(resp.Answer) != 1 || resp.Answer[0].(*dns.SRV).Port != 8443 {
		t.Errorf("after an update: %v, want port 8443", rrStrings(resp.Answer))
	}
}

func TestEDNS(t *testing.T) {
	h, _ := fixture(t, Options{})
	req := query("web.svc.internal.", dns.TypeA)
	req.SetEdns0(4096, true)
	req.IsEdns0().Option = append(req.IsEdns0().Option, &dns.EDNS0_LOCAL{Code: 65001, Data: []byte{1, 2}})
	resp := h.Answer(req, false, loopback)
	opt := resp.IsEdns0()
	if opt == nil || !opt.Do() || opt.Version() != 0 || len(opt.Option) != 0 {
		t.Fatalf("OPT %v: want echoed with DO and no unknown options", opt)
	}
	if len(resp.Answer) != 3 {
		t.Errorf("unknown option changed the answer: %v", resp.Answer)
	}
	req = query("web.svc.internal.", dns.TypeA)
	req.SetEdns0(4096, false)
	req.IsEdns0().SetVersion(1)
	resp = h.Answer(req, false, loopback)
	wire, err := resp.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var back dns.Msg
	if err := back.Unpack(wire); err != nil {
		t.Fatal(err)
	}
	if back.Rcode != dns.RcodeBadVers || back.IsEdns0() == nil || len(back.Answer) != 0 {
		t.Errorf("EDNS version 1: rcode %s opt %v answers %d, want BADVERS with OPT", dns.RcodeToString[back.Rcode], back.IsEdns0(), len(back.Answer))
	}
	// Cookies of the lengths RFC 7873 allows are answered (and ignored).
	for _, n := range []int{8, 16, 40} {
		if resp := h.Answer(cookieQuery(n), false, loopback); resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 3 {
			t.Errorf("a cookie of %d octets: rcode %s, %d answers", n, dns.RcodeToString[resp.Rcode], len(resp.Answer))
		}
	}
}

func TestOutsideZoneAndOddQueries(t *testing.T) {
	h, _ := fixture(t, Options{})
	for _, tc := range []struct {
		name  string
		req   func() *dns.Msg
		rcode int
	}{
		{"outside the zone, forwarding off", func() *dns.Msg { return query("example.com.", dns.TypeA) }, dns.RcodeRefused},
		{"unknown reverse name, forwarding off", func() *dns.Msg { return query("9.9.9.10.in-addr.arpa.", dns.TypePTR) }, dns.RcodeRefused},
		{"class CHAOS", func() *dns.Msg {
			m := query("web.svc.internal.", dns.TypeTXT)
			m.Question[0].Qclass = dns.ClassCHAOS
			return m
		}, dns.RcodeRefused},
		{"opcode STATUS", func() *dns.Msg {
			m := query("web.svc.internal.", dns.TypeA)
			m.Opcode = dns.OpcodeStatus
			return m
		}, dns.RcodeNotImplemented},
		{"opcode UPDATE", func() *dns.Msg {
			m := query("web.svc.internal.", dns.TypeA)
			m.Opcode = dns.OpcodeUpdate
			return m
		}, dns.RcodeNotImplemented},
		{"no question", func() *dns.Msg { return &dns.Msg{} }, dns.RcodeFormatError},
		{"two questions", func() *dns.Msg {
			m := query("web.svc.internal.", dns.TypeA)
			m.Question = append(m.Question, m.Question[0])
			return m
		}, dns.RcodeFormatError},
		{"AXFR", func() *dns.Msg { return query("svc.internal.", dns.TypeAXFR) }, dns.RcodeRefused},
		{"IXFR", func() *dns.Msg { return query("svc.internal.", dns.TypeIXFR) }, dns.RcodeRefused},
		{"AXFR outside the zone", func() *dns.Msg { return query("example.com.", dns.TypeAXFR) }, dns.RcodeRefused},
		{"an escaped dot: one label x.svc under internal.", func() *dns.Msg { return query(`x\.svc.internal.`, dns.TypeA) }, dns.RcodeRefused},
		{"an escaped dot in a service's name", func() *dns.Msg { return query(`a\.web.svc.internal.`, dns.TypeA) }, dns.RcodeNameError},
		{"two OPT records", func() *dns.Msg {
			m := withEDNS(query("web.svc.internal.", dns.TypeA))
			m.Extra = append(m.Extra, m.Extra[0])
			return m
		}, dns.RcodeFormatError},
		{"a cookie of 7 octets", func() *dns.Msg { return cookieQuery(7) }, dns.RcodeFormatError},
		{"a cookie of 9 octets", func() *dns.Msg { return cookieQuery(9) }, dns.RcodeFormatError},
		{"a cookie of 41 octets", func() *dns.Msg { return cookieQuery(41) }, dns.RcodeFormatError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.Answer(tc.req(), false, loopback)
			if resp.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tc.rcode])
			}
			if resp.RecursionAvailable || len(resp.Answer) > 0 {
				t.Errorf("RA=%v answers=%d on a refusal", resp.RecursionAvailable, len(resp.Answer))
			}
			if resp.Authoritative != (resp.Rcode == dns.RcodeNameError) {
				t.Errorf("AA=%v on %s", resp.Authoritative, dns.RcodeToString[resp.Rcode])
			}
		})
	}
}

// cookieQuery is a query with a COOKIE option of n octets.
func cookieQuery(n int) *dns.Msg {
	return withEDNS(query("web.svc.internal.", dns.TypeA), &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: strings.Repeat("ab", n)})
}

// fakeForwarder answers every name with 192.0.2.1, or fails, or refuses
// (as forward.Forwarder refuses a client outside its allowed networks).
type fakeForwarder struct{ fail, refuse bool }

func (f fakeForwarder) Forward(_ context.Context, req *dns.Msg, _ netip.Addr) (*dns.Msg, error) {
	if f.fail {
		return nil, fmt.Errorf("all upstreams down")
	}
	m := new(dns.Msg)
	m.SetReply(req)
	if f.refuse {
		m.Rcode = dns.RcodeRefused
		return m, nil
	}
	rr, _ := dns.NewRR(req.Question[0].Name + " 60 IN A 192.0.2.1")
	m.Answer = []dns.RR{rr}
	return m, nil
}

func TestForwardingSetsRA(t *testing.T) {
	h, _ := fixture(t, Options{Forwarder: fakeForwarder{}})
	in := h.Answer(query("web.svc.internal.", dns.TypeAAAA), false, loopback)
	if !in.Authoritative || !in.RecursionAvailable {
		t.Errorf("in-zone with forwarding: AA=%v RA=%v, want both", in.Authoritative, in.RecursionAvailable)
	}
	out := h.Answer(query("example.com.", dns.TypeA), false, loopback)
	if out.Rcode != dns.RcodeSuccess || len(out.Answer) != 1 || !out.RecursionAvailable || out.Authoritative {
		t.Errorf("forwarded: %v", out)
	}
	if got := h.Answer(query("svc.internal.", dns.TypeAXFR), true, loopback); got.Rcode != dns.RcodeRefused || got.RecursionAvailable {
		t.Errorf("AXFR with forwarding: rcode %s RA=%v, want REFUSED without RA", dns.RcodeToString[got.Rcode], got.RecursionAvailable)
	}
	h, _ = fixture(t, Options{Forwarder: fakeForwarder{fail: true}})
	if got := h.Answer(query("example.com.", dns.TypeA), false, loopback); got.Rcode != dns.RcodeServerFailure {
		t.Errorf("failed upstreams: rcode %s, want SERVFAIL (never REFUSED)", dns.RcodeToString[got.Rcode])
	}
	h, _ = fixture(t, Options{Forwarder: fakeForwarder{refuse: true}})
	if got := h.Answer(query("example.com.", dns.TypeA), false, loopback); got.Rcode != dns.RcodeRefused || got.RecursionAvailable {
		t.Errorf("a client the forwarder refuses: rcode %s RA=%v, want REFUSED without RA", dns.RcodeToString[got.Rcode], got.RecursionAvailable)
	}
}

// TestTagSameHostTwoPorts: two instances on one host name, with one tag,
// are both in the tag's SRV set; one instance with a tag twice is in once.
func TestTagSameHostTwoPorts(t *testing.T) {
	tb := cache.NewTable(quiet)
	tb.AddSource("etcd", testZone)
	tb.Replace("etcd", []cache.Instance{
		{Service: "db", ID: "p1", Address: "db.example.com", Port: 5432, Priority: 1, Weight: 1, Tags: []string{"primary", "Primary"}},
		{Service: "db", ID: "p2", Address: "db.example.com", Port: 5433, Priority: 1, Weight: 1, Tags: []string{"primary"}},
	})
	h := NewHandler(Options{Zone: testZone, TTL: 5 * time.Second, NegativeTTL: 5 * time.Second}, nil, quiet)
	h.Update(tb.Snapshot())
	resp := h.Answer(query("_db._primary.svc.internal.", dns.TypeSRV), false, loopback)
	var ports []uint16
	for _, rr := range resp.Answer {
		ports = append(ports, rr.(*dns.SRV).Port)
	}
	slices.Sort(ports)
	if !slices.Equal(ports, []uint16{5432, 5433}) {
		t.Errorf("tag SRV ports %v, want 5432 and 5433", ports)
	}
}

// TestReadyOnlyFromATable: a new handler is not ready until it has a
// snapshot in which every source listed.
func TestReadyOnlyFromATable(t *testing.T) {
	tb := cache.NewTable(quiet)
	tb.AddSource("etcd", testZone)
	h := NewHandler(Options{Zone: testZone}, nil, quiet)
	if h.Ready() {
		t.Fatal("ready before any snapshot")
	}
	h.Update(tb.Snapshot())
	if h.Ready() {
		t.Fatal("ready before the source listed")
	}
	tb.Replace("etcd", nil)
	h.Update(tb.Snapshot())
	if !h.Ready() {
		t.Fatal("not ready once the source listed")
	}
}

// TestHugeAnswerSets: a service of 10,000 instances is answered within
// 65,535 octets over TCP (trimmed, with TC, rotated) and 512 over UDP.
func TestHugeAnswerSets(t *testing.T) {
	tb := cache.NewTable(quiet)
	tb.AddSource("etcd", testZone)
	var insts []cache.Instance
	for i := range 10000 {
		insts = append(insts, cache.Instance{Service: "huge", ID: fmt.Sprintf("i%05d", i),
			Address: fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256), Port: 80, Priority: 1, Weight: 1})
	}
	tb.Replace("etcd", insts)
	h := NewHandler(Options{Zone: testZone, TTL: 5 * time.Second, NegativeTTL: 5 * time.Second}, nil, quiet)
	h.Update(tb.Snapshot())
	for _, tc := range []struct {
		qtype uint16
		tcp   bool
		limit int
	}{{dns.TypeA, true, 65535}, {dns.TypeSRV, true, 65535}, {dns.TypeA, false, 512}, {dns.TypeSRV, false, 512}} {
		firsts := map[string]bool{}
		for range 3 {
			resp := h.Answer(query("huge.svc.internal.", tc.qtype), tc.tcp, loopback)
			out, err := resp.Pack()
			if err != nil || len(out) > tc.limit || !resp.Truncated || len(resp.Answer) == 0 {
				t.Fatalf("%s tcp=%v: %d octets, TC=%v, %d answers, %v", dns.TypeToString[tc.qtype], tc.tcp, len(out), resp.Truncated, len(resp.Answer), err)
			}
			firsts[resp.Answer[0].String()] = true
		}
		if len(firsts) < 2 {
			t.Errorf("%s tcp=%v: trimmed answers not rotated", dns.TypeToString[tc.qtype], tc.tcp)
		}
	}
}

// TestSetOptions: new options apply to the next query, with the same data.
func TestSetOptions(t *testing.T) {
	h, _ := fixture(t, Options{})
	if got := h.Answer(query("web.svc.internal.", dns.TypeA), false, loopback); got.Answer[0].Header().Ttl != 5 {
		t.Fatalf("TTL %d, want 5", got.Answer[0].Header().Ttl)
	}
	if got := h.Answer(query("example.com.", dns.TypeA), false, loopback); got.Rcode != dns.RcodeRefused {
		t.Fatalf("without forwarding: %s", dns.RcodeToString[got.Rcode])
	}
	h.SetOptions(Options{Zone: testZone, TTL: 30 * time.Second, NegativeTTL: 9 * time.Second, Forwarder: fakeForwarder{}})
	got := h.Answer(query("web.svc.internal.", dns.TypeA), false, loopback)
	if len(got.Answer) != 3 || got.Answer[0].Header().Ttl != 30 {
		t.Errorf("after SetOptions: %d answers, TTL %d, want 3 with TTL 30", len(got.Answer), got.Answer[0].Header().Ttl)
	}
	if got := h.Answer(query("nope.svc.internal.", dns.TypeA), false, loopback); got.Ns[0].(*dns.SOA).Minttl != 9 {
		t.Errorf("negative TTL %d, want 9", got.Ns[0].(*dns.SOA).Minttl)
	}
	if got := h.Answer(query("example.com.", dns.TypeA), false, loopback); got.Rcode != dns.RcodeSuccess || !got.RecursionAvailable {
		t.Errorf("with forwarding: %v", got)
	}
	if !h.Ready() {
		t.Error("SetOptions lost readiness")
	}
}
