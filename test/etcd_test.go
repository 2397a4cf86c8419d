package test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func etcdConfig(endpoint string) string {
	return fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]
zone = "svc.internal."
ttl = "5s"
negative_ttl = "3s"

[http]
listen = "{{HTTP}}"

[log]
level = "debug"

[[source]]
name = "etcd"
type = "etcd"
endpoints = [%[1]q]
prefix = "/services"
format = "discox"
resync_interval = "1m"

[[source]]
name = "grpc"
type = "etcd"
endpoints = [%[1]q]
prefix = "/grpc"
format = "grpc"
`, endpoint)
}

// instanceCount waits until /v1/services shows want instances of fqdn.
func (d *discodns) waitInstances(fqdn string, want int) {
	d.t.Helper()
	eventually(d.t, 10*time.Second, fmt.Sprintf("%s has %d instances", fqdn, want), func() error {
		svcs, err := d.services()
		if err != nil {
			return err
		}
		if got := len(svcs[fqdn]); got != want {
			return fmt.Errorf("%d instances: %v", got, svcs[fqdn])
		}
		return nil
	})
}

func TestEtcdEndToEnd(t *testing.T) {
	need(t, "dig")
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:8080", `{"weight":5,"priority":1,"tags":["blue"],"meta":{"version":"1.2"}}`)
	e.put("/services/web/10.0.0.2:8080", `{"weight":10,"priority":2}`)
	e.put("/services/web/10.0.0.3:8081", ``)
	e.put("/services/web/10.0.0.9:9000", `{{{ not json`) // skipped alone
	e.put("/services/dual/[2001:db8::5]:53", ``)
	e.put("/services2/web/10.9.9.9:1", ``) // another prefix: never read
	e.put("/grpc/greeter/10.0.0.7:50051", `{"Op":0,"Addr":"10.0.0.7:50051","Metadata":null}`)
	for i := range 10 {
		e.put(fmt.Sprintf("/services/wide/10.0.3.%d:80", i+1), ``)
	}
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	d.waitInstances("web.svc.internal.", 3)
	d.waitInstances("wide.svc.internal.", 10)
	d.waitInstances("greeter.svc.internal.", 1)

	t.Run("dig SRV with priority, weight, port, targets and glue", func(t *testing.T) {
		r, err := dig(t, d.dns, "SRV", "_web._tcp.svc.internal.")
		if err != nil {
			t.Fatal(err)
		}
		if r.status != "NOERROR" || !r.flags["aa"] || len(r.answer) != 3 {
			t.Fatalf("status %s flags %v answers %d:\n%s", r.status, r.flags, len(r.answer), r.raw)
		}
		want := []string{"1 1 8081 10-0-0-3-8081.web.svc.internal.", "1 5 8080 10-0-0-1-8080.web.svc.internal.", "2 10 8080 10-0-0-2-8080.web.svc.internal."}
		var got []string
		glue := map[string]string{}
		for _, rr := range r.additional {
			if a, ok := rr.(*dns.A); ok {
				glue[a.Hdr.Name] = a.A.String()
			}
		}
		for _, rr := range r.answer {
			srv := rr.(*dns.SRV)
			got = append(got, fmt.Sprintf("%d %d %d %s", srv.Priority, srv.Weight, srv.Port, srv.Target))
			ip := strings.ReplaceAll(strings.TrimSuffix(strings.Split(srv.Target, ".")[0], "-"+fmt.Sprint(srv.Port)), "-", ".")
			if glue[srv.Target] != ip {
				t.Errorf("glue for %s = %q, want %s", srv.Target, glue[srv.Target], ip)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("SRV %v, want %v", got, want)
		}
	})

	t.Run("every instance comes first in turn", func(t *testing.T) {
		// Repeated questions are answered from packed answers: each of the
		// ten instances must still lead an A and an SRV answer in turn.
		for _, q := range []struct {
			name  string
			qtype uint16
		}{{"wide.svc.internal.", dns.TypeA}, {"_wide._tcp.svc.internal.", dns.TypeSRV}} {
			first := map[string]int{}
			for range 40 {
				m := new(dns.Msg)
				m.SetQuestion(q.name, q.qtype)
				m.SetEdns0(1232, false)
				resp, err := dns.Exchange(m, d.dns)
				if err != nil || len(resp.Answer) != 10 {
					t.Fatalf("%s: %v %v", q.name, err, resp)
				}
				switch rr := resp.Answer[0].(type) {
				case *dns.A:
					first[rr.A.String()]++
				case *dns.SRV:
					first[rr.Target]++
				}
			}
			if len(first) != 10 {
				t.Errorf("%s %s: %d distinct first records in 40 queries, want 10: %v", q.name, dns.TypeToString[q.qtype], len(first), first)
			}
		}
	})

	t.Run("dig A rotates", func(t *testing.T) {
		firsts := map[string]bool{}
		for range 4 {
			r, err := dig(t, d.dns, "A", "web.svc.internal.")
			if err != nil {
				t.Fatal(err)
			}
			if len(r.answer) != 3 || !r.flags["aa"] {
				t.Fatalf("answers %d flags %v", len(r.answer), r.flags)
			}
			firsts[r.answer[0].(*dns.A).A.String()] = true
		}
		if len(firsts) < 2 {
			t.Errorf("the first address never changed over 4 queries: %v", firsts)
		}
	})

	t.Run("dig negative answers", func(t *testing.T) {
		for _, tc := range []struct{ qtype, name, status string }{
			{"AAAA", "web.svc.internal.", "NOERROR"},             // v4-only service: NODATA
			{"A", "nope.svc.internal.", "NXDOMAIN"},              // unknown service
			{"SRV", "_tcp.svc.internal.", "NOERROR"},             // empty non-terminal
			{"A", "web2.svc.internal.", "NXDOMAIN"},              // only under /services2
			{"A", "10-0-0-9-9000.web.svc.internal.", "NXDOMAIN"}, // the garbage value
		} {
			r, err := dig(t, d.dns, tc.qtype, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if r.status != tc.status || !r.flags["aa"] || len(r.answer) != 0 ||
				len(r.authority) != 1 || r.authority[0].Header().Rrtype != dns.TypeSOA {
				t.Errorf("%s %s: status %s flags %v answer %d authority %v, want %s with SOA and AA",
					tc.qtype, tc.name, r.status, r.flags, len(r.answer), r.authority, tc.status)
			} else if soa := r.authority[0].(*dns.SOA); soa.Minttl != 3 {
				t.Errorf("SOA minimum %d, want negative_ttl 3", soa.Minttl)
			}
		}
	})

	t.Run("TXT metadata, tags, AAAA and the grpc layout", func(t *testing.T) {
		for _, tc := range []struct{ qtype, name, want string }{
			{"TXT", "10-0-0-1-8080.web.svc.internal.", `"version=1.2"`},
			{"A", "blue.web.svc.internal.", "10.0.0.1"},
			{"SRV", "_web._blue.svc.internal.", "10-0-0-1-8080.web.svc.internal."},
			{"AAAA", "dual.svc.internal.", "2001:db8::5"},
			{"SRV", "greeter.svc.internal.", "50051"},
			{"PTR", "2.0.0.10.in-addr.arpa.", "10-0-0-2-8080.web.svc.internal."},
		} {
			r, err := dig(t, d.dns, tc.qtype, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.answer) != 1 || !strings.Contains(r.answer[0].String(), tc.want) {
				t.Errorf("%s %s: %v, want one record with %s", tc.qtype, tc.name, r.answer, tc.want)
			}
		}
	})

	t.Run("garbage value is counted, siblings served", func(t *testing.T) {
		v, err := d.metric(`discodns_watcher_decode_errors_total{source="etcd"}`)
		if err != nil || v == "0" {
			t.Errorf("decode errors = %q (%v), want at least 1", v, err)
		}
	})

	t.Run("Go resolver", func(t *testing.T) {
		res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, network, d.dns)
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cname, srvs, err := res.LookupSRV(ctx, "web", "tcp", "svc.internal")
		if err != nil || len(srvs) != 3 || cname != "_web._tcp.svc.internal." {
			t.Fatalf("LookupSRV: %q %v %v", cname, srvs, err)
		}
		if srvs[2].Priority != 2 || srvs[2].Port != 8080 {
			t.Errorf("SRV not ordered by priority: %+v", srvs[2])
		}
		for _, s := range srvs {
			addrs, err := res.LookupHost(ctx, s.Target)
			if err != nil || len(addrs) != 1 || !strings.HasPrefix(addrs[0], "10.0.0.") {
				t.Errorf("LookupHost(%s) = %v %v", s.Target, addrs, err)
			}
		}
		// A and AAAA together: the v4-only service's NODATA must not fail it.
		ips, err := res.LookupIPAddr(ctx, "web.svc.internal")
		if err != nil || len(ips) != 3 {
			t.Errorf("LookupIPAddr = %v %v", ips, err)
		}
		_, err = res.LookupHost(ctx, "nope.svc.internal")
		if dnsErr, ok := err.(*net.DNSError); !ok || !dnsErr.IsNotFound {
			t.Errorf("unknown service: %v, want not found", err)
		}
	})

	t.Run("a deleted key and an expired lease disappear", func(t *testing.T) {
		e.del("/services/web/10.0.0.3:8081")
		d.waitInstances("web.svc.internal.", 2)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lease, err := e.cli.Grant(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		e.put("/services/web/10.0.0.4:8080", ``, clientv3.WithLease(lease.ID))
		d.waitInstances("web.svc.internal.", 3)
		// No keep-alive: etcd expires the lease and deletes the key.
		d.waitInstances("web.svc.internal.", 2)
		r, err := dig(t, d.dns, "A", "web.svc.internal.")
		if err != nil || len(r.answer) != 2 {
			t.Errorf("after delete and expiry: %v %v", r, err)
		}
	})

	t.Run("200 instances: TC over UDP without EDNS, complete over TCP", func(t *testing.T) {
		for i := range 200 {
			e.put(fmt.Sprintf("/services/big/10.1.%d.%d:9000", i/250, i%250+1), ``)
		}
		d.waitInstances("big.svc.internal.", 200)
		r, err := dig(t, d.dns, "+noedns", "+ignore", "A", "big.svc.internal.")
		if err != nil {
			t.Fatal(err)
		}
		if !r.flags["tc"] || len(r.answer) == 0 || len(r.answer) >= 200 {
			t.Errorf("UDP: flags %v answers %d, want tc and a partial answer", r.flags, len(r.answer))
		}
		r, err = dig(t, d.dns, "+noedns", "A", "big.svc.internal.") // dig retries over TCP on TC
		if err != nil {
			t.Fatal(err)
		}
		if r.flags["tc"] || len(r.answer) != 200 || !strings.Contains(r.raw, "(TCP)") {
			t.Errorf("TCP retry: flags %v answers %d", r.flags, len(r.answer))
		}
	})

	t.Run("two pipelined queries on one TCP connection", func(t *testing.T) {
		conn, err := dns.DialTimeout("tcp", d.dns, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		a, aaaa := new(dns.Msg), new(dns.Msg)
		a.SetQuestion("web.svc.internal.", dns.TypeA)
		aaaa.SetQuestion("web.svc.internal.", dns.TypeAAAA)
		for _, m := range []*dns.Msg{a, aaaa} {
			if err := conn.WriteMsg(m); err != nil {
				t.Fatal(err)
			}
		}
		got := map[uint16]*dns.Msg{}
		for range 2 {
			m, err := conn.ReadMsg()
			if err != nil {
				t.Fatal(err)
			}
			got[m.Id] = m
		}
		if got[a.Id] == nil || len(got[a.Id].Answer) != 2 || got[aaaa.Id] == nil || got[aaaa.Id].Rcode != dns.RcodeSuccess {
			t.Errorf("pipelined answers: %v", got)
		}
	})
}

func TestEtcdOutage(t *testing.T) {
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", ``)
	e.put("/services/web/10.0.0.2:80", ``)
	e.put("/services/db/10.0.1.1:5432", ``)
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	d.waitInstances("web.svc.internal.", 2)

	// Query continuously; every answer must come from the last known state.
	stopQueries := d.queryLoop("web.svc.internal.", 20*time.Millisecond)

	e.stop()
	stoppedAt := time.Now()
	eventually(t, 10*time.Second, "source reported stale", func() error {
		_, body, err := d.get("/readyz")
		if err != nil {
			return err
		}
		if !strings.Contains(body, `"stale"`) {
			return fmt.Errorf("/readyz: %s", body)
		}
		if v, err := d.metric(`discodns_source_state{source="etcd",state="stale"}`); err != nil || v != "1" {
			return fmt.Errorf("stale metric %q %v", v, err)
		}
		return nil
	})
	time.Sleep(time.Until(stoppedAt.Add(10 * time.Second)))
	if svcs, err := d.services(); err != nil || len(svcs["web.svc.internal."]) != 2 {
		t.Errorf("while etcd is down: %v %v", svcs, err)
	}

	e.start()
	e.del("/services/web/10.0.0.2:80")
	e.put("/services/web/10.0.0.3:80", ``)
	e.put("/services/cache/10.0.2.1:6379", ``)
	e.del("/services/db/10.0.1.1:5432")
	want := map[string][]string{
		"web.svc.internal.":   {"10.0.0.1:80", "10.0.0.3:80"},
		"cache.svc.internal.": {"10.0.2.1:6379"},
	}
	eventually(t, 30*time.Second, "table converges to etcd", func() error {
		svcs, err := d.services()
		if err != nil {
			return err
		}
		for k := range svcs {
			slices.Sort(svcs[k])
		}
		if fmt.Sprint(svcs) != fmt.Sprint(want) {
			return fmt.Errorf("table %v, etcd %v", svcs, want)
		}
		if v, err := d.metric(`discodns_source_state{source="etcd",state="connected"}`); err != nil || v != "1" {
			return fmt.Errorf("connected metric %q %v", v, err)
		}
		return nil
	})
	queries, failures, last := stopQueries()
	if failures > 0 || queries < 100 {
		t.Errorf("%d of %d queries failed during the outage; last: %v", failures, queries, last)
	}
}
