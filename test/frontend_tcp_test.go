package test

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// tcpFrontConfig is etcdConfig with the TCP settings in lines (of the
// [dns] table).
func tcpFrontConfig(endpoint, lines string) string {
	return dnsTableWith(etcdConfig(endpoint), lines+"\n")
}

// answeredFrom is an eventually check: a TCP client at the loopback address
// src gets a NOERROR answer with records to name's qtype from d.
func answeredFrom(d *discodns, src, name string, qtype uint16) func() error {
	return func() error {
		q := new(dns.Msg)
		q.SetQuestion(name, qtype)
		resp, err := exchangeFrom(netip.MustParseAddr(src), d.dns, q, "tcp")
		if err != nil {
			return err
		}
		if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) == 0 {
			return fmt.Errorf("answer %v", resp)
		}
		return nil
	}
}

// TestTCPNonReadingClients: 20 clients that pipeline queries with large
// answers (SRV of a service with 200 instances) and never read their
// answers, holding every TCP connection the server allows, do not stop a
// new TCP client from being answered within a few seconds: each write has a
// deadline, and a client that does not read is closed.
func TestTCPNonReadingClients(t *testing.T) {
	e := startEtcd(t)
	for i := range 200 {
		e.put(fmt.Sprintf("/services/big/10.0.%d.%d:8080", i/250, i%250+1), "")
	}
	e.put("/services/web/10.1.0.1:80", "")
	d := startDiscodns(t, tcpFrontConfig(e.endpoint(), `max_tcp_connections = 20
tcp_idle_timeout = "1m"`))
	d.waitInstances("big.svc.internal.", 200)
	big, err := d.exchange("_big._tcp.svc.internal.", dns.TypeSRV, "tcp")
	if err != nil || len(big.Answer) != 200 {
		t.Fatalf("SRV of big over TCP: %v %v", big, err)
	}
	t.Logf("an answer is %d octets", big.Len())

	for range 20 {
		c, err := net.Dial("tcp", d.dns)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			// Queries until the server stops reading them, never an
			// answer read; the writes end when the test does.
			conn := &dns.Conn{Conn: c}
			q := new(dns.Msg)
			q.SetQuestion("_big._tcp.svc.internal.", dns.TypeSRV)
			for conn.WriteMsg(q) == nil {
			}
		}()
	}
	eventually(t, 10*time.Second, "20 TCP connections open", func() error {
		if n := d.gauge("discodns_dns_tcp_connections"); n != 20 {
			return fmt.Errorf("%v open", n)
		}
		return nil
	})
	eventually(t, 20*time.Second, "a new TCP client answered", answeredFrom(d, "127.0.0.2", "web.svc.internal.", dns.TypeA))
	eventually(t, 20*time.Second, "the non-reading clients closed on a write timeout", func() error {
		v, err := d.metric(`discodns_dns_tcp_closed_total{reason="write_timeout"}`)
		if n, _ := strconv.Atoi(v); err != nil || n < 1 {
			return fmt.Errorf("%q %v", v, err)
		}
		return nil
	})
}

// TestTCPIdleFlood: 1,000 idle connections from one client do not stop
// another client from being answered over TCP within a few seconds: with
// the default per-client cap most are closed at once; with a per-client
// cap above the total, they fill the total and the one idle longest is
// closed for the new client (RFC 7766 section 6.2.3).
func TestTCPIdleFlood(t *testing.T) {
	e := startEtcd(t)
	e.put("/services/web/10.1.0.1:80", "")
	for _, tc := range []struct {
		name, dns string
		reason    string // a bound that must have been hit; "" none
	}{
		{"default per-client cap", `max_tcp_connections = 100
tcp_idle_timeout = "1m"`, "client_limit"},
		{"per-client cap above the total", `max_tcp_connections = 100
max_tcp_connections_per_client = 2000
tcp_idle_timeout = "1m"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := startDiscodns(t, tcpFrontConfig(e.endpoint(), tc.dns))
			d.waitInstances("web.svc.internal.", 1)
			for range 1000 {
				c, err := net.Dial("tcp", d.dns)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			eventually(t, 20*time.Second, "a client from another address answered over TCP",
				answeredFrom(d, "127.0.0.2", "web.svc.internal.", dns.TypeA))
			if tc.reason != "" {
				v, err := d.metric(fmt.Sprintf(`discodns_dns_tcp_closed_total{reason=%q}`, tc.reason))
				if n, _ := strconv.Atoi(v); err != nil || n < 1 {
					t.Errorf("%s closes counted: %q %v, want some", tc.reason, v, err)
				}
			}
		})
	}
}
