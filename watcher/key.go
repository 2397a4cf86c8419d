package watcher

import "strings"

// SplitKey splits an instance key "<prefix>/<service>/<id>" into service
// and id. prefix is given with its trailing slash. The id is everything
// after the service and may itself contain slashes. Keys outside the prefix
// and keys without a service or an id are not instance keys: ok is false.
func SplitKey(prefix, key string) (service, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return "", "", false
	}
	service, id, ok = strings.Cut(rest, "/")
	if !ok || service == "" || id == "" {
		return "", "", false
	}
	return service, id, true
}
