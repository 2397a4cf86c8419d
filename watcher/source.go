// Package watcher mirrors service registries into the cache. Each registry
// type has a Source that lists and follows the registry and writes what it
// sees into a cache.Sink; decoders turn one registry entry into an instance.
package watcher

import (
	"context"

	"github.com/discodns/discodns/cache"
)

// Source watches one registry and mirrors it into a cache.Sink.
type Source interface {
	// Name is the source's name, as the sink knows it.
	Name() string
	// Run blocks until ctx is done, returning nil then (or an error only
	// for a setup problem it cannot recover from).
	Run(ctx context.Context, sink cache.Sink) error
}
