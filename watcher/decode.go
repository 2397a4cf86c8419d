package watcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

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

// NewInstance returns the instance at host:port of service with the
// default priority and weight, for a decoder to complete.
func NewInstance(service, id, host string, port uint16) cache.Instance {
	return cache.Instance{
		Service:  service,
		ID:       id,
		Address:  host,
		Port:     port,
		Priority: DefaultPriority,
		Weight:   DefaultWeight,
	}
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
func LimitSize(decode Decoder) Decoder { return LimitSizeTo(decode, MaxValueSize) }

// LimitSizeTo makes decode refuse values larger than limit bytes, for a
// layout whose values are larger than MaxValueSize allows.
func LimitSizeTo(decode Decoder, limit int) Decoder {
	return func(service, id string, value []byte) (cache.Instance, error) {
		if len(value) > limit {
			return cache.Instance{}, fmt.Errorf("value of %d bytes is over the limit of %d", len(value), limit)
		}
		return decode(service, id, value)
	}
}
