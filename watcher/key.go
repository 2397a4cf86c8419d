package watcher

import (
	"errors"
	"fmt"
	"strings"
)

// SplitKey splits an instance key "<prefix><service>/<id>" into service
// and id. prefix is given with its trailing slash. The id is everything
// after the service and may itself contain slashes. A key outside the
// prefix, or without a service or an id ("<prefix>/<id>",
// "<prefix><service>" or "<prefix><service>/"), is not an instance key:
// the error says why.
func SplitKey(prefix, key string) (service, id string, err error) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return "", "", fmt.Errorf("key outside the prefix %s", prefix)
	}
	service, id, _ = strings.Cut(rest, "/")
	switch {
	case service == "":
		return "", "", errors.New("key without a service name")
	case id == "":
		return "", "", errors.New("key without an instance ID")
	}
	return service, id, nil
}
