package test

import (
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/discodns/discodns/test/registries"
)

// startCoreDNS runs CoreDNS with the etcd plugin on zone svc.internal.,
// reading /skydns of the etcd at endpoint, and with cache when cacheTTL > 0.
func startCoreDNS(t testing.TB, endpoint string, cacheTTL int) string {
	return startCoreDNSZone(t, endpoint, "svc.internal.", cacheTTL)
}

// startCoreDNSZone is startCoreDNS for zone.
func startCoreDNSZone(t testing.TB, endpoint, zone string, cacheTTL int) string {
	t.Helper()
	bin, err := registries.CoreDNSBinary()
	if err != nil {
		t.Fatal(err)
	}
	port := registries.FreePort(t)
	cache := ""
	if cacheTTL > 0 {
		cache = fmt.Sprintf("cache %d", cacheTTL)
	}
	corefile := filepath.Join(t.TempDir(), "Corefile")
	os.WriteFile(corefile, []byte(fmt.Sprintf(`%s:%d {
	bind 127.0.0.1
	%s
	etcd %s {
		endpoint http://%s
		path /skydns
	}
}
`, zone, port, cache, strings.TrimSuffix(zone, "."), endpoint)), 0o644)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	registries.StartCommand(t, "coredns", nil, 30*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, bin, "-conf", corefile, "-quiet")
	return addr
}

// skydnsConfig serves the skydns layout under /skydns.
func skydnsConfig(endpoint string) string {
	return skydnsZoneConfig(endpoint, "svc.internal.")
}

// skydnsZoneConfig is skydnsConfig for zone.
func skydnsZoneConfig(endpoint, zone string) string {
	return fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]
zone = %q

[http]
listen = "{{HTTP}}"

[[source]]
name = "skydns"
type = "etcd"
endpoints = [%q]
prefix = "/skydns"
format = "skydns"
`, zone, endpoint)
}

// answerSet describes a response's answer records without TTLs, sorted.
func answerSet(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		rr = dns.Copy(rr)
		rr.Header().Ttl = 0
		out = append(out, strings.ToLower(rr.String()))
	}
	slices.Sort(out)
	return out
}

// extraSet describes a response's additional records without TTLs and
// without the OPT record, sorted.
func extraSet(m *dns.Msg) []string {
	return answerSet(&dns.Msg{Answer: slices.DeleteFunc(slices.Clone(m.Extra), func(rr dns.RR) bool {
		return rr.Header().Rrtype == dns.TypeOPT
	})})
}

// skyQuery is one question both servers answer.
type skyQuery struct {
	name  string
	qtype uint16
}

func (q skyQuery) String() string { return dns.TypeToString[q.qtype] + " " + q.name }

// skyDifference is a question discodns answers differently from CoreDNS,
// on purpose: what discodns answers instead, and why.
type skyDifference struct {
	rcode  int
	answer []string // as answerSet gives it
	why    string
}

// skyDifferences are the documented differences (README, skydns layout)
// that the records of CoreDNS's own tests show, whatever the records.
var skyDifferences = map[string]skyDifference{
	"SOA skydns.test.": {dns.RcodeSuccess,
		[]string{"skydns.test.\t0\tin\tsoa\tskydns.test. hostmaster.skydns.test. 0 3600 600 86400 0"},
		"discodns's SOA names the apex as the name server, its serial is the table's version and its timers are its own"},
	"SOA region1.skydns.test.": {dns.RcodeSuccess, nil,
		"CoreDNS answers the zone's SOA for an SOA question of any name; discodns only at the apex (NODATA elsewhere)"},
	"CNAME server1.prod.region1.skydns.test.": {dns.RcodeSuccess, nil,
		"CoreDNS answers NXDOMAIN for the CNAME question of a name with records below it and none of its own; discodns NODATA: the name exists (RFC 8020)"},
	"ANY region1.skydns.test.": {dns.RcodeSuccess,
		[]string{"region1.skydns.test.\t0\tin\thinfo\t\"rfc8482\" \"\""},
		"discodns answers ANY with RFC 8482's HINFO at every name; CoreDNS with NODATA"},
	"MX mail.skydns.test.": {dns.RcodeSuccess, nil,
		"discodns answers no MX: records with mail set answer as any other"},
}

// skyFlatDifferences are the differences of a zone without ns.dns and
// apex.dns records.
var skyFlatDifferences = map[string]skyDifference{
	"NS skydns.test.": {dns.RcodeSuccess,
		[]string{"skydns.test.\t0\tin\tns\tskydns.test."},
		"without ns.dns records, discodns's apex is its own name server, as for every layout; CoreDNS answers NODATA"},
	"A skydns.test.": {dns.RcodeSuccess,
		[]string{"skydns.test.\t0\tin\ta\t127.0.0.1"},
		"without apex.dns records, discodns answers the apex's A with its own addresses (here the address it listens on); CoreDNS with every address record of the zone"},
}

// skyAsk sends q to server over network (udp or tcp), with EDNS.
func skyAsk(t *testing.T, server, network string, q skyQuery) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(q.name, q.qtype)
	m.SetEdns0(4096, false)
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("%s at %s: %v", q, server, err)
	}
	return resp
}

// skyCompare asks CoreDNS and discodns every question and fails on any
// difference in rcode, answer or additional records (TTLs aside) that is
// not a documented one; a documented one must be what it says.
func skyCompare(t *testing.T, coredns, discodns, network string, queries []skyQuery, differences ...map[string]skyDifference) {
	t.Helper()
	diffs := maps.Clone(skyDifferences)
	for _, d := range differences {
		maps.Copy(diffs, d)
	}
	for _, q := range queries {
		want, got := skyAsk(t, coredns, network, q), skyAsk(t, discodns, network, q)
		if diff, ok := diffs[q.String()]; ok {
			if want.Rcode == got.Rcode && slices.Equal(answerSet(want), answerSet(got)) && slices.Equal(extraSet(want), extraSet(got)) {
				t.Errorf("%s, a documented difference (%s), is none: both answer %s %q", q, diff.why, dns.RcodeToString[got.Rcode], answerSet(got))
			}
			if got.Rcode != diff.rcode || !slices.Equal(soaSerial0(answerSet(got)), diff.answer) {
				t.Errorf("%s, a documented difference (%s):\ndiscodns %s %q\nwant     %s %q", q, diff.why,
					dns.RcodeToString[got.Rcode], answerSet(got), dns.RcodeToString[diff.rcode], diff.answer)
			}
			continue
		}
		if want.Rcode != got.Rcode || !slices.Equal(answerSet(want), answerSet(got)) || !slices.Equal(extraSet(want), extraSet(got)) {
			t.Errorf("%s:\nCoreDNS  %s %q\n         additional %q\ndiscodns %s %q\n         additional %q", q,
				dns.RcodeToString[want.Rcode], answerSet(want), extraSet(want),
				dns.RcodeToString[got.Rcode], answerSet(got), extraSet(got))
		}
	}
}

// soaSerial0 zeroes the serial and the minimum of SOA records described by
// answerSet, which change with the table.
func soaSerial0(rrs []string) []string {
	out := slices.Clone(rrs)
	for i, rr := range out {
		if f := strings.Fields(rr); len(f) == 11 && f[3] == "soa" {
			f[6], f[10] = "0", "0"
			out[i] = strings.Join(f[:4], "\t") + "\t" + strings.Join(f[4:], " ")
		}
	}
	return out
}

// skyRecords writes records, keyed by DNS name, under /skydns, then a
// sentinel record, and waits until discodns answers the sentinel: the
// watch delivers in order, so it has everything before it too.
func skyRecords(t *testing.T, e *etcd, d *discodns, zone string, records map[string]string) {
	t.Helper()
	for name, value := range records {
		e.put(skyKey(name), value)
	}
	sentinel := fmt.Sprintf("sentinel-%d.%s", time.Now().UnixNano(), zone)
	e.put(skyKey(sentinel), `{"host":"10.255.255.254"}`)
	eventually(t, 30*time.Second, "discodns answers "+sentinel, func() error {
		resp, err := d.exchange(sentinel, dns.TypeA, "udp")
		if err != nil {
			return err
		}
		if len(resp.Answer) != 1 {
			return fmt.Errorf("%s: %d answers", sentinel, len(resp.Answer))
		}
		return nil
	})
}

// skyKey is the etcd key of a DNS name under /skydns.
func skyKey(name string) string {
	labels := dns.SplitDomainName(name)
	slices.Reverse(labels)
	return "/skydns/" + strings.Join(labels, "/")
}

// TestSkyDNSMatchesCoreDNS serves the same etcd records with CoreDNS's etcd
// plugin and with discodns's skydns layout, and asks both the same
// questions: the records and questions of CoreDNS's own etcd plugin tests
// (lookup_test.go, cname_test.go, group_test.go, zone skydns.test.), then a
// deep hierarchy of 1,000 services under five levels. The answers are the
// same, TTLs aside, or a documented difference (skyDifferences).
func TestSkyDNSMatchesCoreDNS(t *testing.T) {
	const zone = "skydns.test."
	e := startEtcd(t)
	coredns := startCoreDNSZone(t, e.endpoint(), zone, 0)
	d := startDiscodns(t, skydnsZoneConfig(e.endpoint(), zone))
	q := func(name string, qtype uint16) skyQuery { return skyQuery{name, qtype} }

	t.Run("flat", func(t *testing.T) {
		skyRecords(t, e, d, zone, map[string]string{
			"a.web.skydns.test.":  `{"host":"10.0.0.1","port":8080,"priority":10,"weight":100}`,
			"b.web.skydns.test.":  `{"host":"10.0.0.2","port":8080,"priority":10,"weight":300}`,
			"c.web.skydns.test.":  `{"host":"10.0.0.3","port":9090,"priority":20}`,
			"a.dual.skydns.test.": `{"host":"10.0.1.1","port":53}`,
			"b.dual.skydns.test.": `{"host":"2001:db8::1","port":53}`,
			"solo.skydns.test.":   `{"host":"10.0.2.1","port":80}`,
		})
		skyCompare(t, coredns, d.dns, "udp", []skyQuery{
			q("web.skydns.test.", dns.TypeA),
			q("web.skydns.test.", dns.TypeSRV),
			q("a.web.skydns.test.", dns.TypeA),
			q("dual.skydns.test.", dns.TypeA),
			q("dual.skydns.test.", dns.TypeAAAA),
			q("dual.skydns.test.", dns.TypeSRV),
			q("b.dual.skydns.test.", dns.TypeAAAA),
			q("solo.skydns.test.", dns.TypeA),
			// A record's own name answers SRV, and a record stored at
			// the service level is its own SRV target (solo.skydns.test.,
			// not solo.solo.skydns.test.).
			q("c.web.skydns.test.", dns.TypeSRV),
			q("solo.skydns.test.", dns.TypeSRV),
			q("solo.solo.skydns.test.", dns.TypeA),
			q("skydns.test.", dns.TypeNS),
			q("skydns.test.", dns.TypeA),
		}, skyFlatDifferences)
		e.del("/skydns/", clientv3.WithPrefix())
	})

	t.Run("lookup_test", func(t *testing.T) {
		// plugin/etcd/lookup_test.go, zone skydns.test.
		skyRecords(t, e, d, zone, map[string]string{
			"a.server1.dev.region1.skydns.test.":      `{"host":"dev.server1","port":8080}`,
			"a.server1.prod.region1.skydns.test.":     `{"host":"10.0.0.1","port":8080}`,
			"b.server1.prod.region1.skydns.test.":     `{"host":"10.0.0.2","port":8080}`,
			"b.server6.prod.region1.skydns.test.":     `{"host":"::1","port":8080}`,
			"a.txt.server1.prod.region1.skydns.test.": `{"text":"sometext"}`,
			"b.txt.server1.prod.region1.skydns.test.": `{"text":"moretext"}`,
			"cname.prod.region1.skydns.test.":         `{"host":"unresolvable.skydns.test"}`,
			"priority.skydns.test.":                   `{"host":"priority.server1","priority":333,"port":8080}`,
			"a.sub.region1.skydns.test.":              `{"host":"sub.server1"}`,
			"b.sub.region1.skydns.test.":              `{"host":"sub.server2","port":80}`,
			"c.sub.region1.skydns.test.":              `{"host":"10.0.0.1","port":8080}`,
			"a.targetstrip.skydns.test.":              `{"host":"10.0.0.1","port":8080,"targetstrip":1}`,
			"b.cname.skydns.test.":                    `{"host":"a.cname.skydns.test"}`,
			"a.cname.skydns.test.":                    `{"host":"b.cname.skydns.test"}`,
			"a.ns.dns.skydns.test.":                   `{"host":"10.0.0.2"}`,
			"b.ns.dns.skydns.test.":                   `{"host":"10.0.0.3"}`,
			"ns1.c.ns.dns.skydns.test.":               `{"host":"10.0.0.4","targetstrip":1}`,
			"ns2.c.ns.dns.skydns.test.":               `{"host":"10.0.0.5","targetstrip":1}`,
			// the apex's addresses (lookup_test.go's skydns_zoned.test.)
			"a1.apex.dns.skydns.test.": `{"host":"10.0.0.4"}`,
			"a2.apex.dns.skydns.test.": `{"host":"10.0.0.5"}`,
			"a3.apex.dns.skydns.test.": `{"host":"2003::8:1"}`,
			"a4.apex.dns.skydns.test.": `{"host":"2003::8:2"}`,
			// other_test.go's mail record
			"a.mail.skydns.test.": `{"host":"mx.skydns.test","priority":50,"mail":true}`,
		})
		skyCompare(t, coredns, d.dns, "udp", []skyQuery{
			q("a.server1.dev.region1.skydns.test.", dns.TypeSRV),
			q("a.SERVer1.dEv.region1.skydns.tEst.", dns.TypeSRV),
			q("doesnotexist.skydns.test.", dns.TypeA),
			q("a.server1.prod.region1.skydns.test.", dns.TypeA),
			q("a.server1.prod.region1.skydns.test.", dns.TypeSRV),
			q("b.server6.prod.region1.skydns.test.", dns.TypeAAAA),
			q("server1.prod.region1.skydns.test.", dns.TypeA),
			q("priority.skydns.test.", dns.TypeSRV),
			q("sub.region1.skydns.test.", dns.TypeSRV),
			q("targetstrip.skydns.test.", dns.TypeSRV),
			q("cname.prod.region1.skydns.test.", dns.TypeA),
			q("txt.server1.prod.region1.skydns.test.", dns.TypeTXT),
			q("*.region1.skydns.test.", dns.TypeSRV),
			q("prod.*.skydns.test.", dns.TypeSRV),
			q("prod.any.skydns.test.", dns.TypeSRV),
			q("a.cname.skydns.test.", dns.TypeA),
			q("a.server1.dev.region1.skydns.test.", dns.TypeTXT),
			q("a.server1.dev.region1.skydns.test.", dns.TypeHINFO),
			q("a.server1.nonexistent.region1.skydns.test.", dns.TypeHINFO),
			q("skydns.test.", dns.TypeSOA),
			q("skydns.test.", dns.TypeNS),
			q("a.skydns.test.", dns.TypeNS),
			q("ns.dns.skydns.test.", dns.TypeA),
			// Beyond lookup_test.go's questions: the same records asked
			// at more names and types.
			q("a.server1.dev.region1.skydns.test.", dns.TypeA),
			q("region1.skydns.test.", dns.TypeA),
			q("region1.skydns.test.", dns.TypeAAAA),
			q("region1.skydns.test.", dns.TypeTXT),
			q("prod.region1.skydns.test.", dns.TypeSRV),
			q("server6.prod.region1.skydns.test.", dns.TypeSRV),
			q("*.prod.region1.skydns.test.", dns.TypeA),
			q("any.server1.*.region1.skydns.test.", dns.TypeA),
			q("nothing.*.skydns.test.", dns.TypeA),
			q("a.txt.server1.prod.region1.skydns.test.", dns.TypeTXT),
			q("a.txt.server1.prod.region1.skydns.test.", dns.TypeA),
			q("cname.prod.region1.skydns.test.", dns.TypeCNAME),
			q("cname.prod.region1.skydns.test.", dns.TypeSRV),
			q("b.cname.skydns.test.", dns.TypeA),
			q("cname.skydns.test.", dns.TypeA),
			q("c.ns.dns.skydns.test.", dns.TypeSRV),
			q("skydns.test.", dns.TypeA),
			q("skydns.test.", dns.TypeAAAA),
			// documented differences
			q("region1.skydns.test.", dns.TypeSOA),
			q("server1.prod.region1.skydns.test.", dns.TypeCNAME),
			q("region1.skydns.test.", dns.TypeANY),
			q("mail.skydns.test.", dns.TypeMX),
		})
		e.del("/skydns/", clientv3.WithPrefix())
	})

	t.Run("cname_test and group_test", func(t *testing.T) {
		// plugin/etcd/cname_test.go and group_test.go.
		skyRecords(t, e, d, zone, map[string]string{
			"a.server1.dev.region1.skydns.test.": `{"host":"cname1.region2.skydns.test"}`,
			"cname1.region2.skydns.test.":        `{"host":"cname2.region2.skydns.test"}`,
			"cname2.region2.skydns.test.":        `{"host":"cname3.region2.skydns.test"}`,
			"cname3.region2.skydns.test.":        `{"host":"cname4.region2.skydns.test"}`,
			"cname4.region2.skydns.test.":        `{"host":"cname5.region2.skydns.test"}`,
			"cname5.region2.skydns.test.":        `{"host":"cname6.region2.skydns.test"}`,
			"cname6.region2.skydns.test.":        `{"host":"endpoint.region2.skydns.test"}`,
			"endpoint.region2.skydns.test.":      `{"host":"10.240.0.1"}`,
			"region2.skydns.test.":               `{"host":"mainendpoint.region2.skydns.test"}`,
			"cname3.region3.skydns.test.":        `{"host":"cname2.region3.skydns.test"}`,
			"cname2.region3.skydns.test.":        `{"host":"cname1.region3.skydns.test"}`,
			"cname1.region3.skydns.test.":        `{"host":"endpoint.region3.skydns.test"}`,
			"endpoint.region3.skydns.test.":      `{"text":"SOME-RECORD-TEXT"}`,
			"a.dom.skydns.test.":                 `{"host":"127.0.0.1","group":"g1"}`,
			"b.sub.dom.skydns.test.":             `{"host":"127.0.0.2","group":"g1"}`,
			"a.dom2.skydns.test.":                `{"host":"127.0.0.1","group":"g1"}`,
			"b.sub.dom2.skydns.test.":            `{"host":"127.0.0.2"}`,
			"a.dom1.skydns.test.":                `{"host":"127.0.0.1","group":"g1"}`,
			"b.sub.dom1.skydns.test.":            `{"host":"127.0.0.2","group":"g2"}`,
			"a.dom3.skydns.test.":                `{"text":"foo","group":"g1"}`,
			"b.sub.dom3.skydns.test.":            `{"text":"bar","group":"g1"}`,
		})
		skyCompare(t, coredns, d.dns, "udp", []skyQuery{
			q("a.server1.dev.region1.skydns.test.", dns.TypeSRV),
			q("region2.skydns.test.", dns.TypeCNAME),
			q("endpoint.region3.skydns.test.", dns.TypeCNAME),
			q("cname3.region3.skydns.test.", dns.TypeTXT),
			q("dom.skydns.test.", dns.TypeA),
			q("dom2.skydns.test.", dns.TypeA),
			q("dom1.skydns.test.", dns.TypeA),
			q("dom3.skydns.test.", dns.TypeTXT),
			// Beyond the tests' questions.
			q("a.server1.dev.region1.skydns.test.", dns.TypeA),
			q("region2.skydns.test.", dns.TypeA),
			q("cname1.region2.skydns.test.", dns.TypeAAAA),
			q("cname3.region3.skydns.test.", dns.TypeA),
			q("dom1.skydns.test.", dns.TypeSRV),
			q("sub.dom1.skydns.test.", dns.TypeA),
		})
		e.del("/skydns/", clientv3.WithPrefix())
	})

	t.Run("deep", func(t *testing.T) {
		// 1,000 services <svc>.<team>.<cluster>.<env>.<region>, two
		// instances each, and questions at every level.
		records := map[string]string{}
		var queries []skyQuery
		for i := range 1000 {
			svc := fmt.Sprintf("svc%d.team%d.c%d.%s.r%d.%s", i%5, i/5%5, i/25%4, []string{"prod", "stage", "dev", "qa", "perf"}[i/100%5], i/500, zone)
			for inst := range 2 {
				records[fmt.Sprintf("i%d.%s", inst, svc)] = fmt.Sprintf(`{"host":"10.%d.%d.%d","port":%d,"weight":%d}`, 1+inst, i/250, i%250+1, 8000+inst, 10*(inst+1))
			}
			queries = append(queries, skyQuery{svc, dns.TypeA}, skyQuery{"i1." + svc, dns.TypeSRV})
			if i%25 == 0 {
				// a team, a cluster and wildcards under them
				team := strings.SplitN(svc, ".", 2)[1]
				cluster := strings.SplitN(team, ".", 2)[1]
				queries = append(queries, skyQuery{team, dns.TypeSRV}, skyQuery{cluster, dns.TypeA},
					skyQuery{"svc2.*." + cluster, dns.TypeSRV}, skyQuery{"i0.*.any." + cluster, dns.TypeA})
			}
		}
		queries = append(queries, skyQuery{"r1." + zone, dns.TypeAAAA}, skyQuery{"svc9.team1.c1.prod.r0." + zone, dns.TypeA})
		skyRecords(t, e, d, zone, records)
		skyCompare(t, coredns, d.dns, "tcp", queries)
	})
}
