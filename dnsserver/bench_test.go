package dnsserver

import (
	"fmt"
	"testing"

	"github.com/miekg/dns"

	"github.com/discodns/discodns/cache"
)

// The answer-path benchmarks build and pack a response, as ServeDNS does
// before writing it. BenchmarkFixedReference does the least a server can:
// copy the question into a precomputed reply and pack it; compare the others
// to it in the same run.
func benchAnswer(b *testing.B, name string, qtype uint16) {
	h, _ := fixture(b, Options{UDPSize: 1232})
	req := query(name, qtype)
	req.SetEdns0(1232, false)
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m := h.Answer(req, false, loopback)
			if _, err := m.PackBuffer(buf[:0:2048]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAnswerA(b *testing.B)        { benchAnswer(b, "web.svc.internal.", dns.TypeA) }
func BenchmarkAnswerSRV(b *testing.B)      { benchAnswer(b, "_web._tcp.svc.internal.", dns.TypeSRV) }
func BenchmarkAnswerNXDOMAIN(b *testing.B) { benchAnswer(b, "nope.svc.internal.", dns.TypeA) }
func BenchmarkAnswerBigTrunc(b *testing.B) { benchAnswer(b, "big.svc.internal.", dns.TypeA) }

func BenchmarkFixedReference(b *testing.B) {
	h, _ := fixture(b, Options{UDPSize: 1232})
	req := query("web.svc.internal.", dns.TypeA)
	req.SetEdns0(1232, false)
	fixed := h.Answer(req, false, loopback)
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m := *fixed
			m.Id = req.Id
			m.Question = req.Question
			if _, err := m.PackBuffer(buf[:0:2048]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchWire measures the path ServeDNS takes for a repeated question: the
// packed answer from the wire cache, patched.
func benchWire(b *testing.B, name string, qtype uint16) {
	h, _ := fixture(b, Options{UDPSize: 1232})
	req := query(name, qtype)
	req.SetEdns0(1232, false)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if out, _ := h.wireAnswer(req, false); out == nil {
				b.Fatal("not cached")
			}
		}
	})
}

func BenchmarkWireA(b *testing.B)   { benchWire(b, "web.svc.internal.", dns.TypeA) }
func BenchmarkWireSRV(b *testing.B) { benchWire(b, "_web._tcp.svc.internal.", dns.TypeSRV) }

// BenchmarkChangeOneInstance changes one instance in tables of growing
// size and compiles the new snapshot, as Follow does: the cost should
// follow the changed service (and its shard), not the table.
func BenchmarkChangeOneInstance(b *testing.B) {
	for _, services := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", services), func(b *testing.B) {
			tb := cache.NewTable(quiet)
			tb.AddSource("etcd", testZone)
			var insts []cache.Instance
			for s := range services {
				for i := range 10 {
					insts = append(insts, cache.Instance{Service: fmt.Sprintf("svc-%d", s), ID: fmt.Sprintf("i%d", i),
						Address: fmt.Sprintf("10.%d.%d.%d", s/65536, s/256%256, s%256), Port: uint16(8000 + i), Priority: 1, Weight: 1})
				}
			}
			tb.Replace("etcd", insts)
			h := NewHandler(Options{Zone: testZone}, nil, quiet)
			h.Update(tb.Snapshot())
			b.ReportAllocs()
			for n := 0; b.Loop(); n++ {
				tb.Put("etcd", cache.Instance{Service: "svc-7", ID: "i3", Address: "10.0.0.7", Port: uint16(9000 + n%1000), Priority: 1, Weight: 1})
				h.Update(tb.Snapshot())
			}
		})
	}
}
