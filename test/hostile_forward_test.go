package test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// silentUpstream is an upstream DNS server on 127.0.0.1 that reads every
// query and answers none, over UDP and over TCP (it accepts connections
// and never replies), except: names that start with "tc" get a truncated
// reply over UDP, to be asked again over TCP; and while answering is set
// the others get an A record over UDP, 192.0.2.1 with TTL 1.
type silentUpstream struct {
	addr      string
	answering atomic.Bool
}

func startSilentUpstream(t *testing.T) *silentUpstream {
	t.Helper()
	// A UDP port the kernel picks, and TCP on the same port, which may be
	// taken, as the kernel picks from the ports of outgoing connections
	// too: then another.
	var (
		pc  net.PacketConn
		l   net.Listener
		err error
	)
	for range 20 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatalf("no port free for both UDP and TCP: %v", err)
	}
	u := &silentUpstream{addr: pc.LocalAddr().String()}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never read or answered
			mu.Unlock()
		}
	})
	wg.Go(func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var q dns.Msg
			if q.Unpack(buf[:n]) != nil || len(q.Question) != 1 {
				continue
			}
			r := new(dns.Msg).SetReply(&q)
			switch {
			case strings.HasPrefix(q.Question[0].Name, "tc"):
				r.Truncated = true // to be asked again over TCP, which never answers
			case u.answering.Load():
				r.Answer = []dns.RR{&dns.A{
					Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
					A:   net.IPv4(192, 0, 2, 1),
				}}
			default:
				continue
			}
			if b, err := r.Pack(); err == nil {
				pc.WriteTo(b, from)
			}
		}
	})
	t.Cleanup(func() {
		pc.Close()
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return u
}

// TestForwardSilentUpstreamBounded: an upstream that never answers holds
// at most forward.max_in_flight forwarded queries; a burst of distinct
// names beyond that gets SERVFAIL at once (counted) instead of a goroutine
// and a socket each for the whole timeout, and a name with a stale cached
// answer is still answered, stale, while the cap is full (RFC 8767). The
// outage is logged once, not once per failed query.
func TestForwardSilentUpstreamBounded(t *testing.T) {
	const (
		maxInFlight = 20
		burst       = 300
	)
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:8080", ``)
	up := startSilentUpstream(t)
	up.answering.Store(true)
	d := startDiscodns(t, fmt.Sprintf(`
[dns]
listen = ["{{DNS}}"]

[forward]
upstreams = [%q]
timeout = "3s"
max_stale = "1h"
max_in_flight = %d

[http]
listen = "{{HTTP}}"

[[source]]
type = "etcd"
endpoints = [%q]
`, up.addr, maxInFlight, e.endpoint()))

	// A name answered while the upstream still answers, cached for 1 s:
	// later served stale.
	if m, err := d.exchange("stale.example.", dns.TypeA, "udp"); err != nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("forwarded answer while the upstream answers: %v %v", m, err)
	}
	up.answering.Store(false)
	time.Sleep(1500 * time.Millisecond) // the cached answer expires

	baseGoroutines, baseFDs := d.gauge("go_goroutines"), d.gauge("process_open_fds")
	if baseGoroutines < 0 || baseFDs < 0 {
		t.Fatalf("go_goroutines %v, process_open_fds %v: not in /metrics", baseGoroutines, baseFDs)
	}
	overloadBefore := d.gauge("discodns_forward_overload_total")

	// The burst, sampling the process's goroutines and open files while
	// it lasts.
	var maxGoroutines, maxFDs atomic.Int64
	stopSampling, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			maxGoroutines.Store(max(maxGoroutines.Load(), int64(d.gauge("go_goroutines"))))
			maxFDs.Store(max(maxFDs.Load(), int64(d.gauge("process_open_fds"))))
			select {
			case <-stopSampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var (
		servfail, timeouts atomic.Int64
		mu                 sync.Mutex
		others             []string
		wg                 sync.WaitGroup
	)
	start := time.Now().UnixNano()
	for i := range burst {
		wg.Go(func() {
			// Half the names are asked again over TCP after a truncated
			// UDP reply.
			m := new(dns.Msg).SetQuestion(fmt.Sprintf("%s%d-%d.example.", []string{"q", "tc"}[i%2], i, start), dns.TypeA)
			c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
			r, _, err := c.Exchange(m, d.dns)
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				timeouts.Add(1)
			case err == nil && r.Rcode == dns.RcodeServerFailure:
				servfail.Add(1)
			default:
				mu.Lock()
				others = append(others, fmt.Sprintf("%v %v", r, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stopSampling)
	<-sampled

	t.Logf("burst of %d: %d SERVFAIL, %d timeouts; goroutines %v before, at most %d during; open fds %v before, at most %d during",
		burst, servfail.Load(), timeouts.Load(), baseGoroutines, maxGoroutines.Load(), baseFDs, maxFDs.Load())
	// Over the cap every query is answered SERVFAIL at once; only those in
	// flight time out at the client (twice the cap allows for a burst
	// that outlasts one upstream timeout on a loaded machine).
	if len(others) > 0 {
		t.Errorf("%d replies neither SERVFAIL nor a timeout, first: %s", len(others), others[0])
	}
	if n := timeouts.Load(); n > 2*maxInFlight {
		t.Errorf("%d of %d queries timed out at the client (%d SERVFAIL): want at most %d, the ones in flight", n, burst, servfail.Load(), 2*maxInFlight)
	}
	if overload := d.gauge("discodns_forward_overload_total"); overload <= max(overloadBefore, 0) {
		t.Errorf("discodns_forward_overload_total %v after the burst, %v before: want it grown", overload, overloadBefore)
	}
	// Each query in flight holds a few goroutines and one socket; the
	// margins cover the admin endpoint, the scrapes and goroutines of
	// queries being answered at that moment.
	if got, bound := maxGoroutines.Load(), int64(baseGoroutines)+5*maxInFlight+100; got > bound {
		t.Errorf("go_goroutines reached %d during the burst (%v before): want at most %d", got, baseGoroutines, bound)
	}
	if got, bound := maxFDs.Load(), int64(baseFDs)+maxInFlight+30; got > bound {
		t.Errorf("process_open_fds reached %d during the burst (%v before): want at most %d", got, baseFDs, bound)
	}
	// Keep the cap full with queries for names of their own; a name with a
	// stale cached answer is then answered stale at once (TTL 30) rather
	// than SERVFAIL or a wait for the silent upstream.
	quit := make(chan struct{})
	var pressure sync.WaitGroup
	defer pressure.Wait()
	defer close(quit)
	for w := range maxInFlight + 5 {
		pressure.Go(func() {
			c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-quit:
					return
				default:
				}
				c.Exchange(new(dns.Msg).SetQuestion(fmt.Sprintf("p%d-%d-%d.example.", w, i, start), dns.TypeA), d.dns)
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	eventually(t, 30*time.Second, "the cap full", func() error {
		if n := d.gauge("discodns_forward_in_flight_queries"); n != maxInFlight {
			return fmt.Errorf("discodns_forward_in_flight_queries %v, want %d", n, maxInFlight)
		}
		return nil
	})
	eventually(t, 30*time.Second, "a stale answer while the cap is full", func() error {
		m := new(dns.Msg).SetQuestion("stale.example.", dns.TypeA)
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
		r, _, err := c.Exchange(m, d.dns)
		if err != nil {
			return err
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 30 {
			return fmt.Errorf("answer %v, want the stale record with TTL 30", r)
		}
		return nil
	})
	// One outage, one warning, however many queries failed in it.
	eventually(t, 30*time.Second, "the upstream marked unhealthy", func() error {
		if n := strings.Count(d.logs(), "upstream unhealthy"); n == 0 {
			return errors.New("no warning \"upstream unhealthy\" logged")
		}
		return nil
	})
	if n := strings.Count(d.logs(), "upstream unhealthy"); n != 1 {
		t.Errorf("%d warnings \"upstream unhealthy\" logged for one outage, want 1", n)
	}
}
