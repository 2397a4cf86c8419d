package dnsserver

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/discodns/discodns/cache"
)

// sky is a skydns record for the tests, id its name below the zone; its
// service is its parent name as one label, as the skydns layout's
// buckets are.
func sky(id, host string, port uint16, rec cache.SkyDNS) cache.Instance {
	return cache.Instance{Service: skyParent(id), ID: id, Address: host, Port: port, Priority: 10, Weight: 100, SkyDNS: &rec}
}

func skyParent(id string) string {
	_, parent, _ := strings.Cut(id, ".")
	return "p-" + cache.Label(parent)
}

func skyHandler(tb *cache.Table) *Handler {
	h := NewHandler(Options{Zone: testZone, TTL: 5 * time.Second, NegativeTTL: 5 * time.Second}, nil, quiet)
	h.Update(tb.Snapshot())
	return h
}

// skyAnswer describes the answer to name and qtype: rcode, answer and
// additional records, sorted.
func skyAnswer(h *Handler, name string, qtype uint16) string {
	return describe(h.Answer(query(name, qtype), true, loopback))
}

// skyCached is skyAnswer through the wire cache, as a server answers.
func skyCached(h *Handler, name string, qtype uint16) string {
	b, _ := h.Respond(query(name, qtype), true, loopback)
	resp := new(dns.Msg)
	if err := resp.Unpack(b); err != nil {
		return err.Error()
	}
	return describe(resp)
}

func describe(resp *dns.Msg) string {
	ans, extra := rrStrings(resp.Answer), rrStrings(resp.Extra)
	slices.Sort(ans)
	slices.Sort(extra)
	return fmt.Sprintf("%s %q %q", dns.RcodeToString[resp.Rcode], ans, extra)
}

func TestSkyDNSAnswers(t *testing.T) {
	tb := cache.NewTable(quiet)
	tb.AddSource("sky", testZone)
	tb.Replace("sky", []cache.Instance{
		sky("a.server1.prod.region1", "10.0.0.1", 8080, cache.SkyDNS{TTL: 30}),
		sky("b.server1.prod.region1", "10.0.0.2", 8080, cache.SkyDNS{}),
		sky("c.server1.prod.region1", "10.0.0.1", 8080, cache.SkyDNS{TargetStrip: 1}),
		sky("t.server1.prod.region1", "", 0, cache.SkyDNS{Text: strings.Repeat("x", 300)}),
		sky("alias.prod.region1", "b.server1.prod.region1.svc.internal", 80, cache.SkyDNS{}),
		sky("a.g.grp", "10.0.1.1", 0, cache.SkyDNS{Group: "g1"}),
		sky("b.sub.g.grp", "10.0.1.2", 0, cache.SkyDNS{Group: "g2"}),
		sky("solo", "10.0.2.1", 80, cache.SkyDNS{}),
		sky("a.loop", "b.loop.svc.internal", 0, cache.SkyDNS{}),
		sky("b.loop", "a.loop.svc.internal", 0, cache.SkyDNS{}),
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
// as one built afresh from the same table, and so do the answers the wire
// cache keeps across changes; the index before a change answers as it did.
func TestSkyDNSEditsMatchFreshBuild(t *testing.T) {
	tb := cache.NewTable(quiet)
	tb.AddSource("sky", testZone)
	edited := skyHandler(tb)
	names := []string{"r.svc.internal.", "p.r.svc.internal.", "s1.p.r.svc.internal.", "a.s1.p.r.svc.internal.",
		"b.s1.p.r.svc.internal.", "s2.p.r.svc.internal.", "q.r.svc.internal.", "*.p.r.svc.internal.",
		"x5.wide.r.svc.internal.", "x7.wide.r.svc.internal.", "x9.wide.r.svc.internal.", "x299.wide.r.svc.internal.",
		"y.x9.wide.r.svc.internal.", "x9.*.r.svc.internal."}
	steps := []func(){
		func() { tb.Put("sky", sky("a.s1.p.r", "10.0.0.1", 80, cache.SkyDNS{})) },
		func() { tb.Put("sky", sky("b.s1.p.r", "10.0.0.2", 80, cache.SkyDNS{})) },
		func() { tb.Put("sky", sky("a.s2.p.r", "10.0.0.3", 80, cache.SkyDNS{})) },
		func() { tb.Put("sky", sky("s1.p.r", "10.0.0.4", 80, cache.SkyDNS{})) },
		func() { tb.Put("sky", sky("a.s1.p.r", "10.0.0.9", 81, cache.SkyDNS{TTL: 9})) },
		func() { tb.Put("sky", sky("x.q.r", "a.s1.p.r.svc.internal", 0, cache.SkyDNS{})) },
		func() { tb.Delete("sky", skyParent("b.s1.p.r"), "b.s1.p.r") },
		func() { tb.Delete("sky", skyParent("a.s2.p.r"), "a.s2.p.r") },
		func() { tb.Delete("sky", skyParent("s1.p.r"), "s1.p.r") },
		func() { tb.Delete("sky", skyParent("nothing.p.r"), "nothing.p.r") },
		func() { tb.Put("sky", sky("r", "10.0.0.5", 80, cache.SkyDNS{})) },
		func() { // wide: the node's children go in shards
			for i := range skyWide + 44 {
				tb.Put("sky", sky(fmt.Sprintf("x%d.wide.r", i), fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), 80, cache.SkyDNS{}))
			}
		},
		func() { tb.Put("sky", sky("x5.wide.r", "10.2.0.5", 80, cache.SkyDNS{})) },
		func() { tb.Delete("sky", skyParent("x7.wide.r"), "x7.wide.r") },
		func() { tb.Put("sky", sky("y.x9.wide.r", "10.2.0.9", 80, cache.SkyDNS{})) },
	}
	for i, step := range steps {
		before := edited.idx.Load()
		answered := map[string]string{}
		for _, name := range names {
			answered[name] = describe(edited.answerFrom(before, query(name, dns.TypeSRV), true, loopback, &rotation{}))
		}
		step()
		edited.Update(tb.Snapshot())
		for _, name := range names {
			// A published index never changes.
			if got := describe(edited.answerFrom(before, query(name, dns.TypeSRV), true, loopback, &rotation{})); got != answered[name] {
				t.Errorf("step %d changed the index before it: SRV %s:\nnow    %s\nbefore %s", i, name, got, answered[name])
			}
		}
		fresh := skyHandler(tb)
		for _, name := range names {
			for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV} {
				want := skyAnswer(fresh, name, qtype)
				if got := skyAnswer(edited, name, qtype); got != want {
					t.Errorf("step %d, %s %s:\nedited %s\nfresh  %s", i, dns.TypeToString[qtype], name, got, want)
				}
				if got := skyCached(edited, name, qtype); got != want {
					t.Errorf("step %d, %s %s from the wire cache:\nedited %s\nfresh  %s", i, dns.TypeToString[qtype], name, got, want)
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

// BenchmarkSkyDNSChange measures what one new record costs the table and
// the index (publishing and compiling), in a deep table (1,000 names five
// levels below the zone, two records each) and in a flat one (1,000 names
// right below it), in the same run, and reports each and the ratio
// deep/flat: 1 when depth costs nothing.
//
//	go test ./dnsserver -run '^$' -bench SkyDNSChange -benchtime 2000x
func BenchmarkSkyDNSChange(b *testing.B) {
	names := [2]func(i int) string{
		func(i int) string { return fmt.Sprintf("svc%d", i) },
		func(i int) string { return fmt.Sprintf("svc%d.team%d.c%d.e%d.r%d", i%5, i/5%5, i/25%4, i/100%5, i/500) },
	}
	var tables [2]*cache.Table
	var handlers [2]*Handler
	for t, name := range names {
		tables[t] = cache.NewTable(quiet)
		tables[t].AddSource("sky", testZone)
		var ins []cache.Instance
		for i := range 1000 {
			for k := range 2 {
				ins = append(ins, sky(fmt.Sprintf("i%d.%s", k, name(i)), fmt.Sprintf("10.%d.%d.%d", k, i/250, i%250+1), 80, cache.SkyDNS{}))
			}
		}
		tables[t].Replace("sky", ins)
		handlers[t] = skyHandler(tables[t])
	}
	var took [2]time.Duration
	for n := 0; b.Loop(); n++ {
		for t, name := range names {
			start := time.Now()
			tables[t].Put("sky", sky(fmt.Sprintf("w%d.%s", n, name(n*7%1000)), "10.9.0.1", 80, cache.SkyDNS{}))
			handlers[t].Update(tables[t].Snapshot())
			took[t] += time.Since(start)
		}
	}
	b.ReportMetric(float64(took[0].Microseconds())/float64(b.N), "flat-us")
	b.ReportMetric(float64(took[1].Microseconds())/float64(b.N), "deep-us")
	b.ReportMetric(float64(took[1])/float64(took[0]), "deep/flat")
}

// TestSkyDNSBounds: a wildcard answers at most maxWildRecords records
// found within maxWildVisits names, and an answer follows at most
// maxAliasFollows aliases; each cut is counted.
func TestSkyDNSBounds(t *testing.T) {
	tb := cache.NewTable(quiet)
	tb.AddSource("sky", testZone)
	var ins []cache.Instance
	for i := range maxWildRecords + 10 {
		ins = append(ins, sky(fmt.Sprintf("x%d.many", i), fmt.Sprintf("10.%d.%d.%d", i/62500, i/250%250, i%250+1), 80, cache.SkyDNS{}))
	}
	for i := range maxAliasFollows + 20 {
		ins = append(ins, sky(fmt.Sprintf("a%d.alias", i), fmt.Sprintf("t%d.target.svc.internal", i), 0, cache.SkyDNS{}))
		ins = append(ins, sky(fmt.Sprintf("t%d.target", i), fmt.Sprintf("10.200.%d.%d", i/250, i%250+1), 0, cache.SkyDNS{}))
	}
	tb.Replace("sky", ins)
	metrics := NewMetrics(prometheus.NewRegistry())
	h := NewHandler(Options{Zone: testZone, TTL: 5 * time.Second, NegativeTTL: 5 * time.Second}, metrics, quiet)
	h.Update(tb.Snapshot())
	cuts := func(bound string) float64 { return testutil.ToFloat64(metrics.skydnsCuts.WithLabelValues(bound)) }

	// *.svc.internal. matches many, with more records than the bound;
	// *.many.svc.internal. matches more names than the bound.
	for i, name := range []string{"*.svc.internal.", "*.many.svc.internal."} {
		if resp := h.Answer(query(name, dns.TypeSRV), true, loopback); resp.Rcode != dns.RcodeSuccess || len(resp.Answer) == 0 {
			t.Errorf("%s: %s with %d records", name, dns.RcodeToString[resp.Rcode], len(resp.Answer))
		}
		if r := h.idx.Load().resolve(name); len(r.sky.srv) > maxWildRecords || len(r.sky.srv) < maxWildRecords-maxWildVisits/100 {
			t.Errorf("%s gathered %d records, want at most %d", name, len(r.sky.srv), maxWildRecords)
		}
		if got := cuts(cutWildRecords); got != float64(i+1) {
			t.Errorf("%s: %v wildcard cuts counted, want %d", name, got, i+1)
		}
	}
	if h.Answer(query("many.svc.internal.", dns.TypeA), true, loopback); cuts(cutWildRecords) != 2 {
		t.Error("a plain name counted as a wildcard cut")
	}

	before := cuts(cutAliasFollows) // the wildcards above may have cut some
	resp := h.Answer(query("alias.svc.internal.", dns.TypeA), true, loopback)
	if n := len(resp.Answer); n != 2*maxAliasFollows && !resp.Truncated {
		t.Errorf("aliases: %d records (truncated %v), want %d: every follow a CNAME and an A", n, resp.Truncated, 2*maxAliasFollows)
	}
	if got := cuts(cutAliasFollows) - before; got != 1 {
		t.Errorf("%v alias cuts counted, want 1", got)
	}
	if h.Answer(query("a1.alias.svc.internal.", dns.TypeA), true, loopback); cuts(cutAliasFollows)-before != 1 {
		t.Error("one alias followed counted as a cut")
	}
}

// BenchmarkSkyDNSRespond measures a query answered from the wire cache,
// as a server answers it, for the names of a deep table and of a flat one
// (see BenchmarkSkyDNSChange) in one handler, and reports the ratio of the
// times deep/flat: 1 when depth costs nothing.
//
//	go test ./dnsserver -run '^$' -bench SkyDNSRespond
func BenchmarkSkyDNSRespond(b *testing.B) {
	names := [2]func(i int) string{
		func(i int) string { return fmt.Sprintf("svc%d", i) },
		func(i int) string { return fmt.Sprintf("svc%d.team%d.c%d.e%d.r%d", i%5, i/5%5, i/25%4, i/100%5, i/500) },
	}
	tb := cache.NewTable(quiet)
	tb.AddSource("sky", testZone)
	var ins []cache.Instance
	var queries [2][]*dns.Msg
	for t, name := range names {
		for i := range 1000 {
			for k := range 2 {
				ins = append(ins, sky(fmt.Sprintf("i%d.%s", k, name(i)), fmt.Sprintf("10.%d.%d.%d", 2*t+k, i/250, i%250+1), 80, cache.SkyDNS{}))
			}
			queries[t] = append(queries[t], query(name(i)+"."+testZone, dns.TypeA))
		}
	}
	tb.Replace("sky", ins)
	h := skyHandler(tb)
	var took [2]time.Duration
	for n := 0; b.Loop(); n++ {
		for t := range queries {
			start := time.Now()
			h.Respond(queries[t][n%1000], false, loopback)
			took[t] += time.Since(start)
		}
	}
	b.ReportMetric(float64(took[1])/float64(took[0]), "deep/flat")
}
