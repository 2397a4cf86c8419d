// Package cache holds the instance model and the table that merges every
// source's instances into immutable snapshots.
//
// Watchers write through the Sink interface; the DNS server reads the latest
// Snapshot without locking. A write costs what it changed; with the table's
// publisher running (Table.Run), writes are published in batches, each
// changed service built once per batch. The package knows DNS names (labels) but not the
// DNS wire format, and no registry client.
package cache

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// Instance is one registered endpoint of a service, as a watcher decoded it.
type Instance struct {
	// Service is the registry's name for the service (not yet a DNS label).
	Service string
	// ID is unique within the service and the source.
	ID string
	// Address is an IP literal or a host name.
	Address string
	// Port is the service port; 0 means none was registered.
	Port uint16
	// Priority and Weight go into SRV records.
	Priority uint16
	Weight   uint16
	// Ports are further named ports of the instance (a serverset's
	// additionalEndpoints, Curator's sslPort as "tls"), answered as SRV at
	// _<name>._tcp.<svc>.<zone>. Names are DNS labels.
	Ports map[string]uint16
	// Tags select subsets of a service (<tag>.<svc>.<zone>).
	Tags []string
	// Meta is published as TXT key=value strings on the instance name.
	Meta map[string]string
	// NodeMeta is the metadata of the node the instance runs on (Consul
	// node meta); it is read for the instance's locality, never published.
	NodeMeta map[string]string
	// AtService marks an instance whose name is the service's own name (a
	// skydns record stored at the service level, as CoreDNS answers it):
	// its SRV target is <svc>.<zone>, and it has no <inst>.<svc> name.
	AtService bool
	// SkyDNS is what a CoreDNS etcd plugin record says beyond an
	// instance, set for instances of the skydns layout alone: their
	// names are answered as CoreDNS answers them, at any depth: the ID
	// is the record's name below the zone ("a.server1" for
	// a.server1.<zone>), and the service only groups the records of one
	// parent name. Address is empty for a record with text alone.
	SkyDNS *SkyDNS
	// Source is the name of the source that reported the instance; the
	// table sets it.
	Source string
}

// SkyDNS is the part of a CoreDNS etcd plugin record that has no place
// in Instance.
type SkyDNS struct {
	// Text is the record's TXT string.
	Text string
	// TTL is the record's TTL in seconds; 0 means the table's.
	TTL uint32
	// TargetStrip is how many leading labels its SRV and NS targets lose.
	TargetStrip int
	// Group limits an answer to the records of one group (see CoreDNS's
	// etcd plugin README).
	Group string
}

// IP returns the instance address as an IP, and false when the address is
// a host name.
func (in *Instance) IP() (netip.Addr, bool) {
	ip, err := netip.ParseAddr(in.Address)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// Equal reports whether two instances carry the same data.
func (in *Instance) Equal(o *Instance) bool {
	if in.Service != o.Service || in.ID != o.ID || in.Address != o.Address ||
		in.Port != o.Port || in.Priority != o.Priority || in.Weight != o.Weight || in.AtService != o.AtService ||
		in.Source != o.Source || !slices.Equal(in.Tags, o.Tags) || !maps.Equal(in.Ports, o.Ports) ||
		!maps.Equal(in.Meta, o.Meta) || !maps.Equal(in.NodeMeta, o.NodeMeta) ||
		(in.SkyDNS == nil) != (o.SkyDNS == nil) || (in.SkyDNS != nil && *in.SkyDNS != *o.SkyDNS) {
		return false
	}
	return true
}

// Label turns a registry name into a DNS label: lowercase, every character
// outside [a-z0-9-] becomes '-', no leading or trailing '-', at most 63
// octets. It returns "" when nothing usable is left.
func Label(name string) string {
	if isLabel(name) {
		return name // most names are labels already: no copy
	}
	return toLabel(name)
}

// isLabel reports whether Label(s) is s.
func isLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// toLabel is Label, copying.
func toLabel(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteByte(c)
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	return s
}
