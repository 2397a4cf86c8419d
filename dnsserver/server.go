package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ListenConfig says where and how the server listens.
type ListenConfig struct {
	// Addrs are exact IP:port addresses; each gets a UDP and a TCP listener.
	Addrs []string
	// TCPIdleTimeout closes idle TCP connections (RFC 7766); > 0.
	TCPIdleTimeout time.Duration
	// MaxTCPConnections caps concurrent TCP connections; > 0. At the cap,
	// the connection idle longest is closed to admit a new one, or if none
	// is idle the new one is closed.
	MaxTCPConnections int
	// MaxTCPConnectionsPerClient caps the concurrent TCP connections of
	// one client address (IPv6 by /64); a connection over it is closed at
	// once. Below 1: no cap but MaxTCPConnections.
	MaxTCPConnectionsPerClient int
	// Sockets is the number of UDP sockets bound to each address with
	// SO_REUSEPORT, each read by its own workers; 0 means GOMAXPROCS.
	Sockets int
	// Inherited, when not nil, gives sockets bound by another process (the
	// one a hot restart takes over from, or systemd), used instead of
	// binding anew; the ones it lacks are bound.
	Inherited Inherited
}

// Inherited finds the listening sockets that another process bound and
// handed over. addr is a listen address as ListenConfig.Addrs gives it.
type Inherited interface {
	// UDP returns the i-th UDP socket of addr (i from 0), or nil if none
	// was handed over. UDPOnly reports whether only the handed over UDP
	// sockets are to be used, none bound beside them.
	UDP(addr string, i int) (*net.UDPConn, error)
	UDPOnly(addr string) bool
	// TCP returns the TCP listener of addr, or nil if none was handed
	// over.
	TCP(addr string) (net.Listener, error)
}

// Socket is one listening socket of a Server, as handed over to another
// process.
type Socket struct {
	// Network is "udp" or "tcp".
	Network string
	// Addr is the listen address, as ListenConfig.Addrs gave it.
	Addr string
	// Index numbers the UDP sockets of one address, from 0; 0 for TCP.
	Index int
	// Conn is a *net.UDPConn or a *net.TCPListener.
	Conn syscall.Conn
	// Inherited: the socket was handed over, not bound here.
	Inherited bool
}

// maxUDPQuery is the largest UDP query read whole: the most that RFC 6891
// suggests to advertise, and the most Options.UDPSize advertises (config
// allows 512 to 4096). miekg/dns reads 512 octets by default, and answers
// FORMERR to a longer query it cut.
const maxUDPQuery = 4096

// Server runs the UDP and TCP listeners of a Handler.
type Server struct {
	udp       []*udpServer
	listeners []net.Listener
	sockets   []Socket
	tcp       *tcpServer
	addrs     []net.Addr
	errs      chan error
}

// Listen binds every address (so a busy port fails here, not later) and
// starts serving h on it.
func Listen(cfg ListenConfig, h *Handler, metrics *Metrics, log *slog.Logger) (*Server, error) {
	if cfg.TCPIdleTimeout <= 0 || cfg.MaxTCPConnections <= 0 {
		return nil, fmt.Errorf("dns listen: TCP idle timeout %v and connection cap %d must be more than 0", cfg.TCPIdleTimeout, cfg.MaxTCPConnections)
	}
	s := &Server{errs: make(chan error, 2*len(cfg.Addrs)), tcp: newTCPServer(cfg, h, metrics, log)}
	sockets := cfg.Sockets
	if sockets <= 0 {
		sockets = runtime.GOMAXPROCS(0)
	}
	var udpConns []*net.UDPConn
	for _, addr := range cfg.Addrs {
		conns, l, err := s.listenAddr(cfg.Inherited, addr, sockets)
		if err != nil {
			s.close()
			return nil, err
		}
		udpConns = append(udpConns, conns...)
		s.addrs = append(s.addrs, conns[0].LocalAddr(), l.Addr())
	}
	metrics.trackUDP(udpConns)
	for i, u := range s.udp {
		s.udp[i] = serveUDP(u.conns, h, metrics, log)
	}
	for _, l := range s.listeners {
		s.tcp.serve(l, s.errs)
	}
	for _, a := range s.addrs {
		log.Info("dns listening", "net", a.Network(), "addr", a.String())
	}
	return s, nil
}

// listenAddr binds addr's UDP sockets, then its TCP listener on the port
// UDP got, so that ":0" gives one port for both. For port 0, UDP takes a
// port no UDP socket holds (see freeUDPPort), and a port whose TCP side
// is taken (by a client connection, say) is given up for another, a few
// times.
func (s *Server) listenAddr(inh Inherited, addr string, n int) ([]*net.UDPConn, net.Listener, error) {
	for try := 1; ; try++ {
		nUDP, nSockets := len(s.udp), len(s.sockets)
		conns, err := s.listenUDP(inh, addr, n)
		if err != nil {
			return nil, nil, err
		}
		l, err := s.listenTCP(inh, addr, conns[0].LocalAddr().String())
		if err == nil {
			return conns, l, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) || !strings.HasSuffix(addr, ":0") || try == 10 {
			return nil, nil, err
		}
		for _, c := range conns {
			c.Close()
		}
		s.udp, s.sockets = s.udp[:nUDP], s.sockets[:nSockets]
	}
}

// listenUDP takes the UDP sockets of addr that inh has, and binds the
// rest of n (unless inh says to use only its own), and records them.
func (s *Server) listenUDP(inh Inherited, addr string, n int) ([]*net.UDPConn, error) {
	var conns []*net.UDPConn
	if inh != nil {
		for i := 0; ; i++ {
			c, err := inh.UDP(addr, i)
			if err != nil {
				return nil, fmt.Errorf("dns listen udp %s: inherited socket %d: %w", addr, i, err)
			}
			if c == nil {
				break
			}
			conns = append(conns, c)
			s.sockets = append(s.sockets, Socket{Network: "udp", Addr: addr, Index: i, Conn: c, Inherited: true})
		}
		if len(conns) > 0 && (inh.UDPOnly(addr) || len(conns) >= n) {
			s.udp = append(s.udp, &udpServer{conns: conns})
			return conns, nil
		}
	}
	bindAddr := addr
	if len(conns) > 0 {
		bindAddr = conns[0].LocalAddr().String()
	} else if strings.HasSuffix(addr, ":0") {
		var err error
		if bindAddr, err = freeUDPPort(addr); err != nil {
			return nil, err
		}
	}
	bound, err := listenUDP(bindAddr, n-len(conns))
	if err != nil {
		for _, c := range conns {
			c.Close()
		}
		return nil, err
	}
	for i, c := range bound {
		s.sockets = append(s.sockets, Socket{Network: "udp", Addr: addr, Index: len(conns) + i, Conn: c})
	}
	conns = append(conns, bound...)
	s.udp = append(s.udp, &udpServer{conns: conns})
	return conns, nil
}

// listenTCP takes the TCP listener of addr that inh has, or binds one at
// bindAddr, and records it.
func (s *Server) listenTCP(inh Inherited, addr, bindAddr string) (net.Listener, error) {
	var l net.Listener
	inherited := false
	if inh != nil {
		var err error
		if l, err = inh.TCP(addr); err != nil {
			return nil, fmt.Errorf("dns listen tcp %s: inherited listener: %w", addr, err)
		}
		inherited = l != nil
	}
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", bindAddr); err != nil {
			return nil, fmt.Errorf("dns listen tcp %s: %w", bindAddr, err)
		}
	}
	s.listeners = append(s.listeners, l)
	if sc, ok := l.(syscall.Conn); ok {
		s.sockets = append(s.sockets, Socket{Network: "tcp", Addr: addr, Conn: sc, Inherited: inherited})
	}
	return l, nil
}

// Sockets returns the server's listening sockets, to hand over to another
// process.
func (s *Server) Sockets() []Socket { return s.sockets }

// Addrs returns the bound addresses, UDP and TCP for each listen address.
func (s *Server) Addrs() []net.Addr { return s.addrs }

// Errors delivers listener failures after start.
func (s *Server) Errors() <-chan error { return s.errs }

// Shutdown stops accepting queries and waits, until ctx ends, for the ones
// in flight to be answered.
func (s *Server) Shutdown(ctx context.Context) error {
	for _, l := range s.listeners {
		l.Close()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(s.udp)+1)
	for i, u := range s.udp {
		wg.Go(func() { errs[i] = u.shutdown(ctx) })
	}
	wg.Go(func() { errs[len(s.udp)] = s.tcp.shutdown(ctx) })
	wg.Wait()
	return errors.Join(errs...)
}

func (s *Server) close() {
	for _, u := range s.udp {
		u.close()
	}
	for _, l := range s.listeners {
		l.Close()
	}
}
