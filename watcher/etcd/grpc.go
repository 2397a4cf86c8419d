package etcd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

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
// watcher.ErrRemoved. Metadata that is a JSON object is flattened into the
// instance's metadata (strings as they are, other values as compact JSON);
// any other non-null Metadata becomes the metadata key "metadata".
func DecodeGRPC(service, id string, value []byte) (cache.Instance, error) {
	var up grpcUpdate
	if err := watcher.DecodeObject(value, &up, "grpc endpoint"); err != nil {
		return cache.Instance{}, err
	}
	if up.Op != nil {
		switch *up.Op {
		case 0:
		case 1:
			return cache.Instance{}, watcher.ErrRemoved
		default:
			return cache.Instance{}, fmt.Errorf("grpc endpoint: unknown Op %d", *up.Op)
		}
	}
	if up.Addr == "" {
		return cache.Instance{}, errors.New("grpc endpoint: no Addr")
	}
	host, port, err := watcher.ParseHostPort(up.Addr)
	if err != nil {
		return cache.Instance{}, fmt.Errorf("grpc endpoint: %w", err)
	}
	in := watcher.NewInstance(service, id, host, port)
	md := bytes.TrimSpace(up.Metadata)
	switch {
	case len(md) == 0 || watcher.IsNull(md):
	case md[0] == '{':
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(md, &fields); err != nil {
			return cache.Instance{}, fmt.Errorf("grpc endpoint: Metadata: %w", err)
		}
		if len(fields) > 0 {
			in.Meta = make(map[string]string, len(fields))
			for k, v := range fields {
				in.Meta[k] = watcher.JSONString(v)
			}
		}
	default:
		in.Meta = map[string]string{"metadata": watcher.JSONString(md)}
	}
	return in, nil
}
