package dnsserver

import (
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

const (
	// tcpFirstQueryTimeout bounds the wait for a new connection's first
	// query (below the idle timeout, if that is shorter): a client that
	// connects has a query to send.
	tcpFirstQueryTimeout = 2 * time.Second
	// tcpWriteTimeout bounds every write of an answer: a client that does
	// not read its answers is closed, not waited on.
	tcpWriteTimeout = 5 * time.Second
	// tcpDrainGrace is how long, at shutdown, a connection waiting for a
	// query is kept for one on its way.
	tcpDrainGrace = 500 * time.Millisecond
)

// Reasons the TCP server closes a connection of its own accord, other than
// an idle timeout: the reason label of discodns_dns_tcp_closed_total.
const (
	closedClientLimit  = "client_limit"  // over dns.max_tcp_connections_per_client
	closedServerLimit  = "server_limit"  // over dns.max_tcp_connections, none idle
	closedIdleEvicted  = "idle_evicted"  // idle, closed to admit a new one
	closedWriteTimeout = "write_timeout" // did not read its answers
)

// tcpServer serves DNS over TCP (RFC 7766) on its listeners: any number of
// queries per connection, answered in order, each write with a deadline.
// It bounds the connections in all and per client; when all are open, the
// one idle longest is closed to admit a new one (RFC 7766 section 6.2.3),
// so idle connections cannot lock others out.
type tcpServer struct {
	h                   *Handler
	metrics             *Metrics
	log                 *slog.Logger
	idle, first         time.Duration
	maxConns, perClient int

	mu        sync.Mutex
	closing   bool
	conns     map[*tcpConn]struct{} // open connections
	idleConns *list.List            // of *tcpConn waiting for a query, the longest waiting first
	clients   map[netip.Addr]int    // open connections per client key
	wg        sync.WaitGroup        // connection and accept goroutines
}

// tcpConn is one connection. Its idle element is set while it waits for
// (or reads) a query, and is nil while it answers one; under the server's
// mu.
type tcpConn struct {
	net.Conn
	client netip.Addr // key of clients: the address, IPv6 by its /64
	idle   *list.Element
}

func newTCPServer(cfg ListenConfig, h *Handler, metrics *Metrics, log *slog.Logger) *tcpServer {
	s := &tcpServer{
		h: h, metrics: metrics, log: log,
		idle: cfg.TCPIdleTimeout, first: min(cfg.TCPIdleTimeout, tcpFirstQueryTimeout),
		maxConns: cfg.MaxTCPConnections, perClient: cfg.MaxTCPConnectionsPerClient,
		conns: map[*tcpConn]struct{}{}, idleConns: list.New(), clients: map[netip.Addr]int{},
	}
	if s.perClient <= 0 {
		s.perClient = s.maxConns
	}
	return s
}

// serve accepts connections on l until it is closed; a failure of l goes to
// errs.
func (s *tcpServer) serve(l net.Listener, errs chan<- error) {
	s.wg.Go(func() {
		var backoff time.Duration
		for {
			c, err := l.Accept()
			if err != nil {
				if retryAccept(err) {
					// Out of file descriptors, or a connection gone
					// before it was taken: wait a little, as net/http
					// does, rather than spin or stop.
					backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
					time.Sleep(backoff)
					continue
				}
				s.mu.Lock()
				closing := s.closing
				s.mu.Unlock()
				if !closing && !errors.Is(err, net.ErrClosed) {
					s.log.Error("dns tcp accept", "addr", l.Addr(), "err", err)
					errs <- err
				}
				return
			}
			backoff = 0
			if tc := s.admit(c); tc != nil {
				s.wg.Go(func() { s.serveConn(tc) })
			}
		}
	})
}

// retryAccept reports whether Accept may succeed if tried again.
func retryAccept(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() ||
		errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED)
}

// admit takes c into the server's count, or closes it when its client has
// all the connections it may have, or the server all it may have and none
// is idle. When the server is full, the connection idle longest is closed
// to make room.
func (s *tcpServer) admit(c net.Conn) *tcpConn {
	tc := &tcpConn{Conn: c, client: clientKey(addrOf(c.RemoteAddr()))}
	s.mu.Lock()
	defer s.mu.Unlock()
	reason := ""
	switch {
	case s.closing:
	case s.clients[tc.client] >= s.perClient:
		reason = closedClientLimit
	case len(s.conns) >= s.maxConns:
		oldest := s.idleConns.Front()
		if oldest == nil {
			reason = closedServerLimit
			break
		}
		victim := oldest.Value.(*tcpConn)
		s.forget(victim)
		victim.Close() // its reader fails and leaves
		s.metrics.tcpClosed(closedIdleEvicted)
		fallthrough
	default:
		s.conns[tc] = struct{}{}
		s.clients[tc.client]++
		tc.idle = s.idleConns.PushBack(tc)
		s.metrics.tcpConnOpened()
		return tc
	}
	if reason != "" {
		s.metrics.tcpClosed(reason)
	}
	c.Close()
	return nil
}

// forget takes tc out of the counts, once; under mu.
func (s *tcpServer) forget(tc *tcpConn) {
	if _, open := s.conns[tc]; !open {
		return
	}
	delete(s.conns, tc)
	if tc.idle != nil {
		s.idleConns.Remove(tc.idle)
		tc.idle = nil
	}
	if n := s.clients[tc.client] - 1; n > 0 {
		s.clients[tc.client] = n
	} else {
		delete(s.clients, tc.client)
	}
	s.metrics.tcpConnClosed()
}

// serveConn answers the queries on tc in order until the client closes it,
// it idles out, an answer cannot be written in time, or the server closes
// it.
func (s *tcpServer) serveConn(tc *tcpConn) {
	defer func() {
		s.mu.Lock()
		s.forget(tc)
		s.mu.Unlock()
		tc.Close()
	}()
	client := addrOf(tc.RemoteAddr())
	var length [2]byte
	var fast []byte // answers from the wire cache, made on first use
	for timeout := s.first; ; timeout = s.idle {
		// The deadline covers the length and the message: a client that
		// sends slowly idles out like one that sends nothing.
		s.setReadDeadline(tc, timeout)
		if _, err := io.ReadFull(tc, length[:]); err != nil {
			return
		}
		m := make([]byte, binary.BigEndian.Uint16(length[:]))
		if _, err := io.ReadFull(tc, m); err != nil {
			return
		}
		if !s.busy(tc) {
			return
		}
		start := time.Now()
		out, o, counted := s.answer(m, client, &fast, start)
		if out != nil {
			tc.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
			bufs := net.Buffers{binary.BigEndian.AppendUint16(length[:0], uint16(len(out))), out}
			if _, err := bufs.WriteTo(tc); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					s.metrics.tcpClosed(closedWriteTimeout)
				}
				s.log.Debug("write response", "client", client, "err", err)
				return
			}
		}
		if counted {
			s.metrics.observe(true, o, time.Since(start))
		}
		if !s.idling(tc) {
			return
		}
	}
}

// busy marks tc as answering a query, so it is not closed to admit
// another; false when the server closed tc. A query that arrives while
// the server drains is answered, and the connection closed after it.
func (s *tcpServer) busy(tc *tcpConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tc.idle == nil {
		return false
	}
	s.idleConns.Remove(tc.idle)
	tc.idle = nil
	return true
}

// idling marks tc as waiting for its next query; false when the server
// closed it.
func (s *tcpServer) idling(tc *tcpConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, open := s.conns[tc]; !open {
		return false
	}
	tc.idle = s.idleConns.PushBack(tc)
	return true
}

// setReadDeadline gives tc timeout to send its next query, or, while the
// server drains, tcpDrainGrace at most. Under mu, so that it never
// undoes the shorter deadline shutdown sets.
func (s *tcpServer) setReadDeadline(tc *tcpConn, timeout time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		timeout = min(timeout, tcpDrainGrace)
	}
	tc.SetReadDeadline(time.Now().Add(timeout))
}

// answer answers the message m from client, as miekg/dns's server does:
// no response to one that has no header, FORMERR or NOTIMP to one whose
// header the accept rules reject (and FORMERR to one that does not parse),
// none to one they ignore, and Handler.Respond to the rest; a plain query
// whose answer is cached is answered into *fast and counted. counted
// reports whether o is still to be observed.
func (s *tcpServer) answer(m []byte, client netip.Addr, fast *[]byte, start time.Time) (out []byte, o Outcome, counted bool) {
	allowed := s.h.allow(client)
	if allowed {
		if *fast == nil {
			*fast = make([]byte, maxWireAnswer)
		}
		if n := s.h.answerFast(s.metrics, m, *fast, true, start); n > 0 {
			return (*fast)[:n], o, false
		}
	}
	req, reply := s.metrics.accept(m)
	if req == nil {
		return reply, o, false
	}
	out, o = s.h.respond(req, true, client, allowed)
	return out, o, true
}

// shutdown drains the connections: each is answered until it has been
// idle for tcpDrainGrace (closing one at once would reset the queries a
// client sent meanwhile, which a hot restart must not lose), and closed;
// the ones still open when ctx ends are closed then. The listeners are
// the caller's to close first.
func (s *tcpServer) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	graceEnd := time.Now().Add(tcpDrainGrace)
	for e := s.idleConns.Front(); e != nil; e = e.Next() {
		e.Value.(*tcpConn).SetReadDeadline(graceEnd)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	// Past the deadline: the answers not yet written are lost; a write
	// blocked on a client that does not read ends now. A handler still
	// waiting (on a forwarder) is not waited for.
	s.mu.Lock()
	for tc := range s.conns {
		tc.Close()
	}
	s.mu.Unlock()
	return ctx.Err()
}

// clientKey is the key a client's connections are counted under: its
// address, or for IPv6 its /64, as the rate limiter counts.
func clientKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		if p, err := a.WithZone("").Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return a
}
