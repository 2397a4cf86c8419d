package dnsserver

import (
	"encoding/binary"

	"github.com/miekg/dns"
)

// Flags of dns.Header.Bits, the second 16 bits of a message.
const (
	bitsQR     = 1 << 15
	bitsOpcode = 0xf << 11
	bitsAA     = 1 << 10
	bitsZ      = 1 << 6
	bitsRcode  = 0xf
	headerLen  = 12
)

// accept does what miekg/dns's server does with a message before its
// handler sees it: the header checks of acceptFunc, then the unpacking.
// It returns the query to answer, or, for a message rejected, the
// response to send (nil: none), each counted in the rejected metric.
func (m *Metrics) accept(msg []byte) (req *dns.Msg, reply []byte) {
	if len(msg) < headerLen {
		// Too short to answer: a reply could only amplify it.
		m.invalid(msg, dns.ErrShortRead)
		return nil, nil
	}
	dh := dns.Header{
		Id:      binary.BigEndian.Uint16(msg),
		Bits:    binary.BigEndian.Uint16(msg[2:]),
		Qdcount: binary.BigEndian.Uint16(msg[4:]),
		Ancount: binary.BigEndian.Uint16(msg[6:]),
		Nscount: binary.BigEndian.Uint16(msg[8:]),
		Arcount: binary.BigEndian.Uint16(msg[10:]),
	}
	switch m.acceptFunc(dh) {
	case dns.MsgAccept:
		req = new(dns.Msg)
		if err := req.Unpack(msg); err != nil {
			m.invalid(msg, err)
			return nil, rejectReply(dh, dns.RcodeFormatError)
		}
		return req, nil
	case dns.MsgReject:
		return nil, rejectReply(dh, dns.RcodeFormatError)
	case dns.MsgRejectNotImplemented:
		return nil, rejectReply(dh, dns.RcodeNotImplemented)
	}
	return nil, nil // ignored
}

// rejectReply is the header-only response to a message rejected by its
// header dh. FORMERR echoes the flags as miekg/dns does, with opcode
// QUERY; NOTIMP, the answer to an opcode other than QUERY, carries only
// the ID, the opcode, QR and the rcode (RFC 8906 section 8).
func rejectReply(dh dns.Header, rcode int) []byte {
	bits := dh.Bits&^(bitsOpcode|bitsAA|bitsZ|bitsRcode) | bitsQR | uint16(rcode)
	if rcode == dns.RcodeNotImplemented {
		bits = bitsQR | dh.Bits&bitsOpcode | uint16(rcode)
	}
	b := make([]byte, headerLen)
	binary.BigEndian.PutUint16(b, dh.Id)
	binary.BigEndian.PutUint16(b[2:], bits)
	return b
}
