package etcd

import (
	"errors"
	"strings"

	"github.com/discodns/discodns/watcher"
)

// DubboSplitter returns the key splitter of the dubbo layout:
// <prefix><interface>/providers/<provider URL> is an instance of the
// interface whose id is the provider node (decoded by
// watcher.DecodeDubbo). Every other key under the group's root (the
// consumers, configurators and routers categories, the directory keys
// dubbo-go writes, Dubbo's config and metadata) is not an instance
// (errOtherKey); a provider key without an interface is malformed.
func DubboSplitter(prefix string) func(key string) (service, id string, err error) {
	return func(key string) (string, string, error) {
		rest, ok := strings.CutPrefix(key, prefix)
		if !ok {
			return "", "", errOtherKey
		}
		service, rest, _ := strings.Cut(rest, "/")
		category, node, _ := strings.Cut(rest, "/")
		switch {
		case category != watcher.DubboProviders || node == "" || strings.Contains(node, "/"):
			return "", "", errOtherKey
		case service == "":
			return "", "", errors.New("provider key without an interface")
		}
		return service, node, nil
	}
}
