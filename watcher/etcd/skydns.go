package etcd

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// CoreDNS etcd plugin defaults for a record's priority and weight of 0.
const (
	skydnsDefaultPriority = 10
	skydnsDefaultWeight   = 100
)

// skydnsRecord is a CoreDNS etcd plugin (SkyDNS) record.
type skydnsRecord struct {
	Host        string `json:"host"`
	Port        int    `json:"port"`
	Priority    int    `json:"priority"`
	Weight      int    `json:"weight"`
	Text        string `json:"text"`
	TTL         int64  `json:"ttl"`
	TargetStrip int    `json:"targetstrip"`
	Group       string `json:"group"`
}

// SkyDNSSplitter returns the key splitter of the skydns layout for zone
// under prefix (with its trailing slash):
// the key is prefix plus the DNS name's labels reversed, so
// <prefix>/internal/svc/web/a is a.web.svc.internal. With zone
// svc.internal., the service is the label below the zone ("web") and the
// id the labels below that ("a"; "x.a" for x.a.web); a record at the
// service name itself has the empty id, which no record below the service
// can have, and is its own SRV target (see DecodeSkyDNS). Keys outside the zone,
// and the zone's own records, are not instances (errOtherKey); a key with
// an empty label is malformed.
func SkyDNSSplitter(prefix, zone string) func(key string) (service, id string, err error) {
	labels := strings.Split(strings.TrimSuffix(strings.ToLower(zone), "."), ".")
	slices.Reverse(labels)
	zonePath := prefix + strings.Join(labels, "/") + "/"
	return func(key string) (string, string, error) {
		rest, ok := strings.CutPrefix(strings.ToLower(key), zonePath)
		if !ok || rest == "" {
			return "", "", errOtherKey
		}
		parts := strings.Split(rest, "/")
		if slices.Contains(parts, "") {
			return "", "", errors.New("key with an empty DNS label")
		}
		service := parts[0]
		if len(parts) == 1 {
			return service, "", nil
		}
		below := parts[1:]
		slices.Reverse(below)
		return service, strings.Join(below, "."), nil
	}
}

// errOtherKey is returned by a key splitter for a key that is not an
// instance key of the source and is no error either (a skydns record
// outside the source's zone).
var errOtherKey = errors.New("not an instance key of the source")

// DecodeSkyDNS decodes a CoreDNS etcd plugin record: host (an IP, or a name
// that becomes the SRV target and a CNAME), port, priority (0 means 10),
// weight (0 means 100; answers rescale it as CoreDNS does), text, ttl,
// targetstrip and group. A record with text and no host has no address:
// it answers TXT alone. An empty id is the record stored at the service's
// own name: as in CoreDNS, that name is its SRV target (AtService).
func DecodeSkyDNS(service, id string, value []byte) (cache.Instance, error) {
	var rec skydnsRecord
	if err := watcher.DecodeObject(value, &rec, "skydns record"); err != nil {
		return cache.Instance{}, err
	}
	if rec.Host == "" && rec.Text == "" {
		return cache.Instance{}, errors.New("skydns record: no host and no text")
	}
	if rec.Port < 0 || rec.Port > 65535 {
		return cache.Instance{}, fmt.Errorf("skydns record: port %d out of range", rec.Port)
	}
	for name, v := range map[string]int{"priority": rec.Priority, "weight": rec.Weight, "targetstrip": rec.TargetStrip} {
		if v < 0 || v > 65535 {
			return cache.Instance{}, fmt.Errorf("skydns record: %s %d out of range", name, v)
		}
	}
	if rec.TTL < 0 || rec.TTL > math.MaxInt32 {
		return cache.Instance{}, fmt.Errorf("skydns record: ttl %d out of range", rec.TTL)
	}
	host := ""
	if rec.Host != "" {
		var err error
		if host, err = watcher.ParseHost(rec.Host); err != nil {
			return cache.Instance{}, fmt.Errorf("skydns record: %w", err)
		}
	}
	in := cache.Instance{
		Service:  service,
		ID:       id,
		Address:  host,
		Port:     uint16(rec.Port),
		Priority: uint16(rec.Priority),
		Weight:   uint16(rec.Weight),
		// CoreDNS names a record by its key: the service's own name
		// for a record stored at the service level.
		AtService: id == "",
		SkyDNS: &cache.SkyDNS{
			Text:        rec.Text,
			TTL:         uint32(rec.TTL),
			TargetStrip: rec.TargetStrip,
			Group:       rec.Group,
		},
	}
	if in.Priority == 0 {
		in.Priority = skydnsDefaultPriority
	}
	if in.Weight == 0 {
		in.Weight = skydnsDefaultWeight
	}
	return in, nil
}
