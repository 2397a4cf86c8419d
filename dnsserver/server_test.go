package dnsserver

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// serve starts a real UDP+TCP server on a free loopback port.
func serve(t *testing.T) (addr string, metrics *Metrics) {
	t.Helper()
	return serveWith(t, Options{UDPSize: 1232}, nil)
}

// serveWith is serve with options, and a function that may change the
// handler before it serves.
func serveWith(t *testing.T, opt Options, prepare func(*Handler)) (addr string, metrics *Metrics) {
	t.Helper()
	reg := prometheus.NewRegistry()
	metrics = NewMetrics(reg)
	h, _ := fixture(t, opt)
	if prepare != nil {
		prepare(h)
	}
	h.metrics = metrics
	srv, err := Listen(ListenConfig{Addrs: []string{"127.0.0.1:0"}, TCPIdleTimeout: 2 * time.Second, MaxTCPConnections: 8}, h, metrics, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv.Addrs()[0].String(), metrics
}

func TestUDPTruncationThenTCP(t *testing.T) {
	addr, metrics := serve(t)
	// The port is shared: UDP and TCP listen on the same number.
	tcpAddr := addr
	udp := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	resp, _, err := udp.Exchange(query("big.svc.internal.", dns.TypeA), addr)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Truncated || len(resp.Answer) == 0 || len(resp.Answer) >= 200 {
		t.Fatalf("UDP: TC=%v answers=%d, want TC=1 and a partial answer", resp.Truncated, len(resp.Answer))
	}
	tcp := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	resp, _, err = tcp.Exchange(query("big.svc.internal.", dns.TypeA), tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Truncated || len(resp.Answer) != 200 {
		t.Fatalf("TCP: TC=%v answers=%d, want all 200", resp.Truncated, len(resp.Answer))
	}
	// Metrics are recorded after the answer is written: wait for them.
	counted := func(c prometheus.Collector) float64 {
		deadline := time.Now().Add(2 * time.Second)
		for testutil.ToFloat64(c) != 1 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		return testutil.ToFloat64(c)
	}
	if got := counted(metrics.truncated[0]); got != 1 {
		t.Errorf("udp truncations counted %v, want 1", got)
	}
	if got := counted(metrics.requests.WithLabelValues("tcp", "A", "NOERROR")); got != 1 {
		t.Errorf("tcp A NOERROR counted %v, want 1", got)
	}
}

func TestTCPPipelined(t *testing.T) {
	addr, _ := serve(t)
	conn, err := dns.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	a := query("web.svc.internal.", dns.TypeA)
	aaaa := query("web.svc.internal.", dns.TypeAAAA)
	// glibc sends A and AAAA back to back before reading.
	for _, m := range []*dns.Msg{a, aaaa} {
		if err := conn.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	got := map[uint16]*dns.Msg{}
	for range 2 {
		resp, err := conn.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		got[resp.Id] = resp
	}
	if r := got[a.Id]; r == nil || len(r.Answer) != 3 {
		t.Errorf("A on a shared connection: %v", r)
	}
	if r := got[aaaa.Id]; r == nil || r.Rcode != dns.RcodeSuccess || len(r.Ns) != 1 {
		t.Errorf("AAAA on a shared connection: %v", r)
	}
}

func TestMalformedPackets(t *testing.T) {
	addr, metrics := serve(t)
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	valid, _ := query("web.svc.internal.", dns.TypeA).Pack()
	twoQuestions := append([]byte(nil), valid...)
	twoQuestions[5] = 2 // QDCOUNT 2 with one question present
	loop := append([]byte(nil), valid[:12]...)
	loop = append(loop, 0xc0, 12, 0, 1, 0, 1) // a name pointing at itself
	for _, pkt := range [][]byte{
		{0x12},                    // shorter than a header
		valid[:14],                // cut inside the question
		twoQuestions,              // counts that lie
		loop,                      // compression loop
		append(valid, 0xde, 0xad), // trailing garbage
		[]byte(strings.Repeat("\xff", 600)),
	} {
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	// The server is still answering.
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	resp, _, err := c.Exchange(query("web.svc.internal.", dns.TypeA), addr)
	if err != nil || len(resp.Answer) != 3 {
		t.Fatalf("after garbage: %v %v", resp, err)
	}
	// The lying counts were answered FORMERR (and counted), not crashed on.
	deadline := time.Now().Add(2 * time.Second)
	for testutil.ToFloat64(metrics.rejected.WithLabelValues("FORMERR")) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no FORMERR counted for malformed packets")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClientRateLimit: over the limit, UDP queries are dropped or get an
// empty truncated answer, TCP queries get REFUSED.
func TestClientRateLimit(t *testing.T) {
	// The limiter's clock stands still: no token comes back during the test.
	frozen := time.Now()
	addr, metrics := serveWith(t, Options{UDPSize: 1232, ClientRateLimit: 5}, func(h *Handler) {
		h.idx.Load().set.limiter.now = func() time.Time { return frozen }
	})
	udp := &dns.Client{Net: "udp", Timeout: 300 * time.Millisecond}
	answered, truncated, dropped := 0, 0, 0
	for range 20 {
		resp, _, err := udp.Exchange(query("web.svc.internal.", dns.TypeA), addr)
		switch {
		case err != nil:
			dropped++
		case resp.Truncated && len(resp.Answer) == 0:
			truncated++
		case len(resp.Answer) > 0:
			answered++
		}
	}
	if answered != 5 || truncated == 0 || dropped == 0 || answered+truncated+dropped != 20 {
		t.Errorf("UDP: %d answered, %d truncated, %d dropped; want about 5 answered, then both", answered, truncated, dropped)
	}
	tcp := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
	resp, _, err := tcp.Exchange(query("web.svc.internal.", dns.TypeA), addr)
	if err != nil || resp.Rcode != dns.RcodeRefused {
		t.Errorf("TCP over the limit: %v %v", resp, err)
	}
	if got := testutil.ToFloat64(metrics.rejected.WithLabelValues("rate_limited")); got < 10 {
		t.Errorf("rate_limited counted %v", got)
	}
}

// TestTCPCapAndIdleTimeout: idle connections beyond the cap cannot starve
// others for long: the server closes idle connections after the idle
// timeout (2 s here), and a waiting client is then served.
func TestTCPCapAndIdleTimeout(t *testing.T) {
	addr, _ := serve(t) // 8 connections at most, 2 s idle timeout
	var idle []net.Conn
	for range 8 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	// A ninth client is not served while the cap is reached...
	probe := &dns.Client{Net: "tcp", Timeout: time.Second}
	if resp, _, err := probe.Exchange(query("web.svc.internal.", dns.TypeA), addr); err == nil {
		t.Fatalf("a ninth connection was served while 8 were open: %v", resp)
	}
	// ...but once the idle ones are dropped.
	start := time.Now()
	tcp := &dns.Client{Net: "tcp", Timeout: 15 * time.Second}
	resp, _, err := tcp.Exchange(query("web.svc.internal.", dns.TypeA), addr)
	if err != nil || len(resp.Answer) == 0 {
		t.Fatalf("the waiting client was not served: %v %v", resp, err)
	}
	t.Logf("the ninth client waited %v", time.Since(start))
	for i, c := range idle {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("idle connection %d got data instead of being closed", i)
		}
	}
}
