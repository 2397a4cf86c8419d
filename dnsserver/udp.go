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
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
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

// freeUDPPort returns addr, whose port is 0, with a port that no UDP
// socket holds. Sockets bound to port 0 with SO_REUSEPORT may be given
// the port of another process's such sockets (of the same user), and
// would then share its queries; a socket bound without it gets a port
// of its own, which the sockets then bind.
func freeUDPPort(addr string) (string, error) {
	probe, err := net.ListenPacket("udp", addr)
	if err != nil {
		return "", fmt.Errorf("dns listen udp %s: %w", addr, err)
	}
	defer probe.Close()
	return probe.LocalAddr().String(), nil
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

// udpBatch is how many datagrams a worker reads, and how many answers
// from the wire cache it writes, per system call (recvmmsg and sendmmsg on
// Linux; one at a time elsewhere): on one core it lifts the limit of a
// bare answerer by half (test/bench/cores.sh, "batched").
const udpBatch = 16

// batchConn reads and writes datagrams in batches: golang.org/x/net's
// ipv4.PacketConn or ipv6.PacketConn, whose Message types are one.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

func newBatchConn(c *net.UDPConn) batchConn {
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		return ipv6.NewPacketConn(c)
	}
	return ipv4.NewPacketConn(c)
}

// read answers the queries that arrive on c until shutdown, a batch at a
// time: the answers from the wire cache go back in one batch, the others
// one by one as the full path makes them.
func (u *udpServer) read(c *net.UDPConn) {
	bc := newBatchConn(c)
	in, out := make([]ipv4.Message, udpBatch), make([]ipv4.Message, udpBatch)
	bufs := make([][]byte, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, maxUDPQuery)}
		bufs[i] = make([]byte, maxWireAnswer)
		out[i].Buffers = [][]byte{nil}
	}
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if u.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			u.log.Debug("dns read udp", "addr", c.LocalAddr(), "err", err)
			continue
		}
		start := time.Now()
		w := 0
		for i := range in[:n] {
			msg := in[i].Buffers[0][:in[i].N]
			from, ok := in[i].Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			if k := u.serve(c, msg, bufs[w], from.AddrPort(), start); k > 0 {
				out[w].Buffers[0], out[w].Addr = bufs[w][:k], from
				w++
			}
		}
		for sent := 0; sent < w; {
			k, err := bc.WriteBatch(out[sent:w], 0)
			if err != nil {
				u.log.Debug("write responses", "addr", c.LocalAddr(), "err", err)
				break
			}
			sent += k
		}
	}
}

// serve answers the query msg from from, and returns the length of its
// answer from the wire cache, written into buf for the caller to send; 0
// when the full path answered (or dropped) it itself.
func (u *udpServer) serve(c *net.UDPConn, msg, buf []byte, from netip.AddrPort, start time.Time) int {
	allowed := u.h.allow(from.Addr().Unmap())
	if allowed {
		if n := u.h.answerFast(u.m, msg, buf, false, start); n > 0 {
			return n
		}
	}
	req, reply := u.m.accept(msg)
	if req == nil {
		if reply != nil {
			u.write(c, reply, from)
		}
		return 0
	}
	if allowed && u.h.mayForward(req) {
		select {
		case u.forward <- struct{}{}:
			u.workers.Go(func() {
				defer func() { <-u.forward }()
				u.respond(c, req, from, start, allowed)
			})
			return 0
		default:
		}
	}
	u.respond(c, req, from, start, allowed)
	return 0
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
