package dnsserver

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzAnswer feeds arbitrary packets to the handler: whatever unpacks must
// get a response that packs and fits the size the requester can take, and
// nothing may panic. (What does not unpack never reaches the handler: the
// server answers FORMERR or drops it.)
func FuzzAnswer(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"web.svc.internal.", dns.TypeA}, {"_web._tcp.svc.internal.", dns.TypeSRV}, {"big.svc.internal.", dns.TypeA},
		{"a.web.svc.internal.", dns.TypeTXT}, {"svc.internal.", dns.TypeSOA}, {"1.0.0.10.in-addr.arpa.", dns.TypePTR},
		{"_http._tcp.web.svc.internal.", dns.TypeSRV}, {"example.com.", dns.TypeA}, {"svc.internal.", dns.TypeANY},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		b, _ := m.Pack()
		f.Add(b, false)
		m.SetEdns0(4096, true)
		b, _ = m.Pack()
		f.Add(b, true)
	}
	f.Add([]byte{0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0}, false)                         // two questions promised, none given
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}, false) // a compression pointer to itself
	h, _ := fixture(f, Options{})
	f.Fuzz(func(t *testing.T, packet []byte, tcp bool) {
		req := new(dns.Msg)
		if err := req.Unpack(packet); err != nil {
			return
		}
		resp := h.Answer(req, tcp, loopback)
		out, err := resp.Pack()
		if err != nil {
			t.Fatalf("response does not pack: %v\n%v", err, resp)
		}
		if limit := maxSize(req.IsEdns0(), tcp, 1232); len(out) > limit {
			t.Fatalf("response of %d octets over the limit %d", len(out), limit)
		}
		if resp.Id != req.Id || !resp.Response {
			t.Fatalf("id %d response %v", resp.Id, resp.Response)
		}
	})
}
