package etcd

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

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
// under prefix (with its trailing slash): the key is prefix plus the DNS
// name's labels reversed, so <prefix>/internal/svc/web/a is a.web.svc.internal.
// With zone svc.internal., the id is the record's name below the zone
// ("a.web"), and the service is named after the record's parent name
// (skydnsService), or its own for a record right below the zone: the
// records of one name are one service of the table, so a change costs
// that name's records, however deep the hierarchy and however many names
// share a top label. A flat layout keeps its services: a.web and web are
// both of service web. Keys outside the zone, and the
// zone's own records, are not instances (errOtherKey); a key with an empty
// label is malformed.
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
		slices.Reverse(parts)
		parent := parts[1:]
		if len(parent) == 0 {
			parent = parts // a record right below the zone: its own service
		}
		return skydnsService(strings.Join(parent, ".")), strings.Join(parts, "."), nil
	}
}

// skydnsService names the table service of the records whose parent name
// (below the zone) is parent: parent itself when it is one label that is
// its own DNS label ("web" for a.web), so that flat services keep their
// names; else a label made of parent's labels and a hash of parent
// ("server1-prod-0f3ac2e1" for a.server1.prod). Answers do not depend on
// it: the DNS server names records by their id.
func skydnsService(parent string) string {
	if !strings.Contains(parent, ".") && cache.Label(parent) == parent {
		return parent
	}
	h := fnv.New32a()
	h.Write([]byte(parent))
	base := cache.Label(parent)
	if len(base) > 54 {
		base = strings.TrimRight(base[:54], "-")
	}
	if base == "" {
		base = "sky"
	}
	return fmt.Sprintf("%s-%08x", base, h.Sum32())
}

// errOtherKey is returned by a key splitter for a key that is not an
// instance key of the source and is no error either (a skydns record
// outside the source's zone).
var errOtherKey = errors.New("not an instance key of the source")

// DecodeSkyDNS decodes a CoreDNS etcd plugin record: host (an IP, or a name
// that becomes the SRV target and a CNAME), port, priority (0 means 10),
// weight (0 means 100; answers rescale it as CoreDNS does), text, ttl,
// targetstrip and group. A record with text and no host has no address:
// it answers TXT alone. The id is the record's name below the zone (see
// SkyDNSSplitter).
func DecodeSkyDNS(service, id string, value []byte) (cache.Instance, error) {
	var rec skydnsRecord
	if !decodeSkyDNSFast(value, &rec) {
		rec = skydnsRecord{}
		if err := watcher.DecodeObject(value, &rec, "skydns record"); err != nil {
			return cache.Instance{}, err
		}
	}
	if rec.Host == "" && rec.Text == "" {
		return cache.Instance{}, errors.New("skydns record: no host and no text")
	}
	if rec.Port < 0 || rec.Port > 65535 {
		return cache.Instance{}, fmt.Errorf("skydns record: port %d out of range", rec.Port)
	}
	for _, f := range [...]struct {
		name string
		v    int
	}{{"priority", rec.Priority}, {"weight", rec.Weight}, {"targetstrip", rec.TargetStrip}} {
		if f.v < 0 || f.v > 65535 {
			return cache.Instance{}, fmt.Errorf("skydns record: %s %d out of range", f.name, f.v)
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

// decodeSkyDNSFast decodes value into rec, and reports whether it did,
// when value is a flat JSON object of the record's own fields, each a
// string without escapes or an integer: what registrars write. It takes
// nothing that encoding/json would read otherwise (any other key, value
// or spelling leaves it to encoding/json), so the record is the same, at
// a fraction of the cost: a burst of records spends much of its decoding
// in encoding/json's reflection.
func decodeSkyDNSFast(value []byte, rec *skydnsRecord) bool {
	p := jsonScan{b: value}
	if !p.token('{') {
		return false
	}
	if p.token('}') {
		return p.end()
	}
	for {
		key, ok := p.str()
		if !ok || !p.token(':') {
			return false
		}
		switch {
		case strings.EqualFold(key, "host"):
			rec.Host, ok = p.str()
		case strings.EqualFold(key, "text"):
			rec.Text, ok = p.str()
		case strings.EqualFold(key, "group"):
			rec.Group, ok = p.str()
		case strings.EqualFold(key, "port"):
			rec.Port, ok = p.integer()
		case strings.EqualFold(key, "priority"):
			rec.Priority, ok = p.integer()
		case strings.EqualFold(key, "weight"):
			rec.Weight, ok = p.integer()
		case strings.EqualFold(key, "targetstrip"):
			rec.TargetStrip, ok = p.integer()
		case strings.EqualFold(key, "ttl"):
			var ttl int
			ttl, ok = p.integer()
			rec.TTL = int64(ttl)
		default:
			return false
		}
		if !ok {
			return false
		}
		if p.token(',') {
			continue
		}
		return p.token('}') && p.end()
	}
}

// jsonScan reads the simplest JSON tokens from b.
type jsonScan struct {
	b []byte
	i int
}

// space skips JSON whitespace.
func (p *jsonScan) space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

// token skips whitespace and c, reporting whether c came.
func (p *jsonScan) token(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end reports whether nothing but whitespace is left.
func (p *jsonScan) end() bool {
	p.space()
	return p.i == len(p.b)
}

// str reads a string of valid UTF-8 without escapes, after whitespace.
func (p *jsonScan) str() (string, bool) {
	if !p.token('"') {
		return "", false
	}
	start := p.i
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return string(s), utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// integer reads a JSON number that is an integer in an int's range,
// after whitespace: digits, perhaps a minus sign, no leading zero, no
// fraction or exponent.
func (p *jsonScan) integer() (int, bool) {
	p.space()
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	switch {
	case p.i == digits, p.b[digits] == '0' && p.i > digits+1:
		return 0, false
	case p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E'):
		return 0, false
	}
	n, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
	if err != nil || int64(int(n)) != n {
		return 0, false
	}
	return int(n), true
}
