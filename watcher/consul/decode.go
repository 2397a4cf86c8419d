package consul

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/hashicorp/consul/api"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// decode turns one health entry into an instance. It returns ok false for
// an instance that is not served: critical, in maintenance, warning when
// warnings are left out, or without a wanted tag. Kratos's tagged
// addresses become named ports and go-micro's encoded tags are dropped
// (see frameworks.go).
func (c *Source) decode(e *api.ServiceEntry) (in cache.Instance, ok bool, err error) {
	svc := e.Service
	status := e.Checks.AggregatedStatus()
	switch status {
	case api.HealthPassing:
	case api.HealthWarning:
		if !c.cfg.IncludeWarning {
			return in, false, nil
		}
	default: // critical, maintenance
		return in, false, nil
	}
	if !c.tagged(svc.Tags) {
		return in, false, nil
	}
	address := svc.Address
	if address == "" {
		address = e.Node.Address
	}
	if address == "" {
		return in, false, errors.New("no service or node address")
	}
	address, err = watcher.ParseHost(address)
	if err != nil {
		return in, false, err
	}
	if svc.Port < 0 || svc.Port > 65535 {
		return in, false, fmt.Errorf("port %d out of range", svc.Port)
	}
	weight := watcher.DefaultWeight
	if svc.Weights.Passing > 0 || svc.Weights.Warning > 0 {
		weight = svc.Weights.Passing
		if status == api.HealthWarning {
			weight = svc.Weights.Warning
		}
	}
	if weight < 0 || weight > 65535 {
		return in, false, fmt.Errorf("weight %d out of range", weight)
	}
	tags, version := splitTags(svc.Tags)
	meta := maps.Clone(svc.Meta)
	if _, ok := meta["version"]; version != "" && !ok {
		if meta == nil {
			meta = map[string]string{}
		}
		meta["version"] = version
	}
	return cache.Instance{
		Service:  svc.Service,
		ID:       e.Node.Node + "/" + svc.ID,
		Address:  address,
		Port:     uint16(svc.Port),
		Priority: watcher.DefaultPriority,
		Weight:   uint16(weight),
		Ports:    namedPorts(address, svc.TaggedAddresses),
		Tags:     tags,
		Meta:     meta,
		NodeMeta: maps.Clone(e.Node.Meta),
	}, true, nil
}

// wanted returns the names of the services that may have instances passing
// the tag filter, sorted.
func (c *Source) wanted(services map[string][]string) []string {
	names := make([]string, 0, len(services))
	for name, tags := range services {
		if c.tagged(tags) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// tagged reports whether tags pass the tag filter.
func (c *Source) tagged(tags []string) bool {
	if len(c.cfg.Tags) == 0 {
		return true
	}
	for _, t := range tags {
		if slices.Contains(c.cfg.Tags, t) {
			return true
		}
	}
	return false
}

// DecodeEntry is a watcher.Decoder of one health entry as JSON (an element
// of what /v1/health/service answers), decoded as a source with the default
// settings decodes it; an entry that source would not serve is
// watcher.ErrRemoved. The layouts command reads Consul with it.
func DecodeEntry(_, _ string, value []byte) (cache.Instance, error) {
	var e api.ServiceEntry
	if err := watcher.DecodeObject(value, &e, "consul health entry"); err != nil {
		return cache.Instance{}, err
	}
	if e.Node == nil || e.Service == nil {
		return cache.Instance{}, errors.New("consul health entry: no node or service")
	}
	in, ok, err := (&Source{}).decode(&e)
	switch {
	case err != nil:
		return cache.Instance{}, err
	case !ok:
		return cache.Instance{}, watcher.ErrRemoved
	}
	return in, nil
}
