package dnsserver

import (
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestOpcodeNotImplemented: every opcode but QUERY is answered NOTIMP with
// the opcode echoed and no flag but QR (RFC 8906 section 8; ISC
// genreport's opcodeflg), whichever path answers it: the header check
// over UDP and TCP, and the handler's own (NOTIFY passes the header check).
func TestOpcodeNotImplemented(t *testing.T) {
	addr, _ := serve(t)
	h, _ := fixture(t, Options{})
	for opcode := range 16 {
		if opcode == dns.OpcodeQuery {
			continue
		}
		req := withEDNS(query("web.svc.internal.", dns.TypeA))
		req.Opcode = opcode
		req.RecursionDesired = true
		req.CheckingDisabled = true
		req.AuthenticatedData = true
		req.Authoritative = true
		t.Run(fmt.Sprintf("opcode %d", opcode), func(t *testing.T) {
			check := func(path string, resp *dns.Msg) {
				t.Helper()
				want := dns.Msg{MsgHdr: dns.MsgHdr{Id: req.Id, Response: true, Opcode: opcode, Rcode: dns.RcodeNotImplemented}}
				if resp.MsgHdr != want.MsgHdr || len(resp.Answer)+len(resp.Ns)+len(resp.Extra) != 0 {
					t.Errorf("%s: header %+v, %d records; want %+v and none", path, resp.MsgHdr, len(resp.Answer)+len(resp.Ns)+len(resp.Extra), want.MsgHdr)
				}
			}
			out, _ := h.Respond(req, false, loopback)
			resp := new(dns.Msg)
			if err := resp.Unpack(out); err != nil {
				t.Fatalf("handler: %v", err)
			}
			check("handler", resp)
			for _, transport := range []string{"udp", "tcp"} {
				c, err := dns.DialTimeout(transport, addr, patience)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(patience))
				if err := c.WriteMsg(req); err != nil {
					t.Fatal(err)
				}
				resp, err := c.ReadMsg()
				if err != nil {
					t.Fatalf("%s: %v", transport, err)
				}
				check(transport, resp)
			}
		})
	}
}
