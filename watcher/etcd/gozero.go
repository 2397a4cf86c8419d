package etcd

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/discodns/discodns/cache"
	"github.com/discodns/discodns/watcher"
)

// GoZeroSplitter returns the key splitter of the gozero layout. go-zero's
// core/discov publisher writes <Etcd.Key>/<lease ID> (makeEtcdKey in
// core/discov/clients.go), with no leading slash unless Etcd.Key has one:
// the service is the whole Etcd.Key ("hello.rpc") and the id the lease ID,
// a decimal number. prefix is "" for the whole keyspace, or a key prefix
// with its trailing slash: its keys are all go-zero's, so one that does not
// end in a number is malformed; in the whole keyspace it is another
// program's key (errOtherKey).
func GoZeroSplitter(prefix string) func(key string) (service, id string, err error) {
	return func(key string) (string, string, error) {
		if !strings.HasPrefix(key, prefix) {
			return "", "", errOtherKey
		}
		i := strings.LastIndexByte(key, '/')
		service, id := "", key[i+1:]
		if i > 0 {
			service = key[:i]
		}
		if service == "" || !isDecimal(id) {
			if prefix == "" {
				return "", "", errOtherKey
			}
			return "", "", fmt.Errorf("key is not <Etcd.Key>/<lease ID>: %q", key)
		}
		return service, id, nil
	}
}

// isDecimal reports whether s is a non-empty string of ASCII digits.
func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// DecodeGoZero decodes the gozero layout: the value is the bare address
// host:port the service listens on (go-zero's zrpc publishes its ListenOn
// with 0.0.0.0 replaced by the host's IP; core/discov/publisher.go puts it
// as is).
func DecodeGoZero(service, id string, value []byte) (cache.Instance, error) {
	host, port, err := watcher.ParseHostPort(string(bytes.TrimSpace(value)))
	if err != nil {
		return cache.Instance{}, fmt.Errorf("go-zero value: %w", err)
	}
	return watcher.NewInstance(service, id, host, port), nil
}

// anyKeyspace makes decode's errors errOtherKey: in the whole keyspace a
// value that does not decode is most likely another program's, not a bad
// registration, and is skipped without being counted.
func anyKeyspace(decode watcher.Decoder) watcher.Decoder {
	return func(service, id string, value []byte) (cache.Instance, error) {
		in, err := decode(service, id, value)
		if err != nil {
			return cache.Instance{}, fmt.Errorf("%w: %w", errOtherKey, err)
		}
		return in, nil
	}
}
