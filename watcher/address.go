package watcher

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ParseHostPort splits "host:port" ("[ipv6]:port" for IPv6) and checks
// host as ParseHost does and port for 1 to 65535. The host it returns is
// in ParseHost's normal form.
func ParseHostPort(s string) (host string, port uint16, err error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	if host, err = ParseHost(host); err != nil {
		return "", 0, fmt.Errorf("address %q: %w", s, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("address %q: port %q is not a number from 1 to 65535", s, p)
	}
	return host, uint16(n), nil
}

// ParseHost checks an instance's host, an IP literal (IPv6 optionally in
// brackets) or a host name, and returns it in a normal form, so that one
// address spelt two ways is one address: an IPv4-mapped IPv6 address
// becomes IPv4, IPv6 takes its canonical form (RFC 5952), and a host name
// is lowercased without a trailing dot. It refuses an IP with a zone and
// an IP no client can reach an instance at (see usable).
func ParseHost(host string) (string, error) {
	if host == "" {
		return "", errors.New("empty host")
	}
	literal := host
	if strings.HasPrefix(literal, "[") && strings.HasSuffix(literal, "]") {
		literal = literal[1 : len(literal)-1]
	}
	if ip, err := netip.ParseAddr(literal); err == nil {
		if ip.Zone() != "" {
			return "", fmt.Errorf("host %q: IP address with a zone", host)
		}
		ip = ip.Unmap()
		if err := usable(ip); err != nil {
			return "", fmt.Errorf("host %q: %w", host, err)
		}
		return ip.String(), nil
	}
	if !isHostName(host) {
		return "", fmt.Errorf("host %q: not an IP address or a host name", host)
	}
	return strings.ToLower(strings.TrimSuffix(host, ".")), nil
}

// limitedBroadcast is 255.255.255.255, which reaches every host of the
// local network, never one instance.
var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// usable reports why ip cannot be an instance's address: the unspecified
// address (0.0.0.0, ::), the limited broadcast address, a multicast
// address, or an IPv6 link-local address, which a client can only reach
// through a zone (an interface) that an AAAA record cannot carry. IPv4
// link-local addresses stay usable: node-local caches, metadata services
// and container networks serve from 169.254.0.0/16 without any zone.
func usable(ip netip.Addr) error {
	switch {
	case ip.IsUnspecified():
		return errors.New("the unspecified address is not an instance's address")
	case ip == limitedBroadcast:
		return errors.New("the broadcast address is not an instance's address")
	case ip.IsMulticast():
		return errors.New("a multicast address is not an instance's address")
	case ip.Is6() && ip.IsLinkLocalUnicast():
		return errors.New("an IPv6 link-local address is unreachable without a zone")
	}
	return nil
}

// isHostName reports whether s is a syntactically valid host name (RFC
// 1123): letters, digits and hyphens, at most 253 octets, labels of 1 to 63
// octets that neither start nor end with a hyphen, an optional trailing dot,
// and a last label that is not all digits, so that a mistyped IPv4 address
// is not taken for a name.
func isHostName(s string) bool {
	if len(s) > 0 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	if s == "" || len(s) > 253 {
		return false
	}
	labelLen, digitsOnly := 0, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if labelLen == 0 || s[i-1] == '-' {
				return false
			}
			labelLen, digitsOnly = 0, true
			continue
		case c >= '0' && c <= '9':
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			digitsOnly = false
		case c == '-' && labelLen > 0:
			digitsOnly = false
		default:
			return false
		}
		labelLen++
		if labelLen > 63 {
			return false
		}
	}
	return labelLen > 0 && s[len(s)-1] != '-' && !digitsOnly
}
