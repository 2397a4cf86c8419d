package forward

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// reply builds an upstream's reply to r, or nil for no reply.
type replyFunc func(r *dns.Msg, tcp bool) *dns.Msg

// fakeUpstream is an in-process DNS server on 127.0.0.1, UDP and TCP on
// the same port, whose replies a test controls.
type fakeUpstream struct {
	addr    string
	udp     atomic.Int32 // queries received over UDP
	tcp     atomic.Int32 // queries received over TCP
	mu      sync.Mutex
	reply   replyFunc
	queries []*dns.Msg
	ports   []int
	servers []*dns.Server
}

func startUpstream(t testing.TB, reply replyFunc) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{reply: reply}
	var (
		pc net.PacketConn
		l  net.Listener
	)
	for i := 0; ; i++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if i == 20 {
			t.Fatal(err)
		}
	}
	u.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		_, tcp := w.RemoteAddr().(*net.TCPAddr)
		if tcp {
			u.tcp.Add(1)
		} else {
			u.udp.Add(1)
		}
		u.mu.Lock()
		reply := u.reply
		u.queries = append(u.queries, r.Copy())
		if !tcp {
			u.ports = append(u.ports, w.RemoteAddr().(*net.UDPAddr).Port)
		}
		u.mu.Unlock()
		if m := reply(r, tcp); m != nil {
			w.WriteMsg(m)
		}
	})
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go s.ActivateAndServe()
		<-started
		u.servers = append(u.servers, s)
	}
	t.Cleanup(u.stop)
	return u
}

// setReply changes how u replies.
func (u *fakeUpstream) setReply(reply replyFunc) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reply = reply
}

// count returns the number of queries u received.
func (u *fakeUpstream) count() int { return int(u.udp.Load() + u.tcp.Load()) }

// lastQuery returns the last query u received.
func (u *fakeUpstream) lastQuery() *dns.Msg {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.queries) == 0 {
		return nil
	}
	return u.queries[len(u.queries)-1]
}

// stop shuts u down; its port is then closed.
func (u *fakeUpstream) stop() {
	for _, s := range u.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		s.ShutdownContext(ctx)
		cancel()
	}
	u.servers = nil
}

// closedPort returns a UDP address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// answer replies with A records for the question, each with ttls[i].
func answer(ttls ...uint32) replyFunc {
	return func(r *dns.Msg, _ bool) *dns.Msg {
		m := new(dns.Msg).SetReply(r)
		for i, ttl := range ttls {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
				A:   net.IPv4(192, 0, 2, byte(i+1)),
			})
		}
		if o := r.IsEdns0(); o != nil {
			m.SetEdns0(4096, o.Do())
		}
		return m
	}
}

// negative replies with rcode and, when soaTTL is not 0, an SOA with
// that TTL and the MINIMUM minTTL.
func negative(rcode int, soaTTL, minTTL uint32) replyFunc {
	return func(r *dns.Msg, _ bool) *dns.Msg {
		m := new(dns.Msg).SetRcode(r, rcode)
		if soaTTL != 0 {
			m.Ns = []dns.RR{&dns.SOA{
				Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: soaTTL},
				Ns:  "ns.example.", Mbox: "hostmaster.example.", Serial: 1,
				Refresh: 3600, Retry: 600, Expire: 86400, Minttl: minTTL,
			}}
		}
		return m
	}
}

// rcodeReply replies with rcode and nothing else.
func rcodeReply(rcode int) replyFunc { return negative(rcode, 0, 0) }

// testClock is an injectable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var (
	localClient = netip.MustParseAddr("127.0.0.1")
	testAllow   = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
)

// patience is the upstream timeout in tests whose upstreams answer, and
// the bound of every wait: long enough for a loaded machine.
const patience = 10 * time.Second

// silentUpstreamTimeout is the upstream timeout in tests that wait for a
// silent upstream: short, to keep them quick, but far above the time a
// loopback upstream takes to answer.
const silentUpstreamTimeout = 2 * time.Second

// newTestForwarder returns a Forwarder for cfg, with defaults for tests,
// its registry and its clock.
func newTestForwarder(t testing.TB, cfg Config) (*Forwarder, *prometheus.Registry, *testClock) {
	t.Helper()
	if cfg.Allow == nil {
		cfg.Allow = testAllow
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = patience
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 100
	}
	reg := prometheus.NewRegistry()
	f, err := New(cfg, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.now = clock.now
	return f, reg, clock
}

// query returns a query for name and qtype with EDNS0 and the DO bit do.
func query(name string, qtype uint16, do bool) *dns.Msg {
	m := new(dns.Msg).SetQuestion(name, qtype)
	m.SetEdns0(4096, do)
	return m
}

// forward calls f.Forward with a 5 s context from the local client.
func forward(t testing.TB, f *Forwarder, req *dns.Msg) (*dns.Msg, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return f.Forward(ctx, req, localClient)
}

// mustForward is forward that fails the test on an error.
func mustForward(t testing.TB, f *Forwarder, req *dns.Msg) *dns.Msg {
	t.Helper()
	m, err := forward(t, f, req)
	if err != nil {
		t.Fatalf("Forward(%s): %v", req.Question[0].String(), err)
	}
	return m
}

// ttls returns the TTLs of the records in s.
func ttls(s []dns.RR) []uint32 {
	var out []uint32
	for _, rr := range s {
		out = append(out, rr.Header().Ttl)
	}
	return out
}
