package dnsserver

import (
	"context"
	"fmt"
	"net"
	"testing"

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
