package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

const (
	// udpWorkers read each UDP socket: a fixed pool, so a flood costs no
	// goroutine and no buffer per packet. When all are busy the socket's
	// kernel buffer is the queue, and what overflows it the kernel drops
	// (discodns_dns_udp_dropped_total).
	udpWorkers = 4
	// maxForwarding bounds the queries for names outside the zones that
	// workers hand to their own goroutine, so that a slow upstream holds
	// no worker; at the bound a worker forwards itself. The forwarder's
	// own cap (forward.max_in_flight, at most 20000) answers the queries
	// over it at once.
	maxForwarding = 20000
)

// udpServer answers DNS over UDP on sockets that share one address
// (SO_REUSEPORT), each read by udpWorkers goroutines.
type udpServer struct {
	h     *Handler
	m     *Metrics // for the rejected messages, as the handler's counts answers
	conns []*net.UDPConn
	log   *slog.Logger

	closing atomic.Bool
	workers sync.WaitGroup // readers and the forwarding goroutines
	forward chan struct{}  // a slot per forwarding goroutine
}

// listenUDP binds n sockets (n >= 1) to addr with SO_REUSEPORT, the
// first one choosing the port when addr's is 0.
func listenUDP(addr string, n int) ([]*net.UDPConn, error) {
	lc := net.ListenConfig{Control: reusePort}
	var conns []*net.UDPConn
	for range n {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, fmt.Errorf("dns listen udp %s: %w", addr, err)
		}
		conns = append(conns, pc.(*net.UDPConn))
		addr = pc.LocalAddr().String()
	}
	return conns, nil
}

// serveUDP starts answering queries on conns with h.
func serveUDP(conns []*net.UDPConn, h *Handler, m *Metrics, log *slog.Logger) *udpServer {
	u := &udpServer{h: h, m: m, conns: conns, log: log, forward: make(chan struct{}, maxForwarding)}
	for _, c := range conns {
		for range udpWorkers {
			u.workers.Go(func() { u.read(c) })
		}
	}
	return u
}

// read answers the queries that arrive on c until shutdown.
func (u *udpServer) read(c *net.UDPConn) {
	buf := make([]byte, maxUDPQuery)
	out := make([]byte, maxWireAnswer)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if u.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			u.log.Debug("dns read udp", "addr", c.LocalAddr(), "err", err)
			continue
		}
		start := time.Now()
		allowed := u.h.allow(from.Addr().Unmap())
		if allowed {
			if n := u.h.answerFast(u.m, buf[:n], out, false, start); n > 0 {
				u.write(c, out[:n], from)
				continue
			}
		}
		req, reply := u.m.accept(buf[:n])
		if req == nil {
			if reply != nil {
				u.write(c, reply, from)
			}
			continue
		}
		if allowed && u.h.mayForward(req) {
			select {
			case u.forward <- struct{}{}:
				u.workers.Go(func() {
					defer func() { <-u.forward }()
					u.respond(c, req, from, start, allowed)
				})
				continue
			default:
			}
		}
		u.respond(c, req, from, start, allowed)
	}
}

// respond answers req from client on c, and counts it; allowed says
// whether the client is within its rate limit.
func (u *udpServer) respond(c *net.UDPConn, req *dns.Msg, client netip.AddrPort, start time.Time, allowed bool) {
	out, o := u.h.respond(req, false, client.Addr().Unmap(), allowed)
	if out != nil {
		u.write(c, out, client)
	}
	u.m.observe(false, o, time.Since(start))
}

func (u *udpServer) write(c *net.UDPConn, b []byte, to netip.AddrPort) {
	if _, err := c.WriteToUDPAddrPort(b, to); err != nil {
		u.log.Debug("write response", "client", to, "err", err)
	}
}

// shutdown stops reading, waits until ctx ends for the queries being
// answered, and closes the sockets.
func (u *udpServer) shutdown(ctx context.Context) error {
	u.closing.Store(true)
	for _, c := range u.conns {
		c.SetReadDeadline(time.Now()) // wakes the readers
	}
	done := make(chan struct{})
	go func() {
		u.workers.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	u.close()
	return err
}

func (u *udpServer) close() {
	for _, c := range u.conns {
		c.Close()
	}
}
