package test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/discodns/discodns/test/registries"
)

const compareServices, compareInstances = 100, 10

// fixedAnswerServer is the reference of BenchmarkCompareDNS, run as its
// own process: a bare miekg/dns server on DISCODNS_FIXED_ADDR that writes
// one precomputed answer (svc-0.svc.internal. A, ten records) with the
// query's ID.
func fixedAnswerServer() error {
	m := new(dns.Msg)
	m.SetQuestion("svc-0.svc.internal.", dns.TypeA)
	m.Response, m.Authoritative = true, true
	for i := range compareInstances {
		rr, _ := dns.NewRR(fmt.Sprintf("svc-0.svc.internal. 5 IN A 10.0.0.%d", i+1))
		m.Answer = append(m.Answer, rr)
	}
	fixed, err := m.Pack()
	if err != nil {
		return err
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		out := make([]byte, len(fixed))
		copy(out, fixed)
		out[0], out[1] = byte(req.Id>>8), byte(req.Id)
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

var (
	qpsRe     = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	latencyRe = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
)

// dnsperfRun runs dnsperf against server for seconds and returns the
// queries per second and the average latency.
func dnsperfRun(b *testing.B, server, queries string, seconds int) (float64, time.Duration) {
	host, port, _ := net.SplitHostPort(server)
	out, err := exec.Command(need(b, "dnsperf"), "-s", host, "-p", port, "-d", queries,
		"-l", strconv.Itoa(seconds), "-c", "4", "-q", "200").CombinedOutput()
	if err != nil {
		b.Fatalf("dnsperf %s: %v\n%s", server, err, out)
	}
	q, l := qpsRe.FindSubmatch(out), latencyRe.FindSubmatch(out)
	if q == nil || l == nil {
		b.Fatalf("dnsperf printed no figures:\n%s", out)
	}
	qps, _ := strconv.ParseFloat(string(q[1]), 64)
	lat, _ := strconv.ParseFloat(string(l[1]), 64)
	return qps, time.Duration(lat * float64(time.Second))
}

// BenchmarkCompareDNS measures discodns beside the tools users run today,
// on one machine and the same data (100 services of 10 instances), with
// dnsperf sending half A and half SRV queries: CoreDNS 1.15 with the etcd
// plugin (without and with `cache 5`) reading the same etcd records
// (skydns layout), Consul's DNS interface, and a bare miekg/dns server
// writing one precomputed answer (the reference). Every target is measured
// twice, in turn; the table gives the better run and the ratios.
//
//	./test/bench/run.sh   (or: go test ./test -run '^$' -bench CompareDNS -benchtime 1x)
func BenchmarkCompareDNS(b *testing.B) {
	seconds := 10
	if s := os.Getenv("DISCODNS_BENCH_SECONDS"); s != "" {
		seconds, _ = strconv.Atoi(s)
	}
	e := startEtcd(b)
	for s := range compareServices {
		for i := range compareInstances {
			e.put(fmt.Sprintf("/skydns/internal/svc/svc-%d/i%d", s, i),
				fmt.Sprintf(`{"host":"10.%d.%d.%d","port":%d}`, 1+s/250, s%250, i+1, 8000+i))
		}
	}
	consul := registries.StartConsulWithDNS(b)
	registerMany(b, consulClient(b, consul), compareServices, compareInstances)
	d := startDiscodns(b, skydnsConfig(e.endpoint()))
	d.waitInstances("svc-99.svc.internal.", compareInstances)
	fixedAddr := fmt.Sprintf("127.0.0.1:%d", registries.FreePort(b))
	fixedHelper, fixedArgv := helperArgv("fixed-answer")
	registries.StartCommand(b, "reference", []string{fixedHelper, "DISCODNS_FIXED_ADDR=" + fixedAddr}, 10*time.Second,
		udpReady(fixedAddr, "svc-0.svc.internal."), fixedArgv...)

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
	zoneQueries := queryFile("zone", "svc.internal.")
	targets := []struct {
		name, addr, queries string
	}{
		{"discodns", d.dns, zoneQueries},
		{"CoreDNS etcd, cache 5", startCoreDNS(b, e.endpoint(), 5), zoneQueries},
		{"CoreDNS etcd, no cache", startCoreDNS(b, e.endpoint(), 0), zoneQueries},
		{"Consul DNS", consul.DNSAddr(), queryFile("consul", "service.consul.")},
		{"miekg/dns fixed answer (reference)", fixedAddr, zoneQueries},
	}
	for _, tg := range targets[1:4] {
		zone := "svc.internal."
		if strings.HasPrefix(tg.name, "Consul") {
			zone = "service.consul."
		}
		eventually(b, 30*time.Second, tg.name+" answers", func() error {
			if !udpReady(tg.addr, "svc-99."+zone)() {
				return fmt.Errorf("%s does not answer svc-99.%s yet", tg.name, zone)
			}
			return nil
		})
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
	for b.Loop() {
		for range 2 {
			for _, tg := range targets {
				qps, lat := dnsperfRun(b, tg.addr, tg.queries, seconds)
				if qps > best[tg.name].qps {
					best[tg.name] = figure{qps, lat}
				}
			}
		}
	}
	ref, cached := best[targets[4].name].qps, best[targets[1].name].qps
	var r strings.Builder
	fmt.Fprintf(&r, "dnsperf, %d s per run, 2 runs each, best shown; %d services of %d instances, half A and half SRV\n",
		seconds, compareServices, compareInstances)
	fmt.Fprintf(&r, "| %-36s | %9s | %11s | %17s | %14s |\n", "server", "qps", "avg latency", "x CoreDNS cached", "x reference")
	fmt.Fprintf(&r, "|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 38), strings.Repeat("-", 11), strings.Repeat("-", 13), strings.Repeat("-", 19), strings.Repeat("-", 16))
	for _, tg := range targets {
		f := best[tg.name]
		fmt.Fprintf(&r, "| %-36s | %9.0f | %11v | %17.2f | %14.2f |\n", tg.name, f.qps, f.latency.Round(time.Microsecond), f.qps/cached, f.qps/ref)
	}
	fmt.Print(r.String())
	b.ReportMetric(best["discodns"].qps, "discodns-qps")
	b.ReportMetric(best["discodns"].qps/cached, "x-coredns-cached")
	b.ReportMetric(best["discodns"].qps/ref, "x-reference")
}
