package dnsserver

import (
	"context"
	"net"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeInherited hands over the sockets it holds for one address.
type fakeInherited struct {
	addr    string
	udp     []*net.UDPConn
	tcp     net.Listener
	udpOnly bool
}

func (f *fakeInherited) UDP(addr string, i int) (*net.UDPConn, error) {
	if addr != f.addr || i >= len(f.udp) {
		return nil, nil
	}
	return f.udp[i], nil
}

func (f *fakeInherited) UDPOnly(addr string) bool { return f.udpOnly }

func (f *fakeInherited) TCP(addr string) (net.Listener, error) {
	if addr != f.addr {
		return nil, nil
	}
	return f.tcp, nil
}

// TestListenInherited: the handed over sockets are served and listed as
// inherited; the UDP sockets missing to dns.sockets are bound beside
// them, unless only the handed over ones are to be used.
func TestListenInherited(t *testing.T) {
	tests := []struct {
		name               string
		inheritUDP         int
		sockets            int
		udpOnly            bool
		wantUDP, boundUDPs int
	}{
		{"all handed over", 2, 2, false, 2, 0},
		{"more to bind", 1, 3, false, 3, 2},
		{"only systemd's", 1, 3, true, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conns, l := bindPair(t, tt.inheritUDP)
			addr := conns[0].LocalAddr().String()
			inh := &fakeInherited{addr: addr, udp: conns, tcp: l, udpOnly: tt.udpOnly}
			h, _ := fixture(t, Options{UDPSize: 1232})
			cfg := ListenConfig{Addrs: []string{addr}, TCPIdleTimeout: tcpIdleTimeout, MaxTCPConnections: 8, Sockets: tt.sockets, Inherited: inh}
			srv, err := Listen(cfg, h, NewMetrics(prometheus.NewRegistry()), quiet)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Shutdown(context.Background())
			udp, bound := 0, 0
			for _, s := range srv.Sockets() {
				switch {
				case s.Network == "tcp" && (!s.Inherited || s.Conn != l.(*net.TCPListener)):
					t.Errorf("TCP listener %+v, want the handed over one", s)
				case s.Network == "udp":
					udp++
					if !s.Inherited {
						bound++
					}
				}
			}
			if udp != tt.wantUDP || bound != tt.boundUDPs {
				t.Errorf("%d UDP sockets, %d bound here; want %d, %d", udp, bound, tt.wantUDP, tt.boundUDPs)
			}
			for _, network := range []string{"udp", "tcp"} {
				c := &dns.Client{Net: network, Timeout: patience}
				if resp, _, err := c.Exchange(query("web.svc.internal.", dns.TypeA), addr); err != nil || len(resp.Answer) != 3 {
					t.Errorf("%s: %v %v", network, resp, err)
				}
			}
		})
	}
}

// bindPair binds n UDP sockets and a TCP listener on one loopback port.
func bindPair(t *testing.T, n int) ([]*net.UDPConn, net.Listener) {
	t.Helper()
	for range 10 {
		conns, err := listenUDP("127.0.0.1:0", n)
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", conns[0].LocalAddr().String())
		if err == nil {
			return conns, l
		}
		for _, c := range conns {
			c.Close()
		}
	}
	t.Fatal("no port free for both UDP and TCP in 10 tries")
	return nil, nil
}
