package dnsserver

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzAnswer feeds arbitrary packets to discodns twice: whatever unpacks
// goes to the handler in process (full path and wire cache), which must
// give a response that packs and fits the size the requester can take;
// and every packet, including those that do not unpack (lying counts, a
// compression loop), is sent to a real server on loopback, which must
// answer it with a well-formed response that fits, or drop it, and go on
// answering. Nothing may panic.
func FuzzAnswer(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"web.svc.internal.", dns.TypeA}, {"_web._tcp.svc.internal.", dns.TypeSRV}, {"big.svc.internal.", dns.TypeA},
		{"a.web.svc.internal.", dns.TypeTXT}, {"svc.internal.", dns.TypeSOA}, {"1.0.0.10.in-addr.arpa.", dns.TypePTR},
		{"_http._tcp.web.svc.internal.", dns.TypeSRV}, {"example.com.", dns.TypeA}, {"svc.internal.", dns.TypeANY},
		{"blue_tls.web.svc.internal.", dns.TypeA}, {"_all.web.svc.internal.", dns.TypeSRV}, {"_web._blue_tls.svc.internal.", dns.TypeSRV},
		{"_blue_tls.svc.internal.", dns.TypeA},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		b, _ := m.Pack()
		f.Add(b, false)
		m.SetEdns0(4096, true)
		b, _ = m.Pack()
		f.Add(b, true)
	}
	for _, m := range []*dns.Msg{
		query("svc.internal.", dns.TypeAXFR),
		query(`x\.svc.internal.`, dns.TypeA),
		withEDNS(query("web.svc.internal.", dns.TypeA), &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708090a"}),
		withEDNS(query("web.svc.internal.", dns.TypeA), &dns.EDNS0_PADDING{Padding: make([]byte, 1400)}),
	} {
		b, _ := m.Pack()
		f.Add(b, false)
	}
	twoOPT := withEDNS(query("web.svc.internal.", dns.TypeA))
	twoOPT.Extra = append(twoOPT.Extra, twoOPT.Extra[0])
	b, _ := twoOPT.Pack()
	f.Add(b, false)
	f.Add([]byte{0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0}, false)                         // two questions promised, none given
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}, false) // a compression pointer to itself
	f.Add([]byte{0x12}, false)                                                       // shorter than a header

	h, _ := fixture(f, Options{})
	srv, err := Listen(ListenConfig{Addrs: []string{"127.0.0.1:0"}, TCPIdleTimeout: 10 * time.Second, MaxTCPConnections: 16}, h, nil, quiet)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	addr := srv.Addrs()[0].String()

	f.Fuzz(func(t *testing.T, packet []byte, tcp bool) {
		req := new(dns.Msg)
		if err := req.Unpack(packet); err == nil {
			resp := h.Answer(req, tcp, loopback)
			out, err := resp.Pack()
			if err != nil {
				t.Fatalf("response does not pack: %v\n%v", err, resp)
			}
			checkResponse(t, "full path", req, out, maxSize(req.IsEdns0(), tcp, 1232))
			if out, _ := h.wireAnswer(req, tcp); out != nil {
				checkResponse(t, "wire cache", req, out, maxSize(req.IsEdns0(), tcp, 1232))
			}
		} else {
			req = nil
		}
		if n, _ := h.answerPacket(packet, make([]byte, maxWireAnswer), tcp); n > 0 && req == nil {
			t.Fatalf("a packet that does not unpack answered from the wire cache: %x", packet)
		} else if n > 0 {
			samePacketAnswer(t, h, packet, req, tcp)
		}
		if len(packet) > 65000 {
			return
		}
		limit := 512
		if req != nil {
			limit = maxSize(req.IsEdns0(), false, 1232)
		}
		exchangeRaw(t, addr, packet, req, limit)
	})
}

// checkResponse fails t unless out is a well-formed response to req of at
// most limit octets.
func checkResponse(t *testing.T, path string, req *dns.Msg, out []byte, limit int) {
	t.Helper()
	if len(out) > limit {
		t.Fatalf("%s: response of %d octets over the limit %d", path, len(out), limit)
	}
	resp := new(dns.Msg)
	if err := resp.Unpack(out); err != nil {
		t.Fatalf("%s: response does not unpack: %v", path, err)
	}
	if !resp.Response || req != nil && resp.Id != req.Id {
		t.Fatalf("%s: id %d response %v", path, resp.Id, resp.Response)
	}
}

// exchangeRaw sends packet to the server at addr over UDP, then a probe
// query, and reads until the probe's answer comes: every other reply must
// be a well-formed response to packet (req, when it unpacked) within
// limit, and FORMERR or NOTIMP when it did not unpack. A fresh socket keeps late replies out of the next run.
func exchangeRaw(t *testing.T, addr string, packet []byte, req *dns.Msg, limit int) {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	probe := query("web.svc.internal.", dns.TypeA)
	if len(packet) >= 2 {
		probe.Id = ^(uint16(packet[0])<<8 | uint16(packet[1]))
	}
	probeWire, _ := probe.Pack()
	if _, err := conn.Write(packet); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(probeWire); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 65535)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("the server stopped answering after the packet %x: %v", packet, err)
		}
		reply := new(dns.Msg)
		if reply.Unpack(buf[:n]) == nil && reply.Id == probe.Id && len(reply.Answer) == 3 {
			return
		}
		if len(packet) >= 2 && uint16(buf[0])<<8|uint16(buf[1]) != uint16(packet[0])<<8|uint16(packet[1]) {
			t.Fatalf("a reply with another ID to the packet %x", packet)
		}
		checkResponse(t, "server", req, buf[:n], limit)
		if rcode := int(buf[3] & 0xf); req == nil && rcode != dns.RcodeFormatError && rcode != dns.RcodeNotImplemented {
			t.Fatalf("a packet that does not unpack got %s, want FORMERR (or NOTIMP) or no reply", dns.RcodeToString[rcode])
		}
	}
}

// withEDNS gives m an OPT record (1232 octets) with options.
func withEDNS(m *dns.Msg, options ...dns.EDNS0) *dns.Msg {
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = options
	return m
}
