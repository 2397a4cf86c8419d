package watcher

import (
	"log/slog"

	"github.com/discodns/discodns/cache"
)

// Outage does what a source does when its registry fails: it counts a
// registry error and marks the source stale, so the table keeps serving
// the source's last instances, and it logs each outage once. Its zero
// Metrics counts nothing. It is not safe for concurrent use.
type Outage struct {
	// Source is the source's name.
	Source  string
	Sink    cache.Sink
	Metrics *Metrics
	Log     *slog.Logger
	// Down is logged at warning level by the first Fail of an outage;
	// Still at debug level by the others. Stale alone needs neither, nor
	// Log.
	Down, Still string

	failing bool
}

// Stale counts a registry error and marks the source stale with err. It
// logs nothing.
func (o *Outage) Stale(err error) {
	o.Metrics.RegistryError(o.Source)
	o.Sink.SetState(o.Source, cache.StateStale, err)
}

// Fail does what Stale does and logs err: with Down the first time since
// the outage began, with Still after that.
func (o *Outage) Fail(err error) {
	o.Stale(err)
	if !o.failing {
		o.Log.Warn(o.Down, "err", err)
		o.failing = true
	} else {
		o.Log.Debug(o.Still, "err", err)
	}
}

// Recover ends the outage, if any: the source has listed again. It reports
// whether there was one.
func (o *Outage) Recover() bool {
	was := o.failing
	o.failing = false
	return was
}
