package test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/discodns/discodns/test/registries"
)

// BenchmarkCompareDNS serves compareServices services of compareInstances
// instances from every server it measures, under compareZone.
const (
	compareServices, compareInstances = 100, 10
	compareZone                       = "svc.internal."
)

// compareInstance is instance i of service s in BenchmarkCompareDNS: its
// etcd key (skydns layout, label i<i>), its address and its port.
func compareInstance(s, i int) (key, addr string, port int) {
	return fmt.Sprintf("/skydns/internal/svc/svc-%d/i%d", s, i),
		fmt.Sprintf("10.%d.%d.%d", 1+s/250, s%250, i+1), 8000 + i
}

// dnsperfEDNSSize is the UDP size that dnsperf -e advertises; the answers
// checked before each measurement are asked with it too.
const dnsperfEDNSSize = 4096

// referenceKey is what the reference's answer to a query depends on.
type referenceKey struct {
	name  string // lowercase
	qtype uint16
	edns  bool
}

// referenceAnswers packs the reference's answer to every question that
// BenchmarkCompareDNS's query file holds, with and without EDNS: for
// svc-<s>.<compareZone>, A asks the instances' addresses and SRV one SRV
// record per instance (target i<i>.svc-<s>.<compareZone>) with the
// targets' addresses in Additional, dropped without EDNS when they do not
// fit 512 octets, as discodns does.
func referenceAnswers() (map[referenceKey][]byte, error) {
	answers := map[referenceKey][]byte{}
	for s := range compareServices {
		name := fmt.Sprintf("svc-%d.%s", s, compareZone)
		a, srv := new(dns.Msg), new(dns.Msg)
		a.SetQuestion(name, dns.TypeA)
		srv.SetQuestion(name, dns.TypeSRV)
		for i := range compareInstances {
			_, addr, port := compareInstance(s, i)
			target := fmt.Sprintf("i%d.%s", i, name)
			a.Answer = append(a.Answer, &dns.A{Hdr: hdr(name, dns.TypeA), A: net.ParseIP(addr)})
			srv.Answer = append(srv.Answer, &dns.SRV{Hdr: hdr(name, dns.TypeSRV), Priority: 10, Weight: 10, Port: uint16(port), Target: target})
			srv.Extra = append(srv.Extra, &dns.A{Hdr: hdr(target, dns.TypeA), A: net.ParseIP(addr)})
		}
		for _, m := range []*dns.Msg{a, srv} {
			m.Response, m.Authoritative, m.RecursionDesired, m.Compress = true, true, false, true
			for _, edns := range []bool{false, true} {
				r := m.Copy()
				if edns {
					r.SetEdns0(1232, false) // as discodns advertises
				} else if r.Len() > dns.MinMsgSize {
					r.Extra = nil
				}
				packed, err := r.Pack()
				if err != nil {
					return nil, err
				}
				answers[referenceKey{name, m.Question[0].Qtype, edns}] = packed
			}
		}
	}
	return answers, nil
}

// hdr is the header of an IN record of name with TTL 5.
func hdr(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: 5}
}

// fixedAnswerServer is the reference of BenchmarkCompareDNS, run as its
// own process: a bare miekg/dns server on DISCODNS_FIXED_ADDR that answers
// each question of the query file from a table of precomputed packed
// answers (referenceAnswers). Per query it does what discodns's wire cache
// does for a repeated question: look the question up, copy the packed
// answer and patch the ID, the RD flag and the question's spelling. Any
// other question gets NXDOMAIN.
func fixedAnswerServer() error {
	answers, err := referenceAnswers()
	if err != nil {
		return err
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		var packed []byte
		if len(req.Question) == 1 {
			q := req.Question[0]
			packed = answers[referenceKey{strings.ToLower(q.Name), q.Qtype, req.IsEdns0() != nil}]
		}
		if packed == nil {
			w.WriteMsg(new(dns.Msg).SetRcode(req, dns.RcodeNameError))
			return
		}
		out := make([]byte, len(packed))
		copy(out, packed)
		out[0], out[1] = byte(req.Id>>8), byte(req.Id)
		if req.RecursionDesired {
			out[2] |= 1
		}
		// The question as sent: its lowercase form has the same length.
		dns.PackDomainName(req.Question[0].Name, out, 12, nil, false)
		w.Write(out)
	})
	srv := &dns.Server{Addr: os.Getenv("DISCODNS_FIXED_ADDR"), Net: "udp", Handler: handler}
	return srv.ListenAndServe()
}

// udpReady reports whether a DNS server at addr answers qname over UDP.
func udpReady(addr, qname string) func() bool {
	return func() bool {
		m := new(dns.Msg)
		m.SetQuestion(qname, dns.TypeA)
		c := &dns.Client{Timeout: 200 * time.Millisecond}
		resp, _, err := c.Exchange(m, addr)
		return err == nil && len(resp.Answer) > 0
	}
}

// checkAnswers returns an error unless the server at addr answers svc-<s>
// in zone as BenchmarkCompareDNS expects, asked as dnsperf asks (UDP,
// EDNS): NOERROR and one A record per instance for A, one SRV record per
// instance and an address record for each target in Additional for SRV.
func checkAnswers(addr, zone string, s int) error {
	name := fmt.Sprintf("svc-%d.%s", s, zone)
	c := &dns.Client{Timeout: 2 * time.Second}
	count := func(rrs []dns.RR, rrtype uint16) int {
		n := 0
		for _, rr := range rrs {
			if rr.Header().Rrtype == rrtype {
				n++
			}
		}
		return n
	}
	for _, qtype := range []uint16{dns.TypeA, dns.TypeSRV} {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.SetEdns0(dnsperfEDNSSize, false)
		resp, _, err := c.Exchange(m, addr)
		if err != nil {
			return fmt.Errorf("%s %s: %v", name, dns.TypeToString[qtype], err)
		}
		answers, extra := count(resp.Answer, qtype), count(resp.Extra, dns.TypeA)
		if qtype == dns.TypeA {
			extra = compareInstances // nothing expected in Additional
		}
		if resp.Rcode != dns.RcodeSuccess || answers != compareInstances || extra != compareInstances {
			return fmt.Errorf("%s %s: %s with %d %s answers and %d A in Additional, want NOERROR with %d and %d:\n%v",
				name, dns.TypeToString[qtype], dns.RcodeToString[resp.Rcode], answers, dns.TypeToString[qtype],
				count(resp.Extra, dns.TypeA), compareInstances, compareInstances, resp)
		}
	}
	return nil
}

// maxLost is the fraction of queries a dnsperf run may lose (no answer
// within its 5 s timeout) before the benchmark fails.
const maxLost = 0.001

// The figures of dnsperf's report beyond the counts that parseDnsperf
// (soak_report_test.go) reads.
var (
	qpsRe     = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	latencyRe = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
)

// dnsperfQPS runs dnsperf for seconds (UDP, EDNS) against the server
// called name at addr and returns the queries per second and the average
// latency. It fails the benchmark when dnsperf fails, loses more than
// maxLost of its queries or gets any response code but NOERROR.
func dnsperfQPS(b *testing.B, name, addr, queries string, seconds int) (float64, time.Duration) {
	return dnsperfQPSOn(b, "", name, addr, queries, seconds)
}

// dnsperfQPSOn is dnsperfQPS with dnsperf on cpus (a taskset list), or,
// when cpus is "", wherever the test process runs.
func dnsperfQPSOn(b *testing.B, cpus, name, addr, queries string, seconds int) (float64, time.Duration) {
	host, port, _ := net.SplitHostPort(addr)
	args := []string{need(b, "dnsperf"), "-s", host, "-p", port, "-d", queries, "-e",
		"-l", strconv.Itoa(seconds), "-c", "4", "-q", "200"}
	if cpus != "" {
		args = append([]string{need(b, "taskset"), "-c", cpus}, args...)
	}
	start := time.Now()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	r := parseDnsperf("udp", start, time.Now(), string(out), err)
	switch {
	case r.err != nil:
		b.Fatalf("dnsperf on %s: %v", name, r.err)
	case r.sent == 0 || float64(r.lost) > maxLost*float64(r.sent):
		b.Fatalf("dnsperf on %s: %d of %d queries lost, more than %.1f%%:\n%s", name, r.lost, r.sent, 100*maxLost, lastLines(string(out), 12))
	case len(r.rcodes) != 1 || r.rcodes["NOERROR"] == 0:
		b.Fatalf("dnsperf on %s: responses by rcode %v, want NOERROR only:\n%s", name, r.rcodes, lastLines(string(out), 12))
	}
	q, l := qpsRe.FindSubmatch(out), latencyRe.FindSubmatch(out)
	if q == nil || l == nil {
		b.Fatalf("dnsperf on %s printed no figures:\n%s", name, out)
	}
	qps, _ := strconv.ParseFloat(string(q[1]), 64)
	lat, _ := strconv.ParseFloat(string(l[1]), 64)
	return qps, time.Duration(lat * float64(time.Second))
}

// startCompareEtcd starts an etcd holding the compared services and the
// churn services, in the skydns layout.
func startCompareEtcd(b *testing.B) *etcd {
	e := startEtcd(b)
	for s := range compareServices {
		for i := range compareInstances {
			key, addr, port := compareInstance(s, i)
			e.put(key, fmt.Sprintf(`{"host":%q,"port":%d}`, addr, port))
		}
	}
	for s := range churnServices {
		for i := range compareInstances {
			e.put(churnInstance(s, i, 80))
		}
	}
	return e
}

// churnServices are the services churn changes; no query file asks them.
const churnServices = 10

// churn changes one instance of the churn services in etcd every
// 1/perSecond seconds (a new port each time, so every write is a change)
// until the returned stop is called, which reports how many changes were
// written per second. With bystander, the same writes go to keys outside
// discodns's prefix: etcd and the writers do the same work, discodns none.
func churn(b *testing.B, e *etcd, perSecond int, bystander bool) (stop func() float64) {
	var wg sync.WaitGroup
	quit := make(chan struct{})
	start, written := time.Now(), 0
	wg.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			key, value := churnInstance(n%churnServices, n/churnServices%compareInstances, 1024+n%60000)
			if bystander {
				key = "/bystander" + key
			}
			_, err := e.cli.Put(ctx, key, value)
			cancel()
			if err != nil {
				b.Errorf("churn: %v", err)
				return
			}
			written++
		}
	})
	return func() float64 {
		close(quit)
		wg.Wait()
		return float64(written) / time.Since(start).Seconds()
	}
}

// churnInstance is the etcd key and value of instance i of churn service
// s with port.
func churnInstance(s, i, port int) (key, value string) {
	return fmt.Sprintf("/skydns/internal/svc/churn-%d/i%d", s, i), fmt.Sprintf(`{"host":"10.200.%d.%d","port":%d}`, s, i+1, port)
}

// churnRate is how many changes per second churn writes during the rows
// measured under churn.
const churnRate = 100

// BenchmarkCompareDNS measures discodns beside the tools users run today,
// on one machine and the same data (100 services of 10 instances), with
// dnsperf sending half A and half SRV queries over UDP with EDNS: CoreDNS
// 1.15 with the etcd plugin (without and with `cache 5`) reading the same
// etcd records (skydns layout), Consul's DNS interface, and a bare
// miekg/dns server answering each question from precomputed packed answers
// (the reference, see fixedAnswerServer). discodns and CoreDNS with cache
// are measured again while churn writes 100 changes per second to etcd
// into 10 services that no query asks (every change still publishes a new
// snapshot to discodns). Every server must first answer an A and an SRV
// query for every service with every instance (checkAnswers), and every
// dnsperf run must get NOERROR only and lose at most maxLost of its
// queries. Every target is measured twice, in turn; the table gives the
// better run and the ratios.
//
//	./test/bench/run.sh   (or: go test ./test -run '^$' -bench CompareDNS -benchtime 1x)
func BenchmarkCompareDNS(b *testing.B) {
	seconds := 10
	if s := os.Getenv("DISCODNS_BENCH_SECONDS"); s != "" {
		seconds, _ = strconv.Atoi(s)
	}
	e := startCompareEtcd(b)
	consul := registries.StartConsulWithDNS(b)
	registerMany(b, consulClient(b, consul), compareServices, compareInstances)
	d := startDiscodns(b, skydnsConfig(e.endpoint()))
	fixedAddr := fmt.Sprintf("127.0.0.1:%d", registries.FreePort(b))
	fixedHelper, fixedArgv := helperArgv("fixed-answer")
	registries.StartCommand(b, "reference", []string{fixedHelper, "DISCODNS_FIXED_ADDR=" + fixedAddr}, 10*time.Second,
		udpReady(fixedAddr, "svc-0."+compareZone), fixedArgv...)

	dir := b.TempDir()
	queryFile := func(name, zone string) string {
		var q strings.Builder
		for s := range compareServices {
			fmt.Fprintf(&q, "svc-%d.%s A\nsvc-%d.%s SRV\n", s, zone, s, zone)
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(q.String()), 0o644)
		return p
	}
	zoneQueries := queryFile("zone", compareZone)
	coreDNSCached := startCoreDNS(b, e.endpoint(), 5)
	targets := []struct {
		name, addr, zone, queries string
		churn                     bool
	}{
		{"discodns", d.dns, compareZone, zoneQueries, false},
		{"discodns, etcd churn 100/s", d.dns, compareZone, zoneQueries, true},
		{"CoreDNS etcd, cache 5", coreDNSCached, compareZone, zoneQueries, false},
		{"CoreDNS etcd, cache 5, churn 100/s", coreDNSCached, compareZone, zoneQueries, true},
		{"CoreDNS etcd, no cache", startCoreDNS(b, e.endpoint(), 0), compareZone, zoneQueries, false},
		{"Consul DNS", consul.DNSAddr(), "service.consul.", queryFile("consul", "service.consul."), false},
		{"miekg/dns precomputed answers (reference)", fixedAddr, compareZone, zoneQueries, false},
	}
	const cachedRow, refRow = 2, 6
	for _, tg := range targets {
		// Every service listed, and answered right, before measuring.
		for s := range compareServices {
			eventually(b, 30*time.Second, tg.name+" answers svc-"+strconv.Itoa(s), func() error {
				return checkAnswers(tg.addr, tg.zone, s)
			})
		}
	}

	type figure struct {
		qps     float64
		latency time.Duration
	}
	best := map[string]figure{}
	if path := os.Getenv("DISCODNS_BENCH_PPROF"); path != "" {
		// A CPU profile of discodns during its first run.
		go func() {
			resp, err := http.Get(d.http + fmt.Sprintf("/debug/pprof/profile?seconds=%d", max(seconds-2, 1)))
			if err == nil {
				defer resp.Body.Close()
				f, _ := os.Create(path)
				io.Copy(f, resp.Body)
				f.Close()
			}
		}()
	}
	var churned, snapshots []float64 // per churn run: changes written, discodns snapshots, per second
	for b.Loop() {
		for range 2 {
			for _, tg := range targets {
				var stop func() float64
				version := d.gauge("discodns_cache_snapshot_version")
				start := time.Now()
				if tg.churn {
					stop = churn(b, e, churnRate, false)
				}
				qps, lat := dnsperfQPS(b, tg.name, tg.addr, tg.queries, seconds)
				if tg.churn {
					churned = append(churned, stop())
					snapshots = append(snapshots, (d.gauge("discodns_cache_snapshot_version")-version)/time.Since(start).Seconds())
				}
				if qps > best[tg.name].qps {
					best[tg.name] = figure{qps, lat}
				}
			}
		}
	}
	ref, cached := best[targets[refRow].name].qps, best[targets[cachedRow].name].qps
	var r strings.Builder
	fmt.Fprintf(&r, "dnsperf, %d s per run, 2 runs each, best shown; %d services of %d instances, half A and half SRV, UDP with EDNS\n",
		seconds, compareServices, compareInstances)
	fmt.Fprintf(&r, "churn: %.0f and %.0f etcd changes/s written in the rows so marked, discodns published %.0f snapshots/s at least\n",
		slices.Min(churned), slices.Max(churned), slices.Min(snapshots))
	fmt.Fprintf(&r, "| %-42s | %9s | %11s | %17s | %14s |\n", "server", "qps", "avg latency", "x CoreDNS cached", "x reference")
	fmt.Fprintf(&r, "|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 44), strings.Repeat("-", 11), strings.Repeat("-", 13), strings.Repeat("-", 19), strings.Repeat("-", 16))
	for _, tg := range targets {
		f := best[tg.name]
		fmt.Fprintf(&r, "| %-42s | %9.0f | %11v | %17.2f | %14.2f |\n", tg.name, f.qps, f.latency.Round(time.Microsecond), f.qps/cached, f.qps/ref)
	}
	fmt.Print(r.String())
	b.ReportMetric(best["discodns"].qps, "discodns-qps")
	b.ReportMetric(best["discodns"].qps/cached, "x-coredns-cached")
	b.ReportMetric(best["discodns"].qps/ref, "x-reference")
	b.ReportMetric(best[targets[1].name].qps/ref, "churn-x-reference")
}
