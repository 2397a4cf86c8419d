package watcher

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// ParseHostPort splits "host:port" ("[ipv6]:port" for IPv6) and checks
// that host is an IP literal or a host name and port is 1 to 65535.
func ParseHostPort(s string) (host string, port uint16, err error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	if err := checkHost(host); err != nil {
		return "", 0, fmt.Errorf("address %q: %w", s, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return "", 0, fmt.Errorf("address %q: port %q is not a number from 1 to 65535", s, p)
	}
	return host, uint16(n), nil
}

// checkHost accepts an IP literal without a zone or a host name.
func checkHost(host string) error {
	if host == "" {
		return errors.New("empty host")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return fmt.Errorf("host %q: IP address with a zone", host)
		}
		return nil
	}
	if !isHostName(host) {
		return fmt.Errorf("host %q: not an IP address or a host name", host)
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
