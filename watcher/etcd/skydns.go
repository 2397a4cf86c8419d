package etcd

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

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
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Priority int    `json:"priority"`
	Weight   int    `json:"weight"`
	Text     string `json:"text"`
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
// that becomes the SRV target), port, priority (0 means 10), weight (0
// means 100; see rescaleWeights) and text (TXT metadata "text"). A record
// with text and no host is a TXT record alone, not an instance
// (watcher.ErrRemoved). An empty id is the record stored at the service's
// own name: as in CoreDNS, that name is its SRV target (AtService).
func DecodeSkyDNS(service, id string, value []byte) (cache.Instance, error) {
	var rec skydnsRecord
	if err := watcher.DecodeObject(value, &rec, "skydns record"); err != nil {
		return cache.Instance{}, err
	}
	if rec.Host == "" {
		if rec.Text != "" {
			return cache.Instance{}, watcher.ErrRemoved
		}
		return cache.Instance{}, errors.New("skydns record: no host")
	}
	if rec.Port < 0 || rec.Port > 65535 {
		return cache.Instance{}, fmt.Errorf("skydns record: port %d out of range", rec.Port)
	}
	for name, v := range map[string]int{"priority": rec.Priority, "weight": rec.Weight} {
		if v < 0 || v > 65535 {
			return cache.Instance{}, fmt.Errorf("skydns record: %s %d out of range", name, v)
		}
	}
	host, err := watcher.ParseHost(rec.Host)
	if err != nil {
		return cache.Instance{}, fmt.Errorf("skydns record: %w", err)
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
	}
	if in.Priority == 0 {
		in.Priority = skydnsDefaultPriority
	}
	if in.Weight == 0 {
		in.Weight = skydnsDefaultWeight
	}
	if rec.Text != "" {
		in.Meta = map[string]string{"text": rec.Text}
	}
	return in, nil
}

// rescalingSink gives SRV weights as CoreDNS's etcd plugin answers them:
// within a service, each instance's weight becomes floor(100*w/sum) over
// the instances of the same priority, at least 1. It keeps every
// service's raw instances, and a change rewrites the service's instances
// whose rescaled weight changed: work in proportion to the service.
type rescalingSink struct {
	cache.Sink
	mu  sync.Mutex
	raw map[string]map[string]cache.Instance // service -> id -> as decoded
}

func newRescalingSink(sink cache.Sink) *rescalingSink {
	return &rescalingSink{Sink: sink, raw: map[string]map[string]cache.Instance{}}
}

// Replace implements cache.Sink.
func (s *rescalingSink) Replace(source string, instances []cache.Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.raw)
	for _, in := range instances {
		s.store(in)
	}
	var out []cache.Instance
	for svc := range s.raw {
		out = append(out, rescaleWeights(s.raw[svc])...)
	}
	s.Sink.Replace(source, out)
}

// Put implements cache.Sink.
func (s *rescalingSink) Put(source string, in cache.Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.store(in)
	s.write(source, in.Service)
}

// ReplaceService implements cache.Sink.
func (s *rescalingSink) ReplaceService(source, service string, instances []cache.Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.raw, service)
	for _, in := range instances {
		s.store(in)
	}
	s.write(source, service)
}

// write sends the rescaled instances of service to the sink at once, so
// that the weights a change rescales publish together.
func (s *rescalingSink) write(source, service string) {
	s.Sink.ReplaceService(source, service, rescaleWeights(s.raw[service]))
}

// Delete implements cache.Sink.
func (s *rescalingSink) Delete(source, service, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := s.raw[service]
	if _, ok := ids[id]; !ok {
		return
	}
	delete(ids, id)
	if len(ids) == 0 {
		delete(s.raw, service)
	}
	s.write(source, service)
}

func (s *rescalingSink) store(in cache.Instance) {
	ids := s.raw[in.Service]
	if ids == nil {
		ids = map[string]cache.Instance{}
		s.raw[in.Service] = ids
	}
	ids[in.ID] = in
}

// rescaleWeights returns the instances with CoreDNS's weights.
func rescaleWeights(ids map[string]cache.Instance) []cache.Instance {
	sums := map[uint16]int{}
	for _, in := range ids {
		sums[in.Priority] += int(in.Weight)
	}
	out := make([]cache.Instance, 0, len(ids))
	for _, in := range ids {
		w := 100 * int(in.Weight) / max(sums[in.Priority], 1)
		in.Weight = uint16(max(w, 1))
		out = append(out, in)
	}
	return out
}
