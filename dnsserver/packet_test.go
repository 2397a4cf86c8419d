package dnsserver

import (
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// samePacketAnswer fails t unless the answer to packet straight from the
// wire cache is the answer of the unpacked path to req: the same header,
// question (as sent) and records (in any order: answers rotate).
func samePacketAnswer(t *testing.T, h *Handler, packet []byte, req *dns.Msg, tcp bool) {
	t.Helper()
	out := make([]byte, maxWireAnswer)
	n, v := h.answerPacket(packet, out, tcp)
	want, wv := h.wireAnswer(req, tcp)
	switch {
	case n == 0 && want == nil:
		return // not cacheable (too large)
	case n == 0:
		t.Fatalf("%v: not answered from the packet, but from the unpacked query", req.Question)
	case want == nil:
		t.Fatalf("%v: answered from the packet, but not from the unpacked query", req.Question)
	}
	checkResponse(t, "packet path", req, out[:n], maxSize(req.IsEdns0(), tcp, 1232))
	got, exp := new(dns.Msg), new(dns.Msg)
	if err := got.Unpack(out[:n]); err != nil {
		t.Fatal(err)
	}
	if err := exp.Unpack(want); err != nil {
		t.Fatal(err)
	}
	if got.MsgHdr != exp.MsgHdr || !slices.Equal(got.Question, exp.Question) || v.rcode != wv.rcode ||
		!slices.Equal(sortedRRs(got.Answer), sortedRRs(exp.Answer)) && !exp.Truncated ||
		!slices.Equal(sortedRRs(got.Ns), sortedRRs(exp.Ns)) || !slices.Equal(sortedRRs(got.Extra), sortedRRs(exp.Extra)) && !exp.Truncated {
		t.Errorf("%v:\npacket   %v\nunpacked %v", req.Question, got, exp)
	}
}

// TestAnswerPacket: a plain query is answered straight from its packet with
// the answer the unpacked path gives; anything else is left to the full
// path.
func TestAnswerPacket(t *testing.T) {
	h, _ := fixture(t, Options{UDPSize: 1232})
	pack := func(m *dns.Msg) []byte {
		t.Helper()
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	flags := func(m *dns.Msg) *dns.Msg { m.Id, m.RecursionDesired, m.CheckingDisabled = 999, true, true; return m }
	answered := []*dns.Msg{
		query("web.svc.internal.", dns.TypeA),
		query("WeB.sVc.InTeRnAl.", dns.TypeA),
		flags(query("_web._tcp.svc.internal.", dns.TypeSRV)),
		withEDNS(query("big.svc.internal.", dns.TypeA)),
		withEDNS(query("big.svc.internal.", dns.TypeSRV)),
		query("dual.svc.internal.", dns.TypeAAAA),
		query("nope.svc.internal.", dns.TypeA),
		query("web.svc.internal.", dns.TypeMX),
		query("a.web.svc.internal.", dns.TypeTXT),
		query("svc.internal.", dns.TypeSOA),
		query("1.0.0.10.in-addr.arpa.", dns.TypePTR),
		query("_http._tcp.web.svc.internal.", dns.TypeSRV),
		query("h.ext.svc.internal.", dns.TypeA),
	}
	do := withEDNS(query("web.svc.internal.", dns.TypeA))
	do.IsEdns0().SetDo()
	answered = append(answered, do)
	for _, req := range answered {
		for _, tcp := range []bool{false, true} {
			samePacketAnswer(t, h, pack(req), req, tcp)
		}
	}
	if n, _ := h.answerPacket(pack(query("web.svc.internal.", dns.TypeA)), make([]byte, maxWireAnswer), false); n == 0 {
		t.Error("a plain A query was not answered from the packet")
	}

	notify := query("web.svc.internal.", dns.TypeA)
	notify.Opcode = dns.OpcodeNotify
	response := query("web.svc.internal.", dns.TypeA)
	response.Response = true
	chaos := query("web.svc.internal.", dns.TypeA)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	twoQ := query("web.svc.internal.", dns.TypeA)
	twoQ.Question = append(twoQ.Question, twoQ.Question[0])
	v1 := withEDNS(query("web.svc.internal.", dns.TypeA))
	v1.IsEdns0().SetVersion(1)
	trailing := append(pack(query("web.svc.internal.", dns.TypeA)), 0)
	for name, packet := range map[string][]byte{
		"forwarded name":     pack(query("example.com.", dns.TypeA)),
		"escaped dot":        pack(query(`x\.web.svc.internal.`, dns.TypeA)),
		"space in a label":   pack(query(`x\032y.svc.internal.`, dns.TypeA)),
		"root":               pack(query(".", dns.TypeNS)),
		"cookie":             pack(withEDNS(query("web.svc.internal.", dns.TypeA), &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})),
		"EDNS version 1":     pack(v1),
		"NOTIFY":             pack(notify),
		"a response":         pack(response),
		"class CH":           pack(chaos),
		"two questions":      pack(twoQ),
		"trailing octet":     trailing,
		"compressed name":    {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1},
		"truncated question": pack(query("web.svc.internal.", dns.TypeA))[:20],
		"header alone":       make([]byte, headerLen),
	} {
		if n, _ := h.answerPacket(packet, make([]byte, maxWireAnswer), false); n != 0 {
			t.Errorf("%s: answered from the packet", name)
		}
	}
}
