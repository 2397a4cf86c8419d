package watcher

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/discodns/discodns/cache"
)

// DecodeDiscox decodes the layout of the discox library: the last element
// of id is host:port, and value is empty or a JSON object with the optional
// attributes weight and priority (0 to 65535), tags (strings) and meta
// (string to string). Every other field becomes metadata too, strings as
// they are and other values as compact JSON; meta wins over a field of the
// same name. A JSON null counts as absent.
//
// It also reads what other Go registrars write in this shape: field names
// match in any case (Kitex on ZooKeeper writes {"Weight":10,"Tags":{...}},
// dubbo-go's application level on etcd a DefaultServiceInstance with ID,
// ServiceName, Host, Port, Weight, Enable, Healthy and Metadata), where
// two spellings are set the lower-case one wins; metadata is meta too; tags
// may be an object, whose pairs become key=value tags; enable, enabled
// or healthy false means the instance is out (ErrRemoved); and a
// dubbo.endpoints metadata value gives named ports (see DubboEndpoints).
func DecodeDiscox(service, id string, value []byte) (cache.Instance, error) {
	addr := id[strings.LastIndexByte(id, '/')+1:]
	host, port, err := ParseHostPort(addr)
	if err != nil {
		return cache.Instance{}, err
	}
	in := NewInstance(service, id, host, port)
	value = bytes.TrimSpace(value)
	if len(value) == 0 {
		return in, nil
	}
	fields, err := jsonObject(value)
	if err != nil {
		return cache.Instance{}, err
	}
	var meta map[string]string
	out := false
	// Sorted, upper case before lower case: the lower-case spelling of a
	// field set twice wins, whatever the map's order.
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		raw := fields[name]
		if IsNull(raw) {
			continue
		}
		switch strings.ToLower(name) {
		case "weight":
			in.Weight, err = uint16Field(name, raw)
		case "priority":
			in.Priority, err = uint16Field(name, raw)
		case "tags":
			in.Tags, err = tags(name, raw)
		case "meta", "metadata":
			if err = json.Unmarshal(raw, &meta); err != nil {
				err = fmt.Errorf("field %s: want an object of strings: %w", name, err)
			}
		case "enable", "enabled", "healthy":
			var on bool
			if err = json.Unmarshal(raw, &on); err != nil {
				err = fmt.Errorf("field %s: want true or false, got %s", name, abbrev(raw))
			}
			out = out || !on
		default:
			if in.Meta == nil {
				in.Meta = map[string]string{}
			}
			in.Meta[name] = JSONString(raw)
		}
		if err != nil {
			return cache.Instance{}, err
		}
	}
	if out {
		return cache.Instance{}, ErrRemoved
	}
	for k, v := range meta {
		if in.Meta == nil {
			in.Meta = make(map[string]string, len(meta))
		}
		in.Meta[k] = v
	}
	if eps, ok := in.Meta[DubboEndpointsKey]; ok {
		if in.Ports, err = DubboEndpoints(eps); err != nil {
			return cache.Instance{}, err
		}
	}
	return in, nil
}

// tags decodes a list of strings, or an object whose pairs become
// key=value tags, in order.
func tags(name string, raw json.RawMessage) ([]string, error) {
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list, nil
	}
	var pairs map[string]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("field %s: want a list of strings or an object of strings: %w", name, err)
	}
	list = make([]string, 0, len(pairs))
	for _, k := range slices.Sorted(maps.Keys(pairs)) {
		list = append(list, k+"="+pairs[k])
	}
	return list, nil
}

// jsonObject decodes value as a JSON object.
func jsonObject(value []byte) (map[string]json.RawMessage, error) {
	value = bytes.TrimSpace(value)
	if len(value) == 0 || value[0] != '{' {
		return nil, fmt.Errorf("value is not a JSON object: %q", abbrev(value))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(value, &fields); err != nil {
		return nil, fmt.Errorf("value is not a JSON object: %w", err)
	}
	return fields, nil
}

// uint16Field decodes a JSON integer from 0 to 65535.
func uint16Field(name string, raw json.RawMessage) (uint16, error) {
	var n uint16
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fmt.Errorf("field %s: want an integer from 0 to 65535, got %s", name, abbrev(raw))
	}
	return n, nil
}
