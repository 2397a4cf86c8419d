package test

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The UDP front end (issue 16): a fixed pool of workers per socket, so a
// flood costs neither goroutines nor memory, and the opcode rule.

// TestFrontendUDPFloodBounded: a 3-second UDP flood, from several senders
// that never wait for an answer, leaves the goroutines and the resident
// memory of discodns within a small bound of their level before it, the
// goroutines at every moment of the flood; a second client asking
// meanwhile keeps getting answers in every part of the flood.
func TestFrontendUDPFloodBounded(t *testing.T) {
	const (
		flooders        = 4
		flood           = 3 * time.Second
		extraGoroutines = 50
		extraRSS        = 64 << 20
	)
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:8080", ``)
	e.put("/services/web/10.0.0.2:8080", ``)
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	d.waitInstances("web.svc.internal.", 2)
	for range 20 { // warm up the answer path
		if _, err := d.exchange("web.svc.internal.", dns.TypeSRV, "udp"); err != nil {
			t.Fatal(err)
		}
	}
	baseGoroutines, baseRSS := d.gauge("go_goroutines"), d.gauge("process_resident_memory_bytes")
	if baseGoroutines < 0 || baseRSS < 0 || d.gauge("discodns_dns_udp_dropped_total") < 0 {
		t.Fatalf("go_goroutines %v, process_resident_memory_bytes %v, or discodns_dns_udp_dropped_total not in /metrics", baseGoroutines, baseRSS)
	}

	var (
		sent, asked, answered atomic.Int64
		maxGoroutines         atomic.Int64
		wg                    sync.WaitGroup
	)
	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	queries := make([][]byte, 2)
	for i, qtype := range []uint16{dns.TypeA, dns.TypeSRV} {
		queries[i], _ = newQuery("web.svc.internal.", qtype).Pack()
	}
	for i := range flooders {
		wg.Go(func() {
			conn, err := net.Dial("udp", d.dns)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			for n := 0; !stopped(); n++ {
				if _, err := conn.Write(queries[(i+n)%2]); err == nil {
					sent.Add(1)
				}
			}
		})
	}
	// The second client asks 200 times a second on one socket, as a stub
	// resolver with many programs behind it does, and notes in which second
	// of the flood each answer came. Its queries share the kernel's socket
	// buffers with the flood, so many of them may be dropped; the server
	// must keep answering some in every second of the flood, never stall.
	const slices = 3
	var answeredIn [slices]atomic.Int64
	start := time.Now()
	second, err := net.Dial("udp", d.dns)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	wg.Go(func() { // the second client's questions
		query := newQuery("web.svc.internal.", dns.TypeA)
		for id := uint16(1); !stopped(); id++ {
			query.Id = id
			packed, _ := query.Pack()
			if _, err := second.Write(packed); err == nil {
				asked.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	wg.Go(func() { // and its answers
		buf := make([]byte, 512)
		for !stopped() {
			second.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			n, err := second.Read(buf)
			if err != nil {
				continue
			}
			if m := new(dns.Msg); m.Unpack(buf[:n]) == nil && len(m.Answer) == 2 {
				answered.Add(1)
				if i := int(time.Since(start) * slices / flood); i < slices {
					answeredIn[i].Add(1)
				}
			}
		}
	})
	wg.Go(func() { // samples the goroutines while the flood lasts
		for !stopped() {
			maxGoroutines.Store(max(maxGoroutines.Load(), int64(d.gauge("go_goroutines"))))
			time.Sleep(50 * time.Millisecond)
		}
	})
	time.Sleep(flood)
	close(stop)
	wg.Wait()

	rss := d.gauge("process_resident_memory_bytes")
	t.Logf("flood of %d queries: goroutines %v before, at most %d during; RSS %.1f MiB before, %.1f MiB after; kernel drops %v; second client answered %d of %d",
		sent.Load(), baseGoroutines, maxGoroutines.Load(), baseRSS/(1<<20), rss/(1<<20), d.gauge("discodns_dns_udp_dropped_total"), answered.Load(), asked.Load())
	if sent.Load() < 10000 {
		t.Errorf("only %d queries sent in %v: not a flood", sent.Load(), flood)
	}
	if g := maxGoroutines.Load(); g > int64(baseGoroutines)+extraGoroutines {
		t.Errorf("go_goroutines reached %d during the flood, %v before: want at most %d more", g, baseGoroutines, extraGoroutines)
	}
	if rss > baseRSS+extraRSS {
		t.Errorf("process_resident_memory_bytes %.1f MiB after the flood, %.1f MiB before: want at most %d MiB more", rss/(1<<20), baseRSS/(1<<20), extraRSS>>20)
	}
	if answered.Load() == 0 {
		t.Errorf("the second client got no answer to %d queries during the flood", asked.Load())
	}
	for i := range slices {
		if answeredIn[i].Load() == 0 {
			t.Errorf("the second client got no answer from %v to %v into the flood: the server stalled", flood*time.Duration(i)/slices, flood*time.Duration(i+1)/slices)
		}
	}
	// And afterwards, everyone is answered.
	if m, err := d.exchange("web.svc.internal.", dns.TypeSRV, "udp"); err != nil || len(m.Answer) != 2 {
		t.Errorf("after the flood: %v %v", m, err)
	}
}

// TestFrontendOpcodeFlags: dig with an unknown opcode and the RD, CD and
// AD flags set gets NOTIMP with the opcode echoed and no flag but QR, over
// UDP and TCP (RFC 8906 section 8; ISC genreport's opcodeflg test).
func TestFrontendOpcodeFlags(t *testing.T) {
	e := startEtcd(t)
	e.put("/services/web/10.0.0.1:8080", ``)
	d := startDiscodns(t, etcdConfig(e.endpoint()))
	d.waitInstances("web.svc.internal.", 1)
	for _, opcode := range []int{dns.OpcodeIQuery, dns.OpcodeStatus, dns.OpcodeNotify, dns.OpcodeUpdate, 15} {
		for _, transport := range []string{"+notcp", "+tcp"} {
			r, err := dig(t, d.dns, fmt.Sprintf("+opcode=%d", opcode), "+rec", "+cdflag", "+adflag", transport, "web.svc.internal.", "A")
			if err != nil {
				t.Fatal(err)
			}
			if r.status != "NOTIMP" || len(r.flags) != 1 || !r.flags["qr"] || len(r.answer)+len(r.authority)+len(r.additional) != 0 {
				t.Errorf("opcode %d %s: status %s, flags %v, %d records; want NOTIMP, qr alone, none:\n%s",
					opcode, transport, r.status, r.flags, len(r.answer)+len(r.authority)+len(r.additional), r.raw)
			}
			if want := fmt.Sprintf("opcode: %s,", opcodeName(opcode)); !strings.Contains(r.raw, want) {
				t.Errorf("opcode %d %s: want %q echoed:\n%s", opcode, transport, want, r.raw)
			}
		}
	}
}

// opcodeName is how dig names an opcode.
func opcodeName(opcode int) string {
	if name, ok := dns.OpcodeToString[opcode]; ok {
		return name
	}
	return fmt.Sprintf("RESERVED%d", opcode)
}
