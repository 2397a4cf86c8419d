package watcher

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/discodns/discodns/cache"
)

// DecodeDiscox decodes the layout of the discox library: the last element
// of id is host:port, and value is empty or a JSON object with the optional
// attributes weight and priority (0 to 65535), tags (strings) and meta
// (string to string). Every other field becomes metadata too, strings as
// they are and other values as compact JSON; meta wins over a field of the
// same name. A JSON null counts as absent.
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
	for name, raw := range fields {
		if IsNull(raw) {
			continue
		}
		switch name {
		case "weight":
			in.Weight, err = uint16Field(name, raw)
		case "priority":
			in.Priority, err = uint16Field(name, raw)
		case "tags":
			if err = json.Unmarshal(raw, &in.Tags); err != nil {
				err = fmt.Errorf("field tags: want a list of strings: %w", err)
			}
		case "meta":
			if err = json.Unmarshal(raw, &meta); err != nil {
				err = fmt.Errorf("field meta: want an object of strings: %w", err)
			}
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
	for k, v := range meta {
		if in.Meta == nil {
			in.Meta = make(map[string]string, len(meta))
		}
		in.Meta[k] = v
	}
	return in, nil
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
