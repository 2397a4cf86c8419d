package dnsserver

import "github.com/miekg/dns"

// maxSize is the largest response the requester can take: 65535 over TCP,
// min(advertised, udpSize) with EDNS (never below 512), 512 without.
func maxSize(opt *dns.OPT, tcp bool, udpSize int) int {
	if opt == nil {
		return sizeLimit(false, 0, tcp, udpSize)
	}
	return sizeLimit(true, opt.UDPSize(), tcp, udpSize)
}

// sizeLimit is maxSize for a requester that advertised (edns) its size.
func sizeLimit(edns bool, advertised uint16, tcp bool, udpSize int) int {
	switch {
	case tcp:
		return dns.MaxMsgSize
	case !edns:
		return dns.MinMsgSize
	}
	return max(dns.MinMsgSize, min(int(advertised), udpSize))
}

// fit shrinks m to size octets: it drops the Additional section first (no
// TC, RFC 2181 section 9), then trims answers and sets TC so the client
// retries over TCP.
func fit(m *dns.Msg, size int) {
	m.Compress = true
	if m.Len() <= size {
		return
	}
	m.Extra = onlyOPT(m.Extra)
	if m.Len() <= size {
		return
	}
	all := m.Answer
	lo, hi := 0, len(all) // all[:lo] fits, all[:hi+1] does not
	for lo < hi {
		mid := (lo + hi + 1) / 2
		m.Answer = all[:mid]
		if m.Len() <= size {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	m.Answer = all[:lo]
	if m.Len() > size {
		m.Ns = nil
	}
	m.Truncated = true
}

// onlyOPT returns the OPT record of extra alone, or nil.
func onlyOPT(extra []dns.RR) []dns.RR {
	for _, rr := range extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			return []dns.RR{rr}
		}
	}
	return nil
}
