package watcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/discodns/discodns/cache"
)

// A Decoder turns one registry entry into an instance. service and id come
// from the entry's key; value is the entry's data. An error means the entry
// is not a usable instance and is skipped; ErrRemoved means the entry says
// the instance is gone. The returned instance carries service and id.
type Decoder func(service, id string, value []byte) (cache.Instance, error)

// ErrRemoved is returned by a Decoder for an entry that marks its instance
// as removed (a grpc endpoint with Op 1).
var ErrRemoved = errors.New("entry marks the instance as removed")

// Defaults for attributes a registrant did not set, as Consul's DNS uses.
const (
	DefaultPriority = 1
	DefaultWeight   = 1
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
	in := cache.Instance{
		Service:  service,
		ID:       id,
		Address:  host,
		Port:     port,
		Priority: DefaultPriority,
		Weight:   DefaultWeight,
	}
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

// grpcUpdate is the value written by go.etcd.io/etcd/client/v3/naming/endpoints
// (its internal.Update). Field names match case-insensitively, as
// encoding/json does for the untagged original.
type grpcUpdate struct {
	Op       *int
	Addr     string
	Metadata json.RawMessage
}

// DecodeGRPC decodes the layout of go.etcd.io/etcd/client/v3/naming/endpoints:
// a JSON object {"Op":0,"Addr":"host:port","Metadata":...}. Op 1 returns
// ErrRemoved. Metadata that is a JSON object is flattened into the
// instance's metadata (strings as they are, other values as compact JSON);
// any other non-null Metadata becomes the metadata key "metadata".
func DecodeGRPC(service, id string, value []byte) (cache.Instance, error) {
	var up grpcUpdate
	if err := DecodeObject(value, &up, "grpc endpoint"); err != nil {
		return cache.Instance{}, err
	}
	if up.Op != nil {
		switch *up.Op {
		case 0:
		case 1:
			return cache.Instance{}, ErrRemoved
		default:
			return cache.Instance{}, fmt.Errorf("grpc endpoint: unknown Op %d", *up.Op)
		}
	}
	if up.Addr == "" {
		return cache.Instance{}, errors.New("grpc endpoint: no Addr")
	}
	host, port, err := ParseHostPort(up.Addr)
	if err != nil {
		return cache.Instance{}, fmt.Errorf("grpc endpoint: %w", err)
	}
	in := cache.Instance{
		Service:  service,
		ID:       id,
		Address:  host,
		Port:     port,
		Priority: DefaultPriority,
		Weight:   DefaultWeight,
	}
	md := bytes.TrimSpace(up.Metadata)
	switch {
	case len(md) == 0 || IsNull(md):
	case md[0] == '{':
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(md, &fields); err != nil {
			return cache.Instance{}, fmt.Errorf("grpc endpoint: Metadata: %w", err)
		}
		if len(fields) > 0 {
			in.Meta = make(map[string]string, len(fields))
			for k, v := range fields {
				in.Meta[k] = JSONString(v)
			}
		}
	default:
		in.Meta = map[string]string{"metadata": JSONString(md)}
	}
	return in, nil
}

// DecodeObject decodes value, which must be a JSON object, into v; what
// names the layout's record in errors.
func DecodeObject(value []byte, v any, what string) error {
	value = bytes.TrimSpace(value)
	if len(value) == 0 || value[0] != '{' {
		return fmt.Errorf("value is not a JSON object: %q", abbrev(value))
	}
	if err := json.Unmarshal(value, v); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
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

// JSONString returns a JSON string's text, or any other JSON value as
// compact JSON.
func JSONString(raw json.RawMessage) string {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// IsNull reports whether raw is the JSON null.
func IsNull(raw []byte) bool { return string(bytes.TrimSpace(raw)) == "null" }

// abbrev shortens a value quoted in an error message.
func abbrev(b []byte) string {
	const limit = 64
	if len(b) > limit {
		return string(b[:limit]) + "..."
	}
	return string(b)
}

// MaxValueSize is the largest registry value decoded: an instance's
// attributes fit in far less, and a larger value is a mistake or an attack.
const MaxValueSize = 64 << 10

// LimitSize makes decode refuse values larger than MaxValueSize.
func LimitSize(decode Decoder) Decoder {
	return func(service, id string, value []byte) (cache.Instance, error) {
		if len(value) > MaxValueSize {
			return cache.Instance{}, fmt.Errorf("value of %d bytes is over the limit of %d", len(value), MaxValueSize)
		}
		return decode(service, id, value)
	}
}
