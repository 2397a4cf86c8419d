package dnsserver

import (
	"encoding/binary"
	"unsafe"

	"github.com/miekg/dns"
)

// answerPacket answers the query in msg from the wire cache without
// unpacking it, writing the answer into out (at least maxWireAnswer
// octets), when msg is a plain query whose answer is cacheable: opcode
// QUERY, one IN question whose labels hold only letters, digits, '-' and
// '_', and nothing else but an OPT record of version 0 without options.
// It returns the answer's length and what it is, or 0 when msg needs the
// full path (which checks and counts whatever this does not take).
func (h *Handler) answerPacket(msg, out []byte, tcp bool) (int, *wireVariant) {
	const flagsTaken = bitsQR | bitsOpcode // a response, or another opcode
	if len(msg) < headerLen+6 || binary.BigEndian.Uint16(msg[2:])&flagsTaken != 0 ||
		binary.BigEndian.Uint32(msg[4:]) != 1<<16 || binary.BigEndian.Uint16(msg[8:]) != 0 {
		return 0, nil // QDCOUNT 1, ANCOUNT 0, NSCOUNT 0
	}
	arcount := binary.BigEndian.Uint16(msg[10:])
	var buf [255]byte
	name, off := lowerName(msg, buf[:0])
	nameEnd := off
	if name == nil || off+4 > len(msg) || binary.BigEndian.Uint16(msg[off+2:]) != dns.ClassINET {
		return 0, nil
	}
	idx := h.idx.Load()
	q := wireQuestion{qtype: binary.BigEndian.Uint16(msg[off:])}
	off += 4
	switch {
	case arcount == 0 && off == len(msg):
	case arcount == 1 && off+11 == len(msg) && msg[off] == 0 && binary.BigEndian.Uint16(msg[off+1:]) == dns.TypeOPT &&
		binary.BigEndian.Uint16(msg[off+5:]) == 0 && binary.BigEndian.Uint16(msg[off+9:]) == 0:
		// The root name, OPT, the size, extended rcode and version 0,
		// the flags, no options.
		q.edns, q.udpSize, q.do = true, binary.BigEndian.Uint16(msg[off+3:]), msg[off+7]&0x80 != 0
	default:
		return 0, nil
	}
	q.limit = sizeLimit(q.edns, q.udpSize, tcp, idx.set.UDPSize)
	// The name aliases buf for the look-up alone: a miss copies it.
	v := h.cachedVariant(idx, unsafe.String(&name[0], len(name)), q, tcp)
	if v == nil || len(v.msg) > len(out) {
		return 0, nil
	}
	n := copy(out, v.msg)
	patch(out, binary.BigEndian.Uint16(msg), msg[2]&1 != 0, msg[3]&(1<<4) != 0)
	// The question as sent: the same octets as its lowercase form's.
	copy(out[headerLen:], msg[headerLen:nameEnd])
	return n, v
}

// lowerName appends to buf the question name of msg in presentation format,
// lowercase, and returns it with the offset past the name; a nil name when
// it is empty (the root), compressed, too long, or holds an octet other than
// a letter, a digit, '-' or '_' (the full path escapes those).
func lowerName(msg, buf []byte) ([]byte, int) {
	off := headerLen
	for off < len(msg) {
		n := int(msg[off])
		off++
		if n == 0 {
			if len(buf) == 0 {
				return nil, 0
			}
			return buf, off
		}
		if n > 63 || off+n > len(msg) || len(buf)+n+1 > cap(buf) {
			return nil, 0
		}
		for _, c := range msg[off : off+n] {
			switch {
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			default:
				return nil, 0
			}
			buf = append(buf, c)
		}
		buf = append(buf, '.')
		off += n
	}
	return nil, 0
}
