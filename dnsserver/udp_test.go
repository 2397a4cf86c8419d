package dnsserver

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// TestUDPSockets: dns.sockets sockets share the port (SO_REUSEPORT), the
// kernel spreads clients over them and every one is answered; shutdown
// closes them all, so the port can be bound again.
func TestUDPSockets(t *testing.T) {
	for _, sockets := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d sockets", sockets), func(t *testing.T) {
			h, _ := fixture(t, Options{UDPSize: 1232})
			metrics := NewMetrics(prometheus.NewRegistry())
			cfg := ListenConfig{Addrs: []string{"127.0.0.1:0"}, TCPIdleTimeout: tcpIdleTimeout, MaxTCPConnections: 8, Sockets: sockets}
			srv, err := Listen(cfg, h, metrics, quiet)
			if err != nil {
				t.Fatal(err)
			}
			addr := srv.Addrs()[0].String()
			if got := len(srv.udp[0].conns); got != sockets {
				t.Fatalf("%d sockets, want %d", got, sockets)
			}
			for _, c := range srv.udp[0].conns {
				if c.LocalAddr().String() != addr {
					t.Errorf("a socket on %s, want all on %s", c.LocalAddr(), addr)
				}
			}
			for i := range 30 { // each from its own port
				c := &dns.Client{Net: "udp", Timeout: patience}
				resp, _, err := c.Exchange(query("web.svc.internal.", dns.TypeA), addr)
				if err != nil || len(resp.Answer) != 3 {
					t.Fatalf("query %d: %v %v", i, resp, err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				t.Fatalf("the port after shutdown: %v", err)
			}
			pc.Close()
		})
	}
}

// TestUDPBatches: queries that arrive together, on IPv4 and IPv6 sockets,
// are read and answered in batches, each answer to its own query.
func TestUDPBatches(t *testing.T) {
	h, _ := fixture(t, Options{})
	srv, err := Listen(ListenConfig{Addrs: []string{"127.0.0.1:0", "[::1]:0"}, TCPIdleTimeout: time.Second, MaxTCPConnections: 4, Sockets: 1}, h, nil, quiet)
	if err != nil {
		t.Fatalf("listen on IPv4 and IPv6 loopback: %v", err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	for _, a := range srv.Addrs() {
		if _, ok := a.(*net.UDPAddr); !ok {
			continue
		}
		conn, err := net.Dial("udp", a.String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		const n = 3 * udpBatch
		names := []string{"web.svc.internal.", "nope.svc.internal.", "_web._tcp.svc.internal."}
		for i := range n {
			q := query(names[i%len(names)], dns.TypeA)
			q.Id = uint16(i + 1)
			b, _ := q.Pack()
			conn.Write(b)
		}
		conn.SetReadDeadline(time.Now().Add(patience))
		seen := map[uint16]bool{}
		buf := make([]byte, 4096)
		for len(seen) < n {
			k, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("%s: %d of %d answers: %v", a, len(seen), n, err)
			}
			m := new(dns.Msg)
			if err := m.Unpack(buf[:k]); err != nil || m.Id == 0 || m.Id > n || m.Question[0].Name != names[(m.Id-1)%uint16(len(names))] {
				t.Fatalf("%s: answer %v %v", a, m, err)
			}
			seen[m.Id] = true
		}
	}
}
