package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// patience bounds every wait in these tests: long enough for a loaded
// machine, so that only a server that never answers fails them.
const patience = 10 * time.Second

// serve starts a real UDP+TCP server on a free loopback port.
func serve(t *testing.T) (addr string, metrics *Metrics) {
	t.Helper()
	return serveWith(t, Options{UDPSize: 1232}, nil)
}

// tcpIdleTimeout is the servers' TCP idle timeout in these tests.
const tcpIdleTimeout = 3 * time.Second

// serveWith is serve with options, and a function that may change the
// handler before it serves.
func serveWith(t *testing.T, opt Options, prepare func(*Handler)) (addr string, metrics *Metrics) {
	t.Helper()
	return serveListen(t, opt, prepare, ListenConfig{TCPIdleTimeout: tcpIdleTimeout, MaxTCPConnections: 8})
}

// serveListen is serveWith with the listen configuration lc (its address
// set here).
func serveListen(t *testing.T, opt Options, prepare func(*Handler), lc ListenConfig) (addr string, metrics *Metrics) {
	t.Helper()
	reg := prometheus.NewRegistry()
	metrics = NewMetrics(reg)
	h, _ := fixture(t, opt)
	h.metrics = metrics
	h.SetOptions(h.set.Options) // a rate limiter that counts into metrics
	if prepare != nil {
		prepare(h)
	}
	lc.Addrs = []string{"127.0.0.1:0"}
	srv, err := Listen(lc, h, metrics, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv.Addrs()[0].String(), metrics
}

func TestUDPTruncationThenTCP(t *testing.T) {
	addr, metrics := serve(t)
	// The port is shared: UDP and TCP listen on the same number.
	tcpAddr := addr
	udp := &dns.Client{Net: "udp", Timeout: patience}
	resp, _, err := udp.Exchange(query("big.svc.internal.", dns.TypeA), addr)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Truncated || len(resp.Answer) == 0 || len(resp.Answer) >= 200 {
		t.Fatalf("UDP: TC=%v answers=%d, want TC=1 and a partial answer", resp.Truncated, len(resp.Answer))
	}
	tcp := &dns.Client{Net: "tcp", Timeout: patience}
	resp, _, err = tcp.Exchange(query("big.svc.internal.", dns.TypeA), tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Truncated || len(resp.Answer) != 200 {
		t.Fatalf("TCP: TC=%v answers=%d, want all 200", resp.Truncated, len(resp.Answer))
	}
	// Metrics are recorded after the answer is written: wait for them.
	counted := func(c prometheus.Collector) float64 {
		deadline := time.Now().Add(patience)
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

// dialTCP serves and opens one TCP connection to the server, closed when
// the test ends, with a deadline of patience.
func dialTCP(t *testing.T) *dns.Conn {
	t.Helper()
	addr, _ := serve(t)
	conn, err := dns.DialTimeout("tcp", addr, patience)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(patience))
	return conn
}

func TestTCPPipelined(t *testing.T) {
	conn := dialTCP(t)
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

// TestTCPManyQueries: one connection carries any number of queries (RFC
// 7766), pipelined: none is dropped after some count.
func TestTCPManyQueries(t *testing.T) {
	conn := dialTCP(t)
	const n = 500
	go func() {
		for i := range n {
			q := query("web.svc.internal.", dns.TypeA)
			q.Id = uint16(i)
			if conn.WriteMsg(q) != nil {
				return
			}
		}
	}()
	for i := range n {
		resp, err := conn.ReadMsg()
		if err != nil {
			t.Fatalf("reply %d of %d: %v", i+1, n, err)
		}
		if len(resp.Answer) != 3 {
			t.Fatalf("reply %d: %v", i+1, resp)
		}
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
	c := &dns.Client{Net: "udp", Timeout: patience}
	resp, _, err := c.Exchange(query("web.svc.internal.", dns.TypeA), addr)
	if err != nil || len(resp.Answer) != 3 {
		t.Fatalf("after garbage: %v %v", resp, err)
	}
	// The lying counts were answered FORMERR (and counted), not crashed
	// on; the short header, the cut question and the loop do not parse,
	// and are counted.
	deadline := time.Now().Add(patience)
	for testutil.ToFloat64(metrics.rejected.WithLabelValues("FORMERR")) < 1 || testutil.ToFloat64(metrics.rejected.WithLabelValues("malformed")) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("FORMERR counted %v times, malformed %v: want 1 and 3",
				testutil.ToFloat64(metrics.rejected.WithLabelValues("FORMERR")), testutil.ToFloat64(metrics.rejected.WithLabelValues("malformed")))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLargeUDPQuery: a UDP query longer than 512 octets (a large EDNS
// option), within the size discodns advertises, is answered.
func TestLargeUDPQuery(t *testing.T) {
	addr, _ := serve(t)
	for _, size := range []int{1200, 4000} {
		q := withEDNS(query("web.svc.internal.", dns.TypeA))
		q.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_PADDING{Padding: make([]byte, size-q.Len()-4)}}
		c := &dns.Client{Net: "udp", Timeout: patience, UDPSize: 1232}
		resp, _, err := c.Exchange(q, addr)
		if err != nil || resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 3 {
			t.Errorf("a query of %d octets: %v %v", q.Len(), resp, err)
		}
	}
}

// TestClientRateLimit: over the limit, UDP queries are dropped or get an
// empty truncated answer, TCP queries get REFUSED.
func TestClientRateLimit(t *testing.T) {
	// The limiter's clock stands still: no token comes back during the test.
	frozen := time.Now()
	addr, metrics := serveWith(t, Options{UDPSize: 1232, ClientRateLimit: 5, ClientRateLimitClients: 100}, func(h *Handler) {
		h.idx.Load().set.limiter.now = func() time.Time { return frozen }
	})
	// Twenty queries at once on one socket, then every reply that comes
	// within a generous wait: the ones that never come were dropped.
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 20 {
		q := query("web.svc.internal.", dns.TypeA)
		q.Id = uint16(i + 1)
		pkt, _ := q.Pack()
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	answered, truncated, replies := 0, 0, map[uint16]bool{}
	buf := make([]byte, 65535)
	conn.SetReadDeadline(time.Now().Add(patience / 2))
	for {
		n, err := conn.Read(buf)
		if err != nil {
			break // the wait is over: no more replies are coming
		}
		resp := new(dns.Msg)
		if err := resp.Unpack(buf[:n]); err != nil || replies[resp.Id] || resp.Id < 1 || resp.Id > 20 {
			t.Fatalf("reply %d: %v (unpack %v)", resp.Id, resp, err)
		}
		replies[resp.Id] = true
		switch {
		case resp.Truncated && len(resp.Answer) == 0:
			truncated++
		case len(resp.Answer) > 0:
			answered++
		}
		if len(replies) == 20 {
			break
		}
	}
	dropped := 20 - len(replies)
	if answered != 5 || truncated == 0 || dropped == 0 || answered+truncated != len(replies) {
		t.Errorf("UDP: %d answered, %d truncated, %d dropped; want 5 answered, then both", answered, truncated, dropped)
	}
	tcp := &dns.Client{Net: "tcp", Timeout: patience}
	resp, _, err := tcp.Exchange(query("web.svc.internal.", dns.TypeA), addr)
	if err != nil || resp.Rcode != dns.RcodeRefused {
		t.Errorf("TCP over the limit: %v %v", resp, err)
	}
	if got := testutil.ToFloat64(metrics.rejected.WithLabelValues("rate_limited")); got < 10 {
		t.Errorf("rate_limited counted %v", got)
	}
	// Only the answers count as requests: no NOERROR for the truncated
	// replies, no REFUSED for the TCP one.
	udpOK, tcpRefused := metrics.requests.WithLabelValues("udp", "A", "NOERROR"), metrics.requests.WithLabelValues("tcp", "A", "REFUSED")
	if testutil.ToFloat64(udpOK) != 5 || testutil.ToFloat64(tcpRefused) != 0 {
		t.Errorf("requests counted: %v UDP NOERROR (want the 5 answered), %v TCP REFUSED (want 0)", testutil.ToFloat64(udpOK), testutil.ToFloat64(tcpRefused))
	}
}

// TestTCPCapAndIdleTimeout: idle connections at the cap cannot starve
// others: the one idle longest is closed to admit a new client (RFC 7766
// section 6.2.3), and the server closes the others when they send no query.
func TestTCPCapAndIdleTimeout(t *testing.T) {
	addr, metrics := serve(t) // 8 connections at most
	var idle []net.Conn
	for range 8 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	waitFor(t, "8 connections counted", func() bool { return testutil.ToFloat64(metrics.tcpConns) == 8 })
	// A ninth client is served at once...
	tcp := &dns.Client{Net: "tcp", Timeout: patience, Dialer: fromAddr("127.0.0.2")}
	resp, _, err := tcp.Exchange(query("web.svc.internal.", dns.TypeA), addr)
	if err != nil || len(resp.Answer) == 0 {
		t.Fatalf("a ninth client was not served: %v %v", resp, err)
	}
	// ...the oldest idle one closed for it.
	if got := testutil.ToFloat64(metrics.tcpClosedBy.WithLabelValues(closedIdleEvicted)); got != 1 {
		t.Errorf("idle_evicted counted %v, want 1", got)
	}
	// The server closed each idle connection.
	for i, c := range idle {
		wantClosed(t, c, fmt.Sprintf("idle connection %d", i))
	}
}

// wantClosed fails the test unless the server closes c within patience:
// EOF or a reset, not silence.
func wantClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(patience))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("%s: read %v, want EOF or a reset from the server", what, err)
	}
}

// fromAddr is a dialer from the loopback address ip, to be another client.
func fromAddr(ip string) *net.Dialer {
	return &net.Dialer{Timeout: patience, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
}

// TestTCPBounds: each bound on TCP connections closes what is over it,
// counts it, and leaves another client served.
func TestTCPBounds(t *testing.T) {
	for _, tc := range []struct {
		name         string
		max, client  int
		open         int  // idle connections opened first, from 127.0.0.1
		reject       bool // and one more from 127.0.0.1 is closed at once
		reason       string
		wantReasonAt float64
	}{
		{"client limit", 8, 2, 2, true, closedClientLimit, 1},
		{"server limit, idle evicted", 2, 8, 2, false, closedIdleEvicted, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, metrics := serveListen(t, Options{UDPSize: 1232}, nil,
				ListenConfig{TCPIdleTimeout: tcpIdleTimeout, MaxTCPConnections: tc.max, MaxTCPConnectionsPerClient: tc.client})
			for range tc.open {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
			}
			waitFor(t, "the connections counted", func() bool { return testutil.ToFloat64(metrics.tcpConns) == float64(tc.open) })
			if tc.reject {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				wantClosed(t, c, "a connection over the bound")
			}
			other := &dns.Client{Net: "tcp", Timeout: patience, Dialer: fromAddr("127.0.0.2")}
			resp, _, err := other.Exchange(query("web.svc.internal.", dns.TypeA), addr)
			if err != nil || len(resp.Answer) == 0 {
				t.Fatalf("another client was not served: %v %v", resp, err)
			}
			if got := testutil.ToFloat64(metrics.tcpClosedBy.WithLabelValues(tc.reason)); got != tc.wantReasonAt {
				t.Errorf("%s counted %v, want %v", tc.reason, got, tc.wantReasonAt)
			}
		})
	}
}

// TestTCPWriteTimeout: a client that pipelines queries and reads no answer
// is closed once an answer cannot be written in time, and counted.
func TestTCPWriteTimeout(t *testing.T) {
	addr, metrics := serve(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	conn := &dns.Conn{Conn: c}
	go func() {
		// Writes until the server stops reading, then until it closes.
		conn.SetWriteDeadline(time.Now().Add(3 * patience))
		for conn.WriteMsg(query("big.svc.internal.", dns.TypeA)) == nil {
		}
	}()
	closed := metrics.tcpClosedBy.WithLabelValues(closedWriteTimeout)
	waitFor(t, "write_timeout counted", func() bool { return testutil.ToFloat64(closed) == 1 })
	waitFor(t, "the connection's close counted", func() bool { return testutil.ToFloat64(metrics.tcpConns) == 0 })
}

// TestTCPRejects: over TCP as over UDP, a header the accept rules reject
// gets FORMERR or NOTIMP, a message that does not parse FORMERR, and the
// connection goes on.
func TestTCPRejects(t *testing.T) {
	conn := dialTCP(t)
	notify := query("web.svc.internal.", dns.TypeA)
	notify.Opcode = dns.OpcodeNotify
	twoQuestions := query("web.svc.internal.", dns.TypeA)
	twoQuestions.Question = append(twoQuestions.Question, twoQuestions.Question[0])
	valid, _ := query("web.svc.internal.", dns.TypeA).Pack()
	cut := valid[:14] // inside the question
	for _, tc := range []struct {
		name  string
		raw   []byte
		rcode int
	}{
		{"NOTIFY", pack(t, notify), dns.RcodeNotImplemented},
		{"two questions", pack(t, twoQuestions), dns.RcodeFormatError},
		{"cut question", cut, dns.RcodeFormatError},
		{"valid", valid, dns.RcodeSuccess},
	} {
		if _, err := conn.Write(tc.raw); err != nil {
			t.Fatal(err)
		}
		resp, err := conn.ReadMsg()
		if err != nil || resp.Rcode != tc.rcode {
			t.Errorf("%s: %v %v, want rcode %s", tc.name, resp, err, dns.RcodeToString[tc.rcode])
		}
	}
}

func pack(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSpareLoopback: with SpareLoopback, the rate limit leaves loopback
// clients alone and still limits the others.
func TestSpareLoopback(t *testing.T) {
	h, _ := fixture(t, Options{UDPSize: 1232, ClientRateLimit: 2, ClientRateLimitClients: 100, SpareLoopback: true})
	limited := func(client string) int {
		n := 0
		for range 10 {
			if _, o := h.Respond(query("web.svc.internal.", dns.TypeA), false, netip.MustParseAddr(client)); o.RateLimited {
				n++
			}
		}
		return n
	}
	if n := limited("127.0.0.1"); n != 0 {
		t.Errorf("loopback client: %d of 10 queries rate-limited, want none", n)
	}
	if n := limited("::1"); n != 0 {
		t.Errorf("IPv6 loopback client: %d of 10 queries rate-limited, want none", n)
	}
	if n := limited("192.0.2.7"); n < 7 {
		t.Errorf("another client: %d of 10 queries rate-limited, want at least 7", n)
	}
}

// TestTCPConnectionsGauge: the gauge follows the open TCP connections,
// whichever side closes them.
func TestTCPConnectionsGauge(t *testing.T) {
	addr, metrics := serve(t)
	open := func() float64 { return testutil.ToFloat64(metrics.tcpConns) }
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	waitFor(t, "3 connections counted", func() bool { return open() == 3 })
	conns[0].Close()
	waitFor(t, "a client's close counted", func() bool { return open() == 2 })
	// The others idle out: the server closes them.
	waitFor(t, "the idle connections closed by the server counted", func() bool { return open() == 0 })
	for _, c := range conns[1:] {
		c.Close()
	}
}

// waitFor polls cond until it holds, failing the test after patience.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(patience); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", patience, what)
		}
	}
}

// TestPortZeroSharesNoUDPPort: sockets bound with SO_REUSEPORT to port 0
// may be given a port that another process's such sockets hold, and
// share its queries. With 1,000 such ports held (a few percent of the
// ephemeral range), 60 listens on port 0 get none of them: without the
// probe for a free port, about two would (the test then fails about
// nine times in ten).
func TestPortZeroSharesNoUDPPort(t *testing.T) {
	lc := net.ListenConfig{Control: reusePort}
	held := map[int]bool{}
	for range 1000 {
		pc, err := lc.ListenPacket(context.Background(), "udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		held[pc.LocalAddr().(*net.UDPAddr).Port] = true
	}
	for i := range 60 {
		var s Server
		conns, err := s.listenUDP(nil, "127.0.0.1:0", 2)
		if err != nil {
			t.Fatal(err)
		}
		port := conns[0].LocalAddr().(*net.UDPAddr).Port
		for _, c := range conns {
			c.Close()
		}
		if held[port] {
			t.Fatalf("listen %d on port 0 got port %d, which other SO_REUSEPORT sockets hold", i, port)
		}
	}
}
