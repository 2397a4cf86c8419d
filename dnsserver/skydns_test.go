package dnsserver

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/discodns/discodns/cache"
)

// sky is a skydns record for the tests: name is its id and service, as
// "a.server1.prod/region1".
func sky(name, host string, port uint16, rec cache.SkyDNS) cache.Instance {
	id, svc, _ := strings.Cut(name, "/")
	return cache.Instance{Service: svc, ID: id, Address: host, Port: port, Priority: 10, Weight: 100,
		AtService: id == "", SkyDNS: &rec}
}

func skyHandler(tb *cache.Table) *Handler {
	h := NewHandler(Options{Zone: testZone, TTL: 5 * time.Second, NegativeTTL: 5 * time.Second}, nil, quiet)
	h.Update(tb.Snapshot())
	return h
}

// skyAnswer describes the answer to name and qtype: rcode, answer and
// additional records, sorted.
func skyAnswer(h *Handler, name string, qtype uint16) string {
	resp := h.Answer(query(name, qtype), true, loopback)
	ans, extra := rrStrings(resp.Answer), rrStrings(resp.Extra)
	slices.Sort(ans)
	slices.Sort(extra)
	return fmt.Sprintf("%s %q %q", dns.RcodeToString[resp.Rcode], ans, extra)
}

func TestSkyDNSAnswers(t *testing.T) {
	tb := cache.NewTable(quiet)
	tb.AddSource("sky", testZone)
	tb.Replace("sky", []cache.Instance{
		sky("a.server1.prod/region1", "10.0.0.1", 8080, cache.SkyDNS{TTL: 30}),
		sky("b.server1.prod/region1", "10.0.0.2", 8080, cache.SkyDNS{}),
		sky("c.server1.prod/region1", "10.0.0.1", 8080, cache.SkyDNS{TargetStrip: 1}),
		sky("t.server1.prod/region1", "", 0, cache.SkyDNS{Text: strings.Repeat("x", 300)}),
		sky("alias.prod/region1", "b.server1.prod.region1.svc.internal", 80, cache.SkyDNS{}),
		sky("a.g/grp", "10.0.1.1", 0, cache.SkyDNS{Group: "g1"}),
		sky("b.sub.g/grp", "10.0.1.2", 0, cache.SkyDNS{Group: "g2"}),
		sky("/solo", "10.0.2.1", 80, cache.SkyDNS{}),
		sky("a/loop", "b.loop.svc.internal", 0, cache.SkyDNS{}),
		sky("b/loop", "a.loop.svc.internal", 0, cache.SkyDNS{}),
	})
	h := skyHandler(tb)
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  string
	}{
		{"a.server1.prod.region1.svc.internal.", dns.TypeA,
			`NOERROR ["a.server1.prod.region1.svc.internal.\t30\tIN\tA\t10.0.0.1"] []`},
		{"server1.prod.region1.svc.internal.", dns.TypeA,
			`NOERROR ["server1.prod.region1.svc.internal.\t30\tIN\tA\t10.0.0.1" "server1.prod.region1.svc.internal.\t5\tIN\tA\t10.0.0.2"] []`},
		{"server1.prod.region1.svc.internal.", dns.TypeSRV,
			`NOERROR ["server1.prod.region1.svc.internal.\t30\tIN\tSRV\t10 33 8080 a.server1.prod.region1.svc.internal." ` +
				`"server1.prod.region1.svc.internal.\t5\tIN\tSRV\t10 33 8080 b.server1.prod.region1.svc.internal." ` +
				`"server1.prod.region1.svc.internal.\t5\tIN\tSRV\t10 33 8080 server1.prod.region1.svc.internal."] ` +
				`["a.server1.prod.region1.svc.internal.\t30\tIN\tA\t10.0.0.1" "b.server1.prod.region1.svc.internal.\t5\tIN\tA\t10.0.0.2" "server1.prod.region1.svc.internal.\t5\tIN\tA\t10.0.0.1"]`},
		{"t.server1.prod.region1.svc.internal.", dns.TypeTXT,
			`NOERROR ["t.server1.prod.region1.svc.internal.\t5\tIN\tTXT\t\"` + strings.Repeat("x", 255) + `\" \"` + strings.Repeat("x", 45) + `\""] []`},
		{"t.server1.prod.region1.svc.internal.", dns.TypeA, `NOERROR [] []`},
		{"alias.prod.region1.svc.internal.", dns.TypeA,
			`NOERROR ["alias.prod.region1.svc.internal.\t5\tIN\tCNAME\tb.server1.prod.region1.svc.internal." "b.server1.prod.region1.svc.internal.\t5\tIN\tA\t10.0.0.2"] []`},
		{"alias.prod.region1.svc.internal.", dns.TypeCNAME,
			`NOERROR ["alias.prod.region1.svc.internal.\t5\tIN\tCNAME\tb.server1.prod.region1.svc.internal."] []`},
		{"alias.prod.region1.svc.internal.", dns.TypeSRV,
			`NOERROR ["alias.prod.region1.svc.internal.\t5\tIN\tSRV\t10 100 80 b.server1.prod.region1.svc.internal."] ["b.server1.prod.region1.svc.internal.\t5\tIN\tA\t10.0.0.2"]`},
		// Groups: g1 at the shallowest depth wins; a name below sees g2.
		{"g.grp.svc.internal.", dns.TypeA, `NOERROR ["g.grp.svc.internal.\t5\tIN\tA\t10.0.1.1"] []`},
		{"sub.g.grp.svc.internal.", dns.TypeA, `NOERROR ["sub.g.grp.svc.internal.\t5\tIN\tA\t10.0.1.2"] []`},
		{"solo.svc.internal.", dns.TypeSRV,
			`NOERROR ["solo.svc.internal.\t5\tIN\tSRV\t10 100 80 solo.svc.internal."] ["solo.svc.internal.\t5\tIN\tA\t10.0.2.1"]`},
		{"a.loop.svc.internal.", dns.TypeA, `NOERROR [] []`},
		{"*.prod.region1.svc.internal.", dns.TypeA,
			`NOERROR ["*.prod.region1.svc.internal.\t30\tIN\tA\t10.0.0.1" "*.prod.region1.svc.internal.\t5\tIN\tA\t10.0.0.2" ` +
				`"*.prod.region1.svc.internal.\t5\tIN\tCNAME\tb.server1.prod.region1.svc.internal." "b.server1.prod.region1.svc.internal.\t5\tIN\tA\t10.0.0.2"] []`},
		{"x.*.svc.internal.", dns.TypeA, `NOERROR [] []`},
		{"any.x.region1.svc.internal.", dns.TypeA, `NXDOMAIN [] []`},
		{"nothing.server1.prod.region1.svc.internal.", dns.TypeA, `NXDOMAIN [] []`},
	} {
		got := skyAnswer(h, tc.name, tc.qtype)
		if got != tc.want {
			t.Errorf("%s %s:\n got %s\nwant %s", dns.TypeToString[tc.qtype], tc.name, got, tc.want)
		}
	}
}

// TestSkyDNSEditsMatchFreshBuild: a tree edited change by change answers
// as one built afresh from the same table.
func TestSkyDNSEditsMatchFreshBuild(t *testing.T) {
	tb := cache.NewTable(quiet)
	tb.AddSource("sky", testZone)
	edited := skyHandler(tb)
	names := []string{"r.svc.internal.", "p.r.svc.internal.", "s1.p.r.svc.internal.", "a.s1.p.r.svc.internal.",
		"b.s1.p.r.svc.internal.", "s2.p.r.svc.internal.", "q.r.svc.internal.", "*.p.r.svc.internal."}
	steps := []func(){
		func() { tb.Put("sky", sky("a.s1.p/r", "10.0.0.1", 80, cache.SkyDNS{})) },
		func() { tb.Put("sky", sky("b.s1.p/r", "10.0.0.2", 80, cache.SkyDNS{})) },
		func() { tb.Put("sky", sky("a.s2.p/r", "10.0.0.3", 80, cache.SkyDNS{})) },
		func() { tb.Put("sky", sky("s1.p/r", "10.0.0.4", 80, cache.SkyDNS{})) },
		func() { tb.Put("sky", sky("a.s1.p/r", "10.0.0.9", 81, cache.SkyDNS{TTL: 9})) },
		func() { tb.Put("sky", sky("x.q/r", "a.s1.p.r.svc.internal", 0, cache.SkyDNS{})) },
		func() { tb.Delete("sky", "r", "b.s1.p") },
		func() { tb.Delete("sky", "r", "a.s2.p") },
		func() { tb.Delete("sky", "r", "s1.p") },
		func() { tb.Delete("sky", "r", "nothing.p") },
		func() { tb.Put("sky", sky("/r", "10.0.0.5", 80, cache.SkyDNS{})) },
	}
	for i, step := range steps {
		step()
		edited.Update(tb.Snapshot())
		fresh := skyHandler(tb)
		for _, name := range names {
			for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV} {
				if got, want := skyAnswer(edited, name, qtype), skyAnswer(fresh, name, qtype); got != want {
					t.Errorf("step %d, %s %s:\nedited %s\nfresh  %s", i, dns.TypeToString[qtype], name, got, want)
				}
			}
		}
	}
}

func TestSkyGroup(t *testing.T) {
	rec := func(key, group string) *skyRecord {
		return &skyRecord{key: key, depth: strings.Count(key, "/") + 1, group: group}
	}
	keys := func(recs []*skyRecord) string {
		var out []string
		for _, r := range recs {
			out = append(out, r.key)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		recs []*skyRecord
		want string
	}{
		{nil, ""},
		{[]*skyRecord{rec("d/a", "g1"), rec("d/sub/b", "g1")}, "d/a d/sub/b"},
		{[]*skyRecord{rec("d/a", "g1"), rec("d/sub/b", "")}, "d/a d/sub/b"},
		{[]*skyRecord{rec("d/a", "g1"), rec("d/sub/b", "g2")}, "d/a"},
		{[]*skyRecord{rec("d/sub/b", "g2"), rec("d/z", "g1")}, "d/z"},
		{[]*skyRecord{rec("d/a", "g1"), rec("d/b", "g2")}, "d/a d/b"},
		{[]*skyRecord{rec("d/a", "g1"), rec("d/b", ""), rec("d/sub/c", "g2")}, "d/a d/b"},
		{[]*skyRecord{rec("d/sub/a", "g1"), rec("d/b", ""), rec("d/sub/c", "g2")}, "d/sub/a d/b d/sub/c"},
	} {
		if got := keys(skyGroup(tc.recs)); got != tc.want {
			t.Errorf("%s: %q, want %q", keys(tc.recs), got, tc.want)
		}
	}
}

func TestTargetStrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		want string
	}{
		{"a.b.c.", 0, "a.b.c."},
		{"a.b.c.", 1, "b.c."},
		{"a.b.c.", 2, "c."},
		{"a.b.c.", 3, "a.b.c."},
		{"a.b.c.", 1 << 30, "a.b.c."},
	} {
		if got := targetStrip(tc.name, tc.n); got != tc.want {
			t.Errorf("targetStrip(%q, %d) = %q, want %q", tc.name, tc.n, got, tc.want)
		}
	}
}
