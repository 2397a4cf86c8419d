package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
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
		conns, err := listenUDP(addr, sockets)
		if err != nil {
			s.close()
			return nil, err
		}
		s.udp = append(s.udp, &udpServer{conns: conns})
		udpConns = append(udpConns, conns...)
		// TCP takes the port UDP got, so ":0" gives one port for both.
		l, err := net.Listen("tcp", conns[0].LocalAddr().String())
		if err != nil {
			s.close()
			return nil, fmt.Errorf("dns listen tcp %s: %w", conns[0].LocalAddr(), err)
		}
		s.addrs = append(s.addrs, conns[0].LocalAddr(), l.Addr())
		s.listeners = append(s.listeners, l)
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
