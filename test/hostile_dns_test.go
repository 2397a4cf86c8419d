package test

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/discodns/discodns/test/registries"
)

// Hostile DNS clients (issue 14): what a careless or hostile network can
// send must get a right answer, and cost a bounded amount.

// dnsTableWith adds lines to the [dns] table of config.
func dnsTableWith(config, lines string) string {
	return strings.Replace(config, "[dns]\n", "[dns]\n"+lines, 1)
}

// exchangeFrom sends m to server over network ("udp" or "tcp") from the
// local address src (any 127.x.y.z needs no set-up on Linux).
func exchangeFrom(src netip.Addr, server string, m *dns.Msg, network string) (*dns.Msg, error) {
	d := &net.Dialer{LocalAddr: &net.UDPAddr{IP: src.AsSlice()}}
	if network == "tcp" {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	c := &dns.Client{Net: network, Timeout: 5 * time.Second, Dialer: d, UDPSize: dns.MaxMsgSize}
	resp, _, err := c.Exchange(m, server)
	return resp, err
}

// sendRawUDP sends packet to server over UDP and returns the reply, or an
// error when none comes within a generous wait.
func sendRawUDP(server string, packet []byte) (*dns.Msg, error) {
	conn, err := net.Dial("udp", server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.Write(packet); err != nil {
		return nil, err
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, dns.MaxMsgSize)
	n, err := conn.Read(buf)
	if err != nil {
		return nil, err
	}
	resp := new(dns.Msg)
	return resp, resp.Unpack(buf[:n])
}

// TestHostileDNSServiceNamedDNS: a service named dns, or any other, cannot
// hide the zone's name server: the NS and SOA MNAME targets answer with
// discodns's own address while the service answers too.
func TestHostileDNSServiceNamedDNS(t *testing.T) {
	need(t, "dig")
	e := startEtcd(t)
	e.put("/services/dns/10.9.0.1:53", ``)
	e.put("/services/ns/10.9.0.2:53", ``)
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	d.waitInstances("dns.svc.internal.", 1)
	d.waitInstances("ns.svc.internal.", 1)
	listenIP, _, _ := strings.Cut(d.dns, ":")

	ns, err := dig(t, d.dns, "NS", "svc.internal.")
	if err != nil {
		t.Fatal(err)
	}
	soa, err := dig(t, d.dns, "SOA", "svc.internal.")
	if err != nil {
		t.Fatal(err)
	}
	if len(ns.answer) != 1 || len(soa.answer) != 1 {
		t.Fatalf("NS answer %v, SOA answer %v: want one record each", ns.answer, soa.answer)
	}
	for what, target := range map[string]string{
		"NS target": ns.answer[0].(*dns.NS).Ns,
		"SOA MNAME": soa.answer[0].(*dns.SOA).Ns,
	} {
		r, err := dig(t, d.dns, "A", target)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != "NOERROR" || !r.flags["aa"] || len(r.answer) != 1 || r.answer[0].(*dns.A).A.String() != listenIP {
			t.Errorf("%s %s: %s aa=%v %v, want NOERROR with discodns's address %s\n%s", what, target, r.status, r.flags["aa"], r.answer, listenIP, r.raw)
		}
	}
	if len(ns.additional) != 1 || ns.additional[0].Header().Name != ns.answer[0].(*dns.NS).Ns {
		t.Errorf("NS glue %v, want the name server's address", ns.additional)
	}
	// The services still answer for themselves.
	for name, want := range map[string]string{"dns.svc.internal.": "10.9.0.1", "ns.svc.internal.": "10.9.0.2"} {
		r, err := dig(t, d.dns, "A", name)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.answer) != 1 || r.answer[0].(*dns.A).A.String() != want {
			t.Errorf("%s: %v, want %s", name, r.answer, want)
		}
	}
}

// TestHostileDNSRateLimitFlood: a flood from many source addresses (a
// spoofed-source flood, as far as the server can tell) keeps the rate
// limiter's table within client_rate_limit_clients, counting evictions,
// and every client is still answered.
func TestHostileDNSRateLimitFlood(t *testing.T) {
	const size, sources = 16, 300
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", ``)
	d := startDiscodns(t, dnsTableWith(etcdConfig(e.endpoint()), fmt.Sprintf("client_rate_limit = 1000\nclient_rate_limit_clients = %d\n", size)))
	d.waitInstances("web.svc.internal.", 1)

	// Watch the table's size while the flood runs.
	var (
		mu      sync.Mutex
		largest = -1.0
	)
	watch := func() {
		v := d.gauge("discodns_dns_rate_limit_clients")
		mu.Lock()
		largest = max(largest, v)
		mu.Unlock()
	}
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
				watch()
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, sources)
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				src := netip.AddrFrom4([4]byte{127, 0, byte(1 + i/250), byte(1 + i%250)})
				m, err := exchangeFrom(src, d.dns, newQuery("web.svc.internal.", dns.TypeA), "udp")
				if err == nil && (m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1) {
					err = fmt.Errorf("answer %v", m)
				}
				if err != nil {
					errs <- fmt.Errorf("from %s: %v", src, err)
				}
			}
		})
	}
	for i := range sources {
		work <- i
	}
	close(work)
	wg.Wait()
	close(stop)
	<-watched
	watch()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if largest < 0 || largest > size {
		t.Errorf("discodns_dns_rate_limit_clients reached %v, want at most %d (and the metric present)", largest, size)
	}
	if got := d.gauge("discodns_dns_rate_limit_clients"); got != size {
		t.Errorf("discodns_dns_rate_limit_clients = %v after %d clients, want the full table, %d", got, sources, size)
	}
	if got := d.gauge("discodns_dns_rate_limit_evictions_total"); got < sources-size {
		t.Errorf("discodns_dns_rate_limit_evictions_total = %v, want at least %d (%d clients in a table of %d)", got, sources-size, sources, size)
	}
}

// newQuery is a question for name and qtype, RD set.
func newQuery(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

// TestHostileDNSProtocol: the protocol details of issue 14, each through
// the running binary.
func TestHostileDNSProtocol(t *testing.T) {
	need(t, "dig")
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", ``)
	// Forwarding on, for networks the tests' loopback clients are not in.
	upstream := fmt.Sprintf("127.0.0.1:%d", registries.FreePort(t))
	d := startDiscodns(t, etcdConfig(e.endpoint())+fmt.Sprintf("\n[forward]\nupstreams = [%q]\nallow = [\"192.0.2.0/24\"]\n", upstream))
	d.waitInstances("web.svc.internal.", 1)

	t.Run("a UDP query over 512 octets is answered", func(t *testing.T) {
		for _, size := range []int{600, 1232, 4000} {
			m := newQuery("web.svc.internal.", dns.TypeA)
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, size-m.Len()-4)})
			resp, err := exchangeFrom(netip.MustParseAddr("127.0.0.1"), d.dns, m, "udp")
			if err != nil || resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 {
				t.Errorf("a query of %d octets: %v %v", m.Len(), resp, err)
			}
		}
	})

	t.Run("zone transfers are refused, without RA", func(t *testing.T) {
		for _, qtype := range []uint16{dns.TypeAXFR, dns.TypeIXFR} {
			for _, network := range []string{"udp", "tcp"} {
				m, err := d.exchange("svc.internal.", qtype, network)
				if err != nil || m.Rcode != dns.RcodeRefused || m.RecursionAvailable || len(m.Answer) != 0 {
					t.Errorf("%s over %s: %v %v, want REFUSED without RA", dns.TypeToString[qtype], network, m, err)
				}
			}
		}
	})

	t.Run("refused forwarding carries no RA", func(t *testing.T) {
		r, err := dig(t, d.dns, "A", "example.com.")
		if err != nil {
			t.Fatal(err)
		}
		if r.status != "REFUSED" || r.flags["ra"] {
			t.Errorf("a client outside forward.allow: %s, flags %v; want REFUSED without ra\n%s", r.status, r.flags, r.raw)
		}
		m, err := d.exchange("example.com.", dns.TypeA, "tcp")
		if err != nil || m.Rcode != dns.RcodeRefused || m.RecursionAvailable {
			t.Errorf("over TCP: %v %v, want REFUSED without RA", m, err)
		}
	})

	t.Run("two OPT records get FORMERR", func(t *testing.T) {
		m := newQuery("web.svc.internal.", dns.TypeA)
		m.Extra = append(m.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 1232}},
			&dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT, Class: 1232}})
		packet, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := sendRawUDP(d.dns, packet)
		if err != nil || resp.Rcode != dns.RcodeFormatError || len(resp.Answer) != 0 {
			t.Errorf("two OPT records: %v %v, want FORMERR", resp, err)
		}
	})

	t.Run("malformed cookies get FORMERR", func(t *testing.T) {
		for octets, want := range map[int]string{8: "NOERROR", 16: "NOERROR", 40: "NOERROR", 7: "FORMERR", 9: "FORMERR", 12: "FORMERR", 41: "FORMERR"} {
			m := newQuery("web.svc.internal.", dns.TypeA)
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: strings.Repeat("a5", octets)})
			resp, err := exchangeFrom(netip.MustParseAddr("127.0.0.1"), d.dns, m, "udp")
			if err != nil || dns.RcodeToString[resp.Rcode] != want {
				t.Errorf("a cookie of %d octets: %v %v, want %s", octets, resp, err, want)
			}
		}
		// dig sends a client cookie and a server cookie of 2 octets: 10.
		r, err := dig(t, d.dns, "+cookie=0102030405060708090a", "A", "web.svc.internal.")
		if err != nil || r.status != "FORMERR" {
			t.Errorf("dig with a cookie of 10 octets: %v %v, want FORMERR", r, err)
		}
	})

	t.Run("an escaped dot is no label separator", func(t *testing.T) {
		// One label x.svc under internal.: outside the zone, refused here
		// (forwarding to this client is not allowed), never NXDOMAIN.
		r, err := dig(t, d.dns, "A", `x\.svc.internal.`)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != "REFUSED" || r.flags["aa"] {
			t.Errorf(`x\.svc.internal.: %s aa=%v, want REFUSED, not an answer of the zone`+"\n%s", r.status, r.flags["aa"], r.raw)
		}
		// In the zone, web\.x is one label: no such service.
		r, err = dig(t, d.dns, "A", `web\.x.svc.internal.`)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != "NXDOMAIN" || !r.flags["aa"] {
			t.Errorf(`web\.x.svc.internal.: %s aa=%v, want NXDOMAIN from the zone`, r.status, r.flags["aa"])
		}
	})
}

// TestHostileDNSMetrics: what fails to parse is counted, queries over the
// rate limit are counted as such and not as answers, and BADVERS is
// labelled BADVERS.
func TestHostileDNSMetrics(t *testing.T) {
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:80", ``)
	d := startDiscodns(t, dnsTableWith(etcdConfig(e.endpoint()), "client_rate_limit = 5\n"))
	d.waitInstances("web.svc.internal.", 1)

	t.Run("messages that do not parse are counted", func(t *testing.T) {
		// A short header, a name cut short, a compression loop: the
		// first gets no reply, the others FORMERR.
		valid, _ := newQuery("web.svc.internal.", dns.TypeA).Pack()
		loop := append(append([]byte(nil), valid[:12]...), 0xc0, 12, 0, 1, 0, 1)
		for _, packet := range [][]byte{{0x12, 0x34, 0}, valid[:20], loop} {
			conn, err := net.Dial("udp", d.dns)
			if err != nil {
				t.Fatal(err)
			}
			conn.Write(packet)
			conn.Close()
		}
		eventually(t, 30*time.Second, "unparsable messages counted", func() error {
			if v := d.gauge(`discodns_dns_rejected_total{reason="malformed"}`); v != 3 {
				return fmt.Errorf("discodns_dns_rejected_total{reason=\"malformed\"} = %v, want 3", v)
			}
			return nil
		})
	})

	t.Run("BADVERS is labelled BADVERS", func(t *testing.T) {
		m := newQuery("web.svc.internal.", dns.TypeA)
		m.SetEdns0(1232, false)
		m.IsEdns0().SetVersion(1)
		resp, err := exchangeFrom(netip.MustParseAddr("127.0.3.1"), d.dns, m, "udp")
		if err != nil || resp.Rcode != dns.RcodeBadVers {
			t.Fatalf("EDNS version 1: %v %v, want BADVERS", resp, err)
		}
		eventually(t, 30*time.Second, "BADVERS counted", func() error {
			if v := d.gauge(`discodns_dns_requests_total{proto="udp",rcode="BADVERS",type="A"}`); v != 1 {
				return fmt.Errorf("requests with rcode BADVERS: %v, want 1", v)
			}
			return nil
		})
	})

	t.Run("queries over the rate limit are not counted as answers", func(t *testing.T) {
		// A burst over TCP from one client, 5 a second allowed: the
		// answers are counted as answers, the refusals only as rate
		// limited.
		src := netip.MustParseAddr("127.0.3.2")
		answered, refused := 0, 0
		for range 100 {
			resp, err := exchangeFrom(src, d.dns, newQuery("web.svc.internal.", dns.TypeA), "tcp")
			switch {
			case err != nil:
				t.Fatal(err)
			case resp.Rcode == dns.RcodeSuccess:
				answered++
			case resp.Rcode == dns.RcodeRefused:
				refused++
			default:
				t.Fatalf("over TCP: %v", resp)
			}
		}
		if refused == 0 {
			t.Fatalf("100 queries at once, 5 a second allowed: none refused")
		}
		eventually(t, 30*time.Second, "the burst counted", func() error {
			var errs []string
			for metric, want := range map[string]int{
				`discodns_dns_requests_total{proto="tcp",rcode="NOERROR",type="A"}`: answered,
				`discodns_dns_rejected_total{reason="rate_limited"}`:                refused,
			} {
				if v := d.gauge(metric); v != float64(want) {
					errs = append(errs, fmt.Sprintf("%s = %v, want %d", metric, v, want))
				}
			}
			if v, err := d.metric(`discodns_dns_requests_total{proto="tcp",rcode="REFUSED",type="A"}`); err == nil {
				errs = append(errs, "the rate-limited refusals counted as REFUSED answers: "+v)
			}
			if len(errs) > 0 {
				return fmt.Errorf("%s (%d answered, %d refused)", strings.Join(errs, "; "), answered, refused)
			}
			return nil
		})
	})
}
