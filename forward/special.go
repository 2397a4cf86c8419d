package forward

import (
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// localTTL is the TTL of synthesized special-use answers and the SOA
// values suggested by RFC 6303 section 3.
const localTTL = 10800

// The reverse names of ::1 and ::.
const (
	loopback6Reverse    = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."
	unspecified6Reverse = "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa."
	loopback4Reverse    = "1.0.0.127.in-addr.arpa."
)

// kind says how a special-use zone is answered.
type kind uint8

const (
	notSpecial kind = iota
	// localhost. (RFC 6761 section 6.3): A 127.0.0.1, AAAA ::1.
	kindLocalhost
	// invalid., local. and onion. (RFC 6761, 6762, 7686): NXDOMAIN.
	kindNXDomain
	// Private and special reverse zones (RFC 6303): the apex exists,
	// everything below is NXDOMAIN.
	kindReverse
	// 127.in-addr.arpa. and the ::1 reverse zone: as kindReverse, but the
	// loopback address has the PTR localhost.
	kindLoopback
)

// specialZone returns the special-use zone holding name, which is lowercase
// and fully qualified, or notSpecial. It does not allocate.
func specialZone(name string) (string, kind) {
	if !strings.HasSuffix(name, ".arpa.") && !strings.HasSuffix(name, "localhost.") &&
		!strings.HasSuffix(name, "invalid.") && !strings.HasSuffix(name, "local.") &&
		!strings.HasSuffix(name, "onion.") {
		return "", notSpecial
	}
	for s := name; ; {
		if k := zoneKind(s); k != notSpecial {
			return s, k
		}
		i := strings.IndexByte(s, '.')
		if i < 0 || i+1 >= len(s) {
			return "", notSpecial
		}
		s = s[i+1:]
	}
}

// zoneKind reports whether zone is a special-use zone and which.
func zoneKind(zone string) kind {
	switch zone {
	case "localhost.":
		return kindLocalhost
	case "invalid.", "local.", "onion.":
		return kindNXDomain
	case "127.in-addr.arpa.", loopback6Reverse:
		return kindLoopback
	case "10.in-addr.arpa.", "168.192.in-addr.arpa.", "254.169.in-addr.arpa.", "0.in-addr.arpa.",
		"d.f.ip6.arpa.", "8.e.f.ip6.arpa.", "9.e.f.ip6.arpa.", "a.e.f.ip6.arpa.", "b.e.f.ip6.arpa.",
		unspecified6Reverse:
		return kindReverse
	}
	if label, ok := strings.CutSuffix(zone, ".172.in-addr.arpa."); ok && inRange(label, 16, 31) {
		return kindReverse
	}
	if label, ok := strings.CutSuffix(zone, ".100.in-addr.arpa."); ok && inRange(label, 64, 127) {
		return kindReverse
	}
	return notSpecial
}

// inRange reports whether label is a decimal octet, as written in reverse
// names (no leading zeros), between lo and hi inclusive.
func inRange(label string, lo, hi int) bool {
	if len(label) == 0 || len(label) > 3 || (label[0] == '0' && len(label) > 1) {
		return false
	}
	n := 0
	for i := 0; i < len(label); i++ {
		c := label[i]
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return lo <= n && n <= hi
}

// answerSpecial answers q, whose lowercase name lies in the special-use
// zone of kind k, into m.
func answerSpecial(m *dns.Msg, q dns.Question, name, zone string, k kind) {
	m.Authoritative = true
	hdr := dns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: dns.ClassINET, Ttl: localTTL}
	switch {
	case k == kindLocalhost && q.Qtype == dns.TypeA:
		m.Answer = []dns.RR{&dns.A{Hdr: hdr, A: netip.AddrFrom4([4]byte{127, 0, 0, 1}).AsSlice()}}
	case k == kindLocalhost && q.Qtype == dns.TypeAAAA:
		m.Answer = []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: netip.IPv6Loopback().AsSlice()}}
	case k == kindLoopback && (name == loopback4Reverse || name == loopback6Reverse) && q.Qtype == dns.TypePTR:
		m.Answer = []dns.RR{&dns.PTR{Hdr: hdr, Ptr: "localhost."}}
	case k == kindLocalhost, name == zone && k != kindNXDomain,
		k == kindLoopback && (name == loopback4Reverse || name == loopback6Reverse):
		// The name exists: NODATA, or the SOA at a zone's apex.
		if name == zone && q.Qtype == dns.TypeSOA {
			m.Answer = []dns.RR{soa(q.Name)}
			return
		}
		m.Ns = []dns.RR{soa(zone)}
	default:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{soa(zone)}
	}
}

// soa returns the synthetic SOA of a special-use zone.
func soa(zone string) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: localTTL},
		Ns:      zone,
		Mbox:    "nobody.invalid.",
		Serial:  1,
		Refresh: 3600,
		Retry:   1200,
		Expire:  604800,
		Minttl:  localTTL,
	}
}
