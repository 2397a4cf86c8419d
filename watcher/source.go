// Package watcher mirrors service registries into the cache. Each registry
// type has a Source that lists and follows the registry and writes what it
// sees into a cache.Sink; decoders turn one registry entry into an
// instance. The sources live in a package per registry (watcher/etcd,
// watcher/consul, watcher/zookeeper), each with the decoders of the
// layouts only it reads; this package holds what they share: the Source
// interface, the discox layout that etcd and ZooKeeper both hold, the
// helpers of the JSON layouts, and the chores every source does (Backoff,
// ForEach, Outage, DecodeLog, Metrics). It knows no registry's protocol.
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
